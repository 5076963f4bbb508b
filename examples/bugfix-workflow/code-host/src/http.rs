//! The server: accept, verify, route, act, record.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};

use crate::auth::{self, AuthError, BodyError};
use crate::repo::{self, Outcome, Repo};
use crate::{Received, Shared};

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Reply = Response<Full<Bytes>>;

/// A refusal or failure, answered as `{"error": code, "reason": text}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            reason: reason.into(),
        }
    }

    fn reply(&self) -> Reply {
        let mut reply = json_reply(self.status, &json!({ "error": self.code, "reason": self.reason }));
        // RFC 6750 §3 for token refusals.
        if matches!(self.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer error=\"{}\"", self.code))
        {
            reply.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        reply
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// Accept connections on `listener` until the runtime shuts down.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "code host: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "code host: connection ended with an error");
            }
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::GET && path == "/_demo/received" {
        // Loopback demo only: the log, without the authorization values.
        let log = serde_json::to_value(&*shared.received()).unwrap_or(Value::Null);
        return json_reply(StatusCode::OK, &log);
    }
    let mut record = Received {
        method: method.as_str().to_owned(),
        path,
        query: request.uri().query().unwrap_or("").to_owned(),
        operation: None,
        agent: None,
        jti: None,
        status: 0,
        error: None,
        authorization: request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    };
    let (reply, error) = match process(shared, request, &mut record).await {
        Ok((status, value)) => (json_reply(status, &value), None),
        Err(e) => (e.reply(), Some(e)),
    };
    record.status = reply.status().as_u16();
    record.error = error.as_ref().map(|e| e.code.to_owned());
    tracing::info!(
        method = %record.method,
        path = %record.path,
        operation = record.operation.as_deref().unwrap_or("-"),
        agent = record.agent.as_deref().unwrap_or("-"),
        status = record.status,
        error = record.error.as_deref().unwrap_or("-"),
        reason = error.as_ref().map_or("", |e| e.reason.as_str()),
        "code host"
    );
    shared.received().push(record);
    reply
}

/// Verify, in order: token present; signature and claims; (route known);
/// scope; request binding; introspection. Then act.
async fn process(shared: &Shared, request: Request<Incoming>, record: &mut Received) -> Outcome {
    let method = request.method().clone();
    let path = record.path.clone();
    let route = route(&method, &path);
    record.operation = route.as_ref().map(|r| r.op.name().to_owned());

    let body = auth::read_limited(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| match e {
            BodyError::TooLong(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body: {e}"),
            ),
            BodyError::Failed(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("request body: {e}"),
            ),
        })?;

    let token = auth::bearer(record.authorization.as_deref())?;
    let verified = shared.auth.authenticate(token).await?;
    record.agent = Some(verified.sub.clone());
    record.jti = Some(verified.jti.clone());

    let route = route.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no operation {method} {path}"),
        )
    })?;
    let query = auth::parse_query(&record.query)
        .ok_or_else(|| ApiError::from(AuthError::BadRequest("the query has a malformed %-escape".into())))?;
    let binding = auth::request_binding(method.as_str(), &path, &query, &body);
    auth::authorize(&verified, &route.op.scope(), &binding)?;
    shared.auth.introspect(token).await?;

    let mut repo = shared.repo();
    act(&mut repo, &route, &query, &body, &verified.sub)
}

/// The operations of WORKFLOW.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    IssuesList,
    IssuesRead,
    TasksCreate,
    TasksRead,
    TasksComment,
    ContentsRead,
    CodeSearch,
    BranchesCreate,
    ContentsWrite,
    PullsCreate,
    PullsRead,
    PullsComment,
    PullsReview,
    PullsMerge,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::IssuesList => "issues.list",
            Op::IssuesRead => "issues.read",
            Op::TasksCreate => "tasks.create",
            Op::TasksRead => "tasks.read",
            Op::TasksComment => "tasks.comment",
            Op::ContentsRead => "contents.read",
            Op::CodeSearch => "code.search",
            Op::BranchesCreate => "branches.create",
            Op::ContentsWrite => "contents.write",
            Op::PullsCreate => "pulls.create",
            Op::PullsRead => "pulls.read",
            Op::PullsComment => "pulls.comment",
            Op::PullsReview => "pulls.review",
            Op::PullsMerge => "pulls.merge",
        }
    }

    /// The scope it needs: its name with `.` replaced by `:`.
    pub(crate) fn scope(self) -> String {
        self.name().replace('.', ":")
    }
}

/// A matched route; its parameters are still percent-encoded.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    pub op: Op,
    owner: &'a str,
    repo: &'a str,
    /// `{number}`, `{key}` or `{head}`.
    target: &'a str,
    /// `{path*}`, as received.
    file: Vec<&'a str>,
}

pub(crate) fn route<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
    let rest = path.strip_prefix("/repos/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (owner, repo, tail) = match segments.as_slice() {
        [owner, repo, tail @ ..] if !owner.is_empty() && !repo.is_empty() => (*owner, *repo, tail),
        _ => return None,
    };
    let m = |op: Op, target: &'a str| {
        Some(Route {
            op,
            owner,
            repo,
            target,
            file: Vec::new(),
        })
    };
    let nonempty = |s: &&str| !s.is_empty();
    match (method, tail) {
        (&Method::GET, ["issues"]) => m(Op::IssuesList, ""),
        (&Method::GET, ["issues", number]) if nonempty(number) => m(Op::IssuesRead, number),
        (&Method::POST, ["tasks"]) => m(Op::TasksCreate, ""),
        (&Method::GET, ["tasks", key]) if nonempty(key) => m(Op::TasksRead, key),
        (&Method::POST, ["tasks", key, "comments"]) if nonempty(key) => m(Op::TasksComment, key),
        (&Method::GET, ["search"]) => m(Op::CodeSearch, ""),
        (&Method::POST, ["branches"]) => m(Op::BranchesCreate, ""),
        (&Method::POST, ["pulls"]) => m(Op::PullsCreate, ""),
        (&Method::GET, ["pulls", head]) if nonempty(head) => m(Op::PullsRead, head),
        (&Method::POST, ["pulls", head, "comments"]) if nonempty(head) => m(Op::PullsComment, head),
        (&Method::POST, ["pulls", head, "reviews"]) if nonempty(head) => m(Op::PullsReview, head),
        (&Method::PUT, ["pulls", head, "merge"]) if nonempty(head) => m(Op::PullsMerge, head),
        (&Method::GET | &Method::PUT, ["contents", file @ ..]) if !file.is_empty() => {
            let op = if method == Method::GET {
                Op::ContentsRead
            } else {
                Op::ContentsWrite
            };
            Some(Route {
                op,
                owner,
                repo,
                target: "",
                file: file.to_vec(),
            })
        }
        _ => None,
    }
}

fn decode(segment: &str) -> Result<String, ApiError> {
    auth::percent_decode(segment).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("`{segment}` has a malformed %-escape"),
        )
    })
}

/// `{path*}`: each segment decoded; a segment may not decode to one
/// containing `/`.
fn file_path(segments: &[&str]) -> Result<String, ApiError> {
    let mut decoded = Vec::with_capacity(segments.len());
    for segment in segments {
        let s = decode(segment)?;
        if s.contains('/') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("path segment `{segment}` encodes a `/`"),
            ));
        }
        decoded.push(s);
    }
    let path = decoded.join("/");
    repo::check_path(&path)?;
    Ok(path)
}

fn act(repo: &mut Repo, route: &Route<'_>, query: &[(String, String)], body: &[u8], agent: &str) -> Outcome {
    let (owner, name) = (decode(route.owner)?, decode(route.repo)?);
    if (owner.as_str(), name.as_str()) != (repo::OWNER, repo::NAME) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no repository `{owner}/{name}`"),
        ));
    }
    let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let target = decode(route.target)?;
    match route.op {
        Op::IssuesList => repo.list_issues(param("labels"), param("state")),
        Op::IssuesRead => repo.read_issue(&target),
        Op::TasksCreate => repo.create_task(body, agent),
        Op::TasksRead => repo.read_task(&target),
        Op::TasksComment => repo.comment_task(&target, body, agent),
        Op::ContentsRead => repo.read_file(&file_path(&route.file)?, param("ref")),
        Op::CodeSearch => repo.search(param("q"), param("path"), param("ref")),
        Op::BranchesCreate => repo.create_branch(body),
        Op::ContentsWrite => repo.write_file(&file_path(&route.file)?, body, agent),
        Op::PullsCreate => repo.create_pull(body, agent),
        Op::PullsRead => repo.read_pull(&target),
        Op::PullsComment => repo.comment_pull(&target, body, agent),
        Op::PullsReview => repo.review_pull(&target, body, agent),
        Op::PullsMerge => {
            let empty_or_object = body.iter().all(u8::is_ascii_whitespace)
                || serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_object());
            if !empty_or_object {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the merge body is `{}` or empty",
                ));
            }
            repo.merge_pull(&target, agent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_table() {
        let r = |m: Method, p: &str| route(&m, p).map(|r| r.op.name());
        assert_eq!(r(Method::GET, "/repos/acme/shop/issues"), Some("issues.list"));
        assert_eq!(
            r(Method::GET, "/repos/acme/shop/issues/1042"),
            Some("issues.read")
        );
        assert_eq!(r(Method::POST, "/repos/acme/shop/tasks"), Some("tasks.create"));
        assert_eq!(
            r(Method::GET, "/repos/acme/shop/tasks/task-1042"),
            Some("tasks.read")
        );
        assert_eq!(
            r(Method::POST, "/repos/acme/shop/tasks/task-1042/comments"),
            Some("tasks.comment")
        );
        assert_eq!(
            r(Method::GET, "/repos/acme/shop/contents/src/auth/session.py"),
            Some("contents.read")
        );
        assert_eq!(
            r(Method::PUT, "/repos/acme/shop/contents/a.py"),
            Some("contents.write")
        );
        assert_eq!(r(Method::GET, "/repos/acme/shop/search"), Some("code.search"));
        assert_eq!(
            r(Method::POST, "/repos/acme/shop/branches"),
            Some("branches.create")
        );
        assert_eq!(r(Method::POST, "/repos/acme/shop/pulls"), Some("pulls.create"));
        assert_eq!(
            r(Method::GET, "/repos/acme/shop/pulls/fix-1042"),
            Some("pulls.read")
        );
        assert_eq!(
            r(Method::POST, "/repos/acme/shop/pulls/fix-1042/comments"),
            Some("pulls.comment")
        );
        assert_eq!(
            r(Method::POST, "/repos/acme/shop/pulls/fix-1042/reviews"),
            Some("pulls.review")
        );
        assert_eq!(
            r(Method::PUT, "/repos/acme/shop/pulls/fix-1042/merge"),
            Some("pulls.merge")
        );
        assert_eq!(r(Method::GET, "/repos/other/repo/issues"), Some("issues.list"));
        // A malformed file path is the operation's, answered 400 by `file_path`.
        assert_eq!(
            r(Method::GET, "/repos/acme/shop/contents/"),
            Some("contents.read")
        );
        for (m, p) in [
            (Method::DELETE, "/repos/acme/shop/issues"),
            (Method::GET, "/repos/acme/shop/issues/"),
            (Method::GET, "/repos/acme/shop/contents"),
            (Method::POST, "/repos/acme/shop/pulls/fix-1042/merge"),
            (Method::GET, "/repos/acme"),
            (Method::GET, "/repos//shop/issues"),
            (Method::GET, "/"),
            (Method::GET, "/code/repos/acme/shop/issues"),
        ] {
            assert_eq!(r(m.clone(), p), None, "{m} {p}");
        }
        assert_eq!(Op::TasksComment.scope(), "tasks:comment");
    }

    #[test]
    fn file_paths_decode_per_segment() {
        assert_eq!(file_path(&["src", "a%20b.py"]).unwrap(), "src/a b.py");
        assert!(file_path(&["src%2Fa.py"]).is_err());
        assert!(file_path(&["..", "x"]).is_err());
        assert!(file_path(&["src", ""]).is_err());
        assert!(file_path(&["%2E%2E", "x"]).is_err());
    }
}

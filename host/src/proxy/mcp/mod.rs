//! MCP services: agents' MCP clients reach `/{service}/mcp` (Streamable HTTP
//! transport) and every JSON-RPC message they send is an action for the
//! role's policy, decided on its method, name and arguments.
//!
//! The flow per POST: the session (as for REST) → the body, parsed → per
//! message: decide (its own `begin`, policy, commit, token, decision record)
//! → forward that one message upstream with its own token → its answer,
//! scrubbed. A denial becomes a JSON-RPC error the agent's model can read.
//! Listings are filtered by the policy's `visible` export. Airlock keeps its
//! own `Mcp-Session-Id` toward the agent (see `sessions`), and streams
//! `text/event-stream` answers event by event, each scrubbed whole.
//!
//! What is not here: server-initiated streams (GET answers 405), session
//! deletion by the agent (DELETE answers 405; sessions end with their
//! Airlock session), and relaying the agent's responses to server requests.

mod jsonrpc;
mod sessions;
mod sse;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::headers::{header_name, redact, sanitize_request};
use super::pipeline::{
    Admitted, Allowed, Begun, Proposed, Refused, admit, audit_outcome, audit_refusal, begin_again, decide,
    fill_principal, now_ms, presented_approval, random_id, read_body, refused, role_for, secrets_of,
    split_service, store_unavailable,
};
use super::reply::{Refusal, refusal};
use super::upstream::Service;
use crate::audit::DecisionRecord;
use crate::config::RoleConfig;
use crate::policy::Listing;
use crate::server::Airlock;
use crate::state::Session;
use crate::token::request_binding;
use jsonrpc::{Call, Message};
use sessions::McpSession;
pub use sessions::McpSessions;

use super::pipeline::ProxyBody;

/// The one revision of MCP that allowed JSON-RPC batches (2025-06-18
/// removed them); a session negotiated at another revision gets an error.
const BATCH_REVISION: &str = "2025-03-26";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).boxed()
}

fn json_response(status: StatusCode, value: &Value, decision: Option<&str>) -> Response<ProxyBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(v) = decision.and_then(|d| HeaderValue::from_str(d).ok()) {
        headers.insert("x-airlock-decision", v);
    }
    response
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A refusal before any JSON-RPC message could be read: the transport's
/// answer (HTTP status, JSON body) or, once the body was read, a JSON-RPC
/// error with id `null`.
struct Early {
    refused: Refused,
    as_jsonrpc: bool,
}

impl From<Refused> for Early {
    fn from(refused: Refused) -> Self {
        Early {
            refused,
            as_jsonrpc: false,
        }
    }
}

fn jsonrpc_early(refused: Refused) -> Early {
    Early {
        refused,
        as_jsonrpc: true,
    }
}

/// Serve one request to an MCP service.
pub async fn handle(ctx: Arc<Airlock>, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let (service_name, rest) = split_service(request.uri().path());
    let mut record = DecisionRecord {
        decision_id: random_id("dec"),
        method: request.method().as_str().to_string(),
        service: service_name.to_string(),
        path: rest.to_string(),
        ..DecisionRecord::default()
    };
    let span = tracing::info_span!("request", decision = %record.decision_id, method = %record.method, service = %record.service, mcp = true);
    let served = serve(&ctx, request, &mut record, started)
        .instrument(span.clone())
        .await;
    // What a refused message counted is durable before it is answered (an
    // allowed one's commit already was).
    let settled = ctx.store.settle().await;
    let early = match (served, settled) {
        (Ok(response), Ok(())) => return response,
        (Ok(_), Err(e)) => Early::from(store_unavailable(e)),
        (Err(early), _) => early,
    };
    let decision_id = record.decision_id.clone();
    let audited = span.in_scope(|| audit_refusal(&ctx, record, &early.refused, started));
    let r = if audited.written {
        early.refused
    } else {
        refused(Refusal::Unavailable, "the audit log is unavailable")
    };
    let kind = r.refusal;
    if early.as_jsonrpc {
        let code = if r.reason.starts_with("malformed JSON") {
            jsonrpc::PARSE_ERROR
        } else {
            jsonrpc::code_for(kind)
        };
        let body = jsonrpc::error_response(&Value::Null, code, "this request", &r, &decision_id);
        return json_response(kind.status(), &body, Some(&decision_id));
    }
    let mut response =
        refusal(kind, &r.reason, &decision_id, r.retry_after_s, r.extra.as_ref()).map(BodyExt::boxed);
    if kind == Refusal::MethodNotAllowed {
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("POST"));
    }
    response
}

/// What one POST is about: the admitted session and where it goes.
struct Exchange<'a> {
    ctx: &'a Arc<Airlock>,
    session: Session,
    role: &'a RoleConfig,
    service: &'a Service,
    /// The agent's headers, sanitised (what the policy sees).
    headers: HeaderMap,
    /// The raw headers, for the session handle of a later `begin`.
    raw_headers: HeaderMap,
    /// The MCP session this POST belongs to (none for `initialize`).
    mcp: Option<(String, McpSession)>,
    /// The agent's `MCP-Protocol-Version`, passed on.
    protocol_version: Option<String>,
    started: Instant,
}

async fn serve(
    ctx: &Arc<Airlock>,
    request: Request<Incoming>,
    record: &mut DecisionRecord,
    started: Instant,
) -> Result<Response<ProxyBody>, Early> {
    let now = now_ms();
    let header_approval = presented_approval(request.headers())?;
    let Admitted { session, begun } = admit(ctx, request.headers(), header_approval, record, now).await?;
    let (service_name, rest) = {
        let (s, r) = split_service(request.uri().path());
        (s.to_string(), r.to_string())
    };
    let service = ctx.services.get(&service_name).ok_or_else(|| {
        refused(
            Refusal::UnknownService,
            format!("no service named {service_name:?}"),
        )
    })?;
    let role = role_for(ctx, &session, &service_name)?;
    if rest != "/mcp" {
        return Err(refused(
            Refusal::UnknownRoute,
            format!("{service_name} is an MCP service: point your MCP client at /{service_name}/mcp"),
        )
        .into());
    }
    if request.method() != hyper::Method::POST {
        return Err(refused(
            Refusal::MethodNotAllowed,
            format!(
                "{} /{service_name}/mcp is not served: Airlock answers each POST on its own \
                 (no server-initiated stream) and MCP sessions end with the Airlock session",
                request.method()
            ),
        )
        .into());
    }
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body, role.limits.max_body_bytes.0)
        .await
        .map_err(jsonrpc_early)?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| jsonrpc_early(refused(Refusal::BadRequest, format!("malformed JSON: {e}"))))?;

    let text_header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
    };
    let mcp = match text_header(SESSION_HEADER) {
        None => None,
        Some(id) => match ctx.mcp.get(&id, &session, &service_name, now) {
            Some(open) => Some((id, open)),
            None => {
                return Err(refused(
                    Refusal::McpSessionUnknown,
                    "this Mcp-Session-Id is not one of your session's (it ended, or Airlock restarted); \
                     initialize a new MCP session",
                )
                .into());
            }
        },
    };
    let exchange = Exchange {
        ctx,
        headers: sanitize_request(&parts.headers),
        raw_headers: parts.headers.clone(),
        protocol_version: text_header(VERSION_HEADER),
        session,
        role,
        service,
        mcp,
        started,
    };
    match parsed {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(jsonrpc_early(refused(Refusal::BadRequest, "an empty batch")));
            }
            let revision = exchange.mcp.as_ref().map(|(_, s)| s.protocol_version.as_str());
            if revision != Some(BATCH_REVISION) {
                return Err(jsonrpc_early(refused(
                    Refusal::BadRequest,
                    format!(
                        "JSON-RPC batches exist only in MCP revision {BATCH_REVISION}; this session \
                         negotiated {}; send one message per POST",
                        revision.unwrap_or("none (initialize first)")
                    ),
                )));
            }
            Ok(exchange.batch(items, begun, record, now).await)
        }
        single => Ok(exchange.single(single, begun, record, now).await),
    }
}

/// What deciding one message came to.
enum Decided {
    Allowed(Box<DecisionRecord>, Allowed),
    /// Refused and audited; the JSON-RPC error to answer a request with.
    Refused(Option<Value>),
}

impl Exchange<'_> {
    /// A message's own decision record, with the principal already known.
    fn record_for(&self, call: Option<&Call>) -> DecisionRecord {
        let mut record = DecisionRecord {
            decision_id: random_id("dec"),
            service: self.service.name.clone(),
            method: "POST".into(),
            path: "/mcp".into(),
            ..DecisionRecord::default()
        };
        fill_principal(&mut record, &self.session);
        if let Some(call) = call {
            record.operation = Some(call.operation());
            record.mcp_method = Some(call.mcp.method.clone());
            record.mcp_name = call.mcp.name.clone();
            record.mcp_arguments_sha256 = Some(call.arguments_digest());
            record.mcp_id = call.mcp.id.clone();
        }
        record
    }

    /// Audit a refused message; the error response for it, if it has an id.
    fn refuse(&self, record: DecisionRecord, id: Option<&Value>, what: &str, r: Refused) -> Decided {
        let decision_id = record.decision_id.clone();
        let audited = audit_refusal(self.ctx, record, &r, self.started);
        let r = if audited.written {
            r
        } else {
            refused(Refusal::Unavailable, "the audit log is unavailable")
        };
        Decided::Refused(
            id.map(|id| jsonrpc::error_response(id, jsonrpc::code_for(r.refusal), what, &r, &decision_id)),
        )
    }

    /// Decide one message, with `begun` read for it.
    async fn decide(&self, call: &Call, begun: Begun, now: u64) -> Decided {
        let mut record = self.record_for(Some(call));
        record.approval_id = begun.approval_id.clone();
        let operation = call.operation();
        if call.mcp.method == "initialize" && self.mcp.is_some() {
            let r = refused(
                Refusal::BadRequest,
                "initialize starts a new MCP session: send it without Mcp-Session-Id",
            );
            return self.refuse(record, call.id.as_ref(), &operation, r);
        }
        if call.mcp.method != "initialize" && self.mcp.is_none() {
            let r = refused(
                Refusal::BadRequest,
                "send the Mcp-Session-Id Airlock answered your initialize with",
            );
            return self.refuse(record, call.id.as_ref(), &operation, r);
        }
        let body = call.raw.to_string();
        let binding = request_binding("POST", &format!("/mcp/{operation}"), &[], &call.binding_body());
        let decided = decide(
            self.ctx,
            &self.session,
            self.role,
            begun,
            Proposed {
                service_name: &self.service.name,
                operation: operation.clone(),
                params: Vec::new(),
                method: "POST".into(),
                path: "/mcp".into(),
                query: Vec::new(),
                headers: &self.headers,
                body: body.as_bytes(),
                mcp: Some(call.mcp.clone()),
                binding,
            },
            &mut record,
            self.started,
            now,
        )
        .instrument(tracing::info_span!("decide", operation = %operation))
        .await;
        match decided {
            Ok(allowed) => Decided::Allowed(Box::new(record), allowed),
            Err(r) => self.refuse(record, call.id.as_ref(), &operation, r),
        }
    }

    /// One message per POST: the common case, and the only one that streams.
    async fn single(
        self,
        value: Value,
        begun: Begun,
        http_record: &mut DecisionRecord,
        now: u64,
    ) -> Response<ProxyBody> {
        let call = match jsonrpc::classify(value) {
            Message::Call(call) => call,
            Message::Invalid { id, reason } => {
                let mut record = self.record_for(None);
                record.decision_id = http_record.decision_id.clone();
                let decided = self.refuse(
                    record,
                    Some(&id),
                    "this message",
                    refused(Refusal::BadRequest, reason),
                );
                return refusal_answer(decided, StatusCode::BAD_REQUEST);
            }
        };
        // An approval in the call's `_meta` (what MCP clients can send)
        // takes the place of one in the header.
        let begun = match &call.approval {
            Some(id) if begun.approval_id.as_deref() != Some(id) => {
                match begin_again(self.ctx, &self.raw_headers, Some(id.clone()), now).await {
                    Ok(b) => b,
                    Err(r) => {
                        let record = self.record_for(Some(&call));
                        return refusal_answer(
                            self.refuse(record, call.id.as_ref(), &call.operation(), r),
                            StatusCode::OK,
                        );
                    }
                }
            }
            _ => begun,
        };
        let snapshot = call.listing().map(|_| begun.state.clone());
        let (record, allowed) = match self.decide(&call, begun, now).await {
            Decided::Allowed(record, allowed) => (*record, allowed),
            refused_call => return refusal_answer(refused_call, StatusCode::OK),
        };
        let decision_id = record.decision_id.clone();
        let upstream = match self.forward(&call, &allowed).await {
            Ok(upstream) => upstream,
            Err(r) => return self.failed_after_allow(record, &call, r),
        };
        let status = upstream.status();
        if status == StatusCode::NOT_FOUND
            && let Some((id, _)) = &self.mcp
        {
            // The upstream ended its session: so does ours, and the agent
            // initializes again.
            self.ctx.mcp.close(id);
        }
        let is_sse = content_type(upstream.headers()).starts_with("text/event-stream");
        let secrets = scrub_list(self.service, &allowed);
        if is_sse && status.is_success() && call.mcp.method != "initialize" && call.listing().is_none() {
            return self.stream(upstream, call, allowed.cap, secrets, decision_id);
        }
        // Everything else is read whole (bounded), scrubbed, then answered.
        let upstream_session = upstream
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type_text = content_type(upstream.headers()).to_string();
        let body = match collect(upstream.into_body(), allowed.cap, self.service).await {
            Ok(body) => redact_all(&body, &secrets),
            Err(r) => return self.failed_after_allow(record, &call, r),
        };
        if call.is_notification() || body.is_empty() {
            let _ = audit_outcome(
                self.ctx,
                &decision_id,
                Some(status.as_u16()),
                0,
                None,
                self.started,
            );
            return empty(if status.is_success() {
                StatusCode::ACCEPTED
            } else {
                status
            });
        }
        let message = if content_type_text.starts_with("text/event-stream") {
            find_response(sse::messages(&body), call.id.as_ref())
        } else {
            serde_json::from_slice::<Value>(&body).ok()
        };
        let Some(mut message) = message else {
            let r = refused(
                Refusal::UpstreamUnavailable,
                format!(
                    "service {} answered {status} with no JSON-RPC response",
                    self.service.name
                ),
            );
            return self.failed_after_allow(record, &call, r);
        };
        let mut response_headers = Vec::new();
        if call.mcp.method == "initialize" && status.is_success() && message.get("result").is_some() {
            let version = message["result"]["protocolVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match self
                .ctx
                .mcp
                .open(&self.session, &self.service.name, upstream_session, version, now)
            {
                Ok(id) => response_headers.push((SESSION_HEADER, id)),
                Err(e) => {
                    return self.failed_after_allow(
                        record,
                        &call,
                        refused(Refusal::Unavailable, e.to_string()),
                    );
                }
            }
        }
        if let (Some(kind), Some(state)) = (call.listing(), snapshot) {
            self.filter_listing(kind, &mut message, state).await;
        }
        let text = message.to_string();
        let _ = audit_outcome(
            self.ctx,
            &decision_id,
            Some(status.as_u16()),
            text.len() as u64,
            None,
            self.started,
        );
        let mut response = json_response(status, &message, Some(&decision_id));
        for (name, value) in response_headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }

    /// A batch (revision 2025-03-26): each message decided on its own, the
    /// allowed ones forwarded one by one, the answers returned together.
    async fn batch(
        self,
        items: Vec<Value>,
        first: Begun,
        http_record: &mut DecisionRecord,
        now: u64,
    ) -> Response<ProxyBody> {
        let mut answers = Vec::new();
        let mut first = Some(first);
        let mut last_decision = http_record.decision_id.clone();
        for item in items {
            let call = match jsonrpc::classify(item) {
                Message::Call(call) => call,
                Message::Invalid { id, reason } => {
                    let record = self.record_for(None);
                    last_decision = record.decision_id.clone();
                    if let Decided::Refused(Some(answer)) = self.refuse(
                        record,
                        Some(&id),
                        "this message",
                        refused(Refusal::BadRequest, reason),
                    ) {
                        answers.push(answer);
                    }
                    continue;
                }
            };
            if call.mcp.method == "initialize" {
                let record = self.record_for(Some(&call));
                let r = refused(Refusal::BadRequest, "initialize must not be part of a batch");
                if let Decided::Refused(Some(answer)) = self.refuse(record, call.id.as_ref(), "initialize", r)
                {
                    answers.push(answer);
                }
                continue;
            }
            // Each message is a decision of its own: its own rate slot and
            // snapshot (the first reuses what admission read).
            let begun = match (first.take(), &call.approval) {
                (Some(b), None) => Ok(b),
                _ => begin_again(self.ctx, &self.raw_headers, call.approval.clone(), now).await,
            };
            let begun = match begun {
                Ok(b) => b,
                Err(r) => {
                    let record = self.record_for(Some(&call));
                    if let Decided::Refused(Some(answer)) =
                        self.refuse(record, call.id.as_ref(), &call.operation(), r)
                    {
                        answers.push(answer);
                    }
                    continue;
                }
            };
            let snapshot = call.listing().map(|_| begun.state.clone());
            let (record, allowed) = match self.decide(&call, begun, now).await {
                Decided::Allowed(record, allowed) => (*record, allowed),
                Decided::Refused(answer) => {
                    answers.extend(answer);
                    continue;
                }
            };
            last_decision = record.decision_id.clone();
            let decision_id = record.decision_id.clone();
            let outcome = async {
                let upstream = self.forward(&call, &allowed).await?;
                let status = upstream.status();
                let is_sse = content_type(upstream.headers()).starts_with("text/event-stream");
                let body = collect(upstream.into_body(), allowed.cap, self.service).await?;
                Ok::<_, Refused>((status, is_sse, body))
            }
            .await;
            let (status, is_sse, body) = match outcome {
                Ok(o) => o,
                Err(r) => {
                    if let Decided::Refused(Some(answer)) = self.failed_after_allow_decided(record, &call, r)
                    {
                        answers.push(answer);
                    }
                    continue;
                }
            };
            let body = redact_all(&body, &scrub_list(self.service, &allowed));
            let _ = audit_outcome(
                self.ctx,
                &decision_id,
                Some(status.as_u16()),
                body.len() as u64,
                None,
                self.started,
            );
            if call.is_notification() {
                continue;
            }
            let message = if is_sse {
                find_response(sse::messages(&body), call.id.as_ref())
            } else {
                serde_json::from_slice::<Value>(&body).ok()
            };
            match message {
                Some(mut message) => {
                    if let (Some(kind), Some(state)) = (call.listing(), snapshot) {
                        self.filter_listing(kind, &mut message, state).await;
                    }
                    answers.push(message);
                }
                None => {
                    let r = refused(
                        Refusal::UpstreamUnavailable,
                        format!(
                            "service {} answered {status} with no JSON-RPC response",
                            self.service.name
                        ),
                    );
                    let id = call.id.as_ref().unwrap_or(&Value::Null);
                    answers.push(jsonrpc::error_response(
                        id,
                        jsonrpc::code_for(r.refusal),
                        &call.operation(),
                        &r,
                        &decision_id,
                    ));
                }
            }
        }
        if answers.is_empty() {
            return empty(StatusCode::ACCEPTED);
        }
        json_response(StatusCode::OK, &Value::Array(answers), Some(&last_decision))
    }

    /// An allowed call that failed on its way (upstream down, too large):
    /// its outcome record, and the error for the agent.
    fn failed_after_allow_decided(&self, record: DecisionRecord, call: &Call, r: Refused) -> Decided {
        self.refuse(record, call.id.as_ref(), &call.operation(), r)
    }

    fn failed_after_allow(&self, record: DecisionRecord, call: &Call, r: Refused) -> Response<ProxyBody> {
        refusal_answer(self.failed_after_allow_decided(record, call, r), StatusCode::OK)
    }

    /// Send one allowed message upstream with its own token.
    async fn forward(&self, call: &Call, allowed: &Allowed) -> Result<Response<Incoming>, Refused> {
        let service = self.service;
        let mut builder = Request::builder()
            .method("POST")
            .uri(&service.upstream)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        let version = self
            .protocol_version
            .clone()
            .or_else(|| self.mcp.as_ref().map(|(_, s)| s.protocol_version.clone()));
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            builder = builder.header(VERSION_HEADER, v);
        }
        if let Some(upstream_id) = self.mcp.as_ref().and_then(|(_, s)| s.upstream_id.clone()) {
            builder = builder.header(SESSION_HEADER, upstream_id);
        }
        if let Some(h) = builder.headers_mut() {
            inject_credentials(h, service, &allowed.token.token);
        }
        let request = builder
            .body(Full::new(Bytes::from(call.raw.to_string())))
            .map_err(|e| refused(Refusal::BadRequest, format!("cannot forward this message: {e}")))?;
        let started = Instant::now();
        let sent = tokio::time::timeout(service.timeout, service.client.request(request))
            .instrument(tracing::info_span!("upstream", service = %service.name))
            .await;
        let response = match sent {
            Err(_) => Err(refused(
                Refusal::UpstreamTimeout,
                format!(
                    "service {} did not answer within {:?}",
                    service.name, service.timeout
                ),
            )),
            Ok(Err(e)) => Err(refused(
                Refusal::UpstreamUnavailable,
                format!("service {} is unreachable: {e}", service.name),
            )),
            Ok(Ok(r)) => Ok(r),
        };
        self.ctx.metrics.upstream(
            &service.name,
            response.as_ref().ok().map(|r| r.status().as_u16()),
            started.elapsed(),
        );
        response
    }

    /// Keep only the listed items the policy's `visible` says the agent may see.
    async fn filter_listing(&self, kind: Listing, message: &mut Value, state: crate::state::StateSnapshot) {
        let (field, key) = jsonrpc::listing_fields(kind);
        let Some(items) = message
            .get_mut("result")
            .and_then(|r| r.get_mut(field))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        let names: Vec<String> = items
            .iter()
            .map(|item| {
                item.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let visible = match self.ctx.registry.get(&self.session.role) {
            None => vec![false; names.len()],
            Some(policy) => {
                let principal = crate::policy::Principal {
                    agent: self.session.agent.clone(),
                    role: self.session.role.clone(),
                    session: self.session.id.clone(),
                    workflow: self.session.workflow.clone(),
                    on_behalf_of: self.session.on_behalf_of.clone(),
                    intent: self.session.intent.clone(),
                };
                let answer = policy
                    .module
                    .clone()
                    .visible_async(
                        principal,
                        self.service.name.clone(),
                        kind,
                        names.clone(),
                        Arc::new(state),
                        policy.binding.limits,
                    )
                    .instrument(tracing::info_span!("visible"))
                    .await;
                if let Some(f) = &answer.failure {
                    tracing::warn!(role = %self.session.role, failure = %f, "visible failed: the listing shows nothing");
                }
                answer.visible
            }
        };
        let mut keep = visible.into_iter();
        items.retain(|item| {
            let named = item
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            keep.next().unwrap_or(false) && named
        });
    }

    /// Relay a `text/event-stream` answer event by event: each event is read
    /// whole (so a secret split across chunks is still one occurrence),
    /// scrubbed, counted against the cap, and sent. At the cap the stream
    /// ends cleanly with a JSON-RPC error event for the call.
    fn stream(
        self,
        upstream: Response<Incoming>,
        call: Call,
        cap: usize,
        secrets: Vec<Vec<u8>>,
        decision_id: String,
    ) -> Response<ProxyBody> {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let ctx = self.ctx.clone();
        let started = self.started;
        let deadline = tokio::time::Instant::now() + self.service.timeout;
        let service_name = self.service.name.clone();
        let id = call.id.clone().unwrap_or(Value::Null);
        let operation = call.operation();
        let decision = decision_id.clone();
        tokio::spawn(async move {
            let mut body = upstream.into_body();
            let mut splitter = sse::EventSplitter::default();
            let mut sent = 0usize;
            let mut error: Option<(Refusal, String)> = None;
            'relay: loop {
                let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                    Err(_) => {
                        error = Some((
                            Refusal::UpstreamTimeout,
                            format!("service {service_name} did not finish its stream in time"),
                        ));
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        error = Some((
                            Refusal::UpstreamUnavailable,
                            format!("reading the stream of {service_name} failed: {e}"),
                        ));
                        break;
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                let Ok(chunk) = frame.into_data() else { continue };
                let mut events = splitter.push(&chunk);
                if splitter.pending() > cap {
                    error = Some((
                        Refusal::ResponseTooLarge,
                        format!("the response is over the {cap}-byte cap"),
                    ));
                    break;
                }
                for event in events.drain(..) {
                    let clean = redact_all(&event, &secrets);
                    if sent + clean.len() > cap {
                        error = Some((
                            Refusal::ResponseTooLarge,
                            format!("the response is over the {cap}-byte cap; the rest was dropped"),
                        ));
                        break 'relay;
                    }
                    sent += clean.len();
                    if tx.send(Bytes::from(clean)).await.is_err() {
                        error = Some((Refusal::UpstreamUnavailable, "the agent closed the stream".into()));
                        break 'relay;
                    }
                }
            }
            if error.is_none()
                && let Some(rest) = splitter.finish()
            {
                let clean = redact_all(&rest, &secrets);
                if sent + clean.len() <= cap {
                    sent += clean.len();
                    let _ = tx.send(Bytes::from(clean)).await;
                }
            }
            let code = error.as_ref().map(|(r, _)| r.code().to_string());
            if let Some((refusal, reason)) = &error {
                let r = refused(*refusal, reason.clone());
                let answer =
                    jsonrpc::error_response(&id, jsonrpc::code_for(*refusal), &operation, &r, &decision);
                let _ = tx.send(sse::event(&answer.to_string())).await;
            }
            let _ = audit_outcome(&ctx, &decision, Some(200), sent as u64, code, started);
        });
        let mut response = Response::new(BodyExt::boxed(sse::ChannelBody::new(rx)));
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("text/event-stream"));
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&decision_id) {
            headers.insert("x-airlock-decision", v);
        }
        response
    }
}

/// The answer to a single refused message: its JSON-RPC error (HTTP 200 for
/// a decided call, so MCP clients hand it to the model), or 202 for a
/// notification, which gets no answer.
fn refusal_answer(decided: Decided, status: StatusCode) -> Response<ProxyBody> {
    match decided {
        Decided::Refused(Some(error)) => {
            let decision = error["error"]["data"]["decision_id"].as_str().map(str::to_string);
            json_response(status, &error, decision.as_deref())
        }
        _ => empty(StatusCode::ACCEPTED),
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The JSON-RPC response for `id` among the messages of a stream.
fn find_response(messages: Vec<Value>, id: Option<&Value>) -> Option<Value> {
    messages
        .into_iter()
        .find(|m| (m.get("result").is_some() || m.get("error").is_some()) && m.get("id") == id)
}

/// Read a whole upstream body, at most `cap` bytes, within the service's timeout.
async fn collect(body: Incoming, cap: usize, service: &Service) -> Result<Bytes, Refused> {
    let read = Limited::new(body, cap).collect();
    match tokio::time::timeout(service.timeout, read).await {
        Err(_) => Err(refused(
            Refusal::UpstreamTimeout,
            format!(
                "service {} did not finish its answer within {:?}",
                service.name, service.timeout
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(refused(
            Refusal::ResponseTooLarge,
            format!("the upstream response is over the {cap}-byte cap"),
        )),
        Ok(Err(e)) => Err(refused(
            Refusal::UpstreamUnavailable,
            format!("reading the response failed: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Put the minted token and the proxy-held secret where the service wants them.
fn inject_credentials(headers: &mut HeaderMap, service: &Service, token: &str) {
    if service.injects_jwt()
        && let (Some(name), Ok(value)) = (
            header_name(&service.auth.jwt_header),
            HeaderValue::from_str(&format!("Bearer {token}")),
        )
    {
        headers.insert(name, value);
    }
    if let (Some(secret), Some(name)) = (
        &service.secret,
        service.auth.secret_header.as_deref().and_then(header_name),
    ) && let Ok(mut value) = HeaderValue::from_str(&format!("{}{}", service.auth.secret_prefix, secret.0))
    {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
}

/// What must not reach the agent: the token and the secret, raw and as a
/// JSON string would escape them (an upstream echoing them in JSON).
fn scrub_list(service: &Service, allowed: &Allowed) -> Vec<Vec<u8>> {
    let mut list = Vec::new();
    for secret in secrets_of(service, &allowed.token) {
        list.push(secret.to_vec());
        let escaped = Value::String(String::from_utf8_lossy(secret).into_owned()).to_string();
        let escaped = escaped.as_bytes();
        let inner = &escaped[1..escaped.len() - 1];
        if inner != secret {
            list.push(inner.to_vec());
        }
    }
    list
}

fn redact_all(body: &[u8], secrets: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
    redact(body, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_response_to_a_call_is_found_among_notifications() {
        let messages = vec![
            json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}),
            json!({"jsonrpc": "2.0", "id": 2, "result": {"other": true}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"ok": true}}),
        ];
        let found = find_response(messages, Some(&json!(1))).expect("found");
        assert_eq!(found["result"]["ok"], json!(true));
    }
}

//! End to end: a real code host, a fake Airlock (JWKS and introspection,
//! single use per `jti`) on a tiny hyper server, keys generated per test and
//! tokens minted with jsonwebtoken.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{CodeHost, CodeHostConfig, request_binding};

const INTROSPECTION_TOKEN: &str = "test-introspection-token";
const REPO: &str = "/repos/acme/shop";

struct Key {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    kid: String,
}

fn es256_key(kid: &str) -> Key {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!((point.len(), point[0]), (65, 4));
    Key {
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            "kid": kid, "alg": "ES256", "use": "sig",
        }),
        kid: kid.to_owned(),
    }
}

fn ed25519_key(kid: &str) -> Key {
    let pair = Ed25519KeyPair::generate().unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    Key {
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(der.as_ref()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            "kid": kid, "alg": "EdDSA", "use": "sig",
        }),
        kid: kid.to_owned(),
    }
}

/// Airlock's JWKS and introspection endpoints, faked: a token is active on
/// its first introspection only.
#[derive(Clone, Default)]
struct FakeAirlock {
    keys: Arc<Mutex<Vec<Value>>>,
    used: Arc<Mutex<HashSet<String>>>,
    jwks_fetches: Arc<AtomicUsize>,
    introspections: Arc<AtomicUsize>,
}

impl FakeAirlock {
    async fn spawn(keys: Vec<Value>) -> (FakeAirlock, SocketAddr) {
        let airlock = FakeAirlock {
            keys: Arc::new(Mutex::new(keys)),
            ..FakeAirlock::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = airlock.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let airlock = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let airlock = airlock.clone();
                        async move { Ok::<_, Infallible>(airlock.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (airlock, addr)
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: u16, body: Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        match (request.method().clone(), request.uri().path()) {
            (Method::GET, "/.well-known/jwks.json") => {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                reply(200, json!({ "keys": *self.keys.lock().unwrap() }))
            }
            (Method::POST, "/v1/introspect") => {
                let bearer = format!("Bearer {INTROSPECTION_TOKEN}");
                let authorized = request
                    .headers()
                    .get(AUTHORIZATION)
                    .is_some_and(|v| v == bearer.as_str());
                let form = request
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = request.into_body().collect().await.unwrap().to_bytes();
                if !authorized || form.as_deref() != Some("application/x-www-form-urlencoded") {
                    return reply(401, json!({ "error": "unauthorized" }));
                }
                self.introspections.fetch_add(1, Ordering::SeqCst);
                let body = String::from_utf8(body.to_vec()).unwrap();
                let token = body.strip_prefix("token=").unwrap();
                let payload = token.split('.').nth(1).unwrap();
                let claims: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
                let jti = claims["jti"].as_str().unwrap().to_owned();
                if self.used.lock().unwrap().insert(jti) {
                    let mut answer = claims;
                    answer["active"] = json!(true);
                    reply(200, answer)
                } else {
                    reply(200, json!({ "active": false }))
                }
            }
            _ => reply(404, json!({ "error": "not_found" })),
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn split(path_and_query: &str) -> (&str, &str) {
    path_and_query.split_once('?').unwrap_or((path_and_query, ""))
}

fn binding(method: &str, path_and_query: &str, body: &str) -> String {
    let (path, query) = split(path_and_query);
    let pairs = crate::auth::parse_query(query).unwrap();
    request_binding(method, path, &pairs, body.as_bytes())
}

struct Fixture {
    airlock: FakeAirlock,
    airlock_addr: SocketAddr,
    host: CodeHost,
    key: Key,
    ed_key: Key,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Fixture {
    async fn new() -> Fixture {
        let key = es256_key("es-1");
        let ed_key = ed25519_key("ed-1");
        let (airlock, airlock_addr) = FakeAirlock::spawn(vec![key.jwk.clone(), ed_key.jwk.clone()]).await;
        let host = Self::host(airlock_addr, &format!("http://{airlock_addr}/v1/introspect")).await;
        Fixture {
            airlock,
            airlock_addr,
            host,
            key,
            ed_key,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn host(airlock: SocketAddr, introspect_url: &str) -> CodeHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        CodeHost::spawn(
            listener,
            CodeHostConfig {
                issuer: "airlock".into(),
                audience: "code".into(),
                jwks_url: format!("http://{airlock}/.well-known/jwks.json"),
                introspect_url: introspect_url.into(),
                introspection_token: INTROSPECTION_TOKEN.into(),
            },
        )
    }

    /// The claims Airlock would mint for this request.
    fn claims(&self, method: &str, path_and_query: &str, body: &str, scope: &str) -> Value {
        static JTI: AtomicU64 = AtomicU64::new(1);
        let now = now();
        json!({
            "iss": "airlock", "sub": "agent-7", "aud": "code",
            "iat": now, "nbf": now, "exp": now + 60,
            "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
            "scope": scope, "act": {"sub": "agent-7"}, "role": "developer",
            "req": binding(method, path_and_query, body), "single_use": true,
        })
    }

    fn sign(key: &Key, claims: &Value) -> String {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        encode(&header, claims, &key.encoding).unwrap()
    }

    fn mint(&self, method: &str, path_and_query: &str, body: &str, scope: &str) -> String {
        Self::sign(&self.key, &self.claims(method, path_and_query, body, scope))
    }

    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.host.local_addr()));
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// With a valid token for exactly this request; the operation's scope.
    async fn call(&self, method: &str, path_and_query: &str, body: &str, scope: &str) -> (u16, Value) {
        let token = self.mint(method, path_and_query, body, scope);
        self.send(method, path_and_query, body, Some(&format!("Bearer {token}")))
            .await
    }
}

fn task_body() -> String {
    json!({
        "key": "task-1042", "title": "Fix #1042", "bug": 1042, "scope": "src/auth/",
        "body": "Sessions must end on password reset.",
    })
    .to_string()
}

#[tokio::test]
async fn a_valid_token_performs_the_action() {
    let f = Fixture::new().await;
    let list = format!("{REPO}/issues?labels=bug,priority:high&state=open");
    let (status, issues) = f.call("GET", &list, "", "issues:list").await;
    assert_eq!(status, 200, "{issues}");
    let numbers: Vec<u64> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1042, 1043]);
    assert_eq!(issues[0]["title"], "Sessions never expire after a password reset");

    let (status, all) = f
        .call("GET", &format!("{REPO}/issues?state=all"), "", "issues:list")
        .await;
    assert_eq!((status, all.as_array().unwrap().len()), (200, 5));
    let (status, bugs) = f
        .call("GET", &format!("{REPO}/issues?labels=bug"), "", "issues:list")
        .await;
    assert_eq!((status, bugs.as_array().unwrap().len()), (200, 3), "open bugs");

    let body = task_body();
    let (status, task) = f
        .call(
            "POST",
            &format!("{REPO}/tasks"),
            &body,
            "tasks:create issues:read",
        )
        .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["author"], "agent-7");
    assert_eq!(f.host.tasks(), ["task-1042"]);
    let (status, task) = f
        .call("GET", &format!("{REPO}/tasks/task-1042"), "", "tasks:read")
        .await;
    assert_eq!(
        (status, &task["bug"], &task["scope"]),
        (200, &json!(1042), &json!("src/auth/"))
    );

    let (status, file) = f
        .call(
            "GET",
            &format!("{REPO}/contents/src/auth/session.py?ref=main"),
            "",
            "contents:read",
        )
        .await;
    assert_eq!(status, 200, "{file}");
    let content = f.host.file("main", "src/auth/session.py").unwrap();
    assert_eq!(file["content"], content.as_str());
    assert_eq!(file["sha"], hex::encode(Sha256::digest(content.as_bytes())));
    assert_eq!(
        (&file["path"], &file["ref"]),
        (&json!("src/auth/session.py"), &json!("main"))
    );

    let (status, hits) = f
        .call(
            "GET",
            &format!("{REPO}/search?q=password_changed_at&path=src/"),
            "",
            "code:search",
        )
        .await;
    assert_eq!(status, 200, "{hits}");
    let paths: HashSet<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, HashSet::from(["src/auth/session.py", "src/auth/login.py"]));
    // A search is scoped like a read: only files under `path`, which is required.
    let (status, hits) = f
        .call(
            "GET",
            &format!("{REPO}/search?q=%3D&path=src/auth/"),
            "",
            "code:search",
        )
        .await;
    assert_eq!(status, 200, "{hits}");
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .all(|h| h["path"].as_str().unwrap().starts_with("src/auth/")),
        "{hits}"
    );
    let (status, _) = f
        .call("GET", &format!("{REPO}/search?q=password"), "", "code:search")
        .await;
    assert_eq!(status, 400, "a search without a directory");
    assert!(hits[0]["line"].as_u64().unwrap() > 0 && hits[0]["text"].is_string());

    // EdDSA tokens are as good.
    let claims = f.claims("GET", &format!("{REPO}/issues/1042"), "", "issues:read");
    let token = Fixture::sign(&f.ed_key, &claims);
    let (status, issue) = f
        .send(
            "GET",
            &format!("{REPO}/issues/1042"),
            "",
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(
        (status, &issue["labels"]),
        (200, &json!(["bug", "priority:high"]))
    );
}

#[tokio::test]
async fn refused_tokens_change_nothing() {
    let f = Fixture::new().await;
    let path = format!("{REPO}/tasks");
    let body = task_body();
    let good = || f.claims("POST", &path, &body, "tasks:create");
    let with = |name: &str, value: Value| {
        let mut claims = good();
        claims[name] = value;
        Fixture::sign(&f.key, &claims)
    };
    let forged = Fixture::sign(&es256_key(&f.key.kid), &good());
    let alg_confusion = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(f.key.kid.clone());
        encode(&header, &good(), &EncodingKey::from_secret(b"secret")).unwrap()
    };
    let wrong_key_type = {
        // An ES256 signature presented under the Ed25519 key's kid.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(f.ed_key.kid.clone());
        encode(&header, &good(), &f.key.encoding).unwrap()
    };
    let no_kid = encode(&Header::new(Algorithm::ES256), &good(), &f.key.encoding).unwrap();
    let mut unsigned = forged.rsplit_once('.').unwrap().0.to_owned();
    unsigned.push('.');
    let other_body = task_body().replace("task-1042", "task-1043");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "wrong audience",
            with("aud", json!("issues")),
            401,
            "invalid_token",
        ),
        (
            "wrong issuer",
            with("iss", json!("mallory")),
            401,
            "invalid_token",
        ),
        ("expired", with("exp", json!(now() - 120)), 401, "invalid_token"),
        (
            "not yet valid",
            with("nbf", json!(now() + 600)),
            401,
            "invalid_token",
        ),
        ("no sub", with("sub", json!("")), 401, "invalid_token"),
        ("bad signature", forged, 401, "invalid_token"),
        ("no signature", unsigned, 401, "invalid_token"),
        ("HS256", alg_confusion, 401, "invalid_token"),
        ("key of another type", wrong_key_type, 401, "invalid_token"),
        ("no kid", no_kid, 401, "invalid_token"),
        ("not a JWT", "not-a-jwt".into(), 401, "invalid_token"),
        (
            "missing scope",
            with("scope", json!("tasks:read tasks:comment")),
            403,
            "insufficient_scope",
        ),
        (
            "scope prefix only",
            with("scope", json!("tasks:create2")),
            403,
            "insufficient_scope",
        ),
        ("no scope", with("scope", Value::Null), 403, "insufficient_scope"),
        (
            "another path",
            with("req", json!(binding("POST", &format!("{REPO}/tasks/x"), &body))),
            403,
            "binding_mismatch",
        ),
        (
            "another body",
            with("req", json!(binding("POST", &path, &other_body))),
            403,
            "binding_mismatch",
        ),
        (
            "another method",
            with("req", json!(binding("PUT", &path, &body))),
            403,
            "binding_mismatch",
        ),
        ("no binding", with("req", Value::Null), 403, "binding_mismatch"),
    ];
    for (what, token, status, code) in &cases {
        let (got, answer) = f
            .send("POST", &path, &body, Some(&format!("Bearer {token}")))
            .await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (*status, Some(*code)),
            "{what}: {answer}"
        );
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()), "{what}");
    }
    // A token minted for another body, replayed with it: still its own request only.
    let token = f.mint("POST", &path, &other_body, "tasks:create");
    let (got, answer) = f
        .send("POST", &path, &body, Some(&format!("Bearer {token}")))
        .await;
    assert_eq!((got, &answer["error"]), (403, &json!("binding_mismatch")));

    assert!(f.host.tasks().is_empty(), "nothing changed");
    assert_eq!(
        f.airlock.introspections.load(Ordering::SeqCst),
        0,
        "refused before introspection"
    );
    let received = f.host.received();
    assert_eq!(received.len(), cases.len() + 1);
    assert!(
        received
            .iter()
            .all(|r| r.error.is_some() && r.operation.as_deref() == Some("tasks.create"))
    );
    // Verified tokens name their agent even when refused later.
    let missing_scope = &received[11];
    assert_eq!(
        (missing_scope.agent.as_deref(), missing_scope.status),
        (Some("agent-7"), 403)
    );
    assert!(missing_scope.jti.is_some());
    assert_eq!(received[0].agent, None, "wrong audience: not verified");

    // And a good token still works: nothing was consumed.
    let (status, answer) = f.call("POST", &path, &body, "tasks:create").await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(f.host.tasks(), ["task-1042"]);
}

#[tokio::test]
async fn requests_without_a_bearer_token_are_401() {
    let f = Fixture::new().await;
    let path = format!("{REPO}/issues/1042");
    for authorization in [None, Some("Basic YWRtaW46YWRtaW4="), Some("Bearer ")] {
        let (status, answer) = f.send("GET", &path, "", authorization).await;
        assert_eq!(
            (status, &answer["error"]),
            (401, &json!("missing_token")),
            "{authorization:?}"
        );
    }
    // Checked before the route: an unknown one is still 401 without a token.
    let (status, answer) = f.send("GET", "/nowhere", "", None).await;
    assert_eq!((status, &answer["error"]), (401, &json!("missing_token")));
    assert!(
        f.host
            .received()
            .iter()
            .all(|r| r.agent.is_none() && r.status == 401)
    );
}

#[tokio::test]
async fn a_replayed_token_is_refused_by_introspection() {
    let f = Fixture::new().await;
    let (status, _) = f
        .call("POST", &format!("{REPO}/tasks"), &task_body(), "tasks:create")
        .await;
    assert_eq!(status, 201);

    let path = format!("{REPO}/tasks/task-1042/comments");
    let body =
        json!({ "kind": "plan", "body": "Check password_changed_at.", "files": ["src/auth/session.py"] })
            .to_string();
    let token = f.mint("POST", &path, &body, "tasks:comment");
    let authorization = format!("Bearer {token}");
    let (status, comment) = f.send("POST", &path, &body, Some(&authorization)).await;
    assert_eq!(status, 201, "{comment}");
    assert_eq!(comment["files"], json!(["src/auth/session.py"]));

    let (status, answer) = f.send("POST", &path, &body, Some(&authorization)).await;
    assert_eq!(
        (status, &answer["error"]),
        (401, &json!("token_inactive")),
        "{answer}"
    );
    // Replaying what the host recorded is no better.
    let recorded = f.host.received()[1].authorization.clone().unwrap();
    assert_eq!(recorded, authorization);
    let (status, _) = f.send("POST", &path, &body, Some(&recorded)).await;
    assert_eq!(status, 401);

    let comments = f.host.task_comments("task-1042");
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(
        (&comments[0]["kind"], &comments[0]["author"]),
        (&json!("plan"), &json!("agent-7"))
    );
    assert_eq!(f.airlock.introspections.load(Ordering::SeqCst), 4);
    let (status, task) = f
        .call("GET", &format!("{REPO}/tasks/task-1042"), "", "tasks:read")
        .await;
    assert_eq!((status, task["comments"].as_array().unwrap().len()), (200, 1));
}

#[tokio::test]
async fn every_request_is_recorded() {
    let f = Fixture::new().await;
    let list = format!("{REPO}/issues?state=open&labels=bug");
    f.call("GET", &list, "", "issues:list").await;
    f.send("GET", &list, "", None).await;
    f.call("GET", &format!("{REPO}/issues/9"), "", "issues:read")
        .await;
    f.call("GET", "/repos/acme/shop/nope", "", "issues:read").await;
    f.call("GET", "/repos/other/repo/issues", "", "issues:list").await;
    f.call("GET", &format!("{REPO}/issues/1042"), "", "issues:list")
        .await;

    let received = f.host.received();
    type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, u16, Option<&'a str>);
    let summary: Vec<Row<'_>> = received
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.query.as_str(),
                r.operation.as_deref(),
                r.status,
                r.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "GET",
                "/repos/acme/shop/issues",
                "state=open&labels=bug",
                Some("issues.list"),
                200,
                None
            ),
            (
                "GET",
                "/repos/acme/shop/issues",
                "state=open&labels=bug",
                Some("issues.list"),
                401,
                Some("missing_token")
            ),
            (
                "GET",
                "/repos/acme/shop/issues/9",
                "",
                Some("issues.read"),
                404,
                Some("not_found")
            ),
            ("GET", "/repos/acme/shop/nope", "", None, 404, Some("not_found")),
            (
                "GET",
                "/repos/other/repo/issues",
                "",
                Some("issues.list"),
                404,
                Some("not_found")
            ),
            (
                "GET",
                "/repos/acme/shop/issues/1042",
                "",
                Some("issues.read"),
                403,
                Some("insufficient_scope")
            ),
        ]
    );
    let jtis: HashSet<&str> = received.iter().filter_map(|r| r.jti.as_deref()).collect();
    assert_eq!(jtis.len(), 5);
    assert_eq!(received[0].agent.as_deref(), Some("agent-7"));
    assert!(
        received[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer ey"))
    );
    assert_eq!(received[1].authorization, None);

    // The unauthenticated demo view: the same log, without the tokens.
    let (status, log) = f.send("GET", "/_demo/received", "", None).await;
    assert_eq!(status, 200);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), received.len());
    assert!(log.iter().all(|r| r.get("authorization").is_none()));
    assert_eq!(log[0]["operation"], "issues.list");
    assert_eq!(log[0]["jti"], received[0].jti.as_deref().unwrap());
    assert_eq!(
        f.host.received().len(),
        received.len(),
        "the demo view is not recorded"
    );
    let parsed: Vec<crate::Received> = serde_json::from_value(Value::Array(log.clone())).unwrap();
    assert_eq!(parsed[5].error.as_deref(), Some("insufficient_scope"));
}

#[tokio::test]
async fn writes_need_the_current_sha() {
    let f = Fixture::new().await;
    let branches = format!("{REPO}/branches");
    let branch = json!({ "name": "fix-1042", "from": "main" }).to_string();
    let (status, _) = f.call("POST", &branches, &branch, "branches:create").await;
    assert_eq!(status, 201);
    let (status, answer) = f.call("POST", &branches, &branch, "branches:create").await;
    assert_eq!((status, &answer["error"]), (409, &json!("branch_exists")));
    let from_nowhere = json!({ "name": "fix-9", "from": "nowhere" }).to_string();
    let (status, _) = f.call("POST", &branches, &from_nowhere, "branches:create").await;
    assert_eq!(status, 404);

    let path = format!("{REPO}/contents/src/auth/session.py");
    let original = f.host.file("main", "src/auth/session.py").unwrap();
    let fixed = original.replace(
        "    return now - session.created_at < SESSION_LIFETIME\n",
        "    if user.password_changed_at and session.created_at < user.password_changed_at:\n        return False\n    return now - session.created_at < SESSION_LIFETIME\n",
    );
    assert_ne!(fixed, original);
    let write = |sha: Option<&str>| {
        let mut body =
            json!({ "branch": "fix-1042", "content": fixed, "message": "End sessions on password reset" });
        if let Some(sha) = sha {
            body["sha"] = json!(sha);
        }
        body.to_string()
    };

    let (status, answer) = f.call("PUT", &path, &write(None), "contents:write").await;
    assert_eq!(
        (status, &answer["error"]),
        (409, &json!("sha_required")),
        "{answer}"
    );
    let (status, answer) = f
        .call("PUT", &path, &write(Some(&"0".repeat(64))), "contents:write")
        .await;
    assert_eq!((status, &answer["error"]), (409, &json!("sha_mismatch")));
    assert_eq!(
        f.host.file("fix-1042", "src/auth/session.py").as_deref(),
        Some(original.as_str())
    );

    let (status, current) = f
        .call("GET", &format!("{path}?ref=fix-1042"), "", "contents:read")
        .await;
    assert_eq!(status, 200);
    let sha = current["sha"].as_str().unwrap();
    let (status, answer) = f.call("PUT", &path, &write(Some(sha)), "contents:write").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sha"], hex::encode(Sha256::digest(fixed.as_bytes())));
    assert_eq!(
        f.host.file("fix-1042", "src/auth/session.py").as_deref(),
        Some(fixed.as_str())
    );
    assert_eq!(
        f.host.file("main", "src/auth/session.py").as_deref(),
        Some(original.as_str())
    );

    // A new file needs no sha, and may not claim one.
    let test_path = format!("{REPO}/contents/tests/test_session_reset.py");
    let new =
        json!({ "branch": "fix-1042", "content": "def test_x():\n    pass\n", "message": "Add a test" });
    let (status, answer) = f
        .call("PUT", &test_path, &new.to_string(), "contents:write")
        .await;
    assert_eq!((status, &answer["created"]), (201, &json!(true)), "{answer}");
    let (status, answer) = f
        .call("PUT", &test_path, &new.to_string(), "contents:write")
        .await;
    assert_eq!((status, &answer["error"]), (409, &json!("sha_required")));
    let mut claims_sha = new.clone();
    claims_sha["sha"] = json!("0".repeat(64));
    let other = format!("{REPO}/contents/tests/other.py");
    let (status, _) = f
        .call("PUT", &other, &claims_sha.to_string(), "contents:write")
        .await;
    assert_eq!(status, 409);

    let mut elsewhere = new.clone();
    elsewhere["branch"] = json!("nowhere");
    let (status, answer) = f
        .call("PUT", &other, &elsewhere.to_string(), "contents:write")
        .await;
    assert_eq!((status, &answer["error"]), (404, &json!("branch_not_found")));
    let (status, _) = f.call("PUT", &other, "not json", "contents:write").await;
    assert_eq!(status, 400);
    assert_eq!(f.host.file("fix-1042", "tests/other.py"), None);
}

#[tokio::test]
async fn a_merge_copies_the_head_to_main() {
    let f = Fixture::new().await;
    let branch = json!({ "name": "fix-1042", "from": "main" }).to_string();
    assert_eq!(
        f.call("POST", &format!("{REPO}/branches"), &branch, "branches:create")
            .await
            .0,
        201
    );
    let original = f.host.file("main", "src/auth/session.py").unwrap();
    let fixed = format!("{original}\n# sessions end on password reset\n");
    let write = json!({
        "branch": "fix-1042", "content": fixed, "message": "fix",
        "sha": hex::encode(Sha256::digest(original.as_bytes())),
    });
    let contents = format!("{REPO}/contents/src/auth/session.py");
    assert_eq!(
        f.call("PUT", &contents, &write.to_string(), "contents:write")
            .await
            .0,
        200
    );
    let new_test =
        json!({ "branch": "fix-1042", "content": "def test_reset():\n    pass\n", "message": "test" });
    let test_path = format!("{REPO}/contents/tests/test_session_reset.py");
    assert_eq!(
        f.call("PUT", &test_path, &new_test.to_string(), "contents:write")
            .await
            .0,
        201
    );

    let merge = format!("{REPO}/pulls/fix-1042/merge");
    let (status, answer) = f.call("PUT", &merge, "{}", "pulls:merge").await;
    assert_eq!(
        (status, &answer["error"]),
        (404, &json!("not_found")),
        "no PR yet"
    );

    let pull = json!({ "title": "Fix #1042", "head": "fix-1042", "base": "main", "body": "Fixes #1042" });
    let (status, created) = f
        .call(
            "POST",
            &format!("{REPO}/pulls"),
            &pull.to_string(),
            "pulls:create",
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, again) = f
        .call(
            "POST",
            &format!("{REPO}/pulls"),
            &pull.to_string(),
            "pulls:create",
        )
        .await;
    assert_eq!((status, &again["error"]), (409, &json!("pull_exists")));

    let (status, read) = f
        .call("GET", &format!("{REPO}/pulls/fix-1042"), "", "pulls:read")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        read["files"],
        json!([
            { "path": "src/auth/session.py", "status": "modified", "sha": hex::encode(Sha256::digest(fixed.as_bytes())) },
            { "path": "tests/test_session_reset.py", "status": "added", "sha": hex::encode(Sha256::digest(b"def test_reset():\n    pass\n")) },
        ])
    );
    let diff = read["diff"].as_str().unwrap();
    assert!(diff.contains("+++ b/src/auth/session.py\n"), "{diff}");
    assert!(diff.contains("+# sessions end on password reset\n"), "{diff}");
    assert!(
        diff.contains("--- /dev/null\n+++ b/tests/test_session_reset.py\n"),
        "{diff}"
    );
    assert_eq!(
        (read["state"].as_str(), read["commits"].as_array().unwrap().len()),
        (Some("open"), 2)
    );

    let review = json!({ "event": "APPROVE", "body": "LGTM" }).to_string();
    let reviews = format!("{REPO}/pulls/fix-1042/reviews");
    assert_eq!(f.call("POST", &reviews, &review, "pulls:review").await.0, 201);
    let bad_review = json!({ "event": "SHIP_IT", "body": "" }).to_string();
    assert_eq!(f.call("POST", &reviews, &bad_review, "pulls:review").await.0, 400);
    let comment = json!({ "body": "Tested the reset flow." }).to_string();
    assert_eq!(
        f.call(
            "POST",
            &format!("{REPO}/pulls/fix-1042/comments"),
            &comment,
            "pulls:comment"
        )
        .await
        .0,
        201
    );

    assert!(!f.host.pull_merged("fix-1042"));
    let (status, merged) = f.call("PUT", &merge, "", "pulls:merge").await;
    assert_eq!(status, 200, "{merged}");
    assert!(f.host.pull_merged("fix-1042"));
    assert_eq!(
        f.host.file("main", "src/auth/session.py").as_deref(),
        Some(fixed.as_str())
    );
    assert!(f.host.file("main", "tests/test_session_reset.py").is_some());
    assert!(
        f.host.file("main", "config/production.env").is_some(),
        "main keeps its other files"
    );

    let (status, answer) = f.call("PUT", &merge, "{}", "pulls:merge").await;
    assert_eq!((status, &answer["error"]), (409, &json!("pull_not_open")));
    let (status, answer) = f.call("POST", &reviews, &review, "pulls:review").await;
    assert_eq!((status, &answer["error"]), (409, &json!("pull_not_open")));
    // The merged PR still shows what it changed.
    let (_, read) = f
        .call("GET", &format!("{REPO}/pulls/fix-1042"), "", "pulls:read")
        .await;
    assert_eq!(
        (read["state"].as_str(), read["files"].as_array().unwrap().len()),
        (Some("merged"), 2)
    );
    assert_eq!(
        (
            read["reviews"][0]["event"].as_str(),
            read["comments"].as_array().unwrap().len()
        ),
        (Some("APPROVE"), 1)
    );
}

#[tokio::test]
async fn unreachable_introspection_is_503_and_changes_nothing() {
    let f = Fixture::new().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let host = Fixture::host(f.airlock_addr, &format!("http://{closed_addr}/v1/introspect")).await;
    let path = format!("{REPO}/tasks");
    let body = task_body();
    let token = f.mint("POST", &path, &body, "tasks:create");
    let f = Fixture { host, ..f };
    let (status, answer) = f
        .send("POST", &path, &body, Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(
        (status, &answer["error"]),
        (503, &json!("introspection_unavailable")),
        "{answer}"
    );
    assert!(f.host.tasks().is_empty());
}

#[tokio::test]
async fn unknown_keys_are_fetched_again_at_most_once_a_second() {
    let f = Fixture::new().await;
    let path = format!("{REPO}/issues/1042");
    let (status, _) = f.call("GET", &path, "", "issues:read").await;
    assert_eq!(status, 200);
    assert_eq!(
        f.airlock.jwks_fetches.load(Ordering::SeqCst),
        1,
        "fetched lazily, once"
    );
    f.call("GET", &path, "", "issues:read").await;
    assert_eq!(f.airlock.jwks_fetches.load(Ordering::SeqCst), 1, "cached");

    // Airlock rotates to a new key.
    let rotated = es256_key("es-2");
    f.airlock.keys.lock().unwrap().push(rotated.jwk.clone());
    let tokens: Vec<String> = (0..3)
        .map(|_| Fixture::sign(&rotated, &f.claims("GET", &path, "", "issues:read")))
        .collect();
    // Within a second of the first fetch: not fetched again.
    let (status, answer) = f
        .send("GET", &path, "", Some(&format!("Bearer {}", tokens[0])))
        .await;
    if f.airlock.jwks_fetches.load(Ordering::SeqCst) == 1 {
        assert_eq!(
            (status, &answer["error"]),
            (401, &json!("invalid_token")),
            "{answer}"
        );
        assert!(answer["reason"].as_str().unwrap().contains("unknown key"));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = f
        .send("GET", &path, "", Some(&format!("Bearer {}", tokens[1])))
        .await;
    assert_eq!(status, 200, "{answer}");
    let fetches = f.airlock.jwks_fetches.load(Ordering::SeqCst);
    assert!(fetches <= 2, "{fetches}");
    // Unknown kids in a burst fetch at most once.
    let stranger = es256_key("es-unknown");
    for _ in 0..5 {
        let token = Fixture::sign(&stranger, &f.claims("GET", &path, "", "issues:read"));
        let (status, _) = f.send("GET", &path, "", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401);
    }
    assert!(f.airlock.jwks_fetches.load(Ordering::SeqCst) <= fetches + 1);
}

#[tokio::test]
async fn queries_are_bound_canonically() {
    let f = Fixture::new().await;
    let minted_for = format!("{REPO}/issues?state=open&labels=bug,priority:high");
    let token = f.mint("GET", &minted_for, "", "issues:list");
    // The same pairs, encoded and ordered differently.
    let sent = format!("{REPO}/issues?labels=bug%2Cpriority%3Ahigh&state=open");
    let (status, issues) = f.send("GET", &sent, "", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, issues.as_array().unwrap().len()), (200, 2));

    let token = f.mint("GET", &minted_for, "", "issues:list");
    let other = format!("{REPO}/issues?state=closed&labels=bug,priority:high");
    let (status, answer) = f.send("GET", &other, "", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, &answer["error"]), (403, &json!("binding_mismatch")));
    let token = f.mint("GET", &minted_for, "", "issues:list");
    let extra = format!("{minted_for}&page=2");
    let (status, _) = f.send("GET", &extra, "", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 403);

    let search = format!("{REPO}/search?q=SESSION+LIFETIME&path=src/");
    let (status, hits) = f.call("GET", &search, "", "code:search").await;
    assert_eq!(status, 200);
    assert!(
        hits.as_array().unwrap().is_empty(),
        "a space, not an underscore: {hits}"
    );
    let (status, hits) = f
        .call(
            "GET",
            &format!("{REPO}/search?q=session_lifetime&path=src/"),
            "",
            "code:search",
        )
        .await;
    assert_eq!(status, 200);
    assert!(hits.as_array().unwrap().len() >= 2, "case-insensitive: {hits}");
}

#[tokio::test]
async fn bodies_over_a_mebibyte_are_refused() {
    let f = Fixture::new().await;
    let path = format!("{REPO}/contents/big.txt");
    let body = "x".repeat(1024 * 1024 + 1);
    let (status, answer) = f.call("PUT", &path, &body, "contents:write").await;
    assert_eq!((status, &answer["error"]), (413, &json!("payload_too_large")));
    assert_eq!(f.host.file("main", "big.txt"), None);
}

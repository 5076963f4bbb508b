//! End to end: the real `airlock serve` binary, real upstream servers on
//! loopback, real policies compiled from source, real keys. One test at
//! least per invariant of DESIGN.md.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::e2e::{Airlock, Behaviour, Start, Upstream, World};
use support::guest;

const SECRET: &str = "sk_live_SUPERSECRET_0123456789";

struct Setup {
    world: World,
    airlock: Airlock,
    crash: Upstream,
    analytics: Upstream,
    echo: Upstream,
}

fn setup_with(file_size_limit: Option<u64>) -> Setup {
    let world = World::new();
    let crash = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    let analytics = world.upstream(Behaviour::Verify {
        audience: "analytics".into(),
    });
    let echo = world.upstream(Behaviour::LeakyEcho);
    // The file-size cap is aimed at the audit log: state stays in memory
    // then (the state database's own write failures are tested in state/).
    let state = if file_size_limit.is_some() {
        "[state]\nbackend = \"memory\"\n"
    } else {
        ""
    };
    let body = format!(
        r#"
{state}
[services.crash-reporting]
upstream = "{crash}"
routes = [{{ op = "crashes.read", method = "GET", path = "/crashes/{{id}}" }}]

[services.analytics]
upstream = "{analytics}"
routes = [{{ op = "metrics.read", method = "GET", path = "/metrics/{{name}}" }}]

[services.echo]
upstream = "{echo}"
routes = [
  {{ op = "echo.read", method = "GET", path = "/anything/{{x}}" }},
  {{ op = "echo.write", method = "POST", path = "/anything/{{x}}" }},
]
auth = {{ kind = "both", secret_header = "x-api-key", secret_file = "echo.secret" }}

[roles.reader]
policy = "good-allow.wasm"
services = ["crash-reporting", "analytics", "echo"]
limits = {{ max_token_ttl_s = 20, max_body_bytes = "4KiB", policy_body_bytes = "1KiB" }}

[roles.spy]
policy = "header-spy.wasm"
services = ["echo"]

[roles.trapper]
policy = "panics.wasm"
services = ["echo"]

[roles.limited]
policy = "good-allow.wasm"
services = ["echo"]
limits = {{ requests_per_minute = 2 }}

[roles.budgeted]
policy = "good-allow.wasm"
services = ["crash-reporting"]
grants_per_session = {{ "crashes.read" = 5 }}
"#,
        crash = crash.url(),
        analytics = analytics.url(),
        echo = echo.url()
    );
    let airlock = world.airlock(Start {
        body: &body,
        policies: vec![
            ("good-allow.wasm", guest("good-allow")),
            ("header-spy.wasm", guest("header-spy")),
            ("panics.wasm", guest("panics")),
        ],
        files: vec![("echo.secret", SECRET)],
        file_size_limit,
        ..Start::default()
    });
    Setup {
        world,
        airlock,
        crash,
        analytics,
        echo,
    }
}

fn setup() -> Setup {
    setup_with(None)
}

fn bearer(r: &support::e2e::Received) -> String {
    r.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("a bearer token upstream")
        .to_string()
}

/// The flow: session → policy → token → upstream, with a token the upstream
/// verifies against the JWKS, bound to this request and exactly scoped.
#[test]
fn an_allowed_request_reaches_the_upstream_with_an_exact_token() {
    let s = setup();
    let (session, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let r = s.airlock.call(
        &s.world,
        &handle,
        "GET",
        "/crash-reporting/crashes/42?verbose=1",
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["ok"], true, "the upstream verified the token: {body}");
    let claims = &body["claims"];
    assert_eq!(claims["aud"], "crash-reporting");
    assert_eq!(claims["sub"], "agent-7");
    assert_eq!(claims["act"]["sub"], "agent-7");
    assert_eq!(claims["session"], session.as_str());
    assert_eq!(claims["role"], "reader");
    assert_eq!(claims["workflow"], "wf-e2e");
    assert_eq!(claims["scope"], "ok:read");
    assert!(
        claims["policy_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    // TTL: the smallest of the grant (60 s), the role's maximum (20 s) and the session (600 s).
    let ttl = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert_eq!(ttl, 20);
    // Bound to this request.
    let query = vec![("verbose".to_string(), "1".to_string())];
    assert_eq!(
        claims["req"],
        airlock::token::request_binding("GET", "/crashes/42", &query, b"")
    );
    let received = s.crash.last();
    assert_eq!(received.uri, "/crashes/42?verbose=1");

    // A new token for every request: unique jti.
    let again = s.airlock.call(
        &s.world,
        &handle,
        "GET",
        "/crash-reporting/crashes/42?verbose=1",
        &[],
    );
    assert_ne!(again.json()["claims"]["jti"], claims["jti"]);
}

/// Invariant 2: no token and no upstream secret in any response to the agent,
/// in a log line, or in the audit log.
#[test]
fn agents_never_see_credentials() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let r = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let upstream = s.echo.last();
    let token = bearer(&upstream);
    assert_eq!(
        upstream.header("x-api-key"),
        Some(SECRET),
        "the proxy injected its secret"
    );
    assert!(token.len() > 100);

    let visible = r.visible();
    assert!(
        !visible.contains(&token),
        "the token leaked to the agent:\n{visible}"
    );
    assert!(
        !visible.contains(SECRET),
        "the secret leaked to the agent:\n{visible}"
    );
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(r.header("authorization"), None);
    assert!(
        visible.contains("[redacted by airlock]"),
        "the echo was redacted, not dropped:\n{visible}"
    );

    let audit = std::fs::read_to_string(s.airlock.audit_log()).expect("audit");
    assert!(
        !audit.contains(&token) && !audit.contains(SECRET),
        "credential in the audit log"
    );
    let jti = airlock_claims(&token)["jti"].as_str().expect("jti").to_string();
    assert!(audit.contains(&jti), "the audit keeps the token id");
    let logs = s.airlock.logs();
    assert!(
        !logs.contains(&token) && !logs.contains(SECRET),
        "credential in the logs:\n{logs}"
    );
}

fn airlock_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

/// Invariant 3: identity comes from the session; agent-supplied
/// Authorization, cookies and x-airlock-* headers reach neither the policy
/// nor the upstream.
#[test]
fn identity_headers_from_the_agent_are_dropped() {
    let s = setup();
    let forged = [
        ("authorization", "Bearer forged.jwt.token"),
        ("cookie", "session=stolen"),
        ("x-airlock-agent", "release-bot"),
        ("x-airlock-role", "release"),
        ("x-request-id", "abc"),
    ];
    // What the policy saw.
    let (_, spy) = s.airlock.session(&s.world, "spy", "agent-spy", 600);
    let r = s.airlock.call(&s.world, &spy, "GET", "/echo/anything/1", &forged);
    assert_eq!(r.status, 403);
    let reason = r.json()["reason"].as_str().expect("reason").to_string();
    assert!(
        reason.starts_with("saw agent=agent-spy role=spy headers="),
        "{reason}"
    );
    assert!(
        reason.contains("x-request-id"),
        "ordinary headers do reach the policy: {reason}"
    );
    for name in ["authorization", "cookie", "x-airlock", "proxy-authorization"] {
        assert!(!reason.contains(name), "the policy saw {name}: {reason}");
    }
    assert_eq!(s.echo.count(), 0, "a denied request was forwarded");

    // What the upstream saw.
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let r = s
        .airlock
        .call(&s.world, &handle, "GET", "/echo/anything/1", &forged);
    assert_eq!(r.status, 200);
    let upstream = s.echo.last();
    assert!(upstream.header("cookie").is_none() && upstream.header("proxy-authorization").is_none());
    assert!(
        upstream.headers.iter().all(|(k, _)| !k.starts_with("x-airlock-")),
        "{:?}",
        upstream.headers
    );
    let token = bearer(&upstream);
    assert_ne!(token, "forged.jwt.token");
    assert_eq!(
        airlock_claims(&token)["sub"],
        "agent-7",
        "identity from the session, not the headers"
    );
}

/// Invariant 1: a policy trap, an unknown service or route, a missing or bad
/// session are denied and never forwarded; the proxy keeps serving.
#[test]
fn failures_are_denied_and_never_forwarded() {
    let s = setup();
    let (_, trapper) = s.airlock.session(&s.world, "trapper", "agent-t", 600);
    let r = s.airlock.call(&s.world, &trapper, "GET", "/echo/anything/1", &[]);
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["error"], "denied");
    assert!(v["reason"].as_str().is_some_and(|r| r.contains("(trap)")), "{v}");
    assert!(v["decision_id"].as_str().is_some_and(|d| d.starts_with("dec_")));

    let (_, reader) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let cases = [
        ("GET", "/nope/x", 404, "unknown_service"),
        ("DELETE", "/echo/anything/1", 404, "unknown_route"),
        ("GET", "/echo/anything/a%2Fb", 404, "unknown_route"),
        ("GET", "/echo/anything/1?x=%zz", 400, "bad_request"),
    ];
    for (method, path, status, error) in cases {
        let r = s.airlock.call(&s.world, &reader, method, path, &[]);
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (status, Some(error)),
            "{method} {path}: {}",
            r.text()
        );
    }
    // No session, a bad one, a huge body.
    let r = s
        .world
        .request("GET", &s.airlock.proxy_url("/echo/anything/1"), &[], b"");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let r = s
        .airlock
        .call(&s.world, "alh_not-a-real-handle", "GET", "/echo/anything/1", &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let big = vec![b'x'; 8 << 10];
    let auth = format!("Bearer {reader}");
    let r = s.world.request(
        "POST",
        &s.airlock.proxy_url("/echo/anything/1"),
        &[("proxy-authorization", &auth)],
        &big,
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (413, Some("body_too_large"))
    );
    assert_eq!(s.echo.count(), 0, "nothing may have been forwarded");

    // And it keeps serving.
    let r = s.airlock.call(&s.world, &reader, "GET", "/echo/anything/1", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(s.echo.count(), 1);
}

/// Invariant 1, audit: when the audit record cannot be written, the request
/// is denied and nothing is forwarded.
#[test]
fn an_unwritable_audit_log_denies_requests() {
    // Every file the process writes is capped: startup and a few decisions
    // fit, then audit appends fail (EFBIG).
    let s = setup_with(Some(12 * 1024));
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let mut allowed = 0;
    let mut refused = None;
    for _ in 0..40 {
        let r = s
            .airlock
            .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[]);
        match r.status {
            200 => allowed += 1,
            503 => {
                refused = Some(r.json());
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let refused = refused.expect("the audit log filled up within 40 requests");
    assert_eq!(refused["error"], "unavailable", "{refused}");
    assert!(allowed > 0, "some requests were served before the log filled");
    // Every forwarded request has its allow on disk. (The log may fill at the
    // decision, and nothing is forwarded, or at the outcome that follows a
    // forwarded request, which the agent then sees as 503.)
    let audited_allows = std::fs::read_to_string(s.airlock.audit_log())
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "decision" && r["verdict"] == "allow")
        .count();
    assert_eq!(
        s.crash.count(),
        audited_allows,
        "a request whose decision was not audited was forwarded"
    );
    assert!((allowed..=allowed + 1).contains(&audited_allows));
    let allowed = audited_allows;
    // Still up, still refusing rather than forwarding.
    let r = s.world.request("GET", &s.airlock.admin_url("/healthz"), &[], b"");
    assert_eq!(r.status, 200);
    let r = s
        .airlock
        .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(s.crash.count(), allowed);
}

/// Invariant 4: one decision, one record; the chain verifies, and `verify`
/// catches an edited, a deleted and a reordered line.
#[test]
fn the_audit_chain_records_every_decision_and_detects_tampering() {
    let s = setup();
    let (_, reader) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    let (_, trapper) = s.airlock.session(&s.world, "trapper", "agent-t", 600);
    let requests = [
        (&reader, "/crash-reporting/crashes/1"),
        (&reader, "/nope/x"),
        (&trapper, "/echo/anything/1"),
        (&reader, "/echo/anything/2"),
    ];
    let mut ids = Vec::new();
    for (handle, path) in requests {
        let r = s.airlock.call(&s.world, handle, "GET", path, &[]);
        ids.push(r.header("x-airlock-decision").expect("decision id").to_string());
    }
    let records = s.airlock.audit_records();
    let decisions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), requests.len(), "one record per decision");
    for (record, id) in decisions.iter().zip(&ids) {
        assert_eq!(record["decision_id"], id.as_str());
        assert!(record["agent"].is_string() && record["verdict"].is_string());
    }
    let allow = decisions
        .iter()
        .find(|d| d["verdict"] == "allow")
        .expect("an allow");
    assert!(
        allow["policy_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert!(allow["token_jti"].is_string() && allow["token_ttl_s"] == 20);
    let outcomes = records.iter().filter(|r| r["kind"] == "outcome").count();
    assert_eq!(outcomes, 2, "each forwarded request has its outcome");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "admin" && r["action"] == "session.create")
    );

    let log = s.airlock.audit_log();
    let verify =
        |path: &std::path::Path| support::airlock(&["audit", "verify", path.to_str().expect("utf-8")]);
    let out = verify(&log);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(String::from)
        .collect();
    let tampered = s.airlock.path().join("tampered.jsonl");
    let check = |lines: &[String], expected: &str| {
        std::fs::write(&tampered, lines.join("\n") + "\n").expect("write");
        let out = verify(&tampered);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains(expected),
            "expected {expected:?}, got {err}"
        );
    };
    let n = lines.len();
    let mut edited = lines.clone();
    edited[n - 3] = edited[n - 3]
        .replacen("\"deny\"", "\"allow\"", 1)
        .replacen("\"GET\"", "\"PUT\"", 1);
    check(&edited, &format!("line {}", n - 2));
    let mut deleted = lines.clone();
    deleted.remove(n - 4);
    check(&deleted, &format!("line {}", n - 3));
    let mut reordered = lines.clone();
    reordered.swap(n - 2, n - 3);
    check(&reordered, &format!("line {}", n - 2));
}

/// Invariant 7 and revocation: introspection says active for a live token,
/// inactive after the session is revoked or the token expired; the handle
/// stops working at once.
#[test]
fn tokens_die_with_their_session_and_their_ttl() {
    let s = setup();
    let (session, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    let token = bearer(&s.echo.last());
    let v = s.airlock.introspect(&s.world, &token);
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(
        (v["aud"].as_str(), v["sub"].as_str()),
        (Some("echo"), Some("agent-7"))
    );

    // The introspection token may not manage sessions.
    let auth = format!("Bearer {}", s.airlock.introspection_token);
    let r = s.world.request(
        "GET",
        &s.airlock.admin_url("/v1/sessions"),
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = s
        .world
        .request("GET", &s.airlock.admin_url("/v1/sessions"), &[], b"");
    assert_eq!(r.status, 401);

    let r = s
        .airlock
        .admin(&s.world, "DELETE", &format!("/v1/sessions/{session}"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.airlock.introspect(&s.world, &token)["active"],
        false,
        "a token outlived its session"
    );
    let r = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("session_revoked"))
    );

    // A session of 2 s: its token lives at most 2 s and is inactive after.
    let (_, short) = s.airlock.session(&s.world, "reader", "agent-8", 2);
    s.airlock.call(&s.world, &short, "GET", "/echo/anything/1", &[]);
    let token = bearer(&s.echo.last());
    let claims = airlock_claims(&token);
    assert!(claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat") <= 2);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        s.airlock.introspect(&s.world, &token)["active"],
        false,
        "an expired token is active"
    );
    let r = s.airlock.call(&s.world, &short, "GET", "/echo/anything/1", &[]);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("session_expired"))
    );
    // Forged and garbage tokens are simply inactive.
    assert_eq!(s.airlock.introspect(&s.world, "not.a.token")["active"], false);
}

/// A token minted for service A is rejected by service B's verification.
#[test]
fn a_token_for_one_service_is_refused_by_another() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    assert_eq!(
        s.airlock
            .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[])
            .status,
        200
    );
    assert_eq!(
        s.airlock
            .call(&s.world, &handle, "GET", "/analytics/metrics/signups", &[])
            .status,
        200
    );
    let token = bearer(&s.crash.last());
    let jwks = s
        .world
        .request("GET", &s.airlock.admin_url("/.well-known/jwks.json"), &[], b"")
        .json();
    let now = airlock::proxy::now_ms() / 1000;
    assert!(airlock::token::verify(&token, &jwks, "airlock", "crash-reporting", now, 0).is_ok());
    let err =
        airlock::token::verify(&token, &jwks, "airlock", "analytics", now, 0).expect_err("wrong audience");
    assert!(err.to_string().to_lowercase().contains("aud"), "{err}");
    assert_eq!(s.analytics.count(), 1);
}

/// Structural limits before the policy: requests per minute.
/// A role budget of N grants per session holds under 30 parallel requests:
/// exactly N go through, the rest are told which budget ran out.
#[test]
fn a_grant_budget_is_never_exceeded_under_parallel_requests() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "budgeted", "agent-b", 600);
    let url = s.airlock.proxy_url("/crash-reporting/crashes/7");
    let auth = format!("Bearer {handle}");
    let replies = s.world.rt.block_on(async {
        let calls: Vec<_> = (0..30)
            .map(|_| {
                let (url, auth) = (url.clone(), auth.clone());
                tokio::spawn(async move {
                    support::e2e::send("GET", &url, &[("proxy-authorization", &auth)], b"").await
                })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.expect("task"));
        }
        out
    });
    let allowed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(allowed, 5);
    assert_eq!(s.crash.count(), 5, "the upstream received exactly the budget");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 403, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"], "budget_exhausted");
        assert_eq!(v["budget"]["name"], "grants_per_session.crashes.read");
        assert_eq!(v["budget"]["limit"], 5);
        assert!(
            v["budget"]["refills_in_s"].is_null(),
            "a session budget does not refill"
        );
        assert!(v["reason"].as_str().unwrap_or("").contains("does not refill"));
    }
    // A new session has a budget of its own.
    let (_, fresh) = s.airlock.session(&s.world, "budgeted", "agent-b", 600);
    let r = s
        .airlock
        .call(&s.world, &fresh, "GET", "/crash-reporting/crashes/7", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "limited", "agent-l", 600);
    for _ in 0..2 {
        assert_eq!(
            s.airlock
                .call(&s.world, &handle, "GET", "/echo/anything/1", &[])
                .status,
            200
        );
    }
    let r = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["error"], "rate_limited");
    assert!(
        v["retry_after_s"].as_u64().is_some_and(|s| (1..=60).contains(&s)),
        "{v}"
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(v["budget"]["name"], "requests_per_minute");
    assert_eq!(v["budget"]["limit"], 2);
    assert_eq!(v["budget"]["refills_in_s"], v["retry_after_s"]);
    assert_eq!(s.echo.count(), 2);
}

/// Nothing lost: a request the policy refused counts in its session's rate
/// window, and that count is on disk before the refusal is answered (the
/// store's `begin` does not wait for it; the refusal waits in `settle`), so
/// a `kill -9` right after the refusal keeps it: after the restart the
/// window is full and the next request is refused.
#[test]
fn a_refused_requests_count_survives_kill_9() {
    let mut s = setup();
    let (_, handle) = s.airlock.session(&s.world, "limited", "agent-k", 600);
    let allowed = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let denied = s.airlock.call(&s.world, &handle, "POST", "/echo/anything/1", &[]);
    assert_eq!(denied.status, 403, "{}", denied.text());
    s.airlock.kill_and_restart();
    let r = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(
        r.status,
        429,
        "the refused request's count was lost: {}",
        r.text()
    );
    assert_eq!(r.json()["budget"]["name"], "requests_per_minute");
    assert_eq!(s.echo.count(), 1);
}

/// Invariant 6: a reload swaps the version atomically, the digest in each
/// record names the version that decided, and a broken module never replaces
/// a good one. Also the JWKS keeps a rotated-out key.
#[test]
fn reloads_and_key_rotation_through_the_admin_api() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-7", 600);
    assert_eq!(
        s.airlock
            .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[])
            .status,
        200
    );
    let policy_file = s.airlock.path().join("policies/good-allow.wasm");

    std::fs::write(&policy_file, b"\0asm\x01\0\0\0").expect("break the policy");
    let r = s.airlock.admin(&s.world, "POST", "/v1/policies/reload", "");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("core module"), "{}", r.text());
    let r = s
        .airlock
        .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[]);
    assert_eq!(
        r.json()["claims"]["scope"],
        "ok:read",
        "the good version keeps serving"
    );

    std::fs::write(&policy_file, guest("good-allow-v2")).expect("v2");
    let r = s.airlock.admin(&s.world, "POST", "/v1/policies/reload", "");
    assert!(r.text().contains("\"to\""), "{}", r.text());
    let r = s
        .airlock
        .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[]);
    assert_eq!(r.json()["claims"]["scope"], "ok:read:v2");
    let digests: Vec<String> = s
        .airlock
        .audit_records()
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| r["policy_digest"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(digests.len(), 3);
    assert!(
        digests[0] == digests[1] && digests[1] != digests[2],
        "{digests:?}"
    );
    let v2_digest = r.json()["claims"]["policy_digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(digests[2], v2_digest);
    let audit = std::fs::read_to_string(s.airlock.audit_log()).expect("audit");
    assert!(audit.contains("policy.rejected") && audit.contains("policy.loaded"));

    // Key rotation: new tokens carry the new kid; the old key stays published.
    let before = s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    assert_eq!(before.status, 200);
    let old_token = bearer(&s.echo.last());
    let r = s.airlock.admin(&s.world, "POST", "/v1/keys/rotate", "");
    assert_eq!(r.status, 200);
    let kid = r.json()["kid"].as_str().expect("kid").to_string();
    s.airlock.call(&s.world, &handle, "GET", "/echo/anything/1", &[]);
    let new_token = bearer(&s.echo.last());
    let header = |t: &str| {
        use base64::Engine as _;
        let h = t.split('.').next().expect("header");
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(header(&new_token)["kid"], kid.as_str());
    assert_ne!(header(&old_token)["kid"], kid.as_str());
    assert_eq!(
        s.airlock.introspect(&s.world, &old_token)["active"],
        true,
        "old key still verifies"
    );
    let jwks = s
        .world
        .request("GET", &s.airlock.admin_url("/.well-known/jwks.json"), &[], b"")
        .json();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
}

/// Upstream failures become precise refusals: unreachable (502), too slow
/// (504), a response over the cap (502); the proxy keeps serving.
#[test]
fn upstream_failures_are_reported_precisely() {
    let world = World::new();
    let slow = world.upstream(Behaviour::Slow(3_000));
    let echo = world.upstream(Behaviour::LeakyEcho);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let body = format!(
        r#"
[services.down]
upstream = "http://{closed}"
routes = [{{ op = "x", method = "GET", path = "/x" }}]

[services.slow]
upstream = "{slow}"
timeout_ms = 300
routes = [{{ op = "x", method = "GET", path = "/x" }}]

[services.echo]
upstream = "{echo}"
routes = [{{ op = "x", method = "GET", path = "/x" }}]

[roles.reader]
policy = "good-allow.wasm"
services = ["down", "slow", "echo"]
limits = {{ max_response_bytes = "64B" }}
"#,
        slow = slow.url(),
        echo = echo.url()
    );
    let airlock = world.airlock(Start {
        body: &body,
        policies: vec![("good-allow.wasm", guest("good-allow"))],
        ..Start::default()
    });
    let (_, handle) = airlock.session(&world, "reader", "agent-7", 600);
    for (path, status, error) in [
        ("/down/x", 502, "upstream_unavailable"),
        ("/slow/x", 504, "upstream_timeout"),
        ("/echo/x", 502, "response_too_large"),
    ] {
        let r = airlock.call(&world, &handle, "GET", path, &[]);
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (status, Some(error)),
            "{path}: {}",
            r.text()
        );
        assert!(!r.text().contains("Bearer"), "{}", r.text());
    }
    // Each failure after an allow is audited as the decision's outcome.
    let outcomes: Vec<String> = airlock
        .audit_records()
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .map(|r| r["error"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["upstream_unavailable", "upstream_timeout", "response_too_large"]
    );
    let r = world.request("GET", &airlock.admin_url("/healthz"), &[], b"");
    assert_eq!(r.status, 200);
}

/// The CLI mirrors the admin API: sessions, policy reload, key rotation.
#[test]
fn the_cli_drives_the_admin_api() {
    let s = setup();
    let admin_url = s.airlock.admin_url("");
    let token_file = s.airlock.path().join("admin.token");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--admin-url",
            &admin_url,
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ]);
        let out = support::airlock(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let handle = cli(&[
        "session",
        "create",
        "--agent",
        "cli-bot",
        "--role",
        "reader",
        "--workflow",
        "wf-cli",
        "--handle-only",
    ]);
    assert!(handle.starts_with("alh_") && handle.len() >= 4 + 43, "{handle}");
    assert_eq!(
        s.airlock
            .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[])
            .status,
        200
    );

    let list: Value = serde_json::from_str(&cli(&["session", "list"])).expect("json");
    let sessions = list["sessions"].as_array().expect("sessions");
    let mine = sessions.iter().find(|x| x["agent"] == "cli-bot").expect("listed");
    assert!(!list.to_string().contains(&handle), "handles are never listed");
    let id = mine["id"].as_str().expect("id").to_string();

    let reload: Value = serde_json::from_str(&cli(&["policy", "reload"])).expect("json");
    assert!(
        reload["roles"].as_array().is_some_and(|r| r.len() == 5),
        "{reload}"
    );
    let rotated: Value = serde_json::from_str(&cli(&["keys", "rotate"])).expect("json");
    assert!(rotated["kid"].is_string());

    cli(&["session", "revoke", &id]);
    let r = s
        .airlock
        .call(&s.world, &handle, "GET", "/crash-reporting/crashes/1", &[]);
    assert_eq!(r.status, 401);

    // A wrong token is refused with the reason.
    let bad = s.airlock.path().join("bad.token");
    std::fs::write(&bad, "not-the-admin-token-at-all").expect("write");
    let out = support::airlock(&[
        "session",
        "list",
        "--admin-url",
        &admin_url,
        "--token-file",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

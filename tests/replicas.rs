//! Two real `airlock` processes on one real Redis, sharing one signing-key
//! directory, running the bug-fix workflow: what one replica records the
//! other honours at once, limits hold across both, and when Redis goes away
//! both refuse cleanly and then recover by themselves.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;
use support::bugfix::{Bugfix, REPO};
use support::e2e::{Airlock, send};
use support::redis::RedisServer;

fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start(None))
}

fn replica(w: &Bugfix) -> &Airlock {
    w.replica.as_ref().expect("replicated")
}

#[test]
fn a_session_made_through_a_works_through_b_and_a_revocation_on_a_is_effective_on_b_at_once() {
    let w = Bugfix::start_replicated(&redis().url());
    let b = replica(&w);
    let issues = format!("{REPO}/issues?labels=bug,priority:high&state=open");
    let r = w.call_on(b, "business-agent", "GET", &issues, None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Both replicas sign with the shared key: one JWKS.
    let jwks = |on: &Airlock| {
        w.world
            .request("GET", &on.admin_url("/.well-known/jwks.json"), &[], b"")
            .json()
    };
    assert_eq!(jwks(&w.airlock), jwks(b));

    let session = w.session_id("business-agent").to_string();
    let r = w
        .airlock
        .admin(&w.world, "DELETE", &format!("/v1/sessions/{session}"), "");
    assert!(r.status < 300, "{} {}", r.status, r.text());
    let before = w.received().len();
    let r = w.call_on(b, "business-agent", "GET", &issues, None, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "session_revoked", "{}", r.text());
    assert_eq!(w.received().len(), before, "nothing forwarded");
    // B's own listing agrees.
    let listed = b.admin(&w.world, "GET", "/v1/sessions", "").text();
    assert!(!listed.contains(&session), "{listed}");
}

#[test]
fn a_read_budget_taken_in_parallel_through_both_replicas_is_never_exceeded() {
    let w = Bugfix::start_replicated(&redis().url());
    w.triage();
    let auth = format!("Bearer {}", w.handle("developer"));
    let path = format!("/code{REPO}/contents/src/auth/session.py");
    let urls = [w.airlock.proxy_url(&path), replica(&w).proxy_url(&path)];
    // 40 requests at once, alternating replicas, against a budget of 10.
    let statuses: Vec<u16> = w.world.rt.block_on(async {
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let (url, auth) = (urls[i % 2].clone(), auth.clone());
                tokio::spawn(async move {
                    send("GET", &url, &[("proxy-authorization", &auth)], b"")
                        .await
                        .status
                })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.expect("task"));
        }
        out
    });
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 403 | 409)),
        "{statuses:?}"
    );
    // Whatever the race left is still usable through either, not one more.
    let mut total = statuses.iter().filter(|s| **s == 200).count();
    for on in [replica(&w), &w.airlock].into_iter().cycle() {
        let r = w.call_on(
            on,
            "developer",
            "GET",
            &format!("{REPO}/contents/src/auth/session.py"),
            None,
            &[],
        );
        if r.status != 200 {
            break;
        }
        total += 1;
        assert!(total <= 10, "budget exceeded");
    }
    assert_eq!(total, 10);
    let reads = w
        .received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("contents.read") && r.status == 200)
        .count();
    assert_eq!(reads, 10, "the code host served exactly the budget");
}

#[test]
fn a_single_use_token_minted_by_a_is_honoured_once_at_b() {
    let w = Bugfix::start_replicated(&redis().url());
    // The ticket is created through A; the code host introspects at B
    // (consuming the single-use token there).
    w.triage();
    let used = w
        .received()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("tasks.create"))
        .expect("the ticket creation");
    assert_eq!(used.status, 201);
    let authorization = used.authorization.expect("its authorization");
    let token = authorization.trim_start_matches("Bearer ");
    // Replayed: inactive at both replicas.
    assert_eq!(w.airlock.introspect(&w.world, token)["active"], false);
    assert_eq!(replica(&w).introspect(&w.world, token)["active"], false);
    let url = format!("http://{}{}", w.code.local_addr(), used.path);
    let body = json!({ "key": "task-1042", "title": "Fix #1042", "bug": 1042, "scope": "src/auth/",
                       "body": "Sessions must end at a password change." })
    .to_string();
    let r = w.world.rt.block_on(send(
        "POST",
        &url,
        &[
            ("authorization", &authorization),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    ));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(w.code.tasks(), ["task-1042"], "the replay created nothing");
}

#[test]
fn an_approval_granted_through_a_is_usable_once_through_b() {
    let w = Bugfix::start_replicated(&redis().url());
    let b = replica(&w);
    w.up_to_merge();
    let merge = format!("{REPO}/pulls/fix-1042/merge");
    let r = w.call_on(b, "release", "PUT", &merge, Some(json!({})), &[]);
    assert_eq!(r.json()["error"], "escalated", "{}", r.text());
    let id = r.json()["approval_id"].as_str().expect("approval id").to_string();
    // B's escalation is pending at A; a person approves it through A.
    let pending = w
        .airlock
        .admin(&w.world, "GET", "/v1/approvals?status=pending", "")
        .text();
    assert!(pending.contains(&id), "{pending}");
    let r = w.airlock.admin(
        &w.world,
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        &json!({ "approver": "alice@acme.example", "note": "checked" }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let with = [("x-airlock-approval", id.as_str())];
    let r = w.call_on(b, "release", "PUT", &merge, Some(json!({})), &with);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(w.code.pull_merged("fix-1042"));
    for on in [&w.airlock, b] {
        let r = w.call_on(on, "release", "PUT", &merge, Some(json!({})), &with);
        assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    }
    let merges = w
        .received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("pulls.merge"))
        .count();
    assert_eq!(merges, 1);
}

fn ready(w: &Bugfix, on: &Airlock) -> (u16, serde_json::Value) {
    let r = w.world.request("GET", &on.admin_url("/readyz"), &[], b"");
    (r.status, r.json())
}

#[test]
fn with_redis_down_both_replicas_refuse_cleanly_and_recover_by_themselves() {
    // A Redis of its own: this test stops it.
    let mut server = RedisServer::start(None);
    let w = Bugfix::start_replicated(&server.url());
    let b = replica(&w);
    let issues = format!("{REPO}/issues?labels=bug,priority:high&state=open");
    assert_eq!(
        w.call_on(b, "business-agent", "GET", &issues, None, &[]).status,
        200
    );

    server.kill();
    let before = w.received().len();
    for on in [&w.airlock, b] {
        let r = w.call_on(on, "business-agent", "GET", &issues, None, &[]);
        assert_eq!(r.status, 503, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"], "unavailable");
        let reason = v["reason"].as_str().expect("reason");
        assert!(
            reason.starts_with("state store unavailable: redis at 127.0.0.1:"),
            "{reason}"
        );
        // Audited locally, by the replica that refused.
        let decision = v["decision_id"].as_str().expect("decision id");
        let record = on
            .audit_records()
            .into_iter()
            .find(|r| r["decision_id"] == decision)
            .expect("the refusal is audited");
        assert_eq!(record["reason"].as_str(), Some(reason));
        let (status, body) = ready(&w, on);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("state store unavailable"),
            "{body}"
        );
    }
    assert_eq!(w.received().len(), before, "nothing forwarded");

    // Back on its append-only file: both serve again, nothing restarted,
    // the sessions made before the outage still valid.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    for on in [&w.airlock, b] {
        while ready(&w, on).0 != 200 {
            assert!(Instant::now() < deadline, "a replica did not recover");
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = w.call_on(on, "business-agent", "GET", &issues, None, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

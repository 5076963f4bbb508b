//! Shadow evaluation on live traffic: a role's candidate version decides
//! every request too, without effect; disagreements are audited as `shadow`
//! records and counted; promote makes the candidate enforced (and durable);
//! a looping candidate fails no request.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::e2e::{Airlock, Behaviour, Start, Upstream, World, reader_body};
use support::{airlock, guest};

struct Setup {
    world: World,
    airlock: Airlock,
    _upstream: Upstream,
    handle: String,
}

fn setup() -> Setup {
    let world = World::new();
    let upstream = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    let body = reader_body(&upstream.url());
    let airlock = world.airlock(Start {
        body: &body,
        policies: vec![
            ("reader.wasm", guest("good-allow")),
            ("deny-all.wasm", guest("deny-all")),
            ("loop.wasm", guest("infinite-loop")),
        ],
        ..Start::default()
    });
    let (_, handle) = airlock.session(&world, "reader", "agent-1", 600);
    Setup {
        world,
        airlock,
        _upstream: upstream,
        handle,
    }
}

impl Setup {
    /// `airlock policy ARGS.. --admin-url .. --token-file ..`; its JSON answer.
    fn cli(&self, args: &[&str]) -> Value {
        let url = self.airlock.admin_url("");
        let token = self.airlock.path().join("admin.token");
        let mut all = vec!["policy"];
        all.extend_from_slice(args);
        all.extend([
            "--admin-url",
            &url,
            "--token-file",
            token.to_str().expect("utf-8"),
        ]);
        let out = airlock(&all);
        assert!(
            out.status.success(),
            "airlock {all:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn get(&self) -> (u16, Value) {
        let r = self.airlock.call(
            &self.world,
            &self.handle,
            "GET",
            "/crash-reporting/crashes/1",
            &[],
        );
        (r.status, r.json())
    }

    fn policy(&self) -> Value {
        let r = self.airlock.admin(&self.world, "GET", "/v1/policies", "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["policies"][0].clone()
    }

    fn records(&self, kind: &str) -> Vec<Value> {
        self.airlock
            .audit_records()
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }

    /// `airlock_shadow_decisions_total` for `outcome`.
    fn shadow_metric(&self, outcome: &str) -> f64 {
        let r = self
            .world
            .request("GET", &self.airlock.admin_url("/metrics"), &[], b"");
        let prefix = format!("airlock_shadow_decisions_total{{role=\"reader\",outcome=\"{outcome}\"}} ");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }

    /// Waits (bounded) until every candidate evaluation started has ended.
    fn settled(&self, decisions: f64) {
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            let seen: f64 = ["agree", "disagree", "skipped"]
                .iter()
                .map(|o| self.shadow_metric(o))
                .sum();
            if seen >= decisions {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "{seen} of {decisions} shadow evaluations ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_denying_candidate_changes_no_answer_is_audited_per_disagreement_and_promote_enforces_it() {
    let mut s = setup();
    let enforced = s.policy()["policy"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let shadowed = s.cli(&["shadow", "reader", "deny-all.wasm"]);
    let candidate = shadowed["candidate"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(s.policy()["candidate"]["digest"], candidate.as_str());

    let mut decided = Vec::new();
    for _ in 0..3 {
        let (status, body) = s.get();
        assert_eq!(status, 200, "the candidate changed an answer: {body}");
        assert_eq!(body["claims"]["scope"], "ok:read");
        decided.push(body["claims"]["jti"].clone());
    }
    s.settled(3.0);
    assert_eq!(s.shadow_metric("disagree"), 3.0);
    let decisions: Vec<String> = s
        .records("decision")
        .iter()
        .map(|r| r["decision_id"].as_str().unwrap_or("").to_string())
        .collect();
    let shadows = s.records("shadow");
    assert_eq!(
        shadows.len(),
        3,
        "one shadow record per disagreement: {shadows:?}"
    );
    for (record, decision) in shadows.iter().zip(&decisions) {
        assert_eq!(record["decision_id"], decision.as_str(), "{record}");
        assert_eq!(record["role"], "reader");
        assert_eq!(record["change"], "allow→deny");
        assert_eq!(record["enforced_verdict"], "allow");
        assert_eq!(record["enforced_digest"], enforced.as_str());
        assert_eq!(record["candidate_verdict"], "deny");
        assert_eq!(record["candidate_reason"], "deny-all: nothing is allowed");
        assert_eq!(record["candidate_digest"], candidate.as_str());
    }

    // The shadow records are links of the audit chain like any other.
    let log = s.airlock.audit_log();
    let verified = airlock(&["audit", "verify", log.to_str().expect("utf-8")]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let tail = airlock(&["audit", "tail", log.to_str().expect("utf-8")]);
    let tail = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.contains(&format!("shadow {} reader allow→deny", decisions[0])),
        "{tail}"
    );

    let promoted = s.cli(&["promote", "reader"]);
    assert_eq!(promoted["to"], candidate.as_str(), "{promoted}");
    let (status, body) = s.get();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "deny-all: nothing is allowed");
    let now = s.policy();
    assert_eq!(now["policy"]["digest"], candidate.as_str());
    assert!(now["candidate"].is_null(), "promote leaves no candidate: {now}");
    assert!(
        s.records("admin")
            .iter()
            .any(|r| r["action"] == "policy.promoted" && r["subject"] == "reader"),
        "promote is audited"
    );
    // Durable: the role's file is the candidate now, so a crash keeps it.
    s.airlock.kill_and_restart();
    assert_eq!(s.policy()["policy"]["digest"], candidate.as_str());
}

#[test]
fn a_looping_candidate_fails_no_request_and_clear_stops_shadowing() {
    let s = setup();
    s.cli(&["shadow", "reader", "loop.wasm"]);
    for i in 0..10 {
        let (status, body) = s.get();
        assert_eq!(
            status, 200,
            "request {i} failed beside a looping candidate: {body}"
        );
        assert_eq!(body["claims"]["scope"], "ok:read");
    }
    s.settled(10.0);
    let shadows = s.records("shadow");
    assert!(!shadows.is_empty(), "the candidate ran at least once");
    for record in &shadows {
        assert_eq!(record["candidate_verdict"], "deny", "{record}");
        // Stopped by its fuel or its deadline, whichever ran out first.
        let reason = record["candidate_reason"].as_str().unwrap_or("");
        assert!(
            reason.starts_with("policy failed (fuel)") || reason.starts_with("policy failed (deadline)"),
            "{record}"
        );
    }
    assert_eq!(
        s.shadow_metric("disagree") as usize,
        shadows.len(),
        "every disagreement is both audited and counted"
    );

    let cleared = s.cli(&["shadow", "reader", "--clear"]);
    assert!(cleared["cleared"]["digest"].is_string(), "{cleared}");
    for _ in 0..3 {
        assert_eq!(s.get().0, 200);
    }
    let total: f64 = ["agree", "disagree", "skipped"]
        .iter()
        .map(|o| s.shadow_metric(o))
        .sum();
    assert_eq!(total, 10.0, "a cleared candidate still evaluated");
}

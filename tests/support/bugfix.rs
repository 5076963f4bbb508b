//! The bug-fix workflow under test: the real `airlock serve` binary with
//! `examples/bugfix-workflow/airlock.toml`, the five role policies built from
//! source, and the demo code host (a real HTTP server on loopback that
//! verifies every token and records everything it received).

use std::collections::HashMap;

use airlock_code_host::{CodeHost, CodeHostConfig, Received};
use serde_json::{Value, json};

use super::e2e::{Airlock, HttpReply, Start, World};

pub const WORKFLOW: &str = "bugfix-1042";
pub const REPO: &str = "/repos/acme/shop";
pub const ROLES: [&str; 5] = ["business-agent", "developer", "senior-reviewer", "qa", "release"];

/// The five policies, built once per test binary.
pub fn policies() -> Vec<(String, Vec<u8>)> {
    ROLES
        .iter()
        .map(|role| {
            let path = super::example_policy(role);
            (
                format!("{role}.wasm"),
                std::fs::read(&path).expect("built policy"),
            )
        })
        .collect()
}

pub struct Bugfix {
    pub world: World,
    /// The Airlock the steps go through (replica A when replicated).
    pub airlock: Airlock,
    /// Replica B, on the same Redis and key directory as A.
    pub replica: Option<Airlock>,
    _shared_keys: Option<tempfile::TempDir>,
    pub code: CodeHost,
    handles: HashMap<String, String>,
    sessions: HashMap<String, String>,
}

impl Bugfix {
    /// Airlock and the code host, with one session per role.
    pub fn start() -> Self {
        Self::launch(None, &[])
    }

    /// As [`start`](Self::start), with `capture_inputs = true` for `roles`.
    pub fn start_capturing(roles: &[&str]) -> Self {
        Self::launch(None, roles)
    }

    /// Two replicas on the Redis at `redis_url` (keys under a prefix of
    /// their own), sharing one signing-key directory made beforehand with
    /// `airlock keys init`; sessions are created through A.
    pub fn start_replicated(redis_url: &str) -> Self {
        Self::launch(Some(redis_url), &[])
    }

    fn launch(redis_url: Option<&str>, capturing: &[&str]) -> Self {
        let world = World::new();
        let listener = world
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the code host");
        let code_addr = listener.local_addr().expect("address");
        let example = std::fs::read_to_string(super::root().join("examples/bugfix-workflow/airlock.toml"))
            .expect("the workflow's config");
        let body = example
            .split_once("# ---- everything below is shared with the end-to-end tests ----")
            .expect("the shared part of the config")
            .1
            .replace("http://127.0.0.1:9201", &format!("http://{code_addr}"));
        let mut body = body;
        for role in capturing {
            let table = format!("[roles.{role}]\n");
            assert!(body.contains(&table), "no {table} in the workflow's config");
            body = body.replace(&table, &format!("{table}capture_inputs = true\n"));
        }
        let mut shared_keys = None;
        if let Some(url) = redis_url {
            let keys = tempfile::tempdir().expect("tempdir");
            let dir = keys.path().join("keys");
            let init = super::airlock(&["keys", "init", "--dir", dir.to_str().expect("utf-8")]);
            assert!(
                init.status.success(),
                "keys init: {}",
                String::from_utf8_lossy(&init.stderr)
            );
            static LAUNCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = LAUNCHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("bugfix-{}-{n}:", std::process::id());
            body.push_str(&format!(
                "\n[tokens]\nkeys_dir = {:?}\n\n[state]\nbackend = \"redis\"\nurl = {url:?}\nkey_prefix = {prefix:?}\ntimeout_ms = 300\n",
                dir.to_str().expect("utf-8")
            ));
            shared_keys = Some(keys);
        }
        let policies = policies();
        let start = || {
            world.airlock(Start {
                body: &body,
                policies: policies.iter().map(|(n, b)| (n.as_str(), b.clone())).collect(),
                ..Start::default()
            })
        };
        let airlock = start();
        let replica = redis_url.map(|_| start());
        // Replicated, the code host checks tokens at B, which A minted.
        let checker = replica.as_ref().unwrap_or(&airlock);
        let code = {
            let _enter = world.rt.enter();
            CodeHost::spawn(
                listener,
                CodeHostConfig {
                    issuer: "airlock".into(),
                    audience: "code".into(),
                    jwks_url: checker.admin_url("/.well-known/jwks.json"),
                    introspect_url: checker.admin_url("/v1/introspect"),
                    introspection_token: checker.introspection_token.clone(),
                },
            )
        };
        let mut this = Bugfix {
            world,
            airlock,
            replica,
            _shared_keys: shared_keys,
            code,
            handles: HashMap::new(),
            sessions: HashMap::new(),
        };
        for role in ROLES {
            this.new_session(role);
        }
        this
    }

    /// A (new) session for `role`, replacing the previous one.
    pub fn new_session(&mut self, role: &str) {
        let body =
            json!({ "agent": format!("{role}-agent"), "role": role, "workflow": WORKFLOW, "ttl_s": 900 });
        let r = self
            .airlock
            .admin(&self.world, "POST", "/v1/sessions", &body.to_string());
        assert_eq!(r.status, 201, "session: {}", r.text());
        let v = r.json();
        self.handles
            .insert(role.into(), v["handle"].as_str().expect("handle").into());
        self.sessions
            .insert(role.into(), v["session"]["id"].as_str().expect("id").into());
    }

    pub fn handle(&self, role: &str) -> &str {
        &self.handles[role]
    }

    pub fn session_id(&self, role: &str) -> &str {
        &self.sessions[role]
    }

    /// `role` calls the code service through the proxy.
    pub fn call(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> HttpReply {
        self.call_with(role, method, path, body, &[])
    }

    pub fn call_with(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> HttpReply {
        self.call_on(&self.airlock, role, method, path, body, extra)
    }

    /// `role` calls the code service through the proxy of `on` (a replica).
    pub fn call_on(
        &self,
        on: &Airlock,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> HttpReply {
        let auth = format!("Bearer {}", self.handle(role));
        let mut headers = vec![
            ("proxy-authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.world.request(
            method,
            &on.proxy_url(&format!("/code{path}")),
            &headers,
            body.as_bytes(),
        )
    }

    /// Must be allowed and succeed upstream; returns the upstream's JSON.
    pub fn ok(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(role, method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{role} {method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// Must be refused by Airlock with `error` and a reason containing `rule`,
    /// without anything reaching the code host; returns the reason.
    pub fn refused(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        error: &str,
        rule: &str,
    ) -> String {
        let before = self.code.received().len();
        let r = self.call(role, method, path, body);
        let v = r.json();
        assert_eq!(v["error"], error, "{role} {method} {path}: {}", r.text());
        let reason = v["reason"].as_str().expect("a reason").to_string();
        assert!(
            reason.contains(rule),
            "{role} {method} {path}: reason {reason:?} lacks {rule:?}"
        );
        assert_eq!(
            self.code.received().len(),
            before,
            "a refused request reached the code host"
        );
        // And it is in the audit trail, with the same reason.
        let decision = v["decision_id"].as_str().expect("decision id");
        let record = self
            .airlock
            .audit_records()
            .into_iter()
            .find(|r| r["decision_id"] == decision && r["kind"] == "decision")
            .expect("the refusal is audited");
        assert_ne!(record["verdict"], "allow");
        assert_eq!(record["reason"].as_str(), Some(reason.as_str()));
        reason
    }

    pub fn received(&self) -> Vec<Received> {
        self.code.received()
    }

    pub fn state(&self) -> Value {
        let r = self
            .airlock
            .admin(&self.world, "GET", &format!("/v1/workflows/{WORKFLOW}/state"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["state"].clone()
    }

    // ----------------------------------------------- the workflow's steps

    /// Business triage: the candidate list, then the one task ticket.
    pub fn triage(&self) {
        self.ok(
            "business-agent",
            "GET",
            &format!("{REPO}/issues?labels=bug,priority:high&state=open"),
            None,
        );
        self.ok(
            "business-agent",
            "POST",
            &format!("{REPO}/tasks"),
            Some(
                json!({ "key": "task-1042", "title": "Fix #1042", "bug": 1042, "scope": "src/auth/",
                         "body": "Sessions must end at a password change." }),
            ),
        );
    }

    /// The developer reads the ticket and the file, and comments its plan.
    /// Returns the sha of `src/auth/session.py` on main.
    pub fn plan(&self) -> String {
        self.ok("developer", "GET", &format!("{REPO}/tasks/task-1042"), None);
        let file = self.ok(
            "developer",
            "GET",
            &format!("{REPO}/contents/src/auth/session.py"),
            None,
        );
        self.ok(
            "developer",
            "POST",
            &format!("{REPO}/tasks/task-1042/comments"),
            Some(json!({ "kind": "plan", "body": "Fix is_valid; add a test.",
                         "files": ["src/auth/session.py", "tests/test_session_reset.py"] })),
        );
        file["sha"].as_str().expect("sha").to_string()
    }

    /// Review of the plan, then the business approval.
    pub fn review_and_approve(&self) {
        self.ok("senior-reviewer", "GET", &format!("{REPO}/tasks/task-1042"), None);
        self.ok(
            "senior-reviewer",
            "POST",
            &format!("{REPO}/tasks/task-1042/comments"),
            Some(json!({ "kind": "review", "body": "Sound." })),
        );
        self.ok("business-agent", "GET", &format!("{REPO}/tasks/task-1042"), None);
        self.ok(
            "business-agent",
            "POST",
            &format!("{REPO}/tasks/task-1042/comments"),
            Some(json!({ "kind": "approval", "body": "Approved." })),
        );
    }

    /// The developer creates the fix branch.
    pub fn branch(&self) {
        self.ok(
            "developer",
            "POST",
            &format!("{REPO}/branches"),
            Some(json!({ "name": "fix-1042", "from": "main" })),
        );
    }

    /// Branch, the two planned writes, the pull request.
    pub fn implement(&self, sha: &str) {
        self.branch();
        self.ok(
            "developer",
            "PUT",
            &format!("{REPO}/contents/src/auth/session.py"),
            Some(
                json!({ "branch": "fix-1042", "content": "# fixed (#1042)\n", "message": "fix", "sha": sha }),
            ),
        );
        self.ok(
            "developer",
            "PUT",
            &format!("{REPO}/contents/tests/test_session_reset.py"),
            Some(json!({ "branch": "fix-1042", "content": "def test_reset(): pass\n", "message": "test" })),
        );
        self.ok(
            "developer",
            "POST",
            &format!("{REPO}/pulls"),
            Some(json!({ "title": "Fix #1042", "head": "fix-1042", "base": "main", "body": "As planned." })),
        );
    }

    /// QA and the senior reviewer approve the pull request.
    pub fn pr_approvals(&self) {
        for role in ["qa", "senior-reviewer"] {
            self.ok(role, "GET", &format!("{REPO}/pulls/fix-1042"), None);
            self.ok(
                role,
                "POST",
                &format!("{REPO}/pulls/fix-1042/reviews"),
                Some(json!({ "event": "APPROVE", "body": "ok" })),
            );
        }
    }

    /// Everything up to the merge request.
    pub fn up_to_merge(&self) {
        self.triage();
        let sha = self.plan();
        self.review_and_approve();
        self.implement(&sha);
        self.pr_approvals();
    }
}

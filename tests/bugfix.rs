//! The multi-agent bug fix of `examples/bugfix-workflow/`, end to end: the
//! real binary, the five role policies built from source, the demo code host.
//! Misbehaving agents are denied, each denial names its rule and is audited,
//! and nothing that should not reaches the code host (it records all it got).

mod support;

use serde_json::json;
use support::bugfix::{Bugfix, REPO, ROLES, WORKFLOW};
use support::e2e::send;

#[test]
fn the_demo_runs_the_whole_workflow_and_ends_with_a_verified_audit_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("prebuilt");
    std::fs::create_dir(&policies).expect("mkdir");
    for (name, bytes) in support::bugfix::policies() {
        std::fs::write(policies.join(name), bytes).expect("write");
    }
    let out = std::process::Command::new(support::airlock_bin())
        .args(["demo", "--root"])
        .arg(support::root())
        .arg("--dir")
        .arg(dir.path().join("run"))
        .arg("--policies")
        .arg(&policies)
        .output()
        .expect("airlock demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(stdout.contains("escalate · approval apr_"), "{stdout}");
    assert!(
        stdout.contains("merged: true; main has the fix: true"),
        "{stdout}"
    );
    assert!(stdout.contains("audit verify: ok"), "{stdout}");
    // The trail on disk verifies with the CLI too.
    let log = dir.path().join("run/data/audit.jsonl");
    let verify = support::airlock(&["audit", "verify", log.to_str().expect("utf-8")]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_developer_stays_inside_the_ticket_scope_and_its_read_budget() {
    let w = Bugfix::start();
    w.triage();
    for path in [
        "config/production.env",
        "src/billing/invoice.py",
        ".ci/deploy.yml",
        "src/auth/../../config/production.env",
    ] {
        let r = w.call("developer", "GET", &format!("{REPO}/contents/{path}"), None);
        assert!(matches!(r.status, 403 | 404), "{path}: {} {}", r.status, r.text());
    }
    w.refused(
        "developer",
        "GET",
        &format!("{REPO}/contents/config/production.env"),
        None,
        "denied",
        "(rule: read-scope)",
    );
    // A search is scoped like a read.
    w.refused(
        "developer",
        "GET",
        &format!("{REPO}/search?q=SECRET&path=config/"),
        None,
        "denied",
        "(rule: read-scope)",
    );
    let hits = w.ok(
        "developer",
        "GET",
        &format!("{REPO}/search?q=password&path=src/auth/"),
        None,
    );
    assert!(hits.as_array().is_some_and(|h| !h.is_empty()), "{hits}");
    // Ten reads per session, then the budget says so; it does not refill.
    for i in 0..10 {
        let path = if i % 2 == 0 {
            "src/auth/session.py"
        } else {
            "tests/test_login.py"
        };
        w.ok("developer", "GET", &format!("{REPO}/contents/{path}"), None);
    }
    let reason = w.refused(
        "developer",
        "GET",
        &format!("{REPO}/contents/src/auth/session.py"),
        None,
        "denied",
        "(rule: read-budget)",
    );
    assert!(reason.contains("10"), "{reason}");
    let reads = w
        .received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("contents.read"))
        .count();
    assert_eq!(reads, 10, "exactly the ten allowed reads reached the code host");
    assert!(w.received().iter().all(|r| !r.path.contains("production.env")));
}

#[test]
fn one_ticket_per_workflow_and_each_step_only_at_its_stage() {
    let w = Bugfix::start();
    // Before the ticket exists nobody may act on it.
    w.refused(
        "developer",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        "denied",
        "(rule: stage)",
    );
    w.refused(
        "senior-reviewer",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        "denied",
        "(rule: stage)",
    );
    w.triage();
    w.refused(
        "business-agent",
        "POST",
        &format!("{REPO}/tasks"),
        Some(json!({ "key": "task-1043", "title": "Fix #1043", "bug": 1043, "scope": "src/billing/", "body": "x" })),
        "denied",
        "(rule: one-ticket)",
    );
    // The developer creates no tickets at all.
    w.refused(
        "developer",
        "POST",
        &format!("{REPO}/tasks"),
        Some(json!({ "key": "task-1044", "title": "Mine", "bug": 1044, "scope": "src/", "body": "x" })),
        "denied",
        "(rule: unknown-operation)",
    );
    assert_eq!(w.code.tasks(), ["task-1042"]);
    // The reviewer may read the ticket only once a plan is on it.
    w.refused(
        "senior-reviewer",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        "denied",
        "(rule: stage)",
    );
    let sha = w.plan();
    w.ok("senior-reviewer", "GET", &format!("{REPO}/tasks/task-1042"), None);
    // No branch, write or pull request before the business approval.
    w.refused(
        "developer",
        "POST",
        &format!("{REPO}/branches"),
        Some(json!({ "name": "fix-1042", "from": "main" })),
        "denied",
        "(rule: stage)",
    );
    w.refused(
        "developer",
        "PUT",
        &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "fix-1042", "content": "x", "message": "m", "sha": sha })),
        "denied",
        "(rule: stage)",
    );
    // No merge before the two approvals.
    w.review_and_approve();
    w.implement(&sha);
    w.refused(
        "release",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
        "denied",
        "(rule: two-approvals)",
    );
    assert!(!w.code.pull_merged("fix-1042"));
}

#[test]
fn writes_go_only_to_planned_files_on_the_fix_branch_and_tests_are_read_only() {
    let w = Bugfix::start();
    w.triage();
    let sha = w.plan();
    w.review_and_approve();
    w.branch();
    let write = |path: &str, body: serde_json::Value| (format!("{REPO}/contents/{path}"), Some(body));
    let (p, b) = write(
        "src/auth/session.py",
        json!({ "branch": "main", "content": "x", "message": "m", "sha": sha }),
    );
    w.refused("developer", "PUT", &p, b, "denied", "(rule: fix-branch-only)");
    let (p, b) = write(
        "src/auth/login.py",
        json!({ "branch": "fix-1042", "content": "x", "message": "m" }),
    );
    w.refused("developer", "PUT", &p, b, "denied", "(rule: planned-files)");
    let test_sha = w.ok(
        "developer",
        "GET",
        &format!("{REPO}/contents/tests/test_login.py"),
        None,
    )["sha"]
        .as_str()
        .expect("sha")
        .to_string();
    let (p, b) = write(
        "tests/test_login.py",
        json!({ "branch": "fix-1042", "content": "def test(): pass\n", "message": "m", "sha": test_sha }),
    );
    w.refused("developer", "PUT", &p, b, "denied", "(rule: tests-read-only)");
    assert_eq!(
        w.code.file("main", "src/auth/session.py"),
        w.code.file("fix-1042", "src/auth/session.py"),
        "nothing was written"
    );
    // The planned writes on the fix branch go through.
    let (p, b) = write(
        "src/auth/session.py",
        json!({ "branch": "fix-1042", "content": "# fixed\n", "message": "m", "sha": sha }),
    );
    w.ok("developer", "PUT", &p, b);
    let (p, b) = write(
        "tests/test_session_reset.py",
        json!({ "branch": "fix-1042", "content": "def test(): pass\n", "message": "m" }),
    );
    w.ok("developer", "PUT", &p, b);
    assert_eq!(
        w.code.file("fix-1042", "src/auth/session.py").as_deref(),
        Some("# fixed\n")
    );
    assert_ne!(
        w.code.file("main", "src/auth/session.py").as_deref(),
        Some("# fixed\n")
    );
}

#[test]
fn the_developer_cannot_merge_and_forged_identity_headers_change_nothing() {
    let w = Bugfix::start();
    w.up_to_merge();
    let forged = [
        ("x-airlock-agent", "release-agent"),
        ("x-airlock-role", "release"),
        ("x-airlock-session", w.session_id("release")),
        ("authorization", "Bearer forged.jwt.value"),
    ];
    let before = w.received().len();
    let r = w.call_with(
        "developer",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
        &forged,
    );
    assert_eq!(r.json()["error"], "denied", "{}", r.text());
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap_or("")
            .contains("(rule: separation-of-duties)"),
        "{}",
        r.text()
    );
    assert_eq!(w.received().len(), before);
    // On an allowed request the forged headers are stripped: the code host
    // sees the developer's own token, not the forgery.
    let r = w.call_with(
        "developer",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        &forged,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let last = w.received().pop().expect("received");
    assert_eq!(last.agent.as_deref(), Some("developer-agent"));
    assert_ne!(last.authorization.as_deref(), Some("Bearer forged.jwt.value"));
    assert!(!w.code.pull_merged("fix-1042"));
}

#[test]
fn a_used_single_use_token_cannot_be_replayed() {
    let w = Bugfix::start();
    w.triage();
    let used = w
        .received()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("tasks.create"))
        .expect("the ticket creation");
    assert_eq!(used.status, 201);
    let authorization = used.authorization.clone().expect("its authorization");
    // Replayed straight at the code host (as a thief of the token would):
    // the token verifies, but introspection says it was used.
    let body = json!({ "key": "task-1042", "title": "Fix #1042", "bug": 1042, "scope": "src/auth/",
                       "body": "Sessions must end at a password change." })
    .to_string();
    let url = format!("http://{}{}", w.code.local_addr(), used.path);
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
    assert_eq!(r.json()["error"], "token_inactive");
    assert_eq!(w.code.tasks(), ["task-1042"], "the replay created nothing");
    let token = authorization.trim_start_matches("Bearer ");
    assert_eq!(w.airlock.introspect(&w.world, token)["active"], false);
}

#[test]
fn the_merge_needs_a_human_approval_bound_to_the_exact_request_and_used_once() {
    let w = Bugfix::start();
    w.up_to_merge();
    let merge = format!("{REPO}/pulls/fix-1042/merge");
    let r = w.call("release", "PUT", &merge, Some(json!({})));
    assert_eq!(r.status, 403, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "escalated");
    let id = v["approval_id"].as_str().expect("approval id").to_string();
    assert!(v["reason"].as_str().unwrap_or("").contains(&id));
    let escalation = w
        .airlock
        .audit_records()
        .into_iter()
        .find(|r| r["decision_id"] == v["decision_id"])
        .expect("audited");
    assert_eq!(escalation["verdict"], "escalate");
    assert_eq!(escalation["approval_id"].as_str(), Some(id.as_str()));

    // Pending: not usable yet.
    let with = |body: serde_json::Value| {
        w.call_with(
            "release",
            "PUT",
            &merge,
            Some(body),
            &[("x-airlock-approval", &id)],
        )
    };
    let r = with(json!({}));
    assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    assert!(r.json()["reason"].as_str().unwrap_or("").contains("pending"));

    // A person approves through the CLI.
    let admin = w.airlock.admin_url("");
    let token_file = w.airlock.path().join("admin.token");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--admin-url",
            &admin,
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ]);
        support::airlock(&all)
    };
    let listed = cli(&["approvals", "list", "--pending"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    let approved = cli(&[
        "approvals",
        "approve",
        &id,
        "--as",
        "alice@acme.example",
        "--note",
        "checked",
    ]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let again = cli(&["approvals", "deny", &id, "--as", "mallory"]);
    assert!(!again.status.success(), "an approval is decided once");

    // A different request with the approval: refused, nothing forwarded.
    let before = w.received().len();
    let r = with(json!({ "merge_method": "squash" }));
    assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap_or("")
            .contains("different request")
    );
    // Another agent with the approval: refused.
    let r = w.call_with(
        "qa",
        "PUT",
        &merge,
        Some(json!({})),
        &[("x-airlock-approval", &id)],
    );
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(w.received().len(), before);

    // The identical request: through, once.
    let r = with(json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(w.code.pull_merged("fix-1042"));
    let r = with(json!({}));
    assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    assert!(r.json()["reason"].as_str().unwrap_or("").contains("already used"));
    let shown = cli(&["approvals", "show", &id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\"status\": \"used\""));
    let actions: Vec<String> = w
        .airlock
        .audit_records()
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect();
    assert!(actions.contains(&"approval.approve".to_string()), "{actions:?}");
}

#[test]
fn a_denied_approval_never_lets_the_request_through() {
    let w = Bugfix::start();
    w.up_to_merge();
    let merge = format!("{REPO}/pulls/fix-1042/merge");
    let id = w.call("release", "PUT", &merge, Some(json!({}))).json()["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = w.airlock.admin(
        &w.world,
        "POST",
        &format!("/v1/approvals/{id}/deny"),
        &json!({ "approver": "bob", "note": "not before the release freeze ends" }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = w.call_with(
        "release",
        "PUT",
        &merge,
        Some(json!({})),
        &[("x-airlock-approval", &id)],
    );
    assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    assert!(!w.code.pull_merged("fix-1042"));
}

#[test]
fn parallel_reads_never_exceed_the_read_budget() {
    let w = Bugfix::start();
    w.triage();
    let handle = w.handle("developer").to_string();
    let url = w
        .airlock
        .proxy_url(&format!("/code{REPO}/contents/src/auth/session.py"));
    let auth = format!("Bearer {handle}");
    // 40 requests at once against a budget of 10.
    let statuses: Vec<u16> = w.world.rt.block_on(async {
        let calls = (0..40).map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            tokio::spawn(async move {
                send("GET", &url, &[("proxy-authorization", &auth)], b"")
                    .await
                    .status
            })
        });
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.expect("task"));
        }
        out
    });
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        allowed <= 10,
        "{allowed} reads allowed against a budget of 10: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 403 | 409)),
        "{statuses:?}"
    );
    // Whatever the race left over can still be used, and not one unit more:
    // exactly ten in all.
    let mut total = allowed;
    while w
        .call(
            "developer",
            "GET",
            &format!("{REPO}/contents/src/auth/session.py"),
            None,
        )
        .status
        == 200
    {
        total += 1;
        assert!(total <= 10, "budget exceeded");
    }
    assert_eq!(total, 10);
    let reads = w
        .received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("contents.read"))
        .count();
    assert_eq!(reads, 10, "the code host received exactly the budget");
    let key = format!("budget.reads.{}", w.session_id("developer"));
    assert_eq!(w.state()[&key], "10");
}

#[test]
fn revoking_the_workflow_stops_every_agent_at_once_and_operators_set_state() {
    let w = Bugfix::start();
    w.triage();
    // Operators read and set the workflow's state; the change is audited.
    let r = w.airlock.admin(
        &w.world,
        "PATCH",
        &format!("/v1/workflows/{WORKFLOW}/state"),
        r#"{"note": "paused by ops", "scope": null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.state()["note"], "paused by ops");
    assert!(w.state().get("scope").is_none());
    let r = w
        .airlock
        .admin(&w.world, "DELETE", &format!("/v1/workflows/{WORKFLOW}"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["revoked_sessions"].as_array().map(Vec::len),
        Some(ROLES.len())
    );
    let before = w.received().len();
    for role in ROLES {
        let r = w.call(role, "GET", &format!("{REPO}/tasks/task-1042"), None);
        assert_eq!(r.status, 401, "{role}: {}", r.text());
        assert_eq!(r.json()["error"], "session_revoked");
    }
    assert_eq!(w.received().len(), before);
    // No new session in a revoked workflow.
    let body = json!({ "agent": "dev-2", "role": "developer", "workflow": WORKFLOW }).to_string();
    let r = w.airlock.admin(&w.world, "POST", "/v1/sessions", &body);
    assert_eq!(r.status, 409, "{}", r.text());
    let actions: Vec<String> = w
        .airlock
        .audit_records()
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect();
    assert!(actions.contains(&"workflow.revoke".to_string()));
    assert!(actions.contains(&"workflow.state.set".to_string()));
}

#[test]
fn a_change_after_review_dismisses_the_approvals_until_they_are_given_again() {
    let w = Bugfix::start();
    w.up_to_merge();
    // The developer addresses feedback on the open pull request…
    let sha = w.code.file("fix-1042", "src/auth/session.py").map(|c| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(c.as_bytes()))
    });
    w.ok(
        "developer",
        "PUT",
        &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "fix-1042", "content": "# fixed again\n", "message": "review", "sha": sha })),
    );
    // …so the earlier approvals no longer count.
    w.refused(
        "release",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
        "denied",
        "(rule: two-approvals)",
    );
    // A reviewer that requests changes withdraws its approval too.
    w.pr_approvals();
    w.ok(
        "qa",
        "POST",
        &format!("{REPO}/pulls/fix-1042/reviews"),
        Some(json!({ "event": "REQUEST_CHANGES", "body": "the reset test flakes" })),
    );
    w.refused(
        "release",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
        "denied",
        "(rule: two-approvals)",
    );
    w.ok(
        "qa",
        "POST",
        &format!("{REPO}/pulls/fix-1042/reviews"),
        Some(json!({ "event": "APPROVE", "body": "fixed" })),
    );
    let r = w.call(
        "release",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
    );
    assert_eq!(r.json()["error"], "escalated", "{}", r.text());
}

#[test]
fn kill_9_mid_workflow_then_the_workflow_goes_on_from_where_it_stood() {
    // The embedded default (no [state] in the config): an SQLite database
    // under the data directory.
    let mut w = Bugfix::start();
    w.up_to_merge();
    let ticket_token = w
        .received()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("tasks.create"))
        .and_then(|r| r.authorization)
        .expect("the ticket creation's token");
    let ticket_token = ticket_token.trim_start_matches("Bearer ").to_string();
    let merge = format!("{REPO}/pulls/fix-1042/merge");
    let r = w.call("release", "PUT", &merge, Some(json!({})));
    assert_eq!(r.json()["error"], "escalated", "{}", r.text());
    let approval = r.json()["approval_id"].as_str().expect("approval id").to_string();
    let reads_before = w
        .received()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("contents.read"))
        .count();
    let state_before = w.state();
    assert!(!state_before.as_object().expect("state").is_empty());
    let records_before = w.airlock.audit_records().len();

    w.airlock.kill_and_restart();

    // Workflow state (the stage, reviews, budgets counted in it) as it stood.
    assert_eq!(w.state(), state_before);
    // Every agent's session and handle still works: the developer's read
    // budget goes on counting from where it was (10 per session).
    let mut reads_after = 0;
    loop {
        let r = w.call(
            "developer",
            "GET",
            &format!("{REPO}/contents/src/auth/session.py"),
            None,
        );
        if r.status != 200 {
            assert!(r.text().contains("(rule: read-budget)"), "{}", r.text());
            break;
        }
        reads_after += 1;
        assert!(reads_after <= 10, "the read budget was reset by the restart");
    }
    assert_eq!(
        reads_before + reads_after,
        10,
        "{reads_before} reads before the restart"
    );
    // The consumed single-use token stays consumed.
    assert_eq!(w.airlock.introspect(&w.world, &ticket_token)["active"], false);
    // The pending approval is still pending, and once approved it lets the
    // identical request through once.
    let pending = w
        .airlock
        .admin(&w.world, "GET", "/v1/approvals?status=pending", "");
    assert!(pending.text().contains(&approval), "{}", pending.text());
    let r = w.airlock.admin(
        &w.world,
        "POST",
        &format!("/v1/approvals/{approval}/approve"),
        &json!({ "approver": "alice@acme.example" }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let with_approval = [("x-airlock-approval", approval.as_str())];
    let r = w.call_with("release", "PUT", &merge, Some(json!({})), &with_approval);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(w.code.pull_merged("fix-1042"));
    let r = w.call_with("release", "PUT", &merge, Some(json!({})), &with_approval);
    assert_eq!(r.json()["error"], "approval_invalid", "{}", r.text());
    // One audit chain across the restart, still verifiable.
    assert!(w.airlock.audit_records().len() > records_before);
    let verified = support::airlock(&["audit", "verify", w.airlock.audit_log().to_str().expect("utf-8")]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

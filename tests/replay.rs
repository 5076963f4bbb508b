//! Decision replay: a real run of the bug-fix workflow with the developer's
//! inputs captured, replayed through the same component (no change) and
//! through one built from the developer's source with one rule loosened
//! (exactly the decisions that rule denied flip, by id).

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::bugfix::{Bugfix, REPO};
use support::{airlock, build_policy, example_policy, root};

/// Runs the workflow to the pull request, with the developer trying one
/// write outside the fix branch; returns that write's decision id.
fn run_workflow(w: &Bugfix) -> String {
    w.triage();
    let sha = w.plan();
    w.review_and_approve();
    w.branch();
    let on_main = w.call(
        "developer",
        "PUT",
        &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "main", "content": "x", "message": "m", "sha": sha })),
    );
    assert_eq!(on_main.status, 403, "{}", on_main.text());
    let refused = on_main.json();
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or("")
            .contains("fix-branch-only"),
        "{refused}"
    );
    // An unplanned file: denied by another rule, which stays.
    let unplanned = w.call(
        "developer",
        "PUT",
        &format!("{REPO}/contents/src/auth/login.py"),
        Some(json!({ "branch": "fix-1042", "content": "x", "message": "m" })),
    );
    assert_eq!(unplanned.status, 403, "{}", unplanned.text());
    w.ok(
        "developer",
        "PUT",
        &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "fix-1042", "content": "# fixed\n", "message": "fix", "sha": sha })),
    );
    w.ok(
        "developer",
        "POST",
        &format!("{REPO}/pulls"),
        Some(json!({ "title": "Fix #1042", "head": "fix-1042", "base": "main", "body": "As planned." })),
    );
    refused["decision_id"].as_str().expect("decision id").to_string()
}

/// `airlock policy replay FILE --inputs CAPTURE --audit AUDIT --role developer --json`.
fn replay(w: &Bugfix, component: &Path, extra: &[&str]) -> (i32, Value) {
    let data = w.airlock.path().join("data");
    let capture = data.join("capture.jsonl");
    let audit = w.airlock.audit_log();
    let mut args = vec![
        "policy",
        "replay",
        component.to_str().expect("utf-8"),
        "--inputs",
        capture.to_str().expect("utf-8"),
        "--audit",
        audit.to_str().expect("utf-8"),
        "--role",
        "developer",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = airlock(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "replay printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The developer's policy built from its source with `fix-branch-only`
/// loosened to let writes onto `main` through: a copy of the crate outside
/// the workspace, on the workspace's lock file, under a name of its own so
/// that its build never overwrites the real developer component.
fn loosened_developer(dir: &Path) -> PathBuf {
    let crate_dir = dir.join("developer-loosened");
    std::fs::create_dir_all(crate_dir.join("src")).expect("mkdir");
    let source = std::fs::read_to_string(root().join("policies/developer/src/lib.rs")).expect("source");
    let rule = "ensure(target == fix, \"fix-branch-only\"";
    assert_eq!(source.matches(rule).count(), 1, "the rule to loosen moved");
    let loosened = source.replace(
        rule,
        "ensure(target == fix || target == MAIN, \"fix-branch-only\"",
    );
    std::fs::write(crate_dir.join("src/lib.rs"), loosened).expect("write source");
    let manifest = format!(
        r#"[package]
name = "developer-loosened"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
airlock-sdk = {{ path = {sdk:?} }}
bugfix-common = {{ path = {common:?} }}

[profile.release]
debug = false

[workspace]
"#,
        sdk = root().join("sdk"),
        common = root().join("policies/bugfix-common"),
    );
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).expect("manifest");
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).expect("lock file");
    build_policy(&crate_dir)
}

#[test]
fn replay_reports_exactly_the_decisions_a_loosened_rule_flips() {
    let w = Bugfix::start_capturing(&["developer"]);
    let flipped = run_workflow(&w);

    // Every developer decision is captured, linked to its audit record.
    let audited: Vec<String> = w
        .airlock
        .audit_records()
        .into_iter()
        .filter(|r| r["kind"] == "decision" && r["role"] == "developer")
        .map(|r| r["decision_id"].as_str().unwrap_or("").to_string())
        .collect();
    let capture = std::fs::read_to_string(w.airlock.path().join("data/capture.jsonl")).expect("capture");
    let captured: Vec<Value> = capture
        .lines()
        .map(|l| serde_json::from_str(l).expect("capture line"))
        .collect();
    assert!(audited.len() >= 7, "{audited:?}");
    for id in &audited {
        assert!(
            captured.iter().any(|c| &c["decision_id"] == id),
            "decision {id} not captured"
        );
    }
    assert!(
        captured.iter().all(|c| c["role"] == "developer"),
        "a role without capture_inputs was captured"
    );
    // What a decision saw is there: the state, and no credential.
    let write = captured
        .iter()
        .find(|c| c["decision_id"] == flipped.as_str())
        .expect("the refused write");
    assert_eq!(write["state"]["stage"], "approved", "{write}");
    assert!(
        !capture.contains(w.handle("developer")),
        "a session handle was captured"
    );

    // The same component: nothing changes.
    let same = example_policy("developer");
    let (code, report) = replay(&w, &same, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["replayed"], audited.len(), "{report}");
    assert_eq!(report["unchanged"], audited.len(), "{report}");
    assert_eq!(report["changed"], json!([]), "{report}");

    // Loosened: exactly the write onto main flips, by id; exit 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let loosened = loosened_developer(dir.path());
    let (code, report) = replay(&w, &loosened, &[]);
    assert_eq!(code, 1, "a change must fail the replay: {report}");
    let changed = report["changed"].as_array().expect("changed");
    assert_eq!(changed.len(), 1, "{report}");
    assert_eq!(changed[0]["decision_id"], flipped.as_str());
    assert_eq!(changed[0]["kind"], "deny→allow");
    assert_eq!(changed[0]["operation"], "contents.write");
    assert_eq!(report["unchanged"], audited.len() - 1);
    let (code, _) = replay(&w, &loosened, &["--allow-changes"]);
    assert_eq!(code, 0, "--allow-changes");
}

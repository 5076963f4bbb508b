//! The `airlock policy` commands, run as the real binary against policies
//! built from source.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{airlock, example_policy, root};

const EXAMPLES: [&str; 10] = [
    "crash-tracker",
    "analytics-agent",
    "code-reviewer",
    "pr-creator",
    // An MCP service's role.
    "github-mcp",
    // The bug-fix workflow's roles.
    "business-agent",
    "developer",
    "senior-reviewer",
    "qa",
    "release",
];

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eval(component: &Path, request: &Path) -> Value {
    let out = airlock(&[
        "policy",
        "eval",
        component.to_str().expect("utf-8"),
        "--request",
        request.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "eval failed: {}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("one JSON object on stdout")
}

#[test]
fn pr_creator_decisions_through_eval() {
    let component = example_policy("pr-creator");
    let requests = root().join("policies/pr-creator/requests");

    let allow = eval(&component, &requests.join("small-change.json"));
    assert_eq!(allow["verdict"], "allow", "{allow}");
    assert_eq!(allow["grant"]["scopes"], serde_json::json!(["pulls:create"]));
    assert!(allow["fuel"].as_u64().is_some_and(|f| f > 0) && allow["micros"].as_u64().is_some());
    assert!(
        allow["policy"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );

    for (file, rule) in [
        ("touches-auth.json", "auth/login.rs"),
        ("too-large.json", "500"),
        ("modifies-test.json", "test"),
    ] {
        let deny = eval(&component, &requests.join(file));
        assert_eq!(deny["verdict"], "deny", "{file}: {deny}");
        let reason = deny["reason"].as_str().expect("a reason");
        assert!(
            reason.contains(rule),
            "{file}: reason {reason:?} should name {rule:?}"
        );
        assert!(deny["grant"].is_null());
    }
}

#[test]
fn every_example_policy_passes_its_case_table() {
    for name in EXAMPLES {
        let component = example_policy(name);
        let cases = root().join("policies").join(name).join("cases.toml");
        let out = airlock(&[
            "policy",
            "test",
            component.to_str().expect("utf-8"),
            "--cases",
            cases.to_str().expect("utf-8"),
        ]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{name}:\n{text}{}", stderr(&out));
        let last = text.lines().last().expect("a summary line");
        let passed: usize = last
            .strip_suffix(" passed, 0 failed")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(passed >= 5, "{name}: {last}");
        assert_eq!(text.lines().filter(|l| l.starts_with("PASS")).count(), passed);
    }
}

#[test]
fn a_failing_case_fails_the_run() {
    let component = example_policy("crash-tracker");
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        r#"
[defaults.principal]
agent = "a"
role = "crash-tracker"
session = "s"
workflow = "w"

[[case]]
name = "reads"
expect = "allow"
[case.request.action]
service = "crash-reporting"
method = "GET"
path = "/crashes/1"

[[case]]
name = "wrongly expects a write to pass"
expect = "allow"
[case.request.action]
service = "crash-reporting"
method = "DELETE"
path = "/crashes/1"

[[case]]
name = "wrong reason"
expect = "deny"
reason = "no such words"
[case.request.action]
service = "crash-reporting"
method = "POST"
path = "/crashes"
"#,
    )
    .expect("write");
    let out = airlock(&[
        "policy",
        "test",
        component.to_str().expect("utf-8"),
        "--cases",
        cases.to_str().expect("utf-8"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  wrongly expects a write to pass: expected allow, got deny"),
        "{text}"
    );
    assert!(text.contains("does not contain \"no such words\""), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 2 failed"));
}

#[test]
fn check_lists_imports_and_exports_or_says_why_not() {
    let component = example_policy("pr-creator");
    let out = airlock(&["policy", "check", component.to_str().expect("utf-8")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        text.contains("ok: pr-creator")
            && text.contains("implements the policy world of airlock:policy@0.2.0"),
        "{text}"
    );
    assert!(
        text.contains("imports:") && text.contains("airlock:policy/types@0.2.0"),
        "{text}"
    );
    assert!(
        text.contains("func evaluate") && text.contains("func describe"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, support::guest_core("good-allow")).expect("write");
    let other = dir.path().join("other.wasm");
    std::fs::write(&other, support::guest("other-world")).expect("write");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho hi\n").expect("write");
    for (file, why) in [
        (&core, "core module"),
        (&other, "does not implement the policy world"),
        (&junk, "no WebAssembly header"),
        (&dir.path().join("missing.wasm"), "No such file"),
    ] {
        let out = airlock(&["policy", "check", file.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        assert!(stderr(&out).contains(why), "{}: {}", file.display(), stderr(&out));
    }
}

#[test]
fn eval_exits_2_on_bad_input() {
    let component = example_policy("crash-tracker");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"principal\": {\"agent\": \"a\",\n \"role\": 7}}").expect("write");
    let out = airlock(&[
        "policy",
        "eval",
        component.to_str().expect("utf-8"),
        "--request",
        bad_json.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("malformed request JSON") && err.contains("line 2"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    let good = root().join("policies/pr-creator/requests/small-change.json");
    let not_wasm = dir.path().join("policy.wasm");
    std::fs::write(&not_wasm, b"nope").expect("write");
    let out = airlock(&[
        "policy",
        "eval",
        not_wasm.to_str().expect("utf-8"),
        "--request",
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a WebAssembly component"),
        "{}",
        stderr(&out)
    );

    let out = airlock(&[
        "policy",
        "eval",
        component.to_str().expect("utf-8"),
        "--request",
        good.to_str().expect("utf-8"),
        "--memory",
        "lots",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad size");
    assert!(stderr(&out).contains("not a size"), "{}", stderr(&out));
}

#[test]
fn eval_limits_are_applied() {
    let component = example_policy("pr-creator");
    let request = root().join("policies/pr-creator/requests/small-change.json");
    let out = airlock(&[
        "policy",
        "eval",
        component.to_str().expect("utf-8"),
        "--request",
        request.to_str().expect("utf-8"),
        "--fuel",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(
        (v["verdict"].as_str(), v["class"].as_str()),
        (Some("deny"), Some("fuel")),
        "{v}"
    );
    assert_eq!(v["fuel"], 1000);
}

#[test]
fn build_fails_clearly_outside_a_policy_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = airlock(&["policy", "build", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "no policy here; expected Cargo.toml (Rust), policy.py (Python) or policy.js (JavaScript)"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_the_policy_commands() {
    let out = airlock(&["policy", "--help"]);
    let text = stdout(&out);
    for cmd in ["build", "check", "eval", "test"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn config_check_loads_every_role_or_names_the_bad_key() {
    let component = example_policy("crash-tracker");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::copy(&component, dir.path().join("policies/crash-tracker.wasm")).expect("copy");
    let config = dir.path().join("airlock.toml");
    let good = r#"
[policies]
dir = "policies"

[services.crash-reporting]
upstream = "http://127.0.0.1:9"
routes = [{ op = "crashes.read", method = "GET", path = "/crashes/{id}" }]

[roles.crash-tracker]
policy = "crash-tracker.wasm"
services = ["crash-reporting"]
limits = { memory = "8MiB", deadline_ms = 20 }
"#;
    std::fs::write(&config, good).expect("write");
    let out = airlock(&["config", "check", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("crash-tracker: crash-tracker 0.1.0 sha256:"),
        "{}",
        stdout(&out)
    );

    let config_path = config.to_str().expect("utf-8");
    for (broken, message) in [
        (
            good.replace("memory = \"8MiB\"", "memory = \"8 parsecs\""),
            "unknown size unit",
        ),
        (
            good.replace("deadline_ms = 20", "deadline_ms = 99999"),
            "`roles.crash-tracker.limits.deadline_ms`: must be between 1 and 10000",
        ),
        (
            good.replace("crash-tracker.wasm", "../crash-tracker.wasm"),
            "is not a plain relative path inside the policy directory",
        ),
        (good.replace("crash-tracker.wasm", "missing.wasm"), "missing.wasm"),
    ] {
        std::fs::write(&config, &broken).expect("write");
        let out = airlock(&["config", "check", config_path]);
        assert_eq!(out.status.code(), Some(1), "{broken}");
        let err = stderr(&out);
        assert!(
            err.contains(config_path) && err.contains(message),
            "{err} should say {message:?}"
        );
    }
}

//! Contract versions: components built against 0.1.0 keep loading and
//! deciding; 0.2.0 components see the structured MCP call and answer
//! `visible`, and a `visible` that misbehaves hides everything.

mod support;

use std::sync::Arc;

use airlock::policy::{
    FailureClass, Limits, Listing, McpCall, MemoryState, NoState, Principal, Verdict, WorkflowState,
};
use support::{engine, get, guest, post};

fn principal() -> Principal {
    get("svc", "/").principal
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn tool_call(service: &str, tool: &str, arguments: serde_json::Value) -> airlock::policy::PolicyRequest {
    let mut r = post(service, "/mcp");
    r.action.operation = Some(format!("tools/call:{tool}"));
    r.action.mcp = Some(McpCall {
        method: "tools/call".into(),
        name: Some(tool.into()),
        arguments: arguments.to_string(),
        id: Some("1".into()),
    });
    r
}

#[test]
fn a_policy_built_against_0_1_0_still_loads_and_decides() {
    let module = engine()
        .load(&guest("legacy-0-1"), &Limits::default())
        .expect("a 0.1.0 component loads");
    assert_eq!(module.info().contract, "airlock:policy@0.1.0");
    assert_eq!(module.info().name, "legacy-0-1");
    // Matched to 0.1.0's world: it exports evaluate and describe, no visible.
    let exports = &module.info().exports;
    assert!(
        exports.iter().any(|e| e.ends_with("evaluate")) && !exports.iter().any(|e| e.contains("visible")),
        "{exports:?}"
    );
    let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &Limits::default());
    assert_eq!(e.verdict.grant().expect("GET allowed").scopes, ["legacy:read"]);
    // An MCP call reaches it without `mcp` (0.1.0 has no such field) and is
    // decided like any POST.
    let e = module.evaluate(
        &tool_call("svc", "read_file", serde_json::json!({"path": "a"})),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert_eq!(e.verdict, Verdict::Deny("legacy: only GET".into()));
    assert!(e.failure.is_none());
}

#[test]
fn a_0_1_0_policy_shows_nothing_of_a_listing() {
    let module = engine()
        .load(&guest("legacy-0-1"), &Limits::default())
        .expect("loads");
    let v = module.visible(
        &principal(),
        "github-mcp",
        Listing::Tools,
        &names(&["read_file", "write_file"]),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert_eq!(v.visible, [false, false]);
    let failure = v.failure.expect("the reason is recorded");
    assert!(failure.detail.contains("no `visible` export"), "{failure}");
}

#[test]
fn current_policies_implement_0_2_0_and_see_the_mcp_call() {
    let path = support::example_policy("github-mcp");
    let module = engine()
        .load(&std::fs::read(path).expect("component"), &Limits::default())
        .expect("loads");
    assert_eq!(module.info().contract, "airlock:policy@0.2.0");
    let allowed = module.evaluate(
        &tool_call(
            "github-mcp",
            "get_file_contents",
            serde_json::json!({"owner": "acme", "repo": "shop", "path": "src/lib.rs"}),
        ),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert_eq!(
        allowed.verdict.grant().expect("allowed").scopes,
        ["contents:read"]
    );
    // The argument decides: same tool, a path outside the rule.
    let denied = module.evaluate(
        &tool_call(
            "github-mcp",
            "get_file_contents",
            serde_json::json!({"owner": "acme", "repo": "shop", "path": "../.env"}),
        ),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert!(
        denied
            .verdict
            .reason()
            .is_some_and(|r| r.contains("is outside the allowed paths")),
        "{:?}",
        denied.verdict
    );
    let v = module.visible(
        &principal(),
        "github-mcp",
        Listing::Tools,
        &names(&["get_me", "merge_pull_request", "list_issues", "delete_repo"]),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert!(v.failure.is_none(), "{:?}", v.failure);
    assert_eq!(v.visible, [true, false, true, false]);
}

#[test]
fn visible_reads_the_workflow_and_commits_nothing() {
    let module = engine()
        .load(&guest("visible-liar"), &Limits::default())
        .expect("loads");
    let state = Arc::new(MemoryState::default());
    state.set("wf-1", "shown", "b,c");
    let asked = names(&["a", "b", "c"]);
    let v = module.visible(
        &principal(),
        "reads",
        Listing::Prompts,
        &asked,
        state.clone(),
        &Limits::default(),
    );
    assert_eq!(v.visible, [false, true, true]);

    let v = module.visible(
        &principal(),
        "writes",
        Listing::Tools,
        &asked,
        state.clone(),
        &Limits::default(),
    );
    assert_eq!(v.visible, [true, true, true]);
    assert_eq!(
        state.get("wf-1", "listings").expect("store"),
        None,
        "a listing wrote state"
    );
    let e = module.evaluate(&get("svc", "/"), state, &Limits::default());
    assert_eq!(e.verdict, Verdict::Deny("listings=none".into()));
}

#[test]
fn a_misbehaving_visible_hides_everything() {
    let module = engine()
        .load(&guest("visible-liar"), &Limits::default())
        .expect("loads");
    let asked = names(&["a", "b"]);
    let v = module.visible(
        &principal(),
        "wrong-length",
        Listing::Tools,
        &asked,
        Arc::new(NoState),
        &Limits::default(),
    );
    assert_eq!(v.visible, [false, false]);
    let failure = v.failure.expect("recorded");
    assert_eq!(failure.class, FailureClass::InvalidVerdict);
    assert!(failure.detail.contains("3 bools for 2 names"), "{failure}");

    let limits = Limits {
        fuel: 5_000_000,
        ..Limits::default()
    };
    let v = module.visible(
        &principal(),
        "spin",
        Listing::Tools,
        &asked,
        Arc::new(NoState),
        &limits,
    );
    assert_eq!(v.visible, [false, false]);
    assert_eq!(v.failure.expect("recorded").class, FailureClass::Fuel);
}

//! `business-agent`: picks the bug to fix, opens the one task ticket of the
//! workflow, and approves the reviewed plan.
//!
//! Its part of `examples/bugfix-workflow/WORKFLOW.md`:
//! - `issues.list` at triage, with the triage query only
//!   (`labels=bug,priority:high&state=open`; rule `triage-query`);
//! - `issues.read` of any issue at triage or ticket stage;
//! - `tasks.create` at triage, `{"key","title","bug","scope","body"}` with
//!   `key = task-<bug>` and `scope` a relative directory; one per workflow
//!   (rule `one-ticket`) → stage `ticket`, `ticket`, `bug`, `scope`;
//! - `tasks.read` of the ticket from stage ticket on;
//! - `tasks.comment` of kind `approval` on the ticket at stage `reviewed`
//!   → stage `approved` (other kinds or stages: rule `stage`).

use airlock_sdk::prelude::*;
use bugfix_common::{
    Check, CommentKind, Stage, allow, body_object, decide, ensure, is_scope_dir, only_query, param, refuse,
    stage_from, stage_in, string_field, task_comment, text_field, the_ticket,
};

pub const ROLE: &str = "business-agent";

/// The one issue query triage may run.
const TRIAGE_LABELS: &str = "bug,priority:high";
const TRIAGE_STATE: &str = "open";

pub struct BusinessAgent;

impl Policy for BusinessAgent {
    fn describe() -> Description {
        Description::new(ROLE, env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        decide(ROLE, request, |op, action| {
            match op {
                "issues.list" => {
                    stage_in(op, &[Stage::Triage])?;
                    triage_query(action)?;
                }
                "issues.read" => {
                    stage_in(op, &[Stage::Triage, Stage::Ticket])?;
                    only_query(action, &[])?;
                    let number = param(action, "number")?;
                    ensure(is_issue_number(number), "issue", || {
                        format!("{number:?} is not an issue number")
                    })?;
                }
                "tasks.create" => create_ticket(action)?,
                "tasks.read" => {
                    stage_from(op, Stage::Ticket)?;
                    the_ticket(action)?;
                    only_query(action, &[])?;
                }
                "tasks.comment" => {
                    stage_in(op, &[Stage::Reviewed])?;
                    the_ticket(action)?;
                    only_query(action, &[])?;
                    let comment = task_comment(action)?;
                    ensure(comment.kind == CommentKind::Approval, "stage", || {
                        format!(
                            "the business agent posts only the approval comment at stage reviewed, \
                             not a {} comment",
                            comment.kind.as_str()
                        )
                    })?;
                    Stage::Approved.enter();
                }
                _ => {
                    return refuse(
                        "unknown-operation",
                        format!(
                            "{op} is not the business agent's; it lists and reads issues, creates \
                             the task ticket, reads it and approves the plan"
                        ),
                    );
                }
            }
            Ok(allow(op))
        })
    }
}

/// `issues.list`: exactly `labels=bug,priority:high` and `state=open`.
fn triage_query(action: &Action) -> Check<()> {
    let query = &action.query;
    let ok = query.len() == 2
        && action.query("labels") == Some(TRIAGE_LABELS)
        && action.query("state") == Some(TRIAGE_STATE);
    if ok {
        return Ok(());
    }
    let got: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    refuse(
        "triage-query",
        format!(
            "issues.list runs the triage query only: labels={TRIAGE_LABELS}&state={TRIAGE_STATE}, \
             not {:?}",
            got.join("&")
        ),
    )
}

/// `tasks.create`: one ticket per workflow, named after its bug, scoped to
/// one directory. Sets stage `ticket`, `ticket`, `bug` and `scope`.
fn create_ticket(action: &Action) -> Check<()> {
    let op = action.op();
    only_query(action, &[])?;
    let body = body_object(action, &["key", "title", "bug", "scope", "body"], &[])?;
    text_field(op, &body, "title")?;
    text_field(op, &body, "body")?;
    let Some(bug) = body.get("bug").and_then(|b| b.as_u64()).filter(|b| *b > 0) else {
        return refuse("body", format!("{op}: \"bug\" must be a positive integer"));
    };
    let key = string_field(op, &body, "key")?;
    let expected = format!("task-{bug}");
    ensure(key == expected, "ticket-key", || {
        format!("the ticket for bug {bug} is named {expected}, not {key:?}")
    })?;
    let scope = string_field(op, &body, "scope")?;
    ensure(is_scope_dir(scope), "scope", || {
        format!("scope {scope:?} must be a relative directory ending in '/', without '..', e.g. src/auth/")
    })?;
    // Counted before the stage is looked at, so a second ticket is refused
    // for what it is.
    if state::incr("tickets", 1) > 1 {
        return refuse(
            "one-ticket",
            "the workflow has its task ticket; at most one per workflow",
        );
    }
    stage_in(op, &[Stage::Triage])?;
    Stage::Ticket.enter();
    state::set("ticket", key);
    state::set("bug", &bug.to_string());
    state::set("scope", scope);
    Ok(())
}

/// A positive decimal number without leading zeros.
fn is_issue_number(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('0') && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit())
}

export_policy!(BusinessAgent);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json::{self, json};
    use airlock_sdk::testing::Harness;
    use bugfix_common::testing::Req;

    fn triage_list() -> Request {
        Req::new("issues.list")
            .query("labels", "bug,priority:high")
            .query("state", "open")
            .build()
    }

    fn create(body: &serde_json::Value) -> Request {
        Req::new("tasks.create").json(body).build()
    }

    fn ticket_1042() -> serde_json::Value {
        json!({
            "key": "task-1042",
            "title": "Fix: sessions never expire after a password reset",
            "bug": 1042,
            "scope": "src/auth/",
            "body": "Invalidate sessions on password reset.",
        })
    }

    fn approval() -> Request {
        Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": "approval", "body": "Approved, go ahead."}))
            .build()
    }

    fn rule(reason: &str) -> &str {
        bugfix_common::testing::rule_of("business-agent", reason)
    }

    #[test]
    fn walks_its_part_of_the_workflow() {
        let mut h = Harness::<BusinessAgent>::new();
        let grant = h.expect_allow(&triage_list());
        assert_eq!(grant.scopes, ["issues:list"]);
        assert_eq!((grant.ttl_seconds, grant.single_use), (60, true));
        h.expect_allow(&Req::new("issues.read").param("number", "1042").build());

        let grant = h.expect_allow(&create(&ticket_1042()));
        assert_eq!(grant.scopes, ["tasks:create"]);
        assert_eq!(h.state("stage"), Some("ticket"));
        assert_eq!(h.state("ticket"), Some("task-1042"));
        assert_eq!(h.state("bug"), Some("1042"));
        assert_eq!(h.state("scope"), Some("src/auth/"));
        assert_eq!(h.state("tickets"), Some("1"));

        // At ticket: issues still readable, the list is not; the ticket is.
        h.expect_allow(&Req::new("issues.read").param("number", "1043").build());
        assert_eq!(rule(&h.expect_deny(&triage_list())), "stage");
        h.expect_allow(&Req::new("tasks.read").param("key", "task-1042").build());
        // Approval only once the plan is reviewed.
        assert_eq!(rule(&h.expect_deny(&approval())), "stage");
        assert_eq!(h.state("stage"), Some("ticket"));
    }

    #[test]
    fn approves_the_reviewed_plan() {
        let mut h = Harness::<BusinessAgent>::new()
            .with_state("stage", "reviewed")
            .with_state("ticket", "task-1042");
        let grant = h.expect_allow(&approval());
        assert_eq!(grant.scopes, ["tasks:comment"]);
        assert_eq!(h.state("stage"), Some("approved"));
        // Approved once: the stage moved on.
        assert_eq!(rule(&h.expect_deny(&approval())), "stage");
        // Issues are no longer readable after the ticket stage.
        let r = h.expect_deny(&Req::new("issues.read").param("number", "1042").build());
        assert_eq!(rule(&r), "stage");
    }

    #[test]
    fn only_approval_comments() {
        let mut h = Harness::<BusinessAgent>::new()
            .with_state("stage", "reviewed")
            .with_state("ticket", "task-1042");
        for kind in ["plan", "review"] {
            let r = h.expect_deny(
                &Req::new("tasks.comment")
                    .param("key", "task-1042")
                    .json(&json!({"kind": kind, "body": "x"}))
                    .build(),
            );
            assert_eq!(rule(&r), "stage", "{r}");
        }
        let other = Req::new("tasks.comment")
            .param("key", "task-9")
            .json(&json!({"kind": "approval", "body": "x"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&other)), "ticket");
        assert_eq!(h.state("stage"), Some("reviewed"));
    }

    #[test]
    fn triage_query_only() {
        let mut h = Harness::<BusinessAgent>::new();
        let queries: [&[(&str, &str)]; 5] = [
            &[],
            &[("labels", "bug"), ("state", "open")],
            &[("labels", "bug,priority:high"), ("state", "closed")],
            &[
                ("labels", "bug,priority:high"),
                ("state", "open"),
                ("per_page", "100"),
            ],
            &[
                ("labels", "bug,priority:high"),
                ("labels", "bug"),
                ("state", "open"),
            ],
        ];
        for query in queries {
            let mut req = Req::new("issues.list");
            for (k, v) in query {
                req = req.query(k, v);
            }
            let r = h.expect_deny(&req.build());
            assert_eq!(rule(&r), "triage-query", "{query:?}: {r}");
        }
    }

    #[test]
    fn one_ticket_per_workflow() {
        let mut h = Harness::<BusinessAgent>::new();
        h.expect_allow(&create(&ticket_1042()));
        let mut second = ticket_1042();
        second["key"] = json!("task-1043");
        second["bug"] = json!(1043);
        let r = h.expect_deny(&create(&second));
        assert_eq!(rule(&r), "one-ticket", "{r}");
        assert_eq!(h.state("tickets"), Some("1"));
        assert_eq!(h.state("ticket"), Some("task-1042"));
        // Past triage with no ticket counted (inconsistent state): the stage refuses.
        let mut h = Harness::<BusinessAgent>::new().with_state("stage", "planned");
        assert_eq!(rule(&h.expect_deny(&create(&ticket_1042()))), "stage");
    }

    #[test]
    fn ticket_body_is_checked() {
        let mut h = Harness::<BusinessAgent>::new();
        let cases: [(&str, serde_json::Value, &str); 10] = [
            ("key", json!("task-1043"), "ticket-key"),
            ("key", json!("1042"), "ticket-key"),
            ("bug", json!(0), "body"),
            ("bug", json!("1042"), "body"),
            ("bug", json!(1042.5), "body"),
            ("scope", json!("src/auth"), "scope"),
            ("scope", json!("/src/auth/"), "scope"),
            ("scope", json!("src/../config/"), "scope"),
            ("scope", json!("./"), "scope"),
            ("title", json!(""), "body"),
        ];
        for (field, value, want) in cases {
            let mut body = ticket_1042();
            body[field] = value.clone();
            let r = h.expect_deny(&create(&body));
            assert_eq!(rule(&r), want, "{field}={value}: {r}");
        }
        let mut body = ticket_1042();
        body["assignee"] = json!("developer");
        let r = h.expect_deny(&create(&body));
        assert!(r.contains("unknown field \"assignee\""), "{r}");
        assert_eq!(rule(&r), "body");
        let mut body = ticket_1042();
        body.as_object_mut().unwrap().remove("body");
        assert_eq!(rule(&h.expect_deny(&create(&body))), "body");
        let dup = r#"{"key": "task-1042", "title": "t", "bug": 1042, "scope": "src/auth/",
                     "scope": "config/", "body": "b"}"#;
        let r = h.expect_deny(&Req::new("tasks.create").body(dup).build());
        assert!(r.contains("duplicate key"), "{r}");
        let r = h.expect_deny(&Req::new("tasks.create").json(&ticket_1042()).truncated().build());
        assert_eq!(rule(&r), "body");
        // Nothing of the refused attempts was kept.
        assert_eq!(h.state("tickets"), None);
        assert_eq!(h.state("stage"), None);
    }

    #[test]
    fn reads_only_the_ticket_from_ticket_stage() {
        let mut h = Harness::<BusinessAgent>::new();
        let read = Req::new("tasks.read").param("key", "task-1042").build();
        assert_eq!(rule(&h.expect_deny(&read)), "stage");
        let mut h = Harness::<BusinessAgent>::new()
            .with_state("stage", "merged")
            .with_state("ticket", "task-1042");
        h.expect_allow(&read);
        let other = Req::new("tasks.read").param("key", "task-1043").build();
        assert_eq!(rule(&h.expect_deny(&other)), "ticket");
    }

    #[test]
    fn everything_else_is_refused() {
        let mut h = Harness::<BusinessAgent>::new()
            .with_state("stage", "pr_open")
            .with_state("pr", "fix-1042");
        let merge = Req::new("pulls.merge").param("head", "fix-1042").build();
        assert_eq!(rule(&h.expect_deny(&merge)), "unknown-operation");
        let read = Req::new("contents.read").param("path", "README.md").build();
        assert_eq!(rule(&h.expect_deny(&read)), "unknown-operation");
        let other_repo = Req::new("issues.list")
            .param("owner", "acme")
            .param("repo", "billing")
            .query("labels", "bug,priority:high")
            .query("state", "open")
            .build();
        assert_eq!(
            rule(&Harness::<BusinessAgent>::new().expect_deny(&other_repo)),
            "repo"
        );
        let bad_number = Req::new("issues.read").param("number", "01042").build();
        assert_eq!(
            rule(&Harness::<BusinessAgent>::new().expect_deny(&bad_number)),
            "issue"
        );
    }
}

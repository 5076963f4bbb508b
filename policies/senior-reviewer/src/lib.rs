//! `senior-reviewer`: reviews the developer's plan on the ticket, then the
//! pull request. Its approval stands until it requests changes or the code
//! changes; it never approves a pull request its own agent wrote, never
//! writes code and never merges.
//!
//! Its part of `examples/bugfix-workflow/WORKFLOW.md`:
//! - from stage planned: `tasks.read` of the ticket, `contents.read` of
//!   files under the scope on `main` (rules `read-scope`, `ref`; 5 per
//!   session, rule `read-budget`);
//! - at stage planned: `tasks.comment` of kind `review` → stage `reviewed`;
//! - from stage pr_open: `pulls.read` of the pull request; at pr_open:
//!   `pulls.comment` on it and `pulls.review` of it: APPROVE, not by the
//!   agent that wrote it (`pr.author`, rule `separation-of-duties`) nor
//!   while its approval stands (rule `one-approval`), sets
//!   `approved.senior-reviewer` = 1 and `approver.senior-reviewer` = the
//!   agent; REQUEST_CHANGES sets `approved.senior-reviewer` = 0.

use airlock_sdk::prelude::*;
use bugfix_common::{
    Check, CommentKind, MAIN, Stage, allow, body_object, clean_path, decide, ensure, is_under, only_query,
    param, refuse, review_pull, scope, spend, stage_from, stage_in, task_comment, text_field, the_pr,
    the_ticket,
};

pub const ROLE: &str = "senior-reviewer";

const MAX_READS: i64 = 5;

pub struct SeniorReviewer;

impl Policy for SeniorReviewer {
    fn describe() -> Description {
        Description::new(ROLE, env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let (agent, session) = (&request.principal.agent, &request.principal.session);
        decide(ROLE, request, |op, action| {
            match op {
                "tasks.read" => {
                    stage_from(op, Stage::Planned)?;
                    the_ticket(action)?;
                    only_query(action, &[])?;
                }
                "contents.read" => {
                    stage_from(op, Stage::Planned)?;
                    read_file(action)?;
                    spend(
                        "reads",
                        session,
                        MAX_READS,
                        "read-budget",
                        "5 file reads per session; it does not refill",
                    )?;
                }
                "tasks.comment" => {
                    stage_in(op, &[Stage::Planned])?;
                    the_ticket(action)?;
                    only_query(action, &[])?;
                    let comment = task_comment(action)?;
                    ensure(comment.kind == CommentKind::Review, "comment-kind", || {
                        format!(
                            "the senior reviewer posts review comments only, not {} comments",
                            comment.kind.as_str()
                        )
                    })?;
                    Stage::Reviewed.enter();
                }
                "pulls.read" => {
                    stage_from(op, Stage::PrOpen)?;
                    the_pr(action)?;
                    only_query(action, &[])?;
                }
                "pulls.comment" => {
                    stage_in(op, &[Stage::PrOpen])?;
                    the_pr(action)?;
                    only_query(action, &[])?;
                    let body = body_object(action, &["body"], &[])?;
                    text_field(op, &body, "body")?;
                }
                "pulls.review" => {
                    stage_in(op, &[Stage::PrOpen])?;
                    the_pr(action)?;
                    only_query(action, &[])?;
                    review_pull(ROLE, agent, action)?;
                }
                "pulls.merge" => {
                    return refuse(
                        "separation-of-duties",
                        "the senior reviewer may not merge; merging is the release role's",
                    );
                }
                _ => {
                    return refuse(
                        "unknown-operation",
                        format!(
                            "{op} is not the senior reviewer's; it reads the ticket and the code in \
                             scope, reviews the plan, and reads, comments on and reviews the pull \
                             request"
                        ),
                    );
                }
            }
            Ok(allow(op))
        })
    }
}

/// `contents.read`: `main` only, under the scope.
fn read_file(action: &Action) -> Check<()> {
    only_query(action, &["ref"])?;
    if let Some(r) = action.query("ref")
        && r != MAIN
    {
        return refuse(
            "ref",
            format!("the senior reviewer reads main only, not ref {r:?}"),
        );
    }
    let raw = param(action, "path")?;
    let scope = scope()?;
    match clean_path(raw) {
        Some(path) if is_under(&path, &scope) => Ok(()),
        Some(path) => refuse(
            "read-scope",
            format!("path {path} is outside the ticket's scope {scope}"),
        ),
        None => refuse(
            "read-scope",
            format!("path {raw:?} is not a plain relative path (absolute, '..', or control characters)"),
        ),
    }
}

export_policy!(SeniorReviewer);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json::json;
    use airlock_sdk::testing::Harness;
    use bugfix_common::testing::Req;

    fn rule(reason: &str) -> &str {
        bugfix_common::testing::rule_of("senior-reviewer", reason)
    }

    fn at(stage: &str) -> Harness<SeniorReviewer> {
        Harness::<SeniorReviewer>::new()
            .with_state("stage", stage)
            .with_state("ticket", "task-1042")
            .with_state("bug", "1042")
            .with_state("scope", "src/auth/")
            .with_state("plan.files", "src/auth/session.py\ntests/test_session_expiry.py")
    }

    fn pr_open() -> Harness<SeniorReviewer> {
        at("pr_open")
            .with_state("branch", "fix-1042")
            .with_state("pr", "fix-1042")
            .with_state("pr.author", "dev-agent")
    }

    fn read_ticket() -> Request {
        Req::new("tasks.read").param("key", "task-1042").build()
    }

    fn read(path: &str) -> Req {
        Req::new("contents.read").param("path", path)
    }

    fn comment(kind: &str) -> Request {
        Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": kind, "body": "Sound plan; also cover remember-me tokens."}))
            .build()
    }

    fn review(event: &str) -> Request {
        review_as("senior-agent", event)
    }

    fn review_as(agent: &str, event: &str) -> Request {
        Req::new("pulls.review")
            .agent(agent)
            .param("head", "fix-1042")
            .json(&json!({"event": event, "body": "Looks right."}))
            .build()
    }

    #[test]
    fn nothing_before_the_plan() {
        let mut h = at("ticket");
        assert_eq!(rule(&h.expect_deny(&read_ticket())), "stage");
        assert_eq!(
            rule(&h.expect_deny(&read("src/auth/session.py").build())),
            "stage"
        );
        assert_eq!(rule(&h.expect_deny(&comment("review"))), "stage");
        let mut h = Harness::<SeniorReviewer>::new();
        assert_eq!(rule(&h.expect_deny(&read_ticket())), "stage");
    }

    #[test]
    fn reviews_the_plan() {
        let mut h = at("planned");
        assert_eq!(h.expect_allow(&read_ticket()).scopes, ["tasks:read"]);
        let grant = h.expect_allow(&read("src/auth/session.py").build());
        assert_eq!((grant.ttl_seconds, grant.single_use), (60, true));
        h.expect_allow(&read("src/auth/login.py").query("ref", "main").build());
        assert_eq!(h.state("budget.reads.s-1"), Some("2"));
        assert_eq!(h.expect_allow(&comment("review")).scopes, ["tasks:comment"]);
        assert_eq!(h.state("stage"), Some("reviewed"));
        let other = Req::new("tasks.read").param("key", "task-1043").build();
        assert_eq!(rule(&h.expect_deny(&other)), "ticket");
        // One review: the stage moved on. The ticket stays readable.
        assert_eq!(rule(&h.expect_deny(&comment("review"))), "stage");
        h.expect_allow(&read_ticket());
    }

    #[test]
    fn review_comments_only() {
        let mut h = at("planned");
        assert_eq!(rule(&h.expect_deny(&comment("approval"))), "comment-kind");
        let with_files = Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": "review", "body": "b", "files": ["src/auth/x.py"]}))
            .build();
        assert_eq!(rule(&h.expect_deny(&with_files)), "body");
        assert_eq!(h.state("stage"), Some("planned"));
    }

    #[test]
    fn reads_main_in_scope_within_budget() {
        let mut h = at("planned");
        assert_eq!(
            rule(&h.expect_deny(&read("tests/test_login.py").build())),
            "read-scope"
        );
        assert_eq!(
            rule(&h.expect_deny(&read("config/production.env").build())),
            "read-scope"
        );
        assert_eq!(
            rule(&h.expect_deny(&read("src/auth/../../.ci/deploy.yml").build())),
            "read-scope"
        );
        let r = h.expect_deny(&read("src/auth/session.py").query("ref", "fix-1042").build());
        assert_eq!(rule(&r), "ref");
        for _ in 0..5 {
            h.expect_allow(&read("src/auth/session.py").build());
        }
        let r = h.expect_deny(&read("src/auth/session.py").build());
        assert_eq!(rule(&r), "read-budget");
        assert!(r.contains("5 file reads per session"), "{r}");
        assert_eq!(h.state("budget.reads.s-1"), Some("5"));
    }

    #[test]
    fn reviews_the_pull_request() {
        let mut h = pr_open();
        let read_pr = Req::new("pulls.read").param("head", "fix-1042").build();
        assert_eq!(h.expect_allow(&read_pr).scopes, ["pulls:read"]);
        let note = Req::new("pulls.comment")
            .param("head", "fix-1042")
            .json(&json!({"body": "Please add a test for expiry."}))
            .build();
        assert_eq!(h.expect_allow(&note).scopes, ["pulls:comment"]);
        h.expect_allow(&review("COMMENT"));
        assert_eq!(h.state("approved.senior-reviewer"), None);
        h.expect_allow(&review("REQUEST_CHANGES"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("0"));
        assert_eq!(h.expect_allow(&review("APPROVE")).scopes, ["pulls:review"]);
        assert_eq!(h.state("approved.senior-reviewer"), Some("1"));
        assert_eq!(h.state("approver.senior-reviewer"), Some("senior-agent"));
        // Its approval is its own: QA's keys are untouched.
        assert_eq!(h.state("approved.qa"), None);
        assert_eq!(h.state("approver.qa"), None);
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "one-approval");
        let r = h.expect_deny(&review("DISMISS"));
        assert_eq!(rule(&r), "body");
    }

    #[test]
    fn withdraws_and_approves_again() {
        let mut h = pr_open()
            .with_state("approved.senior-reviewer", "1")
            .with_state("approver.senior-reviewer", "senior-agent");
        let r = h.expect_deny(&review("APPROVE"));
        assert_eq!(
            r,
            "senior-reviewer: the senior-reviewer has already approved this pull request; its approval \
             stands until it requests changes or the code changes (rule: one-approval)"
        );
        h.expect_allow(&review("REQUEST_CHANGES"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("0"));
        // COMMENT neither approves nor withdraws.
        h.expect_allow(&review("COMMENT"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("0"));
        h.expect_allow(&review("APPROVE"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("1"));
        // Dismissed by the developer's new commit ("0"): it may approve again.
        let mut h = pr_open().with_state("approved.senior-reviewer", "0");
        h.expect_allow(&review("APPROVE"));
    }

    #[test]
    fn never_approves_its_agents_own_pull_request() {
        let mut h = pr_open();
        let r = h.expect_deny(&review_as("dev-agent", "APPROVE"));
        assert_eq!(
            r,
            "senior-reviewer: dev-agent wrote this pull request and may not approve it (rule: separation-of-duties)"
        );
        assert_eq!(h.state("approved.senior-reviewer"), None);
        // It may still comment or ask for changes on it.
        h.expect_allow(&review_as("dev-agent", "REQUEST_CHANGES"));
        // An unknown author approves nothing.
        let mut h = at("pr_open").with_state("pr", "fix-1042");
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "state");
    }

    #[test]
    fn only_this_pull_request_and_only_while_open() {
        let mut h = pr_open();
        let other = Req::new("pulls.read").param("head", "main").build();
        assert_eq!(rule(&h.expect_deny(&other)), "pr");
        let mut h = at("approved").with_state("branch", "fix-1042");
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "stage");
        let mut h = at("merged").with_state("pr", "fix-1042");
        h.expect_allow(&Req::new("pulls.read").param("head", "fix-1042").build());
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "stage");
    }

    #[test]
    fn never_writes_or_merges() {
        let mut h = pr_open();
        let merge = Req::new("pulls.merge").param("head", "fix-1042").build();
        assert_eq!(rule(&h.expect_deny(&merge)), "separation-of-duties");
        let write = Req::new("contents.write")
            .param("path", "src/auth/session.py")
            .json(&json!({"branch": "fix-1042", "content": "x", "message": "m"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&write)), "unknown-operation");
        let search = Req::new("code.search")
            .query("q", "password")
            .query("path", "src/auth/")
            .build();
        assert_eq!(rule(&h.expect_deny(&search)), "unknown-operation");
    }
}

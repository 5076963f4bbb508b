//! `qa`: verifies the fix through the pull request and reviews it. QA
//! never reads the source tree.
//!
//! Its part of `examples/bugfix-workflow/WORKFLOW.md`:
//! - from stage pr_open: `pulls.read` of the pull request;
//! - at stage pr_open: `pulls.comment` on it and `pulls.review` of it
//!   (APPROVE, not by the agent that wrote it — `pr.author`, rule
//!   `separation-of-duties` — nor while its approval stands, rule
//!   `one-approval`, sets `approved.qa` = 1 and `approver.qa` = the agent;
//!   REQUEST_CHANGES sets `approved.qa` = 0);
//! - `contents.read` and `code.search`: rule `no-source`; anything else:
//!   rule `unknown-operation`.

use airlock_sdk::prelude::*;
use bugfix_common::{
    Stage, allow, body_object, decide, only_query, refuse, review_pull, stage_from, stage_in, text_field,
    the_pr,
};

pub const ROLE: &str = "qa";

pub struct Qa;

impl Policy for Qa {
    fn describe() -> Description {
        Description::new(ROLE, env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        decide(ROLE, request, |op, action| {
            match op {
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
                    review_pull(ROLE, &request.principal.agent, action)?;
                }
                // Search answers are lines of source, so they count as reading it.
                "contents.read" | "code.search" => {
                    return refuse(
                        "no-source",
                        "QA verifies behaviour through the pull request, not the source tree",
                    );
                }
                _ => {
                    return refuse(
                        "unknown-operation",
                        format!("{op} is not QA's; it reads, comments on and reviews the pull request"),
                    );
                }
            }
            Ok(allow(op))
        })
    }
}

export_policy!(Qa);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json::json;
    use airlock_sdk::testing::Harness;
    use bugfix_common::testing::Req;

    fn rule(reason: &str) -> &str {
        bugfix_common::testing::rule_of("qa", reason)
    }

    fn at(stage: &str) -> Harness<Qa> {
        Harness::<Qa>::new()
            .with_state("stage", stage)
            .with_state("ticket", "task-1042")
            .with_state("scope", "src/auth/")
            .with_state("branch", "fix-1042")
            .with_state("pr", "fix-1042")
            .with_state("pr.author", "dev-agent")
    }

    fn read_pr() -> Request {
        Req::new("pulls.read").param("head", "fix-1042").build()
    }

    fn review(event: &str) -> Request {
        review_as("qa-agent", event)
    }

    fn review_as(agent: &str, event: &str) -> Request {
        Req::new("pulls.review")
            .agent(agent)
            .param("head", "fix-1042")
            .json(&json!({"event": event, "body": "Sessions now expire after a reset."}))
            .build()
    }

    #[test]
    fn nothing_before_the_pull_request() {
        let mut h = at("approved");
        assert_eq!(rule(&h.expect_deny(&read_pr())), "stage");
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "stage");
        let mut h = Harness::<Qa>::new();
        assert_eq!(rule(&h.expect_deny(&read_pr())), "stage");
    }

    #[test]
    fn verifies_and_approves() {
        let mut h = at("pr_open");
        let grant = h.expect_allow(&read_pr());
        assert_eq!(grant.scopes, ["pulls:read"]);
        assert_eq!((grant.ttl_seconds, grant.single_use), (60, true));
        let note = Req::new("pulls.comment")
            .param("head", "fix-1042")
            .json(&json!({"body": "Reproduced the bug on main; fixed on the branch."}))
            .build();
        assert_eq!(h.expect_allow(&note).scopes, ["pulls:comment"]);
        h.expect_allow(&review("COMMENT"));
        assert_eq!(h.state("approved.qa"), None);
        h.expect_allow(&review("REQUEST_CHANGES"));
        assert_eq!(h.state("approved.qa"), Some("0"));
        assert_eq!(h.expect_allow(&review("APPROVE")).scopes, ["pulls:review"]);
        assert_eq!(h.state("approved.qa"), Some("1"));
        assert_eq!(h.state("approver.qa"), Some("qa-agent"));
        let r = h.expect_deny(&review("APPROVE"));
        assert_eq!(
            r,
            "qa: the qa has already approved this pull request; its approval stands until it requests \
             changes or the code changes (rule: one-approval)"
        );
        // Its approval is its own: the senior reviewer's keys are untouched.
        assert_eq!(h.state("approved.senior-reviewer"), None);
        assert_eq!(h.state("approver.senior-reviewer"), None);
    }

    #[test]
    fn withdraws_its_approval() {
        let mut h = at("pr_open")
            .with_state("approved.qa", "1")
            .with_state("approver.qa", "qa-agent")
            .with_state("approved.senior-reviewer", "1");
        h.expect_allow(&review("REQUEST_CHANGES"));
        assert_eq!(h.state("approved.qa"), Some("0"));
        // Only its own approval.
        assert_eq!(h.state("approved.senior-reviewer"), Some("1"));
        h.expect_allow(&review("APPROVE"));
        assert_eq!(h.state("approved.qa"), Some("1"));
    }

    #[test]
    fn never_approves_its_agents_own_pull_request() {
        let mut h = at("pr_open");
        let r = h.expect_deny(&review_as("dev-agent", "APPROVE"));
        assert_eq!(
            r,
            "qa: dev-agent wrote this pull request and may not approve it (rule: separation-of-duties)"
        );
        assert_eq!(h.state("approved.qa"), None);
        // A different agent in the same role may.
        h.expect_allow(&review_as("qa-agent-2", "APPROVE"));
        assert_eq!(h.state("approver.qa"), Some("qa-agent-2"));
    }

    #[test]
    fn never_reads_source() {
        let mut h = at("pr_open");
        let read = Req::new("contents.read")
            .param("path", "src/auth/session.py")
            .build();
        let r = h.expect_deny(&read);
        assert_eq!(
            r,
            "qa: QA verifies behaviour through the pull request, not the source tree (rule: no-source)"
        );
        let search = Req::new("code.search")
            .query("q", "password")
            .query("path", "src/auth/")
            .build();
        assert_eq!(rule(&h.expect_deny(&search)), "no-source");
    }

    #[test]
    fn only_this_pull_request() {
        let mut h = at("pr_open");
        let other = Req::new("pulls.review")
            .param("head", "fix-1043")
            .json(&json!({"event": "APPROVE", "body": "ok"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&other)), "pr");
        let bad = Req::new("pulls.review")
            .param("head", "fix-1042")
            .json(&json!({"event": "APPROVE", "body": "ok", "commit_id": "abc"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&bad)), "body");
        let empty = Req::new("pulls.comment")
            .param("head", "fix-1042")
            .json(&json!({"body": " "}))
            .build();
        assert_eq!(rule(&h.expect_deny(&empty)), "body");
        let mut h = at("merged");
        h.expect_allow(&read_pr());
        assert_eq!(rule(&h.expect_deny(&review("APPROVE"))), "stage");
    }

    #[test]
    fn nothing_else() {
        let mut h = at("pr_open");
        let merge = Req::new("pulls.merge").param("head", "fix-1042").build();
        assert_eq!(rule(&h.expect_deny(&merge)), "unknown-operation");
        let ticket = Req::new("tasks.read").param("key", "task-1042").build();
        assert_eq!(rule(&h.expect_deny(&ticket)), "unknown-operation");
        let other_repo = Req::new("pulls.read")
            .param("repo", "infra")
            .param("head", "fix-1042")
            .build();
        assert_eq!(rule(&h.expect_deny(&other_repo)), "repo");
    }
}

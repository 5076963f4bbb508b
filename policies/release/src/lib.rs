//! `release`: merges the workflow's pull request once QA and the senior
//! reviewer approved it, as two different agents, never its author's, and
//! only with a human's approval of the merge.
//!
//! Its part of `examples/bugfix-workflow/WORKFLOW.md`:
//! - from stage pr_open: `pulls.read` of the pull request;
//! - at stage pr_open: `pulls.merge` of it (body `{}` or empty), not by the
//!   agent that wrote it (`pr.author`, rule `separation-of-duties`), with
//!   `approved.qa` and `approved.senior-reviewer` both 1 and given by two
//!   different agents (`approver.qa` ≠ `approver.senior-reviewer`; rule
//!   `two-approvals`); without a human approval of this request it
//!   escalates (rule `human-approval`), with one it allows and sets stage
//!   `merged`.

use airlock_sdk::prelude::*;
use bugfix_common::{
    APPROVERS, Stage, allow, approved_by, approver, decide, empty_body, ensure, escalate, not_the_author,
    only_query, refuse, stage_from, stage_in, the_pr,
};

pub const ROLE: &str = "release";

pub struct Release;

impl Policy for Release {
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
                "pulls.merge" => {
                    // At pr_open the plan was approved: the stage only gets
                    // there through `approved`.
                    stage_in(op, &[Stage::PrOpen])?;
                    let pr = the_pr(action)?;
                    only_query(action, &[])?;
                    empty_body(action)?;
                    not_the_author(&request.principal.agent, "merge")?;
                    let missing: Vec<&str> = APPROVERS.into_iter().filter(|r| !approved_by(r)).collect();
                    if !missing.is_empty() {
                        return refuse(
                            "two-approvals",
                            format!(
                                "merging {pr} needs the approvals of qa and senior-reviewer; missing: {}",
                                missing.join(", ")
                            ),
                        );
                    }
                    // Read only now that both approvals stand.
                    let [first, second] = APPROVERS;
                    let first_agent = approver(first)?;
                    ensure(approver(second)? != first_agent, "two-approvals", || {
                        format!(
                            "merging {pr} needs the approvals of two different agents; {first_agent} approved \
                             as both {first} and {second}"
                        )
                    })?;
                    if request.approval.is_none() {
                        return Ok(escalate(
                            ROLE,
                            "human-approval",
                            &format!("merging {pr} into main needs a human approval"),
                        ));
                    }
                    Stage::Merged.enter();
                }
                _ => {
                    return refuse(
                        "unknown-operation",
                        format!("{op} is not the release role's; it reads and merges the pull request"),
                    );
                }
            }
            Ok(allow(op))
        })
    }
}

export_policy!(Release);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing::Harness;
    use bugfix_common::testing::Req;

    fn rule(reason: &str) -> &str {
        bugfix_common::testing::rule_of("release", reason)
    }

    fn at(stage: &str) -> Harness<Release> {
        Harness::<Release>::new()
            .with_state("stage", stage)
            .with_state("ticket", "task-1042")
            .with_state("branch", "fix-1042")
            .with_state("pr", "fix-1042")
            .with_state("pr.author", "dev-agent")
    }

    fn approved() -> Harness<Release> {
        at("pr_open")
            .with_state("approved.qa", "1")
            .with_state("approver.qa", "qa-agent")
            .with_state("approved.senior-reviewer", "1")
            .with_state("approver.senior-reviewer", "senior-agent")
    }

    fn merge() -> Req {
        Req::new("pulls.merge")
            .agent("release-agent")
            .param("head", "fix-1042")
    }

    #[test]
    fn merges_with_two_approvals_and_a_human() {
        let mut h = approved();
        let r = h.expect_escalate(&merge().build());
        assert_eq!(
            r,
            "release: merging fix-1042 into main needs a human approval (rule: human-approval)"
        );
        assert_eq!(h.state("stage"), Some("pr_open"));
        let grant = h.expect_allow(&merge().approved_by("alice@acme.example").build());
        assert_eq!(grant.scopes, ["pulls:merge"]);
        assert_eq!((grant.ttl_seconds, grant.single_use), (60, true));
        assert_eq!(h.state("stage"), Some("merged"));
        // Merged once: the stage moved on, even with another approval.
        let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
        assert_eq!(rule(&r), "stage");
        h.expect_allow(&Req::new("pulls.read").param("head", "fix-1042").build());
    }

    #[test]
    fn needs_both_approvals() {
        for (qa, senior, missing) in [
            (false, false, "qa, senior-reviewer"),
            (true, false, "senior-reviewer"),
            (false, true, "qa"),
        ] {
            let mut h = at("pr_open");
            if qa {
                h = h.with_state("approved.qa", "1");
            }
            if senior {
                h = h.with_state("approved.senior-reviewer", "1");
            }
            // A human approval does not replace a reviewer's.
            let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
            assert_eq!(rule(&r), "two-approvals");
            assert!(r.contains(&format!("missing: {missing}")), "{r}");
        }
    }

    #[test]
    fn withdrawn_or_dismissed_approvals_do_not_count() {
        for (qa, senior, missing) in [
            ("0", "1", "qa"),
            ("1", "0", "senior-reviewer"),
            ("0", "0", "qa, senior-reviewer"),
        ] {
            let mut h = approved()
                .with_state("approved.qa", qa)
                .with_state("approved.senior-reviewer", senior);
            let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
            assert_eq!(rule(&r), "two-approvals");
            assert!(
                r.ends_with(&format!("missing: {missing} (rule: two-approvals)")),
                "{r}"
            );
        }
    }

    #[test]
    fn the_author_never_merges() {
        let mut h = approved();
        let r = h.expect_deny(
            &merge()
                .agent("dev-agent")
                .approved_by("alice@acme.example")
                .build(),
        );
        assert_eq!(
            r,
            "release: dev-agent wrote this pull request and may not merge it (rule: separation-of-duties)"
        );
        assert_eq!(h.state("stage"), Some("pr_open"));
        // Nor is the merge escalated to a human on its behalf.
        assert_eq!(
            rule(&h.expect_deny(&merge().agent("dev-agent").build())),
            "separation-of-duties"
        );
        // An unknown author: nobody merges.
        let mut h = approved().with_state("pr.author", "");
        let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
        assert!(
            r.contains("no \"pr.author\"") && r.ends_with("(rule: state)"),
            "{r}"
        );
    }

    #[test]
    fn two_approvals_from_two_agents() {
        let mut h = approved().with_state("approver.senior-reviewer", "qa-agent");
        let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
        assert_eq!(
            r,
            "release: merging fix-1042 needs the approvals of two different agents; qa-agent approved as \
             both qa and senior-reviewer (rule: two-approvals)"
        );
        // An approval whose agent is not recorded does not count either.
        let mut h = approved().with_state("approver.qa", "");
        let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
        assert!(
            r.contains("no \"approver.qa\"") && r.ends_with("(rule: state)"),
            "{r}"
        );
    }

    #[test]
    fn nothing_before_the_pull_request() {
        let mut h = Harness::<Release>::new()
            .with_state("stage", "approved")
            .with_state("approved.qa", "1")
            .with_state("approved.senior-reviewer", "1");
        let r = h.expect_deny(&merge().approved_by("alice@acme.example").build());
        assert_eq!(rule(&r), "stage");
        let r = h.expect_deny(&Req::new("pulls.read").param("head", "fix-1042").build());
        assert_eq!(rule(&r), "stage");
        assert_eq!(
            rule(&Harness::<Release>::new().expect_deny(&merge().build())),
            "stage"
        );
    }

    #[test]
    fn merges_only_this_pull_request_as_is() {
        let mut h = approved();
        let other = Req::new("pulls.merge")
            .param("head", "hotfix")
            .approved_by("alice")
            .build();
        assert_eq!(rule(&h.expect_deny(&other)), "pr");
        h.expect_escalate(&merge().body("{}").build());
        let squash = merge()
            .body(r#"{"merge_method": "squash"}"#)
            .approved_by("alice")
            .build();
        assert_eq!(rule(&h.expect_deny(&squash)), "body");
        let truncated = merge().body("{}").truncated().approved_by("alice").build();
        assert_eq!(rule(&h.expect_deny(&truncated)), "body");
        let query = merge().query("force", "1").approved_by("alice").build();
        assert_eq!(rule(&h.expect_deny(&query)), "query");
        assert_eq!(h.state("stage"), Some("pr_open"));
    }

    #[test]
    fn nothing_else() {
        let mut h = approved();
        let review = Req::new("pulls.review")
            .param("head", "fix-1042")
            .body(r#"{"event": "APPROVE", "body": "ship it"}"#)
            .build();
        assert_eq!(rule(&h.expect_deny(&review)), "unknown-operation");
        let write = Req::new("contents.write")
            .param("path", ".ci/deploy.yml")
            .body(r#"{"branch": "main", "content": "x", "message": "m"}"#)
            .build();
        assert_eq!(rule(&h.expect_deny(&write)), "unknown-operation");
        let wrong_method = merge().method("POST").approved_by("alice").build();
        assert_eq!(rule(&h.expect_deny(&wrong_method)), "method");
    }
}

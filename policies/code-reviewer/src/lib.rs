//! `code-reviewer`: reads code and pull requests and comments on them; never
//! merges.
//!
//! From the role definition: service `code`, actions `[read, comment]`.
//! Everything that is not a read or a comment is denied, and merging gets a
//! rule of its own so the agent is told plainly that no retry will help.

use airlock_sdk::prelude::*;

const SERVICE: &str = "code";
const READ_TTL_SECONDS: u32 = 300;
const COMMENT_TTL_SECONDS: u32 = 60;

/// Operations that post a comment, and the scope each one is granted.
const COMMENT_OPERATIONS: [(&str, &str); 2] = [
    ("pulls.comment", "pulls:comment"),
    ("issues.comment", "issues:comment"),
];

/// Comment lines that make a merge bot merge (or approve for merging) on the
/// commenter's behalf. A reviewer that may not merge must not be able to ask
/// a bot to do it either. Matched case-insensitively, as a whole line or
/// followed by arguments.
const MERGE_BOT_COMMANDS: [&str; 10] = [
    "/merge",
    "/automerge",
    "/approve",
    "/lgtm",
    "bors r+",
    "@bors r+",
    "bors merge",
    "@bors merge",
    "@mergifyio queue",
    "@dependabot merge",
];

pub struct CodeReviewer;

impl Policy for CodeReviewer {
    fn describe() -> Description {
        Description::new("code-reviewer", env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let action = &request.action;
        if action.service != SERVICE {
            return Verdict::deny(format!(
                "code-reviewer may only use the {SERVICE} service, not {}",
                action.service
            ));
        }
        // Before the read check: whatever method a route maps to a merge,
        // the answer is the same.
        if action.op() == "pulls.merge" {
            return Verdict::deny(
                "code-reviewer: reviewers never merge (pulls.merge is denied); \
                 leave a review comment and let a maintainer merge",
            );
        }
        if action.is_read() {
            return Verdict::allow(Grant::new(READ_TTL_SECONDS).scope("code:read"));
        }
        let comment_scope = COMMENT_OPERATIONS
            .iter()
            .find(|(op, _)| *op == action.op())
            .map(|(_, scope)| *scope);
        match comment_scope {
            Some(scope) if action.method == "POST" => comment(action, scope),
            _ => Verdict::deny(format!(
                "code-reviewer: {} {} (operation {}) is not allowed; reviewers may only read \
                 and comment (pulls.comment, issues.comment)",
                action.method,
                action.path,
                if action.op().is_empty() {
                    "none"
                } else {
                    action.op()
                },
            )),
        }
    }
}

/// A comment is allowed when its body is readable and asks no bot to merge.
fn comment(action: &Action, scope: &str) -> Verdict {
    let op = action.op();
    let body = match action.json() {
        Ok(body) => body,
        Err(e) => return Verdict::deny(format!("code-reviewer: {op}: {e}")),
    };
    let Some(text) = body.get("body").and_then(|b| b.as_str()) else {
        return Verdict::deny(format!(
            "code-reviewer: {op}: the JSON body needs a \"body\" string"
        ));
    };
    if text.trim().is_empty() {
        return Verdict::deny(format!("code-reviewer: {op}: the comment is empty"));
    }
    if let Some(command) = merge_bot_command(text) {
        return Verdict::deny(format!(
            "code-reviewer: reviewers never merge: the comment contains the merge-bot \
             command `{command}`"
        ));
    }
    // One token per comment: a leaked token cannot be used to post again.
    Verdict::allow(Grant::new(COMMENT_TTL_SECONDS).scope(scope).single_use())
}

/// The first merge-bot command a comment issues, if any.
fn merge_bot_command(text: &str) -> Option<&'static str> {
    text.lines().find_map(|line| {
        let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
        let line = words.join(" ");
        MERGE_BOT_COMMANDS.into_iter().find(|command| {
            line == *command
                || line
                    .strip_prefix(command)
                    .is_some_and(|rest| rest.starts_with(' '))
        })
    })
}

export_policy!(CodeReviewer);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing::Harness;

    fn get(path: &str, op: &str) -> Request {
        Request::builder(SERVICE, "GET", path).operation(op).build()
    }

    fn comment_on(op: &str, body: &str) -> Request {
        Request::builder(SERVICE, "POST", "/repos/acme/api/issues/7/comments")
            .operation(op)
            .param("owner", "acme")
            .param("repo", "api")
            .body(body)
            .build()
    }

    #[test]
    fn reads_code_and_pull_requests() {
        let mut h = Harness::<CodeReviewer>::new();
        for (path, op) in [
            ("/repos/acme/api/contents/src/lib.rs", "contents.read"),
            ("/repos/acme/api/pulls/7", "pulls.read"),
            ("/repos/acme/api/pulls", "pulls.list"),
            ("/repos/acme/api/issues/7", "issues.read"),
            ("/search/code", "code.search"),
        ] {
            let grant = h.expect_allow(&get(path, op));
            assert_eq!(grant.scopes, ["code:read"], "{op}");
            assert_eq!(grant.ttl_seconds, READ_TTL_SECONDS);
            assert!(!grant.single_use);
        }
        let head = Request::builder(SERVICE, "HEAD", "/repos/acme/api/pulls/7")
            .operation("pulls.read")
            .build();
        assert_eq!(h.expect_allow(&head).scopes, ["code:read"]);
    }

    #[test]
    fn comments_on_pull_requests_and_issues() {
        let mut h = Harness::<CodeReviewer>::new();
        let body = r#"{"body": "This unwrap panics on empty input; return an error instead."}"#;
        let grant = h.expect_allow(&comment_on("pulls.comment", body));
        assert_eq!(grant.scopes, ["pulls:comment"]);
        assert!(grant.single_use);
        assert_eq!(grant.ttl_seconds, COMMENT_TTL_SECONDS);
        let grant = h.expect_allow(&comment_on("issues.comment", body));
        assert_eq!(grant.scopes, ["issues:comment"]);
        assert!(grant.single_use);
    }

    #[test]
    fn never_merges() {
        let mut h = Harness::<CodeReviewer>::new();
        for method in ["PUT", "POST", "GET"] {
            let reason = h.expect_deny(
                &Request::builder(SERVICE, method, "/repos/acme/api/pulls/7/merge")
                    .operation("pulls.merge")
                    .build(),
            );
            assert!(reason.contains("reviewers never merge"), "{reason}");
        }
    }

    #[test]
    fn never_asks_a_bot_to_merge() {
        let mut h = Harness::<CodeReviewer>::new();
        for text in [
            "/merge",
            "Looks good.\n\n/LGTM",
            "  bors   r+  ",
            "@mergifyio queue default",
        ] {
            let body = format!(r#"{{"body": {text:?}}}"#);
            let reason = h.expect_deny(&comment_on("pulls.comment", &body));
            assert!(
                reason.contains("reviewers never merge: the comment contains the merge-bot"),
                "{reason}"
            );
        }
        // Talking about merging is fine.
        h.expect_allow(&comment_on(
            "pulls.comment",
            r#"{"body": "LGTM once CI passes; /merged-paths is a typo though."}"#,
        ));
    }

    #[test]
    fn comment_body_must_be_readable() {
        let mut h = Harness::<CodeReviewer>::new();
        let reason = h.expect_deny(&comment_on("pulls.comment", "nice work"));
        assert!(
            reason.contains("pulls.comment: body is not valid JSON"),
            "{reason}"
        );
        let reason = h.expect_deny(&comment_on("pulls.comment", r#"{"text": "hi"}"#));
        assert!(reason.contains(r#"needs a "body" string"#), "{reason}");
        let reason = h.expect_deny(&comment_on("issues.comment", r#"{"body": "  "}"#));
        assert!(reason.contains("comment is empty"), "{reason}");
        let mut truncated = comment_on("pulls.comment", r#"{"body": "Looks go"#);
        truncated.action.body_truncated = true;
        let reason = h.expect_deny(&truncated);
        assert!(reason.contains("truncated"), "{reason}");
    }

    #[test]
    fn every_other_write_is_denied() {
        let mut h = Harness::<CodeReviewer>::new();
        for (method, path, op) in [
            ("POST", "/repos/acme/api/pulls", "pulls.create"),
            ("POST", "/repos/acme/api/pulls/7/reviews", "pulls.review"),
            ("PUT", "/repos/acme/api/contents/src/lib.rs", "contents.write"),
            ("DELETE", "/repos/acme/api/git/refs/heads/x", "branches.delete"),
            // A comment operation under the wrong method is not a comment.
            ("PATCH", "/repos/acme/api/issues/comments/9", "issues.comment"),
        ] {
            let reason = h.expect_deny(
                &Request::builder(SERVICE, method, path)
                    .operation(op)
                    .body(r#"{"body": "x"}"#)
                    .build(),
            );
            assert!(reason.contains("reviewers may only read and comment"), "{reason}");
            assert!(reason.contains(op), "{reason}");
        }
    }

    #[test]
    fn no_other_service() {
        let mut h = Harness::<CodeReviewer>::new();
        let reason = h.expect_deny(&Request::builder("analytics", "GET", "/dashboards").build());
        assert!(reason.contains("only use the code service"), "{reason}");
    }
}

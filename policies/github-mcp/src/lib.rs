//! `github-mcp`: a coding agent's GitHub tools, over MCP.
//!
//! The role may list issues and read files under the allowed paths of its
//! one repository, may open a pull request only from a branch of its own
//! (`agent/…`), and never merges. A pull request into `main` is allowed;
//! one into any other base branch escalates to a human, and once approved
//! the identical call (carrying the approval) is allowed, once. What it may
//! not call it does not see: `visible` shows exactly the tools `evaluate`
//! can allow.
//!
//! The same rules, message for message, are in `python/policy.py` and
//! `js/policy.js`.

use airlock_sdk::prelude::*;

const SERVICE: &str = "github-mcp";
const ALLOWED_REPOS: &[&str] = &["acme/shop"];
/// Files the role may read: these, and anything under `READABLE_DIRS`.
const READABLE_FILES: &[&str] = &["README.md"];
const READABLE_DIRS: &[&str] = &["src/", "docs/"];
const AGENT_BRANCH_PREFIX: &str = "agent/";
/// The base branch a pull request may target without a human's approval.
const DEFAULT_BASE: &str = "main";
/// The MCP plumbing a client needs before and between tool calls.
const SESSION_METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "notifications/cancelled",
    "ping",
    "tools/list",
];
/// Every tool `evaluate` can allow; `visible` shows these and no others.
const TOOLS: &[&str] = &[
    "get_me",
    "list_issues",
    "get_file_contents",
    "create_pull_request",
];
const TTL_SECONDS: u32 = 60;

pub struct GithubMcp;

impl Policy for GithubMcp {
    fn describe() -> Description {
        Description::new("github-mcp", env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let action = &request.action;
        if action.service != SERVICE {
            return Verdict::deny(format!(
                "github-mcp may only use the {SERVICE} service, not {}",
                action.service
            ));
        }
        let Some(call) = action.mcp() else {
            return Verdict::deny(format!(
                "github-mcp speaks MCP only: {} {} is not an MCP call",
                action.method, action.path
            ));
        };
        if SESSION_METHODS.contains(&call.method.as_str()) {
            return Verdict::allow(Grant::new(TTL_SECONDS).scope("mcp:session"));
        }
        if call.method != "tools/call" {
            return Verdict::deny(format!("github-mcp does not use MCP method {}", call.method));
        }
        match decide_tool(call, request.approval.is_some()) {
            Ok(verdict) => verdict,
            Err(reason) => Verdict::deny(reason),
        }
    }

    fn visible(_: &Principal, _: &str, kind: Listing, names: &[String]) -> Vec<bool> {
        names
            .iter()
            .map(|name| kind == Listing::Tools && TOOLS.contains(&name.as_str()))
            .collect()
    }
}

/// The verdict on a `tools/call`; `Err` is a deny's reason. `approved`:
/// the request carries a human's approval of exactly this call.
fn decide_tool(call: &McpCall, approved: bool) -> Result<Verdict, String> {
    let tool = call.name.as_deref().unwrap_or("");
    let allow = |scope: &str| Verdict::allow(Grant::new(TTL_SECONDS).scope(scope));
    match tool {
        "get_me" => Ok(allow("user:read")),
        "list_issues" => {
            allowed_repo(call, tool)?;
            Ok(allow("issues:read"))
        }
        "get_file_contents" => {
            allowed_repo(call, tool)?;
            let path = call.arg_str("path")?;
            if !readable(&path) {
                return Err(format!(
                    "get_file_contents: path {path} is outside the allowed paths (README.md, src/, docs/)"
                ));
            }
            Ok(allow("contents:read"))
        }
        "create_pull_request" => {
            allowed_repo(call, tool)?;
            let head = call.arg_str("head")?;
            if !(head.starts_with(AGENT_BRANCH_PREFIX) && head.len() > AGENT_BRANCH_PREFIX.len()) {
                return Err(format!(
                    "create_pull_request: head branch {head} is not an agent/ branch"
                ));
            }
            // Into any branch but main only with a human's approval of
            // this very call (the host checks it is for this request).
            let base = call.arg_str("base")?;
            if base != DEFAULT_BASE && !approved {
                return Ok(Verdict::escalate(format!(
                    "create_pull_request: a pull request into {base} needs a human's approval"
                )));
            }
            // One token, one pull request.
            Ok(Verdict::allow(
                Grant::new(TTL_SECONDS).scope("pulls:write").single_use(),
            ))
        }
        "merge_pull_request" => Err("github-mcp never merges pull requests".into()),
        other => Err(format!("tool {other} is not one github-mcp may call")),
    }
}

fn allowed_repo(call: &McpCall, tool: &str) -> Result<(), String> {
    let repo = format!("{}/{}", call.arg_str("owner")?, call.arg_str("repo")?);
    if ALLOWED_REPOS.contains(&repo.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{tool}: repository {repo} is not one github-mcp may use ({})",
            ALLOWED_REPOS.join(", ")
        ))
    }
}

/// A relative path with no `..` or empty segment, that is an allowed file
/// or lies under an allowed directory.
fn readable(path: &str) -> bool {
    let clean = !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    clean
        && (READABLE_FILES.contains(&path)
            || READABLE_DIRS
                .iter()
                .any(|dir| path.starts_with(dir) && path.len() > dir.len()))
}

export_policy!(GithubMcp);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json::json;
    use airlock_sdk::testing::Harness;

    fn call(tool: &str, arguments: airlock_sdk::serde_json::Value) -> Request {
        Request::tool_call(SERVICE, tool, arguments).build()
    }

    #[test]
    fn session_plumbing_is_allowed() {
        let mut h = Harness::<GithubMcp>::new();
        for method in SESSION_METHODS {
            let grant = h.expect_allow(&Request::mcp(SERVICE, method, None, json!({})).build());
            assert_eq!(grant.scopes, ["mcp:session"], "{method}");
        }
    }

    #[test]
    fn reads_files_under_allowed_paths() {
        let mut h = Harness::<GithubMcp>::new();
        for path in ["README.md", "src/lib.rs", "docs/guide/intro.md"] {
            let grant = h.expect_allow(&call(
                "get_file_contents",
                json!({"owner": "acme", "repo": "shop", "path": path}),
            ));
            assert_eq!(grant.scopes, ["contents:read"], "{path}");
        }
    }

    #[test]
    fn refuses_paths_outside_or_escaping() {
        let mut h = Harness::<GithubMcp>::new();
        for path in [
            ".env",
            "../secrets.env",
            "src/../.env",
            "/etc/passwd",
            "src//x",
            "srcs/x",
            "src",
        ] {
            let reason = h.expect_deny(&call(
                "get_file_contents",
                json!({"owner": "acme", "repo": "shop", "path": path}),
            ));
            assert_eq!(
                reason,
                format!(
                    "get_file_contents: path {path} is outside the allowed paths (README.md, src/, docs/)"
                )
            );
        }
    }

    #[test]
    fn one_repository_only() {
        let mut h = Harness::<GithubMcp>::new();
        let reason = h.expect_deny(&call("list_issues", json!({"owner": "acme", "repo": "billing"})));
        assert_eq!(
            reason,
            "list_issues: repository acme/billing is not one github-mcp may use (acme/shop)"
        );
        let grant = h.expect_allow(&call("list_issues", json!({"owner": "acme", "repo": "shop"})));
        assert_eq!(grant.scopes, ["issues:read"]);
    }

    #[test]
    fn pull_requests_only_from_agent_branches_never_merged() {
        let mut h = Harness::<GithubMcp>::new();
        let pr = |head: &str| {
            call(
                "create_pull_request",
                json!({"owner": "acme", "repo": "shop", "title": "Fix", "head": head, "base": "main"}),
            )
        };
        let grant = h.expect_allow(&pr("agent/fix-123"));
        assert_eq!(grant.scopes, ["pulls:write"]);
        assert!(grant.single_use);
        for head in ["main", "agent/", "feature/agent/x"] {
            assert_eq!(
                h.expect_deny(&pr(head)),
                format!("create_pull_request: head branch {head} is not an agent/ branch")
            );
        }
        assert_eq!(
            h.expect_deny(&call(
                "merge_pull_request",
                json!({"owner": "acme", "repo": "shop", "pullNumber": 7})
            )),
            "github-mcp never merges pull requests"
        );
    }

    #[test]
    fn pull_requests_into_another_base_need_a_human() {
        let mut h = Harness::<GithubMcp>::new();
        let args = json!({"owner": "acme", "repo": "shop", "title": "Fix", "head": "agent/fix-1", "base": "release"});
        assert_eq!(
            h.expect_escalate(&call("create_pull_request", args.clone())),
            "create_pull_request: a pull request into release needs a human's approval"
        );
        // With the human's approval of this call, as for main.
        let approved = Request::tool_call(SERVICE, "create_pull_request", args)
            .approval(airlock_sdk::Approval {
                id: "apr_test".into(),
                approver: "alice@acme.example".into(),
                approved_at_ms: 1,
            })
            .build();
        let grant = h.expect_allow(&approved);
        assert_eq!(grant.scopes, ["pulls:write"]);
        assert!(grant.single_use);
        // The head branch and the repository are checked first, and the
        // base must be a string.
        assert_eq!(
            h.expect_deny(&call(
                "create_pull_request",
                json!({"owner": "acme", "repo": "shop", "head": "main", "base": "release"})
            )),
            "create_pull_request: head branch main is not an agent/ branch"
        );
        for base in [json!(null), json!(7), json!(["main"])] {
            assert_eq!(
                h.expect_deny(&call(
                    "create_pull_request",
                    json!({"owner": "acme", "repo": "shop", "head": "agent/x", "base": base})
                )),
                "create_pull_request: argument `base` must be a string"
            );
        }
        assert_eq!(
            h.expect_deny(&call(
                "create_pull_request",
                json!({"owner": "acme", "repo": "shop", "head": "agent/x"})
            )),
            "create_pull_request: argument `base` must be a string"
        );
    }

    #[test]
    fn arguments_must_have_the_right_shape() {
        let mut h = Harness::<GithubMcp>::new();
        assert_eq!(
            h.expect_deny(&call(
                "get_file_contents",
                json!({"owner": "acme", "repo": "shop", "path": 7})
            )),
            "get_file_contents: argument `path` must be a string"
        );
        assert_eq!(
            h.expect_deny(&call("list_issues", json!({"repo": "shop"}))),
            "list_issues: argument `owner` must be a string"
        );
    }

    #[test]
    fn other_tools_methods_and_services_are_refused() {
        let mut h = Harness::<GithubMcp>::new();
        assert_eq!(
            h.expect_deny(&call("delete_repo", json!({"owner": "acme", "repo": "shop"}))),
            "tool delete_repo is not one github-mcp may call"
        );
        assert_eq!(
            h.expect_deny(
                &Request::mcp(SERVICE, "resources/read", Some("file:///etc/passwd"), json!(null)).build()
            ),
            "github-mcp does not use MCP method resources/read"
        );
        assert_eq!(
            h.expect_deny(&Request::builder(SERVICE, "GET", "/repos").build()),
            "github-mcp speaks MCP only: GET /repos is not an MCP call"
        );
        assert_eq!(
            h.expect_deny(&Request::tool_call("code", "get_me", json!({})).build()),
            "github-mcp may only use the github-mcp service, not code"
        );
    }

    #[test]
    fn shows_exactly_the_tools_it_can_allow() {
        let mut h = Harness::<GithubMcp>::new();
        let listed = [
            "get_me",
            "list_issues",
            "get_file_contents",
            "create_pull_request",
            "merge_pull_request",
            "delete_repo",
        ];
        assert_eq!(h.visible_names(SERVICE, Listing::Tools, &listed), TOOLS);
        // Every tool shown has a call that is allowed (no tool is shown in vain).
        for tool in TOOLS {
            let args = json!({"owner": "acme", "repo": "shop", "path": "src/lib.rs", "head": "agent/x", "title": "t", "base": "main"});
            assert!(h.evaluate(&call(tool, args)).is_allow(), "{tool}");
        }
        assert_eq!(
            h.visible(SERVICE, Listing::Resources, &["file:///README.md"]),
            [false]
        );
        assert_eq!(h.visible(SERVICE, Listing::Prompts, &["get_me"]), [false]);
    }
}

//! `developer`: studies the bug inside the ticket's scope, posts the plan,
//! and once the plan is approved writes the planned files on the fix branch
//! and opens the pull request. It never merges.
//!
//! Its part of `examples/bugfix-workflow/WORKFLOW.md`:
//! - from stage ticket: `tasks.read` of the ticket, `issues.read` of its bug,
//!   `code.search` in a directory (`path`) that is the scope, `tests/` or
//!   inside one of them (rule `read-scope`; 5 per session, rule
//!   `search-budget`), `contents.read` at `main` or the fix branch of files
//!   under the scope or `tests/` (rule `read-scope`; 10 per session, rule
//!   `read-budget`);
//! - at stage ticket: `tasks.comment` of kind `plan` listing 1..=10 files
//!   under the scope or `tests/` → stage `planned`, `plan.files`;
//! - at stage approved: `branches.create` of `fix-<bug>` from `main`
//!   → `branch`; `pulls.create` from the fix branch into `main` → stage
//!   `pr_open`, `pr`, `pr.author` (the agent);
//! - at stage approved or pr_open: `contents.write` of planned files (rule
//!   `planned-files`) on the fix branch only (rule `fix-branch-only`), never
//!   changing an existing test (rule `tests-read-only`); at pr_open the write
//!   dismisses the reviewers' approvals (`approved.qa`,
//!   `approved.senior-reviewer` → 0);
//! - `pulls.merge`: rule `separation-of-duties`; anything else:
//!   rule `unknown-operation`.

use airlock_sdk::paths;
use airlock_sdk::prelude::*;
use airlock_sdk::serde_json::Value;
use bugfix_common::{
    Check, CommentKind, MAIN, PR_AUTHOR_KEY, Stage, allow, body_object, branch, bug, clean_path, decide,
    dismiss_approvals, ensure, fix_branch_name, is_canonical, is_under, only_query, optional_text_field,
    param, plan_files, refuse, scope, spend, stage_from, stage_in, string_field, task_comment, text_field,
    the_ticket,
};

pub const ROLE: &str = "developer";

/// Tests live here; the developer may read them and add new ones.
const TESTS_DIR: &str = "tests/";
const MAX_SEARCHES: i64 = 5;
const MAX_READS: i64 = 10;
const MAX_PLAN_FILES: usize = 10;
const MAX_SEARCH_QUERY_BYTES: usize = 200;

pub struct Developer;

impl Policy for Developer {
    fn describe() -> Description {
        Description::new(ROLE, env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let session = &request.principal.session;
        decide(ROLE, request, |op, action| {
            match op {
                "tasks.read" => {
                    stage_from(op, Stage::Ticket)?;
                    the_ticket(action)?;
                    only_query(action, &[])?;
                }
                "issues.read" => {
                    stage_from(op, Stage::Ticket)?;
                    let bug = bug()?;
                    let number = param(action, "number")?;
                    ensure(number == bug, "ticket-bug", || {
                        format!("the developer reads the ticket's bug #{bug} only, not #{number}")
                    })?;
                    only_query(action, &[])?;
                }
                "code.search" => {
                    stage_from(op, Stage::Ticket)?;
                    search_query(action)?;
                    search_dir(action)?;
                    spend(
                        "search",
                        session,
                        MAX_SEARCHES,
                        "search-budget",
                        "5 code searches per session; it does not refill",
                    )?;
                }
                "contents.read" => {
                    stage_from(op, Stage::Ticket)?;
                    read_file(action)?;
                    spend(
                        "reads",
                        session,
                        MAX_READS,
                        "read-budget",
                        "10 file reads per session; it does not refill",
                    )?;
                }
                "tasks.comment" => post_plan(action)?,
                "branches.create" => create_branch(action)?,
                "contents.write" => write_file(action)?,
                "pulls.create" => open_pull(action, &request.principal.agent)?,
                "pulls.merge" => {
                    return refuse(
                        "separation-of-duties",
                        "the developer may not merge; merging is the release role's",
                    );
                }
                _ => {
                    return refuse(
                        "unknown-operation",
                        format!(
                            "{op} is not the developer's; it reads the ticket, its bug and the code \
                             in scope, posts the plan, and writes the fix on its branch up to a \
                             pull request"
                        ),
                    );
                }
            }
            Ok(allow(op))
        })
    }
}

/// `code.search`: one non-empty `q` and one `path`, nothing else.
fn search_query(action: &Action) -> Check<()> {
    only_query(action, &["q", "path"])?;
    let q = action.query("q").unwrap_or("");
    ensure(
        !q.trim().is_empty() && q.len() <= MAX_SEARCH_QUERY_BYTES,
        "query",
        || format!("code.search needs a q of 1..={MAX_SEARCH_QUERY_BYTES} bytes"),
    )
}

/// `code.search`'s `path`: the directory the code host searches, so it is
/// scoped like a read. Normalised (no `..`) and ending in `/`, it must be
/// the scope, `tests/`, or a directory inside one of them. The scope is read
/// only for a directory outside `tests/`.
fn search_dir(action: &Action) -> Check<()> {
    let Some(raw) = action.query("path") else {
        return refuse(
            "read-scope",
            "code.search needs a path: the directory to search, the ticket's scope or tests/ or inside them",
        );
    };
    let dir = match clean_path(raw) {
        Some(dir) if raw.ends_with('/') => dir,
        _ => {
            return refuse(
                "read-scope",
                format!(
                    "search path {raw:?} is not a plain relative directory ending in '/' \
                     (absolute, '..', or control characters)"
                ),
            );
        }
    };
    if paths::has_prefix(&dir, TESTS_DIR) {
        return Ok(());
    }
    let scope = scope()?;
    ensure(paths::has_prefix(&dir, &scope), "read-scope", || {
        format!("search path {dir}/ is outside the ticket's scope {scope} and {TESTS_DIR}")
    })
}

/// `contents.read`: at `main` or the fix branch, under the scope or `tests/`.
fn read_file(action: &Action) -> Check<()> {
    only_query(action, &["ref"])?;
    if let Some(r) = action.query("ref")
        && r != MAIN
        && Some(r) != branch().as_deref()
    {
        return refuse(
            "ref",
            format!("the developer reads main or the fix branch, not ref {r:?}"),
        );
    }
    let raw = param(action, "path")?;
    let scope = scope()?;
    match clean_path(raw) {
        Some(path) if is_under(&path, &scope) || is_under(&path, TESTS_DIR) => Ok(()),
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

/// Where the developer may plan changes and write: the scope and `tests/`.
fn in_reach(path: &str, scope: &str) -> bool {
    is_under(path, scope) || is_under(path, TESTS_DIR)
}

/// `tasks.comment` of kind `plan` at stage ticket: 1..=10 distinct files,
/// each under the scope or `tests/`. Sets stage `planned` and `plan.files`.
fn post_plan(action: &Action) -> Check<()> {
    let op = action.op();
    stage_in(op, &[Stage::Ticket])?;
    the_ticket(action)?;
    only_query(action, &[])?;
    let comment = task_comment(action)?;
    ensure(comment.kind == CommentKind::Plan, "comment-kind", || {
        format!(
            "the developer posts plan comments only, not {} comments",
            comment.kind.as_str()
        )
    })?;
    let Some(Value::Array(items)) = comment.files else {
        return refuse(
            "plan-files",
            "a plan comment lists its files in \"files\", an array",
        );
    };
    ensure((1..=MAX_PLAN_FILES).contains(&items.len()), "plan-files", || {
        format!("a plan lists 1 to {MAX_PLAN_FILES} files, not {}", items.len())
    })?;
    let scope = scope()?;
    let mut files: Vec<&str> = Vec::with_capacity(items.len());
    for item in &items {
        let Some(path) = item.as_str() else {
            return refuse("plan-files", "every planned file must be a path string");
        };
        ensure(is_canonical(path), "plan-files", || {
            format!("planned file {path:?} is not a plain relative path in normal form")
        })?;
        ensure(in_reach(path, &scope), "plan-files", || {
            format!("planned file {path} is outside the ticket's scope {scope} and {TESTS_DIR}")
        })?;
        ensure(!files.contains(&path), "plan-files", || {
            format!("planned file {path} is listed twice")
        })?;
        files.push(path);
    }
    Stage::Planned.enter();
    state::set("plan.files", &files.join("\n"));
    Ok(())
}

/// `branches.create` at stage approved: `fix-<bug>` from `main`, once.
fn create_branch(action: &Action) -> Check<()> {
    let op = action.op();
    stage_in(op, &[Stage::Approved])?;
    only_query(action, &[])?;
    let body = body_object(action, &["name", "from"], &[])?;
    let (name, from) = (string_field(op, &body, "name")?, string_field(op, &body, "from")?);
    let expected = fix_branch_name(&bug()?);
    ensure(name == expected && from == MAIN, "branch-name", || {
        format!("the fix branch is {expected}, from {MAIN}; not {name:?} from {from:?}")
    })?;
    ensure(branch().is_none(), "one-branch", || {
        format!("the fix branch {expected} exists already")
    })?;
    state::set("branch", name);
    Ok(())
}

/// `contents.write` at stage approved or pr_open: a planned file, on the
/// fix branch; a new file under `tests/`, never a change to an existing one.
/// At pr_open (addressing review feedback) it dismisses the approvals, which
/// were given to the code before this write.
fn write_file(action: &Action) -> Check<()> {
    let op = action.op();
    let stage = stage_in(op, &[Stage::Approved, Stage::PrOpen])?;
    let Some(fix) = branch() else {
        return refuse("stage", "contents.write needs the fix branch; create it first");
    };
    only_query(action, &[])?;
    let body = body_object(action, &["branch", "content", "message"], &["sha"])?;
    string_field(op, &body, "content")?;
    text_field(op, &body, "message")?;
    let sha = optional_text_field(op, &body, "sha")?;
    let target = string_field(op, &body, "branch")?;
    ensure(target == fix, "fix-branch-only", || {
        format!("the developer writes to the fix branch {fix} only, never {target:?}")
    })?;
    let raw = param(action, "path")?;
    ensure(is_canonical(raw), "planned-files", || {
        format!("path {raw:?} is not a plain relative path in normal form")
    })?;
    if sha.is_some() && is_under(raw, TESTS_DIR) {
        return refuse(
            "tests-read-only",
            format!(
                "{raw} exists (the write carries its sha): existing tests are read-only; add a new test file"
            ),
        );
    }
    let planned = plan_files()?;
    ensure(planned.iter().any(|p| p == raw), "planned-files", || {
        format!("{raw} is not one of the planned files ({})", planned.join(", "))
    })?;
    if stage == Stage::PrOpen {
        dismiss_approvals();
    }
    Ok(())
}

/// `pulls.create` at stage approved: the fix branch into `main`, once.
/// Sets stage `pr_open`, `pr` and `pr.author` = `agent`, whom the reviewers'
/// and release's policies then keep from approving or merging it.
fn open_pull(action: &Action, agent: &str) -> Check<()> {
    let op = action.op();
    stage_in(op, &[Stage::Approved])?;
    let Some(fix) = branch() else {
        return refuse("stage", "pulls.create needs the fix branch; create it first");
    };
    only_query(action, &[])?;
    let body = body_object(action, &["title", "head", "base", "body"], &[])?;
    text_field(op, &body, "title")?;
    text_field(op, &body, "body")?;
    let (head, base) = (string_field(op, &body, "head")?, string_field(op, &body, "base")?);
    ensure(head == fix && base == MAIN, "pull-branches", || {
        format!("the pull request goes from {fix} into {MAIN}, not from {head:?} into {base:?}")
    })?;
    ensure(state::get("pr").is_none(), "one-pull", || {
        "the pull request is open already; one per workflow".into()
    })?;
    ensure(!agent.is_empty(), "principal", || {
        "pulls.create needs the requesting agent's name: it is recorded as the pull request's author".into()
    })?;
    Stage::PrOpen.enter();
    state::set("pr", head);
    state::set(PR_AUTHOR_KEY, agent);
    Ok(())
}

export_policy!(Developer);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::serde_json::{self, json};
    use airlock_sdk::testing::Harness;
    use bugfix_common::testing::Req;

    fn rule(reason: &str) -> &str {
        bugfix_common::testing::rule_of("developer", reason)
    }

    /// The state the business agent leaves: a ticket for bug 1042 in src/auth/.
    fn at(stage: &str) -> Harness<Developer> {
        Harness::<Developer>::new()
            .with_state("stage", stage)
            .with_state("ticket", "task-1042")
            .with_state("bug", "1042")
            .with_state("scope", "src/auth/")
            .with_state("tickets", "1")
    }

    const PLAN: &str = "src/auth/session.py\ntests/test_session_expiry.py";

    /// Approved, with the plan and the fix branch.
    fn implementing() -> Harness<Developer> {
        at("approved")
            .with_state("plan.files", PLAN)
            .with_state("branch", "fix-1042")
    }

    fn read(path: &str) -> Req {
        Req::new("contents.read").param("path", path)
    }

    fn search_in(q: &str, dir: &str) -> Request {
        Req::new("code.search").query("q", q).query("path", dir).build()
    }

    fn search(q: &str) -> Request {
        search_in(q, "src/auth/")
    }

    fn plan(files: serde_json::Value) -> Request {
        Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": "plan", "body": "Clear sessions on reset.", "files": files}))
            .build()
    }

    fn write(path: &str, branch: &str, sha: Option<&str>) -> Request {
        let mut body = json!({"branch": branch, "content": "fixed\n", "message": "Fix #1042"});
        if let Some(sha) = sha {
            body["sha"] = json!(sha);
        }
        Req::new("contents.write").param("path", path).json(&body).build()
    }

    fn pull(head: &str, base: &str) -> Request {
        Req::new("pulls.create")
            .agent("dev-agent")
            .json(&json!({"title": "Fix #1042", "head": head, "base": base, "body": "Expire sessions."}))
            .build()
    }

    #[test]
    fn nothing_before_the_ticket() {
        let mut h = Harness::<Developer>::new();
        for r in [
            Req::new("tasks.read").param("key", "task-1042").build(),
            Req::new("issues.read").param("number", "1042").build(),
            search("session"),
            read("src/auth/session.py").build(),
        ] {
            assert_eq!(rule(&h.expect_deny(&r)), "stage");
        }
    }

    #[test]
    fn walks_its_part_of_the_workflow() {
        let mut h = at("ticket");
        h.expect_allow(&Req::new("tasks.read").param("key", "task-1042").build());
        h.expect_allow(&Req::new("issues.read").param("number", "1042").build());
        assert_eq!(h.expect_allow(&search("reset_password")).scopes, ["code:search"]);
        let grant = h.expect_allow(&read("src/auth/session.py").build());
        assert_eq!(grant.scopes, ["contents:read"]);
        assert_eq!((grant.ttl_seconds, grant.single_use), (60, true));
        h.expect_allow(&read("tests/test_login.py").query("ref", "main").build());
        assert_eq!(h.state("budget.reads.s-1"), Some("2"));
        assert_eq!(h.state("budget.search.s-1"), Some("1"));

        // Coding is not yet allowed.
        let r = h.expect_deny(
            &Req::new("branches.create")
                .json(&json!({"name": "fix-1042", "from": "main"}))
                .build(),
        );
        assert_eq!(rule(&r), "stage");

        let grant = h.expect_allow(&plan(json!([
            "src/auth/session.py",
            "tests/test_session_expiry.py"
        ])));
        assert_eq!(grant.scopes, ["tasks:comment"]);
        assert_eq!(h.state("stage"), Some("planned"));
        assert_eq!(h.state("plan.files"), Some(PLAN));
        // One plan: the stage moved on.
        assert_eq!(rule(&h.expect_deny(&plan(json!(["src/auth/login.py"])))), "stage");
        // Reading goes on while the plan is reviewed.
        h.expect_allow(&read("src/auth/login.py").build());
    }

    #[test]
    fn implements_the_approved_plan() {
        let mut h = at("approved").with_state("plan.files", PLAN);
        // No writes before the branch exists.
        let r = h.expect_deny(&write("src/auth/session.py", "fix-1042", Some("abc")));
        assert_eq!(rule(&r), "stage");
        let grant = h.expect_allow(
            &Req::new("branches.create")
                .json(&json!({"name": "fix-1042", "from": "main"}))
                .build(),
        );
        assert_eq!(grant.scopes, ["branches:create"]);
        assert_eq!(h.state("branch"), Some("fix-1042"));

        assert_eq!(
            h.expect_allow(&write("src/auth/session.py", "fix-1042", Some("3f2a1c4")))
                .scopes,
            ["contents:write"]
        );
        h.expect_allow(&write("tests/test_session_expiry.py", "fix-1042", None));
        h.expect_allow(&read("src/auth/session.py").query("ref", "fix-1042").build());

        let grant = h.expect_allow(&pull("fix-1042", "main"));
        assert_eq!(grant.scopes, ["pulls:create"]);
        assert_eq!(h.state("stage"), Some("pr_open"));
        assert_eq!(h.state("pr"), Some("fix-1042"));
        // The requesting agent is the pull request's author.
        assert_eq!(h.state("pr.author"), Some("dev-agent"));
        // Writing before the pull request dismisses nothing: nothing to dismiss.
        assert_eq!(h.state("approved.qa"), None);
        // Once open, no second pull request.
        assert_eq!(rule(&h.expect_deny(&pull("fix-1042", "main"))), "stage");
    }

    #[test]
    fn addresses_review_feedback_and_dismisses_approvals() {
        let mut h = implementing()
            .with_state("stage", "pr_open")
            .with_state("pr", "fix-1042")
            .with_state("pr.author", "dev-agent")
            .with_state("approved.qa", "1")
            .with_state("approver.qa", "qa-agent")
            .with_state("approved.senior-reviewer", "1");
        let grant = h.expect_allow(&write("src/auth/session.py", "fix-1042", Some("9b7e0d2")));
        assert_eq!(grant.scopes, ["contents:write"]);
        assert_eq!(h.state("approved.qa"), Some("0"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("0"));
        // Who approved is left as it was; the approval itself is gone.
        assert_eq!(h.state("approver.qa"), Some("qa-agent"));
        assert_eq!(h.state("stage"), Some("pr_open"));
        // The same rules as before the pull request.
        let mut h = h.with_state("approved.qa", "1");
        for (request, expected) in [
            (write("src/auth/session.py", "main", Some("a")), "fix-branch-only"),
            (write("src/auth/login.py", "fix-1042", Some("a")), "planned-files"),
            (
                write("tests/test_session_expiry.py", "fix-1042", Some("a")),
                "tests-read-only",
            ),
        ] {
            assert_eq!(rule(&h.expect_deny(&request)), expected);
        }
        // A refused write dismisses nothing.
        assert_eq!(h.state("approved.qa"), Some("1"));
        h.expect_allow(&write("tests/test_session_expiry.py", "fix-1042", None));
        assert_eq!(h.state("approved.qa"), Some("0"));
        // After the merge nothing is written.
        let mut h = implementing()
            .with_state("stage", "merged")
            .with_state("pr", "fix-1042");
        let r = h.expect_deny(&write("src/auth/session.py", "fix-1042", Some("a")));
        assert_eq!(
            r,
            "developer: contents.write is allowed at stage approved or pr_open only; the workflow is at merged (rule: stage)"
        );
    }

    #[test]
    fn reads_stay_in_scope() {
        let mut h = at("ticket");
        let r = h.expect_deny(&read("config/production.env").build());
        assert_eq!(
            r,
            "developer: path config/production.env is outside the ticket's scope src/auth/ (rule: read-scope)"
        );
        for path in [
            "src/auth/../../config/production.env",
            "/etc/passwd",
            "src/billing/invoice.py",
            "src/authz.py",
        ] {
            assert_eq!(rule(&h.expect_deny(&read(path).build())), "read-scope", "{path}");
        }
        // Normalised before the check.
        h.expect_allow(&read("./src/auth//session.py").build());
        let r = h.expect_deny(&read("src/auth/session.py").query("ref", "release").build());
        assert_eq!(rule(&r), "ref");
        // The fix branch is not readable before it exists.
        let r = h.expect_deny(&read("src/auth/session.py").query("ref", "fix-1042").build());
        assert_eq!(rule(&r), "ref");
        let r = h.expect_deny(&read("src/auth/session.py").query("raw", "1").build());
        assert_eq!(rule(&r), "query");
        // Refused reads cost nothing.
        assert_eq!(h.state("budget.reads.s-1"), Some("1"));
    }

    #[test]
    fn read_budget_does_not_refill() {
        let mut h = at("ticket");
        for _ in 0..10 {
            h.expect_allow(&read("src/auth/session.py").build());
        }
        let r = h.expect_deny(&read("src/auth/login.py").build());
        assert_eq!(rule(&r), "read-budget");
        assert!(r.contains("10 file reads per session; it does not refill"), "{r}");
        assert_eq!(h.state("budget.reads.s-1"), Some("10"));
        // Another session has its own budget.
        h.expect_allow(&read("src/auth/login.py").session("s-2").build());
    }

    #[test]
    fn search_budget() {
        let mut h = at("ticket");
        for dir in ["src/auth/", "tests/", "src/auth/", "tests/", "src/auth/"] {
            h.expect_allow(&search_in("expire", dir));
        }
        assert_eq!(rule(&h.expect_deny(&search("expire"))), "search-budget");
        let mut h = at("ticket");
        let no_q = Req::new("code.search").query("path", "src/auth/").build();
        assert_eq!(rule(&h.expect_deny(&no_q)), "query");
        assert_eq!(rule(&h.expect_deny(&search_in(" ", "src/auth/"))), "query");
        let twice = Req::new("code.search")
            .query("q", "x")
            .query("path", "src/auth/")
            .query("path", "config/")
            .build();
        assert_eq!(rule(&h.expect_deny(&twice)), "query");
        let branch = Req::new("code.search")
            .query("q", "x")
            .query("path", "src/auth/")
            .query("ref", "fix-1042")
            .build();
        assert_eq!(rule(&h.expect_deny(&branch)), "query");
        assert_eq!(h.state("budget.search.s-1"), None);
    }

    #[test]
    fn searches_stay_in_scope() {
        let mut h = at("ticket");
        // The scope, tests/, and directories inside them; normalised first.
        for dir in [
            "src/auth/",
            "src/auth/tokens/",
            "tests/",
            "tests/unit/",
            "./src//auth/",
        ] {
            assert_eq!(
                h.expect_allow(&search_in("password", dir)).scopes,
                ["code:search"],
                "{dir}"
            );
        }
        let r = h.expect_deny(&search_in("password", "config/"));
        assert_eq!(
            r,
            "developer: search path config/ is outside the ticket's scope src/auth/ and tests/ (rule: read-scope)"
        );
        for dir in [
            "src/",
            "src/authz/",
            "src/billing/",
            ".ci/",
            "testsuite/",
            // Not a directory: a prefix match would reach src/authz.py.
            "src/auth",
            "tests",
            "src/auth/../../config/",
            "src/auth/..",
            "/src/auth/",
            "./",
            "/",
            "",
            "src/auth/\n/",
        ] {
            let r = h.expect_deny(&search_in("password", dir));
            assert_eq!(rule(&r), "read-scope", "{dir:?}: {r}");
        }
        // Without a directory the code host would search everything.
        let r = h.expect_deny(&Req::new("code.search").query("q", "password").build());
        assert_eq!(rule(&r), "read-scope");
        assert!(r.contains("code.search needs a path"), "{r}");
        // Refused searches cost nothing.
        assert_eq!(h.state("budget.search.s-1"), Some("5"));
    }

    #[test]
    fn searching_tests_does_not_need_the_scope() {
        // A search under tests/ reads no scope (fewer keys to re-check).
        let mut h = Harness::<Developer>::new().with_state("stage", "ticket");
        h.expect_allow(&search_in("expire", "tests/"));
        let r = h.expect_deny(&search_in("expire", "src/auth/"));
        assert!(r.contains("no \"scope\"") && r.ends_with("(rule: state)"), "{r}");
    }

    #[test]
    fn reads_only_its_ticket_and_bug() {
        let mut h = at("planned");
        let r = h.expect_deny(&Req::new("issues.read").param("number", "1043").build());
        assert_eq!(rule(&r), "ticket-bug");
        let r = h.expect_deny(&Req::new("tasks.read").param("key", "task-1043").build());
        assert_eq!(rule(&r), "ticket");
    }

    #[test]
    fn plan_files_are_checked() {
        let mut h = at("ticket");
        let eleven: Vec<String> = (0..11).map(|i| format!("src/auth/f{i}.py")).collect();
        for files in [
            json!([]),
            json!(eleven),
            json!(["config/production.env"]),
            json!(["src/auth/../billing/invoice.py"]),
            json!(["src/auth//session.py"]),
            json!(["src/auth/session.py", "src/auth/session.py"]),
            json!([1042]),
            json!("src/auth/session.py"),
        ] {
            let r = h.expect_deny(&plan(files.clone()));
            assert_eq!(rule(&r), "plan-files", "{files}: {r}");
        }
        let no_files = Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": "plan", "body": "x"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&no_files)), "plan-files");
        let review = Req::new("tasks.comment")
            .param("key", "task-1042")
            .json(&json!({"kind": "approval", "body": "I approve my own plan"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&review)), "comment-kind");
        assert_eq!(h.state("stage"), Some("ticket"));
        assert_eq!(h.state("plan.files"), None);
    }

    #[test]
    fn branch_rules() {
        let mut h = at("approved").with_state("plan.files", PLAN);
        for (name, from) in [("fix-1043", "main"), ("main", "main"), ("fix-1042", "release")] {
            let r = h.expect_deny(
                &Req::new("branches.create")
                    .json(&json!({"name": name, "from": from}))
                    .build(),
            );
            assert_eq!(rule(&r), "branch-name", "{name} from {from}");
        }
        let mut h = implementing();
        let r = h.expect_deny(
            &Req::new("branches.create")
                .json(&json!({"name": "fix-1042", "from": "main"}))
                .build(),
        );
        assert_eq!(rule(&r), "one-branch");
    }

    #[test]
    fn writes_are_confined() {
        let mut h = implementing();
        assert_eq!(
            rule(&h.expect_deny(&write("src/auth/session.py", "main", Some("a")))),
            "fix-branch-only"
        );
        assert_eq!(
            rule(&h.expect_deny(&write("src/auth/session.py", "fix-1043", None))),
            "fix-branch-only"
        );
        assert_eq!(
            rule(&h.expect_deny(&write("src/auth/login.py", "fix-1042", Some("a")))),
            "planned-files"
        );
        assert_eq!(
            rule(&h.expect_deny(&write(".ci/deploy.yml", "fix-1042", Some("a")))),
            "planned-files"
        );
        assert_eq!(
            rule(&h.expect_deny(&write("./src/auth/session.py", "fix-1042", Some("a")))),
            "planned-files"
        );
        let r = h.expect_deny(&write("tests/test_login.py", "fix-1042", Some("a")));
        assert_eq!(rule(&r), "tests-read-only");
        assert!(
            r.contains("existing tests are read-only; add a new test file"),
            "{r}"
        );
        // Even a planned test file may only be created, not changed.
        assert_eq!(
            rule(&h.expect_deny(&write("tests/test_session_expiry.py", "fix-1042", Some("a")))),
            "tests-read-only"
        );
        let extra = Req::new("contents.write")
            .param("path", "src/auth/session.py")
            .json(&json!({"branch": "fix-1042", "content": "x", "message": "m", "mode": "100755"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&extra)), "body");
        // Before approval nothing is written.
        let mut h = at("reviewed")
            .with_state("plan.files", PLAN)
            .with_state("branch", "fix-1042");
        assert_eq!(
            rule(&h.expect_deny(&write("src/auth/session.py", "fix-1042", None))),
            "stage"
        );
    }

    #[test]
    fn pull_request_rules() {
        let mut h = implementing();
        assert_eq!(
            rule(&h.expect_deny(&pull("fix-1042", "release"))),
            "pull-branches"
        );
        assert_eq!(rule(&h.expect_deny(&pull("main", "main"))), "pull-branches");
        let mut h = at("approved").with_state("plan.files", PLAN);
        assert_eq!(rule(&h.expect_deny(&pull("fix-1042", "main"))), "stage");
        let mut h = implementing().with_state("pr", "fix-1042");
        assert_eq!(rule(&h.expect_deny(&pull("fix-1042", "main"))), "one-pull");
        // The author must have a name.
        let mut h = implementing();
        let nameless = Req::new("pulls.create")
            .agent("")
            .json(&json!({"title": "Fix", "head": "fix-1042", "base": "main", "body": "b"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&nameless)), "principal");
        assert_eq!(h.state("pr.author"), None);
    }

    #[test]
    fn never_merges_or_reviews() {
        let mut h = at("pr_open").with_state("pr", "fix-1042");
        let r = h.expect_deny(&Req::new("pulls.merge").param("head", "fix-1042").build());
        assert_eq!(
            r,
            "developer: the developer may not merge; merging is the release role's (rule: separation-of-duties)"
        );
        let review = Req::new("pulls.review")
            .param("head", "fix-1042")
            .json(&json!({"event": "APPROVE", "body": "lgtm"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&review)), "unknown-operation");
        let create = Req::new("tasks.create")
            .json(&json!({"key": "task-1", "title": "t", "bug": 1, "scope": "src/", "body": "b"}))
            .build();
        assert_eq!(rule(&h.expect_deny(&create)), "unknown-operation");
    }
}

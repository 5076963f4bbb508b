//! What the five policies of the bug-fix workflow share
//! (`examples/bugfix-workflow/WORKFLOW.md` is the contract): the stage
//! order, the workflow keys, the `acme/shop` repository check, the
//! single-use grant, per-session budgets, strict JSON bodies and paths.
//!
//! A role's policy is `decide(ROLE, request, rules)`: [`decide`] runs the
//! checks every role makes (service, operation and method, repository,
//! truncated body, no body on reads), then the role's `rules`, which return
//! either a verdict or a [`Refusal`] naming the rule that refused. Every
//! deny reason reads `<role>: <message> (rule: <rule>)`.
//!
//! Workflow keys are read only when a rule needs them: the host re-checks
//! every key an allow read before it commits, so reading a key the decision
//! does not depend on would only make racing requests retry for nothing.

use std::fmt;

use airlock_sdk::serde_json::{Map, Value};
use airlock_sdk::{Action, Grant, Request, Verdict, log, paths, state};

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// The code host's service name.
pub const SERVICE: &str = "code";
/// The one repository of the workflow.
pub const OWNER: &str = "acme";
pub const REPO: &str = "shop";
/// The branch pull requests go into.
pub const MAIN: &str = "main";
/// Lifetime of every grant; every grant is also single-use.
pub const TTL_SECONDS: u32 = 60;
/// Longest file path any rule accepts. Ten of them still fit in one state
/// value (4 KiB) as `plan.files`.
pub const MAX_PATH_BYTES: usize = 256;

/// The code host's operations: name, HTTP method, and whether the request
/// carries a body.
pub const OPERATIONS: [(&str, &str, bool); 14] = [
    ("issues.list", "GET", false),
    ("issues.read", "GET", false),
    ("tasks.create", "POST", true),
    ("tasks.read", "GET", false),
    ("tasks.comment", "POST", true),
    ("contents.read", "GET", false),
    ("code.search", "GET", false),
    ("branches.create", "POST", true),
    ("contents.write", "PUT", true),
    ("pulls.create", "POST", true),
    ("pulls.read", "GET", false),
    ("pulls.comment", "POST", true),
    ("pulls.review", "POST", true),
    ("pulls.merge", "PUT", true),
];

// ---------------------------------------------------------------------------
// Refusals and verdicts

/// Why a rule refused: the rule's name and a sentence for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}

/// The result of a rule: a value, or the refusal that ends the evaluation.
pub type Check<T> = Result<T, Refusal>;

/// Refuse under `rule`.
pub fn refuse<T>(rule: &'static str, message: impl Into<String>) -> Check<T> {
    Err(Refusal {
        rule,
        message: message.into(),
    })
}

/// `Ok(())` when `condition` holds, else a refusal under `rule`.
pub fn ensure(condition: bool, rule: &'static str, message: impl FnOnce() -> String) -> Check<()> {
    if condition {
        Ok(())
    } else {
        refuse(rule, message())
    }
}

/// The reason text of a deny or escalation: `<role>: <message> (rule: <rule>)`.
pub fn reason(role: &str, rule: &str, message: &str) -> String {
    format!("{role}: {message} (rule: {rule})")
}

/// Allow `op`: one token, valid 60 s, for the scope named after the
/// operation (`tasks.comment` → `tasks:comment`).
pub fn allow(op: &str) -> Verdict {
    Verdict::allow(Grant::new(TTL_SECONDS).scope(scope_of(op)).single_use())
}

/// The scope an operation needs: its name with `.` replaced by `:`.
pub fn scope_of(op: &str) -> String {
    op.replace('.', ":")
}

/// Ask a human, with a reason in the same form as a deny's.
pub fn escalate(role: &str, rule: &str, message: &str) -> Verdict {
    Verdict::escalate(reason(role, rule, message))
}

/// Decide `request` for `role`: the checks every role makes, then `rules`
/// with the operation name and the action. A refusal becomes a deny.
pub fn decide(role: &str, request: &Request, rules: impl FnOnce(&str, &Action) -> Check<Verdict>) -> Verdict {
    let action = &request.action;
    match common_checks(action).and_then(|op| rules(op, action)) {
        Ok(verdict) => verdict,
        Err(refusal) => Verdict::deny(reason(role, refusal.rule, &refusal.message)),
    }
}

fn common_checks(action: &Action) -> Check<&str> {
    ensure(action.service == SERVICE, "service", || {
        format!(
            "only the {SERVICE} service is part of this workflow, not {:?}",
            action.service
        )
    })?;
    let op = action.op();
    let Some(&(_, method, has_body)) = OPERATIONS.iter().find(|(name, _, _)| *name == op) else {
        return refuse(
            "unknown-operation",
            format!(
                "{} {} is not an operation of the code host",
                action.method, action.path
            ),
        );
    };
    ensure(action.method == method, "method", || {
        format!("{op} is a {method} request, not {}", action.method)
    })?;
    let (owner, repo) = (param(action, "owner")?, param(action, "repo")?);
    ensure(owner == OWNER && repo == REPO, "repo", || {
        format!("the workflow works on {OWNER}/{REPO} only, not {owner}/{repo}")
    })?;
    ensure(!action.body_truncated, "body", || {
        format!("{op}: the request body was truncated at the size limit")
    })?;
    ensure(has_body || action.body.is_empty(), "body", || {
        format!("{op} takes no request body")
    })?;
    Ok(op)
}

/// A route parameter the code host's route for this operation always has.
pub fn param<'a>(action: &'a Action, name: &str) -> Check<&'a str> {
    match action.param(name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => refuse(
            "route",
            format!("{}: the request has no {name:?} route parameter", action.op()),
        ),
    }
}

// ---------------------------------------------------------------------------
// Query strings

/// Refuse any query parameter other than `allowed`, and any that repeats
/// (servers disagree on which of two values counts).
pub fn only_query(action: &Action, allowed: &[&str]) -> Check<()> {
    let op = action.op();
    for (index, (key, _)) in action.query.iter().enumerate() {
        if !allowed.contains(&key.as_str()) {
            return refuse(
                "query",
                if allowed.is_empty() {
                    format!("{op} takes no query parameters, got {key:?}")
                } else {
                    format!(
                        "{op}: unknown query parameter {key:?} (allowed: {})",
                        allowed.join(", ")
                    )
                },
            );
        }
        if action.query[..index].iter().any(|(k, _)| k == key) {
            return refuse("query", format!("{op}: query parameter {key:?} is repeated"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// JSON bodies

/// The request body as a JSON object with every field of `required`, any of
/// `optional` and nothing else, parsed strictly (duplicate keys refused).
pub fn body_object(action: &Action, required: &[&str], optional: &[&str]) -> Check<Map<String, Value>> {
    let op = action.op();
    let value = match action.json() {
        Ok(value) => value,
        Err(e) => return refuse("body", format!("{op}: {e}")),
    };
    let Value::Object(object) = value else {
        return refuse("body", format!("{op}: the body must be a JSON object"));
    };
    if let Some(key) = object
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        let known: Vec<&str> = required.iter().chain(optional).copied().collect();
        let known = if known.is_empty() {
            "the body takes no fields".to_string()
        } else {
            format!("known: {}", known.join(", "))
        };
        return refuse(
            "body",
            format!("{op}: unknown field {key:?} in the body ({known})"),
        );
    }
    if let Some(missing) = required.iter().find(|k| !object.contains_key(**k)) {
        return refuse("body", format!("{op}: the body needs a {missing:?} field"));
    }
    Ok(object)
}

/// A body field that must be a string (possibly empty).
pub fn string_field<'a>(op: &str, body: &'a Map<String, Value>, field: &str) -> Check<&'a str> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        _ => refuse("body", format!("{op}: {field:?} must be a string")),
    }
}

/// A body field that must be a non-blank string.
pub fn text_field<'a>(op: &str, body: &'a Map<String, Value>, field: &str) -> Check<&'a str> {
    let s = string_field(op, body, field)?;
    ensure(!s.trim().is_empty(), "body", || {
        format!("{op}: {field:?} must not be empty")
    })?;
    Ok(s)
}

/// An optional body field that, when present, must be a non-blank string.
pub fn optional_text_field<'a>(
    op: &str,
    body: &'a Map<String, Value>,
    field: &str,
) -> Check<Option<&'a str>> {
    match body.get(field) {
        None => Ok(None),
        Some(_) => text_field(op, body, field).map(Some),
    }
}

/// A body that must be empty or exactly `{}`.
pub fn empty_body(action: &Action) -> Check<()> {
    if action.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    body_object(action, &[], &[]).map(|_| ())
}

/// The `kind` of a `tasks.comment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    Plan,
    Review,
    Approval,
}

impl CommentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommentKind::Plan => "plan",
            CommentKind::Review => "review",
            CommentKind::Approval => "approval",
        }
    }
}

/// A `tasks.comment` body, `{"kind", "body", "files"?}`. `files` is kept
/// as the raw JSON value for the plan rule to judge; a comment of another
/// kind that carries files is refused here.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskComment {
    pub kind: CommentKind,
    pub files: Option<Value>,
}

pub fn task_comment(action: &Action) -> Check<TaskComment> {
    let op = action.op();
    let mut body = body_object(action, &["kind", "body"], &["files"])?;
    text_field(op, &body, "body")?;
    let kind = match string_field(op, &body, "kind")? {
        "plan" => CommentKind::Plan,
        "review" => CommentKind::Review,
        "approval" => CommentKind::Approval,
        other => {
            return refuse(
                "body",
                format!("{op}: unknown comment kind {other:?} (plan, review, approval)"),
            );
        }
    };
    let files = body.remove("files");
    ensure(files.is_none() || kind == CommentKind::Plan, "body", || {
        format!("{op}: only a plan comment lists files")
    })?;
    Ok(TaskComment { kind, files })
}

/// The `event` of a `pulls.review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewEvent {
    Approve,
    Comment,
    RequestChanges,
}

/// A `pulls.review` body, `{"event", "body"}`; the review text may be empty.
pub fn review_event(action: &Action) -> Check<ReviewEvent> {
    let op = action.op();
    let body = body_object(action, &["event", "body"], &[])?;
    string_field(op, &body, "body")?;
    match string_field(op, &body, "event")? {
        "APPROVE" => Ok(ReviewEvent::Approve),
        "COMMENT" => Ok(ReviewEvent::Comment),
        "REQUEST_CHANGES" => Ok(ReviewEvent::RequestChanges),
        other => refuse(
            "body",
            format!("{op}: unknown review event {other:?} (APPROVE, COMMENT, REQUEST_CHANGES)"),
        ),
    }
}

// ---------------------------------------------------------------------------
// Workflow stage

/// Where the workflow is. The order of the variants is the stage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// No `stage` key yet.
    Triage,
    Ticket,
    Planned,
    Reviewed,
    Approved,
    PrOpen,
    Merged,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Triage,
        Stage::Ticket,
        Stage::Planned,
        Stage::Reviewed,
        Stage::Approved,
        Stage::PrOpen,
        Stage::Merged,
    ];

    /// The value of the `stage` key (`triage` is never written: it is the
    /// absence of the key).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Triage => "triage",
            Stage::Ticket => "ticket",
            Stage::Planned => "planned",
            Stage::Reviewed => "reviewed",
            Stage::Approved => "approved",
            Stage::PrOpen => "pr_open",
            Stage::Merged => "merged",
        }
    }

    pub fn parse(value: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .find(|s| *s != Stage::Triage && s.as_str() == value)
    }

    /// The workflow's stage; an unknown value is refused (rule `state`).
    pub fn current() -> Check<Stage> {
        match state::get("stage") {
            None => Ok(Stage::Triage),
            Some(value) => match Stage::parse(&value) {
                Some(stage) => Ok(stage),
                None => refuse("state", format!("the workflow is at unknown stage {value:?}")),
            },
        }
    }

    /// Move the workflow to `self` (committed only on allow).
    pub fn enter(self) {
        state::set("stage", self.as_str());
        log::info("workflow stage", &[("stage", self.as_str())]);
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refuse `op` unless the workflow is at one of `allowed` (rule `stage`).
pub fn stage_in(op: &str, allowed: &[Stage]) -> Check<Stage> {
    let stage = Stage::current()?;
    if allowed.contains(&stage) {
        return Ok(stage);
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    refuse(
        "stage",
        format!(
            "{op} is allowed at stage {} only; the workflow is at {stage}",
            names.join(" or ")
        ),
    )
}

/// Refuse `op` unless the workflow is at `min` or later (rule `stage`).
pub fn stage_from(op: &str, min: Stage) -> Check<Stage> {
    let stage = Stage::current()?;
    ensure(stage >= min, "stage", || {
        format!("{op} is allowed from stage {min} on; the workflow is at {stage}")
    })?;
    Ok(stage)
}

// ---------------------------------------------------------------------------
// Workflow keys

/// A key the stage guarantees; missing means the state is inconsistent.
fn required_key(key: &str) -> Check<String> {
    match state::get(key) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => refuse("state", format!("the workflow state has no {key:?}")),
    }
}

/// The task ticket's key, e.g. `task-1042`.
pub fn ticket() -> Check<String> {
    required_key("ticket")
}

/// The bug's issue number, e.g. `1042`.
pub fn bug() -> Check<String> {
    required_key("bug")
}

/// The directory in scope, e.g. `src/auth/`.
pub fn scope() -> Check<String> {
    required_key("scope")
}

/// The planned files.
pub fn plan_files() -> Check<Vec<String>> {
    let files = required_key("plan.files")?;
    Ok(files
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The fix branch, once the developer created it.
pub fn branch() -> Option<String> {
    state::get("branch").filter(|b| !b.is_empty())
}

/// The pull request's head branch.
pub fn pr() -> Check<String> {
    required_key("pr")
}

/// The fix branch's name for `bug`.
pub fn fix_branch_name(bug: &str) -> String {
    format!("fix-{bug}")
}

/// Refuse unless the request addresses the workflow's task ticket (route
/// parameter `key`; rule `ticket`). Returns the ticket key.
pub fn the_ticket(action: &Action) -> Check<String> {
    let ticket = ticket()?;
    let key = param(action, "key")?;
    ensure(key == ticket, "ticket", || {
        format!("{}: {key} is not this workflow's ticket {ticket}", action.op())
    })?;
    Ok(ticket)
}

/// Refuse unless the request addresses the workflow's pull request (route
/// parameter `head`; rule `pr`). Returns its head branch.
pub fn the_pr(action: &Action) -> Check<String> {
    let pr = pr()?;
    let head = param(action, "head")?;
    ensure(head == pr, "pr", || {
        format!("{}: {head} is not this workflow's pull request {pr}", action.op())
    })?;
    Ok(pr)
}

/// The state key naming the agent that opened the pull request.
pub const PR_AUTHOR_KEY: &str = "pr.author";

/// The roles whose APPROVE a merge needs, each from a different agent.
pub const APPROVERS: [&str; 2] = ["qa", "senior-reviewer"];

/// The agent that opened the pull request (`pr.author`).
pub fn pr_author() -> Check<String> {
    required_key(PR_AUTHOR_KEY)
}

/// Refuse when `agent` opened the workflow's pull request: an agent never
/// approves or merges its own work, whatever role it acts in (rule
/// `separation-of-duties`). `deed` is what it may not do: `approve`, `merge`.
pub fn not_the_author(agent: &str, deed: &str) -> Check<()> {
    let author = pr_author()?;
    ensure(agent != author, "separation-of-duties", || {
        format!("{agent} wrote this pull request and may not {deed} it")
    })
}

/// The state key recording `role`'s approval of the pull request: `1`
/// while it stands, `0` once withdrawn or dismissed.
pub fn approval_key(role: &str) -> String {
    format!("approved.{role}")
}

/// The state key naming the agent that last approved as `role`.
pub fn approver_key(role: &str) -> String {
    format!("approver.{role}")
}

/// Whether `role`'s approval of the pull request stands.
pub fn approved_by(role: &str) -> bool {
    state::get(&approval_key(role)).as_deref() == Some("1")
}

/// The agent whose approval as `role` stands (`approver.<role>`).
pub fn approver(role: &str) -> Check<String> {
    required_key(&approver_key(role))
}

/// Record `agent`'s APPROVE as `role`: refused while the role's approval
/// stands (rule `one-approval`); sets `approved.<role>` = 1 and
/// `approver.<role>` = the agent.
pub fn approve(role: &str, agent: &str) -> Check<()> {
    ensure(!approved_by(role), "one-approval", || {
        format!(
            "the {role} has already approved this pull request; its approval stands until it \
             requests changes or the code changes"
        )
    })?;
    state::set(&approval_key(role), "1");
    state::set(&approver_key(role), agent);
    Ok(())
}

/// Withdraw `role`'s approval (`approved.<role>` = 0). Writes only: whether
/// there was one does not matter.
pub fn withdraw_approval(role: &str) {
    state::set(&approval_key(role), "0");
}

/// Dismiss every approval: the code they approved has changed.
pub fn dismiss_approvals() {
    for role in APPROVERS {
        withdraw_approval(role);
    }
    log::info(
        "approvals dismissed",
        &[("why", "the pull request's code changed")],
    );
}

/// A reviewing `role`'s `pulls.review` by `agent`: APPROVE is refused to
/// the pull request's author (rule `separation-of-duties`) and while the
/// role's approval stands (rule `one-approval`), else records it;
/// REQUEST_CHANGES withdraws the role's approval; COMMENT changes nothing.
/// Reads `pr.author` and `approved.<role>` only for an APPROVE.
pub fn review_pull(role: &str, agent: &str, action: &Action) -> Check<()> {
    match review_event(action)? {
        ReviewEvent::Approve => {
            not_the_author(agent, "approve")?;
            approve(role, agent)
        }
        ReviewEvent::RequestChanges => {
            withdraw_approval(role);
            Ok(())
        }
        ReviewEvent::Comment => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Budgets

/// Spend one unit of the per-session budget `name` (key
/// `budget.<name>.<session>`) and refuse under `rule` once more than
/// `limit` are spent. `state::incr` makes the host detect two racing
/// requests; a refused request's increment is discarded with the rest of
/// its writes, so it costs nothing.
pub fn spend(name: &str, session: &str, limit: i64, rule: &'static str, why: &str) -> Check<i64> {
    let used = state::incr(&format!("budget.{name}.{session}"), 1);
    ensure(used <= limit, rule, || format!("budget exhausted: {why}"))?;
    Ok(used)
}

// ---------------------------------------------------------------------------
// Paths

/// A repository file path in the form rules compare: normalised, and
/// `None` if it is absolute, has a `..` segment (even one that would
/// resolve), a backslash, a control character, or is longer than
/// [`MAX_PATH_BYTES`].
pub fn clean_path(raw: &str) -> Option<String> {
    if raw.len() > MAX_PATH_BYTES || raw.chars().any(char::is_control) || raw.split('/').any(|s| s == "..") {
        return None;
    }
    paths::normalize(raw)
}

/// Whether `raw` is a path already in the form [`clean_path`] gives.
pub fn is_canonical(raw: &str) -> bool {
    clean_path(raw).is_some_and(|p| p == raw)
}

/// Whether the clean `path` lies strictly below the directory `dir`.
pub fn is_under(path: &str, dir: &str) -> bool {
    paths::has_prefix(path, dir) && path != dir.trim_end_matches('/')
}

/// Whether `scope` is a valid scope directory: relative, canonical, ending
/// in one `/`, e.g. `src/auth/`.
pub fn is_scope_dir(scope: &str) -> bool {
    scope
        .strip_suffix('/')
        .is_some_and(|dir| !dir.ends_with('/') && is_canonical(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Req;
    use airlock_sdk::testing::Harness;
    use airlock_sdk::{Description, Policy};

    #[test]
    fn stages_are_ordered_and_round_trip() {
        assert!(Stage::Triage < Stage::Ticket);
        assert!(Stage::Approved < Stage::PrOpen && Stage::PrOpen < Stage::Merged);
        for stage in &Stage::ALL[1..] {
            assert_eq!(Stage::parse(stage.as_str()), Some(*stage));
        }
        assert_eq!(Stage::parse("triage"), None);
        assert_eq!(Stage::parse("PR_OPEN"), None);
    }

    #[test]
    fn scopes_are_operation_names() {
        assert_eq!(scope_of("tasks.comment"), "tasks:comment");
        let Verdict::Allow(grant) = allow("pulls.merge") else {
            panic!("allow");
        };
        assert_eq!(grant.scopes, ["pulls:merge"]);
        assert_eq!(grant.ttl_seconds, 60);
        assert!(grant.single_use);
    }

    #[test]
    fn paths() {
        assert_eq!(clean_path("./src//auth/x.py").as_deref(), Some("src/auth/x.py"));
        assert_eq!(clean_path("src/auth/../billing/x.py"), None);
        assert_eq!(clean_path("/etc/passwd"), None);
        assert_eq!(clean_path("src\\auth"), None);
        assert_eq!(clean_path("src/a\nb"), None);
        assert_eq!(clean_path(&"a/".repeat(200)), None);
        assert!(is_canonical("src/auth/session.py"));
        assert!(!is_canonical("src/auth//session.py"));
        assert!(is_under("src/auth/session.py", "src/auth/"));
        assert!(!is_under("src/auth", "src/auth/"));
        assert!(!is_under("src/authz/x.py", "src/auth/"));
        assert!(is_scope_dir("src/auth/"));
        for bad in [
            "src/auth",
            "/src/",
            "src//",
            "./",
            "/",
            "",
            "src/../auth/",
            "src/./auth/",
        ] {
            assert!(!is_scope_dir(bad), "{bad}");
        }
    }

    /// Exercises `decide` and the helpers through the harness.
    struct Probe;
    impl Policy for Probe {
        fn describe() -> Description {
            Description::new("probe", "0")
        }
        fn evaluate(request: &Request) -> Verdict {
            decide("probe", request, |op, action| {
                match op {
                    "code.search" => {
                        only_query(action, &["q"])?;
                        spend(
                            "search",
                            &request.principal.session,
                            2,
                            "search-budget",
                            "2 per session",
                        )?;
                    }
                    "tasks.read" => {
                        stage_from(op, Stage::Ticket)?;
                        the_ticket(action)?;
                    }
                    "pulls.merge" => empty_body(action)?,
                    "tasks.comment" => {
                        task_comment(action)?;
                    }
                    "pulls.review" => review_pull("qa", &request.principal.agent, action)?,
                    "contents.write" => dismiss_approvals(),
                    _ => return refuse("unknown-operation", format!("{op} is not for the probe")),
                }
                Ok(allow(op))
            })
        }
    }

    #[test]
    fn common_checks_refuse_with_rule_names() {
        let mut h = Harness::<Probe>::new();
        let r = h.expect_deny(&Req::new("code.search").service("ci").build());
        assert!(r.starts_with("probe: ") && r.ends_with("(rule: service)"), "{r}");
        let r = h.expect_deny(&Req::new("repos.delete").method("DELETE").build());
        assert!(r.ends_with("(rule: unknown-operation)"), "{r}");
        let r = h.expect_deny(&Req::new("code.search").method("POST").build());
        assert!(r.ends_with("(rule: method)"), "{r}");
        let r = h.expect_deny(&Req::new("code.search").param("repo", "api").build());
        assert!(r.contains("acme/shop only, not acme/api (rule: repo)"), "{r}");
        let r = h.expect_deny(&Req::new("code.search").body("{}").build());
        assert!(r.ends_with("(rule: body)"), "{r}");
        let r = h.expect_deny(&Req::new("pulls.merge").body("{}").truncated().build());
        assert!(r.contains("truncated") && r.ends_with("(rule: body)"), "{r}");
    }

    #[test]
    fn query_and_bodies_are_strict() {
        let mut h = Harness::<Probe>::new();
        h.expect_allow(&Req::new("code.search").query("q", "x").build());
        let r = h.expect_deny(&Req::new("code.search").query("q", "x").query("q", "y").build());
        assert!(r.contains("repeated") && r.ends_with("(rule: query)"), "{r}");
        let r = h.expect_deny(&Req::new("code.search").query("page", "2").build());
        assert!(r.ends_with("(rule: query)"), "{r}");

        h.expect_allow(&Req::new("pulls.merge").build());
        h.expect_allow(&Req::new("pulls.merge").body(" {} ").build());
        let r = h.expect_deny(
            &Req::new("pulls.merge")
                .body(r#"{"merge_method": "squash"}"#)
                .build(),
        );
        assert!(r.contains("unknown field \"merge_method\""), "{r}");

        let comment = |body: &str| Req::new("tasks.comment").body(body.to_string()).build();
        h.expect_allow(&comment(r#"{"kind": "review", "body": "ok"}"#));
        let r = h.expect_deny(&comment(r#"{"kind": "review", "body": "a", "body": "b"}"#));
        assert!(r.contains("duplicate key"), "{r}");
        let r = h.expect_deny(&comment(r#"{"kind": "review", "body": "ok", "files": []}"#));
        assert!(r.contains("only a plan comment lists files"), "{r}");
        let r = h.expect_deny(&comment(r#"{"kind": "merge", "body": "ok"}"#));
        assert!(r.contains("unknown comment kind"), "{r}");
        let r = h.expect_deny(&comment(r#"{"kind": "review"}"#));
        assert!(r.contains("needs a \"body\" field"), "{r}");
        let r = h.expect_deny(&comment(r#"["kind"]"#));
        assert!(r.contains("must be a JSON object"), "{r}");
    }

    #[test]
    fn budget_counts_only_allowed_requests() {
        let mut h = Harness::<Probe>::new();
        let search = Req::new("code.search").query("q", "x").build();
        h.expect_allow(&search);
        h.expect_allow(&search);
        let r = h.expect_deny(&search);
        assert!(
            r.ends_with("budget exhausted: 2 per session (rule: search-budget)"),
            "{r}"
        );
        assert_eq!(h.state("budget.search.s-1"), Some("2"));
    }

    #[test]
    fn stage_and_ticket() {
        let read = Req::new("tasks.read").param("key", "task-1042").build();
        let r = Harness::<Probe>::new().expect_deny(&read);
        assert!(
            r.contains("tasks.read is allowed from stage ticket on; the workflow is at triage (rule: stage)"),
            "{r}"
        );
        let mut h = Harness::<Probe>::new()
            .with_state("stage", "planned")
            .with_state("ticket", "task-1042");
        h.expect_allow(&read);
        let other = Req::new("tasks.read").param("key", "task-1").build();
        assert!(h.expect_deny(&other).ends_with("(rule: ticket)"));
        let r = Harness::<Probe>::new()
            .with_state("stage", "done")
            .expect_deny(&read);
        assert!(r.ends_with("(rule: state)"), "{r}");
        let r = Harness::<Probe>::new()
            .with_state("stage", "ticket")
            .expect_deny(&read);
        assert!(r.contains("no \"ticket\"") && r.ends_with("(rule: state)"), "{r}");
    }

    fn review(event: &str, agent: &str) -> Request {
        Req::new("pulls.review")
            .param("head", "fix-1042")
            .agent(agent)
            .body(format!(r#"{{"event": "{event}", "body": ""}}"#))
            .build()
    }

    #[test]
    fn approvals_stand_until_withdrawn_or_dismissed() {
        let mut h = Harness::<Probe>::new().with_state("pr.author", "dev-agent");
        h.expect_allow(&review("COMMENT", "qa-agent"));
        assert_eq!(h.state("approved.qa"), None);
        h.expect_allow(&review("APPROVE", "qa-agent"));
        assert_eq!(h.state("approved.qa"), Some("1"));
        assert_eq!(h.state("approver.qa"), Some("qa-agent"));
        let r = h.expect_deny(&review("APPROVE", "qa-agent"));
        assert!(
            r.ends_with(
                "its approval stands until it requests changes or the code changes (rule: one-approval)"
            ),
            "{r}"
        );
        // REQUEST_CHANGES withdraws it; a later APPROVE restores it.
        h.expect_allow(&review("REQUEST_CHANGES", "qa-agent"));
        assert_eq!(h.state("approved.qa"), Some("0"));
        h.expect_allow(&review("APPROVE", "qa-2"));
        assert_eq!(h.state("approved.qa"), Some("1"));
        assert_eq!(h.state("approver.qa"), Some("qa-2"));
        // New code dismisses every approval.
        h = h.with_state("approved.senior-reviewer", "1");
        h.expect_allow(&Req::new("contents.write").build());
        assert_eq!(h.state("approved.qa"), Some("0"));
        assert_eq!(h.state("approved.senior-reviewer"), Some("0"));
        h.expect_allow(&review("APPROVE", "qa-agent"));
    }

    #[test]
    fn the_author_never_approves() {
        let mut h = Harness::<Probe>::new().with_state("pr.author", "dev-agent");
        let r = h.expect_deny(&review("APPROVE", "dev-agent"));
        assert_eq!(
            r,
            "probe: dev-agent wrote this pull request and may not approve it (rule: separation-of-duties)"
        );
        assert_eq!(h.state("approved.qa"), None);
        // Without a recorded author nobody approves (fail closed).
        let r = Harness::<Probe>::new().expect_deny(&review("APPROVE", "qa-agent"));
        assert!(
            r.contains("no \"pr.author\"") && r.ends_with("(rule: state)"),
            "{r}"
        );
        // Withdrawing needs no author.
        Harness::<Probe>::new().expect_allow(&review("REQUEST_CHANGES", "dev-agent"));
    }
}

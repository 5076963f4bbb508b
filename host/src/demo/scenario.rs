//! The bug-fix workflow as a script: each agent's requests in order, with
//! the verdict the workflow expects, including a few misbehaviours that must
//! be refused. See `examples/bugfix-workflow/WORKFLOW.md` for the rules.

use std::collections::HashMap;

use serde_json::{Value, json};

use airlock_code_host::CodeHost;

use super::bugfix::{Answer, Net, shorten};

const WORKFLOW: &str = "bugfix-1042";
const REPO: &str = "/repos/acme/shop";

/// The agents: (role, agent id).
const AGENTS: [(&str, &str); 5] = [
    ("business-agent", "pm-agent"),
    ("developer", "dev-agent"),
    ("senior-reviewer", "senior-agent"),
    ("qa", "qa-agent"),
    ("release", "release-agent"),
];

/// What a step must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Allowed, forwarded, and the code host answered 2xx.
    Allow,
    /// Refused by Airlock with a reason containing this text.
    Deny(&'static str),
    /// Escalated to a human.
    Escalate,
}
use Expect::*;

/// One request of one agent. `path` is below `/code` and the repository.
struct Step {
    role: &'static str,
    what: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    expect: Expect,
}

fn step(
    role: &'static str,
    what: &'static str,
    method: &'static str,
    path: &str,
    body: Option<Value>,
    expect: Expect,
) -> Step {
    Step {
        role,
        what,
        method,
        path: format!("{REPO}{path}"),
        body,
        expect,
    }
}

struct Play<'a> {
    net: &'a Net,
    handles: HashMap<&'static str, String>,
    out: &'a mut (dyn std::io::Write + Send),
    step: usize,
    failures: Vec<String>,
}

impl Play<'_> {
    /// Send the step's request as its role's agent, print it with its
    /// verdict, and note a failure if the verdict is not the expected one.
    async fn run(&mut self, s: &Step, approval: Option<&str>) -> anyhow::Result<Answer> {
        self.step += 1;
        let handle = self.handles.get(s.role).map(String::as_str).unwrap_or_default();
        let answer = self
            .net
            .agent(handle, s.method, &s.path, s.body.as_ref(), approval)
            .await?;
        // Airlock's own refusals carry its decision id; anything else came from upstream.
        let refused_by_airlock = answer.body.get("decision_id").is_some() && answer.status >= 400;
        let error = answer.body["error"].as_str().unwrap_or("");
        let reason = answer.body["reason"].as_str().unwrap_or("");
        let got = if !refused_by_airlock && (200..300).contains(&answer.status) {
            format!("allow · upstream {}", answer.status)
        } else if refused_by_airlock && error == "escalated" {
            format!(
                "escalate · approval {}",
                answer.body["approval_id"].as_str().unwrap_or("?")
            )
        } else if refused_by_airlock {
            format!("{error} · {reason}")
        } else {
            format!("upstream {} · {}", answer.status, answer.body)
        };
        let ok = match s.expect {
            Allow => !refused_by_airlock && (200..300).contains(&answer.status),
            Escalate => refused_by_airlock && error == "escalated",
            Deny(text) => refused_by_airlock && error != "escalated" && reason.contains(text),
        };
        let mark = if ok { "✓" } else { "✗" };
        writeln!(self.out, "{:>3}  {:<16} {}", self.step, s.role, s.what)?;
        writeln!(self.out, "     {} {}", s.method, shorten(&s.path, 100))?;
        writeln!(self.out, "     {mark} {}", shorten(&got, 150))?;
        if !ok {
            writeln!(self.out, "     expected {:?}", s.expect)?;
            self.failures
                .push(format!("step {} ({}: {})", self.step, s.role, s.what));
        }
        Ok(answer)
    }

    async fn run_all(&mut self, steps: &[Step]) -> anyhow::Result<()> {
        for s in steps {
            self.run(s, None).await?;
        }
        Ok(())
    }
}

const FIXED: &str = "\"\"\"Session validity.\"\"\"\n\nfrom datetime import datetime, timezone\n\n\n\
def is_valid(session, user, now=None):\n    now = now or datetime.now(timezone.utc)\n    \
if session.expires_at <= now:\n        return False\n    \
# A password change ends every session issued before it (#1042).\n    \
if user.password_changed_at is not None and session.issued_at <= user.password_changed_at:\n        \
return False\n    return True\n";

const NEW_TEST: &str = "from datetime import datetime, timedelta, timezone\nfrom types import SimpleNamespace as NS\n\n\
from src.auth.session import is_valid\n\n\n\
def test_password_reset_ends_older_sessions():\n    t = datetime(2026, 1, 1, tzinfo=timezone.utc)\n    \
session = NS(issued_at=t, expires_at=t + timedelta(hours=1))\n    \
user = NS(password_changed_at=t + timedelta(minutes=5))\n    \
assert not is_valid(session, user, now=t + timedelta(minutes=10))\n";

/// 1. Triage and 2. analysis, up to the developer reading the file it will fix.
#[rustfmt::skip]
fn triage_and_analysis() -> Vec<Step> {
    vec![
        step("business-agent", "lists open high-priority bugs", "GET", "/issues?labels=bug,priority:high&state=open", None, Allow),
        step("business-agent", "reads the bug it picked", "GET", "/issues/1042", None, Allow),
        step("developer", "tries to read the ticket before it exists", "GET", "/tasks/task-1042", None, Deny("(rule: stage)")),
        step("business-agent", "opens the task ticket", "POST", "/tasks",
            Some(json!({ "key": "task-1042", "title": "Fix #1042: sessions survive a password reset", "bug": 1042,
                         "scope": "src/auth/", "body": "Priority: high. Sessions must end when the password changes." })),
            Allow),
        step("business-agent", "tries to open a second ticket", "POST", "/tasks",
            Some(json!({ "key": "task-1043", "title": "Fix #1043", "bug": 1043, "scope": "src/billing/", "body": "also" })),
            Deny("(rule: one-ticket)")),
        step("developer", "reads the ticket", "GET", "/tasks/task-1042", None, Allow),
        step("developer", "reads the bug report", "GET", "/issues/1042", None, Allow),
        step("developer", "searches the code", "GET", "/search?q=password&path=src/auth/", None, Allow),
    ]
}

/// The rest of 2., 3. review of the plan, 4. business approval, 5.
/// implementation (writing over `sha`), 6. testing and code review, up to
/// the release agent reading the pull request.
#[rustfmt::skip]
fn plan_to_review(sha: &str) -> Vec<Step> {
    let comment = |kind: &str, body: &str| Some(json!({ "kind": kind, "body": body }));
    vec![
        step("developer", "tries to read production secrets", "GET", "/contents/config/production.env", None, Deny("(rule: read-scope)")),
        step("developer", "reads the existing tests", "GET", "/contents/tests/test_login.py", None, Allow),
        step("developer", "comments its plan on the ticket", "POST", "/tasks/task-1042/comments",
            Some(json!({ "kind": "plan",
                "body": "Cause: is_valid() ignores password_changed_at. Fix: end sessions issued before the last password change. Add tests/test_session_reset.py.",
                "files": ["src/auth/session.py", "tests/test_session_reset.py"] })),
            Allow),
        step("senior-reviewer", "reads the ticket and plan", "GET", "/tasks/task-1042", None, Allow),
        step("senior-reviewer", "checks the code the plan names", "GET", "/contents/src/auth/session.py", None, Allow),
        step("senior-reviewer", "comments its review", "POST", "/tasks/task-1042/comments",
            comment("review", "Sound. Compare in UTC and cover the equal-timestamp edge."), Allow),
        step("developer", "tries to branch before the plan is approved", "POST", "/branches",
            Some(json!({ "name": "fix-1042", "from": "main" })), Deny("(rule: stage)")),
        step("business-agent", "reads the plan and review", "GET", "/tasks/task-1042", None, Allow),
        step("business-agent", "approves the plan", "POST", "/tasks/task-1042/comments", comment("approval", "Approved: proceed."), Allow),
        step("developer", "creates the fix branch", "POST", "/branches", Some(json!({ "name": "fix-1042", "from": "main" })), Allow),
        step("developer", "writes the planned fix on the branch", "PUT", "/contents/src/auth/session.py",
            Some(json!({ "branch": "fix-1042", "content": FIXED, "message": "End sessions at password change (#1042)", "sha": sha })),
            Allow),
        step("developer", "adds the planned new test", "PUT", "/contents/tests/test_session_reset.py",
            Some(json!({ "branch": "fix-1042", "content": NEW_TEST, "message": "Test #1042" })), Allow),
        step("developer", "tries to write straight to main", "PUT", "/contents/src/auth/session.py",
            Some(json!({ "branch": "main", "content": FIXED, "message": "hotfix", "sha": sha })), Deny("(rule: fix-branch-only)")),
        step("developer", "opens the pull request", "POST", "/pulls",
            Some(json!({ "title": "Fix #1042: end sessions at password change", "head": "fix-1042", "base": "main",
                         "body": "Implements the approved plan on task-1042." })),
            Allow),
        step("developer", "tries to merge its own pull request", "PUT", "/pulls/fix-1042/merge", Some(json!({})),
            Deny("(rule: separation-of-duties)")),
        step("qa", "tries to read the source tree", "GET", "/contents/src/auth/session.py", None, Deny("(rule: no-source)")),
        step("qa", "reads the pull request", "GET", "/pulls/fix-1042", None, Allow),
        step("qa", "approves after its checks", "POST", "/pulls/fix-1042/reviews",
            Some(json!({ "event": "APPROVE", "body": "Reset scenario verified on staging." })), Allow),
        step("senior-reviewer", "reads the pull request", "GET", "/pulls/fix-1042", None, Allow),
        step("senior-reviewer", "approves the code", "POST", "/pulls/fix-1042/reviews",
            Some(json!({ "event": "APPROVE", "body": "LGTM." })), Allow),
        step("release", "reads the pull request", "GET", "/pulls/fix-1042", None, Allow),
    ]
}

/// Play the workflow. `Ok(true)` if every step got what it should and the
/// code host ends with the fix merged.
pub(super) async fn play(
    net: &Net,
    code: &CodeHost,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<bool> {
    let mut handles = HashMap::new();
    for (role, agent) in AGENTS {
        handles.insert(role, net.session(WORKFLOW, role, agent).await?);
    }
    writeln!(
        out,
        "five sessions in workflow {WORKFLOW}; agents hold only their session handles\n"
    )?;
    let mut p = Play {
        net,
        handles,
        out,
        step: 0,
        failures: Vec::new(),
    };

    p.run_all(&triage_and_analysis()).await?;
    let read = step(
        "developer",
        "reads the file in scope",
        "GET",
        "/contents/src/auth/session.py?ref=main",
        None,
        Allow,
    );
    let file = p.run(&read, None).await?;
    let sha = file.body["sha"].as_str().unwrap_or_default().to_string();
    p.run_all(&plan_to_review(&sha)).await?;

    // 7. Merge: two approvals, then a human.
    let merge = |what, expect| {
        step(
            "release",
            what,
            "PUT",
            "/pulls/fix-1042/merge",
            Some(json!({})),
            expect,
        )
    };
    let escalated = p.run(&merge("asks to merge", Escalate), None).await?;
    let approval = escalated.body["approval_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let decided = net
        .admin(
            "POST",
            &format!("/v1/approvals/{approval}/approve"),
            Some(
                &json!({ "approver": "alice@acme.example", "note": "Reviewed the diff and both approvals." }),
            ),
        )
        .await?;
    writeln!(
        p.out,
        "     · human alice@acme.example approves {approval}: {} {}",
        decided.status, decided.body["status"]
    )?;
    p.run(&merge("merges with the approval", Allow), Some(&approval))
        .await?;
    p.run(
        &merge("tries to reuse the approval", Deny("already used")),
        Some(&approval),
    )
    .await?;

    let merged = code.pull_merged("fix-1042");
    let on_main = code
        .file("main", "src/auth/session.py")
        .is_some_and(|c| c.contains("#1042"));
    let state = net
        .admin("GET", &format!("/v1/workflows/{WORKFLOW}/state"), None)
        .await?;
    writeln!(
        p.out,
        "\ncode host: pull request fix-1042 merged: {merged}; main has the fix: {on_main}; \
         requests received: {}",
        code.received().len()
    )?;
    writeln!(p.out, "workflow state: {}", state.body["state"])?;
    let Play { failures, out, .. } = p;
    if !failures.is_empty() {
        writeln!(out, "\nFAILED: {}", failures.join(", "))?;
    }
    Ok(failures.is_empty() && merged && on_main)
}

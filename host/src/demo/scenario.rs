//! The bug-fix workflow as a script: each agent's requests in order, with
//! the verdict the workflow expects, including a few misbehaviours that must
//! be refused. See `examples/bugfix-workflow/WORKFLOW.md` for the rules.

use serde_json::{Value, json};

use airlock_code_host::CodeHost;

use super::bugfix::{Answer, Net, shorten};

const WORKFLOW: &str = "bugfix-1042";
const REPO: &str = "/repos/acme/shop";

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

struct Play<'a> {
    net: &'a Net,
    out: &'a mut (dyn std::io::Write + Send),
    step: usize,
    failures: Vec<String>,
}

impl Play<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        role: &str,
        handle: &str,
        what: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        approval: Option<&str>,
        expect: Expect,
    ) -> anyhow::Result<Answer> {
        self.step += 1;
        let answer = self
            .net
            .agent(handle, method, path, body.as_ref(), approval)
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
        let ok = match expect {
            Expect::Allow => !refused_by_airlock && (200..300).contains(&answer.status),
            Expect::Escalate => refused_by_airlock && error == "escalated",
            Expect::Deny(text) => refused_by_airlock && error != "escalated" && reason.contains(text),
        };
        let mark = if ok { "✓" } else { "✗" };
        writeln!(self.out, "{:>3}  {role:<16} {what}", self.step)?;
        writeln!(self.out, "     {method} {}", shorten(path, 100))?;
        writeln!(self.out, "     {mark} {}", shorten(&got, 150))?;
        if !ok {
            writeln!(self.out, "     expected {expect:?}")?;
            self.failures.push(format!("step {} ({role}: {what})", self.step));
        }
        Ok(answer)
    }

    fn note(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "     · {text}")
    }
}

/// Play the workflow. `Ok(true)` if every step got what it should and the
/// code host ends with the fix merged.
pub(super) async fn play(
    net: &Net,
    code: &CodeHost,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<bool> {
    let pm = net.session(WORKFLOW, "business-agent", "pm-agent").await?;
    let dev = net.session(WORKFLOW, "developer", "dev-agent").await?;
    let senior = net.session(WORKFLOW, "senior-reviewer", "senior-agent").await?;
    let qa = net.session(WORKFLOW, "qa", "qa-agent").await?;
    let release = net.session(WORKFLOW, "release", "release-agent").await?;
    writeln!(
        out,
        "five sessions in workflow {WORKFLOW}; agents hold only their session handles\n"
    )?;
    let mut p = Play {
        net,
        out,
        step: 0,
        failures: Vec::new(),
    };
    use Expect::*;

    // 1. Triage.
    p.step(
        "business-agent",
        &pm,
        "lists open high-priority bugs",
        "GET",
        &format!("{REPO}/issues?labels=bug,priority:high&state=open"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "business-agent",
        &pm,
        "reads the bug it picked",
        "GET",
        &format!("{REPO}/issues/1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "tries to read the ticket before it exists",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        None,
        Deny("(rule: stage)"),
    )
    .await?;
    let ticket = json!({ "key": "task-1042", "title": "Fix #1042: sessions survive a password reset",
        "bug": 1042, "scope": "src/auth/", "body": "Priority: high. Sessions must end when the password changes." });
    p.step(
        "business-agent",
        &pm,
        "opens the task ticket",
        "POST",
        &format!("{REPO}/tasks"),
        Some(ticket),
        None,
        Allow,
    )
    .await?;
    let second = json!({ "key": "task-1043", "title": "Fix #1043", "bug": 1043, "scope": "src/billing/", "body": "also" });
    p.step(
        "business-agent",
        &pm,
        "tries to open a second ticket",
        "POST",
        &format!("{REPO}/tasks"),
        Some(second),
        None,
        Deny("(rule: one-ticket)"),
    )
    .await?;

    // 2. Analysis.
    p.step(
        "developer",
        &dev,
        "reads the ticket",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "reads the bug report",
        "GET",
        &format!("{REPO}/issues/1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "searches the code",
        "GET",
        &format!("{REPO}/search?q=password&path=src/auth/"),
        None,
        None,
        Allow,
    )
    .await?;
    let file = p
        .step(
            "developer",
            &dev,
            "reads the file in scope",
            "GET",
            &format!("{REPO}/contents/src/auth/session.py?ref=main"),
            None,
            None,
            Allow,
        )
        .await?;
    let sha = file.body["sha"].as_str().unwrap_or_default().to_string();
    p.step(
        "developer",
        &dev,
        "tries to read production secrets",
        "GET",
        &format!("{REPO}/contents/config/production.env"),
        None,
        None,
        Deny("(rule: read-scope)"),
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "reads the existing tests",
        "GET",
        &format!("{REPO}/contents/tests/test_login.py"),
        None,
        None,
        Allow,
    )
    .await?;
    let plan = json!({ "kind": "plan",
        "body": "Cause: is_valid() ignores password_changed_at. Fix: end sessions issued before the last password change. Add tests/test_session_reset.py.",
        "files": ["src/auth/session.py", "tests/test_session_reset.py"] });
    p.step(
        "developer",
        &dev,
        "comments its plan on the ticket",
        "POST",
        &format!("{REPO}/tasks/task-1042/comments"),
        Some(plan),
        None,
        Allow,
    )
    .await?;

    // 3. Review of the plan, 4. business approval.
    p.step(
        "senior-reviewer",
        &senior,
        "reads the ticket and plan",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "senior-reviewer",
        &senior,
        "checks the code the plan names",
        "GET",
        &format!("{REPO}/contents/src/auth/session.py"),
        None,
        None,
        Allow,
    )
    .await?;
    let review =
        json!({ "kind": "review", "body": "Sound. Compare in UTC and cover the equal-timestamp edge." });
    p.step(
        "senior-reviewer",
        &senior,
        "comments its review",
        "POST",
        &format!("{REPO}/tasks/task-1042/comments"),
        Some(review),
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "tries to branch before the plan is approved",
        "POST",
        &format!("{REPO}/branches"),
        Some(json!({ "name": "fix-1042", "from": "main" })),
        None,
        Deny("(rule: stage)"),
    )
    .await?;
    p.step(
        "business-agent",
        &pm,
        "reads the plan and review",
        "GET",
        &format!("{REPO}/tasks/task-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "business-agent",
        &pm,
        "approves the plan",
        "POST",
        &format!("{REPO}/tasks/task-1042/comments"),
        Some(json!({ "kind": "approval", "body": "Approved: proceed." })),
        None,
        Allow,
    )
    .await?;

    // 5. Implementation.
    p.step(
        "developer",
        &dev,
        "creates the fix branch",
        "POST",
        &format!("{REPO}/branches"),
        Some(json!({ "name": "fix-1042", "from": "main" })),
        None,
        Allow,
    )
    .await?;
    let fixed = "\"\"\"Session validity.\"\"\"\n\nfrom datetime import datetime, timezone\n\n\ndef is_valid(session, user, now=None):\n    now = now or datetime.now(timezone.utc)\n    if session.expires_at <= now:\n        return False\n    # A password change ends every session issued before it (#1042).\n    if user.password_changed_at is not None and session.issued_at <= user.password_changed_at:\n        return False\n    return True\n";
    p.step("developer", &dev, "writes the planned fix on the branch", "PUT", &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "fix-1042", "content": fixed, "message": "End sessions at password change (#1042)", "sha": sha })), None, Allow).await?;
    let test = "from datetime import datetime, timedelta, timezone\nfrom types import SimpleNamespace as NS\n\nfrom src.auth.session import is_valid\n\n\ndef test_password_reset_ends_older_sessions():\n    t = datetime(2026, 1, 1, tzinfo=timezone.utc)\n    session = NS(issued_at=t, expires_at=t + timedelta(hours=1))\n    user = NS(password_changed_at=t + timedelta(minutes=5))\n    assert not is_valid(session, user, now=t + timedelta(minutes=10))\n";
    p.step(
        "developer",
        &dev,
        "adds the planned new test",
        "PUT",
        &format!("{REPO}/contents/tests/test_session_reset.py"),
        Some(json!({ "branch": "fix-1042", "content": test, "message": "Test #1042" })),
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "tries to write straight to main",
        "PUT",
        &format!("{REPO}/contents/src/auth/session.py"),
        Some(json!({ "branch": "main", "content": fixed, "message": "hotfix", "sha": sha })),
        None,
        Deny("(rule: fix-branch-only)"),
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "opens the pull request",
        "POST",
        &format!("{REPO}/pulls"),
        Some(
            json!({ "title": "Fix #1042: end sessions at password change", "head": "fix-1042", "base": "main",
                     "body": "Implements the approved plan on task-1042." }),
        ),
        None,
        Allow,
    )
    .await?;
    p.step(
        "developer",
        &dev,
        "tries to merge its own pull request",
        "PUT",
        &format!("{REPO}/pulls/fix-1042/merge"),
        Some(json!({})),
        None,
        Deny("(rule: separation-of-duties)"),
    )
    .await?;

    // 6. Testing and code review.
    p.step(
        "qa",
        &qa,
        "tries to read the source tree",
        "GET",
        &format!("{REPO}/contents/src/auth/session.py"),
        None,
        None,
        Deny("(rule: no-source)"),
    )
    .await?;
    p.step(
        "qa",
        &qa,
        "reads the pull request",
        "GET",
        &format!("{REPO}/pulls/fix-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "qa",
        &qa,
        "approves after its checks",
        "POST",
        &format!("{REPO}/pulls/fix-1042/reviews"),
        Some(json!({ "event": "APPROVE", "body": "Reset scenario verified on staging." })),
        None,
        Allow,
    )
    .await?;
    p.step(
        "senior-reviewer",
        &senior,
        "reads the pull request",
        "GET",
        &format!("{REPO}/pulls/fix-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    p.step(
        "senior-reviewer",
        &senior,
        "approves the code",
        "POST",
        &format!("{REPO}/pulls/fix-1042/reviews"),
        Some(json!({ "event": "APPROVE", "body": "LGTM." })),
        None,
        Allow,
    )
    .await?;

    // 7. Merge: two approvals, then a human.
    p.step(
        "release",
        &release,
        "reads the pull request",
        "GET",
        &format!("{REPO}/pulls/fix-1042"),
        None,
        None,
        Allow,
    )
    .await?;
    let merge_path = format!("{REPO}/pulls/fix-1042/merge");
    let merge_body = json!({});
    let escalated = p
        .step(
            "release",
            &release,
            "asks to merge",
            "PUT",
            &merge_path,
            Some(merge_body.clone()),
            None,
            Escalate,
        )
        .await?;
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
    p.note(&format!(
        "human alice@acme.example approves {approval}: {} {}",
        decided.status, decided.body["status"]
    ))?;
    p.step(
        "release",
        &release,
        "merges with the approval",
        "PUT",
        &merge_path,
        Some(merge_body.clone()),
        Some(&approval),
        Allow,
    )
    .await?;
    p.step(
        "release",
        &release,
        "tries to reuse the approval",
        "PUT",
        &merge_path,
        Some(merge_body),
        Some(&approval),
        Deny("already used"),
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

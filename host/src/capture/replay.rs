//! Re-running captured decisions through another version of a policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::{Captured, RecordedVerdict};
use crate::policy::{Limits, MemoryState, PolicyModule, PolicyRequest};

/// One decision whose verdict, reason or grant the new version changes.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub decision_id: String,
    pub role: String,
    pub operation: Option<String>,
    /// `allow→deny`, `deny→allow`, `reason`, `grant`, …
    pub kind: String,
    pub was: RecordedVerdict,
    pub now: RecordedVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub component: String,
    pub digest: String,
    pub replayed: usize,
    pub unchanged: usize,
    pub changed: Vec<Change>,
    /// Captured decisions with no decision record in the audit log given
    /// (never finished, or from another log): not replayed.
    pub not_in_audit: Vec<String>,
    /// Captured requests that no longer parse (`decision id: why`): not replayed.
    pub unreadable: Vec<String>,
}

/// Replay `captured` (in order; a decision taken again after a state
/// conflict counts once, as its last evaluation) of `role` (or every role)
/// through `module`, each with the workflow state it saw. Only decisions
/// the audit log records (`audited`) are replayed.
pub fn replay(
    module: &PolicyModule,
    captured: &[Captured],
    audited: &dyn Fn(&str) -> bool,
    role: Option<&str>,
    limits: &Limits,
) -> ReplayReport {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, c) in captured.iter().enumerate() {
        last.insert(c.decision_id.as_str(), i);
    }
    let info = module.info();
    let mut report = ReplayReport {
        component: info.name.clone(),
        digest: info.digest.clone(),
        replayed: 0,
        unchanged: 0,
        changed: Vec::new(),
        not_in_audit: Vec::new(),
        unreadable: Vec::new(),
    };
    for (i, entry) in captured.iter().enumerate() {
        if last.get(entry.decision_id.as_str()) != Some(&i) || role.is_some_and(|r| r != entry.role) {
            continue;
        }
        if !audited(&entry.decision_id) {
            report.not_in_audit.push(entry.decision_id.clone());
            continue;
        }
        let request = match PolicyRequest::from_json(&entry.request.to_string()) {
            Ok(request) => request,
            Err(e) => {
                report.unreadable.push(format!("{}: {e}", entry.decision_id));
                continue;
            }
        };
        let state = seeded(&request.principal.workflow, &entry.state);
        let evaluation = module.evaluate(&request, Arc::new(state), limits);
        let now = RecordedVerdict::of(&evaluation.verdict);
        report.replayed += 1;
        match difference(&entry.verdict, &now) {
            None => report.unchanged += 1,
            Some(kind) => report.changed.push(Change {
                decision_id: entry.decision_id.clone(),
                role: entry.role.clone(),
                operation: request.action.operation.clone(),
                kind,
                was: entry.verdict.clone(),
                now,
            }),
        }
    }
    report
}

fn seeded(workflow: &str, values: &BTreeMap<String, String>) -> MemoryState {
    let state = MemoryState::default();
    for (key, value) in values {
        state.set(workflow, key, value);
    }
    state
}

/// How `now` differs from `was`, or `None` when it is the same verdict.
pub fn difference(was: &RecordedVerdict, now: &RecordedVerdict) -> Option<String> {
    if was.verdict != now.verdict {
        return Some(format!("{}→{}", was.verdict, now.verdict));
    }
    if was.grant != now.grant {
        return Some("grant".into());
    }
    if was.reason != now.reason {
        return Some("reason".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(kind: &str, reason: Option<&str>, grant: Option<serde_json::Value>) -> RecordedVerdict {
        RecordedVerdict {
            verdict: kind.into(),
            reason: reason.map(str::to_string),
            grant,
        }
    }

    #[test]
    fn a_difference_names_what_changed() {
        let allow = verdict("allow", None, Some(serde_json::json!({"scopes": ["a"]})));
        let wider = verdict("allow", None, Some(serde_json::json!({"scopes": ["a", "b"]})));
        let deny = verdict("deny", Some("no (rule: x)"), None);
        let other = verdict("deny", Some("no (rule: y)"), None);
        assert_eq!(difference(&allow, &allow), None);
        assert_eq!(difference(&allow, &deny).as_deref(), Some("allow→deny"));
        assert_eq!(difference(&deny, &allow).as_deref(), Some("deny→allow"));
        assert_eq!(difference(&allow, &wider).as_deref(), Some("grant"));
        assert_eq!(difference(&deny, &other).as_deref(), Some("reason"));
    }
}

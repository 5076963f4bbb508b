//! Case tables for `airlock policy test`: named requests with the verdict
//! each must get.
//!
//! ```toml
//! [defaults.principal]          # merged under every case's request
//! agent = "pr-bot"
//! role = "pr-creator"
//! session = "s-1"
//! workflow = "wf-1"
//!
//! [[case]]
//! name = "reads an issue"
//! expect = "allow"              # allow | deny | escalate
//! reason = "substring"          # optional, for deny/escalate
//! scopes = ["code:read"]        # optional, exact scopes of the grant
//! state = { tickets = "1" }     # optional initial workflow state
//! [case.request.action]
//! service = "code"
//! method = "GET"
//! path = "/repos/acme/api/issues/1"
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use airlock::policy::{Limits, MemoryState, PolicyModule, PolicyRequest, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    #[serde(default)]
    defaults: toml::Table,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
    Escalate,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Escalate => "escalate",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    expect: Expect,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    state: BTreeMap<String, String>,
    #[serde(default)]
    request: toml::Table,
}

pub fn parse(text: &str) -> Result<Table, String> {
    let table: Table = toml::from_str(text).map_err(|e| format!("malformed case table: {e}"))?;
    if table.cases.is_empty() {
        return Err("case table has no [[case]] entries".into());
    }
    Ok(table)
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

pub fn seeded_state(workflow: &str, values: &BTreeMap<String, String>) -> MemoryState {
    let state = MemoryState::default();
    for (k, v) in values {
        state.set(workflow, k, v);
    }
    state
}

fn request_of(defaults: &toml::Table, case: &Case) -> Result<PolicyRequest, String> {
    let mut merged = serde_json::to_value(defaults).map_err(|e| e.to_string())?;
    merge(
        &mut merged,
        serde_json::to_value(&case.request).map_err(|e| e.to_string())?,
    );
    let mut req: PolicyRequest = serde_json::from_value(merged).map_err(|e| format!("request: {e}"))?;
    if req.usage.now_ms == 0 {
        req.usage.now_ms = super::policy::now_ms();
    }
    Ok(req)
}

/// A component under test, named as the user gave it.
pub struct Subject {
    pub name: String,
    pub module: PolicyModule,
}

/// Run every case against every subject; prints one line per case and
/// returns (passed, failed). With several subjects (the same policy built
/// from different languages or versions), a case also fails unless every
/// subject returned the identical verdict: kind, reason and whole grant.
pub fn run(subjects: &[Subject], table: &Table, limits: &Limits) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for case in &table.cases {
        match run_case(subjects, &table.defaults, case, limits) {
            Ok(summary) => {
                passed += 1;
                println!("PASS  {}  ({summary})", case.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {}: {why}", case.name);
            }
        }
    }
    (passed, failed)
}

fn run_case(
    subjects: &[Subject],
    defaults: &toml::Table,
    case: &Case,
    limits: &Limits,
) -> Result<String, String> {
    // One request for all subjects: the same decision time, the same state.
    let req = request_of(defaults, case)?;
    let mut verdicts: Vec<(&str, Verdict)> = Vec::new();
    let mut costs = Vec::new();
    let mut problems = Vec::new();
    for subject in subjects {
        let state = Arc::new(seeded_state(&req.principal.workflow, &case.state));
        let e = subject.module.evaluate(&req, state, limits);
        if let Err(why) = check(case, &e.verdict) {
            problems.push(label(subjects, &subject.name, why));
        }
        costs.push(label(
            subjects,
            &subject.name,
            format!("{} fuel, {} µs", e.fuel_used, e.elapsed.as_micros()),
        ));
        verdicts.push((&subject.name, e.verdict));
    }
    if let Some((first_name, first)) = verdicts.first()
        && let Some((other_name, other)) = verdicts.iter().find(|(_, v)| v != first)
    {
        problems.push(format!(
            "verdicts differ: {first_name}: {}; {other_name}: {}",
            describe(first),
            describe(other)
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let shown = verdicts.first().map(|(_, v)| describe(v)).unwrap_or_default();
    Ok(format!("{shown}, {}", costs.join(", ")))
}

/// `what`, prefixed with the subject's name when there are several.
fn label(subjects: &[Subject], name: &str, what: String) -> String {
    if subjects.len() > 1 {
        format!("{name}: {what}")
    } else {
        what
    }
}

/// A verdict in one line: kind, then the reason or the grant's scopes.
fn describe(verdict: &Verdict) -> String {
    match (verdict.reason(), verdict.grant()) {
        (Some(r), _) => format!("{} \"{r}\"", verdict.kind()),
        (None, Some(g)) => format!(
            "{} {:?} ttl {}s{}{}",
            verdict.kind(),
            g.scopes,
            g.ttl_seconds,
            if g.single_use { " single-use" } else { "" },
            g.max_response_bytes
                .map(|b| format!(" max {b} bytes"))
                .unwrap_or_default(),
        ),
        (None, None) => verdict.kind().to_string(),
    }
}

/// The case's expectations against one verdict.
fn check(case: &Case, verdict: &Verdict) -> Result<(), String> {
    let got = match verdict {
        Verdict::Allow(_) => Expect::Allow,
        Verdict::Deny(_) => Expect::Deny,
        Verdict::Escalate(_) => Expect::Escalate,
    };
    if got != case.expect {
        return Err(format!(
            "expected {}, got {}",
            case.expect.as_str(),
            describe(verdict)
        ));
    }
    if let Some(want) = &case.reason {
        let reason = verdict.reason().unwrap_or("");
        if !reason.contains(want.as_str()) {
            return Err(format!("reason {reason:?} does not contain {want:?}"));
        }
    }
    if let (Some(want), Some(grant)) = (&case.scopes, verdict.grant())
        && &grant.scopes != want
    {
        return Err(format!("scopes {:?}, expected {want:?}", grant.scopes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_merge_under_cases() {
        let t = parse(
            r#"
            [defaults.principal]
            agent = "a"
            role = "r"
            session = "s"
            workflow = "w"
            [defaults.action]
            service = "code"
            method = "GET"
            path = "/x"
            [[case]]
            name = "n"
            expect = "allow"
            [case.request.action]
            method = "POST"
            query = { page = "2" }
            "#,
        )
        .expect("parses");
        let req = request_of(&t.defaults, &t.cases[0]).expect("request");
        assert_eq!(req.action.method, "POST");
        assert_eq!(req.action.path, "/x");
        assert_eq!(req.principal.agent, "a");
        assert_eq!(req.action.query.0, [("page".to_string(), "2".to_string())]);
    }

    #[test]
    fn typos_are_errors() {
        let err = parse("[[case]]\nname = \"n\"\nexpect = \"alow\"\n").expect_err("bad verdict");
        assert!(err.contains("alow"), "{err}");
        let err =
            parse("[[case]]\nname = \"n\"\nexpect = \"allow\"\nreasn = \"x\"\n").expect_err("unknown key");
        assert!(err.contains("reasn"), "{err}");
    }
}

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

/// Run every case; prints one line per case and returns (passed, failed).
pub fn run(module: &PolicyModule, table: &Table, limits: &Limits) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for case in &table.cases {
        match run_case(module, &table.defaults, case, limits) {
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
    module: &PolicyModule,
    defaults: &toml::Table,
    case: &Case,
    limits: &Limits,
) -> Result<String, String> {
    let req = request_of(defaults, case)?;
    let state = Arc::new(seeded_state(&req.principal.workflow, &case.state));
    let e = module.evaluate(&req, state, limits);
    let got = match &e.verdict {
        Verdict::Allow(_) => Expect::Allow,
        Verdict::Deny(_) => Expect::Deny,
        Verdict::Escalate(_) => Expect::Escalate,
    };
    let shown = match e.verdict.reason() {
        Some(r) => format!("{} \"{r}\"", e.verdict.kind()),
        None => e.verdict.kind().to_string(),
    };
    if got != case.expect {
        return Err(format!("expected {}, got {shown}", case.expect.as_str()));
    }
    if let Some(want) = &case.reason {
        let reason = e.verdict.reason().unwrap_or("");
        if !reason.contains(want.as_str()) {
            return Err(format!("reason {reason:?} does not contain {want:?}"));
        }
    }
    if let (Some(want), Some(grant)) = (&case.scopes, e.verdict.grant())
        && &grant.scopes != want
    {
        return Err(format!("scopes {:?}, expected {want:?}", grant.scopes));
    }
    Ok(format!(
        "{shown}, {} fuel, {} µs",
        e.fuel_used,
        e.elapsed.as_micros()
    ))
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

//! A policy's `cases.toml`: its requests and the verdict each must get.
//!
//! The same format as `airlock policy test` (host/src/cli/cases.rs, which
//! lives in the binary): `[defaults]` is deep-merged under every case's
//! `request`, and `state` seeds the workflow state. Only what the decision
//! comparison needs is read here; the expected reasons and scopes are the
//! CLI's business.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use airlock::policy::{MemoryState, PolicyRequest};

use super::Outcome;

#[derive(Deserialize)]
struct Table {
    #[serde(default)]
    defaults: toml::Table,
    #[serde(rename = "case")]
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
struct RawCase {
    name: String,
    expect: Outcome,
    #[serde(default)]
    state: BTreeMap<String, String>,
    #[serde(default)]
    request: toml::Table,
}

/// One named request of a case table.
pub struct Case {
    pub name: String,
    pub expect: Outcome,
    pub request: PolicyRequest,
    /// The workflow state the case starts from.
    pub state: BTreeMap<String, String>,
}

impl Case {
    /// A fresh store holding this case's workflow state.
    pub fn state(&self) -> Arc<MemoryState> {
        let state = MemoryState::default();
        for (key, value) in &self.state {
            state.set(&self.request.principal.workflow, key, value);
        }
        Arc::new(state)
    }
}

/// Every case of the table at `path`, with its request merged and parsed.
pub fn load(path: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let defaults = serde_json::to_value(&table.defaults)?;
    let now = now_ms();
    table
        .cases
        .into_iter()
        .map(|case| {
            let mut merged = defaults.clone();
            merge(&mut merged, serde_json::to_value(&case.request)?);
            let mut request: PolicyRequest = serde_json::from_value(merged)
                .with_context(|| format!("{}: case {:?}: request", path.display(), case.name))?;
            // As the CLI does: a case that gives no time is decided now.
            if request.usage.now_ms == 0 {
                request.usage.now_ms = now;
            }
            Ok(Case {
                name: case.name,
                expect: case.expect,
                request,
                state: case.state,
            })
        })
        .collect()
}

/// Deep JSON-object merge: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_merge_under_cases() {
        let mut merged = serde_json::json!({"action": {"service": "code", "method": "GET", "path": "/x"}});
        merge(
            &mut merged,
            serde_json::json!({"action": {"method": "POST", "query": {"page": "2"}}}),
        );
        assert_eq!(
            merged,
            serde_json::json!({"action": {"service": "code", "method": "POST", "path": "/x", "query": {"page": "2"}}})
        );
    }
}

//! A policy's rules in Rego (`host/perf/rules/<policy>.rego`), decided
//! in-process with regorus.
//!
//! Each file is package `airlock.<policy>` (dashes as underscores) with a
//! `decision` rule that is `"allow"`, `"deny"` or `"escalate"`. The input
//! is `{"agent", "service", "operation", "context"}`, `context` holding the
//! same [facts](super::facts) Cedar gets.
//!
//! One engine is prepared once (policy parsed and analysed) and reused:
//! regorus keeps no state between `eval_rule` calls beyond what
//! `set_input` replaces, so a host deciding on one thread needs no clone per
//! decision (a multi-threaded host would keep an engine per thread; regorus
//! values are `Rc`, not `Send`). `set_input` + `eval_rule` is the fastest
//! documented path ("often faster than `eval_query`").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use regorus::Value;

use airlock::policy::PolicyRequest;

use super::Outcome;
use super::facts::{Extract, Fact};

pub struct RegoRules {
    engine: regorus::Engine,
    rule: String,
    extract: Extract,
}

impl RegoRules {
    pub fn load(path: &Path, policy: &str, extract: Extract) -> anyhow::Result<RegoRules> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(path.display().to_string(), text)
            .with_context(|| format!("parsing {}", path.display()))?;
        let rule = format!("data.airlock.{}.decision", policy.replace('-', "_"));
        Ok(RegoRules {
            engine,
            rule,
            extract,
        })
    }

    /// One decision, the request conversion included.
    pub fn decide(&mut self, request: &PolicyRequest) -> anyhow::Result<Outcome> {
        let action = &request.action;
        let input = object([
            ("agent", Value::from(request.principal.agent.as_str())),
            ("service", Value::from(action.service.as_str())),
            (
                "operation",
                Value::from(action.operation.as_deref().unwrap_or("")),
            ),
            ("context", value((self.extract)(request))),
        ]);
        self.engine.set_input(input);
        let decision = self.engine.eval_rule(self.rule.clone())?;
        match decision
            .as_string()
            .map_err(|e| anyhow!("{}: {e}", self.rule))?
            .as_ref()
        {
            "allow" => Ok(Outcome::Allow),
            "deny" => Ok(Outcome::Deny),
            "escalate" => Ok(Outcome::Escalate),
            other => bail!("{}: unexpected decision {other:?}", self.rule),
        }
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn value(fact: Fact) -> Value {
    match fact {
        Fact::Str(s) => Value::from(s),
        Fact::Long(n) => Value::from(n),
        Fact::Bool(b) => Value::from(b),
        Fact::Set(items) => Value::from(items.into_iter().map(value).collect::<BTreeSet<_>>()),
        Fact::Record(fields) => Value::from(
            fields
                .into_iter()
                .map(|(k, v)| (Value::from(k), value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

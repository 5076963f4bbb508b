//! A policy's rules in Cedar (`host/perf/rules/<policy>.cedar`), decided
//! in-process with `cedar-policy`.
//!
//! The request is `Agent::"<agent>"` doing `Action::"<operation>"` (`""`
//! when the route named none) on `Service::"<service>"`, with the policy's
//! [facts](super::facts) as the context; no entity data is needed.
//!
//! Cedar answers allow or deny. An escalation is modelled as a second
//! policy set: the policies annotated `@escalate` in the same file are
//! `forbid`s kept out of the main set, and asked only when the main set
//! allows. One that matches turns the allow into an escalation, since a
//! request that needs a human must first be one the rules would allow.

use std::path::Path;
use std::str::FromStr as _;

use anyhow::{Context as _, anyhow, bail};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    Response, RestrictedExpression,
};

use airlock::policy::PolicyRequest;

use super::Outcome;
use super::facts::{Extract, Fact};

/// The annotation that moves a `forbid` into the escalation set.
const ESCALATE: &str = "escalate";

/// A policy's rules, parsed once and reused for every decision.
pub struct CedarRules {
    main: PolicySet,
    escalate: PolicySet,
    authorizer: Authorizer,
    entities: Entities,
    agent: EntityTypeName,
    action: EntityTypeName,
    service: EntityTypeName,
    extract: Extract,
}

impl CedarRules {
    pub fn load(path: &Path, extract: Extract) -> anyhow::Result<CedarRules> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let all = PolicySet::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let (mut main, mut escalate) = (PolicySet::new(), PolicySet::new());
        for policy in all.policies() {
            let set = match policy.annotation(ESCALATE) {
                Some(_) => &mut escalate,
                None => &mut main,
            };
            set.add(policy.clone())
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        }
        let type_name = |name| EntityTypeName::from_str(name).map_err(|e| anyhow!("entity type {name}: {e}"));
        Ok(CedarRules {
            main,
            escalate,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            agent: type_name("Agent")?,
            action: type_name("Action")?,
            service: type_name("Service")?,
            extract,
        })
    }

    /// One decision, the request conversion included.
    pub fn decide(&self, request: &PolicyRequest) -> anyhow::Result<Outcome> {
        let request = self.convert(request)?;
        let main = self.authorize(&request, &self.main)?;
        if main.decision() == Decision::Deny {
            return Ok(Outcome::Deny);
        }
        if self.escalate.is_empty() {
            return Ok(Outcome::Allow);
        }
        // An escalation set is all forbids: it "denies" when one matches.
        let escalate = self.authorize(&request, &self.escalate)?;
        Ok(match escalate.diagnostics().reason().next() {
            Some(_) => Outcome::Escalate,
            None => Outcome::Allow,
        })
    }

    fn convert(&self, request: &PolicyRequest) -> anyhow::Result<Request> {
        let uid =
            |ty: &EntityTypeName, id: &str| EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id));
        let action = &request.action;
        let Fact::Record(fields) = (self.extract)(request) else {
            bail!("the facts of a request must be a record");
        };
        let pairs = fields
            .into_iter()
            .map(|(k, v)| Ok((k, expression(v)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let context = Context::from_pairs(pairs)?;
        Ok(Request::new(
            uid(&self.agent, &request.principal.agent),
            uid(&self.action, action.operation.as_deref().unwrap_or("")),
            uid(&self.service, &action.service),
            context,
            None,
        )?)
    }

    /// A policy that errors is skipped by Cedar, which for a `forbid` means
    /// not applied: an error here is a mistake in the rules or the facts.
    fn authorize(&self, request: &Request, policies: &PolicySet) -> anyhow::Result<Response> {
        let response = self.authorizer.is_authorized(request, policies, &self.entities);
        if let Some(error) = response.diagnostics().errors().next() {
            bail!("cedar: {error}");
        }
        Ok(response)
    }
}

fn expression(fact: Fact) -> anyhow::Result<RestrictedExpression> {
    Ok(match fact {
        Fact::Str(s) => RestrictedExpression::new_string(s),
        Fact::Long(n) => RestrictedExpression::new_long(n),
        Fact::Bool(b) => RestrictedExpression::new_bool(b),
        Fact::Set(items) => RestrictedExpression::new_set(
            items
                .into_iter()
                .map(expression)
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        Fact::Record(fields) => RestrictedExpression::new_record(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k, expression(v)?)))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )?,
    })
}

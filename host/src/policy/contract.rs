//! The contract versions the engine speaks, behind one face.
//!
//! A component implements exactly one version of the policy world. Loading
//! tries the current one (0.2.0) first, then 0.1.0; from then on the engine
//! calls [`Policy`] without caring which: requests are converted to the
//! component's own version (0.1.0 never sees `mcp`), verdicts come back in
//! the current version's shape, and `visible` answers `None` for a version
//! that has no such export.

use wasmtime::component::InstancePre;
use wasmtime::{AsContextMut, Result};

use super::bindings::{GuestContext, v1, v2, wit};
use super::types::{Listing, PolicyRequest, Principal};

/// The contract a loaded component implements, as its WIT package names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1 => "airlock:policy@0.1.0",
            Contract::V0_2 => "airlock:policy@0.2.0",
        }
    }
}

/// Host imports a component may name, in any supported version.
pub(crate) const ALLOWED_IMPORTS: &[&str] = &[
    "airlock:policy/types@0.2.0",
    "airlock:policy/state@0.2.0",
    "airlock:policy/log@0.2.0",
    "airlock:policy/types@0.1.0",
    "airlock:policy/state@0.1.0",
    "airlock:policy/log@0.1.0",
];

/// A component checked against one contract version, ready to instantiate.
#[derive(Clone)]
pub(crate) enum PolicyPre {
    V1(v1::PolicyPre<GuestContext>),
    V2(v2::PolicyPre<GuestContext>),
}

impl PolicyPre {
    /// Match the component to the newest contract it implements. On
    /// failure, the error is the current version's: that is the one a
    /// policy author should build against.
    pub fn new(instance_pre: InstancePre<GuestContext>) -> Result<PolicyPre> {
        match v2::PolicyPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(PolicyPre::V2(pre)),
            Err(current) => match v1::PolicyPre::new(instance_pre) {
                Ok(pre) => Ok(PolicyPre::V1(pre)),
                Err(_) => Err(current),
            },
        }
    }

    pub fn contract(&self) -> Contract {
        match self {
            PolicyPre::V1(_) => Contract::V0_1,
            PolicyPre::V2(_) => Contract::V0_2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            PolicyPre::V1(pre) => pre.engine(),
            PolicyPre::V2(pre) => pre.engine(),
        }
    }

    pub fn instantiate(&self, store: impl AsContextMut<Data = GuestContext>) -> Result<Policy> {
        Ok(match self {
            PolicyPre::V1(pre) => Policy::V1(pre.instantiate(store)?),
            PolicyPre::V2(pre) => Policy::V2(pre.instantiate(store)?),
        })
    }
}

/// One instance's exports.
pub(crate) enum Policy {
    V1(v1::Policy),
    V2(v2::Policy),
}

impl Policy {
    pub fn call_evaluate(
        &self,
        store: impl AsContextMut<Data = GuestContext>,
        request: &PolicyRequest,
    ) -> Result<wit::Verdict> {
        match self {
            Policy::V1(p) => p.call_evaluate(store, &request_v1(request)).map(verdict_from_v1),
            Policy::V2(p) => p.call_evaluate(store, &request_v2(request)),
        }
    }

    /// `(name, version)`.
    pub fn call_describe(&self, store: impl AsContextMut<Data = GuestContext>) -> Result<(String, String)> {
        Ok(match self {
            Policy::V1(p) => {
                let d = p.call_describe(store)?;
                (d.name, d.version)
            }
            Policy::V2(p) => {
                let d = p.call_describe(store)?;
                (d.name, d.version)
            }
        })
    }

    /// The policy's answer, or `None` when its contract has no `visible`.
    pub fn call_visible(
        &self,
        store: impl AsContextMut<Data = GuestContext>,
        principal: &Principal,
        service: &str,
        kind: Listing,
        names: &[String],
    ) -> Result<Option<Vec<bool>>> {
        match self {
            Policy::V1(_) => Ok(None),
            Policy::V2(p) => {
                let kind = match kind {
                    Listing::Tools => wit::Listing::Tools,
                    Listing::Resources => wit::Listing::Resources,
                    Listing::ResourceTemplates => wit::Listing::ResourceTemplates,
                    Listing::Prompts => wit::Listing::Prompts,
                };
                p.call_visible(store, &principal_v2(principal), service, kind, names)
                    .map(Some)
            }
        }
    }
}

/// A principal in the types of contract module `$w`.
macro_rules! principal_in {
    ($w:ident, $p:expr) => {
        $w::Principal {
            agent: $p.agent.clone(),
            role: $p.role.clone(),
            session: $p.session.clone(),
            workflow: $p.workflow.clone(),
            on_behalf_of: $p.on_behalf_of.clone(),
            intent: $p.intent.clone(),
        }
    };
}

/// The fields every version's `request` shares; `$action_extra` adds what
/// only newer versions' `action` has.
macro_rules! request_in {
    ($w:path, $r:expr, { $($action_extra:tt)* }) => {{
        use $w as w;
        let r: &PolicyRequest = $r;
        let (p, a, u): (&Principal, _, _) = (&r.principal, &r.action, &r.usage);
        w::Request {
            principal: principal_in!(w, p),
            action: w::Action {
                service: a.service.clone(),
                operation: a.operation.clone(),
                params: a.params.0.clone(),
                method: a.method.clone(),
                path: a.path.clone(),
                query: a.query.0.clone(),
                headers: a.headers.0.clone(),
                body: a.body.clone(),
                body_truncated: a.body_truncated,
                $($action_extra)*
            },
            usage: w::Usage {
                requests_total: u.requests_total,
                requests_in_window: u.requests_in_window,
                window_seconds: u.window_seconds,
                grants: u.grants.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                session_started_ms: u.session_started_ms,
                now_ms: u.now_ms,
            },
            approval: r.approval.as_ref().map(|a| w::Approval {
                id: a.id.clone(),
                approver: a.approver.clone(),
                approved_at_ms: a.approved_at_ms,
            }),
        }
    }};
}

fn request_v1(r: &PolicyRequest) -> v1::airlock::policy::types::Request {
    request_in!(v1::airlock::policy::types, r, {})
}

pub(crate) fn request_v2(r: &PolicyRequest) -> wit::Request {
    request_in!(wit, r, {
        mcp: r.action.mcp.as_ref().map(|m| wit::McpCall {
            method: m.method.clone(),
            name: m.name.clone(),
            arguments: m.arguments.clone(),
            id: m.id.clone(),
        }),
    })
}

fn principal_v2(p: &Principal) -> wit::Principal {
    principal_in!(wit, p)
}

/// 0.1.0's verdict is 0.2.0's, field for field.
fn verdict_from_v1(v: v1::airlock::policy::types::Verdict) -> wit::Verdict {
    use v1::airlock::policy::types::Verdict as V1;
    match v {
        V1::Allow(g) => wit::Verdict::Allow(wit::Grant {
            scopes: g.scopes,
            ttl_seconds: g.ttl_seconds,
            single_use: g.single_use,
            max_response_bytes: g.max_response_bytes,
            claims: g.claims,
        }),
        V1::Deny(reason) => wit::Verdict::Deny(reason),
        V1::Escalate(reason) => wit::Verdict::Escalate(reason),
    }
}

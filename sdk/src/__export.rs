//! Glue between the wit-bindgen bindings and the SDK's own types. Only built
//! for wasm32; [`crate::export_policy!`] is its only user.

use crate::Policy;
use crate::mcp::{Listing, McpCall};
use crate::types::{Action, Approval, Description, Principal, Request, Usage, Verdict};

pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "airlock_sdk::__export::bindings",
        runtime_path: "airlock_sdk::__export::rt",
    });
}

pub use wit_bindgen::rt;

use bindings::airlock::policy::types as wit;

pub fn evaluate<P: Policy>(request: wit::Request) -> wit::Verdict {
    let request = from_wit(request);
    match P::evaluate(&request) {
        Verdict::Allow(grant) => wit::Verdict::Allow(wit::Grant {
            scopes: grant.scopes,
            ttl_seconds: grant.ttl_seconds,
            single_use: grant.single_use,
            max_response_bytes: grant.max_response_bytes,
            claims: grant.claims,
        }),
        Verdict::Deny(reason) => wit::Verdict::Deny(reason),
        Verdict::Escalate(reason) => wit::Verdict::Escalate(reason),
    }
}

pub fn describe<P: Policy>() -> wit::Description {
    let Description { name, version } = P::describe();
    wit::Description { name, version }
}

pub fn visible<P: Policy>(
    principal: wit::Principal,
    service: String,
    kind: wit::Listing,
    names: Vec<String>,
) -> Vec<bool> {
    let kind = match kind {
        wit::Listing::Tools => Listing::Tools,
        wit::Listing::Resources => Listing::Resources,
        wit::Listing::ResourceTemplates => Listing::ResourceTemplates,
        wit::Listing::Prompts => Listing::Prompts,
    };
    P::visible(&principal_from_wit(principal), &service, kind, &names)
}

fn principal_from_wit(principal: wit::Principal) -> Principal {
    Principal {
        agent: principal.agent,
        role: principal.role,
        session: principal.session,
        workflow: principal.workflow,
        on_behalf_of: principal.on_behalf_of,
        intent: principal.intent,
    }
}

fn from_wit(request: wit::Request) -> Request {
    let wit::Request {
        principal,
        action,
        usage,
        approval,
    } = request;
    Request {
        principal: principal_from_wit(principal),
        action: Action {
            service: action.service,
            operation: action.operation,
            params: action.params,
            method: action.method,
            path: action.path,
            query: action.query,
            headers: action.headers,
            body: action.body,
            body_truncated: action.body_truncated,
            mcp: action.mcp.map(|m| McpCall {
                method: m.method,
                name: m.name,
                arguments: m.arguments,
                id: m.id,
            }),
        },
        usage: Usage {
            requests_total: usage.requests_total,
            requests_in_window: usage.requests_in_window,
            window_seconds: usage.window_seconds,
            grants: usage.grants,
            session_started_ms: usage.session_started_ms,
            now_ms: usage.now_ms,
        },
        approval: approval.map(|a| Approval {
            id: a.id,
            approver: a.approver,
            approved_at_ms: a.approved_at_ms,
        }),
    }
}

//! Shared test fixtures.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::mint::TokenRequest;

pub(crate) const NOW: u64 = 1_700_000_000;

/// Owns what a [`TokenRequest`] borrows.
pub(crate) struct Fixture {
    scopes: Vec<String>,
    extra: BTreeMap<String, serde_json::Value>,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture {
            scopes: vec!["issues:read".into(), "repo:acme/api".into()],
            extra: BTreeMap::from([("ticket".to_owned(), serde_json::json!("T-1"))]),
        }
    }

    /// A request for service `code` by `agent-7`, issued at [`NOW`] for 60 s.
    pub(crate) fn request(&self) -> TokenRequest<'_> {
        TokenRequest {
            issuer: "airlock",
            agent: "agent-7",
            audience: "code",
            scopes: &self.scopes,
            role: "code-reviewer",
            session: "s-1",
            workflow: "wf-1",
            on_behalf_of: None,
            policy_digest: "sha256:abc",
            request_binding: "binding",
            single_use: false,
            jti: None,
            extra_claims: &self.extra,
            now: NOW,
            ttl: Duration::from_secs(60),
        }
    }
}

/// The claims of a token, without verifying it.
pub(crate) fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

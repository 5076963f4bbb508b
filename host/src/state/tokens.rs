//! What the store keeps about minted tokens.

use serde::{Deserialize, Serialize};

/// What the proxy records about each minted token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub jti: String,
    /// Id of the session it was minted under.
    pub session: String,
    pub workflow: String,
    pub agent: String,
    pub audience: String,
    pub scope: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; the token is inactive from this second on.
    pub expires_at: u64,
    pub single_use: bool,
    /// Digest of the request the token is bound to.
    pub request_binding: String,
}

/// RFC 7662 view of a token. `Active` only if it is known, not expired, not
/// revoked, its session is neither revoked nor expired, and (single use) it
/// has not been used yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStatus {
    Active(TokenRecord),
    Inactive,
}

impl TokenStatus {
    pub fn is_active(&self) -> bool {
        matches!(self, TokenStatus::Active(_))
    }
}

//! Session types, and the random identifiers and handles a store hands out.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StateError;

/// Prefix of a session handle, the bearer secret an agent presents.
pub const HANDLE_PREFIX: &str = "alh_";
/// Prefix of a session id (not secret; appears in audit records).
pub const SESSION_PREFIX: &str = "ses_";

/// Random bytes in a handle: 256 bits.
const HANDLE_BYTES: usize = 32;
/// Random bytes in a session id: 128 bits, enough to never collide.
const SESSION_ID_BYTES: usize = 16;

/// What the orchestrator asks for when it starts an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub agent: String,
    pub role: String,
    pub workflow: String,
    pub on_behalf_of: Option<String>,
    pub intent: Option<String>,
    pub ttl: Duration,
}

/// A session, as the store reports it. Never carries the handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `ses_` and 16 random bytes in base64url.
    pub id: String,
    pub agent: String,
    pub role: String,
    pub workflow: String,
    pub on_behalf_of: Option<String>,
    pub intent: Option<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub revoked: bool,
}

impl Session {
    /// Time left before the session expires (zero once expired).
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.expires_at_ms.saturating_sub(now_ms))
    }

    /// Not revoked and not yet expired.
    pub fn is_active(&self, now_ms: u64) -> bool {
        !self.revoked && now_ms < self.expires_at_ms
    }
}

/// What a handle names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    Active(Session),
    Expired(Session),
    Revoked(Session),
    Unknown,
}

/// The digest under which a handle is stored and looked up.
pub(super) fn handle_digest(handle: &str) -> [u8; 32] {
    Sha256::digest(handle.as_bytes()).into()
}

/// A fresh handle: `alh_` and 32 random bytes in base64url.
pub(super) fn new_handle() -> Result<String, StateError> {
    Ok(format!("{HANDLE_PREFIX}{}", random_b64::<HANDLE_BYTES>()?))
}

/// A fresh session id: `ses_` and 16 random bytes in base64url.
pub(super) fn new_session_id() -> Result<String, StateError> {
    Ok(format!("{SESSION_PREFIX}{}", random_b64::<SESSION_ID_BYTES>()?))
}

/// A fresh approval id: `apr_` and 16 random bytes in base64url.
pub(super) fn new_approval_id() -> Result<String, StateError> {
    Ok(format!(
        "{}{}",
        super::APPROVAL_PREFIX,
        random_b64::<SESSION_ID_BYTES>()?
    ))
}

fn random_b64<const N: usize>() -> Result<String, StateError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StateError("secure random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `now_ms + ttl`, saturating.
pub(super) fn expiry(now_ms: u64, ttl: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

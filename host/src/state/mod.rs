//! Sessions, rate windows, single-use tokens and workflow state.
//!
//! [`Store`] is the only way the rest of the host touches this state. Every
//! read-modify-write it offers (create a session, take a request against the
//! rate window, commit a policy's writes, consume a single-use `jti`, revoke)
//! is one atomic operation of the store, so a shared store for several
//! replicas (Redis with one Lua script per operation) can implement the trait
//! without changing its callers. [`MemoryStore`] is the in-process default.
//!
//! Nothing secret is kept: a session handle is stored only as its sha256
//! digest, and of a minted token only its [`TokenRecord`] (never the token).

mod memory;
mod rate;
mod sessions;
mod tokens;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::policy::StateError;
use crate::policy::{StateWrite, Usage, WorkflowState};

pub use memory::MemoryStore;
pub use rate::WINDOW_SECONDS;
pub use sessions::{HANDLE_PREFIX, NewSession, SESSION_PREFIX, Session, SessionLookup};
pub use tokens::{TokenRecord, TokenStatus};

/// The answer of [`Store::take_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCheck {
    /// False when the session is at its per-minute limit; the request must
    /// then be refused (429) without reaching the policy.
    pub allowed: bool,
    /// What the session did *before* this request, in the policy contract's
    /// terms: `requests_total` counts every earlier request (refused ones
    /// too), `requests_in_window` the earlier requests that were let through
    /// in the last [`WINDOW_SECONDS`]. Pass it to the policy as is.
    pub usage: Usage,
    /// When refused: how long until the window has room again (≤ 60 s).
    pub retry_after: Option<Duration>,
}

/// The host's state. Each method is one atomic operation.
///
/// [`WorkflowState::get`] (the supertrait, what the policy engine reads
/// through) reads committed workflow state. An `Arc<dyn Store>` coerces to
/// the `Arc<dyn WorkflowState>` the engine takes.
pub trait Store: WorkflowState + Send + Sync {
    /// Create a session. Returns it with its handle: `alh_` and 32 random
    /// bytes in base64url. Only sha256(handle) is stored.
    fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError>;

    /// The session a handle names, looked up by the handle's digest.
    /// A revoked session is reported as `Revoked` even once expired.
    fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError>;

    /// A session by id, whatever its state (while the store still keeps it).
    fn get_session(&self, id: &str) -> Result<Option<Session>, StateError>;

    /// The active sessions (not revoked, not expired), oldest first.
    fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError>;

    /// Revoke the session: its handle and every token minted under it become
    /// inactive at once. `Ok(false)` if unknown.
    fn revoke_session(&self, id: &str) -> Result<bool, StateError>;

    /// Count this request against the session's sliding one-minute window and
    /// refuse it past `per_minute` (0 = unlimited). A refused request counts
    /// in `requests_total` but not in the window. Errors if the session is
    /// unknown, revoked or expired (fail closed).
    fn take_request(&self, session: &Session, per_minute: u32, now_ms: u64) -> Result<RateCheck, StateError>;

    /// After an allow: commit the policy's writes to the workflow's state and
    /// count one grant of `operation` for the session, together.
    ///
    /// `reads` are the `(key, value)` pairs the policy based its decision on
    /// (`Evaluation::state_reads`); if any of them changed since, nothing is
    /// committed and the answer is `Ok(false)`: re-evaluate or deny.
    /// Errors if the session is unknown, revoked, or of another workflow.
    fn commit_allow(
        &self,
        workflow: &str,
        session_id: &str,
        operation: &str,
        reads: &[(String, Option<String>)],
        writes: &[StateWrite],
    ) -> Result<bool, StateError>;

    /// Remember a minted token. A `jti` already recorded is an error.
    fn record_token(&self, record: TokenRecord) -> Result<(), StateError>;

    /// RFC 7662 introspection. With `consume`, an active single-use token is
    /// marked used in the same operation, so a second call sees it inactive.
    fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError>;

    /// RFC 7009: revoke one token. `Ok(false)` if unknown.
    fn revoke_token(&self, jti: &str) -> Result<bool, StateError>;

    /// For operators: a workflow's committed state.
    fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError>;
}

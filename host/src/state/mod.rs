//! Sessions, rate windows, budgets, single-use tokens, human approvals and
//! workflow state.
//!
//! [`Store`] is the only way the rest of the host touches this state. Every
//! read-modify-write it offers (start a request against the rate window,
//! commit a policy's writes with its budget, approval and token record,
//! consume a single-use `jti`, revoke) is one atomic operation of the store,
//! so a shared store for several replicas implements the trait without
//! changing its callers. The trait is async: a store may do network or disk
//! I/O, never on the caller's thread.
//!
//! A request costs the store at most two round trips: [`Store::begin`]
//! (session, rate window, the workflow state the policy reads, the approval
//! presented) and, on allow, [`Store::commit_allow`] (state writes, budget,
//! approval use and the token record). A deny costs one.
//!
//! Backends: [`MemoryStore`] (one process, nothing kept; also the logic of
//! the durable store), [`MemoryStore::durable`] (the same, with every change
//! written to an embedded SQLite database before it is acknowledged),
//! [`RedisStore`] (shared by several replicas; each operation one Lua
//! script).
//!
//! Nothing secret is kept: a session handle is stored only as its sha256
//! digest, and of a minted token only its [`TokenRecord`] (never the token).

mod approvals;
mod journal;
mod memory;
mod metered;
mod rate;
mod redis;
mod sessions;
mod snapshot;
mod tokens;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::policy::StateError;
use crate::policy::{StateWrite, Usage};

pub use approvals::{APPROVAL_PREFIX, Approval, ApprovalDecision, ApprovalError, EscalatedRequest};
pub use memory::MemoryStore;
pub use metered::Metered;
pub use rate::WINDOW_SECONDS;
pub use redis::{RedisOptions, RedisStore};
pub use sessions::{HANDLE_PREFIX, NewSession, SESSION_PREFIX, Session, SessionLookup};
pub use snapshot::StateSnapshot;
pub use tokens::{TokenRecord, TokenStatus};

/// The answer of the rate window, in [`Started::rate`].
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

/// What [`Store::begin`] needs: the handle the agent presented, the approval
/// it names (if any), and each role's per-minute limit (0 = unlimited; a role
/// not listed is unlimited).
#[derive(Debug, Clone, Copy)]
pub struct Begin<'a> {
    pub handle: &'a str,
    pub approval: Option<&'a str>,
    pub rate_limits: &'a BTreeMap<String, u32>,
    pub now_ms: u64,
}

/// The answer of [`Store::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// What the handle names. Only an `Active` session was counted.
    pub lookup: SessionLookup,
    /// The rate window's answer; `Some` exactly when the session is active.
    pub rate: Option<RateCheck>,
    /// The workflow's committed state, as one consistent snapshot; what the
    /// policy reads. Empty unless the session is active.
    pub state: StateSnapshot,
    /// The approval named in [`Begin::approval`], whatever its state or
    /// session (the caller checks it fits the request).
    pub approval: Option<Approval>,
}

/// Everything an allow commits, in one atomic operation of the store.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub workflow: &'a str,
    pub session_id: &'a str,
    /// The operation granted; counted per session.
    pub operation: &'a str,
    /// The `(key, value)` pairs the policy based its decision on
    /// (`Evaluation::state_reads`).
    pub reads: &'a [(String, Option<String>)],
    /// The policy's buffered writes (`Evaluation::state_writes`).
    pub writes: &'a [StateWrite],
    /// The role's cap on grants of `operation` per session, if any.
    pub max_grants: Option<u32>,
    /// The approval this allow uses up, if the request carried one.
    pub approval: Option<&'a str>,
    /// The token about to be minted for this allow, recorded with it (its
    /// `jti` must be new).
    pub token: Option<&'a TokenRecord>,
    pub now_ms: u64,
}

/// What [`Store::commit_allow`] did. Anything but `Committed` committed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// A state key the policy read changed since: evaluate again, on this
    /// fresh snapshot of the workflow's state.
    StateChanged(StateSnapshot),
    /// The session already holds `limit` grants of the operation.
    BudgetExhausted {
        limit: u32,
    },
    /// The approval is no longer approved (used, expired) or unknown.
    ApprovalUnusable(String),
}

/// The host's state. Each method is one atomic operation of the store.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is (`memory`, `sqlite`, `redis`), for metrics and logs.
    fn backend(&self) -> &'static str;

    /// Whether the store can serve now (a cheap round trip, for readiness).
    async fn ping(&self) -> Result<(), StateError>;

    /// Create a session. Returns it with its handle: `alh_` and 32 random
    /// bytes in base64url. Only sha256(handle) is stored. Refused in a
    /// revoked workflow.
    async fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError>;

    /// The session a handle names, looked up by the handle's digest.
    /// A revoked session is reported as `Revoked` even once expired.
    async fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError>;

    /// The start of one data-plane request, in one operation: look the
    /// handle up; if the session is active, count the request against its
    /// sliding one-minute window (refusing it past its role's limit; a
    /// refused request counts in `requests_total` but not in the window),
    /// and take a snapshot of its workflow's state; fetch the named approval.
    ///
    /// The count may still be on its way to disk when this answers (the
    /// request is not served yet): a later [`commit_allow`](Store::commit_allow)
    /// is durable only with everything before it, and a request refused
    /// instead waits for [`settle`](Store::settle). So an allowed request
    /// costs one durable round trip, not two.
    async fn begin(&self, begin: &Begin<'_>) -> Result<Started, StateError>;

    /// Wait until every change this store has accepted so far is durable:
    /// what a refusal calls before it answers, so the request it counted
    /// survives a crash. A store whose every operation is durable when it
    /// answers has nothing to wait for.
    async fn settle(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// A session by id, whatever its state (while the store still keeps it).
    async fn get_session(&self, id: &str) -> Result<Option<Session>, StateError>;

    /// The active sessions (not revoked, not expired), oldest first.
    async fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError>;

    /// Revoke the session: its handle and every token minted under it become
    /// inactive at once. `Ok(false)` if unknown.
    async fn revoke_session(&self, id: &str) -> Result<bool, StateError>;

    /// Revoke a whole workflow: every session in it (so every handle and
    /// token under them) at once, and no session can be created in it again.
    /// Returns the ids of the sessions revoked by this call.
    async fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError>;

    /// True once [`Store::revoke_workflow`] was called for `workflow`.
    async fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError>;

    /// After an allow, atomically: check the read set is unchanged, the
    /// grant budget has room and the approval (if any) is still approved;
    /// then apply the policy's writes, count the grant, mark the approval
    /// used and record the token. If any check fails nothing is applied.
    /// Errors if the session is unknown, revoked, or of another workflow,
    /// or the token's `jti` is already recorded.
    async fn commit_allow(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StateError>;

    /// Remember a minted token. A `jti` already recorded is an error.
    async fn record_token(&self, record: TokenRecord) -> Result<(), StateError>;

    /// RFC 7662 introspection. With `consume`, an active single-use token is
    /// marked used in the same operation, so a second call sees it inactive.
    async fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError>;

    /// RFC 7009: revoke one token. `Ok(false)` if unknown.
    async fn revoke_token(&self, jti: &str) -> Result<bool, StateError>;

    /// For operators: a workflow's committed state.
    async fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError>;

    /// For operators: set (`Some`) or remove (`None`) keys of a workflow's
    /// state, all at once. Returns the state after the change.
    async fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError>;

    /// Record a pending approval for an escalated request, expiring `ttl_ms` from now.
    async fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError>;

    /// An approval by id.
    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError>;

    /// Approvals, newest first; with `pending_only`, those still awaiting a
    /// decision and not expired.
    async fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError>;

    /// A person's decision on a pending, unexpired approval.
    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError>;
}

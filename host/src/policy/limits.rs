//! Per-role evaluation limits and the contract's bounds on what a policy may
//! hand back to the host.

use std::time::Duration;

/// How much one evaluation may use. Set per role in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly, wasm instructions) per evaluation.
    pub fuel: u64,
    /// Cap on the guest's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline for one evaluation.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 20_000_000,
            memory_bytes: 16 << 20,
            deadline: Duration::from_millis(50),
        }
    }
}

/// Bounds from `wit/policy.wit`. The WIT file documents these numbers for
/// policy authors; keep both in step.
pub(crate) mod bounds {
    pub const MAX_SCOPES: usize = 32;
    pub const MAX_SCOPE_LEN: usize = 128;
    pub const MAX_CLAIMS: usize = 16;
    pub const MAX_CLAIM_NAME_LEN: usize = 64;
    pub const MAX_CLAIM_VALUE_LEN: usize = 1024;
    pub const MAX_REASON_LEN: usize = 1024;
    pub const MAX_STATE_KEY_LEN: usize = 128;
    pub const MAX_STATE_VALUE_LEN: usize = 4096;
    pub const MAX_STATE_WRITES: usize = 64;
    pub const MAX_LOG_RECORDS: usize = 32;
    pub const MAX_LOG_RECORD_BYTES: usize = 1024;
    pub const MAX_LOG_FIELDS: usize = 16;
    /// Captured stdout+stderr of a WASI guest, per evaluation.
    pub const MAX_GUEST_OUTPUT: usize = 16 * 1024;
    /// Claims a policy can never set: registered JWT claims and Airlock's own.
    /// The token service checks the same list when it mints.
    pub const RESERVED_CLAIMS: &[&str] = &[
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "scope",
        "act",
        "role",
        "session",
        "workflow",
        "obo",
        "on_behalf_of",
        "policy",
        "policy_digest",
        "req",
        "cnf",
        "client_id",
        "single_use",
    ];
}

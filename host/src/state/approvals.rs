//! Human approvals: what a policy's `escalate` leaves for a person to decide.
//!
//! An approval is bound to one exact request by `request_hash` (principal,
//! service, method, path, canonical query and body). Once approved, the agent
//! may send that identical request again with the approval id; the allow that
//! follows uses the approval up in the same atomic commit, so it goes through
//! once. Approvals expire `expires_at_ms` after they were asked for, decided
//! or not.

use serde::{Deserialize, Serialize};

/// Prefix of an approval id.
pub const APPROVAL_PREFIX: &str = "apr_";

/// The request a policy escalated, as the proxy records it for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalatedRequest {
    /// What the approval is bound to (see the proxy's `request_hash`).
    pub request_hash: String,
    pub session: String,
    pub agent: String,
    pub role: String,
    pub workflow: String,
    pub service: String,
    pub operation: String,
    pub method: String,
    pub path: String,
    /// The policy's reason, shown to the approver.
    pub reason: String,
    /// The decision that escalated.
    pub decision_id: String,
}

/// An approval as the store keeps it: the escalated request and where its
/// decision stands. Serialized flat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// `apr_` and 16 random bytes in base64url.
    pub id: String,
    #[serde(flatten)]
    pub request: EscalatedRequest,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    #[serde(flatten)]
    pub decision: ApprovalDecision,
}

/// Where an approval stands, apart from expiry (see [`Approval::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ApprovalDecision {
    Pending,
    Approved {
        approver: String,
        decided_at_ms: u64,
        note: Option<String>,
    },
    Denied {
        approver: String,
        decided_at_ms: u64,
        note: Option<String>,
    },
    /// Approved, and the approved request went through.
    Used {
        approver: String,
        decided_at_ms: u64,
        used_at_ms: u64,
    },
}

impl Approval {
    /// `pending`, `approved`, `denied`, `used` or `expired` at `now_ms`.
    pub fn status(&self, now_ms: u64) -> &'static str {
        match &self.decision {
            ApprovalDecision::Used { .. } => "used",
            ApprovalDecision::Denied { .. } => "denied",
            _ if now_ms >= self.expires_at_ms => "expired",
            ApprovalDecision::Pending => "pending",
            ApprovalDecision::Approved { .. } => "approved",
        }
    }

    /// The approver and decision time, if approved and still usable at `now_ms`.
    pub fn usable(&self, now_ms: u64) -> Option<(&str, u64)> {
        match &self.decision {
            ApprovalDecision::Approved {
                approver,
                decided_at_ms,
                ..
            } if now_ms < self.expires_at_ms => Some((approver, *decided_at_ms)),
            _ => None,
        }
    }

    /// The JSON operators see: the record plus its `status` now.
    pub fn to_json(&self, now_ms: u64) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["status"] = self.status(now_ms).into();
        v
    }
}

/// Why an approval could not be decided or used.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {0:?}")]
    NotFound(String),
    #[error("approval {id} is {status}, not pending")]
    NotPending { id: String, status: &'static str },
    #[error(transparent)]
    Store(#[from] super::StateError),
}

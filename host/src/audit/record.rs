//! What an audit record says: one data-plane decision or one control-plane action.
//!
//! These types hold identifiers, never secrets: a decision names the token it
//! minted by `jti`, scope and TTL only, so a token cannot reach the log by
//! construction. Every field is always written (`null` when absent), so each
//! kind has one stable set of keys for whoever ingests the log.

use serde::{Deserialize, Serialize};

/// One decision of the data plane. Never holds a token or secret: only the token's jti, scope, TTL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DecisionRecord {
    pub decision_id: String,
    pub session: String,
    pub agent: String,
    pub role: String,
    pub workflow: String,
    pub on_behalf_of: Option<String>,
    pub service: String,
    pub operation: Option<String>,
    pub method: String,
    pub path: String,
    /// "allow" | "deny" | "escalate" | "error".
    pub verdict: String,
    /// The agent-facing error code when not allowed, e.g. "denied", "rate_limited", "unknown_service".
    pub error: Option<String>,
    pub reason: Option<String>,
    pub policy_name: Option<String>,
    pub policy_digest: Option<String>,
    pub fuel: Option<u64>,
    pub eval_micros: Option<u64>,
    pub token_jti: Option<String>,
    pub token_scope: Option<String>,
    pub token_ttl_s: Option<u64>,
    /// The human approval this decision created (escalate) or used (allow).
    pub approval_id: Option<String>,
    pub upstream_status: Option<u16>,
    /// Response bytes returned to the agent.
    pub bytes: Option<u64>,
    pub latency_micros: u64,
    /// For an MCP service: the JSON-RPC method of the one message decided.
    pub mcp_method: Option<String>,
    /// The tool or prompt name, or resource URI, the message named.
    pub mcp_name: Option<String>,
    /// `sha256:<hex>` of the message's arguments (canonical JSON), so two
    /// records can be compared without the log holding the arguments.
    pub mcp_arguments_sha256: Option<String>,
    /// The JSON-RPC id as JSON text; `null` for a notification.
    pub mcp_id: Option<String>,
}

/// An operator or control-plane action: session created/revoked, policy loaded/rejected, key rotated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AdminRecord {
    pub action: String,
    pub actor: String,
    pub subject: String,
    pub detail: Option<String>,
}

/// What one line of the log records. Serialized flat, with `"kind"` naming the variant.
///
/// A decision is much larger than an admin action; it is not boxed because an
/// event is built once, moved into [`super::AuditLog::append`] and dropped, never kept in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AuditEvent {
    Decision(DecisionRecord),
    /// What came back from upstream for an allowed decision. The decision is
    /// written before the request is forwarded (so a failing log means
    /// nothing is forwarded); its outcome follows as this record.
    Outcome(OutcomeRecord),
    Admin(AdminRecord),
    Shadow(ShadowRecord),
}

/// A candidate version (shadow evaluation) disagreed with the enforced one
/// on a decision, linked by `decision_id`. It changed nothing: the agent got
/// the enforced verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ShadowRecord {
    pub decision_id: String,
    pub role: String,
    /// `allow→deny`, `deny→allow`, `reason` or `grant`.
    pub change: String,
    pub enforced_digest: String,
    pub enforced_verdict: String,
    pub enforced_reason: Option<String>,
    pub candidate_digest: String,
    pub candidate_verdict: String,
    pub candidate_reason: Option<String>,
}

/// The upstream result of an allowed decision, linked by `decision_id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutcomeRecord {
    pub decision_id: String,
    pub upstream_status: Option<u16>,
    /// Response bytes returned to the agent.
    pub bytes: Option<u64>,
    /// Set when the request failed after the decision (e.g. `upstream_timeout`).
    pub error: Option<String>,
    pub latency_micros: u64,
}

//! Human approval of escalated requests, as the data plane sees it.
//!
//! A policy's `escalate` becomes a pending approval bound to the exact
//! request; the agent is told its id. Once a person approves it, the agent
//! sends the identical request again with `X-Airlock-Approval: <id>`; the
//! policy then sees the approval and decides again, and an allow uses the
//! approval up in the same atomic commit (`Store::commit_allow`).

use sha2::{Digest, Sha256};

use super::pipeline::{Refused, refused, store_unavailable};
use super::reply::Refusal;
use crate::audit::DecisionRecord;
use crate::policy::Approval;
use crate::server::Airlock;
use crate::state::{EscalatedRequest, Session};

/// The request header that names an approval. Like every `x-airlock-*`
/// header it reaches neither the policy nor the upstream.
pub(super) const APPROVAL_HEADER: &str = "x-airlock-approval";

/// What an approval is bound to: hex sha256 of the principal (session,
/// agent, role, workflow), the service, and the request's token binding
/// (`token::request_binding`: method, path, canonical query and body).
pub(super) fn request_hash(session: &Session, service: &str, binding: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        session.id.as_str(),
        session.agent.as_str(),
        session.role.as_str(),
        session.workflow.as_str(),
        service,
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.update(binding.as_bytes());
    hex::encode(h.finalize())
}

/// The approval named by the agent (`found`: what the store holds under
/// `id`), if it fits this request and is approved.
pub(super) fn approval_for(
    found: Option<&crate::state::Approval>,
    id: &str,
    session: &Session,
    hash: &str,
    now_ms: u64,
) -> Result<Approval, Refused> {
    let invalid = |reason: String| refused(Refusal::ApprovalInvalid, reason);
    let approval = found.ok_or_else(|| invalid(format!("no approval {id:?}")))?;
    if approval.request.session != session.id {
        return Err(invalid(format!("approval {id} was given to another session")));
    }
    if approval.request.request_hash != hash {
        return Err(invalid(format!(
            "approval {id} is for a different request ({} {}); send exactly the request that was escalated",
            approval.request.method, approval.request.path
        )));
    }
    match approval.usable(now_ms) {
        Some((approver, approved_at_ms)) => Ok(Approval {
            id: approval.id.clone(),
            approver: approver.to_string(),
            approved_at_ms,
        }),
        None => Err(invalid(match approval.status(now_ms) {
            "pending" => format!("approval {id} is still pending: a person must approve it first"),
            "denied" => format!("approval {id} was denied; this request will not go through"),
            "used" => format!("approval {id} was already used; an approval lets one request through"),
            _ => format!("approval {id} has expired; send the request again to ask anew"),
        })),
    }
}

/// Record a pending approval for an escalated request and answer 403
/// `escalated` with its id.
#[allow(clippy::too_many_arguments)]
pub(super) async fn escalate(
    ctx: &Airlock,
    session: &Session,
    operation: &str,
    method: &str,
    path: &str,
    hash: String,
    reason: String,
    record: &mut DecisionRecord,
    now_ms: u64,
) -> Refused {
    let ttl_ms = ctx.config.approvals.ttl_s.saturating_mul(1000);
    let created = ctx.store.create_approval(
        EscalatedRequest {
            request_hash: hash,
            session: session.id.clone(),
            agent: session.agent.clone(),
            role: session.role.clone(),
            workflow: session.workflow.clone(),
            service: record.service.clone(),
            operation: operation.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            reason: reason.clone(),
            decision_id: record.decision_id.clone(),
        },
        ttl_ms,
        now_ms,
    );
    let approval = match created.await {
        Ok(a) => a,
        Err(e) => return store_unavailable(e),
    };
    record.approval_id = Some(approval.id.clone());
    let mut r = refused(
        Refusal::Escalated,
        format!(
            "{reason} — a person must approve it ({}); then send this identical request again \
             with the header `X-Airlock-Approval: {}`",
            approval.id, approval.id
        ),
    );
    let mut extra = serde_json::Map::new();
    extra.insert("approval_id".into(), approval.id.clone().into());
    extra.insert("approval_expires_at_ms".into(), approval.expires_at_ms.into());
    r.extra = Some(extra);
    r
}

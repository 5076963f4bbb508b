//! The control plane of exact privilege: human approvals of escalated
//! requests, workflow state, and revoking a whole workflow. Every change is
//! audited before it is answered.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Reply, audit, body_bytes, error, reply, store_error};
use crate::policy::limits_bounds as bounds;
use crate::proxy::now_ms;
use crate::server::Airlock;
use crate::state::ApprovalError;

/// `GET /v1/approvals[?status=pending]`: newest first, each with its status now.
pub(super) async fn list_approvals(ctx: &Airlock, query: Option<&str>) -> Result<Reply, Reply> {
    let pending_only = match query.unwrap_or("") {
        "" | "status=all" => false,
        "status=pending" => true,
        other => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("unknown filter {other:?}; use status=pending or status=all"),
            ));
        }
    };
    let now = now_ms();
    let list: Vec<Value> = ctx
        .store
        .list_approvals(now, pending_only)
        .await
        .map_err(store_error)?
        .iter()
        .map(|a| a.to_json(now))
        .collect();
    Ok(reply(StatusCode::OK, json!({ "approvals": list })))
}

/// `GET /v1/approvals/{id}`.
pub(super) async fn show_approval(ctx: &Airlock, id: &str) -> Result<Reply, Reply> {
    match ctx.store.get_approval(id).await.map_err(store_error)? {
        Some(a) => Ok(reply(StatusCode::OK, a.to_json(now_ms()))),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no approval {id:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Who decides: a person, named for the audit trail.
    approver: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/approvals/{id}/approve|deny` with `{"approver", "note"?}`.
pub(super) async fn decide(
    ctx: &Airlock,
    request: Request<Incoming>,
    id: &str,
    approve: bool,
    actor: &str,
) -> Result<Reply, Reply> {
    let body = body_bytes(request).await?;
    let decision: Decision = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("approval decision: {e}; send {{\"approver\": \"<name>\", \"note\": \"...\"}}"),
        )
    })?;
    if decision.approver.trim().is_empty() || decision.approver.len() > 128 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "approver must be 1..=128 bytes naming the person who decides",
        ));
    }
    if decision.note.as_ref().is_some_and(|n| n.len() > 1024) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "note must be at most 1 KiB",
        ));
    }
    let action = if approve {
        "approval.approve"
    } else {
        "approval.deny"
    };
    let now = now_ms();
    // Checked first so that only a decision that will happen is audited.
    match ctx.store.get_approval(id).await.map_err(store_error)? {
        None => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no approval {id:?}"),
            ));
        }
        Some(a) if a.status(now) != "pending" => {
            return Err(error(
                StatusCode::CONFLICT,
                "not_pending",
                format!("approval {id} is {}, not pending", a.status(now)),
            ));
        }
        Some(_) => {}
    }
    let detail = format!(
        "approver={}{}",
        decision.approver,
        decision
            .note
            .as_deref()
            .map(|n| format!(" note={n}"))
            .unwrap_or_default()
    );
    audit(ctx, action, actor, id, Some(detail))?;
    match ctx
        .store
        .decide_approval(id, approve, &decision.approver, decision.note, now)
        .await
    {
        Ok(a) => Ok(reply(StatusCode::OK, a.to_json(now))),
        Err(ApprovalError::NotFound(_)) => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no approval {id:?}"),
        )),
        Err(e @ ApprovalError::NotPending { .. }) => {
            Err(error(StatusCode::CONFLICT, "not_pending", e.to_string()))
        }
        Err(ApprovalError::Store(e)) => Err(store_error(e)),
    }
}

/// `PATCH /v1/workflows/{id}/state` with `{"key": "value" | null, ...}`.
pub(super) async fn set_state(
    ctx: &Airlock,
    request: Request<Incoming>,
    workflow: &str,
    actor: &str,
) -> Result<Reply, Reply> {
    let body = body_bytes(request).await?;
    let bad = |reason: String| error(StatusCode::BAD_REQUEST, "bad_request", reason);
    let changes: Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "workflow state change: {e}; send {{\"key\": \"value\", \"other\": null}}"
        ))
    })?;
    if changes.is_empty() || changes.len() > bounds::MAX_STATE_WRITES {
        return Err(bad(format!(
            "change 1..={} keys at once",
            bounds::MAX_STATE_WRITES
        )));
    }
    let mut list = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        if key.is_empty() || key.len() > bounds::MAX_STATE_KEY_LEN {
            return Err(bad(format!(
                "key {key:?} must be 1..={} bytes",
                bounds::MAX_STATE_KEY_LEN
            )));
        }
        let value = match value {
            Value::Null => None,
            Value::String(s) if s.len() <= bounds::MAX_STATE_VALUE_LEN => Some(s),
            Value::String(_) => {
                return Err(bad(format!(
                    "the value of {key:?} is over {} bytes",
                    bounds::MAX_STATE_VALUE_LEN
                )));
            }
            other => {
                return Err(bad(format!(
                    "the value of {key:?} must be a string or null, not {other}"
                )));
            }
        };
        list.push((key, value));
    }
    let detail = list
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => format!("-{k}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    audit(ctx, "workflow.state.set", actor, workflow, Some(detail))?;
    let state = ctx
        .store
        .set_workflow_state(workflow, &list)
        .await
        .map_err(store_error)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "workflow": workflow, "state": state }),
    ))
}

/// `DELETE /v1/workflows/{id}`: every session of the workflow, with every
/// handle and token under it, inactive at once; no new session in it.
pub(super) async fn revoke_workflow(ctx: &Airlock, workflow: &str, actor: &str) -> Result<Reply, Reply> {
    // Audited first: a revocation that cannot be recorded is not done.
    audit(ctx, "workflow.revoke", actor, workflow, None)?;
    let sessions = ctx.store.revoke_workflow(workflow).await.map_err(store_error)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "workflow": workflow, "revoked_sessions": sessions }),
    ))
}

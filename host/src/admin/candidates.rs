//! Candidate versions of a role's policy: shadow, clear, promote.
//!
//! `PUT /v1/policies/{role}/shadow` with `{"file": "NAME.wasm"}` (a file in
//! the policy directory) makes it the role's candidate; `DELETE` drops it;
//! `POST /v1/policies/{role}/promote` makes it the enforced version.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Reply, audit, body_bytes, error, reply};
use crate::policy::RegistryError;
use crate::server::Airlock;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowRequest {
    file: String,
}

fn refused(e: RegistryError) -> Reply {
    let (status, code) = match &e {
        RegistryError::UnknownRole(_) => (StatusCode::NOT_FOUND, "unknown_role"),
        RegistryError::NoCandidate(_) => (StatusCode::CONFLICT, "no_candidate"),
        RegistryError::CandidateChanged { .. } => (StatusCode::CONFLICT, "candidate_changed"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "policy_rejected"),
    };
    error(status, code, e.to_string())
}

pub(super) async fn shadow(
    ctx: &Airlock,
    request: Request<Incoming>,
    actor: &str,
    role: &str,
) -> Result<Reply, Reply> {
    let body = body_bytes(request).await?;
    let req: ShadowRequest = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("shadow request: {e} (expected {{\"file\": \"NAME.wasm\"}})"),
        )
    })?;
    match ctx.registry.shadow(role, &req.file) {
        Ok(info) => {
            audit(
                ctx,
                "policy.shadowed",
                actor,
                role,
                Some(format!("{} {}", req.file, info.digest)),
            )?;
            Ok(reply(StatusCode::OK, json!({ "role": role, "candidate": info })))
        }
        Err(e) => {
            audit(ctx, "policy.rejected", actor, role, Some(e.to_string()))?;
            Err(refused(e))
        }
    }
}

pub(super) fn clear(ctx: &Airlock, actor: &str, role: &str) -> Result<Reply, Reply> {
    let cleared = ctx.registry.clear_shadow(role).map_err(refused)?;
    if let Some(info) = &cleared {
        audit(
            ctx,
            "policy.shadow_cleared",
            actor,
            role,
            Some(info.digest.clone()),
        )?;
    }
    Ok(reply(StatusCode::OK, json!({ "role": role, "cleared": cleared })))
}

pub(super) fn promote(ctx: &Airlock, actor: &str, role: &str) -> Result<Reply, Reply> {
    let result = ctx.registry.promote(role);
    let (_, detail, mut answer) = super::reload_outcome(role, &result);
    let outcome = result.map_err(refused)?;
    audit(ctx, "policy.promoted", actor, role, Some(detail))?;
    if let crate::policy::ReloadOutcome::Unchanged { .. } = outcome {
        answer["promoted"] = json!(true);
    }
    Ok(reply(StatusCode::OK, answer))
}

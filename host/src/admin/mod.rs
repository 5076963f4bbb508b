//! The control plane, on its own listener: sessions, token introspection
//! (RFC 7662) and revocation (RFC 7009), the JWKS, policies and keys.
//!
//! Every call but health, readiness, the JWKS and `/metrics` (open, or
//! behind its own token) needs the admin bearer
//! token; introspection and revocation also accept the narrower
//! introspection token meant for upstreams. Every change is audited.

// Handlers return `Result<Reply, Reply>`: the error is the response itself,
// built once and returned; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod candidates;
mod exact;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AdminRecord, AuditEvent};
use crate::policy::{RegistryError, ReloadOutcome};
use crate::proxy::{now_ms, percent_decode};
use crate::server::Airlock;
use crate::state::{NewSession, TokenStatus};

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

fn error(status: StatusCode, code: &str, reason: impl Into<String>) -> Reply {
    reply(status, json!({ "error": code, "reason": reason.into() }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Admin,
    Introspector,
    Anonymous,
}

fn caller(ctx: &Airlock, request: &Request<Incoming>) -> Caller {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(presented) = presented else {
        return Caller::Anonymous;
    };
    let matches = |secret: &str| {
        aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), secret.as_bytes()).is_ok()
    };
    if matches(&ctx.admin_token.0) {
        Caller::Admin
    } else if ctx.introspection_token.as_ref().is_some_and(|t| matches(&t.0)) {
        Caller::Introspector
    } else {
        Caller::Anonymous
    }
}

/// A reload's outcome for one role, as its audit action and detail and as
/// the admin API's answer; the file watcher audits its reloads with it too.
pub(crate) fn reload_outcome(
    role: &str,
    result: &Result<ReloadOutcome, RegistryError>,
) -> (&'static str, String, Value) {
    match result {
        Ok(ReloadOutcome::Unchanged { digest }) => (
            "policy.unchanged",
            digest.clone(),
            json!({ "role": role, "unchanged": digest }),
        ),
        Ok(ReloadOutcome::Replaced { from, to }) => (
            "policy.loaded",
            format!("{from} -> {to}"),
            json!({ "role": role, "from": from, "to": to }),
        ),
        Err(e) => (
            "policy.rejected",
            e.to_string(),
            json!({ "role": role, "error": e.to_string() }),
        ),
    }
}

fn audit(
    ctx: &Airlock,
    action: &str,
    actor: &str,
    subject: &str,
    detail: Option<String>,
) -> Result<(), Reply> {
    ctx.audit
        .append(AuditEvent::Admin(AdminRecord {
            action: action.into(),
            actor: actor.into(),
            subject: subject.into(),
            detail,
        }))
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(error = %e, action, "audit write failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the audit log is unavailable; nothing was changed",
            )
        })
}

async fn body_bytes(request: Request<Incoming>) -> Result<Bytes, Reply> {
    Limited::new(request.into_body(), 64 << 10)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "admin requests are at most 64 KiB",
            )
        })
}

/// The Prometheus scrape: open, or behind its own bearer token.
fn metrics(ctx: &Airlock, request: &Request<Incoming>) -> Result<Reply, Reply> {
    if let Some(token) = &ctx.metrics_token {
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), token.0.as_bytes())
            .is_err()
        {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the metrics token as `Authorization: Bearer <token>`",
            ));
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.encode())));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(r)
}

/// Serve one control-plane request.
pub async fn handle(ctx: Arc<Airlock>, request: Request<Incoming>) -> Reply {
    match route(&ctx, request).await {
        Ok(r) | Err(r) => r,
    }
}

async fn route(ctx: &Airlock, request: Request<Incoming>) -> Result<Reply, Reply> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Public: health, readiness, keys.
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => return Ok(reply(StatusCode::OK, json!({ "status": "ok" }))),
        (&Method::GET, ["readyz"]) => {
            let roles = ctx.registry.list().len();
            let backend = ctx.store.backend();
            // Not ready while the state store cannot answer: every request
            // would be refused, so a load balancer should look elsewhere.
            return Ok(match ctx.store.ping().await {
                Ok(()) => reply(
                    StatusCode::OK,
                    json!({ "ready": true, "roles": roles, "state": backend }),
                ),
                Err(e) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "ready": false, "roles": roles, "state": backend,
                            "reason": format!("state store unavailable: {e}") }),
                ),
            });
        }
        (&Method::GET, [".well-known", "jwks.json"]) => return Ok(reply(StatusCode::OK, ctx.keys.jwks())),
        (&Method::GET, ["metrics"]) => return metrics(ctx, &request),
        _ => {}
    }
    let who = caller(ctx, &request);
    let introspection = matches!(segments.as_slice(), ["v1", "introspect"] | ["v1", "revoke"]);
    match (who, introspection) {
        (Caller::Admin, _) | (Caller::Introspector, true) => {}
        (Caller::Anonymous, _) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the admin token as `Authorization: Bearer <token>`",
            ));
        }
        (Caller::Introspector, false) => {
            return Err(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the introspection token may only introspect and revoke",
            ));
        }
    }
    let actor = if who == Caller::Admin {
        "admin"
    } else {
        "introspector"
    };
    match (&method, segments.as_slice()) {
        (&Method::POST, ["v1", "sessions"]) => create_session(ctx, request, actor).await,
        (&Method::GET, ["v1", "sessions"]) => {
            let sessions = ctx.store.list_sessions(now_ms()).await.map_err(store_error)?;
            Ok(reply(StatusCode::OK, json!({ "sessions": sessions })))
        }
        (&Method::DELETE, ["v1", "sessions", id]) => {
            let id = percent_decode(id).unwrap_or_default();
            audit(ctx, "session.revoke", actor, &id, None)?;
            match ctx.store.revoke_session(&id).await.map_err(store_error)? {
                true => Ok(reply(StatusCode::OK, json!({ "revoked": id }))),
                false => Err(error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no session {id:?}"),
                )),
            }
        }
        (&Method::POST, ["v1", "introspect"]) => introspect(ctx, request).await,
        (&Method::POST, ["v1", "revoke"]) => revoke(ctx, request, actor).await,
        (&Method::GET, ["v1", "policies"]) => {
            let policies: Vec<Value> = ctx
                .registry
                .list()
                .into_iter()
                .map(|(role, info)| {
                    let candidate = ctx.registry.candidate(&role);
                    json!({ "role": role, "policy": info, "candidate": candidate })
                })
                .collect();
            Ok(reply(StatusCode::OK, json!({ "policies": policies })))
        }
        (&Method::PUT, ["v1", "policies", role, "shadow"]) => {
            candidates::shadow(ctx, request, actor, role).await
        }
        (&Method::DELETE, ["v1", "policies", role, "shadow"]) => candidates::clear(ctx, actor, role),
        (&Method::POST, ["v1", "policies", role, "promote"]) => candidates::promote(ctx, actor, role),
        (&Method::POST, ["v1", "policies", "reload"]) => {
            let results = ctx.registry.reload_all();
            let mut out = Vec::new();
            for (role, result) in results {
                let (action, detail, entry) = reload_outcome(&role, &result);
                audit(ctx, action, actor, &role, Some(detail))?;
                out.push(entry);
            }
            Ok(reply(StatusCode::OK, json!({ "roles": out })))
        }
        (&Method::POST, ["v1", "keys", "rotate"]) => {
            let kid = ctx.keys.rotate().map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "key_rotation_failed",
                    e.to_string(),
                )
            })?;
            audit(ctx, "key.rotate", actor, &kid, None)?;
            Ok(reply(StatusCode::OK, json!({ "kid": kid })))
        }
        (&Method::GET, ["v1", "workflows", id, "state"]) => {
            let id = percent_decode(id).unwrap_or_default();
            let state = ctx.store.workflow_state(&id).await.map_err(store_error)?;
            Ok(reply(StatusCode::OK, json!({ "workflow": id, "state": state })))
        }
        (&Method::PATCH, ["v1", "workflows", id, "state"]) => {
            let id = percent_decode(id).unwrap_or_default();
            exact::set_state(ctx, request, &id, actor).await
        }
        (&Method::DELETE, ["v1", "workflows", id]) => {
            let id = percent_decode(id).unwrap_or_default();
            exact::revoke_workflow(ctx, &id, actor).await
        }
        (&Method::GET, ["v1", "approvals"]) => exact::list_approvals(ctx, request.uri().query()).await,
        (&Method::GET, ["v1", "approvals", id]) => {
            exact::show_approval(ctx, &percent_decode(id).unwrap_or_default()).await
        }
        (&Method::POST, ["v1", "approvals", id, verb @ ("approve" | "deny")]) => {
            let (id, approve) = (percent_decode(id).unwrap_or_default(), *verb == "approve");
            exact::decide(ctx, request, &id, approve, actor).await
        }
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin endpoint {method} {path}"),
        )),
    }
}

fn store_error(e: crate::policy::StateError) -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("state store unavailable: {e}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    agent: String,
    role: String,
    workflow: String,
    #[serde(default)]
    on_behalf_of: Option<String>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    ttl_s: Option<u64>,
}

async fn create_session(ctx: &Airlock, request: Request<Incoming>, actor: &str) -> Result<Reply, Reply> {
    let body = body_bytes(request).await?;
    let req: CreateSession = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("session request: {e}"),
        )
    })?;
    if !ctx.config.roles.contains_key(&req.role) {
        let roles: Vec<&String> = ctx.config.roles.keys().collect();
        return Err(error(
            StatusCode::BAD_REQUEST,
            "unknown_role",
            format!("no role {:?}; configured: {roles:?}", req.role),
        ));
    }
    for (field, value) in [("agent", &req.agent), ("workflow", &req.workflow)] {
        if value.is_empty() || value.len() > 128 {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{field} must be 1..=128 bytes"),
            ));
        }
    }
    let max = ctx.config.admin.max_session_ttl_s;
    let ttl_s = req.ttl_s.unwrap_or(3600);
    if ttl_s == 0 || ttl_s > max {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("ttl_s must be between 1 and {max}"),
        ));
    }
    if ctx
        .store
        .workflow_revoked(&req.workflow)
        .await
        .map_err(store_error)?
    {
        return Err(error(
            StatusCode::CONFLICT,
            "workflow_revoked",
            format!("workflow {:?} was revoked; start a new workflow", req.workflow),
        ));
    }
    let new = NewSession {
        agent: req.agent,
        role: req.role,
        workflow: req.workflow,
        on_behalf_of: req.on_behalf_of,
        intent: req.intent,
        ttl: Duration::from_secs(ttl_s),
    };
    let (session, handle) = ctx
        .store
        .create_session(new, now_ms())
        .await
        .map_err(store_error)?;
    let detail = format!(
        "agent={} role={} workflow={}",
        session.agent, session.role, session.workflow
    );
    if let Err(refused) = audit(ctx, "session.create", actor, &session.id, Some(detail)) {
        // An unaudited session must not be usable.
        let _ = ctx.store.revoke_session(&session.id).await;
        return Err(refused);
    }
    Ok(reply(
        StatusCode::CREATED,
        json!({ "session": session, "handle": handle }),
    ))
}

/// The `token` parameter of an RFC 7662/7009 form body (JSON accepted too).
fn token_param(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v.get("token").and_then(Value::as_str).map(str::to_string);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token")
            .then(|| percent_decode(&v.replace('+', " ")))
            .flatten()
    })
}

/// The claims of a token this issuer signed with a published key; `None`
/// for anything else (malformed, forged, expired).
fn verified_claims(ctx: &Airlock, token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let unverified: Value = serde_json::from_slice(&raw).ok()?;
    let audience = unverified.get("aud")?.as_str()?;
    crate::token::verify(
        token,
        &ctx.keys.jwks(),
        &ctx.config.tokens.issuer,
        audience,
        now_ms() / 1000,
        0,
    )
    .ok()
}

/// The `token` parameter of an RFC 7662/7009 request.
async fn token_of(request: Request<Incoming>) -> Result<String, Reply> {
    let body = body_bytes(request).await?;
    token_param(&body).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing the `token` parameter",
        )
    })
}

async fn introspect(ctx: &Airlock, request: Request<Incoming>) -> Result<Reply, Reply> {
    let token = token_of(request).await?;
    let inactive = || reply(StatusCode::OK, json!({ "active": false }));
    let Some(mut claims) = verified_claims(ctx, &token) else {
        return Ok(inactive());
    };
    let Some(jti) = claims.get("jti").and_then(Value::as_str).map(str::to_string) else {
        return Ok(inactive());
    };
    // A single-use token is consumed by its first introspection.
    match ctx
        .store
        .token_status(&jti, now_ms() / 1000, true)
        .await
        .map_err(store_error)?
    {
        TokenStatus::Active(_) => {
            if let Some(map) = claims.as_object_mut() {
                map.insert("active".into(), json!(true));
                map.insert("token_type".into(), json!("Bearer"));
            }
            Ok(reply(StatusCode::OK, claims))
        }
        TokenStatus::Inactive => Ok(inactive()),
    }
}

async fn revoke(ctx: &Airlock, request: Request<Incoming>, actor: &str) -> Result<Reply, Reply> {
    let token = token_of(request).await?;
    // RFC 7009: the answer is 200 whether or not the token was known.
    if let Some(jti) =
        verified_claims(ctx, &token).and_then(|c| c.get("jti").and_then(Value::as_str).map(str::to_string))
    {
        audit(ctx, "token.revoke", actor, &jti, None)?;
        ctx.store.revoke_token(&jti).await.map_err(store_error)?;
    }
    Ok(reply(StatusCode::OK, json!({})))
}

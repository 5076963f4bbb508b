//! One agent request, start to finish: session → route → structural checks
//! → policy → token → upstream → scrub → audit.
//!
//! Every path out of `handle` writes exactly one decision record. An allow is
//! audited *before* anything is forwarded, so a failing audit log (or state
//! store) denies the request; the upstream outcome follows as its own record.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response};

use tracing::Instrument as _;

use super::approval::{APPROVAL_HEADER, approval_for, escalate, request_hash};
use super::headers::{for_policy, header_name, redact, sanitize_request, scrub_response};
use super::reply::{Refusal, refusal};
use super::route::parse_query;
use super::shadow::ShadowJob;
use super::upstream::Service;
use crate::audit::{AuditEvent, DecisionRecord, OutcomeRecord};
use crate::config::{RoleConfig, ServiceKind};
use crate::policy::{Action, McpCall, Pairs, PolicyRequest, Principal, Verdict};
use crate::server::Airlock;
use crate::state::{
    Begin, Commit, CommitOutcome, RateCheck, Session, SessionLookup, StateError, StateSnapshot, TokenRecord,
};
use crate::token::{MintedToken, TokenRequest, effective_ttl, new_jti, request_binding};

/// How often a decision is re-evaluated when the workflow state it read
/// changed before it could commit (another agent's allow got in between).
const MAX_ATTEMPTS: u32 = 4;

/// A request the proxy will not (or could not) serve.
pub(super) struct Refused {
    pub(super) refusal: Refusal,
    pub(super) reason: String,
    pub(super) retry_after_s: Option<u64>,
    /// Extra fields of the JSON answer (approval id, budget).
    pub(super) extra: Option<serde_json::Map<String, serde_json::Value>>,
}

pub(super) fn refused(refusal: Refusal, reason: impl Into<String>) -> Refused {
    Refused {
        refusal,
        reason: reason.into(),
        retry_after_s: None,
        extra: None,
    }
}

/// The agent's answer when the state store cannot answer: 503, nothing forwarded.
pub(super) fn store_unavailable(e: StateError) -> Refused {
    refused(Refusal::Unavailable, format!("state store unavailable: {e}"))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // aws-lc's RNG does not fail on supported platforms; a zero id would
    // still be unique enough to find the record, never a security property.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// What the proxy answers: a whole body (REST, refusals) or a stream (MCP
/// `text/event-stream` responses, scrubbed event by event).
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Serve one data-plane request.
pub async fn handle(ctx: Arc<Airlock>, request: Request<Incoming>) -> Response<ProxyBody> {
    let (service_name, _) = split_service(request.uri().path());
    if let Some(service) = ctx.services.get(service_name)
        && service.kind == ServiceKind::Mcp
    {
        return super::mcp::handle(ctx.clone(), request).await;
    }
    handle_rest(ctx, request).await.map(BodyExt::boxed)
}

async fn handle_rest(ctx: Arc<Airlock>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let decision_id = random_id("dec");
    let mut record = DecisionRecord {
        decision_id: decision_id.clone(),
        method: request.method().as_str().to_string(),
        path: request.uri().path().to_string(),
        ..DecisionRecord::default()
    };
    let span = tracing::info_span!(
        "request",
        decision = %decision_id,
        method = %record.method,
        role = tracing::field::Empty,
        verdict = tracing::field::Empty,
    );
    let served = serve(&ctx, request, &mut record, started)
        .instrument(span.clone())
        .await;
    span.record("role", record.role.as_str());
    match served {
        Ok(response) => {
            span.record("verdict", "allow");
            ctx.metrics.decision(&record.role, "allow", "ok");
            response
        }
        Err(r) => {
            // What the refused request counted is durable before it is answered.
            let settled = ctx.store.settle().await;
            let audited = span.in_scope(|| audit_refusal(&ctx, record, &r, started));
            span.record("verdict", audited.verdict);
            if let Err(e) = settled {
                tracing::error!(decision = %decision_id, error = %e, "state store failed to settle");
                let r = store_unavailable(e);
                return refusal(r.refusal, &r.reason, &decision_id, None, None);
            }
            if !audited.written {
                return refusal(
                    Refusal::Unavailable,
                    "the audit log is unavailable",
                    &decision_id,
                    None,
                    None,
                );
            }
            refusal(
                r.refusal,
                &r.reason,
                &decision_id,
                r.retry_after_s,
                r.extra.as_ref(),
            )
        }
    }
}

/// What [`audit_refusal`] wrote.
pub(super) struct Audited {
    pub(super) verdict: &'static str,
    /// False when the audit log failed: the agent is told `unavailable`.
    pub(super) written: bool,
}

/// Audit a request that ends refused (and count it): its decision record,
/// or, for an allowed request that failed upstream (audited before it was
/// forwarded), an outcome record of its own.
pub(super) fn audit_refusal(
    ctx: &Airlock,
    mut record: DecisionRecord,
    r: &Refused,
    started: Instant,
) -> Audited {
    let verdict = match r.refusal {
        Refusal::Escalated => "escalate",
        _ if record.verdict == "allow" => "allow",
        _ => "deny",
    };
    record.verdict = verdict.to_string();
    record.error = Some(r.refusal.code().to_string());
    record.reason = Some(r.reason.clone());
    record.latency_micros = started.elapsed().as_micros() as u64;
    let (role, decision_id) = (record.role.clone(), record.decision_id.clone());
    let event = if record.token_jti.is_some() {
        AuditEvent::Outcome(OutcomeRecord {
            decision_id: record.decision_id.clone(),
            upstream_status: None,
            bytes: None,
            error: Some(r.refusal.code().to_string()),
            latency_micros: record.latency_micros,
        })
    } else {
        AuditEvent::Decision(record)
    };
    let appended = tracing::info_span!("audit").in_scope(|| ctx.audit.append(event));
    if let Err(e) = appended {
        tracing::error!(decision = %decision_id, error = %e, "audit write failed");
        ctx.metrics.decision(&role, verdict, Refusal::Unavailable.code());
        return Audited {
            verdict,
            written: false,
        };
    }
    ctx.metrics.decision(&role, verdict, r.refusal.code());
    Audited {
        verdict,
        written: true,
    }
}

pub(super) fn session_handle(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("proxy-authorization")?.to_str().ok()?;
    let (scheme, handle) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| handle.trim())
}

/// A session that may act, with what `begin` read for its first decision.
pub(super) struct Admitted {
    pub(super) session: Session,
    pub(super) begun: Begun,
}

/// What one `Store::begin` read for one decision: the rate window (this
/// request counted), the workflow state snapshot and a presented approval.
pub(super) struct Begun {
    pub(super) rate: RateCheck,
    pub(super) state: StateSnapshot,
    pub(super) approval_id: Option<String>,
    pub(super) approval: Option<crate::state::Approval>,
}

/// The approval id an agent presents in `X-Airlock-Approval`, if any.
pub(super) fn presented_approval(headers: &HeaderMap) -> Result<Option<String>, Refused> {
    match headers.get(APPROVAL_HEADER) {
        None => Ok(None),
        Some(value) => Ok(Some(
            value
                .to_str()
                .map_err(|_| refused(Refusal::ApprovalInvalid, "the approval id is not text"))?
                .trim()
                .to_string(),
        )),
    }
}

/// The session, from the handle only; in the same store operation the
/// request is counted against the rate window, the workflow state the
/// policy will read is snapshotted and a presented approval fetched.
pub(super) async fn admit(
    ctx: &Airlock,
    headers: &HeaderMap,
    approval_id: Option<String>,
    record: &mut DecisionRecord,
    now: u64,
) -> Result<Admitted, Refused> {
    let handle = session_handle(headers).ok_or_else(|| {
        refused(
            Refusal::Unauthenticated,
            "send your session handle as `Proxy-Authorization: Bearer <handle>`",
        )
    })?;
    record.approval_id = approval_id.clone();
    let (session, begun) = begin(ctx, handle, approval_id, now).await?;
    match session {
        SessionLookup::Active(s) => {
            fill_principal(record, &s);
            Ok(Admitted { session: s, begun })
        }
        SessionLookup::Expired(s) => {
            fill_principal(record, &s);
            Err(refused(
                Refusal::SessionExpired,
                "the session has expired; ask the orchestrator for a new one",
            ))
        }
        SessionLookup::Revoked(s) => {
            fill_principal(record, &s);
            Err(refused(Refusal::SessionRevoked, "the session was revoked"))
        }
        SessionLookup::Unknown => Err(refused(Refusal::Unauthenticated, "unknown session handle")),
    }
}

/// One `Store::begin` for one more decision of a session already admitted
/// (each message of an MCP batch is a decision of its own).
pub(super) async fn begin_again(
    ctx: &Airlock,
    headers: &HeaderMap,
    approval_id: Option<String>,
    now: u64,
) -> Result<Begun, Refused> {
    let handle = session_handle(headers)
        .ok_or_else(|| refused(Refusal::Unauthenticated, "the session handle went missing"))?;
    match begin(ctx, handle, approval_id, now).await? {
        (SessionLookup::Active(_), begun) => Ok(begun),
        _ => Err(refused(
            Refusal::SessionRevoked,
            "the session ended while its batch was decided",
        )),
    }
}

async fn begin(
    ctx: &Airlock,
    handle: &str,
    approval_id: Option<String>,
    now: u64,
) -> Result<(SessionLookup, Begun), Refused> {
    let started = ctx
        .store
        .begin(&Begin {
            handle,
            approval: approval_id.as_deref(),
            rate_limits: &ctx.rate_limits,
            now_ms: now,
        })
        .instrument(tracing::info_span!("session"))
        .await
        .map_err(store_unavailable)?;
    let rate = match (&started.lookup, started.rate) {
        (_, Some(rate)) => rate,
        (SessionLookup::Active(_), None) => {
            return Err(refused(
                Refusal::Unavailable,
                "state store unavailable: no rate answer for an active session",
            ));
        }
        (_, None) => RateCheck {
            allowed: false,
            usage: Default::default(),
            retry_after: None,
        },
    };
    Ok((
        started.lookup,
        Begun {
            rate,
            state: started.state,
            approval_id,
            approval: started.approval,
        },
    ))
}

/// The role of an admitted session, if it may use `service_name`.
pub(super) fn role_for<'a>(
    ctx: &'a Airlock,
    session: &Session,
    service_name: &str,
) -> Result<&'a RoleConfig, Refused> {
    let role = ctx.config.roles.get(&session.role).ok_or_else(|| {
        refused(
            Refusal::Denied,
            format!("role {:?} is not configured", session.role),
        )
    })?;
    if !role.services.iter().any(|s| s == service_name) {
        return Err(refused(
            Refusal::Denied,
            format!(
                "role {} may not use service {service_name}; it may use: {}",
                session.role,
                role.services.join(", ")
            ),
        ));
    }
    Ok(role)
}

/// Read a request body within the role's limit.
pub(super) async fn read_body(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Refused> {
    let too_large = || {
        refused(
            Refusal::BodyTooLarge,
            format!("body over the role's {limit}-byte limit"),
        )
    };
    if let Some(len) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    Ok(Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes())
}

/// One action, as the transport (REST or MCP) parsed it, ready to decide.
pub(super) struct Proposed<'a> {
    pub(super) service_name: &'a str,
    pub(super) operation: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) method: String,
    /// Below the service prefix.
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    /// Already sanitised: no identity headers.
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a [u8],
    pub(super) mcp: Option<McpCall>,
    /// What the token and an approval are bound to.
    pub(super) binding: String,
}

/// An allowed, committed, minted and audited decision, ready to forward.
pub(super) struct Allowed {
    pub(super) token: MintedToken,
    /// The response cap: the smaller of the grant's and the role's.
    pub(super) cap: usize,
}

/// Steps 3 to 6, shared by every transport: budgets, the approval, the
/// policy, the commit of state, budget and approval, the token, and the
/// decision record, written before anything is forwarded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn decide(
    ctx: &Airlock,
    session: &Session,
    role: &RoleConfig,
    begun: Begun,
    action: Proposed<'_>,
    record: &mut DecisionRecord,
    started: Instant,
    now: u64,
) -> Result<Allowed, Refused> {
    let limits = &role.limits;
    let rate = begun.rate;
    if !rate.allowed {
        let retry = rate.retry_after.map(|d| d.as_secs().max(1)).unwrap_or(60);
        return Err(Refused {
            refusal: Refusal::RateLimited,
            reason: format!(
                "budget requests_per_minute: {} requests per minute for role {}; it refills in {retry} s",
                limits.requests_per_minute, session.role
            ),
            retry_after_s: Some(retry),
            extra: budget_fields("requests_per_minute", limits.requests_per_minute, Some(retry)),
        });
    }
    let service_name = action.service_name;
    let operation = action.operation.clone();

    // A human approval the agent presents must be for exactly this request.
    let approval = match &begun.approval_id {
        None => None,
        Some(id) => {
            let hash = request_hash(session, service_name, &action.binding);
            Some(approval_for(begun.approval.as_ref(), id, session, &hash, now)?)
        }
    };

    // The policy, on what the agent sent minus its identity headers.
    let policy_body_len = action.body.len().min(limits.policy_body_bytes.0);
    let policy_request = Arc::new(PolicyRequest {
        principal: Principal {
            agent: session.agent.clone(),
            role: session.role.clone(),
            session: session.id.clone(),
            workflow: session.workflow.clone(),
            on_behalf_of: session.on_behalf_of.clone(),
            intent: session.intent.clone(),
        },
        action: Action {
            service: service_name.to_string(),
            operation: Some(operation.clone()),
            params: Pairs(action.params),
            method: action.method.clone(),
            path: action.path.clone(),
            query: Pairs(action.query),
            headers: Pairs(for_policy(action.headers)),
            body: action.body[..policy_body_len].to_vec(),
            body_truncated: policy_body_len < action.body.len(),
            mcp: action.mcp,
        },
        usage: rate.usage.clone(),
        approval,
    });
    let policy = ctx.registry.get(&session.role).ok_or_else(|| {
        refused(
            Refusal::Denied,
            format!("no policy is loaded for role {}", session.role),
        )
    })?;
    let info = policy.module.info();
    record.policy_name = Some(info.name.clone());
    record.policy_digest = Some(info.digest.clone());
    // Decide and commit state, budget and approval together; a decision
    // whose reads went stale before it could commit is taken again.
    let mut attempt = 0;
    let mut state = begun.state;
    let (grant, ttl, token_record) = loop {
        attempt += 1;
        let evaluation = policy
            .module
            .clone()
            .evaluate_async(
                policy_request.clone(),
                Arc::new(state.clone()),
                policy.binding.limits,
            )
            .instrument(tracing::info_span!("policy", attempt))
            .await;
        ctx.metrics
            .evaluation(&session.role, evaluation.elapsed, evaluation.fuel_used);
        record.fuel = Some(evaluation.fuel_used);
        record.eval_micros = Some(evaluation.elapsed.as_micros() as u64);
        if let Some(capture) = ctx.capture.as_ref().filter(|_| role.capture_inputs) {
            let captured = capture.append(
                &record.decision_id,
                &info.digest,
                &policy_request,
                state.values(),
                &evaluation.verdict,
            );
            if let Err(e) = captured {
                tracing::error!(decision = %record.decision_id, error = %e, "capturing the decision's inputs failed");
            }
        }
        if let Some(candidate) = policy.shadow.as_ref().filter(|_| attempt == 1) {
            let job = ShadowJob {
                candidate: candidate.clone(),
                decision_id: record.decision_id.clone(),
                enforced_digest: info.digest.clone(),
                enforced: evaluation.verdict.clone(),
                request: policy_request.clone(),
                state: Arc::new(state.clone()),
                limits: policy.binding.limits,
            };
            ctx.shadows.spawn(job, ctx.audit.clone(), ctx.metrics.clone());
        }
        for log in &evaluation.logs {
            tracing::info!(policy = %info.name, decision = %record.decision_id, level = ?log.level, fields = ?log.fields, "{}", log.message);
        }
        let grant = match evaluation.verdict {
            Verdict::Allow(grant) => grant,
            Verdict::Deny(reason) => return Err(refused(Refusal::Denied, reason)),
            Verdict::Escalate(reason) => {
                return Err(escalate(
                    ctx,
                    session,
                    &operation,
                    &action.method,
                    &action.path,
                    request_hash(session, service_name, &action.binding),
                    reason,
                    record,
                    now,
                )
                .await);
            }
        };
        let ttl = effective_ttl(grant.ttl_seconds, limits.max_token_ttl_s, session.remaining(now));
        if ttl.is_zero() {
            return Err(refused(
                Refusal::Denied,
                "the session's remaining life is too short for a token",
            ));
        }
        // The token is recorded in the same commit, so its id is drawn now
        // and it is signed only once the commit went through.
        let jti = new_jti()
            .map_err(|e| refused(Refusal::Unavailable, format!("token service unavailable: {e}")))?;
        let issued_at = now / 1000;
        let token_record = TokenRecord {
            jti,
            session: session.id.clone(),
            workflow: session.workflow.clone(),
            agent: session.agent.clone(),
            audience: service_name.to_string(),
            scope: grant.scopes.join(" "),
            issued_at,
            expires_at: issued_at.saturating_add(ttl.as_secs()),
            single_use: grant.single_use,
            request_binding: action.binding.clone(),
        };
        let outcome = ctx
            .store
            .commit_allow(&Commit {
                workflow: &session.workflow,
                session_id: &session.id,
                operation: &operation,
                reads: &evaluation.state_reads,
                writes: &evaluation.state_writes,
                max_grants: role.grants_per_session.get(&operation).copied(),
                approval: policy_request.approval.as_ref().map(|a| a.id.as_str()),
                token: Some(&token_record),
                now_ms: now,
            })
            .instrument(tracing::info_span!("commit"))
            .await
            .map_err(store_unavailable)?;
        match outcome {
            CommitOutcome::Committed => break (grant, ttl, token_record),
            CommitOutcome::StateChanged(fresh) if attempt < MAX_ATTEMPTS => {
                state = fresh;
                continue;
            }
            CommitOutcome::StateChanged(_) => {
                return Err(refused(
                    Refusal::Conflict,
                    "the workflow state kept changing while deciding; retry the request",
                ));
            }
            CommitOutcome::BudgetExhausted { limit } => {
                let name = format!("grants_per_session.{operation}");
                let mut r = refused(
                    Refusal::BudgetExhausted,
                    format!(
                        "budget {name}: role {} may be granted {operation} at most {limit} time(s) per session; \
                         it does not refill (a new session starts a new budget)",
                        session.role
                    ),
                );
                r.extra = budget_fields(&name, limit, None);
                return Err(r);
            }
            CommitOutcome::ApprovalUnusable(reason) => {
                return Err(refused(Refusal::ApprovalInvalid, reason));
            }
        }
    };

    let token = tracing::info_span!("mint")
        .in_scope(|| {
            mint(
                ctx,
                session,
                service_name,
                &grant.scopes,
                grant.single_use,
                &grant.claims,
                &info.digest,
                &token_record,
                ttl,
            )
        })
        .map_err(|e| refused(Refusal::Unavailable, format!("token service unavailable: {e}")))?;
    ctx.metrics.token_minted(service_name);
    record.verdict = "allow".into();
    record.token_jti = Some(token.jti.clone());
    record.token_scope = Some(grant.scopes.join(" "));
    record.token_ttl_s = Some(ttl.as_secs());
    record.latency_micros = started.elapsed().as_micros() as u64;
    // Audited before forwarding: if the log cannot be written, nothing goes out.
    tracing::info_span!("audit")
        .in_scope(|| ctx.audit.append(AuditEvent::Decision(record.clone())))
        .map_err(|e| {
            tracing::error!(decision = %record.decision_id, error = %e, "audit write failed");
            record.token_jti = None;
            refused(Refusal::Unavailable, "the audit log is unavailable")
        })?;
    let cap = grant.max_response_bytes.map_or(limits.max_response_bytes.0, |g| {
        (g as usize).min(limits.max_response_bytes.0)
    });
    Ok(Allowed { token, cap })
}

/// The secrets a response must not carry: the minted token and the
/// service's proxy-held secret.
pub(super) fn secrets_of<'a>(service: &'a Service, token: &'a MintedToken) -> Vec<&'a [u8]> {
    let mut secrets: Vec<&[u8]> = vec![token.token.as_bytes()];
    if let Some(secret) = &service.secret {
        secrets.push(secret.0.as_bytes());
    }
    secrets
}

/// The outcome record of an allowed request, after its response.
pub(super) fn audit_outcome(
    ctx: &Airlock,
    decision_id: &str,
    status: Option<u16>,
    bytes: u64,
    error: Option<String>,
    started: Instant,
) -> Result<(), Refused> {
    let _audit = tracing::info_span!("audit").entered();
    ctx.audit
        .append(AuditEvent::Outcome(OutcomeRecord {
            decision_id: decision_id.to_string(),
            upstream_status: status,
            bytes: Some(bytes),
            error,
            latency_micros: started.elapsed().as_micros() as u64,
        }))
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(decision = %decision_id, error = %e, "audit write failed");
            refused(Refusal::Unavailable, "the audit log is unavailable")
        })
}

async fn serve(
    ctx: &Airlock,
    request: Request<Incoming>,
    record: &mut DecisionRecord,
    started: Instant,
) -> Result<Response<Full<Bytes>>, Refused> {
    let now = now_ms();
    // 1. The session.
    let approval_id = presented_approval(request.headers())?;
    let Admitted { session, begun } = admit(ctx, request.headers(), approval_id, record, now).await?;

    // 2. Route: /{service}/{rest}.
    let full_path = request.uri().path().to_string();
    let (service_name, rest) = split_service(&full_path);
    record.service = service_name.to_string();
    record.path = rest.to_string();
    let service = ctx.services.get(service_name).ok_or_else(|| {
        refused(
            Refusal::UnknownService,
            format!("no service named {service_name:?}"),
        )
    })?;
    // 3. Structural checks of the role, before any policy runs.
    let role = role_for(ctx, &session, service_name)?;
    let method = request.method().as_str().to_string();
    let route = service.routes.find(&method, rest).ok_or_else(|| {
        refused(
            Refusal::UnknownRoute,
            format!("{method} {rest} matches no route of service {service_name}"),
        )
    })?;
    record.operation = Some(route.operation.clone());
    let raw_query = request.uri().query().unwrap_or("").to_string();
    let query =
        parse_query(&raw_query).ok_or_else(|| refused(Refusal::BadRequest, "malformed query string"))?;
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body, role.limits.max_body_bytes.0).await?;

    // 4-6. Budgets, approval, policy, commit, token, decision record.
    let headers = sanitize_request(&parts.headers);
    let binding = request_binding(&method, rest, &query, &body);
    let allowed = decide(
        ctx,
        &session,
        role,
        begun,
        Proposed {
            service_name,
            operation: route.operation.clone(),
            params: route.params.clone(),
            method: method.clone(),
            path: rest.to_string(),
            query,
            headers: &headers,
            body: &body,
            mcp: None,
            binding,
        },
        record,
        started,
        now,
    )
    .await?;
    let token = allowed.token;

    // 7. Forward, with the credential only the proxy holds.
    let upstream_started = Instant::now();
    let forwarded = forward(
        service,
        &method,
        rest,
        &raw_query,
        headers,
        body,
        &token,
        allowed.cap,
    )
    .instrument(tracing::info_span!("upstream", service = service_name))
    .await;
    ctx.metrics.upstream(
        service_name,
        forwarded.as_ref().ok().map(|(status, _, _)| status.as_u16()),
        upstream_started.elapsed(),
    );
    let (status, upstream_headers, upstream_body) = forwarded?;

    // 8. Scrub: no credential, cookie, token or secret reaches the agent.
    let secrets = secrets_of(service, &token);
    let out_headers = scrub_response(&upstream_headers, &secrets);
    let out_body = redact(&upstream_body, &secrets);

    // 9. The outcome, then the response.
    audit_outcome(
        ctx,
        &record.decision_id,
        Some(status.as_u16()),
        out_body.len() as u64,
        None,
        started,
    )?;
    let mut response = Response::new(Full::new(Bytes::from(out_body)));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    if let Ok(v) = HeaderValue::from_str(&record.decision_id) {
        response.headers_mut().insert("x-airlock-decision", v);
    }
    Ok(response)
}

/// `{"budget": {"name", "limit", "refills_in_s"}}`: which budget refused, and
/// when it has room again (`null`: not within this session).
fn budget_fields(
    name: &str,
    limit: u32,
    refills_in_s: Option<u64>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut m = serde_json::Map::new();
    m.insert(
        "budget".into(),
        serde_json::json!({ "name": name, "limit": limit, "refills_in_s": refills_in_s }),
    );
    Some(m)
}

pub(super) fn fill_principal(record: &mut DecisionRecord, s: &Session) {
    record.session = s.id.clone();
    record.agent = s.agent.clone();
    record.role = s.role.clone();
    record.workflow = s.workflow.clone();
    record.on_behalf_of = s.on_behalf_of.clone();
}

/// `/code/repos/x` → (`code`, `/repos/x`).
pub(super) fn split_service(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, "/"),
    }
}

#[allow(clippy::too_many_arguments)]
fn mint(
    ctx: &Airlock,
    session: &Session,
    audience: &str,
    scopes: &[String],
    single_use: bool,
    claims: &std::collections::BTreeMap<String, serde_json::Value>,
    policy_digest: &str,
    record: &TokenRecord,
    ttl: Duration,
) -> Result<MintedToken, crate::token::TokenError> {
    ctx.keys.mint(&TokenRequest {
        issuer: &ctx.config.tokens.issuer,
        agent: &session.agent,
        audience,
        scopes,
        role: &session.role,
        session: &session.id,
        workflow: &session.workflow,
        on_behalf_of: session.on_behalf_of.as_deref(),
        policy_digest,
        request_binding: &record.request_binding,
        single_use,
        jti: Some(&record.jti),
        extra_claims: claims,
        now: record.issued_at,
        ttl,
    })
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    service: &Service,
    method: &str,
    path: &str,
    raw_query: &str,
    mut headers: HeaderMap,
    body: Bytes,
    token: &MintedToken,
    cap: usize,
) -> Result<(hyper::StatusCode, HeaderMap, Bytes), Refused> {
    let uri = if raw_query.is_empty() {
        format!("{}{path}", service.upstream)
    } else {
        format!("{}{path}?{raw_query}", service.upstream)
    };
    if service.injects_jwt()
        && let (Some(name), Ok(value)) = (
            header_name(&service.auth.jwt_header),
            HeaderValue::from_str(&format!("Bearer {}", token.token)),
        )
    {
        headers.insert(name, value);
    }
    if let (Some(secret), Some(name)) = (
        &service.secret,
        service.auth.secret_header.as_deref().and_then(header_name),
    ) && let Ok(mut value) = HeaderValue::from_str(&format!("{}{}", service.auth.secret_prefix, secret.0))
    {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut builder = Request::builder().method(method).uri(&uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let upstream_request = builder
        .body(Full::new(body))
        .map_err(|e| refused(Refusal::BadRequest, format!("cannot forward this request: {e}")))?;
    let exchange = async {
        let response = service.client.request(upstream_request).await.map_err(|e| {
            refused(
                Refusal::UpstreamUnavailable,
                format!("service {} is unreachable: {}", service.name, root_cause(&e)),
            )
        })?;
        let (parts, body) = response.into_parts();
        // Never hold more than the cap of a hostile or runaway upstream.
        let bytes = Limited::new(body, cap)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    refused(
                        Refusal::ResponseTooLarge,
                        format!("the upstream response is over the {cap}-byte cap"),
                    )
                } else {
                    refused(
                        Refusal::UpstreamUnavailable,
                        format!("reading the response failed: {e}"),
                    )
                }
            })?
            .to_bytes();
        Ok::<_, Refused>((parts.status, parts.headers, bytes))
    };
    tokio::time::timeout(service.timeout, exchange)
        .await
        .map_err(|_| {
            refused(
                Refusal::UpstreamTimeout,
                format!(
                    "service {} did not answer within {:?}",
                    service.name, service.timeout
                ),
            )
        })?
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::split_service;

    #[test]
    fn service_prefix() {
        assert_eq!(split_service("/code/repos/a"), ("code", "/repos/a"));
        assert_eq!(split_service("/code"), ("code", "/"));
        assert_eq!(split_service("/"), ("", "/"));
    }
}

//! What the agent gets back when Airlock refuses: JSON it can act on.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;

/// Why a request was not forwarded (or its response not returned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    SessionExpired,
    SessionRevoked,
    UnknownService,
    UnknownRoute,
    Denied,
    Escalated,
    /// The request named an approval that does not fit it or cannot be used.
    ApprovalInvalid,
    /// A budget of the role (grants per session) is used up.
    BudgetExhausted,
    RateLimited,
    /// The workflow state kept changing while deciding; retry.
    Conflict,
    BodyTooLarge,
    BadRequest,
    UpstreamUnavailable,
    UpstreamTimeout,
    ResponseTooLarge,
    /// The audit log or state store failed: nothing was forwarded.
    Unavailable,
    /// An HTTP method the endpoint does not serve (MCP: GET and DELETE).
    MethodNotAllowed,
    /// An `Mcp-Session-Id` that is not (or no longer) this session's.
    McpSessionUnknown,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::SessionExpired => "session_expired",
            Refusal::SessionRevoked => "session_revoked",
            Refusal::UnknownService => "unknown_service",
            Refusal::UnknownRoute => "unknown_route",
            Refusal::Denied => "denied",
            Refusal::Escalated => "escalated",
            Refusal::ApprovalInvalid => "approval_invalid",
            Refusal::BudgetExhausted => "budget_exhausted",
            Refusal::RateLimited => "rate_limited",
            Refusal::Conflict => "conflict",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::BadRequest => "bad_request",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::ResponseTooLarge => "response_too_large",
            Refusal::Unavailable => "unavailable",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::McpSessionUnknown => "mcp_session_unknown",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthenticated | Refusal::SessionExpired | Refusal::SessionRevoked => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::UnknownService | Refusal::UnknownRoute | Refusal::McpSessionUnknown => {
                StatusCode::NOT_FOUND
            }
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::Denied | Refusal::Escalated | Refusal::ApprovalInvalid | Refusal::BudgetExhausted => {
                StatusCode::FORBIDDEN
            }
            Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Conflict => StatusCode::CONFLICT,
            Refusal::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::UpstreamUnavailable | Refusal::ResponseTooLarge => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `{"error", "reason", "decision_id", "retry_after_s"?, ...extra}` with the
/// fitting status. `extra` adds what the agent needs to act: the approval id
/// of an escalation, the budget that ran out.
pub fn refusal(
    refusal: Refusal,
    reason: &str,
    decision_id: &str,
    retry_after_s: Option<u64>,
    extra: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Response<Full<Bytes>> {
    let mut body = json!({ "error": refusal.code(), "reason": reason, "decision_id": decision_id });
    if let Some(s) = retry_after_s {
        body["retry_after_s"] = json!(s);
    }
    for (k, v) in extra.into_iter().flatten() {
        body[k] = v.clone();
    }
    let mut builder = Response::builder()
        .status(refusal.status())
        .header("content-type", "application/json")
        .header("x-airlock-decision", decision_id);
    if let Some(s) = retry_after_s {
        builder = builder.header("retry-after", s);
    }
    if refusal.status() == StatusCode::UNAUTHORIZED {
        builder = builder.header("proxy-authenticate", "Bearer realm=\"airlock\"");
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"unavailable\"}")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

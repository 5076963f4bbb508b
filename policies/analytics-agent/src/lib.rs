//! `analytics-agent`: reads dashboards and runs metric queries, nothing else.
//!
//! From the role definition: services `[analytics-dashboard]` (the host
//! exposes it as the `analytics` service), actions `[read, query]`, responses
//! capped at 200 KB, at most 20 requests a minute.
//!
//! A query is a POST, so "read-only" cannot be decided by method alone: the
//! one write-shaped operation this role may use is `metrics.query`, and every
//! other non-read is denied.

use airlock_sdk::prelude::*;

const SERVICE: &str = "analytics";
const QUERY_OPERATION: &str = "metrics.query";
const MAX_RESPONSE_BYTES: u64 = 200 * 1024;
const MAX_REQUESTS_PER_MINUTE: u64 = 20;
const TTL_SECONDS: u32 = 300;

pub struct AnalyticsAgent;

impl Policy for AnalyticsAgent {
    fn describe() -> Description {
        Description::new("analytics-agent", env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let action = &request.action;
        if action.service != SERVICE {
            return Verdict::deny(format!(
                "analytics-agent may only use the {SERVICE} service, not {}",
                action.service
            ));
        }
        // Checked before anything else so that a denied request still tells
        // the agent to slow down rather than something less useful.
        if let Some(reason) = over_rate_limit(&request.usage) {
            return Verdict::deny(reason);
        }
        if action.is_read() {
            return Verdict::allow(grant("analytics:read"));
        }
        if action.method == "POST" && action.op() == QUERY_OPERATION {
            // The query itself is read-only, but its body is what the
            // upstream runs: refuse one we cannot read whole.
            return match action.json() {
                Ok(query) if query.is_object() => Verdict::allow(grant("analytics:query")),
                Ok(_) => Verdict::deny(format!(
                    "analytics-agent: {QUERY_OPERATION} needs a JSON object body"
                )),
                Err(e) => Verdict::deny(format!("analytics-agent: {QUERY_OPERATION}: {e}")),
            };
        }
        Verdict::deny(format!(
            "analytics-agent is read-only: {} {} (operation {}) is not allowed; \
             only reads and {QUERY_OPERATION} are",
            action.method,
            action.path,
            if action.op().is_empty() {
                "none"
            } else {
                action.op()
            },
        ))
    }
}

fn grant(scope: &str) -> Grant {
    Grant::new(TTL_SECONDS)
        .scope(scope)
        .max_response_bytes(MAX_RESPONSE_BYTES)
}

/// The role allows 20 requests a minute. The host counts the session's
/// requests in a window of `window_seconds` (before this one), so the budget
/// is scaled to that window; a request that reports no window is measured
/// against a minute.
fn over_rate_limit(usage: &Usage) -> Option<String> {
    let window = match usage.window_seconds {
        0 => 60,
        seconds => u64::from(seconds),
    };
    let budget = (MAX_REQUESTS_PER_MINUTE * window / 60).max(1);
    let used = u64::from(usage.requests_in_window);
    (used >= budget).then(|| {
        format!(
            "analytics-agent: rate limit of {MAX_REQUESTS_PER_MINUTE} requests per minute \
             reached ({used} in the last {window}s); retry later"
        )
    })
}

export_policy!(AnalyticsAgent);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing::Harness;

    fn query(body: &str) -> Request {
        Request::builder(SERVICE, "POST", "/query")
            .operation(QUERY_OPERATION)
            .body(body)
            .build()
    }

    fn used(requests_in_window: u32, window_seconds: u32) -> Usage {
        Usage {
            requests_in_window,
            window_seconds,
            ..Usage::default()
        }
    }

    #[test]
    fn reads_dashboards() {
        let mut h = Harness::<AnalyticsAgent>::new();
        for method in ["GET", "HEAD"] {
            let grant = h.expect_allow(
                &Request::builder(SERVICE, method, "/dashboards/42")
                    .operation("dashboards.read")
                    .build(),
            );
            assert_eq!(grant.scopes, ["analytics:read"]);
            assert_eq!(grant.ttl_seconds, 300);
            assert_eq!(grant.max_response_bytes, Some(200 * 1024));
            assert!(!grant.single_use);
        }
    }

    #[test]
    fn runs_metric_queries() {
        let mut h = Harness::<AnalyticsAgent>::new();
        let grant = h.expect_allow(&query(
            r#"{"metric": "signups", "range": "7d", "group_by": ["country"]}"#,
        ));
        assert_eq!(grant.scopes, ["analytics:query"]);
        assert_eq!(grant.ttl_seconds, 300);
        assert_eq!(grant.max_response_bytes, Some(200 * 1024));
    }

    #[test]
    fn query_body_must_be_a_whole_json_object() {
        let mut h = Harness::<AnalyticsAgent>::new();
        let reason = h.expect_deny(&query("metric=signups"));
        assert!(
            reason.contains("metrics.query: body is not valid JSON"),
            "{reason}"
        );
        let reason = h.expect_deny(&query(r#"["signups"]"#));
        assert!(reason.contains("needs a JSON object body"), "{reason}");
        let truncated = Request::builder(SERVICE, "POST", "/query")
            .operation(QUERY_OPERATION)
            .body(r#"{"metric": "sig"#)
            .truncated()
            .build();
        let reason = h.expect_deny(&truncated);
        assert!(reason.contains("truncated"), "{reason}");
    }

    #[test]
    fn every_other_write_is_denied() {
        let mut h = Harness::<AnalyticsAgent>::new();
        for (method, path, op) in [
            ("POST", "/dashboards", "dashboards.create"),
            ("PUT", "/dashboards/42", "dashboards.update"),
            ("DELETE", "/dashboards/42", "dashboards.delete"),
            // The query operation only counts as a query when POSTed.
            ("PUT", "/query", QUERY_OPERATION),
        ] {
            let reason = h.expect_deny(
                &Request::builder(SERVICE, method, path)
                    .operation(op)
                    .body("{}")
                    .build(),
            );
            assert!(reason.contains("analytics-agent is read-only"), "{reason}");
            assert!(reason.contains(op), "{reason}");
        }
    }

    #[test]
    fn no_other_service() {
        let mut h = Harness::<AnalyticsAgent>::new();
        let reason = h.expect_deny(&Request::builder("code", "GET", "/repos/acme/api").build());
        assert!(reason.contains("only use the analytics service"), "{reason}");
    }

    #[test]
    fn twenty_requests_a_minute() {
        let mut h = Harness::<AnalyticsAgent>::new();
        let read = |usage| {
            Request::builder(SERVICE, "GET", "/dashboards/42")
                .usage(usage)
                .build()
        };
        // The 20th request of the minute (19 before it) is fine...
        h.expect_allow(&read(used(19, 60)));
        // ...the 21st is not, whatever it is.
        let reason = h.expect_deny(&read(used(20, 60)));
        assert!(
            reason.contains("rate limit of 20 requests per minute"),
            "{reason}"
        );
        let reason = h.expect_deny(&Request {
            usage: used(20, 60),
            ..query(r#"{"metric": "signups"}"#)
        });
        assert!(reason.contains("rate limit"), "{reason}");
        // A 30-second window gets half the budget.
        h.expect_allow(&read(used(9, 30)));
        h.expect_deny(&read(used(10, 30)));
        // No window reported: measured against a minute.
        h.expect_allow(&read(used(19, 0)));
        h.expect_deny(&read(used(20, 0)));
    }
}

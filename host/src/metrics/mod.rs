//! What operators watch: Prometheus metrics of every stage of a request,
//! served as OpenMetrics text on the admin listener's `/metrics`.
//!
//! [`Metrics`] is a handle the parts record into (the proxy its decisions,
//! evaluations, upstream calls and tokens; the state store, the audit log
//! and the policy registry their own operations). Labels are bounded sets:
//! roles, services, verdicts, refusal codes, store operations. Never a
//! session, handle, token, path or anything an agent chooses.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[cfg(test)]
mod tests;

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    role: String,
    verdict: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    service: String,
    /// The HTTP status, or `error` when no response came.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    role: String,
    /// `agree`, `disagree`, or `skipped` (too many candidates in flight).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 10 µs to ~20 s, doubling: store calls, evaluations, upstream calls.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 2.0, 22))
}

/// 1 000 to ~1e9 units of fuel, doubling.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1000.0, 2.0, 21))
}

/// Every metric Airlock exports. Cheap to share (`Arc<Metrics>`); recording
/// takes no lock beyond the families' own.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    eval_seconds: Histograms<RoleLabel>,
    eval_fuel: Histograms<RoleLabel>,
    upstream_responses: Family<UpstreamLabels, Counter>,
    upstream_seconds: Histograms<ServiceLabel>,
    tokens_minted: Family<ServiceLabel, Counter>,
    reloads: Family<ResultLabel, Counter>,
    shadow_decisions: Family<ShadowLabels, Counter>,
    state_seconds: Histograms<OpLabel>,
    state_errors: Family<OpLabel, Counter>,
    state_up: Gauge,
    audit_seconds: Histogram,
    audit_errors: Counter,
    audit_group_records: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of one Airlock whose state store is `backend`.
    pub fn new(backend: &str) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            decisions: Family::default(),
            eval_seconds: Family::new_with_constructor(latency_histogram),
            eval_fuel: Family::new_with_constructor(fuel_histogram),
            upstream_responses: Family::default(),
            upstream_seconds: Family::new_with_constructor(latency_histogram),
            tokens_minted: Family::default(),
            reloads: Family::default(),
            shadow_decisions: Family::default(),
            state_seconds: Family::new_with_constructor(latency_histogram),
            state_errors: Family::default(),
            state_up: Gauge::default(),
            audit_seconds: latency_histogram(),
            audit_errors: Counter::default(),
            audit_group_records: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            registry: Registry::default(),
        };
        registry.register(
            "airlock_decisions",
            "Data-plane requests by role, verdict and the code the agent got (ok when served)",
            m.decisions.clone(),
        );
        registry.register(
            "airlock_policy_eval_seconds",
            "Policy evaluation time, per role",
            m.eval_seconds.clone(),
        );
        registry.register(
            "airlock_policy_fuel",
            "Fuel a policy evaluation consumed, per role",
            m.eval_fuel.clone(),
        );
        registry.register(
            "airlock_upstream_responses",
            "Forwarded requests by service and upstream status (error: no response)",
            m.upstream_responses.clone(),
        );
        registry.register(
            "airlock_upstream_seconds",
            "Time to the upstream's full response, per service",
            m.upstream_seconds.clone(),
        );
        registry.register(
            "airlock_tokens_minted",
            "Tokens minted, per audience service",
            m.tokens_minted.clone(),
        );
        registry.register(
            "airlock_policy_reloads",
            "Policy reloads by result (replaced, unchanged, rejected)",
            m.reloads.clone(),
        );
        registry.register(
            "airlock_shadow_decisions",
            "Decisions a role's candidate version also evaluated, by outcome (agree, disagree, skipped)",
            m.shadow_decisions.clone(),
        );
        registry.register(
            "airlock_state_seconds",
            "State store operation time, per operation",
            m.state_seconds.clone(),
        );
        registry.register(
            "airlock_state_errors",
            "State store operations that failed (the request was refused), per operation",
            m.state_errors.clone(),
        );
        registry.register(
            "airlock_state_up",
            "1 when the last state store operation succeeded, else 0",
            m.state_up.clone(),
        );
        registry.register(
            "airlock_state_backend",
            "The state store backend",
            Info::new(vec![("backend", backend.to_string())]),
        );
        registry.register(
            "airlock_audit_append_seconds",
            "Audit record append time",
            m.audit_seconds.clone(),
        );
        registry.register(
            "airlock_audit_errors",
            "Audit appends that failed (the request was refused)",
            m.audit_errors.clone(),
        );
        registry.register(
            "airlock_audit_group_records",
            "Audit records written together by one write (group commit)",
            m.audit_group_records.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One data-plane request's end: `code` is the error code the agent got,
    /// `ok` when it was served. `role` is empty before a session is known.
    pub fn decision(&self, role: &str, verdict: &str, code: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                role: role.to_string(),
                verdict: verdict.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    pub fn evaluation(&self, role: &str, elapsed: Duration, fuel: u64) {
        let label = RoleLabel {
            role: role.to_string(),
        };
        self.eval_seconds
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
        self.eval_fuel.get_or_create(&label).observe(fuel as f64);
    }

    /// A forwarded request's answer: its status, or `None` when none came.
    pub fn upstream(&self, service: &str, status: Option<u16>, elapsed: Duration) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.upstream_responses
            .get_or_create(&UpstreamLabels {
                service: service.to_string(),
                status,
            })
            .inc();
        self.upstream_seconds
            .get_or_create(&ServiceLabel {
                service: service.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A candidate's shadow evaluation: `agree`, `disagree` or `skipped`.
    pub fn shadow_decision(&self, role: &str, outcome: &'static str) {
        self.shadow_decisions
            .get_or_create(&ShadowLabels {
                role: role.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn token_minted(&self, service: &str) {
        self.tokens_minted
            .get_or_create(&ServiceLabel {
                service: service.to_string(),
            })
            .inc();
    }

    /// `result`: `replaced`, `unchanged` or `rejected`.
    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn state_op(&self, op: &'static str, elapsed: Duration, ok: bool) {
        self.state_seconds
            .get_or_create(&OpLabel { op })
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.state_errors.get_or_create(&OpLabel { op }).inc();
        }
        self.state_up.set(i64::from(ok));
    }

    pub fn audit_append(&self, elapsed: Duration, ok: bool) {
        self.audit_seconds.observe(elapsed.as_secs_f64());
        if !ok {
            self.audit_errors.inc();
        }
    }

    /// One write of the audit log carried `records` records.
    pub fn audit_group(&self, records: usize) {
        self.audit_group_records.observe(records as f64);
    }

    /// The OpenMetrics text exposition of everything, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

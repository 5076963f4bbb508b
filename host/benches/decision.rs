//! One decision in a fresh sandboxed instance, per example policy.
//!
//! Run: `cargo bench -p airlock --bench decision`
//!
//! Criterion measures the mean; a second pass times 20 000 single decisions
//! to report p50 and p99. The baseline, measured in the same run, is the same
//! policy's decision compiled natively and called directly, with no sandbox:
//! the ratio is the price of a fresh sandboxed instance per decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};

use airlock::policy::{Engine, EngineConfig, Limits, NoState, PolicyModule, PolicyRequest};
use airlock_sdk::Policy;

const SAMPLES: usize = 20_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn request(json: serde_json::Value) -> PolicyRequest {
    serde_json::from_value(json).expect("request")
}

fn principal(role: &str) -> serde_json::Value {
    serde_json::json!({"agent": "bench-agent", "role": role, "session": "s-1", "workflow": "wf-1"})
}

/// Each example policy with a request it allows.
fn cases() -> Vec<(&'static str, PolicyRequest)> {
    let small_change = std::fs::read_to_string(root().join("policies/pr-creator/requests/small-change.json"))
        .expect("pr-creator request");
    vec![
        (
            "crash-tracker",
            request(serde_json::json!({"principal": principal("crash-tracker"),
            "action": {"service": "crash-reporting", "operation": "crashes.read", "method": "GET", "path": "/crashes/42"}})),
        ),
        (
            "analytics-agent",
            request(serde_json::json!({"principal": principal("analytics-agent"),
            "action": {"service": "analytics", "operation": "metrics.read", "method": "GET", "path": "/metrics/signups"}})),
        ),
        (
            "code-reviewer",
            request(serde_json::json!({"principal": principal("code-reviewer"),
            "action": {"service": "code", "operation": "pulls.read", "method": "GET", "path": "/repos/acme/api/pulls/7",
                       "params": {"owner": "acme", "repo": "api", "number": "7"}}})),
        ),
        (
            "pr-creator",
            PolicyRequest::from_json(&small_change).expect("pr-creator request"),
        ),
    ]
}

/// The policy's `evaluate`, natively.
fn native(name: &str) -> fn(&airlock_sdk::Request) -> airlock_sdk::Verdict {
    match name {
        "crash-tracker" => crash_tracker::CrashTracker::evaluate,
        "analytics-agent" => analytics_agent::AnalyticsAgent::evaluate,
        "code-reviewer" => code_reviewer::CodeReviewer::evaluate,
        "pr-creator" => pr_creator::PrCreator::evaluate,
        other => panic!("no native build of {other}"),
    }
}

fn to_sdk(r: &PolicyRequest) -> airlock_sdk::Request {
    let mut b = airlock_sdk::Request::builder(&r.action.service, &r.action.method, &r.action.path)
        .agent(&r.principal.agent)
        .role(&r.principal.role)
        .workflow(&r.principal.workflow)
        .body(r.action.body.clone());
    if let Some(op) = &r.action.operation {
        b = b.operation(op);
    }
    for (k, v) in &r.action.params.0 {
        b = b.param(k, v);
    }
    for (k, v) in &r.action.query.0 {
        b = b.query(k, v);
    }
    for (k, v) in &r.action.headers.0 {
        b = b.header(k, v);
    }
    b.build()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn load_all(engine: &Engine) -> Vec<(&'static str, Arc<PolicyModule>, PolicyRequest)> {
    let target = root().join("target/wasm-policies");
    cases()
        .into_iter()
        .map(|(name, req)| {
            let path = airlock::build::build_policy(&root().join("policies").join(name), Some(&target))
                .unwrap_or_else(|e| panic!("building {name}: {e}"));
            let module = engine
                .load(&std::fs::read(path).expect("component"), &Limits::default())
                .expect("loads");
            let check = module.evaluate(&req, Arc::new(NoState), &Limits::default());
            assert!(
                check.verdict.grant().is_some(),
                "{name} should allow its bench request: {:?}",
                check.verdict
            );
            (name, Arc::new(module), req)
        })
        .collect()
}

fn decision(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let policies = load_all(&engine);
    let limits = Limits::default();
    let mut group = c.benchmark_group("decision");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, module, req) in &policies {
        group.bench_function(format!("{name}/fresh-instance"), |b| {
            b.iter(|| module.evaluate(req, Arc::new(NoState), &limits))
        });
    }
    group.finish();

    println!("\np50/p99 over {SAMPLES} decisions each (µs); baseline = the same decision run natively");
    println!(
        "{:<16} {:>9} {:>9} {:>11} {:>10} {:>8}",
        "policy", "fresh p50", "fresh p99", "native p50", "p50 ratio", "fuel"
    );
    for (name, module, req) in &policies {
        let mut fresh: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let started = std::time::Instant::now();
                let e = module.evaluate(req, Arc::new(NoState), &limits);
                let took = started.elapsed();
                std::hint::black_box(e);
                took
            })
            .collect();
        fresh.sort();
        let evaluate = native(name);
        let sdk_request = to_sdk(req);
        assert!(
            evaluate(&sdk_request).is_allow(),
            "{name}: native decision differs"
        );
        // Native decisions are too short to time one by one: time batches.
        const BATCH: u32 = 100;
        let mut native_times: Vec<Duration> = (0..SAMPLES / BATCH as usize)
            .map(|_| {
                let started = std::time::Instant::now();
                for _ in 0..BATCH {
                    std::hint::black_box(evaluate(std::hint::black_box(&sdk_request)));
                }
                started.elapsed() / BATCH
            })
            .collect();
        native_times.sort();
        let fuel = module.evaluate(req, Arc::new(NoState), &limits).fuel_used;
        let (p50, p99, base) = (
            percentile(&fresh, 0.50),
            percentile(&fresh, 0.99),
            percentile(&native_times, 0.50),
        );
        println!(
            "{name:<16} {:>9.1} {:>9.1} {:>11.2} {:>9.1}x {fuel:>8}",
            micros(p50),
            micros(p99),
            micros(base),
            micros(p50) / micros(base).max(0.001)
        );
    }
}

criterion_group!(benches, decision);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

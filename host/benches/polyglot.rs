//! Decision latency of the same policies written in Rust, Python and
//! JavaScript, each built from source with `airlock policy build`.
//!
//! Run: `eval "$(scripts/tools)" && cargo bench -p airlock --bench polyglot`
//!
//! Every decision runs in an instance no other decision has used. Three ways
//! to get one are measured, each over the same requests in the same run:
//! - `inline`: made on the decision's thread (no spares);
//! - `spares, paced`: taken from the spares a background thread keeps ready,
//!   at a pace the thread keeps up with (one decision every 5 ms);
//! - `spares, flat out`: back to back, so spares run out and decisions fall
//!   back to inline instantiation when the thread falls behind.
//!
//! The baseline is the Rust build of the same policy, fresh instance per
//! decision; the ratio is the price of the language runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::policy::{Engine, EngineConfig, Limits, NoState, PolicyModule, PolicyRequest};

const SAMPLES: usize = 1_000;
const PACE: Duration = Duration::from_millis(5);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Each twin policy with a request it allows.
fn cases() -> Vec<(&'static str, PolicyRequest)> {
    let small_change = std::fs::read_to_string(root().join("policies/pr-creator/requests/small-change.json"))
        .expect("pr-creator request");
    let crash = serde_json::json!({
        "principal": {"agent": "bench-agent", "role": "crash-tracker", "session": "s-1", "workflow": "wf-1"},
        "action": {"service": "crash-reporting", "operation": "crashes.read", "method": "GET", "path": "/crashes/42"}
    });
    vec![
        ("crash-tracker", serde_json::from_value(crash).expect("request")),
        (
            "pr-creator",
            PolicyRequest::from_json(&small_change).expect("pr-creator request"),
        ),
    ]
}

fn build(dir: &Path) -> Vec<u8> {
    let target = root().join("target/wasm-policies");
    let path = airlock::build::build_policy(dir, Some(&target)).unwrap_or_else(|e| {
        panic!(
            "building {}: {e} (run `eval \"$(scripts/tools)\"` first)",
            dir.display()
        )
    });
    std::fs::read(path).expect("component")
}

fn load(spares: usize, bytes: &[u8], limits: &Limits) -> Arc<PolicyModule> {
    let engine = Engine::new(EngineConfig {
        spare_instances: spares,
        ..EngineConfig::default()
    })
    .expect("engine");
    Arc::new(engine.load(bytes, limits).expect("loads"))
}

/// Sorted latencies of `SAMPLES` decisions, `pace` apart.
fn measure(module: &PolicyModule, request: &PolicyRequest, limits: &Limits, pace: Duration) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            std::thread::sleep(pace);
            let started = Instant::now();
            let e = module.evaluate(request, Arc::new(NoState), limits);
            let took = started.elapsed();
            assert!(e.verdict.grant().is_some(), "{:?}", e.verdict);
            took
        })
        .collect();
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to configure.
    let limits = Limits::default();
    println!("decision latency, µs (p50 / p99), {SAMPLES} decisions each; ratio = p50 / Rust fresh p50");
    println!(
        "{:<14} {:<7} {:>8} {:>19} {:>19} {:>19} {:>9} {:>9}",
        "policy", "lang", "size MB", "inline", "spares, paced", "spares, flat out", "ratio", "fuel"
    );
    for (name, request) in cases() {
        let rust = load(0, &build(&root().join("policies").join(name)), &limits);
        let rust_fresh = measure(&rust, &request, &limits, Duration::ZERO);
        let base = percentile(&rust_fresh, 0.5);
        let row = |language: &str,
                   size: usize,
                   inline: &[Duration],
                   paced: &[Duration],
                   flat: &[Duration],
                   fuel: u64| {
            let cell = |t: &[Duration]| {
                if t.is_empty() {
                    "-".to_string()
                } else {
                    format!(
                        "{:.0} / {:.0}",
                        micros(percentile(t, 0.5)),
                        micros(percentile(t, 0.99))
                    )
                }
            };
            let best = if paced.is_empty() { inline } else { paced };
            println!(
                "{name:<14} {language:<7} {:>8.1} {:>19} {:>19} {:>19} {:>8.0}x {fuel:>9}",
                size as f64 / 1e6,
                cell(inline),
                cell(paced),
                cell(flat),
                micros(percentile(best, 0.5)) / micros(base).max(0.001),
            );
        };
        let rust_fuel = rust.evaluate(&request, Arc::new(NoState), &limits).fuel_used;
        row(
            "rust",
            rust.info().size as usize,
            &rust_fresh,
            &[],
            &[],
            rust_fuel,
        );
        for language in ["python", "js"] {
            let bytes = build(&root().join("policies").join(name).join(language));
            let inline = load(0, &bytes, &limits);
            let inline_times = measure(&inline, &request, &limits, Duration::ZERO);
            let fuel = inline.evaluate(&request, Arc::new(NoState), &limits).fuel_used;
            drop(inline);
            let spared = load(2, &bytes, &limits);
            // Let the first spares be made before measuring.
            std::thread::sleep(Duration::from_millis(200));
            let paced = measure(&spared, &request, &limits, PACE);
            let flat = measure(&spared, &request, &limits, Duration::ZERO);
            row(language, bytes.len(), &inline_times, &paced, &flat, fuel);
        }
    }
}

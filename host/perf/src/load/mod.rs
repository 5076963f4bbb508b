//! Load: the upstream called directly, nginx as a reverse proxy, a bare
//! hyper forwarder and Airlock, each its own process on loopback, driven by
//! `wrk` at 1, 16, 64 and 256 keep-alive connections.
//!
//! The upstream is nginx answering a 200-byte JSON body (one worker, no
//! access log). Each proxy forwards to it; the measured figures are wrk's
//! (throughput, latency percentiles) and the CPU time the process under
//! test spent over the run divided by the requests it served. Airlock runs
//! its real binary with ten roles loaded (every Rust example policy) and
//! decides, mints, injects, scrubs and audits every request of the
//! crash-tracker role; on its defaults (SQLite state, ES256 tokens), on
//! the in-memory store, and on the in-memory store signing with EdDSA: what
//! each of the two knobs costs. A run that sees a non-2xx answer or a
//! socket error fails: the figures would measure refusals.

pub mod forwarder;
mod procs;
mod setup;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use procs::Running;

pub struct Options {
    pub root: PathBuf,
    pub smoke: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub connections: Vec<u32>,
    /// Seconds measured per point (after a warm-up that is not counted).
    pub seconds: u64,
    pub targets: Vec<Target>,
    /// Airlock's memory, on its default store with ten roles loaded.
    pub airlock_rss: Rss,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// `direct`, `nginx`, `forwarder`, `airlock`, `airlock-memory`,
    /// `airlock-memory-eddsa`.
    pub name: String,
    pub description: String,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub connections: u32,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// CPU time (user + system) of the process under test per request: the
    /// proxy's, or for `direct` the upstream's.
    pub cpu_us_per_request: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rss {
    pub idle_bytes: u64,
    /// Right after the highest-concurrency run.
    pub under_load_bytes: u64,
    /// The peak over all runs (VmHWM).
    pub peak_bytes: u64,
    pub roles: usize,
}

/// Connection counts measured.
const CONNECTIONS: [u32; 4] = [1, 16, 64, 256];

pub fn run(options: &Options) -> anyhow::Result<Results> {
    let (warm_up, measure) = if options.smoke {
        (Duration::ZERO, Duration::from_secs(1))
    } else {
        (Duration::from_secs(2), Duration::from_secs(6))
    };
    let connections: Vec<u32> = if options.smoke {
        vec![1, 16]
    } else {
        CONNECTIONS.to_vec()
    };
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let script = wrk::write_script(dir.path())?;
    let airlock_bin = setup::airlock_binary()?;
    let policies = setup::build_policies(&options.root)?;

    let upstream = setup::Nginx::upstream(dir.path())?;
    let nginx = setup::Nginx::proxy(dir.path(), upstream.addr)?;
    let forwarder = setup::forwarder(dir.path(), upstream.addr)?;
    let start = |config| setup::Airlock::start(&airlock_bin, dir.path(), config, upstream.addr, &policies);
    let airlock = start(("sqlite", "ES256"))?;
    let airlock_memory = start(("memory", "ES256"))?;
    let airlock_eddsa = start(("memory", "EdDSA"))?;
    let idle = procs::rss(airlock.process.pid())?.0;

    let path = "/crashes/42";
    let plain: Vec<String> = Vec::new();
    let cases: [(&str, &str, &Running, String, &[String]); 6] = [
        (
            "direct",
            "nginx `return 200` (the upstream), called directly",
            &upstream.process,
            format!("http://{}{path}", upstream.addr),
            &plain,
        ),
        (
            "nginx",
            "nginx as a reverse proxy (proxy_pass, keep-alive upstream)",
            &nginx.process,
            format!("http://{}{path}", nginx.addr),
            &plain,
        ),
        (
            "forwarder",
            "a bare hyper forwarder (no policy, token or audit)",
            &forwarder.1,
            format!("http://{}{path}", forwarder.0),
            &plain,
        ),
        (
            "airlock",
            "Airlock: policy + mint + inject + scrub + audit, SQLite state (the default)",
            &airlock.process,
            format!("http://{}/crash-reporting{path}", airlock.proxy),
            &airlock.headers,
        ),
        (
            "airlock-memory",
            "the same Airlock on the in-memory state store",
            &airlock_memory.process,
            format!("http://{}/crash-reporting{path}", airlock_memory.proxy),
            &airlock_memory.headers,
        ),
        (
            "airlock-memory-eddsa",
            "the same Airlock on the in-memory store, signing with EdDSA instead of ES256",
            &airlock_eddsa.process,
            format!("http://{}/crash-reporting{path}", airlock_eddsa.proxy),
            &airlock_eddsa.headers,
        ),
    ];

    let mut targets = Vec::new();
    let mut under_load = 0;
    for (name, description, process, url, headers) in cases {
        let mut points = Vec::new();
        for &c in &connections {
            if !warm_up.is_zero() {
                wrk::run(&script, &url, headers, c, warm_up)?;
            }
            let before = procs::cpu_time(process.pid())?;
            let report = wrk::run(&script, &url, headers, c, measure)?;
            let cpu = procs::cpu_time(process.pid())?.saturating_sub(before);
            if report.non_2xx > 0 || report.socket_errors > 0 {
                bail!(
                    "{name} at {c} connections: {} non-2xx answers and {} socket errors in {} requests",
                    report.non_2xx,
                    report.socket_errors,
                    report.requests
                );
            }
            if name == "airlock" && c == *connections.last().unwrap_or(&1) {
                under_load = procs::rss(process.pid())?.0;
            }
            let point = Point {
                connections: c,
                requests: report.requests,
                rps: report.requests as f64 / (report.duration_us.max(1) as f64 / 1e6),
                p50_us: report.p50,
                p90_us: report.p90,
                p99_us: report.p99,
                p999_us: report.p999,
                cpu_us_per_request: cpu.as_secs_f64() * 1e6 / report.requests.max(1) as f64,
            };
            eprintln!(
                "load {name:>15} {c:>4} conns: {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  CPU {:>6.1} µs/req",
                point.rps, point.p50_us, point.p99_us, point.cpu_us_per_request
            );
            points.push(point);
        }
        targets.push(Target {
            name: name.to_string(),
            description: description.to_string(),
            points,
        });
    }
    let peak = procs::rss(airlock.process.pid())?.1;
    Ok(Results {
        connections,
        seconds: measure.as_secs(),
        targets,
        airlock_rss: Rss {
            idle_bytes: idle,
            under_load_bytes: under_load,
            peak_bytes: peak,
            roles: policies.len(),
        },
    })
}

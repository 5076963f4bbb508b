//! The results file and the targets, each stated as a ratio
//! measured in this run, met or missed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::{decision, load};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    /// A smoke run's figures mean nothing.
    pub smoke: bool,
    pub load: Option<load::Results>,
    pub decision: Option<decision::Results>,
    #[serde(default)]
    pub targets: Vec<Check>,
}

/// One target of the performance issue, against this run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

impl Results {
    pub fn new(machine: Machine, smoke: bool) -> Results {
        Results {
            machine,
            smoke,
            load: None,
            decision: None,
            targets: Vec::new(),
        }
    }

    /// Fill [`Results::targets`] from the figures.
    pub fn check_targets(&mut self) {
        let mut checks = Vec::new();
        if let Some(load) = &self.load {
            load_checks(load, &mut checks);
        }
        if let Some(decision) = &self.decision {
            decision_checks(decision, &mut checks);
        }
        self.targets = checks;
    }
}

/// The point of `target` at `connections`.
pub fn point<'a>(load: &'a load::Results, target: &str, connections: u32) -> Option<&'a load::Point> {
    load.targets
        .iter()
        .find(|t| t.name == target)?
        .points
        .iter()
        .find(|p| p.connections == connections)
}

fn load_checks(load: &load::Results, checks: &mut Vec<Check>) {
    // The highest concurrency measured, 64 in a full run.
    let c = if load.connections.contains(&64) {
        64
    } else {
        load.connections.iter().copied().max().unwrap_or(1)
    };
    let (Some(direct), Some(nginx), Some(forwarder), Some(airlock)) = (
        point(load, "direct", c),
        point(load, "nginx", c),
        point(load, "forwarder", c),
        point(load, "airlock", c),
    ) else {
        return;
    };
    let cpu = airlock.cpu_us_per_request / nginx.cpu_us_per_request.max(f64::MIN_POSITIVE);
    checks.push(Check {
        target: "Airlock CPU per request ≤ 3× nginx-as-reverse-proxy's".into(),
        measured: format!(
            "{cpu:.1}× at {c} connections ({:.0} µs vs {:.0} µs)",
            airlock.cpu_us_per_request, nginx.cpu_us_per_request
        ),
        met: cpu <= 3.0,
    });
    let throughput = airlock.rps / forwarder.rps.max(f64::MIN_POSITIVE);
    checks.push(Check {
        target: format!("throughput ≥ 50% of the bare hyper forwarder at {c} connections"),
        measured: format!(
            "{:.0}% ({:.0} vs {:.0} req/s)",
            throughput * 100.0,
            airlock.rps,
            forwarder.rps
        ),
        met: throughput >= 0.5,
    });
    let added = airlock.p99_us as i64 - direct.p99_us as i64;
    checks.push(Check {
        target: format!("added p99 ≤ 500 µs at {c} connections"),
        measured: format!(
            "{added} µs (p99 {} µs vs {} µs direct)",
            airlock.p99_us, direct.p99_us
        ),
        met: added <= 500,
    });
}

fn decision_checks(decision: &decision::Results, checks: &mut Vec<Check>) {
    for p in &decision.policies {
        checks.push(Check {
            target: format!("{}: decision p50 ≤ 10 µs, p99 ≤ 50 µs (fresh instance)", p.policy),
            measured: format!("p50 {:.1} µs, p99 {:.1} µs", p.wasm.p50_us, p.wasm.p99_us),
            met: p.wasm.p50_us <= 10.0 && p.wasm.p99_us <= 50.0,
        });
        for (engine, other) in [("Cedar", p.cedar), ("regorus", p.rego)] {
            if let Some(other) = other {
                let ratio = p.wasm.p50_us / other.p50_us.max(f64::MIN_POSITIVE);
                checks.push(Check {
                    target: format!("{}: p50 faster than {engine}'s", p.policy),
                    measured: format!("{ratio:.2}× ({:.1} µs vs {:.1} µs)", p.wasm.p50_us, other.p50_us),
                    met: ratio < 1.0,
                });
            }
        }
    }
    if let (Some(first), Some(last)) = (decision.diff_size.first(), decision.diff_size.last())
        && last.x > first.x
    {
        // The exponent k of time ∝ size^k between the ends: 1 is linear.
        let k = (last.wasm.p50_us / first.wasm.p50_us.max(f64::MIN_POSITIVE)).ln()
            / (last.x as f64 / first.x as f64).ln();
        checks.push(Check {
            target: "decision time linear or better in diff size".into(),
            measured: format!(
                "time ∝ size^{k:.2} ({} B: {:.1} µs → {} B: {:.1} µs)",
                first.x, first.wasm.p50_us, last.x, last.wasm.p50_us
            ),
            met: k <= 1.1,
        });
    }
    if let (Some(first), Some(last)) = (decision.roles.first(), decision.roles.last())
        && last.x > first.x
    {
        let ratio = last.wasm.p50_us / first.wasm.p50_us.max(f64::MIN_POSITIVE);
        checks.push(Check {
            target: "decision time flat in the number of roles loaded".into(),
            measured: format!(
                "{ratio:.2}× ({} roles: {:.1} µs → {} roles: {:.1} µs)",
                first.x, first.wasm.p50_us, last.x, last.wasm.p50_us
            ),
            met: ratio <= 1.25,
        });
    }
}

pub fn print_summary(results: &Results) {
    if results.smoke {
        println!("smoke run: the figures mean nothing");
    }
    for check in &results.targets {
        println!(
            "[{}] {}: {}",
            if check.met { "met" } else { "MISSED" },
            check.target,
            check.measured
        );
    }
}

/// The repository root: this crate lives in `host/perf`.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("no repository root above {}", here.display()))
}

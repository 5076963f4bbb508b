//! The load generator: `wrk` (Debian's package), one run per measurement,
//! its results read as JSON printed by a Lua `done` hook.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// Printed by `done()` as one JSON line; latencies in microseconds.
const REPORT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n@@{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub requests: u64,
    pub duration_us: u64,
    pub socket_errors: u64,
    pub non_2xx: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Write the Lua script wrk loads.
pub fn write_script(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("report.lua");
    std::fs::write(&path, REPORT)?;
    Ok(path)
}

/// One closed-loop run: `connections` keep-alive connections for `duration`.
pub fn run(
    script: &Path,
    url: &str,
    headers: &[String],
    connections: u32,
    duration: Duration,
) -> anyhow::Result<Report> {
    let threads = connections.min(2);
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        // wrk takes whole seconds.
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script);
    for h in headers {
        command.arg("-H").arg(h);
    }
    let output = command
        .arg(url)
        .output()
        .context("running wrk (install it: Debian package `wrk`)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("@@"))
        .with_context(|| format!("wrk printed no report:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("wrk's report: {line}"))
}

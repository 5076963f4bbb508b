//! `airlock-perf`: Airlock's one benchmark command.
//!
//! Run from the repository root: `scripts/perf` (a release build of this
//! binary and of `airlock`, then `airlock-perf --out host/perf/results`).
//!
//! In one run it measures
//! - **load**: throughput, latency percentiles and CPU per request at 1, 16,
//!   64 and 256 connections, with `wrk` as the load generator, for the
//!   upstream called directly, nginx as a reverse proxy, a bare hyper
//!   forwarder and Airlock (policy + minting + injection + scrubbing +
//!   audit), each proxy its own process; and Airlock's RSS idle with ten
//!   roles loaded and under load;
//! - **decision**: one decision per example policy in a fresh instance
//!   (p50/p99) beside the same rules in Cedar and in Rego (regorus),
//!   in-process, on the same requests with the verdicts checked equal; and
//!   how the decision time grows with the diff size and the roles loaded.
//!
//! It writes `results.json` and PNG charts into `--out`. `--smoke` runs
//! every part for a fraction of a second (CI checks that the command works;
//! its figures mean nothing). No timing is ever asserted.

mod chart;
mod decision;
mod load;
mod machine;
mod report;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// Every Rust example policy (bugfix-common is a library), crash-tracker first.
const EXAMPLE_POLICIES: [&str; 10] = [
    "crash-tracker",
    "analytics-agent",
    "code-reviewer",
    "pr-creator",
    "github-mcp",
    "business-agent",
    "developer",
    "senior-reviewer",
    "qa",
    "release",
];

#[derive(Parser)]
#[command(name = "airlock-perf", about = "Airlock's benchmark: load, decisions, charts")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where results.json and the charts go.
    #[arg(long, default_value = "host/perf/results")]
    out: PathBuf,
    /// A fraction of a second per measurement: checks the command, measures nothing.
    #[arg(long)]
    smoke: bool,
    /// Run only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Load,
    Decision,
}

#[derive(Subcommand)]
enum Command {
    /// Draw the charts again from a results.json.
    Charts { results: PathBuf },
    /// The bare hyper forwarder, as its own process (started by `load`).
    #[command(hide = true)]
    Forwarder {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: std::net::SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Forwarder { listen, upstream }) => load::forwarder::run(listen, upstream),
        Some(Command::Charts { results }) => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            let parsed: report::Results = serde_json::from_str(&text).context("parsing the results")?;
            let out = results.parent().map_or_else(|| PathBuf::from("."), PathBuf::from);
            chart::draw_all(&parsed, &out)?;
            report::print_summary(&parsed);
            Ok(())
        }
        None => {
            let wants = |p: Part| cli.only.is_empty() || cli.only.contains(&p);
            let root = report::repo_root()?;
            let mut results = report::Results::new(machine::Machine::read(), cli.smoke);
            if wants(Part::Decision) {
                results.decision = Some(decision::run(&decision::Options {
                    root: root.clone(),
                    smoke: cli.smoke,
                })?);
            }
            if wants(Part::Load) {
                results.load = Some(load::run(&load::Options {
                    root: root.clone(),
                    smoke: cli.smoke,
                })?);
            }
            results.check_targets();
            let out = cli.out;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let path = out.join("results.json");
            std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
            chart::draw_all(&results, &out)?;
            report::print_summary(&results);
            println!("results: {}", path.display());
            Ok(())
        }
    }
}

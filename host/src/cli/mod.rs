//! Command-line interface: argument parsing and dispatch. Each command lives
//! in its own file and calls into the library; nothing here decides policy.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cases;
mod config;
mod demo;
mod exact;
mod ops;
mod policy;
mod remote;
mod replay;
mod serve;
mod telemetry;

/// Airlock: a WebAssembly policy host for AI agents.
#[derive(Parser, Debug)]
#[command(name = "airlock", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build, check, evaluate and test policy components.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run the proxy and the admin API (no --config: the embedded quickstart).
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Also start the demo upstream services on the configured
        /// `http://127.0.0.1:PORT` upstreams (as the embedded default does).
        #[arg(long)]
        demo_upstreams: bool,
    },
    /// Create, revoke and list agent sessions (through the admin API).
    #[command(subcommand)]
    Session(ops::SessionCommand),
    /// Rotate the token signing key (through the admin API).
    #[command(subcommand)]
    Keys(ops::KeysCommand),
    /// Verify and read the audit log.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Run the multi-agent bug-fix workflow end to end (examples/bugfix-workflow).
    Demo(demo::DemoArgs),
    /// Decide on escalated requests (through the admin API).
    #[command(subcommand)]
    Approvals(exact::ApprovalsCommand),
    /// Read, set and revoke workflows (through the admin API).
    #[command(subcommand)]
    Workflow(exact::WorkflowCommand),
}

pub fn run(cli: Cli) -> ExitCode {
    // `serve` sets up logging itself, once its config says whether traces
    // are exported too.
    if !matches!(cli.command, Command::Serve { .. }) {
        telemetry::init_logs();
    }
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Serve {
            config,
            demo_upstreams,
        } => serve::run(config, demo_upstreams),
        Command::Session(cmd) => ops::session(cmd),
        Command::Keys(cmd) => ops::keys(cmd),
        Command::Audit(cmd) => ops::audit(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Approvals(cmd) => exact::approvals(cmd),
        Command::Workflow(cmd) => exact::workflow(cmd),
    }
}

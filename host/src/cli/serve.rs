//! `airlock serve`: the proxy and the admin API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use airlock::config::Config;
use airlock::server::{Airlock, bind};

use super::telemetry;

/// The quickstart configuration, built into the binary.
const EMBEDDED: &str = include_str!("../../../examples/airlock.toml");

pub fn run(config_file: Option<PathBuf>, demo_upstreams: bool) -> ExitCode {
    match run_inner(config_file, demo_upstreams) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(config_file: Option<PathBuf>, demo_upstreams: bool) -> anyhow::Result<()> {
    let embedded = config_file.is_none();
    let config = match &config_file {
        Some(file) => Config::load(file)?,
        None => {
            let config = Config::parse(EMBEDDED, Path::new("examples/airlock.toml"))?;
            build_missing_policies(&config)?;
            config
        }
    };
    // Before the runtime, and dropped after it: the OTLP exporter's blocking
    // client must live outside any async context.
    let _telemetry = telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config, embedded || demo_upstreams, embedded))
}

async fn serve(config: Config, demo_upstreams: bool, embedded: bool) -> anyhow::Result<()> {
    let airlock = Airlock::start(config).await?;
    if demo_upstreams {
        let demos = airlock::demo::start(&airlock.config, airlock.keys.clone())
            .await
            .context("starting the demo upstream services")?;
        tracing::info!(services = ?demos, "demo upstream services started");
    }
    let (bound, serving) = bind(airlock.clone()).await?;
    // One machine-readable line, for scripts and tests.
    println!("{}", serde_json::json!({ "listening": bound }));
    if embedded {
        eprintln!(
            "airlock: proxy on http://{}, admin on http://{} (admin token in {})\n\
             create a session:  airlock session create --agent crash-bot --role crash-tracker --workflow wf-1",
            bound.proxy,
            bound.admin,
            airlock.config.data.dir.join("admin.token").display()
        );
    }
    tokio::select! {
        () = serving => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// The embedded default runs from a checkout: build each role's policy from
/// `policies/<role>` the first time.
fn build_missing_policies(config: &Config) -> anyhow::Result<()> {
    for (role, r) in &config.roles {
        let target = config.policies.dir.join(&r.policy);
        if target.is_file() {
            continue;
        }
        let source = Path::new("policies").join(role);
        anyhow::ensure!(
            source.join("Cargo.toml").is_file(),
            "{} is missing and there is no policies/{role} to build it from (run from the repository root)",
            target.display()
        );
        eprintln!("airlock: building the {role} policy (first run)");
        let built = airlock::build::build_policy(&source, None)?;
        std::fs::create_dir_all(&config.policies.dir)?;
        std::fs::copy(&built, &target).with_context(|| format!("copying to {}", target.display()))?;
    }
    Ok(())
}

//! `airlock config check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use airlock::config::{Config, MAX_ROLE_MEMORY};
use airlock::policy::{Engine, EngineConfig, PolicyDir, Registry};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file and load every role's policy; list roles and digests.
    Check {
        /// The TOML config file.
        file: PathBuf,
    },
}

pub fn run(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => match check(&file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(file: &Path) -> Result<(), String> {
    let config = Config::load(file).map_err(|e| e.to_string())?;
    let engine = Engine::new(EngineConfig {
        max_memory_bytes: MAX_ROLE_MEMORY,
        max_concurrent: 16,
        cache_dir: config.policies.cache_dir.clone(),
        ..EngineConfig::default()
    })
    .map_err(|e| format!("starting the engine: {e:#}"))?;
    let trusted = config
        .policies
        .trusted_keys()
        .map_err(|e| format!("{}: [policies] {e}", file.display()))?;
    let dir = PolicyDir::open(&config.policies.dir)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .trusting(trusted);
    let registry =
        Registry::new(engine, dir, config.role_bindings()).map_err(|e| format!("{}: {e}", file.display()))?;
    println!("ok: {}", file.display());
    for (role, info) in registry.list() {
        println!("  {role}: {} {} {}", info.name, info.version, info.digest);
    }
    Ok(())
}

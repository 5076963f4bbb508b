//! `airlock policy build|check|eval|test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use airlock::policy::{
    Engine, EngineConfig, Evaluation, Limits, NoState, PolicyModule, PolicyRequest, Verdict, WorkflowState,
};

use super::cases;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Build a policy's source folder to a component; prints the component's
    /// path last. The language is named by the folder's entry file:
    /// Cargo.toml (Rust), policy.py (Python, needs componentize-py) or
    /// policy.js (JavaScript, needs ComponentizeJS's componentize-js).
    Build {
        /// The policy's source folder.
        dir: PathBuf,
    },
    /// Check a component against the policy world; list its imports and exports.
    Check {
        /// The component file.
        file: PathBuf,
    },
    /// Evaluate one request and print the decision as JSON.
    Eval {
        /// The component file.
        file: PathBuf,
        /// The request as JSON (see README, "Request JSON"); `-` reads stdin.
        #[arg(long)]
        request: PathBuf,
        /// Initial workflow state as a JSON object of string values.
        #[arg(long)]
        state: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Re-run captured decisions (`capture_inputs = true`) through a
    /// component, each with the workflow state it saw, and show which
    /// verdicts change. Exits 1 when any does, unless `--allow-changes`.
    Replay {
        /// The component to try.
        file: PathBuf,
        /// Capture file(s): `capture.jsonl` beside the audit log (and its
        /// rotated `capture.jsonl.N`, oldest first).
        #[arg(long, required = true)]
        inputs: Vec<PathBuf>,
        /// The audit log the captures belong to: only decisions it records
        /// are replayed.
        #[arg(long)]
        audit: PathBuf,
        /// Only the decisions of this role.
        #[arg(long)]
        role: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 even when verdicts change.
        #[arg(long)]
        allow_changes: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Sign a component with a minisign secret key; writes `FILE.minisig`,
    /// which `minisign -V` and a host with `[policies] trusted_keys` accept.
    Sign {
        /// The component file.
        file: PathBuf,
        /// The minisign secret key file (`minisign -G` makes one).
        #[arg(long)]
        key: PathBuf,
        /// A file holding the key's password; omit for a key made with `-W`.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Give a role a candidate version in a running Airlock: every decision
    /// is also evaluated by it, without effect; disagreements are audited
    /// as `shadow` records. `--clear` drops the candidate.
    Shadow {
        role: String,
        /// The candidate's file name in the policy directory.
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        file: Option<String>,
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        admin: super::remote::AdminArgs,
    },
    /// Make a role's candidate its enforced version (written over the
    /// role's file, so a restart keeps it).
    Promote {
        role: String,
        #[command(flatten)]
        admin: super::remote::AdminArgs,
    },
    /// Reload every role's policy in a running Airlock (through the admin API).
    Reload {
        #[command(flatten)]
        admin: super::remote::AdminArgs,
    },
    /// Run a table of named cases against a component, like `opa test`.
    /// Given several components (one policy built from several languages),
    /// every case must also get the identical verdict from each.
    Test {
        /// The component file(s).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The case table (TOML).
        #[arg(long)]
        cases: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Fuel per evaluation.
    #[arg(long, default_value_t = Limits::default().fuel)]
    fuel: u64,
    /// Linear-memory cap, e.g. `16MiB`, `512KiB` or a number of bytes.
    #[arg(long, default_value = "16MiB", value_parser = parse_bytes)]
    memory: usize,
    /// Wall-clock deadline in milliseconds.
    #[arg(long, default_value_t = 50)]
    deadline_ms: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: self.memory,
            deadline: Duration::from_millis(self.deadline_ms),
        }
    }
}

fn parse_bytes(s: &str) -> Result<usize, String> {
    airlock::config::ByteSize::parse(s).map(|b| b.0)
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Build { dir } => build(&dir),
        PolicyCommand::Check { file } => check(&file),
        PolicyCommand::Eval {
            file,
            request,
            state,
            limits,
        } => eval(&file, &request, state.as_deref(), &limits.limits()),
        PolicyCommand::Test { files, cases, limits } => test(&files, &cases, &limits.limits()),
        PolicyCommand::Reload { admin } => super::ops::reload(admin),
        PolicyCommand::Shadow {
            role,
            file,
            clear,
            admin,
        } => super::ops::shadow(admin, &role, file.as_deref(), clear),
        PolicyCommand::Promote { role, admin } => super::ops::promote(admin, &role),
        PolicyCommand::Replay {
            file,
            inputs,
            audit,
            role,
            json,
            allow_changes,
            limits,
        } => super::replay::run(
            &file,
            &inputs,
            &audit,
            role.as_deref(),
            json,
            allow_changes,
            &limits.limits(),
        ),
        PolicyCommand::Sign {
            file,
            key,
            password_file,
        } => report(sign(&file, &key, password_file.as_deref())),
    }
}

fn report(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sign(file: &Path, key: &Path, password_file: Option<&Path>) -> Result<(), String> {
    let read_text =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let module = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let secret_key = read_text(key)?;
    let password = password_file
        .map(|p| read_text(p).map(|text| text.trim_end_matches(['\r', '\n']).to_string()))
        .transpose()?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let signature = airlock::policy::sign_module(&module, &secret_key, password, &name)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let mut out = file.as_os_str().to_owned();
    out.push(airlock::policy::SIGNATURE_SUFFIX);
    let out = PathBuf::from(out);
    std::fs::write(&out, signature).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

fn build(dir: &Path) -> ExitCode {
    match airlock::build::build_policy(dir, None) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the one-shot commands cache compiled components, so that a Python
/// or JavaScript policy (seconds to compile) is compiled once per version:
/// `AIRLOCK_CACHE_DIR` (empty for no cache), else
/// `$XDG_CACHE_HOME/airlock/compiled` or `~/.cache/airlock/compiled`.
fn compile_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AIRLOCK_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("airlock/compiled"))
}

/// Load a component file for the one-shot commands.
pub(super) fn load(file: &Path, limits: &Limits) -> Result<PolicyModule, String> {
    let engine = Engine::new(EngineConfig {
        max_concurrent: 16,
        cache_dir: compile_cache_dir(),
        ..EngineConfig::default()
    })
    .map_err(|e| format!("starting the engine: {e:#}"))?;
    let limit = engine.config().max_module_bytes;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if size > limit {
        return Err(format!(
            "{}: module is {size} bytes, over the {limit}-byte limit",
            file.display()
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    engine
        .load(&bytes, limits)
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn check(file: &Path) -> ExitCode {
    match load(file, &Limits::default()) {
        Ok(module) => {
            let info = module.info();
            println!(
                "ok: {} {} implements the policy world of {}",
                info.name, info.version, info.contract
            );
            println!("digest: {}", info.digest);
            println!("size: {} bytes", info.size);
            println!("imports:");
            for i in &info.imports {
                println!("  {i}");
            }
            if info.uses_wasi {
                println!("  (WASI is linked with nothing granted: no files, env, args, sockets)");
            }
            println!("exports:");
            for e in &info.exports {
                println!("  {e}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| format!("stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn eval(file: &Path, request: &Path, state: Option<&Path>, limits: &Limits) -> ExitCode {
    let prepared = (|| -> Result<_, String> {
        let text = read_input(request)?;
        let mut req = PolicyRequest::from_json(&text).map_err(|e| format!("{}: {e}", request.display()))?;
        if req.usage.now_ms == 0 {
            req.usage.now_ms = now_ms();
        }
        let store: Arc<dyn WorkflowState> = match state {
            None => Arc::new(NoState),
            Some(path) => {
                let text = read_input(path)?;
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&text).map_err(|e| {
                        format!("{}: state must be a JSON object of strings: {e}", path.display())
                    })?;
                Arc::new(cases::seeded_state(&req.principal.workflow, &map))
            }
        };
        let module = load(file, limits)?;
        Ok((req, store, module))
    })();
    let (req, store, module) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let evaluation = module.evaluate(&req, store, limits);
    println!("{}", evaluation_json(&module, &evaluation));
    ExitCode::SUCCESS
}

/// The JSON printed by `airlock policy eval`.
pub(super) fn evaluation_json(module: &PolicyModule, e: &Evaluation) -> serde_json::Value {
    let info = module.info();
    let mut out = json!({
        "verdict": e.verdict.kind(),
        "reason": e.verdict.reason(),
        "grant": e.verdict.grant(),
        "fuel": e.fuel_used,
        "micros": e.elapsed.as_micros() as u64,
        "policy": { "name": info.name, "version": info.version, "digest": info.digest },
    });
    if let Some(f) = &e.failure {
        out["class"] = json!(f.class);
    }
    if !e.logs.is_empty() || e.logs_dropped > 0 {
        out["logs"] = json!(e.logs);
        out["logs_dropped"] = json!(e.logs_dropped);
    }
    if matches!(e.verdict, Verdict::Allow(_)) && !e.state_writes.is_empty() {
        out["state_writes"] = json!(e.state_writes);
    }
    out
}

fn test(files: &[PathBuf], cases_file: &Path, limits: &Limits) -> ExitCode {
    let table = match read_input(cases_file)
        .and_then(|t| cases::parse(&t).map_err(|e| format!("{}: {e}", cases_file.display())))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut subjects = Vec::new();
    for file in files {
        match load(file, limits) {
            Ok(module) => subjects.push(cases::Subject {
                name: file.display().to_string(),
                module,
            }),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let (passed, failed) = cases::run(&subjects, &table, limits);
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

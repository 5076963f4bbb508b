//! `airlock session …`, `airlock keys rotate`, `airlock audit …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::remote::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// Create a session; prints its id and handle (give the handle to the agent).
    Create {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        on_behalf_of: Option<String>,
        #[arg(long)]
        intent: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Print only the session handle (for scripts).
        #[arg(long)]
        handle_only: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a session: its handle and every token minted under it.
    Revoke {
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List active sessions.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new signing key; the old one stays published until its tokens expire.
    Rotate {
        #[command(flatten)]
        admin: AdminArgs,
        /// Rotate this key directory directly, without a running server
        /// (a key set shared by replicas, e.g. the contents of a Kubernetes
        /// Secret); replicas pick the change up.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// With --dir: the algorithm of the new key.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
        algorithm: String,
    },
    /// Create a key directory with a first signing key (for replicas that
    /// share it), or show the active key of an existing one.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
        algorithm: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain; names the first bad record.
    Verify { file: PathBuf },
    /// Pretty-print the last records.
    Tail {
        file: PathBuf,
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
}

pub(super) fn print(result: Result<serde_json::Value, String>) -> ExitCode {
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn session(cmd: SessionCommand) -> ExitCode {
    match cmd {
        SessionCommand::Create {
            agent,
            role,
            workflow,
            on_behalf_of,
            intent,
            ttl,
            handle_only,
            admin,
        } => {
            let created = admin.call(
                "POST",
                "/v1/sessions",
                Some(json!({ "agent": agent, "role": role, "workflow": workflow,
                              "on_behalf_of": on_behalf_of, "intent": intent, "ttl_s": ttl })),
            );
            match created {
                Ok(v) if handle_only => {
                    println!("{}", v["handle"].as_str().unwrap_or_default());
                    ExitCode::SUCCESS
                }
                other => print(other),
            }
        }
        SessionCommand::Revoke { id, admin } => {
            print(admin.call("DELETE", &format!("/v1/sessions/{id}"), None))
        }
        SessionCommand::List { admin } => print(admin.call("GET", "/v1/sessions", None)),
    }
}

pub fn keys(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Rotate { admin, dir: None, .. } => print(admin.call("POST", "/v1/keys/rotate", None)),
        KeysCommand::Rotate {
            dir: Some(dir),
            algorithm,
            ..
        } => offline_keys(&dir, &algorithm, true),
        KeysCommand::Init { dir, algorithm } => offline_keys(&dir, &algorithm, false),
    }
}

/// Open (creating if needed) a key directory and optionally rotate it;
/// prints the active key id as JSON.
fn offline_keys(dir: &Path, algorithm: &str, rotate: bool) -> ExitCode {
    let algorithm = if algorithm == "EdDSA" {
        airlock::token::Algorithm::EdDsa
    } else {
        airlock::token::Algorithm::Es256
    };
    let ttl = std::time::Duration::from_secs(airlock::config::MAX_TOKEN_TTL_S);
    let result = airlock::token::KeyStore::open(dir, algorithm, ttl).and_then(|keys| {
        if rotate {
            keys.rotate()
        } else {
            Ok(keys.active_kid())
        }
    });
    match result {
        Ok(kid) => {
            println!("{}", serde_json::json!({ "dir": dir, "kid": kid }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}

pub fn reload(admin: AdminArgs) -> ExitCode {
    print(admin.call("POST", "/v1/policies/reload", None))
}

/// `airlock policy shadow ROLE FILE` / `ROLE --clear`.
pub fn shadow(admin: AdminArgs, role: &str, file: Option<&str>, clear: bool) -> ExitCode {
    let path = format!("/v1/policies/{role}/shadow");
    match (file, clear) {
        (Some(file), false) => print(admin.call("PUT", &path, Some(serde_json::json!({ "file": file })))),
        (None, true) => print(admin.call("DELETE", &path, None)),
        _ => {
            eprintln!("error: give the candidate's FILE (in the policy directory), or --clear");
            ExitCode::from(2)
        }
    }
}

/// `airlock policy promote ROLE`.
pub fn promote(admin: AdminArgs, role: &str) -> ExitCode {
    print(admin.call("POST", &format!("/v1/policies/{role}/promote"), None))
}

pub fn audit(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Verify { file } => match airlock::audit::verify(&file) {
            Ok(n) => {
                println!("ok: {} records, chain intact", n);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        AuditCommand::Tail { file, lines } => {
            let mut out = std::io::stdout().lock();
            match airlock::audit::tail(&file, lines, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

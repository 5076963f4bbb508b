//! Starting what the load part measures: two nginx servers, the forwarder
//! and Airlock, each on a free loopback port, each its own process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::procs::Running;

/// The upstream's answer: a small JSON crash report (200 bytes).
pub const UPSTREAM_BODY: &str = concat!(
    r#"{"id":"42","service":"crash-reporting","signal":"SIGSEGV","frame":"render_frame","#,
    r#""count":1873,"first_seen":"2025-05-01T09:12:44Z","last_seen":"2025-06-11T17:03:09Z","#,
    r#""status":"open","assignee":null,"tags":["ui","gpu"]}"#
);

/// The roles Airlock loads: every Rust example policy, one role each. The
/// load goes to the first (crash-tracker); the others are resident, as in a
/// real deployment.
use crate::EXAMPLE_POLICIES as ROLES;

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The `airlock` binary built beside this one (same target folder and
/// profile: `scripts/perf` builds both in release).
pub fn airlock_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name("airlock");
    if !path.is_file() {
        bail!(
            "no airlock binary beside {} (build it in the same profile: `cargo build --release -p airlock -p airlock-perf`)",
            me.display()
        );
    }
    Ok(path)
}

/// Every role's policy, built from source: `(role, component)`.
pub fn build_policies(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let target = root.join("target/wasm-policies");
    ROLES
        .iter()
        .map(|role| {
            let path = airlock::build::build_policy(&root.join("policies").join(role), Some(&target))
                .with_context(|| format!("building the {role} policy"))?;
            Ok((role.to_string(), path))
        })
        .collect()
}

pub struct Nginx {
    pub addr: SocketAddr,
    pub process: Running,
}

impl Nginx {
    /// nginx answering every request with [`UPSTREAM_BODY`].
    pub fn upstream(dir: &Path) -> anyhow::Result<Nginx> {
        let addr = free_port()?;
        let body = UPSTREAM_BODY.replace('\'', "\\'");
        let server = format!(
            "server {{ listen {addr}; location / {{ default_type application/json; return 200 '{body}'; }} }}"
        );
        Nginx::start(dir, "nginx-upstream", addr, &server)
    }

    /// nginx as a reverse proxy to `upstream`, with keep-alive upstream
    /// connections (as Airlock and the forwarder keep theirs).
    pub fn proxy(dir: &Path, upstream: SocketAddr) -> anyhow::Result<Nginx> {
        let addr = free_port()?;
        let server = format!(
            "upstream up {{ server {upstream}; keepalive 256; }}
             server {{ listen {addr}; location / {{ proxy_pass http://up; proxy_http_version 1.1;
               proxy_set_header Connection \"\"; }} }}"
        );
        Nginx::start(dir, "nginx-proxy", addr, &server)
    }

    fn start(dir: &Path, name: &str, addr: SocketAddr, server: &str) -> anyhow::Result<Nginx> {
        let prefix = dir.join(name);
        std::fs::create_dir_all(prefix.join("logs"))?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log {log} warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{ access_log off; keepalive_requests 1000000; {server} }}\n",
                pid = prefix.join("nginx.pid").display(),
                log = prefix.join("logs/error.log").display(),
            ),
        )?;
        let log = prefix.join("stdout.log");
        let mut process = Running::spawn(
            name,
            Command::new("nginx")
                .arg("-p")
                .arg(&prefix)
                .arg("-e")
                .arg(prefix.join("logs/error.log"))
                .arg("-c")
                .arg(&conf),
            &log,
        )
        .context("nginx (install it: Debian package `nginx-light` or `nginx`)")?;
        process.wait_listening(addr, &log)?;
        Ok(Nginx { addr, process })
    }
}

/// The bare forwarder: this binary's hidden `forwarder` subcommand.
pub fn forwarder(dir: &Path, upstream: SocketAddr) -> anyhow::Result<(SocketAddr, Running)> {
    let addr = free_port()?;
    let log = dir.join("forwarder.log");
    let mut process = Running::spawn(
        "forwarder",
        Command::new(std::env::current_exe()?)
            .arg("forwarder")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--upstream")
            .arg(upstream.to_string()),
        &log,
    )?;
    process.wait_listening(addr, &log)?;
    Ok((addr, process))
}

pub struct Airlock {
    pub proxy: SocketAddr,
    pub process: Running,
    /// `Proxy-Authorization` with the benchmark session's handle.
    pub headers: Vec<String>,
}

impl Airlock {
    /// `airlock serve` with every role of `policies`, the crash-reporting
    /// service in front of `upstream`, on the `state` backend, signing
    /// tokens with `algorithm`; and one session of the crash-tracker role,
    /// unlimited in rate.
    pub fn start(
        bin: &Path,
        dir: &Path,
        (state, algorithm): (&str, &str),
        upstream: SocketAddr,
        policies: &[(String, PathBuf)],
    ) -> anyhow::Result<Airlock> {
        let home = dir.join(format!("airlock-{state}-{algorithm}"));
        let policy_dir = home.join("policies");
        std::fs::create_dir_all(&policy_dir)?;
        let mut roles = String::new();
        for (role, component) in policies {
            std::fs::copy(component, policy_dir.join(format!("{role}.wasm")))
                .with_context(|| format!("copying {}", component.display()))?;
            roles.push_str(&format!(
                "[roles.{role}]\npolicy = \"{role}.wasm\"\nservices = [\"crash-reporting\"]\n\
                 limits = {{ requests_per_minute = 0 }}\n\n"
            ));
        }
        let token_file = home.join("admin.token");
        std::fs::write(&token_file, "perf-admin-token-0123456789abcdef0123")?;
        let (proxy, admin) = (free_port()?, free_port()?);
        let config = format!(
            "[listen]\nproxy = \"{proxy}\"\nadmin = \"{admin}\"\n\n\
             [admin]\ntoken_file = {token}\n\n[data]\ndir = {data}\n\n\
             [policies]\ndir = {policies}\nwatch = false\n\n\
             [state]\nbackend = \"{state}\"\n\n[tokens]\nalgorithm = \"{algorithm}\"\n\n\
             [services.crash-reporting]\nupstream = \"http://{upstream}\"\n\
             routes = [ {{ op = \"crashes.read\", method = \"GET\", path = \"/crashes/{{id}}\" }} ]\n\n{roles}",
            token = toml_string(&token_file),
            data = toml_string(&home.join("data")),
            policies = toml_string(&policy_dir),
        );
        let config_path = home.join("airlock.toml");
        std::fs::write(&config_path, config)?;
        let log = home.join("airlock.log");
        let mut process = Running::spawn(
            "airlock",
            Command::new(bin)
                .arg("serve")
                .arg("--config")
                .arg(&config_path)
                .env("RUST_LOG", "warn"),
            &log,
        )?;
        process.wait_listening(proxy, &log)?;
        process.wait_listening(admin, &log)?;
        let created = Command::new(bin)
            .args([
                "session",
                "create",
                "--agent",
                "perf-agent",
                "--role",
                "crash-tracker",
            ])
            .args(["--workflow", "wf-perf", "--handle-only", "--admin-url"])
            .arg(format!("http://{admin}"))
            .arg("--token-file")
            .arg(&token_file)
            .output()
            .context("airlock session create")?;
        if !created.status.success() {
            bail!(
                "creating the session failed: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        let handle = String::from_utf8_lossy(&created.stdout).trim().to_string();
        Ok(Airlock {
            proxy,
            process,
            headers: vec![format!("Proxy-Authorization: Bearer {handle}")],
        })
    }
}

fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

//! Shared setup for the end-to-end tests: builds real policy components from
//! source (once per test binary) and runs the real `airlock` binary.
#![allow(dead_code)]

pub mod bugfix;
pub mod e2e;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use airlock::policy::{Engine, EngineConfig, PolicyRequest};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn airlock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

/// Polls `done` until it holds or `within` has passed; whether it held.
/// For waiting on an event, never for asserting a time.
pub fn wait_for(mut done: impl FnMut() -> bool, within: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    done()
}

/// Run `airlock ARGS...`.
pub fn airlock(args: &[&str]) -> Output {
    Command::new(airlock_bin())
        .args(args)
        .env("CARGO_TARGET_DIR", root().join("target/wasm-policies"))
        .env("AIRLOCK_CACHE_DIR", compile_cache())
        .output()
        .expect("running airlock")
}

fn run_cargo(args: &[&str], target_dir: &Path) {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// Build every test guest in tests/guests once; returns the guests' target dir.
fn guests_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let guests = root().join("tests/guests");
        let target = guests.join("target");
        let manifest = guests.join("Cargo.toml");
        let manifest = manifest.to_str().expect("utf-8 path");
        run_cargo(
            &[
                "build",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
                manifest,
            ],
            &target,
        );
        run_cargo(
            &[
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "escape-attempts",
                "--manifest-path",
                manifest,
            ],
            &target,
        );
        target
    })
}

/// The core module of a test guest (crate name with dashes).
pub fn guest_core(name: &str) -> Vec<u8> {
    let file = guests_built()
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A test guest as a component.
pub fn guest(name: &str) -> Vec<u8> {
    if name == "escape-attempts" {
        let file = guests_built().join("wasm32-wasip2/release/escape_attempts.wasm");
        return std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    airlock::build::componentize(&guest_core(name)).expect("componentize")
}

/// Build an example policy from policies/NAME with `airlock policy build`;
/// returns the component's path (the command's last stdout line).
pub fn example_policy(name: &str) -> PathBuf {
    build_policy(&root().join("policies").join(name))
}

/// Build the policy folder `dir` (any language) with `airlock policy build`;
/// returns the component's path. Python and JavaScript builds need the tools
/// `scripts/tools` installs (`scripts/test` puts them on the PATH).
pub fn build_policy(dir: &Path) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_build_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = airlock(&["policy", "build", dir.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "policy build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    PathBuf::from(stdout.lines().last().expect("a path on the last line"))
}

pub fn engine() -> Engine {
    Engine::new(engine_config()).expect("engine")
}

/// The tests' engine settings: a small pool, and compiled components cached
/// on disk by digest, shared with the `airlock` commands the tests run (a
/// Python or JavaScript component takes seconds to compile).
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        max_concurrent: 32,
        cache_dir: Some(compile_cache()),
        ..EngineConfig::default()
    }
}

pub fn compile_cache() -> PathBuf {
    root().join("target/compiled-policies")
}

/// A request in the JSON form of `airlock policy eval`.
pub fn request(json: serde_json::Value) -> PolicyRequest {
    serde_json::from_value(json).expect("valid request")
}

pub fn get(service: &str, path: &str) -> PolicyRequest {
    request(serde_json::json!({
        "principal": {"agent": "agent-1", "role": "test", "session": "s-1", "workflow": "wf-1"},
        "action": {"service": service, "method": "GET", "path": path}
    }))
}

pub fn post(service: &str, path: &str) -> PolicyRequest {
    let mut r = get(service, path);
    r.action.method = "POST".into();
    r
}

//! Rust policies are built for `wasm32-unknown-unknown` and turned into a
//! component in-process with `wit-component`: no WASI imports at all, which
//! keeps instantiation cheap (see the README's performance section).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BuildError;

/// Shadow-stack size for Rust policies. Rust puts the stack first in linear
/// memory; a small stack keeps stack, data and early heap within the pages
/// the instance pool keeps resident, so a fresh instance takes no page faults.
pub const POLICY_STACK_BYTES: u32 = 64 * 1024;

/// Initial linear memory for Rust policies. The SDK's allocator uses it
/// before growing memory, and a fresh instance that never grows its memory
/// costs the host no `mprotect` calls.
pub const POLICY_INITIAL_MEMORY_BYTES: u32 = 1024 * 1024;

/// Build the policy crate in `dir`; returns the path of the component.
/// `target_dir` overrides cargo's target directory (the crate's own by default).
pub(super) fn build(dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    let core = cargo_build(&dir.join("Cargo.toml"), target_dir)?;
    let bytes = std::fs::read(&core).map_err(|source| BuildError::Io {
        path: core.clone(),
        source,
    })?;
    let component = componentize(&bytes)?;
    let out = core.with_extension("component.wasm");
    std::fs::write(&out, component).map_err(|source| BuildError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

fn cargo_build(manifest: &Path, target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--message-format=json-render-diagnostics",
    ]);
    if let Some(dir) = target_dir {
        command.arg("--target-dir").arg(dir);
    }
    let mut child = command
        .arg("--manifest-path")
        .arg(manifest)
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            format!(
                "-C link-arg=-zstack-size={POLICY_STACK_BYTES} \
                 -C link-arg=--initial-memory={POLICY_INITIAL_MEMORY_BYTES}"
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BuildError::spawn("cargo", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BuildError::spawn("cargo", std::io::Error::other("no stdout")))?;
    let manifest_abs = manifest.canonicalize().unwrap_or_else(|_| manifest.to_path_buf());
    let mut artifact = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same_crate = msg["manifest_path"]
            .as_str()
            .map(Path::new)
            .is_some_and(|p| p == manifest_abs);
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if same_crate
            && is_cdylib
            && let Some(files) = msg["filenames"].as_array()
        {
            artifact = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from);
        }
    }
    let status = child.wait().map_err(|e| BuildError::spawn("cargo", e))?;
    if !status.success() {
        return Err(BuildError::Cargo(status.code().unwrap_or(-1)));
    }
    artifact.ok_or_else(|| BuildError::NoArtifact(manifest.to_path_buf()))
}

/// Wrap a core module built with wit-bindgen into a component. The module
/// carries its world in a custom section; no adapter is needed because a
/// `wasm32-unknown-unknown` module imports nothing but the world.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, BuildError> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| BuildError::Componentize(format!("{e:#}")))
}

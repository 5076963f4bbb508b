//! JavaScript policies, built with ComponentizeJS: the policy's modules and
//! the SDK are snapshotted into a SpiderMonkey-based component. Every WASI
//! feature is turned off, so the component imports only the policy world.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::sources::{self, BuildFolder};
use super::{BuildError, embedded};

const TOOL: &str = "componentize-js";

/// ComponentizeJS features a policy has no use for; disabling them all
/// leaves no WASI import in the component.
const DISABLED_FEATURES: [&str; 5] = ["stdio", "random", "clocks", "http", "fetch-event"];

pub(super) fn build(dir: &Path, out: &Path) -> Result<PathBuf, BuildError> {
    let tool = sources::find_tool(
        "AIRLOCK_COMPONENTIZE_JS",
        TOOL,
        "install it with `npm install -g @bytecodealliance/componentize-js@0.23.0` (or set AIRLOCK_COMPONENTIZE_JS to its path)",
    )?;
    let mut folder = BuildFolder::new(&tool)?;
    // ComponentizeJS resolves a bare specifier as a path from the folder it
    // runs in: the SDK is the file `airlock-policy` there.
    folder.write("airlock-policy", embedded::JAVASCRIPT.as_bytes())?;
    folder.copy_sources(dir, "", is_policy_module)?;
    folder.build(TOOL, out, |root, built| {
        let mut command = Command::new(&tool);
        command
            .current_dir(root)
            .args(["--wit", "wit", "-n", "policy", "-d"])
            .args(DISABLED_FEATURES)
            .arg("-o")
            .arg(built)
            .arg("policy.js");
        command
    })
}

/// The policy's own modules; its `node:test` files stay out of the component.
fn is_policy_module(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    (name.ends_with(".js") || name.ends_with(".mjs")) && !name.contains(".test.")
}

//! Python policies, built with componentize-py: the policy's modules and the
//! SDK are snapshotted together with CPython into one component. It imports
//! WASI, which the engine links with nothing granted.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::sources::{self, BuildFolder};
use super::{BuildError, embedded};

const TOOL: &str = "componentize-py";

pub(super) fn build(dir: &Path, out: &Path) -> Result<PathBuf, BuildError> {
    let tool = sources::find_tool(
        "AIRLOCK_COMPONENTIZE_PY",
        TOOL,
        "install it with `pip install componentize-py==0.25.1` (or set AIRLOCK_COMPONENTIZE_PY to its path)",
    )?;
    let mut folder = BuildFolder::new(&tool)?;
    for (path, text) in embedded::PYTHON {
        folder.write(&format!("sdk/{path}"), text.as_bytes())?;
    }
    folder.copy_sources(dir, "src", is_policy_module)?;
    folder.build(TOOL, out, |root, built| {
        let mut command = Command::new(&tool);
        command
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "policy", "componentize", "-p"])
            .arg(root.join("src"))
            .arg("-p")
            .arg(root.join("sdk"))
            .arg("policy")
            .arg("-o")
            .arg(built);
        command
    })
}

/// The policy's own modules; its pytest files stay out of the component.
fn is_policy_module(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.extension().is_some_and(|e| e == "py")
        && !name.starts_with("test_")
        && !name.ends_with("_test.py")
        && name != "conftest.py"
}

//! Embeds the Python and JavaScript policy SDKs (`sdk/python`, `sdk/js`) in
//! the binary, so `airlock policy build` needs only the language's own
//! componentize tool, not a checkout of this repository.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let python = sdk.join("python/airlock_policy");
    let js = sdk.join("js/airlock-policy.js");
    println!("cargo:rerun-if-changed={}", python.display());
    println!("cargo:rerun-if-changed={}", js.display());

    let mut files = Vec::new();
    collect_python(&python, &mut files);
    files.sort();
    let mut out = String::from("/// `(path under the Python path, contents)` of the Python SDK.\n");
    out.push_str("pub const PYTHON: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(python.parent().expect("sdk/python"))
            .expect("under sdk/python");
        writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            relative.display().to_string(),
            file.display().to_string()
        )
        .expect("write to string");
    }
    out.push_str("];\n\n/// The JavaScript SDK: one ES module.\n");
    writeln!(
        out,
        "pub const JAVASCRIPT: &str = include_str!({:?});",
        js.display().to_string()
    )
    .expect("write to string");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("sdk_files.rs");
    std::fs::write(dest, out).expect("writing sdk_files.rs");
}

/// The SDK's modules, without caches and without its native test harness
/// (which a component never imports).
fn collect_python(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("{} is missing", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "__pycache__" {
                collect_python(&path, files);
            }
        } else if name.ends_with(".py") && name != "testing.py" {
            files.push(path);
        }
    }
}

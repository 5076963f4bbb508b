//! Turning a policy's source folder into a component the engine loads.
//!
//! The folder's language is recognised by its entry file: `Cargo.toml`
//! (Rust, built here with cargo and `wit-component`), `policy.py` (Python,
//! built with componentize-py) or `policy.js` (JavaScript, built with
//! ComponentizeJS). The policy world's WIT and the Python and JavaScript SDKs
//! are embedded in this binary, so a Python or JavaScript author needs only
//! their language's componentize tool.

mod js;
mod python;
mod rust;
mod sources;

use std::path::{Path, PathBuf};

pub use rust::{POLICY_INITIAL_MEMORY_BYTES, POLICY_STACK_BYTES, componentize};

/// The languages `airlock policy build` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    JavaScript,
}

impl Language {
    const ALL: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

    /// The file that marks a policy folder as written in this language.
    pub fn entry_file(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::Python => "policy.py",
            Language::JavaScript => "policy.js",
        }
    }

    /// The language of the policy in `dir`, from its entry file.
    pub fn detect(dir: &Path) -> Result<Language, BuildError> {
        if !dir.is_dir() {
            return Err(BuildError::NotAFolder(dir.to_path_buf()));
        }
        let found: Vec<Language> = Language::ALL
            .into_iter()
            .filter(|l| dir.join(l.entry_file()).is_file())
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(BuildError::UnknownLanguage(dir.to_path_buf())),
            many => Err(BuildError::Ambiguous {
                dir: dir.to_path_buf(),
                entries: many.iter().map(|l| l.entry_file()).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}: not a folder; `airlock policy build` takes a policy's source folder")]
    NotAFolder(PathBuf),
    #[error("{0}: no policy here; expected Cargo.toml (Rust), policy.py (Python) or policy.js (JavaScript)")]
    UnknownLanguage(PathBuf),
    #[error("{dir}: more than one language's entry file ({entries}); keep one per folder")]
    Ambiguous { dir: PathBuf, entries: String },
    #[error("{tool} not found; {install}")]
    ToolMissing {
        tool: &'static str,
        install: &'static str,
    },
    #[error("running {tool}: {source}")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("cargo build failed (exit {0}); its messages are above")]
    Cargo(i32),
    #[error("{tool} failed (exit {code}); its messages are above")]
    Tool { tool: &'static str, code: i32 },
    #[error("cargo built no cdylib .wasm for {0}; is `crate-type = [\"cdylib\"]` set?")]
    NoArtifact(PathBuf),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("turning the core module into a component: {0}")]
    Componentize(String),
}

impl BuildError {
    fn spawn(tool: &'static str, source: std::io::Error) -> BuildError {
        BuildError::Spawn { tool, source }
    }
}

/// Build the policy in `dir`; returns the path of the component.
///
/// Rust components go where cargo puts its output (`target_dir` overrides
/// cargo's target directory). Python and JavaScript components go to
/// `DIR/target/policy.wasm`, or under `target_dir` when given, and are
/// rebuilt only when their sources, the SDK or the tool changed.
pub fn build_policy(dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    let out = || match target_dir {
        None => dir.join("target").join("policy.wasm"),
        Some(target) => target.join(sources::folder_key(dir)).join("policy.wasm"),
    };
    match Language::detect(dir)? {
        Language::Rust => rust::build(dir, target_dir),
        Language::Python => python::build(dir, &out()),
        Language::JavaScript => js::build(dir, &out()),
    }
}

/// The policy world, for tools that generate bindings from it.
pub const POLICY_WIT: &str = include_str!("../../../wit/policy.wit");

/// The SDK sources embedded by `build.rs`.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in files {
            std::fs::write(dir.path().join(file), "").expect("write");
        }
        dir
    }

    #[test]
    fn the_entry_file_names_the_language() {
        for (entry, language) in [
            ("Cargo.toml", Language::Rust),
            ("policy.py", Language::Python),
            ("policy.js", Language::JavaScript),
        ] {
            let dir = folder(&[entry, "README.md", "helpers.py"]);
            assert_eq!(Language::detect(dir.path()).expect("detected"), language);
        }
    }

    #[test]
    fn no_entry_file_or_two_of_them_is_an_error() {
        let none = folder(&["app.py", "index.js"]);
        let e = Language::detect(none.path())
            .expect_err("no entry file")
            .to_string();
        assert!(
            e.contains("expected Cargo.toml (Rust), policy.py (Python) or policy.js"),
            "{e}"
        );
        let two = folder(&["policy.py", "policy.js"]);
        let e = Language::detect(two.path())
            .expect_err("two entry files")
            .to_string();
        assert!(
            e.contains("policy.py, policy.js") && e.contains("keep one per folder"),
            "{e}"
        );
        let file = none.path().join("app.py");
        let e = Language::detect(&file).expect_err("a file").to_string();
        assert!(e.contains("not a folder"), "{e}");
    }
}

//! What Python and JavaScript builds share: a private build folder holding
//! the WIT, the SDK and a copy of the policy's sources; finding the
//! language's tool; and skipping a build whose inputs have not changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

use super::{BuildError, POLICY_WIT};

/// A build folder: `wit/policy.wit` plus whatever the language adds. Removed
/// when dropped, whether or not the build succeeded.
pub(super) struct BuildFolder {
    dir: tempfile::TempDir,
    /// Everything the build reads, for [`BuildFolder::fingerprint`].
    inputs: Sha256,
}

impl BuildFolder {
    pub fn new(tool: &Path) -> Result<BuildFolder, BuildError> {
        let dir = tempfile::Builder::new()
            .prefix("airlock-build-")
            .tempdir()
            .map_err(|source| BuildError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let mut folder = BuildFolder {
            dir,
            inputs: Sha256::new(),
        };
        folder.inputs.update(tool.as_os_str().as_encoded_bytes());
        folder.write("wit/policy.wit", POLICY_WIT.as_bytes())?;
        Ok(folder)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `contents` at `relative` inside the build folder.
    pub fn write(&mut self, relative: &str, contents: &[u8]) -> Result<(), BuildError> {
        let path = self.dir.path().join(relative);
        let io = |source| BuildError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, contents).map_err(io)?;
        // Length-prefixed, so that no two different sets of files hash alike.
        for part in [relative.as_bytes(), contents] {
            self.inputs.update((part.len() as u64).to_le_bytes());
            self.inputs.update(part);
        }
        Ok(())
    }

    /// Copy the files of `source` that `keep` accepts (by path relative to
    /// `source`) to `into` inside the build folder. Build output, caches,
    /// dependencies and hidden folders are never copied.
    pub fn copy_sources(
        &mut self,
        source: &Path,
        into: &str,
        keep: impl Fn(&Path) -> bool,
    ) -> Result<(), BuildError> {
        let mut files = Vec::new();
        collect(source, source, &keep, &mut files)?;
        files.sort();
        for relative in files {
            let path = source.join(&relative);
            let contents = std::fs::read(&path).map_err(|source| BuildError::Io { path, source })?;
            let name = Path::new(into).join(&relative);
            self.write(&name.to_string_lossy(), &contents)?;
        }
        Ok(())
    }

    /// A digest of everything written into the folder and the tool's path.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.inputs.clone().finalize())
    }

    /// Run the command `tool_command(folder, built)` makes, which must write
    /// the component to `built`, and install it at `out`; or, when `out` was
    /// built from the same inputs, keep it.
    pub fn build(
        &self,
        tool: &'static str,
        out: &Path,
        tool_command: impl FnOnce(&Path, &Path) -> Command,
    ) -> Result<PathBuf, BuildError> {
        let fingerprint = self.fingerprint();
        if !up_to_date(out, &fingerprint) {
            let built = self.path().join("policy.wasm");
            run(tool, &mut tool_command(self.path(), &built))?;
            install(&built, out, &fingerprint)?;
        }
        Ok(out.to_path_buf())
    }
}

/// Folders never taken into a build.
const SKIPPED_FOLDERS: &[&str] = &["target", "node_modules", "__pycache__"];

fn collect(
    root: &Path,
    dir: &Path,
    keep: &impl Fn(&Path) -> bool,
    files: &mut Vec<PathBuf>,
) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        // `file_type` does not follow symbolic links: a link is not copied,
        // so a build never reads outside the policy's folder.
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIPPED_FOLDERS.contains(&name.as_ref()) {
                collect(root, &path, keep, files)?;
            }
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
            && keep(relative)
        {
            files.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// Whether `out` was built from inputs with this fingerprint.
fn up_to_date(out: &Path, fingerprint: &str) -> bool {
    out.is_file() && std::fs::read_to_string(stamp(out)).is_ok_and(|s| s.trim() == fingerprint)
}

/// Move the freshly built `built` to `out` and record its fingerprint.
fn install(built: &Path, out: &Path, fingerprint: &str) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    // Copy then rename, so `out` is never a half-written component (the
    // build folder may be on another file system).
    let partial = out.with_extension("wasm.partial");
    std::fs::copy(built, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    std::fs::write(stamp(out), fingerprint).map_err(io(&stamp(out)))
}

fn stamp(out: &Path) -> PathBuf {
    out.with_extension("wasm.inputs")
}

/// A folder name for `dir`'s output under a shared target folder: readable
/// (`pr-creator-python`) and unique (a digest of the full path).
pub(super) fn folder_key(dir: &Path) -> String {
    let full = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let readable: Vec<String> = full
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let digest = hex::encode(Sha256::digest(full.as_os_str().as_encoded_bytes()));
    let mut name: Vec<&str> = readable.iter().rev().map(String::as_str).collect();
    name.push(&digest[..12]);
    name.join("-")
}

/// The language tool: `$env_var` if set, otherwise `name` on the `PATH`.
pub(super) fn find_tool(
    env_var: &str,
    name: &'static str,
    install: &'static str,
) -> Result<PathBuf, BuildError> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or(BuildError::ToolMissing { tool: name, install })
}

/// Run a language tool. Its output goes to stderr, so that the component's
/// path stays the only thing `airlock policy build` prints on stdout.
fn run(tool: &'static str, command: &mut Command) -> Result<(), BuildError> {
    let status = command
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .status()
        .map_err(|source| BuildError::Spawn { tool, source })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Tool {
            tool,
            code: status.code().unwrap_or(-1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, contents: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }

    fn fingerprint_of(source: &Path) -> (String, Vec<String>) {
        let mut folder = BuildFolder::new(Path::new("/usr/bin/tool")).expect("build folder");
        folder
            .copy_sources(source, "src", |p| p.extension().is_some_and(|e| e == "py"))
            .expect("copy");
        let mut copied = Vec::new();
        let mut files = Vec::new();
        collect(
            &folder.path().join("src"),
            &folder.path().join("src"),
            &|_| true,
            &mut files,
        )
        .expect("list");
        for f in files {
            copied.push(f.to_string_lossy().into_owned());
        }
        copied.sort();
        (folder.fingerprint(), copied)
    }

    #[test]
    fn copies_sources_only_and_fingerprints_them() {
        let source = tempfile::tempdir().expect("temp dir");
        let root = source.path();
        write(root, "policy.py", "A");
        write(root, "rules/paths.py", "B");
        write(root, "notes.txt", "not python");
        write(root, "target/old.py", "build output");
        write(root, "__pycache__/policy.py", "cache");
        write(root, ".venv/site.py", "hidden");
        std::os::unix::fs::symlink("/etc/passwd", root.join("linked.py")).expect("symlink");

        let (first, copied) = fingerprint_of(root);
        assert_eq!(copied, ["policy.py", "rules/paths.py"]);
        assert_eq!(fingerprint_of(root).0, first, "same inputs, same fingerprint");
        write(root, "rules/paths.py", "C");
        assert_ne!(fingerprint_of(root).0, first, "a changed source changes it");
    }

    #[test]
    fn a_build_is_reused_only_for_the_same_fingerprint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let built = dir.path().join("built.wasm");
        std::fs::write(&built, b"component").expect("write");
        let out = dir.path().join("out/policy.wasm");
        assert!(!up_to_date(&out, "abc"));
        install(&built, &out, "abc").expect("install");
        assert!(up_to_date(&out, "abc"));
        assert!(!up_to_date(&out, "abd"));
    }
}

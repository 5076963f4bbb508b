//! Parse a unified diff (`git diff` form) into files and line counts.
//!
//! Counting follows the hunk headers (`@@ -a,b +c,d @@`), so a removed line
//! that itself starts with `--- ` or `+++ ` is counted as content, not taken
//! for a file header. Anything that does not parse is an error: a policy must
//! deny a change it cannot read.
//!
//! Paths are read the way `git apply` reads them, so that a policy checks the
//! files git would really touch: the first path component is stripped from
//! `---`/`+++` names whatever it is (`x/auth/login.rs` is `auth/login.rs`),
//! `copy to` creates a file, and names that disagree between the
//! `diff --git` header and the `---`/`+++` lines are an error, as are quoted
//! (C-escaped) names.

use std::fmt;

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Added,
    Deleted,
    Modified,
    Renamed,
    /// `copy from`/`copy to`: a new file with the content of another.
    Copied,
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path before the change (`None` for a new file).
    pub old_path: Option<String>,
    /// Path after the change (`None` for a deleted file).
    pub new_path: Option<String>,
    pub status: FileStatus,
    pub added: u32,
    pub removed: u32,
    /// True for `Binary files ... differ` entries, whose lines are not counted.
    pub binary: bool,
}

impl FileChange {
    /// The path after the change, or before it for a deletion.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }
    /// Every path this change touches: both sides of a rename.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.old_path
            .iter()
            .chain(self.new_path.iter())
            .map(String::as_str)
    }
    /// Whether the change modifies, deletes or moves a file that existed
    /// before (a copy leaves its source as it was).
    pub fn touches_existing(&self) -> bool {
        !matches!(self.status, FileStatus::Added | FileStatus::Copied)
    }
}

/// A parsed diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub files: Vec<FileChange>,
}

impl Diff {
    pub fn parse(text: &str) -> Result<Diff, DiffError> {
        Parser::default().parse(text)
    }
    /// Added plus removed lines over all files.
    pub fn changed_lines(&self) -> u64 {
        self.files
            .iter()
            .map(|f| u64::from(f.added) + u64::from(f.removed))
            .sum()
    }
}

/// Why a diff could not be read, with the 1-based line where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "diff line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DiffError {}

#[derive(Default)]
struct Parser {
    files: Vec<FileChange>,
    current: Option<FileChange>,
    /// Names from the current `diff --git a/X b/Y` header, if any.
    header: Option<(String, String)>,
    copied: bool,
}

/// A name from a `---`/`+++` line as `git apply -p1` reads it: `None` for
/// `/dev/null`, the name without its first component otherwise.
fn patch_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.split('\t').next().unwrap_or(raw).trim_end();
    if name == "/dev/null" {
        return Ok(None);
    }
    if name.starts_with('"') {
        return Err("quoted file names are not supported");
    }
    match name.split_once('/') {
        Some((_, rest)) if !rest.is_empty() => Ok(Some(rest.to_string())),
        _ => Err("file name has no leading directory to strip (expected a/PATH or b/PATH)"),
    }
}

/// `a/X b/Y` from a `diff --git` line. Ambiguous when a name contains
/// ` b/`; git then relies on the other lines, and so do we (both must agree).
fn header_names(rest: &str) -> Result<(String, String), &'static str> {
    if rest.starts_with('"') || rest.ends_with('"') {
        return Err("quoted file names are not supported");
    }
    let (a, b) = rest
        .split_once(" b/")
        .ok_or("expected `diff --git a/PATH b/PATH`")?;
    let a = a
        .strip_prefix("a/")
        .ok_or("expected `diff --git a/PATH b/PATH`")?;
    if a.is_empty() || b.is_empty() {
        return Err("empty file name in `diff --git` header");
    }
    Ok((a.to_string(), b.to_string()))
}

fn parse_range(range: &str) -> Option<u32> {
    // "12,5" -> 5 lines, "12" -> 1 line.
    match range.split_once(',') {
        Some((_, count)) => count.parse().ok(),
        None => range.parse::<u32>().ok().map(|_| 1),
    }
}

impl Parser {
    fn new_file(&mut self) -> &mut FileChange {
        self.finish();
        self.copied = false;
        self.current.insert(FileChange {
            old_path: None,
            new_path: None,
            status: FileStatus::Modified,
            added: 0,
            removed: 0,
            binary: false,
        })
    }

    fn finish(&mut self) {
        if let Some(mut file) = self.current.take() {
            file.status = match (&file.old_path, &file.new_path) {
                _ if self.copied => FileStatus::Copied,
                (None, Some(_)) => FileStatus::Added,
                (Some(_), None) => FileStatus::Deleted,
                (Some(a), Some(b)) if a != b => FileStatus::Renamed,
                _ => FileStatus::Modified,
            };
            self.files.push(file);
        }
    }

    fn parse(mut self, text: &str) -> Result<Diff, DiffError> {
        let lines: Vec<&str> = text.lines().collect();
        let err = |line: usize, message: &str| DiffError {
            line: line + 1,
            message: message.into(),
        };
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if let Some(rest) = line.strip_prefix("diff --git ") {
                let (a, b) = header_names(rest).map_err(|m| err(i, m))?;
                let file = self.new_file();
                file.old_path = Some(a.clone());
                file.new_path = Some(b.clone());
                self.header = Some((a, b));
            } else if line.starts_with("new file mode") {
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "file mode outside a file"))?
                    .old_path = None;
            } else if line.starts_with("deleted file mode") {
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "file mode outside a file"))?
                    .new_path = None;
            } else if let Some(p) = line.strip_prefix("copy from ") {
                self.copied = true;
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "copy outside a file"))?
                    .old_path = Some(p.into());
            } else if let Some(p) = line.strip_prefix("copy to ") {
                self.copied = true;
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "copy outside a file"))?
                    .new_path = Some(p.into());
            } else if let Some(p) = line.strip_prefix("rename from ") {
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "rename outside a file"))?
                    .old_path = Some(p.into());
            } else if let Some(p) = line.strip_prefix("rename to ") {
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "rename outside a file"))?
                    .new_path = Some(p.into());
            } else if line.starts_with("Binary files ") {
                self.current
                    .as_mut()
                    .ok_or_else(|| err(i, "binary marker outside a file"))?
                    .binary = true;
            } else if let Some(old) = line.strip_prefix("--- ") {
                let new = lines
                    .get(i + 1)
                    .and_then(|l| l.strip_prefix("+++ "))
                    .ok_or_else(|| err(i + 1, "expected a `+++ ` line after `--- `"))?;
                let old = patch_name(old).map_err(|m| err(i, m))?;
                let new = patch_name(new).map_err(|m| err(i + 1, m))?;
                // A plain unified diff without `diff --git` starts a file here.
                let starts_file = self.current.as_ref().is_none_or(|f| f.added + f.removed > 0);
                if starts_file {
                    self.header = None;
                    self.new_file();
                }
                // git takes the names from these lines; they must name the
                // files the header named, or a reviewer and git disagree.
                if let Some((a, b)) = &self.header {
                    let agrees =
                        |name: &Option<String>, expected: &str| name.as_deref().is_none_or(|n| n == expected);
                    if !agrees(&old, a) || !agrees(&new, b) {
                        return Err(err(i, "`---`/`+++` names disagree with the `diff --git` header"));
                    }
                }
                let file = self.current.as_mut().ok_or_else(|| err(i, "no file"))?;
                file.old_path = old;
                file.new_path = new;
                i += 1;
            } else if let Some(header) = line.strip_prefix("@@ ") {
                let file = self
                    .current
                    .as_mut()
                    .ok_or_else(|| err(i, "hunk before any file header"))?;
                let mut parts = header.split_whitespace();
                let old = parts
                    .next()
                    .and_then(|r| r.strip_prefix('-'))
                    .and_then(parse_range);
                let new = parts
                    .next()
                    .and_then(|r| r.strip_prefix('+'))
                    .and_then(parse_range);
                let (Some(mut old_left), Some(mut new_left)) = (old, new) else {
                    return Err(err(i, "malformed hunk header"));
                };
                while old_left > 0 || new_left > 0 {
                    i += 1;
                    let Some(body) = lines.get(i) else {
                        return Err(err(i, "diff ends inside a hunk"));
                    };
                    match body.as_bytes().first() {
                        Some(b'+') if new_left > 0 => {
                            file.added += 1;
                            new_left -= 1;
                        }
                        Some(b'-') if old_left > 0 => {
                            file.removed += 1;
                            old_left -= 1;
                        }
                        // An empty line is a context line whose space was trimmed.
                        Some(b' ') | None if old_left > 0 && new_left > 0 => {
                            old_left -= 1;
                            new_left -= 1;
                        }
                        Some(b'\\') => {}
                        _ => return Err(err(i, "hunk line does not fit the hunk header")),
                    }
                }
            } else if line.starts_with('\\')
                || line.starts_with("index ")
                || line.starts_with("similarity index")
                || line.starts_with("dissimilarity index")
                || line.starts_with("old mode")
                || line.starts_with("new mode")
                || line.trim().is_empty()
            {
                // Metadata that changes no counts.
            } else if self.current.is_none() {
                // Text before the first file (a commit message, say) is allowed.
            } else {
                return Err(err(i, "unexpected line between hunks"));
            }
            i += 1;
        }
        self.finish();
        if self.files.is_empty() && !text.trim().is_empty() {
            return Err(err(0, "no file headers found"));
        }
        Ok(Diff { files: self.files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODIFY: &str = "diff --git a/src/lib.rs b/src/lib.rs
index 83db48f..bf269f4 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@
 fn a() {}
-fn b() {}
+fn b() { 1 }
+--- not a header
 fn c() {}
";

    #[test]
    fn counts_modified_lines_by_hunk() {
        let d = Diff::parse(MODIFY).expect("parses");
        assert_eq!(d.files.len(), 1);
        let f = &d.files[0];
        assert_eq!(
            (f.path(), f.status, f.added, f.removed),
            ("src/lib.rs", FileStatus::Modified, 2, 1)
        );
        assert_eq!(d.changed_lines(), 3);
    }

    #[test]
    fn new_deleted_and_renamed_files() {
        let text = "diff --git a/tests/new_test.rs b/tests/new_test.rs
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/tests/new_test.rs
@@ -0,0 +1,2 @@
+#[test]
+fn t() {}
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/auth/x.rs b/src/x.rs
similarity index 100%
rename from auth/x.rs
rename to src/x.rs
";
        let d = Diff::parse(text).expect("parses");
        let summary: Vec<_> = d
            .files
            .iter()
            .map(|f| (f.path(), f.status, f.added, f.removed))
            .collect();
        assert_eq!(
            summary,
            [
                ("tests/new_test.rs", FileStatus::Added, 2, 0),
                ("old.rs", FileStatus::Deleted, 0, 1),
                ("src/x.rs", FileStatus::Renamed, 0, 0),
            ]
        );
        assert_eq!(d.files[2].paths().collect::<Vec<_>>(), ["auth/x.rs", "src/x.rs"]);
    }

    #[test]
    fn plain_unified_diff_without_git_header() {
        let text = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1,2 @@\n x\n+z\n";
        let d = Diff::parse(text).expect("parses");
        assert_eq!(d.files.len(), 2);
        assert_eq!(d.changed_lines(), 3);
    }

    #[test]
    fn paths_are_read_as_git_apply_reads_them() {
        // git strips any first component, not only `a/` and `b/`.
        let text = "--- x/auth/login.rs\n+++ y/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n";
        assert_eq!(
            Diff::parse(text).expect("parses").files[0].path(),
            "auth/login.rs"
        );
        // A header naming one file and ---/+++ naming another is refused.
        let text = "diff --git a/src/lib.rs b/src/lib.rs\n--- x/auth/login.rs\n+++ b/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(Diff::parse(text).unwrap_err().message.contains("disagree"));
        // `copy to` creates a file; its source is a path it touches too.
        let text = "diff --git a/auth/key.rs b/src/key.rs\nsimilarity index 100%\ncopy from auth/key.rs\ncopy to src/key.rs\n";
        let f = &Diff::parse(text).expect("parses").files[0];
        assert_eq!(f.status, FileStatus::Copied);
        assert_eq!(f.paths().collect::<Vec<_>>(), ["auth/key.rs", "src/key.rs"]);
        assert!(!f.touches_existing());
        // Quoted names are refused rather than misread.
        let text = "diff --git \"a/auth/l\\303\\266.rs\" \"b/auth/l\\303\\266.rs\"\n";
        assert!(Diff::parse(text).unwrap_err().message.contains("quoted"));
        let text = "--- \"a/auth/x\"\n+++ \"b/auth/x\"\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(Diff::parse(text).unwrap_err().message.contains("quoted"));
    }

    #[test]
    fn malformed_diffs_are_errors() {
        assert!(Diff::parse("@@ -1 +1 @@\n-x\n+y\n").is_err());
        let short = "--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n x\n";
        assert_eq!(Diff::parse(short).unwrap_err().message, "diff ends inside a hunk");
        assert!(Diff::parse("just some prose").is_err());
        assert!(Diff::parse("--- a/a\n@@ -1 +1 @@\n").is_err());
    }
}

//! The request conversion Cedar and Rego both get: a [`PolicyRequest`] into
//! the facts their rules (host/perf/rules/) decide on.
//!
//! Cedar has no string parsing, so whatever a policy reads out of a body
//! (JSON fields, the lines of a comment, the files of a diff) is extracted
//! here, in Rust, the way the Wasm policy reads it (the SDK's strict JSON
//! parser and diff parser, the policy's own path rules). Rego could do some
//! of it itself, but it gets the very same facts, so that the two engines
//! are compared on the same work. The rules keep every decision: the lists
//! of services, operations, methods, commands, directories and limits are
//! in the rule files, not here. The conversion is timed with each decision.

use std::collections::BTreeSet;

use airlock::policy::PolicyRequest;
use airlock_sdk::diff::{Diff, FileChange};
use airlock_sdk::json::parse_strict;
use airlock_sdk::paths::{glob_match, normalize};
use serde_json::Value;

/// A value handed to a rule engine: Cedar's context or Rego's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Str(String),
    Long(i64),
    Bool(bool),
    Set(Vec<Fact>),
    Record(Vec<(String, Fact)>),
}

impl Fact {
    fn str(s: impl Into<String>) -> Fact {
        Fact::Str(s.into())
    }

    fn set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Fact {
        Fact::Set(items.into_iter().map(|s| Fact::Str(s.into())).collect())
    }

    fn record<const N: usize>(fields: [(&str, Fact); N]) -> Fact {
        Fact::Record(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// The facts of one request for the policy's rules: always a record, and
/// every field always present (an absent attribute is an error in Cedar,
/// and an erroring `forbid` is skipped, not applied).
pub type Extract = fn(&PolicyRequest) -> Fact;

/// The conversion for `policy`, `None` for a policy with no Cedar or Rego
/// rules.
pub fn extractor(policy: &str) -> Option<Extract> {
    Some(match policy {
        "crash-tracker" => crash_tracker,
        "analytics-agent" => analytics_agent,
        "code-reviewer" => code_reviewer,
        "pr-creator" => pr_creator,
        "github-mcp" => github_mcp,
        _ => return None,
    })
}

fn method(request: &PolicyRequest) -> (&'static str, Fact) {
    ("method", Fact::str(&request.action.method))
}

fn crash_tracker(request: &PolicyRequest) -> Fact {
    Fact::record([method(request)])
}

fn analytics_agent(request: &PolicyRequest) -> Fact {
    let usage = &request.usage;
    Fact::record([
        method(request),
        ("requests_in_window", Fact::Long(usage.requests_in_window.into())),
        ("window_seconds", Fact::Long(usage.window_seconds.into())),
        ("body", Fact::str(json_kind(body_json(request).as_ref()))),
    ])
}

fn code_reviewer(request: &PolicyRequest) -> Fact {
    let body = body_json(request);
    let text = body.as_ref().and_then(|b| b.get("body")).and_then(Value::as_str);
    Fact::record([
        method(request),
        (
            "comment",
            Fact::record([
                ("text", Fact::Bool(text.is_some())),
                ("blank", Fact::Bool(text.is_none_or(|t| t.trim().is_empty()))),
                ("heads", Fact::set(text.map(line_heads).unwrap_or_default())),
            ]),
        ),
    ])
}

fn pr_creator(request: &PolicyRequest) -> Fact {
    let body = body_json(request);
    let object = body.as_ref().and_then(Value::as_object);
    let keys = object.into_iter().flat_map(|o| o.keys().cloned());
    let nonblank = object.into_iter().flat_map(|o| {
        o.iter()
            .filter(|(_, v)| v.as_str().is_some_and(|s| !s.trim().is_empty()))
            .map(|(k, _)| k.clone())
    });
    let string = |field| object.and_then(|o| o.get(field)).and_then(Value::as_str);
    let branch_name = string("name").map(str::to_lowercase).unwrap_or_default();
    let diff = string("diff")
        .filter(|d| !d.trim().is_empty())
        .map_or_else(DiffFacts::default, DiffFacts::of);
    Fact::record([
        method(request),
        ("body_keys", Fact::set(keys)),
        ("nonblank", Fact::set(nonblank)),
        ("branch_name", Fact::Str(branch_name)),
        ("diff", diff.into_fact()),
    ])
}

fn github_mcp(request: &PolicyRequest) -> Fact {
    let call = request.action.mcp.as_ref();
    let args = call
        .and_then(|c| parse_strict(c.arguments.as_bytes()).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let path = args.get("path").and_then(Value::as_str);
    let segments = path
        .map(|p| p.split('/').collect::<BTreeSet<_>>())
        .unwrap_or_default();
    let strings = args
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), Fact::str(v.as_str()?))))
        .collect();
    Fact::record([
        method(request),
        ("mcp", Fact::Bool(call.is_some())),
        ("mcp_method", Fact::str(call.map_or("", |c| c.method.as_str()))),
        (
            "tool",
            Fact::str(call.and_then(|c| c.name.as_deref()).unwrap_or("")),
        ),
        ("args", Fact::Record(strings)),
        ("path_segments", Fact::set(segments)),
        ("approved", Fact::Bool(request.approval.is_some())),
    ])
}

/// The body as the SDK's `Action::json` reads it: `None` when truncated,
/// empty, not JSON, or with a duplicate key.
fn body_json(request: &PolicyRequest) -> Option<Value> {
    let action = &request.action;
    if action.body_truncated || action.body.is_empty() {
        return None;
    }
    parse_strict(&action.body).ok()
}

fn json_kind(body: Option<&Value>) -> &'static str {
    match body {
        Some(Value::Object(_)) => "object",
        Some(_) => "other",
        None => "invalid",
    }
}

/// The first word and the first two words of every line, lower-cased and
/// whitespace-collapsed: a line "is" a command (`/merge`, `bors r+`) when
/// it is the command or starts with it and a space, i.e. when one of its
/// heads equals it. Commands are one or two words long.
fn line_heads(text: &str) -> BTreeSet<String> {
    let mut heads = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().map(str::to_lowercase);
        if let Some(first) = words.next() {
            if let Some(second) = words.next() {
                heads.insert(format!("{first} {second}"));
            }
            heads.insert(first);
        }
    }
    heads
}

/// What pr-creator's rules need of a diff, read as the policy reads it.
#[derive(Default)]
struct DiffFacts {
    /// Parsed, and its file names are the ones `git apply` would use.
    readable: bool,
    files: usize,
    changed_lines: u64,
    /// The first directory of every path touched (both sides of a rename),
    /// normalised and case-folded.
    top_dirs: BTreeSet<String>,
    /// A path that does not normalise, or has quotes or control characters.
    bad_path: bool,
    /// An existing test file is modified, deleted or renamed.
    existing_test: bool,
    binary: bool,
}

impl DiffFacts {
    fn of(text: &str) -> DiffFacts {
        let Ok(diff) = Diff::parse(text) else {
            return DiffFacts::default();
        };
        let mut facts = DiffFacts {
            readable: git_names_agree(text, &diff),
            files: diff.files.len(),
            changed_lines: diff.changed_lines(),
            ..DiffFacts::default()
        };
        for file in &diff.files {
            facts.binary |= file.binary;
            for path in file.paths() {
                match path_key(path) {
                    Some(key) => {
                        facts.existing_test |= file.touches_existing() && is_test(&key);
                        let top = key.split('/').next().unwrap_or_default();
                        facts.top_dirs.insert(top.to_string());
                    }
                    None => facts.bad_path = true,
                }
            }
        }
        facts
    }

    fn into_fact(self) -> Fact {
        Fact::record([
            ("readable", Fact::Bool(self.readable)),
            ("files", Fact::Long(i64::try_from(self.files).unwrap_or(i64::MAX))),
            (
                "changed_lines",
                Fact::Long(i64::try_from(self.changed_lines).unwrap_or(i64::MAX)),
            ),
            ("top_dirs", Fact::set(self.top_dirs)),
            ("bad_path", Fact::Bool(self.bad_path)),
            ("existing_test", Fact::Bool(self.existing_test)),
            ("binary", Fact::Bool(self.binary)),
        ])
    }
}

// pr-creator's own reading of paths and `git diff` headers, as in
// policies/pr-creator/src/lib.rs (which keeps them private).

/// Normalised and case-folded; `None` for a path the policy cannot place.
fn path_key(path: &str) -> Option<String> {
    if path.chars().any(|c| c.is_control() || c == '"') {
        return None;
    }
    normalize(path).map(|key| key.to_uppercase().to_lowercase())
}

/// A test file: anything in a `tests` directory, `*_test.*` or `test_*.*`.
fn is_test(path_key: &str) -> bool {
    let name = path_key.rsplit('/').next().unwrap_or(path_key);
    path_key.split('/').any(|segment| segment == "tests")
        || glob_match("*_test.*", name)
        || glob_match("test_*.*", name)
}

/// Every file has a plain `diff --git a/OLD b/NEW` header that its
/// `rename`/`copy` and `---`/`+++` names agree with, and only regular files
/// are written (pr-creator's `check_git_names`).
fn git_names_agree(text: &str, diff: &Diff) -> bool {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        if let Some(names) = line.strip_prefix("diff --git ") {
            match git_header(names) {
                Some(names) => headers.push(names),
                None => return false,
            }
            continue;
        }
        let Some(&(old, new)) = headers.last() else {
            if line.trim().is_empty() {
                continue;
            }
            return false;
        };
        let renamed_elsewhere = [
            ("rename from ", old),
            ("copy from ", old),
            ("rename to ", new),
            ("copy to ", new),
        ]
        .into_iter()
        .any(|(prefix, expected)| line.strip_prefix(prefix).is_some_and(|name| name != expected));
        if renamed_elsewhere {
            return false;
        }
        let mode = line
            .strip_prefix("new file mode ")
            .or_else(|| line.strip_prefix("new mode "))
            .or_else(|| line.strip_prefix("index ").and_then(|r| r.split(' ').nth(1)));
        if mode
            .map(str::trim)
            .is_some_and(|m| m != "100644" && m != "100755")
        {
            return false;
        }
    }
    headers.len() == diff.files.len()
        && diff
            .files
            .iter()
            .zip(&headers)
            .all(|(file, (old, new))| names_match(file, old, new))
}

fn names_match(file: &FileChange, old: &str, new: &str) -> bool {
    file.old_path.as_deref().is_none_or(|p| p == old) && file.new_path.as_deref().is_none_or(|p| p == new)
}

fn git_header(names: &str) -> Option<(&str, &str)> {
    let (old, new) = names.strip_prefix("a/")?.split_once(" b/")?;
    (!new.contains(" b/")).then_some((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_the_first_one_and_two_words() {
        let heads = line_heads("Looks good.\n\n  BORS   r+ please\n/merge");
        assert!(heads.contains("bors r+"));
        assert!(heads.contains("/merge"));
        assert!(heads.contains("looks good."));
        assert!(!heads.contains("r+"));
    }
}

//! `pr-creator`: reads code, creates feature branches and opens pull requests
//! whose diff stays out of sensitive places.
//!
//! From the role definition: service `code`, actions `[read, create_branch,
//! create_pr]`, forbidden paths `auth/*`, `.ci/*`, `security/*`, at most 500
//! changed lines and 10 files per pull request, and existing tests are
//! read-only (an agent that may edit the tests can make any change pass).
//!
//! The pull request's change arrives as a unified diff in the JSON body, and
//! the code service applies it the way `git apply` does. So this policy reads
//! the diff the way git will, and denies any diff whose file names git could
//! read differently from what this policy checked.

use airlock_sdk::paths::normalize;
use airlock_sdk::prelude::*;

const SERVICE: &str = "code";
const TTL_SECONDS: u32 = 120;

/// Directories a pull request may not touch, anywhere below them. The role's
/// `auth/*` is meant as the whole tree, not one level of it.
const FORBIDDEN_DIRS: [&str; 3] = ["auth", ".ci", "security"];
const MAX_CHANGED_LINES: u64 = 500;
const MAX_FILES: usize = 10;

/// The fields of a `pulls.create` body; `body` is the description.
const PULL_FIELDS: [&str; 5] = ["title", "head", "base", "diff", "body"];

pub struct PrCreator;

impl Policy for PrCreator {
    fn describe() -> Description {
        Description::new("pr-creator", env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let action = &request.action;
        if action.service != SERVICE {
            return Verdict::deny(format!(
                "pr-creator may only use the {SERVICE} service, not {}",
                action.service
            ));
        }
        if action.is_read() {
            return Verdict::allow(Grant::new(TTL_SECONDS).scope("code:read"));
        }
        let decision = match (action.method.as_str(), action.op()) {
            ("POST", "branches.create") => create_branch(action).map(|()| "branches:create"),
            ("POST", "pulls.create") => create_pull(action).map(|()| "pulls:create"),
            (method, op) => Err(format!(
                "operation {} ({method} {}) is not allowed; pr-creator may only read, \
                 create branches (branches.create) and open pull requests (pulls.create)",
                if op.is_empty() { "none" } else { op },
                action.path,
            )),
        };
        match decision {
            // Writes are single-use: one token, one branch or pull request.
            Ok(scope) => Verdict::allow(Grant::new(TTL_SECONDS).scope(scope).single_use()),
            Err(reason) => Verdict::deny(format!("pr-creator: {reason}")),
        }
    }
}

/// `branches.create`: `{"name": ..., "from": ...}`, never a protected name.
fn create_branch(action: &Action) -> Result<(), String> {
    let body = action.json().map_err(|e| format!("branches.create: {e}"))?;
    let keys = body.as_object().into_iter().flat_map(|o| o.keys());
    only_fields(keys, &["name", "from"], "branches.create")?;
    let field = |name| required(body.get(name).and_then(|v| v.as_str()), "branches.create", name);
    let name = field("name")?;
    field("from")?;
    // Case-insensitive: on a case-insensitive file system `Main` and `main`
    // are the same ref file.
    let lower = name.to_lowercase();
    let short = lower.strip_prefix("refs/heads/").unwrap_or(&lower);
    if short == "main" || short == "master" || short.starts_with("release") {
        return Err(format!(
            "branch name {name} is protected (main, master, release*); use a feature branch"
        ));
    }
    Ok(())
}

/// `pulls.create`: `{"title", "head", "base", "diff"}` and an optional
/// `body` (the description); the diff is checked file by file.
fn create_pull(action: &Action) -> Result<(), String> {
    let body = action.json().map_err(|e| format!("pulls.create: {e}"))?;
    let keys = body.as_object().into_iter().flat_map(|o| o.keys());
    only_fields(keys, &PULL_FIELDS, "pulls.create")?;
    let field = |name| required(body.get(name).and_then(|v| v.as_str()), "pulls.create", name);
    for name in ["title", "head", "base"] {
        field(name)?;
    }
    let text = field("diff")?;
    let diff = Diff::parse(text).map_err(|e| format!("pulls.create: unreadable diff: {e}"))?;
    check_git_names(text, &diff)?;
    // Blank diffs are refused above and the parser refuses text without a
    // file; this stays in case either changes.
    if diff.files.is_empty() {
        return Err("pulls.create: the diff changes no files".into());
    }

    // Every path the change touches: a rename out of `auth/` touches `auth/`.
    for path in diff.files.iter().flat_map(FileChange::paths) {
        let key = path_key(path)?;
        if let Some(dir) = FORBIDDEN_DIRS.iter().find(|d| has_prefix(&key, d)) {
            return Err(format!("path {path} is forbidden ({dir}/**)"));
        }
    }
    for file in &diff.files {
        // New tests are welcome; changing, deleting or renaming an existing
        // one is how an agent makes a failing change pass.
        if file.touches_existing()
            && let Some(path) = file.paths().find(|p| path_key(p).is_ok_and(|k| is_test(&k)))
        {
            return Err(format!(
                "test file {path} may not be modified, deleted or renamed \
                 (existing tests are read-only; adding new test files is allowed)"
            ));
        }
        // The line limit cannot measure a binary change.
        if file.binary {
            return Err(format!("binary file {} may not be changed", file.path()));
        }
    }
    if diff.files.len() > MAX_FILES {
        return Err(format!(
            "the diff changes {} files; at most {MAX_FILES} are allowed (max-files)",
            diff.files.len()
        ));
    }
    let changed = diff.changed_lines();
    if changed > MAX_CHANGED_LINES {
        return Err(format!(
            "the diff changes {changed} lines (added + removed); at most {MAX_CHANGED_LINES} \
             are allowed (max-changed-lines)"
        ));
    }
    log::info(
        "pull request within limits",
        &[
            ("files", &diff.files.len().to_string()),
            ("changed_lines", &changed.to_string()),
        ],
    );
    Ok(())
}

/// Refuse fields this policy does not check: the service might act on them
/// (a `patch` next to the `diff`, say) in ways no rule here has looked at.
fn only_fields<'a>(
    mut keys: impl Iterator<Item = &'a String>,
    known: &[&str],
    op: &str,
) -> Result<(), String> {
    match keys.find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(format!(
            "{op}: unknown field {key:?} in the JSON body (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// A JSON body field that must be a non-empty string.
fn required<'a>(value: Option<&'a str>, op: &str, field: &str) -> Result<&'a str, String> {
    value
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("{op}: the JSON body needs a non-empty \"{field}\" string"))
}

/// The form of `path` that rules compare: normalised and case-folded (the
/// repository may be checked out on a case-insensitive file system, where
/// `Auth/login.rs` is `auth/login.rs`). A path that does not normalise is
/// one this policy cannot place, so it is an error, and so is one with
/// quotes or control characters, which git reads differently.
fn path_key(path: &str) -> Result<String, String> {
    if path.chars().any(|c| c.is_control() || c == '"') {
        return Err(format!("path {path:?} contains quotes or control characters"));
    }
    // Upper- then lower-casing also folds `ſ` onto `s`, as case-insensitive
    // file systems do: `ſecurity/` would otherwise slip past `security/`.
    let key = normalize(path).ok_or_else(|| {
        format!(
            "path {path} does not normalise (absolute, climbs out of the repository, \
             or has a backslash)"
        )
    })?;
    Ok(key.to_uppercase().to_lowercase())
}

/// A test file: anything in a `tests` directory, `*_test.*` or `test_*.*`.
fn is_test(path_key: &str) -> bool {
    let name = path_key.rsplit('/').next().unwrap_or(path_key);
    path_key.split('/').any(|segment| segment == "tests")
        || glob_match("*_test.*", name)
        || glob_match("test_*.*", name)
}

/// Make sure git will read the same file names the rules above check.
///
/// `git apply` takes a file's names from its `diff --git a/OLD b/NEW` header
/// and from `rename`/`copy` lines, and strips the first directory from the
/// `---`/`+++` names whatever it is. The SDK's parser reads names the same
/// way and refuses `---`/`+++` names that disagree with the header; this
/// policy asks for more on top, to leave no room between two readings: every
/// file must have a plain `diff --git a/OLD b/NEW` header, and every
/// `rename`/`copy` name must agree with it. Only regular files may be
/// written: a symbolic link could point into a forbidden directory.
///
/// Runs after `Diff::parse` succeeded: hunk lines then always start with
/// ` `, `+`, `-` or `\`, so the metadata lines matched here cannot be hunk
/// content.
fn check_git_names(text: &str, diff: &Diff) -> Result<(), String> {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = index + 1;
        if let Some(names) = line.strip_prefix("diff --git ") {
            headers.push(git_header(names).ok_or_else(|| {
                format!("diff line {at}: expected `diff --git a/PATH b/PATH`, got {line:?}")
            })?);
            continue;
        }
        let Some(&(old, new)) = headers.last() else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!(
                "diff line {at}: the diff must be in `git diff` form, starting with `diff --git`"
            ));
        };
        for (prefix, expected) in [
            ("rename from ", old),
            ("copy from ", old),
            ("rename to ", new),
            ("copy to ", new),
        ] {
            if line.strip_prefix(prefix).is_some_and(|name| name != expected) {
                return Err(format!(
                    "diff line {at}: {line:?} does not match its header `a/{old} b/{new}`"
                ));
            }
        }
        let mode = line
            .strip_prefix("new file mode ")
            .or_else(|| line.strip_prefix("new mode "))
            .or_else(|| line.strip_prefix("index ").and_then(|r| r.split(' ').nth(1)));
        if let Some(mode) = mode.map(str::trim)
            && mode != "100644"
            && mode != "100755"
        {
            return Err(format!(
                "{new} would get mode {mode}; only regular files may be changed"
            ));
        }
    }
    // The parser starts a file at every header, so as many files as headers
    // means no file came in without one, and the two lists line up.
    if headers.len() != diff.files.len() {
        return Err(
            "the diff has a file section without a `diff --git` header; send `git diff` output".into(),
        );
    }
    for (file, (old, new)) in diff.files.iter().zip(&headers) {
        let agrees = file.old_path.as_deref().is_none_or(|p| p == *old)
            && file.new_path.as_deref().is_none_or(|p| p == *new);
        if !agrees {
            return Err(format!(
                "the `---`/`+++` names of {} do not match its header `a/{old} b/{new}`",
                file.path()
            ));
        }
    }
    Ok(())
}

/// `a/OLD b/NEW` into `(OLD, NEW)`; `None` for quoted names, a missing prefix,
/// or names that could be split in more than one place.
fn git_header(names: &str) -> Option<(&str, &str)> {
    let (old, new) = names.strip_prefix("a/")?.split_once(" b/")?;
    (!new.contains(" b/")).then_some((old, new))
}

export_policy!(PrCreator);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing::Harness;

    /// `text` as a JSON string literal.
    fn json_string(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Diff text from its lines.
    fn lines(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// A `git diff` section modifying `path`: `removed` lines out, `added` in.
    fn modify(path: &str, removed: usize, added: usize) -> String {
        let mut d = lines(&[
            &format!("diff --git a/{path} b/{path}"),
            "index 83db48f..bf269f4 100644",
            &format!("--- a/{path}"),
            &format!("+++ b/{path}"),
            &format!("@@ -1,{} +1,{} @@", removed + 1, added + 1),
            " fn keep() {}",
        ]);
        (0..removed).for_each(|i| d.push_str(&format!("-let old_{i} = {i};\n")));
        (0..added).for_each(|i| d.push_str(&format!("+let new_{i} = {i};\n")));
        d
    }

    /// A `git diff` section adding the new file `path` with `lines` lines.
    fn add(path: &str, count: usize) -> String {
        let mut d = lines(&[
            &format!("diff --git a/{path} b/{path}"),
            "new file mode 100644",
            "index 0000000..3b18e51",
            "--- /dev/null",
            &format!("+++ b/{path}"),
            &format!("@@ -0,0 +1,{count} @@"),
        ]);
        (0..count).for_each(|i| d.push_str(&format!("+// line {i}\n")));
        d
    }

    fn delete(path: &str) -> String {
        lines(&[
            &format!("diff --git a/{path} b/{path}"),
            "deleted file mode 100644",
            "index 3b18e51..0000000",
            &format!("--- a/{path}"),
            "+++ /dev/null",
            "@@ -1 +0,0 @@",
            "-gone",
        ])
    }

    fn rename(from: &str, to: &str) -> String {
        lines(&[
            &format!("diff --git a/{from} b/{to}"),
            "similarity index 100%",
            &format!("rename from {from}"),
            &format!("rename to {to}"),
        ])
    }

    fn pull(diff: &str) -> Request {
        let diff = json_string(diff);
        pull_with_body(&format!(
            r#"{{"title": "Fix pager", "head": "fix-pager", "base": "main", "diff": {diff}}}"#
        ))
    }

    fn pull_with_body(body: &str) -> Request {
        Request::builder(SERVICE, "POST", "/repos/acme/api/pulls")
            .operation("pulls.create")
            .param("owner", "acme")
            .param("repo", "api")
            .body(body)
            .build()
    }

    fn branch(name: &str) -> Request {
        Request::builder(SERVICE, "POST", "/repos/acme/api/branches")
            .operation("branches.create")
            .body(format!(r#"{{"name": {}, "from": "main"}}"#, json_string(name)))
            .build()
    }

    #[track_caller]
    fn denied(diff: &str) -> String {
        Harness::<PrCreator>::new().expect_deny(&pull(diff))
    }

    #[test]
    fn opens_a_small_pull_request() {
        let mut h = Harness::<PrCreator>::new();
        let grant = h.expect_allow(&pull(&modify("src/lib.rs", 10, 10)));
        assert_eq!(grant.scopes, ["pulls:create"]);
        assert!(grant.single_use);
        assert_eq!(grant.ttl_seconds, 120);
        let log = &h.logs()[0];
        assert_eq!(
            log.fields,
            [
                ("files".to_string(), "1".to_string()),
                ("changed_lines".to_string(), "20".to_string())
            ]
        );
    }

    #[test]
    fn reads_anything_in_code() {
        let mut h = Harness::<PrCreator>::new();
        let grant = h.expect_allow(
            &Request::builder(SERVICE, "GET", "/repos/acme/api/contents/auth/login.rs")
                .operation("contents.read")
                .build(),
        );
        assert_eq!(grant.scopes, ["code:read"]);
        assert!(!grant.single_use);
        let reason = h.expect_deny(&Request::builder("analytics", "GET", "/dashboards").build());
        assert!(reason.contains("only use the code service"), "{reason}");
    }

    #[test]
    fn creates_feature_branches_only() {
        let mut h = Harness::<PrCreator>::new();
        let grant = h.expect_allow(&branch("fix-pager"));
        assert_eq!(grant.scopes, ["branches:create"]);
        assert!(grant.single_use);
        assert_eq!(grant.ttl_seconds, 120);
        for name in [
            "main",
            "master",
            "Main",
            "release",
            "release/2.1",
            "refs/heads/main",
        ] {
            let reason = h.expect_deny(&branch(name));
            assert!(
                reason.contains(&format!("pr-creator: branch name {name} is protected")),
                "{reason}"
            );
        }
        let reason = h.expect_deny(
            &Request::builder(SERVICE, "POST", "/repos/acme/api/branches")
                .operation("branches.create")
                .body(r#"{"name": "fix-pager"}"#)
                .build(),
        );
        assert!(reason.contains(r#"needs a non-empty "from" string"#), "{reason}");
    }

    #[test]
    fn other_writes_are_denied() {
        let mut h = Harness::<PrCreator>::new();
        for (method, path, op) in [
            ("PUT", "/repos/acme/api/pulls/7/merge", "pulls.merge"),
            ("PUT", "/repos/acme/api/contents/src/lib.rs", "contents.write"),
            ("PATCH", "/repos/acme/api/pulls/7", "pulls.update"),
            // The right operation under the wrong method is still denied.
            ("PUT", "/repos/acme/api/pulls", "pulls.create"),
        ] {
            let reason = h.expect_deny(&Request::builder(SERVICE, method, path).operation(op).build());
            assert!(
                reason.starts_with(&format!(
                    "pr-creator: operation {op} ({method} {path}) is not allowed"
                )),
                "{reason}"
            );
        }
    }

    #[test]
    fn forbidden_directories() {
        let reason = denied(&modify("auth/login.rs", 1, 1));
        assert_eq!(reason, "pr-creator: path auth/login.rs is forbidden (auth/**)");
        // The whole tree, any case, however the path is spelled.
        for (path, dir) in [
            ("auth/oauth/google.rs", "auth"),
            ("Auth/login.rs", "auth"),
            ("src/../auth/login.rs", "auth"),
            ("./security/keys.rs", "security"),
            (".CI/deploy.yml", ".ci"),
            // `ſ` (long s) is `s` to a case-insensitive file system.
            ("\u{17f}ecurity/keys.rs", "security"),
        ] {
            let reason = denied(&modify(path, 1, 1));
            assert!(
                reason.contains(&format!("path {path} is forbidden ({dir}/**)")),
                "{reason}"
            );
        }
        // Same name elsewhere is fine.
        Harness::<PrCreator>::new().expect_allow(&pull(&modify("src/auth/session.rs", 1, 1)));
        Harness::<PrCreator>::new().expect_allow(&pull(&modify("authz.rs", 1, 1)));
    }

    #[test]
    fn renames_are_checked_on_both_sides() {
        let reason = denied(&rename("auth/tokens.rs", "src/tokens.rs"));
        assert!(
            reason.contains("path auth/tokens.rs is forbidden (auth/**)"),
            "{reason}"
        );
        let reason = denied(&rename("src/tokens.rs", "security/tokens.rs"));
        assert!(
            reason.contains("path security/tokens.rs is forbidden"),
            "{reason}"
        );
    }

    #[test]
    fn paths_that_do_not_normalise_are_denied() {
        for path in ["../outside.rs", "src/../../x.rs", "src\\lib.rs"] {
            let reason = denied(&modify(path, 1, 1));
            assert!(reason.contains("does not normalise"), "{reason}");
        }
        let reason = denied(&add("src/bad\u{7}name.rs", 1));
        assert!(reason.contains("control characters"), "{reason}");
    }

    #[test]
    fn at_most_500_changed_lines() {
        let mut h = Harness::<PrCreator>::new();
        h.expect_allow(&pull(&modify("src/lib.rs", 250, 250)));
        let reason = h.expect_deny(&pull(&modify("src/lib.rs", 250, 251)));
        assert!(
            reason.contains("the diff changes 501 lines (added + removed); at most 500"),
            "{reason}"
        );
        // Summed over files.
        let two = modify("src/a.rs", 0, 300) + &add("src/b.rs", 201);
        let reason = h.expect_deny(&pull(&two));
        assert!(reason.contains("changes 501 lines"), "{reason}");
    }

    #[test]
    fn at_most_10_files() {
        let ten: String = (0..10).map(|i| modify(&format!("src/m{i}.rs"), 1, 1)).collect();
        Harness::<PrCreator>::new().expect_allow(&pull(&ten));
        let eleven = ten + &add("src/m10.rs", 1);
        let reason = denied(&eleven);
        assert!(
            reason.contains("the diff changes 11 files; at most 10"),
            "{reason}"
        );
    }

    #[test]
    fn existing_tests_are_read_only() {
        for (diff, path) in [
            (modify("tests/api_test.rs", 1, 1), "tests/api_test.rs"),
            (modify("src/parser_test.go", 1, 1), "src/parser_test.go"),
            (modify("pkg/test_util.py", 1, 1), "pkg/test_util.py"),
            (
                modify("crates/x/Tests/fixtures.json", 1, 1),
                "crates/x/Tests/fixtures.json",
            ),
            (delete("tests/api.rs"), "tests/api.rs"),
            (rename("tests/old.rs", "tests/new.rs"), "tests/old.rs"),
            // Renaming a file into the tests counts too.
            (rename("src/helpers.rs", "tests/helpers.rs"), "tests/helpers.rs"),
        ] {
            let reason = denied(&diff);
            assert!(
                reason.contains(&format!(
                    "test file {path} may not be modified, deleted or renamed"
                )),
                "{reason}"
            );
        }
    }

    #[test]
    fn new_tests_are_welcome() {
        let diff =
            modify("src/lib.rs", 2, 3) + &add("tests/pager_test.rs", 12) + &add("src/test_pager.py", 4);
        let grant = Harness::<PrCreator>::new().expect_allow(&pull(&diff));
        assert_eq!(grant.scopes, ["pulls:create"]);
    }

    #[test]
    fn body_must_be_whole_json_with_every_field() {
        let mut h = Harness::<PrCreator>::new();
        let reason = h.expect_deny(&pull_with_body("diff --git a/x b/x"));
        assert!(
            reason.contains("pulls.create: body is not valid JSON"),
            "{reason}"
        );
        let reason = h.expect_deny(&pull_with_body(r#"{"title": "x", "head": "h", "diff": ""}"#));
        assert!(reason.contains(r#"needs a non-empty "base" string"#), "{reason}");
        let reason = h.expect_deny(&pull_with_body(
            r#"{"title": "x", "head": "h", "base": "main", "diff": 7}"#,
        ));
        assert!(reason.contains(r#"needs a non-empty "diff" string"#), "{reason}");
        let mut truncated = pull(&modify("src/lib.rs", 1, 1));
        truncated.action.body.truncate(60);
        truncated.action.body_truncated = true;
        let reason = h.expect_deny(&truncated);
        assert!(reason.contains("pulls.create: body was truncated"), "{reason}");
    }

    #[test]
    fn unknown_body_fields_are_denied() {
        let mut h = Harness::<PrCreator>::new();
        let reason = h.expect_deny(&pull_with_body(&format!(
            r#"{{"title": "t", "head": "h", "base": "main", "diff": {}, "patch": "x"}}"#,
            json_string(&modify("src/lib.rs", 1, 1))
        )));
        assert!(
            reason.contains(r#"pulls.create: unknown field "patch" in the JSON body"#),
            "{reason}"
        );
        // The description is a known field.
        h.expect_allow(&pull_with_body(&format!(
            r#"{{"title": "t", "head": "h", "base": "main", "diff": {}, "body": "Fixes #41"}}"#,
            json_string(&modify("src/lib.rs", 1, 1))
        )));
        let reason = h.expect_deny(
            &Request::builder(SERVICE, "POST", "/repos/acme/api/branches")
                .operation("branches.create")
                .body(r#"{"name": "fix", "from": "main", "force": true}"#)
                .build(),
        );
        assert!(reason.contains(r#"unknown field "force""#), "{reason}");
    }

    #[test]
    fn unreadable_diffs_are_denied() {
        let reason = denied("this is not a diff");
        assert!(reason.contains("pulls.create: unreadable diff"), "{reason}");
        // A hunk that claims more lines than it has.
        let short = modify("src/lib.rs", 3, 3).replace("@@ -1,4 +1,4 @@", "@@ -1,9 +1,9 @@");
        let reason = denied(&short);
        assert!(reason.contains("unreadable diff"), "{reason}");
        let reason = denied(&binary("assets/logo.png"));
        assert!(reason.contains("binary file assets/logo.png"), "{reason}");
    }

    fn binary(path: &str) -> String {
        lines(&[
            &format!("diff --git a/{path} b/{path}"),
            "index 1111111..2222222 100644",
            &format!("Binary files a/{path} and b/{path} differ"),
        ])
    }

    /// Names git reads differently from a parser that only strips `a/`.
    #[test]
    fn git_reads_the_same_names() {
        // `---`/`+++` with another prefix: git applies this to auth/login.rs.
        let other_prefix = modify("src/lib.rs", 1, 1)
            .replace("--- a/src/lib.rs", "--- x/auth/login.rs")
            .replace("+++ b/src/lib.rs", "+++ y/auth/login.rs");
        let reason = denied(&other_prefix);
        assert!(
            reason.contains("disagree with the `diff --git` header"),
            "{reason}"
        );
        // No `diff --git` header at all.
        let plain = lines(&[
            "--- x/auth/login.rs",
            "+++ y/auth/login.rs",
            "@@ -1 +1 @@",
            "-a",
            "+b",
        ]);
        let reason = denied(&plain);
        assert!(reason.contains("must be in `git diff` form"), "{reason}");
        // A second file smuggled in after the first one's hunks.
        let smuggled = modify("src/lib.rs", 1, 1)
            + &lines(&[
                "--- a/auth/login.rs",
                "+++ b/auth/login.rs",
                "@@ -1 +1 @@",
                "-a",
                "+b",
            ]);
        let reason = denied(&smuggled);
        assert!(reason.contains("without a `diff --git` header"), "{reason}");
        // Quoted names.
        let quoted = lines(&[
            r#"diff --git "a/auth/login.rs" "b/auth/login.rs""#,
            r#"--- "a/auth/login.rs""#,
            r#"+++ "b/auth/login.rs""#,
            "@@ -1 +1 @@",
            "-a",
            "+b",
        ]);
        let reason = denied(&quoted);
        assert!(reason.contains("quoted file names are not supported"), "{reason}");
        // A copy whose target disagrees with its header.
        let copy = lines(&[
            "diff --git a/src/lib.rs b/src/lib.rs",
            "similarity index 100%",
            "copy from src/lib.rs",
            "copy to auth/new.rs",
        ]);
        let reason = denied(&copy);
        assert!(
            reason.contains(r#""copy to auth/new.rs" does not match its header"#),
            "{reason}"
        );
        // Preamble text before the first header.
        let reason = denied(&format!("Subject: fix\n\n{}", modify("src/lib.rs", 1, 1)));
        assert!(
            reason.contains("diff line 1: the diff must be in `git diff` form"),
            "{reason}"
        );
    }

    #[test]
    fn only_regular_files() {
        let symlink = lines(&[
            "diff --git a/src/link b/src/link",
            "new file mode 120000",
            "index 0000000..1111111",
            "--- /dev/null",
            "+++ b/src/link",
            "@@ -0,0 +1 @@",
            "+../auth/login.rs",
            "\\ No newline at end of file",
        ]);
        let reason = denied(&symlink);
        assert!(
            reason.contains("src/link would get mode 120000; only regular files"),
            "{reason}"
        );
        let retarget = modify("src/link", 1, 1).replace("100644", "120000");
        let reason = denied(&retarget);
        assert!(reason.contains("mode 120000"), "{reason}");
        // An executable script is a regular file.
        let script = add("scripts/gen.sh", 2).replace("100644", "100755");
        Harness::<PrCreator>::new().expect_allow(&pull(&script));
    }

    #[test]
    fn empty_diff_is_denied() {
        for blank in ["", "\n\n"] {
            let reason = denied(blank);
            assert!(reason.contains(r#"needs a non-empty "diff" string"#), "{reason}");
        }
    }
}

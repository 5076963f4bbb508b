//! Path matching for policies: globs, prefixes and normalisation.
//!
//! Glob syntax: `*` matches any run of characters within one path segment,
//! `?` one character other than `/`, and `**` any number of whole segments
//! (including none). So `src/*.rs` matches `src/lib.rs` but not
//! `src/a/b.rs`, and `auth/**` matches everything below `auth/`.

/// Whether `path` matches the glob `pattern`.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    match_segments(&pattern, &path)
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                match_segment(first.as_bytes(), segment.as_bytes()) && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

fn match_segment(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative wildcard matching with one backtrack point: linear in
    // practice and never exponential, whatever the pattern.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `path` is `dir` itself or lies below it, by whole segments:
/// `has_prefix("auth/login.rs", "auth")` is true, `has_prefix("authz.rs", "auth")` is not.
pub fn has_prefix(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Normalise a relative path: drop `.` segments, empty segments and a
/// leading `./`; resolve `..`. Returns `None` for an absolute path or one
/// that climbs above its root, which a policy should treat as hostile.
pub fn normalize(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    if out.is_empty() { None } else { Some(out.join("/")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_star_stays_in_segment() {
        assert!(glob_match("src/*.rs", "src/lib.rs"));
        assert!(!glob_match("src/*.rs", "src/a/lib.rs"));
        assert!(glob_match("*_test.*", "parser_test.go"));
        assert!(!glob_match("*_test.*", "parser.go"));
        assert!(glob_match("test_?.py", "test_a.py"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob_match("auth/**", "auth/login.rs"));
        assert!(glob_match("auth/**", "auth/a/b/c.rs"));
        assert!(glob_match("**/*_test.rs", "a/b/x_test.rs"));
        assert!(glob_match("**/*_test.rs", "x_test.rs"));
        assert!(!glob_match("auth/**", "authz/login.rs"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(200);
        assert!(!glob_match(&"*a".repeat(50).replace("**", "*b*"), &(text + "c")));
    }

    #[test]
    fn prefix_is_by_segment() {
        assert!(has_prefix("auth/login.rs", "auth/"));
        assert!(has_prefix("auth", "auth"));
        assert!(!has_prefix("authz.rs", "auth"));
    }

    #[test]
    fn normalize_refuses_escapes() {
        assert_eq!(normalize("./src//lib.rs").as_deref(), Some("src/lib.rs"));
        assert_eq!(normalize("src/../auth/x").as_deref(), Some("auth/x"));
        assert_eq!(normalize("../etc/passwd"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }
}

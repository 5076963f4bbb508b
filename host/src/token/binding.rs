//! The request binding (`req` claim): a digest of the one request a token
//! was minted for, which the upstream (or a verifying sidecar) recomputes
//! from the request it receives.
//!
//! `req = base64url(sha256(METHOD "\n" PATH "\n" QUERY "\n" hex(sha256(BODY))))`
//! where QUERY is the canonical query: every (name, value) pair
//! percent-encoded (RFC 3986: all but `A-Z a-z 0-9 - . _ ~`, as upper-case
//! `%XX` of the UTF-8 bytes), sorted by (name, value), joined as
//! `name=value` with `&`. METHOD and PATH are taken as given (the path as
//! sent upstream, without the query); query pairs are the decoded pairs.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// base64url(sha256(method \n path \n canonical query \n sha256hex(body)))
/// binding a token to one request. Canonical query: the (name, value) pairs
/// sorted, percent-encoded, joined with `&`.
pub fn request_binding(method: &str, path: &str, query: &[(String, String)], body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_query(query).as_bytes());
    hasher.update(b"\n");
    hasher.update(hex::encode(Sha256::digest(body)).as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (percent_encode(name), percent_encode(value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_the_documented_construction() {
        let body = b"{\"title\":\"fix\"}";
        let expected_input = format!(
            "POST\n/repos/acme/api/pulls\na=1&a=2&sp%20ace=%C3%A9%26%3D\n{}",
            hex::encode(Sha256::digest(body))
        );
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(expected_input.as_bytes()));
        let query = q(&[("sp ace", "é&="), ("a", "2"), ("a", "1")]);
        assert_eq!(
            request_binding("POST", "/repos/acme/api/pulls", &query, body),
            expected
        );
        assert_eq!(expected.len(), 43);
    }

    #[test]
    fn query_order_does_not_matter() {
        let a = q(&[("x", "1"), ("y", "2"), ("x", "0")]);
        let b = q(&[("y", "2"), ("x", "0"), ("x", "1")]);
        assert_eq!(
            request_binding("GET", "/p", &a, b""),
            request_binding("GET", "/p", &b, b"")
        );
    }

    #[test]
    fn any_difference_in_the_request_changes_it() {
        let query = q(&[("state", "open")]);
        let base = request_binding("GET", "/issues", &query, b"");
        let variants = [
            request_binding("POST", "/issues", &query, b""),
            request_binding("get", "/issues", &query, b""),
            request_binding("GET", "/issues/1", &query, b""),
            request_binding("GET", "/issues", &q(&[("state", "closed")]), b""),
            request_binding("GET", "/issues", &q(&[("state", "open"), ("page", "2")]), b""),
            request_binding("GET", "/issues", &[], b""),
            request_binding("GET", "/issues", &query, b"x"),
        ];
        for v in &variants {
            assert_ne!(v, &base);
        }
    }

    #[test]
    fn separators_inside_names_and_values_cannot_collide() {
        let one = request_binding("GET", "/", &q(&[("a", "b=c")]), b"");
        let two = request_binding("GET", "/", &q(&[("a=b", "c")]), b"");
        let three = request_binding("GET", "/", &q(&[("a", "b&c=d")]), b"");
        let four = request_binding("GET", "/", &q(&[("a", "b"), ("c", "d")]), b"");
        assert_ne!(one, two);
        assert_ne!(three, four);
        assert_ne!(
            request_binding("GET", "/", &q(&[("", "")]), b""),
            request_binding("GET", "/", &[], b"")
        );
    }
}

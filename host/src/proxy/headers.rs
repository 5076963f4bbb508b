//! What crosses the proxy in each direction, header by header and byte by byte.
//!
//! Inbound, identity comes from the session only: whatever an agent sends as
//! `Authorization`, `Cookie` or `x-airlock-*` is dropped before the policy
//! and before the upstream. Outbound, auth material never reaches the agent:
//! auth headers, cookies and hop-by-hop headers are removed, and any
//! occurrence of the minted token or a proxy-held secret is redacted.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy's own.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Headers that carry identity or credentials, in either direction.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "set-cookie2",
    "www-authenticate",
];

pub const REDACTED: &str = "[redacted by airlock]";

fn is_identity_or_hop(name: &str, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name)
        || CREDENTIALS.contains(&name)
        || name.starts_with("x-airlock-")
        || connection_listed.iter().any(|c| c == name)
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The agent's headers with identity, credentials, hop-by-hop headers and
/// `host` removed: what the policy sees and what goes upstream.
pub fn sanitize_request(headers: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if n == "host" || n == "content-length" || is_identity_or_hop(n, &listed) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The upstream's headers with credentials, cookies and hop-by-hop headers
/// removed and any secret redacted from the values that remain.
pub fn scrub_response(headers: &HeaderMap, secrets: &[&[u8]]) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if n == "content-length" || is_identity_or_hop(n, &listed) {
            continue;
        }
        let bytes = value.as_bytes();
        if secrets.iter().any(|s| !s.is_empty() && contains(bytes, s)) {
            let redacted = redact(bytes, secrets);
            if let Ok(v) = HeaderValue::from_bytes(&redacted) {
                out.append(name.clone(), v);
            }
        } else {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Replace every occurrence of each secret in `body`.
pub fn redact(body: &[u8], secrets: &[&[u8]]) -> Vec<u8> {
    let mut current = body.to_vec();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if !contains(&current, secret) {
            continue;
        }
        let mut out = Vec::with_capacity(current.len());
        let mut i = 0;
        while i < current.len() {
            if current[i..].starts_with(secret) {
                out.extend_from_slice(REDACTED.as_bytes());
                i += secret.len();
            } else {
                out.push(current[i]);
                i += 1;
            }
        }
        current = out;
    }
    current
}

/// Header pairs for the policy: lower-case names, values that are text.
pub fn for_policy(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string())))
        .collect()
}

/// Parse a configured header name, for credential injection.
pub fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn identity_never_passes_inbound() {
        let h = map(&[
            ("authorization", "Bearer stolen"),
            ("cookie", "session=1"),
            ("x-airlock-agent", "admin"),
            ("X-Airlock-Role", "release"),
            ("proxy-authorization", "Bearer handle"),
            ("connection", "keep-alive, x-custom"),
            ("x-custom", "hop"),
            ("host", "proxy"),
            ("accept", "application/json"),
        ]);
        let out = sanitize_request(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn credentials_and_secrets_never_pass_outbound() {
        let h = map(&[
            ("set-cookie", "sid=1"),
            ("authorization", "Bearer tok"),
            ("x-echo", "you sent Bearer eyJ.secret.sig"),
            ("content-type", "text/plain"),
        ]);
        let out = scrub_response(&h, &[b"eyJ.secret.sig"]);
        assert_eq!(out.get("set-cookie"), None);
        assert_eq!(out.get("authorization"), None);
        assert_eq!(
            out.get("x-echo").and_then(|v| v.to_str().ok()),
            Some("you sent Bearer [redacted by airlock]")
        );
        assert_eq!(
            out.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/plain")
        );
    }

    #[test]
    fn bodies_are_redacted_everywhere() {
        let body = b"token=abc123; again abc123abc123; key=S3CR3T";
        let out = redact(body, &[b"abc123", b"S3CR3T", b""]);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("abc123") && !text.contains("S3CR3T"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 4);
    }
}

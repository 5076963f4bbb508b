//! Checks a verdict against the contract's bounds before the host acts on
//! it. A policy that hands back more than the contract allows is denied
//! (`invalid-verdict`), never trusted in part.

use std::collections::BTreeMap;

use super::bindings::wit;
use super::limits::bounds;
use super::types::{Failure, FailureClass, Grant, Verdict};

fn invalid(detail: String) -> Failure {
    Failure {
        class: FailureClass::InvalidVerdict,
        detail,
    }
}

fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= bounds::MAX_SCOPE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":._/*-".contains(&b))
}

fn bounded_reason(mut reason: String) -> String {
    if reason.len() > bounds::MAX_REASON_LEN {
        let mut end = bounds::MAX_REASON_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

pub(crate) fn validate_verdict(verdict: wit::Verdict) -> Result<Verdict, Failure> {
    let grant = match verdict {
        wit::Verdict::Deny(reason) => return Ok(Verdict::Deny(bounded_reason(reason))),
        wit::Verdict::Escalate(reason) => return Ok(Verdict::Escalate(bounded_reason(reason))),
        wit::Verdict::Allow(grant) => grant,
    };
    if grant.scopes.len() > bounds::MAX_SCOPES {
        return Err(invalid(format!(
            "grant has {} scopes, at most {} allowed",
            grant.scopes.len(),
            bounds::MAX_SCOPES
        )));
    }
    if let Some(bad) = grant.scopes.iter().find(|s| !valid_scope(s)) {
        let shown: String = bad.chars().take(40).collect();
        return Err(invalid(format!(
            "scope {shown:?} is not 1..={} bytes of [A-Za-z0-9:._/*-]",
            bounds::MAX_SCOPE_LEN
        )));
    }
    if grant.ttl_seconds == 0 {
        return Err(invalid("grant ttl-seconds is 0".into()));
    }
    if grant.claims.len() > bounds::MAX_CLAIMS {
        return Err(invalid(format!(
            "grant has {} claims, at most {} allowed",
            grant.claims.len(),
            bounds::MAX_CLAIMS
        )));
    }
    let mut claims = BTreeMap::new();
    for (name, value) in grant.claims {
        if name.is_empty() || name.len() > bounds::MAX_CLAIM_NAME_LEN {
            return Err(invalid(format!(
                "claim name must be 1..={} bytes",
                bounds::MAX_CLAIM_NAME_LEN
            )));
        }
        if bounds::RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(invalid(format!("claim `{name}` is reserved and set by the host")));
        }
        if value.len() > bounds::MAX_CLAIM_VALUE_LEN {
            return Err(invalid(format!(
                "claim `{name}` is {} bytes, at most {} allowed",
                value.len(),
                bounds::MAX_CLAIM_VALUE_LEN
            )));
        }
        let parsed: serde_json::Value =
            serde_json::from_str(&value).map_err(|e| invalid(format!("claim `{name}` is not JSON: {e}")))?;
        if claims.insert(name.clone(), parsed).is_some() {
            return Err(invalid(format!("claim `{name}` appears twice")));
        }
    }
    Ok(Verdict::Allow(Grant {
        scopes: grant.scopes,
        ttl_seconds: grant.ttl_seconds,
        single_use: grant.single_use,
        max_response_bytes: grant.max_response_bytes,
        claims,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> wit::Grant {
        wit::Grant {
            scopes: vec!["code:read".into()],
            ttl_seconds: 60,
            single_use: false,
            max_response_bytes: None,
            claims: vec![("ticket".into(), "\"T-1\"".into())],
        }
    }

    #[test]
    fn accepts_a_grant_within_bounds() {
        let v = validate_verdict(wit::Verdict::Allow(grant())).expect("valid");
        let g = v.grant().expect("allow");
        assert_eq!(g.claims["ticket"], serde_json::json!("T-1"));
    }

    #[test]
    fn refuses_what_breaks_the_contract() {
        let cases: Vec<(wit::Grant, &str)> = vec![
            (
                wit::Grant {
                    scopes: vec!["a".into(); 33],
                    ..grant()
                },
                "33 scopes",
            ),
            (
                wit::Grant {
                    scopes: vec!["has space".into()],
                    ..grant()
                },
                "not 1..=",
            ),
            (
                wit::Grant {
                    ttl_seconds: 0,
                    ..grant()
                },
                "ttl",
            ),
            (
                wit::Grant {
                    claims: vec![("aud".into(), "\"other\"".into())],
                    ..grant()
                },
                "reserved",
            ),
            (
                wit::Grant {
                    claims: vec![("x".into(), "not json".into())],
                    ..grant()
                },
                "not JSON",
            ),
            (
                wit::Grant {
                    claims: vec![("x".into(), format!("\"{}\"", "a".repeat(2000)))],
                    ..grant()
                },
                "bytes",
            ),
        ];
        for (g, expected) in cases {
            let err = validate_verdict(wit::Verdict::Allow(g)).expect_err("must be refused");
            assert_eq!(err.class, FailureClass::InvalidVerdict);
            assert!(
                err.detail.contains(expected),
                "{} should mention {expected}",
                err.detail
            );
        }
    }

    #[test]
    fn long_reasons_are_cut_not_refused() {
        let v = validate_verdict(wit::Verdict::Deny("é".repeat(5000))).expect("deny stays a deny");
        assert!(v.reason().is_some_and(|r| r.len() <= bounds::MAX_REASON_LEN + 3));
    }
}

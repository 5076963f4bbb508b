//! Verification, with jsonwebtoken: for the demo upstream services, tests
//! and introspection. Not on the proxy's hot path.

use std::sync::Once;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use super::error::TokenError;

/// jsonwebtoken 11 signs and verifies through a process-wide crypto
/// provider. With only its `aws_lc_rs` feature it picks that one itself,
/// but if feature unification ever also enabled `rust_crypto` it would
/// panic at first use instead. Installing aws-lc explicitly (once, before
/// any use through this module) rules that out; if the process already
/// installed a provider, that one stays.
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

/// Verify `token` against the JWK Set `jwks`: the key named by the header's
/// `kid`, with the algorithm pinned to that key's `alg`; then `exp` and
/// `nbf` against `now` (with `leeway_s`), `iss` equal to `issuer` and `aud`
/// exactly `audience` (a single string, as minted); `exp`, `iss`, `aud`,
/// `sub` and `jti` are required. Returns the claims.
pub fn verify(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
    now: u64,
    leeway_s: u64,
) -> Result<Value, TokenError> {
    install_crypto_provider();
    let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported `crit` header".into()));
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(TokenError::Malformed("header `typ` is not JWT".into()));
    }
    let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| TokenError::BadJwks(e.to_string()))?;
    let mut matching = set
        .keys
        .iter()
        .filter(|k| k.common.key_id.as_deref() == Some(kid));
    let jwk = matching
        .next()
        .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
    if matching.next().is_some() {
        return Err(TokenError::BadJwks(format!("two keys have kid `{kid}`")));
    }

    // The key decides the algorithm; the header must agree.
    let mismatch = |key: &str| TokenError::AlgorithmMismatch {
        token: format!("{:?}", header.alg),
        kid: kid.to_owned(),
        key: key.to_owned(),
    };
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p))
            if p.curve == EllipticCurve::P256 =>
        {
            jsonwebtoken::Algorithm::ES256
        }
        (Some(KeyAlgorithm::EdDSA), AlgorithmParameters::OctetKeyPair(p))
            if p.curve == EllipticCurve::Ed25519 =>
        {
            jsonwebtoken::Algorithm::EdDSA
        }
        _ => return Err(mismatch("not an ES256 P-256 or EdDSA Ed25519 key")),
    };
    if header.alg != alg {
        return Err(mismatch(&format!("{alg:?}")));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::BadJwks(format!("key `{kid}`: {e}")))?;

    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    // jsonwebtoken reads the system clock; time is checked below against
    // the caller's `now` instead.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = decode::<Value>(token, &key, &validation)
        .map_err(|e| from_jwt_error(e, issuer, audience))?
        .claims;

    let claim = |name: &str| {
        claims
            .get(name)
            .ok_or_else(|| TokenError::MissingClaim(name.into()))
    };
    let timestamp = |name: &str, v: &Value| v.as_u64().ok_or_else(|| TokenError::BadClaim(name.into()));
    let exp = timestamp("exp", claim("exp")?)?;
    if now >= exp.saturating_add(leeway_s) {
        return Err(TokenError::Expired { exp, now, leeway_s });
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = timestamp("nbf", nbf)?;
        if nbf > now.saturating_add(leeway_s) {
            return Err(TokenError::NotYetValid { nbf, now, leeway_s });
        }
    }
    // Exactly one issuer and one audience: no arrays.
    if claim("iss")?.as_str() != Some(issuer) {
        return Err(TokenError::WrongIssuer {
            expected: issuer.into(),
        });
    }
    if claim("aud")?.as_str() != Some(audience) {
        return Err(TokenError::WrongAudience {
            expected: audience.into(),
        });
    }
    for name in ["sub", "jti"] {
        if claim(name)?.as_str().is_none_or(str::is_empty) {
            return Err(TokenError::BadClaim(name.into()));
        }
    }
    Ok(claims)
}

fn from_jwt_error(e: jsonwebtoken::errors::Error, issuer: &str, audience: &str) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::InvalidSignature,
        K::InvalidIssuer => TokenError::WrongIssuer {
            expected: issuer.into(),
        },
        K::InvalidAudience => TokenError::WrongAudience {
            expected: audience.into(),
        },
        K::MissingRequiredClaim(name) => TokenError::MissingClaim(name.clone()),
        K::InvalidClaimFormat(name) => TokenError::BadClaim(name.clone()),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => TokenError::Malformed(e.to_string()),
        _ => TokenError::Rejected(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::super::keys::Algorithm;
    use super::super::store::KeyStore;
    use super::super::testing::{Fixture, NOW};
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn store(alg: Algorithm) -> KeyStore {
        KeyStore::ephemeral(alg, TTL).unwrap()
    }

    #[test]
    fn minted_tokens_verify_with_both_algorithms() {
        let f = Fixture::new();
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let store = store(alg);
            let minted = store.mint(&f.request()).unwrap();
            let claims = verify(&minted.token, &store.jwks(), "airlock", "code", NOW + 1, 0).unwrap();
            assert_eq!(claims["jti"], minted.jti.as_str(), "{alg}");
            assert_eq!(claims["sub"], "agent-7");
            assert_eq!(claims["act"]["sub"], "agent-7");
        }
    }

    #[test]
    fn the_wrong_audience_or_issuer_is_rejected() {
        let f = Fixture::new();
        let store = store(Algorithm::Es256);
        let token = store.mint(&f.request()).unwrap().token;
        let jwks = store.jwks();
        let err = verify(&token, &jwks, "airlock", "issues", NOW, 0).unwrap_err();
        assert!(matches!(err, TokenError::WrongAudience { .. }), "{err}");
        let err = verify(&token, &jwks, "someone-else", "code", NOW, 0).unwrap_err();
        assert!(matches!(err, TokenError::WrongIssuer { .. }), "{err}");
    }

    #[test]
    fn expiry_and_not_before_follow_the_given_clock() {
        let f = Fixture::new();
        let store = store(Algorithm::EdDsa);
        let minted = store.mint(&f.request()).unwrap();
        let jwks = store.jwks();
        let exp = minted.expires_at;
        assert!(verify(&minted.token, &jwks, "airlock", "code", exp - 1, 0).is_ok());
        let err = verify(&minted.token, &jwks, "airlock", "code", exp, 0).unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }), "{err}");
        assert!(verify(&minted.token, &jwks, "airlock", "code", exp, 5).is_ok());
        let err = verify(&minted.token, &jwks, "airlock", "code", exp + 5, 5).unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }), "{err}");
        let err = verify(&minted.token, &jwks, "airlock", "code", NOW - 10, 0).unwrap_err();
        assert!(matches!(err, TokenError::NotYetValid { .. }), "{err}");
    }

    /// Re-encode the payload with one claim changed, keeping the signature.
    fn tamper(token: &str, name: &str, value: Value) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims[name] = value;
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    }

    #[test]
    fn a_tampered_payload_is_rejected() {
        let f = Fixture::new();
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let store = store(alg);
            let token = store.mint(&f.request()).unwrap().token;
            let jwks = store.jwks();
            for (name, value) in [
                ("scope", Value::from("issues:write")),
                ("exp", Value::from(NOW + 86_400)),
                ("sub", Value::from("agent-8")),
            ] {
                let forged = tamper(&token, name, value);
                let err = verify(&forged, &jwks, "airlock", "code", NOW, 0).unwrap_err();
                assert!(matches!(err, TokenError::InvalidSignature), "{alg} {name}: {err}");
            }
            let mut flipped = token.into_bytes();
            let last = flipped.len() - 2;
            flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
            let err = verify(
                std::str::from_utf8(&flipped).unwrap(),
                &jwks,
                "airlock",
                "code",
                NOW,
                0,
            );
            assert!(err.is_err());
        }
    }

    #[test]
    fn a_token_signed_by_a_key_not_in_the_jwks_is_rejected() {
        let f = Fixture::new();
        let trusted = store(Algorithm::Es256);
        let rogue = store(Algorithm::Es256);
        let token = rogue.mint(&f.request()).unwrap().token;
        let err = verify(&token, &trusted.jwks(), "airlock", "code", NOW, 0).unwrap_err();
        assert!(
            matches!(&err, TokenError::UnknownKey(kid) if *kid == rogue.active_kid()),
            "{err}"
        );

        // Rogue signature under a trusted kid: the header is signed too, so
        // swapping in the trusted kid breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": trusted.active_kid()});
        let forged = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            parts[1],
            parts[2]
        );
        let err = verify(&forged, &trusted.jwks(), "airlock", "code", NOW, 0).unwrap_err();
        assert!(matches!(err, TokenError::InvalidSignature), "{err}");
    }

    #[test]
    fn the_algorithm_is_pinned_to_the_key() {
        let f = Fixture::new();
        let store = store(Algorithm::EdDsa);
        let token = store.mint(&f.request()).unwrap().token;
        let parts: Vec<&str> = token.split('.').collect();
        for alg in ["ES256", "HS256", "none"] {
            let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": store.active_kid()});
            let forged = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                parts[1],
                parts[2]
            );
            assert!(
                verify(&forged, &store.jwks(), "airlock", "code", NOW, 0).is_err(),
                "{alg}"
            );
        }
        let no_kid = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#),
            parts[1],
            parts[2]
        );
        let err = verify(&no_kid, &store.jwks(), "airlock", "code", NOW, 0).unwrap_err();
        assert!(matches!(err, TokenError::MissingKid), "{err}");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let store = store(Algorithm::Es256);
        for junk in ["", "a", "a.b", "a.b.c", "....", "eyJ9.eyJ9.AA"] {
            let err = verify(junk, &store.jwks(), "airlock", "code", NOW, 0).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{junk:?}: {err}");
        }
        let f = Fixture::new();
        let token = store.mint(&f.request()).unwrap().token;
        let err = verify(
            &token,
            &serde_json::json!({"nope": []}),
            "airlock",
            "code",
            NOW,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, TokenError::BadJwks(_)), "{err}");
    }

    #[test]
    fn rotation_keeps_old_tokens_verifiable_for_the_window_only() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(1)).unwrap();
        let old_kid = store.active_kid();
        let mut request = f.request();
        request.ttl = Duration::from_secs(1);
        let old = store.mint(&request).unwrap();
        let retired_at = NOW;
        let new_kid = store.rotate_at(retired_at).unwrap();
        assert_ne!(new_kid, old_kid);

        let new = store.mint(&request).unwrap();
        assert_eq!(new.kid, new_kid);
        assert_eq!(old.kid, old_kid);

        // Inside the window both verify against the published set.
        let jwks = store.jwks_at(retired_at);
        assert!(verify(&old.token, &jwks, "airlock", "code", NOW, 0).is_ok());
        assert!(verify(&new.token, &jwks, "airlock", "code", NOW, 0).is_ok());

        // After it, the old key is gone from the JWKS.
        let later = store.jwks_at(retired_at + 2);
        assert!(!later.to_string().contains(&old_kid));
        let err = verify(&old.token, &later, "airlock", "code", NOW, 0).unwrap_err();
        assert!(matches!(err, TokenError::UnknownKey(_)), "{err}");
        assert!(verify(&new.token, &later, "airlock", "code", NOW, 0).is_ok());
    }

    #[test]
    fn rotation_while_minting_on_other_threads_never_yields_a_bad_token() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::EdDsa, TTL).unwrap();
        let tokens = std::thread::scope(|s| {
            let minters: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        (0..300)
                            .map(|_| store.mint(&f.request()).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for _ in 0..20 {
                store.rotate_at(NOW).unwrap();
            }
            minters
                .into_iter()
                .flat_map(|m| m.join().unwrap())
                .collect::<Vec<_>>()
        });
        let jwks = store.jwks_at(NOW);
        for minted in &tokens {
            let claims = verify(&minted.token, &jwks, "airlock", "code", NOW, 0).unwrap();
            let header = decode_header(&minted.token).unwrap();
            assert_eq!(header.kid.as_deref(), Some(minted.kid.as_str()));
            assert_eq!(claims["jti"], minted.jti.as_str());
        }
    }
}

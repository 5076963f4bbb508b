//! Minting: one compact JWS per allowed request, signed with the cached
//! active key. The header is precomputed per key; the claims are serialised
//! straight from the request.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use super::error::TokenError;
use super::store::KeyStore;

/// What the proxy asks to mint. All times are seconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub issuer: &'a str,
    /// `sub`, and the actor: `act = {"sub": agent}` (RFC 8693).
    pub agent: &'a str,
    /// `aud`: a single string, the one service.
    pub audience: &'a str,
    /// `scope`, space-separated (RFC 8693 / RFC 9068).
    pub scopes: &'a [String],
    pub role: &'a str,
    pub session: &'a str,
    pub workflow: &'a str,
    /// `obo`, omitted when `None`.
    pub on_behalf_of: Option<&'a str>,
    pub policy_digest: &'a str,
    /// `req`: see [`request_binding`](super::request_binding).
    pub request_binding: &'a str,
    /// `"single_use": true`, only when true.
    pub single_use: bool,
    /// The `jti`, when the caller chose it ahead (to record the token in the
    /// same state commit as the decision); `None` draws a fresh one.
    pub jti: Option<&'a str>,
    /// The policy's extra claims, after the standard ones. A name the host
    /// sets (or reserves) is refused, never allowed to override.
    pub extra_claims: &'a BTreeMap<String, serde_json::Value>,
    /// `iat` and `nbf`.
    pub now: u64,
    /// `exp = now + ttl`, in whole seconds (a fraction is dropped). Must be
    /// at least one second and at most the key store's `max_token_ttl`.
    pub ttl: Duration,
}

/// A minted token and what the audit log may keep of it.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// THE SECRET: for the upstream request only. Never log it; `Debug`
    /// redacts it.
    pub token: String,
    /// Unique: 128 random bits, base64url.
    pub jti: String,
    pub kid: String,
    pub issued_at: u64,
    pub expires_at: u64,
    /// `sha256:<hex>` of the token, for the audit log.
    pub digest: String,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"<redacted>")
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("digest", &self.digest)
            .finish()
    }
}

// Claim names a policy can never set: the ones minted here, and names
// reserved for the host. One list, owned by the policy contract, which
// refuses them in a verdict; minting refuses them again.
use crate::policy::RESERVED_CLAIMS;

/// The token lifetime: the smallest of the policy's grant, the role's
/// maximum and the session's remaining life, in whole seconds (a token never
/// outlives its session); zero means "do not mint" (the caller denies).
pub fn effective_ttl(grant_ttl_s: u32, role_max_ttl_s: u32, session_remaining: Duration) -> Duration {
    let limit = u64::from(grant_ttl_s.min(role_max_ttl_s));
    Duration::from_secs(limit.min(session_remaining.as_secs()))
}

impl KeyStore {
    /// Mint a token for one request with the active key. Fails closed: any
    /// error means the request must be denied.
    pub fn mint(&self, request: &TokenRequest<'_>) -> Result<MintedToken, TokenError> {
        for (field, value) in [
            ("issuer", request.issuer),
            ("agent", request.agent),
            ("audience", request.audience),
        ] {
            if value.is_empty() {
                return Err(TokenError::EmptyField(field));
            }
        }
        let ttl_s = request.ttl.as_secs();
        if ttl_s == 0 {
            return Err(TokenError::ZeroTtl);
        }
        let max_s = self.max_token_ttl().as_secs();
        if ttl_s > max_s {
            return Err(TokenError::TtlTooLong { ttl_s, max_s });
        }
        let now = request.now;
        let expires_at = now
            .checked_add(ttl_s)
            .ok_or(TokenError::TimeOverflow { now, ttl_s })?;
        if let Some(bad) = request.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(TokenError::InvalidScope(bad.clone()));
        }
        if let Some(name) = request
            .extra_claims
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(TokenError::ReservedClaim(name.clone()));
        }

        let jti = match request.jti {
            Some(jti) if !jti.is_empty() => jti.to_owned(),
            Some(_) => return Err(TokenError::EmptyField("jti")),
            None => new_jti()?,
        };
        let scope = request.scopes.join(" ");
        let claims = serde_json::to_vec(&Claims {
            request,
            scope: &scope,
            jti: &jti,
            expires_at,
        })?;

        let keys = self.current();
        let key = &keys.active;
        let header = key.header_b64();
        let mut token = String::with_capacity(header.len() + claims.len() * 4 / 3 + 92);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);

        let digest = token_digest(&token);
        Ok(MintedToken {
            token,
            jti,
            kid: key.kid().to_owned(),
            issued_at: now,
            expires_at,
            digest,
        })
    }
}

/// `sha256:<hex>` of a token: what the audit log keeps instead of it.
pub(crate) fn token_digest(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// A fresh token id: 128 random bits in base64url.
pub fn new_jti() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The claims, in a fixed order: registered, then Airlock's, then extras.
struct Claims<'a> {
    request: &'a TokenRequest<'a>,
    scope: &'a str,
    jti: &'a str,
    expires_at: u64,
}

#[derive(serde::Serialize)]
struct Actor<'a> {
    sub: &'a str,
}

impl Serialize for Claims<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("iss", r.issuer)?;
        map.serialize_entry("sub", r.agent)?;
        map.serialize_entry("aud", r.audience)?;
        map.serialize_entry("exp", &self.expires_at)?;
        map.serialize_entry("iat", &r.now)?;
        map.serialize_entry("nbf", &r.now)?;
        map.serialize_entry("jti", self.jti)?;
        map.serialize_entry("scope", self.scope)?;
        map.serialize_entry("act", &Actor { sub: r.agent })?;
        map.serialize_entry("role", r.role)?;
        map.serialize_entry("session", r.session)?;
        map.serialize_entry("workflow", r.workflow)?;
        if let Some(obo) = r.on_behalf_of {
            map.serialize_entry("obo", obo)?;
        }
        map.serialize_entry("policy_digest", r.policy_digest)?;
        map.serialize_entry("req", r.request_binding)?;
        if r.single_use {
            map.serialize_entry("single_use", &true)?;
        }
        for (name, value) in r.extra_claims {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::keys::Algorithm;
    use super::super::testing::{Fixture, claims_of};
    use super::*;

    #[test]
    fn claims_are_exactly_the_request() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        let mut request = f.request();
        request.on_behalf_of = Some("alice");
        request.single_use = true;
        let minted = store.mint(&request).unwrap();
        let claims = claims_of(&minted.token);
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "airlock", "sub": "agent-7", "aud": "code",
                "exp": 1_700_000_060u64, "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64,
                "jti": minted.jti, "scope": "issues:read repo:acme/api",
                "act": {"sub": "agent-7"}, "role": "code-reviewer", "session": "s-1",
                "workflow": "wf-1", "obo": "alice", "policy_digest": "sha256:abc",
                "req": "binding", "single_use": true, "ticket": "T-1",
            })
        );
        // The documented order: registered claims, Airlock's, then extras.
        let raw = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(minted.token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let at = |name: &str| raw.find(&format!("\"{name}\":")).unwrap();
        let names = [
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "act", "role",
        ];
        assert!(names.windows(2).all(|w| at(w[0]) < at(w[1])), "{raw}");
        assert!(
            raw.starts_with("{\"iss\":") && at("single_use") < at("ticket"),
            "{raw}"
        );
        assert_eq!(minted.kid, store.active_kid());
        assert_eq!(
            (minted.issued_at, minted.expires_at),
            (1_700_000_000, 1_700_000_060)
        );
        assert_eq!(minted.digest, token_digest(&minted.token));
        assert!(minted.digest.starts_with("sha256:") && minted.digest.len() == 7 + 64);
    }

    #[test]
    fn optional_claims_are_omitted() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::EdDsa, Duration::from_secs(300)).unwrap();
        let claims = claims_of(&store.mint(&f.request()).unwrap().token);
        assert!(claims.get("obo").is_none());
        assert!(claims.get("single_use").is_none());
    }

    #[test]
    fn header_names_alg_typ_and_kid() {
        let f = Fixture::new();
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let store = KeyStore::ephemeral(alg, Duration::from_secs(300)).unwrap();
            let token = store.mint(&f.request()).unwrap().token;
            let header = token.split('.').next().unwrap();
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
            assert_eq!(
                header,
                serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": store.active_kid()})
            );
        }
    }

    #[test]
    fn jti_is_unique_across_10000_mints() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::EdDsa, Duration::from_secs(300)).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let minted = store.mint(&f.request()).unwrap();
            assert_eq!(URL_SAFE_NO_PAD.decode(&minted.jti).unwrap().len(), 16);
            assert!(seen.insert(minted.jti), "duplicate jti");
        }
    }

    #[test]
    fn extra_claims_cannot_override_standard_or_airlock_claims() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        for name in [
            "aud",
            "sub",
            "exp",
            "iss",
            "jti",
            "scope",
            "req",
            "single_use",
            "act",
        ] {
            let extra = BTreeMap::from([(name.to_owned(), serde_json::json!("evil"))]);
            let mut request = f.request();
            request.extra_claims = &extra;
            let err = store.mint(&request).unwrap_err();
            assert!(
                matches!(&err, TokenError::ReservedClaim(n) if n == name),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn lifetime_bounds_are_enforced() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        let mut request = f.request();
        request.ttl = Duration::from_millis(999);
        assert!(matches!(store.mint(&request), Err(TokenError::ZeroTtl)));
        request.ttl = Duration::from_secs(301);
        assert!(matches!(
            store.mint(&request),
            Err(TokenError::TtlTooLong {
                ttl_s: 301,
                max_s: 300
            })
        ));
        request.ttl = Duration::from_secs(300);
        assert_eq!(store.mint(&request).unwrap().expires_at, request.now + 300);
        request.now = u64::MAX - 10;
        assert!(matches!(
            store.mint(&request),
            Err(TokenError::TimeOverflow { .. })
        ));
    }

    #[test]
    fn scopes_that_would_split_or_corrupt_the_claim_are_refused() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        for bad in ["two words", "", "quote\"", "back\\slash", "tab\t", "é"] {
            let scopes = vec![bad.to_owned()];
            let mut request = f.request();
            request.scopes = &scopes;
            assert!(
                matches!(store.mint(&request), Err(TokenError::InvalidScope(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_identity_fields_are_refused() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        let mut request = f.request();
        request.audience = "";
        assert!(matches!(
            store.mint(&request),
            Err(TokenError::EmptyField("audience"))
        ));
    }

    #[test]
    fn debug_of_a_minted_token_hides_the_token() {
        let f = Fixture::new();
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(300)).unwrap();
        let minted = store.mint(&f.request()).unwrap();
        for shown in [format!("{minted:?}"), format!("{minted:#?}")] {
            assert!(!shown.contains(&minted.token), "{shown}");
            for part in minted.token.split('.') {
                assert!(!shown.contains(part), "a token segment leaked: {shown}");
            }
            assert!(shown.contains(&minted.jti) && shown.contains("redacted"));
        }
    }

    #[test]
    fn effective_ttl_is_the_minimum_in_whole_seconds() {
        let long = Duration::from_secs(3600);
        assert_eq!(effective_ttl(60, 300, long), Duration::from_secs(60));
        assert_eq!(effective_ttl(600, 300, long), Duration::from_secs(300));
        assert_eq!(
            effective_ttl(600, 300, Duration::from_secs(42)),
            Duration::from_secs(42)
        );
        assert_eq!(
            effective_ttl(600, 300, Duration::from_millis(42_900)),
            Duration::from_secs(42)
        );
        assert_eq!(effective_ttl(60, 300, Duration::ZERO), Duration::ZERO);
        assert_eq!(effective_ttl(60, 300, Duration::from_millis(999)), Duration::ZERO);
        assert_eq!(effective_ttl(0, 300, long), Duration::ZERO);
        assert_eq!(effective_ttl(60, 0, long), Duration::ZERO);
    }
}

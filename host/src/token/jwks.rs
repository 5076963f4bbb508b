//! Public keys as JWKs (RFC 7517), and their RFC 7638 thumbprints, which are
//! the key ids: a kid is a function of the key alone, so it is stable across
//! restarts and the same in every replica holding the key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::keys::Algorithm;

/// The public half of a signing key, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub alg: Algorithm,
    /// base64url of the x coordinate (EC) or of the public key (Ed25519).
    pub x: String,
    /// base64url of the y coordinate; EC only.
    pub y: Option<String>,
    /// The RFC 7638 thumbprint.
    pub kid: String,
}

const P256_COORDINATE_LEN: usize = 32;
const ED25519_PUBLIC_LEN: usize = 32;

impl PublicKey {
    /// From the raw public key: an uncompressed P-256 point (`04‖x‖y`) or
    /// the 32 Ed25519 bytes.
    pub(crate) fn from_raw(alg: Algorithm, raw: &[u8]) -> Result<PublicKey, String> {
        let (x, y) = match alg {
            Algorithm::Es256 => match raw {
                [4, point @ ..] if point.len() == 2 * P256_COORDINATE_LEN => {
                    let (x, y) = point.split_at(P256_COORDINATE_LEN);
                    (URL_SAFE_NO_PAD.encode(x), Some(URL_SAFE_NO_PAD.encode(y)))
                }
                _ => return Err("not an uncompressed P-256 public key".into()),
            },
            Algorithm::EdDsa if raw.len() == ED25519_PUBLIC_LEN => (URL_SAFE_NO_PAD.encode(raw), None),
            Algorithm::EdDsa => return Err("not a 32-byte Ed25519 public key".into()),
        };
        let kid = thumbprint(alg, &x, y.as_deref());
        Ok(PublicKey { alg, x, y, kid })
    }

    /// From stored JWK members; checks their lengths and recomputes the kid.
    pub(crate) fn from_members(alg: Algorithm, x: &str, y: Option<&str>) -> Result<PublicKey, String> {
        let decode = |name: &str, v: &str| {
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| format!("`{name}` is not base64url"))
        };
        let mut raw = Vec::with_capacity(1 + 2 * P256_COORDINATE_LEN);
        match (alg, y) {
            (Algorithm::Es256, Some(y)) => {
                raw.push(4);
                raw.extend(decode("x", x)?);
                raw.extend(decode("y", y)?);
            }
            (Algorithm::EdDsa, None) => raw.extend(decode("x", x)?),
            (Algorithm::Es256, None) => return Err("an ES256 key needs `y`".into()),
            (Algorithm::EdDsa, Some(_)) => return Err("an EdDSA key has no `y`".into()),
        }
        PublicKey::from_raw(alg, &raw)
    }

    /// The JWK, with `kid`, `alg` and `use`.
    pub(crate) fn jwk(&self) -> Value {
        match &self.y {
            Some(y) => json!({
                "kty": "EC", "crv": "P-256", "x": self.x, "y": y,
                "kid": self.kid, "alg": self.alg.as_str(), "use": "sig",
            }),
            None => json!({
                "kty": "OKP", "crv": "Ed25519", "x": self.x,
                "kid": self.kid, "alg": self.alg.as_str(), "use": "sig",
            }),
        }
    }
}

/// RFC 7638: base64url(sha256) of the required members in lexicographic
/// order, without whitespace. The members' values are base64url or fixed
/// names, so no JSON escaping is needed.
fn thumbprint(alg: Algorithm, x: &str, y: Option<&str>) -> String {
    let canonical = match (alg, y) {
        (Algorithm::Es256, Some(y)) => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
        _ => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A JWK Set document of `keys`.
pub(crate) fn jwk_set<'a>(keys: impl Iterator<Item = &'a PublicKey>) -> Value {
    json!({ "keys": keys.map(PublicKey::jwk).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_ed25519_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
        let key = PublicKey::from_members(
            Algorithm::EdDsa,
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            None,
        )
        .unwrap();
        assert_eq!(key.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn thumbprint_agrees_with_jsonwebtoken() {
        use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let (key, _) = super::super::keys::SigningKey::generate(alg).unwrap();
            let jwk: Jwk = serde_json::from_value(key.public().jwk()).unwrap();
            assert_eq!(
                jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                key.kid(),
                "{alg}"
            );
        }
    }

    #[test]
    fn jwk_shapes() {
        let (ec, _) = super::super::keys::SigningKey::generate(Algorithm::Es256).unwrap();
        let jwk = ec.public().jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], ec.kid());
        assert!(jwk["y"].is_string() && jwk.get("d").is_none());
        let (ed, _) = super::super::keys::SigningKey::generate(Algorithm::EdDsa).unwrap();
        let jwk = ed.public().jwk();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert!(jwk.get("y").is_none() && jwk.get("d").is_none());
        assert_eq!(jwk.as_object().unwrap().len(), 6);
    }

    #[test]
    fn bad_members_are_rejected() {
        assert!(PublicKey::from_members(Algorithm::EdDsa, "short", None).is_err());
        assert!(PublicKey::from_members(Algorithm::Es256, "AAAA", None).is_err());
        assert!(PublicKey::from_members(Algorithm::EdDsa, "!!", None).is_err());
    }
}

//! Signing keys: generated or parsed from PKCS#8 once, then kept parsed for
//! the life of the key, with their JWS header precomputed.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::error::TokenError;
use super::jwks::PublicKey;

/// The JWS algorithm of the signing keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    /// The JOSE name: `ES256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A parsed private key, ready to sign.
pub(crate) struct SigningKey {
    public: PublicKey,
    /// base64url of `{"alg":…,"typ":"JWT","kid":…}`: the same for every token.
    header_b64: String,
    signer: Signer,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.public.alg)
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key and its PKCS#8 (v1) DER encoding, for storage.
    pub(crate) fn generate(alg: Algorithm) -> Result<(SigningKey, Vec<u8>), TokenError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&rng),
        }
        .map_err(|_| TokenError::KeyGeneration(alg.as_str()))?;
        let der = pkcs8.as_ref().to_vec();
        let key = SigningKey::from_pkcs8(alg, &der).map_err(|_| TokenError::KeyGeneration(alg.as_str()))?;
        Ok((key, der))
    }

    /// Parse a PKCS#8 DER private key of `alg`. The error is a detail for a
    /// message naming the file.
    pub(crate) fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, String> {
        let (signer, raw_public) = match alg {
            Algorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| e.to_string())?;
                let raw = pair.public_key().as_ref().to_vec();
                (Signer::Es256(pair), raw)
            }
            Algorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| e.to_string())?;
                let raw = pair.public_key().as_ref().to_vec();
                (Signer::EdDsa(pair), raw)
            }
        };
        let public = PublicKey::from_raw(alg, &raw_public)?;
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": public.kid});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(SigningKey {
            public,
            header_b64,
            signer,
        })
    }

    pub(crate) fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn kid(&self) -> &str {
        &self.public.kid
    }

    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// The raw JWS signature of `message` (R‖S for ES256, 64 bytes either way).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<aws_lc_rs::signature::Signature, TokenError> {
        match &self.signer {
            // aws-lc-rs ignores the rng argument and draws its own nonce.
            Signer::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map_err(|_| TokenError::Signing(self.public.kid.clone())),
            Signer::EdDsa(pair) => Ok(pair.sign(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_serde_names_and_default() {
        assert_eq!(serde_json::to_string(&Algorithm::Es256).unwrap(), "\"ES256\"");
        assert_eq!(serde_json::to_string(&Algorithm::EdDsa).unwrap(), "\"EdDSA\"");
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"EdDSA\"").unwrap(),
            Algorithm::EdDsa
        );
        assert!(serde_json::from_str::<Algorithm>("\"HS256\"").is_err());
        assert_eq!(Algorithm::default(), Algorithm::Es256);
    }

    #[test]
    fn a_key_reparsed_from_its_pkcs8_has_the_same_kid() {
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(key.kid(), again.kid());
            assert_eq!(key.sign(b"m").unwrap().as_ref().len(), 64);
        }
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_rejected() {
        let (_, ec) = SigningKey::generate(Algorithm::Es256).unwrap();
        let (_, ed) = SigningKey::generate(Algorithm::EdDsa).unwrap();
        assert!(SigningKey::from_pkcs8(Algorithm::EdDsa, &ec).is_err());
        assert!(SigningKey::from_pkcs8(Algorithm::Es256, &ed).is_err());
        assert!(SigningKey::from_pkcs8(Algorithm::Es256, b"not a key").is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (key, _) = SigningKey::generate(Algorithm::EdDsa).unwrap();
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.kid()) && !shown.contains("Ed25519KeyPair"),
            "{shown}"
        );
    }
}

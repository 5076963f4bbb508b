//! Everything that can go wrong with keys, minting and verification. Messages
//! name the file, claim or key involved, never a token or key material.

use std::path::PathBuf;

/// A token-module failure. Minting errors mean "deny the request" (fail
/// closed); verification errors say why a token was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    // --- key storage ---
    /// A file-system operation on the key directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key directory or a key file is readable or writable by others.
    #[error(
        "{} has mode {mode:03o}: signing keys must not be accessible by group or others \
         (chmod {expected:03o} it)",
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32, expected: u32 },
    /// A key file does not hold a usable private key.
    #[error("{}: not a valid {algorithm} PKCS#8 private key{detail}", path.display())]
    BadKeyFile {
        path: PathBuf,
        algorithm: &'static str,
        detail: String,
    },
    /// The key manifest (`keys.json`) is malformed or inconsistent.
    #[error("{}: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    /// The crypto library could not generate a key.
    #[error("cannot generate a {0} signing key")]
    KeyGeneration(&'static str),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    // --- minting ---
    /// The effective lifetime is zero: the caller must deny, not mint.
    #[error("token lifetime is zero (the grant, the role or the session has no time left): not minting")]
    ZeroTtl,
    /// The requested lifetime exceeds the key store's `max_token_ttl`, which
    /// bounds how long a retired key stays published.
    #[error("token lifetime {ttl_s}s exceeds the maximum of {max_s}s configured for signing keys")]
    TtlTooLong { ttl_s: u64, max_s: u64 },
    /// `now + ttl` does not fit in a timestamp.
    #[error("token expiry overflows: now {now} + ttl {ttl_s}s")]
    TimeOverflow { now: u64, ttl_s: u64 },
    /// A policy's extra claim would override a claim the host sets.
    #[error("extra claim `{0}` is reserved: the host sets it")]
    ReservedClaim(String),
    /// A scope is empty or has characters outside RFC 6749's scope-token set
    /// (it would split or corrupt the space-separated `scope` claim).
    #[error("scope {0:?} is not a valid scope token (no spaces, quotes or backslashes; not empty)")]
    InvalidScope(String),
    /// A required field of the mint request is empty.
    #[error("cannot mint: `{0}` is empty")]
    EmptyField(&'static str),
    /// Encoding the claims as JSON failed.
    #[error("cannot encode token claims: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The crypto library failed to sign.
    #[error("signing with key `{0}` failed")]
    Signing(String),

    // --- verification ---
    /// Not a compact JWS, bad base64 or bad JSON.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The JWK Set document is not usable.
    #[error("invalid JWKS: {0}")]
    BadJwks(String),
    /// The token header has no `kid`.
    #[error("token header has no `kid`")]
    MissingKid,
    /// No published key has the token's `kid` (unknown, or retired and dropped).
    #[error("no key with kid `{0}` in the JWKS (unknown, or retired and no longer published)")]
    UnknownKey(String),
    /// The header's `alg` is not the algorithm of the key named by `kid`, or
    /// the key is not of a supported type.
    #[error("token algorithm `{token}` does not match key `{kid}` ({key})")]
    AlgorithmMismatch { token: String, kid: String, key: String },
    /// The signature does not verify with the key named by `kid`.
    #[error("token signature does not verify")]
    InvalidSignature,
    /// `exp` has passed (after leeway).
    #[error("token expired at {exp} (now {now}, leeway {leeway_s}s)")]
    Expired { exp: u64, now: u64, leeway_s: u64 },
    /// `nbf` is in the future (after leeway).
    #[error("token not valid before {nbf} (now {now}, leeway {leeway_s}s)")]
    NotYetValid { nbf: u64, now: u64, leeway_s: u64 },
    /// `iss` is not the expected issuer.
    #[error("token issuer is not `{expected}`")]
    WrongIssuer { expected: String },
    /// `aud` is not exactly the expected audience.
    #[error("token audience is not exactly `{expected}`")]
    WrongAudience { expected: String },
    /// A required claim is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(String),
    /// A claim has the wrong type or form.
    #[error("token claim `{0}` is malformed")]
    BadClaim(String),
    /// Any other rejection reported by the JWT library.
    #[error("token rejected: {0}")]
    Rejected(String),
}

impl TokenError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TokenError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

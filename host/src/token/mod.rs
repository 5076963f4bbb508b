//! Tokens: signing keys (generation, storage, rotation, the JWKS), minting
//! one short-lived JWT per allowed request, binding it to that request, and
//! verification for upstream services, tests and introspection.
//!
//! Minting is on the proxy's hot path: keys are parsed once and cached, the
//! JWS header is precomputed per key, and the compact JWS is assembled here
//! (jsonwebtoken's `encode` re-parses the key on every call). Verification
//! uses jsonwebtoken. Nothing here knows about HTTP or policies: the caller
//! turns a grant into a [`TokenRequest`] and checks `single_use` and
//! revocation against its state.

mod binding;
mod error;
mod jwks;
mod keys;
mod mint;
mod store;
#[cfg(test)]
mod testing;
mod verify;

pub use binding::request_binding;
pub use error::TokenError;
pub use keys::Algorithm;
pub use mint::{MintedToken, TokenRequest, effective_ttl, new_jti};
pub use store::KeyStore;
pub use verify::verify;

//! The demo code host of the bug-fix workflow (service `code`; see
//! `../WORKFLOW.md`): a small real HTTP server holding one repository,
//! `acme/shop`, in memory, that trusts nothing but Airlock's tokens.
//!
//! Every request is verified before anything else happens, in this order:
//! a bearer JWT is present; its header names ES256 or EdDSA and a key of
//! Airlock's JWKS, and the signature is valid; `iss`, `aud`, `exp` and `nbf`
//! hold; its `scope` grants the operation; its `req` claim equals the request
//! binding recomputed from the request as received; and Airlock's
//! introspection says it is active (which consumes a single-use token). Only
//! then does the request act. Every request, refused or not, is recorded.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use airlock_code_host::{CodeHost, CodeHostConfig};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let host = CodeHost::spawn(
//!     listener,
//!     CodeHostConfig {
//!         issuer: "airlock".into(),
//!         audience: "code".into(),
//!         jwks_url: "http://127.0.0.1:8081/.well-known/jwks.json".into(),
//!         introspect_url: "http://127.0.0.1:8081/v1/introspect".into(),
//!         introspection_token: "…".into(),
//!     },
//! );
//! println!("code host on http://{}", host.local_addr());
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

mod auth;
mod http;
mod repo;
#[cfg(test)]
mod tests;

pub use auth::request_binding;

/// Where the code host finds Airlock, and what it expects of its tokens.
#[derive(Clone)]
pub struct CodeHostConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// The expected `aud`: `"code"` in the workflow.
    pub audience: String,
    /// Airlock's JWK Set, e.g. `http://127.0.0.1:8081/.well-known/jwks.json`.
    /// Fetched on the first request, and again when a token names an
    /// unknown key, at most once per second.
    pub jwks_url: String,
    /// Airlock's RFC 7662 endpoint, e.g. `http://127.0.0.1:8081/v1/introspect`.
    pub introspect_url: String,
    /// Sent as `Authorization: Bearer` to `introspect_url`.
    pub introspection_token: String,
}

impl fmt::Debug for CodeHostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeHostConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("introspect_url", &self.introspect_url)
            .field("introspection_token", &"<redacted>")
            .finish()
    }
}

/// One request as the code host received it, and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub method: String,
    /// The path as received, without the query.
    pub path: String,
    /// The query string as received (not canonicalised), `""` if none.
    pub query: String,
    /// The operation the request addressed (`tasks.comment`, …), if any.
    pub operation: Option<String>,
    /// The token's `sub`, once its signature and claims were verified.
    pub agent: Option<String>,
    /// The token's `jti`, once its signature and claims were verified.
    pub jti: Option<String>,
    pub status: u16,
    /// The error code answered, if the request was refused or failed.
    pub error: Option<String>,
    /// The raw `Authorization` header value as received, so tests can replay
    /// it. Never serialized.
    #[serde(skip)]
    pub authorization: Option<String>,
}

/// A running code host. Cheap to clone; the server runs on the Tokio
/// runtime it was spawned on until that runtime shuts down, whether or not
/// any handle is kept.
#[derive(Clone)]
pub struct CodeHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// What the server and every handle share.
pub(crate) struct Shared {
    pub(crate) repo: Mutex<repo::Repo>,
    pub(crate) received: Mutex<Vec<Received>>,
    pub(crate) auth: auth::Verifier,
}

impl Shared {
    pub(crate) fn repo(&self) -> MutexGuard<'_, repo::Repo> {
        self.repo.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn received(&self) -> MutexGuard<'_, Vec<Received>> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CodeHost {
    /// Serve on an already-bound listener (so callers can bind port 0 first
    /// and learn the address before Airlock's config is written). Must be
    /// called within a Tokio runtime.
    pub fn spawn(listener: tokio::net::TcpListener, config: CodeHostConfig) -> CodeHost {
        let addr = listener.local_addr().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "code host: the listener has no local address");
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let shared = Arc::new(Shared {
            repo: Mutex::new(repo::Repo::seeded()),
            received: Mutex::new(Vec::new()),
            auth: auth::Verifier::new(config),
        });
        tokio::spawn(http::serve(listener, Arc::clone(&shared)));
        tracing::info!(%addr, "code host serving acme/shop");
        CodeHost { addr, shared }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in order, including refused requests
    /// (not the unauthenticated `GET /_demo/received` itself).
    pub fn received(&self) -> Vec<Received> {
        self.shared.received().clone()
    }

    /// The content of `path` on `branch`, if both exist.
    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        self.shared.repo().file(branch, path).map(str::to_owned)
    }

    /// Whether the pull request with head branch `head` was merged.
    pub fn pull_merged(&self, head: &str) -> bool {
        self.shared.repo().pull_merged(head)
    }

    /// The comments on the task ticket `key` (empty if there is none), as
    /// the API answers them.
    pub fn task_comments(&self, key: &str) -> Vec<serde_json::Value> {
        self.shared.repo().task_comments(key)
    }

    /// The keys of the task tickets, in the order they were created.
    pub fn tasks(&self) -> Vec<String> {
        self.shared.repo().task_keys()
    }
}

impl fmt::Debug for CodeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeHost")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

//! Services as the proxy sees them: route table, upstream client, and the
//! credential the proxy injects. Secrets are read once at start-up from a
//! file or the environment and never logged.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::route::RouteTable;
use crate::config::{AuthConfig, AuthKind, Config, ServiceConfig, ServiceKind};

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A credential only the proxy holds. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// One configured upstream service, ready to forward to.
pub struct Service {
    pub name: String,
    pub kind: ServiceKind,
    /// Scheme and authority plus any base path, without a trailing `/`.
    pub upstream: String,
    pub routes: RouteTable,
    pub auth: AuthConfig,
    pub secret: Option<Secret>,
    pub client: HttpClient,
    pub timeout: Duration,
}

impl Service {
    /// Whether the minted JWT is injected.
    pub fn injects_jwt(&self) -> bool {
        matches!(self.auth.kind, AuthKind::MintedJwt | AuthKind::Both)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("service {service}: secret file {path}: {source}")]
    SecretFile {
        service: String,
        path: String,
        source: std::io::Error,
    },
    #[error("service {service}: environment variable {var} is not set")]
    SecretEnv { service: String, var: String },
    #[error("service {service}: the secret is empty")]
    EmptySecret { service: String },
    #[error("TLS roots: {0}")]
    Tls(String),
}

fn read_secret(name: &str, auth: &AuthConfig) -> Result<Option<Secret>, ServiceError> {
    let raw = if let Some(path) = &auth.secret_file {
        std::fs::read_to_string(path).map_err(|source| ServiceError::SecretFile {
            service: name.into(),
            path: path.display().to_string(),
            source,
        })?
    } else if let Some(var) = &auth.secret_env {
        std::env::var(var).map_err(|_| ServiceError::SecretEnv {
            service: name.into(),
            var: var.clone(),
        })?
    } else {
        return Ok(None);
    };
    let secret = raw.trim().to_string();
    if secret.is_empty() {
        return Err(ServiceError::EmptySecret { service: name.into() });
    }
    Ok(Some(Secret(secret)))
}

fn client(config: &ServiceConfig) -> Result<HttpClient, ServiceError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // hyper's client never follows redirects: a 3xx goes back to the agent
    // (scrubbed) like any other response.
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Build every configured service.
pub fn services(config: &Config) -> Result<HashMap<String, Service>, ServiceError> {
    config
        .services
        .iter()
        .map(|(name, c)| {
            Ok((
                name.clone(),
                Service {
                    name: name.clone(),
                    kind: c.kind,
                    upstream: c.upstream.trim_end_matches('/').to_string(),
                    routes: RouteTable::new(&c.routes),
                    auth: c.auth.clone(),
                    secret: read_secret(name, &c.auth)?,
                    client: client(c)?,
                    timeout: Duration::from_millis(c.timeout_ms),
                },
            ))
        })
        .collect()
}

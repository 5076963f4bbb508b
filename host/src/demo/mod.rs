//! Demo upstream services for the embedded default (`airlock serve` with no
//! config): small real HTTP servers on loopback that, like a real service
//! behind Airlock, accept a request only with a valid Airlock JWT for their
//! own audience, checked against the live JWKS.
//!
//! And `airlock demo`: the bug-fix workflow of `examples/bugfix-workflow/`,
//! five scripted agents end to end ([`bugfix`]).

pub mod bugfix;
mod scenario;

pub use bugfix::{DemoOptions, run as run_bugfix};

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::token::KeyStore;

/// Start one demo service per configured service whose upstream is an
/// `http://127.0.0.1:PORT` address. Returns the names started.
pub async fn start(config: &crate::config::Config, keys: Arc<KeyStore>) -> anyhow::Result<Vec<String>> {
    let mut started = Vec::new();
    for (name, service) in &config.services {
        let Some(addr) = service.upstream.strip_prefix("http://127.0.0.1:") else {
            continue;
        };
        let port: u16 = addr.trim_end_matches('/').parse()?;
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let (name, keys, issuer) = (name.clone(), keys.clone(), config.tokens.issuer.clone());
        started.push(name.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (name, keys, issuer) = (name.clone(), keys.clone(), issuer.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let reply = answer(&name, &keys, &issuer, &req);
                        async move { Ok::<_, std::convert::Infallible>(reply) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Ok(started)
}

fn answer(
    service: &str,
    keys: &KeyStore,
    issuer: &str,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = crate::proxy::now_ms() / 1000;
    let (status, body) = match token.map(|t| crate::token::verify(t, &keys.jwks(), issuer, service, now, 5)) {
        Some(Ok(claims)) => (
            StatusCode::OK,
            json!({
                "service": service,
                "path": req.uri().path(),
                "granted_scope": claims.get("scope"),
                "data": sample(service, req.uri().path()),
            }),
        ),
        Some(Err(e)) => (
            StatusCode::UNAUTHORIZED,
            json!({ "error": format!("invalid token: {e}") }),
        ),
        None => (StatusCode::UNAUTHORIZED, json!({ "error": "no bearer token" })),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn sample(service: &str, path: &str) -> serde_json::Value {
    match service {
        "crash-reporting" => json!({ "id": path.rsplit('/').next(), "signal": "SIGSEGV",
            "frames": ["pager::page", "api::list_items", "main"], "release": "2.14.0" }),
        "analytics" => {
            json!({ "metric": path.rsplit('/').next(), "points": [[1763700000, 42], [1763703600, 57]] })
        }
        _ => json!({ "path": path }),
    }
}

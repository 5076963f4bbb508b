//! The CLI's client for the admin API (`airlock session …`, `airlock policy
//! reload`, `airlock keys rotate`).

use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// The admin API's base URL.
    #[arg(long, env = "AIRLOCK_ADMIN_URL", default_value = "http://127.0.0.1:8081")]
    admin_url: String,
    /// File with the admin token (default: $AIRLOCK_ADMIN_TOKEN, else .airlock/admin.token).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl AdminArgs {
    fn token(&self) -> Result<String, String> {
        if let Some(path) = &self.token_file {
            return std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        if let Ok(t) = std::env::var("AIRLOCK_ADMIN_TOKEN") {
            return Ok(t.trim().to_string());
        }
        std::fs::read_to_string(".airlock/admin.token")
            .map(|t| t.trim().to_string())
            .map_err(|_| "no admin token: set $AIRLOCK_ADMIN_TOKEN or pass --token-file".to_string())
    }

    /// Call the admin API; the JSON answer, or an error naming the status and reason.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let token = self.token()?;
        let url = format!("{}{path}", self.admin_url.trim_end_matches('/'));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the client: {e}"))?;
        runtime.block_on(async move {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let request = hyper::Request::builder()
                .method(method)
                .uri(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                )))
                .map_err(|e| format!("{url}: {e}"))?;
            let response = client.request(request).await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() {
                Ok(value)
            } else {
                Err(format!(
                    "{status}: {}",
                    value
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ))
            }
        })
    }
}

//! `airlock demo`: the multi-agent bug fix of `examples/bugfix-workflow/`,
//! end to end, in one process: Airlock (proxy + admin API) on loopback, the
//! demo code host behind it, five scripted agents and one scripted human.
//!
//! Nothing is short-cut: agents only hold session handles and speak HTTP to
//! the proxy; the code host verifies every token against the JWKS and
//! introspects it; approvals go through the admin API; the run ends with the
//! audit trail and its verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use airlock_code_host::{CodeHost, CodeHostConfig};

use super::scenario;
use crate::config::Config;
use crate::server::{Airlock, Bound, bind, random_token, write_private};

/// The workflow's configuration, built into the binary.
pub const CONFIG: &str = include_str!("../../../examples/bugfix-workflow/airlock.toml");

/// The five roles, in the order the workflow meets them.
pub const ROLES: [&str; 5] = ["business-agent", "developer", "senior-reviewer", "qa", "release"];

/// Where the demo works.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The repository root (policies are built from `<root>/policies/<role>`).
    pub root: PathBuf,
    /// Scratch directory: built policies, keys, tokens, audit log. The run's
    /// data (`<dir>/data`) is started afresh each time.
    pub dir: PathBuf,
    /// Use these prebuilt components (`<role>.wasm`) instead of building.
    pub policies: Option<PathBuf>,
}

/// Run the whole scenario, printing each step to `out`. `Ok(true)` when
/// every step got the verdict the workflow expects and the audit chain
/// verifies.
pub async fn run(options: &DemoOptions, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<bool> {
    let policies = match &options.policies {
        Some(dir) => dir.clone(),
        None => build_policies(&options.root, &options.dir.join("policies"), out)?,
    };
    let data = options.dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    std::fs::create_dir_all(&data)?;
    let admin_token = random_token("ala")?;
    let introspection_token = random_token("ali")?;
    write_private(&data.join("admin.token"), &admin_token)?;
    write_private(&data.join("introspection.token"), &introspection_token)?;

    let mut config = Config::parse(
        CONFIG,
        &options.root.join("examples/bugfix-workflow/airlock.toml"),
    )?;
    config.listen.proxy = "127.0.0.1:0".parse()?;
    config.listen.admin = "127.0.0.1:0".parse()?;
    config.data.dir = data.clone();
    config.data.audit_log = None;
    config.tokens.keys_dir = Some(data.join("keys"));
    config.policies.dir = policies;
    config.policies.cache_dir = Some(options.dir.join("cache"));
    config.admin.token_file = Some(data.join("admin.token"));
    config.admin.token_env = None;
    config.admin.introspection_token_file = Some(data.join("introspection.token"));
    config.admin.introspection_token_env = None;
    let code_listener = TcpListener::bind("127.0.0.1:0").await?;
    let code_addr = code_listener.local_addr()?;
    match config.services.get_mut("code") {
        Some(service) => service.upstream = format!("http://{code_addr}"),
        None => bail!("the workflow's configuration has no `code` service"),
    }
    let issuer = config.tokens.issuer.clone();
    let audit_path = config.audit_log_path();

    let airlock = Airlock::start(config).await?;
    let (bound, serving) = bind(airlock.clone()).await?;
    let server = tokio::spawn(serving);
    let code = CodeHost::spawn(
        code_listener,
        CodeHostConfig {
            issuer,
            audience: "code".into(),
            jwks_url: format!("http://{}/.well-known/jwks.json", bound.admin),
            introspect_url: format!("http://{}/v1/introspect", bound.admin),
            introspection_token: introspection_token.clone(),
        },
    );
    writeln!(
        out,
        "airlock demo: proxy http://{}, admin http://{}, code host http://{}\n",
        bound.proxy, bound.admin, code_addr
    )?;

    let net = Net::new(bound, admin_token);
    let ok = scenario::play(&net, &code, out).await;
    server.abort();
    let ok = ok?;

    writeln!(out, "\naudit trail ({}):", audit_path.display())?;
    print_trail(&audit_path, out)?;
    let verified = crate::audit::verify(&audit_path);
    match &verified {
        Ok(n) => writeln!(out, "\naudit verify: ok, {n} records, chain intact")?,
        Err(e) => writeln!(out, "\naudit verify: FAILED: {e}")?,
    }
    Ok(ok && verified.is_ok())
}

/// Build each role's policy into `dir` (cargo makes repeated runs cheap).
fn build_policies(root: &Path, dir: &Path, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for role in ROLES {
        let source = root.join("policies").join(role);
        if !source.join("Cargo.toml").is_file() {
            bail!(
                "{} is missing: run `airlock demo` from the repository root",
                source.display()
            );
        }
        writeln!(out, "building the {role} policy")?;
        let built = crate::build::build_policy(&source, None)?;
        std::fs::copy(&built, dir.join(format!("{role}.wasm")))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// One line per audit record: what happened, to whom, and why.
fn print_trail(path: &Path, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for line in text.lines() {
        let r: Value = serde_json::from_str(line)?;
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let summary = match s("kind").as_str() {
            "decision" => format!(
                "{:<8} {:<16} {:<16} {}{}{}",
                s("verdict"),
                s("role"),
                r["operation"].as_str().unwrap_or("-"),
                r["token_jti"]
                    .as_str()
                    .map(|j| format!("jti={j} "))
                    .unwrap_or_default(),
                r["approval_id"]
                    .as_str()
                    .map(|a| format!("approval={a} "))
                    .unwrap_or_default(),
                r["reason"].as_str().map(|x| shorten(x, 90)).unwrap_or_default(),
            ),
            "outcome" => format!(
                "outcome  upstream {}",
                r["upstream_status"]
                    .as_u64()
                    .map_or_else(|| s("error"), |c| c.to_string())
            ),
            _ => format!("{:<8} {} {}", "admin", s("action"), s("subject")),
        };
        writeln!(out, "  {:>3} {summary}", r["seq"])?;
    }
    Ok(())
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// How the scripted agents and the scripted human reach Airlock.
pub(super) struct Net {
    pub(super) bound: Bound,
    admin_token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An HTTP answer, body parsed as JSON (or `null`).
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl Net {
    fn new(bound: Bound, admin_token: String) -> Arc<Self> {
        Arc::new(Net {
            bound,
            admin_token,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        })
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut builder = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let response = self.client.request(builder.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// The data plane, as the agent holding `handle`.
    pub(super) async fn agent(
        &self,
        handle: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        approval: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let auth = format!("Bearer {handle}");
        let mut headers = vec![("proxy-authorization", auth.as_str())];
        if let Some(id) = approval {
            headers.push(("x-airlock-approval", id));
        }
        let url = format!("http://{}/code{path}", self.bound.proxy);
        self.send(method, &url, &headers, body).await
    }

    /// The admin API, as the orchestrator or the human approver.
    pub(super) async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let auth = format!("Bearer {}", self.admin_token);
        let url = format!("http://{}{path}", self.bound.admin);
        self.send(method, &url, &[("authorization", auth.as_str())], body)
            .await
    }

    /// A session for one agent of the workflow; returns its handle.
    pub(super) async fn session(&self, workflow: &str, role: &str, agent: &str) -> anyhow::Result<String> {
        let a = self
            .admin(
                "POST",
                "/v1/sessions",
                Some(&json!({ "agent": agent, "role": role, "workflow": workflow,
                               "on_behalf_of": "alice@acme.example", "ttl_s": 900 })),
            )
            .await?;
        match a.body["handle"].as_str() {
            Some(h) if a.status == 201 => Ok(h.to_string()),
            _ => bail!("creating the {role} session failed: {} {}", a.status, a.body),
        }
    }
}

//! Start-up: build every part from the configuration and serve the two
//! listeners (agents on `listen.proxy`, operators on `listen.admin`).
//!
//! Nothing here decides anything; it wires the parts together and owns
//! their lifetime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::audit::{AdminRecord, AuditEvent, AuditLog};
use crate::config::{Config, MAX_ROLE_MEMORY, MAX_TOKEN_TTL_S, StateBackend};
use crate::metrics::Metrics;
use crate::policy::{Engine, EngineConfig, PolicyDir, Registry, RegistryError, ReloadOutcome, Watcher};
use crate::proxy::{Secret, Service, services};
use crate::state::{MemoryStore, Metered, RedisOptions, RedisStore, Store};
use crate::token::KeyStore;

/// Everything a request may need, shared by both planes.
pub struct Airlock {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    /// Each role's requests-per-minute limit, as the store's `begin` takes it.
    pub rate_limits: std::collections::BTreeMap<String, u32>,
    pub keys: Arc<KeyStore>,
    pub audit: AuditLog,
    pub services: HashMap<String, Service>,
    pub admin_token: Secret,
    pub introspection_token: Option<Secret>,
    /// What `/metrics` serves; every part records into it.
    pub metrics: Arc<Metrics>,
    /// When set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<Secret>,
    /// The MCP sessions agents opened through this process.
    pub mcp: crate::proxy::McpSessions,
    /// Decision inputs of the roles that capture them (`capture_inputs`).
    pub capture: Option<crate::capture::CaptureLog>,
    /// Where roles' candidate versions evaluate (shadow).
    pub shadows: crate::proxy::Shadows,
    _watcher: Option<std::sync::Mutex<Watcher>>,
}

/// Read a credential from a file or an environment variable.
fn credential(file: Option<&Path>, env: Option<&str>, what: &str) -> anyhow::Result<Option<Secret>> {
    let raw = match (file, env) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path).with_context(|| format!("{what}: reading {}", path.display()))?,
        ),
        (None, Some(var)) => Some(std::env::var(var).with_context(|| format!("{what}: ${var} is not set"))?),
        (None, None) => None,
    };
    match raw.map(|r| r.trim().to_string()) {
        Some(t) if t.len() < 16 => bail!("{what}: the token must be at least 16 characters"),
        Some(t) => Ok(Some(Secret(t))),
        None => Ok(None),
    }
}

/// The admin token: from the configured file or variable, else
/// `$AIRLOCK_ADMIN_TOKEN`, else generated once into `<data>/admin.token`.
fn admin_token(config: &Config) -> anyhow::Result<Secret> {
    let configured = credential(
        config.admin.token_file.as_deref(),
        config.admin.token_env.as_deref(),
        "admin token",
    )?;
    if let Some(t) = configured {
        return Ok(t);
    }
    if let Some(t) = credential(
        None,
        std::env::var("AIRLOCK_ADMIN_TOKEN")
            .ok()
            .map(|_| "AIRLOCK_ADMIN_TOKEN"),
        "admin token",
    )? {
        return Ok(t);
    }
    let path = config.data.dir.join("admin.token");
    if let Some(t) = credential(Some(&path), None, "admin token").ok().flatten() {
        return Ok(t);
    }
    let token = random_token("ala")?;
    write_private(&path, &token)?;
    tracing::info!(path = %path.display(), "generated an admin token");
    Ok(Secret(token))
}

/// A bearer secret: `prefix_` and 32 random bytes in hex.
pub(crate) fn random_token(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no secure random numbers"))?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}

/// Create `path` (and its directory) readable by the owner only; an
/// existing file is an error, never overwritten.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

impl Airlock {
    /// Build every part. Fails, naming what and why, if any part cannot start.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Airlock>> {
        std::fs::create_dir_all(&config.data.dir)
            .with_context(|| format!("creating the data directory {}", config.data.dir.display()))?;
        let metrics = Arc::new(Metrics::new(match config.state.backend {
            StateBackend::Memory => "memory",
            StateBackend::Sqlite => "sqlite",
            StateBackend::Redis => "redis",
        }));
        let audit = AuditLog::open(&config.audit_log_path())
            .context("opening the audit log")?
            .observed(metrics.clone());
        // Retired keys stay published for the longest lifetime any role
        // may give a token (config checking keeps every role under it).
        let keys = Arc::new(
            KeyStore::open(
                &config.keys_dir(),
                config.tokens.algorithm,
                Duration::from_secs(MAX_TOKEN_TTL_S),
            )
            .context("opening the signing keys")?,
        );
        follow_key_rotation(&keys);
        let engine = Engine::new(EngineConfig {
            max_memory_bytes: MAX_ROLE_MEMORY,
            cache_dir: config.policies.cache_dir.clone(),
            spare_instances: config.policies.spare_instances,
            ..EngineConfig::default()
        })?;
        let dir = PolicyDir::open(&config.policies.dir)?.trusting(config.policies.trusted_keys()?);
        let registry = match Registry::new(engine, dir, config.role_bindings()) {
            Ok(r) => Arc::new(r.observed(metrics.clone())),
            Err(e) => {
                let _ = audit.append(admin_event("policy.rejected", "startup", "", Some(e.to_string())));
                return Err(e.into());
            }
        };
        for (role, info) in registry.list() {
            audit.append(admin_event("policy.loaded", "startup", &role, Some(info.digest)))?;
        }
        // Held only to keep the watch alive; the Mutex makes Airlock Sync.
        let watcher = if config.policies.watch {
            let audit = audit.clone();
            let on_reload = move |role: &str, result: &Result<ReloadOutcome, RegistryError>| {
                if matches!(result, Ok(ReloadOutcome::Unchanged { .. })) {
                    return; // a touched file, not a change
                }
                let (action, detail, _) = crate::admin::reload_outcome(role, result);
                if let Err(e) = audit.append(admin_event(action, "watcher", role, Some(detail))) {
                    tracing::error!(role, error = %e, "auditing a hot reload failed");
                }
            };
            Some(std::sync::Mutex::new(registry.watch(on_reload)?))
        } else {
            None
        };
        let store: Arc<dyn Store> = Arc::new(Metered::new(open_store(&config).await?, metrics.clone()));
        let services = services(&config)?;
        let admin_token = admin_token(&config)?;
        let introspection_token = credential(
            config.admin.introspection_token_file.as_deref(),
            config.admin.introspection_token_env.as_deref(),
            "introspection token",
        )?;
        let metrics_token = credential(
            config.metrics.token_file.as_deref(),
            config.metrics.token_env.as_deref(),
            "metrics token",
        )?;
        let capture = if config.roles.values().any(|r| r.capture_inputs) {
            let path = config
                .audit_log_path()
                .with_file_name(crate::capture::CAPTURE_FILE);
            Some(crate::capture::CaptureLog::open(
                &path,
                config.capture.settings(),
            )?)
        } else {
            None
        };
        Ok(Arc::new(Airlock {
            metrics,
            metrics_token,
            mcp: crate::proxy::McpSessions::default(),
            capture,
            shadows: crate::proxy::Shadows::default(),
            registry,
            store,
            rate_limits: config.rate_limits(),
            keys,
            audit,
            services,
            admin_token,
            introspection_token,
            config,
            _watcher: watcher,
        }))
    }
}

/// How often a replica looks for a key set another process wrote.
const KEY_POLL: Duration = Duration::from_secs(5);

/// Replicas share one key directory: adopt a rotation made elsewhere. The
/// task ends with the key store.
fn follow_key_rotation(keys: &Arc<KeyStore>) {
    let keys = Arc::downgrade(keys);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_POLL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = keys.upgrade() else { return };
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.reload_if_changed()).await {
                tracing::warn!(error = %e, "cannot reload the signing keys; keeping the current ones");
            }
        }
    });
}

/// The configured state store, ready to serve.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let state = &config.state;
    Ok(match state.backend {
        StateBackend::Memory => Arc::new(MemoryStore::new()),
        StateBackend::Sqlite => {
            let path = config.state_db_path();
            Arc::new(
                MemoryStore::durable(&path, state.fsync, crate::proxy::now_ms())
                    .context("opening the state store")?,
            )
        }
        StateBackend::Redis => {
            let url = state
                .url
                .clone()
                .context("state.url is required with backend = \"redis\"")?;
            let password = match (&state.password_file, &state.password_env) {
                (Some(path), _) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("state.password_file: reading {}", path.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
                (None, Some(var)) => Some(
                    std::env::var(var).with_context(|| format!("state.password_env: ${var} is not set"))?,
                ),
                (None, None) => None,
            };
            let store = RedisStore::new(RedisOptions {
                url,
                password,
                key_prefix: state.key_prefix.clone(),
                deadline: Duration::from_millis(state.timeout_ms),
            })
            .context("opening the state store")?;
            // Not fatal: a replica starts while Redis is down, reports
            // not-ready, refuses requests and recovers by itself.
            if let Err(e) = store.ping().await {
                tracing::warn!(error = %e, "state store unavailable at start; refusing requests until it answers");
            }
            Arc::new(store)
        }
    })
}

fn admin_event(action: &str, actor: &str, subject: &str, detail: Option<String>) -> AuditEvent {
    AuditEvent::Admin(AdminRecord {
        action: action.into(),
        actor: actor.into(),
        subject: subject.into(),
        detail,
    })
}

/// The addresses actually bound (a configured port 0 becomes a real one).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bound {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// Bind both listeners; returns the addresses and a future that serves
/// until `shutdown` resolves.
pub async fn bind(airlock: Arc<Airlock>) -> anyhow::Result<(Bound, impl std::future::Future<Output = ()>)> {
    let proxy = TcpListener::bind(airlock.config.listen.proxy)
        .await
        .with_context(|| format!("binding the proxy listener {}", airlock.config.listen.proxy))?;
    let admin = TcpListener::bind(airlock.config.listen.admin)
        .await
        .with_context(|| format!("binding the admin listener {}", airlock.config.listen.admin))?;
    let bound = Bound {
        proxy: proxy.local_addr()?,
        admin: admin.local_addr()?,
    };
    let a = airlock.clone();
    let serve = async move {
        let proxy_loop = accept_loop(proxy, airlock, |ctx, req| {
            Box::pin(crate::proxy::handle(ctx, req))
        });
        let admin_loop = accept_loop(admin, a, |ctx, req| {
            Box::pin(async move {
                use http_body_util::BodyExt as _;
                crate::admin::handle(ctx, req).await.map(|b| b.boxed())
            })
        });
        tokio::join!(proxy_loop, admin_loop);
    };
    Ok((bound, serve))
}

type Handler = fn(
    Arc<Airlock>,
    hyper::Request<hyper::body::Incoming>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = hyper::Response<crate::proxy::ProxyBody>> + Send>,
>;

async fn accept_loop(listener: TcpListener, airlock: Arc<Airlock>, handler: Handler) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let airlock = airlock.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let airlock = airlock.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(airlock, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

//! The TOML configuration: where policies live, services and their route
//! tables, and roles with their policy and limits.
//!
//! Parsing is strict (unknown keys are errors) and every error names the
//! file, the key and the reason, so an operator can fix it without guessing.
//!
//! ```toml
//! [policies]
//! dir = "policies"                     # relative to this file
//!
//! [services.code]
//! upstream = "https://code.example"
//! routes = [
//!   { op = "pulls.create", method = "POST", path = "/repos/{owner}/{repo}/pulls" },
//! ]
//!
//! [roles.pr-creator]
//! policy = "pr-creator.wasm"           # inside [policies].dir
//! services = ["code"]
//! limits = { fuel = 20_000_000, memory = "16MiB", deadline_ms = 50 }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::policy::{Limits, RoleBinding};

/// The most memory any role may be given, and the engine's pool slot size.
pub const MAX_ROLE_MEMORY: usize = 256 << 20;
/// The longest deadline any role may be given.
pub const MAX_DEADLINE_MS: u64 = 10_000;
/// The longest token lifetime any role may be given: tokens are short-lived.
pub const MAX_TOKEN_TTL_S: u64 = 3_600;

/// A configuration that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key, e.g. `roles.pr-creator.limits.memory`; empty for syntax errors.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: `{}`: {}", self.file.display(), self.key, self.reason)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub tokens: TokensConfig,
    #[serde(default)]
    pub data: DataConfig,
    pub policies: PoliciesConfig,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    pub roles: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
}

/// Decision inputs of roles with `capture_inputs = true`, for
/// `airlock policy replay`: `capture.jsonl` beside the audit log.
///
/// ```toml
/// [capture]
/// max_bytes = "64MiB"                      # then rotated to capture.jsonl.1
/// keep = 3                                 # rotated files kept
/// redact_body = ["/customer/email"]        # JSON pointers into JSON bodies
/// redact_headers = ["x-customer-token"]    # header names, any case
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub max_bytes: ByteSize,
    pub keep: u32,
    pub redact_body: Vec<String>,
    pub redact_headers: Vec<String>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            max_bytes: ByteSize(64 << 20),
            keep: 3,
            redact_body: Vec::new(),
            redact_headers: Vec::new(),
        }
    }
}

impl CaptureConfig {
    pub fn settings(&self) -> crate::capture::CaptureSettings {
        crate::capture::CaptureSettings {
            max_bytes: self.max_bytes.0 as u64,
            keep: self.keep,
            redaction: crate::capture::Redaction {
                body_pointers: self.redact_body.clone(),
                headers: self.redact_headers.clone(),
            },
        }
    }
}

/// `GET /metrics` on the admin listener. Open by default (it carries no
/// secret: labels are roles, services, verdicts and codes); with a token,
/// scrapers must send `Authorization: Bearer <token>`.
///
/// ```toml
/// [metrics]
/// # token_file = "metrics.token"   # or token_env = "AIRLOCK_METRICS_TOKEN"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

/// Traces: a span per request with a child per pipeline stage, exported over
/// OTLP (HTTP, protobuf, to a plain-http collector) only when configured.
///
/// ```toml
/// [telemetry]
/// # otlp_endpoint = "http://127.0.0.1:4318"   # POSTs to <endpoint>/v1/traces
/// # service_name = "airlock"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "airlock".into(),
        }
    }
}

/// Where sessions, budgets, single-use records, approvals and workflow
/// state live.
///
/// ```toml
/// [state]
/// backend = "sqlite"        # default: an embedded database, <data.dir>/state.db
/// # path = "state.db"       # sqlite: elsewhere
/// # fsync = true            # sqlite: flush every commit to disk (survives power loss)
///
/// # backend = "redis"       # several replicas share one Redis
/// # url = "redis://127.0.0.1:6379/0"
/// # key_prefix = "airlock:"
/// # password_file = "redis.password"   # or password_env; never in the URL
/// # timeout_ms = 250        # past this a store operation fails: 503, fail closed
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub backend: StateBackend,
    /// The embedded database file; default `<data.dir>/state.db`.
    pub path: Option<PathBuf>,
    /// SQLite: fsync each commit (power-loss durable) rather than relying on
    /// the OS (process-crash durable).
    pub fsync: bool,
    /// Redis: `redis://host:port/db` or `rediss://…`, without a password.
    pub url: Option<String>,
    /// Redis: prefix of every key, so several deployments can share a server.
    pub key_prefix: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Deadline of one store operation; past it the request is refused (503).
    pub timeout_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            path: None,
            fsync: false,
            url: None,
            key_prefix: "airlock:".into(),
            password_file: None,
            password_env: None,
            timeout_ms: 250,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateBackend {
    /// Nothing survives the process (tests, throwaway runs).
    Memory,
    /// The embedded durable default: one process, one database file.
    #[default]
    Sqlite,
    /// Shared by several replicas.
    Redis,
}

/// Human approvals of escalated requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// How long an approval lives from the escalation: within it a person
    /// must decide and the agent must use it.
    pub ttl_s: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig { ttl_s: 900 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The data plane, for agents.
    pub proxy: SocketAddr,
    /// The control plane, for the orchestrator and operators.
    pub admin: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            proxy: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

/// Where the admin bearer token comes from: a file or an environment
/// variable, never the config file itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// A second, narrower credential for upstreams: introspection and
    /// revocation only.
    pub introspection_token_file: Option<PathBuf>,
    pub introspection_token_env: Option<String>,
    /// Longest session the orchestrator may create, in seconds.
    pub max_session_ttl_s: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token_file: None,
            token_env: None,
            introspection_token_file: None,
            introspection_token_env: None,
            max_session_ttl_s: 8 * 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    pub issuer: String,
    pub algorithm: crate::token::Algorithm,
    /// Signing keys; default `<data.dir>/keys`.
    pub keys_dir: Option<PathBuf>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            issuer: "airlock".into(),
            algorithm: crate::token::Algorithm::default(),
            keys_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Keys and the audit log live here unless placed elsewhere.
    pub dir: PathBuf,
    /// The audit log; default `<dir>/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from(".airlock"),
            audit_log: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// Directory of policy components, relative to the config file.
    pub dir: PathBuf,
    /// Where compiled policies are cached; none keeps them in memory only.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Reload a role's policy when its file changes.
    #[serde(default = "yes")]
    pub watch: bool,
    /// Instances kept ready per Python or JavaScript policy (each serves one
    /// decision); 0 makes every decision instantiate inline.
    #[serde(default = "default_spare_instances")]
    pub spare_instances: usize,
    /// minisign public keys (the base64 line of a `.pub` file): when any is
    /// set, a module loads only with a valid `NAME.minisig` beside it.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

impl PoliciesConfig {
    /// The trusted keys, or none when signatures are not required.
    pub fn trusted_keys(&self) -> Result<Option<crate::policy::TrustedKeys>, crate::policy::BadTrustedKey> {
        if self.trusted_keys.is_empty() {
            return Ok(None);
        }
        crate::policy::TrustedKeys::parse(&self.trusted_keys).map(Some)
    }
}

fn yes() -> bool {
    true
}

/// Spares hold instance pool slots, which decisions in flight need too.
const MAX_SPARE_INSTANCES: usize = 8;

fn default_spare_instances() -> usize {
    crate::policy::EngineConfig::default().spare_instances
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `rest` (the default): `/{service}/{path}` calls matched against
    /// `routes`. `mcp`: an MCP server's Streamable HTTP endpoint, reached by
    /// agents at `/{service}/mcp`; every JSON-RPC message is an action.
    #[serde(default)]
    pub kind: ServiceKind,
    pub upstream: String,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// How agents speak to a service through the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    #[default]
    Rest,
    Mcp,
}

fn default_connect_timeout() -> u64 {
    2_000
}

fn default_timeout() -> u64 {
    15_000
}

/// How the proxy authenticates to a service on the agent's behalf.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub kind: AuthKind,
    /// Header for the minted JWT (`kind = "minted-jwt"` or `"both"`); sent as `Bearer <jwt>`.
    #[serde(default = "default_jwt_header")]
    pub jwt_header: String,
    /// Header for the proxy-held secret (`kind = "secret"` or `"both"`).
    #[serde(default)]
    pub secret_header: Option<String>,
    /// Text put before the secret, e.g. `"Bearer "` or `"token "`.
    #[serde(default)]
    pub secret_prefix: String,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

fn default_jwt_header() -> String {
    "authorization".into()
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            kind: AuthKind::default(),
            jwt_header: default_jwt_header(),
            secret_header: None,
            secret_prefix: String::new(),
            secret_file: None,
            secret_env: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    #[default]
    MintedJwt,
    Secret,
    Both,
    /// Nothing is injected (a public upstream).
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub op: String,
    pub method: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Component file inside `[policies].dir`.
    pub policy: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Budgets: the most grants of an operation one session may receive,
    /// e.g. `{ "tasks.create" = 1 }`. Checked and counted atomically with
    /// the decision; they do not refill within the session.
    #[serde(default)]
    pub grants_per_session: BTreeMap<String, u32>,
    /// Write each decision's policy request, state and verdict to the
    /// capture file (`[capture]`), for `airlock policy replay`.
    #[serde(default)]
    pub capture_inputs: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Policy fuel per decision.
    pub fuel: u64,
    /// Policy memory cap: a size such as `16MiB`, or a number of bytes.
    pub memory: ByteSize,
    /// Policy wall-clock deadline.
    pub deadline_ms: u64,
    /// Requests per session per minute; 0 for no limit.
    pub requests_per_minute: u32,
    /// Largest request body the proxy accepts (413 past it).
    pub max_body_bytes: ByteSize,
    /// Body bytes the policy sees; past this it sees `body-truncated`.
    pub policy_body_bytes: ByteSize,
    /// Largest upstream response the agent receives (502 past it).
    pub max_response_bytes: ByteSize,
    /// Longest token lifetime for this role.
    pub max_token_ttl_s: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = Limits::default();
        LimitsConfig {
            fuel: d.fuel,
            memory: ByteSize(d.memory_bytes),
            deadline_ms: d.deadline.as_millis() as u64,
            requests_per_minute: 0,
            max_body_bytes: ByteSize(1 << 20),
            policy_body_bytes: ByteSize(256 << 10),
            max_response_bytes: ByteSize(8 << 20),
            max_token_ttl_s: 300,
        }
    }
}

impl StateConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let redis = self.backend == StateBackend::Redis;
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(("state.timeout_ms".into(), "must be between 1 and 60000".into()));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err((
                "state".into(),
                "give password_file or password_env, not both".into(),
            ));
        }
        if !redis {
            for (key, set) in [
                ("url", self.url.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_env", self.password_env.is_some()),
            ] {
                if set {
                    return Err((
                        format!("state.{key}"),
                        "only used with backend = \"redis\"".into(),
                    ));
                }
            }
        }
        if self.backend != StateBackend::Sqlite && (self.path.is_some() || self.fsync) {
            return Err((
                "state".into(),
                "path and fsync are only used with backend = \"sqlite\"".into(),
            ));
        }
        if redis {
            let Some(url) = &self.url else {
                return Err((
                    "state.url".into(),
                    "backend = \"redis\" needs url = \"redis://host:port/db\"".into(),
                ));
            };
            let rest = url
                .strip_prefix("redis://")
                .or_else(|| url.strip_prefix("rediss://"))
                .ok_or_else(|| {
                    (
                        "state.url".to_string(),
                        format!("{url:?} is not a redis:// or rediss:// URL"),
                    )
                })?;
            let authority = rest.split('/').next().unwrap_or("");
            if authority.contains('@') {
                return Err((
                    "state.url".into(),
                    "must not carry credentials; give the password in password_file or password_env".into(),
                ));
            }
            if authority.is_empty() {
                return Err(("state.url".into(), format!("{url:?} names no host")));
            }
        }
        Ok(())
    }
}

/// A byte count written as `16MiB`, `512KiB`, `1GiB` or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(split);
        let n: usize = n.parse().map_err(|_| format!("{s:?} is not a size like 16MiB"))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "KiB" => 1 << 10,
            "M" | "MB" | "MiB" => 1 << 20,
            "G" | "GB" | "GiB" => 1 << 30,
            other => return Err(format!("unknown size unit {other:?} (use B, KiB, MiB or GiB)")),
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => usize::try_from(n).map(ByteSize).map_err(serde::de::Error::custom),
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    /// Read and check a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, file)
    }

    /// Parse and check config text; `file` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        config.policies.dir = base.join(&config.policies.dir);
        config.policies.cache_dir = config.policies.cache_dir.map(|d| base.join(d));
        config.data.dir = base.join(&config.data.dir);
        config.data.audit_log = config.data.audit_log.map(|p| base.join(p));
        config.tokens.keys_dir = config.tokens.keys_dir.map(|p| base.join(p));
        config.admin.token_file = config.admin.token_file.map(|p| base.join(p));
        config.admin.introspection_token_file = config.admin.introspection_token_file.map(|p| base.join(p));
        config.state.path = config.state.path.map(|p| base.join(p));
        config.state.password_file = config.state.password_file.map(|p| base.join(p));
        config.metrics.token_file = config.metrics.token_file.map(|p| base.join(p));
        for service in config.services.values_mut() {
            service.auth.secret_file = service.auth.secret_file.take().map(|p| base.join(p));
        }
        config.validate().map_err(|(key, reason)| ConfigError {
            file: file.to_path_buf(),
            key,
            reason,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(bad) = self.capture.redact_body.iter().find(|p| !p.starts_with('/')) {
            return Err((
                "capture.redact_body".into(),
                format!("{bad:?} is not a JSON pointer (RFC 6901: it starts with `/`)"),
            ));
        }
        for (name, service) in &self.services {
            let key = |k: &str| format!("services.{name}.{k}");
            if !(service.upstream.starts_with("http://") || service.upstream.starts_with("https://")) {
                return Err((
                    key("upstream"),
                    format!("{:?} is not an http:// or https:// URL", service.upstream),
                ));
            }
            let auth = &service.auth;
            let needs_secret = matches!(auth.kind, AuthKind::Secret | AuthKind::Both);
            if needs_secret && auth.secret_file.is_none() == auth.secret_env.is_none() {
                return Err((
                    key("auth"),
                    "give exactly one of secret_file or secret_env".into(),
                ));
            }
            if needs_secret && auth.secret_header.is_none() {
                return Err((
                    key("auth.secret_header"),
                    "name the header that carries the secret".into(),
                ));
            }
            if !needs_secret && (auth.secret_file.is_some() || auth.secret_env.is_some()) {
                return Err((key("auth"), "a secret is given but kind does not use it".into()));
            }
            for header in [Some(&auth.jwt_header), auth.secret_header.as_ref()]
                .into_iter()
                .flatten()
            {
                if hyper::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err((key("auth"), format!("{header:?} is not a header name")));
                }
            }
            if service.connect_timeout_ms == 0 || service.timeout_ms == 0 {
                return Err((key("timeout_ms"), "timeouts must be greater than 0".into()));
            }
            if service.kind == ServiceKind::Mcp && !service.routes.is_empty() {
                return Err((
                    key("routes"),
                    "an mcp service has no routes: its operations are the JSON-RPC methods \
                     (`tools/call:NAME`, `resources/read`, ...)"
                        .into(),
                ));
            }
            let mut ops = std::collections::BTreeSet::new();
            for (i, route) in service.routes.iter().enumerate() {
                let key = |k: &str| format!("services.{name}.routes[{i}].{k}");
                if route.op.is_empty() {
                    return Err((key("op"), "must not be empty".into()));
                }
                if !matches!(
                    route.method.as_str(),
                    "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
                ) {
                    return Err((
                        key("method"),
                        format!("{:?} is not an upper-case HTTP method", route.method),
                    ));
                }
                check_route_path(&route.path).map_err(|r| (key("path"), r))?;
                if !ops.insert((&route.op, &route.method, &route.path)) {
                    return Err((key("op"), "the same route appears twice".into()));
                }
            }
        }
        if self.tokens.issuer.is_empty() {
            return Err(("tokens.issuer".into(), "must not be empty".into()));
        }
        if self.admin.token_file.is_some() && self.admin.token_env.is_some() {
            return Err(("admin".into(), "give token_file or token_env, not both".into()));
        }
        if self.listen.proxy == self.listen.admin && self.listen.proxy.port() != 0 {
            return Err(("listen.admin".into(), "must differ from listen.proxy".into()));
        }
        if self.approvals.ttl_s == 0 || self.approvals.ttl_s > 7 * 24 * 3600 {
            return Err((
                "approvals.ttl_s".into(),
                "must be between 1 and 604800 (a week)".into(),
            ));
        }
        if self.policies.spare_instances > MAX_SPARE_INSTANCES {
            return Err((
                "policies.spare_instances".into(),
                format!("at most {MAX_SPARE_INSTANCES} (each spare holds an instance pool slot)"),
            ));
        }
        self.state.validate()?;
        if self.metrics.token_file.is_some() && self.metrics.token_env.is_some() {
            return Err(("metrics".into(), "give token_file or token_env, not both".into()));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            // The exporter carries no TLS library: traces go to a collector
            // on the host or in the pod, which forwards them on.
            return Err((
                "telemetry.otlp_endpoint".into(),
                format!("{endpoint:?} is not an http:// URL (export to a local OpenTelemetry collector)"),
            ));
        }
        if self.roles.is_empty() {
            return Err(("roles".into(), "at least one role is needed".into()));
        }
        for (name, role) in &self.roles {
            let key = |k: &str| format!("roles.{name}.{k}");
            if role.policy.is_empty() {
                return Err((
                    key("policy"),
                    "must name a component file in [policies].dir".into(),
                ));
            }
            for service in &role.services {
                if !self.services.contains_key(service) {
                    return Err((
                        key("services"),
                        format!("service {service:?} is not defined under [services]"),
                    ));
                }
            }
            let l = &role.limits;
            if l.fuel == 0 {
                return Err((key("limits.fuel"), "must be greater than 0".into()));
            }
            if l.memory.0 < (64 << 10) || l.memory.0 > MAX_ROLE_MEMORY {
                return Err((
                    key("limits.memory"),
                    format!("must be between 64KiB and {}MiB", MAX_ROLE_MEMORY >> 20),
                ));
            }
            if l.deadline_ms == 0 || l.deadline_ms > MAX_DEADLINE_MS {
                return Err((
                    key("limits.deadline_ms"),
                    format!("must be between 1 and {MAX_DEADLINE_MS}"),
                ));
            }
            if l.max_token_ttl_s == 0 || u64::from(l.max_token_ttl_s) > MAX_TOKEN_TTL_S {
                return Err((
                    key("limits.max_token_ttl_s"),
                    format!("must be between 1 and {MAX_TOKEN_TTL_S}"),
                ));
            }
            for (op, limit) in &role.grants_per_session {
                let known = role.services.iter().any(|svc| {
                    self.services.get(svc).is_some_and(|c| match c.kind {
                        ServiceKind::Rest => c.routes.iter().any(|r| &r.op == op),
                        // MCP operations are `method` or `method:name`.
                        ServiceKind::Mcp => op.contains('/'),
                    })
                });
                if !known {
                    return Err((
                        key(&format!("grants_per_session.{op}")),
                        "names no operation of the role's services".into(),
                    ));
                }
                if *limit == 0 {
                    return Err((
                        key(&format!("grants_per_session.{op}")),
                        "must be at least 1 (leave the operation out of the role's policy to forbid it)"
                            .into(),
                    ));
                }
            }
            if l.policy_body_bytes.0 > l.max_body_bytes.0 {
                return Err((
                    key("limits.policy_body_bytes"),
                    "must not exceed max_body_bytes".into(),
                ));
            }
        }
        Ok(())
    }

    /// The embedded state database's path.
    pub fn state_db_path(&self) -> PathBuf {
        self.state
            .path
            .clone()
            .unwrap_or_else(|| self.data.dir.join("state.db"))
    }

    /// Each role's requests-per-minute limit, for the state store.
    pub fn rate_limits(&self) -> BTreeMap<String, u32> {
        self.roles
            .iter()
            .map(|(name, role)| (name.clone(), role.limits.requests_per_minute))
            .collect()
    }

    /// The audit log's path.
    pub fn audit_log_path(&self) -> PathBuf {
        self.data
            .audit_log
            .clone()
            .unwrap_or_else(|| self.data.dir.join("audit.jsonl"))
    }

    /// The signing keys' directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.tokens
            .keys_dir
            .clone()
            .unwrap_or_else(|| self.data.dir.join("keys"))
    }

    /// What the policy registry needs: one binding per role.
    pub fn role_bindings(&self) -> Vec<RoleBinding> {
        self.roles
            .iter()
            .map(|(role, c)| RoleBinding {
                role: role.clone(),
                module: c.policy.clone(),
                limits: Limits {
                    fuel: c.limits.fuel,
                    memory_bytes: c.limits.memory.0,
                    deadline: Duration::from_millis(c.limits.deadline_ms),
                },
            })
            .collect()
    }
}

/// A route path: starts with `/`, `{name}` placeholders of `[a-z0-9_]`.
fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with `/`"));
    }
    let count = path.split('/').skip(1).count();
    for (i, segment) in path.split('/').skip(1).enumerate() {
        if segment.contains('{') || segment.contains('}') {
            let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            // `{name*}`: the rest of the path, allowed as the last segment only.
            let name = match name.and_then(|n| n.strip_suffix('*')) {
                Some(_) if i + 1 != count => {
                    return Err(format!(
                        "segment {segment:?}: a {{name*}} placeholder must come last"
                    ));
                }
                Some(n) => Some(n),
                None => name,
            };
            let ok = name.is_some_and(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
            if !ok {
                return Err(format!(
                    "segment {segment:?}: a placeholder is a whole segment like {{name}} (or {{name*}} last)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[policies]
dir = "policies"

[services.code]
upstream = "https://code.example"
routes = [
  { op = "pulls.create", method = "POST", path = "/repos/{owner}/{repo}/pulls" },
]

[roles.pr-creator]
policy = "pr-creator.wasm"
services = ["code"]
limits = { fuel = 1000000, memory = "8MiB", deadline_ms = 20 }

[roles.crash-tracker]
policy = "crash-tracker.wasm"
"#;

    fn err(text: &str) -> ConfigError {
        Config::parse(text, Path::new("/etc/airlock/airlock.toml")).expect_err("must be refused")
    }

    #[test]
    fn state_defaults_to_the_embedded_database_under_the_data_dir() {
        let config = Config::parse(GOOD, Path::new("/etc/airlock/airlock.toml")).unwrap();
        assert_eq!(config.state.backend, StateBackend::Sqlite);
        assert_eq!(
            config.state_db_path(),
            Path::new("/etc/airlock/.airlock/state.db")
        );
        assert_eq!(config.state.timeout_ms, 250);
        let redis = format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://10.0.0.5:6379/2\"\npassword_file = \"redis.pw\"\n{GOOD}"
        );
        let config = Config::parse(&redis, Path::new("/etc/airlock/airlock.toml")).unwrap();
        assert_eq!(config.state.backend, StateBackend::Redis);
        assert_eq!(
            config.state.password_file.as_deref(),
            Some(Path::new("/etc/airlock/redis.pw"))
        );
        assert_eq!(config.rate_limits().get("crash-tracker"), Some(&0));
    }

    #[test]
    fn state_errors_name_the_key() {
        for (state, key, needle) in [
            ("backend = \"redis\"", "state.url", "needs url"),
            (
                "backend = \"redis\"\nurl = \"redis://:hunter2@h:6379\"",
                "state.url",
                "must not carry credentials",
            ),
            (
                "backend = \"redis\"\nurl = \"http://h\"",
                "state.url",
                "not a redis://",
            ),
            ("url = \"redis://h:6379\"", "state.url", "only used with backend"),
            (
                "backend = \"memory\"\nfsync = true",
                "state",
                "only used with backend = \"sqlite\"",
            ),
            ("timeout_ms = 0", "state.timeout_ms", "between 1 and 60000"),
            ("backend = \"etcd\"", "", "unknown variant"),
        ] {
            let e = err(&format!("[state]\n{state}\n{GOOD}"));
            assert_eq!(e.key, key, "{state}: {e}");
            assert!(e.reason.contains(needle), "{state}: {e}");
        }
    }

    #[test]
    fn metrics_are_open_by_default_and_telemetry_off() {
        let config = Config::parse(GOOD, Path::new("/etc/airlock/airlock.toml")).unwrap();
        assert_eq!(config.metrics.token_file, None);
        assert_eq!(config.telemetry.otlp_endpoint, None);
        let text = format!(
            "[metrics]\ntoken_file = \"metrics.token\"\n[telemetry]\notlp_endpoint = \"http://collector:4318\"\n{GOOD}"
        );
        let config = Config::parse(&text, Path::new("/etc/airlock/airlock.toml")).unwrap();
        assert_eq!(
            config.metrics.token_file.as_deref(),
            Some(Path::new("/etc/airlock/metrics.token"))
        );
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(config.telemetry.service_name, "airlock");
        for (table, key, needle) in [
            (
                "[metrics]\ntoken_file = \"a\"\ntoken_env = \"B\"",
                "metrics",
                "not both",
            ),
            (
                "[telemetry]\notlp_endpoint = \"collector:4318\"",
                "telemetry.otlp_endpoint",
                "not an http",
            ),
            (
                "[telemetry]\notlp_endpoint = \"https://collector:4318\"",
                "telemetry.otlp_endpoint",
                "local OpenTelemetry collector",
            ),
            ("[telemetry]\nendpoint = \"http://c\"", "", "unknown field"),
        ] {
            let e = err(&format!("{table}\n{GOOD}"));
            assert_eq!(e.key, key, "{table}: {e}");
            assert!(e.reason.contains(needle), "{table}: {e}");
        }
    }

    #[test]
    fn a_good_config_gives_role_bindings() {
        let c = Config::parse(GOOD, Path::new("/etc/airlock/airlock.toml")).expect("valid");
        assert_eq!(c.policies.dir, Path::new("/etc/airlock/policies"));
        let b = c.role_bindings();
        assert_eq!(b.len(), 2);
        let pr = b.iter().find(|b| b.role == "pr-creator").expect("role");
        assert_eq!(
            pr.limits,
            Limits {
                fuel: 1_000_000,
                memory_bytes: 8 << 20,
                deadline: Duration::from_millis(20)
            }
        );
        let crash = b.iter().find(|b| b.role == "crash-tracker").expect("role");
        assert_eq!(crash.limits, Limits::default());
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                GOOD.replace("memory = \"8MiB\"", "memory = \"8 parsecs\""),
                "",
                "unknown size unit",
            ),
            (
                GOOD.replace("memory = \"8MiB\"", "memory = \"1GiB\""),
                "roles.pr-creator.limits.memory",
                "between 64KiB and 256MiB",
            ),
            (
                GOOD.replace("deadline_ms = 20", "deadline_ms = 0"),
                "roles.pr-creator.limits.deadline_ms",
                "between 1",
            ),
            (
                GOOD.replace("fuel = 1000000", "fuel = 0"),
                "roles.pr-creator.limits.fuel",
                "greater than 0",
            ),
            (
                GOOD.replace("dir = \"policies\"", "dir = \"policies\"\nspare_instances = 9"),
                "policies.spare_instances",
                "at most 8",
            ),
            (
                GOOD.replace("services = [\"code\"]", "services = [\"billing\"]"),
                "roles.pr-creator.services",
                "\"billing\" is not defined",
            ),
            (
                GOOD.replace("https://code.example", "ftp://code"),
                "services.code.upstream",
                "not an http",
            ),
            (
                GOOD.replace("method = \"POST\"", "method = \"post\""),
                "services.code.routes[0].method",
                "upper-case",
            ),
            (
                GOOD.replace("/repos/{owner}/{repo}/pulls", "repos/{owner}"),
                "services.code.routes[0].path",
                "must start with `/`",
            ),
            (
                GOOD.replace("/repos/{owner}/{repo}/pulls", "/repos/x{owner}"),
                "services.code.routes[0].path",
                "whole segment",
            ),
            (
                GOOD.replace(
                    "policy = \"pr-creator.wasm\"",
                    "policy = \"pr-creator.wasm\"\npolcy = \"x\"",
                ),
                "",
                "unknown field `polcy`",
            ),
            (GOOD.replace("[policies]", "[policies"), "", "line 2"),
        ];
        for (text, key, reason) in cases {
            let e = err(&text);
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{e} should say {reason:?}");
            assert!(e.to_string().starts_with("/etc/airlock/airlock.toml: "), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("16MiB"), Ok(ByteSize(16 << 20)));
        assert_eq!(ByteSize::parse("512KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("100"), Ok(ByteSize(100)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
    }
}

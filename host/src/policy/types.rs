//! The host's view of the policy contract: plain Rust types for what goes
//! into a policy and what comes out, independent of wasmtime.
//!
//! These types also define the JSON form of a request used by
//! `airlock policy eval` and the case tables of `airlock policy test`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Who is acting. Comes from the session, never from the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub agent: String,
    pub role: String,
    pub session: String,
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// Ordered name/value pairs. In JSON an object whose values are strings, or
/// arrays of strings for a name that repeats (query parameters); or, as
/// written (a capture keeps the exact order), an array of `[name, value]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pairs(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Map(BTreeMap<String, OneOrMany>),
            Exact(Vec<(String, String)>),
        }
        let map = match Form::deserialize(d)? {
            Form::Exact(pairs) => return Ok(Pairs(pairs)),
            Form::Map(map) => map,
        };
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            match v {
                OneOrMany::One(v) => pairs.push((k, v)),
                OneOrMany::Many(vs) => pairs.extend(vs.into_iter().map(|v| (k.clone(), v))),
            }
        }
        Ok(Pairs(pairs))
    }
}

/// What the agent is trying to do, after routing and sanitising.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ActionJson")]
pub struct Action {
    pub service: String,
    pub operation: Option<String>,
    pub params: Pairs,
    pub method: String,
    pub path: String,
    pub query: Pairs,
    pub headers: Pairs,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub body_truncated: bool,
    /// The structured MCP call, for services of kind `mcp` (contract 0.2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
}

/// One JSON-RPC message an agent sent to an MCP service.
///
/// JSON form: `{"method": "tools/call", "name": "read_file",
/// "arguments": {"path": "src/lib.rs"}, "id": 7}`; `arguments` is any JSON
/// object (default `{}`), `id` any JSON-RPC id (absent: a notification).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "McpCallJson", into = "McpCallJson")]
pub struct McpCall {
    pub method: String,
    /// Tool or prompt name, or resource URI.
    pub name: Option<String>,
    /// JSON text of a JSON object.
    pub arguments: String,
    /// JSON text of the JSON-RPC id.
    pub id: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpCallJson {
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<serde_json::Value>,
}

impl TryFrom<McpCallJson> for McpCall {
    type Error = String;

    fn try_from(m: McpCallJson) -> Result<Self, String> {
        if m.method.is_empty() {
            return Err("action.mcp.method is empty".into());
        }
        Ok(McpCall {
            method: m.method,
            name: m.name,
            arguments: serde_json::Value::Object(m.arguments).to_string(),
            id: m.id.map(|id| id.to_string()),
        })
    }
}

impl From<McpCall> for McpCallJson {
    fn from(m: McpCall) -> Self {
        McpCallJson {
            method: m.method,
            name: m.name,
            arguments: match serde_json::from_str(&m.arguments) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
            id: m.id.and_then(|id| serde_json::from_str(&id).ok()),
        }
    }
}

/// What an MCP listing shows (`visible` is asked per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listing {
    /// `tools/list`: tool names.
    Tools,
    /// `resources/list`: resource URIs.
    Resources,
    /// `resources/templates/list`: URI templates.
    ResourceTemplates,
    /// `prompts/list`: prompt names.
    Prompts,
}

/// The JSON form of [`Action`]: the body comes as text or base64, not both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionJson {
    service: String,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    params: Pairs,
    method: String,
    path: String,
    #[serde(default)]
    query: Pairs,
    #[serde(default)]
    headers: Pairs,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    body_truncated: bool,
    #[serde(default)]
    mcp: Option<McpCall>,
}

impl TryFrom<ActionJson> for Action {
    type Error = String;

    fn try_from(a: ActionJson) -> Result<Self, String> {
        let body = match (a.body, a.body_base64) {
            (Some(_), Some(_)) => return Err("action: give `body` or `body_base64`, not both".into()),
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("action.body_base64: not valid base64: {e}"))?,
            (None, None) => Vec::new(),
        };
        if a.method.is_empty() || !a.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("action.method: {:?} is not an HTTP method", a.method));
        }
        if !a.path.starts_with('/') {
            return Err(format!("action.path: {:?} must start with `/`", a.path));
        }
        let lower = |p: Pairs| {
            Pairs(
                p.0.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            )
        };
        Ok(Action {
            service: a.service,
            operation: a.operation,
            params: a.params,
            method: a.method.to_ascii_uppercase(),
            path: a.path,
            query: a.query,
            headers: lower(a.headers),
            body,
            body_truncated: a.body_truncated,
            mcp: a.mcp,
        })
    }
}

/// What the session has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    pub requests_total: u64,
    pub requests_in_window: u32,
    pub window_seconds: u32,
    pub grants: BTreeMap<String, u32>,
    pub session_started_ms: u64,
    pub now_ms: u64,
}

/// A human approval of exactly this request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: String,
    pub approver: String,
    pub approved_at_ms: u64,
}

/// One request for a policy to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    pub principal: Principal,
    pub action: Action,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub approval: Option<Approval>,
}

impl PolicyRequest {
    /// Parse the JSON form, with a message that names the bad field.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("malformed request JSON: {e}"))
    }
}

/// What an allow lets the host mint. Already validated against the
/// contract's bounds when it comes out of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub scopes: Vec<String>,
    pub ttl_seconds: u32,
    pub single_use: bool,
    pub max_response_bytes: Option<u64>,
    /// Extra claims as parsed JSON values.
    pub claims: BTreeMap<String, serde_json::Value>,
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Grant),
    Deny(String),
    Escalate(String),
}

impl Verdict {
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Allow(_) => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Escalate(_) => "escalate",
        }
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Allow(_) => None,
            Verdict::Deny(r) | Verdict::Escalate(r) => Some(r),
        }
    }
    pub fn grant(&self) -> Option<&Grant> {
        match self {
            Verdict::Allow(g) => Some(g),
            _ => None,
        }
    }
}

/// Why the engine denied on the policy's behalf. The names are stable: they
/// appear in deny reasons, audit records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The evaluation used up its fuel.
    Fuel,
    /// The policy tried to grow linear memory past its cap.
    Memory,
    /// The wall-clock deadline passed.
    Deadline,
    /// Any other trap: panic, stack overflow, out-of-bounds access.
    Trap,
    /// The verdict broke the contract's bounds.
    InvalidVerdict,
    /// A host import failed or was misused (state bounds, state store down).
    Host,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Fuel => "fuel",
            FailureClass::Memory => "memory",
            FailureClass::Deadline => "deadline",
            FailureClass::Trap => "trap",
            FailureClass::InvalidVerdict => "invalid-verdict",
            FailureClass::Host => "host",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An evaluation the engine ended with a deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy failed ({}): {}", self.class, self.detail)
    }
}

/// Severity of a policy log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One log record a policy wrote during an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// One buffered write to workflow state, to be committed on allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum StateWrite {
    Set { key: String, value: String },
    Incr { key: String, delta: i64 },
}

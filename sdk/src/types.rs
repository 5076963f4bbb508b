//! The SDK's view of the WIT types in `wit/policy.wit`, with the accessors
//! policies reach for. See the WIT file for what each field means.

use serde_json::Value;

use crate::mcp::McpCall;

/// Who is acting; filled by the host from the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub agent: String,
    pub role: String,
    pub session: String,
    pub workflow: String,
    pub on_behalf_of: Option<String>,
    pub intent: Option<String>,
}

/// What the agent is trying to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    pub service: String,
    pub operation: Option<String>,
    pub params: Vec<(String, String)>,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_truncated: bool,
    /// Set for a service of kind `mcp`: the one JSON-RPC message this is.
    pub mcp: Option<McpCall>,
}

/// A human approval of exactly this request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub approver: String,
    pub approved_at_ms: u64,
}

/// What the session has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests_total: u64,
    pub requests_in_window: u32,
    pub window_seconds: u32,
    pub grants: Vec<(String, u32)>,
    pub session_started_ms: u64,
    pub now_ms: u64,
}

/// One request to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub principal: Principal,
    pub action: Action,
    pub usage: Usage,
    pub approval: Option<Approval>,
}

/// What an allow lets the host mint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Vec<String>,
    pub ttl_seconds: u32,
    pub single_use: bool,
    pub max_response_bytes: Option<u64>,
    pub claims: Vec<(String, String)>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Grant),
    Deny(String),
    Escalate(String),
}

/// Name and version of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    pub name: String,
    pub version: String,
}

impl Description {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Description {
            name: name.into(),
            version: version.into(),
        }
    }
}

impl Verdict {
    pub fn allow(grant: Grant) -> Self {
        Verdict::Allow(grant)
    }
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict::Deny(reason.into())
    }
    pub fn escalate(reason: impl Into<String>) -> Self {
        Verdict::Escalate(reason.into())
    }
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
    /// The deny or escalate reason; `None` for an allow.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Allow(_) => None,
            Verdict::Deny(r) | Verdict::Escalate(r) => Some(r),
        }
    }
}

impl Grant {
    /// A grant for `ttl_seconds` with no scopes yet.
    pub fn new(ttl_seconds: u32) -> Self {
        Grant {
            ttl_seconds,
            ..Grant::default()
        }
    }
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }
    pub fn single_use(mut self) -> Self {
        self.single_use = true;
        self
    }
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }
    /// An extra claim; `value` is any JSON value.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.push((name.into(), value.to_string()));
        self
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl Action {
    /// The operation, or `""` when the request matched no route.
    pub fn op(&self) -> &str {
        self.operation.as_deref().unwrap_or("")
    }
    /// A route parameter, e.g. `param("repo")`.
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }
    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }
    /// A header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The MCP call, for a service of kind `mcp`; `None` for a REST call.
    pub fn mcp(&self) -> Option<&McpCall> {
        self.mcp.as_ref()
    }
    pub fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }
    /// The body as UTF-8 text.
    pub fn body_str(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.body).map_err(|e| format!("body is not UTF-8: {e}"))
    }
    /// The body parsed as JSON. A truncated body, or one with a duplicate
    /// key (which servers resolve differently), is an error: a policy must
    /// not decide on half a document or on a guess.
    pub fn json(&self) -> Result<Value, String> {
        if self.body_truncated {
            return Err("body was truncated at the size limit".into());
        }
        crate::json::parse_strict(&self.body).map_err(|e| format!("body is not valid JSON: {e}"))
    }
}

/// Builds requests for tests and tools.
#[derive(Debug, Clone, Default)]
pub struct RequestBuilder(Request);

impl Request {
    /// A request for `method path` on `service`, as `agent` in role `role`,
    /// in workflow `wf-test`.
    pub fn builder(service: &str, method: &str, path: &str) -> RequestBuilder {
        let mut r = Request::default();
        r.principal.agent = "test-agent".into();
        r.principal.role = "test-role".into();
        r.principal.session = "test-session".into();
        r.principal.workflow = "wf-test".into();
        r.action.service = service.into();
        r.action.method = method.to_ascii_uppercase();
        r.action.path = path.into();
        r.usage.window_seconds = 60;
        RequestBuilder(r)
    }

    /// An MCP message `method` to `service`, as the host presents it: a
    /// `POST /mcp` whose body is the JSON-RPC message, operation `method`
    /// or `method:name`, and [`Action::mcp`] set. `arguments` must be a
    /// JSON object (or null for none); the JSON-RPC id is `1`.
    pub fn mcp(service: &str, method: &str, name: Option<&str>, arguments: Value) -> RequestBuilder {
        let mut arguments = match arguments {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        // As the host reads a message: a tool call's or prompt's arguments
        // are `params.arguments`; any other method's are its params, which
        // carry what it names as `uri`.
        let params = match (method, name) {
            ("tools/call" | "prompts/get", Some(n)) => serde_json::json!({"name": n, "arguments": arguments}),
            (_, Some(uri)) => {
                arguments.insert("uri".into(), Value::String(uri.into()));
                Value::Object(arguments.clone())
            }
            (_, None) => Value::Object(arguments.clone()),
        };
        let notification = method.starts_with("notifications/");
        let mut message = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
        if !notification {
            message["id"] = Value::from(1);
        }
        let operation = match name {
            Some(n) => format!("{method}:{n}"),
            None => method.to_string(),
        };
        let mut builder = Request::builder(service, "POST", "/mcp").operation(&operation);
        builder.0.action.body = message.to_string().into_bytes();
        builder.0.action.mcp = Some(McpCall {
            method: method.into(),
            name: name.map(Into::into),
            arguments: Value::Object(arguments).to_string(),
            id: (!notification).then(|| "1".into()),
        });
        builder
    }

    /// A `tools/call` of `tool` with `arguments` (a JSON object).
    pub fn tool_call(service: &str, tool: &str, arguments: Value) -> RequestBuilder {
        Request::mcp(service, "tools/call", Some(tool), arguments)
    }
}

impl RequestBuilder {
    pub fn role(mut self, role: &str) -> Self {
        self.0.principal.role = role.into();
        self
    }
    pub fn agent(mut self, agent: &str) -> Self {
        self.0.principal.agent = agent.into();
        self
    }
    pub fn workflow(mut self, workflow: &str) -> Self {
        self.0.principal.workflow = workflow.into();
        self
    }
    pub fn operation(mut self, op: &str) -> Self {
        self.0.action.operation = Some(op.into());
        self
    }
    pub fn param(mut self, k: &str, v: &str) -> Self {
        self.0.action.params.push((k.into(), v.into()));
        self
    }
    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.0.action.query.push((k.into(), v.into()));
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.0.action.headers.push((k.to_ascii_lowercase(), v.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.action.body = body.into();
        self
    }
    pub fn json(self, value: &Value) -> Self {
        self.body(value.to_string())
    }
    pub fn truncated(mut self) -> Self {
        self.0.action.body_truncated = true;
        self
    }
    pub fn usage(mut self, usage: Usage) -> Self {
        self.0.usage = usage;
        self
    }
    pub fn approval(mut self, approval: Approval) -> Self {
        self.0.approval = Some(approval);
        self
    }
    pub fn build(self) -> Request {
        self.0
    }
}

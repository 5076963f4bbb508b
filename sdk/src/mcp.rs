//! MCP calls: what an agent's MCP client asked of an MCP service.
//!
//! For a service of kind `mcp`, every JSON-RPC message is one request to
//! decide, with [`Action::mcp`](crate::Action::mcp) set. The route
//! operation is the method, or `method:name` when the call names something
//! (`tools/call:create_pull_request`), so a policy can also match on
//! [`Action::op`](crate::Action::op).
//!
//! ```ignore
//! let Some(call) = request.action.mcp() else {
//!     return Verdict::deny("this role speaks MCP only");
//! };
//! if call.is_tool_call("read_file") {
//!     let path = match call.arg_str("path") {
//!         Ok(path) => path,
//!         Err(e) => return Verdict::deny(e),
//!     };
//!     // ...
//! }
//! ```

use serde_json::{Map, Value};

/// One JSON-RPC message to an MCP service, as the host parsed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpCall {
    /// JSON-RPC method: `tools/call`, `resources/read`, `initialize`, …
    pub method: String,
    /// Tool or prompt name (`params.name`) or resource URI (`params.uri`).
    pub name: Option<String>,
    /// JSON text of the arguments object (`{}` when there are none).
    pub arguments: String,
    /// JSON text of the JSON-RPC id; `None` for a notification.
    pub id: Option<String>,
}

/// What an MCP listing shows; [`Policy::visible`](crate::Policy::visible)
/// is asked per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl McpCall {
    /// The tool's name, when this is a `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match self.method.as_str() {
            "tools/call" => self.name.as_deref(),
            _ => None,
        }
    }

    /// True for a `tools/call` of `tool`.
    pub fn is_tool_call(&self, tool: &str) -> bool {
        self.tool() == Some(tool)
    }

    /// The arguments as a JSON object. A duplicate key (which servers
    /// resolve differently) is an error, as in [`Action::json`](crate::Action::json).
    pub fn args(&self) -> Result<Map<String, Value>, String> {
        match crate::json::parse_strict(self.arguments.as_bytes()) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("{}: arguments are not a JSON object", self.subject())),
        }
    }

    /// One argument, `None` when absent.
    pub fn arg(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(self.args()?.remove(key))
    }

    /// A string argument; absent or of another type is an error naming it.
    pub fn arg_str(&self, key: &str) -> Result<String, String> {
        match self.arg(key)? {
            Some(Value::String(s)) => Ok(s),
            _ => Err(format!("{}: argument `{key}` must be a string", self.subject())),
        }
    }

    /// A string argument that must match one of the glob `patterns` (see
    /// [`glob_match`](crate::paths::glob_match)); the error names the
    /// argument, its value and the patterns.
    pub fn arg_matching(&self, key: &str, patterns: &[&str]) -> Result<String, String> {
        let value = self.arg_str(key)?;
        if patterns.iter().any(|p| crate::paths::glob_match(p, &value)) {
            Ok(value)
        } else {
            Err(format!(
                "{}: argument `{key}` = {value} matches none of {}",
                self.subject(),
                patterns.join(", ")
            ))
        }
    }

    /// What error messages name: the tool, prompt or resource, else the method.
    fn subject(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.method)
    }
}

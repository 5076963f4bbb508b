//! JSON-RPC 2.0 as MCP uses it: what one message an agent sent is, the
//! structured call a policy sees, and the error objects Airlock answers with.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::policy::{Listing, McpCall};
use crate::proxy::Refusal;
use crate::proxy::pipeline::Refused;

/// The longest method or name Airlock decides on; MCP names are far shorter.
const MAX_NAME_BYTES: usize = 1024;

/// JSON-RPC's own codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;

/// One message of a POST body, as far as Airlock needs to know it.
#[derive(Debug)]
pub enum Message {
    /// A request (has an id) or a notification (has none): an action.
    Call(Call),
    /// A message that is no request: a malformed one, or a response to a
    /// server request (not relayed). Answered with `error` when it has an id.
    Invalid { id: Value, reason: String },
}

/// A request or notification, ready to decide and forward.
#[derive(Debug)]
pub struct Call {
    /// The message as the agent sent it.
    pub raw: Value,
    pub mcp: McpCall,
    /// The JSON-RPC id; `None` for a notification.
    pub id: Option<Value>,
    /// An approval id carried in `params._meta["airlock/approval"]`.
    pub approval: Option<String>,
}

impl Call {
    /// `method` or `method:name`, e.g. `tools/call:read_file`.
    pub fn operation(&self) -> String {
        match &self.mcp.name {
            Some(name) => format!("{}:{name}", self.mcp.method),
            None => self.mcp.method.clone(),
        }
    }

    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The listing this call asks for, if it is one (its result is filtered).
    pub fn listing(&self) -> Option<Listing> {
        listing_of(&self.mcp.method)
    }

    /// What a token and an approval are bound to: the method, the name and
    /// the canonical arguments (not the id, not `_meta`), so an approved
    /// retry of the same call matches.
    pub fn binding_body(&self) -> Vec<u8> {
        canonical(&json!({
            "method": self.mcp.method,
            "name": self.mcp.name,
            "arguments": serde_json::from_str::<Value>(&self.mcp.arguments).unwrap_or(Value::Null),
        }))
        .into_bytes()
    }

    /// `sha256:<hex>` of the canonical arguments, for the audit record.
    pub fn arguments_digest(&self) -> String {
        let args = serde_json::from_str::<Value>(&self.mcp.arguments).unwrap_or(Value::Null);
        format!("sha256:{}", hex::encode(Sha256::digest(canonical(&args))))
    }
}

pub fn listing_of(method: &str) -> Option<Listing> {
    match method {
        "tools/list" => Some(Listing::Tools),
        "resources/list" => Some(Listing::Resources),
        "resources/templates/list" => Some(Listing::ResourceTemplates),
        "prompts/list" => Some(Listing::Prompts),
        _ => None,
    }
}

/// Where a listing's items are in its result, and which field names each.
pub fn listing_fields(kind: Listing) -> (&'static str, &'static str) {
    match kind {
        Listing::Tools => ("tools", "name"),
        Listing::Resources => ("resources", "uri"),
        Listing::ResourceTemplates => ("resourceTemplates", "uriTemplate"),
        Listing::Prompts => ("prompts", "name"),
    }
}

/// Classify one JSON value of a POST body.
pub fn classify(value: Value) -> Message {
    let Value::Object(obj) = &value else {
        return Message::Invalid {
            id: Value::Null,
            reason: "a JSON-RPC message must be a JSON object".into(),
        };
    };
    let id = obj.get("id").cloned();
    let reply_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Message::Invalid {
            id: reply_id,
            reason: "`jsonrpc` must be \"2.0\"".into(),
        };
    }
    let Some(method) = obj.get("method") else {
        let reason = if obj.contains_key("result") || obj.contains_key("error") {
            "Airlock does not relay responses to server requests"
        } else {
            "a request needs a `method`"
        };
        return Message::Invalid {
            id: reply_id,
            reason: reason.into(),
        };
    };
    let Some(method) = method
        .as_str()
        .filter(|m| !m.is_empty() && m.len() <= MAX_NAME_BYTES)
    else {
        return Message::Invalid {
            id: reply_id,
            reason: format!("`method` must be a string of 1..={MAX_NAME_BYTES} bytes"),
        };
    };
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Message::Invalid {
            id: Value::Null,
            reason: "`id` must be a string or an integer".into(),
        };
    }
    let params = match obj.get("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return Message::Invalid {
                id: reply_id,
                reason: "`params` must be an object".into(),
            };
        }
    };
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    };
    let name = match name_key {
        None => None,
        Some(key) => match params.get(key).and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n.len() <= MAX_NAME_BYTES => Some(n.to_string()),
            _ => {
                return Message::Invalid {
                    id: reply_id,
                    reason: format!("{method} needs `params.{key}`: a string of 1..={MAX_NAME_BYTES} bytes"),
                };
            }
        },
    };
    let arguments = match method {
        "tools/call" | "prompts/get" => match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a.clone(),
            Some(_) => {
                return Message::Invalid {
                    id: reply_id,
                    reason: "`params.arguments` must be an object".into(),
                };
            }
        },
        _ => {
            let mut rest = params.clone();
            rest.remove("_meta");
            rest
        }
    };
    let approval = params
        .get("_meta")
        .and_then(|m| m.get("airlock/approval"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mcp = McpCall {
        method: method.to_string(),
        name,
        arguments: Value::Object(arguments).to_string(),
        id: id.as_ref().map(Value::to_string),
    };
    Message::Call(Call {
        raw: value,
        mcp,
        id,
        approval,
    })
}

/// The JSON-RPC error code Airlock answers a refusal with. Policy and
/// budget refusals have codes of their own in the server range, so a
/// client can tell them apart without parsing the message.
pub fn code_for(refusal: Refusal) -> i64 {
    match refusal {
        Refusal::Denied | Refusal::UnknownRoute => -32001,
        Refusal::Escalated => -32002,
        Refusal::ApprovalInvalid => -32003,
        Refusal::BudgetExhausted | Refusal::RateLimited => -32004,
        Refusal::Conflict => -32005,
        Refusal::Unavailable => -32006,
        Refusal::UpstreamUnavailable | Refusal::UpstreamTimeout => -32007,
        Refusal::ResponseTooLarge => -32008,
        Refusal::BodyTooLarge | Refusal::BadRequest => INVALID_REQUEST,
        _ => -32000,
    }
}

/// An error response: the message carries the reason and the decision id
/// (what an agent's model reads); `data` the same as fields, plus whatever
/// the agent needs to act (approval id, budget, retry delay).
pub fn error_response(id: &Value, code: i64, what: &str, r: &Refused, decision_id: &str) -> Value {
    let (refusal, reason, extra, retry_after_s) =
        (r.refusal, r.reason.as_str(), r.extra.as_ref(), r.retry_after_s);
    let verb = match refusal {
        Refusal::Escalated => "is holding",
        Refusal::Denied => "denied",
        _ => "refused",
    };
    let mut message = format!("airlock {verb} {what}: {reason} (decision {decision_id})");
    if let Some(approval) = extra.and_then(|e| e.get("approval_id")).and_then(Value::as_str) {
        message.push_str(&format!(
            "; once a human approves {approval}, retry the same call with \
             params._meta[\"airlock/approval\"] = \"{approval}\""
        ));
    }
    let mut data = json!({ "error": refusal.code(), "reason": reason, "decision_id": decision_id });
    if let Some(s) = retry_after_s {
        data["retry_after_s"] = json!(s);
    }
    for (k, v) in extra.into_iter().flatten() {
        data[k] = v.clone();
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message, "data": data } })
}

/// Sorted keys, no whitespace: the same JSON always hashes the same.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(v: Value) -> Call {
        match classify(v) {
            Message::Call(c) => c,
            Message::Invalid { reason, .. } => panic!("invalid: {reason}"),
        }
    }

    fn invalid(v: Value) -> (Value, String) {
        match classify(v) {
            Message::Invalid { id, reason } => (id, reason),
            Message::Call(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn a_tool_call_names_its_tool_and_arguments() {
        let c = call(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": "src/a.rs"},
                       "_meta": {"airlock/approval": "apr_1", "progressToken": 1}}}));
        assert_eq!(c.operation(), "tools/call:read_file");
        assert_eq!(c.mcp.arguments, r#"{"path":"src/a.rs"}"#);
        assert_eq!(c.mcp.id.as_deref(), Some("7"));
        assert_eq!(c.approval.as_deref(), Some("apr_1"));
        assert!(!c.is_notification());
    }

    #[test]
    fn resources_are_named_by_uri_and_other_methods_by_nothing() {
        let c = call(
            json!({"jsonrpc": "2.0", "id": "r", "method": "resources/read", "params": {"uri": "repo://a"}}),
        );
        assert_eq!(c.operation(), "resources/read:repo://a");
        assert_eq!(c.mcp.arguments, r#"{"uri":"repo://a"}"#);
        let n = call(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(n.operation(), "notifications/initialized");
        assert!(n.is_notification());
        let l = call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "x", "_meta": {}}}),
        );
        assert_eq!(l.listing(), Some(Listing::Tools));
        assert_eq!(l.mcp.arguments, r#"{"cursor":"x"}"#);
    }

    #[test]
    fn malformed_messages_are_named() {
        assert!(invalid(json!([1])).1.contains("JSON object"));
        assert!(
            invalid(json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}))
                .1
                .contains("2.0")
        );
        let (id, reason) = invalid(json!({"jsonrpc": "2.0", "id": 3, "result": {}}));
        assert_eq!(id, json!(3));
        assert!(reason.contains("responses"));
        assert!(
            invalid(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}))
                .1
                .contains("params.name")
        );
        assert!(
            invalid(json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}))
                .1
                .contains("id")
        );
        assert!(
            invalid(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": [1]}}))
                .1
                .contains("arguments")
        );
    }

    #[test]
    fn bindings_ignore_id_and_meta_but_not_arguments() {
        let a = call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"b": 1, "a": 2}}}),
        );
        let b = call(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "t", "arguments": {"a": 2, "b": 1}, "_meta": {"airlock/approval": "x"}}}));
        let c = call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"a": 3, "b": 1}}}),
        );
        assert_eq!(a.binding_body(), b.binding_body());
        assert_eq!(a.arguments_digest(), b.arguments_digest());
        assert_ne!(a.binding_body(), c.binding_body());
    }

    #[test]
    fn an_error_response_carries_reason_and_decision() {
        let r = crate::proxy::pipeline::refused(Refusal::Denied, "no merging");
        let e = error_response(
            &json!(4),
            code_for(Refusal::Denied),
            "tools/call:merge",
            &r,
            "dec_1",
        );
        assert_eq!(e["id"], json!(4));
        assert_eq!(e["error"]["code"], json!(-32001));
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("no merging") && message.contains("dec_1"),
            "{message}"
        );
        assert_eq!(e["error"]["data"]["error"], json!("denied"));
    }
}

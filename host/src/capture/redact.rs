//! What a capture leaves out: configured body fields and headers.

use base64::Engine as _;
use serde_json::Value;

use crate::policy::PolicyRequest;

/// What stands in for a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Redaction rules: JSON pointers into a JSON body (an MCP call's
/// arguments are matched as the body's `/params/arguments`) and header
/// names (any case).
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub body_pointers: Vec<String>,
    pub headers: Vec<String>,
}

impl Redaction {
    /// The request in the JSON form `airlock policy eval` reads, redacted.
    pub fn request_json(&self, request: &PolicyRequest) -> Value {
        let mut request = request.clone();
        for (name, value) in &mut request.action.headers.0 {
            if self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                *value = REDACTED.to_string();
            }
        }
        if let Some(mcp) = &mut request.action.mcp
            && let Ok(mut arguments) = serde_json::from_str::<Value>(&mcp.arguments)
        {
            for pointer in &self.body_pointers {
                if let Some(inner) = pointer.strip_prefix("/params/arguments") {
                    redact(&mut arguments, inner);
                }
            }
            mcp.arguments = arguments.to_string();
        }
        let body = self.body(&request.action.body);
        let mut json = serde_json::to_value(&request).unwrap_or(Value::Null);
        if let Some(action) = json.get_mut("action").and_then(Value::as_object_mut) {
            match body {
                Body::Empty => {}
                Body::Text(text) => {
                    action.insert("body".into(), Value::String(text));
                }
                Body::Binary(bytes) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    action.insert("body_base64".into(), Value::String(b64));
                }
            }
        }
        json
    }

    fn body(&self, body: &[u8]) -> Body {
        if body.is_empty() {
            return Body::Empty;
        }
        if !self.body_pointers.is_empty()
            && let Ok(mut json) = serde_json::from_slice::<Value>(body)
        {
            for pointer in &self.body_pointers {
                redact(&mut json, pointer);
            }
            return Body::Text(json.to_string());
        }
        match std::str::from_utf8(body) {
            Ok(text) => Body::Text(text.to_string()),
            Err(_) => Body::Binary(body.to_vec()),
        }
    }
}

enum Body {
    Empty,
    Text(String),
    Binary(Vec<u8>),
}

fn redact(json: &mut Value, pointer: &str) {
    if pointer.is_empty() {
        return; // the whole body is never replaced: its shape is what replay needs
    }
    if let Some(value) = json.pointer_mut(pointer) {
        *value = Value::String(REDACTED.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Pairs;

    #[test]
    fn pointers_and_headers_are_redacted_and_the_rest_is_kept() {
        let mut request = PolicyRequest::default();
        request.action.method = "POST".into();
        request.action.path = "/tasks".into();
        request.action.headers = Pairs(vec![
            ("x-api-key".into(), "k-123".into()),
            ("content-type".into(), "application/json".into()),
        ]);
        request.action.body = br#"{"title":"t","customer":{"email":"a@b.c","id":7}}"#.to_vec();
        let rules = Redaction {
            body_pointers: vec!["/customer/email".into(), "/absent".into()],
            headers: vec!["X-API-Key".into()],
        };
        let json = rules.request_json(&request);
        let text = json.to_string();
        assert!(!text.contains("k-123") && !text.contains("a@b.c"), "{text}");
        let body: Value = serde_json::from_str(json["action"]["body"].as_str().expect("body")).expect("json");
        assert_eq!(body["customer"]["email"], REDACTED);
        assert_eq!(body["customer"]["id"], 7);
        assert_eq!(body["title"], "t");
        // And the result is a request `policy eval` and replay read back.
        let back = PolicyRequest::from_json(&text).expect("reads back");
        assert_eq!(back.action.headers.0[1].1, "application/json");
    }
}

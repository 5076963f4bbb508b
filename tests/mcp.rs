//! An MCP service through the real `airlock` binary: a small Streamable
//! HTTP MCP server on loopback (written here, JSON answers) as the
//! upstream, raw JSON-RPC as the agent, and the `state-user` guest deciding
//! (it allows the first two decisions of a workflow and denies the rest,
//! with a reason). The official-SDK tests of issue 11 build on this.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::e2e::{Airlock, HttpReply, Start, World};
use support::guest;

/// What the MCP server received: (Authorization, Mcp-Session-Id, body).
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, Value)>>>;

/// `initialize` → a result and the session id `upstream-1`; a request →
/// a tool result echoing the Authorization it got (twice); a notification → 202.
fn mcp_server(world: &World) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let listener = world
        .rt
        .block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind") });
    let addr = listener.local_addr().expect("addr");
    world.rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                        let (auth, session) = (header("authorization"), header("mcp-session-id"));
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if let Ok(mut l) = log.lock() {
                            l.push((auth.clone(), session, message.clone()));
                        }
                        let mut response = Response::new(Full::new(Bytes::new()));
                        if message.get("id").is_none() {
                            *response.status_mut() = hyper::StatusCode::ACCEPTED;
                            return Ok::<_, std::convert::Infallible>(response);
                        }
                        let answer = if message["method"] == "initialize" {
                            response.headers_mut().insert("mcp-session-id", "upstream-1".parse().expect("value"));
                            json!({"jsonrpc": "2.0", "id": message["id"], "result": {
                                "protocolVersion": message["params"]["protocolVersion"],
                                "capabilities": {"tools": {}}, "serverInfo": {"name": "t", "version": "1"}}})
                        } else {
                            let a = auth.unwrap_or_default();
                            json!({"jsonrpc": "2.0", "id": message["id"], "result": {
                                "content": [{"type": "text", "text": format!("authorization={a}; again={a}")}]}})
                        };
                        *response.body_mut() = Full::new(Bytes::from(answer.to_string()));
                        response.headers_mut().insert("content-type", "application/json".parse().expect("value"));
                        Ok(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, seen)
}

fn post(world: &World, airlock: &Airlock, handle: &str, session: Option<&str>, body: &Value) -> HttpReply {
    let auth = format!("Bearer {handle}");
    let mut headers = vec![
        ("proxy-authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(s) = session {
        headers.push(("mcp-session-id", s));
    }
    world.request(
        "POST",
        &airlock.proxy_url("/tools/mcp"),
        &headers,
        body.to_string().as_bytes(),
    )
}

#[test]
fn each_jsonrpc_message_is_decided_audited_and_answered_in_jsonrpc() {
    let world = World::new();
    let (upstream, seen) = mcp_server(&world);
    let body = format!(
        r#"
[services.tools]
kind = "mcp"
upstream = "http://{upstream}/mcp"

[roles.counter]
policy = "state-user.wasm"
services = ["tools"]
"#
    );
    let airlock = world.airlock(Start {
        body: &body,
        policies: vec![("state-user.wasm", guest("state-user"))],
        ..Start::default()
    });
    let (_, handle) = airlock.session(&world, "counter", "agent-1", 600);

    // Decision 1 (allowed): initialize; Airlock answers with its own session id.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = post(&world, &airlock, &handle, None, &init);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-06-18");
    let mcp_session = r
        .header("mcp-session-id")
        .expect("Airlock's session id")
        .to_string();
    assert!(mcp_session.starts_with("mcp_") && !mcp_session.contains("upstream-1"));

    // Decision 2 (allowed): a tool call; the server got the minted token and
    // its own session id; the agent gets the answer with the token scrubbed.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let r = post(&world, &airlock, &handle, Some(&mcp_session), &call);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (auth, upstream_session, _) = seen.lock().expect("lock")[1].clone();
    let token = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a minted token")
        .to_string();
    assert_eq!(upstream_session.as_deref(), Some("upstream-1"));
    assert!(!r.text().contains(&token), "the token never reaches the agent");
    assert_eq!(text.matches("[redacted by airlock]").count(), 2, "{text}");

    // Decision 3 (denied): a JSON-RPC error naming the rule and the decision;
    // nothing reaches the server.
    let denied = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "merge", "arguments": {"number": 7}}});
    let r = post(&world, &airlock, &handle, Some(&mcp_session), &denied);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["id"], 2);
    assert_eq!(v["error"]["code"], -32001);
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("count 3 over 2") && message.contains("(decision dec_"),
        "{message}"
    );
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "the denied call was not forwarded"
    );

    // Malformed JSON: a parse error with id null.
    let auth = format!("Bearer {handle}");
    let r = world.request(
        "POST",
        &airlock.proxy_url("/tools/mcp"),
        &[("proxy-authorization", &auth), ("mcp-session-id", &mcp_session)],
        br#"{"jsonrpc": "2.0", "id": 3, "method": "#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.json()["id"], Value::Null);

    // Another session cannot use this MCP session.
    let (_, other) = airlock.session(&world, "counter", "agent-2", 600);
    let r = post(&world, &airlock, &other, Some(&mcp_session), &call);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], "mcp_session_unknown");

    // One decision record per message, with the tool and an argument digest.
    let records: Vec<Value> = airlock
        .audit_records()
        .into_iter()
        .filter(|r| r["kind"] == "decision" && r["service"] == "tools")
        .collect();
    let ops: Vec<&str> = records
        .iter()
        .map(|r| r["operation"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        ops,
        ["initialize", "tools/call:whoami", "tools/call:merge", "-", "-"],
        "{records:?}"
    );
    assert_eq!(records[1]["verdict"], "allow");
    assert_eq!(records[1]["mcp_name"], "whoami");
    assert_eq!(records[2]["verdict"], "deny");
    assert_eq!(records[2]["mcp_id"], "2");
    assert!(
        records[2]["mcp_arguments_sha256"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert_eq!(records[3]["error"], "bad_request");
    assert_eq!(records[4]["error"], "mcp_session_unknown");
}

//! MCP through Airlock with the official MCP Python SDK (mcp 2.3.0, pinned
//! by scripts/tools) on both sides of the real `airlock` binary: its
//! `MCPServer` (FastMCP) mimicking the GitHub MCP server is the upstream
//! (`tests/mcp/server.py`, SSE answers cut into 5–7-byte pieces on the wire,
//! every request logged), its Streamable HTTP client and `ClientSession` are
//! the agent (`tests/mcp/agent.py`), and the `github-mcp` example policy
//! decides every JSON-RPC message.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::e2e::{Airlock, HttpReply, Start, World};
use support::{example_policy, root, wait_for};

const SERVICE: &str = "github-mcp";
const AGENT: &str = "dev-agent-7";
/// What Airlock puts where a token was (host/src/proxy/headers.rs).
const REDACTED: &str = "[redacted by airlock]";
/// The role's body cap in these tests (`limits.max_body_bytes`).
const BODY_CAP: usize = 16 * 1024;
const VISIBLE: [&str; 4] = [
    "get_me",
    "list_issues",
    "get_file_contents",
    "create_pull_request",
];
const ALL_TOOLS: [&str; 6] = [
    "get_me",
    "list_issues",
    "get_file_contents",
    "create_pull_request",
    "merge_pull_request",
    "delete_repo",
];
const NEVER_MERGES: &str = "github-mcp never merges pull requests";

/// The venv scripts/tools installs the pinned SDK into (it puts its `bin`
/// on the PATH; tests/metrics.rs finds its Python the same way).
fn python() -> PathBuf {
    let python = root().join("target/tools/python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/tools (it installs the MCP Python SDK)",
        python.display()
    );
    python
}

fn policy() -> Vec<u8> {
    static BUILT: OnceLock<Vec<u8>> = OnceLock::new();
    BUILT
        .get_or_init(|| std::fs::read(example_policy("github-mcp")).expect("the github-mcp component"))
        .clone()
}

/// Collects a child's pipe into a string, on its own thread.
fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let sink = Arc::new(Mutex::new(String::new()));
    let out = sink.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = out.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    sink
}

fn text(s: &Arc<Mutex<String>>) -> String {
    s.lock().map(|s| s.clone()).unwrap_or_default()
}

/// The SDK's MCP server on loopback (killed on drop).
struct McpServer {
    child: Child,
    port: u16,
    log: PathBuf,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpServer {
    fn start() -> McpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("upstream.jsonl");
        let mut child = Command::new(python())
            .arg(root().join("tests/mcp/server.py"))
            .args([
                "--port",
                "0",
                "--chunk",
                "5-7",
                "--log",
                log.to_str().expect("utf-8"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tests/mcp/server.py");
        let stderr = drain(child.stderr.take().expect("stderr"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        // It prints its port once uvicorn has started (no sleeping here).
        let port = rx.recv_timeout(Duration::from_secs(60)).ok().flatten();
        let mut server = McpServer {
            child,
            port: 0,
            log,
            stderr,
            _dir: dir,
        };
        server.port =
            port.unwrap_or_else(|| panic!("the MCP server did not start: {}", text(&server.stderr)));
        let addr = format!("127.0.0.1:{}", server.port);
        assert!(
            wait_for(
                || std::net::TcpStream::connect(&addr).is_ok(),
                Duration::from_secs(10)
            ),
            "the MCP server does not accept connections on {addr}"
        );
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Every line the server logged, in order.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// One entry per JSON-RPC message that reached the server.
    fn requests(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| r["kind"] == "request")
            .collect()
    }

    /// The tool names of every `tools/call` that reached the server.
    fn tools_called(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r["method"] == "tools/call")
            .filter_map(|r| r["tool"].as_str().map(str::to_string))
            .collect()
    }

    fn request_for(&self, tool: &str) -> Value {
        self.requests()
            .into_iter()
            .find(|r| r["tool"] == tool)
            .unwrap_or_else(|| panic!("{tool} never reached the server: {:?}", self.log()))
    }

    /// How the server sent its answer to `tool` (logged once it is sent).
    fn response_for(&self, tool: &str) -> Value {
        let find = || {
            self.log()
                .into_iter()
                .find(|r| r["kind"] == "response" && r["tool"] == tool)
        };
        wait_for(|| find().is_some(), Duration::from_secs(10));
        find().unwrap_or_else(|| panic!("no response to {tool} logged: {:?}", self.log()))
    }
}

fn start_airlock(world: &World, upstream: &McpServer) -> Airlock {
    let body = format!(
        r#"
[services.{SERVICE}]
kind = "mcp"
upstream = "{}"

[roles.github-mcp]
policy = "github-mcp.wasm"
services = ["{SERVICE}"]
limits = {{ max_body_bytes = "{cap}KiB", policy_body_bytes = "{cap}KiB" }}
"#,
        upstream.url(),
        cap = BODY_CAP / 1024
    );
    world.airlock(Start {
        body: &body,
        policies: vec![("github-mcp.wasm", policy())],
        ..Start::default()
    })
}

fn agent_url(airlock: &Airlock) -> String {
    airlock.proxy_url(&format!("/{SERVICE}/mcp"))
}

/// Run the SDK agent against `url` with `script`; its JSON report. The
/// process is killed if it does not finish within two minutes.
fn agent(url: &str, handle: Option<&str>, script: Value) -> Value {
    let mut command = Command::new(python());
    command
        .arg(root().join("tests/mcp/agent.py"))
        .args(["--url", url, "--script", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(h) = handle {
        command.args(["--handle", h]);
    }
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Killed(command.spawn().expect("starting tests/mcp/agent.py"));
    let (stdout, stderr) = (
        drain(child.0.stdout.take().expect("stdout")),
        drain(child.0.stderr.take().expect("stderr")),
    );
    {
        let mut stdin = child.0.stdin.take().expect("stdin");
        stdin.write_all(script.to_string().as_bytes()).expect("script");
    }
    let finished = wait_for(
        || child.0.try_wait().ok().flatten().is_some(),
        Duration::from_secs(120),
    );
    assert!(finished, "the agent did not finish: {}", text(&stderr));
    // The pipes close with the process; let the readers catch up.
    wait_for(
        || serde_json::from_str::<Value>(text(&stdout).trim()).is_ok(),
        Duration::from_secs(5),
    );
    let out = text(&stdout);
    match serde_json::from_str::<Value>(out.trim()) {
        Ok(report) if report.get("fatal").is_none() => report,
        _ => panic!("the agent failed: {out}\n{}", text(&stderr)),
    }
}

fn step(report: &Value, i: usize) -> &Value {
    &report["steps"][i]
}

/// The claims of a `Bearer <jwt>` header value, once its signature checks
/// against Airlock's JWKS for the MCP service's audience.
fn verified_claims(world: &World, airlock: &Airlock, authorization: &str) -> Value {
    let jwt = authorization
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a bearer token: {authorization}"));
    let jwks = world
        .request("GET", &airlock.admin_url("/.well-known/jwks.json"), &[], b"")
        .json();
    let now = airlock::proxy::now_ms() / 1000;
    let verified = airlock::token::verify(jwt, &jwks, "airlock", SERVICE, now, 0)
        .unwrap_or_else(|e| panic!("not a token Airlock minted for {SERVICE}: {e}"));
    // The payload as sent, decoded by hand: what the upstream reads.
    let payload = jwt.split('.').nth(1).expect("a compact JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims JSON");
    assert_eq!(claims, verified);
    claims
}

/// Airlock's decision records for the MCP service, in order.
fn decisions(airlock: &Airlock) -> Vec<Value> {
    airlock
        .audit_records()
        .into_iter()
        .filter(|r| r["kind"] == "decision" && r["service"] == SERVICE)
        .collect()
}

/// The records of JSON-RPC messages (POSTs), leaving out the SDK's GET for a
/// server-initiated stream, which Airlock refuses (405) and records too.
fn message_records(airlock: &Airlock) -> Vec<Value> {
    let all = decisions(airlock);
    for r in all.iter().filter(|r| r["method"] != "POST") {
        assert_eq!(r["method"], "GET", "{r}");
        assert_eq!(r["error"], "method_not_allowed", "{r}");
    }
    all.into_iter().filter(|r| r["method"] == "POST").collect()
}

fn strs<'a>(values: impl IntoIterator<Item = &'a Value>, key: &str) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v[key].as_str().unwrap_or("-").to_string())
        .collect()
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call_tool", "name": name, "arguments": arguments})
}

fn shop(extra: Value) -> Value {
    let mut args = json!({"owner": "acme", "repo": "shop"});
    if let (Some(a), Value::Object(extra)) = (args.as_object_mut(), extra) {
        a.extend(extra);
    }
    args
}

#[test]
fn the_sdk_agent_sees_four_tools_and_an_allowed_call_carries_a_minted_token_scrubbed_from_the_stream() {
    let world = World::new();
    let upstream = McpServer::start();
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", AGENT, 600);

    let report = agent(
        &agent_url(&airlock),
        Some(&handle),
        json!([
            {"op": "list_tools"},
            call("get_file_contents", shop(json!({"path": "src/lib.rs"}))),
            call("get_me", json!({})),
            {"op": "ping"},
            // Not JSON, sent by urllib in the SDK's session: a parse error.
            {"op": "raw", "body": "{\"jsonrpc\": \"2.0\", \"id\": 99, \"method\": "},
        ]),
    );

    // Through Airlock, only what the policy lets it see.
    assert_eq!(step(&report, 0)["tools"], json!(VISIBLE), "{report}");

    // The allowed call went through, with a token minted for it.
    let read = step(&report, 1);
    assert_eq!(read["ok"], true, "{report}");
    assert_eq!(read["isError"], false, "{report}");
    assert_eq!(read["text"], "contents of acme/shop/src/lib.rs");
    let seen = upstream.request_for("get_file_contents");
    assert_eq!(seen["arguments"]["path"], "src/lib.rs");
    let authorization = seen["authorization"].as_str().expect("an Authorization header");
    let c = verified_claims(&world, &airlock, authorization);
    assert_eq!(c["aud"], SERVICE);
    assert_eq!(c["iss"], "airlock");
    assert_eq!(c["sub"], AGENT);
    assert_eq!(c["scope"], "contents:read", "{c}");
    let listing = upstream
        .requests()
        .into_iter()
        .find(|r| r["method"] == "tools/list")
        .expect("tools/list reached the server");
    let listing_claims = verified_claims(&world, &airlock, listing["authorization"].as_str().expect("auth"));
    assert_eq!(listing_claims["scope"], "mcp:session");
    assert_ne!(listing_claims["jti"], c["jti"], "one token per message");

    // Every message that reached the server through Airlock carried a
    // minted token and Airlock's own upstream session, never the handle.
    let through = upstream.requests();
    assert!(!through.is_empty());
    for r in &through {
        let auth = r["authorization"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {r}"));
        assert!(auth.starts_with("Bearer ey"), "{r}");
        assert_ne!(r["mcp_session_id"], report["session_id"], "{r}");
    }
    for line in &through {
        assert!(
            !line.to_string().contains(&handle),
            "the session handle reached the upstream: {line}"
        );
    }
    assert!(
        report["session_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("mcp_")),
        "Airlock's own Mcp-Session-Id: {report}"
    );

    // get_me echoes the Authorization it got; its SSE answer left the
    // server in pieces of at most 7 bytes, yet the token is scrubbed.
    let me = step(&report, 2);
    assert_eq!(me["ok"], true, "{report}");
    let got = upstream.request_for("get_me");
    let token = got["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("get_me got a bearer token");
    assert_eq!(
        verified_claims(&world, &airlock, &format!("Bearer {token}"))["scope"],
        "user:read"
    );
    let wire = upstream.response_for("get_me");
    assert!(
        wire["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{wire}"
    );
    assert!(wire["largest_piece"].as_u64().is_some_and(|n| n <= 7), "{wire}");
    assert!(
        wire["pieces"].as_u64().unwrap_or(0) as usize > token.len() / 7,
        "the token spans many pieces: {wire}"
    );
    let me_text = me["text"].as_str().unwrap_or_default();
    assert_eq!(
        me_text,
        format!("login=octocat; you sent Authorization: Bearer {REDACTED}")
    );
    assert!(
        !report.to_string().contains(token),
        "the token reached the agent: {report}"
    );
    assert!(me["result"].to_string().contains(REDACTED), "{me}");
    // Airlock relayed the tool calls as event streams too.
    let streamed = report["http"]
        .as_array()
        .expect("http log")
        .iter()
        .filter(|h| {
            h["method"] == "POST"
                && h["content_type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("text/event-stream"))
        })
        .count();
    assert!(streamed >= 2, "{report}");
    assert_eq!(step(&report, 3)["ok"], true, "ping: {report}");

    // Malformed JSON: JSON-RPC parse error, id null, never forwarded.
    let raw = step(&report, 4);
    assert_eq!(raw["status"], 400, "{raw}");
    assert_eq!(raw["json"]["error"]["code"], -32700, "{raw}");
    assert_eq!(raw["json"]["id"], Value::Null);
    assert!(
        raw["json"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON") && m.contains("(decision dec_")),
        "{raw}"
    );
    assert!(
        through.iter().all(|r| r["method"].is_string()),
        "only whole JSON-RPC messages reached the server: {through:?}"
    );
    assert_eq!(upstream.requests().len(), through.len());

    // Directly, the same server offers all six tools.
    let direct = agent(&upstream.url(), None, json!([{"op": "list_tools"}]));
    assert_eq!(step(&direct, 0)["tools"], json!(ALL_TOOLS), "{direct}");
}

#[test]
fn hidden_and_out_of_bounds_calls_are_jsonrpc_errors_naming_the_rule_and_never_reach_the_upstream() {
    let world = World::new();
    let upstream = McpServer::start();
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", AGENT, 600);
    let outside = |p: &str| {
        format!("get_file_contents: path {p} is outside the allowed paths (README.md, src/, docs/)")
    };
    let denied: Vec<(Value, String)> = vec![
        // Hidden from the listing, called by name anyway.
        (
            call("merge_pull_request", shop(json!({"pullNumber": 7}))),
            NEVER_MERGES.to_string(),
        ),
        (
            call("delete_repo", shop(json!({}))),
            "tool delete_repo is not one github-mcp may call".to_string(),
        ),
        // Listed, but with arguments the rule does not allow.
        (
            call("get_file_contents", shop(json!({"path": "../secrets.env"}))),
            outside("../secrets.env"),
        ),
        (
            call("get_file_contents", shop(json!({"path": ".env"}))),
            outside(".env"),
        ),
        (
            call(
                "create_pull_request",
                shop(json!({"title": "Fix", "head": "main", "base": "main"})),
            ),
            "create_pull_request: head branch main is not an agent/ branch".to_string(),
        ),
    ];
    let mut script = vec![json!({"op": "list_tools"})];
    script.extend(denied.iter().map(|(s, _)| s.clone()));
    script.push(call(
        "create_pull_request",
        shop(json!({"title": "Fix checkout", "head": "agent/fix-checkout", "base": "main"})),
    ));
    let report = agent(&agent_url(&airlock), Some(&handle), Value::Array(script));

    for (i, (_, reason)) in denied.iter().enumerate() {
        let s = step(&report, i + 1);
        assert_eq!(s["ok"], false, "step {}: {report}", i + 1);
        let e = &s["error"];
        assert_eq!(e["code"], -32001, "{s}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason.as_str()),
            "{message:?} names the rule: {reason}"
        );
        assert!(
            message.contains("(decision dec_"),
            "{message:?} names the decision"
        );
        assert_eq!(e["data"]["error"], "denied", "{s}");
        assert_eq!(e["data"]["reason"], reason.as_str(), "{s}");
        assert!(
            e["data"]["decision_id"]
                .as_str()
                .is_some_and(|d| message.contains(d)),
            "{s}"
        );
    }
    let pr = step(&report, denied.len() + 1);
    assert_eq!(pr["ok"], true, "an agent/ branch may be proposed: {report}");
    assert_eq!(pr["isError"], false, "{report}");

    // Nothing denied reached the server: only the allowed PR did, with a
    // pulls:write token.
    assert_eq!(upstream.tools_called(), ["create_pull_request"]);
    let sent = upstream.request_for("create_pull_request");
    assert_eq!(sent["arguments"]["head"], "agent/fix-checkout");
    let c = verified_claims(&world, &airlock, sent["authorization"].as_str().expect("auth"));
    assert_eq!(c["scope"], "pulls:write");
    let log = serde_json::to_string(&upstream.log()).expect("json");
    for never in ["merge_pull_request", "delete_repo", "secrets.env", "\".env\""] {
        assert!(!log.contains(never), "{never} reached the server: {log}");
    }

    // Exactly one decision record per JSON-RPC message the SDK sent.
    let records = message_records(&airlock);
    let posts = report["http"]
        .as_array()
        .expect("http log")
        .iter()
        .filter(|h| h["method"] == "POST")
        .count();
    assert_eq!(records.len(), posts, "{records:?}");
    assert_eq!(
        strs(&records, "operation"),
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call:merge_pull_request",
            "tools/call:delete_repo",
            "tools/call:get_file_contents",
            "tools/call:get_file_contents",
            "tools/call:create_pull_request",
            "tools/call:create_pull_request",
        ],
        "{records:?}"
    );
    assert_eq!(
        strs(&records, "verdict"),
        [
            "allow", "allow", "allow", "deny", "deny", "deny", "deny", "deny", "allow"
        ]
    );
    assert_eq!(strs(&records, "mcp_method")[3..], ["tools/call"; 6]);
    let tool_records = &records[3..];
    for (r, (script, reason)) in tool_records.iter().zip(&denied) {
        assert_eq!(r["mcp_name"], script["name"], "{r}");
        assert_eq!(r["reason"], reason.as_str(), "{r}");
        assert!(r["token_jti"].is_null(), "a denial mints nothing: {r}");
        let id = r["decision_id"].as_str().expect("decision id");
        assert!(report.to_string().contains(id), "the agent was told {id}");
    }
    let digests = strs(tool_records, "mcp_arguments_sha256");
    assert!(digests.iter().all(|d| d.starts_with("sha256:")), "{digests:?}");
    assert_ne!(digests[2], digests[3], "different paths, different digests");
    let allowed = &records[8];
    assert_eq!(allowed["token_scope"], "pulls:write");
    assert_eq!(allowed["token_jti"], c["jti"]);
    let audit = std::fs::read_to_string(airlock.audit_log()).expect("audit log");
    // Arguments are digested, not logged (a denial's reason may quote one:
    // the rule names the path it refused).
    assert!(
        !audit.contains("fix-checkout") && !audit.contains("Fix checkout"),
        "arguments are digested, not logged"
    );
}

/// A raw Streamable HTTP client, for what the SDK never sends.
struct Raw<'a> {
    world: &'a World,
    airlock: &'a Airlock,
    handle: String,
    session: Option<String>,
    revision: String,
}

impl<'a> Raw<'a> {
    fn new(world: &'a World, airlock: &'a Airlock, handle: &str, revision: &str) -> Raw<'a> {
        let mut raw = Raw {
            world,
            airlock,
            handle: handle.to_string(),
            session: None,
            revision: revision.to_string(),
        };
        let r = raw.post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": revision, "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["result"]["protocolVersion"], revision, "{}", r.text());
        raw.session = r.header("mcp-session-id").map(str::to_string);
        assert!(raw.session.is_some(), "Airlock gave its own session id");
        let n = raw.post(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(n.status, 202, "{}", n.text());
        raw
    }

    fn post(&self, body: &[u8]) -> HttpReply {
        let auth = format!("Bearer {}", self.handle);
        let mut headers = vec![
            ("proxy-authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = &self.session {
            headers.push(("mcp-session-id", s.as_str()));
            headers.push(("mcp-protocol-version", self.revision.as_str()));
        }
        self.world
            .request("POST", &agent_url(self.airlock), &headers, body)
    }
}

fn rpc(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

fn message_of(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn malformed_oversized_and_batched_bodies_each_get_their_jsonrpc_answer_and_one_record_per_call() {
    let world = World::new();
    let upstream = McpServer::start();
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", AGENT, 600);
    // Batches exist only in revision 2025-03-26.
    let raw = Raw::new(&world, &airlock, &handle, "2025-03-26");
    let before = message_records(&airlock).len();
    assert_eq!(before, 2, "initialize and notifications/initialized");

    // Not JSON: a parse error with id null.
    let r = raw.post(br#"{"jsonrpc": "2.0", "id": 1, "method": "#);
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert_eq!(v["id"], Value::Null);
    assert!(message_of(&v).contains("malformed JSON"), "{v}");

    // Over the role's body cap (limits.max_body_bytes): refused before
    // parsing, as a JSON-RPC invalid request.
    let big = rpc(
        2,
        "get_file_contents",
        shop(json!({"path": format!("src/{}", "x".repeat(BODY_CAP))})),
    );
    let r = raw.post(big.to_string().as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert_eq!(v["error"]["data"]["error"], "body_too_large", "{v}");
    assert!(
        message_of(&v).contains(&format!("body over the role's {BODY_CAP}-byte limit")),
        "{v}"
    );

    // A batch mixing allowed and denied calls: one answer per call.
    let batch = json!([
        rpc(10, "get_file_contents", shop(json!({"path": "README.md"}))),
        rpc(11, "merge_pull_request", shop(json!({"pullNumber": 7}))),
        rpc(12, "get_file_contents", shop(json!({"path": ".env"}))),
        {"jsonrpc": "2.0", "id": 13, "method": "ping"},
    ]);
    let r = raw.post(batch.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let answers = r.json();
    let answers = answers.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 4, "{answers:?}");
    let by_id = |id: u64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer for {id}: {answers:?}"))
    };
    assert_eq!(
        by_id(10)["result"]["content"][0]["text"],
        "contents of acme/shop/README.md",
        "{answers:?}"
    );
    assert_eq!(by_id(11)["error"]["code"], -32001);
    assert!(message_of(by_id(11)).contains(NEVER_MERGES), "{answers:?}");
    assert_eq!(by_id(12)["error"]["code"], -32001);
    assert!(
        message_of(by_id(12)).contains("get_file_contents: path .env is outside the allowed paths"),
        "{answers:?}"
    );
    assert!(by_id(13)["result"].is_object(), "{answers:?}");
    assert!(by_id(13).get("error").is_none(), "{answers:?}");

    // Nothing denied, malformed or oversized reached the server.
    assert_eq!(upstream.tools_called(), ["get_file_contents"]);
    assert_eq!(
        upstream.request_for("get_file_contents")["arguments"]["path"],
        "README.md"
    );
    let methods = strs(&upstream.requests(), "method");
    assert_eq!(
        methods,
        ["initialize", "notifications/initialized", "tools/call", "ping"],
        "{:?}",
        upstream.log()
    );

    // One decision record per call: the parse error, the oversized body,
    // then the batch's four messages, each decided on its own.
    let records = message_records(&airlock);
    let new = &records[before..];
    assert_eq!(new.len(), 6, "{new:?}");
    assert_eq!(new[0]["error"], "bad_request", "{}", new[0]);
    assert!(new[0]["mcp_method"].is_null());
    assert_eq!(new[1]["error"], "body_too_large", "{}", new[1]);
    assert_eq!(
        strs(&new[2..], "operation"),
        [
            "tools/call:get_file_contents",
            "tools/call:merge_pull_request",
            "tools/call:get_file_contents",
            "ping"
        ]
    );
    assert_eq!(strs(&new[2..], "verdict"), ["allow", "deny", "deny", "allow"]);
    assert_eq!(strs(&new[2..], "mcp_id"), ["10", "11", "12", "13"]);
    assert_eq!(new[3]["reason"], NEVER_MERGES);

    // A session at a later revision gets no batches.
    let modern = Raw::new(&world, &airlock, &handle, "2025-06-18");
    let r = modern.post(
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(message_of(&r.json()).contains("2025-03-26"), "{}", r.text());
}

#[test]
fn an_escalated_call_goes_through_once_a_human_approves_it_and_only_once() {
    let world = World::new();
    let upstream = McpServer::start();
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", AGENT, 600);
    let reason = "create_pull_request: a pull request into release needs a human's approval";
    let pr = shop(json!({"title": "Backport fix", "head": "agent/fix-checkout", "base": "release"}));

    // Into release: held for a human, as a JSON-RPC error naming the
    // reason and the approval id; nothing reaches the server.
    let first = agent(
        &agent_url(&airlock),
        Some(&handle),
        json!([call("create_pull_request", pr.clone())]),
    );
    let held = step(&first, 0);
    assert_eq!(held["ok"], false, "{first}");
    let e = &held["error"];
    assert_eq!(e["code"], -32002, "{held}");
    assert_eq!(e["data"]["error"], "escalated", "{held}");
    let approval = e["data"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval id: {held}"))
        .to_string();
    let message = e["message"].as_str().unwrap_or_default();
    assert!(message.contains(reason), "{message:?} names the rule");
    assert!(message.contains(&approval), "{message:?} names {approval}");
    assert!(
        message.contains(&format!("params._meta[\"airlock/approval\"] = \"{approval}\"")),
        "{message:?} says how to retry"
    );
    assert!(
        e["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(reason)),
        "{held}"
    );
    assert!(upstream.tools_called().is_empty(), "{:?}", upstream.log());

    // A retry before anyone approved is refused, and still forwards nothing.
    let meta = json!({"airlock/approval": approval});
    let early = agent(
        &agent_url(&airlock),
        Some(&handle),
        json!([{"op": "call_tool", "name": "create_pull_request", "arguments": pr, "meta": meta}]),
    );
    let s = step(&early, 0);
    assert_eq!(s["error"]["code"], -32003, "{early}");
    assert_eq!(s["error"]["data"]["error"], "approval_invalid", "{early}");
    assert!(message_of(s).contains("still pending"), "{s}");
    assert!(upstream.tools_called().is_empty(), "{:?}", upstream.log());

    // A human approves it through the admin API.
    let pending = airlock.admin(&world, "GET", "/v1/approvals?status=pending", "");
    assert!(pending.text().contains(&approval), "{}", pending.text());
    let r = airlock.admin(
        &world,
        "POST",
        &format!("/v1/approvals/{approval}/approve"),
        &json!({"approver": "alice@acme.example"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The same call with the approval in `_meta` goes through, once; a
    // second retry with the same id is refused.
    let with = json!({"op": "call_tool", "name": "create_pull_request", "arguments": pr, "meta": meta});
    let retried = agent(&agent_url(&airlock), Some(&handle), json!([with, with]));
    let ok = step(&retried, 0);
    assert_eq!(ok["ok"], true, "{retried}");
    assert_eq!(ok["isError"], false, "{retried}");
    assert!(
        ok["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"base\": \"release\"")),
        "{ok}"
    );
    let again = step(&retried, 1);
    assert_eq!(again["ok"], false, "{retried}");
    assert_eq!(again["error"]["code"], -32003, "{again}");
    assert_eq!(again["error"]["data"]["error"], "approval_invalid", "{again}");
    assert!(
        message_of(again).contains(&format!("approval {approval} was already used")),
        "{again}"
    );

    // Exactly one create_pull_request reached the server, with a token
    // minted for it.
    assert_eq!(upstream.tools_called(), ["create_pull_request"]);
    let sent = upstream.request_for("create_pull_request");
    assert_eq!(sent["arguments"]["base"], "release");
    assert_eq!(sent["arguments"]["head"], "agent/fix-checkout");
    let c = verified_claims(&world, &airlock, sent["authorization"].as_str().expect("auth"));
    assert_eq!(c["scope"], "pulls:write", "{c}");
    assert_eq!(c["sub"], AGENT);

    // The four calls' records all carry the approval id: held, refused
    // (pending), allowed with the token it minted, refused (used).
    let records: Vec<Value> = message_records(&airlock)
        .into_iter()
        .filter(|r| r["operation"] == "tools/call:create_pull_request")
        .collect();
    assert_eq!(
        strs(&records, "verdict"),
        ["escalate", "deny", "allow", "deny"],
        "{records:?}"
    );
    assert_eq!(
        strs(&records, "error"),
        ["escalated", "approval_invalid", "-", "approval_invalid"],
        "{records:?}"
    );
    for r in &records {
        assert_eq!(r["approval_id"], approval.as_str(), "{r}");
        assert_eq!(r["mcp_name"], "create_pull_request", "{r}");
    }
    assert_eq!(records[0]["decision_id"], e["data"]["decision_id"]);
    assert!(
        records[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(reason)),
        "{}",
        records[0]
    );
    assert_eq!(records[2]["token_jti"], c["jti"]);
    assert_eq!(records[2]["token_scope"], "pulls:write");
    for r in [&records[0], &records[1], &records[3]] {
        assert!(r["token_jti"].is_null(), "a refusal mints nothing: {r}");
    }
    let digests = strs(&records, "mcp_arguments_sha256");
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "the same call: {digests:?}"
    );
}

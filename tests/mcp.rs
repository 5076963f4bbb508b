//! MCP through Airlock, end to end with the official MCP Python SDK: its
//! FastMCP server (`tests/mcp/upstream.py`) is the upstream, its client
//! (`tests/mcp/agent.py`) the agent, and the real `airlock` binary decides
//! every JSON-RPC message with the `github-mcp` example policy.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::e2e::{Airlock, HttpReply, Start, World};
use support::{build_policy, root};

const REDACTED: &str = "[redacted by airlock]";

fn python() -> PathBuf {
    root().join("target/tools/python/bin/python")
}

fn policy() -> Vec<u8> {
    static BUILT: OnceLock<Vec<u8>> = OnceLock::new();
    BUILT
        .get_or_init(|| std::fs::read(build_policy(&root().join("policies/github-mcp"))).expect("policy"))
        .clone()
}

/// The SDK's FastMCP server on loopback, logging every request it receives.
struct McpServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpServer {
    fn start(extra: &[&str]) -> McpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("upstream.jsonl");
        let mut child = Command::new(python())
            .arg(root().join("tests/mcp/upstream.py"))
            .args(["--port", "0", "--log", log.to_str().expect("utf-8")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the MCP server (run scripts/tools first)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .expect("the MCP server printed its port");
        McpServer {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Every request the server received, in order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The tool names of every `tools/call` the server received.
    fn tools_called(&self) -> Vec<String> {
        self.received()
            .iter()
            .flat_map(|r| match &r["body"] {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            })
            .filter(|m| m["method"] == "tools/call")
            .filter_map(|m| m["params"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

fn start_airlock(world: &World, upstream: &McpServer) -> Airlock {
    let body = format!(
        r#"
[services.github]
kind = "mcp"
upstream = "{}"

[roles.github-mcp]
policy = "github-mcp.wasm"
services = ["github"]
limits = {{ max_body_bytes = "16KiB" }}
"#,
        upstream.url()
    );
    world.airlock(Start {
        body: &body,
        policies: vec![("github-mcp.wasm", policy())],
        ..Start::default()
    })
}

/// Run the SDK client through `url` with `script`; its JSON report.
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
    let mut child = command.spawn().expect("starting the MCP agent");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.to_string().as_bytes())
        .expect("script");
    let out = child.wait_with_output().expect("agent output");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "agent printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn step<'a>(report: &'a Value, i: usize) -> &'a Value {
    &report["steps"][i]
}

fn text_of(step: &Value) -> String {
    step["result"]["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The claims of a `Bearer <jwt>` header value (not verified: the token
/// test suite does that; here we only read what was minted).
fn claims(authorization: &str) -> Value {
    let jwt = authorization.strip_prefix("Bearer ").expect("a bearer token");
    let payload = jwt.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

fn decisions(airlock: &Airlock) -> Vec<Value> {
    airlock
        .audit_records()
        .into_iter()
        .filter(|r| r["kind"] == "decision" && r["service"] == "github")
        .collect()
}

fn names(step: &Value, list: &str, key: &str) -> Vec<String> {
    let mut names: Vec<String> = step["result"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t[key].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn the_agent_sees_only_allowed_tools_and_an_allowed_call_carries_the_minted_token() {
    let world = World::new();
    let upstream = McpServer::start(&["--json"]);
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", "dev-agent-7", 600);

    // Directly, the server offers every tool; through Airlock only what the
    // role's policy could allow.
    let direct = agent(&upstream.url(), None, json!([{"op": "list_tools"}]));
    assert!(names(step(&direct, 0), "tools", "name").contains(&"merge_pull_request".to_string()));
    let report = agent(
        &airlock.proxy_url("/github/mcp"),
        Some(&handle),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "read_file", "arguments": {"repo": "acme/api", "path": "src/lib.rs"}},
            {"op": "list_resources"},
            {"op": "list_prompts"},
            {"op": "read_resource", "uri": "repo://acme/api/README.md"},
            {"op": "ping"},
        ]),
    );
    assert_eq!(
        names(step(&report, 0), "tools", "name"),
        ["create_pull_request", "list_issues", "read_file", "whoami"],
        "{report}"
    );
    assert_eq!(step(&report, 1)["ok"], true, "{report}");
    assert_eq!(text_of(step(&report, 1)), "contents of acme/api/src/lib.rs");
    assert_eq!(
        names(step(&report, 2), "resources", "uri"),
        ["repo://acme/api/README.md"],
        "{report}"
    );
    assert_eq!(
        names(step(&report, 3), "prompts", "name"),
        ["review_pr"],
        "{report}"
    );
    assert_eq!(step(&report, 4)["ok"], true, "{report}");
    assert_eq!(step(&report, 5)["ok"], true, "{report}");

    // The upstream saw Airlock's own session id, never the agent's, and a
    // token minted for exactly this call.
    let received = upstream.received();
    let read = received
        .iter()
        .find(|r| r["body"]["params"]["name"] == "read_file")
        .expect("read_file reached the server");
    let c = claims(read["authorization"].as_str().expect("authorization"));
    assert_eq!(c["aud"], "github");
    assert_eq!(c["scope"], "contents:read");
    assert_eq!(c["sub"], "dev-agent-7");
    assert_ne!(
        report["session_id"], read["mcp_session_id"],
        "the agent never sees the upstream's session id"
    );
    assert!(
        report["session_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("mcp_")),
        "{report}"
    );
    let listing = received
        .iter()
        .find(|r| r["body"]["method"] == "tools/list")
        .expect("tools/list reached the server");
    assert_eq!(
        claims(listing["authorization"].as_str().expect("auth"))["scope"],
        "mcp:session"
    );

    // One decision record per JSON-RPC message, with tool and argument digest.
    let records = decisions(&airlock);
    let read_record = records
        .iter()
        .find(|r| r["mcp_name"] == "read_file")
        .expect("a record for read_file");
    assert_eq!(read_record["operation"], "tools/call:read_file");
    assert_eq!(read_record["verdict"], "allow");
    assert!(
        read_record["mcp_arguments_sha256"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert!(
        !read_record.to_string().contains("src/lib.rs"),
        "arguments are digested, not logged"
    );
    for method in ["initialize", "notifications/initialized", "tools/list", "ping"] {
        assert_eq!(
            records.iter().filter(|r| r["mcp_method"] == method).count(),
            1,
            "one record for {method}: {records:?}"
        );
    }
}

#[test]
fn denied_calls_come_back_as_jsonrpc_errors_naming_the_rule_and_never_reach_the_server() {
    let world = World::new();
    let upstream = McpServer::start(&["--json"]);
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", "dev-agent-7", 600);
    let report = agent(
        &airlock.proxy_url("/github/mcp"),
        Some(&handle),
        json!([
            // hidden from the listing, called by name anyway
            {"op": "call_tool", "name": "merge_pull_request", "arguments": {"repo": "acme/api", "number": 7}},
            // an argument outside the policy: a path it may not read
            {"op": "call_tool", "name": "read_file", "arguments": {"repo": "acme/api", "path": ".env"}},
            {"op": "call_tool", "name": "create_pull_request",
             "arguments": {"repo": "acme/api", "head": "main", "base": "main", "title": "x"}},
            {"op": "call_tool", "name": "delete_repo", "arguments": {"repo": "acme/api"}},
            {"op": "call_tool", "name": "create_pull_request",
             "arguments": {"repo": "acme/api", "head": "airlock/dev-agent-7/fix-1", "base": "main", "title": "Fix"}},
            {"op": "read_resource", "uri": "repo://acme/secrets/keys.txt"},
        ]),
    );
    for (i, rule) in [
        (0, "merging is for humans"),
        (1, ".env"),
        (2, "airlock/dev-agent-7/"),
        (3, "delete_repo is not allowed"),
        (5, "repo://acme/secrets/keys.txt"),
    ] {
        let s = step(&report, i);
        assert_eq!(s["ok"], false, "step {i}: {report}");
        assert_eq!(s["error"]["code"], -32001, "step {i}: {s}");
        let message = s["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(rule),
            "step {i}: {message:?} names the rule ({rule})"
        );
        assert!(
            message.contains("(decision dec_"),
            "step {i}: {message:?} names the decision"
        );
        assert_eq!(s["error"]["data"]["error"], "denied");
    }
    assert_eq!(
        step(&report, 4)["ok"],
        true,
        "the named branch is allowed: {report}"
    );
    assert_eq!(
        upstream.tools_called(),
        ["create_pull_request"],
        "only the allowed call reached the server"
    );
    let pr = upstream
        .received()
        .into_iter()
        .find(|r| r["body"]["params"]["name"] == "create_pull_request")
        .expect("the PR call");
    let c = claims(pr["authorization"].as_str().expect("auth"));
    assert_eq!(c["scope"], "pulls:write");

    let records = decisions(&airlock);
    let denied: Vec<&Value> = records.iter().filter(|r| r["verdict"] == "deny").collect();
    assert_eq!(denied.len(), 5, "{records:?}");
    for r in &denied {
        assert!(r["token_jti"].is_null());
        let id = r["decision_id"].as_str().expect("id");
        assert!(
            report.to_string().contains(id),
            "the agent was told decision {id}"
        );
    }
}

#[test]
fn an_event_stream_is_relayed_with_the_token_scrubbed_even_when_split_across_chunks() {
    let world = World::new();
    // SSE answers, every body write cut into 7-byte chunks.
    let upstream = McpServer::start(&["--rechunk", "7"]);
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", "dev-agent-7", 600);
    let report = agent(
        &airlock.proxy_url("/github/mcp"),
        Some(&handle),
        json!([{"op": "call_tool", "name": "whoami", "arguments": {}}, {"op": "list_tools"}]),
    );
    assert_eq!(step(&report, 0)["ok"], true, "{report}");
    let text = text_of(step(&report, 0));
    let seen = upstream
        .received()
        .into_iter()
        .find(|r| r["body"]["params"]["name"] == "whoami")
        .and_then(|r| r["authorization"].as_str().map(str::to_string))
        .expect("whoami reached the server with a token");
    let token = seen.strip_prefix("Bearer ").expect("bearer");
    assert!(token.len() > 7 * 3, "the token spans several chunks");
    assert!(
        !report.to_string().contains(token),
        "the token never reaches the agent: {report}"
    );
    assert_eq!(
        text.matches(REDACTED).count(),
        2,
        "both occurrences scrubbed: {text}"
    );
    // Listings over SSE are filtered as well.
    assert_eq!(
        names(step(&report, 1), "tools", "name"),
        ["create_pull_request", "list_issues", "read_file", "whoami"]
    );
}

/// A raw Streamable HTTP client, for what the SDK never sends.
struct Raw<'a> {
    world: &'a World,
    airlock: &'a Airlock,
    handle: String,
    session: Option<String>,
}

impl Raw<'_> {
    fn post(&self, body: &[u8]) -> HttpReply {
        let auth = format!("Bearer {}", self.handle);
        let mut headers = vec![
            ("proxy-authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = &self.session {
            headers.push(("mcp-session-id", s.as_str()));
        }
        self.world
            .request("POST", &self.airlock.proxy_url("/github/mcp"), &headers, body)
    }

    fn initialize(&mut self, revision: &str) {
        let r = self.post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": revision, "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["result"]["protocolVersion"], revision);
        self.session = r.header("mcp-session-id").map(str::to_string);
        assert!(self.session.is_some(), "Airlock gave its own session id");
        let n = self.post(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(n.status, 202, "{}", n.text());
    }
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[test]
fn malformed_oversized_and_batched_messages_each_get_their_answer_and_one_record_per_call() {
    let world = World::new();
    let upstream = McpServer::start(&["--json"]);
    let airlock = start_airlock(&world, &upstream);
    let (_, handle) = airlock.session(&world, "github-mcp", "dev-agent-7", 600);
    let mut raw = Raw {
        world: &world,
        airlock: &airlock,
        handle: handle.clone(),
        session: None,
    };
    raw.initialize("2025-03-26");
    let before = decisions(&airlock).len();

    // Not JSON: a parse error with id null, audited.
    let r = raw.post(br#"{"jsonrpc": "2.0", "id": 1, "method": "#);
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert_eq!(v["id"], Value::Null);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed JSON")
    );

    // Over the role's body limit: refused before parsing, audited.
    let big = call(
        2,
        "read_file",
        json!({"repo": "acme/api", "path": "x".repeat(20_000)}),
    );
    let r = raw.post(big.to_string().as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32600);
    assert_eq!(r.json()["error"]["data"]["error"], "body_too_large");

    // JSON, but no JSON-RPC request.
    let r = raw.post(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["id"], 3);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("params.name")
    );

    // A batch mixing allowed and denied calls (and a notification).
    let batch = json!([
        call(10, "list_issues", json!({"repo": "acme/api"})),
        call(11, "merge_pull_request", json!({"repo": "acme/api", "number": 7})),
        call(12, "read_file", json!({"repo": "acme/api", "path": "../../etc/passwd"})),
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        {"jsonrpc": "2.0", "id": 13, "method": "ping"},
    ]);
    let r = raw.post(batch.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let answers = r.json();
    let answers = answers.as_array().expect("a batch answer");
    assert_eq!(
        answers.len(),
        4,
        "one answer per request, none for the notification: {answers:?}"
    );
    let by_id = |id: u64| answers.iter().find(|a| a["id"] == id).expect("answered");
    assert!(
        by_id(10)["result"]["content"][0]["text"].as_str().is_some(),
        "{answers:?}"
    );
    assert_eq!(by_id(11)["error"]["code"], -32001);
    assert!(
        by_id(11)["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("merging is for humans")
    );
    assert_eq!(by_id(12)["error"]["code"], -32001);
    assert!(by_id(13)["result"].is_object(), "{answers:?}");
    assert_eq!(
        upstream.tools_called(),
        ["list_issues"],
        "nothing denied reached the server"
    );

    let records = decisions(&airlock);
    let new: Vec<&Value> = records[before..].iter().collect();
    // parse error, oversized, invalid, then the batch's five messages.
    assert_eq!(new.len(), 8, "{new:?}");
    let batch_records: Vec<&Value> = new[3..].to_vec();
    let ops: Vec<&str> = batch_records
        .iter()
        .map(|r| r["operation"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ops,
        [
            "tools/call:list_issues",
            "tools/call:merge_pull_request",
            "tools/call:read_file",
            "notifications/cancelled",
            "ping"
        ]
    );
    let verdicts: Vec<&str> = batch_records
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(verdicts, ["allow", "deny", "deny", "allow", "allow"]);

    // Batches exist only in revision 2025-03-26.
    let mut modern = Raw {
        world: &world,
        airlock: &airlock,
        handle: handle.clone(),
        session: None,
    };
    modern.initialize("2025-06-18");
    let r = modern.post(
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2025-03-26")
    );

    // Another session cannot use this MCP session's id.
    let (_, other) = airlock.session(&world, "github-mcp", "dev-agent-8", 600);
    let stolen = Raw {
        world: &world,
        airlock: &airlock,
        handle: other,
        session: raw.session.clone(),
    };
    let r = stolen.post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], "mcp_session_unknown");

    // No server-initiated stream.
    let auth = format!("Bearer {handle}");
    let r = world.request(
        "GET",
        &airlock.proxy_url("/github/mcp"),
        &[("proxy-authorization", &auth), ("accept", "text/event-stream")],
        b"",
    );
    assert_eq!(r.status, 405);
}

//! Airlock's state backends and its MCP gateway under load, in-process.
//!
//! Run: `cargo bench -p airlock --bench proxy`
//!
//! The proxy beside nginx and a bare forwarder, each its own process, is
//! `scripts/perf` (host/perf). This bench keeps what that one does not:
//! Airlock started in-process from a config, with the real `crash-tracker`
//! policy evaluated and a token minted, recorded, injected and audited on
//! every request, once per state backend (`memory`, `sqlite`, the embedded
//! durable default, and `redis`, a real `redis-server` on loopback started
//! here; skipped if not installed), against the tiny upstream called
//! directly; and an MCP `tools/call` (JSON-RPC over Streamable HTTP) to a
//! tiny MCP server, directly and through Airlock's MCP service with the real
//! `github-mcp` policy deciding the tool and its arguments.
//!
//! 64 concurrent keep-alive HTTP/1 connections (one task per connection,
//! requests sent back to back) for a warm-up that is not counted and then a
//! measured window, then a shorter pass with a single connection. Latency
//! is taken per request at the client (send to last body byte). All servers
//! and the client share one multi-threaded tokio runtime.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, PROXY_AUTHORIZATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use airlock::config::Config;
use airlock::server::{Airlock, bind};
use airlock::state::NewSession;

/// Concurrent keep-alive connections of the main pass.
const CONNECTIONS: usize = 64;
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);
/// The single-connection pass: latency without queueing.
const QUIET_WARM_UP: Duration = Duration::from_secs(1);
const QUIET_MEASURE: Duration = Duration::from_secs(3);
/// Upper bound on the requests of one scenario (warm-up included), whatever
/// the time; each connection gets an equal share.
const MAX_REQUESTS: u64 = 4_000_000;
/// A request slower than this counts as an error and ends its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time given to all connections to connect before the clock starts.
const CONNECT_GRACE: Duration = Duration::from_millis(300);

/// The upstream's answer: a small JSON crash report (200 bytes).
const UPSTREAM_BODY: &str = concat!(
    r#"{"id":"42","service":"crash-reporting","signal":"SIGSEGV","frame":"render_frame","#,
    r#""count":1873,"first_seen":"2025-05-01T09:12:44Z","last_seen":"2025-06-11T17:03:09Z","#,
    r#""status":"open","assignee":null,"tags":["ui","gpu"]}"#
);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

// ---------------------------------------------------------------- servers

/// Serve HTTP/1 keep-alive connections with `handler` until the runtime stops.
async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let answer = handler(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The tiny upstream: 200 and the JSON body for anything. It ignores the
/// request (including any `Authorization`), but counts the bearer tokens it
/// was given so the airlock scenario can show that tokens were injected.
async fn start_upstream(tokens_seen: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(serve(listener, move |req: Request<Incoming>| {
        let bearer = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer ey"));
        if bearer {
            tokens_seen.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            let mut response = Response::new(Full::new(Bytes::from_static(UPSTREAM_BODY.as_bytes())));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
    }));
    addr
}

/// The MCP `tools/call` every MCP scenario sends (allowed by github-mcp).
const MCP_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_file_contents","arguments":{"owner":"acme","repo":"shop","path":"src/lib.rs"}}}"#;
/// The MCP server's answer to it, in the form serde_json writes (sorted
/// keys), so the direct and the Airlock answers are byte for byte equal.
const MCP_ANSWER: &str = r#"{"id":1,"jsonrpc":"2.0","result":{"content":[{"text":"contents of acme/shop/src/lib.rs","type":"text"}],"isError":false}}"#;

/// A tiny MCP server (Streamable HTTP, JSON answers): `initialize` gets a
/// result and a session id, anything else [`MCP_ANSWER`] with its id.
async fn start_mcp_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind MCP upstream");
    let addr = listener.local_addr().expect("MCP upstream address");
    tokio::spawn(serve(listener, |req: Request<Incoming>| async move {
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            return status_only(StatusCode::BAD_REQUEST);
        };
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut response = if message["method"] == "initialize" {
            let answer = serde_json::json!({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench", "version": "1"}}});
            let mut r = Response::new(Full::new(Bytes::from(answer.to_string())));
            r.headers_mut()
                .insert("mcp-session-id", HeaderValue::from_static("upstream-session-1"));
            r
        } else if message.get("id").is_none() {
            return status_only(StatusCode::ACCEPTED);
        } else {
            Response::new(Full::new(Bytes::from_static(MCP_ANSWER.as_bytes())))
        };
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        response
    }));
    addr
}

/// Open an MCP session through Airlock as the agent holding `handle`.
async fn mcp_initialize(proxy: SocketAddr, handle: &str) -> HeaderValue {
    let mut sender = connect(proxy).await.expect("connect to airlock");
    let initialize = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let request = Request::post("/github-mcp/mcp")
        .header(HOST, proxy.to_string())
        .header(PROXY_AUTHORIZATION, format!("Bearer {handle}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from_static(initialize.as_bytes())))
        .expect("initialize request");
    let response = sender.send_request(request).await.expect("initialize");
    let session = response.headers().get("mcp-session-id").cloned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("initialize body")
        .to_bytes();
    session.unwrap_or_else(|| panic!("no MCP session from airlock: {}", String::from_utf8_lossy(&body)))
}

/// What the airlock scenario keeps alive: its temp dir (config, data,
/// policies, audit log) and the running instance.
struct AirlockUnderTest {
    dir: tempfile::TempDir,
    airlock: Arc<Airlock>,
    proxy: SocketAddr,
    handle: String,
}

fn toml_string(s: &Path) -> String {
    toml::Value::String(s.display().to_string()).to_string()
}

/// Airlock from a real config: one service in front of the tiny upstream,
/// the crash-tracker role unlimited in rate, the policy built from source.
async fn start_airlock(upstream: SocketAddr, component: &Path, state: &str) -> AirlockUnderTest {
    let services = format!(
        r#"
[services.crash-reporting]
upstream = "http://{upstream}"
routes = [
  {{ op = "crashes.read", method = "GET", path = "/crashes/{{id}}" }},
]

[roles.crash-tracker]
policy = "crash-tracker.wasm"
services = ["crash-reporting"]
limits = {{ requests_per_minute = 0 }}
"#
    );
    start_airlock_with(component, "crash-tracker", &services, state).await
}

/// Airlock in front of the tiny MCP server, the github-mcp role deciding.
async fn start_airlock_mcp(upstream: SocketAddr, component: &Path) -> AirlockUnderTest {
    let services = format!(
        r#"
[services.github-mcp]
kind = "mcp"
upstream = "http://{upstream}/mcp"

[roles.github-mcp]
policy = "github-mcp.wasm"
services = ["github-mcp"]
limits = {{ requests_per_minute = 0 }}
"#
    );
    start_airlock_with(component, "github-mcp", &services, "backend = \"memory\"").await
}

/// Airlock serving `role` (policy `<role>.wasm` = `component`) with the
/// `[services]` and `[roles]` tables of `services`.
async fn start_airlock_with(component: &Path, role: &str, services: &str, state: &str) -> AirlockUnderTest {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("policies dir");
    std::fs::copy(component, policies.join(format!("{role}.wasm"))).expect("copy the component");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "bench-admin-token-0123456789abcdef").expect("admin token");
    let text = format!(
        r#"
[admin]
token_file = {token_file}

[data]
dir = {data}

[policies]
dir = {policies}
watch = false

{services}

[state]
{state}
"#,
        token_file = toml_string(&token_file),
        data = toml_string(&dir.path().join("data")),
        policies = toml_string(&policies),
    );
    let config_path = dir.path().join("airlock.toml");
    std::fs::write(&config_path, &text).expect("write config");
    let mut config = Config::load(&config_path).unwrap_or_else(|e| panic!("config: {e}"));
    // Both planes on ephemeral loopback ports. (The config check refuses
    // equal addresses, which is right for fixed ports; with port 0 each
    // listener gets its own, so the addresses are set after parsing.)
    config.listen.proxy = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listen.admin = SocketAddr::from(([127, 0, 0, 1], 0));
    let airlock = Airlock::start(config)
        .await
        .unwrap_or_else(|e| panic!("starting airlock: {e:#}"));
    let (bound, serving) = bind(airlock.clone())
        .await
        .unwrap_or_else(|e| panic!("binding airlock: {e:#}"));
    tokio::spawn(serving);
    let (_, handle) = airlock
        .store
        .create_session(
            NewSession {
                agent: "bench-agent".into(),
                role: role.into(),
                workflow: "wf-bench".into(),
                on_behalf_of: None,
                intent: Some("load benchmark".into()),
                ttl: Duration::from_secs(3600),
            },
            airlock::proxy::now_ms(),
        )
        .await
        .unwrap_or_else(|e| panic!("creating the session: {e}"));
    AirlockUnderTest {
        dir,
        airlock,
        proxy: bound.proxy,
        handle,
    }
}

// ---------------------------------------------------------------- client

/// What one scenario sends, to where.
#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    /// `Proxy-Authorization` (sent to every scenario; the others drop it).
    auth: HeaderValue,
    /// A JSON body to POST (MCP); `None` sends a GET.
    body: Option<Bytes>,
    /// `Mcp-Session-Id` to send.
    mcp_session: Option<HeaderValue>,
    /// The body every answer must carry.
    expect: Bytes,
}

impl Target {
    fn get(name: &'static str, addr: SocketAddr, path: &'static str, auth: &HeaderValue) -> Target {
        Target {
            name,
            addr,
            path,
            auth: auth.clone(),
            body: None,
            mcp_session: None,
            expect: Bytes::from_static(UPSTREAM_BODY.as_bytes()),
        }
    }
}

/// When to start counting and when to stop sending.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    measure_from: Instant,
    stop: Instant,
    cap_per_connection: u64,
}

#[derive(Default)]
struct ConnectionResult {
    /// Per measured request, send to last body byte, in nanoseconds.
    latencies: Vec<u64>,
    /// Measured requests that did not get 200 with the upstream's body
    /// (a broken connection counts once).
    errors: u64,
    /// A few of them, to print.
    examples: Vec<String>,
    last_done: Option<Instant>,
    hit_cap: bool,
    broken: Option<String>,
}

async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    target: &Target,
) -> Result<(StatusCode, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let mut builder = Request::builder()
        .uri(target.path)
        .header(HOST, target.addr.to_string())
        .header(PROXY_AUTHORIZATION, target.auth.clone());
    if let Some(session) = &target.mcp_session {
        builder = builder.header("mcp-session-id", session.clone());
    }
    let request = match &target.body {
        Some(body) => builder
            .method("POST")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(body.clone())),
        None => builder.method("GET").body(Full::new(Bytes::new())),
    }
    .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One keep-alive connection sending requests back to back until the clock
/// stops or the request cap is reached.
async fn drive(target: Target, clock: Clock) -> ConnectionResult {
    let mut result = ConnectionResult {
        latencies: Vec::with_capacity(16 * 1024),
        ..ConnectionResult::default()
    };
    let mut sender = match connect(target.addr).await {
        Ok(s) => s,
        Err(e) => {
            result.broken = Some(format!("connect: {e}"));
            return result;
        }
    };
    tokio::time::sleep_until(clock.start.into()).await;
    let mut sent = 0u64;
    loop {
        let started = Instant::now();
        if started >= clock.stop {
            break;
        }
        if sent >= clock.cap_per_connection {
            result.hit_cap = true;
            break;
        }
        sent += 1;
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, &target)).await;
        let done = Instant::now();
        let measured = started >= clock.measure_from;
        let problem = match outcome {
            Ok(Ok((StatusCode::OK, body))) if body == target.expect => None,
            Ok(Ok((status, body))) => Some(format!("{status}: {}", String::from_utf8_lossy(&body))),
            Ok(Err(e)) => {
                result.errors += u64::from(measured);
                result.broken = Some(e);
                break;
            }
            Err(_) => {
                result.errors += u64::from(measured);
                result.broken = Some(format!("no answer within {REQUEST_TIMEOUT:?}"));
                break;
            }
        };
        if measured {
            result.latencies.push((done - started).as_nanos() as u64);
            result.last_done = Some(done);
            if let Some(p) = problem {
                result.errors += 1;
                if result.examples.len() < 3 {
                    result.examples.push(p);
                }
            }
        }
    }
    result
}

/// One scenario's numbers.
struct Measured {
    name: &'static str,
    connections: usize,
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_nanos(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

/// One request, checked: the scenario must serve the upstream's answer.
async fn check_once(target: &Target) {
    let mut sender = connect(target.addr)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", target.name));
    let (status, body) = exchange(&mut sender, target)
        .await
        .unwrap_or_else(|e| panic!("{}: first request failed: {e}", target.name));
    assert_eq!(
        status,
        StatusCode::OK,
        "{}: the first response must be 200, got: {}",
        target.name,
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        body,
        target.expect,
        "{}: the first response must carry the upstream's body, got: {}",
        target.name,
        String::from_utf8_lossy(&body)
    );
}

async fn run(target: &Target, connections: usize, warm_up: Duration, measure: Duration) -> Measured {
    check_once(target).await;
    let start = Instant::now() + CONNECT_GRACE;
    let clock = Clock {
        start,
        measure_from: start + warm_up,
        stop: start + warm_up + measure,
        cap_per_connection: MAX_REQUESTS / connections as u64,
    };
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive(target.clone(), clock)))
        .collect();
    let mut latencies = Vec::new();
    let (mut errors, mut examples, mut last_done) = (0u64, Vec::new(), clock.measure_from);
    let (mut capped, mut broken) = (0usize, Vec::new());
    for task in tasks {
        let r = task.await.expect("connection task");
        latencies.extend_from_slice(&r.latencies);
        errors += r.errors;
        examples.extend(r.examples);
        last_done = last_done.max(r.last_done.unwrap_or(last_done));
        capped += usize::from(r.hit_cap);
        broken.extend(r.broken);
    }
    latencies.sort_unstable();
    // Requests in flight at the stop finish a little later: the window ends
    // with the last measured response (or earlier, if every connection hit
    // its request cap).
    let window = (last_done - clock.measure_from).as_secs_f64().max(1e-9);
    let m = Measured {
        name: target.name,
        connections,
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / window,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: percentile(&latencies, 1.0),
        errors,
    };
    println!(
        "  {:<15} {:>2} conn  {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  non-200 {}",
        m.name,
        m.connections,
        m.per_second,
        micros(m.p50),
        micros(m.p99),
        m.errors
    );
    for e in examples.iter().take(3) {
        println!("      non-200 example: {e}");
    }
    if capped > 0 {
        println!(
            "      note: {capped} connection(s) stopped at their share of the {MAX_REQUESTS}-request cap"
        );
    }
    if !broken.is_empty() {
        println!("      {} connection(s) broke, first: {}", broken.len(), broken[0]);
    }
    m
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ---------------------------------------------------------------- report

fn table(rows: &[Measured]) {
    println!(
        "\n{:<16} {:>5} {:>10} {:>11} {:>10} {:>10} {:>10} {:>8}",
        "scenario", "conns", "requests", "req/s", "p50 µs", "p99 µs", "max µs", "non-200"
    );
    for m in rows {
        println!(
            "{:<16} {:>5} {:>10} {:>11.0} {:>10.1} {:>10.1} {:>10.1} {:>8}",
            m.name,
            m.connections,
            m.requests,
            m.per_second,
            micros(m.p50),
            micros(m.p99),
            micros(m.max),
            m.errors
        );
    }
}

fn compare(direct: &Measured, airlock: &Measured) {
    let share = airlock.per_second / direct.per_second.max(1e-9) * 100.0;
    let added_p50 = micros(airlock.p50) - micros(direct.p50);
    let added_p99 = micros(airlock.p99) - micros(direct.p99);
    let conns = airlock.connections;
    println!("  airlock / direct throughput ({conns} conn): {share:>6.1} %");
    println!("  added p50, airlock − direct ({conns} conn): {added_p50:>8.1} µs");
    println!("  added p99, airlock − direct ({conns} conn): {added_p99:>8.1} µs");
}

/// The 1-minute load average: other processes on the machine skew the numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A throwaway `redis-server` on a free loopback port, stopped on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Option<RedisServer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            // As deployed: nothing answered is lost when Redis restarts.
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(RedisServer {
                child,
                port,
                _dir: dir,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn main() {
    // Built before the clock starts (cached in target/wasm-policies).
    let target_dir = root().join("target/wasm-policies");
    let component = airlock::build::build_policy(&root().join("policies/crash-tracker"), Some(&target_dir))
        .unwrap_or_else(|e| panic!("building crash-tracker: {e}"));
    let github_mcp = airlock::build::build_policy(&root().join("policies/github-mcp"), Some(&target_dir))
        .unwrap_or_else(|e| panic!("building github-mcp: {e}"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let workers = runtime.metrics().num_workers();
    runtime.block_on(async {
        let tokens_seen = Arc::new(AtomicU64::new(0));
        let upstream = start_upstream(tokens_seen.clone()).await;
        let under_test = start_airlock(upstream, &component, "backend = \"memory\"").await;
        let sqlite = start_airlock(upstream, &component, "backend = \"sqlite\"").await;
        let redis_server = start_redis();
        let redis = match &redis_server {
            Some(r) => {
                let state = format!("backend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"", r.port);
                Some(start_airlock(upstream, &component, &state).await)
            }
            None => {
                println!("redis-server is not installed: the redis scenario is skipped");
                None
            }
        };
        let auth = HeaderValue::from_str(&format!("Bearer {}", under_test.handle)).expect("handle header");
        let bearer =
            |handle: &str| HeaderValue::from_str(&format!("Bearer {handle}")).expect("handle header");
        let mut targets = vec![
            Target::get("direct", upstream, "/crashes/42", &auth),
            Target::get("airlock", under_test.proxy, "/crash-reporting/crashes/42", &auth),
            Target::get(
                "airlock sqlite",
                sqlite.proxy,
                "/crash-reporting/crashes/42",
                &bearer(&sqlite.handle),
            ),
        ];
        if let Some(redis) = &redis {
            targets.push(Target::get(
                "airlock redis",
                redis.proxy,
                "/crash-reporting/crashes/42",
                &bearer(&redis.handle),
            ));
        }
        let mcp_upstream = start_mcp_upstream().await;
        let mcp = start_airlock_mcp(mcp_upstream, &github_mcp).await;
        let mcp_session = mcp_initialize(mcp.proxy, &mcp.handle).await;
        let mcp_targets = [
            Target {
                name: "mcp direct",
                addr: mcp_upstream,
                path: "/mcp",
                auth: auth.clone(),
                body: Some(Bytes::from_static(MCP_CALL.as_bytes())),
                mcp_session: Some(HeaderValue::from_static("upstream-session-1")),
                expect: Bytes::from_static(MCP_ANSWER.as_bytes()),
            },
            Target {
                name: "airlock mcp",
                addr: mcp.proxy,
                path: "/github-mcp/mcp",
                auth: bearer(&mcp.handle),
                body: Some(Bytes::from_static(MCP_CALL.as_bytes())),
                mcp_session: Some(mcp_session),
                expect: Bytes::from_static(MCP_ANSWER.as_bytes()),
            },
        ];

        println!(
            "proxy load: one tokio runtime with {workers} workers for client and servers; \
             {CONNECTIONS} keep-alive connections, {WARM_UP:?} warm-up + {MEASURE:?} measured per scenario \
             (load average before: {})",
            load_average()
        );
        let mut loaded = Vec::new();
        for target in &targets {
            let tokens_before = tokens_seen.load(Ordering::Relaxed);
            loaded.push(run(target, CONNECTIONS, WARM_UP, MEASURE).await);
            if target.name.starts_with("airlock") {
                println!(
                    "      upstream saw {} injected bearer tokens (warm-up included)",
                    tokens_seen.load(Ordering::Relaxed) - tokens_before
                );
            }
        }
        let mut mcp_loaded = Vec::new();
        for target in &mcp_targets {
            mcp_loaded.push(run(target, CONNECTIONS, WARM_UP, MEASURE).await);
        }
        println!("single connection: {QUIET_WARM_UP:?} warm-up + {QUIET_MEASURE:?} measured per scenario");
        let mut quiet = Vec::new();
        for target in &targets {
            quiet.push(run(target, 1, QUIET_WARM_UP, QUIET_MEASURE).await);
        }
        for target in &mcp_targets {
            mcp_loaded.push(run(target, 1, QUIET_WARM_UP, QUIET_MEASURE).await);
        }

        let audit = under_test.airlock.config.audit_log_path();
        let audit_bytes = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
        let n = targets.len();
        loaded.extend(quiet);
        table(&loaded);
        table(&mcp_loaded);
        println!();
        compare(&loaded[0], &loaded[1]);
        compare(&loaded[n], &loaded[n + 1]);
        println!("  state backends, against airlock on the memory store (same run):");
        for (memory, backend) in [(1, 2), (n + 1, n + 2)]
            .into_iter()
            .chain((n > 3).then_some([(1, 3), (n + 1, n + 3)]).into_iter().flatten())
        {
            let (m, b) = (&loaded[memory], &loaded[backend]);
            println!(
                "    {:<15} {:>3} conn: throughput {:>6.1} % of memory, p99 {:>8.1} µs (memory {:>8.1} µs)",
                b.name,
                b.connections,
                b.per_second / m.per_second.max(1e-9) * 100.0,
                micros(b.p99),
                micros(m.p99)
            );
        }
        println!("  MCP tools/call, airlock against calling the MCP server directly (same run):");
        for pair in mcp_loaded.chunks(2) {
            let (direct, through) = (&pair[0], &pair[1]);
            println!(
                "    {:>3} conn: throughput {:>6.1} % of direct, added p50 {:>8.1} µs, added p99 {:>8.1} µs",
                through.connections,
                through.per_second / direct.per_second.max(1e-9) * 100.0,
                micros(through.p50) - micros(direct.p50),
                micros(through.p99) - micros(direct.p99)
            );
        }
        loaded.extend(mcp_loaded);
        println!(
            "  audit log: {:.1} MiB written ({})",
            audit_bytes as f64 / (1 << 20) as f64,
            audit.display()
        );
        let failures: u64 = loaded.iter().map(|m| m.errors).sum();
        if failures > 0 {
            println!("  WARNING: {failures} non-200 responses (see above): the numbers are not valid");
        }
        drop(under_test.dir);
        drop(sqlite.dir);
        drop(mcp.dir);
        drop(redis);
        drop(redis_server);
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

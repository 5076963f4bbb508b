//! End-to-end harness: real upstream HTTP servers in the test process, the
//! real `airlock serve` binary as a child process, and a small HTTP client.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub enum Behaviour {
    /// Verifies the bearer JWT against Airlock's JWKS for this audience:
    /// 200 with the claims, or 401 with the reason.
    Verify { audience: String },
    /// Echoes every header it received in its body, tries to leak the
    /// Authorization header in a header of its own, and sets a cookie.
    LeakyEcho,
    /// Answers 200 after this many milliseconds.
    Slow(u64),
}

/// A real HTTP server on loopback that records everything it receives.
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }
    pub fn last(&self) -> Received {
        self.received
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the upstream received a request")
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The test's runtime, upstreams and client.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    /// Admin address, for the verifying upstreams' JWKS fetches.
    jwks_url: Arc<Mutex<Option<String>>>,
}

pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Everything the agent could read: status line aside, headers and body.
    pub fn visible(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("{}\n{}", headers.join("\n"), self.text())
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        World {
            rt,
            jwks_url: Arc::new(Mutex::new(None)),
        }
    }

    pub fn upstream(&self, behaviour: Behaviour) -> Upstream {
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (rec, jwks_url) = (received.clone(), self.jwks_url.clone());
        self.rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (rec, behaviour, jwks_url) = (rec.clone(), behaviour.clone(), jwks_url.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (rec, behaviour, jwks_url) = (rec.clone(), behaviour.clone(), jwks_url.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let received = Received {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                    .collect(),
                                body,
                            };
                            rec.lock().expect("lock").push(received.clone());
                            Ok::<_, std::convert::Infallible>(respond(&behaviour, &received, &jwks_url).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, received }
    }

    pub fn request(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
        self.rt.block_on(send(method, url, headers, body))
    }
}

pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("no answer within 30 s")
        .expect("request failed");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    HttpReply {
        status,
        headers,
        body,
    }
}

async fn respond(
    behaviour: &Behaviour,
    received: &Received,
    jwks_url: &Mutex<Option<String>>,
) -> hyper::Response<Full<Bytes>> {
    let (status, headers, body): (u16, Vec<(&str, String)>, Value) = match behaviour {
        Behaviour::Verify { audience } => {
            let url = jwks_url.lock().ok().and_then(|u| u.clone()).unwrap_or_default();
            let jwks = send("GET", &url, &[], b"").await.json();
            let token = received
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let now = airlock::proxy::now_ms() / 1000;
            match airlock::token::verify(token, &jwks, "airlock", audience, now, 0) {
                Ok(claims) => (200, vec![], json!({ "ok": true, "claims": claims })),
                Err(e) => (401, vec![], json!({ "ok": false, "error": e.to_string() })),
            }
        }
        Behaviour::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            (200, vec![], json!({ "slow": true }))
        }
        Behaviour::LeakyEcho => {
            let auth = received.header("authorization").unwrap_or("").to_string();
            let echoed: Vec<Value> = received.headers.iter().map(|(k, v)| json!([k, v])).collect();
            (
                200,
                vec![
                    ("set-cookie", "upstream_session=abc123; HttpOnly".to_string()),
                    ("x-leak", auth.clone()),
                    ("authorization", auth.clone()),
                ],
                json!({ "you_sent": echoed, "leak": auth, "path": received.uri }),
            )
        }
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    for (k, v) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

/// A running `airlock serve`.
pub struct Airlock {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub admin_token: String,
    pub introspection_token: String,
    stderr: Arc<Mutex<String>>,
    config_path: PathBuf,
    file_size_limit: Option<u64>,
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const INTROSPECTION_TOKEN: &str = "test-introspection-token-0123456789";

/// Options for starting Airlock.
/// Config body: the `crash-reporting` service at `upstream` (one route,
/// `GET /crashes/{id}`) and role `reader` deciding with `reader.wasm`.
pub fn reader_body(upstream: &str) -> String {
    format!(
        r#"
[services.crash-reporting]
upstream = "{upstream}"
routes = [{{ op = "crashes.read", method = "GET", path = "/crashes/{{id}}" }}]

[roles.reader]
policy = "reader.wasm"
services = ["crash-reporting"]
"#
    )
}

#[derive(Default)]
pub struct Start<'a> {
    /// `[services.*]` and `[roles.*]` tables (TOML), after the common header.
    pub body: &'a str,
    /// Policy components to place in the policy directory: (file name, bytes).
    pub policies: Vec<(&'a str, Vec<u8>)>,
    /// Files to write into the data directory before start: (name, contents).
    pub files: Vec<(&'a str, &'a str)>,
    /// Cap on the size of any file the process writes (RLIMIT_FSIZE).
    pub file_size_limit: Option<u64>,
    /// More keys of the `[policies]` table (TOML lines).
    pub policies_config: &'a str,
}

impl World {
    pub fn airlock(&self, start: Start<'_>) -> Airlock {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
        for (name, bytes) in &start.policies {
            std::fs::write(dir.path().join("policies").join(name), bytes).expect("write policy");
        }
        std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).expect("token");
        std::fs::write(dir.path().join("introspection.token"), INTROSPECTION_TOKEN).expect("token");
        for (name, contents) in &start.files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let config = format!(
            r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"

[admin]
token_file = "admin.token"
introspection_token_file = "introspection.token"

[data]
dir = "data"

[policies]
dir = "policies"
watch = false
{}

{}
"#,
            start.policies_config, start.body
        );
        let config_path = dir.path().join("airlock.toml");
        std::fs::write(&config_path, config).expect("config");
        let (child, stderr, proxy, admin) = spawn(&config_path, start.file_size_limit);
        let airlock = Airlock {
            child,
            proxy,
            admin,
            dir,
            admin_token: ADMIN_TOKEN.into(),
            introspection_token: INTROSPECTION_TOKEN.into(),
            stderr,
            config_path,
            file_size_limit: start.file_size_limit,
        };
        *self.jwks_url.lock().expect("lock") =
            Some(format!("http://{}/.well-known/jwks.json", airlock.admin));
        airlock
    }
}

/// Start `airlock serve --config`; returns the process, its captured stderr
/// and the addresses it printed.
fn spawn(
    config_path: &Path,
    file_size_limit: Option<u64>,
) -> (Child, Arc<Mutex<String>>, SocketAddr, SocketAddr) {
    let mut command = Command::new(super::airlock_bin());
    command
        .args(["serve", "--config", config_path.to_str().expect("utf-8")])
        .env("AIRLOCK_LOG", "info")
        .env_remove("AIRLOCK_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(limit) = file_size_limit {
        limit_file_size(&mut command, limit);
    }
    let mut child = command.spawn().expect("starting airlock");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
        panic!(
            "airlock did not start: {}",
            stderr.lock().map(|s| s.clone()).unwrap_or_default()
        )
    });
    let v: Value = serde_json::from_str(&line).expect("listening line");
    let addr = |k: &str| {
        v["listening"][k]
            .as_str()
            .expect("address")
            .parse()
            .expect("socket address")
    };
    (child, stderr, addr("proxy"), addr("admin"))
}

#[allow(unsafe_code)]
fn limit_file_size(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (setrlimit and signal), with no allocation.
    unsafe {
        command.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Writes past the limit then fail with EFBIG instead of killing.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

impl Airlock {
    /// `kill -9` the process and start it again on the same data directory
    /// and the same addresses (so clients and upstreams keep their URLs).
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no shutdown code runs
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.config_path).expect("config");
        let text = text
            .replacen(
                "proxy = \"127.0.0.1:0\"",
                &format!("proxy = \"{}\"", self.proxy),
                1,
            )
            .replacen(
                "admin = \"127.0.0.1:0\"",
                &format!("admin = \"{}\"", self.admin),
                1,
            );
        std::fs::write(&self.config_path, text).expect("config");
        let (child, stderr, proxy, admin) = spawn(&self.config_path, self.file_size_limit);
        assert_eq!(
            (proxy, admin),
            (self.proxy, self.admin),
            "restarted on the same addresses"
        );
        self.child = child;
        self.stderr = stderr;
    }

    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("data/audit.jsonl")
    }
    pub fn logs(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Create a session through the admin API; returns (session id, handle).
    pub fn session(&self, world: &World, role: &str, agent: &str, ttl_s: u64) -> (String, String) {
        let body = json!({ "agent": agent, "role": role, "workflow": "wf-e2e", "ttl_s": ttl_s }).to_string();
        let auth = format!("Bearer {}", self.admin_token);
        let r = world.request(
            "POST",
            &self.admin_url("/v1/sessions"),
            &[("authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "session create: {}", r.text());
        let v = r.json();
        (
            v["session"]["id"].as_str().expect("id").into(),
            v["handle"].as_str().expect("handle").into(),
        )
    }

    /// Call the data plane as the agent holding `handle`.
    pub fn call(
        &self,
        world: &World,
        handle: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpReply {
        let auth = format!("Bearer {handle}");
        let mut all = vec![("proxy-authorization", auth.as_str())];
        all.extend_from_slice(headers);
        world.request(method, &self.proxy_url(path), &all, b"")
    }

    pub fn admin(&self, world: &World, method: &str, path: &str, body: &str) -> HttpReply {
        let auth = format!("Bearer {}", self.admin_token);
        world.request(
            method,
            &self.admin_url(path),
            &[("authorization", &auth)],
            body.as_bytes(),
        )
    }

    pub fn introspect(&self, world: &World, token: &str) -> Value {
        let auth = format!("Bearer {}", self.introspection_token);
        let body = format!("token={token}");
        let r = world.request(
            "POST",
            &self.admin_url("/v1/introspect"),
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "introspect: {}", r.text());
        r.json()
    }

    /// Every audit line, parsed.
    pub fn audit_records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit_log())
            .expect("audit log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line"))
            .collect()
    }
}

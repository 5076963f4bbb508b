//! Hostile guest `escape-attempts`, built for `wasm32-wasip2` so that it
//! imports WASI. `evaluate` tries to reach outside the sandbox:
//! the filesystem (list `/`, read `/etc/passwd`, create `pwned.txt`), the
//! environment and arguments, the network (TCP connect to 127.0.0.1 on the
//! port in query parameter `port`, default 80; bind a UDP socket) and stdout
//! (1 MiB of text). It never panics: every attempt is recorded and the verdict
//! is always `deny` with a report such as
//!
//! `fs_read_dir=err fs_read=err fs_create=err env_vars=0 home=none args=0 tcp=err udp=err stdout=ok`
//!
//! (`=ok`/`=err` per attempt, counts for `env_vars` and `args`, `home=none`
//! or `home=some`). The host must answer: deny with every attempt failed, or
//! a load/instantiation error if it refuses WASI imports outright. `stdout=ok`
//! only means the write was accepted; the host must discard it, never echo it.

use airlock_sdk::prelude::*;
use std::io::Write;

fn ok<T, E>(r: Result<T, E>) -> &'static str {
    if r.is_ok() { "ok" } else { "err" }
}

struct EscapeAttempts;

impl Policy for EscapeAttempts {
    fn describe() -> Description {
        Description::new("escape-attempts", "0.1.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        let port: u16 = request
            .action
            .query("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(80);

        let fs_read_dir = ok(std::fs::read_dir("/"));
        let fs_read = ok(std::fs::read("/etc/passwd"));
        let fs_create = ok(std::fs::File::create("pwned.txt"));
        let env_vars = std::env::vars_os().count();
        let home = if std::env::var_os("HOME").is_some() {
            "some"
        } else {
            "none"
        };
        let args = std::env::args_os().count();
        let tcp = ok(std::net::TcpStream::connect(("127.0.0.1", port)));
        let udp = ok(std::net::UdpSocket::bind("127.0.0.1:0"));
        // `println!` would panic if stdout were closed; write_all reports instead.
        let line = [b'A'; 1023];
        let mut out = std::io::stdout().lock();
        let stdout = ok((0..1024)
            .try_for_each(|_| {
                out.write_all(&line)?;
                out.write_all(b"\n")
            })
            .and_then(|()| out.flush()));

        Verdict::deny(format!(
            "fs_read_dir={fs_read_dir} fs_read={fs_read} fs_create={fs_create} \
             env_vars={env_vars} home={home} args={args} tcp={tcp} udp={udp} stdout={stdout}"
        ))
    }
}

export_policy!(EscapeAttempts);

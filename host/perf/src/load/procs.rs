//! The processes under test: started as children, stopped on drop, and
//! read from /proc for their CPU time and memory.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A child process that is killed (and reaped) when dropped.
pub struct Running {
    name: String,
    child: Child,
}

impl Running {
    pub fn spawn(name: &str, command: &mut Command, log: &std::path::Path) -> anyhow::Result<Running> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Running {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until `addr` accepts connections (the process is listening).
    pub fn wait_listening(&mut self, addr: SocketAddr, log: &std::path::Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "{} exited ({status}) before listening on {addr}:\n{log}",
                    self.name
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not listen on {addr} within 60 s", self.name)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of `pid` and every process below it (nginx's
/// workers are children of its master), from /proc.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    // /proc reports these in USER_HZ, which is 100 on every architecture
    // Linux supports today.
    const USER_HZ: f64 = 100.0;
    let mut ticks = 0u64;
    for p in tree(pid)? {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat"))?;
        let fields = after_comm(&stat);
        // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after comm.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    Ok(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// Resident set size of `pid` (kB → bytes): `(VmRSS, VmHWM)`.
pub fn rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// The fields of a stat line after `(comm)`, which may itself hold spaces.
fn after_comm(stat: &str) -> Vec<&str> {
    match stat.rfind(')') {
        Some(i) => stat[i + 1..].split_whitespace().collect(),
        None => Vec::new(),
    }
}

/// `pid` and its descendants.
fn tree(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        if let Some(ppid) = after_comm(&stat).get(1).and_then(|f| f.parse().ok()) {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    Ok(out)
}

//! The append-only log file and its one writer.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::chain::{self, GENESIS};
use super::record::AuditEvent;

/// Why the audit log could not be opened, read or extended.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: cannot open: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("audit log {path}: already in use by another process (its lock is held)")]
    Locked { path: PathBuf },
    #[error("audit log {path}: cannot lock: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("audit log {path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "audit log {path}: line {line}: {reason}; refusing to extend a broken chain \
         (check it with `verify`, then move the file aside)"
    )]
    BrokenTail {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("audit log {path}: cannot encode record {seq}: {reason}")]
    Encode { path: PathBuf, seq: u64, reason: String },
    #[error("audit log {path}: writing record {seq} failed: {source}")]
    Write {
        path: PathBuf,
        seq: u64,
        source: io::Error,
    },
    #[error(
        "audit log {path}: an earlier write failed and its partial record could not be removed; \
         refusing further appends"
    )]
    Poisoned { path: PathBuf },
    #[error("writing the audit tail: {0}")]
    Output(io::Error),
}

/// Append-only, hash-chained JSON-lines log. Clone-able handle (Arc inside), Send + Sync.
///
/// One process writes a log: [`AuditLog::open`] takes an exclusive lock on
/// the file for as long as any clone of the handle lives.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

struct Inner {
    path: PathBuf,
    /// Records encoded and waiting for the writer: whoever holds `state`
    /// next writes all of them with one `write` (group commit).
    queue: Mutex<Vec<Queued>>,
    state: Mutex<State>,
}

/// One append waiting in the queue, and where its writer leaves the outcome.
struct Queued {
    encoded: Result<Vec<u8>, String>,
    outcome: Arc<Outcome>,
}

/// Filled by the writer of the group, before it lets go of `state`.
type Outcome = Mutex<Option<Result<u64, AuditError>>>;

struct State {
    file: File,
    /// Sequence number and hash of the last record written (0 and GENESIS for none).
    seq: u64,
    last_hash: String,
    /// File length after the last complete record: a failed write is cut back to it.
    len: u64,
    /// A failed write left bytes that could not be removed.
    poisoned: bool,
    /// Writes made so far, each of one group of records.
    groups_written: u64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl AuditLog {
    /// Open (create with mode 0600 if absent) and continue the chain from the last record.
    ///
    /// The last line must be a complete record whose hash matches its content;
    /// anything else (typically a line torn by a crash) is refused with an
    /// error naming the line, rather than silently extending a broken chain.
    /// Only the last line is read: run [`super::verify`] for the whole chain.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let path = path.to_path_buf();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|source| AuditError::Open {
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(AuditError::Locked { path }),
            Err(TryLockError::Error(source)) => return Err(AuditError::Lock { path, source }),
        }
        let read_err = |source| AuditError::Read {
            path: path.clone(),
            source,
        };
        let meta = file.metadata().map_err(read_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_file() && mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "audit log is readable by others");
            }
        }

        let tail = last_lines(&mut file, 1).map_err(read_err)?;
        let (seq, last_hash) = match tail.lines.last() {
            None => (0, GENESIS.to_string()),
            Some(last) => {
                let checked = chain::check_line(last).and_then(|link| {
                    if tail.ends_with_newline {
                        Ok(link)
                    } else {
                        Err("no newline at the end (a torn write?)".to_string())
                    }
                });
                match checked {
                    Ok(link) => (link.seq, link.hash),
                    Err(reason) => {
                        let line = count_lines(&mut file).map_err(read_err)?;
                        return Err(AuditError::BrokenTail { path, line, reason });
                    }
                }
            }
        };
        let state = State {
            file,
            seq,
            last_hash,
            len: meta.len(),
            poisoned: false,
            groups_written: 0,
        };
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path,
                queue: Mutex::new(Vec::new()),
                state: Mutex::new(state),
            }),
            metrics: None,
        })
    }

    /// Append one event and hand it to the OS (no buffering, no fsync)
    /// before returning its sequence number. Appends are serialized, so the chain is linear.
    ///
    /// Appends that arrive while another is being written are written
    /// together by the next writer, in one `write`: under load a request
    /// pays for a share of one system call instead of a whole one, and still
    /// returns only once its own record is in the file.
    ///
    /// On `Err` the record is not in the log and the caller must deny the
    /// request it was recording. A partial write is cut off again; if even
    /// that fails, the log refuses every later append.
    pub fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let started = std::time::Instant::now();
        let result = self.append_unobserved(event);
        if let Some(metrics) = &self.metrics {
            metrics.audit_append(started.elapsed(), result.is_ok());
        }
        result
    }

    /// Record each append's time and failures into `metrics`.
    pub fn observed(self, metrics: Arc<crate::metrics::Metrics>) -> AuditLog {
        AuditLog {
            metrics: Some(metrics),
            ..self
        }
    }

    fn append_unobserved(&self, event: AuditEvent) -> Result<u64, AuditError> {
        // Encoded outside both locks: only the chaining is serialized.
        let encoded = chain::encode_event(&event);
        drop(event);
        let outcome: Arc<Outcome> = Arc::new(Mutex::new(None));
        relock(&self.inner.queue).push(Queued {
            encoded,
            outcome: Arc::clone(&outcome),
        });
        // A record in the queue leaves it only under `state`, and its outcome
        // is filled before `state` is let go: once holding `state`, either an
        // earlier writer took this record (the outcome is there) or it is
        // still queued and this caller writes it, with whatever queued behind.
        let mut state = relock(&self.inner.state);
        if let Some(done) = relock(&outcome).take() {
            return done;
        }
        let group = std::mem::take(&mut *relock(&self.inner.queue));
        self.write_group(&mut state, group);
        drop(state);
        relock(&outcome).take().unwrap_or_else(|| {
            // Unreachable: this caller's record was in the group it just wrote.
            Err(AuditError::Poisoned {
                path: self.inner.path.clone(),
            })
        })
    }

    /// Chain, seal and write `group` with one `write_all`, then leave each
    /// record's outcome. A failed write fails every record of the group.
    fn write_group(&self, state: &mut State, group: Vec<Queued>) {
        let path = &self.inner.path;
        if state.poisoned {
            for queued in group {
                *relock(&queued.outcome) = Some(Err(AuditError::Poisoned { path: path.clone() }));
            }
            return;
        }
        let time = chain::rfc3339_millis(SystemTime::now());
        let (mut seq, mut last_hash) = (state.seq, state.last_hash.clone());
        let mut bytes: Vec<u8> = Vec::new();
        // (record, its seq, or why it could not be encoded)
        let mut sealed: Vec<(Arc<Outcome>, Result<u64, String>)> = Vec::with_capacity(group.len());
        for queued in group {
            match queued.encoded {
                Ok(encoded) => {
                    seq += 1;
                    let (line, hash) = chain::seal_encoded(&encoded, seq, &time, &last_hash);
                    if bytes.is_empty() {
                        bytes = line;
                    } else {
                        bytes.extend_from_slice(&line);
                    }
                    last_hash = hash;
                    sealed.push((queued.outcome, Ok(seq)));
                }
                Err(reason) => sealed.push((queued.outcome, Err(reason))),
            }
        }
        let written = if bytes.is_empty() {
            Ok(())
        } else {
            state.file.write_all(&bytes)
        };
        if !bytes.is_empty() {
            state.groups_written += 1;
            if let Some(metrics) = &self.metrics {
                metrics.audit_group(sealed.len());
            }
        }
        match &written {
            Ok(()) => {
                state.seq = seq;
                state.last_hash = last_hash;
                state.len += bytes.len() as u64;
            }
            Err(_) => {
                let len = state.len;
                if state.file.set_len(len).is_err() {
                    state.poisoned = true;
                }
            }
        }
        for (outcome, result) in sealed {
            let result = match (result, &written) {
                (Ok(seq), Ok(())) => Ok(seq),
                (Ok(seq), Err(source)) => Err(AuditError::Write {
                    path: path.clone(),
                    seq,
                    source: io::Error::new(source.kind(), source.to_string()),
                }),
                // Not encodable: named by the seq it would have had.
                (Err(reason), _) => Err(AuditError::Encode {
                    path: path.clone(),
                    seq: state.seq + 1,
                    reason,
                }),
            };
            *relock(&outcome) = Some(result);
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Lock `mutex`, going on after a panic elsewhere: the queue and the log
/// state change only whole (the state only after a complete write), so a
/// panicking holder cannot have left them half-updated.
fn relock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The end of a file, split into lines.
pub(crate) struct Tail {
    /// Up to the requested number of last lines, oldest first, without newlines.
    pub lines: Vec<Vec<u8>>,
    pub ends_with_newline: bool,
}

/// Read the last `n` lines of `file` backwards from its end, in growing chunks,
/// without reading the rest of it.
pub(crate) fn last_lines(file: &mut File, n: usize) -> io::Result<Tail> {
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = 8 * 1024;
    loop {
        let content = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let breaks = content.iter().filter(|b| **b == b'\n').count();
        if pos == 0 || breaks >= n {
            break;
        }
        let step = chunk.min(pos);
        pos -= step;
        let mut head = vec![0; step as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut head)?;
        head.extend_from_slice(&buf);
        buf = head;
        chunk = chunk.saturating_mul(2);
    }
    let ends_with_newline = buf.ends_with(b"\n");
    let content = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    if !content.is_empty() || ends_with_newline {
        let mut parts: Vec<&[u8]> = content.split(|b| *b == b'\n').collect();
        // Unless the read reached the start of the file, the first part may be a partial line.
        if pos > 0 {
            parts.remove(0);
        }
        let skip = parts.len().saturating_sub(n);
        lines = parts[skip..].iter().map(|part| part.to_vec()).collect();
    }
    Ok(Tail {
        lines,
        ends_with_newline,
    })
}

/// The 1-based number of the last line of `file`.
fn count_lines(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::with_capacity(64 * 1024, file);
    let (mut breaks, mut last) = (0u64, b'\n');
    loop {
        let buf = io::BufRead::fill_buf(&mut reader)?;
        let Some(&end) = buf.last() else { break };
        breaks += buf.iter().filter(|b| **b == b'\n').count() as u64;
        last = end;
        let len = buf.len();
        io::BufRead::consume(&mut reader, len);
    }
    Ok(if last == b'\n' { breaks } else { breaks + 1 })
}

#[cfg(test)]
mod group_commit {
    use super::*;
    use crate::audit::{AdminRecord, verify};

    fn admin(n: u64) -> AuditEvent {
        AuditEvent::Admin(AdminRecord {
            action: "test".into(),
            actor: format!("t{n}"),
            subject: String::new(),
            detail: None,
        })
    }

    #[test]
    fn appends_that_wait_behind_a_write_go_out_together_in_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        log.append(admin(0)).expect("append");
        let seqs = std::thread::scope(|scope| {
            // Stand in for a write in progress: hold the state while four appends queue up.
            let state = relock(&log.inner.state);
            let appenders: Vec<_> = (1..=4)
                .map(|n| {
                    let log = log.clone();
                    scope.spawn(move || log.append(admin(n)).expect("append"))
                })
                .collect();
            while relock(&log.inner.queue).len() < 4 {
                std::thread::yield_now();
            }
            drop(state);
            let mut seqs: Vec<u64> = appenders
                .into_iter()
                .map(|a| a.join().expect("appender"))
                .collect();
            seqs.sort_unstable();
            seqs
        });
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert_eq!(
            relock(&log.inner.state).groups_written,
            2,
            "four queued records took more than one write"
        );
        assert_eq!(verify(&path).expect("verify"), 5);
    }
}

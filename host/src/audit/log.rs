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
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Sequence number and hash of the last record written (0 and GENESIS for none).
    seq: u64,
    last_hash: String,
    /// File length after the last complete record: a failed write is cut back to it.
    len: u64,
    /// A failed write left bytes that could not be removed.
    poisoned: bool,
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
        };
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(state),
            }),
            metrics: None,
        })
    }

    /// Append one event and hand it to the OS (one `write_all`, no buffering, no fsync)
    /// before returning its sequence number. Appends are serialized, so the chain is linear.
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
        let path = &self.inner.path;
        // Encoded outside the lock: only the chaining below is serialized.
        let encoded = chain::encode_event(&event);
        drop(event);
        // A panic elsewhere while holding the lock cannot leave the state
        // half-updated (it changes only after a complete write), so go on.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let seq = state.seq + 1;
        if state.poisoned {
            return Err(AuditError::Poisoned { path: path.clone() });
        }
        let encode_err = |reason| AuditError::Encode {
            path: path.clone(),
            seq,
            reason,
        };
        let time = chain::rfc3339_millis(SystemTime::now());
        let (line, hash) = chain::seal_encoded(&encoded.map_err(encode_err)?, seq, &time, &state.last_hash);
        if let Err(source) = state.file.write_all(&line) {
            let len = state.len;
            if state.file.set_len(len).is_err() {
                state.poisoned = true;
            }
            return Err(AuditError::Write {
                path: path.clone(),
                seq,
                source,
            });
        }
        state.seq = seq;
        state.last_hash = hash;
        state.len += line.len() as u64;
        Ok(seq)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
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

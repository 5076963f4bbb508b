//! Decision inputs, captured on purpose for `airlock policy replay`.
//!
//! A role with `capture_inputs = true` has the full request its policy saw
//! (principal, action with its bounded body, usage, approval), the workflow
//! state the decision read from and the policy's own verdict written, one
//! JSON line per evaluation, to `capture.jsonl` beside the audit log. Lines
//! are linked to the audit log by decision id. The request the policy sees
//! carries no credential (identity headers are stripped before it is
//! built); configured JSON pointers and headers are redacted on top.
//!
//! The file is bounded: past `max_bytes` it is renamed `capture.jsonl.1`
//! (older ones shift up to `keep`) and a new one begun.
//!
//! Nothing here decides or forwards: a capture that cannot be written is
//! logged and the decision goes on (the audit log, not this file, is the
//! record that must never be lost).

mod redact;
mod replay;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{PolicyRequest, Verdict};

pub use redact::Redaction;
pub use replay::{Change, ReplayReport, difference, replay};

/// The file name of the capture, beside the audit log.
pub const CAPTURE_FILE: &str = "capture.jsonl";

/// One captured decision: what the policy saw and what it said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Captured {
    pub decision_id: String,
    pub role: String,
    /// The digest of the version that decided.
    pub policy_digest: String,
    /// The request as `airlock policy eval --request` takes it.
    pub request: Value,
    /// The principal's workflow state the decision read from.
    pub state: BTreeMap<String, String>,
    pub verdict: RecordedVerdict,
}

/// A verdict in the form `airlock policy eval` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedVerdict {
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Value>,
}

impl RecordedVerdict {
    pub fn of(verdict: &Verdict) -> Self {
        RecordedVerdict {
            verdict: verdict.kind().to_string(),
            reason: verdict.reason().map(str::to_string),
            grant: verdict.grant().and_then(|g| serde_json::to_value(g).ok()),
        }
    }
}

/// `[capture]`: bounds and redaction of the capture file.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub max_bytes: u64,
    /// Rotated files kept (`capture.jsonl.1` .. `.keep`).
    pub keep: u32,
    pub redaction: Redaction,
}

/// The capture file, appended to by every decision of a capturing role.
pub struct CaptureLog {
    path: PathBuf,
    settings: CaptureSettings,
    file: Mutex<Open>,
}

struct Open {
    file: File,
    size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("capture lock poisoned")]
    Poisoned,
}

impl CaptureLog {
    pub fn open(path: &Path, settings: CaptureSettings) -> Result<Self, CaptureError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(CaptureLog {
            path: path.to_path_buf(),
            settings,
            file: Mutex::new(Open { file, size }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record one evaluation: `request` as the policy saw it, redacted.
    pub fn append(
        &self,
        decision_id: &str,
        policy_digest: &str,
        request: &PolicyRequest,
        state: &BTreeMap<String, String>,
        verdict: &Verdict,
    ) -> Result<(), CaptureError> {
        let entry = Captured {
            decision_id: decision_id.to_string(),
            role: request.principal.role.clone(),
            policy_digest: policy_digest.to_string(),
            request: self.settings.redaction.request_json(request),
            state: state.clone(),
            verdict: RecordedVerdict::of(verdict),
        };
        // Strings and JSON values only: encoding cannot fail.
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        let mut open = self.file.lock().map_err(|_| CaptureError::Poisoned)?;
        if open.size > 0 && open.size + line.len() as u64 > self.settings.max_bytes {
            self.rotate(&mut open)?;
        }
        open.file.write_all(&line).map_err(|source| self.io(source))?;
        open.size += line.len() as u64;
        Ok(())
    }

    /// `capture.jsonl` → `.1` → … → `.keep`; the oldest falls off.
    fn rotate(&self, open: &mut Open) -> Result<(), CaptureError> {
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.settings.keep == 0 {
            std::fs::remove_file(&self.path).map_err(|source| self.io(source))?;
        } else {
            for n in (1..self.settings.keep).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.io(e)),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1)).map_err(|source| self.io(source))?;
        }
        open.file = open_append(&self.path)?;
        open.size = 0;
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn open_append(path: &Path) -> Result<File, CaptureError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_bytes: u64, keep: u32) -> CaptureSettings {
        CaptureSettings {
            max_bytes,
            keep,
            redaction: Redaction::default(),
        }
    }

    fn request() -> PolicyRequest {
        let mut r = PolicyRequest::default();
        r.principal.role = "developer".into();
        r.action.method = "GET".into();
        r.action.path = "/x".into();
        r
    }

    #[test]
    fn past_max_bytes_the_file_rotates_and_only_keep_old_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CAPTURE_FILE);
        let log = CaptureLog::open(&path, settings(600, 2)).expect("open");
        let deny = Verdict::Deny("no".into());
        for i in 0..12 {
            log.append(
                &format!("dec_{i}"),
                "sha256:x",
                &request(),
                &BTreeMap::new(),
                &deny,
            )
            .expect("append");
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        assert!(current.len() <= 600, "{} bytes", current.len());
        assert!(current.contains("\"dec_11\""));
        assert!(!read(&dir.path().join("capture.jsonl.1")).is_empty());
        assert!(!read(&dir.path().join("capture.jsonl.2")).is_empty());
        assert!(
            !dir.path().join("capture.jsonl.3").exists(),
            "more than keep files"
        );
        // Every line of every file is a whole entry.
        for name in ["capture.jsonl", "capture.jsonl.1", "capture.jsonl.2"] {
            for line in read(&dir.path().join(name)).lines() {
                let entry: Captured = serde_json::from_str(line).expect("a whole entry");
                assert_eq!(entry.verdict.verdict, "deny");
            }
        }
    }
}

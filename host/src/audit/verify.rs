//! Reading a log back: checking its chain and printing its end.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::Deserialize;

use super::chain::{self, GENESIS};
use super::log::{AuditError, last_lines};
use super::record::{AdminRecord, AuditEvent, DecisionRecord};

/// The first bad record of a log (1-based `line`) and why.
/// `line` is 0 when the file as a whole could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => f.write_str(&self.reason),
            line => write!(f, "line {line}: {}", self.reason),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Check a log file's chain: every line a canonical record whose hash matches
/// its content, whose `prev` is the previous line's hash and whose `seq` is
/// one more than the previous one (starting at 1). Ok with the number of records.
///
/// A chain cannot show that records were cut off its end: compare the count
/// or the last hash with one kept elsewhere for that.
pub fn verify(path: &Path) -> Result<u64, VerifyError> {
    let whole = |reason: String| VerifyError { line: 0, reason };
    let file = File::open(path).map_err(|e| whole(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let (mut line, mut seq, mut hash) = (0usize, 0u64, GENESIS.to_string());
    loop {
        buf.clear();
        let at = |reason: String| VerifyError {
            line: line + 1,
            reason,
        };
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            return Ok(seq);
        }
        line += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        }
        let at = |reason: String| VerifyError { line, reason };
        let link = chain::check_line(&buf).map_err(at)?;
        if !complete {
            return Err(at("no newline at the end (a torn write?)".into()));
        }
        if link.seq != seq + 1 {
            return Err(at(match (line, link.seq > seq) {
                (1, _) => format!(
                    "seq {} starts the log, not 1 (records removed from its start?)",
                    link.seq
                ),
                (_, true) => format!("seq {} follows seq {seq} (a record removed or moved)", link.seq),
                (_, false) => format!("seq {} follows seq {seq} (a record repeated or moved)", link.seq),
            }));
        }
        if link.prev != hash {
            return Err(at(if line == 1 {
                "prev is not 64 zeros, as the first record's must be".into()
            } else {
                format!(
                    "prev does not match line {}'s hash (a record removed, inserted or reordered)",
                    line - 1
                )
            }));
        }
        (seq, hash) = (link.seq, link.hash);
    }
}

/// What `tail` reads of a record.
#[derive(Deserialize)]
struct Shown {
    seq: u64,
    time: String,
    #[serde(flatten)]
    event: AuditEvent,
}

/// Pretty-print the last `n` records (one readable line each: time, seq, kind, who, what,
/// verdict/reason) to `out`. Does not check the chain (that is [`verify`]'s job);
/// a line that is not a record is shown as such. Control characters, which an
/// agent could have put in a path or reason, are printed escaped.
pub fn tail(path: &Path, n: usize, out: &mut impl Write) -> Result<(), AuditError> {
    let read_err = |source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let tail = last_lines(&mut file, n).map_err(read_err)?;
    for line in &tail.lines {
        let text = match serde_json::from_slice::<Shown>(line) {
            Ok(shown) => describe(&shown),
            Err(_) => format!("(not a record: {})", String::from_utf8_lossy(line)),
        };
        writeln!(out, "{}", clean(&text)).map_err(AuditError::Output)?;
    }
    Ok(())
}

fn describe(shown: &Shown) -> String {
    let head = format!("{} #{}", shown.time, shown.seq);
    match &shown.event {
        AuditEvent::Decision(d) => describe_decision(&head, d),
        AuditEvent::Outcome(o) => {
            let status = o
                .upstream_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            let error = o
                .error
                .as_deref()
                .map(|e| format!(" error {e}"))
                .unwrap_or_default();
            format!(
                "{head} outcome {} upstream {status}, {} bytes, {} µs{error}",
                o.decision_id,
                o.bytes.unwrap_or(0),
                o.latency_micros
            )
        }
        AuditEvent::Admin(AdminRecord {
            action,
            actor,
            subject,
            detail,
        }) => {
            let detail = detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            format!("{head} admin {actor} {action} {subject}{detail}")
        }
        AuditEvent::Shadow(s) => {
            let reason = |r: &Option<String>| r.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!(
                "{head} shadow {} {} {}: enforced {} said {}{}, candidate {} says {}{}",
                s.decision_id,
                s.role,
                s.change,
                s.enforced_digest,
                s.enforced_verdict,
                reason(&s.enforced_reason),
                s.candidate_digest,
                s.candidate_verdict,
                reason(&s.candidate_reason),
            )
        }
    }
}

fn describe_decision(head: &str, d: &DecisionRecord) -> String {
    let user = d
        .on_behalf_of
        .as_deref()
        .map(|u| format!(", for {u}"))
        .unwrap_or_default();
    let mut text = format!(
        "{head} decision {} ({}, session {}{user}) {} {} {}",
        d.agent, d.role, d.session, d.method, d.service, d.path
    );
    if let Some(op) = &d.operation {
        text += &format!(" [{op}]");
    }
    text += &format!(" -> {}", d.verdict);
    if let Some(error) = &d.error {
        text += &format!(" {error}");
    }
    if let Some(reason) = &d.reason {
        text += &format!(": {reason}");
    }
    if let Some(status) = d.upstream_status {
        text += &format!(" (upstream {status})");
    }
    text
}

/// `s` with control and bidirectional-override characters escaped, so that a
/// record cannot drive the terminal or disguise what it says.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

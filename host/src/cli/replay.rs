//! `airlock policy replay`: a component against captured decisions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::capture::{Captured, ReplayReport, replay};
use airlock::policy::Limits;

pub fn run(
    file: &Path,
    inputs: &[PathBuf],
    audit: &Path,
    role: Option<&str>,
    json: bool,
    allow_changes: bool,
    limits: &Limits,
) -> ExitCode {
    let prepared = (|| -> Result<_, String> {
        let mut captured = Vec::new();
        for input in inputs {
            captured.extend(read_capture(input)?);
        }
        let audited = audited_decisions(audit)?;
        let module = super::policy::load(file, limits)?;
        Ok((captured, audited, module))
    })();
    let (captured, audited, module) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = replay(&module, &captured, &|id| audited.contains(id), role, limits);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", text(&report, file));
    }
    if report.changed.is_empty() || allow_changes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn read_capture(path: &Path) -> Result<Vec<Captured>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not a capture entry: {e}", path.display(), n + 1))
        })
        .collect()
}

/// The decision ids the audit log records.
fn audited_decisions(path: &Path) -> Result<HashSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ids = HashSet::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not an audit record: {e}", path.display(), n + 1))?;
        if record["kind"] == "decision"
            && let Some(id) = record["decision_id"].as_str()
        {
            ids.insert(id.to_string());
        }
    }
    Ok(ids)
}

fn text(report: &ReplayReport, file: &Path) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replayed {} decision(s) through {} ({}): {} unchanged, {} changed",
        report.replayed,
        file.display(),
        report.digest,
        report.unchanged,
        report.changed.len()
    );
    for c in &report.changed {
        let op = c.operation.as_deref().unwrap_or("-");
        let _ = writeln!(out, "  {} {} {op}: {}", c.decision_id, c.role, c.kind);
        let _ = writeln!(out, "    was: {}", describe(&c.was));
        let _ = writeln!(out, "    now: {}", describe(&c.now));
    }
    if !report.not_in_audit.is_empty() {
        let _ = writeln!(
            out,
            "skipped {} captured decision(s) the audit log does not record: {}",
            report.not_in_audit.len(),
            report.not_in_audit.join(", ")
        );
    }
    if !report.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "skipped {} captured request(s) that no longer parse: {}",
            report.unreadable.len(),
            report.unreadable.join(", ")
        );
    }
    out
}

fn describe(v: &airlock::capture::RecordedVerdict) -> String {
    match (&v.reason, &v.grant) {
        (Some(reason), _) => format!("{} {reason:?}", v.verdict),
        (None, Some(grant)) => format!("{} {grant}", v.verdict),
        (None, None) => v.verdict.clone(),
    }
}

//! The log's properties, each shown by a test that breaks when the property does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::chain::{self, GENESIS};
use super::*;

fn decision(i: u64) -> AuditEvent {
    AuditEvent::Decision(DecisionRecord {
        decision_id: format!("d-{i}"),
        session: "s-1".into(),
        agent: "agent-7".into(),
        role: "crash-tracker".into(),
        workflow: "wf-1".into(),
        on_behalf_of: i.is_multiple_of(2).then(|| "alice".into()),
        service: "crash-reporting".into(),
        operation: Some("issues.read".into()),
        method: "GET".into(),
        path: format!("/issues/{i}"),
        verdict: if i.is_multiple_of(3) { "deny" } else { "allow" }.into(),
        error: i.is_multiple_of(3).then(|| "denied".into()),
        reason: Some(format!("rule {i}: \"quoted\"\nand on two lines, café")),
        policy_name: Some("crash-tracker".into()),
        policy_digest: Some("ab".repeat(32)),
        fuel: Some(12_345),
        eval_micros: Some(9),
        token_jti: Some(format!("jti-{i}")),
        token_scope: Some("issues:read".into()),
        token_ttl_s: Some(60),
        approval_id: None,
        upstream_status: Some(200),
        bytes: Some(u64::MAX),
        latency_micros: 420,
        mcp_method: i.is_multiple_of(4).then(|| "tools/call".into()),
        mcp_name: i.is_multiple_of(4).then(|| "read_file".into()),
        mcp_arguments_sha256: i.is_multiple_of(4).then(|| format!("sha256:{}", "cd".repeat(32))),
        mcp_id: i.is_multiple_of(4).then(|| i.to_string()),
    })
}

fn admin(i: u64) -> AuditEvent {
    AuditEvent::Admin(AdminRecord {
        action: "session.create".into(),
        actor: "operator".into(),
        subject: format!("s-{i}"),
        detail: None,
    })
}

fn event(i: u64) -> AuditEvent {
    if i.is_multiple_of(2) {
        admin(i)
    } else {
        decision(i)
    }
}

/// A log of `n` mixed records in a fresh directory (kept alive by the returned guard).
fn log_of(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).expect("open");
    for i in 1..=n {
        assert_eq!(log.append(event(i)).expect("append"), i);
    }
    (dir, path)
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    text.lines().map(str::to_string).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

fn parse(line: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not an object: {other:?}"),
    }
}

fn bad_line(path: &Path) -> (usize, String) {
    let err = verify(path).expect_err("verify should fail");
    assert_eq!(err.to_string(), format!("line {}: {}", err.line, err.reason));
    (err.line, err.reason)
}

#[test]
fn mixed_records_verify_and_read_back() {
    let (_dir, path) = log_of(5);
    assert_eq!(verify(&path).expect("verify"), 5);

    let lines = read_lines(&path);
    assert_eq!(
        lines.len(),
        5,
        "one line per record, even with a newline in a reason"
    );
    let mut prev = GENESIS.to_string();
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{{\"seq\":{},\"time\":\"", i + 1)),
            "{line}"
        );
        let map = parse(line);
        assert_eq!(map["prev"], Value::from(prev.as_str()));
        prev = map["hash"].as_str().expect("hash").to_string();
        let time = map["time"].as_str().expect("time");
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        let back: AuditEvent = serde_json::from_str(line).expect("event");
        assert_eq!(back, event(i as u64 + 1));
    }
}

#[test]
fn reopening_continues_the_chain() {
    let (_dir, path) = log_of(3);
    let log = AuditLog::open(&path).expect("reopen");
    assert_eq!(log.path(), path.as_path());
    assert_eq!(log.append(decision(4)).expect("append"), 4);
    assert_eq!(log.clone().append(admin(5)).expect("append"), 5);
    drop(log);
    assert_eq!(verify(&path).expect("verify"), 5);
}

#[test]
fn an_empty_log_is_valid_and_starts_at_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    drop(AuditLog::open(&path).expect("create"));
    assert_eq!(verify(&path).expect("verify"), 0);
    assert_eq!(
        AuditLog::open(&path)
            .expect("reopen")
            .append(admin(1))
            .expect("append"),
        1
    );
    assert_eq!(verify(&path).expect("verify"), 1);
}

#[test]
fn an_edited_field_is_caught_at_its_line() {
    let (_dir, path) = log_of(5);
    let mut lines = read_lines(&path);
    assert!(lines[2].contains("\"verdict\":\"deny\""));
    lines[2] = lines[2].replace("\"verdict\":\"deny\"", "\"verdict\":\"allow\"");
    write_lines(&path, &lines);
    assert_eq!(
        bad_line(&path),
        (3, "hash does not match its content (edited?)".into())
    );
}

#[test]
fn a_removed_record_is_caught_where_the_gap_is() {
    let (_dir, path) = log_of(5);
    let mut lines = read_lines(&path);
    lines.remove(2);
    write_lines(&path, &lines);
    let (line, reason) = bad_line(&path);
    assert_eq!(line, 3);
    assert!(reason.starts_with("seq 4 follows seq 2"), "{reason}");
}

#[test]
fn a_removed_first_record_is_caught() {
    let (_dir, path) = log_of(5);
    let lines = read_lines(&path);
    write_lines(&path, &lines[1..]);
    let (line, reason) = bad_line(&path);
    assert_eq!(line, 1);
    assert!(reason.starts_with("seq 2 starts the log"), "{reason}");
}

#[test]
fn swapped_records_are_caught() {
    let (_dir, path) = log_of(5);
    let mut lines = read_lines(&path);
    lines.swap(1, 2);
    write_lines(&path, &lines);
    let (line, reason) = bad_line(&path);
    assert_eq!(line, 2);
    assert!(reason.starts_with("seq 3 follows seq 1"), "{reason}");
}

/// A forged record: line 2's content with a new verdict, sealed as `seq` after `prev`.
fn forge(lines: &[String], seq: u64, prev: &str) -> String {
    let mut fields = parse(&lines[1]);
    for key in ["seq", "time", "prev", "hash"] {
        fields.remove(key);
    }
    fields.insert("verdict".into(), "allow".into());
    let (line, _) = chain::seal(fields, seq, "2026-01-01T00:00:00.000Z".into(), prev).expect("seal");
    String::from_utf8(line).expect("utf-8").trim_end().to_string()
}

#[test]
fn an_inserted_record_with_a_wrong_prev_is_caught_at_its_line() {
    let (_dir, path) = log_of(5);
    let mut lines = read_lines(&path);
    let forged = forge(&lines, 3, &"f".repeat(64));
    assert!(
        chain::check_line(forged.as_bytes()).is_ok(),
        "the forgery is self-consistent"
    );
    lines.insert(2, forged);
    write_lines(&path, &lines);
    assert_eq!(
        bad_line(&path),
        (
            3,
            "prev does not match line 2's hash (a record removed, inserted or reordered)".into()
        )
    );
}

#[test]
fn an_inserted_record_with_the_right_prev_is_caught_at_the_next_line() {
    let (_dir, path) = log_of(5);
    let mut lines = read_lines(&path);
    let prev = parse(&lines[1])["hash"].as_str().expect("hash").to_string();
    lines.insert(2, forge(&lines, 3, &prev));
    write_lines(&path, &lines);
    let (line, reason) = bad_line(&path);
    assert_eq!(line, 4);
    assert!(reason.starts_with("seq 3 follows seq 3"), "{reason}");
}

#[test]
fn a_torn_last_line_is_caught_and_not_extended() {
    let (_dir, path) = log_of(5);
    let full = std::fs::read(&path).expect("read");

    std::fs::write(&path, &full[..full.len() - 10]).expect("truncate");
    let (line, reason) = bad_line(&path);
    assert_eq!(line, 5);
    assert!(reason.starts_with("not JSON"), "{reason}");
    match AuditLog::open(&path) {
        Err(AuditError::BrokenTail { line: 5, reason, .. }) => assert!(reason.starts_with("not JSON")),
        other => panic!("opened a torn log: {other:?}"),
    }

    // Only the final newline lost: every line parses, but the last is still incomplete.
    std::fs::write(&path, &full[..full.len() - 1]).expect("truncate");
    assert_eq!(
        bad_line(&path),
        (5, "no newline at the end (a torn write?)".into())
    );
    match AuditLog::open(&path) {
        Err(err @ AuditError::BrokenTail { line: 5, .. }) => {
            assert!(err.to_string().contains("audit.log: line 5: no newline"), "{err}")
        }
        other => panic!("opened a torn log: {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).expect("read"),
        &full[..full.len() - 1],
        "left as it was"
    );
}

#[test]
fn an_edited_last_record_is_not_extended() {
    let (_dir, path) = log_of(3);
    let mut lines = read_lines(&path);
    lines[2] = lines[2].replace("\"verdict\":\"deny\"", "\"verdict\":\"allow\"");
    write_lines(&path, &lines);
    assert!(matches!(
        AuditLog::open(&path),
        Err(AuditError::BrokenTail { line: 3, .. })
    ));
}

#[test]
fn concurrent_appends_form_one_chain() {
    let (_dir, path) = log_of(0);
    let log = AuditLog::open(&path).expect("open");
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                scope.spawn(move || {
                    (0..100)
                        .map(|i| log.append(event(t * 100 + i)).expect("append"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>());
    assert_eq!(verify(&path).expect("verify"), 800);
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_is_an_error_and_so_is_every_later_one() {
    let log = AuditLog::open(Path::new("/dev/full")).expect("open /dev/full");
    for _ in 0..2 {
        let err = log
            .append(decision(1))
            .expect_err("a full device accepted a record");
        assert!(err.to_string().starts_with("audit log /dev/full: "), "{err}");
    }
}

#[test]
fn records_name_tokens_but_never_hold_one() {
    let (_dir, path) = log_of(1);
    let keys: BTreeSet<String> = parse(&read_lines(&path)[0]).keys().cloned().collect();
    let expected = "agent approval_id bytes decision_id error eval_micros fuel hash kind latency_micros \
        mcp_arguments_sha256 mcp_id mcp_method mcp_name method \
        on_behalf_of operation path policy_digest policy_name prev reason role seq service session \
        time token_jti token_scope token_ttl_s upstream_status verdict workflow";
    assert_eq!(keys, expected.split_whitespace().map(str::to_string).collect());
    for key in &keys {
        let key = key.to_ascii_lowercase();
        assert!(key != "token" && key != "jwt", "{key}");
        for word in ["secret", "authorization", "password", "credential", "cookie"] {
            assert!(!key.contains(word), "{key}");
        }
    }
}

#[cfg(unix)]
#[test]
fn the_log_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = log_of(1);
    let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_second_writer_is_refused() {
    let (_dir, path) = log_of(1);
    let first = AuditLog::open(&path).expect("open");
    assert!(matches!(AuditLog::open(&path), Err(AuditError::Locked { .. })));
    drop(first);
    AuditLog::open(&path).expect("the lock goes with the last handle");
}

#[test]
fn verify_names_a_missing_file() {
    let err = verify(Path::new("/nonexistent/audit.log")).expect_err("missing");
    assert_eq!(err.line, 0);
    assert!(
        err.to_string()
            .starts_with("cannot open /nonexistent/audit.log: "),
        "{err}"
    );
}

#[test]
fn tail_prints_the_last_records_readably() {
    let (_dir, path) = log_of(4);
    let log = AuditLog::open(&path).expect("open");
    let mut hostile = DecisionRecord {
        agent: "agent-7".into(),
        path: "/x\u{1b}[2J\u{202e}".into(),
        verdict: "deny".into(),
        error: Some("rate_limited".into()),
        ..DecisionRecord::default()
    };
    hostile.reason = Some("too many".into());
    log.append(AuditEvent::Decision(hostile)).expect("append");
    drop(log);

    let mut out = Vec::new();
    tail(&path, 2, &mut out).expect("tail");
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(" #4 admin operator session.create s-4"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(" #5 decision agent-7 "), "{}", lines[1]);
    assert!(
        lines[1].ends_with("-> deny rate_limited: too many"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("/x\\u{1b}[2J\\u{202e}"), "{}", lines[1]);
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));

    let mut all = Vec::new();
    tail(&path, 100, &mut all).expect("tail");
    assert_eq!(String::from_utf8_lossy(&all).lines().count(), 5);
    let mut none = Vec::new();
    tail(&path, 0, &mut none).expect("tail");
    assert!(none.is_empty());
}

#[test]
fn tail_shows_a_torn_line_as_such() {
    let (_dir, path) = log_of(3);
    let full = std::fs::read(&path).expect("read");
    std::fs::write(&path, &full[..full.len() - 20]).expect("truncate");
    let mut out = Vec::new();
    tail(&path, 2, &mut out).expect("tail");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("(not a record: ")),
        "{text}"
    );
}

#[test]
fn tail_reads_long_logs_from_the_end() {
    // More than the first 8 KiB chunk, so the backwards read must grow and
    // drop the partial line it starts in.
    let (_dir, path) = log_of(60);
    for n in [1, 7, 59, 60, 61] {
        let mut out = Vec::new();
        tail(&path, n, &mut out).expect("tail");
        let text = String::from_utf8(out).expect("utf-8");
        let seqs: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
        let expected: Vec<String> = (61 - n.min(60)..=60).map(|s| format!("#{s}")).collect();
        assert_eq!(seqs, expected, "n = {n}");
    }
}

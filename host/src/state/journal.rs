//! The durable half of the embedded store: an SQLite database, written by
//! one thread, holding the rows that [`MemoryStore`](super::MemoryStore)
//! changes.
//!
//! Operations hand their [`Change`]s over in the order they were made; the
//! writer commits everything waiting in one transaction (group commit) and
//! only then acknowledges each operation, so an operation answers once its
//! change is on disk. The database runs in WAL mode: a commit survives the
//! process being killed at any moment; with `fsync` it also survives a power
//! loss. Expired rows are swept once a minute by the same rules the memory
//! side prunes by.
//!
//! A write that fails leaves memory ahead of the disk: from then on the
//! journal reports itself unhealthy and the store refuses every operation
//! (fail closed) until the process is restarted from what the disk holds.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::memory::EXPIRED_GRACE_MS;
use super::rate::WINDOW_SECONDS;
use super::{Approval, Session, StateError, TokenRecord};

/// Bumped when the tables change shape; an unknown version is refused.
const SCHEMA_VERSION: &str = "1";
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Most operations committed in one transaction.
const MAX_GROUP: usize = 512;

/// One row-level change made by one store operation.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// Insert or replace a session (created, revoked); counters untouched.
    Session {
        session: Session,
        handle_digest: [u8; 32],
    },
    /// A request counted: the session's new total, and the time it entered
    /// the rate window (`None`: refused, not in the window).
    Requests {
        session: String,
        total: u64,
        hit_ms: Option<u64>,
    },
    Grant {
        session: String,
        operation: String,
        count: u32,
    },
    /// Keys set (`Some`) or removed (`None`).
    WorkflowKeys {
        workflow: String,
        values: Vec<(String, Option<String>)>,
    },
    WorkflowRevoked(String),
    Approval(Approval),
    Token {
        record: TokenRecord,
        used: bool,
        revoked: bool,
    },
}

/// A session as the database keeps it.
pub(super) struct SessionRow {
    pub(super) session: Session,
    pub(super) handle_digest: [u8; 32],
    pub(super) requests_total: u64,
}

/// Everything the database held at start-up (after a sweep).
#[derive(Default)]
pub(super) struct Restored {
    pub(super) sessions: Vec<SessionRow>,
    /// `(session, time)` of the requests in the rate windows.
    pub(super) rate_hits: Vec<(String, u64)>,
    pub(super) grants: Vec<(String, String, u32)>,
    pub(super) workflow_state: Vec<(String, String, String)>,
    pub(super) revoked_workflows: Vec<String>,
    /// `(record, used, revoked)`.
    pub(super) tokens: Vec<(TokenRecord, bool, bool)>,
    pub(super) approvals: Vec<Approval>,
}

struct Batch {
    changes: Vec<Change>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle operations submit their changes through.
pub(super) struct Journal {
    path: PathBuf,
    /// `None` only while dropping.
    tx: Option<Sender<Batch>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Set once, by the first failed write; the store is unusable after it.
    failed: Arc<OnceLock<String>>,
}

/// Resolves once a submitted change is durable (or could not be made so).
pub(super) struct Ticket(oneshot::Receiver<Result<(), String>>);

impl Ticket {
    pub(super) async fn wait(self) -> Result<(), StateError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StateError(e)),
            Err(_) => Err(StateError("the state database writer has stopped".into())),
        }
    }
}

impl Journal {
    /// Open (or create) the database, take its lock for this process, sweep
    /// expired rows and read the rest; start the writer thread.
    pub(super) fn open(path: &Path, fsync: bool, now_ms: u64) -> Result<(Journal, Restored), StateError> {
        Journal::open_capped(path, fsync, now_ms, None)
    }

    /// [`open`](Self::open), with the database capped at `max_pages` pages
    /// (a disk that fills up, for tests).
    pub(super) fn open_capped(
        path: &Path,
        fsync: bool,
        now_ms: u64,
        max_pages: Option<u32>,
    ) -> Result<(Journal, Restored), StateError> {
        let err = |what: &str, e: rusqlite::Error| {
            StateError(format!("state database {}: {what}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StateError(format!(
                    "state database {}: creating its directory: {e}",
                    path.display()
                ))
            })?;
        }
        let mut conn = Connection::open(path).map_err(|e| err("cannot open", e))?;
        // One process per database: the lock taken by the first write below
        // is held for the life of the connection, and a second process
        // fails at once rather than waiting.
        conn.busy_timeout(Duration::ZERO)
            .map_err(|e| err("busy timeout", e))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(|e| err("locking mode", e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| locked_or(path, e, "journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError(format!(
                "state database {}: cannot use WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })
            .map_err(|e| err("synchronous", e))?;
        create_schema(&mut conn).map_err(|e| locked_or(path, e, "creating the tables"))?;
        if let Some(pages) = max_pages {
            conn.pragma_update(None, "max_page_count", pages)
                .map_err(|e| err("max page count", e))?;
        }
        sweep(&conn, now_ms).map_err(|e| err("sweeping expired rows", e))?;
        let restored = restore(&conn).map_err(|e| err("reading", e))?;
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(OnceLock::new());
        let writer_failed = failed.clone();
        let writer_path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("airlock-state-db".into())
            .spawn(move || write_loop(conn, rx, writer_failed, writer_path))
            .map_err(|e| StateError(format!("starting the state database writer: {e}")))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                tx: Some(tx),
                writer: Some(writer),
                failed,
            },
            restored,
        ))
    }

    pub(super) fn healthy(&self) -> Result<(), StateError> {
        match self.failed.get() {
            None => Ok(()),
            Some(reason) => Err(StateError(format!(
                "{reason}; refusing every state operation until Airlock is restarted (fix the disk first; {} keeps everything acknowledged)",
                self.path.display()
            ))),
        }
    }

    /// Queue one operation's changes; they are written in submission order.
    pub(super) fn submit(&self, changes: Vec<Change>) -> Ticket {
        let (done, rx) = oneshot::channel();
        let batch = Batch { changes, done };
        let unsent = match &self.tx {
            Some(tx) => tx.send(batch).err().map(|mpsc::SendError(b)| b),
            None => Some(batch),
        };
        if let Some(batch) = unsent {
            let _ = batch
                .done
                .send(Err("the state database writer has stopped".into()));
        }
        Ticket(rx)
    }
}

impl Drop for Journal {
    /// Let the writer finish what was submitted and close the database, so
    /// its lock is released when the store is gone.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn locked_or(path: &Path, e: rusqlite::Error, what: &str) -> StateError {
    if matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    ) {
        StateError(format!(
            "state database {} is in use by another process (one Airlock owns an embedded database; \
             run several replicas on `[state] backend = \"redis\"`)",
            path.display()
        ))
    } else {
        StateError(format!("state database {}: {what}: {e}", path.display()))
    }
}

fn create_schema(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS sessions (
             id TEXT PRIMARY KEY, handle_digest BLOB NOT NULL UNIQUE, body TEXT NOT NULL,
             expires_at_ms INTEGER NOT NULL, requests_total INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE IF NOT EXISTS rate_hits (session TEXT NOT NULL, t INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS rate_hits_t ON rate_hits (t);
         CREATE TABLE IF NOT EXISTS grants (
             session TEXT NOT NULL, operation TEXT NOT NULL, count INTEGER NOT NULL,
             PRIMARY KEY (session, operation));
         CREATE TABLE IF NOT EXISTS workflow_state (
             workflow TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
             PRIMARY KEY (workflow, key));
         CREATE TABLE IF NOT EXISTS revoked_workflows (workflow TEXT PRIMARY KEY);
         CREATE TABLE IF NOT EXISTS approvals (
             id TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS tokens (
             jti TEXT PRIMARY KEY, session TEXT NOT NULL, body TEXT NOT NULL,
             expires_at INTEGER NOT NULL, used INTEGER NOT NULL, revoked INTEGER NOT NULL);",
    )?;
    let version: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
        .optional()?;
    match version.as_deref() {
        None => {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                [SCHEMA_VERSION],
            )?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(other) => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("schema version {other} is not {SCHEMA_VERSION}; this database was written by another Airlock version").into(),
            ));
        }
    }
    tx.commit()
}

/// Delete what has expired, by the rules the memory side prunes by.
fn sweep(conn: &Connection, now_ms: u64) -> rusqlite::Result<()> {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let window_start = now.saturating_sub(i64::from(WINDOW_SECONDS) * 1000);
    let session_cutoff = now.saturating_sub(EXPIRED_GRACE_MS as i64);
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        conn.execute("DELETE FROM rate_hits WHERE t <= ?1", [window_start])?;
        let gone = "SELECT id FROM sessions WHERE expires_at_ms <= ?1";
        conn.execute(
            &format!("DELETE FROM rate_hits WHERE session IN ({gone})"),
            [session_cutoff],
        )?;
        conn.execute(
            &format!("DELETE FROM grants WHERE session IN ({gone})"),
            [session_cutoff],
        )?;
        conn.execute(
            &format!("DELETE FROM tokens WHERE session IN ({gone})"),
            [session_cutoff],
        )?;
        conn.execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", [session_cutoff])?;
        conn.execute("DELETE FROM tokens WHERE expires_at <= ?1", [now / 1000])?;
        conn.execute(
            "DELETE FROM approvals WHERE expires_at_ms <= ?1",
            [session_cutoff],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn json_column<T: serde::de::DeserializeOwned>(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn restore(conn: &Connection) -> rusqlite::Result<Restored> {
    let mut out = Restored::default();
    let mut stmt = conn.prepare("SELECT body, handle_digest, requests_total FROM sessions")?;
    for row in stmt.query_map([], |r| {
        let digest: Vec<u8> = r.get(1)?;
        let handle_digest: [u8; 32] = digest.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Blob,
                "handle digest is not 32 bytes".into(),
            )
        })?;
        Ok(SessionRow {
            session: json_column(r, 0)?,
            handle_digest,
            requests_total: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })? {
        out.sessions.push(row?);
    }
    let mut stmt = conn.prepare("SELECT session, t FROM rate_hits ORDER BY t")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))? {
        out.rate_hits.push(row?);
    }
    let mut stmt = conn.prepare("SELECT session, operation, count FROM grants")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
        out.grants.push(row?);
    }
    let mut stmt = conn.prepare("SELECT workflow, key, value FROM workflow_state")?;
    for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
        out.workflow_state.push(row?);
    }
    let mut stmt = conn.prepare("SELECT workflow FROM revoked_workflows")?;
    for row in stmt.query_map([], |r| r.get(0))? {
        out.revoked_workflows.push(row?);
    }
    let mut stmt = conn.prepare("SELECT body, used, revoked FROM tokens")?;
    for row in stmt.query_map([], |r| Ok((json_column(r, 0)?, r.get(1)?, r.get(2)?)))? {
        out.tokens.push(row?);
    }
    let mut stmt = conn.prepare("SELECT body FROM approvals")?;
    for row in stmt.query_map([], |r| json_column(r, 0))? {
        out.approvals.push(row?);
    }
    Ok(out)
}

fn write_loop(mut conn: Connection, rx: Receiver<Batch>, failed: Arc<OnceLock<String>>, path: PathBuf) {
    let mut last_sweep = Instant::now();
    loop {
        let first = match rx.recv_timeout(SWEEP_EVERY) {
            Ok(batch) => Some(batch),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if last_sweep.elapsed() >= SWEEP_EVERY && failed.get().is_none() {
            last_sweep = Instant::now();
            if let Err(e) = sweep(&conn, crate::proxy::now_ms()) {
                tracing::warn!(path = %path.display(), error = %e, "sweeping the state database failed");
            }
        }
        let Some(first) = first else { continue };
        // Let the requests running beside this one hand their changes over
        // before the group closes: a transaction's commit is most of what a
        // write costs (perf: pager commit + BEGIN/COMMIT ≈ half the writer's
        // time), and one more change in the group costs little.
        std::thread::yield_now();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        let result = match failed.get() {
            Some(reason) => Err(reason.clone()),
            None => write_group(&mut conn, &group).map_err(|e| {
                let reason = format!("state database {}: writing failed: {e}", path.display());
                tracing::error!(path = %path.display(), error = %e, "state database write failed; refusing all state operations");
                let _ = failed.set(reason.clone());
                reason
            }),
        };
        for batch in group {
            let _ = batch.done.send(result.clone());
        }
    }
}

fn write_group(conn: &mut Connection, group: &[Batch]) -> rusqlite::Result<()> {
    // A group of `settle` markers only: everything before it is written.
    if group.iter().all(|b| b.changes.is_empty()) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for change in group.iter().flat_map(|b| &b.changes) {
        apply(&tx, change)?;
    }
    tx.commit()
}

fn to_sql_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn apply(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Session {
            session,
            handle_digest,
        } => {
            tx.prepare_cached(
                "INSERT INTO sessions (id, handle_digest, body, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![
                session.id,
                &handle_digest[..],
                to_sql_json(session)?,
                int(session.expires_at_ms)
            ])?;
        }
        Change::Requests {
            session,
            total,
            hit_ms,
        } => {
            tx.prepare_cached("UPDATE sessions SET requests_total = ?2 WHERE id = ?1")?
                .execute(params![session, int(*total)])?;
            if let Some(t) = hit_ms {
                tx.prepare_cached("INSERT INTO rate_hits (session, t) VALUES (?1, ?2)")?
                    .execute(params![session, int(*t)])?;
            }
        }
        Change::Grant {
            session,
            operation,
            count,
        } => {
            tx.prepare_cached(
                "INSERT INTO grants (session, operation, count) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session, operation) DO UPDATE SET count = excluded.count",
            )?
            .execute(params![session, operation, count])?;
        }
        Change::WorkflowKeys { workflow, values } => {
            for (key, value) in values {
                match value {
                    Some(v) => tx
                        .prepare_cached(
                            "INSERT INTO workflow_state (workflow, key, value) VALUES (?1, ?2, ?3)
                             ON CONFLICT (workflow, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute(params![workflow, key, v])?,
                    None => tx
                        .prepare_cached("DELETE FROM workflow_state WHERE workflow = ?1 AND key = ?2")?
                        .execute(params![workflow, key])?,
                };
            }
        }
        Change::WorkflowRevoked(workflow) => {
            tx.prepare_cached("INSERT OR IGNORE INTO revoked_workflows (workflow) VALUES (?1)")?
                .execute([workflow])?;
        }
        Change::Approval(a) => {
            tx.prepare_cached(
                "INSERT INTO approvals (id, body, expires_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![a.id, to_sql_json(a)?, int(a.expires_at_ms)])?;
        }
        Change::Token {
            record,
            used,
            revoked,
        } => {
            tx.prepare_cached(
                "INSERT INTO tokens (jti, session, body, expires_at, used, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (jti) DO UPDATE SET used = excluded.used, revoked = excluded.revoked",
            )?
            .execute(params![
                record.jti,
                record.session,
                to_sql_json(record)?,
                int(record.expires_at),
                used,
                revoked
            ])?;
        }
    }
    Ok(())
}

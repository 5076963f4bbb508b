//! The in-process store: everything behind one `RwLock`, so each operation
//! of [`Store`] is atomic simply by holding the lock for its duration. Reads
//! (handle lookups, peeks) share the lock; every read-modify-write takes it
//! exclusively for a few map operations.
//!
//! The same logic is the durable embedded store: [`MemoryStore::durable`]
//! attaches a [`Journal`] (an SQLite database written by one thread). Every
//! operation then records what it changed, hands those rows to the journal
//! while it still holds the lock (so the database sees changes in the order
//! they were made), and answers only once the journal has committed them.
//! Memory is the working copy; the database is what survives a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::journal::{Change, Journal, Restored, Ticket};
use super::rate::{WINDOW_SECONDS, Window};
use super::sessions::{expiry, handle_digest, new_approval_id, new_handle, new_session_id};
use super::{
    Approval, ApprovalDecision, ApprovalError, Begin, Commit, CommitOutcome, EscalatedRequest, NewSession,
    RateCheck, Session, SessionLookup, Started, StateError, StateSnapshot, Store, TokenRecord, TokenStatus,
};
use crate::policy::{StateWrite, Usage, WorkflowState};

/// Pruning starts once a map holds this many entries, and runs again each
/// time the map has doubled since: amortised O(1) per insert.
pub(super) const PRUNE_MIN: usize = 1024;
/// An expired session is kept this long, so its handle still reports
/// `Expired` (an actionable error) rather than `Unknown`.
pub(super) const EXPIRED_GRACE_MS: u64 = 15 * 60 * 1000;

/// Sessions, handles, tokens and workflow state, in memory (and, when
/// durable, in an embedded database).
pub struct MemoryStore {
    pub(super) inner: RwLock<Inner>,
    journal: Option<Journal>,
}

impl Drop for MemoryStore {
    /// Hand over what `begin` left queued, so that a clean shutdown keeps it
    /// (the journal, dropped next, writes everything handed over first).
    fn drop(&mut self) {
        if let (Some(journal), Ok(inner)) = (&self.journal, self.inner.get_mut())
            && !inner.changes.is_empty()
        {
            drop(journal.submit(std::mem::take(&mut inner.changes)));
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) sessions: HashMap<String, SessionEntry>,
    /// sha256(handle) → session id. The handle itself is never stored.
    pub(super) handles: HashMap<[u8; 32], String>,
    pub(super) tokens: HashMap<String, TokenEntry>,
    /// Shared with the snapshots handed out; a write copies on demand.
    pub(super) workflows: HashMap<String, Arc<BTreeMap<String, String>>>,
    /// Workflows revoked as a whole: no session may be created in them.
    revoked_workflows: HashSet<String>,
    pub(super) approvals: HashMap<String, Approval>,
    prune_sessions_at: usize,
    prune_approvals_at: usize,
    prune_tokens_at: usize,
    /// Only when durable: what the current operation changed, for the journal.
    journaling: bool,
    changes: Vec<Change>,
}

#[derive(Debug)]
pub(super) struct SessionEntry {
    pub(super) session: Session,
    handle_digest: [u8; 32],
    requests_total: u64,
    window: Window,
    grants: BTreeMap<String, u32>,
}

#[derive(Debug)]
pub(super) struct TokenEntry {
    record: TokenRecord,
    used: bool,
    revoked: bool,
}

impl MemoryStore {
    /// A store that keeps nothing past the process.
    pub fn new() -> Self {
        MemoryStore {
            inner: RwLock::new(Inner::empty()),
            journal: None,
        }
    }

    /// The embedded durable store: state restored from the SQLite database
    /// at `path` (created if absent), every later change written to it
    /// before the operation answers. With `fsync`, every commit is flushed
    /// to the disk (survives power loss); without, it survives the process
    /// being killed. One process owns a database at a time.
    pub fn durable(path: &Path, fsync: bool, now_ms: u64) -> Result<Self, StateError> {
        let (journal, restored) = Journal::open(path, fsync, now_ms)?;
        Ok(Self::with_journal(journal, restored, now_ms))
    }

    /// A durable store whose database cannot grow past `max_pages`.
    #[cfg(test)]
    pub(super) fn durable_capped(path: &Path, now_ms: u64, max_pages: u32) -> Result<Self, StateError> {
        let (journal, restored) = Journal::open_capped(path, false, now_ms, Some(max_pages))?;
        Ok(Self::with_journal(journal, restored, now_ms))
    }

    fn with_journal(journal: Journal, restored: Restored, now_ms: u64) -> Self {
        let mut inner = Inner::empty();
        inner.restore(restored, now_ms);
        inner.journaling = true;
        MemoryStore {
            inner: RwLock::new(inner),
            journal: Some(journal),
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StateError> {
        self.healthy()?;
        self.inner.read().map_err(|_| poisoned())
    }

    fn healthy(&self) -> Result<(), StateError> {
        match &self.journal {
            Some(j) => j.healthy(),
            None => Ok(()),
        }
    }

    /// Run one read-modify-write under the write lock; hand what it changed
    /// to the journal before the lock is released.
    fn mutate<T, E: From<StateError>>(
        &self,
        op: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> (Result<T, E>, Option<Ticket>) {
        if let Err(e) = self.healthy() {
            return (Err(e.into()), None);
        }
        let mut inner: RwLockWriteGuard<'_, Inner> = match self.inner.write() {
            Ok(guard) => guard,
            Err(_) => return (Err(poisoned().into()), None),
        };
        let result = op(&mut inner);
        let ticket = match &self.journal {
            Some(journal) if !inner.changes.is_empty() => {
                Some(journal.submit(std::mem::take(&mut inner.changes)))
            }
            _ => None,
        };
        (result, ticket)
    }

    /// [`mutate`](Self::mutate) without handing the changes over: they stay
    /// queued, in order, ahead of those of the next operation that does (a
    /// commit, or [`settle`](Store::settle)). One journal hand-off per
    /// request instead of two (perf: the writer thread's wake-ups and
    /// transactions were ~13% of a request's CPU).
    fn mutate_deferred<T, E: From<StateError>>(
        &self,
        op: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> Result<T, E> {
        self.healthy()?;
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        op(&mut inner)
    }

    /// [`mutate`](Self::mutate), answering once the change is durable.
    async fn durably<T, E: From<StateError>>(
        &self,
        op: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> Result<T, E> {
        let (result, ticket) = self.mutate(op);
        if let Some(ticket) = ticket {
            ticket.wait().await?;
        }
        result
    }

    // The synchronous core, without waiting for durability: what the unit
    // tests drive, and what the `Store` impl below wraps.

    pub fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        self.mutate(|i| i.create_session(new, now_ms)).0
    }

    pub fn take_request(
        &self,
        session: &Session,
        per_minute: u32,
        now_ms: u64,
    ) -> Result<RateCheck, StateError> {
        self.mutate(|i| i.take_request(&session.id, per_minute, now_ms)).0
    }

    pub fn commit_allow(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        self.mutate(|i| i.commit_allow(commit)).0
    }

    pub fn record_token(&self, record: TokenRecord) -> Result<(), StateError> {
        self.mutate(|i| i.record_token(record)).0
    }

    pub fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError> {
        if !consume {
            return Ok(self.read()?.peek_token(jti, now_s));
        }
        self.mutate(|i| Ok::<_, StateError>(i.consume_token(jti, now_s)))
            .0
    }

    pub fn revoke_session(&self, id: &str) -> Result<bool, StateError> {
        self.mutate(|i| Ok::<_, StateError>(i.revoke_session(id))).0
    }

    pub fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError> {
        self.mutate(|i| Ok::<_, StateError>(i.revoke_workflow(workflow)))
            .0
    }

    pub fn revoke_token(&self, jti: &str) -> Result<bool, StateError> {
        self.mutate(|i| Ok::<_, StateError>(i.revoke_token(jti))).0
    }

    pub fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError> {
        self.mutate(|i| Ok::<_, StateError>(i.set_workflow_state(workflow, changes)))
            .0
    }

    pub fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        let id = new_approval_id()?;
        self.mutate(|i| i.create_approval(id, request, ttl_ms, now_ms)).0
    }

    pub fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        self.mutate(|i| i.decide_approval(id, approve, approver, note, now_ms))
            .0
    }

    pub fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError> {
        Ok(self.read()?.lookup(&handle_digest(handle), now_ms))
    }

    pub fn get_session(&self, id: &str) -> Result<Option<Session>, StateError> {
        Ok(self.read()?.sessions.get(id).map(|e| e.session.clone()))
    }

    pub fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError> {
        let mut list: Vec<Session> = self
            .read()?
            .sessions
            .values()
            .filter(|e| e.session.is_active(now_ms))
            .map(|e| e.session.clone())
            .collect();
        list.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(list)
    }

    pub fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError> {
        Ok(self.read()?.revoked_workflows.contains(workflow))
    }

    pub fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError> {
        Ok(self
            .read()?
            .workflows
            .get(workflow)
            .map(|w| (**w).clone())
            .unwrap_or_default())
    }

    pub fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        Ok(self.read()?.approvals.get(id).cloned())
    }

    pub fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError> {
        let mut list: Vec<Approval> = self
            .read()?
            .approvals
            .values()
            .filter(|a| !pending_only || a.status(now_ms) == "pending")
            .cloned()
            .collect();
        list.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        Ok(list)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryStore");
        d.field("durable", &self.journal.is_some());
        match self.inner.read() {
            Ok(inner) => d
                .field("sessions", &inner.sessions.len())
                .field("tokens", &inner.tokens.len())
                .field("workflows", &inner.workflows.len()),
            Err(_) => d.field("poisoned", &true),
        };
        d.finish()
    }
}

fn poisoned() -> StateError {
    StateError("state store lock poisoned".into())
}

impl Inner {
    fn empty() -> Inner {
        Inner {
            prune_sessions_at: PRUNE_MIN,
            prune_approvals_at: PRUNE_MIN,
            prune_tokens_at: PRUNE_MIN,
            ..Inner::default()
        }
    }

    fn record(&mut self, change: Change) {
        if self.journaling {
            self.changes.push(change);
        }
    }

    /// Load what a journal kept, dropping what has expired since.
    fn restore(&mut self, restored: Restored, now_ms: u64) {
        let mut windows: HashMap<String, Vec<u64>> = HashMap::new();
        for (session, t) in restored.rate_hits {
            windows.entry(session).or_default().push(t);
        }
        let mut grants: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
        for (session, op, n) in restored.grants {
            grants.entry(session).or_default().insert(op, n);
        }
        for row in restored.sessions {
            if now_ms >= row.session.expires_at_ms.saturating_add(EXPIRED_GRACE_MS) {
                continue;
            }
            let id = row.session.id.clone();
            let mut times = windows.remove(&id).unwrap_or_default();
            times.sort_unstable();
            self.handles.insert(row.handle_digest, id.clone());
            self.sessions.insert(
                id.clone(),
                SessionEntry {
                    session: row.session,
                    handle_digest: row.handle_digest,
                    requests_total: row.requests_total,
                    window: Window::from_times(times),
                    grants: grants.remove(&id).unwrap_or_default(),
                },
            );
        }
        for (workflow, key, value) in restored.workflow_state {
            Arc::make_mut(self.workflows.entry(workflow).or_default()).insert(key, value);
        }
        self.revoked_workflows.extend(restored.revoked_workflows);
        let now_s = now_ms / 1000;
        for (record, used, revoked) in restored.tokens {
            if now_s < record.expires_at && self.sessions.contains_key(&record.session) {
                self.tokens.insert(
                    record.jti.clone(),
                    TokenEntry {
                        record,
                        used,
                        revoked,
                    },
                );
            }
        }
        for a in restored.approvals {
            if now_ms < a.expires_at_ms.saturating_add(EXPIRED_GRACE_MS) {
                self.approvals.insert(a.id.clone(), a);
            }
        }
        self.prune_sessions_at = PRUNE_MIN.max(self.sessions.len().saturating_mul(2));
        self.prune_tokens_at = PRUNE_MIN.max(self.tokens.len().saturating_mul(2));
        self.prune_approvals_at = PRUNE_MIN.max(self.approvals.len().saturating_mul(2));
    }

    /// Drop sessions expired for longer than the grace period, with their
    /// handles. Runs only when the map has grown past its threshold. (The
    /// journal sweeps its copy by the same rule.)
    fn maybe_prune_sessions(&mut self, now_ms: u64) {
        if self.sessions.len() < self.prune_sessions_at {
            return;
        }
        let handles = &mut self.handles;
        self.sessions.retain(|_, e| {
            let keep = now_ms < e.session.expires_at_ms.saturating_add(EXPIRED_GRACE_MS);
            if !keep {
                handles.remove(&e.handle_digest);
            }
            keep
        });
        self.prune_sessions_at = PRUNE_MIN.max(self.sessions.len().saturating_mul(2));
    }

    /// Drop expired tokens and tokens whose session is gone (both inactive
    /// for good). `now_s` is the issue time of the token being recorded.
    fn maybe_prune_tokens(&mut self, now_s: u64) {
        if self.tokens.len() < self.prune_tokens_at {
            return;
        }
        let sessions = &self.sessions;
        self.tokens
            .retain(|_, t| now_s < t.record.expires_at && sessions.contains_key(&t.record.session));
        self.prune_tokens_at = PRUNE_MIN.max(self.tokens.len().saturating_mul(2));
    }

    /// Drop approvals expired for longer than the grace period.
    fn maybe_prune_approvals(&mut self, now_ms: u64) {
        if self.approvals.len() < self.prune_approvals_at {
            return;
        }
        self.approvals
            .retain(|_, a| now_ms < a.expires_at_ms.saturating_add(EXPIRED_GRACE_MS));
        self.prune_approvals_at = PRUNE_MIN.max(self.approvals.len().saturating_mul(2));
    }

    fn token_active(&self, t: &TokenEntry, now_s: u64) -> bool {
        if t.revoked || (t.record.single_use && t.used) || now_s >= t.record.expires_at {
            return false;
        }
        self.sessions
            .get(&t.record.session)
            .is_some_and(|s| s.session.is_active(now_s.saturating_mul(1000)))
    }

    fn lookup(&self, digest: &[u8; 32], now_ms: u64) -> SessionLookup {
        let Some(entry) = self.handles.get(digest).and_then(|id| self.sessions.get(id)) else {
            return SessionLookup::Unknown;
        };
        let session = entry.session.clone();
        if session.revoked {
            SessionLookup::Revoked(session)
        } else if now_ms >= session.expires_at_ms {
            SessionLookup::Expired(session)
        } else {
            SessionLookup::Active(session)
        }
    }

    fn snapshot(&self, workflow: &str) -> StateSnapshot {
        StateSnapshot::new(
            workflow,
            self.workflows.get(workflow).cloned().unwrap_or_default(),
        )
    }

    fn create_session(&mut self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        let id = new_session_id()?;
        let handle = new_handle()?;
        let digest = handle_digest(&handle);
        let session = Session {
            id,
            agent: new.agent,
            role: new.role,
            workflow: new.workflow,
            on_behalf_of: new.on_behalf_of,
            intent: new.intent,
            created_at_ms: now_ms,
            expires_at_ms: expiry(now_ms, new.ttl),
            revoked: false,
        };
        if self.revoked_workflows.contains(&session.workflow) {
            return Err(StateError(format!(
                "workflow {:?} is revoked; no session can be created in it",
                session.workflow
            )));
        }
        self.maybe_prune_sessions(now_ms);
        if self.sessions.contains_key(&session.id) || self.handles.contains_key(&digest) {
            return Err(StateError("session id or handle collision; not created".into()));
        }
        self.handles.insert(digest, session.id.clone());
        self.sessions.insert(
            session.id.clone(),
            SessionEntry {
                session: session.clone(),
                handle_digest: digest,
                requests_total: 0,
                window: Window::default(),
                grants: BTreeMap::new(),
            },
        );
        self.record(Change::Session {
            session: session.clone(),
            handle_digest: digest,
        });
        Ok((session, handle))
    }

    fn begin(&mut self, b: &Begin<'_>) -> Result<Started, StateError> {
        let lookup = self.lookup(&handle_digest(b.handle), b.now_ms);
        let approval = b.approval.and_then(|id| self.approvals.get(id).cloned());
        let (rate, state) = match &lookup {
            SessionLookup::Active(s) => {
                let per_minute = b.rate_limits.get(&s.role).copied().unwrap_or(0);
                let rate = self.take_request(&s.id, per_minute, b.now_ms)?;
                (Some(rate), self.snapshot(&s.workflow))
            }
            _ => (None, StateSnapshot::default()),
        };
        Ok(Started {
            lookup,
            rate,
            state,
            approval,
        })
    }

    fn take_request(
        &mut self,
        session_id: &str,
        per_minute: u32,
        now_ms: u64,
    ) -> Result<RateCheck, StateError> {
        let entry = self
            .sessions
            .get_mut(session_id)
            .ok_or_else(|| StateError(format!("unknown session {session_id}")))?;
        if entry.session.revoked {
            return Err(StateError(format!("session {session_id} is revoked")));
        }
        if now_ms >= entry.session.expires_at_ms {
            return Err(StateError(format!("session {session_id} has expired")));
        }
        let usage = Usage {
            requests_total: entry.requests_total,
            requests_in_window: entry.window.count(now_ms),
            window_seconds: WINDOW_SECONDS,
            grants: entry.grants.clone(),
            session_started_ms: entry.session.created_at_ms,
            now_ms,
        };
        entry.requests_total = entry.requests_total.saturating_add(1);
        let taken = entry.window.take(per_minute, now_ms);
        let change = Change::Requests {
            session: session_id.to_string(),
            total: entry.requests_total,
            hit_ms: taken.ok(),
        };
        self.record(change);
        Ok(RateCheck {
            allowed: taken.is_ok(),
            usage,
            retry_after: taken.err(),
        })
    }

    fn commit_allow(&mut self, c: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        let entry = self
            .sessions
            .get_mut(c.session_id)
            .ok_or_else(|| StateError(format!("unknown session {}", c.session_id)))?;
        if entry.session.revoked {
            return Err(StateError(format!("session {} is revoked", c.session_id)));
        }
        if entry.session.workflow != c.workflow {
            return Err(StateError(format!(
                "session {} belongs to workflow {:?}, not {:?}",
                c.session_id, entry.session.workflow, c.workflow
            )));
        }
        if let Some(token) = c.token
            && self.tokens.contains_key(&token.jti)
        {
            return Err(StateError(format!("token id {} already recorded", token.jti)));
        }
        // Every check first; only then any change, so a refusal commits nothing.
        let current = self.workflows.get(c.workflow);
        let unchanged = c
            .reads
            .iter()
            .all(|(key, seen)| current.and_then(|w| w.get(key)) == seen.as_ref());
        if !unchanged {
            return Ok(CommitOutcome::StateChanged(StateSnapshot::new(
                c.workflow,
                current.cloned().unwrap_or_default(),
            )));
        }
        let granted = entry.grants.get(c.operation).copied().unwrap_or(0);
        if let Some(limit) = c.max_grants
            && granted >= limit
        {
            return Ok(CommitOutcome::BudgetExhausted { limit });
        }
        let approval = match c.approval {
            None => None,
            Some(id) => match self.approvals.get_mut(id) {
                None => return Ok(CommitOutcome::ApprovalUnusable(format!("no approval {id:?}"))),
                Some(a) if a.request.session != c.session_id => {
                    return Ok(CommitOutcome::ApprovalUnusable(format!(
                        "approval {id} was given to another session"
                    )));
                }
                Some(a) => match a.usable(c.now_ms).map(|(who, at)| (who.to_string(), at)) {
                    Some((approver, decided_at_ms)) => Some((a, approver, decided_at_ms)),
                    None => {
                        return Ok(CommitOutcome::ApprovalUnusable(format!(
                            "approval {id} is {}",
                            a.status(c.now_ms)
                        )));
                    }
                },
            },
        };
        let mut changes = Vec::new();
        if let Some((a, approver, decided_at_ms)) = approval {
            a.decision = ApprovalDecision::Used {
                approver,
                decided_at_ms,
                used_at_ms: c.now_ms,
            };
            changes.push(Change::Approval(a.clone()));
        }
        let count = granted.saturating_add(1);
        entry.grants.insert(c.operation.to_string(), count);
        changes.push(Change::Grant {
            session: c.session_id.to_string(),
            operation: c.operation.to_string(),
            count,
        });
        if !c.writes.is_empty() {
            let state = Arc::make_mut(self.workflows.entry(c.workflow.to_string()).or_default());
            let written = apply_writes(state, c.writes);
            changes.push(Change::WorkflowKeys {
                workflow: c.workflow.to_string(),
                values: written,
            });
        }
        for change in changes {
            self.record(change);
        }
        if let Some(token) = c.token {
            self.insert_token(token.clone());
        }
        Ok(CommitOutcome::Committed)
    }

    fn insert_token(&mut self, record: TokenRecord) {
        self.maybe_prune_tokens(record.issued_at);
        self.record(Change::Token {
            record: record.clone(),
            used: false,
            revoked: false,
        });
        self.tokens.insert(
            record.jti.clone(),
            TokenEntry {
                record,
                used: false,
                revoked: false,
            },
        );
    }

    fn record_token(&mut self, record: TokenRecord) -> Result<(), StateError> {
        if self.tokens.contains_key(&record.jti) {
            return Err(StateError(format!("token id {} already recorded", record.jti)));
        }
        self.insert_token(record);
        Ok(())
    }

    fn peek_token(&self, jti: &str, now_s: u64) -> TokenStatus {
        match self.tokens.get(jti) {
            Some(t) if self.token_active(t, now_s) => TokenStatus::Active(t.record.clone()),
            _ => TokenStatus::Inactive,
        }
    }

    fn consume_token(&mut self, jti: &str, now_s: u64) -> TokenStatus {
        let active = self.tokens.get(jti).is_some_and(|t| self.token_active(t, now_s));
        let Some(t) = self.tokens.get_mut(jti).filter(|_| active) else {
            return TokenStatus::Inactive;
        };
        let status = TokenStatus::Active(t.record.clone());
        if t.record.single_use {
            t.used = true;
            let change = token_change(t);
            self.record(change);
        }
        status
    }

    fn revoke_token(&mut self, jti: &str) -> bool {
        let Some(t) = self.tokens.get_mut(jti) else {
            return false;
        };
        t.revoked = true;
        let change = token_change(t);
        self.record(change);
        true
    }

    fn revoke_session(&mut self, id: &str) -> bool {
        let Some(entry) = self.sessions.get_mut(id) else {
            return false;
        };
        entry.session.revoked = true;
        let change = Change::Session {
            session: entry.session.clone(),
            handle_digest: entry.handle_digest,
        };
        self.record(change);
        true
    }

    fn revoke_workflow(&mut self, workflow: &str) -> Vec<String> {
        self.revoked_workflows.insert(workflow.to_string());
        let mut revoked: Vec<String> = Vec::new();
        let mut changes = vec![Change::WorkflowRevoked(workflow.to_string())];
        for entry in self.sessions.values_mut() {
            if entry.session.workflow == workflow && !entry.session.revoked {
                entry.session.revoked = true;
                revoked.push(entry.session.id.clone());
                changes.push(Change::Session {
                    session: entry.session.clone(),
                    handle_digest: entry.handle_digest,
                });
            }
        }
        for change in changes {
            self.record(change);
        }
        revoked.sort();
        revoked
    }

    fn set_workflow_state(
        &mut self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> BTreeMap<String, String> {
        let state = Arc::make_mut(self.workflows.entry(workflow.to_string()).or_default());
        for (key, value) in changes {
            match value {
                Some(v) => state.insert(key.clone(), v.clone()),
                None => state.remove(key),
            };
        }
        let after = state.clone();
        self.record(Change::WorkflowKeys {
            workflow: workflow.to_string(),
            values: changes.to_vec(),
        });
        after
    }

    fn create_approval(
        &mut self,
        id: String,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        let approval = Approval {
            id,
            request,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            decision: ApprovalDecision::Pending,
        };
        self.maybe_prune_approvals(now_ms);
        if self.approvals.contains_key(&approval.id) {
            return Err(StateError("approval id collision; not created".into()));
        }
        self.approvals.insert(approval.id.clone(), approval.clone());
        self.record(Change::Approval(approval.clone()));
        Ok(approval)
    }

    fn decide_approval(
        &mut self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        let approval = self
            .approvals
            .get_mut(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let status = approval.status(now_ms);
        if status != "pending" {
            return Err(ApprovalError::NotPending {
                id: id.to_string(),
                status,
            });
        }
        let approver = approver.to_string();
        approval.decision = if approve {
            ApprovalDecision::Approved {
                approver,
                decided_at_ms: now_ms,
                note,
            }
        } else {
            ApprovalDecision::Denied {
                approver,
                decided_at_ms: now_ms,
                note,
            }
        };
        let decided = approval.clone();
        self.record(Change::Approval(decided.clone()));
        Ok(decided)
    }
}

fn token_change(t: &TokenEntry) -> Change {
    Change::Token {
        record: t.record.clone(),
        used: t.used,
        revoked: t.revoked,
    }
}

/// Apply a policy's writes in order, as the `state` import saw them.
/// Returns the final value of each key written.
fn apply_writes(
    state: &mut BTreeMap<String, String>,
    writes: &[StateWrite],
) -> Vec<(String, Option<String>)> {
    let mut written: Vec<String> = Vec::new();
    for write in writes {
        let key = match write {
            StateWrite::Set { key, value } => {
                state.insert(key.clone(), value.clone());
                key
            }
            StateWrite::Incr { key, delta } => {
                // As the `state.incr` import: absent or non-integer counts as 0.
                let n = state
                    .get(key)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
                    .saturating_add(*delta);
                state.insert(key.clone(), n.to_string());
                key
            }
        };
        if !written.contains(key) {
            written.push(key.clone());
        }
    }
    written
        .into_iter()
        .map(|k| {
            let v = state.get(&k).cloned();
            (k, v)
        })
        .collect()
}

/// The live view, for tools and tests (the proxy reads through snapshots).
impl WorkflowState for MemoryStore {
    fn get(&self, workflow: &str, key: &str) -> Result<Option<String>, StateError> {
        let inner = self.read()?;
        Ok(inner.workflows.get(workflow).and_then(|w| w.get(key)).cloned())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        if self.journal.is_some() {
            "sqlite"
        } else {
            "memory"
        }
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.healthy()
    }

    async fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        self.durably(|i| i.create_session(new, now_ms)).await
    }

    async fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError> {
        MemoryStore::lookup_handle(self, handle, now_ms)
    }

    async fn begin(&self, begin: &Begin<'_>) -> Result<Started, StateError> {
        // Neither handed to the journal nor waited for: the commit of this
        // request's allow (or `settle`, for a refusal) hands this count over
        // ahead of its own changes and answers once both are durable.
        self.mutate_deferred(|i| i.begin(begin))
    }

    async fn settle(&self) -> Result<(), StateError> {
        self.healthy()?;
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        // Under the lock, as every hand-over: the journal sees changes in
        // the order they were made. An empty batch still waits for the ones
        // other operations handed over before it.
        let ticket = {
            let mut inner = self.inner.write().map_err(|_| poisoned())?;
            journal.submit(std::mem::take(&mut inner.changes))
        };
        ticket.wait().await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StateError> {
        MemoryStore::get_session(self, id)
    }

    async fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError> {
        MemoryStore::list_sessions(self, now_ms)
    }

    async fn revoke_session(&self, id: &str) -> Result<bool, StateError> {
        self.durably(|i| Ok::<_, StateError>(i.revoke_session(id))).await
    }

    async fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError> {
        self.durably(|i| Ok::<_, StateError>(i.revoke_workflow(workflow)))
            .await
    }

    async fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError> {
        MemoryStore::workflow_revoked(self, workflow)
    }

    async fn commit_allow(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        self.durably(|i| i.commit_allow(commit)).await
    }

    async fn record_token(&self, record: TokenRecord) -> Result<(), StateError> {
        self.durably(|i| i.record_token(record)).await
    }

    async fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError> {
        if !consume {
            return Ok(self.read()?.peek_token(jti, now_s));
        }
        self.durably(|i| Ok::<_, StateError>(i.consume_token(jti, now_s)))
            .await
    }

    async fn revoke_token(&self, jti: &str) -> Result<bool, StateError> {
        self.durably(|i| Ok::<_, StateError>(i.revoke_token(jti))).await
    }

    async fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError> {
        MemoryStore::workflow_state(self, workflow)
    }

    async fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError> {
        self.durably(|i| Ok::<_, StateError>(i.set_workflow_state(workflow, changes)))
            .await
    }

    async fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        let id = new_approval_id()?;
        self.durably(|i| i.create_approval(id, request, ttl_ms, now_ms))
            .await
    }

    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        MemoryStore::get_approval(self, id)
    }

    async fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError> {
        MemoryStore::list_approvals(self, now_ms, pending_only)
    }

    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        self.durably(|i| i.decide_approval(id, approve, approver, note, now_ms))
            .await
    }
}

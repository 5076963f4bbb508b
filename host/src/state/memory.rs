//! The in-process store: everything behind one `RwLock`, so each operation
//! of [`Store`] is atomic simply by holding the lock for its duration. Reads
//! (handle lookups, policy state reads, peeks) share the lock; every
//! read-modify-write takes it exclusively for a few map operations.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::rate::{WINDOW_SECONDS, Window};
use super::sessions::{expiry, handle_digest, new_approval_id, new_handle, new_session_id};
use super::{
    Approval, ApprovalDecision, ApprovalError, Commit, CommitOutcome, EscalatedRequest, NewSession,
    RateCheck, Session, SessionLookup, StateError, Store, TokenRecord, TokenStatus,
};
use crate::policy::{StateWrite, Usage, WorkflowState};

/// Pruning starts once a map holds this many entries, and runs again each
/// time the map has doubled since: amortised O(1) per insert.
pub(super) const PRUNE_MIN: usize = 1024;
/// An expired session is kept this long, so its handle still reports
/// `Expired` (an actionable error) rather than `Unknown`.
pub(super) const EXPIRED_GRACE_MS: u64 = 15 * 60 * 1000;

/// Sessions, handles, tokens and workflow state, in memory.
pub struct MemoryStore {
    pub(super) inner: RwLock<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) sessions: HashMap<String, SessionEntry>,
    /// sha256(handle) → session id. The handle itself is never stored.
    pub(super) handles: HashMap<[u8; 32], String>,
    pub(super) tokens: HashMap<String, TokenEntry>,
    pub(super) workflows: HashMap<String, BTreeMap<String, String>>,
    /// Workflows revoked as a whole: no session may be created in them.
    revoked_workflows: std::collections::HashSet<String>,
    pub(super) approvals: HashMap<String, Approval>,
    prune_sessions_at: usize,
    prune_approvals_at: usize,
    prune_tokens_at: usize,
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
    pub fn new() -> Self {
        MemoryStore {
            inner: RwLock::new(Inner {
                sessions: HashMap::new(),
                handles: HashMap::new(),
                tokens: HashMap::new(),
                workflows: HashMap::new(),
                revoked_workflows: Default::default(),
                approvals: HashMap::new(),
                prune_sessions_at: PRUNE_MIN,
                prune_approvals_at: PRUNE_MIN,
                prune_tokens_at: PRUNE_MIN,
            }),
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StateError> {
        self.inner.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, StateError> {
        self.inner.write().map_err(|_| poisoned())
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
    /// Drop sessions expired for longer than the grace period, with their
    /// handles. Runs only when the map has grown past its threshold.
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
}

impl WorkflowState for MemoryStore {
    fn get(&self, workflow: &str, key: &str) -> Result<Option<String>, StateError> {
        let inner = self.read()?;
        Ok(inner.workflows.get(workflow).and_then(|w| w.get(key)).cloned())
    }
}

impl Store for MemoryStore {
    fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        // Randomness is drawn before taking the lock.
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
        let mut inner = self.write()?;
        if inner.revoked_workflows.contains(&session.workflow) {
            return Err(StateError(format!(
                "workflow {:?} is revoked; no session can be created in it",
                session.workflow
            )));
        }
        inner.maybe_prune_sessions(now_ms);
        if inner.sessions.contains_key(&session.id) || inner.handles.contains_key(&digest) {
            return Err(StateError("session id or handle collision; not created".into()));
        }
        inner.handles.insert(digest, session.id.clone());
        inner.sessions.insert(
            session.id.clone(),
            SessionEntry {
                session: session.clone(),
                handle_digest: digest,
                requests_total: 0,
                window: Window::default(),
                grants: BTreeMap::new(),
            },
        );
        Ok((session, handle))
    }

    fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError> {
        let digest = handle_digest(handle);
        let inner = self.read()?;
        let Some(entry) = inner.handles.get(&digest).and_then(|id| inner.sessions.get(id)) else {
            return Ok(SessionLookup::Unknown);
        };
        let session = entry.session.clone();
        Ok(if session.revoked {
            SessionLookup::Revoked(session)
        } else if now_ms >= session.expires_at_ms {
            SessionLookup::Expired(session)
        } else {
            SessionLookup::Active(session)
        })
    }

    fn get_session(&self, id: &str) -> Result<Option<Session>, StateError> {
        Ok(self.read()?.sessions.get(id).map(|e| e.session.clone()))
    }

    fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError> {
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

    fn revoke_session(&self, id: &str) -> Result<bool, StateError> {
        let mut inner = self.write()?;
        Ok(match inner.sessions.get_mut(id) {
            Some(entry) => {
                entry.session.revoked = true;
                true
            }
            None => false,
        })
    }

    fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError> {
        let mut inner = self.write()?;
        inner.revoked_workflows.insert(workflow.to_string());
        let mut revoked: Vec<String> = Vec::new();
        for entry in inner.sessions.values_mut() {
            if entry.session.workflow == workflow && !entry.session.revoked {
                entry.session.revoked = true;
                revoked.push(entry.session.id.clone());
            }
        }
        revoked.sort();
        Ok(revoked)
    }

    fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError> {
        Ok(self.read()?.revoked_workflows.contains(workflow))
    }

    fn take_request(&self, session: &Session, per_minute: u32, now_ms: u64) -> Result<RateCheck, StateError> {
        let mut inner = self.write()?;
        let entry = inner
            .sessions
            .get_mut(&session.id)
            .ok_or_else(|| StateError(format!("unknown session {}", session.id)))?;
        if entry.session.revoked {
            return Err(StateError(format!("session {} is revoked", session.id)));
        }
        if now_ms >= entry.session.expires_at_ms {
            return Err(StateError(format!("session {} has expired", session.id)));
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
        let retry_after = entry.window.take(per_minute, now_ms).err();
        Ok(RateCheck {
            allowed: retry_after.is_none(),
            usage,
            retry_after,
        })
    }

    fn commit_allow(&self, c: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        let mut inner = self.write()?;
        let inner = &mut *inner;
        let entry = inner
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
        // Every check first; only then any change, so a refusal commits nothing.
        let current = inner.workflows.get(c.workflow);
        let unchanged = c
            .reads
            .iter()
            .all(|(key, seen)| current.and_then(|w| w.get(key)) == seen.as_ref());
        if !unchanged {
            return Ok(CommitOutcome::StateChanged);
        }
        let granted = entry.grants.get(c.operation).copied().unwrap_or(0);
        if let Some(limit) = c.max_grants
            && granted >= limit
        {
            return Ok(CommitOutcome::BudgetExhausted { limit });
        }
        let approval = match c.approval {
            None => None,
            Some(id) => match inner.approvals.get_mut(id) {
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
        if let Some((a, approver, decided_at_ms)) = approval {
            a.decision = ApprovalDecision::Used {
                approver,
                decided_at_ms,
                used_at_ms: c.now_ms,
            };
        }
        if !c.writes.is_empty() {
            let state = inner.workflows.entry(c.workflow.to_string()).or_default();
            apply_writes(state, c.writes);
        }
        entry
            .grants
            .insert(c.operation.to_string(), granted.saturating_add(1));
        Ok(CommitOutcome::Committed)
    }

    fn record_token(&self, record: TokenRecord) -> Result<(), StateError> {
        let mut inner = self.write()?;
        inner.maybe_prune_tokens(record.issued_at);
        if inner.tokens.contains_key(&record.jti) {
            return Err(StateError(format!("token id {} already recorded", record.jti)));
        }
        inner.tokens.insert(
            record.jti.clone(),
            TokenEntry {
                record,
                used: false,
                revoked: false,
            },
        );
        Ok(())
    }

    fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError> {
        if !consume {
            let inner = self.read()?;
            return Ok(match inner.tokens.get(jti) {
                Some(t) if inner.token_active(t, now_s) => TokenStatus::Active(t.record.clone()),
                _ => TokenStatus::Inactive,
            });
        }
        let mut inner = self.write()?;
        let active = match inner.tokens.get(jti) {
            Some(t) => inner.token_active(t, now_s),
            None => false,
        };
        match inner.tokens.get_mut(jti) {
            Some(t) if active => {
                if t.record.single_use {
                    t.used = true;
                }
                Ok(TokenStatus::Active(t.record.clone()))
            }
            _ => Ok(TokenStatus::Inactive),
        }
    }

    fn revoke_token(&self, jti: &str) -> Result<bool, StateError> {
        let mut inner = self.write()?;
        Ok(match inner.tokens.get_mut(jti) {
            Some(t) => {
                t.revoked = true;
                true
            }
            None => false,
        })
    }

    fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError> {
        Ok(self.read()?.workflows.get(workflow).cloned().unwrap_or_default())
    }

    fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError> {
        let mut inner = self.write()?;
        let state = inner.workflows.entry(workflow.to_string()).or_default();
        for (key, value) in changes {
            match value {
                Some(v) => state.insert(key.clone(), v.clone()),
                None => state.remove(key),
            };
        }
        Ok(state.clone())
    }

    fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        let approval = Approval {
            id: new_approval_id()?,
            request,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            decision: ApprovalDecision::Pending,
        };
        let mut inner = self.write()?;
        inner.maybe_prune_approvals(now_ms);
        if inner.approvals.contains_key(&approval.id) {
            return Err(StateError("approval id collision; not created".into()));
        }
        inner.approvals.insert(approval.id.clone(), approval.clone());
        Ok(approval)
    }

    fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        Ok(self.read()?.approvals.get(id).cloned())
    }

    fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError> {
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

    fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        let mut inner = self.write()?;
        let approval = inner
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
        Ok(approval.clone())
    }
}

/// Apply a policy's writes in order, as the `state` import saw them.
fn apply_writes(state: &mut BTreeMap<String, String>, writes: &[StateWrite]) {
    for write in writes {
        match write {
            StateWrite::Set { key, value } => {
                state.insert(key.clone(), value.clone());
            }
            StateWrite::Incr { key, delta } => {
                // As the `state.incr` import: absent or non-integer counts as 0.
                let n = state
                    .get(key)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
                    .saturating_add(*delta);
                state.insert(key.clone(), n.to_string());
            }
        }
    }
}

//! A store that records how long each operation of the store it wraps took
//! and whether it failed, into the metrics. Changes nothing it passes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{
    Approval, ApprovalError, Begin, Commit, CommitOutcome, EscalatedRequest, NewSession, Session,
    SessionLookup, Started, StateError, Store, TokenRecord, TokenStatus,
};
use crate::metrics::Metrics;

/// `inner`, observed.
pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Metered {
        Metered { inner, metrics }
    }

    async fn timed<T, E>(&self, op: &'static str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.state_op(op, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait::async_trait]
impl Store for Metered {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        self.timed("create_session", self.inner.create_session(new, now_ms))
            .await
    }

    async fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError> {
        self.timed("lookup_handle", self.inner.lookup_handle(handle, now_ms))
            .await
    }

    async fn begin(&self, begin: &Begin<'_>) -> Result<Started, StateError> {
        self.timed("begin", self.inner.begin(begin)).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StateError> {
        self.timed("get_session", self.inner.get_session(id)).await
    }

    async fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError> {
        self.timed("list_sessions", self.inner.list_sessions(now_ms))
            .await
    }

    async fn revoke_session(&self, id: &str) -> Result<bool, StateError> {
        self.timed("revoke_session", self.inner.revoke_session(id)).await
    }

    async fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError> {
        self.timed("revoke_workflow", self.inner.revoke_workflow(workflow))
            .await
    }

    async fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError> {
        self.timed("workflow_revoked", self.inner.workflow_revoked(workflow))
            .await
    }

    async fn commit_allow(&self, commit: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        self.timed("commit", self.inner.commit_allow(commit)).await
    }

    async fn settle(&self) -> Result<(), StateError> {
        self.timed("settle", self.inner.settle()).await
    }

    async fn record_token(&self, record: TokenRecord) -> Result<(), StateError> {
        self.timed("record_token", self.inner.record_token(record)).await
    }

    async fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError> {
        self.timed("token_status", self.inner.token_status(jti, now_s, consume))
            .await
    }

    async fn revoke_token(&self, jti: &str) -> Result<bool, StateError> {
        self.timed("revoke_token", self.inner.revoke_token(jti)).await
    }

    async fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError> {
        self.timed("workflow_state", self.inner.workflow_state(workflow))
            .await
    }

    async fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError> {
        self.timed(
            "set_workflow_state",
            self.inner.set_workflow_state(workflow, changes),
        )
        .await
    }

    async fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        self.timed(
            "create_approval",
            self.inner.create_approval(request, ttl_ms, now_ms),
        )
        .await
    }

    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        self.timed("get_approval", self.inner.get_approval(id)).await
    }

    async fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError> {
        self.timed("list_approvals", self.inner.list_approvals(now_ms, pending_only))
            .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        // Only the store failing is an error here, not a refused decision.
        let started = Instant::now();
        let result = self
            .inner
            .decide_approval(id, approve, approver, note, now_ms)
            .await;
        let failed = matches!(result, Err(ApprovalError::Store(_)));
        self.metrics
            .state_op("decide_approval", started.elapsed(), !failed);
        result
    }
}

//! Shadow evaluation: a role's candidate version decides every request too,
//! on a blocking thread of its own, after the enforced decision and without
//! any effect on it. Its state writes are dropped; a disagreement becomes a
//! `shadow` audit record and a metric.
//!
//! At most [`SLOTS`] candidates evaluate at once: a slow or looping
//! candidate fills its slots and further ones are skipped (and counted),
//! never queued behind the real traffic.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::audit::{AuditEvent, AuditLog, ShadowRecord};
use crate::capture::{RecordedVerdict, difference};
use crate::metrics::Metrics;
use crate::policy::{Candidate, Limits, PolicyRequest, Verdict, WorkflowState};

/// Candidate evaluations in flight at most.
pub const SLOTS: usize = 2;

/// Where candidates run; one per process.
pub struct Shadows {
    slots: Arc<Semaphore>,
}

impl Default for Shadows {
    fn default() -> Self {
        Shadows {
            slots: Arc::new(Semaphore::new(SLOTS)),
        }
    }
}

/// One decision to evaluate again with the candidate.
pub(super) struct ShadowJob {
    pub candidate: Arc<Candidate>,
    pub decision_id: String,
    pub enforced_digest: String,
    pub enforced: Verdict,
    pub request: Arc<PolicyRequest>,
    pub state: Arc<dyn WorkflowState>,
    pub limits: Limits,
}

impl Shadows {
    /// Start `job` off the request path; returns at once.
    pub(super) fn spawn(&self, job: ShadowJob, audit: AuditLog, metrics: Arc<Metrics>) {
        let role = job.request.principal.role.clone();
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            metrics.shadow_decision(&role, "skipped");
            return;
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let evaluation = job
                .candidate
                .module
                .evaluate(&job.request, job.state, &job.limits);
            let enforced = RecordedVerdict::of(&job.enforced);
            let candidate = RecordedVerdict::of(&evaluation.verdict);
            let Some(change) = difference(&enforced, &candidate) else {
                metrics.shadow_decision(&role, "agree");
                return;
            };
            metrics.shadow_decision(&role, "disagree");
            let record = ShadowRecord {
                decision_id: job.decision_id,
                role,
                change,
                enforced_digest: job.enforced_digest,
                enforced_verdict: enforced.verdict,
                enforced_reason: enforced.reason,
                candidate_digest: job.candidate.module.info().digest.clone(),
                candidate_verdict: candidate.verdict,
                candidate_reason: candidate.reason,
            };
            if let Err(e) = audit.append(AuditEvent::Shadow(record)) {
                tracing::error!(error = %e, "auditing a shadow disagreement failed");
            }
        });
    }
}

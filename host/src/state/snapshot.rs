//! A consistent view of one workflow's committed state, taken when a
//! request starts: what the policy reads while it decides.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::StateError;
use crate::policy::WorkflowState;

/// One workflow's state at one moment. Cheap to clone (shared).
///
/// The policy reads through it, so a decision never waits on the store
/// while it runs; the keys it read are checked again at commit
/// ([`CommitOutcome::StateChanged`](super::CommitOutcome::StateChanged)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSnapshot {
    workflow: String,
    values: Arc<BTreeMap<String, String>>,
}

impl StateSnapshot {
    pub fn new(workflow: impl Into<String>, values: Arc<BTreeMap<String, String>>) -> Self {
        StateSnapshot {
            workflow: workflow.into(),
            values,
        }
    }

    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

impl WorkflowState for StateSnapshot {
    fn get(&self, workflow: &str, key: &str) -> Result<Option<String>, StateError> {
        if workflow != self.workflow {
            // The engine reads only the principal's workflow; anything else
            // is a wiring bug, refused rather than answered with nothing.
            return Err(StateError(format!(
                "snapshot of workflow {:?} asked for workflow {workflow:?}",
                self.workflow
            )));
        }
        Ok(self.values.get(key).cloned())
    }
}

//! What the engine needs from workflow state: reads. Writes are returned in
//! the [`Evaluation`](super::Evaluation) for the caller to commit on allow;
//! the engine never commits anything itself.

use std::collections::HashMap;
use std::sync::Mutex;

/// A state store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// Read access to workflow-scoped state.
pub trait WorkflowState: Send + Sync + 'static {
    fn get(&self, workflow: &str, key: &str) -> Result<Option<String>, StateError>;
}

/// No state at all: every key is absent.
pub struct NoState;

impl WorkflowState for NoState {
    fn get(&self, _: &str, _: &str) -> Result<Option<String>, StateError> {
        Ok(None)
    }
}

/// A map of `(workflow, key) → value`, for tools and tests.
#[derive(Default)]
pub struct MemoryState(pub Mutex<HashMap<(String, String), String>>);

impl MemoryState {
    pub fn set(&self, workflow: &str, key: &str, value: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((workflow.into(), key.into()), value.into());
        }
    }
}

impl WorkflowState for MemoryState {
    fn get(&self, workflow: &str, key: &str) -> Result<Option<String>, StateError> {
        let m = self
            .0
            .lock()
            .map_err(|_| StateError("state lock poisoned".into()))?;
        Ok(m.get(&(workflow.to_string(), key.to_string())).cloned())
    }
}

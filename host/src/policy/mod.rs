//! The policy engine: loads WebAssembly policy components, checks them
//! against the `airlock:policy` world, and evaluates each request in a fresh
//! sandboxed instance under fuel, memory and deadline limits (for large
//! components, instances are made ahead of use: see `spares`).
//!
//! This module knows nothing of HTTP, tokens or audit: it turns a
//! [`PolicyRequest`] into an [`Evaluation`], and the [`Registry`] maps roles
//! to the policy version that decides for them.

mod bindings;
mod contract;
mod engine;
mod limits;
mod registry;
mod spares;
mod state_view;
mod trust;
mod types;
mod verdict;

pub use engine::{
    Engine, EngineConfig, Evaluation, LARGE_COMPONENT_BYTES, LoadError, PolicyInfo, PolicyModule, Visibility,
};
pub use limits::Limits;
/// The bounds of the policy contract (state key and value sizes, writes per decision).
pub(crate) use limits::bounds as limits_bounds;
pub use limits::bounds::RESERVED_CLAIMS;
pub use registry::{
    Candidate, PolicyDir, Registry, RegistryError, ReloadOutcome, RoleBinding, RolePolicy, Watcher,
};
pub use state_view::{MemoryState, NoState, StateError, WorkflowState};
pub use trust::{BadTrustedKey, SIGNATURE_SUFFIX, SignatureError, TrustedKeys, sign_module};
pub use types::{
    Action, Approval, Failure, FailureClass, Grant, Listing, LogLevel, LogRecord, McpCall, Pairs,
    PolicyRequest, Principal, StateWrite, Usage, Verdict,
};

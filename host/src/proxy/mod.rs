//! The data plane: agents call `/{service}/{path}` with their session handle.
//!
//! This module owns the request pipeline (`pipeline.rs`): it asks the policy
//! engine, the token service and the state store, forwards upstream and
//! writes the audit record. It is the only module that speaks HTTP to agents
//! and upstreams.

mod approval;
mod headers;
mod mcp;
mod pipeline;
mod reply;
mod route;
mod shadow;
mod upstream;

pub use mcp::McpSessions;
pub use pipeline::{ProxyBody, handle, now_ms, random_id};
pub use reply::Refusal;
pub use route::{RouteMatch, RouteTable, percent_decode};
pub use shadow::Shadows;
pub use upstream::{Secret, Service, ServiceError, services};

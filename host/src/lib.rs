//! Airlock: a WebAssembly policy-plugin host for AI agents.
//!
//! Data flows one way: proxy → policy → token → upstream → audit. This crate
//! so far holds the policy engine ([`policy`]) and the policy build step
//! ([`build`]); see ARCHITECTURE.md for the map.

pub mod build;
pub mod policy;

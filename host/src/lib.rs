//! Airlock: a WebAssembly policy-plugin host for AI agents.
//!
//! Data flows one way: proxy → policy → token → upstream → audit. This crate
//! so far holds the policy engine ([`policy`]), the policy build step
//! ([`build`]) and the configuration ([`config`]); see ARCHITECTURE.md.

pub mod audit;
pub mod build;
pub mod config;
pub mod policy;
pub mod state;
pub mod token;

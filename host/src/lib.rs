//! Airlock: a WebAssembly policy-plugin host for AI agents.
//!
//! Data flows one way: [`proxy`] → [`policy`] → [`token`] → upstream →
//! [`audit`], with [`state`] for sessions, budgets and tokens, [`admin`] for
//! the control plane and [`server`] wiring them from a [`config`]. See
//! ARCHITECTURE.md for the map.

pub mod admin;
pub mod audit;
pub mod build;
pub mod capture;
pub mod config;
pub mod demo;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod state;
pub mod token;

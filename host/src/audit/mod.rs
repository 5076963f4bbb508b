//! The audit log: one hash-chained JSON line per decision or control-plane action.
//!
//! ```text
//! {"seq":1,"time":"2026-05-01T09:30:00.123Z","prev":"000…0","hash":"9f2c…","kind":"decision","agent":…}
//! ```
//!
//! Each record's `hash` covers its content and the previous record's hash,
//! so [`verify`] finds the first record that was edited, inserted, removed or
//! moved (`chain.rs` defines the canonical form that is hashed). Records hold
//! identifiers only: a decision names its token by `jti`, never the token.
//!
//! [`AuditLog`] is the one writer (a file lock keeps out a second process);
//! an append that fails leaves nothing behind and must make the caller deny.
//! A bare hash chain cannot reveal records cut off its end, nor a forger who
//! rewrites the last record and recomputes its hash: keeping the latest
//! `seq`/`hash` somewhere else closes that.

mod chain;
mod flat;
mod log;
mod record;
mod verify;

pub use log::{AuditError, AuditLog};
pub use record::{AdminRecord, AuditEvent, DecisionRecord, OutcomeRecord, ShadowRecord};
pub use verify::{VerifyError, tail, verify};

#[cfg(test)]
mod tests;

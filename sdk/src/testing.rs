//! Native test harness: run a policy's `evaluate` with plain `cargo test`.
//!
//! The harness plays the host's part for the imports: an in-memory workflow
//! state whose writes commit only when the verdict is allow (as the real host
//! does), and a log recorder.
//!
//! ```ignore
//! let mut h = Harness::<MyPolicy>::new();
//! let grant = h.expect_allow(&Request::builder("code", "GET", "/x").build());
//! assert_eq!(grant.scopes, ["read"]);
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::log::Level;
use crate::{Grant, Listing, Policy, Request, Verdict};

/// One log record a policy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

#[derive(Default)]
struct Evaluation {
    committed: BTreeMap<String, String>,
    writes: BTreeMap<String, String>,
    logs: Vec<LogRecord>,
}

thread_local! {
    static CURRENT: RefCell<Evaluation> = RefCell::new(Evaluation::default());
}

pub(crate) fn state_get(key: &str) -> Option<String> {
    CURRENT.with_borrow(|e| e.writes.get(key).or_else(|| e.committed.get(key)).cloned())
}

pub(crate) fn state_set(key: &str, value: &str) {
    CURRENT.with_borrow_mut(|e| {
        e.writes.insert(key.to_string(), value.to_string());
    })
}

pub(crate) fn state_incr(key: &str, delta: i64) -> i64 {
    let current = state_get(key).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let next = current.saturating_add(delta);
    state_set(key, &next.to_string());
    next
}

pub(crate) fn record_log(level: Level, message: &str, fields: &[(&str, &str)]) {
    CURRENT.with_borrow_mut(|e| {
        e.logs.push(LogRecord {
            level,
            message: message.to_string(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    })
}

/// Runs a policy natively, with an in-memory workflow state.
pub struct Harness<P: Policy> {
    state: BTreeMap<String, String>,
    logs: Vec<LogRecord>,
    policy: PhantomData<P>,
}

impl<P: Policy> Default for Harness<P> {
    fn default() -> Self {
        Harness {
            state: BTreeMap::new(),
            logs: Vec::new(),
            policy: PhantomData,
        }
    }
}

impl<P: Policy> Harness<P> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start from a workflow state where `key` is `value`.
    pub fn with_state(mut self, key: &str, value: &str) -> Self {
        self.state.insert(key.into(), value.into());
        self
    }

    /// Evaluate one request. The policy's state writes are committed when
    /// the verdict is allow and discarded otherwise, as in the host.
    pub fn evaluate(&mut self, request: &Request) -> Verdict {
        CURRENT.with_borrow_mut(|e| {
            *e = Evaluation {
                committed: self.state.clone(),
                ..Evaluation::default()
            }
        });
        let verdict = P::evaluate(request);
        let done = CURRENT.take();
        if verdict.is_allow() {
            self.state.extend(done.writes);
        }
        self.logs.extend(done.logs);
        verdict
    }

    /// Evaluate and return the grant; panics with the reason otherwise.
    #[track_caller]
    pub fn expect_allow(&mut self, request: &Request) -> Grant {
        match self.evaluate(request) {
            Verdict::Allow(grant) => grant,
            other => panic!("expected allow, got {other:?}"),
        }
    }

    /// Evaluate and return the deny reason; panics on any other verdict.
    #[track_caller]
    pub fn expect_deny(&mut self, request: &Request) -> String {
        match self.evaluate(request) {
            Verdict::Deny(reason) => reason,
            other => panic!("expected deny, got {other:?}"),
        }
    }

    /// Evaluate and return the escalation reason; panics on any other verdict.
    #[track_caller]
    pub fn expect_escalate(&mut self, request: &Request) -> String {
        match self.evaluate(request) {
            Verdict::Escalate(reason) => reason,
            other => panic!("expected escalate, got {other:?}"),
        }
    }

    /// Ask the policy's `visible` which of `names` (of `kind`, listed by
    /// MCP service `service`) a principal of the policy's test role sees.
    /// State reads see the committed state; writes are discarded, as in
    /// the host.
    pub fn visible(&mut self, service: &str, kind: Listing, names: &[&str]) -> Vec<bool> {
        let principal = Request::builder(service, "POST", "/mcp").build().principal;
        CURRENT.with_borrow_mut(|e| {
            *e = Evaluation {
                committed: self.state.clone(),
                ..Evaluation::default()
            }
        });
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let shown = P::visible(&principal, service, kind, &names);
        let done = CURRENT.take();
        self.logs.extend(done.logs);
        shown
    }

    /// The names of `names` the policy shows, in order.
    pub fn visible_names<'a>(&mut self, service: &str, kind: Listing, names: &[&'a str]) -> Vec<&'a str> {
        let shown = self.visible(service, kind, names);
        names
            .iter()
            .zip(shown)
            .filter_map(|(n, v)| v.then_some(*n))
            .collect()
    }

    /// The committed workflow state.
    pub fn state(&self, key: &str) -> Option<&str> {
        self.state.get(key).map(String::as_str)
    }

    /// Every log record written so far.
    pub fn logs(&self) -> &[LogRecord] {
        &self.logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Description, state};

    /// Counts grants in state and allows at most two.
    struct TwoTickets;
    impl Policy for TwoTickets {
        fn describe() -> Description {
            Description::new("two-tickets", "0")
        }
        fn evaluate(_: &Request) -> Verdict {
            let n = state::incr("tickets", 1);
            crate::log::info("ticket", &[("n", &n.to_string())]);
            if n > 2 {
                return Verdict::deny(format!("ticket {n} over the limit of 2"));
            }
            Verdict::allow(Grant::new(30))
        }
    }

    #[test]
    fn writes_commit_only_on_allow() {
        let mut h = Harness::<TwoTickets>::new();
        let r = Request::builder("issues", "POST", "/tickets").build();
        h.expect_allow(&r);
        h.expect_allow(&r);
        assert_eq!(h.state("tickets"), Some("2"));
        assert!(h.expect_deny(&r).contains("ticket 3"));
        // The denied evaluation's increment was discarded.
        assert_eq!(h.state("tickets"), Some("2"));
        assert_eq!(h.logs().len(), 3);
    }

    #[test]
    fn starts_from_given_state() {
        let mut h = Harness::<TwoTickets>::new().with_state("tickets", "2");
        let r = Request::builder("issues", "POST", "/tickets").build();
        h.expect_deny(&r);
    }
}

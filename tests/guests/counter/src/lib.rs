//! Guest `counter`: keeps a counter in a `static` and reports it as
//! `deny("calls=N")`. In a fresh instance per decision N is always 1; any
//! other answer means guest memory leaked from one decision into the next.

use std::sync::atomic::{AtomicU32, Ordering};

use airlock_sdk::prelude::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Policy for Counter {
    fn describe() -> Description {
        Description::new("counter", "0.1.0")
    }

    fn evaluate(_: &Request) -> Verdict {
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        Verdict::deny(format!("calls={n}"))
    }
}

export_policy!(Counter);

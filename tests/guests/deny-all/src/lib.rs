//! Well-behaved guest `deny-all` 1.0.0: denies every request with
//! "deny-all: nothing is allowed". The shadow test runs it as a candidate
//! beside `good-allow` and then promotes it.

use airlock_sdk::prelude::*;

struct DenyAll;

impl Policy for DenyAll {
    fn describe() -> Description {
        Description::new("deny-all", "1.0.0")
    }

    fn evaluate(_request: &Request) -> Verdict {
        Verdict::deny("deny-all: nothing is allowed")
    }
}

export_policy!(DenyAll);

//! Guest `state-user`: exercises the `state` import. Every evaluation does
//! `incr("count", 1)` and `set("last-agent", <principal.agent>)`, then allows
//! with scope `count:<n>` while n <= 2 and denies with "count <n> over 2"
//! after that.
//!
//! The host must commit both writes on allow only: after two allows the
//! committed count stays 2 however many denies follow, and `last-agent`
//! names the agent of the last *allowed* request.

use airlock_sdk::prelude::*;

struct StateUser;

impl Policy for StateUser {
    fn describe() -> Description {
        Description::new("state-user", "0.1.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        let n = state::incr("count", 1);
        state::set("last-agent", &request.principal.agent);
        if n <= 2 {
            Verdict::allow(Grant::new(60).scope(format!("count:{n}")))
        } else {
            Verdict::deny(format!("count {n} over 2"))
        }
    }
}

export_policy!(StateUser);

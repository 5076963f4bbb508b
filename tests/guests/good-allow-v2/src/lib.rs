//! Well-behaved guest `good-allow` 2.0.0: allows GET with scope `ok:read:v2`,
//! denies everything else with "good-allow: only GET".
//!
//! Same as `good-allow` but for the version and the scope, so the hot-reload
//! test can tell which of the two answered.

use airlock_sdk::prelude::*;

struct GoodAllow;

impl Policy for GoodAllow {
    fn describe() -> Description {
        Description::new("good-allow", "2.0.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        if request.action.method == "GET" {
            Verdict::allow(Grant::new(60).scope("ok:read:v2"))
        } else {
            Verdict::deny("good-allow: only GET")
        }
    }
}

export_policy!(GoodAllow);

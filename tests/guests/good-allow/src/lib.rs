//! Well-behaved guest `good-allow` 1.0.0: allows GET with scope `ok:read`,
//! denies everything else with "good-allow: only GET".
//!
//! The host must answer exactly that. The hot-reload test swaps it for
//! `good-allow-v2` (scope `ok:read:v2`) and checks which one answered.

use airlock_sdk::prelude::*;

struct GoodAllow;

impl Policy for GoodAllow {
    fn describe() -> Description {
        Description::new("good-allow", "1.0.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        if request.action.method == "GET" {
            Verdict::allow(Grant::new(60).scope("ok:read"))
        } else {
            Verdict::deny("good-allow: only GET")
        }
    }
}

export_policy!(GoodAllow);

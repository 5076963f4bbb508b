//! Guest `visible-liar`: a 0.2.0 policy whose `visible` misbehaves, chosen by
//! the service name it is asked about:
//! - `wrong-length`: answers one bool more than it was asked for;
//! - `spin`: loops forever;
//! - `writes`: `incr("listings", 1)` and shows everything;
//! - anything else: shows the names the workflow state key `shown` lists
//!   (comma-separated).
//!
//! `evaluate` denies with "listings=<state listings>", so a test can see
//! whether a listing's state write was committed.
//!
//! The host must hide everything for the first two (with the failure
//! recorded), never commit the write of the third, and let the fourth read
//! the session's workflow state.

use airlock_sdk::prelude::*;

struct VisibleLiar;

impl Policy for VisibleLiar {
    fn describe() -> Description {
        Description::new("visible-liar", "1.0.0")
    }

    fn evaluate(_: &Request) -> Verdict {
        let listings = state::get("listings").unwrap_or_else(|| "none".into());
        Verdict::deny(format!("listings={listings}"))
    }

    fn visible(_: &Principal, service: &str, _: Listing, names: &[String]) -> Vec<bool> {
        match service {
            "wrong-length" => vec![true; names.len() + 1],
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "writes" => {
                state::incr("listings", 1);
                vec![true; names.len()]
            }
            _ => {
                let shown = state::get("shown").unwrap_or_default();
                names.iter().map(|n| shown.split(',').any(|s| s == n)).collect()
            }
        }
    }
}

export_policy!(VisibleLiar);

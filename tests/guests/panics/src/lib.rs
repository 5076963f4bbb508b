//! Hostile guest `panics`: `evaluate` panics with the message "policy bug".
//! On wasm a panic aborts, so the host sees a trap.
//!
//! The host must answer: deny, class `trap`.

use airlock_sdk::prelude::*;

struct Panics;

impl Policy for Panics {
    fn describe() -> Description {
        Description::new("panics", "0.1.0")
    }

    fn evaluate(_request: &Request) -> Verdict {
        panic!("policy bug")
    }
}

export_policy!(Panics);

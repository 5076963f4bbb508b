//! Hostile guest `infinite-loop`: `evaluate` never returns. It spins in a pure
//! compute loop (no host calls, no memory traffic the optimiser could reason
//! about; `black_box` keeps the counter opaque so the loop cannot be removed).
//!
//! The host must answer: deny, class `fuel` (or `deadline` when the fuel
//! budget is so large that the wall-clock limit fires first).

use airlock_sdk::prelude::*;
use core::hint::black_box;

struct InfiniteLoop;

impl Policy for InfiniteLoop {
    fn describe() -> Description {
        Description::new("infinite-loop", "0.1.0")
    }

    fn evaluate(_request: &Request) -> Verdict {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_policy!(InfiniteLoop);

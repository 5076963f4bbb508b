//! Hostile guest `deep-recursion`: `evaluate` recurses without bound. The
//! recursion is not a tail call (the result is rotated and combined after the
//! call, which tail-call elimination cannot turn into an accumulator) and the
//! stop depth comes from the request (query parameter `stop`, default
//! `u64::MAX`), so the optimiser can neither make it a loop nor prove it
//! infinite. Frames live in wasm locals only, nothing on the shadow stack in
//! linear memory, so it is the engine's wasm call stack that runs out.
//!
//! The host must answer: deny, class `trap` (stack overflow).

use airlock_sdk::prelude::*;

fn dive(depth: u64, stop: u64) -> u64 {
    if depth == stop {
        return depth;
    }
    dive(depth + 1, stop).rotate_left(7) ^ depth
}

struct DeepRecursion;

impl Policy for DeepRecursion {
    fn describe() -> Description {
        Description::new("deep-recursion", "0.1.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        let stop = request
            .action
            .query("stop")
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        let n = dive(0, stop);
        Verdict::deny(format!("deep-recursion: came back from depth {stop} ({n})"))
    }
}

export_policy!(DeepRecursion);

//! Hostile guest `memory-bomb`: `evaluate` allocates 1 MiB chunks, fills every
//! byte, and keeps them all, without bound. Sooner or later `memory.grow` is
//! refused by the host's memory cap, the allocator fails and the guest aborts
//! (an `unreachable` trap after the failed grow).
//!
//! The host must answer: deny, class `memory`.

use airlock_sdk::prelude::*;
use core::hint::black_box;

const CHUNK: usize = 1 << 20;

struct MemoryBomb;

impl Policy for MemoryBomb {
    fn describe() -> Description {
        Description::new("memory-bomb", "0.1.0")
    }

    fn evaluate(_request: &Request) -> Verdict {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill so every page is really written, never left to
            // a zeroed-allocation shortcut.
            let fill = black_box((hoard.len() as u8) | 1);
            let chunk = vec![fill; CHUNK];
            hoard.push(black_box(chunk));
        }
    }
}

export_policy!(MemoryBomb);

//! Hostile guest `log-flood`: `evaluate` calls the `log` import 100 000 times
//! with a 2 KiB message, then allows with scope `flood:done`.
//!
//! The host must answer: allow (scope `flood:done`), keeping only a bounded
//! number of log records (32, each cut to 1 KiB) and counting the rest as
//! dropped.

use airlock_sdk::prelude::*;

const CALLS: usize = 100_000;
const MESSAGE_BYTES: usize = 2 * 1024;

struct LogFlood;

impl Policy for LogFlood {
    fn describe() -> Description {
        Description::new("log-flood", "0.1.0")
    }

    fn evaluate(_request: &Request) -> Verdict {
        let message = "flood".repeat(MESSAGE_BYTES / 5 + 1)[..MESSAGE_BYTES].to_string();
        for _ in 0..CALLS {
            log::info(&message, &[]);
        }
        Verdict::allow(Grant::new(60).scope("flood:done"))
    }
}

export_policy!(LogFlood);

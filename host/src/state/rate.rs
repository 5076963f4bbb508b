//! A session's sliding one-minute rate window.
//!
//! The window is exact: it keeps the time of each request it let through in
//! the last minute, so no 60-second span ever holds more than the limit.
//! (A shared store does the same with a sorted set per session.)

use std::collections::VecDeque;
use std::time::Duration;

/// Length of the rate window, reported to policies as `window_seconds`.
pub const WINDOW_SECONDS: u32 = 60;

const WINDOW_MS: u64 = WINDOW_SECONDS as u64 * 1000;

/// Entries kept without a limit (or under a higher one): past this,
/// `count` saturates and the oldest entries are dropped.
const UNLIMITED_CAP: usize = 4096;

/// Times (ms) of the requests counted in the last minute, oldest first and
/// never decreasing (a clock that steps back is clamped to the newest entry).
#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    times: VecDeque<u64>,
}

impl Window {
    /// Drop the entries that left the window: older than 60 s at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&t) = self.times.front() {
            if t.saturating_add(WINDOW_MS) <= now_ms {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Requests counted in the window at `now_ms`.
    pub(super) fn count(&mut self, now_ms: u64) -> u32 {
        self.expire(now_ms);
        u32::try_from(self.times.len()).unwrap_or(u32::MAX)
    }

    /// A window holding these request times (oldest first), as restored
    /// from a database; entries past the cap are dropped from the front.
    pub(super) fn from_times(times: impl IntoIterator<Item = u64>) -> Window {
        let mut times: VecDeque<u64> = times.into_iter().collect();
        while times.len() > UNLIMITED_CAP {
            times.pop_front();
        }
        Window { times }
    }

    /// Count one request at `now_ms` if the window has room under
    /// `per_minute` (0 = unlimited): `Ok(t)` with the time it was counted at
    /// (never before the newest entry), `Err(retry_after)` when it has not.
    pub(super) fn take(&mut self, per_minute: u32, now_ms: u64) -> Result<u64, Duration> {
        self.expire(now_ms);
        let limit = usize::try_from(per_minute).unwrap_or(usize::MAX);
        if per_minute > 0 && self.times.len() >= limit {
            // Room comes back when all but `limit - 1` entries have left.
            let freeing = self.times.len() - limit;
            let leaves_at = self
                .times
                .get(freeing)
                .map_or(now_ms, |t| t.saturating_add(WINDOW_MS));
            let wait = leaves_at.saturating_sub(now_ms).clamp(1, WINDOW_MS);
            return Err(Duration::from_millis(wait));
        }
        while self.times.len() >= limit.max(UNLIMITED_CAP) {
            self.times.pop_front();
        }
        let t = self.times.back().map_or(now_ms, |&last| last.max(now_ms));
        self.times.push_back(t);
        Ok(t)
    }
}

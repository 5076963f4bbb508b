//! Workflow-scoped key/value state, shared by every session of a workflow.
//!
//! Reads see the committed state plus this evaluation's own writes; the host
//! commits the writes only if the verdict is allow. That makes "at most one
//! ticket per workflow" a two-liner:
//!
//! ```ignore
//! if state::incr("tickets", 1) > 1 {
//!     return Verdict::deny("only one ticket per workflow");
//! }
//! ```

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::__export::bindings::airlock::policy::state::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::state_get(key);
}

/// Set `key` to `value` (committed only on allow).
pub fn set(key: &str, value: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__export::bindings::airlock::policy::state::set(key, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::state_set(key, value);
}

/// Add `delta` to the integer at `key` (absent counts as 0) and return the
/// new value (committed only on allow).
pub fn incr(key: &str, delta: i64) -> i64 {
    #[cfg(target_arch = "wasm32")]
    return crate::__export::bindings::airlock::policy::state::incr(key, delta);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::state_incr(key, delta);
}

/// The integer at `key`, 0 when absent or not an integer.
pub fn get_int(key: &str) -> i64 {
    get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

//! Write [Airlock](https://github.com/) policies in Rust.
//!
//! A policy is one type that implements [`Policy`] and one [`export_policy!`]
//! line. The same source compiles to a WebAssembly component (for the host)
//! and to native code (for unit tests with plain `cargo test`, through
//! [`testing::Harness`]).
//!
//! ```ignore
//! use airlock_sdk::prelude::*;
//!
//! struct ReadOnly;
//!
//! impl Policy for ReadOnly {
//!     fn describe() -> Description {
//!         Description::new("read-only", "1.0.0")
//!     }
//!     fn evaluate(request: &Request) -> Verdict {
//!         if request.action.method == "GET" {
//!             Verdict::allow(Grant::new(60).scope("read"))
//!         } else {
//!             Verdict::deny("read-only: only GET is allowed")
//!         }
//!     }
//! }
//!
//! export_policy!(ReadOnly);
//! ```
//!
//! The helpers cover what policies do all day: [`paths`] (glob and prefix
//! matching), header/query/param lookup and JSON bodies on [`Action`], and
//! [`diff`] (unified diffs into files and line counts). The host imports are
//! [`state`] (workflow-scoped key/value, committed only on allow) and [`log`].

// The generated bindings and the export macro refer to this crate by name,
// also from inside it.
extern crate self as airlock_sdk;

pub mod diff;
pub mod json;
pub mod log;
pub mod mcp;
pub mod paths;
pub mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod types;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __export;

#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
pub mod alloc;

#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
#[global_allocator]
static ALLOCATOR: alloc::BumpAllocator = alloc::BumpAllocator::new();

pub use mcp::{Listing, McpCall};
/// Re-exported so policies can name the JSON types without a dependency of their own.
pub use serde_json;
pub use types::{Action, Approval, Description, Grant, Principal, Request, Usage, Verdict};

/// The one trait a policy implements.
///
/// Both functions are associated functions: every evaluation runs in a fresh
/// instance, so a policy has no memory of earlier requests except what it
/// keeps in [`state`].
pub trait Policy {
    /// Name and version, reported by `airlock policy check` and written into
    /// every audit record the policy decides.
    fn describe() -> Description;
    /// Decide one request.
    fn evaluate(request: &Request) -> Verdict;
    /// Which of `names` (of `kind`, listed by MCP service `service`) the
    /// principal may see: one bool per name. Answer true for what some call
    /// could be allowed; a hidden item is still decided by `evaluate` when
    /// called by name. State reads see the workflow; writes are discarded.
    /// By default nothing is shown.
    fn visible(principal: &Principal, service: &str, kind: Listing, names: &[String]) -> Vec<bool> {
        let _ = (principal, service, kind);
        vec![false; names.len()]
    }
}

/// Everything a policy usually needs, in one import.
pub mod prelude {
    pub use crate::diff::{Diff, FileChange, FileStatus};
    pub use crate::paths::{glob_match, has_prefix};
    pub use crate::{
        Action, Description, Grant, Listing, McpCall, Policy, Principal, Request, Usage, Verdict,
        export_policy, log, state,
    };
}

/// Export a [`Policy`] implementation as the component's `evaluate` and
/// `describe`. Call it once per policy crate, at the crate root. On native
/// targets it expands to nothing, so the crate's unit tests build as usual.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct AirlockPolicyExport;
            impl $crate::__export::bindings::Guest for AirlockPolicyExport {
                fn evaluate(
                    request: $crate::__export::bindings::Request,
                ) -> $crate::__export::bindings::Verdict {
                    $crate::__export::evaluate::<$policy>(request)
                }
                fn describe() -> $crate::__export::bindings::Description {
                    $crate::__export::describe::<$policy>()
                }
                fn visible(
                    principal: $crate::__export::bindings::Principal,
                    service: ::std::string::String,
                    kind: $crate::__export::bindings::Listing,
                    names: ::std::vec::Vec<::std::string::String>,
                ) -> ::std::vec::Vec<bool> {
                    $crate::__export::visible::<$policy>(principal, service, kind, names)
                }
            }
            $crate::__export::bindings::__export_policy_world!(AirlockPolicyExport with_types_in $crate::__export::bindings);
        };
    };
}

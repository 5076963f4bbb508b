//! `crash-tracker`: reads crash reports and stack traces, nothing else.
//!
//! From the role definition: services `[crash-reporting]`, actions `[read]`,
//! responses capped at 50 KB.

use airlock_sdk::prelude::*;

const SERVICE: &str = "crash-reporting";
const MAX_RESPONSE_BYTES: u64 = 50 * 1024;

pub struct CrashTracker;

impl Policy for CrashTracker {
    fn describe() -> Description {
        Description::new("crash-tracker", env!("CARGO_PKG_VERSION"))
    }

    fn evaluate(request: &Request) -> Verdict {
        let action = &request.action;
        if action.service != SERVICE {
            return Verdict::deny(format!(
                "crash-tracker may only use the {SERVICE} service, not {}",
                action.service
            ));
        }
        if !action.is_read() {
            return Verdict::deny(format!(
                "crash-tracker is read-only: {} is not allowed",
                action.method
            ));
        }
        Verdict::allow(
            Grant::new(300)
                .scope("crash-reporting:read")
                .max_response_bytes(MAX_RESPONSE_BYTES),
        )
    }
}

export_policy!(CrashTracker);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing::Harness;

    #[test]
    fn reads_crash_reports() {
        let mut h = Harness::<CrashTracker>::new();
        let grant = h.expect_allow(
            &Request::builder(SERVICE, "GET", "/crashes/123")
                .operation("crashes.read")
                .build(),
        );
        assert_eq!(grant.scopes, ["crash-reporting:read"]);
        assert_eq!(grant.max_response_bytes, Some(MAX_RESPONSE_BYTES));
    }

    #[test]
    fn never_writes() {
        let mut h = Harness::<CrashTracker>::new();
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let reason = h.expect_deny(&Request::builder(SERVICE, method, "/crashes/123").build());
            assert!(reason.contains("read-only"), "{reason}");
        }
    }

    #[test]
    fn no_other_service() {
        let mut h = Harness::<CrashTracker>::new();
        let reason = h.expect_deny(&Request::builder("analytics", "GET", "/metrics").build());
        assert!(
            reason.contains("only use the crash-reporting service"),
            "{reason}"
        );
    }
}

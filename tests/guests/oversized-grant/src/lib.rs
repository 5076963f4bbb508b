//! Hostile guest `oversized-grant`: `evaluate` allows with a grant far past the
//! contract's limits: 100 000 scopes of 64 characters each (the limit is 32 of
//! at most 128 bytes) plus one claim whose JSON value is a 1 MiB string (the
//! limit is 1 KiB). About 8 MiB of guest memory in all.
//!
//! Query parameters `scopes` and `claim-bytes` override the two sizes, so a
//! test with a small memory cap can still reach the verdict check.
//!
//! The host must answer: deny, class `invalid-verdict`.

use airlock_sdk::prelude::*;

struct OversizedGrant;

impl Policy for OversizedGrant {
    fn describe() -> Description {
        Description::new("oversized-grant", "0.1.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        let size = |name, default| {
            request
                .action
                .query(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let scopes: usize = size("scopes", 100_000);
        let claim_bytes: usize = size("claim-bytes", 1 << 20);
        let mut grant = Grant::new(60);
        for i in 0..scopes {
            // Exactly 64 characters, all legal scope characters.
            grant = grant.scope(format!("s:{i:0>62}"));
        }
        grant
            .claims
            .push(("blob".into(), format!("\"{}\"", "x".repeat(claim_bytes))));
        Verdict::allow(grant)
    }
}

export_policy!(OversizedGrant);

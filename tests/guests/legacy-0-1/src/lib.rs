//! Guest `legacy-0-1`: a policy built against contract 0.1.0
//! (`wit/archive/0.1.0`), as every policy compiled before 0.2.0 was. GET →
//! allow scope `legacy:read`; anything else → deny "legacy: only GET".
//!
//! The host must still load and run it (`info.contract` says 0.1.0), never
//! hand it `mcp`, and hide every listed item (0.1.0 has no `visible`).

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit/archive/0.1.0",
});

use airlock::policy::types::Grant;

struct Legacy;

impl Guest for Legacy {
    fn evaluate(request: Request) -> Verdict {
        if request.action.method == "GET" {
            Verdict::Allow(Grant {
                scopes: vec!["legacy:read".into()],
                ttl_seconds: 60,
                single_use: false,
                max_response_bytes: None,
                claims: Vec::new(),
            })
        } else {
            Verdict::Deny("legacy: only GET".into())
        }
    }

    fn describe() -> Description {
        Description {
            name: "legacy-0-1".into(),
            version: "0.1.0".into(),
        }
    }
}

export!(Legacy);

//! Guest `header-spy`: denies every request with the names of the headers
//! and the principal it was shown: `saw agent=A role=R headers=a,b,c`. The
//! proxy tests use it to prove that identity headers an agent sends never
//! reach a policy.

use airlock_sdk::prelude::*;

struct HeaderSpy;

impl Policy for HeaderSpy {
    fn describe() -> Description {
        Description::new("header-spy", "0.1.0")
    }

    fn evaluate(request: &Request) -> Verdict {
        let names: Vec<&str> = request.action.headers.iter().map(|(k, _)| k.as_str()).collect();
        Verdict::deny(format!(
            "saw agent={} role={} headers={}",
            request.principal.agent,
            request.principal.role,
            names.join(",")
        ))
    }
}

export_policy!(HeaderSpy);

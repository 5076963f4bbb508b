//! The Rust example policies as Airlock runs them: built to components,
//! loaded into one [`Engine`], each decision in a fresh instance.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use airlock::policy::{Engine, Limits, PolicyModule, PolicyRequest, Verdict, WorkflowState};

use super::Outcome;

/// Build the policy in `policies/<name>` and read its component.
pub fn build(root: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = root.join("policies").join(name);
    let component = airlock::build::build_policy(&dir, Some(&root.join("target/wasm-policies")))
        .map_err(|e| anyhow!("building {name}: {e}"))?;
    std::fs::read(&component).with_context(|| format!("reading {}", component.display()))
}

pub fn load(engine: &Engine, bytes: &[u8], name: &str) -> anyhow::Result<PolicyModule> {
    engine
        .load(bytes, &Limits::default())
        .map_err(|e| anyhow!("loading {name}: {e}"))
}

/// One decision in a fresh instance.
pub fn decide(
    module: &PolicyModule,
    request: &PolicyRequest,
    state: Arc<dyn WorkflowState>,
    limits: &Limits,
) -> Outcome {
    Outcome::of(&module.evaluate(request, state, limits).verdict)
}

impl Outcome {
    pub fn of(verdict: &Verdict) -> Outcome {
        match verdict {
            Verdict::Allow(_) => Outcome::Allow,
            Verdict::Deny(_) => Outcome::Deny,
            Verdict::Escalate(_) => Outcome::Escalate,
        }
    }
}

/// The same component with a custom section naming `tag` appended: a
/// distinct digest, so the engine compiles and keeps it as its own module,
/// as it would a different role's policy. Custom sections may appear
/// anywhere in a component and do not change what it does.
pub fn tagged(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = "airlock-perf-role";
    let mut payload = leb128(name.len());
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(payload.len()));
    out.extend(payload);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A `pulls.create` request whose body is `bytes` long (to within a line)
/// and that pr-creator allows: one file, one hunk of context lines around
/// 5 removed and 5 added lines. Context lines are not changed lines, so
/// the 500-line limit holds at any size, and the whole diff is parsed and
/// every rule runs (the measurement is of a decision that reads all of it).
pub fn pull_request_of_size(bytes: usize) -> anyhow::Result<PolicyRequest> {
    const CHANGED: usize = 5;
    let line = |prefix: char, i: usize| format!("{prefix}    let v_{i:07} = f(x, {i:07});\n");
    let header = "diff --git a/src/lib.rs b/src/lib.rs\nindex 3f2a1c4..9b7e0d2 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n";
    let changes: String = (0..CHANGED)
        .map(|i| line('-', i))
        .chain((0..CHANGED).map(|i| line('+', i)))
        .collect();
    // Sized in the body's JSON, where each newline is two bytes (`\n`);
    // 160 bytes cover the hunk header and the other fields.
    let json_len = |s: &str| s.len() + s.matches('\n').count();
    let room = bytes.saturating_sub(json_len(header) + json_len(&changes) + 160);
    let context = room / json_len(&line(' ', 0));
    let mut diff = String::with_capacity(bytes);
    diff.push_str(header);
    diff.push_str(&format!(
        "@@ -1,{} +1,{} @@\n",
        context + CHANGED,
        context + CHANGED
    ));
    (0..context).for_each(|i| diff.push_str(&line(' ', CHANGED + i)));
    diff.push_str(&changes);
    let body = serde_json::json!({
        "title": "Rename the values",
        "head": "rename-values",
        "base": "main",
        "diff": diff,
    });
    let request = serde_json::json!({
        "principal": {"agent": "pr-bot-1", "role": "pr-creator", "session": "s-1", "workflow": "wf-1"},
        "action": {
            "service": "code",
            "operation": "pulls.create",
            "params": {"owner": "acme", "repo": "api"},
            "method": "POST",
            "path": "/repos/acme/api/pulls",
            "headers": {"content-type": "application/json"},
            "body": body.to_string(),
        },
    });
    serde_json::from_value(request).context("the pull request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_encodes() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [127]);
        assert_eq!(leb128(128), [0x80, 1]);
        assert_eq!(leb128(300), [0xac, 0x02]);
    }

    #[test]
    fn pull_requests_have_the_size_asked() {
        for size in [1 << 10, 64 << 10, 1 << 20] {
            let request = pull_request_of_size(size).expect("request");
            let len = request.action.body.len();
            assert!(len <= size && len + 200 >= size, "{size}: {len}");
        }
    }
}

//! `/metrics` on the admin listener of the real binary: after a known mix
//! of allowed and refused requests every counter moved by exactly that
//! much, and the exposition parses with the official Prometheus client's
//! OpenMetrics parser (Python `prometheus_client`, installed by
//! `scripts/tools`).

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::e2e::{Airlock, Behaviour, Start, World};
use support::guest;

/// Every sample, by `name{label="value",...}` (labels sorted), as parsed
/// by prometheus_client; panics if the text does not parse.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let python = support::root().join("target/tools/python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/tools",
        python.display()
    );
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).expect("json");
    parsed
        .into_iter()
        .map(|(k, v)| (k, v.as_f64().expect("a number")))
        .collect()
}

fn scrape(world: &World, airlock: &Airlock) -> (String, BTreeMap<String, f64>) {
    let r = world.request("GET", &airlock.admin_url("/metrics"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    let samples = parse(&text);
    (text, samples)
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

const BODY: &str = r#"
[services.crash-reporting]
upstream = "UPSTREAM"
routes = [{ op = "crashes.read", method = "GET", path = "/crashes/{id}" }]

[roles.reader]
policy = "good-allow.wasm"
services = ["crash-reporting"]

[roles.trapper]
policy = "panics.wasm"
services = ["crash-reporting"]
"#;

/// Airlock with BODY's two roles (one that allows, one whose policy traps).
fn start(world: &World, body: &str) -> Airlock {
    world.airlock(Start {
        body,
        policies: vec![
            ("good-allow.wasm", guest("good-allow")),
            ("panics.wasm", guest("panics")),
        ],
        ..Start::default()
    })
}

#[test]
fn counters_move_by_exactly_the_requests_made_and_the_exposition_parses() {
    let world = World::new();
    let upstream = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    let body = BODY.replace("UPSTREAM", &upstream.url());
    let airlock = start(&world, &body);
    let (_, reader) = airlock.session(&world, "reader", "reader-bot", 300);
    let (_, trapper) = airlock.session(&world, "trapper", "trap-bot", 300);
    let (text, before) = scrape(&world, &airlock);
    assert!(
        text.contains("airlock_state_backend_info{backend=\"sqlite\"} 1"),
        "{text}"
    );

    let call = |handle: Option<&str>, path: &str| {
        let auth = handle.map(|h| format!("Bearer {h}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("proxy-authorization", a.as_str())).collect();
        world
            .request("GET", &airlock.proxy_url(path), &headers, b"")
            .status
    };
    for id in 1..=3 {
        assert_eq!(
            call(Some(&reader), &format!("/crash-reporting/crashes/{id}")),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(call(Some(&trapper), "/crash-reporting/crashes/1"), 403);
    }
    assert_eq!(call(Some(&reader), "/crash-reporting/nowhere"), 404);
    assert_eq!(call(None, "/crash-reporting/crashes/1"), 401);

    let (text, after) = scrape(&world, &airlock);
    for (key, moved) in [
        (
            r#"airlock_decisions_total{code="ok",role="reader",verdict="allow"}"#,
            3.0,
        ),
        (
            r#"airlock_decisions_total{code="denied",role="trapper",verdict="deny"}"#,
            2.0,
        ),
        (
            r#"airlock_decisions_total{code="unknown_route",role="reader",verdict="deny"}"#,
            1.0,
        ),
        (
            r#"airlock_decisions_total{code="unauthenticated",role="",verdict="deny"}"#,
            1.0,
        ),
        (r#"airlock_tokens_minted_total{service="crash-reporting"}"#, 3.0),
        (
            r#"airlock_upstream_responses_total{service="crash-reporting",status="200"}"#,
            3.0,
        ),
        (
            r#"airlock_upstream_seconds_count{service="crash-reporting"}"#,
            3.0,
        ),
        (r#"airlock_policy_eval_seconds_count{role="reader"}"#, 3.0),
        (r#"airlock_policy_eval_seconds_count{role="trapper"}"#, 2.0),
        (r#"airlock_policy_fuel_count{role="reader"}"#, 3.0),
        (r#"airlock_policy_fuel_count{role="trapper"}"#, 2.0),
        // Every request with a handle begins; only allows commit.
        (r#"airlock_state_seconds_count{op="begin"}"#, 6.0),
        (r#"airlock_state_seconds_count{op="commit"}"#, 3.0),
        (r#"airlock_state_errors_total{op="begin"}"#, 0.0),
        // An allow writes its decision and its outcome; a refusal one record.
        (r#"airlock_audit_append_seconds_count{}"#, 3.0 * 2.0 + 4.0),
        (r#"airlock_audit_errors_total{}"#, 0.0),
        // Group commit: every record is written by exactly one write.
        (r#"airlock_audit_group_records_sum{}"#, 3.0 * 2.0 + 4.0),
    ] {
        assert_eq!(delta(&before, &after, key), moved, "{key}\n{text}");
    }
    assert_eq!(after[r#"airlock_state_up{}"#], 1.0);
    assert!(after[r#"airlock_policy_fuel_sum{role="reader"}"#] > 0.0);
    // No secret and no unbounded id is ever a label.
    for needle in ["\"alh_", "\"ses_", "\"dec_", "\"apr_", "eyJ", &reader[4..]] {
        assert!(!text.contains(needle), "{needle} in /metrics:\n{text}");
    }
}

#[test]
fn with_a_metrics_token_only_its_bearer_may_scrape() {
    let world = World::new();
    let upstream = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    let body = format!(
        "[metrics]\ntoken_file = \"metrics.token\"\n{}",
        BODY.replace("UPSTREAM", &upstream.url())
    );
    let airlock = world.airlock(Start {
        body: &body,
        policies: vec![
            ("good-allow.wasm", guest("good-allow")),
            ("panics.wasm", guest("panics")),
        ],
        files: vec![("metrics.token", "metrics-scraper-token-0123456789\n")],
        ..Start::default()
    });
    let url = airlock.admin_url("/metrics");
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(&*format!("Bearer {}", airlock.admin_token)),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let r = world.request("GET", &url, &headers, b"");
        assert_eq!(r.status, 401, "{auth:?}: {}", r.text());
        assert_eq!(r.json()["error"], "unauthenticated");
        assert!(
            r.json()["reason"]
                .as_str()
                .unwrap_or("")
                .contains("metrics token")
        );
    }
    let r = world.request(
        "GET",
        &url,
        &[("authorization", "Bearer metrics-scraper-token-0123456789")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    parse(&r.text());
}

#[test]
fn with_an_otlp_endpoint_request_spans_are_exported_with_their_stages() {
    let world = World::new();
    let upstream = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    // A real HTTP server standing in for an OpenTelemetry collector: it
    // records every POST and answers 200.
    let collector = world.upstream(Behaviour::Slow(0));
    let body = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"airlock-otlp-test\"\n{}",
        collector.url(),
        BODY.replace("UPSTREAM", &upstream.url())
    );
    let airlock = start(&world, &body);
    let (_, reader) = airlock.session(&world, "reader", "reader-bot", 300);
    let auth = format!("Bearer {reader}");
    let r = world.request(
        "GET",
        &airlock.proxy_url("/crash-reporting/crashes/7"),
        &[("proxy-authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The batch exporter sends every few seconds; wait for the first batch
    // (a wait for an event, not a timing assertion).
    let batch = || {
        collector
            .received
            .lock()
            .expect("lock")
            .iter()
            .find(|r| r.method == "POST" && r.uri == "/v1/traces")
            .cloned()
    };
    assert!(
        support::wait_for(|| batch().is_some(), std::time::Duration::from_secs(30)),
        "no OTLP export reached the collector; airlock logs:\n{}",
        airlock.logs()
    );
    let exported = batch().expect("the batch just seen");
    assert_eq!(exported.header("content-type"), Some("application/x-protobuf"));
    // Protobuf keeps strings verbatim. The service is named, and each stage
    // is a span: its name is field 5 of an OTLP `Span` (tag 0x2a, then the
    // length), so a path or an attribute that merely mentions it does not count.
    let payload = String::from_utf8_lossy(&exported.body);
    assert!(payload.contains("airlock-otlp-test"), "the service.name resource");
    for name in [
        "request", "session", "policy", "commit", "mint", "upstream", "audit",
    ] {
        let field: Vec<u8> = [0x2a, name.len() as u8].into_iter().chain(name.bytes()).collect();
        assert!(
            exported.body.windows(field.len()).any(|w| w == field),
            "no span named {name} in the exported batch"
        );
    }
    assert!(!payload.contains(&reader[4..]), "the session handle was exported");
    assert!(!payload.contains("eyJ"), "a token was exported");
}

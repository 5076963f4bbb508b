use std::time::Duration;

use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn every_family_is_exported_with_its_labels_and_counts() {
    let m = Metrics::new("redis");
    m.decision("developer", "allow", "ok");
    m.decision("developer", "allow", "ok");
    m.decision("", "deny", "unauthenticated");
    m.evaluation("developer", Duration::from_micros(40), 52_000);
    m.upstream("code", Some(200), Duration::from_millis(2));
    m.upstream("code", None, Duration::from_millis(30));
    m.token_minted("code");
    m.reload("rejected");
    m.state_op("begin", Duration::from_micros(300), true);
    m.state_op("commit", Duration::from_millis(250), false);
    m.audit_append(Duration::from_micros(20), true);
    let text = m.encode();
    for (prefix, value) in [
        (
            "airlock_decisions_total{role=\"developer\",verdict=\"allow\",code=\"ok\"}",
            "2",
        ),
        (
            "airlock_decisions_total{role=\"\",verdict=\"deny\",code=\"unauthenticated\"}",
            "1",
        ),
        ("airlock_policy_eval_seconds_count{role=\"developer\"}", "1"),
        ("airlock_policy_fuel_sum{role=\"developer\"}", "52000.0"),
        (
            "airlock_upstream_responses_total{service=\"code\",status=\"200\"}",
            "1",
        ),
        (
            "airlock_upstream_responses_total{service=\"code\",status=\"error\"}",
            "1",
        ),
        ("airlock_tokens_minted_total{service=\"code\"}", "1"),
        ("airlock_policy_reloads_total{result=\"rejected\"}", "1"),
        ("airlock_state_seconds_count{op=\"commit\"}", "1"),
        ("airlock_state_errors_total{op=\"commit\"}", "1"),
        ("airlock_state_up", "0"),
        ("airlock_state_backend_info{backend=\"redis\"}", "1"),
        ("airlock_audit_append_seconds_count", "1"),
    ] {
        let found = line(&text, &format!("{prefix} ")).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        assert_eq!(found.rsplit(' ').next(), Some(value), "{found}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        line(&text, "airlock_state_errors_total{op=\"begin\"}").is_none(),
        "a success is no error"
    );
}

//! The engine against real policy components built from source.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::policy::{
    Engine, EngineConfig, FailureClass, Limits, MemoryState, NoState, StateWrite, Verdict,
};
use support::{engine, get, guest, post};

#[test]
fn example_policy_allows_and_denies_with_fuel_and_time_reported() {
    let path = support::example_policy("crash-tracker");
    let engine = engine();
    let module = engine
        .load(&std::fs::read(path).expect("component"), &Limits::default())
        .expect("loads");
    assert_eq!(module.info().name, "crash-tracker");
    assert!(module.info().digest.starts_with("sha256:") && module.info().digest.len() == 71);

    let e = module.evaluate(
        &get("crash-reporting", "/crashes/1"),
        Arc::new(NoState),
        &Limits::default(),
    );
    let grant = e.verdict.grant().expect("read allowed");
    assert_eq!(grant.scopes, ["crash-reporting:read"]);
    assert_eq!(grant.max_response_bytes, Some(50 * 1024));
    assert!(e.fuel_used > 0 && e.elapsed > Duration::ZERO);

    let e = module.evaluate(
        &post("crash-reporting", "/crashes/1"),
        Arc::new(NoState),
        &Limits::default(),
    );
    assert!(
        e.verdict.reason().is_some_and(|r| r.contains("read-only")),
        "{:?}",
        e.verdict
    );
    assert!(e.failure.is_none());
}

#[test]
fn every_decision_gets_a_fresh_instance() {
    let engine = engine();
    let module = engine.load(&guest("counter"), &Limits::default()).expect("loads");
    for _ in 0..5 {
        let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &Limits::default());
        assert_eq!(
            e.verdict,
            Verdict::Deny("calls=1".into()),
            "guest memory leaked between decisions"
        );
    }
}

#[test]
fn state_writes_are_returned_only_on_allow() {
    let engine = engine();
    let module = engine
        .load(&guest("state-user"), &Limits::default())
        .expect("loads");
    let state = Arc::new(MemoryState::default());

    let e = module.evaluate(&get("svc", "/x"), state.clone(), &Limits::default());
    assert_eq!(e.verdict.grant().expect("allow").scopes, ["count:1"]);
    assert_eq!(
        e.state_writes,
        [
            StateWrite::Incr {
                key: "count".into(),
                delta: 1
            },
            StateWrite::Set {
                key: "last-agent".into(),
                value: "agent-1".into()
            },
        ]
    );
    assert_eq!(e.state_reads, [("count".to_string(), None)]);

    // With the count already at 2 (in this workflow only), the policy denies
    // and its writes are dropped.
    state.set("wf-1", "count", "2");
    state.set("wf-other", "count", "0");
    let e = module.evaluate(&get("svc", "/x"), state.clone(), &Limits::default());
    assert_eq!(e.verdict, Verdict::Deny("count 3 over 2".into()));
    assert!(e.state_writes.is_empty());
    assert_eq!(e.state_reads, [("count".to_string(), Some("2".to_string()))]);
}

#[test]
fn a_failing_state_store_fails_closed() {
    struct Down;
    impl airlock::policy::WorkflowState for Down {
        fn get(&self, _: &str, _: &str) -> Result<Option<String>, airlock::policy::StateError> {
            Err(airlock::policy::StateError("connection refused".into()))
        }
    }
    let engine = engine();
    let module = engine
        .load(&guest("state-user"), &Limits::default())
        .expect("loads");
    let e = module.evaluate(&get("svc", "/x"), Arc::new(Down), &Limits::default());
    let f = e.failure.expect("denied");
    assert_eq!(f.class, FailureClass::Host);
    assert!(f.detail.contains("connection refused"), "{f}");
    assert!(matches!(e.verdict, Verdict::Deny(_)));
}

#[test]
fn tight_fuel_is_enforced_on_a_good_policy() {
    let engine = engine();
    let module = engine
        .load(&guest("good-allow"), &Limits::default())
        .expect("loads");
    let l = Limits {
        fuel: 50,
        ..Limits::default()
    };
    let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &l);
    assert_eq!(e.failure.map(|f| f.class), Some(FailureClass::Fuel));
    assert_eq!(e.fuel_used, 50);
}

#[test]
fn a_memory_cap_below_the_initial_memory_fails_closed() {
    let engine = engine();
    let module = engine
        .load(&guest("good-allow"), &Limits::default())
        .expect("loads");
    let l = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &l);
    assert_eq!(
        e.failure.map(|f| f.class),
        Some(FailureClass::Memory),
        "{:?}",
        e.verdict
    );
}

#[test]
fn compiled_artifacts_are_cached_by_digest() {
    let cache = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        max_concurrent: 4,
        ..EngineConfig::default()
    };
    let bytes = guest("good-allow");
    let digest = Engine::new(config.clone())
        .expect("engine")
        .load(&bytes, &Limits::default())
        .expect("loads")
        .info()
        .digest
        .clone();
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .expect("cache")
        .map(|f| f.expect("entry").file_name())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].to_string_lossy().to_string();
    assert!(
        name.starts_with(digest.trim_start_matches("sha256:")) && name.ends_with(".cwasm"),
        "{name}"
    );

    let load_and_decide = |config: EngineConfig| {
        let module = Engine::new(config)
            .expect("engine")
            .load(&bytes, &Limits::default())
            .expect("loads");
        let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &Limits::default());
        assert_eq!(
            e.verdict.grant().map(|g| g.scopes.clone()),
            Some(vec!["ok:read".to_string()])
        );
    };
    // A new engine loads from the cache and decides the same way.
    load_and_decide(config.clone());

    // A corrupted cache entry is discarded and the component recompiled.
    std::fs::write(cache.path().join(&files[0]), b"garbage").expect("corrupt");
    load_and_decide(config);
    assert!(
        std::fs::metadata(cache.path().join(&files[0]))
            .expect("rewritten")
            .len()
            > 100
    );
}

#[test]
fn evaluation_never_blocks_the_async_runtime() {
    let engine = engine();
    let module = Arc::new(
        engine
            .load(&guest("infinite-loop"), &Limits::default())
            .expect("loads"),
    );
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    // One runtime thread: if the evaluation ran on it, the ticker below
    // could not run until the deadline passed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A small component's first decision runs on the worker; running out
        // of time moves this version to the blocking pool for good, so the
        // worker is held at most once, for at most the deadline.
        let first = module
            .clone()
            .evaluate_async(Arc::new(get("svc", "/x")), Arc::new(NoState), limits)
            .await;
        assert_eq!(first.failure.map(|f| f.class), Some(FailureClass::Deadline));
        assert!(!module.decides_inline());
        let started = Instant::now();
        let eval = tokio::spawn(module.evaluate_async(Arc::new(get("svc", "/x")), Arc::new(NoState), limits));
        let mut ticks_while_running = 0;
        while !eval.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !eval.is_finished() {
                ticks_while_running += 1;
            }
        }
        let e = eval.await.expect("joined");
        assert_eq!(e.failure.map(|f| f.class), Some(FailureClass::Deadline));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            ticks_while_running >= 5,
            "runtime stalled: only {ticks_while_running} ticks"
        );
    });
}

#[test]
fn malformed_request_json_gets_a_precise_error() {
    let cases = [
        (r#"{"principal": {}}"#, "missing field `agent`"),
        (
            r#"{"principal": {"agent":"a","role":"r","session":"s","workflow":"w"}, "action": {"service":"x","method":"GET","path":"nope"}}"#,
            "must start with `/`",
        ),
        (
            r#"{"principal": {"agent":"a","role":"r","session":"s","workflow":"w"}, "action": {"service":"x","method":"GET","path":"/","body":"a","body_base64":"YQ=="}}"#,
            "not both",
        ),
        (
            r#"{"principal": {"agent":"a","role":"r","session":"s","workflow":"w","admin":true}}"#,
            "unknown field `admin`",
        ),
        (r#"{"principal": "#, "EOF"),
    ];
    for (text, expected) in cases {
        let err = airlock::policy::PolicyRequest::from_json(text).expect_err(text);
        assert!(err.contains(expected), "{err:?} should contain {expected:?}");
    }
}

//! Hostile components, each built from source: every one must end in a clean
//! deny (with the right failure class) or a clean load error, and the same
//! engine must go on deciding the next good request correctly.

mod support;

use std::sync::Arc;
use std::time::Duration;

use airlock::policy::{
    Engine, FailureClass, Limits, LoadError, NoState, PolicyModule, PolicyRequest, Verdict,
};
use support::{engine, get, guest, guest_core};

fn limits() -> Limits {
    Limits {
        fuel: 50_000_000,
        memory_bytes: 16 << 20,
        deadline: Duration::from_millis(500),
    }
}

/// The good policy still answers exactly as it should.
fn assert_still_serving(engine: &Engine) {
    let good = engine
        .load(&guest("good-allow"), &limits())
        .expect("good guest loads");
    let e = good.evaluate(&get("svc", "/x"), Arc::new(NoState), &limits());
    let grant = e.verdict.grant().expect("good request still allowed");
    assert_eq!(grant.scopes, ["ok:read"]);
    let e = good.evaluate(&support::post("svc", "/x"), Arc::new(NoState), &limits());
    assert_eq!(e.verdict, Verdict::Deny("good-allow: only GET".into()));
}

fn load(engine: &Engine, name: &str) -> PolicyModule {
    engine
        .load(&guest(name), &limits())
        .unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn expect_failure(name: &str, limits: Limits, class: FailureClass, detail: &str) {
    expect_failure_for(name, &get("svc", "/x"), limits, class, detail)
}

fn expect_failure_for(
    name: &str,
    request: &PolicyRequest,
    limits: Limits,
    class: FailureClass,
    detail: &str,
) {
    let engine = engine();
    let module = load(&engine, name);
    let e = module.evaluate(request, Arc::new(NoState), &limits);
    let failure = e
        .failure
        .clone()
        .unwrap_or_else(|| panic!("{name}: expected a {class} failure, got {:?}", e.verdict));
    assert_eq!(failure.class, class, "{name}: {failure}");
    assert!(
        failure.detail.contains(detail),
        "{name}: {failure} should mention {detail:?}"
    );
    // The verdict is a deny naming the class, and nothing is to be committed.
    let reason = e.verdict.reason().expect("a deny");
    assert!(
        matches!(e.verdict, Verdict::Deny(_)) && reason.contains(class.as_str()),
        "{reason}"
    );
    assert!(e.state_writes.is_empty());
    assert_still_serving(&engine);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let l = limits();
    expect_failure("infinite-loop", l, FailureClass::Fuel, "fuel");
}

#[test]
fn infinite_loop_with_ample_fuel_hits_the_deadline() {
    let l = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(100),
        ..limits()
    };
    expect_failure("infinite-loop", l, FailureClass::Deadline, "deadline");
}

/// A small policy decides on the async worker; the first decision that
/// burns its fuel moves that policy version to the blocking pool, so a
/// hostile policy holds a worker at most once. The good policy beside it
/// stays inline, and both keep their verdicts.
#[test]
fn a_policy_that_spins_stops_deciding_on_the_async_worker() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = engine();
    let good = Arc::new(load(&engine, "good-allow"));
    let spinning = Arc::new(load(&engine, "infinite-loop"));
    assert!(good.decides_inline() && spinning.decides_inline());
    let request = Arc::new(get("svc", "/x"));
    runtime.block_on(async {
        for _ in 0..2 {
            let e = good
                .clone()
                .evaluate_async(request.clone(), Arc::new(NoState), limits())
                .await;
            assert!(e.verdict.grant().is_some(), "{:?}", e.verdict);
        }
        assert!(good.decides_inline(), "a quick policy stays on the async worker");
        for _ in 0..2 {
            let e = spinning
                .clone()
                .evaluate_async(request.clone(), Arc::new(NoState), limits())
                .await;
            assert_eq!(e.failure.map(|f| f.class), Some(FailureClass::Fuel));
            assert!(matches!(e.verdict, Verdict::Deny(_)));
            assert!(
                !spinning.decides_inline(),
                "a spinning policy leaves the async worker"
            );
        }
    });
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    expect_failure("memory-bomb", limits(), FailureClass::Memory, "16777216-byte cap");
}

#[test]
fn unbounded_recursion_is_a_trap() {
    expect_failure("deep-recursion", limits(), FailureClass::Trap, "stack overflow");
}

#[test]
fn panic_is_a_trap() {
    expect_failure("panics", limits(), FailureClass::Trap, "unreachable");
}

#[test]
fn oversized_grant_is_an_invalid_verdict() {
    // 2 000 scopes of 64 bytes (the bound is 32) and a 1 MiB claim.
    let mut req = get("svc", "/x");
    req.action.query.0.push(("scopes".into(), "2000".into()));
    expect_failure_for(
        "oversized-grant",
        &req,
        limits(),
        FailureClass::InvalidVerdict,
        "2000 scopes",
    );
    // Within the scope bound but with a 1 MiB claim: still refused.
    let engine = engine();
    let module = load(&engine, "oversized-grant");
    let mut req = get("svc", "/x");
    req.action.query.0.push(("scopes".into(), "1".into()));
    let e = module.evaluate(&req, Arc::new(NoState), &limits());
    let f = e.failure.expect("refused");
    assert_eq!(
        (f.class, f.detail.contains("claim `blob`")),
        (FailureClass::InvalidVerdict, true),
        "{}",
        f.detail
    );
}

#[test]
fn log_flood_is_bounded_and_the_verdict_stands() {
    let engine = engine();
    let module = load(&engine, "log-flood");
    let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &limits());
    assert!(e.failure.is_none(), "{:?}", e.failure);
    assert_eq!(e.verdict.grant().expect("allow").scopes, ["flood:done"]);
    assert_eq!(e.logs.len(), 32, "kept records are capped");
    assert_eq!(e.logs_dropped, 100_000 - 32);
    assert!(e.logs.iter().all(|r| r.message.len() <= 1024));
    assert_still_serving(&engine);
}

#[test]
fn wasi_guest_gets_nothing() {
    // A listener the guest would reach if sockets were granted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert_host_has_env();
    let engine = engine();
    let module = load(&engine, "escape-attempts");
    assert!(module.info().uses_wasi);
    let mut req = get("svc", "/x");
    req.action.query.0.push(("port".into(), port.to_string()));
    let e = module.evaluate(&req, Arc::new(NoState), &limits());
    let report = e
        .verdict
        .reason()
        .expect("the guest reports by denying")
        .to_string();
    for attempt in [
        "fs_read_dir=err",
        "fs_read=err",
        "fs_create=err",
        "env_vars=0",
        "home=none",
        "args=0",
        "tcp=err",
        "udp=err",
    ] {
        assert!(report.contains(attempt), "{attempt} missing from {report:?}");
    }
    // Output is captured and bounded, never passed through.
    let output = e.guest_output.expect("captured output");
    assert!(
        output.len() <= 16 * 1024 && !output.is_empty(),
        "captured {} bytes",
        output.len()
    );
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "the guest must not have connected");
    assert!(!std::path::Path::new("pwned.txt").exists());
    assert_still_serving(&engine);
}

/// The host process has environment variables; the guest must see none.
fn assert_host_has_env() {
    assert!(std::env::vars_os().count() > 0);
}

#[test]
fn a_core_module_is_not_a_component() {
    let err = engine()
        .load(&guest_core("good-allow"), &limits())
        .expect_err("refused");
    assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
    assert!(err.to_string().contains("core module"), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let engine = engine();
    let err = engine
        .load(&guest("other-world"), &limits())
        .expect_err("refused");
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");
    assert!(
        err.to_string().contains("does not implement the policy world"),
        "{err}"
    );
    assert_still_serving(&engine);
}

#[test]
fn a_truncated_file_is_refused() {
    let engine = engine();
    let bytes = guest("good-allow");
    for cut in [4, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = engine
            .load(&bytes[..cut], &limits())
            .err()
            .unwrap_or_else(|| panic!("cut at {cut} loaded"));
        // Cut right after the 8-byte header, what is left is an empty (valid)
        // component, which implements nothing.
        let expected = match cut {
            8 => matches!(err, LoadError::WrongWorld(_)),
            _ => matches!(err, LoadError::NotAComponent(_) | LoadError::Invalid(_)),
        };
        assert!(expected, "cut at {cut}: {err}");
    }
    assert_still_serving(&engine);
}

#[test]
fn a_100_mb_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.wasm");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(100 << 20).expect("100 MB");
    let engine = engine();
    let policy_dir = airlock::policy::PolicyDir::open(dir.path()).expect("dir");
    let err = policy_dir
        .read("huge.wasm", engine.config().max_module_bytes)
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("104857600 bytes, over the 67108864-byte limit"),
        "{err}"
    );
    // And through the CLI.
    let out = support::airlock(&["policy", "check", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the 67108864-byte limit"));
    // Bytes handed straight to the engine are bounded too.
    let mut bytes = vec![0u8; 100 << 20];
    bytes[..8].copy_from_slice(b"\0asm\x0d\x00\x01\x00");
    assert!(matches!(
        engine.load(&bytes, &limits()),
        Err(LoadError::TooLarge { .. })
    ));
    assert_still_serving(&engine);
}

#[test]
fn one_engine_survives_every_hostile_guest_in_turn() {
    let engine = engine();
    let l = Limits {
        deadline: Duration::from_millis(200),
        ..limits()
    };
    for name in [
        "infinite-loop",
        "memory-bomb",
        "deep-recursion",
        "panics",
        "oversized-grant",
        "log-flood",
    ] {
        let module = load(&engine, name);
        for _ in 0..3 {
            let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &l);
            assert!(
                e.failure.is_some() || name == "log-flood",
                "{name}: {:?}",
                e.verdict
            );
        }
        assert_still_serving(&engine);
    }
}

//! Hot reload: atomic swaps under load, bad modules never replace good ones,
//! and policy names cannot leave the policy directory.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use airlock::policy::{Limits, NoState, PolicyDir, Registry, RegistryError, ReloadOutcome, RoleBinding};
use support::{engine, get, guest, wait_for};

fn binding(module: &str) -> RoleBinding {
    RoleBinding {
        role: "reader".into(),
        module: module.into(),
        limits: Limits::default(),
    }
}

/// Replace `name` atomically, as a deploy tool would.
fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

fn digest_of(registry: &Registry) -> String {
    registry.get("reader").expect("role").module.info().digest.clone()
}

#[test]
fn watched_directory_swaps_atomically_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (guest("good-allow"), guest("good-allow-v2"));
    install(dir.path(), "reader.wasm", &v1);
    let registry = Arc::new(
        Registry::new(
            engine(),
            PolicyDir::open(dir.path()).expect("dir"),
            vec![binding("reader.wasm")],
        )
        .expect("loads"),
    );
    let _watch = registry.watch(|_, _| {}).expect("watch");
    let v1_digest = digest_of(&registry);

    // Evaluations run on 2 threads for the whole test (bounded by count and time).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok_v1, ok_v2, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (registry, stop, ok_v1, ok_v2, failed) = (
                registry.clone(),
                stop.clone(),
                ok_v1.clone(),
                ok_v2.clone(),
                failed.clone(),
            );
            thread::spawn(move || {
                let request = get("svc", "/x");
                let start = Instant::now();
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                    let policy = registry.get("reader").expect("role");
                    let e = policy
                        .module
                        .evaluate(&request, Arc::new(NoState), &policy.binding.limits);
                    match e.verdict.grant().map(|g| g.scopes.as_slice()) {
                        Some([s]) if s == "ok:read" => ok_v1.fetch_add(1, Ordering::Relaxed),
                        Some([s]) if s == "ok:read:v2" => ok_v2.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    assert!(wait_for(
        || ok_v1.load(Ordering::Relaxed) > 100,
        Duration::from_secs(10)
    ));

    // A broken module (truncated mid-file, as a failed copy would leave it)
    // is rejected; the old version keeps serving.
    install(dir.path(), "reader.wasm", &v2[..v2.len() / 2]);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        digest_of(&registry),
        v1_digest,
        "a broken module replaced the good one"
    );
    let served_during_broken = ok_v1.load(Ordering::Relaxed);
    assert!(wait_for(
        || ok_v1.load(Ordering::Relaxed) > served_during_broken + 100,
        Duration::from_secs(5)
    ));

    // A good module switches within a second.
    let installed = Instant::now();
    install(dir.path(), "reader.wasm", &v2);
    assert!(
        wait_for(|| digest_of(&registry) != v1_digest, Duration::from_secs(1)),
        "v2 not serving a second after it was installed"
    );
    let switch = installed.elapsed();
    assert!(wait_for(
        || ok_v2.load(Ordering::Relaxed) > 100,
        Duration::from_secs(10)
    ));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "an evaluation failed during the reloads"
    );
    assert_eq!(
        registry.get("reader").expect("role").module.info().version,
        "2.0.0"
    );
    eprintln!(
        "switched in {switch:?}; {} decisions on v1, {} on v2, 0 failed",
        ok_v1.load(Ordering::Relaxed),
        ok_v2.load(Ordering::Relaxed)
    );
}

#[test]
fn reload_on_demand_reports_what_it_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "reader.wasm", &guest("good-allow"));
    let registry = Registry::new(
        engine(),
        PolicyDir::open(dir.path()).expect("dir"),
        vec![binding("reader.wasm")],
    )
    .expect("loads");
    let v1 = digest_of(&registry);
    let in_flight = registry.get("reader").expect("role");

    assert_eq!(
        registry.reload_role("reader").expect("reload"),
        ReloadOutcome::Unchanged { digest: v1.clone() }
    );

    std::fs::write(dir.path().join("reader.wasm"), b"\0asm\x01\0\0\0").expect("write core module");
    let err = registry
        .reload_role("reader")
        .expect_err("a core module is rejected");
    assert!(err.to_string().contains("core module"), "{err}");
    assert_eq!(digest_of(&registry), v1);

    install(dir.path(), "reader.wasm", &guest("good-allow-v2"));
    match registry.reload_role("reader").expect("reload") {
        ReloadOutcome::Replaced { from, to } => assert!(from == v1 && to != v1),
        other => panic!("expected a replacement, got {other:?}"),
    }
    // A decision that started on v1 finishes on v1.
    let e = in_flight
        .module
        .evaluate(&get("svc", "/x"), Arc::new(NoState), &Limits::default());
    assert_eq!(e.verdict.grant().expect("allow").scopes, ["ok:read"]);
    assert_eq!(registry.list()[0].1.version, "2.0.0");
    assert!(matches!(
        registry.reload_role("nobody"),
        Err(RegistryError::UnknownRole(_))
    ));
}

#[test]
fn policy_names_cannot_leave_the_directory() {
    let outside = tempfile::tempdir().expect("outside");
    install(outside.path(), "evil.wasm", &guest("good-allow"));
    let dir = tempfile::tempdir().expect("policies");
    std::os::unix::fs::symlink(outside.path().join("evil.wasm"), dir.path().join("link.wasm"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).expect("dir symlink");
    let outside_file = outside.path().join("evil.wasm");
    let absolute = outside_file.to_str().expect("utf-8");

    for name in [
        "../evil.wasm",
        absolute,
        "a/../../evil.wasm",
        "",
        "link.wasm",
        "sub/evil.wasm",
    ] {
        let result = Registry::new(
            engine(),
            PolicyDir::open(dir.path()).expect("dir"),
            vec![binding(name)],
        );
        let err = result
            .err()
            .unwrap_or_else(|| panic!("{name:?} was loaded from outside the policy directory"));
        assert!(
            matches!(err, RegistryError::BadName(_) | RegistryError::Escape { .. }),
            "{name:?}: unexpected error {err}"
        );
        assert!(err.to_string().contains("policy directory"), "{name:?}: {err}");
    }
}

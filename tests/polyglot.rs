//! Policies in Python and JavaScript beside Rust. Each is built from source
//! with `airlock policy build` (componentize-py, ComponentizeJS), held to its
//! Rust twin's case table, required to agree with it verdict for verdict,
//! tested natively with its language's own runner, and held to the same
//! sandbox as a Rust guest.
//!
//! Needs the tools `scripts/tools` installs; `scripts/test` puts them on the
//! PATH.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use airlock::policy::{Engine, EngineConfig, FailureClass, Limits, NoState, PolicyModule, Verdict};
use support::{airlock, build_policy, example_policy, get, root};

/// The languages beside Rust, as the folder names policies use for them.
const LANGUAGES: [&str; 2] = ["python", "js"];

/// The policies written in all three languages.
const TWINS: [&str; 3] = ["crash-tracker", "pr-creator", "github-mcp"];

fn twin(name: &str, language: &str) -> PathBuf {
    build_policy(&root().join("policies").join(name).join(language))
}

fn guest(language: &str, name: &str) -> Vec<u8> {
    let path = build_policy(&root().join("tests/guests").join(language).join(name));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `airlock policy test FILES... --cases CASES`: (success, stdout).
fn policy_test(files: &[&Path], cases: &Path) -> (bool, String) {
    let mut args = vec!["policy", "test"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
    args.extend(["--cases", cases.to_str().expect("utf-8 path")]);
    let out = airlock(&args);
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn every_case_table_gets_identical_verdicts_from_all_three_languages() {
    for name in TWINS {
        let rust = example_policy(name);
        let python = twin(name, "python");
        let js = twin(name, "js");
        let cases = root().join("policies").join(name).join("cases.toml");
        let count = std::fs::read_to_string(&cases)
            .expect("case table")
            .lines()
            .filter(|l| l.trim() == "[[case]]")
            .count();
        assert!(count >= 7, "{name}: only {count} cases");
        let (ok, output) = policy_test(&[&rust, &python, &js], &cases);
        assert!(ok, "{name}:\n{output}");
        assert!(
            output.contains(&format!("{count} passed, 0 failed")),
            "{name}:\n{output}"
        );
    }
}

/// The differential check is stricter than the table: a Python twin whose
/// reason differs from Rust's by one character still passes the table (it
/// matches reasons by substring) but not the comparison.
#[test]
fn the_differential_check_catches_a_verdict_the_table_would_accept() {
    let work = tempfile::tempdir().expect("temp dir");
    let source = root().join("policies/crash-tracker/python/policy.py");
    let policy = std::fs::read_to_string(&source).expect("crash-tracker policy.py");
    let altered = policy.replace("is not allowed", "is not allowed!");
    assert_ne!(policy, altered, "the read-only reason should be in policy.py");
    std::fs::write(work.path().join("policy.py"), altered).expect("write");
    let variant = build_policy(work.path());
    let cases = root().join("policies/crash-tracker/cases.toml");

    let (ok, output) = policy_test(&[&variant], &cases);
    assert!(ok, "the variant alone passes the table:\n{output}");
    let (ok, output) = policy_test(&[&example_policy("crash-tracker"), &variant], &cases);
    assert!(!ok, "{output}");
    assert!(output.contains("verdicts differ"), "{output}");
    assert!(output.contains("3 failed"), "three write cases differ:\n{output}");
}

/// Every file under `dir` (recursively, skipping build output) whose name
/// `is_test` accepts.
fn test_files(dir: &Path, is_test: &dyn Fn(&str) -> bool, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", "node_modules", "__pycache__"].contains(&name.as_str()) {
                test_files(&path, is_test, found);
            }
        } else if is_test(&name) {
            found.push(path);
        }
    }
}

/// The Python and JavaScript test files of the SDK and the polyglot policies.
fn native_tests(language: &str, is_test: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    test_files(&root().join("sdk").join(language), is_test, &mut found);
    for name in TWINS {
        test_files(
            &root().join("policies").join(name).join(language),
            is_test,
            &mut found,
        );
    }
    found.sort();
    found
}

#[test]
fn python_policies_and_sdk_pass_their_pytest_suites() {
    let files = native_tests("python", &|n| n.starts_with("test_") && n.ends_with(".py"));
    assert!(
        files.len() >= 3,
        "SDK and both policies have pytest files: {files:?}"
    );
    // The policy world's Python bindings, which the policies import.
    let bindings = root().join("target/py-bindings");
    // componentize-py refuses to write over an earlier run's bindings.
    let _ = std::fs::remove_dir_all(&bindings);
    let out = Command::new("componentize-py")
        .arg("-d")
        .arg(root().join("wit"))
        .args(["-w", "policy", "bindings"])
        .arg(&bindings)
        .output()
        .expect("componentize-py (run scripts/tools)");
    assert!(out.status.success(), "bindings: {}", text(&out.stderr));
    let python_path = std::env::join_paths([root().join("sdk/python"), bindings]).expect("PYTHONPATH");
    // One run per folder, as an author runs it: every policy is a module
    // named `policy`, and Python imports a module name once per process.
    let mut folders: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    folders.dedup();
    for folder in folders {
        let out = Command::new("python3")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(folder)
            .env("PYTHONPATH", &python_path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 -m pytest (run scripts/tools)");
        let output = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{}:\n{output}", folder.display());
        assert!(
            output.contains(" passed") && !output.contains("failed"),
            "{output}"
        );
    }
}

#[test]
fn javascript_policies_and_sdk_pass_their_node_test_suites() {
    let files = native_tests("js", &|n| n.ends_with(".test.js"));
    assert!(
        files.len() >= 3,
        "SDK and both policies have node:test files: {files:?}"
    );
    let out = Command::new("node")
        .arg("--import")
        .arg(root().join("sdk/js/register.js"))
        .arg("--test")
        .args(&files)
        .output()
        .expect("node");
    let output = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("# fail 0") && !output.contains("# pass 0"),
        "{output}"
    );
}

fn load(engine: &Engine, bytes: &[u8], limits: &Limits) -> PolicyModule {
    engine.load(bytes, limits).expect("guest loads")
}

/// The engine goes on deciding correctly after a hostile guest failed: the
/// twin in the same language still allows a read and denies a write.
fn assert_still_serving(engine: &Engine, language: &str) {
    let bytes = std::fs::read(twin("crash-tracker", language)).expect("crash-tracker");
    let limits = Limits::default();
    let good = load(engine, &bytes, &limits);
    let read = support::request(serde_json::json!({
        "principal": {"agent": "a", "role": "crash-tracker", "session": "s-1", "workflow": "wf-1"},
        "action": {"service": "crash-reporting", "method": "GET", "path": "/crashes/1"}
    }));
    let e = good.evaluate(&read, Arc::new(NoState), &limits);
    assert_eq!(
        e.verdict.grant().map(|g| g.scopes.clone()),
        Some(vec!["crash-reporting:read".to_string()])
    );
    let mut write = read.clone();
    write.action.method = "DELETE".into();
    let e = good.evaluate(&write, Arc::new(NoState), &limits);
    assert_eq!(
        e.verdict,
        Verdict::Deny("crash-tracker is read-only: DELETE is not allowed".into())
    );
}

/// Evaluate `name` in `language` under `limits`: it must fail with `class`,
/// as a deny naming the class, with nothing to commit; then the engine must
/// still serve.
fn expect_failure(language: &str, name: &str, limits: Limits, class: FailureClass) {
    let engine = support::engine();
    let module = load(&engine, &guest(language, name), &limits);
    for _ in 0..2 {
        let e = module.evaluate(&get("svc", "/x"), Arc::new(NoState), &limits);
        let failure = e
            .failure
            .clone()
            .unwrap_or_else(|| panic!("{language} {name}: expected {class}, got {:?}", e.verdict));
        assert_eq!(failure.class, class, "{language} {name}: {failure}");
        let reason = e.verdict.reason().unwrap_or_default();
        assert!(
            matches!(e.verdict, Verdict::Deny(_)) && reason.contains(class.as_str()),
            "{reason}"
        );
        assert!(e.state_writes.is_empty());
    }
    assert_still_serving(&engine, language);
}

#[test]
fn infinite_loops_in_python_and_javascript_run_out_of_fuel() {
    let limits = Limits {
        fuel: 20_000_000,
        deadline: Duration::from_secs(10),
        ..Limits::default()
    };
    for language in LANGUAGES {
        expect_failure(language, "infinite-loop", limits, FailureClass::Fuel);
    }
}

#[test]
fn infinite_loops_in_python_and_javascript_hit_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(100),
        ..Limits::default()
    };
    for language in LANGUAGES {
        expect_failure(language, "infinite-loop", limits, FailureClass::Deadline);
    }
}

#[test]
fn memory_bombs_in_python_and_javascript_hit_the_memory_cap() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_secs(10),
        memory_bytes: 32 << 20,
    };
    for language in LANGUAGES {
        expect_failure(language, "memory-bomb", limits, FailureClass::Memory);
    }
}

/// The `counter` guests count their calls in a global. Every decision must
/// see a count of one: no instance serves two decisions, whether it was a
/// spare made ahead of time or made inline, in the same session or not.
#[test]
fn no_decision_sees_what_an_earlier_one_left_in_guest_memory() {
    for spare_instances in [2, 0] {
        let engine = Engine::new(EngineConfig {
            spare_instances,
            ..support::engine_config()
        })
        .expect("engine");
        let limits = Limits::default();
        for language in LANGUAGES {
            let counter = load(&engine, &guest(language, "counter"), &limits);
            for session in ["s-1", "s-1", "s-2", "s-1", "s-2"] {
                let mut request = get("svc", "/x");
                request.principal.session = session.into();
                let e = counter.evaluate(&request, Arc::new(NoState), &limits);
                assert_eq!(
                    e.verdict,
                    Verdict::Deny(format!("calls=1 session={session}")),
                    "{language}, {spare_instances} spares"
                );
            }
        }
    }
}

#[test]
fn building_without_the_language_tool_says_how_to_install_it() {
    for (language, tool, install) in [
        ("python", "componentize-py", "pip install componentize-py"),
        (
            "js",
            "componentize-js",
            "npm install -g @bytecodealliance/componentize-js",
        ),
    ] {
        let dir = root().join("policies/crash-tracker").join(language);
        let out = Command::new(support::airlock_bin())
            .args(["policy", "build", dir.to_str().expect("utf-8")])
            .env("PATH", "")
            .env_remove("AIRLOCK_COMPONENTIZE_PY")
            .env_remove("AIRLOCK_COMPONENTIZE_JS")
            .output()
            .expect("airlock");
        let stderr = text(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("{tool} not found")) && stderr.contains(install),
            "{stderr}"
        );
    }
}

/// Decisions back to back (four threads) take spares faster than the worker
/// makes them; used instances must still be discarded fast enough that the
/// instance pool never runs out (32 slots here, 400 decisions).
#[test]
fn decisions_flat_out_never_exhaust_the_instance_pool() {
    let engine = support::engine();
    let limits = Limits::default();
    let counter = load(&engine, &guest("python", "counter"), &limits);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..100 {
                    let e = counter.evaluate(&get("svc", "/x"), Arc::new(NoState), &limits);
                    assert_eq!(
                        e.verdict,
                        Verdict::Deny("calls=1 session=s-1".into()),
                        "decision {i}"
                    );
                }
            });
        }
    });
}

//! Signed modules: with `[policies] trusted_keys`, a module loads only with a
//! valid detached minisign signature beside it. Keys and signatures are made
//! with Debian's `minisign` tool (and `airlock policy sign`, checked by it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::e2e::{Airlock, Behaviour, Start, Upstream, World, reader_body};
use support::{airlock, guest};

/// A minisign key pair made by the `minisign` tool, without a password.
struct KeyPair {
    public: PathBuf,
    secret: PathBuf,
}

impl KeyPair {
    fn generate(dir: &Path, name: &str) -> KeyPair {
        let public = dir.join(format!("{name}.pub"));
        let secret = dir.join(format!("{name}.key"));
        let out = Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(&public)
            .arg("-s")
            .arg(&secret)
            .output()
            .expect("minisign is installed (Debian package minisign)");
        assert!(
            out.status.success(),
            "minisign -G: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        KeyPair { public, secret }
    }

    /// The base64 line of the public key file, as `trusted_keys` takes it.
    fn public_line(&self) -> String {
        let text = std::fs::read_to_string(&self.public).expect("public key");
        text.lines().last().expect("key line").trim().to_string()
    }

    /// Sign `bytes` with the `minisign` tool; the `.minisig` file's text.
    fn sign(&self, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("module.wasm");
        std::fs::write(&file, bytes).expect("write module");
        let out = Command::new("minisign")
            .arg("-S")
            .arg("-s")
            .arg(&self.secret)
            .arg("-m")
            .arg(&file)
            .output()
            .expect("minisign -S");
        assert!(
            out.status.success(),
            "minisign -S: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(dir.path().join("module.wasm.minisig")).expect("signature")
    }

    /// Whether the `minisign` tool accepts `file`'s signature (`file.minisig`).
    fn verifies(&self, file: &Path) -> bool {
        Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&self.public)
            .arg("-m")
            .arg(file)
            .output()
            .expect("minisign -V")
            .status
            .success()
    }
}

struct Setup {
    world: World,
    airlock: Airlock,
    _upstream: Upstream,
    _keys: tempfile::TempDir,
    trusted: KeyPair,
    other: KeyPair,
}

fn setup() -> Setup {
    let keys = tempfile::tempdir().expect("tempdir");
    let trusted = KeyPair::generate(keys.path(), "trusted");
    let other = KeyPair::generate(keys.path(), "other");
    let world = World::new();
    let crash = world.upstream(Behaviour::Verify {
        audience: "crash-reporting".into(),
    });
    let module = guest("good-allow");
    let signature = trusted.sign(&module);
    let policies_config = format!("trusted_keys = [{:?}]", trusted.public_line());
    let body = reader_body(&crash.url());
    let airlock = world.airlock(Start {
        body: &body,
        policies_config: &policies_config,
        policies: vec![
            ("reader.wasm", module),
            ("reader.wasm.minisig", signature.into_bytes()),
        ],
        ..Start::default()
    });
    Setup {
        world,
        airlock,
        _upstream: crash,
        _keys: keys,
        trusted,
        other,
    }
}

impl Setup {
    fn digest(&self) -> String {
        let r = self.airlock.admin(&self.world, "GET", "/v1/policies", "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["policies"][0]["policy"]["digest"]
            .as_str()
            .expect("digest")
            .to_string()
    }

    fn scope(&self, handle: &str) -> String {
        let r = self
            .airlock
            .call(&self.world, handle, "GET", "/crash-reporting/crashes/1", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["claims"]["scope"].as_str().expect("scope").to_string()
    }

    /// Put `module` (and `signature`, or none) in place of the role's module and reload;
    /// the reload's answer for the role.
    fn replace_and_reload(&self, module: &[u8], signature: Option<&str>) -> serde_json::Value {
        let policies = self.airlock.path().join("policies");
        std::fs::write(policies.join("reader.wasm"), module).expect("module");
        let sig = policies.join("reader.wasm.minisig");
        match signature {
            Some(text) => std::fs::write(&sig, text).expect("signature"),
            None => {
                let _ = std::fs::remove_file(&sig);
            }
        }
        let r = self.airlock.admin(&self.world, "POST", "/v1/policies/reload", "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["roles"][0].clone()
    }

    fn rejections(&self) -> Vec<String> {
        self.airlock
            .audit_records()
            .iter()
            .filter(|r| r["kind"] == "admin" && r["action"] == "policy.rejected")
            .map(|r| r["detail"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// A module signed by a trusted key with the `minisign` tool loads; a byte
/// flipped, a signature by another key and a missing signature are each
/// refused with their reason, audited, while the old version keeps serving;
/// a correctly signed new version then replaces it.
#[test]
fn only_a_module_signed_by_a_trusted_key_replaces_the_working_one() {
    let s = setup();
    let (_, handle) = s.airlock.session(&s.world, "reader", "agent-1", 600);
    assert_eq!(s.scope(&handle), "ok:read");
    let serving = s.digest();

    let v2 = guest("good-allow-v2");
    let mut flipped = v2.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let cases: [(&str, &[u8], Option<String>, &str); 3] = [
        (
            "a byte flipped",
            &flipped,
            Some(s.trusted.sign(&v2)),
            "does not match the module",
        ),
        (
            "another key",
            &v2,
            Some(s.other.sign(&v2)),
            "not one of the trusted keys",
        ),
        ("no signature", &v2, None, "no signature"),
    ];
    for (case, module, signature, reason) in &cases {
        let outcome = s.replace_and_reload(module, signature.as_deref());
        let error = outcome["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: not refused: {outcome}"));
        assert!(error.contains(reason), "{case}: {error}");
        assert_eq!(s.digest(), serving, "{case}: the working version was replaced");
        assert_eq!(
            s.scope(&handle),
            "ok:read",
            "{case}: the working version stopped serving"
        );
    }
    let rejections = s.rejections();
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    for ((case, _, _, reason), detail) in cases.iter().zip(&rejections) {
        assert!(detail.contains(reason), "{case}: audited as {detail:?}");
    }

    let outcome = s.replace_and_reload(&v2, Some(&s.trusted.sign(&v2)));
    assert!(
        outcome["to"].is_string(),
        "a correctly signed module was refused: {outcome}"
    );
    assert_eq!(s.scope(&handle), "ok:read:v2");
    let loaded = s
        .airlock
        .audit_records()
        .into_iter()
        .rfind(|r| r["action"] == "policy.loaded")
        .expect("a policy.loaded record");
    let digest = s.digest();
    assert!(
        loaded["detail"].as_str().unwrap_or("").ends_with(&digest),
        "the audit names the verified module's digest {digest}: {loaded}"
    );

    // A candidate version (shadow) must be signed as well.
    let policies = s.airlock.path().join("policies");
    std::fs::write(policies.join("candidate.wasm"), guest("good-allow")).expect("candidate");
    let shadow = |s: &Setup| {
        s.airlock.admin(
            &s.world,
            "PUT",
            "/v1/policies/reader/shadow",
            r#"{"file": "candidate.wasm"}"#,
        )
    };
    let r = shadow(&s);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("no signature"), "{}", r.text());
    let signature = s.trusted.sign(&guest("good-allow"));
    std::fs::write(policies.join("candidate.wasm.minisig"), signature).expect("signature");
    let r = shadow(&s);
    assert_eq!(r.status, 200, "a signed candidate was refused: {}", r.text());
}

/// `airlock policy sign` makes a signature the `minisign` tool verifies.
#[test]
fn airlock_policy_sign_makes_signatures_minisign_verifies() {
    let keys = tempfile::tempdir().expect("tempdir");
    let pair = KeyPair::generate(keys.path(), "k");
    let module = keys.path().join("m.wasm");
    std::fs::write(&module, guest("good-allow")).expect("module");
    let out = airlock(&[
        "policy",
        "sign",
        module.to_str().expect("utf-8"),
        "--key",
        pair.secret.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pair.verifies(&module), "minisign rejected airlock's signature");
    // And a changed module fails minisign's own check, so the test can fail.
    std::fs::write(&module, guest("good-allow-v2")).expect("module");
    assert!(!pair.verifies(&module), "minisign accepted a changed module");
}

/// With trusted keys set, a host does not start on an unsigned module, and says why.
#[test]
fn an_unsigned_module_keeps_the_host_from_starting() {
    let keys = tempfile::tempdir().expect("tempdir");
    let pair = KeyPair::generate(keys.path(), "k");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::write(dir.path().join("policies/reader.wasm"), guest("good-allow")).expect("module");
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[policies]
dir = "policies"
trusted_keys = [{:?}]

[services.s]
upstream = "http://127.0.0.1:9"
routes = [{{ op = "x.read", method = "GET", path = "/x" }}]

[roles.reader]
policy = "reader.wasm"
services = ["s"]
"#,
            pair.public_line()
        ),
    )
    .expect("config");
    let out = airlock(&["config", "check", config.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "an unsigned module passed the check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reader.wasm") && stderr.contains("no signature"),
        "{stderr}"
    );
}

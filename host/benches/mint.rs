//! Minting one token, per algorithm.
//!
//! Run: `cargo bench -p airlock --bench mint`
//!
//! `KeyStore::mint` signs with a key parsed once and a precomputed header.
//! The baseline, in the same run and with the same key (read back from the
//! key store's PKCS#8 file), is `jsonwebtoken::encode` of the same claims and
//! header, which parses the key on every call. The baseline encodes a
//! prebuilt claims value, so it skips the jti generation and claim checks
//! that `mint` does: the comparison favours it slightly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};

use airlock::token::{Algorithm, KeyStore, TokenRequest, request_binding};

const SAMPLES: usize = 20_000;
const MAX_TTL: Duration = Duration::from_secs(300);

/// A bare signing function over a parsed key.
type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

struct Case {
    alg: Algorithm,
    store: KeyStore,
    encoding_key: jsonwebtoken::EncodingKey,
    /// The bare signature, for the floor: what neither can avoid.
    sign: SignFn,
    _dir: tempfile::TempDir,
}

fn case(alg: Algorithm) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::open(&dir.path().join("keys"), alg, MAX_TTL).expect("key store");
    let der = std::fs::read(
        dir.path()
            .join("keys")
            .join(format!("{}.der", store.active_kid())),
    )
    .expect("key file");
    let encoding_key = match alg {
        Algorithm::Es256 => jsonwebtoken::EncodingKey::from_ec_der(&der),
        Algorithm::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(&der),
    };
    let sign: SignFn = match alg {
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).expect("p256");
            let rng = aws_lc_rs::rand::SystemRandom::new();
            Box::new(move |m| pair.sign(&rng, m).expect("sign").as_ref().to_vec())
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8(&der).expect("ed25519");
            Box::new(move |m| pair.sign(m).as_ref().to_vec())
        }
    };
    Case {
        alg,
        store,
        encoding_key,
        sign,
        _dir: dir,
    }
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn timings(mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

fn mint(c: &mut Criterion) {
    let scopes = vec!["issues:read".to_owned(), "repo:acme/api".to_owned()];
    let extra = BTreeMap::from([("ticket".to_owned(), serde_json::json!("BUG-1234"))]);
    let body = vec![b'x'; 1024];
    let query = vec![("state".to_owned(), "open".to_owned())];
    let binding = request_binding("GET", "/repos/acme/api/issues/7", &query, &body);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let request = TokenRequest {
        issuer: "airlock",
        agent: "agent-7f3a",
        audience: "code",
        scopes: &scopes,
        role: "code-reviewer",
        session: "sess-0b9e2c7d",
        workflow: "wf-bugfix-42",
        on_behalf_of: Some("alice@example.com"),
        policy_digest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        request_binding: &binding,
        single_use: true,
        jti: None,
        extra_claims: &extra,
        now,
        ttl: Duration::from_secs(60),
    };

    let cases = [case(Algorithm::Es256), case(Algorithm::EdDsa)];
    // The baseline's inputs: the very claims and header `mint` produces.
    let baselines: Vec<(jsonwebtoken::Header, serde_json::Value)> = cases
        .iter()
        .map(|c| {
            let token = c.store.mint(&request).expect("mint").token;
            let payload = token.split('.').nth(1).expect("payload");
            let claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
            let mut header = jsonwebtoken::Header::new(jwt_alg(c.alg));
            header.kid = Some(c.store.active_kid());
            let check = jsonwebtoken::encode(&header, &claims, &c.encoding_key).expect("baseline encodes");
            let verified = airlock::token::verify(&check, &c.store.jwks(), "airlock", "code", now, 0);
            assert!(verified.is_ok(), "baseline token must verify: {verified:?}");
            (header, claims)
        })
        .collect();

    let mut group = c.benchmark_group("mint");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (c, (header, claims)) in cases.iter().zip(&baselines) {
        group.bench_function(format!("{}/airlock-mint", c.alg), |b| {
            b.iter(|| c.store.mint(std::hint::black_box(&request)).expect("mint"))
        });
        group.bench_function(format!("{}/jsonwebtoken-encode", c.alg), |b| {
            b.iter(|| {
                jsonwebtoken::encode(header, std::hint::black_box(claims), &c.encoding_key).expect("encode")
            })
        });
    }
    group.bench_function("request_binding/1KiB-body", |b| {
        b.iter(|| {
            request_binding(
                "GET",
                "/repos/acme/api/issues/7",
                &query,
                std::hint::black_box(&body),
            )
        })
    });
    group.finish();

    println!(
        "\np50/p99 over {SAMPLES} single calls each (µs); baseline = jsonwebtoken::encode, same key and claims"
    );
    println!("(sign p50: the bare signature over a token-sized message, the floor for both)");
    println!(
        "{:<6} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}",
        "alg", "mint p50", "mint p99", "encode p50", "encode p99", "p50 ratio", "sign p50"
    );
    for (c, (header, claims)) in cases.iter().zip(&baselines) {
        let (mint_p50, mint_p99) = timings(|| {
            std::hint::black_box(c.store.mint(&request).expect("mint"));
        });
        let (enc_p50, enc_p99) = timings(|| {
            std::hint::black_box(jsonwebtoken::encode(header, claims, &c.encoding_key).expect("encode"));
        });
        let message = vec![b'.'; 700];
        let (sign_p50, _) = timings(|| {
            std::hint::black_box((c.sign)(std::hint::black_box(&message)));
        });
        println!(
            "{:<6} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>9.2}x {:>9.1}",
            c.alg.as_str(),
            micros(mint_p50),
            micros(mint_p99),
            micros(enc_p50),
            micros(enc_p99),
            micros(mint_p50) / micros(enc_p50).max(0.001),
            micros(sign_p50)
        );
    }
}

criterion_group!(benches, mint);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The cached verification path per algorithm, next to the bare signature
//! check of the same token with the same library, so the guard's own cost
//! is visible:
//!
//! - `raw`: split off the signature, base64-decode it into a stack buffer,
//!   `ParsedPublicKey::verify_sig` (aws-lc-rs) — the floor any verifier pays;
//! - `jose`: `tessera_jose::UnverifiedJws::parse` + `verify` (header JSON,
//!   base64, payload decoded but its claims skipped);
//! - `guard`: `Verifier::verify` with the keys cached, fetched once from a
//!   JWKS server on 127.0.0.1: every claim check and the `AccessToken` built.
//!
//! HS256 (shared secret) is measured too: its signature check costs about a
//! microsecond, so its `guard - raw` difference is the guard's own cost
//! (JOSE parsing, claim checks, the result) in absolute terms.
//!
//! After the criterion groups, a paired run alternates short batches of
//! `raw` and `guard` and prints the median ratio: on a shared machine that
//! cancels most of the noise other processes add to separate runs.
//!
//! Run with `cargo bench -p tessera-bench --bench verify`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use criterion::Criterion;
use serde_json::json;
use tessera_guard::{Algorithm, SharedSecret, Verifier};
use tessera_jose::{Jwk, JwkSet, SigningKey, UnverifiedJws, VerifyingKey, b64_decode, encode};

const AUDIENCE: &str = "https://orders";
const SECRET: &[u8] = b"a resource secret of at least 32 bytes";

struct Case {
    alg: Algorithm,
    token: String,
    raw_key: RawKey,
    jose_key: VerifyingKey,
}

enum RawKey {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

fn main() {
    let (verifier, cases, _runtime) = setup();
    if let Ok(spec) = std::env::var("TESSERA_GUARD_BENCH_ONLY") {
        // For instruction and allocation counts under callgrind: run one
        // path `n` times inside `measured` (toggle-collect on it), nothing else.
        let mut parts = spec.split(':');
        let (alg, path, n) = (parts.next(), parts.next(), parts.next());
        let n: u32 = n.and_then(|n| n.parse().ok()).unwrap_or(1000);
        let case = cases
            .iter()
            .find(|c| Some(c.alg.as_str()) == alg)
            .expect("algorithm");
        let ok = match path {
            Some("raw") => measured(n, &|| raw(&case.raw_key, black_box(&case.token))),
            Some("jose") => measured(n, &|| jose(&case.jose_key, black_box(&case.token))),
            _ => measured(n, &|| {
                poll_once(verifier.verify(black_box(&case.token))).is_ok()
            }),
        };
        assert!(ok);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    for case in &cases {
        // The three paths must agree before they are timed.
        assert!(raw(&case.raw_key, &case.token));
        assert!(jose(&case.jose_key, &case.token));
        assert!(poll_once(verifier.verify(&case.token)).is_ok());

        let mut group = criterion.benchmark_group(case.alg.as_str());
        group.bench_function("raw", |b| {
            b.iter(|| raw(&case.raw_key, black_box(&case.token)))
        });
        group.bench_function("jose", |b| {
            b.iter(|| jose(&case.jose_key, black_box(&case.token)))
        });
        group.bench_function("guard", |b| {
            b.iter(|| poll_once(verifier.verify(black_box(&case.token))).is_ok())
        });
        group.finish();
    }
    criterion.final_summary();

    println!("\npaired runs (alternating batches, median of 41 rounds):");
    for case in &cases {
        let (raw_ns, guard_ns) = paired(
            || raw(&case.raw_key, black_box(&case.token)),
            || poll_once(verifier.verify(black_box(&case.token))).is_ok(),
        );
        println!(
            "{:>6}: raw {:>9.0} ns  guard {:>9.0} ns  guard overhead {:>+7.0} ns ({:+.1}%)",
            case.alg.as_str(),
            raw_ns,
            guard_ns,
            guard_ns - raw_ns,
            (guard_ns / raw_ns - 1.0) * 100.0
        );
    }
}

#[inline(never)]
fn measured(n: u32, f: &dyn Fn() -> bool) -> bool {
    let mut ok = true;
    for _ in 0..n {
        ok &= f();
    }
    ok
}

/// Median per-iteration times of `a` and `b`, measured in alternating
/// batches so both see the same background load.
fn paired(a: impl Fn() -> bool, b: impl Fn() -> bool) -> (f64, f64) {
    let batch = {
        // Batches of about 20 ms each.
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed().as_millis() < 20 {
            black_box(a());
            n += 1;
        }
        n.max(1)
    };
    let time = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(batch)
    };
    let mut ratios = Vec::new();
    let mut a_times = Vec::new();
    for _ in 0..41 {
        let ta = time(&a);
        let tb = time(&b);
        ratios.push(tb / ta);
        a_times.push(ta);
    }
    ratios.sort_by(f64::total_cmp);
    a_times.sort_by(f64::total_cmp);
    let a_median = a_times[a_times.len() / 2];
    (a_median, a_median * ratios[ratios.len() / 2])
}

fn setup() -> (Verifier, Vec<Case>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let algorithms = [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ];
    let keys: Vec<SigningKey> = algorithms
        .iter()
        .map(|&alg| {
            SigningKey::generate(alg, format!("{alg}-1"))
                .expect("generate")
                .0
        })
        .collect();
    let jwks = JwkSet {
        keys: keys.iter().map(|k| k.public_jwk().expect("jwk")).collect(),
    };
    let (issuer, _server) = runtime.block_on(serve(jwks));
    let verifier = runtime
        .block_on(
            Verifier::builder(issuer.clone(), AUDIENCE)
                .require_scopes(["orders.read"])
                .shared_secret(SharedSecret::new(SECRET))
                .discover(),
        )
        .expect("discover");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // A realistic RFC 9068 token, the shape Tessera issues.
    let claims = json!({
        "iss": issuer, "sub": "248289761001", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "jti": "dbe39bf3a3ba4238a513f51d6e1691c4",
        "client_id": "s6BhdRkqt3", "scope": "orders.read profile",
        "auth_time": now, "acr": "1", "amr": ["pwd"],
    });
    let mut cases: Vec<Case> = keys
        .iter()
        .map(|key| {
            let jwk = key.public_jwk().expect("jwk");
            Case {
                alg: key.alg(),
                token: encode(key, "at+jwt", &claims).expect("sign"),
                raw_key: RawKey::Public(raw_key(key.alg(), &jwk)),
                jose_key: VerifyingKey::from_jwk(&jwk).expect("jwk"),
            }
        })
        .collect();
    let hs = SigningKey::hmac("resource", SECRET).expect("hmac");
    cases.push(Case {
        alg: Algorithm::HS256,
        token: encode(&hs, "at+jwt", &claims).expect("sign"),
        raw_key: RawKey::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, SECRET))),
        jose_key: hs.verifying_key().expect("hmac"),
    });
    (verifier, cases, runtime)
}

fn raw(key: &RawKey, token: &str) -> bool {
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let mut buffer = [0u8; 512];
    let Ok(n) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(signature, &mut buffer)
    else {
        return false;
    };
    let signature = &buffer[..n];
    match key {
        RawKey::Public(key) => key.verify_sig(input.as_bytes(), signature).is_ok(),
        RawKey::Hmac(key) => hmac::verify(key, input.as_bytes(), signature).is_ok(),
    }
}

fn jose(key: &VerifyingKey, token: &str) -> bool {
    UnverifiedJws::parse(token)
        .and_then(|jws| jws.verify::<serde::de::IgnoredAny>(key))
        .is_ok()
}

/// The cached path completes at its first poll; anything else is a bug
/// worth a loud failure here.
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification with cached keys waited"),
    }
}

fn raw_key(alg: Algorithm, jwk: &Jwk) -> ParsedPublicKey {
    let member = |m: &Option<String>| b64_decode(m.as_deref().expect("member")).expect("b64");
    match alg {
        Algorithm::ES256 => {
            let mut point = vec![0x04];
            point.extend(member(&jwk.x));
            point.extend(member(&jwk.y));
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).expect("ec")
        }
        Algorithm::RS256 | Algorithm::PS256 => RsaPublicKeyComponents {
            n: member(&jwk.n),
            e: member(&jwk.e),
        }
        .to_parsed_public_key(if alg == Algorithm::PS256 {
            &signature::RSA_PSS_2048_8192_SHA256
        } else {
            &signature::RSA_PKCS1_2048_8192_SHA256
        })
        .expect("rsa"),
        Algorithm::EdDSA => ParsedPublicKey::new(&signature::ED25519, member(&jwk.x)).expect("ed"),
        other => panic!("not benchmarked: {other}"),
    }
}

async fn serve(jwks: JwkSet) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let metadata = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")});
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(metadata) }),
        )
        .route(
            "/jwks.json",
            get(move || async move { ([("cache-control", "public, max-age=86400")], Json(jwks)) }),
        );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (issuer, server)
}

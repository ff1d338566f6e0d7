//! Requests per second on loopback, with the optimised build (`cargo bench -p
//! tessera-bench --bench load`): the client credentials grant, the
//! authorization code exchange and the refresh token rotation, each driven over
//! HTTP by concurrent clients against a server on the embedded SQLite store,
//! and token exchange of an app token beside client credentials. The
//! login's argon2id cost is measured separately: it is not on the token path.
//!
//! Bounded: a fixed number of requests per scenario; it stops by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_core::authorize::{AuthorizationRequest, ResponseMode, ResponseType};
use tessera_core::crypto::{KeyEncryptionKey, SecretDigest};
use tessera_core::model::{Client, GrantType, IntrospectionPolicy};
use tessera_core::scope::Scope;
use tessera_core::store::User;
use tessera_core::{Provider, Settings, SystemClock, password};
use tessera_server::{AppState, app};

const CONCURRENCY: usize = 16;
const REQUESTS: usize = 3000;
const SECRET: &str = "kG2nq9Zr3v8T1mWc5YbX0dLf4uJh7sAe6iPo2RtQwEy";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://app.example/cb";

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("tessera-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = tessera_store::connect(&format!("sqlite://{}/load.db", dir.display()))
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (kek, _) = KeyEncryptionKey::generate();
    let provider = Arc::new(Provider::new(
        store,
        Arc::new(SystemClock),
        Settings::new(base.clone()),
        kek,
    ));
    provider.start().await.expect("keys");
    let client = Client {
        id: "bench".into(),
        name: "Bench".into(),
        secret_digest: Some(SecretDigest::of(SECRET)),
        sealed_secret: None,
        auth_method: None,
        jwks: None,
        jwks_uri: None,
        grants: vec![
            GrantType::ClientCredentials,
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::TokenExchange,
        ],
        redirect_uris: vec![REDIRECT.into()],
        scopes: Scope::parse("openid profile api").expect("scope"),
        audiences: vec![],
        token_format: None,
        access_token_ttl: None,
        introspection: IntrospectionPolicy::Any,
        require_pkce: true,
        id_token_alg: None,
        post_logout_redirect_uris: vec![],
        metadata: Default::default(),
        created_at: 0,
    };
    provider
        .store()
        .insert_client(&client)
        .await
        .expect("client");

    let started = Instant::now();
    let hash = password::hash("correct horse battery").expect("hash");
    let hash_time = started.elapsed();
    let started = Instant::now();
    assert!(password::verify("correct horse battery", &hash));
    let verify_time = started.elapsed();
    let user = User {
        id: "user-1".into(),
        username: "alice".into(),
        email: None,
        name: None,
        password_hash: hash,
        created_at: 0,
    };
    provider.store().insert_user(&user).await.expect("user");
    let session = provider
        .start_session(&user)
        .await
        .expect("session")
        .session;

    let server = tokio::spawn(async move {
        let router = app(AppState {
            provider: Arc::clone(&provider),
        });
        axum::serve(listener, router).await.expect("serve");
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("http");
    let token_url = format!("{base}/oauth2/token");

    // The provider again, for minting codes directly (the browser part of the
    // code flow is not what is measured).
    let store = tessera_store::connect(&format!("sqlite://{}/load.db", dir.display()))
        .await
        .expect("store");
    let (kek2, _) = KeyEncryptionKey::generate();
    let minter = Provider::new(
        store,
        Arc::new(SystemClock),
        Settings::new(base.clone()),
        kek2,
    );

    println!("scenario                          requests  concurrency      req/s   mean latency");
    let cc = run(&http, &token_url, REQUESTS, |_| {
        vec![
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), "api".into()),
        ]
    })
    .await;
    report("client_credentials (JWT, ES256)", cc);

    // Token exchange of an app token, delegated to the client (RFC 8693).
    let subject = post(
        &http,
        &token_url,
        &[
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), "api".into()),
        ],
    )
    .await["access_token"]
        .as_str()
        .expect("subject token")
        .to_owned();
    let exchanged = run(&http, &token_url, REQUESTS, move |_| {
        vec![
            (
                "grant_type".into(),
                "urn:ietf:params:oauth:grant-type:token-exchange".into(),
            ),
            ("subject_token".into(), subject.clone()),
            (
                "subject_token_type".into(),
                "urn:ietf:params:oauth:token-type:access_token".into(),
            ),
        ]
    })
    .await;
    report("token_exchange (JWT, ES256)", exchanged);

    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: REDIRECT.into(),
        response_type: ResponseType::Code,
        response_mode: ResponseMode::Query,
        scope: "openid profile".into(),
        state: None,
        nonce: Some("n".into()),
        code_challenge: Some(CHALLENGE.into()),
        prompt: vec![],
        max_age: None,
        login_hint: None,
        resources: vec![],
    };
    let mut codes = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let redirect = minter
            .authorization_response(&client, &request, &user, &session)
            .await
            .expect("code");
        codes.push(
            redirect
                .params
                .iter()
                .find(|(k, _)| k == "code")
                .expect("code")
                .1
                .clone(),
        );
    }
    let codes = Arc::new(codes);
    let exchange = run(&http, &token_url, REQUESTS, move |i| {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), codes[i].clone()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), VERIFIER.into()),
        ]
    })
    .await;
    report("authorization_code exchange", exchange);

    // Refresh rotation: each client follows its own chain, each use rotates.
    let rotations = REQUESTS / CONCURRENCY;
    let started = Instant::now();
    let mut chains = Vec::new();
    for _ in 0..CONCURRENCY {
        let redirect = minter
            .authorization_response(&client, &request, &user, &session)
            .await
            .expect("code");
        let code = redirect
            .params
            .iter()
            .find(|(k, _)| k == "code")
            .expect("code")
            .1
            .clone();
        let first = post(
            &http,
            &token_url,
            &[
                ("grant_type".into(), "authorization_code".into()),
                ("code".into(), code),
                ("redirect_uri".into(), REDIRECT.into()),
                ("code_verifier".into(), VERIFIER.into()),
            ],
        )
        .await;
        let http = http.clone();
        let url = token_url.clone();
        chains.push(tokio::spawn(async move {
            let mut refresh = first["refresh_token"].as_str().expect("refresh").to_owned();
            for _ in 0..rotations {
                let body = post(
                    &http,
                    &url,
                    &[
                        ("grant_type".into(), "refresh_token".into()),
                        ("refresh_token".into(), refresh),
                    ],
                )
                .await;
                refresh = body["refresh_token"].as_str().expect("rotated").to_owned();
            }
        }));
    }
    let setup = started.elapsed();
    let started = Instant::now();
    for chain in chains {
        chain.await.expect("chain");
    }
    let _ = setup;
    report(
        "refresh_token rotation",
        (rotations * CONCURRENCY, started.elapsed()),
    );

    println!();
    println!(
        "argon2id password hash: {:.1} ms, verify: {:.1} ms (login only, never on the token path)",
        hash_time.as_secs_f64() * 1000.0,
        verify_time.as_secs_f64() * 1000.0
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run<F>(http: &reqwest::Client, url: &str, total: usize, form: F) -> (usize, Duration)
where
    F: Fn(usize) -> Vec<(String, String)> + Send + Sync + 'static,
{
    let form = Arc::new(form);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, form, next) = (
            http.clone(),
            url.to_owned(),
            Arc::clone(&form),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                post(&http, &url, &form(i)).await;
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    (total, started.elapsed())
}

async fn post(http: &reqwest::Client, url: &str, form: &[(String, String)]) -> Value {
    let response = http
        .post(url)
        .basic_auth("bench", Some(SECRET))
        .form(form)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn report(name: &str, (requests, elapsed): (usize, Duration)) {
    let rps = requests as f64 / elapsed.as_secs_f64();
    let latency = elapsed.as_secs_f64() * 1000.0 * CONCURRENCY as f64 / requests as f64;
    println!("{name:32} {requests:9} {CONCURRENCY:12} {rps:10.0} {latency:11.2} ms");
}

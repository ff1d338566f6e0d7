//! A small stand-in for Tessera: discovery, JWKS and introspection over real
//! HTTP on 127.0.0.1, with keys made by tessera-jose. It counts requests so
//! tests can check what the guard fetched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_guard::{ClientSecret, Clock as _, ManualClock, Verifier, VerifierBuilder};
use tessera_jose::{Algorithm, JwkSet, SigningKey, encode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const AUDIENCE: &str = "https://orders";
pub const CLIENT_ID: &str = "orders api";
pub const CLIENT_SECRET: &str = "s3cr:t/with%chars";

#[derive(Default)]
pub struct Shared {
    pub issuer: Mutex<String>,
    pub jwks: Mutex<JwkSet>,
    pub cache_control: Mutex<Option<String>>,
    pub jwks_hits: AtomicUsize,
    pub introspection_hits: AtomicUsize,
    /// token -> introspection answer; unknown tokens are inactive.
    pub introspection: Mutex<HashMap<String, Value>>,
}

pub struct Fixture {
    pub issuer: String,
    pub shared: Arc<Shared>,
    pub clock: Arc<ManualClock>,
    /// The key that signs by default (ES256, kid "es-1"), published.
    pub key: SigningKey,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Fixture {
    pub async fn start() -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        *shared.issuer.lock().unwrap() = issuer.clone();
        *shared.cache_control.lock().unwrap() = Some("public, max-age=600".into());
        let key = generate(Algorithm::ES256, "es-1");
        shared
            .jwks
            .lock()
            .unwrap()
            .keys
            .push(key.public_jwk().expect("jwk"));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/jwks.json", get(jwks))
            .route("/oauth2/introspect", post(introspect))
            .with_state(Arc::clone(&shared));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Fixture {
            issuer,
            shared,
            clock: Arc::new(ManualClock::starting_now()),
            key,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until its port is closed.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops")
                .expect("server task");
        }
    }

    pub fn builder(&self) -> VerifierBuilder {
        Verifier::builder(self.issuer.clone(), AUDIENCE).clock(self.clock.clone())
    }

    pub async fn verifier(&self) -> Verifier {
        self.builder().discover().await.expect("discover")
    }

    pub async fn introspecting_verifier(&self) -> Verifier {
        self.builder()
            .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
            .discover()
            .await
            .expect("discover")
    }

    pub fn publish(&self, key: &SigningKey) {
        self.shared
            .jwks
            .lock()
            .unwrap()
            .keys
            .push(key.public_jwk().expect("jwk"));
    }

    pub fn unpublish(&self, kid: &str) {
        self.shared
            .jwks
            .lock()
            .unwrap()
            .keys
            .retain(|k| k.kid.as_deref() != Some(kid));
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.shared.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn introspection_hits(&self) -> usize {
        self.shared.introspection_hits.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> i64 {
        unix(self.clock.now())
    }

    pub fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    /// Claims of a valid access token at the fixture clock's time.
    pub fn claims(&self) -> Value {
        let now = self.now();
        json!({
            "iss": self.issuer, "sub": "alice", "aud": AUDIENCE,
            "exp": now + 900, "iat": now, "jti": "jti-1",
            "client_id": "web-app", "scope": "orders.read profile",
        })
    }

    /// A valid access token signed with the default key.
    pub fn token(&self) -> String {
        sign(&self.key, "at+jwt", &self.claims())
    }

    /// Registers an opaque reference token with the given introspection answer.
    pub fn reference(&self, token: &str, answer: Value) {
        self.shared
            .introspection
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// An active introspection answer for a valid token.
    pub fn active(&self) -> Value {
        let mut claims = self.claims();
        claims["active"] = true.into();
        claims["token_type"] = "Bearer".into();
        claims
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn generate(alg: Algorithm, kid: &str) -> SigningKey {
    SigningKey::generate(alg, kid).expect("generate").0
}

pub fn sign(key: &SigningKey, typ: &str, claims: &Value) -> String {
    encode(key, typ, claims).expect("sign")
}

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = shared.issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let body = Json(shared.jwks.lock().unwrap().clone());
    match shared.cache_control.lock().unwrap().clone() {
        Some(cc) => ([(header::CACHE_CONTROL, cc)], body).into_response(),
        None => body.into_response(),
    }
}

async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.introspection_hits.fetch_add(1, Ordering::SeqCst);
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(CLIENT_ID),
            encode(CLIENT_SECRET)
        ))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = shared
        .introspection
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}

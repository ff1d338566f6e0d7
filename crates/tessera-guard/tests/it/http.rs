//! The tower layer and the axum extractor: status codes and the exact
//! `WWW-Authenticate` challenges of RFC 6750 §3, and the precise reasons that
//! go to the log instead of the wire.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;
use tessera_guard::{Algorithm, Authenticated, GuardLayer, Rejection, Verifier};
use tower::ServiceExt as _;
use tracing::Level;

use crate::fixture::{Fixture, generate, sign};

const BARE: &str = r#"Bearer realm="https://orders""#;
const EXPIRED: &str = r#"Bearer realm="https://orders", error="invalid_token", error_description="the access token expired""#;
const INVALID: &str = r#"Bearer realm="https://orders", error="invalid_token", error_description="the access token is invalid""#;
const NO_SCOPE: &str = r#"Bearer realm="https://orders", error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders.read""#;

async fn orders(Authenticated(token): Authenticated) -> String {
    format!("orders of {}", token.subject())
}

async fn cancel(Authenticated(token): Authenticated) -> Result<String, Rejection> {
    token.require_scopes(&["orders.write"])?;
    Ok(format!("cancelled for {}", token.subject()))
}

fn layered(verifier: Verifier) -> Router {
    Router::new().route("/orders", get(orders)).layer(
        GuardLayer::new(verifier)
            .require_scopes(["orders.read"])
            .expect("scopes"),
    )
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn call(app: &Router, authorization: &[&str]) -> Answer {
    let mut request = Request::get("/orders");
    for value in authorization {
        request = request.header(header::AUTHORIZATION, *value);
    }
    call_request(app, request.body(Body::empty()).expect("request")).await
}

async fn call_request(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = to_bytes(response.into_body(), 1 << 16).await.expect("body");
    Answer {
        status,
        challenge,
        retry_after,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);
    let answer = call(&app, &[&bearer(&fx.token())]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.challenge, None);
    assert_eq!(answer.body, "orders of alice");
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);
    for authorization in [&[][..], &["Basic dXNlcjpwYXNz"][..]] {
        let answer = call(&app, authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.challenge.as_deref(), Some(BARE));
        assert_eq!(answer.body, "");
    }
}

#[tokio::test]
async fn invalid_tokens_get_401_invalid_token() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);

    let mut expired = fx.claims();
    expired["exp"] = json!(fx.now() - 60);
    let mut other_audience = fx.claims();
    other_audience["aud"] = json!("https://billing");
    let impostor = generate(tessera_jose::Algorithm::ES256, "es-1");
    let cases = [
        ("Bearer not a token".to_owned(), INVALID),
        (bearer("a.b"), INVALID),
        (bearer(&sign(&fx.key, "at+jwt", &expired)), EXPIRED),
        (bearer(&sign(&impostor, "at+jwt", &fx.claims())), INVALID),
        (bearer(&sign(&fx.key, "JWT", &fx.claims())), INVALID),
        (bearer(&sign(&fx.key, "at+jwt", &other_audience)), INVALID),
        (bearer("b3BhcXVl"), INVALID),
    ];
    for (authorization, challenge) in cases {
        let answer = call(&app, &[&authorization]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(
            answer.challenge.as_deref(),
            Some(challenge),
            "{authorization}"
        );
        let body: serde_json::Value = serde_json::from_str(&answer.body).expect("json body");
        assert_eq!(body["error"], "invalid_token");
    }
}

#[tokio::test]
async fn a_missing_scope_gets_403_insufficient_scope() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);
    let mut claims = fx.claims();
    claims["scope"] = json!("profile");
    let answer = call(&app, &[&bearer(&sign(&fx.key, "at+jwt", &claims))]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.challenge.as_deref(), Some(NO_SCOPE));
    assert_eq!(
        answer.body,
        r#"{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}"#
    );
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);
    let token = bearer(&fx.token());
    let answer = call(&app, &[&token, &token]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            r#"Bearer realm="https://orders", error="invalid_request", error_description="the request carries more than one Authorization header""#
        )
    );
}

#[tokio::test]
async fn no_keys_and_no_server_is_503_without_challenge() {
    let mut fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .jwks_uri(format!("{}/jwks.json", fx.issuer))
        .build()
        .expect("build");
    fx.stop().await;
    let logs = Logs::capture();
    let answer = call(&layered(verifier), &[&bearer(&fx.token())]).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.challenge, None);
    // The operator has to act on this one: a warning, with the reason.
    let warned = logs.reasons(Level::WARN);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with("no signing keys could be loaded"),
        "{warned:?}"
    );
}

#[tokio::test]
async fn a_deferred_key_lookup_is_503_with_retry_after() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await); // 2 refetches, then one per 5 s
    let forged = |kid: &str| {
        bearer(&sign(
            &generate(Algorithm::ES256, kid),
            "at+jwt",
            &fx.claims(),
        ))
    };
    for kid in ["forged-1", "forged-2"] {
        let answer = call(&app, &[&forged(kid)]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{kid}");
        assert_eq!(answer.challenge.as_deref(), Some(INVALID));
        assert_eq!(answer.retry_after, None);
    }
    fx.advance(1);
    let logs = Logs::capture();
    // A kid no fetch has looked for, with the bucket empty: maybe a new
    // key, so the client is asked to come back rather than told to drop it.
    let answer = call(&app, &[&forged("es-2")]).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.retry_after.as_deref(), Some("4"));
    assert_eq!(answer.challenge, None);
    assert_eq!(answer.body, "");
    // A flood of invented kids causes these: debug, not a warning.
    assert!(logs.reasons(Level::WARN).is_empty());
    let debug = logs.reasons(Level::DEBUG);
    assert!(
        debug
            .iter()
            .any(|r| r.starts_with("no cached key has kid Some(\"es-2\")")),
        "{debug:?}"
    );
    assert_eq!(fx.jwks_hits(), 3);
}

#[tokio::test]
async fn the_extractor_works_without_the_layer() {
    let fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .require_scopes(["orders.read"])
        .discover()
        .await
        .expect("discover");
    let app = Router::new()
        .route("/orders", get(orders))
        .route("/orders/cancel", get(cancel))
        .layer(Extension(verifier));

    let ok = call(&app, &[&bearer(&fx.token())]).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "orders of alice")
    );
    let missing = call(&app, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.challenge.as_deref(), Some(BARE));
    let mut expired = fx.claims();
    expired["exp"] = json!(fx.now() - 60);
    let answer = call(&app, &[&bearer(&sign(&fx.key, "at+jwt", &expired))]).await;
    assert_eq!(answer.challenge.as_deref(), Some(EXPIRED));

    // A handler-level scope check answers 403; RFC 6750 makes realm optional.
    let request = Request::get("/orders/cancel")
        .header(header::AUTHORIZATION, bearer(&fx.token()))
        .body(Body::empty())
        .expect("request");
    let answer = call_request(&app, request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders.write""#
        )
    );
}

#[tokio::test]
async fn the_extractor_without_any_verifier_is_a_500() {
    let app = Router::new().route("/orders", get(orders));
    let answer = call(&app, &[]).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.challenge, None);
}

#[tokio::test]
async fn the_answer_does_not_reveal_the_audience_but_the_log_does() {
    let fx = Fixture::start().await;
    let app = layered(fx.verifier().await);
    let mut other_audience = fx.claims();
    other_audience["aud"] = json!("https://billing");
    let token = bearer(&sign(&fx.key, "at+jwt", &other_audience));

    let logs = Logs::capture();
    let answer = call(&app, &[&token]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge.as_deref(), Some(INVALID));
    assert_eq!(
        answer.body,
        r#"{"error":"invalid_token","error_description":"the access token is invalid"}"#
    );
    let wire = format!("{} {}", answer.challenge.unwrap_or_default(), answer.body);
    for hint in ["audience", "intended", "resource", "billing", "aud"] {
        assert!(!wire.contains(hint), "{hint} in {wire}");
    }
    assert_eq!(
        logs.reasons(Level::DEBUG),
        ["the token's audience does not include this resource"]
    );
}

#[tokio::test]
async fn the_extractor_logs_the_reason_too() {
    let fx = Fixture::start().await;
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(Extension(fx.verifier().await));
    let mut other_issuer = fx.claims();
    other_issuer["iss"] = json!("https://impostor.example");

    let logs = Logs::capture();
    let answer = call(&app, &[&bearer(&sign(&fx.key, "at+jwt", &other_issuer))]).await;
    assert_eq!(answer.challenge.as_deref(), Some(INVALID));
    assert_eq!(
        logs.reasons(Level::DEBUG),
        [r#"the issuer "https://impostor.example" is not the configured issuer"#]
    );

    let unguarded = Router::new().route("/orders", get(orders));
    let answer = call(&unguarded, &[]).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        logs.reasons(Level::ERROR),
        ["no Verifier is installed for this route"]
    );
}

/// The events a test's own thread logs. `#[tokio::test]` runs everything on
/// that thread, the layer included.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<Logged>>>);

/// One event: its level and its fields, values as text.
type Logged = (Level, BTreeMap<String, String>);

thread_local! {
    /// Where the router sends this thread's events, while a capture lives.
    static CAPTURING: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// The process's one subscriber, installed by the first capture: it sends
/// each event to the capture of the thread that logged it. Not a scoped
/// subscriber per test: `tracing` caches each callsite's interest and the
/// maximum level process-wide, and tests installing and dropping scoped
/// subscribers on other threads at the same moment could leave an event
/// filtered out here. One global subscriber that wants everything leaves
/// nothing to race.
struct ThreadRouter;

/// Collects this thread's events until dropped.
struct Capture {
    logs: Logs,
}

impl Logs {
    fn capture() -> Capture {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(ThreadRouter)
                .expect("no other global subscriber in these tests");
        });
        let logs = Logs::default();
        CAPTURING.with(|capturing| *capturing.borrow_mut() = Some(logs.clone()));
        Capture { logs }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.with(|capturing| *capturing.borrow_mut() = None);
    }
}

impl Capture {
    /// The `reason` field of every event at `level` so far.
    fn reasons(&self, level: Level) -> Vec<String> {
        self.logs
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == level)
            .filter_map(|(_, fields)| fields.get("reason").cloned())
            .collect()
    }
}

impl tracing::Subscriber for ThreadRouter {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        CAPTURING.with(|capturing| {
            if let Some(logs) = &*capturing.borrow() {
                let mut fields = Fields::default();
                event.record(&mut fields);
                logs.0
                    .lock()
                    .unwrap()
                    .push((*event.metadata().level(), fields.0));
            }
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

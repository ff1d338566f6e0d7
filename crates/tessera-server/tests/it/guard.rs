//! tessera-guard against the real server: tokens minted by `tessera serve`,
//! keys fetched from its JWKS, reference tokens checked at its introspection
//! endpoint, a key rotation and a stopped server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_guard::{
    Algorithm, Authenticated, Error, GuardLayer, ManualClock, TokenKind, Verifier,
};
use tessera_jose::{SigningKey, b64, encode};

use crate::common::{TestServer, decode_jwt};

const AUDIENCE: &str = "https://orders";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A client allowed `orders.read` on the orders API; returns (id, secret).
fn orders_client(server: &TestServer) -> (String, String) {
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        "x",
        "--grant",
        "client_credentials",
        "--scope",
        "orders.read",
        "--audience",
        AUDIENCE,
        "--json",
    ]);
    (
        s(&out["client_id"]).to_owned(),
        s(&out["client_secret"]).to_owned(),
    )
}

async fn access_token(server: &TestServer, id: &str, secret: &str) -> String {
    let body = server
        .token(
            id,
            secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {body}"))
        .to_owned()
}

async fn verifier(server: &TestServer) -> Verifier {
    Verifier::builder(server.issuer.clone(), AUDIENCE)
        .require_scopes(["orders.read"])
        .discover()
        .await
        .expect("discover")
}

async fn refused(verifier: &Verifier, token: &str) -> Error {
    match verifier.verify(token).await {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn jwt_access_tokens_are_accepted_through_the_guard() {
    let server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    let token = access_token(&server, &id, &secret).await;
    let verifier = verifier(&server).await;

    let verified = verifier.verify(&token).await.expect("valid");
    assert_eq!(verified.kind(), TokenKind::Jwt(Algorithm::ES256));
    assert_eq!(verified.client_id(), id);
    assert_eq!(verified.subject(), id, "an app token speaks for its client");
    assert!(verified.has_scope("orders.read"));
    assert!(verified.audience().iter().any(|a| a == AUDIENCE));
    assert_eq!(verified.jti(), decode_jwt(&token).1["jti"].as_str());

    // And over HTTP, through the layer and the extractor.
    let app = Router::new()
        .route(
            "/orders",
            get(|Authenticated(t): Authenticated| async move { t.client_id().to_owned() }),
        )
        .layer(GuardLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/orders", listener.local_addr().expect("addr"));
    let service = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let ok = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), id);
    let missing = http.get(&url).send().await.expect("request");
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="https://orders""#
    );
    service.abort();
}

#[tokio::test]
async fn reference_tokens_are_accepted_through_introspection() {
    let server = TestServer::start().await;
    server.cli(&[
        "resource",
        "create",
        "--audience",
        AUDIENCE,
        "--scope",
        "orders.read",
        "--token-format",
        "reference",
        "--json",
    ]);
    let (id, secret) = orders_client(&server);
    let token = access_token(&server, &id, &secret).await;
    assert!(!token.contains('.'), "a reference token: {token}");

    // The orders service authenticates with credentials of its own, and may
    // introspect the tokens for its audience (RFC 7662 §4).
    let service = server.cli(&[
        "client",
        "create",
        "--name",
        "orders-api",
        "--audience",
        AUDIENCE,
        "--json",
    ]);
    let verifier = Verifier::builder(server.issuer.clone(), AUDIENCE)
        .require_scopes(["orders.read"])
        .client_credentials(
            s(&service["client_id"]),
            tessera_guard::ClientSecret::new(s(&service["client_secret"])),
        )
        .discover()
        .await
        .expect("discover");
    let verified = verifier.verify(&token).await.expect("active");
    assert_eq!(verified.kind(), TokenKind::Reference);
    assert_eq!(verified.client_id(), id);
    assert!(verified.has_scope("orders.read"));
    assert!(verified.audience().iter().any(|a| a == AUDIENCE));

    // An opaque string the server never issued is inactive.
    let unknown = b64([7u8; 32]);
    assert!(matches!(
        refused(&verifier, &unknown).await,
        Error::Inactive
    ));
    // Without client credentials the guard does not accept reference tokens.
    let jwt_only = Verifier::discover(server.issuer.clone(), AUDIENCE)
        .await
        .expect("discover");
    assert!(matches!(
        refused(&jwt_only, &token).await,
        Error::ReferenceTokensDisabled
    ));
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused() {
    let server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    let token = access_token(&server, &id, &secret).await;
    let verifier = verifier(&server).await;
    let parts: Vec<&str> = token.split('.').collect();
    let (header, mut claims) = decode_jwt(&token);

    // Tampered: more scope under the original signature.
    claims["scope"] = json!("orders.read orders.admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
    assert!(matches!(
        refused(&verifier, &tampered).await,
        Error::BadSignature
    ));

    // HS256 "signed" with the published public key.
    let jwks = server.get_json("/jwks.json").await;
    let public = serde_json::to_vec(&jwks["keys"][0]).expect("json");
    let forger = SigningKey::hmac(s(&header["kid"]), &public).expect("hmac");
    let forged = encode(&forger, "at+jwt", &decode_jwt(&token).1).expect("sign");
    assert!(
        matches!(refused(&verifier, &forged).await, Error::AlgorithmNotAllowed(a) if a == "HS256")
    );

    // alg none, with and without a signature part.
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]});
    let unsigned = format!("{}.{}.", b64(none_header.to_string()), parts[1]);
    assert!(matches!(
        refused(&verifier, &unsigned).await,
        Error::AlgorithmNotAllowed(_)
    ));
    let with_sig = format!("{}.{}.{}", b64(none_header.to_string()), parts[1], parts[2]);
    assert!(matches!(
        refused(&verifier, &with_sig).await,
        Error::AlgorithmNotAllowed(_)
    ));

    // A genuine token for another API.
    let billing = server.cli(&[
        "client",
        "create",
        "--name",
        "b",
        "--grant",
        "client_credentials",
        "--audience",
        "https://billing",
        "--json",
    ]);
    let body = server
        .token(
            s(&billing["client_id"]),
            s(&billing["client_secret"]),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let other = s(&body["access_token"]);
    assert!(matches!(
        refused(&verifier, other).await,
        Error::WrongAudience
    ));
    // The same token is fine for the API it was meant for.
    let billing_verifier = Verifier::discover(server.issuer.clone(), "https://billing")
        .await
        .expect("discover");
    assert!(billing_verifier.verify(other).await.is_ok());
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_by_a_kid_miss_refetch() {
    let server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    let verifier = verifier(&server).await;
    let before = access_token(&server, &id, &secret).await;
    assert!(verifier.verify(&before).await.is_ok());

    let after = rotate_now(&server, &id, &secret).await;
    assert_ne!(decode_jwt(&before).0["kid"], decode_jwt(&after).0["kid"]);

    // The new kid is not in the cached JWKS (fresh for max-age): one refetch.
    let verified = verifier.verify(&after).await.expect("new key picked up");
    assert_eq!(verified.client_id(), id);
    // The old key stays published until its tokens expire.
    assert!(verifier.verify(&before).await.is_ok());
}

/// `tessera keys rotate --now`, then the first access token the running
/// server signs with the new key.
async fn rotate_now(server: &TestServer, id: &str, secret: &str) -> String {
    let rotated = server.cli(&["keys", "rotate", "--now", "--json"]);
    let new_kid = s(&rotated["kid"]).to_owned();
    // The running server picks the new key up within about a second; this
    // waits on that process, so there is no clock to move instead.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let token = access_token(server, id, secret).await;
        if decode_jwt(&token).0["kid"] == new_kid.as_str() {
            return token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key never signed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token for this server's issuer and the orders API, signed by a key of
/// our own under an invented kid.
fn invented_kid_token(server: &TestServer, kid: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "iss": server.issuer, "sub": "mallory", "aud": AUDIENCE, "exp": now + 600,
        "iat": now, "jti": kid, "client_id": "mallory", "scope": "orders.read",
    });
    let (key, _) = SigningKey::generate(Algorithm::ES256, kid).expect("generate");
    encode(&key, "at+jwt", &claims).expect("sign")
}

#[tokio::test]
async fn an_invented_kid_does_not_hold_up_a_rotated_key() {
    // The reported attack, against the real server: one token with kid
    // "attacker", then `keys rotate --now`. Tokens of the new key used to be
    // refused (401, so clients dropped them) for the rest of a 30 s window.
    let server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    let verifier = verifier(&server).await;
    assert!(matches!(
        refused(&verifier, &invented_kid_token(&server, "attacker")).await,
        Error::UnknownKey(Some(k)) if k == "attacker"
    ));
    let after = rotate_now(&server, &id, &secret).await;
    let verified = verifier
        .verify(&after)
        .await
        .expect("the new key's token is accepted at once");
    assert_eq!(verified.client_id(), id);
    // The invented kid stays refused.
    assert!(matches!(
        refused(&verifier, &invented_kid_token(&server, "attacker")).await,
        Error::UnknownKey(_)
    ));
}

#[tokio::test]
async fn a_rotated_key_behind_a_flood_gets_503_and_retry_after_not_401() {
    let server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    // The guard's clock is held still, so the refetch bucket (2, then one
    // per 5 s) does not refill while the server rotates.
    let clock = Arc::new(ManualClock::starting_now());
    let verifier = Verifier::builder(server.issuer.clone(), AUDIENCE)
        .clock(clock.clone())
        .discover()
        .await
        .expect("discover");
    for kid in ["flood-1", "flood-2"] {
        assert!(matches!(
            refused(&verifier, &invented_kid_token(&server, kid)).await,
            Error::UnknownKey(_)
        ));
    }
    let after = rotate_now(&server, &id, &secret).await;
    let retry_after = match refused(&verifier, &after).await {
        e @ Error::KeyRefetchDeferred { .. } => {
            assert_eq!(e.status(), 503);
            e.retry_after().expect("retry after")
        }
        other => panic!("{other:?}"),
    };
    assert!(retry_after <= Duration::from_secs(5), "{retry_after:?}");
    // The client comes back when told to: accepted.
    clock.advance(retry_after);
    let verified = verifier.verify(&after).await.expect("accepted on retry");
    assert_eq!(verified.client_id(), id);
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_the_server_is_stopped() {
    let mut server = TestServer::start().await;
    let (id, secret) = orders_client(&server);
    // The guard's own time, moved by hand: past the JWKS max-age (300 s by
    // default) while the server is down.
    let clock = Arc::new(ManualClock::starting_now());
    let verifier = Verifier::builder(server.issuer.clone(), AUDIENCE)
        .clock(clock.clone())
        .discover()
        .await
        .expect("discover");
    let token = access_token(&server, &id, &secret).await;
    assert!(verifier.verify(&token).await.is_ok());

    server.stop();
    // Fresh keys: offline verification, no request to the server.
    assert!(verifier.verify(&token).await.is_ok());
    // Stale keys: the refresh fails, the cached keys still verify.
    clock.advance(Duration::from_secs(400));
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok());

    server.restart().await;
    clock.advance(Duration::from_secs(15));
    let fresh = access_token(&server, &id, &secret).await;
    assert!(verifier.verify(&fresh).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.refresh_keys().await.expect("the server is back") >= 1);
}

//! Client authentication with assertions (RFC 7523 §3, RFC 7521 §5.2;
//! RFC 9700 §2.5 recommends them): an assertion authenticates only the client
//! whose key signed it and that it names, once, and only with the headers
//! the server understands. (Each claim rule is in the `it` suite's
//! `client_jwt`; assertion grants' replays in its `delegation`.)

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::crypto::random_id;
use tessera_jose::{Algorithm, SigningKey};

use crate::common::TestServer;
use crate::flows::six_at_once;
use crate::jwt::forge;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A `private_key_jwt` client with a key of its own: (client_id, key).
fn keyed_client(server: &TestServer, name: &str) -> (String, SigningKey) {
    let (key, _) = SigningKey::generate(Algorithm::ES256, format!("{name}-key")).unwrap();
    let jwks = json!({"keys": [serde_json::to_value(key.public_jwk().unwrap()).unwrap()]});
    let file = server.dir.path().join(format!("{name}.jwks.json"));
    std::fs::write(&file, jwks.to_string()).unwrap();
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        name,
        "--grant",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        file.to_str().unwrap(),
        "--json",
    ]);
    (out["client_id"].as_str().unwrap().to_owned(), key)
}

/// The claims a client library puts in an assertion for `client_id`.
fn claims_for(server: &TestServer, client_id: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": client_id, "sub": client_id, "aud": server.url("/oauth2/token"),
        "iat": now, "exp": now + 120, "jti": random_id(),
    })
}

/// A client-credentials request authenticated by `assertion`, naming
/// `client_id` in the body when given.
async fn token_with(
    server: &TestServer,
    assertion: &str,
    client_id: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(client_id) = client_id {
        form.push(("client_id", client_id));
    }
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn assert_invalid_client(answer: &(StatusCode, Value), what: &str) {
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{what}: {}", answer.1);
}

/// One client's assertion never authenticates another: not when presented
/// with the other's `client_id`, not when it names the other client but is
/// signed with its own key, and not signed with the other's published key
/// used as an HMAC secret.
#[tokio::test]
async fn another_clients_assertion_authenticates_nobody_else() {
    let server = TestServer::start().await;
    let (alice, alice_key) = keyed_client(&server, "alice");
    let (bob, _) = keyed_client(&server, "bob");
    let header = |key: &SigningKey| json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()});

    let alices = forge(
        &header(&alice_key),
        &claims_for(&server, &alice),
        Some(&alice_key),
    );
    assert_invalid_client(
        &token_with(&server, &alices, Some(&bob)).await,
        "alice's assertion for bob",
    );
    let naming_bob = forge(
        &header(&alice_key),
        &claims_for(&server, &bob),
        Some(&alice_key),
    );
    assert_invalid_client(
        &token_with(&server, &naming_bob, None).await,
        "an assertion naming bob signed by alice",
    );
    let mut half_bob = claims_for(&server, &alice);
    half_bob["sub"] = json!(bob);
    let mixed = forge(&header(&alice_key), &half_bob, Some(&alice_key));
    assert_invalid_client(
        &token_with(&server, &mixed, None).await,
        "iss alice, sub bob",
    );

    // Alice's own assertion, untouched, still works: nothing above used it up.
    let (status, body) = token_with(&server, &alices, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// RFC 7523 §3 item 7 and RFC 7519 §4.1.7: a client assertion is accepted
/// once. A replay is refused, also when sent at the same moment as the
/// first use, and an assertion with a `crit` header (RFC 7515 §4.1.11,
/// extensions the server does not implement) is refused although its
/// signature is the client's.
#[tokio::test]
async fn a_client_assertion_is_accepted_once_and_only_with_known_headers() {
    let server = TestServer::start().await;
    let (client, key) = keyed_client(&server, "worker");
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()});

    let assertion = forge(&header, &claims_for(&server, &client), Some(&key));
    let (status, body) = token_with(&server, &assertion, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_invalid_client(&token_with(&server, &assertion, None).await, "a replay");

    let assertion = forge(&header, &claims_for(&server, &client), Some(&key));
    let [a, b, c, d, e, f] = six_at_once(|| token_with(&server, &assertion, None)).await;
    let answers = [a, b, c, d, e, f];
    let winners = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(winners, 1, "{answers:?}");
    for answer in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
    {
        assert_invalid_client(answer, "a concurrent replay");
    }

    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!(null)] {
        let mut header = header.clone();
        header["crit"] = crit.clone();
        header["b64"] = json!(true);
        let assertion = forge(&header, &claims_for(&server, &client), Some(&key));
        assert_invalid_client(
            &token_with(&server, &assertion, None).await,
            &format!("crit {crit}"),
        );
    }
}

//! Per-resource signing against the real server: an API registered with
//! `--signing-alg` gets tokens of that algorithm whatever the server's
//! `signing_alg`; HS256 resources share a secret with the server, printed
//! once, stored only sealed, never published, rotatable; audiences that
//! cannot share one signature are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_guard::{Algorithm, Error, SharedSecret, TokenKind, Verifier};
use tessera_jose::{SigningKey, encode};

use crate::common::{TestServer, decode_jwt};
use crate::web::{PASSWORD, create_user};

const ORDERS: &str = "https://orders.example";
const BILLING: &str = "https://billing.example";
const UNREGISTERED: &str = "https://elsewhere.example";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// `tessera resource ARGS --json`, which must succeed.
fn resource(server: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["resource"];
    all.extend_from_slice(args);
    all.push("--json");
    server.cli(&all)
}

/// `tessera resource ARGS`, which must fail: its message.
fn refused(server: &TestServer, args: &[&str]) -> String {
    let mut all = vec!["resource"];
    all.extend_from_slice(args);
    let out = server.cli_output(&all);
    assert!(
        !out.status.success(),
        "tessera {all:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A client-credentials client allowed `orders.read` on these audiences.
fn app(server: &TestServer, audiences: &[&str]) -> (String, String) {
    let mut args = vec!["--grant", "client_credentials", "--scope", "orders.read"];
    for audience in audiences {
        args.extend(["--audience", audience]);
    }
    server.client(&args)
}

/// Asks for an app token for `resources`: (status, body).
async fn app_token(
    server: &TestServer,
    client: &(String, String),
    resources: &[&str],
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    server.token_response(&client.0, &client.1, &form).await
}

async fn access_token(
    server: &TestServer,
    client: &(String, String),
    resources: &[&str],
) -> String {
    let (status, body) = app_token(server, client, resources).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s(&body["access_token"]).to_owned()
}

fn header(token: &str) -> Value {
    decode_jwt(token).0
}

async fn jwks(server: &TestServer) -> Vec<Value> {
    server.get_json("/jwks.json").await["keys"]
        .as_array()
        .expect("keys")
        .clone()
}

/// The guard, as an API would configure it for HS256 tokens.
fn shared_verifier(server: &TestServer, audience: &str, secret: &str) -> Verifier {
    Verifier::builder(server.issuer.clone(), audience)
        .shared_secret(SharedSecret::new(secret.as_bytes()))
        .build()
        .expect("build")
}

async fn active(server: &TestServer, client: &(String, String), token: &str) -> bool {
    let body = server.introspect(&client.0, &client.1, token).await;
    body["active"]
        .as_bool()
        .unwrap_or_else(|| panic!("no active: {body}"))
}

#[tokio::test]
async fn an_rs256_resource_gets_rs256_tokens_from_an_es256_server() {
    let server = TestServer::start().await;
    let created = resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "RS256"],
    );
    assert_eq!(created["signing_alg"], "RS256");
    assert_eq!(created["secret_kid"], Value::Null);
    assert!(
        created.get("new_signing_key").is_none(),
        "a server always has an RS256 key: {created}"
    );
    let client = app(&server, &[ORDERS, UNREGISTERED]);

    let token = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&token)["alg"], "RS256");
    let published = jwks(&server).await;
    assert!(
        published
            .iter()
            .any(|k| k["kid"] == header(&token)["kid"] && k["alg"] == "RS256"),
        "{published:?}"
    );
    // An RS256-only library's view: nothing but RS256 allowed.
    let verifier = Verifier::builder(server.issuer.clone(), ORDERS)
        .algorithms([Algorithm::RS256])
        .discover()
        .await
        .expect("discover");
    let verified = verifier.verify(&token).await.expect("valid");
    assert_eq!(verified.kind(), TokenKind::Jwt(Algorithm::RS256));
    assert_eq!(verified.client_id(), client.0);
    assert!(active(&server, &client, &token).await);

    // Other audiences keep the server's algorithm.
    let other = access_token(&server, &client, &[UNREGISTERED]).await;
    assert_eq!(header(&other)["alg"], "ES256");
    // An RS256 and a default audience together: RS256 serves both.
    let both = access_token(&server, &client, &[ORDERS, UNREGISTERED]).await;
    assert_eq!(header(&both)["alg"], "RS256");
}

#[tokio::test]
async fn a_resource_algorithm_without_a_key_gets_one_published_before_use() {
    let server = TestServer::start().await;
    let before: Vec<Value> = jwks(&server).await;
    assert!(before.iter().all(|k| k["alg"] != "EdDSA"), "{before:?}");

    let created = resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "EdDSA"],
    );
    let kid = s(&created["new_signing_key"]["kid"]).to_owned();
    assert_eq!(created["new_signing_key"]["alg"], "EdDSA");
    // Published by the running server at once, before any token uses it.
    assert!(
        jwks(&server)
            .await
            .iter()
            .any(|k| k["kid"] == kid.as_str() && k["alg"] == "EdDSA")
    );
    let client = app(&server, &[ORDERS]);
    // The server signs with the key another process made, on the first request.
    let token = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&token)["alg"], "EdDSA");
    assert_eq!(header(&token)["kid"], kid.as_str());
    let verifier = Verifier::discover(server.issuer.clone(), ORDERS)
        .await
        .expect("discover");
    assert_eq!(
        verifier.verify(&token).await.expect("valid").kind(),
        TokenKind::Jwt(Algorithm::EdDSA)
    );

    // A second EdDSA resource uses the same key.
    let again = resource(
        &server,
        &["create", "--audience", BILLING, "--signing-alg", "EdDSA"],
    );
    assert!(again.get("new_signing_key").is_none(), "{again}");

    // A key that is published but does not sign yet is the operator's call.
    server.cli(&["keys", "rotate", "--alg", "PS256", "--json"]);
    let message = refused(&server, &["update", ORDERS, "--signing-alg", "PS256"]);
    assert!(
        message.contains("no PS256 key signs now")
            && message.contains("tessera keys rotate --alg PS256 --now"),
        "{message}"
    );
    let unchanged = server.cli(&["resource", "list", "--json"]);
    assert_eq!(unchanged[0]["signing_alg"], "EdDSA");
    server.cli(&["keys", "rotate", "--alg", "PS256", "--now", "--json"]);
    // The key signs once every instance publishes it, two seconds on: until
    // then the command says how long to wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let updated = loop {
        let out = server.cli_output(&[
            "resource",
            "update",
            ORDERS,
            "--signing-alg",
            "PS256",
            "--json",
        ]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains("starts signing in"), "{message}");
        assert!(std::time::Instant::now() < deadline, "{message}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    crate::common::catalog_settles().await;
    assert_eq!(updated["signing_alg"], "PS256");
    let token = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&token)["alg"], "PS256");
}

/// The SQLite database's files (the WAL holds the latest writes).
fn database_bytes(server: &TestServer) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(server.dir.path()).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("tessera.db") {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_hs256_resource_shares_a_secret_that_is_never_published_nor_stored_in_clear() {
    let server = TestServer::start_on_sqlite(&[]).await;
    let created = resource(
        &server,
        &[
            "create",
            "--audience",
            ORDERS,
            "--signing-alg",
            "HS256",
            "--scope",
            "orders.read",
        ],
    );
    let secret = s(&created["shared_secret"]).to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    assert_eq!(created["secret_kid"], format!("{ORDERS}#hs256-1"));
    assert_eq!(created["signing_alg"], "HS256");

    // Never shown again, never published.
    let listed = server.cli(&["resource", "list", "--json"]).to_string();
    assert!(
        listed.contains("#hs256-1") && !listed.contains(&secret),
        "{listed}"
    );
    let text = server.cli_output(&["resource", "list"]);
    assert!(!String::from_utf8_lossy(&text.stdout).contains(&secret));
    let published = server.get_json("/jwks.json").await;
    assert!(!published.to_string().contains(&secret));
    assert!(
        published["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k["kty"] != "oct" && k["alg"] != "HS256"),
        "{published}"
    );
    // In the database only sealed: its audience is there in clear, the
    // secret is not.
    let stored = database_bytes(&server);
    assert!(contains(&stored, ORDERS), "not the database's files");
    assert!(
        !contains(&stored, &secret),
        "the secret is in the database in clear"
    );

    let client = app(&server, &[ORDERS]);
    let token = access_token(&server, &client, &[ORDERS]).await;
    let (head, claims) = decode_jwt(&token);
    assert_eq!(head["alg"], "HS256");
    assert_eq!(head["typ"], "at+jwt");
    assert_eq!(head["kid"], format!("{ORDERS}#hs256-1"));
    assert_eq!(claims["aud"], ORDERS);

    // The guard's HS256 mode, with the printed secret as is.
    let verified = shared_verifier(&server, ORDERS, &secret)
        .verify(&token)
        .await
        .expect("valid");
    assert_eq!(verified.kind(), TokenKind::Jwt(Algorithm::HS256));
    assert_eq!(verified.client_id(), client.0);
    assert!(verified.has_scope("orders.read"));
    let wrong = shared_verifier(&server, ORDERS, &"x".repeat(43));
    assert!(matches!(
        wrong.verify(&token).await,
        Err(Error::BadSignature)
    ));
    // A JWKS-only verifier cannot be talked into HMAC with a public key.
    let jwks_only = Verifier::discover(server.issuer.clone(), ORDERS)
        .await
        .expect("discover");
    assert!(jwks_only.verify(&token).await.is_err());

    // Introspection and token inspect accept it, revocation works on it.
    let body = server.introspect(&client.0, &client.1, &token).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["jti"], claims["jti"]);
    let inspected = server.cli(&["token", "inspect", &token, "--json"]);
    assert_eq!(inspected["valid"], true, "{inspected}");
    assert_eq!(inspected["signature"]["shared_secret"]["resource"], ORDERS);
    let (status, _) = server
        .post_form("/oauth2/revoke", &client.0, &client.1, &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!active(&server, &client, &token).await);
}

#[tokio::test]
async fn a_holder_of_the_secret_cannot_mint_tokens_the_server_accepts() {
    let server = TestServer::start().await;
    let created = resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "HS256"],
    );
    let secret = s(&created["shared_secret"]).to_owned();
    let kid = s(&created["secret_kid"]).to_owned();
    let client = app(&server, &[ORDERS]);
    let token = access_token(&server, &client, &[ORDERS]).await;
    let (_, claims) = decode_jwt(&token);
    let forger = SigningKey::hmac(kid.clone(), secret.as_bytes()).expect("hmac");

    // The same claims re-signed verify: the signature is all the API checks.
    let resigned = encode(&forger, "at+jwt", &claims).expect("sign");
    assert!(active(&server, &client, &resigned).await);

    // Claims the server did not mint: any API holding the secret could write
    // these, and the API itself accepts them, but this server does not.
    let mut wider = claims.clone();
    wider["scope"] = json!("orders.read orders.admin");
    let mut fresh_jti = claims.clone();
    fresh_jti["jti"] = json!("made-up");
    let mut elsewhere = claims.clone();
    elsewhere["aud"] = json!([ORDERS, BILLING]);
    for forged in [wider, fresh_jti, elsewhere] {
        let token = encode(&forger, "at+jwt", &forged).expect("sign");
        assert!(
            shared_verifier(&server, ORDERS, &secret)
                .verify(&token)
                .await
                .is_ok(),
            "{forged}"
        );
        assert!(!active(&server, &client, &token).await, "{forged}");
        let inspected = server.cli_output(&["token", "inspect", &token]);
        assert!(!inspected.status.success());
        assert!(
            String::from_utf8_lossy(&inspected.stdout).contains("not minted by this server"),
            "{}",
            String::from_utf8_lossy(&inspected.stdout)
        );
    }

    // Nor anything but access tokens: a refresh token under the secret.
    let refresh_claims = json!({
        "iss": server.issuer, "sub": "someone", "aud": client.0,
        "iat": claims["iat"], "exp": claims["exp"], "jti": "r1",
    });
    let refresh = encode(&forger, "rt+jwt", &refresh_claims).expect("sign");
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // And a token that names the secret but another algorithm.
    let (es256, _) = SigningKey::generate(Algorithm::ES256, kid).expect("generate");
    let confused = encode(&es256, "at+jwt", &claims).expect("sign");
    assert!(!active(&server, &client, &confused).await);
}

#[tokio::test]
async fn rotating_the_secret_retires_the_old_one_within_a_second() {
    let server = TestServer::start().await;
    let created = resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "HS256"],
    );
    let first = s(&created["shared_secret"]).to_owned();
    let client = app(&server, &[ORDERS]);
    let old = access_token(&server, &client, &[ORDERS]).await;
    assert!(active(&server, &client, &old).await);

    let rotated = resource(&server, &["rotate-secret", ORDERS]);
    crate::common::catalog_settles().await;
    let second = s(&rotated["shared_secret"]).to_owned();
    assert_ne!(first, second);
    assert_eq!(rotated["secret_kid"], format!("{ORDERS}#hs256-2"));
    assert_eq!(rotated["retired_secret_kid"], format!("{ORDERS}#hs256-1"));

    // Within a second the server reads the current secret with the resource.
    let new = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&new)["kid"], format!("{ORDERS}#hs256-2"));
    let verifier = shared_verifier(&server, ORDERS, &second);
    assert!(verifier.verify(&new).await.is_ok());
    assert!(matches!(
        verifier.verify(&old).await,
        Err(Error::BadSignature)
    ));
    assert!(
        shared_verifier(&server, ORDERS, &first)
            .verify(&new)
            .await
            .is_err()
    );
    assert!(active(&server, &client, &new).await);
    assert!(!active(&server, &client, &old).await);
    let inspected = server.cli(&["token", "inspect", &new, "--json"]);
    assert_eq!(inspected["valid"], true, "{inspected}");
    let stale = server.cli_output(&["token", "inspect", &old]);
    assert!(!stale.status.success());
    assert!(String::from_utf8_lossy(&stale.stdout).contains("rotated"));

    // The text form shows the new secret once, too.
    let out = server.cli_output(&["resource", "rotate-secret", ORDERS]);
    crate::common::catalog_settles().await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shared_secret: ")
            && text.contains(&format!("kid:           {ORDERS}#hs256-3"))
            && text.contains(&format!(
                "the secret {ORDERS}#hs256-2 are no longer accepted"
            )),
        "{text}"
    );
    assert!(!active(&server, &client, &new).await);

    // Only HS256 resources have a secret to rotate.
    resource(&server, &["create", "--audience", BILLING]);
    let message = refused(&server, &["rotate-secret", BILLING]);
    assert!(message.contains("has no shared secret"), "{message}");
    let message = refused(&server, &["rotate-secret", UNREGISTERED]);
    assert!(message.contains("no resource"), "{message}");
}

#[tokio::test]
async fn user_tokens_for_an_hs256_resource_work_at_userinfo_and_refresh() {
    let server = TestServer::start().await;
    let sub = create_user(&server, "alice", Some("alice@example.com"), None);
    let created = resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "HS256"],
    );
    let secret = s(&created["shared_secret"]).to_owned();
    let client = server.client(&[
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--scope",
        "openid email orders.read",
        "--audience",
        ORDERS,
    ]);
    let body = server
        .token(
            &client.0,
            &client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "openid email orders.read"),
                ("resource", ORDERS),
            ],
        )
        .await;
    let access = s(&body["access_token"]).to_owned();
    assert_eq!(header(&access)["alg"], "HS256");
    // Refresh and ID tokens stay on the server's keys.
    assert_eq!(header(s(&body["refresh_token"]))["alg"], "ES256");
    assert_eq!(header(s(&body["id_token"]))["alg"], "ES256");

    let userinfo = |token: String| {
        let http = server.http.clone();
        let url = server.url("/userinfo");
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("send");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, info) = userinfo(access.clone()).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["email"], "alice@example.com");

    // Another user's claims, asked for with a token written by a holder of
    // the secret: refused.
    let bob = create_user(&server, "bob", Some("bob@example.com"), None);
    let (_, mut claims) = decode_jwt(&access);
    claims["sub"] = json!(bob);
    let forger = SigningKey::hmac(s(&created["secret_kid"]), secret.as_bytes()).expect("hmac");
    let (status, _) = userinfo(encode(&forger, "at+jwt", &claims).expect("sign")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let refreshed = server
        .token(
            &client.0,
            &client.1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", s(&body["refresh_token"])),
            ],
        )
        .await;
    let again = s(&refreshed["access_token"]);
    assert_eq!(header(again)["alg"], "HS256");
    assert!(
        shared_verifier(&server, ORDERS, &secret)
            .verify(again)
            .await
            .is_ok()
    );
    assert_eq!(userinfo(again.to_owned()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn audiences_that_cannot_share_a_signature_are_refused_with_invalid_target() {
    let server = TestServer::start().await;
    resource(
        &server,
        &["create", "--audience", ORDERS, "--signing-alg", "RS256"],
    );
    resource(
        &server,
        &["create", "--audience", BILLING, "--signing-alg", "ES256"],
    );
    let hs_a = "https://ledger-a.example";
    let hs_b = "https://ledger-b.example";
    resource(
        &server,
        &["create", "--audience", hs_a, "--signing-alg", "HS256"],
    );
    resource(
        &server,
        &["create", "--audience", hs_b, "--signing-alg", "HS256"],
    );
    let client = app(&server, &[ORDERS, BILLING, hs_a, hs_b, UNREGISTERED]);

    let refusal = |resources: &'static [&'static str]| {
        let server = &server;
        let client = &client;
        async move {
            let (status, body) = app_token(server, client, resources).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{resources:?}: {body}");
            assert_eq!(body["error"], "invalid_target", "{body}");
            s(&body["error_description"]).to_owned()
        }
    };
    let message = refusal(&[ORDERS, BILLING]).await;
    assert_eq!(
        message,
        format!(
            "{ORDERS} accepts RS256 tokens and {BILLING} accepts ES256 tokens: one token \
             cannot be signed for both; request a token for each"
        )
    );
    let message = refusal(&["https://ledger-a.example", "https://ledger-b.example"]).await;
    assert!(message.contains("a secret of their own"), "{message}");
    let message = refusal(&["https://ledger-a.example", UNREGISTERED]).await;
    assert!(message.contains("cannot name other audiences"), "{message}");
    let message = refusal(&["https://ledger-a.example", ORDERS]).await;
    assert!(message.contains("HS256"), "{message}");

    // Each alone is fine.
    for (target, alg) in [(ORDERS, "RS256"), (BILLING, "ES256"), (hs_a, "HS256")] {
        let token = access_token(&server, &client, &[target]).await;
        assert_eq!(header(&token)["alg"], alg);
    }
}

#[tokio::test]
async fn resource_update_changes_each_setting_under_the_registration_rules() {
    let server = TestServer::start().await;
    resource(
        &server,
        &["create", "--audience", ORDERS, "--scope", "orders.read"],
    );
    let updated = resource(
        &server,
        &[
            "update",
            ORDERS,
            "--scope",
            "orders.read orders.write",
            "--accepts",
            "app",
            "--token-format",
            "reference",
        ],
    );
    assert_eq!(updated["changed"], true);
    assert_eq!(updated["scope"], "orders.read orders.write");
    assert_eq!(updated["accepts"], "app");
    assert_eq!(updated["token_format"], "reference");
    let listed = server.cli(&["resource", "list", "--json"]);
    assert_eq!(listed[0]["scope"], "orders.read orders.write");

    // Reference tokens are not signed: no algorithm goes with them.
    let message = refused(&server, &["update", ORDERS, "--signing-alg", "RS256"]);
    assert!(
        message.contains("reference tokens are not signed"),
        "{message}"
    );
    let message = refused(
        &server,
        &[
            "create",
            "--audience",
            BILLING,
            "--token-format",
            "reference",
            "--signing-alg",
            "HS256",
        ],
    );
    assert!(
        message.contains("reference tokens are not signed"),
        "{message}"
    );
    let message = refused(&server, &["update", ORDERS, "--signing-alg", "hs256"]);
    assert!(
        message.contains("ES256, RS256, PS256, EdDSA or HS256 (exact case), or default"),
        "{message}"
    );
    let message = refused(&server, &["update", UNREGISTERED, "--accepts", "app"]);
    assert!(message.contains("no resource"), "{message}");
    let message = refused(&server, &["create", "--audience", ORDERS]);
    assert!(message.contains("already exists"), "{message}");
    let message = refused(&server, &["create", "--audience", "orders"]);
    assert!(message.contains("not an absolute URI"), "{message}");

    // To HS256: a secret, printed once.
    let hs256 = resource(
        &server,
        &[
            "update",
            ORDERS,
            "--token-format",
            "default",
            "--signing-alg",
            "HS256",
        ],
    );
    assert_eq!(hs256["signing_alg"], "HS256");
    assert_eq!(hs256["token_format"], Value::Null);
    let first = s(&hs256["shared_secret"]).to_owned();
    assert_eq!(hs256["secret_kid"], format!("{ORDERS}#hs256-1"));
    let client = app(&server, &[ORDERS]);
    let token = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&token)["alg"], "HS256");

    // Nothing to change: nothing written, no new secret.
    let same = resource(&server, &["update", ORDERS, "--signing-alg", "HS256"]);
    assert_eq!(same["changed"], false);
    assert!(same.get("shared_secret").is_none());
    let out = server.cli_output(&["resource", "update", ORDERS, "--accepts", "app"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));

    // Away from HS256: the secret is gone, and its tokens with it.
    let back = resource(&server, &["update", ORDERS, "--signing-alg", "default"]);
    assert_eq!(back["signing_alg"], Value::Null);
    assert_eq!(back["secret_kid"], Value::Null);
    assert_eq!(back["retired_secret_kid"], format!("{ORDERS}#hs256-1"));
    crate::common::catalog_settles().await;
    assert!(!active(&server, &client, &token).await);
    let plain = access_token(&server, &client, &[ORDERS]).await;
    assert_eq!(header(&plain)["alg"], "ES256");
    let message = refused(&server, &["rotate-secret", ORDERS]);
    assert!(message.contains("has no shared secret"), "{message}");

    // And back again: a new secret under a new kid, never the old ones (the
    // version moved on when the secret was dropped, too).
    let again = resource(&server, &["update", ORDERS, "--signing-alg", "HS256"]);
    crate::common::catalog_settles().await;
    assert_eq!(again["secret_kid"], format!("{ORDERS}#hs256-3"));
    assert_ne!(s(&again["shared_secret"]), first);
}

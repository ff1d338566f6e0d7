//! Dynamic client registration (RFC 7591) and client configuration management
//! (RFC 7592), from outside: initial access tokens from the CLI, metadata in,
//! credentials out, and the credentials used at the token endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;

/// An initial access token, made with the CLI.
fn initial_token(server: &TestServer) -> String {
    let out = server.cli(&["registration-token", "create", "--json"]);
    out["token"].as_str().unwrap().to_owned()
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body, headers)
}

async fn register(
    server: &TestServer,
    bearer: Option<&str>,
    metadata: &Value,
) -> (StatusCode, Value) {
    let (status, body, _) = send(
        server,
        reqwest::Method::POST,
        "/register",
        bearer,
        Some(metadata),
    )
    .await;
    (status, body)
}

fn path_of(server: &TestServer, registration_client_uri: &Value) -> String {
    registration_client_uri
        .as_str()
        .unwrap()
        .strip_prefix(&server.url(""))
        .expect("the configuration endpoint is on this server")
        .to_owned()
}

#[tokio::test]
async fn a_registered_service_gets_tokens_with_the_credentials_it_was_given() {
    let server = TestServer::start().await;
    let token = initial_token(&server);
    let (status, client) = register(
        &server,
        Some(&token),
        &json!({
            "client_name": "Billing worker",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "scope": "invoices.read",
            // Credentials a client proposes are ignored (RFC 7591 §3.2.1).
            "client_id": "chosen-by-me",
            "client_secret": "also-chosen",
            "contacts": ["ops@example.com"],
            "software_id": "billing-worker",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    assert_ne!(id, "chosen-by-me");
    assert_ne!(secret, "also-chosen");
    assert_eq!(client["client_secret_expires_at"], 0);
    assert_eq!(client["client_name"], "Billing worker");
    assert_eq!(client["grant_types"], json!(["client_credentials"]));
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["contacts"], json!(["ops@example.com"]));
    assert_eq!(client["software_id"], "billing-worker");
    assert!(client["registration_access_token"].is_string());
    assert_eq!(
        client["registration_client_uri"],
        server.url(&format!("/register/{id}"))
    );
    // Registered through the server: usable at once, no catalogue delay.
    let (status, tokens) = server
        .token_response(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "invoices.read");
    let (status, _) = server
        .token_response(id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn registration_needs_a_valid_initial_access_token() {
    let server = TestServer::start().await;
    let metadata = json!({"redirect_uris": ["https://app.example/cb"]});
    // No token: RFC 6750 §3.1's bare challenge.
    let (status, _, headers) = send(
        &server,
        reqwest::Method::POST,
        "/register",
        None,
        Some(&metadata),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[reqwest::header::WWW_AUTHENTICATE],
        "Bearer realm=\"tessera\""
    );
    let (status, body, headers) = send(
        &server,
        reqwest::Method::POST,
        "/register",
        Some("not-a-token"),
        Some(&metadata),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert!(
        headers[reqwest::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(headers[reqwest::header::CACHE_CONTROL], "no-store");

    // A revoked token stops working at once.
    let created = server.cli(&["registration-token", "create", "--json"]);
    let token = created["token"].as_str().unwrap();
    let (status, _) = register(&server, Some(token), &metadata).await;
    assert_eq!(status, StatusCode::CREATED);
    let listed = server.cli(&["registration-token", "list", "--json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == created["id"])
    );
    assert!(
        listed.to_string().find(token).is_none(),
        "the list shows a token value"
    );
    server.cli(&[
        "registration-token",
        "revoke",
        created["id"].as_str().unwrap(),
        "--json",
    ]);
    let (status, _) = register(&server, Some(token), &metadata).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A client's registration access token is no initial access token.
    let initial = initial_token(&server);
    let (_, client) = register(&server, Some(&initial), &metadata).await;
    let management = client["registration_access_token"].as_str().unwrap();
    let (status, _) = register(&server, Some(management), &metadata).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn invalid_metadata_gets_the_rfc_7591_errors() {
    let server = TestServer::start().await;
    let token = initial_token(&server);
    for uri in [
        "http://app.example/cb",
        "https://app.example/cb#fragment",
        "javascript:alert(1)",
        "data:text/html,hi",
        "vbscript:msgbox",
        "file:///etc/passwd",
        "https://app.example/c b",
        "https://*.example/cb",
        "/relative/cb",
    ] {
        let (status, body) =
            register(&server, Some(&token), &json!({"redirect_uris": [uri]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{uri}: {body}");
    }
    for (metadata, why) in [
        (
            json!({"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "none"}),
            "unsigned ID tokens",
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": [], "token_endpoint_auth_method": "none"}),
            "a public client with client_credentials",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "a string for a list",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "logo_uri": "https://169.254.169.254/latest"}),
            "a logo on the metadata address",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://127.0.0.1/keys"}),
            "keys on loopback",
        ),
        (
            json!({"grant_types": ["password-please"]}),
            "an unknown grant",
        ),
        (
            json!({"grant_types": [], "response_types": []}),
            "no grant at all",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"], "response_types": ["code"]}),
            "the implicit grant with only the code response type",
        ),
    ] {
        let (status, body) = register(&server, Some(&token), &metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{why}: {body}");
    }
    // Not JSON, and too large.
    let response = server
        .http
        .post(server.url("/register"))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("redirect_uris=https://a.example/cb")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let huge =
        json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(40_000)});
    let (status, _) = register(&server, Some(&token), &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_client_manages_its_own_registration_and_no_other() {
    let server = TestServer::start().await;
    let token = initial_token(&server);
    let metadata = json!({
        "client_name": "Shop",
        "redirect_uris": ["https://shop.example/cb"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "openid orders.read",
    });
    let (_, mine) = register(&server, Some(&token), &metadata).await;
    let (_, theirs) = register(&server, Some(&token), &metadata).await;
    let my_path = path_of(&server, &mine["registration_client_uri"]);
    let their_path = path_of(&server, &theirs["registration_client_uri"]);
    let my_token = mine["registration_access_token"].as_str().unwrap();

    // Read: the same metadata, no secret, and a new registration access
    // token (RFC 7592 §3) in place of the old one.
    let (status, read, headers) = send(
        &server,
        reqwest::Method::GET,
        &my_path,
        Some(my_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(headers[reqwest::header::CACHE_CONTROL], "no-store");
    assert_eq!(read["client_id"], mine["client_id"]);
    assert_eq!(read["redirect_uris"], json!(["https://shop.example/cb"]));
    assert!(read.get("client_secret").is_none());
    let (status, _, _) = send(
        &server,
        reqwest::Method::GET,
        &my_path,
        Some(my_token),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the replaced token still works"
    );
    let my_token = read["registration_access_token"].as_str().unwrap();

    // Another client's token, no token, and an unknown client all look alike.
    for (path, bearer) in [
        (&their_path, Some(my_token)),
        (&my_path, None),
        (&"/register/no-such-client".to_owned(), Some(my_token)),
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (status, body, _) = send(&server, method.clone(), path, bearer, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        }
    }

    // Update: validated like a registration, and the body must name the client.
    let mut update = metadata.clone();
    update["redirect_uris"] = json!(["https://shop.example/callback"]);
    let (status, body, _) = send(
        &server,
        reqwest::Method::PUT,
        &my_path,
        Some(my_token),
        Some(&update),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no client_id: {body}");
    update["client_id"] = mine["client_id"].clone();
    let mut bad = update.clone();
    bad["redirect_uris"] = json!(["https://shop.example/cb#x"]);
    let (status, body, _) = send(
        &server,
        reqwest::Method::PUT,
        &my_path,
        Some(my_token),
        Some(&bad),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_redirect_uri");
    // An operator's setting survives the client's update.
    let id = mine["client_id"].as_str().unwrap();
    server.cli(&[
        "client",
        "update",
        id,
        "--access-token-ttl",
        "120",
        "--json",
    ]);
    let (status, updated, _) = send(
        &server,
        reqwest::Method::PUT,
        &my_path,
        Some(my_token),
        Some(&update),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://shop.example/callback"])
    );
    let shown = server.cli(&["client", "show", id, "--json"]);
    assert_eq!(shown["access_token_ttl"], 120, "{shown}");
    let my_token = updated["registration_access_token"].as_str().unwrap();
    // The secret stays.
    let secret = mine["client_secret"].as_str().unwrap();
    let (status, _) = server
        .token_response(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200);

    // Delete: the client ends, its credentials with it, and the registration
    // access token stops working.
    let (status, _, _) = send(
        &server,
        reqwest::Method::DELETE,
        &my_path,
        Some(my_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .token_response(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = send(
        &server,
        reqwest::Method::GET,
        &my_path,
        Some(my_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The other client is untouched.
    let their_token = theirs["registration_access_token"].as_str().unwrap();
    let (status, _, _) = send(
        &server,
        reqwest::Method::GET,
        &their_path,
        Some(their_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn open_registration_takes_only_clients_that_act_for_people() {
    let closed = TestServer::start().await;
    let metadata =
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"});
    let (status, _) = register(&closed, None, &metadata).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let open = TestServer::start_with(&[("TESSERA_OPEN_REGISTRATION", "true")]).await;
    let (status, client) = register(&open, None, &metadata).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    assert!(
        client.get("client_secret").is_none(),
        "a public client got a secret"
    );
    assert_eq!(client["token_endpoint_auth_method"], "none");
    for grants in [
        json!(["client_credentials"]),
        json!(["password"]),
        json!(["urn:ietf:params:oauth:grant-type:token-exchange"]),
        json!(["urn:ietf:params:oauth:grant-type:jwt-bearer"]),
    ] {
        let (status, body) = register(
            &open,
            None,
            &json!({"grant_types": grants, "response_types": []}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grants}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata");
    }
    // Nor may it choose the APIs it gets tokens for.
    let mut with_audience = metadata.clone();
    with_audience["audiences"] = json!(["https://orders.example"]);
    let (status, body) = register(&open, None, &with_audience).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An update keeps to the same limits.
    let path = path_of(&open, &client["registration_client_uri"]);
    let token = client["registration_access_token"].as_str().unwrap();
    let escalated = json!({
        "client_id": client["client_id"],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "client_credentials"],
        "redirect_uris": ["https://app.example/cb"],
    });
    let (status, body, _) = send(
        &open,
        reqwest::Method::PUT,
        &path,
        Some(token),
        Some(&escalated),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata");
}

#[tokio::test]
async fn open_registration_is_limited_per_address() {
    let server = TestServer::start_with(&[
        ("TESSERA_OPEN_REGISTRATION", "true"),
        ("TESSERA_OPEN_REGISTRATION_PER_HOUR", "2"),
    ])
    .await;
    let metadata =
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"});
    for _ in 0..2 {
        let (status, body) = register(&server, None, &metadata).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body, headers) = send(
        &server,
        reqwest::Method::POST,
        "/register",
        None,
        Some(&metadata),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry_after: u64 = headers[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=1800).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    // An operator's token is not counted against the address.
    let token = initial_token(&server);
    let (status, body) = register(&server, Some(&token), &metadata).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Reads that rotate one registration access token at the same moment: one
/// gets the successor, the others a 401, and the successor works.
#[tokio::test]
async fn concurrent_reads_with_one_token_rotate_it_once() {
    let server = TestServer::start().await;
    let token = initial_token(&server);
    let metadata = json!({"redirect_uris": ["https://app.example/cb"]});
    let (_, client) = register(&server, Some(&token), &metadata).await;
    let path = path_of(&server, &client["registration_client_uri"]);
    let management = client["registration_access_token"].as_str().unwrap();
    let read = || send(&server, reqwest::Method::GET, &path, Some(management), None);
    let (a, b, c, d) = tokio::join!(read(), read(), read(), read());
    let reads = [a, b, c, d];
    let winners: Vec<&Value> = reads
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{} reads rotated one token",
        winners.len()
    );
    assert!(reads.iter().all(|(status, _, _)| {
        *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED
    }));
    let successor = winners[0]["registration_access_token"].as_str().unwrap();
    let (status, _, _) = send(&server, reqwest::Method::GET, &path, Some(successor), None).await;
    assert_eq!(status, StatusCode::OK);
}

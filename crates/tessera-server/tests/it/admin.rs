//! The admin API over HTTP: its authentication (admin tokens only), the
//! clients, users and keys it manages by the CLI's rules, and the OpenAPI
//! document generated from it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;

/// An admin token made with the CLI.
fn admin_token(server: &TestServer) -> (String, String) {
    let out = server.cli(&["admin-token", "create", "--json"]);
    (
        out["id"].as_str().unwrap().to_owned(),
        out["token"].as_str().unwrap().to_owned(),
    )
}

async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (status, headers, value)
}

#[tokio::test]
async fn only_a_live_admin_token_opens_the_admin_api() {
    let server = TestServer::start().await;
    let (id, token) = admin_token(&server);

    let (status, headers, body) = call(&server, None, Method::GET, "/admin/clients", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        headers["www-authenticate"], "Bearer realm=\"tessera-admin\"",
        "no token: a bare challenge (RFC 6750 §3.1)"
    );
    let (status, headers, body) = call(
        &server,
        Some("not-a-token"),
        Method::GET,
        "/admin/clients",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // An initial access token is a token of this server, but not for this.
    let registration = server.cli(&["registration-token", "create", "--json"]);
    let registration = registration["token"].as_str().unwrap();
    let (status, _, _) = call(
        &server,
        Some(registration),
        Method::GET,
        "/admin/clients",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor is an admin token an initial access token.
    let response = server
        .http
        .post(server.url("/register"))
        .bearer_auth(&token)
        .json(&json!({"client_name": "x", "redirect_uris": ["https://x.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Nor is a client's access token.
    let (client_id, secret) = server.client(&["--grant", "client_credentials"]);
    let access = server
        .token(&client_id, &secret, &[("grant_type", "client_credentials")])
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = call(&server, Some(&access), Method::GET, "/admin/clients", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, body) = call(&server, Some(&token), Method::GET, "/admin/clients", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == client_id)
    );

    let listed = server.cli(&["admin-token", "list", "--json"]);
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert!(
        !listed.to_string().contains(&token),
        "never the token itself"
    );
    let registrations = server.cli(&["registration-token", "list", "--json"]);
    assert_eq!(
        registrations.as_array().unwrap().len(),
        1,
        "kept apart: {registrations}"
    );
    server.cli(&["admin-token", "revoke", &id, "--json"]);
    let (status, _, _) = call(&server, Some(&token), Method::GET, "/admin/clients", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked at once");
}

#[tokio::test]
async fn clients_are_managed_by_the_same_rules_as_the_cli() {
    let server = TestServer::start().await;
    let (_, token) = admin_token(&server);
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let token = token.clone();
        let server = &server;
        let path = path.to_owned();
        async move { call(server, Some(&token), method, &path, body).await }
    };

    let (status, headers, created) = admin(
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "Billing", "kind": "service", "client_id": "billing"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers["cache-control"], "no-store", "it carries a secret");
    assert_eq!(created["client"]["client_id"], "billing");
    assert_eq!(created["client"]["grants"], json!(["client_credentials"]));
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (status, _) = server
        .post_form(
            "/oauth2/token",
            "billing",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The CLI sees what the API made, described the same way.
    assert_eq!(
        server.cli(&["client", "show", "billing", "--json"]),
        created["client"]
    );

    let (status, _, body) = admin(
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "Billing", "kind": "service", "client_id": "billing"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for (request, error) in [
        (
            json!({"name": "Web", "kind": "web", "redirect_uris": ["http://web.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"name": "Web", "kind": "web", "redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"name": "Public", "public": true, "grants": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!({"name": "Odd", "kind": "toaster"}), "invalid_request"),
        (
            json!({"name": "Odd", "unknown_member": 1}),
            "invalid_request",
        ),
        (json!({"kind": "web"}), "invalid_request"),
    ] {
        let (status, _, body) = admin(Method::POST, "/admin/clients", Some(request.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert_eq!(body["error"], error, "{request}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    let response = server
        .http
        .post(server.url("/admin/clients"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // A change is checked before anything is written.
    let (status, _, body) = admin(
        Method::PATCH,
        "/admin/clients/billing",
        Some(json!({"grants": ["authorization_code"]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a service has no redirect URI: {body}"
    );
    let (status, _, body) = admin(
        Method::PATCH,
        "/admin/clients/billing",
        Some(json!({"name": "Billing v2", "access_token_ttl": 600, "token_format": "reference"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["client"]["name"], "Billing v2");
    assert_eq!(body["client"]["access_token_ttl"], 600);
    let (_, _, body) = admin(
        Method::PATCH,
        "/admin/clients/billing",
        Some(json!({"access_token_ttl": null, "token_format": null})),
    )
    .await;
    assert_eq!(
        body["client"]["access_token_ttl"],
        Value::Null,
        "null resets: {body}"
    );
    assert_eq!(body["client"]["token_format"], Value::Null);
    let (status, _, body) = admin(Method::GET, "/admin/clients/billing", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Billing v2");

    let (status, _, rotated) = admin(Method::POST, "/admin/clients/billing/secret", None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let (status, _) = server
        .post_form(
            "/oauth2/token",
            "billing",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret stops working"
    );
    let (status, _) = server
        .post_form(
            "/oauth2/token",
            "billing",
            new_secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, _) = admin(Method::DELETE, "/admin/clients/billing", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = admin(Method::DELETE, "/admin/clients/billing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, _, _) = admin(Method::GET, "/admin/clients/billing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn users_and_keys_are_managed_too() {
    let server = TestServer::start().await;
    let (_, token) = admin_token(&server);
    let t = Some(token.as_str());

    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/users",
        Some(json!({"username": "alice", "email": "alice@example.com", "password": "short"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a weak password: {body}");
    let (status, _, alice) = call(
        &server,
        t,
        Method::POST,
        "/admin/users",
        Some(json!({"username": "alice", "email": "alice@example.com",
                    "password": "correct horse battery staple", "developer": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["developer"], true);
    assert!(!alice.to_string().contains("argon2"), "never the hash");
    let sub = alice["sub"].as_str().unwrap().to_owned();
    let (status, _, _) = call(
        &server,
        t,
        Method::POST,
        "/admin/users",
        Some(json!({"username": "ALICE", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, body) = call(
        &server,
        t,
        Method::PUT,
        &format!("/admin/users/{sub}/roles"),
        Some(json!({"admin": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["developer"].clone(), body["admin"].clone()),
        (json!(true), json!(true))
    );
    let listed = server.cli(&["user", "list", "--json"]);
    assert_eq!(listed[0], body, "the CLI sees the same user");
    let (status, _, _) = call(
        &server,
        t,
        Method::DELETE,
        &format!("/admin/users/{sub}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &server,
        t,
        Method::GET,
        &format!("/admin/users/{sub}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, keys) = call(&server, t, Method::GET, "/admin/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    let before = keys.as_array().unwrap().len();
    assert!(before >= 1, "{keys}");
    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/keys/rotate",
        Some(json!({"alg": "HS256"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, rotated) = call(
        &server,
        t,
        Method::POST,
        "/admin/keys/rotate",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (_, _, keys) = call(&server, t, Method::GET, "/admin/keys", None).await;
    let kids: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&rotated["kid"].as_str().unwrap()), "{keys}");

    // Revocation: the new key does not sign yet, so the one that does is
    // refused without force; the pending one can go.
    let next = rotated["kid"].as_str().unwrap();
    let (status, _, revoked) = call(
        &server,
        t,
        Method::POST,
        &format!("/admin/keys/{next}/revoke"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["was_signing"], false);
    let jwks = server.get_json("/jwks.json").await;
    assert!(
        !jwks.to_string().contains(next),
        "gone from the JWKS at once"
    );
    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        &format!("/admin/keys/{next}/revoke"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _, _) = call(
        &server,
        t,
        Method::POST,
        "/admin/keys/no-such-kid/revoke",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_every_admin_route() {
    let server = TestServer::start().await;
    let doc = server.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/admin/clients", &["get", "post"][..]),
        ("/admin/clients/{client_id}", &["get", "patch", "delete"]),
        ("/admin/clients/{client_id}/secret", &["post"]),
        ("/admin/users", &["get", "post"]),
        ("/admin/users/{sub}", &["get", "delete"]),
        ("/admin/users/{sub}/roles", &["put"]),
        ("/admin/keys", &["get"]),
        ("/admin/keys/rotate", &["post"]),
        ("/admin/keys/{kid}/revoke", &["post"]),
        ("/admin/resources", &["get", "post"]),
        ("/admin/resources/{audience}", &["get", "patch"]),
        ("/admin/resources/{audience}/secret", &["post"]),
        ("/admin/issuers", &["get", "post"]),
        ("/admin/issuers/{issuer}", &["delete"]),
        ("/admin/saml-idps", &["get", "post"]),
        ("/admin/saml-idps/{entity_id}", &["delete"]),
    ] {
        for method in methods {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is not described: {}",
                doc["paths"]
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ClientView",
        "NewClientRequest",
        "ClientPatch",
        "UserView",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // Every described operation is served (and asks for the admin token).
    let (client_id, _) = server.client(&[]);
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{client_id}", &client_id)
                .replace("{sub}", "nobody")
                .replace("{audience}", "aud")
                .replace("{issuer}", "iss")
                .replace("{entity_id}", "idp")
                .replace("{kid}", "kid");
            let response = server
                .http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    server.url(&concrete),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} is not served behind the admin token"
            );
        }
    }
}

fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn resources_and_trust_are_managed_too() {
    let server = TestServer::start().await;
    let (_, token) = admin_token(&server);
    let t = Some(token.as_str());

    let (status, _, saved) = call(
        &server,
        t,
        Method::POST,
        "/admin/resources",
        Some(
            json!({"audience": "https://reports.example", "scope": "reports:read",
                    "signing_alg": "HS256"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let first = saved["shared_secret"]
        .as_str()
        .expect("an HS256 secret, once")
        .to_owned();
    assert_eq!(saved["resource"]["signing_alg"], "HS256");
    let (status, _, _) = call(
        &server,
        t,
        Method::POST,
        "/admin/resources",
        Some(json!({"audience": "https://reports.example"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/resources",
        Some(json!({"audience": "https://x.example", "signing_alg": "none"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let path = format!("/admin/resources/{}", segment("https://reports.example"));
    let (status, _, shown) = call(&server, t, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(
        !shown.to_string().contains(&first),
        "never the secret again"
    );
    let (status, _, rotated) =
        call(&server, t, Method::POST, &format!("{path}/secret"), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["shared_secret"].as_str().unwrap(), first);
    let (status, _, changed) = call(
        &server,
        t,
        Method::PATCH,
        &path,
        Some(json!({"scope": "reports:read reports:write", "signing_alg": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["resource"]["scope"], "reports:read reports:write");
    assert_eq!(changed["resource"]["signing_alg"], Value::Null);
    assert!(changed["retired_secret_kid"].is_string(), "{changed}");
    let listed = server.cli(&["resource", "list", "--json"]);
    assert_eq!(listed[0]["scope"], "reports:read reports:write", "{listed}");

    let jwks = json!({"keys": [{"kty": "EC", "kid": "k1", "alg": "ES256", "use": "sig",
        "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let issuer = "https://idp.example";
    let (status, _, added) = call(
        &server,
        t,
        Method::POST,
        "/admin/issuers",
        Some(json!({"issuer": issuer, "jwks": jwks})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["key_ids"], json!(["k1"]));
    let (status, _, _) = call(
        &server,
        t,
        Method::POST,
        "/admin/issuers",
        Some(json!({"issuer": issuer, "jwks": jwks})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/issuers",
        Some(json!({"issuer": server.issuer, "jwks": jwks})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "never this server itself: {body}"
    );
    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/issuers",
        Some(json!({"issuer": "https://other.example"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "keys are needed: {body}");
    let listed = server.cli(&["issuer", "list", "--json"]);
    assert_eq!(listed[0]["issuer"], issuer, "{listed}");
    let path = format!("/admin/issuers/{}", segment(issuer));
    let (status, _, _) = call(&server, t, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&server, t, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = call(
        &server,
        t,
        Method::POST,
        "/admin/saml-idps",
        Some(json!({"entity_id": "https://saml.example", "certificate_pem": "not a certificate"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A real certificate, from the SAML tool of the outside tests.
    let Some(python) = crate::common::python() else {
        return;
    };
    let dir = crate::common::TempDir::new("admin-saml");
    let cert = dir.path().join("idp.pem");
    crate::common::python_json(
        &python,
        "saml_tool.py",
        &json!({"cert_out": cert, "issuer": "https://saml.example",
                "audience": server.issuer, "recipient": server.url("/oauth2/token"),
                "assertions": []}),
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    let (status, _, added) = call(
        &server,
        t,
        Method::POST,
        "/admin/saml-idps",
        Some(json!({"entity_id": "https://saml.example", "certificate_pem": pem})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["key_algorithm"], "RSA");
    let (_, _, listed) = call(&server, t, Method::GET, "/admin/saml-idps", None).await;
    assert_eq!(listed[0]["entity_id"], "https://saml.example", "{listed}");
    let path = format!("/admin/saml-idps/{}", segment("https://saml.example"));
    let (status, _, _) = call(&server, t, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn concurrent_creations_of_one_client_id_make_one_client() {
    let server = TestServer::start().await;
    let (_, token) = admin_token(&server);
    let create = || {
        call(
            &server,
            Some(&token),
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "Billing", "kind": "service", "client_id": "billing"})),
        )
    };
    let (a, b, c, d) = tokio::join!(create(), create(), create(), create());
    let statuses: Vec<StatusCode> = [a, b, c, d].into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let listed = server.cli(&["client", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

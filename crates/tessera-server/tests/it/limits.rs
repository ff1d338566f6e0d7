//! Request rate limits: the token endpoint per client, sign-in and device-code
//! entry and registration per address (the resolved one behind trusted
//! proxies). Each answers 429 with `Retry-After` past its budget, and each
//! budget is its own key's alone.

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::web::{Browser, PASSWORD, create_user};

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get(RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn client_credentials(server: &TestServer, id: &str, secret: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_token_endpoint_limits_each_authenticated_client() {
    let server = TestServer::start_with(&[("TESSERA_TOKEN_RATE_LIMIT", "3")]).await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let (other_id, other_secret) = server.client(&["--grant", "client_credentials"]);
    // Requests that fail to authenticate as the client do not spend its
    // budget: nobody can starve a client by naming it.
    for _ in 0..5 {
        let response = client_credentials(&server, &id, "not the secret").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The per-second budget allows a burst of 3; the refill over these few
    // requests is at most one more.
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let response = client_credentials(&server, &id, &secret).await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            let wait = retry_after(response.headers());
            let body: Value = response.json().await.unwrap();
            refused = Some((wait, body));
        }
    }
    let granted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!((3..=4).contains(&granted), "{statuses:?}");
    let (wait, body) = refused.expect("a refusal");
    assert_eq!(wait, 1);
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body.get("access_token").is_none());
    // Another client has its own budget.
    let response = client_credentials(&server, &other_id, &other_secret).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let server = TestServer::start_with(&[
        ("TESSERA_LOGIN_RATE_LIMIT", "2"),
        ("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    create_user(&server, "carol", None, None);
    let mut busy = Browser::new(&server);
    busy.forwarded_for = Some("203.0.113.7".into());
    for _ in 0..2 {
        let login = busy.get("/portal").await;
        let page = busy.login(&login, "carol", "wrong").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    }
    // The third submission is refused before the password is looked at,
    // even a right one.
    let login = busy.get("/portal").await;
    let refused = busy.login(&login, "carol", PASSWORD).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.describe()
    );
    assert!((1..=60).contains(&retry_after(&refused.headers)));
    assert!(
        refused
            .error_message()
            .is_some_and(|m| m.contains("Too many sign-in attempts from your network")),
        "{}",
        refused.describe()
    );
    assert!(refused.set_cookie("tessera_session").is_none());
    // Another address signs in.
    let mut elsewhere = Browser::new(&server);
    elsewhere.forwarded_for = Some("198.51.100.2".into());
    let login = elsewhere.get("/portal").await;
    let signed_in = elsewhere.login(&login, "carol", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.describe()
    );
}

#[tokio::test]
async fn device_code_entry_is_limited_per_address() {
    let server = TestServer::start_with(&[
        ("TESSERA_DEVICE_RATE_LIMIT", "2"),
        ("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let submit = |address: &'static str| {
        let server = &server;
        async move {
            let mut browser = Browser::new(server);
            browser.forwarded_for = Some(address.into());
            let entry = browser.get("/device").await;
            let csrf = entry.input("csrf").expect("csrf field");
            browser
                .post("/device", &[("csrf", &csrf), ("user_code", "BBBB-BBBB")])
                .await
        }
    };
    for _ in 0..2 {
        let page = submit("203.0.113.7").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    }
    let refused = submit("203.0.113.7").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.describe()
    );
    assert!(retry_after(&refused.headers) >= 1);
    assert!(
        refused
            .error_message()
            .is_some_and(|m| m.contains("from your network")),
        "{}",
        refused.describe()
    );
    let page = submit("198.51.100.2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
}

#[tokio::test]
async fn registration_is_limited_per_address_with_a_token_too() {
    let server = TestServer::start_with(&[("TESSERA_REGISTRATION_RATE_LIMIT", "2")]).await;
    let token = server.cli(&["registration-token", "create", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let register = || {
        server
            .http
            .post(server.url("/register"))
            .bearer_auth(&token)
            .json(&json!({"redirect_uris": ["https://app.example/cb"]}))
            .send()
    };
    for _ in 0..2 {
        let response = register().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let response = register().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(response.headers()) >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}

#[tokio::test]
async fn nothing_is_limited_by_default() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    for _ in 0..30 {
        let response = client_credentials(&server, &id, &secret).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

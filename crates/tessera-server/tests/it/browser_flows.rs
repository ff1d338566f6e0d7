//! The people flows and the device flow in a real browser: headless Chromium
//! signs in, consents and enters device codes on Tessera's own pages, and the
//! client's redirect URI is a listener inside the test. Each test has its own
//! server, browser and listener, so they run in parallel.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::crypto::random_token;
use tessera_jose::b64;

use crate::browser::{Browser, CallbackListener, TIMEOUT};
use crate::common::{TestServer, decode_jwt};

const PASSWORD: &str = "correct horse battery staple";
const SCOPES: &str = "openid profile email offline_access";
const DEVICE_SCOPES: &str = "openid profile offline_access";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const WEB_APP: &str = "Web App";
const TV_APP: &str = "Living Room TV";
const BAD_CREDENTIALS: &str = "The username or password is not right.";

// ---------------------------------------------------------------------------
// Setup through the CLI
// ---------------------------------------------------------------------------

/// Creates a user with `PASSWORD`; returns its `sub`.
fn create_user(server: &TestServer, username: &str, name: &str) -> String {
    let email = format!("{username}@example.com");
    let args = [
        "user",
        "create",
        "--username",
        username,
        "--email",
        &email,
        "--name",
        name,
        "--password-stdin",
        "--json",
    ];
    let mut child = server
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["sub"].as_str().unwrap().to_owned()
}

/// A confidential web application redirecting to `redirect_uri`; returns
/// (id, secret).
fn web_app(server: &TestServer, redirect_uri: &str) -> (String, String) {
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        WEB_APP,
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        redirect_uri,
        "--scope",
        SCOPES,
        "--json",
    ]);
    (
        out["client_id"].as_str().unwrap().to_owned(),
        out["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// A public device client; returns its id.
fn tv_app(server: &TestServer) -> String {
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        TV_APP,
        "--public",
        "--grant",
        "device_code",
        "--grant",
        "refresh_token",
        "--scope",
        DEVICE_SCOPES,
        "--json",
    ]);
    out["client_id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// The client's side of the code flow
// ---------------------------------------------------------------------------

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    fn new() -> Pkce {
        let verifier = random_token();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        Pkce {
            challenge: b64(digest.as_ref()),
            verifier,
        }
    }
}

/// What one authorization request carries besides the client.
struct Request {
    state: String,
    nonce: String,
    pkce: Pkce,
}

impl Request {
    fn new() -> Request {
        Request {
            state: random_token(),
            nonce: random_token(),
            pkce: Pkce::new(),
        }
    }

    /// The authorization URL the client sends the browser to, with `extra`
    /// parameters such as `response_mode`.
    fn url(
        &self,
        server: &TestServer,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth2/authorize", server.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &self.pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra);
        url.into()
    }
}

/// Redeems `code` with the verifier and Basic authentication.
async fn exchange(
    server: &TestServer,
    client: &(String, String),
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
}

/// Checks a token response for the code flow: all three tokens, the ID token
/// about `sub`, for this client and with this request's nonce.
fn assert_code_tokens(
    server: &TestServer,
    body: &Value,
    client_id: &str,
    sub: &str,
    nonce: &str,
) -> String {
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let access = body["access_token"].as_str().expect("access token");
    assert!(!access.is_empty(), "{body}");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "offline_access was consented, so a refresh token: {body}"
    );
    let id_token = body["id_token"].as_str().expect("ID token");
    let (_, claims) = decode_jwt(id_token);
    assert_eq!(claims["iss"], server.issuer, "{claims}");
    assert_eq!(claims["sub"], sub, "{claims}");
    assert_eq!(claims["nonce"], nonce, "{claims}");
    let aud_ok = claims["aud"] == client_id
        || claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == client_id));
    assert!(aud_ok, "ID token audience: {claims}");
    access.to_owned()
}

// ---------------------------------------------------------------------------
// The device's side
// ---------------------------------------------------------------------------

/// `POST /oauth2/device/code` for the public client: the whole response.
async fn start_device(server: &TestServer, client_id: &str) -> Value {
    let (status, body) = public_post(
        server,
        "/oauth2/device/code",
        &[("client_id", client_id), ("scope", DEVICE_SCOPES)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// One poll of the token endpoint (RFC 8628 §3.4).
async fn poll(server: &TestServer, client_id: &str, device_code: &str) -> (StatusCode, Value) {
    public_post(
        server,
        "/oauth2/token",
        &[
            ("client_id", client_id),
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
        ],
    )
    .await
}

async fn public_post(
    server: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let r = server
        .http
        .post(server.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_oauth_error(reply: &(StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(
        (reply.0, reply.1["error"].as_str()),
        (status, Some(error)),
        "expected {status} {error}, got {} {}",
        reply.0,
        reply.1
    );
}

/// Sleeps until just past `seconds` after `since`: the server counts the
/// polling interval in whole seconds from its answer to the previous poll.
async fn wait_past(since: Instant, seconds: u64) {
    let until = since + Duration::from_secs(seconds) + Duration::from_millis(50);
    tokio::time::sleep_until(until.into()).await;
}

/// Polls after the interval and expects tokens; returns when the poll was sent.
async fn poll_for_tokens(
    server: &TestServer,
    client_id: &str,
    device_code: &str,
    last_poll: Instant,
) -> Instant {
    wait_past(last_poll, 1).await;
    let sent = Instant::now();
    let (status, body) = poll(server, client_id, device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "offline_access was asked for: {body}"
    );
    assert!(body["id_token"].is_string(), "openid was asked for: {body}");
    sent
}

// ---------------------------------------------------------------------------
// The person's side: the browser
// ---------------------------------------------------------------------------

/// Clicks a button that submits a form and waits until the browser has left
/// the current document, so the next look at the page sees the answer.
pub(crate) async fn submit(browser: &Browser, label: &str) {
    let old = browser
        .client()
        .find(Locator::Css("html"))
        .await
        .unwrap_or_else(|e| panic!("the current page has no document: {e}"));
    browser.click_button(label).await;
    let deadline = Instant::now() + TIMEOUT;
    // Any call on an element of a replaced document fails (stale reference).
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "clicking {label:?} did not load a new page within {TIMEOUT:?}; still on {}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page's visible text.
pub(crate) async fn text(browser: &Browser) -> String {
    let body = match browser.client().find(Locator::Css("body")).await {
        Ok(body) => body,
        Err(e) => panic!("no page body on {}: {e}", browser.current_url().await),
    };
    body.text()
        .await
        .unwrap_or_else(|e| panic!("page text: {e}"))
}

/// Asserts that the page shows each of `needles`, naming the page otherwise.
pub(crate) async fn assert_shows(browser: &Browser, what: &str, needles: &[&str]) {
    let shown = text(browser).await;
    for needle in needles {
        assert!(
            shown.contains(needle),
            "{what}: {needle:?} not shown on {}; the page says:\n{shown}",
            browser.current_url().await
        );
    }
}

/// The value the field named `name` holds now.
async fn field_value(browser: &Browser, name: &str) -> String {
    browser
        .client()
        .find(Locator::Css(&format!("[name=\"{name}\"]")))
        .await
        .unwrap_or_else(|e| panic!("field {name:?}: {e}"))
        .prop("value")
        .await
        .unwrap_or_else(|e| panic!("value of field {name:?}: {e}"))
        .unwrap_or_default()
}

/// Fills in the login form on the current page and submits it.
pub(crate) async fn sign_in(browser: &Browser, username: &str, password: &str) {
    assert_shows(browser, "login page", &["Sign in"]).await;
    browser.fill("username", username).await;
    browser.fill("password", password).await;
    submit(browser, "Sign in").await;
}

// ---------------------------------------------------------------------------
// The authorization code flow
// ---------------------------------------------------------------------------

#[tokio::test]
async fn code_flow_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let mut cb = CallbackListener::start().await;
    let sub = create_user(&server, "alice", "Alice Liddell");
    let client = web_app(&server, &cb.url);

    let first = Request::new();
    browser
        .goto(&first.url(&server, &client.0, &cb.url, &[]))
        .await;
    assert_shows(&browser, "login page", &[WEB_APP]).await;
    sign_in(&browser, "alice", PASSWORD).await;
    assert_shows(
        &browser,
        "consent page",
        &[
            &format!("Allow {WEB_APP}?"),
            "alice",
            "Sign you in with your account",
            "See your name and username",
            "See your email address",
            "Keep access when you are not using it",
        ],
    )
    .await;
    assert!(
        cb.try_next().is_none(),
        "nothing reaches the client before consent"
    );
    submit(&browser, "Allow").await;

    let got = cb.next().await;
    assert_eq!(got.method, Method::GET);
    assert_eq!(got.param("state").as_deref(), Some(first.state.as_str()));
    assert_eq!(got.param("iss").as_deref(), Some(server.issuer.as_str()));
    assert_eq!(got.param("error"), None, "{got:?}");
    let code = got.param("code").expect("a code");
    browser.wait_for_url_prefix(&cb.url).await;

    let (status, body) = exchange(&server, &client, &code, &cb.url, &first.pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = assert_code_tokens(&server, &body, &client.0, &sub, &first.nonce);
    let userinfo: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], sub, "{userinfo}");
    assert_eq!(userinfo["preferred_username"], "alice", "{userinfo}");
    assert_eq!(userinfo["name"], "Alice Liddell", "{userinfo}");
    assert_eq!(userinfo["email"], "alice@example.com", "{userinfo}");

    // The session cookie and the remembered consent: no page this time, the
    // authorization endpoint redirects straight back to the client.
    let second = Request::new();
    browser
        .goto(&second.url(&server, &client.0, &cb.url, &[]))
        .await;
    let landed = browser.wait_for_url_prefix(&cb.url).await;
    let got = cb.next().await;
    assert_eq!(Some(got.query.as_str()), landed.query());
    assert_eq!(got.param("state").as_deref(), Some(second.state.as_str()));
    assert_eq!(got.param("iss").as_deref(), Some(server.issuer.as_str()));
    let code2 = got.param("code").expect("a second code");
    assert_ne!(code2, code);
    let (status, body) = exchange(&server, &client, &code2, &cb.url, &second.pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_code_tokens(&server, &body, &client.0, &sub, &second.nonce);
    assert!(cb.try_next().is_none(), "one callback per authorization");

    browser.close().await;
}

#[tokio::test]
async fn consent_denied_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let mut cb = CallbackListener::start().await;
    create_user(&server, "bob", "Bob Builder");
    let client = web_app(&server, &cb.url);

    let request = Request::new();
    browser
        .goto(&request.url(&server, &client.0, &cb.url, &[]))
        .await;
    sign_in(&browser, "bob", PASSWORD).await;
    assert_shows(
        &browser,
        "consent page",
        &[WEB_APP, "See your name and username"],
    )
    .await;
    submit(&browser, "Deny").await;

    let got = cb.next().await;
    assert_eq!(got.method, Method::GET);
    assert_eq!(
        got.param("error").as_deref(),
        Some("access_denied"),
        "{got:?}"
    );
    assert_eq!(got.param("state").as_deref(), Some(request.state.as_str()));
    assert_eq!(got.param("iss").as_deref(), Some(server.issuer.as_str()));
    assert_eq!(got.param("code"), None, "{got:?}");
    browser.wait_for_url_prefix(&cb.url).await;

    browser.close().await;
}

#[tokio::test]
async fn wrong_password_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let mut cb = CallbackListener::start().await;
    let sub = create_user(&server, "carol", "Carol Danvers");
    let client = web_app(&server, &cb.url);

    let request = Request::new();
    browser
        .goto(&request.url(&server, &client.0, &cb.url, &[]))
        .await;
    sign_in(&browser, "carol", "not the password").await;
    assert_shows(
        &browser,
        "login page after a wrong password",
        &[BAD_CREDENTIALS, WEB_APP],
    )
    .await;
    let url = browser.current_url().await;
    assert!(
        url.as_str().starts_with(&server.issuer) && url.path() == "/login",
        "a failed sign-in stays on the server's page, not {url}"
    );
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|c| c.name() != "tessera_session"),
        "no session after a wrong password"
    );
    assert!(
        cb.try_next().is_none(),
        "no redirect after a wrong password"
    );
    // The username is kept, the password is not.
    assert_eq!(field_value(&browser, "username").await, "carol");
    assert_eq!(field_value(&browser, "password").await, "");

    // An unknown user reads the same words.
    sign_in(&browser, "nobody", PASSWORD).await;
    assert_shows(
        &browser,
        "login page after an unknown user",
        &[BAD_CREDENTIALS],
    )
    .await;

    sign_in(&browser, "carol", PASSWORD).await;
    assert_shows(
        &browser,
        "consent page",
        &[WEB_APP, "See your name and username"],
    )
    .await;
    submit(&browser, "Allow").await;
    let got = cb.next().await;
    assert_eq!(got.param("state").as_deref(), Some(request.state.as_str()));
    let code = got.param("code").expect("a code");
    let (status, body) = exchange(&server, &client, &code, &cb.url, &request.pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_code_tokens(&server, &body, &client.0, &sub, &request.nonce);

    browser.close().await;
}

#[tokio::test]
async fn form_post_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let mut cb = CallbackListener::start().await;
    let sub = create_user(&server, "dave", "Dave Bowman");
    let client = web_app(&server, &cb.url);

    let request = Request::new();
    browser
        .goto(&request.url(
            &server,
            &client.0,
            &cb.url,
            &[("response_mode", "form_post")],
        ))
        .await;
    sign_in(&browser, "dave", PASSWORD).await;
    assert_shows(
        &browser,
        "consent page",
        &[WEB_APP, "See your name and username"],
    )
    .await;
    submit(&browser, "Allow").await;

    // The answer is a page whose nonce-allowed script posts the form; the
    // page's own CSP must let it run without a click.
    let got = cb.next().await;
    assert_eq!(got.method, Method::POST, "{got:?}");
    assert_eq!(got.query, "", "form_post puts nothing in the URL");
    assert_eq!(got.param("state").as_deref(), Some(request.state.as_str()));
    assert_eq!(got.param("iss").as_deref(), Some(server.issuer.as_str()));
    let code = got.param("code").expect("a code in the form");
    let landed = browser.wait_for_url_prefix(&cb.url).await;
    assert_eq!(landed.query(), None);

    let (status, body) = exchange(&server, &client, &code, &cb.url, &request.pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_code_tokens(&server, &body, &client.0, &sub, &request.nonce);

    // Signed in and consented: the next form_post answer comes without a
    // click, straight from the authorization endpoint.
    let again = Request::new();
    browser
        .goto(&again.url(
            &server,
            &client.0,
            &cb.url,
            &[("response_mode", "form_post")],
        ))
        .await;
    let got = cb.next().await;
    assert_eq!(got.method, Method::POST, "{got:?}");
    assert_eq!(got.param("state").as_deref(), Some(again.state.as_str()));
    assert!(got.param("code").is_some(), "{got:?}");

    browser.close().await;
}

// ---------------------------------------------------------------------------
// The device flow
// ---------------------------------------------------------------------------

async fn device_server() -> TestServer {
    TestServer::start_with(&[("TESSERA_DEVICE_POLL_INTERVAL", "1")]).await
}

#[tokio::test]
async fn device_flow_approved_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = device_server().await;
    create_user(&server, "erin", "Erin Brockovich");
    let tv = tv_app(&server);

    let device = start_device(&server, &tv).await;
    let device_code = device["device_code"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();
    assert_eq!(device["interval"], 1, "{device}");
    let mut last_poll = Instant::now();
    let pending = poll(&server, &tv, device_code).await;
    assert_oauth_error(&pending, StatusCode::BAD_REQUEST, "authorization_pending");

    browser
        .goto(device["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_shows(&browser, "code entry page", &["Connect a device"]).await;
    assert_eq!(
        field_value(&browser, "user_code").await,
        user_code,
        "verification_uri_complete fills the code in"
    );
    submit(&browser, "Continue").await;
    assert_shows(&browser, "login page for the device", &["Sign in"]).await;
    sign_in(&browser, "erin", PASSWORD).await;
    assert_shows(
        &browser,
        "device confirmation page",
        &[
            &format!("Allow {TV_APP} on your device?"),
            "erin",
            user_code,
            "See your name and username",
        ],
    )
    .await;

    // Not decided yet: still pending.
    wait_past(last_poll, 1).await;
    last_poll = Instant::now();
    let pending = poll(&server, &tv, device_code).await;
    assert_oauth_error(&pending, StatusCode::BAD_REQUEST, "authorization_pending");

    submit(&browser, "Allow").await;
    assert_shows(&browser, "after approving", &["Device connected"]).await;

    last_poll = poll_for_tokens(&server, &tv, device_code, last_poll).await;
    // The tokens go out once.
    wait_past(last_poll, 1).await;
    let again = poll(&server, &tv, device_code).await;
    assert_oauth_error(&again, StatusCode::BAD_REQUEST, "invalid_grant");

    browser.close().await;
}

#[tokio::test]
async fn device_flow_denied_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = device_server().await;
    create_user(&server, "frank", "Frank Poole");
    let tv = tv_app(&server);

    let device = start_device(&server, &tv).await;
    let device_code = device["device_code"].as_str().unwrap();
    let last_poll = Instant::now();
    let pending = poll(&server, &tv, device_code).await;
    assert_oauth_error(&pending, StatusCode::BAD_REQUEST, "authorization_pending");

    browser
        .goto(device["verification_uri_complete"].as_str().unwrap())
        .await;
    submit(&browser, "Continue").await;
    sign_in(&browser, "frank", PASSWORD).await;
    assert_shows(&browser, "device confirmation page", &[TV_APP]).await;
    submit(&browser, "Deny").await;
    assert_shows(&browser, "after denying", &["Request denied"]).await;

    wait_past(last_poll, 1).await;
    let denied = poll(&server, &tv, device_code).await;
    assert_oauth_error(&denied, StatusCode::BAD_REQUEST, "access_denied");

    browser.close().await;
}

#[tokio::test]
async fn device_code_typed_in_lowercase_without_dash() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = device_server().await;
    create_user(&server, "grace", "Grace Hopper");
    let tv = tv_app(&server);

    let device = start_device(&server, &tv).await;
    let device_code = device["device_code"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();
    let last_poll = Instant::now();
    let pending = poll(&server, &tv, device_code).await;
    assert_oauth_error(&pending, StatusCode::BAD_REQUEST, "authorization_pending");

    browser
        .goto(device["verification_uri"].as_str().unwrap())
        .await;
    assert_eq!(field_value(&browser, "user_code").await, "");
    let typed = user_code.replace('-', "").to_ascii_lowercase();
    browser.fill("user_code", &typed).await;
    submit(&browser, "Continue").await;
    sign_in(&browser, "grace", PASSWORD).await;
    // The page shows the code as the device does, whatever was typed.
    assert_shows(&browser, "device confirmation page", &[TV_APP, user_code]).await;
    submit(&browser, "Allow").await;
    assert_shows(&browser, "after approving", &["Device connected"]).await;

    poll_for_tokens(&server, &tv, device_code, last_poll).await;

    browser.close().await;
}

#[tokio::test]
async fn wrong_device_codes_are_rate_limited_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = device_server().await;
    create_user(&server, "heidi", "Heidi Klum");
    let tv = tv_app(&server);

    let device = start_device(&server, &tv).await;
    let device_code = device["device_code"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();
    let last_poll = Instant::now();
    let pending = poll(&server, &tv, device_code).await;
    assert_oauth_error(&pending, StatusCode::BAD_REQUEST, "authorization_pending");

    browser
        .goto(device["verification_uri"].as_str().unwrap())
        .await;
    // Well-formed codes from the code alphabet that are not the live one.
    let wrong: Vec<String> = ["BCDF", "GHJK", "LMNP", "QRST", "VWXZ"]
        .iter()
        .flat_map(|a| ["BBBB", "ZZZZ"].map(|b| format!("{a}-{b}")))
        .filter(|c| c != user_code)
        .take(10)
        .collect();
    assert_eq!(wrong.len(), 10);
    for (i, code) in wrong.iter().enumerate() {
        browser.fill("user_code", code).await;
        submit(&browser, "Continue").await;
        assert_shows(
            &browser,
            &format!("wrong code {}", i + 1),
            &["That code is not valid or has expired."],
        )
        .await;
    }

    browser.fill("user_code", user_code).await;
    submit(&browser, "Continue").await;
    let shown = text(&browser).await;
    assert!(
        shown.contains("Too many wrong codes"),
        "the right code after ten wrong ones must be refused; the page says:\n{shown}"
    );
    assert!(
        !shown.contains("Sign in") && !shown.contains(TV_APP),
        "a refused code leads nowhere: {shown}"
    );

    // The device is none the wiser: still pending.
    wait_past(last_poll, 1).await;
    let still = poll(&server, &tv, device_code).await;
    assert_oauth_error(&still, StatusCode::BAD_REQUEST, "authorization_pending");

    browser.close().await;
}

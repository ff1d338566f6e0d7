//! The device authorization grant (RFC 8628) over HTTP: the device
//! authorization endpoint, polling the token endpoint, and the `/device` pages a
//! person uses in a browser to enter the code, sign in and decide.
//!
//! The servers run with a one-second polling interval so the flows finish
//! quickly; where the interval must pass, the tests wait just past it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::common::{TestServer, decode_jwt};
use crate::flows::six_at_once;
use crate::web::{Browser, PASSWORD, Page, create_user};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";
const SCOPE: &str = "openid profile offline_access";

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// A server polling at one-second intervals, plus `extra` settings.
async fn start(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("TESSERA_DEVICE_POLL_INTERVAL", "1")];
    env.extend_from_slice(extra);
    TestServer::start_with(&env).await
}

/// The TV app: a public client with the device and refresh grants.
fn tv_client(server: &TestServer) -> String {
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--grant",
        "device_code",
        "--grant",
        "refresh_token",
        "--scope",
        SCOPE,
        "--json",
    ]);
    assert!(
        out["client_secret"].is_null() || out["client_secret"] == "",
        "a public client has no secret: {out}"
    );
    out["client_id"].as_str().unwrap().to_owned()
}

/// A confidential client with the device grant; returns (id, secret).
fn confidential_client(server: &TestServer) -> (String, String) {
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        "Set-top box",
        "--grant",
        "device_code",
        "--scope",
        "openid",
        "--json",
    ]);
    (
        out["client_id"].as_str().unwrap().to_owned(),
        out["client_secret"].as_str().unwrap().to_owned(),
    )
}

// ---------------------------------------------------------------------------
// The device's side
// ---------------------------------------------------------------------------

/// A response read in full.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OAuth error response (RFC 6749 §5.2).
    fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(error)),
            "expected {status} {error}, got {} {}",
            self.status,
            self.body
        );
    }
}

/// How a client authenticates: public clients name themselves in the body.
enum Auth<'a> {
    Public(&'a str),
    Basic(&'a str, &'a str),
}

async fn post(server: &TestServer, path: &str, auth: &Auth<'_>, form: &[(&str, &str)]) -> Reply {
    let mut form = form.to_vec();
    let mut request = server.http.post(server.url(path));
    match auth {
        Auth::Public(id) => form.push(("client_id", id)),
        Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
    }
    Reply::read(request.form(&form).send().await.unwrap()).await
}

/// `POST /oauth2/device/code` (RFC 8628 §3.1).
async fn authorize_device(server: &TestServer, auth: &Auth<'_>, scope: &str) -> Reply {
    post(server, "/oauth2/device/code", auth, &[("scope", scope)]).await
}

/// A device authorization that must succeed: (device_code, user_code).
async fn start_device(server: &TestServer, auth: &Auth<'_>, scope: &str) -> (String, String) {
    let reply = authorize_device(server, auth, scope).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (
        reply.body["device_code"].as_str().unwrap().to_owned(),
        reply.body["user_code"].as_str().unwrap().to_owned(),
    )
}

/// One poll of the token endpoint (RFC 8628 §3.4).
async fn poll(server: &TestServer, auth: &Auth<'_>, device_code: &str) -> Reply {
    post(
        server,
        "/oauth2/token",
        auth,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

/// Sleeps until `seconds` have passed since `since`, and a little more: the
/// server counts whole seconds from when it answered the earlier poll, which was
/// before `since`.
async fn wait_past(since: Instant, seconds: u64) {
    let until = since + Duration::from_secs(seconds) + Duration::from_millis(50);
    tokio::time::sleep_until(until.into()).await;
}

// ---------------------------------------------------------------------------
// The person's side: a browser with a cookie jar
// ---------------------------------------------------------------------------

impl Browser<'_> {
    /// Opens the code-entry page and submits `typed` with the page's CSRF token.
    async fn enter_code(&mut self, typed: &str) -> Page {
        let entry = self.get("/device").await;
        assert_eq!(entry.status, StatusCode::OK, "{}", entry.describe());
        let csrf = entry.input("csrf").expect("csrf field");
        self.post("/device", &[("csrf", &csrf), ("user_code", typed)])
            .await
    }

    /// Submits the confirmation form of `page` with `decision`.
    async fn decide_device(&mut self, page: &Page, decision: &str) -> Page {
        assert!(
            page.is_confirmation(),
            "not a confirmation page: {}",
            page.describe()
        );
        let csrf = page.input("csrf").expect("csrf field");
        let interaction = page.input("interaction").expect("interaction field");
        self.post(
            "/device/decision",
            &[
                ("csrf", &csrf),
                ("interaction", &interaction),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Signs in through the authorization endpoint of a web application, which
    /// leaves a session behind.
    async fn sign_in_for_web_app(&mut self, username: &str) {
        let redirect = "https://app.example/cb";
        let web = self.server.client(&[
            "--grant",
            "authorization_code",
            "--redirect-uri",
            redirect,
            "--scope",
            "openid",
        ]);
        let query = form_urlencoded_pairs(&[
            ("response_type", "code"),
            ("client_id", &web.0),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "s"),
            // RFC 7636 Appendix B's challenge; the code is never exchanged.
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]);
        let login = self.get(&format!("/oauth2/authorize?{query}")).await;
        let after = self.login(&login, username, PASSWORD).await;
        assert!(
            self.cookies.contains_key("tessera_session"),
            "no session after signing in: {}",
            after.describe()
        );
    }

    /// Enters the code, signs in as `username` and decides: the final page.
    async fn sign_in_and_decide(
        &mut self,
        user_code: &str,
        username: &str,
        decision: &str,
    ) -> Page {
        let login = self.enter_code(user_code).await;
        let confirmation = self.login(&login, username, PASSWORD).await;
        self.decide_device(&confirmation, decision).await
    }
}

fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

fn assert_user_code(code: &str) {
    let halves: Vec<&str> = code.split('-').collect();
    assert!(
        halves.len() == 2
            && halves
                .iter()
                .all(|h| h.len() == 4 && h.chars().all(|c| ALPHABET.contains(c))),
        "user code {code:?} is not XXXX-XXXX from {ALPHABET}"
    );
}

// ---------------------------------------------------------------------------
// Discovery and the device authorization endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discovery_lists_the_device_endpoint_and_grant() {
    let server = start(&[]).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta = server.get_json(path).await;
        // RFC 8628 §4.
        assert_eq!(
            meta["device_authorization_endpoint"],
            server.url("/oauth2/device/code"),
            "{path}"
        );
        let grants = meta["grant_types_supported"].as_array().unwrap();
        assert!(
            grants.iter().any(|g| g == DEVICE_GRANT),
            "{path}: {grants:?}"
        );
    }
}

#[tokio::test]
async fn device_authorization_answers_with_codes_and_rejects_bad_requests() {
    let server = start(&[]).await;
    let tv = tv_client(&server);

    let reply = authorize_device(&server, &Auth::Public(&tv), "openid profile").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // RFC 8628 §3.2: the response carries secrets.
    assert_eq!(reply.header(CACHE_CONTROL), Some("no-store"));
    let body = &reply.body;
    let device_code = body["device_code"].as_str().unwrap();
    assert_eq!(device_code.len(), 43, "256 bits, base64url: {device_code}");
    let user_code = body["user_code"].as_str().unwrap();
    assert_user_code(user_code);
    assert_eq!(
        body["verification_uri"],
        format!("{}/device", server.issuer)
    );
    assert_eq!(
        body["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", server.issuer)
    );
    assert_eq!(body["expires_in"], 600, "the default lifetime");
    assert_eq!(body["interval"], 1, "TESSERA_DEVICE_POLL_INTERVAL");

    // Each request gets its own codes.
    let (other_device, other_user) = start_device(&server, &Auth::Public(&tv), "openid").await;
    assert_ne!(other_device, device_code);
    assert_ne!(other_user, user_code);

    // A confidential client authenticates as it does at the token endpoint.
    let (box_id, box_secret) = confidential_client(&server);
    let reply = authorize_device(&server, &Auth::Basic(&box_id, &box_secret), "openid").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    authorize_device(&server, &Auth::Basic(&box_id, "wrong"), "openid")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    authorize_device(&server, &Auth::Public(&box_id), "openid")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    // RFC 8628 §3.2 refers to RFC 6749 §5.2 for errors.
    let web = server.client(&["--grant", "client_credentials", "--scope", "openid"]);
    authorize_device(&server, &Auth::Basic(&web.0, &web.1), "openid")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    authorize_device(&server, &Auth::Public(&tv), "openid email")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    let unknown = authorize_device(&server, &Auth::Public("no-such-client"), "openid").await;
    unknown.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(unknown.header(reqwest::header::WWW_AUTHENTICATE).is_some());
}

// ---------------------------------------------------------------------------
// The whole flow
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_device_flow_signs_in_in_a_browser_and_issues_tokens_once() {
    let server = start(&[]).await;
    let sub = create_user(&server, "alice", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let (device_code, user_code) = start_device(&server, &device, SCOPE).await;

    // RFC 8628 §3.5: pending, then too fast.
    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "authorization_pending");
    let slow = poll(&server, &device, &device_code).await;
    slow.assert_error(StatusCode::BAD_REQUEST, "slow_down");
    let slowed_at = Instant::now();

    // verification_uri_complete fills the code in.
    let mut browser = Browser::new(&server);
    let entry = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.describe());
    assert_eq!(
        entry.input("user_code").as_deref(),
        Some(user_code.as_str())
    );
    let csrf = entry.input("csrf").expect("csrf field");

    // People type codes as they like (RFC 8628 §6.1): lower case, no dash.
    let typed = user_code.replace('-', "").to_lowercase();
    let login = browser
        .post("/device", &[("csrf", &csrf), ("user_code", &typed)])
        .await;
    assert!(login.is_login(), "{}", login.describe());
    assert!(login.body.contains("TV"), "the login page names the client");

    let confirmation = browser.login(&login, "alice", PASSWORD).await;
    assert!(
        confirmation.is_confirmation(),
        "{}",
        confirmation.describe()
    );
    for text in [
        "TV",
        "alice",
        user_code.as_str(),
        "Sign you in with your account",
        "See your name and username",
        "Keep access when you are not using it",
    ] {
        assert!(
            confirmation.body.contains(text),
            "the confirmation page shows {text:?}: {}",
            confirmation.body
        );
    }

    let done = browser.decide_device(&confirmation, "approve").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.describe());
    assert!(done.body.contains("Device connected"), "{}", done.body);

    // slow_down raised the interval to 1 + 5 seconds for good (RFC 8628 §3.5).
    wait_past(slowed_at, 6).await;
    let tokens = poll(&server, &device, &device_code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.header(CACHE_CONTROL), Some("no-store"));
    let body = &tokens.body;
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().expect("access token");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh token: offline_access and the refresh grant");
    let id_token = body["id_token"].as_str().expect("an ID token: openid");
    let (_, claims) = decode_jwt(id_token);
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["aud"], tv.as_str());
    assert_eq!(claims["sub"], sub.as_str());
    assert!(claims["auth_time"].is_i64());

    // The access token is the person's.
    let userinfo = Reply::read(
        server
            .http
            .get(server.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(userinfo.status, StatusCode::OK, "{}", userinfo.body);
    assert_eq!(userinfo.body["sub"], sub.as_str());
    assert_eq!(userinfo.body["preferred_username"], "alice");

    // Tokens come once (RFC 8628 §3.5 refers to RFC 6749 §5.2 invalid_grant),
    // and a spent code is not "pending", so not told to slow down either.
    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");

    // The refresh token works like any other.
    let refreshed = post(
        &server,
        "/oauth2/token",
        &device,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body["access_token"].is_string());
    assert_ne!(refreshed.body["access_token"], access);
}

#[tokio::test]
async fn denying_gives_the_device_access_denied() {
    let server = start(&[]).await;
    create_user(&server, "bob", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let (device_code, user_code) = start_device(&server, &device, "openid").await;

    let mut browser = Browser::new(&server);
    let done = browser.sign_in_and_decide(&user_code, "bob", "deny").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.describe());
    assert!(done.body.contains("Request denied"), "{}", done.body);

    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "access_denied");

    // The decision is final: the code cannot be entered again.
    let again = browser.enter_code(&user_code).await;
    assert!(
        !again.is_login() && !again.is_confirmation(),
        "{}",
        again.describe()
    );
    assert!(
        again
            .error_message()
            .is_some_and(|m| m.contains("not valid")),
        "{}",
        again.describe()
    );
}

#[tokio::test]
async fn expired_codes_are_refused_on_both_sides() {
    let server = start(&[("TESSERA_DEVICE_CODE_TTL", "2")]).await;
    create_user(&server, "carol", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let reply = authorize_device(&server, &device, "openid").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["expires_in"], 2);
    let issued_at = Instant::now();
    let device_code = reply.body["device_code"].as_str().unwrap();
    let user_code = reply.body["user_code"].as_str().unwrap();

    wait_past(issued_at, 2).await;
    // RFC 8628 §3.5.
    poll(&server, &device, device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "expired_token");

    let mut browser = Browser::new(&server);
    let entry = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(entry.input("user_code").as_deref(), Some(user_code));
    let refused = browser.enter_code(user_code).await;
    assert!(
        !refused.is_login() && !refused.is_confirmation(),
        "{}",
        refused.describe()
    );
    assert!(
        refused
            .error_message()
            .is_some_and(|m| m.contains("expired")),
        "{}",
        refused.describe()
    );
}

#[tokio::test]
async fn an_expired_code_cannot_be_approved_from_the_confirmation_page() {
    // The code expires while the person looks at the confirmation page. Signing
    // in takes a while, so the browser signs in first, for a web application.
    let server = start(&[("TESSERA_DEVICE_CODE_TTL", "2")]).await;
    create_user(&server, "carol", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let mut browser = Browser::new(&server);
    browser.sign_in_for_web_app("carol").await;

    let (device_code, user_code) = start_device(&server, &device, "openid").await;
    let issued_at = Instant::now();
    let confirmation = browser.enter_code(&user_code).await;
    assert!(
        confirmation.is_confirmation(),
        "{}",
        confirmation.describe()
    );
    wait_past(issued_at, 2).await;
    let late = browser.decide_device(&confirmation, "approve").await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.describe());
    assert!(
        late.error_message().is_some_and(|m| m.contains("expired")),
        "{}",
        late.describe()
    );
    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "expired_token");
}

// ---------------------------------------------------------------------------
// Codes belong to one client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn another_clients_poll_gets_invalid_grant() {
    let server = start(&[]).await;
    let tv = tv_client(&server);
    let (box_id, box_secret) = confidential_client(&server);
    let other_tv = tv_client(&server);

    // RFC 6749 §5.2: the grant "was issued to another client". One foreign poll
    // per code, so that no poll comes too soon after another.
    let (device_code, _) = start_device(&server, &Auth::Public(&tv), "openid").await;
    poll(&server, &Auth::Basic(&box_id, &box_secret), &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let (device_code, _) = start_device(&server, &Auth::Public(&tv), "openid").await;
    poll(&server, &Auth::Public(&other_tv), &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // An unknown code, and a client without the grant.
    poll(&server, &Auth::Public(&tv), "no-such-device-code")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let web = server.client(&["--grant", "client_credentials"]);
    poll(&server, &Auth::Basic(&web.0, &web.1), &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
}

#[tokio::test]
async fn another_clients_poll_does_not_disturb_the_owner() {
    let server = start(&[]).await;
    create_user(&server, "dave", None, None);
    let tv = tv_client(&server);
    let other_tv = tv_client(&server);
    let owner = Auth::Public(&tv);
    let intruder = Auth::Public(&other_tv);
    let (device_code, user_code) = start_device(&server, &owner, "openid").await;

    // A stranger's poll neither counts as the owner's poll nor slows it down.
    poll(&server, &intruder, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    poll(&server, &owner, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "authorization_pending");
    let polled_at = Instant::now();

    let mut browser = Browser::new(&server);
    let done = browser
        .sign_in_and_decide(&user_code, "dave", "approve")
        .await;
    assert!(
        done.body.contains("Device connected"),
        "{}",
        done.describe()
    );

    // Nor does it spend the approval.
    wait_past(polled_at, 1).await;
    poll(&server, &intruder, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let tokens = poll(&server, &owner, &device_code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert!(tokens.body["access_token"].is_string());
}

#[tokio::test]
async fn finished_codes_are_not_told_to_slow_down() {
    // slow_down means "still pending, keep polling" (RFC 8628 §3.5); a denied or
    // spent code has a final answer, however soon the device asks.
    let server = start(&[]).await;
    create_user(&server, "erin", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);

    let (denied_code, user_code) = start_device(&server, &device, "openid").await;
    Browser::new(&server)
        .sign_in_and_decide(&user_code, "erin", "deny")
        .await;
    poll(&server, &device, &denied_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "access_denied");
    poll(&server, &device, &denied_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "access_denied");

    let (used_code, user_code) = start_device(&server, &device, "openid").await;
    Browser::new(&server)
        .sign_in_and_decide(&user_code, "erin", "approve")
        .await;
    let tokens = poll(&server, &device, &used_code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    poll(&server, &device, &used_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

// ---------------------------------------------------------------------------
// The /device pages
// ---------------------------------------------------------------------------

#[tokio::test]
async fn wrong_codes_are_throttled_per_browser_and_per_address() {
    let server = start(&[]).await;
    create_user(&server, "frank", None, None);
    let tv = tv_client(&server);
    let (_, user_code) = start_device(&server, &Auth::Public(&tv), "openid").await;

    let mut browser = Browser::new(&server);
    let entry = browser.get("/device").await;
    let csrf = entry.input("csrf").unwrap();
    // Well-formed codes that are not this one, and garbage: both count.
    let wrong = ["BBBB-BBBB", "bcdf-ghjk", "not a code"];
    for i in 0..10 {
        let typed = wrong[i % wrong.len()];
        let page = browser
            .post("/device", &[("csrf", &csrf), ("user_code", typed)])
            .await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "attempt {}: {}",
            i + 1,
            page.describe()
        );
        assert!(
            page.error_message()
                .is_some_and(|m| m.contains("not valid")),
            "attempt {}: {}",
            i + 1,
            page.describe()
        );
        // The form comes back with what was typed, to correct it.
        assert_eq!(page.input("user_code").as_deref(), Some(typed));
    }

    // The eleventh attempt is refused, even with the right code (RFC 8628 §5.1:
    // codes must not be guessable within their lifetime).
    let refused = browser
        .post("/device", &[("csrf", &csrf), ("user_code", &user_code)])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.describe()
    );
    let retry_after: i64 = refused
        .headers
        .get(RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let message = refused.error_message().expect("an error message");
    assert!(
        message.contains("Too many wrong codes") && message.contains("10 minutes"),
        "{message}"
    );
    assert!(!refused.is_login() && !refused.is_confirmation());

    // A fresh browser from the same address is refused too: the address counts
    // as well as the browser.
    let mut fresh = Browser::new(&server);
    let refused = fresh.enter_code(&user_code).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.describe()
    );
    assert!(refused.headers.contains_key(RETRY_AFTER));
    assert!(
        refused
            .error_message()
            .is_some_and(|m| m.contains("Too many wrong codes")),
        "{}",
        refused.describe()
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_wrong_codes_throttle_only_their_own_address() {
    let server = start(&[("TESSERA_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let tv = tv_client(&server);
    let (_, user_code) = start_device(&server, &Auth::Public(&tv), "openid").await;
    // A guesser behind the proxy, a fresh browser for each code, until its
    // address is throttled.
    let mut refused = None;
    for i in 0..12 {
        let mut guesser = Browser::new(&server);
        guesser.forwarded_for = Some("203.0.113.7".into());
        let page = guesser
            .enter_code(&format!("BBBB-BBB{}", &ALPHABET[i..=i]))
            .await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(i);
            break;
        }
    }
    assert_eq!(
        refused,
        Some(10),
        "the address's eleventh attempt is refused"
    );
    // Someone else behind the same proxy enters their code.
    let mut viewer = Browser::new(&server);
    viewer.forwarded_for = Some("198.51.100.2".into());
    let login = viewer.enter_code(&user_code).await;
    assert!(login.is_login(), "{}", login.describe());
}

#[tokio::test]
async fn a_signed_in_browser_goes_straight_to_the_confirmation() {
    let server = start(&[]).await;
    create_user(&server, "grace", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);

    let mut browser = Browser::new(&server);
    let (first_code, user_code) = start_device(&server, &device, "openid").await;
    browser
        .sign_in_and_decide(&user_code, "grace", "approve")
        .await;
    assert!(browser.cookies.contains_key("tessera_session"));

    let (second_code, user_code) = start_device(&server, &device, "openid profile").await;
    let confirmation = browser.enter_code(&user_code).await;
    assert!(
        confirmation.is_confirmation(),
        "{}",
        confirmation.describe()
    );
    assert!(confirmation.body.contains("grace"));
    assert!(confirmation.body.contains(&user_code));
    let done = browser.decide_device(&confirmation, "approve").await;
    assert!(
        done.body.contains("Device connected"),
        "{}",
        done.describe()
    );

    for code in [first_code, second_code] {
        let tokens = poll(&server, &device, &code).await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    }
}

#[tokio::test]
async fn the_device_forms_need_the_csrf_token() {
    let server = start(&[]).await;
    create_user(&server, "heidi", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let (device_code, user_code) = start_device(&server, &device, "openid").await;

    // Without the cookie, and with the cookie but without the field.
    let mut browser = Browser::new(&server);
    let page = browser.post("/device", &[("user_code", &user_code)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.describe());
    browser.get("/device").await;
    assert!(browser.cookies.contains_key("tessera_csrf"));
    let page = browser.post("/device", &[("user_code", &user_code)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.describe());
    let page = browser
        .post("/device", &[("csrf", "forged"), ("user_code", &user_code)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.describe());

    // The decision form too.
    let login = browser.enter_code(&user_code).await;
    let confirmation = browser.login(&login, "heidi", PASSWORD).await;
    let interaction = confirmation.input("interaction").unwrap();
    let page = browser
        .post(
            "/device/decision",
            &[("interaction", &interaction), ("decision", "approve")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.describe());
    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "authorization_pending");
}

#[tokio::test]
async fn a_device_confirmation_counts_only_on_its_page_and_for_its_session() {
    let server = start(&[]).await;
    create_user(&server, "alice", None, None);
    create_user(&server, "bob", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let (device_code, user_code) = start_device(&server, &device, "openid").await;
    let mut browser = Browser::new(&server);

    // The login form's interaction is no confirmation.
    let login = browser.enter_code(&user_code).await;
    assert!(login.is_login(), "{}", login.describe());
    let page = browser
        .post(
            "/device/decision",
            &[
                ("csrf", login.input("csrf").unwrap().as_str()),
                ("interaction", login.input("interaction").unwrap().as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.describe());

    // Alice's confirmation page, then Bob signs in on the same browser:
    // Alice's page no longer decides anything.
    let alices = browser.login(&login, "alice", PASSWORD).await;
    assert!(alices.is_confirmation(), "{}", alices.describe());
    browser.cookies.remove("tessera_session");
    browser.sign_in_for_web_app("bob").await;
    let done = browser.decide_device(&alices, "approve").await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{}", done.describe());
    poll(&server, &device, &device_code)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "authorization_pending");
}

/// RFC 8628 §3.5 and RFC 6749 §5.2 under concurrency: of six polls of an
/// approved device code sent at once, exactly one gets tokens; the others
/// are told `invalid_grant` (spent) or `slow_down` (too fast), never given a
/// second set.
#[tokio::test]
async fn of_concurrent_polls_of_an_approved_code_exactly_one_gets_tokens() {
    let server = start(&[]).await;
    create_user(&server, "alice", None, None);
    let tv = tv_client(&server);
    let device = Auth::Public(&tv);
    let (device_code, user_code) = start_device(&server, &device, SCOPE).await;
    let mut browser = Browser::new(&server);
    let done = browser
        .sign_in_and_decide(&user_code, "alice", "approve")
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.describe());

    let [a, b, c, d, e, f] = six_at_once(|| poll(&server, &device, &device_code)).await;
    let replies = [a, b, c, d, e, f];
    let answers: Vec<String> = replies
        .iter()
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    let winners = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(winners, 1, "{answers:#?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{answers:#?}");
        assert!(
            matches!(
                reply.body["error"].as_str(),
                Some("invalid_grant" | "slow_down")
            ),
            "{answers:#?}"
        );
    }
}

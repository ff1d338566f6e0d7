//! The pieces of the flows where a person signs in, shared by the people
//! tests and the security suite: clients registered through the CLI, PKCE
//! pairs, authorization requests, the browser's authorize/consent steps,
//! reading redirects, and the token requests that follow. Each of the two
//! test targets uses a part of them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestServer;
use crate::web::{Browser, PASSWORD, Page, create_user};

pub const REDIRECT: &str = "https://app.example/cb";
pub const SCOPES: &str = "openid profile email offline_access";

// ---------------------------------------------------------------------------
// Setup through the CLI
// ---------------------------------------------------------------------------

/// Registers a client named `name`; returns (id, secret), the secret empty for
/// public clients.
pub fn create_client(server: &TestServer, name: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["client", "create", "--name", name, "--json"];
    args.extend_from_slice(extra);
    let out = server.cli(&args);
    (
        out["client_id"].as_str().unwrap().to_owned(),
        out["client_secret"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The usual web application: code flow with refresh tokens, PKCE required.
pub fn web_app(server: &TestServer) -> (String, String) {
    create_client(
        server,
        "Photo Album",
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
        ],
    )
}

// ---------------------------------------------------------------------------
// A browser: cookies kept per name, redirects not followed
// ---------------------------------------------------------------------------

impl Browser<'_> {
    pub async fn authorize(&mut self, request: &Authz) -> Page {
        self.get(&format!("/oauth2/authorize?{}", request.query()))
            .await
    }

    /// Submits the consent form of `page` with `decision`.
    pub async fn decide(&mut self, page: &Page, decision: &str) -> Page {
        assert!(page.is_consent(), "not a consent page: {}", page.describe());
        let csrf = page.input("csrf").expect("csrf field");
        let interaction = page.input("interaction").expect("interaction field");
        self.post(
            "/consent",
            &[
                ("csrf", csrf.as_str()),
                ("interaction", interaction.as_str()),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Authorize, sign in as `username`, approve: the final response.
    pub async fn sign_in_and_approve(&mut self, request: &Authz, username: &str) -> Page {
        let login = self.authorize(request).await;
        let consent = self.login(&login, username, PASSWORD).await;
        self.decide(&consent, "approve").await
    }
}

// ---------------------------------------------------------------------------
// Authorization requests and responses
// ---------------------------------------------------------------------------

/// A PKCE pair (RFC 7636 §4.1, §4.2) with S256.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let seed = format!(
            "{}-{}-{:?}",
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
        );
        let verifier = b64(sha256(seed.as_bytes()));
        let challenge = b64(sha256(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The parameters of an authorization request.
#[derive(Clone)]
pub struct Authz(pub Vec<(String, String)>);

impl Authz {
    /// A code request with PKCE, `state` and `nonce`, for `REDIRECT` and `SCOPES`.
    pub fn code(client_id: &str, pkce: &Pkce) -> Authz {
        Authz(
            [
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("scope", SCOPES),
                ("state", "state-1"),
                ("nonce", "nonce-1"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        )
    }

    pub fn set(mut self, name: &str, value: &str) -> Authz {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, name: &str) -> Authz {
        self.0.retain(|(n, _)| n != name);
        self
    }

    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    pub fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

pub fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        assert!(
            map.insert(k.clone().into_owned(), v.into_owned()).is_none(),
            "{k} repeated in {text}"
        );
    }
    map
}

/// Where a redirect goes: the URI before `?` or `#`, the query and the fragment.
pub struct Landing {
    pub base: String,
    pub query: BTreeMap<String, String>,
    pub fragment: BTreeMap<String, String>,
}

pub fn landing(page: &Page) -> Landing {
    assert!(
        page.status == StatusCode::FOUND || page.status == StatusCode::SEE_OTHER,
        "expected a redirect: {}",
        page.describe()
    );
    let location = page.location().expect("Location header");
    let (before_fragment, fragment) = location.split_once('#').unwrap_or((location, ""));
    let (base, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    Landing {
        base: base.to_owned(),
        query: parse_pairs(query),
        fragment: parse_pairs(fragment),
    }
}

/// The query of a redirect to `redirect_uri`, which must carry no fragment.
pub fn redirect_query(page: &Page, redirect_uri: &str) -> BTreeMap<String, String> {
    let landing = landing(page);
    assert_eq!(landing.base, redirect_uri, "{}", page.describe());
    assert!(landing.fragment.is_empty(), "{}", page.describe());
    landing.query
}

/// The fragment of a redirect to `redirect_uri`, which must carry no query.
pub fn redirect_fragment(page: &Page, redirect_uri: &str) -> BTreeMap<String, String> {
    let landing = landing(page);
    assert_eq!(landing.base, redirect_uri, "{}", page.describe());
    assert!(landing.query.is_empty(), "{}", page.describe());
    landing.fragment
}

/// The code of a successful redirect, after checking `state` and `iss`.
pub fn code_of(server: &TestServer, page: &Page, request: &Authz) -> String {
    let params = redirect_query(page, request.get("redirect_uri"));
    assert!(!params.contains_key("error"), "{params:?}");
    assert_eq!(params["state"], request.get("state"));
    assert_eq!(params["iss"], server.issuer, "RFC 9207 iss");
    params["code"].clone()
}

/// Asserts an error redirect in the query, with `state` and `iss`.
pub fn assert_error_redirect(server: &TestServer, page: &Page, request: &Authz, error: &str) {
    let params = redirect_query(page, request.get("redirect_uri"));
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{params:?}"
    );
    assert_eq!(params["state"], request.get("state"));
    assert_eq!(params["iss"], server.issuer);
    assert!(!params.contains_key("code"));
}

/// An HTML error page: never a redirect (RFC 6749 §4.1.2.1).
pub fn assert_error_page(page: &Page, status: StatusCode) {
    assert_eq!(page.status, status, "{}", page.describe());
    assert!(page.location().is_none(), "{}", page.describe());
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert!(page.error_message().is_some(), "{}", page.describe());
}

/// The headers every HTML page must carry.
pub fn assert_page_headers(page: &Page) {
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        page.header("x-frame-options") == Some("DENY") || csp.contains("frame-ancestors 'none'"),
        "no clickjacking protection: {:?}",
        page.headers
    );
    assert!(
        page.header("cache-control")
            .is_some_and(|c| c.contains("no-store")),
        "{:?}",
        page.headers
    );
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.headers
    );
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `at_hash` for an ID token signed with a SHA-256 algorithm (OIDC Core
/// §3.1.3.6): the left half of the hash of the ASCII token, base64url.
pub fn left_half_sha256(value: &str) -> String {
    let hash = sha256(value.as_bytes());
    b64(&hash[..hash.len() / 2])
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

pub fn scope_set(text: &str) -> std::collections::BTreeSet<&str> {
    text.split(' ').filter(|t| !t.is_empty()).collect()
}

/// Verifies a JWT against the published JWKS; returns its claims.
pub async fn verify_with_jwks(server: &TestServer, token: &str) -> Value {
    let jwks: tessera_jose::JwkSet =
        serde_json::from_value(server.get_json("/jwks.json").await).unwrap();
    let jws = tessera_jose::UnverifiedJws::parse(token).unwrap();
    let jwk = jwks
        .find(jws.kid().expect("kid"))
        .expect("the signing key is published");
    let key = tessera_jose::VerifyingKey::from_jwk(jwk).unwrap();
    jws.verify(&key).expect("the signature verifies")
}

/// Exchanges a code at the token endpoint as a confidential client.
pub async fn exchange(
    server: &TestServer,
    client: &(String, String),
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    server.token_response(&client.0, &client.1, &form).await
}

pub async fn refresh(
    server: &TestServer,
    client: &(String, String),
    token: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    server.token_response(&client.0, &client.1, &form).await
}

/// A POST without client authentication, as a public client sends it.
pub async fn post_anonymous(
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
    (status, r.json().await.unwrap_or(Value::Null))
}

pub fn assert_oauth_error(status: StatusCode, body: &Value, expected: StatusCode, error: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], error, "{body}");
}

/// Signs `alice` in to the web app and exchanges the code: the token response.
pub async fn tokens_for(
    server: &TestServer,
    browser: &mut Browser<'_>,
    client: &(String, String),
    scope: &str,
) -> Value {
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce).set("scope", scope);
    let page = browser.authorize(&request).await;
    let page = if page.is_login() {
        browser.login(&page, "alice", PASSWORD).await
    } else {
        page
    };
    let page = if page.is_consent() {
        browser.decide(&page, "approve").await
    } else {
        page
    };
    let code = code_of(server, &page, &request);
    let (status, body) = exchange(server, client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn start_with_alice() -> (TestServer, String) {
    let server = TestServer::start().await;
    let sub = create_user(
        &server,
        "alice",
        Some("alice@example.com"),
        Some("Alice Liddell"),
    );
    (server, sub)
}

/// A signed-in browser (alice, consent given for `SCOPES`) and the web app.
pub async fn signed_in() -> (TestServer, (String, String)) {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    (server, client)
}

/// Exactly one of `answers` succeeded; the others got `invalid_grant`.
pub fn one_winner(answers: &[(StatusCode, Value)]) -> Value {
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_oauth_error(*status, body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    winners[0].clone()
}

/// A code for alice through `browser`'s instance (signing in and consenting
/// the first time), with its PKCE verifier.
pub async fn mint_code(
    server: &TestServer,
    browser: &mut Browser<'_>,
    client_id: &str,
) -> (String, String) {
    let pkce = Pkce::new();
    let request = Authz::code(client_id, &pkce);
    let mut page = browser.authorize(&request).await;
    if page.is_login() {
        page = browser.login(&page, "alice", PASSWORD).await;
    }
    if page.is_consent() {
        page = browser.decide(&page, "approve").await;
    }
    (code_of(server, &page, &request), pkce.verifier)
}

/// Six of `request` sent at once (interleaved on one task: each is on the
/// wire before any answer is read), for races on single-use things.
pub async fn six_at_once<T, F: Future<Output = T>>(request: impl Fn() -> F) -> [T; 6] {
    let (a, b, c, d, e, f) = tokio::join!(
        request(),
        request(),
        request(),
        request(),
        request(),
        request()
    );
    [a, b, c, d, e, f]
}

//! The flows where a person signs in, driven over HTTP the way a client and a
//! browser would: the authorization endpoint, the login and consent pages with
//! their cookies and CSRF tokens, the token endpoint for codes, refresh tokens
//! and passwords, `/userinfo` and logout.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::common::{TestServer, decode_jwt};
use crate::flows::*;
use crate::web::{Browser, PASSWORD, cli_with_password, create_user};

// ---------------------------------------------------------------------------
// The code flow
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_code_flow_signs_in_asks_consent_and_issues_verifiable_tokens() {
    let (server, sub) = start_with_alice().await;
    let client = create_client(
        &server,
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
            "--id-token-alg",
            "RS256",
        ],
    );
    let started = now();
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);

    // The login page: framed by nobody, cached by nobody, with a CSRF token
    // bound to a cookie.
    let login = browser.authorize(&request).await;
    assert!(login.is_login(), "{}", login.describe());
    assert_page_headers(&login);
    assert!(login.input("csrf").is_some_and(|c| c.len() >= 32));
    assert!(login.input("interaction").is_some_and(|i| !i.is_empty()));
    assert!(login.body.contains("Photo Album"), "client name shown");
    assert!(browser.cookies.contains_key("tessera_csrf"));
    assert!(!browser.cookies.contains_key("tessera_session"));

    // Signing in leads to the consent page, which names the client and says
    // in words what it asks for.
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    assert_page_headers(&consent);
    assert!(browser.cookies.contains_key("tessera_session"));
    assert!(consent.body.contains("Photo Album"));
    assert!(consent.body.contains("alice"));
    for words in [
        "Sign you in with your account",
        "See your name and username",
        "See your email address",
        "Keep access when you are not using it",
    ] {
        assert!(consent.body.contains(words), "{words:?} missing");
    }
    assert!(consent.input("csrf").is_some());

    // Approving sends the browser back with code, state and iss (RFC 9207).
    let done = browser.decide(&consent, "approve").await;
    assert!(done.status.is_redirection(), "{}", done.describe());
    let code = code_of(&server, &done, &request);

    let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer")
    );
    assert_eq!(body["expires_in"], 900);
    assert_eq!(scope_set(s(&body["scope"])), scope_set(SCOPES));
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // The access token: an RFC 9068 JWT for the person.
    let access_token = s(&body["access_token"]);
    let (at_header, at_claims) = decode_jwt(access_token);
    assert_eq!(at_header["typ"], "at+jwt");
    assert_eq!(at_claims["sub"], sub.as_str());
    assert_eq!(at_claims["client_id"], client.0.as_str());
    let auth_time = at_claims["auth_time"].as_i64().expect("auth_time");
    assert!(
        (started - 5..=now() + 5).contains(&auth_time),
        "{auth_time}"
    );
    assert_eq!(verify_with_jwks(&server, access_token).await, at_claims);

    // The ID token (OIDC Core §2, §3.1.3.6), in the client's algorithm.
    let id_token = s(&body["id_token"]);
    let (header, claims) = decode_jwt(id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(verify_with_jwks(&server, id_token).await, claims);
    assert_eq!(claims["iss"], server.issuer);
    assert_eq!(claims["sub"], sub.as_str());
    let aud_ok = claims["aud"] == client.0.as_str()
        || claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == client.0.as_str()));
    assert!(aud_ok, "aud {}", claims["aud"]);
    assert_eq!(claims["azp"], client.0.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    assert!((started - 5..=now() + 5).contains(&iat));
    assert!(claims["exp"].as_i64().unwrap() > now());
    assert_eq!(claims["auth_time"].as_i64(), Some(auth_time));
    assert_eq!(claims["nonce"], "nonce-1");
    let at_hash = s(&claims["at_hash"]);
    assert_eq!(at_hash, left_half_sha256(access_token));
    assert_eq!(
        at_hash,
        tessera_core::oidc::half_hash(tessera_jose::Algorithm::RS256, access_token)
    );
    let sid = s(&claims["sid"]).to_owned();
    assert!(!sid.is_empty());
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], false);

    // Consent is remembered: the same request with the session cookie gets a
    // code at once, for the same session.
    let pkce2 = Pkce::new();
    let request2 = Authz::code(&client.0, &pkce2)
        .set("state", "state-2")
        .set("nonce", "nonce-2");
    let again = browser.authorize(&request2).await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.describe());
    let code2 = code_of(&server, &again, &request2);
    let (status, body2) = exchange(&server, &client, &code2, Some(&pkce2.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body2}");
    let (_, claims2) = decode_jwt(s(&body2["id_token"]));
    assert_eq!(claims2["sid"], sid.as_str());
    assert_eq!(claims2["auth_time"].as_i64(), Some(auth_time));
    assert_eq!(claims2["nonce"], "nonce-2");

    // prompt=consent asks again.
    let asked = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()).set("prompt", "consent"))
        .await;
    assert!(asked.is_consent(), "{}", asked.describe());

    // prompt=login signs in again; then, consent being remembered, a code
    // follows at once (no loop back to the login page), for a new session.
    let pkce3 = Pkce::new();
    let request3 = Authz::code(&client.0, &pkce3).set("prompt", "login");
    let relogin = browser.authorize(&request3).await;
    assert!(relogin.is_login(), "{}", relogin.describe());
    let after = browser.login(&relogin, "alice", PASSWORD).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.describe());
    let code3 = code_of(&server, &after, &request3);
    let (status, body3) = exchange(&server, &client, &code3, Some(&pkce3.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body3}");
    let (_, claims3) = decode_jwt(s(&body3["id_token"]));
    assert_ne!(
        claims3["sid"],
        sid.as_str(),
        "a new sign-in is a new session"
    );
    assert!(claims3["auth_time"].as_i64().unwrap() >= auth_time);
}

#[tokio::test]
async fn denying_consent_redirects_with_access_denied() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let request = Authz::code(&client.0, &Pkce::new());
    let login = browser.authorize(&request).await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    let denied = browser.decide(&consent, "deny").await;
    assert_error_redirect(&server, &denied, &request, "access_denied");

    // A refusal is not remembered as consent.
    let again = browser.authorize(&request).await;
    assert!(again.is_consent(), "{}", again.describe());
}

#[tokio::test]
async fn consent_covers_only_the_scopes_approved() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let _ = tokens_for(&server, &mut browser, &client, "openid profile").await;

    // Less than approved: no question.
    let request = Authz::code(&client.0, &Pkce::new()).set("scope", "openid");
    code_of(&server, &browser.authorize(&request).await, &request);
    // More: asked again, about the whole request.
    let request = Authz::code(&client.0, &Pkce::new()).set("scope", "openid email");
    let page = browser.authorize(&request).await;
    assert!(page.is_consent(), "{}", page.describe());
    assert!(page.body.contains("See your email address"));
    let _ = browser.decide(&page, "approve").await;
    // Approvals add up.
    let request = Authz::code(&client.0, &Pkce::new()).set("scope", "openid profile email");
    code_of(&server, &browser.authorize(&request).await, &request);
}

#[tokio::test]
async fn redirect_uri_may_be_left_out_of_both_requests_with_a_single_registered_uri() {
    // RFC 6749 §4.1.3: redirect_uri is required at the token endpoint only "if
    // the redirect_uri parameter was included in the authorization request".
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce).without("redirect_uri");
    let login = browser.authorize(&request).await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    let page = browser.decide(&consent, "approve").await;
    let params = redirect_query(&page, REDIRECT);
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------

#[tokio::test]
async fn authorization_parameters_that_are_not_utf8_are_refused() {
    let server = TestServer::start().await;
    let (client_id, _) = web_app(&server);
    let mut browser = Browser::new(&server);
    let request = Authz::code(&client_id, &Pkce::new());
    let with_raw =
        |name: &str, raw: &str| format!("{}&{name}={raw}", request.clone().without(name).query());

    // The client and its redirect URI check out: the error goes back to the
    // client as usual, with its state.
    let page = browser
        .get(&format!("/oauth2/authorize?{}", with_raw("nonce", "%FF")))
        .await;
    assert_error_redirect(&server, &page, &request, "invalid_request");
    let post = server
        .http
        .post(server.url("/oauth2/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(with_raw("nonce", "%FF"));
    let page = browser.send(post).await;
    assert_error_redirect(&server, &page, &request, "invalid_request");
    // An unreadable state is left out of the answer, never sent back mangled.
    let page = browser
        .get(&format!(
            "/oauth2/authorize?{}",
            with_raw("state", "%C3%28")
        ))
        .await;
    let params = redirect_query(&page, REDIRECT);
    assert_eq!(params["error"], "invalid_request", "{params:?}");
    assert!(!params.contains_key("state"), "{params:?}");

    // An unreadable client_id or redirect_uri leaves nowhere trustworthy to
    // send the error: an error page, even though this client has a single
    // registered URI that an omitted redirect_uri would default to.
    for name in ["client_id", "redirect_uri"] {
        let page = browser
            .get(&format!("/oauth2/authorize?{}", with_raw(name, "%FF")))
            .await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
        let message = page.error_message().unwrap_or_default();
        assert!(message.contains("UTF-8"), "{name}: {message}");
    }

    // The same request, readable, goes on to the login page.
    let page = browser.authorize(&request).await;
    assert!(page.is_login(), "{}", page.describe());
}

#[tokio::test]
async fn refresh_can_narrow_the_scope_but_never_widen_it() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, "openid profile").await;

    let (status, narrowed) =
        refresh(&server, &client, s(&first["refresh_token"]), Some("openid")).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["scope"], "openid");
    let (_, at_claims) = decode_jwt(s(&narrowed["access_token"]));
    assert_eq!(at_claims["scope"], "openid");
    let (_, id_claims) = decode_jwt(s(&narrowed["id_token"]));
    assert!(id_claims.get("preferred_username").is_none(), "{id_claims}");

    // `email` is allowed for the client but was never granted (RFC 6749 §6).
    let (status, body) = refresh(
        &server,
        &client,
        s(&narrowed["refresh_token"]),
        Some("openid profile email"),
    )
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn a_narrowed_refresh_keeps_the_original_grant() {
    // RFC 6749 §6: the new refresh token's scope "MUST be identical to that of
    // the refresh token included by the client in the request"; only the
    // access token is narrowed.
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let (status, narrowed) =
        refresh(&server, &client, s(&first["refresh_token"]), Some("openid")).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let (status, body) = refresh(&server, &client, s(&narrowed["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(scope_set(s(&body["scope"])), scope_set("openid profile"));
}

#[tokio::test]
async fn a_refused_refresh_does_not_use_up_the_refresh_token() {
    // An error response issues nothing, so the presented token must stay the
    // current one; otherwise the client's next, valid refresh looks like reuse
    // and revokes the grant (RFC 9700 §4.14.2).
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let rt = s(&first["refresh_token"]);
    let (status, body) = refresh(&server, &client, rt, Some("openid profile email")).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
    let (status, body) = refresh(&server, &client, rt, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn stray_text_in_a_forged_refresh_token_or_a_redirect_uri_is_invalid_grant() {
    // Text no database can store (PostgreSQL refuses NUL) ends in a refusal,
    // never a server error, whatever the store.
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let (header, rest) = s(&first["refresh_token"]).split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for jti in [
        "\u{0}",
        "abcdefghij\u{0}klmnopqrstu",
        "abcdefghijklmnopqrstuv",
    ] {
        claims["jti"] = jti.into();
        let forged = format!("{header}.{}.{signature}", b64(claims.to_string()));
        let (status, body) = refresh(&server, &client, &forged, None).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }

    let (code, verifier) = mint_code(&server, &mut browser, &client.0).await;
    let stray = format!("{REDIRECT}\u{0}");
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &stray),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // Refused without being used up.
    let (status, body) = exchange(&server, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_refresh_token_is_known_by_its_recorded_digest_else_by_its_signature() {
    // On SQLite whatever the suite runs on: the test edits the records.
    let server = TestServer::start_on_sqlite(&[]).await;
    create_user(&server, "alice", None, None);
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let rt = s(&first["refresh_token"]);

    // The claims and header of the token issued, under another signature of
    // ours: not the text recorded, so its signature is checked, and fails.
    let (signed, _) = rt.rsplit_once('.').unwrap();
    let other = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let (_, other_signature) = s(&other["refresh_token"]).rsplit_once('.').unwrap();
    let forged = format!("{signed}.{other_signature}");
    let (status, body) = refresh(&server, &client, &forged, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    // A token recorded without its digest (issued before digests were kept)
    // is checked by its signature, and rotates as any other.
    use sqlx::Connection as _;
    let mut db = sqlx::SqliteConnection::connect(&server.database_url)
        .await
        .unwrap();
    let forgotten = sqlx::query("UPDATE refresh_tokens SET token_digest = NULL")
        .execute(&mut db)
        .await
        .unwrap();
    assert!(forgotten.rows_affected() >= 2);
    let (status, second) = refresh(&server, &client, rt, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, body) = refresh(&server, &client, &forged, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    // The successor is recorded with its digest again.
    let digest: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT token_digest FROM refresh_tokens WHERE rotated_at IS NULL AND family_id = \
         (SELECT family_id FROM refresh_tokens WHERE successor_jti IS NOT NULL)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(digest, Some(sha256(s(&second["refresh_token"]).as_bytes())));
    let (status, body) = refresh(&server, &client, s(&second["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn no_refresh_token_without_the_refresh_token_grant() {
    let (server, _) = start_with_alice().await;
    let client = create_client(
        &server,
        "Code only",
        &[
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
        ],
    );
    let mut browser = Browser::new(&server);
    let body = tokens_for(&server, &mut browser, &client, SCOPES).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_works() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let body = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let rt = s(&body["refresh_token"]);
    let (status, revoked) = server
        .post_form(
            "/oauth2/revoke",
            &client.0,
            &client.1,
            &[("token", rt), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (status, err) = refresh(&server, &client, rt, None).await;
    assert_oauth_error(status, &err, StatusCode::BAD_REQUEST, "invalid_grant");
    // A token revoked on purpose is no theft alarm.
    let log = server.log();
    assert!(!log.contains("reused"), "{log}");
    assert!(
        log.contains("a revoked refresh token was presented"),
        "{log}"
    );
    assert_eq!(
        server.introspect(&client.0, &client.1, rt).await["active"],
        false
    );
    // RFC 7009 §2.1: the access tokens of the same grant go too.
    assert_eq!(
        server
            .introspect(&client.0, &client.1, s(&body["access_token"]))
            .await["active"],
        false
    );
}

// ---------------------------------------------------------------------------
// Implicit and response modes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn implicit_needs_its_grant_and_answers_in_the_fragment() {
    let (server, sub) = start_with_alice().await;
    let app = web_app(&server);
    let spa = create_client(
        &server,
        "Single Page",
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--grant",
            "implicit",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
        ],
    );
    let mut browser = Browser::new(&server);
    let implicit = |client_id: &str| {
        Authz::code(client_id, &Pkce::new())
            .without("code_challenge")
            .without("code_challenge_method")
            .set("response_type", "id_token token")
            .set("nonce", "n-implicit")
    };

    // Without the grant: unauthorized_client, in the fragment.
    let request = implicit(&app.0);
    let page = browser.authorize(&request).await;
    let params = redirect_fragment(&page, REDIRECT);
    assert_eq!(params["error"], "unauthorized_client", "{params:?}");
    assert_eq!(params["state"], "state-1");

    // Tokens never travel in a query (Multiple Response Types §2.1).
    let request = implicit(&spa.0)
        .set("response_type", "token")
        .set("response_mode", "query");
    let page = browser.authorize(&request).await;
    let landing = landing(&page);
    assert_eq!(landing.base, REDIRECT);
    let error = landing.query.get("error").or(landing.fragment.get("error"));
    assert_eq!(error.map(String::as_str), Some("invalid_request"));

    // An ID token from the authorization endpoint needs a nonce (OIDC Core
    // §3.2.2.1).
    let request = implicit(&spa.0)
        .set("response_type", "id_token")
        .without("nonce");
    let page = browser.authorize(&request).await;
    let params = redirect_fragment(&page, REDIRECT);
    assert_eq!(params["error"], "invalid_request", "{params:?}");

    // With the grant: tokens in the fragment, no code, no refresh token.
    let request = implicit(&spa.0);
    let page = browser.sign_in_and_approve(&request, "alice").await;
    let params = redirect_fragment(&page, REDIRECT);
    assert!(!params.contains_key("code"), "{params:?}");
    assert!(!params.contains_key("refresh_token"), "{params:?}");
    assert!(!params.contains_key("error"), "{params:?}");
    assert_eq!(params["state"], "state-1");
    assert_eq!(params["iss"], server.issuer);
    assert!(params["token_type"].eq_ignore_ascii_case("bearer"));
    let access_token = &params["access_token"];
    let info = server.introspect(&spa.0, &spa.1, access_token).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], sub.as_str());
    let claims = verify_with_jwks(&server, &params["id_token"]).await;
    assert_eq!(claims["nonce"], "n-implicit");
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["aud"], spa.0.as_str());
    assert_eq!(claims["at_hash"], left_half_sha256(access_token));

    // response_type=token alone: an access token and no ID token.
    let request = implicit(&spa.0).set("response_type", "token");
    let params = redirect_fragment(&browser.authorize(&request).await, REDIRECT);
    assert!(params.contains_key("access_token"), "{params:?}");
    assert!(!params.contains_key("id_token"), "{params:?}");
}

#[tokio::test]
async fn form_post_answers_with_a_self_submitting_form() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);

    // Errors too go by form post.
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce)
        .set("response_mode", "form_post")
        .set("prompt", "none");
    let page = browser.authorize(&request).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    assert_eq!(page.input("error").as_deref(), Some("login_required"));

    let request = request.without("prompt");
    let page = browser.sign_in_and_approve(&request, "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    assert!(page.location().is_none());
    assert_page_headers(&page);
    assert!(
        page.body
            .contains(&format!("<form method=\"post\" action=\"{REDIRECT}\"")),
        "{}",
        page.body
    );
    assert_eq!(page.input("state").as_deref(), Some("state-1"));
    assert_eq!(page.input("iss").as_deref(), Some(server.issuer.as_str()));
    assert!(page.input("error").is_none());
    let code = page.input("code").expect("code field");

    // The inline script may run only through the CSP nonce.
    let csp = page.header("content-security-policy").unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("script nonce in the CSP");
    assert!(nonce.len() >= 16);
    assert!(page.body.contains(&format!("<script nonce=\"{nonce}\">")));

    let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------
// prompt, max_age, login_hint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let silent = Authz::code(&client.0, &Pkce::new()).set("prompt", "none");
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "login_required");
    // OIDC Core §3.1.2.1: none with any other value is an error.
    let mixed = silent.clone().set("prompt", "none login");
    let page = browser.authorize(&mixed).await;
    assert_error_redirect(&server, &page, &mixed, "invalid_request");

    // Signed in, but nothing approved yet.
    let login = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()))
        .await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "consent_required");

    // Approved: a code without any page.
    let _ = browser.decide(&consent, "approve").await;
    let page = browser.authorize(&silent).await;
    code_of(&server, &page, &silent);
}

#[tokio::test]
async fn max_age_zero_asks_for_the_password_again() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let _ = tokens_for(&server, &mut browser, &client, SCOPES).await;

    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce).set("max_age", "3600");
    let page = browser.authorize(&request).await;
    code_of(&server, &page, &request);

    // OIDC Core §3.1.2.1: max_age=0 means the person must have signed in
    // just now, as with prompt=login.
    let request = Authz::code(&client.0, &pkce).set("max_age", "0");
    let page = browser.authorize(&request).await;
    assert!(page.is_login(), "{}", page.describe());
    let after = browser.login(&page, "alice", PASSWORD).await;
    let code = code_of(&server, &after, &request);
    let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_jwt(s(&body["id_token"]));
    assert!(claims["auth_time"].as_i64().unwrap() >= now() - 10);
}

#[tokio::test]
async fn login_hint_prefills_the_username_escaped() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let page = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()).set("login_hint", "alice@example.com"))
        .await;
    assert!(page.is_login(), "{}", page.describe());
    assert_eq!(page.input("username").as_deref(), Some("alice@example.com"));

    let hostile = "\"><script>alert(1)</script>";
    let page = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()).set("login_hint", hostile))
        .await;
    assert!(!page.body.contains(hostile), "login_hint is not escaped");
    assert_eq!(page.input("username").as_deref(), Some(hostile));
}

// ---------------------------------------------------------------------------
// Passwords and brute force
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_password_grant_needs_its_grant_and_the_right_password() {
    let (server, sub) = start_with_alice().await;
    let app = web_app(&server);
    let form = |username: &'static str, password: &'static str| {
        vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", "openid profile"),
        ]
    };
    let (status, body) = server
        .token_response(&app.0, &app.1, &form("alice", PASSWORD))
        .await;
    assert_oauth_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    );

    let legacy = create_client(
        &server,
        "Legacy",
        &[
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--scope",
            "openid profile",
        ],
    );
    let (status, wrong) = server
        .token_response(&legacy.0, &legacy.1, &form("alice", "not the password"))
        .await;
    assert_oauth_error(status, &wrong, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, unknown) = server
        .token_response(&legacy.0, &legacy.1, &form("nobody", "not the password"))
        .await;
    assert_oauth_error(status, &unknown, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        wrong, unknown,
        "an unknown user and a wrong password look the same"
    );

    let (status, body) = server
        .token_response(&legacy.0, &legacy.1, &form("alice", PASSWORD))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_jwt(s(&body["access_token"]));
    assert_eq!(claims["sub"], sub.as_str());
    assert!(body["refresh_token"].is_string());
    let claims = verify_with_jwks(&server, s(&body["id_token"])).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["preferred_username"], "alice");
}

// ---------------------------------------------------------------------------
// CSRF
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// /userinfo
// ---------------------------------------------------------------------------

async fn userinfo(server: &TestServer, token: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let mut request = server.http.get(server.url("/userinfo"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn challenge(headers: &HeaderMap) -> &str {
    headers
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn userinfo_releases_claims_by_scope_to_user_tokens_only() {
    let (server, sub) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let body = tokens_for(&server, &mut browser, &client, "openid email").await;
    let token = s(&body["access_token"]);

    let (status, headers, claims) = userinfo(&server, Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], false);
    assert!(claims.get("name").is_none(), "no profile scope: {claims}");
    assert!(claims.get("preferred_username").is_none());

    // POST works as well (OIDC Core §5.3.1).
    let r = server
        .http
        .post(server.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // RFC 6750 §3.1: no token, a bare challenge; a bad one, invalid_token.
    let (status, headers, _) = userinfo(&server, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bare = challenge(&headers);
    assert!(bare.starts_with("Bearer realm="), "{bare}");
    assert!(!bare.contains("error="), "{bare}");
    let (status, headers, _) = userinfo(&server, Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("error=\"invalid_token\""));
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
    let (status, headers, _) = userinfo(&server, Some(&tampered)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).contains("error=\"invalid_token\""));

    // Other tokens of the server are no access tokens (RFC 9068 §4: typ).
    for other in ["id_token", "refresh_token"] {
        let (status, headers, _) = userinfo(&server, body[other].as_str()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{other}");
        assert!(challenge(&headers).contains("error=\"invalid_token\""));
    }

    // An app's token has no user behind it.
    let app = create_client(
        &server,
        "Batch",
        &["--grant", "client_credentials", "--scope", "orders.read"],
    );
    let app_token = server
        .token(&app.0, &app.1, &[("grant_type", "client_credentials")])
        .await;
    let (status, headers, _) = userinfo(&server, app_token["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge(&headers).contains("error=\"insufficient_scope\""));

    // Nor may a user's token without openid.
    let body = tokens_for(&server, &mut browser, &client, "profile").await;
    let (status, headers, _) = userinfo(&server, body["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge(&headers).contains("error=\"insufficient_scope\""));
}

// ---------------------------------------------------------------------------
// Logout and the session cookie
// ---------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_the_session_and_returns_only_to_registered_uris() {
    let (server, _) = start_with_alice().await;
    let bye = "https://app.example/bye";
    let client = create_client(
        &server,
        "Photo Album",
        &[
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
            "--post-logout-redirect-uri",
            bye,
        ],
    );
    let mut browser = Browser::new(&server);
    let body = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let id_token = s(&body["id_token"]).to_owned();
    let silent = Authz::code(&client.0, &Pkce::new()).set("prompt", "none");
    let query = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };

    // Without a hint: a confirmation page; nothing ends yet.
    let confirm = browser.get("/oauth2/logout").await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.describe());
    assert_page_headers(&confirm);
    assert!(confirm.body.contains("action=\"/oauth2/logout\""));
    let csrf = confirm.input("csrf").expect("csrf field");
    let page = browser.authorize(&silent).await;
    code_of(&server, &page, &silent);
    let page = browser.post("/oauth2/logout", &[]).await;
    assert_error_page(&page, StatusCode::FORBIDDEN);
    let page = browser.authorize(&silent).await;
    code_of(&server, &page, &silent);

    // An unregistered post-logout URI: an error page, not a redirect.
    let page = browser
        .get(&format!(
            "/oauth2/logout?{}",
            query(&[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", "https://evil.example/"),
                ("state", "s1"),
            ])
        ))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    let page = browser.authorize(&silent).await;
    code_of(&server, &page, &silent);

    // With the hint and a registered URI: signed out and sent back with state.
    let session = browser.cookies["tessera_session"].clone();
    let page = browser
        .get(&format!(
            "/oauth2/logout?{}",
            query(&[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", bye),
                ("state", "s1"),
            ])
        ))
        .await;
    assert!(page.status.is_redirection(), "{}", page.describe());
    assert_eq!(page.location(), Some(format!("{bye}?state=s1").as_str()));
    assert!(!browser.cookies.contains_key("tessera_session"));
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "login_required");
    // The old cookie is dead on the server, not only forgotten by the browser.
    browser
        .cookies
        .insert("tessera_session".into(), session.clone());
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "login_required");

    // The confirmation form signs out too.
    browser.cookies.remove("tessera_session");
    let _ = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let page = browser.post("/oauth2/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    assert!(!browser.cookies.contains_key("tessera_session"));
    let page = browser.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "login_required");
}

#[tokio::test]
async fn logout_with_someone_elses_id_token_asks_first() {
    // RP-Initiated Logout 1.0 §2: the OP "MUST ask the End-User" when the
    // id_token_hint does not belong to the signed-in user; otherwise any page
    // holding any ID token of this server could sign anyone out.
    let (server, _) = start_with_alice().await;
    create_user(&server, "mallory", None, None);
    let client = web_app(&server);
    let legacy = create_client(
        &server,
        "Legacy",
        &["--grant", "password", "--scope", "openid"],
    );
    let foreign = server
        .token(
            &legacy.0,
            &legacy.1,
            &[
                ("grant_type", "password"),
                ("username", "mallory"),
                ("password", PASSWORD),
                ("scope", "openid"),
            ],
        )
        .await;
    let foreign = s(&foreign["id_token"]);

    let mut browser = Browser::new(&server);
    let _ = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", foreign)
        .finish();
    let page = browser.get(&format!("/oauth2/logout?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());
    assert!(
        page.body.contains("action=\"/oauth2/logout\""),
        "a confirmation form, not a silent sign-out: {}",
        page.body
    );
    let silent = Authz::code(&client.0, &Pkce::new()).set("prompt", "none");
    let page = browser.authorize(&silent).await;
    code_of(&server, &page, &silent);
}

/// The attributes of a `Set-Cookie` header, lower-cased, without the value.
fn cookie_attributes(raw: &str) -> Vec<String> {
    raw.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn session_cookies_are_http_only_lax_and_not_secure_on_loopback_http() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let login = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()))
        .await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    for (page, name) in [(&login, "tessera_csrf"), (&consent, "tessera_session")] {
        let raw = page
            .set_cookie(name)
            .unwrap_or_else(|| panic!("{name} set"));
        let attributes = cookie_attributes(raw);
        assert!(attributes.contains(&"httponly".to_owned()), "{raw}");
        assert!(attributes.contains(&"samesite=lax".to_owned()), "{raw}");
        assert!(attributes.contains(&"path=/".to_owned()), "{raw}");
        assert!(!attributes.contains(&"secure".to_owned()), "{raw}");
        assert!(!attributes.iter().any(|a| a.starts_with("domain")), "{raw}");
    }
}

#[tokio::test]
async fn session_cookies_are_secure_host_cookies_on_an_https_issuer() {
    let server = TestServer::start_with(&[("TESSERA_ISSUER", "https://auth.example")]).await;
    create_user(&server, "alice", None, None);
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let login = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()))
        .await;
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent(), "{}", consent.describe());
    let raw = consent
        .set_cookie("__Host-tessera_session")
        .expect("__Host- session cookie");
    let attributes = cookie_attributes(raw);
    for required in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(attributes.contains(&required.to_owned()), "{raw}");
    }
    assert!(!attributes.iter().any(|a| a.starts_with("domain")), "{raw}");
    assert!(consent.set_cookie("tessera_session").is_none());
}

// ---------------------------------------------------------------------------
// Cross-step misuse: forms replayed on the wrong page, sessions that end
// ---------------------------------------------------------------------------

#[tokio::test]
async fn prompt_none_with_a_hint_for_someone_else_needs_a_login() {
    let (server, client) = signed_in().await;
    let mut browser = Browser::new(&server);
    tokens_for(&server, &mut browser, &client, SCOPES).await;
    for hint in ["bob", "bob@example.com"] {
        let request = Authz::code(&client.0, &Pkce::new())
            .set("prompt", "none")
            .set("login_hint", hint);
        let page = browser.authorize(&request).await;
        assert_error_redirect(&server, &page, &request, "login_required");
    }
    for hint in ["alice", "ALICE@example.com"] {
        let request = Authz::code(&client.0, &Pkce::new())
            .set("prompt", "none")
            .set("login_hint", hint);
        let page = browser.authorize(&request).await;
        code_of(&server, &page, &request);
    }
    // Without prompt=none the login form is shown, the hint filled in.
    let page = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()).set("login_hint", "bob"))
        .await;
    assert!(page.is_login(), "{}", page.describe());
    assert_eq!(page.input("username").as_deref(), Some("bob"));
}

#[tokio::test]
async fn logout_ends_the_online_grants_of_its_session_but_not_offline_ones() {
    let (server, client) = signed_in().await;
    let mut browser = Browser::new(&server);
    let offline = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let online = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let page = browser.get("/oauth2/logout").await;
    let csrf = page.input("csrf").expect("csrf");
    let page = browser
        .post("/oauth2/logout", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.describe());

    let (status, body) = refresh(&server, &client, s(&online["refresh_token"]), None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _, _) = userinfo(&server, Some(s(&online["access_token"]))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the session's access token ends too"
    );
    let (status, body) = refresh(&server, &client, s(&offline["refresh_token"]), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "offline access outlives the session: {body}"
    );
}

#[tokio::test]
async fn a_new_login_ends_the_browsers_previous_session() {
    let (server, client) = signed_in().await;
    create_user(&server, "bob", None, None);
    let mut browser = Browser::new(&server);
    let alices = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let alice_cookie = browser.cookies["tessera_session"].clone();

    let request = Authz::code(&client.0, &Pkce::new()).set("prompt", "login");
    let login = browser.authorize(&request).await;
    let page = browser.login(&login, "bob", PASSWORD).await;
    assert!(page.is_consent(), "{}", page.describe());
    assert_ne!(browser.cookies["tessera_session"], alice_cookie);

    // Alice's old cookie gets nothing any more, not even with prompt=none.
    let mut old = Browser::new(&server);
    old.cookies
        .insert("tessera_session".into(), alice_cookie.clone());
    let silent = Authz::code(&client.0, &Pkce::new()).set("prompt", "none");
    let page = old.authorize(&silent).await;
    assert_error_redirect(&server, &page, &silent, "login_required");
    // And her session's online refresh token ended with it.
    let (status, body) = refresh(&server, &client, s(&alices["refresh_token"]), None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_new_password_revokes_the_accounts_tokens_unless_kept() {
    let (server, client) = signed_in().await;
    let mut browser = Browser::new(&server);
    let before = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let set_password = |extra: &[&str]| {
        let mut args = vec![
            "user",
            "set-password",
            "alice",
            "--password-stdin",
            "--json",
        ];
        args.extend_from_slice(extra);
        cli_with_password(&server, &args, PASSWORD)
    };

    // --keep-tokens: the sessions end, the tokens stay, and the output says so.
    let kept = set_password(&["--keep-tokens"]);
    assert_eq!(kept["tokens_revoked"], false, "{kept}");
    let (status, rotated) = refresh(&server, &client, s(&before["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");

    // By default everything obtained with the old password goes.
    let changed = set_password(&[]);
    assert_eq!(changed["tokens_revoked"], true, "{changed}");
    assert!(
        changed["refresh_tokens_revoked"].as_u64().unwrap() >= 1,
        "{changed}"
    );
    let (status, body) = refresh(&server, &client, s(&rotated["refresh_token"]), None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _, _) = userinfo(&server, Some(s(&rotated["access_token"]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The log says revoked, not reused.
    assert!(!server.log().contains("reused"), "{}", server.log());
}

// ---------------------------------------------------------------------------
// The resource policy, the same for every grant
// ---------------------------------------------------------------------------

const APP_API: &str = "https://app-api.example";
const USER_API: &str = "https://user-api.example";

#[tokio::test]
async fn every_grant_honours_a_resources_scopes_and_accepted_tokens() {
    let (server, _) = start_with_alice().await;
    server.cli(&[
        "resource",
        "create",
        "--audience",
        APP_API,
        "--scope",
        "app.read",
        "--accepts",
        "app",
        "--json",
    ]);
    server.cli(&[
        "resource",
        "create",
        "--audience",
        USER_API,
        "--scope",
        "api.read",
        "--accepts",
        "user",
        "--json",
    ]);
    let client = create_client(
        &server,
        "Everything",
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--grant",
            "password",
            "--grant",
            "implicit",
            "--grant",
            "client_credentials",
            "--grant",
            "device_code",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "openid profile app.read app.admin api.read api.admin",
            "--audience",
            APP_API,
            "--audience",
            USER_API,
        ],
    );
    let (id, secret) = (&client.0, &client.1);
    let token = |form: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.token_response(id, secret, &form).await
        }
    };

    // Client credentials: only the app API, only its scope.
    let (status, body) = token(vec![
        ("grant_type", "client_credentials".into()),
        ("resource", APP_API.into()),
        ("scope", "app.admin".into()),
    ])
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
    let (status, body) = token(vec![
        ("grant_type", "client_credentials".into()),
        ("resource", USER_API.into()),
    ])
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_target");

    // Password: the user API only, its scopes and OpenID Connect's.
    let password = |resource: &str, scope: &str| {
        vec![
            ("grant_type", "password".to_owned()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("resource", resource.to_owned()),
            ("scope", scope.to_owned()),
        ]
    };
    let (status, body) = token(password(APP_API, "openid app.read")).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_target");
    let (status, body) = token(password(USER_API, "openid api.admin")).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
    let (status, body) = token(password(USER_API, "openid profile api.read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_jwt(s(&body["access_token"]));
    assert_eq!(claims["aud"], USER_API);

    // Code flow: refused at the authorization endpoint, before any consent.
    let mut browser = Browser::new(&server);
    for (resource, scope, error) in [
        (APP_API, "openid app.read", "invalid_target"),
        (USER_API, "openid api.admin", "invalid_scope"),
    ] {
        let request = Authz::code(id, &Pkce::new())
            .set("resource", resource)
            .set("scope", scope);
        let page = browser.authorize(&request).await;
        assert_error_redirect(&server, &page, &request, error);
    }
    let pkce = Pkce::new();
    let request = Authz::code(id, &pkce)
        .set("resource", USER_API)
        .set("scope", "openid api.read");
    let page = browser.sign_in_and_approve(&request, "alice").await;
    let code = code_of(&server, &page, &request);
    let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_jwt(s(&body["access_token"]));
    assert_eq!(
        (claims["aud"].as_str(), claims["scope"].as_str()),
        (Some(USER_API), Some("api.read openid"))
    );
    // Refresh goes through the same rule and keeps to it.
    let (status, body) = refresh(&server, &client, s(&body["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Implicit: the same refusal, in the fragment.
    let request = Authz::code(id, &Pkce::new())
        .without("code_challenge")
        .without("code_challenge_method")
        .set("response_type", "token")
        .set("resource", APP_API)
        .set("scope", "app.read");
    let page = browser.authorize(&request).await;
    assert_eq!(
        redirect_fragment(&page, REDIRECT)["error"],
        "invalid_target"
    );

    // Device authorization: refused when the code is asked for.
    let (status, body) = server
        .post_form(
            "/oauth2/device/code",
            id,
            secret,
            &[("scope", "openid app.read"), ("resource", APP_API)],
        )
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_target");
}

#[tokio::test]
async fn error_descriptions_do_not_grow_with_the_request() {
    let (server, _) = start_with_alice().await;
    let (id, secret) = server.client(&["--grant", "client_credentials", "--scope", "a"]);
    let scope: Vec<String> = (0..4_000).map(|i| format!("s{i}")).collect();
    let r = server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", &scope.join(" ")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(text.len() < 400, "{} bytes: {text}", text.len());
    assert!(
        text.contains("invalid_scope") && text.contains("more)"),
        "{text}"
    );
    let long = format!("https://x.example/{}", "a".repeat(10_000));
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("resource", &long)],
        )
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_target");
    assert!(body.to_string().len() < 400, "{body}");
}

#[tokio::test]
async fn a_reference_access_token_ends_with_its_session_too() {
    let (server, _) = start_with_alice().await;
    let client = create_client(
        &server,
        "Opaque",
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
            "--token-format",
            "reference",
        ],
    );
    let mut browser = Browser::new(&server);
    let online = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let token = s(&online["access_token"]);
    assert!(!token.contains('.'), "a reference token: {token}");
    let (status, _, _) = userinfo(&server, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let page = browser.get("/oauth2/logout").await;
    let csrf = page.input("csrf").expect("csrf");
    browser
        .post("/oauth2/logout", &[("csrf", csrf.as_str())])
        .await;
    // The session's end recorded the token's jti: reference tokens honour it.
    let (status, _, _) = userinfo(&server, Some(token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.introspect(&client.0, &client.1, token).await["active"],
        false
    );
}

// ---------------------------------------------------------------------------
// Request logs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_logs_follow_a_whole_flow_and_hold_no_secret() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce).set("scope", SCOPES);
    let login = browser.authorize(&request).await;
    let csrf = login.input("csrf").expect("csrf");
    let consent = browser.login(&login, "alice", PASSWORD).await;
    let page = browser.decide(&consent, "approve").await;
    let code = code_of(&server, &page, &request);
    let (status, tokens) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, rotated) = refresh(&server, &client, s(&tokens["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, _, _) = userinfo(&server, Some(s(&rotated["access_token"]))).await;
    assert_eq!(status, StatusCode::OK);
    let introspected = server
        .introspect(&client.0, &client.1, s(&rotated["access_token"]))
        .await;
    assert_eq!(introspected["active"], true);
    let (status, refused) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    // A request ID from the proxy in front is kept and echoed; a malformed
    // one is replaced.
    let echoed = server
        .http
        .get(server.url("/jwks.json?trace=me"))
        .header("x-request-id", "edge-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "edge-7f3a");
    let replaced = server
        .http
        .get(server.url("/health/live"))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty() && id != "two words");

    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("tessera::request"))
        .collect();
    let token_lines: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("route=\"/oauth2/token\""))
        .collect();
    assert_eq!(token_lines.len(), 3, "{log}");
    assert!(
        token_lines.iter().any(|line| line.contains("status=200")
            && line.contains("grant_type=\"authorization_code\"")
            && line.contains(&format!("client_id=\"{}\"", client.0))
            && line.contains("method=POST")
            && line.contains("address=127.0.0.1")
            && line.contains("latency_us=")),
        "{log}"
    );
    assert!(
        token_lines.iter().any(|line| line.contains("status=400")
            && line.contains("grant_type=\"authorization_code\"")),
        "the replayed code: {log}"
    );
    // Introspection names the client that asked, too.
    assert!(
        lines
            .iter()
            .any(|line| line.contains("route=\"/oauth2/introspect\"")
                && line.contains(&format!("client_id=\"{}\"", client.0))),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("request_id=edge-7f3a")
                && line.contains("route=\"/jwks.json\""))
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("request_id={id}")))
    );
    assert!(!log.contains("trace=me"), "the query is never logged");
    let session = browser
        .cookies
        .get("tessera_session")
        .expect("session cookie");
    for value in [
        client.1.as_str(),
        PASSWORD,
        code.as_str(),
        pkce.verifier.as_str(),
        csrf.as_str(),
        session.as_str(),
        s(&tokens["access_token"]),
        s(&tokens["refresh_token"]),
        s(&tokens["id_token"]),
        s(&rotated["access_token"]),
        s(&rotated["refresh_token"]),
    ] {
        assert!(!log.contains(value), "{value:?} is in the log:\n{log}");
    }
}

// ---------------------------------------------------------------------------
// Several instances on one PostgreSQL database
// ---------------------------------------------------------------------------

#[tokio::test]
async fn three_instances_on_postgres_share_codes_refresh_tokens_and_revocations() {
    let Some(db) = crate::common::PgDatabase::create().await else {
        return;
    };
    let kek = crate::common::new_kek();
    // Behind one load balancer: one issuer, three listeners; a client that
    // retries a refresh at another instance gets the same successor.
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", "http://localhost:8443"),
        ("TESSERA_REFRESH_REUSE_GRACE", "30"),
    ];
    let (one, two, three) = tokio::join!(
        TestServer::start_on(crate::common::TempDir::new("pg-a"), db.url.clone(), &env),
        TestServer::start_on(crate::common::TempDir::new("pg-b"), db.url.clone(), &env),
        TestServer::start_on(crate::common::TempDir::new("pg-c"), db.url.clone(), &env),
    );
    create_user(&one, "alice", Some("alice@example.com"), None);
    let client = web_app(&two);
    let mut browser = Browser::new(&three);

    // A code minted at one instance, exchanged at all three at once.
    let (code, verifier) = mint_code(&three, &mut browser, &client.0).await;
    let (a, b, c) = tokio::join!(
        exchange(&one, &client, &code, Some(&verifier)),
        exchange(&two, &client, &code, Some(&verifier)),
        exchange(&three, &client, &code, Some(&verifier)),
    );
    one_winner(&[a, b, c]);

    // A refresh token from another code, rotated at all three at once.
    let (code, verifier) = mint_code(&three, &mut browser, &client.0).await;
    let (status, tokens) = exchange(&one, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let rt = s(&tokens["refresh_token"]).to_owned();
    let (a, b, c) = tokio::join!(
        refresh(&one, &client, &rt, None),
        refresh(&two, &client, &rt, None),
        refresh(&three, &client, &rt, None),
    );
    // One rotation: every answer carries the same successor (within the
    // grace, RFC 9700 §4.14.2 reuse detection answers a retry with it), each
    // with an access token of its own, and the family lives on.
    let jti = |body: &Value| decode_jwt(s(&body["refresh_token"])).1["jti"].clone();
    for (status, body) in [&a, &b, &c] {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(jti(body), jti(&a.1), "{a:?} {b:?} {c:?}");
    }
    for (server, (_, body)) in [(&one, &a), (&two, &b), (&three, &c)] {
        assert_eq!(
            server
                .introspect(&client.0, &client.1, s(&body["access_token"]))
                .await["active"],
            true
        );
    }
    let (status, next) = refresh(&three, &client, s(&b.1["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    // Two steps behind: reuse, and the whole family goes at every instance.
    let (status, body) = refresh(&two, &client, &rt, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = refresh(&one, &client, s(&next["refresh_token"]), None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    for (_, body) in [&a, &b, &c] {
        assert_eq!(
            one.introspect(&client.0, &client.1, s(&body["access_token"]))
                .await["active"],
            false
        );
    }

    // Issued at one, used and introspected at another, revoked at the third:
    // inactive everywhere.
    let (code, verifier) = mint_code(&three, &mut browser, &client.0).await;
    let (status, tokens) = exchange(&one, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = s(&tokens["access_token"]);
    let (status, _, _) = userinfo(&two, Some(access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        two.introspect(&client.0, &client.1, access).await["active"],
        true
    );
    let rt = s(&tokens["refresh_token"]);
    let (status, rotated) = refresh(&two, &client, rt, None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, _) = three
        .post_form(
            "/oauth2/revoke",
            &client.0,
            &client.1,
            &[("token", s(&rotated["refresh_token"]))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for server in [&one, &two, &three] {
        let (status, body) = refresh(server, &client, s(&rotated["refresh_token"]), None).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
        assert_eq!(
            server
                .introspect(&client.0, &client.1, s(&rotated["refresh_token"]))
                .await["active"],
            false
        );
    }
}

// ---------------------------------------------------------------------------
// A crash under load
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_kill_9_under_load_loses_nothing_acknowledged_and_spends_no_code_twice() {
    // A grace long enough for the restart: the rotation in flight at the kill
    // may have been committed without its answer reaching the client, which
    // then retries it (see `refresh_reuse_grace`).
    let mut server = TestServer::start_with(&[("TESSERA_REFRESH_REUSE_GRACE", "60")]).await;
    create_user(&server, "alice", Some("alice@example.com"), None);
    let client = web_app(&server);
    let service = server.client(&[
        "--grant",
        "client_credentials",
        "--token-format",
        "reference",
    ]);
    let mut browser = Browser::new(&server);
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(mint_code(&server, &mut browser, &client.0).await);
    }
    let (code, verifier) = mint_code(&server, &mut browser, &client.0).await;
    let (status, tokens) = exchange(&server, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let pid = server.pid().expect("running").to_string();

    // Code exchanges, refresh rotations and reference tokens as fast as they
    // go, until the process is killed under them.
    let exchanged = std::sync::Mutex::new(Vec::new());
    let issued = std::sync::Mutex::new(Vec::new());
    let rotated = std::sync::Mutex::new(vec![s(&tokens["refresh_token"]).to_owned()]);
    let rotations = async {
        loop {
            let latest = rotated.lock().unwrap().last().unwrap().clone();
            let response = server
                .http
                .post(server.url("/oauth2/token"))
                .basic_auth(&client.0, Some(&client.1))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", latest.as_str()),
                ])
                .send()
                .await;
            let Ok(response) = response else { break };
            let Ok(body) = response.json::<Value>().await else {
                break;
            };
            let Some(token) = body["refresh_token"].as_str() else {
                break;
            };
            rotated.lock().unwrap().push(token.to_owned());
        }
    };
    let exchanges = async {
        for (code, verifier) in &codes {
            let response = server
                .http
                .post(server.url("/oauth2/token"))
                .basic_auth(&client.0, Some(&client.1))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier.as_str()),
                ])
                .send()
                .await;
            let Ok(response) = response else { break };
            if response.status() != StatusCode::OK {
                break;
            }
            let Ok(body) = response.json::<Value>().await else {
                break;
            };
            exchanged.lock().unwrap().push((code.clone(), body));
        }
    };
    let references = async {
        loop {
            let response = server
                .http
                .post(server.url("/oauth2/token"))
                .basic_auth(&service.0, Some(&service.1))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let Ok(response) = response else { break };
            let Ok(body) = response.json::<Value>().await else {
                break;
            };
            let Some(token) = body["access_token"].as_str() else {
                break;
            };
            issued.lock().unwrap().push(token.to_owned());
        }
    };
    let kill = async {
        // Once both loops are under way.
        while exchanged.lock().unwrap().len() < 5
            || issued.lock().unwrap().len() < 20
            || rotated.lock().unwrap().len() < 5
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
    };
    tokio::join!(exchanges, references, rotations, kill);
    let exchanged = exchanged.into_inner().unwrap();
    let issued = issued.into_inner().unwrap();
    let rotated = rotated.into_inner().unwrap();
    assert!(
        exchanged.len() < codes.len(),
        "the kill came after the last code"
    );

    server.restart().await;
    // Every acknowledged reference token is there.
    for token in &issued {
        let answer = server.introspect(&service.0, &service.1, token).await;
        assert_eq!(answer["active"], true, "{token}: {answer}");
    }
    // Every acknowledged exchange's code is spent: a second exchange is
    // refused. Its refresh token was stored: the replay revokes it (RFC 6749
    // §4.1.2), which a token never written could not show.
    for (code, body) in &exchanged {
        let refresh_token = s(&body["refresh_token"]);
        assert_eq!(
            server.introspect(&client.0, &client.1, refresh_token).await["active"],
            true,
            "an acknowledged refresh token is missing"
        );
        let verifier = &codes.iter().find(|(c, _)| c == code).unwrap().1;
        let (status, again) = exchange(&server, &client, code, Some(verifier)).await;
        assert_oauth_error(status, &again, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // The codes never tried still work, once each; the one in flight at the
    // kill either was committed (refused now) or not (works now): never both.
    for (code, verifier) in codes.iter().skip(exchanged.len()) {
        let first = exchange(&server, &client, code, Some(verifier)).await;
        let second = exchange(&server, &client, code, Some(verifier)).await;
        assert_ne!(second.0, StatusCode::OK, "a code was spent twice");
        if code != &codes[exchanged.len()].0 {
            assert_eq!(first.0, StatusCode::OK, "{}", first.1);
        }
    }
    // The last acknowledged refresh token still refreshes: either it was
    // current (the rotation in flight never committed) or its committed
    // rotation wrote the successor in the same transaction, which the retry
    // gets. A rotation marked without its successor would read as reuse here.
    // The family goes on after it.
    let latest = rotated.last().unwrap();
    let (status, body) = refresh(&server, &client, latest, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = refresh(&server, &client, s(&body["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The client, the user and her consent survived: a new code comes
    // without the login or consent page.
    let mut browser = Browser::new(&server);
    let (code, verifier) = mint_code(&server, &mut browser, &client.0).await;
    let (status, body) = exchange(&server, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

//! RFC 9700 §4.1 (insufficient redirect URI validation) and §4.11 (open
//! redirection): the authorization endpoint sends a browser only to a URI
//! registered for the client, compared as an exact string, and an error that
//! cannot be sent there is shown as a page.

use reqwest::StatusCode;

use crate::common::TestServer;
use crate::flows::*;
use crate::web::{Browser, create_user};

#[tokio::test]
async fn redirect_uris_match_exactly_and_mismatches_get_an_error_page() {
    let (server, _) = start_with_alice().await;
    let client = create_client(
        &server,
        "App",
        &[
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--redirect-uri",
            "http://localhost/cb",
            "--scope",
            SCOPES,
        ],
    );
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    for bad in [
        "https://evil.example/cb",
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example.evil/cb",
        "https://evil.example/?https://app.example/cb",
        "http://app.example/cb",
        "https://APP.example/cb",
        "https://app.example:8443/cb",
        "https://app.example/cb#frag",
        "http://localhost:54321/cb",
        "http://127.0.0.1:54321/cb/",
        "http://[::1]:54321/cb",
        // Path traversal and encodings that a normalising matcher would
        // fold into the registered path.
        "https://app.example/cb/../evil",
        "https://app.example/evil/../cb",
        "https://app.example/cb/..%2Fevil",
        "https://app.example/%63b",
        "https://app.example/cb%00",
        "https://app.example/CB",
        // User information: a parser and a browser may disagree on the host.
        "https://app.example@evil.example/cb",
        "https://evil.example@app.example/cb",
        "https://app.example\\@evil.example/cb",
        "https://app.example%40evil.example/cb",
        // Case, default port, trailing dot, look-alike letters, whitespace.
        "HTTPS://app.example/cb",
        "https://app.example:443/cb",
        "https://app.example./cb",
        "https://\u{430}pp.example/cb",
        " https://app.example/cb",
        "https://app.example/cb ",
        "javascript:alert(1)//https://app.example/cb",
    ] {
        let request = Authz::code(&client.0, &pkce).set("redirect_uri", bad);
        let page = browser.authorize(&request).await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
        // Even a request that is wrong in other ways never goes to an
        // unverified URI (RFC 6749 §4.1.2.1).
        let page = browser
            .authorize(&request.set("response_type", "bogus"))
            .await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
    }

    // Unknown or missing client.
    let page = browser
        .authorize(&Authz::code("no-such-client", &pkce))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    let page = browser
        .authorize(&Authz::code(&client.0, &pkce).without("client_id"))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);
    // Several registered URIs: the request must name one.
    let page = browser
        .authorize(&Authz::code(&client.0, &pkce).without("redirect_uri"))
        .await;
    assert_error_page(&page, StatusCode::BAD_REQUEST);

    // localhost is matched exactly (RFC 8252 §8.3)...
    let page = browser
        .authorize(&Authz::code(&client.0, &pkce).set("redirect_uri", "http://localhost/cb"))
        .await;
    assert!(page.is_login(), "{}", page.describe());

    // ...while the loopback IP literal matches on any port (RFC 8252 §7.3),
    // and the response goes to the port the client asked for.
    let loopback = "http://127.0.0.1:54321/cb";
    let request = Authz::code(&client.0, &pkce).set("redirect_uri", loopback);
    let page = browser.sign_in_and_approve(&request, "alice").await;
    let params = redirect_query(&page, loopback);
    assert!(params.contains_key("code"), "{params:?}");
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", loopback),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_repeated_parameter_goes_back_to_the_client_with_state_only_when_unambiguous() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);
    let with = |extra: &str| format!("/oauth2/authorize?{}&{extra}", request.query());

    // RFC 6749 §4.1.2.1: the client and its redirect URI are known, so the
    // error goes back to the client, with the one state it sent.
    let page = browser.get(&with("scope=openid")).await;
    assert_error_redirect(&server, &page, &request, "invalid_request");
    let params = redirect_query(&page, REDIRECT);
    assert!(params["error_description"].contains("scope"), "{params:?}");

    // A repeated state: which to return is unknown, so none is.
    let page = browser.get(&with("state=other")).await;
    let params = redirect_query(&page, REDIRECT);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(!params.contains_key("state"), "{params:?}");
    assert_eq!(params["iss"], server.issuer);

    // A repeated client_id or redirect_uri: nowhere safe to send it.
    for extra in [
        format!("client_id={}", client.0),
        format!(
            "redirect_uri={}",
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        ),
    ] {
        let page = browser.get(&with(&extra)).await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_stored_redirect_uri_that_breaks_the_rules_is_never_followed() {
    // It edits a stored client in SQLite's file.
    let server = TestServer::start_on_sqlite(&[]).await;
    create_user(&server, "alice", None, None);
    let client = web_app(&server);
    // A row written before the registration rules existed, or by hand.
    {
        use sqlx::Connection as _;
        let mut db = sqlx::SqliteConnection::connect(&server.database_url)
            .await
            .unwrap();
        sqlx::query("UPDATE clients SET redirect_uris = $1 WHERE id = $2")
            .bind(r#"["javascript:alert(1)"]"#)
            .bind(&client.0)
            .execute(&mut db)
            .await
            .unwrap();
    }
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    for request in [
        Authz::code(&client.0, &pkce).set("redirect_uri", "javascript:alert(1)"),
        // The single registered URI is not followed when left out either.
        Authz::code(&client.0, &pkce).without("redirect_uri"),
        Authz::code(&client.0, &pkce)
            .set("redirect_uri", "javascript:alert(1)")
            .set("response_mode", "form_post"),
    ] {
        let page = browser.authorize(&request).await;
        assert_error_page(&page, StatusCode::BAD_REQUEST);
        assert!(!page.body.contains("javascript:"), "{}", page.describe());
    }
    let log = server.log();
    assert!(
        log.contains("breaks the registration rules") && log.contains(&client.0),
        "{log}"
    );
}

/// RFC 9700 §4.11.1 through the logout endpoint (OpenID Connect RP-Initiated
/// Logout §3): a post-logout redirect URI that the client did not register is
/// never followed, with or without an ID token hint.
#[tokio::test]
async fn logout_never_redirects_to_an_unregistered_uri() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let tokens = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let id_token = s(&tokens["id_token"]);
    for evil in [
        "https://evil.example/",
        "https://app.example/cb@evil.example",
        "https://app.example.evil.example/cb",
        REDIRECT,
    ] {
        for hint in [None, Some(id_token)] {
            let mut query = vec![
                ("post_logout_redirect_uri", evil),
                ("client_id", client.0.as_str()),
                ("state", "s1"),
            ];
            if let Some(hint) = hint {
                query.push(("id_token_hint", hint));
            }
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            let page = browser.get(&format!("/oauth2/logout?{query}")).await;
            assert!(
                page.location().is_none_or(|to| to.starts_with('/')),
                "{evil} with hint {}: {}",
                hint.is_some(),
                page.describe()
            );
            assert!(!page.body.contains("evil.example"), "{}", page.describe());
        }
    }
}

//! RFC 9700 §4.5 (authorization code injection), §2.1.1 and §4.8 (PKCE and
//! its downgrade) and RFC 6749 §4.1.2 (code replay): a code works once, for
//! the client and redirect URI it was issued to, with the verifier of the
//! challenge it was issued under.

use reqwest::StatusCode;

use crate::flows::*;
use crate::web::Browser;

#[tokio::test]
async fn pkce_is_required_s256_only_and_checked_at_the_token_endpoint() {
    let (server, _) = start_with_alice().await;
    let app = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();

    // Confidential clients need PKCE by default (RFC 9700 §2.1.1); plain is
    // refused, and so is a challenge without a method (it defaults to plain,
    // RFC 7636 §4.3).
    let missing = Authz::code(&app.0, &pkce)
        .without("code_challenge")
        .without("code_challenge_method");
    let page = browser.authorize(&missing).await;
    assert_error_redirect(&server, &page, &missing, "invalid_request");
    let plain = Authz::code(&app.0, &pkce)
        .set("code_challenge", &pkce.verifier)
        .set("code_challenge_method", "plain");
    let page = browser.authorize(&plain).await;
    assert_error_redirect(&server, &page, &plain, "invalid_request");
    let no_method = Authz::code(&app.0, &pkce).without("code_challenge_method");
    let page = browser.authorize(&no_method).await;
    assert_error_redirect(&server, &page, &no_method, "invalid_request");
    let not_a_digest = Authz::code(&app.0, &pkce).set("code_challenge", "abc");
    let page = browser.authorize(&not_a_digest).await;
    assert_error_redirect(&server, &page, &not_a_digest, "invalid_request");

    // Wrong and missing verifiers.
    let request = Authz::code(&app.0, &pkce);
    let page = browser.sign_in_and_approve(&request, "alice").await;
    let code = code_of(&server, &page, &request);
    let (status, body) = exchange(&server, &app, &code, Some(&Pkce::new().verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = exchange(&server, &app, &code, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = exchange(&server, &app, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A client allowed to skip PKCE: a verifier without a challenge is a
    // downgrade attempt (RFC 9700 §2.1.1).
    let legacy = create_client(
        &server,
        "Legacy",
        &[
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
            "--no-pkce",
        ],
    );
    let request = Authz::code(&legacy.0, &pkce)
        .without("code_challenge")
        .without("code_challenge_method");
    let consent = browser.authorize(&request).await;
    let page = browser.decide(&consent, "approve").await;
    let code = code_of(&server, &page, &request);
    let (status, body) = exchange(&server, &legacy, &code, Some(&Pkce::new().verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = exchange(&server, &legacy, &code, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Public clients always need PKCE.
    let native = create_client(
        &server,
        "Native",
        &[
            "--public",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            SCOPES,
        ],
    );
    let request = Authz::code(&native.0, &pkce)
        .without("code_challenge")
        .without("code_challenge_method");
    let page = browser.authorize(&request).await;
    assert_error_redirect(&server, &page, &request, "invalid_request");

    let pkce = Pkce::new();
    let request = Authz::code(&native.0, &pkce);
    let consent = browser.authorize(&request).await;
    let code = code_of(
        &server,
        &browser.decide(&consent, "approve").await,
        &request,
    );
    let (status, body) = post_anonymous(
        &server,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &native.0),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let pkce = Pkce::new();
    let request = Authz::code(&native.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = post_anonymous(
        &server,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &native.0),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_replayed_code_fails_and_revokes_what_it_issued() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);
    let page = browser.sign_in_and_approve(&request, "alice").await;
    let code = code_of(&server, &page, &request);

    let (status, first) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access_token = s(&first["access_token"]);
    let refresh_token = s(&first["refresh_token"]);
    assert_eq!(
        server.introspect(&client.0, &client.1, access_token).await["active"],
        true
    );

    // RFC 6749 §4.1.2: a second use fails and revokes the tokens of the first.
    let (status, body) = exchange(&server, &client, &code, Some(&pkce.verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        server.introspect(&client.0, &client.1, access_token).await,
        serde_json::json!({"active": false})
    );
    let (status, body) = refresh(&server, &client, refresh_token, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri_and_checked_before_use() {
    let (server, _) = start_with_alice().await;
    let other_uri = "https://app.example/other";
    let registration = |name| {
        create_client(
            &server,
            name,
            &[
                "--grant",
                "authorization_code",
                "--redirect-uri",
                REDIRECT,
                "--redirect-uri",
                other_uri,
                "--scope",
                SCOPES,
            ],
        )
    };
    let app = registration("App");
    let intruder = registration("Intruder");
    let mut browser = Browser::new(&server);

    // Another client, even with its own valid credentials (RFC 6749 §4.1.3).
    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(
        &server,
        &browser.sign_in_and_approve(&request, "alice").await,
        &request,
    );
    let (status, body) = exchange(&server, &intruder, &code, Some(&pkce.verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // ...and the intruder's attempt did not use the code up for its client.
    let (status, body) = exchange(&server, &app, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Another registered redirect URI than the authorization request's.
    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = server
        .token_response(
            &app.0,
            &app.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", other_uri),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // Refused without using the code up either.
    let (status, body) = exchange(&server, &app, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A wrong verifier from the right client does use it up: the code may
    // have been intercepted (RFC 7636 §1).
    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = exchange(&server, &app, &code, Some(&Pkce::new().verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = exchange(&server, &app, &code, Some(&pkce.verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    // No redirect URI although the authorization request had one.
    let pkce = Pkce::new();
    let request = Authz::code(&app.0, &pkce);
    let code = code_of(&server, &browser.authorize(&request).await, &request);
    let (status, body) = server
        .token_response(
            &app.0,
            &app.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

/// RFC 6749 §4.1.2 under concurrency: of six exchanges of one code sent at
/// once, exactly one gets tokens; the others are replays, so the winner's
/// tokens are revoked as well, whichever request the database saw first.
#[tokio::test]
async fn of_concurrent_exchanges_of_one_code_exactly_one_succeeds() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let pkce = Pkce::new();
    let request = Authz::code(&client.0, &pkce);
    let code = code_of(
        &server,
        &browser.sign_in_and_approve(&request, "alice").await,
        &request,
    );
    let [a, b, c, d, e, f] =
        six_at_once(|| exchange(&server, &client, &code, Some(&pkce.verifier))).await;
    let winner = one_winner(&[a, b, c, d, e, f]);
    for token in ["access_token", "refresh_token"] {
        assert_eq!(
            server
                .introspect(&client.0, &client.1, s(&winner[token]))
                .await,
            serde_json::json!({"active": false}),
            "{token} of the winner is revoked after the replays"
        );
    }
}

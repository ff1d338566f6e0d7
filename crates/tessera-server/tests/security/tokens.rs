//! RFC 9700 §4.14 (refresh token protection) and §4.3.2 / RFC 6750 §5.3
//! (access tokens in URLs): refresh tokens rotate, are bound to their client,
//! and a reused one revokes its family; access tokens are read from the
//! `Authorization` header only.

use reqwest::StatusCode;

use crate::common::decode_jwt;
use crate::flows::*;
use crate::web::{Browser, PASSWORD, cli_with_password};

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_whole_family() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let first = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let rt1 = s(&first["refresh_token"]);

    let (status, second) = refresh(&server, &client, rt1, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = s(&second["refresh_token"]);
    assert_ne!(rt1, rt2, "a refresh rotates the refresh token");
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(scope_set(s(&second["scope"])), scope_set(SCOPES));
    assert_eq!(
        server.introspect(&client.0, &client.1, rt1).await["active"],
        false
    );
    assert_eq!(
        server.introspect(&client.0, &client.1, rt2).await["active"],
        true
    );

    // The rotated token used again: refused, and the family is revoked, the
    // newest refresh token and its access token included (RFC 9700 §4.14.2).
    let (status, body) = refresh(&server, &client, rt1, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = refresh(&server, &client, rt2, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        server
            .introspect(&client.0, &client.1, s(&second["access_token"]))
            .await["active"],
        false
    );
    // The reuse is logged as the theft alarm it is; the revoked token that
    // follows is only a revoked token.
    let log = server.log();
    assert_eq!(
        log.matches("refresh token reused; revoking its family")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("a revoked refresh token was presented"),
        "{log}"
    );
}

#[tokio::test]
async fn of_concurrent_refreshes_of_one_token_exactly_one_rotates_it() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    for _ in 0..3 {
        let tokens = tokens_for(&server, &mut browser, &client, SCOPES).await;
        let rt = s(&tokens["refresh_token"]);
        let [a, b, c, d, e, f] = six_at_once(|| refresh(&server, &client, rt, None)).await;
        let winner = one_winner(&[a, b, c, d, e, f]);
        assert_ne!(s(&winner["refresh_token"]), rt);
    }
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_live_as_long_as_their_kind() {
    let (server, sub) = start_with_alice().await;
    let client = web_app(&server);
    let other = web_app(&server);
    let mut browser = Browser::new(&server);

    // offline_access: 90 days (SPEC.md default).
    let offline = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let rt = s(&offline["refresh_token"]);
    let (header, claims) = decode_jwt(rt);
    assert_eq!(header["typ"], "rt+jwt");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 90 * 24 * 3600);

    // Introspection by the owner shows it; another client learns nothing.
    let info = server.introspect(&client.0, &client.1, rt).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "refresh_token");
    assert_eq!(info["client_id"], client.0.as_str());
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(scope_set(s(&info["scope"])), scope_set(SCOPES));
    assert_eq!(
        server.introspect(&other.0, &other.1, rt).await,
        serde_json::json!({"active": false})
    );

    // Another client cannot use it (RFC 6749 §10.4), nor burn it.
    let (status, body) = refresh(&server, &other, rt, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = refresh(&server, &client, rt, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_jwt(s(&body["refresh_token"]));
    assert!(
        (claims["exp"].as_i64().unwrap() - (now() + 90 * 24 * 3600)).abs() <= 5,
        "an offline token keeps the family's end"
    );

    // Without offline_access: a day, sliding.
    let online = tokens_for(&server, &mut browser, &client, "openid profile").await;
    let (_, claims) = decode_jwt(s(&online["refresh_token"]));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 24 * 3600);
}

/// RFC 9700 §4.3.2 and RFC 6750 §5.3: access tokens in URLs end up in logs,
/// history and `Referer` headers. `/userinfo` reads the token from the
/// `Authorization` header only: one in the query string or the form body is
/// not looked at, so the request is answered as if it carried none.
#[tokio::test]
async fn access_tokens_outside_the_authorization_header_are_not_taken() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let tokens = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let token = s(&tokens["access_token"]);

    let in_query = server
        .http
        .get(server.url(&format!("/userinfo?access_token={token}")))
        .send()
        .await
        .unwrap();
    let in_body = server
        .http
        .post(server.url("/userinfo"))
        .form(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    for response in [in_query, in_body] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        // RFC 6750 §3.1: a request without a token gets no error code.
        assert!(!challenge.contains("error="), "{challenge}");
        assert!(response.text().await.unwrap().is_empty());
    }
    assert_eq!(server.userinfo_status(token).await, StatusCode::OK);
}

/// Deleting a client ends its tokens at this server within the catalogue's
/// one-second bound: JWT access tokens, which no record ties to it, are
/// inactive at introspection and refused at `/userinfo`, and its refresh
/// tokens are refused. (Services that verify JWTs offline accept them until
/// they expire; `SECURITY.md` says so.)
#[tokio::test]
async fn a_deleted_clients_tokens_end_with_it() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let gateway = server.client(&["--introspection", "any"]);
    let mut browser = Browser::new(&server);
    let tokens = tokens_for(&server, &mut browser, &client, SCOPES).await;
    let access = s(&tokens["access_token"]);
    assert_eq!(
        server.introspect(&gateway.0, &gateway.1, access).await["active"],
        true
    );

    server.cli(&["client", "delete", &client.0, "--json"]);
    crate::common::catalog_settles().await;
    assert_eq!(
        server.introspect(&gateway.0, &gateway.1, access).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        server.userinfo_status(access).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = refresh(&server, &client, s(&tokens["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
}

/// Access tokens that no refresh family or code records (here the password
/// grant's, for a client without refresh tokens; token exchange and implicit
/// alike) end with the grant: a new password and then deleting the user make
/// them inactive at once, reference tokens and JWTs both.
#[tokio::test]
async fn ending_a_grant_ends_access_tokens_issued_without_a_refresh_token() {
    let (server, _) = start_with_alice().await;
    let jwt_client = create_client(&server, "Script", &["--grant", "password"]);
    let reference_client = create_client(
        &server,
        "Old script",
        &["--grant", "password", "--token-format", "reference"],
    );
    let sign_in = |client: &(String, String), password: &'static str| {
        let server = &server;
        let client = client.clone();
        async move {
            let tokens = server
                .token(
                    &client.0,
                    &client.1,
                    &[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", password),
                    ],
                )
                .await;
            assert!(tokens["refresh_token"].is_null(), "{tokens}");
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let active = |client: &(String, String), token: String| {
        let server = &server;
        let client = client.clone();
        async move { server.introspect(&client.0, &client.1, &token).await["active"] == true }
    };

    let before = [
        (&jwt_client, sign_in(&jwt_client, PASSWORD).await),
        (
            &reference_client,
            sign_in(&reference_client, PASSWORD).await,
        ),
    ];
    for (client, token) in &before {
        assert!(active(client, token.clone()).await);
    }
    cli_with_password(
        &server,
        &[
            "user",
            "set-password",
            "alice",
            "--password-stdin",
            "--json",
        ],
        "a new pass phrase",
    );
    for (client, token) in &before {
        assert!(!active(client, token.clone()).await, "a new password");
    }

    let after = [
        (&jwt_client, sign_in(&jwt_client, "a new pass phrase").await),
        (
            &reference_client,
            sign_in(&reference_client, "a new pass phrase").await,
        ),
    ];
    for (client, token) in &after {
        assert!(active(client, token.clone()).await);
    }
    server.cli(&["user", "delete", "alice", "--json"]);
    for (client, token) in &after {
        assert!(!active(client, token.clone()).await, "a deleted user");
    }
}

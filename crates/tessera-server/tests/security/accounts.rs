//! Guessing and enumerating accounts (RFC 9700 §4.15 on the password grant,
//! RFC 6749 §10.10, OWASP's authentication guidance): failed sign-ins are
//! throttled per account and per address without letting anyone lock a user
//! out, messages and timing do not tell a known username from an unknown
//! one. Device user-code guessing is in the `it` suite's `device` module.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestServer;
use crate::flows::*;
use crate::web::{Browser, PASSWORD, create_user};

#[tokio::test]
async fn the_password_grant_is_throttled_after_five_failures() {
    let (server, _) = start_with_alice().await;
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    for _ in 0..5 {
        let (status, body) = server
            .token_response(
                &client.0,
                &client.1,
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // Refused even with the right password.
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    assert!(body.get("access_token").is_none());
}

/// A password-grant request for `username`; returns the status and body.
async fn password_grant(
    server: &TestServer,
    client: &(String, String),
    username: &str,
    password: &str,
) -> (StatusCode, Value) {
    server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_throttle() {
    let (server, _) = start_with_alice().await;
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    // 50 wrong guesses at once, for one account from one address: only the
    // policy's free attempts may reach the password check (the rest are
    // refused before it, with 429), however they interleave.
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..50 {
        let request = server
            .http
            .post(server.url("/oauth2/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[
                ("grant_type", "password".to_owned()),
                ("username", "alice".to_owned()),
                ("password", format!("guess {i}")),
            ]);
        guesses.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        });
    }
    let answers = guesses.join_all().await;
    let checked = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::BAD_REQUEST && body["error"] == "invalid_grant"
        })
        .count();
    let throttled = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(checked <= 5, "{checked} guesses were checked: {answers:?}");
    assert_eq!(checked + throttled, 50, "{answers:?}");
    // And the right password is refused too while the account is throttled.
    let (status, _) = password_grant(&server, &client, "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A password-grant request relayed by a reverse proxy for `client_address`
/// (the proxy appends the address it saw to what the client sent).
async fn password_grant_via_proxy(
    server: &TestServer,
    client: &(String, String),
    forwarded_for: &str,
    username: &str,
    password: &str,
) -> StatusCode {
    server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(&client.0, Some(&client.1))
        .header("x-forwarded-for", forwarded_for)
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_guesser_does_not_lock_out_everyone() {
    let server = TestServer::start_with(&[("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    create_user(&server, "alice", None, None);
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    // One address guesses at random names, forging a different address
    // left of the one the proxy appended each time: the proxy's entry counts.
    let mut statuses = Vec::new();
    for i in 0..25 {
        let forwarded = format!("10.9.{i}.1, 203.0.113.7");
        let status =
            password_grant_via_proxy(&server, &client, &forwarded, &format!("user{i}"), "guess")
                .await;
        statuses.push(status);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Everyone else behind the same proxy signs in.
    let status =
        password_grant_via_proxy(&server, &client, "198.51.100.2", "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // The request log names the forwarded address, not the proxy's.
    let log = server.log();
    assert!(log.contains("address=198.51.100.2"), "{log}");
    assert!(log.contains("address=203.0.113.7"), "{log}");
    assert!(
        !log.contains("address=10.9."),
        "a forged hop was logged: {log}"
    );
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarding_header_changes_nothing() {
    let (server, _) = start_with_alice().await;
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    for i in 0..5 {
        let status = password_grant_via_proxy(
            &server,
            &client,
            &format!("203.0.113.{i}"),
            &format!("user{i}"),
            "guess",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // The header is anyone's to write: every guess came from one peer.
    let status =
        password_grant_via_proxy(&server, &client, "198.51.100.2", "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn guesses_at_an_account_from_many_addresses_do_not_lock_its_user_out() {
    let server = TestServer::start_with(&[("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    create_user(&server, "alice", None, None);
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    // 25 addresses, one wrong guess each: past the account's lock.
    for i in 0..25 {
        let status = password_grant_via_proxy(
            &server,
            &client,
            &format!("203.0.113.{i}"),
            "alice",
            "guess",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "guess {i}");
    }
    // An address that has guessed at alice waits out the account's lock,
    // even with the right password.
    let status = password_grant_via_proxy(&server, &client, "203.0.113.3", "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Alice, from an address that has not failed on her account, signs in.
    let status =
        password_grant_via_proxy(&server, &client, "198.51.100.2", "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // Her success cleared the account: the throttle starts over.
    let status = password_grant_via_proxy(&server, &client, "203.0.113.3", "alice", "guess").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_username_and_the_email_share_one_budget() {
    let (server, _) = start_with_alice().await;
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    for login in [
        "alice",
        "alice@example.com",
        "ALICE",
        "Alice@Example.com",
        "alice",
    ] {
        let (status, body) = password_grant(&server, &client, login, "wrong").await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let (status, _) = password_grant(&server, &client, "alice@example.com", "wrong").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "five failures by any of the account's names throttle it"
    );
}

#[tokio::test]
async fn the_login_page_never_says_which_part_was_wrong_and_throttles() {
    let (server, _) = start_with_alice().await;
    let client = web_app(&server);
    let mut browser = Browser::new(&server);
    let page = browser
        .authorize(&Authz::code(&client.0, &Pkce::new()))
        .await;

    let unknown = browser.login(&page, "nobody", PASSWORD).await;
    assert!(unknown.is_login(), "{}", unknown.describe());
    let wrong = browser.login(&unknown, "alice", "not the password").await;
    assert!(wrong.is_login(), "{}", wrong.describe());
    let message = unknown.error_message().expect("an error message");
    assert_eq!(wrong.error_message().as_ref(), Some(&message));
    for tell in [
        "not found",
        "unknown",
        "no such",
        "does not exist",
        "wrong password",
    ] {
        assert!(!message.to_lowercase().contains(tell), "{message}");
    }
    assert!(unknown.set_cookie("tessera_session").is_none());
    assert!(wrong.set_cookie("tessera_session").is_none());

    let mut page = wrong;
    for _ in 0..3 {
        page = browser.login(&page, "alice", "not the password").await;
        assert_ne!(page.status, StatusCode::TOO_MANY_REQUESTS);
    }
    // Five failures: even the right password is refused for a while.
    let throttled = browser.login(&page, "alice", PASSWORD).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.describe()
    );
    assert!(throttled.header("retry-after").is_some());
    assert!(
        throttled
            .error_message()
            .is_some_and(|m| m.contains("Too many failed sign-in attempts")),
        "{}",
        throttled.body
    );
    assert!(throttled.set_cookie("tessera_session").is_none());
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert!(
        throttled.body.contains("action=\"/login\""),
        "the form stays"
    );
}

/// A username that does not exist costs as much as a wrong password: the
/// server hashes the guess either way, so the time of an answer does not say
/// whether an account exists (OWASP ASVS 2.2; the messages are checked
/// above). Each attempt comes from its own address and names its own
/// account, so no throttle delay is measured instead of the check itself.
/// The margin is wide (an unknown name answered without hashing is an order
/// of magnitude faster), so a busy machine does not make this flaky.
#[tokio::test]
async fn unknown_usernames_take_as_long_as_wrong_passwords() {
    let server = TestServer::start_with(&[("TESSERA_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let client = create_client(&server, "Legacy", &["--grant", "password"]);
    const SAMPLES: usize = 5;
    for i in 0..SAMPLES {
        create_user(&server, &format!("member{i}"), None, None);
    }
    let timed = |address: String, username: String| {
        let server = &server;
        let client = &client;
        async move {
            let started = std::time::Instant::now();
            let status =
                password_grant_via_proxy(server, client, &address, &username, "not it").await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            started.elapsed()
        }
    };
    // One untimed request first, so that connection set-up is not measured.
    timed("192.0.2.250".into(), "warm-up".into()).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..SAMPLES {
        known.push(timed(format!("203.0.113.{i}"), format!("member{i}")).await);
        unknown.push(timed(format!("198.51.100.{i}"), format!("ghost{i}")).await);
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[SAMPLES / 2], unknown[SAMPLES / 2]);
    assert!(
        unknown * 3 >= known,
        "an unknown username is answered in {unknown:?}, a wrong password in {known:?}"
    );
}

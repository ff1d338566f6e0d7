//! `/metrics`: Prometheus text with requests, latency, refusals, tokens,
//! logins, database connections and key schedule; never a secret.

use reqwest::StatusCode;

use crate::common::{TestServer, free_port};
use crate::web::{PASSWORD, create_user};

async fn scrape(server: &TestServer, url: &str) -> String {
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`).
fn sample(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_tokens_refusals_and_logins_and_show_no_secret() {
    let server = TestServer::start().await;
    create_user(&server, "dana", None, None);
    let (id, secret) = server.client(&["--grant", "client_credentials", "--grant", "password"]);
    let ok = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let access_token = ok["access_token"].as_str().unwrap().to_owned();
    let (status, _) = server
        .token_response(&id, "wrong secret", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "password"),
                ("username", "dana"),
                ("password", "not it"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "password"),
                ("username", "dana"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let page = scrape(&server, &server.url("/metrics")).await;
    let token = ["route=\"/oauth2/token\""];
    assert_eq!(
        sample(
            &page,
            "tessera_http_requests_total",
            &[token[0], "method=\"POST\"", "status=\"200\""]
        ),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "tessera_http_request_duration_seconds_count",
            &[token[0], "grant_type=\"client_credentials\""]
        ),
        Some(2.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "tessera_http_request_duration_seconds_bucket",
            &[token[0], "grant_type=\"password\"", "le=\"+Inf\""]
        ) == Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "tessera_tokens_issued_total",
            &["grant_type=\"client_credentials\"", "token=\"access_jwt\""]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "tessera_refusals_total",
            &[
                token[0],
                "error=\"invalid_client\"",
                "reason=\"ClientAuthenticationFailed\""
            ]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "tessera_refusals_total",
            &[
                "grant_type=\"password\"",
                "error=\"invalid_grant\"",
                "reason=\"WrongCredentials\""
            ]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tessera_logins_total", &["outcome=\"failure\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "tessera_logins_total", &["outcome=\"success\""]),
        Some(1.0)
    );
    let open =
        sample(&page, "tessera_db_connections", &["state=\"open\""]).expect("open connections");
    assert!(open >= 2.0, "{page}");
    let age =
        sample(&page, "tessera_signing_key_age_seconds", &["alg=\"ES256\""]).expect("key age");
    assert!((0.0..600.0).contains(&age), "{age}");
    let next = sample(
        &page,
        "tessera_signing_key_next_rotation_seconds",
        &["alg=\"ES256\""],
    )
    .expect("next rotation");
    assert!(next > 29.0 * 86_400.0 && next <= 30.0 * 86_400.0, "{next}");
    // No label takes what a client sent.
    for secret_value in [
        secret.as_str(),
        access_token.as_str(),
        PASSWORD,
        "wrong secret",
        id.as_str(),
    ] {
        assert!(!page.contains(secret_value), "{secret_value:?} on the page");
    }
}

#[tokio::test]
async fn errors_sent_back_from_the_authorization_endpoint_count_as_refusals() {
    let server = TestServer::start().await;
    let (id, _) = server.client(&[
        "--grant",
        "authorization_code",
        "--redirect-uri",
        "https://app.example/cb",
        "--scope",
        "openid",
    ]);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", "https://app.example/cb"),
            ("scope", "openid admin"),
            ("state", "s"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let response = browser
        .get(server.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://app.example/cb?error=invalid_scope"),
        "{location}"
    );
    let page = scrape(&server, &server.url("/metrics")).await;
    assert_eq!(
        sample(
            &page,
            "tessera_refusals_total",
            &["route=\"/oauth2/authorize\"", "error=\"invalid_scope\""]
        ),
        Some(1.0),
        "{page}"
    );
}

#[tokio::test]
async fn metrics_can_have_their_own_listener() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = TestServer::start_with(&[("TESSERA_METRICS_LISTEN", &address)]).await;
    let elsewhere = scrape(&server, &format!("http://{address}/metrics")).await;
    assert!(elsewhere.contains("tessera_db_connections"), "{elsewhere}");
    let main = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
}

//! The developer portal in a real browser: a developer signs in, registers a
//! service, reads its ID and secret off the page, runs the try-it command as
//! shown, watches the trace, inspects a token, rotates the secret and deletes
//! the application. Screenshots of each page are saved as test artifacts
//! (`target/test-artifacts/portal-*.png`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{Browser, TIMEOUT};
use crate::browser_flows::{assert_shows, sign_in, submit, text};
use crate::common::TestServer;
use crate::portal::client_credentials;
use crate::web::{PASSWORD, create_user};

/// Where the screenshots go: beside the build, kept by CI as artifacts.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser
        .client()
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(artifacts().join(format!("portal-{name}.png")), png).unwrap();
}

/// The text of the element marked `data-testid="{id}"`, if the page has one.
async fn by_test_id(browser: &Browser, id: &str) -> Option<String> {
    let found = browser
        .client()
        .find(Locator::Css(&format!("[data-testid=\"{id}\"]")))
        .await
        .ok()?;
    Some(found.text().await.unwrap().trim().to_owned())
}

async fn follow_link(browser: &Browser, text: &str) {
    let link = browser
        .client()
        .find(Locator::LinkText(text))
        .await
        .unwrap_or_else(|e| panic!("link {text:?}: {e}"));
    link.click().await.unwrap();
}

/// Waits until the page shows `needle` (after a navigation started by a
/// click that is not a form submission).
async fn wait_for_text(browser: &Browser, needle: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !text(browser).await.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not shown on {}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a try-it command as the page shows it, with the secret in the
/// variable the page names.
fn run_as_shown(command: &str, secret: &str) -> Value {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CLIENT_SECRET", secret)
        .output()
        .expect("sh (and curl) to run the try-it command");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn a_developer_registers_tries_traces_rotates_and_deletes_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.client().set_window_size(1100, 1400).await.unwrap();
    let server = TestServer::start().await;
    create_user(&server, "dev", Some("dev@example.com"), Some("Dee Veloper"));
    server.cli(&["user", "set-developer", "dev", "--json"]);

    browser.goto(&server.url("/portal")).await;
    assert_shows(&browser, "portal sign-in", &["the developer portal"]).await;
    sign_in(&browser, "dev", PASSWORD).await;
    assert_shows(
        &browser,
        "portal home",
        &["Your applications", "No applications yet"],
    )
    .await;
    screenshot(&browser, "home").await;

    follow_link(&browser, "Register an application").await;
    wait_for_text(&browser, "Application name").await;
    browser.fill("name", "Billing Service").await;
    browser
        .client()
        .find(Locator::Css("select[name=\"kind\"]"))
        .await
        .unwrap()
        .select_by_value("service")
        .await
        .unwrap();
    browser.fill("scope", "").await;
    screenshot(&browser, "register").await;
    submit(&browser, "Register").await;

    let id = by_test_id(&browser, "client-id")
        .await
        .expect("the client ID");
    let secret = by_test_id(&browser, "client-secret")
        .await
        .expect("the secret, shown once");
    assert!(
        browser
            .client()
            .find(Locator::Css("button[data-copy=\"client-secret\"]"))
            .await
            .is_ok(),
        "a copy button beside the secret"
    );
    screenshot(&browser, "registered").await;
    let (status, body) = client_credentials(&server, &id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    browser.client().refresh().await.unwrap();
    wait_for_text(&browser, "Try it").await;
    assert!(
        by_test_id(&browser, "client-secret").await.is_none(),
        "the secret is not shown on reload"
    );
    assert!(!browser.page_source().await.contains(&secret));

    // The try-it command, run as shown.
    let command = by_test_id(&browser, "try-client_credentials")
        .await
        .expect("a ready request for client credentials");
    assert!(command.contains(&id), "{command}");
    let answer = run_as_shown(&command, &secret);
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token from the try-it command: {answer}"))
        .to_owned();

    // A failure and a success, then the trace.
    let (status, _) = client_credentials(&server, &id, "a-wrong-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    client_credentials(&server, &id, &secret).await;
    browser.client().refresh().await.unwrap();
    wait_for_text(&browser, "Trace").await;
    let trace = by_test_id(&browser, "trace").await.expect("a trace table");
    assert!(trace.contains("refused invalid_client"), "{trace}");
    assert!(trace.contains("client authentication failed"), "{trace}");
    assert!(trace.contains("ok issued an access token"), "{trace}");
    assert!(!trace.contains("a-wrong-secret") && !trace.contains(&secret));
    // Tall enough for the whole page, trace included.
    browser.client().set_window_size(1100, 2300).await.unwrap();
    screenshot(&browser, "app").await;
    browser.client().set_window_size(1100, 1400).await.unwrap();

    // The token inspector.
    follow_link(&browser, "Token inspector").await;
    wait_for_text(&browser, "Paste an access").await;
    browser.fill("token", &token).await;
    submit(&browser, "Inspect").await;
    assert_eq!(
        by_test_id(&browser, "verdict").await.as_deref(),
        Some("Valid")
    );
    screenshot(&browser, "inspector").await;

    // Rotation: a new secret, shown once; the old one stops working.
    browser
        .goto(&server.url(&format!("/portal/apps/{id}")))
        .await;
    submit(&browser, "Rotate secret").await;
    let rotated = by_test_id(&browser, "client-secret")
        .await
        .expect("the new secret, shown once");
    assert_ne!(rotated, secret);
    assert_eq!(
        client_credentials(&server, &id, &secret).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client_credentials(&server, &id, &rotated).await.0,
        StatusCode::OK
    );

    // Deletion, confirmed.
    browser
        .client()
        .find(Locator::Css("input[name=\"confirm\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit(&browser, "Delete application").await;
    assert_shows(
        &browser,
        "portal home after the deletion",
        &["No applications yet"],
    )
    .await;
    assert_eq!(
        client_credentials(&server, &id, &rotated).await.0,
        StatusCode::UNAUTHORIZED
    );
    browser.close().await;
}

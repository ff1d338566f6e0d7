//! TLS on the listener: https with HSTS, the issuer on https, and a renewed
//! certificate taken without a restart.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::{Instant, sleep};

use crate::common::{TempDir, TestServer};

/// A self-signed certificate for 127.0.0.1, written to `dir`: its PEM.
fn write_pair(dir: &TempDir) -> (String, [(&'static str, String); 2]) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    // The key first: a reload that sees the new certificate finds its key.
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(&cert, made.cert.pem()).unwrap();
    (
        made.cert.pem(),
        [
            ("TESSERA_TLS_CERT", cert.display().to_string()),
            ("TESSERA_TLS_KEY", key.display().to_string()),
        ],
    )
}

/// A server with TLS on, and its certificate's PEM.
async fn start_with_tls(dir: &TempDir) -> (TestServer, String) {
    let (pem, env) = write_pair(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (TestServer::start_with(&env).await, pem)
}

/// A client with no connection open yet that trusts `pem` alone.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_https_with_hsts_and_an_https_issuer() {
    let dir = TempDir::new("tls");
    let (server, _) = start_with_tls(&dir).await;
    assert_eq!(server.scheme, "https");
    let response = server
        .http
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["issuer"],
        format!("https://127.0.0.1:{}", server.port)
    );
    assert!(
        metadata["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let token = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert!(token["access_token"].is_string(), "{token}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health/live", server.port))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP served"
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = TempDir::new("tls-renew");
    let (server, first) = start_with_tls(&dir).await;
    let (renewed, _) = write_pair(&dir);
    let client = trusting(&renewed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A new connection each time: open ones keep the certificate they
        // started with.
        let answered = client
            .get(server.url("/health/live"))
            .header("connection", "close")
            .send()
            .await;
        if answered.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served:\n{}",
            server.log()
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("TLS certificate reloaded"));
    // The old certificate is no longer presented.
    let stale = trusting(&first)
        .get(server.url("/health/live"))
        .send()
        .await;
    assert!(stale.is_err(), "the old certificate is still served");
}

//! The OpenID Connect code flow checked from outside: Authlib is the relying
//! party (PKCE S256, state, nonce, client_secret_basic), plain HTTP plays the
//! browser through the login and consent pages, and the ID token is validated
//! by Authlib (over joserfc) and by PyJWT against the published JWKS, at_hash
//! included. `tests/outside/oidc_code_flow.py` does the work; these tests start
//! the server, create the user and clients, and read its summary.
//!
//! Needs `TESSERA_TEST_PYTHON` (set by `scripts/test`); skipped without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::TestServer;

const USERNAME: &str = "alice";
const EMAIL: &str = "alice@example.com";
const NAME: &str = "Alice Example";
const PASSWORD: &str = "correct horse battery staple";
/// Never contacted: the script reads the code from the redirect's Location.
const REDIRECT_URI: &str = "http://127.0.0.1:8765/cb";
const SCOPE: &str = "openid profile email";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outside/oidc_code_flow.py")
}

/// Creates alice through the CLI, the password on stdin; returns her `sub`.
fn create_user(server: &TestServer) -> String {
    let mut child = server
        .command()
        .args([
            "user",
            "create",
            "--username",
            USERNAME,
            "--email",
            EMAIL,
            "--name",
            NAME,
            "--password-stdin",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera user create");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tessera user create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    created["sub"].as_str().unwrap().to_owned()
}

/// A confidential code-flow client; returns (id, secret).
fn create_client(server: &TestServer, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "Python RP",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        SCOPE,
    ];
    args.extend_from_slice(extra);
    args.push("--json");
    let out = server.cli(&args);
    (
        out["client_id"].as_str().unwrap().to_owned(),
        out["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// Runs the relying party against `server`; panics with its output and the
/// server's log unless it succeeds, else returns its JSON summary.
fn run_relying_party(
    python: &str,
    server: &TestServer,
    client: &(String, String),
    expect_alg: &str,
) -> Value {
    let out = Command::new(python)
        .arg(script())
        // `--name=value`: generated IDs may start with `-`. Secrets go through
        // the environment, out of the process list.
        .arg(format!("--issuer={}", server.issuer))
        .arg(format!("--client-id={}", client.0))
        .arg(format!("--redirect-uri={REDIRECT_URI}"))
        .arg(format!("--username={USERNAME}"))
        .arg(format!("--scope={SCOPE}"))
        .arg(format!("--expect-alg={expect_alg}"))
        .arg(format!("--expect-name={NAME}"))
        .arg(format!("--expect-email={EMAIL}"))
        .env("TESSERA_CLIENT_SECRET", &client.1)
        .env("TESSERA_PASSWORD", PASSWORD)
        // The server is on loopback: no proxy from the outer environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("run the Python relying party");
    assert!(
        out.status.success(),
        "the Python relying party failed ({}):\n--- stderr\n{}\n--- stdout\n{}\n--- server log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python relying party printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(summary["ok"], true, "{summary}");
    summary
}

/// What every successful run must report, whatever the algorithm.
async fn assert_summary(
    server: &TestServer,
    summary: &Value,
    client_id: &str,
    sub: &str,
    alg: &str,
) {
    let auth = &summary["authorization"];
    // A fresh server: the user is asked, and approving is a form POST
    // answered with 303 (RFC 9700 §4.11).
    assert_eq!(auth["consent_shown"], true, "{summary}");
    assert_eq!(auth["redirect_status"], 303, "{summary}");
    assert_eq!(auth["iss"], server.issuer.as_str(), "{summary}");
    assert_eq!(
        auth["response_params"],
        serde_json::json!(["code", "iss", "state"]),
        "{summary}"
    );

    let id_token = &summary["id_token"];
    assert_eq!(id_token["alg"], alg, "{summary}");
    assert_eq!(id_token["typ"], "JWT", "{summary}");
    assert_eq!(id_token["sub"], sub, "{summary}");
    assert_eq!(id_token["aud"], client_id, "{summary}");
    assert_eq!(id_token["azp"], client_id, "{summary}");
    assert_eq!(id_token["nonce_matches"], true, "{summary}");
    assert_eq!(id_token["at_hash_matches"], true, "{summary}");
    let claims: Vec<&str> = id_token["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
    ] {
        assert!(claims.contains(&claim), "claim {claim} missing: {summary}");
    }

    // The kid the relying party verified with is one the server publishes,
    // for the expected algorithm.
    let jwks = server.get_json("/jwks.json").await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == id_token["kid"])
        .unwrap_or_else(|| panic!("kid {} not in {jwks}", id_token["kid"]));
    assert_eq!(key["alg"], alg, "{key}");

    let token_response: Vec<&str> = summary["token_response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for member in ["access_token", "id_token", "token_type", "expires_in"] {
        assert!(
            token_response.contains(&member),
            "{member} missing: {summary}"
        );
    }
    // The client may refresh.
    assert!(token_response.contains(&"refresh_token"), "{summary}");

    let userinfo = &summary["userinfo"];
    assert_eq!(userinfo["sub"], sub, "{summary}");
    assert_eq!(userinfo["preferred_username"], USERNAME, "{summary}");
    assert_eq!(userinfo["name"], NAME, "{summary}");
    assert_eq!(userinfo["email"], EMAIL, "{summary}");
    assert_eq!(summary["code_replay_refused"], true, "{summary}");
}

/// A default client gets ID tokens signed with the server's signing_alg (ES256).
#[tokio::test]
async fn outside_oidc_code_flow_with_es256_id_tokens() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    let sub = create_user(&server);
    let client = create_client(&server, &[]);

    let summary = run_relying_party(&python, &server, &client, "ES256");
    assert_summary(&server, &summary, &client.0, &sub, "ES256").await;
}

/// A client registered with `--id-token-alg RS256` gets RS256 ID tokens from
/// the same server, the algorithm every OpenID provider must offer.
#[tokio::test]
async fn outside_oidc_code_flow_with_rs256_id_tokens() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );
    let sub = create_user(&server);
    let client = create_client(&server, &["--id-token-alg", "RS256"]);

    let summary = run_relying_party(&python, &server, &client, "RS256");
    assert_summary(&server, &summary, &client.0, &sub, "RS256").await;
}

/// A client that registered itself (RFC 7591, under open registration) runs
/// the same flow with the credentials the registration answered: a third-party
/// library finds nothing that tells it from one made with the CLI.
#[tokio::test]
async fn outside_oidc_code_flow_with_a_self_registered_client() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start_with(&[("TESSERA_OPEN_REGISTRATION", "true")]).await;
    let sub = create_user(&server);
    let response = server
        .http
        .post(server.url("/register"))
        .json(&serde_json::json!({
            "client_name": "Python RP",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": SCOPE,
            "id_token_signed_response_alg": "RS256",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let registered: Value = response.json().await.unwrap();
    let client = (
        registered["client_id"].as_str().unwrap().to_owned(),
        registered["client_secret"].as_str().unwrap().to_owned(),
    );

    let summary = run_relying_party(&python, &server, &client, "RS256");
    assert_summary(&server, &summary, &client.0, &sub, "RS256").await;
}

//! Tokens checked from outside: Authlib fetches them (client_secret_basic and
//! client_secret_post), PyJWT verifies them against the published JWKS, and
//! plain HTTP introspects and revokes them. Libraries we did not write agreeing
//! with the server is the check; `tests/outside/client_credentials.py` (and
//! `tests/outside/shared_secret.py`, for HS256 resources) does the work and
//! these tests start the servers and read its summary.
//!
//! Needs `TESSERA_TEST_PYTHON` (set by `scripts/test`); skipped without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TestServer, decode_jwt};

const SCOPE: &str = "orders.read orders.write";
const AUDIENCE: &str = "https://api.example.com/orders";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outside/client_credentials.py")
}

/// Runs the Python client against `server`; panics with its output and the
/// server's log unless it succeeds, else returns its JSON summary.
fn run_outside_client(
    python: &str,
    server: &TestServer,
    client: &(String, String),
    extra: &[&str],
) -> Value {
    let out = Command::new(python)
        .arg(script())
        // `--name=value`: generated IDs may start with `-`. The secret goes
        // through the environment, out of the process list.
        .arg(format!("--issuer={}", server.issuer))
        .arg(format!("--client-id={}", client.0))
        .env("TESSERA_CLIENT_SECRET", &client.1)
        .args(extra)
        // The script's own requests never go through a proxy from the outer
        // environment: the server is on loopback.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n--- stderr\n{}\n--- stdout\n{}\n--- server log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(summary["ok"], true, "{summary}");
    summary
}

/// The summary's tokens: one per client authentication method, each verified,
/// introspected active, revoked and then introspected inactive.
fn assert_tokens(summary: &Value, alg: &str, aud: &str) -> Vec<String> {
    let tokens = summary["tokens"].as_array().unwrap();
    let methods: Vec<&str> = tokens
        .iter()
        .map(|t| t["auth_method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["client_secret_basic", "client_secret_post"]);
    for token in tokens {
        assert_eq!(token["alg"], alg, "{token}");
        assert_eq!(token["aud"], aud, "{token}");
        assert_eq!(token["active"], true, "{token}");
        assert_eq!(token["active_after_revocation"], false, "{token}");
        for claim in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
        ] {
            assert!(
                token["claims"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == claim),
                "claim {claim} missing: {token}"
            );
        }
    }
    tokens
        .iter()
        .map(|t| t["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn outside_client_verifies_tokens_with_jwks() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    let client = server.client(&["--grant", "client_credentials", "--scope", SCOPE]);

    let summary = run_outside_client(
        &python,
        &server,
        &client,
        &["--scope", SCOPE, "--expect-alg", "ES256"],
    );

    // Without a requested resource the audience is the issuer.
    let kids = assert_tokens(&summary, "ES256", &server.issuer);
    let published = jwks_kids(&server.get_json("/jwks.json").await);
    assert!(kids.iter().all(|k| published.contains(k)), "{summary}");
    assert_eq!(
        summary["token_endpoint"],
        format!("{}/oauth2/token", server.issuer)
    );
}

/// Only the configured `signing_alg` signs access tokens, so each algorithm gets
/// a server of its own.
async fn verifies_tokens_signed_with(alg: &str) {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start_with(&[("TESSERA_SIGNING_ALG", alg)]).await;
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        serde_json::json!([alg])
    );
    let client = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--audience",
        AUDIENCE,
    ]);

    let summary = run_outside_client(
        &python,
        &server,
        &client,
        &[
            "--scope",
            "orders.read",
            "--audience",
            AUDIENCE,
            "--expect-alg",
            alg,
        ],
    );

    assert_tokens(&summary, alg, AUDIENCE);
    for token in summary["tokens"].as_array().unwrap() {
        assert_eq!(token["scope"], "orders.read", "{token}");
    }
}

#[tokio::test]
async fn outside_client_verifies_rs256_tokens() {
    verifies_tokens_signed_with("RS256").await;
}

#[tokio::test]
async fn outside_client_verifies_ps256_tokens() {
    verifies_tokens_signed_with("PS256").await;
}

#[tokio::test]
async fn outside_client_verifies_eddsa_tokens() {
    verifies_tokens_signed_with("EdDSA").await;
}

/// After `keys rotate --now` the outside client verifies tokens signed by the new
/// key, with the old key and a key of another algorithm still in the JWKS.
#[tokio::test]
async fn outside_client_follows_key_rotation() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    let client = server.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    let first = server
        .token(
            &client.0,
            &client.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    let old_kid = decode_jwt(first["access_token"].as_str().unwrap()).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Published but never signing: this server signs access tokens with ES256.
    let eddsa = server.cli(&["keys", "rotate", "--alg", "EdDSA", "--json"]);
    let rotated = server.cli(&["keys", "rotate", "--now", "--json"]);
    assert_eq!(rotated["alg"], "ES256");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    // The server picks up keys rotated by the CLI within about a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = server
            .token(
                &client.0,
                &client.1,
                &[("grant_type", "client_credentials")],
            )
            .await;
        let (header, _) = decode_jwt(body["access_token"].as_str().unwrap());
        if header["kid"] == new_kid.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still signing with {} 10 s after the rotation",
            header["kid"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let summary = run_outside_client(
        &python,
        &server,
        &client,
        &[
            "--scope",
            SCOPE,
            "--expect-alg",
            "ES256",
            &format!("--expect-kid={new_kid}"),
        ],
    );
    let kids = assert_tokens(&summary, "ES256", &server.issuer);
    assert!(kids.iter().all(|k| *k == new_kid), "{summary}");
    let published: Vec<&str> = summary["jwks_kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for kid in [
        old_kid.as_str(),
        new_kid.as_str(),
        eddsa["kid"].as_str().unwrap(),
    ] {
        assert!(published.contains(&kid), "{kid} not in {published:?}");
    }
}

/// An API registered with `--signing-alg RS256` gets RS256 tokens from a
/// server that signs everything else with ES256, and PyJWT verifies them
/// against the JWKS as for any other key.
#[tokio::test]
async fn outside_client_verifies_rs256_resource_tokens_from_an_es256_server() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    server.cli(&[
        "resource",
        "create",
        "--audience",
        AUDIENCE,
        "--signing-alg",
        "RS256",
        "--json",
    ]);
    let client = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--audience",
        AUDIENCE,
    ]);
    let summary = run_outside_client(
        &python,
        &server,
        &client,
        &[
            "--scope",
            SCOPE,
            "--audience",
            AUDIENCE,
            "--expect-alg",
            "RS256",
        ],
    );
    assert_tokens(&summary, "RS256", AUDIENCE);
}

/// Runs `tests/outside/shared_secret.py` against an HS256 resource; returns
/// its summary.
fn run_shared_secret_client(
    python: &str,
    server: &TestServer,
    client: &(String, String),
    shared_secret: &str,
    expect_kid: &str,
    old_token: Option<&str>,
) -> Value {
    let mut command = Command::new(python);
    command
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outside/shared_secret.py"))
        .arg(format!("--issuer={}", server.issuer))
        .arg(format!("--client-id={}", client.0))
        .arg(format!("--audience={AUDIENCE}"))
        .arg(format!("--expect-kid={expect_kid}"))
        .env("TESSERA_CLIENT_SECRET", &client.1)
        .env("TESSERA_SHARED_SECRET", shared_secret)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    if let Some(token) = old_token {
        command.env("TESSERA_OLD_TOKEN", token);
    }
    let out = command.output().expect("run the Python client");
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n--- stderr\n{}\n--- stdout\n{}\n--- server log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    summary
}

/// PyJWT verifies an HS256 resource's tokens with the secret the CLI printed,
/// and after `resource rotate-secret` verifies new tokens with the new secret
/// and refuses the old ones, as introspection does.
#[tokio::test]
async fn outside_client_verifies_hs256_tokens_with_the_shared_secret() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let server = TestServer::start().await;
    let created = server.cli(&[
        "resource",
        "create",
        "--audience",
        AUDIENCE,
        "--signing-alg",
        "HS256",
        "--json",
    ]);
    let client = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--audience",
        AUDIENCE,
    ]);
    let first = run_shared_secret_client(
        &python,
        &server,
        &client,
        created["shared_secret"].as_str().unwrap(),
        &format!("{AUDIENCE}#hs256-1"),
        None,
    );
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(
            first["claims"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == claim),
            "claim {claim} missing: {first}"
        );
    }

    let rotated = server.cli(&["resource", "rotate-secret", AUDIENCE, "--json"]);
    crate::common::catalog_settles().await;
    let second = run_shared_secret_client(
        &python,
        &server,
        &client,
        rotated["shared_secret"].as_str().unwrap(),
        &format!("{AUDIENCE}#hs256-2"),
        first["token"].as_str(),
    );
    assert_eq!(second["old_token_refused"], true, "{second}");
}

//! Withdrawing a compromised signing key: `tessera keys revoke`, and what
//! `keys rotate` says it signs.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TempDir, TestServer, decode_jwt};
use crate::web::{PASSWORD, create_user};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The `kid` that signs access tokens now.
fn active_kid(server: &TestServer, alg: &str) -> String {
    let keys = server.cli(&["keys", "list", "--json"]);
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == alg && k["status"] == "active")
        .map(|k| s(&k["kid"]).to_owned())
        .unwrap_or_else(|| panic!("no active {alg} key: {keys}"))
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    server.get_json("/jwks.json").await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["kid"]).to_owned())
        .collect()
}

/// Tokens for alice through the password grant: access, refresh and ID token.
async fn user_tokens(server: &TestServer, client: &(String, String)) -> Value {
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "openid offline_access"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_revoked_key_is_withdrawn_at_once_everywhere() {
    let server = TestServer::start().await;
    create_user(&server, "alice", None, None);
    let client = server.client(&[
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--grant",
        "client_credentials",
        "--scope",
        "openid offline_access",
    ]);
    // A second instance on the same database, behind the same issuer.
    let other = TestServer::start_on(
        TempDir::new("second"),
        server.database_url.clone(),
        &[
            ("TESSERA_ISSUER", &server.issuer),
            (
                "TESSERA_KEY_ENCRYPTION_KEY_FILE",
                &server.key_file().display().to_string(),
            ),
        ],
    )
    .await;
    let old_kid = active_kid(&server, "ES256");
    let old = user_tokens(&server, &client).await;
    assert_eq!(
        decode_jwt(s(&old["access_token"])).0["kid"],
        old_kid.as_str()
    );

    // The only key that signs ES256 is not withdrawn without --force.
    let out = server.cli_output(&["keys", "revoke", &old_kid]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("only key that signs ES256") && message.contains("--force"),
        "{message}"
    );
    assert!(jwks_kids(&server).await.contains(&old_kid));

    // The procedure: rotate at once, which says what the new key signs...
    let rotated = server.cli(&["keys", "rotate", "--now", "--json"]);
    assert!(
        s(&rotated["signs"][0]).starts_with("access tokens"),
        "{rotated}"
    );
    let new_kid = s(&rotated["kid"]).to_owned();
    // ...then withdraw the old key. A key made in the same second as the old
    // one signs from the next second on: until then the answer is to wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    let revoked = loop {
        let out = server.cli_output(&["keys", "revoke", &old_kid, "--json"]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(
            message.contains(&format!("{new_kid} takes over in ")),
            "{message}"
        );
        assert!(Instant::now() < deadline, "{message}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["was_signing"], false);
    assert_eq!(revoked["signing_now"], new_kid.as_str());

    // Gone from the JWKS, and everything it signed is refused.
    assert!(!jwks_kids(&server).await.contains(&old_kid));
    assert_eq!(
        server
            .introspect(&client.0, &client.1, s(&old["access_token"]))
            .await["active"],
        false
    );
    assert_eq!(
        server.userinfo_status(s(&old["access_token"])).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", s(&old["refresh_token"])),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let listed = server.cli(&["keys", "list", "--json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str() && k["status"] == "revoked"),
        "{listed}"
    );

    // The other instance follows within its key refresh (a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active = other
            .introspect(&client.0, &client.1, s(&old["access_token"]))
            .await["active"]
            .clone();
        if active == false && !jwks_kids(&other).await.contains(&old_kid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance still trusts {old_kid}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // New tokens come from the new key and work on both.
    let fresh = user_tokens(&other, &client).await;
    assert_eq!(
        decode_jwt(s(&fresh["access_token"])).0["kid"],
        new_kid.as_str()
    );
    assert_eq!(
        server.userinfo_status(s(&fresh["access_token"])).await,
        StatusCode::OK
    );

    // Twice, or an unknown kid: a clear refusal.
    for (kid, why) in [
        (old_kid.as_str(), "already revoked"),
        ("-no-such-kid", "no signing key"),
    ] {
        let out = server.cli_output(&["keys", "revoke", kid]);
        assert!(!out.status.success());
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(why), "{kid}: {message}");
    }
}

#[tokio::test]
async fn forcing_out_the_only_signing_key_says_nothing_signs_until_a_rotation() {
    let server = TestServer::start().await;
    let rs256 = active_kid(&server, "RS256");
    // RS256 signs only the ID tokens of clients that ask for it.
    let rotated = server.cli(&["keys", "rotate", "--alg", "EdDSA", "--json"]);
    assert!(
        s(&rotated["signs"][0]).starts_with("nothing yet"),
        "{rotated}"
    );
    let (rp, _) = server.client(&["--grant", "client_credentials", "--id-token-alg", "RS256"]);

    let out = server.cli_output(&["keys", "revoke", &rs256, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING: no key signs RS256")
            && text.contains(&rp)
            && text.contains("keys rotate --alg RS256 --now"),
        "{text}"
    );
    assert!(text.contains("jwks_max_age"), "{text}");
    assert!(!jwks_kids(&server).await.contains(&rs256));
    // A rotation brings RS256 back at once.
    let again = server.cli(&["keys", "rotate", "--alg", "RS256", "--now", "--json"]);
    assert!(
        jwks_kids(&server)
            .await
            .contains(&s(&again["kid"]).to_owned())
    );
}

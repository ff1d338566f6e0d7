//! RFC 8725 (JWT BCP) and RFC 9700 §2.2: only tokens this server signed, with
//! the key and algorithm it signed them with, of the kind an endpoint takes.
//! Each forgery is shown to the endpoints that accept a token of ours:
//! introspection, `/userinfo` and the refresh grant.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tessera_jose::{Algorithm, SigningKey};

use crate::common::{TestServer, decode_jwt};

const PASSWORD: &str = "correct horse battery staple";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `header` and `claims` signed by `key` (none: unsigned).
pub(crate) fn forge(header: &Value, claims: &Value, key: Option<&SigningKey>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.map_or_else(String::new, |key| {
        b64(&key.sign(input.as_bytes()).expect("sign"))
    });
    format!("{input}.{signature}")
}

/// A server with a person and a client that gets access, refresh and ID
/// tokens for her through the password grant.
struct Setup {
    server: TestServer,
    client: (String, String),
    tokens: Value,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    let mut child = server
        .command()
        .args([
            "user",
            "create",
            "--username",
            "alice",
            "--password-stdin",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let client = server.client(&[
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--scope",
        "openid profile",
    ]);
    let tokens = server
        .token(
            &client.0,
            &client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "openid profile"),
            ],
        )
        .await;
    for kind in ["access_token", "refresh_token", "id_token"] {
        assert!(tokens[kind].is_string(), "no {kind}: {tokens}");
    }
    Setup {
        server,
        client,
        tokens,
    }
}

impl Setup {
    fn token(&self, kind: &str) -> &str {
        self.tokens[kind].as_str().unwrap()
    }

    /// `token` is refused wherever a token of ours is accepted: inactive at
    /// introspection, 401 at `/userinfo`, `invalid_grant` as a refresh token.
    async fn refused_everywhere(&self, token: &str, what: &str) {
        let introspected = self
            .server
            .introspect(&self.client.0, &self.client.1, token)
            .await;
        assert_eq!(
            introspected,
            json!({"active": false}),
            "{what}: introspection"
        );
        assert_eq!(
            self.server.userinfo_status(token).await,
            401,
            "{what}: /userinfo"
        );
        let (status, body) = self
            .server
            .token_response(
                &self.client.0,
                &self.client.1,
                &[("grant_type", "refresh_token"), ("refresh_token", token)],
            )
            .await;
        assert_eq!(status, 400, "{what}: refresh grant: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    }
}

/// RFC 8725 §3.1, §3.2: `alg: none`, and an HMAC keyed with the server's
/// public key under its own `kid` (the RS256/ES256 → HS256 confusion).
#[tokio::test]
async fn unsigned_tokens_and_algorithm_confusion_are_refused() {
    let setup = setup().await;
    let access = setup.token("access_token");
    let (header, claims) = decode_jwt(access);
    let kid = header["kid"].as_str().unwrap();

    let none = forge(&json!({"alg": "none", "typ": "at+jwt"}), &claims, None);
    setup.refused_everywhere(&none, "alg none").await;
    let none_with_kid = forge(
        &json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        &claims,
        None,
    );
    setup
        .refused_everywhere(&none_with_kid, "alg none with the kid")
        .await;

    // The public key as an HMAC secret, in each form a confused verifier
    // might take it: the JWK's JSON, and its coordinates.
    let jwks = setup.server.get_json("/jwks.json").await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the signing key is published")
        .clone();
    for secret in [
        jwk.to_string(),
        jwk["x"].as_str().unwrap_or_default().to_owned(),
        jwk["n"].as_str().unwrap_or_default().to_owned(),
    ] {
        if secret.is_empty() {
            continue;
        }
        let key = SigningKey::hmac(kid, secret.as_bytes()).expect("hmac key");
        let confused = forge(
            &json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
            &claims,
            Some(&key),
        );
        setup
            .refused_everywhere(&confused, "HS256 keyed with the public key")
            .await;
    }
}

/// RFC 8725 §3.10 and RFC 7515 §4.1.2–4.1.5: a token that carries its own
/// key (`jwk`), or says where to fetch one (`jku`, `x5u`), is judged by the
/// server's keys alone, and nothing is fetched. `kid` is a lookup key, never
/// a path or a query.
#[tokio::test]
async fn keys_named_by_the_token_itself_are_ignored() {
    let setup = setup().await;
    let (_, claims) = decode_jwt(setup.token("access_token"));
    let (attacker, _) = SigningKey::generate(Algorithm::ES256, "attacker").expect("key");
    let attacker_jwk = serde_json::to_value(attacker.public_jwk().expect("public jwk")).unwrap();

    // Where a careless verifier would fetch keys: a listener that records
    // any connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap = format!("http://{}/keys", listener.local_addr().unwrap());

    let headers = [
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jwk": attacker_jwk}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jku": trap}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "x5u": trap}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "../../../../etc/passwd"}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "x' OR '1'='1"}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "x\"; DROP TABLE signing_keys; --"}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "/dev/zero"}),
    ];
    for header in &headers {
        let forged = forge(header, &claims, Some(&attacker));
        setup.refused_everywhere(&forged, &header.to_string()).await;
    }
    let fetched = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(fetched.is_err(), "the server fetched a key the token named");

    // And the server's own tokens still verify: no lookup was poisoned.
    let introspected = setup
        .server
        .introspect(
            &setup.client.0,
            &setup.client.1,
            setup.token("access_token"),
        )
        .await;
    assert_eq!(introspected["active"], true, "{introspected}");
}

/// RFC 8725 §3.11, §2.8: explicit typing. An ID token or a refresh token is
/// never taken for an access token, nor an access token for a refresh token,
/// although all are signed by the same key.
#[tokio::test]
async fn one_kind_of_token_is_never_taken_for_another() {
    let setup = setup().await;
    for kind in ["id_token", "refresh_token"] {
        let token = setup.token(kind);
        assert_eq!(
            setup.server.userinfo_status(token).await,
            401,
            "{kind} at /userinfo"
        );
    }
    let id_token = setup.token("id_token");
    assert_eq!(
        setup
            .server
            .introspect(&setup.client.0, &setup.client.1, id_token)
            .await,
        json!({"active": false}),
        "an ID token at introspection"
    );
    for kind in ["access_token", "id_token"] {
        let (status, body) = setup
            .server
            .token_response(
                &setup.client.0,
                &setup.client.1,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", setup.token(kind)),
                ],
            )
            .await;
        assert_eq!(status, 400, "{kind} as a refresh token: {body}");
        assert_eq!(body["error"], "invalid_grant");
    }
    // The refresh token itself still works: none of this used it up.
    let (status, body) = setup
        .server
        .token_response(
            &setup.client.0,
            &setup.client.1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", setup.token("refresh_token")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// RFC 8725 §3.8–3.9: a token of ours with its claims edited (a wider scope,
/// another subject, a later expiry) no longer verifies; neither does one
/// whose `typ` header was changed to pass for another kind.
#[tokio::test]
async fn edited_tokens_do_not_verify() {
    let setup = setup().await;
    let access = setup.token("access_token");
    let parts: Vec<&str> = access.split('.').collect();
    let (header, claims) = decode_jwt(access);
    let mut edits = Vec::new();
    for (name, value) in [
        ("scope", json!("openid profile admin")),
        ("sub", json!("someone-else")),
        ("exp", json!(claims["exp"].as_i64().unwrap() + 86_400)),
        ("aud", json!("https://elsewhere.example")),
    ] {
        let mut edited = claims.clone();
        edited[name] = value;
        edits.push((
            format!("{name} edited"),
            format!(
                "{}.{}.{}",
                parts[0],
                b64(edited.to_string().as_bytes()),
                parts[2]
            ),
        ));
    }
    let mut retyped = header.clone();
    retyped["typ"] = json!("rt+jwt");
    edits.push((
        "typ edited".to_owned(),
        format!(
            "{}.{}.{}",
            b64(retyped.to_string().as_bytes()),
            parts[1],
            parts[2]
        ),
    ));
    for (what, token) in &edits {
        setup.refused_everywhere(token, what).await;
    }
}

/// RFC 7519 §4.1.4, RFC 9068 §4 and RFC 6749 §6: an expired token is refused
/// wherever a token of ours is taken, though its signature still verifies.
/// The server's wall clock is moved two days on (libfaketime, the same
/// binary and database): past the access and ID tokens' 15 minutes and the
/// refresh token's day, well beyond the leeway.
#[tokio::test]
async fn expired_tokens_are_refused_wherever_tokens_are_taken() {
    let Some(later) = crate::common::skewed_clock("+2d") else {
        return;
    };
    let mut setup = setup().await;
    // Still good at the real time.
    let access = setup.token("access_token").to_owned();
    assert_eq!(
        setup
            .server
            .introspect(&setup.client.0, &setup.client.1, &access)
            .await["active"],
        true
    );
    setup.server.env.extend(later);
    setup.server.restart().await;
    for kind in ["access_token", "refresh_token", "id_token"] {
        setup.refused_everywhere(setup.token(kind), kind).await;
    }
    // Revoking an expired token is not an error (RFC 7009 §2.2).
    let revoked = setup
        .server
        .post_form(
            "/oauth2/revoke",
            &setup.client.0,
            &setup.client.1,
            &[("token", setup.token("refresh_token"))],
        )
        .await;
    assert_eq!(revoked.0, 200, "{:?}", revoked.1);
    // The server itself works at its new time: a new sign-in gets tokens
    // that verify there.
    let fresh = setup
        .server
        .token(
            &setup.client.0,
            &setup.client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let introspected = setup
        .server
        .introspect(
            &setup.client.0,
            &setup.client.1,
            fresh["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(introspected["active"], true, "{introspected}");
}

/// RFC 7519 §4.1.6 with the leeway: an access token issued "in the future"
/// (by a server whose clock ran an hour ahead, as another instance's might)
/// is not yet valid at a server with the right time, at introspection and at
/// `/userinfo`, though its signature is good.
#[tokio::test]
async fn tokens_issued_in_the_future_are_not_yet_valid() {
    let Some(ahead) = crate::common::skewed_clock("+1h") else {
        return;
    };
    let mut setup = setup().await;
    let real_env = setup.server.env.clone();
    setup.server.env.extend(ahead);
    setup.server.restart().await;
    let early = setup
        .server
        .token(
            &setup.client.0,
            &setup.client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "openid profile"),
            ],
        )
        .await;
    let early = early["access_token"].as_str().unwrap();
    setup.server.env = real_env;
    setup.server.restart().await;
    let introspected = setup
        .server
        .introspect(&setup.client.0, &setup.client.1, early)
        .await;
    assert_eq!(introspected, json!({"active": false}));
    assert_eq!(setup.server.userinfo_status(early).await, 401);
    // A token of the right time is fine.
    let now = setup.token("access_token");
    assert_eq!(
        setup
            .server
            .introspect(&setup.client.0, &setup.client.1, now)
            .await["active"],
        true
    );
}

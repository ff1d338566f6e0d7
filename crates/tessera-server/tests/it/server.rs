//! The server core over HTTP and the CLI: client credentials, token formats,
//! introspection, revocation, discovery, keys, errors.

use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestServer, decode_jwt};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[tokio::test]
async fn discovery_lists_exactly_what_works() {
    let server = TestServer::start().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta = server.get_json(path).await;
        assert_eq!(meta["issuer"], server.issuer.as_str());
        assert_eq!(meta["token_endpoint"], server.url("/oauth2/token"));
        assert_eq!(
            meta["introspection_endpoint"],
            server.url("/oauth2/introspect")
        );
        assert_eq!(meta["revocation_endpoint"], server.url("/oauth2/revoke"));
        assert_eq!(meta["jwks_uri"], server.url("/jwks.json"));
        assert_eq!(
            meta["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "password",
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:saml2-bearer",
                "implicit"
            ])
        );
        assert_eq!(
            meta["authorization_endpoint"],
            server.url("/oauth2/authorize")
        );
        assert_eq!(meta["userinfo_endpoint"], server.url("/userinfo"));
        assert_eq!(meta["end_session_endpoint"], server.url("/oauth2/logout"));
        assert_eq!(
            meta["device_authorization_endpoint"],
            server.url("/oauth2/device/code")
        );
        assert_eq!(meta["registration_endpoint"], server.url("/register"));
        assert_eq!(
            meta["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            meta["response_types_supported"],
            serde_json::json!(["code", "token", "id_token", "id_token token"])
        );
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256", "RS256"])
        );
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
        let credentials = [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ];
        let with_public: Vec<&str> = credentials.iter().copied().chain(["none"]).collect();
        assert_eq!(
            meta["token_endpoint_auth_methods_supported"],
            serde_json::json!(with_public)
        );
        assert_eq!(
            meta["revocation_endpoint_auth_methods_supported"],
            serde_json::json!(with_public)
        );
        assert_eq!(
            meta["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(credentials)
        );
        // private_key_jwt with each asymmetric algorithm, client_secret_jwt
        // with HS256 (the client_jwt tests use each of them).
        for endpoint in ["token", "introspection", "revocation"] {
            assert_eq!(
                meta[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
                serde_json::json!(["ES256", "RS256", "PS256", "EdDSA", "HS256"]),
                "{endpoint}"
            );
        }
    }
    let r = server
        .http
        .get(server.url("/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    // ES256 for access tokens, RS256 for the ID tokens of clients that need it.
    let mut algs: Vec<(&str, &str)> = keys.iter().map(|k| (s(&k["alg"]), s(&k["kty"]))).collect();
    algs.sort_unstable();
    assert_eq!(algs, [("ES256", "EC"), ("RS256", "RSA")]);
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "private part published: {key}");
        }
    }
}

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_jwt_that_verifies_against_the_jwks() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "orders.read orders.write",
    ]);
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "orders.read");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    let token = s(&body["access_token"]);
    let (header, claims) = decode_jwt(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(
        claims["aud"],
        server.issuer.as_str(),
        "default audience is the issuer"
    );
    assert_eq!(claims["scope"], "orders.read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // Offline verification with the published key.
    let jwks: tessera_jose::JwkSet =
        serde_json::from_value(server.get_json("/jwks.json").await).unwrap();
    let jws = tessera_jose::UnverifiedJws::parse(token).unwrap();
    let key = tessera_jose::VerifyingKey::from_jwk(jwks.find(jws.kid().unwrap()).unwrap()).unwrap();
    let verified: Value = jws.verify(&key).unwrap();
    assert_eq!(verified, claims);

    // Without a scope parameter the client gets everything it is allowed.
    let all = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(all["scope"], "orders.read orders.write");
}

#[tokio::test]
async fn scope_and_audience_are_limited_to_what_the_client_may_have() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "a b",
        "--audience",
        "https://orders.example",
        "--audience",
        "https://billing.example",
    ]);
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "a c")],
        )
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );

    let body = server
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://orders.example"),
            ],
        )
        .await;
    assert_eq!(
        decode_jwt(s(&body["access_token"])).1["aud"],
        "https://orders.example"
    );

    let body = server
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://orders.example"),
                ("resource", "https://billing.example"),
            ],
        )
        .await;
    assert_eq!(
        decode_jwt(s(&body["access_token"])).1["aud"],
        serde_json::json!(["https://orders.example", "https://billing.example"])
    );

    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_target")
    );
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "not a uri"),
            ],
        )
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_target")
    );

    // Two audiences and none requested: the configured default audience.
    let body = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        decode_jwt(s(&body["access_token"])).1["aud"],
        server.issuer.as_str()
    );

    // A single audience is used when none is requested.
    let (id1, secret1) = server.client(&[
        "--grant",
        "client_credentials",
        "--audience",
        "https://orders.example",
    ]);
    let body = server
        .token(&id1, &secret1, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        decode_jwt(s(&body["access_token"])).1["aud"],
        "https://orders.example"
    );

    // A resource's own scopes restrict what a token for it may carry.
    server.cli(&[
        "resource",
        "create",
        "--audience",
        "https://orders.example",
        "--scope",
        "a",
        "--json",
    ]);
    crate::common::catalog_settles().await;
    let body = server
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://orders.example"),
            ],
        )
        .await;
    assert_eq!(body["scope"], "a");
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://orders.example"),
                ("scope", "b"),
            ],
        )
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );

    // A resource that accepts only user tokens refuses app tokens.
    server.cli(&[
        "resource",
        "create",
        "--audience",
        "https://billing.example",
        "--accepts",
        "user",
        "--json",
    ]);
    let (status, body) = server
        .token_response(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://billing.example"),
            ],
        )
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_target")
    );
}

#[tokio::test]
async fn the_default_audience_and_lifetimes_are_configurable() {
    let server = TestServer::start_with(&[
        ("TESSERA_DEFAULT_AUDIENCE", "https://api.example"),
        ("TESSERA_APP_ACCESS_TOKEN_TTL", "120"),
    ])
    .await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let body = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["expires_in"], 120);
    assert!(
        body.get("scope").is_none(),
        "no scope allowed, none granted"
    );
    let claims = decode_jwt(s(&body["access_token"])).1;
    assert_eq!(claims["aud"], "https://api.example");
    assert!(claims.get("scope").is_none());

    let (id, secret) =
        server.client(&["--grant", "client_credentials", "--access-token-ttl", "30"]);
    let body = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["expires_in"], 30);
}

#[tokio::test]
async fn the_config_file_is_read_and_the_environment_overrides_it() {
    let mut server = TestServer::start().await;
    let config = server.dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "app_access_token_ttl = 600\ndefault_audience = \"https://file.example\"\n",
    )
    .unwrap();
    server
        .env
        .push(("TESSERA_CONFIG".into(), config.display().to_string()));
    server.env.push((
        "TESSERA_DEFAULT_AUDIENCE".into(),
        "https://env.example".into(),
    ));
    server.restart().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let body = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(body["expires_in"], 600);
    assert_eq!(
        decode_jwt(s(&body["access_token"])).1["aud"],
        "https://env.example"
    );

    let bad = server.dir.path().join("bad.toml");
    std::fs::write(&bad, "app_acces_token_ttl = 600\n").unwrap();
    let out = server.cli_output(&[
        "--config",
        bad.to_str().unwrap(),
        "client",
        "list",
        "--json",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("app_acces_token_ttl"));
}

#[tokio::test]
async fn reference_tokens_per_client_and_per_resource() {
    let server = TestServer::start_on_sqlite(&[]).await;
    let (id, secret) = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "x",
        "--token-format",
        "reference",
    ]);
    let body = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let token = s(&body["access_token"]);
    assert_eq!(token.len(), 43, "256-bit base64url: {token}");
    assert!(!token.contains('.'));
    let info = server.introspect(&id, &secret, token).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], id.as_str());
    assert_eq!(info["sub"], id.as_str());
    assert_eq!(info["scope"], "x");
    assert_eq!(info["iss"], server.issuer.as_str());
    assert_eq!(info["token_type"], "Bearer");
    assert!(info["exp"].as_i64().is_some());

    // The database holds only the digest of the token.
    let db = std::fs::read(server.dir.path().join("tessera.db")).unwrap();
    let wal = std::fs::read(server.dir.path().join("tessera.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "raw token stored"
        );
    }

    // A resource that wants reference tokens gets them even from a JWT client.
    server.cli(&[
        "resource",
        "create",
        "--audience",
        "https://opaque.example",
        "--token-format",
        "reference",
        "--json",
    ]);
    let (jid, jsecret) = server.client(&[
        "--grant",
        "client_credentials",
        "--audience",
        "https://opaque.example",
    ]);
    let body = server
        .token(&jid, &jsecret, &[("grant_type", "client_credentials")])
        .await;
    assert!(!s(&body["access_token"]).contains('.'));
    let info = server
        .introspect(&jid, &jsecret, s(&body["access_token"]))
        .await;
    assert_eq!(info["aud"], "https://opaque.example");
}

#[tokio::test]
async fn introspection_reports_only_active_tokens_and_needs_client_authentication() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials", "--scope", "x"]);
    let token = s(&server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await["access_token"])
    .to_owned();

    let info = server.introspect(&id, &secret, &token).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["jti"], decode_jwt(&token).1["jti"]);

    // Tampered payload, tampered signature, garbage, alg none: inactive.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = decode_jwt(&token).1;
    claims["scope"] = "admin".into();
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let forged_payload = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let mut sig = parts[2].to_owned();
    sig.replace_range(0..2, if sig.starts_with("AA") { "BB" } else { "AA" });
    let forged_sig = format!("{}.{}.{}", parts[0], parts[1], sig);
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "at+jwt"})),
        parts[1]
    );
    for bad in [
        forged_payload.as_str(),
        forged_sig.as_str(),
        none.as_str(),
        "garbage",
        "a.b.c",
    ] {
        assert_eq!(
            server.introspect(&id, &secret, bad).await,
            serde_json::json!({"active": false}),
            "{bad}"
        );
    }

    // By default (RFC 7662 §4) another client learns nothing of a token that
    // is neither its own nor for one of its audiences...
    let (other, other_secret) = server.client(&[]);
    assert_eq!(
        server.introspect(&other, &other_secret, &token).await,
        serde_json::json!({"active": false})
    );
    // ...nor one with an audience of its own, unless it is the token's...
    let (api, api_secret) = server.client(&["--audience", "https://mine.example"]);
    assert_eq!(
        server.introspect(&api, &api_secret, &token).await["active"],
        false
    );
    // ...while a trusted gateway may opt in to see every token.
    let (gateway, gateway_secret) = server.client(&["--introspection", "any"]);
    assert_eq!(
        server.introspect(&gateway, &gateway_secret, &token).await["active"],
        true
    );
    let (own, own_secret) = server.client(&[
        "--introspection",
        "own",
        "--audience",
        "https://mine.example",
    ]);
    assert_eq!(
        server.introspect(&own, &own_secret, &token).await["active"],
        false
    );
    let (id2, secret2) = server.client(&[
        "--grant",
        "client_credentials",
        "--audience",
        "https://mine.example",
    ]);
    let for_own = server
        .token(&id2, &secret2, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        server
            .introspect(&own, &own_secret, s(&for_own["access_token"]))
            .await["active"],
        true
    );

    // A public client has nothing to authenticate with: it may not introspect.
    let public = server.cli(&["client", "create", "--name", "spa", "--public", "--json"]);
    let r = server
        .http
        .post(server.url("/oauth2/introspect"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", s(&public["client_id"])),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // No or wrong credentials: 401 invalid_client.
    let r = server
        .http
        .post(server.url("/oauth2/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let (status, body) = server
        .post_form("/oauth2/introspect", &id, "wrong", &[("token", &token)])
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (status, body) = server
        .post_form("/oauth2/introspect", &id, &secret, &[])
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn revocation_of_jwt_and_reference_tokens() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let (rid, rsecret) = server.client(&[
        "--grant",
        "client_credentials",
        "--token-format",
        "reference",
    ]);
    let jwt = s(&server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await["access_token"])
    .to_owned();
    let reference = s(&server
        .token(&rid, &rsecret, &[("grant_type", "client_credentials")])
        .await["access_token"])
    .to_owned();

    // Another client cannot revoke them.
    let (status, body) = server
        .post_form("/oauth2/revoke", &rid, &rsecret, &[("token", &jwt)])
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    let (status, _) = server
        .post_form("/oauth2/revoke", &id, &secret, &[("token", &reference)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(server.introspect(&id, &secret, &jwt).await["active"], true);

    // The owner can, with or without a hint; then introspection says inactive.
    let (status, _) = server
        .post_form(
            "/oauth2/revoke",
            &id,
            &secret,
            &[("token", &jwt), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.introspect(&id, &secret, &jwt).await["active"], false);
    let (status, _) = server
        .post_form(
            "/oauth2/revoke",
            &rid,
            &rsecret,
            &[("token", &reference), ("token_type_hint", "weird")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.introspect(&rid, &rsecret, &reference).await["active"],
        false
    );

    // Revoking twice, or an unknown token, is still a success (RFC 7009 §2.2).
    for token in [jwt.as_str(), "unknown-token", "x.y.z"] {
        let (status, _) = server
            .post_form("/oauth2/revoke", &id, &secret, &[("token", token)])
            .await;
        assert_eq!(status, StatusCode::OK, "{token}");
    }
    // The CLI agrees.
    let out = server.cli_output(&["token", "inspect", &jwt, "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
}

#[tokio::test]
async fn client_authentication_methods_and_failures() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let url = server.url("/oauth2/token");

    // client_secret_post works too.
    let r = server
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let expect_401 = |r: reqwest::Response| async move {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    };
    // Wrong secret, unknown client, no credentials, a malformed header.
    expect_401(
        server
            .http
            .post(&url)
            .basic_auth(&id, Some("nope"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_401(
        server
            .http
            .post(&url)
            .basic_auth("ghost", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_401(
        server
            .http
            .post(&url)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_401(
        server
            .http
            .post(&url)
            .header("authorization", "Basic %%%")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_401(
        server
            .http
            .post(&url)
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Two methods at once: invalid_request.
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    // A client pinned to client_secret_post cannot use Basic.
    let (pid, psecret) = server.client(&[
        "--grant",
        "client_credentials",
        "--auth-method",
        "client_secret_post",
    ]);
    expect_401(
        server
            .http
            .post(&url)
            .basic_auth(&pid, Some(&psecret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Secrets with characters that need form encoding in Basic (RFC 6749 §2.3.1)
    // are not an issue for generated secrets, but IDs may carry '~' and '.'.
    let (tid, tsecret) = server.client(&["--id", "svc.orders~1", "--grant", "client_credentials"]);
    assert_eq!(
        server
            .token_response(&tid, &tsecret, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::OK
    );

    // A public client may not use client credentials.
    let public = server.cli(&["client", "create", "--name", "spa", "--public", "--json"]);
    assert!(public.get("client_secret").is_none());
    let r = server
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s(&public["client_id"])),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let out = server.cli_output(&[
        "client",
        "create",
        "--name",
        "x",
        "--public",
        "--grant",
        "client_credentials",
        "--json",
    ]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn the_token_endpoint_refuses_malformed_requests() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let (plain, plain_secret) = server.client(&[]);
    let url = server.url("/oauth2/token");
    let error_of = |r: reqwest::Response| async move {
        let status = r.status();
        let cache = r
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        assert_eq!(cache.as_deref(), Some("no-store"));
        (status, body["error"].as_str().unwrap().to_owned())
    };
    let bad_request = |e: &str| (StatusCode::BAD_REQUEST, e.to_owned());

    // JSON body, no content type.
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("invalid_request"));
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("invalid_request"));
    // A content type with a charset parameter is still a form.
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Repeated parameters.
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=a&scope=b")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("invalid_request"));
    // A body over 64 KiB.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("invalid_request"));
    // Missing, unknown and not-yet-served grant types.
    let r = server
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("scope", "a")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("invalid_request"));
    for grant in [
        "magic",
        "implicit",
        "urn:ietf:params:oauth:grant-type:saml1-bearer",
    ] {
        let r = server
            .http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", grant)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            bad_request("unsupported_grant_type"),
            "{grant}"
        );
    }
    // Grants the server has but the client is not allowed.
    for grant in [
        "password",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
    ] {
        let r = server
            .http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", grant)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            bad_request("unauthorized_client"),
            "{grant}"
        );
    }
    // A grant the client is not allowed.
    let r = server
        .http
        .post(&url)
        .basic_auth(&plain, Some(&plain_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, bad_request("unauthorized_client"));
    // Garbage bytes and odd methods never take the server down.
    let r = server
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0x00, b'=', b'&', 0xc3, 0x28, b'%', b'z'])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = server.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        server
            .http
            .get(server.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn parameters_that_are_not_utf8_are_refused_not_replaced() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let post = |path: &str, body: &str| {
        server
            .http
            .post(server.url(path))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
    };
    for (path, body) in [
        // An unknown parameter is ignored, but not when it is unreadable.
        ("/oauth2/token", "grant_type=client_credentials&state=%FF"),
        (
            "/oauth2/token",
            "grant_type=client_credentials&scope=%C3%28",
        ),
        ("/oauth2/token", "grant_type=client_credentials&%FF=x"),
        ("/oauth2/introspect", "token=%FF"),
        ("/oauth2/revoke", "token=abc%E2%82"),
        ("/oauth2/device/code", "client_id=%C0%AF"),
    ] {
        let r = post(path, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{path} {body}: {error}");
        assert!(
            s(&error["error_description"]).contains("UTF-8"),
            "{path} {body}: {error}"
        );
    }
    // Without the unreadable bytes the same request is served.
    let r = post(
        "/oauth2/token",
        "grant_type=client_credentials&state=%C3%A9",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn cli_manages_clients_and_changes_apply_to_the_running_server() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&[
        "--id",
        "billing",
        "--grant",
        "client_credentials",
        "--scope",
        "b",
        "--audience",
        "https://billing.example",
    ]);
    assert_eq!(id, "billing");
    assert_eq!(secret.len(), 43);
    let list = server.cli(&["client", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = server.cli(&["client", "show", "billing", "--json"]);
    assert_eq!(shown["grants"], serde_json::json!(["client_credentials"]));
    assert_eq!(shown["scope"], "b");
    assert_eq!(shown["type"], "confidential");
    assert!(
        shown.to_string().find(&secret).is_none(),
        "the secret is shown only once"
    );
    // Duplicate IDs and bad input are refused with a message.
    for args in [
        &[
            "client", "create", "--name", "x", "--id", "billing", "--json",
        ][..],
        &[
            "client", "create", "--name", "x", "--id", "bad id", "--json",
        ],
        &[
            "client", "create", "--name", "x", "--grant", "teleport", "--json",
        ],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "https://a.example/cb#frag",
            "--json",
        ],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--audience",
            "relative/path",
            "--json",
        ],
        &["client", "show", "nobody", "--json"],
    ] {
        let out = server.cli_output(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }

    // Rotating the secret takes effect within a second.
    let rotated = server.cli(&["client", "rotate-secret", "billing", "--json"]);
    crate::common::catalog_settles().await;
    let new_secret = s(&rotated["client_secret"]).to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(
        server
            .token_response(&id, &secret, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .token_response(&id, &new_secret, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::OK
    );

    // Resources.
    server.cli(&[
        "resource",
        "create",
        "--audience",
        "https://billing.example",
        "--scope",
        "b",
        "--token-format",
        "jwt",
        "--json",
    ]);
    let resources = server.cli(&["resource", "list", "--json"]);
    assert_eq!(resources[0]["audience"], "https://billing.example");
    assert_eq!(resources[0]["token_format"], "jwt");

    // Deleting the client stops it within a second.
    let deleted = server.cli(&["client", "delete", "billing", "--json"]);
    assert_eq!(deleted["deleted"], true);
    crate::common::catalog_settles().await;
    assert_eq!(
        server
            .token_response(&id, &new_secret, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !server
            .cli_output(&["client", "delete", "billing", "--json"])
            .status
            .success()
    );
    crate::common::catalog_settles().await;
}

#[tokio::test]
async fn keys_are_encrypted_at_rest_and_rotate_with_pre_publication() {
    let server = TestServer::start_on_sqlite(&[]).await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let first_kid = |body: &Value| s(&decode_jwt(s(&body["access_token"])).0["kid"]).to_owned();
    let token = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let original = first_kid(&token);

    let keys = server.cli(&["keys", "list", "--json"]);
    let es256: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .collect();
    assert_eq!(es256.len(), 1);
    assert_eq!(es256[0]["status"], "active");
    assert_eq!(es256[0]["kid"], original.as_str());

    // The private key is sealed in the database: only the key-encryption key
    // (generated into a 0600 file beside the database) opens it.
    let kek = std::fs::read_to_string(server.dir.path().join("tessera.db.kek")).unwrap();
    assert_eq!(kek.trim().len(), 43);
    {
        use sqlx::{Connection as _, Row as _};
        let mut db = sqlx::SqliteConnection::connect(&server.database_url)
            .await
            .unwrap();
        let row =
            sqlx::query("SELECT kid, sealed_private_key FROM signing_keys WHERE alg = 'ES256'")
                .fetch_one(&mut db)
                .await
                .unwrap();
        let (kid, sealed): (String, Vec<u8>) = (row.get(0), row.get(1));
        let alg = tessera_jose::Algorithm::ES256;
        assert!(
            tessera_jose::SigningKey::from_pkcs8(alg, "k", &sealed).is_err(),
            "stored in the clear"
        );
        let kek = tessera_core::crypto::KeyEncryptionKey::parse(&kek).unwrap();
        let der = kek.open(&kid, &sealed).unwrap();
        assert!(tessera_jose::SigningKey::from_pkcs8(alg, "k", &der).is_ok());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(server.dir.path().join("tessera.db.kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A scheduled-style rotation publishes the next key without signing with it.
    let next = server.cli(&["keys", "rotate", "--json"]);
    assert_eq!(next["status"], "next");
    let next_kid = s(&next["kid"]).to_owned();
    let jwks = server.get_json("/jwks.json").await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["kid"]))
        .collect();
    assert!(published.contains(&next_kid.as_str()) && published.contains(&original.as_str()));
    assert_eq!(
        first_kid(
            &server
                .token(&id, &secret, &[("grant_type", "client_credentials")])
                .await
        ),
        original
    );

    // An emergency rotation signs at once (the server picks it up within a second).
    let now_key = server.cli(&["keys", "rotate", "--alg", "EdDSA", "--now", "--json"]);
    assert_eq!(now_key["alg"], "EdDSA");
    let urgent = server.cli(&["keys", "rotate", "--now", "--json"]);
    let urgent_kid = s(&urgent["kid"]).to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = server
            .token(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        if first_kid(&body) == urgent_kid {
            // The old token, signed by a retired key, still verifies.
            assert_eq!(
                server
                    .introspect(&id, &secret, s(&token["access_token"]))
                    .await["active"],
                true
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "new key never signed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let statuses: Vec<(String, String)> = server
        .cli(&["keys", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (s(&k["kid"]).to_owned(), s(&k["status"]).to_owned()))
        .collect();
    assert!(
        statuses.contains(&(original.clone(), "retired".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(urgent_kid.clone(), "active".into())),
        "{statuses:?}"
    );
    let jwks = server.get_json("/jwks.json").await;
    // Two ES256 (retired and active), one next ES256, EdDSA, and RS256.
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 5);
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
    );

    // HS256 is never a signing key.
    assert!(
        !server
            .cli_output(&["keys", "rotate", "--alg", "HS256", "--json"])
            .status
            .success()
    );
}

#[tokio::test]
async fn a_wrong_key_encryption_key_stops_the_server_with_a_clear_error() {
    let server = TestServer::start().await;
    let out = server
        .command()
        .env(
            "TESSERA_KEY_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key-encryption key"));
}

#[tokio::test]
async fn token_inspect_explains_and_verifies() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(&["--grant", "client_credentials", "--scope", "r"]);
    let token = s(&server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await["access_token"])
    .to_owned();
    let report = server.cli(&["token", "inspect", &token, "--json"]);
    assert_eq!(report["valid"], true);
    assert_eq!(report["format"], "jwt");
    assert_eq!(report["signature"]["valid"], true);
    let claims: Vec<&str> = report["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["claim"]))
        .collect();
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
        assert!(claims.contains(&claim), "{claim} not explained");
    }
    let text = server.cli_output(&["token", "inspect", &token]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("VALID"));

    // A tampered token fails verification and the command says why.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let flipped = if parts[2].starts_with("AA") {
        "BB"
    } else {
        "AA"
    };
    parts[2].replace_range(0..2, flipped);
    let out = server.cli_output(&["token", "inspect", &parts.join("."), "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signature"]["valid"], false);

    let (rid, rsecret) = server.client(&[
        "--grant",
        "client_credentials",
        "--token-format",
        "reference",
    ]);
    let reference = s(&server
        .token(&rid, &rsecret, &[("grant_type", "client_credentials")])
        .await["access_token"])
    .to_owned();
    let report = server.cli(&["token", "inspect", &reference, "--json"]);
    assert_eq!(report["format"], "reference");
    assert_eq!(report["claims"]["client_id"], rid.as_str());
}

#[tokio::test]
async fn health_and_the_first_start_message() {
    let server = TestServer::start().await;
    assert_eq!(server.get_json("/health/live").await["status"], "ok");
    assert_eq!(server.get_json("/health/ready").await["status"], "ready");
    let log = server.log();
    assert!(log.contains(&server.issuer), "{log}");
    assert!(log.contains("/.well-known/openid-configuration"), "{log}");
    assert!(
        log.contains("client create --name demo --grant client_credentials"),
        "{log}"
    );
    assert!(log.contains("token inspect"), "{log}");
    let r = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_plain_http_issuer_off_loopback_is_refused() {
    let server = TestServer::start().await;
    let out = server
        .command()
        .env("TESSERA_ISSUER", "http://auth.example.com")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));
}

#[tokio::test]
async fn logs_are_coloured_only_on_a_terminal() {
    let server = TestServer::start().await;
    // The server's stderr goes to a file.
    let log = server.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "colour codes in a log file: {log:?}"
    );

    // A command logs its database queries at debug level; its stderr is a
    // pipe here.
    let out = server
        .command()
        .env("RUST_LOG", "debug")
        .args(["client", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in a pipe: {stderr:?}"
    );

    // On a terminal the same lines are coloured, unless NO_COLOR says otherwise.
    let Some(mut terminal) = server.in_terminal(&["client", "list", "--json"]) else {
        eprintln!("skipped the terminal half: util-linux `script` is not installed");
        return;
    };
    for (no_colour, coloured) in [(None, true), (Some("1"), false)] {
        terminal.env("RUST_LOG", "debug").env_remove("NO_COLOR");
        if let Some(value) = no_colour {
            terminal.env("NO_COLOR", value);
        }
        let out = terminal.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success());
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(screen.contains("DEBUG"), "{screen}");
        assert_eq!(screen.contains("\x1b["), coloured, "{screen:?}");
    }
}

//! Delegation over HTTP: token exchange (RFC 8693), on-behalf-of and JWT
//! bearer assertions (RFC 7523). The assertions and foreign tokens are made
//! by PyJWT (`tests/outside/jwt_tool.py`), not by Tessera's code; those tests
//! need `TESSERA_TEST_PYTHON` (set by `scripts/test`) and skip without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{TempDir, TestServer, decode_jwt, python_json};
use crate::web::{PASSWORD, create_user};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ORDERS: &str = "https://orders.example";
const INVENTORY: &str = "https://inventory.example";
const BILLING: &str = "https://billing.example";

/// A server with three APIs, a person, an app people sign in to, and
/// services that trade tokens.
struct World {
    server: TestServer,
    alice: String,
    /// A public-facing app with the password grant: the simplest way to get
    /// a person's token here.
    app: (String, String),
}

impl World {
    async fn new() -> World {
        let server = TestServer::start().await;
        for (audience, scope, accepts) in [
            (ORDERS, "orders.read orders.write", "both"),
            (INVENTORY, "inventory.read inventory.write", "both"),
            (BILLING, "billing.run", "app"),
        ] {
            server.cli(&[
                "resource",
                "create",
                "--audience",
                audience,
                "--scope",
                scope,
                "--accepts",
                accepts,
                "--json",
            ]);
        }
        let alice = create_user(&server, "alice", Some("alice@example.com"), None);
        let app = server.client(&[
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--scope",
            "openid orders.read orders.write",
            "--audience",
            ORDERS,
        ]);
        World { server, alice, app }
    }

    /// Alice's tokens from the app: access, refresh and ID token.
    async fn alice_tokens(&self, scope: &str) -> Value {
        let (status, body) = self
            .server
            .token_response(
                &self.app.0,
                &self.app.1,
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("scope", scope),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A service allowed token exchange, for the orders and inventory APIs.
    fn service(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "--grant",
            "token-exchange",
            "--scope",
            "orders.read inventory.read billing.run",
            "--audience",
            ORDERS,
            "--audience",
            INVENTORY,
            "--audience",
            BILLING,
        ];
        args.extend_from_slice(extra);
        self.server.client(&args)
    }

    async fn exchange(
        &self,
        service: &(String, String),
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, Value) {
        let mut full = vec![("grant_type", TOKEN_EXCHANGE)];
        full.extend_from_slice(form);
        self.server
            .token_response(&service.0, &service.1, &full)
            .await
    }
}

fn refused(status: reqwest::StatusCode, body: &Value, code: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], code, "{body}");
}

#[tokio::test]
async fn token_exchange_delegates_and_nests_the_actor_chain_over_three_hops() {
    let world = World::new().await;
    let alice = world.alice_tokens("orders.read").await;
    let first = world.service(&[]);
    let second = world.service(&[]);
    let third = world.service(&[]);

    let (status, one) = world
        .exchange(
            &first,
            &[
                ("subject_token", alice["access_token"].as_str().unwrap()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", INVENTORY),
            ],
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(one["token_type"], "Bearer");
    assert!(one.get("refresh_token").is_none(), "{one}");
    let (_, claims) = decode_jwt(one["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    assert_eq!(claims["aud"], INVENTORY);
    assert_eq!(claims["client_id"], first.0.as_str());
    assert_eq!(claims["act"], json!({ "sub": first.0 }));
    // Narrowed to what the subject token carried: inventory.read is the
    // service's, but alice's token had only orders.read, and no scope of
    // the inventory API.
    assert_eq!(claims.get("scope"), None, "{claims}");

    let (status, two) = world
        .exchange(
            &second,
            &[
                ("subject_token", one["access_token"].as_str().unwrap()),
                ("subject_token_type", ACCESS_TOKEN),
                ("resource", ORDERS),
            ],
        )
        .await;
    assert_eq!(status, 200, "{two}");
    let (status, three) = world
        .exchange(
            &third,
            &[
                ("subject_token", two["access_token"].as_str().unwrap()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", INVENTORY),
            ],
        )
        .await;
    assert_eq!(status, 200, "{three}");
    let (_, claims) = decode_jwt(three["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    // RFC 8693 §4.1: the current actor outermost, earlier actors inside.
    assert_eq!(
        claims["act"],
        json!({ "sub": third.0, "act": { "sub": second.0, "act": { "sub": first.0 } } })
    );
    // Introspection shows the chain.
    let seen = world
        .server
        .introspect(&third.0, &third.1, three["access_token"].as_str().unwrap())
        .await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["act"], claims["act"]);
}

#[tokio::test]
async fn token_exchange_narrows_scope_and_audience_and_refuses_others() {
    let world = World::new().await;
    let alice = world.alice_tokens("orders.read orders.write").await;
    let token = alice["access_token"].as_str().unwrap();
    let service = world.service(&[]);
    let subject = [
        ("subject_token", token),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut form = subject.to_vec();
        form.extend_from_slice(extra);
        form
    };

    // Narrowing is fine.
    let (status, body) = world
        .exchange(
            &service,
            &with(&[("audience", ORDERS), ("scope", "orders.read")]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "orders.read");
    // Without scope: the subject's, within what the service may have.
    let (status, body) = world
        .exchange(&service, &with(&[("audience", ORDERS)]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "orders.read");

    // orders.write is alice's but not the service's; inventory.read is the
    // service's but not alice's.
    let (status, body) = world
        .exchange(
            &service,
            &with(&[("audience", ORDERS), ("scope", "orders.write")]),
        )
        .await;
    refused(status, &body, "invalid_scope");
    let (status, body) = world
        .exchange(
            &service,
            &with(&[("audience", INVENTORY), ("scope", "inventory.read")]),
        )
        .await;
    refused(status, &body, "invalid_scope");
    // An audience the service may not ask for, and one nobody registered.
    let (status, body) = world
        .exchange(&service, &with(&[("audience", "https://payroll.example")]))
        .await;
    refused(status, &body, "invalid_target");
    let outsider = world.server.client(&[
        "--grant",
        "token-exchange",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let (status, body) = world
        .exchange(&outsider, &with(&[("audience", INVENTORY)]))
        .await;
    refused(status, &body, "invalid_target");
    // A resource that accepts only app tokens refuses alice's.
    let (status, body) = world
        .exchange(&service, &with(&[("audience", BILLING)]))
        .await;
    refused(status, &body, "invalid_target");

    // A client not allowed the grant.
    let (status, body) = world
        .exchange(&world.app, &with(&[("audience", ORDERS)]))
        .await;
    refused(status, &body, "unauthorized_client");
}

#[tokio::test]
async fn token_exchange_checks_the_kind_and_life_of_the_subject_token() {
    let world = World::new().await;
    let alice = world.alice_tokens("openid orders.read").await;
    let access = alice["access_token"].as_str().unwrap();
    let refresh = alice["refresh_token"].as_str().unwrap();
    let id_token = alice["id_token"].as_str().unwrap();
    let service = world.service(&[]);
    let attempt = |token: &'static str, kind: &'static str| {
        vec![
            ("subject_token", token),
            ("subject_token_type", kind),
            ("audience", ORDERS),
        ]
    };
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let (access, refresh, id_token) = (leak(access), leak(refresh), leak(id_token));

    // RFC 8693 §2.2.2: an unacceptable subject token is invalid_request.
    // Type confusion is decided by typ: a refresh or ID token is no access token.
    for (token, kind, why) in [
        (refresh, ACCESS_TOKEN, "a refresh token"),
        (id_token, ACCESS_TOKEN, "an ID token"),
        (access, ID_TOKEN, "an access token as an ID token"),
        (refresh, REFRESH_TOKEN, "refresh tokens are not exchanged"),
        (access, "urn:example:unknown", "an unknown type"),
        (access, JWT, "our own token as a foreign JWT"),
    ] {
        let (status, body) = world.exchange(&service, &attempt(token, kind)).await;
        refused(status, &body, "invalid_request");
        assert!(body["error_description"].is_string(), "{why}: {body}");
    }
    // Tampered after signing: the payload changed, the signature kept.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let (_, mut claims) = decode_jwt(access);
    claims["scope"] = "orders.read orders.write".into();
    parts[1] = base64_url(&serde_json::to_vec(&claims).unwrap());
    let tampered = leak(&parts.join("."));
    let (status, body) = world
        .exchange(&service, &attempt(tampered, ACCESS_TOKEN))
        .await;
    refused(status, &body, "invalid_request");
    // alg none, with the same claims.
    let unsigned = leak(&format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"at+jwt"}"#),
        base64_url(&serde_json::to_vec(&claims).unwrap())
    ));
    let (status, body) = world
        .exchange(&service, &attempt(unsigned, ACCESS_TOKEN))
        .await;
    refused(status, &body, "invalid_request");
    // An ID token issued to another client is not this one's to trade.
    let (status, body) = world.exchange(&service, &attempt(id_token, ID_TOKEN)).await;
    refused(status, &body, "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{body}"
    );

    // The real thing works, until it is revoked.
    let (status, body) = world
        .exchange(&service, &attempt(access, ACCESS_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = world
        .server
        .post_form(
            "/oauth2/revoke",
            &world.app.0,
            &world.app.1,
            &[("token", access)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = world
        .exchange(&service, &attempt(access, ACCESS_TOKEN))
        .await;
    refused(status, &body, "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );

    // requested_token_type: a JWT, but never a refresh token.
    let fresh = world.alice_tokens("orders.read").await;
    let fresh_access = leak(fresh["access_token"].as_str().unwrap());
    let mut form = attempt(fresh_access, ACCESS_TOKEN);
    form.push(("requested_token_type", JWT));
    let (status, body) = world.exchange(&service, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], JWT);
    let mut form = attempt(fresh_access, ACCESS_TOKEN);
    form.push(("requested_token_type", REFRESH_TOKEN));
    let (status, body) = world.exchange(&service, &form).await;
    refused(status, &body, "invalid_request");
    // An actor token without its type.
    let mut form = attempt(fresh_access, ACCESS_TOKEN);
    form.push(("actor_token", fresh_access));
    let (status, body) = world.exchange(&service, &form).await;
    refused(status, &body, "invalid_request");
}

#[tokio::test]
async fn impersonation_is_only_for_clients_registered_for_it() {
    let world = World::new().await;
    let alice = world.alice_tokens("orders.read").await;
    let token = alice["access_token"].as_str().unwrap();
    let delegate = world.service(&[]);
    let impersonator = world.service(&["--impersonation"]);
    let form = [
        ("subject_token", token),
        ("subject_token_type", ACCESS_TOKEN),
        ("audience", ORDERS),
    ];
    let (status, body) = world.exchange(&delegate, &form).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["act"]["sub"], delegate.0.as_str());

    let (status, body) = world.exchange(&impersonator, &form).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    assert!(claims.get("act").is_none(), "{claims}");

    // With an actor token, even the impersonator delegates: the actor is the
    // actor token's subject (here an app token of another service).
    let worker = world.server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let app_token = world
        .server
        .token(
            &worker.0,
            &worker.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    let mut with_actor = form.to_vec();
    with_actor.push(("actor_token", app_token["access_token"].as_str().unwrap()));
    with_actor.push(("actor_token_type", ACCESS_TOKEN));
    let (status, body) = world.exchange(&impersonator, &with_actor).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["act"], json!({ "sub": worker.0 }));

    // And the setting is refused where it means nothing.
    let out = world.server.cli_output(&[
        "client",
        "create",
        "--name",
        "x",
        "--grant",
        "client_credentials",
        "--impersonation",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token-exchange"));
}

#[tokio::test]
async fn an_app_token_exchanged_keeps_the_app_as_subject() {
    let world = World::new().await;
    let worker = world.server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "billing.run",
        "--audience",
        BILLING,
    ]);
    let app_token = world
        .server
        .token(
            &worker.0,
            &worker.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    let service = world.service(&[]);
    let (status, body) = world
        .exchange(
            &service,
            &[
                ("subject_token", app_token["access_token"].as_str().unwrap()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", BILLING),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], worker.0.as_str());
    assert_eq!(claims["client_id"], service.0.as_str());
    assert_eq!(claims["act"], json!({ "sub": service.0 }));
    assert_eq!(claims["scope"], "billing.run");
}

#[tokio::test]
async fn on_behalf_of_takes_a_persons_token_for_the_calling_service() {
    let world = World::new().await;
    let alice = world.alice_tokens("openid orders.read").await;
    // The orders service: serves the orders API, calls inventory for users.
    let orders = world.server.client(&[
        "--grant",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "--scope",
        "inventory.read",
        "--audience",
        INVENTORY,
        "--serves",
        ORDERS,
    ]);
    let obo = |assertion: &str| {
        vec![
            ("grant_type", JWT_BEARER.to_owned()),
            ("requested_token_use", "on_behalf_of".to_owned()),
            ("assertion", assertion.to_owned()),
            ("scope", "inventory.read".to_owned()),
        ]
    };
    let call = |client: (String, String), form: Vec<(&'static str, String)>| {
        let server = &world.server;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.token_response(&client.0, &client.1, &form).await
        }
    };

    let (status, body) = call(orders.clone(), obo(alice["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    assert_eq!(claims["azp"], orders.0.as_str());
    assert_eq!(claims["act"], json!({ "sub": orders.0 }));
    assert_eq!(claims["aud"], INVENTORY);
    assert_eq!(claims["scope"], "inventory.read");
    assert!(claims["auth_time"].is_i64());

    // Refused: an ID token, a refresh token, an app token, and a person's
    // token for an API the service does not serve.
    for (token, why) in [
        (
            alice["id_token"].as_str().unwrap().to_owned(),
            "an ID token",
        ),
        (
            alice["refresh_token"].as_str().unwrap().to_owned(),
            "a refresh token",
        ),
    ] {
        let (status, body) = call(orders.clone(), obo(&token)).await;
        refused(status, &body, "invalid_grant");
        assert!(body["error_description"].is_string(), "{why}");
    }
    let worker = world.server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let app_token = world
        .server
        .token(
            &worker.0,
            &worker.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    let (status, body) = call(
        orders.clone(),
        obo(app_token["access_token"].as_str().unwrap()),
    )
    .await;
    refused(status, &body, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("application"),
        "{body}"
    );
    let stranger = world.server.client(&[
        "--grant",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "--scope",
        "inventory.read",
        "--audience",
        INVENTORY,
    ]);
    let (status, body) = call(stranger, obo(alice["access_token"].as_str().unwrap())).await;
    refused(status, &body, "invalid_grant");
    // A client not allowed the grant.
    let (status, body) = call(
        world.app.clone(),
        obo(alice["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(body["error"], "unauthorized_client", "{status} {body}");
}

// ---------------------------------------------------------------------------
// Assertions and foreign tokens made by PyJWT.
// ---------------------------------------------------------------------------

/// Runs `jwt_tool.py` (PyJWT) with `request`; returns its answer.
fn pyjwt(python: &str, request: &Value) -> Value {
    python_json(python, "jwt_tool.py", request)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

const IDP: &str = "https://idp.example";
const OTHER_IDP: &str = "https://other-idp.example";

#[tokio::test]
async fn jwt_bearer_assertions_from_trusted_issuers() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let world = World::new().await;
    let server = &world.server;
    let t = now();
    let aud = server.issuer.clone();
    let token_endpoint = format!("{}/oauth2/token", server.issuer.trim_end_matches('/'));
    let good = |jti: &str| json!({ "iss": IDP, "sub": "alice@example.com", "aud": aud, "exp": t + 300, "iat": t, "jti": jti });
    let mut tokens = vec![
        json!({ "key": "idp", "claims": good("one") }),
        json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": [token_endpoint], "exp": t + 300, "jti": "two" } }),
    ];
    // Each with what the refusal must say: the same code for all, and the
    // right reason for each.
    let bad: Vec<(&str, Value)> = vec![
        (
            "expired",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": aud, "exp": t - 120, "jti": "e" } }),
        ),
        (
            "no exp",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": aud, "jti": "x" } }),
        ),
        (
            "not yet valid",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": aud, "exp": t + 900, "nbf": t + 600, "jti": "n" } }),
        ),
        (
            "wrong audience",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": "https://elsewhere.example", "exp": t + 300, "jti": "w" } }),
        ),
        (
            "no jti",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "alice", "aud": aud, "exp": t + 300 } }),
        ),
        (
            "no sub",
            json!({ "key": "idp", "claims": { "iss": IDP, "aud": aud, "exp": t + 300, "jti": "s" } }),
        ),
        (
            "unknown user",
            json!({ "key": "idp", "claims": { "iss": IDP, "sub": "mallory", "aud": aud, "exp": t + 300, "jti": "u" } }),
        ),
        ("unsigned", json!({ "alg": "none", "claims": good("none") })),
        (
            "an unknown key",
            json!({ "key": "attacker", "claims": good("k"), "headers": { "kid": "idp-1" } }),
        ),
        (
            "another trusted issuer's key",
            json!({ "key": "other", "claims": good("o") }),
        ),
        (
            "an untrusted issuer",
            json!({ "key": "attacker", "claims": { "iss": "https://attacker.example", "sub": "alice", "aud": aud, "exp": t + 300, "jti": "a" } }),
        ),
        (
            "a key the token brings (jku)",
            json!({ "key": "attacker", "claims": good("j"), "headers": { "kid": "attacker-1", "jku": "http://127.0.0.1:1/jwks.json" } }),
        ),
    ];
    tokens.extend(bad.iter().map(|(_, spec)| spec.clone()));
    let made = pyjwt(
        &python,
        &json!({
            "keys": [
                { "name": "idp", "alg": "ES256", "kid": "idp-1" },
                { "name": "other", "alg": "RS256", "kid": "other-1" },
                { "name": "attacker", "alg": "ES256", "kid": "attacker-1" },
            ],
            "tokens": tokens,
        }),
    );
    let dir = TempDir::new("jwks");
    for (name, issuer) in [("idp", IDP), ("other", OTHER_IDP)] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, made["jwks"][name].to_string()).unwrap();
        let out = server.cli(&[
            "issuer",
            "add",
            "--issuer",
            issuer,
            "--jwks",
            path.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(out["issuer"], issuer);
    }
    let listed = server.cli(&["issuer", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let client = server.client(&[
        "--grant",
        "jwt-bearer",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let assert_with = |assertion: &str| {
        let assertion = assertion.to_owned();
        let client = client.clone();
        async move {
            server
                .token_response(
                    &client.0,
                    &client.1,
                    &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
                )
                .await
        }
    };
    let token = |i: usize| made["tokens"][i].as_str().unwrap().to_owned();

    let (status, body) = assert_with(&token(0)).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str(), "mapped by email");
    assert_eq!(claims["aud"], ORDERS);
    assert_eq!(claims["scope"], "orders.read");
    assert!(body.get("refresh_token").is_none());
    // Accepted once (RFC 7523 §3 item 7).
    let (status, body) = assert_with(&token(0)).await;
    refused(status, &body, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );
    // The token endpoint URL as audience, the username as subject.
    let (status, body) = assert_with(&token(1)).await;
    assert_eq!(status, 200, "{body}");

    let expected = [
        "expired",
        "no exp",
        "not valid yet",
        "aud",
        "no jti",
        "no sub",
        "no user",
        "not a usable signed JWT",
        "signature does not verify",
        "no RS256 key",
        "not trusted",
        "no ES256 key",
    ];
    for (i, (why, _)) in bad.iter().enumerate() {
        let (status, body) = assert_with(&token(i + 2)).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(expected[i]), "{why}: {description}");
    }

    // Tampered after signing.
    let original = token(0);
    let mut parts: Vec<&str> = original.split('.').collect();
    let mut claims = good("tampered");
    claims["sub"] = "bob".into();
    let payload = base64_url(&serde_json::to_vec(&claims).unwrap());
    parts[1] = &payload;
    let (status, body) = assert_with(&parts.join(".")).await;
    refused(status, &body, "invalid_grant");

    // Removing the issuer ends its assertions at once.
    server.cli(&["issuer", "remove", "--issuer", IDP, "--json"]);
    crate::common::catalog_settles().await;
    let (status, body) = assert_with(&token(1)).await;
    refused(status, &body, "invalid_grant");
}

#[tokio::test]
async fn concurrent_uses_of_one_assertion_succeed_once() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let world = World::new().await;
    let server = &world.server;
    let t = now();
    let made = pyjwt(
        &python,
        &json!({
            "keys": [{ "name": "idp", "alg": "ES256", "kid": "idp-1" }],
            "tokens": [{ "key": "idp", "claims": {
                "iss": IDP, "sub": "alice", "aud": server.issuer, "exp": t + 300, "jti": "race"
            } }],
        }),
    );
    let dir = TempDir::new("jwks");
    let path = dir.path().join("idp.json");
    std::fs::write(&path, made["jwks"]["idp"].to_string()).unwrap();
    server.cli(&[
        "issuer",
        "add",
        "--issuer",
        IDP,
        "--jwks",
        path.to_str().unwrap(),
        "--json",
    ]);
    let client = server.client(&[
        "--grant",
        "jwt-bearer",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let assertion = made["tokens"][0].as_str().unwrap().to_owned();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = server
            .http
            .post(server.url("/oauth2/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = attempts.join_all().await;
    let accepted = statuses.iter().filter(|s| s.is_success()).count();
    assert_eq!(accepted, 1, "{statuses:?}");
}

#[tokio::test]
async fn token_exchange_takes_tokens_of_a_trusted_issuer_published_at_a_jwks_uri() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let world = World::new().await;
    let server = &world.server;
    let t = now();
    let made = pyjwt(
        &python,
        &json!({
            "keys": [{ "name": "idp", "alg": "RS256", "kid": "idp-rsa" }],
            "tokens": [
                { "key": "idp", "claims": {
                    "iss": IDP, "sub": "alice", "aud": "https://some-api.example", "exp": t + 300,
                    "scope": "orders.read", "act": { "sub": "gateway" }
                } },
                { "key": "idp", "claims": { "iss": IDP, "sub": "alice", "exp": t - 100 } },
            ],
        }),
    );
    // The issuer publishes its keys over HTTP.
    let jwks = made["jwks"]["idp"].clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let key_server = tokio::spawn(async move { axum::serve(listener, app).await });
    server.cli(&[
        "issuer",
        "add",
        "--issuer",
        IDP,
        "--jwks-uri",
        &jwks_uri,
        "--json",
    ]);

    let service = world.service(&[]);
    let foreign = made["tokens"][0].as_str().unwrap();
    let (status, body) = world
        .exchange(
            &service,
            &[
                ("subject_token", foreign),
                ("subject_token_type", JWT),
                ("audience", ORDERS),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    assert_eq!(claims["scope"], "orders.read");
    // The foreign token's own chain, signed by its issuer, nests inside.
    assert_eq!(
        claims["act"],
        json!({ "sub": service.0, "act": { "sub": "gateway" } })
    );

    let (status, body) = world
        .exchange(
            &service,
            &[
                ("subject_token", made["tokens"][1].as_str().unwrap()),
                ("subject_token_type", JWT),
                ("audience", ORDERS),
            ],
        )
        .await;
    refused(status, &body, "invalid_request");
    key_server.abort();
}

#[tokio::test]
async fn authlib_does_a_token_exchange_end_to_end() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let world = World::new().await;
    let alice = world.alice_tokens("orders.read").await;
    let service = world.service(&[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outside/token_exchange.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("--issuer={}", world.server.issuer))
        .arg(format!("--client-id={}", service.0))
        .arg(format!("--audience={INVENTORY}"))
        .arg(format!("--expect-sub={}", world.alice))
        .env("TESSERA_CLIENT_SECRET", &service.1)
        .env(
            "TESSERA_SUBJECT_TOKEN",
            alice["access_token"].as_str().unwrap(),
        )
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "token_exchange.py failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        world.server.log()
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(summary["act"]["sub"], service.0.as_str());
    assert_eq!(summary["aud"], INVENTORY);
}

/// A child process stopped (killed and reaped) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example service on a free port; returns it and its base URL
/// once it answers.
async fn start_example(name: &str, args: &[&str]) -> (Running, String) {
    let port = crate::common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(crate::common::example(name))
        .args(args)
        .args(["--listen", &listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let running = Running(child);
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Any answer (a 401 for no token) means it listens.
    while http.get(format!("{base}/")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (running, base)
}

#[tokio::test]
async fn the_orders_example_calls_inventory_on_behalf_of_the_user() {
    let world = World::new().await;
    let issuer = world.server.issuer.clone();
    let orders_service = world.server.client(&[
        "--grant",
        "jwt-bearer",
        "--scope",
        "inventory.read",
        "--audience",
        INVENTORY,
        "--serves",
        ORDERS,
    ]);
    let (_inventory, inventory_url) =
        start_example("inventory", &["--issuer", &issuer, "--audience", INVENTORY]).await;
    let (_orders, orders_url) = start_example(
        "orders",
        &[
            "--issuer",
            &issuer,
            "--audience",
            ORDERS,
            "--client-id",
            &orders_service.0,
            "--client-secret",
            &orders_service.1,
            "--inventory-url",
            &inventory_url,
        ],
    )
    .await;
    let alice = world.alice_tokens("orders.read").await;
    let answer: Value = reqwest::Client::new()
        .get(format!("{orders_url}/orders"))
        .bearer_auth(alice["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["subject"], world.alice.as_str(), "{answer}");
    let stock = &answer["stock"];
    // Inventory saw alice, reached through the orders service.
    assert_eq!(stock["subject"], world.alice.as_str(), "{answer}");
    assert_eq!(stock["client_id"], orders_service.0.as_str(), "{answer}");
    assert_eq!(stock["acting"], json!([orders_service.0]), "{answer}");
    assert!(stock["stock"].is_array(), "{answer}");
}

const SAML_IDP: &str = "https://idp.example/saml";

/// Runs `saml_tool.py`: the IdP's certificate goes to `cert_out`, and the
/// assertions come back base64url-encoded.
fn signxml(
    python: &str,
    server: &TestServer,
    cert_out: &std::path::Path,
    specs: Value,
) -> Vec<String> {
    let request = json!({
        "cert_out": cert_out,
        "issuer": SAML_IDP,
        "audience": server.issuer,
        "recipient": format!("{}/oauth2/token", server.issuer.trim_end_matches('/')),
        "assertions": specs,
    });
    let answer = python_json(python, "saml_tool.py", &request);
    answer["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn saml2_bearer_assertions_signed_by_a_configured_identity_provider() {
    let Some(python) = crate::common::python() else {
        return;
    };
    let world = World::new().await;
    let server = &world.server;
    let dir = TempDir::new("saml");
    let cert = dir.path().join("idp.pem");
    let assertions = signxml(
        &python,
        server,
        &cert,
        json!([
            { "name_id": "alice@example.com", "id": "_good" },
            { "name_id": "alice", "id": "_wrapped", "wrap": true },
            { "name_id": "alice", "id": "_tampered", "tamper": true },
            { "name_id": "alice", "id": "_unsigned", "sign": false },
            { "name_id": "nobody", "id": "_unknown_user" },
            { "name_id": "alice", "id": "_expired", "lifetime": -120 },
        ]),
    );
    // Not trusted yet.
    let client = server.client(&[
        "--grant",
        "saml2-bearer",
        "--scope",
        "orders.read",
        "--audience",
        ORDERS,
    ]);
    let present = |assertion: &str| {
        let assertion = assertion.to_owned();
        let client = client.clone();
        async move {
            server
                .token_response(
                    &client.0,
                    &client.1,
                    &[
                        (
                            "grant_type",
                            "urn:ietf:params:oauth:grant-type:saml2-bearer",
                        ),
                        ("assertion", &assertion),
                    ],
                )
                .await
        }
    };
    let (status, body) = present(&assertions[0]).await;
    refused(status, &body, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{body}"
    );

    let added = server.cli(&[
        "saml-idp",
        "add",
        "--entity-id",
        SAML_IDP,
        "--certificate",
        cert.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(added["entity_id"], SAML_IDP);
    assert_eq!(added["key_algorithm"], "RSA");
    // Refused a moment ago, which the server remembers until it sees the change.
    crate::common::catalog_settles().await;

    let (status, body) = present(&assertions[0]).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], world.alice.as_str());
    assert_eq!(claims["aud"], ORDERS);
    assert!(body.get("refresh_token").is_none());
    // Each assertion ID is accepted once.
    let (status, body) = present(&assertions[0]).await;
    refused(status, &body, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );

    for (assertion, (why, expected)) in assertions[1..].iter().zip([
        ("wrapped", "more than one assertion"),
        ("tampered", "changed after it was signed"),
        ("unsigned", "not signed"),
        ("unknown user", "no user"),
        ("expired", "expired"),
    ]) {
        let (status, body) = present(assertion).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(expected), "{why}: {description}");
    }

    // Discovery lists the grant, with the others that work.
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    let grants: Vec<&str> = metadata["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for grant in [
        TOKEN_EXCHANGE,
        JWT_BEARER,
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
    ] {
        assert!(grants.contains(&grant), "{grant} in {grants:?}");
    }

    server.cli(&["saml-idp", "remove", "--entity-id", SAML_IDP, "--json"]);
    crate::common::catalog_settles().await;
    let fresh = signxml(
        &python,
        server,
        &dir.path().join("again.pem"),
        json!([{ "name_id": "alice", "id": "_later" }]),
    );
    let (status, body) = present(&fresh[0]).await;
    refused(status, &body, "invalid_grant");
}

//! Client authentication with JWTs (RFC 7523 §2.2 and §3, OIDC Core §9)
//! against the real server: `private_key_jwt` with every algorithm and
//! `client_secret_jwt`, at the token, introspection and revocation endpoints;
//! keys at a `jwks_uri`; and the assertions that must be refused, each for
//! the reason the server logs.
//!
//! The assertions are made by PyJWT (`tests/outside/client_assertion.py`),
//! not by Tessera's own JOSE code. Those tests need `TESSERA_TEST_PYTHON`
//! (set by `scripts/test`) and skip themselves without it; the command-line
//! test signs with `tessera-jose` and always runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::crypto::random_id;
use tessera_jose::{Algorithm, SigningKey};

use crate::common::{TempDir, TestServer, decode_jwt};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// --- PyJWT, through tests/outside/client_assertion.py ----------------------

struct Signer {
    python: String,
    dir: TempDir,
}

/// A private key PyJWT made, and where it is.
#[derive(Debug, Clone)]
struct Key {
    kid: String,
    alg: String,
    path: String,
}

impl Signer {
    fn new() -> Option<Signer> {
        match std::env::var("TESSERA_TEST_PYTHON") {
            Ok(python) if !python.is_empty() => Some(Signer {
                python,
                dir: TempDir::new("assertions"),
            }),
            _ => {
                eprintln!("skipped: TESSERA_TEST_PYTHON not set (scripts/test sets it)");
                None
            }
        }
    }

    fn run(&self, args: &[&str]) -> Value {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outside/client_assertion.py");
        let out = Command::new(&self.python)
            .arg(script)
            .args(args)
            .output()
            .expect("run the Python signer");
        assert!(
            out.status.success(),
            "client_assertion.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from client_assertion.py")
    }

    /// One key per algorithm; the public JWK Set and the private keys.
    fn keys(&self, algs: &[&str], flags: &[&str]) -> (Value, Vec<Key>) {
        let out_dir = self.dir.path().join(random_id());
        let mut args = vec!["keys", "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend_from_slice(algs);
        let out = self.run(&args);
        let keys = out["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| Key {
                kid: k["kid"].as_str().unwrap().to_owned(),
                alg: k["alg"].as_str().unwrap().to_owned(),
                path: k["path"].as_str().unwrap().to_owned(),
            })
            .collect();
        (out["jwks"].clone(), keys)
    }

    /// Signs every spec (see the script's usage), in order.
    fn sign(&self, specs: &[Value]) -> Vec<String> {
        let spec_file = self.dir.path().join(format!("{}.json", random_id()));
        std::fs::write(&spec_file, Value::from(specs.to_vec()).to_string()).unwrap();
        let out = self.run(&["sign", spec_file.to_str().unwrap()]);
        out.as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a client library puts in an assertion: `iss` = `sub` = the client.
fn claims(client_id: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now, "exp": now + 120, "jti": random_id(),
    })
}

/// An assertion signed with `key`, naming it by `kid`.
fn with_key(key: &Key, claims: Value) -> Value {
    json!({"alg": key.alg, "key": key.path, "headers": {"kid": key.kid}, "claims": claims})
}

fn with_secret(secret: &str, claims: Value) -> Value {
    json!({"alg": "HS256", "secret": secret, "claims": claims})
}

// --- HTTP --------------------------------------------------------------------

/// POSTs `form` with a client assertion and no other credentials.
async fn post_assertion(
    server: &TestServer,
    path: &str,
    assertion: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut all = vec![
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    all.extend_from_slice(form);
    post(server, path, &all).await
}

async fn post(server: &TestServer, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = server
        .http
        .post(server.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    if status == StatusCode::UNAUTHORIZED {
        assert!(
            r.headers().contains_key("www-authenticate"),
            "a 401 carries a challenge"
        );
    }
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A client credentials token through an assertion, then introspected,
/// revoked and introspected again, each with its own assertion: the four
/// assertions are for the token, introspection, revocation and second
/// introspection requests.
async fn full_round(server: &TestServer, client_id: &str, assertions: &[String]) {
    let [token, introspect, revoke, after] = assertions else {
        panic!("four assertions")
    };
    let (status, body) = post_assertion(
        server,
        "/oauth2/token",
        token,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", server.log());
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(decode_jwt(&access_token).1["client_id"], client_id);

    // client_id beside the assertion is optional (RFC 7521 §4.2) and, when
    // sent, names the same client.
    let (status, body) = post_assertion(
        server,
        "/oauth2/introspect",
        introspect,
        &[("token", &access_token), ("client_id", client_id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], client_id);

    let (status, body) = post_assertion(
        server,
        "/oauth2/revoke",
        revoke,
        &[("token", &access_token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = post_assertion(
        server,
        "/oauth2/introspect",
        after,
        &[("token", &access_token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false, "revoked: {body}");
}

/// The four assertions of [`full_round`], with both accepted `aud` values:
/// the token endpoint URL and the issuer, at every endpoint.
fn round_claims(server: &TestServer, client_id: &str) -> [Value; 4] {
    [
        claims(client_id, &server.url("/oauth2/token")),
        claims(client_id, &server.issuer),
        claims(client_id, &server.url("/oauth2/token")),
        claims(client_id, &server.issuer),
    ]
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn register_keyed(server: &TestServer, id: &str, jwks: &Value) {
    let file = write_json(server.dir.path(), &format!("{id}.jwks.json"), jwks);
    let out = server.cli(&[
        "client",
        "create",
        "--name",
        id,
        "--id",
        id,
        "--grant",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        &file,
        "--json",
    ]);
    assert_eq!(out["client_id"], id);
    assert!(out.get("client_secret").is_none(), "no secret: {out}");
}

// --- the tests ---------------------------------------------------------------

#[tokio::test]
async fn private_key_jwt_works_with_every_algorithm_at_every_endpoint() {
    let Some(signer) = Signer::new() else { return };
    let server = TestServer::start().await;
    let (jwks, keys) = signer.keys(&["RS256", "PS256", "ES256", "EdDSA"], &[]);
    register_keyed(&server, "keyed", &jwks);
    let specs: Vec<Value> = keys
        .iter()
        .flat_map(|key| round_claims(&server, "keyed").map(|c| with_key(key, c)))
        .collect();
    let assertions = signer.sign(&specs);
    for (key, round) in keys.iter().zip(assertions.chunks(4)) {
        eprintln!("{}", key.alg);
        full_round(&server, "keyed", round).await;
    }

    // Keys registered as many tools write them, without alg and kid: an RSA
    // key then serves PS256 as well as RS256.
    let (bare_jwks, bare_keys) = signer.keys(&["RS256", "EdDSA"], &["--no-alg", "--no-kid"]);
    register_keyed(&server, "bare-keys", &bare_jwks);
    let rsa_as_pss = Key {
        alg: "PS256".into(),
        ..bare_keys[0].clone()
    };
    let specs: Vec<Value> = [&rsa_as_pss, &bare_keys[1]]
        .iter()
        .map(|key| {
            json!({"alg": key.alg, "key": key.path,
                   "claims": claims("bare-keys", &server.url("/oauth2/token"))})
        })
        .collect();
    for assertion in signer.sign(&specs) {
        let (status, body) = post_assertion(
            &server,
            "/oauth2/token",
            &assertion,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn client_secret_jwt_works_at_every_endpoint_and_follows_a_rotation() {
    let Some(signer) = Signer::new() else { return };
    let server = TestServer::start().await;
    let (id, secret) = server.client(&[
        "--grant",
        "client_credentials",
        "--auth-method",
        "client_secret_jwt",
    ]);
    assert_eq!(secret.len(), 43);
    let show = server.cli(&["client", "show", &id, "--json"]);
    assert_eq!(show["auth_method"], "client_secret_jwt");
    assert_eq!(show["type"], "confidential");

    let specs: Vec<Value> = round_claims(&server, &id)
        .into_iter()
        .map(|c| with_secret(&secret, c))
        .collect();
    full_round(&server, &id, &signer.sign(&specs)).await;

    // The secret itself is no password for this client.
    let (status, body) = server
        .token_response(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = post(
        &server,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Kept sealed, never in clear, in the database and its write-ahead log.
    for file in ["tessera.db", "tessera.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.dir.path().join(file)) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is in {file} in clear"
            );
        }
    }

    // rotate-secret changes the digest and the sealed copy together.
    let rotated = server.cli(&["client", "rotate-secret", &id, "--json"]);
    crate::common::catalog_settles().await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let token_url = server.url("/oauth2/token");
    let assertions = signer.sign(&[
        with_secret(&secret, claims(&id, &token_url)),
        with_secret(&new_secret, claims(&id, &token_url)),
    ]);
    let form = [("grant_type", "client_credentials")];
    let (status, _) = post_assertion(&server, "/oauth2/token", &assertions[0], &form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old secret is gone");
    let (status, body) = post_assertion(&server, "/oauth2/token", &assertions[1], &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn assertions_that_must_be_refused_are() {
    let Some(signer) = Signer::new() else { return };
    let server =
        TestServer::start_with(&[("RUST_LOG", "info,tessera_core::client_auth=debug")]).await;
    // Alice's key, Bob's key, and one nobody registered.
    let (jwks, keys) = signer.keys(&["ES256", "RS256", "ES256"], &[]);
    let [alice_key, bob_key, stray_key] = [&keys[0], &keys[1], &keys[2]];
    let set_of = |i: usize| json!({"keys": [jwks["keys"][i].clone()]});
    register_keyed(&server, "alice", &set_of(0));
    register_keyed(&server, "bob", &set_of(1));
    let (carol, _) = server.client(&["--grant", "client_credentials"]);
    let token_url = server.url("/oauth2/token");
    let good = || claims("alice", &token_url);
    let changed = |change: &dyn Fn(&mut Value)| {
        let mut c = good();
        change(&mut c);
        c
    };

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong aud",
            with_key(
                alice_key,
                changed(&|c| c["aud"] = json!("https://elsewhere.example/oauth2/token")),
            ),
            "aud does not name this server",
        ),
        (
            "aud naming another of our endpoints",
            with_key(
                alice_key,
                changed(&|c| c["aud"] = json!(server.url("/oauth2/introspect"))),
            ),
            "aud does not name this server",
        ),
        (
            "aud listing another audience beside ours",
            with_key(
                alice_key,
                changed(&|c| {
                    c["aud"] = json!([server.url("/oauth2/token"), "https://else.example"])
                }),
            ),
            "aud does not name this server",
        ),
        (
            "expired",
            with_key(
                alice_key,
                changed(&|c| {
                    c["iat"] = json!(now() - 600);
                    c["exp"] = json!(now() - 300);
                }),
            ),
            "the assertion has expired",
        ),
        (
            "no exp",
            with_key(
                alice_key,
                changed(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            "the assertion has no exp",
        ),
        (
            "no jti",
            with_key(
                alice_key,
                changed(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            "no usable jti",
        ),
        (
            "alg none",
            json!({"none": true, "claims": good(), "headers": {"kid": alice_key.kid}}),
            "algorithm \"none\" is not supported",
        ),
        (
            "HS256 keyed with the public key as PEM",
            json!({"forge": "pem", "alg": "ES256", "key": alice_key.path,
                   "headers": {"kid": alice_key.kid}, "claims": good()}),
            "HS256 is not an algorithm for this client",
        ),
        (
            "HS256 keyed with the public JWK",
            json!({"forge": "jwk", "alg": "ES256", "key": alice_key.path,
                   "headers": {"kid": alice_key.kid}, "claims": good()}),
            "HS256 is not an algorithm for this client",
        ),
        (
            "iss is not sub",
            with_key(alice_key, changed(&|c| c["iss"] = json!("bob"))),
            "iss is not its sub",
        ),
        (
            "signed by another client's key",
            with_key(bob_key, good()),
            "none of the client's keys fits",
        ),
        (
            "an unregistered key under the client's kid",
            with_key(
                &Key {
                    kid: alice_key.kid.clone(),
                    ..stray_key.clone()
                },
                good(),
            ),
            "signature does not verify",
        ),
        (
            "a client_secret_basic client",
            with_key(alice_key, claims(&carol, &token_url)),
            "registered for client_secret_basic or client_secret_post",
        ),
    ];
    let specs: Vec<Value> = cases
        .iter()
        .map(|(_, spec, _)| spec.clone())
        .chain([with_key(alice_key, good())])
        .collect();
    let mut assertions = signer.sign(&specs);
    let valid = assertions.pop().unwrap();
    let form = [("grant_type", "client_credentials")];
    for ((name, _, reason), assertion) in cases.iter().zip(&assertions) {
        let (status, body) = post_assertion(&server, "/oauth2/token", assertion, &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["error"], "invalid_client", "{name}");
        // One public description, whatever the reason.
        assert_eq!(body["error_description"], "client authentication failed");
        assert!(
            server.log().contains(reason),
            "{name}: {reason:?} not logged:\n{}",
            server.log()
        );
    }

    // Replay: the one valid assertion works once.
    let (status, body) = post_assertion(&server, "/oauth2/token", &valid, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) =
        post_assertion(&server, "/oauth2/introspect", &valid, &[("token", "x")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(server.log().contains("the assertion's jti was used before"));

    // And Alice has no secret to use instead.
    for form in [
        vec![("client_id", "alice"), ("client_secret", "anything")],
        vec![("client_id", "alice")],
    ] {
        let mut form = form;
        form.push(("grant_type", "client_credentials"));
        let (status, body) = post(&server, "/oauth2/token", &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{form:?}: {body}");
    }
    assert!(
        server
            .log()
            .contains("the client is registered for private_key_jwt, not client_secret_post")
    );
    assert!(
        server
            .log()
            .contains("the client is registered for private_key_jwt, not none")
    );
}

/// A client's key server: serves a JWK Set that the test can change, and
/// counts the requests.
#[derive(Clone, Default)]
struct KeyServer {
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(&self) -> (String, tokio::task::JoinHandle<()>) {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(state.jwks.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, task)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn jwks_uri_keys_are_cached_and_fetched_again_after_a_rotation() {
    let Some(signer) = Signer::new() else { return };
    let server = TestServer::start().await;
    let (jwks, keys) = signer.keys(&["ES256", "EdDSA"], &[]);
    let key_server = KeyServer::default();
    *key_server.jwks.lock().unwrap() = json!({"keys": [jwks["keys"][0].clone()]});
    let (jwks_uri, task) = key_server.start().await;
    server.cli(&[
        "client",
        "create",
        "--name",
        "remote",
        "--id",
        "remote",
        "--grant",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        &jwks_uri,
        "--json",
    ]);
    let show = server.cli(&["client", "show", "remote", "--json"]);
    assert_eq!(show["jwks_uri"], jwks_uri.as_str());

    let token_url = server.url("/oauth2/token");
    let assertions = signer.sign(&[
        with_key(&keys[0], claims("remote", &token_url)),
        with_key(&keys[0], claims("remote", &token_url)),
        with_key(&keys[1], claims("remote", &token_url)),
        with_key(&keys[0], claims("remote", &token_url)),
    ]);
    let form = [("grant_type", "client_credentials")];
    let token = |i: usize| post_assertion(&server, "/oauth2/token", &assertions[i], &form);

    for i in [0, 1] {
        let (status, body) = token(i).await;
        assert_eq!(status, StatusCode::OK, "{body}\n{}", server.log());
    }
    assert_eq!(key_server.fetches(), 1, "the set is cached");

    // The client rotates to its EdDSA key. Asking again for an unknown kid is
    // limited to once every few seconds...
    *key_server.jwks.lock().unwrap() = json!({"keys": [jwks["keys"][1].clone()]});
    let (status, _) = token(2).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(key_server.fetches(), 1, "not fetched again at once");
    // ...then the new key is fetched and works; the refused assertion did not
    // use up its jti.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let (status, body) = token(2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(key_server.fetches(), 2);
    // The withdrawn key no longer works.
    let (status, _) = token(3).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    task.abort();
}

/// Registration and changes of JWT clients through the CLI; the assertions
/// here are signed with `tessera-jose`, so this test runs without Python.
#[tokio::test]
async fn jwt_clients_are_registered_and_changed_at_the_command_line() {
    let server = TestServer::start().await;
    let dir = server.dir.path();
    let (key, _) = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let jwks_file = write_json(dir, "jwks.json", &json!({"keys": [public]}));
    let mut private = public.clone();
    private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let private_file = write_json(dir, "private.json", &json!({"keys": [private]}));
    let refused = |args: &[&str]| {
        let out = server.cli_output(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let create = [
        "client",
        "create",
        "--name",
        "svc",
        "--grant",
        "client_credentials",
    ];
    fn with<'a>(create: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [create, extra].concat()
    }

    for (extra, why) in [
        (vec!["--auth-method", "private_key_jwt"], "exactly one way"),
        (
            vec!["--auth-method", "private_key_jwt", "--jwks", &private_file],
            "private",
        ),
        (
            vec![
                "--auth-method",
                "private_key_jwt",
                "--jwks-uri",
                "http://keys.example/jwks",
            ],
            "https",
        ),
        (
            vec![
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                &jwks_file,
                "--jwks-uri",
                "https://keys.example/jwks",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--public",
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                &jwks_file,
            ],
            "contradicts",
        ),
        (vec!["--jwks", &jwks_file], "only private_key_jwt clients"),
    ] {
        let message = refused(&with(&create, &extra));
        assert!(message.contains(why), "{extra:?}: {message}");
    }
    let listed = server.cli(&["client", "list", "--json"]);
    assert_eq!(listed, json!([]), "nothing was registered");

    let token_url = server.url("/oauth2/token");
    let assertion = |client_id: &str, signer: &SigningKey| {
        tessera_jose::encode(signer, "JWT", &claims(client_id, &token_url)).unwrap()
    };
    let server_ref = &server;
    let token_with = |assertion: String| async move {
        post_assertion(
            server_ref,
            "/oauth2/token",
            &assertion,
            &[("grant_type", "client_credentials")],
        )
        .await
        .0
    };

    // A private_key_jwt client has keys and no secret to rotate.
    let out = server.cli(&with(
        &create,
        &[
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            &jwks_file,
            "--json",
        ],
    ));
    let keyed = out["client_id"].as_str().unwrap().to_owned();
    assert!(out.get("client_secret").is_none());
    let show = server.cli(&["client", "show", &keyed, "--json"]);
    assert_eq!(show["type"], "confidential");
    assert_eq!(show["auth_method"], "private_key_jwt");
    assert_eq!(show["jwks"]["keys"][0]["kid"], "k1");
    assert!(refused(&["client", "rotate-secret", &keyed]).contains("change keys instead"));
    assert_eq!(token_with(assertion(&keyed, &key)).await, StatusCode::OK);

    // A Basic client moves to private_key_jwt: its secret stops working.
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let basic_ok = |secret: String| {
        let id = id.clone();
        let server = &server;
        async move {
            server
                .token_response(&id, &secret, &[("grant_type", "client_credentials")])
                .await
                .0
                == StatusCode::OK
        }
    };
    assert!(basic_ok(secret.clone()).await);
    assert!(
        refused(&["client", "update", &id, "--auth-method", "private_key_jwt"])
            .contains("exactly one way")
    );
    let out = server.cli(&[
        "client",
        "update",
        &id,
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        &jwks_file,
        "--json",
    ]);
    crate::common::catalog_settles().await;
    assert_eq!(out["auth_method"], "private_key_jwt");
    assert!(out.get("client_secret").is_none());
    assert!(!basic_ok(secret.clone()).await, "the secret is gone");
    assert_eq!(token_with(assertion(&id, &key)).await, StatusCode::OK);

    // Back to a secret: a new one, and the keys go.
    let out = server.cli(&[
        "client",
        "update",
        &id,
        "--auth-method",
        "client_secret_basic",
        "--json",
    ]);
    crate::common::catalog_settles().await;
    let secret = out["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(out["jwks"], Value::Null);
    assert!(basic_ok(secret.clone()).await);
    assert_eq!(
        token_with(assertion(&id, &key)).await,
        StatusCode::UNAUTHORIZED
    );

    // To client_secret_jwt: a new secret, sealed, keys HS256 assertions only.
    let out = server.cli(&[
        "client",
        "update",
        &id,
        "--auth-method",
        "client_secret_jwt",
        "--json",
    ]);
    crate::common::catalog_settles().await;
    let hs_secret = out["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(hs_secret, secret);
    assert!(!basic_ok(hs_secret.clone()).await);
    let hmac = |s: &str| SigningKey::hmac("", s.as_bytes()).unwrap();
    assert_eq!(
        token_with(assertion(&id, &hmac(&hs_secret))).await,
        StatusCode::OK
    );
    assert_eq!(
        token_with(assertion(&id, &hmac(&secret))).await,
        StatusCode::UNAUTHORIZED
    );
    let rotated = server.cli(&["client", "rotate-secret", &id, "--json"]);
    crate::common::catalog_settles().await;
    let rotated = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        token_with(assertion(&id, &hmac(&rotated))).await,
        StatusCode::OK
    );
    assert_eq!(
        token_with(assertion(&id, &hmac(&hs_secret))).await,
        StatusCode::UNAUTHORIZED
    );

    // To client_secret_post: the same secret serves, now in the body.
    let out = server.cli(&[
        "client",
        "update",
        &id,
        "--auth-method",
        "client_secret_post",
        "--json",
    ]);
    crate::common::catalog_settles().await;
    assert!(out.get("client_secret").is_none(), "no new secret: {out}");
    let (status, _) = post(
        &server,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &rotated),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        token_with(assertion(&id, &hmac(&rotated))).await,
        StatusCode::UNAUTHORIZED
    );
}

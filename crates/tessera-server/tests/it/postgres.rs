//! The server on PostgreSQL: the whole client-credentials flow, several
//! stateless instances sharing one database (an emergency key rotation under
//! load among them), the refusal to start with a key-encryption key that
//! cannot open the stored signing keys, and an outage of the database.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (set by `scripts/test`); skipped without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{PgDatabase, TempDir, TestServer, decode_jwt, free_port, new_kek};

const SCOPE: &str = "orders.read orders.write";
/// Instances behind one load balancer share one issuer; each listens elsewhere.
const SHARED_ISSUER: &str = "http://localhost:8443";

/// A client-credentials access token; panics unless the request succeeds.
async fn access_token(server: &TestServer, client: &(String, String)) -> String {
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(
        status,
        200,
        "token request failed: {body}\n{}",
        server.log()
    );
    body["access_token"].as_str().unwrap().to_owned()
}

async fn revoke(server: &TestServer, client: &(String, String), token: &str) {
    let (status, body) = server
        .post_form("/oauth2/revoke", &client.0, &client.1, &[("token", token)])
        .await;
    assert_eq!(status, 200, "revocation failed: {body}");
}

fn kid_of(token: &str) -> String {
    decode_jwt(token).0["kid"].as_str().unwrap().to_owned()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs a command to completion, killing it after `limit`; output goes through
/// files so that a chatty child never blocks on a full pipe.
fn run_bounded(mut cmd: Command, dir: &TempDir, limit: Duration) -> Output {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let stdout_path = dir.path().join(format!("bounded-{run}.out"));
    let stderr_path = stdout_path.with_extension("err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start tessera");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tessera still running after {limit:?}:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read(&stderr_path).unwrap_or_default(),
    }
}

/// (a) Everything the SQLite suite does for client credentials, on PostgreSQL:
/// JWT and reference tokens, introspection, revocation, and state that survives
/// a restart.
#[tokio::test]
async fn postgres_client_credentials_flow() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let mut server = TestServer::start_on(TempDir::new("pg"), db.url.clone(), &[]).await;
    // With no key configured, PostgreSQL deployments get `tessera.kek` in the
    // working directory.
    let kek_file = server.dir.path().join("tessera.kek");
    assert!(kek_file.exists(), "no {}", kek_file.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kek_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "tessera.kek is readable by others");
    }
    assert!(server.log().contains("postgres"), "{}", server.log());

    let jwt_client = server.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    // In use before the outage, as any client would be: then in memory.
    access_token(&server, &jwt_client).await;
    let (status, body) = server
        .token_response(
            &jwt_client.0,
            &jwt_client.1,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders.read");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let jwt = body["access_token"].as_str().unwrap().to_owned();
    let (header, claims) = decode_jwt(&jwt);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(jwks_kids(&server.get_json("/jwks.json").await).contains(&kid_of(&jwt)));
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], jwt_client.0.as_str());
    assert_eq!(claims["client_id"], jwt_client.0.as_str());
    assert_eq!(claims["scope"], "orders.read");

    let active = server.introspect(&jwt_client.0, &jwt_client.1, &jwt).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["jti"], claims["jti"]);
    assert_eq!(active["client_id"], jwt_client.0.as_str());
    assert_eq!(active["scope"], "orders.read");

    // Revocation is per token: a second token of the same client stays active.
    let kept_jwt = access_token(&server, &jwt_client).await;
    revoke(&server, &jwt_client, &jwt).await;
    assert_eq!(
        server.introspect(&jwt_client.0, &jwt_client.1, &jwt).await,
        json!({"active": false})
    );
    assert_eq!(
        server
            .introspect(&jwt_client.0, &jwt_client.1, &kept_jwt)
            .await["active"],
        true
    );

    let ref_client = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--token-format",
        "reference",
    ]);
    let reference = access_token(&server, &ref_client).await;
    assert!(
        !reference.contains('.'),
        "not a reference token: {reference}"
    );
    let kept_reference = access_token(&server, &ref_client).await;
    let active = server
        .introspect(&ref_client.0, &ref_client.1, &reference)
        .await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], ref_client.0.as_str());
    assert_eq!(active["sub"], ref_client.0.as_str());
    assert_eq!(active["scope"], SCOPE);
    revoke(&server, &ref_client, &reference).await;
    assert_eq!(
        server
            .introspect(&ref_client.0, &ref_client.1, &reference)
            .await,
        json!({"active": false})
    );

    // Keys, clients and revocations live in PostgreSQL, so a restart keeps them.
    server.restart().await;
    // Each client introspects its own tokens (RFC 7662 §4).
    for (client, token, active) in [
        (&jwt_client, &jwt, false),
        (&jwt_client, &kept_jwt, true),
        (&ref_client, &reference, false),
        (&ref_client, &kept_reference, true),
    ] {
        assert_eq!(
            server.introspect(&client.0, &client.1, token).await["active"],
            active,
            "after the restart: {token}"
        );
    }
    assert_eq!(
        kid_of(&access_token(&server, &jwt_client).await),
        kid_of(&jwt),
        "the restart made a new signing key"
    );
}

/// (b) Two stateless instances on one database behave as one server.
#[tokio::test]
async fn two_instances_share_one_postgres_database() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", SHARED_ISSUER),
    ];
    // Started together: migrations and the first key must not race.
    let (one, two) = tokio::join!(
        TestServer::start_on(TempDir::new("pg-one"), db.url.clone(), &env),
        TestServer::start_on(TempDir::new("pg-two"), db.url.clone(), &env),
    );
    let keys = one.cli(&["keys", "list", "--json"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        2,
        "two instances starting together made more than one key per algorithm (ES256 for access tokens, RS256 for ID tokens): {keys}"
    );

    // A client made by the CLI works at both instances at once.
    let client = one.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    let (from_one, from_two) =
        tokio::join!(access_token(&one, &client), access_token(&two, &client));
    assert_eq!(kid_of(&from_one), kid_of(&from_two));

    // Minted by one, active at the other.
    let at_two = two.introspect(&client.0, &client.1, &from_one).await;
    assert_eq!(at_two["active"], true, "{at_two}");
    assert_eq!(at_two["jti"], decode_jwt(&from_one).1["jti"]);
    assert_eq!(at_two["iss"], SHARED_ISSUER);
    assert_eq!(
        two.introspect(&client.0, &client.1, &from_two).await["active"],
        true
    );

    // A JWT revoked at one instance is inactive at the other.
    revoke(&two, &client, &from_two).await;
    assert_eq!(
        one.introspect(&client.0, &client.1, &from_two).await,
        json!({"active": false})
    );

    // A reference token from two, revoked at one, is inactive at two.
    let ref_client = two.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--token-format",
        "reference",
    ]);
    let reference = access_token(&two, &ref_client).await;
    assert!(
        !reference.contains('.'),
        "not a reference token: {reference}"
    );
    assert_eq!(
        one.introspect(&ref_client.0, &ref_client.1, &reference)
            .await["active"],
        true
    );
    revoke(&one, &ref_client, &reference).await;
    assert_eq!(
        two.introspect(&ref_client.0, &ref_client.1, &reference)
            .await,
        json!({"active": false})
    );

    // An emergency rotation through the CLI reaches both instances.
    let old_kid = kid_of(&from_one);
    let rotated = one.cli(&["keys", "rotate", "--now", "--json"]);
    assert_eq!(rotated["alg"], "ES256");
    // Published now, signing once every instance publishes it too.
    assert_eq!(rotated["status"], "next");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let started = Instant::now();
    let (mut latest_one, mut latest_two);
    loop {
        (latest_one, latest_two) =
            tokio::join!(access_token(&one, &client), access_token(&two, &client));
        if kid_of(&latest_one) == new_kid && kid_of(&latest_two) == new_kid {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "10 s after the rotation: instance one signs with {}, two with {}, want {new_kid}",
            kid_of(&latest_one),
            kid_of(&latest_two)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "both instances signed with the new key {:?} after the rotation",
        started.elapsed()
    );
    for server in [&one, &two] {
        let kids = jwks_kids(&server.get_json("/jwks.json").await);
        assert!(
            kids.contains(&old_kid) && kids.contains(&new_kid),
            "JWKS at {}: {kids:?}",
            server.url("")
        );
        // Tokens of the retired key stay valid until they expire; new tokens
        // verify at the other instance.
        for token in [&from_one, &latest_one, &latest_two] {
            assert_eq!(
                server.introspect(&client.0, &client.1, token).await["active"],
                true,
                "at {}: {token}",
                server.url("")
            );
        }
    }
    let keys = two.cli(&["keys", "list", "--json"]);
    let status_of = |kid: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["status"].clone())
    };
    assert_eq!(status_of(&new_kid), Some(json!("active")), "{keys}");
    assert_eq!(status_of(&old_kid), Some(json!("retired")), "{keys}");
}

/// (c) An instance whose key-encryption key cannot open the stored keys refuses
/// to start, says why, and leaves the database as it was.
#[tokio::test]
async fn wrong_key_encryption_key_refuses_to_start() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let mut one = TestServer::start_on(
        TempDir::new("pg-kek"),
        db.url.clone(),
        &[("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str())],
    )
    .await;
    let client = one.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    let before = access_token(&one, &client).await;

    let other_kek = new_kek();
    let port = free_port();
    let mut cmd = one.command();
    cmd.env("TESSERA_KEY_ENCRYPTION_KEY", &other_kek)
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve");
    let started = Instant::now();
    let out = run_bounded(cmd, &one.dir, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with the wrong key:\n{stderr}"
    );
    assert!(
        stderr.contains("key-encryption key"),
        "the error does not mention the key-encryption key:\n{stderr}"
    );
    eprintln!("refused to start after {:?}", started.elapsed());

    // The CLI refuses key operations with the same explanation.
    let mut cmd = one.command();
    cmd.env("TESSERA_KEY_ENCRYPTION_KEY", &other_kek)
        .args(["keys", "list", "--json"]);
    let out = run_bounded(cmd, &one.dir, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "keys list with the wrong key:\n{stderr}"
    );
    assert!(stderr.contains("key-encryption key"), "{stderr}");

    // Nothing changed for the instance with the right key, even after a restart.
    assert_eq!(
        one.cli(&["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    one.restart().await;
    assert_eq!(
        one.introspect(&client.0, &client.1, &before).await["active"],
        true
    );
    assert_eq!(kid_of(&access_token(&one, &client).await), kid_of(&before));
}

/// (c) The refused instance must not write anything either: with a signing
/// algorithm the database has no key for yet, it would otherwise add a key
/// sealed with its own key-encryption key, which no other instance can open.
#[tokio::test]
async fn wrong_key_encryption_key_with_another_algorithm_writes_nothing() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let mut one = TestServer::start_on(
        TempDir::new("pg-kek-alg"),
        db.url.clone(),
        &[("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str())],
    )
    .await;
    let client = one.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    let before = access_token(&one, &client).await;

    let mut cmd = one.command();
    cmd.env("TESSERA_KEY_ENCRYPTION_KEY", new_kek())
        .env("TESSERA_SIGNING_ALG", "EdDSA")
        .env("TESSERA_LISTEN", format!("127.0.0.1:{}", free_port()))
        .arg("serve");
    let out = run_bounded(cmd, &one.dir, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with the wrong key:\n{stderr}"
    );
    assert!(stderr.contains("key-encryption key"), "{stderr}");

    let keys = one.cli(&["keys", "list", "--json"]);
    // ES256 and RS256 only: nothing sealed with the wrong key was written.
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    one.restart().await;
    assert_eq!(
        one.introspect(&client.0, &client.1, &before).await["active"],
        true
    );
}

/// An HS256 resource on two instances sharing PostgreSQL: a token from one
/// is active at the other, and after a rotation through the CLI both refuse
/// the old secret's tokens and sign with the new one within a second.
#[tokio::test]
async fn a_rotated_shared_secret_is_current_on_every_instance_within_a_second() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", SHARED_ISSUER),
    ];
    let one = TestServer::start_on(TempDir::new("pg-hs-one"), db.url.clone(), &env).await;
    let two = TestServer::start_on(TempDir::new("pg-hs-two"), db.url.clone(), &env).await;
    let audience = "https://ledger.example";
    let created = one.cli(&[
        "resource",
        "create",
        "--audience",
        audience,
        "--signing-alg",
        "HS256",
        "--json",
    ]);
    assert_eq!(created["secret_kid"], format!("{audience}#hs256-1"));
    let client = one.client(&["--grant", "client_credentials", "--audience", audience]);

    let old = access_token(&one, &client).await;
    assert_eq!(decode_jwt(&old).0["alg"], "HS256");
    assert_eq!(
        two.introspect(&client.0, &client.1, &old).await["active"],
        true
    );

    two.cli(&["resource", "rotate-secret", audience, "--json"]);
    // Every instance holds the catalogue in memory, and sees a change made
    // elsewhere within `MAX_STALENESS`; a request sent after that must.
    crate::common::catalog_settles().await;
    for server in [&one, &two] {
        assert_eq!(
            server.introspect(&client.0, &client.1, &old).await,
            json!({"active": false})
        );
        let new = access_token(server, &client).await;
        assert_eq!(kid_of(&new), format!("{audience}#hs256-2"));
        for other in [&one, &two] {
            assert_eq!(
                other.introspect(&client.0, &client.1, &new).await["active"],
                true
            );
        }
    }
}

/// A client registered at one instance (RFC 7591) gets tokens at both, and is
/// read and deleted through the other (RFC 7592); once deleted it is refused
/// everywhere within the catalogue's bound.
#[tokio::test]
async fn a_client_registered_at_one_instance_is_managed_at_the_other() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", SHARED_ISSUER),
    ];
    let (one, two) = tokio::join!(
        TestServer::start_on(TempDir::new("pg-reg-one"), db.url.clone(), &env),
        TestServer::start_on(TempDir::new("pg-reg-two"), db.url.clone(), &env),
    );
    let initial = one.cli(&["registration-token", "create", "--json"]);
    let response = one
        .http
        .post(one.url("/register"))
        .bearer_auth(initial["token"].as_str().unwrap())
        .json(&serde_json::json!({
            "client_name": "Worker",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "scope": SCOPE,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let registered: serde_json::Value = response.json().await.unwrap();
    let client = (
        registered["client_id"].as_str().unwrap().to_owned(),
        registered["client_secret"].as_str().unwrap().to_owned(),
    );
    tokio::join!(access_token(&one, &client), access_token(&two, &client));

    let path = registered["registration_client_uri"]
        .as_str()
        .unwrap()
        .strip_prefix(SHARED_ISSUER)
        .unwrap()
        .to_owned();
    let read = two
        .http
        .get(two.url(&path))
        .bearer_auth(registered["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let read: serde_json::Value = read.json().await.unwrap();
    assert_eq!(read["client_id"], registered["client_id"]);
    let deleted = two
        .http
        .delete(two.url(&path))
        .bearer_auth(read["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    crate::common::catalog_settles().await;
    for server in [&one, &two] {
        let (status, _) = server
            .token_response(
                &client.0,
                &client.1,
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, 401);
    }
}

/// (c) An emergency rotation through one instance's admin API, while three
/// instances issue tokens round robin: no token names a key that any
/// instance's JWKS lacks, so verifiers that each fetch the JWKS from a
/// different instance accept every token, before, during and after.
#[tokio::test]
async fn an_emergency_rotation_under_load_fails_no_verification_anywhere() {
    use tessera_guard::Verifier;
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = new_kek();
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", SHARED_ISSUER),
    ];
    let (one, two, three) = tokio::join!(
        TestServer::start_on(TempDir::new("pg-one"), db.url.clone(), &env),
        TestServer::start_on(TempDir::new("pg-two"), db.url.clone(), &env),
        TestServer::start_on(TempDir::new("pg-three"), db.url.clone(), &env),
    );
    let instances = [&one, &two, &three];
    let client = one.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    let admin = one.cli(&["admin-token", "create", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let verifiers: Vec<Verifier> = instances
        .iter()
        .map(|server| {
            Verifier::builder(SHARED_ISSUER, SHARED_ISSUER)
                .jwks_uri(server.url("/jwks.json"))
                .insecure_allow_http()
                .build()
                .expect("verifier")
        })
        .collect();
    let old_kid = kid_of(&access_token(&one, &client).await);

    let new_kid = std::sync::Mutex::new(None::<String>);
    let load = async {
        let mut failures = Vec::new();
        let mut signed_with_new = [0; 3];
        let deadline = Instant::now() + Duration::from_secs(30);
        for round in 0.. {
            let at = round % 3;
            let token = access_token(instances[at], &client).await;
            for (from, verifier) in verifiers.iter().enumerate() {
                if let Err(e) = verifier.verify(&token).await {
                    failures.push(format!("signed by {at}, JWKS of {from}: {e}"));
                }
            }
            if new_kid.lock().unwrap().as_deref() == Some(kid_of(&token).as_str()) {
                signed_with_new[at] += 1;
            }
            if signed_with_new.iter().all(|n| *n >= 10) {
                return (round, failures);
            }
            assert!(
                Instant::now() < deadline,
                "the new key did not sign everywhere: {signed_with_new:?}"
            );
        }
        unreachable!()
    };
    let rotate = async {
        // Once the load is under way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let response = three
            .http
            .post(three.url("/admin/keys/rotate"))
            .bearer_auth(&admin)
            .json(&json!({"now": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        *new_kid.lock().unwrap() = Some(body["kid"].as_str().unwrap().to_owned());
    };
    let ((rounds, failures), ()) = tokio::join!(load, rotate);
    assert!(
        failures.is_empty(),
        "{} tokens, failures: {failures:?}",
        rounds + 1
    );
    let new_kid = new_kid.into_inner().unwrap().unwrap();
    assert_ne!(new_kid, old_kid);
    eprintln!(
        "{} tokens across the rotation, every one verified",
        rounds + 1
    );
}

// ---------------------------------------------------------------------------
// (d) The database out of reach for a while
// ---------------------------------------------------------------------------

/// A TCP relay to PostgreSQL that the test can cut (every open connection
/// dropped, new ones closed at once) and restore, as a network partition or
/// a database restart would.
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        use std::sync::atomic::Ordering as AtomicOrdering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let task = {
            let open = std::sync::Arc::clone(&open);
            let cuts = cuts.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if !open.load(AtomicOrdering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let upstream = upstream.clone();
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Relay {
            port,
            open,
            cuts,
            task,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// Two workers: the relay keeps relaying while the test waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_with_503_and_survived_without_a_restart() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    // postgres://user@127.0.0.1:PORT/name → the relay in front of PORT.
    let (before_port, after_port) = db.url.rsplit_once(':').unwrap();
    let (upstream_port, name) = after_port.split_once('/').unwrap();
    let relay = Relay::start(format!("127.0.0.1:{upstream_port}")).await;
    let through_relay = format!("{before_port}:{}/{name}", relay.port);
    let server = TestServer::start_on(TempDir::new("pg-outage"), through_relay, &[]).await;
    let client = server.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--token-format",
        "reference",
    ]);
    let reference = access_token(&server, &client).await;
    let jwt_client = server.client(&["--grant", "client_credentials", "--scope", SCOPE]);
    // In use before the outage, as any client would be: then in memory. The
    // registrations above move the catalogue's version, and the sync that
    // sees that drops the copy; only a lookup after it stays in memory.
    crate::common::catalog_settles().await;
    access_token(&server, &jwt_client).await;
    let ready = |server: &TestServer| {
        let request = server.http.get(server.url("/health/ready")).send();
        async move { request.await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(ready(&server).await, 200);

    relay.cut();
    eventually(
        Duration::from_secs(10),
        "/health/ready says 503",
        || async { ready(&server).await == 503 },
    )
    .await;
    // A token that must be written, and one that must be read: a clear
    // temporarily_unavailable, never a hang or a 500.
    let (status, body) = server
        .token_response(
            &client.0,
            &client.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let (status, body) = server
        .post_form(
            "/oauth2/introspect",
            &client.0,
            &client.1,
            &[("token", reference.as_str())],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // A JWT needs no database: clients and keys are in memory.
    let jwt = access_token(&server, &jwt_client).await;
    assert!(jwt.contains('.'), "{jwt}");

    // Back: the same process serves again, and nothing acknowledged is lost.
    relay.restore();
    eventually(
        Duration::from_secs(15),
        "/health/ready says 200 again",
        || async { ready(&server).await == 200 },
    )
    .await;
    let fresh = access_token(&server, &client).await;
    for token in [&reference, &fresh] {
        assert_eq!(
            server.introspect(&client.0, &client.1, token).await["active"],
            true
        );
    }
}

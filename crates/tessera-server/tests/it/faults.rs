//! Faults from outside the process: a disk that fills up, and instances whose
//! clocks disagree. (A database that goes away is in `postgres`; `kill -9`
//! under load in `people` and `postgres`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TempDir, TestServer};

/// A size-limited tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one, if the test may (`TESSERA_TEST_TMPFS=1`, which
    /// `scripts/test` sets when it runs as root); otherwise says why not.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if std::env::var("TESSERA_TEST_TMPFS").as_deref() != Ok("1") {
            eprintln!("skipped: TESSERA_TEST_TMPFS not set (scripts/test sets it as root)");
            return None;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs on {}", at.display());
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A reference-token request: the status, and the token when one came.
async fn reference_token(server: &TestServer, client: &(String, String)) -> (StatusCode, Value) {
    server
        .token_response(
            &client.0,
            &client.1,
            &[("grant_type", "client_credentials")],
        )
        .await
}

/// A full disk under SQLite: requests that must write get a clear error and
/// the server stays up; nothing acknowledged before or during is lost, no
/// half-written record is left (the integrity check passes), and once there
/// is room again the same process issues tokens without a restart.
#[tokio::test]
async fn a_full_disk_gives_errors_not_corruption() {
    let disk = TempDir::new("full-disk");
    let Some(_mounted) = Tmpfs::mount(disk.path(), "8m") else {
        return;
    };
    let database_url = format!("sqlite://{}/tessera.db", disk.path().display());
    let server = TestServer::start_on(TempDir::new("server"), database_url.clone(), &[]).await;
    let client = server.client(&[
        "--grant",
        "client_credentials",
        "--token-format",
        "reference",
    ]);
    let (status, body) = reference_token(&server, &client).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Fill what is left, then issue until the writes fail.
    let filler = disk.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output()
        .expect("run dd");
    let mut acknowledged = vec![body["access_token"].as_str().unwrap().to_owned()];
    let mut refusals = Vec::new();
    for _ in 0..400 {
        let (status, body) = reference_token(&server, &client).await;
        if status == StatusCode::OK {
            acknowledged.push(body["access_token"].as_str().unwrap().to_owned());
        } else {
            refusals.push((status, body));
            if refusals.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        refusals.len() >= 5,
        "the disk never filled up: {} tokens issued",
        acknowledged.len()
    );
    eprintln!(
        "{} tokens issued, then {:?}",
        acknowledged.len(),
        refusals.first()
    );
    for (status, body) in &refusals {
        assert!(
            status.is_server_error(),
            "a full disk is the server's trouble: {status} {body}"
        );
        assert!(
            body["error"] == "temporarily_unavailable" || body["error"] == "server_error",
            "an OAuth error body: {body}"
        );
    }
    // The operator is told why.
    let log = server.log();
    assert!(log.contains("disk is full"), "{log}");
    let live = server
        .http
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK, "still up");

    // Room again: the same process issues, and everything acknowledged,
    // before the disk filled and while it was full, is still there.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = reference_token(&server, &client).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recovered without a restart: {body}"
    );
    for token in &acknowledged {
        assert_eq!(
            server.introspect(&client.0, &client.1, token).await["active"],
            true,
            "an acknowledged token was lost"
        );
    }
    let mut server = server;
    server.stop();
    use sqlx::Connection as _;
    let mut db = sqlx::SqliteConnection::connect(&database_url)
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    db.close().await.unwrap();
    server.restart().await;
    for token in &acknowledged {
        assert_eq!(
            server.introspect(&client.0, &client.1, token).await["active"],
            true,
            "an acknowledged token was lost in the restart"
        );
    }
}

/// Instances whose wall clocks disagree by less than the leeway (30 s; here
/// one runs 10 s ahead and one 10 s behind, by libfaketime) work as one: a
/// code minted on one is exchanged on another, tokens issued anywhere are
/// introspected, refreshed and shown at `/userinfo` everywhere, and during an
/// emergency key rotation every token any of them signs is verifiable with
/// the keys every other one publishes at that moment.
#[tokio::test]
async fn instances_whose_clocks_differ_within_the_leeway_work_as_one() {
    use crate::flows::{exchange, mint_code, refresh, s, web_app};
    use crate::web::{Browser, create_user};

    let Some(db) = crate::common::PgDatabase::create().await else {
        return;
    };
    let (Some(ahead_clock), Some(behind_clock)) = (
        crate::common::skewed_clock("+10s"),
        crate::common::skewed_clock("-10s"),
    ) else {
        return;
    };
    let kek = crate::common::new_kek();
    let shared = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", "http://localhost:8443"),
    ];
    let with = |clock: &[(String, String)]| -> Vec<(String, String)> {
        shared
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(clock.iter().cloned())
            .collect()
    };
    let (ahead_env, behind_env) = (with(&ahead_clock), with(&behind_clock));
    fn borrow(env: &[(String, String)]) -> Vec<(&str, &str)> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let (ahead_env, behind_env) = (borrow(&ahead_env), borrow(&behind_env));
    // One after another, so that their once-a-second key reloads are out of
    // step, as in a real deployment.
    let real = TestServer::start_on(TempDir::new("clock-real"), db.url.clone(), &shared).await;
    let ahead = TestServer::start_on(TempDir::new("clock-ahead"), db.url.clone(), &ahead_env).await;
    let behind =
        TestServer::start_on(TempDir::new("clock-behind"), db.url.clone(), &behind_env).await;
    create_user(&real, "alice", None, None);
    let client = web_app(&real);
    let service = real.client(&["--grant", "client_credentials"]);
    crate::common::catalog_settles().await;

    // A code minted 10 s in the past, exchanged 10 s in the future.
    let mut browser = Browser::new(&behind);
    let (code, verifier) = mint_code(&behind, &mut browser, &client.0).await;
    let (status, tokens) = exchange(&ahead, &client, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = s(&tokens["access_token"]);
    for server in [&real, &behind] {
        assert_eq!(
            server.introspect(&client.0, &client.1, access).await["active"],
            true
        );
        assert_eq!(server.userinfo_status(access).await, StatusCode::OK);
    }
    // The refresh token rotated behind, then its successor ahead.
    let (status, second) = refresh(&behind, &client, s(&tokens["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, third) = refresh(&ahead, &client, s(&second["refresh_token"]), None).await;
    assert_eq!(status, StatusCode::OK, "{third}");

    // An emergency rotation: for three seconds, every token from each
    // instance is active at every other at once. (Each instance's JWKS reads
    // the keys afresh, so verifiers fetching it are served by any of them;
    // this is about the instances' own checks, with keys reloaded once a
    // second.)
    let old_kid = crate::common::decode_jwt(s(&third["access_token"])).0["kid"].clone();
    real.cli(&["keys", "rotate", "--now", "--json"]);
    let started = std::time::Instant::now();
    let mut new_kid_seen = false;
    let mut issued = 0;
    let instances = [&real, &ahead, &behind];
    while started.elapsed() < std::time::Duration::from_secs(3) {
        for (i, issuer) in instances.into_iter().enumerate() {
            let token = issuer
                .token(
                    &service.0,
                    &service.1,
                    &[("grant_type", "client_credentials")],
                )
                .await;
            let token = s(&token["access_token"]);
            issued += 1;
            let kid = crate::common::decode_jwt(token).0["kid"].clone();
            new_kid_seen |= kid != old_kid;
            for (j, verifier) in instances.into_iter().enumerate() {
                let introspected = verifier.introspect(&service.0, &service.1, token).await;
                assert_eq!(
                    introspected["active"], true,
                    "a token from instance {i} ({kid}) is not active at instance {j}"
                );
            }
        }
    }
    assert!(new_kid_seen, "the new key signed within three seconds");
    eprintln!("{issued} tokens checked during the rotation");
}

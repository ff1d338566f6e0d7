//! The in-memory catalogue's staleness bound, from outside: a client deleted,
//! its secret rotated or its scope narrowed through the CLI (another process,
//! writing the database behind the server's back) stops working at a running
//! server within one second; on PostgreSQL, at every instance.
//!
//! The bound is checked, not the typical delay: whatever happened before, a
//! request sent one second after the change must see it. Until then the
//! tests only poll, to report how soon it was seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use crate::common::{PgDatabase, TempDir, TestServer};

/// `tessera_core::catalog::MAX_STALENESS`.
const BOUND: Duration = tessera_core::catalog::MAX_STALENESS;

/// Waits until `seen` holds or the bound since `changed_at` has passed, then
/// requires it to hold for a request sent after the bound.
async fn seen_within_bound<F, Fut>(what: &str, changed_at: Instant, seen: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    while changed_at.elapsed() < BOUND {
        if seen().await {
            eprintln!("{what}: seen after {:?}", changed_at.elapsed());
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        seen().await,
        "{what}: not seen {:?} after the change",
        changed_at.elapsed()
    );
}

async fn status(server: &TestServer, client: &(String, String), scope: &str) -> u16 {
    let mut form = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    server
        .token_response(&client.0, &client.1, &form)
        .await
        .0
        .as_u16()
}

/// Narrows the scope, rotates the secret, deletes the client, each through
/// the CLI, and checks each at every server within the bound.
async fn changes_reach(servers: &[&TestServer]) {
    let cli = servers[0];
    let client = cli.client(&[
        "--grant",
        "client_credentials",
        "--scope",
        "orders.read orders.write",
    ]);
    for server in servers {
        assert_eq!(status(server, &client, "orders.write").await, 200);
    }

    cli.cli(&[
        "client",
        "update",
        &client.0,
        "--scope",
        "orders.read",
        "--json",
    ]);
    let changed_at = Instant::now();
    for server in servers {
        seen_within_bound("scope narrowed", changed_at, || async {
            status(server, &client, "orders.write").await == 400
        })
        .await;
        assert_eq!(status(server, &client, "orders.read").await, 200);
    }

    let rotated = cli.cli(&["client", "rotate-secret", &client.0, "--json"]);
    let changed_at = Instant::now();
    let new = (
        client.0.clone(),
        rotated["client_secret"].as_str().unwrap().to_owned(),
    );
    for server in servers {
        seen_within_bound("secret rotated", changed_at, || async {
            status(server, &client, "").await == 401 && status(server, &new, "").await == 200
        })
        .await;
    }

    cli.cli(&["client", "delete", &client.0, "--json"]);
    let changed_at = Instant::now();
    for server in servers {
        seen_within_bound("client deleted", changed_at, || async {
            status(server, &new, "").await == 401
        })
        .await;
    }
}

#[tokio::test]
async fn cli_changes_reach_a_running_server_within_the_bound() {
    let server = TestServer::start().await;
    changes_reach(&[&server]).await;
}

#[tokio::test]
async fn cli_changes_reach_every_postgres_instance_within_the_bound() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let kek = crate::common::new_kek();
    let env = [
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
        ("TESSERA_ISSUER", "http://localhost:8443"),
    ];
    let one = TestServer::start_on(TempDir::new("pg-cat-one"), db.url.clone(), &env).await;
    let two = TestServer::start_on(TempDir::new("pg-cat-two"), db.url.clone(), &env).await;
    changes_reach(&[&one, &two]).await;
}

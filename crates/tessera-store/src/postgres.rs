//! PostgreSQL, for several Tessera instances sharing one database.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::IfMissing;

/// How long connecting waits for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

/// The advisory lock that serialises signing-key inserts across instances
/// (an arbitrary constant, the same for every instance).
const SIGNING_KEY_LOCK: i64 = 0x7465_7373_6b65_7973;

impl PgStore {
    /// Takes the signing-key lock until `tx` ends. Under READ COMMITTED each
    /// statement sees what committed before it began, so the insert that
    /// follows sees a key another instance made while this one waited.
    async fn lock_signing_keys(tx: &mut sqlx::PgConnection) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEY_LOCK)
            .execute(tx)
            .await
            .map_err(crate::common::map_err)?;
        Ok(())
    }

    /// A pooled connection for reads.
    fn connection_counts(&self) -> tessera_core::store::ConnectionCounts {
        let open = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        tessera_core::store::ConnectionCounts {
            open,
            busy: open.saturating_sub(idle),
        }
    }

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool.acquire().await.map_err(crate::common::map_err)
    }

    /// PostgreSQL serves concurrent writers itself: the same pool.
    async fn writer(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.reader().await
    }

    /// PostgreSQL's driver talks to a server over a socket, without a thread
    /// of its own to hand statements to: no direct path (see `sqlite::direct`).
    fn direct(&self) -> Option<&crate::sqlite::Direct> {
        None
    }

    /// PostgreSQL keeps its own house (autovacuum, checkpoints).
    pub async fn housekeeping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Connects and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, IfMissing::Create).await
    }

    /// Connects; with [`IfMissing::Refuse`] a database without Tessera's tables
    /// is refused rather than set up. (The database itself is never created:
    /// that is the administrator's `CREATE DATABASE`.)
    pub async fn connect_with(url: &str, if_missing: IfMissing) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        let (host, port) = (options.get_host().to_owned(), options.get_port());
        let started = Instant::now();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unreachable(e, &host, port, started.elapsed()))?;
        if if_missing == IfMissing::Refuse {
            let present: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&pool)
                    .await
                    .map_err(map_err)?;
            if !present {
                pool.close().await;
                return Err(StoreError::Missing(format!(
                    "the PostgreSQL database at {host}:{port} has no Tessera tables"
                )));
            }
        }
        // Migrations take an advisory lock, so instances starting together on one
        // database run them once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(PgStore { pool })
    }
}

/// "pool timed out" says neither where nor how long: name the server and the
/// wait, and keep the driver's own reason where it has one.
fn unreachable(err: sqlx::Error, host: &str, port: u16, waited: Duration) -> StoreError {
    let waited = format!("{:.1} s", waited.as_secs_f64());
    match err {
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(format!(
            "cannot reach PostgreSQL at {host}:{port}: no connection within {waited} \
             (is the server running, and does it accept TCP connections there?)"
        )),
        sqlx::Error::Io(io) => StoreError::Unavailable(format!(
            "cannot reach PostgreSQL at {host}:{port} (gave up after {waited}): {io}"
        )),
        other => match map_err(other) {
            StoreError::Unavailable(m) | StoreError::Other(m) => StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {host}:{port} (after {waited}): {m}"
            )),
            e => e,
        },
    }
}

impl_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, "postgres");

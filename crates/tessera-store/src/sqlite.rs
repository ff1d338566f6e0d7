//! The embedded default: SQLite in WAL mode. Reads go through a pool of
//! connections, which WAL lets run beside a write. Every write goes through
//! one writer connection: SQLite admits one writer at a time anyway, and with
//! several, the losers wait in SQLite's busy handler, which sleeps in steps of
//! up to 100 ms; queued on one connection they wait their turn in order
//! instead. The writer also drives the WAL checkpoints (see
//! [`SqliteStore::housekeeping`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::IfMissing;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    /// Reference tokens issued at the same time go in together.
    reference_tokens: Option<ReferenceTokenBatcher>,
    /// The WAL file, for its size; `None` for an in-memory database.
    wal: Option<PathBuf>,
}

/// Past this size the WAL is checkpointed and truncated, waiting for readers
/// if need be; below it, checkpoints never wait.
const WAL_TRUNCATE_AT: u64 = 32 * 1024 * 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database and runs its migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, IfMissing::Create).await
    }

    pub async fn connect_with(url: &str, if_missing: IfMissing) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = options.get_filename().to_owned();
        if !in_memory && path.as_os_str().is_empty() {
            return Err(StoreError::Other(
                "the SQLite URL names no file: use sqlite://PATH, e.g. sqlite://tessera.db".into(),
            ));
        }
        let must_exist = if_missing == IfMissing::Refuse && !in_memory;
        if must_exist && !path.exists() {
            return Err(StoreError::Missing(format!(
                "there is no database at {}",
                absolute(&path).display()
            )));
        }
        let options = options
            .create_if_missing(!must_exist)
            // WAL lets readers proceed while one writer commits; NORMAL sync is
            // durable across application crashes and the usual choice with WAL.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| explain_open_failure(e, &path))?;
        if must_exist {
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(&pool)
            .await
            .map_err(map_err)?;
            if tables == 0 {
                pool.close().await;
                return Err(StoreError::Missing(format!(
                    "{} is not a Tessera database (it has no Tessera tables)",
                    absolute(&path).display()
                )));
            }
        }
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        if in_memory {
            // Each connection would open a database of its own.
            return Ok(SqliteStore {
                writer: pool.clone(),
                pool,
                reference_tokens: None,
                wal: None,
            });
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Writes queue here, behind each other, rather than in SQLite.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| explain_open_failure(e, &path))?;
        let mut wal = path.into_os_string();
        wal.push("-wal");
        Ok(SqliteStore {
            pool,
            reference_tokens: Some(ReferenceTokenBatcher::start(writer.clone())),
            writer,
            wal: Some(PathBuf::from(wal)),
        })
    }

    /// Inserts through the batcher, unless the database is in memory.
    async fn insert_reference_token_batched(
        &self,
        token: &ReferenceToken,
    ) -> Option<Result<(), StoreError>> {
        match &self.reference_tokens {
            Some(batcher) => Some(batcher.insert(token).await),
            None => None,
        }
    }

    /// Copies the WAL's committed pages into the database file without
    /// waiting for anyone (`PASSIVE`); once the WAL has grown past
    /// [`WAL_TRUNCATE_AT`] (readers that never pause can keep a passive
    /// checkpoint from ever restarting it) checkpoints it whole, waits for the
    /// readers still on it, and truncates it (`TRUNCATE`). Runs on the writer
    /// connection, between writes; the server calls it every second.
    pub async fn housekeeping(&self) -> Result<(), StoreError> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let size = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
        // On the writer, between writes: a checkpoint beside a writer that
        // never pauses never catches up with it, and the WAL never restarts.
        let sql = if size > WAL_TRUNCATE_AT {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        sqlx::query(sql)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// Inserts the reference tokens of concurrent requests in one statement.
///
/// Issuing a reference token is one insert, and on SQLite most of an insert's
/// cost is handing the statement to the connection's thread and back, not the
/// SQL. Requests queue their tokens here; one task takes whatever is queued
/// (up to [`REFERENCE_BATCH`]), inserts it with one multi-row `INSERT`, and
/// answers each request once that statement has committed, so nothing is
/// acknowledged before it is in the WAL. Should the batch fail (a digest
/// already taken, which 256 random bits make a bug, not a race), each token
/// is inserted alone, so that each request gets its own answer.
#[derive(Debug, Clone)]
struct ReferenceTokenBatcher {
    queue: tokio::sync::mpsc::UnboundedSender<QueuedToken>,
}

struct QueuedToken {
    token: ReferenceToken,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// The most tokens one statement inserts (5 parameters each).
const REFERENCE_BATCH: usize = 64;

impl ReferenceTokenBatcher {
    /// Starts the inserting task; it ends when the store is dropped.
    fn start(writer: sqlx::SqlitePool) -> Self {
        let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<QueuedToken>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(REFERENCE_BATCH);
            while queued.recv_many(&mut batch, REFERENCE_BATCH).await > 0 {
                let tokens: Vec<&ReferenceToken> = batch.iter().map(|q| &q.token).collect();
                if insert_reference_tokens(&writer, &tokens).await.is_ok() {
                    for queued in batch.drain(..) {
                        let _ = queued.done.send(Ok(()));
                    }
                } else {
                    for queued in batch.drain(..) {
                        let outcome = insert_reference_tokens(&writer, &[&queued.token]).await;
                        let _ = queued.done.send(outcome);
                    }
                }
            }
        });
        ReferenceTokenBatcher { queue }
    }

    async fn insert(&self, token: &ReferenceToken) -> Result<(), StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.queue
            .send(QueuedToken {
                token: token.clone(),
                done,
            })
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?
    }
}

async fn insert_reference_tokens(
    writer: &sqlx::SqlitePool,
    tokens: &[&ReferenceToken],
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "INSERT INTO reference_tokens (digest, client_id, claims, expires_at, revoked) VALUES ",
    );
    for i in 0..tokens.len() {
        let n = i * 5;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for token in tokens {
        query = query
            .bind(token.digest.0.to_vec())
            .bind(token.client_id.as_str())
            .bind(token.claims.to_string())
            .bind(token.expires_at)
            .bind(token.revoked);
    }
    query.execute(writer).await.map_err(map_err)?;
    Ok(())
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// SQLite says only "unable to open database file"; say which file and why.
fn explain_open_failure(err: sqlx::Error, path: &Path) -> StoreError {
    let shown = absolute(path);
    let parent = shown
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let reason = if !parent.exists() {
        format!("the directory {} does not exist", parent.display())
    } else if !parent.is_dir() {
        format!("{} is not a directory", parent.display())
    } else if shown.is_dir() {
        format!("{} is a directory", shown.display())
    } else {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&shown)
        {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                format!("no permission to read and write {}", shown.display())
            }
            Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                format!("{} is on a read-only file system", shown.display())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The file would be created: the directory refuses it.
                format!(
                    "cannot create a file in {} (read-only or no permission)",
                    parent.display()
                )
            }
            _ => err.to_string(),
        }
    };
    StoreError::Unavailable(format!(
        "cannot open the SQLite database {}: {reason}",
        shown.display()
    ))
}

impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");

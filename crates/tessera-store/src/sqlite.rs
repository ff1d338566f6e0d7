//! The embedded default: SQLite in WAL mode. Reads go through a few
//! connections, which WAL lets run beside a write. Every write goes through
//! one writer connection: SQLite admits one writer at a time anyway, and with
//! several, the losers wait in SQLite's busy handler, which sleeps in steps of
//! up to 100 ms; queued on one connection they wait their turn in order
//! instead. A fifth connection copies the WAL into the database file, and the
//! writer lets it start over (see [`SqliteStore::housekeeping`]). The token
//! endpoint's statements take a shorter way, on the request's own thread
//! ([`direct`]).

mod direct;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub(crate) use self::direct::Direct;
use crate::IfMissing;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    readers: Arc<Connections>,
    writer: Arc<Mutex<Writer>>,
    /// The token endpoint's statements, off sqlx; `None` for an in-memory
    /// database, which another connection would not see.
    direct: Option<Arc<Direct>>,
    /// Copies the WAL into the database file beside the writer; `None` for an
    /// in-memory database.
    checkpointer: Option<Arc<Mutex<SqliteConnection>>>,
    /// The WAL file, for its size; `None` for an in-memory database.
    wal: Option<PathBuf>,
}

/// How many connections serve reads.
const READERS: usize = 4;

/// The writer: two connections to the database behind one lock, so that one
/// write runs at a time whichever driver makes it.
#[derive(Debug)]
struct Writer {
    sqlx: SqliteConnection,
    /// The [`direct`] path's; `None` for an in-memory database.
    direct: Option<rusqlite::Connection>,
}

/// Connections kept open for the store's life, each lent to one statement or
/// transaction at a time.
///
/// Not sqlx's pool: it pings a connection when lending it and again when it
/// comes back, and on SQLite each ping is a round trip to the connection's
/// thread, as dear as the statement itself. A SQLite connection is a file
/// handle, not a socket: nothing can break it between two statements that a
/// ping would catch.
#[derive(Debug)]
struct Connections {
    connections: Box<[Arc<Mutex<SqliteConnection>>]>,
    next: AtomicUsize,
}

impl Connections {
    /// A free connection if there is one; else waits its turn on the next.
    async fn lend(&self) -> MutexGuard<'_, SqliteConnection> {
        let count = self.connections.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            if let Ok(connection) = self.connections[(first + i) % count].try_lock() {
                return connection;
            }
        }
        self.connections[first].lock().await
    }
}

/// Past this size the WAL is checkpointed and truncated, waiting for readers
/// if need be; below it, checkpoints never wait.
const WAL_TRUNCATE_AT: u64 = 32 * 1024 * 1024;

/// Checkpoint rounds beside the writer, each copying what came in during the
/// last, until fewer than [`WRITER_CATCH_UP_FRAMES`] did.
const CHECKPOINT_ROUNDS: usize = 4;

/// Below this many frames (8 MiB) the WAL is left to grow: each time the
/// writer makes it start over costs writes a pause of two `fsync`s.
const WAL_RESTART_FRAMES: i64 = 2048;

/// Few enough WAL frames for the writer to copy between two writes.
const WRITER_CATCH_UP_FRAMES: i64 = 256;

/// SQLite's own checkpoint runs past this many WAL pages (of 4 KiB): 64 MiB,
/// twice [`WAL_TRUNCATE_AT`], reached only if housekeeping stops.
const WAL_BACKSTOP_PAGES: u32 = 16_384;

impl SqliteStore {
    /// Nothing to take: one writer connection serialises every write.
    async fn lock_signing_keys(_: &mut SqliteConnection) -> StoreResult<()> {
        Ok(())
    }

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
        let mut writer = options
            .connect()
            .await
            .map_err(|e| explain_open_failure(e, &path))?;
        if must_exist {
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(&mut writer)
            .await
            .map_err(map_err)?;
            if tables == 0 {
                return Err(StoreError::Missing(format!(
                    "{} is not a Tessera database (it has no Tessera tables)",
                    absolute(&path).display()
                )));
            }
        }
        // `run` takes an `Acquire`, whose future is not `Send` over a plain
        // connection (sqlx's "not general enough"); `run_direct` is what it
        // calls, on the connection itself.
        sqlx::migrate!("./migrations/sqlite")
            .run_direct(None, &mut writer, false)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        // Checkpoints are [`SqliteStore::housekeeping`]'s, off the writer;
        // SQLite's own, run by whichever commit crosses the threshold, would
        // hold that commit and every write queued behind it. This one is only
        // a backstop for a process that never calls housekeeping.
        sqlx::query(const_format::formatcp!(
            "PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}"
        ))
        .execute(&mut writer)
        .await
        .map_err(map_err)?;
        if in_memory {
            // Each connection would open a database of its own: the one
            // connection reads and writes.
            let writer = Arc::new(Mutex::new(Writer {
                sqlx: writer,
                direct: None,
            }));
            return Ok(SqliteStore {
                readers: Arc::new(Connections {
                    connections: Box::new([]),
                    next: AtomicUsize::new(0),
                }),
                writer,
                direct: None,
                checkpointer: None,
                wal: None,
            });
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = options
                .connect()
                .await
                .map_err(|e| explain_open_failure(e, &path))?;
            readers.push(Arc::new(Mutex::new(reader)));
        }
        let checkpointer = options
            .connect()
            .await
            .map_err(|e| explain_open_failure(e, &path))?;
        let writer = Arc::new(Mutex::new(Writer {
            sqlx: writer,
            direct: Some(direct::open(&path, true)?),
        }));
        let direct = Direct::open(&path, writer.clone())?;
        let mut wal = path.into_os_string();
        wal.push("-wal");
        Ok(SqliteStore {
            readers: Arc::new(Connections {
                connections: readers.into_boxed_slice(),
                next: AtomicUsize::new(0),
            }),
            writer,
            direct: Some(Arc::new(direct)),
            checkpointer: Some(Arc::new(Mutex::new(checkpointer))),
            wal: Some(PathBuf::from(wal)),
        })
    }

    /// Every connection this store holds, and how many are lent out now (a
    /// free one is taken for a moment to tell, as [`Connections::lend`]
    /// would, which only sends a lender on to the next).
    fn connection_counts(&self) -> tessera_core::store::ConnectionCounts {
        let all = self
            .readers
            .connections
            .iter()
            .chain(self.checkpointer.iter());
        let mut counts = tessera_core::store::ConnectionCounts::default();
        for connection in all {
            counts.open += 1;
            if connection.try_lock().is_err() {
                counts.busy += 1;
            }
        }
        // The writer's two connections, busy together.
        let writers = if self.direct.is_some() { 2 } else { 1 };
        counts.open += writers;
        if self.writer.try_lock().is_err() {
            counts.busy += writers;
        }
        if let Some(direct) = &self.direct {
            direct.count_readers(&mut counts);
        }
        counts
    }

    /// A connection for reads: the writer's for an in-memory database.
    async fn reader(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, StoreError> {
        if self.readers.connections.is_empty() {
            return self.writer().await;
        }
        Ok(MutexGuard::map(self.readers.lend().await, |c| c))
    }

    /// The one connection that writes: writes queue here, behind each other,
    /// rather than in SQLite's busy handler.
    async fn writer(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, StoreError> {
        Ok(MutexGuard::map(self.writer.lock().await, |w| &mut w.sqlx))
    }

    /// The [`direct`] path, for a database in a file.
    fn direct(&self) -> Option<&Direct> {
        self.direct.as_deref()
    }

    /// Keeps the WAL small without holding writes up; the server calls it
    /// every [`HOUSEKEEPING_INTERVAL`](tessera_core::store::HOUSEKEEPING_INTERVAL).
    ///
    /// The checkpoint's bulk (copying the WAL's pages into the database file
    /// and syncing it) runs on a connection of its own, beside the writer
    /// (`PASSIVE` waits for no one), in rounds that each copy what came in
    /// during the last, until little did. But SQLite starts the WAL over only
    /// when a write begins with every frame copied, which never happens while
    /// writes keep coming during the copy; so the writer, between two writes,
    /// then copies the last few frames. That still pauses writes for two
    /// `fsync`s (the WAL's, then the database file's: SQLite's order, without
    /// which a power cut could lose pages), a few milliseconds under sustained
    /// writes, so it waits until the WAL holds [`WAL_RESTART_FRAMES`]. Once
    /// the WAL file has grown past [`WAL_TRUNCATE_AT`] anyway (readers
    /// that never pause can keep it from starting over), the writer
    /// checkpoints it whole, waiting for those readers, and truncates it.
    pub async fn housekeeping(&self) -> Result<(), StoreError> {
        let (Some(wal), Some(checkpointer)) = (&self.wal, &self.checkpointer) else {
            return Ok(());
        };
        let mut frames = 0;
        for _ in 0..CHECKPOINT_ROUNDS {
            // Each round answers (busy, frames in the WAL, frames copied so far).
            let (_, now_frames, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut *checkpointer.lock().await)
                    .await
                    .map_err(map_err)?;
            let came_in = now_frames - frames;
            frames = now_frames;
            if came_in < WRITER_CATCH_UP_FRAMES {
                break;
            }
        }
        if frames < WAL_RESTART_FRAMES {
            return Ok(());
        }
        let size = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
        let sql = if size > WAL_TRUNCATE_AT {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        sqlx::query(sql)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }
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

impl_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "sqlite");

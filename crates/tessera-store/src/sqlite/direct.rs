//! The token endpoint's statements on SQLite, run on the request's own thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands it every
//! statement over a channel and back: two thread switches per statement,
//! dearer than the statement itself. In a profile of the code exchange, 44%
//! of the server's CPU was on those threads and 15% switching between threads,
//! while SQLite's own work was a few percent. The statements of the code
//! exchange, refresh rotation and introspection, and the read of the signing
//! keys (each `/jwks.json`, each second's reload), therefore go through
//! rusqlite here, on connections of this path's own, called in place: a read
//! is a few microseconds of the calling thread.
//!
//! Writes are committed in groups. Each request queues its write; one task
//! takes whatever is queued, runs each write in a savepoint of its own within
//! one transaction on the store's writer (holding the one writer lock, as
//! every other write does), commits, and only then answers each request. A
//! commit writes every page it changed to the WAL, and the rows of concurrent
//! requests share pages: one commit for many writes writes a fraction of the
//! pages. A write that fails is rolled back to its savepoint and fails alone;
//! a commit that fails fails every write in it. WAL with `synchronous =
//! NORMAL`: a commit is a write to the log and no `fsync`, durable across a
//! crash of the process, so nothing is acknowledged before it would survive
//! one.
//!
//! Everything else stays on sqlx, in the store shared with PostgreSQL: the
//! SQL of this path is the same (`crate::common`), and the conformance suite
//! runs against it on a file database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Row, params};
use tessera_core::crypto::SecretDigest;
use tessera_core::store::{
    AuthorizationCode, CodeUse, ReferenceToken, RefreshToken, Session, StoreError, StoreResult,
    StoredKey, User,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{WAL_BACKSTOP_PAGES, Writer};
use crate::common::{
    CONSUME_BOUND_CODE, CONSUME_CODE, Columns, INSERT_REFERENCE_TOKEN, INSERT_REFRESH,
    MARK_CODE_REPLAYED, RECORD_CODE_TOKENS, ROTATE_REFRESH, SELECT_CODE, SELECT_REFERENCE_TOKEN,
    SELECT_REFRESH, SELECT_REVOKED_JTI, SELECT_SIGNING_KEYS, SELECT_USER, TOUCH_SESSION, code_from,
    reference_token_from, refresh_from, session_from, stored_key_from, to_json, unreadable,
    user_from,
};

/// How many connections serve this path's reads: one per thread that may
/// read at once; a read never waits for anything while it holds one.
const READERS: usize = 4;

/// Prepared statements kept per connection: those above, and a margin.
const STATEMENT_CACHE: usize = 32;

/// How long a statement waits for a lock another process holds, as on the
/// sqlx connections.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most writes one commit takes.
const GROUP: usize = 64;

/// How many times the committing task yields, before a group, for more
/// writes: requests running on the other workers are microseconds from
/// queueing theirs.
const LINGER_YIELDS: usize = 2;

#[derive(Debug)]
pub(crate) struct Direct {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    readers: Box<[std::sync::Mutex<Connection>]>,
    next: AtomicUsize,
}

/// One request's write, queued for the next group commit.
trait Job: Send {
    /// Runs the write in the open transaction.
    fn run(&mut self, connection: &Connection);
    /// Answers the request once the group's commit is known.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

struct Write<T, F> {
    write: Option<F>,
    outcome: Option<rusqlite::Result<T>>,
    done: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, connection: &Connection) {
        let Some(write) = self.write.take() else {
            return;
        };
        // A savepoint per write, so that one failing undoes only itself.
        let statement = |sql| connection.prepare_cached(sql)?.execute([]).map(drop);
        let outcome = statement("SAVEPOINT job").and_then(|()| write(connection));
        let closed = if outcome.is_ok() {
            statement("RELEASE job")
        } else {
            statement("ROLLBACK TO job").and_then(|()| statement("RELEASE job"))
        };
        self.outcome = Some(match (outcome, closed) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        });
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome.map_err(map_err),
            (Err(e), _) => Err(StoreError::Other(format!("the commit failed: {e}"))),
            (Ok(()), None) => Err(StoreError::Other("the write never ran".into())),
        };
        let _ = self.done.send(answer);
    }
}

/// Commits queued writes in groups until the store is dropped.
async fn commit_groups(
    writer: Arc<Mutex<Writer>>,
    mut queued: mpsc::UnboundedReceiver<Box<dyn Job>>,
) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(GROUP);
    while queued.recv_many(&mut group, GROUP).await > 0 {
        for _ in 0..LINGER_YIELDS {
            if group.len() >= GROUP {
                break;
            }
            tokio::task::yield_now().await;
            while group.len() < GROUP {
                match queued.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
        }
        let mut writer = Arc::clone(&writer).lock_owned().await;
        let Some(connection) = writer.direct.as_mut() else {
            finish(
                &mut group,
                Err("the SQLite writer has no direct connection"),
            );
            continue;
        };
        match commit_group(connection, &mut group) {
            Some(commit) => {
                drop(writer);
                finish(
                    &mut group,
                    commit.as_ref().map(|_| ()).map_err(String::as_str),
                );
            }
            None => {
                // Another process (a CLI command, say) holds SQLite's write
                // lock: wait for it as long as any other write would, on a
                // thread where waiting holds up no request but these.
                let mut waiting = std::mem::replace(&mut group, Vec::with_capacity(GROUP));
                let committed = tokio::task::spawn_blocking(move || {
                    let commit = match writer.direct.as_mut() {
                        Some(connection) => commit_group_waiting(connection, &mut waiting),
                        None => Err("the SQLite writer has no direct connection".to_owned()),
                    };
                    drop(writer);
                    finish(
                        &mut waiting,
                        commit.as_ref().map(|_| ()).map_err(String::as_str),
                    );
                });
                // Should that thread panic, its requests' answers are dropped
                // with it, and they are told the store is unavailable.
                let _ = committed.await;
            }
        }
    }
}

fn finish(group: &mut Vec<Box<dyn Job>>, commit: Result<(), &str>) {
    for job in group.drain(..) {
        job.finish(commit);
    }
}

/// [`commit_group`], waiting up to [`BUSY_TIMEOUT`] for SQLite's write lock.
fn commit_group_waiting(
    connection: &mut Connection,
    group: &mut [Box<dyn Job>],
) -> Result<(), String> {
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let commit = commit_group(connection, group)
        .unwrap_or_else(|| Err("the database stayed locked by another process".to_owned()));
    let _ = connection.busy_timeout(Duration::ZERO);
    commit
}

/// Commits `group` in one transaction; `None`, having run none of it, if
/// another connection holds SQLite's write lock. The writer connection waits
/// for nobody (`busy_timeout` 0): in this process every write holds the one
/// writer lock, so only another process can hold SQLite's.
fn commit_group(
    connection: &mut Connection,
    group: &mut [Box<dyn Job>],
) -> Option<Result<(), String>> {
    let tx = match connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            return None;
        }
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(run_and_commit(tx, group))
}

fn run_and_commit(tx: rusqlite::Transaction<'_>, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    for job in group.iter_mut() {
        job.run(&tx);
        // On some errors (a full disk, an I/O error) SQLite rolls the whole
        // transaction back: then none of the group stands, and the writes
        // after it must not run outside a transaction, each committing alone.
        if tx.is_autocommit() {
            return Err("SQLite rolled the transaction back".to_owned());
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Opens one connection to the database at `path` with the settings the sqlx
/// connections have (see `SqliteStore::connect_with`).
pub(super) fn open(path: &Path, writes: bool) -> StoreResult<Connection> {
    let flags = if writes {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(map_err)?;
    // The writer never waits in SQLite's busy handler on an async worker:
    // see `commit_group`.
    let busy_timeout = if writes { Duration::ZERO } else { BUSY_TIMEOUT };
    connection.busy_timeout(busy_timeout).map_err(map_err)?;
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(map_err)?;
    connection
        .pragma_update(None, "foreign_keys", true)
        .map_err(map_err)?;
    if writes {
        // As on the sqlx writer: checkpoints are the store's housekeeping.
        connection
            .pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
            .map_err(map_err)?;
    }
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

impl Direct {
    /// Opens this path's readers and starts its committing task, which
    /// writes through `writer` and ends when the store is dropped.
    pub(super) fn open(path: &Path, writer: Arc<Mutex<Writer>>) -> StoreResult<Direct> {
        let readers = (0..READERS)
            .map(|_| open(path, false).map(std::sync::Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(commit_groups(writer, queued));
        Ok(Direct {
            queue,
            readers: readers.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// Adds this path's readers to `counts`.
    pub(crate) fn count_readers(&self, counts: &mut tessera_core::store::ConnectionCounts) {
        for reader in &self.readers {
            counts.open += 1;
            if reader.try_lock().is_err() {
                counts.busy += 1;
            }
        }
    }

    /// Runs `read` on a free reader, else waits for the next one: only as
    /// long as another thread's read, since no read awaits anything.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let count = self.readers.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            if let Ok(connection) = self.readers[(first + i) % count].try_lock() {
                return read(&connection).map_err(map_err);
            }
        }
        let connection = self.readers[first]
            .lock()
            .map_err(|_| StoreError::Other("a SQLite reader was poisoned".into()))?;
        read(&connection).map_err(map_err)
    }

    /// Runs `write` in the next group commit, and answers once it committed.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (done, answer) = oneshot::channel();
        let closing = || StoreError::Unavailable("the store is closing".into());
        self.queue
            .send(Box::new(Write {
                write: Some(write),
                outcome: None,
                done,
            }))
            .map_err(|_| closing())?;
        answer.await.map_err(|_| closing())?
    }

    pub(crate) fn authorization_code(
        &self,
        digest: &SecretDigest,
    ) -> StoreResult<Option<AuthorizationCode>> {
        self.read(|c| {
            c.prepare_cached(SELECT_CODE)?
                .query_row([&digest.0[..]], |row| Ok(code_from(row)))
                .optional()
        })?
        .transpose()
    }

    pub(crate) async fn consume_code(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> StoreResult<CodeUse> {
        let digest = *digest;
        self.write(move |c| {
            let fresh = c
                .prepare_cached(CONSUME_CODE)?
                .query_row(params![now, &digest.0[..]], |row| Ok(code_from(row)))
                .optional()?;
            if let Some(code) = fresh {
                return Ok(code.map(CodeUse::Fresh));
            }
            let replayed = c
                .prepare_cached(MARK_CODE_REPLAYED)?
                .query_row(params![now, &digest.0[..]], |row| Ok(code_from(row)))
                .optional()?;
            Ok(match replayed {
                Some(code) => code.map(CodeUse::Replayed),
                None => Ok(CodeUse::Invalid),
            })
        })
        .await?
    }

    pub(crate) async fn consume_bound_code(
        &self,
        digest: &SecretDigest,
        now: i64,
        client_id: &str,
        redirect_uri: &str,
    ) -> StoreResult<Option<AuthorizationCode>> {
        let digest = *digest;
        let (client_id, redirect_uri) = (client_id.to_owned(), redirect_uri.to_owned());
        self.write(move |c| {
            c.prepare_cached(CONSUME_BOUND_CODE)?
                .query_row(
                    params![now, &digest.0[..], client_id, redirect_uri],
                    |row| Ok(code_from(row)),
                )
                .optional()
        })
        .await?
        .transpose()
    }

    pub(crate) async fn record_code_tokens(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: i64,
        family_id: Option<&str>,
    ) -> StoreResult<bool> {
        let digest = *digest;
        let access_jti = access_jti.to_owned();
        let family_id = family_id.map(str::to_owned);
        self.write(move |c| {
            record_code(
                c,
                &digest,
                &access_jti,
                access_expires_at,
                family_id.as_deref(),
            )
        })
        .await
    }

    /// One write, so one savepoint: the refresh token and the code's record
    /// of it stand or fall together.
    pub(crate) async fn record_code_exchange(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: i64,
        refresh: &RefreshToken,
    ) -> StoreResult<bool> {
        let digest = *digest;
        let access_jti = access_jti.to_owned();
        let refresh = refresh.clone();
        self.write(move |c| {
            insert_refresh(c, &refresh)?;
            record_code(
                c,
                &digest,
                &access_jti,
                access_expires_at,
                Some(&refresh.family_id),
            )
        })
        .await
    }

    pub(crate) fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.read(|c| {
            c.prepare_cached(SELECT_USER)?
                .query_row([id], |row| Ok(user_from(row)))
                .optional()
        })?
        .transpose()
    }

    pub(crate) async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |c| insert_refresh(c, &token)).await
    }

    pub(crate) fn refresh_token(&self, jti: &str) -> StoreResult<Option<RefreshToken>> {
        self.read(|c| {
            c.prepare_cached(SELECT_REFRESH)?
                .query_row([jti], |row| Ok(refresh_from(row)))
                .optional()
        })?
        .transpose()
    }

    /// One write, so one savepoint: a rotation whose successor could not be
    /// written leaves the token current, so the client's retry is not
    /// mistaken for reuse (RFC 9700 §4.14.2).
    pub(crate) async fn rotate_refresh_token(
        &self,
        jti: &str,
        successor: &RefreshToken,
        now: i64,
    ) -> StoreResult<bool> {
        let jti = jti.to_owned();
        let successor = successor.clone();
        self.write(move |c| {
            let rotated =
                c.prepare_cached(ROTATE_REFRESH)?
                    .execute(params![now, &successor.jti, jti])?
                    == 1;
            if rotated {
                insert_refresh(c, &successor)?;
            }
            Ok(rotated)
        })
        .await
    }

    pub(crate) async fn touch_session_by_sid(
        &self,
        sid: &str,
        now: i64,
        idle_since: i64,
    ) -> StoreResult<Option<Session>> {
        let sid = sid.to_owned();
        self.write(move |c| {
            c.prepare_cached(TOUCH_SESSION)?
                .query_row(params![now, sid, idle_since], |row| Ok(session_from(row)))
                .optional()
        })
        .await?
        .transpose()
    }

    pub(crate) async fn insert_reference_token(&self, token: &ReferenceToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |c| {
            c.prepare_cached(INSERT_REFERENCE_TOKEN)?.execute(params![
                &token.digest.0[..],
                token.client_id,
                token.claims.to_string(),
                token.expires_at,
                token.revoked,
            ])?;
            Ok(())
        })
        .await
    }

    pub(crate) fn reference_token(
        &self,
        digest: &SecretDigest,
    ) -> StoreResult<Option<ReferenceToken>> {
        self.read(|c| {
            c.prepare_cached(SELECT_REFERENCE_TOKEN)?
                .query_row([&digest.0[..]], |row| Ok(reference_token_from(row, digest)))
                .optional()
        })?
        .transpose()
    }

    pub(crate) fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.read(|c| {
            c.prepare_cached(SELECT_SIGNING_KEYS)?
                .query_map([], |row| Ok(stored_key_from(row)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?
        .into_iter()
        .collect()
    }

    pub(crate) fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
        self.read(|c| c.prepare_cached(SELECT_REVOKED_JTI)?.exists([jti]))
    }
}

/// What a code's exchange issued, unless a replay came first.
fn record_code(
    c: &Connection,
    digest: &SecretDigest,
    access_jti: &str,
    access_expires_at: i64,
    family_id: Option<&str>,
) -> rusqlite::Result<bool> {
    let updated = c.prepare_cached(RECORD_CODE_TOKENS)?.execute(params![
        access_jti,
        access_expires_at,
        family_id,
        &digest.0[..]
    ])?;
    Ok(updated == 1)
}

fn insert_refresh(c: &Connection, token: &RefreshToken) -> rusqlite::Result<()> {
    c.prepare_cached(INSERT_REFRESH)?.execute(params![
        token.jti,
        token.family_id,
        token.client_id,
        token.user_id,
        token.scope.to_string(),
        to_json(&token.audiences),
        token.auth_time,
        token.sid,
        token.offline,
        token.issued_at,
        token.expires_at,
        token.family_expires_at,
        token.access_jti,
        token.access_expires_at,
        token.rotated_at,
        token.revoked,
        token.successor_jti,
        token.token_digest.as_ref().map(|d| &d.0[..]),
    ])?;
    Ok(())
}

impl Columns for Row<'_> {
    fn text(&self, column: &str) -> StoreResult<String> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn maybe_text(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn maybe_int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
    fn maybe_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
}

/// As `crate::common::map_err` does for sqlx: a taken key is a conflict, a
/// database that cannot be reached or written is unavailable.
fn map_err(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &err {
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict(err.to_string())
        }
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                ErrorCode::CannotOpen | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(err.to_string())
        }
        _ => StoreError::Other(err.to_string()),
    }
}

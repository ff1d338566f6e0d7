//! SQLite and PostgreSQL implementations of the core's store traits.
//!
//! Both backends run the same SQL (`$n` placeholders and `RETURNING` work on
//! both), generated into two concrete implementations by one macro, so no query
//! is written twice and no query branches on the backend. Each backend has its
//! own migrations, embedded in the binary and run at start.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tessera_core::store::{Store, StoreError};

#[macro_use]
mod common;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What to do when the database does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it (a SQLite file) and its tables: `serve` and `migrate`.
    Create,
    /// Refuse with [`StoreError::Missing`], writing nothing: every other
    /// command, so that one run from the wrong directory cannot start a new,
    /// empty database beside the real one.
    Refuse,
}

/// Opens the store named by `url` (`sqlite://path` or `postgres://…`), creating
/// it if needed, and runs its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, IfMissing::Create).await
}

/// Opens the store named by `url` and runs its migrations; `if_missing` says
/// whether a database that does not exist yet may be created.
pub async fn connect_with(url: &str, if_missing: IfMissing) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect_with(url, if_missing).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect_with(url, if_missing).await?))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
            redact(url)
        )))
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("sqlite://tessera.db"), "sqlite://tessera.db");
    }
}

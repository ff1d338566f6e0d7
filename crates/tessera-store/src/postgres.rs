//! PostgreSQL, for several Tessera instances sharing one database.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(map_err)?;
        // Migrations take an advisory lock, so instances starting together on one
        // database run them once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(PgStore { pool })
    }
}

impl_store!(PgStore, sqlx::Postgres, "postgres");

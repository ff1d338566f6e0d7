//! What both backends share: the SQL, row conversion helpers, and the macro that
//! implements the store traits for a concrete `sqlx` database.

use tessera_core::store::StoreError;

pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(err.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn parse_column<T: std::str::FromStr>(text: &str, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) const CLIENT_COLUMNS: &str = "id, name, secret_digest, auth_method, grants, redirect_uris, \
     scopes, audiences, token_format, access_token_ttl, introspection, created_at";

/// Implements every store trait for `$store`, whose `pool` is a `sqlx::Pool<$db>`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        use tessera_core::crypto::SecretDigest;
        use tessera_core::model::{Client, Resource};
        use tessera_core::scope::Scope;
        use tessera_core::store::{
            ClientStore, KeyStore, ReferenceToken, ResourceStore, Store, StoreError,
            StoreResult, StoredKey, TokenStore,
        };
        use $crate::common::{CLIENT_COLUMNS, from_json, map_err, parse_column, to_json};

        type Row = <$db as sqlx::Database>::Row;

        fn client_from_row(row: &Row) -> StoreResult<Client> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let digest: Option<Vec<u8>> = row.try_get("secret_digest").map_err(get_err)?;
            let secret_digest = match digest {
                Some(bytes) => Some(
                    SecretDigest::from_slice(&bytes)
                        .ok_or_else(|| StoreError::Corrupt("secret_digest length".into()))?,
                ),
                None => None,
            };
            let auth_method: Option<String> = row.try_get("auth_method").map_err(get_err)?;
            let token_format: Option<String> = row.try_get("token_format").map_err(get_err)?;
            let grants: String = row.try_get("grants").map_err(get_err)?;
            let redirect_uris: String = row.try_get("redirect_uris").map_err(get_err)?;
            let scopes: String = row.try_get("scopes").map_err(get_err)?;
            let audiences: String = row.try_get("audiences").map_err(get_err)?;
            let introspection: String = row.try_get("introspection").map_err(get_err)?;
            Ok(Client {
                id: row.try_get("id").map_err(get_err)?,
                name: row.try_get("name").map_err(get_err)?,
                secret_digest,
                auth_method: auth_method
                    .map(|m| parse_column(&m, "auth_method"))
                    .transpose()?,
                grants: from_json(&grants, "grants")?,
                redirect_uris: from_json(&redirect_uris, "redirect_uris")?,
                scopes: Scope::parse(&scopes)
                    .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))?,
                audiences: from_json(&audiences, "audiences")?,
                token_format: token_format
                    .map(|f| parse_column(&f, "token_format"))
                    .transpose()?,
                access_token_ttl: row.try_get("access_token_ttl").map_err(get_err)?,
                introspection: parse_column(&introspection, "introspection")?,
                created_at: row.try_get("created_at").map_err(get_err)?,
            })
        }

        fn resource_from_row(row: &Row) -> StoreResult<Resource> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let scopes: String = row.try_get("scopes").map_err(get_err)?;
            let token_format: Option<String> = row.try_get("token_format").map_err(get_err)?;
            let accepts: String = row.try_get("accepts").map_err(get_err)?;
            Ok(Resource {
                audience: row.try_get("audience").map_err(get_err)?,
                scopes: Scope::parse(&scopes)
                    .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))?,
                token_format: token_format
                    .map(|f| parse_column(&f, "token_format"))
                    .transpose()?,
                accepts: parse_column(&accepts, "accepts")?,
                created_at: row.try_get("created_at").map_err(get_err)?,
            })
        }

        fn key_from_row(row: &Row) -> StoreResult<StoredKey> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            Ok(StoredKey {
                kid: row.try_get("kid").map_err(get_err)?,
                alg: row.try_get("alg").map_err(get_err)?,
                sealed_private_key: row.try_get("sealed_private_key").map_err(get_err)?,
                created_at: row.try_get("created_at").map_err(get_err)?,
                activates_at: row.try_get("activates_at").map_err(get_err)?,
            })
        }

        #[async_trait]
        impl ClientStore for $store {
            async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
                let sql = const_format::concatcp!("SELECT ", CLIENT_COLUMNS, " FROM clients WHERE id = $1");
                sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(client_from_row)
                    .transpose()
            }

            async fn insert_client(&self, client: &Client) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO clients (", CLIENT_COLUMNS,
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                );
                sqlx::query(sql)
                    .bind(&client.id)
                    .bind(&client.name)
                    .bind(client.secret_digest.map(|d| d.0.to_vec()))
                    .bind(client.auth_method.map(|m| m.as_str()))
                    .bind(to_json(&client.grants))
                    .bind(to_json(&client.redirect_uris))
                    .bind(client.scopes.to_string())
                    .bind(to_json(&client.audiences))
                    .bind(client.token_format.map(|f| f.as_str()))
                    .bind(client.access_token_ttl)
                    .bind(match client.introspection {
                        tessera_core::model::IntrospectionPolicy::Any => "any",
                        tessera_core::model::IntrospectionPolicy::Own => "own",
                    })
                    .bind(client.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match map_err(e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("client {:?}", client.id))
                        }
                        other => other,
                    })?;
                Ok(())
            }

            async fn clients(&self) -> StoreResult<Vec<Client>> {
                let sql = const_format::concatcp!("SELECT ", CLIENT_COLUMNS, " FROM clients ORDER BY created_at, id");
                sqlx::query(sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(client_from_row)
                    .collect()
            }

            async fn delete_client(&self, id: &str) -> StoreResult<bool> {
                // The client's reference tokens go with it, in the same transaction.
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM reference_tokens WHERE client_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(deleted > 0)
            }

            async fn set_client_secret(&self, id: &str, digest: &SecretDigest) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE clients SET secret_digest = $1 WHERE id = $2 AND secret_digest IS NOT NULL",
                )
                .bind(digest.0.to_vec())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(updated > 0)
            }
        }

        #[async_trait]
        impl ResourceStore for $store {
            async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>> {
                sqlx::query(
                    "SELECT audience, scopes, token_format, accepts, created_at FROM resources WHERE audience = $1",
                )
                .bind(audience)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .as_ref()
                .map(resource_from_row)
                .transpose()
            }

            async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO resources (audience, scopes, token_format, accepts, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&resource.audience)
                .bind(resource.scopes.to_string())
                .bind(resource.token_format.map(|f| f.as_str()))
                .bind(resource.accepts.as_str())
                .bind(resource.created_at)
                .execute(&self.pool)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("resource {:?}", resource.audience))
                    }
                    other => other,
                })?;
                Ok(())
            }

            async fn resources(&self) -> StoreResult<Vec<Resource>> {
                sqlx::query(
                    "SELECT audience, scopes, token_format, accepts, created_at FROM resources ORDER BY created_at, audience",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(resource_from_row)
                .collect()
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
                sqlx::query(
                    "SELECT kid, alg, sealed_private_key, created_at, activates_at FROM signing_keys ORDER BY activates_at, created_at, kid",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(key_from_row)
                .collect()
            }

            async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, sealed_private_key, created_at, activates_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.sealed_private_key)
                .bind(key.created_at)
                .bind(key.activates_at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn insert_signing_key_unless_newer(
                &self,
                key: &StoredKey,
                newer_than: i64,
            ) -> StoreResult<bool> {
                // One statement: the check and the insert cannot be split by another
                // writer on SQLite; on PostgreSQL two instances racing in the same
                // instant could both insert, which only publishes one extra key.
                let inserted = sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, sealed_private_key, created_at, activates_at) \
                     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
                     (SELECT 1 FROM signing_keys WHERE alg = $6 AND activates_at > $7)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.sealed_private_key)
                .bind(key.created_at)
                .bind(key.activates_at)
                .bind(&key.alg)
                .bind(newer_than)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(inserted > 0)
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn insert_reference_token(&self, token: &ReferenceToken) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO reference_tokens (digest, client_id, claims, expires_at, revoked) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token.digest.0.to_vec())
                .bind(&token.client_id)
                .bind(token.claims.to_string())
                .bind(token.expires_at)
                .bind(token.revoked)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn reference_token(&self, digest: &SecretDigest) -> StoreResult<Option<ReferenceToken>> {
                let Some(row) = sqlx::query(
                    "SELECT client_id, claims, expires_at, revoked FROM reference_tokens WHERE digest = $1",
                )
                .bind(digest.0.to_vec())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                else {
                    return Ok(None);
                };
                let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                let claims: String = row.try_get("claims").map_err(get_err)?;
                Ok(Some(ReferenceToken {
                    digest: *digest,
                    client_id: row.try_get("client_id").map_err(get_err)?,
                    claims: from_json(&claims, "claims")?,
                    expires_at: row.try_get("expires_at").map_err(get_err)?,
                    revoked: row.try_get("revoked").map_err(get_err)?,
                }))
            }

            async fn revoke_reference_token(&self, digest: &SecretDigest) -> StoreResult<bool> {
                let updated = sqlx::query("UPDATE reference_tokens SET revoked = TRUE WHERE digest = $1")
                    .bind(digest.0.to_vec())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(updated > 0)
            }

            async fn revoke_jti(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO revoked_jtis (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
                Ok(sqlx::query("SELECT 1 FROM revoked_jtis WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .is_some())
            }

            async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
                let mut purged = 0;
                for sql in [
                    "DELETE FROM revoked_jtis WHERE expires_at <= $1",
                    "DELETE FROM reference_tokens WHERE expires_at <= $1",
                ] {
                    purged += sqlx::query(sql)
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                }
                Ok(purged)
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }
    };
}

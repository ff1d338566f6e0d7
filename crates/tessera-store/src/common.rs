//! What both backends share: the SQL, row conversion helpers, and the macro that
//! implements the store traits for a concrete `sqlx` database.

use tessera_core::crypto::SecretDigest;
use tessera_core::scope::Scope;
use tessera_core::store::{
    AuthorizationCode, ReferenceToken, RefreshToken, Roles, Session, StoreError, StoredKey, User,
};

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
     scopes, audiences, token_format, access_token_ttl, introspection, created_at, \
     require_pkce, id_token_alg, post_logout_redirect_uris, sealed_secret, jwks, jwks_uri, metadata";

/// The columns a client's owner may change, in the order
/// `bind_client_settings` binds them. The public keys are settings; the
/// secret (digest and sealed copy) is not, so that an update never undoes a
/// rotation unless it means to.
pub(crate) const CLIENT_SETTINGS_COLUMNS: &str = "name, auth_method, grants, redirect_uris, scopes, \
     audiences, token_format, access_token_ttl, introspection, require_pkce, id_token_alg, \
     post_logout_redirect_uris, jwks, jwks_uri, metadata";

pub(crate) const RESOURCE_COLUMNS: &str = "audience, scopes, token_format, accepts, created_at, \
     signing_alg, secret_version, sealed_secret";

/// The columns a resource's settings fill, in the order
/// `bind_resource_settings` binds them.
pub(crate) const RESOURCE_SETTINGS_COLUMNS: &str =
    "scopes, token_format, accepts, signing_alg, secret_version, sealed_secret";

pub(crate) const USER_COLUMNS: &str = "id, username, email, name, password_hash, created_at, roles";

pub(crate) const SESSION_COLUMNS: &str = "digest, sid, user_id, auth_time, last_seen, expires_at";

pub(crate) const CONSENT_COLUMNS: &str = "user_id, client_id, scopes, granted_at";

pub(crate) const CODE_COLUMNS: &str = "digest, client_id, user_id, redirect_uri, code_challenge, scope, \
     nonce, audiences, auth_time, sid, expires_at, consumed_at, access_jti, access_expires_at, family_id";

pub(crate) const REFRESH_COLUMNS: &str = "jti, family_id, client_id, user_id, scope, audiences, auth_time, \
     sid, offline, issued_at, expires_at, family_expires_at, access_jti, access_expires_at, rotated_at, \
     revoked, successor_jti, token_digest";

// The statements of the token endpoint's paths, shared by the sqlx
// implementations and SQLite's direct path (`sqlite::direct`). SQLite numbers
// `$N` parameters in order of first appearance, as they are written here.

pub(crate) const SELECT_CODE: &str = const_format::concatcp!(
    "SELECT ",
    CODE_COLUMNS,
    " FROM authorization_codes WHERE digest = $1"
);

/// The guarded UPDATE is the single-use check: on PostgreSQL a concurrent
/// updater waits for the row and re-checks `consumed_at IS NULL` on the
/// committed version, so it loses; on SQLite writes are serialised.
pub(crate) const CONSUME_CODE: &str = const_format::concatcp!(
    "UPDATE authorization_codes SET consumed_at = $1 \
     WHERE digest = $2 AND consumed_at IS NULL AND expires_at > $1 RETURNING ",
    CODE_COLUMNS
);

/// [`CONSUME_CODE`] only for the code's own client and redirect URI.
pub(crate) const CONSUME_BOUND_CODE: &str = const_format::concatcp!(
    "UPDATE authorization_codes SET consumed_at = $1 \
     WHERE digest = $2 AND consumed_at IS NULL AND expires_at > $1 \
     AND client_id = $3 AND redirect_uri = $4 RETURNING ",
    CODE_COLUMNS
);

/// A consumed code is a replay even after it has expired, for as long as it
/// is kept (RFC 6749 §4.1.2). The replay is marked in the statement that reads
/// what the exchange recorded: one still under way then fails to record
/// ([`RECORD_CODE_TOKENS`]).
pub(crate) const MARK_CODE_REPLAYED: &str = const_format::concatcp!(
    "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, $1) \
     WHERE digest = $2 AND consumed_at IS NOT NULL RETURNING ",
    CODE_COLUMNS
);

pub(crate) const RECORD_CODE_TOKENS: &str = "UPDATE authorization_codes \
     SET access_jti = $1, access_expires_at = $2, family_id = $3 \
     WHERE digest = $4 AND replayed_at IS NULL";

pub(crate) const INSERT_REFRESH: &str = const_format::concatcp!(
    "INSERT INTO refresh_tokens (",
    REFRESH_COLUMNS,
    ") VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);

pub(crate) const SELECT_REFRESH: &str = const_format::concatcp!(
    "SELECT ",
    REFRESH_COLUMNS,
    " FROM refresh_tokens WHERE jti = $1"
);

/// The guarded UPDATE admits one winner, as [`CONSUME_CODE`] does.
pub(crate) const ROTATE_REFRESH: &str = "UPDATE refresh_tokens SET rotated_at = $1, successor_jti = $2 \
     WHERE jti = $3 AND rotated_at IS NULL AND NOT revoked \
     AND expires_at > $1 AND family_expires_at > $1";

/// Every signing key, oldest activation first: read for each `/jwks.json`
/// and each second's key reload.
pub(crate) const SELECT_SIGNING_KEYS: &str = "SELECT kid, alg, sealed_private_key, created_at, \
     activates_at, revoked_at FROM signing_keys ORDER BY activates_at, created_at, kid";

/// Extends a session that is neither expired nor idle since `$3`.
pub(crate) const TOUCH_SESSION: &str = const_format::concatcp!(
    "UPDATE sessions SET last_seen = $1 \
     WHERE sid = $2 AND expires_at > $1 AND last_seen > $3 RETURNING ",
    SESSION_COLUMNS
);

pub(crate) const SELECT_USER: &str =
    const_format::concatcp!("SELECT ", USER_COLUMNS, " FROM users WHERE id = $1");

pub(crate) const INSERT_REFERENCE_TOKEN: &str = "INSERT INTO reference_tokens \
     (digest, client_id, claims, expires_at, revoked) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const SELECT_REFERENCE_TOKEN: &str =
    "SELECT client_id, claims, expires_at, revoked FROM reference_tokens WHERE digest = $1";

pub(crate) const SELECT_REVOKED_JTI: &str = "SELECT 1 FROM revoked_jtis WHERE jti = $1";

// Part of the store contract, so that every implementation purges alike.
pub(crate) use tessera_core::store::{CODE_RETENTION, LOGIN_FAILURE_RETENTION};

/// Rows deleted per statement when purging expired records.
pub(crate) const PURGE_BATCH: u64 = 500;

pub(crate) fn digest_column(bytes: &[u8], column: &str) -> Result<SecretDigest, StoreError> {
    SecretDigest::from_slice(bytes).ok_or_else(|| StoreError::Corrupt(format!("{column} length")))
}

pub(crate) const DEVICE_COLUMNS: &str = "digest, user_code, client_id, scope, audiences, expires_at, \
     poll_interval, last_polled_at, status, user_id, auth_time";

pub(crate) fn scope_column(text: &str, column: &str) -> Result<Scope, StoreError> {
    Scope::parse(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// One row's columns by name, whichever driver read it (sqlx here, rusqlite
/// on SQLite's direct path), so that each record is read from its row in one
/// place.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A column the driver could not read as the type the record wants.
pub(crate) fn unreadable(column: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {err}"))
}

pub(crate) fn user_from(row: &impl Columns) -> Result<User, StoreError> {
    Ok(User {
        id: row.text("id")?,
        username: row.text("username")?,
        email: row.maybe_text("email")?,
        name: row.maybe_text("name")?,
        password_hash: row.text("password_hash")?,
        roles: Roles::from_text(&row.text("roles")?),
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn stored_key_from(row: &impl Columns) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        sealed_private_key: row.bytes("sealed_private_key")?,
        created_at: row.int("created_at")?,
        activates_at: row.int("activates_at")?,
        revoked_at: row.maybe_int("revoked_at")?,
    })
}

pub(crate) fn session_from(row: &impl Columns) -> Result<Session, StoreError> {
    Ok(Session {
        digest: digest_column(&row.bytes("digest")?, "digest")?,
        sid: row.text("sid")?,
        user_id: row.text("user_id")?,
        auth_time: row.int("auth_time")?,
        last_seen: row.int("last_seen")?,
        expires_at: row.int("expires_at")?,
    })
}

pub(crate) fn code_from(row: &impl Columns) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        digest: digest_column(&row.bytes("digest")?, "digest")?,
        client_id: row.text("client_id")?,
        user_id: row.text("user_id")?,
        redirect_uri: row.text("redirect_uri")?,
        code_challenge: row.maybe_text("code_challenge")?,
        scope: scope_column(&row.text("scope")?, "scope")?,
        nonce: row.maybe_text("nonce")?,
        audiences: from_json(&row.text("audiences")?, "audiences")?,
        auth_time: row.int("auth_time")?,
        sid: row.maybe_text("sid")?,
        expires_at: row.int("expires_at")?,
        consumed_at: row.maybe_int("consumed_at")?,
        access_jti: row.maybe_text("access_jti")?,
        access_expires_at: row.maybe_int("access_expires_at")?,
        family_id: row.maybe_text("family_id")?,
    })
}

/// A reference token's row, read by its digest.
pub(crate) fn reference_token_from(
    row: &impl Columns,
    digest: &SecretDigest,
) -> Result<ReferenceToken, StoreError> {
    Ok(ReferenceToken {
        digest: *digest,
        client_id: row.text("client_id")?,
        claims: from_json(&row.text("claims")?, "claims")?,
        expires_at: row.int("expires_at")?,
        revoked: row.flag("revoked")?,
    })
}

pub(crate) fn refresh_from(row: &impl Columns) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        jti: row.text("jti")?,
        family_id: row.text("family_id")?,
        client_id: row.text("client_id")?,
        user_id: row.text("user_id")?,
        scope: scope_column(&row.text("scope")?, "scope")?,
        audiences: from_json(&row.text("audiences")?, "audiences")?,
        auth_time: row.int("auth_time")?,
        sid: row.maybe_text("sid")?,
        offline: row.flag("offline")?,
        issued_at: row.int("issued_at")?,
        expires_at: row.int("expires_at")?,
        family_expires_at: row.int("family_expires_at")?,
        access_jti: row.maybe_text("access_jti")?,
        access_expires_at: row.maybe_int("access_expires_at")?,
        rotated_at: row.maybe_int("rotated_at")?,
        revoked: row.flag("revoked")?,
        successor_jti: row.maybe_text("successor_jti")?,
        token_digest: row
            .maybe_bytes("token_digest")?
            .map(|bytes| digest_column(&bytes, "token_digest"))
            .transpose()?,
    })
}

/// Implements every store trait for `$store` on sqlx's `$db`, whose rows are
/// `$row`: `reader()` lends a connection for reads, `writer()` the one for
/// every statement that writes, and `direct()` SQLite's direct path, if any.
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty, $backend:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        use tessera_core::crypto::SecretDigest;
        use tessera_core::model::{Client, Resource, SealedSecret};
        use tessera_core::scope::Scope;
        use tessera_core::store::{
            AuthorizationCode, ClientStore, CodeStore, CodeUse, Consent, ConsentStore, KeyStore,
            LoginFailures, ReferenceToken, RefreshStore, RefreshToken, ResourceStore,
            SecretUpdate, Session, SessionStore, Store, StoreError, StoreResult, StoredKey, ThrottleStore,
            TokenStore, User, UserStore, DeviceAuthorization, DevicePoll, DeviceStatus, DeviceStore,
        };
        use $crate::common::{
            CLIENT_COLUMNS, CLIENT_SETTINGS_COLUMNS, CODE_COLUMNS, DEVICE_COLUMNS, CODE_RETENTION, PURGE_BATCH, CONSENT_COLUMNS, LOGIN_FAILURE_RETENTION,
            RESOURCE_COLUMNS, RESOURCE_SETTINGS_COLUMNS, SESSION_COLUMNS, USER_COLUMNS, digest_column, from_json, map_err,
            parse_column, scope_column, to_json, code_from, reference_token_from, refresh_from, session_from, user_from, CONSUME_BOUND_CODE, CONSUME_CODE, INSERT_REFERENCE_TOKEN, INSERT_REFRESH, MARK_CODE_REPLAYED, RECORD_CODE_TOKENS,
            ROTATE_REFRESH, SELECT_CODE, SELECT_REFERENCE_TOKEN, SELECT_REFRESH, SELECT_REVOKED_JTI, SELECT_SIGNING_KEYS, SELECT_USER, TOUCH_SESSION, stored_key_from,
        };

        type Row = <$db as sqlx::Database>::Row;

        // The concrete row type: coherence cannot see through `Row`'s
        // projection to tell it from rusqlite's.
        impl $crate::common::Columns for $row {
            fn text(&self, column: &str) -> StoreResult<String> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn maybe_text(&self, column: &str) -> StoreResult<Option<String>> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn int(&self, column: &str) -> StoreResult<i64> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn maybe_int(&self, column: &str) -> StoreResult<Option<i64>> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn flag(&self, column: &str) -> StoreResult<bool> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
            fn maybe_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
                self.try_get(column).map_err(|e| $crate::common::unreadable(column, e))
            }
        }

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
            let id_token_alg: Option<String> = row.try_get("id_token_alg").map_err(get_err)?;
            let post_logout: String =
                row.try_get("post_logout_redirect_uris").map_err(get_err)?;
            let jwks: Option<String> = row.try_get("jwks").map_err(get_err)?;
            let metadata: String = row.try_get("metadata").map_err(get_err)?;
            Ok(Client {
                metadata: from_json(&metadata, "metadata")?,
                sealed_secret: row.try_get("sealed_secret").map_err(get_err)?,
                jwks: jwks.map(|j| from_json(&j, "jwks")).transpose()?,
                jwks_uri: row.try_get("jwks_uri").map_err(get_err)?,
                require_pkce: row.try_get("require_pkce").map_err(get_err)?,
                id_token_alg: id_token_alg
                    .map(|a| parse_column(&a, "id_token_alg"))
                    .transpose()?,
                post_logout_redirect_uris: from_json(&post_logout, "post_logout_redirect_uris")?,
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

        /// Binds a client's settings, in the order of `CLIENT_SETTINGS_COLUMNS`:
        /// one list for the insert and the update.
        fn bind_client_settings<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            client: &'q Client,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            query
                .bind(&client.name)
                .bind(client.auth_method.map(|m| m.as_str()))
                .bind(to_json(&client.grants))
                .bind(to_json(&client.redirect_uris))
                .bind(client.scopes.to_string())
                .bind(to_json(&client.audiences))
                .bind(client.token_format.map(|f| f.as_str()))
                .bind(client.access_token_ttl)
                .bind(client.introspection.as_str())
                .bind(client.require_pkce)
                .bind(client.id_token_alg.map(|a| a.as_str()))
                .bind(to_json(&client.post_logout_redirect_uris))
                .bind(client.jwks.as_ref().map(to_json))
                .bind(client.jwks_uri.as_deref())
                .bind(to_json(&client.metadata))
        }

        fn resource_from_row(row: &Row) -> StoreResult<Resource> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let scopes: String = row.try_get("scopes").map_err(get_err)?;
            let token_format: Option<String> = row.try_get("token_format").map_err(get_err)?;
            let accepts: String = row.try_get("accepts").map_err(get_err)?;
            let signing_alg: Option<String> = row.try_get("signing_alg").map_err(get_err)?;
            let sealed_secret: Option<Vec<u8>> = row.try_get("sealed_secret").map_err(get_err)?;
            Ok(Resource {
                audience: row.try_get("audience").map_err(get_err)?,
                scopes: Scope::parse(&scopes)
                    .map_err(|e| StoreError::Corrupt(format!("scopes: {e}")))?,
                token_format: token_format
                    .map(|f| parse_column(&f, "token_format"))
                    .transpose()?,
                accepts: parse_column(&accepts, "accepts")?,
                signing_alg: signing_alg
                    .map(|a| parse_column(&a, "signing_alg"))
                    .transpose()?,
                secret_version: row.try_get("secret_version").map_err(get_err)?,
                sealed_secret: sealed_secret.map(SealedSecret),
                created_at: row.try_get("created_at").map_err(get_err)?,
            })
        }

        /// Binds a resource's settings, in the order of
        /// `RESOURCE_SETTINGS_COLUMNS`: one list for the insert and the update.
        fn bind_resource_settings<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            resource: &'q Resource,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            query
                .bind(resource.scopes.to_string())
                .bind(resource.token_format.map(|f| f.as_str()))
                .bind(resource.accepts.as_str())
                .bind(resource.signing_alg.map(|a| a.as_str()))
                .bind(resource.secret_version)
                .bind(resource.sealed_secret.as_ref().map(|s| s.0.as_slice()))
        }

        /// `update_client`, and with `expected` only while the stored metadata
        /// document is still that one, in the same statement.
        async fn replace_client(
            store: &$store,
            client: &Client,
            secret: SecretUpdate,
            expected: Option<&tessera_core::model::ClientMetadata>,
        ) -> StoreResult<bool> {
            // The document as this store writes it: the same text compares
            // equal, so `metadata = $n` is a compare-and-swap.
            const KEEP: &str = const_format::concatcp!(
                "UPDATE clients SET (", CLIENT_SETTINGS_COLUMNS, ") = \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) WHERE id = $16"
            );
            const REPLACE: &str = const_format::concatcp!(
                "UPDATE clients SET (", CLIENT_SETTINGS_COLUMNS, ", secret_digest, sealed_secret) = \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 WHERE id = $18"
            );
            const KEEP_IF: &str = const_format::concatcp!(KEEP, " AND metadata = $17");
            const REPLACE_IF: &str = const_format::concatcp!(REPLACE, " AND metadata = $19");
            let sql = match (secret, expected.is_some()) {
                (SecretUpdate::Keep, false) => KEEP,
                (SecretUpdate::Keep, true) => KEEP_IF,
                (SecretUpdate::Replace, false) => REPLACE,
                (SecretUpdate::Replace, true) => REPLACE_IF,
            };
            let mut query = bind_client_settings(sqlx::query(sql), client);
            if secret == SecretUpdate::Replace {
                query = query
                    .bind(client.secret_digest.map(|d| d.0.to_vec()))
                    .bind(client.sealed_secret.as_deref());
            }
            query = query.bind(&client.id);
            if let Some(expected) = expected {
                query = query.bind(to_json(expected));
            }
            let updated = query
                .execute(&mut *store.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
            Ok(updated > 0)
        }

        #[async_trait]
        impl ClientStore for $store {
            async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
                let sql = const_format::concatcp!("SELECT ", CLIENT_COLUMNS, " FROM clients WHERE id = $1");
                sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(client_from_row)
                    .transpose()
            }

            async fn insert_client(&self, client: &Client) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO clients (", CLIENT_SETTINGS_COLUMNS, ", id, secret_digest, sealed_secret, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19)"
                );
                bind_client_settings(sqlx::query(sql), client)
                    .bind(&client.id)
                    .bind(client.secret_digest.map(|d| d.0.to_vec()))
                    .bind(client.sealed_secret.as_deref())
                    .bind(client.created_at)
                    .execute(&mut *self.writer().await?)
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
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(client_from_row)
                    .collect()
            }

            async fn delete_client(&self, id: &str) -> StoreResult<bool> {
                // What was granted to the client goes with it, in the same
                // transaction, so that a client later registered under the same ID
                // inherits no consent and no tokens.
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                for sql in [
                    "DELETE FROM reference_tokens WHERE client_id = $1",
                    "DELETE FROM consents WHERE client_id = $1",
                    "DELETE FROM authorization_codes WHERE client_id = $1",
                    "DELETE FROM refresh_tokens WHERE client_id = $1",
                    "DELETE FROM trace_events WHERE client_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(deleted > 0)
            }

            async fn update_client(&self, client: &Client, secret: SecretUpdate) -> StoreResult<bool> {
                replace_client(self, client, secret, None).await
            }

            async fn update_client_if_unchanged(
                &self,
                client: &Client,
                secret: SecretUpdate,
                expected: &tessera_core::model::ClientMetadata,
            ) -> StoreResult<bool> {
                replace_client(self, client, secret, Some(expected)).await
            }

            async fn record_client_assertion(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: i64,
                now: i64,
            ) -> StoreResult<bool> {
                // One statement: a new jti is inserted; one already recorded is
                // taken over only if its record has expired. Either way exactly
                // one of concurrent uses changes a row.
                let recorded = sqlx::query(
                    "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE client_assertion_jtis.expires_at <= $4",
                )
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(recorded > 0)
            }

            async fn set_client_secret(
                &self,
                id: &str,
                digest: &SecretDigest,
                sealed: Option<&[u8]>,
            ) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE clients SET secret_digest = $1, sealed_secret = $2 \
                     WHERE id = $3 AND secret_digest IS NOT NULL",
                )
                .bind(digest.0.to_vec())
                .bind(sealed)
                .bind(id)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(updated > 0)
            }
        }

        fn trusted_issuer_from_row(row: &Row) -> StoreResult<tessera_core::store::TrustedIssuer> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let jwks: Option<String> = row.try_get("jwks").map_err(get_err)?;
            Ok(tessera_core::store::TrustedIssuer {
                issuer: row.try_get("issuer").map_err(get_err)?,
                jwks: jwks.map(|j| from_json(&j, "jwks")).transpose()?,
                jwks_uri: row.try_get("jwks_uri").map_err(get_err)?,
                created_at: row.try_get("created_at").map_err(get_err)?,
            })
        }

        fn saml_idp_from_row(row: &Row) -> StoreResult<tessera_core::store::SamlIdp> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            Ok(tessera_core::store::SamlIdp {
                entity_id: row.try_get("entity_id").map_err(get_err)?,
                certificate_pem: row.try_get("certificate_pem").map_err(get_err)?,
                created_at: row.try_get("created_at").map_err(get_err)?,
            })
        }

        #[async_trait]
        impl tessera_core::store::TrustStore for $store {
            async fn trusted_issuer(
                &self,
                issuer: &str,
            ) -> StoreResult<Option<tessera_core::store::TrustedIssuer>> {
                sqlx::query("SELECT issuer, jwks, jwks_uri, created_at FROM trusted_issuers WHERE issuer = $1")
                    .bind(issuer)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(trusted_issuer_from_row)
                    .transpose()
            }

            async fn insert_trusted_issuer(
                &self,
                issuer: &tessera_core::store::TrustedIssuer,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO trusted_issuers (issuer, jwks, jwks_uri, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&issuer.issuer)
                .bind(issuer.jwks.as_ref().map(to_json))
                .bind(issuer.jwks_uri.as_deref())
                .bind(issuer.created_at)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("trusted issuer {:?}", issuer.issuer))
                    }
                    other => other,
                })?;
                Ok(())
            }

            async fn trusted_issuers(&self) -> StoreResult<Vec<tessera_core::store::TrustedIssuer>> {
                sqlx::query("SELECT issuer, jwks, jwks_uri, created_at FROM trusted_issuers ORDER BY created_at, issuer")
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(trusted_issuer_from_row)
                    .collect()
            }

            async fn delete_trusted_issuer(&self, issuer: &str) -> StoreResult<bool> {
                let deleted = sqlx::query("DELETE FROM trusted_issuers WHERE issuer = $1")
                    .bind(issuer)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn saml_idp(&self, entity_id: &str) -> StoreResult<Option<tessera_core::store::SamlIdp>> {
                sqlx::query("SELECT entity_id, certificate_pem, created_at FROM saml_idps WHERE entity_id = $1")
                    .bind(entity_id)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(saml_idp_from_row)
                    .transpose()
            }

            async fn insert_saml_idp(&self, idp: &tessera_core::store::SamlIdp) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO saml_idps (entity_id, certificate_pem, created_at) VALUES ($1, $2, $3)",
                )
                .bind(&idp.entity_id)
                .bind(&idp.certificate_pem)
                .bind(idp.created_at)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("SAML identity provider {:?}", idp.entity_id))
                    }
                    other => other,
                })?;
                Ok(())
            }

            async fn saml_idps(&self) -> StoreResult<Vec<tessera_core::store::SamlIdp>> {
                sqlx::query("SELECT entity_id, certificate_pem, created_at FROM saml_idps ORDER BY created_at, entity_id")
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(saml_idp_from_row)
                    .collect()
            }

            async fn delete_saml_idp(&self, entity_id: &str) -> StoreResult<bool> {
                let deleted = sqlx::query("DELETE FROM saml_idps WHERE entity_id = $1")
                    .bind(entity_id)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn record_assertion(
                &self,
                kind: tessera_core::store::AssertionKind,
                issuer: &str,
                id: &str,
                expires_at: i64,
                now: i64,
            ) -> StoreResult<bool> {
                // As for client assertions: one statement, so that of
                // concurrent uses exactly one changes a row.
                let recorded = sqlx::query(
                    "INSERT INTO assertion_ids (kind, issuer, id, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, issuer, id) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE assertion_ids.expires_at <= $5",
                )
                .bind(kind.as_str())
                .bind(issuer)
                .bind(id)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(recorded > 0)
            }
        }

        fn operator_token_from_row(
            row: &Row,
        ) -> StoreResult<tessera_core::store::OperatorToken> {
            let purpose: String = row.try_get("purpose").map_err(map_err)?;
            Ok(tessera_core::store::OperatorToken {
                id: row.try_get("id").map_err(map_err)?,
                purpose: parse_column(&purpose, "purpose")?,
                digest: digest_column(&row.try_get::<Vec<u8>, _>("digest").map_err(map_err)?, "digest")?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                expires_at: row.try_get("expires_at").map_err(map_err)?,
            })
        }

        #[async_trait]
        impl tessera_core::store::OperatorTokenStore for $store {
            async fn insert_operator_token(
                &self,
                token: &tessera_core::store::OperatorToken,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO operator_tokens (id, purpose, digest, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.id)
                .bind(token.purpose.as_str())
                .bind(token.digest.0.to_vec())
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "{} token {:?}",
                        token.purpose.as_str(),
                        token.id
                    )),
                    other => other,
                })?;
                Ok(())
            }

            async fn operator_token(
                &self,
                purpose: tessera_core::store::TokenPurpose,
                digest: &SecretDigest,
            ) -> StoreResult<Option<tessera_core::store::OperatorToken>> {
                sqlx::query(
                    "SELECT id, purpose, digest, created_at, expires_at FROM operator_tokens \
                     WHERE digest = $1 AND purpose = $2",
                )
                .bind(digest.0.to_vec())
                .bind(purpose.as_str())
                .fetch_optional(&mut *self.reader().await?)
                .await
                .map_err(map_err)?
                .as_ref()
                .map(operator_token_from_row)
                .transpose()
            }

            async fn operator_tokens(
                &self,
                purpose: tessera_core::store::TokenPurpose,
            ) -> StoreResult<Vec<tessera_core::store::OperatorToken>> {
                sqlx::query(
                    "SELECT id, purpose, digest, created_at, expires_at FROM operator_tokens \
                     WHERE purpose = $1 ORDER BY created_at, id",
                )
                .bind(purpose.as_str())
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(map_err)?
                .iter()
                .map(operator_token_from_row)
                .collect()
            }

            async fn delete_operator_token(
                &self,
                purpose: tessera_core::store::TokenPurpose,
                id: &str,
            ) -> StoreResult<bool> {
                let deleted = sqlx::query("DELETE FROM operator_tokens WHERE id = $1 AND purpose = $2")
                    .bind(id)
                    .bind(purpose.as_str())
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(deleted > 0)
            }
        }

        #[async_trait]
        impl tessera_core::store::TraceStore for $store {
            async fn record_trace(
                &self,
                events: &[tessera_core::trace::TraceEvent],
                keep_per_client: usize,
            ) -> StoreResult<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                let mut clients: Vec<&str> = Vec::new();
                for event in events {
                    let step = serde_json::to_string(&event.step)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    sqlx::query("INSERT INTO trace_events (client_id, at, event) VALUES ($1, $2, $3)")
                        .bind(&event.client_id)
                        .bind(event.at)
                        .bind(step)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if !clients.contains(&event.client_id.as_str()) {
                        clients.push(&event.client_id);
                    }
                }
                let keep = i64::try_from(keep_per_client).unwrap_or(i64::MAX);
                for client in clients {
                    sqlx::query(
                        "DELETE FROM trace_events WHERE client_id = $1 AND id < \
                         (SELECT COALESCE(MIN(id), 0) FROM (SELECT id FROM trace_events \
                          WHERE client_id = $1 ORDER BY id DESC LIMIT $2) AS newest)",
                    )
                    .bind(client)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn trace(
                &self,
                client_id: &str,
                limit: usize,
            ) -> StoreResult<Vec<tessera_core::trace::TraceEvent>> {
                sqlx::query(
                    "SELECT client_id, at, event FROM trace_events WHERE client_id = $1 \
                     ORDER BY id DESC LIMIT $2",
                )
                .bind(client_id)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(map_err)?
                .iter()
                .map(|row| {
                    Ok(tessera_core::trace::TraceEvent {
                        client_id: row.try_get("client_id").map_err(map_err)?,
                        at: row.try_get("at").map_err(map_err)?,
                        step: from_json(&row.try_get::<String, _>("event").map_err(map_err)?, "event")?,
                    })
                })
                .collect()
            }
        }

        #[async_trait]
        impl ResourceStore for $store {
            async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>> {
                let sql = const_format::concatcp!("SELECT ", RESOURCE_COLUMNS, " FROM resources WHERE audience = $1");
                sqlx::query(sql)
                    .bind(audience)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(resource_from_row)
                    .transpose()
            }

            async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO resources (", RESOURCE_SETTINGS_COLUMNS, ", audience, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                );
                bind_resource_settings(sqlx::query(sql), resource)
                    .bind(&resource.audience)
                    .bind(resource.created_at)
                    .execute(&mut *self.writer().await?)
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
                let sql = const_format::concatcp!("SELECT ", RESOURCE_COLUMNS, " FROM resources ORDER BY created_at, audience");
                sqlx::query(sql)
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(resource_from_row)
                    .collect()
            }

            async fn update_resource(&self, resource: &Resource, secret_version: i64) -> StoreResult<bool> {
                let sql = const_format::concatcp!(
                    "UPDATE resources SET (", RESOURCE_SETTINGS_COLUMNS, ") = \
                     ($1, $2, $3, $4, $5, $6) WHERE audience = $7 AND secret_version = $8"
                );
                let updated = bind_resource_settings(sqlx::query(sql), resource)
                    .bind(&resource.audience)
                    .bind(secret_version)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(updated > 0)
            }

            async fn rotate_resource_secret(
                &self,
                audience: &str,
                from_version: i64,
                sealed: &SealedSecret,
            ) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE resources SET sealed_secret = $1, secret_version = $2 + 1 \
                     WHERE audience = $3 AND secret_version = $2 AND signing_alg = 'HS256'",
                )
                .bind(sealed.0.as_slice())
                .bind(from_version)
                .bind(audience)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(updated > 0)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
                if let Some(direct) = self.direct() {
                    return direct.signing_keys();
                }
                sqlx::query(SELECT_SIGNING_KEYS)
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(stored_key_from)
                    .collect()
            }

            async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, sealed_private_key, created_at, activates_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.sealed_private_key)
                .bind(key.created_at)
                .bind(key.activates_at)
                .bind(key.revoked_at)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn insert_signing_key_unless_newer(
                &self,
                key: &StoredKey,
                newer_than: i64,
            ) -> StoreResult<bool> {
                // The check and the insert in one transaction that holds the
                // store's key lock: instances starting or rotating at the same
                // instant on one database make one key, not one each.
                let mut writer = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *writer)
                    .await
                    .map_err(map_err)?;
                <$store>::lock_signing_keys(&mut tx).await?;
                let inserted = sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, sealed_private_key, created_at, activates_at) \
                     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
                     (SELECT 1 FROM signing_keys WHERE alg = $6 AND activates_at > $7 AND revoked_at IS NULL)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.sealed_private_key)
                .bind(key.created_at)
                .bind(key.activates_at)
                .bind(&key.alg)
                .bind(newer_than)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(inserted > 0)
            }

            async fn revoke_signing_key(&self, kid: &str, now: i64) -> StoreResult<bool> {
                let revoked = sqlx::query(
                    "UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(kid)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(revoked > 0)
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn insert_reference_token(&self, token: &ReferenceToken) -> StoreResult<()> {
                if let Some(direct) = self.direct() {
                    return direct.insert_reference_token(token).await;
                }
                sqlx::query(INSERT_REFERENCE_TOKEN)
                .bind(token.digest.0.to_vec())
                .bind(&token.client_id)
                .bind(token.claims.to_string())
                .bind(token.expires_at)
                .bind(token.revoked)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn reference_token(&self, digest: &SecretDigest) -> StoreResult<Option<ReferenceToken>> {
                if let Some(direct) = self.direct() {
                    return direct.reference_token(digest);
                }
                sqlx::query(SELECT_REFERENCE_TOKEN)
                    .bind(digest.0.to_vec())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .map(|row| reference_token_from(&row, digest))
                    .transpose()
            }

            async fn revoke_reference_token(&self, digest: &SecretDigest) -> StoreResult<bool> {
                let updated = sqlx::query("UPDATE reference_tokens SET revoked = TRUE WHERE digest = $1")
                    .bind(digest.0.to_vec())
                    .execute(&mut *self.writer().await?)
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
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn record_user_access_token(
                &self,
                jti: &str,
                user_id: &str,
                client_id: &str,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO user_access_tokens (jti, user_id, client_id, expires_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(user_id)
                .bind(client_id)
                .bind(expires_at)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
                if let Some(direct) = self.direct() {
                    return direct.is_jti_revoked(jti);
                }
                Ok(sqlx::query(SELECT_REVOKED_JTI)
                    .bind(jti)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .is_some())
            }

            async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
                // (table, its key, the column that says when a row may go, the
                // bound). Rows go in batches of PURGE_BATCH, each its own short
                // statement: writes queued meanwhile on the one writer
                // connection go in between, so a large backlog never holds
                // them up for long.
                let tables: [(&str, &str, &str, i64); 12] = [
                    ("revoked_jtis", "jti", "expires_at <= $1", now),
                    ("user_access_tokens", "jti", "expires_at <= $1", now),
                    ("operator_tokens", "id", "expires_at <= $1", now),
                    ("client_assertion_jtis", "client_id, jti", "expires_at <= $1", now),
                    ("assertion_ids", "kind, issuer, id", "expires_at <= $1", now),
                    ("reference_tokens", "digest", "expires_at <= $1", now),
                    ("sessions", "digest", "expires_at <= $1", now),
                    // Kept past expiry so that a replay is still recognised,
                    // and for as long as what it issued lives: its access token
                    // and its refresh family (whose records go when the
                    // family ends), which a replay revokes (RFC 6749 §4.1.2).
                    (
                        "authorization_codes",
                        "digest",
                        "expires_at < $1 AND (access_expires_at IS NULL OR access_expires_at < $1) \
                         AND NOT EXISTS (SELECT 1 FROM refresh_tokens \
                         WHERE refresh_tokens.family_id = authorization_codes.family_id)",
                        now.saturating_sub(CODE_RETENTION),
                    ),
                    // A rotated token is kept until its family ends: presenting it
                    // again is reuse (RFC 9700 §4.14.2).
                    ("refresh_tokens", "jti", "family_expires_at <= $1", now),
                    // Kept past expiry like codes, so a late poll still reads
                    // expired_token rather than an unknown code.
                    ("device_authorizations", "digest", "expires_at < $1", now.saturating_sub(CODE_RETENTION)),
                    ("login_failures", "key", "last_at < $1", now.saturating_sub(LOGIN_FAILURE_RETENTION)),
                    ("trace_events", "id", "at < $1", now.saturating_sub(tessera_core::store::TRACE_RETENTION)),
                ];
                let mut purged = 0;
                for (table, key, condition, before) in tables {
                    let sql = format!(
                        "DELETE FROM {table} WHERE ({key}) IN \
                         (SELECT {key} FROM {table} WHERE {condition} LIMIT {PURGE_BATCH})"
                    );
                    loop {
                        let deleted = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                            .bind(before)
                            .execute(&mut *self.writer().await?)
                            .await
                            .map_err(map_err)?
                            .rows_affected();
                        purged += deleted;
                        if deleted < PURGE_BATCH {
                            break;
                        }
                    }
                }
                Ok(purged)
            }
        }

        fn consent_from_row(row: &Row) -> StoreResult<Consent> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let scopes: String = row.try_get("scopes").map_err(get_err)?;
            Ok(Consent {
                user_id: row.try_get("user_id").map_err(get_err)?,
                client_id: row.try_get("client_id").map_err(get_err)?,
                scopes: scope_column(&scopes, "scopes")?,
                granted_at: row.try_get("granted_at").map_err(get_err)?,
            })
        }

        /// What a code's exchange issued, unless a replay came first.
        async fn record_code(
            conn: &mut <$db as sqlx::Database>::Connection,
            digest: &SecretDigest,
            access_jti: &str,
            access_expires_at: i64,
            family_id: Option<&str>,
        ) -> StoreResult<bool> {
            Ok(sqlx::query(RECORD_CODE_TOKENS)
                .bind(access_jti)
                .bind(access_expires_at)
                .bind(family_id)
                .bind(digest.0.to_vec())
                .execute(conn)
                .await
                .map_err(map_err)?
                .rows_affected()
                == 1)
        }

        async fn insert_refresh(
            conn: &mut <$db as sqlx::Database>::Connection,
            token: &RefreshToken,
        ) -> StoreResult<()> {
            sqlx::query(INSERT_REFRESH)
                .bind(&token.jti)
                .bind(&token.family_id)
                .bind(&token.client_id)
                .bind(&token.user_id)
                .bind(token.scope.to_string())
                .bind(to_json(&token.audiences))
                .bind(token.auth_time)
                .bind(&token.sid)
                .bind(token.offline)
                .bind(token.issued_at)
                .bind(token.expires_at)
                .bind(token.family_expires_at)
                .bind(&token.access_jti)
                .bind(token.access_expires_at)
                .bind(token.rotated_at)
                .bind(token.revoked)
                .bind(&token.successor_jti)
                .bind(token.token_digest.map(|d| d.0.to_vec()))
                .execute(conn)
                .await
                .map_err(map_err)?;
            Ok(())
        }

        fn failures_from_row(row: &Row) -> StoreResult<LoginFailures> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let count: i64 = row.try_get("count").map_err(get_err)?;
            Ok(LoginFailures {
                count: u32::try_from(count)
                    .map_err(|_| StoreError::Corrupt(format!("count {count} out of range")))?,
                first_at: row.try_get("first_at").map_err(get_err)?,
                last_at: row.try_get("last_at").map_err(get_err)?,
            })
        }

        /// Records as revoked the access tokens issued from the user's codes and
        /// refresh tokens for one client (or all with `None`), so that withdrawn
        /// grants stop working before the tokens expire. Expired ones are
        /// recorded too (there is no `now` here); `purge_expired` drops them.
        async fn revoke_user_access_jtis(
            tx: &mut sqlx::Transaction<'_, $db>,
            user_id: &str,
            client_id: Option<&str>,
        ) -> StoreResult<()> {
            // The WHERE before ON CONFLICT is required: SQLite cannot otherwise
            // tell the upsert's ON from a join's.
            for sql in [
                "INSERT INTO revoked_jtis (jti, expires_at) \
                 SELECT access_jti, access_expires_at FROM refresh_tokens \
                 WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) \
                 AND access_jti IS NOT NULL AND access_expires_at IS NOT NULL \
                 ON CONFLICT (jti) DO NOTHING",
                "INSERT INTO revoked_jtis (jti, expires_at) \
                 SELECT access_jti, access_expires_at FROM authorization_codes \
                 WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) \
                 AND access_jti IS NOT NULL AND access_expires_at IS NOT NULL \
                 ON CONFLICT (jti) DO NOTHING",
                "INSERT INTO revoked_jtis (jti, expires_at) \
                 SELECT jti, expires_at FROM user_access_tokens \
                 WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) \
                 ON CONFLICT (jti) DO NOTHING",
            ] {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, user: &User) -> StoreResult<()> {
                let username_key = user.username.to_lowercase();
                let email_key = user.email.as_deref().map(str::to_lowercase);
                let conflict = || {
                    StoreError::Conflict(format!(
                        "user {:?} (ID, username or email)",
                        user.username
                    ))
                };
                // The UNIQUE keys refuse a taken username or email. A login names a
                // user by either, so a new username may not be another user's email
                // nor a new email another user's username: the guard below.
                let sql = const_format::concatcp!(
                    "INSERT INTO users (", USER_COLUMNS, ", username_key, email_key) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE NOT EXISTS \
                     (SELECT 1 FROM users WHERE email_key = $8 OR username_key = $9)"
                );
                let inserted = sqlx::query(sql)
                    .bind(&user.id)
                    .bind(&user.username)
                    .bind(&user.email)
                    .bind(&user.name)
                    .bind(&user.password_hash)
                    .bind(user.created_at)
                    .bind(user.roles.to_text())
                    .bind(&username_key)
                    .bind(&email_key)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(|e| match map_err(e) {
                        StoreError::Conflict(_) => conflict(),
                        other => other,
                    })?
                    .rows_affected();
                if inserted == 0 {
                    return Err(conflict());
                }
                Ok(())
            }

            async fn user(&self, id: &str) -> StoreResult<Option<User>> {
                if let Some(direct) = self.direct() {
                    return direct.user(id);
                }
                sqlx::query(SELECT_USER)
                    .bind(id)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(user_from)
                    .transpose()
            }

            async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
                // `insert_user` keeps usernames and emails apart; should two
                // concurrent inserts on PostgreSQL slip past its guard, the
                // username match wins, so the answer is still deterministic.
                let sql = const_format::concatcp!(
                    "SELECT ", USER_COLUMNS, " FROM users WHERE username_key = $1 OR email_key = $1 \
                     ORDER BY CASE WHEN username_key = $1 THEN 0 ELSE 1 END LIMIT 1"
                );
                sqlx::query(sql)
                    .bind(login.to_lowercase())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(user_from)
                    .transpose()
            }

            async fn users(&self) -> StoreResult<Vec<User>> {
                let sql = const_format::concatcp!("SELECT ", USER_COLUMNS, " FROM users ORDER BY created_at, id");
                sqlx::query(sql)
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(user_from)
                    .collect()
            }

            async fn delete_user(&self, id: &str) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                revoke_user_access_jtis(&mut tx, id, None).await?;
                for sql in [
                    "DELETE FROM sessions WHERE user_id = $1",
                    "DELETE FROM consents WHERE user_id = $1",
                    "DELETE FROM authorization_codes WHERE user_id = $1",
                    "DELETE FROM refresh_tokens WHERE user_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(deleted > 0)
            }

            async fn set_password(
                &self,
                id: &str,
                password_hash: &str,
                revoke_grants: bool,
            ) -> StoreResult<Option<u64>> {
                // A new password signs the user out everywhere: whoever knew the old
                // one may hold a session, or tokens obtained with it.
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                if updated == 0 {
                    return Ok(None);
                }
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut revoked = 0;
                if revoke_grants {
                    revoke_user_access_jtis(&mut tx, id, None).await?;
                    revoked = sqlx::query(
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1 AND NOT revoked",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    // Codes not yet redeemed would mint tokens afterwards.
                    sqlx::query(
                        "DELETE FROM authorization_codes WHERE user_id = $1 AND consumed_at IS NULL",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(Some(revoked))
            }

            async fn set_user_roles(
                &self,
                id: &str,
                roles: tessera_core::store::Roles,
            ) -> StoreResult<bool> {
                let updated = sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
                    .bind(roles.to_text())
                    .bind(id)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(updated > 0)
            }
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(&self, session: &Session) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO sessions (", SESSION_COLUMNS, ") VALUES ($1, $2, $3, $4, $5, $6)"
                );
                sqlx::query(sql)
                    .bind(session.digest.0.to_vec())
                    .bind(&session.sid)
                    .bind(&session.user_id)
                    .bind(session.auth_time)
                    .bind(session.last_seen)
                    .bind(session.expires_at)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn touch_session(
                &self,
                digest: &SecretDigest,
                now: i64,
                idle_since: i64,
            ) -> StoreResult<Option<Session>> {
                // One statement: a session that is idle or expired is never revived
                // by a concurrent touch.
                let sql = const_format::concatcp!(
                    "UPDATE sessions SET last_seen = $1 \
                     WHERE digest = $2 AND expires_at > $1 AND last_seen > $3 RETURNING ",
                    SESSION_COLUMNS
                );
                sqlx::query(sql)
                    .bind(now)
                    .bind(digest.0.to_vec())
                    .bind(idle_since)
                    .fetch_optional(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(session_from)
                    .transpose()
            }

            async fn touch_session_by_sid(
                &self,
                sid: &str,
                now: i64,
                idle_since: i64,
            ) -> StoreResult<Option<Session>> {
                if let Some(direct) = self.direct() {
                    return direct.touch_session_by_sid(sid, now, idle_since).await;
                }
                sqlx::query(TOUCH_SESSION)
                    .bind(now)
                    .bind(sid)
                    .bind(idle_since)
                    .fetch_optional(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(session_from)
                    .transpose()
            }

            async fn delete_session(&self, digest: &SecretDigest, now: i64) -> StoreResult<Option<Session>> {
                let sql = const_format::concatcp!(
                    "DELETE FROM sessions WHERE digest = $1 RETURNING ",
                    SESSION_COLUMNS
                );
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                let session = sqlx::query(sql)
                    .bind(digest.0.to_vec())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(session_from)
                    .transpose()?;
                if let Some(session) = &session {
                    revoke_session_grants(&mut tx, &session.sid, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(session)
            }

            async fn delete_session_by_sid(&self, sid: &str, now: i64) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                let deleted = sqlx::query("DELETE FROM sessions WHERE sid = $1")
                    .bind(sid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                revoke_session_grants(&mut tx, sid, now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(deleted > 0)
            }
        }

        /// Revokes the online (not `offline_access`) refresh tokens bound to a
        /// session, and records as revoked the live access tokens issued with
        /// them or with the session's codes.
        async fn revoke_session_grants(
            tx: &mut sqlx::Transaction<'_, $db>,
            sid: &str,
            now: i64,
        ) -> StoreResult<()> {
            // The WHERE before ON CONFLICT is required: SQLite cannot otherwise
            // tell the upsert's ON from a join's.
            for sql in [
                "INSERT INTO revoked_jtis (jti, expires_at) \
                 SELECT access_jti, access_expires_at FROM refresh_tokens \
                 WHERE sid = $1 AND NOT offline AND access_jti IS NOT NULL \
                 AND access_expires_at > $2 \
                 ON CONFLICT (jti) DO NOTHING",
                "INSERT INTO revoked_jtis (jti, expires_at) \
                 SELECT access_jti, access_expires_at FROM authorization_codes \
                 WHERE sid = $1 AND access_jti IS NOT NULL AND access_expires_at > $2 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r \
                     WHERE r.family_id = authorization_codes.family_id AND r.offline) \
                 ON CONFLICT (jti) DO NOTHING",
            ] {
                sqlx::query(sql)
                    .bind(sid)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            // A code of the session not yet redeemed would otherwise still
            // mint tokens after the session ended. It has issued nothing, so
            // it is simply removed.
            for sql in [
                "UPDATE refresh_tokens SET revoked = TRUE WHERE sid = $1 AND NOT offline AND NOT revoked",
                "DELETE FROM authorization_codes WHERE sid = $1 AND consumed_at IS NULL",
            ] {
                sqlx::query(sql)
                    .bind(sid)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }

        #[async_trait]
        impl ConsentStore for $store {
            async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
                let sql = const_format::concatcp!(
                    "SELECT ", CONSENT_COLUMNS, " FROM consents WHERE user_id = $1 AND client_id = $2"
                );
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(consent_from_row)
                    .transpose()
            }

            async fn save_consent(&self, consent: &Consent) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO consents (", CONSENT_COLUMNS, ") VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, client_id) \
                     DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at"
                );
                sqlx::query(sql)
                    .bind(&consent.user_id)
                    .bind(&consent.client_id)
                    .bind(consent.scopes.to_string())
                    .bind(consent.granted_at)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
                let sql = const_format::concatcp!(
                    "SELECT ", CONSENT_COLUMNS, " FROM consents WHERE user_id = $1 \
                     ORDER BY granted_at, client_id"
                );
                sqlx::query(sql)
                    .bind(user_id)
                    .fetch_all(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(consent_from_row)
                    .collect()
            }

            async fn revoke_consent(&self, user_id: &str, client_id: Option<&str>) -> StoreResult<u64> {
                // The refresh tokens go whether or not a consent is on record: a
                // withdrawal must leave the client nothing to continue with.
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                revoke_user_access_jtis(&mut tx, user_id, client_id).await?;
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked = TRUE \
                     WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) AND NOT revoked",
                )
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let withdrawn = sqlx::query(
                    "DELETE FROM consents WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2)",
                )
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(withdrawn)
            }
        }

        #[async_trait]
        impl CodeStore for $store {
            async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO authorization_codes (", CODE_COLUMNS, ") VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                );
                sqlx::query(sql)
                    .bind(code.digest.0.to_vec())
                    .bind(&code.client_id)
                    .bind(&code.user_id)
                    .bind(&code.redirect_uri)
                    .bind(&code.code_challenge)
                    .bind(code.scope.to_string())
                    .bind(&code.nonce)
                    .bind(to_json(&code.audiences))
                    .bind(code.auth_time)
                    .bind(&code.sid)
                    .bind(code.expires_at)
                    .bind(code.consumed_at)
                    .bind(&code.access_jti)
                    .bind(code.access_expires_at)
                    .bind(&code.family_id)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn authorization_code(&self, digest: &SecretDigest) -> StoreResult<Option<AuthorizationCode>> {
                if let Some(direct) = self.direct() {
                    return direct.authorization_code(digest);
                }
                sqlx::query(SELECT_CODE)
                    .bind(digest.0.to_vec())
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(code_from)
                    .transpose()
            }

            async fn consume_code(&self, digest: &SecretDigest, now: i64) -> StoreResult<CodeUse> {
                if let Some(direct) = self.direct() {
                    return direct.consume_code(digest, now).await;
                }
                if let Some(row) = sqlx::query(CONSUME_CODE)
                    .bind(now)
                    .bind(digest.0.to_vec())
                    .fetch_optional(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                {
                    return Ok(CodeUse::Fresh(code_from(&row)?));
                }
                Ok(
                    match sqlx::query(MARK_CODE_REPLAYED)
                        .bind(now)
                        .bind(digest.0.to_vec())
                        .fetch_optional(&mut *self.writer().await?)
                        .await
                        .map_err(map_err)?
                    {
                        Some(row) => CodeUse::Replayed(code_from(&row)?),
                        None => CodeUse::Invalid,
                    },
                )
            }

            async fn consume_bound_code(
                &self,
                digest: &SecretDigest,
                now: i64,
                client_id: &str,
                redirect_uri: &str,
            ) -> StoreResult<Option<AuthorizationCode>> {
                if let Some(direct) = self.direct() {
                    return direct
                        .consume_bound_code(digest, now, client_id, redirect_uri)
                        .await;
                }
                sqlx::query(CONSUME_BOUND_CODE)
                    .bind(now)
                    .bind(digest.0.to_vec())
                    .bind(client_id)
                    .bind(redirect_uri)
                    .fetch_optional(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(code_from)
                    .transpose()
            }

            async fn record_code_tokens(
                &self,
                digest: &SecretDigest,
                access_jti: &str,
                access_expires_at: i64,
                family_id: Option<&str>,
            ) -> StoreResult<bool> {
                if let Some(direct) = self.direct() {
                    return direct
                        .record_code_tokens(digest, access_jti, access_expires_at, family_id)
                        .await;
                }
                record_code(&mut *self.writer().await?, digest, access_jti, access_expires_at, family_id)
                    .await
            }

            async fn record_code_exchange(
                &self,
                digest: &SecretDigest,
                access_jti: &str,
                access_expires_at: i64,
                refresh: &RefreshToken,
            ) -> StoreResult<bool> {
                if let Some(direct) = self.direct() {
                    return direct
                        .record_code_exchange(digest, access_jti, access_expires_at, refresh)
                        .await;
                }
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                insert_refresh(&mut *tx, refresh).await?;
                let recorded = record_code(
                    &mut *tx,
                    digest,
                    access_jti,
                    access_expires_at,
                    Some(&refresh.family_id),
                )
                .await?;
                tx.commit().await.map_err(map_err)?;
                Ok(recorded)
            }
        }

        #[async_trait]
        impl RefreshStore for $store {
            async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
                if let Some(direct) = self.direct() {
                    return direct.insert_refresh_token(token).await;
                }
                insert_refresh(&mut *self.writer().await?, token).await
            }

            async fn refresh_token(&self, jti: &str) -> StoreResult<Option<RefreshToken>> {
                if let Some(direct) = self.direct() {
                    return direct.refresh_token(jti);
                }
                sqlx::query(SELECT_REFRESH)
                    .bind(jti)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(refresh_from)
                    .transpose()
            }

            async fn rotate_refresh_token(
                &self,
                jti: &str,
                successor: &RefreshToken,
                now: i64,
            ) -> StoreResult<bool> {
                // One transaction: a rotation whose successor could not be
                // written leaves the token current, so the client's retry is
                // not mistaken for reuse (RFC 9700 §4.14.2).
                if let Some(direct) = self.direct() {
                    return direct.rotate_refresh_token(jti, successor, now).await;
                }
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                let rotated = sqlx::query(ROTATE_REFRESH)
                .bind(now)
                .bind(&successor.jti)
                .bind(jti)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected()
                    == 1;
                if !rotated {
                    return Ok(false);
                }
                insert_refresh(&mut *tx, successor).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<u64> {
                let mut conn = self.writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map_err)?;
                // Access tokens already expired need no record. The WHERE before
                // ON CONFLICT is required: SQLite cannot otherwise tell the upsert's
                // ON from a join's.
                sqlx::query(
                    "INSERT INTO revoked_jtis (jti, expires_at) \
                     SELECT access_jti, access_expires_at FROM refresh_tokens \
                     WHERE family_id = $1 AND access_jti IS NOT NULL AND access_expires_at > $2 \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(family_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let revoked = sqlx::query(
                    "UPDATE refresh_tokens SET revoked = TRUE WHERE family_id = $1 AND NOT revoked",
                )
                .bind(family_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(revoked)
            }
        }

        #[async_trait]
        impl ThrottleStore for $store {
            async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>> {
                sqlx::query("SELECT count, first_at, last_at FROM login_failures WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(failures_from_row)
                    .transpose()
            }

            async fn record_login_failure(
                &self,
                key: &str,
                now: i64,
                window_start: i64,
            ) -> StoreResult<LoginFailures> {
                // One upsert, so concurrent failures each count.
                let row = sqlx::query(
                    "INSERT INTO login_failures (key, count, first_at, last_at) VALUES ($1, 1, $2, $2) \
                     ON CONFLICT (key) DO UPDATE SET \
                     count = CASE WHEN login_failures.first_at < $3 THEN 1 \
                         ELSE login_failures.count + 1 END, \
                     first_at = CASE WHEN login_failures.first_at < $3 THEN $2 \
                         ELSE login_failures.first_at END, \
                     last_at = $2 \
                     RETURNING count, first_at, last_at",
                )
                .bind(key)
                .bind(now)
                .bind(window_start)
                .fetch_one(&mut *self.writer().await?)
                .await
                .map_err(map_err)?;
                failures_from_row(&row)
            }

            async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM login_failures WHERE key = $1")
                    .bind(key)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn swap_login_failures(
                &self,
                key: &str,
                expected: Option<&LoginFailures>,
                new: &LoginFailures,
            ) -> StoreResult<bool> {
                let written = match expected {
                    // The primary key makes one of several first inserts win.
                    None => sqlx::query(
                        "INSERT INTO login_failures (key, count, first_at, last_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(key)
                    .bind(i64::from(new.count))
                    .bind(new.first_at)
                    .bind(new.last_at)
                    .execute(&mut *self.writer().await?)
                    .await,
                    Some(old) => sqlx::query(
                        "UPDATE login_failures SET count = $1, first_at = $2, last_at = $3 \
                         WHERE key = $4 AND count = $5 AND first_at = $6 AND last_at = $7",
                    )
                    .bind(i64::from(new.count))
                    .bind(new.first_at)
                    .bind(new.last_at)
                    .bind(key)
                    .bind(i64::from(old.count))
                    .bind(old.first_at)
                    .bind(old.last_at)
                    .execute(&mut *self.writer().await?)
                    .await,
                }
                .map_err(map_err)?
                .rows_affected();
                Ok(written == 1)
            }

            async fn release_login_attempt(&self, key: &str) -> StoreResult<()> {
                sqlx::query("UPDATE login_failures SET count = count - 1 WHERE key = $1 AND count > 0")
                    .bind(key)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        fn device_from_row(row: &Row) -> StoreResult<DeviceAuthorization> {
            let get_err = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
            let digest: Vec<u8> = row.try_get("digest").map_err(get_err)?;
            let scope: String = row.try_get("scope").map_err(get_err)?;
            let audiences: String = row.try_get("audiences").map_err(get_err)?;
            let status: String = row.try_get("status").map_err(get_err)?;
            Ok(DeviceAuthorization {
                digest: digest_column(&digest, "digest")?,
                user_code: row.try_get("user_code").map_err(get_err)?,
                client_id: row.try_get("client_id").map_err(get_err)?,
                scope: scope_column(&scope, "scope")?,
                audiences: from_json(&audiences, "audiences")?,
                expires_at: row.try_get("expires_at").map_err(get_err)?,
                interval: row.try_get("poll_interval").map_err(get_err)?,
                last_polled_at: row.try_get("last_polled_at").map_err(get_err)?,
                status: DeviceStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
                user_id: row.try_get("user_id").map_err(get_err)?,
                auth_time: row.try_get("auth_time").map_err(get_err)?,
            })
        }

        #[async_trait]
        impl DeviceStore for $store {
            async fn insert_device_authorization(&self, device: &DeviceAuthorization) -> StoreResult<()> {
                let sql = const_format::concatcp!(
                    "INSERT INTO device_authorizations (", DEVICE_COLUMNS,
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                );
                sqlx::query(sql)
                    .bind(device.digest.0.to_vec())
                    .bind(&device.user_code)
                    .bind(&device.client_id)
                    .bind(device.scope.to_string())
                    .bind(to_json(&device.audiences))
                    .bind(device.expires_at)
                    .bind(device.interval)
                    .bind(device.last_polled_at)
                    .bind(device.status.as_str())
                    .bind(device.user_id.as_deref())
                    .bind(device.auth_time)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn pending_device(&self, user_code: &str, now: i64) -> StoreResult<Option<DeviceAuthorization>> {
                let sql = const_format::concatcp!(
                    "SELECT ", DEVICE_COLUMNS,
                    " FROM device_authorizations WHERE user_code = $1 AND status = 'pending' AND expires_at > $2"
                );
                sqlx::query(sql)
                    .bind(user_code)
                    .bind(now)
                    .fetch_optional(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?
                    .as_ref()
                    .map(device_from_row)
                    .transpose()
            }

            async fn decide_device(
                &self,
                user_code: &str,
                user_id: &str,
                auth_time: i64,
                approve: bool,
                now: i64,
            ) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE device_authorizations SET status = $1, user_id = $2, auth_time = $3 \
                     WHERE user_code = $4 AND status = 'pending' AND expires_at > $5",
                )
                .bind(if approve { "approved" } else { "denied" })
                .bind(user_id)
                .bind(auth_time)
                .bind(user_code)
                .bind(now)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(updated > 0)
            }

            async fn poll_device(
                &self,
                digest: &SecretDigest,
                client_id: &str,
                now: i64,
            ) -> StoreResult<DevicePoll> {
                // A poll on time records itself; of two polls at once only one is on
                // time, since the first moves last_polled_at. Every statement names
                // the client, so another client's poll of this code changes nothing
                // (RFC 6749 §5.2: the grant was issued to another client).
                let on_time = const_format::concatcp!(
                    "UPDATE device_authorizations SET last_polled_at = $2 WHERE digest = $1 AND client_id = $3 \
                     AND (last_polled_at IS NULL OR last_polled_at + poll_interval <= $2) RETURNING ",
                    DEVICE_COLUMNS
                );
                let Some(row) = sqlx::query(on_time)
                    .bind(digest.0.to_vec())
                    .bind(now)
                    .bind(client_id)
                    .fetch_optional(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                else {
                    // RFC 8628 §3.5: too fast; the interval grows by 5 seconds. But
                    // slow_down says "still pending": a denied, spent or expired code
                    // gets its final answer instead.
                    let slowed = sqlx::query(
                        "UPDATE device_authorizations SET poll_interval = poll_interval + 5, last_polled_at = $2 \
                         WHERE digest = $1 AND client_id = $3 AND status IN ('pending', 'approved') \
                         AND expires_at > $2",
                    )
                    .bind(digest.0.to_vec())
                    .bind(now)
                    .bind(client_id)
                    .execute(&mut *self.writer().await?)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    if slowed > 0 {
                        return Ok(DevicePoll::SlowDown);
                    }
                    let finished = const_format::concatcp!(
                        "SELECT ", DEVICE_COLUMNS,
                        " FROM device_authorizations WHERE digest = $1 AND client_id = $2"
                    );
                    return Ok(sqlx::query(finished)
                        .bind(digest.0.to_vec())
                        .bind(client_id)
                        .fetch_optional(&mut *self.reader().await?)
                        .await
                        .map_err(map_err)?
                        .as_ref()
                        .map(device_from_row)
                        .transpose()?
                        .map_or(DevicePoll::Invalid, |device| {
                            // An approval goes out only through the consuming path below.
                            if device.status == DeviceStatus::Approved && device.expires_at > now {
                                DevicePoll::SlowDown
                            } else {
                                DevicePoll::Polled(Box::new(device))
                            }
                        }));
                };
                let device = device_from_row(&row)?;
                if device.status != DeviceStatus::Approved || device.expires_at <= now {
                    return Ok(DevicePoll::Polled(Box::new(device)));
                }
                // Hand out the approval once: the update has one winner.
                let consumed = sqlx::query(
                    "UPDATE device_authorizations SET status = 'consumed' WHERE digest = $1 AND status = 'approved'",
                )
                .bind(digest.0.to_vec())
                .execute(&mut *self.writer().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
                if consumed == 0 {
                    return Ok(DevicePoll::Polled(Box::new(DeviceAuthorization {
                        status: DeviceStatus::Consumed,
                        ..device
                    })));
                }
                Ok(DevicePoll::Polled(Box::new(device)))
            }
        }


        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn connections(&self) -> tessera_core::store::ConnectionCounts {
                <$store>::connection_counts(self)
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn housekeeping(&self) -> StoreResult<()> {
                <$store>::housekeeping(self).await
            }

            async fn catalog_version(&self) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT version FROM catalog_version WHERE id = 1")
                    .fetch_one(&mut *self.reader().await?)
                    .await
                    .map_err(map_err)
            }
        }
    };
}

//! The storage traits. Each verb that consumes, rotates or revokes something is one
//! atomic operation in the implementation, so concurrent requests have one winner
//! by construction. Traits are small and split by concern; [`Store`] bundles them
//! for the provider.

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::crypto::SecretDigest;
use crate::model::{Client, Resource};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists (client ID, audience, key ID).
    #[error("{0} already exists")]
    Conflict(String),
    /// The database cannot be reached or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode: corrupted or written by a newer version.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client(&self, id: &str) -> StoreResult<Option<Client>>;
    /// Fails with [`StoreError::Conflict`] if the ID is taken.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn clients(&self) -> StoreResult<Vec<Client>>;
    /// Returns whether a client was deleted.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// Replaces a confidential client's secret; returns whether the client exists.
    async fn set_client_secret(&self, id: &str, digest: &SecretDigest) -> StoreResult<bool>;
}

#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>>;
    async fn insert_resource(&self, resource: &Resource) -> StoreResult<()>;
    async fn resources(&self) -> StoreResult<Vec<Resource>>;
}

/// A signing key as stored: the private key sealed with the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub sealed_private_key: Vec<u8>,
    pub created_at: UnixTime,
    /// When the key starts signing; it is published from `created_at` on.
    pub activates_at: UnixTime,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, oldest activation first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Inserts `key` only if no key of the same algorithm activates after
    /// `newer_than`: one statement, so that several instances starting or rotating
    /// at once add one key between them. Returns whether it was inserted.
    async fn insert_signing_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: UnixTime,
    ) -> StoreResult<bool>;
}

/// An opaque access token, stored under the digest of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceToken {
    pub digest: SecretDigest,
    pub client_id: String,
    /// The token's claims, as introspection returns them.
    pub claims: serde_json::Value,
    pub expires_at: UnixTime,
    pub revoked: bool,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_reference_token(&self, token: &ReferenceToken) -> StoreResult<()>;
    async fn reference_token(&self, digest: &SecretDigest) -> StoreResult<Option<ReferenceToken>>;
    /// Marks a reference token revoked; returns whether it existed.
    async fn revoke_reference_token(&self, digest: &SecretDigest) -> StoreResult<bool>;
    /// Records that the JWT with this `jti` is revoked until it expires anyway.
    async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> StoreResult<()>;
    async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool>;
    /// Deletes records that are past their expiry; returns how many.
    async fn purge_expired(&self, now: UnixTime) -> StoreResult<u64>;
}

/// Everything the provider needs from storage.
#[async_trait]
pub trait Store: ClientStore + ResourceStore + KeyStore + TokenStore + std::fmt::Debug {
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;
    /// Whether the database answers (for `/health/ready`).
    async fn ping(&self) -> StoreResult<()>;
}

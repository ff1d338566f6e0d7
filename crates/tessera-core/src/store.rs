//! The storage traits. Each verb that consumes, rotates or revokes something is one
//! atomic operation in the implementation, so concurrent requests have one winner
//! by construction. Traits are small and split by concern; [`Store`] bundles them
//! for the provider.

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::crypto::SecretDigest;
use crate::model::{Client, Resource, SealedSecret};
use crate::scope::Scope;

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
    /// The database does not exist (or holds no Tessera tables) and the caller
    /// asked not to create it.
    #[error("{0}")]
    Missing(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How long [`TokenStore::purge_expired`] keeps an authorization code (and a
/// device authorization) after it expires: while it is kept, a replay is
/// recognised as one and can revoke what the first exchange issued
/// (RFC 6749 §4.1.2), and a late poll still reads `expired_token`; afterwards
/// it is merely unknown. A consumed code is kept longer while what it issued
/// lives: its access token, and any record of its refresh family.
pub const CODE_RETENTION: i64 = 3_600;

/// How long [`TokenStore::purge_expired`] keeps a key's login failures after
/// the last one.
pub const LOGIN_FAILURE_RETENTION: i64 = 86_400;

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client(&self, id: &str) -> StoreResult<Option<Client>>;
    /// Fails with [`StoreError::Conflict`] if the ID is taken.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn clients(&self) -> StoreResult<Vec<Client>>;
    /// Returns whether a client was deleted.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// Replaces the secret of a client that has one: its digest and, for
    /// `client_secret_jwt`, its sealed copy (`None` clears it), in one
    /// statement. Returns whether such a client exists.
    async fn set_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        sealed: Option<&[u8]>,
    ) -> StoreResult<bool>;
    /// Replaces the client's settings (everything but its ID, secret and
    /// creation time) in one statement, and with [`SecretUpdate::Replace`] its
    /// secret too; returns whether the client exists.
    async fn update_client(&self, client: &Client, secret: SecretUpdate) -> StoreResult<bool>;
    /// As [`update_client`](Self::update_client), but only while the client's
    /// metadata document is still `expected`, in the same statement: of
    /// concurrent changes made from one reading, exactly one is written
    /// (what a registration access token's rotation needs). Returns whether
    /// this one was.
    async fn update_client_if_unchanged(
        &self,
        client: &Client,
        secret: SecretUpdate,
        expected: &crate::model::ClientMetadata,
    ) -> StoreResult<bool>;
    /// Records the `jti` of a client assertion (RFC 7523 §3 item 7) until
    /// `expires_at`, in one statement: of two uses of one `jti` by a client,
    /// exactly one gets `true`. A record already past its expiry at `now` is
    /// taken over, so that it never blocks a new assertion before a purge.
    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool>;
}

/// Whether [`ClientStore::update_client`] writes the client's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUpdate {
    /// Leave the stored secret alone, whatever the given client holds, so that
    /// a change of settings never undoes a rotation made meanwhile.
    Keep,
    /// Write the given client's `secret_digest` and `sealed_secret`: the
    /// authentication method changed, and the credentials with it.
    Replace,
}

#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>>;
    /// Fails with [`StoreError::Conflict`] if the audience is taken.
    async fn insert_resource(&self, resource: &Resource) -> StoreResult<()>;
    async fn resources(&self) -> StoreResult<Vec<Resource>>;
    /// Replaces the resource's settings and secret (everything but its
    /// audience and creation time) in one statement, only if its secret
    /// version is still `secret_version`: a rotation in between is never
    /// undone. Returns whether it was replaced.
    async fn update_resource(&self, resource: &Resource, secret_version: i64) -> StoreResult<bool>;
    /// Stores the next shared secret of an HS256 resource whose secret version
    /// is `from_version`, as version `from_version + 1`, in one statement:
    /// of two rotations at once, one wins. Returns whether it was stored.
    async fn rotate_resource_secret(
        &self,
        audience: &str,
        from_version: i64,
        sealed: &SealedSecret,
    ) -> StoreResult<bool>;
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
    /// When the key was withdrawn (`tessera keys revoke`), if it was.
    pub revoked_at: Option<UnixTime>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, oldest activation first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Inserts `key` only if no key of the same algorithm that is not revoked
    /// activates after `newer_than`: one statement, so that several instances starting or rotating
    /// at once add one key between them. Returns whether it was inserted.
    async fn insert_signing_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: UnixTime,
    ) -> StoreResult<bool>;
    /// Withdraws a key at `now`; returns whether a key that was not yet
    /// revoked has this `kid`.
    async fn revoke_signing_key(&self, kid: &str, now: UnixTime) -> StoreResult<bool>;
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
    /// Records an access token issued to `user_id` that no refresh family or
    /// code records, until it expires: deleting the user, a new password
    /// that revokes grants, or withdrawing the consent for `client_id`
    /// record it as revoked with the rest.
    async fn record_user_access_token(
        &self,
        jti: &str,
        user_id: &str,
        client_id: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// Deletes records that are past their expiry; returns how many. Besides
    /// revoked `jti`s, access tokens recorded under a person, used client
    /// assertion `jti`s and reference tokens: sessions past their absolute end,
    /// authorization codes expired more than an hour ago (until then a consumed
    /// code still shows a replay as one), refresh tokens whose family has ended
    /// (rotated ones are needed until then to detect reuse) and login failures
    /// whose last one is more than a day old.
    async fn purge_expired(&self, now: UnixTime) -> StoreResult<u64>;
}

// ---------------------------------------------------------------------------
// Trust in other identity systems: JWT issuers and SAML identity providers
// whose assertions are traded for tokens (RFC 7522, RFC 7523, RFC 8693).
// ---------------------------------------------------------------------------

/// An issuer of JWTs this server trusts: assertions (RFC 7523 §2.1) and
/// subject tokens (RFC 8693) signed by one of its keys are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The `iss` its JWTs carry, compared as an exact string.
    pub issuer: String,
    /// Its public keys, registered inline...
    pub jwks: Option<tessera_jose::JwkSet>,
    /// ...or where it publishes them (fetched and cached).
    pub jwks_uri: Option<String>,
    pub created_at: UnixTime,
}

/// A SAML 2.0 identity provider whose signed assertions are accepted
/// (RFC 7522).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdp {
    /// Its entity ID: the `Issuer` of its assertions, compared exactly.
    pub entity_id: String,
    /// The certificate it signs with, PEM.
    pub certificate_pem: String,
    pub created_at: UnixTime,
}

/// The kinds of assertion whose IDs are recorded against replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionKind {
    /// A JWT bearer assertion's `jti` (RFC 7523 §3 item 7).
    Jwt,
    /// A SAML assertion's `ID` (RFC 7522 §3 item 9, SAML Profiles §4.1.4.5).
    Saml,
}

impl AssertionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionKind::Jwt => "jwt",
            AssertionKind::Saml => "saml",
        }
    }
}

#[async_trait]
pub trait TrustStore: Send + Sync {
    async fn trusted_issuer(&self, issuer: &str) -> StoreResult<Option<TrustedIssuer>>;
    /// Fails with [`StoreError::Conflict`] if the issuer is there already.
    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> StoreResult<()>;
    async fn trusted_issuers(&self) -> StoreResult<Vec<TrustedIssuer>>;
    async fn delete_trusted_issuer(&self, issuer: &str) -> StoreResult<bool>;
    async fn saml_idp(&self, entity_id: &str) -> StoreResult<Option<SamlIdp>>;
    /// Fails with [`StoreError::Conflict`] if the entity ID is there already.
    async fn insert_saml_idp(&self, idp: &SamlIdp) -> StoreResult<()>;
    async fn saml_idps(&self) -> StoreResult<Vec<SamlIdp>>;
    async fn delete_saml_idp(&self, entity_id: &str) -> StoreResult<bool>;
    /// Records an assertion's ID from `issuer` until `expires_at`, in one
    /// statement: of two uses of one ID, exactly one gets `true`. A record
    /// already past its expiry at `now` is taken over.
    async fn record_assertion(
        &self,
        kind: AssertionKind,
        issuer: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool>;
}

/// What an operator token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// An initial access token (RFC 7591 §3): register clients at the
    /// registration endpoint.
    Registration,
    /// The admin API: everything the CLI does.
    Admin,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Registration => "registration",
            TokenPurpose::Admin => "admin",
        }
    }
}

impl std::str::FromStr for TokenPurpose {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [TokenPurpose::Registration, TokenPurpose::Admin]
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| format!("unknown token purpose {text:?}"))
    }
}

/// A bearer token an operator hands out: an initial access token for dynamic
/// registration, or an admin API credential. Stored under the digest of its
/// value; good for any number of requests of its purpose, and no other,
/// until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    /// Names the token in listings and to revoke it; not a secret.
    pub id: String,
    pub purpose: TokenPurpose,
    pub digest: SecretDigest,
    pub created_at: UnixTime,
    /// `None`: until revoked.
    pub expires_at: Option<UnixTime>,
}

#[async_trait]
pub trait OperatorTokenStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] if the ID or digest is taken.
    async fn insert_operator_token(&self, token: &OperatorToken) -> StoreResult<()>;
    /// The token of this purpose stored under `digest`, expired or not: a
    /// token of another purpose is not found.
    async fn operator_token(
        &self,
        purpose: TokenPurpose,
        digest: &SecretDigest,
    ) -> StoreResult<Option<OperatorToken>>;
    async fn operator_tokens(&self, purpose: TokenPurpose) -> StoreResult<Vec<OperatorToken>>;
    /// Returns whether a token of this purpose was deleted.
    async fn delete_operator_token(&self, purpose: TokenPurpose, id: &str) -> StoreResult<bool>;
}

/// How long [`TokenStore::purge_expired`] keeps a client's trace events.
pub const TRACE_RETENTION: i64 = 86_400;

#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Appends the events, then keeps only the newest `keep_per_client` of
    /// each client they name, in one transaction.
    async fn record_trace(
        &self,
        events: &[crate::trace::TraceEvent],
        keep_per_client: usize,
    ) -> StoreResult<()>;
    /// The client's newest events, newest first.
    async fn trace(
        &self,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<crate::trace::TraceEvent>>;
}

/// How often a serving process calls [`Store::housekeeping`]: often enough
/// that SQLite's write-ahead log stays a few megabytes under sustained writes.
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Everything the provider needs from storage.
#[async_trait]
pub trait Store:
    ClientStore
    + TrustStore
    + ResourceStore
    + KeyStore
    + TokenStore
    + UserStore
    + SessionStore
    + ConsentStore
    + CodeStore
    + RefreshStore
    + ThrottleStore
    + DeviceStore
    + OperatorTokenStore
    + TraceStore
    + std::fmt::Debug
{
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;
    /// The database connections held now, for metrics.
    fn connections(&self) -> ConnectionCounts;
    /// Whether the database answers (for `/health/ready`).
    async fn ping(&self) -> StoreResult<()>;
    /// A number that every change to a client, resource, trusted issuer or
    /// SAML identity provider moves forward, whoever makes it (this process,
    /// another, the CLI): what [`Catalog`](crate::catalog::Catalog) polls to
    /// know when its copy is stale.
    async fn catalog_version(&self) -> StoreResult<i64>;
    /// Upkeep the backend needs while it serves (SQLite: checkpointing its
    /// write-ahead log so that it stays small); the server calls it every
    /// [`HOUSEKEEPING_INTERVAL`]. Short: it never holds writes up for long.
    async fn housekeeping(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// A store's database connections at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Open connections.
    pub open: u32,
    /// Of those, the ones lent out to a statement or transaction now.
    pub busy: u32,
}

// ---------------------------------------------------------------------------
// People: users, sessions, consent, codes, refresh tokens, login throttling.
// ---------------------------------------------------------------------------

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The stable, opaque subject identifier (`sub`).
    pub id: String,
    /// Unique, compared case-insensitively (stored as given, matched lower-cased).
    pub username: String,
    /// Unique when present, compared case-insensitively.
    pub email: Option<String>,
    pub name: Option<String>,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub roles: Roles,
    pub created_at: UnixTime,
}

/// What a person may do beyond signing in to applications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// May use the developer portal when `portal_access = "developers"`.
    pub developer: bool,
    /// Sees and manages every client in the portal, not only their own.
    pub admin: bool,
}

impl Roles {
    /// As stored: the names of the roles held, space-separated.
    pub fn to_text(self) -> String {
        let mut names = Vec::new();
        if self.developer {
            names.push("developer");
        }
        if self.admin {
            names.push("admin");
        }
        names.join(" ")
    }

    /// Reads [`to_text`](Self::to_text); a name this version does not know is
    /// ignored, so that an older binary reads a newer database.
    pub fn from_text(text: &str) -> Self {
        let mut roles = Roles::default();
        for name in text.split_ascii_whitespace() {
            match name {
                "developer" => roles.developer = true,
                "admin" => roles.admin = true,
                _ => {}
            }
        }
        roles
    }
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] if the username or email is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    /// By username or email, case-insensitively (what a person types at login).
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Deletes the user with everything that belongs to them (sessions, consents,
    /// codes, refresh tokens). Returns whether the user existed.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
    /// Replaces the password hash and ends the user's login sessions; with
    /// `revoke_grants`, also revokes all the user's refresh tokens and records
    /// the access tokens issued with them (or with codes) as revoked, in the
    /// same transaction. `None` if there is no such user, else how many
    /// refresh tokens were revoked.
    async fn set_password(
        &self,
        id: &str,
        password_hash: &str,
        revoke_grants: bool,
    ) -> StoreResult<Option<u64>>;
    /// Replaces the user's roles; returns whether the user exists.
    async fn set_user_roles(&self, id: &str, roles: Roles) -> StoreResult<bool>;
}

/// A login session; the cookie carries a random value, the store its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub digest: SecretDigest,
    /// The public session ID, the `sid` claim of ID tokens.
    pub sid: String,
    pub user_id: String,
    pub auth_time: UnixTime,
    pub last_seen: UnixTime,
    /// Absolute end, whatever the activity.
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The session if it exists, is not past `expires_at` and was seen after
    /// `idle_since`; its `last_seen` becomes `now` in the same statement.
    async fn touch_session(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
        idle_since: UnixTime,
    ) -> StoreResult<Option<Session>>;
    /// Like [`SessionStore::touch_session`], by the public session ID: a
    /// refresh of a token bound to the session keeps it alive.
    async fn touch_session_by_sid(
        &self,
        sid: &str,
        now: UnixTime,
        idle_since: UnixTime,
    ) -> StoreResult<Option<Session>>;
    /// Ends one session; returns it if it existed. In the same transaction the
    /// refresh tokens bound to it that are not `offline_access` are revoked, the
    /// access tokens issued with them or with its codes are recorded as
    /// revoked, and its codes not yet redeemed are removed: what a session
    /// granted ends with it.
    async fn delete_session(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
    ) -> StoreResult<Option<Session>>;
    /// [`SessionStore::delete_session`] by the public session ID.
    async fn delete_session_by_sid(&self, sid: &str, now: UnixTime) -> StoreResult<bool>;
}

/// Scopes a user approved for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: Scope,
    pub granted_at: UnixTime,
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    /// Records (replaces) the consent of a user for a client.
    async fn save_consent(&self, consent: &Consent) -> StoreResult<()>;
    async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>>;
    /// Withdraws consent for one client, or all clients with `None`, and revokes
    /// the refresh tokens the user gave those clients, in one transaction.
    /// Returns how many consents were withdrawn.
    async fn revoke_consent(&self, user_id: &str, client_id: Option<&str>) -> StoreResult<u64>;
}

/// An authorization code (RFC 6749 §4.1.2), stored under its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub digest: SecretDigest,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// PKCE S256 challenge (RFC 7636 §4.2), if the request had one.
    pub code_challenge: Option<String>,
    pub scope: Scope,
    pub nonce: Option<String>,
    pub audiences: Vec<String>,
    pub auth_time: UnixTime,
    pub sid: Option<String>,
    pub expires_at: UnixTime,
    /// Set when the code is exchanged.
    pub consumed_at: Option<UnixTime>,
    /// What the exchange issued, so a replay can revoke it (RFC 6749 §4.1.2).
    pub access_jti: Option<String>,
    pub access_expires_at: Option<UnixTime>,
    pub family_id: Option<String>,
}

/// The outcome of consuming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use, within its lifetime: the code, now marked consumed.
    Fresh(AuthorizationCode),
    /// Already consumed: a replay. Holds what the first exchange issued.
    Replayed(AuthorizationCode),
    /// Unknown or expired.
    Invalid,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// The code as stored, consumed or not (until it is purged).
    async fn authorization_code(
        &self,
        digest: &SecretDigest,
    ) -> StoreResult<Option<AuthorizationCode>>;
    /// Marks the code consumed in one statement, so that of two concurrent
    /// exchanges exactly one gets [`CodeUse::Fresh`]. A consumed code is
    /// marked replayed in the statement that reads it for
    /// [`CodeUse::Replayed`].
    async fn consume_code(&self, digest: &SecretDigest, now: UnixTime) -> StoreResult<CodeUse>;
    /// [`CodeStore::consume_code`] of a fresh code bound to `client_id` and
    /// `redirect_uri`, checked in the statement that consumes it: the code,
    /// consumed, or `None` with nothing changed (a code unknown, expired,
    /// used, or bound otherwise), for the caller to find out why. Spares the
    /// exchange the read that checks the binding first.
    async fn consume_bound_code(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
        client_id: &str,
        redirect_uri: &str,
    ) -> StoreResult<Option<AuthorizationCode>>;
    /// Records what the exchange of a consumed code issues, before it is
    /// handed out, so that a replay can revoke it. Returns false when a
    /// replay came first ([`CodeStore::consume_code`] marks one in the
    /// statement that reads the record): nothing is recorded, and the caller
    /// revokes what it issued itself.
    async fn record_code_tokens(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: UnixTime,
        family_id: Option<&str>,
    ) -> StoreResult<bool>;
    /// [`CodeStore::record_code_tokens`] with the refresh token the exchange
    /// issues: inserts `refresh` and records its family with the access
    /// token, in one transaction (one write where there would be two). A
    /// replay that came first does not stop the insert, so that the caller
    /// revokes the family with the rest.
    async fn record_code_exchange(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: UnixTime,
        refresh: &RefreshToken,
    ) -> StoreResult<bool>;
}

/// The server-side state of a refresh token, kept by its `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub jti: String,
    /// All tokens rotated from one grant share a family; reuse revokes it.
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: Scope,
    pub audiences: Vec<String>,
    pub auth_time: UnixTime,
    pub sid: Option<String>,
    pub offline: bool,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    /// The family's absolute end: rotation never extends past it.
    pub family_expires_at: UnixTime,
    /// The access token issued alongside, so revoking the family revokes it too.
    pub access_jti: Option<String>,
    pub access_expires_at: Option<UnixTime>,
    pub rotated_at: Option<UnixTime>,
    pub revoked: bool,
    /// Once rotated: the token that replaced it.
    pub successor_jti: Option<String>,
    /// The SHA-256 of the token as issued, by which it is recognised when
    /// presented back without a signature check; `None` for a token that is
    /// checked by its signature (see `Provider::verify_recorded`).
    pub token_digest: Option<SecretDigest>,
}

impl RefreshToken {
    /// Where the token stands at `now`.
    pub fn state(&self, now: UnixTime) -> RefreshState {
        // A rotated or revoked token presented while its family lives is
        // reuse, also past its own sliding expiry: the family is still there
        // to revoke (RFC 9700 §4.14.2). Once the family has ended, or for a
        // token merely expired, there is nothing to defend.
        if self.family_expires_at <= now {
            RefreshState::Ended
        } else if self.revoked {
            RefreshState::Revoked
        } else if self.rotated_at.is_some() {
            RefreshState::Rotated
        } else if self.expires_at <= now {
            RefreshState::Ended
        } else {
            RefreshState::Current
        }
    }
}

/// Where a refresh token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    /// Valid: presenting it rotates it.
    Current,
    /// Already replaced by its successor while its family lives: presenting it
    /// again is reuse (RFC 9700 §4.14.2), unless it is a retry within the
    /// grace window.
    Rotated,
    /// Revoked (with its family: by the revocation endpoint, a consent
    /// withdrawal, a user's deletion or logout). Refused, but no sign of theft.
    Revoked,
    /// Expired, or its family has ended.
    Ended,
}

#[async_trait]
pub trait RefreshStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    async fn refresh_token(&self, jti: &str) -> StoreResult<Option<RefreshToken>>;
    /// In one transaction, marks the current token `jti` rotated to `successor`
    /// and inserts `successor`. Returns whether it did: of concurrent
    /// rotations exactly one does, and a token that is not current (rotated,
    /// revoked, expired, unknown) is left as it was and nothing is inserted.
    async fn rotate_refresh_token(
        &self,
        jti: &str,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Revokes every token of the family and records the `jti`s of the access
    /// tokens issued with them as revoked, in one transaction. Returns how many
    /// refresh tokens were revoked.
    async fn revoke_refresh_family(&self, family_id: &str, now: UnixTime) -> StoreResult<u64>;
}

/// Failed login attempts under one key (`user:<id>` or `addr:<ip>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    pub first_at: UnixTime,
    pub last_at: UnixTime,
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>>;
    /// Adds a failure in one statement and returns the new totals; failures older
    /// than `window_start` no longer count (the counter starts again).
    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window_start: UnixTime,
    ) -> StoreResult<LoginFailures>;
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;
    /// Compare and swap: writes `new` only if the key's counter is still
    /// `expected` (`None`: no counter yet), in one statement; returns whether it
    /// did. Of concurrent swaps from the same `expected`, exactly one wins.
    async fn swap_login_failures(
        &self,
        key: &str,
        expected: Option<&LoginFailures>,
        new: &LoginFailures,
    ) -> StoreResult<bool>;
    /// Takes one attempt back from the key's counter (never below zero).
    async fn release_login_attempt(&self, key: &str) -> StoreResult<()>;
}

/// Where a device authorization (RFC 8628) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued; the device code is spent.
    Consumed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Consumed => "consumed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(DeviceStatus::Pending),
            "approved" => Some(DeviceStatus::Approved),
            "denied" => Some(DeviceStatus::Denied),
            "consumed" => Some(DeviceStatus::Consumed),
            _ => None,
        }
    }
}

/// A device authorization request (RFC 8628 §3.1), stored under the digest of
/// its device code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub digest: SecretDigest,
    /// Normalised: eight letters of the user-code alphabet, no dash.
    pub user_code: String,
    pub client_id: String,
    pub scope: Scope,
    pub audiences: Vec<String>,
    pub expires_at: UnixTime,
    /// The current minimum polling interval in seconds (grows on `slow_down`).
    pub interval: i64,
    pub last_polled_at: Option<UnixTime>,
    pub status: DeviceStatus,
    /// Who approved or denied, and when they signed in.
    pub user_id: Option<String>,
    pub auth_time: Option<UnixTime>,
}

/// The outcome of a device polling the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// Polled no faster than its interval; the record as it stands. An approved
    /// record comes back here exactly once, as `Consumed` afterwards.
    Polled(Box<DeviceAuthorization>),
    /// Polled too fast: the interval has grown by 5 seconds (RFC 8628 §3.5).
    SlowDown,
    /// Unknown device code.
    Invalid,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] if the user code is in use.
    async fn insert_device_authorization(&self, device: &DeviceAuthorization) -> StoreResult<()>;
    /// The pending, unexpired authorization with this user code.
    async fn pending_device(
        &self,
        user_code: &str,
        now: UnixTime,
    ) -> StoreResult<Option<DeviceAuthorization>>;
    /// Records the person's decision on a pending, unexpired authorization; returns
    /// whether it was still pending.
    async fn decide_device(
        &self,
        user_code: &str,
        user_id: &str,
        auth_time: UnixTime,
        approve: bool,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// A poll by `client_id`: enforces the interval atomically, and hands out an
    /// approval once (the returned record is `Approved`; it is stored as
    /// `Consumed`). Another client's code is `Invalid` and left untouched, and
    /// only a live code (pending or approved) is slowed down: a denied, spent or
    /// expired one comes back as it stands, however soon it is polled.
    async fn poll_device(
        &self,
        digest: &SecretDigest,
        client_id: &str,
        now: UnixTime,
    ) -> StoreResult<DevicePoll>;
}

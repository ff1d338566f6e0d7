//! Test support, behind the `testing` feature: [`MemoryStore`] implements every
//! store trait in memory, so that the protocol rules can be tested in-process,
//! on a [`FixedClock`](crate::FixedClock), without a database.
//!
//! The SQL stores of `tessera-store` are the reference: the same verbs with the
//! same outcomes, purge rules and revocation side effects, held to the same
//! conformance suite. Each verb takes the store's one lock once, so whatever
//! consumes, rotates, revokes or swaps is atomic, and concurrent writers are
//! serialised as on SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::crypto::SecretDigest;
use crate::model::{Client, Resource, SealedSecret};
use crate::store::{AssertionKind, SamlIdp, TrustStore, TrustedIssuer};
use crate::store::{
    AuthorizationCode, CODE_RETENTION, ClientStore, CodeStore, CodeUse, Consent, ConsentStore,
    DeviceAuthorization, DevicePoll, DeviceStatus, DeviceStore, KeyStore, LOGIN_FAILURE_RETENTION,
    LoginFailures, OperatorToken, OperatorTokenStore, ReferenceToken, RefreshState, RefreshStore,
    RefreshToken, ResourceStore, SecretUpdate, Session, SessionStore, Store, StoreError,
    StoreResult, StoredKey, ThrottleStore, TokenPurpose, TokenStore, TraceStore, User, UserStore,
};

/// Every store trait in memory, with the semantics of the SQL stores.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// The tables. Secrets are kept under their digests, as in the database.
#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, Client>,
    resources: HashMap<String, Resource>,
    keys: Vec<StoredKey>,
    reference_tokens: HashMap<[u8; 32], ReferenceToken>,
    operator_tokens: Vec<OperatorToken>,
    revoked_jtis: HashMap<String, UnixTime>,
    /// `user_access_tokens` in the databases: jti → (user, client, expiry).
    user_access_tokens: HashMap<String, (String, String, UnixTime)>,
    users: HashMap<String, User>,
    sessions: HashMap<[u8; 32], Session>,
    consents: HashMap<(String, String), Consent>,
    codes: HashMap<[u8; 32], AuthorizationCode>,
    /// Codes presented again after their use (`replayed_at` in the databases).
    replayed_codes: std::collections::HashSet<[u8; 32]>,
    refresh_tokens: HashMap<String, RefreshToken>,
    login_failures: HashMap<String, LoginFailures>,
    devices: HashMap<[u8; 32], DeviceAuthorization>,
    /// Client assertion `jti`s by (client, jti), with their expiry.
    client_assertions: HashMap<(String, String), UnixTime>,
    trusted_issuers: Vec<TrustedIssuer>,
    saml_idps: Vec<SamlIdp>,
    /// Assertion IDs by (kind, issuer, ID), with their expiry.
    assertions: HashMap<(AssertionKind, String, String), UnixTime>,
    /// Moved by every catalogue write, as the SQL stores' triggers do.
    catalog_version: i64,
    /// Trace events in insertion order.
    trace: Vec<crate::trace::TraceEvent>,
}

impl MemoryStore {
    /// Marks a code as presented again, as a replay arriving between an
    /// exchange's consumption of the code and its recording of the tokens
    /// would: for tests of that window, which no request order can hold open.
    pub async fn mark_code_replayed(&self, digest: &SecretDigest) {
        self.state().await.replayed_codes.insert(digest.0);
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// `update_client`, and with `expected` only while the metadata is still
    /// that.
    async fn replace_client(
        &self,
        client: &Client,
        secret: SecretUpdate,
        expected: Option<&crate::model::ClientMetadata>,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        let Some(stored) = state.clients.get_mut(&client.id) else {
            return Ok(false);
        };
        if expected.is_some_and(|expected| *expected != stored.metadata) {
            return Ok(false);
        }
        // Everything but the ID, the creation time and, unless replaced, the
        // secret.
        let (secret_digest, sealed_secret) = match secret {
            SecretUpdate::Keep => (stored.secret_digest, stored.sealed_secret.clone()),
            SecretUpdate::Replace => (client.secret_digest, client.sealed_secret.clone()),
        };
        *stored = Client {
            id: stored.id.clone(),
            secret_digest,
            sealed_secret,
            created_at: stored.created_at,
            ..client.clone()
        };
        state.catalog_version += 1;
        Ok(true)
    }

    /// The tables, for one verb. A verb against a database suspends for the
    /// round trip, so this one yields first: tasks interleave between verbs as
    /// they would there, and races in the callers stay visible to tests.
    async fn state(&self) -> MutexGuard<'_, State> {
        tokio::task::yield_now().await;
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        Ok(self.state().await.clients.get(id).cloned())
    }

    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        if state.clients.contains_key(&client.id) {
            return Err(StoreError::Conflict(format!("client {:?}", client.id)));
        }
        state.clients.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let mut clients: Vec<Client> = self.state().await.clients.values().cloned().collect();
        clients.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(clients)
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        // What was granted to the client goes with it, whether or not the
        // client is still there, as in the SQL stores' transaction.
        let mut state = self.state().await;
        state.catalog_version += 1;
        state.reference_tokens.retain(|_, t| t.client_id != id);
        state.consents.retain(|_, c| c.client_id != id);
        state.codes.retain(|_, c| c.client_id != id);
        state.refresh_tokens.retain(|_, t| t.client_id != id);
        state.trace.retain(|e| e.client_id != id);
        Ok(state.clients.remove(id).is_some())
    }

    async fn set_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        sealed: Option<&[u8]>,
    ) -> StoreResult<bool> {
        // A public client does not become confidential this way.
        let mut state = self.state().await;
        state.catalog_version += 1;
        match state
            .clients
            .get_mut(id)
            .filter(|c| c.secret_digest.is_some())
        {
            Some(client) => {
                client.secret_digest = Some(*digest);
                client.sealed_secret = sealed.map(<[u8]>::to_vec);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn update_client(&self, client: &Client, secret: SecretUpdate) -> StoreResult<bool> {
        self.replace_client(client, secret, None).await
    }

    async fn update_client_if_unchanged(
        &self,
        client: &Client,
        secret: SecretUpdate,
        expected: &crate::model::ClientMetadata,
    ) -> StoreResult<bool> {
        self.replace_client(client, secret, Some(expected)).await
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        let key = (client_id.to_owned(), jti.to_owned());
        // A record past its expiry is taken over, as in the SQL stores.
        match state.client_assertions.get(&key) {
            Some(recorded) if *recorded > now => Ok(false),
            _ => {
                state.client_assertions.insert(key, expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl OperatorTokenStore for MemoryStore {
    async fn insert_operator_token(&self, token: &OperatorToken) -> StoreResult<()> {
        let mut state = self.state().await;
        // IDs and digests are unique across purposes, as in the SQL stores.
        if state
            .operator_tokens
            .iter()
            .any(|t| t.id == token.id || t.digest == token.digest)
        {
            return Err(StoreError::Conflict(format!(
                "{} token {} exists",
                token.purpose.as_str(),
                token.id
            )));
        }
        state.operator_tokens.push(token.clone());
        Ok(())
    }

    async fn operator_token(
        &self,
        purpose: TokenPurpose,
        digest: &SecretDigest,
    ) -> StoreResult<Option<OperatorToken>> {
        Ok(self
            .state()
            .await
            .operator_tokens
            .iter()
            .find(|t| t.purpose == purpose && t.digest == *digest)
            .cloned())
    }

    async fn operator_tokens(&self, purpose: TokenPurpose) -> StoreResult<Vec<OperatorToken>> {
        let mut tokens: Vec<OperatorToken> = self
            .state()
            .await
            .operator_tokens
            .iter()
            .filter(|t| t.purpose == purpose)
            .cloned()
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn delete_operator_token(&self, purpose: TokenPurpose, id: &str) -> StoreResult<bool> {
        let mut state = self.state().await;
        let before = state.operator_tokens.len();
        state
            .operator_tokens
            .retain(|t| !(t.purpose == purpose && t.id == id));
        Ok(state.operator_tokens.len() < before)
    }
}

#[async_trait]
impl ResourceStore for MemoryStore {
    async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>> {
        Ok(self.state().await.resources.get(audience).cloned())
    }

    async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        if state.resources.contains_key(&resource.audience) {
            return Err(StoreError::Conflict(format!(
                "resource {:?}",
                resource.audience
            )));
        }
        state
            .resources
            .insert(resource.audience.clone(), resource.clone());
        Ok(())
    }

    async fn resources(&self) -> StoreResult<Vec<Resource>> {
        let mut resources: Vec<Resource> = self.state().await.resources.values().cloned().collect();
        resources.sort_by(|a, b| (a.created_at, &a.audience).cmp(&(b.created_at, &b.audience)));
        Ok(resources)
    }

    async fn update_resource(&self, resource: &Resource, secret_version: i64) -> StoreResult<bool> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        match state.resources.get_mut(&resource.audience) {
            Some(stored) if stored.secret_version == secret_version => {
                // Everything but the audience and the creation time.
                *stored = Resource {
                    created_at: stored.created_at,
                    ..resource.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn rotate_resource_secret(
        &self,
        audience: &str,
        from_version: i64,
        sealed: &SealedSecret,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        match state.resources.get_mut(audience) {
            Some(stored)
                if stored.secret_version == from_version
                    && stored.signing_alg == Some(tessera_jose::Algorithm::HS256) =>
            {
                stored.sealed_secret = Some(sealed.clone());
                stored.secret_version = from_version + 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut keys = self.state().await.keys.clone();
        keys.sort_by(|a, b| {
            (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
        });
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        self.state().await.insert_key(key)
    }

    async fn insert_signing_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: UnixTime,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        // The guard first: a refused insert is no conflict, even for a taken
        // key ID. Revoked keys sign nothing, so they do not count as newer.
        if state
            .keys
            .iter()
            .any(|k| k.alg == key.alg && k.activates_at > newer_than && k.revoked_at.is_none())
        {
            return Ok(false);
        }
        state.insert_key(key)?;
        Ok(true)
    }

    async fn revoke_signing_key(&self, kid: &str, now: UnixTime) -> StoreResult<bool> {
        let mut state = self.state().await;
        match state
            .keys
            .iter_mut()
            .find(|k| k.kid == kid && k.revoked_at.is_none())
        {
            Some(key) => {
                key.revoked_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert_reference_token(&self, token: &ReferenceToken) -> StoreResult<()> {
        let mut state = self.state().await;
        if state.reference_tokens.contains_key(&token.digest.0) {
            return Err(StoreError::Conflict("reference token".into()));
        }
        state.reference_tokens.insert(token.digest.0, token.clone());
        Ok(())
    }

    async fn reference_token(&self, digest: &SecretDigest) -> StoreResult<Option<ReferenceToken>> {
        Ok(self.state().await.reference_tokens.get(&digest.0).cloned())
    }

    async fn revoke_reference_token(&self, digest: &SecretDigest) -> StoreResult<bool> {
        let mut state = self.state().await;
        match state.reference_tokens.get_mut(&digest.0) {
            Some(token) => {
                token.revoked = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> StoreResult<()> {
        self.state().await.record_revoked(jti, expires_at);
        Ok(())
    }

    async fn is_jti_revoked(&self, jti: &str) -> StoreResult<bool> {
        Ok(self.state().await.revoked_jtis.contains_key(jti))
    }

    async fn record_user_access_token(
        &self,
        jti: &str,
        user_id: &str,
        client_id: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()> {
        self.state()
            .await
            .user_access_tokens
            .entry(jti.to_owned())
            .or_insert_with(|| (user_id.to_owned(), client_id.to_owned(), expires_at));
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<u64> {
        let mut state = self.state().await;
        let kept_until = now.saturating_sub(CODE_RETENTION);
        let failures_until = now.saturating_sub(LOGIN_FAILURE_RETENTION);
        let operator_tokens = state.operator_tokens.len();
        state
            .operator_tokens
            .retain(|t| t.expires_at.is_none_or(|expires_at| expires_at > now));
        let operator_tokens = (operator_tokens - state.operator_tokens.len()) as u64;
        let traced = state.trace.len();
        let trace_until = now.saturating_sub(crate::store::TRACE_RETENTION);
        state.trace.retain(|e| e.at >= trace_until);
        let traced = (traced - state.trace.len()) as u64;
        Ok(operator_tokens
            + traced
            +
            purge(&mut state.revoked_jtis, |expires_at| *expires_at <= now)
            + purge(&mut state.user_access_tokens, |(_, _, expires_at)| *expires_at <= now)
            + purge(&mut state.assertions, |expires_at| *expires_at <= now)
            + purge(&mut state.reference_tokens, |t| t.expires_at <= now)
            + purge(&mut state.sessions, |s| s.expires_at <= now)
            // Kept past expiry so that a replay is still recognised, and
            // while what it issued lives.
            + purge_codes(&mut state, kept_until)
            // A rotated token is kept until its family ends: presenting it
            // again is reuse (RFC 9700 §4.14.2).
            + purge(&mut state.refresh_tokens, |t| t.family_expires_at <= now)
            // Kept like codes, so a late poll still reads expired_token.
            + purge(&mut state.devices, |d| d.expires_at < kept_until)
            + purge(&mut state.login_failures, |f| f.last_at < failures_until)
            + purge(&mut state.client_assertions, |expires_at| *expires_at <= now))
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut state = self.state().await;
        let (username_key, email_key) = login_keys(user);
        // A login names a user by either their username or their email, so a
        // new username may not be another user's email, nor the other way round.
        let taken = state.users.values().any(|other| {
            let (other_username, other_email) = login_keys(other);
            let names = [Some(&other_username), other_email.as_ref()];
            other.id == user.id
                || names.contains(&Some(&username_key))
                || (email_key.is_some() && names.contains(&email_key.as_ref()))
        });
        if taken {
            return Err(StoreError::Conflict(format!(
                "user {:?} (ID, username or email)",
                user.username
            )));
        }
        state.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.state().await.users.get(id).cloned())
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let key = login.to_lowercase();
        let state = self.state().await;
        // As in the SQL stores, a username match wins over an email match.
        let by_username = state
            .users
            .values()
            .find(|u| u.username.to_lowercase() == key);
        let by_email = || {
            state
                .users
                .values()
                .find(|u| u.email.as_ref().is_some_and(|e| e.to_lowercase() == key))
        };
        Ok(by_username.or_else(by_email).cloned())
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let mut users: Vec<User> = self.state().await.users.values().cloned().collect();
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut state = self.state().await;
        state.revoke_user_access_jtis(id, None);
        state.sessions.retain(|_, s| s.user_id != id);
        state.consents.retain(|_, c| c.user_id != id);
        state.codes.retain(|_, c| c.user_id != id);
        state.refresh_tokens.retain(|_, t| t.user_id != id);
        Ok(state.users.remove(id).is_some())
    }

    async fn set_password(
        &self,
        id: &str,
        password_hash: &str,
        revoke_grants: bool,
    ) -> StoreResult<Option<u64>> {
        let mut state = self.state().await;
        let Some(user) = state.users.get_mut(id) else {
            return Ok(None);
        };
        user.password_hash = password_hash.to_owned();
        // A new password signs the user out everywhere.
        state.sessions.retain(|_, s| s.user_id != id);
        if !revoke_grants {
            return Ok(Some(0));
        }
        state.revoke_user_access_jtis(id, None);
        state
            .codes
            .retain(|_, c| !(c.user_id == id && c.consumed_at.is_none()));
        Ok(Some(revoke_where(&mut state.refresh_tokens, |t| {
            t.user_id == id
        })))
    }

    async fn set_user_roles(&self, id: &str, roles: crate::store::Roles) -> StoreResult<bool> {
        let mut state = self.state().await;
        Ok(state.users.get_mut(id).map(|u| u.roles = roles).is_some())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut state = self.state().await;
        if state.sessions.contains_key(&session.digest.0)
            || state.sessions.values().any(|s| s.sid == session.sid)
        {
            return Err(StoreError::Conflict("session (digest or sid)".into()));
        }
        state.sessions.insert(session.digest.0, session.clone());
        Ok(())
    }

    async fn touch_session(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
        idle_since: UnixTime,
    ) -> StoreResult<Option<Session>> {
        let mut state = self.state().await;
        Ok(touch(state.sessions.get_mut(&digest.0), now, idle_since))
    }

    async fn touch_session_by_sid(
        &self,
        sid: &str,
        now: UnixTime,
        idle_since: UnixTime,
    ) -> StoreResult<Option<Session>> {
        let mut state = self.state().await;
        let session = state.sessions.values_mut().find(|s| s.sid == sid);
        Ok(touch(session, now, idle_since))
    }

    async fn delete_session(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
    ) -> StoreResult<Option<Session>> {
        let mut state = self.state().await;
        let session = state.sessions.remove(&digest.0);
        if let Some(session) = &session {
            state.revoke_session_grants(&session.sid, now);
        }
        Ok(session)
    }

    async fn delete_session_by_sid(&self, sid: &str, now: UnixTime) -> StoreResult<bool> {
        let mut state = self.state().await;
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.sid != sid);
        let deleted = state.sessions.len() < before;
        // Like the SQL stores: the grants of the sid end even if the session
        // itself was gone already.
        state.revoke_session_grants(sid, now);
        Ok(deleted)
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        let key = (user_id.to_owned(), client_id.to_owned());
        Ok(self.state().await.consents.get(&key).cloned())
    }

    async fn save_consent(&self, consent: &Consent) -> StoreResult<()> {
        let key = (consent.user_id.clone(), consent.client_id.clone());
        self.state().await.consents.insert(key, consent.clone());
        Ok(())
    }

    async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
        let mut consents: Vec<Consent> = self
            .state()
            .await
            .consents
            .values()
            .filter(|c| c.user_id == user_id)
            .cloned()
            .collect();
        consents.sort_by(|a, b| (a.granted_at, &a.client_id).cmp(&(b.granted_at, &b.client_id)));
        Ok(consents)
    }

    async fn revoke_consent(&self, user_id: &str, client_id: Option<&str>) -> StoreResult<u64> {
        // The refresh tokens go whether or not a consent is on record: a
        // withdrawal must leave the client nothing to continue with.
        let mut state = self.state().await;
        let for_client = |id: &str| client_id.is_none_or(|c| c == id);
        state.revoke_user_access_jtis(user_id, client_id);
        revoke_where(&mut state.refresh_tokens, |t| {
            t.user_id == user_id && for_client(&t.client_id)
        });
        let before = state.consents.len();
        state
            .consents
            .retain(|_, c| !(c.user_id == user_id && for_client(&c.client_id)));
        Ok((before - state.consents.len()) as u64)
    }
}

#[async_trait]
impl CodeStore for MemoryStore {
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let mut state = self.state().await;
        if state.codes.contains_key(&code.digest.0) {
            return Err(StoreError::Conflict("authorization code".into()));
        }
        state.codes.insert(code.digest.0, code.clone());
        Ok(())
    }

    async fn authorization_code(
        &self,
        digest: &SecretDigest,
    ) -> StoreResult<Option<AuthorizationCode>> {
        Ok(self.state().await.codes.get(&digest.0).cloned())
    }

    async fn consume_code(&self, digest: &SecretDigest, now: UnixTime) -> StoreResult<CodeUse> {
        let mut state = self.state().await;
        Ok(match state.codes.get_mut(&digest.0) {
            Some(code) if code.consumed_at.is_none() && code.expires_at > now => {
                code.consumed_at = Some(now);
                CodeUse::Fresh(code.clone())
            }
            // A consumed code is a replay even after it has expired, for as
            // long as it is kept (RFC 6749 §4.1.2).
            Some(code) if code.consumed_at.is_some() => {
                let replayed = code.clone();
                state.replayed_codes.insert(digest.0);
                CodeUse::Replayed(replayed)
            }
            _ => CodeUse::Invalid,
        })
    }

    async fn consume_bound_code(
        &self,
        digest: &SecretDigest,
        now: UnixTime,
        client_id: &str,
        redirect_uri: &str,
    ) -> StoreResult<Option<AuthorizationCode>> {
        let mut state = self.state().await;
        Ok(match state.codes.get_mut(&digest.0) {
            Some(code)
                if code.consumed_at.is_none()
                    && code.expires_at > now
                    && code.client_id == client_id
                    && code.redirect_uri == redirect_uri =>
            {
                code.consumed_at = Some(now);
                Some(code.clone())
            }
            _ => None,
        })
    }

    async fn record_code_tokens(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: UnixTime,
        family_id: Option<&str>,
    ) -> StoreResult<bool> {
        Ok(self
            .state()
            .await
            .record_code(digest, access_jti, access_expires_at, family_id))
    }

    async fn record_code_exchange(
        &self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: UnixTime,
        refresh: &RefreshToken,
    ) -> StoreResult<bool> {
        // Both under one lock, as one transaction.
        let mut state = self.state().await;
        state.insert_refresh(refresh)?;
        Ok(state.record_code(
            digest,
            access_jti,
            access_expires_at,
            Some(&refresh.family_id),
        ))
    }
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        self.state().await.insert_refresh(token)
    }

    async fn refresh_token(&self, jti: &str) -> StoreResult<Option<RefreshToken>> {
        Ok(self.state().await.refresh_tokens.get(jti).cloned())
    }

    async fn rotate_refresh_token(
        &self,
        jti: &str,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        if state.refresh_tokens.contains_key(&successor.jti) {
            return Err(StoreError::Conflict(format!(
                "refresh token {:?}",
                successor.jti
            )));
        }
        let Some(token) = state.refresh_tokens.get_mut(jti) else {
            return Ok(false);
        };
        if token.state(now) != RefreshState::Current {
            return Ok(false);
        }
        token.rotated_at = Some(now);
        token.successor_jti = Some(successor.jti.clone());
        state
            .refresh_tokens
            .insert(successor.jti.clone(), successor.clone());
        Ok(true)
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: UnixTime) -> StoreResult<u64> {
        let mut state = self.state().await;
        // Access tokens already expired need no record.
        let live: Vec<(String, UnixTime)> = state
            .refresh_tokens
            .values()
            .filter(|t| t.family_id == family_id)
            .filter_map(|t| live_access(&t.access_jti, t.access_expires_at, now))
            .collect();
        for (jti, expires_at) in live {
            state.record_revoked(&jti, expires_at);
        }
        Ok(revoke_where(&mut state.refresh_tokens, |t| {
            t.family_id == family_id
        }))
    }
}

#[async_trait]
impl ThrottleStore for MemoryStore {
    async fn login_failures(&self, key: &str) -> StoreResult<Option<LoginFailures>> {
        Ok(self.state().await.login_failures.get(key).copied())
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window_start: UnixTime,
    ) -> StoreResult<LoginFailures> {
        let mut state = self.state().await;
        let fresh = LoginFailures {
            count: 1,
            first_at: now,
            last_at: now,
        };
        let failures = state
            .login_failures
            .entry(key.to_owned())
            .and_modify(|f| {
                // Failures before the window no longer count.
                *f = if f.first_at < window_start {
                    fresh
                } else {
                    LoginFailures {
                        count: f.count + 1,
                        first_at: f.first_at,
                        last_at: now,
                    }
                };
            })
            .or_insert(fresh);
        Ok(*failures)
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        self.state().await.login_failures.remove(key);
        Ok(())
    }

    async fn swap_login_failures(
        &self,
        key: &str,
        expected: Option<&LoginFailures>,
        new: &LoginFailures,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        if state.login_failures.get(key) != expected {
            return Ok(false);
        }
        state.login_failures.insert(key.to_owned(), *new);
        Ok(true)
    }

    async fn release_login_attempt(&self, key: &str) -> StoreResult<()> {
        if let Some(failures) = self.state().await.login_failures.get_mut(key) {
            failures.count = failures.count.saturating_sub(1);
        }
        Ok(())
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device_authorization(&self, device: &DeviceAuthorization) -> StoreResult<()> {
        let mut state = self.state().await;
        // User codes are unique among all records, decided and expired ones too.
        if state.devices.contains_key(&device.digest.0)
            || state
                .devices
                .values()
                .any(|d| d.user_code == device.user_code)
        {
            return Err(StoreError::Conflict(
                "device authorization (device code or user code)".into(),
            ));
        }
        state.devices.insert(device.digest.0, device.clone());
        Ok(())
    }

    async fn pending_device(
        &self,
        user_code: &str,
        now: UnixTime,
    ) -> StoreResult<Option<DeviceAuthorization>> {
        Ok(self
            .state()
            .await
            .devices
            .values()
            .find(|d| d.user_code == user_code && is_pending(d, now))
            .cloned())
    }

    async fn decide_device(
        &self,
        user_code: &str,
        user_id: &str,
        auth_time: UnixTime,
        approve: bool,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        let Some(device) = state
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code && is_pending(d, now))
        else {
            return Ok(false);
        };
        device.status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        device.user_id = Some(user_id.to_owned());
        device.auth_time = Some(auth_time);
        Ok(true)
    }

    async fn poll_device(
        &self,
        digest: &SecretDigest,
        client_id: &str,
        now: UnixTime,
    ) -> StoreResult<DevicePoll> {
        let mut state = self.state().await;
        // Another client's poll finds nothing and changes nothing (RFC 6749
        // §5.2: the grant was issued to another client).
        let Some(device) = state
            .devices
            .get_mut(&digest.0)
            .filter(|d| d.client_id == client_id)
        else {
            return Ok(DevicePoll::Invalid);
        };
        let on_time = device
            .last_polled_at
            .is_none_or(|last| last + device.interval <= now);
        if !on_time {
            // RFC 8628 §3.5: too fast; the interval grows by 5 seconds. But
            // slow_down says "still pending": a denied, spent or expired code
            // gets its final answer instead.
            let live = matches!(
                device.status,
                DeviceStatus::Pending | DeviceStatus::Approved
            ) && device.expires_at > now;
            if live {
                device.interval += 5;
                device.last_polled_at = Some(now);
                return Ok(DevicePoll::SlowDown);
            }
            return Ok(DevicePoll::Polled(Box::new(device.clone())));
        }
        device.last_polled_at = Some(now);
        let polled = Box::new(device.clone());
        // The approval goes out once: stored as spent, returned as approved.
        if device.status == DeviceStatus::Approved && device.expires_at > now {
            device.status = DeviceStatus::Consumed;
        }
        Ok(DevicePoll::Polled(polled))
    }
}

#[async_trait]
impl TrustStore for MemoryStore {
    async fn trusted_issuer(&self, issuer: &str) -> StoreResult<Option<TrustedIssuer>> {
        let state = self.state().await;
        Ok(state
            .trusted_issuers
            .iter()
            .find(|t| t.issuer == issuer)
            .cloned())
    }

    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> StoreResult<()> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        if state
            .trusted_issuers
            .iter()
            .any(|t| t.issuer == issuer.issuer)
        {
            return Err(StoreError::Conflict(format!(
                "trusted issuer {:?}",
                issuer.issuer
            )));
        }
        state.trusted_issuers.push(issuer.clone());
        Ok(())
    }

    async fn trusted_issuers(&self) -> StoreResult<Vec<TrustedIssuer>> {
        let mut list = self.state().await.trusted_issuers.clone();
        list.sort_by(|a, b| (a.created_at, &a.issuer).cmp(&(b.created_at, &b.issuer)));
        Ok(list)
    }

    async fn delete_trusted_issuer(&self, issuer: &str) -> StoreResult<bool> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        let before = state.trusted_issuers.len();
        state.trusted_issuers.retain(|t| t.issuer != issuer);
        Ok(state.trusted_issuers.len() < before)
    }

    async fn saml_idp(&self, entity_id: &str) -> StoreResult<Option<SamlIdp>> {
        let state = self.state().await;
        Ok(state
            .saml_idps
            .iter()
            .find(|i| i.entity_id == entity_id)
            .cloned())
    }

    async fn insert_saml_idp(&self, idp: &SamlIdp) -> StoreResult<()> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        if state.saml_idps.iter().any(|i| i.entity_id == idp.entity_id) {
            return Err(StoreError::Conflict(format!(
                "SAML identity provider {:?}",
                idp.entity_id
            )));
        }
        state.saml_idps.push(idp.clone());
        Ok(())
    }

    async fn saml_idps(&self) -> StoreResult<Vec<SamlIdp>> {
        let mut list = self.state().await.saml_idps.clone();
        list.sort_by(|a, b| (a.created_at, &a.entity_id).cmp(&(b.created_at, &b.entity_id)));
        Ok(list)
    }

    async fn delete_saml_idp(&self, entity_id: &str) -> StoreResult<bool> {
        let mut state = self.state().await;
        state.catalog_version += 1;
        let before = state.saml_idps.len();
        state.saml_idps.retain(|i| i.entity_id != entity_id);
        Ok(state.saml_idps.len() < before)
    }

    async fn record_assertion(
        &self,
        kind: AssertionKind,
        issuer: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let mut state = self.state().await;
        let key = (kind, issuer.to_owned(), id.to_owned());
        match state.assertions.get(&key) {
            Some(recorded) if *recorded > now => Ok(false),
            _ => {
                state.assertions.insert(key, expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl TraceStore for MemoryStore {
    async fn record_trace(
        &self,
        events: &[crate::trace::TraceEvent],
        keep_per_client: usize,
    ) -> StoreResult<()> {
        let mut state = self.state().await;
        state.trace.extend_from_slice(events);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut kept: Vec<_> = std::mem::take(&mut state.trace)
            .into_iter()
            .rev()
            .filter(|e| {
                let count = seen.entry(e.client_id.clone()).or_default();
                *count += 1;
                *count <= keep_per_client
            })
            .collect();
        kept.reverse();
        state.trace = kept;
        Ok(())
    }

    async fn trace(
        &self,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<crate::trace::TraceEvent>> {
        Ok(self
            .state()
            .await
            .trace
            .iter()
            .rev()
            .filter(|e| e.client_id == client_id)
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn connections(&self) -> crate::store::ConnectionCounts {
        crate::store::ConnectionCounts::default()
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn catalog_version(&self) -> StoreResult<i64> {
        Ok(self.state().await.catalog_version)
    }
}

impl State {
    fn insert_key(&mut self, key: &StoredKey) -> StoreResult<()> {
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict(format!("key {:?}", key.kid)));
        }
        self.keys.push(key.clone());
        Ok(())
    }

    /// A new refresh token; a taken `jti` is a conflict, as the primary key.
    fn insert_refresh(&mut self, token: &RefreshToken) -> StoreResult<()> {
        if self.refresh_tokens.contains_key(&token.jti) {
            return Err(StoreError::Conflict(format!(
                "refresh token {:?}",
                token.jti
            )));
        }
        self.refresh_tokens.insert(token.jti.clone(), token.clone());
        Ok(())
    }

    /// What a code's exchange issued, unless a replay came first.
    fn record_code(
        &mut self,
        digest: &SecretDigest,
        access_jti: &str,
        access_expires_at: UnixTime,
        family_id: Option<&str>,
    ) -> bool {
        if self.replayed_codes.contains(&digest.0) {
            return false;
        }
        let Some(code) = self.codes.get_mut(&digest.0) else {
            return false;
        };
        code.access_jti = Some(access_jti.to_owned());
        code.access_expires_at = Some(access_expires_at);
        code.family_id = family_id.map(str::to_owned);
        true
    }

    /// Records a revoked `jti`; a `jti` already recorded keeps its expiry, as
    /// with `ON CONFLICT DO NOTHING`.
    fn record_revoked(&mut self, jti: &str, expires_at: UnixTime) {
        self.revoked_jtis
            .entry(jti.to_owned())
            .or_insert(expires_at);
    }

    /// Records as revoked the access tokens issued from the user's refresh
    /// tokens and codes, and those recorded under the user alone, for one
    /// client (or all with `None`). Expired ones are
    /// recorded too, as in the SQL stores; `purge_expired` drops them.
    fn revoke_user_access_jtis(&mut self, user_id: &str, client_id: Option<&str>) {
        let ours =
            |user: &str, client: &str| user == user_id && client_id.is_none_or(|c| c == client);
        let from_refresh = self
            .refresh_tokens
            .values()
            .filter(|t| ours(&t.user_id, &t.client_id))
            .filter_map(|t| Some((t.access_jti.clone()?, t.access_expires_at?)));
        let from_codes = self
            .codes
            .values()
            .filter(|c| ours(&c.user_id, &c.client_id))
            .filter_map(|c| Some((c.access_jti.clone()?, c.access_expires_at?)));
        let recorded = self
            .user_access_tokens
            .iter()
            .filter(|(_, (user, client, _))| ours(user, client))
            .map(|(jti, (_, _, expires_at))| (jti.clone(), *expires_at));
        let issued: Vec<(String, UnixTime)> =
            from_refresh.chain(from_codes).chain(recorded).collect();
        for (jti, expires_at) in issued {
            self.record_revoked(&jti, expires_at);
        }
    }

    /// What a session granted ends with it: its online refresh tokens are
    /// revoked, and the live access tokens issued with them or with its codes
    /// are recorded as revoked, except those of codes whose grant went on
    /// offline.
    fn revoke_session_grants(&mut self, sid: &str, now: UnixTime) {
        let of_session = |s: &Option<String>| s.as_deref() == Some(sid);
        let offline_families: HashSet<&str> = self
            .refresh_tokens
            .values()
            .filter(|t| t.offline)
            .map(|t| t.family_id.as_str())
            .collect();
        let from_refresh = self
            .refresh_tokens
            .values()
            .filter(|t| of_session(&t.sid) && !t.offline)
            .filter_map(|t| live_access(&t.access_jti, t.access_expires_at, now));
        let from_codes = self
            .codes
            .values()
            .filter(|c| of_session(&c.sid))
            .filter(|c| {
                !c.family_id
                    .as_deref()
                    .is_some_and(|f| offline_families.contains(f))
            })
            .filter_map(|c| live_access(&c.access_jti, c.access_expires_at, now));
        let issued: Vec<(String, UnixTime)> = from_refresh.chain(from_codes).collect();
        for (jti, expires_at) in issued {
            self.record_revoked(&jti, expires_at);
        }
        revoke_where(&mut self.refresh_tokens, |t| {
            of_session(&t.sid) && !t.offline
        });
        // Unredeemed codes of the session go, as in the SQL stores.
        self.codes
            .retain(|_, c| !(of_session(&c.sid) && c.consumed_at.is_none()));
    }
}

/// The access token recorded with a grant, if it is still live at `now`.
fn live_access(
    jti: &Option<String>,
    expires_at: Option<UnixTime>,
    now: UnixTime,
) -> Option<(String, UnixTime)> {
    match (jti, expires_at) {
        (Some(jti), Some(expires_at)) if expires_at > now => Some((jti.clone(), expires_at)),
        _ => None,
    }
}

/// Marks revoked the refresh tokens that match and are not revoked yet;
/// returns how many.
/// Codes past their retention whose access token has expired and whose
/// refresh family has no record left.
fn purge_codes(state: &mut State, kept_until: UnixTime) -> u64 {
    let families: std::collections::HashSet<String> = state
        .refresh_tokens
        .values()
        .map(|t| t.family_id.clone())
        .collect();
    purge(&mut state.codes, |c| {
        c.expires_at < kept_until
            && c.access_expires_at.is_none_or(|t| t < kept_until)
            && c.family_id.as_ref().is_none_or(|f| !families.contains(f))
    })
}

fn revoke_where(
    tokens: &mut HashMap<String, RefreshToken>,
    matches: impl Fn(&RefreshToken) -> bool,
) -> u64 {
    let mut revoked = 0;
    for token in tokens.values_mut().filter(|t| !t.revoked && matches(t)) {
        token.revoked = true;
        revoked += 1;
    }
    revoked
}

/// Deletes the records that have expired; returns how many.
fn purge<K, V>(records: &mut HashMap<K, V>, expired: impl Fn(&V) -> bool) -> u64 {
    let before = records.len();
    records.retain(|_, record| !expired(record));
    (before - records.len()) as u64
}

/// `touch_session`'s rule: a session past its end or idle since before
/// `idle_since` is not revived; a live one is seen `now`.
fn touch(session: Option<&mut Session>, now: UnixTime, idle_since: UnixTime) -> Option<Session> {
    let session = session.filter(|s| s.expires_at > now && s.last_seen > idle_since)?;
    session.last_seen = now;
    Some(session.clone())
}

/// The lower-cased username and email a login is matched against.
fn login_keys(user: &User) -> (String, Option<String>) {
    (
        user.username.to_lowercase(),
        user.email.as_deref().map(str::to_lowercase),
    )
}

fn is_pending(device: &DeviceAuthorization, now: UnixTime) -> bool {
    device.status == DeviceStatus::Pending && device.expires_at > now
}

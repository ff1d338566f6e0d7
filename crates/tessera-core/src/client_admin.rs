//! What people do to clients: create one, change it, rotate its secret,
//! delete it. The command line, the developer portal and the admin API all
//! call these functions, which check every result with
//! [`registration::check_client`] before anything is written: no entry point
//! can store a client the others would refuse, or skip a step the others take
//! (a secret follows the authentication method; a deletion takes the client's
//! grants with it).

use std::borrow::Borrow;

use tessera_jose::{Algorithm, JwkSet};

use crate::client_auth::NewSecret;
use crate::clock::UnixTime;
use crate::crypto::{KeyEncryptionKey, random_id};
use crate::model::{
    Client, ClientAuthMethod, ClientKind, ClientMetadata, GrantType, IntrospectionPolicy,
    TokenFormat,
};
use crate::registration::{RegistrationError, RegistrationErrorKind, check_client};
use crate::scope::Scope;
use crate::store::{ClientStore, SecretUpdate, StoreError};

/// Why a change to a client was not made.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("no client {0:?}")]
    NotFound(String),
    #[error("client {0:?} already exists")]
    Conflict(String),
    /// The client would break a registration rule; nothing was written.
    #[error("{0}")]
    Invalid(#[from] RegistrationError),
    #[error(
        "client {0:?} has no secret (public clients have none; private_key_jwt clients change \
         keys instead, at their jwks_uri or by registering a new JWK Set)"
    )]
    NoSecret(String),
    /// The key-encryption key, needed to seal a `client_secret_jwt` secret,
    /// could not be had.
    #[error("{0}")]
    Kek(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> ManageError {
    ManageError::Invalid(RegistrationError {
        kind: RegistrationErrorKind::InvalidClientMetadata,
        message: message.into(),
    })
}

/// A client to create. Unset fields take the defaults of its kind.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Chosen by the server when `None`.
    pub id: Option<String>,
    pub name: String,
    pub kind: Option<ClientKind>,
    /// No credentials. Also implied by a kind that runs where no secret can
    /// be kept, unless an authentication method says otherwise.
    pub public: bool,
    pub auth_method: Option<ClientAuthMethod>,
    /// Empty: the kind's default grants.
    pub grants: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    pub token_format: Option<TokenFormat>,
    pub access_token_ttl: Option<i64>,
    pub introspection: IntrospectionPolicy,
    pub require_pkce: bool,
    pub id_token_alg: Option<Algorithm>,
    pub jwks: Option<JwkSet>,
    pub jwks_uri: Option<String>,
    pub impersonation: bool,
    pub serves: Vec<String>,
    /// The person who registered it in the portal, who manages it there.
    pub owner: Option<String>,
}

impl NewClient {
    /// A client with this name and every other setting at its default.
    pub fn named(name: impl Into<String>) -> Self {
        NewClient {
            id: None,
            name: name.into(),
            kind: None,
            public: false,
            auth_method: None,
            grants: Vec::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: Scope::default(),
            audiences: Vec::new(),
            token_format: None,
            access_token_ttl: None,
            introspection: IntrospectionPolicy::Own,
            require_pkce: true,
            id_token_alg: None,
            jwks: None,
            jwks_uri: None,
            impersonation: false,
            serves: Vec::new(),
            owner: None,
        }
    }
}

/// A client just stored, with its secret: shown once, then only its digest
/// (and for `client_secret_jwt` a sealed copy) remains.
#[derive(Debug)]
pub struct Created {
    pub client: Client,
    pub secret: Option<NewSecret>,
}

/// Creates a client. `kek` is asked for only when a secret must be sealed
/// (`client_secret_jwt`), so that callers without the key can make others.
pub async fn create<K: Borrow<KeyEncryptionKey>>(
    store: &dyn ClientStore,
    new: NewClient,
    now: UnixTime,
    kek: impl FnOnce() -> Result<K, String>,
) -> Result<Created, ManageError> {
    let id = new.id.unwrap_or_else(random_id);
    if new.public && new.auth_method.is_some_and(|m| m != ClientAuthMethod::None) {
        return Err(invalid(format!(
            "public contradicts the authentication method {}: a public client has no credentials",
            new.auth_method.map_or("", ClientAuthMethod::as_str)
        )));
    }
    // A kind that runs where no secret can be kept makes a public client,
    // unless an auth method says otherwise (which the rules then refuse).
    let public = new.public
        || new.auth_method == Some(ClientAuthMethod::None)
        || (new.auth_method.is_none() && new.kind.is_some_and(ClientKind::is_public));
    let keyed = new.auth_method == Some(ClientAuthMethod::PrivateKeyJwt);
    let secret = if public || keyed {
        None
    } else {
        Some(new_secret(&id, new.auth_method, kek)?)
    };
    let client = Client {
        secret_digest: secret.as_ref().map(|s| s.digest),
        sealed_secret: secret.as_ref().and_then(|s| s.sealed.clone()),
        id,
        name: new.name,
        auth_method: if public {
            // Kept only when it contradicts, so that the rules can say so.
            new.auth_method.filter(|m| *m != ClientAuthMethod::None)
        } else {
            new.auth_method
        },
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        grants: match new.kind {
            Some(kind) if new.grants.is_empty() => kind.default_grants(),
            _ => dedup(new.grants),
        },
        redirect_uris: dedup(new.redirect_uris),
        scopes: new.scopes,
        audiences: dedup(new.audiences),
        token_format: new.token_format,
        access_token_ttl: new.access_token_ttl,
        introspection: new.introspection,
        require_pkce: new.require_pkce,
        id_token_alg: new.id_token_alg,
        post_logout_redirect_uris: dedup(new.post_logout_redirect_uris),
        metadata: ClientMetadata {
            impersonation: new.impersonation,
            serves: dedup(new.serves),
            kind: new.kind,
            owner: new.owner,
            ..ClientMetadata::default()
        },
        created_at: now,
    };
    check_client(&client)?;
    store.insert_client(&client).await.map_err(|e| match e {
        StoreError::Conflict(_) => ManageError::Conflict(client.id.clone()),
        other => other.into(),
    })?;
    Ok(Created { client, secret })
}

/// Keys a confidential client authenticates with, given anew.
#[derive(Debug, Clone)]
pub enum ClientKeys {
    Jwks(JwkSet),
    JwksUri(String),
}

/// Changes to a client. `None` leaves a setting as it is; for settings that
/// may be unset, `Some(None)` returns them to the server's default.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub grants: Option<Vec<GrantType>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Scope>,
    pub audiences: Option<Vec<String>>,
    pub serves: Option<Vec<String>>,
    pub impersonation: Option<bool>,
    pub token_format: Option<Option<TokenFormat>>,
    pub access_token_ttl: Option<Option<i64>>,
    /// `Some(None)`: either secret method.
    pub auth_method: Option<Option<ClientAuthMethod>>,
    pub keys: Option<ClientKeys>,
    pub introspection: Option<IntrospectionPolicy>,
    pub require_pkce: Option<bool>,
    pub id_token_alg: Option<Option<Algorithm>>,
}

/// A client after a change, with the secret made if its authentication
/// method needed a new one.
#[derive(Debug)]
pub struct Updated {
    pub client: Client,
    /// Whether anything changed.
    pub changed: bool,
    pub secret: Option<NewSecret>,
}

/// Applies `changes` to the client, checks the result by the registration
/// rules, and stores it in one statement. A secret rotated meanwhile is kept
/// unless the change of method replaces it.
pub async fn update<K: Borrow<KeyEncryptionKey>>(
    store: &dyn ClientStore,
    id: &str,
    changes: ClientChanges,
    kek: impl FnOnce() -> Result<K, String>,
) -> Result<Updated, ManageError> {
    let before = store
        .client(id)
        .await?
        .ok_or_else(|| ManageError::NotFound(id.to_owned()))?;
    let mut client = before.clone();
    let ClientChanges {
        name,
        grants,
        redirect_uris,
        post_logout_redirect_uris,
        scopes,
        audiences,
        serves,
        impersonation,
        token_format,
        access_token_ttl,
        auth_method,
        keys,
        introspection,
        require_pkce,
        id_token_alg,
    } = changes;
    if let Some(name) = name {
        client.name = name;
    }
    if let Some(grants) = grants {
        client.grants = dedup(grants);
    }
    if let Some(uris) = redirect_uris {
        client.redirect_uris = dedup(uris);
    }
    if let Some(uris) = post_logout_redirect_uris {
        client.post_logout_redirect_uris = dedup(uris);
    }
    if let Some(scopes) = scopes {
        client.scopes = scopes;
    }
    if let Some(audiences) = audiences {
        client.audiences = dedup(audiences);
    }
    if let Some(serves) = serves {
        client.metadata.serves = dedup(serves);
    }
    if let Some(impersonation) = impersonation {
        client.metadata.impersonation = impersonation;
    }
    if let Some(format) = token_format {
        client.token_format = format;
    }
    if let Some(ttl) = access_token_ttl {
        client.access_token_ttl = ttl;
    }
    if let Some(method) = auth_method {
        if before.is_public() && method.is_some_and(|m| m != ClientAuthMethod::None) {
            return Err(invalid(
                "a public client has no secret or keys to authenticate with; register a \
                 confidential client instead",
            ));
        }
        if !before.is_public() {
            if method == Some(ClientAuthMethod::None) {
                return Err(invalid(
                    "a confidential client cannot become public; register a public client instead",
                ));
            }
            client.auth_method = method;
        }
    }
    let keys_given = keys.is_some();
    match keys {
        Some(ClientKeys::Jwks(set)) => {
            client.jwks = Some(set);
            client.jwks_uri = None;
        }
        Some(ClientKeys::JwksUri(uri)) => {
            client.jwks_uri = Some(uri);
            client.jwks = None;
        }
        None => {}
    }
    let secret = follow_method(&mut client, &before, keys_given, kek)?;
    if let Some(policy) = introspection {
        client.introspection = policy;
    }
    if let Some(pkce) = require_pkce {
        client.require_pkce = pkce;
    }
    if let Some(alg) = id_token_alg {
        client.id_token_alg = alg;
    }
    check_client(&client)?;
    let changed = client != before;
    if changed {
        let secret_update = if client.secret_digest != before.secret_digest
            || client.sealed_secret != before.sealed_secret
        {
            SecretUpdate::Replace
        } else {
            SecretUpdate::Keep
        };
        if !store.update_client(&client, secret_update).await? {
            return Err(ManageError::NotFound(id.to_owned()));
        }
    }
    Ok(Updated {
        client,
        changed,
        secret,
    })
}

/// Makes a confidential client's credentials follow a change of its
/// authentication method; returns the new secret, if one was made.
///
/// - to private_key_jwt: the secret goes; the keys come with the change.
/// - from private_key_jwt to a secret method: the keys go (unless given
///   anew, which the rules then refuse) and a secret is made.
/// - to client_secret_jwt: a new secret, sealed, since until now only the
///   secret's digest was kept and a digest cannot key an HMAC.
/// - from client_secret_jwt to Basic or the body: the same secret serves;
///   its sealed copy is dropped.
fn follow_method<K: Borrow<KeyEncryptionKey>>(
    client: &mut Client,
    before: &Client,
    keys_given: bool,
    kek: impl FnOnce() -> Result<K, String>,
) -> Result<Option<NewSecret>, ManageError> {
    if client.auth_method == before.auth_method || before.is_public() {
        return Ok(None);
    }
    if client.auth_method == Some(ClientAuthMethod::PrivateKeyJwt) {
        client.secret_digest = None;
        client.sealed_secret = None;
        return Ok(None);
    }
    if before.auth_method == Some(ClientAuthMethod::PrivateKeyJwt) && !keys_given {
        client.jwks = None;
        client.jwks_uri = None;
    }
    if client.secret_digest.is_none()
        || client.auth_method == Some(ClientAuthMethod::ClientSecretJwt)
    {
        let secret = new_secret(&client.id, client.auth_method, kek)?;
        client.secret_digest = Some(secret.digest);
        client.sealed_secret = secret.sealed.clone();
        return Ok(Some(secret));
    }
    client.sealed_secret = None;
    Ok(None)
}

/// Gives a client that has a secret a new one. The digest and the sealed copy
/// change in one statement; the old secret stops working at once (within the
/// catalog's staleness bound on other instances).
pub async fn rotate_secret<K: Borrow<KeyEncryptionKey>>(
    store: &dyn ClientStore,
    id: &str,
    kek: impl FnOnce() -> Result<K, String>,
) -> Result<NewSecret, ManageError> {
    let no_secret = || ManageError::NoSecret(id.to_owned());
    let client = store.client(id).await?.ok_or_else(no_secret)?;
    if client.secret_digest.is_none() {
        return Err(no_secret());
    }
    let secret = new_secret(id, client.auth_method, kek)?;
    if !store
        .set_client_secret(id, &secret.digest, secret.sealed.as_deref())
        .await?
    {
        return Err(no_secret());
    }
    Ok(secret)
}

/// Deletes a client with what it was granted: its consents, codes, refresh
/// tokens and reference tokens go in the same transaction.
pub async fn delete(store: &dyn ClientStore, id: &str) -> Result<(), ManageError> {
    if store.delete_client(id).await? {
        Ok(())
    } else {
        Err(ManageError::NotFound(id.to_owned()))
    }
}

/// A new secret for `client_id`; sealed for client_secret_jwt, which needs
/// the secret itself to check HMACs (see [`crate::client_auth`]).
fn new_secret<K: Borrow<KeyEncryptionKey>>(
    client_id: &str,
    method: Option<ClientAuthMethod>,
    kek: impl FnOnce() -> Result<K, String>,
) -> Result<NewSecret, ManageError> {
    match method {
        Some(ClientAuthMethod::ClientSecretJwt) => {
            let kek = kek().map_err(ManageError::Kek)?;
            Ok(NewSecret::generate(client_id, Some(kek.borrow())))
        }
        _ => Ok(NewSecret::generate(client_id, None)),
    }
}

fn dedup<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(values.len());
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    fn no_kek() -> Result<KeyEncryptionKey, String> {
        Err("no key-encryption key here".into())
    }

    #[tokio::test]
    async fn a_kind_sets_the_defaults_and_the_rules_apply() {
        let store = MemoryStore::new();
        let mut spa = NewClient::named("Shop");
        spa.kind = Some(ClientKind::Spa);
        spa.redirect_uris = vec!["https://shop.example/cb".into()];
        let created = create(&store, spa, 1, no_kek).await.unwrap();
        assert!(created.secret.is_none());
        assert!(created.client.is_public());
        assert_eq!(
            created.client.grants,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );

        let mut service = NewClient::named("Billing");
        service.kind = Some(ClientKind::Service);
        let created = create(&store, service, 1, no_kek).await.unwrap();
        let secret = created.secret.expect("a service keeps a secret");
        assert_eq!(
            created.client.secret_digest,
            Some(crate::crypto::SecretDigest::of(&secret.secret))
        );

        let mut bad = NewClient::named("Bad");
        bad.kind = Some(ClientKind::Web);
        bad.redirect_uris = vec!["http://example.com/cb".into()];
        let err = create(&store, bad, 1, no_kek).await.unwrap_err();
        assert!(
            matches!(&err, ManageError::Invalid(e) if e.kind == RegistrationErrorKind::InvalidRedirectUri),
            "{err}"
        );
        assert_eq!(store.clients().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_key_encryption_key_is_asked_for_only_to_seal() {
        let store = MemoryStore::new();
        let mut jwt = NewClient::named("Signer");
        jwt.grants = vec![GrantType::ClientCredentials];
        jwt.auth_method = Some(ClientAuthMethod::ClientSecretJwt);
        let err = create(&store, jwt, 1, no_kek).await.unwrap_err();
        assert!(matches!(err, ManageError::Kek(_)), "{err}");
        assert!(store.clients().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn changes_are_checked_before_anything_is_written() {
        let store = MemoryStore::new();
        let mut web = NewClient::named("Web");
        web.id = Some("web".into());
        web.kind = Some(ClientKind::Web);
        web.redirect_uris = vec!["https://web.example/cb".into()];
        create(&store, web, 1, no_kek).await.unwrap();

        let err = update(
            &store,
            "web",
            ClientChanges {
                redirect_uris: Some(vec!["javascript:alert(1)".into()]),
                ..ClientChanges::default()
            },
            no_kek,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ManageError::Invalid(_)), "{err}");
        let stored = store.client("web").await.unwrap().unwrap();
        assert_eq!(stored.redirect_uris, vec!["https://web.example/cb"]);

        let updated = update(
            &store,
            "web",
            ClientChanges {
                redirect_uris: Some(vec!["https://web.example/other".into()]),
                ..ClientChanges::default()
            },
            no_kek,
        )
        .await
        .unwrap();
        assert!(updated.changed);
        let stored = store.client("web").await.unwrap().unwrap();
        assert_eq!(stored.redirect_uris, vec!["https://web.example/other"]);

        let err = update(
            &store,
            "web",
            ClientChanges {
                auth_method: Some(Some(ClientAuthMethod::None)),
                ..ClientChanges::default()
            },
            no_kek,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ManageError::Invalid(_)), "{err}");
    }

    #[tokio::test]
    async fn a_rotated_secret_replaces_the_old_one_and_deletion_is_reported() {
        let store = MemoryStore::new();
        let mut service = NewClient::named("Billing");
        service.id = Some("billing".into());
        service.kind = Some(ClientKind::Service);
        let first = create(&store, service, 1, no_kek)
            .await
            .unwrap()
            .secret
            .unwrap();
        let second = rotate_secret(&store, "billing", no_kek).await.unwrap();
        assert_ne!(first.secret, second.secret);
        let stored = store.client("billing").await.unwrap().unwrap();
        assert_eq!(stored.secret_digest, Some(second.digest));

        delete(&store, "billing").await.unwrap();
        assert!(matches!(
            delete(&store, "billing").await,
            Err(ManageError::NotFound(_))
        ));
        assert!(matches!(
            rotate_secret(&store, "billing", no_kek).await,
            Err(ManageError::NoSecret(_))
        ));
    }
}

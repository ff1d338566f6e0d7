//! The provider: the token endpoint's fixed steps, token minting, introspection and
//! revocation, over a store, a clock and the key manager.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_jose::JwkSet;

use crate::client_auth::Presented;
use crate::clock::Clock;
use crate::crypto::{KeyEncryptionKey, SecretDigest, random_id, random_token};
use crate::error::{Error, ErrorCode};
use crate::grants::{self, Grant};
use crate::keys::{KeyError, KeyManager};
use crate::model::{GrantType, TokenFormat};
use crate::params::Params;
use crate::settings::Settings;
use crate::store::{ReferenceToken, Store};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience, TokenResponse};

#[derive(Debug)]
pub struct Provider {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    keys: KeyManager,
    grants: HashMap<GrantType, Box<dyn Grant>>,
    login_locks: crate::throttle::KeyedLocks,
}

/// What a grant asks to be minted.
#[derive(Debug)]
pub struct NewAccessToken {
    pub subject: String,
    pub client_id: String,
    pub audiences: Vec<String>,
    pub scope: Option<String>,
    pub ttl: i64,
    pub format: TokenFormat,
    /// When the user signed in; `None` for app tokens.
    pub auth_time: Option<crate::clock::UnixTime>,
}

/// A minted access token with what revocation needs to know about it.
#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    pub value: String,
    pub jti: String,
    pub expires_at: crate::clock::UnixTime,
}

impl Provider {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        kek: KeyEncryptionKey,
    ) -> Self {
        let grants = grants::all()
            .into_iter()
            .map(|g| (g.grant_type(), g))
            .collect();
        Provider {
            store,
            clock,
            settings,
            keys: KeyManager::new(kek),
            grants,
            login_locks: crate::throttle::KeyedLocks::default(),
        }
    }

    /// One password check at a time per account and per address.
    pub(crate) fn login_locks(&self) -> &crate::throttle::KeyedLocks {
        &self.login_locks
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// The grant types this server serves, for discovery.
    pub fn grant_types(&self) -> Vec<GrantType> {
        let mut list: Vec<GrantType> = self.grants.keys().copied().collect();
        list.sort();
        list
    }

    /// Loads the signing keys, creating the first ones on a first start: one for
    /// the configured algorithm and one RS256 key, which OpenID Connect requires
    /// for ID tokens (OIDC Discovery §3, `id_token_signing_alg_values_supported`).
    pub async fn start(&self) -> Result<Vec<crate::keys::NewKey>, KeyError> {
        let mut made = Vec::new();
        for alg in self.id_token_algs() {
            let alg: tessera_jose::Algorithm = alg.parse().map_err(KeyError::Generate)?;
            if let Some(key) = self
                .keys
                .ensure_key(self.store.as_ref(), alg, self.clock.as_ref())
                .await?
            {
                made.push(key);
            }
        }
        Ok(made)
    }

    /// The algorithms ID tokens can be signed with: the configured one and RS256.
    pub fn id_token_algs(&self) -> Vec<&'static str> {
        let mut algs = vec![self.settings.signing_alg.as_str()];
        if self.settings.signing_alg != tessera_jose::Algorithm::RS256 {
            algs.push("RS256");
        }
        algs
    }

    /// Publishes the next key when the rotation schedule says so; run periodically
    /// after [`KeyManager::refresh`], which picks up keys rotated elsewhere.
    pub async fn maintain_keys(&self) -> Result<Option<crate::keys::NewKey>, KeyError> {
        self.keys
            .rotate_if_due(
                self.store.as_ref(),
                self.settings.signing_alg,
                &self.settings,
                self.clock.as_ref(),
            )
            .await
    }

    /// The token endpoint (RFC 6749 §3.2) in fixed steps: authenticate the client,
    /// find the grant, check the client may use it, run it.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        params: &Params,
        client_address: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let grant_type = params.require("grant_type")?;
        let client = self.authenticate_client(authorization, params).await?;
        let grant = GrantType::from_wire(grant_type)
            .and_then(|g| self.grants.get(&g))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant type {grant_type:?} is not supported"),
                )
            })?;
        if !client.allows(grant.grant_type()) {
            return Err(Error::unauthorized_client(format!(
                "the client is not allowed the {} grant",
                grant.grant_type()
            )));
        }
        let request = grants::TokenRequest {
            params,
            client_address,
        };
        grant.exchange(self, &client, &request).await
    }

    /// Authenticates the client of a request to the token, introspection,
    /// revocation or device authorization endpoint (RFC 6749 §2.3).
    pub async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<crate::model::Client, Error> {
        Presented::from_request(authorization, params)?
            .authenticate(self.store.as_ref())
            .await
    }

    /// Mints an access token: a signed JWT (no database write at all), or a
    /// reference token stored only as its digest.
    pub async fn issue_access_token(
        &self,
        new: NewAccessToken,
    ) -> Result<IssuedAccessToken, Error> {
        let now = self.clock.now();
        let claims = AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub: new.subject,
            aud: Audience::from_list(new.audiences),
            exp: now + new.ttl,
            iat: now,
            jti: random_id(),
            client_id: new.client_id,
            scope: new.scope,
            amr: new.auth_time.map(|_| vec!["pwd".to_owned()]),
            auth_time: new.auth_time,
            acr: None,
            act: None,
        };
        let value = match new.format {
            TokenFormat::Jwt => self.sign_access_token(&claims)?,
            TokenFormat::Reference => {
                let value = random_token();
                let record = ReferenceToken {
                    digest: SecretDigest::of(&value),
                    client_id: claims.client_id.clone(),
                    expires_at: claims.exp,
                    claims: serde_json::to_value(&claims).map_err(|e| Error::server_error(&e))?,
                    revoked: false,
                };
                self.store.insert_reference_token(&record).await?;
                value
            }
        };
        Ok(IssuedAccessToken {
            value,
            jti: claims.jti,
            expires_at: claims.exp,
        })
    }

    /// Signs access token claims with the current key of the configured algorithm.
    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let ring = self.keys.ring();
        let key = ring
            .signing_key(self.settings.signing_alg, self.clock.now())
            .ok_or_else(|| Error::server_error(&"no active signing key"))?;
        tessera_jose::encode(key, ACCESS_TOKEN_TYP, claims).map_err(|e| Error::server_error(&e))
    }

    /// The published keys.
    pub fn jwks(&self) -> JwkSet {
        self.keys
            .ring()
            .jwks(self.clock.now(), self.settings.max_token_ttl)
    }
}

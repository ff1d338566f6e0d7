//! The provider: the token endpoint's fixed steps, token minting, introspection and
//! revocation, over a store, a clock and the key manager.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_jose::JwkSet;

use crate::catalog::Catalog;
use crate::client_auth::{Authenticator, ClientKeysSource, Presented};
use crate::clock::Clock;
use crate::crypto::KeyEncryptionKey;
use crate::discovery;
use crate::error::{Error, Reason};
use crate::grants::ClientAuthentication;
use crate::grants::{self, Grant};
use crate::keys::{KeyError, KeyManager};
use crate::model::GrantType;
use crate::params::Declared;
use crate::params::Params;
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::TokenResponse;

#[derive(Debug)]
pub struct Provider {
    store: Arc<dyn Store>,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    settings: Settings,
    keys: KeyManager,
    grants: HashMap<GrantType, Box<dyn Grant>>,
    login_locks: crate::throttle::KeyedLocks,
    client_keys: Option<Arc<dyn ClientKeysSource>>,
    issuer_keys: Option<Arc<dyn crate::assertion::IssuerKeysSource>>,
    /// What a client assertion's `aud` may name: see [`assertion_audiences`].
    assertion_audiences: Vec<String>,
    tracer: crate::trace::Tracer,
    /// `token_rate_limit`, per authenticated client.
    token_limit: Option<crate::rate_limit::KeyedLimit>,
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
            token_limit: settings
                .token_rate_limit
                .map(crate::rate_limit::KeyedLimit::per_second),
            assertion_audiences: assertion_audiences(&settings.issuer),
            catalog: Catalog::new(Arc::clone(&store)),
            store,
            clock,
            settings,
            keys: KeyManager::new(kek),
            grants,
            login_locks: crate::throttle::KeyedLocks::default(),
            client_keys: None,
            issuer_keys: None,
            tracer: crate::trace::Tracer::default(),
        }
    }

    /// Lets trusted issuers registered with a `jwks_uri` sign assertions and
    /// subject tokens, with their keys from `source`.
    pub fn with_issuer_keys(mut self, source: Arc<dyn crate::assertion::IssuerKeysSource>) -> Self {
        self.issuer_keys = Some(source);
        self
    }

    pub(crate) fn issuer_keys_source(&self) -> Option<&dyn crate::assertion::IssuerKeysSource> {
        self.issuer_keys.as_deref()
    }

    /// The values an assertion's `aud` may take to name this server.
    pub fn assertion_audiences(&self) -> &[String] {
        &self.assertion_audiences
    }

    /// The token endpoint's URL: where bearer assertions are presented.
    pub fn token_endpoint(&self) -> &str {
        &self.assertion_audiences[1]
    }

    /// Lets `private_key_jwt` clients registered with a `jwks_uri`
    /// authenticate, with their keys from `source`.
    pub fn with_client_keys(mut self, source: Arc<dyn ClientKeysSource>) -> Self {
        self.client_keys = Some(source);
        self
    }

    /// One password check at a time per account and per address.
    pub(crate) fn login_locks(&self) -> &crate::throttle::KeyedLocks {
        &self.login_locks
    }

    /// The store, for everything but the catalogue.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Clients, resources, trusted issuers and SAML identity providers, read
    /// through the in-memory copy; writes made here are seen at once.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
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

    /// The token endpoint (RFC 6749 §3.2) in fixed steps: find the grant,
    /// authenticate the client as the grant asks, check the client may use it,
    /// let the grant decide what to issue from the parameters it declared, and
    /// mint that through the one issuer.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        params: &Params,
        client_address: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        self.token_with_client(authorization, params, client_address)
            .await
            .0
    }

    /// [`token`](Self::token), with the ID of the client that asked when it
    /// is a registered one (for request logs; never what an unknown caller
    /// typed).
    pub async fn token_with_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
        client_address: Option<&str>,
    ) -> (Result<TokenResponse, Error>, Option<String>) {
        let mut traced = TracedClient::None;
        let result = self
            .token_steps(authorization, params, client_address, &mut traced)
            .await;
        let client_id = self
            .trace_token(traced, params, client_address, &result)
            .await;
        if let Ok(response) = &result {
            count_issued(params, response);
        }
        (result, client_id)
    }

    async fn token_steps(
        &self,
        authorization: Option<&str>,
        params: &Params,
        client_address: Option<&str>,
        traced: &mut TracedClient,
    ) -> Result<TokenResponse, Error> {
        let grant_type = params.require("grant_type")?;
        let grant = GrantType::from_wire(grant_type).and_then(|g| self.grants.get(&g));
        let requirement = grant.map_or(ClientAuthentication::Registered, |g| {
            g.client_authentication()
        });
        // Credentials are checked before an unknown grant type is reported, so
        // that the answer to an unauthenticated caller says nothing more.
        let presented = Presented::from_request(authorization, params)?;
        if let Some(id) = presented.client_id() {
            *traced = TracedClient::Presented(id.to_owned());
        }
        let client = match (&presented, requirement) {
            (Presented::Nothing, ClientAuthentication::Optional) => None,
            _ => Some(presented.authenticate(&self.client_authenticator()).await?),
        };
        if let Some(client) = &client {
            *traced = TracedClient::Authenticated(client.id.clone());
            // Counted once the client is known, so that nobody can spend
            // another client's budget by naming it.
            if let Some(limit) = &self.token_limit
                && let Err(wait) = limit.take(&client.id)
            {
                return Err(Error::rate_limited(wait, "for this client"));
            }
        }
        let grant = grant.ok_or_else(|| {
            Error::new(
                Reason::UnsupportedGrantType,
                format!(
                    "grant type {:?} is not supported",
                    crate::error::bounded(grant_type)
                ),
            )
        })?;
        if let Some(client) = &client {
            if !client.allows(grant.grant_type()) {
                return Err(Error::unauthorized_client(format!(
                    "the client is not allowed the {} grant",
                    grant.grant_type()
                )));
            }
            if requirement == ClientAuthentication::Confidential && client.is_public() {
                return Err(Error::new(
                    Reason::PublicClientRefused,
                    format!("public clients cannot use the {} grant", grant.grant_type()),
                ));
            }
        }
        let request = grants::GrantRequest {
            client: client.as_ref(),
            params: Declared::new(params, grant.parameters()),
            client_address,
        };
        let issue = grant.exchange(self, &request).await?;
        let client = client
            .ok_or_else(|| Error::server_error(&"a grant without a client asked for tokens"))?;
        Ok(self.issuer().issue(&client, issue).await?.response)
    }

    /// Adds a token request to its client's trace: when the client was
    /// authenticated, or when it failed to be but names a registered client
    /// (a wrong secret is what its developer most needs to see).
    async fn trace_token(
        &self,
        traced: TracedClient,
        params: &Params,
        client_address: Option<&str>,
        result: &Result<TokenResponse, Error>,
    ) -> Option<String> {
        use crate::trace::{TraceEndpoint, TraceOutcome, TraceStep};
        let client_id = match traced {
            TracedClient::None => return None,
            TracedClient::Authenticated(id) => id,
            TracedClient::Presented(id) => {
                match crate::store::ClientStore::client(&self.catalog, &id).await {
                    Ok(Some(_)) => id,
                    _ => return None,
                }
            }
        };
        let logged = client_id.clone();
        let outcome = match result {
            Ok(response) => TraceOutcome::Done {
                detail: issued(response),
            },
            Err(e) => TraceOutcome::refused(e),
        };
        self.trace(
            client_id,
            TraceStep {
                endpoint: TraceEndpoint::Token,
                flow: params
                    .get("grant_type")
                    .map(|g| crate::error::bounded(g).into_owned()),
                scope: match result {
                    Ok(response) => response.scope.clone(),
                    Err(_) => params
                        .get("scope")
                        .map(|s| crate::error::bounded(s).into_owned()),
                },
                from: client_address.map(str::to_owned),
                outcome,
            },
        );
        Some(logged)
    }

    /// Adds a step to a client's trace (see [`crate::trace`]); never waits.
    pub fn trace(&self, client_id: String, step: crate::trace::TraceStep) {
        self.tracer.record(crate::trace::TraceEvent {
            client_id,
            at: self.clock.now(),
            step,
        });
    }

    /// Writes the buffered trace to the store: every second while serving,
    /// and before a trace is read, so that it shows this instance's latest.
    pub async fn flush_trace(&self) -> Result<usize, crate::store::StoreError> {
        self.tracer.flush(self.store.as_ref()).await
    }

    /// Authenticates the client of a request to the token, introspection,
    /// revocation or device authorization endpoint (RFC 6749 §2.3).
    pub async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<crate::model::Client, Error> {
        Presented::from_request(authorization, params)?
            .authenticate(&self.client_authenticator())
            .await
    }

    /// Runs `answer` for the client that authenticated the request; returns
    /// its outcome and, once the client authenticated, the client's ID (for
    /// request logs, which name the client whether or not the answer is an
    /// error).
    pub async fn with_authenticated_client<T>(
        &self,
        authorization: Option<&str>,
        params: &Params,
        answer: impl AsyncFnOnce(&crate::model::Client) -> Result<T, Error>,
    ) -> (Result<T, Error>, Option<String>) {
        match self.authenticate_client(authorization, params).await {
            Ok(client) => (answer(&client).await, Some(client.id)),
            Err(e) => (Err(e), None),
        }
    }

    /// What checking a client's credentials needs, as of now.
    pub fn client_authenticator(&self) -> Authenticator<'_> {
        Authenticator {
            clients: &self.catalog,
            kek: self.keys.kek(),
            keys: self.client_keys.as_deref(),
            now: self.clock.now(),
            leeway: self.settings.leeway,
            audiences: &self.assertion_audiences,
            private_urls_allowed: self.settings.registration_allows_private_urls,
        }
    }

    /// The published keys.
    pub fn jwks(&self) -> JwkSet {
        self.keys
            .ring()
            .jwks(self.clock.now(), self.settings.max_token_ttl)
    }
}

/// The values a client assertion's `aud` may take (RFC 7523 §3 item 3): the
/// issuer, or the token endpoint URL, which OIDC Core §9 names and many client
/// libraries send. No other endpoint URL: a client that also talks to a
/// malicious server can be led to sign an assertion for an endpoint URL that
/// server claims in its own metadata (the "audience injection" of
/// private_key_jwt), so the fewer names, the smaller that door.
fn assertion_audiences(issuer: &str) -> Vec<String> {
    let base = issuer.trim_end_matches('/');
    vec![
        issuer.to_owned(),
        format!("{base}{}", discovery::TOKEN_PATH),
    ]
}

/// Whose trace a token request goes to.
enum TracedClient {
    None,
    /// Named by the request, not (yet) authenticated.
    Presented(String),
    Authenticated(String),
}

/// What a token response issued, in words, without any of its values.
fn issued(response: &TokenResponse) -> String {
    let mut parts = vec![format!(
        "issued an access token ({}, expires in {} s)",
        response.token_type, response.expires_in
    )];
    if response.refresh_token.is_some() {
        parts.push("a refresh token".to_owned());
    }
    if response.id_token.is_some() {
        parts.push("an ID token".to_owned());
    }
    parts.join(", ")
}

/// The `grant_type` label of metrics: a known grant's name, or `other` (a
/// label never takes what a client typed, which would grow without bound).
pub fn grant_label(params: &Params) -> &'static str {
    params
        .get("grant_type")
        .and_then(GrantType::from_wire)
        .map_or("other", GrantType::as_str)
}

/// Counts what a token response carries, per grant and kind
/// (`tessera_tokens_issued_total`).
fn count_issued(params: &Params, response: &TokenResponse) {
    let grant = grant_label(params);
    // A reference token is random base64url: it has no dots, unlike a JWS.
    let access = if response.access_token.contains('.') {
        "access_jwt"
    } else {
        "access_reference"
    };
    let issued = |token: &'static str| {
        metrics::counter!("tessera_tokens_issued_total", "grant_type" => grant, "token" => token)
            .increment(1);
    };
    issued(access);
    if response.refresh_token.is_some() {
        issued("refresh");
    }
    if response.id_token.is_some() {
        issued("id");
    }
}

//! The [`Verifier`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use tessera_jose::{Algorithm, JwsRef, JwsScratch, VerifyingKey, typ_matches};

use crate::claims::{Claims, Expectations};
use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::discovery::{self, parse_url};
use crate::error::{SetupError, is_scope_token, is_valid_realm};
use crate::fetch::require_secure;
use crate::introspection::{IntrospectionPolicy, Introspector};
use crate::jwks::{AlgorithmSet, JwksPolicy, KeyCache, KeySnapshot};
use crate::secret::{ClientSecret, SharedSecret};
use crate::token::{AccessToken, TokenKind};
use crate::{Error, bearer_token};

/// Longer tokens are refused before any parsing. Tessera's access tokens are
/// well under 2 KiB; the bound keeps a hostile header from costing more than
/// a few microseconds.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verifies Tessera access tokens for one resource (one audience).
///
/// Cheap to clone: clones share the key cache and the introspection cache.
/// Strict by default; every relaxation is a named method on
/// [`VerifierBuilder`].
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    realm: Arc<str>,
    leeway: i64,
    required_scopes: Vec<String>,
    allowed: AlgorithmSet,
    clock: Arc<dyn Clock>,
    jwks: Option<KeyCache>,
    shared: Option<VerifyingKey>,
    introspector: Option<Introspector>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Verifier")
            .field("issuer", &inner.issuer)
            .field("audience", &inner.audience)
            .field("required_scopes", &inner.required_scopes)
            .field("jwks", &inner.jwks.is_some())
            .field(
                "shared_secret",
                &inner.shared.as_ref().map(|_| "[redacted]"),
            )
            .field("introspection", &inner.introspector.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts the configuration for tokens from `issuer` (exactly as
    /// Tessera's `issuer` setting spells it) meant for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into(), audience.into())
    }

    /// Shorthand for `Verifier::builder(issuer, audience).discover()` with
    /// every default: JWT access tokens only, asymmetric algorithms only.
    pub async fn discover(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Verifier, SetupError> {
        Self::builder(issuer, audience).discover().await
    }

    /// Verifies the bearer token of a request (see [`bearer_token`]).
    pub async fn verify_request(&self, headers: &HeaderMap) -> Result<AccessToken, Error> {
        self.verify(bearer_token(headers)?).await
    }

    /// Verifies a token: a JWT access token locally, a reference token
    /// through introspection; then checks the configured required scopes.
    ///
    /// With fresh cached keys this does no I/O and returns at its first poll.
    pub async fn verify(&self, token: &str) -> Result<AccessToken, Error> {
        let verified = if token.len() > MAX_TOKEN_BYTES {
            Err(Error::Malformed("the token is too long"))
        } else if token.as_bytes().contains(&b'.') {
            self.verify_jwt(token).await
        } else {
            // Boxed: the introspection future is large, and only this path
            // should pay for it.
            Box::pin(self.verify_reference(token)).await
        }?;
        verified.require_scopes(&self.inner.required_scopes)?;
        Ok(verified)
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The `realm` of the `WWW-Authenticate` challenges (RFC 6750 §3).
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    #[cfg(feature = "axum")]
    pub(crate) fn realm_arc(&self) -> Arc<str> {
        Arc::clone(&self.inner.realm)
    }

    pub fn required_scopes(&self) -> &[String] {
        &self.inner.required_scopes
    }

    /// Fetches the JWKS now instead of waiting for the cache to go stale.
    /// Returns the number of usable keys.
    pub async fn refresh_keys(&self) -> Result<usize, Error> {
        let Some(jwks) = &self.inner.jwks else {
            return Ok(0);
        };
        jwks.refresh()
            .await
            .map(|snapshot| snapshot.len())
            .map_err(Error::KeysUnavailable)
    }

    /// RFC 9068 §4, in the order that rejects cheaply first: header, then
    /// signature, then claims. With fresh cached keys all of it happens in
    /// [`check_jwt`](Self::check_jwt), without waiting; only a token whose
    /// keys have to be fetched first takes the slower path.
    async fn verify_jwt(&self, token: &str) -> Result<AccessToken, Error> {
        let now = self.inner.clock.now();
        // Matched in a statement of its own: a scrutinee held across the
        // `await` below would put a whole `AccessToken` in the future.
        let (kid, alg) = match self.check_jwt(token, now, None)? {
            Checked::Token(verified) => return Ok(verified),
            Checked::NeedsKeys { kid, alg } => (kid, alg),
        };
        // Boxed: the JWKS fetch future is large, and only this path should
        // pay for it.
        Box::pin(self.verify_jwt_after_fetch(token, now, kid, alg)).await
    }

    async fn verify_jwt_after_fetch(
        &self,
        token: &str,
        now: SystemTime,
        kid: Option<String>,
        alg: Algorithm,
    ) -> Result<AccessToken, Error> {
        let Some(jwks) = self.inner.jwks.as_ref() else {
            return Err(Error::UnknownKey(kid));
        };
        let snapshot = jwks.snapshot_for(kid.as_deref(), alg, now).await?;
        match self.check_jwt(token, now, Some(&snapshot))? {
            Checked::Token(verified) => Ok(verified),
            Checked::NeedsKeys { kid, .. } => Err(Error::UnknownKey(kid)),
        }
    }

    /// The whole check of a JWT access token against the keys in `keys`, or
    /// without them, the cached keys when they are fresh and hold a
    /// candidate. Synchronous, so that the buffers the token is decoded into
    /// live on the stack rather than in the future of every request; it
    /// allocates only the decoded payload, which the result keeps.
    fn check_jwt(
        &self,
        token: &str,
        now: SystemTime,
        keys: Option<&KeySnapshot>,
    ) -> Result<Checked, Error> {
        let inner = &*self.inner;
        let mut scratch = JwsScratch::new();
        let jws = JwsRef::parse(token, &mut scratch).map_err(jose_error)?;
        // RFC 9068 §4: `typ` must be `at+jwt` (or its long form); this is
        // what keeps ID tokens and other JWTs from the same issuer, signed
        // with the same keys, from being accepted as access tokens. The rule
        // is tessera-jose's, the one Tessera's introspection applies too.
        let typ = jws.typ();
        if !typ_matches(typ, "at+jwt") {
            return Err(Error::WrongType(typ.map(str::to_owned)));
        }
        let alg = jws.alg();
        if !inner.allowed.contains(alg) {
            return Err(Error::AlgorithmNotAllowed(alg.as_str().to_owned()));
        }
        if alg == Algorithm::HS256 {
            // Only ever the configured shared secret: a public key from the
            // JWKS is never an HMAC key (the RS256/HS256 confusion).
            let key = inner
                .shared
                .as_ref()
                .ok_or_else(|| Error::AlgorithmNotAllowed(alg.as_str().to_owned()))?;
            jws.verify_signature(key).map_err(jose_error)?;
        } else {
            let kid = jws.kid();
            let unknown = || Error::UnknownKey(kid.map(str::to_owned));
            let jwks = inner.jwks.as_ref().ok_or_else(unknown)?;
            let cached;
            let snapshot = match keys {
                Some(keys) => keys,
                None => match jwks.fresh_snapshot_for(kid, alg, now) {
                    Some(fresh) => {
                        cached = fresh;
                        &*cached
                    }
                    None => {
                        return Ok(Checked::NeedsKeys {
                            kid: kid.map(str::to_owned),
                            alg,
                        });
                    }
                },
            };
            let mut outcome = None;
            for key in snapshot.candidates(kid, alg) {
                let verified = jws.verify_signature(key);
                let done = verified.is_ok();
                outcome = Some(verified.map_err(jose_error));
                if done {
                    break;
                }
            }
            outcome.unwrap_or_else(|| Err(unknown()))?;
        }
        let json = jws.payload_json().map_err(jose_error)?;
        let claims = Claims::parse(&json)?;
        claims.check_jwt(&self.expectations(now))?;
        let parts = claims.detach(&json);
        Ok(Checked::Token(AccessToken::new(
            parts,
            TokenKind::Jwt(alg),
            json,
        )))
    }

    async fn verify_reference(&self, token: &str) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        let introspector = inner
            .introspector
            .as_ref()
            .ok_or(Error::ReferenceTokensDisabled)?;
        introspector
            .introspect(token, &inner.issuer, &inner.audience, inner.leeway)
            .await
    }

    fn expectations(&self, now: SystemTime) -> Expectations<'_> {
        Expectations {
            issuer: &self.inner.issuer,
            audience: &self.inner.audience,
            leeway: self.inner.leeway,
            now: unix_seconds(now),
        }
    }
}

/// What [`Verifier::check_jwt`] found: a verified token, or that the keys
/// for it have to be fetched first.
enum Checked {
    Token(AccessToken),
    NeedsKeys { kid: Option<String>, alg: Algorithm },
}

fn jose_error(error: tessera_jose::Error) -> Error {
    use tessera_jose::Error as J;
    match error {
        J::Malformed => Error::Malformed("not a compact JWS"),
        J::MalformedHeader => Error::Malformed("the JOSE header is not valid"),
        J::UnsupportedHeader(_) => {
            Error::Malformed("the JOSE header asks for an extension (crit, b64) the guard lacks")
        }
        J::MalformedPayload(_) => {
            Error::Malformed("the payload is not JSON claims of the RFC 9068 types")
        }
        J::UnsupportedAlgorithm(alg) => Error::AlgorithmNotAllowed(alg),
        J::AlgorithmMismatch => Error::KeyAlgorithmMismatch,
        J::BadSignature | J::InvalidKey(_) | J::Crypto => Error::BadSignature,
    }
}

/// Configuration for a [`Verifier`]. Defaults are strict; see each method.
#[derive(Debug)]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    realm: Option<String>,
    leeway: Duration,
    required_scopes: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
    client_credentials: Option<(String, ClientSecret)>,
    shared_secret: Option<SharedSecret>,
    jwks_policy: JwksPolicy,
    introspection_policy: IntrospectionPolicy,
    allow_http: bool,
}

impl VerifierBuilder {
    fn new(issuer: String, audience: String) -> Self {
        VerifierBuilder {
            issuer,
            audience,
            realm: None,
            leeway: Duration::from_secs(30),
            required_scopes: Vec::new(),
            algorithms: None,
            clock: Arc::new(SystemClock),
            http: None,
            jwks_uri: None,
            introspection_endpoint: None,
            client_credentials: None,
            shared_secret: None,
            jwks_policy: JwksPolicy::default(),
            introspection_policy: IntrospectionPolicy::default(),
            allow_http: false,
        }
    }

    /// Allowed clock difference for `exp`, `nbf` and `iat`. Default 30 s,
    /// Tessera's own default.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Scopes every token must carry; a token without them gets
    /// `403 insufficient_scope`. Routes needing more can add their own with
    /// [`GuardLayer::require_scopes`](crate::GuardLayer::require_scopes) or
    /// [`AccessToken::require_scopes`].
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The `realm` in challenges. Default: the audience.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Narrows the accepted algorithms. Default: ES256, RS256, PS256 and
    /// EdDSA, plus HS256 when a shared secret is configured. HS256 is never
    /// accepted without a shared secret, whatever this list says.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Accept reference tokens, checked at the introspection endpoint with
    /// this client's credentials (`client_secret_basic`).
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        self.client_credentials = Some((client_id.into(), secret));
        self
    }

    /// Accept HS256 tokens signed with the secret this resource shares with
    /// Tessera (at least 32 bytes).
    pub fn shared_secret(mut self, secret: SharedSecret) -> Self {
        self.shared_secret = Some(secret);
        self
    }

    /// The JWKS location, instead of (or overriding) discovery.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The introspection endpoint, instead of (or overriding) discovery.
    pub fn introspection_endpoint(mut self, uri: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(uri.into());
        self
    }

    /// The HTTP client for discovery, JWKS and introspection. The default
    /// follows no redirects and times out after 10 s.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The time source; tests pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Freshness of the JWKS when its response has no `Cache-Control:
    /// max-age` (default 5 min), and the bounds `max-age` is clamped to
    /// (default 1 min to 24 h).
    pub fn jwks_cache_ttl(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.jwks_policy.default_ttl = default;
        self.jwks_policy.min_ttl = min.min(max);
        self.jwks_policy.max_ttl = max;
        self
    }

    /// Bounds the JWKS fetches caused by tokens with an unknown `kid` (a key
    /// rotation, or invented `kid`s): up to `burst` back to back, then one
    /// per `interval`. Default 2, then one per 5 s. A token whose `kid`
    /// could not be looked up because of this bound gets `503` with
    /// `Retry-After` ([`Error::KeyRefetchDeferred`]), not `401`. A `burst`
    /// of 0 counts as 1.
    pub fn jwks_refetch_limit(mut self, burst: u32, interval: Duration) -> Self {
        self.jwks_policy.miss_refetch_burst = burst.max(1);
        self.jwks_policy.miss_refetch_interval = interval;
        self
    }

    /// How long a `kid` that a fresh JWKS did not contain is refused as
    /// unknown without fetching again (default 30 s). Tessera's key IDs
    /// are thumbprints, which nobody can name before the key is published,
    /// so remembering a missing one cannot hide a real key.
    pub fn jwks_unknown_kid_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_policy.unknown_kid_ttl = ttl;
        self
    }

    /// How long after a failed JWKS fetch the next one is tried (default 10 s).
    pub fn jwks_retry_interval(mut self, interval: Duration) -> Self {
        self.jwks_policy.retry_interval = interval;
        self
    }

    /// How long past their freshness cached keys keep verifying while the
    /// JWKS cannot be fetched (default 1 h).
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks_policy.max_stale = max_stale;
        self
    }

    /// How long an active introspection answer is reused (default 60 s, and
    /// never past the token's `exp`). This is how long a revoked reference
    /// token can stay accepted; `Duration::ZERO` asks the server every time.
    pub fn introspection_cache_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_policy.active_ttl = ttl;
        self
    }

    /// How long an inactive (or otherwise refused) introspection answer is
    /// remembered (default 5 s), so that a token sent again and again costs
    /// one request to the server per this interval. `Duration::ZERO` turns
    /// this off.
    pub fn introspection_inactive_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_policy.inactive_ttl = ttl;
        self
    }

    /// How many introspection answers are cached at most (default 10,000).
    /// When full, the entry closest to its end makes room, so a flood of
    /// briefly remembered junk tokens evicts junk first.
    pub fn introspection_cache_capacity(mut self, entries: usize) -> Self {
        self.introspection_policy.capacity = entries;
        self
    }

    /// Opt-out: accept plain-http issuer, JWKS and introspection URLs on
    /// hosts other than loopback. Only for closed test networks.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Fetches the issuer's metadata, then its JWKS; fails if either cannot
    /// be had, so a misconfigured service stops at start-up rather than
    /// refusing every request.
    pub async fn discover(mut self) -> Result<Verifier, SetupError> {
        let client = self.client()?;
        require_secure(
            &parse_url("the issuer", &self.issuer)?,
            "the issuer",
            self.allow_http,
        )?;
        let metadata = discovery::discover(&client, &self.issuer).await?;
        if self.jwks_uri.is_none() {
            self.jwks_uri = metadata.jwks_uri;
        }
        if self.client_credentials.is_some() && self.introspection_endpoint.is_none() {
            self.introspection_endpoint = Some(
                metadata
                    .introspection_endpoint
                    .ok_or(SetupError::MissingEndpoint("introspection_endpoint"))?,
            );
        }
        if self.jwks_uri.is_none() && self.shared_secret.is_none() {
            return Err(SetupError::MissingEndpoint("jwks_uri"));
        }
        self.http = Some(client);
        let verifier = self.build()?;
        if let Some(jwks) = &verifier.inner.jwks {
            let snapshot = jwks.refresh().await.map_err(SetupError::Jwks)?;
            if snapshot.len() == 0 {
                tracing::warn!("the JWKS has no key this verifier can use");
            }
        }
        Ok(verifier)
    }

    /// Builds without any network access: keys are fetched on first use.
    /// Needs [`jwks_uri`](Self::jwks_uri), a
    /// [`shared_secret`](Self::shared_secret), or client credentials with an
    /// [`introspection_endpoint`](Self::introspection_endpoint).
    pub fn build(self) -> Result<Verifier, SetupError> {
        if self.audience.is_empty() {
            return Err(SetupError::EmptyAudience);
        }
        let issuer_url = parse_url("the issuer", &self.issuer)?;
        require_secure(&issuer_url, "the issuer", self.allow_http)?;
        if let Some(bad) = self.required_scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(SetupError::InvalidScope(bad.clone()));
        }
        let realm = self.realm.clone().unwrap_or_else(|| self.audience.clone());
        if !is_valid_realm(&realm) {
            return Err(SetupError::InvalidRealm);
        }
        let mut allowed: AlgorithmSet = match &self.algorithms {
            Some(list) => list.iter().copied().collect(),
            None => Algorithm::ASYMMETRIC
                .into_iter()
                .chain([Algorithm::HS256])
                .collect(),
        };
        let shared = match &self.shared_secret {
            Some(secret) => Some(
                VerifyingKey::hmac(None, secret.bytes())
                    .map_err(|_| SetupError::WeakSharedSecret)?,
            ),
            None => {
                allowed.remove(Algorithm::HS256);
                None
            }
        };
        if allowed.is_empty() {
            return Err(SetupError::NoAlgorithms);
        }
        let client = self.client()?;
        let jwks = match &self.jwks_uri {
            Some(uri) => {
                let uri = parse_url("the JWKS URI", uri)?;
                require_secure(&uri, "the JWKS URI", self.allow_http)?;
                let mut asymmetric = allowed;
                asymmetric.remove(Algorithm::HS256);
                Some(KeyCache::new(
                    uri,
                    client.clone(),
                    Arc::clone(&self.clock),
                    asymmetric,
                    self.jwks_policy,
                ))
            }
            None => None,
        };
        let introspector = match (&self.client_credentials, &self.introspection_endpoint) {
            (Some((id, secret)), Some(endpoint)) => {
                let endpoint = parse_url("the introspection endpoint", endpoint)?;
                require_secure(&endpoint, "the introspection endpoint", self.allow_http)?;
                Some(Introspector::new(
                    endpoint,
                    client,
                    id,
                    secret,
                    Arc::clone(&self.clock),
                    self.introspection_policy,
                ))
            }
            (Some(_), None) => return Err(SetupError::MissingEndpoint("introspection_endpoint")),
            (None, _) => None,
        };
        if jwks.is_none() && shared.is_none() && introspector.is_none() {
            return Err(SetupError::NoKeySource);
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                realm: realm.into(),
                leeway,
                required_scopes: self.required_scopes,
                allowed,
                clock: self.clock,
                jwks,
                shared,
                introspector,
            }),
        })
    }

    fn client(&self) -> Result<reqwest::Client, SetupError> {
        if let Some(client) = &self.http {
            return Ok(client.clone());
        }
        reqwest::Client::builder()
            // A redirect would let whoever controls the target pick our keys.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(SetupError::HttpClient)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_verification_future_stays_small() {
        // The network paths are boxed; what every request builds on its
        // stack is only the cached path. Growing past this bound means an
        // HTTP future crept back in unboxed.
        let verifier = super::Verifier::builder("https://id.example", "x")
            .jwks_uri("https://id.example/jwks")
            .build()
            .expect("build");
        let future = verifier.verify("a.b.c");
        assert!(
            std::mem::size_of_val(&future) <= 512,
            "{}",
            std::mem::size_of_val(&future)
        );
    }
}

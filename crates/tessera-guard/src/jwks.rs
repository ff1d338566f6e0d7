//! The in-memory JWKS cache.
//!
//! Readers take a snapshot (one `Arc` clone under a read lock) and never wait
//! for the network while the keys are fresh. All writers hold `fetch_lock`,
//! so at most one request to the JWKS is in flight at any time, and a
//! snapshot's `generation` tells a waiting task whether someone else already
//! refreshed while it waited.
//!
//! A `kid` the cache does not know may be a new key (the server rotated) or
//! an invented one. Refetches for unknown `kid`s are limited twice: each
//! `kid` a fetch did not find is remembered as unknown for a while, so
//! repeating it costs nothing; and all such refetches together draw from a
//! small bucket, so a flood of distinct invented `kid`s cannot hammer the
//! server. When only the bucket stops a refetch, the token is not called
//! invalid (a `401` makes clients discard it): the answer is a `503` with
//! `Retry-After`. And since any refetch brings in every published key, an
//! invented `kid` never delays a real new key by more than the bucket's
//! refill interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tessera_jose::{Algorithm, Jwk, VerifyingKey};
use url::Url;

use crate::Error;
use crate::clock::{Clock, later};
use crate::error::FetchError;
use crate::fetch;

/// How long keys are trusted and how often the JWKS may be fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksPolicy {
    /// Freshness when the JWKS response has no `Cache-Control: max-age`.
    pub default_ttl: Duration,
    /// `max-age` is clamped to `[min_ttl, max_ttl]`: a `max-age=0` must not
    /// turn every request into a JWKS fetch, and a year-long one must not
    /// keep a withdrawn key alive.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// Fetches caused by unknown `kid`s: up to `miss_refetch_burst` back to
    /// back, then one more per `miss_refetch_interval`.
    pub miss_refetch_burst: u32,
    pub miss_refetch_interval: Duration,
    /// How long a `kid` that a fetch did not find is answered "unknown"
    /// without fetching again.
    pub unknown_kid_ttl: Duration,
    /// After a failed fetch, wait this long before trying again.
    pub retry_interval: Duration,
    /// How long past their freshness the keys are still used while the
    /// server cannot be reached (the `stale-if-error` idea of RFC 5861).
    pub max_stale: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            // One invented kid leaves a slot for a real new one; a sustained
            // flood gets the server asked at most 12 times a minute per
            // guard, and a real new key waits at most 5 s.
            miss_refetch_burst: 2,
            miss_refetch_interval: Duration::from_secs(5),
            unknown_kid_ttl: Duration::from_secs(30),
            retry_interval: Duration::from_secs(10),
            // Tessera's longest default access-token lifetime (app tokens,
            // 60 min): by then nearly every token signed before an outage
            // has expired anyway.
            max_stale: Duration::from_secs(3600),
        }
    }
}

/// The keys from one successful fetch.
#[derive(Debug)]
pub(crate) struct KeySnapshot {
    keys: Vec<VerifyingKey>,
    fresh_until: SystemTime,
    usable_until: SystemTime,
    generation: u64,
}

impl KeySnapshot {
    fn empty() -> Self {
        KeySnapshot {
            keys: Vec::new(),
            fresh_until: SystemTime::UNIX_EPOCH,
            usable_until: SystemTime::UNIX_EPOCH,
            generation: 0,
        }
    }

    /// The keys a token with this `kid` and `alg` may be checked against. A
    /// `kid` names exactly one key, whatever its algorithm (a mismatch is
    /// then refused by the key itself); without a `kid`, every key published
    /// for the token's algorithm is a candidate.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> {
        self.keys.iter().filter(move |k| match kid {
            Some(kid) => k.kid() == Some(kid),
            None => k.alg() == alg,
        })
    }

    fn has_candidate(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        self.candidates(kid, alg).next().is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// `kid`s remembered as unknown at most; past this, new ones are simply not
/// remembered (they still draw from the refetch bucket).
const MAX_UNKNOWN_KIDS: usize = 1024;

/// Longer `kid`s are not remembered, so the memory stays small whatever
/// tokens arrive. Tessera's (RFC 7638 thumbprints) are 43 characters.
const MAX_REMEMBERED_KID_BYTES: usize = 128;

#[derive(Debug, Default)]
struct RefetchState {
    /// The bucket of refetches for unknown `kid`s, as a GCRA: the
    /// theoretical time the bucket is full again.
    miss_refetch_tat: Option<SystemTime>,
    /// What recent fetches did not find, and when they looked.
    unknown: HashMap<Miss, SystemTime>,
    retry_not_before: Option<SystemTime>,
}

/// What a token asked for that no key matched: its `kid`, or, for a token
/// without one, any key of its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Miss {
    Kid(String),
    Alg(Algorithm),
}

impl Miss {
    fn new(kid: Option<&str>, alg: Algorithm) -> Self {
        match kid {
            Some(kid) => Miss::Kid(kid.to_owned()),
            None => Miss::Alg(alg),
        }
    }
}

impl RefetchState {
    /// Takes a slot from the refetch bucket, or says how long until one is
    /// free.
    fn claim_refetch(&mut self, now: SystemTime, policy: &JwksPolicy) -> Result<(), Duration> {
        let interval = policy.miss_refetch_interval;
        let tat = self.miss_refetch_tat.map_or(now, |tat| tat.max(now));
        // Each claim moves the schedule one interval on; the bucket holds
        // `burst` slots, so a claim is allowed while the schedule is at most
        // `burst - 1` intervals ahead of now.
        let slack = interval.saturating_mul(policy.miss_refetch_burst.saturating_sub(1));
        let allowed = now.checked_add(slack).is_none_or(|limit| tat <= limit);
        if !allowed {
            let limit = later(now, slack);
            return Err(tat.duration_since(limit).unwrap_or(interval));
        }
        self.miss_refetch_tat = Some(later(tat, interval));
        Ok(())
    }

    fn known_unknown(&self, miss: &Miss, now: SystemTime, ttl: Duration) -> bool {
        self.unknown
            .get(miss)
            .is_some_and(|&seen| now < later(seen, ttl))
    }

    fn remember_unknown(&mut self, miss: Miss, now: SystemTime, ttl: Duration) {
        if matches!(&miss, Miss::Kid(kid) if kid.len() > MAX_REMEMBERED_KID_BYTES) {
            return;
        }
        if self.unknown.len() >= MAX_UNKNOWN_KIDS && !self.unknown.contains_key(&miss) {
            self.unknown.retain(|_, seen| now < later(*seen, ttl));
            if self.unknown.len() >= MAX_UNKNOWN_KIDS {
                return;
            }
        }
        self.unknown.insert(miss, now);
    }
}

#[derive(Debug)]
pub(crate) struct KeyCache {
    uri: Url,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    allowed: AlgorithmSet,
    policy: JwksPolicy,
    current: RwLock<Arc<KeySnapshot>>,
    state: Mutex<RefetchState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl KeyCache {
    /// A cache that loads its keys on first use.
    pub(crate) fn new(
        uri: Url,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
        allowed: AlgorithmSet,
        policy: JwksPolicy,
    ) -> Self {
        KeyCache {
            uri,
            client,
            clock,
            allowed,
            policy,
            current: RwLock::new(Arc::new(KeySnapshot::empty())),
            state: Mutex::new(RefetchState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Fetches now, whatever the cache holds; for start-up and for callers
    /// who know the keys changed.
    pub(crate) async fn refresh(&self) -> Result<Arc<KeySnapshot>, FetchError> {
        let _fetching = self.fetch_lock.lock().await;
        self.fetch_and_store().await
    }

    /// The cached snapshot when it is fresh and holds a key the token may be
    /// checked against: the path of nearly every verification, which needs
    /// no `await`. `None` means [`snapshot_for`](Self::snapshot_for) has
    /// work to do.
    pub(crate) fn fresh_snapshot_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: SystemTime,
    ) -> Option<Arc<KeySnapshot>> {
        let snapshot = self.current();
        (now < snapshot.fresh_until && snapshot.has_candidate(kid, alg)).then_some(snapshot)
    }

    /// A snapshot holding at least one key the token may be checked against,
    /// fetching the JWKS when the cache is stale or the `kid` is new. `now`
    /// is the caller's reading of the clock, so one verification reads it
    /// once.
    pub(crate) async fn snapshot_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: SystemTime,
    ) -> Result<Arc<KeySnapshot>, Error> {
        let snapshot = self.current();
        if now < snapshot.fresh_until && snapshot.has_candidate(kid, alg) {
            return Ok(snapshot);
        }
        // The slow paths hold HTTP futures of a few hundred bytes; boxing
        // them keeps the future of every cached verification small.
        Box::pin(self.fetch_for(snapshot, kid, alg, now)).await
    }

    async fn fetch_for(
        &self,
        mut snapshot: Arc<KeySnapshot>,
        kid: Option<&str>,
        alg: Algorithm,
        now: SystemTime,
    ) -> Result<Arc<KeySnapshot>, Error> {
        let seen_generation = snapshot.generation;
        if now >= snapshot.fresh_until {
            snapshot = self.refresh_stale(snapshot).await?;
        }
        if snapshot.has_candidate(kid, alg) {
            return Ok(snapshot);
        }
        if snapshot.generation != seen_generation {
            // Keys fetched during this very call: asking again cannot help.
            self.remember_unknown(kid, alg);
            return Err(Error::UnknownKey(kid.map(str::to_owned)));
        }
        self.refetch_on_miss(kid, alg, snapshot.generation).await
    }

    fn current(&self) -> Arc<KeySnapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The keys are past their freshness. One task fetches; while the stale
    /// keys are still usable, the others go on with them instead of waiting,
    /// and a failed fetch keeps them (so a brief outage of the server is not
    /// an outage of every service behind it).
    async fn refresh_stale(&self, seen: Arc<KeySnapshot>) -> Result<Arc<KeySnapshot>, Error> {
        let now = self.clock.now();
        let usable = now < seen.usable_until;
        let _fetching = if usable {
            match self.fetch_lock.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(seen),
            }
        } else {
            self.fetch_lock.lock().await
        };
        let current = self.current();
        if current.generation != seen.generation {
            return Ok(current);
        }
        if self.state().retry_not_before.is_some_and(|t| now < t) {
            return if usable {
                Ok(seen)
            } else {
                Err(Error::KeysUnavailable(FetchError::RecentlyFailed))
            };
        }
        match self.fetch_and_store().await {
            Ok(fresh) => Ok(fresh),
            Err(error) if usable => {
                tracing::warn!(%error, jwks_uri = %self.uri, "JWKS refresh failed; using cached keys");
                Ok(seen)
            }
            Err(error) => {
                tracing::warn!(%error, jwks_uri = %self.uri, "JWKS fetch failed; no usable keys");
                Err(Error::KeysUnavailable(error))
            }
        }
    }

    /// A `kid` we do not know: the server may have rotated keys, so fetch
    /// again, within the limits described in the module documentation.
    async fn refetch_on_miss(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        seen_generation: u64,
    ) -> Result<Arc<KeySnapshot>, Error> {
        let unknown = || Error::UnknownKey(kid.map(str::to_owned));
        let miss = Miss::new(kid, alg);
        if self
            .state()
            .known_unknown(&miss, self.clock.now(), self.policy.unknown_kid_ttl)
        {
            return Err(unknown());
        }
        // Waits only while a fetch is in flight: a token signed with a key
        // that fetch is about to bring in should not be refused.
        let _fetching = self.fetch_lock.lock().await;
        let current = self.current();
        if current.generation != seen_generation {
            // Fetched after we looked: if the key is not there now, it was
            // not published when we asked, and another fetch would not find
            // it either.
            return if current.has_candidate(kid, alg) {
                Ok(current)
            } else {
                self.remember_unknown(kid, alg);
                Err(unknown())
            };
        }
        let now = self.clock.now();
        {
            let mut state = self.state();
            if let Some(retry) = state.retry_not_before.filter(|&t| now < t) {
                // The server just failed to answer; asking again now would
                // only queue more requests behind a timeout.
                drop(state);
                tracing::debug!(?kid, ?retry, "unknown kid; the last JWKS fetch failed");
                return Err(Error::KeysUnavailable(FetchError::RecentlyFailed));
            }
            if let Err(retry_after) = state.claim_refetch(now, &self.policy) {
                drop(state);
                tracing::debug!(
                    ?kid,
                    ?retry_after,
                    "unknown kid; JWKS refetch rate limit reached"
                );
                return Err(Error::KeyRefetchDeferred {
                    kid: kid.map(str::to_owned),
                    retry_after,
                });
            }
        }
        match self.fetch_and_store().await {
            Ok(fresh) if fresh.has_candidate(kid, alg) => Ok(fresh),
            Ok(_) => {
                self.remember_unknown(kid, alg);
                Err(unknown())
            }
            Err(error) => {
                tracing::warn!(%error, jwks_uri = %self.uri, "JWKS refetch for an unknown kid failed");
                Err(Error::KeysUnavailable(error))
            }
        }
    }

    fn remember_unknown(&self, kid: Option<&str>, alg: Algorithm) {
        let now = self.clock.now();
        self.state()
            .remember_unknown(Miss::new(kid, alg), now, self.policy.unknown_kid_ttl);
    }

    /// Call with `fetch_lock` held.
    async fn fetch_and_store(&self) -> Result<Arc<KeySnapshot>, FetchError> {
        let fetched = fetch::get_json(&self.client, &self.uri)
            .await
            .and_then(|fetched| Ok((parse_jwks(&fetched.body, self.allowed)?, fetched.max_age)));
        let (keys, max_age) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => {
                let retry = later(self.clock.now(), self.policy.retry_interval);
                self.state().retry_not_before = Some(retry);
                return Err(error);
            }
        };
        let ttl = max_age
            .unwrap_or(self.policy.default_ttl)
            .clamp(self.policy.min_ttl, self.policy.max_ttl);
        let now = self.clock.now();
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let snapshot = Arc::new(KeySnapshot {
            keys,
            fresh_until: later(now, ttl),
            usable_until: later(later(now, ttl), self.policy.max_stale),
            generation: current.generation + 1,
        });
        *current = Arc::clone(&snapshot);
        drop(current);
        self.state().retry_not_before = None;
        tracing::debug!(
            keys = snapshot.len(),
            ttl_secs = ttl.as_secs(),
            "JWKS loaded"
        );
        Ok(snapshot)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RefetchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A JWK Set published at a URL, fetched and cached under the policy the
/// [`Verifier`](crate::Verifier) uses for its issuer's keys: `Cache-Control`
/// honoured within bounds, one fetch at a time, refetches for unknown `kid`s
/// rate limited, stale keys kept through a brief outage. For other
/// verifiers of JWTs from a known issuer, such as an authorization server
/// that trusts another identity provider's assertions.
#[derive(Debug)]
pub struct RemoteJwks {
    cache: KeyCache,
}

impl RemoteJwks {
    /// Keys at `jwks_uri` (https, or http on a loopback host), usable for
    /// these asymmetric algorithms only, fetched with `client` (which should
    /// follow no redirects and have timeouts).
    pub fn new(
        jwks_uri: &str,
        algorithms: &[Algorithm],
        client: reqwest::Client,
    ) -> Result<Self, crate::SetupError> {
        let uri = Url::parse(jwks_uri).map_err(|source| crate::SetupError::InvalidUrl {
            what: "the JWKS URI",
            source,
        })?;
        crate::fetch::require_secure(&uri, "the JWKS URI", false)?;
        let allowed: AlgorithmSet = algorithms
            .iter()
            .copied()
            .filter(|a| *a != Algorithm::HS256)
            .collect();
        Ok(RemoteJwks {
            cache: KeyCache::new(
                uri,
                client,
                Arc::new(crate::SystemClock),
                allowed,
                JwksPolicy::default(),
            ),
        })
    }

    /// The published keys a JWS with this `kid` and `alg` may be checked
    /// against: the one key named by `kid`, or without a `kid` every key of
    /// `alg`. Fetches when the cache is stale or the `kid` new, within the
    /// policy's limits.
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerifyingKey>, Error> {
        let snapshot = self.cache.snapshot_for(kid, alg, SystemTime::now()).await?;
        Ok(snapshot.candidates(kid, alg).cloned().collect())
    }
}

/// Parses a JWK Set, keeping the keys we can use for an allowed algorithm.
/// RFC 7517 §5: members we do not understand are ignored, not fatal, so one
/// encryption key or a future key type does not take the whole set down.
fn parse_jwks(body: &[u8], allowed: AlgorithmSet) -> Result<Vec<VerifyingKey>, FetchError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body).map_err(FetchError::Json)?;
    let mut keys = Vec::with_capacity(document.keys.len());
    for value in document.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::debug!(%error, "skipping a JWK that does not parse");
                continue;
            }
        };
        // from_jwk insists on `alg` and checks `kty`/`crv`/`use` against it,
        // so a key is only ever used for the algorithm it was published for.
        match VerifyingKey::from_jwk(&jwk) {
            Ok(key) if allowed.contains(key.alg()) => keys.push(key),
            Ok(key) => {
                tracing::debug!(kid = ?key.kid(), alg = %key.alg(), "skipping a key for an algorithm not allowed")
            }
            Err(error) => tracing::debug!(kid = ?jwk.kid, %error, "skipping an unusable JWK"),
        }
    }
    Ok(keys)
}

/// A set of algorithms, as bits: checking it costs nothing on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgorithmSet(u8);

impl AlgorithmSet {
    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    pub(crate) fn insert(&mut self, alg: Algorithm) {
        self.0 |= Self::bit(alg);
    }

    pub(crate) fn remove(&mut self, alg: Algorithm) {
        self.0 &= !Self::bit(alg);
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(alg: Algorithm) -> u8 {
        match alg {
            Algorithm::ES256 => 1,
            Algorithm::RS256 => 2,
            Algorithm::PS256 => 4,
            Algorithm::EdDSA => 8,
            Algorithm::HS256 => 16,
        }
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = AlgorithmSet::default();
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_jose::SigningKey;

    fn jwk(alg: Algorithm, kid: &str) -> serde_json::Value {
        let (key, _) = SigningKey::generate(alg, kid).expect("generate");
        serde_json::to_value(key.public_jwk().expect("public")).expect("json")
    }

    #[test]
    fn unusable_and_disallowed_keys_are_skipped() {
        let mut wrong_kty = jwk(Algorithm::ES256, "bad");
        wrong_kty["alg"] = "RS256".into();
        let body = serde_json::json!({"keys": [
            jwk(Algorithm::ES256, "es"),
            jwk(Algorithm::EdDSA, "ed"),
            wrong_kty,
            {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "hs"},
            {"kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "kid": "enc"},
            {"kid": 5},
        ]});
        let allowed: AlgorithmSet = [Algorithm::ES256, Algorithm::RS256].into_iter().collect();
        let keys = parse_jwks(body.to_string().as_bytes(), allowed).expect("parse");
        let kids: Vec<_> = keys.iter().map(|k| k.kid()).collect();
        assert_eq!(kids, [Some("es")]);
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        let allowed: AlgorithmSet = Algorithm::ASYMMETRIC.into_iter().collect();
        assert!(parse_jwks(b"{}", allowed).is_err());
        assert!(parse_jwks(b"<html>", allowed).is_err());
        assert_eq!(
            parse_jwks(br#"{"keys":[]}"#, allowed).expect("empty").len(),
            0
        );
    }

    #[test]
    fn candidates_follow_kid_then_alg() {
        let keys = ["a", "b"].map(|kid| {
            SigningKey::generate(Algorithm::ES256, kid)
                .expect("generate")
                .0
                .verifying_key()
                .expect("public")
        });
        let snapshot = KeySnapshot {
            keys: keys.to_vec(),
            ..KeySnapshot::empty()
        };
        assert_eq!(snapshot.candidates(Some("b"), Algorithm::ES256).count(), 1);
        // A kid names its key even for another alg; the key then refuses.
        assert_eq!(snapshot.candidates(Some("b"), Algorithm::RS256).count(), 1);
        assert_eq!(snapshot.candidates(Some("c"), Algorithm::ES256).count(), 0);
        assert_eq!(snapshot.candidates(None, Algorithm::ES256).count(), 2);
        assert_eq!(snapshot.candidates(None, Algorithm::EdDSA).count(), 0);
    }

    fn policy(burst: u32, interval: u64) -> JwksPolicy {
        JwksPolicy {
            miss_refetch_burst: burst,
            miss_refetch_interval: Duration::from_secs(interval),
            ..JwksPolicy::default()
        }
    }

    #[test]
    fn the_refetch_bucket_allows_a_burst_then_one_per_interval() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s: u64| start + Duration::from_secs(s);
        let p = policy(2, 5);
        let mut state = RefetchState::default();
        assert_eq!(state.claim_refetch(at(0), &p), Ok(()));
        assert_eq!(state.claim_refetch(at(0), &p), Ok(()));
        assert_eq!(state.claim_refetch(at(0), &p), Err(Duration::from_secs(5)));
        assert_eq!(state.claim_refetch(at(3), &p), Err(Duration::from_secs(2)));
        assert_eq!(state.claim_refetch(at(5), &p), Ok(()));
        assert!(state.claim_refetch(at(5), &p).is_err());
        // A quiet spell fills the bucket again, but never beyond the burst.
        assert_eq!(state.claim_refetch(at(100), &p), Ok(()));
        assert_eq!(state.claim_refetch(at(100), &p), Ok(()));
        assert!(state.claim_refetch(at(100), &p).is_err());

        let mut single = RefetchState::default();
        let p = policy(1, 30);
        assert_eq!(single.claim_refetch(at(0), &p), Ok(()));
        assert_eq!(
            single.claim_refetch(at(10), &p),
            Err(Duration::from_secs(20))
        );
        let mut free = RefetchState::default();
        for _ in 0..10 {
            assert_eq!(free.claim_refetch(at(0), &policy(1, 0)), Ok(()));
        }
    }

    #[test]
    fn unknown_kids_are_remembered_for_a_while_and_in_bounded_number() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ttl = Duration::from_secs(30);
        let mut state = RefetchState::default();
        let bogus = Miss::new(Some("bogus"), Algorithm::ES256);
        state.remember_unknown(bogus.clone(), start, ttl);
        assert!(state.known_unknown(&bogus, start + Duration::from_secs(29), ttl));
        assert!(!state.known_unknown(&bogus, start + ttl, ttl));
        assert!(!state.known_unknown(&Miss::new(Some("other"), Algorithm::ES256), start, ttl));
        let long = Miss::Kid("k".repeat(MAX_REMEMBERED_KID_BYTES + 1));
        state.remember_unknown(long.clone(), start, ttl);
        assert!(!state.known_unknown(&long, start, ttl), "too long to keep");
        // Without a kid, the miss is the algorithm's.
        assert_eq!(
            Miss::new(None, Algorithm::EdDSA),
            Miss::Alg(Algorithm::EdDSA)
        );

        for i in 1..MAX_UNKNOWN_KIDS {
            state.remember_unknown(Miss::Kid(format!("k{i}")), start, ttl);
        }
        assert_eq!(state.unknown.len(), MAX_UNKNOWN_KIDS);
        // Full of live entries: a new one is not remembered, none is lost.
        state.remember_unknown(Miss::Kid("late".into()), start, ttl);
        assert_eq!(state.unknown.len(), MAX_UNKNOWN_KIDS);
        assert!(state.known_unknown(&bogus, start, ttl));
        // Once they have ended, they make room.
        let later = start + ttl;
        state.remember_unknown(Miss::Kid("late".into()), later, ttl);
        assert_eq!(state.unknown.len(), 1);
        assert!(state.known_unknown(&Miss::Kid("late".into()), later, ttl));
    }

    #[test]
    fn algorithm_sets() {
        let mut set: AlgorithmSet = [Algorithm::ES256].into_iter().collect();
        assert!(set.contains(Algorithm::ES256));
        assert!(!set.contains(Algorithm::HS256));
        set.insert(Algorithm::HS256);
        set.remove(Algorithm::ES256);
        assert!(set.contains(Algorithm::HS256) && !set.contains(Algorithm::ES256));
        set.remove(Algorithm::HS256);
        assert!(set.is_empty());
    }
}

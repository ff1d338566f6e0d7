//! Reference tokens, checked at the introspection endpoint (RFC 7662) with
//! the service's own client credentials, behind a small cache.
//!
//! Caching trades revocation latency for load (RFC 7662 §4): a revoked token
//! stays accepted until its cache entry ends, so positive answers are kept
//! for a short, configurable time and never past the token's `exp`. Refused
//! tokens are remembered more briefly still, so a token retried in a loop
//! costs one request per interval. A full cache makes room by dropping the
//! entry that would end first, never by dropping everything.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::Engine as _;
use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION};
use url::Url;

use crate::claims::{Claims, Expectations, json_text};
use crate::clock::{Clock, later};
use crate::error::FetchError;
use crate::secret::ClientSecret;
use crate::token::{AccessToken, TokenKind};
use crate::{Error, fetch};

#[derive(Debug, Clone, Copy)]
pub(crate) struct IntrospectionPolicy {
    /// Upper bound for caching an active answer; `exp` bounds it further.
    pub active_ttl: Duration,
    /// How long an inactive or refused token is remembered, so a client
    /// retrying a dead token does not turn into a request per retry.
    pub inactive_ttl: Duration,
    /// Entries kept at most; when full, the entry closest to its end goes.
    pub capacity: usize,
}

impl Default for IntrospectionPolicy {
    fn default() -> Self {
        IntrospectionPolicy {
            active_ttl: Duration::from_secs(60),
            inactive_ttl: Duration::from_secs(5),
            capacity: 10_000,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Introspector {
    endpoint: Url,
    client: reqwest::Client,
    authorization: HeaderValue,
    clock: Arc<dyn Clock>,
    policy: IntrospectionPolicy,
    cache: Mutex<Cache>,
}

/// Keyed by the SHA-256 of the token: the cache never holds a usable bearer
/// token. `by_end` orders the same keys by when their entries end, so
/// expired entries and, when full, the one ending soonest are found without
/// a scan.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<[u8; 32], Entry>,
    by_end: BTreeSet<(SystemTime, [u8; 32])>,
}

#[derive(Debug)]
struct Entry {
    until: SystemTime,
    answer: Answer,
}

#[derive(Debug)]
enum Answer {
    Active(Box<AccessToken>),
    Refused(Refusal),
}

/// The refusals worth remembering: verdicts on the token, not failures of
/// the request (those are retried).
#[derive(Debug, Clone)]
enum Refusal {
    Inactive,
    WrongAudience,
    WrongIssuer(String),
    Expired(i64),
    NotYetValid(i64),
    MissingClaim(&'static str),
    NotAnAccessToken(String),
}

impl Refusal {
    fn from_error(error: &Error) -> Option<Self> {
        Some(match error {
            Error::Inactive => Refusal::Inactive,
            Error::WrongAudience => Refusal::WrongAudience,
            Error::WrongIssuer(i) => Refusal::WrongIssuer(i.clone()),
            Error::Expired(t) => Refusal::Expired(*t),
            Error::NotYetValid(t) => Refusal::NotYetValid(*t),
            Error::MissingClaim(c) => Refusal::MissingClaim(c),
            Error::NotAnAccessToken(t) => Refusal::NotAnAccessToken(t.clone()),
            _ => return None,
        })
    }

    fn to_error(&self) -> Error {
        match self {
            Refusal::Inactive => Error::Inactive,
            Refusal::WrongAudience => Error::WrongAudience,
            Refusal::WrongIssuer(i) => Error::WrongIssuer(i.clone()),
            Refusal::Expired(t) => Error::Expired(*t),
            Refusal::NotYetValid(t) => Error::NotYetValid(*t),
            Refusal::MissingClaim(c) => Error::MissingClaim(c),
            Refusal::NotAnAccessToken(t) => Error::NotAnAccessToken(t.clone()),
        }
    }
}

impl Introspector {
    pub(crate) fn new(
        endpoint: Url,
        client: reqwest::Client,
        client_id: &str,
        secret: &ClientSecret,
        clock: Arc<dyn Clock>,
        policy: IntrospectionPolicy,
    ) -> Self {
        Introspector {
            endpoint,
            client,
            authorization: basic_authorization(client_id, secret),
            clock,
            policy,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(crate) async fn introspect(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        leeway: i64,
    ) -> Result<AccessToken, Error> {
        let key = cache_key(token);
        if let Some(cached) = self.cached(&key) {
            return cached;
        }
        let body = self.ask(token).await?;
        let now = self.clock.now();
        let expect = Expectations {
            issuer,
            audience,
            leeway,
            now: crate::clock::unix_seconds(now),
        };
        let malformed = |_| {
            Error::IntrospectionFailed(FetchError::Json(serde::de::Error::custom(
                "the introspection response is not a JSON object of the RFC 7662 types",
            )))
        };
        let json = json_text(body).map_err(malformed)?;
        let claims = Claims::parse(&json).map_err(malformed)?;
        match claims.check_introspected(&expect) {
            Ok(()) => {
                let exp = claims.expires_at();
                let parts = claims.detach(&json);
                let token = AccessToken::new(parts, TokenKind::Reference, json);
                let mut until = later(now, self.policy.active_ttl);
                if let Some(exp) = exp {
                    until = until
                        .min(UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0)));
                }
                if until > now {
                    self.store(key, until, Answer::Active(Box::new(token.clone())));
                }
                Ok(token)
            }
            Err(error) => {
                if !claims.is_active() {
                    tracing::debug!("introspection: token inactive");
                }
                if let Some(refusal) = Refusal::from_error(&error) {
                    self.store(
                        key,
                        later(now, self.policy.inactive_ttl),
                        Answer::Refused(refusal),
                    );
                }
                Err(error)
            }
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<AccessToken, Error>> {
        let now = self.clock.now();
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.entries.get(key).filter(|e| now < e.until)?;
        Some(match &entry.answer {
            Answer::Active(token) => Ok(AccessToken::clone(token)),
            Answer::Refused(refusal) => Err(refusal.to_error()),
        })
    }

    fn store(&self, key: [u8; 32], until: SystemTime, answer: Answer) {
        let now = self.clock.now();
        if until <= now || self.policy.capacity == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert(key, Entry { until, answer }, now, self.policy.capacity);
    }

    /// POSTs the token (RFC 7662 §2.1) and returns the answer's body.
    async fn ask(&self, token: &str) -> Result<Vec<u8>, Error> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| Error::IntrospectionFailed(FetchError::Http(e)))?;
        let fetched = fetch::finish(response).await.map_err(|error| {
            if matches!(error, FetchError::Status(401 | 403)) {
                tracing::error!(%error, "the introspection endpoint refused our client credentials");
            } else {
                tracing::warn!(%error, "introspection failed");
            }
            Error::IntrospectionFailed(error)
        })?;
        Ok(fetched.body)
    }
}

impl Cache {
    /// Adds or replaces an entry; first drops the entries that have ended,
    /// then, if still full, those that end soonest.
    fn insert(&mut self, key: [u8; 32], entry: Entry, now: SystemTime, capacity: usize) {
        if let Some(old) = self.entries.remove(&key) {
            self.by_end.remove(&(old.until, key));
        }
        while let Some(&(until, oldest)) = self.by_end.first() {
            if until > now && self.entries.len() < capacity {
                break;
            }
            self.by_end.pop_first();
            self.entries.remove(&oldest);
        }
        self.by_end.insert((entry.until, key));
        self.entries.insert(key, entry);
    }
}

/// `client_secret_basic`: RFC 6749 §2.3.1 form-urlencodes the id and the
/// secret before joining them, which plain HTTP Basic does not.
fn basic_authorization(client_id: &str, secret: &ClientSecret) -> HeaderValue {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.secret()));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    // Base64 and the scheme name are visible ASCII, so this cannot fail.
    let mut header = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Basic"));
    header.set_sensitive(true);
    header
}

fn cache_key(token: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_first() {
        let header = basic_authorization("my client", &ClientSecret::new("p@ss:w/rd"));
        let encoded = header
            .to_str()
            .expect("ascii")
            .strip_prefix("Basic ")
            .expect("scheme");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("b64");
        assert_eq!(decoded, b"my+client:p%40ss%3Aw%2Frd");
        assert!(header.is_sensitive());
    }

    fn refused(seconds: u64) -> Entry {
        Entry {
            until: UNIX_EPOCH + Duration::from_secs(seconds),
            answer: Answer::Refused(Refusal::Inactive),
        }
    }

    #[test]
    fn a_full_cache_drops_the_entry_ending_first_not_everything() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        let mut cache = Cache::default();
        cache.insert(cache_key("long"), refused(160), now, 3);
        cache.insert(cache_key("a"), refused(105), now, 3);
        cache.insert(cache_key("b"), refused(106), now, 3);
        assert_eq!(cache.entries.len(), 3);
        cache.insert(cache_key("c"), refused(107), now, 3);
        assert_eq!(cache.entries.len(), 3);
        assert!(!cache.entries.contains_key(&cache_key("a")), "ends first");
        for kept in ["long", "b", "c"] {
            assert!(cache.entries.contains_key(&cache_key(kept)), "{kept}");
        }
        // Ended entries go first, whatever the room.
        let later = UNIX_EPOCH + Duration::from_secs(106);
        cache.insert(cache_key("d"), refused(111), later, 10);
        assert_eq!(cache.entries.len(), 3);
        assert!(!cache.entries.contains_key(&cache_key("b")));
        // Replacing an entry leaves no stale index behind.
        cache.insert(cache_key("long"), refused(120), later, 10);
        assert_eq!(cache.entries.len(), 3);
        assert_eq!(cache.by_end.len(), 3);
    }

    #[test]
    fn cache_keys_are_digests() {
        assert_ne!(cache_key("a"), cache_key("b"));
        assert_eq!(cache_key("a"), cache_key("a"));
    }
}

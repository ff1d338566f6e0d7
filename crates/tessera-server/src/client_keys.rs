//! The public keys `private_key_jwt` clients publish at their `jwks_uri`
//! (RFC 7591 §2), fetched over HTTP for the core's [`ClientKeysSource`]:
//! bounded in time and size, never following redirects, and cached for the
//! `max-age` the client's server allows, within limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::client_auth::{ClientKeysSource, KeysUnavailable};
use tessera_jose::JwkSet;

/// A JWK Set of a few keys is a few KiB.
const MAX_BODY: usize = 64 * 1024;
/// The whole fetch, from connecting to the last byte: a slow key server
/// delays that client's token requests, never more.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a set is used when its response says nothing about caching.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// The longest a set is used without asking again, whatever it allows: a
/// client that withdraws a key waits at most this long.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The least time between two fetches of one URL, also when an assertion
/// names a key the cached set lacks, and after a failed fetch: whoever knows
/// a client's ID cannot turn this server against the client's key server.
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// Fetches and caches client JWK Sets. One fetch per URL at a time: requests
/// that need the same set wait for it rather than fetch it again.
#[derive(Debug)]
pub struct HttpClientKeys {
    http: reqwest::Client,
    /// The same, connecting only to public addresses, for clients that
    /// registered themselves: a name of theirs that resolves into this
    /// server's network is refused before anything connects.
    public_http: reqwest::Client,
    /// One slot per URL; only registered clients' URLs ever get here, since a
    /// client is looked up before its keys are.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Debug, Default)]
struct Slot {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
    fresh_for: Duration,
    failed_at: Option<Instant>,
}

impl HttpClientKeys {
    pub fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                // A redirect could lead anywhere, http included; the registered
                // URL is the one trusted.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        };
        Ok(HttpClientKeys {
            http: builder().build()?,
            // No proxy from the environment here: a proxy would resolve the
            // name itself, past the check.
            public_http: builder()
                .no_proxy()
                .dns_resolver(Arc::new(PublicOnly))
                .build()?,
            slots: Mutex::default(),
        })
    }

    fn slot(&self, uri: &str, public_only: bool) -> Arc<tokio::sync::Mutex<Slot>> {
        // A poisoned lock only means another request panicked while holding
        // this map, which it never leaves half-written.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Kept apart: a set fetched without the check is never what a
        // public-only fetch answers.
        let key = format!("{}{uri}", if public_only { "public " } else { "" });
        Arc::clone(slots.entry(key).or_default())
    }

    async fn fetch(
        &self,
        uri: &str,
        public_only: bool,
    ) -> Result<(JwkSet, Option<Duration>), String> {
        let http = if public_only {
            // An address in the URL itself is never resolved.
            if tessera_core::registration::is_private_url(uri) {
                return Err("the URL names a private or loopback address".into());
            }
            &self.public_http
        } else {
            &self.http
        };
        let mut response = http
            .get(uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        let max_age = max_age(response.headers());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(format!("the JWK Set is larger than {MAX_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("the JWK Set is larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        // Public asymmetric keys that parse, as inline; keys of no use for a
        // signature are skipped (RFC 7517 §5), not fatal.
        let keys = tessera_core::registration::parse_fetched_jwks(&body)
            .map_err(|e| format!("unusable JWK Set: {e}"))?;
        Ok((keys, max_age))
    }
}

#[async_trait]
impl ClientKeysSource for HttpClientKeys {
    async fn client_keys(
        &self,
        uri: &str,
        refresh: bool,
        public_only: bool,
    ) -> Result<JwkSet, KeysUnavailable> {
        let slot = self.slot(uri, public_only);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let age = |t: Option<Instant>| t.map(|t| now.duration_since(t));
        if let (Some(keys), Some(age)) = (&slot.keys, age(slot.fetched_at))
            && (age < MIN_REFETCH || (age < slot.fresh_for && !refresh))
        {
            return Ok(keys.clone());
        }
        if age(slot.failed_at).is_some_and(|a| a < MIN_REFETCH) {
            return Err(KeysUnavailable(format!(
                "fetching {uri} failed moments ago"
            )));
        }
        match self.fetch(uri, public_only).await {
            Ok((keys, max_age)) => {
                slot.fresh_for = max_age
                    .unwrap_or(DEFAULT_MAX_AGE)
                    .clamp(MIN_REFETCH, MAX_MAX_AGE);
                slot.keys = Some(keys.clone());
                slot.fetched_at = Some(now);
                slot.failed_at = None;
                tracing::debug!(uri, keys = keys.keys.len(), fresh_for = ?slot.fresh_for, "fetched a client's JWK Set");
                Ok(keys)
            }
            Err(why) => {
                // A set past its freshness is not used: the client may have
                // withdrawn a key, and cannot be asked whether it did. One
                // still fresh stays for the requests that find their key in it.
                slot.failed_at = Some(now);
                if age(slot.fetched_at).is_none_or(|a| a >= slot.fresh_for) {
                    slot.keys = None;
                }
                tracing::warn!(uri, error = %why, "could not fetch a client's JWK Set");
                Err(KeysUnavailable(format!("{uri}: {why}")))
            }
        }
    }
}

/// The freshness lifetime a response allows (RFC 9111 §5.2.2): `max-age`, or
/// zero for `no-store` and `no-cache`; `None` when it says nothing.
/// Resolves names as the system does, then keeps only public addresses
/// ([`is_private_address`](tessera_core::registration::is_private_address));
/// a name with none left is an error, so nothing connects.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = resolved
                .filter(|a| !tessera_core::registration::is_private_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") && found.is_none() {
                // An unparsable max-age makes the response stale (RFC 9111 §4.2.1).
                found = Some(
                    arg.and_then(|a| a.parse::<u64>().ok())
                        .map_or(Duration::ZERO, Duration::from_secs),
                );
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    /// A key server on loopback: a good set, a huge one, one with a private
    /// key, a redirect to the good one, and a 404. Counts every request.
    async fn key_server() -> (String, Arc<AtomicUsize>) {
        let (key, _) =
            tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256, "k1").expect("key");
        let public = serde_json::to_value(key.public_jwk().expect("public")).expect("json");
        let mut private = public.clone();
        private["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI".into();
        let good = serde_json::json!({ "keys": [public] });
        let huge = serde_json::json!({ "keys": [], "padding": "x".repeat(MAX_BODY) });
        let private = serde_json::json!({ "keys": [private] });
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = |body: serde_json::Value, hits: Arc<AtomicUsize>| {
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                ([(header::CACHE_CONTROL, "max-age=600")], axum::Json(body)).into_response()
            }
        };
        let app = axum::Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(counted(good, hits.clone())),
            )
            .route("/huge", axum::routing::get(counted(huge, hits.clone())))
            .route(
                "/private",
                axum::routing::get(counted(private, hits.clone())),
            )
            .route(
                "/redirect",
                axum::routing::get(|| async {
                    (StatusCode::FOUND, [(header::LOCATION, "/jwks.json")])
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, hits)
    }

    #[tokio::test]
    async fn fetches_are_bounded_and_cached() {
        let (base, hits) = key_server().await;
        let source = HttpClientKeys::new().expect("client");
        let good = format!("{base}/jwks.json");
        let set = source.client_keys(&good, false, false).await.expect("keys");
        assert_eq!(set.keys[0].kid.as_deref(), Some("k1"));
        // Cached for its max-age; a refresh moments later is not a fetch.
        source.client_keys(&good, false, false).await.expect("keys");
        source.client_keys(&good, true, false).await.expect("keys");
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        for path in ["/huge", "/private", "/redirect", "/missing"] {
            let url = format!("{base}{path}");
            let err = source
                .client_keys(&url, false, false)
                .await
                .expect_err(path);
            // A failed URL is not asked again at once.
            let again = source.client_keys(&url, true, false).await.expect_err(path);
            assert!(again.0.contains("moments ago"), "{path}: {again}");
            assert!(!err.0.contains("moments ago"), "{path}: {err}");
        }
        // The redirect was not followed to the good set.
        assert_eq!(
            hits.load(Ordering::SeqCst),
            3,
            "huge and private, once each"
        );
    }

    #[tokio::test]
    async fn public_only_fetches_never_reach_a_private_address() {
        let (base, hits) = key_server().await;
        let source = HttpClientKeys::new().expect("client");
        // By address (the key server is on 127.0.0.1), and by a name that
        // resolves to loopback.
        let by_name = base.replace("127.0.0.1", "localhost");
        for url in [format!("{base}/jwks.json"), format!("{by_name}/jwks.json")] {
            let err = source.client_keys(&url, false, true).await.expect_err(&url);
            assert!(!err.0.contains("moments ago"), "{err}");
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "a private address was fetched"
        );
        // The resolver itself, whatever the URL check says about the name.
        use reqwest::dns::Resolve as _;
        let refused = PublicOnly
            .resolve("localhost".parse().expect("a name"))
            .await;
        assert!(refused.is_err(), "localhost resolved to a public address");
        // Without the restriction the same set is fetched as before.
        source
            .client_keys(&format!("{base}/jwks.json"), false, false)
            .await
            .expect("keys");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    fn cc(values: &[&str]) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).expect("header"));
        }
        max_age(&headers)
    }

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(cc(&["public, max-age=600"]), Some(Duration::from_secs(600)));
        assert_eq!(cc(&["Max-Age=\"30\""]), Some(Duration::from_secs(30)));
        assert_eq!(cc(&["max-age=soon"]), Some(Duration::ZERO));
        assert_eq!(cc(&["no-store, max-age=600"]), Some(Duration::ZERO));
        assert_eq!(cc(&["public"]), None);
        assert_eq!(cc(&[]), None);
    }
}

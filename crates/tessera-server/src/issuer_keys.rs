//! The keys trusted issuers publish at their `jwks_uri`, for the core's
//! [`IssuerKeysSource`]: fetched and cached by `tessera-guard`'s
//! [`RemoteJwks`], the cache services use for this server's own keys, so
//! both follow one policy (`Cache-Control` within bounds, one fetch at a
//! time, rate-limited refetches for unknown `kid`s, stale keys through a
//! brief outage).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::assertion::IssuerKeysSource;
use tessera_guard::RemoteJwks;
use tessera_jose::{Algorithm, VerifyingKey};

/// One cache per registered `jwks_uri`. Only the URIs of registered issuers
/// get here: an assertion's issuer is looked up before its keys are.
#[derive(Debug)]
pub struct HttpIssuerKeys {
    http: reqwest::Client,
    caches: Mutex<HashMap<String, Arc<RemoteJwks>>>,
}

impl HttpIssuerKeys {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // A redirect could lead anywhere; the registered URL is the one
            // trusted.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpIssuerKeys {
            http,
            caches: Mutex::default(),
        })
    }

    fn cache(&self, jwks_uri: &str) -> Result<Arc<RemoteJwks>, String> {
        // A poisoned lock only means another request panicked while holding
        // this map, which it never leaves half-written.
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = caches.get(jwks_uri) {
            return Ok(Arc::clone(cache));
        }
        let cache = Arc::new(
            RemoteJwks::new(jwks_uri, &Algorithm::ASYMMETRIC, self.http.clone())
                .map_err(|e| e.to_string())?,
        );
        caches.insert(jwks_uri.to_owned(), Arc::clone(&cache));
        Ok(cache)
    }
}

#[async_trait]
impl IssuerKeysSource for HttpIssuerKeys {
    async fn keys_for(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerifyingKey>, String> {
        match self.cache(jwks_uri)?.keys_for(kid, alg).await {
            Ok(keys) => Ok(keys),
            // Published keys were read, and none is the one named.
            Err(tessera_guard::Error::UnknownKey(_)) => Ok(Vec::new()),
            Err(other) => Err(other.to_string()),
        }
    }
}

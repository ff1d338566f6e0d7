//! One log line per request (target `tessera::request`, level `info`): its
//! request ID, the client's address (the forwarded one behind trusted
//! proxies), method, route template (never the path's values or the
//! query), status, latency, and at the token endpoint the grant and the
//! registered client that asked.
//!
//! Nothing a client sends is written as it came: no query, header, cookie,
//! body, code, token, secret or password. The request ID is echoed in
//! `X-Request-Id`, taken from the request when a proxy in front set a
//! well-formed one, so that one request can be followed across both logs.
//! `RUST_LOG=info,tessera::request=off` silences these lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::GrantLabel;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request ID taken from a request.
const MAX_REQUEST_ID: usize = 64;

/// The request's ID, in its extensions for handlers that log.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// The registered client a response answered, for the log line.
#[derive(Debug, Clone)]
pub struct ClientLabel(pub String);

/// The route a request was routed to (set inside routing, read outside it).
#[derive(Debug, Clone)]
pub struct RouteLabel(pub MatchedPath);

/// Logs each request once its response is ready.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_well_formed(value))
        .map_or_else(new_request_id, Arc::from);
    let method = request.method().clone();
    let address = crate::client_address::of_request(request.extensions());
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let route = response.extensions().get::<RouteLabel>();
    let grant = response.extensions().get::<GrantLabel>().map(|g| g.0);
    let client = response.extensions().get::<ClientLabel>();
    tracing::info!(
        target: "tessera::request",
        request_id = %id,
        address = address.map(tracing::field::display),
        method = %method,
        route = route.map_or("unmatched", |r| r.0.as_str()),
        status = response.status().as_u16(),
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        grant_type = grant,
        client_id = client.map(|c| c.0.as_str()),
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Letters, digits and `-_.:` only, and not too long: an ID that goes into
/// logs and headers cannot carry anything else.
fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new ID: this process's random prefix and a counter, unique within the
/// process and, by the prefix, across instances.
fn new_request_id() -> Arc<str> {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| tessera_core::crypto::random_id()[..8].to_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Arc::from(format!("{prefix}-{n:x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_taken_from_requests() {
        assert!(is_well_formed("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(is_well_formed("edge:42.7"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("a b"));
        assert!(!is_well_formed("id\nforged log line"));
        assert!(!is_well_formed(&"x".repeat(MAX_REQUEST_ID + 1)));
    }

    #[test]
    fn new_ids_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next(), "one prefix");
    }
}

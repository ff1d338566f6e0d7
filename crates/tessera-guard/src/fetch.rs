//! HTTP plumbing shared by discovery, the JWKS cache and introspection.

use std::time::Duration;

use http::HeaderMap;
use http::header::{ACCEPT, CACHE_CONTROL};
use url::{Host, Url};

use crate::error::{FetchError, SetupError};

/// Metadata, JWKS and introspection answers are a few KiB; anything far
/// larger is a misconfiguration or an attack on our memory.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A JSON document and how long its sender allows caching it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub max_age: Option<Duration>,
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &Url) -> Result<Fetched, FetchError> {
    let response = client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(FetchError::Http)?;
    finish(response).await
}

/// Checks the status and reads a bounded body.
pub(crate) async fn finish(mut response: reqwest::Response) -> Result<Fetched, FetchError> {
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let max_age = max_age(response.headers());
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(FetchError::TooLarge(MAX_DOCUMENT_BYTES));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Http)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge(MAX_DOCUMENT_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, max_age })
}

/// The freshness lifetime a response allows (RFC 9111 §5.2.2): `max-age`,
/// or zero for `no-store` / `no-cache`, which mean "ask again next time".
/// `None` when the response says nothing, so the caller's default applies.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
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

/// Tokens and keys from a plain-http issuer can be swapped by anyone on the
/// path, so http is refused except on loopback, where nothing is on the path.
pub(crate) fn require_secure(url: &Url, what: &str, allow_http: bool) -> Result<(), SetupError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        _ => Err(SetupError::InsecureUrl(format!("{what} {url}"))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
        assert_eq!(cc(&["public", "max-age=5"]), Some(Duration::from_secs(5)));
        assert_eq!(cc(&["max-age=soon"]), Some(Duration::ZERO));
        assert_eq!(cc(&["no-store, max-age=600"]), Some(Duration::ZERO));
        assert_eq!(cc(&["public"]), None);
        assert_eq!(cc(&[]), None);
    }

    #[test]
    fn http_is_only_for_loopback() {
        let ok =
            |u: &str, allow| require_secure(&Url::parse(u).expect("url"), "issuer", allow).is_ok();
        assert!(ok("https://id.example", false));
        assert!(ok("http://127.0.0.1:8080", false));
        assert!(ok("http://localhost:8080", false));
        assert!(ok("http://[::1]:8080", false));
        assert!(!ok("http://id.example", false));
        assert!(ok("http://id.example", true));
        assert!(!ok("ftp://id.example", true));
    }
}

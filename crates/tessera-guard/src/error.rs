//! Errors in two layers, as RFC 6750 wants them: many precise reasons (for
//! logs and tests) that map onto three wire codes, one HTTP status and one
//! short public description each. The public description stays generic: the
//! caller learns that the token is invalid, not which check an attacker
//! should work on next.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};

/// Why a request or a token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The request.
    /// No `Authorization: Bearer` credential at all (or another scheme).
    #[error("the request carries no bearer token")]
    MissingToken,
    /// More than one `Authorization` header (RFC 6750 §3.1 `invalid_request`).
    #[error("the request carries more than one Authorization header")]
    MultipleCredentials,

    // The token's shape.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's algorithm {0} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token's typ is {0:?}, not at+jwt (RFC 9068 §4)")]
    WrongType(Option<String>),
    #[error("a reference token was presented but introspection is not configured")]
    ReferenceTokensDisabled,

    // The signature.
    #[error("no known key has kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("the key named by the token is published for another algorithm")]
    KeyAlgorithmMismatch,
    #[error("the signature does not verify")]
    BadSignature,

    // The claims.
    #[error("the claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("the claim {0} is not of the type RFC 9068 requires")]
    InvalidClaim(&'static str),
    #[error("the issuer {0:?} is not the configured issuer")]
    WrongIssuer(String),
    #[error("the token's audience does not include this resource")]
    WrongAudience,
    #[error("the token expired at {0} (Unix time)")]
    Expired(i64),
    #[error("the token is not valid before {0} (Unix time)")]
    NotYetValid(i64),
    #[error("the token claims to be issued at {0} (Unix time), in the future")]
    IssuedInFuture(i64),
    #[error("the introspection endpoint reports the token inactive")]
    Inactive,
    /// The introspection answer's `token_type` is not `Bearer`: a refresh
    /// token, or an access token bound to a proof the guard does not check.
    #[error("the introspected token's token_type is {0:?}, not Bearer (RFC 7662 §2.2)")]
    NotAnAccessToken(String),

    // Authorization.
    /// The token is valid but lacks scopes; holds the scopes the resource
    /// needs, space-separated, for the `scope` attribute (RFC 6750 §3).
    #[error("the token lacks the scope(s) {0:?}")]
    InsufficientScope(String),

    // The guard itself.
    #[error("no signing keys could be loaded: {0}")]
    KeysUnavailable(#[source] FetchError),
    /// No cached key has the token's `kid`, and the JWKS was fetched too
    /// often lately to look again now. The key may be new, so the token is
    /// not called invalid: the answer is `503` with `Retry-After`, and a
    /// client that retries then gets a definite answer.
    #[error(
        "no cached key has kid {kid:?}, and the JWKS may not be fetched again for {retry_after:?}"
    )]
    KeyRefetchDeferred {
        kid: Option<String>,
        retry_after: Duration,
    },
    #[error("the introspection request failed: {0}")]
    IntrospectionFailed(#[source] FetchError),
    /// The extractor found neither a verified token nor a `Verifier` in the
    /// request extensions: a wiring mistake in the service.
    #[error("no Verifier is installed for this route")]
    NotConfigured,
}

/// The error codes of RFC 6750 §3.1, the only ones a resource server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
        }
    }
}

impl Error {
    /// The wire error code, or `None` where RFC 6750 wants none: a request
    /// with no credentials gets a bare challenge (§3.1), and failures of the
    /// guard itself are not the client's fault.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::MissingToken | Error::KeysUnavailable(_) => None,
            Error::KeyRefetchDeferred { .. } => None,
            Error::IntrospectionFailed(_) | Error::NotConfigured => None,
            Error::MultipleCredentials => Some(ErrorCode::InvalidRequest),
            Error::InsufficientScope(_) => Some(ErrorCode::InsufficientScope),
            _ => Some(ErrorCode::InvalidToken),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::MultipleCredentials => StatusCode::BAD_REQUEST,
            Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
            // Without keys or an answer from introspection we cannot tell a
            // good token from a bad one; a 401 would make well-behaved
            // clients throw away valid tokens.
            Error::KeysUnavailable(_)
            | Error::IntrospectionFailed(_)
            | Error::KeyRefetchDeferred { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `error_description` sent to the client. It must stay within the
    /// characters RFC 6750 §3 allows (no `"` or `\`).
    ///
    /// One text covers every invalid token, so the answer does not tell an
    /// attacker which check to work on next; the precise reason is this
    /// error's `Display` text, which the layer and the extractor log. Expiry
    /// alone is told apart: clients refresh on it, and it reveals nothing the
    /// token's own `exp` does not.
    pub fn description(&self) -> Option<&'static str> {
        Some(match self {
            Error::MultipleCredentials => "the request carries more than one Authorization header",
            Error::Expired(_) => "the access token expired",
            Error::InsufficientScope(_) => "the access token lacks a required scope",
            other if other.code() == Some(ErrorCode::InvalidToken) => "the access token is invalid",
            _ => return None,
        })
    }

    /// When the request may succeed if sent again: the `Retry-After` of the
    /// answer (RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::KeyRefetchDeferred { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge for this error (RFC 6750 §3), or
    /// `None` for the 5xx errors, which are not an authentication problem.
    /// `realm` must already be a valid quoted-string body; the
    /// [`Verifier`](crate::Verifier) checks that when it is built.
    pub fn challenge(&self, realm: Option<&str>) -> Option<HeaderValue> {
        if self.status().is_server_error() {
            return None;
        }
        let mut value = String::with_capacity(128);
        value.push_str("Bearer");
        let mut sep = " ";
        let mut param = |name: &str, v: &str| {
            value.push_str(sep);
            value.push_str(name);
            value.push_str("=\"");
            value.push_str(v);
            value.push('"');
            sep = ", ";
        };
        if let Some(realm) = realm {
            param("realm", realm);
        }
        if let Some(code) = self.code() {
            param("error", code.as_str());
        }
        if let Some(description) = self.description() {
            param("error_description", description);
        }
        if let Error::InsufficientScope(scope) = self {
            param("scope", scope);
        }
        // Every part is either a constant or checked when configured, so
        // this only fails if that check is broken; fall back to the bare
        // scheme rather than sending no challenge at all.
        Some(HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer")))
    }

    /// A complete HTTP response for this error: status, `WWW-Authenticate`,
    /// `Retry-After` where [`retry_after`](Self::retry_after) says when,
    /// `Cache-Control: no-store` and, where there is an error code, a small
    /// JSON body with `error` and `error_description`. Generic over the body
    /// type so that any `http`-based framework can send it.
    pub fn to_response<B: From<String>>(&self, realm: Option<&str>) -> http::Response<B> {
        let body = match (self.code(), self.description()) {
            (Some(code), Some(description)) => format!(
                r#"{{"error":"{}","error_description":"{}"}}"#,
                code.as_str(),
                description
            ),
            _ => String::new(),
        };
        let mut response = http::Response::new(B::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge(realm) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.code().is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(after) = self.retry_after() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(after)),
            );
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Why fetching a document from Tessera (metadata, JWKS, introspection)
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("HTTP request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the response is not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("a recent attempt failed; not retried until the back-off ends")]
    RecentlyFailed,
}

/// Why a [`Verifier`](crate::Verifier) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("{what} is not a valid URL: {source}")]
    InvalidUrl {
        what: &'static str,
        #[source]
        source: url::ParseError,
    },
    #[error("{0} must use https (plain http is allowed only on a loopback host)")]
    InsecureUrl(String),
    #[error("fetching the authorization server metadata failed: {0}")]
    Discovery(#[source] FetchError),
    /// RFC 8414 §3.3: the metadata's `issuer` must be identical to the
    /// issuer the client was configured with.
    #[error("the metadata names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the metadata has no {0}")]
    MissingEndpoint(&'static str),
    #[error("fetching the JWKS failed: {0}")]
    Jwks(#[source] FetchError),
    #[error("an HS256 shared secret must be at least 32 bytes (RFC 7518 §3.2)")]
    WeakSharedSecret,
    #[error("{0:?} is not a valid scope token (RFC 6749 §3.3)")]
    InvalidScope(String),
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    #[error("the audience must not be empty")]
    EmptyAudience,
    #[error("no algorithm is allowed")]
    NoAlgorithms,
    #[error("no way to verify tokens: give a JWKS URI, a shared secret or client credentials")]
    NoKeySource,
    #[error("building the HTTP client failed: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// Whole seconds, rounded up so that a retry never comes early, and at least
/// one: `Retry-After: 0` invites an immediate retry loop.
fn retry_after_seconds(after: Duration) -> u64 {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    seconds.max(1)
}

/// A scope token per RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`. The
/// same set keeps it safe inside the challenge's quoted `scope` attribute.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Realms go into a quoted-string; keeping to the scope alphabet plus space
/// means no escaping is ever needed.
pub(crate) fn is_valid_realm(realm: &str) -> bool {
    realm
        .bytes()
        .all(|b| b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(error: &Error, realm: Option<&str>) -> String {
        error
            .challenge(realm)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn a_request_without_token_gets_a_bare_challenge() {
        // RFC 6750 §3.1: no error code when no authentication was attempted.
        assert_eq!(
            challenge(&Error::MissingToken, Some("orders")),
            r#"Bearer realm="orders""#
        );
        assert_eq!(challenge(&Error::MissingToken, None), "Bearer");
        assert_eq!(Error::MissingToken.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn invalid_tokens_get_401_invalid_token() {
        assert_eq!(
            challenge(&Error::Expired(5), Some("orders")),
            r#"Bearer realm="orders", error="invalid_token", error_description="the access token expired""#
        );
        assert_eq!(
            challenge(&Error::BadSignature, None),
            r#"Bearer error="invalid_token", error_description="the access token is invalid""#
        );
        for e in [Error::BadSignature, Error::WrongAudience, Error::Inactive] {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn every_invalid_token_but_an_expired_one_gets_the_same_description() {
        let reasons = [
            Error::Malformed("x"),
            Error::AlgorithmNotAllowed("HS256".into()),
            Error::WrongType(Some("JWT".into())),
            Error::ReferenceTokensDisabled,
            Error::UnknownKey(Some("k".into())),
            Error::KeyAlgorithmMismatch,
            Error::BadSignature,
            Error::MissingClaim("sub"),
            Error::InvalidClaim("scope"),
            Error::WrongIssuer("https://evil.example".into()),
            Error::WrongAudience,
            Error::NotYetValid(0),
            Error::IssuedInFuture(0),
            Error::Inactive,
            Error::NotAnAccessToken("refresh_token".into()),
        ];
        for e in reasons {
            assert_eq!(e.code(), Some(ErrorCode::InvalidToken), "{e}");
            assert_eq!(e.description(), Some("the access token is invalid"), "{e}");
        }
        assert_eq!(
            Error::Expired(0).description(),
            Some("the access token expired")
        );
    }

    #[test]
    fn missing_scope_gets_403_with_the_scope() {
        let e = Error::InsufficientScope("orders.read orders.write".into());
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(&e, Some("orders")),
            r#"Bearer realm="orders", error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders.read orders.write""#
        );
    }

    #[test]
    fn guard_failures_are_5xx_without_challenge() {
        let e = Error::KeysUnavailable(FetchError::Status(502));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.challenge(Some("x")).is_none());
        let response: http::Response<String> = e.to_response(Some("x"));
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(response.body(), "");
    }

    #[test]
    fn a_deferred_key_lookup_is_503_with_retry_after() {
        let e = Error::KeyRefetchDeferred {
            kid: Some("k".into()),
            retry_after: Duration::from_millis(4_200),
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), None);
        assert!(e.challenge(Some("x")).is_none());
        let response: http::Response<String> = e.to_response(Some("x"));
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(response.body(), "");
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
        // Only this error says when to come back.
        let other: http::Response<String> =
            Error::KeysUnavailable(FetchError::Status(502)).to_response(None);
        assert!(other.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn response_carries_json_body_and_no_store() {
        let response: http::Response<String> = Error::Expired(1).to_response(Some("r"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.body(),
            r#"{"error":"invalid_token","error_description":"the access token expired"}"#
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn descriptions_use_only_allowed_characters() {
        let all = [
            Error::MultipleCredentials,
            Error::Malformed("x"),
            Error::Expired(0),
            Error::NotYetValid(0),
            Error::WrongAudience,
            Error::Inactive,
            Error::InsufficientScope("a".into()),
            Error::BadSignature,
        ];
        for e in all {
            let d = e.description().expect("description");
            assert!(is_valid_realm(d), "{d}");
        }
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("orders.read"));
        assert!(is_scope_token("https://orders/read"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope_token(bad), "{bad}");
        }
    }
}

//! Errors in three layers: [`ErrorCode`] is what goes on the wire (RFC 6749 §5.2 and
//! the extensions' registries), [`Error`] carries the code with a public description,
//! and the precise internal reason is logged where the error is made.

use std::borrow::Cow;
use std::fmt;

/// The OAuth error codes Tessera answers with. The server maps each to one HTTP
/// status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2
    InvalidRequest,
    /// RFC 6749 §5.2: 401 with `WWW-Authenticate`.
    InvalidClient,
    /// RFC 6749 §5.2
    InvalidGrant,
    /// RFC 6749 §5.2
    UnauthorizedClient,
    /// RFC 6749 §5.2
    UnsupportedGrantType,
    /// RFC 6749 §5.2
    InvalidScope,
    /// RFC 8707 §2
    InvalidTarget,
    /// RFC 6749 §4.1.2.1
    AccessDenied,
    /// RFC 7009 §2.2.1
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1; the precise cause is only logged.
    ServerError,
    /// RFC 6749 §4.1.2.1: a store or dependency is briefly unavailable, or (with
    /// `retry_after`) too many failed attempts.
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6
    LoginRequired,
    /// OIDC Core §3.1.2.6
    ConsentRequired,
    /// OIDC Core §3.1.2.6
    InteractionRequired,
    /// OIDC Core §3.1.2.6
    RequestNotSupported,
    /// OIDC Core §3.1.2.6
    RequestUriNotSupported,
    /// RFC 6750 §3.1: the access token is missing, expired, revoked or malformed.
    InvalidToken,
    /// RFC 6750 §3.1
    InsufficientScope,
    /// RFC 8628 §3.5
    AuthorizationPending,
    /// RFC 8628 §3.5
    SlowDown,
    /// RFC 8628 §3.5
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error: the wire code and a description safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// Seconds to wait before retrying, for throttled requests (HTTP 429).
    pub retry_after: Option<i64>,
}

impl Error {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Error {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// Every client authentication failure looks the same from outside, so that
    /// the answer does not tell which client IDs exist.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    /// Too many failed attempts: refused even if this one would succeed.
    pub fn throttled(retry_after: i64) -> Self {
        Error {
            code: ErrorCode::TemporarilyUnavailable,
            description: "too many failed attempts; wait before trying again".into(),
            retry_after: Some(retry_after),
        }
    }

    /// An internal failure; the cause is logged here and never sent to the peer.
    pub fn server_error(cause: &dyn fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for Error {}

impl From<crate::store::StoreError> for Error {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                Error::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the server's store is unavailable; retry shortly",
                )
            }
            other => Error::server_error(&other),
        }
    }
}

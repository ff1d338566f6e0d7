//! The one place where core errors become HTTP responses of the token,
//! introspection and revocation endpoints (RFC 6749 §5.2).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::{Error, ErrorCode};

/// A core error as a JSON error response.
#[derive(Debug)]
pub struct OAuthError(pub Error);

impl From<Error> for OAuthError {
    fn from(err: Error) -> Self {
        OAuthError(err)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// The HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        // RFC 6749 §5.2: 401 when the client tried to authenticate; we always
        // answer 401 with a challenge so that every client learns the scheme.
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidGrant
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::InvalidScope
        | ErrorCode::InvalidTarget
        | ErrorCode::AccessDenied
        | ErrorCode::UnsupportedTokenType
        | ErrorCode::UnsupportedResponseType
        | ErrorCode::LoginRequired
        | ErrorCode::ConsentRequired
        | ErrorCode::InteractionRequired
        | ErrorCode::RequestNotSupported
        | ErrorCode::RequestUriNotSupported
        | ErrorCode::AuthorizationPending
        | ErrorCode::SlowDown
        | ErrorCode::ExpiredToken => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.0.retry_after {
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
            None => status_of(self.0.code),
        };
        let body = Body {
            error: self.0.code.as_str(),
            error_description: &self.0.description,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = self.0.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if self.0.code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

//! The one place where core errors become HTTP responses: JSON for the token,
//! introspection, revocation and device endpoints (RFC 6749 §5.2), a Bearer
//! challenge for the server's own resources (RFC 6750 §3), and a redirect or an
//! error page at the authorization endpoint (RFC 6749 §4.1.2.1). The precise
//! reason is logged here; what the client sees is the wire code and the
//! public description only.

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
        | ErrorCode::ExpiredToken
        | ErrorCode::InvalidRedirectUri
        | ErrorCode::InvalidClientMetadata => StatusCode::BAD_REQUEST,
    }
}

/// What the metrics count a refusal under.
fn refusal(error: &Error) -> crate::metrics::Refusal {
    crate::metrics::Refusal {
        code: error.code(),
        reason: error.reason,
    }
}

/// Logs why a request was refused: the reason, never sent, is what an
/// operator needs.
fn log(error: &Error) {
    if error.code() == ErrorCode::ServerError || error.code() == ErrorCode::TemporarilyUnavailable {
        tracing::warn!(reason = ?error.reason, code = error.code().as_str(), "request refused");
    } else {
        tracing::debug!(reason = ?error.reason, code = error.code().as_str(), "request refused");
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        log(&self.0);
        let code = self.0.code();
        let status = match self.0.retry_after {
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
            None => status_of(code),
        };
        let body = Body {
            error: code.as_str(),
            error_description: &self.0.description,
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(refusal(&self.0));
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = self.0.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// An error of a resource of the server's own (`/userinfo`): the RFC 6750 §3
/// challenge with the code, and the same as JSON.
pub fn bearer_error(error: &Error) -> Response {
    log(error);
    let code = error.code();
    let challenge = format!(
        "Bearer realm=\"tessera\", error=\"{}\", error_description=\"{}\"",
        code.as_str(),
        error.description.replace(['"', '\\'], "'")
    );
    let body = Body {
        error: code.as_str(),
        error_description: &error.description,
    };
    let mut response = (status_of(code), Json(body)).into_response();
    response.extensions_mut().insert(refusal(error));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An error at the authorization endpoint: a page when the client or its
/// redirect URI cannot be trusted (never a redirect, RFC 6749 §4.1.2.1), else
/// the error sent back to the client.
pub fn authorize_error(
    error: tessera_core::authorize::AuthorizeError,
    after_post: bool,
) -> Response {
    use tessera_core::authorize::AuthorizeError;
    match error {
        AuthorizeError::Page(message) => {
            tracing::debug!(%message, "authorization request refused with an error page");
            crate::pages::error_page(StatusCode::BAD_REQUEST, &message)
        }
        AuthorizeError::Redirect(redirect) => crate::pages::deliver(redirect, after_post),
    }
}

//! HTTP handlers: extract, call one core method, map the result.

pub mod admin;
pub mod device;
pub mod discovery;
pub mod health;
pub mod people;
pub mod portal;
pub mod registration;
pub mod token;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tessera_core::Error;
use tessera_core::params::Params;

use crate::oauth_error::OAuthError;

/// The largest body the OAuth endpoints read (SPEC.md default: 64 KiB).
pub const MAX_FORM_BODY: usize = 64 * 1024;

/// An `application/x-www-form-urlencoded` body (RFC 6749 §3.2), bounded, with
/// repeated parameters and bytes that are not UTF-8 refused. Anything else is an
/// OAuth `invalid_request`, in the OAuth error format, never the framework's own
/// rejection.
#[derive(Debug)]
pub struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
        let body = form_body(req, state).await?;
        Ok(Form(Params::from_form(&body)?))
    }
}

/// The authorization endpoint's POSTed form: like [`Form`], except that a
/// parameter that is not UTF-8 or is repeated is left for the endpoint to
/// report once it knows where errors may go
/// ([`Params::from_form_deferring_errors`]).
#[derive(Debug)]
pub struct AuthorizationForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for AuthorizationForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
        let body = form_body(req, state).await?;
        Ok(AuthorizationForm(Params::from_form_deferring_errors(
            &body,
        )?))
    }
}

/// The body of a form request, bounded by [`MAX_FORM_BODY`] and by the body
/// deadline that `connections` sets.
async fn form_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Error::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if timed_out(&e) {
            Error::invalid_request("the request body did not arrive in time")
        } else {
            Error::invalid_request("the request body is too large or unreadable")
        }
    })
}

/// Whether reading a body failed on the body deadline.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The `Authorization` header as text; a header that is not visible ASCII is
/// passed on as an unparseable value so that it fails client authentication.
pub fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""))
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let (scheme, token) = authorization(headers)?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The pages' stylesheet and the portal's script: compiled in, cached for a
/// day, versioned by the binary.
pub async fn stylesheet() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/tessera.css"),
    )
}

pub async fn portal_script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/portal.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}

pub async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "not_found", "error_description": "no such endpoint"})),
    )
}

/// The caller's IP address (for brute-force protection and limits): the
/// socket's peer, or behind a trusted proxy the address it forwards for (see
/// [`crate::client_address`]).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            crate::client_address::of_request(&parts.extensions).map(|ip| ip.to_string()),
        ))
    }
}

/// A form posted from one of Tessera's own pages: readable, and carrying the CSRF
/// token that belongs to this browser. Anything else gets an error page.
#[derive(Debug)]
pub struct PageForm(pub Params);

impl FromRequest<crate::app::AppState> for PageForm {
    type Rejection = axum::response::Response;

    async fn from_request(
        req: Request,
        state: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        use crate::pages::{csrf_valid, error_page};
        let jar = axum_extra::extract::cookie::CookieJar::from_headers(req.headers());
        let Form(params) = Form::from_request(req, state)
            .await
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "The form could not be read."))?;
        if !csrf_valid(&state.provider, &jar, params.get("csrf")) {
            return Err(error_page(StatusCode::FORBIDDEN, people::BAD_CSRF));
        }
        Ok(PageForm(params))
    }
}

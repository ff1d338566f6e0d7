//! The token (RFC 6749 §3.2), introspection (RFC 7662) and revocation (RFC 7009)
//! endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ClientAddress, Form, authorization};
use crate::app::AppState;
use crate::oauth_error::OAuthError;

pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(params): Form,
) -> Response {
    let grant = crate::metrics::GrantLabel(tessera_core::provider::grant_label(&params));
    let (result, client) = state
        .provider
        .token_with_client(authorization(&headers), &params, address.as_deref())
        .await;
    let mut response = match result {
        Ok(issued) => no_store(Json(issued).into_response()),
        Err(error) => OAuthError(error).into_response(),
    };
    response.extensions_mut().insert(grant);
    with_client(response, client)
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(params): Form,
) -> Response {
    let (result, client) = state
        .provider
        .introspect_with_client(authorization(&headers), &params)
        .await;
    let response = match result {
        Ok(body) => no_store(Json(body).into_response()),
        Err(error) => OAuthError(error).into_response(),
    };
    with_client(response, client)
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(params): Form,
) -> Response {
    let (result, client) = state
        .provider
        .revoke_with_client(authorization(&headers), &params)
        .await;
    let response = match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => OAuthError(error).into_response(),
    };
    with_client(response, client)
}

/// Names the authenticated client in the request log.
fn with_client(mut response: Response, client: Option<String>) -> Response {
    if let Some(client) = client {
        response
            .extensions_mut()
            .insert(crate::request_log::ClientLabel(client));
    }
    response
}

/// Token responses must not be cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

//! The registration endpoint (RFC 7591 §3) and each registered client's
//! configuration endpoint (RFC 7592 §2): JSON in, JSON out; the protocol is
//! `tessera_core::dynamic_registration`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::error::{Error, ErrorCode, Reason};

use super::{ClientAddress, bearer_token};
use crate::app::AppState;
use crate::oauth_error::{OAuthError, bearer_error};

/// The body limit of these routes: a metadata document past
/// [`MAX_METADATA_BYTES`](tessera_core::dynamic_registration::MAX_METADATA_BYTES)
/// gets a 413 before it is read whole.
pub const MAX_BODY: usize = tessera_core::dynamic_registration::MAX_METADATA_BYTES;

/// `POST /register`
pub async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Each registration is a client stored for good: without an operator's
    // token, an address gets a few an hour.
    let open = bearer_token(&headers).is_none() && state.provider.settings().open_registration;
    let limited = crate::limits::take(state.limits.registrations.as_ref(), address.as_deref())
        .and_then(|()| {
            if open {
                crate::limits::take(Some(&state.limits.open_registrations), address.as_deref())
            } else {
                Ok(())
            }
        });
    if let Err(error) = limited {
        return failure(error, &headers);
    }
    let result = match json_body(&headers) {
        Ok(()) => {
            state
                .provider
                .register_client(bearer_token(&headers), &body)
                .await
        }
        Err(e) => Err(e),
    };
    answer(result, StatusCode::CREATED, &headers)
}

/// `GET /register/{client_id}`
pub async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = state
        .provider
        .client_configuration(&client_id, bearer_token(&headers))
        .await;
    answer(result, StatusCode::OK, &headers)
}

/// `PUT /register/{client_id}`
pub async fn update(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match json_body(&headers) {
        Ok(()) => {
            state
                .provider
                .update_client_configuration(&client_id, bearer_token(&headers), &body)
                .await
        }
        Err(e) => Err(e),
    };
    answer(result, StatusCode::OK, &headers)
}

/// `DELETE /register/{client_id}`
pub async fn delete(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state
        .provider
        .delete_client_configuration(&client_id, bearer_token(&headers))
        .await
    {
        // RFC 7592 §2.3
        Ok(()) => no_store(StatusCode::NO_CONTENT.into_response()),
        Err(e) => failure(e, &headers),
    }
}

/// The client information as JSON with `status`, or the failure.
fn answer(
    result: Result<serde_json::Map<String, serde_json::Value>, Error>,
    status: StatusCode,
    headers: &HeaderMap,
) -> Response {
    match result {
        Ok(information) => no_store((status, Json(information)).into_response()),
        Err(e) => failure(e, headers),
    }
}

/// RFC 7591 §3.1: the metadata comes as `application/json`.
fn json_body(headers: &HeaderMap) -> Result<(), Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(Error::new(
            Reason::ClientMetadataInvalid,
            "the client metadata is sent as application/json",
        ))
    }
}

/// A refused token gets RFC 6750's challenge (a bare one when no token came,
/// §3.1); everything else the error document of RFC 7591 §3.2.2.
fn failure(error: Error, headers: &HeaderMap) -> Response {
    let response = if error.code() != ErrorCode::InvalidToken {
        OAuthError(error).into_response()
    } else if bearer_token(headers).is_none() {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tessera\""),
        );
        response
    } else {
        bearer_error(&error)
    };
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

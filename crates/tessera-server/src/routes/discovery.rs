//! Metadata and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

pub async fn metadata(State(state): State<AppState>) -> Response {
    let mut response = Json(state.provider.metadata()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The published keys. Verifiers may cache them for `jwks_max_age`; a new key is
/// published a day before it signs, longer than any sane cache.
pub async fn jwks(State(state): State<AppState>) -> Response {
    // Read the keys afresh: a key rotated from the CLI or another instance is
    // published at once. Verifiers cache this document, so it is not a hot path.
    if let Err(e) = state.provider.keys().refresh(state.provider.store()).await {
        tracing::warn!(error = %e, "could not refresh signing keys for the JWKS");
    }
    let max_age = state.provider.settings().jwks_max_age;
    let mut response = Json(state.provider.jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

//! Liveness and readiness for orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;

/// The process answers.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve tokens: the database answers and a signing key is loaded.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let provider = &state.provider;
    let store = provider.store().ping().await;
    let now = provider.clock().now();
    let has_key = provider
        .keys()
        .ring()
        .signing_key(provider.settings().signing_alg, now)
        .is_some();
    match (store, has_key) {
        (Ok(()), true) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        (Err(e), _) => {
            tracing::warn!(error = %e, "readiness: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database"})),
            )
        }
        (Ok(()), false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "no active signing key"})),
        ),
    }
}

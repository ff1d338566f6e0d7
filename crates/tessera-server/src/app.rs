//! The router. `app(state)` builds it, so tests can also drive it in-process.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tessera_core::Provider;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::routes;

#[derive(Debug, Clone)]
pub struct AppState {
    pub provider: Arc<Provider>,
    /// Request budgets per client address.
    pub limits: Arc<crate::limits::RequestLimits>,
    /// Served at `/metrics` on this router; `None` when they are served on
    /// their own listener (or not at all).
    pub metrics: Option<crate::metrics::Metrics>,
}

impl AppState {
    /// The state with the default limits, and metrics at `/metrics`.
    pub fn new(provider: Arc<Provider>) -> Self {
        Self::with_limits(provider, &crate::limits::RateLimits::default())
    }

    pub fn with_limits(provider: Arc<Provider>, limits: &crate::limits::RateLimits) -> Self {
        AppState {
            provider,
            limits: Arc::new(crate::limits::RequestLimits::new(limits)),
            metrics: crate::metrics::Metrics::install(),
        }
    }
}

/// `/metrics` alone, for `metrics_listen`.
pub fn metrics_app(metrics: crate::metrics::Metrics, provider: Arc<Provider>) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::scrape))
        .with_state((metrics, provider))
}

pub fn app(state: AppState) -> Router {
    let metrics = state
        .metrics
        .clone()
        .map(|metrics| metrics_app(metrics, Arc::clone(&state.provider)));
    let (admin, openapi) = routes::admin::router();
    // Generated once, from the admin API's handlers and types.
    let openapi = Arc::new(openapi);
    Router::new()
        // Admin answers may carry secrets shown once.
        .merge(admin.layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi) }
            }),
        )
        .route("/oauth2/token", post(routes::token::token))
        .route("/oauth2/introspect", post(routes::token::introspect))
        .route("/oauth2/revoke", post(routes::token::revoke))
        .route(
            "/oauth2/authorize",
            get(routes::people::authorize_get).post(routes::people::authorize_post),
        )
        .route("/login", post(routes::people::login))
        .route(
            "/oauth2/device/code",
            post(routes::device::device_authorization),
        )
        .route(
            "/device",
            get(routes::device::entry).post(routes::device::submit),
        )
        .route("/device/decision", post(routes::device::decision))
        .route("/consent", post(routes::people::consent))
        .route(
            "/userinfo",
            get(routes::people::userinfo).post(routes::people::userinfo),
        )
        .route(
            "/oauth2/logout",
            get(routes::people::logout_get).post(routes::people::logout_post),
        )
        .route("/jwks.json", get(routes::discovery::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(routes::discovery::metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::discovery::metadata),
        )
        .route(
            tessera_core::dynamic_registration::REGISTRATION_PATH,
            post(routes::registration::register)
                .layer(DefaultBodyLimit::max(routes::registration::MAX_BODY)),
        )
        .route(
            &format!(
                "{}/{{client_id}}",
                tessera_core::dynamic_registration::REGISTRATION_PATH
            ),
            get(routes::registration::read)
                .put(routes::registration::update)
                .delete(routes::registration::delete)
                .layer(DefaultBodyLimit::max(routes::registration::MAX_BODY)),
        )
        .route("/portal", get(routes::portal::home))
        .route("/portal/apps/new", get(routes::portal::new_form))
        .route("/portal/apps", post(routes::portal::create))
        .route(
            "/portal/apps/{id}",
            get(routes::portal::show).post(routes::portal::update),
        )
        .route("/portal/apps/{id}/rotate", post(routes::portal::rotate))
        .route("/portal/apps/{id}/delete", post(routes::portal::delete))
        .route(
            "/portal/inspect",
            get(routes::portal::inspect_form).post(routes::portal::inspect),
        )
        .route("/assets/tessera.css", get(routes::stylesheet))
        .route("/assets/portal.js", get(routes::portal_script))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        // Inside routing, so that each request is counted under its route's
        // template.
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(routes::MAX_FORM_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
        .merge(metrics.unwrap_or_default())
        .layer(axum::middleware::from_fn(crate::request_log::log_request))
}

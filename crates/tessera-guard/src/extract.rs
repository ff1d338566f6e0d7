//! The axum extractor.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::{AccessToken, Error, Verifier};

/// The verified token of the request, as a handler argument.
///
/// Behind a [`GuardLayer`](crate::GuardLayer) it takes the token the layer
/// verified. Without the layer it verifies the request itself with the
/// [`Verifier`] found in the request extensions (install one with
/// `axum::Extension(verifier)`), checking the verifier's required scopes.
/// Handlers that need more scopes call [`AccessToken::require_scopes`].
///
/// ```no_run
/// use axum::{Extension, Router, routing::get};
/// use tessera_guard::{Authenticated, Rejection, Verifier};
///
/// async fn cancel(Authenticated(token): Authenticated) -> Result<String, Rejection> {
///     token.require_scopes(&["orders.write"])?;
///     Ok(format!("cancelled for {}", token.subject()))
/// }
///
/// # async fn run(verifier: Verifier) {
/// let app: Router = Router::new()
///     .route("/orders/cancel", get(cancel))
///     .layer(Extension(verifier));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessToken);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        if let Some(token) = parts.extensions.get::<AccessToken>() {
            return Ok(Authenticated(token.clone()));
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            // Logged as an error when the rejection is answered.
            return Err(Rejection::from(Error::NotConfigured));
        };
        match verifier.verify_request(&parts.headers).await {
            Ok(token) => Ok(Authenticated(token)),
            Err(error) => Err(Rejection {
                error,
                realm: Some(verifier.realm_arc()),
            }),
        }
    }
}

/// A refused request, answered per RFC 6750 (see [`Error::to_response`]).
/// Converts from [`Error`], so handlers can use `?` on
/// [`AccessToken::require_scopes`]; that answer has no `realm`, which RFC
/// 6750 §3 allows.
#[derive(Debug)]
pub struct Rejection {
    error: Error,
    realm: Option<Arc<str>>,
}

impl Rejection {
    pub fn error(&self) -> &Error {
        &self.error
    }

    pub fn into_error(self) -> Error {
        self.error
    }
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Rejection { error, realm: None }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        crate::layer::reject(&self.error, self.realm.as_deref())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Rejection::from(self).into_response()
    }
}

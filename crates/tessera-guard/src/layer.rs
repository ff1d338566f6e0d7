//! A tower layer that lets only requests with a valid token through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::error::{SetupError, is_scope_token};
use crate::{AccessToken, Error, Verifier};

/// Verifies the bearer token of every request before the inner service sees
/// it. A request with a valid token reaches the inner service with the
/// [`AccessToken`] (and the [`Verifier`]) in its extensions; any other gets
/// the RFC 6750 answer: `401` with a `WWW-Authenticate` challenge, `403
/// insufficient_scope`, or `503` when the guard cannot reach Tessera.
///
/// Works with any `http`-based tower stack whose response body can be built
/// from a `String` (axum's `Body`, `http_body_util::Full<Bytes>`, ...).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl GuardLayer {
    pub fn new(verifier: Verifier) -> Self {
        GuardLayer {
            verifier,
            scopes: Arc::new([]),
        }
    }

    /// Scopes the routes behind this layer need, on top of the verifier's.
    pub fn require_scopes<I, S>(self, scopes: I) -> Result<Self, SetupError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = self.scopes.to_vec();
        for scope in scopes {
            let scope = scope.into();
            if !is_scope_token(&scope) {
                return Err(SetupError::InvalidScope(scope));
            }
            all.push(scope);
        }
        Ok(GuardLayer {
            verifier: self.verifier,
            scopes: all.into(),
        })
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            verifier: self.verifier.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

/// The service made by [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    verifier: Verifier,
    scopes: Arc<[String]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one that must be called;
        // leave a fresh clone behind for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = Arc::clone(&self.scopes);
        Box::pin(async move {
            let outcome = match verifier.verify_request(request.headers()).await {
                Ok(token) => token.require_scopes(&scopes).map(|()| token),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(token) => {
                    request.extensions_mut().insert::<AccessToken>(token);
                    request.extensions_mut().insert(verifier);
                    inner.call(request).await
                }
                Err(error) => Ok(reject(&error, Some(verifier.realm()))),
            }
        })
    }
}

/// Logs a refusal at a level fitting whose fault it is, then answers it.
pub(crate) fn reject<B: From<String>>(error: &Error, realm: Option<&str>) -> Response<B> {
    log_refusal(error);
    error.to_response(realm)
}

/// The precise reason goes to the service's log, never on the wire (see
/// [`Error::description`]). Refused tokens are the client's business and
/// can come in floods, so they stay at `debug`; so does a deferred key
/// lookup, which a flood of invented `kid`s causes. A guard that cannot
/// check tokens at all needs the operator.
fn log_refusal(error: &Error) {
    let status = error.status().as_u16();
    match error {
        Error::KeyRefetchDeferred { .. } => {
            tracing::debug!(reason = %error, status, "bearer token not checked yet");
        }
        Error::NotConfigured => {
            tracing::error!(
                reason = %error,
                status,
                "Authenticated used on a route with neither GuardLayer nor Extension(Verifier)"
            );
        }
        _ if error.status().is_server_error() => {
            tracing::warn!(reason = %error, status, "bearer token could not be checked");
        }
        _ => tracing::debug!(reason = %error, status, "bearer token refused"),
    }
}

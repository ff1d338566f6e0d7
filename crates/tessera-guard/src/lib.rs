//! Trust Tessera's access tokens in a Rust service.
//!
//! A [`Verifier`] is built once from the issuer URL. It reads the server's
//! metadata, fetches its JWKS and keeps the keys in memory, so a JWT access
//! token (RFC 9068) is checked without a network round trip. Opaque
//! reference tokens are checked at the introspection endpoint (RFC 7662)
//! with the service's own client credentials, behind a short cache.
//!
//! What a token must pass, strict by default:
//!
//! - a header that is a UTF-8 JSON object without `crit` or `b64`, with
//!   `typ` `at+jwt` (RFC 9068 §4, compared as a media type): ID tokens and
//!   other JWTs from the same issuer are refused;
//! - an algorithm from the allow-list, verified with a key published for
//!   exactly that algorithm: no `none`, no RS256/HS256 confusion (HS256 only
//!   with a configured [`SharedSecret`], never with a JWKS key);
//! - `iss` equal to the configured issuer, as a string; `aud` naming the
//!   configured audience; `exp`, `nbf` and `iat` whole seconds before the
//!   year 10000 and within a small leeway (30 s); `sub`, `client_id`, `jti`
//!   present;
//! - for a reference token, an active answer whose `token_type`, if any, is
//!   `Bearer`;
//! - the required scopes.
//!
//! Keys are cached as long as the JWKS response's `Cache-Control: max-age`
//! allows (clamped to sane bounds). A token with an unknown `kid` triggers a
//! JWKS fetch, so a rotation is picked up at once; a `kid` found missing is
//! remembered, and such fetches are rate-limited, so a flood of invented
//! `kid`s costs the server little. When only the rate limit stands between a
//! `kid` and a fetch, the answer is `503` with `Retry-After`, never a `401`
//! that would make a client discard a token of a brand-new key. While
//! Tessera is unreachable, cached keys keep verifying.
//!
//! Refusals follow RFC 6750 §3: `401` with `WWW-Authenticate: Bearer
//! realm="…", error="invalid_token", error_description="…"` for a
//! malformed, expired, wrongly signed or wrong-audience token, a bare
//! `Bearer realm="…"` challenge when there is no token at all, and `403`
//! with `error="insufficient_scope", scope="…"` when a scope is missing.
//!
//! # Example
//!
//! An axum service whose `GET /orders` needs a token for
//! `https://orders.example` with scope `orders.read`:
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use tessera_guard::{Authenticated, ClientSecret, GuardLayer, Verifier};
//!
//! async fn list_orders(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
//!     // Who is asking, through which client, and on whose behalf.
//!     let delegated_by: Vec<&str> = token.actors().map(|a| a.subject()).collect();
//!     Json(serde_json::json!({
//!         "owner": token.subject(),
//!         "client": token.client_id(),
//!         "via": delegated_by,
//!         "orders": [],
//!     }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::builder("https://id.example.com", "https://orders.example")
//!         .require_scopes(["orders.read"])
//!         // Optional: also accept reference tokens through introspection.
//!         .client_credentials("orders-api", ClientSecret::new(std::env::var("ORDERS_SECRET")?))
//!         .discover()
//!         .await?;
//!
//!     let app = Router::new()
//!         .route("/orders", get(list_orders))
//!         .layer(GuardLayer::new(verifier));
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! Without axum, call [`Verifier::verify_request`] (or [`Verifier::verify`]
//! with a token from elsewhere) and answer errors with
//! [`Error::to_response`].
//!
//! # Features
//!
//! - `axum` (default): the [`Authenticated`] extractor and `IntoResponse`
//!   for [`Rejection`] and [`Error`]. [`GuardLayer`] works without it.

#![forbid(unsafe_code)]

mod bearer;
mod claims;
mod clock;
mod discovery;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod fetch;
mod introspection;
mod jwks;
mod layer;
mod secret;
mod token;
mod verifier;

pub use bearer::bearer_token;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, FetchError, SetupError};
#[cfg(feature = "axum")]
pub use extract::{Authenticated, Rejection};
pub use jwks::RemoteJwks;
pub use layer::{Guard, GuardLayer};
pub use secret::{ClientSecret, SharedSecret};
pub use tessera_jose::Algorithm;
pub use token::{AccessToken, Actor, TokenKind};
pub use verifier::{Verifier, VerifierBuilder};

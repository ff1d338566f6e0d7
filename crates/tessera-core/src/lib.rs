//! Tessera's protocol engine.
//!
//! Everything here is HTTP- and SQL-free: the server crate turns requests into the
//! types of this crate and maps [`Error`] back onto the wire, and the store crate
//! implements the [`store`] traits. Time comes from a [`Clock`], so tests move a
//! fixed clock instead of sleeping.

#![forbid(unsafe_code)]

pub mod assertion;
pub mod authorize;
pub mod catalog;
pub mod client_admin;
pub mod client_auth;
pub mod clock;
pub mod crypto;
pub mod device;
pub mod discovery;
pub mod dynamic_registration;
pub mod error;
pub mod grants;
pub mod inspect;
pub mod introspection;
pub mod keys;
pub mod model;
pub mod oidc;
pub mod params;
pub mod password;
pub mod people;
pub mod pkce;
pub mod portal;
pub mod provider;
pub mod rate_limit;
pub mod registration;
pub mod resources;
pub mod revocation;
pub mod saml;
pub mod scope;
pub mod settings;
pub mod shared_secret;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod tokens;
pub mod trace;
pub mod trust;
pub mod try_it;
pub mod user_admin;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, ErrorCode, Reason};
pub use provider::Provider;
pub use settings::Settings;

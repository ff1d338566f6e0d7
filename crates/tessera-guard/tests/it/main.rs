//! In-process tests against a stand-in server on 127.0.0.1 (see `fixture`).

// Unwrapping is how tests say "this cannot fail here".
#![allow(clippy::unwrap_used)]

mod fixture;
mod http;
mod introspection;
mod jwt;
mod keys;

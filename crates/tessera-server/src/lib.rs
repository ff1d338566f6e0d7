//! The Tessera server: a thin axum layer over `tessera-core`, its configuration
//! and the `tessera` command line.

#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod client_address;
pub mod client_keys;
pub mod commands;
pub mod config;
pub mod connections;
pub mod issuer_keys;
pub mod limits;
pub mod metrics;
pub mod oauth_error;
pub mod pages;
pub mod request_log;
pub mod routes;
pub mod tls;

pub use app::{AppState, app};

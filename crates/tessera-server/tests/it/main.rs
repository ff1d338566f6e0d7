//! The integration suite: one binary that starts the real `tessera` binary and
//! drives it over HTTP and its CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod in_process;
mod outside;
mod postgres;
mod server;

//! The integration suite: one binary that starts the real `tessera` binary and
//! drives it over HTTP and its CLI.

#[path = "../common/mod.rs"]
mod common;

mod in_process;
mod server;

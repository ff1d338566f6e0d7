//! The integration suite: one binary that starts the real `tessera` binary and
//! drives it over HTTP and its CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod browser;
mod browser_flows;
mod catalog;
mod cli;
mod client_jwt;
mod code_login;
mod connections;
mod delegation;
mod device;
mod faults;
mod flows;
mod guard;
mod in_process;
mod keys;
mod limits;
mod metrics;
mod outside;
mod outside_oidc;
mod people;
mod people_cli;
mod portal;
mod portal_browser;
mod postgres;
mod readme;
mod registration;
mod resource_signing;
mod server;
mod tls;
mod web;

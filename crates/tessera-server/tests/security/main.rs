//! The security suite: attacks from the OAuth 2.0 Security BCP (RFC 9700) and
//! the JWT BCP (RFC 8725), each against the real `tessera` binary over HTTP,
//! organised by the section whose countermeasure it checks. A test here
//! fails if that countermeasure regresses. (Defences tied to one feature are
//! shown in the `it` suite beside it; `SECURITY.md` lists every defence with
//! its test.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../it/flows.rs"]
mod flows;
#[allow(dead_code)]
#[path = "../it/web.rs"]
mod web;

mod accounts;
mod assertions;
mod browser;
mod codes;
mod jwt;
mod redirect;
mod tokens;

//! `tessera issuer …`: the JWT issuers this server trusts.

use std::path::Path;

use serde_json::json;
use tessera_core::store::{Store, StoreError, TrustedIssuer};
use tessera_core::trust::{IssuerKeys, new_trusted_issuer};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json};

/// The largest JWK Set file read.
const MAX_JWKS_FILE: u64 = 64 * 1024;

pub async fn add_issuer(
    store: &dyn Store,
    own_issuer: &str,
    issuer: &str,
    jwks: Option<&Path>,
    jwks_uri: Option<&str>,
    json: bool,
) -> CommandResult {
    let text;
    let keys = match (jwks, jwks_uri) {
        (Some(path), None) => {
            text = read_bounded(path)?;
            IssuerKeys::Inline(&text)
        }
        (None, Some(uri)) => IssuerKeys::Uri(uri),
        _ => {
            return Err(CommandError(
                "give the issuer's keys with exactly one of --jwks FILE and --jwks-uri URL".into(),
            ));
        }
    };
    let trusted = new_trusted_issuer(own_issuer, issuer, keys, SystemClock.now())
        .map_err(|e| CommandError(e.message))?;
    store
        .insert_trusted_issuer(&trusted)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                CommandError(format!("issuer {issuer:?} is trusted already"))
            }
            other => other.into(),
        })?;
    if json {
        print_json(&describe(&trusted));
    } else {
        println!("trusted issuer {issuer}");
        print_text(&trusted);
    }
    Ok(())
}

pub async fn list_issuers(store: &dyn Store, json: bool) -> CommandResult {
    let issuers = store.trusted_issuers().await?;
    if json {
        print_json(&serde_json::Value::Array(
            issuers.iter().map(describe).collect(),
        ));
    } else if issuers.is_empty() {
        println!("no trusted issuers");
    } else {
        for issuer in &issuers {
            println!("{}", issuer.issuer);
            print_text(issuer);
        }
    }
    Ok(())
}

pub async fn remove_issuer(store: &dyn Store, issuer: &str, json: bool) -> CommandResult {
    if !store.delete_trusted_issuer(issuer).await? {
        return Err(CommandError(format!("issuer {issuer:?} is not trusted")));
    }
    if json {
        print_json(&json!({ "issuer": issuer, "removed": true }));
    } else {
        println!("issuer {issuer} is no longer trusted");
    }
    Ok(())
}

fn describe(issuer: &TrustedIssuer) -> serde_json::Value {
    json!({
        "issuer": issuer.issuer,
        "jwks_uri": issuer.jwks_uri,
        "key_ids": issuer.jwks.as_ref().map(|set| {
            set.keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>()
        }),
        "created_at": issuer.created_at,
    })
}

fn print_text(issuer: &TrustedIssuer) {
    match (&issuer.jwks, &issuer.jwks_uri) {
        (Some(set), _) => println!("  keys:    {} registered", set.keys.len()),
        (None, Some(uri)) => println!("  keys:    published at {uri}"),
        (None, None) => println!("  keys:    none"),
    }
    println!("  added:   {}", format_time(issuer.created_at));
}

pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, CommandError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .map_err(|e| CommandError(format!("cannot read {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.take(MAX_JWKS_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| CommandError(format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_JWKS_FILE {
        return Err(CommandError(format!(
            "{} is larger than {MAX_JWKS_FILE} bytes",
            path.display()
        )));
    }
    Ok(text)
}

//! `tessera issuer …` and `tessera saml-idp …`: the JWT issuers and SAML 2.0
//! identity providers this server trusts.

use std::path::Path;

use serde_json::json;
use tessera_core::store::{SamlIdp, Store, StoreError, TrustedIssuer};
use tessera_core::trust::{IssuerKeys, new_saml_idp, new_trusted_issuer};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json, read_key_file};

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
            text = read_key_file(path)?;
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

pub async fn add_saml_idp(
    store: &dyn Store,
    entity_id: &str,
    certificate: &Path,
    json: bool,
) -> CommandResult {
    let pem = String::from_utf8(read_key_file(certificate)?)
        .map_err(|_| CommandError(format!("{} is not a PEM file", certificate.display())))?;
    let idp =
        new_saml_idp(entity_id, &pem, SystemClock.now()).map_err(|e| CommandError(e.message))?;
    store.insert_saml_idp(&idp).await.map_err(|e| match e {
        StoreError::Conflict(_) => CommandError(format!(
            "identity provider {entity_id:?} is configured already"
        )),
        other => other.into(),
    })?;
    if json {
        print_json(&describe_idp(&idp));
    } else {
        println!("trusted SAML identity provider {entity_id}");
        println!("  added:   {}", format_time(idp.created_at));
    }
    Ok(())
}

pub async fn list_saml_idps(store: &dyn Store, json: bool) -> CommandResult {
    let idps = store.saml_idps().await?;
    if json {
        print_json(&serde_json::Value::Array(
            idps.iter().map(describe_idp).collect(),
        ));
    } else if idps.is_empty() {
        println!("no SAML identity providers");
    } else {
        for idp in &idps {
            println!("{}", idp.entity_id);
            println!("  added:   {}", format_time(idp.created_at));
        }
    }
    Ok(())
}

pub async fn remove_saml_idp(store: &dyn Store, entity_id: &str, json: bool) -> CommandResult {
    if !store.delete_saml_idp(entity_id).await? {
        return Err(CommandError(format!(
            "identity provider {entity_id:?} is not configured"
        )));
    }
    if json {
        print_json(&json!({ "entity_id": entity_id, "removed": true }));
    } else {
        println!("identity provider {entity_id} is no longer trusted");
    }
    Ok(())
}

fn describe_idp(idp: &SamlIdp) -> serde_json::Value {
    let key = tessera_core::saml::IdpCertificate::from_pem(&idp.certificate_pem)
        .map(|c| c.key_algorithm())
        .unwrap_or("unusable");
    json!({
        "entity_id": idp.entity_id,
        "key_algorithm": key,
        "created_at": idp.created_at,
    })
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

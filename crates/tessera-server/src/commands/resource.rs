//! `tessera resource …`

use serde_json::{Value, json};
use tessera_core::Provider;
use tessera_core::model::{AcceptedTokens, Resource, TokenFormat};
use tessera_core::resources::{ResourceChange, ResourceSettings, SavedResource};
use tessera_core::scope::Scope;
use tessera_core::store::Store;
use tessera_jose::Algorithm;

use super::{CommandError, CommandResult, print_json};

pub async fn create(
    provider: &Provider,
    audience: &str,
    scope: &str,
    token_format: Option<&str>,
    accepts: &str,
    signing_alg: Option<&str>,
    json: bool,
) -> CommandResult {
    let settings = ResourceSettings {
        scopes: parse_scope(scope)?,
        token_format: token_format.map(str::parse::<TokenFormat>).transpose()?,
        accepts: accepts.parse::<AcceptedTokens>()?,
        signing_alg: signing_alg.map(|a| parse_alg(a, "")).transpose()?,
    };
    let saved = provider.create_resource(audience, settings).await?;
    report(
        provider,
        &saved,
        &format!("resource {audience} created"),
        json,
    );
    Ok(())
}

/// The options of `resource update`, as given.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub scope: Option<&'a str>,
    pub token_format: Option<&'a str>,
    pub accepts: Option<&'a str>,
    pub signing_alg: Option<&'a str>,
}

pub async fn update(
    provider: &Provider,
    audience: &str,
    change: Change<'_>,
    json: bool,
) -> CommandResult {
    let change = ResourceChange {
        scopes: change.scope.map(parse_scope).transpose()?,
        token_format: change
            .token_format
            .map(|f| match f {
                "default" => Ok(None),
                other => other.parse::<TokenFormat>().map(Some),
            })
            .transpose()?,
        accepts: change
            .accepts
            .map(str::parse::<AcceptedTokens>)
            .transpose()?,
        signing_alg: change
            .signing_alg
            .map(|a| match a {
                "default" => Ok(None),
                other => parse_alg(other, ", or default").map(Some),
            })
            .transpose()?,
    };
    let saved = provider.update_resource(audience, change).await?;
    let headline = if saved.changed {
        format!("updated resource {audience}")
    } else {
        format!("resource {audience} unchanged")
    };
    report(provider, &saved, &headline, json);
    Ok(())
}

pub async fn rotate_secret(provider: &Provider, audience: &str, json: bool) -> CommandResult {
    let saved = provider.rotate_resource_secret(audience).await?;
    report(
        provider,
        &saved,
        &format!("new shared secret for {audience}"),
        json,
    );
    Ok(())
}

pub async fn list(store: &dyn Store, json: bool) -> CommandResult {
    let resources = store.resources().await?;
    if json {
        print_json(&Value::Array(resources.iter().map(describe).collect()));
    } else if resources.is_empty() {
        println!("no resources");
    } else {
        for r in &resources {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.audience,
                r.token_format.map_or("-", |f| f.as_str()),
                r.accepts.as_str(),
                r.signing_alg.map_or("-", |a| a.as_str()),
                r.scopes
            );
        }
    }
    Ok(())
}

/// Prints what a command did; a new secret is shown here and never again.
fn report(provider: &Provider, saved: &SavedResource, headline: &str, json: bool) {
    let resource = &saved.resource;
    if json {
        let mut out = describe(resource);
        out["changed"] = json!(saved.changed);
        if let Some(secret) = &saved.secret {
            out["shared_secret"] = json!(secret.value);
        }
        if let Some(key) = &saved.new_key {
            out["new_signing_key"] = json!({"kid": key.kid, "alg": key.alg.as_str()});
        }
        if let Some(kid) = &saved.dropped_secret {
            out["retired_secret_kid"] = json!(kid);
        }
        print_json(&out);
        return;
    }
    println!("{headline}");
    let alg = resource.signing_alg.map_or_else(
        || format!("{} (the server's)", provider.settings().signing_alg),
        |a| a.to_string(),
    );
    println!("signing_alg:   {alg}");
    if let Some(key) = &saved.new_key {
        println!(
            "made the first {} signing key, {}: published in the JWKS now",
            key.alg, key.kid
        );
    }
    if let Some(secret) = &saved.secret {
        println!("shared_secret: {}", secret.value);
        if let Some(kid) = resource.secret_kid() {
            println!("kid:           {kid}");
        }
        println!(
            "(shown only now. The API verifies its HS256 tokens with this string as is: \
             its characters are the key. Tessera keeps it sealed with the key-encryption key.)"
        );
    }
    if let Some(kid) = &saved.dropped_secret {
        println!("tokens signed with the secret {kid} are no longer accepted here");
    }
}

/// A resource as the CLI shows it: the `kid` of its secret, never the secret.
fn describe(resource: &Resource) -> Value {
    json!({
        "audience": resource.audience,
        "scope": resource.scopes.to_string(),
        "token_format": resource.token_format.map(|f| f.as_str()),
        "accepts": resource.accepts.as_str(),
        "signing_alg": resource.signing_alg.map(|a| a.as_str()),
        "secret_kid": resource.secret_kid(),
    })
}

fn parse_scope(text: &str) -> Result<Scope, CommandError> {
    Scope::parse(text).map_err(|e| CommandError(e.description.into()))
}

fn parse_alg(text: &str, or: &str) -> Result<Algorithm, CommandError> {
    text.parse::<Algorithm>().map_err(|_| {
        CommandError(format!(
            "--signing-alg {text:?}: give ES256, RS256, PS256, EdDSA or HS256 (exact case){or}"
        ))
    })
}

//! `tessera resource …`

use serde_json::{Value, json};
use tessera_core::model::{AcceptedTokens, Resource, TokenFormat};
use tessera_core::scope::Scope;
use tessera_core::store::{Store, StoreError};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, print_json};
use tessera_core::registration::check_audience;

pub async fn create(
    store: &dyn Store,
    audience: &str,
    scope: &str,
    token_format: Option<&str>,
    accepts: &str,
    json: bool,
) -> CommandResult {
    check_audience(audience).map_err(|e| CommandError(e.message))?;
    let resource = Resource {
        audience: audience.to_owned(),
        scopes: Scope::parse(scope).map_err(|e| CommandError(e.description.into()))?,
        token_format: token_format.map(str::parse::<TokenFormat>).transpose()?,
        accepts: accepts.parse::<AcceptedTokens>()?,
        created_at: SystemClock.now(),
    };
    store
        .insert_resource(&resource)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                CommandError(format!("resource {audience:?} already exists"))
            }
            other => other.into(),
        })?;
    if json {
        print_json(&describe(&resource));
    } else {
        println!("resource {audience} created");
    }
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
                "{}\t{}\t{}\t{}",
                r.audience,
                r.token_format.map_or("-", |f| f.as_str()),
                r.accepts.as_str(),
                r.scopes
            );
        }
    }
    Ok(())
}

fn describe(resource: &Resource) -> Value {
    json!({
        "audience": resource.audience,
        "scope": resource.scopes.to_string(),
        "token_format": resource.token_format.map(|f| f.as_str()),
        "accepts": resource.accepts.as_str(),
    })
}

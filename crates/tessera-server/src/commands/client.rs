//! `tessera client …`

use std::path::Path;

use serde_json::{Value, json};
use tessera_core::client_admin::{self, ClientChanges, ClientKeys, Created, NewClient, Updated};
use tessera_core::client_auth::NewSecret;
use tessera_core::crypto::KeyEncryptionKey;
use tessera_core::model::{
    Client, ClientAuthMethod, ClientKind, GrantType, IntrospectionPolicy, TokenFormat,
};
use tessera_core::registration::parse_client_jwks;
use tessera_core::scope::Scope;
use tessera_core::store::Store;
use tessera_core::{Clock, SystemClock};
use tessera_jose::JwkSet;

use super::{CommandError, CommandResult, print_json, read_key_file};
use crate::cli::{ClientCreate, ClientUpdate};

/// Loads the key-encryption key; asked for only when a secret must be sealed
/// (client_secret_jwt), so other commands work without the key file.
pub trait KekLoader: FnOnce() -> Result<KeyEncryptionKey, CommandError> {}
impl<F: FnOnce() -> Result<KeyEncryptionKey, CommandError>> KekLoader for F {}

/// The loader as the core asks for it.
fn kek_for_core(kek: impl KekLoader) -> impl FnOnce() -> Result<KeyEncryptionKey, String> {
    || kek().map_err(|e| e.0)
}

pub async fn create(store: &dyn Store, args: ClientCreate, kek: impl KekLoader) -> CommandResult {
    let new = NewClient {
        id: args.id,
        kind: args
            .kind
            .as_deref()
            .map(str::parse::<ClientKind>)
            .transpose()?,
        public: args.public,
        auth_method: args
            .auth_method
            .as_deref()
            .map(str::parse::<ClientAuthMethod>)
            .transpose()?,
        grants: parse_grants(&args.grants)?,
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        scopes: parse_scope(&args.scope)?,
        audiences: args.audiences,
        token_format: args
            .token_format
            .as_deref()
            .map(str::parse::<TokenFormat>)
            .transpose()?,
        access_token_ttl: args.access_token_ttl,
        introspection: args.introspection.parse::<IntrospectionPolicy>()?,
        require_pkce: !args.no_pkce,
        id_token_alg: args.id_token_alg.as_deref().map(parse_alg).transpose()?,
        jwks: args.jwks.as_deref().map(read_jwks).transpose()?,
        jwks_uri: args.jwks_uri,
        impersonation: args.impersonation,
        serves: args.serves,
        ..NewClient::named(args.name)
    };
    let Created { client, secret } =
        client_admin::create(store, new, SystemClock.now(), kek_for_core(kek)).await?;
    if args.json.json {
        let mut out = json!({"client_id": client.id});
        if let Some(secret) = &secret {
            out["client_secret"] = json!(secret.secret);
        }
        print_json(&out);
    } else {
        println!("client_id:     {}", client.id);
        if let Some(secret) = &secret {
            print_secret(secret);
        }
    }
    Ok(())
}

fn print_secret(secret: &NewSecret) {
    println!("client_secret: {}", secret.secret);
    if secret.sealed.is_some() {
        println!(
            "(the secret is shown only now; tessera stores its digest, and for client_secret_jwt \
             a copy sealed with the key-encryption key)"
        );
    } else {
        println!("(the secret is shown only now; tessera stores only its digest)");
    }
}

/// Reads a client's JWK Set from a file, by the registration rules.
fn read_jwks(path: &Path) -> Result<JwkSet, CommandError> {
    let text = read_key_file(path)?;
    parse_client_jwks(&text).map_err(|e| CommandError(format!("{}: {e}", path.display())))
}

/// Changes a client's settings. The add and remove options are turned into
/// the new lists here; the core checks the client as it would be stored, by
/// the same rules as a new client, before anything is written.
pub async fn update(store: &dyn Store, args: ClientUpdate, kek: impl KekLoader) -> CommandResult {
    let current = store
        .client(&args.id)
        .await?
        .ok_or_else(|| CommandError(format!("no client {:?}", args.id)))?;
    let mut changes = ClientChanges {
        name: args.name,
        ..ClientChanges::default()
    };
    if !args.add_grants.is_empty() || !args.remove_grants.is_empty() {
        let mut grants = current.grants.clone();
        for grant in parse_grants(&args.remove_grants)? {
            remove(&mut grants, &grant, "grant")?;
        }
        for grant in parse_grants(&args.add_grants)? {
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        changes.grants = Some(grants);
    }
    changes.redirect_uris = edited(
        &current.redirect_uris,
        args.add_redirect_uris,
        &args.remove_redirect_uris,
        "redirect URI",
    )?;
    changes.post_logout_redirect_uris = edited(
        &current.post_logout_redirect_uris,
        args.add_post_logout_redirect_uris,
        &args.remove_post_logout_redirect_uris,
        "post-logout redirect URI",
    )?;
    changes.audiences = edited(
        &current.audiences,
        args.add_audiences,
        &args.remove_audiences,
        "audience",
    )?;
    changes.serves = edited(
        &current.metadata.serves,
        args.add_serves,
        &args.remove_serves,
        "served audience",
    )?;
    if args.impersonation {
        changes.impersonation = Some(true);
    }
    if args.no_impersonation {
        changes.impersonation = Some(false);
    }
    let mut scopes = match &args.scope {
        Some(scope) => parse_scope(scope)?,
        None => current.scopes.clone(),
    };
    if !args.add_scopes.is_empty() || !args.remove_scopes.is_empty() {
        let tokens: Vec<String> = scopes.iter().map(str::to_owned).collect();
        let added = parse_scope(&args.add_scopes.join(" "))?;
        let removed = parse_scope(&args.remove_scopes.join(" "))?;
        let tokens = edited(
            &tokens,
            added.iter().map(str::to_owned).collect(),
            &removed.iter().map(str::to_owned).collect::<Vec<_>>(),
            "scope",
        )?
        .unwrap_or(tokens);
        scopes = parse_scope(&tokens.join(" "))?;
    }
    if args.scope.is_some() || !args.add_scopes.is_empty() || !args.remove_scopes.is_empty() {
        changes.scopes = Some(scopes);
    }
    if let Some(format) = args.token_format.as_deref() {
        changes.token_format = Some(match format {
            "default" => None,
            other => Some(other.parse::<TokenFormat>()?),
        });
    }
    if let Some(ttl) = args.access_token_ttl.as_deref() {
        changes.access_token_ttl = Some(match ttl {
            "default" => None,
            other => Some(other.parse::<i64>().map_err(|_| {
                CommandError(format!(
                    "--access-token-ttl {other:?}: give seconds or `default`"
                ))
            })?),
        });
    }
    if let Some(method) = args.auth_method.as_deref() {
        changes.auth_method = Some(match method {
            "any" => None,
            other => Some(other.parse::<ClientAuthMethod>()?),
        });
    }
    if let Some(path) = &args.jwks {
        changes.keys = Some(ClientKeys::Jwks(read_jwks(path)?));
    }
    if let Some(uri) = &args.jwks_uri {
        changes.keys = Some(ClientKeys::JwksUri(uri.clone()));
    }
    if let Some(policy) = args.introspection.as_deref() {
        changes.introspection = Some(policy.parse::<IntrospectionPolicy>()?);
    }
    if args.no_pkce {
        changes.require_pkce = Some(false);
    }
    if args.require_pkce {
        changes.require_pkce = Some(true);
    }
    if let Some(alg) = args.id_token_alg.as_deref() {
        changes.id_token_alg = Some(match alg {
            "default" => None,
            other => Some(parse_alg(other)?),
        });
    }
    let Updated {
        client,
        changed,
        secret,
    } = client_admin::update(store, &args.id, changes, kek_for_core(kek)).await?;
    if args.json.json {
        let mut out = describe(&client);
        if let Some(secret) = &secret {
            out["client_secret"] = json!(secret.secret);
        }
        print_json(&out);
    } else if !changed {
        println!("client {} unchanged", client.id);
    } else {
        println!("updated client {}", client.id);
        if let Some(secret) = &secret {
            print_secret(secret);
        }
    }
    Ok(())
}

fn parse_grants(names: &[String]) -> Result<Vec<GrantType>, CommandError> {
    let mut grants = Vec::new();
    for name in names {
        let grant: GrantType = name.parse()?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    Ok(grants)
}

fn parse_scope(text: &str) -> Result<Scope, CommandError> {
    Scope::parse(text).map_err(|e| CommandError(e.description.into()))
}

fn parse_alg(text: &str) -> Result<tessera_jose::Algorithm, CommandError> {
    text.parse::<tessera_jose::Algorithm>()
        .map_err(|e| CommandError(e.to_string()))
}

/// The list with values added and removed, or `None` when neither was asked
/// for. Removing a value that is not there is refused (most likely a typo,
/// which would otherwise leave the old value in force).
fn edited(
    current: &[String],
    add: Vec<String>,
    remove_values: &[String],
    what: &str,
) -> Result<Option<Vec<String>>, CommandError> {
    if add.is_empty() && remove_values.is_empty() {
        return Ok(None);
    }
    let mut list = current.to_vec();
    for value in remove_values {
        remove(&mut list, value, what)?;
    }
    for value in add {
        if !list.contains(&value) {
            list.push(value);
        }
    }
    Ok(Some(list))
}

fn remove<T: PartialEq + std::fmt::Display>(
    list: &mut Vec<T>,
    value: &T,
    what: &str,
) -> Result<(), CommandError> {
    let before = list.len();
    list.retain(|v| v != value);
    if list.len() == before {
        return Err(CommandError(format!(
            "the client has no {what} {:?} to remove",
            value.to_string()
        )));
    }
    Ok(())
}

pub async fn list(store: &dyn Store, json: bool) -> CommandResult {
    let clients = store.clients().await?;
    if json {
        print_json(&Value::Array(clients.iter().map(describe).collect()));
    } else if clients.is_empty() {
        println!("no clients");
    } else {
        for client in &clients {
            let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
            println!(
                "{}\t{}\t{}\t{}",
                client.id,
                if client.is_public() {
                    "public"
                } else {
                    "confidential"
                },
                client.name,
                grants.join(",")
            );
        }
    }
    Ok(())
}

pub async fn show(store: &dyn Store, id: &str, json: bool) -> CommandResult {
    let client = store
        .client(id)
        .await?
        .ok_or_else(|| CommandError(format!("no client {id:?}")))?;
    let described = describe(&client);
    if json {
        print_json(&described);
    } else if let Value::Object(map) = described {
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s,
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{key:18} {text}");
        }
    }
    Ok(())
}

pub async fn delete(store: &dyn Store, id: &str, json: bool) -> CommandResult {
    client_admin::delete(store, id).await?;
    if json {
        print_json(&json!({"client_id": id, "deleted": true}));
    } else {
        println!("deleted client {id}");
    }
    Ok(())
}

pub async fn rotate_secret(
    store: &dyn Store,
    id: &str,
    json: bool,
    kek: impl KekLoader,
) -> CommandResult {
    let secret = client_admin::rotate_secret(store, id, kek_for_core(kek)).await?;
    if json {
        print_json(&json!({"client_id": id, "client_secret": secret.secret}));
    } else {
        println!("client_id:     {id}");
        println!("client_secret: {}", secret.secret);
    }
    Ok(())
}

/// `client try`: the ready requests of each of the client's grants.
pub async fn try_it(store: &dyn Store, issuer: &str, id: &str, json: bool) -> CommandResult {
    let client = store
        .client(id)
        .await?
        .ok_or_else(|| CommandError(format!("no client {id:?}")))?;
    let ready = tessera_core::try_it::ready_requests(&client, issuer);
    if json {
        print_json(&serde_json::to_value(&ready)?);
        return Ok(());
    }
    if ready.is_empty() {
        println!("client {id} has no grant to try");
    }
    for grant in &ready {
        println!("# {}", grant.title);
        for step in &grant.steps {
            println!("# {}", step.description);
            if let Some(url) = &step.open {
                println!("{url}");
            }
            if let Some(command) = &step.run {
                println!("{command}");
            }
        }
        println!();
    }
    Ok(())
}

/// A client as `show` and `list --json` print it: the admin API's view.
fn describe(client: &Client) -> Value {
    serde_json::to_value(crate::routes::admin::ClientView::from(client)).unwrap_or_default()
}

//! `tessera client …`

use serde_json::{Value, json};
use tessera_core::crypto::{SecretDigest, random_id, random_token};
use tessera_core::model::{Client, ClientAuthMethod, GrantType, IntrospectionPolicy, TokenFormat};
use tessera_core::registration::check_client;
use tessera_core::scope::Scope;
use tessera_core::store::{Store, StoreError};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json};
use crate::cli::{ClientCreate, ClientUpdate};

pub async fn create(store: &dyn Store, args: ClientCreate) -> CommandResult {
    let id = args.id.unwrap_or_else(random_id);
    let auth_method = args
        .auth_method
        .as_deref()
        .map(str::parse::<ClientAuthMethod>)
        .transpose()?;
    let public = args.public || auth_method == Some(ClientAuthMethod::None);
    let secret = (!public).then(random_token);
    let client = Client {
        id,
        name: args.name,
        secret_digest: secret.as_deref().map(SecretDigest::of),
        auth_method: if public {
            // Kept only when it contradicts, so that the rules can say so.
            auth_method.filter(|m| *m != ClientAuthMethod::None)
        } else {
            auth_method
        },
        grants: parse_grants(&args.grants)?,
        redirect_uris: dedup(args.redirect_uris),
        scopes: parse_scope(&args.scope)?,
        audiences: dedup(args.audiences),
        token_format: args
            .token_format
            .as_deref()
            .map(str::parse::<TokenFormat>)
            .transpose()?,
        access_token_ttl: args.access_token_ttl,
        introspection: args.introspection.parse::<IntrospectionPolicy>()?,
        require_pkce: !args.no_pkce,
        id_token_alg: args.id_token_alg.as_deref().map(parse_alg).transpose()?,
        post_logout_redirect_uris: dedup(args.post_logout_redirect_uris),
        created_at: SystemClock.now(),
    };
    check_client(&client).map_err(|e| CommandError(e.message))?;
    store.insert_client(&client).await.map_err(|e| match e {
        StoreError::Conflict(_) => CommandError(format!("client {:?} already exists", client.id)),
        other => other.into(),
    })?;
    if args.json.json {
        let mut out = json!({"client_id": client.id});
        if let Some(secret) = &secret {
            out["client_secret"] = json!(secret);
        }
        print_json(&out);
    } else {
        println!("client_id:     {}", client.id);
        if let Some(secret) = &secret {
            println!("client_secret: {secret}");
            println!("(the secret is shown only now; tessera stores only its digest)");
        }
    }
    Ok(())
}

/// Changes a client's settings. Every change is checked by the same rules as a
/// new client, on the client as it would be stored, before anything is written.
pub async fn update(store: &dyn Store, args: ClientUpdate) -> CommandResult {
    let mut client = store
        .client(&args.id)
        .await?
        .ok_or_else(|| CommandError(format!("no client {:?}", args.id)))?;
    let before = client.clone();
    if let Some(name) = args.name {
        client.name = name;
    }
    for grant in parse_grants(&args.add_grants)? {
        if !client.grants.contains(&grant) {
            client.grants.push(grant);
        }
    }
    for grant in parse_grants(&args.remove_grants)? {
        remove(&mut client.grants, &grant, "grant")?;
    }
    edit_list(
        &mut client.redirect_uris,
        args.add_redirect_uris,
        &args.remove_redirect_uris,
        "redirect URI",
    )?;
    edit_list(
        &mut client.post_logout_redirect_uris,
        args.add_post_logout_redirect_uris,
        &args.remove_post_logout_redirect_uris,
        "post-logout redirect URI",
    )?;
    edit_list(
        &mut client.audiences,
        args.add_audiences,
        &args.remove_audiences,
        "audience",
    )?;
    if let Some(scope) = &args.scope {
        client.scopes = parse_scope(scope)?;
    }
    if !args.add_scopes.is_empty() || !args.remove_scopes.is_empty() {
        let mut tokens: Vec<String> = client.scopes.iter().map(str::to_owned).collect();
        let added = parse_scope(&args.add_scopes.join(" "))?;
        edit_list(
            &mut tokens,
            added.iter().map(str::to_owned).collect(),
            &parse_scope(&args.remove_scopes.join(" "))?
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            "scope",
        )?;
        client.scopes = parse_scope(&tokens.join(" "))?;
    }
    if let Some(format) = args.token_format.as_deref() {
        client.token_format = match format {
            "default" => None,
            other => Some(other.parse::<TokenFormat>()?),
        };
    }
    if let Some(ttl) = args.access_token_ttl.as_deref() {
        client.access_token_ttl = match ttl {
            "default" => None,
            other => Some(other.parse::<i64>().map_err(|_| {
                CommandError(format!(
                    "--access-token-ttl {other:?}: give seconds or `default`"
                ))
            })?),
        };
    }
    if let Some(method) = args.auth_method.as_deref() {
        let method = match method {
            "any" => None,
            other => Some(other.parse::<ClientAuthMethod>()?),
        };
        if client.is_public() && method.is_some_and(|m| m != ClientAuthMethod::None) {
            return Err(CommandError(
                "a public client has no secret to authenticate with; register a confidential client instead".into(),
            ));
        }
        if !client.is_public() {
            if method == Some(ClientAuthMethod::None) {
                return Err(CommandError(
                    "a confidential client cannot become public; register a public client instead"
                        .into(),
                ));
            }
            client.auth_method = method;
        }
    }
    if let Some(policy) = args.introspection.as_deref() {
        client.introspection = policy.parse::<IntrospectionPolicy>()?;
    }
    if args.no_pkce {
        client.require_pkce = false;
    }
    if args.require_pkce {
        client.require_pkce = true;
    }
    if let Some(alg) = args.id_token_alg.as_deref() {
        client.id_token_alg = match alg {
            "default" => None,
            other => Some(parse_alg(other)?),
        };
    }
    check_client(&client).map_err(|e| CommandError(e.message))?;
    if client != before && !store.update_client(&client).await? {
        return Err(CommandError(format!("no client {:?}", client.id)));
    }
    if args.json.json {
        print_json(&describe(&client));
    } else if client == before {
        println!("client {} unchanged", client.id);
    } else {
        println!("updated client {}", client.id);
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

fn dedup(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Adds and removes values, refusing to remove one that is not there (most
/// likely a typo, which would otherwise leave the old value in force).
fn edit_list(
    list: &mut Vec<String>,
    add: Vec<String>,
    remove_values: &[String],
    what: &str,
) -> Result<(), CommandError> {
    for value in remove_values {
        remove(list, value, what)?;
    }
    for value in add {
        if !list.contains(&value) {
            list.push(value);
        }
    }
    Ok(())
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
    if !store.delete_client(id).await? {
        return Err(CommandError(format!("no client {id:?}")));
    }
    if json {
        print_json(&json!({"client_id": id, "deleted": true}));
    } else {
        println!("deleted client {id}");
    }
    Ok(())
}

pub async fn rotate_secret(store: &dyn Store, id: &str, json: bool) -> CommandResult {
    let secret = random_token();
    if !store
        .set_client_secret(id, &SecretDigest::of(&secret))
        .await?
    {
        return Err(CommandError(format!(
            "no confidential client {id:?} (public clients have no secret)"
        )));
    }
    if json {
        print_json(&json!({"client_id": id, "client_secret": secret}));
    } else {
        println!("client_id:     {id}");
        println!("client_secret: {secret}");
    }
    Ok(())
}

/// A client as the CLI shows it: everything but the secret digest.
fn describe(client: &Client) -> Value {
    json!({
        "client_id": client.id,
        "name": client.name,
        "type": if client.is_public() { "public" } else { "confidential" },
        "auth_method": match (client.is_public(), client.auth_method) {
            (true, _) => "none",
            (false, Some(m)) => m.as_str(),
            (false, None) => "client_secret_basic client_secret_post",
        },
        "grants": client.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "redirect_uris": client.redirect_uris,
        "scope": client.scopes.to_string(),
        "audiences": client.audiences,
        "token_format": client.token_format.map(|f| f.as_str()),
        "access_token_ttl": client.access_token_ttl,
        "require_pkce": client.require_pkce || client.is_public(),
        "id_token_alg": client.id_token_alg.map(|a| a.as_str()),
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "introspection": client.introspection.as_str(),
        "created_at": format_time(client.created_at),
    })
}

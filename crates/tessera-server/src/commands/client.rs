//! `tessera client …`

use std::path::Path;

use serde_json::{Value, json};
use tessera_core::client_auth::NewSecret;
use tessera_core::crypto::{KeyEncryptionKey, random_id};
use tessera_core::model::{
    Client, ClientAuthMethod, ClientKind, ClientMetadata, GrantType, IntrospectionPolicy,
    TokenFormat,
};
use tessera_core::registration::{check_client, parse_client_jwks};
use tessera_core::scope::Scope;
use tessera_core::store::{SecretUpdate, Store, StoreError};
use tessera_core::{Clock, SystemClock};
use tessera_jose::JwkSet;

use super::{CommandError, CommandResult, format_time, print_json, read_key_file};
use crate::cli::{ClientCreate, ClientUpdate};

/// Loads the key-encryption key; asked for only when a secret must be sealed
/// (client_secret_jwt), so other commands work without the key file.
pub trait KekLoader: FnOnce() -> Result<KeyEncryptionKey, CommandError> {}
impl<F: FnOnce() -> Result<KeyEncryptionKey, CommandError>> KekLoader for F {}

pub async fn create(store: &dyn Store, args: ClientCreate, kek: impl KekLoader) -> CommandResult {
    let id = args.id.unwrap_or_else(random_id);
    let auth_method = args
        .auth_method
        .as_deref()
        .map(str::parse::<ClientAuthMethod>)
        .transpose()?;
    if args.public && auth_method.is_some_and(|m| m.is_jwt()) {
        return Err(CommandError(format!(
            "--public contradicts --auth-method {}: a public client has no credentials",
            auth_method.map_or("", ClientAuthMethod::as_str)
        )));
    }
    let kind = args
        .kind
        .as_deref()
        .map(str::parse::<ClientKind>)
        .transpose()?;
    // A kind that runs where no secret can be kept makes a public client,
    // unless an auth method says otherwise (which the rules then refuse).
    let public = args.public
        || auth_method == Some(ClientAuthMethod::None)
        || (auth_method.is_none() && kind.is_some_and(ClientKind::is_public));
    let keyed = auth_method == Some(ClientAuthMethod::PrivateKeyJwt);
    let secret = if public || keyed {
        None
    } else {
        Some(new_secret(&id, auth_method, kek)?)
    };
    let client = Client {
        secret_digest: secret.as_ref().map(|s| s.digest),
        sealed_secret: secret.as_ref().and_then(|s| s.sealed.clone()),
        id,
        name: args.name,
        auth_method: if public {
            // Kept only when it contradicts, so that the rules can say so.
            auth_method.filter(|m| *m != ClientAuthMethod::None)
        } else {
            auth_method
        },
        jwks: args.jwks.as_deref().map(read_jwks).transpose()?,
        jwks_uri: args.jwks_uri,
        grants: match kind {
            Some(kind) if args.grants.is_empty() => kind.default_grants(),
            _ => parse_grants(&args.grants)?,
        },
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
        metadata: ClientMetadata {
            impersonation: args.impersonation,
            serves: dedup(args.serves),
            kind,
            ..ClientMetadata::default()
        },
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

/// A new secret for `client_id`; sealed for client_secret_jwt, which needs
/// the secret itself to check HMACs (see `tessera_core::client_auth`).
fn new_secret(
    client_id: &str,
    method: Option<ClientAuthMethod>,
    kek: impl KekLoader,
) -> Result<NewSecret, CommandError> {
    let kek = match method {
        Some(ClientAuthMethod::ClientSecretJwt) => Some(kek()?),
        _ => None,
    };
    Ok(NewSecret::generate(client_id, kek.as_ref()))
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

/// Changes a client's settings. Every change is checked by the same rules as a
/// new client, on the client as it would be stored, before anything is written.
pub async fn update(store: &dyn Store, args: ClientUpdate, kek: impl KekLoader) -> CommandResult {
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
    edit_list(
        &mut client.metadata.serves,
        args.add_serves,
        &args.remove_serves,
        "served audience",
    )?;
    if args.impersonation {
        client.metadata.impersonation = true;
    }
    if args.no_impersonation {
        client.metadata.impersonation = false;
    }
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
        if before.is_public() && method.is_some_and(|m| m != ClientAuthMethod::None) {
            return Err(CommandError(
                "a public client has no secret or keys to authenticate with; register a confidential client instead".into(),
            ));
        }
        if !before.is_public() {
            if method == Some(ClientAuthMethod::None) {
                return Err(CommandError(
                    "a confidential client cannot become public; register a public client instead"
                        .into(),
                ));
            }
            client.auth_method = method;
        }
    }
    if let Some(path) = &args.jwks {
        client.jwks = Some(read_jwks(path)?);
        client.jwks_uri = None;
    }
    if let Some(uri) = &args.jwks_uri {
        client.jwks_uri = Some(uri.clone());
        client.jwks = None;
    }
    let keys_given = args.jwks.is_some() || args.jwks_uri.is_some();
    let new_secret = follow_method(&mut client, &before, keys_given, kek)?;
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
    let secret_update = if client.secret_digest != before.secret_digest
        || client.sealed_secret != before.sealed_secret
    {
        SecretUpdate::Replace
    } else {
        SecretUpdate::Keep
    };
    if client != before && !store.update_client(&client, secret_update).await? {
        return Err(CommandError(format!("no client {:?}", client.id)));
    }
    if args.json.json {
        let mut out = describe(&client);
        if let Some(secret) = &new_secret {
            out["client_secret"] = json!(secret.secret);
        }
        print_json(&out);
    } else if client == before {
        println!("client {} unchanged", client.id);
    } else {
        println!("updated client {}", client.id);
        if let Some(secret) = &new_secret {
            print_secret(secret);
        }
    }
    Ok(())
}

/// Makes a confidential client's credentials follow a change of its
/// authentication method; returns the new secret, if one was made.
///
/// - to private_key_jwt: the secret goes; the keys come with the command.
/// - from private_key_jwt to a secret method: the keys go (unless given
///   anew, which the rules then refuse) and a secret is made.
/// - to client_secret_jwt: a new secret, sealed, since until now only the
///   secret's digest was kept and a digest cannot key an HMAC.
/// - from client_secret_jwt to Basic or the body: the same secret serves;
///   its sealed copy is dropped.
fn follow_method(
    client: &mut Client,
    before: &Client,
    keys_given: bool,
    kek: impl KekLoader,
) -> Result<Option<NewSecret>, CommandError> {
    if client.auth_method == before.auth_method || before.is_public() {
        return Ok(None);
    }
    if client.auth_method == Some(ClientAuthMethod::PrivateKeyJwt) {
        client.secret_digest = None;
        client.sealed_secret = None;
        return Ok(None);
    }
    if before.auth_method == Some(ClientAuthMethod::PrivateKeyJwt) && !keys_given {
        client.jwks = None;
        client.jwks_uri = None;
    }
    if client.secret_digest.is_none()
        || client.auth_method == Some(ClientAuthMethod::ClientSecretJwt)
    {
        let secret = new_secret(&client.id, client.auth_method, kek)?;
        client.secret_digest = Some(secret.digest);
        client.sealed_secret = secret.sealed.clone();
        return Ok(Some(secret));
    }
    client.sealed_secret = None;
    Ok(None)
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

pub async fn rotate_secret(
    store: &dyn Store,
    id: &str,
    json: bool,
    kek: impl KekLoader,
) -> CommandResult {
    let no_secret = || {
        CommandError(format!(
            "no client {id:?} with a secret (public clients have none; private_key_jwt clients \
             change keys instead, with `client update --jwks` or at their jwks_uri)"
        ))
    };
    let client = store.client(id).await?.ok_or_else(no_secret)?;
    if client.secret_digest.is_none() {
        return Err(no_secret());
    }
    // The digest and the sealed copy change in one statement.
    let secret = new_secret(id, client.auth_method, kek)?;
    if !store
        .set_client_secret(id, &secret.digest, secret.sealed.as_deref())
        .await?
    {
        return Err(no_secret());
    }
    if json {
        print_json(&json!({"client_id": id, "client_secret": secret.secret}));
    } else {
        println!("client_id:     {id}");
        println!("client_secret: {}", secret.secret);
    }
    Ok(())
}

/// A client as the CLI shows it: everything but the secret's digest and sealed
/// copy. Its keys are public.
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
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "impersonation": client.metadata.impersonation,
        "serves": client.metadata.serves,
        "kind": client.metadata.kind.map(ClientKind::as_str),
        "registered_dynamically": client.metadata.registration.is_some(),
        "created_at": format_time(client.created_at),
    })
}

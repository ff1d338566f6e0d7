//! `tessera client …`

use serde_json::{Value, json};
use tessera_core::crypto::{SecretDigest, random_bytes, random_token};
use tessera_core::model::{
    Client, ClientAuthMethod, GrantType, IntrospectionPolicy, TokenFormat, validate_client_id,
};
use tessera_core::scope::Scope;
use tessera_core::store::{Store, StoreError};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json};
use crate::cli::ClientCreate;

pub async fn create(store: &dyn Store, args: ClientCreate) -> CommandResult {
    let id = match args.id {
        Some(id) => {
            validate_client_id(&id).map_err(CommandError)?;
            id
        }
        None => tessera_jose::b64(random_bytes::<16>()),
    };
    let mut grants = Vec::new();
    for grant in &args.grants {
        let grant: GrantType = grant.parse()?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    let auth_method = args
        .auth_method
        .as_deref()
        .map(str::parse::<ClientAuthMethod>)
        .transpose()?;
    let public = args.public || auth_method == Some(ClientAuthMethod::None);
    if public && auth_method.is_some_and(|m| m != ClientAuthMethod::None) {
        return Err(CommandError(
            "a public client has no secret: its auth method is none".into(),
        ));
    }
    if public && grants.contains(&GrantType::ClientCredentials) {
        return Err(CommandError(
            "the client_credentials grant needs a confidential client (RFC 6749 §4.4)".into(),
        ));
    }
    for uri in args
        .redirect_uris
        .iter()
        .chain(&args.post_logout_redirect_uris)
    {
        check_redirect_uri(uri)?;
    }
    if public && args.no_pkce {
        return Err(CommandError(
            "public clients always use PKCE (RFC 9700 §2.1.1)".into(),
        ));
    }
    for audience in &args.audiences {
        check_audience(audience)?;
    }
    if args.access_token_ttl.is_some_and(|t| t <= 0) {
        return Err(CommandError("--access-token-ttl must be positive".into()));
    }
    let secret = (!public).then(random_token);
    let client = Client {
        id,
        name: args.name,
        secret_digest: secret.as_deref().map(SecretDigest::of),
        auth_method: if public { None } else { auth_method },
        grants,
        redirect_uris: args.redirect_uris,
        scopes: Scope::parse(&args.scope).map_err(|e| CommandError(e.description.into()))?,
        audiences: args.audiences,
        token_format: args
            .token_format
            .as_deref()
            .map(str::parse::<TokenFormat>)
            .transpose()?,
        access_token_ttl: args.access_token_ttl,
        introspection: args.introspection.parse::<IntrospectionPolicy>()?,
        require_pkce: !args.no_pkce,
        id_token_alg: args
            .id_token_alg
            .as_deref()
            .map(|a| {
                a.parse::<tessera_jose::Algorithm>()
                    .map_err(|e| CommandError(e.to_string()))
                    .and_then(|alg| {
                        if alg.is_symmetric() {
                            Err(CommandError(
                                "ID tokens are signed with asymmetric keys".into(),
                            ))
                        } else {
                            Ok(alg)
                        }
                    })
            })
            .transpose()?,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        created_at: SystemClock.now(),
    };
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
        "introspection": match client.introspection {
            IntrospectionPolicy::Any => "any",
            IntrospectionPolicy::Own => "own",
        },
        "created_at": format_time(client.created_at),
    })
}

/// RFC 6749 §3.1.2: an absolute URI without a fragment, matched later as an exact
/// string.
fn check_redirect_uri(uri: &str) -> Result<(), CommandError> {
    let url = url::Url::parse(uri)
        .map_err(|e| CommandError(format!("redirect URI {uri:?} is not an absolute URI: {e}")))?;
    if url.fragment().is_some() {
        return Err(CommandError(format!(
            "redirect URI {uri:?} must not have a fragment (RFC 6749 §3.1.2)"
        )));
    }
    Ok(())
}

/// RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
pub fn check_audience(audience: &str) -> Result<(), CommandError> {
    let url = url::Url::parse(audience)
        .map_err(|e| CommandError(format!("audience {audience:?} is not an absolute URI: {e}")))?;
    if url.fragment().is_some() {
        return Err(CommandError(format!(
            "audience {audience:?} must not have a fragment (RFC 8707 §2)"
        )));
    }
    Ok(())
}

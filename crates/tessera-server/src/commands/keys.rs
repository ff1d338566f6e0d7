//! `tessera keys …`

use serde_json::{Value, json};
use tessera_core::Provider;
use tessera_jose::Algorithm;

use super::{CommandError, CommandResult, format_time, print_json};

pub fn list(provider: &Provider, json: bool) -> CommandResult {
    let now = provider.clock().now();
    let ttl = provider.settings().max_token_ttl;
    let ring = provider.keys().ring();
    let rows: Vec<Value> = ring
        .keys()
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid(),
                "alg": k.alg().as_str(),
                "status": k.status(now, ttl).as_str(),
                "created_at": k.created_at,
                "activates_at": k.activates_at,
                "retires_at": k.superseded_at,
                "unpublished_at": k.superseded_at.map(|t| t + ttl),
            })
        })
        .collect();
    if json {
        print_json(&Value::Array(rows));
    } else {
        for k in ring.keys() {
            println!(
                "{}\t{}\t{}\tsigns from {}",
                k.kid(),
                k.alg(),
                k.status(now, ttl).as_str(),
                format_time(k.activates_at)
            );
        }
    }
    Ok(())
}

pub async fn rotate(
    provider: &Provider,
    alg: Option<&str>,
    now: bool,
    json: bool,
) -> CommandResult {
    let alg = match alg {
        Some(name) => {
            let alg: Algorithm = name.parse()?;
            if alg.is_symmetric() {
                return Err(CommandError(
                    "HS256 keys are per-resource shared secrets, not signing keys".into(),
                ));
            }
            alg
        }
        None => provider.settings().signing_alg,
    };
    let key = provider
        .keys()
        .rotate(
            provider.store(),
            alg,
            now,
            provider.settings(),
            provider.clock(),
        )
        .await?;
    let signs = what_signs(provider, key.alg).await?;
    if json {
        print_json(&json!({
            "kid": key.kid,
            "alg": key.alg.as_str(),
            "activates_at": key.activates_at,
            // An emergency key signs once every instance publishes it.
            "status": if key.activates_at <= provider.clock().now() { "active" } else { "next" },
            "signs": signs,
        }));
    } else {
        println!(
            "new {} key {} published; signs from {}",
            key.alg,
            key.kid,
            format_time(key.activates_at)
        );
        println!("it signs {}", signs.join("; "));
    }
    Ok(())
}

/// Which tokens keys of `alg` sign, so that rotating (or revoking) another
/// algorithm's key is not mistaken for the emergency rotation of the one in use.
async fn what_signs(provider: &Provider, alg: Algorithm) -> Result<Vec<String>, CommandError> {
    let mut signs = Vec::new();
    if alg == provider.settings().signing_alg {
        signs.push(format!(
            "access tokens, refresh tokens, and ID tokens of clients without --id-token-alg (signing_alg is {alg})"
        ));
    }
    let clients: Vec<String> = provider
        .store()
        .clients()
        .await?
        .into_iter()
        .filter(|c| c.id_token_alg == Some(alg))
        .map(|c| c.id)
        .collect();
    if !clients.is_empty() {
        signs.push(format!(
            "ID tokens of {} client(s) with --id-token-alg {alg}: {}",
            clients.len(),
            clients.join(", ")
        ));
    }
    let resources: Vec<String> = provider
        .store()
        .resources()
        .await?
        .into_iter()
        .filter(|r| r.signing_alg == Some(alg))
        .map(|r| r.audience)
        .collect();
    if !resources.is_empty() {
        signs.push(format!(
            "access tokens of {} resource(s) with --signing-alg {alg}: {}",
            resources.len(),
            resources.join(", ")
        ));
    }
    if signs.is_empty() {
        signs.push(format!(
            "nothing yet: signing_alg is {} and no client has --id-token-alg {alg}, no resource --signing-alg {alg}",
            provider.settings().signing_alg
        ));
    }
    Ok(signs)
}

/// `tessera keys revoke KID`: withdraws a key at once, after a compromise.
pub async fn revoke(provider: &Provider, kid: &str, force: bool, json: bool) -> CommandResult {
    let revoked = provider
        .keys()
        .revoke(provider.store(), kid, force, provider.clock())
        .await?;
    let signs = what_signs(provider, revoked.alg).await?;
    let max_age = provider.settings().jwks_max_age;
    if json {
        print_json(&json!({
            "kid": revoked.kid,
            "alg": revoked.alg.as_str(),
            "status": "revoked",
            "was_signing": revoked.was_signing,
            "signing_now": revoked.signing_now,
            "signs": signs,
            "jwks_max_age": max_age,
        }));
    } else {
        println!(
            "key {} ({}) revoked: it left the JWKS, and tokens it signed are no longer accepted here",
            revoked.kid, revoked.alg
        );
        match &revoked.signing_now {
            Some(kid) => println!("{} tokens are signed by {kid}", revoked.alg),
            None => println!(
                "WARNING: no key signs {} now, so no {} token can be issued ({}); run `tessera keys rotate --alg {} --now`",
                revoked.alg,
                revoked.alg,
                signs.join("; "),
                revoked.alg
            ),
        }
        println!(
            "services that cached the JWKS may accept its tokens for up to {max_age} s more (jwks_max_age)"
        );
    }
    Ok(())
}

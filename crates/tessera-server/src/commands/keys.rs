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
    if json {
        print_json(&json!({
            "kid": key.kid,
            "alg": key.alg.as_str(),
            "activates_at": key.activates_at,
            "status": if now { "active" } else { "next" },
        }));
    } else {
        println!(
            "new {} key {} published; signs from {}",
            key.alg,
            key.kid,
            format_time(key.activates_at)
        );
    }
    Ok(())
}

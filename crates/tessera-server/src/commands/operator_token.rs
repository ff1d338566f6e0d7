//! `tessera registration-token …` and `tessera admin-token …`: the bearer
//! tokens an operator hands out, initial access tokens for dynamic client
//! registration (RFC 7591 §3) and admin API credentials. Each is accepted
//! for its own purpose only.

use serde_json::{Value, json};
use tessera_core::crypto::{SecretDigest, random_id, random_token};
use tessera_core::store::{OperatorToken, Store, TokenPurpose};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json};

fn describe(token: &OperatorToken) -> Value {
    json!({
        "id": token.id,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
    })
}

/// Creates a token good for `ttl` seconds (`0`: until revoked) and prints it
/// once; only its digest is stored.
pub async fn create(
    store: &dyn Store,
    purpose: TokenPurpose,
    ttl: u64,
    json: bool,
) -> CommandResult {
    let now = SystemClock.now();
    let ttl = i64::try_from(ttl).map_err(|_| CommandError("--ttl is too large".into()))?;
    let token = random_token();
    let record = OperatorToken {
        id: random_id(),
        purpose,
        digest: SecretDigest::of(&token),
        created_at: now,
        expires_at: (ttl > 0).then(|| now.saturating_add(ttl)),
    };
    store.insert_operator_token(&record).await?;
    if json {
        let mut out = describe(&record);
        out["token"] = json!(token);
        print_json(&out);
    } else {
        println!("id:      {}", record.id);
        println!("token:   {token}");
        match record.expires_at {
            Some(t) => println!("expires: {}", format_time(t)),
            None => println!("expires: never (until revoked)"),
        }
        println!("(the token is shown only now; tessera stores only its digest)");
    }
    Ok(())
}

pub async fn list(store: &dyn Store, purpose: TokenPurpose, json: bool) -> CommandResult {
    let tokens = store.operator_tokens(purpose).await?;
    if json {
        print_json(&Value::Array(tokens.iter().map(describe).collect()));
    } else if tokens.is_empty() {
        println!("no {} tokens", purpose.as_str());
    } else {
        for token in &tokens {
            let expiry = token
                .expires_at
                .map_or_else(|| "never".to_owned(), format_time);
            println!(
                "{}  created {}  expires {expiry}",
                token.id,
                format_time(token.created_at)
            );
        }
    }
    Ok(())
}

/// Revokes a token at once; the clients registered with a registration
/// token stay.
pub async fn revoke(
    store: &dyn Store,
    purpose: TokenPurpose,
    id: &str,
    json: bool,
) -> CommandResult {
    if !store.delete_operator_token(purpose, id).await? {
        return Err(CommandError(format!(
            "no {} token {id:?}",
            purpose.as_str()
        )));
    }
    if json {
        print_json(&json!({ "id": id, "revoked": true }));
    } else {
        println!("{} token {id} revoked", purpose.as_str());
    }
    Ok(())
}

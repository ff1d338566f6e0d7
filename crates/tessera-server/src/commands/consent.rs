//! `tessera consent …`

use serde_json::{Value, json};
use tessera_core::store::{Consent, Store};

use super::user::find;
use super::{CommandResult, format_time, print_json};

pub async fn list(
    store: &dyn Store,
    login: &str,
    client: Option<&str>,
    json: bool,
) -> CommandResult {
    let user = find(store, login).await?;
    let consents: Vec<Consent> = store
        .consents(&user.id)
        .await?
        .into_iter()
        .filter(|c| client.is_none_or(|id| c.client_id == id))
        .collect();
    if json {
        print_json(&Value::Array(consents.iter().map(describe).collect()));
    } else if consents.is_empty() {
        println!("no consents for {}", user.username);
    } else {
        for consent in &consents {
            println!(
                "{}\t{}\t{}",
                consent.client_id,
                format_time(consent.granted_at),
                consent.scopes
            );
        }
    }
    Ok(())
}

pub async fn revoke(
    store: &dyn Store,
    login: &str,
    client: Option<&str>,
    json: bool,
) -> CommandResult {
    let user = find(store, login).await?;
    let withdrawn = store.revoke_consent(&user.id, client).await?;
    if json {
        print_json(&json!({
            "sub": user.id,
            "username": user.username,
            "client_id": client,
            "withdrawn": withdrawn,
        }));
    } else {
        let plural = if withdrawn == 1 { "" } else { "s" };
        let target = client.map_or_else(|| "all clients".to_owned(), |id| format!("client {id}"));
        println!(
            "withdrew {withdrawn} consent{plural} of {name} for {target}; refresh tokens of {name} \
             for {target} are revoked",
            name = user.username
        );
    }
    Ok(())
}

fn describe(consent: &Consent) -> Value {
    json!({
        "client_id": consent.client_id,
        "scope": consent.scopes.to_string(),
        "granted_at": format_time(consent.granted_at),
    })
}

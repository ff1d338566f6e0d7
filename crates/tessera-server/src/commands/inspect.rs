//! `tessera token inspect`: the core's inspection (`tessera_core::inspect`),
//! printed.

use serde_json::json;
use tessera_core::Provider;
use tessera_core::inspect::InspectError;

use super::{CommandError, CommandResult, print_json};

pub async fn inspect(provider: &Provider, token: &str, json: bool) -> CommandResult {
    let inspection = provider.inspect_token(token).await.map_err(|e| match e {
        InspectError::Store(e) => CommandError::from(e),
        other => CommandError(other.to_string()),
    })?;
    let valid = inspection.valid;
    if json {
        print_json(&json!(inspection));
    } else {
        println!(
            "format:    {}",
            if inspection.format == "jwt" {
                "JWT (RFC 9068)"
            } else {
                "reference token"
            }
        );
        if !inspection.header.is_null() {
            println!("header:    {}", inspection.header);
            println!("signature: {}", inspection.signature);
        }
        println!();
        for c in &inspection.explanation {
            let mark = match c.ok {
                Some(true) => "ok ",
                Some(false) => "BAD",
                None => "   ",
            };
            println!("{mark} {:10} {}", c.name, c.value);
            println!(
                "    {:10} {}{}",
                "",
                c.meaning,
                if c.note.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", c.note)
                }
            );
        }
        println!();
        if valid {
            println!("VALID: this server issued the token and it is active now.");
        } else {
            println!("INVALID:");
            for p in &inspection.problems {
                println!("  - {p}");
            }
        }
    }
    if valid {
        Ok(())
    } else {
        Err(CommandError("the token is not valid".into()))
    }
}

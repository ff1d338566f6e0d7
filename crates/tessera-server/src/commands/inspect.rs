//! `tessera token inspect`: decode a token, verify it against this server's keys and
//! state, and explain every claim.

use serde_json::{Map, Value, json};
use tessera_core::Provider;
use tessera_core::crypto::SecretDigest;
use tessera_core::shared_secret;
use tessera_core::store::ClientStore as _;
use tessera_core::store::ResourceStore as _;
use tessera_core::tokens::{AccessTokenClaims, Rejected, is_jwt};
use tessera_jose::UnverifiedJws;

use super::{CommandError, CommandResult, format_time, print_json, relative};

/// One explained claim.
struct Check {
    name: String,
    value: Value,
    meaning: &'static str,
    /// `None`: informational; `Some(false)`: makes the token invalid.
    ok: Option<bool>,
    note: String,
}

pub async fn inspect(provider: &Provider, token: &str, json: bool) -> CommandResult {
    let token = token.trim();
    let now = provider.clock().now();
    let mut problems: Vec<String> = Vec::new();
    let mut header = Value::Null;
    let mut signature = Value::Null;
    let claims: Map<String, Value> = if is_jwt(token) {
        let jws = UnverifiedJws::parse(token)
            .map_err(|e| CommandError(format!("not a valid JWT: {e}")))?;
        header = serde_json::to_value(jws.header())?;
        let claims: Map<String, Value> = jws
            .payload_unverified()
            .map_err(|e| CommandError(format!("the payload is not a JSON object: {e}")))?;
        let ring = provider.keys().ring();
        let ttl = provider.settings().max_token_ttl;
        let shared = jws.kid().and_then(shared_secret::parse_kid);
        let key = jws
            .kid()
            .and_then(|kid| ring.keys().iter().find(|k| k.kid() == kid));
        signature = match (shared, key) {
            (Some((audience, version)), _) => {
                shared_signature(provider, token, audience, version, &mut problems).await?
            }
            (None, None) => {
                problems.push("signed by a key this server does not have".into());
                json!({"valid": false, "reason": "unknown kid"})
            }
            (None, Some(key)) => {
                let status = key.status(now, ttl);
                match jws.verify::<Value>(&key.verifying) {
                    Ok(_) if status.is_published() => {
                        json!({"valid": true, "kid": key.kid(), "key_status": status.as_str()})
                    }
                    Ok(_) => {
                        problems.push("the signing key is no longer published".into());
                        json!({"valid": false, "kid": key.kid(), "key_status": status.as_str()})
                    }
                    Err(e) => {
                        problems.push(format!("signature: {e}"));
                        json!({"valid": false, "kid": key.kid(), "reason": e.to_string()})
                    }
                }
            }
        };
        let typ = jws.header().typ.as_deref();
        if !tessera_jose::typ_matches(typ, tessera_core::tokens::ACCESS_TOKEN_TYP) {
            problems.push(format!(
                "typ is {typ:?}, not at+jwt: not an access token (RFC 9068 §4)"
            ));
        }
        claims
    } else {
        let record = provider
            .store()
            .reference_token(&SecretDigest::of(token))
            .await?
            .ok_or_else(|| {
                CommandError("unknown reference token (or not a token of this server)".into())
            })?;
        if record.revoked {
            problems.push("the token was revoked".into());
        }
        match record.claims {
            Value::Object(map) => map,
            _ => return Err(CommandError("stored claims are not an object".into())),
        }
    };

    let checks = explain(provider, &claims, now).await;
    for check in &checks {
        if check.ok == Some(false) {
            problems.push(format!("{}: {}", check.name, check.note));
        }
    }
    let valid = problems.is_empty();

    if json {
        let checks: Vec<Value> = checks
            .iter()
            .map(|c| {
                json!({"claim": c.name, "value": c.value, "meaning": c.meaning,
                       "valid": c.ok, "note": c.note})
            })
            .collect();
        print_json(&json!({
            "format": if is_jwt(token) { "jwt" } else { "reference" },
            "valid": valid,
            "problems": problems,
            "header": header,
            "signature": signature,
            "claims": claims,
            "explanation": checks,
        }));
    } else {
        println!(
            "format:    {}",
            if is_jwt(token) {
                "JWT (RFC 9068)"
            } else {
                "reference token"
            }
        );
        if !header.is_null() {
            println!("header:    {header}");
            println!("signature: {signature}");
        }
        println!();
        for c in &checks {
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
            for p in &problems {
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

/// The signature of a token naming a resource's shared secret, checked the
/// way introspection checks it: the resource's current secret, HS256 only,
/// for that resource alone, and minted by this server.
async fn shared_signature(
    provider: &Provider,
    token: &str,
    audience: &str,
    version: i64,
    problems: &mut Vec<String>,
) -> Result<Value, CommandError> {
    // The version of the resource's current secret, if it has one.
    let current = provider
        .catalog()
        .resource(audience)
        .await?
        .filter(|r| r.sealed_secret.is_some())
        .map(|r| r.secret_version);
    let key = json!({"resource": audience, "secret_version": version});
    let reason = match (
        current,
        provider.verify_own::<AccessTokenClaims>(token).await?,
    ) {
        (_, Ok(_)) => return Ok(json!({"valid": true, "shared_secret": key})),
        (None, _) => format!("{audience} has no shared secret (not a resource, or not HS256)"),
        (Some(now), _) if now != version => format!(
            "signed with version {version} of the shared secret of {audience}, which is at version {now} (rotated)"
        ),
        (Some(_), Err(Rejected::NotMinted)) => format!(
            "signed with the shared secret of {audience} but not minted by this server: \
             whoever holds the secret wrote it"
        ),
        (Some(_), Err(Rejected::BadSignature)) => {
            "the signature does not verify with the resource's shared secret (HS256)".to_owned()
        }
        (Some(_), Err(other)) => format!("{other:?}"),
    };
    problems.push(format!("signature: {reason}"));
    Ok(json!({"valid": false, "shared_secret": key, "reason": reason}))
}

async fn explain(provider: &Provider, claims: &Map<String, Value>, now: i64) -> Vec<Check> {
    let settings = provider.settings();
    let mut checks = Vec::new();
    for (name, value) in claims {
        let (meaning, ok, note): (&'static str, Option<bool>, String) = match name.as_str() {
            "iss" => {
                let ok = value.as_str() == Some(settings.issuer.as_str());
                (
                    "issuer: who minted the token",
                    Some(ok),
                    if ok {
                        "this server".into()
                    } else {
                        format!("expected {}", settings.issuer)
                    },
                )
            }
            "sub" => (
                "subject: the user, or for app tokens the client itself",
                None,
                String::new(),
            ),
            "aud" => (
                "audience: the APIs that may accept the token",
                None,
                String::new(),
            ),
            "exp" => match value.as_i64() {
                Some(exp) => (
                    "expiry",
                    Some(exp > now),
                    format!("{} ({})", format_time(exp), relative(exp - now)),
                ),
                None => ("expiry", Some(false), "not a number".into()),
            },
            "iat" => match value.as_i64() {
                Some(iat) => (
                    "issued at",
                    Some(iat <= now + settings.leeway),
                    format!("{} ({})", format_time(iat), relative(iat - now)),
                ),
                None => ("issued at", Some(false), "not a number".into()),
            },
            "nbf" => match value.as_i64() {
                Some(nbf) => (
                    "not valid before",
                    Some(nbf <= now + settings.leeway),
                    format!("{} ({})", format_time(nbf), relative(nbf - now)),
                ),
                None => ("not valid before", Some(false), "not a number".into()),
            },
            "jti" => {
                let revoked = match value.as_str() {
                    Some(jti) => provider.store().is_jti_revoked(jti).await.unwrap_or(false),
                    None => false,
                };
                (
                    "token ID, unique per token; revocation is recorded by it",
                    Some(!revoked),
                    if revoked {
                        "revoked".into()
                    } else {
                        "not revoked".into()
                    },
                )
            }
            "client_id" => {
                let exists = match value.as_str() {
                    Some(id) => provider.catalog().client(id).await.ok().flatten().is_some(),
                    None => false,
                };
                (
                    "the client the token was issued to",
                    Some(exists),
                    if exists {
                        "registered".into()
                    } else {
                        "no such client (deleted?)".into()
                    },
                )
            }
            "scope" => (
                "what the token allows, space-separated",
                None,
                String::new(),
            ),
            "auth_time" => (
                "when the user signed in",
                None,
                value.as_i64().map(format_time).unwrap_or_default(),
            ),
            "acr" => ("authentication context class", None, String::new()),
            "amr" => ("authentication methods used", None, String::new()),
            "act" => (
                "the acting party, for delegation (RFC 8693 §4.1)",
                None,
                String::new(),
            ),
            "azp" => ("authorized party", None, String::new()),
            _ => ("not a claim Tessera issues", None, String::new()),
        };
        checks.push(Check {
            name: name.clone(),
            value: value.clone(),
            meaning,
            ok,
            note,
        });
    }
    checks
}

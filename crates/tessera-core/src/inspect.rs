//! Token inspection: decode a token, verify it against this server's keys and
//! state, and explain every claim. What `tessera token inspect` prints, and
//! what a portal shows a developer; unlike a generic JWT decoder it says
//! whether this server would accept the token now, and why not.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::{relative, rfc3339};
use crate::crypto::SecretDigest;
use crate::provider::Provider;
use crate::shared_secret;
use crate::store::{ClientStore as _, ResourceStore as _, StoreError};
use crate::tokens::{AccessTokenClaims, Rejected, is_jwt};
use tessera_jose::UnverifiedJws;

/// What inspecting a token found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// `jwt` or `reference`.
    pub format: &'static str,
    /// Whether this server would accept the token now.
    pub valid: bool,
    /// Why not, one sentence each.
    pub problems: Vec<String>,
    /// The JWS header; null for a reference token.
    pub header: Value,
    /// The signature check; null for a reference token.
    pub signature: Value,
    pub claims: Map<String, Value>,
    /// Each claim with what it means and, where it can be checked, whether it
    /// holds.
    pub explanation: Vec<ClaimCheck>,
}

/// One explained claim.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimCheck {
    #[serde(rename = "claim")]
    pub name: String,
    pub value: Value,
    pub meaning: &'static str,
    /// `None`: informational; `Some(false)`: makes the token invalid.
    #[serde(rename = "valid")]
    pub ok: Option<bool>,
    pub note: String,
}

/// A token that cannot be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("not a valid JWT: {0}")]
    NotAJwt(String),
    #[error("the payload is not a JSON object: {0}")]
    PayloadNotAnObject(String),
    #[error("unknown reference token (or not a token of this server)")]
    UnknownReference,
    #[error("stored claims are not an object")]
    StoredClaimsNotAnObject,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server could not check it (its store is unavailable, ...).
    #[error("{0}")]
    Failed(#[from] crate::error::Error),
}

impl Provider {
    /// Inspects `token` (a JWT or a reference token of this server).
    pub async fn inspect_token(&self, token: &str) -> Result<Inspection, InspectError> {
        let provider = self;
        let token = token.trim();
        let now = provider.clock().now();
        let mut problems: Vec<String> = Vec::new();
        let mut header = Value::Null;
        let mut signature = Value::Null;
        let claims: Map<String, Value> = if is_jwt(token) {
            let jws =
                UnverifiedJws::parse(token).map_err(|e| InspectError::NotAJwt(e.to_string()))?;
            header = serde_json::to_value(jws.header())
                .map_err(|e| InspectError::NotAJwt(e.to_string()))?;
            let claims: Map<String, Value> = jws
                .payload_unverified()
                .map_err(|e| InspectError::PayloadNotAnObject(e.to_string()))?;
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
            if !tessera_jose::typ_matches(typ, crate::tokens::ACCESS_TOKEN_TYP) {
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
                .ok_or(InspectError::UnknownReference)?;
            if record.revoked {
                problems.push("the token was revoked".into());
            }
            match record.claims {
                Value::Object(map) => map,
                _ => return Err(InspectError::StoredClaimsNotAnObject),
            }
        };

        // Only what this server signed (or stored) is looked up in its
        // records: a forged token learns nothing about which clients exist or
        // which tokens were revoked.
        let vouched = signature.is_null() || signature["valid"] == Value::Bool(true);
        let explanation = explain(provider, &claims, now, vouched).await;
        for check in &explanation {
            if check.ok == Some(false) {
                problems.push(format!("{}: {}", check.name, check.note));
            }
        }
        Ok(Inspection {
            format: if is_jwt(token) { "jwt" } else { "reference" },
            valid: problems.is_empty(),
            problems,
            header,
            signature,
            claims,
            explanation,
        })
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
) -> Result<Value, InspectError> {
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

async fn explain(
    provider: &Provider,
    claims: &Map<String, Value>,
    now: i64,
    vouched: bool,
) -> Vec<ClaimCheck> {
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
                    format!("{} ({})", rfc3339(exp), relative(exp - now)),
                ),
                None => ("expiry", Some(false), "not a number".into()),
            },
            "iat" => match value.as_i64() {
                Some(iat) => (
                    "issued at",
                    Some(iat <= now + settings.leeway),
                    format!("{} ({})", rfc3339(iat), relative(iat - now)),
                ),
                None => ("issued at", Some(false), "not a number".into()),
            },
            "nbf" => match value.as_i64() {
                Some(nbf) => (
                    "not valid before",
                    Some(nbf <= now + settings.leeway),
                    format!("{} ({})", rfc3339(nbf), relative(nbf - now)),
                ),
                None => ("not valid before", Some(false), "not a number".into()),
            },
            "jti" | "client_id" if !vouched => (
                if name == "jti" {
                    "token ID, unique per token; revocation is recorded by it"
                } else {
                    "the client the token was issued to"
                },
                None,
                "not looked up: the signature is not this server's".into(),
            ),
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
                value.as_i64().map(rfc3339).unwrap_or_default(),
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
        checks.push(ClaimCheck {
            name: name.clone(),
            value: value.clone(),
            meaning,
            ok,
            note,
        });
    }
    checks
}

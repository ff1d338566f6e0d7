//! The result of a successful verification.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_jose::Algorithm;

use crate::Error;

/// A verified access token: who it speaks for, which client holds it, what it
/// allows, and every claim it carries.
///
/// For a JWT the claims are the verified payload; for a reference token they
/// are the introspection response (RFC 7662 §2.2), which uses the same names.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub(crate) issuer: Option<String>,
    pub(crate) subject: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) audience: Audiences,
    pub(crate) expires_at: Option<i64>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) jti: Option<String>,
    pub(crate) actor: Option<Actor>,
    pub(crate) kind: TokenKind,
    pub(crate) raw: RawClaims,
}

/// All claims, kept as they arrived and parsed only when asked for: most
/// requests never look past the fields above.
#[derive(Debug, Clone)]
pub(crate) enum RawClaims {
    /// The base64url payload segment of a verified JWT.
    Jwt(Box<str>),
    /// An introspection answer's JSON text.
    Json(Box<str>),
}

/// `aud` as received; the common single audience costs no `Vec`.
#[derive(Debug, Clone)]
pub(crate) enum Audiences {
    One(String),
    Many(Vec<String>),
}

/// How the token was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A JWT access token (RFC 9068) whose signature was verified locally.
    Jwt(Algorithm),
    /// An opaque reference token that the introspection endpoint vouched for.
    Reference,
}

impl AccessToken {
    /// `iss`; always present on a JWT (and equal to the configured issuer),
    /// optional in an introspection answer.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `sub`: the user, or the client itself for a client-credentials token.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `client_id`: the client the token was issued to (RFC 9068 §2.2).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The granted scopes, in the order the token lists them.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// The raw `scope` claim: scope tokens separated by spaces.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Succeeds when every scope in `required` was granted; otherwise the
    /// error answers `403 insufficient_scope` naming all of `required`
    /// (RFC 6750 §3.1).
    pub fn require_scopes<S: AsRef<str>>(&self, required: &[S]) -> Result<(), Error> {
        if required.iter().all(|s| self.has_scope(s.as_ref())) {
            return Ok(());
        }
        let mut needed = String::new();
        for s in required {
            if !needed.is_empty() {
                needed.push(' ');
            }
            needed.push_str(s.as_ref());
        }
        Err(Error::InsufficientScope(needed))
    }

    /// `aud`: every audience the token names (one of them is this service's).
    pub fn audience(&self) -> &[String] {
        match &self.audience {
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(all) => all,
        }
    }

    /// `exp`; always present on a JWT, optional in an introspection answer.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at.map(from_unix)
    }

    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at.map(from_unix)
    }

    /// `jti`, the token's unique identifier.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// The current actor when the token was obtained by delegation (`act`,
    /// RFC 8693 §4.1): the party acting on behalf of [`subject`](Self::subject).
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    /// The delegation chain, current actor first, then the ones before it.
    pub fn actors(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(self.actor.as_ref(), |a| a.actor())
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// All claims as the JSON object they arrived in.
    pub fn claims_json(&self) -> Cow<'_, str> {
        match &self.raw {
            RawClaims::Json(json) => Cow::Borrowed(json),
            // The payload was decoded and parsed as JSON when the token was
            // verified, so neither step can fail here.
            RawClaims::Jwt(b64) => Cow::Owned(
                tessera_jose::b64_decode(b64.as_bytes())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default(),
            ),
        }
    }

    /// All claims, deserialized into a type of the service's choosing (for
    /// instance `serde_json::Map<String, serde_json::Value>`, or a struct
    /// with the custom claims it uses).
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.claims_json())
    }

    /// One claim by name, parsed on demand.
    pub fn claim(&self, name: &str) -> Option<serde_json::Value> {
        let mut all: serde_json::Map<String, serde_json::Value> = self.claims().ok()?;
        all.remove(name)
    }
}

/// One link of an `act` chain (RFC 8693 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Actor {
    sub: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    act: Option<Box<Actor>>,
}

impl Actor {
    pub fn subject(&self) -> &str {
        &self.sub
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    pub fn issuer(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// The actor before this one in the chain.
    pub fn actor(&self) -> Option<&Actor> {
        self.act.as_deref()
    }
}

fn from_unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: &str, claims: &str) -> AccessToken {
        AccessToken {
            issuer: None,
            subject: "u".into(),
            client_id: "c".into(),
            scope: scope.into(),
            audience: Audiences::One("https://orders".into()),
            expires_at: Some(10),
            issued_at: Some(1),
            jti: None,
            actor: serde_json::from_str::<serde_json::Value>(claims)
                .ok()
                .and_then(|v| v.get("act").cloned())
                .and_then(|a| serde_json::from_value(a).ok()),
            kind: TokenKind::Reference,
            raw: RawClaims::Json(claims.into()),
        }
    }

    #[test]
    fn scopes_split_on_spaces() {
        let t = token("orders.read  orders.write", "{}");
        assert_eq!(
            t.scopes().collect::<Vec<_>>(),
            ["orders.read", "orders.write"]
        );
        assert!(t.has_scope("orders.write"));
        assert!(!t.has_scope("orders"));
        assert!(t.require_scopes(&["orders.read"]).is_ok());
        match t.require_scopes(&["orders.read", "admin"]) {
            Err(Error::InsufficientScope(s)) => assert_eq!(s, "orders.read admin"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn act_chain_is_walked_current_actor_first() {
        let t = token(
            "",
            r#"{"sub":"alice","act":{"sub":"svc-a","client_id":"a","act":{"sub":"gateway"}},"x":1}"#,
        );
        let chain: Vec<&str> = t.actors().map(Actor::subject).collect();
        assert_eq!(chain, ["svc-a", "gateway"]);
        assert_eq!(t.actor().and_then(Actor::client_id), Some("a"));
        assert_eq!(t.claim("x"), Some(serde_json::json!(1)));
        assert_eq!(t.claim("missing"), None);
    }
}

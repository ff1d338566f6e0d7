//! The result of a successful verification.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_jose::Algorithm;

use crate::Error;

/// A verified access token: who it speaks for, which client holds it, what it
/// allows, and every claim it carries.
///
/// For a JWT the claims are the verified payload; for a reference token they
/// are the introspection response (RFC 7662 §2.2), which uses the same names.
#[derive(Clone)]
pub struct AccessToken {
    /// The claims as the JSON text they arrived in, followed by the decoded
    /// values of string claims that had escapes. The string claims below are
    /// ranges of it: a verification copies none of them, and the result
    /// stays small to move.
    text: String,
    /// Where the JSON ends in `text`.
    json_len: u32,
    issuer: Option<Span>,
    subject: Span,
    client_id: Span,
    scope: Span,
    jti: Option<Span>,
    audience: Audiences,
    /// `audience()` as the `String`s it returns, built on first use.
    audience_strings: OnceLock<Box<[String]>>,
    expires_at: Option<i64>,
    issued_at: Option<i64>,
    actor: Option<Box<Actor>>,
    kind: TokenKind,
}

/// Claims are refused past this length, which keeps every offset in the
/// result within a `u32` (decoded escapes make strings shorter, so `text`
/// is at most twice this long). Tokens and introspection answers are
/// bounded far below it.
pub(crate) const MAX_CLAIMS_BYTES: usize = 1 << 30;

/// A range of an `AccessToken`'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const EMPTY: Span = Span { start: 0, end: 0 };

    fn new(start: usize, end: usize) -> Option<Span> {
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn get(self, text: &str) -> &str {
        let (start, end) = (self.start as usize, self.end as usize);
        text.get(start..end).unwrap_or_default()
    }
}

/// A string claim on its way into an `AccessToken`: where it is in the JSON
/// text when it is there verbatim (no escapes, the usual case), else its
/// decoded value.
#[derive(Debug)]
pub(crate) enum Text {
    In(Span),
    Owned(String),
}

impl Text {
    /// `value`, parsed from `json`, which must be at most
    /// [`MAX_CLAIMS_BYTES`] long.
    pub(crate) fn new(value: Cow<'_, str>, json: &str) -> Text {
        match value {
            Cow::Borrowed(v) => {
                // A string borrowed from `json` is a range of it.
                let start = (v.as_ptr() as usize).wrapping_sub(json.as_ptr() as usize);
                let end = start.wrapping_add(v.len());
                match Span::new(start, end) {
                    Some(span) if start <= end && end <= json.len() => Text::In(span),
                    // Not from this text after all: keep a copy.
                    _ => Text::Owned(v.to_owned()),
                }
            }
            Cow::Owned(v) => Text::Owned(v),
        }
    }

    /// The range of `text` this claim will be: a decoded value is appended.
    fn place(self, text: &mut String) -> Span {
        match self {
            Text::In(span) => span,
            Text::Owned(value) => {
                let start = text.len();
                text.push_str(&value);
                Span::new(start, text.len()).unwrap_or(Span::EMPTY)
            }
        }
    }
}

/// `aud` as received; the common single audience costs no `Vec`.
#[derive(Debug, Clone)]
enum Audiences {
    One(Span),
    Many(Box<[Span]>),
}

/// Checked claims, ready to become an [`AccessToken`] together with the
/// JSON text they were parsed from.
#[derive(Debug)]
pub(crate) struct TokenParts {
    pub issuer: Option<Text>,
    pub subject: Option<Text>,
    pub client_id: Option<Text>,
    pub scope: Option<Text>,
    pub jti: Option<Text>,
    /// `None` without `aud`; an array of one is kept as an array.
    pub audience: Option<AudienceParts>,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub actor: Option<Box<Actor>>,
}

#[derive(Debug)]
pub(crate) enum AudienceParts {
    One(Text),
    Many(Vec<Text>),
}

impl AccessToken {
    /// The result of a verification: `parts`, checked, of the claims in
    /// `json` (at most [`MAX_CLAIMS_BYTES`] long).
    pub(crate) fn new(parts: TokenParts, kind: TokenKind, json: String) -> AccessToken {
        let mut text = json;
        let json_len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        let mut place = |t: Option<Text>| t.map(|t| t.place(&mut text));
        let issuer = place(parts.issuer);
        let subject = place(parts.subject).unwrap_or(Span::EMPTY);
        let client_id = place(parts.client_id).unwrap_or(Span::EMPTY);
        let scope = place(parts.scope).unwrap_or(Span::EMPTY);
        let jti = place(parts.jti);
        let audience = match parts.audience {
            Some(AudienceParts::One(one)) => Audiences::One(one.place(&mut text)),
            Some(AudienceParts::Many(all)) => {
                Audiences::Many(all.into_iter().map(|a| a.place(&mut text)).collect())
            }
            None => Audiences::Many(Box::default()),
        };
        AccessToken {
            text,
            json_len,
            issuer,
            subject,
            client_id,
            scope,
            jti,
            audience,
            audience_strings: OnceLock::new(),
            expires_at: parts.expires_at,
            issued_at: parts.issued_at,
            actor: parts.actor,
            kind,
        }
    }
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

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("issuer", &self.issuer())
            .field("subject", &self.subject())
            .field("client_id", &self.client_id())
            .field("scope", &self.scope())
            .field("audience", &self.audiences().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .field("jti", &self.jti())
            .field("actor", &self.actor)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// `iss`; always present on a JWT (and equal to the configured issuer),
    /// optional in an introspection answer.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.map(|s| s.get(&self.text))
    }

    /// `sub`: the user, or the client itself for a client-credentials token.
    pub fn subject(&self) -> &str {
        self.subject.get(&self.text)
    }

    /// `client_id`: the client the token was issued to (RFC 9068 §2.2).
    pub fn client_id(&self) -> &str {
        self.client_id.get(&self.text)
    }

    /// The granted scopes, in the order the token lists them.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope().split(' ').filter(|s| !s.is_empty())
    }

    /// The raw `scope` claim: scope tokens separated by spaces.
    pub fn scope(&self) -> &str {
        self.scope.get(&self.text)
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
    /// The `String`s are built at the first call; [`audiences`](Self::audiences)
    /// reads the same without them.
    pub fn audience(&self) -> &[String] {
        self.audience_strings
            .get_or_init(|| self.audiences().map(str::to_owned).collect())
    }

    /// `aud`, without building the `String`s of [`audience`](Self::audience).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        let all = match &self.audience {
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(all) => &all[..],
        };
        all.iter().map(|a| a.get(&self.text))
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
        self.jti.map(|s| s.get(&self.text))
    }

    /// The current actor when the token was obtained by delegation (`act`,
    /// RFC 8693 §4.1): the party acting on behalf of [`subject`](Self::subject).
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_deref()
    }

    /// The delegation chain, current actor first, then the ones before it.
    pub fn actors(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(self.actor(), |a| a.actor())
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    fn json(&self) -> &str {
        self.text.get(..self.json_len as usize).unwrap_or_default()
    }

    /// All claims as the JSON object they arrived in.
    pub fn claims_json(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.json())
    }

    /// All claims, deserialized into a type of the service's choosing (for
    /// instance `serde_json::Map<String, serde_json::Value>`, or a struct
    /// with the custom claims it uses).
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.json())
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
        let owned = |s: &str| Some(Text::Owned(s.to_owned()));
        let parts = TokenParts {
            issuer: None,
            subject: owned("u"),
            client_id: owned("c"),
            scope: owned(scope),
            jti: None,
            audience: Some(AudienceParts::One(Text::Owned("https://orders".into()))),
            expires_at: Some(10),
            issued_at: Some(1),
            actor: serde_json::from_str::<serde_json::Value>(claims)
                .ok()
                .and_then(|v| v.get("act").cloned())
                .and_then(|a| serde_json::from_value(a).ok()),
        };
        AccessToken::new(parts, TokenKind::Reference, claims.into())
    }

    #[test]
    fn claims_point_into_the_json_or_follow_it() {
        let json = r#"{"a":"xyz","b":"q\"r"}"#;
        let borrowed = Text::new(Cow::Borrowed(&json[6..9]), json);
        assert!(matches!(borrowed, Text::In(Span { start: 6, end: 9 })));
        // A string from elsewhere is copied, never misread as a range.
        let elsewhere = String::from("xyz");
        let copied = Text::new(Cow::Borrowed(&elsewhere), json);
        assert!(matches!(&copied, Text::Owned(v) if v == "xyz"));
        let parts = TokenParts {
            issuer: None,
            subject: Some(borrowed),
            client_id: Some(copied),
            scope: None,
            jti: Some(Text::new(Cow::Owned("q\"r".into()), json)),
            audience: Some(AudienceParts::Many(vec![
                Text::new(Cow::Borrowed(&json[2..3]), json),
                Text::Owned("é".into()),
            ])),
            expires_at: None,
            issued_at: None,
            actor: None,
        };
        let t = AccessToken::new(parts, TokenKind::Reference, json.into());
        assert_eq!(t.subject(), "xyz");
        assert_eq!(t.client_id(), "xyz");
        assert_eq!(t.scope(), "");
        assert_eq!(t.issuer(), None);
        assert_eq!(t.jti(), Some("q\"r"));
        assert_eq!(t.audience(), ["a", "é"]);
        // Decoded values follow the JSON, which stays as it came.
        assert_eq!(t.claims_json(), json);
        assert_eq!(t.claim("a"), Some(serde_json::json!("xyz")));
        assert!(std::mem::size_of::<AccessToken>() <= 176);
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

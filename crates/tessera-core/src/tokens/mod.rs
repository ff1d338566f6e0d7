//! Tokens: access token claims (RFC 9068), the token endpoint's response
//! (RFC 6749 §5.1), the one [`Issuer`] that mints every token and the one
//! [`verifier`] that checks the JWTs this server signed.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

pub mod issuer;
pub mod verifier;

pub use issuer::{
    GrantRecord, IdTokenIssue, Issue, IssueSubject, Issued, IssuedTokenType, Issuer, RefreshIssue,
};
pub use verifier::{OwnToken, Rejected};

/// The acting party of a delegated token (RFC 8693 §4.1): the current actor,
/// with earlier actors nested inside it, never flattened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3). A single audience is
/// written as a string, as most verifiers expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }

    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(list) => list,
        };
        slice.iter().map(String::as_str)
    }
}

/// The claims of a JWT access token (RFC 9068 §2.2), also the record of a
/// reference token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The user, or for app tokens the client itself (RFC 9068 §2.2).
    pub sub: String,
    pub aud: Audience,
    pub exp: UnixTime,
    pub iat: UnixTime,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The acting party chain of delegation (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The service a token was issued to on a person's behalf (on-behalf-of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
}

/// The `typ` header of JWT access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

impl TokenResponse {
    pub fn bearer(access_token: String, expires_in: i64, scope: Option<String>) -> Self {
        TokenResponse {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in,
            scope,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        }
    }
}

/// Whether a string looks like a compact JWS rather than a reference token.
/// Reference tokens are base64url without dots, so the two never overlap.
pub fn is_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

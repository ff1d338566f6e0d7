//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3). Generated secrets are 256-bit random values stored as SHA-256
//! digests and compared in constant time.

use std::fmt;

use base64::Engine as _;

use crate::error::Error;
use crate::model::{Client, ClientAuthMethod};
use crate::params::Params;
use crate::store::ClientStore;

/// The credentials a request presented, before they are checked.
pub enum Presented {
    /// `Authorization: Basic` (`client_secret_basic`).
    Basic {
        client_id: String,
        secret: String,
    },
    /// `client_id` and `client_secret` in the body (`client_secret_post`).
    Post {
        client_id: String,
        secret: String,
    },
    /// Only `client_id`: a public client (`none`).
    PublicId {
        client_id: String,
    },
    Nothing,
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Presented::Basic { client_id, .. } => write!(f, "Basic({client_id}, [redacted])"),
            Presented::Post { client_id, .. } => write!(f, "Post({client_id}, [redacted])"),
            Presented::PublicId { client_id } => write!(f, "PublicId({client_id})"),
            Presented::Nothing => f.write_str("Nothing"),
        }
    }
}

impl Presented {
    /// Reads the credentials from the `Authorization` header value and the body.
    /// A client must use one method only (RFC 6749 §2.3).
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<Self, Error> {
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        if let Some(header) = authorization {
            let (client_id, secret) = parse_basic(header).ok_or_else(Error::invalid_client)?;
            if body_secret.is_some() {
                return Err(Error::invalid_request(
                    "the client authenticated with more than one method",
                ));
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(Error::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            return Ok(Presented::Basic { client_id, secret });
        }
        Ok(match (body_id, body_secret) {
            (Some(id), Some(secret)) => Presented::Post {
                client_id: id.to_owned(),
                secret: secret.to_owned(),
            },
            (Some(id), None) => Presented::PublicId {
                client_id: id.to_owned(),
            },
            (None, Some(_)) => {
                return Err(Error::invalid_request(
                    "client_secret was sent without client_id",
                ));
            }
            (None, None) => Presented::Nothing,
        })
    }

    /// Checks the credentials against the store and returns the client. Every
    /// failure is the same `invalid_client`, whatever the reason.
    pub async fn authenticate(&self, store: &dyn ClientStore) -> Result<Client, Error> {
        let (client_id, secret, method) = match self {
            Presented::Basic { client_id, secret } => {
                (client_id, Some(secret), ClientAuthMethod::ClientSecretBasic)
            }
            Presented::Post { client_id, secret } => {
                (client_id, Some(secret), ClientAuthMethod::ClientSecretPost)
            }
            Presented::PublicId { client_id } => (client_id, None, ClientAuthMethod::None),
            Presented::Nothing => {
                tracing::debug!("no client credentials presented");
                return Err(Error::invalid_client());
            }
        };
        let Some(client) = store.client(client_id).await? else {
            tracing::debug!(client_id, "unknown client");
            return Err(Error::invalid_client());
        };
        let verified = match (&client.secret_digest, secret) {
            (Some(digest), Some(secret)) => {
                digest.matches(secret) && client.auth_method.is_none_or(|m| m == method)
            }
            (None, None) => true,
            _ => false,
        };
        if !verified {
            tracing::debug!(
                client_id,
                method = method.as_str(),
                "client authentication failed"
            );
            return Err(Error::invalid_client());
        }
        Ok(client)
    }
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            parse_basic(&basic("my%20app:s%3Acret+x")),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(
            parse_basic(&basic("id:")),
            Some(("id".into(), String::new()))
        );
        assert_eq!(parse_basic(&basic("no-colon")), None);
        assert_eq!(parse_basic(&basic(":secret")), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let params = Params::from_form(b"client_id=a&client_secret=b").expect("form");
        let err = Presented::from_request(Some(&basic("a:b")), &params).expect_err("two methods");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
    }
}

//! Token introspection (RFC 7662) and the validation of Tessera's own access tokens.

use serde_json::{Map, Value};

use crate::crypto::SecretDigest;
use crate::error::Error;
use crate::model::{Client, IntrospectionPolicy};
use crate::params::Params;
use crate::provider::Provider;
use crate::store::ClientStore as _;
use crate::tokens::issuer::RefreshTokenClaims;
use crate::tokens::{AccessTokenClaims, Rejected, is_jwt};

/// Why a token is not active; logged, never sent (RFC 7662 §2.2 answers only
/// `active: false`, so that introspection is no oracle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    Malformed,
    UnknownKey,
    BadSignature,
    NotAnAccessToken,
    ForeignIssuer,
    /// Signed with a resource's shared secret by someone other than this server.
    NotMinted,
    Expired,
    NotYetValid,
    Revoked,
    /// Issued to a client that has since been deleted.
    ClientDeleted,
    Unknown,
}

impl Provider {
    /// The introspection endpoint: an authenticated client asks about a token.
    pub async fn introspect(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<Value, Error> {
        self.introspect_with_client(authorization, params).await.0
    }

    /// [`introspect`](Self::introspect), with the ID of the client once it
    /// authenticated (for request logs).
    pub async fn introspect_with_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> (Result<Value, Error>, Option<String>) {
        self.with_authenticated_client(authorization, params, async |client| {
            self.introspect_for(client, params).await
        })
        .await
    }

    async fn introspect_for(&self, client: &Client, params: &Params) -> Result<Value, Error> {
        // RFC 7662 §2.1 requires authorization to introspect; a public client has
        // no credentials to prove who it is.
        if client.is_public() {
            return Err(Error::invalid_client());
        }
        let token = params.require("token")?;
        // token_type_hint is optional and only an optimisation (RFC 7662 §2.1);
        // both token kinds are told apart by their shape anyway.
        let claims = match self.validate_access_token(token).await? {
            Ok(claims) if may_introspect(client, &claims) => claims,
            Ok(_) => {
                tracing::debug!(client_id = %client.id, "introspection of a foreign token refused");
                return Ok(inactive());
            }
            Err(reason) => {
                if let Some(body) = self.introspect_refresh_token(client, token).await? {
                    return Ok(body);
                }
                tracing::debug!(?reason, "introspected token is not active");
                return Ok(inactive());
            }
        };
        let mut body = match serde_json::to_value(&claims) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        body.insert("active".into(), Value::Bool(true));
        body.insert("token_type".into(), Value::String("Bearer".into()));
        Ok(Value::Object(body))
    }

    /// Checks an access token issued by this server, JWT or reference: signature
    /// by a published key, `typ`, issuer, lifetime and revocation. The outer
    /// `Result` is a failure of the server; the inner one the token's verdict.
    pub async fn validate_access_token(
        &self,
        token: &str,
    ) -> Result<Result<AccessTokenClaims, Inactive>, Error> {
        let now = self.clock().now();
        let claims = if is_jwt(token) {
            match self.verify_jwt_access_token(token).await? {
                Ok(claims) => claims,
                Err(reason) => return Ok(Err(reason)),
            }
        } else {
            let Some(record) = self
                .store()
                .reference_token(&SecretDigest::of(token))
                .await?
            else {
                return Ok(Err(Inactive::Unknown));
            };
            if record.revoked {
                return Ok(Err(Inactive::Revoked));
            }
            match serde_json::from_value::<AccessTokenClaims>(record.claims) {
                Ok(claims) => claims,
                Err(e) => return Err(Error::server_error(&e)),
            }
        };
        if claims.exp <= now {
            return Ok(Err(Inactive::Expired));
        }
        if claims.iat > now + self.settings().leeway {
            return Ok(Err(Inactive::NotYetValid));
        }
        // Reference tokens too: session ends, password changes, code replays
        // and refresh family revocations record only the access token's jti.
        if self.store().is_jti_revoked(&claims.jti).await? {
            return Ok(Err(Inactive::Revoked));
        }
        // A deleted client's tokens end with it: its reference tokens are
        // deleted along with it, and a JWT of its would otherwise pass here
        // until it expires. (The catalogue answers from memory, absent
        // clients included; services that verify JWTs offline still accept
        // them until `exp`.)
        if self.catalog().client(&claims.client_id).await?.is_none() {
            return Ok(Err(Inactive::ClientDeleted));
        }
        Ok(Ok(claims))
    }

    /// Signature, `typ` and issuer of a JWT access token; the store is read
    /// only for a token signed with a resource's shared secret.
    pub async fn verify_jwt_access_token(
        &self,
        token: &str,
    ) -> Result<Result<AccessTokenClaims, Inactive>, Error> {
        Ok(self
            .verify_own::<AccessTokenClaims>(token)
            .await?
            .map_err(|rejected| match rejected {
                Rejected::Malformed => Inactive::Malformed,
                Rejected::UnknownKey => Inactive::UnknownKey,
                Rejected::BadSignature => Inactive::BadSignature,
                Rejected::WrongKind => Inactive::NotAnAccessToken,
                Rejected::ForeignIssuer => Inactive::ForeignIssuer,
                Rejected::NotMinted => Inactive::NotMinted,
            }))
    }
}

impl Provider {
    /// A refresh token is active while it is the current one of a live family;
    /// only the client it belongs to may ask about it.
    async fn introspect_refresh_token(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Option<Value>, Error> {
        let Ok(claims) = self.verify_own::<RefreshTokenClaims>(token).await? else {
            return Ok(None);
        };
        let Some(record) = self.store().refresh_token(&claims.jti).await? else {
            return Ok(Some(inactive()));
        };
        let now = self.clock().now();
        if record.client_id != client.id
            || record.revoked
            || record.rotated_at.is_some()
            || record.expires_at <= now
        {
            return Ok(Some(inactive()));
        }
        Ok(Some(serde_json::json!({
            "active": true,
            "token_type": "refresh_token",
            "iss": claims.iss,
            "sub": record.user_id,
            "client_id": record.client_id,
            "scope": record.scope.to_string(),
            "iat": record.issued_at,
            "exp": record.expires_at,
            "jti": record.jti,
        })))
    }
}

fn may_introspect(client: &Client, claims: &AccessTokenClaims) -> bool {
    match client.introspection {
        IntrospectionPolicy::Any => true,
        IntrospectionPolicy::Own => {
            claims.client_id == client.id || client.audiences.iter().any(|a| claims.aud.contains(a))
        }
    }
}

fn inactive() -> Value {
    serde_json::json!({ "active": false })
}

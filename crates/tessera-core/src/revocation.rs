//! Token revocation (RFC 7009).

use crate::crypto::SecretDigest;
use crate::error::Error;
use crate::params::Params;
use crate::provider::Provider;
use crate::tokens::is_jwt;
use crate::tokens::issuer::RefreshTokenClaims;

impl Provider {
    /// Revokes an access token of the authenticated client. Unknown, invalid and
    /// expired tokens are answered with success (RFC 7009 §2.2): the client's
    /// goal, that the token no longer works, is reached.
    pub async fn revoke(&self, authorization: Option<&str>, params: &Params) -> Result<(), Error> {
        self.revoke_with_client(authorization, params).await.0
    }

    /// [`revoke`](Self::revoke), with the ID of the client once it
    /// authenticated (for request logs).
    pub async fn revoke_with_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> (Result<(), Error>, Option<String>) {
        self.with_authenticated_client(authorization, params, async |client| {
            self.revoke_for(client, params).await
        })
        .await
    }

    async fn revoke_for(
        &self,
        client: &crate::model::Client,
        params: &Params,
    ) -> Result<(), Error> {
        let token = params.require("token")?;
        // An unknown token_type_hint is ignored: the server must search all its
        // token types anyway (RFC 7009 §2.1).
        let not_yours = || {
            // RFC 7009 §2.1: the server verifies the token was issued to the
            // requesting client, and refuses the request otherwise.
            Error::new(
                crate::Reason::TokenOfAnotherClient,
                "the token was not issued to this client",
            )
        };
        if is_jwt(token)
            && let Ok(claims) = self.verify_own::<RefreshTokenClaims>(token).await?
        {
            if claims.aud != client.id {
                return Err(not_yours());
            }
            // Revoking a refresh token revokes its whole grant, including the access
            // tokens issued with it (RFC 7009 §2.1).
            if let Some(record) = self.store().refresh_token(&claims.jti).await? {
                self.store()
                    .revoke_refresh_family(&record.family_id, self.clock().now())
                    .await?;
            }
            return Ok(());
        }
        if is_jwt(token) {
            let Ok(claims) = self.verify_jwt_access_token(token).await? else {
                return Ok(());
            };
            if claims.client_id != client.id {
                return Err(not_yours());
            }
            if claims.exp > self.clock().now() {
                // Only the jti is recorded, until the token would expire anyway:
                // the token itself is never written.
                self.store().revoke_jti(&claims.jti, claims.exp).await?;
            }
        } else {
            let digest = SecretDigest::of(token);
            match self.store().reference_token(&digest).await? {
                Some(record) if record.client_id != client.id => return Err(not_yours()),
                Some(_) => {
                    self.store().revoke_reference_token(&digest).await?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

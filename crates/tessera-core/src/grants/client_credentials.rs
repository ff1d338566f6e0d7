//! The client credentials grant (RFC 6749 §4.4): an app token for a confidential
//! client acting on its own behalf. `sub` is the client, there is no user and no
//! refresh token (§4.4.3). With JWT access tokens this path writes nothing.

use async_trait::async_trait;

use crate::error::Error;
use crate::grants::{Grant, SubjectKind, Targets, TokenRequest, grant_scope};
use crate::model::{Client, GrantType};
use crate::provider::{NewAccessToken, Provider};
use crate::tokens::TokenResponse;

#[derive(Debug)]
pub struct ClientCredentials;

#[async_trait]
impl Grant for ClientCredentials {
    fn grant_type(&self) -> GrantType {
        GrantType::ClientCredentials
    }

    async fn exchange(
        &self,
        provider: &Provider,
        client: &Client,
        request: &TokenRequest<'_>,
    ) -> Result<TokenResponse, Error> {
        let params = request.params;
        // RFC 6749 §4.4: "MUST only be used by confidential clients".
        if client.is_public() {
            return Err(Error::unauthorized_client(
                "public clients cannot use the client credentials grant",
            ));
        }
        let targets = Targets::resolve(provider, client, params.resources()).await?;
        let scope = grant_scope(client, &targets, params.get("scope"))?;
        targets.check_policy(SubjectKind::App, &scope)?;
        let ttl = client
            .access_token_ttl
            .unwrap_or(provider.settings().app_access_token_ttl);
        let format = targets.token_format(client, provider.settings().default_token_format);
        let scope = (!scope.is_empty()).then(|| scope.to_string());
        let token = provider
            .issue_access_token(NewAccessToken {
                subject: client.id.clone(),
                client_id: client.id.clone(),
                audiences: targets.audiences,
                scope: scope.clone(),
                ttl,
                format,
                auth_time: None,
            })
            .await?;
        Ok(TokenResponse::bearer(token.value, ttl, scope))
    }
}

//! The resource owner password credentials grant (RFC 6749 §4.3): off unless a
//! client is allowed it, with the same brute-force protection as the login page.

use async_trait::async_trait;

use crate::error::Error;
use crate::grants::user_tokens::{Family, UserGrant};
use crate::grants::{Grant, SubjectKind, Targets, TokenRequest};
use crate::model::{Client, GrantType};
use crate::provider::Provider;
use crate::tokens::TokenResponse;

#[derive(Debug)]
pub struct PasswordGrant;

#[async_trait]
impl Grant for PasswordGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::Password
    }

    async fn exchange(
        &self,
        provider: &Provider,
        client: &Client,
        request: &TokenRequest<'_>,
    ) -> Result<TokenResponse, Error> {
        let params = request.params;
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scope = client.requested_scope(params.get("scope"))?;
        // The resource policy before the password is looked at: a refused
        // request must not cost a throttled attempt.
        Targets::resolve(provider, client, params.resources())
            .await?
            .check_policy(SubjectKind::User, &scope)?;
        let user = provider
            .authenticate_user(username, password, request.client_address)
            .await?;
        let now = provider.clock().now();
        let issued = provider
            .issue_user_tokens(UserGrant {
                client,
                user: &user,
                scope,
                refresh_scope: None,
                resources: params.resources().to_vec(),
                auth_time: now,
                sid: None,
                nonce: None,
                family: Family::New,
            })
            .await?;
        Ok(issued.response)
    }
}

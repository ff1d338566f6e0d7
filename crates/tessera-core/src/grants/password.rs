//! The resource owner password credentials grant (RFC 6749 §4.3): off unless a
//! client is allowed it, with the same brute-force protection as the login page.

use async_trait::async_trait;

use crate::error::Error;
use crate::grants::{Grant, GrantRequest, SubjectKind, Targets};
use crate::model::GrantType;
use crate::provider::Provider;
use crate::tokens::Issue;

#[derive(Debug)]
pub struct PasswordGrant;

#[async_trait]
impl Grant for PasswordGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::Password
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["username", "password"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scope = client.requested_scope(params.get("scope"))?;
        // The resource policy before the password is looked at: a refused
        // request must not cost a throttled attempt.
        let targets = Targets::resolve(provider, client, params.resources()).await?;
        targets.check_policy(SubjectKind::User, &scope)?;
        let user = provider
            .authenticate_user(username, password, request.client_address)
            .await?;
        let now = provider.clock().now();
        Ok(Issue::user(user, scope, targets, now))
    }
}

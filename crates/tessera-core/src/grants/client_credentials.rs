//! The client credentials grant (RFC 6749 §4.4): an app token for a confidential
//! client acting on its own behalf. `sub` is the client, there is no user and no
//! refresh token (§4.4.3). With JWT access tokens this path writes nothing.

use async_trait::async_trait;

use crate::error::Error;
use crate::grants::{ClientAuthentication, Grant, GrantRequest, Targets, grant_scope};
use crate::model::GrantType;
use crate::provider::Provider;
use crate::tokens::Issue;

#[derive(Debug)]
pub struct ClientCredentials;

#[async_trait]
impl Grant for ClientCredentials {
    fn grant_type(&self) -> GrantType {
        GrantType::ClientCredentials
    }

    /// RFC 6749 §4.4: "MUST only be used by confidential clients".
    fn client_authentication(&self) -> ClientAuthentication {
        ClientAuthentication::Confidential
    }

    fn parameters(&self) -> &'static [&'static str] {
        &[]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let targets = Targets::resolve(provider, client, request.params.resources()).await?;
        let scope = grant_scope(client, &targets, request.params.get("scope"))?;
        Ok(Issue::app(scope, targets))
    }
}

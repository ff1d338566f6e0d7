//! The JWT bearer grant (`urn:ietf:params:oauth:grant-type:jwt-bearer`), in
//! two forms:
//!
//! - **An assertion** (RFC 7523 §2.1): a JWT a trusted issuer signed about a
//!   person (`sub`, a username or email here), addressed to this server
//!   (`aud`), with `exp` and a `jti` accepted once. It becomes a user token
//!   for the client, with the scope the client may have.
//! - **On-behalf-of** (`requested_token_use=on_behalf_of`): service A holds a
//!   person's access token, issued to A or for an API A serves, and trades it
//!   for a token for service B. The new token keeps the person as `sub`,
//!   names A in `azp` and as the actor in `act` (RFC 8693 §4.1 semantics, an
//!   `act` the token had nesting inside), and is for B. Only a person's
//!   access token of this server is taken: an app token, an ID token or a
//!   refresh token is refused, by its claims and its `typ`.
//!
//! Every refusal of the assertion is `invalid_grant` (RFC 7521 §4.1.1).

use async_trait::async_trait;

use crate::assertion::{ForeignUse, MAX_ACTOR_DEPTH, nest_actor};
use crate::error::{Error, Reason, bounded};
use crate::grants::{ClientAuthentication, Grant, GrantRequest, SubjectKind, Targets, grant_scope};
use crate::model::GrantType;
use crate::provider::Provider;
use crate::tokens::{Issue, RefreshIssue};

/// The `requested_token_use` of on-behalf-of requests.
pub const ON_BEHALF_OF: &str = "on_behalf_of";

#[derive(Debug)]
pub struct JwtBearerGrant;

#[async_trait]
impl Grant for JwtBearerGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::JwtBearer
    }

    /// The client the tokens go to must be known and allowed this grant;
    /// on-behalf-of needs the service's own credentials besides (below).
    fn client_authentication(&self) -> ClientAuthentication {
        ClientAuthentication::Registered
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["assertion", "requested_token_use"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let assertion = params.require("assertion")?;
        match params.get("requested_token_use") {
            None => {}
            Some(ON_BEHALF_OF) => return on_behalf_of(provider, request, assertion).await,
            Some(other) => {
                return Err(Error::invalid_request(format!(
                    "requested_token_use {:?} is not supported; on_behalf_of is",
                    bounded(other)
                )));
            }
        }
        let claims = provider
            .verify_trusted_jwt(assertion, ForeignUse::Assertion)
            .await?;
        let user = provider
            .user_for_subject(claims.sub.as_deref().unwrap_or_default())
            .await?;
        let targets = Targets::resolve(provider, client, params.resources()).await?;
        let scope = grant_scope(client, &targets, params.get("scope"))?;
        let now = provider.clock().now();
        // When the person signed in at the issuer, if it says; else when it
        // vouched for them.
        let auth_time = claims.auth_time.or(claims.iat).unwrap_or(now).min(now);
        let mut issue = Issue::user(user, scope, targets, auth_time);
        issue.amr = None;
        // The assertion is the grant: no refresh token outlives it, and no
        // ID token, since nobody signed in here (RFC 7521 §4.1 leaves both
        // to the server).
        issue.refresh = RefreshIssue::None;
        issue.id_token = None;
        Ok(issue)
    }
}

async fn on_behalf_of(
    provider: &Provider,
    request: &GrantRequest<'_>,
    assertion: &str,
) -> Result<Issue, Error> {
    let client = request.client()?;
    // The service acts: it must prove who it is, not merely name itself.
    if client.is_public() {
        return Err(Error::new(
            Reason::PublicClientRefused,
            "on-behalf-of needs a confidential client",
        ));
    }
    let claims = provider.presented_access_token(assertion).await?;
    if claims.auth_time.is_none() {
        return Err(Error::new(
            Reason::AssertionTokenRefused,
            "the assertion is an application's token; on-behalf-of takes a person's",
        ));
    }
    let for_this_client = claims.client_id == client.id
        || claims.aud.contains(&client.id)
        || client
            .metadata
            .serves
            .iter()
            .any(|served| claims.aud.contains(served));
    if !for_this_client {
        return Err(Error::new(
            Reason::AssertionTokenRefused,
            "the assertion was issued neither to this client nor for an API it serves",
        ));
    }
    let user = provider.user_of_token(&claims.sub).await?;
    // The service becomes the current actor, any earlier chain inside.
    let act = nest_actor(client.id.clone(), claims.act).ok_or_else(|| {
        Error::new(
            Reason::AssertionTokenRefused,
            format!("a delegation chain has at most {MAX_ACTOR_DEPTH} actors"),
        )
    })?;
    let params = request.params;
    let targets = Targets::resolve(provider, client, params.resources()).await?;
    let scope = grant_scope(client, &targets, params.get("scope"))?;
    targets.check_policy(SubjectKind::User, &scope)?;
    let mut issue = Issue::user(user, scope, targets, claims.auth_time.unwrap_or_default());
    issue.amr = claims.amr;
    issue.acr = claims.acr;
    issue.act = Some(act);
    issue.azp = Some(client.id.clone());
    issue.refresh = RefreshIssue::None;
    issue.id_token = None;
    Ok(issue)
}

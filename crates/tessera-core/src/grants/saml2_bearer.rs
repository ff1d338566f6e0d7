//! The SAML 2.0 bearer assertion grant (RFC 7522): a client presents an
//! assertion a configured identity provider signed about a person, and gets
//! an access token for them.
//!
//! The assertion is verified by [`crate::saml`] (XML-DSig over exclusive
//! canonicalization, and Tessera's own checks that the signed element is the
//! one Assertion read, so that signature wrapping fails), against the
//! certificate of the identity provider its Issuer names. Then its ID is
//! accepted once (RFC 7522 §3 item 9, SAML Profiles §4.1.4.5), and its
//! NameID names a user here by username or email. Every refusal is
//! `invalid_grant` (RFC 7522 §3.1).

use async_trait::async_trait;

use crate::error::{Error, Reason, bounded};
use crate::grants::{ClientAuthentication, Grant, GrantRequest, Targets, grant_scope};
use crate::model::GrantType;
use crate::provider::Provider;
use crate::saml::{IdpCertificate, SamlExpectations, UnverifiedAssertion};
use crate::store::AssertionKind;
use crate::store::TrustStore as _;
use crate::tokens::{Issue, RefreshIssue};

#[derive(Debug)]
pub struct Saml2BearerGrant;

#[async_trait]
impl Grant for Saml2BearerGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::Saml2Bearer
    }

    /// The client the tokens go to must be known and allowed this grant.
    fn client_authentication(&self) -> ClientAuthentication {
        ClientAuthentication::Registered
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["assertion"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let unverified = UnverifiedAssertion::parse(params.require("assertion")?)?;
        let Some(idp) = provider.catalog().saml_idp(unverified.issuer()).await? else {
            return Err(Error::new(
                Reason::AssertionUntrusted,
                format!(
                    "the identity provider {:?} is not configured here",
                    bounded(unverified.issuer())
                ),
            ));
        };
        // Checked when the provider was added; a certificate that no longer
        // parses is the server's fault, not the client's.
        let certificate =
            IdpCertificate::from_pem(&idp.certificate_pem).map_err(|e| Error::server_error(&e))?;
        let audiences = provider.assertion_audiences();
        let expectations = SamlExpectations {
            audiences,
            recipient: provider.token_endpoint(),
            now: provider.clock().now(),
            leeway: provider.settings().leeway,
        };
        let verified = unverified.verify(&certificate, &expectations)?;
        if !provider
            .store()
            .record_assertion(
                AssertionKind::Saml,
                &verified.issuer,
                &verified.id,
                verified.replay_until,
                expectations.now,
            )
            .await?
        {
            return Err(Error::new(
                Reason::AssertionReplayed,
                "this assertion (its ID) was used before",
            ));
        }
        let user = provider.user_for_subject(&verified.name_id).await?;
        let targets = Targets::resolve(provider, client, params.resources()).await?;
        let scope = grant_scope(client, &targets, params.get("scope"))?;
        let auth_time = verified
            .authn_instant
            .unwrap_or(expectations.now)
            .min(expectations.now);
        let mut issue = Issue::user(user, scope, targets, auth_time);
        issue.amr = None;
        // The assertion is the grant: no refresh token outlives it, and no
        // ID token, since nobody signed in here.
        issue.refresh = RefreshIssue::None;
        issue.id_token = None;
        Ok(issue)
    }
}

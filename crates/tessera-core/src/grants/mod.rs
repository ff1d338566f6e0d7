//! The grants of the token endpoint, one module each behind one trait.
//!
//! A grant declares its contract (its `grant_type`, the client authentication
//! it needs, the parameters it reads) and turns a request into an [`Issue`]:
//! what to issue, never the tokens themselves. The token endpoint's fixed steps
//! (authenticate the client as the grant asks, check it may use the grant, hand
//! the grant only its declared parameters, mint through the one
//! [`Issuer`](crate::tokens::Issuer)) live in [`crate::provider::Provider::token`].
//! A new grant is one module here and one line in [`all`].

use async_trait::async_trait;
use tessera_jose::Algorithm;

use crate::error::{Error, Reason};
use crate::model::{Client, GrantType, Resource, TokenFormat};
use crate::params::Declared;
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::ResourceStore as _;
use crate::tokens::Issue;

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod jwt_bearer;
pub mod password;
pub mod refresh_token;
pub mod saml2_bearer;
pub mod token_exchange;

/// How a grant needs the client to authenticate at the token endpoint
/// (RFC 6749 §2.3, §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// A confidential client with its credentials; public clients are refused
    /// with `unauthorized_client` (client credentials, RFC 6749 §4.4).
    Confidential,
    /// Any registered client: a confidential one with its credentials, a
    /// public one by its `client_id` alone.
    Registered,
    /// Client authentication may be left out altogether: the grant's own
    /// assertion is the credential (RFC 7521 §4.2). When credentials are
    /// presented they are checked all the same.
    Optional,
}

/// A token request as a grant sees it.
#[derive(Debug, Clone, Copy)]
pub struct GrantRequest<'a> {
    /// The authenticated client; `None` only for grants whose client
    /// authentication is [`ClientAuthentication::Optional`].
    pub client: Option<&'a Client>,
    /// Only the parameters the grant declared (and `scope` and `resource`).
    pub params: Declared<'a>,
    /// The caller's address, for brute-force protection.
    pub client_address: Option<&'a str>,
}

impl<'a> GrantRequest<'a> {
    /// The client, for grants that always have one.
    pub fn client(&self) -> Result<&'a Client, Error> {
        self.client.ok_or_else(Error::invalid_client)
    }
}

#[async_trait]
pub trait Grant: Send + Sync + std::fmt::Debug {
    fn grant_type(&self) -> GrantType;

    /// The client authentication the grant needs.
    fn client_authentication(&self) -> ClientAuthentication {
        ClientAuthentication::Registered
    }

    /// The parameters the grant reads, beside `grant_type`, the client's
    /// credentials, `scope` and `resource`. Others are not passed on; a
    /// repeated one is refused (RFC 6749 §3.2).
    fn parameters(&self) -> &'static [&'static str];

    /// Decides what to issue for a request from a client allowed this grant.
    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error>;
}

/// The grants this build serves, in a fixed table: lookup never depends on
/// registration order.
pub fn all() -> Vec<Box<dyn Grant>> {
    vec![
        Box::new(authorization_code::AuthorizationCodeGrant),
        Box::new(client_credentials::ClientCredentials),
        Box::new(device_code::DeviceCodeGrant),
        Box::new(password::PasswordGrant),
        Box::new(refresh_token::RefreshTokenGrant),
        Box::new(token_exchange::TokenExchangeGrant),
        Box::new(jwt_bearer::JwtBearerGrant),
        Box::new(saml2_bearer::Saml2BearerGrant),
    ]
}

/// Who a token speaks for: resources choose which kinds they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A person who signed in (code, implicit, password, device, refresh).
    User,
    /// An application acting for itself (client credentials).
    App,
}

/// The scopes of OpenID Connect (Core §5.4, §11): they ask for claims about the
/// person, so no API defines them.
pub const USER_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The audiences and registered resources an access token will be for.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The `resource` values as requested (RFC 8707), which a refresh asks
    /// for again; empty when the defaults applied.
    pub requested: Vec<String>,
    pub audiences: Vec<String>,
    pub resources: Vec<Resource>,
}

/// How a JWT access token for some targets is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessSigning<'a> {
    /// With the server's current key of this algorithm.
    Key(Algorithm),
    /// With the shared secret of this resource, the token's only audience.
    SharedSecret(&'a Resource),
}

impl Targets {
    /// Resolves the audience of a token (RFC 8707 §2): the requested `resource`
    /// values, each of which the client must be allowed; else the client's single
    /// audience; else the server's default audience.
    pub async fn resolve(
        provider: &Provider,
        client: &Client,
        requested: &[String],
    ) -> Result<Targets, Error> {
        client.check_resources(requested)?;
        let audiences: Vec<String> = if !requested.is_empty() {
            let mut list: Vec<String> = Vec::with_capacity(requested.len());
            for resource in requested {
                // RFC 8707 §2: an absolute URI without a fragment.
                if !resource.contains(':') || resource.contains('#') {
                    return Err(Error::new(
                        Reason::TargetMalformed,
                        format!(
                            "resource {:?} is not an absolute URI without a fragment",
                            crate::error::bounded(resource)
                        ),
                    ));
                }
                if !list.contains(resource) {
                    list.push(resource.clone());
                }
            }
            list
        } else if let [only] = client.audiences.as_slice() {
            vec![only.clone()]
        } else {
            vec![provider.settings().default_audience.clone()]
        };
        let mut resources = Vec::new();
        for audience in &audiences {
            if let Some(resource) = provider.catalog().resource(audience).await? {
                resources.push(resource);
            }
        }
        Ok(Targets {
            requested: requested.to_vec(),
            audiences,
            resources,
        })
    }

    /// The resource policy, one rule for every grant: each registered target
    /// accepts tokens of this kind (`invalid_target` otherwise, RFC 8707 §2),
    /// and the scope stays within the scopes the targets define
    /// (`invalid_scope`, RFC 6749 §5.2). OpenID Connect's own scopes are about
    /// the person, not an API, so a user token may carry them beside.
    pub fn check_policy(&self, kind: SubjectKind, scope: &Scope) -> Result<(), Error> {
        if let Some(resource) = self.resources.iter().find(|r| !r.accepts.accepts(kind)) {
            return Err(Error::new(
                Reason::TargetRefusesTokenKind,
                format!(
                    "{} accepts only tokens {}",
                    resource.audience,
                    match kind {
                        SubjectKind::User => "of applications acting for themselves",
                        SubjectKind::App => "issued to people",
                    }
                ),
            ));
        }
        if let Some(defined) = self.defined_scopes() {
            let excess: Vec<&str> = scope
                .iter()
                .filter(|s| !defined.contains(s))
                .filter(|s| kind == SubjectKind::App || !USER_SCOPES.contains(s))
                .collect();
            if !excess.is_empty() {
                return Err(Error::new(
                    Reason::ScopeNotDefinedByResource,
                    format!(
                        "scope not defined by the requested resource: {}",
                        crate::error::bounded_list(&excess)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The scopes the targets define, if any of them restricts scopes.
    pub fn defined_scopes(&self) -> Option<Scope> {
        let mut restricting = self
            .resources
            .iter()
            .filter(|r| !r.scopes.is_empty())
            .peekable();
        restricting.peek()?;
        Some(Scope::from_tokens(
            restricting.flat_map(|r| r.scopes.iter().map(str::to_owned)),
        ))
    }

    /// The access token format: a resource that insists on one wins (the API owner
    /// decides how its tokens look; reference wins over JWT if two disagree), then
    /// the client's choice, then the server default.
    pub fn token_format(&self, client: &Client, default: TokenFormat) -> TokenFormat {
        let mut from_resources = self.resources.iter().filter_map(|r| r.token_format);
        match from_resources.next() {
            Some(first) => {
                if first == TokenFormat::Reference
                    || from_resources.any(|f| f == TokenFormat::Reference)
                {
                    TokenFormat::Reference
                } else {
                    first
                }
            }
            None => client.token_format.unwrap_or(default),
        }
    }

    /// How the JWT access token is signed: a resource's `signing_alg` wins over
    /// the server's (an API whose library verifies only RS256 gets RS256);
    /// resources without one take what the others ask for. A token cannot
    /// serve audiences that ask for different algorithms (`invalid_target`,
    /// RFC 8707 §2), and a shared secret signs tokens for its resource alone:
    /// its holder could otherwise mint tokens for the other audiences, and they
    /// could not verify it anyway.
    pub fn signing(&self, server_alg: Algorithm) -> Result<AccessSigning<'_>, Error> {
        let mut chosen: Option<(&Resource, Algorithm)> = None;
        for resource in &self.resources {
            let Some(alg) = resource.signing_alg else {
                continue;
            };
            match chosen {
                None => chosen = Some((resource, alg)),
                Some((first, first_alg)) if first_alg != alg => {
                    return Err(Error::new(
                        Reason::TargetsCannotShareSignature,
                        format!(
                            "{} accepts {first_alg} tokens and {} accepts {alg} tokens: one token \
                         cannot be signed for both; request a token for each",
                            first.audience, resource.audience
                        ),
                    ));
                }
                Some((first, _)) if alg == Algorithm::HS256 => {
                    return Err(Error::new(
                        Reason::TargetsCannotShareSignature,
                        format!(
                            "{} and {} each verify tokens with a secret of their own: one token \
                         cannot be signed for both; request a token for each",
                            first.audience, resource.audience
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        match chosen {
            None => Ok(AccessSigning::Key(server_alg)),
            Some((resource, Algorithm::HS256)) => {
                if self.audiences.len() > 1 {
                    return Err(Error::new(
                        Reason::TargetsCannotShareSignature,
                        format!(
                            "{} verifies tokens with a secret shared with it alone, so its tokens \
                         cannot name other audiences; request a token for each",
                            resource.audience
                        ),
                    ));
                }
                Ok(AccessSigning::SharedSecret(resource))
            }
            Some((_, alg)) => Ok(AccessSigning::Key(alg)),
        }
    }
}

/// Grants the requested scope if the client (and the targets) allow all of it, or
/// everything allowed when none is requested (RFC 6749 §3.3 lets the server apply a
/// default). Never widens.
pub fn grant_scope(
    client: &Client,
    targets: &Targets,
    requested: Option<&str>,
) -> Result<Scope, Error> {
    let allowed = match targets.defined_scopes() {
        Some(defined) => client.scopes.intersection(&defined),
        None => client.scopes.clone(),
    };
    match requested {
        None => Ok(allowed),
        Some(text) => {
            let scope = Scope::parse(text)?;
            let excess: Vec<&str> = scope.excess(&allowed).collect();
            if excess.is_empty() {
                Ok(scope)
            } else {
                Err(Error::invalid_scope(format!(
                    "scope not allowed for this client or resource: {}",
                    crate::error::bounded_list(&excess)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::model::SealedSecret;

    fn resource(audience: &str, alg: Option<Algorithm>) -> Resource {
        let mut resource = Resource::new(audience, 0);
        resource.signing_alg = alg;
        if alg == Some(Algorithm::HS256) {
            resource.secret_version = 1;
            resource.sealed_secret = Some(SealedSecret(vec![0; 60]));
        }
        resource
    }

    /// Targets for these audiences, of which `resources` are registered.
    fn targets(audiences: &[&str], resources: Vec<Resource>) -> Targets {
        Targets {
            requested: vec![],
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            resources,
        }
    }

    fn refusal(targets: &Targets) -> String {
        let err = targets.signing(Algorithm::ES256).expect_err("refused");
        assert_eq!(err.reason, Reason::TargetsCannotShareSignature, "{err}");
        assert_eq!(err.code(), ErrorCode::InvalidTarget);
        err.description.into_owned()
    }

    #[test]
    fn a_resource_algorithm_wins_over_the_servers() {
        let none = targets(&["https://a"], vec![resource("https://a", None)]);
        assert_eq!(
            none.signing(Algorithm::ES256),
            Ok(AccessSigning::Key(Algorithm::ES256))
        );
        let unregistered = targets(&["https://a"], vec![]);
        assert_eq!(
            unregistered.signing(Algorithm::PS256),
            Ok(AccessSigning::Key(Algorithm::PS256))
        );
        let rs256 = targets(
            &["https://a", "https://b", "https://c"],
            vec![
                resource("https://a", None),
                resource("https://b", Some(Algorithm::RS256)),
                resource("https://c", Some(Algorithm::RS256)),
            ],
        );
        assert_eq!(
            rs256.signing(Algorithm::ES256),
            Ok(AccessSigning::Key(Algorithm::RS256)),
            "agreeing resources and one without a preference"
        );
        let hs256 = targets(
            &["https://a"],
            vec![resource("https://a", Some(Algorithm::HS256))],
        );
        assert_eq!(
            hs256.signing(Algorithm::ES256),
            Ok(AccessSigning::SharedSecret(&hs256.resources[0]))
        );
    }

    #[test]
    fn targets_that_cannot_share_a_signature_are_refused() {
        let disagree = targets(
            &["https://a", "https://b"],
            vec![
                resource("https://a", Some(Algorithm::RS256)),
                resource("https://b", Some(Algorithm::EdDSA)),
            ],
        );
        let message = refusal(&disagree);
        assert!(
            message.contains("https://a accepts RS256 tokens and https://b accepts EdDSA tokens"),
            "{message}"
        );
        let symmetric_and_not = targets(
            &["https://a", "https://b"],
            vec![
                resource("https://a", Some(Algorithm::HS256)),
                resource("https://b", Some(Algorithm::ES256)),
            ],
        );
        assert!(refusal(&symmetric_and_not).contains("HS256"));
        let two_secrets = targets(
            &["https://a", "https://b"],
            vec![
                resource("https://a", Some(Algorithm::HS256)),
                resource("https://b", Some(Algorithm::HS256)),
            ],
        );
        assert!(refusal(&two_secrets).contains("a secret of their own"));
        // An audience that is no registered resource still could not verify
        // the token, and the secret's holder could mint tokens for it.
        let with_unregistered = targets(
            &["https://a", "https://elsewhere"],
            vec![resource("https://a", Some(Algorithm::HS256))],
        );
        assert!(refusal(&with_unregistered).contains("alone"));
    }
}

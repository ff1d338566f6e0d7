//! Token exchange (RFC 8693): a client trades a token it holds (the subject
//! token) for one with another audience or a narrower scope.
//!
//! - Subject tokens: this server's access tokens and ID tokens, and JWTs of
//!   trusted issuers. Each is checked as the kind its `subject_token_type`
//!   names, by its `typ` where it is ours: a refresh token never passes for
//!   an access token.
//! - Delegation (§1.1): the new token keeps the subject's `sub` and names the
//!   actor in `act`: the actor token's subject when one is sent, otherwise
//!   the client. An `act` the subject token already had nests inside (§4.1:
//!   the current actor outermost), so the chain is never flattened; and it
//!   comes only from a verified token, never from the request.
//! - Impersonation (no new `act`) only for clients registered for it, and
//!   only without an actor token.
//! - Scope only narrows from the subject token's; audiences are those the
//!   client may ask for, under each resource's policy (user or app tokens).
//! - No refresh token: a refresh would have to carry the delegation chain
//!   forward, and a delegated token is meant to be short-lived.
//!
//! RFC 8693 §2.2.2: a subject or actor token that is invalid or unacceptable
//! is `invalid_request`, as is an unsupported token type.

use async_trait::async_trait;

use crate::assertion::{ForeignClaims, ForeignUse, MAX_ACTOR_DEPTH, nest_actor};
use crate::error::{Error, Reason, bounded};
use crate::grants::{ClientAuthentication, Grant, GrantRequest, Targets, grant_scope};
use crate::model::{Client, GrantType};
use crate::provider::Provider;
use crate::scope::Scope;
use crate::tokens::{Actor, Issue, IssueSubject, IssuedTokenType};

/// RFC 8693 §3 token type identifiers.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

#[derive(Debug)]
pub struct TokenExchangeGrant;

#[async_trait]
impl Grant for TokenExchangeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::TokenExchange
    }

    /// The client is the party that acts (and that `act` names): it must
    /// prove who it is.
    fn client_authentication(&self) -> ClientAuthentication {
        ClientAuthentication::Confidential
    }

    fn parameters(&self) -> &'static [&'static str] {
        &[
            "subject_token",
            "subject_token_type",
            "actor_token",
            "actor_token_type",
            "requested_token_type",
            "audience",
        ]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let subject_token = params.require("subject_token")?;
        let subject_type = params.require("subject_token_type")?;
        let issued_token_type = match params.get("requested_token_type") {
            None | Some(ACCESS_TOKEN_TYPE) => IssuedTokenType::AccessToken,
            Some(JWT_TYPE) => IssuedTokenType::Jwt,
            Some(REFRESH_TOKEN_TYPE) => {
                return Err(Error::new(
                    Reason::TokenTypeUnsupported,
                    "token exchange issues no refresh tokens here: a refresh would lose the \
                     delegation chain; ask for an access_token",
                ));
            }
            Some(other) => {
                return Err(Error::new(
                    Reason::TokenTypeUnsupported,
                    format!(
                        "requested_token_type {:?} is not issued here; ask for {ACCESS_TOKEN_TYPE} \
                         or {JWT_TYPE}",
                        bounded(other)
                    ),
                ));
            }
        };
        let subject = subject(provider, client, subject_token, subject_type)
            .await
            .map_err(|e| refusal(Reason::SubjectTokenRefused, "subject_token", e))?;
        let actor = match (params.get("actor_token"), params.get("actor_token_type")) {
            (None, None) => None,
            (Some(token), Some(kind)) => Some(
                actor(provider, token, kind)
                    .await
                    .map_err(|e| refusal(Reason::ActorTokenRefused, "actor_token", e))?,
            ),
            // RFC 8693 §2.1: actor_token_type is required with an actor_token
            // and must not be sent without one.
            (Some(_), None) => {
                return Err(Error::new(
                    Reason::MissingParameter,
                    "actor_token_type is required with an actor_token",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::new(
                    Reason::MalformedRequest,
                    "actor_token_type was sent without an actor_token",
                ));
            }
        };
        let act = match actor {
            Some(actor_sub) => Some(nest(actor_sub, subject.act)?),
            None if client.metadata.impersonation => subject.act,
            None => Some(nest(client.id.clone(), subject.act)?),
        };

        let requested: Vec<String> = params
            .audiences()
            .iter()
            .chain(params.resources())
            .cloned()
            .collect();
        let targets = Targets::resolve(provider, client, &requested).await?;
        let scope = exchanged_scope(client, &targets, params.get("scope"), subject.scope)?;
        let kind = subject.subject.kind();
        targets.check_policy(kind, &scope)?;
        let mut issue = match subject.subject {
            IssueSubject::User(user) => {
                let mut issue = Issue::user(user, scope, targets, subject.auth_time.unwrap_or(0));
                issue.auth_time = subject.auth_time;
                issue.amr = subject.amr;
                issue.acr = subject.acr;
                issue
            }
            other => {
                let mut issue = Issue::app(scope, targets);
                issue.subject = other;
                issue
            }
        };
        issue.act = act;
        issue.refresh = crate::tokens::RefreshIssue::None;
        issue.id_token = None;
        issue.issued_token_type = Some(issued_token_type);
        Ok(issue)
    }
}

/// The subject token, verified.
struct Subject {
    subject: IssueSubject,
    /// The scope the subject token carried; `None` when it names none (a
    /// foreign JWT without `scope`, or an ID token), so only the client's
    /// allowed scopes bound the new one.
    scope: Option<Scope>,
    act: Option<Actor>,
    auth_time: Option<i64>,
    amr: Option<Vec<String>>,
    acr: Option<String>,
}

async fn subject(
    provider: &Provider,
    client: &Client,
    token: &str,
    token_type: &str,
) -> Result<Subject, Error> {
    match token_type {
        ACCESS_TOKEN_TYPE => {
            let claims = provider.presented_access_token(token).await?;
            let scope = Scope::parse(claims.scope.as_deref().unwrap_or(""))?;
            // A person's token has auth_time; an application's does not.
            let subject = if claims.auth_time.is_some() {
                IssueSubject::User(provider.user_of_token(&claims.sub).await?)
            } else {
                IssueSubject::OtherApp(claims.sub.clone())
            };
            Ok(Subject {
                subject,
                scope: Some(scope),
                act: claims.act,
                auth_time: claims.auth_time,
                amr: claims.amr,
                acr: claims.acr,
            })
        }
        ID_TOKEN_TYPE => {
            let claims = provider.presented_id_token(token, &client.id).await?;
            Ok(Subject {
                subject: IssueSubject::User(provider.user_of_token(&claims.sub).await?),
                scope: None,
                act: None,
                auth_time: Some(claims.auth_time),
                amr: None,
                acr: None,
            })
        }
        JWT_TYPE => {
            let claims = provider
                .verify_trusted_jwt(token, ForeignUse::ExchangedToken)
                .await?;
            foreign_subject(provider, claims).await
        }
        REFRESH_TOKEN_TYPE => Err(Error::new(
            Reason::TokenTypeUnsupported,
            "refresh tokens cannot be exchanged; use the refresh_token grant",
        )),
        other => Err(Error::new(
            Reason::TokenTypeUnsupported,
            format!(
                "subject_token_type {:?} is not accepted; use {ACCESS_TOKEN_TYPE}, {ID_TOKEN_TYPE} \
                 or {JWT_TYPE}",
                bounded(other)
            ),
        )),
    }
}

async fn foreign_subject(provider: &Provider, claims: ForeignClaims) -> Result<Subject, Error> {
    let sub = claims.sub.as_deref().unwrap_or_default();
    let user = provider.user_for_subject(sub).await?;
    let scope = claims.scope.as_deref().map(Scope::parse).transpose()?;
    Ok(Subject {
        subject: IssueSubject::User(user),
        scope,
        act: claims.act,
        auth_time: Some(
            claims
                .auth_time
                .or(claims.iat)
                .unwrap_or(provider.clock().now()),
        ),
        amr: None,
        acr: None,
    })
}

/// The actor token's subject: who acts.
async fn actor(provider: &Provider, token: &str, token_type: &str) -> Result<String, Error> {
    match token_type {
        ACCESS_TOKEN_TYPE => Ok(provider.presented_access_token(token).await?.sub),
        JWT_TYPE => Ok(provider
            .verify_trusted_jwt(token, ForeignUse::ExchangedToken)
            .await?
            .sub
            .unwrap_or_default()),
        other => Err(Error::new(
            Reason::TokenTypeUnsupported,
            format!(
                "actor_token_type {:?} is not accepted; use {ACCESS_TOKEN_TYPE} or {JWT_TYPE}",
                bounded(other)
            ),
        )),
    }
}

/// The new chain, the subject token's nested inside (RFC 8693 §4.1).
fn nest(actor: String, earlier: Option<Actor>) -> Result<Actor, Error> {
    nest_actor(actor, earlier).ok_or_else(|| {
        Error::new(
            Reason::SubjectTokenRefused,
            format!("a delegation chain has at most {MAX_ACTOR_DEPTH} actors"),
        )
    })
}

/// The scope of the new token: what the client may have for these targets,
/// narrowed to the subject token's; a request for more than either is
/// `invalid_scope` (RFC 8693 §2.1 leaves narrowing to the server's policy).
fn exchanged_scope(
    client: &Client,
    targets: &Targets,
    requested: Option<&str>,
    subject_scope: Option<Scope>,
) -> Result<Scope, Error> {
    let Some(subject_scope) = subject_scope else {
        return grant_scope(client, targets, requested);
    };
    match requested {
        Some(text) => {
            let scope = Scope::parse(text)?;
            let widened: Vec<&str> = scope.excess(&subject_scope).collect();
            if !widened.is_empty() {
                return Err(Error::new(
                    Reason::ScopeWidened,
                    format!(
                        "the subject token does not carry: {}",
                        crate::error::bounded_list(&widened)
                    ),
                ));
            }
            grant_scope(client, targets, Some(text))
        }
        None => Ok(grant_scope(client, targets, None)?.intersection(&subject_scope)),
    }
}

/// A refused subject or actor token, as RFC 8693 §2.2.2 answers it: the
/// precise reason kept in the description, the wire code `invalid_request`.
/// Server failures pass through unchanged.
fn refusal(reason: Reason, parameter: &str, error: Error) -> Error {
    use crate::error::ErrorCode;
    match error.code() {
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable => error,
        _ if error.reason == Reason::TokenTypeUnsupported => error,
        _ => {
            tracing::debug!(reason = ?error.reason, parameter, "exchanged token refused");
            Error::new(reason, format!("{parameter}: {}", error.description))
        }
    }
}

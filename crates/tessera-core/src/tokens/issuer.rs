//! The one issuer: every access, refresh and ID token is minted here, from an
//! [`Issue`] that a grant (or the authorization endpoint's implicit response)
//! describes. The grant decides *what* to issue; the issuer applies the rules
//! every token shares (the resource policy, lifetimes, format, signing key) and
//! records what revocation needs.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{SecretDigest, random_id, random_token};
use crate::error::{Error, Reason};
use crate::grants::refresh_token::repeatable_successor;
use crate::grants::{AccessSigning, SubjectKind, Targets};
use crate::model::{Client, GrantType, TokenFormat};
use crate::oidc;
use crate::provider::Provider;
use crate::scope::Scope;
use crate::shared_secret;
use crate::store::{ReferenceToken, RefreshToken, User};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, Actor, Audience, TokenResponse};

/// The `typ` of refresh tokens, so they are never mistaken for access or ID tokens.
pub const REFRESH_TOKEN_TYP: &str = "rt+jwt";

/// The claims of a refresh token: only what identifies it; everything else is
/// in the server's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client the token is bound to.
    pub aud: String,
    pub iat: UnixTime,
    pub exp: UnixTime,
    pub jti: String,
}

/// Whom the tokens speak for.
#[derive(Debug, Clone)]
pub enum IssueSubject {
    /// A person: `sub` is the user.
    User(User),
    /// The client acting for itself: `sub` is the client (RFC 9068 §2.2).
    App,
    /// Another application, whose app token was exchanged: `sub` is that
    /// client, and the token's `act` names who acts for it.
    OtherApp(String),
}

impl IssueSubject {
    pub fn kind(&self) -> SubjectKind {
        match self {
            IssueSubject::User(_) => SubjectKind::User,
            IssueSubject::App | IssueSubject::OtherApp(_) => SubjectKind::App,
        }
    }
}

/// What the token endpoint's response says it issued (RFC 8693 §3), for the
/// grants of token exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedTokenType {
    /// `urn:ietf:params:oauth:token-type:access_token`: in the format the
    /// client and resources ask for.
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:jwt`: a JWT access token, whatever
    /// format the client would get otherwise.
    Jwt,
}

impl IssuedTokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedTokenType::AccessToken => crate::grants::token_exchange::ACCESS_TOKEN_TYPE,
            IssuedTokenType::Jwt => crate::grants::token_exchange::JWT_TYPE,
        }
    }
}

/// Whether a refresh token comes with the access token.
#[derive(Debug, Clone)]
pub enum RefreshIssue {
    None,
    /// A new grant: a new family starts, if the client may refresh.
    New,
    /// A rotation: the successor joins the family, keeps its absolute end and
    /// the grant's scope, which may be wider than the narrowed access token's
    /// (RFC 6749 §6).
    Continue {
        family_id: String,
        family_expires_at: UnixTime,
        offline: bool,
        scope: Scope,
        rotation: Rotation,
    },
}

/// How a refresh continues its family.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The current token with this `jti` is replaced by a new successor.
    From(String),
    /// A retry within the grace window: the successor the first rotation made
    /// is issued again (see `grants::refresh_token::repeatable_successor`).
    Repeat(Box<RefreshToken>),
}

/// An ID token to issue beside the access token (when the scope has `openid`).
#[derive(Debug, Clone, Default)]
pub struct IdTokenIssue {
    pub nonce: Option<String>,
}

/// What the issuer records once the tokens exist, for later revocation.
#[derive(Debug, Clone)]
pub enum GrantRecord {
    None,
    /// The authorization code the tokens were exchanged for: a replay of it
    /// revokes them (RFC 6749 §4.1.2).
    Code(SecretDigest),
}

/// What a grant asks to be issued. It mints nothing itself.
#[derive(Debug, Clone)]
pub struct Issue {
    pub subject: IssueSubject,
    pub scope: Scope,
    /// The audiences and their registered resources (RFC 8707).
    pub targets: Targets,
    /// When the person signed in; `None` for app tokens.
    pub auth_time: Option<UnixTime>,
    /// How they signed in (RFC 8176), for the access token.
    pub amr: Option<Vec<String>>,
    pub acr: Option<String>,
    /// The delegation chain (RFC 8693 §4.1).
    pub act: Option<Actor>,
    /// `azp`: the party the token was issued to on someone's behalf
    /// (on-behalf-of names the calling service so).
    pub azp: Option<String>,
    /// For token exchange: the `issued_token_type` to answer with, which a
    /// `Jwt` also binds the format to.
    pub issued_token_type: Option<IssuedTokenType>,
    pub refresh: RefreshIssue,
    pub id_token: Option<IdTokenIssue>,
    /// The login session the grant came from (`sid`).
    pub sid: Option<String>,
    pub record: GrantRecord,
}

impl Issue {
    /// Tokens for the client itself (no person, no refresh, no ID token).
    pub fn app(scope: Scope, targets: Targets) -> Issue {
        Issue {
            subject: IssueSubject::App,
            scope,
            targets,
            auth_time: None,
            amr: None,
            acr: None,
            act: None,
            azp: None,
            issued_token_type: None,
            refresh: RefreshIssue::None,
            id_token: None,
            sid: None,
            record: GrantRecord::None,
        }
    }

    /// Tokens for a person who signed in with a password at `auth_time`; a new
    /// refresh family and an ID token where the client and scope allow.
    pub fn user(user: User, scope: Scope, targets: Targets, auth_time: UnixTime) -> Issue {
        Issue {
            subject: IssueSubject::User(user),
            scope,
            targets,
            auth_time: Some(auth_time),
            amr: Some(vec!["pwd".to_owned()]),
            acr: None,
            act: None,
            azp: None,
            issued_token_type: None,
            refresh: RefreshIssue::New,
            id_token: Some(IdTokenIssue::default()),
            sid: None,
            record: GrantRecord::None,
        }
    }
}

/// What was issued: the response, and what revocation needs to know.
#[derive(Debug, Clone)]
pub struct Issued {
    pub response: TokenResponse,
    pub access_jti: String,
    pub access_expires_at: UnixTime,
    pub family_id: Option<String>,
}

/// A refresh token as minted.
struct MintedRefresh {
    token: String,
    family_id: String,
    /// The record of a new family's first token, which the caller stores: a
    /// code exchange with the code's record of it, in one write. A
    /// rotation's is stored by then.
    unstored: Option<RefreshToken>,
}

/// The issuer of every token, over the provider's store, keys and clock.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    provider: &'a Provider,
}

impl Provider {
    pub fn issuer(&self) -> Issuer<'_> {
        Issuer { provider: self }
    }
}

impl Issuer<'_> {
    /// Mints what `issue` describes for `client`: the access token, then a
    /// refresh token and an ID token where asked for and allowed.
    pub async fn issue(&self, client: &Client, issue: Issue) -> Result<Issued, Error> {
        let provider = self.provider;
        let settings = provider.settings();
        let now = provider.clock().now();
        // The resource policy holds for every grant, whatever it checked
        // before (RFC 8707 §2, RFC 6749 §3.3).
        issue
            .targets
            .check_policy(issue.subject.kind(), &issue.scope)?;
        let subject = match &issue.subject {
            IssueSubject::User(user) => user.id.clone(),
            IssueSubject::App => client.id.clone(),
            IssueSubject::OtherApp(id) => id.clone(),
        };
        let ttl = client.access_token_ttl.unwrap_or(match issue.subject {
            IssueSubject::User(_) => settings.user_access_token_ttl,
            IssueSubject::App | IssueSubject::OtherApp(_) => settings.app_access_token_ttl,
        });
        let mut format = issue
            .targets
            .token_format(client, settings.default_token_format);
        if issue.issued_token_type == Some(IssuedTokenType::Jwt) {
            // RFC 8693 §3: the client asked for a JWT. A resource that takes
            // only reference tokens could not use one.
            if let Some(resource) = issue
                .targets
                .resources
                .iter()
                .find(|r| r.token_format == Some(TokenFormat::Reference))
            {
                return Err(Error::new(
                    crate::error::Reason::TargetRefusesTokenKind,
                    format!(
                        "{} accepts only reference tokens; ask for an access_token",
                        resource.audience
                    ),
                ));
            }
            format = TokenFormat::Jwt;
        }
        // Decided before anything is minted or stored: targets that cannot
        // share one signed token are refused whole. A reference token is not
        // signed, so its audiences have nothing to disagree on.
        let signing = match format {
            TokenFormat::Jwt => Some(issue.targets.signing(settings.signing_alg)?),
            TokenFormat::Reference => None,
        };
        let scope_text = (!issue.scope.is_empty()).then(|| issue.scope.to_string());
        let mut claims = AccessTokenClaims {
            iss: settings.issuer.clone(),
            sub: subject,
            aud: Audience::from_list(issue.targets.audiences.clone()),
            exp: now + ttl,
            iat: now,
            jti: random_id(),
            client_id: client.id.clone(),
            scope: scope_text.clone(),
            amr: issue.amr.clone(),
            auth_time: issue.auth_time,
            acr: issue.acr.clone(),
            act: issue.act.clone(),
            azp: issue.azp.clone(),
        };
        if let Some(AccessSigning::SharedSecret(_)) = signing {
            // Before the jti is recorded anywhere: see `shared_secret`.
            shared_secret::seal_jti(provider.keys().kek(), &mut claims)
                .map_err(|e| Error::server_error(&e))?;
        }
        // The refresh token first: a rotation can still be refused (another
        // request rotated the token meanwhile), and then no access token
        // should exist.
        let mut refresh = match &issue.subject {
            IssueSubject::User(user) if client.allows(GrantType::RefreshToken) => {
                self.refresh_token(client, user, &issue, &claims).await?
            }
            _ => None,
        };
        let family_id = refresh.as_ref().map(|r| r.family_id.clone());
        let unstored = refresh.as_mut().and_then(|r| r.unstored.take());
        let store = provider.store();
        // What a code issues is recorded before it exists, so that a replay
        // of the code can revoke it; if a replay came first, this exchange
        // revokes it itself (RFC 6749 §4.1.2). Either way nothing a replayed
        // code issued stays valid, whichever request got there first.
        let recorded = match (&issue.record, &unstored) {
            (GrantRecord::Code(digest), Some(record)) => {
                store
                    .record_code_exchange(digest, &claims.jti, claims.exp, record)
                    .await?
            }
            (GrantRecord::Code(digest), None) => {
                store
                    .record_code_tokens(digest, &claims.jti, claims.exp, family_id.as_deref())
                    .await?
            }
            (GrantRecord::None, Some(record)) => {
                store.insert_refresh_token(record).await?;
                true
            }
            (GrantRecord::None, None) => true,
        };
        if !recorded {
            tracing::warn!(client_id = %client.id, "authorization code replayed during its exchange; revoking its tokens");
            store.revoke_jti(&claims.jti, claims.exp).await?;
            if let Some(family) = &family_id {
                store.revoke_refresh_family(family, now).await?;
            }
        }
        // A person's access token that no refresh family or code records
        // (the password grant without refresh tokens, token exchange,
        // implicit) is recorded under the person, so that ending the grant
        // (deleting the user, a new password, withdrawn consent) reaches it
        // too, JWT or reference token alike.
        if let IssueSubject::User(user) = &issue.subject
            && family_id.is_none()
            && !matches!(issue.record, GrantRecord::Code(_))
        {
            provider
                .store()
                .record_user_access_token(&claims.jti, &user.id, &client.id, claims.exp)
                .await?;
        }
        let access_token = self.access_token(&claims, signing).await?;
        let mut response = TokenResponse::bearer(access_token.clone(), ttl, scope_text);
        response.issued_token_type = issue.issued_token_type.map(|t| t.as_str().to_owned());
        response.refresh_token = refresh.map(|r| r.token);

        if let IssueSubject::User(user) = &issue.subject
            && let (Some(id_token), Some(auth_time)) = (&issue.id_token, issue.auth_time)
            && issue.scope.contains("openid")
        {
            response.id_token = Some(self.id_token(IdTokenFor {
                client,
                user,
                scope: &issue.scope,
                nonce: id_token.nonce.clone(),
                auth_time,
                sid: issue.sid.clone(),
                access_token: Some(&access_token),
            })?);
        }
        Ok(Issued {
            response,
            access_jti: claims.jti,
            access_expires_at: claims.exp,
            family_id,
        })
    }

    /// A JWT signed as `signing` says (no database write at all), or without
    /// `signing` a reference token stored only as its digest.
    async fn access_token(
        &self,
        claims: &AccessTokenClaims,
        signing: Option<AccessSigning<'_>>,
    ) -> Result<String, Error> {
        let provider = self.provider;
        match signing {
            Some(AccessSigning::Key(alg)) => {
                let mut ring = provider.keys().ring();
                if ring.signing_key(alg, claims.iat).is_none() {
                    // The first key of a resource's algorithm is made by
                    // `tessera resource create` in another process; the
                    // periodic refresh picks it up within a second, and one
                    // reload here spares the requests of that second.
                    provider
                        .keys()
                        .refresh(provider.store())
                        .await
                        .map_err(|e| Error::server_error(&e))?;
                    ring = provider.keys().ring();
                }
                let key = ring
                    .signing_key(alg, claims.iat)
                    .ok_or_else(|| Error::server_error(&format!("no active {alg} signing key")))?;
                tessera_jose::encode(key, ACCESS_TOKEN_TYP, claims)
                    .map_err(|e| Error::server_error(&e))
            }
            Some(AccessSigning::SharedSecret(resource)) => {
                let key = provider
                    .keys()
                    .shared_key(resource)
                    .map_err(|e| Error::server_error(&e))?
                    .ok_or_else(|| {
                        Error::server_error(&format!(
                            "the HS256 resource {} has no secret",
                            resource.audience
                        ))
                    })?;
                tessera_jose::encode(&key.signing, ACCESS_TOKEN_TYP, claims)
                    .map_err(|e| Error::server_error(&e))
            }
            None => {
                let value = random_token();
                let record = ReferenceToken {
                    digest: SecretDigest::of(&value),
                    client_id: claims.client_id.clone(),
                    expires_at: claims.exp,
                    claims: serde_json::to_value(claims).map_err(|e| Error::server_error(&e))?,
                    revoked: false,
                };
                provider.store().insert_reference_token(&record).await?;
                Ok(value)
            }
        }
    }

    /// The rotating refresh token: a signed JWT whose state the server keeps
    /// by `jti`, with the access token it came with, so that revoking the
    /// family revokes that too.
    async fn refresh_token(
        &self,
        client: &Client,
        user: &User,
        issue: &Issue,
        access: &AccessTokenClaims,
    ) -> Result<Option<MintedRefresh>, Error> {
        let provider = self.provider;
        let settings = provider.settings();
        let now = access.iat;
        let (family_id, family_expires_at, offline, scope, rotation) = match &issue.refresh {
            RefreshIssue::None => return Ok(None),
            RefreshIssue::New => {
                let offline = issue.scope.contains("offline_access");
                let lifetime = if offline {
                    settings.offline_token_ttl
                } else {
                    settings.refresh_token_absolute_ttl
                };
                (
                    random_id(),
                    now + lifetime,
                    offline,
                    issue.scope.clone(),
                    None,
                )
            }
            RefreshIssue::Continue {
                family_id,
                family_expires_at,
                offline,
                scope,
                rotation,
            } => (
                family_id.clone(),
                *family_expires_at,
                *offline,
                scope.clone(),
                Some(rotation),
            ),
        };
        // Offline tokens live to the family's end; online ones slide.
        let expires_at = if offline {
            family_expires_at
        } else {
            (now + settings.refresh_token_ttl).min(family_expires_at)
        };
        let mut record = RefreshToken {
            jti: random_id(),
            family_id: family_id.clone(),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scope,
            // As requested, not as resolved: the refresh resolves them again
            // under the rules then in force.
            audiences: issue.targets.requested.clone(),
            auth_time: issue.auth_time.unwrap_or(now),
            sid: issue.sid.clone(),
            offline,
            issued_at: now,
            expires_at,
            family_expires_at,
            access_jti: Some(access.jti.clone()),
            access_expires_at: Some(access.exp),
            rotated_at: None,
            revoked: false,
            successor_jti: None,
            token_digest: None,
        };
        let store = provider.store();
        let token = match rotation {
            None => {
                let token = self.sealed_refresh_token(&mut record)?;
                return Ok(Some(MintedRefresh {
                    token,
                    family_id,
                    unstored: Some(record),
                }));
            }
            Some(Rotation::From(previous)) => {
                let token = self.sealed_refresh_token(&mut record)?;
                if store.rotate_refresh_token(previous, &record, now).await? {
                    token
                } else {
                    // Another request rotated it after the grant read it as
                    // current. Within the grace window, that rotation's
                    // successor is this request's answer too.
                    let repeat = match store.refresh_token(previous).await? {
                        Some(rotated) => repeatable_successor(provider, &rotated, now).await?,
                        None => None,
                    };
                    let Some(successor) = repeat else {
                        // The token was current when this request read it:
                        // a concurrent use, not a replay of a used token, so
                        // the family stands for whoever won.
                        return Err(Error::new(
                            Reason::RefreshTokenRotatedConcurrently,
                            "the refresh token is invalid, expired or revoked",
                        ));
                    };
                    self.record_repeat(record, &successor).await?;
                    self.signed_refresh_token(&successor)?
                }
            }
            Some(Rotation::Repeat(successor)) => {
                self.record_repeat(record, successor).await?;
                self.signed_refresh_token(successor)?
            }
        };
        Ok(Some(MintedRefresh {
            token,
            family_id,
            unstored: None,
        }))
    }

    /// Signs `record`'s token and records its digest in it, before it is
    /// stored: the token presented back is recognised by that digest
    /// (`Provider::verify_refresh_token`).
    fn sealed_refresh_token(&self, record: &mut RefreshToken) -> Result<String, Error> {
        let token = self.signed_refresh_token(record)?;
        record.token_digest = Some(SecretDigest::of(&token));
        Ok(token)
    }

    /// The signed JWT of `record`. Signing again may give another text
    /// (ECDSA signatures are randomised): a successor issued again within the
    /// grace window is then checked by its signature.
    fn signed_refresh_token(&self, record: &RefreshToken) -> Result<String, Error> {
        let settings = self.provider.settings();
        let claims = RefreshTokenClaims {
            iss: settings.issuer.clone(),
            sub: record.user_id.clone(),
            aud: record.client_id.clone(),
            iat: record.issued_at,
            exp: record.expires_at,
            jti: record.jti.clone(),
        };
        let ring = self.provider.keys().ring();
        let key = ring
            .signing_key(settings.signing_alg, self.provider.clock().now())
            .ok_or_else(|| Error::server_error(&"no active signing key"))?;
        tessera_jose::encode(key, REFRESH_TOKEN_TYP, &claims).map_err(|e| Error::server_error(&e))
    }

    /// Issuing `successor` again (a retry within the grace window) comes with
    /// a new access token. Its `jti` is kept in a record of the family that is
    /// born rotated, never handed out and naming `successor`, so that revoking
    /// the family, the session, the user or the client revokes that access
    /// token as it does every other.
    async fn record_repeat(
        &self,
        mut record: RefreshToken,
        successor: &RefreshToken,
    ) -> Result<(), Error> {
        record.rotated_at = Some(record.issued_at);
        record.successor_jti = Some(successor.jti.clone());
        // Never handed out: no text of it can be presented.
        record.token_digest = None;
        record.expires_at = successor.expires_at;
        self.provider.store().insert_refresh_token(&record).await?;
        Ok(())
    }

    /// An ID token (OIDC Core §2) with the client's algorithm (RS256 for
    /// clients that ask for it) or the server's default.
    pub fn id_token(&self, target: IdTokenFor<'_>) -> Result<String, Error> {
        let provider = self.provider;
        let now = provider.clock().now();
        let alg = target
            .client
            .id_token_alg
            .unwrap_or(provider.settings().signing_alg);
        let ring = provider.keys().ring();
        let key = ring
            .signing_key(alg, now)
            .ok_or_else(|| Error::server_error(&format!("no active {alg} signing key")))?;
        let claims = oidc::IdTokenClaims {
            iss: provider.settings().issuer.clone(),
            sub: target.user.id.clone(),
            aud: target.client.id.clone(),
            exp: now + provider.settings().id_token_ttl,
            iat: now,
            auth_time: target.auth_time,
            nonce: target.nonce,
            at_hash: target.access_token.map(|t| oidc::half_hash(alg, t)),
            azp: target.client.id.clone(),
            sid: target.sid,
            user_claims: oidc::user_claims(target.user, target.scope),
        };
        tessera_jose::encode(key, oidc::ID_TOKEN_TYP, &claims).map_err(|e| Error::server_error(&e))
    }
}

/// What an ID token is minted from.
#[derive(Debug)]
pub struct IdTokenFor<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a Scope,
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    pub sid: Option<String>,
    pub access_token: Option<&'a str>,
}

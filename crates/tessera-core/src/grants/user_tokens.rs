//! Tokens for a person: the access token, the rotating refresh token (a signed
//! JWT whose state the server keeps by `jti`), and the ID token. Shared by the
//! authorization code, refresh token and password grants.

use serde::{Deserialize, Serialize};
use tessera_jose::{UnverifiedJws, typ_matches};

use crate::authorize::IdTokenFor;
use crate::clock::UnixTime;
use crate::crypto::random_id;
use crate::error::Error;
use crate::model::{Client, GrantType};
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::{RefreshToken, User};
use crate::tokens::TokenResponse;

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

/// Where a refresh token family stands.
#[derive(Debug, Clone)]
pub enum Family {
    /// A new grant: a new family starts (if the client may refresh).
    New,
    /// A rotation: the successor joins the family and keeps its absolute end.
    Continue {
        family_id: String,
        family_expires_at: UnixTime,
        offline: bool,
    },
}

/// What to mint for a person.
#[derive(Debug)]
pub struct UserGrant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: Scope,
    /// The scope of the refresh token when it differs from the access token's:
    /// a refresh that narrows the access token keeps the grant (RFC 6749 §6).
    pub refresh_scope: Option<Scope>,
    pub resources: Vec<String>,
    pub auth_time: UnixTime,
    pub sid: Option<String>,
    pub nonce: Option<String>,
    pub family: Family,
}

/// The response and what it issued, so callers can record it.
#[derive(Debug)]
pub struct IssuedUserTokens {
    pub response: TokenResponse,
    pub access_jti: String,
    pub access_expires_at: UnixTime,
    pub family_id: Option<String>,
}

impl Provider {
    pub async fn issue_user_tokens(&self, grant: UserGrant<'_>) -> Result<IssuedUserTokens, Error> {
        let now = self.clock().now();
        let (access, ttl) = self
            .issue_user_access_token(
                grant.client,
                &grant.user.id,
                &grant.scope,
                &grant.resources,
                grant.auth_time,
            )
            .await?;
        let scope_text = (!grant.scope.is_empty()).then(|| grant.scope.to_string());
        let mut response = TokenResponse::bearer(access.value.clone(), ttl, scope_text);

        let mut family_id = None;
        if grant.client.allows(GrantType::RefreshToken) {
            let settings = self.settings();
            let (id, family_expires_at, offline) = match grant.family {
                Family::New => {
                    let offline = grant.scope.contains("offline_access");
                    let lifetime = if offline {
                        settings.offline_token_ttl
                    } else {
                        settings.refresh_token_absolute_ttl
                    };
                    (random_id(), now + lifetime, offline)
                }
                Family::Continue {
                    family_id,
                    family_expires_at,
                    offline,
                } => (family_id, family_expires_at, offline),
            };
            // Offline tokens live to the family's end; online ones slide.
            let expires_at = if offline {
                family_expires_at
            } else {
                (now + settings.refresh_token_ttl).min(family_expires_at)
            };
            let claims = RefreshTokenClaims {
                iss: settings.issuer.clone(),
                sub: grant.user.id.clone(),
                aud: grant.client.id.clone(),
                iat: now,
                exp: expires_at,
                jti: random_id(),
            };
            let ring = self.keys().ring();
            let key = ring
                .signing_key(settings.signing_alg, now)
                .ok_or_else(|| Error::server_error(&"no active signing key"))?;
            let token = tessera_jose::encode(key, REFRESH_TOKEN_TYP, &claims)
                .map_err(|e| Error::server_error(&e))?;
            self.store()
                .insert_refresh_token(&RefreshToken {
                    jti: claims.jti,
                    family_id: id.clone(),
                    client_id: grant.client.id.clone(),
                    user_id: grant.user.id.clone(),
                    scope: grant
                        .refresh_scope
                        .clone()
                        .unwrap_or_else(|| grant.scope.clone()),
                    audiences: grant.resources.clone(),
                    auth_time: grant.auth_time,
                    sid: grant.sid.clone(),
                    offline,
                    issued_at: now,
                    expires_at,
                    family_expires_at,
                    access_jti: Some(access.jti.clone()),
                    access_expires_at: Some(access.expires_at),
                    rotated_at: None,
                    revoked: false,
                })
                .await?;
            response.refresh_token = Some(token);
            family_id = Some(id);
        }

        if grant.scope.contains("openid") {
            response.id_token = Some(self.issue_id_token(IdTokenFor {
                client: grant.client,
                user: grant.user,
                scope: &grant.scope,
                nonce: grant.nonce,
                auth_time: grant.auth_time,
                sid: grant.sid,
                access_token: Some(&access.value),
            })?);
        }
        Ok(IssuedUserTokens {
            response,
            access_jti: access.jti,
            access_expires_at: access.expires_at,
            family_id,
        })
    }

    /// Verifies a refresh token's signature, `typ` and issuer; its state is
    /// checked separately against the store.
    pub fn verify_refresh_token(&self, token: &str) -> Option<RefreshTokenClaims> {
        let jws = UnverifiedJws::parse(token).ok()?;
        if !typ_matches(jws.header().typ.as_deref(), REFRESH_TOKEN_TYP) {
            return None;
        }
        let ring = self.keys().ring();
        let key = ring.verifying_key(
            jws.kid()?,
            self.clock().now(),
            self.settings().max_token_ttl,
        )?;
        let claims: RefreshTokenClaims = jws.verify(key).ok()?;
        (claims.iss == self.settings().issuer).then_some(claims)
    }
}

//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2).

use async_trait::async_trait;

use crate::error::{Error, Reason};
use crate::grants::{Grant, GrantRequest, SubjectKind, Targets};
use crate::model::{GrantType, TokenFormat};
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::RefreshUse;
use crate::tokens::issuer::RefreshTokenClaims;
use crate::tokens::{Issue, RefreshIssue};

#[derive(Debug)]
pub struct RefreshTokenGrant;

#[async_trait]
impl Grant for RefreshTokenGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::RefreshToken
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["refresh_token"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let token = params.require("refresh_token")?;
        // One public text for every refusal; the reason tells them apart.
        let invalid =
            |reason: Reason| Error::new(reason, "the refresh token is invalid, expired or revoked");
        let claims: RefreshTokenClaims = provider
            .verify_own(token)
            .await?
            .map_err(|_| invalid(Reason::RefreshTokenInvalid))?;
        // Bound to the client (RFC 6749 §10.4): checked before any state changes,
        // so another client presenting a stolen token cannot burn it.
        if claims.aud != client.id {
            return Err(invalid(Reason::RefreshTokenOfAnotherClient));
        }
        // Everything that can refuse a current token is checked before the
        // rotation: a refused request must leave the token current, or the
        // client's next refresh would look like reuse (RFC 9700 §4.14.2) and
        // revoke the family. RFC 6749 §6: the scope may narrow, never widen;
        // and the resource policy and signature of the targets as they are now.
        // A token that is no longer current goes on to the rotation's reuse
        // detection.
        let widened = || Error::new(Reason::ScopeWidened, "a refresh cannot widen the scope");
        let requested = params.get("scope").map(Scope::parse).transpose()?;
        let mut checked_targets = None;
        if let Some(current) = provider.store().refresh_token(&claims.jti).await?
            && current.rotated_at.is_none()
            && !current.revoked
        {
            let scope = match &requested {
                Some(requested) if !requested.is_subset(&current.scope) => {
                    return Err(widened());
                }
                Some(requested) => requested,
                None => &current.scope,
            };
            let targets = Targets::resolve(provider, client, &current.audiences).await?;
            targets.check_policy(SubjectKind::User, scope)?;
            // As the issuer decides: only a signed token must agree on its
            // signature.
            let settings = provider.settings();
            if targets.token_format(client, settings.default_token_format) == TokenFormat::Jwt {
                targets.signing(settings.signing_alg)?;
            }
            checked_targets = Some(targets);
        }
        let now = provider.clock().now();
        let record = match provider
            .store()
            .rotate_refresh_token(&claims.jti, now)
            .await?
        {
            RefreshUse::Fresh(record) => record,
            RefreshUse::Reused(record) => {
                tracing::warn!(client_id = %record.client_id, "refresh token reused; revoking its family");
                provider
                    .store()
                    .revoke_refresh_family(&record.family_id, now)
                    .await?;
                return Err(invalid(Reason::RefreshTokenReused));
            }
            RefreshUse::Revoked(record) => {
                // Revoked on purpose, with its family: nothing more to revoke,
                // and no theft to report.
                tracing::info!(client_id = %record.client_id, "a revoked refresh token was presented");
                return Err(invalid(Reason::RefreshTokenRevoked));
            }
            RefreshUse::Invalid => return Err(invalid(Reason::RefreshTokenInvalid)),
        };
        // An online grant (without offline_access) lives only as long as the
        // login session it came from (OIDC Core §11): once the person signed
        // out, changed their password or went idle, it ends too. A refresh
        // counts as activity in the session.
        if !record.offline
            && let Some(sid) = &record.sid
            && provider
                .store()
                .touch_session_by_sid(sid, now, now - provider.settings().session_idle_ttl)
                .await?
                .is_none()
        {
            provider
                .store()
                .revoke_refresh_family(&record.family_id, now)
                .await?;
            tracing::info!(client_id = %record.client_id, "refresh refused: the login session of this online grant has ended");
            return Err(invalid(Reason::SessionEnded));
        }
        let scope = match requested {
            None => record.scope.clone(),
            Some(requested) if requested.is_subset(&record.scope) => requested,
            Some(_) => return Err(widened()),
        };
        let user = provider
            .store()
            .user(&record.user_id)
            .await?
            .ok_or_else(|| invalid(Reason::UserGone))?;
        let targets = match checked_targets {
            Some(targets) => targets,
            None => Targets::resolve(provider, client, &record.audiences).await?,
        };
        Ok(Issue {
            sid: record.sid.clone(),
            refresh: RefreshIssue::Continue {
                family_id: record.family_id.clone(),
                family_expires_at: record.family_expires_at,
                offline: record.offline,
                scope: record.scope.clone(),
            },
            ..Issue::user(user, scope, targets, record.auth_time)
        })
    }
}

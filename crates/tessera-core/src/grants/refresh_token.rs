//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2).

use async_trait::async_trait;

use crate::error::{Error, Reason};
use crate::grants::{Grant, GrantRequest, SubjectKind, Targets};
use crate::model::{GrantType, TokenFormat};
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::{RefreshState, RefreshToken};
use crate::tokens::issuer::Rotation;
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
        let (claims, record) = provider
            .verify_refresh_token(token)
            .await?
            .map_err(|_| invalid(Reason::RefreshTokenInvalid))?;
        // Bound to the client (RFC 6749 §10.4): checked before any state changes,
        // so another client presenting a stolen token cannot burn it.
        if claims.aud != client.id {
            return Err(invalid(Reason::RefreshTokenOfAnotherClient));
        }
        let store = provider.store();
        let now = provider.clock().now();
        let Some(record) = record else {
            return Err(invalid(Reason::RefreshTokenInvalid));
        };
        // Nothing changes until the issuer rotates the token, in one
        // transaction with its successor, after every check here: a refused
        // request leaves the token current, or the client's next refresh
        // would look like reuse and revoke the family (RFC 9700 §4.14.2).
        let rotation = match record.state(now) {
            RefreshState::Current => Rotation::From(record.jti.clone()),
            RefreshState::Rotated => match repeatable_successor(provider, &record, now).await? {
                Some(successor) => Rotation::Repeat(Box::new(successor)),
                None => {
                    tracing::warn!(client_id = %record.client_id, "refresh token reused; revoking its family");
                    store.revoke_refresh_family(&record.family_id, now).await?;
                    return Err(invalid(Reason::RefreshTokenReused));
                }
            },
            RefreshState::Revoked => {
                // Revoked on purpose, with its family: nothing more to revoke,
                // and no theft to report.
                tracing::info!(client_id = %record.client_id, "a revoked refresh token was presented");
                return Err(invalid(Reason::RefreshTokenRevoked));
            }
            RefreshState::Ended => return Err(invalid(Reason::RefreshTokenInvalid)),
        };
        // An online grant (without offline_access) lives only as long as the
        // login session it came from (OIDC Core §11): once the person signed
        // out, changed their password or went idle, it ends too. A refresh
        // counts as activity in the session.
        if !record.offline
            && let Some(sid) = &record.sid
            && store
                .touch_session_by_sid(sid, now, now - provider.settings().session_idle_ttl)
                .await?
                .is_none()
        {
            store.revoke_refresh_family(&record.family_id, now).await?;
            tracing::info!(client_id = %record.client_id, "refresh refused: the login session of this online grant has ended");
            return Err(invalid(Reason::SessionEnded));
        }
        // RFC 6749 §6: the scope may narrow, never widen; and the resource
        // policy and signature of the targets as they are now.
        let scope = match params.get("scope").map(Scope::parse).transpose()? {
            Some(requested) if !requested.is_subset(&record.scope) => {
                return Err(Error::new(
                    Reason::ScopeWidened,
                    "a refresh cannot widen the scope",
                ));
            }
            Some(requested) => requested,
            None => record.scope.clone(),
        };
        let targets = Targets::resolve(provider, client, &record.audiences).await?;
        targets.check_policy(SubjectKind::User, &scope)?;
        // As the issuer decides: only a signed token must agree on its
        // signature.
        let settings = provider.settings();
        if targets.token_format(client, settings.default_token_format) == TokenFormat::Jwt {
            targets.signing(settings.signing_alg)?;
        }
        let user = store
            .user(&record.user_id)
            .await?
            .ok_or_else(|| invalid(Reason::UserGone))?;
        Ok(Issue {
            sid: record.sid.clone(),
            refresh: RefreshIssue::Continue {
                family_id: record.family_id.clone(),
                family_expires_at: record.family_expires_at,
                offline: record.offline,
                scope: record.scope.clone(),
                rotation,
            },
            ..Issue::user(user, scope, targets, record.auth_time)
        })
    }
}

/// The successor of `rotated` to answer with again, when `rotated` was
/// replaced less than `refresh_reuse_grace` seconds ago and its successor is
/// still current: a client retrying a rotation whose response it lost (or
/// racing itself across instances) gets the same successor, where strict
/// reuse detection would revoke its family. Never beyond one step: a
/// successor already rotated in turn makes this reuse.
pub(crate) async fn repeatable_successor(
    provider: &Provider,
    rotated: &RefreshToken,
    now: crate::clock::UnixTime,
) -> Result<Option<RefreshToken>, Error> {
    let grace = provider.settings().refresh_reuse_grace;
    let (Some(rotated_at), Some(successor_jti)) = (rotated.rotated_at, &rotated.successor_jti)
    else {
        return Ok(None);
    };
    if grace == 0 || now >= rotated_at + grace {
        return Ok(None);
    }
    Ok(provider
        .store()
        .refresh_token(successor_jti)
        .await?
        .filter(|successor| successor.state(now) == RefreshState::Current))
}

//! The authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636).

use async_trait::async_trait;

use crate::crypto::SecretDigest;
use crate::error::{Error, Reason};
use crate::grants::{Grant, GrantRequest, Targets};
use crate::model::GrantType;
use crate::pkce;
use crate::provider::Provider;
use crate::store::{AuthorizationCode, CodeUse};
use crate::tokens::{GrantRecord, IdTokenIssue, Issue};

#[derive(Debug)]
pub struct AuthorizationCodeGrant;

#[async_trait]
impl Grant for AuthorizationCodeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::AuthorizationCode
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["code", "redirect_uri", "code_verifier"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let params = request.params;
        let code_value = params.require("code")?;
        let digest = SecretDigest::of(code_value);
        let now = provider.clock().now();
        // RFC 6749 §4.1.3: the code must have been issued to this client, for
        // this redirect_uri. A client with a single registered URI may leave
        // redirect_uri out of both requests (§3.1.2.3); then it is that one.
        let redirect_uri = params
            .get("redirect_uri")
            .or(match client.redirect_uris.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            });
        // The usual case in one statement: a fresh code of this client and
        // redirect_uri, consumed. Any other is told apart by `consume`, as
        // is a URI not registered as it stands (a loopback port the client
        // chose, or text no registration has, which never reaches the
        // statement).
        let fresh = match redirect_uri {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => {
                provider
                    .store()
                    .consume_bound_code(&digest, now, &client.id, uri)
                    .await?
            }
            _ => None,
        };
        let code = match fresh {
            Some(code) => code,
            None => consume(provider, client, redirect_uri, &digest, now).await?,
        };
        // A wrong verifier from the right client still uses the code up: a
        // failed PKCE check suggests the code was intercepted (RFC 7636 §1).
        match (&code.code_challenge, params.get("code_verifier")) {
            (Some(challenge), Some(verifier)) if pkce::verify(verifier, challenge) => {}
            (Some(_), Some(_)) => {
                return Err(Error::new(
                    Reason::PkceVerifierMismatch,
                    "code_verifier does not match the code_challenge",
                ));
            }
            (Some(_), None) => {
                return Err(Error::new(
                    Reason::PkceVerifierMissing,
                    "code_verifier is required",
                ));
            }
            // RFC 9700 §2.1.1: a verifier without a challenge is refused, against
            // PKCE downgrade.
            (None, Some(_)) => {
                return Err(Error::new(
                    Reason::PkceDowngrade,
                    "code_verifier sent but no code_challenge was",
                ));
            }
            (None, None) => {}
        }
        let user = provider
            .store()
            .user(&code.user_id)
            .await?
            .ok_or_else(|| Error::new(Reason::UserGone, "the user no longer exists"))?;
        let targets = Targets::resolve(provider, client, &code.audiences).await?;
        Ok(Issue {
            sid: code.sid.clone(),
            id_token: Some(IdTokenIssue {
                nonce: code.nonce.clone(),
            }),
            // A replay of the code revokes what this exchange issues.
            record: GrantRecord::Code(digest),
            ..Issue::user(user, code.scope.clone(), targets, code.auth_time)
        })
    }
}

/// Where `consume_bound_code` consumed nothing, tells why: a code of another
/// binding (refused and left unused), a replay (which revokes what the first
/// use issued), or an unknown or expired code.
async fn consume(
    provider: &Provider,
    client: &crate::model::Client,
    redirect_uri: Option<&str>,
    digest: &SecretDigest,
    now: crate::clock::UnixTime,
) -> Result<AuthorizationCode, Error> {
    // The code's binding first (RFC 6749 §4.1.3: the client, and the
    // redirect_uri of the authorization request), on a plain read: a code
    // presented by another client or with another redirect_uri is refused
    // without being used up, so nobody else can burn it before its client
    // redeems it. The binding never changes, so the read cannot go stale.
    let Some(stored) = provider.store().authorization_code(digest).await? else {
        return Err(Error::new(
            Reason::CodeUnknownOrExpired,
            "the authorization code is invalid or expired",
        ));
    };
    if stored.client_id != client.id {
        return Err(Error::new(
            Reason::CodeOfAnotherClient,
            "the authorization code was issued to another client",
        ));
    }
    let redirect_ok = redirect_uri == Some(stored.redirect_uri.as_str());
    if !redirect_ok && stored.consumed_at.is_none() {
        return Err(Error::new(
            Reason::RedirectUriMismatch,
            "redirect_uri does not match the authorization request",
        ));
    }
    match provider.store().consume_code(digest, now).await? {
        CodeUse::Fresh(code) => Ok(code),
        CodeUse::Replayed(code) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued, since
            // one of the two users of the code is an attacker.
            tracing::warn!(client_id = %code.client_id, "authorization code replayed; revoking its tokens");
            if let (Some(jti), Some(exp)) = (&code.access_jti, code.access_expires_at) {
                provider.store().revoke_jti(jti, exp).await?;
            }
            if let Some(family) = &code.family_id {
                provider.store().revoke_refresh_family(family, now).await?;
            }
            Err(Error::new(
                Reason::CodeReplayed,
                "the authorization code was already used",
            ))
        }
        CodeUse::Invalid => Err(Error::new(
            Reason::CodeUnknownOrExpired,
            "the authorization code is invalid or expired",
        )),
    }
}

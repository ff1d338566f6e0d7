//! The one verifier of the JWTs this server signs: access tokens (RFC 9068),
//! refresh tokens and ID tokens. Every use (introspection, `/userinfo`,
//! revocation, the refresh grant, logout hints, and later token exchange) goes
//! through [`Provider::verify_own`], so the checks of RFC 8725 are written once:
//!
//! - the key is named by `kid` and published by this server now (not expired,
//!   not revoked), and the token's `alg` must be the key's own (§3.1: the
//!   verifier is bound to its key's algorithm, so `none` or HS256 signed with
//!   a public key never verify);
//! - or, for access tokens only, the `kid` names the current shared secret of
//!   an HS256 resource ([`crate::shared_secret`]): that key verifies HS256
//!   alone, the token must be for that resource alone, and its sealed `jti`
//!   shows this server minted it, not another holder of the secret;
//! - `typ` names the kind of token expected (§3.11: an ID token is never
//!   accepted as an access token, nor the other way round);
//! - `iss` is this server (§3.8).
//!
//! Lifetime and revocation are the caller's: an expired ID token is still a
//! good logout hint, and a refresh token's state lives in the store.

use serde::de::DeserializeOwned;
use tessera_jose::{UnverifiedJws, typ_matches};

use crate::crypto::KeyEncryptionKey;
use crate::error::Error;
use crate::oidc::{ID_TOKEN_TYP, IdTokenClaims};
use crate::provider::Provider;
use crate::shared_secret;
use crate::store::{RefreshToken, ResourceStore as _};
use crate::tokens::issuer::{REFRESH_TOKEN_TYP, RefreshTokenClaims};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};

/// The kinds of JWT this server signs, each with its own `typ`.
pub trait OwnToken: DeserializeOwned {
    /// The `typ` header value (compared as a media type).
    const TYP: &'static str;
    /// Whether a resource's shared secret may sign this kind. Only access
    /// tokens: refresh and ID tokens are signed with the server's keys, so
    /// a resource holding a secret can never mint them.
    const SHARED_SECRET: bool = false;
    /// The `iss` claim.
    fn issuer(&self) -> &str;
    /// For a token signed with `audience`'s shared secret: whether this
    /// server minted these claims.
    fn minted_for(&self, _audience: &str, _kek: &KeyEncryptionKey) -> bool {
        false
    }
}

impl OwnToken for AccessTokenClaims {
    const TYP: &'static str = ACCESS_TOKEN_TYP;
    const SHARED_SECRET: bool = true;
    fn issuer(&self) -> &str {
        &self.iss
    }
    fn minted_for(&self, audience: &str, kek: &KeyEncryptionKey) -> bool {
        matches!(&self.aud, Audience::One(aud) if aud == audience)
            && shared_secret::jti_is_sealed(kek, self)
    }
}

impl OwnToken for RefreshTokenClaims {
    const TYP: &'static str = REFRESH_TOKEN_TYP;
    fn issuer(&self) -> &str {
        &self.iss
    }
}

impl OwnToken for IdTokenClaims {
    const TYP: &'static str = ID_TOKEN_TYP;
    fn issuer(&self) -> &str {
        &self.iss
    }
}

/// Why a JWT is not one of ours; logged, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Not a compact JWS, or its header does not parse.
    Malformed,
    /// No `kid`, or no key of ours by that `kid` is published now (for a
    /// shared secret: not the resource's current one).
    UnknownKey,
    /// The signature does not verify with that key and its algorithm.
    BadSignature,
    /// Another kind of token (its `typ`), or claims that are not this kind's.
    WrongKind,
    /// Signed by a key of ours but naming another issuer.
    ForeignIssuer,
    /// Signed with a resource's shared secret, but not minted by this server:
    /// written by another holder of the secret.
    NotMinted,
}

impl Provider {
    /// Verifies a JWT this server signed, as token kind `T`. The outer
    /// `Result` is a failure of the server (the store, for a shared secret);
    /// the inner one the token's verdict.
    pub async fn verify_own<T: OwnToken>(&self, token: &str) -> Result<Result<T, Rejected>, Error> {
        let Ok(jws) = UnverifiedJws::parse(token) else {
            return Ok(Err(Rejected::Malformed));
        };
        self.verify_parsed(&jws).await
    }

    /// A refresh token, with its record: as [`Provider::verify_own`], but
    /// the very text issued is recognised by the digest recorded with it
    /// (`RefreshToken::token_digest`) instead of by its signature. The
    /// record was written by this server when it signed the token, so a
    /// match shows what the signature would; it costs a SHA-256 where an
    /// ES256 verification costs about 50 µs, on a grant that signs three
    /// tokens already. The record is read by the `jti` the token claims
    /// before anything is trusted, so only for a token that could be ours as
    /// it stands: our `typ`, a key we still publish (a key revoked in an
    /// emergency fails its tokens either way), our `iss`, and a `jti` as we
    /// make them. Any other token, and one whose text is not the one
    /// recorded (issued before digests were recorded, a successor issued
    /// again, a forgery), is checked by its signature, and its record read
    /// by the verified `jti`.
    pub async fn verify_refresh_token(
        &self,
        token: &str,
    ) -> Result<Result<(RefreshTokenClaims, Option<RefreshToken>), Rejected>, Error> {
        let Ok(jws) = UnverifiedJws::parse(token) else {
            return Ok(Err(Rejected::Malformed));
        };
        let (now, max_ttl) = (self.clock().now(), self.settings().max_token_ttl);
        let claimed = typ_matches(jws.header().typ.as_deref(), REFRESH_TOKEN_TYP)
            .then(|| jws.payload_unverified::<RefreshTokenClaims>().ok())
            .flatten()
            .filter(|claimed| {
                claimed.iss == self.settings().issuer
                    && is_random_id(&claimed.jti)
                    && jws.kid().is_some_and(|kid| {
                        self.keys()
                            .ring()
                            .verifying_key(kid, now, max_ttl)
                            .is_some()
                    })
            });
        if let Some(claimed) = claimed {
            let record = self.store().refresh_token(&claimed.jti).await?;
            let recognised = record
                .as_ref()
                .and_then(|r| r.token_digest.as_ref())
                .is_some_and(|digest| digest.matches(token));
            if recognised {
                return Ok(Ok((claimed, record)));
            }
            // The same payload, so the same `jti`: the record read stands.
            return Ok(self
                .verify_parsed::<RefreshTokenClaims>(&jws)
                .await?
                .map(|claims| (claims, record)));
        }
        let claims = match self.verify_parsed::<RefreshTokenClaims>(&jws).await? {
            Ok(claims) => claims,
            Err(rejected) => return Ok(Err(rejected)),
        };
        let record = self.store().refresh_token(&claims.jti).await?;
        Ok(Ok((claims, record)))
    }

    async fn verify_parsed<T: OwnToken>(
        &self,
        jws: &UnverifiedJws<'_>,
    ) -> Result<Result<T, Rejected>, Error> {
        // The kind first: a refresh token never gets as far as a signature
        // check as an access token.
        if !typ_matches(jws.header().typ.as_deref(), T::TYP) {
            return Ok(Err(Rejected::WrongKind));
        }
        let Some(kid) = jws.kid() else {
            return Ok(Err(Rejected::UnknownKey));
        };
        if let Some((audience, version)) = shared_secret::parse_kid(kid) {
            if !T::SHARED_SECRET {
                return Ok(Err(Rejected::UnknownKey));
            }
            return self.verify_shared(jws, audience, version).await;
        }
        let (now, max_ttl) = (self.clock().now(), self.settings().max_token_ttl);
        let mut ring = self.keys().ring();
        if ring.verifying_key(kid, now, max_ttl).is_none() {
            // Perhaps a key another instance already signs with and this one
            // has not reloaded yet: look once more (rate-limited).
            // Without the store the verdict stands: the key is unknown here.
            match self.keys().refresh_for_unknown_kid(self.store()).await {
                Ok(true) => ring = self.keys().ring(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not reload the signing keys for an unknown kid");
                }
            }
        }
        let Some(key) = ring.verifying_key(kid, now, max_ttl) else {
            return Ok(Err(Rejected::UnknownKey));
        };
        Ok(self.check_claims(jws.verify(key)))
    }

    /// A token naming a resource's secret: verified with that resource's
    /// current secret only, read from the store so that a rotation anywhere
    /// retires the old secret at once.
    async fn verify_shared<T: OwnToken>(
        &self,
        jws: &UnverifiedJws<'_>,
        audience: &str,
        version: i64,
    ) -> Result<Result<T, Rejected>, Error> {
        let Some(resource) = self.catalog().resource(audience).await? else {
            return Ok(Err(Rejected::UnknownKey));
        };
        if resource.secret_version != version {
            return Ok(Err(Rejected::UnknownKey));
        }
        let Some(key) = self
            .keys()
            .shared_key(&resource)
            .map_err(|e| Error::server_error(&e))?
        else {
            return Ok(Err(Rejected::UnknownKey));
        };
        // Bound to HS256: a token claiming any other algorithm fails here.
        let claims: T = match self.check_claims(jws.verify(&key.verifying)) {
            Ok(claims) => claims,
            Err(rejected) => return Ok(Err(rejected)),
        };
        if !claims.minted_for(audience, self.keys().kek()) {
            return Ok(Err(Rejected::NotMinted));
        }
        Ok(Ok(claims))
    }

    fn check_claims<T: OwnToken>(
        &self,
        verified: Result<T, tessera_jose::Error>,
    ) -> Result<T, Rejected> {
        let claims = verified.map_err(|e| match e {
            tessera_jose::Error::MalformedPayload(_) => Rejected::WrongKind,
            _ => Rejected::BadSignature,
        })?;
        if claims.issuer() != self.settings().issuer {
            return Err(Rejected::ForeignIssuer);
        }
        Ok(claims)
    }
}

/// Whether `jti` has the form of [`crate::crypto::random_id`]: 22 base64url
/// characters.
fn is_random_id(jti: &str) -> bool {
    jti.len() == 22
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::is_random_id;
    use crate::crypto::random_id;

    #[test]
    fn our_jtis_have_the_form_the_digest_path_expects() {
        for _ in 0..64 {
            assert!(is_random_id(&random_id()));
        }
        for other in [
            "",
            "short",
            "a\u{0}bcdefghijklmnopqrstu",
            "abcdefghijklmnopqrstu=",
            "abcdefghijklmnopqrstuvw",
        ] {
            assert!(!is_random_id(other), "{other:?}");
        }
    }
}

//! The one verifier of the JWTs this server signs: access tokens (RFC 9068),
//! refresh tokens and ID tokens. Every use (introspection, `/userinfo`,
//! revocation, the refresh grant, logout hints, and later token exchange) goes
//! through [`Provider::verify_own`], so the checks of RFC 8725 are written once:
//!
//! - the key is named by `kid` and published by this server now (not expired,
//!   not revoked), and the token's `alg` must be the key's own (§3.1: the
//!   verifier is bound to its key's algorithm, so `none` or HS256 signed with
//!   a public key never verify);
//! - `typ` names the kind of token expected (§3.11: an ID token is never
//!   accepted as an access token, nor the other way round);
//! - `iss` is this server (§3.8).
//!
//! Lifetime and revocation are the caller's: an expired ID token is still a
//! good logout hint, and a refresh token's state lives in the store.

use serde::de::DeserializeOwned;
use tessera_jose::{UnverifiedJws, typ_matches};

use crate::oidc::{ID_TOKEN_TYP, IdTokenClaims};
use crate::provider::Provider;
use crate::tokens::issuer::{REFRESH_TOKEN_TYP, RefreshTokenClaims};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims};

/// The kinds of JWT this server signs, each with its own `typ`.
pub trait OwnToken: DeserializeOwned {
    /// The `typ` header value (compared as a media type).
    const TYP: &'static str;
    /// The `iss` claim.
    fn issuer(&self) -> &str;
}

impl OwnToken for AccessTokenClaims {
    const TYP: &'static str = ACCESS_TOKEN_TYP;
    fn issuer(&self) -> &str {
        &self.iss
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
    /// No `kid`, or no key of ours by that `kid` is published now.
    UnknownKey,
    /// The signature does not verify with that key and its algorithm.
    BadSignature,
    /// Another kind of token (its `typ`), or claims that are not this kind's.
    WrongKind,
    /// Signed by a key of ours but naming another issuer.
    ForeignIssuer,
}

impl Provider {
    /// Verifies a JWT this server signed, as token kind `T`.
    pub fn verify_own<T: OwnToken>(&self, token: &str) -> Result<T, Rejected> {
        let jws = UnverifiedJws::parse(token).map_err(|_| Rejected::Malformed)?;
        // The kind first: a refresh token never gets as far as a signature
        // check as an access token.
        if !typ_matches(jws.header().typ.as_deref(), T::TYP) {
            return Err(Rejected::WrongKind);
        }
        let ring = self.keys().ring();
        let key = jws
            .kid()
            .and_then(|kid| {
                ring.verifying_key(kid, self.clock().now(), self.settings().max_token_ttl)
            })
            .ok_or(Rejected::UnknownKey)?;
        let claims: T = jws.verify(key).map_err(|e| match e {
            tessera_jose::Error::MalformedPayload(_) => Rejected::WrongKind,
            _ => Rejected::BadSignature,
        })?;
        if claims.issuer() != self.settings().issuer {
            return Err(Rejected::ForeignIssuer);
        }
        Ok(claims)
    }
}

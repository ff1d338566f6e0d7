//! Tokens presented as grants: JWTs from issuers this server trusts (RFC 7523
//! assertions, RFC 8693 subject and actor tokens), and this server's own
//! tokens traded for others (token exchange, on-behalf-of).
//!
//! A JWT from another issuer is checked in a fixed order: its `iss` (read
//! before the signature only to pick the keys) must be a trusted issuer; the
//! key its header names must be one that issuer publishes (never one the
//! token brings along: `jku`, `x5u`, `x5c` and `jwk` headers are not even
//! parsed, RFC 8725 §3.10) and asymmetric, and the `alg` must be that key's
//! own; then the claims. Every refusal is an [`Error`] with a precise
//! [`Reason`]; the grants map them to the wire code their RFC names.

use std::fmt;

use async_trait::async_trait;
use serde::Deserialize;
use tessera_jose::{Algorithm, UnverifiedJws, VerifyingKey};

use crate::clock::UnixTime;
use crate::error::{Error, Reason, bounded};
use crate::oidc::IdTokenClaims;
use crate::provider::Provider;
use crate::store::TrustStore as _;
use crate::store::{AssertionKind, TrustedIssuer, User};
use crate::tokens::{AccessTokenClaims, Actor, Audience};

/// Longer tokens are refused before any parsing; real ones are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The deepest delegation chain accepted or issued: each hop is one nested
/// `act` (RFC 8693 §4.1), and real chains have two or three.
pub const MAX_ACTOR_DEPTH: usize = 8;

/// Where the keys of trusted issuers registered with a `jwks_uri` come from.
/// The core does no I/O: the server implements this with the cached, bounded
/// fetch that `tessera-guard` uses for its own issuer's keys.
#[async_trait]
pub trait IssuerKeysSource: Send + Sync + fmt::Debug {
    /// The keys published at `jwks_uri` that a JWS with this `kid` and `alg`
    /// may be checked against (empty when none matches).
    async fn keys_for(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerifyingKey>, String>;
}

/// The claims read from a JWT of another issuer.
#[derive(Debug, Clone, Deserialize)]
pub struct ForeignClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub exp: Option<UnixTime>,
    #[serde(default)]
    pub nbf: Option<UnixTime>,
    #[serde(default)]
    pub iat: Option<UnixTime>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub auth_time: Option<UnixTime>,
    #[serde(default)]
    pub act: Option<Actor>,
}

/// What a foreign JWT is presented as, which decides the claims it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignUse {
    /// An authorization grant (RFC 7523 §3): `aud` names this server, `sub`,
    /// `exp` and `jti` are required, and the `jti` is accepted once.
    Assertion,
    /// A subject or actor token of a token exchange (RFC 8693 §2.1): issued
    /// for some other audience, so `aud` is not ours to check; `sub` and
    /// `exp` are required.
    ExchangedToken,
}

/// The chain of a delegated token: `actor` outermost, the earlier chain
/// inside it (RFC 8693 §4.1); `None` when that would pass
/// [`MAX_ACTOR_DEPTH`].
pub fn nest_actor(actor: String, earlier: Option<Actor>) -> Option<Actor> {
    (actor_depth(earlier.as_ref()) < MAX_ACTOR_DEPTH).then(|| Actor {
        sub: actor,
        act: earlier.map(Box::new),
    })
}

/// How deep a delegation chain goes.
pub fn actor_depth(act: Option<&Actor>) -> usize {
    let mut depth = 0;
    let mut current = act;
    while let Some(actor) = current {
        depth += 1;
        current = actor.act.as_deref();
    }
    depth
}

impl Provider {
    /// Verifies a JWT signed by a trusted issuer, for `usage`.
    pub async fn verify_trusted_jwt(
        &self,
        token: &str,
        usage: ForeignUse,
    ) -> Result<ForeignClaims, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::new(
                Reason::AssertionMalformed,
                format!("the JWT is longer than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        let jws = UnverifiedJws::parse(token).map_err(|e| {
            Error::new(
                Reason::AssertionMalformed,
                format!("not a usable signed JWT: {e}"),
            )
        })?;
        // Only public keys are registered for issuers: a MAC could be made by
        // anyone who read the issuer's JWK Set, so it is never accepted.
        if !Algorithm::ASYMMETRIC.contains(&jws.alg()) {
            return Err(Error::new(
                Reason::AssertionSignatureInvalid,
                format!("{} is not accepted for JWTs of other issuers", jws.alg()),
            ));
        }
        #[derive(Deserialize)]
        struct IssuerOnly {
            iss: Option<String>,
        }
        let unverified: IssuerOnly = jws.payload_unverified().map_err(|e| {
            Error::new(
                Reason::AssertionMalformed,
                format!("the JWT's claims do not parse: {e}"),
            )
        })?;
        let Some(iss) = unverified.iss else {
            return Err(Error::new(
                Reason::AssertionClaimsInvalid,
                "the JWT has no iss claim",
            ));
        };
        let Some(issuer) = self.catalog().trusted_issuer(&iss).await? else {
            return Err(Error::new(
                Reason::AssertionUntrusted,
                format!("the issuer {:?} is not trusted here", bounded(&iss)),
            ));
        };
        let keys = self.issuer_keys(&issuer, &jws).await?;
        if keys.is_empty() {
            return Err(Error::new(
                Reason::AssertionUntrusted,
                format!(
                    "no {} key of {:?} named {:?} is published",
                    jws.alg(),
                    bounded(&iss),
                    jws.kid().map(bounded).unwrap_or_default()
                ),
            ));
        }
        let mut verified = None;
        for key in &keys {
            match jws.verify::<ForeignClaims>(key) {
                Ok(claims) => {
                    verified = Some(claims);
                    break;
                }
                Err(tessera_jose::Error::MalformedPayload(why)) => {
                    return Err(Error::new(
                        Reason::AssertionClaimsInvalid,
                        format!("the JWT's claims are not valid: {}", bounded(&why)),
                    ));
                }
                Err(_) => {}
            }
        }
        let Some(claims) = verified else {
            return Err(Error::new(
                Reason::AssertionSignatureInvalid,
                "the JWT's signature does not verify with the issuer's key",
            ));
        };
        let exp = self.check_foreign_claims(&claims, usage)?;
        if usage == ForeignUse::Assertion {
            // RFC 7523 §3 item 7: a jti, accepted once, remembered until it
            // expires.
            let Some(jti) = claims.jti.as_deref().filter(|jti| !jti.is_empty()) else {
                return Err(Error::new(
                    Reason::AssertionClaimsInvalid,
                    "the assertion has no jti claim; one is required so that it is used once",
                ));
            };
            let now = self.clock().now();
            // Kept until the verifier would refuse it as expired: `exp`
            // plus the leeway it is still accepted within.
            let replay_until = exp.saturating_add(self.settings().leeway);
            if !self
                .store()
                .record_assertion(AssertionKind::Jwt, &claims.iss, jti, replay_until, now)
                .await?
            {
                return Err(Error::new(
                    Reason::AssertionReplayed,
                    "this assertion (its jti) was used before",
                ));
            }
        }
        Ok(claims)
    }

    /// The issuer's keys that may have signed `jws`.
    async fn issuer_keys(
        &self,
        issuer: &TrustedIssuer,
        jws: &UnverifiedJws<'_>,
    ) -> Result<Vec<VerifyingKey>, Error> {
        let (kid, alg) = (jws.kid(), jws.alg());
        if let Some(set) = &issuer.jwks {
            // A registered key is used only with the algorithm it names (or,
            // without one, the token's), and a kid picks exactly one key.
            return Ok(set
                .keys
                .iter()
                .filter(|jwk| kid.is_none_or(|kid| jwk.kid.as_deref() == Some(kid)))
                .filter_map(|jwk| VerifyingKey::from_jwk_with_alg(jwk, alg).ok())
                .filter(|key| key.alg() == alg)
                .collect());
        }
        let Some(uri) = &issuer.jwks_uri else {
            return Ok(Vec::new());
        };
        let Some(source) = self.issuer_keys_source() else {
            return Err(Error::new(
                Reason::AssertionUntrusted,
                "this server cannot fetch the issuer's published keys",
            ));
        };
        source.keys_for(uri, kid, alg).await.map_err(|why| {
            tracing::warn!(issuer = %issuer.issuer, error = %why, "a trusted issuer's keys are unavailable");
            Error::new(
                Reason::AssertionUntrusted,
                "the issuer's keys could not be fetched; try again later",
            )
        })
    }

    /// Lifetime, audience and the claims `usage` requires (RFC 7523 §3);
    /// returns the `exp` the token must have.
    fn check_foreign_claims(
        &self,
        claims: &ForeignClaims,
        usage: ForeignUse,
    ) -> Result<UnixTime, Error> {
        let now = self.clock().now();
        let leeway = self.settings().leeway;
        let Some(exp) = claims.exp else {
            return Err(Error::new(
                Reason::AssertionExpired,
                "the JWT has no exp claim; one without an expiry is not accepted",
            ));
        };
        if exp <= now - leeway {
            return Err(Error::new(Reason::AssertionExpired, "the JWT has expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Error::new(
                Reason::AssertionExpired,
                "the JWT is not valid yet (nbf)",
            ));
        }
        if claims.iat.is_some_and(|iat| iat > now + leeway) {
            return Err(Error::new(
                Reason::AssertionExpired,
                "the JWT was issued in the future (iat)",
            ));
        }
        if claims.sub.as_deref().is_none_or(str::is_empty) {
            return Err(Error::new(
                Reason::AssertionClaimsInvalid,
                "the JWT has no sub claim",
            ));
        }
        if actor_depth(claims.act.as_ref()) > MAX_ACTOR_DEPTH {
            return Err(Error::new(
                Reason::AssertionClaimsInvalid,
                format!("the delegation chain is longer than {MAX_ACTOR_DEPTH} actors"),
            ));
        }
        if usage == ForeignUse::Assertion {
            // RFC 7523 §3 item 3: the issuer or the token endpoint URL,
            // compared as exact strings.
            let ours = claims.aud.as_ref().is_some_and(|aud| {
                aud.iter()
                    .any(|a| self.assertion_audiences().iter().any(|o| o == a))
            });
            if !ours {
                return Err(Error::new(
                    Reason::AssertionAudienceMismatch,
                    "the assertion's aud names neither this issuer nor its token endpoint",
                ));
            }
        }
        Ok(exp)
    }

    /// The person one of this server's tokens was issued for, who must still
    /// exist.
    pub async fn user_of_token(&self, user_id: &str) -> Result<User, Error> {
        self.store().user(user_id).await?.ok_or_else(|| {
            Error::new(
                Reason::AssertionTokenRefused,
                "the user the token was issued for no longer exists",
            )
        })
    }

    /// The user an assertion's subject names: by username, else by email.
    pub async fn user_for_subject(&self, subject: &str) -> Result<User, Error> {
        self.store().user_by_login(subject).await?.ok_or_else(|| {
            Error::new(
                Reason::AssertionSubjectUnknown,
                format!("no user here is {:?}", bounded(subject)),
            )
        })
    }

    /// An access token of this server, presented as a grant: valid now, not
    /// revoked, and an access token by its `typ` (a refresh or ID token is
    /// never taken for one).
    pub async fn presented_access_token(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::new(
                Reason::AssertionMalformed,
                format!("the token is longer than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        use crate::introspection::Inactive;
        match self.validate_access_token(token).await? {
            Ok(claims) => {
                if actor_depth(claims.act.as_ref()) > MAX_ACTOR_DEPTH {
                    return Err(Error::new(
                        Reason::AssertionTokenRefused,
                        format!("the delegation chain is longer than {MAX_ACTOR_DEPTH} actors"),
                    ));
                }
                Ok(claims)
            }
            Err(inactive) => {
                let why = match inactive {
                    Inactive::NotAnAccessToken => {
                        "it is not an access token of this server (its typ says another kind)"
                    }
                    Inactive::Expired => "the access token has expired",
                    Inactive::NotYetValid => "the access token is not valid yet",
                    Inactive::Revoked => "the access token has been revoked",
                    Inactive::ClientDeleted => "the access token's client has been deleted",
                    Inactive::Malformed | Inactive::Unknown => {
                        "it is not an access token this server issued"
                    }
                    Inactive::UnknownKey
                    | Inactive::BadSignature
                    | Inactive::ForeignIssuer
                    | Inactive::NotMinted => "its signature is not that of a key of this server",
                };
                Err(Error::new(Reason::AssertionTokenRefused, why))
            }
        }
    }

    /// An ID token of this server, presented as a subject token: signed by
    /// our key with the ID token `typ`, unexpired, and issued to `client_id`
    /// (an ID token tells its own client who signed in; no other client may
    /// trade it).
    pub async fn presented_id_token(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<IdTokenClaims, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::new(
                Reason::AssertionMalformed,
                format!("the token is longer than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        let claims = match self.verify_own::<IdTokenClaims>(token).await? {
            Ok(claims) => claims,
            Err(crate::tokens::Rejected::WrongKind) => {
                return Err(Error::new(
                    Reason::AssertionTokenRefused,
                    "it is not an ID token of this server (its typ says another kind)",
                ));
            }
            Err(_) => {
                return Err(Error::new(
                    Reason::AssertionTokenRefused,
                    "it is not an ID token this server signed",
                ));
            }
        };
        if claims.exp <= self.clock().now() {
            return Err(Error::new(
                Reason::AssertionTokenRefused,
                "the ID token has expired",
            ));
        }
        if claims.aud != client_id {
            return Err(Error::new(
                Reason::AssertionTokenRefused,
                "the ID token was issued to another client",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(depth: usize) -> Option<Actor> {
        let mut act = None;
        for i in 0..depth {
            act = Some(Actor {
                sub: format!("a{i}"),
                act: act.map(Box::new),
            });
        }
        act
    }

    #[test]
    fn actor_depth_counts_nested_actors() {
        assert_eq!(actor_depth(None), 0);
        assert_eq!(actor_depth(chain(1).as_ref()), 1);
        assert_eq!(actor_depth(chain(3).as_ref()), 3);
    }

    #[test]
    fn a_new_actor_goes_outermost_within_the_bound() {
        let nested = nest_actor("c".into(), chain(2)).expect("room");
        assert_eq!(nested.sub, "c");
        assert_eq!(nested.act.as_deref().map(|a| a.sub.as_str()), Some("a1"));
        assert_eq!(actor_depth(Some(&nested)), 3);
        assert!(nest_actor("x".into(), chain(MAX_ACTOR_DEPTH - 1)).is_some());
        assert!(nest_actor("x".into(), chain(MAX_ACTOR_DEPTH)).is_none());
    }
}

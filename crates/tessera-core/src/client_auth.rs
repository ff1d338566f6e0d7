//! Client authentication at the token, introspection, revocation and device
//! authorization endpoints (RFC 6749 §2.3, RFC 7523 §2.2 and §3, OIDC Core §9).
//!
//! Generated secrets are 256-bit random values stored as SHA-256 digests and
//! compared in constant time. A `client_secret_jwt` client's assertion is an
//! HMAC keyed with the secret itself, which a digest cannot check: for those
//! clients alone the secret is also kept sealed with the key-encryption key
//! (AES-256-GCM, bound to the client's ID), opened only to verify an
//! assertion. A `private_key_jwt` client has no secret at all: its assertions
//! verify with the public keys it registered, inline or at its `jwks_uri`.
//!
//! Every refusal is the same `invalid_client` on the wire; the precise
//! [`Refused`] reason is logged at debug level.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use tessera_jose::{Algorithm, Jwk, JwkSet, UnverifiedJws, VerifyingKey};

use crate::clock::UnixTime;
use crate::crypto::{KekError, KeyEncryptionKey, SecretDigest, random_token};
use crate::error::Error;
use crate::model::{Client, ClientAuthMethod};
use crate::params::Params;
use crate::store::ClientStore;
use crate::tokens::Audience;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may stay valid from the moment it is presented.
/// A client makes a fresh assertion for each request, so minutes suffice; the
/// bound also bounds how long a used `jti` has to be remembered.
pub const MAX_ASSERTION_LIFETIME: i64 = 3_600;

/// The longest `jti` accepted: a random identifier needs far less, and the
/// value is stored until the assertion expires.
const MAX_JTI_LENGTH: usize = 256;

/// The credentials a request presented, before they are checked.
pub enum Presented {
    /// `Authorization: Basic` (`client_secret_basic`).
    Basic {
        client_id: String,
        secret: String,
    },
    /// `client_id` and `client_secret` in the body (`client_secret_post`).
    Post {
        client_id: String,
        secret: String,
    },
    /// `client_assertion` with the JWT bearer type (`private_key_jwt` or
    /// `client_secret_jwt`, RFC 7523 §2.2). `client_id` is optional beside
    /// it (RFC 7521 §4.2); when sent, it must name the assertion's subject.
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
    /// Only `client_id`: a public client (`none`).
    PublicId {
        client_id: String,
    },
    Nothing,
}

impl Presented {
    /// The client the request names, before any check.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::PublicId { client_id } => Some(client_id),
            Presented::Assertion { client_id, .. } => client_id.as_deref(),
            Presented::Nothing => None,
        }
    }
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Presented::Basic { client_id, .. } => write!(f, "Basic({client_id}, [redacted])"),
            Presented::Post { client_id, .. } => write!(f, "Post({client_id}, [redacted])"),
            Presented::Assertion { client_id, .. } => {
                write!(f, "Assertion({client_id:?}, [redacted])")
            }
            Presented::PublicId { client_id } => write!(f, "PublicId({client_id})"),
            Presented::Nothing => f.write_str("Nothing"),
        }
    }
}

/// Where the keys of a `private_key_jwt` client registered with a `jwks_uri`
/// come from. The core does no I/O: the server implements this with a bounded,
/// cached HTTP fetch.
#[async_trait]
pub trait ClientKeysSource: Send + Sync + fmt::Debug {
    /// The JWK Set published at `uri`, from a cache while it is fresh. With
    /// `refresh`, the set at hand lacks the key an assertion names (the client
    /// may have rotated): fetch again, unless that was done moments ago. With
    /// `public_only`, never from a private or loopback address
    /// ([`registration::is_private_address`](crate::registration::is_private_address)),
    /// whatever the name resolves to: for clients that registered themselves.
    async fn client_keys(
        &self,
        uri: &str,
        refresh: bool,
        public_only: bool,
    ) -> Result<JwkSet, KeysUnavailable>;
}

/// A client's `jwks_uri` could not be read or did not hold a usable JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client's keys are unavailable: {0}")]
pub struct KeysUnavailable(pub String);

/// What checking credentials needs besides what was presented.
#[derive(Clone, Copy)]
pub struct Authenticator<'a> {
    pub clients: &'a dyn ClientStore,
    /// Opens the sealed secrets of `client_secret_jwt` clients.
    pub kek: &'a KeyEncryptionKey,
    /// Fetches the keys of clients registered with a `jwks_uri`; without one
    /// those clients cannot authenticate.
    pub keys: Option<&'a dyn ClientKeysSource>,
    pub now: UnixTime,
    /// Accepted clock difference for `exp`, `nbf` and `iat`.
    pub leeway: i64,
    /// The values an assertion's `aud` may name this server by: its issuer and
    /// the URLs of its endpoints that authenticate clients (RFC 7523 §3 item 3).
    pub audiences: &'a [String],
    /// Whether clients that registered themselves may have their keys
    /// fetched from private networks (`registration_allows_private_urls`).
    pub private_urls_allowed: bool,
}

impl fmt::Debug for Authenticator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("now", &self.now)
            .field("leeway", &self.leeway)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// Why presented credentials were refused. Logged and asserted by tests; the
/// client is only ever told `invalid_client`, whatever the reason, so that
/// the answer reveals neither which clients exist nor what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no client credentials presented")]
    NoCredentials,
    #[error("no such client")]
    UnknownClient,
    #[error("the client is registered for {registered}, not {presented}")]
    WrongMethod {
        registered: &'static str,
        presented: &'static str,
    },
    #[error("the secret does not match")]
    WrongSecret,
    #[error("the client assertion is malformed: {0}")]
    Malformed(String),
    #[error("the assertion has no sub naming the client")]
    NoSubject,
    /// RFC 7523 §3 items 1 and 2: for client authentication `iss` and `sub`
    /// are both the client ID.
    #[error("the assertion's iss is not its sub")]
    IssuerIsNotSubject,
    #[error("client_id in the body is not the assertion's sub")]
    ClientIdMismatch,
    #[error("{0} is not an algorithm for this client's assertions")]
    AlgorithmNotAllowed(Algorithm),
    #[error("none of the client's keys fits the assertion's alg and kid")]
    NoMatchingKey,
    #[error("{0}")]
    KeysUnavailable(KeysUnavailable),
    #[error("the client's sealed secret does not open")]
    SealedSecret,
    #[error("the assertion's signature does not verify")]
    BadSignature,
    #[error("the assertion's aud does not name this server")]
    WrongAudience,
    #[error("the assertion has no exp")]
    NoExpiry,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is valid for longer than {MAX_ASSERTION_LIFETIME} seconds")]
    LivesTooLong,
    #[error("the assertion is not valid yet (nbf)")]
    NotYetValid,
    #[error("the assertion was issued in the future (iat)")]
    IssuedInTheFuture,
    #[error("the assertion has no usable jti")]
    NoJti,
    #[error("the assertion's jti was used before")]
    Replayed,
}

impl Presented {
    /// Reads the credentials from the `Authorization` header value and the body.
    /// A client must use one method only (RFC 6749 §2.3).
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<Self, Error> {
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        let assertion_type = params.get("client_assertion_type");
        let assertion = params.get("client_assertion");
        let several =
            || Error::invalid_request("the client authenticated with more than one method");
        if assertion_type.is_some() || assertion.is_some() {
            if authorization.is_some() || body_secret.is_some() {
                return Err(several());
            }
            let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
                return Err(Error::invalid_request(
                    "client_assertion and client_assertion_type go together (RFC 7521 §4.2)",
                ));
            };
            // RFC 6749 §5.2: an unsupported authentication method is
            // invalid_client.
            if assertion_type != JWT_BEARER_ASSERTION {
                tracing::debug!(
                    assertion_type = %crate::error::bounded(assertion_type),
                    "unsupported client assertion type"
                );
                return Err(Error::invalid_client());
            }
            return Ok(Presented::Assertion {
                client_id: body_id.map(str::to_owned),
                assertion: assertion.to_owned(),
            });
        }
        if let Some(header) = authorization {
            let (client_id, secret) = parse_basic(header).ok_or_else(Error::invalid_client)?;
            if body_secret.is_some() {
                return Err(several());
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(Error::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            return Ok(Presented::Basic { client_id, secret });
        }
        Ok(match (body_id, body_secret) {
            (Some(id), Some(secret)) => Presented::Post {
                client_id: id.to_owned(),
                secret: secret.to_owned(),
            },
            (Some(id), None) => Presented::PublicId {
                client_id: id.to_owned(),
            },
            (None, Some(_)) => {
                return Err(Error::invalid_request(
                    "client_secret was sent without client_id",
                ));
            }
            (None, None) => Presented::Nothing,
        })
    }

    /// Checks the credentials and returns the client. Every refusal is the same
    /// `invalid_client`; the reason is logged at debug level.
    pub async fn authenticate(&self, auth: &Authenticator<'_>) -> Result<Client, Error> {
        match self.check(auth).await? {
            Ok(client) => Ok(client),
            Err(reason) => {
                tracing::debug!(
                    client_id = self.claimed_client_id().as_deref().unwrap_or("-"),
                    method = self.method_name(),
                    %reason,
                    "client authentication failed"
                );
                Err(Error::invalid_client())
            }
        }
    }

    /// Checks the credentials. The outer `Result` is a failure of the server
    /// (the store); the inner one the verdict.
    pub async fn check(&self, auth: &Authenticator<'_>) -> Result<Result<Client, Refused>, Error> {
        let (client_id, secret) = match self {
            Presented::Basic { client_id, secret } | Presented::Post { client_id, secret } => {
                (client_id, Some(secret))
            }
            Presented::PublicId { client_id } => (client_id, None),
            Presented::Assertion {
                client_id,
                assertion,
            } => return check_assertion(auth, client_id.as_deref(), assertion).await,
            Presented::Nothing => return Ok(Err(Refused::NoCredentials)),
        };
        let Some(client) = auth.clients.client(client_id).await? else {
            return Ok(Err(Refused::UnknownClient));
        };
        let method = self.method();
        let wrong_method = || Refused::WrongMethod {
            registered: registered_method(&client),
            presented: method.as_str(),
        };
        let verdict = match secret {
            // `None` registers either secret method; the JWT methods are
            // named explicitly and never accept the secret itself.
            Some(secret) => match (&client.secret_digest, client.auth_method) {
                (Some(digest), m) if m.is_none_or(|m| m == method) => {
                    if digest.matches(secret) {
                        Ok(())
                    } else {
                        Err(Refused::WrongSecret)
                    }
                }
                _ => Err(wrong_method()),
            },
            // A client without a secret is not thereby public: a
            // private_key_jwt client must prove it holds its key.
            None if client.is_public() => Ok(()),
            None => Err(wrong_method()),
        };
        Ok(verdict.map(|()| client))
    }

    /// The method of secret or public credentials, which the client's
    /// registered method must be.
    fn method(&self) -> ClientAuthMethod {
        match self {
            Presented::Basic { .. } => ClientAuthMethod::ClientSecretBasic,
            Presented::Post { .. } => ClientAuthMethod::ClientSecretPost,
            // Which of the two JWT methods is known only from the client.
            Presented::Assertion { .. } => ClientAuthMethod::PrivateKeyJwt,
            Presented::PublicId { .. } | Presented::Nothing => ClientAuthMethod::None,
        }
    }

    /// How the credentials were presented, for logs.
    fn method_name(&self) -> &'static str {
        match self {
            Presented::Assertion { .. } => "client_assertion",
            Presented::Nothing => "nothing",
            other => other.method().as_str(),
        }
    }

    /// The client these credentials claim to be, for logs: for an assertion
    /// without `client_id`, its unverified `sub`.
    fn claimed_client_id(&self) -> Option<String> {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::PublicId { client_id }
            | Presented::Assertion {
                client_id: Some(client_id),
                ..
            } => Some(crate::error::bounded(client_id).into_owned()),
            Presented::Assertion {
                client_id: None,
                assertion,
            } => UnverifiedJws::parse(assertion)
                .ok()
                .and_then(|jws| jws.payload_unverified::<AssertionClaims>().ok())
                .and_then(|claims| claims.sub)
                .map(|sub| crate::error::bounded(&sub).into_owned()),
            Presented::Nothing => None,
        }
    }
}

fn registered_method(client: &Client) -> &'static str {
    match (client.is_public(), client.auth_method) {
        (true, _) => ClientAuthMethod::None.as_str(),
        (false, Some(m)) => m.as_str(),
        (false, None) => "client_secret_basic or client_secret_post",
    }
}

/// The claims of a client assertion that Tessera reads (RFC 7523 §3). A
/// claim of the wrong type (a string `exp`, a fractional date) makes the
/// whole assertion malformed.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// RFC 7523 §3: checks a JWT client assertion, in order: its form, whose
/// it is (`iss` = `sub` = the client), the signature with that client's own
/// key or secret, `aud`, the times, and last the single use of its `jti`, so
/// that an assertion refused for another reason does not use it up.
async fn check_assertion(
    auth: &Authenticator<'_>,
    body_id: Option<&str>,
    assertion: &str,
) -> Result<Result<Client, Refused>, Error> {
    macro_rules! refuse {
        ($reason:expr) => {
            return Ok(Err($reason))
        };
    }
    let jws = match UnverifiedJws::parse(assertion) {
        Ok(jws) => jws,
        Err(e) => refuse!(Refused::Malformed(e.to_string())),
    };
    // Read before the signature is checked only to find the client, whose
    // key then decides; the same claims are read again from the verified JWS.
    let claimed = match jws.payload_unverified::<AssertionClaims>() {
        Ok(claims) => claims,
        Err(e) => refuse!(Refused::Malformed(e.to_string())),
    };
    let Some(client_id) = claimed.sub else {
        refuse!(Refused::NoSubject)
    };
    if claimed.iss.as_deref() != Some(client_id.as_str()) {
        refuse!(Refused::IssuerIsNotSubject);
    }
    if body_id.is_some_and(|id| id != client_id) {
        refuse!(Refused::ClientIdMismatch);
    }
    let Some(client) = auth.clients.client(&client_id).await? else {
        refuse!(Refused::UnknownClient)
    };
    let verified = match client.auth_method {
        Some(ClientAuthMethod::ClientSecretJwt) => verify_with_secret(auth, &client, &jws),
        Some(ClientAuthMethod::PrivateKeyJwt) => verify_with_keys(auth, &client, &jws).await,
        _ => Err(Refused::WrongMethod {
            registered: registered_method(&client),
            presented: "private_key_jwt or client_secret_jwt",
        }),
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(reason) => refuse!(reason),
    };
    // The verified payload is the one read above; checked again all the same,
    // so that nothing below rests on unverified input.
    if claims.sub.as_deref() != Some(client.id.as_str())
        || claims.iss.as_deref() != Some(client.id.as_str())
    {
        refuse!(Refused::IssuerIsNotSubject);
    }
    // One audience, and ours: an assertion naming other audiences too was
    // made for them as well, and could be replayed here by any of them.
    let mut audiences = claims.aud.iter().flat_map(|aud| aud.iter());
    let single = match (audiences.next(), audiences.next()) {
        (Some(aud), None) => Some(aud),
        _ => None,
    };
    if !single.is_some_and(|aud| auth.audiences.iter().any(|ours| ours == aud)) {
        refuse!(Refused::WrongAudience);
    }
    let now = auth.now;
    let leeway = auth.leeway;
    let Some(exp) = claims.exp else {
        refuse!(Refused::NoExpiry)
    };
    if exp.saturating_add(leeway) <= now {
        refuse!(Refused::Expired);
    }
    if exp
        > now
            .saturating_add(MAX_ASSERTION_LIFETIME)
            .saturating_add(leeway)
    {
        refuse!(Refused::LivesTooLong);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        refuse!(Refused::NotYetValid);
    }
    if claims
        .iat
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        refuse!(Refused::IssuedInTheFuture);
    }
    let jti = match claims.jti.as_deref() {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LENGTH => jti,
        _ => refuse!(Refused::NoJti),
    };
    // Kept for as long as the assertion would be accepted: until exp, plus
    // the leeway granted above.
    if !auth
        .clients
        .record_client_assertion(&client.id, jti, exp.saturating_add(leeway), now)
        .await?
    {
        refuse!(Refused::Replayed);
    }
    Ok(Ok(client))
}

/// `client_secret_jwt`: HS256 keyed with the client secret, opened from its
/// sealed copy. No other algorithm: the secret is the only key such a client
/// has.
fn verify_with_secret(
    auth: &Authenticator<'_>,
    client: &Client,
    jws: &UnverifiedJws<'_>,
) -> Result<AssertionClaims, Refused> {
    if jws.alg() != Algorithm::HS256 {
        return Err(Refused::AlgorithmNotAllowed(jws.alg()));
    }
    let sealed = client
        .sealed_secret
        .as_deref()
        .ok_or(Refused::SealedSecret)?;
    let secret =
        open_client_secret(auth.kek, &client.id, sealed).map_err(|_| Refused::SealedSecret)?;
    let key = VerifyingKey::hmac(None, &secret).map_err(|_| Refused::SealedSecret)?;
    jws.verify(&key).map_err(verify_error)
}

/// `private_key_jwt`: one of the client's registered public keys, for the
/// assertion's asymmetric `alg`. Each key is parsed for that algorithm only
/// (RFC 8725 §3.1), so an HS256 assertion keyed with a public key, or one
/// signed by any other client's key, has nothing to verify with.
async fn verify_with_keys(
    auth: &Authenticator<'_>,
    client: &Client,
    jws: &UnverifiedJws<'_>,
) -> Result<AssertionClaims, Refused> {
    let alg = jws.alg();
    if alg.is_symmetric() {
        return Err(Refused::AlgorithmNotAllowed(alg));
    }
    let keys = match (&client.jwks, &client.jwks_uri) {
        (Some(jwks), _) => candidate_keys(jwks, alg, jws.kid()),
        (None, Some(uri)) => {
            let source = auth.keys.ok_or_else(|| {
                Refused::KeysUnavailable(KeysUnavailable("no source for jwks_uri keys".into()))
            })?;
            // A client registered by an operator may keep its keys on the
            // intranet; one that registered itself may not (SSRF).
            let public_only = client.metadata.registration.is_some() && !auth.private_urls_allowed;
            let set = source
                .client_keys(uri, false, public_only)
                .await
                .map_err(Refused::KeysUnavailable)?;
            let mut keys = candidate_keys(&set, alg, jws.kid());
            if keys.is_empty() {
                // The client may have rotated to a key this copy predates.
                let set = source
                    .client_keys(uri, true, public_only)
                    .await
                    .map_err(Refused::KeysUnavailable)?;
                keys = candidate_keys(&set, alg, jws.kid());
            }
            keys
        }
        (None, None) => Vec::new(),
    };
    if keys.is_empty() {
        return Err(Refused::NoMatchingKey);
    }
    // Several keys without `kid` may fit; the assertion verifies with one.
    let mut outcome = Err(Refused::NoMatchingKey);
    for key in &keys {
        match jws.verify(key) {
            Ok(claims) => return Ok(claims),
            Err(e) => outcome = Err(verify_error(e)),
        }
    }
    outcome
}

/// The keys of `set` that may verify an assertion with `alg` and `kid`: those
/// with that `kid` (or, when none has it, those without a `kid`, since a
/// `kid` is a hint), which parse for `alg`.
fn candidate_keys(set: &JwkSet, alg: Algorithm, kid: Option<&str>) -> Vec<VerifyingKey> {
    let named: Vec<&Jwk> = match kid {
        Some(kid) => {
            let with_kid: Vec<&Jwk> = set
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if with_kid.is_empty() {
                set.keys.iter().filter(|k| k.kid.is_none()).collect()
            } else {
                with_kid
            }
        }
        None => set.keys.iter().collect(),
    };
    named
        .into_iter()
        .filter(|jwk| key_algorithms(jwk).contains(&alg))
        .filter_map(|jwk| VerifyingKey::from_jwk_with_alg(jwk, alg).ok())
        .collect()
}

/// The algorithms a client's JWK may verify: the asymmetric `alg` it names,
/// or, when it names none, those its `kty` fits (an RSA key serves RS256 and
/// PS256). Never HS256: a registered key is public.
pub fn key_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    match jwk.alg.as_deref() {
        Some(name) => name
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| !alg.is_symmetric())
            .into_iter()
            .collect(),
        None => Algorithm::ASYMMETRIC
            .into_iter()
            .filter(|alg| alg.key_type() == jwk.kty)
            .collect(),
    }
}

fn verify_error(error: tessera_jose::Error) -> Refused {
    match error {
        tessera_jose::Error::BadSignature | tessera_jose::Error::AlgorithmMismatch => {
            Refused::BadSignature
        }
        other => Refused::Malformed(other.to_string()),
    }
}

/// A new client secret and the forms it is stored in.
pub struct NewSecret {
    /// Shown once to the person who registered the client.
    pub secret: String,
    pub digest: SecretDigest,
    /// For `client_secret_jwt` clients only.
    pub sealed: Option<Vec<u8>>,
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewSecret([redacted])")
    }
}

impl NewSecret {
    /// A random 256-bit secret for `client_id`, also sealed with `sealed_with`
    /// when given: pass the key-encryption key for `client_secret_jwt`
    /// clients, and only for them.
    pub fn generate(client_id: &str, sealed_with: Option<&KeyEncryptionKey>) -> Self {
        let secret = random_token();
        NewSecret {
            digest: SecretDigest::of(&secret),
            sealed: sealed_with.map(|kek| seal_client_secret(kek, client_id, &secret)),
            secret,
        }
    }
}

/// Seals a `client_secret_jwt` client's secret. The client's ID is the
/// authenticated context, so a sealed secret copied to another client's row
/// does not open there.
pub fn seal_client_secret(kek: &KeyEncryptionKey, client_id: &str, secret: &str) -> Vec<u8> {
    kek.seal(&secret_context(client_id), secret.as_bytes())
}

fn open_client_secret(
    kek: &KeyEncryptionKey,
    client_id: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, KekError> {
    kek.open(&secret_context(client_id), sealed)
}

fn secret_context(client_id: &str) -> String {
    format!("client-secret:{client_id}")
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::{Value, json};
    use tessera_jose::{SigningKey, b64};

    use super::*;
    use crate::model::{GrantType, IntrospectionPolicy};
    use crate::scope::Scope;
    use crate::store::{SecretUpdate, StoreResult};

    const NOW: UnixTime = 1_800_000_000;
    const LEEWAY: i64 = 30;
    const ISSUER: &str = "https://id.example";
    const TOKEN_URL: &str = "https://id.example/oauth2/token";

    /// The store's contract for clients, in memory; one lock per verb.
    #[derive(Debug, Default)]
    struct Memory {
        clients: Mutex<HashMap<String, Client>>,
        used: Mutex<HashMap<(String, String), UnixTime>>,
    }

    #[async_trait]
    impl ClientStore for Memory {
        async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
            Ok(self.clients.lock().expect("lock").get(id).cloned())
        }
        async fn insert_client(&self, client: &Client) -> StoreResult<()> {
            self.clients
                .lock()
                .expect("lock")
                .insert(client.id.clone(), client.clone());
            Ok(())
        }
        async fn clients(&self) -> StoreResult<Vec<Client>> {
            Ok(self
                .clients
                .lock()
                .expect("lock")
                .values()
                .cloned()
                .collect())
        }
        async fn delete_client(&self, id: &str) -> StoreResult<bool> {
            Ok(self.clients.lock().expect("lock").remove(id).is_some())
        }
        async fn set_client_secret(
            &self,
            id: &str,
            digest: &SecretDigest,
            sealed: Option<&[u8]>,
        ) -> StoreResult<bool> {
            let mut clients = self.clients.lock().expect("lock");
            match clients.get_mut(id) {
                Some(c) if c.secret_digest.is_some() => {
                    c.secret_digest = Some(*digest);
                    c.sealed_secret = sealed.map(<[u8]>::to_vec);
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        async fn update_client(&self, client: &Client, secret: SecretUpdate) -> StoreResult<bool> {
            let mut clients = self.clients.lock().expect("lock");
            let Some(stored) = clients.get_mut(&client.id) else {
                return Ok(false);
            };
            let (digest, sealed) = (stored.secret_digest, stored.sealed_secret.clone());
            *stored = client.clone();
            if secret == SecretUpdate::Keep {
                stored.secret_digest = digest;
                stored.sealed_secret = sealed;
            }
            Ok(true)
        }
        async fn update_client_if_unchanged(
            &self,
            client: &Client,
            secret: SecretUpdate,
            expected: &crate::model::ClientMetadata,
        ) -> StoreResult<bool> {
            let unchanged = self
                .clients
                .lock()
                .expect("lock")
                .get(&client.id)
                .is_some_and(|stored| stored.metadata == *expected);
            if !unchanged {
                return Ok(false);
            }
            self.update_client(client, secret).await
        }
        async fn record_client_assertion(
            &self,
            client_id: &str,
            jti: &str,
            expires_at: UnixTime,
            now: UnixTime,
        ) -> StoreResult<bool> {
            let mut used = self.used.lock().expect("lock");
            let key = (client_id.to_owned(), jti.to_owned());
            if used.get(&key).is_some_and(|exp| *exp > now) {
                return Ok(false);
            }
            used.insert(key, expires_at);
            Ok(true)
        }
    }

    /// A key source whose sets change on refresh, as a client's would after
    /// a rotation; it records how it was asked.
    #[derive(Debug)]
    struct Rotating {
        before: JwkSet,
        after: JwkSet,
        calls: Mutex<Vec<bool>>,
    }

    #[async_trait]
    impl ClientKeysSource for Rotating {
        async fn client_keys(
            &self,
            _: &str,
            refresh: bool,
            _: bool,
        ) -> Result<JwkSet, KeysUnavailable> {
            self.calls.lock().expect("lock").push(refresh);
            Ok(if refresh { &self.after } else { &self.before }.clone())
        }
    }

    struct World {
        store: Memory,
        kek: KeyEncryptionKey,
        audiences: Vec<String>,
        keys: Option<Rotating>,
    }

    impl World {
        fn new() -> World {
            World {
                store: Memory::default(),
                kek: KeyEncryptionKey::generate().0,
                audiences: vec![ISSUER.to_owned(), TOKEN_URL.to_owned()],
                keys: None,
            }
        }

        fn auth(&self) -> Authenticator<'_> {
            Authenticator {
                clients: &self.store,
                kek: &self.kek,
                keys: self.keys.as_ref().map(|k| k as &dyn ClientKeysSource),
                now: NOW,
                leeway: LEEWAY,
                audiences: &self.audiences,
                private_urls_allowed: false,
            }
        }

        async fn add(&self, client: Client) {
            self.store.insert_client(&client).await.expect("insert");
        }

        /// Registers a private_key_jwt client with the public half of `key`.
        async fn keyed(&self, id: &str, keys: &[&SigningKey]) {
            let jwks = JwkSet {
                keys: keys
                    .iter()
                    .map(|k| k.public_jwk().expect("public"))
                    .collect(),
            };
            self.add(client(id, ClientAuthMethod::PrivateKeyJwt, Some(jwks)))
                .await;
        }

        /// Registers a client_secret_jwt client; returns its secret.
        async fn secret_jwt(&self, id: &str) -> String {
            let secret = NewSecret::generate(id, Some(&self.kek));
            let mut c = client(id, ClientAuthMethod::ClientSecretJwt, None);
            c.secret_digest = Some(secret.digest);
            c.sealed_secret = secret.sealed.clone();
            self.add(c).await;
            secret.secret
        }

        async fn check(&self, presented: Presented) -> Result<Client, Refused> {
            presented
                .check(&self.auth())
                .await
                .expect("no server error")
        }

        async fn assert(&self, assertion: &str) -> Result<Client, Refused> {
            self.check(Presented::Assertion {
                client_id: None,
                assertion: assertion.to_owned(),
            })
            .await
        }
    }

    fn client(id: &str, method: ClientAuthMethod, jwks: Option<JwkSet>) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            secret_digest: None,
            sealed_secret: None,
            auth_method: Some(method),
            jwks,
            jwks_uri: None,
            grants: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scopes: Scope::default(),
            audiences: vec![],
            token_format: None,
            access_token_ttl: None,
            introspection: IntrospectionPolicy::Own,
            require_pkce: true,
            id_token_alg: None,
            post_logout_redirect_uris: vec![],
            metadata: Default::default(),
            created_at: NOW,
        }
    }

    fn claims(client_id: &str) -> Value {
        json!({
            "iss": client_id, "sub": client_id, "aud": TOKEN_URL,
            "exp": NOW + 60, "iat": NOW, "jti": random_token(),
        })
    }

    fn remove(claims: &mut Value, name: &str) {
        if let Some(members) = claims.as_object_mut() {
            members.remove(name);
        }
    }

    fn sign(key: &SigningKey, claims: &Value) -> String {
        tessera_jose::encode(key, "JWT", claims).expect("sign")
    }

    fn key(alg: Algorithm, kid: &str) -> SigningKey {
        SigningKey::generate(alg, kid).expect("generate").0
    }

    /// A JWS with any header, signed with HMAC-SHA256 under `secret`, or
    /// unsigned when `secret` is `None`.
    fn forge(header: Value, claims: &Value, secret: Option<&[u8]>) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = secret.map_or_else(Vec::new, |s| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, s);
            aws_lc_rs::hmac::sign(&key, input.as_bytes())
                .as_ref()
                .to_vec()
        });
        format!("{input}.{}", b64(signature))
    }

    #[tokio::test]
    async fn a_private_key_jwt_assertion_is_accepted_once() {
        let world = World::new();
        let k = key(Algorithm::ES256, "k1");
        world.keyed("svc", &[&k]).await;
        let assertion = sign(&k, &claims("svc"));
        assert_eq!(
            world.assert(&assertion).await.map(|c| c.id),
            Ok("svc".into())
        );
        assert_eq!(world.assert(&assertion).await, Err(Refused::Replayed));
        // client_id beside the assertion is fine when it names the client.
        let again = sign(&k, &claims("svc"));
        let named = Presented::Assertion {
            client_id: Some("svc".into()),
            assertion: again,
        };
        assert!(world.check(named).await.is_ok());
    }

    #[tokio::test]
    async fn every_asymmetric_algorithm_verifies_with_and_without_alg_and_kid() {
        for alg in Algorithm::ASYMMETRIC {
            let world = World::new();
            let k = key(alg, "k1");
            let mut bare = k.public_jwk().expect("public");
            bare.alg = None;
            bare.kid = None;
            world
                .add(client(
                    "svc",
                    ClientAuthMethod::PrivateKeyJwt,
                    Some(JwkSet { keys: vec![bare] }),
                ))
                .await;
            // The header names kid "k1"; the registered key has none: a kid
            // is a hint, and the one key without a kid is tried.
            let result = world.assert(&sign(&k, &claims("svc"))).await;
            assert!(result.is_ok(), "{alg}: {result:?}");
        }
        // An RSA key registered without alg serves RS256 and PS256 alike.
        let world = World::new();
        let rs = key(Algorithm::RS256, "r");
        let mut jwk = rs.public_jwk().expect("public");
        jwk.alg = None;
        world
            .add(client(
                "svc",
                ClientAuthMethod::PrivateKeyJwt,
                Some(JwkSet { keys: vec![jwk] }),
            ))
            .await;
        assert!(world.assert(&sign(&rs, &claims("svc"))).await.is_ok());
    }

    #[tokio::test]
    async fn the_claims_are_checked() {
        let world = World::new();
        let k = key(Algorithm::EdDSA, "k1");
        world.keyed("svc", &[&k]).await;
        type Change = fn(&mut Value);
        let cases: Vec<(&str, Change, Result<(), Refused>)> = vec![
            ("good", |_| {}, Ok(())),
            ("aud issuer", |c| c["aud"] = json!(ISSUER), Ok(())),
            (
                "aud list with another audience",
                |c| c["aud"] = json!(["https://else.example", TOKEN_URL]),
                Err(Refused::WrongAudience),
            ),
            ("aud list of one", |c| c["aud"] = json!([TOKEN_URL]), Ok(())),
            (
                "aud other",
                |c| c["aud"] = json!("https://else.example/oauth2/token"),
                Err(Refused::WrongAudience),
            ),
            (
                "aud missing",
                |c| remove(c, "aud"),
                Err(Refused::WrongAudience),
            ),
            ("exp missing", |c| remove(c, "exp"), Err(Refused::NoExpiry)),
            (
                "exp within leeway",
                |c| c["exp"] = json!(NOW - LEEWAY + 1),
                Ok(()),
            ),
            (
                "expired",
                |c| c["exp"] = json!(NOW - LEEWAY),
                Err(Refused::Expired),
            ),
            (
                "exp as text",
                |c| c["exp"] = json!((NOW + 60).to_string()),
                Err(Refused::Malformed(String::new())),
            ),
            (
                "lives too long",
                |c| c["exp"] = json!(NOW + MAX_ASSERTION_LIFETIME + LEEWAY + 1),
                Err(Refused::LivesTooLong),
            ),
            (
                "nbf ahead",
                |c| c["nbf"] = json!(NOW + LEEWAY + 1),
                Err(Refused::NotYetValid),
            ),
            (
                "iat ahead",
                |c| c["iat"] = json!(NOW + LEEWAY + 1),
                Err(Refused::IssuedInTheFuture),
            ),
            ("jti missing", |c| remove(c, "jti"), Err(Refused::NoJti)),
            ("jti empty", |c| c["jti"] = json!(""), Err(Refused::NoJti)),
            (
                "iss not sub",
                |c| c["iss"] = json!("other"),
                Err(Refused::IssuerIsNotSubject),
            ),
            ("sub missing", |c| remove(c, "sub"), Err(Refused::NoSubject)),
            (
                "unknown client",
                |c| {
                    c["iss"] = json!("nobody");
                    c["sub"] = json!("nobody");
                },
                Err(Refused::UnknownClient),
            ),
        ];
        for (name, change, expected) in cases {
            let mut c = claims("svc");
            change(&mut c);
            let got = world.assert(&sign(&k, &c)).await.map(|_| ());
            match (&got, &expected) {
                (Err(Refused::Malformed(_)), Err(Refused::Malformed(_))) => {}
                _ => assert_eq!(got, expected, "{name}"),
            }
        }
        let mismatch = Presented::Assertion {
            client_id: Some("other".into()),
            assertion: sign(&k, &claims("svc")),
        };
        assert_eq!(world.check(mismatch).await, Err(Refused::ClientIdMismatch));
    }

    #[tokio::test]
    async fn a_refused_assertion_does_not_use_up_its_jti() {
        let world = World::new();
        let k = key(Algorithm::ES256, "k1");
        world.keyed("svc", &[&k]).await;
        let mut c = claims("svc");
        c["aud"] = json!("https://else.example");
        assert_eq!(
            world.assert(&sign(&k, &c)).await,
            Err(Refused::WrongAudience)
        );
        c["aud"] = json!(TOKEN_URL);
        assert!(world.assert(&sign(&k, &c)).await.is_ok());
    }

    #[tokio::test]
    async fn only_the_clients_own_keys_verify() {
        let world = World::new();
        let mine = key(Algorithm::RS256, "k1");
        world.keyed("svc", &[&mine]).await;
        let theirs = key(Algorithm::RS256, "k1");
        world.keyed("other", &[&theirs]).await;
        let c = claims("svc");

        // alg none does not even parse.
        let none = forge(json!({"alg": "none", "kid": "k1"}), &c, None);
        assert!(matches!(
            world.assert(&none).await,
            Err(Refused::Malformed(_))
        ));
        // HS256 keyed with the public key, as JWK JSON or as the modulus.
        let public = mine.public_jwk().expect("public");
        for secret in [
            serde_json::to_vec(&public).expect("json"),
            tessera_jose::b64_decode(public.n.as_deref().expect("n")).expect("n"),
        ] {
            let forged = forge(json!({"alg": "HS256", "kid": "k1"}), &c, Some(&secret));
            assert_eq!(
                world.assert(&forged).await,
                Err(Refused::AlgorithmNotAllowed(Algorithm::HS256))
            );
        }
        // Another client's key, under the same kid.
        assert_eq!(
            world.assert(&sign(&theirs, &c)).await,
            Err(Refused::BadSignature)
        );
        // An algorithm the registered key was not published for.
        let ps = key(Algorithm::PS256, "k1");
        assert_eq!(
            world.assert(&sign(&ps, &claims("svc"))).await,
            Err(Refused::NoMatchingKey)
        );
        // An unknown kid: nothing to try.
        let stranger = key(Algorithm::RS256, "k9");
        assert_eq!(
            world.assert(&sign(&stranger, &claims("svc"))).await,
            Err(Refused::NoMatchingKey)
        );
        assert!(world.assert(&sign(&mine, &c)).await.is_ok());
    }

    #[tokio::test]
    async fn client_secret_jwt_uses_the_sealed_secret_and_hs256_only() {
        let world = World::new();
        let secret = world.secret_jwt("hs").await;
        let hs = SigningKey::hmac("", secret.as_bytes()).expect("hmac");
        assert!(world.assert(&sign(&hs, &claims("hs"))).await.is_ok());

        let wrong = SigningKey::hmac("", random_token().as_bytes()).expect("hmac");
        assert_eq!(
            world.assert(&sign(&wrong, &claims("hs"))).await,
            Err(Refused::BadSignature)
        );
        let es = key(Algorithm::ES256, "k1");
        assert_eq!(
            world.assert(&sign(&es, &claims("hs"))).await,
            Err(Refused::AlgorithmNotAllowed(Algorithm::ES256))
        );

        // A sealed secret moved to another client's row does not open there.
        let mut moved = client("copy", ClientAuthMethod::ClientSecretJwt, None);
        let original = world
            .store
            .client("hs")
            .await
            .expect("read")
            .expect("client");
        moved.secret_digest = original.secret_digest;
        moved.sealed_secret = original.sealed_secret;
        world.add(moved).await;
        assert_eq!(
            world.assert(&sign(&hs, &claims("copy"))).await,
            Err(Refused::SealedSecret)
        );
    }

    #[tokio::test]
    async fn a_client_authenticates_only_with_its_registered_method() {
        let world = World::new();
        let k = key(Algorithm::ES256, "k1");
        world.keyed("pk", &[&k]).await;
        let secret = world.secret_jwt("hs").await;
        let mut basic = client("basic", ClientAuthMethod::ClientSecretBasic, None);
        basic.secret_digest = Some(SecretDigest::of("s3cret"));
        world.add(basic).await;

        // The JWT clients' secret (or lack of one) is no password.
        for presented in [
            Presented::Basic {
                client_id: "hs".into(),
                secret: secret.clone(),
            },
            Presented::Post {
                client_id: "hs".into(),
                secret: secret.clone(),
            },
            Presented::PublicId {
                client_id: "pk".into(),
            },
            Presented::Post {
                client_id: "pk".into(),
                secret: String::new(),
            },
        ] {
            let got = world.check(presented).await;
            assert!(matches!(got, Err(Refused::WrongMethod { .. })), "{got:?}");
        }
        // A secret client does not authenticate with an assertion, not even
        // one keyed with its own secret.
        let hs = SigningKey::hmac("", b"s3cret-s3cret-s3cret-s3cret-s3cret").expect("hmac");
        let got = world.assert(&sign(&hs, &claims("basic"))).await;
        assert!(matches!(got, Err(Refused::WrongMethod { .. })), "{got:?}");
        // The Basic client itself still works, and a wrong secret does not.
        for (secret, ok) in [("s3cret", true), ("s3cret!", false)] {
            let got = world
                .check(Presented::Basic {
                    client_id: "basic".into(),
                    secret: secret.into(),
                })
                .await;
            assert_eq!(got.is_ok(), ok, "{got:?}");
        }
    }

    #[tokio::test]
    async fn jwks_uri_keys_are_fetched_again_for_an_unknown_kid() {
        let mut world = World::new();
        let old = key(Algorithm::ES256, "old");
        let new = key(Algorithm::ES256, "new");
        let set = |keys: &[&SigningKey]| JwkSet {
            keys: keys
                .iter()
                .map(|k| k.public_jwk().expect("public"))
                .collect(),
        };
        let mut c = client("remote", ClientAuthMethod::PrivateKeyJwt, None);
        c.jwks_uri = Some("https://remote.example/jwks".into());
        world.add(c).await;

        // Without a source, such a client cannot authenticate.
        assert!(matches!(
            world.assert(&sign(&old, &claims("remote"))).await,
            Err(Refused::KeysUnavailable(_))
        ));

        world.keys = Some(Rotating {
            before: set(&[&old]),
            after: set(&[&old, &new]),
            calls: Mutex::default(),
        });
        assert!(world.assert(&sign(&old, &claims("remote"))).await.is_ok());
        assert!(world.assert(&sign(&new, &claims("remote"))).await.is_ok());
        let calls = world
            .keys
            .as_ref()
            .map(|k| k.calls.lock().expect("lock").clone());
        assert_eq!(calls, Some(vec![false, false, true]));
    }

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            parse_basic(&basic("my%20app:s%3Acret+x")),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(
            parse_basic(&basic("id:")),
            Some(("id".into(), String::new()))
        );
        assert_eq!(parse_basic(&basic("no-colon")), None);
        assert_eq!(parse_basic(&basic(":secret")), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let params = Params::from_form(b"client_id=a&client_secret=b").expect("form");
        let err = Presented::from_request(Some(&basic("a:b")), &params).expect_err("two methods");
        assert_eq!(err.code(), crate::ErrorCode::InvalidRequest);
    }

    #[test]
    fn assertions_are_read_from_the_body() {
        let jwt_bearer = format!(
            "client_assertion_type={}",
            form_urlencoded::byte_serialize(JWT_BEARER_ASSERTION.as_bytes()).collect::<String>()
        );
        let read = |body: &str, header: Option<&str>| {
            Presented::from_request(header, &Params::from_form(body.as_bytes()).expect("form"))
        };
        assert!(matches!(
            read(&format!("{jwt_bearer}&client_assertion=a.b.c&client_id=x"), None),
            Ok(Presented::Assertion { client_id: Some(id), assertion }) if id == "x" && assertion == "a.b.c"
        ));
        for (body, header, code) in [
            (
                format!("{jwt_bearer}&client_assertion=a.b.c"),
                Some(basic("a:b")),
                crate::ErrorCode::InvalidRequest,
            ),
            (
                format!("{jwt_bearer}&client_assertion=a.b.c&client_id=a&client_secret=b"),
                None,
                crate::ErrorCode::InvalidRequest,
            ),
            (jwt_bearer.clone(), None, crate::ErrorCode::InvalidRequest),
            (
                "client_assertion=a.b.c".to_owned(),
                None,
                crate::ErrorCode::InvalidRequest,
            ),
            (
                "client_assertion_type=urn%3Aexample%3Asaml&client_assertion=x".to_owned(),
                None,
                crate::ErrorCode::InvalidClient,
            ),
        ] {
            let err = read(&body, header.as_deref()).expect_err(&body);
            assert_eq!(err.code(), code, "{body}");
        }
    }
}

//! The things Tessera stores: clients, resources (APIs) and their settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::SecretDigest;
use crate::error::Error;
use crate::scope::Scope;

/// A grant type a client may be allowed to use (RFC 6749 §4, and the URNs of
/// RFC 8628, RFC 8693, RFC 7523 and RFC 7522). `Implicit` is a response type, not a
/// `grant_type` value, but it is allowed per client the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum GrantType {
    AuthorizationCode,
    Implicit,
    Password,
    ClientCredentials,
    RefreshToken,
    DeviceCode,
    TokenExchange,
    JwtBearer,
    Saml2Bearer,
}

impl GrantType {
    pub const ALL: [GrantType; 9] = [
        GrantType::AuthorizationCode,
        GrantType::Implicit,
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
        GrantType::JwtBearer,
        GrantType::Saml2Bearer,
    ];

    /// The registered `grant_type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::Implicit => "implicit",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            GrantType::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            GrantType::Saml2Bearer => "urn:ietf:params:oauth:grant-type:saml2-bearer",
        }
    }
}

impl From<GrantType> for &'static str {
    fn from(grant: GrantType) -> Self {
        grant.as_str()
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

impl GrantType {
    /// The grant named by a token request's `grant_type`: exact registered strings
    /// only, and never `implicit`, which is a response type (RFC 6749 §4.2).
    pub fn from_wire(text: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|g| *g != GrantType::Implicit && g.as_str() == text)
    }
}

impl FromStr for GrantType {
    type Err = UnknownValue;

    /// Accepts the registered strings and `implicit`, and for the URN grants their
    /// last segment (`device_code`, `token-exchange`) as a convenience on the
    /// command line.
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        if let Some(grant) = GrantType::ALL.into_iter().find(|g| g.as_str() == text) {
            return Ok(grant);
        }
        match text {
            "device_code" => Ok(GrantType::DeviceCode),
            "token-exchange" | "token_exchange" => Ok(GrantType::TokenExchange),
            "jwt-bearer" | "jwt_bearer" => Ok(GrantType::JwtBearer),
            "saml2-bearer" | "saml2_bearer" => Ok(GrantType::Saml2Bearer),
            _ => Err(UnknownValue {
                kind: "grant type",
                value: text.to_owned(),
            }),
        }
    }
}

impl TryFrom<String> for GrantType {
    type Error = UnknownValue;
    fn try_from(text: String) -> Result<Self, UnknownValue> {
        text.parse()
    }
}

/// How a client authenticates at the token, introspection and revocation
/// endpoints (RFC 7591 §2 `token_endpoint_auth_method`, OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with HS256 under the client secret (RFC 7523 §2.2).
    ClientSecretJwt,
    /// A JWT signed with one of the client's registered private keys
    /// (RFC 7523 §2.2); the client has no secret.
    PrivateKeyJwt,
    /// A public client: no secret (RFC 6749 §2.1).
    None,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::ClientSecretJwt => "client_secret_jwt",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::None => "none",
        }
    }

    /// Whether the client authenticates with a JWT assertion (RFC 7523 §2.2).
    pub fn is_jwt(self) -> bool {
        matches!(
            self,
            ClientAuthMethod::ClientSecretJwt | ClientAuthMethod::PrivateKeyJwt
        )
    }
}

impl FromStr for ClientAuthMethod {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "client_secret_basic" => Ok(ClientAuthMethod::ClientSecretBasic),
            "client_secret_post" => Ok(ClientAuthMethod::ClientSecretPost),
            "client_secret_jwt" => Ok(ClientAuthMethod::ClientSecretJwt),
            "private_key_jwt" => Ok(ClientAuthMethod::PrivateKeyJwt),
            "none" => Ok(ClientAuthMethod::None),
            _ => Err(UnknownValue {
                kind: "client authentication method",
                value: text.to_owned(),
            }),
        }
    }
}

/// Whether access tokens are self-contained JWTs (RFC 9068) or opaque reference
/// tokens that only introspection can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    Jwt,
    Reference,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Jwt => "jwt",
            TokenFormat::Reference => "reference",
        }
    }
}

impl FromStr for TokenFormat {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "jwt" => Ok(TokenFormat::Jwt),
            "reference" => Ok(TokenFormat::Reference),
            _ => Err(UnknownValue {
                kind: "token format",
                value: text.to_owned(),
            }),
        }
    }
}

/// Which tokens a client may introspect (RFC 7662 §2.1 leaves the policy to the
/// server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectionPolicy {
    /// Any token: an opt-in for a trusted gateway in front of many APIs.
    Any,
    /// Only tokens issued to this client or naming one of its audiences: the
    /// default, as RFC 7662 §4 asks (a resource server learns nothing about
    /// tokens that are not for it).
    Own,
}

impl IntrospectionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            IntrospectionPolicy::Any => "any",
            IntrospectionPolicy::Own => "own",
        }
    }
}

impl FromStr for IntrospectionPolicy {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "any" => Ok(IntrospectionPolicy::Any),
            "own" => Ok(IntrospectionPolicy::Own),
            _ => Err(UnknownValue {
                kind: "introspection policy",
                value: text.to_owned(),
            }),
        }
    }
}

/// A registered client application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// `None` for public clients and `private_key_jwt` clients.
    pub secret_digest: Option<SecretDigest>,
    /// The secret itself, sealed with the key-encryption key under the
    /// client's ID; only for `client_secret_jwt`, whose HMAC cannot be checked
    /// against a digest. Every other method keeps the digest alone.
    pub sealed_secret: Option<Vec<u8>>,
    /// `None`: either secret method (Basic or in the body); otherwise only
    /// this one.
    pub auth_method: Option<ClientAuthMethod>,
    /// The public keys of a `private_key_jwt` client, registered inline...
    pub jwks: Option<tessera_jose::JwkSet>,
    /// ...or where the client publishes them (fetched and cached by the server).
    pub jwks_uri: Option<String>,
    pub grants: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    /// Overrides the default format unless a resource insists on its own.
    pub token_format: Option<TokenFormat>,
    /// Overrides the server's lifetime for this client's access tokens, in seconds.
    pub access_token_ttl: Option<i64>,
    pub introspection: IntrospectionPolicy,
    /// PKCE for the code flow even for a confidential client (the default;
    /// public clients always need it).
    pub require_pkce: bool,
    /// The algorithm of this client's ID tokens, when it is not the server's
    /// (RS256 for relying parties that support nothing else).
    pub id_token_alg: Option<tessera_jose::Algorithm>,
    /// Where RP-initiated logout may send the browser afterwards.
    pub post_logout_redirect_uris: Vec<String>,
    /// The settings kept as one document.
    pub metadata: ClientMetadata,
    pub created_at: UnixTime,
}

/// Client settings kept as one JSON document beside the indexed columns: a
/// new setting is a field here (with `#[serde(default)]`), not a migration.
/// Unknown fields are ignored, so an older binary reads a newer document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// Token exchange may issue this client tokens without an `act` claim
    /// when it presents no actor token: impersonation (RFC 8693 §1.1), in
    /// which the client is indistinguishable from the subject. Off, every
    /// exchanged token names the client as its actor (delegation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub impersonation: bool,
    /// The audiences of the APIs this client is the service behind. A
    /// person's access token for one of them is "for" this client: it may
    /// trade it on their behalf (`requested_token_use=on_behalf_of`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serves: Vec<String>,
    /// RFC 7591 §2 descriptive metadata, kept as registered and answered back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// What sort of application it is, when that was said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ClientKind>,
    /// Set for a client registered at the registration endpoint, which it
    /// manages with its registration access token (RFC 7592).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<ManagedRegistration>,
    /// The ID of the person who registered the client in the developer
    /// portal, who manages it there (an admin manages every client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What sort of application a client is. It sets the defaults of a new
/// client (its grants, and whether it keeps a secret) and which redirect URIs
/// fit it ([`registration::check_client`](crate::registration::check_client)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A server-side web application: confidential, code flow, https (or
    /// loopback) redirects.
    Web,
    /// A browser application: public, code flow with PKCE, https (or
    /// loopback) redirects.
    Spa,
    /// A desktop or mobile application: public, code flow with PKCE,
    /// loopback or private-use-scheme redirects too (RFC 8252).
    Native,
    /// A service acting on its own behalf: confidential, client credentials,
    /// no redirects.
    Service,
    /// A device without a browser: public, the device grant (RFC 8628), no
    /// redirects.
    Device,
}

impl ClientKind {
    pub const ALL: [ClientKind; 5] = [
        ClientKind::Web,
        ClientKind::Spa,
        ClientKind::Native,
        ClientKind::Service,
        ClientKind::Device,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Web => "web",
            ClientKind::Spa => "spa",
            ClientKind::Native => "native",
            ClientKind::Service => "service",
            ClientKind::Device => "device",
        }
    }

    /// Whether clients of this kind run where a secret cannot be kept.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            ClientKind::Spa | ClientKind::Native | ClientKind::Device
        )
    }

    /// The grants a new client of this kind gets unless told otherwise.
    pub fn default_grants(self) -> Vec<GrantType> {
        match self {
            ClientKind::Web | ClientKind::Spa | ClientKind::Native => {
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
            }
            ClientKind::Service => vec![GrantType::ClientCredentials],
            ClientKind::Device => vec![GrantType::DeviceCode, GrantType::RefreshToken],
        }
    }

    /// Whether the kind sends browsers back to the client at all.
    pub fn redirects(self) -> bool {
        matches!(self, ClientKind::Web | ClientKind::Spa | ClientKind::Native)
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientKind {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        ClientKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownValue {
                kind: "client kind (web, spa, native, service, device)",
                value: text.to_owned(),
            })
    }
}

/// A dynamically registered client's hold on its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedRegistration {
    /// The SHA-256 digest of the registration access token, lowercase hex.
    pub access_token_digest: String,
    pub registered_at: UnixTime,
    /// Registered with an operator's initial access token; `false` under open
    /// registration, whose limits then hold for every update too.
    #[serde(default)]
    pub vouched: bool,
}

impl Client {
    /// A client without credentials (RFC 6749 §2.1): no secret, and no keys.
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none() && self.auth_method != Some(ClientAuthMethod::PrivateKeyJwt)
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }

    /// Parses a requested `scope` and checks that the client may have all of it:
    /// a request beyond the client's scopes is refused, never trimmed silently
    /// (RFC 6749 §3.3).
    pub fn requested_scope(&self, requested: Option<&str>) -> Result<Scope, Error> {
        let scope = Scope::parse(requested.unwrap_or(""))?;
        let excess: Vec<&str> = scope.excess(&self.scopes).collect();
        if excess.is_empty() {
            Ok(scope)
        } else {
            Err(Error::invalid_scope(format!(
                "scope not allowed for this client: {}",
                crate::error::bounded_list(&excess)
            )))
        }
    }

    /// Checks that every RFC 8707 resource indicator is one of the client's
    /// audiences (`invalid_target` otherwise, RFC 8707 §2).
    pub fn check_resources(&self, resources: &[String]) -> Result<(), Error> {
        match resources
            .iter()
            .find(|r| !self.audiences.iter().any(|a| a == *r))
        {
            Some(resource) => Err(Error::invalid_target(format!(
                "the client may not request tokens for {:?}",
                crate::error::bounded(resource)
            ))),
            None => Ok(()),
        }
    }
}

/// Which kinds of access tokens a resource accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedTokens {
    /// Tokens obtained by a person signing in.
    User,
    /// Tokens of applications acting for themselves (client credentials).
    App,
    Both,
}

impl AcceptedTokens {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptedTokens::User => "user",
            AcceptedTokens::App => "app",
            AcceptedTokens::Both => "both",
        }
    }

    pub fn accepts(self, kind: crate::grants::SubjectKind) -> bool {
        use crate::grants::SubjectKind;
        matches!(
            (self, kind),
            (AcceptedTokens::Both, _)
                | (AcceptedTokens::App, SubjectKind::App)
                | (AcceptedTokens::User, SubjectKind::User)
        )
    }
}

impl FromStr for AcceptedTokens {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "user" => Ok(AcceptedTokens::User),
            "app" => Ok(AcceptedTokens::App),
            "both" => Ok(AcceptedTokens::Both),
            _ => Err(UnknownValue {
                kind: "token kind",
                value: text.to_owned(),
            }),
        }
    }
}

/// A protected API, named by its audience URI (RFC 8707 resource indicator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub audience: String,
    /// Scopes this API defines; empty means it does not restrict scopes.
    pub scopes: Scope,
    /// When set, every access token for this API has this format.
    pub token_format: Option<TokenFormat>,
    pub accepts: AcceptedTokens,
    /// The algorithm of this API's JWT access tokens when it is not the
    /// server's `signing_alg`: RS256 for libraries that verify nothing else,
    /// or HS256 with the shared secret below.
    pub signing_alg: Option<tessera_jose::Algorithm>,
    /// Counts the shared secrets the resource has had (0: none yet), so that
    /// the `kid` naming a secret never names another one later.
    pub secret_version: i64,
    /// The HS256 shared secret; present exactly when `signing_alg` is HS256.
    pub sealed_secret: Option<SealedSecret>,
    pub created_at: UnixTime,
}

impl Resource {
    /// A resource with the server's defaults: no scopes of its own, any
    /// token format, user and app tokens, the server's signing key.
    pub fn new(audience: impl Into<String>, created_at: UnixTime) -> Resource {
        Resource {
            audience: audience.into(),
            scopes: Scope::default(),
            token_format: None,
            accepts: AcceptedTokens::Both,
            signing_alg: None,
            secret_version: 0,
            sealed_secret: None,
            created_at,
        }
    }

    /// The `kid` of the current shared secret, if the resource has one.
    pub fn secret_kid(&self) -> Option<String> {
        self.sealed_secret
            .as_ref()
            .map(|_| crate::shared_secret::kid_for(&self.audience, self.secret_version))
    }
}

/// A resource's shared secret sealed with the key-encryption key. Unlike a
/// client secret it cannot be stored as a digest: the server signs with it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_parse_from_registered_and_short_names() {
        for grant in GrantType::ALL {
            assert_eq!(grant.as_str().parse::<GrantType>(), Ok(grant));
        }
        assert_eq!("device_code".parse(), Ok(GrantType::DeviceCode));
        assert_eq!("token-exchange".parse(), Ok(GrantType::TokenExchange));
        assert!(
            "urn:ietf:params:oauth:grant-type:password"
                .parse::<GrantType>()
                .is_err()
        );
        assert!("client-credentials".parse::<GrantType>().is_err());
    }
}

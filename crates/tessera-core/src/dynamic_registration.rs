//! Dynamic client registration (RFC 7591) and client configuration management
//! (RFC 7592): a client registers itself by posting its metadata, and manages
//! that registration afterwards with the registration access token it got.
//!
//! The metadata becomes a [`Client`] checked by the same rules as every other
//! entry point ([`registration::check_client`]), so that nothing registered here
//! could not have been made with the command line. The server makes the
//! credentials (client ID, secret, registration access token) and ignores any
//! the client proposes (RFC 7591 §3.2.1); the secret and the registration
//! access token are stored as digests only.
//!
//! Who may register: the holder of an initial access token an operator issued
//! (`tessera registration-token create`), or, with `open_registration`,
//! anyone, but then only clients that act for people who sign in and consent
//! (the code, device and refresh grants): a client that acts on its own
//! authority (client credentials, token exchange, assertions) or handles
//! passwords needs an operator's say-so.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::client_auth::NewSecret;
use crate::crypto::{SecretDigest, random_id, random_token};
use crate::error::{Error, Reason};
use crate::model::{
    Client, ClientAuthMethod, ClientMetadata, GrantType, IntrospectionPolicy, ManagedRegistration,
};
use crate::provider::Provider;
use crate::registration::{self, RegistrationError, RegistrationErrorKind};
use crate::scope::Scope;
use crate::store::{ClientStore as _, SecretUpdate};

/// The path, under the issuer, of the registration endpoint; a client's
/// configuration endpoint is this path, a slash and its ID.
pub const REGISTRATION_PATH: &str = "/register";

/// The largest metadata document taken, in bytes: room for a JWK Set of a few
/// RSA keys and many redirect URIs, not for an attempt to fill the database.
pub const MAX_METADATA_BYTES: usize = 32 * 1024;

/// The most entries a list member (redirect URIs, contacts) may have.
const MAX_LIST: usize = 32;

/// What a client sends (RFC 7591 §2). Members this server does not know are
/// ignored, as §2 asks; members of the wrong type are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MetadataRequest {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    scope: Option<String>,
    contacts: Option<Vec<String>>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    software_id: Option<String>,
    software_version: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
    id_token_signed_response_alg: Option<String>,
    /// RFC 8707 resource indicators the client will ask tokens for: this
    /// server's extension, as the RFCs name no such member.
    audiences: Option<Vec<String>>,
    /// Only in an update (RFC 7592 §2.2), where it must be the client's own.
    client_id: Option<String>,
    /// Only in an update, where it must be the client's current secret.
    client_secret: Option<String>,
}

/// Who asks to register a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registrant {
    /// With an initial access token: an operator vouched for them.
    Vouched,
    /// Without one, under `open_registration`.
    Anonymous,
}

fn metadata_error(message: impl Into<String>) -> Error {
    Error::new(Reason::ClientMetadataInvalid, message.into())
}

fn from_rules(err: RegistrationError) -> Error {
    let reason = match err.kind {
        RegistrationErrorKind::InvalidRedirectUri => Reason::RedirectUriInvalid,
        RegistrationErrorKind::InvalidClientMetadata => Reason::ClientMetadataInvalid,
    };
    Error::new(reason, err.message)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<SecretDigest> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(SecretDigest(out))
}

/// A URL the client describes itself with (its home page, logo, terms): an
/// absolute https URL (http on loopback only), not one on a private network
/// unless the operator allows it, for browsers showing the consent page and
/// the portal must not be pointed at the intranet.
fn check_described_url(member: &str, uri: &str, allow_private: bool) -> Result<(), Error> {
    registration::check_jwks_uri(uri)
        .map_err(|e| metadata_error(e.message.replacen("jwks_uri", member, 1)))?;
    if !allow_private && registration::is_private_url(uri) {
        return Err(metadata_error(format!(
            "{member} {uri:?} is on a private or loopback network"
        )));
    }
    Ok(())
}

fn check_text(member: &str, text: &str, max: usize) -> Result<(), Error> {
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(metadata_error(format!(
            "{member} has at most {max} characters and no control characters"
        )));
    }
    Ok(())
}

fn list<'a>(member: &str, items: &'a Option<Vec<String>>) -> Result<&'a [String], Error> {
    let items = items.as_deref().unwrap_or_default();
    if items.len() > MAX_LIST {
        return Err(metadata_error(format!(
            "{member} has at most {MAX_LIST} entries"
        )));
    }
    Ok(items)
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// The grants open registration may give: those where a person signs in and
/// consents to what the client gets.
const PERSON_FACING: [GrantType; 3] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::DeviceCode,
];

impl MetadataRequest {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.len() > MAX_METADATA_BYTES {
            return Err(metadata_error(format!(
                "the metadata document has at most {MAX_METADATA_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| metadata_error(format!("the body is not a JSON object: {e}")))?;
        if !value.is_object() {
            return Err(metadata_error("the body is not a JSON object"));
        }
        serde_json::from_value(value)
            .map_err(|e| metadata_error(format!("a metadata member has the wrong type: {e}")))
    }

    /// The client this metadata describes, under `id`, with credentials left
    /// to the caller: `secret_digest` and `sealed_secret` are `None`.
    fn to_client(
        &self,
        id: String,
        created_at: i64,
        registrant: Registrant,
        allow_private: bool,
    ) -> Result<Client, Error> {
        // RFC 7591 §2: grant_types defaults to authorization_code, response_types to code.
        let grants = match &self.grant_types {
            None => vec![GrantType::AuthorizationCode],
            Some(_) => {
                let mut grants = Vec::new();
                for name in list("grant_types", &self.grant_types)? {
                    let grant = name
                        .parse::<GrantType>()
                        .ok()
                        .filter(|g| g.as_str() == name)
                        .ok_or_else(|| metadata_error(format!("unknown grant type {name:?}")))?;
                    if !grants.contains(&grant) {
                        grants.push(grant);
                    }
                }
                if grants.is_empty() {
                    return Err(metadata_error(
                        "grant_types is empty: leave it out for authorization_code",
                    ));
                }
                grants
            }
        };
        if registrant == Registrant::Anonymous
            && let Some(grant) = grants.iter().find(|g| !PERSON_FACING.contains(g))
        {
            return Err(metadata_error(format!(
                "open registration registers clients that act for people who sign in \
                 (authorization_code, refresh_token, device_code); the {grant} grant needs an \
                 initial access token from an operator"
            )));
        }
        if registrant == Registrant::Anonymous && self.audiences.is_some() {
            return Err(metadata_error(
                "open registration does not take audiences: the APIs a client may ask \
                 tokens for are an operator's decision",
            ));
        }
        let response_types = self
            .response_types
            .clone()
            .unwrap_or_else(|| vec!["code".to_owned()]);
        for response_type in &response_types {
            let needs = match response_type.as_str() {
                "code" => GrantType::AuthorizationCode,
                "token" | "id_token" | "id_token token" | "token id_token" => GrantType::Implicit,
                other => {
                    return Err(metadata_error(format!(
                        "unsupported response type {other:?}"
                    )));
                }
            };
            // RFC 7591 §2.1: the response types and grant types agree.
            if !grants.contains(&needs)
                && (needs != GrantType::AuthorizationCode || self.response_types.is_some())
            {
                return Err(metadata_error(format!(
                    "response type {response_type:?} needs the {needs} grant"
                )));
            }
        }
        // ...both ways, when the client named its response types.
        if self.response_types.is_some() {
            if grants.contains(&GrantType::AuthorizationCode)
                && !response_types.iter().any(|r| r == "code")
            {
                return Err(metadata_error(
                    "the authorization_code grant needs the code response type",
                ));
            }
            if grants.contains(&GrantType::Implicit) && response_types.iter().all(|r| r == "code") {
                return Err(metadata_error(
                    "the implicit grant needs a token or id_token response type",
                ));
            }
        }
        // RFC 7591 §2: client_secret_basic unless said otherwise.
        let auth_method = match self.token_endpoint_auth_method.as_deref() {
            None => ClientAuthMethod::ClientSecretBasic,
            Some(name) => name.parse::<ClientAuthMethod>().map_err(|_| {
                metadata_error(format!("unknown token_endpoint_auth_method {name:?}"))
            })?,
        };
        let id_token_alg = match self.id_token_signed_response_alg.as_deref() {
            None => None,
            // OIDC Registration §2 allows `none` where no ID token comes from
            // the authorization endpoint; this server signs every ID token.
            Some("none") => {
                return Err(metadata_error(
                    "unsigned ID tokens (id_token_signed_response_alg none) are not issued",
                ));
            }
            Some(name) => Some(name.parse::<tessera_jose::Algorithm>().map_err(|_| {
                metadata_error(format!("unknown id_token_signed_response_alg {name:?}"))
            })?),
        };
        let jwks = match &self.jwks {
            None => None,
            Some(value) => Some(
                registration::parse_client_jwks(value.to_string().as_bytes())
                    .map_err(from_rules)?,
            ),
        };
        if let Some(uri) = &self.jwks_uri
            && !allow_private
            && registration::is_private_url(uri)
        {
            return Err(metadata_error(format!(
                "jwks_uri {uri:?} is on a private or loopback network"
            )));
        }
        let person_facing = grants.iter().any(|g| {
            matches!(
                g,
                GrantType::AuthorizationCode | GrantType::DeviceCode | GrantType::Implicit
            )
        });
        let scopes = match &self.scope {
            Some(scope) => Scope::parse(scope).map_err(|_| {
                metadata_error(format!("scope {scope:?} is not a list of scope tokens"))
            })?,
            None if person_facing => Scope::parse("openid").expect("a valid scope"),
            None => Scope::default(),
        };
        let name = match &self.client_name {
            Some(name) => name.clone(),
            None => "Registered client".to_owned(),
        };
        let mut described = ClientMetadata::default();
        for (member, value, slot) in [
            ("client_uri", &self.client_uri, &mut described.client_uri),
            ("logo_uri", &self.logo_uri, &mut described.logo_uri),
            ("tos_uri", &self.tos_uri, &mut described.tos_uri),
            ("policy_uri", &self.policy_uri, &mut described.policy_uri),
        ] {
            if let Some(uri) = value {
                check_described_url(member, uri, allow_private)?;
                *slot = Some(uri.clone());
            }
        }
        for contact in list("contacts", &self.contacts)? {
            check_text("a contact", contact, 320)?;
        }
        described.contacts = dedup(list("contacts", &self.contacts)?);
        for (member, value, slot) in [
            ("software_id", &self.software_id, &mut described.software_id),
            (
                "software_version",
                &self.software_version,
                &mut described.software_version,
            ),
        ] {
            if let Some(text) = value {
                check_text(member, text, 200)?;
                *slot = Some(text.clone());
            }
        }
        Ok(Client {
            id,
            name,
            secret_digest: None,
            sealed_secret: None,
            auth_method: Some(auth_method),
            jwks,
            jwks_uri: self.jwks_uri.clone(),
            grants,
            redirect_uris: dedup(list("redirect_uris", &self.redirect_uris)?),
            scopes,
            audiences: dedup(list("audiences", &self.audiences)?),
            token_format: None,
            access_token_ttl: None,
            introspection: IntrospectionPolicy::Own,
            require_pkce: true,
            id_token_alg,
            post_logout_redirect_uris: dedup(list(
                "post_logout_redirect_uris",
                &self.post_logout_redirect_uris,
            )?),
            metadata: described,
            created_at,
        })
    }
}

/// The client's metadata as RFC 7591 §3.2.1 returns it, without credentials.
pub fn client_information(client: &Client, issuer: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("client_id".into(), client.id.clone().into());
    out.insert("client_id_issued_at".into(), client.created_at.into());
    out.insert("client_name".into(), client.name.clone().into());
    out.insert(
        "token_endpoint_auth_method".into(),
        client
            .auth_method
            .map_or(
                if client.is_public() {
                    "none"
                } else {
                    "client_secret_basic"
                },
                ClientAuthMethod::as_str,
            )
            .into(),
    );
    out.insert(
        "grant_types".into(),
        client
            .grants
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .into(),
    );
    let mut response_types = Vec::new();
    if client.allows(GrantType::AuthorizationCode) {
        response_types.push("code");
    }
    if client.allows(GrantType::Implicit) {
        response_types.extend(["token", "id_token", "id_token token"]);
    }
    out.insert("response_types".into(), response_types.into());
    out.insert("redirect_uris".into(), client.redirect_uris.clone().into());
    out.insert("scope".into(), client.scopes.to_string().into());
    if !client.audiences.is_empty() {
        out.insert("audiences".into(), client.audiences.clone().into());
    }
    if !client.post_logout_redirect_uris.is_empty() {
        out.insert(
            "post_logout_redirect_uris".into(),
            client.post_logout_redirect_uris.clone().into(),
        );
    }
    if let Some(alg) = client.id_token_alg {
        out.insert("id_token_signed_response_alg".into(), alg.as_str().into());
    }
    if let Some(uri) = &client.jwks_uri {
        out.insert("jwks_uri".into(), uri.clone().into());
    }
    if let Some(jwks) = &client.jwks
        && let Ok(value) = serde_json::to_value(jwks)
    {
        out.insert("jwks".into(), value);
    }
    let described = &client.metadata;
    for (member, value) in [
        ("client_uri", &described.client_uri),
        ("logo_uri", &described.logo_uri),
        ("tos_uri", &described.tos_uri),
        ("policy_uri", &described.policy_uri),
        ("software_id", &described.software_id),
        ("software_version", &described.software_version),
    ] {
        if let Some(value) = value {
            out.insert(member.into(), value.clone().into());
        }
    }
    if !described.contacts.is_empty() {
        out.insert("contacts".into(), described.contacts.clone().into());
    }
    if described.registration.is_some() {
        out.insert(
            "registration_client_uri".into(),
            format!("{issuer}{REGISTRATION_PATH}/{}", client.id).into(),
        );
    }
    out
}

impl Provider {
    /// RFC 7591 §3: registers the client `body` describes. `bearer` is the
    /// initial access token, if one came.
    pub async fn register_client(
        &self,
        bearer: Option<&str>,
        body: &[u8],
    ) -> Result<Map<String, Value>, Error> {
        let registrant = match bearer {
            Some(token) => {
                self.check_initial_access_token(token).await?;
                Registrant::Vouched
            }
            None if self.settings().open_registration => Registrant::Anonymous,
            None => {
                return Err(Error::new(
                    Reason::RegistrationTokenInvalid,
                    "registration needs an initial access token",
                ));
            }
        };
        let request = MetadataRequest::parse(body)?;
        let now = self.clock().now();
        let mut client = request.to_client(
            random_id(),
            now,
            registrant,
            self.settings().registration_allows_private_urls,
        )?;
        let secret = self.issue_secret(&mut client);
        let access_token = random_token();
        client.metadata.registration = Some(ManagedRegistration {
            access_token_digest: hex(&SecretDigest::of(&access_token).0),
            registered_at: now,
            vouched: registrant == Registrant::Vouched,
        });
        registration::check_client(&client).map_err(from_rules)?;
        self.catalog().insert_client(&client).await?;
        tracing::info!(client_id = %client.id, vouched = registrant == Registrant::Vouched, "client registered");
        Ok(self.answer(&client, secret, access_token))
    }

    /// RFC 7592 §2.1: the client's current registration.
    pub async fn client_configuration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        let mut client = self.managed_client(client_id, bearer).await?;
        let read = client.metadata.clone();
        let access_token = self.rotate_registration_token(&mut client);
        // Written only if nobody rotated the token since it was checked: of
        // two requests with one token, exactly one gets its successor, and
        // the other a 401, never a token that no longer works.
        if !self
            .catalog()
            .update_client_if_unchanged(&client, SecretUpdate::Keep, &read)
            .await?
        {
            return Err(invalid_registration_token());
        }
        Ok(self.answer(&client, None, access_token))
    }

    /// RFC 7592 §2.2: replaces the client's metadata with `body`, checked as a
    /// new registration would be. A client that becomes confidential gets a
    /// new secret (answered once); one that stops using a secret loses it.
    pub async fn update_client_configuration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        body: &[u8],
    ) -> Result<Map<String, Value>, Error> {
        let current = self.managed_client(client_id, bearer).await?;
        let request = MetadataRequest::parse(body)?;
        // RFC 7592 §2.2: the body names the client, and a secret in it is the
        // current one; neither may change here.
        if request.client_id.as_deref() != Some(client_id) {
            return Err(metadata_error(
                "client_id in the body must be this client's",
            ));
        }
        if let Some(secret) = &request.client_secret
            && !current.secret_digest.is_some_and(|d| d.matches(secret))
        {
            return Err(metadata_error(
                "client_secret in the body must be this client's current secret",
            ));
        }
        let registrant = match &current.metadata.registration {
            Some(registration) if registration.vouched => Registrant::Vouched,
            _ => Registrant::Anonymous,
        };
        let mut client = request.to_client(
            current.id.clone(),
            current.created_at,
            registrant,
            self.settings().registration_allows_private_urls,
        )?;
        // What only an operator sets (with the CLI) is not the client's to
        // undo: its token format and lifetime, whose tokens it may
        // introspect, and its delegation settings.
        client.token_format = current.token_format;
        client.access_token_ttl = current.access_token_ttl;
        client.introspection = current.introspection;
        client.metadata.impersonation = current.metadata.impersonation;
        client.metadata.serves = current.metadata.serves.clone();
        if registrant == Registrant::Anonymous {
            client.audiences = current.audiences.clone();
        }
        client.metadata.registration = current.metadata.registration.clone();
        let access_token = self.rotate_registration_token(&mut client);
        let uses_secret = |c: &Client| {
            !matches!(
                c.auth_method,
                Some(ClientAuthMethod::None | ClientAuthMethod::PrivateKeyJwt)
            )
        };
        let sealed_needed = client.auth_method == Some(ClientAuthMethod::ClientSecretJwt);
        let (secret, update) = if uses_secret(&client)
            && current.secret_digest.is_some()
            && (!sealed_needed || current.sealed_secret.is_some())
        {
            client.secret_digest = current.secret_digest;
            client.sealed_secret = if sealed_needed {
                current.sealed_secret.clone()
            } else {
                None
            };
            (
                None,
                if sealed_needed == current.sealed_secret.is_some() {
                    SecretUpdate::Keep
                } else {
                    SecretUpdate::Replace
                },
            )
        } else {
            let secret = self.issue_secret(&mut client);
            (secret, SecretUpdate::Replace)
        };
        registration::check_client(&client).map_err(from_rules)?;
        if !self
            .catalog()
            .update_client_if_unchanged(&client, update, &current.metadata)
            .await?
        {
            return Err(invalid_registration_token());
        }
        Ok(self.answer(&client, secret, access_token))
    }

    /// RFC 7592 §2.3: deletes the client, and with it its consents, codes,
    /// refresh tokens and reference tokens.
    pub async fn delete_client_configuration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
    ) -> Result<(), Error> {
        let client = self.managed_client(client_id, bearer).await?;
        self.catalog().delete_client(&client.id).await?;
        tracing::info!(client_id = %client.id, "client deleted through its registration");
        Ok(())
    }

    /// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the
    /// metadata, a new secret when one was made, and the registration access
    /// token.
    fn answer(
        &self,
        client: &Client,
        secret: Option<NewSecret>,
        access_token: String,
    ) -> Map<String, Value> {
        let mut out = client_information(client, &self.settings().issuer);
        if let Some(secret) = secret {
            out.insert("client_secret".into(), secret.secret.into());
            // 0: the secret does not expire.
            out.insert("client_secret_expires_at".into(), 0.into());
        }
        out.insert("registration_access_token".into(), access_token.into());
        out
    }

    /// A new registration access token for `client`, its digest set: RFC 7592
    /// §3 answers one with every read and update, and only digests are kept,
    /// so each answer carries a new one and the old one stops working.
    fn rotate_registration_token(&self, client: &mut Client) -> String {
        let token = random_token();
        if let Some(registration) = &mut client.metadata.registration {
            registration.access_token_digest = hex(&SecretDigest::of(&token).0);
        }
        token
    }

    /// A fresh secret for a client whose method uses one, set on `client`;
    /// `None` (and no secret) for public and `private_key_jwt` clients.
    fn issue_secret(&self, client: &mut Client) -> Option<NewSecret> {
        client.secret_digest = None;
        client.sealed_secret = None;
        match client.auth_method {
            Some(ClientAuthMethod::None) | Some(ClientAuthMethod::PrivateKeyJwt) => None,
            method => {
                let kek =
                    (method == Some(ClientAuthMethod::ClientSecretJwt)).then(|| self.keys().kek());
                let secret = NewSecret::generate(&client.id, kek);
                client.secret_digest = Some(secret.digest);
                client.sealed_secret = secret.sealed.clone();
                Some(secret)
            }
        }
    }

    async fn check_initial_access_token(&self, token: &str) -> Result<(), Error> {
        let found = self
            .store()
            .operator_token(
                crate::store::TokenPurpose::Registration,
                &SecretDigest::of(token),
            )
            .await?;
        match found {
            Some(found) if found.expires_at.is_none_or(|t| t > self.clock().now()) => Ok(()),
            _ => Err(Error::new(
                Reason::RegistrationTokenInvalid,
                "the initial access token is invalid, expired or revoked",
            )),
        }
    }

    /// The client `client_id` if `bearer` is its registration access token.
    /// Every failure looks the same (RFC 7592 §2.1: an unknown client is a
    /// 401 too), so that the endpoint tells nobody which clients exist.
    async fn managed_client(&self, client_id: &str, bearer: Option<&str>) -> Result<Client, Error> {
        let token = bearer.ok_or_else(invalid_registration_token)?;
        // From the database, not the in-memory catalogue: an update writes
        // the whole client back, and a copy up to a second old would undo a
        // change an operator just made with the CLI.
        let client = self.store().client(client_id).await?;
        let Some(client) = client else {
            // The same digest work as for a known client.
            let _ = SecretDigest::of(token);
            return Err(invalid_registration_token());
        };
        let digest = client
            .metadata
            .registration
            .as_ref()
            .and_then(|r| unhex(&r.access_token_digest));
        match digest {
            Some(digest) if digest.matches(token) => Ok(client),
            _ => Err(invalid_registration_token()),
        }
    }
}

fn invalid_registration_token() -> Error {
    Error::new(
        Reason::RegistrationTokenInvalid,
        "the registration access token is invalid for this client",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Client, Error> {
        MetadataRequest::parse(json.as_bytes())?.to_client(
            "c1".into(),
            1_700_000_000,
            Registrant::Vouched,
            false,
        )
    }

    #[test]
    fn the_defaults_are_the_rfcs() {
        let client = parse(r#"{"redirect_uris":["https://app.example/cb"]}"#).unwrap();
        assert_eq!(client.grants, [GrantType::AuthorizationCode]);
        assert_eq!(
            client.auth_method,
            Some(ClientAuthMethod::ClientSecretBasic)
        );
        assert!(client.require_pkce);
        assert_eq!(client.scopes.to_string(), "openid");
    }

    #[test]
    fn unknown_members_are_ignored_and_wrong_types_refused() {
        assert!(parse(r#"{"redirect_uris":["https://a.example/cb"],"x_custom":1}"#).is_ok());
        let err = parse(r#"{"redirect_uris":"https://a.example/cb"}"#).unwrap_err();
        assert_eq!(err.reason, Reason::ClientMetadataInvalid);
        let err = parse("[]").unwrap_err();
        assert_eq!(err.reason, Reason::ClientMetadataInvalid);
    }

    #[test]
    fn response_types_must_agree_with_grant_types() {
        let err = parse(
            r#"{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"],"response_types":["code"]}"#,
        )
        .unwrap_err();
        assert_eq!(err.reason, Reason::ClientMetadataInvalid);
    }

    #[test]
    fn unsigned_id_tokens_are_refused() {
        let err = parse(
            r#"{"redirect_uris":["https://a.example/cb"],"id_token_signed_response_alg":"none"}"#,
        )
        .unwrap_err();
        assert_eq!(err.reason, Reason::ClientMetadataInvalid);
    }

    #[test]
    fn open_registration_is_for_person_facing_clients() {
        let request = MetadataRequest::parse(br#"{"grant_types":["client_credentials"]}"#).unwrap();
        let err = request
            .to_client("c".into(), 0, Registrant::Anonymous, false)
            .unwrap_err();
        assert_eq!(err.reason, Reason::ClientMetadataInvalid);
        assert!(
            request
                .to_client("c".into(), 0, Registrant::Vouched, false)
                .is_ok()
        );
    }

    #[test]
    fn described_urls_on_private_networks_are_refused_unless_allowed() {
        for uri in [
            "https://10.0.0.1/logo.png",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest",
            "http://localhost/logo.png",
            "https://[fd00::1]/",
        ] {
            let json =
                format!(r#"{{"redirect_uris":["https://a.example/cb"],"logo_uri":"{uri}"}}"#);
            assert!(parse(&json).is_err(), "{uri} was accepted");
        }
        let request = MetadataRequest::parse(
            br#"{"redirect_uris":["https://a.example/cb"],"jwks_uri":"https://10.1.2.3/jwks","token_endpoint_auth_method":"private_key_jwt"}"#,
        )
        .unwrap();
        assert!(
            request
                .to_client("c".into(), 0, Registrant::Vouched, false)
                .is_err()
        );
        assert!(
            request
                .to_client("c".into(), 0, Registrant::Vouched, true)
                .is_ok()
        );
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = SecretDigest::of("token");
        assert_eq!(unhex(&hex(&digest.0)), Some(digest));
        assert_eq!(unhex("zz"), None);
    }
}

//! The rules a registered client obeys, whichever entry point made or changed
//! it (the command line today; dynamic registration, the portal and the admin
//! API call the same functions), so that no entry point can store a client the
//! others would refuse.
//!
//! The redirect URI rules follow RFC 6749 §3.1.2, RFC 8252 §7 (native apps) and
//! RFC 9700 §2.1 and §4.1 (exact matching, no open redirectors). The credential
//! rules follow RFC 7591 §2 and OIDC Core §9: a client's keys or secret fit its
//! authentication method.

use tessera_jose::{Jwk, JwkSet};

use crate::model::{Client, ClientAuthMethod, ClientKind, GrantType};

/// Why a client's registration was refused: a sentence for the person (or the
/// `error_description` of RFC 7591 §3.2.2), naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistrationError {
    /// The RFC 7591 §3.2.2 error code this maps to.
    pub kind: RegistrationErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationErrorKind {
    /// `invalid_redirect_uri`
    InvalidRedirectUri,
    /// `invalid_client_metadata`
    InvalidClientMetadata,
}

impl RegistrationErrorKind {
    /// The RFC 7591 §3.2.2 `error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationErrorKind::InvalidRedirectUri => "invalid_redirect_uri",
            RegistrationErrorKind::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

fn redirect_error(message: String) -> RegistrationError {
    RegistrationError {
        kind: RegistrationErrorKind::InvalidRedirectUri,
        message,
    }
}

fn metadata_error(message: impl Into<String>) -> RegistrationError {
    RegistrationError {
        kind: RegistrationErrorKind::InvalidClientMetadata,
        message: message.into(),
    }
}

/// Longest redirect URI accepted; browsers and proxies cut longer URLs anyway.
const MAX_URI_LENGTH: usize = 2_000;

/// Schemes that run code or read local files when navigated to: never a
/// redirect target, whatever else the URI looks like.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "vbscript", "file", "blob", "about"];

/// Checks one redirect URI (and post-logout redirect URI):
///
/// - absolute, without a fragment (RFC 6749 §3.1.2), user information,
///   whitespace or wildcards: matching is exact (RFC 9700 §4.1.3);
/// - `https`; or `http` on a loopback host only (RFC 8252 §7.3, §8.3);
/// - or a private-use scheme in reverse domain order such as
///   `com.example.app:/callback` (RFC 8252 §7.1);
/// - never `javascript:`, `data:`, `vbscript:`, `file:` and the like.
pub fn check_redirect_uri(uri: &str) -> Result<(), RegistrationError> {
    let refuse = |why: &str| redirect_error(format!("redirect URI {uri:?} {why}"));
    if uri.is_empty() {
        return Err(redirect_error("a redirect URI must not be empty".into()));
    }
    if uri.len() > MAX_URI_LENGTH {
        return Err(redirect_error(format!(
            "a redirect URI has at most {MAX_URI_LENGTH} characters"
        )));
    }
    // The URL parser would quietly drop or encode these, so the registered
    // string would not be the URI that gets matched.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains whitespace or control characters"));
    }
    if uri.contains('*') {
        return Err(refuse(
            "contains a wildcard; redirect URIs are matched exactly (RFC 9700 §4.1.3)",
        ));
    }
    if uri.contains('#') {
        return Err(refuse("must not have a fragment (RFC 6749 §3.1.2)"));
    }
    let url = url::Url::parse(uri).map_err(|e| refuse(&format!("is not an absolute URI ({e})")))?;
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(refuse(&format!(
            "uses the {scheme}: scheme, which is never a redirect target"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry user information"));
    }
    match scheme {
        "https" => {
            if url.host().is_none() {
                return Err(refuse("has no host"));
            }
            Ok(())
        }
        "http" => {
            if is_loopback_host(&url) {
                Ok(())
            } else {
                Err(refuse(
                    "uses plain http on a host that is not loopback; use https \
                     (http is only for 127.0.0.1, [::1] or localhost, RFC 8252 §7.3)",
                ))
            }
        }
        // RFC 8252 §7.1: a private-use scheme is a reverse domain name the app
        // controls, which keeps two apps from claiming the same scheme.
        other if other.contains('.') => Ok(()),
        other => Err(refuse(&format!(
            "uses the scheme {other:?}; private-use schemes are reverse domain names \
             such as com.example.app (RFC 8252 §7.1)"
        ))),
    }
}

/// JWK members that hold private or symmetric key material (RFC 7518 §6.2.2,
/// §6.3.2, §6.4.1; RFC 8037 §2): never part of a key a client registers.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// How many keys a client may register: a rotation needs two or three.
const MAX_CLIENT_KEYS: usize = 16;

/// Parses a JWK Set a client registers for `private_key_jwt` (RFC 7517 §5).
/// Refused: anything but a JWK Set, private or symmetric keys (a client that
/// hands over its private key no longer authenticates with it), and keys
/// [`check_client_jwks`] refuses.
pub fn parse_client_jwks(text: &[u8]) -> Result<JwkSet, RegistrationError> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| metadata_error(format!("the JWK Set is not JSON: {e}")))?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| metadata_error("a JWK Set is a JSON object with a \"keys\" array"))?;
    for key in keys {
        let Some(members) = key.as_object() else {
            return Err(metadata_error("every member of \"keys\" is a JWK object"));
        };
        if let Some(private) = PRIVATE_JWK_MEMBERS
            .iter()
            .find(|m| members.contains_key(**m))
        {
            return Err(metadata_error(format!(
                "the JWK Set holds private or symmetric key material ({private:?}); \
                 register the public keys only"
            )));
        }
    }
    let set: JwkSet = serde_json::from_value(value)
        .map_err(|e| metadata_error(format!("the JWK Set does not parse: {e}")))?;
    check_client_jwks(&set)?;
    Ok(set)
}

/// Parses the JWK Set served at a client's `jwks_uri`. Private or symmetric
/// key material still refuses the whole set (its owner has lost control of
/// it), but keys this server cannot use for a signature are skipped rather
/// than fatal (RFC 7517 §5): an encryption key (`use` other than `sig`), an
/// unsupported curve, a repeated `kid`. At least one usable key must remain,
/// and at most 16 are kept.
pub fn parse_fetched_jwks(text: &[u8]) -> Result<JwkSet, RegistrationError> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| metadata_error(format!("the JWK Set is not JSON: {e}")))?;
    let members = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| metadata_error("a JWK Set is a JSON object with a \"keys\" array"))?;
    let mut usable: Vec<Jwk> = Vec::new();
    for member in members {
        let Some(object) = member.as_object() else {
            continue;
        };
        if let Some(private) = PRIVATE_JWK_MEMBERS
            .iter()
            .find(|m| object.contains_key(**m))
        {
            return Err(metadata_error(format!(
                "the JWK Set holds private or symmetric key material ({private:?})"
            )));
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(member.clone()) else {
            continue;
        };
        let signs = jwk.key_use.as_deref().is_none_or(|u| u == "sig");
        let repeated = jwk.kid.is_some() && usable.iter().any(|k| k.kid == jwk.kid);
        if signs && !repeated && check_client_jwk(&jwk).is_ok() {
            usable.push(jwk);
        }
        if usable.len() == MAX_CLIENT_KEYS {
            break;
        }
    }
    if usable.is_empty() {
        return Err(metadata_error(
            "the JWK Set holds no public signing key of ES256, RS256, PS256 or EdDSA",
        ));
    }
    Ok(JwkSet { keys: usable })
}

/// Checks the keys of a `private_key_jwt` client: 1 to 16 public keys, each of
/// which parses for an asymmetric algorithm (its `alg`, or the ones its `kty`
/// fits), with distinct `kid`s.
pub fn check_client_jwks(set: &JwkSet) -> Result<(), RegistrationError> {
    if set.keys.is_empty() || set.keys.len() > MAX_CLIENT_KEYS {
        return Err(metadata_error(format!(
            "a client registers 1 to {MAX_CLIENT_KEYS} keys"
        )));
    }
    for (i, jwk) in set.keys.iter().enumerate() {
        let name = jwk
            .kid
            .as_deref()
            .map_or_else(|| format!("key {}", i + 1), |kid| format!("key {kid:?}"));
        check_client_jwk(jwk).map_err(|why| metadata_error(format!("{name}: {why}")))?;
        if jwk.kid.is_some() && set.keys[..i].iter().any(|k| k.kid == jwk.kid) {
            return Err(metadata_error(format!("{name} appears twice")));
        }
    }
    Ok(())
}

fn check_client_jwk(jwk: &Jwk) -> Result<(), String> {
    if jwk.kty == "oct" {
        return Err("symmetric keys are never registered; use client_secret_jwt".into());
    }
    let algs = crate::client_auth::key_algorithms(jwk);
    if algs.is_empty() {
        return Err(match &jwk.alg {
            Some(alg) => format!("alg {alg:?} is not one of ES256, RS256, PS256, EdDSA"),
            None => format!("kty {:?} is not EC, RSA or OKP", jwk.kty),
        });
    }
    for alg in algs {
        tessera_jose::VerifyingKey::from_jwk_with_alg(jwk, alg)
            .map_err(|e| format!("not a usable {alg} public key ({e})"))?;
    }
    Ok(())
}

/// Checks a `jwks_uri`: https, or http on a loopback host only, as for
/// redirect URIs; no fragment (RFC 7591 §2) and no user information.
pub fn check_jwks_uri(uri: &str) -> Result<(), RegistrationError> {
    let refuse = |why: &str| metadata_error(format!("jwks_uri {uri:?} {why}"));
    if uri.len() > MAX_URI_LENGTH {
        return Err(metadata_error(format!(
            "a jwks_uri has at most {MAX_URI_LENGTH} characters"
        )));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains whitespace or control characters"));
    }
    let url = url::Url::parse(uri).map_err(|e| refuse(&format!("is not an absolute URL ({e})")))?;
    if url.fragment().is_some() {
        return Err(refuse("must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry user information"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        _ => Err(refuse(
            "must use https (http only on 127.0.0.1, [::1] or localhost): \
             keys fetched in clear could be swapped on the way",
        )),
    }
}

/// Whether the URL's host is the loopback interface (`localhost`,
/// `127.0.0.0/8`, `[::1]`): where plain http is allowed, for issuers and
/// redirect URIs alike.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether the URL points into a private network: `localhost` (and names under
/// it), loopback, private (RFC 1918, RFC 4193), link-local (the cloud metadata
/// address among them), shared (RFC 6598) or unspecified addresses. A URL a
/// client registers is never fetched there, nor shown to browsers as its own,
/// unless the operator allows it: that would let anyone who can register a
/// client probe the server's own network (SSRF). A name that resolves to such
/// an address is caught when it is fetched ([`is_private_address`]), not here.
pub fn is_private_url(uri: &str) -> bool {
    // What cannot be parsed cannot be shown to be public.
    let Ok(url) = url::Url::parse(uri) else {
        return true;
    };
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => is_private_address(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_private_address(ip.into()),
        None => false,
    }
}

/// Whether an address is one [`is_private_url`] refuses; also what the server
/// checks each resolved address of a registered client's URL against before
/// it connects.
pub fn is_private_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => is_private_ipv4(ip),
        std::net::IpAddr::V6(ip) => {
            let segments = ip.segments();
            let embedded = |high: usize| {
                std::net::Ipv4Addr::new(
                    (segments[high] >> 8) as u8,
                    segments[high] as u8,
                    (segments[high + 1] >> 8) as u8,
                    segments[high + 1] as u8,
                )
            };
            // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible
            // (::a.b.c.d), translated (::ffff:0:a.b.c.d), NAT64
            // (64:ff9b::a.b.c.d) and 6to4 (2002:a.b.c.d::): judged by the
            // IPv4 address they carry.
            if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0)
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                return ip.is_loopback() || ip.is_unspecified() || is_private_ipv4(embedded(6));
            }
            if segments[0] == 0x2002 {
                return is_private_ipv4(embedded(1));
            }
            let first = segments[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        }
    }
}

fn is_private_ipv4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network", 0.0.0.0/8
        || a >= 240 // reserved, 240.0.0.0/4
        || (a == 100 && (64..128).contains(&b)) // shared address space, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
}

/// RFC 8707 §2: a resource indicator (an audience) is an absolute URI without a
/// fragment.
pub fn check_audience(audience: &str) -> Result<(), RegistrationError> {
    if audience
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(metadata_error(format!(
            "audience {audience:?} contains whitespace or control characters"
        )));
    }
    let url = url::Url::parse(audience).map_err(|e| {
        metadata_error(format!("audience {audience:?} is not an absolute URI: {e}"))
    })?;
    if url.fragment().is_some() {
        return Err(metadata_error(format!(
            "audience {audience:?} must not have a fragment (RFC 8707 §2)"
        )));
    }
    Ok(())
}

/// Checks a client ID chosen by a person or a registering client: the
/// unreserved characters of RFC 3986, so it needs no escaping in URLs or Basic
/// credentials.
pub fn check_client_id(id: &str) -> Result<(), RegistrationError> {
    if id.is_empty() || id.len() > 128 {
        return Err(metadata_error("a client ID has 1 to 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(metadata_error(
            "a client ID may only contain A-Z a-z 0-9 - . _ ~",
        ));
    }
    Ok(())
}

/// Checks a whole client, as it would be stored: after a creation, and after
/// every change.
pub fn check_client(client: &Client) -> Result<(), RegistrationError> {
    check_client_id(&client.id)?;
    let name = client.name.trim();
    if name.is_empty() || client.name.chars().count() > 200 {
        return Err(metadata_error("a client name has 1 to 200 characters"));
    }
    if client.name.chars().any(char::is_control) {
        return Err(metadata_error(
            "a client name must not contain control characters",
        ));
    }
    check_credentials(client)?;
    let public = client.is_public();
    if public
        && client
            .auth_method
            .is_some_and(|m| m != ClientAuthMethod::None)
    {
        return Err(metadata_error(
            "a public client has no secret: its auth method is none",
        ));
    }
    if !public && client.auth_method == Some(ClientAuthMethod::None) {
        return Err(metadata_error(
            "a confidential client authenticates with its secret or keys: its auth method is \
             client_secret_basic, client_secret_post, client_secret_jwt or private_key_jwt",
        ));
    }
    if public && client.allows(GrantType::ClientCredentials) {
        return Err(metadata_error(
            "the client_credentials grant needs a confidential client (RFC 6749 §4.4)",
        ));
    }
    for grant in [GrantType::TokenExchange] {
        if public && client.allows(grant) {
            return Err(metadata_error(format!(
                "the {grant} grant needs a confidential client: the client is the actor its \
                 tokens name"
            )));
        }
    }
    if client.metadata.impersonation && !client.allows(GrantType::TokenExchange) {
        return Err(metadata_error(
            "impersonation is a setting of the token-exchange grant, which the client is not \
             allowed",
        ));
    }
    for served in &client.metadata.serves {
        check_audience(served).map_err(|e| RegistrationError {
            message: format!("served {}", e.message),
            ..e
        })?;
    }
    if !client.metadata.serves.is_empty() && !client.allows(GrantType::JwtBearer) {
        return Err(metadata_error(
            "a client serves an API to trade its users' tokens on their behalf, with the \
             jwt-bearer grant, which the client is not allowed",
        ));
    }
    if public && !client.require_pkce {
        return Err(metadata_error(
            "public clients always use PKCE (RFC 9700 §2.1.1)",
        ));
    }
    for uri in &client.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if let Some(kind) = client.metadata.kind {
        check_kind(client, kind)?;
    }
    for uri in &client.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|e| RegistrationError {
            message: format!("post-logout {}", e.message),
            ..e
        })?;
    }
    // RFC 6749 §3.1.2.2: the code and implicit flows redirect the browser, so
    // they need a registered place to send it.
    let redirecting = [GrantType::AuthorizationCode, GrantType::Implicit]
        .into_iter()
        .filter(|g| client.allows(*g))
        .collect::<Vec<_>>();
    if let Some(grant) = redirecting.first()
        && client.redirect_uris.is_empty()
    {
        return Err(redirect_error(format!(
            "the {grant} grant needs at least one redirect URI (RFC 6749 §3.1.2.2)"
        )));
    }
    for audience in &client.audiences {
        check_audience(audience)?;
    }
    if client.access_token_ttl.is_some_and(|t| t <= 0) {
        return Err(metadata_error("the access token lifetime must be positive"));
    }
    if client.id_token_alg.is_some_and(|a| a.is_symmetric()) {
        return Err(metadata_error("ID tokens are signed with asymmetric keys"));
    }
    Ok(())
}

/// A client that says what kind of application it is keeps to that kind:
/// public or confidential as the kind runs, and redirect URIs only where the
/// kind redirects, private-use schemes only for native apps (RFC 8252 §7.1).
fn check_kind(client: &Client, kind: ClientKind) -> Result<(), RegistrationError> {
    if client.is_public() != kind.is_public() {
        return Err(metadata_error(if kind.is_public() {
            format!("a {kind} client is public: it runs where a secret cannot be kept")
        } else {
            format!("a {kind} client is confidential: it authenticates with a secret or keys")
        }));
    }
    if !kind.redirects()
        && (!client.redirect_uris.is_empty() || !client.post_logout_redirect_uris.is_empty())
    {
        return Err(redirect_error(format!(
            "a {kind} client sends no browser back: it has no redirect URIs"
        )));
    }
    if kind != ClientKind::Native
        && let Some(uri) = client.redirect_uris.iter().find(|uri| {
            url::Url::parse(uri).is_ok_and(|u| u.scheme() != "https" && u.scheme() != "http")
        })
    {
        return Err(redirect_error(format!(
            "redirect URI {uri:?}: private-use schemes are for native apps; a {kind} client \
             uses https (or http on a loopback host)"
        )));
    }
    Ok(())
}

/// The credentials fit the authentication method: keys for `private_key_jwt`
/// and nothing else, a secret (digest and sealed copy) for
/// `client_secret_jwt`, and neither keys nor a sealed secret for the others.
fn check_credentials(client: &Client) -> Result<(), RegistrationError> {
    let has_keys = client.jwks.is_some() || client.jwks_uri.is_some();
    match client.auth_method {
        Some(ClientAuthMethod::PrivateKeyJwt) => {
            if client.secret_digest.is_some() || client.sealed_secret.is_some() {
                return Err(metadata_error(
                    "a private_key_jwt client authenticates with its keys and has no secret",
                ));
            }
            match (&client.jwks, &client.jwks_uri) {
                (Some(jwks), None) => check_client_jwks(jwks),
                (None, Some(uri)) => check_jwks_uri(uri),
                _ => Err(metadata_error(
                    "a private_key_jwt client registers its public keys in exactly one way: \
                     a JWK Set (jwks) or the URL it publishes them at (jwks_uri)",
                )),
            }
        }
        Some(ClientAuthMethod::ClientSecretJwt) => {
            if client.secret_digest.is_none() || client.sealed_secret.is_none() {
                return Err(metadata_error(
                    "a client_secret_jwt client needs a secret, kept sealed so that the \
                     HMAC of its assertions can be checked",
                ));
            }
            if has_keys {
                return Err(metadata_error(
                    "only private_key_jwt clients register keys (jwks, jwks_uri)",
                ));
            }
            Ok(())
        }
        _ => {
            if has_keys {
                return Err(metadata_error(
                    "only private_key_jwt clients register keys (jwks, jwks_uri)",
                ));
            }
            if client.sealed_secret.is_some() {
                // The secret is kept in a form that can be opened only where
                // an HMAC needs it; every other method compares a digest.
                return Err(metadata_error(
                    "only client_secret_jwt clients keep a sealed copy of their secret",
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetched_key_set_keeps_its_usable_signing_keys() {
        let (key, _) =
            tessera_jose::SigningKey::generate_with_thumbprint_kid(tessera_jose::Algorithm::ES256)
                .expect("key");
        let signing = serde_json::to_value(key.public_jwk().expect("jwk")).expect("json");
        let mut encryption = signing.clone();
        encryption["use"] = serde_json::json!("enc");
        encryption["kid"] = serde_json::json!("enc-1");
        let p384 =
            serde_json::json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"});
        let set = serde_json::json!({"keys": [encryption, p384, signing.clone(), signing.clone()]});
        let parsed = parse_fetched_jwks(set.to_string().as_bytes()).expect("usable");
        assert_eq!(parsed.keys.len(), 1, "{parsed:?}");
        assert_eq!(parsed.keys[0].kid, key.public_jwk().expect("jwk").kid);
        // Inline registration stays strict.
        assert!(parse_client_jwks(set.to_string().as_bytes()).is_err());
        // Private material still refuses the whole set.
        let mut private = signing;
        private["d"] = serde_json::json!("AAAA");
        let leaked = serde_json::json!({"keys": [private]});
        assert!(parse_fetched_jwks(leaked.to_string().as_bytes()).is_err());
        assert!(parse_fetched_jwks(br#"{"keys": []}"#).is_err());
    }
    use crate::crypto::SecretDigest;
    use crate::model::IntrospectionPolicy;
    use crate::scope::Scope;

    #[test]
    fn redirect_uris_follow_the_registration_rules() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:51000/callback",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/callback",
            "app.example.com/callback",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "http://app.example.com/callback",
            "http://10.0.0.1/callback",
            "https://*.example.com/callback",
            "https://app.example.com/*",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "https://app.example.com/ cb",
            "https://app.example.com/cb\n",
            "https://user:pass@app.example.com/cb",
            "myapp://callback",
        ] {
            let err = check_redirect_uri(bad).expect_err(bad);
            assert_eq!(err.kind, RegistrationErrorKind::InvalidRedirectUri, "{bad}");
        }
        assert!(check_redirect_uri(&format!("https://a.example/{}", "x".repeat(2_100))).is_err());
    }

    fn client() -> Client {
        Client {
            id: "web".into(),
            name: "Web".into(),
            secret_digest: Some(SecretDigest::of("secret")),
            sealed_secret: None,
            auth_method: None,
            jwks: None,
            jwks_uri: None,
            grants: vec![GrantType::AuthorizationCode],
            redirect_uris: vec!["https://app.example/cb".into()],
            scopes: Scope::default(),
            audiences: vec![],
            token_format: None,
            access_token_ttl: None,
            introspection: IntrospectionPolicy::Own,
            require_pkce: true,
            id_token_alg: None,
            post_logout_redirect_uris: vec![],
            metadata: Default::default(),
            created_at: 0,
        }
    }

    #[test]
    fn whole_clients_are_checked() {
        assert_eq!(check_client(&client()), Ok(()));

        let mut no_redirect = client();
        no_redirect.redirect_uris.clear();
        assert_eq!(
            check_client(&no_redirect).map_err(|e| e.kind),
            Err(RegistrationErrorKind::InvalidRedirectUri)
        );
        no_redirect.grants = vec![GrantType::Implicit];
        assert!(check_client(&no_redirect).is_err());
        no_redirect.grants = vec![GrantType::ClientCredentials];
        assert_eq!(check_client(&no_redirect), Ok(()));

        let mut public = client();
        public.secret_digest = None;
        assert_eq!(check_client(&public), Ok(()));
        public.require_pkce = false;
        assert!(check_client(&public).is_err());
        public.require_pkce = true;
        public.grants.push(GrantType::ClientCredentials);
        assert!(check_client(&public).is_err());

        let mut bad_logout = client();
        bad_logout.post_logout_redirect_uris = vec!["javascript:alert(1)".into()];
        assert!(
            check_client(&bad_logout)
                .expect_err("refused")
                .message
                .starts_with("post-logout redirect URI")
        );

        let mut bad_audience = client();
        bad_audience.audiences = vec!["orders".into()];
        assert!(check_client(&bad_audience).is_err());

        let mut bad_ttl = client();
        bad_ttl.access_token_ttl = Some(0);
        assert!(check_client(&bad_ttl).is_err());

        let mut bad_id = client();
        bad_id.id = "a b".into();
        assert!(check_client(&bad_id).is_err());
        bad_id.id = "-starts-with-a-dash".into();
        assert_eq!(check_client(&bad_id), Ok(()));
    }

    fn public_jwk(alg: tessera_jose::Algorithm, kid: &str) -> serde_json::Value {
        let (key, _) = tessera_jose::SigningKey::generate(alg, kid).expect("generate");
        serde_json::to_value(key.public_jwk().expect("public")).expect("json")
    }

    fn parse(set: serde_json::Value) -> Result<JwkSet, String> {
        parse_client_jwks(set.to_string().as_bytes()).map_err(|e| e.message)
    }

    #[test]
    fn client_key_sets_hold_usable_public_keys_only() {
        use tessera_jose::Algorithm;
        let mut without_alg = public_jwk(Algorithm::RS256, "r");
        without_alg.as_object_mut().map(|o| o.remove("alg"));
        let set = parse(serde_json::json!({"keys": [
            public_jwk(Algorithm::ES256, "e"),
            public_jwk(Algorithm::EdDSA, "d"),
            public_jwk(Algorithm::PS256, "p"),
            without_alg,
        ]}))
        .expect("a good set");
        assert_eq!(set.keys.len(), 4);

        let mut private = public_jwk(Algorithm::ES256, "e");
        private["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI".into();
        let mut bent = public_jwk(Algorithm::ES256, "e");
        bent["x"] = "AAAA".into();
        let mut mislabelled = public_jwk(Algorithm::ES256, "e");
        mislabelled["alg"] = "RS256".into();
        let mut hs = public_jwk(Algorithm::ES256, "e");
        hs["alg"] = "HS256".into();
        for (set, why) in [
            (serde_json::json!([]), "\"keys\" array"),
            (serde_json::json!({"keys": []}), "1 to 16 keys"),
            (serde_json::json!({"keys": [private]}), "private"),
            (
                serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
                "private or symmetric",
            ),
            (serde_json::json!({"keys": [{"kty": "oct"}]}), "symmetric"),
            (serde_json::json!({"keys": [bent]}), "usable ES256"),
            (serde_json::json!({"keys": [mislabelled]}), "usable RS256"),
            (serde_json::json!({"keys": [hs]}), "HS256"),
            (
                serde_json::json!({"keys": [public_jwk(Algorithm::ES256, "same"), public_jwk(Algorithm::EdDSA, "same")]}),
                "twice",
            ),
            (serde_json::json!({"keys": ["not a key"]}), "JWK object"),
        ] {
            let message = parse(set.clone()).expect_err(&set.to_string());
            assert!(message.contains(why), "{set}: {message}");
        }
        assert!(parse_client_jwks(b"{not json").is_err());
    }

    fn keyed() -> Client {
        let set = parse(serde_json::json!({"keys": [public_jwk(
            tessera_jose::Algorithm::ES256,
            "k"
        )]}))
        .expect("set");
        Client {
            secret_digest: None,
            auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(set),
            grants: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            ..client()
        }
    }

    #[test]
    fn credentials_fit_the_authentication_method() {
        let ok = keyed();
        assert_eq!(check_client(&ok), Ok(()));
        assert!(!ok.is_public(), "a client with keys is confidential");

        let mut by_uri = keyed();
        by_uri.jwks = None;
        for (uri, good) in [
            ("https://app.example/jwks.json", true),
            ("http://127.0.0.1:8080/jwks.json", true),
            ("http://localhost/jwks", true),
            ("http://app.example/jwks.json", false),
            ("https://app.example/jwks#keys", false),
            ("https://user:pw@app.example/jwks", false),
            ("ftp://app.example/jwks", false),
            ("/jwks.json", false),
        ] {
            by_uri.jwks_uri = Some(uri.into());
            assert_eq!(check_client(&by_uri).is_ok(), good, "{uri}");
        }

        let mut both = keyed();
        both.jwks_uri = Some("https://app.example/jwks".into());
        assert!(
            check_client(&both)
                .expect_err("both")
                .message
                .contains("exactly one")
        );
        let mut neither = keyed();
        neither.jwks = None;
        assert!(check_client(&neither).is_err());
        let mut with_secret = keyed();
        with_secret.secret_digest = Some(SecretDigest::of("s"));
        assert!(
            check_client(&with_secret)
                .expect_err("secret")
                .message
                .contains("no secret")
        );

        let mut hs = client();
        hs.auth_method = Some(ClientAuthMethod::ClientSecretJwt);
        assert!(
            check_client(&hs)
                .expect_err("unsealed")
                .message
                .contains("sealed")
        );
        hs.sealed_secret = Some(vec![1, 2, 3]);
        assert_eq!(check_client(&hs), Ok(()));
        hs.jwks = keyed().jwks;
        assert!(
            check_client(&hs).is_err(),
            "keys are for private_key_jwt only"
        );
        let mut no_secret = hs.clone();
        no_secret.jwks = None;
        no_secret.secret_digest = None;
        assert!(check_client(&no_secret).is_err());

        let mut basic = client();
        basic.auth_method = Some(ClientAuthMethod::ClientSecretBasic);
        basic.jwks = keyed().jwks;
        assert!(
            check_client(&basic).is_err(),
            "keys are for private_key_jwt only"
        );
        basic.jwks = None;
        basic.sealed_secret = Some(vec![1]);
        assert!(
            check_client(&basic)
                .expect_err("sealed")
                .message
                .contains("sealed")
        );
    }

    #[test]
    fn private_addresses_are_recognised_in_every_spelling() {
        for uri in [
            "https://localhost/x",
            "https://app.localhost./x",
            "https://127.0.0.1/x",
            "https://2130706433/x",
            "https://0x7f.1/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://0.1.2.3/x",
            "https://192.0.0.8/x",
            "https://198.18.0.1/x",
            "https://224.0.0.1/x",
            "https://240.0.0.1/x",
            "https://255.255.255.255/x",
            "https://[::1]/x",
            "https://[::]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[ff02::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[::ffff:169.254.169.254]/x",
            "https://[::127.0.0.1]/x",
            "https://[::ffff:0:192.168.1.1]/x",
            "https://[64:ff9b::10.0.0.1]/x",
            "https://[2002:a00:1::]/x",
            "not a url",
        ] {
            assert!(is_private_url(uri), "{uri} passed as public");
        }
        for uri in [
            "https://app.example/x",
            "https://93.184.216.34/x",
            "https://[2606:4700::1111]/x",
            "https://[::ffff:93.184.216.34]/x",
            "https://[64:ff9b::8.8.8.8]/x",
            "https://[2002:5db8:d822::]/x",
        ] {
            assert!(!is_private_url(uri), "{uri} passed as private");
        }
    }
}

//! The rules a registered client obeys, whichever entry point made or changed
//! it (the command line today; dynamic registration, the portal and the admin
//! API call the same functions), so that no entry point can store a client the
//! others would refuse.
//!
//! The redirect URI rules follow RFC 6749 §3.1.2, RFC 8252 §7 (native apps) and
//! RFC 9700 §2.1 and §4.1 (exact matching, no open redirectors).

use crate::model::{Client, ClientAuthMethod, GrantType};

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

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
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
            "a confidential client authenticates with its secret: its auth method is \
             client_secret_basic or client_secret_post",
        ));
    }
    if public && client.allows(GrantType::ClientCredentials) {
        return Err(metadata_error(
            "the client_credentials grant needs a confidential client (RFC 6749 §4.4)",
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

#[cfg(test)]
mod tests {
    use super::*;
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
            auth_method: None,
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
}

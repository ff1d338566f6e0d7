//! The protocol settings the core needs, parsed and validated once by the server.

use tessera_jose::Algorithm;

use crate::model::TokenFormat;

/// Protocol settings. Times are in seconds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier (`iss`), an https URL except on a loopback host.
    pub issuer: String,
    /// The audience of app tokens when the request names none and the client has
    /// no single audience of its own.
    pub default_audience: String,
    /// The algorithm access tokens are signed with.
    pub signing_alg: Algorithm,
    pub default_token_format: TokenFormat,
    /// Access tokens issued to a person's session (RFC 9700 §4.14: keep them short).
    pub user_access_token_ttl: i64,
    /// Access tokens of the client credentials grant.
    pub app_access_token_ttl: i64,
    pub id_token_ttl: i64,
    /// The longest any token signed by a key can live; retired keys stay published
    /// this long after they stop signing.
    pub max_token_ttl: i64,
    /// How long a new key is published before it starts signing.
    pub key_prepublish: i64,
    /// How often signing keys are rotated automatically; 0 disables it.
    pub key_rotation_interval: i64,
    /// Accepted clock difference when checking `exp` and `nbf` of incoming JWTs.
    pub leeway: i64,
    /// How long clients may cache the JWKS (`Cache-Control: max-age`).
    pub jwks_max_age: i64,
    /// Authorization codes (RFC 6749 §4.1.2 recommends at most 10 minutes).
    pub code_ttl: i64,
    /// Refresh tokens: each rotation extends the family by this much...
    pub refresh_token_ttl: i64,
    /// ...but never past this much after the user signed in.
    pub refresh_token_absolute_ttl: i64,
    /// `offline_access` refresh tokens, for background jobs.
    pub offline_token_ttl: i64,
    /// Seconds after a rotation in which presenting the rotated refresh token
    /// again answers with the same successor instead of revoking the family
    /// as reuse: for clients whose response was lost. 0 (the default) is
    /// strict RFC 9700 §4.14.2 reuse detection.
    pub refresh_reuse_grace: i64,
    /// A login session ends after this much inactivity...
    pub session_idle_ttl: i64,
    /// ...and after this much in any case.
    pub session_absolute_ttl: i64,
    /// Device codes (RFC 8628 §3.2 `expires_in`).
    pub device_code_ttl: i64,
    /// The minimum polling interval a device starts with (RFC 8628 §3.2).
    pub device_poll_interval: i64,
    /// Registration without an initial access token, for clients that act
    /// for people only (see [`crate::dynamic_registration`]).
    pub open_registration: bool,
    /// Registered URLs may point into private networks.
    pub registration_allows_private_urls: bool,
    /// Who may use the developer portal.
    pub portal_access: PortalAccess,
    /// Token requests one client may make a second, all in a burst; `None`
    /// is no limit.
    pub token_rate_limit: Option<std::num::NonZeroU32>,
}

/// Who may use the developer portal (`portal_access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalAccess {
    /// Every person who can sign in.
    Everyone,
    /// People with the developer or admin role only.
    Developers,
}

impl std::str::FromStr for PortalAccess {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "everyone" => Ok(PortalAccess::Everyone),
            "developers" => Ok(PortalAccess::Developers),
            other => Err(format!(
                "{other:?} is not a portal access; use \"everyone\" or \"developers\""
            )),
        }
    }
}

impl Settings {
    /// The defaults of SPEC.md for an issuer.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Settings {
            default_audience: issuer.clone(),
            issuer,
            signing_alg: Algorithm::ES256,
            default_token_format: TokenFormat::Jwt,
            user_access_token_ttl: 15 * 60,
            app_access_token_ttl: 60 * 60,
            id_token_ttl: 15 * 60,
            // Offline refresh tokens (90 days) are the longest-lived signed tokens.
            max_token_ttl: 90 * 24 * 3600,
            key_prepublish: 24 * 3600,
            key_rotation_interval: 30 * 24 * 3600,
            leeway: 30,
            jwks_max_age: 300,
            code_ttl: 60,
            refresh_token_ttl: 24 * 3600,
            refresh_token_absolute_ttl: 30 * 24 * 3600,
            offline_token_ttl: 90 * 24 * 3600,
            refresh_reuse_grace: 0,
            session_idle_ttl: 8 * 3600,
            session_absolute_ttl: 7 * 24 * 3600,
            device_code_ttl: 600,
            device_poll_interval: 5,
            open_registration: false,
            registration_allows_private_urls: false,
            portal_access: PortalAccess::Everyone,
            token_rate_limit: None,
        }
    }
}

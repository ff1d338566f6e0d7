//! Errors in three layers: [`ErrorCode`] is what goes on the wire (RFC 6749 §5.2 and
//! the extensions' registries), [`Reason`] says precisely why (for the log and
//! metrics; [`Reason::code`] is the one mapping onto wire codes), and [`Error`]
//! carries the reason with a description safe to show the client.

use std::borrow::Cow;
use std::fmt;

/// The OAuth error codes Tessera answers with. The server maps each to one HTTP
/// status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2
    InvalidRequest,
    /// RFC 6749 §5.2: 401 with `WWW-Authenticate`.
    InvalidClient,
    /// RFC 6749 §5.2
    InvalidGrant,
    /// RFC 6749 §5.2
    UnauthorizedClient,
    /// RFC 6749 §5.2
    UnsupportedGrantType,
    /// RFC 6749 §5.2
    InvalidScope,
    /// RFC 8707 §2
    InvalidTarget,
    /// RFC 6749 §4.1.2.1
    AccessDenied,
    /// RFC 7009 §2.2.1
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1; the precise cause is only logged.
    ServerError,
    /// RFC 6749 §4.1.2.1: a store or dependency is briefly unavailable, or (with
    /// `retry_after`) too many failed attempts.
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1
    UnsupportedResponseType,
    /// OIDC Core §3.1.2.6
    LoginRequired,
    /// OIDC Core §3.1.2.6
    ConsentRequired,
    /// OIDC Core §3.1.2.6
    InteractionRequired,
    /// OIDC Core §3.1.2.6
    RequestNotSupported,
    /// OIDC Core §3.1.2.6
    RequestUriNotSupported,
    /// RFC 6750 §3.1: the access token is missing, expired, revoked or malformed.
    InvalidToken,
    /// RFC 6750 §3.1
    InsufficientScope,
    /// RFC 8628 §3.5
    AuthorizationPending,
    /// RFC 8628 §3.5
    SlowDown,
    /// RFC 8628 §3.5
    ExpiredToken,
    /// RFC 7591 §3.2.2
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2
    InvalidClientMetadata,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused, precisely: for the log (and metrics), never sent
/// as such. Each reason maps onto one wire [`ErrorCode`] in one place,
/// [`Reason::code`], as rustls maps its precise `PeerMisbehaved` reasons onto a
/// few alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    // The request.
    /// A malformed or contradictory request not covered below.
    MalformedRequest,
    MissingParameter,
    RepeatedParameter,
    ParameterNotUtf8,
    UnsupportedGrantType,
    UnsupportedResponseType,
    RequestObjectUnsupported,
    RequestUriUnsupported,
    /// PKCE missing, `plain`, or a malformed challenge at the authorization
    /// endpoint.
    PkceRequired,
    // The client.
    ClientAuthenticationFailed,
    /// The client is not registered for this grant or response type.
    ClientNotAllowed,
    /// A public client at a grant that needs a confidential one.
    PublicClientRefused,
    /// Revocation of a token issued to another client (RFC 7009 §2.1).
    TokenOfAnotherClient,
    // Scope and audience.
    ScopeMalformed,
    ScopeNotAllowed,
    /// A scope the requested resource does not define.
    ScopeNotDefinedByResource,
    /// A refresh asking for more than the grant (RFC 6749 §6).
    ScopeWidened,
    TargetMalformed,
    TargetNotAllowed,
    /// A resource that accepts only the other kind of token.
    TargetRefusesTokenKind,
    /// Audiences whose resources need different signatures (algorithms, or
    /// shared secrets of their own) in one token.
    TargetsCannotShareSignature,
    // Grants.
    CodeUnknownOrExpired,
    CodeOfAnotherClient,
    RedirectUriMismatch,
    CodeReplayed,
    PkceVerifierMismatch,
    PkceVerifierMissing,
    /// A `code_verifier` for a code issued without a challenge (RFC 9700 §2.1.1).
    PkceDowngrade,
    RefreshTokenInvalid,
    RefreshTokenOfAnotherClient,
    /// A rotated refresh token used again: its family is revoked.
    RefreshTokenReused,
    /// A refresh token that another request rotated while this one was
    /// being handled: a concurrent use, refused without revoking the family.
    RefreshTokenRotatedConcurrently,
    RefreshTokenRevoked,
    /// An online refresh token whose login session has ended.
    SessionEnded,
    DeviceCodeUnknown,
    DeviceCodeOfAnotherClient,
    DeviceAuthorizationPending,
    DeviceSlowDown,
    DeviceAccessDenied,
    DeviceCodeExpired,
    DeviceCodeUsed,
    WrongCredentials,
    UserGone,
    Throttled,
    /// Over a request rate limit (per client or per address), whatever the
    /// request's merit.
    RateLimited,
    /// An `invalid_grant` not covered above.
    GrantRefused,
    // Assertions (RFC 7521 §4.1.1: each is `invalid_grant`): JWT and SAML 2.0
    // bearer assertions, and the user's token of an on-behalf-of request.
    /// Not a JWT or SAML assertion, too large, a DTD, or an element missing.
    AssertionMalformed,
    /// From an issuer that is not trusted here, or signed by a key that is
    /// not that issuer's.
    AssertionUntrusted,
    /// The signature does not verify, or does not cover what is read.
    AssertionSignatureInvalid,
    /// Expired, not yet valid, or without the expiry it must have.
    AssertionExpired,
    /// Not addressed to this server (audience, recipient).
    AssertionAudienceMismatch,
    /// A required claim or condition missing or wrong (`sub`, `jti`, the
    /// bearer confirmation, `typ`).
    AssertionClaimsInvalid,
    /// Its `jti` or assertion ID was accepted before.
    AssertionReplayed,
    /// Its subject is no user here.
    AssertionSubjectUnknown,
    /// A token of ours that the grant does not take: of another kind (by
    /// `typ`), revoked, expired, an app token where a user's is needed, or
    /// not issued to or for the client.
    AssertionTokenRefused,
    // Token exchange (RFC 8693 §2.2.2: an invalid or unacceptable subject or
    // actor token is `invalid_request`).
    /// The `subject_token` is invalid or unacceptable; the description says why.
    SubjectTokenRefused,
    /// The `actor_token` is invalid or unacceptable.
    ActorTokenRefused,
    /// A `subject_token_type`, `actor_token_type` or `requested_token_type`
    /// this server does not take.
    TokenTypeUnsupported,
    /// Impersonation (a token without `act`) asked of a client not allowed it.
    ImpersonationNotAllowed,
    // The authorization endpoint and logout.
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    InvalidLogoutRequest,
    // Tokens presented to the server's own resources (`/userinfo`).
    TokenInactive,
    InsufficientScope,
    // Dynamic client registration (RFC 7591, RFC 7592).
    /// A redirect URI breaks the registration rules.
    RedirectUriInvalid,
    /// Other client metadata breaks the registration rules.
    ClientMetadataInvalid,
    /// The initial or registration access token is missing, unknown, expired
    /// or not this client's.
    RegistrationTokenInvalid,
    // The server.
    StoreUnavailable,
    Internal,
}

impl Reason {
    /// The wire code of each reason: the one place where precise reasons
    /// become OAuth `error` values.
    pub fn code(self) -> ErrorCode {
        use Reason::*;
        match self {
            MalformedRequest | MissingParameter | RepeatedParameter | ParameterNotUtf8
            | PkceRequired | InvalidLogoutRequest => ErrorCode::InvalidRequest,
            UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            UnsupportedResponseType => ErrorCode::UnsupportedResponseType,
            RequestObjectUnsupported => ErrorCode::RequestNotSupported,
            RequestUriUnsupported => ErrorCode::RequestUriNotSupported,
            ClientAuthenticationFailed => ErrorCode::InvalidClient,
            ClientNotAllowed | PublicClientRefused | TokenOfAnotherClient => {
                ErrorCode::UnauthorizedClient
            }
            ScopeMalformed | ScopeNotAllowed | ScopeNotDefinedByResource | ScopeWidened => {
                ErrorCode::InvalidScope
            }
            TargetMalformed
            | TargetNotAllowed
            | TargetRefusesTokenKind
            | TargetsCannotShareSignature => ErrorCode::InvalidTarget,
            CodeUnknownOrExpired
            | CodeOfAnotherClient
            | RedirectUriMismatch
            | CodeReplayed
            | PkceVerifierMismatch
            | PkceVerifierMissing
            | PkceDowngrade
            | RefreshTokenInvalid
            | RefreshTokenOfAnotherClient
            | RefreshTokenReused
            | RefreshTokenRotatedConcurrently
            | RefreshTokenRevoked
            | SessionEnded
            | DeviceCodeUnknown
            | DeviceCodeOfAnotherClient
            | DeviceCodeUsed
            | WrongCredentials
            | UserGone
            | GrantRefused
            | AssertionMalformed
            | AssertionUntrusted
            | AssertionSignatureInvalid
            | AssertionExpired
            | AssertionAudienceMismatch
            | AssertionClaimsInvalid
            | AssertionReplayed
            | AssertionSubjectUnknown
            | AssertionTokenRefused => ErrorCode::InvalidGrant,
            SubjectTokenRefused | ActorTokenRefused | TokenTypeUnsupported => {
                ErrorCode::InvalidRequest
            }
            ImpersonationNotAllowed => ErrorCode::UnauthorizedClient,
            DeviceAuthorizationPending => ErrorCode::AuthorizationPending,
            DeviceSlowDown => ErrorCode::SlowDown,
            DeviceAccessDenied | AccessDenied => ErrorCode::AccessDenied,
            DeviceCodeExpired => ErrorCode::ExpiredToken,
            LoginRequired => ErrorCode::LoginRequired,
            ConsentRequired => ErrorCode::ConsentRequired,
            TokenInactive | RegistrationTokenInvalid => ErrorCode::InvalidToken,
            RedirectUriInvalid => ErrorCode::InvalidRedirectUri,
            ClientMetadataInvalid => ErrorCode::InvalidClientMetadata,
            InsufficientScope => ErrorCode::InsufficientScope,
            Throttled | RateLimited | StoreUnavailable => ErrorCode::TemporarilyUnavailable,
            Internal => ErrorCode::ServerError,
        }
    }
}

/// A protocol error: a precise reason (logged, never sent), the wire code it
/// maps to, and a description safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub reason: Reason,
    pub description: Cow<'static, str>,
    /// Seconds to wait before retrying, for throttled requests (HTTP 429).
    pub retry_after: Option<i64>,
}

impl Error {
    pub fn new(reason: Reason, description: impl Into<Cow<'static, str>>) -> Self {
        Error {
            reason,
            description: description.into(),
            retry_after: None,
        }
    }

    /// The OAuth `error` code.
    pub fn code(&self) -> ErrorCode {
        self.reason.code()
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Reason::MalformedRequest, description)
    }

    /// Every client authentication failure looks the same from outside, so that
    /// the answer does not tell which client IDs exist.
    pub fn invalid_client() -> Self {
        Self::new(
            Reason::ClientAuthenticationFailed,
            "client authentication failed",
        )
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Reason::GrantRefused, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Reason::ScopeNotAllowed, description)
    }

    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Reason::TargetNotAllowed, description)
    }

    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Reason::ClientNotAllowed, description)
    }

    /// Too many failed attempts: refused even if this one would succeed.
    pub fn throttled(retry_after: i64) -> Self {
        Error {
            reason: Reason::Throttled,
            description: "too many failed attempts; wait before trying again".into(),
            retry_after: Some(retry_after),
        }
    }

    /// Over a request rate limit; `what` says whose, for the description.
    pub fn rate_limited(wait: std::time::Duration, what: &str) -> Self {
        Error {
            reason: Reason::RateLimited,
            description: format!("too many requests {what}; wait before trying again").into(),
            retry_after: Some(crate::rate_limit::retry_after_seconds(wait)),
        }
    }

    /// An internal failure; the cause is logged here and never sent to the peer.
    pub fn server_error(cause: &dyn fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            Reason::Internal,
            "the server could not complete the request",
        )
    }
}

/// The most of a caller's input an error description repeats: enough to
/// recognise it, never enough to make the answer grow with the request.
const ECHO_LIMIT: usize = 64;
/// The most items of a list an error description repeats.
const ECHO_ITEMS: usize = 5;

/// `text`, cut to [`ECHO_LIMIT`] characters (with `…` when cut).
pub fn bounded(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

/// Space-separated items for an error description: at most [`ECHO_ITEMS`],
/// each [`bounded`], then how many more there were.
pub fn bounded_list(items: &[&str]) -> String {
    let mut out: Vec<Cow<'_, str>> = items.iter().take(ECHO_ITEMS).map(|i| bounded(i)).collect();
    if items.len() > ECHO_ITEMS {
        out.push(Cow::Owned(format!(
            "(and {} more)",
            items.len() - ECHO_ITEMS
        )));
    }
    out.join(" ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description)
    }
}

impl std::error::Error for Error {}

impl From<crate::store::StoreError> for Error {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                Error::new(
                    Reason::StoreUnavailable,
                    "the server's store is unavailable; retry shortly",
                )
            }
            other => Error::server_error(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precise_reasons_map_onto_their_wire_codes() {
        for (reason, code) in [
            (Reason::CodeReplayed, ErrorCode::InvalidGrant),
            (Reason::PkceVerifierMismatch, ErrorCode::InvalidGrant),
            (Reason::RefreshTokenReused, ErrorCode::InvalidGrant),
            (Reason::SessionEnded, ErrorCode::InvalidGrant),
            (Reason::ScopeWidened, ErrorCode::InvalidScope),
            (Reason::TargetRefusesTokenKind, ErrorCode::InvalidTarget),
            (Reason::PublicClientRefused, ErrorCode::UnauthorizedClient),
            (Reason::ClientAuthenticationFailed, ErrorCode::InvalidClient),
            (Reason::DeviceSlowDown, ErrorCode::SlowDown),
            (Reason::DeviceCodeExpired, ErrorCode::ExpiredToken),
            (Reason::Throttled, ErrorCode::TemporarilyUnavailable),
            (Reason::RateLimited, ErrorCode::TemporarilyUnavailable),
            (Reason::TokenInactive, ErrorCode::InvalidToken),
            (Reason::RegistrationTokenInvalid, ErrorCode::InvalidToken),
            (Reason::RedirectUriInvalid, ErrorCode::InvalidRedirectUri),
            (
                Reason::ClientMetadataInvalid,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                Reason::RequestObjectUnsupported,
                ErrorCode::RequestNotSupported,
            ),
            (Reason::Internal, ErrorCode::ServerError),
        ] {
            assert_eq!(reason.code(), code, "{reason:?}");
            assert_eq!(Error::new(reason, "x").code(), code);
        }
        // The reason never reaches the text a client sees.
        let error = Error::new(Reason::RefreshTokenReused, "the refresh token is invalid");
        assert_eq!(
            error.to_string(),
            "invalid_grant: the refresh token is invalid"
        );
    }

    #[test]
    fn echoed_input_is_bounded() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(1_000);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), ECHO_LIMIT + 1);
        assert!(cut.ends_with('…'));
        let many: Vec<String> = (0..8_000).map(|i| format!("scope{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let list = bounded_list(&refs);
        assert!(list.len() < 200, "{list}");
        assert!(list.ends_with("(and 7995 more)"), "{list}");
        assert_eq!(bounded_list(&["a", "b"]), "a b");
    }
}

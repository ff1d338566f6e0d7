//! The authorization endpoint (RFC 6749 §3.1, §4.1.1, §4.2.1; OIDC Core §3):
//! validating the request, deciding whether the person must sign in or consent,
//! and building the response that goes back to the client.

use serde::{Deserialize, Serialize};

use crate::crypto::{SecretDigest, random_token};
use crate::error::{Error, Reason};
use crate::model::{Client, GrantType};
use crate::params::Params;
use crate::pkce;
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::ClientStore as _;
use crate::store::{AuthorizationCode, Session, User};
use crate::tokens::issuer::IdTokenFor;
use crate::tokens::{IdTokenIssue, Issue, RefreshIssue};

/// What the client asked for, validated. It travels sealed through the login and
/// consent pages, so nothing here needs to be stored server-side meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The redirect URI as the client sent it (or its single registered one).
    pub redirect_uri: String,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseType {
    /// `code` (RFC 6749 §4.1)
    Code,
    /// `token` (RFC 6749 §4.2)
    Token,
    /// `id_token` (OIDC Core §3.2)
    IdToken,
    /// `id_token token` (OIDC Core §3.2)
    IdTokenToken,
}

impl ResponseType {
    /// Parses the space-separated, unordered value (OAuth 2.0 Multiple Response
    /// Types §3).
    fn parse(text: &str) -> Option<Self> {
        let mut parts: Vec<&str> = text.split(' ').filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["code"] => Some(ResponseType::Code),
            ["token"] => Some(ResponseType::Token),
            ["id_token"] => Some(ResponseType::IdToken),
            ["id_token", "token"] => Some(ResponseType::IdTokenToken),
            _ => None,
        }
    }

    /// The `response_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
        }
    }

    pub fn is_implicit(self) -> bool {
        self != ResponseType::Code
    }

    pub fn has_id_token(self) -> bool {
        matches!(self, ResponseType::IdToken | ResponseType::IdTokenToken)
    }

    pub fn has_access_token(self) -> bool {
        matches!(self, ResponseType::Token | ResponseType::IdTokenToken)
    }

    pub const SUPPORTED: [&'static str; 4] = ["code", "token", "id_token", "id_token token"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    Query,
    Fragment,
    /// OAuth 2.0 Form Post Response Mode.
    FormPost,
}

impl ResponseMode {
    pub const SUPPORTED: [&'static str; 3] = ["query", "fragment", "form_post"];
}

/// Where an error or a response goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
    /// For an error response, its precise reason (for the log and the
    /// client's trace; never sent).
    pub refusal: Option<Reason>,
}

/// A failed authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: shown on an error page,
    /// never redirected (RFC 6749 §4.1.2.1).
    Page(String),
    /// Sent back to the registered redirect URI with `error` and `state`.
    Redirect(Redirect),
}

/// What has to happen next for a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Login,
    Consent,
    Respond,
}

impl Provider {
    /// Validates an authorization request (GET query or POST form, OIDC Core §3.1.2.1).
    pub async fn authorization_request(
        &self,
        params: &Params,
    ) -> Result<(Client, AuthorizationRequest), AuthorizeError> {
        // Without a readable client_id or redirect_uri there is nowhere safe to
        // send the error (RFC 6749 §4.1.2.1); any other unreadable parameter is
        // reported to the client below.
        for name in ["client_id", "redirect_uri"] {
            if params.is_not_utf8(name) {
                return Err(AuthorizeError::Page(format!(
                    "the request's {name} is not valid UTF-8"
                )));
            }
            if params.is_repeated(name) {
                return Err(AuthorizeError::Page(format!(
                    "the request's {name} is repeated"
                )));
            }
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| AuthorizeError::Page("the request has no client_id".into()))?;
        let client = self
            .catalog()
            .client(client_id)
            .await
            .map_err(|e| AuthorizeError::Page(Error::from(e).description.into_owned()))?
            .ok_or_else(|| AuthorizeError::Page("the application is not registered here".into()))?;
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) if redirect_uri_matches(&client.redirect_uris, uri) => uri.to_owned(),
            Some(_) => {
                return Err(AuthorizeError::Page(
                    "the redirect URI is not registered for this application".into(),
                ));
            }
            // RFC 6749 §3.1.2.3: optional only with a single registered URI.
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(AuthorizeError::Page(
                        "the request has no redirect_uri".into(),
                    ));
                }
            },
        };
        // A row registered before the registration rules (or edited by hand)
        // may hold a URI they refuse: never follow it.
        if let Err(e) = crate::registration::check_redirect_uri(&redirect_uri) {
            tracing::warn!(client_id = %client.id, error = %e, "refusing to redirect to a registered URI that breaks the registration rules; fix it with `tessera client update`");
            return Err(AuthorizeError::Page(
                "the application's redirect URI is not allowed by this server".into(),
            ));
        }
        // A repeated `state` was set aside: which one to return is unknown,
        // so the error goes back without one (RFC 6749 §4.1.2.1).
        let state = params.get("state").map(str::to_owned);

        // From here on, errors go back to the client.
        let response_type = params.get("response_type").and_then(ResponseType::parse);
        let default_mode = match response_type {
            Some(ResponseType::Code) | None => ResponseMode::Query,
            Some(_) => ResponseMode::Fragment,
        };
        let response_mode = match params.get("response_mode") {
            None => default_mode,
            Some("query") => ResponseMode::Query,
            Some("fragment") => ResponseMode::Fragment,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => default_mode,
        };
        let fail = |reason: Reason, description: &str| {
            tracing::debug!(?reason, client_id = %client.id, "authorization request refused");
            let mut params = vec![
                ("error".to_owned(), reason.code().as_str().to_owned()),
                ("error_description".to_owned(), description.to_owned()),
            ];
            if let Some(state) = &state {
                params.push(("state".to_owned(), state.clone()));
            }
            params.push(("iss".to_owned(), self.settings().issuer.clone()));
            AuthorizeError::Redirect(Redirect {
                redirect_uri: redirect_uri.clone(),
                mode: response_mode,
                params,
                refusal: Some(reason),
            })
        };
        if let Some(e) = params.deferred_error() {
            return Err(fail(e.reason, &e.description));
        }
        if params.get("request").is_some() {
            return Err(fail(
                Reason::RequestObjectUnsupported,
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(fail(
                Reason::RequestUriUnsupported,
                "request_uri is not supported",
            ));
        }
        let Some(response_type) = response_type else {
            return Err(match params.get("response_type") {
                None => fail(Reason::MissingParameter, "response_type is missing"),
                Some(_) => fail(
                    Reason::UnsupportedResponseType,
                    "this response_type is not supported",
                ),
            });
        };
        if params
            .get("response_mode")
            .is_some_and(|m| !ResponseMode::SUPPORTED.contains(&m))
        {
            return Err(fail(Reason::MalformedRequest, "unsupported response_mode"));
        }
        // Tokens never go in a query string (OAuth 2.0 Multiple Response Types §2.1).
        if response_type.is_implicit() && response_mode == ResponseMode::Query {
            return Err(fail(
                Reason::MalformedRequest,
                "tokens cannot be returned in the query",
            ));
        }
        let grant = if response_type.is_implicit() {
            GrantType::Implicit
        } else {
            GrantType::AuthorizationCode
        };
        if !client.allows(grant) {
            return Err(fail(
                Reason::ClientNotAllowed,
                &format!("the application may not use the {grant} grant"),
            ));
        }
        let scope = client
            .requested_scope(params.get("scope"))
            .map_err(|e| fail(e.reason, &e.description))?;
        if response_type.has_id_token() && !scope.contains("openid") {
            return Err(fail(
                Reason::ScopeNotAllowed,
                "an ID token needs the openid scope",
            ));
        }
        let nonce = params.get("nonce").map(str::to_owned);
        // OIDC Core §3.2.2.1: nonce is required when an ID token comes from the
        // authorization endpoint, against replay.
        if response_type.has_id_token() && nonce.is_none() {
            return Err(fail(
                Reason::MalformedRequest,
                "nonce is required for this response_type",
            ));
        }
        let code_challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (None, None) => None,
            (Some(challenge), Some("S256")) if pkce::valid_challenge(challenge) => {
                Some(challenge.to_owned())
            }
            (Some(_), Some("S256")) => {
                return Err(fail(
                    Reason::PkceRequired,
                    "code_challenge is not a base64url SHA-256 digest",
                ));
            }
            // RFC 7636 §4.3 defaults to plain, which Tessera refuses (RFC 9700 §2.1.1).
            (Some(_), _) => {
                return Err(fail(
                    Reason::PkceRequired,
                    "code_challenge_method must be S256",
                ));
            }
            (None, Some(_)) => {
                return Err(fail(Reason::PkceRequired, "code_challenge is missing"));
            }
        };
        if response_type == ResponseType::Code
            && code_challenge.is_none()
            && (client.is_public() || client.require_pkce)
        {
            return Err(fail(
                Reason::PkceRequired,
                "PKCE is required: send code_challenge with S256",
            ));
        }
        let prompt: Vec<String> = params
            .get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if prompt
            .iter()
            .any(|p| !["none", "login", "consent", "select_account"].contains(&p.as_str()))
        {
            return Err(fail(Reason::MalformedRequest, "unknown prompt value"));
        }
        if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
            return Err(fail(
                Reason::MalformedRequest,
                "prompt=none cannot be combined",
            ));
        }
        let max_age =
            match params.get("max_age") {
                None => None,
                Some(text) => Some(text.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(
                    || {
                        fail(
                            Reason::MalformedRequest,
                            "max_age must be a non-negative integer",
                        )
                    },
                )?),
            };
        // The resource policy now, so that nobody is asked to approve what the
        // token endpoint would refuse.
        crate::grants::Targets::resolve(self, &client, params.resources())
            .await
            .and_then(|targets| targets.check_policy(crate::grants::SubjectKind::User, &scope))
            .map_err(|e| fail(e.reason, &e.description))?;
        Ok((
            client,
            AuthorizationRequest {
                client_id: client_id.to_owned(),
                redirect_uri,
                response_type,
                response_mode,
                scope: scope.to_string(),
                state,
                nonce,
                code_challenge,
                prompt,
                max_age,
                login_hint: params.get("login_hint").map(str::to_owned),
                resources: params.resources().to_vec(),
            },
        ))
    }

    /// Decides what the person must do next, given their session (OIDC Core
    /// §3.1.2.3: prompt, max_age) and stored consent. `fresh_login` is true right
    /// after the login form, so that `prompt=login` does not loop.
    ///
    /// A `login_hint` that names someone other than the signed-in user asks for
    /// a login too (and `login_required` with `prompt=none`, OIDC Core
    /// §3.1.2.6): the client wants another account than the browser's.
    pub async fn next_step(
        &self,
        request: &AuthorizationRequest,
        session: Option<(&Session, &User)>,
        fresh_login: bool,
    ) -> Result<Step, AuthorizeError> {
        let now = self.clock().now();
        let needs_login = match session {
            None => true,
            Some((session, user)) => {
                // OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login.
                // The age test alone would let it pass within the second of the
                // last sign-in, as times are whole seconds.
                let forced =
                    request.prompt.iter().any(|p| p == "login") || request.max_age == Some(0);
                let someone_else = request
                    .login_hint
                    .as_deref()
                    .is_some_and(|hint| !hint_names(hint, user));
                // A login that has just happened (for this very session: the
                // consent form carries its sid and auth_time) meets prompt,
                // max_age and the hint however long the person then takes to
                // decide on the consent page; else max_age=N would allow N
                // seconds to read it, and max_age=0 none at all.
                let too_old = request
                    .max_age
                    .is_some_and(|max| now - session.auth_time > max);
                !fresh_login && (forced || someone_else || too_old)
            }
        };
        if needs_login {
            return if request.prompt.iter().any(|p| p == "none") {
                Err(self.error_redirect(
                    request,
                    Reason::LoginRequired,
                    "the user is not signed in",
                ))
            } else {
                Ok(Step::Login)
            };
        }
        let Some((session, _)) = session else {
            return Ok(Step::Login);
        };
        let wants_consent = request.prompt.iter().any(|p| p == "consent");
        let requested = Scope::parse(&request.scope).unwrap_or_default();
        let consented = self
            .store()
            .consent(&session.user_id, &request.client_id)
            .await
            .map_err(|e| {
                self.error_redirect(
                    request,
                    Error::from(e).reason,
                    "the server could not complete the request",
                )
            })?
            .is_some_and(|c| requested.is_subset(&c.scopes));
        if wants_consent || !consented {
            if request.prompt.iter().any(|p| p == "none") {
                return Err(self.error_redirect(
                    request,
                    Reason::ConsentRequired,
                    "the user has not approved this application",
                ));
            }
            return Ok(Step::Consent);
        }
        Ok(Step::Respond)
    }

    /// An error redirect for a validated request.
    pub fn error_redirect(
        &self,
        request: &AuthorizationRequest,
        reason: Reason,
        description: &str,
    ) -> AuthorizeError {
        tracing::debug!(?reason, client_id = %request.client_id, "authorization request refused");
        let mut params = vec![
            ("error".to_owned(), reason.code().as_str().to_owned()),
            ("error_description".to_owned(), description.to_owned()),
        ];
        if let Some(state) = &request.state {
            params.push(("state".to_owned(), state.clone()));
        }
        params.push(("iss".to_owned(), self.settings().issuer.clone()));
        AuthorizeError::Redirect(Redirect {
            redirect_uri: request.redirect_uri.clone(),
            mode: request.response_mode,
            params,
            refusal: Some(reason),
        })
    }

    /// Builds the successful response: a code, or implicit tokens, plus `state` and
    /// `iss` (RFC 9207).
    pub async fn authorization_response(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: &User,
        session: &Session,
    ) -> Result<Redirect, AuthorizeError> {
        let now = self.clock().now();
        let internal = |e: Error| self.error_redirect(request, e.reason, &e.description);
        let scope = Scope::parse(&request.scope).unwrap_or_default();
        let mut params: Vec<(String, String)> = Vec::new();
        match request.response_type {
            ResponseType::Code => {
                let code = random_token();
                let record = AuthorizationCode {
                    digest: SecretDigest::of(&code),
                    client_id: client.id.clone(),
                    user_id: user.id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    scope: scope.clone(),
                    nonce: request.nonce.clone(),
                    audiences: request.resources.clone(),
                    auth_time: session.auth_time,
                    sid: Some(session.sid.clone()),
                    expires_at: now + self.settings().code_ttl,
                    consumed_at: None,
                    access_jti: None,
                    access_expires_at: None,
                    family_id: None,
                };
                self.store()
                    .insert_code(&record)
                    .await
                    .map_err(|e| internal(e.into()))?;
                params.push(("code".into(), code));
            }
            implicit => {
                // OAuth 2.0 Multiple Response Types §2: `token` and
                // `id_token token` come from the issuer like any grant's
                // tokens (no refresh token, §4.2.2); `id_token` alone has no
                // access token to mint.
                let targets = crate::grants::Targets::resolve(self, client, &request.resources)
                    .await
                    .map_err(internal)?;
                let id_token = implicit.has_id_token().then(|| IdTokenIssue {
                    nonce: request.nonce.clone(),
                });
                if implicit.has_access_token() {
                    let issue = Issue {
                        sid: Some(session.sid.clone()),
                        refresh: RefreshIssue::None,
                        id_token,
                        ..Issue::user(user.clone(), scope.clone(), targets, session.auth_time)
                    };
                    let issued = self.issuer().issue(client, issue).await.map_err(internal)?;
                    let response = issued.response;
                    params.push(("access_token".into(), response.access_token));
                    params.push(("token_type".into(), response.token_type));
                    params.push(("expires_in".into(), response.expires_in.to_string()));
                    params.push(("scope".into(), scope.to_string()));
                    if let Some(id_token) = response.id_token {
                        params.push(("id_token".into(), id_token));
                    }
                } else {
                    // The resource policy holds here too, though no access
                    // token is minted.
                    targets
                        .check_policy(crate::grants::SubjectKind::User, &scope)
                        .map_err(internal)?;
                    let id_token = self
                        .issuer()
                        .id_token(IdTokenFor {
                            client,
                            user,
                            scope: &scope,
                            nonce: request.nonce.clone(),
                            auth_time: session.auth_time,
                            sid: Some(session.sid.clone()),
                            access_token: None,
                        })
                        .map_err(internal)?;
                    params.push(("id_token".into(), id_token));
                }
            }
        }
        if let Some(state) = &request.state {
            params.push(("state".into(), state.clone()));
        }
        params.push(("iss".into(), self.settings().issuer.clone()));
        Ok(Redirect {
            redirect_uri: request.redirect_uri.clone(),
            mode: request.response_mode,
            params,
            refusal: None,
        })
    }
}

/// Whether a `login_hint` names this user: their username or email (as typed
/// at sign-in, case-insensitively) or their subject identifier.
fn hint_names(hint: &str, user: &User) -> bool {
    let hint = hint.trim();
    hint == user.id
        || hint.eq_ignore_ascii_case(&user.username)
        || user
            .email
            .as_deref()
            .is_some_and(|email| hint.eq_ignore_ascii_case(email))
}

/// Exact string comparison (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3), except that a
/// native app's loopback IP redirect URI matches on any port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Some(presented_rest) = loopback_without_port(presented) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| loopback_without_port(r))
        .any(|r| r == presented_rest)
}

/// `http://127.0.0.1:PORT/path` or `http://[::1]:PORT/path` without the port.
/// `localhost` is not a loopback IP literal and is matched exactly (RFC 8252 §8.3).
fn loopback_without_port(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("http://")?;
    let (host, after_host) = if let Some(v6) = rest.strip_prefix("[::1]") {
        ("[::1]", v6)
    } else if let Some(v4) = rest.strip_prefix("127.0.0.1") {
        ("127.0.0.1", v4)
    } else {
        return None;
    };
    let path_start = after_host.find(['/', '?']).unwrap_or(after_host.len());
    let (port, path) = after_host.split_at(path_start);
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some((host.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let registered = vec![
            "https://app.example/cb".to_owned(),
            "http://127.0.0.1/callback".to_owned(),
            "http://[::1]:8000/cb".to_owned(),
        ];
        assert!(redirect_uri_matches(&registered, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://APP.example/cb",
            "https://app.example/c",
            "https://app.example.evil/cb",
            "http://app.example/cb",
            "http://127.0.0.1:5000/callback/x",
            "http://127.0.0.1.evil.example/callback",
            "http://localhost:5000/callback",
        ] {
            assert!(!redirect_uri_matches(&registered, bad), "{bad}");
        }
        assert!(redirect_uri_matches(
            &registered,
            "http://127.0.0.1:51234/callback"
        ));
        assert!(redirect_uri_matches(&registered, "http://[::1]:9/cb"));
    }

    #[test]
    fn response_types_are_unordered_sets() {
        assert_eq!(
            ResponseType::parse("token id_token"),
            Some(ResponseType::IdTokenToken)
        );
        assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
        assert_eq!(ResponseType::parse("code id_token"), None);
        assert_eq!(ResponseType::parse(""), None);
    }
}

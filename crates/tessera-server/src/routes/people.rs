//! The pages and endpoints where a person is involved: the authorization
//! endpoint, login, consent, `/userinfo` and logout.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use tessera_core::authorize::{AuthorizationRequest, AuthorizeError, Step};
use tessera_core::error::Reason;
use tessera_core::model::Client;
use tessera_core::params::Params;
use tessera_core::scope::Scope;
use tessera_core::store::ClientStore as _;
use tessera_core::store::{Consent, Session, User};
use tessera_core::trace::{TraceEndpoint, TraceOutcome, TraceStep};
use tessera_core::{Error, ErrorCode, Provider};

use super::{AuthorizationForm, ClientAddress, PageForm};
use crate::app::AppState;
use crate::oauth_error::authorize_error;
use crate::pages::{
    ConsentPage, DeviceStep, Interaction, LoginPage, LogoutPage, MessagePage, PageStep, csrf_token,
    deliver, error_page, open, page, removal_cookie, seal_interaction, session_cookie,
    session_cookie_name,
};

/// `GET /oauth2/authorize` (RFC 6749 §3.1).
pub async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::from_form_deferring_errors(query.unwrap_or_default().as_bytes()) {
        Ok(params) => authorize(&state.provider, jar, &params, false).await,
        Err(e) => error_page(StatusCode::BAD_REQUEST, &e.description),
    }
}

/// `POST /oauth2/authorize` (OIDC Core §3.1.2.1 allows form-encoded POST).
pub async fn authorize_post(
    State(state): State<AppState>,
    jar: CookieJar,
    form: Result<AuthorizationForm, crate::oauth_error::OAuthError>,
) -> Response {
    match form {
        Ok(AuthorizationForm(params)) => authorize(&state.provider, jar, &params, true).await,
        Err(e) => error_page(StatusCode::BAD_REQUEST, &e.0.description),
    }
}

async fn authorize(
    provider: &Provider,
    jar: CookieJar,
    params: &Params,
    after_post: bool,
) -> Response {
    let (client, request) = match provider.authorization_request(params).await {
        Ok(ok) => ok,
        Err(e) => {
            trace_refused_request(provider, params, &e).await;
            return authorize_error(e, after_post);
        }
    };
    let session = current_session(provider, &jar).await;
    let step = provider
        .next_step(&request, session.as_ref().map(|(s, u)| (s, u)), false)
        .await;
    continue_with(
        provider, jar, &client, &request, session, step, false, after_post,
    )
    .await
}

/// Acts on the next step: show a page, or answer the client. `fresh_login`:
/// the session was started by the login form just now.
#[allow(clippy::too_many_arguments)]
async fn continue_with(
    provider: &Provider,
    jar: CookieJar,
    client: &Client,
    request: &AuthorizationRequest,
    session: Option<(Session, User)>,
    step: Result<Step, AuthorizeError>,
    fresh_login: bool,
    after_post: bool,
) -> Response {
    match (step, session) {
        (Err(e), _) => {
            trace_step(provider, request, refusal(&e));
            authorize_error(e, after_post)
        }
        (Ok(Step::Login), _) | (Ok(_), None) => {
            trace_step(provider, request, done("shows the sign-in page"));
            let interaction = seal_interaction(provider, request, PageStep::Login);
            let (jar, csrf) = csrf_token(provider, jar);
            let hint = request.login_hint.clone().unwrap_or_default();
            (
                jar,
                page(
                    StatusCode::OK,
                    &LoginPage {
                        client_name: &client.name,
                        error: None,
                        csrf: &csrf,
                        interaction: &interaction,
                        username: &hint,
                    },
                ),
            )
                .into_response()
        }
        (Ok(Step::Consent), Some((session, user))) => {
            trace_step(
                provider,
                request,
                done("asks the person to approve the requested scopes"),
            );
            let interaction = seal_interaction(
                provider,
                request,
                PageStep::Consent {
                    sid: session.sid.clone(),
                    auth_time: session.auth_time,
                    fresh_login,
                },
            );
            let (jar, csrf) = csrf_token(provider, jar);
            (
                jar,
                page(
                    StatusCode::OK,
                    &ConsentPage {
                        client_name: &client.name,
                        username: &user.username,
                        scopes: describe_scopes(&request.scope),
                        csrf: &csrf,
                        interaction: &interaction,
                    },
                ),
            )
                .into_response()
        }
        (Ok(Step::Respond), Some((session, user))) => {
            match provider
                .authorization_response(client, request, &user, &session)
                .await
            {
                Ok(redirect) => {
                    let what = if request.response_type.is_implicit() {
                        "tokens"
                    } else {
                        "an authorization code"
                    };
                    trace_step(
                        provider,
                        request,
                        done(&format!(
                            "sends the browser back to {} with {what}",
                            request.redirect_uri
                        )),
                    );
                    (jar, deliver(redirect, after_post)).into_response()
                }
                Err(e) => {
                    trace_step(provider, request, refusal(&e));
                    authorize_error(e, after_post)
                }
            }
        }
    }
}

/// Adds a step of an authorization request to its client's trace.
fn trace_step(provider: &Provider, request: &AuthorizationRequest, outcome: TraceOutcome) {
    provider.trace(
        request.client_id.clone(),
        TraceStep {
            endpoint: TraceEndpoint::Authorization,
            flow: Some(request.response_type.as_str().to_owned()),
            scope: Some(request.scope.clone()).filter(|s| !s.is_empty()),
            from: None,
            outcome,
        },
    );
}

fn done(detail: &str) -> TraceOutcome {
    TraceOutcome::Done {
        detail: detail.to_owned(),
    }
}

/// A refused authorization request as its trace shows it: the error sent to
/// the redirect URI, or the error page shown instead.
fn refusal(error: &AuthorizeError) -> TraceOutcome {
    match error {
        AuthorizeError::Page(message) => TraceOutcome::Refused {
            error: "(error page: not sent to the application)".to_owned(),
            reason: "redirect URI or client cannot be trusted".to_owned(),
            description: message.clone(),
        },
        AuthorizeError::Redirect(redirect) => {
            let param = |name: &str| {
                redirect
                    .params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            match redirect.refusal {
                Some(reason) => TraceOutcome::refused_for(reason, param("error_description")),
                None => done("sends the browser back to the application"),
            }
        }
    }
}

/// A request refused before it was understood: traced when it names a
/// registered client (an unregistered redirect URI is the commonest mistake).
async fn trace_refused_request(provider: &Provider, params: &Params, error: &AuthorizeError) {
    let Some(client_id) = params.get("client_id") else {
        return;
    };
    if !matches!(provider.catalog().client(client_id).await, Ok(Some(_))) {
        return;
    }
    provider.trace(
        client_id.to_owned(),
        TraceStep {
            endpoint: TraceEndpoint::Authorization,
            flow: params
                .get("response_type")
                .map(|t| tessera_core::error::bounded(t).into_owned()),
            scope: params
                .get("scope")
                .map(|s| tessera_core::error::bounded(s).into_owned()),
            from: None,
            outcome: refusal(error),
        },
    );
}

/// The live session behind the browser's cookie, if any.
pub async fn current_session(provider: &Provider, jar: &CookieJar) -> Option<(Session, User)> {
    let cookie = jar.get(session_cookie_name(provider))?;
    match provider.session(cookie.value()).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "session lookup failed");
            None
        }
    }
}

/// Reopens the authorization interaction a form carried; `None` means it
/// expired, was altered, or is not an authorization interaction.
async fn interaction_of(
    provider: &Provider,
    params: &Params,
) -> Option<(Client, AuthorizationRequest, PageStep)> {
    let Interaction::Authorize { request, step } = open(provider, params.get("interaction")?)?
    else {
        return None;
    };
    let client = provider.catalog().client(&request.client_id).await.ok()??;
    Some((client, *request, step))
}

pub const STALE: &str =
    "This sign-in page has expired or was altered. Go back to the application and start again.";
pub const BAD_CSRF: &str =
    "The form could not be verified (missing or wrong CSRF token). Reload the page and try again.";

/// `POST /login`: checks the credentials, starts a session, continues the flow.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let provider = &state.provider;
    let Some(interaction) = params.get("interaction").and_then(|i| open(provider, i)) else {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    };
    let username = params.get("username").unwrap_or("");
    if let Interaction::Portal { return_to } = &interaction {
        let to = super::portal::safe_return_to(return_to);
        return match sign_in(&state, jar, &params, address.as_deref()).await {
            Ok((jar, _, _)) => (jar, Redirect::to(to)).into_response(),
            Err(failed) => failed.page(provider, "the developer portal", &params),
        };
    }
    if let Interaction::Device { user_code, step } = &interaction {
        // The login form takes only the device interaction issued for it.
        if *step != DeviceStep::Login {
            return error_page(StatusCode::BAD_REQUEST, STALE);
        }
        return match sign_in(&state, jar, &params, address.as_deref()).await {
            Ok((jar, session, user)) => {
                super::device::confirmation(provider, jar, user_code, &session, &user).await
            }
            Err(failed) => failed.page(provider, "your device", &params),
        };
    }
    // The login form takes only an interaction issued for the login form: a
    // consent page's cannot be replayed here, nor the other way round.
    let Interaction::Authorize {
        request,
        step: PageStep::Login,
    } = interaction
    else {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    };
    let Some(client) = provider
        .catalog()
        .client(&request.client_id)
        .await
        .ok()
        .flatten()
    else {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    };
    let password = params.get("password").unwrap_or("");
    let user = match check_credentials(&state, username, password, address.as_deref()).await {
        Ok(user) => user,
        Err(e) => {
            let interaction = seal_interaction(provider, &request, PageStep::Login);
            return login_failed(provider, jar, &client.name, &interaction, username, &e);
        }
    };
    let jar = replace_session(provider, jar).await;
    let new = match provider.start_session(&user).await {
        Ok(new) => new,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.description),
    };
    let jar = jar.add(session_cookie(provider, new.cookie));
    let step = provider
        .next_step(&request, Some((&new.session, &user)), true)
        .await;
    continue_with(
        provider,
        jar,
        &client,
        &request,
        Some((new.session, user)),
        step,
        true,
        true,
    )
    .await
}

/// Why a login form's sign-in failed, with the browser's cookies.
struct SignInFailed {
    jar: CookieJar,
    error: Error,
    /// The session could not be started: not the person's fault.
    unavailable: bool,
}

impl SignInFailed {
    /// The login page again (or, when the store failed, an error page).
    fn page(self, provider: &Provider, continuing_to: &str, params: &Params) -> Response {
        if self.unavailable {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, &self.error.description);
        }
        let sealed = params.get("interaction").unwrap_or_default();
        let username = params.get("username").unwrap_or("");
        login_failed(
            provider,
            self.jar,
            continuing_to,
            sealed,
            username,
            &self.error,
        )
    }
}

/// Checks the login form's credentials and starts a session in place of the
/// browser's current one.
async fn sign_in(
    state: &AppState,
    jar: CookieJar,
    params: &Params,
    address: Option<&str>,
) -> Result<(CookieJar, Session, User), SignInFailed> {
    let provider = &state.provider;
    let username = params.get("username").unwrap_or("");
    let password = params.get("password").unwrap_or("");
    let user = match check_credentials(state, username, password, address).await {
        Ok(user) => user,
        Err(error) => {
            return Err(SignInFailed {
                jar,
                error,
                unavailable: false,
            });
        }
    };
    match provider.start_session(&user).await {
        Ok(new) => {
            let jar = replace_session(provider, jar).await;
            Ok((
                jar.add(session_cookie(provider, new.cookie)),
                new.session,
                user,
            ))
        }
        Err(error) => Err(SignInFailed {
            jar,
            error,
            unavailable: true,
        }),
    }
}

/// Checks a login form's credentials, within the address's budget of
/// sign-in attempts (`login_rate_limit`).
async fn check_credentials(
    state: &AppState,
    username: &str,
    password: &str,
    address: Option<&str>,
) -> Result<User, Error> {
    if let Err(limited) = crate::limits::take(state.limits.logins.as_ref(), address) {
        tessera_core::people::count_login("rate_limited");
        return Err(limited);
    }
    state
        .provider
        .authenticate_user(username, password, address)
        .await
}

/// A new login replaces the browser's session: the old one ends, with what it
/// granted (its online refresh tokens), whoever it belonged to.
pub async fn replace_session(provider: &Provider, jar: CookieJar) -> CookieJar {
    if let Some(cookie) = jar.get(session_cookie_name(provider))
        && let Err(e) = provider.end_session(cookie.value()).await
    {
        tracing::warn!(error = %e, "could not end the session replaced by a new login");
    }
    jar
}

/// The login page again after a failed attempt: the same words whichever part
/// was wrong, and 429 with `Retry-After` when attempts are throttled.
fn login_failed(
    provider: &Provider,
    jar: CookieJar,
    client_name: &str,
    interaction: &str,
    username: &str,
    error: &Error,
) -> Response {
    let (status, message) = match error.retry_after {
        Some(wait) if error.reason == Reason::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many sign-in attempts from your network. Wait {wait} seconds and try again."
            ),
        ),
        Some(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-in attempts. Wait {wait} seconds and try again."),
        ),
        None if error.code() == ErrorCode::InvalidGrant => (
            StatusCode::OK,
            "The username or password is not right.".to_owned(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is not possible right now. Try again shortly.".to_owned(),
        ),
    };
    let (jar, csrf) = csrf_token(provider, jar);
    let mut response = page(
        status,
        &LoginPage {
            client_name,
            error: Some(message),
            csrf: &csrf,
            interaction,
            username,
        },
    );
    if let Some(wait) = error.retry_after
        && let Ok(value) = HeaderValue::from_str(&wait.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    (jar, response).into_response()
}

/// `POST /consent`: records the decision and answers the client.
pub async fn consent(
    State(state): State<AppState>,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let provider = &state.provider;
    // The consent form takes only an interaction issued for the consent form,
    // to the session it was shown to.
    let Some((
        client,
        request,
        PageStep::Consent {
            sid,
            auth_time,
            fresh_login,
        },
    )) = interaction_of(provider, &params).await
    else {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    };
    let Some((session, user)) = current_session(provider, &jar).await else {
        let step = Ok(Step::Login);
        return continue_with(provider, jar, &client, &request, None, step, false, true).await;
    };
    if session.sid != sid || session.auth_time != auth_time {
        // Another login happened in this browser meanwhile: the decision was
        // not made by the person now signed in.
        return error_page(StatusCode::BAD_REQUEST, STALE);
    }
    if params.get("decision") != Some("approve") {
        let denied = provider.error_redirect(
            &request,
            tessera_core::Reason::AccessDenied,
            "the user denied the request",
        );
        trace_step(provider, &request, refusal(&denied));
        return authorize_error(denied, true);
    }
    // The login requirements again, as they stand now (prompt=login and
    // max_age are met only by the login that led to this page): a consent
    // form never skips a step-up.
    match provider
        .next_step(&request, Some((&session, &user)), fresh_login)
        .await
    {
        Ok(Step::Login) => {
            return continue_with(
                provider,
                jar,
                &client,
                &request,
                Some((session, user)),
                Ok(Step::Login),
                false,
                true,
            )
            .await;
        }
        Err(e) => {
            trace_step(provider, &request, refusal(&e));
            return authorize_error(e, true);
        }
        Ok(Step::Consent | Step::Respond) => {}
    }
    // Consent is remembered per user, client and scope: the union of what the
    // user approved before and now.
    let requested = Scope::parse(&request.scope).unwrap_or_default();
    let previous = provider
        .store()
        .consent(&user.id, &client.id)
        .await
        .ok()
        .flatten()
        .map(|c| c.scopes)
        .unwrap_or_default();
    let scopes = Scope::from_tokens(
        previous
            .iter()
            .chain(requested.iter())
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    );
    let saved = provider
        .store()
        .save_consent(&Consent {
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            scopes,
            granted_at: provider.clock().now(),
        })
        .await;
    if let Err(e) = saved {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, &Error::from(e).description);
    }
    continue_with(
        provider,
        jar,
        &client,
        &request,
        Some((session, user)),
        Ok(Step::Respond),
        fresh_login,
        true,
    )
    .await
}

/// Scopes described in words for the consent page.
pub fn describe_scopes(scope: &str) -> Vec<String> {
    Scope::parse(scope)
        .unwrap_or_default()
        .iter()
        .map(|s| match s {
            "openid" => "Sign you in with your account".to_owned(),
            "profile" => "See your name and username".to_owned(),
            "email" => "See your email address".to_owned(),
            "offline_access" => "Keep access when you are not using it".to_owned(),
            other => format!("Use the permission “{other}”"),
        })
        .collect()
}

/// `GET` and `POST /userinfo` (OIDC Core §5.3) with a bearer access token.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = super::bearer_token(&headers) else {
        // RFC 6750 §3.1: no token at all gets a bare challenge.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tessera\""),
        );
        return response;
    };
    match state.provider.userinfo(token).await {
        Ok(claims) => {
            let mut response = Json(claims).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => crate::oauth_error::bearer_error(&e),
    }
}

/// `GET /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0): with a valid
/// `id_token_hint` the session ends at once; without one the person confirms,
/// so that a third-party page cannot sign them out.
pub async fn logout_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let provider = &state.provider;
    let params = match Params::from_form(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.description),
    };
    let logout = match provider
        .logout_request(
            params.get("id_token_hint"),
            params.get("post_logout_redirect_uri"),
            params.get("state"),
            params.get("client_id"),
        )
        .await
    {
        Ok(logout) => logout,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.description),
    };
    // Without a hint, or with one for someone other than the signed-in person,
    // the person confirms (RP-Initiated Logout 1.0 §2).
    let session = current_session(provider, &jar).await;
    let hint_matches = match (&session, &logout.hint_subject) {
        (Some((session, _)), Some(subject)) => &session.user_id == subject,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if !hint_matches {
        let (jar, csrf) = csrf_token(provider, jar);
        return (jar, page(StatusCode::OK, &LogoutPage { csrf: &csrf })).into_response();
    }
    let jar = end_session(provider, jar).await;
    match logout.redirect {
        Some(url) => (jar, Redirect::to(&url)).into_response(),
        None => (jar, signed_out()).into_response(),
    }
}

/// `POST /oauth2/logout`: the confirmation form.
pub async fn logout_post(
    State(state): State<AppState>,
    jar: CookieJar,
    _csrf_checked: PageForm,
) -> Response {
    let provider = &state.provider;
    let jar = end_session(provider, jar).await;
    (jar, signed_out()).into_response()
}

async fn end_session(provider: &Provider, jar: CookieJar) -> CookieJar {
    if let Some(cookie) = jar.get(session_cookie_name(provider))
        && let Err(e) = provider.end_session(cookie.value()).await
    {
        tracing::warn!(error = %e, "could not delete the session");
    }
    jar.add(removal_cookie(provider))
}

fn signed_out() -> Response {
    page(
        StatusCode::OK,
        &MessagePage {
            title: "Signed out",
            message: "You are signed out.",
            is_error: false,
        },
    )
}

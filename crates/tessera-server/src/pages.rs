//! HTML pages: templates, their security headers, CSRF tokens, the session
//! cookie, sealed interactions and the delivery of authorization responses.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use tessera_core::Provider;
use tessera_core::authorize::{AuthorizationRequest, Redirect, ResponseMode};
use tessera_core::crypto::random_token;
use tessera_jose::{b64, b64_decode};

/// How long a person has to sign in and consent before the request must start over.
const INTERACTION_TTL: i64 = 600;

#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub error: Option<String>,
    pub csrf: &'a str,
    pub interaction: &'a str,
    pub username: &'a str,
}

#[derive(Debug, Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<String>,
    pub csrf: &'a str,
    pub interaction: &'a str,
}

#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub is_error: bool,
}

#[derive(Debug, Template)]
#[template(path = "device.html")]
pub struct DevicePage<'a> {
    pub error: Option<String>,
    pub csrf: &'a str,
    pub user_code: &'a str,
}

#[derive(Debug, Template)]
#[template(path = "device_confirm.html")]
pub struct DeviceConfirmPage<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub user_code: &'a str,
    pub scopes: Vec<String>,
    pub csrf: &'a str,
    pub interaction: &'a str,
}

#[derive(Debug, Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf: &'a str,
}

#[derive(Debug, Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    fields: &'a [(String, String)],
    nonce: &'a str,
}

/// Renders a page with the headers every HTML page carries: no framing
/// (clickjacking), no caching, no referrer, no script.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    render(status, template, "script-src 'none'")
}

/// A page that loads scripts from this server's `/assets` (the portal's copy
/// buttons); never inline script.
pub fn page_with_scripts(status: StatusCode, template: &impl Template) -> Response {
    render(status, template, "script-src 'self'")
}

fn render(status: StatusCode, template: &impl Template, script_src: &str) -> Response {
    let body = match template.render() {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (status, axum::response::Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self'; {script_src}; frame-ancestors 'none'; base-uri 'none'"
    )) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// An error page: for requests that must not be redirected (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        &MessagePage {
            title: "Something went wrong",
            message,
            is_error: true,
        },
    )
}

/// Sends an authorization response or error to the client (RFC 6749 §4.1.2,
/// §4.2.2; OAuth 2.0 Form Post Response Mode).
pub fn deliver(redirect: Redirect, after_post: bool) -> Response {
    // An error sent back to the client counts among the refusals, as the
    // token endpoint's do.
    let refusal = redirect.refusal.map(|reason| crate::metrics::Refusal {
        code: reason.code(),
        reason,
    });
    let mut response = send_back(redirect, after_post);
    if let Some(refusal) = refusal {
        response.extensions_mut().insert(refusal);
    }
    response
}

fn send_back(redirect: Redirect, after_post: bool) -> Response {
    let encoded = || {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(redirect.params.iter())
            .finish()
    };
    let location = match redirect.mode {
        ResponseMode::Query => {
            let joiner = if redirect.redirect_uri.contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{joiner}{}", redirect.redirect_uri, encoded())
        }
        ResponseMode::Fragment => format!("{}#{}", redirect.redirect_uri, encoded()),
        ResponseMode::FormPost => {
            let nonce = random_token();
            return render(
                StatusCode::OK,
                &FormPostPage {
                    action: &redirect.redirect_uri,
                    fields: &redirect.params,
                    nonce: &nonce,
                },
                &format!("script-src 'nonce-{nonce}'"),
            );
        }
    };
    // RFC 9700 §4.11: 303 after a POST, so the browser does not re-post the form.
    let status = if after_post {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    match HeaderValue::from_str(&location) {
        Ok(value) => (status, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI cannot be used."),
    }
}

/// The session cookie's name: `__Host-` (Secure, host-only, path /) whenever the
/// issuer is https; a plain name for http on a loopback host, where browsers
/// would drop a Secure cookie.
pub fn session_cookie_name(provider: &Provider) -> &'static str {
    if secure(provider) {
        "__Host-tessera_session"
    } else {
        "tessera_session"
    }
}

fn csrf_cookie_name(provider: &Provider) -> &'static str {
    if secure(provider) {
        "__Host-tessera_csrf"
    } else {
        "tessera_csrf"
    }
}

/// Whether cookies are marked Secure: the issuer is https.
pub fn secure(provider: &Provider) -> bool {
    provider.settings().issuer.starts_with("https://")
}

pub fn session_cookie(provider: &Provider, value: String) -> Cookie<'static> {
    Cookie::build((session_cookie_name(provider), value))
        .http_only(true)
        .secure(secure(provider))
        .same_site(SameSite::Lax)
        .path("/")
        .build()
}

pub fn removal_cookie(provider: &Provider) -> Cookie<'static> {
    let mut cookie = session_cookie(provider, String::new());
    cookie.make_removal();
    cookie
}

/// The CSRF token for a form: an HMAC of a random per-browser cookie (signed
/// double submit). Returns the jar with the cookie set if it was missing.
pub fn csrf_token(provider: &Provider, jar: CookieJar) -> (CookieJar, String) {
    let name = csrf_cookie_name(provider);
    let (jar, seed) = match jar.get(name) {
        Some(cookie) if cookie.value().len() == 43 => {
            let seed = cookie.value().to_owned();
            (jar, seed)
        }
        _ => {
            let seed = random_token();
            let cookie = Cookie::build((name, seed.clone()))
                .http_only(true)
                .secure(secure(provider))
                .same_site(SameSite::Lax)
                .path("/")
                .build();
            (jar.add(cookie), seed)
        }
    };
    let token = b64(provider.keys().kek().mac("csrf", seed.as_bytes()));
    (jar, token)
}

/// Whether the form's CSRF token belongs to this browser's cookie.
pub fn csrf_valid(provider: &Provider, jar: &CookieJar, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq as _;
    let (Some(cookie), Some(token)) = (jar.get(csrf_cookie_name(provider)), token) else {
        return false;
    };
    let expected = b64(provider.keys().kek().mac("csrf", cookie.value().as_bytes()));
    expected.as_bytes().ct_eq(token.as_bytes()).into()
}

/// What a person is in the middle of while they sign in or decide.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Interaction {
    /// An authorization request (code or implicit flow), at one step: each
    /// form accepts only the step it was issued for.
    Authorize {
        request: Box<AuthorizationRequest>,
        step: PageStep,
    },
    /// A device code entered on `/device` (RFC 8628 §3.3), at one step, as
    /// authorization interactions: the login form, or the confirmation shown
    /// to one login session.
    Device { user_code: String, step: DeviceStep },
    /// Signing in to the developer portal, then back to this portal page.
    Portal { return_to: String },
}

/// The page a device interaction was issued for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub enum DeviceStep {
    Login,
    /// The confirmation page, shown to this session only.
    Confirm {
        sid: String,
    },
}

/// Seals an interaction for the login, consent and device forms: encrypted and
/// authenticated, so it can be neither read nor altered in the browser, and any
/// instance sharing the key-encryption key can continue it.
pub fn seal(provider: &Provider, interaction: &Interaction) -> String {
    let expires = provider.clock().now() + INTERACTION_TTL;
    let payload = serde_json::json!({"exp": expires, "interaction": interaction}).to_string();
    b64(provider
        .keys()
        .kek()
        .seal("interaction", payload.as_bytes()))
}

/// The page an authorization interaction was issued for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub enum PageStep {
    /// The login form.
    Login,
    /// The consent form, shown to one login session. `fresh_login`: it came
    /// straight from the login form, which satisfied `prompt=login` or
    /// `max_age` for this session (and only for it).
    Consent {
        sid: String,
        auth_time: i64,
        fresh_login: bool,
    },
}

pub fn seal_interaction(
    provider: &Provider,
    request: &AuthorizationRequest,
    step: PageStep,
) -> String {
    seal(
        provider,
        &Interaction::Authorize {
            request: Box::new(request.clone()),
            step,
        },
    )
}

pub fn open(provider: &Provider, sealed: &str) -> Option<Interaction> {
    let bytes = provider
        .keys()
        .kek()
        .open("interaction", &b64_decode(sealed).ok()?)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if value["exp"].as_i64()? < provider.clock().now() {
        return None;
    }
    serde_json::from_value(value["interaction"].clone()).ok()
}

/// The browser's CSRF cookie value: a stable per-browser identifier, used to
/// count wrong device codes per browser.
pub fn browser_id(provider: &Provider, jar: &CookieJar) -> Option<String> {
    jar.get(csrf_cookie_name(provider))
        .map(|c| c.value().to_owned())
}

//! The device authorization grant's HTTP side (RFC 8628): the device
//! authorization endpoint and the `/device` pages where a person enters the
//! code, signs in if needed, and approves or denies.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use tessera_core::Provider;
use tessera_core::device::display_user_code;
use tessera_core::params::Params;
use tessera_core::store::ClientStore as _;
use tessera_core::store::{Session, User};

use super::people::{STALE, current_session, describe_scopes};
use super::{ClientAddress, Form, PageForm, authorization};
use crate::app::AppState;
use crate::oauth_error::OAuthError;
use crate::pages::{
    DeviceConfirmPage, DevicePage, DeviceStep, Interaction, LoginPage, MessagePage, browser_id,
    csrf_token, error_page, open, page, seal,
};

/// `POST /oauth2/device/code` (RFC 8628 §3.1).
pub async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response, OAuthError> {
    let response = state
        .provider
        .device_authorization(authorization(&headers), &params)
        .await?;
    let mut response = Json(response).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /device[?user_code=…]`: the code-entry page (`verification_uri`, or
/// `verification_uri_complete` with the code filled in).
pub async fn entry(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_form(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let (jar, csrf) = csrf_token(&state.provider, jar);
    let code = params.get("user_code").unwrap_or("");
    (
        jar,
        page(
            StatusCode::OK,
            &DevicePage {
                error: None,
                csrf: &csrf,
                user_code: code,
            },
        ),
    )
        .into_response()
}

/// `POST /device`: checks the code (rate limited), then asks the person to sign
/// in or to confirm.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let provider = &state.provider;
    let typed = params.get("user_code").unwrap_or("");
    let keys = tessera_core::device::throttle_keys(
        browser_id(provider, &jar).as_deref(),
        address.as_deref(),
    );
    let again = |jar: CookieJar, status: StatusCode, message: String, retry_after: Option<i64>| {
        let (jar, csrf) = csrf_token(provider, jar);
        let mut response = page(
            status,
            &DevicePage {
                error: Some(message),
                csrf: &csrf,
                user_code: typed,
            },
        );
        if let Some(wait) = retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        (jar, response).into_response()
    };
    let found = match crate::limits::take(state.limits.device_entries.as_ref(), address.as_deref())
    {
        Ok(()) => provider.find_device(typed, &keys).await,
        Err(limited) => Err(limited),
    };
    let (device, client) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return again(
                jar,
                StatusCode::OK,
                "That code is not valid or has expired. Check the code on your device.".into(),
                None,
            );
        }
        Err(e) => {
            return match e.retry_after {
                Some(wait) if e.reason == tessera_core::error::Reason::RateLimited => again(
                    jar,
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many codes entered from your network. Wait {wait} seconds and try again."
                    ),
                    Some(wait),
                ),
                Some(wait) => again(
                    jar,
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many wrong codes. Wait {} minutes and try again.",
                        (wait + 59) / 60
                    ),
                    Some(wait),
                ),
                None => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.description),
            };
        }
    };
    match current_session(provider, &jar).await {
        Some((session, user)) => {
            confirmation(provider, jar, &device.user_code, &session, &user).await
        }
        None => {
            let interaction = seal(
                provider,
                &Interaction::Device {
                    user_code: device.user_code.clone(),
                    step: DeviceStep::Login,
                },
            );
            let (jar, csrf) = csrf_token(provider, jar);
            (
                jar,
                page(
                    StatusCode::OK,
                    &LoginPage {
                        client_name: &client.name,
                        error: None,
                        csrf: &csrf,
                        interaction: &interaction,
                        username: "",
                    },
                ),
            )
                .into_response()
        }
    }
}

/// The confirmation page: which application asks for what, for which code.
pub async fn confirmation(
    provider: &Provider,
    jar: CookieJar,
    user_code: &str,
    session: &Session,
    user: &User,
) -> Response {
    let now = provider.clock().now();
    let pending = provider
        .store()
        .pending_device(user_code, now)
        .await
        .ok()
        .flatten();
    let Some(device) = pending else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "That code has expired or was already used. Start again on your device.",
        );
    };
    let client_name = match provider.catalog().client(&device.client_id).await {
        Ok(Some(client)) => client.name,
        _ => return error_page(StatusCode::BAD_REQUEST, STALE),
    };
    let interaction = seal(
        provider,
        &Interaction::Device {
            user_code: device.user_code.clone(),
            step: DeviceStep::Confirm {
                sid: session.sid.clone(),
            },
        },
    );
    let (jar, csrf) = csrf_token(provider, jar);
    (
        jar,
        page(
            StatusCode::OK,
            &DeviceConfirmPage {
                client_name: &client_name,
                username: &user.username,
                user_code: &display_user_code(&device.user_code),
                scopes: describe_scopes(&device.scope.to_string()),
                csrf: &csrf,
                interaction: &interaction,
            },
        ),
    )
        .into_response()
}

/// `POST /device/decision`: the signed-in person approves or denies.
pub async fn decision(
    State(state): State<AppState>,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let provider = &state.provider;
    // Only a confirmation page's interaction, and only for the session it
    // was shown to: not the login form's, nor one shown to someone who has
    // since been replaced in this browser.
    let Some(Interaction::Device {
        user_code,
        step: DeviceStep::Confirm { sid },
    }) = params.get("interaction").and_then(|i| open(provider, i))
    else {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    };
    let Some((session, user)) = current_session(provider, &jar).await else {
        return error_page(
            StatusCode::FORBIDDEN,
            "You are not signed in any more. Enter the code again.",
        );
    };
    if session.sid != sid {
        return error_page(StatusCode::BAD_REQUEST, STALE);
    }
    let approve = params.get("decision") == Some("approve");
    match provider
        .decide_device(&user_code, &user, session.auth_time, approve)
        .await
    {
        Ok(true) => page(
            StatusCode::OK,
            &MessagePage {
                title: if approve {
                    "Device connected"
                } else {
                    "Request denied"
                },
                message: if approve {
                    "You can return to your device; it will continue on its own."
                } else {
                    "The device was not given access. You can close this page."
                },
                is_error: false,
            },
        ),
        Ok(false) => error_page(
            StatusCode::BAD_REQUEST,
            "That code has expired or was already used. Start again on your device.",
        ),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.description),
    }
}

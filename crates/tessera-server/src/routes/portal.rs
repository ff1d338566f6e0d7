//! The developer portal (`/portal`): a signed-in person registers
//! applications, sees each one's ready-to-run requests and recent trace,
//! changes, rotates and deletes them, and inspects tokens.
//!
//! Every page takes the login session of the rest of the server. Who may do
//! what is [`tessera_core::portal`]'s decision; every change goes through
//! [`tessera_core::client_admin`], the functions the CLI calls, so the portal
//! cannot make a client the CLI would refuse.
//!
//! A new secret is shown once: the handler that makes it seals it into a
//! short-lived cookie for the next page only, which removes the cookie as it
//! shows the secret. A reload shows it no more; the server keeps its digest.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use tessera_core::Provider;
use tessera_core::client_admin::{self, ClientChanges, ManageError, NewClient};
use tessera_core::model::{Client, ClientKind, GrantType};
use tessera_core::params::Params;
use tessera_core::registration::{RegistrationError, RegistrationErrorKind};
use tessera_core::scope::Scope;
use tessera_core::store::{Session, User};
use tessera_core::trace::{KEEP_PER_CLIENT, TraceOutcome};
use tessera_jose::{b64, b64_decode};

use super::PageForm;
use super::people::current_session;
use crate::app::AppState;
use crate::pages::{Interaction, LoginPage, csrf_token, error_page, page_with_scripts, seal};

/// Where the portal lives; a sign-in started here returns only below it.
pub const PORTAL_PATH: &str = "/portal";

/// How long a sealed new secret waits for the page that shows it.
const REVEAL_TTL: i64 = 120;

/// The grants the registration form offers, in its order.
const FORM_GRANTS: [(GrantType, &str); 5] = [
    (GrantType::AuthorizationCode, "Authorization code"),
    (GrantType::RefreshToken, "Refresh token"),
    (GrantType::ClientCredentials, "Client credentials"),
    (GrantType::DeviceCode, "Device"),
    (GrantType::TokenExchange, "Token exchange"),
];

const KINDS: [(&str, &str); 5] = [
    ("web", "Web application (server-side, keeps a secret)"),
    ("spa", "Single-page application (in the browser)"),
    ("native", "Native application (desktop or mobile)"),
    ("service", "Service (acts on its own behalf)"),
    ("device", "Device (TV, CLI: no browser)"),
];

/// The signed-in person, if the portal is theirs to use; otherwise the
/// response to send: the sign-in page, or a refusal.
async fn portal_user(
    state: &AppState,
    jar: CookieJar,
    return_to: &str,
) -> Result<(CookieJar, Session, User), Response> {
    let provider = &state.provider;
    let Some((session, user)) = current_session(provider, &jar).await else {
        return Err(sign_in_page(provider, jar, return_to));
    };
    if !tessera_core::portal::may_use(&user, provider.settings().portal_access) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "The developer portal is for developers. Ask an administrator for the developer role.",
        ));
    }
    Ok((jar, session, user))
}

/// The login form, continuing to `return_to` afterwards.
fn sign_in_page(provider: &Provider, jar: CookieJar, return_to: &str) -> Response {
    let interaction = seal(
        provider,
        &Interaction::Portal {
            return_to: return_to.to_owned(),
        },
    );
    let (jar, csrf) = csrf_token(provider, jar);
    (
        jar,
        crate::pages::page(
            StatusCode::OK,
            &LoginPage {
                client_name: "the developer portal",
                error: None,
                csrf: &csrf,
                interaction: &interaction,
                username: "",
            },
        ),
    )
        .into_response()
}

/// Where a portal sign-in may return to: a portal page, nothing else (no
/// open redirect through the login form).
pub fn safe_return_to(path: &str) -> &str {
    let below_portal = path == PORTAL_PATH
        || path
            .strip_prefix(PORTAL_PATH)
            .is_some_and(|rest| rest.starts_with('/'));
    let printable = path.bytes().all(|b| b.is_ascii_graphic());
    if below_portal && printable && !path.contains("//") && !path.contains('\\') {
        path
    } else {
        PORTAL_PATH
    }
}

/// A client as the portal lists and shows it.
struct AppSummary {
    id: String,
    name: String,
    kind: &'static str,
    client_type: &'static str,
    grants: String,
    has_secret: bool,
}

impl AppSummary {
    fn of(client: &Client) -> Self {
        AppSummary {
            id: client.id.clone(),
            name: client.name.clone(),
            kind: match client.metadata.kind {
                Some(ClientKind::Web) => "web application",
                Some(ClientKind::Spa) => "single-page application",
                Some(ClientKind::Native) => "native application",
                Some(ClientKind::Service) => "service",
                Some(ClientKind::Device) => "device",
                None => "application",
            },
            client_type: if client.is_public() {
                "public client (no secret)"
            } else {
                "confidential client"
            },
            grants: client
                .grants
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            has_secret: client.secret_digest.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage<'a> {
    username: &'a str,
    admin: bool,
    apps: Vec<AppSummary>,
}

/// `GET /portal`: the person's applications (an admin's: all of them).
pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, _, user) = match portal_user(&state, jar, PORTAL_PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let clients = match state.provider.store().clients().await {
        Ok(clients) => clients,
        Err(e) => return unavailable(&e),
    };
    let apps = clients
        .iter()
        .filter(|c| tessera_core::portal::may_manage(&user, c))
        .map(AppSummary::of)
        .collect();
    let page = HomePage {
        username: &user.username,
        admin: user.roles.admin,
        apps,
    };
    (jar, page_with_scripts(StatusCode::OK, &page)).into_response()
}

/// The registration form's values, as typed.
#[derive(Default)]
struct FormValues {
    name: String,
    kind: String,
    redirect_uris: String,
    grants: Vec<String>,
    scope: String,
    audiences: String,
}

impl FormValues {
    fn read(params: &Params) -> Self {
        FormValues {
            name: params.get("name").unwrap_or_default().trim().to_owned(),
            kind: params.get("kind").unwrap_or("web").to_owned(),
            redirect_uris: params.get("redirect_uris").unwrap_or_default().to_owned(),
            // One field per grant (`grant:NAME`): a form's fields are never
            // repeated here, as at the OAuth endpoints.
            grants: FORM_GRANTS
                .iter()
                .map(|(g, _)| g.as_str())
                .filter(|g| params.get(&format!("grant:{g}")).is_some())
                .map(str::to_owned)
                .collect(),
            scope: params.get("scope").unwrap_or_default().trim().to_owned(),
            audiences: params
                .get("audiences")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }

    fn of(client: &Client) -> Self {
        FormValues {
            name: client.name.clone(),
            kind: client
                .metadata
                .kind
                .map_or("web", ClientKind::as_str)
                .to_owned(),
            redirect_uris: client.redirect_uris.join("\n"),
            grants: client
                .grants
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scope: client.scopes.to_string(),
            audiences: client.audiences.join(" "),
        }
    }

    fn redirect_uri_list(&self) -> Vec<String> {
        self.redirect_uris
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn audience_list(&self) -> Vec<String> {
        self.audiences
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// What is wrong with an application's name, if anything.
fn name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("Give the application a name.".into())
    } else if name.chars().count() > 200 {
        Some("The name has at most 200 characters.".into())
    } else {
        None
    }
}

/// Messages shown next to the fields they are about.
#[derive(Default)]
struct FieldErrors {
    general: Option<String>,
    name: Option<String>,
    redirect_uris: Option<String>,
    grants: Option<String>,
    scope: Option<String>,
    audiences: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.general.is_some()
            || self.name.is_some()
            || self.redirect_uris.is_some()
            || self.grants.is_some()
            || self.scope.is_some()
            || self.audiences.is_some()
    }

    /// Puts a refusal by the registration rules next to its field.
    fn place(&mut self, error: RegistrationError) {
        let message = error.message;
        if error.kind == RegistrationErrorKind::InvalidRedirectUri {
            self.redirect_uris = Some(message);
        } else if message.contains("audience") {
            self.audiences = Some(message);
        } else if message.contains("scope") {
            self.scope = Some(message);
        } else if message.contains("grant") {
            self.grants = Some(message);
        } else {
            self.general = Some(message);
        }
    }
}

#[derive(Template)]
#[template(path = "portal_new.html")]
struct NewPage<'a> {
    username: &'a str,
    admin: bool,
    csrf: &'a str,
    form: FormValues,
    errors: FieldErrors,
    kinds: &'static [(&'static str, &'static str)],
    grants: Vec<(&'static str, &'static str, bool)>,
}

fn new_page(
    provider: &Provider,
    jar: CookieJar,
    user: &User,
    status: StatusCode,
    form: FormValues,
    errors: FieldErrors,
) -> Response {
    let (jar, csrf) = csrf_token(provider, jar);
    let grants = FORM_GRANTS
        .iter()
        .map(|(grant, label)| {
            (
                grant.as_str(),
                *label,
                form.grants.iter().any(|g| g == grant.as_str()),
            )
        })
        .collect();
    let page = NewPage {
        username: &user.username,
        admin: user.roles.admin,
        csrf: &csrf,
        form,
        errors,
        kinds: &KINDS,
        grants,
    };
    (jar, page_with_scripts(status, &page)).into_response()
}

/// `GET /portal/apps/new`: the registration form.
pub async fn new_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, _, user) = match portal_user(&state, jar, "/portal/apps/new").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let form = FormValues {
        kind: "web".into(),
        scope: "openid profile".into(),
        ..FormValues::default()
    };
    new_page(
        &state.provider,
        jar,
        &user,
        StatusCode::OK,
        form,
        FieldErrors::default(),
    )
}

/// `POST /portal/apps`: registers the application and shows it with its
/// secret, once.
pub async fn create(
    State(state): State<AppState>,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let (jar, session, user) = match portal_user(&state, jar, "/portal/apps/new").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    let form = FormValues::read(&params);
    let mut errors = FieldErrors {
        name: name_error(&form.name),
        ..FieldErrors::default()
    };
    let kind = match form.kind.parse::<ClientKind>() {
        Ok(kind) => kind,
        Err(e) => {
            errors.general = Some(e.to_string());
            ClientKind::Web
        }
    };
    let grants: Vec<GrantType> = FORM_GRANTS
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| form.grants.iter().any(|name| name == g.as_str()))
        .collect();
    let scopes = match Scope::parse(&form.scope) {
        Ok(scopes) => scopes,
        Err(e) => {
            errors.scope = Some(e.description.into_owned());
            Scope::default()
        }
    };
    let audiences = form.audience_list();
    let effective_grants = if grants.is_empty() {
        kind.default_grants()
    } else {
        grants.clone()
    };
    if let Err(e) = tessera_core::portal::check_grants(&user, &effective_grants) {
        errors.grants = Some(e.message);
    }
    if let Err(e) = tessera_core::portal::check_audiences(&user, &audiences) {
        errors.audiences = Some(e.message);
    }
    let owned = match provider.store().clients().await {
        Ok(clients) => clients
            .iter()
            .filter(|c| c.metadata.owner.as_deref() == Some(user.id.as_str()))
            .count(),
        Err(e) => return unavailable(&e),
    };
    if let Err(e) = tessera_core::portal::check_quota(&user, owned) {
        errors.general = Some(e.message);
    }
    if errors.any() {
        return new_page(provider, jar, &user, StatusCode::BAD_REQUEST, form, errors);
    }
    let new = NewClient {
        kind: Some(kind),
        grants,
        redirect_uris: form.redirect_uri_list(),
        scopes,
        audiences,
        owner: Some(user.id.clone()),
        ..NewClient::named(form.name.clone())
    };
    let created = client_admin::create(provider.catalog(), new, provider.clock().now(), || {
        Ok::<_, String>(provider.keys().kek())
    })
    .await;
    match created {
        Ok(created) => {
            tracing::info!(client_id = %created.client.id, owner = %user.id, "client registered in the portal");
            let jar = match &created.secret {
                Some(secret) => reveal_later(
                    provider,
                    jar,
                    &session.sid,
                    &created.client.id,
                    &secret.secret,
                ),
                None => jar,
            };
            (jar, see_other_app(&created.client.id)).into_response()
        }
        Err(ManageError::Invalid(e)) => {
            errors.place(e);
            new_page(provider, jar, &user, StatusCode::BAD_REQUEST, form, errors)
        }
        Err(e) => manage_failed(&e),
    }
}

/// One row of the trace as the page shows it.
struct TraceRow {
    when: String,
    arrow: &'static str,
    flow: Option<String>,
    scope: Option<String>,
    /// The address a token request came from.
    from: Option<String>,
    refused: bool,
    error: String,
    reason: String,
    description: String,
}

#[derive(Template)]
#[template(path = "portal_app.html")]
struct AppPage<'a> {
    username: &'a str,
    admin: bool,
    csrf: &'a str,
    app: AppSummary,
    owner: Option<String>,
    secret: Option<String>,
    notice: Option<&'a str>,
    form: FormValues,
    errors: FieldErrors,
    ready: Vec<tessera_core::try_it::ReadyGrant>,
    trace: Vec<TraceRow>,
    trace_keep: usize,
}

/// The client, if this person may manage it; otherwise the same "not found"
/// whether it exists or not.
async fn managed_client(provider: &Provider, user: &User, id: &str) -> Result<Client, Response> {
    match provider.store().client(id).await {
        Ok(Some(client)) if tessera_core::portal::may_manage(user, &client) => Ok(client),
        Ok(_) => Err(error_page(
            StatusCode::NOT_FOUND,
            "There is no such application among yours.",
        )),
        Err(e) => Err(unavailable(&e)),
    }
}

/// The signed-in person and the application `id`, if they may manage it.
async fn app_of(
    state: &AppState,
    jar: CookieJar,
    id: &str,
    return_to: &str,
) -> Result<(CookieJar, Session, User, Client), Response> {
    let (jar, session, user) = portal_user(state, jar, return_to).await?;
    let client = managed_client(&state.provider, &user, id).await?;
    Ok((jar, session, user, client))
}

#[allow(clippy::too_many_arguments)]
async fn app_page(
    provider: &Provider,
    jar: CookieJar,
    user: &User,
    session: &Session,
    client: &Client,
    status: StatusCode,
    form: FormValues,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Response {
    let (jar, secret) = take_revealed(provider, jar, &session.sid, client);
    if let Err(e) = provider.flush_trace().await {
        tracing::warn!(error = %e, "could not write trace events");
    }
    let trace = match provider.store().trace(&client.id, KEEP_PER_CLIENT).await {
        Ok(events) => events,
        Err(e) => return unavailable(&e),
    };
    let now = provider.clock().now();
    let trace = trace
        .into_iter()
        .map(|event| {
            let (refused, error, reason, description) = match event.step.outcome {
                TraceOutcome::Done { detail } => (false, String::new(), String::new(), detail),
                TraceOutcome::Refused {
                    error,
                    reason,
                    description,
                } => (true, error, reason, description),
            };
            TraceRow {
                when: format!(
                    "{} ({})",
                    tessera_core::clock::rfc3339(event.at),
                    // Never "in 0s" for an event of this very second.
                    tessera_core::clock::relative((event.at - now).min(-1))
                ),
                arrow: event.step.endpoint.arrow(),
                flow: event.step.flow,
                scope: event.step.scope,
                from: event.step.from,
                refused,
                error,
                reason,
                description,
            }
        })
        .collect();
    let owner = match (&client.metadata.owner, user.roles.admin) {
        (Some(owner), true) if *owner != user.id => Some(
            provider
                .store()
                .user(owner)
                .await
                .ok()
                .flatten()
                .map_or_else(|| owner.clone(), |u| u.username),
        ),
        (None, true) => Some("(made outside the portal)".to_owned()),
        _ => None,
    };
    let (jar, csrf) = csrf_token(provider, jar);
    let page = AppPage {
        username: &user.username,
        admin: user.roles.admin,
        csrf: &csrf,
        app: AppSummary::of(client),
        owner,
        secret,
        notice,
        form,
        errors,
        ready: tessera_core::try_it::ready_requests(client, &provider.settings().issuer),
        trace,
        trace_keep: KEEP_PER_CLIENT,
    };
    (jar, page_with_scripts(status, &page)).into_response()
}

/// `GET /portal/apps/{id}`: the application, its try-it requests and trace.
pub async fn show(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    let return_to = format!("/portal/apps/{}", urlencoding(&id));
    let (jar, session, user, client) = match app_of(&state, jar, &id, &return_to).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    let form = FormValues::of(&client);
    app_page(
        provider,
        jar,
        &user,
        &session,
        &client,
        StatusCode::OK,
        form,
        FieldErrors::default(),
        None,
    )
    .await
}

/// `POST /portal/apps/{id}`: changes the name, redirect URIs, scopes and
/// audiences, by the same rules as a new registration.
pub async fn update(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    PageForm(params): PageForm,
) -> Response {
    let (jar, session, user, client) = match app_of(&state, jar, &id, PORTAL_PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    let form = FormValues::read(&params);
    let mut errors = FieldErrors {
        name: name_error(&form.name),
        ..FieldErrors::default()
    };
    let scopes = match Scope::parse(&form.scope) {
        Ok(scopes) => Some(scopes),
        Err(e) => {
            errors.scope = Some(e.description.into_owned());
            None
        }
    };
    let audiences = form.audience_list();
    // Audiences already granted (by an admin) may stay; new ones need the role.
    let added: Vec<String> = audiences
        .iter()
        .filter(|a| !client.audiences.contains(a))
        .cloned()
        .collect();
    if let Err(e) = tessera_core::portal::check_audiences(&user, &added) {
        errors.audiences = Some(e.message);
    }
    if !errors.any() {
        let changes = ClientChanges {
            name: Some(form.name.clone()),
            redirect_uris: Some(form.redirect_uri_list()),
            scopes,
            audiences: Some(audiences),
            ..ClientChanges::default()
        };
        match client_admin::update(provider.catalog(), &client.id, changes, || {
            Ok::<_, String>(provider.keys().kek())
        })
        .await
        {
            Ok(updated) => {
                return app_page(
                    provider,
                    jar,
                    &user,
                    &session,
                    &updated.client,
                    StatusCode::OK,
                    FormValues::of(&updated.client),
                    FieldErrors::default(),
                    Some(if updated.changed {
                        "Saved."
                    } else {
                        "Nothing changed."
                    }),
                )
                .await;
            }
            Err(ManageError::Invalid(e)) => errors.place(e),
            Err(e) => return manage_failed(&e),
        }
    }
    app_page(
        provider,
        jar,
        &user,
        &session,
        &client,
        StatusCode::BAD_REQUEST,
        form,
        errors,
        None,
    )
    .await
}

/// `POST /portal/apps/{id}/rotate`: a new secret, shown once; the old one
/// stops working.
pub async fn rotate(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    _csrf_checked: PageForm,
) -> Response {
    let (jar, session, user, client) = match app_of(&state, jar, &id, PORTAL_PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    match client_admin::rotate_secret(provider.catalog(), &client.id, || {
        Ok::<_, String>(provider.keys().kek())
    })
    .await
    {
        Ok(secret) => {
            tracing::info!(client_id = %client.id, by = %user.id, "client secret rotated in the portal");
            let jar = reveal_later(provider, jar, &session.sid, &client.id, &secret.secret);
            (jar, see_other_app(&client.id)).into_response()
        }
        Err(e) => manage_failed(&e),
    }
}

/// `POST /portal/apps/{id}/delete`: ends the application and what it was
/// issued.
pub async fn delete(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    PageForm(params): PageForm,
) -> Response {
    let (jar, session, user, client) = match app_of(&state, jar, &id, PORTAL_PATH).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    if params.get("confirm") != Some("yes") {
        let form = FormValues::of(&client);
        let errors = FieldErrors {
            general: Some("Tick the box to confirm the deletion.".into()),
            ..FieldErrors::default()
        };
        return app_page(
            provider,
            jar,
            &user,
            &session,
            &client,
            StatusCode::BAD_REQUEST,
            form,
            errors,
            None,
        )
        .await;
    }
    match client_admin::delete(provider.catalog(), &client.id).await {
        Ok(()) => {
            tracing::info!(client_id = %client.id, by = %user.id, "client deleted in the portal");
            (jar, Redirect::to(PORTAL_PATH)).into_response()
        }
        Err(e) => manage_failed(&e),
    }
}

/// One claim as the inspector shows it.
struct ClaimRow {
    name: String,
    value: String,
    meaning: &'static str,
    note: String,
    bad: bool,
}

struct InspectResult {
    valid: bool,
    problems: Vec<String>,
    format: &'static str,
    header: Option<String>,
    signature: String,
    claims: Vec<ClaimRow>,
}

#[derive(Template)]
#[template(path = "portal_inspect.html")]
struct InspectPage<'a> {
    username: &'a str,
    admin: bool,
    csrf: &'a str,
    error: Option<String>,
    result: Option<InspectResult>,
}

fn inspect_page(
    provider: &Provider,
    jar: CookieJar,
    user: &User,
    error: Option<String>,
    result: Option<InspectResult>,
) -> Response {
    let (jar, csrf) = csrf_token(provider, jar);
    let page = InspectPage {
        username: &user.username,
        admin: user.roles.admin,
        csrf: &csrf,
        error,
        result,
    };
    (jar, page_with_scripts(StatusCode::OK, &page)).into_response()
}

/// `GET /portal/inspect`: the token inspector.
pub async fn inspect_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    match portal_user(&state, jar, "/portal/inspect").await {
        Ok((jar, _, user)) => inspect_page(&state.provider, jar, &user, None, None),
        Err(response) => response,
    }
}

/// `POST /portal/inspect`: decodes and verifies a pasted token (posted, so
/// that it stays out of URLs and logs), with `tessera token inspect`'s logic.
pub async fn inspect(
    State(state): State<AppState>,
    jar: CookieJar,
    PageForm(params): PageForm,
) -> Response {
    let (jar, _, user) = match portal_user(&state, jar, "/portal/inspect").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provider = &state.provider;
    let token = params.get("token").unwrap_or_default();
    let inspection = match provider.inspect_token(token).await {
        Ok(inspection) => inspection,
        Err(e) => return inspect_page(provider, jar, &user, Some(e.to_string()), None),
    };
    // A reference token's claims are the server's to keep: shown only to whoever
    // manages its client, as introspection would only tell its resource.
    if inspection.format == "reference" {
        let client_id = inspection
            .claims
            .get("client_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let manages = matches!(
            provider.store().client(client_id).await,
            Ok(Some(client)) if tessera_core::portal::may_manage(&user, &client)
        );
        if !manages {
            let unknown = tessera_core::inspect::InspectError::UnknownReference.to_string();
            return inspect_page(provider, jar, &user, Some(unknown), None);
        }
    }
    let result = InspectResult {
        valid: inspection.valid,
        problems: inspection.problems,
        format: if inspection.format == "jwt" {
            "JWT (RFC 9068 access token, ID token or refresh token)"
        } else {
            "reference token"
        },
        header: (!inspection.header.is_null()).then(|| inspection.header.to_string()),
        signature: inspection.signature.to_string(),
        claims: inspection
            .explanation
            .into_iter()
            .map(|c| ClaimRow {
                value: match &c.value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                name: c.name,
                meaning: c.meaning,
                note: c.note,
                bad: c.ok == Some(false),
            })
            .collect(),
    };
    inspect_page(provider, jar, &user, None, Some(result))
}

/// The cookie that carries a new secret to the one page that shows it.
fn reveal_cookie_name(provider: &Provider) -> &'static str {
    if crate::pages::secure(provider) {
        "__Secure-tessera_reveal"
    } else {
        "tessera_reveal"
    }
}

/// Seals a new secret for the next page of this client only.
fn reveal_later(
    provider: &Provider,
    jar: CookieJar,
    sid: &str,
    client_id: &str,
    secret: &str,
) -> CookieJar {
    let payload = serde_json::json!({
        "sid": sid,
        "client_id": client_id,
        "secret": secret,
        "exp": provider.clock().now() + REVEAL_TTL,
    })
    .to_string();
    let sealed = b64(provider
        .keys()
        .kek()
        .seal("portal-reveal", payload.as_bytes()));
    let cookie = Cookie::build((reveal_cookie_name(provider), sealed))
        .http_only(true)
        .secure(crate::pages::secure(provider))
        .same_site(SameSite::Strict)
        .path(PORTAL_PATH)
        .build();
    jar.add(cookie)
}

/// The secret sealed for this client's page, if any, and the jar without it:
/// whatever the cookie held, it is removed, so a reload shows nothing. A
/// secret that is no longer the client's (rotated again meanwhile, from
/// another tab or the CLI) is not shown: it would not work.
fn take_revealed(
    provider: &Provider,
    jar: CookieJar,
    sid: &str,
    client: &Client,
) -> (CookieJar, Option<String>) {
    let client_id = client.id.as_str();
    let name = reveal_cookie_name(provider);
    let Some(cookie) = jar.get(name) else {
        return (jar, None);
    };
    let secret = b64_decode(cookie.value())
        .ok()
        .and_then(|sealed| provider.keys().kek().open("portal-reveal", &sealed).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(|v| v["client_id"].as_str() == Some(client_id))
        // Only in the login session that made it: not to whoever signs in
        // next in this browser.
        .filter(|v| v["sid"].as_str() == Some(sid))
        .filter(|v| {
            v["exp"]
                .as_i64()
                .is_some_and(|exp| exp >= provider.clock().now())
        })
        .and_then(|v| v["secret"].as_str().map(str::to_owned))
        .filter(|secret| client.secret_digest.is_some_and(|d| d.matches(secret)));
    let removal = Cookie::build((name, ""))
        .http_only(true)
        .secure(crate::pages::secure(provider))
        .same_site(SameSite::Strict)
        .path(PORTAL_PATH)
        .removal()
        .build();
    (jar.add(removal), secret)
}

fn see_other_app(id: &str) -> Response {
    let location = format!("/portal/apps/{}", urlencoding(id));
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => Redirect::to(PORTAL_PATH).into_response(),
    }
}

/// A client ID as one path segment.
fn urlencoding(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn manage_failed(error: &ManageError) -> Response {
    match error {
        ManageError::NotFound(_) | ManageError::NoSecret(_) => {
            error_page(StatusCode::NOT_FOUND, &error.to_string())
        }
        ManageError::Conflict(_) | ManageError::Invalid(_) => {
            error_page(StatusCode::BAD_REQUEST, &error.to_string())
        }
        ManageError::Kek(_) | ManageError::Store(_) => {
            tracing::error!(error = %error, "portal change failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The change could not be made right now. Try again shortly.",
            )
        }
    }
}

fn unavailable(error: &tessera_core::store::StoreError) -> Response {
    tracing::error!(error = %error, "portal page failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The portal cannot reach its database right now. Try again shortly.",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_sign_in_returns_only_to_the_portal() {
        assert_eq!(safe_return_to("/portal"), "/portal");
        assert_eq!(safe_return_to("/portal/apps/abc"), "/portal/apps/abc");
        for outside in [
            "https://evil.example/portal",
            "//evil.example/portal",
            "/portal//evil.example",
            "/portalx",
            "/oauth2/token",
            "/portal/\\evil",
            "/portal/a\r\nLocation: x",
            "",
        ] {
            assert_eq!(safe_return_to(outside), "/portal", "{outside:?}");
        }
    }
}

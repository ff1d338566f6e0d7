//! The admin API (`/admin/...`): JSON over HTTP for what the CLI does, so
//! that operators can automate it. Every request carries an admin token
//! (`tessera admin-token create`) as a bearer token; the token is stored as
//! a digest and accepted for this API only (an initial access token or any
//! other credential is refused). Changes go through the core functions the
//! CLI calls (`client_admin`, `user_admin`, the key manager), so neither can
//! do what the other would refuse.
//!
//! The OpenAPI document (`/openapi.json`) is generated from the handlers and
//! types below by utoipa.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use tessera_core::client_admin::{self, ClientChanges, ClientKeys, ManageError, NewClient};
use tessera_core::crypto::SecretDigest;
use tessera_core::model::{AcceptedTokens, Resource};
use tessera_core::model::{
    Client, ClientAuthMethod, ClientKind, GrantType, IntrospectionPolicy, TokenFormat,
};
use tessera_core::registration::parse_client_jwks;
use tessera_core::resources::{ResourceChange, ResourceError, ResourceSettings, SavedResource};
use tessera_core::scope::Scope;
use tessera_core::store::{
    Roles, SamlIdp, StoreError, TokenPurpose, TrustStore as _, TrustedIssuer, User,
};
use tessera_core::trust::{IssuerKeys, new_saml_idp, new_trusted_issuer};
use tessera_core::user_admin::{self, UserAdminError};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera admin API",
        description = "What the `tessera` CLI does, over HTTP. Authenticate with an admin token \
                       from `tessera admin-token create` as a bearer token."
    ),
    modifiers(&AdminTokenScheme),
    security(("admin_token" = [])),
    tags(
        (name = "clients", description = "OAuth clients"),
        (name = "users", description = "People who sign in"),
        (name = "keys", description = "Signing keys"),
        (name = "resources", description = "APIs that tokens are for"),
        (name = "trust", description = "Trusted JWT issuers and SAML identity providers")
    )
)]
struct AdminApi;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The admin routes and their OpenAPI document.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(AdminApi::openapi())
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, update_client, delete_client))
        .routes(routes!(rotate_client_secret))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(set_user_roles))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(list_resources, create_resource))
        .routes(routes!(get_resource, update_resource))
        .routes(routes!(rotate_resource_secret))
        .routes(routes!(list_issuers, add_issuer))
        .routes(routes!(remove_issuer))
        .routes(routes!(list_saml_idps, add_saml_idp))
        .routes(routes!(remove_saml_idp))
        .split_for_parts()
}

// ---------------------------------------------------------------------------
// Authentication and errors
// ---------------------------------------------------------------------------

/// An admin API request whose bearer token is a live admin token.
#[derive(Debug)]
pub struct AdminToken;

impl FromRequestParts<AppState> for AdminToken {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        // RFC 6750 §3.1: no credentials at all get a bare challenge.
        let Some(token) = super::bearer_token(&parts.headers) else {
            return Err(AdminError {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_token",
                description: "this API needs an admin token (`tessera admin-token create`) as a \
                              bearer token"
                    .into(),
                challenge: Some("Bearer realm=\"tessera-admin\""),
            });
        };
        let provider = &state.provider;
        let found = provider
            .store()
            .operator_token(TokenPurpose::Admin, &SecretDigest::of(token))
            .await?;
        match found {
            Some(found) if found.expires_at.is_none_or(|t| t > provider.clock().now()) => {
                // Every change is logged with the token that made it (the
                // route, never the body: it may carry a password).
                if parts.method != axum::http::Method::GET {
                    tracing::info!(
                        admin_token = %found.id,
                        method = %parts.method,
                        path = %parts.uri.path(),
                        "admin API change"
                    );
                }
                Ok(AdminToken)
            }
            _ => Err(AdminError {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_token",
                description: "the admin token is invalid, expired or revoked".into(),
                challenge: Some("Bearer realm=\"tessera-admin\", error=\"invalid_token\""),
            }),
        }
    }
}

/// An error answer: `{"error": ..., "error_description": ...}`.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    error: &'static str,
    description: String,
    challenge: Option<&'static str>,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    /// `invalid_token`, `invalid_request`, `not_found`, `conflict` or
    /// `temporarily_unavailable`.
    error: &'static str,
    error_description: String,
}

impl AdminError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        AdminError {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    fn invalid(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "admin API request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the database cannot be reached; try again shortly",
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.error,
                error_description: self.description,
            }),
        )
            .into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The store failed: 503, the details in the log only.
impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        AdminError::unavailable(&error)
    }
}

/// `204` when something was removed, else `404` saying what was missing.
fn removed_or(removed: bool, missing: impl FnOnce() -> String) -> Result<Response, AdminError> {
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            missing(),
        ))
    }
}

impl From<ManageError> for AdminError {
    fn from(error: ManageError) -> Self {
        match error {
            ManageError::NotFound(_) | ManageError::NoSecret(_) => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            ManageError::Conflict(_) => {
                AdminError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            ManageError::Invalid(e) => {
                AdminError::new(StatusCode::BAD_REQUEST, e.kind.as_str(), e.message)
            }
            ManageError::Kek(_) | ManageError::Store(_) => AdminError::unavailable(&error),
        }
    }
}

impl From<UserAdminError> for AdminError {
    fn from(error: UserAdminError) -> Self {
        match error {
            UserAdminError::Invalid(message) => AdminError::invalid(message),
            UserAdminError::Taken(_) => {
                AdminError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            UserAdminError::NotFound(_) => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            UserAdminError::Hashing(_) | UserAdminError::Store(_) => {
                AdminError::unavailable(&error)
            }
        }
    }
}

/// A JSON body, bounded by the route's limit; anything unreadable is a 400
/// in the API's error format, never the framework's own rejection.
#[derive(Debug)]
pub struct AdminJson<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S>
    for AdminJson<T>
{
    type Rejection = AdminError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AdminError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AdminJson(value)),
            Err(rejection) => Err(AdminError::invalid(rejection.body_text())),
        }
    }
}

/// For fields that may be set, reset to the default with `null`, or left
/// out: `Some(None)` is an explicit `null`.
fn set_or_reset<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse<T: std::str::FromStr>(value: &str) -> Result<T, AdminError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| AdminError::invalid(e.to_string()))
}

fn parse_all<T: std::str::FromStr>(values: &[String]) -> Result<Vec<T>, AdminError>
where
    T::Err: std::fmt::Display,
{
    values.iter().map(|v| parse(v)).collect()
}

fn parse_scope(text: &str) -> Result<Scope, AdminError> {
    Scope::parse(text).map_err(|e| AdminError::invalid(e.description))
}

fn parse_jwks(value: &serde_json::Value) -> Result<tessera_jose::JwkSet, AdminError> {
    parse_client_jwks(value.to_string().as_bytes()).map_err(|e| AdminError::invalid(e.message))
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// A client as the API (and `tessera client show --json`) shows it:
/// everything but its secret, of which only a digest is kept.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientView {
    client_id: String,
    name: String,
    /// `public` or `confidential`.
    #[serde(rename = "type")]
    client_type: &'static str,
    /// The method it authenticates with; for a confidential client without
    /// one, both secret methods.
    auth_method: &'static str,
    grants: Vec<&'static str>,
    redirect_uris: Vec<String>,
    scope: String,
    audiences: Vec<String>,
    token_format: Option<&'static str>,
    access_token_ttl: Option<i64>,
    require_pkce: bool,
    id_token_alg: Option<&'static str>,
    post_logout_redirect_uris: Vec<String>,
    introspection: &'static str,
    /// Its public keys (private_key_jwt), as registered.
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    impersonation: bool,
    serves: Vec<String>,
    kind: Option<&'static str>,
    registered_dynamically: bool,
    /// The user who registered it in the portal.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// RFC 3339.
    created_at: String,
}

impl From<&Client> for ClientView {
    fn from(client: &Client) -> Self {
        ClientView {
            client_id: client.id.clone(),
            name: client.name.clone(),
            client_type: if client.is_public() {
                "public"
            } else {
                "confidential"
            },
            auth_method: match (client.is_public(), client.auth_method) {
                (true, _) => "none",
                (false, Some(m)) => m.as_str(),
                (false, None) => "client_secret_basic client_secret_post",
            },
            grants: client.grants.iter().map(|g| g.as_str()).collect(),
            redirect_uris: client.redirect_uris.clone(),
            scope: client.scopes.to_string(),
            audiences: client.audiences.clone(),
            token_format: client.token_format.map(TokenFormat::as_str),
            access_token_ttl: client.access_token_ttl,
            require_pkce: client.require_pkce || client.is_public(),
            id_token_alg: client.id_token_alg.map(|a| a.as_str()),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            introspection: client.introspection.as_str(),
            jwks: client
                .jwks
                .as_ref()
                .and_then(|set| serde_json::to_value(set).ok()),
            jwks_uri: client.jwks_uri.clone(),
            impersonation: client.metadata.impersonation,
            serves: client.metadata.serves.clone(),
            kind: client.metadata.kind.map(ClientKind::as_str),
            registered_dynamically: client.metadata.registration.is_some(),
            owner: client.metadata.owner.clone(),
            created_at: tessera_core::clock::rfc3339(client.created_at),
        }
    }
}

/// A client to create; what is left out takes the defaults of its kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewClientRequest {
    name: String,
    /// Chosen by the server when left out.
    client_id: Option<String>,
    /// `web`, `spa`, `native`, `service` or `device`.
    kind: Option<String>,
    #[serde(default)]
    public: bool,
    /// `client_secret_basic`, `client_secret_post`, `client_secret_jwt`,
    /// `private_key_jwt` or `none`.
    auth_method: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Space-separated.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    audiences: Vec<String>,
    /// `jwt` or `reference`.
    token_format: Option<String>,
    access_token_ttl: Option<i64>,
    /// `own` (default) or `any`.
    introspection: Option<String>,
    #[serde(default = "yes")]
    require_pkce: bool,
    id_token_alg: Option<String>,
    /// A JWK Set of public keys, for private_key_jwt.
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    #[serde(default)]
    impersonation: bool,
    #[serde(default)]
    serves: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A client just made, with its secret: shown once, only its digest is kept.
#[derive(Serialize, ToSchema)]
struct CreatedClient {
    client: ClientView,
    client_secret: Option<String>,
}

/// Changes to a client: members left out stay as they are; `null` returns a
/// setting to the server's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClientPatch {
    name: Option<String>,
    grants: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    scope: Option<String>,
    audiences: Option<Vec<String>>,
    serves: Option<Vec<String>>,
    impersonation: Option<bool>,
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<String>, nullable)]
    token_format: Option<Option<String>>,
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<i64>, nullable)]
    access_token_ttl: Option<Option<i64>>,
    /// `null`: either secret method.
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<String>, nullable)]
    auth_method: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    introspection: Option<String>,
    require_pkce: Option<bool>,
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<String>, nullable)]
    id_token_alg: Option<Option<String>>,
}

/// A client after a change, with the secret made if its new authentication
/// method needed one.
#[derive(Serialize, ToSchema)]
struct UpdatedClient {
    client: ClientView,
    changed: bool,
    client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct NewSecretView {
    client_id: String,
    /// Shown once; only its digest is kept.
    client_secret: String,
}

/// The key-encryption key, for the secrets that must be sealed.
fn kek_of<'a>(
    state: &'a AppState,
) -> impl FnOnce() -> Result<&'a tessera_core::crypto::KeyEncryptionKey, String> {
    || Ok(state.provider.keys().kek())
}

/// List clients.
#[utoipa::path(get, path = "/admin/clients", tag = "clients",
    responses((status = 200, body = [ClientView]), (status = 401, body = ErrorBody)))]
async fn list_clients(
    _: AdminToken,
    State(state): State<AppState>,
) -> Result<Response, AdminError> {
    let clients = state.provider.store().clients().await?;
    let views: Vec<ClientView> = clients.iter().map(ClientView::from).collect();
    Ok(Json(views).into_response())
}

/// Create a client, by the rules of `tessera client create`.
#[utoipa::path(post, path = "/admin/clients", tag = "clients", request_body = NewClientRequest,
    responses((status = 201, body = CreatedClient), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_client(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<NewClientRequest>,
) -> Result<Response, AdminError> {
    let new = NewClient {
        id: request.client_id,
        kind: request
            .kind
            .as_deref()
            .map(parse::<ClientKind>)
            .transpose()?,
        public: request.public,
        auth_method: request
            .auth_method
            .as_deref()
            .map(parse::<ClientAuthMethod>)
            .transpose()?,
        grants: parse_all::<GrantType>(&request.grants)?,
        redirect_uris: request.redirect_uris,
        post_logout_redirect_uris: request.post_logout_redirect_uris,
        scopes: parse_scope(&request.scope)?,
        audiences: request.audiences,
        token_format: request
            .token_format
            .as_deref()
            .map(parse::<TokenFormat>)
            .transpose()?,
        access_token_ttl: request.access_token_ttl,
        introspection: match request.introspection.as_deref() {
            Some(policy) => parse::<IntrospectionPolicy>(policy)?,
            None => IntrospectionPolicy::Own,
        },
        require_pkce: request.require_pkce,
        id_token_alg: request
            .id_token_alg
            .as_deref()
            .map(parse::<tessera_jose::Algorithm>)
            .transpose()?,
        jwks: request.jwks.as_ref().map(parse_jwks).transpose()?,
        jwks_uri: request.jwks_uri,
        impersonation: request.impersonation,
        serves: request.serves,
        ..NewClient::named(request.name)
    };
    let provider = &state.provider;
    let created = client_admin::create(
        provider.catalog(),
        new,
        provider.clock().now(),
        kek_of(&state),
    )
    .await?;
    tracing::info!(client_id = %created.client.id, "client created through the admin API");
    let body = CreatedClient {
        client: ClientView::from(&created.client),
        client_secret: created.secret.map(|s| s.secret),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Show a client.
#[utoipa::path(get, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_client(
    _: AdminToken,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, AdminError> {
    let client = state
        .provider
        .store()
        .client(&client_id)
        .await?
        .ok_or_else(|| ManageError::NotFound(client_id.clone()))?;
    Ok(Json(ClientView::from(&client)).into_response())
}

/// Change a client, by the rules of `tessera client update`: the result is
/// checked as a new client would be, before anything is written.
#[utoipa::path(patch, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)), request_body = ClientPatch,
    responses((status = 200, body = UpdatedClient), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_client(
    _: AdminToken,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    AdminJson(patch): AdminJson<ClientPatch>,
) -> Result<Response, AdminError> {
    if patch.jwks.is_some() && patch.jwks_uri.is_some() {
        return Err(AdminError::invalid("give jwks or jwks_uri, not both"));
    }
    let keys = match (&patch.jwks, patch.jwks_uri) {
        (Some(jwks), _) => Some(ClientKeys::Jwks(parse_jwks(jwks)?)),
        (None, Some(uri)) => Some(ClientKeys::JwksUri(uri)),
        (None, None) => None,
    };
    let changes = ClientChanges {
        name: patch.name,
        grants: patch
            .grants
            .as_deref()
            .map(parse_all::<GrantType>)
            .transpose()?,
        redirect_uris: patch.redirect_uris,
        post_logout_redirect_uris: patch.post_logout_redirect_uris,
        scopes: patch.scope.as_deref().map(parse_scope).transpose()?,
        audiences: patch.audiences,
        serves: patch.serves,
        impersonation: patch.impersonation,
        token_format: patch
            .token_format
            .map(|f| f.as_deref().map(parse::<TokenFormat>).transpose())
            .transpose()?,
        access_token_ttl: patch.access_token_ttl,
        auth_method: patch
            .auth_method
            .map(|m| m.as_deref().map(parse::<ClientAuthMethod>).transpose())
            .transpose()?,
        keys,
        introspection: patch
            .introspection
            .as_deref()
            .map(parse::<IntrospectionPolicy>)
            .transpose()?,
        require_pkce: patch.require_pkce,
        id_token_alg: patch
            .id_token_alg
            .map(|a| {
                a.as_deref()
                    .map(parse::<tessera_jose::Algorithm>)
                    .transpose()
            })
            .transpose()?,
    };
    let updated = client_admin::update(
        state.provider.catalog(),
        &client_id,
        changes,
        kek_of(&state),
    )
    .await?;
    Ok(Json(UpdatedClient {
        client: ClientView::from(&updated.client),
        changed: updated.changed,
        client_secret: updated.secret.map(|s| s.secret),
    })
    .into_response())
}

/// Delete a client with its consents, codes, refresh tokens and reference
/// tokens.
#[utoipa::path(delete, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_client(
    _: AdminToken,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, AdminError> {
    client_admin::delete(state.provider.catalog(), &client_id).await?;
    tracing::info!(client_id = %client_id, "client deleted through the admin API");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Give a client a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/admin/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 200, body = NewSecretView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn rotate_client_secret(
    _: AdminToken,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, AdminError> {
    let secret =
        client_admin::rotate_secret(state.provider.catalog(), &client_id, kek_of(&state)).await?;
    Ok(Json(NewSecretView {
        client_id,
        client_secret: secret.secret,
    })
    .into_response())
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// A user as the API (and `tessera user list --json`) shows them: never
/// their password hash.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    /// The subject identifier.
    sub: String,
    username: String,
    email: Option<String>,
    name: Option<String>,
    developer: bool,
    admin: bool,
    /// RFC 3339.
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            sub: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            developer: user.roles.developer,
            admin: user.roles.admin,
            created_at: tessera_core::clock::rfc3339(user.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUserRequest {
    username: String,
    email: Option<String>,
    name: Option<String>,
    /// At least 8 characters; hashed with argon2id, never kept.
    password: String,
    #[serde(default)]
    developer: bool,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RolesRequest {
    developer: Option<bool>,
    admin: Option<bool>,
}

/// List users.
#[utoipa::path(get, path = "/admin/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 401, body = ErrorBody)))]
async fn list_users(_: AdminToken, State(state): State<AppState>) -> Result<Response, AdminError> {
    let users = state.provider.store().users().await?;
    Ok(Json(users.iter().map(UserView::from).collect::<Vec<_>>()).into_response())
}

/// Create a user, by the rules of `tessera user create`.
#[utoipa::path(post, path = "/admin/users", tag = "users", request_body = NewUserRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<NewUserRequest>,
) -> Result<Response, AdminError> {
    let user = user_admin::create(
        state.provider.store(),
        user_admin::NewUser {
            username: request.username,
            email: request.email,
            name: request.name,
            password: request.password,
            roles: Roles {
                developer: request.developer,
                admin: request.admin,
            },
        },
        state.provider.clock().now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

async fn find_user(state: &AppState, sub: &str) -> Result<User, AdminError> {
    state
        .provider
        .store()
        .user(sub)
        .await?
        .ok_or_else(|| UserAdminError::NotFound(sub.to_owned()).into())
}

/// Show a user.
#[utoipa::path(get, path = "/admin/users/{sub}", tag = "users",
    params(("sub" = String, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_user(
    _: AdminToken,
    State(state): State<AppState>,
    Path(sub): Path<String>,
) -> Result<Response, AdminError> {
    Ok(Json(UserView::from(&find_user(&state, &sub).await?)).into_response())
}

/// Delete a user with their sessions, consents, codes and refresh tokens.
#[utoipa::path(delete, path = "/admin/users/{sub}", tag = "users",
    params(("sub" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user(
    _: AdminToken,
    State(state): State<AppState>,
    Path(sub): Path<String>,
) -> Result<Response, AdminError> {
    user_admin::delete(state.provider.store(), &sub).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Change a user's roles (developer: the portal when it is for developers;
/// admin: every client in the portal). Roles left out stay as they are.
#[utoipa::path(put, path = "/admin/users/{sub}/roles", tag = "users",
    params(("sub" = String, Path)), request_body = RolesRequest,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_user_roles(
    _: AdminToken,
    State(state): State<AppState>,
    Path(sub): Path<String>,
    AdminJson(request): AdminJson<RolesRequest>,
) -> Result<Response, AdminError> {
    let current = find_user(&state, &sub).await?.roles;
    let roles = Roles {
        developer: request.developer.unwrap_or(current.developer),
        admin: request.admin.unwrap_or(current.admin),
    };
    let user = user_admin::set_roles(state.provider.store(), &sub, roles).await?;
    Ok(Json(UserView::from(&user)).into_response())
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
struct KeyView {
    kid: String,
    alg: &'static str,
    /// `next` (published, not yet signing), `active`, `retired` (published,
    /// no longer signing) or `unpublished`.
    status: &'static str,
    created_at: i64,
    activates_at: i64,
    retires_at: Option<i64>,
    unpublished_at: Option<i64>,
}

/// List signing keys, as `tessera keys list` does.
#[utoipa::path(get, path = "/admin/keys", tag = "keys",
    responses((status = 200, body = [KeyView]), (status = 401, body = ErrorBody)))]
async fn list_keys(_: AdminToken, State(state): State<AppState>) -> Result<Response, AdminError> {
    let provider = &state.provider;
    let now = provider.clock().now();
    let ttl = provider.settings().max_token_ttl;
    let ring = provider.keys().ring();
    let keys: Vec<KeyView> = ring
        .keys()
        .iter()
        .map(|k| KeyView {
            kid: k.kid().to_owned(),
            alg: k.alg().as_str(),
            status: k.status(now, ttl).as_str(),
            created_at: k.created_at,
            activates_at: k.activates_at,
            retires_at: k.superseded_at,
            unpublished_at: k.superseded_at.map(|t| t + ttl),
        })
        .collect();
    Ok(Json(keys).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// The algorithm; the configured `signing_alg` when left out.
    alg: Option<String>,
    /// Sign with the new key at once instead of after pre-publication (for a
    /// compromised key; verifiers that cached the old key set refuse its
    /// tokens until they fetch again).
    #[serde(default)]
    now: bool,
}

#[derive(Serialize, ToSchema)]
struct RotatedKey {
    kid: String,
    alg: &'static str,
    activates_at: i64,
}

/// Publish a new signing key, as `tessera keys rotate` does.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "keys", request_body = RotateRequest,
    responses((status = 200, body = RotatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn rotate_keys(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<RotateRequest>,
) -> Result<Response, AdminError> {
    let provider = &state.provider;
    let alg = match request.alg.as_deref() {
        Some(name) => {
            let alg: tessera_jose::Algorithm = parse(name)?;
            if alg.is_symmetric() {
                return Err(AdminError::invalid(
                    "HS256 keys are per-resource shared secrets, not signing keys",
                ));
            }
            alg
        }
        None => provider.settings().signing_alg,
    };
    let key = provider
        .keys()
        .rotate(
            provider.store(),
            alg,
            request.now,
            provider.settings(),
            provider.clock(),
        )
        .await
        .map_err(|e| AdminError::unavailable(&e))?;
    tracing::info!(kid = %key.kid, "signing key rotated through the admin API");
    Ok(Json(RotatedKey {
        kid: key.kid,
        alg: key.alg.as_str(),
        activates_at: key.activates_at,
    })
    .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// Revoke even the only key that signs its algorithm, or one whose
    /// successor does not sign yet.
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, ToSchema)]
struct RevokedKeyView {
    kid: String,
    alg: &'static str,
    was_signing: bool,
    /// The key that signs its algorithm now; `null`: none, until a rotation.
    signing_now: Option<String>,
}

/// Withdraw a key at once, after a compromise, as `tessera keys revoke` does:
/// it leaves the JWKS and its tokens are refused here.
#[utoipa::path(post, path = "/admin/keys/{kid}/revoke", tag = "keys",
    params(("kid" = String, Path)), request_body = RevokeRequest,
    responses((status = 200, body = RevokedKeyView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_key(
    _: AdminToken,
    State(state): State<AppState>,
    Path(kid): Path<String>,
    AdminJson(request): AdminJson<RevokeRequest>,
) -> Result<Response, AdminError> {
    use tessera_core::keys::KeyError;
    let provider = &state.provider;
    let revoked = provider
        .keys()
        .revoke(provider.store(), &kid, request.force, provider.clock())
        .await
        .map_err(|e| match e {
            KeyError::NotFound(_) => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            KeyError::AlreadyRevoked(_)
            | KeyError::OnlySigningKey { .. }
            | KeyError::SuccessorPending { .. } => {
                AdminError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => AdminError::unavailable(&other),
        })?;
    tracing::warn!(kid = %revoked.kid, "signing key revoked through the admin API");
    Ok(Json(RevokedKeyView {
        kid: revoked.kid,
        alg: revoked.alg.as_str(),
        was_signing: revoked.was_signing,
        signing_now: revoked.signing_now,
    })
    .into_response())
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

/// A resource as the API shows it: the `kid` of its shared secret, never
/// the secret.
#[derive(Serialize, ToSchema)]
struct ResourceView {
    audience: String,
    scope: String,
    token_format: Option<&'static str>,
    /// `user`, `app` or `both`.
    accepts: &'static str,
    signing_alg: Option<&'static str>,
    secret_kid: Option<String>,
}

impl From<&Resource> for ResourceView {
    fn from(resource: &Resource) -> Self {
        ResourceView {
            audience: resource.audience.clone(),
            scope: resource.scopes.to_string(),
            token_format: resource.token_format.map(TokenFormat::as_str),
            accepts: resource.accepts.as_str(),
            signing_alg: resource.signing_alg.map(|a| a.as_str()),
            secret_kid: resource.secret_kid(),
        }
    }
}

/// What a registration, change or rotation of a resource did.
#[derive(Serialize, ToSchema)]
struct SavedResourceView {
    resource: ResourceView,
    changed: bool,
    /// A new HS256 shared secret: shown once, stored sealed.
    shared_secret: Option<String>,
    /// The `kid` of a signing key made for the resource's algorithm.
    new_signing_key: Option<String>,
    /// The `kid` of a shared secret the change dropped.
    retired_secret_kid: Option<String>,
}

impl From<SavedResource> for SavedResourceView {
    fn from(saved: SavedResource) -> Self {
        SavedResourceView {
            resource: ResourceView::from(&saved.resource),
            changed: saved.changed,
            shared_secret: saved.secret.map(|s| s.value),
            new_signing_key: saved.new_key.map(|k| k.kid),
            retired_secret_kid: saved.dropped_secret,
        }
    }
}

impl From<ResourceError> for AdminError {
    fn from(error: ResourceError) -> Self {
        match error {
            ResourceError::Invalid(message) => AdminError::invalid(message),
            ResourceError::Exists(_) | ResourceError::Concurrent(_) => {
                AdminError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            ResourceError::NotFound(_) | ResourceError::NoSecret { .. } => {
                AdminError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            ResourceError::NoSigningKey { .. } => {
                AdminError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            ResourceError::Key(_) | ResourceError::Store(_) => AdminError::unavailable(&error),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewResourceRequest {
    /// The API's identifier, the `aud` of its tokens (an absolute URI).
    audience: String,
    /// The scopes it defines, space-separated.
    #[serde(default)]
    scope: String,
    /// `jwt` or `reference`.
    token_format: Option<String>,
    /// `user`, `app` or `both` (default).
    accepts: Option<String>,
    /// `ES256`, `RS256`, `PS256`, `EdDSA` or `HS256` (a shared secret).
    signing_alg: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResourcePatch {
    scope: Option<String>,
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<String>, nullable)]
    token_format: Option<Option<String>>,
    accepts: Option<String>,
    #[serde(default, deserialize_with = "set_or_reset")]
    #[schema(value_type = Option<String>, nullable)]
    signing_alg: Option<Option<String>>,
}

/// List resources.
#[utoipa::path(get, path = "/admin/resources", tag = "resources",
    responses((status = 200, body = [ResourceView]), (status = 401, body = ErrorBody)))]
async fn list_resources(
    _: AdminToken,
    State(state): State<AppState>,
) -> Result<Response, AdminError> {
    let resources = state.provider.store().resources().await?;
    Ok(Json(resources.iter().map(ResourceView::from).collect::<Vec<_>>()).into_response())
}

/// Register a resource, as `tessera resource create` does.
#[utoipa::path(post, path = "/admin/resources", tag = "resources",
    request_body = NewResourceRequest,
    responses((status = 201, body = SavedResourceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_resource(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<NewResourceRequest>,
) -> Result<Response, AdminError> {
    let settings = ResourceSettings {
        scopes: parse_scope(&request.scope)?,
        token_format: request
            .token_format
            .as_deref()
            .map(parse::<TokenFormat>)
            .transpose()?,
        accepts: match request.accepts.as_deref() {
            Some(accepts) => parse::<AcceptedTokens>(accepts)?,
            None => AcceptedTokens::Both,
        },
        signing_alg: request
            .signing_alg
            .as_deref()
            .map(parse::<tessera_jose::Algorithm>)
            .transpose()?,
    };
    let saved = state
        .provider
        .create_resource(&request.audience, settings)
        .await?;
    Ok((StatusCode::CREATED, Json(SavedResourceView::from(saved))).into_response())
}

/// Show a resource. The audience is one path segment, percent-encoded.
#[utoipa::path(get, path = "/admin/resources/{audience}", tag = "resources",
    params(("audience" = String, Path)),
    responses((status = 200, body = ResourceView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_resource(
    _: AdminToken,
    State(state): State<AppState>,
    Path(audience): Path<String>,
) -> Result<Response, AdminError> {
    let resource = state
        .provider
        .store()
        .resource(&audience)
        .await?
        .ok_or(ResourceError::NotFound(audience))?;
    Ok(Json(ResourceView::from(&resource)).into_response())
}

/// Change a resource, as `tessera resource update` does.
#[utoipa::path(patch, path = "/admin/resources/{audience}", tag = "resources",
    params(("audience" = String, Path)), request_body = ResourcePatch,
    responses((status = 200, body = SavedResourceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_resource(
    _: AdminToken,
    State(state): State<AppState>,
    Path(audience): Path<String>,
    AdminJson(patch): AdminJson<ResourcePatch>,
) -> Result<Response, AdminError> {
    let change = ResourceChange {
        scopes: patch.scope.as_deref().map(parse_scope).transpose()?,
        token_format: patch
            .token_format
            .map(|f| f.as_deref().map(parse::<TokenFormat>).transpose())
            .transpose()?,
        accepts: patch
            .accepts
            .as_deref()
            .map(parse::<AcceptedTokens>)
            .transpose()?,
        signing_alg: patch
            .signing_alg
            .map(|a| {
                a.as_deref()
                    .map(parse::<tessera_jose::Algorithm>)
                    .transpose()
            })
            .transpose()?,
    };
    let saved = state.provider.update_resource(&audience, change).await?;
    Ok(Json(SavedResourceView::from(saved)).into_response())
}

/// A new shared secret for an HS256 resource; the old one stops working.
#[utoipa::path(post, path = "/admin/resources/{audience}/secret", tag = "resources",
    params(("audience" = String, Path)),
    responses((status = 200, body = SavedResourceView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn rotate_resource_secret(
    _: AdminToken,
    State(state): State<AppState>,
    Path(audience): Path<String>,
) -> Result<Response, AdminError> {
    let saved = state.provider.rotate_resource_secret(&audience).await?;
    Ok(Json(SavedResourceView::from(saved)).into_response())
}

// ---------------------------------------------------------------------------
// Trusted issuers and SAML identity providers
// ---------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
struct IssuerView {
    issuer: String,
    jwks_uri: Option<String>,
    /// The `kid`s of its keys registered inline.
    key_ids: Option<Vec<Option<String>>>,
    /// RFC 3339.
    created_at: String,
}

impl From<&TrustedIssuer> for IssuerView {
    fn from(issuer: &TrustedIssuer) -> Self {
        IssuerView {
            issuer: issuer.issuer.clone(),
            jwks_uri: issuer.jwks_uri.clone(),
            key_ids: issuer
                .jwks
                .as_ref()
                .map(|set| set.keys.iter().map(|k| k.kid.clone()).collect()),
            created_at: tessera_core::clock::rfc3339(issuer.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewIssuerRequest {
    /// The `iss` of its JWTs, compared exactly.
    issuer: String,
    /// Its public keys, as a JWK Set...
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    /// ...or where it publishes them.
    jwks_uri: Option<String>,
}

fn trust_error(error: tessera_core::registration::RegistrationError) -> AdminError {
    AdminError::invalid(error.message)
}

fn trust_conflict(error: StoreError, what: String) -> AdminError {
    match error {
        StoreError::Conflict(_) => AdminError::new(StatusCode::CONFLICT, "conflict", what),
        other => AdminError::unavailable(&other),
    }
}

/// List trusted JWT issuers (for JWT bearer assertions and token exchange).
#[utoipa::path(get, path = "/admin/issuers", tag = "trust",
    responses((status = 200, body = [IssuerView]), (status = 401, body = ErrorBody)))]
async fn list_issuers(
    _: AdminToken,
    State(state): State<AppState>,
) -> Result<Response, AdminError> {
    let issuers = state.provider.store().trusted_issuers().await?;
    Ok(Json(issuers.iter().map(IssuerView::from).collect::<Vec<_>>()).into_response())
}

/// Trust an issuer, as `tessera issuer add` does.
#[utoipa::path(post, path = "/admin/issuers", tag = "trust", request_body = NewIssuerRequest,
    responses((status = 201, body = IssuerView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_issuer(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<NewIssuerRequest>,
) -> Result<Response, AdminError> {
    let provider = &state.provider;
    let inline;
    let keys = match (&request.jwks, &request.jwks_uri) {
        (Some(jwks), None) => {
            inline = jwks.to_string();
            IssuerKeys::Inline(inline.as_bytes())
        }
        (None, Some(uri)) => IssuerKeys::Uri(uri),
        _ => return Err(AdminError::invalid("give exactly one of jwks and jwks_uri")),
    };
    let trusted = new_trusted_issuer(
        &provider.settings().issuer,
        &request.issuer,
        keys,
        provider.clock().now(),
    )
    .map_err(trust_error)?;
    provider
        .catalog()
        .insert_trusted_issuer(&trusted)
        .await
        .map_err(|e| {
            trust_conflict(e, format!("issuer {:?} is trusted already", request.issuer))
        })?;
    Ok((StatusCode::CREATED, Json(IssuerView::from(&trusted))).into_response())
}

/// Stop trusting an issuer. The issuer is one path segment, percent-encoded.
#[utoipa::path(delete, path = "/admin/issuers/{issuer}", tag = "trust",
    params(("issuer" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_issuer(
    _: AdminToken,
    State(state): State<AppState>,
    Path(issuer): Path<String>,
) -> Result<Response, AdminError> {
    let removed = state
        .provider
        .catalog()
        .delete_trusted_issuer(&issuer)
        .await?;
    removed_or(removed, || format!("issuer {issuer:?} is not trusted"))
}

#[derive(Serialize, ToSchema)]
struct SamlIdpView {
    entity_id: String,
    /// The algorithm of the certificate's key.
    key_algorithm: &'static str,
    /// RFC 3339.
    created_at: String,
}

impl From<&SamlIdp> for SamlIdpView {
    fn from(idp: &SamlIdp) -> Self {
        SamlIdpView {
            entity_id: idp.entity_id.clone(),
            key_algorithm: tessera_core::saml::IdpCertificate::from_pem(&idp.certificate_pem)
                .map(|c| c.key_algorithm())
                .unwrap_or("unusable"),
            created_at: tessera_core::clock::rfc3339(idp.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSamlIdpRequest {
    /// Its entity ID: the `Issuer` of its assertions.
    entity_id: String,
    /// The certificate it signs assertions with, PEM.
    certificate_pem: String,
}

/// List trusted SAML identity providers (for the SAML 2.0 bearer grant).
#[utoipa::path(get, path = "/admin/saml-idps", tag = "trust",
    responses((status = 200, body = [SamlIdpView]), (status = 401, body = ErrorBody)))]
async fn list_saml_idps(
    _: AdminToken,
    State(state): State<AppState>,
) -> Result<Response, AdminError> {
    let idps = state.provider.store().saml_idps().await?;
    Ok(Json(idps.iter().map(SamlIdpView::from).collect::<Vec<_>>()).into_response())
}

/// Trust a SAML identity provider, as `tessera saml-idp add` does.
#[utoipa::path(post, path = "/admin/saml-idps", tag = "trust", request_body = NewSamlIdpRequest,
    responses((status = 201, body = SamlIdpView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_saml_idp(
    _: AdminToken,
    State(state): State<AppState>,
    AdminJson(request): AdminJson<NewSamlIdpRequest>,
) -> Result<Response, AdminError> {
    let provider = &state.provider;
    let idp = new_saml_idp(
        &request.entity_id,
        &request.certificate_pem,
        provider.clock().now(),
    )
    .map_err(trust_error)?;
    provider
        .catalog()
        .insert_saml_idp(&idp)
        .await
        .map_err(|e| {
            trust_conflict(
                e,
                format!(
                    "identity provider {:?} is configured already",
                    request.entity_id
                ),
            )
        })?;
    Ok((StatusCode::CREATED, Json(SamlIdpView::from(&idp))).into_response())
}

/// Stop trusting a SAML identity provider. The entity ID is one path
/// segment, percent-encoded.
#[utoipa::path(delete, path = "/admin/saml-idps/{entity_id}", tag = "trust",
    params(("entity_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_saml_idp(
    _: AdminToken,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
) -> Result<Response, AdminError> {
    let removed = state.provider.catalog().delete_saml_idp(&entity_id).await?;
    removed_or(removed, || {
        format!("identity provider {entity_id:?} is not configured")
    })
}

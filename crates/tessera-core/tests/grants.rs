//! The grants of the token endpoint, one rule per test, in-process: a
//! `Provider` over the in-memory store on a fixed clock, with no HTTP and no
//! database. Time moves by the clock, never by sleeping. The server's
//! integration tests drive the same flows end to end, over HTTP.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tessera_core::crypto::{KeyEncryptionKey, SecretDigest, random_id, random_token};
use tessera_core::grants;
use tessera_core::model::{
    AcceptedTokens, Client, GrantType, IntrospectionPolicy, Resource, TokenFormat,
};
use tessera_core::oidc::IdTokenClaims;
use tessera_core::params::{Declared, Params};
use tessera_core::scope::Scope;
use tessera_core::store::{
    AuthorizationCode, DeviceAuthorization, DeviceStatus, RefreshToken, User,
};
use tessera_core::testing::MemoryStore;
use tessera_core::tokens::issuer::RefreshTokenClaims;
use tessera_core::tokens::{AccessTokenClaims, Audience, Rejected, TokenResponse};
use tessera_core::{Error, ErrorCode, FixedClock, Provider, Reason, Settings, password};
use tracing::instrument::WithSubscriber as _;

const T0: i64 = 1_800_000_000;
const ISSUER: &str = "https://issuer.example";
const SECRET: &str = "the-client-secret-of-every-confidential-client";
const PASSWORD: &str = "correct horse battery staple";
const REDIRECT: &str = "https://app.example/cb";
const OTHER_REDIRECT: &str = "https://app.example/other";
/// The PKCE pair of RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A well-formed verifier that is not the challenge's.
const WRONG_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
const ADDRESS: &str = "192.0.2.7";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const APP_API: &str = "https://app-api.example";
const USER_API: &str = "https://user-api.example";

// ---------------------------------------------------------------------------
// The world: a provider over the in-memory store, and what tests put in it
// ---------------------------------------------------------------------------

struct World {
    provider: Provider,
    clock: Arc<FixedClock>,
    store: Arc<MemoryStore>,
    /// The key-encryption key, for another provider on the same store.
    kek: String,
}

impl World {
    async fn new() -> World {
        World::with_settings(|_| {}).await
    }

    async fn with_settings(change: impl FnOnce(&mut Settings)) -> World {
        Log::install_fallback();
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(FixedClock::new(T0));
        let (kek, kek_text) = KeyEncryptionKey::generate();
        let mut settings = Settings::new(ISSUER);
        change(&mut settings);
        let alg = settings.signing_alg;
        let provider = Provider::new(store.clone(), clock.clone(), settings, kek);
        // The signing algorithm's key only: ID tokens use it too unless a
        // client asks for RS256, and generating the RSA key that
        // `Provider::start` adds costs more than the rest of a test.
        provider
            .keys()
            .ensure_key(store.as_ref(), alg, clock.as_ref())
            .await
            .expect("signing key");
        World {
            provider,
            clock,
            store,
            kek: kek_text,
        }
    }

    fn now(&self) -> i64 {
        self.provider.clock().now()
    }

    fn settings(&self) -> &Settings {
        self.provider.settings()
    }

    async fn add_client(&self, client: Client) -> Client {
        self.provider
            .store()
            .insert_client(&client)
            .await
            .expect("insert_client");
        client
    }

    /// A user who signs in with [`PASSWORD`].
    async fn add_user(&self, username: &str) -> User {
        let user = User {
            id: random_id(),
            username: username.to_owned(),
            email: Some(format!("{username}@example.com")),
            name: Some(username.to_uppercase()),
            password_hash: password_hash().to_owned(),
            roles: Default::default(),
            created_at: T0,
        };
        self.provider
            .store()
            .insert_user(&user)
            .await
            .expect("insert_user");
        user
    }

    async fn add_resource(&self, audience: &str, scopes: &str, accepts: AcceptedTokens) {
        self.provider
            .store()
            .insert_resource(&Resource {
                scopes: scope(scopes),
                accepts,
                ..Resource::new(audience, T0)
            })
            .await
            .expect("insert_resource");
    }

    /// A token request from `client` at [`ADDRESS`].
    async fn token(&self, client: &Client, form: &[(&str, &str)]) -> Result<TokenResponse, Error> {
        self.token_from(client, form, ADDRESS).await
    }

    /// A token request from `client`, with its credentials in the body.
    async fn token_from(
        &self,
        client: &Client,
        form: &[(&str, &str)],
        address: &str,
    ) -> Result<TokenResponse, Error> {
        let params = Params::from_form(with_credentials(client, form).as_bytes())?;
        self.provider.token(None, &params, Some(address)).await
    }

    async fn client_credentials(
        &self,
        client: &Client,
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.token(client, &form).await
    }

    async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        form.extend_from_slice(extra);
        self.token(client, &form).await
    }

    /// Stores an authorization code as the authorization endpoint would;
    /// returns its value.
    async fn add_code(&self, code: AuthorizationCode) -> String {
        let value = random_token();
        self.provider
            .store()
            .insert_code(&AuthorizationCode {
                digest: SecretDigest::of(&value),
                ..code
            })
            .await
            .expect("insert_code");
        value
    }

    /// A code for `client` and `user` with the usual request: [`REDIRECT`],
    /// the RFC 7636 challenge, a nonce, no session.
    fn code(&self, client: &Client, user: &User, scopes: &str) -> AuthorizationCode {
        AuthorizationCode {
            digest: SecretDigest::of(""),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            redirect_uri: REDIRECT.to_owned(),
            code_challenge: Some(CHALLENGE.to_owned()),
            scope: scope(scopes),
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            audiences: Vec::new(),
            auth_time: self.now() - 10,
            sid: None,
            expires_at: self.now() + self.settings().code_ttl,
            consumed_at: None,
            access_jti: None,
            access_expires_at: None,
            family_id: None,
        }
    }

    async fn exchange(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        self.token(client, &form).await
    }

    /// The tokens of a fresh code for `user`, exchanged by `client`.
    async fn code_tokens(&self, client: &Client, user: &User, scopes: &str) -> TokenResponse {
        self.code_tokens_for(self.code(client, user, scopes)).await
    }

    async fn code_tokens_for(&self, code: AuthorizationCode) -> TokenResponse {
        let client = self
            .provider
            .store()
            .client(&code.client_id)
            .await
            .expect("client")
            .expect("the code's client exists");
        let value = self.add_code(code).await;
        issued(
            self.exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
                .await,
        )
    }

    async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.token(client, &form).await
    }

    /// The server's record of a refresh token.
    async fn refresh_record(&self, refresh_token: &str) -> RefreshToken {
        let claims: RefreshTokenClaims = self
            .provider
            .verify_own(refresh_token)
            .await
            .expect("verify")
            .expect("a refresh token of this server");
        self.provider
            .store()
            .refresh_token(&claims.jti)
            .await
            .expect("refresh_token")
            .expect("the refresh token is on record")
    }

    /// The claims of an access token that must be active.
    async fn access(&self, access_token: &str) -> AccessTokenClaims {
        self.provider
            .validate_access_token(access_token)
            .await
            .expect("validate_access_token")
            .expect("the access token is active")
    }

    async fn is_active(&self, access_token: &str) -> bool {
        self.provider
            .validate_access_token(access_token)
            .await
            .expect("validate_access_token")
            .is_ok()
    }

    async fn id_token(&self, response: &TokenResponse) -> IdTokenClaims {
        let token = response.id_token.as_deref().expect("an ID token");
        self.provider
            .verify_own(token)
            .await
            .expect("verify")
            .expect("an ID token of ours")
    }

    /// A pending device authorization for `client`; returns the device code.
    async fn add_device(&self, client: &Client, user_code: &str) -> String {
        let device_code = random_token();
        self.provider
            .store()
            .insert_device_authorization(&DeviceAuthorization {
                digest: SecretDigest::of(&device_code),
                user_code: user_code.to_owned(),
                client_id: client.id.clone(),
                scope: scope("openid offline_access"),
                audiences: Vec::new(),
                expires_at: self.now() + self.settings().device_code_ttl,
                interval: self.settings().device_poll_interval,
                last_polled_at: None,
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
            })
            .await
            .expect("insert_device_authorization");
        device_code
    }

    async fn decide(&self, user_code: &str, user: &User, approve: bool) {
        let decided = self
            .provider
            .decide_device(user_code, user, self.now() - 5, approve)
            .await
            .expect("decide_device");
        assert!(decided, "the device authorization was pending");
    }

    async fn poll(&self, client: &Client, device_code: &str) -> Result<TokenResponse, Error> {
        self.token(
            client,
            &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
        )
        .await
    }

    /// The login failures counted under a throttle key.
    async fn failures(&self, key: &str) -> u32 {
        self.provider
            .store()
            .login_failures(key)
            .await
            .expect("login_failures")
            .map_or(0, |f| f.count)
    }
}

/// A form body with the client's credentials: its ID, and [`SECRET`] unless
/// it is public.
fn with_credentials(client: &Client, form: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("client_id", &client.id);
    if !client.is_public() {
        body.append_pair("client_secret", SECRET);
    }
    for (name, value) in form {
        body.append_pair(name, value);
    }
    body.finish()
}

/// An argon2id hash of [`PASSWORD`] at the lowest cost, for every user of
/// every test. Verification takes the cost from the stored hash, so the rules
/// are the same as with `password::hash`'s deliberately slow parameters,
/// which stay as they are, and a test that checks passwords stays fast.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::PasswordHasher as _;
        let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).expect("params");
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(PASSWORD.as_bytes())
            .expect("hash")
            .to_string()
    })
}

fn scope(text: &str) -> Scope {
    Scope::parse(text).expect("a valid scope")
}

/// A confidential client with [`SECRET`] and [`REDIRECT`].
fn confidential(grants: &[GrantType], scopes: &str) -> Client {
    Client {
        id: random_id(),
        name: "App".to_owned(),
        secret_digest: Some(SecretDigest::of(SECRET)),
        auth_method: None,
        grants: grants.to_vec(),
        redirect_uris: vec![REDIRECT.to_owned()],
        scopes: scope(scopes),
        audiences: Vec::new(),
        token_format: Some(TokenFormat::Jwt),
        access_token_ttl: None,
        introspection: IntrospectionPolicy::Own,
        require_pkce: true,
        id_token_alg: None,
        post_logout_redirect_uris: Vec::new(),
        metadata: Default::default(),
        sealed_secret: None,
        jwks: None,
        jwks_uri: None,
        created_at: T0,
    }
}

fn public(grants: &[GrantType], scopes: &str) -> Client {
    Client {
        secret_digest: None,
        ..confidential(grants, scopes)
    }
}

/// The usual web application: the code flow with refresh tokens.
fn web_app() -> Client {
    confidential(
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
        "openid profile email offline_access",
    )
}

fn service() -> Client {
    confidential(
        &[GrantType::ClientCredentials, GrantType::RefreshToken],
        "openid orders:read orders:write",
    )
}

fn tv() -> Client {
    public(
        &[GrantType::DeviceCode, GrantType::RefreshToken],
        "openid offline_access",
    )
}

#[track_caller]
fn issued(result: Result<TokenResponse, Error>) -> TokenResponse {
    match result {
        Ok(response) => response,
        Err(error) => panic!("expected tokens, got {error:?}"),
    }
}

/// The error of a refused request, after checking its wire code.
#[track_caller]
fn refused(result: Result<TokenResponse, Error>, code: ErrorCode) -> Error {
    match result {
        Err(error) if error.code() == code => error,
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// Asserts that a request is refused with `code` and a description that
/// names the reason.
#[track_caller]
fn refused_for(result: Result<TokenResponse, Error>, code: ErrorCode, reason: &str) {
    let error = refused(result, code);
    assert!(
        error.description.contains(reason),
        "expected {reason:?} in {:?}",
        error.description
    );
}

fn refresh_token(response: &TokenResponse) -> &str {
    response.refresh_token.as_deref().expect("a refresh token")
}

// ---------------------------------------------------------------------------
// The token endpoint's fixed steps
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_grant_type() {
    let world = World::new().await;
    let client = world.add_client(service()).await;
    // `implicit` is a response type, never a grant_type (RFC 6749 §4.2), and
    // grant types are exact strings.
    for grant_type in ["magic", "implicit", "CLIENT_CREDENTIALS", "device_code"] {
        refused(
            world.token(&client, &[("grant_type", grant_type)]).await,
            ErrorCode::UnsupportedGrantType,
        );
    }
}

#[tokio::test]
async fn client_authentication_comes_before_the_grant_type_is_judged() {
    // An unauthenticated caller learns nothing about the grant types served.
    let world = World::new().await;
    let client = world.add_client(service()).await;
    for grant_type in ["magic", "client_credentials"] {
        for credentials in [
            format!("client_id={}&client_secret=wrong", client.id),
            format!("client_id=unknown&client_secret={SECRET}"),
            String::new(),
        ] {
            let body = format!("grant_type={grant_type}&{credentials}");
            let params = Params::from_form(body.as_bytes()).expect("form");
            refused(
                world.provider.token(None, &params, Some(ADDRESS)).await,
                ErrorCode::InvalidClient,
            );
        }
    }
}

#[tokio::test]
async fn a_client_not_allowed_the_grant_is_unauthorized_client() {
    let world = World::new().await;
    let client = world.add_client(web_app()).await;
    refused_for(
        world.client_credentials(&client, &[]).await,
        ErrorCode::UnauthorizedClient,
        "client_credentials",
    );
}

#[tokio::test]
async fn a_public_client_cannot_use_client_credentials() {
    // RFC 6749 §4.4: "MUST only be used by confidential clients", even when
    // the registration lists the grant.
    let world = World::new().await;
    let client = world
        .add_client(public(&[GrantType::ClientCredentials], "orders:read"))
        .await;
    refused_for(
        world.client_credentials(&client, &[]).await,
        ErrorCode::UnauthorizedClient,
        "public clients",
    );
}

#[test]
fn undeclared_parameters_are_not_seen_by_the_grant() {
    // Each grant sees what it declared, and `scope` and `resource`; nothing
    // else of the request, not even the client's credentials.
    let declared: [(GrantType, &[&str]); 8] = [
        (
            GrantType::AuthorizationCode,
            &["code", "redirect_uri", "code_verifier"],
        ),
        (GrantType::ClientCredentials, &[]),
        (GrantType::DeviceCode, &["device_code"]),
        (GrantType::Password, &["username", "password"]),
        (GrantType::RefreshToken, &["refresh_token"]),
        (
            GrantType::TokenExchange,
            &[
                "subject_token",
                "subject_token_type",
                "actor_token",
                "actor_token_type",
                "requested_token_type",
                "audience",
            ],
        ),
        (GrantType::JwtBearer, &["assertion", "requested_token_use"]),
        (GrantType::Saml2Bearer, &["assertion"]),
    ];
    let names = [
        "code",
        "redirect_uri",
        "code_verifier",
        "username",
        "password",
        "refresh_token",
        "device_code",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "audience",
        "assertion",
        "requested_token_use",
        "client_id",
        "client_secret",
        "grant_type",
        "nonce",
    ];
    let mut body: Vec<String> = names.iter().map(|n| format!("{n}=v-{n}")).collect();
    body.push("scope=a".to_owned());
    body.push("resource=https%3A%2F%2Fapi.example".to_owned());
    let params = Params::from_form(body.join("&").as_bytes()).expect("form");

    let all = grants::all();
    assert_eq!(all.len(), declared.len(), "every grant is listed here");
    for grant in &all {
        let (_, expected) = declared
            .iter()
            .find(|(g, _)| *g == grant.grant_type())
            .unwrap_or_else(|| panic!("{} is listed here", grant.grant_type()));
        let seen = Declared::new(&params, grant.parameters());
        for name in names {
            let value = format!("v-{name}");
            // `audience` may be repeated (RFC 8693 §2.1): a list.
            let got = if name == "audience" {
                seen.audiences().first().map(String::as_str)
            } else {
                seen.get(name)
            };
            assert_eq!(
                got,
                expected.contains(&name).then_some(value.as_str()),
                "{} and {name}",
                grant.grant_type()
            );
        }
        assert_eq!(seen.get("scope"), Some("a"));
        assert_eq!(seen.resources(), ["https://api.example"]);
    }
}

// ---------------------------------------------------------------------------
// Client credentials (RFC 6749 §4.4)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_default_to_every_scope_the_client_may_have() {
    // RFC 6749 §3.3 lets the server apply a default when no scope is asked for.
    let world = World::new().await;
    let client = world.add_client(service()).await;
    let response = issued(world.client_credentials(&client, &[]).await);
    assert_eq!(
        response.scope.as_deref(),
        Some("openid orders:read orders:write")
    );
    assert_eq!(
        world.access(&response.access_token).await.scope.as_deref(),
        Some("openid orders:read orders:write")
    );
}

#[tokio::test]
async fn client_credentials_may_narrow_the_scope() {
    let world = World::new().await;
    let client = world.add_client(service()).await;
    let response = issued(
        world
            .client_credentials(&client, &[("scope", "orders:read")])
            .await,
    );
    assert_eq!(response.scope.as_deref(), Some("orders:read"));
    assert_eq!(
        world.access(&response.access_token).await.scope.as_deref(),
        Some("orders:read")
    );
}

#[tokio::test]
async fn client_credentials_refuse_a_scope_the_client_may_not_have() {
    // Refused, never trimmed silently (RFC 6749 §3.3).
    let world = World::new().await;
    let client = world.add_client(service()).await;
    refused_for(
        world
            .client_credentials(&client, &[("scope", "orders:read orders:delete")])
            .await,
        ErrorCode::InvalidScope,
        "orders:delete",
    );
}

#[tokio::test]
async fn an_app_token_speaks_for_the_client_with_no_refresh_or_id_token() {
    // RFC 9068 §2.2: `sub` is the client; RFC 6749 §4.4.3: no refresh token,
    // although this client may refresh and asked for `openid`.
    let world = World::new().await;
    let client = world.add_client(service()).await;
    let response = issued(
        world
            .client_credentials(&client, &[("scope", "openid orders:read")])
            .await,
    );
    let claims = world.access(&response.access_token).await;
    assert_eq!(claims.sub, client.id);
    assert_eq!(claims.client_id, client.id);
    assert_eq!(claims.auth_time, None);
    assert_eq!(response.refresh_token, None);
    assert_eq!(response.id_token, None);
    assert_eq!(
        response.expires_in,
        world.settings().app_access_token_ttl,
        "app tokens have their own lifetime"
    );
}

#[tokio::test]
async fn the_audience_is_the_resource_asked_for_else_the_clients_only_one_else_the_default() {
    // RFC 8707 §2.
    let world = World::new().await;
    let w = &world;
    let audience =
        |response: TokenResponse| async move { w.access(&response.access_token).await.aud };
    let none = world.add_client(service()).await;
    let one = world
        .add_client(Client {
            audiences: vec![APP_API.to_owned()],
            ..service()
        })
        .await;
    let two = world
        .add_client(Client {
            audiences: vec![APP_API.to_owned(), USER_API.to_owned()],
            ..service()
        })
        .await;
    let default = Audience::One(world.settings().default_audience.clone());
    assert_eq!(
        audience(issued(world.client_credentials(&none, &[]).await)).await,
        default
    );
    assert_eq!(
        audience(issued(world.client_credentials(&one, &[]).await)).await,
        Audience::One(APP_API.to_owned())
    );
    assert_eq!(
        audience(issued(world.client_credentials(&two, &[]).await)).await,
        default,
        "several audiences and none asked for: the default"
    );
    assert_eq!(
        audience(issued(
            world
                .client_credentials(&two, &[("resource", USER_API)])
                .await
        ))
        .await,
        Audience::One(USER_API.to_owned())
    );
    assert_eq!(
        audience(issued(
            world
                .client_credentials(&two, &[("resource", USER_API), ("resource", APP_API)])
                .await
        ))
        .await,
        Audience::Many(vec![USER_API.to_owned(), APP_API.to_owned()])
    );
}

#[tokio::test]
async fn a_resource_the_client_may_not_target_is_invalid_target() {
    let world = World::new().await;
    let client = world
        .add_client(Client {
            audiences: vec![APP_API.to_owned()],
            ..service()
        })
        .await;
    refused_for(
        world
            .client_credentials(&client, &[("resource", USER_API)])
            .await,
        ErrorCode::InvalidTarget,
        USER_API,
    );
}

#[tokio::test]
async fn a_resources_scopes_bound_the_default_scope_and_the_request() {
    let world = World::new().await;
    world
        .add_resource(APP_API, "orders:read", AcceptedTokens::App)
        .await;
    let client = world
        .add_client(Client {
            audiences: vec![APP_API.to_owned()],
            ..service()
        })
        .await;
    // The default is what both the client and the resource allow: not even
    // `openid`, which an app token does not speak for.
    let response = issued(world.client_credentials(&client, &[]).await);
    assert_eq!(response.scope.as_deref(), Some("orders:read"));
    refused_for(
        world
            .client_credentials(&client, &[("scope", "orders:write")])
            .await,
        ErrorCode::InvalidScope,
        "orders:write",
    );
}

#[tokio::test]
async fn a_resource_that_accepts_only_user_tokens_refuses_app_tokens() {
    let world = World::new().await;
    world.add_resource(USER_API, "", AcceptedTokens::User).await;
    let client = world
        .add_client(Client {
            audiences: vec![USER_API.to_owned()],
            ..service()
        })
        .await;
    refused_for(
        world
            .client_credentials(&client, &[("resource", USER_API)])
            .await,
        ErrorCode::InvalidTarget,
        "accepts only tokens issued to people",
    );
}

// ---------------------------------------------------------------------------
// Password (RFC 6749 §4.3)
// ---------------------------------------------------------------------------

fn legacy() -> Client {
    confidential(
        &[GrantType::Password, GrantType::RefreshToken],
        "openid profile api.read app.read",
    )
}

#[tokio::test]
async fn the_password_grant_issues_the_users_tokens_for_the_right_password() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(legacy()).await;
    let response = issued(
        world
            .password_grant(&client, "alice", PASSWORD, &[("scope", "openid profile")])
            .await,
    );
    let claims = world.access(&response.access_token).await;
    assert_eq!(claims.sub, alice.id);
    assert_eq!(claims.auth_time, Some(T0), "signed in just now");
    assert_eq!(
        world.refresh_record(refresh_token(&response)).await.user_id,
        alice.id
    );
    assert!(password::verify(PASSWORD, &alice.password_hash));
    let id_token = world.id_token(&response).await;
    assert_eq!(id_token.sub, alice.id);
    assert_eq!(id_token.user_claims["preferred_username"], "alice");
    // A successful login leaves no failure behind.
    assert_eq!(world.failures(&format!("user:{}", alice.id)).await, 0);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_are_refused_alike() {
    let world = World::new().await;
    world.add_user("alice").await;
    let client = world.add_client(legacy()).await;
    let wrong = refused(
        world
            .password_grant(&client, "alice", "not the password", &[])
            .await,
        ErrorCode::InvalidGrant,
    );
    let unknown = refused(
        world
            .password_grant(&client, "nobody", "not the password", &[])
            .await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(
        wrong, unknown,
        "the answer does not say which part was wrong"
    );
}

#[tokio::test]
async fn the_password_grant_is_throttled_after_five_failures_even_with_the_right_password() {
    let world = World::new().await;
    world.add_user("alice").await;
    let client = world.add_client(legacy()).await;
    for _ in 0..5 {
        refused(
            world.password_grant(&client, "alice", "wrong", &[]).await,
            ErrorCode::InvalidGrant,
        );
    }
    let throttled = refused(
        world.password_grant(&client, "alice", PASSWORD, &[]).await,
        ErrorCode::TemporarilyUnavailable,
    );
    // The sixth attempt waits a second after the fifth failure, plus one for
    // the failure's fraction of a second.
    assert_eq!(throttled.retry_after, Some(2));
    world.clock.advance(1);
    refused(
        world.password_grant(&client, "alice", PASSWORD, &[]).await,
        ErrorCode::TemporarilyUnavailable,
    );
    world.clock.advance(1);
    issued(world.password_grant(&client, "alice", PASSWORD, &[]).await);
}

#[tokio::test]
async fn the_username_and_the_email_share_one_throttle_budget() {
    // The first attempts each from another address, so that only the account
    // counts them.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(legacy()).await;
    let attempt = |login: &'static str, password: &'static str, address: String| {
        let (world, client) = (&world, &client);
        async move {
            let form = [
                ("grant_type", "password"),
                ("username", login),
                ("password", password),
            ];
            world.token_from(client, &form, &address).await
        }
    };
    let logins = [
        "alice",
        "alice@example.com",
        "ALICE",
        "Alice@Example.com",
        "alice",
    ];
    for (i, login) in logins.into_iter().enumerate() {
        refused(
            attempt(login, "wrong", format!("198.51.100.{i}")).await,
            ErrorCode::InvalidGrant,
        );
    }
    assert_eq!(world.failures(&format!("user:{}", alice.id)).await, 5);
    // An address that has failed on the account, under any of its names, is
    // throttled by the account's count, even with the right password.
    refused(
        attempt("alice@example.com", PASSWORD, "198.51.100.0".into()).await,
        ErrorCode::TemporarilyUnavailable,
    );
    // One that has not gets its attempt: guesses from elsewhere never lock
    // the user out.
    issued(attempt("ALICE", PASSWORD, "198.51.100.99".into()).await);
    assert_eq!(world.failures(&format!("user:{}", alice.id)).await, 0);
}

#[tokio::test]
async fn the_resource_policy_is_checked_before_the_password() {
    // A request the policy refuses must not cost a throttled attempt.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    world
        .add_resource(APP_API, "app.read", AcceptedTokens::App)
        .await;
    world
        .add_resource(USER_API, "api.read", AcceptedTokens::User)
        .await;
    let client = world
        .add_client(Client {
            audiences: vec![APP_API.to_owned(), USER_API.to_owned()],
            ..legacy()
        })
        .await;
    refused_for(
        world
            .password_grant(
                &client,
                "alice",
                "wrong",
                &[("resource", APP_API), ("scope", "openid app.read")],
            )
            .await,
        ErrorCode::InvalidTarget,
        APP_API,
    );
    refused_for(
        world
            .password_grant(
                &client,
                "alice",
                "wrong",
                &[("resource", USER_API), ("scope", "openid app.read")],
            )
            .await,
        ErrorCode::InvalidScope,
        "app.read",
    );
    assert_eq!(world.failures(&format!("user:{}", alice.id)).await, 0);
    assert_eq!(world.failures(&format!("addr:{ADDRESS}")).await, 0);
    // OpenID Connect's scopes go beside the resource's own.
    let response = issued(
        world
            .password_grant(
                &client,
                "alice",
                PASSWORD,
                &[("resource", USER_API), ("scope", "openid profile api.read")],
            )
            .await,
    );
    assert_eq!(
        world.access(&response.access_token).await.aud,
        Audience::One(USER_API.to_owned())
    );
}

#[tokio::test]
async fn a_scope_beyond_the_client_is_refused_before_the_password() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(legacy()).await;
    refused_for(
        world
            .password_grant(&client, "alice", "wrong", &[("scope", "openid admin")])
            .await,
        ErrorCode::InvalidScope,
        "admin",
    );
    assert_eq!(world.failures(&format!("user:{}", alice.id)).await, 0);
    assert_eq!(world.failures(&format!("addr:{ADDRESS}")).await, 0);
}

// ---------------------------------------------------------------------------
// Authorization code (RFC 6749 §4.1.3, RFC 7636)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_code_is_exchanged_for_the_users_tokens_and_records_them() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let session = world.provider.start_session(&alice).await.expect("session");
    let code = AuthorizationCode {
        sid: Some(session.session.sid.clone()),
        ..world.code(&client, &alice, "openid profile")
    };
    let auth_time = code.auth_time;
    let value = world.add_code(code).await;
    let response = issued(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
    );
    let claims = world.access(&response.access_token).await;
    assert_eq!(
        (claims.sub.as_str(), claims.auth_time),
        (alice.id.as_str(), Some(auth_time))
    );
    assert_eq!(response.scope.as_deref(), Some("openid profile"));
    let id_token = world.id_token(&response).await;
    assert_eq!(id_token.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(id_token.sid, Some(session.session.sid));
    assert_eq!(id_token.aud, client.id);
    // What the exchange issued is on the code, for a replay to revoke.
    let family = world
        .refresh_record(refresh_token(&response))
        .await
        .family_id;
    let stored = world
        .provider
        .store()
        .authorization_code(&SecretDigest::of(&value))
        .await
        .expect("authorization_code")
        .expect("kept");
    assert_eq!(stored.consumed_at, Some(T0));
    assert_eq!(stored.access_jti, Some(claims.jti));
    assert_eq!(stored.family_id, Some(family));
}

#[tokio::test]
async fn pkce_a_code_with_a_challenge_needs_its_verifier() {
    // RFC 7636 §4.5.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    refused_for(
        world.exchange(&client, &value, Some(REDIRECT), None).await,
        ErrorCode::InvalidGrant,
        "code_verifier is required",
    );
}

#[tokio::test]
async fn pkce_a_wrong_verifier_is_refused_and_burns_the_code() {
    // A failed check from the right client suggests an intercepted code
    // (RFC 7636 §1): the right verifier afterwards is too late.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(WRONG_VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "does not match the code_challenge",
    );
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "already used",
    );
}

#[tokio::test]
async fn pkce_a_verifier_without_a_challenge_is_refused_as_a_downgrade() {
    // RFC 9700 §2.1.1: a client allowed to skip PKCE, but the request that
    // made the code had no challenge, so a verifier now means tampering.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world
        .add_client(Client {
            require_pkce: false,
            ..web_app()
        })
        .await;
    let without = || AuthorizationCode {
        code_challenge: None,
        ..world.code(&client, &alice, "openid")
    };
    let value = world.add_code(without()).await;
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "no code_challenge",
    );
    let value = world.add_code(without()).await;
    issued(world.exchange(&client, &value, Some(REDIRECT), None).await);
}

#[tokio::test]
async fn another_client_can_neither_use_nor_burn_a_code() {
    // RFC 6749 §4.1.3, checked on a plain read before the code is consumed.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let intruder = world.add_client(web_app()).await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    refused_for(
        world
            .exchange(&intruder, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "another client",
    );
    issued(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
    );
}

#[tokio::test]
async fn another_redirect_uri_can_neither_use_nor_burn_a_code() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world
        .add_client(Client {
            redirect_uris: vec![REDIRECT.to_owned(), OTHER_REDIRECT.to_owned()],
            ..web_app()
        })
        .await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    // Another registered URI, and none at all when several are registered.
    for redirect_uri in [Some(OTHER_REDIRECT), None] {
        refused_for(
            world
                .exchange(&client, &value, redirect_uri, Some(VERIFIER))
                .await,
            ErrorCode::InvalidGrant,
            "redirect_uri",
        );
    }
    issued(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
    );
}

#[tokio::test]
async fn redirect_uri_may_be_left_out_with_a_single_registered_uri() {
    // RFC 6749 §4.1.3 asks for it only if the authorization request had it;
    // with one registered URI the two cannot differ.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    issued(world.exchange(&client, &value, None, Some(VERIFIER)).await);
}

#[tokio::test]
async fn a_replayed_code_revokes_what_the_first_exchange_issued() {
    // RFC 6749 §4.1.2: one of the two users of the code is an attacker.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world
        .add_code(world.code(&client, &alice, "openid offline_access"))
        .await;
    let first = issued(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
    );
    assert!(world.is_active(&first.access_token).await);
    world.clock.advance(5);
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "already used",
    );
    assert!(!world.is_active(&first.access_token).await);
    assert!(world.refresh_record(refresh_token(&first)).await.revoked);
    refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
}

#[tokio::test]
async fn a_replay_during_the_exchange_leaves_nothing_it_issued_valid() {
    // The replay reads the code after the first exchange consumed it and
    // before it recorded its tokens: the replay has nothing to revoke, so the
    // exchange revokes them itself (RFC 6749 §4.1.2).
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world
        .add_code(world.code(&client, &alice, "openid offline_access"))
        .await;
    world
        .store
        .mark_code_replayed(&SecretDigest::of(&value))
        .await;
    let first = issued(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
    );
    assert!(!world.is_active(&first.access_token).await);
    assert!(world.refresh_record(refresh_token(&first)).await.revoked);
    refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
}

#[tokio::test]
async fn an_expired_code_is_invalid_and_left_unused() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let value = world.add_code(world.code(&client, &alice, "openid")).await;
    // Expired means `expires_at <= now`.
    world.clock.advance(world.settings().code_ttl);
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "invalid or expired",
    );
    let stored = world
        .provider
        .store()
        .authorization_code(&SecretDigest::of(&value))
        .await
        .expect("authorization_code")
        .expect("kept until purged");
    assert_eq!(
        stored.consumed_at, None,
        "an expired code is no replay later"
    );
}

#[tokio::test]
async fn a_code_of_a_user_who_no_longer_exists_issues_nothing() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let code = world.code(&client, &alice, "openid");
    assert!(
        world
            .provider
            .store()
            .delete_user(&alice.id)
            .await
            .expect("delete_user")
    );
    // Deleting the user took their codes along; one stored in the same
    // moment as the deletion is refused all the same.
    let value = world.add_code(code).await;
    refused_for(
        world
            .exchange(&client, &value, Some(REDIRECT), Some(VERIFIER))
            .await,
        ErrorCode::InvalidGrant,
        "no longer exists",
    );
}

// ---------------------------------------------------------------------------
// Refresh (RFC 6749 §6, RFC 9700 §4.14.2)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world
        .code_tokens(&client, &alice, "openid profile offline_access")
        .await;
    world.clock.advance(60);
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        second.scope.as_deref(),
        Some("offline_access openid profile")
    );
    let old = world.refresh_record(refresh_token(&first)).await;
    let new = world.refresh_record(refresh_token(&second)).await;
    assert_eq!(old.rotated_at, Some(T0 + 60));
    assert_eq!(new.rotated_at, None);
    assert_eq!(new.family_id, old.family_id, "one grant, one family");
    assert_eq!(
        new.family_expires_at, old.family_expires_at,
        "rotation never extends the grant"
    );
    assert_eq!(world.access(&second.access_token).await.sub, alice.id);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world
        .code_tokens(&client, &alice, "openid offline_access")
        .await;
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);

    let log = Log::default();
    let reused = refused(
        world
            .refresh(&client, refresh_token(&first), None)
            .with_subscriber(log.clone())
            .await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(reused.reason, Reason::RefreshTokenReused);
    // The newest refresh token and its access token went with the family.
    assert!(world.refresh_record(refresh_token(&second)).await.revoked);
    assert!(!world.is_active(&second.access_token).await);
    let revoked = refused(
        world
            .refresh(&client, refresh_token(&second), None)
            .with_subscriber(log.clone())
            .await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(revoked.reason, Reason::RefreshTokenRevoked);
    // The client sees the same answer for both: the reason is only logged.
    assert_eq!(reused.description, revoked.description);
    // One theft alarm; the revoked token that follows is only revoked.
    assert_eq!(log.count("refresh token reused; revoking its family"), 1);
    assert_eq!(log.count("a revoked refresh token was presented"), 1);
}

#[tokio::test]
async fn a_refresh_token_is_recorded_with_its_digest_and_its_key_must_still_be_published() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world
        .code_tokens(&client, &alice, "openid offline_access")
        .await;
    let record = world.refresh_record(refresh_token(&first)).await;
    assert_eq!(
        record.token_digest,
        Some(SecretDigest::of(refresh_token(&first)))
    );
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);
    let successor = world.refresh_record(refresh_token(&second)).await;
    assert_eq!(
        successor.token_digest,
        Some(SecretDigest::of(refresh_token(&second)))
    );

    // The text recorded, but its key withdrawn: refused, as its signature
    // would be.
    let kid = tessera_jose::UnverifiedJws::parse(refresh_token(&second))
        .expect("a JWS")
        .kid()
        .expect("a kid")
        .to_owned();
    world
        .provider
        .keys()
        .revoke(world.store.as_ref(), &kid, true, world.clock.as_ref())
        .await
        .expect("revoke");
    let refusal = refused(
        world.refresh(&client, refresh_token(&second), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(refusal.reason, Reason::RefreshTokenInvalid);
    assert_eq!(
        world
            .provider
            .store()
            .refresh_token(&successor.jti)
            .await
            .expect("refresh_token"),
        Some(successor),
        "refused before anything changed"
    );
}

#[tokio::test]
async fn a_recorded_refresh_token_counts_only_while_its_issuer_is_this_server() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world
        .code_tokens(&client, &alice, "openid offline_access")
        .await;
    // The same store and keys under another issuer name.
    let renamed = Provider::new(
        world.store.clone(),
        world.clock.clone(),
        Settings::new("https://renamed.example"),
        KeyEncryptionKey::parse(&world.kek).expect("kek"),
    );
    renamed
        .keys()
        .refresh(world.store.as_ref())
        .await
        .expect("keys");
    let verdict = renamed
        .verify_refresh_token(refresh_token(&first))
        .await
        .expect("verify_refresh_token");
    assert_eq!(verdict.err(), Some(Rejected::ForeignIssuer));
    let (claims, record) = world
        .provider
        .verify_refresh_token(refresh_token(&first))
        .await
        .expect("verify_refresh_token")
        .expect("this server's own token");
    assert_eq!(record.map(|r| r.jti), Some(claims.jti));
}

/// `refresh_reuse_grace` of 10 seconds, alice and the web app, and alice's
/// first tokens and their rotation.
async fn rotated_with_grace() -> (World, Client, TokenResponse, TokenResponse) {
    let world = World::with_settings(|s| s.refresh_reuse_grace = 10).await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world
        .code_tokens(&client, &alice, "openid offline_access")
        .await;
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);
    (world, client, first, second)
}

#[tokio::test]
async fn a_refresh_retried_within_the_grace_gets_the_same_successor() {
    let (world, client, first, second) = rotated_with_grace().await;
    world.clock.advance(9);
    let retried = issued(world.refresh(&client, refresh_token(&first), None).await);
    let successor = world.refresh_record(refresh_token(&second)).await;
    assert_eq!(
        world.refresh_record(refresh_token(&retried)).await,
        successor,
        "the same successor, still current"
    );
    assert_eq!(successor.rotated_at, None);
    assert_ne!(retried.access_token, second.access_token);
    assert!(world.is_active(&second.access_token).await);
    assert!(world.is_active(&retried.access_token).await);

    // The successor rotates on as usual; the first token is now two steps
    // behind, and its use is reuse: the whole family goes, the retry's
    // access token with it.
    let third = issued(world.refresh(&client, refresh_token(&retried), None).await);
    let reused = refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(reused.reason, Reason::RefreshTokenReused);
    for token in [&second, &retried, &third] {
        assert!(!world.is_active(&token.access_token).await);
    }
    assert!(world.refresh_record(refresh_token(&third)).await.revoked);
}

#[tokio::test]
async fn past_the_grace_a_retried_refresh_is_reuse() {
    let (world, client, first, second) = rotated_with_grace().await;
    world.clock.advance(10);
    let reused = refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(reused.reason, Reason::RefreshTokenReused);
    assert!(world.refresh_record(refresh_token(&second)).await.revoked);
    assert!(!world.is_active(&second.access_token).await);
}

#[tokio::test]
async fn within_the_grace_a_retry_after_the_successor_rotated_is_reuse() {
    let (world, client, first, second) = rotated_with_grace().await;
    let third = issued(world.refresh(&client, refresh_token(&second), None).await);
    let reused = refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(reused.reason, Reason::RefreshTokenReused);
    assert!(world.refresh_record(refresh_token(&third)).await.revoked);
}

#[tokio::test]
async fn without_a_grace_a_retried_refresh_is_reuse_at_once() {
    let world = World::new().await;
    assert_eq!(world.settings().refresh_reuse_grace, 0, "strict by default");
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world.code_tokens(&client, &alice, "openid").await;
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);
    let reused = refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(reused.reason, Reason::RefreshTokenReused);
    assert!(world.refresh_record(refresh_token(&second)).await.revoked);
}

#[tokio::test]
async fn a_revoked_refresh_token_is_refused_without_a_theft_alarm() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let response = world
        .code_tokens(&client, &alice, "openid offline_access")
        .await;
    let form = with_credentials(&client, &[("token", refresh_token(&response))]);
    world
        .provider
        .revoke(None, &Params::from_form(form.as_bytes()).expect("form"))
        .await
        .expect("revoke");
    let log = Log::default();
    refused(
        world
            .refresh(&client, refresh_token(&response), None)
            .with_subscriber(log.clone())
            .await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(log.count("a revoked refresh token was presented"), 1);
    assert_eq!(log.count("reused"), 0, "revocation is no sign of theft");
    // RFC 7009 §2.1: the access token of the grant went too.
    assert!(!world.is_active(&response.access_token).await);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_and_the_grant_keeps_its_own() {
    // RFC 6749 §6: the new refresh token has the scope of the one presented;
    // only the access token is narrowed.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world.code_tokens(&client, &alice, "openid profile").await;
    let narrowed = issued(
        world
            .refresh(&client, refresh_token(&first), Some("openid"))
            .await,
    );
    assert_eq!(narrowed.scope.as_deref(), Some("openid"));
    assert_eq!(
        world.access(&narrowed.access_token).await.scope.as_deref(),
        Some("openid")
    );
    assert!(
        !world
            .id_token(&narrowed)
            .await
            .user_claims
            .contains_key("preferred_username"),
        "the ID token follows the narrowed scope"
    );
    assert_eq!(
        world.refresh_record(refresh_token(&narrowed)).await.scope,
        scope("openid profile")
    );
    let again = issued(world.refresh(&client, refresh_token(&narrowed), None).await);
    assert_eq!(again.scope.as_deref(), Some("openid profile"));
}

#[tokio::test]
async fn a_refresh_cannot_widen_the_scope_and_the_refusal_uses_nothing_up() {
    // A refused request must leave the token current, or the client's next,
    // valid refresh would look like reuse (RFC 9700 §4.14.2).
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let first = world.code_tokens(&client, &alice, "openid profile").await;
    // `email` is allowed for the client but was never granted.
    refused_for(
        world
            .refresh(&client, refresh_token(&first), Some("openid profile email"))
            .await,
        ErrorCode::InvalidScope,
        "widen",
    );
    assert_eq!(
        world.refresh_record(refresh_token(&first)).await.rotated_at,
        None
    );
    issued(world.refresh(&client, refresh_token(&first), None).await);
}

#[tokio::test]
async fn an_online_grant_ends_with_its_session_and_an_offline_one_does_not() {
    // OIDC Core §11: without offline_access, a grant lives as long as the login.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let session = world.provider.start_session(&alice).await.expect("session");
    let in_session = |scopes: &str| AuthorizationCode {
        sid: Some(session.session.sid.clone()),
        ..world.code(&client, &alice, scopes)
    };
    let online = world.code_tokens_for(in_session("openid profile")).await;
    let offline = world
        .code_tokens_for(in_session("openid offline_access"))
        .await;
    let online = issued(world.refresh(&client, refresh_token(&online), None).await);

    world
        .provider
        .end_session(&session.cookie)
        .await
        .expect("end_session");
    let ended = refused(
        world.refresh(&client, refresh_token(&online), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(ended.reason, Reason::RefreshTokenRevoked);
    assert!(
        !world.is_active(&online.access_token).await,
        "the session's access token ends too"
    );
    issued(world.refresh(&client, refresh_token(&offline), None).await);
    assert!(world.is_active(&offline.access_token).await);
}

#[tokio::test]
async fn an_online_grant_ends_when_its_session_goes_idle_and_a_refresh_is_activity() {
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let session = world.provider.start_session(&alice).await.expect("session");
    let idle = world.settings().session_idle_ttl;
    let mut tokens = world
        .code_tokens_for(AuthorizationCode {
            sid: Some(session.session.sid.clone()),
            ..world.code(&client, &alice, "openid profile")
        })
        .await;
    // Refreshing just inside the idle limit, twice: each refresh keeps the
    // session alive, so the second is within the limit again.
    for _ in 0..2 {
        world.clock.advance(idle - 1);
        tokens = issued(world.refresh(&client, refresh_token(&tokens), None).await);
    }
    world.clock.advance(idle);
    refused(
        world.refresh(&client, refresh_token(&tokens), None).await,
        ErrorCode::InvalidGrant,
    );
    assert!(
        world.refresh_record(refresh_token(&tokens)).await.revoked,
        "the grant of an ended session is revoked"
    );
}

#[tokio::test]
async fn an_unused_online_refresh_token_expires_after_a_day() {
    // Online refresh tokens slide: each rotation gives a day more, until the
    // family's absolute end.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let ttl = world.settings().refresh_token_ttl;
    let first = world.code_tokens(&client, &alice, "openid").await;
    world.clock.advance(ttl - 1);
    let second = issued(world.refresh(&client, refresh_token(&first), None).await);
    assert_eq!(
        world
            .refresh_record(refresh_token(&second))
            .await
            .expires_at,
        world.now() + ttl
    );
    world.clock.advance(ttl);
    refused(
        world.refresh(&client, refresh_token(&second), None).await,
        ErrorCode::InvalidGrant,
    );
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client_and_another_cannot_burn_it() {
    // RFC 6749 §10.4, checked before anything changes.
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let other = world.add_client(web_app()).await;
    let response = world.code_tokens(&client, &alice, "openid").await;
    refused(
        world.refresh(&other, refresh_token(&response), None).await,
        ErrorCode::InvalidGrant,
    );
    assert_eq!(
        world
            .refresh_record(refresh_token(&response))
            .await
            .rotated_at,
        None
    );
    issued(world.refresh(&client, refresh_token(&response), None).await);
}

// ---------------------------------------------------------------------------
// Device code (RFC 8628 §3.4, §3.5)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_undecided_device_code_is_authorization_pending() {
    let world = World::new().await;
    let client = world.add_client(tv()).await;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::AuthorizationPending,
    );
    world.clock.advance(world.settings().device_poll_interval);
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::AuthorizationPending,
    );
}

#[tokio::test]
async fn polling_too_fast_is_slow_down_and_five_seconds_more_for_good() {
    let world = World::new().await;
    let client = world.add_client(tv()).await;
    let interval = world.settings().device_poll_interval;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::AuthorizationPending,
    );
    world.clock.advance(1);
    refused(world.poll(&client, &device_code).await, ErrorCode::SlowDown);
    // The old interval after the last poll is too soon now...
    world.clock.advance(interval);
    refused(world.poll(&client, &device_code).await, ErrorCode::SlowDown);
    // ...as each slow_down added five seconds: fifteen now.
    world.clock.advance(interval + 10);
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::AuthorizationPending,
    );
}

#[tokio::test]
async fn a_denied_device_code_is_access_denied_however_soon_it_is_polled() {
    // slow_down means "still pending"; a decided code has its final answer.
    let world = World::new().await;
    let bob = world.add_user("bob").await;
    let client = world.add_client(tv()).await;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    world.decide("WDJBMJHT", &bob, false).await;
    for _ in 0..2 {
        refused(
            world.poll(&client, &device_code).await,
            ErrorCode::AccessDenied,
        );
    }
}

#[tokio::test]
async fn an_expired_device_code_is_expired_token() {
    let world = World::new().await;
    let carol = world.add_user("carol").await;
    let client = world.add_client(tv()).await;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    world.clock.advance(world.settings().device_code_ttl);
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::ExpiredToken,
    );
    // Too late to approve, too.
    assert!(
        !world
            .provider
            .decide_device("WDJBMJHT", &carol, T0, true)
            .await
            .expect("decide_device")
    );
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::ExpiredToken,
    );
}

#[tokio::test]
async fn an_approved_device_code_issues_tokens_once() {
    let world = World::new().await;
    let dave = world.add_user("dave").await;
    let client = world.add_client(tv()).await;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    world.decide("WDJBMJHT", &dave, true).await;
    let response = issued(world.poll(&client, &device_code).await);
    assert_eq!(world.access(&response.access_token).await.sub, dave.id);
    assert_eq!(world.id_token(&response).await.auth_time, T0 - 5);
    assert!(world.refresh_record(refresh_token(&response)).await.offline);
    // Spent, and not told to slow down however soon it is polled.
    refused_for(
        world.poll(&client, &device_code).await,
        ErrorCode::InvalidGrant,
        "already used",
    );
    world.clock.advance(60);
    refused_for(
        world.poll(&client, &device_code).await,
        ErrorCode::InvalidGrant,
        "already used",
    );
}

#[tokio::test]
async fn another_clients_device_code_is_invalid_grant_and_left_alone() {
    // RFC 6749 §5.2: the grant "was issued to another client".
    let world = World::new().await;
    let erin = world.add_user("erin").await;
    let client = world.add_client(tv()).await;
    let intruder = world.add_client(tv()).await;
    let device_code = world.add_device(&client, "WDJBMJHT").await;
    refused(
        world.poll(&intruder, &device_code).await,
        ErrorCode::InvalidGrant,
    );
    refused(
        world.poll(&intruder, "no-such-device-code").await,
        ErrorCode::InvalidGrant,
    );
    // The stranger's poll neither counted as the owner's nor spent the approval.
    refused(
        world.poll(&client, &device_code).await,
        ErrorCode::AuthorizationPending,
    );
    world.decide("WDJBMJHT", &erin, true).await;
    world.clock.advance(world.settings().device_poll_interval);
    refused(
        world.poll(&intruder, &device_code).await,
        ErrorCode::InvalidGrant,
    );
    issued(world.poll(&client, &device_code).await);
}

// ---------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------

/// The messages logged while a future runs: the only outward difference
/// between a reused refresh token (a theft alarm) and a revoked one.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Tests run in parallel, and a callsite first reached where no `Log` is
    /// listening would otherwise be cached as "never interesting" for every
    /// `Log` after it. A global subscriber that takes no events but keeps
    /// every callsite's interest at "sometimes" rules that race out.
    fn install_fallback() {
        struct Undecided;
        impl tracing::Subscriber for Undecided {
            fn register_callsite(
                &self,
                _: &'static tracing::Metadata<'static>,
            ) -> tracing::subscriber::Interest {
                tracing::subscriber::Interest::sometimes()
            }
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                false
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, _: &tracing::Event<'_>) {}
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // Fails only if another subscriber is already global, which then decides.
            let _ = tracing::subscriber::set_global_default(Undecided);
        });
    }

    /// How many messages contain `text`.
    fn count(&self, text: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|m| m.contains(text))
            .count()
    }
}

impl tracing::Subscriber for Log {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

// --- the authorization endpoint's login requirements ---------------------

#[tokio::test]
async fn a_fresh_login_meets_max_age_however_long_consent_takes() {
    use tessera_core::authorize::{AuthorizationRequest, ResponseMode, ResponseType, Step};
    let world = World::new().await;
    let alice = world.add_user("alice").await;
    let client = world.add_client(web_app()).await;
    let session = world
        .provider
        .start_session(&alice)
        .await
        .expect("session")
        .session;
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: REDIRECT.to_owned(),
        response_type: ResponseType::Code,
        response_mode: ResponseMode::Query,
        scope: "openid".to_owned(),
        state: None,
        nonce: None,
        code_challenge: None,
        prompt: Vec::new(),
        max_age: Some(0),
        login_hint: None,
        resources: Vec::new(),
    };
    let step = |fresh| {
        let (world, request, session, alice) = (&world, &request, &session, &alice);
        async move {
            world
                .provider
                .next_step(request, Some((session, alice)), fresh)
                .await
                .expect("a step")
        }
    };
    // Right after the login form, the person is asked to consent...
    assert_eq!(step(true).await, Step::Consent);
    // ...and may take their time on the consent page: the login that led to
    // it still counts (the consent form carries its sid and auth_time).
    world.clock.advance(30);
    assert_eq!(step(true).await, Step::Consent);
    // Without that login, max_age=0 asks for the password again.
    assert_eq!(step(false).await, Step::Login);
}

#[tokio::test]
async fn a_refresh_the_resource_policy_now_refuses_uses_nothing_up() {
    const API: &str = "https://api.example";
    let world = World::new().await;
    world.add_user("alice").await;
    world
        .add_resource(API, "api.read", AcceptedTokens::Both)
        .await;
    let client = world
        .add_client(Client {
            audiences: vec![API.to_owned()],
            ..legacy()
        })
        .await;
    let first = issued(
        world
            .password_grant(
                &client,
                "alice",
                PASSWORD,
                &[("scope", "openid api.read"), ("resource", API)],
            )
            .await,
    );
    // The API now accepts only app tokens: the refresh is refused...
    let store = world.provider.store();
    let resource = store.resource(API).await.expect("read").expect("resource");
    let app_only = Resource {
        accepts: AcceptedTokens::App,
        ..resource.clone()
    };
    assert!(
        store
            .update_resource(&app_only, resource.secret_version)
            .await
            .expect("update")
    );
    let refused = refused(
        world.refresh(&client, refresh_token(&first), None).await,
        ErrorCode::InvalidTarget,
    );
    assert_eq!(refused.reason, Reason::TargetRefusesTokenKind);
    // ...before the token was rotated: once the API accepts user tokens again,
    // the same refresh token still works, and no reuse was detected.
    assert!(
        store
            .update_resource(&resource, resource.secret_version)
            .await
            .expect("update")
    );
    issued(world.refresh(&client, refresh_token(&first), None).await);
}

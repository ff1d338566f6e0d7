//! Authorization request validation: `Provider::authorization_request` over
//! the in-memory store, for a query string parsed as the authorization
//! endpoint parses it (`Params::from_form_deferring_errors`).
//!
//! The provider is built once, with four clients:
//!
//! - `web`: confidential, code and implicit flows, four registered redirect
//!   URIs (one with a query, one loopback, one private-use scheme), two
//!   resources, PKCE not required;
//! - `spa`: public, code flow only, a single registered redirect URI (which
//!   a request may then leave out);
//! - `legacy`: a stored row whose only redirect URI (plain http on a public
//!   host) breaks the registration rules, as a row from before them could;
//! - `service`: client credentials only, no redirect URI.
//!
//! Checked, whatever the query: a request whose client_id or redirect_uri is
//! repeated or not UTF-8 gets an error page, never a redirect; an error
//! redirect and an accepted request go only to a URI registered for the
//! client named (exactly the one presented, or the single registered one
//! when none is), which passes the registration rules; an error redirect
//! carries the request's state and the issuer; an accepted request has no
//! deferred error, keeps the state, uses an allowed grant, never returns
//! tokens in the query, has PKCE (S256) where required, nonce and openid for
//! an ID token, a scope within the client's and resources among its
//! audiences.

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use tessera_core::authorize::{
    AuthorizationRequest, AuthorizeError, Redirect, ResponseMode, ResponseType,
    redirect_uri_matches,
};
use tessera_core::crypto::{KeyEncryptionKey, SecretDigest};
use tessera_core::model::{
    AcceptedTokens, Client, GrantType, IntrospectionPolicy, Resource, TokenFormat,
};
use tessera_core::params::Params;
use tessera_core::registration::check_redirect_uri;
use tessera_core::scope::Scope;
use tessera_core::testing::MemoryStore;
use tessera_core::{FixedClock, Provider, Settings};

const ISSUER: &str = "https://issuer.example";
const T0: i64 = 1_800_000_000;

struct World {
    runtime: tokio::runtime::Runtime,
    provider: Provider,
    clients: Vec<Client>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(T0));
    let (kek, _) = KeyEncryptionKey::generate();
    let provider = Provider::new(store, clock, Settings::new(ISSUER), kek);
    let clients = vec![
        Client {
            id: "web".into(),
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "https://app.example/cb?tenant=1".into(),
                "http://127.0.0.1/native".into(),
                "com.example.app:/oauth".into(),
            ],
            grants: vec![
                GrantType::AuthorizationCode,
                GrantType::Implicit,
                GrantType::RefreshToken,
            ],
            scopes: scope("openid profile email api:read api:write"),
            audiences: vec![
                "https://api.example".into(),
                "https://app-only.example".into(),
            ],
            require_pkce: false,
            ..client("web")
        },
        Client {
            secret_digest: None,
            redirect_uris: vec!["https://spa.example/callback".into()],
            grants: vec![GrantType::AuthorizationCode],
            scopes: scope("openid profile"),
            ..client("spa")
        },
        Client {
            redirect_uris: vec!["http://legacy.example/cb".into()],
            grants: vec![GrantType::AuthorizationCode, GrantType::Implicit],
            scopes: scope("openid"),
            require_pkce: false,
            ..client("legacy")
        },
        Client {
            redirect_uris: Vec::new(),
            grants: vec![GrantType::ClientCredentials],
            scopes: scope("api:read"),
            ..client("service")
        },
    ];
    runtime.block_on(async {
        for client in &clients {
            provider
                .store()
                .insert_client(client)
                .await
                .expect("insert_client");
        }
        for (audience, scopes, accepts) in [
            (
                "https://api.example",
                "api:read api:write",
                AcceptedTokens::Both,
            ),
            ("https://app-only.example", "", AcceptedTokens::App),
        ] {
            provider
                .store()
                .insert_resource(&Resource {
                    scopes: scope(scopes),
                    accepts,
                    ..Resource::new(audience, T0)
                })
                .await
                .expect("insert_resource");
        }
    });
    World {
        runtime,
        provider,
        clients,
    }
});

fn scope(text: &str) -> Scope {
    Scope::parse(text).expect("scope")
}

fn client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        name: id.to_owned(),
        secret_digest: Some(SecretDigest::of("a-client-secret-for-fuzzing-only")),
        auth_method: None,
        grants: Vec::new(),
        redirect_uris: Vec::new(),
        scopes: Scope::default(),
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

fuzz_target!(|query: &[u8]| {
    let Ok(params) = Params::from_form_deferring_errors(query) else {
        return;
    };
    let world = &*WORLD;
    let result = world
        .runtime
        .block_on(world.provider.authorization_request(&params));
    check(world, &params, result);
});

fn check(
    world: &World,
    params: &Params,
    result: Result<(Client, AuthorizationRequest), AuthorizeError>,
) {
    let unreadable = ["client_id", "redirect_uri"]
        .iter()
        .any(|name| params.is_repeated(name) || params.is_not_utf8(name));
    let named = params
        .get("client_id")
        .and_then(|id| world.clients.iter().find(|c| c.id == id));
    let redirect = match result {
        // Nowhere safe to redirect to: nothing more to check.
        Err(AuthorizeError::Page(message)) => {
            assert!(!message.is_empty());
            return;
        }
        Err(AuthorizeError::Redirect(redirect)) => {
            assert!(
                !unreadable,
                "an unreadable client_id or redirect_uri was redirected"
            );
            let client = named.expect("an error redirected for an unknown client");
            check_destination(client, params, &redirect.redirect_uri);
            check_error_redirect(params, &redirect);
            return;
        }
        Ok(accepted) => accepted,
    };
    let (client, request) = redirect;
    assert!(!unreadable);
    let known = named.expect("a request accepted for an unknown client");
    assert_eq!(client.id, known.id);
    assert_eq!(request.client_id, client.id);
    check_destination(known, params, &request.redirect_uri);

    // Every refusal the endpoint reports was caught.
    assert!(
        params.deferred_error().is_none(),
        "accepted with a deferred error"
    );
    assert!(params.get("request").is_none() && params.get("request_uri").is_none());
    assert_eq!(request.state.as_deref(), params.get("state"));
    assert_eq!(request.nonce.as_deref(), params.get("nonce"));
    assert_eq!(request.login_hint.as_deref(), params.get("login_hint"));
    assert_eq!(request.resources, params.resources());

    let response_type = request.response_type;
    assert_eq!(
        Some(response_type),
        params.get("response_type").and_then(parse_response_type)
    );
    let grant = if response_type == ResponseType::Code {
        GrantType::AuthorizationCode
    } else {
        GrantType::Implicit
    };
    assert!(
        client.allows(grant),
        "{grant} is not allowed to {}",
        client.id
    );
    match params.get("response_mode") {
        Some("query") => assert_eq!(request.response_mode, ResponseMode::Query),
        Some("fragment") => assert_eq!(request.response_mode, ResponseMode::Fragment),
        Some("form_post") => assert_eq!(request.response_mode, ResponseMode::FormPost),
        Some(other) => panic!("response_mode {other:?} accepted"),
        None => {}
    }
    // Tokens never travel in a query string.
    if response_type.is_implicit() {
        assert_ne!(request.response_mode, ResponseMode::Query);
    }

    // PKCE: S256 only; required for public clients and where the client asks.
    match &request.code_challenge {
        Some(challenge) => {
            assert_eq!(params.get("code_challenge_method"), Some("S256"));
            assert_eq!(params.get("code_challenge"), Some(challenge.as_str()));
            assert_eq!(challenge.len(), 43);
            assert!(
                challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        None => {
            assert!(params.get("code_challenge").is_none());
            assert!(params.get("code_challenge_method").is_none());
            if response_type == ResponseType::Code {
                assert!(!client.is_public() && !client.require_pkce);
            }
        }
    }

    let scope = Scope::parse(&request.scope).expect("the accepted scope parses");
    assert!(
        scope.is_subset(&client.scopes),
        "{scope} beyond {}",
        client.scopes
    );
    if response_type.has_id_token() {
        assert!(scope.contains("openid"));
        assert!(request.nonce.is_some());
    }
    for resource in &request.resources {
        assert!(client.audiences.contains(resource), "{resource:?}");
        // The resource that takes app tokens only is never granted to a person.
        assert_ne!(resource, "https://app-only.example");
    }

    for prompt in &request.prompt {
        assert!(
            ["none", "login", "consent", "select_account"].contains(&prompt.as_str()),
            "{prompt:?}"
        );
    }
    if request.prompt.iter().any(|p| p == "none") {
        assert_eq!(request.prompt.len(), 1);
    }
    if let Some(max_age) = request.max_age {
        assert!(max_age >= 0);
        assert_eq!(
            params.get("max_age").map(str::parse::<i64>),
            Some(Ok(max_age))
        );
    }
}

/// Where a response or an error goes: the presented redirect URI, which is
/// registered for the client, or the single registered one; never a URI the
/// registration rules refuse.
fn check_destination(client: &Client, params: &Params, destination: &str) {
    match params.get("redirect_uri") {
        Some(presented) => assert_eq!(destination, presented),
        None => assert_eq!(client.redirect_uris, [destination]),
    }
    assert!(
        redirect_uri_matches(&client.redirect_uris, destination),
        "{destination:?} is not registered for {}",
        client.id
    );
    assert!(
        check_redirect_uri(destination).is_ok(),
        "{destination:?} breaks the registration rules"
    );
}

fn check_error_redirect(params: &Params, redirect: &Redirect) {
    let param = |name: &str| {
        let mut found = redirect.params.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} twice in {redirect:?}");
        first
    };
    assert!(
        param("error").is_some_and(|e| !e.is_empty()),
        "{redirect:?}"
    );
    assert!(param("error_description").is_some(), "{redirect:?}");
    assert_eq!(param("state"), params.get("state"), "{redirect:?}");
    assert_eq!(param("iss"), Some(ISSUER));
    assert!(redirect.refusal.is_some());
    match params.get("response_mode") {
        Some("query") => assert_eq!(redirect.mode, ResponseMode::Query),
        Some("fragment") => assert_eq!(redirect.mode, ResponseMode::Fragment),
        Some("form_post") => assert_eq!(redirect.mode, ResponseMode::FormPost),
        _ => {}
    }
}

/// `response_type`: a space-separated set (OAuth 2.0 Multiple Response Types
/// §3), of the four combinations supported.
fn parse_response_type(text: &str) -> Option<ResponseType> {
    let mut words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    words.sort_unstable();
    words.dedup();
    let count = text.split(' ').filter(|w| !w.is_empty()).count();
    if count != words.len() {
        return None;
    }
    match words.as_slice() {
        ["code"] => Some(ResponseType::Code),
        ["token"] => Some(ResponseType::Token),
        ["id_token"] => Some(ResponseType::IdToken),
        ["id_token", "token"] => Some(ResponseType::IdTokenToken),
        _ => None,
    }
}

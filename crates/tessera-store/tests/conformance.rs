//! One conformance suite for every store backend. Each `check_*` function
//! exercises a group of verbs through the `Store` trait alone; the `sqlite` and
//! `postgres` tests run all of them against a fresh database, and the `memory`
//! test against the core's in-memory store, which the core's own tests use in
//! place of a database. Every check uses its own random IDs, so checks do not
//! depend on each other or on their order.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use sqlx::Connection as _;
use tessera_core::crypto::{SecretDigest, random_bytes, random_token};
use tessera_core::model::{
    AcceptedTokens, Client, ClientAuthMethod, GrantType, IntrospectionPolicy, Resource,
    SealedSecret, TokenFormat,
};
use tessera_core::scope::Scope;
use tessera_core::store::{
    AuthorizationCode, CodeUse, Consent, DeviceAuthorization, DevicePoll, DeviceStatus,
    LoginFailures, OperatorToken, ReferenceToken, RefreshState, RefreshToken, Roles, SecretUpdate,
    Session, Store, StoreError, StoredKey, TokenPurpose, User,
};
use tessera_core::trace::{TraceEndpoint, TraceEvent, TraceOutcome, TraceStep};
use tokio::sync::Barrier;

/// 2100-01-01. Rows of every check except the purge checks expire then (or, for
/// the people checks, around `T0`), so that purging at earlier instants only
/// ever touches the purge checks' rows.
const FAR_FUTURE: i64 = 4_102_444_800;

/// How many tasks race in the concurrency checks.
const RACERS: usize = 20;

const POSTGRES_URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

// --- fixtures --------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh identifier: lowercase, so it is also a valid unquoted SQL name.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", hex(&random_bytes::<8>()))
}

/// Every optional field set, and values that need escaping in JSON or URLs.
fn full_client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: "Orders \"service\" — ünïcode \\ 'quoted'".to_owned(),
        secret_digest: Some(SecretDigest::of(&random_token())),
        // NUL and 0xff bytes catch a backend that stores the blob as text.
        sealed_secret: Some([&[0x00, 0xff, 0x00][..], &random_bytes::<40>()].concat()),
        auth_method: Some(ClientAuthMethod::ClientSecretPost),
        jwks: Some(client_jwks()),
        jwks_uri: Some("https://keys.example/jwks?x=1&y=%20\"z\"".to_owned()),
        grants: vec![
            GrantType::ClientCredentials,
            GrantType::TokenExchange,
            GrantType::JwtBearer,
            GrantType::Saml2Bearer,
            GrantType::RefreshToken,
        ],
        redirect_uris: vec![
            "https://app.example/cb?x=1&y=%20\"z\"".to_owned(),
            "http://127.0.0.1:8080/callback".to_owned(),
        ],
        scopes: Scope::from_tokens(["orders:read", "orders:write", "openid"]),
        audiences: vec![
            "https://api.example/orders".to_owned(),
            "urn:example:billing".to_owned(),
        ],
        token_format: Some(TokenFormat::Reference),
        access_token_ttl: Some(600),
        introspection: IntrospectionPolicy::Own,
        require_pkce: false,
        id_token_alg: Some(tessera_jose::Algorithm::RS256),
        post_logout_redirect_uris: vec!["https://app.example/bye".to_owned()],
        metadata: tessera_core::model::ClientMetadata {
            impersonation: true,
            serves: vec!["https://orders.example".to_owned()],
            client_uri: Some("https://app.example".to_owned()),
            logo_uri: Some("https://app.example/logo.png".to_owned()),
            tos_uri: Some("https://app.example/tos".to_owned()),
            policy_uri: Some("https://app.example/privacy".to_owned()),
            contacts: vec!["ops@app.example".to_owned()],
            software_id: Some("app".to_owned()),
            software_version: Some("1.2.3 — ü".to_owned()),
            kind: Some(tessera_core::model::ClientKind::Web),
            registration: Some(tessera_core::model::ManagedRegistration {
                access_token_digest: "ab".repeat(32),
                registered_at: created_at,
                vouched: true,
            }),
            owner: Some("owner — ü".to_owned()),
        },
        created_at,
    }
}

/// A public client: no secret digest, explicit `none` authentication.
fn public_client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: "Single-page app".to_owned(),
        secret_digest: None,
        sealed_secret: None,
        auth_method: Some(ClientAuthMethod::None),
        jwks: None,
        jwks_uri: None,
        grants: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::DeviceCode,
            GrantType::Implicit,
        ],
        redirect_uris: vec!["https://spa.example/callback".to_owned()],
        scopes: Scope::from_tokens(["openid", "profile"]),
        audiences: Vec::new(),
        token_format: Some(TokenFormat::Jwt),
        access_token_ttl: None,
        introspection: IntrospectionPolicy::Any,
        require_pkce: true,
        id_token_alg: None,
        post_logout_redirect_uris: vec![],
        metadata: Default::default(),
        created_at,
    }
}

/// Empty lists, no auth method and no format, but a secret and a TTL.
fn bare_client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: String::new(),
        secret_digest: Some(SecretDigest::of(&random_token())),
        sealed_secret: None,
        auth_method: None,
        jwks: None,
        jwks_uri: None,
        grants: Vec::new(),
        redirect_uris: Vec::new(),
        scopes: Scope::default(),
        audiences: Vec::new(),
        token_format: None,
        access_token_ttl: Some(1),
        introspection: IntrospectionPolicy::Any,
        require_pkce: true,
        id_token_alg: None,
        post_logout_redirect_uris: vec![],
        metadata: Default::default(),
        created_at,
    }
}

/// Two public keys, one without `kid` and `alg`, with values that need
/// escaping in JSON.
fn client_jwks() -> tessera_jose::JwkSet {
    serde_json::from_value(json!({"keys": [
        {"kty": "EC", "kid": "k\"1\" — ü", "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    ]}))
    .expect("JWK Set")
}

/// A `private_key_jwt` client: keys, no secret.
fn keyed_client(id: &str, created_at: i64) -> Client {
    Client {
        secret_digest: None,
        sealed_secret: None,
        auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
        jwks: Some(client_jwks()),
        jwks_uri: None,
        ..bare_client(id, created_at)
    }
}

fn stored_key(alg: &str, created_at: i64, activates_at: i64) -> StoredKey {
    // NUL and 0xff bytes catch a backend that stores the blob as text.
    let mut sealed = vec![0x00, 0xff, 0x00, 0x7f];
    sealed.extend_from_slice(&random_bytes::<60>());
    StoredKey {
        kid: unique("kid"),
        alg: alg.to_owned(),
        sealed_private_key: sealed,
        created_at,
        activates_at,
        revoked_at: None,
    }
}

fn reference_token(client_id: &str, expires_at: i64) -> ReferenceToken {
    ReferenceToken {
        digest: SecretDigest::of(&random_token()),
        client_id: client_id.to_owned(),
        claims: json!({
            "iss": "https://issuer.example",
            "sub": "user \"42\" — ü",
            "aud": ["https://api.example/orders", "urn:example:billing"],
            "exp": expires_at,
            "iat": 1_700_000_000_i64,
            "scope": "orders:read openid",
            "act": { "sub": "actor", "nested": { "deep": [1, null, true] } },
        }),
        expires_at,
        revoked: false,
    }
}

fn expect_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// The stored keys of one algorithm, in the store's order.
async fn keys_of(store: &dyn Store, alg: &str) -> Vec<StoredKey> {
    store
        .signing_keys()
        .await
        .expect("signing_keys")
        .into_iter()
        .filter(|k| k.alg == alg)
        .collect()
}

/// "Now" for the people checks: their rows live around it, far beyond every
/// instant `check_purge` and `check_people_purge` purge at, and expire before
/// FAR_FUTURE.
const T0: i64 = 4_000_000_000;

/// A user whose username and email are in mixed case, to catch a backend that
/// lower-cases what it stores instead of only what it compares.
fn user(created_at: i64) -> User {
    let tag = hex(&random_bytes::<6>());
    User {
        id: unique("user"),
        username: format!("Alice_{tag}"),
        email: Some(format!("Alice.{tag}@Example.COM")),
        name: Some("Alice \"Ally\" Lidell — ü".to_owned()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        roles: Default::default(),
        created_at,
    }
}

fn session(user_id: &str, expires_at: i64) -> Session {
    Session {
        digest: SecretDigest::of(&random_token()),
        sid: unique("sid"),
        user_id: user_id.to_owned(),
        auth_time: T0 - 500,
        last_seen: T0 - 100,
        expires_at,
    }
}

fn consent(user_id: &str, client_id: &str, scopes: &[&str], granted_at: i64) -> Consent {
    Consent {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scopes: Scope::from_tokens(scopes.iter().copied()),
        granted_at,
    }
}

/// Every optional field set except what the exchange records.
fn code(user_id: &str, client_id: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        digest: SecretDigest::of(&random_token()),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: "https://app.example/cb?x=1&y=%20\"z\"".to_owned(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        scope: Scope::from_tokens(["openid", "profile", "orders:read"]),
        nonce: Some("n-0S6_WzA2Mj \"ü\"".to_owned()),
        audiences: vec![
            "https://api.example/orders".to_owned(),
            "urn:example:billing".to_owned(),
        ],
        auth_time: T0 - 30,
        sid: Some(unique("sid")),
        expires_at,
        consumed_at: None,
        access_jti: None,
        access_expires_at: None,
        family_id: None,
    }
}

/// Every optional field set; the access token it was issued with expires at
/// `T0 + 900`.
fn refresh(user_id: &str, client_id: &str, family_id: &str) -> RefreshToken {
    RefreshToken {
        jti: unique("rt"),
        family_id: family_id.to_owned(),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        scope: Scope::from_tokens(["openid", "offline_access", "orders:read"]),
        audiences: vec!["https://api.example/orders".to_owned()],
        auth_time: T0 - 3_000,
        sid: Some(unique("sid")),
        offline: true,
        issued_at: T0 - 60,
        expires_at: T0 + 86_400,
        family_expires_at: T0 + 30 * 86_400,
        access_jti: Some(unique("at")),
        access_expires_at: Some(T0 + 900),
        rotated_at: None,
        revoked: false,
        successor_jti: None,
        token_digest: Some(SecretDigest::of(&unique("refresh-token"))),
    }
}

async fn insert_refresh(store: &dyn Store, tokens: &[&RefreshToken]) {
    for token in tokens {
        store
            .insert_refresh_token(token)
            .await
            .expect("insert_refresh_token");
    }
}

async fn stored_refresh(store: &dyn Store, jti: &str) -> Option<RefreshToken> {
    store.refresh_token(jti).await.expect("refresh_token")
}

async fn access_revoked(store: &dyn Store, token: &RefreshToken) -> bool {
    let jti = token
        .access_jti
        .as_deref()
        .expect("token has an access jti");
    store.is_jti_revoked(jti).await.expect("is_jti_revoked")
}

// --- checks ----------------------------------------------------------------

async fn check_ping(store: &dyn Store, backend: &str) {
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), backend);
}

async fn check_clients(store: &dyn Store) {
    let base = 1_700_000_000;
    let full = full_client(&unique("full"), base + 2);
    let public = public_client(&unique("public"), base + 1);
    let bare = bare_client(&unique("bare"), base);
    // Newest first, so that `clients()` has to sort by creation time.
    for client in [&full, &public, &bare] {
        store.insert_client(client).await.expect("insert_client");
    }
    for client in [&full, &public, &bare] {
        let read = store.client(&client.id).await.expect("client");
        assert_eq!(read.as_ref(), Some(client), "round trip of {}", client.id);
    }
    let read_public = store.client(&public.id).await.expect("client");
    assert!(read_public.is_some_and(|c| c.is_public() && c.secret_digest.is_none()));
    let keyed = keyed_client(&unique("keyed"), base);
    store.insert_client(&keyed).await.expect("insert_client");
    let read_keyed = store.client(&keyed.id).await.expect("client");
    assert_eq!(read_keyed.as_ref(), Some(&keyed));
    assert!(read_keyed.is_some_and(|c| !c.is_public() && c.secret_digest.is_none()));
    assert_eq!(
        store.client(&unique("missing")).await.expect("client"),
        None
    );

    let ours = [&full.id, &public.id, &bare.id];
    assert!(store.delete_client(&keyed.id).await.expect("delete_client"));
    let listed: Vec<Client> = store
        .clients()
        .await
        .expect("clients")
        .into_iter()
        .filter(|c| ours.contains(&&c.id))
        .collect();
    assert_eq!(listed, vec![bare.clone(), public.clone(), full.clone()]);

    // A taken ID is refused whatever the rest of the record, and the original
    // stays as it was.
    expect_conflict(
        store
            .insert_client(&public_client(&full.id, base + 10))
            .await,
        "duplicate client ID",
    );
    assert_eq!(
        store.client(&full.id).await.expect("client"),
        Some(full.clone())
    );

    // Client IDs are compared exactly: a different case is a different client.
    let upper = bare_client(&full.id.to_uppercase(), base + 3);
    assert_ne!(upper.id, full.id);
    store
        .insert_client(&upper)
        .await
        .expect("insert upper-case ID");
    assert_eq!(store.client(&upper.id).await.expect("client"), Some(upper));
    assert_eq!(store.client(&full.id).await.expect("client"), Some(full));
}

async fn check_client_updates(store: &dyn Store) {
    let base = 1_700_000_000;
    let bare = bare_client(&unique("upd"), base);
    let other = bare_client(&unique("upd-other"), base);
    for client in [&bare, &other] {
        store.insert_client(client).await.expect("insert_client");
    }
    // Every setting changes (the keys too); the ID, the secret and the
    // creation time cannot.
    let full = full_client(&bare.id, base + 50);
    let changed = Client {
        secret_digest: Some(SecretDigest::of("not stored by an update")),
        ..full.clone()
    };
    assert!(
        store
            .update_client(&changed, SecretUpdate::Keep)
            .await
            .expect("update_client")
    );
    assert_eq!(
        store.client(&bare.id).await.expect("client"),
        Some(Client {
            secret_digest: bare.secret_digest,
            sealed_secret: bare.sealed_secret.clone(),
            created_at: bare.created_at,
            ..full.clone()
        })
    );
    // And back again: cleared options are stored as cleared.
    assert!(
        store
            .update_client(&bare, SecretUpdate::Keep)
            .await
            .expect("update_client")
    );
    assert_eq!(
        store.client(&bare.id).await.expect("client"),
        Some(bare.clone())
    );

    // With the secret: the digest and the sealed copy are written, and
    // cleared when the client has none (a move to private_key_jwt).
    assert!(
        store
            .update_client(&changed, SecretUpdate::Replace)
            .await
            .expect("update_client")
    );
    assert_eq!(
        store.client(&bare.id).await.expect("client"),
        Some(Client {
            created_at: bare.created_at,
            ..changed.clone()
        })
    );
    let keyed = keyed_client(&bare.id, base);
    assert!(
        store
            .update_client(&keyed, SecretUpdate::Replace)
            .await
            .expect("update_client")
    );
    assert_eq!(store.client(&bare.id).await.expect("client"), Some(keyed));
    assert!(
        store
            .update_client(&bare, SecretUpdate::Replace)
            .await
            .expect("update_client")
    );
    assert_eq!(store.client(&bare.id).await.expect("client"), Some(bare));
    assert_eq!(
        store.client(&other.id).await.expect("client"),
        Some(other),
        "other clients are untouched"
    );
    assert!(
        !store
            .update_client(
                &bare_client(&unique("missing"), base),
                SecretUpdate::Replace
            )
            .await
            .expect("update_client")
    );
}

async fn check_client_secrets(store: &dyn Store) {
    let confidential = full_client(&unique("conf"), 1_700_000_000);
    let public = public_client(&unique("pub"), 1_700_000_000);
    store
        .insert_client(&confidential)
        .await
        .expect("insert_client");
    store.insert_client(&public).await.expect("insert_client");

    let new_secret = random_token();
    let digest = SecretDigest::of(&new_secret);
    let sealed = random_bytes::<48>().to_vec();
    assert!(
        store
            .set_client_secret(&confidential.id, &digest, Some(&sealed))
            .await
            .expect("set_client_secret")
    );
    let updated = store
        .client(&confidential.id)
        .await
        .expect("client")
        .expect("client exists");
    assert!(
        updated
            .secret_digest
            .is_some_and(|d| d.matches(&new_secret))
    );
    // Only the secret changed, digest and sealed copy together.
    assert_eq!(
        updated,
        Client {
            secret_digest: Some(digest),
            sealed_secret: Some(sealed),
            ..confidential.clone()
        }
    );
    // Without a sealed copy (any method but client_secret_jwt), none is kept.
    assert!(
        store
            .set_client_secret(&confidential.id, &digest, None)
            .await
            .expect("set_client_secret")
    );
    assert_eq!(
        store.client(&confidential.id).await.expect("client"),
        Some(Client {
            secret_digest: Some(digest),
            sealed_secret: None,
            ..confidential
        })
    );

    // A public client does not become confidential this way.
    assert!(
        !store
            .set_client_secret(&public.id, &digest, None)
            .await
            .expect("set_client_secret")
    );
    assert_eq!(
        store.client(&public.id).await.expect("client"),
        Some(public)
    );

    assert!(
        !store
            .set_client_secret(&unique("missing"), &digest, None)
            .await
            .expect("set_client_secret")
    );
}

async fn check_delete_client(store: &dyn Store) {
    let doomed = full_client(&unique("doomed"), 1_700_000_000);
    let kept = full_client(&unique("kept"), 1_700_000_000);
    store.insert_client(&doomed).await.expect("insert_client");
    store.insert_client(&kept).await.expect("insert_client");
    let doomed_tokens = [
        reference_token(&doomed.id, FAR_FUTURE),
        reference_token(&doomed.id, FAR_FUTURE + 1),
    ];
    let kept_token = reference_token(&kept.id, FAR_FUTURE);
    for token in doomed_tokens.iter().chain([&kept_token]) {
        store
            .insert_reference_token(token)
            .await
            .expect("insert_reference_token");
    }
    // What users granted each client.
    let user_id = unique("user");
    let grants: Vec<(Consent, AuthorizationCode, RefreshToken)> = [&doomed.id, &kept.id]
        .into_iter()
        .map(|client_id| {
            (
                consent(&user_id, client_id, &["openid"], T0),
                code(&user_id, client_id, T0 + 60),
                refresh(&user_id, client_id, &unique("family")),
            )
        })
        .collect();
    for (consent, code, token) in &grants {
        store.save_consent(consent).await.expect("save_consent");
        store.insert_code(code).await.expect("insert_code");
        insert_refresh(store, &[token]).await;
    }

    assert!(
        store
            .delete_client(&doomed.id)
            .await
            .expect("delete_client")
    );
    assert_eq!(store.client(&doomed.id).await.expect("client"), None);
    for token in &doomed_tokens {
        assert_eq!(
            store
                .reference_token(&token.digest)
                .await
                .expect("reference_token"),
            None,
            "a deleted client's reference tokens go with it"
        );
    }
    assert_eq!(
        store
            .reference_token(&kept_token.digest)
            .await
            .expect("reference_token"),
        Some(kept_token)
    );
    assert_eq!(store.client(&kept.id).await.expect("client"), Some(kept));
    // So does what was granted to it: a client registered later under the same
    // ID inherits no consent and no tokens.
    let [
        (doomed_consent, doomed_code, doomed_refresh),
        (kept_consent, kept_code, kept_refresh),
    ] = &grants[..]
    else {
        unreachable!("two clients")
    };
    assert_eq!(
        store
            .consent(&user_id, &doomed_consent.client_id)
            .await
            .expect("consent"),
        None
    );
    assert_eq!(
        store
            .consume_code(&doomed_code.digest, T0)
            .await
            .expect("consume_code"),
        CodeUse::Invalid
    );
    assert_eq!(stored_refresh(store, &doomed_refresh.jti).await, None);
    assert_eq!(
        store.consents(&user_id).await.expect("consents"),
        vec![kept_consent.clone()]
    );
    assert!(matches!(
        store
            .consume_code(&kept_code.digest, T0)
            .await
            .expect("consume_code"),
        CodeUse::Fresh(_)
    ));
    assert_eq!(
        stored_refresh(store, &kept_refresh.jti).await.as_ref(),
        Some(kept_refresh)
    );

    assert!(
        !store
            .delete_client(&doomed.id)
            .await
            .expect("delete_client")
    );
    assert!(
        !store
            .delete_client(&unique("missing"))
            .await
            .expect("delete_client")
    );

    // The ID is free again.
    let reborn = public_client(&doomed.id, 1_700_000_100);
    store
        .insert_client(&reborn)
        .await
        .expect("insert after delete");
    assert_eq!(
        store.client(&doomed.id).await.expect("client"),
        Some(reborn)
    );
}

async fn check_resources(store: &dyn Store) {
    let base = 1_700_000_000;
    let orders = Resource {
        audience: format!("https://api.example/{}?v=\"2\"", unique("orders")),
        scopes: Scope::from_tokens(["orders:read", "orders:write"]),
        token_format: Some(TokenFormat::Jwt),
        accepts: AcceptedTokens::App,
        signing_alg: Some(tessera_jose::Algorithm::HS256),
        secret_version: 3,
        sealed_secret: Some(SealedSecret(random_bytes::<60>().to_vec())),
        created_at: base + 2,
    };
    let billing = Resource {
        audience: format!("urn:example:{}", unique("billing")),
        scopes: Scope::default(),
        token_format: None,
        accepts: AcceptedTokens::User,
        signing_alg: Some(tessera_jose::Algorithm::RS256),
        secret_version: 2,
        sealed_secret: None,
        created_at: base + 1,
    };
    let reports = Resource {
        audience: unique("reports"),
        scopes: Scope::from_tokens(["reports"]),
        token_format: Some(TokenFormat::Reference),
        accepts: AcceptedTokens::Both,
        signing_alg: None,
        secret_version: 0,
        sealed_secret: None,
        created_at: base,
    };
    for resource in [&orders, &billing, &reports] {
        store
            .insert_resource(resource)
            .await
            .expect("insert_resource");
    }
    for resource in [&orders, &billing, &reports] {
        let read = store.resource(&resource.audience).await.expect("resource");
        assert_eq!(read.as_ref(), Some(resource));
    }
    assert_eq!(
        store.resource(&unique("missing")).await.expect("resource"),
        None
    );

    let ours = [&orders.audience, &billing.audience, &reports.audience];
    let listed: Vec<Resource> = store
        .resources()
        .await
        .expect("resources")
        .into_iter()
        .filter(|r| ours.contains(&&r.audience))
        .collect();
    assert_eq!(
        listed,
        vec![reports.clone(), billing.clone(), orders.clone()]
    );

    expect_conflict(
        store
            .insert_resource(&Resource {
                audience: orders.audience.clone(),
                ..billing.clone()
            })
            .await,
        "duplicate resource audience",
    );
    assert_eq!(
        store.resource(&orders.audience).await.expect("resource"),
        Some(orders)
    );
}

async fn check_resource_updates(store: &dyn Store) {
    let plain = Resource::new(
        format!("https://api.example/{}", unique("ledger")),
        1_700_000_000,
    );
    store
        .insert_resource(&plain)
        .await
        .expect("insert_resource");

    // Every setting changes in one update, guarded by the secret version read.
    let sealed = SealedSecret(random_bytes::<60>().to_vec());
    let hs256 = Resource {
        scopes: Scope::from_tokens(["ledger:read"]),
        token_format: Some(TokenFormat::Jwt),
        accepts: AcceptedTokens::App,
        signing_alg: Some(tessera_jose::Algorithm::HS256),
        secret_version: 1,
        sealed_secret: Some(sealed.clone()),
        // Never changed by an update.
        created_at: 1,
        ..plain.clone()
    };
    assert!(
        store
            .update_resource(&hs256, 0)
            .await
            .expect("update_resource")
    );
    let stored = store.resource(&plain.audience).await.expect("resource");
    assert_eq!(
        stored,
        Some(Resource {
            created_at: plain.created_at,
            ..hs256.clone()
        })
    );
    // Read at version 0: a later update from that read would undo the secret.
    assert!(
        !store
            .update_resource(&plain, 0)
            .await
            .expect("stale update_resource")
    );
    assert!(
        !store
            .update_resource(&Resource::new(unique("missing"), 0), 0)
            .await
            .expect("update_resource of a missing resource")
    );

    // Rotation: from the current version only, one step, the new sealed value.
    let next = SealedSecret(random_bytes::<60>().to_vec());
    assert!(
        !store
            .rotate_resource_secret(&plain.audience, 0, &next)
            .await
            .expect("stale rotate")
    );
    assert!(
        store
            .rotate_resource_secret(&plain.audience, 1, &next)
            .await
            .expect("rotate_resource_secret")
    );
    let rotated = store
        .resource(&plain.audience)
        .await
        .expect("resource")
        .expect("exists");
    assert_eq!(rotated.secret_version, 2);
    assert_eq!(rotated.sealed_secret, Some(next.clone()));
    assert_eq!(rotated.scopes, hs256.scopes);
    assert!(
        !store
            .rotate_resource_secret(&plain.audience, 1, &sealed)
            .await
            .expect("replayed rotate")
    );

    // Away from HS256: the secret goes, the version stays, and there is
    // nothing left to rotate.
    let rs256 = Resource {
        signing_alg: Some(tessera_jose::Algorithm::RS256),
        sealed_secret: None,
        ..rotated.clone()
    };
    assert!(
        store
            .update_resource(&rs256, 2)
            .await
            .expect("update_resource")
    );
    assert_eq!(
        store.resource(&plain.audience).await.expect("resource"),
        Some(rs256.clone())
    );
    assert!(
        !store
            .rotate_resource_secret(&plain.audience, 2, &next)
            .await
            .expect("rotate without HS256")
    );
    assert!(
        !store
            .rotate_resource_secret(&unique("missing"), 0, &next)
            .await
            .expect("rotate a missing resource")
    );
}

async fn check_keys(store: &dyn Store) {
    // The store treats `alg` as opaque; a unique one keeps this check's keys
    // apart from every other check's.
    let alg = unique("alg");
    let late = stored_key(&alg, 100, 3_000);
    let early = stored_key(&alg, 100, 1_000);
    let tie_newer = stored_key(&alg, 200, 2_000);
    let tie_older = stored_key(&alg, 150, 2_000);
    for key in [&late, &early, &tie_newer, &tie_older] {
        store
            .insert_signing_key(key)
            .await
            .expect("insert_signing_key");
    }
    // Oldest activation first; equal activations by creation, as the key ring
    // orders them.
    assert_eq!(
        keys_of(store, &alg).await,
        vec![early.clone(), tie_older, tie_newer, late]
    );

    // Key IDs are unique across algorithms.
    let duplicate = StoredKey {
        kid: early.kid.clone(),
        ..stored_key(&unique("alg"), 500, 5_000)
    };
    expect_conflict(
        store.insert_signing_key(&duplicate).await,
        "duplicate key ID",
    );
    assert!(keys_of(store, &duplicate.alg).await.is_empty());
    assert_eq!(keys_of(store, &alg).await.first(), Some(&early));
}

async fn check_insert_key_unless_newer(store: &dyn Store) {
    let alg = unique("alg");
    let other_alg = unique("alg");
    let insert = |key: StoredKey, newer_than: i64| async move {
        let inserted = store
            .insert_signing_key_unless_newer(&key, newer_than)
            .await
            .expect("insert_signing_key_unless_newer");
        (key, inserted)
    };

    // No key of the algorithm at all: inserted.
    let (first, inserted) = insert(stored_key(&alg, 100, 1_000), i64::MIN).await;
    assert!(inserted);
    // Any existing key activates after i64::MIN.
    let (_, inserted) = insert(stored_key(&alg, 100, 1_000), i64::MIN).await;
    assert!(!inserted);
    let (_, inserted) = insert(stored_key(&alg, 100, 500), 999).await;
    assert!(!inserted, "a key activating at 1000 is newer than 999");
    // Activating exactly at `newer_than` is not newer.
    let (second, inserted) = insert(stored_key(&alg, 200, 2_000), 1_000).await;
    assert!(inserted);
    let (_, inserted) = insert(stored_key(&alg, 200, 3_000), 1_999).await;
    assert!(!inserted);

    // Another algorithm neither blocks nor is blocked.
    let (other, inserted) = insert(stored_key(&other_alg, 100, 9_000), i64::MIN).await;
    assert!(inserted, "keys of another algorithm do not count");
    let (third, inserted) = insert(stored_key(&alg, 300, 2_500), 2_000).await;
    assert!(inserted, "a newer key of another algorithm does not count");

    assert_eq!(
        keys_of(store, &alg).await,
        vec![first.clone(), second, third]
    );
    assert_eq!(keys_of(store, &other_alg).await, vec![other]);

    // When the guard lets it through, a taken key ID is still a conflict.
    let duplicate = StoredKey {
        kid: first.kid.clone(),
        ..stored_key(&alg, 400, 10_000)
    };
    expect_conflict(
        store
            .insert_signing_key_unless_newer(&duplicate, i64::MAX)
            .await,
        "duplicate key ID through insert_signing_key_unless_newer",
    );
}

async fn check_reference_tokens(store: &dyn Store) {
    let client_id = unique("client");
    let token = reference_token(&client_id, FAR_FUTURE);
    store
        .insert_reference_token(&token)
        .await
        .expect("insert_reference_token");
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(token.clone())
    );
    let unknown = SecretDigest::of(&random_token());
    assert_eq!(
        store
            .reference_token(&unknown)
            .await
            .expect("reference_token"),
        None
    );

    expect_conflict(
        store
            .insert_reference_token(&ReferenceToken {
                digest: token.digest,
                ..reference_token(&client_id, FAR_FUTURE + 5)
            })
            .await,
        "duplicate reference token digest",
    );
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(token.clone())
    );

    // Revoking keeps the record and flips only `revoked`; it reports whether
    // the token existed, also when it was revoked already.
    assert!(
        store
            .revoke_reference_token(&token.digest)
            .await
            .expect("revoke_reference_token")
    );
    let revoked = ReferenceToken {
        revoked: true,
        ..token.clone()
    };
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(revoked.clone())
    );
    assert!(
        store
            .revoke_reference_token(&token.digest)
            .await
            .expect("revoke_reference_token")
    );
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(revoked)
    );
    assert!(
        !store
            .revoke_reference_token(&unknown)
            .await
            .expect("revoke_reference_token")
    );
    assert_eq!(
        store
            .reference_token(&unknown)
            .await
            .expect("reference_token"),
        None,
        "revoking an unknown token does not create it"
    );

    // A token stored revoked reads back revoked; other tokens are untouched.
    let born_revoked = ReferenceToken {
        revoked: true,
        ..reference_token(&client_id, FAR_FUTURE)
    };
    let bystander = reference_token(&client_id, FAR_FUTURE);
    for t in [&born_revoked, &bystander] {
        store
            .insert_reference_token(t)
            .await
            .expect("insert_reference_token");
    }
    assert_eq!(
        store
            .reference_token(&born_revoked.digest)
            .await
            .expect("reference_token"),
        Some(born_revoked)
    );
    assert_eq!(
        store
            .reference_token(&bystander.digest)
            .await
            .expect("reference_token"),
        Some(bystander)
    );
}

async fn check_revoked_jtis(store: &dyn Store) {
    let jti = unique("jti");
    let other = unique("jti");
    assert!(!store.is_jti_revoked(&jti).await.expect("is_jti_revoked"));
    store
        .revoke_jti(&jti, FAR_FUTURE)
        .await
        .expect("revoke_jti");
    assert!(store.is_jti_revoked(&jti).await.expect("is_jti_revoked"));
    // Revoking again is not an error.
    store
        .revoke_jti(&jti, FAR_FUTURE)
        .await
        .expect("revoke_jti again");
    store
        .revoke_jti(&jti, FAR_FUTURE + 60)
        .await
        .expect("revoke_jti again, other expiry");
    assert!(store.is_jti_revoked(&jti).await.expect("is_jti_revoked"));
    assert!(!store.is_jti_revoked(&other).await.expect("is_jti_revoked"));
    // Compared exactly.
    assert!(
        !store
            .is_jti_revoked(&jti.to_uppercase())
            .await
            .expect("is_jti_revoked")
    );
}

async fn check_client_assertions(store: &dyn Store) {
    let client = unique("client");
    let other = unique("client");
    let jti = unique("jti");
    let record = |client: &str, jti: &str, expires_at: i64, now: i64| {
        let (client, jti) = (client.to_owned(), jti.to_owned());
        async move {
            store
                .record_client_assertion(&client, &jti, expires_at, now)
                .await
                .expect("record_client_assertion")
        }
    };
    assert!(record(&client, &jti, FAR_FUTURE, T0).await, "first use");
    assert!(!record(&client, &jti, FAR_FUTURE, T0).await, "replay");
    assert!(
        !record(&client, &jti, FAR_FUTURE + 60, T0 + 1).await,
        "replay, other exp"
    );
    // A jti is the client's own: another client's is not a replay.
    assert!(record(&other, &jti, FAR_FUTURE, T0).await);
    // Compared exactly.
    assert!(record(&client, &jti.to_uppercase(), FAR_FUTURE, T0).await);

    // A record past its expiry no longer blocks the jti, purged or not; the
    // new use is recorded with its own expiry. Expired means
    // `expires_at <= now`.
    let reused = unique("jti");
    assert!(record(&client, &reused, 1_000, 500).await);
    assert!(!record(&client, &reused, 1_000, 999).await);
    assert!(record(&client, &reused, FAR_FUTURE, 1_000).await);
    assert!(!record(&client, &reused, FAR_FUTURE, 1_001).await);
    assert!(!record(&client, &reused, FAR_FUTURE, FAR_FUTURE - 1).await);
}

async fn check_purge(store: &dyn Store) {
    // Everything here expires long before FAR_FUTURE, so no other check's rows
    // are purged or counted. Expired means `expires_at <= now`, the rule
    // introspection applies to `exp`.
    let now = 1_500;
    let jti_old = unique("jti");
    let jti_now = unique("jti");
    let jti_next = unique("jti");
    let jti_later = unique("jti");
    for (jti, expires_at) in [
        (&jti_old, 1_000),
        (&jti_now, now),
        (&jti_next, now + 1),
        (&jti_later, 3_000),
    ] {
        store.revoke_jti(jti, expires_at).await.expect("revoke_jti");
    }
    // Used client assertions: one expired at `now`, one later.
    let asserting = unique("client");
    let assertion_old = unique("jti");
    let assertion_later = unique("jti");
    let record = |jti: &str, expires_at: i64| {
        let (client, jti) = (asserting.clone(), jti.to_owned());
        async move {
            store
                .record_client_assertion(&client, &jti, expires_at, 0)
                .await
                .expect("record_client_assertion")
        }
    };
    assert!(record(&assertion_old, 1_200).await);
    assert!(record(&assertion_later, 2_000).await);
    let client_id = unique("client");
    let token_old = ReferenceToken {
        revoked: true,
        ..reference_token(&client_id, 999)
    };
    let token_now = reference_token(&client_id, now);
    let token_next = reference_token(&client_id, now + 1);
    for token in [&token_old, &token_now, &token_next] {
        store
            .insert_reference_token(token)
            .await
            .expect("insert_reference_token");
    }

    assert_eq!(store.purge_expired(now).await.expect("purge_expired"), 5);
    // Read through the verb: a record still there refuses the jti even at a
    // time before its expiry; a purged one is recorded afresh (and then kept
    // until FAR_FUTURE, out of this check's counts).
    assert!(!record(&assertion_later, 2_000).await, "not yet purged");
    assert!(record(&assertion_old, FAR_FUTURE).await, "purged");
    for (jti, revoked) in [
        (&jti_old, false),
        (&jti_now, false),
        (&jti_next, true),
        (&jti_later, true),
    ] {
        assert_eq!(
            store.is_jti_revoked(jti).await.expect("is_jti_revoked"),
            revoked,
            "jti {jti} after purging at {now}"
        );
    }
    for (token, kept) in [
        (&token_old, false),
        (&token_now, false),
        (&token_next, true),
    ] {
        let read = store
            .reference_token(&token.digest)
            .await
            .expect("reference_token");
        assert_eq!(
            read.is_some(),
            kept,
            "token expiring at {}",
            token.expires_at
        );
    }
    assert_eq!(store.purge_expired(now).await.expect("purge_expired"), 0);
    assert_eq!(
        store.purge_expired(now + 1).await.expect("purge_expired"),
        2
    );
    assert_eq!(store.purge_expired(10_000).await.expect("purge_expired"), 2);
    assert!(
        !store
            .is_jti_revoked(&jti_later)
            .await
            .expect("is_jti_revoked")
    );
    assert!(record(&assertion_later, FAR_FUTURE).await, "purged");
    assert_eq!(store.purge_expired(10_000).await.expect("purge_expired"), 0);
}

// --- people ----------------------------------------------------------------

async fn check_users(store: &dyn Store) {
    let alice = user(T0 + 2);
    let bob = User {
        email: None,
        name: None,
        ..user(T0 + 1)
    };
    // Several users without an email: a missing email is no duplicate.
    let carol = User {
        email: None,
        ..user(T0)
    };
    for u in [&alice, &bob, &carol] {
        store.insert_user(u).await.expect("insert_user");
    }
    for u in [&alice, &bob, &carol] {
        assert_eq!(store.user(&u.id).await.expect("user").as_ref(), Some(u));
    }
    assert_eq!(store.user(&unique("missing")).await.expect("user"), None);
    assert_eq!(
        store.user(&alice.id.to_uppercase()).await.expect("user"),
        None,
        "user IDs are compared exactly"
    );

    // What a person types at login: the username or the email, in any case.
    let email = alice.email.clone().expect("alice has an email");
    for login in [
        alice.username.clone(),
        alice.username.to_lowercase(),
        alice.username.to_uppercase(),
        email.clone(),
        email.to_lowercase(),
        email.to_uppercase(),
    ] {
        assert_eq!(
            store.user_by_login(&login).await.expect("user_by_login"),
            Some(alice.clone()),
            "login {login:?}"
        );
    }
    assert_eq!(
        store
            .user_by_login(&bob.username.to_uppercase())
            .await
            .expect("user_by_login"),
        Some(bob.clone())
    );
    assert_eq!(
        store
            .user_by_login(&unique("nobody"))
            .await
            .expect("user_by_login"),
        None
    );
    assert_eq!(
        store.user_by_login("").await.expect("user_by_login"),
        None,
        "an empty login matches no user without an email"
    );

    let listed: Vec<User> = store
        .users()
        .await
        .expect("users")
        .into_iter()
        .filter(|u| [&alice.id, &bob.id, &carol.id].contains(&&u.id))
        .collect();
    assert_eq!(listed, vec![carol.clone(), bob.clone(), alice.clone()]);

    // Taken usernames and emails are refused whatever their case, and so is a
    // name that another user has as the other kind, since a login names either.
    let fresh = || User {
        email: None,
        ..user(T0 + 10)
    };
    let attempts = [
        (
            User {
                username: alice.username.to_uppercase(),
                ..fresh()
            },
            "duplicate username in another case",
        ),
        (
            User {
                email: Some(email.to_lowercase()),
                ..fresh()
            },
            "duplicate email in another case",
        ),
        (
            User {
                id: alice.id.clone(),
                ..fresh()
            },
            "duplicate user ID",
        ),
        (
            User {
                username: email.to_uppercase(),
                ..fresh()
            },
            "username that is another user's email",
        ),
        (
            User {
                email: Some(bob.username.to_lowercase()),
                ..fresh()
            },
            "email that is another user's username",
        ),
    ];
    for (attempt, what) in &attempts {
        expect_conflict(store.insert_user(attempt).await, what);
        if attempt.id != alice.id {
            assert_eq!(store.user(&attempt.id).await.expect("user"), None, "{what}");
        }
    }
    assert_eq!(
        store.user(&alice.id).await.expect("user"),
        Some(alice.clone())
    );
    // One user may have their own email as username.
    let dora = User {
        username: format!("Dora.{}@example.com", hex(&random_bytes::<6>())),
        ..fresh()
    };
    let dora = User {
        email: Some(dora.username.to_uppercase()),
        ..dora
    };
    store.insert_user(&dora).await.expect("insert_user");
    assert_eq!(
        store
            .user_by_login(&dora.username)
            .await
            .expect("user_by_login"),
        Some(dora)
    );

    // A new password ends the user's sessions, and only theirs.
    let alice_session = session(&alice.id, T0 + 3600);
    let bob_session = session(&bob.id, T0 + 3600);
    for s in [&alice_session, &bob_session] {
        store.insert_session(s).await.expect("insert_session");
    }
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA";
    assert_eq!(
        store
            .set_password(&alice.id, new_hash, false)
            .await
            .expect("set_password"),
        Some(0)
    );
    assert_eq!(
        store
            .touch_session(&alice_session.digest, T0, T0 - 1000)
            .await
            .expect("touch_session"),
        None
    );
    assert!(
        store
            .touch_session(&bob_session.digest, T0, T0 - 1000)
            .await
            .expect("touch_session")
            .is_some()
    );
    assert_eq!(
        store.user(&alice.id).await.expect("user"),
        Some(User {
            password_hash: new_hash.to_owned(),
            ..alice.clone()
        })
    );
    assert_eq!(store.user(&bob.id).await.expect("user"), Some(bob.clone()));
    assert_eq!(
        store
            .set_password(&unique("missing"), new_hash, true)
            .await
            .expect("set_password"),
        None
    );

    // With revoke_grants, the user's refresh tokens and their access tokens
    // go too, and only theirs.
    let client_id = unique("client");
    let alices = refresh(&alice.id, &client_id, &unique("family"));
    let bobs = refresh(&bob.id, &client_id, &unique("family"));
    insert_refresh(store, &[&alices, &bobs]).await;
    let alices_code = code(&alice.id, &client_id, T0 + 60);
    let bobs_code = code(&bob.id, &client_id, T0 + 60);
    for c in [&alices_code, &bobs_code] {
        store.insert_code(c).await.expect("insert_code");
    }
    assert_eq!(
        store
            .set_password(&alice.id, new_hash, true)
            .await
            .expect("set_password"),
        Some(1)
    );
    assert!(
        stored_refresh(store, &alices.jti)
            .await
            .expect("kept")
            .revoked
    );
    assert!(access_revoked(store, &alices).await);
    assert_eq!(stored_refresh(store, &bobs.jti).await.as_ref(), Some(&bobs));
    assert!(!access_revoked(store, &bobs).await);
    // A code obtained with the old password and not yet redeemed goes too.
    assert_eq!(
        store
            .authorization_code(&alices_code.digest)
            .await
            .expect("authorization_code"),
        None
    );
    assert_eq!(
        store
            .authorization_code(&bobs_code.digest)
            .await
            .expect("authorization_code"),
        Some(bobs_code)
    );
}

async fn check_delete_user(store: &dyn Store) {
    let doomed = user(T0);
    let kept = user(T0);
    for u in [&doomed, &kept] {
        store.insert_user(u).await.expect("insert_user");
    }
    let client_id = unique("client");
    let sessions = [
        session(&doomed.id, T0 + 1_000),
        session(&kept.id, T0 + 1_000),
    ];
    let codes = [
        code(&doomed.id, &client_id, T0 + 60),
        code(&kept.id, &client_id, T0 + 60),
    ];
    let tokens = [
        refresh(&doomed.id, &client_id, &unique("family")),
        refresh(&kept.id, &client_id, &unique("family")),
    ];
    for ((s, c), t) in sessions.iter().zip(&codes).zip(&tokens) {
        store.insert_session(s).await.expect("insert_session");
        store.insert_code(c).await.expect("insert_code");
        insert_refresh(store, &[t]).await;
    }
    for u in [&doomed, &kept] {
        store
            .save_consent(&consent(&u.id, &client_id, &["openid"], T0))
            .await
            .expect("save_consent");
    }
    // The doomed user's code was exchanged: its access token is on record.
    let code_access_jti = unique("at");
    store
        .record_code_tokens(&codes[0].digest, &code_access_jti, T0 + 900, None)
        .await
        .expect("record_code_tokens");

    assert!(store.delete_user(&doomed.id).await.expect("delete_user"));
    assert_eq!(store.user(&doomed.id).await.expect("user"), None);
    assert_eq!(
        store
            .user_by_login(&doomed.username)
            .await
            .expect("user_by_login"),
        None
    );
    assert_eq!(
        store
            .touch_session(&sessions[0].digest, T0, T0 - 1_000)
            .await
            .expect("touch_session"),
        None,
        "a deleted user's sessions go with them"
    );
    assert_eq!(
        store
            .delete_session(&sessions[0].digest, T0)
            .await
            .expect("delete_session"),
        None
    );
    assert_eq!(
        store
            .consent(&doomed.id, &client_id)
            .await
            .expect("consent"),
        None
    );
    assert!(
        store
            .consents(&doomed.id)
            .await
            .expect("consents")
            .is_empty()
    );
    assert_eq!(
        store
            .consume_code(&codes[0].digest, T0)
            .await
            .expect("consume_code"),
        CodeUse::Invalid
    );
    assert_eq!(stored_refresh(store, &tokens[0].jti).await, None);
    // The access tokens issued to them stop working too.
    assert!(access_revoked(store, &tokens[0]).await);
    assert!(
        store
            .is_jti_revoked(&code_access_jti)
            .await
            .expect("is_jti_revoked")
    );

    // The other user keeps everything.
    assert_eq!(
        store.user(&kept.id).await.expect("user"),
        Some(kept.clone())
    );
    assert!(
        store
            .touch_session(&sessions[1].digest, T0, T0 - 1_000)
            .await
            .expect("touch_session")
            .is_some()
    );
    assert!(
        store
            .consent(&kept.id, &client_id)
            .await
            .expect("consent")
            .is_some()
    );
    assert!(matches!(
        store
            .consume_code(&codes[1].digest, T0)
            .await
            .expect("consume_code"),
        CodeUse::Fresh(_)
    ));
    assert_eq!(
        stored_refresh(store, &tokens[1].jti).await,
        Some(tokens[1].clone())
    );
    assert!(!access_revoked(store, &tokens[1]).await);

    assert!(!store.delete_user(&doomed.id).await.expect("delete_user"));
    assert!(
        !store
            .delete_user(&unique("missing"))
            .await
            .expect("delete_user")
    );
    // The username and email are free again.
    let reborn = User {
        id: unique("user"),
        ..doomed.clone()
    };
    store
        .insert_user(&reborn)
        .await
        .expect("insert after delete");
    assert_eq!(
        store
            .user_by_login(&doomed.username)
            .await
            .expect("user_by_login"),
        Some(reborn)
    );
}

/// Access tokens recorded under a person alone (no refresh family or code
/// records them): revoked with the person's grants, per client when a
/// consent is withdrawn, all of them for a new password or a deletion, and
/// purged once expired.
async fn check_user_access_tokens(store: &dyn Store) {
    let (alice, bob) = (user(T0), user(T0));
    for u in [&alice, &bob] {
        store.insert_user(u).await.expect("insert_user");
    }
    let (one, two) = (unique("client"), unique("client"));
    let tokens = [
        (unique("at"), &alice.id, &one),
        (unique("at"), &alice.id, &two),
        (unique("at"), &bob.id, &one),
    ];
    for (jti, user_id, client_id) in &tokens {
        for _ in 0..2 {
            // Recording twice is harmless.
            store
                .record_user_access_token(jti, user_id, client_id, T0 + 900)
                .await
                .expect("record_user_access_token");
        }
    }
    let revoked = |i: usize| {
        let jti = tokens[i].0.clone();
        async move { store.is_jti_revoked(&jti).await.expect("is_jti_revoked") }
    };
    assert!(!revoked(0).await && !revoked(1).await && !revoked(2).await);

    store
        .revoke_consent(&alice.id, Some(&one))
        .await
        .expect("revoke_consent");
    assert!(revoked(0).await, "the withdrawn client's token");
    assert!(!revoked(1).await, "another client's token stays");
    assert!(!revoked(2).await, "another user's token stays");

    store
        .set_password(&alice.id, "$argon2id$new", true)
        .await
        .expect("set_password");
    assert!(revoked(1).await, "a new password revokes the rest");
    assert!(!revoked(2).await);

    assert!(store.delete_user(&bob.id).await.expect("delete_user"));
    assert!(revoked(2).await, "deleting the user revokes its tokens");

    // Expired, the records go (and the revocations with them).
    store.purge_expired(T0 + 900).await.expect("purge_expired");
    for i in 0..tokens.len() {
        assert!(!revoked(i).await);
    }
    store
        .revoke_consent(&alice.id, None)
        .await
        .expect("revoke_consent");
    assert!(!revoked(0).await, "a purged record is not revoked again");
}

async fn check_session_end_revokes_online_grants(store: &dyn Store) {
    let user_id = unique("user");
    let client_id = unique("client");
    let ended = session(&user_id, T0 + 3_600);
    let other = session(&user_id, T0 + 3_600);
    for x in [&ended, &other] {
        store.insert_session(x).await.expect("insert_session");
    }
    let online = RefreshToken {
        sid: Some(ended.sid.clone()),
        offline: false,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    let offline = RefreshToken {
        sid: Some(ended.sid.clone()),
        offline: true,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    let elsewhere = RefreshToken {
        sid: Some(other.sid.clone()),
        offline: false,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    insert_refresh(store, &[&online, &offline, &elsewhere]).await;
    // A code of the ended session not yet redeemed, and one of the other.
    let pending = AuthorizationCode {
        sid: Some(ended.sid.clone()),
        ..code(&user_id, &client_id, T0 + 60)
    };
    let other_pending = AuthorizationCode {
        sid: Some(other.sid.clone()),
        ..code(&user_id, &client_id, T0 + 60)
    };
    for c in [&pending, &other_pending] {
        store.insert_code(c).await.expect("insert_code");
    }

    // Touching by sid keeps a live session alive and finds no ended one.
    assert_eq!(
        store
            .touch_session_by_sid(&ended.sid, T0 + 5, T0 - 1_000)
            .await
            .expect("touch_session_by_sid")
            .map(|s| s.last_seen),
        Some(T0 + 5)
    );
    assert_eq!(
        store
            .touch_session_by_sid(&ended.sid, T0 + 5, T0 + 10)
            .await
            .expect("touch_session_by_sid"),
        None,
        "idle since before idle_since"
    );

    assert!(
        store
            .delete_session(&ended.digest, T0)
            .await
            .expect("delete_session")
            .is_some()
    );
    assert!(
        stored_refresh(store, &online.jti)
            .await
            .expect("kept")
            .revoked
    );
    assert!(access_revoked(store, &online).await);
    assert_eq!(
        stored_refresh(store, &offline.jti).await.as_ref(),
        Some(&offline)
    );
    assert!(!access_revoked(store, &offline).await);
    assert_eq!(
        store
            .consume_code(&pending.digest, T0)
            .await
            .expect("consume_code"),
        CodeUse::Invalid,
        "the ended session's unredeemed code is gone"
    );
    assert!(
        store
            .authorization_code(&other_pending.digest)
            .await
            .expect("authorization_code")
            .is_some(),
        "another session's code stays"
    );
    assert_eq!(
        store
            .touch_session_by_sid(&ended.sid, T0 + 6, i64::MIN)
            .await
            .expect("touch_session_by_sid"),
        None
    );

    // By sid, the same.
    assert!(
        store
            .delete_session_by_sid(&other.sid, T0)
            .await
            .expect("delete_session_by_sid")
    );
    assert!(
        stored_refresh(store, &elsewhere.jti)
            .await
            .expect("kept")
            .revoked
    );
    assert!(access_revoked(store, &elsewhere).await);
}

async fn check_sessions(store: &dyn Store) {
    let user_id = unique("user");
    let s = session(&user_id, T0 + 1_000);
    store.insert_session(&s).await.expect("insert_session");
    expect_conflict(
        store
            .insert_session(&Session {
                digest: s.digest,
                ..session(&user_id, T0 + 1_000)
            })
            .await,
        "duplicate session digest",
    );
    expect_conflict(
        store
            .insert_session(&Session {
                sid: s.sid.clone(),
                ..session(&user_id, T0 + 1_000)
            })
            .await,
        "duplicate sid",
    );

    let touch = |now: i64, idle_since: i64| async move {
        store
            .touch_session(&s.digest, now, idle_since)
            .await
            .expect("touch_session")
    };
    // Seen at T0 - 100: active if seen after T0 - 200; `last_seen` becomes now.
    let seen_at = |last_seen: i64| Session {
        last_seen,
        ..s.clone()
    };
    assert_eq!(touch(T0, T0 - 200).await, Some(seen_at(T0)));
    assert_eq!(touch(T0 + 50, T0 - 1).await, Some(seen_at(T0 + 50)));
    // Idle: last seen at T0 + 50, which is not after T0 + 50. A refused touch
    // changes nothing, so the session is still active for a longer idle limit.
    assert_eq!(touch(T0 + 500, T0 + 50).await, None);
    assert_eq!(touch(T0 + 501, T0 + 49).await, Some(seen_at(T0 + 501)));
    // The absolute end holds whatever the activity.
    assert_eq!(touch(T0 + 1_000, T0).await, None);
    assert_eq!(touch(T0 + 5_000, i64::MIN).await, None);
    assert_eq!(touch(T0 + 999, T0).await, Some(seen_at(T0 + 999)));
    assert_eq!(
        store
            .touch_session(&SecretDigest::of(&random_token()), T0, i64::MIN)
            .await
            .expect("touch_session"),
        None
    );

    // Deleting returns the session as it was last touched (for its `sid`).
    assert_eq!(
        store
            .delete_session(&s.digest, T0)
            .await
            .expect("delete_session"),
        Some(seen_at(T0 + 999))
    );
    assert_eq!(
        store
            .delete_session(&s.digest, T0)
            .await
            .expect("delete_session"),
        None
    );
    assert_eq!(touch(T0 + 1, T0).await, None);

    let other = session(&user_id, T0 + 1_000);
    let bystander = session(&user_id, T0 + 1_000);
    for x in [&other, &bystander] {
        store.insert_session(x).await.expect("insert_session");
    }
    assert!(
        store
            .delete_session_by_sid(&other.sid, T0)
            .await
            .expect("delete_session_by_sid")
    );
    assert!(
        !store
            .delete_session_by_sid(&other.sid, T0)
            .await
            .expect("delete_session_by_sid")
    );
    assert!(
        !store
            .delete_session_by_sid(&unique("sid"), T0)
            .await
            .expect("delete_session_by_sid")
    );
    assert_eq!(
        store
            .touch_session(&other.digest, T0, i64::MIN)
            .await
            .expect("touch_session"),
        None
    );
    assert!(
        store
            .touch_session(&bystander.digest, T0, i64::MIN)
            .await
            .expect("touch_session")
            .is_some()
    );
}

async fn check_consents(store: &dyn Store) {
    let user_id = unique("user");
    let other_user = unique("user");
    let [c1, c2, c3] = [unique("client"), unique("client"), unique("client")];
    assert_eq!(store.consent(&user_id, &c1).await.expect("consent"), None);

    let first = consent(&user_id, &c1, &["openid", "profile", "orders:read"], T0);
    store.save_consent(&first).await.expect("save_consent");
    assert_eq!(
        store.consent(&user_id, &c1).await.expect("consent"),
        Some(first)
    );
    // Saving again replaces the scopes and the time.
    let replaced = consent(&user_id, &c1, &["openid"], T0 + 10);
    store.save_consent(&replaced).await.expect("save_consent");
    assert_eq!(
        store.consent(&user_id, &c1).await.expect("consent"),
        Some(replaced.clone())
    );
    let second = consent(&user_id, &c2, &["openid", "email"], T0 + 5);
    let empty = consent(&user_id, &c3, &[], T0 + 7);
    let others = consent(&other_user, &c1, &["openid"], T0);
    for x in [&second, &empty, &others] {
        store.save_consent(x).await.expect("save_consent");
    }
    assert_eq!(
        store.consents(&user_id).await.expect("consents"),
        vec![second.clone(), empty.clone(), replaced.clone()],
        "oldest grant first"
    );
    assert_eq!(
        store
            .consent(&user_id, &c1.to_uppercase())
            .await
            .expect("consent"),
        None
    );

    // Refresh tokens: two of one family for c1 (one already rotated), one for
    // c2, and the other user's for c1.
    let family1 = unique("family");
    let rotated = RefreshToken {
        rotated_at: Some(T0 - 30),
        ..refresh(&user_id, &c1, &family1)
    };
    let current = refresh(&user_id, &c1, &family1);
    let for_c2 = refresh(&user_id, &c2, &unique("family"));
    let bystander = refresh(&other_user, &c1, &unique("family"));
    insert_refresh(store, &[&rotated, &current, &for_c2, &bystander]).await;

    assert_eq!(
        store
            .revoke_consent(&user_id, Some(&c1))
            .await
            .expect("revoke_consent"),
        1
    );
    assert_eq!(store.consent(&user_id, &c1).await.expect("consent"), None);
    assert_eq!(
        store.consents(&user_id).await.expect("consents"),
        vec![second.clone(), empty.clone()]
    );
    for token in [&rotated, &current] {
        let read = stored_refresh(store, &token.jti).await.expect("kept");
        assert!(read.revoked, "the withdrawn client's family is revoked");
        assert!(access_revoked(store, token).await);
    }
    // The revoked family's live token now shows up as revoked, not reused,
    // and cannot rotate.
    let read = stored_refresh(store, &current.jti).await.expect("kept");
    assert_eq!(read.state(T0), RefreshState::Revoked);
    assert!(
        !store
            .rotate_refresh_token(&current.jti, &refresh(&user_id, &c1, &family1), T0)
            .await
            .expect("rotate_refresh_token")
    );
    for token in [&for_c2, &bystander] {
        assert_eq!(
            stored_refresh(store, &token.jti).await.as_ref(),
            Some(token)
        );
        assert!(!access_revoked(store, token).await);
    }
    assert_eq!(
        store.consent(&other_user, &c1).await.expect("consent"),
        Some(others.clone())
    );

    for client in [&c1, &unique("client")] {
        assert_eq!(
            store
                .revoke_consent(&user_id, Some(client))
                .await
                .expect("revoke_consent"),
            0
        );
    }

    // All clients at once.
    assert_eq!(
        store
            .revoke_consent(&user_id, None)
            .await
            .expect("revoke_consent"),
        2
    );
    assert!(store.consents(&user_id).await.expect("consents").is_empty());
    assert!(
        stored_refresh(store, &for_c2.jti)
            .await
            .expect("kept")
            .revoked
    );
    assert!(access_revoked(store, &for_c2).await);
    assert_eq!(
        stored_refresh(store, &bystander.jti).await,
        Some(bystander.clone())
    );
    assert!(!access_revoked(store, &bystander).await);
    assert_eq!(
        store.consents(&other_user).await.expect("consents"),
        vec![others]
    );
    assert_eq!(
        store
            .revoke_consent(&user_id, None)
            .await
            .expect("revoke_consent"),
        0
    );
}

async fn check_codes(store: &dyn Store) {
    let user_id = unique("user");
    let client_id = unique("client");
    let c = code(&user_id, &client_id, T0 + 60);
    store.insert_code(&c).await.expect("insert_code");
    expect_conflict(
        store
            .insert_code(&AuthorizationCode {
                digest: c.digest,
                ..code(&user_id, &client_id, T0 + 120)
            })
            .await,
        "duplicate code digest",
    );

    assert_eq!(
        store
            .authorization_code(&c.digest)
            .await
            .expect("authorization_code"),
        Some(c.clone()),
        "a plain read uses nothing up"
    );
    assert_eq!(
        store
            .authorization_code(&SecretDigest::of(&random_token()))
            .await
            .expect("authorization_code"),
        None
    );
    let consumed = AuthorizationCode {
        consumed_at: Some(T0),
        ..c.clone()
    };
    let consume = |digest: SecretDigest, now: i64| async move {
        store
            .consume_code(&digest, now)
            .await
            .expect("consume_code")
    };
    assert_eq!(
        consume(c.digest, T0).await,
        CodeUse::Fresh(consumed.clone())
    );

    // What the exchange issues comes back with a replay, so it can be revoked.
    let family_id = unique("family");
    assert!(
        store
            .record_code_tokens(&c.digest, "at-1", T0 + 900, Some(&family_id))
            .await
            .expect("record_code_tokens")
    );
    let recorded = AuthorizationCode {
        access_jti: Some("at-1".to_owned()),
        access_expires_at: Some(T0 + 900),
        family_id: Some(family_id),
        ..consumed
    };
    assert_eq!(
        consume(c.digest, T0 + 2).await,
        CodeUse::Replayed(recorded.clone()),
        "the second use is a replay and keeps the first use's time"
    );
    // After a replay nothing more is recorded: the exchange, if still under
    // way, learns it has to revoke what it issues.
    assert!(
        !store
            .record_code_tokens(&c.digest, "at-late", T0 + 900, None)
            .await
            .expect("record_code_tokens")
    );
    // Also once the code has expired, for as long as it is kept.
    assert_eq!(
        consume(c.digest, T0 + 3_000).await,
        CodeUse::Replayed(recorded)
    );

    // Expired means `expires_at <= now`; a refused consume marks nothing.
    let expiring = code(&user_id, &client_id, T0);
    store.insert_code(&expiring).await.expect("insert_code");
    assert_eq!(consume(expiring.digest, T0).await, CodeUse::Invalid);
    assert_eq!(consume(expiring.digest, T0 + 1).await, CodeUse::Invalid);
    assert_eq!(
        consume(expiring.digest, T0 - 1).await,
        CodeUse::Fresh(AuthorizationCode {
            consumed_at: Some(T0 - 1),
            ..expiring
        })
    );

    assert_eq!(
        consume(SecretDigest::of(&random_token()), T0).await,
        CodeUse::Invalid
    );

    // No PKCE, nonce, session or audiences; tokens recorded without a family.
    let bare = AuthorizationCode {
        code_challenge: None,
        scope: Scope::default(),
        nonce: None,
        audiences: Vec::new(),
        sid: None,
        ..code(&user_id, &client_id, T0 + 60)
    };
    store.insert_code(&bare).await.expect("insert_code");
    let bare_consumed = AuthorizationCode {
        consumed_at: Some(T0),
        ..bare.clone()
    };
    assert_eq!(
        consume(bare.digest, T0).await,
        CodeUse::Fresh(bare_consumed.clone())
    );
    assert!(
        store
            .record_code_tokens(&bare.digest, "at-2", T0 + 900, None)
            .await
            .expect("record_code_tokens")
    );
    assert_eq!(
        consume(bare.digest, T0).await,
        CodeUse::Replayed(AuthorizationCode {
            access_jti: Some("at-2".to_owned()),
            access_expires_at: Some(T0 + 900),
            ..bare_consumed
        })
    );

    // Consumed only with its own client and redirect_uri, and only fresh;
    // any other try changes nothing.
    let bound = code(&user_id, &client_id, T0 + 60);
    store.insert_code(&bound).await.expect("insert_code");
    let consume_bound = |client_id: &str, redirect_uri: &str, now: i64| {
        let (client_id, redirect_uri) = (client_id.to_owned(), redirect_uri.to_owned());
        async move {
            store
                .consume_bound_code(&bound.digest, now, &client_id, &redirect_uri)
                .await
                .expect("consume_bound_code")
        }
    };
    let other_client = unique("client");
    for (client, redirect_uri, now) in [
        (other_client.as_str(), bound.redirect_uri.as_str(), T0),
        (client_id.as_str(), "https://app.example/cb", T0),
        (client_id.as_str(), bound.redirect_uri.as_str(), T0 + 60),
    ] {
        assert_eq!(consume_bound(client, redirect_uri, now).await, None);
    }
    assert_eq!(
        store
            .authorization_code(&bound.digest)
            .await
            .expect("authorization_code"),
        Some(bound.clone()),
        "refused tries use nothing up"
    );
    assert_eq!(
        consume_bound(&client_id, &bound.redirect_uri, T0 + 59).await,
        Some(AuthorizationCode {
            consumed_at: Some(T0 + 59),
            ..bound.clone()
        })
    );
    assert_eq!(
        consume_bound(&client_id, &bound.redirect_uri, T0 + 59).await,
        None,
        "once"
    );

    // The exchange's refresh token and the code's record of it, in one write.
    let exchanged = code(&user_id, &client_id, T0 + 60);
    store.insert_code(&exchanged).await.expect("insert_code");
    assert!(matches!(
        consume(exchanged.digest, T0).await,
        CodeUse::Fresh(_)
    ));
    let first = refresh(&user_id, &client_id, &unique("family"));
    assert!(
        store
            .record_code_exchange(&exchanged.digest, "at-3", T0 + 900, &first)
            .await
            .expect("record_code_exchange")
    );
    assert_eq!(
        store
            .refresh_token(&first.jti)
            .await
            .expect("refresh_token"),
        Some(first.clone())
    );
    let CodeUse::Replayed(replayed) = consume(exchanged.digest, T0 + 1).await else {
        panic!("a second use is a replay");
    };
    assert_eq!(
        (
            replayed.access_jti.as_deref(),
            replayed.family_id.as_deref()
        ),
        (Some("at-3"), Some(first.family_id.as_str()))
    );
    // After the replay: the refresh token is stored for the caller to revoke,
    // and the code's record is left as the replay found it.
    let late = refresh(&user_id, &client_id, &unique("family"));
    assert!(
        !store
            .record_code_exchange(&exchanged.digest, "at-late", T0 + 900, &late)
            .await
            .expect("record_code_exchange")
    );
    assert_eq!(
        store.refresh_token(&late.jti).await.expect("refresh_token"),
        Some(late.clone())
    );
    // A refresh token that cannot be stored records nothing of the code.
    let again = code(&user_id, &client_id, T0 + 60);
    store.insert_code(&again).await.expect("insert_code");
    assert!(matches!(consume(again.digest, T0).await, CodeUse::Fresh(_)));
    expect_conflict(
        store
            .record_code_exchange(&again.digest, "at-4", T0 + 900, &first)
            .await,
        "a refresh jti taken",
    );
    let CodeUse::Replayed(untouched) = consume(again.digest, T0 + 1).await else {
        panic!("a second use is a replay");
    };
    assert_eq!((untouched.access_jti, untouched.family_id), (None, None));
}

async fn check_refresh_tokens(store: &dyn Store) {
    let user_id = unique("user");
    let client_id = unique("client");
    let family = unique("family");
    let token = refresh(&user_id, &client_id, &family);
    let bare = RefreshToken {
        scope: Scope::default(),
        audiences: Vec::new(),
        sid: None,
        offline: false,
        access_jti: None,
        access_expires_at: None,
        ..refresh(&user_id, &client_id, &family)
    };
    insert_refresh(store, &[&token, &bare]).await;
    for t in [&token, &bare] {
        assert_eq!(stored_refresh(store, &t.jti).await.as_ref(), Some(t));
    }
    assert_eq!(stored_refresh(store, &unique("rt")).await, None);
    expect_conflict(
        store
            .insert_refresh_token(&RefreshToken {
                jti: token.jti.clone(),
                ..refresh(&user_id, &client_id, &unique("family"))
            })
            .await,
        "duplicate refresh token jti",
    );
    assert_eq!(stored_refresh(store, &token.jti).await, Some(token.clone()));

    // Rotation marks the token and inserts its successor, or does neither.
    let rotate = |jti: String, now: i64| {
        let successor = RefreshToken {
            issued_at: now,
            ..refresh(&user_id, &client_id, &family)
        };
        async move {
            let rotated = store
                .rotate_refresh_token(&jti, &successor, now)
                .await
                .expect("rotate_refresh_token");
            let stored = stored_refresh(store, &successor.jti).await;
            if rotated {
                assert_eq!(stored, Some(successor.clone()), "the successor is written");
            } else {
                assert_eq!(stored, None, "a refused rotation writes no successor");
            }
            rotated.then_some(successor)
        }
    };
    let state = |jti: String, now: i64| async move {
        stored_refresh(store, &jti).await.map(|t| t.state(now))
    };
    let successor = rotate(token.jti.clone(), T0).await.expect("rotates");
    let rotated = RefreshToken {
        rotated_at: Some(T0),
        successor_jti: Some(successor.jti.clone()),
        ..token.clone()
    };
    assert_eq!(
        stored_refresh(store, &token.jti).await,
        Some(rotated.clone())
    );
    assert_eq!(
        state(successor.jti.clone(), T0).await,
        Some(RefreshState::Current)
    );
    assert!(
        rotate(token.jti.clone(), T0 + 1).await.is_none(),
        "a second use does not rotate"
    );
    assert_eq!(
        stored_refresh(store, &token.jti).await,
        Some(rotated),
        "and keeps the first rotation's time and successor"
    );
    assert_eq!(
        state(token.jti.clone(), T0 + 1).await,
        Some(RefreshState::Rotated)
    );
    // Reuse while the family lives, also past the token's own sliding expiry...
    assert_eq!(
        state(token.jti.clone(), token.expires_at + 1).await,
        Some(RefreshState::Rotated)
    );
    // ...but once the family has ended there is nothing left to revoke.
    assert_eq!(
        state(token.jti.clone(), token.family_expires_at).await,
        Some(RefreshState::Ended)
    );
    assert!(rotate(bare.jti.clone(), T0).await.is_some());

    // A revoked token is told apart from a reused one: revocation is no sign
    // of theft. Revoked after a rotation, it still reads as revoked.
    let revoked = RefreshToken {
        revoked: true,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    let rotated_then_revoked = RefreshToken {
        revoked: true,
        rotated_at: Some(T0 - 5),
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    insert_refresh(store, &[&revoked, &rotated_then_revoked]).await;
    for t in [&revoked, &rotated_then_revoked] {
        assert!(rotate(t.jti.clone(), T0).await.is_none());
        assert_eq!(state(t.jti.clone(), T0).await, Some(RefreshState::Revoked));
        assert_eq!(stored_refresh(store, &t.jti).await.as_ref(), Some(t));
    }

    // Expired (`expires_at <= now`) ends it, and a refused rotation marks
    // nothing.
    let expiring = RefreshToken {
        expires_at: T0,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    insert_refresh(store, &[&expiring]).await;
    assert!(rotate(expiring.jti.clone(), T0).await.is_none());
    assert!(rotate(expiring.jti.clone(), T0 + 10).await.is_none());
    assert_eq!(
        state(expiring.jti.clone(), T0).await,
        Some(RefreshState::Ended)
    );
    assert_eq!(stored_refresh(store, &expiring.jti).await, Some(expiring));
    // The family's end bounds rotation even where the token's own end does not.
    let family_ending = RefreshToken {
        family_expires_at: T0,
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    insert_refresh(store, &[&family_ending]).await;
    assert!(rotate(family_ending.jti.clone(), T0).await.is_none());
    assert_eq!(
        state(family_ending.jti.clone(), T0).await,
        Some(RefreshState::Ended)
    );

    assert!(rotate(unique("rt"), T0).await.is_none());

    // A successor that cannot be written (its jti is taken) undoes the
    // rotation: the token stays current for the client's retry.
    let current = refresh(&user_id, &client_id, &unique("family"));
    insert_refresh(store, &[&current]).await;
    let clash = RefreshToken {
        jti: bare.jti.clone(),
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    assert!(
        store
            .rotate_refresh_token(&current.jti, &clash, T0)
            .await
            .is_err(),
        "the successor's insert fails"
    );
    assert_eq!(stored_refresh(store, &current.jti).await, Some(current));
}

async fn check_revoke_family(store: &dyn Store) {
    let user_id = unique("user");
    let client_id = unique("client");
    let family = unique("family");
    let rotated = RefreshToken {
        rotated_at: Some(T0 - 100),
        ..refresh(&user_id, &client_id, &family)
    };
    let live = refresh(&user_id, &client_id, &family);
    // Its access token has expired: nothing to record.
    let access_expired = RefreshToken {
        access_expires_at: Some(T0 - 10),
        ..refresh(&user_id, &client_id, &family)
    };
    // Expiring exactly now is expired.
    let access_expiring = RefreshToken {
        access_expires_at: Some(T0),
        ..refresh(&user_id, &client_id, &family)
    };
    let no_access = RefreshToken {
        access_jti: None,
        access_expires_at: None,
        ..refresh(&user_id, &client_id, &family)
    };
    let other_family = refresh(&user_id, &client_id, &unique("family"));
    let members = [
        &rotated,
        &live,
        &access_expired,
        &access_expiring,
        &no_access,
    ];
    insert_refresh(store, &members).await;
    insert_refresh(store, &[&other_family]).await;

    assert_eq!(
        store
            .revoke_refresh_family(&family, T0)
            .await
            .expect("revoke_refresh_family"),
        5
    );
    for token in members {
        assert_eq!(
            stored_refresh(store, &token.jti).await,
            Some(RefreshToken {
                revoked: true,
                ..token.clone()
            })
        );
    }
    assert!(access_revoked(store, &rotated).await);
    assert!(access_revoked(store, &live).await);
    assert!(!access_revoked(store, &access_expired).await);
    assert!(!access_revoked(store, &access_expiring).await);
    assert_eq!(
        stored_refresh(store, &other_family.jti).await,
        Some(other_family.clone())
    );
    assert!(!access_revoked(store, &other_family).await);

    assert_eq!(
        stored_refresh(store, &live.jti).await.map(|t| t.state(T0)),
        Some(RefreshState::Revoked)
    );
    // Revoking again revokes nothing new and is not an error.
    assert_eq!(
        store
            .revoke_refresh_family(&family, T0)
            .await
            .expect("revoke_refresh_family"),
        0
    );
    assert_eq!(
        store
            .revoke_refresh_family(&unique("family"), T0)
            .await
            .expect("revoke_refresh_family"),
        0
    );
}

async fn check_login_failures(store: &dyn Store) {
    let key = format!("user:{}", unique("u"));
    let other = format!("addr:{}", unique("ip"));
    assert_eq!(
        store.login_failures(&key).await.expect("login_failures"),
        None
    );
    let record = |key: String, now: i64, window_start: i64| async move {
        store
            .record_login_failure(&key, now, window_start)
            .await
            .expect("record_login_failure")
    };
    let failures = |count: u32, first_at: i64, last_at: i64| LoginFailures {
        count,
        first_at,
        last_at,
    };
    assert_eq!(record(key.clone(), T0, T0 - 900).await, failures(1, T0, T0));
    assert_eq!(
        record(key.clone(), T0 + 10, T0 - 890).await,
        failures(2, T0, T0 + 10)
    );
    // A first failure exactly at the window's start still counts.
    assert_eq!(
        record(key.clone(), T0 + 900, T0).await,
        failures(3, T0, T0 + 900)
    );
    assert_eq!(
        store.login_failures(&key).await.expect("login_failures"),
        Some(failures(3, T0, T0 + 900))
    );
    // The window has moved past the first failure: the count starts again.
    assert_eq!(
        record(key.clone(), T0 + 901, T0 + 1).await,
        failures(1, T0 + 901, T0 + 901)
    );
    assert_eq!(
        record(key.clone(), T0 + 905, T0 + 5).await,
        failures(2, T0 + 901, T0 + 905)
    );

    // Keys are independent.
    assert_eq!(
        store.login_failures(&other).await.expect("login_failures"),
        None
    );
    assert_eq!(
        record(other.clone(), T0, T0 - 900).await,
        failures(1, T0, T0)
    );

    store
        .clear_login_failures(&key)
        .await
        .expect("clear_login_failures");
    assert_eq!(
        store.login_failures(&key).await.expect("login_failures"),
        None
    );
    store
        .clear_login_failures(&key)
        .await
        .expect("clear_login_failures again");
    assert_eq!(
        store.login_failures(&other).await.expect("login_failures"),
        Some(failures(1, T0, T0))
    );
    assert_eq!(
        record(key.clone(), T0 + 2_000, T0 + 1_000).await,
        failures(1, T0 + 2_000, T0 + 2_000)
    );
}

async fn check_people_purge(store: &dyn Store) {
    // Between `check_purge`'s instants and T0, so that no other check's rows
    // are purged or counted.
    let now = 200_000;
    let user_id = unique("user");
    let client_id = unique("client");

    let session_at = |expires_at: i64| Session {
        auth_time: expires_at - 1_000,
        last_seen: expires_at - 10,
        ..session(&user_id, expires_at)
    };
    let (s_old, s_now, s_next) = (session_at(now - 1), session_at(now), session_at(now + 1));
    for s in [&s_old, &s_now, &s_next] {
        store.insert_session(s).await.expect("insert_session");
    }

    // Codes go an hour after they expire; until then a replay is one.
    let code_at = |expires_at: i64| code(&user_id, &client_id, expires_at);
    let (c_old, c_edge, c_recent) = (
        code_at(now - 3_601),
        code_at(now - 3_600),
        code_at(now - 10),
    );
    for c in [&c_old, &c_edge, &c_recent] {
        store.insert_code(c).await.expect("insert_code");
        assert!(matches!(
            store
                .consume_code(&c.digest, c.expires_at - 1)
                .await
                .expect("consume_code"),
            CodeUse::Fresh(_)
        ));
    }

    // Refresh tokens go when their family ends, not when they expire.
    let refresh_ending = |family_expires_at: i64| RefreshToken {
        issued_at: now - 5_000,
        expires_at: now - 100,
        family_expires_at,
        access_expires_at: Some(now - 4_000),
        rotated_at: Some(now - 200),
        ..refresh(&user_id, &client_id, &unique("family"))
    };
    let (r_ended, r_live) = (refresh_ending(now), refresh_ending(now + 1));
    insert_refresh(store, &[&r_ended, &r_live]).await;

    // A code whose exchange started a family is kept, past its hour, while a
    // record of the family is, and one whose access token still lives while
    // it does: a replay must still revoke them (RFC 6749 §4.1.2).
    let (c_family, c_access) = (code_at(now - 7_200), code_at(now - 7_200));
    for (c, access_expires_at, family) in [
        (&c_family, now - 7_000, Some(r_live.family_id.as_str())),
        (&c_access, now - 3_000, None),
    ] {
        store.insert_code(c).await.expect("insert_code");
        assert!(matches!(
            store
                .consume_code(&c.digest, c.expires_at - 1)
                .await
                .expect("consume_code"),
            CodeUse::Fresh(_)
        ));
        store
            .record_code_tokens(&c.digest, &unique("at"), access_expires_at, family)
            .await
            .expect("record_code_tokens");
    }

    // Login failures go a day after the last one.
    let (f_old, f_edge, f_new) = (
        format!("addr:{}", unique("old")),
        format!("addr:{}", unique("edge")),
        format!("addr:{}", unique("new")),
    );
    for (key, last_at) in [
        (&f_old, now - 86_401),
        (&f_edge, now - 86_400),
        (&f_new, now - 1),
    ] {
        store
            .record_login_failure(key, last_at, last_at - 900)
            .await
            .expect("record_login_failure");
    }

    assert_eq!(store.purge_expired(now).await.expect("purge_expired"), 5);
    let touched = |s: &Session| {
        let digest = s.digest;
        async move {
            store
                .delete_session(&digest, T0)
                .await
                .expect("delete_session")
                .is_some()
        }
    };
    assert!(!touched(&s_old).await);
    assert!(!touched(&s_now).await);
    let consumed = |c: &AuthorizationCode| {
        let digest = c.digest;
        async move {
            store
                .consume_code(&digest, now)
                .await
                .expect("consume_code")
        }
    };
    assert_eq!(consumed(&c_old).await, CodeUse::Invalid);
    assert!(matches!(consumed(&c_edge).await, CodeUse::Replayed(_)));
    assert!(matches!(consumed(&c_recent).await, CodeUse::Replayed(_)));
    assert!(matches!(consumed(&c_family).await, CodeUse::Replayed(_)));
    assert!(matches!(consumed(&c_access).await, CodeUse::Replayed(_)));
    assert_eq!(stored_refresh(store, &r_ended.jti).await, None);
    assert_eq!(
        stored_refresh(store, &r_live.jti).await,
        Some(r_live.clone()),
        "a rotated token is kept while its family lives"
    );
    assert_eq!(r_live.state(now), RefreshState::Rotated);
    assert_eq!(
        store.login_failures(&f_old).await.expect("login_failures"),
        None
    );
    for key in [&f_edge, &f_new] {
        assert!(
            store
                .login_failures(key)
                .await
                .expect("login_failures")
                .is_some()
        );
    }
    assert_eq!(store.purge_expired(now).await.expect("purge_expired"), 0);

    // One second later: the session, the code at the edge, the family and the
    // failures at the edge.
    assert_eq!(
        store.purge_expired(now + 1).await.expect("purge_expired"),
        4
    );
    assert!(!touched(&s_next).await);
    assert_eq!(consumed(&c_edge).await, CodeUse::Invalid);
    assert_eq!(stored_refresh(store, &r_live.jti).await, None);
    assert_eq!(
        store.login_failures(&f_edge).await.expect("login_failures"),
        None
    );
    assert!(
        store
            .login_failures(&f_new)
            .await
            .expect("login_failures")
            .is_some()
    );
    // Once the family's last record and the access token are gone, so are
    // their codes.
    assert!(matches!(consumed(&c_family).await, CodeUse::Replayed(_)));
    assert_eq!(
        store.purge_expired(now + 1).await.expect("purge_expired"),
        1
    );
    assert_eq!(consumed(&c_family).await, CodeUse::Invalid);
    assert!(matches!(consumed(&c_access).await, CodeUse::Replayed(_)));
    assert_eq!(
        store.purge_expired(now + 601).await.expect("purge_expired"),
        1
    );
    assert_eq!(consumed(&c_access).await, CodeUse::Invalid);
}

/// How many of a racing `insert_signing_key_unless_newer` may win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRace {
    /// Writers are serialised (SQLite, the in-memory store), so the guard
    /// admits exactly one.
    ExactlyOne,
    /// Under READ COMMITTED, concurrent racers may miss each other's
    /// uncommitted row (see `insert_signing_key_unless_newer` in common.rs).
    AtLeastOne,
}

/// Starts `RACERS` tasks that wait on a barrier, then run `op` at once.
async fn race<T, F, Fut>(store: &Arc<dyn Store>, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let fut = op(Arc::clone(store), i);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for task in tasks {
        results.push(task.await.expect("racing task"));
    }
    results
}

/// A compare-and-swap on a client's metadata: of racers that all read the
/// same document, exactly one writes; a stale reading writes nothing.
async fn check_client_cas_race(store: &Arc<dyn Store>) {
    let client = full_client(&unique("cas"), 1_700_000_000);
    store.insert_client(&client).await.expect("insert_client");
    let read = client.metadata.clone();
    let results = race(store, |store, i| {
        let mut next = client.clone();
        next.metadata.software_version = Some(format!("racer {i}"));
        let read = read.clone();
        async move {
            store
                .update_client_if_unchanged(&next, SecretUpdate::Keep, &read)
                .await
                .expect("update_client_if_unchanged")
        }
    })
    .await;
    let winners: Vec<usize> = (0..RACERS).filter(|i| results[*i]).collect();
    assert_eq!(winners.len(), 1, "{winners:?} all wrote");
    let stored = store
        .client(&client.id)
        .await
        .expect("client")
        .expect("exists");
    assert_eq!(
        stored.metadata.software_version,
        Some(format!("racer {}", winners[0]))
    );
    // The reading is stale now; nothing more is written.
    assert!(
        !store
            .update_client_if_unchanged(&client, SecretUpdate::Keep, &read)
            .await
            .expect("update_client_if_unchanged")
    );
    // Unknown client: nothing to swap.
    let absent = full_client(&unique("cas-absent"), 1_700_000_000);
    assert!(
        !store
            .update_client_if_unchanged(&absent, SecretUpdate::Replace, &absent.metadata)
            .await
            .expect("update_client_if_unchanged")
    );
}

async fn check_key_race(store: &Arc<dyn Store>, expected: KeyRace) {
    let alg = unique("alg");
    let keys: Vec<StoredKey> = (0..RACERS).map(|_| stored_key(&alg, 100, 1_000)).collect();
    let results = race(store, |store, i| {
        let key = keys[i].clone();
        async move {
            let inserted = store.insert_signing_key_unless_newer(&key, i64::MIN).await;
            (key.kid, inserted)
        }
    })
    .await;
    let mut winners = BTreeSet::new();
    for (kid, result) in results {
        if result.expect("insert_signing_key_unless_newer under contention") {
            winners.insert(kid);
        }
    }
    // Whatever the count, a reported insert is a stored key and vice versa.
    let stored: BTreeSet<String> = keys_of(&**store, &alg)
        .await
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(winners, stored);
    match expected {
        KeyRace::ExactlyOne => assert_eq!(winners.len(), 1, "racing key inserts"),
        KeyRace::AtLeastOne => {
            assert!(!winners.is_empty(), "racing key inserts: none won");
            // Only as many statements as the pool has connections run at
            // once; later racers see a committed key and must be refused.
            assert!(winners.len() < RACERS, "racing key inserts: all won");
            eprintln!(
                "{}: {} of {RACERS} racing key inserts won",
                store.backend(),
                winners.len()
            );
        }
    }
}

async fn check_client_races(store: &Arc<dyn Store>) {
    // One ID, many writers: exactly one insert succeeds, the others conflict.
    let id = unique("contested");
    let clients: Vec<Client> = (0..RACERS)
        .map(|i| full_client(&id, 1_700_000_000 + i as i64))
        .collect();
    let results = race(store, |store, i| {
        let client = clients[i].clone();
        async move { store.insert_client(&client).await.map(|()| i) }
    })
    .await;
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(i) => winners.push(i),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("racing insert_client: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "racing inserts of one client ID");
    assert_eq!(
        store.client(&id).await.expect("client").as_ref(),
        Some(&clients[winners[0]])
    );

    // Many deleters: exactly one deletes.
    let deleted = race(store, |store, _| {
        let id = id.clone();
        async move {
            store
                .delete_client(&id)
                .await
                .expect("racing delete_client")
        }
    })
    .await;
    assert_eq!(deleted.iter().filter(|d| **d).count(), 1, "racing deletes");
    assert_eq!(store.client(&id).await.expect("client"), None);
}

async fn check_client_assertion_race(store: &Arc<dyn Store>) {
    // One assertion presented many times at once: exactly one use counts.
    let client = unique("client");
    let jti = unique("jti");
    let results = race(store, |store, _| {
        let (client, jti) = (client.clone(), jti.clone());
        async move {
            store
                .record_client_assertion(&client, &jti, FAR_FUTURE, T0)
                .await
                .expect("racing record_client_assertion")
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| **r).count(), 1, "racing jti uses");

    // The same once the record has expired: exactly one takes it over.
    let expired = unique("jti");
    assert!(
        store
            .record_client_assertion(&client, &expired, 1_000, 0)
            .await
            .expect("record_client_assertion")
    );
    let results = race(store, |store, _| {
        let (client, jti) = (client.clone(), expired.clone());
        async move {
            store
                .record_client_assertion(&client, &jti, FAR_FUTURE, T0)
                .await
                .expect("racing record_client_assertion")
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| **r).count(),
        1,
        "racing takeovers"
    );
}

async fn check_resource_race(store: &Arc<dyn Store>) {
    let audience = unique("contested");
    let results = race(store, |store, i| {
        let resource = Resource {
            scopes: Scope::from_tokens([format!("scope{i}")]),
            ..Resource::new(audience.clone(), 1_700_000_000)
        };
        async move { store.insert_resource(&resource).await.map(|()| resource) }
    })
    .await;
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(resource) => winners.push(resource),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("racing insert_resource: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "racing inserts of one audience");
    assert_eq!(
        store.resource(&audience).await.expect("resource").as_ref(),
        winners.first()
    );
}

async fn check_resource_secret_race(store: &Arc<dyn Store>) {
    let resource = Resource {
        signing_alg: Some(tessera_jose::Algorithm::HS256),
        secret_version: 1,
        sealed_secret: Some(SealedSecret(vec![1; 60])),
        ..Resource::new(unique("rotated"), 1_700_000_000)
    };
    store
        .insert_resource(&resource)
        .await
        .expect("insert_resource");
    let audience = resource.audience.clone();
    // Every racer read version 1: one rotation wins, and its secret is stored.
    let results = race(store, |store, i| {
        let audience = audience.clone();
        async move {
            let sealed = SealedSecret(vec![u8::try_from(i + 2).expect("few racers"); 60]);
            let won = store
                .rotate_resource_secret(&audience, 1, &sealed)
                .await
                .expect("racing rotate_resource_secret");
            won.then_some(sealed)
        }
    })
    .await;
    let winners: Vec<SealedSecret> = results.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "racing rotations");
    let stored = store
        .resource(&audience)
        .await
        .expect("resource")
        .expect("exists");
    assert_eq!(stored.secret_version, 2);
    assert_eq!(stored.sealed_secret.as_ref(), winners.first());
}

async fn check_revocation_races(store: &Arc<dyn Store>) {
    let jti = unique("jti");
    race(store, |store, _| {
        let jti = jti.clone();
        async move {
            store
                .revoke_jti(&jti, FAR_FUTURE)
                .await
                .expect("racing revoke_jti");
        }
    })
    .await;
    assert!(store.is_jti_revoked(&jti).await.expect("is_jti_revoked"));

    let token = reference_token(&unique("client"), FAR_FUTURE);
    store
        .insert_reference_token(&token)
        .await
        .expect("insert_reference_token");
    let results = race(store, |store, _| {
        let digest = token.digest;
        async move {
            store
                .revoke_reference_token(&digest)
                .await
                .expect("racing revoke_reference_token")
        }
    })
    .await;
    assert!(results.iter().all(|existed| *existed));
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(ReferenceToken {
            revoked: true,
            ..token
        })
    );
}

async fn check_code_race(store: &Arc<dyn Store>) {
    let c = code(&unique("user"), &unique("client"), T0 + 60);
    store.insert_code(&c).await.expect("insert_code");
    let results = race(store, |store, _| {
        let digest = c.digest;
        async move {
            store
                .consume_code(&digest, T0)
                .await
                .expect("racing consume_code")
        }
    })
    .await;
    let consumed = AuthorizationCode {
        consumed_at: Some(T0),
        ..c
    };
    let fresh = results
        .iter()
        .filter(|r| **r == CodeUse::Fresh(consumed.clone()))
        .count();
    let replayed = results
        .iter()
        .filter(|r| **r == CodeUse::Replayed(consumed.clone()))
        .count();
    assert_eq!(fresh, 1, "racing exchanges of one code: {results:?}");
    assert_eq!(replayed, RACERS - 1, "the losers see a replay");

    // Half bound (the exchange's first try), half plain: still one winner.
    let c = code(&unique("user"), &unique("client"), T0 + 60);
    store.insert_code(&c).await.expect("insert_code");
    let results = race(store, |store, i| {
        let c = c.clone();
        async move {
            if i % 2 == 0 {
                store
                    .consume_bound_code(&c.digest, T0, &c.client_id, &c.redirect_uri)
                    .await
                    .expect("racing consume_bound_code")
                    .is_some()
            } else {
                matches!(
                    store
                        .consume_code(&c.digest, T0)
                        .await
                        .expect("racing consume_code"),
                    CodeUse::Fresh(_)
                )
            }
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|won| **won).count(),
        1,
        "bound and plain consumes of one code: {results:?}"
    );
}

/// Concurrent writes of which some fail (a refresh token whose `jti` is
/// taken, a rotation whose successor's is): each failure is that write's
/// alone, and undoes all of it, while the writes beside it (on SQLite, in
/// the same group commit) all stand.
async fn check_failing_writes_fail_alone(store: &Arc<dyn Store>) {
    let (user_id, client_id, family) = (unique("user"), unique("client"), unique("family"));
    let taken = refresh(&user_id, &client_id, &family);
    let current = refresh(&user_id, &client_id, &family);
    insert_refresh(&**store, &[&taken, &current]).await;
    let results = race(store, |store, i| {
        let mut token = refresh(&user_id, &client_id, &family);
        let (taken, current) = (taken.jti.clone(), current.jti.clone());
        async move {
            match i % 4 {
                // A taken jti: refused, nothing written.
                0 => {
                    token.jti = taken;
                    (
                        None,
                        store.insert_refresh_token(&token).await.map(|()| true),
                    )
                }
                // A rotation whose successor's jti is taken: the rotation is
                // undone with the insert, so the token stays current.
                1 => {
                    token.jti = taken;
                    let rotated = store.rotate_refresh_token(&current, &token, T0).await;
                    (None, rotated)
                }
                _ => {
                    let inserted = store.insert_refresh_token(&token).await.map(|()| true);
                    (Some(token), inserted)
                }
            }
        }
    })
    .await;
    for (token, outcome) in results {
        match token {
            Some(token) => {
                assert!(
                    matches!(outcome, Ok(true)),
                    "a sound write failed: {outcome:?}"
                );
                assert_eq!(
                    store
                        .refresh_token(&token.jti)
                        .await
                        .expect("refresh_token"),
                    Some(token),
                    "a sound write beside failing ones was lost"
                );
            }
            None => assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "a write of a taken jti: expected Conflict, got {outcome:?}"
            ),
        }
    }
    assert_eq!(
        store
            .refresh_token(&taken.jti)
            .await
            .expect("refresh_token"),
        Some(taken),
        "a refused write changed the row it clashed with"
    );
    let current_now = store
        .refresh_token(&current.jti)
        .await
        .expect("refresh_token")
        .expect("the current token");
    assert_eq!(
        (current_now.rotated_at, current_now.successor_jti),
        (None, None),
        "a rotation whose successor was refused was kept"
    );
}

async fn check_refresh_race(store: &Arc<dyn Store>) {
    let (user_id, client_id, family) = (unique("user"), unique("client"), unique("family"));
    let token = refresh(&user_id, &client_id, &family);
    insert_refresh(&**store, &[&token]).await;
    let results = race(store, |store, _| {
        let jti = token.jti.clone();
        let successor = refresh(&user_id, &client_id, &family);
        async move {
            let rotated = store
                .rotate_refresh_token(&jti, &successor, T0)
                .await
                .expect("racing rotate_refresh_token");
            (rotated, successor.jti)
        }
    })
    .await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(rotated, _)| *rotated)
        .map(|(_, jti)| jti)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "racing rotations of one token: {results:?}"
    );
    let stored = stored_refresh(&**store, &token.jti).await.expect("kept");
    assert_eq!(stored.successor_jti.as_ref(), Some(winners[0]));
    for (rotated, jti) in &results {
        assert_eq!(
            stored_refresh(&**store, jti).await.is_some(),
            *rotated,
            "only the winner's successor is written"
        );
    }
}

async fn check_login_failure_swaps(store: &Arc<dyn Store>) {
    let key = format!("user:{}", unique("swap"));
    let first = LoginFailures {
        count: 1,
        first_at: T0,
        last_at: T0,
    };
    // Racing first reservations: one insert wins.
    let won = race(store, |store, i| {
        let key = key.clone();
        async move {
            let new = LoginFailures {
                last_at: T0 + i as i64,
                ..first
            };
            store
                .swap_login_failures(&key, None, &new)
                .await
                .expect("racing swap_login_failures")
        }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let current = store
        .login_failures(&key)
        .await
        .expect("login_failures")
        .expect("a counter");
    assert_eq!(current.count, 1);

    // Racing swaps from the same read: one wins, and the count is its count.
    let won = race(store, |store, i| {
        let key = key.clone();
        async move {
            let next = LoginFailures {
                count: 2,
                first_at: current.first_at,
                last_at: T0 + 100 + i as i64,
            };
            store
                .swap_login_failures(&key, Some(&current), &next)
                .await
                .expect("racing swap_login_failures")
        }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let after = store
        .login_failures(&key)
        .await
        .expect("login_failures")
        .expect("a counter");
    assert_eq!(after.count, 2);
    // A stale expectation writes nothing.
    assert!(
        !store
            .swap_login_failures(&key, Some(&current), &first)
            .await
            .expect("swap_login_failures")
    );
    assert!(
        !store
            .swap_login_failures(&key, None, &first)
            .await
            .expect("swap_login_failures")
    );

    // Released attempts never take the count below zero.
    for _ in 0..3 {
        store
            .release_login_attempt(&key)
            .await
            .expect("release_login_attempt");
    }
    assert_eq!(
        store
            .login_failures(&key)
            .await
            .expect("login_failures")
            .map(|f| f.count),
        Some(0)
    );
    store
        .release_login_attempt(&unique("no-such-key"))
        .await
        .expect("release of an unknown key is no error");
}

async fn check_login_failure_race(store: &Arc<dyn Store>) {
    // Every failure counts, and each caller sees its own total.
    let key = format!("addr:{}", unique("ip"));
    let results = race(store, |store, i| {
        let key = key.clone();
        async move {
            store
                .record_login_failure(&key, T0 + i as i64, T0 - 900)
                .await
                .expect("racing record_login_failure")
        }
    })
    .await;
    let counts: BTreeSet<u32> = results.iter().map(|f| f.count).collect();
    assert_eq!(counts, (1..=RACERS as u32).collect::<BTreeSet<_>>());
    let last = store
        .login_failures(&key)
        .await
        .expect("login_failures")
        .expect("failures recorded");
    assert_eq!(last.count, RACERS as u32);
    assert!(results.iter().all(|f| f.first_at == last.first_at));
}

fn device(client_id: &str, expires_at: i64) -> DeviceAuthorization {
    // A code from the alphabet's letters, unique per call.
    let user_code: String = random_bytes::<8>()
        .iter()
        .map(|b| char::from(b"BCDFGHJKLMNPQRSTVWXZ"[usize::from(*b % 20)]))
        .collect();
    DeviceAuthorization {
        digest: SecretDigest::of(&random_token()),
        user_code,
        client_id: client_id.to_owned(),
        scope: Scope::from_tokens(["openid", "offline_access"]),
        audiences: vec!["https://api.example".to_owned()],
        expires_at,
        interval: 5,
        last_polled_at: None,
        status: DeviceStatus::Pending,
        user_id: None,
        auth_time: None,
    }
}

/// RFC 8628 device authorizations: lookup by user code, one decision, polling
/// at the interval with slow_down, the approval handed out once, client binding.
async fn check_devices(store: &dyn Store) {
    let client = unique("tv");
    let d = device(&client, T0 + 600);
    store
        .insert_device_authorization(&d)
        .await
        .expect("insert_device");
    let duplicate = DeviceAuthorization {
        digest: SecretDigest::of(&random_token()),
        ..d.clone()
    };
    assert!(matches!(
        store.insert_device_authorization(&duplicate).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .pending_device(&d.user_code, T0)
            .await
            .expect("pending"),
        Some(d.clone())
    );
    assert_eq!(
        store
            .pending_device(&d.user_code, T0 + 600)
            .await
            .expect("pending"),
        None,
        "expired"
    );

    // Polling: on time, too fast (interval grows by 5), on time again.
    let polled = |p: DevicePoll| match p {
        DevicePoll::Polled(device) => *device,
        other => panic!("expected a poll, got {other:?}"),
    };
    let first = polled(
        store
            .poll_device(&d.digest, &client, T0)
            .await
            .expect("poll"),
    );
    assert_eq!(
        (first.status, first.last_polled_at),
        (DeviceStatus::Pending, Some(T0))
    );
    assert_eq!(
        store
            .poll_device(&d.digest, &client, T0 + 4)
            .await
            .expect("poll"),
        DevicePoll::SlowDown
    );
    assert_eq!(
        store
            .poll_device(&d.digest, &client, T0 + 10)
            .await
            .expect("poll"),
        DevicePoll::SlowDown,
        "10 s now needed after the last poll"
    );
    let later = polled(
        store
            .poll_device(&d.digest, &client, T0 + 25)
            .await
            .expect("poll"),
    );
    assert_eq!(later.interval, 15);
    // Another client's poll is unknown to it and changes nothing.
    assert_eq!(
        store
            .poll_device(&d.digest, &unique("other"), T0 + 100)
            .await
            .expect("poll"),
        DevicePoll::Invalid
    );
    assert_eq!(
        store
            .poll_device(&SecretDigest::of("nope"), &client, T0)
            .await
            .expect("poll"),
        DevicePoll::Invalid
    );

    // One decision; approval goes out exactly once.
    assert!(
        store
            .decide_device(&d.user_code, "user-1", T0 - 5, true, T0 + 30)
            .await
            .expect("decide")
    );
    assert!(
        !store
            .decide_device(&d.user_code, "user-1", T0 - 5, false, T0 + 31)
            .await
            .expect("decide"),
        "already decided"
    );
    assert_eq!(
        store
            .pending_device(&d.user_code, T0 + 31)
            .await
            .expect("pending"),
        None
    );
    let approved = polled(
        store
            .poll_device(&d.digest, &client, T0 + 40)
            .await
            .expect("poll"),
    );
    assert_eq!(
        (
            approved.status,
            approved.user_id.as_deref(),
            approved.auth_time
        ),
        (DeviceStatus::Approved, Some("user-1"), Some(T0 - 5))
    );
    let spent = polled(
        store
            .poll_device(&d.digest, &client, T0 + 60)
            .await
            .expect("poll"),
    );
    assert_eq!(spent.status, DeviceStatus::Consumed);
    // slow_down says "still pending": a finished code polled too soon gets its
    // final answer, and its interval stays as it was.
    let finished = |p: DevicePoll| {
        let device = polled(p);
        (device.status, device.interval, device.last_polled_at)
    };
    assert_eq!(
        finished(
            store
                .poll_device(&d.digest, &client, T0 + 61)
                .await
                .expect("poll")
        ),
        (DeviceStatus::Consumed, 15, Some(T0 + 60))
    );

    // A denial; an expired code cannot be decided.
    let denied = device(&client, T0 + 600);
    store
        .insert_device_authorization(&denied)
        .await
        .expect("insert_device");
    assert!(
        store
            .decide_device(&denied.user_code, "user-2", T0, false, T0)
            .await
            .expect("decide")
    );
    assert_eq!(
        polled(
            store
                .poll_device(&denied.digest, &client, T0)
                .await
                .expect("poll")
        )
        .status,
        DeviceStatus::Denied
    );
    assert_eq!(
        finished(
            store
                .poll_device(&denied.digest, &client, T0)
                .await
                .expect("poll")
        ),
        (DeviceStatus::Denied, 5, Some(T0))
    );
    let expired = device(&client, T0 + 1);
    store
        .insert_device_authorization(&expired)
        .await
        .expect("insert_device");
    assert!(
        !store
            .decide_device(&expired.user_code, "user-3", T0, true, T0 + 1)
            .await
            .expect("decide")
    );
    for now in [T0 + 1, T0 + 2] {
        assert_eq!(
            finished(
                store
                    .poll_device(&expired.digest, &client, now)
                    .await
                    .expect("poll")
            ),
            (DeviceStatus::Pending, 5, Some(T0 + 1)),
            "an expired code is not slowed down"
        );
    }
}

/// Many polls of one approved code at once: tokens for exactly one.
async fn check_device_race(store: &Arc<dyn Store>) {
    let client = unique("tv");
    let d = device(&client, T0 + 600);
    store
        .insert_device_authorization(&d)
        .await
        .expect("insert_device");
    assert!(
        store
            .decide_device(&d.user_code, "user-1", T0, true, T0)
            .await
            .expect("decide")
    );
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, barrier, digest, client) = (
            Arc::clone(store),
            Arc::clone(&barrier),
            d.digest,
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .poll_device(&digest, &client, T0 + 1)
                .await
                .expect("poll")
        }));
    }
    let mut approvals = 0;
    for task in tasks {
        if let DevicePoll::Polled(device) = task.await.expect("task")
            && device.status == DeviceStatus::Approved
        {
            approvals += 1;
        }
    }
    assert_eq!(approvals, 1, "an approval must be handed out exactly once");
}

/// Every check, in sequence, against one store.
async fn check_trust(store: &dyn Store) {
    use tessera_core::store::{AssertionKind, SamlIdp, TrustedIssuer};
    // Issuers: inline keys or a URI, kept exactly, unique by identifier.
    let inline = TrustedIssuer {
        issuer: unique("https://idp.example/"),
        jwks: Some(client_jwks()),
        jwks_uri: None,
        created_at: 10,
    };
    let remote = TrustedIssuer {
        issuer: unique("https://other.example/"),
        jwks: None,
        jwks_uri: Some("https://other.example/jwks.json".into()),
        created_at: 11,
    };
    for issuer in [&inline, &remote] {
        store
            .insert_trusted_issuer(issuer)
            .await
            .expect("insert_trusted_issuer");
    }
    expect_conflict(store.insert_trusted_issuer(&inline).await, "issuer twice");
    assert_eq!(
        store.trusted_issuer(&inline.issuer).await.expect("read"),
        Some(inline.clone())
    );
    assert_eq!(
        store.trusted_issuer(&remote.issuer).await.expect("read"),
        Some(remote.clone())
    );
    assert_eq!(
        store
            .trusted_issuer(&inline.issuer.to_uppercase())
            .await
            .expect("read"),
        None,
        "compared exactly"
    );
    let listed = store.trusted_issuers().await.expect("list");
    assert!(listed.contains(&inline) && listed.contains(&remote));
    assert!(
        store
            .delete_trusted_issuer(&inline.issuer)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_trusted_issuer(&inline.issuer)
            .await
            .expect("delete")
    );
    assert_eq!(
        store.trusted_issuer(&inline.issuer).await.expect("read"),
        None
    );

    // SAML identity providers, alike.
    let idp = SamlIdp {
        entity_id: unique("urn:idp:"),
        certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        created_at: 12,
    };
    store.insert_saml_idp(&idp).await.expect("insert_saml_idp");
    expect_conflict(store.insert_saml_idp(&idp).await, "IdP twice");
    assert_eq!(
        store.saml_idp(&idp.entity_id).await.expect("read"),
        Some(idp.clone())
    );
    assert!(store.saml_idps().await.expect("list").contains(&idp));
    assert!(store.delete_saml_idp(&idp.entity_id).await.expect("delete"));
    assert_eq!(store.saml_idp(&idp.entity_id).await.expect("read"), None);

    // Assertion IDs: once per kind and issuer, until they expire.
    let id = unique("assertion");
    let record = |kind: AssertionKind, issuer: &str, expires_at: i64, now: i64| {
        let (issuer, id) = (issuer.to_owned(), id.clone());
        async move {
            store
                .record_assertion(kind, &issuer, &id, expires_at, now)
                .await
                .expect("record_assertion")
        }
    };
    // Times near T0, so that the purge checks' counts never see these rows.
    let exp = T0 + 1_000;
    assert!(
        record(AssertionKind::Jwt, "iss-a", exp, T0 + 500).await,
        "first use"
    );
    assert!(
        !record(AssertionKind::Jwt, "iss-a", exp, T0 + 600).await,
        "replay"
    );
    assert!(
        record(AssertionKind::Jwt, "iss-b", exp, T0 + 600).await,
        "another issuer"
    );
    assert!(
        record(AssertionKind::Saml, "iss-a", exp, T0 + 600).await,
        "another kind"
    );
    assert!(!record(AssertionKind::Jwt, "iss-a", FAR_FUTURE, exp - 1).await);
    assert!(
        record(AssertionKind::Jwt, "iss-a", FAR_FUTURE, exp).await,
        "expired: taken over"
    );
    assert!(!record(AssertionKind::Jwt, "iss-a", FAR_FUTURE, exp + 1).await);
}

async fn check_assertion_race(store: &Arc<dyn Store>) {
    use tessera_core::store::AssertionKind;
    // One assertion presented many times at once: exactly one use counts.
    let id = unique("assertion");
    let results = race(store, |store, _| {
        let id = id.clone();
        async move {
            store
                .record_assertion(AssertionKind::Saml, "urn:idp", &id, FAR_FUTURE, T0)
                .await
                .expect("racing record_assertion")
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| **r).count(),
        1,
        "racing assertion uses"
    );
}

/// Every change to a client, resource, trusted issuer or SAML identity
/// provider moves the catalogue version forward, whatever verb makes it; a
/// token or a user does not (so that servers' in-memory copies are dropped
/// only when they must be).
async fn check_catalog_version(store: &dyn Store) {
    use tessera_core::store::{SamlIdp, TrustedIssuer};
    let mut last = store.catalog_version().await.expect("catalogue verb");
    let mut moved = |what: &str, now: i64| {
        assert!(now > last, "{what} left the catalogue version at {last}");
        last = now;
    };
    let id = unique("versioned");
    let mut client = full_client(&id, 1_700_000_000);
    store.insert_client(&client).await.expect("catalogue verb");
    moved(
        "insert_client",
        store.catalog_version().await.expect("catalogue verb"),
    );
    client.name = "renamed".into();
    assert!(
        store
            .update_client(&client, SecretUpdate::Keep)
            .await
            .expect("catalogue verb")
    );
    moved(
        "update_client",
        store.catalog_version().await.expect("catalogue verb"),
    );
    assert!(
        store
            .set_client_secret(&id, &SecretDigest::of("rotated"), None)
            .await
            .expect("catalogue verb")
    );
    moved(
        "set_client_secret",
        store.catalog_version().await.expect("catalogue verb"),
    );
    let resource = Resource {
        audience: unique("https://versioned.example/"),
        scopes: Scope::from_tokens(["a"]),
        token_format: None,
        accepts: AcceptedTokens::Both,
        signing_alg: None,
        secret_version: 0,
        sealed_secret: None,
        created_at: 1,
    };
    store
        .insert_resource(&resource)
        .await
        .expect("catalogue verb");
    moved(
        "insert_resource",
        store.catalog_version().await.expect("catalogue verb"),
    );
    let narrower = Resource {
        scopes: Scope::from_tokens(["b"]),
        ..resource.clone()
    };
    assert!(
        store
            .update_resource(&narrower, 0)
            .await
            .expect("catalogue verb")
    );
    moved(
        "update_resource",
        store.catalog_version().await.expect("catalogue verb"),
    );
    let issuer = TrustedIssuer {
        issuer: unique("https://versioned-idp.example/"),
        jwks: Some(client_jwks()),
        jwks_uri: None,
        created_at: 1,
    };
    store
        .insert_trusted_issuer(&issuer)
        .await
        .expect("catalogue verb");
    moved(
        "insert_trusted_issuer",
        store.catalog_version().await.expect("catalogue verb"),
    );
    assert!(
        store
            .delete_trusted_issuer(&issuer.issuer)
            .await
            .expect("catalogue verb")
    );
    moved(
        "delete_trusted_issuer",
        store.catalog_version().await.expect("catalogue verb"),
    );
    let idp = SamlIdp {
        entity_id: unique("https://versioned-saml.example/"),
        certificate_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
        created_at: 1,
    };
    store.insert_saml_idp(&idp).await.expect("catalogue verb");
    moved(
        "insert_saml_idp",
        store.catalog_version().await.expect("catalogue verb"),
    );
    assert!(
        store
            .delete_saml_idp(&idp.entity_id)
            .await
            .expect("catalogue verb")
    );
    moved(
        "delete_saml_idp",
        store.catalog_version().await.expect("catalogue verb"),
    );

    assert!(store.delete_client(&id).await.expect("catalogue verb"));
    moved(
        "delete_client",
        store.catalog_version().await.expect("catalogue verb"),
    );

    // Tokens are not the catalogue.
    let before = store.catalog_version().await.expect("catalogue verb");
    store
        .revoke_jti(&unique("jti"), 2_000_000_000)
        .await
        .expect("catalogue verb");
    assert_eq!(
        store.catalog_version().await.expect("catalogue verb"),
        before,
        "revoke_jti moved it"
    );
}

/// Reference tokens issued at the same moment (which SQLite inserts in one
/// statement) are each stored and answered for alone: a digest taken twice
/// fails for its second holder only, and every other token is stored.
async fn check_reference_token_race(store: &Arc<dyn Store>) {
    let client_id = unique("batched");
    let taken = reference_token(&client_id, FAR_FUTURE);
    store
        .insert_reference_token(&taken)
        .await
        .expect("insert_reference_token");
    let tokens: Vec<ReferenceToken> = (0..RACERS)
        .map(|i| {
            if i == 3 {
                ReferenceToken {
                    digest: taken.digest,
                    ..reference_token(&client_id, FAR_FUTURE + 1)
                }
            } else {
                reference_token(&client_id, FAR_FUTURE)
            }
        })
        .collect();
    let shared = Arc::new(tokens.clone());
    let outcomes = race(store, move |store, i| {
        let tokens = Arc::clone(&shared);
        async move { store.insert_reference_token(&tokens[i]).await }
    })
    .await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if i == 3 {
            expect_conflict(outcome, "a digest taken before, in a batch");
            assert_eq!(
                store
                    .reference_token(&taken.digest)
                    .await
                    .expect("reference_token"),
                Some(taken.clone()),
                "the first holder keeps it"
            );
        } else {
            outcome.expect("the others in the batch are stored");
            assert_eq!(
                store
                    .reference_token(&tokens[i].digest)
                    .await
                    .expect("reference_token"),
                Some(tokens[i].clone())
            );
        }
    }
}

/// Operator tokens: found by purpose and digest (never as a token of another
/// purpose), listed per purpose in creation order, IDs and digests unique,
/// deleted by purpose and ID.
async fn check_registration_tokens(store: &dyn Store) {
    let lasting = OperatorToken {
        id: unique("rt"),
        purpose: TokenPurpose::Registration,
        digest: SecretDigest::of(&random_token()),
        created_at: 1_700_000_000,
        expires_at: None,
    };
    let expiring = OperatorToken {
        id: unique("rt"),
        purpose: TokenPurpose::Registration,
        digest: SecretDigest::of(&random_token()),
        created_at: 1_700_000_001,
        expires_at: Some(FAR_FUTURE),
    };
    for token in [&lasting, &expiring] {
        store
            .insert_operator_token(token)
            .await
            .expect("insert_operator_token");
    }
    for token in [&lasting, &expiring] {
        assert_eq!(
            store
                .operator_token(TokenPurpose::Registration, &token.digest)
                .await
                .expect("registration_token")
                .as_ref(),
            Some(token)
        );
    }
    assert_eq!(
        store
            .operator_token(
                TokenPurpose::Registration,
                &SecretDigest::of("never issued")
            )
            .await
            .expect("registration_token"),
        None
    );
    let same_id = OperatorToken {
        digest: SecretDigest::of(&random_token()),
        ..lasting.clone()
    };
    expect_conflict(
        store.insert_operator_token(&same_id).await,
        "a registration token ID taken twice",
    );
    let same_digest = OperatorToken {
        id: unique("rt"),
        ..lasting.clone()
    };
    expect_conflict(
        store.insert_operator_token(&same_digest).await,
        "a registration token digest taken twice",
    );
    let listed = store
        .operator_tokens(TokenPurpose::Registration)
        .await
        .expect("registration_tokens");
    let ours: Vec<&OperatorToken> = listed
        .iter()
        .filter(|t| t.id == lasting.id || t.id == expiring.id)
        .collect();
    assert_eq!(ours, [&lasting, &expiring]);
    assert!(
        store
            .delete_operator_token(TokenPurpose::Registration, &lasting.id)
            .await
            .expect("delete_registration_token")
    );
    assert!(
        !store
            .delete_operator_token(TokenPurpose::Registration, &lasting.id)
            .await
            .expect("delete_registration_token again")
    );
    assert_eq!(
        store
            .operator_token(TokenPurpose::Registration, &lasting.digest)
            .await
            .expect("registration_token"),
        None
    );
    // An admin token is found only as one, and the other way round.
    let admin = OperatorToken {
        id: unique("at"),
        purpose: TokenPurpose::Admin,
        digest: SecretDigest::of(&random_token()),
        created_at: 1_700_000_002,
        expires_at: None,
    };
    store
        .insert_operator_token(&admin)
        .await
        .expect("insert admin token");
    assert_eq!(
        store
            .operator_token(TokenPurpose::Registration, &admin.digest)
            .await
            .expect("operator_token"),
        None
    );
    assert_eq!(
        store
            .operator_token(TokenPurpose::Admin, &expiring.digest)
            .await
            .expect("operator_token"),
        None
    );
    assert_eq!(
        store
            .operator_token(TokenPurpose::Admin, &admin.digest)
            .await
            .expect("operator_token"),
        Some(admin.clone())
    );
    assert!(
        !store
            .operator_tokens(TokenPurpose::Registration)
            .await
            .expect("operator_tokens")
            .contains(&admin)
    );
    assert!(
        !store
            .delete_operator_token(TokenPurpose::Registration, &admin.id)
            .await
            .expect("delete across purposes"),
        "a registration-token revoke never removes an admin token"
    );
    assert!(
        store
            .delete_operator_token(TokenPurpose::Admin, &admin.id)
            .await
            .expect("delete admin token")
    );
    // Expired tokens are purged; the others stay.
    let expired = OperatorToken {
        id: unique("rt"),
        purpose: TokenPurpose::Registration,
        digest: SecretDigest::of(&random_token()),
        created_at: 100,
        expires_at: Some(200),
    };
    store
        .insert_operator_token(&expired)
        .await
        .expect("insert_operator_token");
    store.purge_expired(200).await.expect("purge_expired");
    assert_eq!(
        store
            .operator_token(TokenPurpose::Registration, &expired.digest)
            .await
            .expect("registration_token"),
        None
    );
    assert!(
        store
            .operator_token(TokenPurpose::Registration, &expiring.digest)
            .await
            .expect("registration_token")
            .is_some()
    );
}

fn trace_event(client_id: &str, at: i64, refused: bool) -> TraceEvent {
    TraceEvent {
        client_id: client_id.to_owned(),
        at,
        step: TraceStep {
            endpoint: TraceEndpoint::Token,
            flow: Some("authorization_code".to_owned()),
            scope: Some("openid \"ü\"".to_owned()),
            from: Some("2001:db8::7".to_owned()),
            outcome: if refused {
                TraceOutcome::Refused {
                    error: "invalid_grant".to_owned(),
                    reason: "pkce verifier mismatch".to_owned(),
                    description: "the code_verifier does not match — ü".to_owned(),
                }
            } else {
                TraceOutcome::Done {
                    detail: "issued an access token".to_owned(),
                }
            },
        },
    }
}

/// Trace events round-trip, newest first; each client keeps only its newest
/// `keep_per_client`; they go with their client and with age.
async fn check_trace(store: &dyn Store) {
    let client = full_client(&unique("traced"), 1_700_000_000);
    let other = full_client(&unique("traced"), 1_700_000_000);
    store.insert_client(&client).await.expect("insert_client");
    store.insert_client(&other).await.expect("insert_client");
    // Long ago, so that the purge below takes nothing another check needs.
    let now = 10;
    let first: Vec<TraceEvent> = (0..4)
        .map(|i| trace_event(&client.id, now + i, i % 2 == 0))
        .chain([trace_event(&other.id, now, false)])
        .collect();
    store.record_trace(&first, 5).await.expect("record_trace");
    let second: Vec<TraceEvent> = (4..7)
        .map(|i| trace_event(&client.id, now + i, false))
        .collect();
    store.record_trace(&second, 5).await.expect("record_trace");
    let trace = store.trace(&client.id, 100).await.expect("trace");
    let expected: Vec<TraceEvent> = first[2..4].iter().chain(&second).rev().cloned().collect();
    assert_eq!(trace, expected, "the newest five, newest first");
    assert_eq!(store.trace(&client.id, 2).await.expect("trace").len(), 2);
    assert_eq!(
        store.trace(&other.id, 100).await.expect("trace"),
        vec![first[4].clone()]
    );
    store.record_trace(&[], 5).await.expect("nothing to record");

    assert!(
        store
            .delete_client(&client.id)
            .await
            .expect("delete_client")
    );
    assert!(
        store
            .trace(&client.id, 100)
            .await
            .expect("trace")
            .is_empty()
    );
    store
        .purge_expired(now + tessera_core::store::TRACE_RETENTION + 1)
        .await
        .expect("purge_expired");
    assert!(store.trace(&other.id, 100).await.expect("trace").is_empty());
}

async fn check_user_roles(store: &dyn Store) {
    let mut alice = user(1_700_000_000);
    alice.roles = Roles {
        developer: true,
        admin: false,
    };
    store.insert_user(&alice).await.expect("insert_user");
    assert_eq!(
        store.user(&alice.id).await.expect("user"),
        Some(alice.clone())
    );
    let both = Roles {
        developer: true,
        admin: true,
    };
    assert!(store.set_user_roles(&alice.id, both).await.expect("roles"));
    assert_eq!(
        store
            .user_by_login(&alice.username)
            .await
            .expect("user")
            .map(|u| u.roles),
        Some(both)
    );
    assert!(
        !store
            .set_user_roles(&unique("missing"), both)
            .await
            .expect("roles")
    );
    assert!(store.delete_user(&alice.id).await.expect("delete_user"));
}

async fn check_all(store: Arc<dyn Store>, backend: &'static str, key_race: KeyRace) {
    check_ping(&*store, backend).await;
    check_clients(&*store).await;
    check_client_updates(&*store).await;
    check_client_secrets(&*store).await;
    check_delete_client(&*store).await;
    check_registration_tokens(&*store).await;
    check_trace(&*store).await;
    check_user_roles(&*store).await;
    check_resources(&*store).await;
    check_resource_updates(&*store).await;
    check_keys(&*store).await;
    check_insert_key_unless_newer(&*store).await;
    check_reference_tokens(&*store).await;
    check_revoked_jtis(&*store).await;
    check_client_assertions(&*store).await;
    check_trust(&*store).await;
    check_catalog_version(&*store).await;
    check_purge(&*store).await;
    check_users(&*store).await;
    check_delete_user(&*store).await;
    check_user_access_tokens(&*store).await;
    check_sessions(&*store).await;
    check_session_end_revokes_online_grants(&*store).await;
    check_consents(&*store).await;
    check_codes(&*store).await;
    check_refresh_tokens(&*store).await;
    check_revoke_family(&*store).await;
    check_login_failures(&*store).await;
    check_people_purge(&*store).await;
    check_devices(&*store).await;
    check_device_race(&store).await;
    check_key_race(&store, key_race).await;
    check_client_cas_race(&store).await;
    check_client_races(&store).await;
    check_client_assertion_race(&store).await;
    check_assertion_race(&store).await;
    check_resource_race(&store).await;
    check_resource_secret_race(&store).await;
    check_revocation_races(&store).await;
    check_reference_token_race(&store).await;
    check_code_race(&store).await;
    check_refresh_race(&store).await;
    check_failing_writes_fail_alone(&store).await;
    check_login_failure_race(&store).await;
    check_login_failure_swaps(&store).await;
    check_ping(&*store, backend).await;
}

/// Connecting again to a migrated database: the migrations are skipped, not
/// rerun, and the data stays.
async fn check_reconnect(url: &str) {
    let first = tessera_store::connect(url).await.expect("first connect");
    let client = full_client(&unique("survivor"), 1_700_000_000);
    first.insert_client(&client).await.expect("insert_client");
    let second = tessera_store::connect(url)
        .await
        .expect("second connect to a migrated database");
    assert_eq!(
        second.client(&client.id).await.expect("client"),
        Some(client.clone())
    );
    drop(first);
    drop(second);
    let third = tessera_store::connect(url)
        .await
        .expect("third connect to a migrated database");
    assert_eq!(
        third.client(&client.id).await.expect("client"),
        Some(client)
    );
}

// --- in memory -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    let store = Arc::new(tessera_core::testing::MemoryStore::new());
    check_all(store, "memory", KeyRace::ExactlyOne).await;
}

// --- SQLite ----------------------------------------------------------------

/// A directory under the system temp dir, removed on drop (also on panic).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(unique("tessera-conformance"));
        std::fs::create_dir(&path).expect("create scratch directory");
        ScratchDir(path)
    }

    fn sqlite_url(&self, file: &str) -> String {
        format!("sqlite://{}", self.0.join(file).display())
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = ScratchDir::new();
    let store = tessera_store::connect(&dir.sqlite_url("t.db"))
        .await
        .expect("open SQLite store");
    check_all(store, "sqlite", KeyRace::ExactlyOne).await;
}

/// Housekeeping keeps the WAL small while writes never pause: its checkpoint
/// runs beside the writer, and unless the writer then copies the last frames
/// itself, SQLite never starts the WAL over and it grows with every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_housekeeping_bounds_the_wal_under_sustained_writes() {
    const WRITERS: usize = 16;
    const TOKENS_EACH: usize = 2_500;
    let dir = ScratchDir::new();
    let store = tessera_store::connect(&dir.sqlite_url("t.db"))
        .await
        .expect("open SQLite store");
    let client = full_client(&unique("wal"), 1_700_000_000);
    store.insert_client(&client).await.expect("insert_client");
    let writing = Arc::new(std::sync::atomic::AtomicUsize::new(WRITERS));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (store, client_id, writing) =
            (Arc::clone(&store), client.id.clone(), Arc::clone(&writing));
        writers.push(tokio::spawn(async move {
            for _ in 0..TOKENS_EACH {
                store
                    .insert_reference_token(&reference_token(&client_id, 4_000_000_000))
                    .await
                    .expect("insert_reference_token");
            }
            writing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let wal = dir.0.join("t.db-wal");
    let mut largest = 0;
    let mut rounds = 0;
    while writing.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        store.housekeeping().await.expect("housekeeping");
        rounds += 1;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    // 40,000 tokens: some 64 MiB of WAL if it never started over (where
    // SQLite's backstop checkpoint steps in); housekeeping lets it reach
    // 8 MiB before it starts over.
    assert!(
        rounds > 1,
        "housekeeping ran only {rounds} time(s) during the writes"
    );
    assert!(
        largest < 24 * 1024 * 1024,
        "the WAL reached {largest} bytes during the writes"
    );
}

/// Another process holding SQLite's write lock (a CLI command, say) makes the
/// token endpoint's writes wait, not fail, and waiting holds up no async
/// worker: on a runtime with a single thread, the holder below still gets to
/// let go, and the write then goes in.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_writes_wait_for_another_process_off_the_async_workers() {
    let dir = ScratchDir::new();
    let url = dir.sqlite_url("t.db");
    let store = tessera_store::connect(&url)
        .await
        .expect("open SQLite store");
    let client = full_client(&unique("locked"), 1_700_000_000);
    store.insert_client(&client).await.expect("insert_client");
    let mut holder = sqlx::sqlite::SqliteConnection::connect(&url)
        .await
        .expect("a second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    let token = reference_token(&client.id, 4_000_000_000);
    let write = tokio::spawn({
        let (store, token) = (Arc::clone(&store), token.clone());
        async move { store.insert_reference_token(&token).await }
    });
    // Long enough for the write to find the lock taken. Were the write
    // waiting on this runtime's one thread, this sleep would end only when
    // SQLite's busy handler gave up, five seconds on.
    let slept = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        slept.elapsed() < std::time::Duration::from_secs(4),
        "the runtime's one thread was held up while the write waited"
    );
    assert!(!write.is_finished(), "the write did not wait for the lock");
    sqlx::query("COMMIT")
        .execute(&mut holder)
        .await
        .expect("let go of the write lock");
    write
        .await
        .expect("the writing task")
        .expect("the write once the lock was free");
    assert_eq!(
        store
            .reference_token(&token.digest)
            .await
            .expect("reference_token"),
        Some(token)
    );
}

/// An in-memory database has one connection for reads and writes alike, so a
/// verb that read while holding its write transaction would wait on itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    let store = tessera_store::connect("sqlite::memory:")
        .await
        .expect("open in-memory SQLite store");
    check_all(store, "sqlite", KeyRace::ExactlyOne).await;
}

#[tokio::test]
async fn sqlite_migrations_run_twice() {
    let dir = ScratchDir::new();
    check_reconnect(&dir.sqlite_url("t.db")).await;
}

// --- PostgreSQL ------------------------------------------------------------

fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("{test}: skipped: {POSTGRES_URL_VAR} not set");
    }
    url
}

/// `url` with its database name replaced, keeping any query parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A database created for one test and dropped after it.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = unique("tessera_conf");
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to TESSERA_TEST_POSTGRES_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.expect("close admin connection");
        ScratchDatabase {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// Runs `test` against the database, drops the database whatever the
    /// outcome, then passes a panic of `test` on.
    async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        // A task, so that a failed assertion comes back as an error here and
        // the database is still dropped. The stores the test opened are dropped
        // with the task; FORCE ends connections their pools leave behind.
        let outcome = tokio::spawn(test(self.url.clone())).await;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to TESSERA_TEST_POSTGRES_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("DROP DATABASE");
        conn.close().await.expect("close admin connection");
        if let Err(err) = outcome {
            match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(err) => panic!("test task failed: {err}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let Some(admin_url) = postgres_url("postgres") else {
        return;
    };
    ScratchDatabase::create(&admin_url)
        .await
        .run(|url| async move {
            let store = tessera_store::connect(&url)
                .await
                .expect("open PostgreSQL store");
            check_all(store, "postgres", KeyRace::AtLeastOne).await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migrations_run_twice() {
    let Some(admin_url) = postgres_url("postgres_migrations_run_twice") else {
        return;
    };
    ScratchDatabase::create(&admin_url)
        .await
        .run(|url| async move {
            // Instances starting together on an empty database: the advisory
            // lock lets one migrate while the other waits.
            let (a, b) = tokio::join!(tessera_store::connect(&url), tessera_store::connect(&url));
            a.expect("concurrent first connect");
            b.expect("concurrent first connect");
            check_reconnect(&url).await;
        })
        .await;
}

// --- harness ---------------------------------------------------------------

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/tessera", "x"),
        "postgres://u:p@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h:1/db?sslmode=disable&a=b/c", "x"),
        "postgres://u@h:1/x?sslmode=disable&a=b/c"
    );
    assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_the_password() {
    match tessera_store::connect("mysql://user:hunter2@db.example/tessera").await {
        Err(StoreError::Other(message)) => assert!(!message.contains("hunter2"), "{message}"),
        other => panic!("expected Other, got {other:?}"),
    }
}

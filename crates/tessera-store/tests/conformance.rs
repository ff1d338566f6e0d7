//! One conformance suite for every store backend. Each `check_*` function
//! exercises a group of verbs through the `Store` trait alone; the `sqlite` and
//! `postgres` tests run all of them against a fresh database. Every check uses
//! its own random IDs, so checks do not depend on each other or on their order.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use sqlx::Connection as _;
use tessera_core::crypto::{SecretDigest, random_bytes, random_token};
use tessera_core::model::{
    AcceptedTokens, Client, ClientAuthMethod, GrantType, IntrospectionPolicy, Resource, TokenFormat,
};
use tessera_core::scope::Scope;
use tessera_core::store::{ReferenceToken, Store, StoreError, StoredKey};
use tokio::sync::Barrier;

/// 2100-01-01. Rows of every check except `check_purge` expire then, so that
/// purging at earlier instants only ever touches `check_purge`'s rows.
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
        auth_method: Some(ClientAuthMethod::ClientSecretPost),
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
        created_at,
    }
}

/// A public client: no secret digest, explicit `none` authentication.
fn public_client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: "Single-page app".to_owned(),
        secret_digest: None,
        auth_method: Some(ClientAuthMethod::None),
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
        created_at,
    }
}

/// Empty lists, no auth method and no format, but a secret and a TTL.
fn bare_client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: String::new(),
        secret_digest: Some(SecretDigest::of(&random_token())),
        auth_method: None,
        grants: Vec::new(),
        redirect_uris: Vec::new(),
        scopes: Scope::default(),
        audiences: Vec::new(),
        token_format: None,
        access_token_ttl: Some(1),
        introspection: IntrospectionPolicy::Any,
        created_at,
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
    assert_eq!(
        store.client(&unique("missing")).await.expect("client"),
        None
    );

    let ours = [&full.id, &public.id, &bare.id];
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
    assert!(
        store
            .set_client_secret(&confidential.id, &digest)
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
    // Only the secret changed.
    assert_eq!(
        updated,
        Client {
            secret_digest: Some(digest),
            ..confidential
        }
    );

    // A public client does not become confidential this way.
    assert!(
        !store
            .set_client_secret(&public.id, &digest)
            .await
            .expect("set_client_secret")
    );
    assert_eq!(
        store.client(&public.id).await.expect("client"),
        Some(public)
    );

    assert!(
        !store
            .set_client_secret(&unique("missing"), &digest)
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
        created_at: base + 2,
    };
    let billing = Resource {
        audience: format!("urn:example:{}", unique("billing")),
        scopes: Scope::default(),
        token_format: None,
        accepts: AcceptedTokens::User,
        created_at: base + 1,
    };
    let reports = Resource {
        audience: unique("reports"),
        scopes: Scope::from_tokens(["reports"]),
        token_format: Some(TokenFormat::Reference),
        accepts: AcceptedTokens::Both,
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

    assert_eq!(store.purge_expired(now).await.expect("purge_expired"), 4);
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
    assert_eq!(store.purge_expired(10_000).await.expect("purge_expired"), 1);
    assert!(
        !store
            .is_jti_revoked(&jti_later)
            .await
            .expect("is_jti_revoked")
    );
    assert_eq!(store.purge_expired(10_000).await.expect("purge_expired"), 0);
}

/// How many of a racing `insert_signing_key_unless_newer` may win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRace {
    /// Writers are serialised, so the guard admits exactly one.
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

async fn check_resource_race(store: &Arc<dyn Store>) {
    let audience = unique("contested");
    let results = race(store, |store, i| {
        let resource = Resource {
            audience: audience.clone(),
            scopes: Scope::from_tokens([format!("scope{i}")]),
            token_format: None,
            accepts: AcceptedTokens::Both,
            created_at: 1_700_000_000,
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

/// Every check, in sequence, against one store.
async fn check_all(store: Arc<dyn Store>, backend: &'static str, key_race: KeyRace) {
    check_ping(&*store, backend).await;
    check_clients(&*store).await;
    check_client_secrets(&*store).await;
    check_delete_client(&*store).await;
    check_resources(&*store).await;
    check_keys(&*store).await;
    check_insert_key_unless_newer(&*store).await;
    check_reference_tokens(&*store).await;
    check_revoked_jtis(&*store).await;
    check_purge(&*store).await;
    check_key_race(&store, key_race).await;
    check_client_races(&store).await;
    check_resource_race(&store).await;
    check_revocation_races(&store).await;
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

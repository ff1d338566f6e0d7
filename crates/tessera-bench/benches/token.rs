//! The token endpoint's hot path, piece by piece: minting one JWT access token per
//! algorithm, and client authentication (Basic header parsing, store lookup,
//! digest comparison) over an in-memory store.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Mutex;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::client_auth::{Authenticator, Presented};
use tessera_core::crypto::{KeyEncryptionKey, SecretDigest};
use tessera_core::model::{Client, GrantType, IntrospectionPolicy};
use tessera_core::params::Params;
use tessera_core::scope::Scope;
use tessera_core::store::{ClientStore, SecretUpdate, StoreResult};
use tessera_core::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use tessera_jose::{Algorithm, SigningKey};

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://auth.example.com".into(),
        sub: "orders-service".into(),
        aud: Audience::One("https://api.example.com/orders".into()),
        exp: 1_800_003_600,
        iat: 1_800_000_000,
        jti: "q3tUJ0y2CvXn5kWz6F3b0A".into(),
        client_id: "orders-service".into(),
        scope: Some("orders.read orders.write".into()),
        auth_time: None,
        acr: None,
        amr: None,
        act: None,
        azp: None,
    }
}

fn mint(c: &mut Criterion) {
    let mut group = c.benchmark_group("mint_access_token");
    let claims = claims();
    for alg in Algorithm::ASYMMETRIC {
        let (key, _) = SigningKey::generate_with_thumbprint_kid(alg).expect("key");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                tessera_jose::encode(&key, ACCESS_TOKEN_TYP, black_box(&claims)).expect("sign")
            })
        });
    }
    group.finish();
}

/// A store that answers from memory, so the benchmark measures the protocol code.
struct MemoryClients(HashMap<String, Client>, Mutex<HashSet<(String, String)>>);

#[async_trait]
impl ClientStore for MemoryClients {
    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        Ok(self.0.get(id).cloned())
    }
    async fn insert_client(&self, _: &Client) -> StoreResult<()> {
        Ok(())
    }
    async fn clients(&self) -> StoreResult<Vec<Client>> {
        Ok(self.0.values().cloned().collect())
    }
    async fn delete_client(&self, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
    async fn set_client_secret(
        &self,
        _: &str,
        _: &SecretDigest,
        _: Option<&[u8]>,
    ) -> StoreResult<bool> {
        Ok(false)
    }
    async fn update_client(&self, _: &Client, _: SecretUpdate) -> StoreResult<bool> {
        Ok(false)
    }
    async fn update_client_if_unchanged(
        &self,
        _: &Client,
        _: SecretUpdate,
        _: &tessera_core::model::ClientMetadata,
    ) -> StoreResult<bool> {
        Ok(false)
    }
    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        _: i64,
        _: i64,
    ) -> StoreResult<bool> {
        let mut used = self.1.lock().expect("lock");
        Ok(used.insert((client_id.to_owned(), jti.to_owned())))
    }
}

fn client_authentication(c: &mut Criterion) {
    let secret = "kG2nq9Zr3v8T1mWc5YbX0dLf4uJh7sAe6iPo2RtQwEy";
    let client = Client {
        id: "orders-service".into(),
        name: "Orders".into(),
        secret_digest: Some(SecretDigest::of(secret)),
        sealed_secret: None,
        auth_method: None,
        jwks: None,
        jwks_uri: None,
        grants: vec![GrantType::ClientCredentials],
        redirect_uris: vec![],
        scopes: Scope::parse("orders.read orders.write").expect("scope"),
        audiences: vec![],
        token_format: None,
        access_token_ttl: None,
        introspection: IntrospectionPolicy::Any,
        require_pkce: true,
        id_token_alg: None,
        post_logout_redirect_uris: vec![],
        metadata: Default::default(),
        created_at: 0,
    };
    let store = MemoryClients(
        HashMap::from([(client.id.clone(), client)]),
        Mutex::default(),
    );
    let (kek, _) = KeyEncryptionKey::generate();
    let auth = Authenticator {
        clients: &store,
        kek: &kek,
        keys: None,
        now: 1_800_000_000,
        leeway: 30,
        audiences: &[],
        private_urls_allowed: false,
    };
    let header =
        "Basic b3JkZXJzLXNlcnZpY2U6a0cybnE5WnIzdjhUMW1XYzVZYlgwZExmNHVKaDdzQWU2aVBvMlJ0UXdFeQ==";
    let body = b"grant_type=client_credentials&scope=orders.read";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    c.bench_function("client_auth/basic", |b| {
        b.iter(|| {
            let params = Params::from_form(black_box(body)).expect("form");
            let presented =
                Presented::from_request(Some(black_box(header)), &params).expect("creds");
            runtime
                .block_on(presented.authenticate(&auth))
                .expect("authenticated")
        })
    });
    c.bench_function("client_auth/secret_digest_compare", |b| {
        let digest = SecretDigest::of(secret);
        b.iter(|| digest.matches(black_box(secret)))
    });
}

criterion_group!(benches, mint, client_authentication);
criterion_main!(benches);

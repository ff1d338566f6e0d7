//! A whole client-credentials token request through the provider on the embedded
//! SQLite store, per signing algorithm: form parsing, client lookup, secret
//! digest, scope and audience rules, signing. HTTP framing is left out so that
//! regressions in Tessera's own code stand out. Token exchange beside it:
//! the same minting after verifying a subject token.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::crypto::{KeyEncryptionKey, SecretDigest};
use tessera_core::model::{Client, GrantType, IntrospectionPolicy, TokenFormat};
use tessera_core::params::Params;
use tessera_core::scope::Scope;
use tessera_core::{Provider, Settings, SystemClock};
use tessera_jose::Algorithm;

const SECRET: &str = "kG2nq9Zr3v8T1mWc5YbX0dLf4uJh7sAe6iPo2RtQwEy";
const BASIC: &str =
    "Basic b3JkZXJzLXNlcnZpY2U6a0cybnE5WnIzdjhUMW1XYzVZYlgwZExmNHVKaDdzQWU2aVBvMlJ0UXdFeQ==";

/// A provider on a fresh SQLite database, with its catalogue kept fresh as the
/// server keeps it (so that the client is read from memory, as in production),
/// and the database's directory, removed when the guard drops.
fn provider(
    runtime: &tokio::runtime::Runtime,
    alg: Algorithm,
    format: TokenFormat,
) -> (Arc<Provider>, RemovedOnDrop) {
    let dir = std::env::temp_dir().join(format!(
        "tessera-bench-{}-{alg}-{}",
        std::process::id(),
        format.as_str()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let guard = RemovedOnDrop(dir.clone());
    let provider = runtime.block_on(async {
        let store = tessera_store::connect(&format!("sqlite://{}/bench.db", dir.display()))
            .await
            .expect("store");
        let mut settings = Settings::new("https://auth.example.com");
        settings.signing_alg = alg;
        let (kek, _) = KeyEncryptionKey::generate();
        let provider = Provider::new(store, Arc::new(SystemClock), settings, kek);
        provider.start().await.expect("keys");
        provider
            .store()
            .insert_client(&Client {
                id: "orders-service".into(),
                name: "Orders".into(),
                secret_digest: Some(SecretDigest::of(SECRET)),
                sealed_secret: None,
                auth_method: None,
                jwks: None,
                jwks_uri: None,
                grants: vec![GrantType::ClientCredentials, GrantType::TokenExchange],
                redirect_uris: vec![],
                scopes: Scope::parse("orders.read orders.write").expect("scope"),
                audiences: vec!["https://api.example.com/orders".into()],
                token_format: Some(format),
                access_token_ttl: None,
                introspection: IntrospectionPolicy::Any,
                require_pkce: true,
                id_token_alg: None,
                post_logout_redirect_uris: vec![],
                metadata: Default::default(),
                created_at: 0,
            })
            .await
            .expect("client");
        Arc::new(provider)
    });
    let syncing = Arc::clone(&provider);
    runtime.spawn(async move {
        loop {
            let _ = syncing.catalog().sync().await;
            tokio::time::sleep(tessera_core::catalog::SYNC_INTERVAL).await;
        }
    });
    (provider, guard)
}

struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client_credentials(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let body = b"grant_type=client_credentials&scope=orders.read";
    let mut group = c.benchmark_group("client_credentials");
    for alg in Algorithm::ASYMMETRIC {
        let (provider, _dir) = provider(&runtime, alg, TokenFormat::Jwt);
        group.bench_function(format!("jwt/{alg}"), |b| {
            b.iter(|| {
                let params = Params::from_form(black_box(body)).expect("form");
                runtime
                    .block_on(provider.token(Some(BASIC), &params, None))
                    .expect("token")
            })
        });
    }
    let (provider, _dir) = provider(&runtime, Algorithm::ES256, TokenFormat::Reference);
    group.bench_function("reference", |b| {
        b.iter(|| {
            let params = Params::from_form(black_box(body)).expect("form");
            runtime
                .block_on(provider.token(Some(BASIC), &params, None))
                .expect("token")
        })
    });
    group.finish();
}

/// Token exchange (RFC 8693) of an app token for a narrower one, delegated to
/// the client: the subject token's signature, `typ`, lifetime and revocation
/// check (one store read), then the same minting as client credentials. Next
/// to `client_credentials/jwt/ES256`, the cost of verifying the subject.
fn token_exchange(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (provider, _dir) = provider(&runtime, Algorithm::ES256, TokenFormat::Jwt);
    let subject = runtime
        .block_on(
            provider.token(
                Some(BASIC),
                &Params::from_form(
                    b"grant_type=client_credentials&scope=orders.read%20orders.write",
                )
                .expect("form"),
                None,
            ),
        )
        .expect("subject token")
        .access_token;
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token={subject}\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
         &scope=orders.read"
    );
    let mut group = c.benchmark_group("token_exchange");
    group.bench_function("jwt/ES256", |b| {
        b.iter(|| {
            let params = Params::from_form(black_box(body.as_bytes())).expect("form");
            runtime
                .block_on(provider.token(Some(BASIC), &params, None))
                .expect("token")
        })
    });
    group.finish();
}

criterion_group!(benches, client_credentials, token_exchange);
criterion_main!(benches);

//! The router in-process with a fixed clock: expiry, key life cycle and token
//! types, without sleeping.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_core::crypto::{KeyEncryptionKey, SecretDigest};
use tessera_core::model::{Client, GrantType, IntrospectionPolicy, TokenFormat};
use tessera_core::scope::Scope;
use tessera_core::{FixedClock, Provider, Settings};
use tessera_server::{AppState, app};

use crate::common::TempDir;

const START: i64 = 1_800_000_000;

struct Harness {
    base: String,
    clock: Arc<FixedClock>,
    provider: Arc<Provider>,
    http: reqwest::Client,
    _dir: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn harness() -> Harness {
    let dir = TempDir::new("inproc");
    let store = tessera_store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = Arc::new(FixedClock::new(START));
    let (kek, _) = KeyEncryptionKey::generate();
    let provider = Arc::new(Provider::new(
        store,
        clock.clone(),
        Settings::new(base.clone()),
        kek,
    ));
    provider.start().await.unwrap();
    for (id, format) in [
        ("jwt-app", TokenFormat::Jwt),
        ("ref-app", TokenFormat::Reference),
    ] {
        provider
            .store()
            .insert_client(&Client {
                id: id.into(),
                name: id.into(),
                secret_digest: Some(SecretDigest::of("secret")),
                sealed_secret: None,
                auth_method: None,
                jwks: None,
                jwks_uri: None,
                grants: vec![GrantType::ClientCredentials],
                redirect_uris: vec![],
                scopes: Scope::parse("s").unwrap(),
                audiences: vec![],
                token_format: Some(format),
                access_token_ttl: None,
                introspection: IntrospectionPolicy::Any,
                require_pkce: true,
                id_token_alg: None,
                post_logout_redirect_uris: vec![],
                metadata: Default::default(),
                created_at: START,
            })
            .await
            .unwrap();
    }
    let router = app(AppState::new(provider.clone()));
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Harness {
        base,
        clock,
        provider,
        http: reqwest::Client::new(),
        _dir: dir,
        task,
    }
}

impl Harness {
    async fn token(&self, client: &str) -> String {
        let body: Value = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(client, Some("secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn active(&self, token: &str) -> bool {
        let body: Value = self
            .http
            .post(format!("{}/oauth2/introspect", self.base))
            .basic_auth("jwt-app", Some("secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["active"].as_bool().unwrap()
    }

    async fn kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(format!("{}/jwks.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The access-token keys; the RS256 key for ID tokens lives beside them.
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "ES256")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn kid_of(token: &str) -> String {
    crate::common::decode_jwt(token).0["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn tokens_expire_on_time() {
    let h = harness().await;
    let jwt = h.token("jwt-app").await;
    let reference = h.token("ref-app").await;
    h.clock.advance(3599);
    assert!(h.active(&jwt).await && h.active(&reference).await);
    h.clock.advance(1);
    assert!(!h.active(&jwt).await, "expired JWT reported active");
    assert!(
        !h.active(&reference).await,
        "expired reference token reported active"
    );
}

#[tokio::test]
async fn revocation_records_are_purged_once_the_token_has_expired() {
    let h = harness().await;
    let jwt = h.token("jwt-app").await;
    let revoke = h
        .http
        .post(format!("{}/oauth2/revoke", h.base))
        .basic_auth("jwt-app", Some("secret"))
        .form(&[("token", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let jti = crate::common::decode_jwt(&jwt).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(h.provider.store().is_jti_revoked(&jti).await.unwrap());
    assert_eq!(
        h.provider.store().purge_expired(START + 10).await.unwrap(),
        0
    );
    assert_eq!(
        h.provider
            .store()
            .purge_expired(START + 3600)
            .await
            .unwrap(),
        1
    );
    assert!(!h.provider.store().is_jti_revoked(&jti).await.unwrap());
}

#[tokio::test]
async fn keys_are_published_before_they_sign_and_after_they_retire() {
    let h = harness().await;
    let settings = h.provider.settings().clone();
    let old_token = h.token("jwt-app").await;
    let old_kid = kid_of(&old_token);

    let next = h
        .provider
        .keys()
        .rotate(
            h.provider.store(),
            settings.signing_alg,
            false,
            &settings,
            h.provider.clock(),
        )
        .await
        .unwrap();
    assert_eq!(h.kids().await, vec![next.kid.clone(), old_kid.clone()]);
    assert_eq!(
        kid_of(&h.token("jwt-app").await),
        old_kid,
        "a next key must not sign yet"
    );

    h.clock.advance(settings.key_prepublish);
    let new_token = h.token("jwt-app").await;
    assert_eq!(kid_of(&new_token), next.kid);
    assert_eq!(h.kids().await.len(), 2, "the retired key stays published");

    // The retired key is withdrawn once every token it signed has expired.
    h.clock.advance(settings.max_token_ttl);
    assert_eq!(h.kids().await, vec![next.kid.clone()]);
    assert!(!h.active(&old_token).await);
}

#[tokio::test]
async fn scheduled_rotation_publishes_the_successor_a_day_ahead() {
    let h = harness().await;
    let settings = h.provider.settings().clone();
    assert!(
        h.provider.maintain_keys().await.unwrap().is_none(),
        "a fresh key is not due"
    );
    h.clock
        .advance(settings.key_rotation_interval - settings.key_prepublish);
    let next = h
        .provider
        .maintain_keys()
        .await
        .unwrap()
        .expect("rotation due");
    assert_eq!(next.activates_at, h.clock_now() + settings.key_prepublish);
    assert!(
        h.provider.maintain_keys().await.unwrap().is_none(),
        "only one successor"
    );
    assert_eq!(h.kids().await.len(), 2);
}

impl Harness {
    fn clock_now(&self) -> i64 {
        use tessera_core::Clock as _;
        self.clock.now()
    }
}

#[tokio::test]
async fn only_access_tokens_of_this_issuer_introspect_as_active() {
    let h = harness().await;
    let now = START;
    let claims = |iss: &str| {
        json!({"iss": iss, "sub": "u", "aud": "a", "exp": now + 60, "iat": now,
               "jti": "j1", "client_id": "jwt-app"})
    };
    let ring = h.provider.keys().ring();
    let key = ring
        .signing_key(h.provider.settings().signing_alg, now)
        .unwrap();
    // Signed with the server's own key, but an ID token (typ JWT) or from
    // another issuer: not an access token of this server (RFC 9068 §4).
    let id_token = tessera_jose::encode(key, "JWT", &claims(&h.base)).unwrap();
    let foreign =
        tessera_jose::encode(key, "at+jwt", &claims("https://elsewhere.example")).unwrap();
    let genuine = tessera_jose::encode(key, "at+jwt", &claims(&h.base)).unwrap();
    assert!(!h.active(&id_token).await);
    assert!(!h.active(&foreign).await);
    assert!(h.active(&genuine).await);
    // typ is a media type: case-insensitive, `application/` implied (RFC
    // 7515 §4.1.9), the same rule tessera-guard applies.
    for typ in ["AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
        let token = tessera_jose::encode(key, typ, &claims(&h.base)).unwrap();
        assert!(h.active(&token).await, "{typ}");
    }
    for typ in ["application/jwt", "text/at+jwt", "at+jwt; v=1"] {
        let token = tessera_jose::encode(key, typ, &claims(&h.base)).unwrap();
        assert!(!h.active(&token).await, "{typ}");
    }
    // Issued in the future beyond the leeway: not active.
    let mut future = claims(&h.base);
    future["iat"] = json!(now + 3600);
    future["exp"] = json!(now + 7200);
    assert!(
        !h.active(&tessera_jose::encode(key, "at+jwt", &future).unwrap())
            .await
    );
}

//! Reference tokens through introspection, and the bounds of its cache.

use std::time::Duration;

use serde_json::json;
use tessera_guard::{ClientSecret, Error, TokenKind};

use crate::fixture::{AUDIENCE, CLIENT_ID, Fixture};

const TOKEN: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"; // opaque, no dots

#[tokio::test]
async fn an_active_reference_token_is_accepted_and_cached() {
    let fx = Fixture::start().await;
    let mut answer = fx.active();
    answer["act"] = json!({"sub": "svc-a"});
    fx.reference(TOKEN, answer);
    let verifier = fx.introspecting_verifier().await;

    let token = verifier.verify(TOKEN).await.expect("active");
    assert_eq!(token.kind(), TokenKind::Reference);
    assert_eq!(token.subject(), "alice");
    assert_eq!(token.client_id(), "web-app");
    assert!(token.has_scope("orders.read"));
    assert_eq!(token.audience(), [AUDIENCE]);
    assert_eq!(token.actor().map(|a| a.subject()), Some("svc-a"));
    assert_eq!(token.claim("token_type"), Some(json!("Bearer")));
    assert_eq!(fx.introspection_hits(), 1);

    assert!(verifier.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 1, "served from the cache");
}

#[tokio::test]
async fn positive_answers_are_cached_no_longer_than_the_bound() {
    let fx = Fixture::start().await;
    fx.reference(TOKEN, fx.active()); // exp in 15 minutes
    let verifier = fx
        .builder()
        .client_credentials(CLIENT_ID, ClientSecret::new(crate::fixture::CLIENT_SECRET))
        .introspection_cache_ttl(Duration::from_secs(60))
        .discover()
        .await
        .expect("discover");
    assert!(verifier.verify(TOKEN).await.is_ok());
    fx.advance(59);
    assert!(verifier.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 1);
    // Revoked meanwhile: seen once the cache entry ends.
    fx.reference(TOKEN, json!({"active": false}));
    fx.advance(1);
    assert!(matches!(verifier.verify(TOKEN).await, Err(Error::Inactive)));
    assert_eq!(fx.introspection_hits(), 2);
}

#[tokio::test]
async fn positive_answers_are_cached_no_longer_than_exp() {
    let fx = Fixture::start().await;
    let mut answer = fx.active();
    answer["exp"] = json!(fx.now() + 10);
    fx.reference(TOKEN, answer);
    let verifier = fx.introspecting_verifier().await; // bound 60 s by default
    assert!(verifier.verify(TOKEN).await.is_ok());
    fx.advance(9);
    assert!(verifier.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 1);
    fx.advance(1);
    // Past exp the cache has nothing; the server (which still says active,
    // within our leeway) is asked again.
    assert!(verifier.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 2);
    fx.advance(30);
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::Expired(_))
    ));
    assert_eq!(fx.introspection_hits(), 3);
}

#[tokio::test]
async fn inactive_answers_are_cached_briefly() {
    let fx = Fixture::start().await;
    let verifier = fx.introspecting_verifier().await; // inactive ttl 5 s
    for _ in 0..3 {
        assert!(matches!(verifier.verify(TOKEN).await, Err(Error::Inactive)));
    }
    assert_eq!(fx.introspection_hits(), 1);
    fx.advance(5);
    fx.reference(TOKEN, fx.active());
    assert!(
        verifier.verify(TOKEN).await.is_ok(),
        "a token activated later is seen"
    );
    assert_eq!(fx.introspection_hits(), 2);
}

fn configured(fx: &Fixture) -> tessera_guard::VerifierBuilder {
    fx.builder()
        .client_credentials(CLIENT_ID, ClientSecret::new(crate::fixture::CLIENT_SECRET))
}

#[tokio::test]
async fn the_cache_lifetime_bounds_how_long_a_revoked_token_is_accepted() {
    let fx = Fixture::start().await;
    fx.reference(TOKEN, fx.active());
    let verifier = configured(&fx)
        .introspection_cache_ttl(Duration::from_secs(5))
        .discover()
        .await
        .expect("discover");
    assert!(verifier.verify(TOKEN).await.is_ok());
    fx.reference(TOKEN, json!({"active": false})); // revoked
    fx.advance(4);
    assert!(verifier.verify(TOKEN).await.is_ok(), "cached");
    assert_eq!(fx.introspection_hits(), 1);
    fx.advance(1);
    assert!(matches!(verifier.verify(TOKEN).await, Err(Error::Inactive)));
    assert_eq!(fx.introspection_hits(), 2);

    // Zero: every request asks, so revocation is seen at once.
    let uncached = configured(&fx)
        .introspection_cache_ttl(Duration::ZERO)
        .discover()
        .await
        .expect("discover");
    fx.reference(TOKEN, fx.active());
    assert!(uncached.verify(TOKEN).await.is_ok());
    assert!(uncached.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 4);
    fx.reference(TOKEN, json!({"active": false}));
    assert!(matches!(uncached.verify(TOKEN).await, Err(Error::Inactive)));
}

#[tokio::test]
async fn a_junk_token_sent_again_costs_one_call_per_inactive_ttl() {
    let fx = Fixture::start().await;
    let verifier = configured(&fx)
        .introspection_inactive_ttl(Duration::from_secs(2))
        .discover()
        .await
        .expect("discover");
    let junk = "anVuaw";
    for _ in 0..100 {
        assert!(matches!(verifier.verify(junk).await, Err(Error::Inactive)));
    }
    assert_eq!(fx.introspection_hits(), 1);
    fx.advance(2);
    assert!(matches!(verifier.verify(junk).await, Err(Error::Inactive)));
    assert_eq!(fx.introspection_hits(), 2);

    let unremembered = configured(&fx)
        .introspection_inactive_ttl(Duration::ZERO)
        .discover()
        .await
        .expect("discover");
    for _ in 0..3 {
        assert!(matches!(
            unremembered.verify(junk).await,
            Err(Error::Inactive)
        ));
    }
    assert_eq!(fx.introspection_hits(), 5);
}

#[tokio::test]
async fn a_flood_of_junk_tokens_does_not_evict_a_valid_one() {
    let fx = Fixture::start().await;
    fx.reference(TOKEN, fx.active());
    let verifier = configured(&fx)
        .introspection_cache_capacity(3)
        .discover()
        .await
        .expect("discover");
    assert!(verifier.verify(TOKEN).await.is_ok());
    for i in 0..20 {
        let junk = format!("junk{i}");
        assert!(matches!(verifier.verify(&junk).await, Err(Error::Inactive)));
    }
    assert_eq!(fx.introspection_hits(), 21);
    // Junk answers end sooner (5 s) than the valid one (60 s), so they made
    // room for each other; a cache emptied when full would ask again here.
    assert!(verifier.verify(TOKEN).await.is_ok());
    assert_eq!(fx.introspection_hits(), 21);
    // The most recent junk is still remembered too.
    assert!(matches!(
        verifier.verify("junk19").await,
        Err(Error::Inactive)
    ));
    assert_eq!(fx.introspection_hits(), 21);
}

#[tokio::test]
async fn an_answer_for_a_refresh_token_is_refused() {
    let fx = Fixture::start().await;
    // What Tessera answers for an active refresh token.
    let mut refresh = fx.active();
    refresh["token_type"] = json!("refresh_token");
    fx.reference(TOKEN, refresh);
    let mut lower = fx.active();
    lower["token_type"] = json!("bearer");
    fx.reference("bG93ZXI", lower);
    let verifier = fx.introspecting_verifier().await;
    match verifier.verify(TOKEN).await {
        Err(e @ Error::NotAnAccessToken(_)) => {
            assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
            assert!(e.to_string().contains("refresh_token"));
        }
        other => panic!("{other:?}"),
    }
    // Remembered like any refusal.
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::NotAnAccessToken(_))
    ));
    assert_eq!(fx.introspection_hits(), 1);
    // Token types are case-insensitive (RFC 6749 §5.1).
    assert!(verifier.verify("bG93ZXI").await.is_ok());
}

#[tokio::test]
async fn an_answer_with_an_absurd_exp_is_not_trusted() {
    let fx = Fixture::start().await;
    let mut forever = fx.active();
    forever["exp"] = json!(i64::MAX);
    fx.reference(TOKEN, forever);
    let verifier = fx.introspecting_verifier().await;
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::IntrospectionFailed(_))
    ));
}

#[tokio::test]
async fn answers_for_another_audience_or_issuer_are_refused() {
    let fx = Fixture::start().await;
    let mut answer = fx.active();
    answer["aud"] = json!(["https://billing"]);
    fx.reference(TOKEN, answer);
    let mut other_issuer = fx.active();
    other_issuer["iss"] = json!("https://evil");
    fx.reference("b3RoZXI", other_issuer);
    let mut no_aud = fx.active();
    no_aud.as_object_mut().expect("object").remove("aud");
    fx.reference("bm9hdWQ", no_aud);
    let verifier = fx.introspecting_verifier().await;
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::WrongAudience)
    ));
    assert!(matches!(
        verifier.verify("b3RoZXI").await,
        Err(Error::WrongIssuer(_))
    ));
    assert!(matches!(
        verifier.verify("bm9hdWQ").await,
        Err(Error::MissingClaim("aud"))
    ));
    // Refusals are remembered like inactive answers.
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::WrongAudience)
    ));
    assert_eq!(fx.introspection_hits(), 3);
}

#[tokio::test]
async fn required_scopes_apply_to_reference_tokens() {
    let fx = Fixture::start().await;
    fx.reference(TOKEN, fx.active());
    let verifier = fx
        .builder()
        .client_credentials(CLIENT_ID, ClientSecret::new(crate::fixture::CLIENT_SECRET))
        .require_scopes(["orders.write"])
        .discover()
        .await
        .expect("discover");
    assert!(
        matches!(verifier.verify(TOKEN).await, Err(Error::InsufficientScope(s)) if s == "orders.write")
    );
}

#[tokio::test]
async fn failures_to_introspect_are_503_and_not_cached() {
    let mut fx = Fixture::start().await;
    fx.reference(TOKEN, fx.active());
    let wrong = fx
        .builder()
        .client_credentials(CLIENT_ID, ClientSecret::new("wrong"))
        .discover()
        .await
        .expect("discover");
    for _ in 0..2 {
        match wrong.verify(TOKEN).await {
            Err(e @ Error::IntrospectionFailed(_)) => {
                assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fx.introspection_hits(), 2);

    let verifier = fx.introspecting_verifier().await;
    assert!(verifier.verify(TOKEN).await.is_ok());
    fx.stop().await;
    assert!(
        verifier.verify(TOKEN).await.is_ok(),
        "cached while the server is down"
    );
    fx.advance(60);
    assert!(matches!(
        verifier.verify(TOKEN).await,
        Err(Error::IntrospectionFailed(_))
    ));
}

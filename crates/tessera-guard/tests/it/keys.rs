//! The JWKS cache: discovery, kid-miss refetch and its limits,
//! Cache-Control, and serving from cache while the server is down. Time moves
//! only through the fixture's ManualClock.

use std::sync::Arc;
use std::time::Duration;

use tessera_guard::{Algorithm, Error, SetupError, Verifier};

use crate::fixture::{AUDIENCE, Fixture, generate, sign};

#[tokio::test]
async fn discovery_checks_the_issuer_exactly() {
    let fx = Fixture::start().await;
    *fx.shared.issuer.lock().unwrap() = format!("{}/", fx.issuer);
    match fx.builder().discover().await {
        Err(SetupError::IssuerMismatch { expected, found }) => {
            assert_eq!(expected, fx.issuer);
            assert_eq!(found, format!("{}/", fx.issuer));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Verifier::discover("http://id.example.com", AUDIENCE).await,
        Err(SetupError::InsecureUrl(_))
    ));
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_finds_the_new_key() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    assert_eq!(fx.jwks_hits(), 1);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 1, "fresh keys come from the cache");

    // The server rotates: a new key, published and signing at once.
    let next = generate(Algorithm::ES256, "es-2");
    fx.publish(&next);
    let token = verifier
        .verify(&sign(&next, "at+jwt", &fx.claims()))
        .await
        .expect("new key");
    assert_eq!(token.subject(), "alice");
    assert_eq!(fx.jwks_hits(), 2);
    // The old key is still published, so its tokens still verify.
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_fetches_within_the_bucket() {
    let fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .jwks_refetch_limit(2, Duration::from_secs(5))
        .discover()
        .await
        .expect("discover");
    let batch = |name: &str| -> Vec<String> {
        (0..50)
            .map(|i| {
                sign(
                    &generate(Algorithm::ES256, &format!("{name}-{i}")),
                    "at+jwt",
                    &fx.claims(),
                )
            })
            .collect()
    };

    // Every forged token is refused: 401 once a fetch has shown its kid
    // unknown, 503 while the bucket is empty. None is accepted. Returns how
    // many were deferred.
    let flood = |tokens: Vec<String>| {
        let verifier = verifier.clone();
        async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .map(|t| {
                    let v = verifier.clone();
                    tokio::spawn(async move { v.verify(&t).await })
                })
                .collect();
            let mut deferred = 0;
            for task in tasks {
                match task.await.expect("task") {
                    Err(Error::UnknownKey(Some(_))) => {}
                    Err(Error::KeyRefetchDeferred { .. }) => deferred += 1,
                    other => panic!("{other:?}"),
                }
            }
            deferred
        }
    };
    flood(batch("a")).await;
    // Tasks that waited for the first fetch learn from it, so one or both
    // slots were used.
    assert!((2..=3).contains(&fx.jwks_hits()), "{}", fx.jwks_hits());
    flood(batch("b")).await;
    assert_eq!(fx.jwks_hits(), 3, "two refetches for two floods: the burst");
    // The clock has not moved, so the bucket stays empty: 50 kids no fetch
    // has looked for are all deferred, and the server is not asked.
    assert_eq!(flood(batch("c")).await, 50);
    assert_eq!(fx.jwks_hits(), 3);
    fx.advance(5);
    flood(batch("d")).await;
    assert_eq!(fx.jwks_hits(), 4, "one slot per interval");

    // Genuine tokens are not affected by the flood.
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 4);
}

#[tokio::test]
async fn one_invented_kid_does_not_delay_a_real_new_key() {
    // The reported attack: one token with an invented kid, then a rotation
    // (`tessera keys rotate --now`). The new key's tokens used to get 401
    // for the rest of a 30 s window.
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let forged = sign(
        &generate(Algorithm::ES256, "attacker"),
        "at+jwt",
        &fx.claims(),
    );
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(Error::UnknownKey(Some(k))) if k == "attacker"
    ));
    assert_eq!(fx.jwks_hits(), 2);

    let next = generate(Algorithm::ES256, "es-2");
    fx.publish(&next);
    let token = sign(&next, "at+jwt", &fx.claims());
    let verified = verifier.verify(&token).await.expect("accepted at once");
    assert_eq!(verified.subject(), "alice");
    assert_eq!(fx.jwks_hits(), 3);
}

#[tokio::test]
async fn a_new_key_behind_an_empty_bucket_gets_503_then_is_accepted() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await; // 2 refetches, then one per 5 s
    for i in 0..2 {
        let forged = sign(
            &generate(Algorithm::ES256, &format!("forged-{i}")),
            "at+jwt",
            &fx.claims(),
        );
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(Error::UnknownKey(_))
        ));
    }
    assert_eq!(fx.jwks_hits(), 3);

    let next = generate(Algorithm::ES256, "es-2");
    fx.publish(&next);
    let token = sign(&next, "at+jwt", &fx.claims());
    fx.advance(2);
    // Not a 401: the key may well exist, the client is told when to retry.
    match verifier.verify(&token).await {
        Err(e @ Error::KeyRefetchDeferred { .. }) => {
            assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
            assert!(e.challenge(Some("x")).is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.jwks_hits(), 3);
    fx.advance(3);
    assert!(verifier.verify(&token).await.is_ok(), "the retry succeeds");
    assert_eq!(fx.jwks_hits(), 4);
}

#[tokio::test]
async fn an_unknown_kid_is_remembered_without_spending_the_bucket() {
    let fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .jwks_refetch_limit(1, Duration::from_secs(5))
        .jwks_unknown_kid_ttl(Duration::from_secs(30))
        .discover()
        .await
        .expect("discover");
    let forged = sign(
        &generate(Algorithm::ES256, "attacker"),
        "at+jwt",
        &fx.claims(),
    );
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(Error::UnknownKey(_))
    ));
    assert_eq!(fx.jwks_hits(), 2);
    // The same kid again and again: a definite 401 from memory, even with
    // the bucket empty, and no fetch.
    fx.advance(1);
    for _ in 0..20 {
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(Error::UnknownKey(_))
        ));
    }
    assert_eq!(fx.jwks_hits(), 2);
    // Once the bucket has a slot, a real new key is fetched at once.
    fx.advance(4);
    let next = generate(Algorithm::ES256, "es-2");
    fx.publish(&next);
    assert!(
        verifier
            .verify(&sign(&next, "at+jwt", &fx.claims()))
            .await
            .is_ok()
    );
    assert_eq!(fx.jwks_hits(), 3);
    // After the memory ends, the kid is looked for again.
    fx.advance(30);
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(Error::UnknownKey(_))
    ));
    assert_eq!(fx.jwks_hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tokens_from_a_new_key_share_one_refetch() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let next = generate(Algorithm::ES256, "es-2");
    fx.publish(&next);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = verifier.clone();
            let token = sign(&next, "at+jwt", &fx.claims());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        // Those that arrive while the fetch is in flight wait for it rather
        // than being refused.
        assert!(task.await.expect("task").is_ok());
    }
    assert_eq!(fx.jwks_hits(), 2);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let fx = Fixture::start().await;
    fx.set_cache_control(Some("public, max-age=600"));
    let verifier = fx.verifier().await;
    fx.unpublish("es-1");
    let es2 = generate(Algorithm::ES256, "es-2");
    fx.publish(&es2);

    fx.advance(599);
    assert!(
        verifier.verify(&fx.token()).await.is_ok(),
        "the cached key is fresh"
    );
    assert_eq!(fx.jwks_hits(), 1);
    fx.advance(1);
    // Stale now: this verification refreshes, and the withdrawn key is gone.
    assert!(matches!(
        verifier.verify(&fx.token()).await,
        Err(Error::UnknownKey(_))
    ));
    assert_eq!(fx.jwks_hits(), 2);
    assert!(
        verifier
            .verify(&sign(&es2, "at+jwt", &fx.claims()))
            .await
            .is_ok()
    );
    assert_eq!(fx.jwks_hits(), 2);
}

#[tokio::test]
async fn max_age_is_clamped_and_defaulted() {
    let fx = Fixture::start().await;
    // max-age=0 must not mean a fetch per request: the floor is 60 s.
    fx.set_cache_control(Some("max-age=0"));
    let verifier = fx.verifier().await;
    for _ in 0..3 {
        assert!(verifier.verify(&fx.token()).await.is_ok());
    }
    assert_eq!(fx.jwks_hits(), 1);
    fx.advance(60);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 2);

    // No Cache-Control: the default of 5 minutes.
    fx.set_cache_control(None);
    fx.advance(60);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 3);
    fx.advance(299);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 3);
    fx.advance(1);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 4);
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_the_server_is_down() {
    let mut fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .jwks_max_stale(Duration::from_secs(3600))
        .discover()
        .await
        .expect("discover");
    fx.stop().await;

    assert!(
        verifier.verify(&fx.token()).await.is_ok(),
        "fresh keys need no server"
    );
    fx.advance(600);
    // Stale: the refresh fails, the cached key still verifies.
    assert!(
        verifier.verify(&fx.token()).await.is_ok(),
        "stale keys while unreachable"
    );
    fx.advance(3599);
    assert!(
        verifier.verify(&fx.token()).await.is_ok(),
        "up to max_stale"
    );
    fx.advance(1);
    match verifier.verify(&fx.token()).await {
        Err(e @ Error::KeysUnavailable(_)) => {
            assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_lazy_verifier_fetches_on_first_use_and_retries_after_failure() {
    let mut fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .jwks_uri(format!("{}/jwks.json", fx.issuer))
        .build()
        .expect("build");
    assert_eq!(fx.jwks_hits(), 0);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 1);

    // Nothing was ever loaded from a server that is down: 503, and the next
    // attempt waits for the retry interval.
    let cold = fx
        .builder()
        .jwks_uri(format!("{}/jwks.json", fx.issuer))
        .build()
        .expect("build");
    fx.stop().await;
    assert!(matches!(
        cold.verify(&fx.token()).await,
        Err(Error::KeysUnavailable(_))
    ));
    assert!(matches!(
        cold.verify(&fx.token()).await,
        Err(Error::KeysUnavailable(
            tessera_guard::FetchError::RecentlyFailed
        ))
    ));
}

#[tokio::test]
async fn a_server_back_after_an_outage_is_used_again() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    fx.set_cache_control(Some("max-age=60"));
    fx.advance(600);
    assert!(verifier.verify(&fx.token()).await.is_ok());
    assert_eq!(fx.jwks_hits(), 2);
    assert_eq!(verifier.refresh_keys().await.expect("refresh"), 1);
    assert_eq!(fx.jwks_hits(), 3);
    let _ = Arc::clone(&fx.clock);
}

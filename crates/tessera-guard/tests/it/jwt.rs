//! JWT access tokens: what is accepted, and every way of being refused.

use serde_json::{Value, json};
use tessera_guard::{Algorithm, Error, SharedSecret, TokenKind, Verifier};
use tessera_jose::{SigningKey, encode};

use crate::fixture::{AUDIENCE, Fixture, b64, generate, sign};

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

async fn refused(verifier: &Verifier, token: &str) -> Error {
    match verifier.verify(token).await {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_valid_jwt_is_accepted_with_its_claims() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let mut claims = fx.claims();
    claims["aud"] = json!(["https://billing", AUDIENCE]);
    claims["act"] = json!({"sub": "svc-a", "client_id": "svc-a", "act": {"sub": "gateway"}});
    claims["tenant"] = json!("acme");
    let token = verifier
        .verify(&sign(&fx.key, "at+jwt", &claims))
        .await
        .expect("valid");
    assert_eq!(token.subject(), "alice");
    assert_eq!(token.client_id(), "web-app");
    assert_eq!(
        token.scopes().collect::<Vec<_>>(),
        ["orders.read", "profile"]
    );
    assert_eq!(token.audience(), ["https://billing", AUDIENCE]);
    assert_eq!(token.jti(), Some("jti-1"));
    assert_eq!(token.kind(), TokenKind::Jwt(Algorithm::ES256));
    let chain: Vec<&str> = token.actors().map(|a| a.subject()).collect();
    assert_eq!(chain, ["svc-a", "gateway"]);
    assert_eq!(token.claim("tenant"), Some(json!("acme")));
    let all: serde_json::Map<String, Value> = token.claims().expect("claims");
    assert_eq!(all.len(), claims.as_object().expect("object").len());
    // The long media type form of typ is accepted too (RFC 9068 §4).
    let long = sign(&fx.key, "application/at+jwt", &fx.claims());
    assert!(verifier.verify(&long).await.is_ok());
}

#[tokio::test]
async fn every_asymmetric_algorithm_verifies_with_its_own_key() {
    let fx = Fixture::start().await;
    let keys: Vec<SigningKey> = [Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA]
        .into_iter()
        .map(|alg| generate(alg, &format!("{alg}-1")))
        .collect();
    for key in &keys {
        fx.publish(key);
    }
    let verifier = fx.verifier().await;
    for key in &keys {
        let token = verifier
            .verify(&sign(key, "at+jwt", &fx.claims()))
            .await
            .expect("valid");
        assert_eq!(token.kind(), TokenKind::Jwt(key.alg()));
    }
    // The allow-list narrows: an RS256-only verifier refuses ES256.
    let rs_only = fx
        .builder()
        .algorithms([Algorithm::RS256])
        .discover()
        .await
        .expect("discover");
    assert!(
        matches!(refused(&rs_only, &fx.token()).await, Error::AlgorithmNotAllowed(a) if a == "ES256")
    );
    assert!(
        rs_only
            .verify(&sign(&keys[0], "at+jwt", &fx.claims()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let token = fx.token();
    let parts: Vec<&str> = token.split('.').collect();
    // Another payload under the original signature.
    let mut claims = fx.claims();
    claims["sub"] = json!("mallory");
    let swapped = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
    assert!(matches!(
        refused(&verifier, &swapped).await,
        Error::BadSignature
    ));
    // A flipped signature bit.
    let mut sig = tessera_jose::b64_decode(parts[2]).expect("b64");
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(sig));
    assert!(matches!(
        refused(&verifier, &flipped).await,
        Error::BadSignature
    ));
    // A token signed by a key that merely claims a published kid.
    let impostor = generate(Algorithm::ES256, "es-1");
    assert!(matches!(
        refused(&verifier, &sign(&impostor, "at+jwt", &fx.claims())).await,
        Error::BadSignature
    ));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let fx = Fixture::start().await;
    let rsa = generate(Algorithm::RS256, "rs-1");
    fx.publish(&rsa);
    let public = serde_json::to_vec(&rsa.public_jwk().expect("jwk")).expect("json");
    let forger = SigningKey::hmac("rs-1", &public).expect("hmac");
    let forged = sign(&forger, "at+jwt", &fx.claims());

    let verifier = fx.verifier().await;
    assert!(
        matches!(refused(&verifier, &forged).await, Error::AlgorithmNotAllowed(a) if a == "HS256")
    );

    // Even with HS256 enabled, only the configured secret is an HMAC key.
    let symmetric = fx
        .builder()
        .shared_secret(SharedSecret::new(SECRET))
        .discover()
        .await
        .expect("discover");
    assert!(matches!(
        refused(&symmetric, &forged).await,
        Error::BadSignature
    ));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let header = b64(r#"{"alg":"none","typ":"at+jwt","kid":"es-1"}"#);
    let payload = b64(fx.claims().to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        assert!(
            matches!(refused(&verifier, &token).await, Error::AlgorithmNotAllowed(a) if a == "none")
        );
    }
    // Lower-case spellings are not RS256 either.
    let header = b64(r#"{"alg":"rs256","typ":"at+jwt"}"#);
    assert!(matches!(
        refused(&verifier, &format!("{header}.{payload}.c2ln")).await,
        Error::AlgorithmNotAllowed(_)
    ));
}

#[tokio::test]
async fn a_kid_published_for_another_algorithm_is_refused() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    // RS256 token whose kid names the published ES256 key.
    let rsa = generate(Algorithm::RS256, "es-1");
    assert!(matches!(
        refused(&verifier, &sign(&rsa, "at+jwt", &fx.claims())).await,
        Error::KeyAlgorithmMismatch
    ));
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let now = fx.now();
    let with = |key: &str, value: i64| {
        let mut c = fx.claims();
        c[key] = value.into();
        sign(&fx.key, "at+jwt", &c)
    };
    assert!(matches!(
        refused(&verifier, &with("exp", now - 31)).await,
        Error::Expired(_)
    ));
    assert!(
        verifier.verify(&with("exp", now - 29)).await.is_ok(),
        "within the 30 s leeway"
    );
    assert!(matches!(
        refused(&verifier, &with("nbf", now + 60)).await,
        Error::NotYetValid(_)
    ));
    assert!(
        verifier.verify(&with("nbf", now + 20)).await.is_ok(),
        "within the 30 s leeway"
    );
    assert!(matches!(
        refused(&verifier, &with("iat", now + 3600)).await,
        Error::IssuedInFuture(_)
    ));

    // The token stays good until exp, then is refused, by the injected clock.
    let token = fx.token();
    fx.advance(900 + 29);
    assert!(verifier.verify(&token).await.is_ok());
    fx.advance(1);
    assert!(matches!(
        refused(&verifier, &token).await,
        Error::Expired(_)
    ));

    let strict = fx
        .builder()
        .leeway(std::time::Duration::ZERO)
        .discover()
        .await
        .expect("discover");
    assert!(matches!(
        refused(&strict, &with("exp", fx.now())).await,
        Error::Expired(_)
    ));
}

#[tokio::test]
async fn issuer_audience_and_typ_must_match() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let with = |key: &str, value: Value| {
        let mut c = fx.claims();
        c[key] = value;
        sign(&fx.key, "at+jwt", &c)
    };
    let trailing_slash = format!("{}/", fx.issuer);
    assert!(matches!(
        refused(&verifier, &with("iss", json!(trailing_slash))).await,
        Error::WrongIssuer(_)
    ));
    assert!(matches!(
        refused(&verifier, &with("iss", json!("https://evil"))).await,
        Error::WrongIssuer(_)
    ));
    assert!(matches!(
        refused(&verifier, &with("aud", json!("https://billing"))).await,
        Error::WrongAudience
    ));
    assert!(matches!(
        refused(&verifier, &with("aud", json!([]))).await,
        Error::WrongAudience
    ));

    // An ID token (typ JWT) from the same issuer and key is not an access token.
    let id_token = sign(&fx.key, "JWT", &fx.claims());
    assert!(matches!(refused(&verifier, &id_token).await, Error::WrongType(Some(t)) if t == "JWT"));
    let header = b64(r#"{"alg":"ES256","kid":"es-1"}"#);
    let untyped = format!("{header}.{}.c2ln", b64(fx.claims().to_string()));
    assert!(matches!(
        refused(&verifier, &untyped).await,
        Error::WrongType(None)
    ));
}

/// A token with this exact header and payload, validly signed by `key`.
fn signed_raw(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = key.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(sig))
}

#[tokio::test]
async fn crit_and_b64_headers_are_refused_even_when_signed() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let payload = fx.claims().to_string();
    for header in [
        r#"{"alg":"ES256","typ":"at+jwt","kid":"es-1","crit":null}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"es-1","crit":[]}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"es-1","crit":["b64"],"b64":true}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"es-1","b64":false}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":null}"#,
    ] {
        let token = signed_raw(&fx.key, header.as_bytes(), payload.as_bytes());
        assert!(
            matches!(refused(&verifier, &token).await, Error::Malformed(_)),
            "{header}"
        );
    }
    // The control: the same header without them verifies.
    let plain = br#"{"alg":"ES256","typ":"at+jwt","kid":"es-1"}"#;
    assert!(
        verifier
            .verify(&signed_raw(&fx.key, plain, payload.as_bytes()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn invalid_utf8_is_refused_in_a_signed_header_or_payload() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let payload = fx.claims().to_string();
    // 0xC3 0x28 inside a header member nobody reads.
    let mut header = br#"{"alg":"ES256","typ":"at+jwt","kid":"es-1","x":""#.to_vec();
    header.extend_from_slice(&[0xC3, 0x28]);
    header.extend_from_slice(br#""}"#);
    let token = signed_raw(&fx.key, &header, payload.as_bytes());
    assert!(matches!(
        refused(&verifier, &token).await,
        Error::Malformed(_)
    ));
    // And inside an unknown claim.
    let plain = br#"{"alg":"ES256","typ":"at+jwt","kid":"es-1"}"#;
    let mut claims = payload.trim_end_matches('}').as_bytes().to_vec();
    claims.extend_from_slice(br#","x":""#);
    claims.extend_from_slice(&[0xC3, 0x28]);
    claims.extend_from_slice(br#""}"#);
    let token = signed_raw(&fx.key, plain, &claims);
    assert!(matches!(
        refused(&verifier, &token).await,
        Error::Malformed(_)
    ));
}

#[tokio::test]
async fn typ_is_compared_as_a_media_type() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        assert!(
            verifier
                .verify(&sign(&fx.key, typ, &fx.claims()))
                .await
                .is_ok(),
            "{typ}"
        );
    }
    for typ in [
        "jwt",
        "application/jwt",
        "text/at+jwt",
        "at+jwt; v=1",
        "rt+jwt",
    ] {
        assert!(
            matches!(refused(&verifier, &sign(&fx.key, typ, &fx.claims())).await, Error::WrongType(Some(t)) if t == typ),
            "{typ}"
        );
    }
}

#[tokio::test]
async fn absurd_or_fractional_dates_are_refused() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    let now = fx.now();
    for (claim, value) in [
        ("exp", json!(i64::MAX)),
        ("exp", json!(253_402_300_800_i64)), // year 10000
        ("exp", json!(now as f64 + 600.5)),
        ("exp", json!(now as f64 + 600.0)),
        ("iat", json!(-1)),
        ("nbf", json!(u64::MAX)),
    ] {
        let mut claims = fx.claims();
        claims[claim] = value.clone();
        assert!(
            matches!(
                refused(&verifier, &sign(&fx.key, "at+jwt", &claims)).await,
                Error::Malformed(_)
            ),
            "{claim}: {value}"
        );
    }
    let mut far = fx.claims();
    far["exp"] = json!(253_402_300_799_i64); // the last second of 9999
    assert!(
        verifier
            .verify(&sign(&fx.key, "at+jwt", &far))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn required_scopes_are_enforced() {
    let fx = Fixture::start().await;
    let verifier = fx
        .builder()
        .require_scopes(["orders.read", "orders.write"])
        .discover()
        .await
        .expect("discover");
    match refused(&verifier, &fx.token()).await {
        Error::InsufficientScope(s) => assert_eq!(s, "orders.read orders.write"),
        other => panic!("{other:?}"),
    }
    let mut claims = fx.claims();
    claims["scope"] = json!("orders.write orders.read");
    assert!(
        verifier
            .verify(&sign(&fx.key, "at+jwt", &claims))
            .await
            .is_ok()
    );
    assert!(fx.builder().require_scopes(["bad scope"]).build().is_err());
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let fx = Fixture::start().await;
    let verifier = fx.verifier().await;
    for token in ["a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        assert!(
            matches!(refused(&verifier, token).await, Error::Malformed(_)),
            "{token}"
        );
    }
    let huge = format!("{}.{}.x", "a".repeat(10_000), "b".repeat(10_000));
    assert!(matches!(
        refused(&verifier, &huge).await,
        Error::Malformed(_)
    ));
    // A signed payload that is not a JSON object of claims.
    let header = b64(r#"{"alg":"ES256","typ":"at+jwt","kid":"es-1"}"#);
    let payload = b64("[1,2]");
    let input = format!("{header}.{payload}");
    let sig = fx.key.sign(input.as_bytes()).expect("sign");
    let token = format!("{input}.{}", b64(sig));
    assert!(matches!(
        refused(&verifier, &token).await,
        Error::Malformed(_)
    ));
    // Opaque strings go to introspection, which this verifier does not do.
    assert!(matches!(
        refused(&verifier, "opaque").await,
        Error::ReferenceTokensDisabled
    ));
}

#[tokio::test]
async fn a_token_without_kid_is_tried_against_keys_of_its_algorithm() {
    let fx = Fixture::start().await;
    let second = generate(Algorithm::ES256, "es-2");
    fx.publish(&second);
    let verifier = fx.verifier().await;
    let header = b64(r#"{"alg":"ES256","typ":"at+jwt"}"#);
    let input = format!("{header}.{}", b64(fx.claims().to_string()));
    let sig = second.sign(input.as_bytes()).expect("sign");
    assert!(
        verifier
            .verify(&format!("{input}.{}", b64(sig)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn hs256_with_a_shared_secret_and_no_server_at_all() {
    let verifier = Verifier::builder("https://id.example", AUDIENCE)
        .shared_secret(SharedSecret::new(SECRET))
        .build()
        .expect("build");
    let now = crate::fixture::unix(std::time::SystemTime::now());
    let claims = json!({
        "iss": "https://id.example", "sub": "alice", "aud": AUDIENCE, "exp": now + 60,
        "iat": now, "jti": "j", "client_id": "c", "scope": "orders.read",
    });
    let key = SigningKey::hmac("resource-1", SECRET).expect("hmac");
    let token = verifier
        .verify(&encode(&key, "at+jwt", &claims).expect("sign"))
        .await
        .expect("valid");
    assert_eq!(token.kind(), TokenKind::Jwt(Algorithm::HS256));

    let other =
        SigningKey::hmac("resource-1", b"another secret of at least 32 bytes!!").expect("hmac");
    let forged = encode(&other, "at+jwt", &claims).expect("sign");
    assert!(matches!(
        refused(&verifier, &forged).await,
        Error::BadSignature
    ));
    // No JWKS configured: asymmetric tokens have no key.
    let es = generate(Algorithm::ES256, "es-1");
    assert!(matches!(
        refused(&verifier, &sign(&es, "at+jwt", &claims)).await,
        Error::UnknownKey(_)
    ));

    let weak = Verifier::builder("https://id.example", AUDIENCE)
        .shared_secret(SharedSecret::new(b"short".to_vec()));
    assert!(matches!(
        weak.build(),
        Err(tessera_guard::SetupError::WeakSharedSecret)
    ));
}

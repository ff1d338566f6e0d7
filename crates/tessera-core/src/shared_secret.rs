//! The shared secrets of HS256 resources (SPEC "Signing"): a 256-bit random
//! value per resource, shown once, stored sealed with the key-encryption key,
//! named in tokens by a `kid` of its own and never published in the JWKS.
//!
//! Whoever holds a resource's secret can sign with it (RFC 7518 §3.2 HMACs are
//! symmetric), so two rules keep that holder from minting anything this server
//! takes for its own:
//!
//! - a secret signs access tokens for its resource alone; refresh tokens and
//!   ID tokens are always signed with the server's keys;
//! - the `jti` of such a token ends in a MAC over its claims under a key only
//!   this server has, so introspection and `/userinfo` accept only tokens this
//!   server minted, while the resource checks the HMAC signature as any HS256
//!   library does and sees an ordinary, unique `jti`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;
use tessera_jose::{Algorithm, SigningKey, VerifyingKey, b64, b64_decode};

use crate::crypto::{KeyEncryptionKey, random_token};
use crate::keys::KeyError;
use crate::model::{Resource, SealedSecret};
use crate::tokens::AccessTokenClaims;

/// Between a resource's audience and its secret's version in a `kid`. An
/// audience has no fragment (RFC 8707 §2) and the server's own key IDs are
/// RFC 7638 thumbprints in base64url, so a `#` tells the two kinds apart.
const KID_MARK: &str = "#hs256-";

/// The `kid` of version `version` of the secret of `audience`: stable, names
/// the resource, and says nothing about the secret itself.
pub fn kid_for(audience: &str, version: i64) -> String {
    format!("{audience}{KID_MARK}{version}")
}

/// The audience and secret version a shared-secret `kid` names; `None` for any
/// other `kid`, including non-canonical spellings of one (`#hs256-01`).
pub fn parse_kid(kid: &str) -> Option<(&str, i64)> {
    let (audience, version) = kid.rsplit_once(KID_MARK)?;
    let version: i64 = version.parse().ok()?;
    (version > 0 && kid_for(audience, version) == kid).then_some((audience, version))
}

/// A secret just made: the value to show once, and the same sealed for the store.
pub struct NewSecret {
    pub value: String,
    pub sealed: SealedSecret,
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewSecret([redacted])")
    }
}

/// A new secret for version `version` of `audience`'s secrets. The HMAC key is
/// the printed value's bytes, as most JWT libraries take a string secret; its
/// 43 base64url characters carry 256 random bits (RFC 7518 §3.2).
pub fn generate(kek: &KeyEncryptionKey, audience: &str, version: i64) -> NewSecret {
    let value = random_token();
    let sealed =
        SealedSecret(kek.seal(&seal_context(&kid_for(audience, version)), value.as_bytes()));
    NewSecret { value, sealed }
}

/// Binds a sealed secret to its resource and version: copied onto another row,
/// it does not open.
fn seal_context(kid: &str) -> String {
    format!("resource secret {kid}")
}

/// One shared secret, opened: ready to sign and verify many times.
#[derive(Debug)]
pub struct SharedKey {
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
    sealed: SealedSecret,
}

impl SharedKey {
    pub fn kid(&self) -> &str {
        self.signing.kid()
    }
}

/// Opened secrets by audience. Signing is the hot path, and a secret is opened
/// (AES-GCM, then the HMAC key schedule) once, not per token; a rotation stores
/// another sealed value, which misses the cache and replaces the entry. Entries
/// exist only for registered HS256 resources, so the map stays small.
#[derive(Debug, Default)]
pub struct SharedKeys {
    by_audience: RwLock<HashMap<String, Arc<SharedKey>>>,
}

impl SharedKeys {
    /// The key of `resource`'s current secret; `None` unless it is an HS256
    /// resource with a secret.
    pub fn key(
        &self,
        resource: &Resource,
        kek: &KeyEncryptionKey,
    ) -> Result<Option<Arc<SharedKey>>, KeyError> {
        let Some(sealed) = &resource.sealed_secret else {
            return Ok(None);
        };
        if resource.signing_alg != Some(Algorithm::HS256) {
            return Ok(None);
        }
        let kid = kid_for(&resource.audience, resource.secret_version);
        let cached = match self.by_audience.read() {
            Ok(map) => map.get(&resource.audience).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&resource.audience).cloned(),
        };
        if let Some(hit) = cached
            && hit.kid() == kid
            && hit.sealed == *sealed
        {
            return Ok(Some(hit));
        }
        let unusable = |reason: String| KeyError::Unusable {
            kid: kid.clone(),
            reason,
        };
        let secret = kek
            .open(&seal_context(&kid), &sealed.0)
            .map_err(|e| unusable(e.to_string()))?;
        let signing =
            SigningKey::hmac(kid.clone(), &secret).map_err(|e| unusable(e.to_string()))?;
        let verifying = signing
            .verifying_key()
            .map_err(|e| unusable(e.to_string()))?;
        let key = Arc::new(SharedKey {
            signing,
            verifying,
            sealed: sealed.clone(),
        });
        match self.by_audience.write() {
            Ok(mut map) => map.insert(resource.audience.clone(), Arc::clone(&key)),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(resource.audience.clone(), Arc::clone(&key)),
        };
        Ok(Some(key))
    }
}

/// Purpose of the MAC key that seals `jti`s, apart from every other use of the
/// key-encryption key.
const JTI_SEAL: &str = "tessera shared-secret access token";
/// 128 bits of MAC: forging one is as hard as guessing a random `jti`.
const JTI_TAG_BYTES: usize = 16;

/// Appends to the token's `jti` (a fresh random value) a MAC over all its
/// claims, under a key that never leaves this server.
pub fn seal_jti(kek: &KeyEncryptionKey, claims: &mut AccessTokenClaims) -> Result<(), String> {
    let tag = jti_tag(kek, claims)?;
    claims.jti = format!("{}.{}", claims.jti, b64(&tag[..JTI_TAG_BYTES]));
    Ok(())
}

/// Whether the token's `jti` carries the MAC [`seal_jti`] gave it: the claims
/// are the ones this server minted, not ones a holder of the secret wrote.
pub fn jti_is_sealed(kek: &KeyEncryptionKey, claims: &AccessTokenClaims) -> bool {
    let Some((random, tag)) = claims.jti.rsplit_once('.') else {
        return false;
    };
    let Ok(tag) = b64_decode(tag) else {
        return false;
    };
    let mut minted = claims.clone();
    minted.jti = random.to_owned();
    match jti_tag(kek, &minted) {
        // Slices of different lengths compare unequal.
        Ok(expected) => expected[..JTI_TAG_BYTES].ct_eq(&tag).into(),
        Err(_) => false,
    }
}

/// The MAC over the claims as this server serializes them. A verified token's
/// claims are parsed into the same struct and serialized again, which gives
/// the same bytes for every token minted here.
fn jti_tag(kek: &KeyEncryptionKey, claims: &AccessTokenClaims) -> Result<[u8; 32], String> {
    let bytes = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    Ok(kek.mac(JTI_SEAL, &bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Audience;

    fn resource(kek: &KeyEncryptionKey, version: i64) -> (Resource, String) {
        let mut resource = Resource::new("https://orders.example/api", 0);
        let secret = generate(kek, &resource.audience, version);
        resource.signing_alg = Some(Algorithm::HS256);
        resource.secret_version = version;
        resource.sealed_secret = Some(secret.sealed);
        (resource, secret.value)
    }

    #[test]
    fn kids_name_the_resource_and_version_only() {
        let kid = kid_for("https://orders.example/api?v=2", 7);
        assert_eq!(kid, "https://orders.example/api?v=2#hs256-7");
        assert_eq!(parse_kid(&kid), Some(("https://orders.example/api?v=2", 7)));
        for other in [
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
            "https://orders.example#hs256-0",
            "https://orders.example#hs256-01",
            "https://orders.example#hs256-+1",
            "https://orders.example#hs256-",
            "https://orders.example#hs256-x",
        ] {
            assert_eq!(parse_kid(other), None, "{other}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_resource_and_version() {
        let (kek, _) = KeyEncryptionKey::generate();
        let keys = SharedKeys::default();
        let (orders, value) = resource(&kek, 3);
        assert_eq!(value.len(), 43);
        assert!(
            !orders
                .sealed_secret
                .as_ref()
                .expect("sealed")
                .0
                .windows(43)
                .any(|w| w == value.as_bytes())
        );
        let key = keys.key(&orders, &kek).expect("opens").expect("a key");
        assert_eq!(key.kid(), "https://orders.example/api#hs256-3");
        assert_eq!(key.signing.alg(), Algorithm::HS256);
        // Signed with the printed value as the HMAC key.
        let by_value = SigningKey::hmac("x", value.as_bytes()).expect("hmac");
        assert_eq!(
            key.signing.sign(b"message").expect("sign"),
            by_value.sign(b"message").expect("sign")
        );

        // The same sealed value under another version or audience does not open.
        let mut moved = orders.clone();
        moved.secret_version = 4;
        assert!(matches!(
            keys.key(&moved, &kek),
            Err(KeyError::Unusable { .. })
        ));
        let mut elsewhere = orders.clone();
        elsewhere.audience = "https://billing.example".into();
        assert!(keys.key(&elsewhere, &kek).is_err());
        // Without HS256 there is no shared key, sealed value or not.
        let mut asymmetric = orders.clone();
        asymmetric.signing_alg = Some(Algorithm::RS256);
        assert!(keys.key(&asymmetric, &kek).expect("no error").is_none());
    }

    #[test]
    fn the_cache_follows_rotation() {
        let (kek, _) = KeyEncryptionKey::generate();
        let keys = SharedKeys::default();
        let (first, _) = resource(&kek, 1);
        let a = keys.key(&first, &kek).expect("opens").expect("key");
        let again = keys.key(&first, &kek).expect("opens").expect("key");
        assert!(Arc::ptr_eq(&a, &again), "opened once");
        let (second, value) = resource(&kek, 2);
        let b = keys.key(&second, &kek).expect("opens").expect("key");
        assert_eq!(b.kid(), "https://orders.example/api#hs256-2");
        let by_value = SigningKey::hmac("x", value.as_bytes()).expect("hmac");
        assert_eq!(
            b.signing.sign(b"m").expect("sign"),
            by_value.sign(b"m").expect("sign")
        );
        assert_ne!(
            a.signing.sign(b"m").expect("sign"),
            b.signing.sign(b"m").expect("sign")
        );
    }

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://id.example".into(),
            sub: "user-1".into(),
            aud: Audience::One("https://orders.example/api".into()),
            exp: 2_000,
            iat: 1_000,
            jti: crate::crypto::random_id(),
            client_id: "app".into(),
            scope: Some("openid orders.read".into()),
            auth_time: Some(900),
            acr: None,
            amr: Some(vec!["pwd".into()]),
            act: None,
            azp: None,
        }
    }

    #[test]
    fn sealed_jtis_tell_minted_claims_from_written_ones() {
        let (kek, _) = KeyEncryptionKey::generate();
        let mut minted = claims();
        seal_jti(&kek, &mut minted).expect("seal");
        assert!(jti_is_sealed(&kek, &minted));
        // Through JSON and back, as a verifier reads it.
        let read: AccessTokenClaims =
            serde_json::from_slice(&serde_json::to_vec(&minted).expect("json")).expect("parse");
        assert!(jti_is_sealed(&kek, &read));

        let mut other_user = minted.clone();
        other_user.sub = "user-2".into();
        assert!(!jti_is_sealed(&kek, &other_user));
        let mut wider = minted.clone();
        wider.scope = Some("openid email orders.read".into());
        assert!(!jti_is_sealed(&kek, &wider));
        let mut later = minted.clone();
        later.exp += 1;
        assert!(!jti_is_sealed(&kek, &later));
        assert!(!jti_is_sealed(&kek, &claims()), "no seal at all");
        let (other_kek, _) = KeyEncryptionKey::generate();
        assert!(!jti_is_sealed(&other_kek, &minted));
        let mut cut = minted.clone();
        cut.jti.truncate(cut.jti.len() - 2);
        assert!(!jti_is_sealed(&kek, &cut));
    }
}

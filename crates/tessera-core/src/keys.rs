//! Signing keys: the in-memory key ring and its life cycle.
//!
//! A key is published from the moment it is created, starts signing at
//! `activates_at` (by default a day later, so every verifier's JWKS cache has it
//! before the first token it signs arrives), stops signing when a newer key of the
//! same algorithm activates, and stays published until every token it could have
//! signed has expired.

use std::sync::{Arc, RwLock};

use tessera_jose::{Algorithm, Jwk, JwkSet, SigningKey, VerifyingKey};

use crate::clock::{Clock, UnixTime};
use crate::crypto::KeyEncryptionKey;
use crate::settings::Settings;
use crate::store::{KeyStore, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid}: {reason}")]
    Unusable { kid: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key generation failed: {0}")]
    Generate(tessera_jose::Error),
}

/// Where a key is in its life cycle at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not yet signing.
    Next,
    /// Signing new tokens.
    Active,
    /// Published so tokens it signed still verify, no longer signing.
    Retired,
    /// No longer published: every token it signed has expired.
    Expired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
            KeyStatus::Expired => "expired",
        }
    }

    pub fn is_published(self) -> bool {
        self != KeyStatus::Expired
    }
}

/// A loaded key: parsed once, used for every token.
#[derive(Debug)]
pub struct RingKey {
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
    pub jwk: Jwk,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
    /// When a newer key of the same algorithm takes over, if one exists.
    pub superseded_at: Option<UnixTime>,
}

impl RingKey {
    pub fn kid(&self) -> &str {
        self.signing.kid()
    }

    pub fn alg(&self) -> Algorithm {
        self.signing.alg()
    }

    pub fn status(&self, now: UnixTime, max_token_ttl: i64) -> KeyStatus {
        match self.superseded_at {
            _ if now < self.activates_at => KeyStatus::Next,
            Some(t) if now >= t + max_token_ttl => KeyStatus::Expired,
            Some(t) if now >= t => KeyStatus::Retired,
            _ => KeyStatus::Active,
        }
    }
}

/// Every stored key, decrypted and parsed.
#[derive(Debug, Default)]
pub struct KeyRing {
    /// Sorted by activation time.
    keys: Vec<RingKey>,
}

impl KeyRing {
    pub fn load(stored: &[StoredKey], kek: &KeyEncryptionKey) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(stored.len());
        for row in stored {
            let unusable = |reason: String| KeyError::Unusable {
                kid: row.kid.clone(),
                reason,
            };
            let alg: Algorithm = row.alg.parse().map_err(|e| unusable(format!("{e}")))?;
            let der = kek
                .open(&row.kid, &row.sealed_private_key)
                .map_err(|e| unusable(e.to_string()))?;
            let signing = SigningKey::from_pkcs8(alg, row.kid.clone(), &der)
                .map_err(|e| unusable(e.to_string()))?;
            let jwk = signing
                .public_jwk()
                .ok_or_else(|| unusable("not an asymmetric key".into()))?;
            let verifying = signing
                .verifying_key()
                .map_err(|e| unusable(e.to_string()))?;
            keys.push(RingKey {
                signing,
                verifying,
                jwk,
                created_at: row.created_at,
                activates_at: row.activates_at,
                superseded_at: None,
            });
        }
        keys.sort_by_key(|k| (k.activates_at, k.created_at));
        for i in 0..keys.len() {
            keys[i].superseded_at = keys[i + 1..]
                .iter()
                .find(|later| later.alg() == keys[i].alg())
                .map(|later| later.activates_at);
        }
        Ok(KeyRing { keys })
    }

    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    /// The key that signs tokens of `alg` now: the newest one already active.
    pub fn signing_key(&self, alg: Algorithm, now: UnixTime) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg() == alg && k.activates_at <= now)
            .map(|k| &k.signing)
    }

    /// The published key with this `kid`.
    pub fn verifying_key(
        &self,
        kid: &str,
        now: UnixTime,
        max_token_ttl: i64,
    ) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid() == kid && k.status(now, max_token_ttl).is_published())
            .map(|k| &k.verifying)
    }

    /// The JWKS: next, active and retired keys, public parts only.
    pub fn jwks(&self, now: UnixTime, max_token_ttl: i64) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .rev()
                .filter(|k| k.status(now, max_token_ttl).is_published())
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    fn fingerprint(&self) -> Vec<(&str, UnixTime)> {
        self.keys
            .iter()
            .map(|k| (k.kid(), k.activates_at))
            .collect()
    }
}

/// Owns the current key ring and keeps it in step with the store.
#[derive(Debug)]
pub struct KeyManager {
    ring: RwLock<Arc<KeyRing>>,
    kek: KeyEncryptionKey,
}

/// What a rotation created, for the CLI.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub kid: String,
    pub alg: Algorithm,
    pub activates_at: UnixTime,
}

impl KeyManager {
    pub fn new(kek: KeyEncryptionKey) -> Self {
        KeyManager {
            ring: RwLock::new(Arc::new(KeyRing::default())),
            kek,
        }
    }

    /// The ring as of the last refresh; cheap (one reference-count increment).
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reloads the ring if the stored keys changed (a rotation from the CLI or
    /// another instance). Parsing keys is costly for RSA, so unchanged rings are kept.
    pub async fn refresh(&self, store: &dyn KeyStore) -> Result<(), KeyError> {
        let stored = store.signing_keys().await?;
        let current = self.ring();
        let mut wanted: Vec<(&str, UnixTime)> = stored
            .iter()
            .map(|k| (k.kid.as_str(), k.activates_at))
            .collect();
        wanted.sort_by_key(|(_, t)| *t);
        let mut have = current.fingerprint();
        have.sort_by_key(|(_, t)| *t);
        if wanted == have {
            return Ok(());
        }
        let ring = Arc::new(KeyRing::load(&stored, &self.kek)?);
        match self.ring.write() {
            Ok(mut slot) => *slot = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    /// Makes sure a key for `alg` exists, creating one that signs at once if not
    /// (first start). Returns the new key if one was made.
    pub async fn ensure_key(
        &self,
        store: &dyn KeyStore,
        alg: Algorithm,
        clock: &dyn Clock,
    ) -> Result<Option<NewKey>, KeyError> {
        let now = clock.now();
        let stored = store.signing_keys().await?;
        let made = if stored.iter().any(|k| k.alg == alg.as_str()) {
            None
        } else {
            let key = self.new_key(alg, now, now)?;
            // i64::MIN: insert only if no key of this algorithm exists at all, so
            // two instances starting together on one database make one key.
            store
                .insert_signing_key_unless_newer(&key, i64::MIN)
                .await?
                .then_some(NewKey {
                    kid: key.kid,
                    alg,
                    activates_at: now,
                })
        };
        self.refresh(store).await?;
        Ok(made)
    }

    /// Adds a key for `alg`. It is published at once and signs after the
    /// pre-publication delay, or at once with `immediately` (an emergency
    /// rotation after a compromise).
    pub async fn rotate(
        &self,
        store: &dyn KeyStore,
        alg: Algorithm,
        immediately: bool,
        settings: &Settings,
        clock: &dyn Clock,
    ) -> Result<NewKey, KeyError> {
        let now = clock.now();
        let activates_at = if immediately {
            now
        } else {
            now + settings.key_prepublish
        };
        let key = self.new_key(alg, now, activates_at)?;
        store.insert_signing_key(&key).await?;
        self.refresh(store).await?;
        Ok(NewKey {
            kid: key.kid,
            alg,
            activates_at,
        })
    }

    /// The scheduled rotation: when the newest key of `alg` has been signing for
    /// the rotation interval minus the pre-publication delay, publish its successor.
    pub async fn rotate_if_due(
        &self,
        store: &dyn KeyStore,
        alg: Algorithm,
        settings: &Settings,
        clock: &dyn Clock,
    ) -> Result<Option<NewKey>, KeyError> {
        if settings.key_rotation_interval <= 0 {
            return Ok(None);
        }
        let now = clock.now();
        let due_after = now - settings.key_rotation_interval + settings.key_prepublish;
        // Check before generating: an RSA key costs a noticeable moment to make.
        let newest = self
            .ring()
            .keys()
            .iter()
            .filter(|k| k.alg() == alg)
            .map(|k| k.activates_at)
            .max();
        if newest.is_some_and(|t| t > due_after) {
            return Ok(None);
        }
        let key = self.new_key(alg, now, now + settings.key_prepublish)?;
        let inserted = store
            .insert_signing_key_unless_newer(&key, due_after)
            .await?;
        self.refresh(store).await?;
        Ok(inserted.then_some(NewKey {
            kid: key.kid,
            alg,
            activates_at: key.activates_at,
        }))
    }

    fn new_key(
        &self,
        alg: Algorithm,
        now: UnixTime,
        activates_at: UnixTime,
    ) -> Result<StoredKey, KeyError> {
        let (signing, pkcs8) =
            SigningKey::generate_with_thumbprint_kid(alg).map_err(KeyError::Generate)?;
        let kid = signing.kid().to_owned();
        Ok(StoredKey {
            sealed_private_key: self.kek.seal(&kid, &pkcs8),
            kid,
            alg: alg.as_str().to_owned(),
            created_at: now,
            activates_at,
        })
    }
}

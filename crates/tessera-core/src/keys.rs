//! Signing keys: the in-memory key ring and its life cycle.
//!
//! A key is published from the moment it is created, starts signing at
//! `activates_at` (by default a day later, so every verifier's JWKS cache has it
//! before the first token it signs arrives), stops signing when a newer key of the
//! same algorithm activates, and stays published until every token it could have
//! signed has expired.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tessera_jose::{Algorithm, Jwk, JwkSet, SigningKey, VerifyingKey};

use crate::clock::{Clock, UnixTime};
use crate::crypto::KeyEncryptionKey;
use crate::model::Resource;
use crate::settings::Settings;
use crate::shared_secret::{SharedKey, SharedKeys};
use crate::store::{KeyStore, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid}: {reason}")]
    Unusable { kid: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key generation failed: {0}")]
    Generate(tessera_jose::Error),
    #[error("no signing key has the kid {0:?}")]
    NotFound(String),
    #[error("the key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error(
        "{kid} is the only key that signs {alg}: without it no {alg} token can be issued until the next rotation. \
         Rotate first (`tessera keys rotate --alg {alg} --now`, then revoke), or revoke anyway with --force"
    )]
    OnlySigningKey { kid: String, alg: Algorithm },
    #[error(
        "{kid} still signs: {successor} takes over in {seconds} s. Revoke it then, or now with --force"
    )]
    SuccessorPending {
        kid: String,
        successor: String,
        seconds: i64,
    },
}

/// How soon a successor must sign for `revoke` to say "wait" rather than
/// "rotate first".
const SUCCESSOR_GRACE: i64 = 5;

/// Seconds between an emergency rotation (`keys rotate --now`) and the new
/// key's first signature. Every server reloads its keys from the store at
/// least once a second, so in this time each instance sharing the store
/// publishes the key before any token names it: a verifier that fetches the
/// JWKS from any of them on seeing the new `kid` finds it. (Each serves the
/// JWKS from the store afresh, and checks a token naming a key it has not
/// loaded yet after reloading, so an instance whose clock runs ahead and
/// signs early does not break that either.)
pub const KEY_PROPAGATION: i64 = 2;

/// The least time between two reloads of the ring caused by tokens naming a
/// key this instance does not hold (see [`KeyManager::refresh_for_unknown_kid`]):
/// made-up `kid`s cost at most one store read each such interval.
pub const UNKNOWN_KID_RELOAD: Duration = Duration::from_millis(100);

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
    /// Withdrawn at once (`tessera keys revoke`): never signs, is not published,
    /// and nothing it signed verifies any more.
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }

    pub fn is_published(self) -> bool {
        !matches!(self, KeyStatus::Expired | KeyStatus::Revoked)
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
    /// When the key was withdrawn, if it was.
    pub revoked_at: Option<UnixTime>,
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
            _ if self.revoked_at.is_some() => KeyStatus::Revoked,
            _ if now < self.activates_at => KeyStatus::Next,
            Some(t) if now >= t + max_token_ttl => KeyStatus::Expired,
            Some(t) if now >= t => KeyStatus::Retired,
            _ => KeyStatus::Active,
        }
    }
}

/// When the key that signs an algorithm began, and when the next one starts,
/// in seconds from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningSchedule {
    pub age: i64,
    pub next_key_in: Option<i64>,
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
                revoked_at: row.revoked_at,
            });
        }
        // The kid breaks ties so that every instance picks the same signing key.
        keys.sort_by(|a, b| {
            (a.activates_at, a.created_at, a.kid()).cmp(&(b.activates_at, b.created_at, b.kid()))
        });
        // A key revoked before it activated never took over; one revoked after
        // did, so the key it replaced does not come back to sign. (A key made
        // in the same second as a revoked one, to replace it, is not replaced
        // by it.)
        for i in 0..keys.len() {
            let (alg, activates_at) = (keys[i].alg(), keys[i].activates_at);
            keys[i].superseded_at = keys[i + 1..]
                .iter()
                .find(|later| {
                    later.alg() == alg
                        && later.revoked_at.is_none_or(|t| {
                            t >= later.activates_at && later.activates_at > activates_at
                        })
                })
                .map(|later| later.activates_at);
        }
        Ok(KeyRing { keys })
    }

    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    /// The key that signs tokens of `alg` now: the newest one already active,
    /// unless it was revoked (then none does until the next rotation: a
    /// retired key never comes back).
    pub fn signing_key(&self, alg: Algorithm, now: UnixTime) -> Option<&SigningKey> {
        self.signing_ring_key(alg, now).map(|k| &k.signing)
    }

    fn signing_ring_key(&self, alg: Algorithm, now: UnixTime) -> Option<&RingKey> {
        self.keys.iter().rev().find(|k| {
            k.alg() == alg
                && k.activates_at <= now
                && k.revoked_at.is_none()
                && k.superseded_at.is_none_or(|t| t > now)
        })
    }

    /// For each algorithm a key signs now: how long that key has signed, and
    /// in how long the next key takes over (a key already published to do
    /// so, or the scheduled rotation; `None` with rotation off). For metrics.
    pub fn signing_schedule(
        &self,
        now: UnixTime,
        rotation_interval: i64,
    ) -> Vec<(Algorithm, SigningSchedule)> {
        let mut algs: Vec<Algorithm> = self.keys.iter().map(RingKey::alg).collect();
        algs.sort_by_key(|alg| alg.as_str());
        algs.dedup();
        algs.into_iter()
            .filter_map(|alg| {
                let current = self.signing_ring_key(alg, now)?;
                let next = self
                    .keys
                    .iter()
                    .filter(|k| k.alg() == alg && k.revoked_at.is_none() && k.activates_at > now)
                    .map(|k| k.activates_at)
                    .min()
                    .or_else(|| {
                        (rotation_interval > 0)
                            .then(|| current.activates_at.saturating_add(rotation_interval))
                    });
                Some((
                    alg,
                    SigningSchedule {
                        age: now - current.activates_at,
                        next_key_in: next.map(|at| (at - now).max(0)),
                    },
                ))
            })
            .collect()
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

    fn fingerprint(&self) -> Vec<(&str, UnixTime, Option<UnixTime>)> {
        self.keys
            .iter()
            .map(|k| (k.kid(), k.activates_at, k.revoked_at))
            .collect()
    }
}

/// Owns the current key ring and keeps it in step with the store, and the
/// opened shared secrets of HS256 resources.
#[derive(Debug)]
pub struct KeyManager {
    ring: RwLock<Arc<KeyRing>>,
    /// When a token naming an unknown key last made the ring reload.
    unknown_kid_reload: Mutex<Option<Instant>>,
    shared: SharedKeys,
    kek: KeyEncryptionKey,
}

/// What a revocation did, for the CLI.
#[derive(Debug, Clone)]
pub struct RevokedKey {
    pub kid: String,
    pub alg: Algorithm,
    /// Whether the key was signing new tokens of its algorithm.
    pub was_signing: bool,
    /// The key that signs its algorithm now, if any.
    pub signing_now: Option<String>,
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
            unknown_kid_reload: Mutex::new(None),
            shared: SharedKeys::default(),
            kek,
        }
    }

    /// The key of `resource`'s current shared secret (HS256 resources only),
    /// opened once and kept until the secret changes.
    pub fn shared_key(&self, resource: &Resource) -> Result<Option<Arc<SharedKey>>, KeyError> {
        self.shared.key(resource, &self.kek)
    }

    /// The key-encryption key, for other values sealed at rest or in transit.
    pub fn kek(&self) -> &KeyEncryptionKey {
        &self.kek
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
        let mut wanted: Vec<(&str, UnixTime, Option<UnixTime>)> = stored
            .iter()
            .map(|k| (k.kid.as_str(), k.activates_at, k.revoked_at))
            .collect();
        wanted.sort();
        let mut have = current.fingerprint();
        have.sort();
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

    /// Reloads the ring for a token naming a key it does not hold, unless such
    /// a reload happened less than [`UNKNOWN_KID_RELOAD`] ago; says whether it
    /// reloaded. Rings reload once a second, but another instance may sign
    /// with a new key before this one's next reload: after an emergency
    /// rotation (`keys rotate --now`) if its clock runs ahead, since each
    /// instance starts the key by its own clock. Its tokens must verify here
    /// at once all the same.
    pub async fn refresh_for_unknown_kid(&self, store: &dyn KeyStore) -> Result<bool, KeyError> {
        {
            let mut last = match self.unknown_kid_reload.lock() {
                Ok(last) => last,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.refresh(store).await?;
        Ok(true)
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
        // Open every stored key first: with the wrong key-encryption key this fails
        // here, before anything sealed with that wrong key reaches a shared store.
        self.refresh(store).await?;
        // A ring whose keys of `alg` were all revoked gets a new one too.
        let made = if self
            .ring()
            .keys()
            .iter()
            .any(|k| k.alg() == alg && k.revoked_at.is_none())
        {
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
    /// pre-publication delay, or with `immediately` (an emergency rotation
    /// after a compromise) as soon as every instance publishes it
    /// ([`KEY_PROPAGATION`]).
    pub async fn rotate(
        &self,
        store: &dyn KeyStore,
        alg: Algorithm,
        immediately: bool,
        settings: &Settings,
        clock: &dyn Clock,
    ) -> Result<NewKey, KeyError> {
        let now = clock.now();
        self.refresh(store).await?;
        let earliest = if immediately {
            now + KEY_PROPAGATION
        } else {
            now + settings.key_prepublish
        };
        // Times are whole seconds and the newest activation signs: a key that would
        // activate in the same second as another key of its algorithm starts a
        // second later, so that which of the two signs is unambiguous.
        let ring = self.ring();
        let mut activates_at = earliest;
        while ring
            .keys()
            .iter()
            .any(|k| k.alg() == alg && k.activates_at == activates_at)
        {
            activates_at += 1;
        }
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
            .filter(|k| k.alg() == alg && k.revoked_at.is_none())
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

    /// Withdraws a key at once: it leaves the JWKS and nothing it signed
    /// verifies, here and, within a second, on every instance sharing the
    /// store. Withdrawing the key that signs its algorithm now needs `force`:
    /// tokens of that algorithm cannot be issued until the next rotation (the
    /// usual order is `rotate --now`, then revoke the retired key).
    pub async fn revoke(
        &self,
        store: &dyn KeyStore,
        kid: &str,
        force: bool,
        clock: &dyn Clock,
    ) -> Result<RevokedKey, KeyError> {
        let now = clock.now();
        self.refresh(store).await?;
        let ring = self.ring();
        let key = ring
            .keys()
            .iter()
            .find(|k| k.kid() == kid)
            .ok_or_else(|| KeyError::NotFound(kid.to_owned()))?;
        if key.revoked_at.is_some() {
            return Err(KeyError::AlreadyRevoked(kid.to_owned()));
        }
        let alg = key.alg();
        let was_signing = ring
            .signing_ring_key(alg, now)
            .is_some_and(|k| k.kid() == kid);
        // The signing key is the newest active one: withdrawing it leaves
        // nothing to sign until a successor activates.
        if was_signing && !force {
            // A successor published by `rotate --now` may start in the next
            // second (activations are whole seconds and never tie).
            let successor = ring.keys().iter().find(|k| {
                k.alg() == alg
                    && k.revoked_at.is_none()
                    && k.activates_at > now
                    && k.activates_at <= now + SUCCESSOR_GRACE
            });
            return Err(match successor {
                Some(next) => KeyError::SuccessorPending {
                    kid: kid.to_owned(),
                    successor: next.kid().to_owned(),
                    seconds: next.activates_at - now,
                },
                None => KeyError::OnlySigningKey {
                    kid: kid.to_owned(),
                    alg,
                },
            });
        }
        if !store.revoke_signing_key(kid, now).await? {
            return Err(KeyError::AlreadyRevoked(kid.to_owned()));
        }
        self.refresh(store).await?;
        let signing_now = self
            .ring()
            .signing_ring_key(alg, now)
            .map(|k| k.kid().to_owned());
        Ok(RevokedKey {
            kid: kid.to_owned(),
            alg,
            was_signing,
            signing_now,
        })
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
            revoked_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::testing::MemoryStore;

    const T0: UnixTime = 1_700_000_000;
    const HOUR: i64 = 3600;

    /// How many keys the store holds, revoked and expired ones included.
    async fn key_count(store: &MemoryStore) -> usize {
        store.signing_keys().await.expect("signing_keys").len()
    }

    /// A KEK and a second handle on the same key, for sealing keys by hand.
    fn kek_pair() -> (KeyEncryptionKey, KeyEncryptionKey) {
        let (kek, text) = KeyEncryptionKey::generate();
        let twin = KeyEncryptionKey::parse(&text).expect("parse generated KEK");
        (kek, twin)
    }

    fn settings() -> Settings {
        let mut settings = Settings::new("https://issuer.example");
        settings.key_prepublish = HOUR;
        settings.max_token_ttl = 2 * HOUR;
        settings.key_rotation_interval = 10 * HOUR;
        settings
    }

    fn signing_kid(manager: &KeyManager, alg: Algorithm, now: UnixTime) -> Option<String> {
        manager
            .ring()
            .signing_key(alg, now)
            .map(|k| k.kid().to_owned())
    }

    fn status(manager: &KeyManager, kid: &str, now: UnixTime, settings: &Settings) -> KeyStatus {
        manager
            .ring()
            .keys()
            .iter()
            .find(|k| k.kid() == kid)
            .map(|k| k.status(now, settings.max_token_ttl))
            .unwrap_or_else(|| panic!("key {kid} is not in the ring"))
    }

    fn published(manager: &KeyManager, now: UnixTime, settings: &Settings) -> Vec<String> {
        manager
            .ring()
            .jwks(now, settings.max_token_ttl)
            .keys
            .into_iter()
            .map(|jwk| jwk.kid.expect("published keys have a kid"))
            .collect()
    }

    fn verifies(manager: &KeyManager, kid: &str, now: UnixTime, settings: &Settings) -> bool {
        manager
            .ring()
            .verifying_key(kid, now, settings.max_token_ttl)
            .is_some_and(|k| k.kid() == Some(kid))
    }

    #[tokio::test]
    async fn ensure_key_creates_one_key_on_first_start_only() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let (kek, twin) = kek_pair();
        let manager = KeyManager::new(kek);

        let made = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("a key is made on first start");
        assert_eq!(made.alg, Algorithm::ES256);
        assert_eq!(made.activates_at, T0, "the first key signs at once");
        assert_eq!(key_count(&store).await, 1);
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, T0),
            Some(made.kid.clone())
        );

        clock.advance(60);
        let again = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key");
        assert!(again.is_none(), "second start made a key: {again:?}");
        assert_eq!(key_count(&store).await, 1);

        // Another instance on the same database adopts the key.
        let other = KeyManager::new(twin);
        assert!(
            other
                .ensure_key(&store, Algorithm::ES256, &clock)
                .await
                .expect("ensure_key")
                .is_none()
        );
        assert_eq!(key_count(&store).await, 1);
        assert_eq!(
            signing_kid(&other, Algorithm::ES256, clock.now()),
            Some(made.kid)
        );

        // Each algorithm has its own key.
        let eddsa = manager
            .ensure_key(&store, Algorithm::EdDSA, &clock)
            .await
            .expect("ensure_key")
            .expect("a key for another algorithm");
        assert_eq!(key_count(&store).await, 2);
        assert_eq!(
            signing_kid(&manager, Algorithm::EdDSA, clock.now()),
            Some(eddsa.kid)
        );
    }

    #[tokio::test]
    async fn rotated_key_is_published_first_and_old_key_expires_after_max_ttl() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        let old = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key")
            .kid;

        clock.advance(100);
        let next = manager
            .rotate(&store, Algorithm::ES256, false, &settings, &clock)
            .await
            .expect("rotate");
        let rotated_at = T0 + 100;
        assert_eq!(next.activates_at, rotated_at + settings.key_prepublish);
        assert_eq!(key_count(&store).await, 2);

        // Pre-publication: in the JWKS and verifiable, but the old key signs.
        for now in [rotated_at, next.activates_at - 1] {
            assert_eq!(status(&manager, &next.kid, now, &settings), KeyStatus::Next);
            assert_eq!(status(&manager, &old, now, &settings), KeyStatus::Active);
            assert_eq!(
                published(&manager, now, &settings),
                [next.kid.as_str(), old.as_str()]
            );
            assert!(verifies(&manager, &next.kid, now, &settings));
            assert_eq!(
                signing_kid(&manager, Algorithm::ES256, now).as_ref(),
                Some(&old)
            );
        }

        // Activation: the new key signs, the old one is retired but published.
        let superseded_at = next.activates_at;
        clock.set(superseded_at);
        let now = clock.now();
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, now),
            Some(next.kid.clone())
        );
        assert_eq!(
            status(&manager, &next.kid, now, &settings),
            KeyStatus::Active
        );
        assert_eq!(status(&manager, &old, now, &settings), KeyStatus::Retired);

        // Retired until every token the old key signed has expired.
        for now in [superseded_at, superseded_at + settings.max_token_ttl - 1] {
            assert_eq!(status(&manager, &old, now, &settings), KeyStatus::Retired);
            assert_eq!(
                published(&manager, now, &settings),
                [next.kid.as_str(), old.as_str()]
            );
            assert!(verifies(&manager, &old, now, &settings));
        }

        let now = superseded_at + settings.max_token_ttl;
        clock.set(now);
        assert_eq!(status(&manager, &old, now, &settings), KeyStatus::Expired);
        assert_eq!(published(&manager, now, &settings), [next.kid.as_str()]);
        assert!(!verifies(&manager, &old, now, &settings));
        assert!(verifies(&manager, &next.kid, now, &settings));
        assert_eq!(signing_kid(&manager, Algorithm::ES256, now), Some(next.kid));
        // Expired keys are unpublished, not deleted.
        assert_eq!(key_count(&store).await, 2);
    }

    #[tokio::test]
    async fn an_emergency_key_is_published_at_once_and_signs_once_everywhere_has_it() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        let old = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key")
            .kid;

        clock.advance(10);
        let now = clock.now();
        let new = manager
            .rotate(&store, Algorithm::ES256, true, &settings, &clock)
            .await
            .expect("rotate");
        assert_eq!(new.activates_at, now + KEY_PROPAGATION);
        // Published, and the old key signs until every instance has reloaded.
        assert_eq!(status(&manager, &new.kid, now, &settings), KeyStatus::Next);
        assert!(published(&manager, now, &settings).contains(&new.kid));
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, now + KEY_PROPAGATION - 1),
            Some(old.clone())
        );
        let now = now + KEY_PROPAGATION;
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, now),
            Some(new.kid.clone())
        );
        assert_eq!(
            status(&manager, &new.kid, now, &settings),
            KeyStatus::Active
        );
        // Tokens the old key signed still verify until they expire.
        assert_eq!(status(&manager, &old, now, &settings), KeyStatus::Retired);
        assert_eq!(
            published(&manager, now, &settings),
            [new.kid.as_str(), old.as_str()]
        );
        let later = now + settings.max_token_ttl;
        assert_eq!(published(&manager, later, &settings), [new.kid.as_str()]);
    }

    #[tokio::test]
    async fn a_revoked_key_neither_signs_nor_verifies_nor_comes_back() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        let first = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key")
            .kid;
        // The signing key goes only with force.
        assert!(matches!(
            manager.revoke(&store, &first, false, &clock).await,
            Err(KeyError::OnlySigningKey { .. })
        ));
        clock.advance(10);
        let second = manager
            .rotate(&store, Algorithm::ES256, true, &settings, &clock)
            .await
            .expect("rotate")
            .kid;
        clock.advance(KEY_PROPAGATION);
        // A scheduled successor that never activated, revoked: it superseded
        // nothing, so `second` keeps signing after its activation time.
        let pending = manager
            .rotate(&store, Algorithm::ES256, false, &settings, &clock)
            .await
            .expect("rotate");
        let revoked = manager
            .revoke(&store, &pending.kid, false, &clock)
            .await
            .expect("revoke the pending key");
        assert!(!revoked.was_signing);
        let after = pending.activates_at + 1;
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, after),
            Some(second.clone())
        );

        // The retired first key, revoked: gone at once, and `second` signs.
        let now = clock.now();
        let revoked = manager
            .revoke(&store, &first, false, &clock)
            .await
            .expect("revoke the retired key");
        assert_eq!(revoked.signing_now, Some(second.clone()));
        assert_eq!(status(&manager, &first, now, &settings), KeyStatus::Revoked);
        assert!(
            manager
                .ring()
                .verifying_key(&first, now, settings.max_token_ttl)
                .is_none()
        );
        assert_eq!(published(&manager, now, &settings), [second.as_str()]);
        assert!(matches!(
            manager.revoke(&store, &first, true, &clock).await,
            Err(KeyError::AlreadyRevoked(_))
        ));

        // Forced out, the signing key leaves nothing to sign, and the key it
        // replaced does not come back.
        let forced = manager
            .revoke(&store, &second, true, &clock)
            .await
            .expect("forced");
        assert!(forced.was_signing);
        assert_eq!(forced.signing_now, None);
        assert_eq!(signing_kid(&manager, Algorithm::ES256, now), None);
        // A start makes a new key for an algorithm with only revoked keys.
        let made = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("a new key");
        assert_eq!(signing_kid(&manager, Algorithm::ES256, now), Some(made.kid));
        assert!(matches!(
            manager.revoke(&store, "nope", true, &clock).await,
            Err(KeyError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn emergency_rotations_in_one_second_take_over_in_order() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key");
        // A pending scheduled key does not delay an emergency key.
        let pending = manager
            .rotate(&store, Algorithm::ES256, false, &settings, &clock)
            .await
            .expect("rotate");
        let urgent = manager
            .rotate(&store, Algorithm::ES256, true, &settings, &clock)
            .await
            .expect("rotate now");
        assert_eq!(urgent.activates_at, T0 + KEY_PROPAGATION);
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, T0 + KEY_PROPAGATION),
            Some(urgent.kid.clone())
        );
        let again = manager
            .rotate(&store, Algorithm::ES256, true, &settings, &clock)
            .await
            .expect("rotate now again");
        assert_eq!(
            again.activates_at,
            T0 + KEY_PROPAGATION + 1,
            "never the same second: the newest rotation wins"
        );
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, T0 + KEY_PROPAGATION + 1),
            Some(again.kid.clone())
        );
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, pending.activates_at),
            Some(pending.kid)
        );
    }

    #[tokio::test]
    async fn the_signing_schedule_counts_to_the_next_key() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key");
        let interval = settings.key_rotation_interval;
        let schedule = |now| manager.ring().signing_schedule(now, interval);
        let at = |age, next| {
            vec![(
                Algorithm::ES256,
                SigningSchedule {
                    age,
                    next_key_in: next,
                },
            )]
        };
        assert_eq!(schedule(T0 + 10), at(10, Some(interval - 10)));
        // Overdue (the rotation task not run yet): due now, never negative.
        assert_eq!(schedule(T0 + interval + 5), at(interval + 5, Some(0)));
        assert_eq!(
            manager.ring().signing_schedule(T0 + 10, 0),
            at(10, None),
            "rotation off"
        );
        // A published successor: its activation is the next change.
        let due = T0 + interval - settings.key_prepublish;
        clock.set(due);
        manager
            .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
            .await
            .expect("rotate_if_due")
            .expect("due");
        assert_eq!(schedule(due), at(due - T0, Some(settings.key_prepublish)));
        assert_eq!(schedule(T0 + interval + 1), at(1, Some(interval - 1)));
    }

    #[tokio::test]
    async fn scheduled_rotation_inserts_only_when_due() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let manager = KeyManager::new(kek_pair().0);
        manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key");
        let interval = settings.key_rotation_interval;
        let due = T0 + interval - settings.key_prepublish;

        for now in [T0, due - 1] {
            clock.set(now);
            let rotated = manager
                .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
                .await
                .expect("rotate_if_due");
            assert!(rotated.is_none(), "rotated at {now}, due at {due}");
            assert_eq!(key_count(&store).await, 1);
        }

        clock.set(due);
        let successor = manager
            .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
            .await
            .expect("rotate_if_due")
            .expect("rotation is due");
        // Signs exactly one interval after its predecessor started.
        assert_eq!(successor.activates_at, T0 + interval);
        assert_eq!(key_count(&store).await, 2);
        assert!(published(&manager, due, &settings).contains(&successor.kid));

        // The pending successor counts as the newest key, and so does the
        // successor once active, until its own rotation falls due.
        for now in [due, due + 1, successor.activates_at, due + interval - 1] {
            clock.set(now);
            let rotated = manager
                .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
                .await
                .expect("rotate_if_due");
            assert!(rotated.is_none(), "rotated again at {now}");
        }
        assert_eq!(key_count(&store).await, 2);

        clock.set(due + interval);
        let third = manager
            .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
            .await
            .expect("rotate_if_due")
            .expect("second rotation is due");
        assert_eq!(third.activates_at, successor.activates_at + interval);
        assert_eq!(key_count(&store).await, 3);

        // An interval of 0 disables scheduled rotation, however overdue.
        let disabled = Settings {
            key_rotation_interval: 0,
            ..settings
        };
        clock.set(T0 + 100 * interval);
        assert!(
            manager
                .rotate_if_due(&store, Algorithm::ES256, &disabled, &clock)
                .await
                .expect("rotate_if_due")
                .is_none()
        );
        assert_eq!(key_count(&store).await, 3);
    }

    #[tokio::test]
    async fn a_token_naming_an_unknown_key_reloads_the_ring_at_most_so_often() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let (kek, twin) = kek_pair();
        let first = KeyManager::new(kek);
        let second = KeyManager::new(twin);
        first
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key");
        second.refresh(&store).await.expect("refresh");
        // Another instance rotates; this one has not reloaded yet.
        let new = first
            .rotate(&store, Algorithm::ES256, true, &settings(), &clock)
            .await
            .expect("rotate");
        let holds = |manager: &KeyManager| manager.ring().keys().iter().any(|k| k.kid() == new.kid);
        assert!(!holds(&second));
        assert!(
            second
                .refresh_for_unknown_kid(&store)
                .await
                .expect("reload")
        );
        assert!(holds(&second));
        // Straight after, another unknown kid does not reach the store.
        assert!(
            !second
                .refresh_for_unknown_kid(&store)
                .await
                .expect("no reload")
        );
    }

    #[tokio::test]
    async fn instances_rotating_together_add_one_key() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let (kek, twin) = kek_pair();
        let first = KeyManager::new(kek);
        let second = KeyManager::new(twin);
        first
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key");
        second.refresh(&store).await.expect("refresh");

        clock.set(T0 + settings.key_rotation_interval - settings.key_prepublish);
        let rotated = first
            .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
            .await
            .expect("rotate_if_due")
            .expect("rotation is due");
        // The second instance's ring predates the rotation, so only the store's
        // guard stops it from adding another key.
        assert_eq!(second.ring().keys().len(), 1);
        let again = second
            .rotate_if_due(&store, Algorithm::ES256, &settings, &clock)
            .await
            .expect("rotate_if_due");
        assert!(again.is_none(), "second instance rotated too: {again:?}");
        assert_eq!(key_count(&store).await, 2);
        // Refused, it still reloads and publishes the winner's key.
        assert!(published(&second, clock.now(), &settings).contains(&rotated.kid));
    }

    #[tokio::test]
    async fn refresh_picks_up_keys_added_elsewhere() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let settings = settings();
        let (kek, twin) = kek_pair();
        let manager = KeyManager::new(kek);
        let first = manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key")
            .kid;

        // Unchanged keys keep the parsed ring.
        let before = manager.ring();
        manager.refresh(&store).await.expect("refresh");
        assert!(Arc::ptr_eq(&before, &manager.ring()));

        // Another instance (or the CLI) adds a key straight to the store.
        let (signing, pkcs8) =
            SigningKey::generate_with_thumbprint_kid(Algorithm::ES256).expect("generate key");
        let kid = signing.kid().to_owned();
        let activates_at = T0 + settings.key_prepublish;
        store
            .insert_signing_key(&StoredKey {
                sealed_private_key: twin.seal(&kid, &pkcs8),
                kid: kid.clone(),
                alg: Algorithm::ES256.as_str().to_owned(),
                created_at: T0,
                activates_at,
                revoked_at: None,
            })
            .await
            .expect("insert_signing_key");
        assert!(!published(&manager, T0, &settings).contains(&kid));

        manager.refresh(&store).await.expect("refresh");
        assert!(!Arc::ptr_eq(&before, &manager.ring()));
        assert_eq!(
            published(&manager, T0, &settings),
            [kid.as_str(), first.as_str()]
        );
        assert_eq!(status(&manager, &kid, T0, &settings), KeyStatus::Next);
        assert_eq!(signing_kid(&manager, Algorithm::ES256, T0), Some(first));
        assert_eq!(
            signing_kid(&manager, Algorithm::ES256, activates_at),
            Some(kid)
        );
    }

    #[tokio::test]
    async fn refresh_keeps_the_ring_when_a_key_does_not_open() {
        let store = MemoryStore::new();
        let clock = FixedClock::new(T0);
        let manager = KeyManager::new(kek_pair().0);
        manager
            .ensure_key(&store, Algorithm::ES256, &clock)
            .await
            .expect("ensure_key")
            .expect("first key");
        let before = manager.ring();

        // Sealed with another KEK: a misconfigured instance wrote it.
        let (foreign, _) = KeyEncryptionKey::generate();
        let (signing, pkcs8) =
            SigningKey::generate_with_thumbprint_kid(Algorithm::ES256).expect("generate key");
        let kid = signing.kid().to_owned();
        store
            .insert_signing_key(&StoredKey {
                sealed_private_key: foreign.seal(&kid, &pkcs8),
                kid: kid.clone(),
                alg: Algorithm::ES256.as_str().to_owned(),
                created_at: T0,
                activates_at: T0,
                revoked_at: None,
            })
            .await
            .expect("insert_signing_key");

        match manager.refresh(&store).await {
            Err(KeyError::Unusable { kid: bad, .. }) => assert_eq!(bad, kid),
            other => panic!("expected Unusable, got {other:?}"),
        }
        assert!(Arc::ptr_eq(&before, &manager.ring()));
    }
}

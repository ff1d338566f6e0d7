//! Randomness, digests and the key-encryption key that protects private keys at rest.

use std::fmt;

use aws_lc_rs::aead::{self, AES_256_GCM, Aad, RandomizedNonceKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use tessera_jose::{b64, b64_decode};

/// `n` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG failing means the machine cannot do cryptography at all;
    // issuing predictable tokens would be worse than stopping.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator failed");
    bytes
}

/// A 256-bit random value, base64url without padding (43 characters): the form of
/// client secrets, reference tokens and other bearer secrets.
pub fn random_token() -> String {
    random_b64::<32>()
}

/// A 128-bit random identifier, base64url without padding (22 characters): client
/// IDs, subjects, session IDs, `jti`s.
pub fn random_id() -> String {
    random_b64::<16>()
}

/// `N` random bytes as base64url, never starting with `-`: people paste these
/// values on command lines, where a leading dash reads as an option. One value
/// in 64 is drawn again, which costs under 0.03 bits of entropy.
fn random_b64<const N: usize>() -> String {
    loop {
        let text = b64(random_bytes::<N>());
        if !text.starts_with('-') {
            return text;
        }
    }
}

/// The SHA-256 digest under which a high-entropy secret is stored. A slow password
/// hash would add nothing for 256-bit random values and would slow the token
/// endpoint down; a digest keeps a database leak from revealing usable secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        SecretDigest(out)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(SecretDigest)
    }

    /// Whether `secret` hashes to this digest, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([redacted])")
    }
}

/// The key-encryption key (AES-256-GCM) that seals signing keys and shared secrets
/// before they reach the database.
pub struct KeyEncryptionKey {
    aead: RandomizedNonceKey,
    /// Kept to derive purpose-bound MAC keys (CSRF tokens) from the same secret.
    mac_root: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KekError {
    #[error("the key-encryption key must be 32 bytes, base64url or base64 encoded")]
    BadKey,
    #[error("a sealed value could not be opened: wrong key-encryption key or corrupted data")]
    Open,
}

impl KeyEncryptionKey {
    pub fn generate() -> (Self, String) {
        let raw = random_bytes::<32>();
        let encoded = b64(raw);
        (Self::from_raw(&raw), encoded)
    }

    /// Parses the textual form (base64url; standard base64 is accepted too).
    pub fn parse(text: &str) -> Result<Self, KekError> {
        use base64::Engine as _;
        let text = text.trim();
        let raw = b64_decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
            .map_err(|_| KekError::BadKey)?;
        if raw.len() != 32 {
            return Err(KekError::BadKey);
        }
        Ok(Self::from_raw(&raw))
    }

    fn from_raw(raw: &[u8]) -> Self {
        #[allow(clippy::expect_used)] // 32 bytes is always a valid AES-256 key.
        let aead = RandomizedNonceKey::new(&AES_256_GCM, raw).expect("32-byte key");
        // Domain-separated from the AES key: the MAC root is HMAC(raw, label).
        let root = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, raw),
            b"tessera mac root",
        );
        KeyEncryptionKey {
            aead,
            mac_root: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, root.as_ref()),
        }
    }

    /// HMAC-SHA256 of `data` under a key bound to `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.mac_root);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Seals `plaintext`; `context` (for example the key ID) is authenticated, so a
    /// sealed value cannot be moved to another row. Output: nonce || ciphertext || tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut buffer = plaintext.to_vec();
        #[allow(clippy::expect_used)] // Only fails for inputs beyond GCM's 64 GiB limit.
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buffer)
            .expect("AES-GCM seal");
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buffer);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, KekError> {
        if sealed.len() < aead::NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KekError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| KekError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let (kek, text) = KeyEncryptionKey::generate();
        let sealed = kek.seal("kid-1", b"private");
        assert_eq!(kek.open("kid-1", &sealed).as_deref(), Ok(&b"private"[..]));
        assert_eq!(kek.open("kid-2", &sealed), Err(KekError::Open));
        let same = KeyEncryptionKey::parse(&text).expect("parse");
        assert!(same.open("kid-1", &sealed).is_ok());
        let (other, _) = KeyEncryptionKey::generate();
        assert_eq!(other.open("kid-1", &sealed), Err(KekError::Open));
        assert!(KeyEncryptionKey::parse("c2hvcnQ").is_err());
    }

    #[test]
    fn generated_values_never_start_with_a_dash() {
        // Each draw starts with '-' one time in 64: 20,000 draws would show
        // about 300 of them without the redraw.
        for _ in 0..10_000 {
            let token = random_token();
            assert!(!token.starts_with('-'), "{token}");
            assert_eq!(token.len(), 43);
            let id = random_id();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22);
        }
    }

    #[test]
    fn secret_digests_compare_exactly() {
        let secret = random_token();
        assert_eq!(secret.len(), 43);
        let digest = SecretDigest::of(&secret);
        assert!(digest.matches(&secret));
        assert!(!digest.matches(&secret[1..]));
        assert!(!digest.matches(""));
    }
}

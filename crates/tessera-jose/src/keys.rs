use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, ParsedPublicKey};
use aws_lc_rs::{hmac, rsa};

use crate::{Algorithm, Error, Jwk, b64, b64_decode};

/// A parsed private key with its `kid`, ready to sign many times.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    inner: SigningInner,
}

enum SigningInner {
    Ecdsa(signature::EcdsaKeyPair),
    Rsa(rsa::KeyPair),
    Ed25519(signature::Ed25519KeyPair),
    // Boxed: an HMAC key is over a kilobyte, the other variants are pointers.
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh asymmetric key. Returns the key and its PKCS#8 v1 DER
    /// encoding, which the caller stores (encrypted) to load it again later.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<(Self, Vec<u8>), Error> {
        let pkcs8 = match alg {
            Algorithm::ES256 => {
                signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(|_| Error::Crypto)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 | Algorithm::PS256 => rsa::KeyPair::generate(rsa::KeySize::Rsa2048)
                .map_err(|_| Error::Crypto)?
                .as_der()
                .map_err(|_| Error::Crypto)?
                .as_ref()
                .to_vec(),
            // Ed25519 public-key export and re-import both want PKCS#8 v1.
            Algorithm::EdDSA => signature::Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| Error::Crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => return Err(Error::InvalidKey("HS256 keys are shared secrets")),
        };
        let key = Self::from_pkcs8(alg, kid, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Generates a key whose `kid` is its RFC 7638 thumbprint. A key whose
    /// thumbprint starts with `-` is drawn again (one in 64): operators pass
    /// key IDs on command lines, where a leading dash reads as an option.
    pub fn generate_with_thumbprint_kid(alg: Algorithm) -> Result<(Self, Vec<u8>), Error> {
        loop {
            let (key, pkcs8) = Self::generate(alg, "")?;
            let kid = key.public_jwk().ok_or(Error::Crypto)?.thumbprint();
            if !kid.starts_with('-') {
                return Ok((Self { kid, ..key }, pkcs8));
            }
        }
    }

    /// Loads a private key stored as PKCS#8 DER.
    pub fn from_pkcs8(alg: Algorithm, kid: impl Into<String>, der: &[u8]) -> Result<Self, Error> {
        let rejected =
            |_| Error::InvalidKey("the PKCS#8 document does not hold a key for this algorithm");
        let inner = match alg {
            Algorithm::ES256 => SigningInner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                )
                .map_err(rejected)?,
            ),
            Algorithm::RS256 | Algorithm::PS256 => {
                SigningInner::Rsa(rsa::KeyPair::from_pkcs8(der).map_err(rejected)?)
            }
            Algorithm::EdDSA => {
                SigningInner::Ed25519(signature::Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?)
            }
            Algorithm::HS256 => return Err(Error::InvalidKey("HS256 keys are shared secrets")),
        };
        Ok(SigningKey {
            kid: kid.into(),
            alg,
            inner,
        })
    }

    /// An HS256 key over a shared secret (at least 256 bits, RFC 7518 §3.2).
    pub fn hmac(kid: impl Into<String>, secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < 32 {
            return Err(Error::InvalidKey(
                "an HS256 secret must be at least 32 bytes",
            ));
        }
        Ok(SigningKey {
            kid: kid.into(),
            alg: Algorithm::HS256,
            inner: SigningInner::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.inner {
            SigningInner::Ecdsa(key) => key
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto),
            SigningInner::Rsa(key) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(padding, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| Error::Crypto)?;
                Ok(sig)
            }
            SigningInner::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            SigningInner::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }

    /// The public half as a JWK with `kid`, `alg` and `use: sig`; `None` for HS256,
    /// whose secret must never be published.
    pub fn public_jwk(&self) -> Option<Jwk> {
        let mut jwk = Jwk {
            kty: self.alg.key_type().to_owned(),
            kid: Some(self.kid.clone()),
            alg: Some(self.alg.as_str().to_owned()),
            key_use: Some("sig".to_owned()),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match &self.inner {
            SigningInner::Ecdsa(key) => {
                // Uncompressed SEC1 point: 0x04 || X || Y (32 bytes each for P-256).
                let point = key.public_key().as_ref();
                jwk.crv = Some("P-256".to_owned());
                jwk.x = Some(b64(&point[1..33]));
                jwk.y = Some(b64(&point[33..65]));
            }
            SigningInner::Rsa(key) => {
                let public = key.public_key();
                jwk.n = Some(b64(public.modulus().big_endian_without_leading_zero()));
                jwk.e = Some(b64(public.exponent().big_endian_without_leading_zero()));
            }
            SigningInner::Ed25519(key) => {
                jwk.crv = Some("Ed25519".to_owned());
                jwk.x = Some(b64(key.public_key().as_ref()));
            }
            SigningInner::Hmac(_) => return None,
        }
        Some(jwk)
    }

    /// The matching verifier, without a round trip through the JWK.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        match &self.inner {
            SigningInner::Hmac(key) => Ok(VerifyingKey {
                kid: Some(self.kid.clone()),
                alg: self.alg,
                inner: VerifyingInner::Hmac(key.clone()),
            }),
            _ => {
                let jwk = self.public_jwk().ok_or(Error::Crypto)?;
                VerifyingKey::from_jwk(&jwk)
            }
        }
    }
}

/// A parsed public key (or HS256 secret) bound to exactly one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    inner: VerifyingInner,
}

#[derive(Clone)]
enum VerifyingInner {
    Public(ParsedPublicKey),
    // Boxed: an HMAC key is over a kilobyte, the other variants are pointers.
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Parses a public JWK. The JWK must name its `alg`, and its `kty` and `crv`
    /// must fit that algorithm: a key is never used with an algorithm it was not
    /// published for (no RS/HS confusion).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, Error> {
        let alg: Algorithm = jwk
            .alg
            .as_deref()
            .ok_or(Error::InvalidKey("the JWK has no alg"))?
            .parse()?;
        Self::from_jwk_with_alg(jwk, alg)
    }

    /// Parses a public JWK for `alg`, for JWKs that omit their `alg` member; `kty`
    /// and `crv` must still match, and a JWK that names another `alg` is refused.
    pub fn from_jwk_with_alg(jwk: &Jwk, alg: Algorithm) -> Result<Self, Error> {
        if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
            return Err(Error::AlgorithmMismatch);
        }
        if jwk.kty != alg.key_type() {
            return Err(Error::InvalidKey("the JWK's kty does not fit its alg"));
        }
        if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(Error::InvalidKey("the JWK is not a signing key"));
        }
        let member = |m: &Option<String>, name: &'static str| -> Result<Vec<u8>, Error> {
            b64_decode(m.as_deref().ok_or(Error::InvalidKey(name))?)
                .map_err(|_| Error::InvalidKey(name))
        };
        let parsed = match alg {
            Algorithm::ES256 => {
                if jwk.crv.as_deref() != Some("P-256") {
                    return Err(Error::InvalidKey("ES256 needs crv P-256"));
                }
                let x = member(&jwk.x, "x")?;
                let y = member(&jwk.y, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::InvalidKey("P-256 coordinates are 32 bytes"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                let n = member(&jwk.n, "n")?;
                let e = member(&jwk.e, "e")?;
                if n.len() < 256 {
                    return Err(Error::InvalidKey("RSA keys must be at least 2048 bits"));
                }
                let params = if alg == Algorithm::PS256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                let key = signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .to_parsed_public_key(params)
                    .map_err(|_| Error::InvalidKey("bad RSA key"))?;
                return Ok(VerifyingKey {
                    kid: jwk.kid.clone(),
                    alg,
                    inner: VerifyingInner::Public(key),
                });
            }
            Algorithm::EdDSA => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(Error::InvalidKey("EdDSA needs crv Ed25519"));
                }
                ParsedPublicKey::new(&signature::ED25519, member(&jwk.x, "x")?)
            }
            Algorithm::HS256 => return Err(Error::InvalidKey("HS256 keys are never JWKs here")),
        }
        .map_err(|_| Error::InvalidKey("the public key does not parse"))?;
        Ok(VerifyingKey {
            kid: jwk.kid.clone(),
            alg,
            inner: VerifyingInner::Public(parsed),
        })
    }

    /// An HS256 verifier over a shared secret.
    pub fn hmac(kid: Option<String>, secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < 32 {
            return Err(Error::InvalidKey(
                "an HS256 secret must be at least 32 bytes",
            ));
        }
        Ok(VerifyingKey {
            kid,
            alg: Algorithm::HS256,
            inner: VerifyingInner::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message` with this key's own algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        match &self.inner {
            VerifyingInner::Public(key) => key.verify_sig(message, signature),
            // hmac::verify compares in constant time.
            VerifyingInner::Hmac(key) => hmac::verify(key, message, signature),
        }
        .map_err(|_| Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_kids_never_start_with_a_dash() {
        // Without the redraw about 31 of 2,000 would.
        for _ in 0..2_000 {
            let (key, _) = SigningKey::generate_with_thumbprint_kid(Algorithm::EdDSA)
                .unwrap_or_else(|e| panic!("generate: {e}"));
            assert!(!key.kid().starts_with('-'), "{}", key.kid());
            assert_eq!(
                Some(key.kid().to_owned()),
                key.public_jwk().map(|j| j.thumbprint())
            );
        }
    }
}

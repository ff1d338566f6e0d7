//! Compact JWS (RFC 7515) signing and verification, and JWK (RFC 7517) export.
//!
//! Keys are parsed once and kept: signing and verification on the hot path never
//! re-parse a private or public key (general-purpose JWT crates re-parse the key on
//! every call, which costs milliseconds for RSA). The algorithm used to verify comes
//! from the key, never from the token header, and `alg: none` does not exist here.

#![forbid(unsafe_code)]

mod algorithm;
mod jwk;
mod jws;
mod keys;

pub use algorithm::Algorithm;
pub use jwk::{Jwk, JwkSet};
pub use jws::{Header, JsonStr, JwsRef, JwsScratch, UnverifiedJws, encode, typ_matches};
pub use keys::{SigningKey, VerifyingKey};

/// Why a JOSE operation failed. Callers map these to their own error codes; the
/// variants are precise so that logs can say what was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the token is not a compact JWS")]
    Malformed,
    #[error("the JOSE header is not a UTF-8 JSON object of the expected member types")]
    MalformedHeader,
    /// A header member that changes how the token is processed and that
    /// Tessera does not implement (`crit`, `b64`).
    #[error("the JOSE header uses {0}, which is not supported")]
    UnsupportedHeader(&'static str),
    #[error("algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("the token's algorithm does not match the key's")]
    AlgorithmMismatch,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the payload is not valid JSON: {0}")]
    MalformedPayload(String),
    #[error("the key is not usable: {0}")]
    InvalidKey(&'static str),
    #[error("key generation or signing failed")]
    Crypto,
}

/// Unpadded base64url, the encoding of every JOSE part (RFC 7515 §2).
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url, rejecting padding and the standard alphabet.
pub fn b64_decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::Malformed)
}

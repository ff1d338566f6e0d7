//! Proof Key for Code Exchange (RFC 7636), `S256` only: `plain` would put the
//! verifier itself in the front channel.

use aws_lc_rs::digest;
use subtle::ConstantTimeEq;

/// Checks a `code_challenge` from an authorization request: base64url of a
/// SHA-256 digest is exactly 43 characters (RFC 7636 §4.2).
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a `code_verifier` against the stored challenge: 43 to 128 unreserved
/// characters (RFC 7636 §4.1), and BASE64URL(SHA256(verifier)) == challenge (§4.6).
pub fn verify(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = challenge_of(verifier);
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// The `S256` challenge of a verifier (RFC 7636 §4.2), as a client sends it.
pub fn challenge_of(verifier: &str) -> String {
    tessera_jose::b64(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(verify(verifier, challenge));
        assert!(!verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        assert!(!verify("short", challenge));
        assert!(!valid_challenge("plain-challenge"));
    }
}

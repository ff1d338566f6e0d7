use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Algorithm, Error, SigningKey, VerifyingKey, b64, b64_decode};

/// The JOSE header members Tessera reads or writes (RFC 7515 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Critical extensions we do not understand make a token invalid (RFC 7515 §4.1.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<serde_json::Value>,
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`.
pub fn encode<T: Serialize + ?Sized>(
    key: &SigningKey,
    typ: &str,
    claims: &T,
) -> Result<String, Error> {
    let header = Header {
        alg: key.alg().as_str().to_owned(),
        typ: Some(typ.to_owned()),
        kid: Some(key.kid().to_owned()),
        crit: None,
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::Crypto)?;
    let payload = serde_json::to_vec(claims).map_err(|e| Error::MalformedPayload(e.to_string()))?;
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
    token.push_str(&b64(&header));
    token.push('.');
    token.push_str(&b64(&payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64(&signature));
    Ok(token)
}

/// A compact JWS split into its parts, header parsed, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedJws<'a> {
    header: Header,
    alg: Algorithm,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

impl<'a> UnverifiedJws<'a> {
    /// Splits and decodes a compact JWS. Anything but exactly three parts, an
    /// unknown `alg` (including `none`) or a `crit` header is rejected here.
    pub fn parse(token: &'a str) -> Result<Self, Error> {
        let mut parts = token.splitn(4, '.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let header: Header =
            serde_json::from_slice(&b64_decode(header_b64)?).map_err(|_| Error::MalformedHeader)?;
        if header.crit.is_some() {
            return Err(Error::MalformedHeader);
        }
        let alg = header.alg.parse()?;
        let signature = b64_decode(signature_b64)?;
        Ok(UnverifiedJws {
            header,
            alg,
            signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
            payload_b64,
            signature,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Verifies the signature with `key`, whose algorithm must be the one the
    /// header names, then returns the decoded payload.
    pub fn verify<T: DeserializeOwned>(&self, key: &VerifyingKey) -> Result<T, Error> {
        if key.alg() != self.alg {
            return Err(Error::AlgorithmMismatch);
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)?;
        self.payload_unverified()
    }

    /// The payload without any signature check: for display and for routing
    /// (finding the issuer of an assertion), never for trust decisions.
    pub fn payload_unverified<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&b64_decode(self.payload_b64)?)
            .map_err(|e| Error::MalformedPayload(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn round_trip(alg: Algorithm) {
        let (key, pkcs8) = SigningKey::generate(alg, "k1").expect("generate");
        let reloaded = SigningKey::from_pkcs8(alg, "k1", &pkcs8).expect("reload");
        let token = encode(&reloaded, "at+jwt", &json!({"sub": "s"})).expect("sign");
        let jwk = key.public_jwk().expect("public");
        assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
        let verifier = VerifyingKey::from_jwk(&jwk).expect("jwk");
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(jws.header().typ.as_deref(), Some("at+jwt"));
        let claims: Value = jws.verify(&verifier).expect("verify");
        assert_eq!(claims["sub"], "s");

        // Flip one bit of the payload: the signature must fail.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(br#"{"sub":"t"}"#);
        let forged = parts.join(".");
        let jws = UnverifiedJws::parse(&forged).expect("parse");
        assert_eq!(jws.verify::<Value>(&verifier), Err(Error::BadSignature));
    }

    #[test]
    fn every_asymmetric_algorithm_signs_and_verifies() {
        for alg in Algorithm::ASYMMETRIC {
            round_trip(alg);
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // The classic RS/HS confusion: sign HS256 with the public key bytes and
        // hope the verifier picks the algorithm from the header.
        let (key, _) = SigningKey::generate(Algorithm::RS256, "k1").expect("generate");
        let jwk = key.public_jwk().expect("public");
        let public_bytes = serde_json::to_vec(&jwk).expect("json");
        let forger = SigningKey::hmac("k1", &public_bytes).expect("hmac");
        let token = encode(&forger, "at+jwt", &json!({"sub": "s"})).expect("sign");
        let verifier = VerifyingKey::from_jwk(&jwk).expect("jwk");
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(
            jws.verify::<Value>(&verifier),
            Err(Error::AlgorithmMismatch)
        );
    }

    #[test]
    fn alg_none_and_malformed_tokens_are_refused() {
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"sub":"s"}"#));
        assert!(matches!(
            UnverifiedJws::parse(&none),
            Err(Error::UnsupportedAlgorithm(_))
        ));
        for bad in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(UnverifiedJws::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_is_refused_for_another_kty() {
        let (key, _) = SigningKey::generate(Algorithm::ES256, "k1").expect("generate");
        let mut jwk = key.public_jwk().expect("public");
        jwk.alg = Some("RS256".into());
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
    }
}

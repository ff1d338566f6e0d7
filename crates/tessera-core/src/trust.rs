//! The rules for trusting other identity systems: JWT issuers whose
//! assertions and tokens are accepted (RFC 7523, RFC 8693) and SAML 2.0
//! identity providers (RFC 7522). Every entry point (the CLI, later the admin
//! API) registers them through these functions, so none can make an entry
//! the others would refuse.

use tessera_jose::JwkSet;

use crate::clock::UnixTime;
use crate::registration::{RegistrationError, check_jwks_uri, parse_client_jwks};
use crate::store::{SamlIdp, TrustedIssuer};

/// The longest issuer identifier or entity ID accepted.
pub const MAX_IDENTIFIER_LENGTH: usize = 1024;

/// Where a trusted issuer's keys come from.
#[derive(Debug, Clone, Copy)]
pub enum IssuerKeys<'a> {
    /// A JWK Set document (public keys only).
    Inline(&'a [u8]),
    /// The URL the issuer publishes its JWK Set at.
    Uri(&'a str),
}

/// A trusted issuer as it would be stored, or why it cannot be.
pub fn new_trusted_issuer(
    own_issuer: &str,
    issuer: &str,
    keys: IssuerKeys<'_>,
    now: UnixTime,
) -> Result<TrustedIssuer, RegistrationError> {
    check_identifier("an issuer", issuer)?;
    if issuer.trim_end_matches('/') == own_issuer.trim_end_matches('/') {
        return Err(error(
            "this server's own issuer is not registered: its tokens are verified with its own keys",
        ));
    }
    let (jwks, jwks_uri): (Option<JwkSet>, Option<String>) = match keys {
        IssuerKeys::Inline(text) => (Some(parse_client_jwks(text)?), None),
        IssuerKeys::Uri(uri) => {
            check_jwks_uri(uri)?;
            (None, Some(uri.to_owned()))
        }
    };
    Ok(TrustedIssuer {
        issuer: issuer.to_owned(),
        jwks,
        jwks_uri,
        created_at: now,
    })
}

/// A SAML identity provider as it would be stored: its entity ID and the
/// certificate it signs with, which must parse as one with a usable key.
pub fn new_saml_idp(
    entity_id: &str,
    certificate_pem: &str,
    now: UnixTime,
) -> Result<SamlIdp, RegistrationError> {
    check_identifier("an entity ID", entity_id)?;
    crate::saml::IdpCertificate::from_pem(certificate_pem)
        .map_err(|e| error(format!("the certificate is not usable: {e}")))?;
    Ok(SamlIdp {
        entity_id: entity_id.to_owned(),
        certificate_pem: certificate_pem.to_owned(),
        created_at: now,
    })
}

/// An issuer or entity ID: compared as an exact string, so it is kept as
/// given, but it must be something one could type and read back.
pub fn check_identifier(what: &str, value: &str) -> Result<(), RegistrationError> {
    if value.is_empty() || value.len() > MAX_IDENTIFIER_LENGTH {
        return Err(error(format!(
            "{what} has 1 to {MAX_IDENTIFIER_LENGTH} characters"
        )));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(error(format!(
            "{what} must not contain whitespace or control characters"
        )));
    }
    Ok(())
}

fn error(message: impl Into<String>) -> RegistrationError {
    RegistrationError {
        kind: crate::registration::RegistrationErrorKind::InvalidClientMetadata,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://auth.example";

    fn jwks() -> Vec<u8> {
        let (key, _) =
            tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256, "k1").expect("key");
        serde_json::to_vec(&serde_json::json!({ "keys": [key.public_jwk().expect("public")] }))
            .expect("json")
    }

    #[test]
    fn an_issuer_brings_public_keys_or_a_secure_uri() {
        let inline = new_trusted_issuer(OWN, "https://idp.example", IssuerKeys::Inline(&jwks()), 7)
            .expect("inline keys");
        assert_eq!(inline.jwks.expect("jwks").keys.len(), 1);
        let remote = new_trusted_issuer(
            OWN,
            "https://idp.example",
            IssuerKeys::Uri("https://idp.example/jwks.json"),
            7,
        )
        .expect("uri");
        assert_eq!(
            remote.jwks_uri.as_deref(),
            Some("https://idp.example/jwks.json")
        );

        let pem = include_str!("../tests/fixtures/saml/idp-cert.pem");
        assert!(new_saml_idp("https://idp.example/saml", pem, 7).is_ok());
        let err = new_saml_idp("https://idp.example/saml", "not a certificate", 7)
            .expect_err("not a certificate");
        assert!(err.message.contains("certificate"), "{}", err.message);

        for (issuer, keys, why) in [
            ("", IssuerKeys::Uri("https://idp.example/k"), "1 to"),
            (
                "https://idp .example",
                IssuerKeys::Uri("https://idp.example/k"),
                "whitespace",
            ),
            (
                "https://auth.example/",
                IssuerKeys::Uri("https://idp.example/k"),
                "own issuer",
            ),
            (
                "https://idp.example",
                IssuerKeys::Uri("http://idp.example/k"),
                "https",
            ),
            ("https://idp.example", IssuerKeys::Inline(b"{}"), "keys"),
        ] {
            let err = new_trusted_issuer(OWN, issuer, keys, 7).expect_err(why);
            assert!(err.message.contains(why), "{why}: {}", err.message);
        }
    }
}

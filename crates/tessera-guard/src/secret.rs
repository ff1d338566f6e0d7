//! Secret configuration values. Their `Debug` prints `[redacted]`, so a
//! configuration struct can be logged without leaking credentials.

use std::fmt;

/// The service's own client secret, used to authenticate to the
/// introspection endpoint (RFC 7662 §2.1).
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    /// The secret itself; call only where it is sent.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// A secret shared between Tessera and one resource, for HS256 access tokens.
///
/// Anyone holding it can mint tokens for that resource, so it is a per-resource
/// choice and never published in the JWKS.
#[derive(Clone)]
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    /// The raw secret bytes, as configured on the server for this resource.
    /// RFC 7518 §3.2 requires a key at least as long as the hash output, so
    /// fewer than 32 bytes are refused when the verifier is built.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        SharedSecret(secret.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let client = ClientSecret::new("hunter2");
        let shared = SharedSecret::new(b"0123456789abcdef0123456789abcdef".to_vec());
        assert_eq!(format!("{client:?}"), "ClientSecret([redacted])");
        assert_eq!(format!("{shared:?}"), "SharedSecret([redacted])");
        assert_eq!(client.secret(), "hunter2");
    }
}

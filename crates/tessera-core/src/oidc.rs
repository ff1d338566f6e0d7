//! OpenID Connect: ID tokens (OIDC Core §2) and the claims of `/userinfo` (§5.3).

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_jose::Algorithm;

use crate::clock::UnixTime;
use crate::scope::Scope;
use crate::store::User;

/// The `typ` of ID tokens: plain `JWT`, which access tokens (`at+jwt`) never use.
pub const ID_TOKEN_TYP: &str = "JWT";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client (OIDC Core §2).
    pub aud: String,
    pub exp: UnixTime,
    pub iat: UnixTime,
    pub auth_time: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    pub azp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Profile and email claims, by scope.
    #[serde(flatten)]
    pub user_claims: Map<String, Value>,
}

/// `at_hash` (OIDC Core §3.1.3.6; `c_hash`, §3.3.2.11, uses the same rule and
/// appears only in hybrid flows, which Tessera does not offer): the left half of the hash
/// of the ASCII value, with the hash of the ID token's algorithm, base64url.
/// Ed25519 signs with SHA-512 internally, and SHA-512 is what relying parties use
/// for EdDSA.
pub fn half_hash(alg: Algorithm, value: &str) -> String {
    let hash = match alg {
        Algorithm::EdDSA => digest::digest(&digest::SHA512, value.as_bytes()),
        _ => digest::digest(&digest::SHA256, value.as_bytes()),
    };
    let bytes = hash.as_ref();
    tessera_jose::b64(&bytes[..bytes.len() / 2])
}

/// The user's claims that `scope` releases (OIDC Core §5.4): `profile` gives
/// `name` and `preferred_username`, `email` gives `email` and `email_verified`.
pub fn user_claims(user: &User, scope: &Scope) -> Map<String, Value> {
    let mut claims = Map::new();
    if scope.contains("profile") {
        claims.insert(
            "preferred_username".into(),
            Value::String(user.username.clone()),
        );
        if let Some(name) = &user.name {
            claims.insert("name".into(), Value::String(name.clone()));
        }
    }
    if scope.contains("email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), Value::String(email.clone()));
        // Tessera does not verify addresses; saying so is the honest answer.
        claims.insert("email_verified".into(), Value::Bool(false));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_core_appendix_a_hash_vectors() {
        // OIDC Core A.3 (at_hash) and A.4 (c_hash), both RS256.
        assert_eq!(
            half_hash(
                Algorithm::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            half_hash(
                Algorithm::RS256,
                "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
            ),
            "LDktKdoQak3Pk0cnXxCltA"
        );
    }
}

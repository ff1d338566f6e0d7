//! The floor server: the least work a client-credentials token endpoint can
//! do on this hardware. `POST /token` checks HTTP Basic credentials against one
//! fixed client (the secret compared in constant time) and answers with a
//! freshly signed ES256 JWT whose claims are fixed except `iat`, `exp` and a
//! random `jti`. Same crypto library (aws-lc-rs), same HTTP stack (axum on
//! hyper) and same runtime (multi-threaded tokio) as Tessera, and no storage:
//! what Tessera spends above it per request is the price of being an
//! authorization server rather than a signing loop.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Lifetime of the floor's tokens, as `expires_in` says.
pub const EXPIRES_IN: u64 = 300;

/// The one client the floor knows, and its signing key.
#[derive(Debug)]
pub struct Floor {
    client_id: String,
    secret: String,
    issuer: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The JWS header, base64url-encoded once: `{"alg":"ES256","typ":"at+jwt","kid":"floor-1"}`.
    header: String,
}

impl Floor {
    /// A floor for `client_id` with `secret`, with a new P-256 key.
    pub fn new(client_id: &str, secret: &str, issuer: &str) -> Result<Floor, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|e| format!("cannot generate the P-256 key: {e}"))?;
        Ok(Floor {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            issuer: issuer.to_owned(),
            key,
            rng,
            header: URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"floor-1"}"#),
        })
    }

    /// The public key, uncompressed SEC1 point (for checking the signatures).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Whether an `Authorization` header carries this client's credentials.
    pub fn authenticates(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(encoded) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (id, secret) = (&decoded[..colon], &decoded[colon + 1..]);
        let id_ok = id == self.client_id.as_bytes();
        let secret_ok = verify_slices_are_equal(secret, self.secret.as_bytes()).is_ok();
        id_ok & secret_ok
    }

    /// A signed access token for the client, valid for [`EXPIRES_IN`] seconds.
    pub fn token(&self) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| "no randomness".to_owned())?;
        let claims = format!(
            r#"{{"iss":"{}","sub":"{}","aud":"https://api.example","client_id":"{}","scope":"api.read","iat":{now},"exp":{},"jti":"{}"}}"#,
            self.issuer,
            self.client_id,
            self.client_id,
            now + EXPIRES_IN,
            URL_SAFE_NO_PAD.encode(jti)
        );
        let mut token = String::with_capacity(self.header.len() + claims.len() * 4 / 3 + 100);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let signature = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| "signing failed".to_owned())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// The floor's router: `POST /token` only.
pub fn router(floor: Arc<Floor>) -> Router {
    Router::new().route("/token", post(token)).with_state(floor)
}

async fn token(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    let json = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    if !floor.authenticates(headers.get(header::AUTHORIZATION)) {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            json,
            r#"{"error":"invalid_client"}"#,
        )
            .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"floor\""),
        );
        return response;
    }
    if !body
        .split(|&b| b == b'&')
        .any(|pair| pair == b"grant_type=client_credentials")
    {
        return (
            StatusCode::BAD_REQUEST,
            json,
            r#"{"error":"unsupported_grant_type"}"#,
        )
            .into_response();
    }
    match floor.token() {
        Ok(token) => (
            StatusCode::OK,
            json,
            format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{EXPIRES_IN}}}"#
            ),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            r#"{"error":"server_error"}"#,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    fn basic(id: &str, secret: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        ))
        .expect("header")
    }

    #[test]
    fn only_the_right_credentials_pass() {
        let floor = Floor::new("floor", "s3cret", "http://127.0.0.1:1").expect("floor");
        assert!(floor.authenticates(Some(&basic("floor", "s3cret"))));
        assert!(!floor.authenticates(Some(&basic("floor", "s3cre"))));
        assert!(!floor.authenticates(Some(&basic("other", "s3cret"))));
        assert!(!floor.authenticates(Some(&HeaderValue::from_static("Basic !!"))));
        assert!(!floor.authenticates(None));
    }

    #[test]
    fn tokens_verify_and_differ() {
        let floor = Floor::new("floor", "s3cret", "http://127.0.0.1:1").expect("floor");
        let (a, b) = (floor.token().expect("token"), floor.token().expect("token"));
        assert_ne!(a, b, "jti is random");
        let (input, signature) = a.rsplit_once('.').expect("three parts");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, floor.public_key())
            .verify(input.as_bytes(), &signature)
            .expect("valid signature");
        let claims = URL_SAFE_NO_PAD
            .decode(input.split('.').nth(1).expect("claims"))
            .expect("base64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        assert_eq!(claims["sub"], "floor");
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            EXPIRES_IN
        );
    }
}

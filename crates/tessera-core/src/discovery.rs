//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0): lists
//! exactly what this server does.

use serde::Serialize;

use crate::provider::Provider;

/// The paths, under the issuer, of the endpoints where clients authenticate:
/// published here, and the values a client assertion's `aud` may take.
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";
pub const REVOCATION_PATH: &str = "/oauth2/revoke";
pub const DEVICE_AUTHORIZATION_PATH: &str = "/oauth2/device/code";

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub authorization_endpoint: String,
    pub userinfo_endpoint: String,
    pub end_session_endpoint: String,
    pub device_authorization_endpoint: String,
    /// RFC 7591 §3 (RFC 8414 §2): where clients register themselves.
    pub registration_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub claims_parameter_supported: bool,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub access_token_signing_alg_values_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
}

impl Provider {
    pub fn metadata(&self) -> Metadata {
        let issuer = self.settings().issuer.trim_end_matches('/');
        let endpoint = |path: &str| format!("{issuer}{path}");
        let credential_methods = vec![
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ];
        let with_public = credential_methods
            .iter()
            .copied()
            .chain(["none"])
            .collect::<Vec<_>>();
        // private_key_jwt with every asymmetric algorithm a registered key can
        // have; client_secret_jwt with HS256, the one its secret keys.
        let assertion_algs = tessera_jose::Algorithm::ASYMMETRIC
            .into_iter()
            .chain([tessera_jose::Algorithm::HS256])
            .map(tessera_jose::Algorithm::as_str)
            .collect::<Vec<_>>();
        Metadata {
            issuer: self.settings().issuer.clone(),
            jwks_uri: endpoint("/jwks.json"),
            token_endpoint: endpoint(TOKEN_PATH),
            introspection_endpoint: endpoint(INTROSPECTION_PATH),
            revocation_endpoint: endpoint(REVOCATION_PATH),
            authorization_endpoint: endpoint("/oauth2/authorize"),
            userinfo_endpoint: endpoint("/userinfo"),
            end_session_endpoint: endpoint("/oauth2/logout"),
            device_authorization_endpoint: endpoint(DEVICE_AUTHORIZATION_PATH),
            registration_endpoint: endpoint(crate::dynamic_registration::REGISTRATION_PATH),
            grant_types_supported: self
                .grant_types()
                .into_iter()
                .map(|g| g.as_str())
                .chain(["implicit"])
                .collect(),
            response_types_supported: crate::authorize::ResponseType::SUPPORTED.to_vec(),
            response_modes_supported: crate::authorize::ResponseMode::SUPPORTED.to_vec(),
            scopes_supported: vec!["openid", "profile", "email", "offline_access"],
            claims_supported: vec![
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "azp",
                "sid",
                "name",
                "preferred_username",
                "email",
                "email_verified",
            ],
            code_challenge_methods_supported: vec!["S256"],
            id_token_signing_alg_values_supported: self.id_token_algs(),
            authorization_response_iss_parameter_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            claims_parameter_supported: false,
            // Public clients (`none`) use the token endpoint with PKCE or the
            // device grant, and may revoke their own tokens (RFC 7009 §2.1);
            // introspection needs real credentials.
            token_endpoint_auth_methods_supported: with_public.clone(),
            token_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
            introspection_endpoint_auth_methods_supported: credential_methods,
            introspection_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
            revocation_endpoint_auth_methods_supported: with_public,
            revocation_endpoint_auth_signing_alg_values_supported: assertion_algs,
            access_token_signing_alg_values_supported: vec![self.settings().signing_alg.as_str()],
            subject_types_supported: vec!["public"],
        }
    }
}

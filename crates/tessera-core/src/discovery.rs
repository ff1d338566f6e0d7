//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0): lists
//! exactly what this server does.

use serde::Serialize;

use crate::provider::Provider;

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    /// No authorization endpoint yet, so no response types (RFC 8414 §2).
    pub response_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub access_token_signing_alg_values_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
}

impl Provider {
    pub fn metadata(&self) -> Metadata {
        let issuer = self.settings().issuer.trim_end_matches('/');
        let endpoint = |path: &str| format!("{issuer}{path}");
        let secret_methods = vec!["client_secret_basic", "client_secret_post"];
        Metadata {
            issuer: self.settings().issuer.clone(),
            jwks_uri: endpoint("/jwks.json"),
            token_endpoint: endpoint("/oauth2/token"),
            introspection_endpoint: endpoint("/oauth2/introspect"),
            revocation_endpoint: endpoint("/oauth2/revoke"),
            grant_types_supported: self.grant_types().into_iter().map(|g| g.as_str()).collect(),
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: secret_methods.clone(),
            introspection_endpoint_auth_methods_supported: secret_methods.clone(),
            revocation_endpoint_auth_methods_supported: secret_methods,
            access_token_signing_alg_values_supported: vec![self.settings().signing_alg.as_str()],
            subject_types_supported: vec!["public"],
        }
    }
}

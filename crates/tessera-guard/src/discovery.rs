//! Authorization server metadata (OpenID Connect Discovery 1.0, RFC 8414).

use serde::Deserialize;
use url::Url;

use crate::error::{FetchError, SetupError};
use crate::fetch;

/// The members of the metadata document the guard uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// Fetches the metadata for `issuer` and checks that it speaks for exactly
/// that issuer (RFC 8414 §3.3: otherwise anyone able to serve a metadata
/// document could name their own keys).
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<Metadata, SetupError> {
    let issuer_url = parse_url("the issuer", issuer)?;
    // OpenID Connect Discovery §4: the suffix goes after the issuer's path.
    let openid = parse_url(
        "the discovery URL",
        &format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    )?;
    let fetched = match fetch::get_json(client, &openid).await {
        Err(FetchError::Status(404)) => {
            // RFC 8414 §3.1: the well-known segment goes before the path.
            let rfc8414 = format!(
                "{}/.well-known/oauth-authorization-server{}",
                issuer_url.origin().ascii_serialization(),
                issuer_url.path().trim_end_matches('/')
            );
            fetch::get_json(client, &parse_url("the discovery URL", &rfc8414)?).await
        }
        other => other,
    }
    .map_err(SetupError::Discovery)?;
    let metadata: Metadata = serde_json::from_slice(&fetched.body)
        .map_err(|e| SetupError::Discovery(FetchError::Json(e)))?;
    if metadata.issuer != issuer {
        return Err(SetupError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

pub(crate) fn parse_url(what: &'static str, url: &str) -> Result<Url, SetupError> {
    Url::parse(url).map_err(|source| SetupError::InvalidUrl { what, source })
}

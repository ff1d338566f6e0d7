//! Ready-to-run requests for a client: for each grant it may use, the exact
//! `curl` commands (and for the code flow the URL to open) filled in with its
//! ID, this server's endpoints, its scopes and a fresh PKCE pair, so that a
//! developer sees what to send instead of reading the RFCs first. Secrets,
//! codes and tokens are never filled in: the commands read them from shell
//! variables (`$CLIENT_SECRET`, `$CODE`, ...), which the text names.

use serde::Serialize;

use crate::crypto::random_token;
use crate::discovery::{DEVICE_AUTHORIZATION_PATH, TOKEN_PATH};
use crate::model::{Client, ClientAuthMethod, GrantType};
use crate::pkce;

/// The requests of one grant, in the order they are made.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyGrant {
    /// The grant's registered name (`authorization_code`, a URN, ...).
    pub grant: &'static str,
    pub title: &'static str,
    pub steps: Vec<Step>,
}

/// One thing to do: open a URL in a browser, or run a command.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub description: String,
    /// A URL to open in a browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// A shell command (POSIX sh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

impl Step {
    fn run(description: impl Into<String>, command: String) -> Self {
        Step {
            description: description.into(),
            open: None,
            run: Some(command),
        }
    }
}

/// A word for POSIX sh, in single quotes unless it needs none.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            // No `~`: at the start of a word the shell expands it.
            .all(|b| b.is_ascii_alphanumeric() || b"-._:/=@%+,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `curl` to an endpoint with the client's authentication and form fields.
/// Fields whose value is a shell variable are left unquoted inside double
/// quotes so that the shell expands them.
fn curl(client: &Client, url: &str, fields: &[(&str, Value)]) -> String {
    let mut command = format!("curl -s {}", quote(url));
    match client.auth_method {
        _ if client.is_public() => {
            command.push_str(&format!(" -d client_id={}", quote(&client.id)));
        }
        Some(ClientAuthMethod::ClientSecretPost) => {
            command.push_str(&format!(
                " -d client_id={} --data-urlencode \"client_secret=$CLIENT_SECRET\"",
                quote(&client.id)
            ));
        }
        Some(ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::ClientSecretJwt) => {
            command.push_str(
                " -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
                 --data-urlencode \"client_assertion=$CLIENT_ASSERTION\"",
            );
        }
        _ => command.push_str(&format!(" -u {}\":$CLIENT_SECRET\"", quote(&client.id))),
    }
    for (name, value) in fields {
        match value {
            Value::Text(text) => {
                command.push_str(&format!(
                    " --data-urlencode {}",
                    quote(&format!("{name}={text}"))
                ));
            }
            Value::Variable(variable) => {
                command.push_str(&format!(" --data-urlencode \"{name}=${variable}\""));
            }
        }
    }
    command
}

enum Value {
    Text(String),
    /// The name of a shell variable holding the value.
    Variable(&'static str),
}

fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

/// What the client must set before running the commands, in words.
fn credentials_note(client: &Client) -> &'static str {
    match client.auth_method {
        _ if client.is_public() => "",
        Some(ClientAuthMethod::PrivateKeyJwt) => {
            " Set CLIENT_ASSERTION to a JWT signed with the client's key (iss and sub: the \
             client ID; aud: the token endpoint; a fresh jti; exp within the hour)."
        }
        Some(ClientAuthMethod::ClientSecretJwt) => {
            " Set CLIENT_ASSERTION to a JWT signed with HS256 and the client secret (iss and \
             sub: the client ID; aud: the token endpoint; a fresh jti; exp within the hour)."
        }
        _ => " Set CLIENT_SECRET to the client's secret.",
    }
}

/// The ready requests of every grant `client` may use, against `issuer`.
pub fn ready_requests(client: &Client, issuer: &str) -> Vec<ReadyGrant> {
    let token_url = format!("{issuer}{TOKEN_PATH}");
    let scope = client.scopes.to_string();
    let scope_field = |fields: &mut Vec<(&str, Value)>| {
        if !scope.is_empty() {
            fields.push(("scope", text(scope.clone())));
        }
    };
    let note = credentials_note(client);
    let mut out = Vec::new();
    for grant in &client.grants {
        let ready = match grant {
            GrantType::ClientCredentials => {
                let mut fields = vec![("grant_type", text("client_credentials"))];
                scope_field(&mut fields);
                ReadyGrant {
                    grant: grant.as_str(),
                    title: "Client credentials: a token for the client itself",
                    steps: vec![Step::run(
                        format!("Ask for an access token.{note}"),
                        curl(client, &token_url, &fields),
                    )],
                }
            }
            GrantType::AuthorizationCode => {
                let Some(redirect_uri) = client.redirect_uris.first() else {
                    continue;
                };
                // A fresh pair each time the requests are shown: the verifier
                // stays with the developer, the challenge goes in the URL.
                let verifier = random_token();
                let state = random_token();
                let mut query = form_urlencoded::Serializer::new(String::new());
                query
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &client.id)
                    .append_pair("redirect_uri", redirect_uri)
                    .append_pair("code_challenge", &pkce::challenge_of(&verifier))
                    .append_pair("code_challenge_method", "S256")
                    .append_pair("state", &state);
                if !scope.is_empty() {
                    query.append_pair("scope", &scope);
                }
                if client.scopes.contains("openid") {
                    query.append_pair("nonce", &random_token());
                }
                let authorize = format!("{issuer}/oauth2/authorize?{}", query.finish());
                ReadyGrant {
                    grant: grant.as_str(),
                    title: "Authorization code with PKCE: a person signs in",
                    steps: vec![
                        Step {
                            description: format!(
                                "Open this URL, sign in and approve. The browser comes back to \
                                 {redirect_uri} with code and state; check that state is {state}."
                            ),
                            open: Some(authorize),
                            run: None,
                        },
                        Step::run(
                            format!(
                                "Set CODE to the code, then exchange it within a minute, with \
                                 this request's PKCE verifier.{note}"
                            ),
                            curl(
                                client,
                                &token_url,
                                &[
                                    ("grant_type", text("authorization_code")),
                                    ("code", Value::Variable("CODE")),
                                    ("redirect_uri", text(redirect_uri.clone())),
                                    ("code_verifier", text(verifier)),
                                ],
                            ),
                        ),
                    ],
                }
            }
            GrantType::RefreshToken => ReadyGrant {
                grant: grant.as_str(),
                title: "Refresh token: a new access token without the person",
                steps: vec![Step::run(
                    format!(
                        "Set REFRESH_TOKEN to the last refresh token; the answer carries its \
                         successor, and the old one must not be used again.{note}"
                    ),
                    curl(
                        client,
                        &token_url,
                        &[
                            ("grant_type", text("refresh_token")),
                            ("refresh_token", Value::Variable("REFRESH_TOKEN")),
                        ],
                    ),
                )],
            },
            GrantType::DeviceCode => {
                let mut fields = Vec::new();
                scope_field(&mut fields);
                ReadyGrant {
                    grant: grant.as_str(),
                    title: "Device authorization: a person approves on another screen",
                    steps: vec![
                        Step::run(
                            format!(
                                "Ask for a device code; show the person user_code and \
                                 verification_uri.{note}"
                            ),
                            curl(
                                client,
                                &format!("{issuer}{DEVICE_AUTHORIZATION_PATH}"),
                                &fields,
                            ),
                        ),
                        Step::run(
                            "Set DEVICE_CODE to device_code, then poll every interval seconds \
                             until the answer is a token rather than authorization_pending.",
                            curl(
                                client,
                                &token_url,
                                &[
                                    ("grant_type", text(GrantType::DeviceCode.as_str())),
                                    ("device_code", Value::Variable("DEVICE_CODE")),
                                ],
                            ),
                        ),
                    ],
                }
            }
            GrantType::Password => {
                let mut fields = vec![
                    ("grant_type", text("password")),
                    ("username", Value::Variable("USERNAME")),
                    ("password", Value::Variable("PASSWORD")),
                ];
                scope_field(&mut fields);
                ReadyGrant {
                    grant: grant.as_str(),
                    title: "Password: the client handles the person's password (legacy)",
                    steps: vec![Step::run(
                        format!("Set USERNAME and PASSWORD.{note}"),
                        curl(client, &token_url, &fields),
                    )],
                }
            }
            GrantType::TokenExchange => ReadyGrant {
                grant: grant.as_str(),
                title: "Token exchange: trade a token for one for another API (RFC 8693)",
                steps: vec![Step::run(
                    format!(
                        "Set SUBJECT_TOKEN to the access token to trade; add \
                         -d resource=URI for the API it is for.{note}"
                    ),
                    curl(
                        client,
                        &token_url,
                        &[
                            ("grant_type", text(GrantType::TokenExchange.as_str())),
                            ("subject_token", Value::Variable("SUBJECT_TOKEN")),
                            (
                                "subject_token_type",
                                text("urn:ietf:params:oauth:token-type:access_token"),
                            ),
                        ],
                    ),
                )],
            },
            GrantType::JwtBearer => ReadyGrant {
                grant: grant.as_str(),
                title: "JWT bearer: a signed assertion from a trusted issuer (RFC 7523)",
                steps: vec![Step::run(
                    format!("Set ASSERTION to the signed JWT.{note}"),
                    curl(
                        client,
                        &token_url,
                        &[
                            ("grant_type", text(GrantType::JwtBearer.as_str())),
                            ("assertion", Value::Variable("ASSERTION")),
                        ],
                    ),
                )],
            },
            GrantType::Saml2Bearer => ReadyGrant {
                grant: grant.as_str(),
                title: "SAML 2.0 bearer: a signed assertion from an identity provider (RFC 7522)",
                steps: vec![Step::run(
                    format!("Set ASSERTION to the base64url-encoded SAML assertion.{note}"),
                    curl(
                        client,
                        &token_url,
                        &[
                            ("grant_type", text(GrantType::Saml2Bearer.as_str())),
                            ("assertion", Value::Variable("ASSERTION")),
                        ],
                    ),
                )],
            },
            // A response type at the authorization endpoint, not a token
            // request; RFC 9700 §2.1.2 advises the code flow instead.
            GrantType::Implicit => continue,
        };
        out.push(ready);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("abc-1.2_"), "abc-1.2_");
        assert_eq!(quote("~user"), "'~user'");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote(""), "''");
    }
}

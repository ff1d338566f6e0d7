//! The commands of the `tessera` binary.

pub mod client;
pub mod consent;
pub mod inspect;
pub mod keys;
pub mod operator_token;
pub mod resource;
pub mod serve;
pub mod trust;
pub mod user;

use std::sync::Arc;

use tessera_core::crypto::KeyEncryptionKey;
use tessera_core::store::{Store, StoreError, TokenPurpose};
use tessera_core::{Provider, SystemClock};
use tessera_store::IfMissing;

use crate::cli::{
    AdminTokenCommand, Cli, ClientCommand, Command, ConsentCommand, IssuerCommand, KeysCommand,
    RegistrationTokenCommand, ResourceCommand, SamlIdpCommand, TokenCommand, UserCommand,
};
use crate::config::Config;

/// A command's failure: printed to stderr, exit status 1.
#[derive(Debug)]
pub struct CommandError(pub String);

impl<E: std::fmt::Display> From<E> for CommandError {
    fn from(err: E) -> Self {
        CommandError(err.to_string())
    }
}

pub type CommandResult = Result<(), CommandError>;

pub async fn run(cli: Cli) -> CommandResult {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve::serve(config).await,
        Command::Migrate => {
            let store = open_store(&config, IfMissing::Create).await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Client(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            match command {
                ClientCommand::Create(args) => {
                    client::create(store.as_ref(), *args, || require_kek(&config)).await
                }
                ClientCommand::List(json) => client::list(store.as_ref(), json.json).await,
                ClientCommand::Show { id, json } => {
                    client::show(store.as_ref(), &id, json.json).await
                }
                ClientCommand::Try { id, json } => {
                    client::try_it(store.as_ref(), &config.settings.issuer, &id, json.json).await
                }
                ClientCommand::Update(args) => {
                    client::update(store.as_ref(), *args, || require_kek(&config)).await
                }
                ClientCommand::Delete { id, json } => {
                    client::delete(store.as_ref(), &id, json.json).await
                }
                ClientCommand::RotateSecret { id, json } => {
                    client::rotate_secret(store.as_ref(), &id, json.json, || require_kek(&config))
                        .await
                }
            }
        }
        Command::Resource(command) => match command {
            ResourceCommand::List(json) => {
                let store = open_store(&config, IfMissing::Refuse).await?;
                resource::list(store.as_ref(), json.json).await
            }
            // The others may seal a shared secret or make a signing key.
            ResourceCommand::Create {
                audience,
                scope,
                token_format,
                accepts,
                signing_alg,
                json,
            } => {
                let provider = open_provider(&config).await?;
                resource::create(
                    &provider,
                    &audience,
                    &scope,
                    token_format.as_deref(),
                    &accepts,
                    signing_alg.as_deref(),
                    json.json,
                )
                .await
            }
            ResourceCommand::Update {
                audience,
                scope,
                token_format,
                accepts,
                signing_alg,
                json,
            } => {
                let provider = open_provider(&config).await?;
                let change = resource::Change {
                    scope: scope.as_deref(),
                    token_format: token_format.as_deref(),
                    accepts: accepts.as_deref(),
                    signing_alg: signing_alg.as_deref(),
                };
                resource::update(&provider, &audience, change, json.json).await
            }
            ResourceCommand::RotateSecret { audience, json } => {
                let provider = open_provider(&config).await?;
                resource::rotate_secret(&provider, &audience, json.json).await
            }
        },
        Command::Keys(command) => {
            let provider = open_provider(&config).await?;
            match command {
                KeysCommand::List(json) => keys::list(&provider, json.json),
                KeysCommand::Rotate { alg, now, json } => {
                    keys::rotate(&provider, alg.as_deref(), now, json.json).await
                }
                KeysCommand::Revoke { kid, force, json } => {
                    keys::revoke(&provider, &kid, force, json.json).await
                }
            }
        }
        Command::Token(TokenCommand::Inspect { token, json }) => {
            let provider = open_provider(&config).await?;
            inspect::inspect(&provider, &token, json.json).await
        }
        Command::User(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            match command {
                UserCommand::Create {
                    username,
                    email,
                    name,
                    password_stdin,
                    developer,
                    admin,
                    json,
                } => {
                    user::create(
                        store.as_ref(),
                        user::NewUser {
                            username: &username,
                            email: email.as_deref(),
                            name: name.as_deref(),
                            roles: tessera_core::store::Roles { developer, admin },
                        },
                        password_stdin,
                        json.json,
                    )
                    .await
                }
                UserCommand::SetDeveloper {
                    login,
                    revoke,
                    json,
                } => {
                    user::set_role(
                        store.as_ref(),
                        &login,
                        user::Role::Developer,
                        !revoke,
                        json.json,
                    )
                    .await
                }
                UserCommand::SetAdmin {
                    login,
                    revoke,
                    json,
                } => {
                    user::set_role(
                        store.as_ref(),
                        &login,
                        user::Role::Admin,
                        !revoke,
                        json.json,
                    )
                    .await
                }
                UserCommand::List(json) => user::list(store.as_ref(), json.json).await,
                UserCommand::Delete { login, json } => {
                    user::delete(store.as_ref(), &login, json.json).await
                }
                UserCommand::SetPassword {
                    login,
                    password_stdin,
                    keep_tokens,
                    json,
                } => {
                    user::set_password(
                        store.as_ref(),
                        &login,
                        password_stdin,
                        keep_tokens,
                        json.json,
                    )
                    .await
                }
            }
        }
        Command::Issuer(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            match command {
                IssuerCommand::Add {
                    issuer,
                    jwks,
                    jwks_uri,
                    json,
                } => {
                    trust::add_issuer(
                        store.as_ref(),
                        &config.settings.issuer,
                        &issuer,
                        jwks.as_deref(),
                        jwks_uri.as_deref(),
                        json.json,
                    )
                    .await
                }
                IssuerCommand::List(json) => trust::list_issuers(store.as_ref(), json.json).await,
                IssuerCommand::Remove { issuer, json } => {
                    trust::remove_issuer(store.as_ref(), &issuer, json.json).await
                }
            }
        }
        Command::SamlIdp(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            match command {
                SamlIdpCommand::Add {
                    entity_id,
                    certificate,
                    json,
                } => trust::add_saml_idp(store.as_ref(), &entity_id, &certificate, json.json).await,
                SamlIdpCommand::List(json) => {
                    trust::list_saml_idps(store.as_ref(), json.json).await
                }
                SamlIdpCommand::Remove { entity_id, json } => {
                    trust::remove_saml_idp(store.as_ref(), &entity_id, json.json).await
                }
            }
        }
        Command::RegistrationToken(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            let purpose = TokenPurpose::Registration;
            match command {
                RegistrationTokenCommand::Create { ttl, json } => {
                    operator_token::create(store.as_ref(), purpose, ttl, json.json).await
                }
                RegistrationTokenCommand::List(json) => {
                    operator_token::list(store.as_ref(), purpose, json.json).await
                }
                RegistrationTokenCommand::Revoke { id, json } => {
                    operator_token::revoke(store.as_ref(), purpose, &id, json.json).await
                }
            }
        }
        Command::AdminToken(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            let purpose = TokenPurpose::Admin;
            match command {
                AdminTokenCommand::Create { ttl, json } => {
                    operator_token::create(store.as_ref(), purpose, ttl, json.json).await
                }
                AdminTokenCommand::List(json) => {
                    operator_token::list(store.as_ref(), purpose, json.json).await
                }
                AdminTokenCommand::Revoke { id, json } => {
                    operator_token::revoke(store.as_ref(), purpose, &id, json.json).await
                }
            }
        }
        Command::Consent(command) => {
            let store = open_store(&config, IfMissing::Refuse).await?;
            match command {
                ConsentCommand::List { user, client, json } => {
                    consent::list(store.as_ref(), &user, client.as_deref(), json.json).await
                }
                ConsentCommand::Revoke { user, client, json } => {
                    consent::revoke(store.as_ref(), &user, client.as_deref(), json.json).await
                }
            }
        }
    }
}

/// Opens the configured database; only `serve` and `migrate` pass
/// [`IfMissing::Create`].
pub async fn open_store(
    config: &Config,
    if_missing: IfMissing,
) -> Result<Arc<dyn Store>, CommandError> {
    let url = tessera_store::redact(&config.database_url);
    tessera_store::connect_with(&config.database_url, if_missing)
        .await
        .map_err(|e| match e {
            StoreError::Missing(what) => CommandError(format!(
                "{what} (database_url is {url}). Only `tessera serve` and `tessera migrate` create a database: \
                 run this command where the server runs, or point it at the server's database \
                 with --config FILE or TESSERA_DATABASE_URL"
            )),
            StoreError::Unavailable(why) => CommandError(why),
            other => CommandError(format!("cannot open the database {url}: {other}")),
        })
}

/// The provider over the configured store, with its keys loaded. For every
/// command but `serve`: the database and its key-encryption key must exist.
pub async fn open_provider(config: &Config) -> Result<Provider, CommandError> {
    let store = open_store(config, IfMissing::Refuse).await?;
    let kek = require_kek(config)?;
    let provider = Provider::new(store, Arc::new(SystemClock), config.settings.clone(), kek);
    provider.start().await.map_err(|e| {
        CommandError(format!(
            "cannot load the signing keys: {e} (is the key-encryption key the one this database was created with?)"
        ))
    })?;
    Ok(provider)
}

/// The configured key-encryption key, which must exist: for every command but
/// `serve`, which creates it for a new database.
pub fn require_kek(config: &Config) -> Result<KeyEncryptionKey, CommandError> {
    config.key_encryption_key()?.ok_or_else(|| {
        CommandError(format!(
            "the key-encryption key file {} does not exist; only `tessera serve` creates it, \
             for a new database. Run this command where the server runs, or give the key with \
             TESSERA_KEY_ENCRYPTION_KEY_FILE",
            config
                .default_key_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ))
    })
}

/// Prints a JSON value on stdout.
/// The largest key or certificate file a command reads: a JWK Set of sixteen
/// RSA keys takes about 8 KiB, a certificate chain a few.
const MAX_KEY_FILE: u64 = 256 * 1024;

/// Reads a small file of keys or a certificate, refusing one far larger than
/// any such file is.
pub(crate) fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>, CommandError> {
    use std::io::Read as _;
    let failed = |e: &dyn std::fmt::Display| CommandError(format!("{}: {e}", path.display()));
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut text))
        .map_err(|e| failed(&e))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(failed(&format_args!(
            "larger than {MAX_KEY_FILE} bytes; a file of public keys is far smaller"
        )));
    }
    Ok(text)
}

pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

pub use tessera_core::clock::{relative, rfc3339 as format_time};

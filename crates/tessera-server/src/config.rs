//! Configuration: a TOML file (`--config PATH`) with `TESSERA_*` environment
//! overrides, parsed and validated once at start into typed values.
//!
//! Every key is documented here and in docs/configuration.md. Each key `name` can
//! be overridden with the environment variable `TESSERA_NAME` (upper case).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_core::Settings;
use tessera_core::crypto::KeyEncryptionKey;
use tessera_core::model::TokenFormat;
use tessera_jose::Algorithm;

use crate::client_address::{ForwardedHeader, TrustedProxies};
use crate::connections::{ConnectionLimits, open_files_limit};
use crate::limits::RateLimits;

/// The configuration file's keys. All are optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Issuer identifier; must be https except on a loopback host. Default
    /// `http://` + `listen`.
    pub issuer: Option<String>,
    /// `sqlite://PATH` (default `sqlite://tessera.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// The key-encryption key itself (base64url of 32 bytes). Prefer the file or
    /// the environment variable over putting it in the config file.
    pub key_encryption_key: Option<String>,
    /// A file holding the key-encryption key. Default for SQLite: `<database>.kek`
    /// beside the database, generated with mode 0600 on first use; for PostgreSQL:
    /// `tessera.kek` in the working directory.
    pub key_encryption_key_file: Option<String>,
    /// Audience of app tokens when neither the request nor the client names one.
    /// Default: the issuer.
    pub default_audience: Option<String>,
    /// Algorithm of access tokens: ES256 (default), RS256, PS256 or EdDSA.
    pub signing_alg: Option<String>,
    /// `jwt` (default) or `reference`.
    pub default_token_format: Option<String>,
    /// Seconds. Default 900.
    pub user_access_token_ttl: Option<i64>,
    /// Seconds. Default 3600.
    pub app_access_token_ttl: Option<i64>,
    /// Seconds. Default 900.
    pub id_token_ttl: Option<i64>,
    /// Seconds retired keys stay published: the longest lifetime of any signed
    /// token. Default 7776000 (90 days, offline refresh tokens).
    pub max_token_ttl: Option<i64>,
    /// Seconds between automatic key rotations; 0 disables. Default 2592000 (30 days).
    pub key_rotation_interval: Option<i64>,
    /// Seconds a new key is published before it signs. Default 86400.
    pub key_prepublish: Option<i64>,
    /// Seconds of clock difference accepted on incoming JWTs. Default 30.
    pub leeway: Option<i64>,
    /// Seconds verifiers may cache the JWKS. Default 300.
    pub jwks_max_age: Option<i64>,
    /// Seconds an authorization code lives. Default 60.
    pub code_ttl: Option<i64>,
    /// Seconds a refresh token lives; each rotation starts it again. Default 86400.
    pub refresh_token_ttl: Option<i64>,
    /// Seconds after sign-in after which a refresh token family ends. Default 2592000.
    pub refresh_token_absolute_ttl: Option<i64>,
    /// Seconds an `offline_access` refresh token lives. Default 7776000.
    pub offline_token_ttl: Option<i64>,
    /// Seconds after a refresh in which the rotated token, presented again,
    /// gets the same successor instead of revoking its family as reuse; at
    /// most 60. Default 0 (strict reuse detection).
    pub refresh_reuse_grace: Option<i64>,
    /// Seconds of inactivity that end a login session. Default 28800.
    pub session_idle_ttl: Option<i64>,
    /// Seconds after which a login session ends in any case. Default 604800.
    pub session_absolute_ttl: Option<i64>,
    /// Seconds a device code lives (RFC 8628). Default 600.
    pub device_code_ttl: Option<i64>,
    /// Seconds a device waits between polls at first. Default 5.
    pub device_poll_interval: Option<i64>,
    /// Anyone may register a client at the registration endpoint, without an
    /// initial access token; only clients that act for people who sign in
    /// (the code, device and refresh grants). Default false.
    pub open_registration: Option<bool>,
    /// Registered clients may name URLs (jwks_uri, logo_uri, ...) on private
    /// or loopback networks. Default false.
    pub registration_allows_private_urls: Option<bool>,
    /// Registrations without an initial access token one address may make in
    /// an hour. Default 10.
    pub open_registration_per_hour: Option<u32>,
    /// Token requests one client may make a second (all in a burst); `0`,
    /// the default, is no limit.
    pub token_rate_limit: Option<u32>,
    /// Sign-in form submissions one address may make a minute; `0`, the
    /// default, is no limit.
    pub login_rate_limit: Option<u32>,
    /// Device user-code submissions one address may make a minute; `0`, the
    /// default, is no limit.
    pub device_rate_limit: Option<u32>,
    /// Registration requests one address may make an hour; `0`, the default,
    /// is no limit.
    pub registration_rate_limit: Option<u32>,
    /// A PEM certificate chain (leaf first) to serve TLS with; needs
    /// `tls_key`. Reloaded when the file changes.
    pub tls_cert: Option<String>,
    /// The PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<String>,
    /// Where `/metrics` is served instead of the main listener (for example
    /// an address only the monitoring network reaches). Default: on the
    /// main listener.
    pub metrics_listen: Option<String>,
    /// Proxies whose forwarding header names the client's address: CIDR
    /// blocks or addresses (a TOML array, or a comma-separated string).
    /// Default: none, so that the socket's peer is the client.
    pub trusted_proxies: Option<StringList>,
    /// The header the trusted proxies write: `x-forwarded-for` (default) or
    /// `forwarded` (RFC 7239).
    pub forwarded_header: Option<String>,
    /// The trusted proxies are layer-4 load balancers that open each
    /// connection with a PROXY protocol header (v1 or v2) naming the client;
    /// their connections without one are dropped, and forwarding headers are
    /// not read on them. Needs `trusted_proxies`. Default false.
    pub proxy_protocol: Option<bool>,
    /// Who may use the developer portal: `everyone` who can sign in
    /// (default) or `developers` (users with the developer or admin role).
    pub portal_access: Option<String>,
    /// `text` (default) or `json`.
    pub log_format: Option<String>,
    /// Seconds a client has to send a request's headers, from the connection's
    /// start or (HTTP/1.1) the end of the previous response. Default 10.
    pub header_read_timeout: Option<i64>,
    /// Seconds a client has to send a request's body once its headers are in,
    /// however steadily the bytes come. Default 30.
    pub body_read_timeout: Option<i64>,
    /// Seconds a connection may stay open with no request in progress. Default 60.
    pub keep_alive_timeout: Option<i64>,
    /// Connections served at once; further ones wait. Default: half the
    /// open-files limit, at most 10000.
    pub max_connections: Option<i64>,
    /// After SIGTERM or SIGINT, seconds requests in progress get to finish.
    /// Default 30.
    pub shutdown_grace: Option<i64>,
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    Value(String),
    File(PathBuf),
    /// Generated into this file on first use if it does not exist.
    DefaultFile(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub kek: KekSource,
    pub settings: Settings,
    pub log_format: LogFormat,
    pub connections: ConnectionLimits,
    /// Request budgets per address.
    pub rate_limits: RateLimits,
    /// `/metrics` on its own listener; `None`: on the main one.
    pub metrics_listen: Option<SocketAddr>,
    /// TLS on the main listener; `None`: plain HTTP (behind a TLS proxy).
    pub tls: Option<crate::tls::TlsFiles>,
    pub trusted_proxies: TrustedProxies,
}

/// A list of strings: a TOML array in the file, comma-separated in the
/// environment.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "ListOrString")]
pub struct StringList(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<String>),
    String(String),
}

impl From<ListOrString> for StringList {
    fn from(value: ListOrString) -> Self {
        match value {
            ListOrString::List(items) => StringList(items),
            ListOrString::String(text) => {
                let Ok(list) = text.parse();
                list
            }
        }
    }
}

impl std::str::FromStr for StringList {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StringList(
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

/// The longest `refresh_reuse_grace` accepted.
const MAX_REFRESH_REUSE_GRACE: i64 = 60;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads the file (if any), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        Self::from_parts(file, |name| std::env::var(name).ok())
    }

    /// Builds the configuration from a parsed file and an environment lookup.
    pub fn from_parts(
        mut file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        macro_rules! override_from_env {
            ($($field:ident),*) => {$(
                let name = concat!("TESSERA_", stringify!($field)).to_uppercase();
                if let Some(value) = env(&name).filter(|v| !v.is_empty()) {
                    file.$field = Some(value.parse().map_err(|_| {
                        ConfigError(format!("{name}={value:?} is not a valid value"))
                    })?);
                }
            )*};
        }
        override_from_env!(
            listen,
            issuer,
            database_url,
            key_encryption_key,
            key_encryption_key_file,
            default_audience,
            signing_alg,
            default_token_format,
            user_access_token_ttl,
            app_access_token_ttl,
            id_token_ttl,
            max_token_ttl,
            key_rotation_interval,
            key_prepublish,
            leeway,
            jwks_max_age,
            code_ttl,
            refresh_token_ttl,
            refresh_token_absolute_ttl,
            offline_token_ttl,
            refresh_reuse_grace,
            session_idle_ttl,
            session_absolute_ttl,
            device_code_ttl,
            device_poll_interval,
            open_registration,
            registration_allows_private_urls,
            open_registration_per_hour,
            token_rate_limit,
            login_rate_limit,
            device_rate_limit,
            registration_rate_limit,
            portal_access,
            metrics_listen,
            tls_cert,
            tls_key,
            trusted_proxies,
            forwarded_header,
            proxy_protocol,
            log_format,
            header_read_timeout,
            body_read_timeout,
            keep_alive_timeout,
            max_connections,
            shutdown_grace
        );

        let connections = connection_limits(&file)?;
        let listen: SocketAddr = file
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| ConfigError(format!("listen: {e}")))?;
        let tls = match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "tls_cert and tls_key go together: give both, or neither for plain HTTP".into(),
                ));
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = file
            .issuer
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        validate_issuer(&issuer)?;
        let database_url = file
            .database_url
            .unwrap_or_else(|| "sqlite://tessera.db".to_owned());
        validate_database_url(&database_url)?;
        let kek = match (file.key_encryption_key, file.key_encryption_key_file) {
            (Some(value), _) => KekSource::Value(value),
            (None, Some(path)) => KekSource::File(path.into()),
            (None, None) => KekSource::DefaultFile(default_kek_path(&database_url)),
        };

        let mut settings = Settings::new(issuer);
        if let Some(audience) = file.default_audience {
            settings.default_audience = audience;
        }
        if let Some(alg) = file.signing_alg {
            let alg: Algorithm = alg
                .parse()
                .map_err(|e| ConfigError(format!("signing_alg: {e}")))?;
            if alg.is_symmetric() {
                return Err(ConfigError(
                    "signing_alg: HS256 is only for per-resource shared secrets".into(),
                ));
            }
            settings.signing_alg = alg;
        }
        if let Some(format) = file.default_token_format {
            settings.default_token_format = format
                .parse::<TokenFormat>()
                .map_err(|e| ConfigError(format!("default_token_format: {e}")))?;
        }
        settings.open_registration = file.open_registration.unwrap_or(false);
        if let Some(access) = &file.portal_access {
            settings.portal_access = access
                .parse()
                .map_err(|e| ConfigError(format!("portal_access: {e}")))?;
        }
        settings.registration_allows_private_urls =
            file.registration_allows_private_urls.unwrap_or(false);
        let seconds = [
            (
                "user_access_token_ttl",
                file.user_access_token_ttl,
                &mut settings.user_access_token_ttl,
            ),
            (
                "app_access_token_ttl",
                file.app_access_token_ttl,
                &mut settings.app_access_token_ttl,
            ),
            (
                "id_token_ttl",
                file.id_token_ttl,
                &mut settings.id_token_ttl,
            ),
            (
                "max_token_ttl",
                file.max_token_ttl,
                &mut settings.max_token_ttl,
            ),
            (
                "key_rotation_interval",
                file.key_rotation_interval,
                &mut settings.key_rotation_interval,
            ),
            (
                "key_prepublish",
                file.key_prepublish,
                &mut settings.key_prepublish,
            ),
            ("leeway", file.leeway, &mut settings.leeway),
            (
                "jwks_max_age",
                file.jwks_max_age,
                &mut settings.jwks_max_age,
            ),
            ("code_ttl", file.code_ttl, &mut settings.code_ttl),
            (
                "refresh_token_ttl",
                file.refresh_token_ttl,
                &mut settings.refresh_token_ttl,
            ),
            (
                "refresh_token_absolute_ttl",
                file.refresh_token_absolute_ttl,
                &mut settings.refresh_token_absolute_ttl,
            ),
            (
                "offline_token_ttl",
                file.offline_token_ttl,
                &mut settings.offline_token_ttl,
            ),
            (
                "refresh_reuse_grace",
                file.refresh_reuse_grace,
                &mut settings.refresh_reuse_grace,
            ),
            (
                "session_idle_ttl",
                file.session_idle_ttl,
                &mut settings.session_idle_ttl,
            ),
            (
                "session_absolute_ttl",
                file.session_absolute_ttl,
                &mut settings.session_absolute_ttl,
            ),
            (
                "device_code_ttl",
                file.device_code_ttl,
                &mut settings.device_code_ttl,
            ),
            (
                "device_poll_interval",
                file.device_poll_interval,
                &mut settings.device_poll_interval,
            ),
        ];
        for (name, value, slot) in seconds {
            if let Some(value) = value {
                if value < 0 {
                    return Err(ConfigError(format!("{name} must not be negative")));
                }
                *slot = value;
            }
        }
        for (name, ttl) in [
            ("user_access_token_ttl", settings.user_access_token_ttl),
            ("app_access_token_ttl", settings.app_access_token_ttl),
            ("id_token_ttl", settings.id_token_ttl),
            ("refresh_token_ttl", settings.refresh_token_ttl),
            (
                "refresh_token_absolute_ttl",
                settings.refresh_token_absolute_ttl,
            ),
            ("offline_token_ttl", settings.offline_token_ttl),
            ("code_ttl", settings.code_ttl),
            ("device_code_ttl", settings.device_code_ttl),
            ("device_poll_interval", settings.device_poll_interval),
        ] {
            if ttl == 0 || ttl > settings.max_token_ttl {
                return Err(ConfigError(format!(
                    "{name} must be between 1 and max_token_ttl ({})",
                    settings.max_token_ttl
                )));
            }
        }
        // A long grace would hand a stolen token's successor to its thief for
        // that long; providers that offer one keep it to seconds.
        if settings.refresh_reuse_grace > MAX_REFRESH_REUSE_GRACE {
            return Err(ConfigError(format!(
                "refresh_reuse_grace must be at most {MAX_REFRESH_REUSE_GRACE} seconds"
            )));
        }
        let log_format = match file.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "log_format {other:?}: use text or json"
                )));
            }
        };
        let open_registration_per_hour = match file.open_registration_per_hour {
            None => crate::limits::DEFAULT_OPEN_REGISTRATIONS_PER_HOUR,
            Some(count) => NonZeroU32::new(count).ok_or_else(|| {
                ConfigError(
                    "open_registration_per_hour must be at least 1 (turn open_registration off instead)"
                        .into(),
                )
            })?,
        };
        // 0 (or nothing) is no limit.
        let budget = |count: Option<u32>| count.and_then(NonZeroU32::new);
        settings.token_rate_limit = budget(file.token_rate_limit);
        let rate_limits = RateLimits {
            open_registration_per_hour,
            registration_per_hour: budget(file.registration_rate_limit),
            login_per_minute: budget(file.login_rate_limit),
            device_entry_per_minute: budget(file.device_rate_limit),
        };
        let forwarded_header = match file.forwarded_header.as_deref() {
            None => ForwardedHeader::default(),
            Some(name) => name
                .parse()
                .map_err(|e| ConfigError(format!("forwarded_header: {e}")))?,
        };
        let networks = TrustedProxies::parse_networks(
            file.trusted_proxies
                .iter()
                .flat_map(|list| list.0.iter().map(String::as_str)),
        )
        .map_err(|e| ConfigError(format!("trusted_proxies: {e}")))?;
        let proxy_protocol = file.proxy_protocol.unwrap_or(false);
        if proxy_protocol && networks.is_empty() {
            return Err(ConfigError(
                "proxy_protocol needs trusted_proxies: only the listed proxies' connections \
                 are read for a PROXY protocol header"
                    .into(),
            ));
        }
        let metrics_listen = file
            .metrics_listen
            .as_deref()
            .map(|address| {
                address
                    .parse::<SocketAddr>()
                    .map_err(|e| ConfigError(format!("metrics_listen: {e}")))
            })
            .transpose()?;
        if metrics_listen == Some(listen) {
            return Err(ConfigError(
                "metrics_listen is the listen address; leave it out to serve /metrics there".into(),
            ));
        }
        Ok(Config {
            tls,
            metrics_listen,
            listen,
            database_url,
            kek,
            settings,
            log_format,
            connections,
            rate_limits,
            trusted_proxies: TrustedProxies::new(networks, forwarded_header)
                .with_proxy_protocol(proxy_protocol),
        })
    }

    /// Loads the key-encryption key. `None` when it is to come from the default
    /// file and that file does not exist yet: only `serve` may then create it
    /// (see [`Config::create_default_key_encryption_key`]), and only for a
    /// database that has no signing keys yet.
    pub fn key_encryption_key(&self) -> Result<Option<KeyEncryptionKey>, ConfigError> {
        let parse = |text: &str, from: &str| {
            KeyEncryptionKey::parse(text).map_err(|e| ConfigError(format!("{from}: {e}")))
        };
        match &self.kek {
            KekSource::Value(value) => parse(value, "key_encryption_key").map(Some),
            KekSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                parse(&text, &path.display().to_string()).map(Some)
            }
            KekSource::DefaultFile(path) => match std::fs::read_to_string(path) {
                Ok(text) => parse(&text, &path.display().to_string()).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
            },
        }
    }

    /// Where the default key file is, when the key comes from it.
    pub fn default_key_file(&self) -> Option<&Path> {
        match &self.kek {
            KekSource::DefaultFile(path) => Some(path),
            _ => None,
        }
    }

    /// Generates the key-encryption key into the default file (mode 0600), which
    /// must not exist yet.
    pub fn create_default_key_encryption_key(&self) -> Result<KeyEncryptionKey, ConfigError> {
        let path = self.default_key_file().ok_or_else(|| {
            ConfigError("the key-encryption key is configured explicitly; nothing to create".into())
        })?;
        let (kek, text) = KeyEncryptionKey::generate();
        write_secret_file(path, &text)?;
        tracing::info!(path = %path.display(), "generated a key-encryption key; back it up with the database");
        Ok(kek)
    }
}

/// The longest timeout accepted: an hour is already no protection, and far
/// larger values would overflow the clock's arithmetic.
const LONGEST_TIMEOUT: i64 = 3600;
/// The most connections accepted for `max_connections`.
const MOST_CONNECTIONS: i64 = 1_000_000;

fn connection_limits(file: &FileConfig) -> Result<ConnectionLimits, ConfigError> {
    let timeout = |name: &str, value: Option<i64>, default: std::time::Duration| match value {
        None => Ok(default),
        Some(seconds @ 1..=LONGEST_TIMEOUT) => {
            Ok(std::time::Duration::from_secs(seconds.unsigned_abs()))
        }
        Some(_) => Err(ConfigError(format!(
            "{name} must be between 1 and {LONGEST_TIMEOUT} seconds"
        ))),
    };
    let max_connections = match file.max_connections {
        None => ConnectionLimits::default_max_connections(open_files_limit()),
        Some(n @ 1..=MOST_CONNECTIONS) => u32::try_from(n).unwrap_or(u32::MAX),
        Some(_) => {
            return Err(ConfigError(format!(
                "max_connections must be between 1 and {MOST_CONNECTIONS}"
            )));
        }
    };
    Ok(ConnectionLimits {
        header_read_timeout: timeout(
            "header_read_timeout",
            file.header_read_timeout,
            ConnectionLimits::DEFAULT_HEADER_READ_TIMEOUT,
        )?,
        body_read_timeout: timeout(
            "body_read_timeout",
            file.body_read_timeout,
            ConnectionLimits::DEFAULT_BODY_READ_TIMEOUT,
        )?,
        keep_alive_timeout: timeout(
            "keep_alive_timeout",
            file.keep_alive_timeout,
            ConnectionLimits::DEFAULT_KEEP_ALIVE_TIMEOUT,
        )?,
        max_connections,
        shutdown_grace: timeout(
            "shutdown_grace",
            file.shutdown_grace,
            ConnectionLimits::DEFAULT_SHUTDOWN_GRACE,
        )?,
    })
}

/// `sqlite://PATH` or `postgres://…`; an empty SQLite path would create a
/// hidden `.kek` and a database nobody can find again.
fn validate_database_url(url: &str) -> Result<(), ConfigError> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() && !rest.contains("mode=memory") {
            return Err(ConfigError(format!(
                "database_url {url:?} names no file: use sqlite://PATH (for example sqlite://tessera.db) or postgres://…"
            )));
        }
        Ok(())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "database_url {:?}: use sqlite://PATH or postgres://…",
            tessera_store::redact(url)
        )))
    }
}

/// RFC 8414 §2: the issuer is an https URL with no query or fragment. Plain HTTP
/// is allowed only on a loopback host, for development.
fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let url =
        url::Url::parse(issuer).map_err(|e| ConfigError(format!("issuer {issuer:?}: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError("issuer must have no query or fragment".into()));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if tessera_core::registration::is_loopback_host(&url) => Ok(()),
        "http" => Err(ConfigError(format!(
            "issuer {issuer:?} must use https (plain http only on localhost or a loopback address)"
        ))),
        other => Err(ConfigError(format!("issuer scheme {other:?} is not https"))),
    }
}

fn default_kek_path(database_url: &str) -> PathBuf {
    match database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        Some(rest) => {
            let path = rest.split('?').next().unwrap_or(rest);
            PathBuf::from(format!("{path}.kek"))
        }
        None => PathBuf::from("tessera.kek"),
    }
}

fn write_secret_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| ConfigError(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_parts(FileConfig::default(), move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_follow_the_listen_address() {
        let config = from_env(&[("TESSERA_LISTEN", "127.0.0.1:9999")]).expect("valid");
        assert_eq!(config.settings.issuer, "http://127.0.0.1:9999");
        assert_eq!(config.database_url, "sqlite://tessera.db");
        assert!(
            matches!(config.kek, KekSource::DefaultFile(ref p) if p == Path::new("tessera.db.kek"))
        );
        assert_eq!(config.settings.app_access_token_ttl, 3600);
    }

    #[test]
    fn plain_http_issuers_are_refused_off_loopback() {
        assert!(from_env(&[("TESSERA_ISSUER", "http://auth.example.com")]).is_err());
        assert!(from_env(&[("TESSERA_ISSUER", "http://localhost:8080")]).is_ok());
        assert!(from_env(&[("TESSERA_ISSUER", "http://[::1]:8080")]).is_ok());
        assert!(from_env(&[("TESSERA_ISSUER", "https://auth.example.com")]).is_ok());
        assert!(from_env(&[("TESSERA_ISSUER", "https://auth.example.com/?x=1")]).is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from_env(&[("TESSERA_APP_ACCESS_TOKEN_TTL", "soon")]).expect_err("invalid");
        assert!(err.0.contains("TESSERA_APP_ACCESS_TOKEN_TTL"));
        assert!(from_env(&[("TESSERA_SIGNING_ALG", "none")]).is_err());
        assert!(from_env(&[("TESSERA_SIGNING_ALG", "HS256")]).is_err());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn tls_takes_a_certificate_and_a_key_and_makes_the_issuer_https() {
        let config = from_env(&[
            ("TESSERA_TLS_CERT", "/etc/tessera/cert.pem"),
            ("TESSERA_TLS_KEY", "/etc/tessera/key.pem"),
        ])
        .unwrap();
        assert_eq!(
            config.tls,
            Some(crate::tls::TlsFiles {
                cert: "/etc/tessera/cert.pem".into(),
                key: "/etc/tessera/key.pem".into(),
            })
        );
        assert_eq!(config.settings.issuer, "https://127.0.0.1:8080");
        assert_eq!(from_env(&[]).unwrap().tls, None);
        let err = from_env(&[("TESSERA_TLS_CERT", "/etc/tessera/cert.pem")]).unwrap_err();
        assert!(err.0.contains("tls_key"), "{}", err.0);
        // The issuer rule stays: https, except on a loopback host.
        assert!(
            from_env(&[
                ("TESSERA_TLS_CERT", "c.pem"),
                ("TESSERA_TLS_KEY", "k.pem"),
                ("TESSERA_ISSUER", "http://auth.example.com"),
            ])
            .is_err()
        );
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn rate_limits_are_off_unless_set_and_zero_is_off() {
        let config = from_env(&[]).unwrap();
        assert_eq!(config.rate_limits, RateLimits::default());
        assert_eq!(config.settings.token_rate_limit, None);
        let config = from_env(&[
            ("TESSERA_TOKEN_RATE_LIMIT", "50"),
            ("TESSERA_LOGIN_RATE_LIMIT", "0"),
            ("TESSERA_DEVICE_RATE_LIMIT", "6"),
            ("TESSERA_REGISTRATION_RATE_LIMIT", "20"),
        ])
        .unwrap();
        assert_eq!(config.settings.token_rate_limit, NonZeroU32::new(50));
        assert_eq!(config.rate_limits.login_per_minute, None);
        assert_eq!(
            config.rate_limits.device_entry_per_minute,
            NonZeroU32::new(6)
        );
        assert_eq!(
            config.rate_limits.registration_per_hour,
            NonZeroU32::new(20)
        );
        assert!(from_env(&[("TESSERA_TOKEN_RATE_LIMIT", "-1")]).is_err());
        assert!(from_env(&[("TESSERA_OPEN_REGISTRATION_PER_HOUR", "0")]).is_err());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn trusted_proxies_come_as_a_list_or_a_comma_separated_string() {
        let peer: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let forwarded = {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
            headers
        };
        assert_eq!(
            from_env(&[])
                .unwrap()
                .trusted_proxies
                .resolve(peer, &forwarded),
            peer,
            "no proxy is trusted by default"
        );
        let config = from_env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(
            config.trusted_proxies.resolve(peer, &forwarded).to_string(),
            "198.51.100.7"
        );
        let file: FileConfig =
            toml::from_str("trusted_proxies = [\"10.0.0.0/8\"]\nforwarded_header = \"forwarded\"")
                .unwrap();
        let config = Config::from_parts(file, |_| None).unwrap();
        assert_eq!(
            config.trusted_proxies.resolve(peer, &forwarded),
            peer,
            "only the configured header is read"
        );
        let err = from_env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8, proxy")]).unwrap_err();
        assert!(err.0.contains("trusted_proxies"), "{}", err.0);
        assert!(from_env(&[("TESSERA_FORWARDED_HEADER", "x-real-ip")]).is_err());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_proxy_protocol_is_expected_from_trusted_proxies_only() {
        let err = from_env(&[("TESSERA_PROXY_PROTOCOL", "true")]).unwrap_err();
        assert!(err.0.contains("needs trusted_proxies"), "{}", err.0);
        let config = from_env(&[
            ("TESSERA_PROXY_PROTOCOL", "true"),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8"),
        ])
        .unwrap();
        let proxies = &config.trusted_proxies;
        assert!(proxies.expects_proxy_header("10.1.2.3".parse().unwrap()));
        assert!(proxies.expects_proxy_header("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!proxies.expects_proxy_header("192.0.2.1".parse().unwrap()));
        let off = from_env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8")]).unwrap();
        assert!(
            !off.trusted_proxies
                .expects_proxy_header("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn the_refresh_reuse_grace_is_bounded() {
        assert!(from_env(&[("TESSERA_REFRESH_REUSE_GRACE", "60")]).is_ok());
        assert!(from_env(&[("TESSERA_REFRESH_REUSE_GRACE", "61")]).is_err());
        assert!(from_env(&[("TESSERA_REFRESH_REUSE_GRACE", "-1")]).is_err());
    }

    #[test]
    fn database_urls_name_a_file_or_a_server() {
        for bad in [
            "sqlite://",
            "sqlite:",
            "sqlite://?mode=rwc",
            "mysql://db/x",
            "tessera.db",
        ] {
            let err = from_env(&[("TESSERA_DATABASE_URL", bad)]).expect_err(bad);
            assert!(err.0.contains("sqlite://PATH"), "{bad}: {}", err.0);
        }
        for good in [
            "sqlite://tessera.db",
            "sqlite:///var/lib/tessera/tessera.db",
            "sqlite::memory:",
            "postgres://tessera@127.0.0.1/tessera",
        ] {
            assert!(
                from_env(&[("TESSERA_DATABASE_URL", good)]).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn connection_limits_have_safe_defaults_and_are_bounded() {
        let config = from_env(&[]).expect("valid");
        let limits = config.connections;
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(30));
        assert_eq!(limits.keep_alive_timeout, Duration::from_secs(60));
        assert!((1..=10_000).contains(&limits.max_connections));

        let config = from_env(&[
            ("TESSERA_HEADER_READ_TIMEOUT", "2"),
            ("TESSERA_BODY_READ_TIMEOUT", "3"),
            ("TESSERA_KEEP_ALIVE_TIMEOUT", "4"),
            ("TESSERA_MAX_CONNECTIONS", "5"),
            ("TESSERA_SHUTDOWN_GRACE", "6"),
        ])
        .expect("valid");
        assert_eq!(
            config.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                body_read_timeout: Duration::from_secs(3),
                keep_alive_timeout: Duration::from_secs(4),
                max_connections: 5,
                shutdown_grace: Duration::from_secs(6),
            }
        );
        // No timeout can be switched off, nor the cap.
        for (name, value) in [
            ("TESSERA_HEADER_READ_TIMEOUT", "0"),
            ("TESSERA_BODY_READ_TIMEOUT", "-1"),
            ("TESSERA_KEEP_ALIVE_TIMEOUT", "3601"),
            ("TESSERA_MAX_CONNECTIONS", "0"),
            ("TESSERA_MAX_CONNECTIONS", "1000001"),
        ] {
            let err = from_env(&[(name, value)]).expect_err(value);
            let key = name.trim_start_matches("TESSERA_").to_lowercase();
            assert!(err.0.contains(&key), "{name}={value}: {}", err.0);
        }
    }

    #[test]
    fn file_keys_are_checked() {
        assert!(toml::from_str::<FileConfig>("listne = \"x\"").is_err());
        let file: FileConfig = toml::from_str("app_access_token_ttl = 60").expect("valid");
        let config = Config::from_parts(file, |_| None).expect("valid");
        assert_eq!(config.settings.app_access_token_ttl, 60);
    }
}

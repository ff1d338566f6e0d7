//! The `tessera` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tessera: an OAuth 2.0 authorization server and OpenID Connect provider.
///
/// Every command reads the same configuration as the server (the file given with
/// --config, then TESSERA_* environment variables), so it works on the same
/// database. Changes take effect in a running server at once.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables TESSERA_* override it.
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (creates the database and the first signing key if needed).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Manage client applications.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage resources (APIs that accept tokens).
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users (people who sign in with a password).
    #[command(subcommand)]
    User(UserCommand),
    /// Show and withdraw what users approved for clients.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Manage the JWT issuers whose assertions (jwt-bearer) and tokens (token
    /// exchange) are accepted.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Manage the SAML 2.0 identity providers whose signed assertions are
    /// accepted (saml2-bearer).
    #[command(subcommand, name = "saml-idp")]
    SamlIdp(SamlIdpCommand),
    /// Manage initial access tokens, which let a developer register clients
    /// at the registration endpoint (RFC 7591).
    #[command(subcommand, name = "registration-token")]
    RegistrationToken(RegistrationTokenCommand),
    /// Manage admin tokens: bearer credentials for the admin API (`/admin`),
    /// which does what this CLI does.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// Create a token and print it once (only its digest is stored). Each
    /// registration with it creates a client, until it expires or is revoked.
    Create {
        /// Seconds the token is good for; 0 for until revoked.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        #[command(flatten)]
        json: Json,
    },
    /// List tokens (never their values).
    List(Json),
    /// Revoke a token at once; the clients registered with it stay.
    Revoke {
        /// The token's ID, as `create` and `list` print it.
        id: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create a token and print it once (only its digest is stored). It
    /// authenticates admin API requests until it expires or is revoked.
    Create {
        /// Seconds the token is good for; 0 for until revoked.
        #[arg(long, default_value_t = 30 * 86_400)]
        ttl: u64,
        #[command(flatten)]
        json: Json,
    },
    /// List tokens (never their values).
    List(Json),
    /// Revoke a token at once.
    Revoke {
        /// The token's ID, as `create` and `list` print it.
        id: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum SamlIdpCommand {
    /// Trust an identity provider: assertions whose Issuer is ID, signed with
    /// this certificate's key, are accepted by the saml2-bearer grant. Their
    /// NameID names a user here (username or email).
    Add {
        /// The identity provider's entity ID, exactly as its assertions'
        /// Issuer carries it.
        #[arg(long, allow_hyphen_values = true)]
        entity_id: String,
        /// The certificate it signs with (PEM; RSA of 2048 bits or more, or EC).
        #[arg(long, value_name = "PEMFILE")]
        certificate: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// List identity providers.
    List(Json),
    /// Stop trusting an identity provider; its assertions are refused at once.
    Remove {
        #[arg(long, allow_hyphen_values = true)]
        entity_id: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Trust an issuer: JWTs whose `iss` is ISS and that one of its keys signed
    /// are accepted as jwt-bearer assertions and as token exchange subject and
    /// actor tokens. Their `sub` names a user here (username or email).
    Add {
        /// The issuer identifier, exactly as its JWTs carry it in `iss`.
        #[arg(long, allow_hyphen_values = true)]
        issuer: String,
        /// A file holding the issuer's public keys as a JWK Set.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "jwks_uri",
            conflicts_with = "jwks_uri"
        )]
        jwks: Option<PathBuf>,
        /// Where the issuer publishes its JWK Set (https, or http on a loopback
        /// host); fetched when needed and cached, as tessera-guard caches keys.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List trusted issuers.
    List(Json),
    /// Stop trusting an issuer; its JWTs are refused at once.
    Remove {
        #[arg(long, allow_hyphen_values = true)]
        issuer: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Prints its ID and, for clients with a secret, the
    /// secret (shown once; a digest is stored, and for client_secret_jwt a copy
    /// sealed with the key-encryption key).
    Create(Box<ClientCreate>),
    /// List clients.
    List(Json),
    /// Show one client.
    Show {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Print ready-to-run requests for each grant the client may use: curl
    /// commands with its ID, this server's endpoints and a fresh PKCE pair,
    /// reading secrets and tokens from shell variables it names.
    Try {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Change a client's settings; the same rules as `client create` apply to
    /// the result. Takes effect at once, also for tokens asked for afterwards
    /// with existing grants.
    Update(Box<ClientUpdate>),
    /// Delete a client and its reference tokens.
    Delete {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        json: Json,
    },
    /// Replace a client's secret; the old one stops working at once.
    /// private_key_jwt clients have none: they change keys with `client update
    /// --jwks` or at their jwks_uri.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    /// A name people recognise (shown on consent pages).
    #[arg(long)]
    pub name: String,
    /// The client ID; generated if omitted. Letters, digits and - . _ ~
    #[arg(long, allow_hyphen_values = true)]
    pub id: Option<String>,
    /// A public client (no secret): native and browser apps.
    #[arg(long)]
    pub public: bool,
    /// What sort of application it is: web (confidential, code flow), spa
    /// and native (public, code flow with PKCE; only native may use
    /// private-use-scheme redirect URIs), service (confidential, client
    /// credentials, no redirects) or device (public, device grant). Sets the
    /// grants when no --grant is given, and whether the client gets a secret.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// A grant the client may use: an RFC grant_type (authorization_code,
    /// client_credentials, refresh_token, password, the URNs or their last part,
    /// e.g. device_code) or `implicit`. Repeatable. None by default.
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    /// An exact redirect URI. Repeatable; the code and implicit grants need
    /// one. https, http on a loopback host (127.0.0.1, [::1], localhost; any
    /// port matches for the IP literals, RFC 8252 §7.3), or a private-use
    /// scheme in reverse domain order (com.example.app:/cb). No fragment, no
    /// wildcards.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// A URI RP-initiated logout may return to. Repeatable.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Let this confidential client use the code flow without PKCE (not
    /// recommended; public clients always need PKCE).
    #[arg(long)]
    pub no_pkce: bool,
    /// Algorithm of this client's ID tokens (e.g. RS256); the server's signing_alg
    /// by default.
    #[arg(long, value_name = "ALG")]
    pub id_token_alg: Option<String>,
    /// Scopes the client may request, space-separated.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// An audience (resource URI) the client may request tokens for. Repeatable.
    #[arg(long = "audience", value_name = "URI")]
    pub audiences: Vec<String>,
    /// Access token format for this client: jwt or reference.
    #[arg(long, value_name = "FORMAT")]
    pub token_format: Option<String>,
    /// client_secret_basic or client_secret_post to allow only that method (both
    /// are accepted by default); client_secret_jwt for JWTs signed (HS256) with
    /// the secret; private_key_jwt for JWTs signed with the client's own key,
    /// registered with --jwks or --jwks-uri (the client then has no secret);
    /// none for public clients.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// For private_key_jwt: a file holding the client's public keys as a JWK
    /// Set ({"keys": [...]}; RS256, PS256, ES256 or EdDSA keys, no private
    /// parts).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks: Option<PathBuf>,
    /// For private_key_jwt: where the client publishes its JWK Set (https, or
    /// http on a loopback host). Fetched when needed and cached.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Lifetime of this client's access tokens in seconds (server default otherwise).
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<i64>,
    /// Which tokens the client may introspect: own (the default, RFC 7662 §4:
    /// tokens issued to it or for one of its audiences) or any (for a trusted
    /// gateway).
    #[arg(long, default_value = "own", value_name = "POLICY")]
    pub introspection: String,
    /// Token exchange without an actor token issues this client tokens with no
    /// `act` claim: impersonation (RFC 8693 §1.1). Off by default: exchanged
    /// tokens name the client as their actor.
    #[arg(long)]
    pub impersonation: bool,
    /// The audience (resource URI) of an API this client is the service
    /// behind: people's access tokens for it may be traded on their behalf
    /// (jwt-bearer with requested_token_use=on_behalf_of). Repeatable.
    #[arg(long = "serves", value_name = "URI")]
    pub serves: Vec<String>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Args)]
pub struct ClientUpdate {
    /// The client to change.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// A new display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Allow a grant (as for `client create --grant`). Repeatable.
    #[arg(long = "add-grant", value_name = "GRANT")]
    pub add_grants: Vec<String>,
    /// Withdraw a grant. Repeatable.
    #[arg(long = "remove-grant", value_name = "GRANT")]
    pub remove_grants: Vec<String>,
    /// Register another redirect URI. Repeatable.
    #[arg(long = "add-redirect-uri", value_name = "URI")]
    pub add_redirect_uris: Vec<String>,
    /// Remove a redirect URI. Repeatable.
    #[arg(long = "remove-redirect-uri", value_name = "URI")]
    pub remove_redirect_uris: Vec<String>,
    /// Register another post-logout redirect URI. Repeatable.
    #[arg(long = "add-post-logout-redirect-uri", value_name = "URI")]
    pub add_post_logout_redirect_uris: Vec<String>,
    /// Remove a post-logout redirect URI. Repeatable.
    #[arg(long = "remove-post-logout-redirect-uri", value_name = "URI")]
    pub remove_post_logout_redirect_uris: Vec<String>,
    /// Replace the scopes the client may request, space-separated ("" for none).
    #[arg(long)]
    pub scope: Option<String>,
    /// Allow more scopes, space-separated. Repeatable.
    #[arg(long = "add-scope", value_name = "SCOPES")]
    pub add_scopes: Vec<String>,
    /// Withdraw scopes, space-separated. Repeatable.
    #[arg(long = "remove-scope", value_name = "SCOPES")]
    pub remove_scopes: Vec<String>,
    /// Allow an audience (resource URI). Repeatable.
    #[arg(long = "add-audience", value_name = "URI")]
    pub add_audiences: Vec<String>,
    /// Withdraw an audience. Repeatable.
    #[arg(long = "remove-audience", value_name = "URI")]
    pub remove_audiences: Vec<String>,
    /// jwt, reference, or default (the server's, or the resource's).
    #[arg(long, value_name = "FORMAT")]
    pub token_format: Option<String>,
    /// Lifetime of access tokens in seconds, or default.
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<String>,
    /// client_secret_basic, client_secret_post, client_secret_jwt or
    /// private_key_jwt to allow only that method, or any for the first two.
    /// A client's type (public or confidential) cannot change. A client that
    /// moves to client_secret_jwt, or from private_key_jwt to a secret, gets a
    /// new secret (printed once); one that moves to private_key_jwt needs
    /// --jwks or --jwks-uri and loses its secret.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// Replace a private_key_jwt client's keys with the JWK Set in this file.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks: Option<PathBuf>,
    /// Replace a private_key_jwt client's keys with those it publishes here.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Which tokens the client may introspect: any or own.
    #[arg(long, value_name = "POLICY")]
    pub introspection: Option<String>,
    /// Let this confidential client use the code flow without PKCE.
    #[arg(long, conflicts_with = "require_pkce")]
    pub no_pkce: bool,
    /// Require PKCE in the code flow again.
    #[arg(long)]
    pub require_pkce: bool,
    /// Algorithm of this client's ID tokens, or default.
    #[arg(long, value_name = "ALG")]
    pub id_token_alg: Option<String>,
    /// Allow token exchange without an actor token to issue tokens with no
    /// `act` claim (impersonation).
    #[arg(long, conflicts_with = "no_impersonation")]
    pub impersonation: bool,
    /// Exchanged tokens name the client as their actor again (delegation).
    #[arg(long)]
    pub no_impersonation: bool,
    /// Add an API audience this client is the service behind (on-behalf-of).
    /// Repeatable.
    #[arg(long = "add-serves", value_name = "URI")]
    pub add_serves: Vec<String>,
    /// Remove such an audience. Repeatable.
    #[arg(long = "remove-serves", value_name = "URI")]
    pub remove_serves: Vec<String>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a resource (an API) by its audience URI.
    Create {
        /// The resource's audience: an absolute URI (RFC 8707).
        #[arg(long)]
        audience: String,
        /// Scopes the API defines, space-separated; tokens for it carry only these.
        #[arg(long, default_value = "")]
        scope: String,
        /// Force this format for every token of the API: jwt or reference.
        #[arg(long, value_name = "FORMAT")]
        token_format: Option<String>,
        /// Which tokens the API accepts: user, app or both (default).
        #[arg(long, default_value = "both")]
        accepts: String,
        /// Sign the API's JWT access tokens with this algorithm whatever the
        /// server's signing_alg: ES256, RS256 (for libraries that verify
        /// nothing else), PS256, EdDSA, or HS256 with a secret shared with the
        /// API alone (printed once).
        #[arg(long, value_name = "ALG")]
        signing_alg: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// List resources.
    List(Json),
    /// Change a resource's settings; the ones not given stay as they are.
    /// Changing to HS256 prints a new shared secret once.
    Update {
        /// The resource's audience.
        audience: String,
        /// Scopes the API defines, space-separated (replaces the list; "" for none).
        #[arg(long)]
        scope: Option<String>,
        /// jwt, reference, or default (the client's or the server's).
        #[arg(long, value_name = "FORMAT")]
        token_format: Option<String>,
        /// Which tokens the API accepts: user, app or both.
        #[arg(long)]
        accepts: Option<String>,
        /// ES256, RS256, PS256, EdDSA, HS256, or default (the server's signing_alg).
        #[arg(long, value_name = "ALG")]
        signing_alg: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Replace an HS256 resource's shared secret and print the new one once.
    /// Tokens signed with the old secret are refused here at once; give the
    /// new secret to the API at the same time.
    RotateSecret {
        /// The resource's audience.
        audience: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their status (next, active, retired, expired, revoked).
    List(Json),
    /// Add a new signing key. It is published at once and signs after the
    /// pre-publication delay (key_prepublish), or within 2 s with --now.
    Rotate {
        /// ES256, RS256, PS256 or EdDSA. Default: the configured signing_alg.
        #[arg(long)]
        alg: Option<String>,
        /// Sign with the new key in 2 s, once every instance publishes it
        /// (emergency rotation after a compromise; then withdraw the old key
        /// with `keys revoke`).
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Withdraw a key at once (after a compromise): it leaves the JWKS, and
    /// tokens it signed stop being accepted by introspection, /userinfo and
    /// refresh, on every instance. Rotate with --now first, so that a new key
    /// already signs.
    Revoke {
        /// The key's ID (`kid`), as `keys list` shows it.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Withdraw the key that signs its algorithm now, although no other key
        /// then signs it until the next rotation.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Decode a token, verify it against this server's keys and state, and
    /// explain every claim.
    Inspect {
        /// The access token (JWT or reference token).
        #[arg(allow_hyphen_values = true)]
        token: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Prints the user's subject identifier (`sub`).
    Create {
        /// What the person types to sign in: 1 to 64 characters, no spaces; unique
        /// case-insensitively, and not another user's email.
        #[arg(long)]
        username: String,
        /// An email address, also accepted at sign-in; unique case-insensitively.
        #[arg(long)]
        email: Option<String>,
        /// The full name (the `name` claim).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from stdin (the only way to give one: the command
        /// line is visible to other processes). On a terminal it is asked for
        /// twice, without echo; from a pipe or a file, the first line is the
        /// password.
        #[arg(long)]
        password_stdin: bool,
        /// May use the developer portal when `portal_access = "developers"`.
        #[arg(long)]
        developer: bool,
        /// Sees and manages every client in the developer portal.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        json: Json,
    },
    /// List users (never their password hashes).
    List(Json),
    /// Delete a user with their sessions, consents, codes and refresh tokens.
    Delete {
        /// The username or email.
        #[arg(value_name = "NAME", allow_hyphen_values = true)]
        login: String,
        #[command(flatten)]
        json: Json,
    },
    /// Replace a user's password; their login sessions end at once, and their
    /// tokens are revoked unless --keep-tokens is given.
    SetPassword {
        /// The username or email.
        #[arg(value_name = "NAME", allow_hyphen_values = true)]
        login: String,
        /// Read the new password from stdin: on a terminal it is asked for
        /// twice, without echo; from a pipe or a file, the first line is the
        /// password.
        #[arg(long)]
        password_stdin: bool,
        /// Keep the user's refresh and access tokens. By default they are
        /// revoked with the old password: whoever knew it may hold some.
        #[arg(long)]
        keep_tokens: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Give a user the developer role (the portal, when `portal_access =
    /// "developers"`), or take it away with --revoke.
    SetDeveloper {
        /// The username or email.
        #[arg(value_name = "NAME", allow_hyphen_values = true)]
        login: String,
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Give a user the admin role (every client in the portal), or take it
    /// away with --revoke.
    SetAdmin {
        /// The username or email.
        #[arg(value_name = "NAME", allow_hyphen_values = true)]
        login: String,
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// List the scopes a user approved, per client.
    List {
        /// The user's username or email.
        #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
        user: String,
        /// Only this client.
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Withdraw a user's consent for one client (or every client) and revoke the
    /// refresh tokens the user gave it; the next authorization asks again.
    Revoke {
        /// The user's username or email.
        #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
        user: String,
        /// Only this client; all clients if omitted.
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}

//! A command-line client of the authorization code grant with PKCE, signing a
//! person in the way RFC 8252 wants native apps to: in the system browser, with
//! the answer coming back to a listener on the loopback interface.
//!
//! Register it once as a public client; the redirect URI is registered without
//! a port because a loopback redirect URI matches on any port (RFC 8252 §7.3):
//!
//! ```text
//! tessera client create --name "My CLI" --public --grant authorization_code \
//!     --grant refresh_token --redirect-uri http://127.0.0.1/callback \
//!     --scope "openid profile email offline_access" --json
//! cargo run -p tessera-server --example code_login -- \
//!     --issuer http://127.0.0.1:8080 --client-id CLIENT_ID --scope "openid profile"
//! ```
//!
//! It listens on 127.0.0.1 (a random port unless `--port`), prints the address
//! to open on stderr (and opens a browser where one plausibly exists), takes
//! exactly one callback, exchanges the code, verifies the ID token against the
//! server's JWKS, asks `/userinfo`, and prints the tokens, the ID token's claims
//! and the userinfo answer as JSON on stdout.

use std::collections::BTreeMap;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Parser)]
#[command(about = "Sign in through the browser with the OAuth authorization code grant and PKCE")]
struct Args {
    /// The Tessera issuer URL, exactly as the server's `issuer` setting.
    #[arg(long)]
    issuer: String,
    /// The public client registered with `--grant authorization_code` and the
    /// redirect URI `http://127.0.0.1/callback`.
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
    /// Scopes to ask for; without `openid` there is no ID token and no userinfo.
    #[arg(long, default_value = "openid profile")]
    scope: String,
    /// The loopback port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seconds to wait for the browser to come back.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Only print the address; do not try to open a browser.
    #[arg(long)]
    no_browser: bool,
}

/// Clock difference accepted on the ID token's `exp`.
const LEEWAY: i64 = 30;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(result) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("code_login: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Value, String> {
    let http = reqwest::Client::new();
    let metadata = Metadata::discover(&http, &args.issuer).await?;

    // RFC 8252 §7.3 and §8.3: the IP literal, not `localhost`, which could
    // resolve elsewhere; only this machine can connect.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");

    let secrets = Secrets::new()?;
    let url = authorize_url(&metadata, &args, &redirect_uri, &secrets)?;
    eprintln!("Open this address in a browser to sign in:\n\n    {url}\n");
    if !args.no_browser {
        open_browser(&url);
    }

    let expected = Expected {
        state: secrets.state.clone(),
        issuer: metadata.issuer.clone(),
        // RFC 9207 §2.4: a server that says it sends `iss` must send it.
        iss_required: metadata.authorization_response_iss_parameter_supported,
    };
    let code = wait_for_callback(listener, expected, Duration::from_secs(args.timeout)).await?;

    let tokens = exchange(&http, &metadata, &args, &code, &redirect_uri, &secrets).await?;
    let access_token = tokens["access_token"]
        .as_str()
        .ok_or("the token response has no access_token")?;
    let openid = args.scope.split(' ').any(|s| s == "openid");
    let (claims, userinfo) = if openid {
        let id_token = tokens["id_token"]
            .as_str()
            .ok_or("the scope has openid but the token response has no id_token")?;
        let claims =
            verify_id_token(&http, &metadata, &args.client_id, &secrets.nonce, id_token).await?;
        let userinfo = userinfo(&http, &metadata, access_token, &claims).await?;
        (claims, userinfo)
    } else {
        (Value::Null, Value::Null)
    };
    Ok(json!({
        "tokens": tokens,
        "id_token_claims": claims,
        "userinfo": userinfo,
    }))
}

/// The parts of the server's metadata this client uses.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl Metadata {
    async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let metadata: Metadata = serde_json::from_value(get_json(http.get(&url)).await?)
            .map_err(|e| format!("the metadata at {url} is incomplete: {e}"))?;
        // OIDC Discovery §4.3: the issuer must be the one we asked, exactly,
        // or an impostor's metadata could send us to its own endpoints.
        if metadata.issuer != issuer {
            return Err(format!(
                "the metadata names issuer {:?}, not {issuer:?}",
                metadata.issuer
            ));
        }
        Ok(metadata)
    }
}

/// The values that bind the callback and the tokens to this one sign-in.
struct Secrets {
    /// Ties the callback to this request (RFC 6749 §10.12).
    state: String,
    /// Ties the ID token to this request (OIDC Core §3.1.2.1).
    nonce: String,
    /// The PKCE secret (RFC 7636 §4.1); only its hash leaves before the exchange.
    verifier: String,
}

impl Secrets {
    fn new() -> Result<Secrets, String> {
        Ok(Secrets {
            state: random_token()?,
            nonce: random_token()?,
            verifier: random_token()?,
        })
    }

    /// `S256`: base64url(SHA-256(verifier)) (RFC 7636 §4.2).
    fn challenge(&self) -> String {
        tessera_jose::b64(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            self.verifier.as_bytes(),
        ))
    }
}

/// 256 random bits, base64url: 43 characters, within the verifier's alphabet.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "the random generator failed")?;
    Ok(tessera_jose::b64(bytes))
}

fn authorize_url(
    metadata: &Metadata,
    args: &Args,
    redirect_uri: &str,
    secrets: &Secrets,
) -> Result<String, String> {
    let mut url = url::Url::parse(&metadata.authorization_endpoint)
        .map_err(|e| format!("the authorization_endpoint is not a URL: {e}"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &args.scope)
        .append_pair("state", &secrets.state)
        .append_pair("nonce", &secrets.nonce)
        .append_pair("code_challenge", &secrets.challenge())
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Opens the system browser where one plausibly exists; anywhere else the
/// printed address is enough, so failing to open one is not an error.
fn open_browser(url: &str) {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(unix) && has_display {
        "xdg-open"
    } else {
        return;
    };
    let spawned = std::process::Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        // Reaped in the background so that it does not linger as a zombie.
        std::thread::spawn(move || child.wait());
    }
}

/// What the callback must carry to be this sign-in's answer.
struct Expected {
    state: String,
    issuer: String,
    iss_required: bool,
}

/// Serves `/callback` until the first request to it, answers the browser with
/// a short page, and returns that request's code.
async fn wait_for_callback(
    listener: tokio::net::TcpListener,
    expected: Expected,
    timeout: Duration,
) -> Result<String, String> {
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let state = Arc::new(Callback {
        expected,
        outcome: Mutex::new(Some(outcome_tx)),
    });
    let app = Router::new()
        .route("/callback", get(callback))
        .with_state(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    let outcome = match tokio::time::timeout(timeout, outcome_rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err("the callback listener stopped".to_owned()),
        Err(_) => Err(format!(
            "the browser did not come back within {} s; start again",
            timeout.as_secs()
        )),
    };
    // Let the page reach the browser before the process goes on (or exits).
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    outcome
}

/// The callback listener's state: what to expect, and where the one answer goes.
struct Callback {
    expected: Expected,
    /// Taken by the first request, so that exactly one callback counts: a
    /// second one, even with the right state, finds it empty.
    outcome: Mutex<Option<oneshot::Sender<Result<String, String>>>>,
}

/// `GET /callback`: passes the outcome on and tells the person how it went.
async fn callback(
    State(callback): State<Arc<Callback>>,
    RawQuery(query): RawQuery,
) -> (StatusCode, Html<String>) {
    let Some(sender) = callback.outcome.lock().ok().and_then(|mut s| s.take()) else {
        return (
            StatusCode::CONFLICT,
            Html(page("This sign-in is already finished.")),
        );
    };
    let outcome = callback_code(query.as_deref().unwrap_or(""), &callback.expected);
    let answer = match &outcome {
        Ok(_) => (
            StatusCode::OK,
            Html(page(
                "Signed in. You can close this window; the rest happens in the terminal.",
            )),
        ),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            Html(page(&format!("Signing in failed: {message}"))),
        ),
    };
    let _ = sender.send(outcome);
    answer
}

/// Checks an authorization response (RFC 6749 §4.1.2) and returns its code.
fn callback_code(query: &str, expected: &Expected) -> Result<String, String> {
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if params.insert(name.clone(), value).is_some() {
            return Err(format!("the callback repeats the parameter {name}"));
        }
    }
    // The state first: until it matches, nothing else in the callback can be
    // trusted to belong to this sign-in, not even an error.
    match params.get("state") {
        Some(state) if *state == expected.state => {}
        Some(_) => {
            return Err(
                "the callback's state does not match this sign-in (a stale or forged \
                 response); no code was exchanged"
                    .into(),
            );
        }
        None => return Err("the callback carries no state; no code was exchanged".into()),
    }
    // RFC 9207 §2.4: the answer must come from the issuer we sent the person to
    // (a defence against mix-up attacks).
    match params.get("iss") {
        Some(iss) if *iss != expected.issuer => {
            return Err(format!(
                "the callback comes from issuer {iss:?}, not {:?}",
                expected.issuer
            ));
        }
        None if expected.iss_required => {
            return Err("the callback carries no iss although the server sends one".into());
        }
        _ => {}
    }
    if let Some(error) = params.get("error") {
        return Err(match params.get("error_description") {
            Some(description) => format!("the server answered {error}: {description}"),
            None => format!("the server answered {error}"),
        });
    }
    params
        .get("code")
        .map(|code| code.clone().into_owned())
        .ok_or_else(|| "the callback carries neither a code nor an error".to_owned())
}

/// A minimal page for the browser; `message` is escaped, since it can quote
/// what the callback carried.
fn page(message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <title>code_login</title><p>{escaped}</p></html>"
    )
}

/// Redeems the code as a public client: `client_id` in the body and the PKCE
/// verifier instead of a secret (RFC 6749 §4.1.3, RFC 7636 §4.5).
async fn exchange(
    http: &reqwest::Client,
    metadata: &Metadata,
    args: &Args,
    code: &str,
    redirect_uri: &str,
    secrets: &Secrets,
) -> Result<Value, String> {
    let tokens = get_json(http.post(&metadata.token_endpoint).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", args.client_id.as_str()),
        ("code_verifier", secrets.verifier.as_str()),
    ]))
    .await
    .map_err(|e| format!("the token endpoint refused the code: {e}"))?;
    // RFC 6749 §7.1: the token type is case-insensitive.
    match tokens["token_type"].as_str() {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => Ok(tokens),
        other => Err(format!("unexpected token_type {other:?}")),
    }
}

/// Checks the ID token's signature with the server's published key and its
/// claims as OIDC Core §3.1.3.7 lists them; returns the claims.
async fn verify_id_token(
    http: &reqwest::Client,
    metadata: &Metadata,
    client_id: &str,
    nonce: &str,
    id_token: &str,
) -> Result<Value, String> {
    let jwks: tessera_jose::JwkSet =
        serde_json::from_value(get_json(http.get(&metadata.jwks_uri)).await?)
            .map_err(|e| format!("the JWKS does not parse: {e}"))?;
    let jws = tessera_jose::UnverifiedJws::parse(id_token)
        .map_err(|e| format!("the ID token is not a JWS: {e}"))?;
    let kid = jws.kid().ok_or("the ID token names no key (kid)")?;
    let jwk = jwks
        .find(kid)
        .ok_or_else(|| format!("the JWKS has no key {kid:?}"))?;
    // The key fixes the algorithm; the header's `alg` only has to agree.
    let key = tessera_jose::VerifyingKey::from_jwk(jwk)
        .map_err(|e| format!("the key {kid:?} is not usable: {e}"))?;
    let claims: Value = jws
        .verify(&key)
        .map_err(|e| format!("the ID token does not verify: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970")?
        .as_secs();
    check_id_token_claims(
        &claims,
        &metadata.issuer,
        client_id,
        nonce,
        i64::try_from(now).unwrap_or(i64::MAX),
    )?;
    Ok(claims)
}

fn check_id_token_claims(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<(), String> {
    if claims["iss"].as_str() != Some(issuer) {
        return Err(format!(
            "the ID token's iss is {}, not {issuer:?}",
            claims["iss"]
        ));
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(aud) => vec![aud.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err(format!(
            "the ID token is not for this client (aud {})",
            claims["aud"]
        ));
    }
    // With other audiences beside us, azp must name us (OIDC Core §3.1.3.7 4-5).
    let azp = claims["azp"].as_str();
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(client_id) {
        return Err(format!(
            "the ID token's azp is {}, not this client",
            claims["azp"]
        ));
    }
    match claims["exp"].as_i64() {
        Some(exp) if now <= exp + LEEWAY => {}
        Some(exp) => return Err(format!("the ID token expired at {exp} (Unix time)")),
        None => return Err("the ID token has no exp".into()),
    }
    // The nonce is what proves this token was minted for this sign-in and not
    // replayed from another one.
    if claims["nonce"].as_str() != Some(nonce) {
        return Err("the ID token's nonce is not the one sent".into());
    }
    if claims["sub"].as_str().is_none_or(str::is_empty) {
        return Err("the ID token has no sub".into());
    }
    Ok(())
}

/// Asks `/userinfo` with the access token. OIDC Core §5.3.2: its `sub` must be
/// the ID token's, or none of it may be used.
async fn userinfo(
    http: &reqwest::Client,
    metadata: &Metadata,
    access_token: &str,
    claims: &Value,
) -> Result<Value, String> {
    let endpoint = metadata
        .userinfo_endpoint
        .as_deref()
        .ok_or("the server has no userinfo_endpoint")?;
    let info = get_json(http.get(endpoint).bearer_auth(access_token))
        .await
        .map_err(|e| format!("userinfo refused the access token: {e}"))?;
    if info["sub"] != claims["sub"] {
        return Err(format!(
            "userinfo answers for sub {}, the ID token is for {}",
            info["sub"], claims["sub"]
        ));
    }
    Ok(info)
}

async fn get_json(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

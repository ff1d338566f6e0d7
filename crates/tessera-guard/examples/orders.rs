//! A resource server protected by tessera-guard.
//!
//! ```text
//! orders --issuer URL --listen ADDR --audience AUD
//!        [--client-id ID --client-secret SECRET [--introspection-cache-ttl SECONDS]]
//!        [--inventory-url URL]
//! ```
//!
//! Serves `GET /orders`, which needs a Tessera access token for `AUD` with
//! scope `orders.read`. JWT access tokens are verified locally against the
//! issuer's cached JWKS; with client credentials, opaque reference tokens are
//! also accepted, checked at the introspection endpoint. An active answer is
//! reused for `--introspection-cache-ttl` seconds (default 60, never past the
//! token's `exp`): a revoked reference token stays accepted up to that long.
//!
//! With `--inventory-url`, `GET /orders` also asks the `inventory` example
//! for stock on behalf of the user: it trades the user's token for one for
//! inventory at the token endpoint (the jwt-bearer grant with
//! `requested_token_use=on_behalf_of`, authenticated as `--client-id`), and
//! calls inventory with it. The new token keeps the user as `sub` and names
//! this service in `act`, which inventory's answer shows.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_guard::{Authenticated, ClientSecret, GuardLayer, Verifier, bearer_token};

const USAGE: &str = "usage: orders --issuer URL --listen ADDR --audience AUD
              [--client-id ID --client-secret SECRET [--introspection-cache-ttl SECONDS]]
              [--inventory-url URL]";

const HELP: &str = "Serves GET /orders, requiring scope orders.read.

  --issuer URL        Tessera's issuer, exactly as its `issuer` setting spells it
  --listen ADDR       address to serve on, e.g. 127.0.0.1:9000
  --audience AUD      this API's audience; tokens must name it in `aud`
  --client-id ID, --client-secret SECRET
                      credentials for the introspection endpoint; with them,
                      opaque reference tokens are accepted too
  --introspection-cache-ttl SECONDS
                      how long an active introspection answer is reused
                      (default 60, never past the token's exp). A revoked
                      reference token stays accepted up to this long; 0 asks
                      the server on every request. Inactive answers are
                      remembered for 5 s.
  --inventory-url URL the inventory example's base URL: GET /orders then
                      asks it for stock on behalf of the user, with a token
                      traded for the user's (on-behalf-of, as --client-id,
                      which needs the jwt-bearer grant and --serves AUD)";

#[derive(Debug)]
struct Options {
    issuer: String,
    listen: SocketAddr,
    audience: String,
    client: Option<(String, ClientSecret)>,
    /// `None`: the guard's default.
    introspection_cache_ttl: Option<Duration>,
    inventory_url: Option<String>,
}

/// What calling inventory on behalf of the user needs.
#[derive(Debug, Clone)]
struct Inventory {
    http: reqwest::Client,
    token_endpoint: String,
    client_id: String,
    client_secret: String,
    url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orders: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Verifier::builder(&options.issuer, &options.audience);
    let mut inventory = None;
    if let Some((id, secret)) = options.client {
        if let Some(url) = options.inventory_url {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()?;
            let metadata: Value = http
                .get(format!(
                    "{}/.well-known/openid-configuration",
                    options.issuer.trim_end_matches('/')
                ))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token_endpoint = metadata["token_endpoint"]
                .as_str()
                .ok_or("the issuer's metadata has no token_endpoint")?
                .to_owned();
            inventory = Some(Inventory {
                http,
                token_endpoint,
                client_id: id.clone(),
                client_secret: secret.secret().to_owned(),
                url: url.trim_end_matches('/').to_owned(),
            });
        }
        builder = builder.client_credentials(id, secret);
    }
    if let Some(ttl) = options.introspection_cache_ttl {
        builder = builder.introspection_cache_ttl(ttl);
    }
    let verifier = builder.discover().await?;
    let app = app(verifier, inventory)?;
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    eprintln!("orders: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn app(
    verifier: Verifier,
    inventory: Option<Inventory>,
) -> Result<Router, tessera_guard::SetupError> {
    Ok(Router::new()
        .route("/orders", get(list_orders))
        .with_state(inventory.map(Arc::new))
        .layer(GuardLayer::new(verifier).require_scopes(["orders.read"])?))
}

async fn list_orders(
    State(inventory): State<Option<Arc<Inventory>>>,
    headers: HeaderMap,
    Authenticated(token): Authenticated,
) -> Json<Value> {
    let mut body = json!({
        "subject": token.subject(),
        "client_id": token.client_id(),
        "scope": token.scope(),
        "acting": token.actors().map(|a| a.subject()).collect::<Vec<_>>(),
        "orders": [
            {"id": "ord-1001", "item": "tessera tiles", "quantity": 120},
            {"id": "ord-1002", "item": "grout", "quantity": 4},
        ],
    });
    if let (Some(inventory), Ok(user_token)) = (inventory, bearer_token(&headers)) {
        body["stock"] = match inventory.stock_for(user_token).await {
            Ok(stock) => stock,
            Err(error) => json!({ "error": error }),
        };
    }
    Json(body)
}

impl Inventory {
    /// Asks inventory for stock on behalf of the user whose token this is.
    async fn stock_for(&self, user_token: &str) -> Result<Value, String> {
        // On-behalf-of: this service's credentials, the user's token as the
        // assertion, and the scope inventory needs.
        let response = self
            .http
            .post(&self.token_endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("requested_token_use", "on_behalf_of"),
                ("assertion", user_token),
                ("scope", "inventory.read"),
            ])
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let Some(token) = answer["access_token"].as_str() else {
            return Err(format!("token endpoint answered {status}: {answer}"));
        };
        let response = self
            .http
            .get(format!("{}/stock", self.url))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("inventory: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("inventory answered {}", response.status()));
        }
        response.json().await.map_err(|e| format!("inventory: {e}"))
    }
}

/// The options, or `None` when help was asked for.
fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let (mut issuer, mut listen, mut audience, mut id, mut secret) = (None, None, None, None, None);
    let mut cache_ttl = None;
    let mut inventory_url = None;
    let mut args = args;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--issuer" => &mut issuer,
            "--listen" => &mut listen,
            "--audience" => &mut audience,
            "--client-id" => &mut id,
            "--client-secret" => &mut secret,
            "--introspection-cache-ttl" => &mut cache_ttl,
            "--inventory-url" => &mut inventory_url,
            other => return Err(format!("unknown option {other}")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let client = match (id, secret) {
        (Some(id), Some(secret)) => Some((id, ClientSecret::new(secret))),
        (None, None) => None,
        _ => return Err("--client-id and --client-secret go together".into()),
    };
    let introspection_cache_ttl = match cache_ttl {
        Some(_) if client.is_none() => {
            return Err(
                "--introspection-cache-ttl needs --client-id and --client-secret (introspection)"
                    .into(),
            );
        }
        Some(seconds) => Some(Duration::from_secs(seconds.parse().map_err(|_| {
            format!("--introspection-cache-ttl {seconds}: not a whole number of seconds")
        })?)),
        None => None,
    };
    if inventory_url.is_some() && client.is_none() {
        return Err("--inventory-url needs --client-id and --client-secret (on-behalf-of)".into());
    }
    Ok(Some(Options {
        issuer: issuer.ok_or("--issuer is required")?,
        listen: listen
            .parse()
            .map_err(|e| format!("--listen {listen}: {e}"))?,
        audience: audience.ok_or("--audience is required")?,
        client,
        introspection_cache_ttl,
        inventory_url,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Option<Options>, String> {
        parse(args.iter().map(|a| (*a).to_owned()))
    }

    const BASE: [&str; 6] = [
        "--issuer",
        "http://127.0.0.1:8080",
        "--listen",
        "127.0.0.1:9000",
        "--audience",
        "https://orders",
    ];

    #[test]
    fn the_introspection_cache_ttl_is_a_flag() {
        let mut args = BASE.to_vec();
        args.extend(["--client-id", "c", "--client-secret", "s"]);
        let default = parse_args(&args).expect("parse").expect("options");
        assert_eq!(default.introspection_cache_ttl, None);
        args.extend(["--introspection-cache-ttl", "15"]);
        let set = parse_args(&args).expect("parse").expect("options");
        assert_eq!(set.introspection_cache_ttl, Some(Duration::from_secs(15)));

        let mut bad = BASE.to_vec();
        bad.extend(["--client-id", "c", "--client-secret", "s"]);
        bad.extend(["--introspection-cache-ttl", "1.5"]);
        assert!(parse_args(&bad).is_err());
        let mut without_client = BASE.to_vec();
        without_client.extend(["--introspection-cache-ttl", "15"]);
        assert!(parse_args(&without_client).is_err());
    }

    #[test]
    fn help_names_the_flag_and_its_default() {
        assert!(parse_args(&["--help"]).expect("help").is_none());
        assert!(USAGE.contains("--introspection-cache-ttl"));
        assert!(HELP.contains("--introspection-cache-ttl"));
        assert!(HELP.contains("default 60"));
    }
}

//! A resource server protected by tessera-guard.
//!
//! ```text
//! orders --issuer URL --listen ADDR --audience AUD [--client-id ID --client-secret SECRET]
//! ```
//!
//! Serves `GET /orders`, which needs a Tessera access token for `AUD` with
//! scope `orders.read`. JWT access tokens are verified locally against the
//! issuer's cached JWKS; with client credentials, opaque reference tokens are
//! also accepted, checked at the introspection endpoint.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_guard::{Authenticated, ClientSecret, GuardLayer, Verifier};

const USAGE: &str = "usage: orders --issuer URL --listen ADDR --audience AUD [--client-id ID --client-secret SECRET]";

#[derive(Debug)]
struct Options {
    issuer: String,
    listen: SocketAddr,
    audience: String,
    client: Option<(String, ClientSecret)>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
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
    if let Some((id, secret)) = options.client {
        builder = builder.client_credentials(id, secret);
    }
    let verifier = builder.discover().await?;
    let app = app(verifier)?;
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    eprintln!("orders: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn app(verifier: Verifier) -> Result<Router, tessera_guard::SetupError> {
    Ok(Router::new()
        .route("/orders", get(list_orders))
        .layer(GuardLayer::new(verifier).require_scopes(["orders.read"])?))
}

async fn list_orders(Authenticated(token): Authenticated) -> Json<Value> {
    Json(json!({
        "subject": token.subject(),
        "client_id": token.client_id(),
        "scope": token.scope(),
        "acting": token.actors().map(|a| a.subject()).collect::<Vec<_>>(),
        "orders": [
            {"id": "ord-1001", "item": "tessera tiles", "quantity": 120},
            {"id": "ord-1002", "item": "grout", "quantity": 4},
        ],
    }))
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut issuer, mut listen, mut audience, mut id, mut secret) = (None, None, None, None, None);
    let mut args = args;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err("Serves GET /orders, requiring scope orders.read.".into());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--issuer" => &mut issuer,
            "--listen" => &mut listen,
            "--audience" => &mut audience,
            "--client-id" => &mut id,
            "--client-secret" => &mut secret,
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
    Ok(Options {
        issuer: issuer.ok_or("--issuer is required")?,
        listen: listen
            .parse()
            .map_err(|e| format!("--listen {listen}: {e}"))?,
        audience: audience.ok_or("--audience is required")?,
        client,
    })
}

//! The second service of the delegation example: the `orders` service calls it
//! on behalf of the user (on-behalf-of), and it shows who is calling.
//!
//! ```text
//! inventory --issuer URL --listen ADDR --audience AUD
//! ```
//!
//! Serves `GET /stock`, which needs a Tessera access token for `AUD` with
//! scope `inventory.read`. The answer names the user (`sub`), the client the
//! token was issued to, and the actor chain (`act`, RFC 8693 §4.1): the
//! services that act for the user, the current one first.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_guard::{Actor, Authenticated, GuardLayer, Verifier};

const USAGE: &str = "usage: inventory --issuer URL --listen ADDR --audience AUD";

const HELP: &str = "Serves GET /stock, requiring scope inventory.read.

  --issuer URL        Tessera's issuer, exactly as its `issuer` setting spells it
  --listen ADDR       address to serve on, e.g. 127.0.0.1:9001
  --audience AUD      this API's audience; tokens must name it in `aud`";

#[tokio::main]
async fn main() -> ExitCode {
    let (issuer, listen, audience) = match parse(std::env::args().skip(1)) {
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
    match run(&issuer, listen, &audience).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("inventory: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    issuer: &str,
    listen: SocketAddr,
    audience: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let verifier = Verifier::builder(issuer, audience).discover().await?;
    let app = Router::new()
        .route("/stock", get(stock))
        .layer(GuardLayer::new(verifier).require_scopes(["inventory.read"])?);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("inventory: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn stock(Authenticated(token): Authenticated) -> Json<Value> {
    Json(json!({
        "subject": token.subject(),
        "client_id": token.client_id(),
        "scope": token.scope(),
        // Who acts for the subject, the current actor first.
        "acting": token.actors().map(Actor::subject).collect::<Vec<_>>(),
        "stock": [
            {"item": "tessera tiles", "on_hand": 5400},
            {"item": "grout", "on_hand": 38},
        ],
    }))
}

/// (issuer, listen, audience), or `None` when help was asked for.
fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(String, SocketAddr, String)>, String> {
    let (mut issuer, mut listen, mut audience) = (None, None, None);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--issuer" => &mut issuer,
            "--listen" => &mut listen,
            "--audience" => &mut audience,
            other => return Err(format!("unknown option {other}")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    Ok(Some((
        issuer.ok_or("--issuer is required")?,
        listen
            .parse()
            .map_err(|e| format!("--listen {listen}: {e}"))?,
        audience.ok_or("--audience is required")?,
    )))
}

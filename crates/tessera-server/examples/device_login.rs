//! A command-line client of the device authorization grant (RFC 8628): what a
//! CLI or TV app does to sign a person in without a keyboard of its own.
//!
//! ```text
//! cargo run -p tessera-server --example device_login -- \
//!     --issuer http://127.0.0.1:8080 --client-id CLIENT_ID --scope "openid offline_access"
//! ```
//!
//! It prints the code and the address to open, polls politely (the server's
//! interval, five seconds more after each `slow_down`), and prints the tokens.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Sign in on another device with the OAuth device authorization grant")]
struct Args {
    /// The Tessera issuer URL.
    #[arg(long)]
    issuer: String,
    /// The public client registered with `--grant device_code`.
    #[arg(long, allow_hyphen_values = true)]
    client_id: String,
    /// Scopes to ask for.
    #[arg(long, default_value = "openid")]
    scope: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(tokens) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tokens).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("device_login: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Value, String> {
    let http = reqwest::Client::new();
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        args.issuer.trim_end_matches('/')
    );
    let metadata: Value = get_json(http.get(&discovery)).await?;
    let device_endpoint = metadata["device_authorization_endpoint"]
        .as_str()
        .ok_or("the server has no device_authorization_endpoint")?;
    let token_endpoint = metadata["token_endpoint"]
        .as_str()
        .ok_or("the server has no token_endpoint")?;

    let start: Value = get_json(http.post(device_endpoint).form(&[
        ("client_id", args.client_id.as_str()),
        ("scope", args.scope.as_str()),
    ]))
    .await?;
    let field = |name: &str| {
        start[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("the response has no {name}"))
    };
    let device_code = field("device_code")?;
    eprintln!(
        "To sign in, open {} and enter the code {}",
        field("verification_uri")?,
        field("user_code")?
    );
    if let Ok(complete) = field("verification_uri_complete") {
        eprintln!("(or open {complete})");
    }
    let mut interval = Duration::from_secs(start["interval"].as_u64().unwrap_or(5));
    let deadline =
        Instant::now() + Duration::from_secs(start["expires_in"].as_u64().unwrap_or(600));

    while Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        let response = http
            .post(token_endpoint)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", args.client_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("token request failed: {e}"))?;
        let ok = response.status().is_success();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("bad token response: {e}"))?;
        if ok {
            return Ok(body);
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            // RFC 8628 §3.5: this and every later request waits 5 s more.
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("access_denied") => return Err("the request was denied".into()),
            Some("expired_token") => return Err("the code expired; start again".into()),
            _ => return Err(format!("the server refused: {body}")),
        }
    }
    Err("the code expired; start again".into())
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

//! `floor`: the hardware floor for a token endpoint (see
//! `tessera_bench::floor`). Listens on 127.0.0.1 and prints the address it
//! listens on, `127.0.0.1:PORT`, as the first line on stdout.
//!
//! ```text
//! floor --secret SECRET [--client-id floor] [--port 0]
//! curl -u floor:SECRET -d grant_type=client_credentials http://127.0.0.1:PORT/token
//! ```

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tessera_bench::floor::{Floor, router};

/// The least a client-credentials token endpoint can do: HTTP Basic
/// authentication of one fixed client and an ES256 JWT with fixed claims.
#[derive(Debug, Parser)]
#[command(name = "floor")]
struct Args {
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The one client ID accepted.
    #[arg(long, default_value = "floor")]
    client_id: String,
    /// The client's secret.
    #[arg(long, env = "FLOOR_SECRET", hide_env_values = true)]
    secret: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("floor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let floor = Floor::new(&args.client_id, &args.secret, &format!("http://{local}"))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    axum::serve(listener, router(Arc::new(floor)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

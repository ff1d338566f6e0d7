//! The `tessera` binary.

use std::process::ExitCode;

use clap::Parser as _;
use tessera_server::cli::{Cli, Command};
use tessera_server::commands;
use tessera_server::config::{Config, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_writer = init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(commands::run(cli));
    // What is still queued is written before the last word.
    drop(log_writer);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {}", e.0);
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: `info` for the server, warnings only for other commands so
/// that their output stays clean. `RUST_LOG` overrides. Colours only on a
/// terminal, so that log files and collectors get plain text, and never with
/// `NO_COLOR` set (no-color.org).
///
/// Lines are formatted where they are logged and written by a thread of
/// their own, several at a time: a request's log line must not cost it a
/// write(2). Nothing is dropped: when the writer falls 128k lines behind (a
/// stuck stderr), logging waits.
fn init_logging(cli: &Cli) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let default = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = Config::load(cli.config.as_deref())
        .map(|c| c.log_format == LogFormat::Json)
        .unwrap_or(false);
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tessera-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

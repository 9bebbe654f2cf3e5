//! colorapp's colorteller: answers every path with its color.

use std::{net::IpAddr, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;

/// colorapp's colorteller: answers every path except /ping with its color.
///
/// Fault knobs: a `Latency: <seconds or 250ms>` request header delays the answer;
/// `GET /setFlake?rate=<0..1>&code=<status>` makes answers fail at that rate.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The color every answer carries.
    #[arg(long, env = "COLOR", default_value = colorteller::DEFAULT_COLOR)]
    color: String,
    /// The port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
    port: u16,
    /// The address to listen on (container images set 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", default_value_t = service_kit::DEFAULT_BIND_ADDR)]
    bind_addr: IpAddr,
    /// Seed for the /setFlake coin, for reproducible runs; unset seeds from entropy.
    #[arg(long, env = "FLAKE_SEED")]
    flake_seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    service_kit::RequestEcho::install_from_env();
    match serve(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole cause chain, whatever RUST_BACKTRACE says.
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // The original treats an empty COLOR as unset.
    let color = if args.color.trim().is_empty() {
        colorteller::DEFAULT_COLOR.to_owned()
    } else {
        args.color
    };
    let listener = service_kit::bind(args.bind_addr, args.port).await?;
    let config = colorteller::Config {
        color,
        flake_seed: args.flake_seed,
    };
    colorteller::run(listener, config, service_kit::shutdown_signal())
        .await
        .context("colorteller failed")
}

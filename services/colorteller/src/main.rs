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
    /// Names the X-Ray segments `<STAGE>-colorteller-<COLOR>`.
    #[arg(long, env = "STAGE", default_value = colorteller::DEFAULT_STAGE)]
    stage: String,
    /// Where sampled X-Ray segments are sent over UDP (`host:port`).
    #[arg(long, env = service_kit::xray::DAEMON_ADDRESS_ENV, default_value = service_kit::xray::DEFAULT_DAEMON_ADDRESS)]
    xray_daemon_address: String,
    /// The X-Ray sampling rate past one request a second (the SDK's default rule: 0.05).
    #[arg(long, env = service_kit::xray::SAMPLING_RATE_ENV, default_value_t = service_kit::xray::DEFAULT_SAMPLING_RATE)]
    xray_sampling_rate: f64,
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
    let xray_daemon = service_kit::xray::daemon_address(Some(&args.xray_daemon_address))?;
    // The original treats an empty STAGE as unset.
    let stage = if args.stage.trim().is_empty() {
        colorteller::DEFAULT_STAGE.to_owned()
    } else {
        args.stage
    };
    let config = colorteller::Config {
        color,
        flake_seed: args.flake_seed,
        stage,
        xray_daemon: Some(xray_daemon),
        xray_sampling_rate: args.xray_sampling_rate,
    };
    colorteller::run(listener, config, service_kit::shutdown_signal())
        .await
        .context("colorteller failed")
}

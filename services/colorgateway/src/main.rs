//! colorapp's colorgateway: asks the colorteller for a color and answers with it and a histogram of recent colors.

use std::{net::IpAddr, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use colorgateway::{Config, Flavor, ProxySettings};

/// colorapp's colorgateway: /color asks the colorteller for a color and answers it with the
/// shares of the last 1000 colors; /color/clear, /tcpecho and /ping as the original.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "The teller call honours HTTP_PROXY / http_proxy and NO_PROXY / no_proxy."
)]
struct Args {
    /// host:port of the colorteller (required), e.g. colorteller.appmesh-demo:9080.
    #[arg(long, env = "COLOR_TELLER_ENDPOINT")]
    color_teller_endpoint: Option<String>,
    /// The port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
    port: u16,
    /// The address to listen on (container images set 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", default_value_t = service_kit::DEFAULT_BIND_ADDR)]
    bind_addr: IpAddr,
    /// host:port of the TCP echo server used by /tcpecho.
    #[arg(long, env = "TCP_ECHO_ENDPOINT")]
    tcp_echo_endpoint: Option<String>,
    /// How long one teller call may take (humantime: 500ms, 10s, 1m).
    #[arg(long, env = "COLOR_TELLER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    color_teller_timeout: Duration,
    /// Reply keys: v1 (color/stats) or v2 (colorV2/statsV2).
    #[arg(long, env = "COLORGATEWAY_FLAVOR", default_value = "v1")]
    flavor: Flavor,
    /// Names the X-Ray segments `<STAGE>-gateway`.
    #[arg(long, env = "STAGE", default_value = colorgateway::DEFAULT_STAGE)]
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
    let Some(endpoint) = args.color_teller_endpoint.filter(|e| !e.trim().is_empty()) else {
        anyhow::bail!(
            "COLOR_TELLER_ENDPOINT is not set: give the colorteller's host:port, e.g. colorteller.appmesh-demo:9080"
        );
    };
    let config = Config {
        color_teller_endpoint: endpoint.trim().to_owned(),
        tcp_echo_endpoint: args.tcp_echo_endpoint.filter(|e| !e.trim().is_empty()),
        flavor: args.flavor,
        teller_timeout: args.color_teller_timeout,
        proxy: ProxySettings::from_env(),
        // The original treats an empty STAGE as unset.
        stage: Some(args.stage.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(colorgateway::DEFAULT_STAGE)
            .to_owned(),
        xray_daemon: Some(service_kit::xray::daemon_address(Some(
            &args.xray_daemon_address,
        ))?),
        xray_sampling_rate: args.xray_sampling_rate,
    };
    let listener = service_kit::bind(args.bind_addr, args.port).await?;
    colorgateway::run(listener, config, service_kit::shutdown_signal())
        .await
        .context("colorgateway failed")
}

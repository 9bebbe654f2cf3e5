//! A TCP echo server that greets each client with lines from its pod environment, as cjimti/go-echo does.

use std::{net::IpAddr, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;

/// A TCP echo server (cjimti/go-echo): greets each client with its pod facts, then echoes every
/// byte back. With no pod fact set the greeting is `Welcome, you are connected.`
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The port to listen on.
    #[arg(long, env = "TCP_PORT", default_value_t = 1025)]
    port: u16,
    /// The address to listen on (container images set 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", default_value_t = service_kit::DEFAULT_BIND_ADDR)]
    bind_addr: IpAddr,
    /// Announced as `Welcome, you are connected to node <NODE_NAME>.\n`
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Announced as `Running on Pod <POD_NAME>.\n`
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Announced as `In namespace <POD_NAMESPACE>.\n`
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// Announced as `With IP address <POD_IP>.\n`
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<String>,
    /// Announced as `Service <SERVICE_ACCOUNT>.\n`
    #[arg(long, env = "SERVICE_ACCOUNT")]
    service_account: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
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
    let config = tcpecho::Config {
        node_name: args.node_name,
        pod_name: args.pod_name,
        pod_namespace: args.pod_namespace,
        pod_ip: args.pod_ip,
        service_account: args.service_account,
    };
    let listener = service_kit::bind(args.bind_addr, args.port).await?;
    tcpecho::run(listener, config, service_kit::shutdown_signal())
        .await
        .context("tcpecho failed")
}

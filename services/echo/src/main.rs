//! The conformance backend: answers any request with JSON describing exactly what it received.

use std::{net::IpAddr, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;

/// The conformance backend: answers any method and path with a JSON description of the request
/// (method, raw path and query, host, headers, protocol) and of this instance's identity.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
    port: u16,
    /// The address to listen on (container images set 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", default_value_t = service_kit::DEFAULT_BIND_ADDR)]
    bind_addr: IpAddr,
    /// The service name reported in every reply.
    #[arg(long, env = "SERVICE_NAME")]
    service_name: Option<String>,
    /// The pod name reported in every reply.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// The namespace reported in every reply.
    #[arg(long, env = "NAMESPACE")]
    namespace: Option<String>,
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
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let config = echo::Config {
        service: non_empty(args.service_name),
        pod: non_empty(args.pod_name),
        namespace: non_empty(args.namespace),
    };
    let listener = service_kit::bind(args.bind_addr, args.port).await?;
    echo::run(listener, config, service_kit::shutdown_signal())
        .await
        .context("echo failed")
}

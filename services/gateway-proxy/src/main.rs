//! `gateway-proxy`: the Rust stand-in for the walkthrough's Envoys.
//!
//! `gateway-proxy ingress --config-dir DIR` serves Gloo's VirtualServices; `gateway-proxy sidecar
//! --node NAME --namespace NS --config-dir DIR` is the App Mesh Envoy beside one workload. Both
//! reload when the directory changes and on `POST /reload` at the admin address.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use gateway_proxy::cli::RoleCommand;
use gateway_proxy::{DirSource, ProxyOptions, ProxyState, serve, watch_dir};
use tokio::net::TcpListener;

/// Bursts of file events closer together than this give a single reload.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The Rust stand-in for Gloo's gateway-proxy and the App Mesh sidecar Envoy"
)]
struct Cli {
    #[command(subcommand)]
    role: RoleCommand,
    /// Tokio worker threads serving both listeners (Envoy's `--concurrency`); default: one per CPU.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
}

fn main() -> Result<()> {
    service_kit::init_tracing();
    let cli = Cli::parse();
    let workers = cli.workers;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = workers {
        runtime.worker_threads(usize::from(workers));
    }
    runtime
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let (role, common) = cli.role.into_parts();
    common.check_config_dir()?;

    let state = ProxyState::new(ProxyOptions {
        seed: common.seed,
        ..ProxyOptions::default()
    });
    state.set_source(DirSource::new(&common.config_dir, role.clone()));
    let report = state.reload().await.context("initial configuration load")?;
    let _watch = watch_dir(state.clone(), &common.config_dir, WATCH_DEBOUNCE)
        .with_context(|| format!("watching {}", common.config_dir.display()))?;

    let listener = TcpListener::bind(common.listen)
        .await
        .with_context(|| format!("binding the proxy listener on {}", common.listen))?;
    let admin = TcpListener::bind(common.admin)
        .await
        .with_context(|| format!("binding the admin listener on {}", common.admin))?;
    // Port 0 is common (the local backend starts every proxy that way): announce the real ports.
    let listen_addr = listener
        .local_addr()
        .context("reading the proxy listener address")?;
    let admin_addr = admin
        .local_addr()
        .context("reading the admin listener address")?;
    tracing::info!(
        %role,
        listen = %listen_addr,
        admin = %admin_addr,
        generation = report.generation,
        config_dir = %common.config_dir.display(),
        "gateway-proxy serving"
    );
    service_kit::announce_listening("http", listen_addr);
    service_kit::announce_listening("admin", admin_addr);
    serve(listener, admin, state, service_kit::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("gateway-proxy stopped");
    Ok(())
}

//! `mutant-gateway`: gateway-proxy's command line with a faulty ingress data plane.
//!
//! `mutant-gateway ingress --config-dir DIR --mutation off-by-one` serves Gloo's VirtualServices
//! with the fault; `mutant-gateway sidecar --node NAME --namespace NS --config-dir DIR` is
//! gateway-proxy's sidecar, unmutated. See the library documentation for the mutations.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use gateway_proxy::cli::RoleCommand;
use gateway_proxy::{DirSource, ProxyOptions, ProxyState, serve, watch_dir};
use mutant_gateway::{DataPlaneOptions, Mutation, serve_data_plane};
use routing::Role;
use tokio::net::TcpListener;

/// The same debounce as gateway-proxy, so reloads happen at the same moments.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A faulty gateway for the harness's self-test (gateway-proxy with a broken ingress data plane)"
)]
struct Cli {
    #[command(subcommand)]
    role: RoleCommand,
    /// Accepted for gateway-proxy compatibility; the runtime uses one worker per CPU.
    #[arg(long, global = true, value_name = "N")]
    workers: Option<u16>,
    /// The fault of the ingress data plane.
    #[arg(long, global = true, value_enum, default_value_t = Mutation::None)]
    mutation: Mutation,
    /// How long `stale-config` keeps serving the previous configuration after a change.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "2s")]
    stale_for: Duration,
    /// How often `partially-sticky` repeats the connection's previous pick (0 to 1).
    #[arg(long, global = true, value_name = "P", default_value_t = 0.1, value_parser = parse_probability)]
    repeat: f64,
}

fn parse_probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability in [0, 1]")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    service_kit::init_tracing();
    let cli = Cli::parse();
    let (role, common) = cli.role.into_parts();
    let config_dir = common.config_dir(env!("CARGO_BIN_NAME"))?;

    let state = ProxyState::new(ProxyOptions {
        seed: common.seed,
        ..ProxyOptions::default()
    });
    state.set_source(DirSource::new(config_dir, role.clone()));
    let report = state.reload().await.context("initial configuration load")?;
    let _watch = watch_dir(state.clone(), config_dir, WATCH_DEBOUNCE)
        .with_context(|| format!("watching {}", config_dir.display()))?;

    let listener = TcpListener::bind(common.listen)
        .await
        .with_context(|| format!("binding the proxy listener on {}", common.listen))?;
    let admin = TcpListener::bind(common.admin)
        .await
        .with_context(|| format!("binding the admin listener on {}", common.admin))?;
    let listen_addr = listener
        .local_addr()
        .context("reading the proxy listener address")?;
    let admin_addr = admin
        .local_addr()
        .context("reading the admin listener address")?;
    let mutation = match role {
        Role::Ingress { .. } => cli.mutation,
        Role::Sidecar { .. } | Role::MeshSidecar { .. } => Mutation::None,
    };
    tracing::info!(
        %role,
        %mutation,
        listen = %listen_addr,
        admin = %admin_addr,
        generation = report.generation,
        "mutant-gateway serving"
    );
    service_kit::announce_listening("http", listen_addr);
    service_kit::announce_listening("admin", admin_addr);

    if matches!(role, Role::Sidecar { .. }) {
        return serve(listener, admin, state, service_kit::shutdown_signal())
            .await
            .context("serving");
    }
    // gateway-proxy's `serve` runs the admin API; its own data-plane listener is a private one
    // nobody is told about, because the data plane under test is the mutated one.
    let unused = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the unused gateway-proxy data-plane listener")?;
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(serve(unused, admin, state.clone(), async move {
        let _ = admin_stopped.await;
    }));
    let options = DataPlaneOptions {
        mutation,
        seed: common.seed,
        stale_for: cli.stale_for,
        repeat: cli.repeat,
    };
    let served = serve_data_plane(listener, state, options, service_kit::shutdown_signal()).await;
    let _ = stop_admin.send(());
    admin_task
        .await
        .context("the admin task panicked")?
        .context("serving the admin API")?;
    served.context("serving the mutated data plane")?;
    tracing::info!("mutant-gateway stopped");
    Ok(())
}

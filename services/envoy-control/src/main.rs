//! `envoy-control`: gateway-proxy's command line, served by a real Envoy.
//!
//! `envoy-control ingress --config-dir DIR --envoy-bin ENVOY` plays Gloo (control plane + Envoy);
//! `envoy-control sidecar --node NAME --namespace NS --config-dir DIR --envoy-bin ENVOY` plays the
//! App Mesh Envoy beside one workload. See the library docs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use envoy_control::{DownstreamLimits, EnvoyProcess, EnvoySource, XdsFiles};
use gateway_proxy::cli::{GatewayArgs, RoleCommand};
use gateway_proxy::{DirSource, ProxyOptions, ProxyState, serve_admin, watch_dir};
use routing::Role;
use tokio::net::TcpListener;

/// Bursts of file events closer together than this give a single reload (as gateway-proxy).
const WATCH_DEBOUNCE: Duration = Duration::from_millis(50);
/// How long Envoy may take to start and become LIVE.
const ENVOY_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Envoy may take to acknowledge one xDS file.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Envoy gets to exit after SIGTERM.
const ENVOY_STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A control plane that serves gateway-proxy's configuration with a real Envoy"
)]
struct Cli {
    #[command(subcommand)]
    role: RoleCommand,
    /// The Envoy binary to run (required; may come before or after the role).
    #[arg(long, global = true, value_name = "PATH")]
    envoy_bin: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// gateway-proxy's downstream limit flags, rendered as the Envoy settings that bound the same
/// thing; a flag left out leaves Envoy's own default (not gateway-proxy's).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Active downstream connections at most (the overload manager's
    /// global_downstream_max_connections; the admin listener is not counted). Envoy's default:
    /// no limit.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// The connection manager's request_headers_timeout (from a request's first byte to its
    /// complete headers). Envoy's default: off.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    request_headers_timeout: Option<Duration>,
    /// The connection manager's idle_timeout: a connection with no stream is closed. Envoy's
    /// default: 1h.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// The connection manager's stream_idle_timeout: a request or response body that goes this
    /// long without a byte is reset. Envoy's default: 5m.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    body_idle_timeout: Option<Duration>,
}

impl LimitArgs {
    fn limits(&self) -> DownstreamLimits {
        DownstreamLimits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            stream_idle_timeout: self.body_idle_timeout,
            request_headers_timeout: self.request_headers_timeout,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    service_kit::init_tracing();
    let cli = Cli::parse();
    let Some(envoy_bin) = cli.envoy_bin else {
        bail!("--envoy-bin PATH is required (the Envoy binary to run)");
    };
    ensure!(
        envoy_bin.is_file(),
        "--envoy-bin {}: no such file",
        envoy_bin.display()
    );
    let (role, common) = cli.role.into_parts();
    common.config_dir(env!("CARGO_BIN_NAME"))?;
    if let Some(seed) = common.seed {
        tracing::info!(
            seed,
            "--seed is ignored: Envoy picks weighted destinations with its own random generator"
        );
    }
    if let Some(daemon) = &common.xray_daemon {
        // Envoy has an X-Ray tracer (`envoy.tracers.xray` in the connection manager's
        // `tracing.provider`); rendering it is not done yet, so Envoy passes trace headers
        // through and sends no segments of its own.
        tracing::warn!(
            daemon,
            "--xray-daemon is ignored: envoy-control does not render Envoy's X-Ray tracer yet"
        );
    }

    // Listen for SIGTERM/SIGINT from the start: a signal during start-up then stops the control
    // plane (and Envoy) cleanly as soon as it is up, instead of killing it with Envoy left behind.
    let shutdown = tokio::spawn(service_kit::shutdown_signal());
    let work = tempfile::Builder::new()
        .prefix("envoy-control-")
        .tempdir()
        .context("creating the work directory")?;
    let files = XdsFiles::create(work.path())?;
    let node_id = format!("envoy-control-{}", std::process::id());
    let limits = cli.limits.limits();
    if limits != DownstreamLimits::default() {
        tracing::info!(?limits, "downstream limits set on the command line");
    }
    files.write_initial(&node_id, common.listen, &limits)?;
    // Started from the main thread: Envoy's parent-death signal follows the spawning thread.
    let mut envoy = EnvoyProcess::start(&envoy_bin, &files.envoy_files(), ENVOY_START_TIMEOUT)
        .await
        .context("starting Envoy")?;
    tracing::info!(work = %work.path().display(), admin = %envoy.admin().address(), "Envoy is LIVE");
    let shutdown = async move {
        let _ = shutdown.await;
    };
    let state = ProxyState::new(ProxyOptions::default());
    let result = run(&mut envoy, files, role, &common, &state, shutdown).await;
    // A reload the watcher started may still be pushing to Envoy; let it finish first.
    state.close_source().await;
    envoy.stop(ENVOY_STOP_GRACE).await;
    drop(work);
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    result
}

async fn run(
    envoy: &mut EnvoyProcess,
    files: XdsFiles,
    role: Role,
    common: &GatewayArgs,
    state: &ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let listen = envoy
        .admin()
        .listener_address()
        .await?
        .context("Envoy does not list the data-plane listener")?;
    let config_dir = common.config_dir(env!("CARGO_BIN_NAME"))?;
    state.set_source(EnvoySource::new(
        DirSource::new(config_dir, role.clone()),
        tokio::runtime::Handle::current(),
        envoy.admin().clone(),
        files,
        ACK_TIMEOUT,
    ));
    let report = state.reload().await.context("initial configuration load")?;
    let _watch = watch_dir(state.clone(), config_dir, WATCH_DEBOUNCE)
        .with_context(|| format!("watching {}", config_dir.display()))?;
    let admin = TcpListener::bind(common.admin)
        .await
        .with_context(|| format!("binding the admin listener on {}", common.admin))?;
    let admin_addr = admin
        .local_addr()
        .context("reading the admin listener address")?;
    tracing::info!(
        %role,
        listen = %listen,
        admin = %admin_addr,
        envoy_admin = %envoy.admin().address(),
        generation = report.generation,
        config_dir = %config_dir.display(),
        "envoy-control serving"
    );
    service_kit::announce_listening("http", listen);
    service_kit::announce_listening("admin", admin_addr);
    let log = envoy.log().to_owned();
    tokio::select! {
        served = serve_admin(admin, state.clone(), shutdown) => {
            served.context("serving the admin API")?;
            tracing::info!("envoy-control stopped");
            Ok(())
        }
        exited = envoy.exited() => {
            let status = exited?;
            bail!(
                "Envoy exited unexpectedly ({status}); last lines of {}:\n{}",
                log.display(),
                envoy_control::envoy::log_tail(&log, 20)
            )
        }
    }
}

//! `gateway-proxy`: the Rust stand-in for the walkthrough's Envoys.
//!
//! `gateway-proxy ingress --config-dir DIR` serves Gloo's VirtualServices; `gateway-proxy sidecar
//! --node NAME --namespace NS --config-dir DIR` is the App Mesh Envoy beside one workload. Both
//! reload when the directory changes and on `POST /reload` at the admin address. In a cluster,
//! `--kubernetes` replaces `--config-dir`: the proxy watches the API server (and the ingress
//! role writes Gloo statuses back).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use gateway_proxy::cli::{RoleCommand, SourceChoice, check_dir};
#[cfg(feature = "kubernetes")]
use gateway_proxy::kube_source::{self, DEFAULT_WRITER_NAMESPACE, KubeOptions};
use gateway_proxy::{
    ConnectionLimits, DirSource, ProxyOptions, ProxyState, serve, serve_ready, watch_dir,
};
use routing::Role;
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
    #[command(flatten)]
    limits: LimitArgs,
    /// Also serve `GET /ready` (only) on this address: a readiness port for a kubelet's probe,
    /// so the admin API (`--admin`) can stay on loopback.
    #[arg(long, global = true, value_name = "ADDR")]
    ready_listen: Option<SocketAddr>,
    /// With --kubernetes: watch only this namespace (repeatable); default: all namespaces.
    #[cfg(feature = "kubernetes")]
    #[arg(long = "watch-namespace", global = true, value_name = "NS")]
    watch_namespaces: Vec<String>,
    /// With --kubernetes: the namespace this gateway runs in, the key of its entry under
    /// `status.statuses` of the Gloo resources.
    #[cfg(feature = "kubernetes")]
    #[arg(
        long,
        global = true,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = DEFAULT_WRITER_NAMESPACE
    )]
    namespace_of_writer: String,
}

/// Downstream connection limits and timeouts (see the README's "Limits and timeouts").
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Data-plane connections open at most; more are accepted and closed at once. Default: half
    /// the file descriptors the process may open (RLIMIT_NOFILE) after a reserve of 64.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Time a new connection has to send its first request's headers (nothing sent, a partial
    /// HTTP/2 preface and partial HTTP/1 headers all end here); also HTTP/1's header read timeout,
    /// which bounds an idle HTTP/1 keep-alive connection too.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    request_headers_timeout: Duration,
    /// Time a connection may stay open with no request in flight (HTTP/2 with no stream, HTTP/1
    /// keep-alive). Envoy's default is 1h.
    #[arg(long, global = true, value_name = "DURATION", default_value = "300s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Time a request or response body may go without a byte while it is relayed (Envoy's
    /// stream_idle_timeout).
    #[arg(long, global = true, value_name = "DURATION", default_value = "300s", value_parser = humantime::parse_duration)]
    body_idle_timeout: Duration,
}

impl LimitArgs {
    fn limits(&self) -> ConnectionLimits {
        let defaults = ConnectionLimits::default();
        ConnectionLimits {
            max_connections: self
                .max_connections
                .map_or(defaults.max_connections, |max| max as usize),
            request_headers_timeout: self.request_headers_timeout,
            idle_timeout: self.idle_timeout,
            body_idle_timeout: self.body_idle_timeout,
            ..defaults
        }
    }
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
    let xray = match &common.xray_daemon {
        Some(daemon) => {
            let daemon = service_kit::xray::daemon_address(Some(daemon))?;
            let name = common
                .xray_segment_name
                .clone()
                .unwrap_or_else(|| match &role {
                    Role::Sidecar { node, .. } => node.clone(),
                    Role::MeshSidecar { .. } => "sidecar".to_owned(),
                    _ => "ingress".to_owned(),
                });
            tracing::info!(%daemon, %name, rate = common.xray_sampling_rate, "X-Ray tracing on");
            Some(std::sync::Arc::new(service_kit::xray::Recorder::new(
                name,
                Some(daemon),
                service_kit::xray::Sampler::new(1, common.xray_sampling_rate),
            )))
        }
        None => None,
    };
    let ready_listen = cli.ready_listen;
    let state = ProxyState::new(ProxyOptions {
        seed: common.seed,
        xray,
        limits: cli.limits.limits(),
        ..ProxyOptions::default()
    });
    if let Some(ready) = ready_listen {
        let listener = TcpListener::bind(ready)
            .await
            .with_context(|| format!("binding the readiness listener on {ready}"))?;
        let addr = listener
            .local_addr()
            .context("reading the readiness listener address")?;
        service_kit::announce_listening("ready", addr);
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_ready(listener, state, service_kit::shutdown_signal()).await {
                tracing::error!(%error, "the readiness listener stopped");
            }
        });
    }
    match common.source() {
        SourceChoice::ConfigDir(dir) => {
            let dir = check_dir(dir)?;
            #[cfg(feature = "kubernetes")]
            if !cli.watch_namespaces.is_empty() {
                tracing::warn!("--watch-namespace is ignored with --config-dir");
            }
            serve_config_dir(state, role, dir, common.listen, common.admin).await
        }
        #[cfg(not(feature = "kubernetes"))]
        SourceChoice::Kubernetes => anyhow::bail!(
            "--kubernetes: this gateway-proxy was built without Kubernetes support; build it with \
             `cargo build -p gateway-proxy --features kubernetes` (the container image is built so)"
        ),
        #[cfg(feature = "kubernetes")]
        SourceChoice::Kubernetes => {
            let options = KubeOptions {
                watch_namespaces: cli.watch_namespaces,
                writer_namespace: cli.namespace_of_writer,
                ..KubeOptions::new(role)
            };
            serve_kubernetes(state, options, common.listen, common.admin).await
        }
    }
}

async fn serve_config_dir(
    state: ProxyState,
    role: Role,
    config_dir: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<()> {
    state.set_source(DirSource::new(config_dir, role.clone()));
    let report = state.reload().await.context("initial configuration load")?;
    let _watch = watch_dir(state.clone(), config_dir, WATCH_DEBOUNCE)
        .with_context(|| format!("watching {}", config_dir.display()))?;

    let (listener, admin) = bind(listen, admin).await?;
    tracing::info!(
        %role,
        listen = %listener.local_addr().context("reading the proxy listener address")?,
        admin = %admin.local_addr().context("reading the admin listener address")?,
        generation = report.generation,
        config_dir = %config_dir.display(),
        "gateway-proxy serving"
    );
    serve(listener, admin, state, service_kit::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("gateway-proxy stopped");
    Ok(())
}

#[cfg(feature = "kubernetes")]
/// Serves at once (so `/ready` answers 503 while the watchers list) and installs the
/// configuration when every watched kind has been listed.
async fn serve_kubernetes(
    state: ProxyState,
    options: KubeOptions,
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<()> {
    let (listener, admin) = bind(listen, admin).await?;
    let role = options.role.clone();
    tracing::info!(
        %role,
        listen = %listener.local_addr().context("reading the proxy listener address")?,
        admin = %admin.local_addr().context("reading the admin listener address")?,
        watch_namespaces = ?options.watch_namespaces,
        writer_namespace = %options.writer_namespace,
        "gateway-proxy serving; not ready until the API server has been listed"
    );
    let mut server = tokio::spawn(serve(
        listener,
        admin,
        state.clone(),
        service_kit::shutdown_signal(),
    ));
    let client = kube::Client::try_default().await.context(
        "connecting to the Kubernetes API server (in-cluster service account or KUBECONFIG)",
    )?;
    let _sync = tokio::select! {
        started = kube_source::start(client, state, options) => {
            started.context("reading the configuration from the Kubernetes API server")?
        }
        served = &mut server => {
            served.context("the server task panicked")?.context("serving")?;
            tracing::info!("gateway-proxy stopped before the API server was listed");
            return Ok(());
        }
    };
    tracing::info!(%role, "configuration from the API server installed; ready");
    server
        .await
        .context("the server task panicked")?
        .context("serving")?;
    tracing::info!("gateway-proxy stopped");
    Ok(())
}

/// Binds both listeners and announces their real addresses (port 0 is common: the local backend
/// starts every proxy that way).
async fn bind(listen: SocketAddr, admin: SocketAddr) -> Result<(TcpListener, TcpListener)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the proxy listener on {listen}"))?;
    let admin_listener = TcpListener::bind(admin)
        .await
        .with_context(|| format!("binding the admin listener on {admin}"))?;
    let listen_addr = listener
        .local_addr()
        .context("reading the proxy listener address")?;
    let admin_addr = admin_listener
        .local_addr()
        .context("reading the admin listener address")?;
    service_kit::announce_listening("http", listen_addr);
    service_kit::announce_listening("admin", admin_addr);
    Ok((listener, admin_listener))
}

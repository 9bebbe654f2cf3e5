//! Backends: where a scenario's manifests become running workloads and a gateway.
//!
//! The runner only ever talks to a [`Backend`]; scenario files never say which one they run on.
//! - [`local`]: the embedded default. Deployments become processes on 127.0.0.1 with ephemeral
//!   ports, meshed pods get a `gateway-proxy sidecar`, a `gateway-proxy ingress` plays Gloo's
//!   gateway-proxy, and glooctl commands act on the local resource store.
//! - `kube` (the `kube` feature): kind, EKS and a disposable K3s apply the same manifests to a cluster through
//!   kube-rs and run the real glooctl.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::WaitCondition;

#[cfg(feature = "kube")]
pub mod apiserver;
pub mod cluster;
#[cfg(feature = "kube")]
pub mod kube;
pub mod local;

pub use cluster::{ClusterGateway, Provider};

/// The kinds whose versions colormesh's ingress (gateway-proxy, envoy-control) reports in its
/// `/status`: Gloo's, and the Gateway API kinds it serves (ReferenceGrants are read but carry no
/// status). Both backends wait on these to count a change as live.
pub(crate) fn reported_by_ingress(kind: &model::ResourceKind) -> bool {
    use model::ResourceKind;
    crate::glooctl::GlooKind::of(kind).is_some()
        || matches!(
            kind,
            ResourceKind::GatewayClass | ResourceKind::Gateway | ResourceKind::HttpRoute
        )
}

/// Which backend a run uses (`cargo xtask e2e --backend ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Local processes on 127.0.0.1; needs nothing but cargo.
    Local,
    /// A kind cluster (Docker), with gateway-proxy or real Gloo as the gateway.
    Kind,
    /// An EKS cluster (App Mesh is discontinued: the builtin sidecars stand in, as on kind).
    Eks,
    /// A disposable K3s in Docker via testcontainers.
    K3s,
    /// A real kube-apiserver, controller manager and scheduler built from source
    /// (`cargo xtask kube install`) with colormesh's node agent running the Pods as local
    /// processes: the cluster path, run for real on this machine (`backend::apiserver`).
    Apiserver,
}

/// What an `apply` changed, so the runner can wait until the gateway serves it and measure how long
/// that took (config propagation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// `Kind namespace/name` of every object created or changed, in apply order.
    pub changed: Vec<String>,
    /// An opaque, increasing marker of the backend's state after the apply (the local backend's
    /// resource version; a cluster's resourceVersion of the last object).
    pub revision: u64,
}

/// The result of a glooctl or kubectl command: what a person would see in the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Errors a backend reports. Messages say what was being done and name the resource or file.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A manifest this backend cannot run (e.g. an unknown image on the local backend).
    #[error("{0}")]
    Unsupported(String),
    /// A manifest file that does not load.
    #[error("cannot apply {file}: {message}")]
    Manifest { file: PathBuf, message: String },
    /// A wait ran out.
    #[error("timed out after {} waiting for {condition}{}", humantime::format_duration(*.timeout), .detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Timeout {
        condition: String,
        timeout: Duration,
        detail: Option<String>,
    },
    /// A process, the gateway or the cluster failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The backend was shut down; nothing runs any more.
    #[error("the {backend} backend was shut down")]
    ShutDown { backend: &'static str },
    /// The local backend lost track of an object it started (a bug, not a user error).
    #[error("{resource} is not tracked")]
    Untracked { resource: String },
    /// A `wait: status` for a kind whose status nobody reports.
    #[error("cannot wait for the status of a {kind}: {reporter} reports {reported}")]
    UnwaitableKind {
        kind: String,
        /// Who reports statuses on this backend (`the ingress`, `Gloo`).
        reporter: &'static str,
        /// The kinds it reports, for the message.
        reported: &'static str,
    },
    /// A workspace binary the local backend starts is not built.
    #[error(
        "the local backend needs the workspace binary {name}, which is not in {}: build it with \
         `cargo build --bins`",
        .dir.display()
    )]
    MissingBinary { name: String, dir: PathBuf },
    /// A proxy's admin API (or a pod's HTTP port) did not answer as expected.
    #[error(transparent)]
    Admin(#[from] local::AdminError),
    /// The admin API of one named proxy failed.
    #[error("{proxy}: {source}")]
    Proxy {
        proxy: String,
        #[source]
        source: local::AdminError,
    },
    /// The gateway's address does not make a URL.
    #[error("bad proxy URL {url}: {source}")]
    ProxyUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    /// A cluster backend's failure (`backend::kube::KubeError`), kept opaque here so this
    /// trait does not depend on the cluster client.
    #[error(transparent)]
    Cluster(Box<dyn std::error::Error + Send + Sync>),
    /// A local backend failure, with the folder that holds its processes' logs.
    #[error("{source} (logs in {})", .logs.display())]
    WithLogs {
        #[source]
        source: Box<BackendError>,
        logs: PathBuf,
    },
    /// A workload or gateway process misbehaved (exited early, announced the wrong thing).
    #[error(transparent)]
    Process(crate::process::ProcessError),
}

/// Where a scenario runs. Implementations own every process or cluster object they create and
/// remove them in [`Backend::shutdown`] (and on drop, for the error and Ctrl-C paths).
///
/// Methods return `Send` futures so the runner can drive them next to traffic on a multi-threaded
/// runtime.
pub trait Backend: Send {
    /// A short name for reports (`local`, `kind`, `eks`).
    fn name(&self) -> &'static str;

    /// The X-Ray daemon stand-in the workloads send their segments to, when this backend runs
    /// one (the local backend does).
    fn trace_collector(&self) -> Option<&crate::xray::Collector> {
        None
    }

    /// `kubectl apply -f` each path (a file or a folder, relative to `manifests/`).
    fn apply(
        &mut self,
        paths: &[PathBuf],
    ) -> impl Future<Output = Result<Applied, BackendError>> + Send;

    /// `kubectl delete -f` each path.
    fn delete(
        &mut self,
        paths: &[PathBuf],
    ) -> impl Future<Output = Result<Applied, BackendError>> + Send;

    /// Runs a glooctl command (arguments without the leading `glooctl`).
    fn glooctl(
        &mut self,
        args: &[String],
    ) -> impl Future<Output = Result<CommandOutput, BackendError>> + Send;

    /// Runs a kubectl command (arguments without the leading `kubectl`): emulated over the local
    /// store ([`crate::kubectl`]), the real kubectl on a cluster.
    fn kubectl(
        &mut self,
        args: &[String],
    ) -> impl Future<Output = Result<CommandOutput, BackendError>> + Send;

    /// Waits until the condition holds or the timeout passes; returns how long it took.
    fn wait(
        &mut self,
        condition: &WaitCondition,
        timeout: Duration,
    ) -> impl Future<Output = Result<Duration, BackendError>> + Send;

    /// Waits until every gateway (ingress and sidecars) serves configuration at least as new as
    /// `applied`; returns how long it took from the call. This is the config propagation time.
    fn wait_config_live(
        &mut self,
        applied: &Applied,
        timeout: Duration,
    ) -> impl Future<Output = Result<Duration, BackendError>> + Send;

    /// The configuration generation the gateway under test (the ingress) reports in its admin
    /// `/status` now, the number its replies name in `x-colormesh-generation`; `None` when it
    /// reports none (a gateway that is not gateway-proxy or envoy-control). A traffic step with a
    /// `shift` reads it before the change and once the change is live.
    fn gateway_generation(
        &mut self,
    ) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send {
        async { Ok(None) }
    }

    /// The gateway's external URL, as `glooctl proxy url` prints it.
    fn proxy_url(&mut self) -> impl Future<Output = Result<url::Url, BackendError>> + Send;

    /// Stops and removes everything this backend started or created.
    fn shutdown(&mut self) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Loads apply/delete paths (relative to `manifests_dir`): every resource they hold, or one
/// [`BackendError::Manifest`] listing every bad document (file, line, resource and field). Both
/// backends refuse a partly bad set before changing anything.
pub(crate) fn load_manifests(
    manifests_dir: &std::path::Path,
    paths: &[PathBuf],
) -> Result<Vec<model::Loaded>, BackendError> {
    let full: Vec<PathBuf> = paths.iter().map(|p| manifests_dir.join(p)).collect();
    let parsed = model::load_paths(&full).map_err(|e| BackendError::Manifest {
        file: full.first().cloned().unwrap_or_default(),
        message: e.to_string(),
    })?;
    if let Some(first) = parsed.errors.first() {
        let message = parsed
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        return Err(BackendError::Manifest {
            file: first.file.clone(),
            message,
        });
    }
    Ok(parsed.resources)
}

//! The cluster backend's errors. [`KubeError`] reaches callers inside
//! [`BackendError::Cluster`](crate::backend::BackendError::Cluster); [`NotYet`] is what a wait
//! saw instead of its condition, and becomes a timeout's detail.

use std::path::PathBuf;
use std::time::Duration;

use ::kube::core::GroupVersionKind;

use super::forward::ForwardError;
use crate::backend::BackendError;

/// Why a cluster operation failed; every variant names the object, file or command.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// `place` is the kubeconfig file, or "the default kubeconfig".
    #[error("cannot read {place}: {source}")]
    ReadKubeconfig {
        place: String,
        source: ::kube::config::KubeconfigError,
    },
    #[error("cannot load {place}{}: {source}", .context.as_ref().map(|c| format!(" (context {c})")).unwrap_or_default())]
    LoadKubeconfig {
        place: String,
        context: Option<String>,
        source: ::kube::config::KubeconfigError,
    },
    #[error("cannot build a client from {place}: {source}")]
    Client {
        place: String,
        source: ::kube::Error,
    },
    #[error("waiting for CRD {name} to be Established: {source}")]
    CrdNotEstablished {
        name: String,
        source: ::kube::runtime::wait::Error,
    },
    #[error(
        "run id {run_id:?} is not a valid label value (up to 63 characters [A-Za-z0-9._-], \
         alphanumeric at both ends)"
    )]
    InvalidRunId { run_id: String },
    #[error("cannot discover {}/{} {} on the cluster: {source}", .kind.group, .kind.version, .kind.kind)]
    Discovery {
        kind: GroupVersionKind,
        source: ::kube::Error,
    },
    /// The cluster serves no such kind: its CRD is missing.
    #[error(transparent)]
    MissingKind(#[from] MissingKind),
    /// The API server refused a generated object (not from a manifest file: those are
    /// [`BackendError::Manifest`]).
    #[error("{object}: {reason}")]
    Refused { object: String, reason: String },
    /// Another writer changed the object since it was read (409 on an apply that carried the
    /// resourceVersion it read): a read-modify-write retries from a fresh read.
    #[error("{object}: {reason}")]
    Conflict { object: String, reason: String },
    /// A wait or a generated object names a kind the cluster does not serve.
    #[error("{object}: {source}")]
    Unresolved { object: String, source: MissingKind },
    #[error("cannot read {object}: {source}")]
    Read {
        object: String,
        source: ::kube::Error,
    },
    #[error("cannot encode Upstream {name}: {source}")]
    EncodeUpstream {
        name: String,
        source: serde_json::Error,
    },
    #[error("cannot delete {object}: {source}")]
    Delete {
        object: String,
        source: ::kube::Error,
    },
    /// Deleting (or listing) every object of `what` carrying the run label failed.
    #[error("cannot {verb} {what} labelled {selector}: {source}")]
    Labelled {
        verb: &'static str,
        what: String,
        selector: String,
        source: ::kube::Error,
    },
    #[error("cannot read the kubeconfig for glooctl: {0}")]
    GlooctlKubeconfig(#[source] ::kube::config::KubeconfigError),
    #[error("cannot write a kubeconfig for glooctl: {0}")]
    EncodeGlooctlKubeconfig(#[source] serde_norway::Error),
    #[error(
        "glooctl is not installed ({} not found); install it with `{install}` and put \
         ~/.gloo/bin on PATH",
        .program.display()
    )]
    GlooctlMissing {
        program: PathBuf,
        install: &'static str,
    },
    #[error("Service {service} does not exist: is the gateway installed?")]
    NoGatewayService { service: String },
    #[error("cannot watch Service {service}: {source}")]
    WatchService {
        service: String,
        source: ::kube::runtime::wait::Error,
    },
    #[error("Service {service} has a load balancer without hostname or IP")]
    NoLoadBalancerAddress { service: String },
    #[error("{object} as the API server serves it does not load: {message}")]
    Decode { object: String, message: String },
    #[error("pod {pod} is ready but has no address in its status (status.podIP)")]
    NoPodAddress { pod: String },
    #[error(transparent)]
    MissingSchemas(#[from] super::gateway_api::MissingSchemas),
    /// The gateway under test set a condition to `False`.
    #[error(
        "{object}{}: {condition} is False ({reason}): {message}",
        .parent.as_ref().map(|p| format!(" (parent {p})")).unwrap_or_default()
    )]
    Rejected {
        object: String,
        parent: Option<String>,
        condition: String,
        reason: String,
        message: String,
    },
    #[error(
        "no Gateway (gateway.networking.k8s.io) was applied yet, so there is no proxy to reach: \
         --gateway {gateway} serves the Gateways the scenario applies"
    )]
    NoGatewayApplied { gateway: &'static str },
    #[error("cannot find {what}, which {gateway} deploys for Gateway {owner}: {detail}")]
    GatewayServiceMissing {
        what: String,
        gateway: &'static str,
        owner: String,
        detail: String,
    },
    #[error("cannot look up {what}: {source}")]
    GatewayServiceLookup { what: String, source: ::kube::Error },
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(
        "cleanup of run {run_id} was incomplete: {}; remove the rest with `kubectl delete \
         ns,all -A -l {selector}`",
        .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    CleanupIncomplete {
        run_id: String,
        failures: Vec<KubeError>,
        selector: String,
    },
    #[error(
        "no Docker engine is reachable (DOCKER_HOST or /var/run/docker.sock): start Docker to run \
         a disposable K3s"
    )]
    NoDocker,
    #[error("cannot start K3s in Docker: {0}")]
    StartK3s(#[source] testcontainers_modules::testcontainers::TestcontainersError),
    #[error("K3s exposes no API port: {0}")]
    K3sPort(#[source] testcontainers_modules::testcontainers::TestcontainersError),
}

impl From<KubeError> for BackendError {
    fn from(error: KubeError) -> Self {
        Self::Cluster(Box::new(error))
    }
}

impl From<ForwardError> for BackendError {
    fn from(error: ForwardError) -> Self {
        KubeError::Forward(error).into()
    }
}

/// A kind the cluster does not serve: its CRD is not installed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the cluster has no CRD for {} {} ({}); {}",
    api_version(.kind), .kind.kind, crd_name(.kind), hint(.kind)
)]
pub struct MissingKind {
    pub kind: GroupVersionKind,
}

fn api_version(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        gvk.version.clone()
    } else {
        format!("{}/{}", gvk.group, gvk.version)
    }
}

/// What to install for a missing kind.
fn hint(gvk: &GroupVersionKind) -> &'static str {
    match gvk.group.as_str() {
        "gateway.solo.io" | "gloo.solo.io" => "install Gloo or apply ../shared/schemas/gloo/",
        "appmesh.k8s.aws" => "install the App Mesh controller or apply ../shared/schemas/appmesh/",
        "gateway.networking.k8s.io" => {
            "apply the Gateway API CRDs from ../shared/schemas/gateway-api/ (cluster runs of a \
             Gateway API gateway install them)"
        }
        _ => "install the CustomResourceDefinition that serves it",
    }
}

fn crd_name(gvk: &GroupVersionKind) -> String {
    format!("{}s.{}", gvk.kind.to_lowercase(), gvk.group)
}

/// What a wait or a liveness check saw instead of its condition.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotYet {
    /// The last observation, as the watch described it.
    #[error("{0}")]
    Seen(String),
    /// One line per change the gateway does not serve yet.
    #[error("{}", .0.join("; "))]
    Behind(Vec<String>),
    #[error("{0}")]
    Unreachable(#[from] ForwardError),
    #[error("{proxy} /status answered {status}")]
    Status { proxy: &'static str, status: u16 },
    #[error("{proxy} /status: unexpected JSON: {source}")]
    Json {
        proxy: &'static str,
        source: serde_json::Error,
    },
    /// Boxed: a cluster failure is rare and large, and waits return `NotYet` on every poll.
    #[error("{0}")]
    Failed(Box<KubeError>),
    #[error("{0}")]
    Backend(#[from] BackendError),
}

impl From<KubeError> for NotYet {
    fn from(error: KubeError) -> Self {
        Self::Failed(Box::new(error))
    }
}

/// A wait that ran out: what it saw last.
#[derive(Debug)]
pub(crate) struct TimedOut {
    pub(crate) last: NotYet,
}

/// A timeout of `condition` after `timeout` with its last observation.
pub(crate) fn wait_timeout(
    condition: &impl std::fmt::Display,
    timeout: Duration,
    TimedOut { last }: TimedOut,
) -> BackendError {
    BackendError::Timeout {
        condition: condition.to_string(),
        timeout,
        detail: Some(format!("last seen: {last}")),
    }
}

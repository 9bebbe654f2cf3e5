//! What a cluster run is, decided before anything talks to a cluster: which provider and which
//! gateway (used as `backend::{Provider, ClusterGateway}`). They live outside `backend::kube` (the
//! `kube` feature) so that `cargo xtask` can check a cluster run's flags and tools without kube-rs.

/// Which kind of cluster runs the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// kind (Kubernetes in Docker).
    Kind,
    /// Amazon EKS, with the real App Mesh controller.
    Eks,
    /// A disposable K3s in Docker via testcontainers (`backend::kube::k3s`).
    K3s,
}

impl Provider {
    /// The backend's report name, and the `--provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Kind => "kind",
            Provider::Eks => "eks",
            Provider::K3s => "k3s",
        }
    }
}

/// Which gateway serves the Gloo resources in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterGateway {
    /// Real Gloo Edge (its own discovery writes the Upstreams).
    Gloo,
    /// The workspace's gateway-proxy (`ingress --kubernetes`); the backend emulates discovery.
    Builtin,
}

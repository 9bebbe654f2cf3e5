//! Which kind of cluster a cluster backend runs on. Kept outside [`super::kube`] because
//! `cargo xtask cluster` creates and deletes clusters by the same name without kube-rs.

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

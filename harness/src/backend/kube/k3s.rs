//! A disposable K3s cluster in Docker (testcontainers' K3s module), for live tests and
//! `--backend k3s`.
//!
//! [`docker_available`] answers quickly and never hangs, so callers check it first and skip
//! with a message when no Docker engine is reachable. The container is removed when the
//! [`K3sCluster`] is dropped.
//!
//! The cluster starts empty: the colormesh images must be pullable from a registry (set
//! [`super::KubeSettings::registry`]) or imported into the node (`k3s ctr images import`), and the
//! CRDs installed with [`super::KubeBackend::install_crds`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

use super::KubeError;
use crate::backend::BackendError;

/// How long the Docker check may take.
const DOCKER_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether a Docker engine answers: `DOCKER_HOST` (`unix://` or `tcp://`) or the default socket.
/// Only connects; takes at most half a second.
pub fn docker_available() -> bool {
    docker_reachable(std::env::var("DOCKER_HOST").ok().as_deref())
}

fn docker_reachable(docker_host: Option<&str>) -> bool {
    match docker_host.filter(|h| !h.is_empty()) {
        Some(host) => {
            if let Some(path) = host.strip_prefix("unix://") {
                unix_socket_answers(Path::new(path))
            } else if let Some(addr) = host.strip_prefix("tcp://") {
                use std::net::ToSocketAddrs;
                addr.to_socket_addrs()
                    .ok()
                    .into_iter()
                    .flatten()
                    .any(|a| std::net::TcpStream::connect_timeout(&a, DOCKER_PROBE_TIMEOUT).is_ok())
            } else {
                false
            }
        }
        None => unix_socket_answers(Path::new("/var/run/docker.sock")),
    }
}

#[cfg(unix)]
fn unix_socket_answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(not(unix))]
fn unix_socket_answers(_path: &Path) -> bool {
    false
}

/// A running K3s container and a kubeconfig that reaches it from this machine.
pub struct K3sCluster {
    container: ContainerAsync<K3s>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for K3sCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sCluster")
            .field("container", &self.container.id())
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl K3sCluster {
    /// Starts K3s (privileged, as K3s needs) and writes its kubeconfig with the mapped API port.
    pub async fn start() -> Result<Self, BackendError> {
        if !docker_available() {
            return Err(KubeError::NoDocker.into());
        }
        let dir = tempfile::TempDir::with_prefix("colormesh-k3s-").map_err(|source| {
            BackendError::Io {
                context: "cannot create a folder for the K3s kubeconfig".into(),
                source,
            }
        })?;
        let image = K3s::default()
            .with_conf_mount(dir.path())
            .with_privileged(true)
            .with_userns_mode("host");
        let container = image.start().await.map_err(KubeError::StartK3s)?;
        let port = container
            .get_host_port_ipv4(KUBE_SECURE_PORT)
            .await
            .map_err(KubeError::K3sPort)?;
        let text = container
            .image()
            .read_kube_config()
            .map_err(|source| BackendError::Io {
                context: "cannot read the K3s kubeconfig".into(),
                source,
            })?;
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig, with_api_port(&text, port)).map_err(|source| {
            BackendError::Io {
                context: format!("cannot write {}", kubeconfig.display()),
                source,
            }
        })?;
        tracing::info!(kubeconfig = %kubeconfig.display(), port, "K3s started");
        Ok(Self {
            container,
            kubeconfig,
            _dir: dir,
        })
    }

    /// The kubeconfig file (context `default`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The Docker container id (to import images with `docker exec <id> ctr images import`).
    pub fn container_id(&self) -> &str {
        self.container.id()
    }
}

/// K3s writes `server: https://127.0.0.1:6443`; from the host the API is on the mapped port.
fn with_api_port(kubeconfig: &str, port: u16) -> String {
    kubeconfig.replace("127.0.0.1:6443", &format!("127.0.0.1:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_points_at_the_mapped_port() {
        let text = "clusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n";
        assert!(with_api_port(text, 40123).contains("server: https://127.0.0.1:40123"));
    }

    #[test]
    fn an_unreachable_docker_host_is_reported_quickly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = format!("unix://{}", dir.path().join("docker.sock").display());
        let started = std::time::Instant::now();
        assert!(!docker_reachable(Some(&missing)));
        assert!(!docker_reachable(Some("ssh://nowhere")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_listening_socket_counts_as_docker() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert!(docker_reachable(Some(&format!(
            "unix://{}",
            path.display()
        ))));
    }
}

//! The command line every gateway under test accepts: gateway-proxy itself, `envoy-control`
//! and the test-only mutant gateways. The harness's local backend starts all of them the same way
//! (`<program> ingress|sidecar ... --config-dir D --listen A --admin B --seed N`), so the role
//! arguments are defined once, here; each binary adds its own flags as global arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::Role;

/// `ingress` or `sidecar --node N --namespace NS`, each with the common arguments.
#[derive(Debug, Clone, Subcommand)]
pub enum RoleCommand {
    /// Gloo's gateway-proxy: VirtualServices, Upstreams and UpstreamGroups.
    Ingress(GatewayArgs),
    /// The App Mesh Envoy beside one VirtualNode, routing its workload's outbound calls.
    Sidecar {
        /// The VirtualNode this sidecar belongs to.
        #[arg(long)]
        node: String,
        /// The namespace of that VirtualNode.
        #[arg(long)]
        namespace: String,
        #[command(flatten)]
        common: GatewayArgs,
    },
}

impl RoleCommand {
    /// The role and the common arguments.
    pub fn into_parts(self) -> (Role, GatewayArgs) {
        match self {
            Self::Ingress(common) => (Role::Ingress, common),
            Self::Sidecar {
                node,
                namespace,
                common,
            } => (Role::Sidecar { node, namespace }, common),
        }
    }
}

/// What every gateway under test is told: where its configuration is and where to listen.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Directory of Kubernetes YAML manifests to serve (watched for changes).
    #[arg(long)]
    pub config_dir: PathBuf,
    /// Data-plane listen address (port 0 picks a free port; the real one is announced).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listen address (/ready, /status, /config_dump, /metrics, POST /reload).
    #[arg(long, default_value = "127.0.0.1:19000")]
    pub admin: SocketAddr,
    /// Seed for weighted picks and request ids (repeatable runs); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl GatewayArgs {
    /// Fails unless `--config-dir` is a directory.
    pub fn check_config_dir(&self) -> Result<(), std::io::Error> {
        if self.config_dir.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "--config-dir {} is not a directory",
                    self.config_dir.display()
                ),
            ))
        }
    }
}

//! The command line every gateway under test accepts: gateway-proxy itself, `envoy-control`
//! and the test-only mutant gateways. The harness's local backend starts all of them the same way
//! (`<program> ingress|sidecar ... --config-dir D --listen A --admin B --seed N`; in a cluster
//! gateway-proxy is given `--kubernetes` instead of `--config-dir`), so the role
//! arguments are defined once, here; each binary adds its own flags as global arguments.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand};
use routing::{GatewayName, Role};

/// `ingress [--gateway NS/NAME]` or `sidecar [--node N] --namespace NS`, each with the common
/// arguments.
#[derive(Debug, Clone, Subcommand)]
pub enum RoleCommand {
    /// The edge proxy: Gloo's gateway-proxy (VirtualServices, Upstreams, UpstreamGroups) and a
    /// Gateway API gateway (the Gateways whose GatewayClass names `colormesh.dev/gateway-proxy`,
    /// and their HTTPRoutes).
    Ingress {
        /// Serve only this Gateway, given as NAMESPACE/NAME.
        #[arg(long, value_name = "NAMESPACE/NAME")]
        gateway: Option<GatewayName>,
        #[command(flatten)]
        common: GatewayArgs,
    },
    /// A workload's sidecar, routing its outbound calls: the App Mesh Envoy of one VirtualNode
    /// (`--node`), or without `--node` a GAMMA mesh sidecar (HTTPRoutes whose parent is a Service).
    Sidecar {
        /// The App Mesh VirtualNode this sidecar belongs to.
        #[arg(long)]
        node: Option<String>,
        /// The namespace of the workload (and of its VirtualNode).
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
            Self::Ingress { gateway, common } => (Role::Ingress { gateway }, common),
            Self::Sidecar {
                node: Some(node),
                namespace,
                common,
            } => (Role::Sidecar { node, namespace }, common),
            Self::Sidecar {
                node: None,
                namespace,
                common,
            } => (Role::MeshSidecar { namespace }, common),
        }
    }
}

/// What every gateway under test is told: where its configuration is and where to listen.
///
/// The configuration comes from exactly one source: `--config-dir DIR` (every gateway) or
/// `--kubernetes` (the API server; only gateway-proxy serves it, see [`GatewayArgs::config_dir`]).
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("config_source")
        .required(true)
        .args(["config_dir", "kubernetes"])
))]
pub struct GatewayArgs {
    /// Directory of Kubernetes YAML manifests to serve (watched for changes).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Read the configuration from the Kubernetes API server (in-cluster service account or
    /// KUBECONFIG) instead of a directory.
    #[arg(long)]
    pub kubernetes: bool,
    /// Data-plane listen address (port 0 picks a free port; the real one is announced).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listen address (/ready, /status, /config_dump, /metrics, POST /reload).
    #[arg(long, default_value = "127.0.0.1:19000")]
    pub admin: SocketAddr,
    /// Seed for weighted picks and request ids (repeatable runs); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Trace with AWS X-Ray, sending segments over UDP to this daemon (`host:port`), as Envoy
    /// does with its X-Ray tracer; without it trace headers pass through untouched.
    #[arg(long, value_name = "HOST:PORT")]
    pub xray_daemon: Option<String>,
    /// With --xray-daemon: the segments' name (default: `ingress`, or the sidecar's --node).
    #[arg(long, value_name = "NAME", requires = "xray_daemon")]
    pub xray_segment_name: Option<String>,
    /// With --xray-daemon: the share of requests without a sampling decision that are traced,
    /// after the first of each second (Envoy's and the SDK's default rule is 0.05).
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 0.05,
        requires = "xray_daemon"
    )]
    pub xray_sampling_rate: f64,
}

/// Where a gateway's configuration comes from, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice<'a> {
    /// `--config-dir DIR`.
    ConfigDir(&'a Path),
    /// `--kubernetes`.
    Kubernetes,
}

/// A command line a gateway cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--kubernetes` given to a gateway that reads only directories.
    #[error("{program} reads only --config-dir; --kubernetes is served by gateway-proxy")]
    KubernetesUnsupported {
        /// The gateway's program name.
        program: String,
    },
    /// `--config-dir` names something that is not a directory.
    #[error("--config-dir {}: not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
}

impl GatewayArgs {
    /// The configuration source chosen (clap guarantees exactly one).
    pub fn source(&self) -> SourceChoice<'_> {
        match &self.config_dir {
            Some(dir) => SourceChoice::ConfigDir(dir),
            None => SourceChoice::Kubernetes,
        }
    }

    /// The configuration directory, for gateways that read only directories (`program` names
    /// the gateway in the error): fails for `--kubernetes` and when the path is not a directory.
    pub fn config_dir(&self, program: &str) -> Result<&Path, CliError> {
        match self.source() {
            SourceChoice::ConfigDir(dir) => check_dir(dir),
            SourceChoice::Kubernetes => Err(CliError::KubernetesUnsupported {
                program: program.to_owned(),
            }),
        }
    }
}

/// Fails unless `dir` is a directory.
pub fn check_dir(dir: &Path) -> Result<&Path, CliError> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(CliError::NotADirectory {
            path: dir.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        role: RoleCommand,
    }

    fn parse(args: &[&str]) -> Result<GatewayArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("gw").chain(args.iter().copied()))
            .map(|cli| cli.role.into_parts().1)
    }

    #[test]
    fn exactly_one_source_is_required() {
        let neither = parse(&["ingress"]).expect_err("a source is required");
        assert_eq!(
            neither.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let both = parse(&["ingress", "--config-dir", "/tmp", "--kubernetes"])
            .expect_err("only one source");
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn each_source_parses_for_both_roles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_arg = dir.path().to_str().expect("utf-8 path");
        let ingress = parse(&["ingress", "--config-dir", dir_arg]).expect("config dir");
        assert_eq!(ingress.source(), SourceChoice::ConfigDir(dir.path()));
        assert_eq!(ingress.config_dir("gw").expect("a directory"), dir.path());

        let sidecar = parse(&[
            "sidecar",
            "--node",
            "colorteller",
            "--namespace",
            "appmesh-demo",
            "--kubernetes",
        ])
        .expect("kubernetes");
        assert_eq!(sidecar.source(), SourceChoice::Kubernetes);
        assert_eq!(
            sidecar
                .config_dir("envoy-control")
                .expect_err("not a directory source")
                .to_string(),
            "envoy-control reads only --config-dir; --kubernetes is served by gateway-proxy"
        );
    }

    #[test]
    fn a_config_dir_that_is_not_a_directory_is_named() {
        let args = parse(&["ingress", "--config-dir", "/nonexistent/colormesh"]).expect("parses");
        assert_eq!(
            args.config_dir("gw")
                .expect_err("not a directory")
                .to_string(),
            "--config-dir /nonexistent/colormesh: not a directory"
        );
    }
}

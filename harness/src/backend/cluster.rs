//! What a cluster run is, decided before anything talks to a cluster: which provider and which
//! gateway (used as `backend::{Provider, ClusterGateway}`), and which configuration dialect a
//! scenario speaks, so a gateway that cannot serve it is refused up front. They live outside
//! `backend::kube` (the `kube` feature) so that `cargo xtask` can check a cluster run's flags and
//! tools without kube-rs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::scenario::{Action, Scenario};

/// Which kind of cluster runs the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// kind (Kubernetes in Docker).
    Kind,
    /// Amazon EKS (without App Mesh, discontinued on 2026-09-30: the builtin sidecar is injected).
    Eks,
    /// A disposable K3s in Docker via testcontainers (`backend::kube::k3s`).
    K3s,
    /// The real control plane on this machine, built from source (`backend::apiserver`): Pods
    /// are local processes on their own addresses, reached directly, and glooctl and kubectl
    /// are the harness's emulations over the API server's objects.
    Apiserver,
}

impl Provider {
    /// The backend's report name, and the `--provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Kind => "kind",
            Provider::Eks => "eks",
            Provider::K3s => "k3s",
            Provider::Apiserver => "apiserver",
        }
    }
}

/// Which gateway serves the scenario's ingress resources in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterGateway {
    /// Real Gloo Edge (its own discovery writes the Upstreams).
    Gloo,
    /// The workspace's gateway-proxy (`ingress --kubernetes`); the backend emulates discovery.
    Builtin,
    /// kgateway (Gloo Edge's open-source successor), Gateway API only.
    Kgateway,
    /// Envoy Gateway, Gateway API only.
    EnvoyGateway,
    /// Istio's Gateway API support (istiod's gateway controller).
    Istio,
}

/// A GatewayClass and the controller that claims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayClassRef {
    /// `metadata.name` of the GatewayClass, what a Gateway's `spec.gatewayClassName` names.
    pub name: &'static str,
    /// `spec.controllerName`, which is also the `controllerName` of a route's status parent.
    pub controller: &'static str,
}

/// The GatewayClass the checked-in Gateway API manifests name: the builtin gateway's.
pub const BUILTIN_GATEWAY_CLASS: GatewayClassRef = GatewayClassRef {
    name: "colormesh",
    controller: "colormesh.dev/gateway-proxy",
};

impl ClusterGateway {
    /// The `--gateway` value.
    pub fn name(self) -> &'static str {
        match self {
            ClusterGateway::Gloo => "gloo",
            ClusterGateway::Builtin => "builtin",
            ClusterGateway::Kgateway => "kgateway",
            ClusterGateway::EnvoyGateway => "envoy-gateway",
            ClusterGateway::Istio => "istio",
        }
    }

    /// The GatewayClass this gateway's controller claims; `None` for Gloo Edge, which serves no
    /// Gateway API. kgateway's and Istio's controllers create theirs; Envoy Gateway's chart does
    /// not, so `cargo xtask cluster install-envoy-gateway` applies one.
    pub fn gateway_class(self) -> Option<GatewayClassRef> {
        match self {
            ClusterGateway::Gloo => None,
            ClusterGateway::Builtin => Some(BUILTIN_GATEWAY_CLASS),
            ClusterGateway::Kgateway => Some(GatewayClassRef {
                name: "kgateway",
                controller: "kgateway.dev/kgateway",
            }),
            ClusterGateway::EnvoyGateway => Some(GatewayClassRef {
                name: "eg",
                controller: "gateway.envoyproxy.io/gatewayclass-controller",
            }),
            ClusterGateway::Istio => Some(GatewayClassRef {
                name: "istio",
                controller: "istio.io/gateway-controller",
            }),
        }
    }

    /// Whether this is one of the third-party Gateway API implementations (installed with helm,
    /// serving Gateway API scenarios only).
    pub fn is_gateway_api_only(self) -> bool {
        matches!(
            self,
            ClusterGateway::Kgateway | ClusterGateway::EnvoyGateway | ClusterGateway::Istio
        )
    }

    /// The ingress dialects this gateway serves.
    pub fn speaks(self) -> &'static [Dialect] {
        match self {
            ClusterGateway::Builtin => &[Dialect::GatewayApi, Dialect::Gloo, Dialect::AppMesh],
            ClusterGateway::Gloo => &[Dialect::Gloo, Dialect::AppMesh],
            ClusterGateway::Kgateway | ClusterGateway::EnvoyGateway | ClusterGateway::Istio => {
                &[Dialect::GatewayApi]
            }
        }
    }

    /// Refuses a scenario whose ingress dialect this gateway does not speak.
    pub fn check_serves(
        self,
        scenario: &str,
        dialect: Option<Dialect>,
    ) -> Result<(), UnservedScenario> {
        match dialect {
            Some(dialect) if !self.speaks().contains(&dialect) => Err(UnservedScenario {
                scenario: scenario.to_owned(),
                gateway: self,
                dialect,
            }),
            _ => Ok(()),
        }
    }
}

/// The configuration dialects a scenario's resources can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dialect {
    /// Kubernetes Gateway API (`gateway.networking.k8s.io`).
    GatewayApi,
    /// Gloo Edge (`gateway.solo.io`, `gloo.solo.io`, or glooctl steps).
    Gloo,
    /// AWS App Mesh (`appmesh.k8s.aws`).
    AppMesh,
}

impl Dialect {
    /// The dialect of an `apiVersion`, `None` for core Kubernetes and anything else.
    pub fn of_api_version(api_version: &str) -> Option<Dialect> {
        let group = api_version.split_once('/').map_or("", |(group, _)| group);
        match group {
            "gateway.networking.k8s.io" => Some(Dialect::GatewayApi),
            "gateway.solo.io" | "gloo.solo.io" => Some(Dialect::Gloo),
            "appmesh.k8s.aws" => Some(Dialect::AppMesh),
            _ => None,
        }
    }

    /// The API groups that say so, for messages.
    pub fn groups(self) -> &'static str {
        match self {
            Dialect::GatewayApi => "gateway.networking.k8s.io",
            Dialect::Gloo => "gateway.solo.io/gloo.solo.io",
            Dialect::AppMesh => "appmesh.k8s.aws",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::GatewayApi => "Gateway API",
            Dialect::Gloo => "Gloo Edge",
            Dialect::AppMesh => "App Mesh",
        })
    }
}

/// The dialect a scenario's ingress is configured in, from the `apiVersion`s of the resources it
/// applies and whether it runs glooctl. Gateway API wins (a Gateway API scenario still applies
/// the colorapp, whose mesh is App Mesh); then Gloo; then App Mesh; `None` when it applies only
/// core Kubernetes kinds.
pub fn ingress_dialect<'a>(
    api_versions: impl IntoIterator<Item = &'a str>,
    runs_glooctl: bool,
) -> Option<Dialect> {
    let mut found: Vec<Dialect> = api_versions
        .into_iter()
        .filter_map(Dialect::of_api_version)
        .collect();
    if runs_glooctl {
        found.push(Dialect::Gloo);
    }
    found.into_iter().min()
}

/// A scenario whose files cannot be read to decide its dialect.
#[derive(Debug, thiserror::Error)]
#[error("scenario {scenario}: cannot read {}: {source}", .path.display())]
pub struct DialectError {
    pub scenario: String,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// [`ingress_dialect`] of a scenario: the kinds of every file its `apply` steps name (relative to
/// `manifests_dir`), and its glooctl steps. Documents that do not load still count by their
/// header; the backends report them when the step runs.
pub fn scenario_dialect(
    scenario: &Scenario,
    manifests_dir: &Path,
) -> Result<Option<Dialect>, DialectError> {
    let mut api_versions = Vec::new();
    let mut runs_glooctl = false;
    for step in &scenario.steps {
        match &step.action {
            Action::Apply(paths) => {
                for path in paths {
                    let full = manifests_dir.join(path);
                    let parsed =
                        model::load_paths(std::slice::from_ref(&full)).map_err(|source| {
                            DialectError {
                                scenario: scenario.name.clone(),
                                path: full.clone(),
                                source,
                            }
                        })?;
                    api_versions.extend(
                        parsed
                            .resources
                            .iter()
                            .map(|loaded| loaded.resource.key().kind.api_version().to_owned()),
                    );
                }
            }
            Action::Glooctl(_) => runs_glooctl = true,
            _ => {}
        }
    }
    Ok(ingress_dialect(
        api_versions.iter().map(String::as_str),
        runs_glooctl,
    ))
}

/// A scenario in a dialect the gateway under test does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "scenario {scenario} is a {dialect} scenario (it uses {}), but --gateway {} speaks {} only: \
     run it with --gateway {}",
    .dialect.groups(),
    .gateway.name(),
    .gateway.speaks().iter().map(|d| format!("{d} ({})", d.groups())).collect::<Vec<_>>().join(", "),
    serving(*.dialect)
)]
pub struct UnservedScenario {
    pub scenario: String,
    pub gateway: ClusterGateway,
    pub dialect: Dialect,
}

/// The `--gateway` values that serve a dialect, for the way out of a refusal.
fn serving(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::GatewayApi => "builtin, kgateway, envoy-gateway or istio",
        Dialect::Gloo | Dialect::AppMesh => "builtin or gloo",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_groups_decide_the_dialect() {
        assert_eq!(
            Dialect::of_api_version("gateway.networking.k8s.io/v1"),
            Some(Dialect::GatewayApi)
        );
        assert_eq!(
            Dialect::of_api_version("gateway.networking.k8s.io/v1beta1"),
            Some(Dialect::GatewayApi)
        );
        assert_eq!(
            Dialect::of_api_version("gateway.solo.io/v1"),
            Some(Dialect::Gloo)
        );
        assert_eq!(
            Dialect::of_api_version("gloo.solo.io/v1"),
            Some(Dialect::Gloo)
        );
        assert_eq!(
            Dialect::of_api_version("appmesh.k8s.aws/v1beta2"),
            Some(Dialect::AppMesh)
        );
        for other in [
            "v1",
            "apps/v1",
            "networking.k8s.io/v1",
            "gateway.networking.k8s.io",
        ] {
            assert_eq!(Dialect::of_api_version(other), None, "{other}");
        }
    }

    #[test]
    fn the_ingress_dialect_prefers_gateway_api_then_gloo_then_app_mesh() {
        let colorapp = ["v1", "apps/v1", "appmesh.k8s.aws/v1beta2"];
        assert_eq!(ingress_dialect(colorapp, false), Some(Dialect::AppMesh));
        assert_eq!(ingress_dialect(colorapp, true), Some(Dialect::Gloo));
        let gloo = [
            "appmesh.k8s.aws/v1beta2",
            "gateway.solo.io/v1",
            "gloo.solo.io/v1",
        ];
        assert_eq!(ingress_dialect(gloo, false), Some(Dialect::Gloo));
        let gateway_api = [
            "appmesh.k8s.aws/v1beta2",
            "gateway.networking.k8s.io/v1",
            "apps/v1",
        ];
        assert_eq!(
            ingress_dialect(gateway_api, false),
            Some(Dialect::GatewayApi)
        );
        assert_eq!(ingress_dialect(["v1", "apps/v1"], false), None);
        assert_eq!(ingress_dialect([], false), None);
    }

    #[test]
    fn gateway_api_gateways_refuse_other_dialects_with_the_way_out() {
        let error = ClusterGateway::Kgateway
            .check_serves("Walkthrough", Some(Dialect::Gloo))
            .expect_err("kgateway does not speak Gloo Edge");
        assert_eq!(
            error.to_string(),
            "scenario Walkthrough is a Gloo Edge scenario (it uses gateway.solo.io/gloo.solo.io), \
             but --gateway kgateway speaks Gateway API (gateway.networking.k8s.io) only: run it \
             with --gateway builtin or gloo"
        );
        let mesh = ClusterGateway::Istio
            .check_serves("MeshSplit", Some(Dialect::AppMesh))
            .expect_err("Istio here serves Gateway API")
            .to_string();
        assert!(
            mesh.contains("App Mesh scenario (it uses appmesh.k8s.aws)"),
            "{mesh}"
        );
        assert!(
            mesh.contains("--gateway istio speaks Gateway API"),
            "{mesh}"
        );
        let gloo = ClusterGateway::Gloo
            .check_serves("HTTPRouteWeight", Some(Dialect::GatewayApi))
            .expect_err("Gloo Edge serves no Gateway API")
            .to_string();
        assert!(
            gloo.ends_with("run it with --gateway builtin, kgateway, envoy-gateway or istio"),
            "{gloo}"
        );
        for gateway in [
            ClusterGateway::Kgateway,
            ClusterGateway::EnvoyGateway,
            ClusterGateway::Istio,
            ClusterGateway::Builtin,
        ] {
            gateway
                .check_serves("HTTPRouteWeight", Some(Dialect::GatewayApi))
                .expect("speaks Gateway API");
            gateway.check_serves("Plain", None).expect("no dialect");
        }
        ClusterGateway::Builtin
            .check_serves("Walkthrough", Some(Dialect::Gloo))
            .expect("builtin speaks everything");
    }

    #[test]
    fn gateway_classes_and_controllers_are_the_implementations_own() {
        let class = |g: ClusterGateway| g.gateway_class().map(|c| (c.name, c.controller));
        assert_eq!(
            class(ClusterGateway::Kgateway),
            Some(("kgateway", "kgateway.dev/kgateway"))
        );
        assert_eq!(
            class(ClusterGateway::EnvoyGateway),
            Some(("eg", "gateway.envoyproxy.io/gatewayclass-controller"))
        );
        assert_eq!(
            class(ClusterGateway::Istio),
            Some(("istio", "istio.io/gateway-controller"))
        );
        assert_eq!(
            class(ClusterGateway::Builtin),
            Some(("colormesh", "colormesh.dev/gateway-proxy"))
        );
        assert_eq!(class(ClusterGateway::Gloo), None);
    }

    #[test]
    fn a_scenario_applying_a_gateway_and_the_colorapp_is_a_gateway_api_scenario() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("gateway.yaml"),
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\n\
             spec: {gatewayClassName: colormesh, listeners: [{name: http, port: 80, protocol: HTTP}]}\n---\n\
             apiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\nmetadata: {name: color-mesh}\nspec: {}\n",
        )
        .expect("write");
        let scenario = crate::scenario::parse(
            "name: Split\ndescription: d\nfeatures: [canary]\nsteps:\n  - apply: gateway.yaml\n",
            Path::new("split.yaml"),
        )
        .expect("scenario");
        assert_eq!(
            scenario_dialect(&scenario, dir.path()).expect("readable"),
            Some(Dialect::GatewayApi)
        );
        let missing = crate::scenario::parse(
            "name: Gone\ndescription: d\nfeatures: [canary]\nsteps:\n  - apply: nowhere.yaml\n",
            Path::new("gone.yaml"),
        )
        .expect("scenario");
        let error = scenario_dialect(&missing, dir.path()).expect_err("no such file");
        assert!(error.to_string().contains("nowhere.yaml"), "{error}");
    }

    #[test]
    fn the_walkthrough_is_a_gloo_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let scenario = crate::scenario::load(&root.join("scenarios/walkthrough.yaml"))
            .expect("walkthrough loads");
        assert_eq!(
            scenario_dialect(&scenario, &root.join("manifests")).expect("readable"),
            Some(Dialect::Gloo)
        );
    }
}

//! `cargo xtask cluster`: create and delete the kind or EKS cluster the cluster backends run on,
//! and install what runs in it besides the scenario's own resources (Gloo Edge or a Gateway API
//! gateway with helm, the builtin gateway from `manifests/cluster/gateway-proxy/`).
//!
//! Every task is a plan of [`Step`]s built without side effects (unit-tested below) and then run
//! by [`run_plan`], which echoes each command. The tools a plan needs are checked up front with
//! [`require`].

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use harness::backend::{ClusterGateway, Provider};
use model::gloo::GLOO_NAMESPACE;

use crate::command::{CommandLine, Step, run_plan};
use crate::images;
use crate::tools::{Tool, require};

/// Default `--name`: the kind cluster (kubectl context `kind-colormesh`) or the EKS cluster.
pub(crate) const DEFAULT_CLUSTER_NAME: &str = "colormesh";
/// Default `--region`, the walkthrough's.
pub(crate) const DEFAULT_REGION: &str = "us-west-2";

/// The Gloo Edge OSS release installed by default (`--gloo-version` overrides it). The latest
/// 1.x patch release on github.com/solo-io/gloo/releases when this was written (v1.22.3).
pub(crate) const GLOO_VERSION: &str = "1.22.3";
pub(crate) const GLOO_HELM_REPO: &str = "https://storage.googleapis.com/solo-public-helm";

/// kgateway (Gloo Edge's open-source successor, Gateway API only), installed by default
/// (`--kgateway-version` overrides it): the latest release on github.com/kgateway-dev/kgateway/
/// releases when this was written (v2.5.2, 2026-11-13). Two OCI charts, `kgateway-crds` (its own
/// CRDs; the Gateway API CRDs come from `../shared/schemas/gateway-api`) and `kgateway`.
pub(crate) const KGATEWAY_VERSION: &str = "v2.5.2";
pub(crate) const KGATEWAY_CHARTS: &str = "oci://cr.kgateway.dev/kgateway-dev/charts";
pub(crate) const KGATEWAY_NAMESPACE: &str = "kgateway-system";

/// Envoy Gateway, installed by default (`--envoy-gateway-version` overrides it): v1.9.2, the
/// newest 1.9 patch seen when this was written (gateway.envoyproxy.io lists v1.9 as the current
/// line). `gateway-crds-helm` renders its own CRDs (the Gateway API ones are left out:
/// `../shared/schemas/gateway-api` has them), `gateway-helm` is the controller.
pub(crate) const ENVOY_GATEWAY_VERSION: &str = "v1.9.2";
pub(crate) const ENVOY_GATEWAY_CHART: &str = "oci://docker.io/envoyproxy/gateway-helm";
pub(crate) const ENVOY_GATEWAY_CRDS_CHART: &str = "oci://docker.io/envoyproxy/gateway-crds-helm";
pub(crate) const ENVOY_GATEWAY_NAMESPACE: &str = "envoy-gateway-system";
/// Envoy Gateway's chart creates no GatewayClass; these create `eg` (install-time files, so they
/// live outside `manifests/`, which holds what scenarios apply). On kind and K3s it points at
/// an EnvoyProxy whose Service is ClusterIP: Envoy Gateway reports a Gateway Programmed only once
/// its Service has an address, which a LoadBalancer never gets there (the harness port-forwards).
pub(crate) const ENVOY_GATEWAY_CLASS: &str = "xtask/assets/envoy-gateway/gatewayclass.yaml";
pub(crate) const ENVOY_GATEWAY_CLASS_CLUSTER_IP: &str =
    "xtask/assets/envoy-gateway/gatewayclass-cluster-ip.yaml";

/// Istio, installed by default (`--istio-version` overrides it): 1.31.0, the latest release on
/// github.com/istio/istio/releases when this was written (2026-08-31). Charts `base` (CRDs) and
/// `istiod` (the control plane, whose gateway controller serves the Gateway API).
pub(crate) const ISTIO_VERSION: &str = "1.31.0";
pub(crate) const ISTIO_HELM_REPO: &str = "https://istio-release.storage.googleapis.com/charts";
pub(crate) const ISTIO_NAMESPACE: &str = "istio-system";

/// How long helm waits for an install to become ready.
const HELM_TIMEOUT: &str = "10m";

/// Relative to the repository root.
pub(crate) const KIND_CONFIG: &str = "manifests/cluster/kind-config.yaml";
pub(crate) const EKSCTL_CONFIG: &str = "manifests/cluster/eksctl-cluster.yaml";
pub(crate) const GATEWAY_PROXY_MANIFESTS: &str = "manifests/cluster/gateway-proxy";

/// The builtin gateway's Deployment, container and Service (all named `gateway-proxy`).
pub(crate) const GATEWAY_PROXY: &str = "gateway-proxy";
/// Merge patch that turns the builtin gateway's Service into a LoadBalancer on EKS, where the
/// walkthrough reaches the gateway through an ELB (`glooctl proxy url`).
pub(crate) const GATEWAY_PROXY_LOAD_BALANCER_PATCH: &str = r#"{"spec":{"type":"LoadBalancer"}}"#;

/// `--provider`: the clusters this command manages. K3s is not among them: `--backend k3s` starts
/// a disposable one for each run.
fn managed_provider() -> impl clap::builder::TypedValueParser<Value = Provider> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new(Provider::Kind.name()).help("A local kind cluster (Docker)"),
        PossibleValue::new(Provider::Eks.name())
            .help("Amazon EKS through eksctl (creates billable AWS resources)"),
    ])
    .map(|name| {
        if name == Provider::Eks.name() {
            Provider::Eks
        } else {
            Provider::Kind
        }
    })
}

/// Why `cluster up|down` refuses K3s when called with it from code.
/// `--backend apiserver`'s control plane lives for one run; there is nothing to create or delete.
const APISERVER_NOT_MANAGED: &str = "the apiserver backend's control plane is started for each \
     `cargo xtask e2e --backend apiserver` run and stopped after it; build it once with \
     `cargo xtask kube install`";
const K3S_NOT_MANAGED: &str =
    "K3s clusters are not managed here: `cargo xtask e2e --backend k3s` starts a disposable one";

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Create the cluster; kind: skipped when it exists already. Sets the current kubectl context.
    Up(UpArgs),
    /// Delete the cluster.
    Down(ClusterTarget),
    /// Install Gloo Edge (helm chart gloo/gloo) into gloo-system of the current kubectl context.
    InstallGloo {
        #[arg(long, value_parser = managed_provider())]
        provider: Provider,
        #[command(flatten)]
        gloo: GlooArgs,
    },
    /// Install kgateway (helm charts kgateway-crds and kgateway) into kgateway-system of the
    /// current kubectl context. Needs the Gateway API CRDs (`cluster up --gateway-api`).
    InstallKgateway {
        #[arg(long, value_parser = managed_provider())]
        provider: Provider,
        #[command(flatten)]
        versions: GatewayApiVersions,
    },
    /// Install Envoy Gateway (its CRDs, helm chart gateway-helm and GatewayClass `eg`) into
    /// envoy-gateway-system of the current kubectl context. Needs the Gateway API CRDs.
    InstallEnvoyGateway {
        #[arg(long, value_parser = managed_provider())]
        provider: Provider,
        #[command(flatten)]
        versions: GatewayApiVersions,
    },
    /// Install Istio (helm charts base and istiod, Gateway API support on) into istio-system of
    /// the current kubectl context. Needs the Gateway API CRDs.
    InstallIstio {
        #[arg(long, value_parser = managed_provider())]
        provider: Provider,
        #[command(flatten)]
        versions: GatewayApiVersions,
    },
    /// Deploy the builtin gateway (manifests/cluster/gateway-proxy/) into the current kubectl
    /// context and wait for its rollout.
    DeployGateway {
        #[arg(long, value_parser = managed_provider())]
        provider: Provider,
        /// Image tag of colormesh/gateway-proxy.
        #[arg(long, default_value = images::DEFAULT_TAG)]
        tag: String,
        /// Registry the images were pushed to (`cargo xtask images --push REGISTRY`); EKS needs one.
        #[arg(long, value_name = "REGISTRY")]
        registry: Option<String>,
    },
}

/// Which cluster: `--provider`, `--name`, `--region` (EKS only).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct ClusterTarget {
    #[arg(long, value_parser = managed_provider())]
    pub(crate) provider: Provider,
    /// Cluster name (kind: the kubectl context is `kind-<name>`).
    #[arg(long, default_value = DEFAULT_CLUSTER_NAME)]
    pub(crate) name: String,
    /// AWS region (EKS only).
    #[arg(long, default_value = DEFAULT_REGION)]
    pub(crate) region: String,
}

/// `cluster up`: the cluster, and what it should hold before any run.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) target: ClusterTarget,
    /// Also install the Gateway API CRDs (standard GatewayClass, Gateway, ReferenceGrant; the
    /// experimental HTTPRoute, which has `retry`) from `<schemas>/gateway-api`, server-side, and
    /// wait until they are Established.
    #[arg(long)]
    pub(crate) gateway_api: bool,
    /// Folder of the real CRD schemas (`gateway-api/`), relative to the repository root.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SCHEMAS)]
    pub(crate) schemas: PathBuf,
}

/// Where the shared CRD schemas are, relative to the repository root.
pub(crate) const DEFAULT_SCHEMAS: &str = "../shared/schemas";

/// `--schemas` resolved against the repository root.
pub(crate) fn schemas_root(root: &Path, schemas: &Path) -> PathBuf {
    if schemas.is_absolute() {
        schemas.to_owned()
    } else {
        root.join(schemas)
    }
}

/// The Gateway API gateways' pinned releases, for flattening into any command that installs one.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct GatewayApiVersions {
    /// kgateway helm chart version (kgateway-crds and kgateway).
    #[arg(long, default_value = KGATEWAY_VERSION, value_name = "VERSION")]
    pub(crate) kgateway_version: String,
    /// Envoy Gateway helm chart version (gateway-crds-helm and gateway-helm).
    #[arg(long, default_value = ENVOY_GATEWAY_VERSION, value_name = "VERSION")]
    pub(crate) envoy_gateway_version: String,
    /// Istio helm chart version (base and istiod).
    #[arg(long, default_value = ISTIO_VERSION, value_name = "VERSION")]
    pub(crate) istio_version: String,
}

impl GatewayApiVersions {
    /// The version installed for `gateway` and its flag; `None` for gateways not installed here.
    pub(crate) fn for_gateway(&self, gateway: ClusterGateway) -> Option<(&'static str, &str)> {
        match gateway {
            ClusterGateway::Kgateway => Some(("--kgateway-version", &self.kgateway_version)),
            ClusterGateway::EnvoyGateway => {
                Some(("--envoy-gateway-version", &self.envoy_gateway_version))
            }
            ClusterGateway::Istio => Some(("--istio-version", &self.istio_version)),
            ClusterGateway::Gloo | ClusterGateway::Builtin => None,
        }
    }
}

/// `--gloo-version`, for flattening into any command that installs Gloo.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct GlooArgs {
    /// Gloo Edge OSS helm chart version.
    #[arg(long, default_value = GLOO_VERSION, value_name = "VERSION")]
    pub(crate) gloo_version: String,
}

/// Runs `cargo xtask cluster ...`.
pub(crate) fn cluster(root: &Path, args: &ClusterArgs) -> anyhow::Result<()> {
    match &args.action {
        ClusterAction::Up(args) => {
            if args.gateway_api {
                return up_with_gateway_api(root, args);
            }
            up(root, &args.target)
        }
        ClusterAction::InstallKgateway { provider, versions } => {
            install_gateway_api_gateway(root, ClusterGateway::Kgateway, *provider, versions)
        }
        ClusterAction::InstallEnvoyGateway { provider, versions } => {
            install_gateway_api_gateway(root, ClusterGateway::EnvoyGateway, *provider, versions)
        }
        ClusterAction::InstallIstio { provider, versions } => {
            install_gateway_api_gateway(root, ClusterGateway::Istio, *provider, versions)
        }
        ClusterAction::Down(target) => down(target),
        ClusterAction::InstallGloo { provider, gloo } => {
            // The Gloo paths read the proxy address with `glooctl proxy url`: better to learn
            // that it is missing now than after a ten-minute install.
            require_glooctl()?;
            install_gloo(*provider, &gloo.gloo_version)
        }
        ClusterAction::DeployGateway {
            provider,
            tag,
            registry,
        } => deploy_gateway(root, *provider, tag, registry.as_deref()),
    }
}

/// Creates the cluster. kind: `kind create cluster` unless `kind get clusters` lists it. EKS:
/// checks the AWS credentials, renders `manifests/cluster/eksctl-cluster.yaml` with the name and
/// region to a temporary file and runs `eksctl create cluster -f` on it.
pub(crate) fn up(root: &Path, target: &ClusterTarget) -> anyhow::Result<()> {
    validate_target(target)?;
    match target.provider {
        Provider::Kind => {
            require(&[Tool::Docker, Tool::Kind, Tool::Kubectl])?;
            let existing = crate::command::read(&kind_get_clusters())?;
            if kind_cluster_exists(&target.name, &existing) {
                println!("kind cluster {} exists already", target.name);
            }
            run_plan(&kind_up_plan(
                &target.name,
                &root.join(KIND_CONFIG),
                &existing,
            ))
        }
        Provider::Eks => {
            require(&[Tool::Eksctl, Tool::Aws, Tool::Kubectl])?;
            let template_path = root.join(EKSCTL_CONFIG);
            let template = std::fs::read_to_string(&template_path)
                .with_context(|| format!("reading {}", template_path.display()))?;
            let rendered =
                render_eksctl_config(&template, &template_path, &target.name, &target.region)?;
            // Kept alive until eksctl has read it.
            let config = tempfile::Builder::new()
                .prefix("colormesh-eksctl-")
                .suffix(".yaml")
                .tempfile()
                .context("creating a temporary file for the eksctl config")?;
            std::fs::write(config.path(), rendered)
                .with_context(|| format!("writing {}", config.path().display()))?;
            run_plan(&eks_up_plan(config.path()))
        }
        Provider::K3s => bail!(K3S_NOT_MANAGED),
        Provider::Apiserver => bail!(APISERVER_NOT_MANAGED),
    }
}

/// Deletes the cluster: `kind delete cluster --name N` or
/// `eksctl delete cluster --name N --region R --wait`.
pub(crate) fn down(target: &ClusterTarget) -> anyhow::Result<()> {
    validate_target(target)?;
    match target.provider {
        Provider::Kind => {
            require(&[Tool::Kind])?;
            run_plan(&kind_down_plan(&target.name))
        }
        Provider::Eks => {
            require(&[Tool::Eksctl])?;
            run_plan(&eks_down_plan(&target.name, &target.region))
        }
        Provider::K3s => bail!(K3S_NOT_MANAGED),
        Provider::Apiserver => bail!(APISERVER_NOT_MANAGED),
    }
}

/// Installs (or upgrades to) Gloo Edge `version` with helm into `gloo-system` of the current
/// kubectl context and waits until it is ready. On kind the proxy Service is ClusterIP, since no
/// load balancer would ever give it an address and `helm --wait` would wait for one.
pub(crate) fn install_gloo(provider: Provider, version: &str) -> anyhow::Result<()> {
    validate_version("--gloo-version", version)?;
    require(&[Tool::Helm])?;
    run_plan(&gloo_install_plan(provider, version))
}

/// `cluster up --gateway-api`: the cluster, then the Gateway API CRDs through kube-rs (the
/// `cluster` feature; without it, xtask runs itself again built with it, before creating
/// anything).
fn up_with_gateway_api(root: &Path, args: &UpArgs) -> anyhow::Result<()> {
    validate_target(&args.target)?;
    let schemas = schemas_root(root, &args.schemas);
    // Checked before the cluster is created: a missing folder should not cost a cluster.
    let gateway_api = schemas.join("gateway-api");
    if !gateway_api.is_dir() {
        bail!(
            "{} does not exist: --gateway-api installs the Gateway API CRDs from there (pass \
             --schemas DIR)",
            gateway_api.display()
        );
    }
    #[cfg(feature = "cluster")]
    {
        up(root, &args.target)?;
        let context = match args.target.provider {
            Provider::Kind => Some(format!("kind-{}", args.target.name)),
            Provider::Eks | Provider::K3s | Provider::Apiserver => None,
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime")?
            .block_on(crate::cluster_e2e::install_gateway_api_crds(
                root,
                args.target.provider,
                None,
                context.as_deref(),
                &schemas,
            ))
    }
    #[cfg(not(feature = "cluster"))]
    {
        println!(
            "--gateway-api installs CRDs through kube-rs, which a local build does not include: \
             running xtask again with --features cluster"
        );
        Err(crate::cargo::exec_with_cluster_feature(root))
    }
}

/// Installs (or upgrades to) a Gateway API gateway with helm into the current kubectl context
/// and waits until it is ready. The Gateway API CRDs must be there already (`cluster up
/// --gateway-api`, or the e2e run installs them first).
pub(crate) fn install_gateway_api_gateway(
    root: &Path,
    gateway: ClusterGateway,
    provider: Provider,
    versions: &GatewayApiVersions,
) -> anyhow::Result<()> {
    let Some((flag, version)) = versions.for_gateway(gateway) else {
        bail!("--gateway {} is not installed with helm", gateway.name());
    };
    validate_version(flag, version)?;
    let Some(plan) = gateway_api_install_plan(root, gateway, provider, version) else {
        bail!("--gateway {} is not installed with helm", gateway.name());
    };
    require(&gateway_api_tools(gateway))?;
    run_plan(&plan)
}

/// The install plan of a Gateway API gateway; `None` for the builtin gateway and Gloo.
pub(crate) fn gateway_api_install_plan(
    root: &Path,
    gateway: ClusterGateway,
    provider: Provider,
    version: &str,
) -> Option<Vec<Step>> {
    match gateway {
        ClusterGateway::Kgateway => Some(kgateway_install_plan(version)),
        ClusterGateway::EnvoyGateway => Some(envoy_gateway_install_plan(root, provider, version)),
        ClusterGateway::Istio => Some(istio_install_plan(version)),
        ClusterGateway::Gloo | ClusterGateway::Builtin => None,
    }
}

/// The CLIs a Gateway API gateway's install plan runs.
pub(crate) fn gateway_api_tools(gateway: ClusterGateway) -> Vec<Tool> {
    match gateway {
        // The GatewayClass is applied with kubectl, the CRDs piped into it.
        ClusterGateway::EnvoyGateway => vec![Tool::Helm, Tool::Kubectl],
        _ => vec![Tool::Helm],
    }
}

/// Fails with an install hint unless `glooctl` is on PATH and runs.
pub(crate) fn require_glooctl() -> anyhow::Result<()> {
    Ok(require(&[Tool::Glooctl])?)
}

/// Applies the builtin gateway's manifests, points its container at the image for `tag` (and
/// `registry`), makes its Service a LoadBalancer on EKS, and waits for the rollout.
pub(crate) fn deploy_gateway(
    root: &Path,
    provider: Provider,
    tag: &str,
    registry: Option<&str>,
) -> anyhow::Result<()> {
    images::validate_tag(tag)?;
    if let Some(registry) = registry {
        images::validate_registry("--registry", registry)?;
    } else if provider == Provider::Eks {
        bail!(
            "--registry is required with --provider eks: EKS nodes pull the images, so push them \
             first with `cargo xtask images --push REGISTRY`"
        );
    }
    require(&[Tool::Kubectl])?;
    run_plan(&deploy_gateway_plan(
        &root.join(GATEWAY_PROXY_MANIFESTS),
        provider,
        &images::image_ref(registry, GATEWAY_PROXY, tag),
    ))
}

// === plans ===

fn kind_get_clusters() -> CommandLine {
    CommandLine::new("kind").args(["get", "clusters"])
}

/// `existing` is the output of `kind get clusters`, one name a line; an existing cluster is not
/// created again. Either way the plan ends by selecting the cluster's kubectl context: the helm and
/// kubectl steps that follow act on the current context, and with an existing cluster it may be
/// another one.
pub(crate) fn kind_up_plan(name: &str, config: &Path, existing: &str) -> Vec<Step> {
    let mut plan = Vec::new();
    if !kind_cluster_exists(name, existing) {
        plan.push(Step::Run(
            CommandLine::new("kind")
                .args(["create", "cluster", "--name", name, "--config"])
                .arg(config.display().to_string())
                .args(["--wait", "120s"]),
        ));
    }
    plan.push(Step::Run(CommandLine::new("kubectl").args([
        "config".to_owned(),
        "use-context".to_owned(),
        format!("kind-{name}"),
    ])));
    plan
}

fn kind_cluster_exists(name: &str, existing: &str) -> bool {
    existing.lines().any(|line| line.trim() == name)
}

pub(crate) fn kind_down_plan(name: &str) -> Vec<Step> {
    vec![Step::Run(
        CommandLine::new("kind").args(["delete", "cluster", "--name", name]),
    )]
}

/// The credentials check comes first: eksctl's own error for missing credentials arrives only
/// after it has validated the whole config.
pub(crate) fn eks_up_plan(config: &Path) -> Vec<Step> {
    vec![
        Step::Run(CommandLine::new("aws").args(["sts", "get-caller-identity"])),
        Step::Run(
            CommandLine::new("eksctl")
                .args(["create", "cluster", "-f"])
                .arg(config.display().to_string()),
        ),
    ]
}

pub(crate) fn eks_down_plan(name: &str, region: &str) -> Vec<Step> {
    vec![Step::Run(CommandLine::new("eksctl").args([
        "delete", "cluster", "--name", name, "--region", region, "--wait",
    ]))]
}

/// The eksctl ClusterConfig `template` (read from `origin`) with `metadata.name` and
/// `metadata.region` replaced.
pub(crate) fn render_eksctl_config(
    template: &str,
    origin: &Path,
    name: &str,
    region: &str,
) -> anyhow::Result<String> {
    let mut config: serde_json::Value = serde_norway::from_str(template)
        .with_context(|| format!("{}: not valid YAML", origin.display()))?;
    let kind = config.get("kind").and_then(serde_json::Value::as_str);
    if kind != Some("ClusterConfig") {
        bail!(
            "{}: field `kind` must be ClusterConfig, found {}",
            origin.display(),
            kind.map_or_else(|| "nothing".to_owned(), |k| format!("{k:?}"))
        );
    }
    let Some(metadata) = config
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    else {
        bail!(
            "{}: ClusterConfig: field `metadata` is missing or not a mapping",
            origin.display()
        );
    };
    metadata.insert("name".to_owned(), name.into());
    metadata.insert("region".to_owned(), region.into());
    serde_norway::to_string(&config)
        .with_context(|| format!("{}: writing the rendered config", origin.display()))
}

pub(crate) fn gloo_install_plan(provider: Provider, version: &str) -> Vec<Step> {
    let mut install = CommandLine::new("helm")
        .args(["upgrade", "--install", "gloo", "gloo/gloo"])
        .args(["--namespace", GLOO_NAMESPACE, "--create-namespace"])
        .args(["--version", version])
        .args(["--wait", "--timeout", HELM_TIMEOUT]);
    // Only EKS gives a LoadBalancer an address; elsewhere helm --wait would wait for one forever.
    if provider != Provider::Eks {
        install = install.args([
            "--set",
            "gatewayProxies.gatewayProxy.service.type=ClusterIP",
        ]);
    }
    vec![
        Step::Run(CommandLine::new("helm").args([
            "repo",
            "add",
            "gloo",
            GLOO_HELM_REPO,
            "--force-update",
        ])),
        Step::Run(CommandLine::new("helm").args(["repo", "update", "gloo"])),
        Step::Run(install),
    ]
}

/// `helm upgrade --install RELEASE CHART --namespace NS --create-namespace --version V` with
/// helm's wait.
fn helm_install(release: &str, chart: &str, namespace: &str, version: &str) -> CommandLine {
    CommandLine::new("helm")
        .args(["upgrade", "--install", release, chart])
        .args(["--namespace", namespace, "--create-namespace"])
        .args(["--version", version])
        .args(["--wait", "--timeout", HELM_TIMEOUT])
}

/// kgateway's CRDs, then its controller (which creates the GatewayClass `kgateway`).
pub(crate) fn kgateway_install_plan(version: &str) -> Vec<Step> {
    vec![
        Step::Run(helm_install(
            "kgateway-crds",
            &format!("{KGATEWAY_CHARTS}/kgateway-crds"),
            KGATEWAY_NAMESPACE,
            version,
        )),
        Step::Run(helm_install(
            "kgateway",
            &format!("{KGATEWAY_CHARTS}/kgateway"),
            KGATEWAY_NAMESPACE,
            version,
        )),
    ]
}

/// Envoy Gateway's own CRDs (rendered by `gateway-crds-helm` without the Gateway API ones and
/// applied server-side, as its docs do for clusters that manage the Gateway API CRDs
/// themselves), its controller without CRDs, then the GatewayClass `eg` its chart does not
/// create.
pub(crate) fn envoy_gateway_install_plan(
    root: &Path,
    provider: Provider,
    version: &str,
) -> Vec<Step> {
    let class = if provider == Provider::Eks {
        ENVOY_GATEWAY_CLASS
    } else {
        ENVOY_GATEWAY_CLASS_CLUSTER_IP
    };
    vec![
        Step::Pipe {
            producer: CommandLine::new("helm")
                .args(["template", "eg-crds", ENVOY_GATEWAY_CRDS_CHART])
                .args(["--version", version])
                .args(["--set", "crds.gatewayAPI.enabled=false"])
                .args(["--set", "crds.envoyGateway.enabled=true"]),
            consumer: CommandLine::new("kubectl").args(["apply", "--server-side", "-f", "-"]),
        },
        Step::Run(
            helm_install("eg", ENVOY_GATEWAY_CHART, ENVOY_GATEWAY_NAMESPACE, version).args([
                "--set",
                "crds.enabled=false",
                "--skip-crds",
            ]),
        ),
        Step::Run(
            CommandLine::new("kubectl")
                .args(["apply", "-f"])
                .arg(root.join(class).display().to_string()),
        ),
    ]
}

/// Istio's CRDs (`base`), then istiod with its Gateway API controller on (it creates the
/// GatewayClass `istio`); the alpha flag lets it read the experimental-channel fields the
/// scenarios use (HTTPRoute `retry`).
pub(crate) fn istio_install_plan(version: &str) -> Vec<Step> {
    vec![
        Step::Run(CommandLine::new("helm").args([
            "repo",
            "add",
            "istio",
            ISTIO_HELM_REPO,
            "--force-update",
        ])),
        Step::Run(CommandLine::new("helm").args(["repo", "update", "istio"])),
        Step::Run(
            helm_install("istio-base", "istio/base", ISTIO_NAMESPACE, version)
                .args(["--set", "defaultRevision=default"]),
        ),
        Step::Run(
            helm_install("istiod", "istio/istiod", ISTIO_NAMESPACE, version).args([
                "--set",
                "pilot.env.PILOT_ENABLE_GATEWAY_API=true",
                "--set",
                "pilot.env.PILOT_ENABLE_ALPHA_GATEWAY_API=true",
            ]),
        ),
    ]
}

pub(crate) fn deploy_gateway_plan(manifests: &Path, provider: Provider, image: &str) -> Vec<Step> {
    let kubectl = || CommandLine::new("kubectl");
    let deployment = format!("deployment/{GATEWAY_PROXY}");
    let mut plan = vec![
        Step::Run(
            kubectl()
                .args(["apply", "-f"])
                .arg(manifests.display().to_string()),
        ),
        Step::Run(kubectl().args([
            "set",
            "image",
            "--namespace",
            GLOO_NAMESPACE,
            &deployment,
            &format!("{GATEWAY_PROXY}={image}"),
        ])),
    ];
    if provider == Provider::Eks {
        plan.push(Step::Run(kubectl().args([
            "patch",
            "service",
            GATEWAY_PROXY,
            "--namespace",
            GLOO_NAMESPACE,
            "--type",
            "merge",
            "--patch",
            GATEWAY_PROXY_LOAD_BALANCER_PATCH,
        ])));
    }
    plan.push(Step::Run(kubectl().args([
        "rollout",
        "status",
        "--namespace",
        GLOO_NAMESPACE,
        &deployment,
        "--timeout",
        "120s",
    ])));
    plan
}

// === input checks ===

/// Names valid for both kind and EKS: lowercase letters, digits and `-`, starting with a letter
/// or digit, at most 63 characters (kind names become DNS labels of node containers).
fn validate_target(target: &ClusterTarget) -> anyhow::Result<()> {
    let name = &target.name;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "--name {name:?}: a cluster name is 1 to 63 lowercase letters, digits or '-', \
             starting with a letter or digit"
        );
    }
    if target.provider == Provider::Eks {
        validate_region(&target.region)?;
    }
    Ok(())
}

fn validate_region(region: &str) -> anyhow::Result<()> {
    let valid = region.contains('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("--region {region:?}: not an AWS region name such as {DEFAULT_REGION}");
    }
    Ok(())
}

pub(crate) fn validate_version(flag: &str, version: &str) -> anyhow::Result<()> {
    let version_digits = version.strip_prefix('v').unwrap_or(version);
    let valid = version_digits.starts_with(|c: char| c.is_ascii_digit())
        && version_digits
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    if !valid {
        let example = match flag {
            "--kgateway-version" => KGATEWAY_VERSION,
            "--envoy-gateway-version" => ENVOY_GATEWAY_VERSION,
            "--istio-version" => ISTIO_VERSION,
            _ => GLOO_VERSION,
        };
        bail!("{flag} {version:?}: not a chart version such as {example}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn words(step: &Step) -> Vec<&str> {
        let Step::Run(command) = step else {
            panic!("not a plain command: {step}")
        };
        std::iter::once(command.program.as_str())
            .chain(command.args.iter().map(String::as_str))
            .collect()
    }

    fn repo_root() -> PathBuf {
        crate::workspace_root()
    }

    fn target(provider: Provider, name: &str, region: &str) -> ClusterTarget {
        ClusterTarget {
            provider,
            name: name.to_owned(),
            region: region.to_owned(),
        }
    }

    #[test]
    fn kind_up_creates_the_cluster_with_the_config_and_a_wait() {
        let plan = kind_up_plan("colormesh", Path::new("/repo/kind.yaml"), "other\n");
        assert_eq!(plan.len(), 2);
        assert_eq!(
            words(&plan[1]),
            ["kubectl", "config", "use-context", "kind-colormesh"]
        );
        assert_eq!(
            words(&plan[0]),
            [
                "kind",
                "create",
                "cluster",
                "--name",
                "colormesh",
                "--config",
                "/repo/kind.yaml",
                "--wait",
                "120s"
            ]
        );
    }

    #[test]
    fn kind_up_only_selects_the_context_when_the_cluster_is_listed() {
        let listed = "kind\ncolormesh\n";
        let existing = kind_up_plan("colormesh", Path::new("k.yaml"), listed);
        assert_eq!(existing.len(), 1, "only the context switch");
        assert_eq!(
            words(&existing[0]),
            ["kubectl", "config", "use-context", "kind-colormesh"]
        );
        // A name that is only a prefix of a listed one is not the same cluster.
        assert_eq!(
            kind_up_plan("color", Path::new("k.yaml"), listed).len(),
            2,
            "color is not colormesh"
        );
    }

    #[test]
    fn kind_down_deletes_by_name() {
        let plan = kind_down_plan("demo");
        assert_eq!(plan.len(), 1);
        assert_eq!(
            words(&plan[0]),
            ["kind", "delete", "cluster", "--name", "demo"]
        );
    }

    #[test]
    fn eks_up_checks_credentials_then_creates_from_the_rendered_file() {
        let plan = eks_up_plan(Path::new("/tmp/colormesh-eksctl-x.yaml"));
        let plan: Vec<Vec<&str>> = plan.iter().map(words).collect();
        assert_eq!(
            plan,
            [
                vec!["aws", "sts", "get-caller-identity"],
                vec![
                    "eksctl",
                    "create",
                    "cluster",
                    "-f",
                    "/tmp/colormesh-eksctl-x.yaml"
                ],
            ]
        );
    }

    #[test]
    fn eks_down_deletes_by_name_and_region_and_waits() {
        let plan = eks_down_plan("demo", "eu-west-1");
        assert_eq!(
            words(&plan[0]),
            [
                "eksctl",
                "delete",
                "cluster",
                "--name",
                "demo",
                "--region",
                "eu-west-1",
                "--wait"
            ]
        );
    }

    #[test]
    fn the_checked_in_eksctl_config_is_the_walkthrough_cluster() {
        let path = repo_root().join(EKSCTL_CONFIG);
        let text = std::fs::read_to_string(&path).unwrap();
        let config: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(config["apiVersion"], "eksctl.io/v1alpha5");
        assert_eq!(config["kind"], "ClusterConfig");
        assert_eq!(config["metadata"]["name"], DEFAULT_CLUSTER_NAME);
        assert_eq!(config["metadata"]["region"], DEFAULT_REGION);
        let groups = config["nodeGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["instanceType"], "m5.large");
        assert_eq!(groups[0]["desiredCapacity"], 2);
        let policies = &groups[0]["iam"]["withAddonPolicies"];
        for policy in ["xRay", "cloudWatch"] {
            assert_eq!(policies[policy], true, "{policy}");
        }
        // App Mesh is discontinued: nothing on the nodes calls its API any more.
        assert!(policies.get("appMesh").is_none(), "{policies}");
    }

    #[test]
    fn render_overrides_name_and_region_and_keeps_the_rest() {
        let path = repo_root().join(EKSCTL_CONFIG);
        let template = std::fs::read_to_string(&path).unwrap();
        let rendered = render_eksctl_config(&template, &path, "demo", "eu-central-1").unwrap();
        let rendered: serde_json::Value = serde_norway::from_str(&rendered).unwrap();
        let mut expected: serde_json::Value = serde_norway::from_str(&template).unwrap();
        expected["metadata"]["name"] = "demo".into();
        expected["metadata"]["region"] = "eu-central-1".into();
        assert_eq!(rendered, expected);
    }

    #[test]
    fn render_names_the_file_and_field_on_bad_input() {
        let origin = Path::new("manifests/cluster/eksctl-cluster.yaml");
        let error = render_eksctl_config("kind: Cluster\n", origin, "a", "us-west-2").unwrap_err();
        assert_eq!(
            error.to_string(),
            "manifests/cluster/eksctl-cluster.yaml: field `kind` must be ClusterConfig, found \"Cluster\""
        );
        let error = render_eksctl_config(
            "kind: ClusterConfig\nmetadata: [1]\n",
            origin,
            "a",
            "us-west-2",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "manifests/cluster/eksctl-cluster.yaml: ClusterConfig: field `metadata` is missing or not a mapping"
        );
        let error = render_eksctl_config("kind: [", origin, "a", "us-west-2").unwrap_err();
        assert!(error.to_string().contains("not valid YAML"), "{error}");
    }

    #[test]
    fn the_checked_in_kind_config_has_one_control_plane_and_no_host_ports() {
        let path = repo_root().join(KIND_CONFIG);
        let config: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(config["kind"], "Cluster");
        let nodes = config["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[0].get("extraPortMappings").is_none());
    }

    #[test]
    fn gloo_installs_the_pinned_chart_into_gloo_system_and_waits() {
        let plan = gloo_install_plan(Provider::Eks, GLOO_VERSION);
        let plan: Vec<Vec<&str>> = plan.iter().map(words).collect();
        assert_eq!(
            plan,
            [
                vec![
                    "helm",
                    "repo",
                    "add",
                    "gloo",
                    GLOO_HELM_REPO,
                    "--force-update"
                ],
                vec!["helm", "repo", "update", "gloo"],
                vec![
                    "helm",
                    "upgrade",
                    "--install",
                    "gloo",
                    "gloo/gloo",
                    "--namespace",
                    "gloo-system",
                    "--create-namespace",
                    "--version",
                    GLOO_VERSION,
                    "--wait",
                    "--timeout",
                    "10m"
                ],
            ]
        );
    }

    #[test]
    fn gloo_on_kind_uses_a_cluster_ip_proxy_service() {
        let plan = gloo_install_plan(Provider::Kind, "1.18.10");
        let install = words(&plan[2]);
        assert!(install.windows(2).any(|w| w == ["--version", "1.18.10"]));
        assert!(
            install.windows(2).any(|w| w
                == [
                    "--set",
                    "gatewayProxies.gatewayProxy.service.type=ClusterIP"
                ]),
            "{install:?}"
        );
    }

    #[test]
    fn kgateway_installs_its_crds_then_its_controller_from_the_oci_charts() {
        let plan = kgateway_install_plan(KGATEWAY_VERSION);
        let plan: Vec<Vec<&str>> = plan.iter().map(words).collect();
        let install = |release: &'static str, chart: &'static str| {
            vec![
                "helm",
                "upgrade",
                "--install",
                release,
                chart,
                "--namespace",
                "kgateway-system",
                "--create-namespace",
                "--version",
                "v2.5.2",
                "--wait",
                "--timeout",
                "10m",
            ]
        };
        assert_eq!(
            plan,
            [
                install(
                    "kgateway-crds",
                    "oci://cr.kgateway.dev/kgateway-dev/charts/kgateway-crds"
                ),
                install(
                    "kgateway",
                    "oci://cr.kgateway.dev/kgateway-dev/charts/kgateway"
                ),
            ]
        );
    }

    #[test]
    fn envoy_gateway_installs_its_own_crds_its_controller_and_the_gateway_class() {
        let plan = envoy_gateway_install_plan(Path::new("/repo"), Provider::Kind, "v1.9.2");
        assert_eq!(plan.len(), 3);
        let Step::Pipe { producer, consumer } = &plan[0] else {
            panic!("the CRDs are piped into kubectl: {}", plan[0]);
        };
        assert_eq!(producer.program, "helm");
        assert_eq!(
            producer.args,
            [
                "template",
                "eg-crds",
                "oci://docker.io/envoyproxy/gateway-crds-helm",
                "--version",
                "v1.9.2",
                "--set",
                "crds.gatewayAPI.enabled=false",
                "--set",
                "crds.envoyGateway.enabled=true"
            ]
        );
        assert_eq!(consumer.program, "kubectl");
        assert_eq!(consumer.args, ["apply", "--server-side", "-f", "-"]);
        assert_eq!(
            words(&plan[1]),
            [
                "helm",
                "upgrade",
                "--install",
                "eg",
                "oci://docker.io/envoyproxy/gateway-helm",
                "--namespace",
                "envoy-gateway-system",
                "--create-namespace",
                "--version",
                "v1.9.2",
                "--wait",
                "--timeout",
                "10m",
                "--set",
                "crds.enabled=false",
                "--skip-crds"
            ]
        );
        assert_eq!(
            words(&plan[2]),
            [
                "kubectl",
                "apply",
                "-f",
                "/repo/xtask/assets/envoy-gateway/gatewayclass-cluster-ip.yaml"
            ]
        );
        let eks = envoy_gateway_install_plan(Path::new("/repo"), Provider::Eks, "v1.9.2");
        assert_eq!(
            words(&eks[2]),
            [
                "kubectl",
                "apply",
                "-f",
                "/repo/xtask/assets/envoy-gateway/gatewayclass.yaml"
            ]
        );
    }

    #[test]
    fn istio_installs_base_then_istiod_with_the_gateway_api_on() {
        let plan = istio_install_plan(ISTIO_VERSION);
        let plan: Vec<Vec<&str>> = plan.iter().map(words).collect();
        assert_eq!(
            plan,
            [
                vec![
                    "helm",
                    "repo",
                    "add",
                    "istio",
                    "https://istio-release.storage.googleapis.com/charts",
                    "--force-update"
                ],
                vec!["helm", "repo", "update", "istio"],
                vec![
                    "helm",
                    "upgrade",
                    "--install",
                    "istio-base",
                    "istio/base",
                    "--namespace",
                    "istio-system",
                    "--create-namespace",
                    "--version",
                    "1.31.0",
                    "--wait",
                    "--timeout",
                    "10m",
                    "--set",
                    "defaultRevision=default"
                ],
                vec![
                    "helm",
                    "upgrade",
                    "--install",
                    "istiod",
                    "istio/istiod",
                    "--namespace",
                    "istio-system",
                    "--create-namespace",
                    "--version",
                    "1.31.0",
                    "--wait",
                    "--timeout",
                    "10m",
                    "--set",
                    "pilot.env.PILOT_ENABLE_GATEWAY_API=true",
                    "--set",
                    "pilot.env.PILOT_ENABLE_ALPHA_GATEWAY_API=true"
                ],
            ]
        );
    }

    #[test]
    fn every_gateway_api_gateway_has_a_plan_and_a_version_flag() {
        let versions = GatewayApiVersions {
            kgateway_version: "v2.4.0".into(),
            envoy_gateway_version: "v1.8.0".into(),
            istio_version: "1.30.5".into(),
        };
        for (gateway, flag, version) in [
            (ClusterGateway::Kgateway, "--kgateway-version", "v2.4.0"),
            (
                ClusterGateway::EnvoyGateway,
                "--envoy-gateway-version",
                "v1.8.0",
            ),
            (ClusterGateway::Istio, "--istio-version", "1.30.5"),
        ] {
            assert_eq!(versions.for_gateway(gateway), Some((flag, version)));
            let plan = gateway_api_install_plan(Path::new("/r"), gateway, Provider::Kind, version)
                .expect("a plan");
            let installs_version = plan
                .iter()
                .any(|step| step.to_string().contains(&format!("--version {version}")));
            assert!(installs_version, "{gateway:?}");
            assert!(gateway_api_tools(gateway).contains(&Tool::Helm));
        }
        assert_eq!(versions.for_gateway(ClusterGateway::Gloo), None);
        assert!(
            gateway_api_install_plan(
                Path::new("/r"),
                ClusterGateway::Builtin,
                Provider::Kind,
                "1"
            )
            .is_none()
        );
        assert_eq!(
            gateway_api_tools(ClusterGateway::EnvoyGateway),
            [Tool::Helm, Tool::Kubectl]
        );
    }

    #[test]
    fn the_envoy_gateway_class_files_create_eg_for_its_controller() {
        for file in [ENVOY_GATEWAY_CLASS, ENVOY_GATEWAY_CLASS_CLUSTER_IP] {
            let documents = raw_documents_of(&repo_root().join(file));
            let class = documents
                .iter()
                .find(|d| d["kind"] == "GatewayClass")
                .unwrap_or_else(|| panic!("{file}: no GatewayClass"));
            let expected = ClusterGateway::EnvoyGateway.gateway_class().expect("class");
            assert_eq!(
                class["apiVersion"], "gateway.networking.k8s.io/v1",
                "{file}"
            );
            assert_eq!(class["metadata"]["name"], expected.name, "{file}");
            assert_eq!(
                class["spec"]["controllerName"], expected.controller,
                "{file}"
            );
        }
        let documents = raw_documents_of(&repo_root().join(ENVOY_GATEWAY_CLASS_CLUSTER_IP));
        let proxy = documents
            .iter()
            .find(|d| d["kind"] == "EnvoyProxy")
            .expect("EnvoyProxy");
        assert_eq!(
            proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"],
            "ClusterIP"
        );
        let class = documents
            .iter()
            .find(|d| d["kind"] == "GatewayClass")
            .expect("class");
        assert_eq!(
            class["spec"]["parametersRef"]["name"],
            proxy["metadata"]["name"]
        );
        assert_eq!(
            class["spec"]["parametersRef"]["namespace"],
            proxy["metadata"]["namespace"]
        );
        assert_eq!(proxy["metadata"]["namespace"], ENVOY_GATEWAY_NAMESPACE);
    }

    #[test]
    fn deploy_gateway_on_kind_applies_sets_the_image_and_waits() {
        let plan = deploy_gateway_plan(
            Path::new("/repo/manifests/cluster/gateway-proxy"),
            Provider::Kind,
            "colormesh/gateway-proxy:dev",
        );
        let plan: Vec<Vec<&str>> = plan.iter().map(words).collect();
        assert_eq!(
            plan,
            [
                vec![
                    "kubectl",
                    "apply",
                    "-f",
                    "/repo/manifests/cluster/gateway-proxy"
                ],
                vec![
                    "kubectl",
                    "set",
                    "image",
                    "--namespace",
                    "gloo-system",
                    "deployment/gateway-proxy",
                    "gateway-proxy=colormesh/gateway-proxy:dev"
                ],
                vec![
                    "kubectl",
                    "rollout",
                    "status",
                    "--namespace",
                    "gloo-system",
                    "deployment/gateway-proxy",
                    "--timeout",
                    "120s"
                ],
            ]
        );
    }

    #[test]
    fn deploy_gateway_on_eks_makes_the_service_a_load_balancer_before_waiting() {
        let plan =
            deploy_gateway_plan(Path::new("m"), Provider::Eks, "r/colormesh/gateway-proxy:1");
        assert_eq!(plan.len(), 4);
        assert_eq!(
            words(&plan[2]),
            [
                "kubectl",
                "patch",
                "service",
                "gateway-proxy",
                "--namespace",
                "gloo-system",
                "--type",
                "merge",
                "--patch",
                r#"{"spec":{"type":"LoadBalancer"}}"#
            ]
        );
        assert_eq!(words(&plan[3])[..3], ["kubectl", "rollout", "status"]);
    }

    #[test]
    fn bad_names_regions_and_versions_are_rejected_with_the_flag() {
        let error =
            validate_target(&target(Provider::Kind, "Color_Mesh", DEFAULT_REGION)).unwrap_err();
        assert!(
            error.to_string().starts_with("--name \"Color_Mesh\""),
            "{error}"
        );
        assert!(validate_target(&target(Provider::Kind, "", DEFAULT_REGION)).is_err());
        assert!(validate_target(&target(Provider::Kind, "-x", DEFAULT_REGION)).is_err());
        validate_target(&target(Provider::Kind, "colormesh-2", "ignored for kind")).unwrap();

        let error = validate_target(&target(Provider::Eks, "demo", "us west")).unwrap_err();
        assert!(
            error.to_string().starts_with("--region \"us west\""),
            "{error}"
        );
        validate_target(&target(Provider::Eks, "demo", "ap-southeast-2")).unwrap();

        let error = validate_version("--gloo-version", "latest").unwrap_err();
        assert!(
            error.to_string().starts_with("--gloo-version \"latest\""),
            "{error}"
        );
        validate_version("--gloo-version", "v1.18.10").unwrap();
        validate_version("--gloo-version", "1.19.0-beta3").unwrap();
        let error = validate_version("--kgateway-version", "main").unwrap_err();
        assert_eq!(
            error.to_string(),
            "--kgateway-version \"main\": not a chart version such as v2.5.2"
        );
        let error = validate_version("--istio-version", "1.31 ").unwrap_err();
        assert!(error.to_string().ends_with("such as 1.31.0"), "{error}");
        validate_version("--envoy-gateway-version", "v1.9.0-rc.1").unwrap();
    }

    #[test]
    fn the_cluster_files_exist_where_the_constants_say() {
        for path in [
            KIND_CONFIG,
            EKSCTL_CONFIG,
            GATEWAY_PROXY_MANIFESTS,
            ENVOY_GATEWAY_CLASS,
            ENVOY_GATEWAY_CLASS_CLUSTER_IP,
        ]
        .map(|p| repo_root().join(p))
        {
            assert!(path.exists(), "{}", path.display());
        }
    }

    #[test]
    fn gateway_manifests_follow_the_shared_contract() {
        let parsed = raw_documents(&repo_root().join(GATEWAY_PROXY_MANIFESTS));
        let find = |kind: &str, name: &str| {
            parsed
                .iter()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("no {kind} {name}"))
        };
        let deployment = find("Deployment", GATEWAY_PROXY);
        assert_eq!(deployment["metadata"]["namespace"], GLOO_NAMESPACE);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "colormesh-gateway-proxy");
        let container = &pod["containers"][0];
        assert_eq!(container["name"], GATEWAY_PROXY);
        assert_eq!(container["image"], "colormesh/gateway-proxy:latest");
        // `:latest` would otherwise mean Always, and kind/K3s nodes cannot pull colormesh/*.
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            container["args"],
            serde_json::json!([
                "ingress",
                "--kubernetes",
                "--listen",
                "0.0.0.0:8080",
                "--admin",
                "127.0.0.1:19000",
                "--ready-listen",
                "0.0.0.0:19001"
            ])
        );
        // The unauthenticated admin API stays on loopback; the kubelet probes the ready port.
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            serde_json::json!({"path": "/ready", "port": "ready"})
        );

        let service = find("Service", GATEWAY_PROXY);
        assert_eq!(service["metadata"]["namespace"], GLOO_NAMESPACE);
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(
            service["spec"]["ports"],
            serde_json::json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
        );
        let selector = service["spec"]["selector"].as_object().unwrap();
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in selector {
            assert_eq!(&pod_labels[key], value, "selector {key}");
        }

        find("ServiceAccount", "colormesh-gateway-proxy");
        let binding = find("ClusterRoleBinding", "colormesh-gateway-proxy");
        assert_eq!(binding["roleRef"]["name"], "colormesh-gateway-proxy");
        assert_eq!(binding["subjects"][0]["namespace"], GLOO_NAMESPACE);
        let role = find("ClusterRole", "colormesh-gateway-proxy");
        let grants = |group: &str, resource: &str, verb: &str| {
            role["rules"].as_array().unwrap().iter().any(|rule| {
                let has = |field: &str, value: &str| {
                    rule[field].as_array().unwrap().iter().any(|v| v == value)
                };
                has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
            })
        };
        for (group, resource) in [
            ("gateway.solo.io", "virtualservices"),
            ("gloo.solo.io", "upstreams"),
            ("gloo.solo.io", "upstreamgroups"),
            ("", "services"),
            ("discovery.k8s.io", "endpointslices"),
            ("appmesh.k8s.aws", "meshes"),
            ("appmesh.k8s.aws", "virtualnodes"),
            ("appmesh.k8s.aws", "virtualservices"),
            ("appmesh.k8s.aws", "virtualrouters"),
        ] {
            for verb in ["get", "list", "watch"] {
                assert!(grants(group, resource, verb), "{verb} {group}/{resource}");
            }
        }
        for (group, resource) in [
            ("gateway.solo.io", "virtualservices/status"),
            ("gloo.solo.io", "upstreams/status"),
            ("gloo.solo.io", "upstreamgroups/status"),
        ] {
            for verb in ["patch", "update"] {
                assert!(grants(group, resource, verb), "{verb} {group}/{resource}");
            }
        }
        // Gloo's CRDs declare no status subresource, so the status is patched on the object.
        for (group, resource) in [
            ("gateway.solo.io", "virtualservices"),
            ("gloo.solo.io", "upstreams"),
            ("gloo.solo.io", "upstreamgroups"),
        ] {
            assert!(grants(group, resource, "patch"), "patch {group}/{resource}");
        }
        // Nothing else is written.
        for (group, resource) in [("", "services"), ("appmesh.k8s.aws", "virtualnodes")] {
            for verb in ["create", "patch", "update", "delete"] {
                assert!(!grants(group, resource, verb), "{verb} {group}/{resource}");
            }
        }
    }

    fn raw_documents_of(file: &Path) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(file).unwrap();
        serde_norway::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .filter(|v: &serde_json::Value| !v.is_null())
            .collect()
    }

    fn raw_documents(dir: &Path) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|file| {
                let text = std::fs::read_to_string(file).unwrap();
                serde_norway::Deserializer::from_str(&text)
                    .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
                    .filter(|v: &serde_json::Value| !v.is_null())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

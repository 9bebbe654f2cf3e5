//! `cargo xtask e2e --backend kind|eks|k3s`: the scenario files of the local backend, unchanged,
//! on a Kubernetes cluster.
//!
//! One run does, in order (each step says what it runs):
//! 1. checks every CLI the path needs up front and names the missing ones with how to get them;
//! 2. makes the cluster reachable: kind is created when absent (`cargo xtask cluster up`), EKS must
//!    exist already (creating one takes 20 minutes and costs money), K3s is started in Docker
//!    through testcontainers and removed at the end;
//! 3. builds the service images and loads them into kind or K3s, or pushes them for EKS;
//! 4. installs the gateway under test: real Gloo with helm (`--gateway gloo`, pinned and
//!    overridable with `--gloo-version`), a Gateway API implementation with helm (`--gateway
//!    kgateway|envoy-gateway|istio`, each pinned and overridable with `--<name>-version`), or
//!    gateway-proxy (`--gateway builtin`): the real Gloo and App Mesh CRDs from
//!    `../shared/schemas/` and `manifests/cluster/gateway-proxy/`, applied by the backend with the
//!    run's label so the run's cleanup removes it. App Mesh was discontinued on 2026-09-30, so no
//!    provider installs its controller: its CRDs come from the schemas and the backend injects
//!    gateway-proxy sidecars in place of its Envoys, on EKS as on kind. When a Gateway API gateway
//!    is under test or a scenario applies Gateway API resources, the official Gateway API CRDs
//!    from `../shared/schemas/gateway-api` go in first (server-side, awaited until Established);
//!    a scenario in a dialect the gateway does not speak is refused before anything starts;
//! 5. runs the scenarios through `harness::backend::kube::KubeBackend`, then shuts the backend
//!    down, which deletes every object labelled with the run id; Ctrl-C takes the same path.
//!
//! The cluster backends need kube-rs's client and testcontainers, which a local run does not build:
//! they are xtask's `cluster` feature. Without it, steps 1 (flags and tools) still run at once, and
//! then xtask runs itself again built with the feature ([`run_or_rebuild`]).

use std::path::{Path, PathBuf};

#[cfg(feature = "cluster")]
use anyhow::Context as _;
use anyhow::bail;
use clap::Args;
use harness::backend::BackendKind;
use harness::backend::cluster::{Dialect, scenario_dialect};
#[cfg(feature = "cluster")]
use harness::backend::kube::{KubeBackend, KubeSettings, k3s::K3sCluster};
use harness::backend::{ClusterGateway, Provider};
use harness::runner::RunSettings;
use harness::scenario::Scenario;

use crate::cluster;
#[cfg(feature = "cluster")]
use crate::cluster::ClusterTarget;
use crate::gateway::GatewayKind;
use crate::images;
#[cfg(feature = "cluster")]
use crate::images::ImagesArgs;
use crate::tools::{Tool, require};

/// Options of the cluster backends (ignored by `--backend local`).
#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterRunArgs {
    /// kind or EKS cluster name (`cargo xtask cluster up --name`).
    #[arg(long, default_value = cluster::DEFAULT_CLUSTER_NAME, value_name = "NAME")]
    pub(crate) cluster_name: String,
    /// AWS region of the EKS cluster.
    #[arg(long, default_value = cluster::DEFAULT_REGION)]
    pub(crate) region: String,
    /// Registry the EKS nodes pull from (`<registry>/colormesh/<binary>:<tag>`); required on EKS.
    #[arg(long, value_name = "REGISTRY")]
    pub(crate) registry: Option<String>,
    /// Tag of the service images.
    #[arg(long, default_value = images::DEFAULT_TAG)]
    pub(crate) tag: String,
    /// Use the images already in the cluster or registry instead of building them.
    #[arg(long)]
    pub(crate) skip_images: bool,
    #[command(flatten)]
    pub(crate) gloo: cluster::GlooArgs,
    #[command(flatten)]
    pub(crate) gateway_api: cluster::GatewayApiVersions,
    /// Kubeconfig for EKS (default: KUBECONFIG or ~/.kube/config); kind and K3s use their own.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for EKS (default: the current one); kind uses `kind-<name>`.
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// Folder of the real CRD schemas: `gloo/` and `appmesh/` (installed for `--gateway builtin`)
    /// and `gateway-api/` (installed for Gateway API runs); relative to the repository root.
    #[arg(long, value_name = "DIR", default_value = cluster::DEFAULT_SCHEMAS)]
    pub(crate) schemas: PathBuf,
}

/// What a cluster run needs, decided from the flags before anything is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterPlan {
    pub(crate) provider: Provider,
    pub(crate) gateway: ClusterGateway,
    pub(crate) tools: Vec<Tool>,
    /// Whether the Gateway API CRDs are installed first: a Gateway API gateway is under test or
    /// a scenario applies Gateway API resources ([`check_scenarios`]).
    pub(crate) gateway_api: bool,
}

/// Checks the flag combination and lists the CLIs the run will call.
pub(crate) fn plan(
    backend: BackendKind,
    gateway: GatewayKind,
    args: &ClusterRunArgs,
) -> anyhow::Result<ClusterPlan> {
    let provider = match backend {
        BackendKind::Kind => Provider::Kind,
        BackendKind::Eks => Provider::Eks,
        BackendKind::K3s => Provider::K3s,
        BackendKind::Apiserver => Provider::Apiserver,
        BackendKind::Local => bail!("the local backend does not run on a cluster"),
    };
    let gateway = match gateway {
        GatewayKind::Builtin => ClusterGateway::Builtin,
        GatewayKind::Gloo => ClusterGateway::Gloo,
        GatewayKind::Kgateway => ClusterGateway::Kgateway,
        GatewayKind::EnvoyGateway => ClusterGateway::EnvoyGateway,
        GatewayKind::Istio => ClusterGateway::Istio,
        GatewayKind::Envoy => bail!(
            "--gateway envoy runs on the local backend; on a cluster use --gateway builtin \
             (gateway-proxy) or --gateway gloo (real Gloo, whose proxy is Envoy)"
        ),
    };
    if provider == Provider::Apiserver {
        if gateway != ClusterGateway::Builtin {
            bail!(
                "--backend apiserver runs the Pods as workspace binaries, so the gateway is \
                 gateway-proxy (--gateway builtin); {} needs its images and helm: use --backend kind",
                gateway.name()
            );
        }
        // Go builds the control plane (`cargo xtask kube install`, on first use); glooctl and
        // kubectl are the harness's emulations over the API server's objects.
        return Ok(ClusterPlan {
            provider,
            gateway,
            tools: Vec::new(),
            gateway_api: false,
        });
    }
    if provider == Provider::Eks && args.registry.is_none() && !args.skip_images {
        bail!(
            "--backend eks needs --registry REGISTRY: EKS nodes pull the service images from it \
             (or pass --skip-images when they are pushed already)"
        );
    }
    // glooctl: scenarios run `glooctl get ...` steps, and they run the real one on a cluster.
    let mut tools = vec![Tool::Glooctl];
    if !args.skip_images || provider == Provider::K3s {
        tools.push(Tool::Docker);
    }
    match provider {
        Provider::Kind => tools.extend([Tool::Kind, Tool::Kubectl]),
        Provider::Eks => tools.extend([Tool::Aws, Tool::Kubectl, Tool::Helm]),
        Provider::K3s | Provider::Apiserver => {}
    }
    let helm_installed = gateway == ClusterGateway::Gloo || gateway.is_gateway_api_only();
    if helm_installed && provider == Provider::K3s {
        bail!(
            "--backend k3s installs --gateway {} with helm against the current kubectl context, \
             which is not the disposable K3s; use --gateway builtin there, or --backend kind",
            gateway.name()
        );
    }
    if let Some((flag, version)) = args.gateway_api.for_gateway(gateway) {
        cluster::validate_version(flag, version)?;
    }
    let installer = match gateway {
        ClusterGateway::Gloo => vec![Tool::Helm],
        gateway if gateway.is_gateway_api_only() => cluster::gateway_api_tools(gateway),
        _ => Vec::new(),
    };
    for tool in installer {
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    Ok(ClusterPlan {
        provider,
        gateway,
        tools,
        gateway_api: gateway.is_gateway_api_only(),
    })
}

/// Decides each scenario's dialect from the files it applies and refuses, up front, the ones the
/// gateway does not speak (a Gloo Edge scenario with `--gateway kgateway`); returns whether any
/// scenario is a Gateway API one (then the run installs the Gateway API CRDs).
pub(crate) fn check_scenarios(
    gateway: ClusterGateway,
    scenarios: &[Scenario],
    manifests_dir: &Path,
) -> anyhow::Result<bool> {
    let mut gateway_api = false;
    let mut refused = Vec::new();
    for scenario in scenarios {
        let dialect = scenario_dialect(scenario, manifests_dir)?;
        gateway_api |= dialect == Some(Dialect::GatewayApi);
        if let Err(unserved) = gateway.check_serves(&scenario.name, dialect) {
            refused.push(unserved.to_string());
        }
    }
    if !refused.is_empty() {
        bail!("{}", refused.join("\n"));
    }
    Ok(gateway_api)
}

/// Checks the flags and the tools, then runs the scenarios on the cluster: here when xtask was
/// built with the `cluster` feature, otherwise by running xtask again built with it (cargo shows
/// the build's progress; only the first time builds anything). Returns the gate.
pub(crate) async fn run_or_rebuild(
    root: &Path,
    backend: BackendKind,
    gateway: GatewayKind,
    args: &ClusterRunArgs,
    scenarios: &[Scenario],
    settings: &RunSettings,
) -> anyhow::Result<bool> {
    let mut plan = plan(backend, gateway, args)?;
    plan.gateway_api |= check_scenarios(plan.gateway, scenarios, &root.join("manifests"))?;
    require(&plan.tools)?;
    #[cfg(feature = "cluster")]
    {
        run(root, &plan, args, scenarios, settings).await
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (scenarios, settings);
        println!(
            "The cluster backends need kube-rs and testcontainers, which a local run does not \
             build: running xtask again with --features cluster (the first time builds them)"
        );
        Err(crate::cargo::exec_with_cluster_feature(root))
    }
}

/// Brings the cluster side up, runs the scenarios, and cleans up; returns the gate.
#[cfg(feature = "cluster")]
async fn run(
    root: &Path,
    plan: &ClusterPlan,
    args: &ClusterRunArgs,
    scenarios: &[Scenario],
    settings: &RunSettings,
) -> anyhow::Result<bool> {
    // The cluster, and the kubeconfig + context the client and the CLIs use.
    let mut k3s = None;
    let mut local_cluster = None;
    let (kubeconfig, context) = match plan.provider {
        Provider::Apiserver => {
            let started = start_local_cluster(root).await?;
            let kubeconfig = started.control_plane().admin_kubeconfig().to_owned();
            local_cluster = Some(started);
            (Some(kubeconfig), None)
        }
        Provider::Kind => {
            cluster::up(
                root,
                &ClusterTarget {
                    provider: Provider::Kind,
                    name: args.cluster_name.clone(),
                    region: args.region.clone(),
                },
            )?;
            (None, Some(format!("kind-{}", args.cluster_name)))
        }
        Provider::Eks => (args.kubeconfig.clone(), args.context.clone()),
        Provider::K3s => {
            println!("starting a disposable K3s in Docker (testcontainers)");
            let started = K3sCluster::start().await.context("starting K3s")?;
            let kubeconfig = started.kubeconfig().to_owned();
            k3s = Some(started);
            (Some(kubeconfig), None)
        }
    };

    if !args.skip_images && plan.provider != Provider::Apiserver {
        images::images(
            root,
            &ImagesArgs {
                tag: args.tag.clone(),
                load_kind: (plan.provider == Provider::Kind).then(|| args.cluster_name.clone()),
                push: args.registry.clone(),
                load_k3s: k3s.as_ref().map(|k3s| k3s.container_id().to_owned()),
            },
        )?;
    }

    let client = KubeBackend::connect(kubeconfig.as_deref(), context.as_deref())
        .await
        .context("connecting to the cluster")?;
    let mut kube_settings = KubeSettings::new(
        plan.provider,
        plan.gateway,
        root.join("manifests"),
        KubeSettings::generate_run_id(),
    );
    kube_settings.registry = args.registry.clone();
    kube_settings.tag = args.tag.clone();
    kube_settings.kubeconfig = kubeconfig;
    kube_settings.context = context;
    println!(
        "colormesh e2e on {} with {}: run id {} (objects carry colormesh.dev/run={})",
        plan.provider.name(),
        match args.gateway_api.for_gateway(plan.gateway) {
            Some((_, version)) => format!("{} {version}", plan.gateway.name()),
            None if plan.gateway == ClusterGateway::Gloo =>
                format!("Gloo {}", args.gloo.gloo_version),
            None => "gateway-proxy".to_owned(),
        },
        kube_settings.run_id,
        kube_settings.run_id
    );
    let mut backend = KubeBackend::new(client, kube_settings);

    let installed = install_gateway(root, plan, args, &mut backend).await;
    let report = match installed {
        Ok(()) => {
            tokio::select! {
                report = crate::run::run_on(&mut backend, scenarios, settings) => Some(report?),
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("interrupted: removing what the run created");
                    None
                }
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            None
        }
    };
    // run_on shuts the backend down itself; this covers the install error and Ctrl-C paths
    // (shutdown is idempotent).
    if let Err(error) = harness::backend::Backend::shutdown(&mut backend).await {
        eprintln!("warning: cleaning up the cluster run: {error}");
    }
    drop(k3s);
    if let Some(mut local_cluster) = local_cluster {
        local_cluster.stop().await;
    }
    Ok(report.is_some_and(|report| report.passed()))
}

/// `--backend apiserver`: the control plane (built on first use), a pod network and the node
/// agent, whose Pods run the workspace binaries (gateway-proxy with its `kubernetes` feature).
#[cfg(feature = "cluster")]
async fn start_local_cluster(
    root: &Path,
) -> anyhow::Result<harness::backend::apiserver::LocalCluster> {
    use harness::backend::apiserver::{ControlPlaneSettings, LocalCluster, LocalClusterSettings};
    let kube_bin_dir = crate::kube::install(root)?;
    let workspace_bin_dir = crate::cargo::build_pod_binaries(root)?;
    let run_dir = root.join("target").join("apiserver").join("last-run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing the previous run's {}", run_dir.display()))?;
    }
    println!(
        "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the node agent \
         (logs in {})",
        run_dir.display()
    );
    let cluster = LocalCluster::start(&LocalClusterSettings {
        control_plane: ControlPlaneSettings::new(kube_bin_dir, run_dir),
        workspace_bin_dir,
    })
    .await
    .context("starting the apiserver backend's cluster")?;
    println!(
        "control plane ready in {:.1} s at {}; Pods on {}/24",
        cluster.control_plane().started_in.as_secs_f64(),
        cluster.control_plane().server_url(),
        cluster.pod_network()
    );
    Ok(cluster)
}

/// The gateway (and, on EKS, the mesh controller) the scenarios run against.
#[cfg(feature = "cluster")]
async fn install_gateway(
    root: &Path,
    plan: &ClusterPlan,
    args: &ClusterRunArgs,
    backend: &mut KubeBackend,
) -> anyhow::Result<()> {
    let schemas = cluster::schemas_root(root, &args.schemas);
    if plan.gateway_api {
        backend
            .install_gateway_api_crds(&schemas)
            .await
            .context("installing the Gateway API CRDs")?;
    }
    match plan.gateway {
        ClusterGateway::Gloo => {
            cluster::install_gloo(plan.provider, &args.gloo.gloo_version)?;
            // App Mesh is gone (2026-09-30): its CRDs come from the schemas on every provider,
            // and the sidecars injected in its place need the ClusterRole they are bound to.
            backend
                .install_sidecar_support(&schemas)
                .await
                .context("installing the App Mesh CRDs and the sidecars' ClusterRole")
        }
        ClusterGateway::Kgateway | ClusterGateway::EnvoyGateway | ClusterGateway::Istio => {
            cluster::install_gateway_api_gateway(
                root,
                plan.gateway,
                plan.provider,
                &args.gateway_api,
            )
        }
        ClusterGateway::Builtin => backend
            .install_builtin_gateway(&schemas)
            .await
            .context("deploying gateway-proxy"),
    }
}

/// `cargo xtask cluster up --gateway-api`: the Gateway API CRDs on the cluster of `kubeconfig`
/// and `context`, through the kube backend's server-side apply, awaited until Established.
#[cfg(feature = "cluster")]
pub(crate) async fn install_gateway_api_crds(
    root: &Path,
    provider: Provider,
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    schemas: &Path,
) -> anyhow::Result<()> {
    let client = KubeBackend::connect(kubeconfig, context)
        .await
        .context("connecting to the cluster")?;
    let settings = KubeSettings::new(
        provider,
        ClusterGateway::Builtin,
        root.join("manifests"),
        KubeSettings::generate_run_id(),
    );
    KubeBackend::new(client, settings)
        .install_gateway_api_crds(schemas)
        .await
        .context("installing the Gateway API CRDs")?;
    println!(
        "Gateway API CRDs from {} installed and Established",
        schemas.join("gateway-api").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        cluster: ClusterRunArgs,
    }

    fn flags(extra: &[&str]) -> ClusterRunArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        Flags::parse_from(argv).cluster
    }

    #[test]
    fn kind_with_the_builtin_gateway_needs_docker_kind_kubectl_and_glooctl() {
        let plan = plan(BackendKind::Kind, GatewayKind::Builtin, &flags(&[])).expect("valid");
        assert_eq!(plan.provider, Provider::Kind);
        assert_eq!(plan.gateway, ClusterGateway::Builtin);
        assert_eq!(
            plan.tools,
            [Tool::Glooctl, Tool::Docker, Tool::Kind, Tool::Kubectl]
        );
    }

    #[test]
    fn gloo_adds_helm_and_eks_adds_aws() {
        let kind = plan(BackendKind::Kind, GatewayKind::Gloo, &flags(&[])).expect("valid");
        assert!(kind.tools.contains(&Tool::Helm));
        let eks = plan(
            BackendKind::Eks,
            GatewayKind::Gloo,
            &flags(&["--registry", "1234.dkr.ecr.us-west-2.amazonaws.com"]),
        )
        .expect("valid");
        assert!(eks.tools.contains(&Tool::Aws) && eks.tools.contains(&Tool::Helm));
        assert_eq!(
            eks.tools.iter().filter(|tool| **tool == Tool::Helm).count(),
            1
        );
    }

    #[test]
    fn wrong_combinations_are_refused_with_the_way_out() {
        let envoy = plan(BackendKind::Kind, GatewayKind::Envoy, &flags(&[]))
            .expect_err("envoy is local only")
            .to_string();
        assert!(envoy.contains("--gateway builtin"), "{envoy}");
        let eks = plan(BackendKind::Eks, GatewayKind::Builtin, &flags(&[]))
            .expect_err("EKS needs a registry")
            .to_string();
        assert!(eks.contains("--registry"), "{eks}");
        let pushed = plan(
            BackendKind::Eks,
            GatewayKind::Builtin,
            &flags(&["--skip-images"]),
        );
        assert!(pushed.is_ok());
        let k3s_gloo = plan(BackendKind::K3s, GatewayKind::Gloo, &flags(&[]))
            .expect_err("helm targets the current context")
            .to_string();
        assert!(k3s_gloo.contains("--gateway builtin"), "{k3s_gloo}");
        for gateway in [
            GatewayKind::Kgateway,
            GatewayKind::EnvoyGateway,
            GatewayKind::Istio,
        ] {
            let k3s = plan(BackendKind::K3s, gateway, &flags(&[]))
                .expect_err("helm targets the current context")
                .to_string();
            assert!(k3s.contains("installs --gateway"), "{k3s}");
        }
    }

    #[test]
    fn gateway_api_gateways_need_helm_and_install_the_gateway_api_crds() {
        let kgateway = plan(BackendKind::Kind, GatewayKind::Kgateway, &flags(&[])).expect("valid");
        assert_eq!(kgateway.gateway, ClusterGateway::Kgateway);
        assert!(kgateway.gateway_api);
        assert_eq!(
            kgateway.tools,
            [
                Tool::Glooctl,
                Tool::Docker,
                Tool::Kind,
                Tool::Kubectl,
                Tool::Helm
            ]
        );
        let eg = plan(
            BackendKind::Eks,
            GatewayKind::EnvoyGateway,
            &flags(&["--skip-images"]),
        )
        .expect("valid");
        assert_eq!(eg.gateway, ClusterGateway::EnvoyGateway);
        assert_eq!(
            eg.tools,
            [Tool::Glooctl, Tool::Aws, Tool::Kubectl, Tool::Helm]
        );
        let istio = plan(BackendKind::Kind, GatewayKind::Istio, &flags(&[])).expect("valid");
        assert_eq!(istio.gateway, ClusterGateway::Istio);
        let builtin = plan(BackendKind::Kind, GatewayKind::Builtin, &flags(&[])).expect("valid");
        assert!(!builtin.gateway_api, "only when a scenario needs them");
    }

    #[test]
    fn the_version_flags_override_the_pins_and_are_checked() {
        let args = flags(&[
            "--kgateway-version",
            "v2.4.1",
            "--envoy-gateway-version",
            "v1.8.3",
            "--istio-version",
            "1.30.5",
        ]);
        assert_eq!(args.gateway_api.kgateway_version, "v2.4.1");
        assert_eq!(args.gateway_api.envoy_gateway_version, "v1.8.3");
        assert_eq!(args.gateway_api.istio_version, "1.30.5");
        let pinned = flags(&[]);
        assert_eq!(
            pinned.gateway_api.kgateway_version,
            cluster::KGATEWAY_VERSION
        );
        assert_eq!(
            pinned.gateway_api.envoy_gateway_version,
            cluster::ENVOY_GATEWAY_VERSION
        );
        assert_eq!(pinned.gateway_api.istio_version, cluster::ISTIO_VERSION);

        let bad = plan(
            BackendKind::Kind,
            GatewayKind::Istio,
            &flags(&["--istio-version", "latest"]),
        )
        .expect_err("not a version")
        .to_string();
        assert!(bad.starts_with("--istio-version \"latest\""), "{bad}");
        // Another gateway's flag is not checked when that gateway is not under test.
        plan(
            BackendKind::Kind,
            GatewayKind::Kgateway,
            &flags(&["--istio-version", "latest"]),
        )
        .expect("istio is not installed");
    }

    #[test]
    fn a_gloo_scenario_is_refused_up_front_with_kgateway() {
        let root = crate::workspace_root();
        let walkthrough =
            harness::scenario::load(&root.join("scenarios/walkthrough.yaml")).expect("loads");
        let manifests = root.join("manifests");
        let refused = check_scenarios(
            ClusterGateway::Kgateway,
            std::slice::from_ref(&walkthrough),
            &manifests,
        )
        .expect_err("kgateway speaks Gateway API only")
        .to_string();
        assert!(
            refused.contains("scenario Walkthrough is a Gloo Edge scenario"),
            "{refused}"
        );
        assert!(
            refused.contains("--gateway kgateway speaks Gateway API"),
            "{refused}"
        );
        let needs_crds = check_scenarios(ClusterGateway::Builtin, &[walkthrough], &manifests)
            .expect("builtin serves it");
        assert!(!needs_crds);
    }

    #[test]
    fn the_gateway_flag_takes_the_gateway_api_implementations() {
        #[derive(Debug, Parser)]
        struct Gateway {
            #[command(flatten)]
            gateway: crate::gateway::GatewayArgs,
        }
        for (value, kind) in [
            ("kgateway", GatewayKind::Kgateway),
            ("envoy-gateway", GatewayKind::EnvoyGateway),
            ("istio", GatewayKind::Istio),
        ] {
            let parsed = Gateway::parse_from(["test", "--gateway", value]);
            assert_eq!(parsed.gateway.gateway, kind);
            let local = parsed
                .gateway
                .command(Path::new("/repo"))
                .expect_err("needs a cluster")
                .to_string();
            assert!(local.contains("needs a cluster"), "{local}");
        }
    }
}

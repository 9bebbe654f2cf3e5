//! The cluster backend: the same scenario files on kind, EKS or a disposable K3s, through kube-rs.
//!
//! - **apply** reads the files with [`model::load_paths`] (so bad input gets the model's errors
//!   naming file, line, resource and field), then sends each document as it is written (fields
//!   colormesh does not model included) by server-side apply (field manager `colormesh`, force)
//!   through the dynamic API. Kinds are resolved with kube's discovery, once per kind. Before
//!   sending, each object gets the label `colormesh.dev/run=<run id>`; workspace images
//!   `colormesh/<binary>[:tag]` become `[<registry>/]colormesh/<binary>:<tag>`; and, where the
//!   builtin sidecar stands in for App Mesh (kind, K3s), meshed Deployments get the
//!   `colormesh-sidecar` container by the local backend's mesh rules (`--node`), plus a
//!   ServiceAccount bound to the `colormesh-gateway-proxy` ClusterRole so the sidecar can read the
//!   mesh. With the builtin gateway (EKS included, where nothing else serves it), Deployments in
//!   namespaces labelled `colormesh.dev/mesh: gamma` get the same container and binding as a
//!   GAMMA mesh sidecar (no `--node`). Namespaces
//!   and cluster-scoped objects go first. A Namespace that already existed and was not made by a
//!   colormesh run is not labelled, so cleanup never deletes it.
//! - **Gloo discovery** is emulated for the builtin gateway: after each change the backend
//!   writes the Upstreams Gloo's discovery would (via [`model::discovery::discover_upstreams`])
//!   into the gateway namespace and prunes the ones no longer wanted, as the local backend does.
//! - **wait**: `Rollout` watches the namespace's Deployments until each has its updated replicas
//!   available (`kubectl rollout status`); `Status` watches the Gloo object until the entry the
//!   gateway namespace writes has the wanted state; `Upstream` watches until the Upstream
//!   exists. Watches, not sleeps; a timeout reports the last observed state.
//! - **wait_config_live**: with the builtin gateway, polls gateway-proxy's admin `/status`
//!   (through a port-forward to port 19000) until it serves every changed Gloo resource at the
//!   resourceVersion the apply returned. With Gloo, which publishes no observed generation, it
//!   waits until every changed Gloo resource carries a non-Pending state from the gateway
//!   namespace (reporter `gateway` for VirtualServices): a lower bound, since a status from
//!   before the change also counts.
//! - **proxy_url**: on EKS the `gateway-proxy` Service's load balancer; on kind and K3s a local
//!   listener on 127.0.0.1 port-forwarding each connection to a ready gateway-proxy pod.
//! - **glooctl** runs the real `glooctl` with the backend's kubeconfig and context.
//! - **shutdown** deletes every object labelled with the run id, kind by kind and namespace by
//!   namespace, then the Namespaces the run created; it stops the port-forwards and may be called
//!   more than once.
//!
//! On Ctrl-C or a panic, the coordinator's `shutdown` call is what removes the objects: dropping
//! the backend only stops its port-forwards, since a Kubernetes delete is asynchronous and cannot
//! run in `Drop`. If the process is killed before `shutdown`, everything it made can still be
//! found and removed by its label: `kubectl delete ns,all -A -l colormesh.dev/run=<run id>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiCapabilities, ApiResource, Scope, verbs};
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher;
use ::kube::{Client, ResourceExt};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use model::gloo::{GlooStatus, State};
use model::{Loaded, Origin, Resource, ResourceKey, ResourceKind, ResourceSet};
use serde_json::Value;

use crate::backend::local::admin::{self, ProxyStatus};
use crate::backend::local::workload;
use crate::backend::{Applied, Backend, BackendError, CommandOutput};
use crate::scenario::WaitCondition;

mod emulated;
mod error;
mod forward;
pub mod gateway_api;
pub mod k3s;
mod transform;

use super::{ClusterGateway, Provider};
pub use error::{KubeError, MissingKind};
use error::{NotYet, TimedOut, wait_timeout};
pub use forward::ForwardError;
use forward::{LocalForward, ServiceRef};
use gateway_api::{GatewayServiceLookup, Verdict};
use transform::{RUN_LABEL, SidecarMesh};

/// The builtin gateway's manifests, relative to `manifests/`.
pub const GATEWAY_MANIFESTS: &str = "cluster/gateway-proxy";
/// Applied after [`GATEWAY_MANIFESTS`] on EKS: the proxy Service becomes a LoadBalancer.
pub const GATEWAY_EKS_OVERLAY: &str = "cluster/gateway-proxy-eks";
/// The gateway namespace, ServiceAccount and ClusterRole alone: what the sidecars injected in
/// App Mesh's place are bound to when another gateway (Gloo) serves the ingress.
pub const SIDECAR_RBAC_MANIFESTS: &str = "cluster/gateway-proxy/rbac.yaml";

/// `<schemas_root>/<name>` for each name, all of which must exist.
fn schema_dirs(schemas_root: &Path, names: &[&str]) -> Result<Vec<PathBuf>, BackendError> {
    names
        .iter()
        .map(|name| {
            let dir = schemas_root.join(name);
            if dir.is_dir() {
                Ok(dir)
            } else {
                Err(BackendError::Unsupported(format!(
                    "{} is missing: the real CRD schemas are installed from there (pass --schemas DIR)",
                    dir.display()
                )))
            }
        })
        .collect()
}

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "colormesh";
/// The gateway's Service and Deployment name (Gloo's and the builtin's).
pub const GATEWAY_PROXY: &str = "gateway-proxy";
/// The gateway-proxy admin port (the builtin gateway's `/status`).
const ADMIN_PORT: u16 = 19000;
/// The gateway-proxy data-plane container port.
const PROXY_PORT: u16 = 8080;
/// How often the admin `/status` and Gloo statuses are polled in `wait_config_live`.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a CRD may take to become Established, and an EKS load balancer to get an address.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a deleted object may take to go away (a Namespace waits for its Pods to stop).
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);
const LOAD_BALANCER_TIMEOUT: Duration = Duration::from_secs(300);
/// The install hint for a missing glooctl.
const GLOOCTL_INSTALL: &str = "curl -sL https://run.solo.io/gloo/install | sh";

/// Where and how the cluster backend runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    pub provider: Provider,
    pub gateway: ClusterGateway,
    /// The repository's `manifests/` folder; apply and delete paths are relative to it.
    pub manifests_dir: PathBuf,
    /// The value of the `colormesh.dev/run` label on everything this run creates (a valid label
    /// value: up to 63 characters `[A-Za-z0-9._-]`, alphanumeric at both ends).
    pub run_id: String,
    /// The registry images are pulled from (`<registry>/colormesh/<binary>:<tag>`); `None` uses
    /// `colormesh/<binary>:<tag>` as loaded into the nodes (kind, K3s).
    pub registry: Option<String>,
    /// The image tag of every workspace image.
    pub tag: String,
    /// Where the gateway runs and Gloo's discovery writes Upstreams (`gloo-system`).
    pub gateway_namespace: String,
    /// The glooctl program (a bare name is looked up on `PATH`).
    pub glooctl: PathBuf,
    /// The kubeconfig the CLIs use (`None`: `KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`None`: the current context).
    pub context: Option<String>,
    /// Whether pods App Mesh meshes get the builtin sidecar (`--node`) in place of App Mesh's
    /// Envoy. On by default on every provider: App Mesh was discontinued on 2026-09-30, so not
    /// even EKS has its controller or its Envoys any more.
    pub inject_sidecar: bool,
    /// Whether pods in GAMMA namespaces (`colormesh.dev/mesh: gamma`) get the builtin mesh
    /// sidecar (no `--node`). Nothing else on any provider serves colormesh's GAMMA mesh, EKS
    /// included, so this is on wherever the builtin gateway's manifests (the ClusterRole the
    /// sidecar is bound to) are installed: `--gateway builtin`.
    pub inject_gamma_sidecar: bool,
}

impl KubeSettings {
    /// The defaults for a provider: tag `latest`, no registry, `gloo-system`, `glooctl` from
    /// `PATH`, the default kubeconfig, App Mesh's stand-in sidecar injected on every provider,
    /// and the GAMMA mesh sidecar injected with the builtin gateway.
    pub fn new(
        provider: Provider,
        gateway: ClusterGateway,
        manifests_dir: impl Into<PathBuf>,
        run_id: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            gateway,
            manifests_dir: manifests_dir.into(),
            run_id: run_id.into(),
            registry: None,
            tag: "latest".into(),
            gateway_namespace: model::gloo::GLOO_NAMESPACE.into(),
            glooctl: PathBuf::from("glooctl"),
            kubeconfig: None,
            context: None,
            inject_sidecar: true,
            inject_gamma_sidecar: gateway == ClusterGateway::Builtin,
        }
    }

    /// A fresh run id: `cm-<seconds since the epoch, base 36>-<process id>`.
    pub fn generate_run_id() -> String {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("cm-{}-{}", base36(seconds), std::process::id())
    }

    fn label_selector(&self) -> String {
        format!("{RUN_LABEL}={}", self.run_id)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn valid_label_value(value: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !value.is_empty()
        && value.len() <= 63
        && edge(value.chars().next())
        && edge(value.chars().last())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A kind resolved by discovery.
#[derive(Debug, Clone)]
struct Resolved {
    resource: ApiResource,
    capabilities: ApiCapabilities,
}

impl Resolved {
    fn namespaced(&self) -> bool {
        self.capabilities.scope == Scope::Namespaced
    }
}

/// A kind (group, version, kind) and the namespace (`None`: cluster scope) a run wrote to.
type WrittenScope = (String, String, String, Option<String>);

/// One object an apply or delete wrote, for `wait_config_live`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    key: ResourceKey,
    version: u64,
    deleted: bool,
}

/// A document ready to send: where it came from (for errors) and its JSON.
#[derive(Debug)]
struct Outgoing {
    /// `file:line` of a manifest, `None` for objects the backend generates.
    origin: Option<Origin>,
    object: Value,
}

impl Outgoing {
    fn describe(&self) -> String {
        let header = object_header(&self.object);
        match &self.origin {
            Some(origin) => format!("{origin}: {}", header.label()),
            None => format!("{} (written by the colormesh backend)", header.label()),
        }
    }
}

/// The identity fields of a JSON object.
#[derive(Debug, Clone)]
struct Header {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Header {
    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }

    fn key(&self) -> ResourceKey {
        ResourceKey::new(
            ResourceKind::from_type(&self.api_version, &self.kind),
            self.namespace.as_deref(),
            &self.name,
        )
    }

    fn label(&self) -> String {
        self.key().to_string()
    }
}

fn object_header(object: &Value) -> Header {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    Header {
        api_version: text("/apiVersion").unwrap_or_default().to_owned(),
        kind: text("/kind").unwrap_or_default().to_owned(),
        namespace: text("/metadata/namespace")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        name: text("/metadata/name").unwrap_or_default().to_owned(),
    }
}

/// The cluster backend. Build it with [`KubeBackend::new`] (any [`kube::Client`], so tests pass
/// a mocked one) or [`KubeBackend::connect`].
pub struct KubeBackend {
    client: Client,
    settings: KubeSettings,
    discovery: HashMap<GroupVersionKind, Resolved>,
    /// Every object this run applied (for the mesh rules and emulated discovery).
    known: ResourceSet,
    /// The kinds and scopes this run wrote to, for cleanup by label.
    written: BTreeMap<WrittenScope, Resolved>,
    /// The Upstreams the emulated discovery wrote.
    discovered: BTreeSet<String>,
    /// What each apply or delete changed, by the revision it returned.
    changes: BTreeMap<u64, Vec<Change>>,
    revision: u64,
    proxy_forward: Option<LocalForward>,
    glooctl_kubeconfig: Option<tempfile::NamedTempFile>,
    /// The Gateway API Gateways applied, in apply order: namespace, name, HTTP listener port.
    gateways: Vec<(String, String, Option<u16>)>,
    shut_down: bool,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("settings", &self.settings)
            .field("revision", &self.revision)
            .field("proxy_forward", &self.proxy_forward)
            .field("shut_down", &self.shut_down)
            .finish_non_exhaustive()
    }
}

impl KubeBackend {
    /// A backend on an existing client.
    pub fn new(client: Client, settings: KubeSettings) -> Self {
        Self {
            client,
            settings,
            discovery: HashMap::new(),
            known: ResourceSet::new(),
            written: BTreeMap::new(),
            discovered: BTreeSet::new(),
            changes: BTreeMap::new(),
            revision: 0,
            proxy_forward: None,
            glooctl_kubeconfig: None,
            gateways: Vec::new(),
            shut_down: false,
        }
    }

    /// A client for a kubeconfig file (`None`: `KUBECONFIG` or `~/.kube/config`) and context
    /// (`None`: its current context).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Client, BackendError> {
        let options = ::kube::config::KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let where_ = kubeconfig.map_or_else(
            || "the default kubeconfig".to_owned(),
            |p| p.display().to_string(),
        );
        let config = match kubeconfig {
            Some(path) => {
                let file = ::kube::config::Kubeconfig::read_from(path).map_err(|source| {
                    KubeError::ReadKubeconfig {
                        place: where_.clone(),
                        source,
                    }
                })?;
                ::kube::Config::from_custom_kubeconfig(file, &options).await
            }
            None => ::kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|source| KubeError::LoadKubeconfig {
            place: where_.clone(),
            context: context.map(str::to_owned),
            source,
        })?;
        Ok(
            Client::try_from(config).map_err(|source| KubeError::Client {
                place: where_,
                source,
            })?,
        )
    }

    /// The settings this backend runs with.
    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    /// Server-side applies every CustomResourceDefinition in the YAML files directly inside
    /// `dirs` (e.g. `../shared/schemas/gloo`) and waits until each is Established.
    pub async fn install_crds(&mut self, dirs: &[PathBuf]) -> Result<(), BackendError> {
        let mut files = Vec::new();
        for dir in dirs {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| BackendError::Io {
                    context: format!("cannot read the CRD folder {}", dir.display()),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        }
        self.install_crd_files(&files).await
    }

    /// Installs gateway-proxy as the cluster's gateway (`--gateway builtin`): the real Gloo,
    /// App Mesh and Gateway API CRDs from `schemas_root` (`../shared/schemas/`), then
    /// `manifests/cluster/gateway-proxy/` (plus the LoadBalancer overlay on EKS) with the run's
    /// label, and waits for its rollout.
    pub async fn install_builtin_gateway(
        &mut self,
        schemas_root: &Path,
    ) -> Result<(), BackendError> {
        self.install_crds(&schema_dirs(schemas_root, &["gloo", "appmesh"])?)
            .await?;
        // gateway-proxy watches the Gateway API kinds too, whatever the scenario's dialect, and
        // exits when the API server does not serve them.
        self.install_gateway_api_crds(schemas_root).await?;
        let mut paths = vec![PathBuf::from(GATEWAY_MANIFESTS)];
        if self.settings.provider == Provider::Eks {
            paths.push(PathBuf::from(GATEWAY_EKS_OVERLAY));
        }
        Backend::apply(self, &paths).await?;
        let gateway_namespace = WaitCondition::Rollout {
            namespace: self.settings.gateway_namespace.clone(),
        };
        let timeout = gateway_namespace.default_timeout();
        Backend::wait(self, &gateway_namespace, timeout).await?;
        Ok(())
    }

    /// What the sidecars injected in App Mesh's place need when another gateway (Gloo) serves
    /// the ingress: the App Mesh CRDs from `schemas_root` and the ClusterRole they are bound to
    /// (`manifests/cluster/gateway-proxy/rbac.yaml`).
    pub async fn install_sidecar_support(
        &mut self,
        schemas_root: &Path,
    ) -> Result<(), BackendError> {
        self.install_crds(&schema_dirs(schemas_root, &["appmesh"])?)
            .await?;
        Backend::apply(self, &[PathBuf::from(SIDECAR_RBAC_MANIFESTS)]).await?;
        Ok(())
    }

    /// Installs the official Gateway API CRDs from `schemas_root` (`../shared/schemas`): the
    /// standard GatewayClass, Gateway and ReferenceGrant, and the experimental HTTPRoute (see
    /// [`gateway_api::CRD_FILES`] for why), then waits until each is Established. A missing
    /// folder or file is named before anything is sent.
    pub async fn install_gateway_api_crds(
        &mut self,
        schemas_root: &Path,
    ) -> Result<(), BackendError> {
        let files = gateway_api::crd_files(schemas_root).map_err(KubeError::from)?;
        self.install_crd_files(&files).await
    }

    /// Server-side applies every CustomResourceDefinition in `files`, then waits (watching each
    /// one, up to [`CRD_TIMEOUT`]) until the API server reports it Established.
    async fn install_crd_files(&mut self, files: &[PathBuf]) -> Result<(), BackendError> {
        let mut names = Vec::new();
        for file in files {
            let text = read_text(file)?;
            for (line, document) in transform::raw_documents(&text) {
                let object = document.map_err(|message| BackendError::Manifest {
                    file: file.clone(),
                    message: format!("line {line}: {message}"),
                })?;
                let header = object_header(&object);
                if header.kind != "CustomResourceDefinition" {
                    continue;
                }
                let outgoing = Outgoing {
                    origin: Some(Origin {
                        file: file.clone(),
                        line,
                    }),
                    object,
                };
                self.send(&outgoing).await?;
                names.push(header.name);
            }
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in names {
            let established = ::kube::runtime::wait::await_condition(
                crds.clone(),
                &name,
                ::kube::runtime::wait::conditions::is_crd_established(),
            );
            match tokio::time::timeout(CRD_TIMEOUT, established).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(KubeError::CrdNotEstablished { name, source }.into());
                }
                Err(_) => {
                    return Err(BackendError::Timeout {
                        condition: format!("CRD {name} to be Established"),
                        timeout: CRD_TIMEOUT,
                        detail: None,
                    });
                }
            }
        }
        // A new CRD changes what discovery answers.
        self.discovery.clear();
        Ok(())
    }

    fn ensure_running(&self) -> Result<(), BackendError> {
        if self.shut_down {
            Err(BackendError::ShutDown {
                backend: self.settings.provider.name(),
            })
        } else if !valid_label_value(&self.settings.run_id) {
            Err(KubeError::InvalidRunId {
                run_id: self.settings.run_id.clone(),
            }
            .into())
        } else {
            Ok(())
        }
    }

    /// Reads the files and pairs each loaded resource with its document's raw JSON.
    fn load(&self, paths: &[PathBuf]) -> Result<Vec<(Loaded, Value)>, BackendError> {
        let resources = super::load_manifests(&self.settings.manifests_dir, paths)?;
        let mut raw: BTreeMap<PathBuf, transform::RawDocuments> = BTreeMap::new();
        let mut out = Vec::new();
        for loaded in resources {
            let file = &loaded.origin.file;
            if !raw.contains_key(file) {
                raw.insert(file.clone(), transform::raw_documents(&read_text(file)?));
            }
            let document = raw
                .get_mut(file)
                .and_then(|docs| docs.remove(&loaded.origin.line));
            let object = match document {
                Some(Ok(object)) => object,
                Some(Err(error)) => {
                    return Err(BackendError::Manifest {
                        file: file.clone(),
                        message: format!("{}: {error}", loaded.origin),
                    });
                }
                None => {
                    return Err(BackendError::Manifest {
                        file: file.clone(),
                        message: format!(
                            "{}: {}: the document changed while it was read",
                            loaded.origin,
                            loaded.resource.key()
                        ),
                    });
                }
            };
            out.push((loaded, object));
        }
        Ok(out)
    }

    /// The run label, images and sidecar for one manifest document.
    fn prepare(
        &self,
        loaded: &Loaded,
        mut object: Value,
        rbac: &mut BTreeSet<(String, String)>,
    ) -> Value {
        let settings = &self.settings;
        transform::set_label(&mut object, RUN_LABEL, &settings.run_id);
        transform::rewrite_images(&mut object, settings.registry.as_deref(), &settings.tag);
        // The manifests name the builtin gateway's class; another gateway serves its own.
        if let Some(class) = settings.gateway.gateway_class()
            && settings.gateway != ClusterGateway::Builtin
            && transform::set_gateway_class(&mut object, class.name)
            && settings.gateway == ClusterGateway::Istio
            && settings.provider != Provider::Eks
        {
            // Istio deploys a LoadBalancer Service for a Gateway and reports it Programmed only
            // once that has an address, which kind and K3s never give; the harness port-forwards.
            transform::set_annotation(&mut object, transform::ISTIO_SERVICE_TYPE, "ClusterIP");
        }
        if let Resource::Deployment(deployment) = &loaded.resource
            && let Some(mesh) = transform::sidecar_mesh(&self.known, deployment)
            && match mesh {
                SidecarMesh::AppMesh { .. } => settings.inject_sidecar,
                SidecarMesh::Gamma => settings.inject_gamma_sidecar,
            }
        {
            let namespace = deployment
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let image = transform::workspace_image(
                "gateway-proxy",
                settings.registry.as_deref(),
                &settings.tag,
            );
            let account = transform::inject_sidecar(&mut object, &mesh, &namespace, &image);
            rbac.insert((namespace, account));
        }
        object
    }

    /// Resolves a kind with discovery (cached); a kind the cluster does not serve names its CRD.
    async fn resolve(
        &mut self,
        gvk: &GroupVersionKind,
    ) -> Result<Result<Resolved, MissingKind>, KubeError> {
        if let Some(found) = self.discovery.get(gvk) {
            return Ok(Ok(found.clone()));
        }
        match ::kube::discovery::pinned_kind(&self.client, gvk).await {
            Ok((resource, capabilities)) => {
                let resolved = Resolved {
                    resource,
                    capabilities,
                };
                self.discovery.insert(gvk.clone(), resolved.clone());
                Ok(Ok(resolved))
            }
            Err(::kube::Error::Api(status)) if status.code == 404 => {
                Ok(Err(MissingKind { kind: gvk.clone() }))
            }
            Err(::kube::Error::Discovery(::kube::error::DiscoveryError::MissingKind(_))) => {
                Ok(Err(MissingKind { kind: gvk.clone() }))
            }
            Err(source) => Err(KubeError::Discovery {
                kind: gvk.clone(),
                source,
            }),
        }
    }

    fn dynamic_api(&self, resolved: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) if resolved.namespaced() => {
                Api::namespaced_with(self.client.clone(), namespace, &resolved.resource)
            }
            _ => Api::all_with(self.client.clone(), &resolved.resource),
        }
    }

    /// Server-side applies one object; returns its key and resourceVersion.
    async fn send(&mut self, outgoing: &Outgoing) -> Result<(ResourceKey, u64), BackendError> {
        let mut header = object_header(&outgoing.object);
        let gvk = header.gvk();
        let fail = |reason: String| match &outgoing.origin {
            Some(origin) => BackendError::Manifest {
                file: origin.file.clone(),
                message: format!("{}: {reason}", outgoing.describe()),
            },
            None => KubeError::Refused {
                object: outgoing.describe(),
                reason,
            }
            .into(),
        };
        let resolved = match self.resolve(&gvk).await? {
            Ok(resolved) => resolved,
            Err(missing) => return Err(fail(missing.to_string())),
        };
        let mut object = outgoing.object.clone();
        if resolved.namespaced() {
            let namespace = header.namespace.clone().unwrap_or_else(|| "default".into());
            transform::default_namespace(&mut object, &namespace);
            header.namespace = Some(namespace);
        } else {
            header.namespace = None;
        }
        let api = self.dynamic_api(&resolved, header.namespace.as_deref());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&header.name, &params, &Patch::Apply(&object))
            .await
            .map_err(|error| match (&outgoing.origin, &error) {
                (None, ::kube::Error::Api(status)) if status.code == 409 => KubeError::Conflict {
                    object: outgoing.describe(),
                    reason: apply_error(error),
                }
                .into(),
                _ => fail(apply_error(error)),
            })?;
        self.written.insert(
            (
                gvk.group.clone(),
                gvk.version.clone(),
                gvk.kind.clone(),
                header.namespace.clone(),
            ),
            resolved,
        );
        let version = applied
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        Ok((header.key(), version))
    }

    /// Server-side applies an object the backend made rather than read from a manifest
    /// (emulated discovery's Upstreams, glooctl's writes), labelled with the run.
    async fn send_generated(&mut self, mut object: Value) -> Result<Change, BackendError> {
        transform::set_label(&mut object, RUN_LABEL, &self.settings.run_id);
        let (key, version) = self
            .send(&Outgoing {
                origin: None,
                object,
            })
            .await?;
        Ok(Change {
            key,
            version,
            deleted: false,
        })
    }

    /// Whether a Namespace exists and was not made by a colormesh run (then it is not labelled).
    async fn foreign_namespace(&self, name: &str) -> Result<bool, BackendError> {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        match namespaces.get_opt(name).await {
            Ok(Some(namespace)) => Ok(!namespace.labels().contains_key(RUN_LABEL)),
            Ok(None) => Ok(false),
            Err(source) => Err(KubeError::Read {
                object: format!("Namespace {name}"),
                source,
            }
            .into()),
        }
    }

    /// Makes the emulated discovery's Upstreams exactly what the applied Services and pods imply.
    async fn sync_discovery(&mut self, changes: &mut Vec<Change>) -> Result<(), BackendError> {
        let wanted = workload::discovered_upstreams(&self.known);
        let mut names = BTreeSet::new();
        for mut upstream in wanted {
            upstream.metadata.namespace = Some(self.settings.gateway_namespace.clone());
            let name = upstream.metadata.name.clone().unwrap_or_default();
            let object =
                serde_json::to_value(Resource::Upstream(Box::new(upstream))).map_err(|source| {
                    KubeError::EncodeUpstream {
                        name: name.clone(),
                        source,
                    }
                })?;
            changes.push(self.send_generated(object).await?);
            names.insert(name);
        }
        let stale: Vec<String> = self.discovered.difference(&names).cloned().collect();
        let namespace = self.settings.gateway_namespace.clone();
        for name in stale {
            let key = ResourceKey::new(ResourceKind::Upstream, Some(&namespace), &name);
            if let Some(version) = self.delete_object(&key).await? {
                changes.push(Change {
                    key,
                    version,
                    deleted: true,
                });
            }
        }
        self.discovered = names;
        Ok(())
    }

    /// Deletes one object; `None` when it was already gone.
    async fn delete_object(&mut self, key: &ResourceKey) -> Result<Option<u64>, BackendError> {
        let gvk = header_of_key(key).gvk();
        let resolved = match self.resolve(&gvk).await? {
            Ok(resolved) => resolved,
            // Nothing of a kind the cluster does not serve can exist.
            Err(_) => return Ok(None),
        };
        let api = self.dynamic_api(&resolved, key.namespace.as_deref());
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(either) => Ok(Some(
                either
                    .left()
                    .and_then(|o| o.metadata.resource_version)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default(),
            )),
            Err(::kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(source) => Err(KubeError::Delete {
                object: key.to_string(),
                source,
            }
            .into()),
        }
    }

    /// Waits until each object is gone from the API server (its finalizers done: a Namespace's
    /// content deleted, its Pods stopped), up to [`DELETE_TIMEOUT`].
    async fn await_gone<'a>(
        &mut self,
        keys: impl Iterator<Item = &'a ResourceKey>,
    ) -> Result<(), BackendError> {
        let deadline = Instant::now() + DELETE_TIMEOUT;
        for key in keys {
            let Ok(resolved) = self.resolve(&header_of_key(key).gvk()).await? else {
                continue;
            };
            let api = self.dynamic_api(&resolved, key.namespace.as_deref());
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            loop {
                interval.tick().await;
                let found = api
                    .get_opt(&key.name)
                    .await
                    .map_err(|source| KubeError::Read {
                        object: key.to_string(),
                        source,
                    })?;
                let Some(object) = found else { break };
                if Instant::now() > deadline {
                    return Err(BackendError::Timeout {
                        condition: format!("{key} to be deleted"),
                        timeout: DELETE_TIMEOUT,
                        detail: Some(format!(
                            "still there, finalizers {:?}",
                            object.metadata.finalizers.unwrap_or_default()
                        )),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records an apply's or delete's changes under a new revision.
    fn record(&mut self, changes: Vec<Change>) -> u64 {
        let highest = changes.iter().map(|c| c.version).max().unwrap_or_default();
        self.revision = highest.max(self.revision + 1);
        self.changes.insert(self.revision, changes);
        self.revision
    }

    fn gateway_service(&self, port_name: Option<&str>, fallback_port: u16) -> ServiceRef {
        ServiceRef {
            namespace: self.settings.gateway_namespace.clone(),
            name: GATEWAY_PROXY.into(),
            port_name: port_name.map(str::to_owned),
            port_number: None,
            fallback_port,
        }
    }

    async fn wait_rollout(&self, namespace: &str, timeout: Duration) -> Result<(), TimedOut> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let mut last = "no answer from the API server yet".to_owned();
        let watch = async {
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            let mut listing: BTreeMap<String, Deployment> = BTreeMap::new();
            let mut current: Option<BTreeMap<String, Deployment>> = None;
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Init) => listing.clear(),
                    Ok(watcher::Event::InitApply(d)) => {
                        listing.insert(d.name_any(), d);
                    }
                    Ok(watcher::Event::InitDone) => current = Some(std::mem::take(&mut listing)),
                    Ok(watcher::Event::Apply(d)) => {
                        if let Some(current) = &mut current {
                            current.insert(d.name_any(), d);
                        }
                    }
                    Ok(watcher::Event::Delete(d)) => {
                        if let Some(current) = &mut current {
                            current.remove(&d.name_any());
                        }
                    }
                    Err(e) => {
                        last = format!("watch error: {e}");
                        continue;
                    }
                }
                if let Some(current) = &current {
                    let waiting: Vec<String> = current
                        .values()
                        .filter_map(|d| {
                            rollout_pending(d).map(|why| format!("{}: {why}", d.name_any()))
                        })
                        .collect();
                    if waiting.is_empty() {
                        return;
                    }
                    last = waiting.join(", ");
                }
            }
        };
        match tokio::time::timeout(timeout, watch).await {
            Ok(()) => Ok(()),
            Err(_) => Err(TimedOut {
                last: NotYet::Seen(last),
            }),
        }
    }

    /// Watches a Gateway or HTTPRoute until the Gateway API gateway's verdict is `state`:
    /// `Accepted` (Gateway `Accepted` + `Programmed`, route `Accepted` + `ResolvedRefs` on each
    /// parent the controller wrote) or `Rejected` (one of them `False`).
    async fn wait_gateway_api_status(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let class = self.settings.gateway.gateway_class().ok_or_else(|| {
            WaitError::Failed(BackendError::UnwaitableKind {
                kind: kind.to_owned(),
                reporter: "Gloo",
                reported: "VirtualService, Upstream and UpstreamGroup",
            })
        })?;
        let key = ResourceKey::new(
            ResourceKind::from_type("gateway.networking.k8s.io/v1", kind),
            Some(namespace),
            name,
        );
        let resolved = self
            .resolve(&header_of_key(&key).gvk())
            .await
            .map_err(|error| WaitError::Failed(error.into()))?
            .map_err(|source| {
                WaitError::Failed(
                    KubeError::Unresolved {
                        object: key.to_string(),
                        source,
                    }
                    .into(),
                )
            })?;
        let api = self.dynamic_api(&resolved, Some(namespace));
        let is_gateway = kind == "Gateway";
        self.watch_object_until(api, name, timeout, |object| {
            let Some(object) = object else {
                return Err(NotYet::Seen(format!("{key} does not exist")));
            };
            let json = serde_json::to_value(object).unwrap_or_default();
            let verdict = if is_gateway {
                gateway_api::gateway_verdict(&json)
            } else {
                gateway_api::route_verdict(&json, class.controller)
            };
            let seen = match &verdict {
                Verdict::Ready => "Accepted".to_owned(),
                Verdict::Rejected { .. } => "Rejected".to_owned(),
                Verdict::Pending(seen) => return Err(NotYet::Seen(seen.clone())),
            };
            if seen == state {
                Ok(())
            } else {
                Err(NotYet::Seen(format!("{seen}: {verdict:?}")))
            }
        })
        .await
        .map_err(|TimedOut { last }| WaitError::TimedOut(last))
    }

    /// Watches one object until `check` passes; `Err` carries the last observed state.
    async fn watch_object_until(
        &self,
        api: Api<DynamicObject>,
        name: &str,
        timeout: Duration,
        check: impl Fn(Option<&DynamicObject>) -> Result<(), NotYet>,
    ) -> Result<(), TimedOut> {
        let mut last = NotYet::Seen("no answer from the API server yet".to_owned());
        let watch = async {
            let mut updates = std::pin::pin!(watcher::watch_object(api, name).default_backoff());
            while let Some(update) = updates.next().await {
                match update {
                    Ok(object) => match check(object.as_ref()) {
                        Ok(()) => return,
                        Err(seen) => last = seen,
                    },
                    Err(e) => last = NotYet::Seen(format!("watch error: {e}")),
                }
            }
        };
        match tokio::time::timeout(timeout, watch).await {
            Ok(()) => Ok(()),
            Err(_) => Err(TimedOut { last }),
        }
    }

    /// Whether the builtin gateway serves every change at the applied version.
    async fn builtin_live(&self, changes: &[Change]) -> Result<(), NotYet> {
        let status = self.builtin_status().await?;
        let entries = status.by_resource();
        let mut behind = Vec::new();
        for change in changes
            .iter()
            .filter(|c| super::reported_by_ingress(&c.key.kind))
        {
            behind.extend(admin::lag(
                &entries,
                GATEWAY_PROXY,
                &change.key,
                change.version,
                change.deleted,
                true,
            ));
        }
        if behind.is_empty() {
            Ok(())
        } else {
            Err(NotYet::Behind(behind))
        }
    }

    /// The builtin gateway's admin `/status`, through a port-forward (on `--backend apiserver`,
    /// straight to the pod's loopback, which is what a port-forward reaches).
    async fn builtin_status(&self) -> Result<ProxyStatus, NotYet> {
        let target =
            forward::ready_target(&self.client, &self.gateway_service(None, ADMIN_PORT)).await?;
        let (code, body) = match (self.settings.provider, target.ip) {
            (Provider::Apiserver, Some(std::net::IpAddr::V4(ip))) => {
                let loopback = crate::backend::apiserver::node::pod_loopback(ip);
                forward::get_direct((loopback, target.port).into(), "/status").await?
            }
            _ => {
                forward::get_through_forward(
                    &self.client,
                    &self.settings.gateway_namespace,
                    &target,
                    "/status",
                )
                .await?
            }
        };
        if code != 200 {
            return Err(NotYet::Status {
                proxy: GATEWAY_PROXY,
                status: code,
            });
        }
        serde_json::from_slice(&body).map_err(|source| NotYet::Json {
            proxy: GATEWAY_PROXY,
            source,
        })
    }

    /// Whether Gloo reported a verdict on every changed Gloo resource.
    async fn gloo_live(&mut self, changes: &[Change]) -> Result<(), NotYet> {
        let mut behind = Vec::new();
        for change in changes
            .iter()
            .filter(|c| is_gloo_kind(&c.key.kind) && !c.deleted)
        {
            let gvk = header_of_key(&change.key).gvk();
            let resolved = match self.resolve(&gvk).await? {
                Ok(resolved) => resolved,
                Err(missing) => return Err(KubeError::from(missing).into()),
            };
            let api = self.dynamic_api(&resolved, change.key.namespace.as_deref());
            let object = api
                .get_opt(&change.key.name)
                .await
                .map_err(|source| KubeError::Read {
                    object: change.key.to_string(),
                    source,
                })?;
            let verdict = gloo_entry(object.as_ref(), &self.settings.gateway_namespace);
            let reporter_ok = |reporter: Option<&str>| {
                change.key.kind != ResourceKind::GlooVirtualService || reporter == Some("gateway")
            };
            match verdict {
                Some((state, _, reporter))
                    if state != State::Pending && reporter_ok(reporter.as_deref()) => {}
                Some((state, _, reporter)) => behind.push(format!(
                    "{}: {state} (reported by {})",
                    change.key,
                    reporter.as_deref().unwrap_or("nobody")
                )),
                None => behind.push(format!("{}: no status yet", change.key)),
            }
        }
        if behind.is_empty() {
            Ok(())
        } else {
            Err(NotYet::Behind(behind))
        }
    }

    /// Whether the Gateway API gateway under test gave its verdict on every changed Gateway
    /// (`Accepted` and `Programmed`) and HTTPRoute (`Accepted` and `ResolvedRefs` from each of
    /// its parents the gateway's controller wrote). `Ok(Err(_))`: not yet, with what was seen;
    /// `Err(_)`: a condition is `False`, which no amount of waiting changes.
    async fn gateway_api_live(
        &mut self,
        changes: &[Change],
    ) -> Result<Result<(), NotYet>, BackendError> {
        let Some(class) = self.settings.gateway.gateway_class() else {
            return Ok(Ok(()));
        };
        let mut behind = Vec::new();
        for change in changes.iter().filter(|c| !c.deleted) {
            let header = header_of_key(&change.key);
            let gvk = header.gvk();
            if gvk.group != transform::GATEWAY_API_GROUP
                || !matches!(gvk.kind.as_str(), "Gateway" | "HTTPRoute")
            {
                continue;
            }
            let resolved = match self.resolve(&gvk).await {
                Ok(Ok(resolved)) => resolved,
                Ok(Err(missing)) => return Ok(Err(KubeError::from(missing).into())),
                Err(failure) => return Ok(Err(failure.into())),
            };
            let api = self.dynamic_api(&resolved, change.key.namespace.as_deref());
            let object = match api.get_opt(&change.key.name).await {
                Ok(object) => object,
                Err(source) => {
                    return Ok(Err(KubeError::Read {
                        object: change.key.to_string(),
                        source,
                    }
                    .into()));
                }
            };
            let Some(object) = object else {
                behind.push(format!("{}: does not exist", change.key));
                continue;
            };
            let json = serde_json::to_value(&object).unwrap_or_default();
            let verdict = if gvk.kind == "Gateway" {
                gateway_api::gateway_verdict(&json)
            } else {
                gateway_api::route_verdict(&json, class.controller)
            };
            match verdict {
                Verdict::Ready => {}
                Verdict::Pending(seen) => behind.push(format!("{}: {seen}", change.key)),
                Verdict::Rejected {
                    parent,
                    condition,
                    reason,
                    message,
                } => {
                    return Err(KubeError::Rejected {
                        object: change.key.to_string(),
                        parent,
                        condition,
                        reason,
                        message,
                    }
                    .into());
                }
            }
        }
        Ok(if behind.is_empty() {
            Ok(())
        } else {
            Err(NotYet::Behind(behind))
        })
    }

    /// The Service a Gateway API gateway deployed for the first Gateway the run applied, and
    /// that Gateway's HTTP listener port.
    async fn gateway_api_service(&self) -> Result<(Service, Option<u16>), BackendError> {
        let gateway = self.settings.gateway;
        let Some((namespace, name, port)) = self.gateways.first().cloned() else {
            return Err(KubeError::NoGatewayApplied {
                gateway: gateway.name(),
            }
            .into());
        };
        let Some(lookup) = GatewayServiceLookup::for_gateway(gateway, &namespace, &name) else {
            return Err(KubeError::NoGatewayApplied {
                gateway: gateway.name(),
            }
            .into());
        };
        let what = lookup.describe();
        let missing = |detail: String| KubeError::GatewayServiceMissing {
            what: what.clone(),
            gateway: gateway.name(),
            owner: format!("{namespace}/{name}"),
            detail,
        };
        let lookup_failed = |source| KubeError::GatewayServiceLookup {
            what: what.clone(),
            source,
        };
        let service = match &lookup {
            GatewayServiceLookup::Named { namespace, name } => {
                let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                services
                    .get_opt(name)
                    .await
                    .map_err(lookup_failed)?
                    .ok_or_else(|| missing("it does not exist".into()))?
            }
            GatewayServiceLookup::Labelled {
                namespace,
                selector,
            } => {
                let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                let found = services
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(lookup_failed)?;
                let count = found.items.len();
                let mut items = found.items.into_iter();
                match (items.next(), count) {
                    (Some(service), 1) => service,
                    (None, _) => return Err(missing("no Service matches".into()).into()),
                    (Some(_), count) => {
                        return Err(missing(format!("{count} Services match, expected one")).into());
                    }
                }
            }
        };
        Ok((service, port))
    }

    /// Waits until a LoadBalancer Service has an address; `host:port` of it, with `port` or the
    /// Service's `http` port (default 80).
    async fn load_balancer(
        &self,
        namespace: &str,
        name: &str,
        port: Option<u16>,
    ) -> Result<String, BackendError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let provisioned = ::kube::runtime::wait::await_condition(
            services,
            name,
            ::kube::runtime::wait::conditions::is_service_loadbalancer_provisioned(),
        );
        let service = match tokio::time::timeout(LOAD_BALANCER_TIMEOUT, provisioned).await {
            Ok(Ok(Some(service))) => service,
            Ok(Ok(None)) => {
                return Err(KubeError::NoGatewayService {
                    service: format!("{namespace}/{name}"),
                }
                .into());
            }
            Ok(Err(source)) => {
                return Err(KubeError::WatchService {
                    service: format!("{namespace}/{name}"),
                    source,
                }
                .into());
            }
            Err(_) => {
                return Err(BackendError::Timeout {
                    condition: format!("Service {namespace}/{name} to get a load balancer address"),
                    timeout: LOAD_BALANCER_TIMEOUT,
                    detail: None,
                });
            }
        };
        let address = match port {
            Some(port) => load_balancer_host(&service).map(|host| format!("{host}:{port}")),
            None => load_balancer_address(&service),
        };
        Ok(address.ok_or_else(|| KubeError::NoLoadBalancerAddress {
            service: format!("{namespace}/{name}"),
        })?)
    }

    /// Where the harness reaches a ready pod of `service`: the pod's own address on
    /// `--backend apiserver` (the pod network is this machine's), else a local port-forward.
    async fn reach(
        &mut self,
        provider: Provider,
        service: ServiceRef,
    ) -> Result<String, BackendError> {
        if provider != Provider::Apiserver {
            return self.local_forward(service).await;
        }
        let target = forward::ready_target(&self.client, &service).await?;
        let ip = target.ip.ok_or_else(|| KubeError::NoPodAddress {
            pod: format!("{}/{}", service.namespace, target.pod),
        })?;
        Ok(std::net::SocketAddr::new(ip, target.port).to_string())
    }

    /// The local listener port-forwarding to a ready pod of `service` (started once per run).
    async fn local_forward(&mut self, service: ServiceRef) -> Result<String, BackendError> {
        if self.proxy_forward.is_none() {
            forward::ready_target(&self.client, &service).await?;
            let name = format!("{}/{}", service.namespace, service.name);
            let forward = LocalForward::start(self.client.clone(), service)
                .await
                .map_err(|source| BackendError::Io {
                    context: "cannot open a local port for the gateway port-forward".into(),
                    source,
                })?;
            tracing::info!(addr = %forward.addr(), service = %name, "gateway port-forward listening");
            self.proxy_forward = Some(forward);
        }
        Ok(self
            .proxy_forward
            .as_ref()
            .map(|f| f.addr().to_string())
            .unwrap_or_default())
    }

    async fn glooctl_kubeconfig(&mut self) -> Result<Option<PathBuf>, BackendError> {
        let Some(context) = self.settings.context.clone() else {
            return Ok(self.settings.kubeconfig.clone());
        };
        if let Some(file) = &self.glooctl_kubeconfig {
            return Ok(Some(file.path().to_owned()));
        }
        // glooctl reads the current context only; give it a copy whose current context is ours.
        let mut config = match &self.settings.kubeconfig {
            Some(path) => ::kube::config::Kubeconfig::read_from(path),
            None => ::kube::config::Kubeconfig::read(),
        }
        .map_err(KubeError::GlooctlKubeconfig)?;
        config.current_context = Some(context);
        let text = serde_norway::to_string(&config).map_err(KubeError::EncodeGlooctlKubeconfig)?;
        let io = |source| BackendError::Io {
            context: "cannot write a kubeconfig for glooctl".into(),
            source,
        };
        let mut file = tempfile::Builder::new()
            .prefix("colormesh-glooctl-")
            .suffix(".yaml")
            .tempfile()
            .map_err(io)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
        let path = file.path().to_owned();
        self.glooctl_kubeconfig = Some(file);
        Ok(Some(path))
    }

    /// Every object of `kinds` in the cluster, with its status (kinds the cluster does not serve
    /// have none).
    async fn snapshot(
        &mut self,
        kinds: &[ResourceKind],
    ) -> Result<emulated::ApiSnapshot, BackendError> {
        let mut snapshot = emulated::ApiSnapshot::default();
        for kind in kinds {
            let header = Header {
                api_version: kind.api_version().to_owned(),
                kind: kind.kind().to_owned(),
                namespace: None,
                name: String::new(),
            };
            let Ok(resolved) = self.resolve(&header.gvk()).await? else {
                continue;
            };
            let objects = self
                .dynamic_api(&resolved, None)
                .list(&ListParams::default())
                .await
                .map_err(|source| KubeError::Read {
                    object: format!("every {}", kind.kind()),
                    source,
                })?;
            for object in objects {
                let status = object.data.get("status").cloned();
                let origin = PathBuf::from(format!(
                    "kubernetes://{}/{}{}",
                    kind.kind(),
                    object
                        .metadata
                        .namespace
                        .as_deref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default(),
                    object.name_any()
                ));
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                let loaded =
                    model::decode_api_object(value, kind.api_version(), kind.kind(), &origin)
                        .map_err(|error| KubeError::Decode {
                            object: origin.display().to_string(),
                            message: error.to_string(),
                        })?;
                snapshot.insert(emulated::Observed {
                    resource: loaded.resource,
                    status,
                });
            }
        }
        Ok(snapshot)
    }

    /// glooctl, emulated over the API server's objects (`--backend apiserver`); what it writes
    /// is server-side applied (or deleted) with the run label, like a scenario's manifests. A
    /// write carries the resourceVersion the command read, so a change made meanwhile (the
    /// gateway writing a status: Gloo's CRDs have no status subresource) is a conflict, and the
    /// command runs again on a fresh read, as glooctl's own read-modify-write retries.
    async fn emulated_glooctl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = self.snapshot(&emulated::GLOO_KINDS).await?;
            let proxy_url = self
                .proxy_url()
                .await
                .ok()
                .map(|url| url.as_str().trim_end_matches('/').to_owned());
            let mut store = emulated::RecordingGlooStore::new(
                &snapshot,
                &self.settings.gateway_namespace,
                proxy_url,
            );
            let output = crate::glooctl::run(args, &mut store);
            let writes = std::mem::take(&mut store.writes);
            match self.send_gloo_writes(writes).await {
                Ok(()) => return Ok(output),
                Err(BackendError::Cluster(error))
                    if attempt < ATTEMPTS
                        && matches!(
                            error.downcast_ref::<KubeError>(),
                            Some(KubeError::Conflict { .. })
                        ) =>
                {
                    tracing::debug!(%error, attempt, "glooctl write conflicted; reading again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends what an emulated glooctl command wrote and records it as a change.
    async fn send_gloo_writes(
        &mut self,
        writes: Vec<emulated::GlooWrite>,
    ) -> Result<(), BackendError> {
        let mut changes = Vec::new();
        for write in writes {
            match write {
                emulated::GlooWrite::Apply(resource) => {
                    let change = self
                        .send_generated(emulated::manifest_of(&resource))
                        .await?;
                    self.known.insert(model::Loaded {
                        resource,
                        origin: model::Origin {
                            file: PathBuf::from("glooctl"),
                            line: 1,
                        },
                        ignored_fields: Vec::new(),
                    });
                    changes.push(change);
                }
                emulated::GlooWrite::Delete(key) => {
                    if let Some(version) = self.delete_object(&key).await? {
                        self.known.remove(&key);
                        changes.push(Change {
                            key,
                            version,
                            deleted: true,
                        });
                    }
                }
            }
        }
        if !changes.is_empty() {
            self.record(changes);
        }
        Ok(())
    }

    /// Deletes every object of one kind in one scope carrying the run label.
    async fn delete_labelled(
        &self,
        resolved: &Resolved,
        namespace: Option<&str>,
    ) -> Result<(), KubeError> {
        let api = self.dynamic_api(resolved, namespace);
        let selector = self.settings.label_selector();
        let list = ListParams::default().labels(&selector);
        let scope = namespace.map(|n| format!(" in {n}")).unwrap_or_default();
        let what = format!("{}{scope}", resolved.resource.kind);
        if resolved
            .capabilities
            .supports_operation(verbs::DELETE_COLLECTION)
        {
            return match api
                .delete_collection(&DeleteParams::background(), &list)
                .await
            {
                Ok(_) => Ok(()),
                Err(::kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(source) => Err(KubeError::Labelled {
                    verb: "delete",
                    what,
                    selector,
                    source,
                }),
            };
        }
        let found = match api.list(&list).await {
            Ok(found) => found,
            Err(::kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(source) => {
                return Err(KubeError::Labelled {
                    verb: "list",
                    what,
                    selector,
                    source,
                });
            }
        };
        for object in found {
            let name = object.name_any();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(::kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(KubeError::Delete {
                        object: format!("{} {name}", resolved.resource.kind),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

fn read_text(file: &Path) -> Result<String, BackendError> {
    std::fs::read_to_string(file).map_err(|source| BackendError::Io {
        context: format!("cannot read {}", file.display()),
        source,
    })
}

fn header_of_key(key: &ResourceKey) -> Header {
    Header {
        api_version: key.kind.api_version().to_owned(),
        kind: key.kind.kind().to_owned(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

fn is_gloo_kind(kind: &ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::GlooVirtualService | ResourceKind::Upstream | ResourceKind::UpstreamGroup
    )
}

/// The API server's answer to a refused apply, in words.
fn apply_error(error: ::kube::Error) -> String {
    match error {
        ::kube::Error::Api(status) if status.code == 409 => format!(
            "the API server refused the apply with a conflict (409 {}): {}. Another writer changed or owns this object; delete it or retry",
            status.reason, status.message
        ),
        ::kube::Error::Api(status) => format!(
            "the API server refused the apply ({} {}): {}",
            status.code, status.reason, status.message
        ),
        other => format!("cannot reach the API server: {other}"),
    }
}

/// The gateway namespace's entry in a Gloo object's status: state, reason, reporter.
fn gloo_entry(
    object: Option<&DynamicObject>,
    gateway_namespace: &str,
) -> Option<(State, Option<String>, Option<String>)> {
    let status = object?.data.get("status")?;
    let status: GlooStatus = serde_json::from_value(status.clone()).ok()?;
    let entry = status.get(gateway_namespace)?;
    Some((entry.state, entry.reason.clone(), entry.reported_by.clone()))
}

/// Why a Deployment has not rolled out yet (`kubectl rollout status`), `None` when it has.
fn rollout_pending(deployment: &Deployment) -> Option<String> {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Some("no status yet".into());
    };
    let generation = deployment.metadata.generation.unwrap_or_default();
    if status.observed_generation.unwrap_or_default() < generation {
        return Some("waiting for the controller to observe the new spec".into());
    }
    let updated = status.updated_replicas.unwrap_or_default();
    let total = status.replicas.unwrap_or_default();
    let available = status.available_replicas.unwrap_or_default();
    if updated < wanted {
        return Some(format!("{updated} of {wanted} replicas updated"));
    }
    if total > updated {
        return Some(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Some(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    let available_condition =
        status.conditions.iter().flatten().any(|c| {
            c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
        });
    if !available_condition {
        return Some("condition Available is not True".into());
    }
    None
}

impl Backend for KubeBackend {
    fn name(&self) -> &'static str {
        self.settings.provider.name()
    }

    async fn apply(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        self.ensure_running()?;
        let documents = self.load(paths)?;
        for (loaded, _) in &documents {
            self.known.insert(loaded.clone());
        }
        let mut rbac = BTreeSet::new();
        let mut outgoing = Vec::new();
        for (loaded, object) in documents {
            let mut object = self.prepare(&loaded, object, &mut rbac);
            if let Resource::Namespace(_) = &loaded.resource
                && self.foreign_namespace(&loaded.resource.key().name).await?
            {
                transform::remove_label(&mut object, RUN_LABEL);
            }
            outgoing.push(Outgoing {
                origin: Some(loaded.origin.clone()),
                object,
            });
        }
        for (namespace, account) in rbac {
            for mut object in transform::sidecar_rbac(&namespace, &account) {
                transform::set_label(&mut object, RUN_LABEL, &self.settings.run_id);
                outgoing.push(Outgoing {
                    origin: None,
                    object,
                });
            }
        }
        outgoing.sort_by_key(|o| {
            let header = object_header(&o.object);
            transform::apply_priority(&header.api_version, &header.kind)
        });
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        for item in &outgoing {
            let (key, version) = self.send(item).await?;
            if item.origin.is_some() {
                changed.push(key.to_string());
            }
            if transform::is_gateway_api(&item.object, "Gateway") {
                let namespace = key.namespace.clone().unwrap_or_else(|| "default".into());
                self.gateways
                    .retain(|(n, name, _)| (n, name) != (&namespace, &key.name));
                self.gateways.push((
                    namespace,
                    key.name.clone(),
                    gateway_api::listener_port(&item.object),
                ));
            }
            changes.push(Change {
                key,
                version,
                deleted: false,
            });
        }
        if self.settings.gateway == ClusterGateway::Builtin {
            self.sync_discovery(&mut changes).await?;
        }
        let revision = self.record(changes);
        Ok(Applied { changed, revision })
    }

    async fn delete(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        self.ensure_running()?;
        let documents = self.load(paths)?;
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        for (loaded, _) in documents.iter().rev() {
            let key = loaded.resource.key();
            self.known.remove(&key);
            if let Some(version) = self.delete_object(&key).await? {
                changed.push(key.to_string());
                changes.push(Change {
                    key,
                    version,
                    deleted: true,
                });
            }
        }
        // As `kubectl delete` does by default (--wait): a Namespace being terminated refuses
        // new objects, so the next step's apply would fail against a real API server.
        self.await_gone(changes.iter().map(|c| &c.key)).await?;
        if self.settings.gateway == ClusterGateway::Builtin {
            self.sync_discovery(&mut changes).await?;
        }
        let revision = self.record(changes);
        Ok(Applied { changed, revision })
    }

    async fn glooctl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        if self.settings.provider == Provider::Apiserver {
            return self.emulated_glooctl(args).await;
        }
        let kubeconfig = self.glooctl_kubeconfig().await?;
        let program = &self.settings.glooctl;
        let mut command = tokio::process::Command::new(program);
        command.args(args).kill_on_drop(true);
        if let Some(path) = &kubeconfig {
            command.env("KUBECONFIG", path);
        }
        let output = command.output().await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KubeError::GlooctlMissing {
                    program: program.clone(),
                    install: GLOOCTL_INSTALL,
                }
                .into()
            } else {
                BackendError::Io {
                    context: format!("cannot run {}", program.display()),
                    source,
                }
            }
        })?;
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            success: output.status.success(),
        })
    }

    async fn kubectl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        if self.settings.provider == Provider::Apiserver {
            let snapshot = self.snapshot(&emulated::KUBECTL_KINDS).await?;
            return Ok(crate::kubectl::run(args, &snapshot));
        }
        // The real kubectl: it prints exactly what an operator sees (the API server's table of
        // the CRDs' printer columns), and kind already needs it. The backend's kubeconfig and
        // context are passed as flags.
        let mut command = tokio::process::Command::new("kubectl");
        if let Some(path) = &self.settings.kubeconfig {
            command.arg("--kubeconfig").arg(path);
        }
        if let Some(context) = &self.settings.context {
            command.arg("--context").arg(context);
        }
        command.args(args).kill_on_drop(true);
        let output = command.output().await.map_err(|source| BackendError::Io {
            context: "cannot run kubectl (install it: https://kubernetes.io/docs/tasks/tools/)"
                .to_owned(),
            source,
        })?;
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            success: output.status.success(),
        })
    }

    async fn wait(
        &mut self,
        condition: &WaitCondition,
        timeout: Duration,
    ) -> Result<Duration, BackendError> {
        self.ensure_running()?;
        let started = Instant::now();
        match condition {
            WaitCondition::Rollout { namespace } => self
                .wait_rollout(namespace, timeout)
                .await
                .map_err(|last| wait_timeout(condition, timeout, last))?,
            // Gateway and HTTPRoute wait for the gateway's verdict; the `conditions` a scenario
            // pins are checked on the local backend only (the conformance suite runs there).
            WaitCondition::Status {
                kind,
                namespace,
                name,
                state,
                ..
            } if matches!(kind.as_str(), "Gateway" | "HTTPRoute") => {
                self.wait_gateway_api_status(kind, namespace, name, state, timeout)
                    .await
                    .map_err(|error| match error {
                        WaitError::TimedOut(last) => {
                            wait_timeout(condition, timeout, TimedOut { last })
                        }
                        WaitError::Failed(error) => error,
                    })?;
            }
            WaitCondition::Status {
                kind,
                namespace,
                name,
                state,
                ..
            } => {
                let api_version = match kind.as_str() {
                    "VirtualService" => "gateway.solo.io/v1",
                    "Upstream" | "UpstreamGroup" => "gloo.solo.io/v1",
                    other => {
                        return Err(BackendError::UnwaitableKind {
                            kind: other.to_owned(),
                            reporter: "a cluster",
                            reported: "VirtualService, Upstream, UpstreamGroup (Gloo), Gateway \
                                       and HTTPRoute (Gateway API)",
                        });
                    }
                };
                let key = ResourceKey::new(
                    ResourceKind::from_type(api_version, kind),
                    Some(namespace),
                    name,
                );
                let resolved =
                    self.resolve(&header_of_key(&key).gvk())
                        .await?
                        .map_err(|source| KubeError::Unresolved {
                            object: key.to_string(),
                            source,
                        })?;
                let api = self.dynamic_api(&resolved, Some(namespace));
                let gateway_namespace = self.settings.gateway_namespace.clone();
                self.watch_object_until(api, name, timeout, |object| {
                    if object.is_none() {
                        return Err(NotYet::Seen(format!("{key} does not exist")));
                    }
                    match gloo_entry(object, &gateway_namespace) {
                        Some((seen, _, _)) if seen.to_string() == *state => Ok(()),
                        Some((seen, reason, _)) => Err(NotYet::Seen(format!(
                            "{seen}{}",
                            reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ))),
                        None => Err(NotYet::Seen(format!(
                            "no status from {gateway_namespace} yet"
                        ))),
                    }
                })
                .await
                .map_err(|last| wait_timeout(condition, timeout, last))?;
            }
            WaitCondition::Upstream { namespace, name } => {
                let key = ResourceKey::new(ResourceKind::Upstream, Some(namespace), name);
                let resolved =
                    self.resolve(&header_of_key(&key).gvk())
                        .await?
                        .map_err(|source| KubeError::Unresolved {
                            object: key.to_string(),
                            source,
                        })?;
                let api = self.dynamic_api(&resolved, Some(namespace));
                self.watch_object_until(api, name, timeout, |object| match object {
                    Some(_) => Ok(()),
                    None => Err(NotYet::Seen("not discovered".to_owned())),
                })
                .await
                .map_err(|last| wait_timeout(condition, timeout, last))?;
            }
            WaitCondition::Aged {
                kind,
                namespace,
                name,
            } => {
                let key = ResourceKey::new(
                    ResourceKind::from_type("gateway.networking.k8s.io/v1", kind),
                    Some(namespace),
                    name,
                );
                let resolved =
                    self.resolve(&header_of_key(&key).gvk())
                        .await?
                        .map_err(|source| KubeError::Unresolved {
                            object: key.to_string(),
                            source,
                        })?;
                let api = self.dynamic_api(&resolved, Some(namespace));
                let object = api.get(name).await.map_err(|source| KubeError::Read {
                    object: key.to_string(),
                    source,
                })?;
                // The condition is the clock, not an event: wait out the rest of the creation
                // second (by this machine's clock; the API server's may differ by its skew).
                if let Some(created) = object.metadata.creation_timestamp {
                    let now = model::k8s::openapi::jiff::Timestamp::now();
                    let remaining_ms = (created.0.as_second() + 1) * 1000 - now.as_millisecond();
                    if let Ok(remaining_ms) = u64::try_from(remaining_ms) {
                        let remaining = Duration::from_millis(remaining_ms);
                        if remaining > timeout {
                            return Err(wait_timeout(
                                condition,
                                timeout,
                                TimedOut {
                                    last: NotYet::Seen("created in a later second".to_owned()),
                                },
                            ));
                        }
                        tokio::time::sleep(remaining).await;
                    }
                }
            }
        }
        Ok(started.elapsed())
    }

    async fn wait_config_live(
        &mut self,
        applied: &Applied,
        timeout: Duration,
    ) -> Result<Duration, BackendError> {
        self.ensure_running()?;
        let started = Instant::now();
        let changes = self
            .changes
            .get(&applied.revision)
            .cloned()
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = match self.settings.gateway {
                ClusterGateway::Builtin => self.builtin_live(&changes).await,
                ClusterGateway::Gloo => self.gloo_live(&changes).await,
                ClusterGateway::Kgateway | ClusterGateway::EnvoyGateway | ClusterGateway::Istio => {
                    self.gateway_api_live(&changes).await?
                }
            };
            let last = match live {
                Ok(()) => return Ok(started.elapsed()),
                Err(behind) => behind,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Timeout {
                    condition: format!("the gateway to serve revision {}", applied.revision),
                    timeout,
                    detail: Some(last.to_string()),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn gateway_generation(&mut self) -> Result<Option<u64>, BackendError> {
        self.ensure_running()?;
        // Only the builtin gateway (gateway-proxy) numbers its configurations.
        if self.settings.gateway != ClusterGateway::Builtin {
            return Ok(None);
        }
        let status = self
            .builtin_status()
            .await
            .map_err(|not_yet| BackendError::Cluster(Box::new(not_yet)))?;
        Ok(Some(status.generation))
    }

    async fn proxy_url(&mut self) -> Result<url::Url, BackendError> {
        self.ensure_running()?;
        let namespace = self.settings.gateway_namespace.clone();
        let address = if self.settings.gateway.is_gateway_api_only() {
            let (service, port) = self.gateway_api_service().await?;
            let service_namespace = service.namespace().unwrap_or_default();
            let service_name = service.name_any();
            match self.settings.provider {
                Provider::Eks => {
                    self.load_balancer(&service_namespace, &service_name, port)
                        .await?
                }
                provider => {
                    let listener = port.unwrap_or(80);
                    let target = ServiceRef {
                        namespace: service_namespace,
                        name: service_name,
                        port_name: None,
                        port_number: Some(i32::from(listener)),
                        fallback_port: listener,
                    };
                    self.reach(provider, target).await?
                }
            }
        } else {
            match self.settings.provider {
                Provider::Eks => self.load_balancer(&namespace, GATEWAY_PROXY, None).await?,
                provider => {
                    let service = self.gateway_service(Some("http"), PROXY_PORT);
                    self.reach(provider, service).await?
                }
            }
        };
        let url = format!("http://{address}");
        url::Url::parse(&url).map_err(|source| BackendError::ProxyUrl { url, source })
    }

    async fn shutdown(&mut self) -> Result<(), BackendError> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        if let Some(forward) = self.proxy_forward.take() {
            forward.stop();
        }
        self.glooctl_kubeconfig = None;
        let mut failures = Vec::new();
        let namespace_kind = ("".to_owned(), "v1".to_owned(), "Namespace".to_owned());
        let mut namespaces = None;
        // Namespaced objects first, then cluster-scoped ones, then the namespaces themselves.
        let mut scopes: Vec<(&WrittenScope, &Resolved)> = self.written.iter().collect();
        scopes.sort_by_key(|((_, _, _, namespace), _)| namespace.is_none());
        for (scope, resolved) in scopes {
            let (group, version, kind, namespace) = scope;
            if (group, version, kind) == (&namespace_kind.0, &namespace_kind.1, &namespace_kind.2) {
                namespaces = Some(resolved);
                continue;
            }
            if let Err(failure) = self.delete_labelled(resolved, namespace.as_deref()).await {
                failures.push(failure);
            }
        }
        if let Some(resolved) = namespaces
            && let Err(failure) = self.delete_labelled(resolved, None).await
        {
            failures.push(failure);
        }
        tracing::info!(run = %self.settings.run_id, "cluster objects of the run deleted");
        if failures.is_empty() {
            Ok(())
        } else {
            Err(KubeError::CleanupIncomplete {
                run_id: self.settings.run_id.clone(),
                failures,
                selector: self.settings.label_selector(),
            }
            .into())
        }
    }
}

/// `host:port` of a LoadBalancer Service's first ingress and its `http` port (default 80).
/// Why a wait ended without its condition: its deadline (with the last state seen) or a failure.
enum WaitError {
    TimedOut(NotYet),
    Failed(BackendError),
}

fn load_balancer_address(service: &Service) -> Option<String> {
    let host = load_balancer_host(service)?;
    let port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("http")))
        .map_or(80, |p| p.port);
    Some(format!("{host}:{port}"))
}

/// The hostname (or IP) of a LoadBalancer Service's first ingress.
fn load_balancer_host(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    let host = ingress
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| ingress.ip.clone().filter(|i| !i.is_empty()))?;
    Some(host)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use pretty_assertions::assert_eq;

    use super::*;

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ::kube::api::ObjectMeta {
                name: Some("d".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            },
            status: Some(status),
        }
    }

    fn available() -> Vec<DeploymentCondition> {
        vec![DeploymentCondition {
            type_: Some("Available".into()),
            status: Some("True".into()),
            ..Default::default()
        }]
    }

    #[test]
    fn rollout_follows_kubectl_rollout_status() {
        let done = DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(2),
            updated_replicas: Some(2),
            available_replicas: Some(2),
            conditions: Some(available()),
            ..Default::default()
        };
        assert_eq!(rollout_pending(&deployment(2, done.clone())), None);
        let stale = DeploymentStatus {
            observed_generation: Some(1),
            ..done.clone()
        };
        assert!(rollout_pending(&deployment(2, stale)).is_some_and(|w| w.contains("observe")));
        let surging = DeploymentStatus {
            replicas: Some(3),
            ..done.clone()
        };
        assert_eq!(
            rollout_pending(&deployment(2, surging)).as_deref(),
            Some("1 old replicas pending termination")
        );
        let starting = DeploymentStatus {
            available_replicas: Some(1),
            ..done.clone()
        };
        assert_eq!(
            rollout_pending(&deployment(2, starting)).as_deref(),
            Some("1 of 2 updated replicas available")
        );
        let no_condition = DeploymentStatus {
            conditions: None,
            ..done
        };
        assert!(rollout_pending(&deployment(2, no_condition)).is_some());
    }

    #[test]
    fn a_missing_crd_is_named_with_what_to_install() {
        let gvk = GroupVersionKind::gvk("gateway.solo.io", "v1", "VirtualService");
        assert_eq!(
            MissingKind { kind: gvk }.to_string(),
            "the cluster has no CRD for gateway.solo.io/v1 VirtualService (virtualservices.gateway.solo.io); install Gloo or apply ../shared/schemas/gloo/"
        );
        let mesh = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", "Mesh");
        assert!(
            MissingKind { kind: mesh }
                .to_string()
                .contains("apply ../shared/schemas/appmesh/")
        );
    }

    #[test]
    fn run_ids_are_label_values() {
        let id = KubeSettings::generate_run_id();
        assert!(valid_label_value(&id), "{id}");
        assert!(!valid_label_value("-x"));
        assert!(!valid_label_value("a b"));
        assert!(!valid_label_value(&"a".repeat(64)));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(71), "1z");
    }

    #[test]
    fn defaults_inject_the_sidecar_on_every_provider_eks_included() {
        let kind = KubeSettings::new(Provider::Kind, ClusterGateway::Builtin, "manifests", "r");
        assert!(kind.inject_sidecar);
        assert_eq!(kind.gateway_namespace, "gloo-system");
        assert_eq!(kind.tag, "latest");
        // App Mesh's controller and Envoys are gone from EKS too.
        let eks = KubeSettings::new(Provider::Eks, ClusterGateway::Gloo, "manifests", "r");
        assert!(eks.inject_sidecar);
    }

    #[test]
    fn the_gamma_sidecar_is_injected_with_the_builtin_gateway_on_every_provider() {
        for provider in [Provider::Kind, Provider::K3s, Provider::Eks] {
            let builtin = KubeSettings::new(provider, ClusterGateway::Builtin, "manifests", "r");
            assert!(builtin.inject_gamma_sidecar, "{provider:?}");
            for gateway in [
                ClusterGateway::Gloo,
                ClusterGateway::Kgateway,
                ClusterGateway::EnvoyGateway,
                ClusterGateway::Istio,
            ] {
                let other = KubeSettings::new(provider, gateway, "manifests", "r");
                assert!(!other.inject_gamma_sidecar, "{provider:?} {gateway:?}");
            }
        }
    }

    #[test]
    fn the_gateway_namespace_entry_is_the_verdict() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": "vs", "namespace": "gloo-system"},
            "status": {"statuses": {
                "other": {"state": "Rejected", "reportedBy": "gateway"},
                "gloo-system": {"state": "Accepted", "reportedBy": "gateway"}
            }}
        }))
        .expect("object");
        assert_eq!(
            gloo_entry(Some(&object), "gloo-system"),
            Some((State::Accepted, None, Some("gateway".into())))
        );
        assert_eq!(gloo_entry(Some(&object), "elsewhere"), None);
        assert_eq!(gloo_entry(None, "gloo-system"), None);
    }
}

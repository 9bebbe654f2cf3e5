//! The local backend: the walkthrough's cluster as processes on 127.0.0.1, with ephemeral ports.
//!
//! The backend plays every part Kubernetes, App Mesh and Gloo play in the walkthrough:
//! - **API server.** Applied objects live in a [`model::ResourceSet`]; each write stamps an
//!   increasing `metadata.resourceVersion` (the [`Applied::revision`]) and writes the object as a
//!   YAML file (temporary file + rename) into one cluster folder, `<work>/cluster/`, which every
//!   proxy reads with `--config-dir`: the same YAML a cluster would hold. Deleting removes the file.
//! - **Deployments.** Each gets `replicas` (default 1) processes named `<deployment>-<n>`. The image
//!   names the workspace binary (`colormesh/colorteller:latest` runs `<bin_dir>/colorteller`); the
//!   container's env is passed with literal values and `fieldRef`s to `metadata.name`,
//!   `metadata.namespace`, `status.podIP` (127.0.0.1) and `spec.nodeName` (`local`). A value equal to
//!   a declared containerPort becomes `0`, so the process binds an ephemeral port, and every pod
//!   gets `BIND_ADDR=127.0.0.1` and `LOG_FORMAT=json`. The real port comes from the
//!   `colormesh::listening` event the process logs on stderr; its output goes to
//!   `<work>/logs/<pod>.log`. A pod is ready once it announced its listener and, for HTTP, answered
//!   one request (`/ping`). A changed template replaces the pods: new ones start and become ready
//!   before the old ones stop.
//! - **Services.** Each Service port gets a local "ClusterIP": a TCP forwarder on 127.0.0.1 that
//!   spreads connections round robin over the ready pods the Service selects (kube-proxy's job).
//!   For the proxies, one EndpointSlice per ready pod and Service (label
//!   `kubernetes.io/service-name`, address 127.0.0.1, the pod's actual port under the Service
//!   port's name), so they reach pods directly as Gloo's EDS does.
//! - **App Mesh.** A namespace is meshed when a Mesh's namespaceSelector matches its labels or it
//!   carries `appmesh.k8s.aws/sidecarInjectorWebhook: enabled`. A pod there whose labels match a
//!   VirtualNode's podSelector first gets a sidecar, `gateway-proxy sidecar --node <vn> --namespace
//!   <ns>`, started and ready before the app, and the app gets
//!   `HTTP_PROXY=http://127.0.0.1:<sidecar port>` and `NO_PROXY=127.0.0.1,localhost`.
//! - **GAMMA mesh.** A namespace labelled `colormesh.dev/mesh: gamma` is in colormesh's Gateway
//!   API mesh: every pod there (that App Mesh does not mesh) first gets a mesh sidecar, `<gateway>
//!   sidecar --namespace <ns>` (no `--node`), started the same way, and the app gets the same
//!   `HTTP_PROXY`. A value naming a Service port that speaks HTTP (its `appProtocol`, or a port
//!   name `http`, `http2`, `h2c`, optionally `-suffixed`) keeps the name, so the sidecar routes it
//!   by the HTTPRoutes whose parentRef is that Service (or to its endpoints); other ports (raw
//!   TCP) get the local ClusterIP.
//! - **Gateway API.** The ingress serves the Gateways of GatewayClasses naming colormesh's
//!   controller beside Gloo. The store stamps `creationTimestamp` and `generation` as an API
//!   server does (see `cluster`). `wait: status` and config propagation cover GatewayClasses,
//!   Gateways and HTTPRoutes (reported by the ingress, or by the mesh sidecars for routes whose
//!   parents are Services), and `kubectl get` runs through [`crate::kubectl`] against the store
//!   and the reported Gateway API statuses.
//! - **Service names in env.** A value naming a Service port (`colorteller.appmesh-demo:9080`)
//!   keeps the name when the pod is meshed and the name is one of its VirtualNode's backend
//!   virtual services with an HTTP listener: the app's request goes through `HTTP_PROXY` to the
//!   sidecar, which routes it, so the mesh's weighted split applies. Otherwise the value is
//!   rewritten to that Service port's local ClusterIP address; `TCP_ECHO_ENDPOINT` is such a case,
//!   since raw TCP cannot go through an HTTP proxy.
//! - **Gloo.** A `gateway-proxy ingress` reading the cluster folder plays Gloo's gateway-proxy and
//!   starts with the backend (Gloo is installed). After each change, the Upstreams Gloo's
//!   Kubernetes discovery would create are written into `gloo-system` with the `discovered_by`
//!   label: `<ns>-<svc>-<port>` and the 2019 per-label-set names such as
//!   `appmesh-demo-colorgateway-v1-9080`. glooctl commands run through [`crate::glooctl`] against
//!   this store; statuses come from the ingress's `/status`.
//!
//! Not supported, with an error naming the file and resource and pointing to `--backend kind`: any
//! other kind, pods with more than one container, images that are not workspace binaries, and env
//! sources other than the `fieldRef`s above.
//!
//! Config propagation ([`Backend::wait_config_live`]) is measured without sleeping: every proxy
//! reports each resource's `resourceVersion` in `/status`; the wait ends when the ingress reports
//! every changed Gloo resource (and each sidecar every changed App Mesh resource it reports) at
//! the version the apply wrote. Changes to Kubernetes kinds alone (a Deployment, an EndpointSlice)
//! have no status of their own and are therefore not waited for; instead, once the wait is over,
//! every proxy gets `POST /reload` (it answers after the swap), so the EndpointSlices that apply
//! wrote are served before the next step sends traffic. The propagation time excludes that barrier.
//!
//! Every child is killed when the backend is dropped (`kill_on_drop`); [`Backend::shutdown`]
//! sends SIGTERM, waits briefly, then SIGKILLs, and is safe to call more than once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::gloo::State;
use model::{Loaded, Origin, Resource, ResourceKey, ResourceKind};

use crate::backend::{Applied, Backend, BackendError, CommandOutput};
use crate::glooctl::{self, GlooKind, GlooStore, GlooctlError};
use crate::kubectl::{self, KubectlStore};
use crate::process::Process;
use crate::scenario::WaitCondition;

pub(crate) mod admin;
mod cluster;
mod forward;
pub(crate) mod workload;

pub use admin::AdminError;
use admin::{HttpProbe, ProxyStatus};
use cluster::Cluster;
use forward::Forwarder;
use workload::{EnvContext, Mesh, PodTemplate, ReadyPod};

/// How long a process may take to start and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Where the local backend finds its binaries and manifests, and where it works.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The workspace's binaries (`target/<profile>`): colorteller, colorgateway, tcpecho, echo.
    pub bin_dir: PathBuf,
    /// The gateway under test: what runs as the ingress and as every sidecar.
    pub gateway: GatewayCommand,
    /// The repository's `manifests/` folder; apply and delete paths are relative to it.
    pub manifests_dir: PathBuf,
    /// Where the cluster folder and logs go; default a temporary directory removed on drop
    /// (see [`LocalBackend::keep_work_dir`]).
    pub work_dir: Option<PathBuf>,
    /// Seeds the proxies' random choices (ingress: `seed`, sidecars: `seed + 1`, `seed + 2`, ...).
    pub seed: u64,
    /// Starts every pod with the request echo on (`COLORMESH_ECHO_REQUEST=1` and
    /// `COLORMESH_SERVED_BY=<namespace>/<deployment>`, see `service_kit::RequestEcho`): each
    /// reply then says what the workload saw and who served it. Status and body are unchanged.
    /// Only `cargo xtask equivalence` asks for it.
    pub echo_requests: bool,
}

/// How to start the gateway under test, in either role.
///
/// The backend runs `<program> <role> [role args] --config-dir D --listen 127.0.0.1:0 --admin
/// 127.0.0.1:0 --seed N [extra_args]`. Any program that accepts that command line, announces its
/// `admin` and data-plane listeners the way service-kit does (`colormesh::listening` events) and
/// serves gateway-proxy's `/ready` and `/status` on the admin listener can be put under test:
/// gateway-proxy itself, `envoy-control` driving a real Envoy, or a test's faulty gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCommand {
    /// The executable; a bare file name is looked up in [`LocalConfig::bin_dir`].
    pub program: PathBuf,
    /// Appended after the standard arguments (e.g. `--envoy-bin PATH`).
    pub extra_args: Vec<String>,
}

impl GatewayCommand {
    /// The workspace's own gateway-proxy, from the bin folder.
    pub fn builtin() -> Self {
        Self {
            program: PathBuf::from("gateway-proxy"),
            extra_args: Vec::new(),
        }
    }

    /// A specific executable with no extra arguments (e.g. another build of gateway-proxy).
    pub fn program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            extra_args: Vec::new(),
        }
    }

    /// The executable to run: `program` itself when it has a folder, else `<bin_dir>/<program>`.
    pub fn resolve(&self, bin_dir: &Path) -> PathBuf {
        if self.program.components().count() > 1 {
            self.program.clone()
        } else {
            bin_dir.join(&self.program)
        }
    }
}

impl LocalConfig {
    /// The folder of the running executable's profile: `target/<profile>` for both a binary
    /// (`target/<profile>/xtask`) and a test (`target/<profile>/deps/<test>`).
    pub fn bin_dir_of_current_exe() -> Result<PathBuf, BackendError> {
        let exe = std::env::current_exe().map_err(|source| BackendError::Io {
            context: "cannot find the running executable".into(),
            source,
        })?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Ok(if dir.file_name().is_some_and(|n| n == "deps") {
            dir.parent().unwrap_or(dir)
        } else {
            dir
        }
        .to_owned())
    }
}

enum WorkDir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl std::fmt::Debug for WorkDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Temporary(dir) => dir.path(),
            WorkDir::Kept(path) => path,
        }
    }
}

/// A gateway-proxy process (the ingress or a sidecar).
#[derive(Debug)]
struct Proxy {
    process: Process,
    listen: SocketAddr,
    admin: SocketAddr,
    role: ProxyRole,
}

/// Which role a proxy plays, for what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProxyRole {
    /// Gloo's gateway-proxy and the Gateway API gateway.
    Ingress,
    /// An App Mesh sidecar (`--node`).
    AppMeshSidecar,
    /// A GAMMA mesh sidecar in this namespace.
    MeshSidecar { namespace: String },
}

/// One pod: the app process and, in a meshed namespace, its sidecar.
#[derive(Debug)]
struct Pod {
    name: String,
    labels: BTreeMap<String, String>,
    app: Process,
    addr: SocketAddr,
    sidecar: Option<Proxy>,
}

#[derive(Debug)]
struct DeploymentState {
    template: PodTemplate,
    pods: Vec<Pod>,
    next_index: u32,
}

/// Objects one apply wrote: (key, resource version, deleted).
type Changes = Vec<(ResourceKey, u64, bool)>;

/// The local backend. Start it with [`LocalBackend::start`].
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    work: WorkDir,
    logs: PathBuf,
    cluster: Cluster,
    probe: HttpProbe,
    ingress: Option<Proxy>,
    deployments: BTreeMap<ResourceKey, DeploymentState>,
    /// (namespace, service, port) -> the forwarder playing that Service port's ClusterIP.
    forwarders: BTreeMap<(String, String, i32), Forwarder>,
    /// What each apply or delete changed, by the revision it returned.
    changes: BTreeMap<u64, Changes>,
    next_sidecar_seed: u64,
    shut_down: bool,
    /// The X-Ray daemon stand-in: every pod gets `AWS_XRAY_DAEMON_ADDRESS` pointing at it, and
    /// the builtin ingress traces (`--xray-daemon`).
    xray: crate::xray::Collector,
}

impl LocalBackend {
    /// Prepares the work folder and starts the ingress proxy (Gloo is installed).
    pub async fn start(config: LocalConfig) -> Result<Self, BackendError> {
        let gateway = config.gateway.resolve(&config.bin_dir);
        require_binary(&gateway)?;
        let work = match &config.work_dir {
            Some(dir) => WorkDir::Kept(dir.clone()),
            None => {
                WorkDir::Temporary(tempfile::TempDir::with_prefix("colormesh-local-").map_err(
                    |source| BackendError::Io {
                        context: "cannot create a work directory".into(),
                        source,
                    },
                )?)
            }
        };
        let logs = work.path().join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| BackendError::Io {
            context: format!("cannot create {}", logs.display()),
            source,
        })?;
        let cluster = Cluster::new(work.path().join("cluster"))?;
        // Only the workspace's gateway-proxy is known to trace; other gateways under test (Envoy
        // through envoy-control, the mutants) pass the trace header through, and the trace check
        // then starts at the colorgateway.
        let ingress_traced = config.gateway.program == std::path::Path::new("gateway-proxy");
        let xray = crate::xray::Collector::start(ingress_traced)
            .await
            .map_err(|source| BackendError::Io {
                context: "cannot start the X-Ray daemon stand-in".into(),
                source: match source {
                    crate::xray::CollectorError::Bind(io) => io,
                },
            })?;
        let mut backend = Self {
            xray,
            next_sidecar_seed: config.seed.wrapping_add(1),
            config,
            work,
            logs,
            cluster,
            probe: HttpProbe::new(),
            ingress: None,
            deployments: BTreeMap::new(),
            forwarders: BTreeMap::new(),
            changes: BTreeMap::new(),
            shut_down: false,
        };
        let mut args = vec!["ingress".to_owned()];
        if backend.xray.ingress_traced {
            args.extend([
                "--xray-daemon".to_owned(),
                backend.xray.addr().to_string(),
                "--xray-segment-name".to_owned(),
                crate::xray::INGRESS_SEGMENT.to_owned(),
                // Like an Envoy whose sampling rule keeps every request: the walkthrough's traces
                // are all judged.
                "--xray-sampling-rate".to_owned(),
                "1".to_owned(),
            ]);
        }
        let seed = backend.config.seed;
        let ingress = backend
            .start_proxy("gateway-proxy", ProxyRole::Ingress, args, seed)
            .await
            .map_err(|e| backend.with_logs(e))?;
        tracing::info!(listen = %ingress.listen, admin = %ingress.admin, work = %backend.work.path().display(), "local backend started");
        backend.ingress = Some(ingress);
        Ok(backend)
    }

    /// The work folder (cluster folder and logs).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// Keeps the work folder after the backend is gone (for looking at logs after a failure).
    pub fn keep_work_dir(&mut self) -> &Path {
        if let WorkDir::Temporary(_) = self.work {
            let kept = match std::mem::replace(&mut self.work, WorkDir::Kept(PathBuf::new())) {
                WorkDir::Temporary(dir) => dir.keep(),
                WorkDir::Kept(path) => path,
            };
            self.work = WorkDir::Kept(kept);
        }
        self.work.path()
    }

    /// The process ids of every child running now (ingress, sidecars, apps).
    pub fn child_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.ingress.iter().map(|p| p.process.pid()).collect();
        for state in self.deployments.values() {
            for pod in &state.pods {
                pids.push(pod.app.pid());
                pids.extend(pod.sidecar.iter().map(|s| s.process.pid()));
            }
        }
        pids
    }

    /// Every running pod: (namespace, deployment, pod name, the app's address). The equivalence
    /// run uses it to reach pods directly (the colorteller's `/setFlake`).
    pub fn pods(&self) -> Vec<(String, String, String, SocketAddr)> {
        self.deployments
            .iter()
            .flat_map(|(key, state)| {
                state.pods.iter().map(move |pod| {
                    (
                        key.namespace.clone().unwrap_or_else(|| "default".into()),
                        key.name.clone(),
                        pod.name.clone(),
                        pod.addr,
                    )
                })
            })
            .collect()
    }

    /// The ingress's `/status` document as JSON text (for reports and debugging).
    pub async fn ingress_status(&self) -> Result<String, BackendError> {
        let admin = self.ingress()?.admin;
        let (_, body) = self.probe.get(admin, "/status").await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn ingress(&self) -> Result<&Proxy, BackendError> {
        self.ingress
            .as_ref()
            .ok_or(BackendError::ShutDown { backend: "local" })
    }

    /// Points a failure at the processes' logs.
    fn with_logs(&self, error: BackendError) -> BackendError {
        let logs = format!("logs in {}", self.logs.display());
        match error {
            BackendError::Timeout {
                condition,
                timeout,
                detail,
            } => BackendError::Timeout {
                condition,
                timeout,
                detail: Some(detail.map_or(logs.clone(), |d| format!("{d} ({logs})"))),
            },
            BackendError::Io { context, source } => BackendError::Io {
                context: format!("{context} ({logs})"),
                source,
            },
            // What the scenario asked for is wrong, not a process: the logs do not help.
            error @ (BackendError::Unsupported(_)
            | BackendError::Manifest { .. }
            | BackendError::UnwaitableKind { .. }
            | BackendError::MissingBinary { .. }
            | BackendError::WithLogs { .. }) => error,
            error => BackendError::WithLogs {
                source: Box::new(error),
                logs: self.logs.clone(),
            },
        }
    }

    async fn start_proxy(
        &mut self,
        name: &str,
        role: ProxyRole,
        role_args: Vec<String>,
        seed: u64,
    ) -> Result<Proxy, BackendError> {
        let gateway = self.config.gateway.resolve(&self.config.bin_dir);
        let mut args = role_args;
        args.extend([
            "--config-dir".to_owned(),
            self.cluster.dir().display().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--admin".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--seed".to_owned(),
            seed.to_string(),
        ]);
        args.extend(self.config.gateway.extra_args.iter().cloned());
        let env = [("LOG_FORMAT".to_owned(), "json".to_owned())];
        let mut process = Process::spawn(name, &gateway, &args, &env, &self.logs)?;
        let listeners = process
            .wait_listening(&["admin", "*"], START_TIMEOUT)
            .await?;
        let admin = listeners["admin"];
        let listen = listeners
            .iter()
            .find(|(k, _)| *k != "admin")
            .map(|(_, a)| *a)
            .unwrap_or(admin);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answer = self.probe.get(admin, "/ready").await;
            if matches!(answer, Ok((200, _))) {
                break;
            }
            if !process.is_running() {
                return Err(process.failure("exited before it was ready").into());
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout {
                    condition: format!("{name} to be ready"),
                    timeout: START_TIMEOUT,
                    detail: Some(format!(
                        "last /ready answer: {}; log: {}",
                        match &answer {
                            Ok((status, body)) => format!("{status} {body:?}"),
                            Err(error) => error.to_string(),
                        },
                        process.log().display()
                    )),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(Proxy {
            process,
            listen,
            admin,
            role,
        })
    }

    fn load(&self, paths: &[PathBuf]) -> Result<Vec<Loaded>, BackendError> {
        let resources = super::load_manifests(&self.config.manifests_dir, paths)?;
        for loaded in &resources {
            workload::check_supported(loaded)?;
            if let Resource::Deployment(deployment) = &loaded.resource {
                let template = workload::pod_template(loaded, deployment)?;
                require_binary(&self.config.bin_dir.join(template.binary))?;
            }
        }
        Ok(resources)
    }

    /// Brings processes, forwarders, EndpointSlices and discovered Upstreams in line with the
    /// stored objects; records what it wrote in `changes`.
    async fn reconcile(&mut self, changes: &mut Changes) -> Result<(), BackendError> {
        self.reconcile_services().await?;
        self.reconcile_deployments().await?;
        self.reconcile_endpoints(changes)?;
        self.reconcile_discovery(changes)
    }

    async fn reconcile_services(&mut self) -> Result<(), BackendError> {
        let mut wanted = BTreeSet::new();
        for (_, service) in self.cluster.resources().services() {
            let namespace = service
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = service.metadata.name.clone().unwrap_or_default();
            for port in service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
            {
                wanted.insert((namespace.clone(), name.clone(), port.port));
            }
        }
        self.forwarders.retain(|key, _| wanted.contains(key));
        for key in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.forwarders.entry(key) {
                let (namespace, service, port) = slot.key().clone();
                let forwarder = Forwarder::start().await.map_err(|source| BackendError::Io {
                    context: format!(
                        "cannot open a local ClusterIP for Service {namespace}/{service} port {port}"
                    ),
                    source,
                })?;
                slot.insert(forwarder);
            }
        }
        Ok(())
    }

    async fn reconcile_deployments(&mut self) -> Result<(), BackendError> {
        let mut wanted: BTreeMap<ResourceKey, (Loaded, PodTemplate)> = BTreeMap::new();
        for (loaded, deployment) in self.cluster.resources().deployments() {
            wanted.insert(
                loaded.resource.key(),
                (loaded.clone(), workload::pod_template(loaded, deployment)?),
            );
        }
        let gone: Vec<ResourceKey> = self
            .deployments
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(mut state) = self.deployments.remove(&key) {
                stop_pods(&mut state.pods).await;
            }
        }
        for (key, (_, template)) in wanted {
            let namespace = key.namespace.clone().unwrap_or_else(|| "default".into());
            let replicas = template.replicas as usize;
            let state = self
                .deployments
                .entry(key.clone())
                .or_insert_with(|| DeploymentState {
                    template: template.clone(),
                    pods: Vec::new(),
                    next_index: 0,
                });
            if state.template != template {
                // Rolling replacement: the new pods are ready before the old ones stop.
                state.template = template.clone();
                let old = std::mem::take(&mut state.pods);
                let mut fresh = Vec::new();
                for _ in 0..replicas {
                    fresh.push(self.start_pod(&key, &namespace, &template).await?);
                }
                let state =
                    self.deployments
                        .get_mut(&key)
                        .ok_or_else(|| BackendError::Untracked {
                            resource: key.to_string(),
                        })?;
                state.pods = fresh;
                let mut old = old;
                stop_pods(&mut old).await;
                continue;
            }
            while self
                .deployments
                .get(&key)
                .is_some_and(|s| s.pods.len() < replicas)
            {
                let pod = self.start_pod(&key, &namespace, &template).await?;
                if let Some(state) = self.deployments.get_mut(&key) {
                    state.pods.push(pod);
                }
            }
            if let Some(state) = self.deployments.get_mut(&key)
                && state.pods.len() > replicas
            {
                let mut extra = state.pods.split_off(replicas);
                stop_pods(&mut extra).await;
            }
        }
        Ok(())
    }

    async fn start_pod(
        &mut self,
        key: &ResourceKey,
        namespace: &str,
        template: &PodTemplate,
    ) -> Result<Pod, BackendError> {
        let index = {
            let state = self
                .deployments
                .get_mut(key)
                .ok_or_else(|| BackendError::Untracked {
                    resource: key.to_string(),
                })?;
            state.next_index += 1;
            state.next_index - 1
        };
        let name = format!("{}-{index}", key.name);
        let resources = self.cluster.resources();
        let node = workload::is_meshed(resources, namespace)
            .then(|| workload::virtual_node_for(resources, namespace, &template.labels).cloned())
            .flatten();
        let (role, args) = match &node {
            Some(node) => (
                Some(ProxyRole::AppMeshSidecar),
                vec![
                    "sidecar".to_owned(),
                    "--node".to_owned(),
                    node.metadata.name.clone().unwrap_or_default(),
                    "--namespace".to_owned(),
                    namespace.to_owned(),
                ],
            ),
            None if workload::is_gamma_meshed(resources, namespace) => (
                Some(ProxyRole::MeshSidecar {
                    namespace: namespace.to_owned(),
                }),
                vec![
                    "sidecar".to_owned(),
                    "--namespace".to_owned(),
                    namespace.to_owned(),
                ],
            ),
            None => (None, Vec::new()),
        };
        let sidecar = match role {
            Some(role) => {
                let seed = self.next_sidecar_seed;
                self.next_sidecar_seed = seed.wrapping_add(1);
                Some(
                    self.start_proxy(&format!("{namespace}.{name}-sidecar"), role, args, seed)
                        .await?,
                )
            }
            None => None,
        };
        let cluster_ips: BTreeMap<(String, String, i32), SocketAddr> = self
            .forwarders
            .iter()
            .map(|(k, f)| (k.clone(), f.addr()))
            .collect();
        let mesh = match (&node, &sidecar) {
            (Some(node), Some(sidecar)) => Some(Mesh::AppMesh(node, sidecar.listen)),
            (None, Some(sidecar)) => Some(Mesh::Gamma(sidecar.listen)),
            _ => None,
        };
        let context = EnvContext {
            resources: self.cluster.resources(),
            cluster_ips: &cluster_ips,
            namespace,
            pod_name: &name,
            mesh,
        };
        let mut env = workload::pod_env(template, &context);
        env.push((
            service_kit::xray::DAEMON_ADDRESS_ENV.into(),
            self.xray.addr().to_string(),
        ));
        // Every judged request must be traced, also when the gateway in front starts no trace
        // (Envoy, the mutants): the services then decide, and the SDK's rule samples only 5%.
        env.push((service_kit::xray::SAMPLING_RATE_ENV.into(), "1".into()));
        if self.config.echo_requests {
            env.push(("COLORMESH_ECHO_REQUEST".into(), "1".into()));
            env.push((
                "COLORMESH_SERVED_BY".into(),
                format!("{namespace}/{}", key.name),
            ));
        }
        let binary = self.config.bin_dir.join(template.binary);
        // Pod names repeat across namespaces; the process (and its log file) carries both.
        let process_name = format!("{namespace}.{name}");
        let mut app = Process::spawn(&process_name, &binary, &[], &env, &self.logs)?;
        let listeners = app.wait_listening(&["*"], START_TIMEOUT).await?;
        let (listener, addr) = listeners
            .into_iter()
            .find(|(k, _)| k != "admin")
            .ok_or_else(|| app.failure("announced no listener"))?;
        if listener == "http" {
            // One answered request, whatever its status, shows the app serves HTTP.
            let deadline = Instant::now() + START_TIMEOUT;
            while let Err(error) = self.probe.get(addr, "/ping").await {
                if !app.is_running() {
                    return Err(app.failure("exited before answering /ping").into());
                }
                if Instant::now() >= deadline {
                    return Err(BackendError::Timeout {
                        condition: format!("{name} to answer GET /ping"),
                        timeout: START_TIMEOUT,
                        detail: Some(error.to_string()),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        tracing::info!(pod = name, %addr, meshed = sidecar.is_some(), "pod ready");
        Ok(Pod {
            name,
            labels: template.labels.clone(),
            app,
            addr,
            sidecar,
        })
    }

    /// Points each ClusterIP at the ready pods and writes one EndpointSlice per pod and Service.
    fn reconcile_endpoints(&mut self, changes: &mut Changes) -> Result<(), BackendError> {
        let mut slices = Vec::new();
        for ((namespace, service_name, port), forwarder) in &self.forwarders {
            let key = ResourceKey::new(ResourceKind::Service, Some(namespace), service_name);
            let Some(Resource::Service(service)) = self.cluster.get(&key).map(|l| &l.resource)
            else {
                continue;
            };
            let mut endpoints = Vec::new();
            for (deployment, state) in &self.deployments {
                if deployment.namespace.as_deref() != Some(namespace.as_str()) {
                    continue;
                }
                for pod in state
                    .pods
                    .iter()
                    .filter(|p| workload::service_selects(service, &p.labels))
                {
                    endpoints.push(pod.addr);
                    // One slice per pod carries every Service port; write it for the first port only.
                    let first_port = service
                        .spec
                        .as_ref()
                        .and_then(|s| s.ports.as_ref())
                        .and_then(|p| p.first())
                        .map(|p| p.port);
                    if first_port == Some(*port) {
                        slices.push(workload::endpoint_slice(
                            service,
                            &ReadyPod {
                                name: pod.name.clone(),
                                port: pod.addr.port(),
                            },
                        ));
                    }
                }
            }
            forwarder.set_endpoints(endpoints);
        }
        let slices = slices
            .into_iter()
            .map(|slice| Resource::EndpointSlice(Box::new(slice)))
            .collect();
        self.sync_generated(slices, workload::is_managed_endpoint_slice, changes)
    }

    /// Writes the Upstreams Gloo's discovery derives from Services and pod label sets.
    fn reconcile_discovery(&mut self, changes: &mut Changes) -> Result<(), BackendError> {
        let upstreams = workload::discovered_upstreams(self.cluster.resources())
            .into_iter()
            .map(|upstream| Resource::Upstream(Box::new(upstream)))
            .collect();
        self.sync_generated(
            upstreams,
            |loaded| workload::is_discovered(&loaded.resource),
            changes,
        )
    }

    /// Makes the generated objects of one kind exactly `wanted`: applies each of them and
    /// deletes the stored objects `ours` claims that are no longer wanted; records what changed.
    fn sync_generated(
        &mut self,
        wanted: Vec<Resource>,
        ours: impl Fn(&Loaded) -> bool,
        changes: &mut Changes,
    ) -> Result<(), BackendError> {
        let mut keys = BTreeSet::new();
        for resource in wanted {
            let loaded = generated(resource);
            let key = loaded.resource.key();
            keys.insert(key.clone());
            if let Some(version) = self.cluster.apply(loaded)? {
                changes.push((key, version, false));
            }
        }
        let stale: Vec<ResourceKey> = self
            .cluster
            .resources()
            .iter()
            .filter(|(key, loaded)| ours(loaded) && !keys.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(version) = self.cluster.delete(&key)? {
                changes.push((key, version, true));
            }
        }
        Ok(())
    }

    fn proxies(&self) -> Vec<(&str, &ProxyRole, SocketAddr)> {
        let mut proxies: Vec<(&str, &ProxyRole, SocketAddr)> = self
            .ingress
            .iter()
            .map(|p| (p.process.name(), &p.role, p.admin))
            .collect();
        for state in self.deployments.values() {
            for pod in &state.pods {
                proxies.extend(
                    pod.sidecar
                        .iter()
                        .map(|s| (s.process.name(), &s.role, s.admin)),
                );
            }
        }
        proxies
    }

    async fn ingress_statuses(&self) -> Result<ProxyStatus, BackendError> {
        Ok(self.probe.status(self.ingress()?.admin).await?)
    }

    /// Whether a condition holds now; `Err` carries what was seen instead.
    async fn check(
        &mut self,
        condition: &WaitCondition,
    ) -> Result<Result<(), NotYet>, BackendError> {
        match condition {
            WaitCondition::Rollout { namespace } => {
                let mut missing = Vec::new();
                let keys: Vec<ResourceKey> = self
                    .cluster
                    .resources()
                    .deployments()
                    .filter(|(l, _)| {
                        l.resource.key().namespace.as_deref() == Some(namespace.as_str())
                    })
                    .map(|(l, _)| l.resource.key())
                    .collect();
                for key in keys {
                    let Some(state) = self.deployments.get_mut(&key) else {
                        missing.push(format!("{key}: no pods"));
                        continue;
                    };
                    for pod in &mut state.pods {
                        if !pod.app.is_running() {
                            return Err(pod.app.failure("is not running").into());
                        }
                    }
                    if state.pods.len() != state.template.replicas as usize {
                        missing.push(format!(
                            "{key}: {}/{} ready",
                            state.pods.len(),
                            state.template.replicas
                        ));
                    }
                }
                Ok(if missing.is_empty() {
                    Ok(())
                } else {
                    Err(NotYet::Rollout(missing))
                })
            }
            WaitCondition::Status {
                kind,
                namespace,
                name,
                state,
                conditions,
            } => {
                let resource_kind = match kind.as_str() {
                    "VirtualService" => ResourceKind::GlooVirtualService,
                    "Upstream" => ResourceKind::Upstream,
                    "UpstreamGroup" => ResourceKind::UpstreamGroup,
                    "GatewayClass" => ResourceKind::GatewayClass,
                    "Gateway" => ResourceKind::Gateway,
                    "HTTPRoute" => ResourceKind::HttpRoute,
                    other => {
                        return Err(BackendError::UnwaitableKind {
                            kind: other.to_owned(),
                            reporter: "the local backend",
                            reported: "VirtualService, Upstream, UpstreamGroup (Gloo), \
                                       GatewayClass, Gateway and HTTPRoute (Gateway API)",
                        });
                    }
                };
                let key = ResourceKey::new(resource_kind, Some(namespace), name);
                Ok(match self.reported_state(&key).await {
                    Ok((seen, _, gateway_api)) if seen.to_string() == *state => {
                        let missing = admin::condition_mismatches(gateway_api.as_ref(), conditions);
                        if missing.is_empty() {
                            Ok(())
                        } else {
                            Err(NotYet::State {
                                seen,
                                reasons: missing,
                            })
                        }
                    }
                    Ok((seen, reasons, _)) => Err(NotYet::State { seen, reasons }),
                    Err(error) => Err(NotYet::Unreported(error)),
                })
            }
            WaitCondition::Aged {
                kind,
                namespace,
                name,
            } => {
                // The Gateway API kinds, read as the kube backend reads them.
                let resource_kind = ResourceKind::from_type("gateway.networking.k8s.io/v1", kind);
                if matches!(resource_kind, ResourceKind::Other { .. }) {
                    return Err(BackendError::UnwaitableKind {
                        kind: kind.clone(),
                        reporter: "the local backend's creation times",
                        reported: "GatewayClass, Gateway, HTTPRoute and ReferenceGrant",
                    });
                }
                let key = ResourceKey::new(resource_kind, Some(namespace), name);
                let created = self
                    .cluster
                    .get(&key)
                    .and_then(|loaded| loaded.resource.metadata().creation_timestamp.clone());
                Ok(match created {
                    None => Err(NotYet::NotCreated),
                    Some(created) => {
                        let now = model::k8s::openapi::jiff::Timestamp::now();
                        if created.0.as_second() < now.as_second() {
                            Ok(())
                        } else {
                            Err(NotYet::SameSecond)
                        }
                    }
                })
            }
            WaitCondition::Upstream { namespace, name } => {
                let key = ResourceKey::new(ResourceKind::Upstream, Some(namespace), name);
                if self.cluster.get(&key).is_none() {
                    return Ok(Err(NotYet::NotDiscovered));
                }
                Ok(match self.reported_state(&key).await {
                    Ok((State::Accepted, _, _)) => Ok(()),
                    Ok((seen, _, _)) => Err(NotYet::Discovered { seen }),
                    Err(error) => Err(NotYet::Unreported(error)),
                })
            }
        }
    }

    /// The state the reporting proxy gives the current version of a resource (`Pending` until
    /// it reports it): the ingress's, or for an HTTPRoute attached only to Services, the first
    /// mesh sidecar's of the route's namespace.
    async fn reported_state(
        &self,
        key: &ResourceKey,
    ) -> Result<(State, Vec<String>, Option<serde_json::Value>), BackendError> {
        let mesh_route = self.cluster.get(key).is_some_and(|loaded| {
            matches!(&loaded.resource, Resource::HttpRoute(route)
                if !route.spec.parent_refs.is_empty()
                    && route.spec.parent_refs.iter().all(|p| p.is_service()))
        });
        let status = if mesh_route {
            let sidecar = self
                .proxies()
                .into_iter()
                .find(|(_, role, _)| {
                    matches!(role, ProxyRole::MeshSidecar { namespace }
                        if key.namespace.as_deref() == Some(namespace.as_str()))
                })
                .map(|(_, _, admin)| admin);
            let Some(admin) = sidecar else {
                return Ok((
                    State::Pending,
                    vec!["no mesh sidecar runs in its namespace yet".into()],
                    None,
                ));
            };
            self.probe.status(admin).await?
        } else {
            self.ingress_statuses().await?
        };
        let current = self.cluster.version_of(key);
        let Some(entry) = status
            .resources
            .iter()
            .find(|e| e.resource == key.to_string())
        else {
            return Ok((
                State::Pending,
                vec!["not reported by the ingress yet".into()],
                None,
            ));
        };
        match (entry.version(), current) {
            (Some(seen), Some(current)) if seen < current => Ok((
                State::Pending,
                vec![format!(
                    "ingress reports resourceVersion {seen}, current is {current}"
                )],
                None,
            )),
            _ => Ok((
                entry.state(),
                entry.reasons.clone(),
                entry.gateway_api.clone(),
            )),
        }
    }

    /// Whether every proxy serves the objects in `changes`; `Err` says which do not yet.
    /// Makes every proxy load its config folder as it is now (`POST /reload` answers after the
    /// swap). Statuses only cover routing resources, so the EndpointSlices an apply writes once
    /// its pods are ready can reach a proxy one debounced reload after the routing change that
    /// `config_live` saw; without this barrier, traffic could start in that gap (seen on a loaded
    /// CI machine: a sidecar without the new teller endpoints answered 503).
    async fn reload_barrier(&self) -> Result<(), BackendError> {
        for (name, _, admin) in self.proxies() {
            self.probe
                .reload(admin)
                .await
                .map_err(|source| BackendError::Proxy {
                    proxy: name.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    async fn config_live(&self, changes: &Changes) -> Result<(), NotYet> {
        let mut behind = Vec::new();
        for (name, role, admin) in self.proxies() {
            let status = match self.probe.status(admin).await {
                Ok(status) => status,
                Err(error) => {
                    behind.push(format!("{name}: {error}"));
                    continue;
                }
            };
            let entries = status.by_resource();
            for (key, version, deleted) in changes {
                if !reports_kind(&key.kind, role) {
                    continue;
                }
                let must_report = !*deleted
                    && self
                        .cluster
                        .get(key)
                        .is_some_and(|loaded| must_report(self.cluster.resources(), loaded, role));
                behind.extend(admin::lag(
                    &entries,
                    name,
                    key,
                    *version,
                    *deleted,
                    must_report,
                ));
            }
        }
        if behind.is_empty() {
            Ok(())
        } else {
            Err(NotYet::Behind(behind))
        }
    }
}

/// Why a wait condition or a change does not hold yet; the last one seen becomes a timeout's
/// detail.
#[derive(Debug, thiserror::Error)]
enum NotYet {
    /// One line per deployment short of its replicas.
    #[error("{}", .0.join(", "))]
    Rollout(Vec<String>),
    /// The ingress reports another state (with its reasons).
    #[error("{seen}{}", if .reasons.is_empty() { String::new() } else { format!(": {}", .reasons.join("; ")) })]
    State { seen: State, reasons: Vec<String> },
    #[error("not discovered")]
    NotDiscovered,
    #[error("not created")]
    NotCreated,
    #[error("created in the current second")]
    SameSecond,
    #[error("discovered, {seen}")]
    Discovered { seen: State },
    /// The ingress's statuses could not be read.
    #[error("{0}")]
    Unreported(BackendError),
    /// One line per proxy that does not serve the change yet.
    #[error("{}", .0.join("; "))]
    Behind(Vec<String>),
}

/// The kinds each role reports statuses for: the ingress Gloo's and the Gateway API's, App Mesh
/// sidecars App Mesh's, mesh sidecars HTTPRoutes.
fn reports_kind(kind: &ResourceKind, role: &ProxyRole) -> bool {
    match role {
        ProxyRole::Ingress => super::reported_by_ingress(kind),
        ProxyRole::AppMeshSidecar => matches!(
            kind,
            ResourceKind::VirtualNode
                | ResourceKind::AppMeshVirtualService
                | ResourceKind::VirtualRouter
                | ResourceKind::Mesh
        ),
        ProxyRole::MeshSidecar { .. } => matches!(kind, ResourceKind::HttpRoute),
    }
}

/// Whether a proxy in `role` must list `loaded` in `/status` before it serves the change (else it
/// only must not list an older version): the ingress every Gloo resource, colormesh's
/// GatewayClasses, their Gateways and the HTTPRoutes attached to one of those; a mesh sidecar the
/// HTTPRoutes of its namespace whose parent is a Service.
fn must_report(resources: &model::ResourceSet, loaded: &Loaded, role: &ProxyRole) -> bool {
    use model::gateway_api::CONTROLLER_NAME;
    let ours = |class: &str| {
        resources.gateway_classes().any(|(_, c)| {
            c.metadata.name.as_deref() == Some(class) && c.spec.controller_name == CONTROLLER_NAME
        })
    };
    let our_gateway = |namespace: &str, name: &str| {
        resources.gateways().any(|(_, g)| {
            g.metadata.name.as_deref() == Some(name)
                && g.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && ours(&g.spec.gateway_class_name)
        })
    };
    let namespace = loaded.resource.key().namespace.unwrap_or_default();
    match (role, &loaded.resource) {
        (ProxyRole::Ingress, Resource::GatewayClass(class)) => {
            class.spec.controller_name == CONTROLLER_NAME
        }
        (ProxyRole::Ingress, Resource::Gateway(gateway)) => ours(&gateway.spec.gateway_class_name),
        (ProxyRole::Ingress, Resource::HttpRoute(route)) => route
            .spec
            .parent_refs
            .iter()
            .any(|p| p.is_gateway() && our_gateway(p.namespace_or(&namespace), &p.name)),
        (ProxyRole::Ingress, resource) => GlooKind::of(&resource.kind()).is_some(),
        // Every mesh sidecar reads every GAMMA route (a producer route in another namespace
        // routes its calls too) and reports each: a sidecar that has not reported the new
        // version is behind, whichever namespace it runs in.
        (ProxyRole::MeshSidecar { .. }, Resource::HttpRoute(route)) => {
            route.spec.parent_refs.iter().any(|p| p.is_service())
        }
        _ => false,
    }
}

fn generated(resource: Resource) -> Loaded {
    Loaded {
        resource,
        origin: Origin {
            file: PathBuf::from("local-backend"),
            line: 1,
        },
        ignored_fields: Vec::new(),
    }
}

fn require_binary(path: &Path) -> Result<(), BackendError> {
    if path.is_file() {
        return Ok(());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Err(BackendError::MissingBinary { name, dir })
}

async fn stop_pods(pods: &mut Vec<Pod>) {
    let stops = pods.iter_mut().map(|pod| async move {
        pod.app.terminate(STOP_GRACE).await;
        if let Some(sidecar) = &mut pod.sidecar {
            sidecar.process.terminate(STOP_GRACE).await;
        }
    });
    futures_util::future::join_all(stops).await;
    pods.clear();
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn trace_collector(&self) -> Option<&crate::xray::Collector> {
        Some(&self.xray)
    }

    async fn apply(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        let loaded = self.load(paths)?;
        let mut changes = Changes::new();
        let mut changed = Vec::new();
        for item in loaded {
            let key = item.resource.key();
            if let Some(version) = self.cluster.apply(item)? {
                changed.push(key.to_string());
                changes.push((key, version, false));
            }
        }
        let reconciled = self.reconcile(&mut changes).await;
        let revision = self.cluster.revision();
        self.changes.entry(revision).or_default().extend(changes);
        reconciled.map_err(|e| self.with_logs(e))?;
        Ok(Applied { changed, revision })
    }

    async fn delete(&mut self, paths: &[PathBuf]) -> Result<Applied, BackendError> {
        let loaded = self.load(paths)?;
        let mut changes = Changes::new();
        let mut changed = Vec::new();
        for item in loaded {
            let key = item.resource.key();
            if let Some(version) = self.cluster.delete(&key)? {
                changed.push(key.to_string());
                changes.push((key, version, true));
            }
        }
        let reconciled = self.reconcile(&mut changes).await;
        let revision = self.cluster.revision();
        self.changes.entry(revision).or_default().extend(changes);
        reconciled.map_err(|e| self.with_logs(e))?;
        Ok(Applied { changed, revision })
    }

    async fn glooctl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        let statuses = self.ingress_statuses().await.unwrap_or_default();
        let proxy_url = self
            .ingress
            .as_ref()
            .map(|p| format!("http://{}", p.listen));
        let mut store = ClusterGlooStore {
            cluster: &mut self.cluster,
            statuses,
            proxy_url,
        };
        Ok(glooctl::run(args, &mut store))
    }

    async fn kubectl(&mut self, args: &[String]) -> Result<CommandOutput, BackendError> {
        // Statuses from every proxy that reports Gateway API objects: the ingress first, then the
        // mesh sidecars (GAMMA routes).
        let mut statuses = Vec::new();
        for (_, role, admin) in self.proxies() {
            if matches!(role, ProxyRole::AppMeshSidecar) {
                continue;
            }
            if let Ok(status) = self.probe.status(admin).await {
                statuses.push(status);
            }
        }
        let store = ClusterKubectlStore {
            cluster: &self.cluster,
            statuses,
            address: self.ingress.as_ref().map(|p| p.listen.ip().to_string()),
        };
        Ok(kubectl::run(args, &store))
    }

    async fn wait(
        &mut self,
        condition: &WaitCondition,
        timeout: Duration,
    ) -> Result<Duration, BackendError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.check(condition).await {
                Ok(Ok(())) => return Ok(started.elapsed()),
                Ok(Err(seen)) => seen,
                Err(error) => return Err(self.with_logs(error)),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(self.with_logs(BackendError::Timeout {
                    condition: condition.to_string(),
                    timeout,
                    detail: Some(format!("last seen: {last}")),
                }));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_config_live(
        &mut self,
        applied: &Applied,
        timeout: Duration,
    ) -> Result<Duration, BackendError> {
        let started = Instant::now();
        let changes = self
            .changes
            .get(&applied.revision)
            .cloned()
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.config_live(&changes).await {
                Ok(()) => {
                    let propagation = started.elapsed();
                    self.reload_barrier().await.map_err(|e| self.with_logs(e))?;
                    return Ok(propagation);
                }
                Err(behind) => behind,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(self.with_logs(BackendError::Timeout {
                    condition: format!("every proxy to serve revision {}", applied.revision),
                    timeout,
                    detail: Some(last.to_string()),
                }));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn gateway_generation(&mut self) -> Result<Option<u64>, BackendError> {
        let status = self
            .ingress_statuses()
            .await
            .map_err(|e| self.with_logs(e))?;
        Ok(Some(status.generation))
    }

    async fn proxy_url(&mut self) -> Result<url::Url, BackendError> {
        let listen = self.ingress()?.listen;
        let url = format!("http://{listen}");
        url::Url::parse(&url).map_err(|source| BackendError::ProxyUrl { url, source })
    }

    async fn shutdown(&mut self) -> Result<(), BackendError> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        let mut all: Vec<Pod> = Vec::new();
        for (_, mut state) in std::mem::take(&mut self.deployments) {
            all.append(&mut state.pods);
        }
        stop_pods(&mut all).await;
        if let Some(mut ingress) = self.ingress.take() {
            ingress.process.terminate(STOP_GRACE).await;
        }
        self.forwarders.clear();
        tracing::info!(work = %self.work.path().display(), "local backend stopped");
        Ok(())
    }
}

/// kubectl's view of the cluster: objects from the store, Gateway API statuses from the proxies.
struct ClusterKubectlStore<'a> {
    cluster: &'a Cluster,
    statuses: Vec<ProxyStatus>,
    /// The ingress's address, each served Gateway's `status.addresses`.
    address: Option<String>,
}

impl KubectlStore for ClusterKubectlStore<'_> {
    fn list(&self, kind: &ResourceKind, namespace: Option<&str>) -> Vec<Resource> {
        self.cluster
            .resources()
            .iter()
            .filter(|(key, _)| {
                key.kind == *kind
                    && (namespace.is_none()
                        || key.namespace.is_none()
                        || key.namespace.as_deref() == namespace)
            })
            .map(|(_, loaded)| loaded.resource.clone())
            .collect()
    }

    fn status(&self, key: &ResourceKey) -> Option<serde_json::Value> {
        let label = key.to_string();
        self.statuses
            .iter()
            .flat_map(|status| &status.resources)
            .find(|entry| entry.resource == label && entry.gateway_api.is_some())
            .and_then(|entry| entry.gateway_api.clone())
    }

    fn addresses(&self, key: &ResourceKey) -> Vec<String> {
        let programmed = self.status(key).is_some_and(|status| {
            status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Programmed" && c["status"] == "True")
        });
        match (&self.address, programmed) {
            (Some(address), true) => vec![address.clone()],
            _ => Vec::new(),
        }
    }

    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

/// glooctl's view of the cluster: Gloo objects from the store, states from the ingress.
struct ClusterGlooStore<'a> {
    cluster: &'a mut Cluster,
    statuses: ProxyStatus,
    proxy_url: Option<String>,
}

impl GlooStore for ClusterGlooStore<'_> {
    fn list(&self, kind: GlooKind, namespace: &str) -> Vec<Resource> {
        let mut found: Vec<Resource> = self
            .cluster
            .resources()
            .iter()
            .filter(|(key, _)| {
                key.kind == kind.resource_kind() && key.namespace.as_deref() == Some(namespace)
            })
            .map(|(_, loaded)| loaded.resource.clone())
            .collect();
        found.sort_by(|a, b| a.metadata().name.cmp(&b.metadata().name));
        found
    }

    fn get(&self, kind: GlooKind, namespace: &str, name: &str) -> Option<Resource> {
        self.cluster
            .get(&ResourceKey::new(
                kind.resource_kind(),
                Some(namespace),
                name,
            ))
            .map(|l| l.resource.clone())
    }

    fn apply(&mut self, resource: Resource) -> Result<(), GlooctlError> {
        let loaded = Loaded {
            resource,
            origin: Origin {
                file: PathBuf::from("glooctl"),
                line: 1,
            },
            ignored_fields: Vec::new(),
        };
        self.cluster.apply(loaded)?;
        Ok(())
    }

    fn delete(
        &mut self,
        kind: GlooKind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, GlooctlError> {
        let key = ResourceKey::new(kind.resource_kind(), Some(namespace), name);
        Ok(self.cluster.delete(&key)?.is_some())
    }

    fn status(&self, kind: GlooKind, namespace: &str, name: &str) -> State {
        let key = ResourceKey::new(kind.resource_kind(), Some(namespace), name);
        let label = key.to_string();
        let Some(entry) = self.statuses.resources.iter().find(|e| e.resource == label) else {
            return State::Pending;
        };
        match (entry.version(), self.cluster.version_of(&key)) {
            (Some(seen), Some(current)) if seen != current => State::Pending,
            _ => entry.state(),
        }
    }

    fn proxy_url(&self) -> Result<String, GlooctlError> {
        self.proxy_url.clone().ok_or(GlooctlError::ProxyNotRunning {
            detail: Some("the local backend was shut down"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_gateway_binary_names_itself_the_folder_and_the_fix() {
        let empty = tempfile::tempdir().expect("temp dir");
        let config = LocalConfig {
            bin_dir: empty.path().to_owned(),
            gateway: GatewayCommand::builtin(),
            manifests_dir: PathBuf::from("manifests"),
            work_dir: None,
            seed: 1,
            echo_requests: false,
        };
        let error = LocalBackend::start(config)
            .await
            .expect_err("no binaries")
            .to_string();
        assert!(error.contains("gateway-proxy"), "{error}");
        assert!(
            error.contains(&empty.path().display().to_string()),
            "{error}"
        );
        assert!(error.contains("cargo build --bins"), "{error}");
    }

    #[test]
    fn the_bin_dir_of_a_test_is_its_profile_folder() {
        let dir = LocalConfig::bin_dir_of_current_exe().expect("current exe");
        assert_ne!(dir.file_name().and_then(|n| n.to_str()), Some("deps"));
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }

    #[test]
    fn each_role_waits_for_the_kinds_it_reports() {
        let ingress = ProxyRole::Ingress;
        let sidecar = ProxyRole::AppMeshSidecar;
        let mesh = ProxyRole::MeshSidecar {
            namespace: "appmesh-demo".into(),
        };
        assert!(reports_kind(&ResourceKind::UpstreamGroup, &ingress));
        assert!(reports_kind(&ResourceKind::HttpRoute, &ingress));
        assert!(reports_kind(&ResourceKind::Gateway, &ingress));
        assert!(!reports_kind(&ResourceKind::VirtualNode, &ingress));
        assert!(reports_kind(&ResourceKind::VirtualRouter, &sidecar));
        assert!(!reports_kind(&ResourceKind::HttpRoute, &sidecar));
        assert!(reports_kind(&ResourceKind::HttpRoute, &mesh));
        assert!(!reports_kind(&ResourceKind::Gateway, &mesh));
        assert!(!reports_kind(&ResourceKind::EndpointSlice, &sidecar));
        assert!(!reports_kind(&ResourceKind::EndpointSlice, &ingress));
    }

    #[test]
    fn gateway_api_objects_must_be_reported_by_the_proxy_that_serves_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/gateway-api");
        let parsed = model::load_paths(&[root.join("colorapp"), root.join("gateway")])
            .expect("manifests load");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let set = model::ResourceSet::from_loaded(parsed.resources);
        let find = |kind: ResourceKind, namespace: Option<&str>, name: &str| {
            set.get(&ResourceKey::new(kind, namespace, name))
                .expect("in the manifests")
                .clone()
        };
        let ingress = ProxyRole::Ingress;
        let mesh = ProxyRole::MeshSidecar {
            namespace: "appmesh-demo".into(),
        };
        let elsewhere = ProxyRole::MeshSidecar {
            namespace: "default".into(),
        };
        let class = find(ResourceKind::GatewayClass, None, "colormesh");
        let gateway = find(
            ResourceKind::Gateway,
            Some("colormesh-gateway"),
            "colorapp-gateway",
        );
        let ingress_route = find(
            ResourceKind::HttpRoute,
            Some("appmesh-demo"),
            "colorgateway",
        );
        let mesh_route = find(
            ResourceKind::HttpRoute,
            Some("appmesh-demo"),
            "colorteller-route",
        );
        assert!(must_report(&set, &class, &ingress));
        assert!(must_report(&set, &gateway, &ingress));
        assert!(must_report(&set, &ingress_route, &ingress));
        assert!(!must_report(&set, &mesh_route, &ingress));
        assert!(must_report(&set, &mesh_route, &mesh));
        // A sidecar in another namespace reads the producer route too, so it must report it
        // before traffic may count on it (a consumer namespace's caller is routed by it).
        assert!(must_report(&set, &mesh_route, &elsewhere));
        assert!(!must_report(&set, &ingress_route, &mesh));
        // Another controller's class, and what hangs off it, is not ours to report.
        let mut foreign = set.clone();
        let mut other = class.clone();
        if let Resource::GatewayClass(c) = &mut other.resource {
            c.spec.controller_name = "example.com/other".into();
        }
        foreign.insert(other.clone());
        assert!(!must_report(&foreign, &other, &ingress));
        assert!(!must_report(&foreign, &gateway, &ingress));
        assert!(!must_report(&foreign, &ingress_route, &ingress));
    }
}

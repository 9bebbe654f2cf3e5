//! colormesh's node agent: a kubelet stand-in that runs the Pods the real scheduler binds to its
//! Node as local processes.
//!
//! - **Identity.** It talks to the API server as `system:node:<node>` in `system:nodes`, so the
//!   Node authorizer and the NodeRestriction admission plugin judge it as they judge a kubelet:
//!   it may register only its own Node, read only what its Pods use, and write only their status.
//! - **Node.** It registers the Node (capacity 8 CPUs, 16 GiB, 110 pods; `Ready`), renews its
//!   Lease in `kube-node-lease` every 10 s and reports `Ready` with each renewal, so the node
//!   lifecycle controller keeps it schedulable.
//! - **Pods.** Each Pod bound to the Node gets its own address from the run's pod network (a
//!   `/24` routed to the loopback device, [`super::PodNetwork`]; `.2` up), so every Pod listens
//!   on its containerPorts as in a cluster. Each
//!   container runs the workspace binary its image names (`colormesh/<binary>:<tag>`; `command`,
//!   if given, must name the same binary), with the container's `args`, its `env` (`value`, and
//!   `fieldRef` to `metadata.name`, `metadata.namespace`, `status.podIP`, `status.hostIP`,
//!   `spec.nodeName`) and `BIND_ADDR` set to the Pod's address. Where an image binds all
//!   interfaces (`BIND_ADDR=0.0.0.0`, `--listen 0.0.0.0:8080`), the Pod's address stands in,
//!   since here the Pods share one network namespace; what a Pod binds or calls on `127.0.0.1`
//!   becomes its own loopback address ([`pod_loopback`]), so two Pods' sidecars do not collide.
//! - **ServiceAccount.** Each Pod gets a token for its ServiceAccount from the TokenRequest API,
//!   bound to the Pod, in a kubeconfig its containers find through `KUBECONFIG` (the projected
//!   token volume of a kubelet, in the form kube-rs and client-go read first). The token is not
//!   renewed: it lives six hours.
//! - **Probes.** A readiness probe (`httpGet`: 200–399; `tcpSocket`: a connection) is tried every
//!   half second until it first succeeds and then every `periodSeconds`, failing the container
//!   after `failureThreshold` failures in a row; without a probe a running container is ready.
//!   (The kubelet waits a full period between the first tries; a stand-in that starts processes
//!   in milliseconds would spend most of a run waiting.)
//! - **Status.** The Pod's phase, IP, conditions and container statuses are written to its status
//!   subresource whenever they change: Pending until its processes start, Running after,
//!   Failed when a container exits and the restart policy says no. `restartPolicy: Always`
//!   restarts an exited container (counted in `restartCount`) after a back-off doubling from 1 s.
//! - **Deletion.** A Pod marked for deletion gets SIGTERM on each process, SIGKILL after its grace
//!   period, and is then deleted for good (grace period 0), as the kubelet does.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ::kube::runtime::watcher;
use futures_util::StreamExt as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, Probe, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::process::Process;

/// The field manager of the agent's writes.
const FIELD_MANAGER: &str = "colormesh-node-agent";
/// How often the agent checks its processes and probes.
const TICK: Duration = Duration::from_millis(500);
/// How often the Node's Lease is renewed (the kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The Lease's duration (the kubelet's default).
const LEASE_SECONDS: i32 = 40;
/// The workspace binaries an image may name.
pub const NODE_BINARIES: [&str; 6] = [
    "colorteller",
    "colorgateway",
    "tcpecho",
    "echo",
    "gateway-proxy",
    "envoy-control",
];

/// Why the agent could not start or run a Pod.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    #[error("the node agent's API call failed: {what}")]
    Api {
        what: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("no free pod address left in {0}.0/24")]
    NoAddress(String),
    #[error("pod {pod}: cannot get a token for ServiceAccount {service_account}: {source}")]
    Token {
        pod: String,
        service_account: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("pod {pod}: cannot write {}", .path.display())]
    Credentials {
        pod: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod {pod}: {field}: {message}")]
    Unsupported {
        pod: String,
        field: String,
        message: String,
    },
}

/// What the agent needs.
#[derive(Debug, Clone)]
pub struct NodeAgentSettings {
    /// The Node's name; the agent's user is `system:node:<name>`.
    pub node_name: String,
    /// The Node's own address (its `InternalIP`).
    pub node_address: Ipv4Addr,
    /// The first address of the Pods' `/24` ([`super::PodNetwork::base`]); Pods get `.2` up.
    pub pod_network: Ipv4Addr,
    /// The folder of the workspace binaries.
    pub bin_dir: PathBuf,
    /// Where the Pods' logs go (`<namespace>.<pod>.<container>.log`).
    pub log_dir: PathBuf,
    /// How Pods reach the API server with their ServiceAccount's token; `None` mounts no
    /// credentials.
    pub api_server: Option<ApiServerAccess>,
}

/// What a Pod's kubeconfig names besides its token.
#[derive(Debug, Clone)]
pub struct ApiServerAccess {
    /// `https://127.a.b.1:6443`.
    pub url: String,
    /// The cluster CA's certificate.
    pub ca_file: PathBuf,
    /// Where the Pods' kubeconfigs are written (`<namespace>.<pod>.kubeconfig`).
    pub credentials_dir: PathBuf,
}

/// How long a Pod's ServiceAccount token is valid. The kubelet renews projected tokens at 80 %
/// of their life; the agent does not renew, so a run must stay within this.
const TOKEN_SECONDS: i64 = 6 * 3600;

/// The address that stands for `127.0.0.1` inside a Pod: `127.<b>.<c>.<d>` for the Pod address
/// `a.b.c.d`. Pods here share the machine's network namespace, so each needs its own loopback
/// for what it binds "on localhost" (a sidecar's listener, an admin port); like a pod's
/// loopback in a cluster, it is reached only from this machine (a port-forward's view).
pub fn pod_loopback(pod_ip: Ipv4Addr) -> Ipv4Addr {
    let [_, b, c, d] = pod_ip.octets();
    Ipv4Addr::new(127, b, c, d)
}

/// A running node agent; [`NodeAgent::stop`] ends every Pod's processes.
#[derive(Debug)]
pub struct NodeAgent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl NodeAgent {
    /// Registers the Node and starts serving the Pods bound to it.
    pub async fn start(
        client: Client,
        settings: NodeAgentSettings,
    ) -> Result<Self, NodeAgentError> {
        register_node(&client, &settings).await?;
        renew_lease(&client, &settings.node_name).await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(client, settings, stopped));
        Ok(Self { stop, task })
    }

    /// Stops every Pod's processes (SIGTERM, then SIGKILL after a second) and the agent.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn api_error(what: impl Into<String>) -> impl FnOnce(::kube::Error) -> NodeAgentError {
    let what = what.into();
    move |source| NodeAgentError::Api { what, source }
}

fn time_now() -> Time {
    Time(Timestamp::now())
}

fn node_status(settings: &NodeAgentSettings) -> serde_json::Value {
    let heartbeat = Timestamp::now().to_string();
    let resources = json!({"cpu": "8", "memory": "16Gi", "pods": "110"});
    json!({
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": settings.node_address.to_string()},
                {"type": "Hostname", "address": settings.node_name},
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "colormesh node agent is posting ready status",
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": heartbeat,
            }],
            "nodeInfo": {
                "architecture": std::env::consts::ARCH,
                "operatingSystem": std::env::consts::OS,
                "kubeletVersion": "colormesh-node-agent",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "colormesh://processes",
                "kernelVersion": "",
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    })
}

async fn register_node(
    client: &Client,
    settings: &NodeAgentSettings,
) -> Result<(), NodeAgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.node_name,
            "labels": {
                "kubernetes.io/hostname": settings.node_name,
                "kubernetes.io/os": std::env::consts::OS,
            },
        },
    }))
    .expect("a valid Node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(::kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => {
            return Err(api_error(format!(
                "registering Node {}",
                settings.node_name
            ))(source));
        }
    }
    post_node_status(client, settings).await
}

async fn post_node_status(
    client: &Client,
    settings: &NodeAgentSettings,
) -> Result<(), NodeAgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            &settings.node_name,
            &PatchParams::default(),
            &Patch::Merge(node_status(settings)),
        )
        .await
        .map_err(api_error(format!(
            "posting Node {}'s status",
            settings.node_name
        )))?;
    Ok(())
}

async fn renew_lease(client: &Client, node: &str) -> Result<(), NodeAgentError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": MicroTime(Timestamp::now()),
        },
    });
    leases
        .patch(
            node,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(lease),
        )
        .await
        .map_err(api_error(format!("renewing Lease kube-node-lease/{node}")))?;
    Ok(())
}

/// One container's process and what the agent knows of it.
#[derive(Debug)]
struct ContainerRun {
    name: String,
    image: String,
    process: Option<Process>,
    started_at: Option<Time>,
    restarts: i32,
    /// When an exited container may start again.
    restart_at: Option<tokio::time::Instant>,
    back_off: Duration,
    last_exit: Option<String>,
    ready: bool,
    probe_failures: i32,
    next_probe: tokio::time::Instant,
    probe: Option<Probe>,
    spec: Container,
}

/// A Pod the agent runs.
#[derive(Debug)]
struct PodRun {
    namespace: String,
    name: String,
    ip: Ipv4Addr,
    containers: Vec<ContainerRun>,
    restart_always: bool,
    failed: Option<String>,
    /// The status last written, so only changes are sent.
    written: Option<serde_json::Value>,
    terminating: Option<tokio::time::Instant>,
    /// The kubeconfig with the Pod's ServiceAccount token (`KUBECONFIG` of its containers).
    kubeconfig: Option<PathBuf>,
    /// The token still to get before the containers start.
    token: Option<PendingToken>,
}

struct Agent {
    client: Client,
    settings: NodeAgentSettings,
    pods: HashMap<String, PodRun>,
    free: BTreeSet<u8>,
}

async fn run(client: Client, settings: NodeAgentSettings, mut stopped: watch::Receiver<bool>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", settings.node_name));
    let mut events = watcher(pods, config).boxed();
    let mut agent = Agent {
        client: client.clone(),
        settings,
        pods: HashMap::new(),
        free: (2..=254).collect(),
    };
    let mut tick = tokio::time::interval(TICK);
    let mut lease = tokio::time::interval(LEASE_RENEW);
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => agent.observe(pod).await,
                Some(Ok(watcher::Event::Delete(pod))) => agent.forget(&pod).await,
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(error)) => tracing::warn!(%error, "watching the node's pods"),
                None => break,
            },
            _ = tick.tick() => agent.tend().await,
            _ = lease.tick() => {
                let renewed = renew_lease(&agent.client, &agent.settings.node_name).await;
                let posted = post_node_status(&agent.client, &agent.settings).await;
                if let Err(error) = renewed.and(posted) {
                    tracing::warn!(%error, "node heartbeat");
                }
            }
        }
    }
    for (_, mut pod) in agent.pods.drain() {
        for container in &mut pod.containers {
            if let Some(mut process) = container.process.take() {
                process.terminate(Duration::from_secs(1)).await;
            }
        }
    }
}

fn key(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Agent {
    fn prefix(&self) -> [u8; 3] {
        let [a, b, c, _] = self.settings.pod_network.octets();
        [a, b, c]
    }

    async fn observe(&mut self, pod: Pod) {
        let uid = key(&pod);
        if let Some(run) = self.pods.get_mut(&uid) {
            if pod.metadata.deletion_timestamp.is_some() && run.terminating.is_none() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(30);
                run.terminating = Some(tokio::time::Instant::now() + Duration::from_secs(grace));
                for container in &mut run.containers {
                    if let Some(process) = &container.process {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(process.pid() as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                }
            }
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // Never started here: nothing to stop.
            self.delete_for_good(&pod).await;
            return;
        }
        match self.admit(&pod) {
            Ok(run) => {
                self.pods.insert(uid, run);
            }
            Err(error) => {
                tracing::warn!(%error, "pod refused");
                let status = json!({"status": {
                    "phase": "Failed",
                    "reason": "Unsupported",
                    "message": error.to_string(),
                }});
                let pods: Api<Pod> = Api::namespaced(
                    self.client.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let name = pod.metadata.name.clone().unwrap_or_default();
                if let Err(error) = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await
                {
                    tracing::warn!(%error, pod = name, "writing a refused pod's status");
                }
            }
        }
    }

    /// Checks a new Pod and gives it an address; its processes start on the next tick.
    fn admit(&mut self, pod: &Pod) -> Result<PodRun, NodeAgentError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let unsupported = |field: String, message: String| NodeAgentError::Unsupported {
            pod: format!("{namespace}/{name}"),
            field,
            message,
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let mut containers = Vec::new();
        for (index, container) in spec.containers.iter().enumerate() {
            let image = container.image.clone().unwrap_or_default();
            if binary_for_image(&image).is_none() {
                return Err(unsupported(
                    format!("spec.containers[{index}].image"),
                    format!(
                        "{image:?} is not a workspace image (colormesh/<{}>)",
                        NODE_BINARIES.join("|")
                    ),
                ));
            }
            containers.push(ContainerRun {
                name: container.name.clone(),
                image,
                process: None,
                started_at: None,
                restarts: 0,
                restart_at: Some(tokio::time::Instant::now()),
                back_off: Duration::from_secs(1),
                last_exit: None,
                ready: false,
                probe_failures: 0,
                next_probe: tokio::time::Instant::now(),
                probe: container.readiness_probe.clone(),
                spec: container.clone(),
            });
        }
        let prefix = self.prefix();
        let last = self.free.pop_first().ok_or_else(|| {
            NodeAgentError::NoAddress(format!("{}.{}.{}", prefix[0], prefix[1], prefix[2]))
        })?;
        Ok(PodRun {
            namespace,
            name,
            ip: Ipv4Addr::new(prefix[0], prefix[1], prefix[2], last),
            containers,
            restart_always: spec.restart_policy.as_deref().unwrap_or("Always") == "Always",
            failed: None,
            written: None,
            terminating: None,
            kubeconfig: None,
            token: (self.settings.api_server.is_some()
                && spec.automount_service_account_token != Some(false))
            .then(|| PendingToken {
                account: spec
                    .service_account_name
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "default".to_owned()),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                give_up_at: tokio::time::Instant::now() + TOKEN_RETRY_FOR,
                last_error: None,
            }),
        })
    }

    async fn forget(&mut self, pod: &Pod) {
        if let Some(mut run) = self.pods.remove(&key(pod)) {
            for container in &mut run.containers {
                if let Some(mut process) = container.process.take() {
                    process.terminate(Duration::from_secs(1)).await;
                }
            }
            self.free.insert(run.ip.octets()[3]);
        }
    }

    async fn delete_for_good(&self, pod: &Pod) {
        let pods: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod
                .metadata
                .uid
                .clone()
                .map(|uid| ::kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
            ..DeleteParams::default()
        };
        match pods.delete(&name, &params).await {
            Ok(_) => {}
            Err(::kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(%error, pod = name, "deleting a terminated pod"),
        }
    }

    /// Starts, restarts, probes and reports; finishes deletions.
    async fn tend(&mut self) {
        let host_ip = self.settings.node_address;
        let node = self.settings.node_name.clone();
        let mut finished = Vec::new();
        for (uid, run) in &mut self.pods {
            if let Some(deadline) = run.terminating {
                let mut running = false;
                for container in &mut run.containers {
                    if let Some(process) = &mut container.process {
                        if process.is_running() && tokio::time::Instant::now() < deadline {
                            running = true;
                        } else if let Some(mut process) = container.process.take() {
                            process.terminate(Duration::from_secs(1)).await;
                        }
                    }
                }
                if !running {
                    finished.push(uid.clone());
                }
                continue;
            }
            if let (Some(pending), Some(access)) = (&mut run.token, &self.settings.api_server) {
                match mount_service_account(
                    &self.client,
                    access,
                    &run.namespace,
                    &run.name,
                    pending,
                )
                .await
                {
                    Ok(kubeconfig) => {
                        run.kubeconfig = Some(kubeconfig);
                        run.token = None;
                    }
                    Err(error) if tokio::time::Instant::now() < pending.give_up_at => {
                        pending.last_error = Some(error.to_string());
                    }
                    Err(error) => run.failed = Some(error.to_string()),
                }
            }
            for container in &mut run.containers {
                if run.token.is_some() {
                    // The containers start once their credentials are mounted.
                    break;
                }
                tend_container(
                    PodContext {
                        namespace: &run.namespace,
                        name: &run.name,
                        ip: run.ip,
                        host_ip,
                        node: &node,
                        kubeconfig: run.kubeconfig.as_deref(),
                    },
                    container,
                    run.restart_always,
                    &mut run.failed,
                    &self.settings,
                )
                .await;
            }
            let status = pod_status(run, host_ip);
            if run.written.as_ref() != Some(&status) {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &run.namespace);
                match pods
                    .patch_status(
                        &run.name,
                        &PatchParams::default(),
                        &Patch::Merge(status.clone()),
                    )
                    .await
                {
                    Ok(_) => run.written = Some(status),
                    Err(error) => tracing::warn!(%error, pod = run.name, "writing pod status"),
                }
            }
        }
        for uid in finished {
            if let Some(run) = self.pods.remove(&uid) {
                self.free.insert(run.ip.octets()[3]);
                let mut pod = Pod::default();
                pod.metadata.name = Some(run.name);
                pod.metadata.namespace = Some(run.namespace);
                pod.metadata.uid = Some(uid);
                self.delete_for_good(&pod).await;
            }
        }
    }
}

/// A Pod's ServiceAccount token, still to be mounted before its containers start.
#[derive(Debug, Clone)]
struct PendingToken {
    account: String,
    uid: String,
    /// When the agent stops retrying and fails the Pod.
    give_up_at: tokio::time::Instant,
    last_error: Option<String>,
}

/// How long the agent retries a Pod's TokenRequest: the Node authorizer learns of a Pod bound to
/// this Node from its own watch, a moment after the agent does, and refuses until then.
const TOKEN_RETRY_FOR: Duration = Duration::from_secs(30);

/// Gets a token for the Pod's ServiceAccount from the TokenRequest API, bound to the Pod (as the
/// kubelet's projected volume does; the Node authorizer allows it only for a Pod bound to this
/// Node), and writes the kubeconfig its containers get as `KUBECONFIG`.
async fn mount_service_account(
    client: &Client,
    access: &ApiServerAccess,
    namespace: &str,
    name: &str,
    pending: &PendingToken,
) -> Result<PathBuf, NodeAgentError> {
    let account = &pending.account;
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {
            "audiences": [],
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {
                "apiVersion": "v1", "kind": "Pod",
                "name": name, "uid": pending.uid,
            },
        },
    }))
    .expect("a static TokenRequest");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|source| NodeAgentError::Token {
            pod: format!("{namespace}/{name}"),
            service_account: format!("{namespace}/{account}"),
            source,
        })?;
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": access.url,
            "certificate-authority": access.ca_file,
        }}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster",
            "user": account,
            "namespace": namespace,
        }}],
        "current-context": "in-cluster",
    });
    let path = access
        .credentials_dir
        .join(format!("{namespace}.{name}.kubeconfig"));
    let written = std::fs::create_dir_all(&access.credentials_dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&kubeconfig).unwrap_or_default(),
        )
    });
    written.map_err(|source| NodeAgentError::Credentials {
        pod: format!("{namespace}/{name}"),
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// What a container's environment may refer to.
#[derive(Debug, Clone, Copy)]
struct PodContext<'a> {
    namespace: &'a str,
    name: &'a str,
    ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    node: &'a str,
    kubeconfig: Option<&'a Path>,
}

async fn tend_container(
    pod: PodContext<'_>,
    container: &mut ContainerRun,
    restart_always: bool,
    failed: &mut Option<String>,
    settings: &NodeAgentSettings,
) {
    let now = tokio::time::Instant::now();
    if let Some(process) = &mut container.process
        && !process.is_running()
    {
        let mut process = container.process.take().expect("checked");
        let exit = match process.terminate(Duration::ZERO).await {
            crate::process::Stopped::Exited(status) => status.to_string(),
            crate::process::Stopped::Killed => "killed".to_owned(),
        };
        tracing::warn!(
            pod = pod.name,
            container = container.name,
            exit,
            "container exited"
        );
        container.last_exit = Some(exit.clone());
        container.ready = false;
        container.started_at = None;
        if restart_always {
            container.restart_at = Some(now + container.back_off);
            container.back_off = (container.back_off * 2).min(Duration::from_secs(300));
        } else {
            *failed = Some(format!("container {} exited: {exit}", container.name));
        }
    }
    if container.process.is_none() && failed.is_none() {
        if container.restart_at.is_some_and(|at| at <= now) {
            match start_container(pod, &container.spec, settings) {
                Ok(process) => {
                    if container.last_exit.is_some() {
                        container.restarts += 1;
                    }
                    container.process = Some(process);
                    container.started_at = Some(time_now());
                    container.restart_at = None;
                    container.next_probe = now;
                    container.probe_failures = 0;
                }
                Err(error) => {
                    *failed = Some(error.to_string());
                }
            }
        }
        return;
    }
    if container.process.is_some() && container.next_probe <= now {
        let ok = match &container.probe {
            None => true,
            Some(probe) => probe_once(pod.ip, probe, &container.spec).await,
        };
        let period = container
            .probe
            .as_ref()
            .and_then(|p| p.period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(10);
        if ok {
            container.ready = true;
            container.probe_failures = 0;
            container.next_probe = now + Duration::from_secs(period);
        } else {
            container.probe_failures += 1;
            let threshold = container
                .probe
                .as_ref()
                .and_then(|p| p.failure_threshold)
                .unwrap_or(3);
            if container.ready && container.probe_failures >= threshold {
                container.ready = false;
            }
            // Until the first success, try every tick; after it, every period.
            container.next_probe = if container.ready {
                now + Duration::from_secs(period)
            } else {
                now
            };
        }
    }
}

fn binary_for_image(image: &str) -> Option<&'static str> {
    crate::backend::local::workload::binary_among(image, &NODE_BINARIES)
}

/// The value of a `fieldRef` the agent supports.
fn field_value(path: &str, pod: PodContext<'_>) -> Option<String> {
    Some(match path {
        "metadata.name" => pod.name.to_owned(),
        "metadata.namespace" => pod.namespace.to_owned(),
        "status.podIP" => pod.ip.to_string(),
        "status.hostIP" => pod.host_ip.to_string(),
        "spec.nodeName" => pod.node.to_owned(),
        _ => return None,
    })
}

/// A container's program, arguments and environment.
type ContainerCommand = (PathBuf, Vec<String>, Vec<(String, String)>);

/// The program, arguments and environment of a container (see the module documentation).
fn container_command(
    pod: PodContext<'_>,
    container: &Container,
    bin_dir: &Path,
) -> Result<ContainerCommand, NodeAgentError> {
    let where_ = format!("{}/{}", pod.namespace, pod.name);
    let unsupported = |field: &str, message: String| NodeAgentError::Unsupported {
        pod: where_.clone(),
        field: format!("containers[{}].{field}", container.name),
        message,
    };
    let image = container.image.clone().unwrap_or_default();
    let binary = binary_for_image(&image)
        .ok_or_else(|| unsupported("image", format!("{image:?} is not a workspace image")))?;
    let mut args = Vec::new();
    if let Some(command) = &container.command {
        let named = command
            .first()
            .and_then(|c| Path::new(c).file_name())
            .and_then(|c| c.to_str());
        if named != Some(binary) {
            return Err(unsupported(
                "command",
                format!("{command:?} does not run the image's binary {binary}"),
            ));
        }
        args.extend(command[1..].iter().cloned());
    }
    args.extend(container.args.iter().flatten().cloned());
    let any = "0.0.0.0:";
    let own = format!("{}:", pod.ip);
    let loopback = pod_loopback(pod.ip).to_string();
    let local = |value: &str| value.replace(any, &own).replace("127.0.0.1", &loopback);
    let args = args.iter().map(|a| local(a)).collect();
    let mut env = vec![("BIND_ADDR".to_owned(), pod.ip.to_string())];
    if let Some(kubeconfig) = pod.kubeconfig {
        env.push(("KUBECONFIG".to_owned(), kubeconfig.display().to_string()));
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => {
                let path = source
                    .field_ref
                    .as_ref()
                    .map(|f| f.field_path.as_str())
                    .unwrap_or_default();
                field_value(path, pod).ok_or_else(|| {
                    unsupported(
                        &format!("env[{}].valueFrom", var.name),
                        format!("only fieldRef to metadata.name, metadata.namespace, status.podIP, status.hostIP, spec.nodeName is supported, not {path:?}"),
                    )
                })?
            }
            (Some(value), None) if value == "0.0.0.0" => pod.ip.to_string(),
            (Some(value), None) => local(value),
            (None, None) => String::new(),
        };
        env.retain(|(name, _)| name != &var.name);
        env.push((var.name.clone(), value));
    }
    Ok((bin_dir.join(binary), args, env))
}

fn start_container(
    pod: PodContext<'_>,
    container: &Container,
    settings: &NodeAgentSettings,
) -> Result<Process, NodeAgentError> {
    let (program, args, env) = container_command(pod, container, &settings.bin_dir)?;
    let name = format!("{}.{}.{}", pod.namespace, pod.name, container.name);
    Process::spawn(&name, &program, &args, &env, &settings.log_dir).map_err(|error| {
        NodeAgentError::Unsupported {
            pod: format!("{}/{}", pod.namespace, pod.name),
            field: format!("containers[{}]", container.name),
            message: error.to_string(),
        }
    })
}

/// The port a probe names, by number or by the container's port name.
fn probe_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(number) => u16::try_from(*number).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

async fn probe_once(ip: Ipv4Addr, probe: &Probe, container: &Container) -> bool {
    let timeout = Duration::from_secs(
        probe
            .timeout_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(1),
    );
    if let Some(get) = &probe.http_get {
        let Some(port) = probe_port(&get.port, container) else {
            return false;
        };
        let path = get.path.as_deref().unwrap_or("/");
        let request = async {
            let stream = tokio::net::TcpStream::connect(SocketAddr::from((ip, port)))
                .await
                .ok()?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(connection);
            let request = http::Request::get(path)
                .header(http::header::HOST, format!("{ip}:{port}"))
                .header(http::header::USER_AGENT, "kube-probe/colormesh")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            Some((200..400).contains(&response.status().as_u16()))
        };
        return tokio::time::timeout(timeout, request)
            .await
            .ok()
            .flatten()
            .unwrap_or(false);
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = probe_port(&tcp.port, container) else {
            return false;
        };
        return tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect(SocketAddr::from((ip, port))),
        )
        .await
        .is_ok_and(|r| r.is_ok());
    }
    // exec and grpc probes are not run here: a running container counts as ready.
    true
}

/// The status the agent reports for a Pod.
fn pod_status(run: &PodRun, host_ip: Ipv4Addr) -> serde_json::Value {
    let started = run.containers.iter().all(|c| c.process.is_some());
    let ready = started && run.containers.iter().all(|c| c.ready);
    let phase = match (&run.failed, started) {
        (Some(_), _) => "Failed",
        (None, true) => "Running",
        (None, false) => "Pending",
    };
    let condition =
        |kind: &str, ok: bool| json!({"type": kind, "status": if ok { "True" } else { "False" }});
    let containers: Vec<serde_json::Value> = run
        .containers
        .iter()
        .map(|c| {
            let state = match (&c.process, &c.started_at, &c.last_exit) {
                (Some(process), Some(at), _) => {
                    json!({"running": {"startedAt": at}, "_pid": process.pid()})
                }
                (None, _, Some(exit)) => {
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": exit}})
                }
                _ => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            let mut state = state;
            let pid = state.as_object_mut().and_then(|o| o.remove("_pid"));
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": format!("colormesh://{}", c.image),
                "containerID": pid.map(|p| format!("colormesh://{p}")),
                "ready": c.ready,
                "started": c.process.is_some(),
                "restartCount": c.restarts,
                "state": state,
            })
        })
        .collect();
    let mut status = json!({
        "phase": phase,
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": run.ip.to_string(),
        "podIPs": [{"ip": run.ip.to_string()}],
        "conditions": [
            condition("PodScheduled", true),
            condition("Initialized", true),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "containerStatuses": containers,
    });
    if let Some(message) = &run.failed {
        status["message"] = json!(message);
        status["reason"] = json!("Error");
    }
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pod() -> PodContext<'static> {
        PodContext {
            namespace: "appmesh-demo",
            name: "colorteller-abc",
            ip: Ipv4Addr::new(10, 244, 9, 2),
            host_ip: Ipv4Addr::new(127, 9, 9, 1),
            node: "n",
            kubeconfig: None,
        }
    }

    fn container(yaml: serde_json::Value) -> Container {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn a_container_runs_its_image_binary_on_the_pod_address() {
        let c = container(json!({
            "name": "app",
            "image": "colormesh/gateway-proxy:latest",
            "args": ["sidecar", "--listen", "0.0.0.0:15001", "--admin", "127.0.0.1:15000"],
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "BIND_ADDR", "value": "0.0.0.0"},
                {"name": "PORT", "value": "8080"},
                {"name": "HTTP_PROXY", "value": "http://127.0.0.1:15001"},
            ],
        }));
        let (program, args, env) = container_command(pod(), &c, Path::new("/bin")).unwrap();
        assert_eq!(program, Path::new("/bin/gateway-proxy"));
        assert_eq!(
            args,
            [
                "sidecar",
                "--listen",
                "10.244.9.2:15001",
                "--admin",
                "127.244.9.2:15000"
            ]
        );
        let env: BTreeMap<_, _> = env.into_iter().collect();
        assert_eq!(env["BIND_ADDR"], "10.244.9.2");
        assert_eq!(env["POD"], "colorteller-abc");
        assert_eq!(env["PORT"], "8080");
        // The Pod's own loopback, not the machine's: two Pods' sidecars both "on localhost".
        assert_eq!(env["HTTP_PROXY"], "http://127.244.9.2:15001");
        assert!(!env.contains_key("KUBECONFIG"), "no ServiceAccount mounted");

        let mounted = PodContext {
            kubeconfig: Some(Path::new(
                "/run/pods/appmesh-demo.colorteller-abc.kubeconfig",
            )),
            ..pod()
        };
        let (_, _, env) = container_command(mounted, &c, Path::new("/bin")).unwrap();
        let env: BTreeMap<_, _> = env.into_iter().collect();
        assert_eq!(
            env["KUBECONFIG"],
            "/run/pods/appmesh-demo.colorteller-abc.kubeconfig"
        );
    }

    #[test]
    fn unknown_images_commands_and_sources_are_named() {
        let wrong_command = container(json!({
            "name": "app", "image": "colormesh/colorteller", "command": ["/bin/sh"],
        }));
        let error = container_command(pod(), &wrong_command, Path::new("/b")).unwrap_err();
        assert!(
            error.to_string().contains("containers[app].command"),
            "{error}"
        );
        let secret = container(json!({
            "name": "app", "image": "colormesh/colorteller",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        }));
        let error = container_command(pod(), &secret, Path::new("/b")).unwrap_err();
        assert!(error.to_string().contains("env[X].valueFrom"), "{error}");
        assert_eq!(binary_for_image("nginx:1.27"), None);
        assert_eq!(
            binary_for_image("registry:5000/colormesh/echo:v1"),
            Some("echo")
        );
    }
}

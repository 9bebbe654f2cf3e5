//! A real Kubernetes control plane on this machine, for `--backend apiserver`: etcd, the API
//! server, the controller manager and the scheduler built by `cargo xtask kube install`, started
//! as local processes for one run.
//!
//! - **Where.** The run takes its own loopback address `127.a.b.1` (chosen at random among the
//!   ones whose ports are free), so the components keep their well-known ports (etcd 2379/2380,
//!   the API server 6443, the controller manager 10257, the scheduler 10259) without colliding
//!   with anything on 127.0.0.1 or with another run. Nothing listens beyond loopback.
//! - **Trust.** A CA made for the run ([`pki`]) signs the API server's serving certificate and one
//!   client certificate per identity; the API server authenticates clients by certificate and
//!   service-account token, and authorizes with Node and RBAC, with the NodeRestriction admission
//!   plugin on, as a kubeadm cluster does. The admin identity is in `system:masters`; the
//!   controller manager and the scheduler use their own users and the roles Kubernetes
//!   bootstraps for them; the controller manager gives each controller its own service account.
//! - **Ready.** [`ControlPlane::start`] returns once the API server answers `/readyz`, the
//!   controller manager and the scheduler hold their leader-election Leases (so each is running
//!   its loops against this API server), and the `default` ServiceAccount exists (so the
//!   service-account controllers work). A component that exits early fails the start with the end
//!   of its log.
//! - **Stop.** [`ControlPlane::stop`] terminates the components in reverse order; dropping it kills
//!   them. etcd's data lives in the run folder, so nothing outlives the run but its logs.

pub mod node;
pub mod pki;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::kube::Client;
use ::kube::api::Api;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;

use crate::process::{Process, ProcessError};
use pki::{Authority, Identity};

/// etcd's client port.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER_PORT: u16 = 2380;
/// The API server's secure port.
pub const APISERVER_PORT: u16 = 6443;
/// The controller manager's secure (health) port.
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;
/// The scheduler's secure (health) port.
pub const SCHEDULER_PORT: u16 = 10259;
/// The Service ClusterIP range; the `kubernetes` Service takes its first address.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
/// The service-account token issuer.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The binaries, as `cargo xtask kube install` names them.
pub const ETCD: &str = "etcd";
pub const KUBE_APISERVER: &str = "kube-apiserver";
pub const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const KUBE_SCHEDULER: &str = "kube-scheduler";

/// How often readiness is polled while the control plane starts.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a component is given to stop on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("{} is missing; run `cargo xtask kube install`", .0.display())]
    MissingBinary(PathBuf),
    #[error("cannot write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free loopback address 127.x.y.1 with the control plane's ports after {0} tries")]
    NoAddress(usize),
    #[error("generating the run's certificates")]
    Certificate(#[from] rcgen::Error),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("connecting to the API server with {}", .kubeconfig.display())]
    Client {
        kubeconfig: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "cannot make {network} local for the Pods (`{command}`: {message}); the apiserver backend needs CAP_NET_ADMIN (root) to route a pod network to the loopback device, since the API server refuses loopback addresses in EndpointSlices"
    )]
    PodNetwork {
        network: String,
        command: String,
        message: String,
    },
    #[error(transparent)]
    NodeAgent(#[from] node::NodeAgentError),
    #[error("the control plane was not ready within {timeout:?}: {waiting_for} (last: {last})")]
    NotReady {
        timeout: Duration,
        waiting_for: String,
        last: String,
    },
}

/// What [`ControlPlane::start`] needs.
#[derive(Debug, Clone)]
pub struct ControlPlaneSettings {
    /// The folder with `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`.
    pub bin_dir: PathBuf,
    /// The run's folder: certificates, kubeconfigs, etcd's data and the components' logs.
    pub run_dir: PathBuf,
    /// How long the whole start may take.
    pub startup_timeout: Duration,
}

impl ControlPlaneSettings {
    pub fn new(bin_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: bin_dir.into(),
            run_dir: run_dir.into(),
            startup_timeout: Duration::from_secs(120),
        }
    }
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    address: Ipv4Addr,
    run_dir: PathBuf,
    authority: Authority,
    admin_kubeconfig: PathBuf,
    /// etcd, API server, controller manager, scheduler: stopped in reverse.
    processes: Vec<Process>,
    /// How long [`ControlPlane::start`] took.
    pub started_in: Duration,
}

impl ControlPlane {
    /// Starts etcd, the API server, the controller manager and the scheduler, and waits until all
    /// four work (see the module documentation).
    pub async fn start(settings: &ControlPlaneSettings) -> Result<Self, ControlPlaneError> {
        let started = Instant::now();
        let binary = |name: &str| {
            let path = settings.bin_dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ControlPlaneError::MissingBinary(path))
            }
        };
        let (etcd, apiserver, controller_manager, scheduler) = (
            binary(ETCD)?,
            binary(KUBE_APISERVER)?,
            binary(KUBE_CONTROLLER_MANAGER)?,
            binary(KUBE_SCHEDULER)?,
        );
        let run_dir = settings.run_dir.clone();
        let pki_dir = run_dir.join("pki");
        let log_dir = run_dir.join("logs");
        for dir in [&pki_dir, &log_dir] {
            create_dir(dir)?;
        }
        let address = free_loopback_address()?;
        let run_name = run_dir
            .file_name()
            .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());

        // Certificates and keys.
        let authority = Authority::generate(&run_name)?;
        let ca = write(&pki_dir.join("ca.crt"), authority.cert_pem())?;
        let serving = authority.serving(
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ],
            &[
                IpAddr::V4(address),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
            ],
        )?;
        let serving_cert = write(&pki_dir.join("apiserver.crt"), &serving.cert_pem)?;
        let serving_key = write(&pki_dir.join("apiserver.key"), &serving.key_pem)?;
        let (sa_private, sa_public) = pki::service_account_key()?;
        let sa_key = write(&pki_dir.join("sa.key"), &sa_private)?;
        let sa_pub = write(&pki_dir.join("sa.pub"), &sa_public)?;

        let mut plane = Self {
            address,
            run_dir: run_dir.clone(),
            authority,
            admin_kubeconfig: PathBuf::new(),
            processes: Vec::new(),
            started_in: Duration::ZERO,
        };
        plane.admin_kubeconfig = plane.kubeconfig_for(
            &Identity::new("colormesh-admin", &["system:masters"]),
            "admin",
        )?;
        let controller_manager_kubeconfig = plane.kubeconfig_for(
            &Identity::new("system:kube-controller-manager", &[]),
            "controller-manager",
        )?;
        let scheduler_kubeconfig =
            plane.kubeconfig_for(&Identity::new("system:kube-scheduler", &[]), "scheduler")?;

        let a = address.to_string();
        let etcd_client = format!("http://{a}:{ETCD_CLIENT_PORT}");
        let etcd_peer = format!("http://{a}:{ETCD_PEER_PORT}");
        let path = |p: &Path| p.display().to_string();
        let etcd_data = run_dir.join("etcd");
        plane.processes.push(Process::spawn(
            ETCD,
            &etcd,
            &[
                "--name=colormesh".to_owned(),
                format!("--data-dir={}", path(&etcd_data)),
                format!("--listen-client-urls={etcd_client}"),
                format!("--advertise-client-urls={etcd_client}"),
                format!("--listen-peer-urls={etcd_peer}"),
                format!("--initial-advertise-peer-urls={etcd_peer}"),
                format!("--initial-cluster=colormesh={etcd_peer}"),
                // A run's data is thrown away with it: no fsync per write.
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            &[],
            &log_dir,
        )?);
        plane.processes.push(Process::spawn(
            KUBE_APISERVER,
            &apiserver,
            &[
                format!("--etcd-servers={etcd_client}"),
                format!("--bind-address={a}"),
                format!("--advertise-address={a}"),
                format!("--secure-port={APISERVER_PORT}"),
                format!("--tls-cert-file={}", path(&serving_cert)),
                format!("--tls-private-key-file={}", path(&serving_key)),
                format!("--client-ca-file={}", path(&ca)),
                format!("--service-account-key-file={}", path(&sa_pub)),
                format!("--service-account-signing-key-file={}", path(&sa_key)),
                format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                "--authorization-mode=Node,RBAC".to_owned(),
                "--enable-admission-plugins=NodeRestriction".to_owned(),
                format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                "--profiling=false".to_owned(),
            ],
            &[],
            &log_dir,
        )?);
        // The controller manager and the scheduler exit when the API server does not answer at
        // their start (a kubelet would restart them); start them once it does.
        plane
            .wait_ready(started, settings.startup_timeout, Stage::ApiServer)
            .await?;
        plane.processes.push(Process::spawn(
            KUBE_CONTROLLER_MANAGER,
            &controller_manager,
            &[
                format!("--kubeconfig={}", path(&controller_manager_kubeconfig)),
                format!(
                    "--authentication-kubeconfig={}",
                    path(&controller_manager_kubeconfig)
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    path(&controller_manager_kubeconfig)
                ),
                format!("--bind-address={a}"),
                format!("--secure-port={CONTROLLER_MANAGER_PORT}"),
                format!("--cert-dir={}", path(&run_dir.join("controller-manager"))),
                format!("--service-account-private-key-file={}", path(&sa_key)),
                format!("--root-ca-file={}", path(&ca)),
                "--use-service-account-credentials=true".to_owned(),
                "--profiling=false".to_owned(),
            ],
            &[],
            &log_dir,
        )?);
        plane.processes.push(Process::spawn(
            KUBE_SCHEDULER,
            &scheduler,
            &[
                format!("--kubeconfig={}", path(&scheduler_kubeconfig)),
                format!(
                    "--authentication-kubeconfig={}",
                    path(&scheduler_kubeconfig)
                ),
                format!("--authorization-kubeconfig={}", path(&scheduler_kubeconfig)),
                format!("--bind-address={a}"),
                format!("--secure-port={SCHEDULER_PORT}"),
                format!("--cert-dir={}", path(&run_dir.join("scheduler"))),
                "--profiling=false".to_owned(),
            ],
            &[],
            &log_dir,
        )?);

        plane
            .wait_ready(started, settings.startup_timeout, Stage::Controllers)
            .await?;
        plane.started_in = started.elapsed();
        tracing::info!(
            address = %plane.address,
            seconds = plane.started_in.as_secs_f64(),
            "control plane ready"
        );
        Ok(plane)
    }

    /// The run's loopback address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// `https://127.a.b.1:6443`.
    pub fn server_url(&self) -> String {
        format!("https://{}:{APISERVER_PORT}", self.address)
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The run's folder.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// A client as the admin.
    pub async fn client(&self) -> Result<Client, ControlPlaneError> {
        client_from(&self.admin_kubeconfig).await
    }

    /// A client as `identity` (a new certificate and kubeconfig named `name`).
    pub async fn client_as(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<Client, ControlPlaneError> {
        client_from(&self.kubeconfig_for(identity, name)?).await
    }

    /// Writes `<run>/kubeconfig/<name>.kubeconfig` with a new client certificate for
    /// `identity`, and returns its path (the node agent's is `system:node:<node>` in
    /// `system:nodes`).
    pub fn kubeconfig_for(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<PathBuf, ControlPlaneError> {
        let dir = self.run_dir.join("kubeconfig");
        create_dir(&dir)?;
        let ca = self.run_dir.join("pki").join("ca.crt");
        let certified = self.authority.client(identity)?;
        let cert = write(&dir.join(format!("{name}.crt")), &certified.cert_pem)?;
        let key = write(&dir.join(format!("{name}.key")), &certified.key_pem)?;
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "colormesh", "cluster": {
                "server": self.server_url(),
                "certificate-authority": ca,
            }}],
            "users": [{"name": identity.user, "user": {
                "client-certificate": cert,
                "client-key": key,
            }}],
            "contexts": [{"name": "colormesh", "context": {
                "cluster": "colormesh",
                "user": identity.user,
            }}],
            "current-context": "colormesh",
        });
        write(
            &dir.join(format!("{name}.kubeconfig")),
            &serde_json::to_string_pretty(&kubeconfig).unwrap_or_default(),
        )
    }

    /// Terminates the components, scheduler first, etcd last.
    pub async fn stop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            process.terminate(STOP_GRACE).await;
        }
    }

    async fn wait_ready(
        &mut self,
        started: Instant,
        timeout: Duration,
        stage: Stage,
    ) -> Result<(), ControlPlaneError> {
        let not_ready = |waiting_for: &str, last: String| ControlPlaneError::NotReady {
            timeout,
            waiting_for: waiting_for.to_owned(),
            last,
        };
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        let mut client = None;
        let mut waiting_for = "the API server's /readyz";
        let mut last = String::from("nothing yet");
        loop {
            interval.tick().await;
            for process in &mut self.processes {
                if !process.is_running() {
                    return Err(process
                        .failure("exited while the control plane started")
                        .into());
                }
            }
            if started.elapsed() > timeout {
                return Err(not_ready(waiting_for, last));
            }
            let client = match &client {
                Some(client) => client,
                None => match client_from(&self.admin_kubeconfig).await {
                    Ok(made) => client.insert(made),
                    Err(error) => {
                        last = error.to_string();
                        continue;
                    }
                },
            };
            match ready_step(client, stage).await {
                Ok(None) => return Ok(()),
                Ok(Some((what, state))) => {
                    waiting_for = what;
                    last = state;
                }
                Err(error) => last = error.to_string(),
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The processes are killed on drop (kill_on_drop); nothing else to release.
        self.processes.clear();
    }
}

/// How far the start has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// etcd and the API server run.
    ApiServer,
    /// The controller manager and the scheduler run too.
    Controllers,
}

/// One readiness poll: `None` when everything `stage` needs is ready, else what is awaited and
/// its state.
async fn ready_step(
    client: &Client,
    stage: Stage,
) -> Result<Option<(&'static str, String)>, ::kube::Error> {
    let readyz = client
        .request_text(
            http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a static request"),
        )
        .await?;
    if readyz.trim() != "ok" {
        return Ok(Some(("the API server's /readyz", readyz)));
    }
    if stage == Stage::ApiServer {
        return Ok(None);
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    for (component, what) in [
        (
            KUBE_CONTROLLER_MANAGER,
            "the controller manager's leader Lease",
        ),
        (KUBE_SCHEDULER, "the scheduler's leader Lease"),
    ] {
        let held = leases
            .get_opt(component)
            .await?
            .and_then(|lease| lease.spec)
            .and_then(|spec| spec.holder_identity)
            .is_some();
        if !held {
            return Ok(Some((what, format!("kube-system/{component} not held"))));
        }
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    if accounts.get_opt("default").await?.is_none() {
        return Ok(Some((
            "the default ServiceAccount (service-account controller)",
            "default/default missing".to_owned(),
        )));
    }
    Ok(None)
}

async fn client_from(kubeconfig: &Path) -> Result<Client, ControlPlaneError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| ControlPlaneError::Client {
        kubeconfig: kubeconfig.to_owned(),
        source,
    };
    let config = ::kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| wrap(e.into()))?;
    let config = ::kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .map_err(|e| wrap(e.into()))?;
    Client::try_from(config).map_err(|e| wrap(e.into()))
}

/// A random `127.a.b.1` (never `127.0.0.x`) on which every control plane port is free now.
fn free_loopback_address() -> Result<Ipv4Addr, ControlPlaneError> {
    const TRIES: usize = 64;
    let random = std::hash::RandomState::new();
    for attempt in 0..TRIES {
        let [a, b, ..] = random_bytes(&random, attempt);
        let address = Ipv4Addr::new(127, a.max(1), b, 1);
        let free = [
            ETCD_CLIENT_PORT,
            ETCD_PEER_PORT,
            APISERVER_PORT,
            CONTROLLER_MANAGER_PORT,
            SCHEDULER_PORT,
        ]
        .iter()
        .all(|port| TcpListener::bind(SocketAddr::from((address, *port))).is_ok());
        if free {
            return Ok(address);
        }
    }
    Err(ControlPlaneError::NoAddress(TRIES))
}

/// Eight random bytes for try `attempt`. RandomState is seeded randomly per process, which is
/// enough to spread concurrent runs over the addresses they pick.
fn random_bytes(random: &std::hash::RandomState, attempt: usize) -> [u8; 8] {
    std::hash::BuildHasher::hash_one(random, attempt).to_le_bytes()
}

fn create_dir(dir: &Path) -> Result<(), ControlPlaneError> {
    std::fs::create_dir_all(dir).map_err(|source| ControlPlaneError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<PathBuf, ControlPlaneError> {
    std::fs::write(path, text).map_err(|source| ControlPlaneError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(path.to_owned())
}

/// The base of the pod networks: each run routes one `10.244.<n>.0/24` to the loopback device.
const POD_NETWORK_BASE: [u8; 2] = [10, 244];

/// A `/24` of Pod addresses made local to this machine for one run, as `127.0.0.0/8` is: a
/// `local` route to the loopback device, so a Pod's process can bind its address and every
/// other process reach it, with nothing listening beyond this machine.
///
/// Pods cannot simply take loopback addresses: the API server refuses them in EndpointSlices
/// (`may not be in the loopback range`), so the real EndpointSlice controller would publish no
/// endpoint. Adding the route needs CAP_NET_ADMIN; it is removed when the value is dropped.
#[derive(Debug)]
pub struct PodNetwork {
    base: Ipv4Addr,
}

impl PodNetwork {
    /// Routes a free `10.244.<n>.0/24` (one no other run holds) to the loopback device.
    pub fn claim() -> Result<Self, ControlPlaneError> {
        let random = std::hash::RandomState::new();
        let mut last = None;
        for attempt in 0..16 {
            let [n, ..] = random_bytes(&random, attempt);
            let base = Ipv4Addr::new(POD_NETWORK_BASE[0], POD_NETWORK_BASE[1], n, 0);
            match ip_route("add", base) {
                Ok(()) => return Ok(Self { base }),
                Err(error) => last = Some(error),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The network's first address (`10.244.<n>.0`); Pods take `.2` up.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        if let Err(error) = ip_route("del", self.base) {
            tracing::warn!(%error, "removing the pod network's route");
        }
    }
}

fn ip_route(action: &str, base: Ipv4Addr) -> Result<(), ControlPlaneError> {
    let network = format!("{base}/24");
    let args = [
        "route", action, "local", &network, "dev", "lo", "table", "local",
    ];
    let command = format!("ip {}", args.join(" "));
    let failed = |message: String| ControlPlaneError::PodNetwork {
        network: network.clone(),
        command: command.clone(),
        message,
    };
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failed(format!("cannot run ip (iproute2): {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// The Node the agent registers.
pub const NODE_NAME: &str = "colormesh-node";

/// What [`LocalCluster::start`] needs.
#[derive(Debug, Clone)]
pub struct LocalClusterSettings {
    /// The control plane's binaries and the run's folder.
    pub control_plane: ControlPlaneSettings,
    /// The folder of the workspace binaries the Pods run (gateway-proxy built with its
    /// `kubernetes` feature).
    pub workspace_bin_dir: PathBuf,
}

/// `--backend apiserver`'s cluster: the control plane, a pod network and one node agent, all on
/// this machine. [`LocalCluster::stop`] ends the Pods' processes, then the control plane; the
/// pod network's route goes with the value.
#[derive(Debug)]
pub struct LocalCluster {
    plane: ControlPlane,
    agent: Option<node::NodeAgent>,
    network: PodNetwork,
}

impl LocalCluster {
    /// Starts the control plane ([`ControlPlane::start`]), routes a pod network to the loopback
    /// device ([`PodNetwork::claim`]) and registers the node agent ([`node::NodeAgent`]).
    pub async fn start(settings: &LocalClusterSettings) -> Result<Self, ControlPlaneError> {
        let network = PodNetwork::claim()?;
        let plane = ControlPlane::start(&settings.control_plane).await?;
        let identity = Identity::new(&format!("system:node:{NODE_NAME}"), &["system:nodes"]);
        let node_client = plane.client_as(&identity, NODE_NAME).await?;
        let run_dir = plane.run_dir().to_owned();
        create_dir(&run_dir.join("pods"))?;
        let agent = node::NodeAgent::start(
            node_client,
            node::NodeAgentSettings {
                node_name: NODE_NAME.to_owned(),
                node_address: plane.address(),
                pod_network: network.base(),
                bin_dir: settings.workspace_bin_dir.clone(),
                log_dir: run_dir.join("pods"),
                api_server: Some(node::ApiServerAccess {
                    url: plane.server_url(),
                    ca_file: run_dir.join("pki").join("ca.crt"),
                    credentials_dir: run_dir.join("pods").join("credentials"),
                }),
            },
        )
        .await?;
        Ok(Self {
            plane,
            agent: Some(agent),
            network,
        })
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// The pod network's first address.
    pub fn pod_network(&self) -> Ipv4Addr {
        self.network.base()
    }

    /// Stops every Pod's processes, then the control plane.
    pub async fn stop(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.stop().await;
        }
        self.plane.stop().await;
    }
}

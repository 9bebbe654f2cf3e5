//! The Kubernetes configuration source: what `gateway-proxy --kubernetes` serves in a cluster.
//!
//! Like Gloo and the App Mesh controller, the proxy reads the API server instead of files:
//! kube-rs watchers (one per kind, and per namespace when `--watch-namespace` restricts the
//! scope) keep reflector stores of the objects a role needs, and [`KubeSource`] translates what
//! the stores hold with the same translator, history and error reporting as
//! [`crate::DirSource`]. Every change after the initial lists triggers a reload; bursts are
//! coalesced. The ingress role writes each Gloo object's verdict back into its status.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_proxy::kube_source::{KubeOptions, start};
//! use gateway_proxy::{ProxyOptions, ProxyState};
//! use routing::Role;
//!
//! let client = kube::Client::try_default().await?;
//! let state = ProxyState::new(ProxyOptions::default());
//! // Returns once every kind has been listed and the first configuration is installed.
//! let sync = start(client, state.clone(), KubeOptions::new(Role::ingress())).await?;
//! // ... serve `state`; dropping `sync` stops watching ...
//! # drop(sync); Ok(()) }
//! ```

mod gateway_api_status;
use gateway_api_status::ParentKind;
mod kinds;
mod source;
mod status;
mod watch;

use std::time::Duration;

use futures_util::future::try_join_all;
use kube::Client;
use routing::Role;
use tokio::sync::{mpsc, watch as latest};
use tokio::task::JoinHandle;

use crate::ProxyState;
use crate::reload::ReloadError;

pub use source::KubeSource;

/// The namespace the gateway reports statuses under when `POD_NAMESPACE` does not say
/// (where Gloo runs).
pub const DEFAULT_WRITER_NAMESPACE: &str = model::gloo::GLOO_NAMESPACE;

/// Changes closer together than this give a single reload (as for a config directory).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// What to watch and how to report.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// The role translated for; it decides the kinds watched.
    pub role: Role,
    /// Namespaces to watch; empty watches all of them. Cluster-scoped kinds (Mesh) are always
    /// watched cluster-wide.
    pub watch_namespaces: Vec<String>,
    /// The key of this gateway's entry under `status.statuses` (its own namespace).
    pub writer_namespace: String,
    /// Changes closer together than this are coalesced into one reload.
    pub debounce: Duration,
}

impl KubeOptions {
    /// All namespaces, statuses under [`DEFAULT_WRITER_NAMESPACE`], [`DEFAULT_DEBOUNCE`].
    pub fn new(role: Role) -> Self {
        Self {
            role,
            watch_namespaces: Vec::new(),
            writer_namespace: DEFAULT_WRITER_NAMESPACE.to_owned(),
            debounce: DEFAULT_DEBOUNCE,
        }
    }
}

/// Why the Kubernetes source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// Listing a custom resource kind answered 404: its CRD is not installed.
    #[error(
        "the API server does not serve {kind} ({api_version}): listing {resource} answered 404 Not Found; install the CRDs (`kubectl apply -f {crd_dir}`)"
    )]
    CrdMissing {
        /// The kind, e.g. `VirtualService`.
        kind: String,
        /// Its apiVersion, e.g. `gateway.solo.io/v1`.
        api_version: String,
        /// `plural.group`, e.g. `virtualservices.gateway.solo.io`.
        resource: String,
        /// The directory of CRD manifests to apply.
        crd_dir: &'static str,
    },
    /// Listing a built-in kind answered 404 (a Kubernetes too old for `discovery.k8s.io/v1`).
    #[error(
        "the API server does not serve {kind} ({api_version}): listing {resource} answered 404 Not Found"
    )]
    KindNotServed {
        /// The kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
        /// `plural[.group]`.
        resource: String,
    },
    /// The credentials may not list a kind.
    #[error(
        "listing {resource} {scope} was refused ({code}): {message}; the gateway's service account needs get, list and watch on {resource}"
    )]
    ListRefused {
        /// The kind.
        kind: String,
        /// `in all namespaces`, `in namespace NS` or `(cluster scoped)`.
        scope: String,
        /// `plural[.group]`.
        resource: String,
        /// The HTTP status (401 or 403).
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// A watcher task ended before its initial list (it panicked or was cancelled).
    #[error("the watch of {kind} {scope} ended before its initial list completed")]
    WatchEnded {
        /// The kind.
        kind: String,
        /// The scope watched.
        scope: String,
    },
    /// Installing the first configuration failed.
    #[error("installing the first configuration from the API server failed: {0}")]
    InitialLoad(#[from] ReloadError),
}

/// The running watchers, reload loop and status writer. Dropping it stops them all; the proxy
/// keeps serving the last configuration installed.
#[derive(Debug)]
pub struct KubeSync {
    tasks: Vec<JoinHandle<()>>,
    statuses_reconciled: latest::Receiver<u64>,
}

impl KubeSync {
    /// The generation whose statuses were last reconciled with the API server (every patch
    /// tried, failures logged); 0 before the first. It never moves for the sidecar role, which
    /// writes no status.
    pub fn statuses_reconciled(&self) -> latest::Receiver<u64> {
        self.statuses_reconciled.clone()
    }
}

impl Drop for KubeSync {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Aborts started tasks if `start` gives up half way.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts watching the API server through `client` for `options.role`, waits until every
/// watched kind has been listed once, installs the first configuration into `state` (which
/// stays unready until then) and returns the running synchronisation.
///
/// A kind that cannot be listed for good (404: CRD not installed; 401/403: not allowed) fails
/// the start with an error naming it; transient API errors are retried with backoff.
pub async fn start(
    client: Client,
    state: ProxyState,
    options: KubeOptions,
) -> Result<KubeSync, KubeSourceError> {
    let (changes_tx, changes) = mpsc::unbounded_channel();
    let mut tasks = Tasks(Vec::new());
    let mut watched = Vec::new();
    let mut initial_lists = Vec::new();
    for kind in kinds::for_role(&options.role) {
        let namespaces: Vec<Option<String>> =
            if kind.namespaced && !options.watch_namespaces.is_empty() {
                options.watch_namespaces.iter().cloned().map(Some).collect()
            } else {
                vec![None]
            };
        for namespace in namespaces {
            let spawned = watch::spawn(client.clone(), kind.clone(), namespace, changes_tx.clone());
            tasks.0.push(spawned.task);
            let (kind, scope) = (
                spawned.watched.kind.kind.to_string(),
                spawned.watched.scope(),
            );
            initial_lists.push(async move {
                spawned
                    .initial_list
                    .await
                    .unwrap_or(Err(KubeSourceError::WatchEnded { kind, scope }))
            });
            watched.push(spawned.watched);
        }
    }
    drop(changes_tx);
    try_join_all(initial_lists).await?;
    tracing::info!(watchers = watched.len(), "initial lists complete");

    state.set_source(KubeSource::new(options.role.clone(), watched.clone()));
    let first = state.reload().await?;
    let (generation_tx, generations) = latest::channel(first.generation);
    let (reconciled_tx, statuses_reconciled) = latest::channel(0);
    tasks.0.push(tokio::spawn(reload_on_changes(
        state.clone(),
        changes,
        options.debounce,
        generation_tx,
    )));
    // The ingress writes Gloo statuses and the Gateway API statuses of its Gateways; a GAMMA
    // sidecar the Service parents of its namespace's HTTPRoutes; an App Mesh sidecar nothing.
    let writer_scope = match &options.role {
        Role::Ingress { .. } => Some((ParentKind::Gateway, None)),
        Role::MeshSidecar { namespace } => Some((ParentKind::Service, Some(namespace.clone()))),
        Role::Sidecar { .. } => None,
    };
    if let Some((parents, only_namespace)) = writer_scope {
        let writer = status::StatusWriter::new(
            client,
            options.writer_namespace,
            parents,
            only_namespace,
            &watched,
        );
        tasks.0.push(tokio::spawn(write_statuses(
            state,
            writer,
            generations,
            reconciled_tx,
        )));
    }
    Ok(KubeSync {
        tasks: std::mem::take(&mut tasks.0),
        statuses_reconciled,
    })
}

/// Reloads after each burst of watch events, like `watch_dir` does for file events.
async fn reload_on_changes(
    state: ProxyState,
    mut changes: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    generations: latest::Sender<u64>,
) {
    while changes.recv().await.is_some() {
        while let Ok(Some(())) = tokio::time::timeout(debounce, changes.recv()).await {}
        match state.reload().await {
            Ok(report) => {
                tracing::info!(
                    generation = report.generation,
                    "reloaded after a change in the API server"
                );
                generations.send_replace(report.generation);
            }
            Err(error) => tracing::error!(%error, "reload after an API change failed"),
        }
    }
}

/// Reconciles statuses with the live snapshot after every reload, starting with the first.
async fn write_statuses(
    state: ProxyState,
    mut writer: status::StatusWriter,
    mut generations: latest::Receiver<u64>,
    reconciled: latest::Sender<u64>,
) {
    loop {
        if let Some(snapshot) = state.snapshot() {
            writer.reconcile(&snapshot).await;
            reconciled.send_replace(snapshot.generation);
        }
        if generations.changed().await.is_err() {
            return;
        }
    }
}

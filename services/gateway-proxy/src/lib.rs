//! The Rust stand-in for the walkthrough's Envoys: Gloo's ingress proxy and the App Mesh sidecar.
//!
//! One library, one binary (`gateway-proxy ingress|sidecar`). The data plane routes with an
//! immutable [`routing::table::RouteTable`] held in an atomically swapped [`Snapshot`]; a reload
//! builds a new table and swaps it in without disturbing requests in flight. The table and the
//! translators that build it live in the `routing` crate; this crate serves them: configuration
//! sources and reloads, the request path, metrics and the admin API.
//!
//! Starting a proxy in process (this is what the integration tests do):
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_proxy::{ProxyOptions, ProxyState, serve};
//! use routing::table::{Fallback, RouteTable};
//!
//! let state = ProxyState::new(ProxyOptions::default());
//! state.install_table(RouteTable::empty(Fallback::NotFound));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(serve(listener, admin, state, async move { stopped.await.ok(); }));
//! // ... send requests ...
//! stop.send(()).ok();
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! The binary builds its [`ProxyState`] from a config directory instead, with a
//! [`ConfigSource`] that reads the resources and translates them ([`DirSource`]), or, in a
//! cluster, from the API server (`kube_source`, behind the `kubernetes` feature). [`forward`] holds
//! the request path's building blocks for data planes that compose their own (the mutant gateway).

mod admin;
pub mod cli;
mod dir_source;
pub mod forward;
mod headers;
#[cfg(feature = "kubernetes")]
pub mod kube_source;
mod metrics;
mod proxy;
mod reload;
mod rotation;
mod server;
mod snapshot;

pub use admin::serve_admin;
pub use dir_source::DirSource;
pub use reload::{ConfigSource, DirWatch, LoadOutcome, ReloadError, ReloadReport, watch_dir};
pub use server::{ConnectionLimits, ServeError, default_max_connections, serve, serve_ready};
pub use snapshot::{FileLoadFailure, Snapshot};

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use routing::Translation;
use routing::table::RouteTable;

use crate::forward::Upstream;
use crate::metrics::Metrics;
use crate::rotation::EndpointRotations;

/// Settings of a proxy that do not change with its configuration.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Seed for the per-connection random generators that pick weighted destinations and make
    /// request ids. `None` seeds from entropy (production); a seed makes runs repeatable.
    pub seed: Option<u64>,
    /// Timeout for establishing an upstream connection; `None` uses 5 s (Gloo's default).
    pub connect_timeout: Option<Duration>,
    /// X-Ray tracing, as Envoy's X-Ray tracer: each request gets a segment of its own (with the
    /// upstream cluster as the `upstream_cluster` annotation) and the upstream request carries
    /// `X-Amzn-Trace-Id: Root=…;Parent=<this segment>;Sampled=…`. `None`: trace headers pass
    /// through unchanged, as any other header.
    pub xray: Option<Arc<service_kit::xray::Recorder>>,
    /// Downstream connection limits and timeouts.
    pub limits: ConnectionLimits,
}

/// Everything the listeners share: the live snapshot, the upstream pool, metrics and the reload hook.
///
/// Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct ProxyState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    current: ArcSwapOption<Snapshot>,
    /// The last installed generation; held while installing so generations are strictly ordered.
    last_generation: Mutex<u64>,
    metrics: Metrics,
    upstream: Upstream,
    options: ProxyOptions,
    /// Counts accepted downstream connections; with a seed, connection N's generator is seeded
    /// from `seed + N`.
    connections: AtomicU64,
    source: Mutex<Option<Box<dyn ConfigSource>>>,
    /// The addresses this proxy listens on (data plane and admin), set when it starts serving:
    /// a request addressed to one of them would come back to this proxy.
    own_addresses: OnceLock<Vec<SocketAddr>>,
}

impl ProxyState {
    /// A proxy with no configuration yet: it answers 503 and `/ready` says so until the first install.
    pub fn new(options: ProxyOptions) -> Self {
        let upstream = Upstream::new(&options);
        Self {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                last_generation: Mutex::new(0),
                metrics: Metrics::new(),
                upstream,
                options,
                connections: AtomicU64::new(0),
                source: Mutex::new(None),
                own_addresses: OnceLock::new(),
            }),
        }
    }

    /// Installs a translated configuration as the next generation and returns that generation.
    pub fn install(&self, translation: Translation, load_errors: Vec<FileLoadFailure>) -> u64 {
        let mut last_generation = self
            .shared
            .last_generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generation = *last_generation + 1;
        let metrics = self.shared.metrics.for_table(&translation.table);
        let rotations = EndpointRotations::for_table(&translation.table);
        let snapshot = Snapshot {
            generation,
            table: translation.table,
            statuses: translation.statuses,
            load_errors,
            metrics,
            rotations,
        };
        self.shared.current.store(Some(Arc::new(snapshot)));
        *last_generation = generation;
        tracing::info!(generation, "configuration installed");
        generation
    }

    /// Installs a hand-built table with no statuses (tests, benchmarks).
    pub fn install_table(&self, table: RouteTable) -> u64 {
        self.install(
            Translation {
                table,
                statuses: Vec::new(),
            },
            Vec::new(),
        )
    }

    /// Records the addresses the proxy serves on (the first call wins).
    pub(crate) fn set_own_addresses(&self, addresses: Vec<SocketAddr>) {
        let _ = self.shared.own_addresses.set(addresses);
    }

    /// The live snapshot, if any configuration was installed yet.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.current.load_full()
    }

    /// Sets where [`Self::reload`] (and `POST /reload`) read the configuration from.
    pub fn set_source(&self, source: impl ConfigSource) {
        *self
            .shared
            .source
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(source));
    }

    /// Removes the configuration source once any load in progress has finished; later reloads
    /// fail with [`ReloadError::NoSource`]. A control plane calls this before it stops its data
    /// plane, so no load (which may drive the runtime) is left running while the runtime shuts
    /// down.
    pub async fn close_source(&self) {
        let state = self.clone();
        let closed = tokio::task::spawn_blocking(move || {
            state
                .shared
                .source
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
        })
        .await;
        // Dropped here, on the runtime, not inside the blocking task.
        drop(closed);
    }

    /// Reads the configuration source, translates it and installs the result; returns once the
    /// new snapshot is live.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        reload::reload(self).await
    }
}

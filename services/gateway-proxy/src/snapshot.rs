//! The unit of configuration the data plane serves from, and the boundary with the translator.
//!
//! A reload produces a [`Translation`] (route table + per-resource statuses); [`crate::ProxyState`]
//! wraps it in a [`Snapshot`] with a new generation and swaps it in atomically. Requests hold an
//! `Arc<Snapshot>` for their whole life, so a reload never disturbs a request in flight.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::metrics::SnapshotMetrics;
use crate::table::RouteTable;

/// Which Envoy the proxy stands in for; the translator builds a different table for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Gloo's `gateway-proxy`: serves Gloo VirtualServices, Upstreams and UpstreamGroups.
    Ingress,
    /// The App Mesh Envoy beside one workload, routing that workload's outbound calls.
    Sidecar {
        /// The App Mesh VirtualNode this sidecar belongs to.
        node: String,
        /// The Kubernetes namespace of that node.
        namespace: String,
    },
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ingress => f.write_str("ingress"),
            Self::Sidecar { node, namespace } => write!(f, "sidecar {namespace}/{node}"),
        }
    }
}

/// What the translator hands back for one set of resources.
#[derive(Debug)]
pub struct Translation {
    /// The compiled table to serve.
    pub table: RouteTable,
    /// One status per resource the translator looked at.
    pub statuses: Vec<ResourceStatus>,
}

/// Gloo / solo-kit style status of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceStatus {
    /// `"<Kind> <namespace>/<name>"`, e.g. `"VirtualService gloo-system/colorgateway"`.
    pub resource: String,
    /// The verdict.
    pub state: State,
    /// Why, for `Rejected` and `Warning`; empty otherwise.
    pub reasons: Vec<String>,
    /// `metadata.resourceVersion` of the version this status is about (the one just read, even
    /// when it was rejected), so callers can tell that a proxy has seen a change.
    pub resource_version: Option<String>,
}

/// solo-kit's `core.Status.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Not validated yet.
    Pending,
    /// Valid and in use.
    Accepted,
    /// Invalid; the last accepted version (if any) stays in use.
    Rejected,
    /// Partially accepted.
    Warning,
}

/// A configuration file that could not be read or parsed (its last good resources stay in use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the resource and field when known.
    pub message: String,
}

/// One live configuration: what every request is routed with.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every installed configuration, starting at 1.
    pub generation: u64,
    /// The compiled routing table.
    pub table: RouteTable,
    /// Per-resource statuses from the translation.
    pub statuses: Vec<ResourceStatus>,
    /// Files that failed to load for this generation.
    pub load_errors: Vec<LoadError>,
    /// Metric handles resolved for this table's routes and clusters.
    pub(crate) metrics: SnapshotMetrics,
}

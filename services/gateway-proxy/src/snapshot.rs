//! The unit of configuration the data plane serves from.
//!
//! A reload produces a [`routing::Translation`] (route table + per-resource statuses);
//! [`crate::ProxyState`] wraps it in a [`Snapshot`] with a new generation, the metric handles and
//! the round-robin positions for its table, and swaps it in atomically. Requests hold an
//! `Arc<Snapshot>` for their whole life, so a reload never disturbs a request in flight.

use std::path::PathBuf;

use http::uri::Authority;
use routing::ResourceStatus;
use routing::table::{RouteAction, RouteTable};
use serde::Serialize;

use crate::metrics::SnapshotMetrics;
use crate::rotation::EndpointRotations;

/// A configuration file (or directory) that could not be read or parsed this time, as `/status`
/// reports it under `load_errors`; the resources it last provided stay in use.
///
/// Not [`model::LoadError`]: that is one YAML document's parse error with its column and field;
/// this is the proxy's report about a whole file, also for failures no document caused (an
/// unreadable directory, a Kubernetes object that did not convert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLoadFailure {
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
    pub load_errors: Vec<FileLoadFailure>,
    /// Metric handles resolved for this table's routes and clusters.
    pub(crate) metrics: SnapshotMetrics,
    /// Where each cluster of this table is in its round robin.
    pub(crate) rotations: EndpointRotations,
}

impl Snapshot {
    /// The endpoint the next request to `destination` (an index into the weighted destinations
    /// of route `route` of virtual host `virtual_host`) goes to, in round-robin order per
    /// cluster; `None` when that cluster has no endpoints or the indices name no destination.
    pub fn next_endpoint(
        &self,
        virtual_host: usize,
        route: usize,
        destination: usize,
    ) -> Option<&Authority> {
        let entry = self
            .table
            .virtual_hosts()
            .get(virtual_host)?
            .routes
            .get(route)?;
        let RouteAction::Forward(forward) = &entry.action else {
            return None;
        };
        let (cluster, _) = forward.destinations.get(destination)?;
        self.rotations
            .get(virtual_host, route, destination)?
            .next_endpoint(cluster)
    }
}

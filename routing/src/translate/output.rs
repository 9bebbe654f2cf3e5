//! What a translation is for and what it hands back: the role translated for, the compiled table
//! and one status per resource.

use std::fmt;

use model::gloo::State;
use serde::Serialize;

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
    /// The verdict, in the same vocabulary Gloo writes onto its objects, so a status reported
    /// here and one written back to the cluster never need translating into each other.
    pub state: State,
    /// Why, for `Rejected` and `Warning`; empty otherwise.
    pub reasons: Vec<String>,
    /// `metadata.resourceVersion` of the version this status is about (the one just read, even
    /// when it was rejected), so callers can tell that a proxy has seen a change.
    pub resource_version: Option<String>,
}

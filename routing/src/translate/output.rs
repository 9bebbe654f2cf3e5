//! What a translation is for and what it hands back: the role translated for, the compiled table
//! and one status per resource.

use std::fmt;

use model::gloo::State;
use serde::Serialize;

use crate::table::RouteTable;

/// Which Envoy the proxy stands in for; the translator builds a different table for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The edge proxy: Gloo's `gateway-proxy` (Gloo VirtualServices, Upstreams and
    /// UpstreamGroups) and a Gateway API implementation (Gateways of a GatewayClass whose
    /// `controllerName` is [`model::gateway_api::CONTROLLER_NAME`], and their HTTPRoutes).
    Ingress {
        /// Serve only this Gateway (`--gateway NAMESPACE/NAME`); every Gateway of colormesh's
        /// classes when absent.
        gateway: Option<GatewayName>,
    },
    /// The App Mesh Envoy beside one workload, routing that workload's outbound calls.
    Sidecar {
        /// The App Mesh VirtualNode this sidecar belongs to.
        node: String,
        /// The Kubernetes namespace of that node.
        namespace: String,
    },
    /// A GAMMA mesh sidecar beside one workload: calls to a Service follow the HTTPRoutes whose
    /// parentRef is that Service; calls to a Service without such a route go to its endpoints.
    MeshSidecar {
        /// The namespace of the workload (consumer routes in it apply to its calls).
        namespace: String,
    },
}

impl Role {
    /// The edge role serving every Gateway of colormesh's classes.
    pub fn ingress() -> Self {
        Self::Ingress { gateway: None }
    }

    /// Whether this is the edge role.
    pub fn is_ingress(&self) -> bool {
        matches!(self, Self::Ingress { .. })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ingress { gateway: None } => f.write_str("ingress"),
            Self::Ingress {
                gateway: Some(gateway),
            } => write!(f, "ingress for Gateway {gateway}"),
            Self::Sidecar { node, namespace } => write!(f, "sidecar {namespace}/{node}"),
            Self::MeshSidecar { namespace } => write!(f, "mesh sidecar in {namespace}"),
        }
    }
}

/// A Gateway's `namespace/name`, as `--gateway` takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayName {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
}

impl std::str::FromStr for GatewayName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Self {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("expected NAMESPACE/NAME, got {text:?}")),
        }
    }
}

impl fmt::Display for GatewayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
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

/// The status of one resource: a verdict in Gloo / solo-kit's vocabulary for every resource, and
/// for Gateway API resources also the status the spec defines, as it is written on the object.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// For GatewayClasses, Gateways and HTTPRoutes: the `status` the Gateway API spec defines
    /// (conditions per Gateway and listener, per route parent), as this controller writes it.
    /// `state` summarises it: `Rejected` when the resource (or a parent's `Accepted`) is refused,
    /// `Warning` when it is accepted with a problem (`ResolvedRefs=False`), else `Accepted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiStatus>,
}

/// The Gateway API `status` of one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GatewayApiStatus {
    /// A GatewayClass's status.
    GatewayClass(model::gateway_api::GatewayClassStatus),
    /// A Gateway's status.
    Gateway(model::gateway_api::GatewayStatus),
    /// An HTTPRoute's status (its `parents`).
    Route(model::gateway_api::RouteStatus),
}

//! App Mesh controller custom resources (`appmesh.k8s.aws/v1beta2`): `Mesh`, `VirtualNode`,
//! `VirtualService` and `VirtualRouter`, following the controller's v1beta2 CRDs.
//!
//! What colormesh does not use (TLS, cloud map discovery, grpc/http2 routes, connection pools,
//! outlier detection, logging, status) is not modelled; such fields are accepted and reported
//! as ignored by the loader.

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ChoiceError;
use crate::choice::present;
use crate::gloo::schema_via;
use crate::k8s::LabelSelector;

/// Schema stand-in for `LabelSelector` (k8s-openapi's `schemars` feature is not enabled).
type LabelSelectorSchema = serde_json::Map<String, serde_json::Value>;

/// A reference to another App Mesh resource; an absent namespace means the referrer's.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// Name of the referenced resource.
    pub name: String,
    /// Namespace of the referenced resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Reference {
    /// A reference by name only (same namespace).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: None,
        }
    }

    /// The namespace, falling back to the referrer's.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default)
    }
}

/// `meshRef`, filled in by the controller's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshReference {
    /// Mesh name.
    pub name: String,
    /// Mesh UID.
    pub uid: String,
}

/// App Mesh `Duration{unit, value}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Duration {
    /// Unit of `value`.
    pub unit: DurationUnit,
    /// Amount (CRD minimum 0).
    pub value: u64,
}

/// Unit of an App Mesh duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DurationUnit {
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Milliseconds,
}

impl Duration {
    /// Seconds.
    pub fn seconds(value: u64) -> Self {
        Self {
            unit: DurationUnit::Seconds,
            value,
        }
    }

    /// Milliseconds.
    pub fn millis(value: u64) -> Self {
        Self {
            unit: DurationUnit::Milliseconds,
            value,
        }
    }

    /// As a standard library duration.
    pub fn to_std(self) -> std::time::Duration {
        match self.unit {
            DurationUnit::Seconds => std::time::Duration::from_secs(self.value),
            DurationUnit::Milliseconds => std::time::Duration::from_millis(self.value),
        }
    }
}

/// Listener protocol (`PortProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// gRPC.
    Grpc,
    /// HTTP/1.1.
    Http,
    /// HTTP/2.
    Http2,
    /// Plain TCP.
    Tcp,
}

/// A listener port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port, 1..=65535.
    pub port: u16,
    /// Protocol.
    pub protocol: PortProtocol,
}

// ---------------------------------------------------------------------------------------------
// Mesh
// ---------------------------------------------------------------------------------------------

/// Spec of an App Mesh `Mesh` (cluster scoped).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "appmesh.k8s.aws",
    version = "v1beta2",
    kind = "Mesh",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    /// AWS name (defaults to the object name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,
    /// Namespaces whose resources belong to this mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LabelSelectorSchema>")]
    pub namespace_selector: Option<LabelSelector>,
    /// Egress policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_filter: Option<EgressFilter>,
    /// AWS account owning the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
}

/// `egressFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressFilter {
    /// Allow or drop traffic to destinations outside the mesh.
    #[serde(rename = "type")]
    pub type_: EgressFilterType,
}

/// `egressFilter.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EgressFilterType {
    /// Any egress allowed.
    AllowAll,
    /// Only mesh destinations.
    DropAll,
}

// ---------------------------------------------------------------------------------------------
// VirtualNode
// ---------------------------------------------------------------------------------------------

/// Spec of an App Mesh `VirtualNode`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "appmesh.k8s.aws",
    version = "v1beta2",
    kind = "VirtualNode",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNodeSpec {
    /// AWS name (defaults to `<name>_<namespace>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,
    /// Pods that are members of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LabelSelectorSchema>")]
    pub pod_selector: Option<LabelSelector>,
    /// Inbound listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// How other nodes find this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_discovery: Option<ServiceDiscovery>,
    /// Virtual services this node may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
    /// The mesh (set by the webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_ref: Option<MeshReference>,
}

/// A virtual node listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Port and protocol.
    pub port_mapping: PortMapping,
    /// Active health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckPolicy>,
    /// Listener timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ListenerTimeout>,
}

/// `healthCheck` of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckPolicy {
    /// Successes before healthy (2..=10).
    pub healthy_threshold: u32,
    /// Interval in milliseconds (5000..=300000).
    pub interval_millis: u64,
    /// HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Port (defaults to the listener port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Protocol of the check.
    pub protocol: PortProtocol,
    /// Timeout in milliseconds (2000..=60000).
    pub timeout_millis: u64,
    /// Failures before unhealthy (2..=10).
    pub unhealthy_threshold: u32,
}

/// `listeners[].timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTimeout {
    /// HTTP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTimeout>,
    /// TCP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpTimeout>,
}

/// HTTP timeouts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpTimeout {
    /// Per-request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<Duration>,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
}

/// TCP timeouts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpTimeout {
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
}

/// `serviceDiscovery`; only DNS is modelled (`awsCloudMap` is accepted and ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDiscovery {
    /// DNS discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsServiceDiscovery>,
}

/// `serviceDiscovery.dns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsServiceDiscovery {
    /// Hostname (lowercase `n` in v1beta2).
    pub hostname: String,
    /// `ENDPOINTS` or `LOADBALANCER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
}

/// A backend of a virtual node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// The virtual service called.
    pub virtual_service: VirtualServiceBackend,
}

/// `backends[].virtualService`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceBackend {
    /// The virtual service, by Kubernetes reference.
    pub virtual_service_ref: Reference,
}

impl Backend {
    /// A backend on a virtual service reference.
    pub fn to_service(reference: Reference) -> Self {
        Self {
            virtual_service: VirtualServiceBackend {
                virtual_service_ref: reference,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VirtualService
// ---------------------------------------------------------------------------------------------

/// Spec of an App Mesh `VirtualService`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "appmesh.k8s.aws",
    version = "v1beta2",
    kind = "VirtualService",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// AWS name (defaults to `<name>.<namespace>`); the DNS name clients use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,
    /// What serves the virtual service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// The mesh (set by the webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_ref: Option<MeshReference>,
}

/// `provider`: exactly one of `virtualNode`, `virtualRouter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProvider", into = "RawProvider")]
pub enum Provider {
    /// `virtualNode.virtualNodeRef`.
    VirtualNode(Reference),
    /// `virtualRouter.virtualRouterRef`.
    VirtualRouter(Reference),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    virtual_node: Option<VirtualNodeProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    virtual_router: Option<VirtualRouterProvider>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualNodeProvider {
    virtual_node_ref: Reference,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VirtualRouterProvider {
    virtual_router_ref: Reference,
}

impl TryFrom<RawProvider> for Provider {
    type Error = ChoiceError;

    fn try_from(raw: RawProvider) -> Result<Self, ChoiceError> {
        match (raw.virtual_node, raw.virtual_router) {
            (Some(n), None) => Ok(Provider::VirtualNode(n.virtual_node_ref)),
            (None, Some(r)) => Ok(Provider::VirtualRouter(r.virtual_router_ref)),
            (n, r) => Err(ChoiceError::NotExactlyOne {
                what: "provider",
                present: present!("virtualNode" => n, "virtualRouter" => r),
                allowed: &["virtualNode", "virtualRouter"],
                note: None,
            }),
        }
    }
}

impl From<Provider> for RawProvider {
    fn from(provider: Provider) -> Self {
        match provider {
            Provider::VirtualNode(r) => RawProvider {
                virtual_node: Some(VirtualNodeProvider {
                    virtual_node_ref: r,
                }),
                virtual_router: None,
            },
            Provider::VirtualRouter(r) => RawProvider {
                virtual_node: None,
                virtual_router: Some(VirtualRouterProvider {
                    virtual_router_ref: r,
                }),
            },
        }
    }
}
schema_via!(Provider, RawProvider, "Provider");

// ---------------------------------------------------------------------------------------------
// VirtualRouter
// ---------------------------------------------------------------------------------------------

/// Spec of an App Mesh `VirtualRouter`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "appmesh.k8s.aws",
    version = "v1beta2",
    kind = "VirtualRouter",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualRouterSpec {
    /// AWS name (defaults to `<name>_<namespace>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,
    /// Listeners (the CRD requires at least one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<RouterListener>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// The mesh (set by the webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_ref: Option<MeshReference>,
}

/// A virtual router listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterListener {
    /// Port and protocol.
    pub port_mapping: PortMapping,
}

/// A route of a virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct Route {
    /// Route name.
    pub name: String,
    /// Priority, 0 (highest) ..= 1000; routes without one come after those with one.
    pub priority: Option<u32>,
    /// The route body.
    pub spec: RouteSpec,
}

/// The route kind: exactly one of `httpRoute`, `tcpRoute` (grpc and http2 routes are not
/// supported by colormesh).
// Routes are configuration read a handful of times; boxing would only make matching noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSpec {
    /// `httpRoute`.
    Http(HttpRoute),
    /// `tcpRoute`.
    Tcp(TcpRoute),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRoute {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_route: Option<HttpRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp_route: Option<TcpRoute>,
    #[serde(default, skip_serializing)]
    http2_route: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    grpc_route: Option<serde_json::Value>,
}

impl TryFrom<RawRoute> for Route {
    type Error = ChoiceError;

    fn try_from(raw: RawRoute) -> Result<Self, ChoiceError> {
        let spec = match (
            raw.http_route,
            raw.tcp_route,
            &raw.http2_route,
            &raw.grpc_route,
        ) {
            (Some(h), None, None, None) => RouteSpec::Http(h),
            (None, Some(t), None, None) => RouteSpec::Tcp(t),
            (h, t, h2, g) => {
                let unsupported = h2.is_some() || g.is_some();
                return Err(ChoiceError::NotExactlyOne {
                    what: "route",
                    present: present!("httpRoute" => h, "tcpRoute" => t, "http2Route" => h2, "grpcRoute" => g),
                    allowed: &["httpRoute", "tcpRoute"],
                    note: unsupported
                        .then_some("http2Route and grpcRoute are not supported by colormesh"),
                });
            }
        };
        Ok(Route {
            name: raw.name,
            priority: raw.priority,
            spec,
        })
    }
}

impl From<Route> for RawRoute {
    fn from(route: Route) -> Self {
        let (http_route, tcp_route) = match route.spec {
            RouteSpec::Http(h) => (Some(h), None),
            RouteSpec::Tcp(t) => (None, Some(t)),
        };
        RawRoute {
            name: route.name,
            priority: route.priority,
            http_route,
            tcp_route,
            http2_route: None,
            grpc_route: None,
        }
    }
}
schema_via!(Route, RawRoute, "Route");

/// `httpRoute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Request criteria.
    #[serde(rename = "match")]
    pub match_: HttpRouteMatch,
    /// Weighted targets.
    pub action: RouteAction,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<HttpRetryPolicy>,
    /// Route timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HttpTimeout>,
}

/// `httpRoute.match`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Exact or regex path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpRouteHeader>,
    /// HTTP method (`GET`, `POST`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryParameterMatch>,
    /// Listener port the route applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `match.path`: exactly one of `exact`, `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPathMatch", into = "RawPathMatch")]
pub enum PathMatch {
    /// Exact path.
    Exact(String),
    /// Regex over the path.
    Regex(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawPathMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

impl TryFrom<RawPathMatch> for PathMatch {
    type Error = ChoiceError;

    fn try_from(raw: RawPathMatch) -> Result<Self, ChoiceError> {
        match (raw.exact, raw.regex) {
            (Some(e), None) => Ok(PathMatch::Exact(e)),
            (None, Some(r)) => Ok(PathMatch::Regex(r)),
            (e, r) => Err(ChoiceError::NotExactlyOne {
                what: "path",
                present: present!("exact" => e, "regex" => r),
                allowed: &["exact", "regex"],
                note: None,
            }),
        }
    }
}

impl From<PathMatch> for RawPathMatch {
    fn from(path: PathMatch) -> Self {
        match path {
            PathMatch::Exact(e) => RawPathMatch {
                exact: Some(e),
                regex: None,
            },
            PathMatch::Regex(r) => RawPathMatch {
                exact: None,
                regex: Some(r),
            },
        }
    }
}
schema_via!(PathMatch, RawPathMatch, "PathMatch");

/// A header condition of an HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteHeader {
    /// Header name.
    pub name: String,
    /// How to match the value; absent means "header present".
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<HeaderMatchMethod>,
    /// Match when the condition does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
}

/// `HeaderMatchMethod`: exactly one of `exact`, `prefix`, `suffix`, `regex`, `range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawHeaderMatchMethod", into = "RawHeaderMatchMethod")]
pub enum HeaderMatchMethod {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Regex.
    Regex(String),
    /// Integer value in `[start, end)`.
    Range(MatchRange),
}

/// An integer range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchRange {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawHeaderMatchMethod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<MatchRange>,
}

impl TryFrom<RawHeaderMatchMethod> for HeaderMatchMethod {
    type Error = ChoiceError;

    fn try_from(raw: RawHeaderMatchMethod) -> Result<Self, ChoiceError> {
        match (raw.exact, raw.prefix, raw.suffix, raw.regex, raw.range) {
            (Some(v), None, None, None, None) => Ok(HeaderMatchMethod::Exact(v)),
            (None, Some(v), None, None, None) => Ok(HeaderMatchMethod::Prefix(v)),
            (None, None, Some(v), None, None) => Ok(HeaderMatchMethod::Suffix(v)),
            (None, None, None, Some(v), None) => Ok(HeaderMatchMethod::Regex(v)),
            (None, None, None, None, Some(r)) => Ok(HeaderMatchMethod::Range(r)),
            (e, p, s, x, r) => Err(ChoiceError::NotExactlyOne {
                what: "header match",
                present: present!("exact" => e, "prefix" => p, "suffix" => s, "regex" => x, "range" => r),
                allowed: &["exact", "prefix", "suffix", "regex", "range"],
                note: None,
            }),
        }
    }
}

impl From<HeaderMatchMethod> for RawHeaderMatchMethod {
    fn from(method: HeaderMatchMethod) -> Self {
        let mut raw = RawHeaderMatchMethod {
            exact: None,
            prefix: None,
            suffix: None,
            regex: None,
            range: None,
        };
        match method {
            HeaderMatchMethod::Exact(v) => raw.exact = Some(v),
            HeaderMatchMethod::Prefix(v) => raw.prefix = Some(v),
            HeaderMatchMethod::Suffix(v) => raw.suffix = Some(v),
            HeaderMatchMethod::Regex(v) => raw.regex = Some(v),
            HeaderMatchMethod::Range(r) => raw.range = Some(r),
        }
        raw
    }
}
schema_via!(HeaderMatchMethod, RawHeaderMatchMethod, "HeaderMatchMethod");

/// A query parameter condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryParameterMatch {
    /// Parameter name.
    pub name: String,
    /// Value condition; absent means "parameter present".
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<QueryParameterMatchMethod>,
}

/// `queryParameters[].match`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryParameterMatchMethod {
    /// Exact value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

/// `action` of a route: the weighted targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteAction {
    /// 1..=10 targets with weights 0..=100.
    #[serde(default)]
    pub weighted_targets: Vec<WeightedTarget>,
}

/// A weighted target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTarget {
    /// Target virtual node.
    pub virtual_node_ref: Reference,
    /// Relative weight, 0..=100.
    pub weight: u32,
    /// Target port, when the node has several listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl WeightedTarget {
    /// A target on a node in the same namespace.
    pub fn node(name: &str, weight: u32) -> Self {
        Self {
            virtual_node_ref: Reference::named(name),
            weight,
            port: None,
        }
    }
}

/// `httpRoute.retryPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetryPolicy {
    /// `server-error`, `gateway-error`, `client-error`, `stream-error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_retry_events: Vec<String>,
    /// `connection-error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_retry_events: Vec<String>,
    /// Maximum retries.
    pub max_retries: u32,
    /// Timeout of each retry.
    pub per_retry_timeout: Duration,
}

/// `tcpRoute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Weighted targets.
    pub action: RouteAction,
    /// Listener port condition.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<TcpRouteMatch>,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TcpTimeout>,
}

/// `tcpRoute.match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRouteMatch {
    /// Listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: &str = r#"
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata:
  name: colorteller-router
  namespace: appmesh-demo
spec:
  listeners:
    - portMapping: {port: 9080, protocol: http}
  routes:
    - name: color-route
      priority: 1
      httpRoute:
        match:
          prefix: /
          headers:
            - name: color-header
              match: {range: {start: 1, end: 5}}
              invert: true
          method: GET
          queryParameters: [{name: c, match: {exact: blue}}]
        action:
          weightedTargets:
            - virtualNodeRef: {name: colorteller}
              weight: 1
            - virtualNodeRef: {name: colorteller-blue, namespace: appmesh-demo}
              weight: 1
              port: 9080
        retryPolicy:
          httpRetryEvents: [server-error]
          maxRetries: 4
          perRetryTimeout: {unit: ms, value: 2000}
        timeout:
          perRequest: {unit: s, value: 60}
    - name: tcp
      tcpRoute:
        action:
          weightedTargets: [{virtualNodeRef: {name: tcpecho}, weight: 100}]
"#;

    #[test]
    fn virtual_router_parses() {
        let router: VirtualRouter = serde_norway::from_str(ROUTER).unwrap();
        assert_eq!(
            router.spec.listeners[0].port_mapping.protocol,
            PortProtocol::Http
        );
        let RouteSpec::Http(http) = &router.spec.routes[0].spec else {
            panic!()
        };
        assert_eq!(http.match_.prefix.as_deref(), Some("/"));
        assert_eq!(
            http.match_.headers[0].match_,
            Some(HeaderMatchMethod::Range(MatchRange { start: 1, end: 5 }))
        );
        assert_eq!(
            http.action.weighted_targets[1]
                .virtual_node_ref
                .namespace_or("x"),
            "appmesh-demo"
        );
        let retry = http.retry_policy.as_ref().unwrap();
        assert_eq!(
            retry.per_retry_timeout.to_std(),
            std::time::Duration::from_secs(2)
        );
        assert_eq!(
            http.timeout.as_ref().unwrap().per_request,
            Some(Duration::seconds(60))
        );
        assert!(matches!(router.spec.routes[1].spec, RouteSpec::Tcp(_)));
        let back: VirtualRouter =
            serde_norway::from_str(&serde_norway::to_string(&router).unwrap()).unwrap();
        assert_eq!(back, router);
    }

    #[test]
    fn route_kind_one_of() {
        let zero = serde_norway::from_str::<Route>("name: r")
            .unwrap_err()
            .to_string();
        assert!(
            zero.contains("route needs exactly one of httpRoute, tcpRoute, found none"),
            "{zero}"
        );
        let grpc = serde_norway::from_str::<Route>("name: r\ngrpcRoute: {}")
            .unwrap_err()
            .to_string();
        assert!(grpc.contains("grpcRoute are not supported"), "{grpc}");
        let two = serde_norway::from_str::<Route>(
            "name: r\ntcpRoute: {action: {weightedTargets: []}}\nhttpRoute: {match: {}, action: {weightedTargets: []}}",
        )
        .unwrap_err()
        .to_string();
        assert!(two.contains("found httpRoute and tcpRoute"), "{two}");
    }

    #[test]
    fn header_match_and_path_one_of() {
        let err = serde_norway::from_str::<HeaderMatchMethod>("{exact: a, suffix: b}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("found exact and suffix"), "{err}");
        let err = serde_norway::from_str::<PathMatch>("{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("path needs exactly one of exact, regex, found none"),
            "{err}"
        );
        assert_eq!(
            serde_norway::from_str::<PathMatch>("{regex: '^/c.*'}").unwrap(),
            PathMatch::Regex("^/c.*".into())
        );
    }

    #[test]
    fn provider_one_of() {
        let p: Provider =
            serde_norway::from_str("virtualRouter: {virtualRouterRef: {name: colorteller-router}}")
                .unwrap();
        assert_eq!(
            p,
            Provider::VirtualRouter(Reference::named("colorteller-router"))
        );
        let err = serde_norway::from_str::<Provider>(
            "virtualRouter: {virtualRouterRef: {name: a}}\nvirtualNode: {virtualNodeRef: {name: b}}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("found virtualNode and virtualRouter"), "{err}");
        let err = serde_norway::from_str::<Provider>("{}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("found none"), "{err}");
    }

    #[test]
    fn mesh_and_node_parse() {
        let mesh: Mesh = serde_norway::from_str(
            "apiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\nmetadata: {name: color-mesh}\nspec:\n  namespaceSelector: {matchLabels: {mesh: color-mesh}}\n  egressFilter: {type: ALLOW_ALL}\n",
        )
        .unwrap();
        assert_eq!(
            mesh.spec.egress_filter.unwrap().type_,
            EgressFilterType::AllowAll
        );
        assert_eq!(
            mesh.spec.namespace_selector.unwrap().match_labels.unwrap()["mesh"],
            "color-mesh"
        );
        let node: VirtualNode = serde_norway::from_str(
            "apiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualNode\nmetadata: {name: colorgateway, namespace: appmesh-demo}\nspec:\n  podSelector: {matchLabels: {app: colorgateway}}\n  listeners:\n  - portMapping: {port: 9080, protocol: http}\n    timeout: {http: {perRequest: {unit: ms, value: 1500}, idle: {unit: s, value: 10}}}\n  serviceDiscovery: {dns: {hostname: colorgateway.appmesh-demo.svc.cluster.local}}\n  backends:\n  - virtualService: {virtualServiceRef: {name: colorteller.appmesh-demo}}\n",
        )
        .unwrap();
        let timeout = node.spec.listeners[0]
            .timeout
            .as_ref()
            .unwrap()
            .http
            .as_ref()
            .unwrap();
        assert_eq!(
            timeout.per_request.unwrap().to_std(),
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(
            node.spec.service_discovery.unwrap().dns.unwrap().hostname,
            "colorgateway.appmesh-demo.svc.cluster.local"
        );
        assert_eq!(
            node.spec.backends[0]
                .virtual_service
                .virtual_service_ref
                .name,
            "colorteller.appmesh-demo"
        );
    }

    #[test]
    fn bad_port_and_unit_are_rejected() {
        let err = serde_norway::from_str::<PortMapping>("{port: 70000, protocol: http}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("70000"), "{err}");
        let err = serde_norway::from_str::<Duration>("{unit: m, value: 1}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `m`"), "{err}");
    }
}

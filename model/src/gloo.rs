//! Gloo Edge 1.x custom resources: `VirtualService` (gateway.solo.io/v1), `Upstream` and
//! `UpstreamGroup` (gloo.solo.io/v1), in the shapes of the Gloo 1.x CRDs.
//!
//! Protobuf "oneof" fields that colormesh acts on are Rust enums. They are read through a
//! private "raw" struct holding every alternative as an `Option`, so zero or two alternatives
//! give an error naming the alternatives instead of serde's generic enum message.

use std::collections::BTreeMap;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ChoiceError;
use crate::choice::present;
pub use crate::duration::{DurationParseError, ProtoDuration};

/// The namespace Gloo is installed into, where its discovery writes Upstreams and under which its
/// gateway reports statuses (`status.statuses.gloo-system`).
pub const GLOO_NAMESPACE: &str = "gloo-system";

/// Implements `JsonSchema` for a type that is (de)serialised through a raw twin, by delegating.
macro_rules! schema_via {
    ($public:ty, $raw:ty, $name:literal) => {
        impl schemars::JsonSchema for $public {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <$raw as schemars::JsonSchema>::json_schema(generator)
            }
        }
    };
}
pub(crate) use schema_via;

/// A reference to a namespaced Gloo resource (`core.solo.io.ResourceRef`). An absent namespace
/// means "the namespace of the referring resource".
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// Resource name.
    pub name: String,
    /// Resource namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ResourceRef {
    /// A reference with an explicit namespace.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        }
    }

    /// The namespace, falling back to the referring resource's namespace.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default)
    }
}

// ---------------------------------------------------------------------------------------------
// VirtualService
// ---------------------------------------------------------------------------------------------

/// Spec of a Gloo `VirtualService` (gateway.solo.io/v1).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gateway.solo.io",
    version = "v1",
    kind = "VirtualService",
    namespaced,
    status = "GlooStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Display name shown by `glooctl get vs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The virtual host; an absent one reads as an empty host (no domains, no routes).
    #[serde(default)]
    pub virtual_host: VirtualHost,
}

/// Domains and the ordered route table of a virtual service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualHost {
    /// Host header patterns; empty means `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Routes, evaluated in order; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// One route of a virtual host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct Route {
    /// Optional route name.
    pub name: Option<String>,
    /// Matchers; the route matches when any matcher does. Empty means "prefix `/`".
    pub matchers: Vec<Matcher>,
    /// What to do with a matching request.
    pub action: Action,
    /// Route options (rewrites, timeouts, retries, headers).
    pub options: Option<RouteOptions>,
}

/// The action of a route (the `action` oneof of `gateway.solo.io.Route`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `routeAction`: forward to upstreams.
    Route(RouteAction),
    /// `directResponseAction`: answer from the proxy.
    DirectResponse(DirectResponseAction),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route_action: Option<RouteAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direct_response_action: Option<DirectResponseAction>,
    // Known Gloo actions colormesh does not implement: read so that a route using one gets a
    // precise error instead of "no action".
    #[serde(default, skip_serializing)]
    redirect_action: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    delegate_action: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    options: Option<RouteOptions>,
}

impl TryFrom<RawRoute> for Route {
    type Error = ChoiceError;

    fn try_from(raw: RawRoute) -> Result<Self, ChoiceError> {
        for (field, value) in [
            ("redirectAction", &raw.redirect_action),
            ("delegateAction", &raw.delegate_action),
        ] {
            if value.is_some() {
                return Err(ChoiceError::Unsupported {
                    field,
                    instead: "routeAction or directResponseAction",
                });
            }
        }
        let action = match (raw.route_action, raw.direct_response_action) {
            (Some(route), None) => Action::Route(route),
            (None, Some(direct)) => Action::DirectResponse(direct),
            (route, direct) => {
                return Err(ChoiceError::NotExactlyOne {
                    what: "route",
                    present: present!("routeAction" => route, "directResponseAction" => direct),
                    allowed: &["routeAction", "directResponseAction"],
                    note: None,
                });
            }
        };
        Ok(Route {
            name: raw.name,
            matchers: raw.matchers,
            action,
            options: raw.options,
        })
    }
}

impl From<Route> for RawRoute {
    fn from(route: Route) -> Self {
        let (route_action, direct_response_action) = match route.action {
            Action::Route(r) => (Some(r), None),
            Action::DirectResponse(d) => (None, Some(d)),
        };
        RawRoute {
            name: route.name,
            matchers: route.matchers,
            route_action,
            direct_response_action,
            redirect_action: None,
            delegate_action: None,
            options: route.options,
        }
    }
}
schema_via!(Route, RawRoute, "Route");

/// A request matcher (`matchers.core.gloo.solo.io.Matcher`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMatcher", into = "RawMatcher")]
pub struct Matcher {
    /// The path condition; `None` matches every path (Gloo treats it as prefix `/`).
    pub path: Option<PathMatcher>,
    /// Path matching is case sensitive unless this is `Some(false)`.
    pub case_sensitive: Option<bool>,
    /// Header conditions; all must hold.
    pub headers: Vec<HeaderMatcher>,
    /// Query parameter conditions; all must hold.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Allowed HTTP methods; empty allows any.
    pub methods: Vec<String>,
}

/// The path specifier of a matcher: exactly one of `prefix`, `exact`, `regex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatcher {
    /// Plain string prefix (so `/appmesh/color` also matches `/appmesh/colorful`).
    Prefix(String),
    /// Whole path equality (query excluded).
    Exact(String),
    /// RE2 regex that must match the whole path (query excluded).
    Regex(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawMatcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_sensitive: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    query_parameters: Vec<QueryParameterMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    methods: Vec<String>,
}

impl TryFrom<RawMatcher> for Matcher {
    type Error = ChoiceError;

    fn try_from(raw: RawMatcher) -> Result<Self, ChoiceError> {
        let path = match (raw.prefix, raw.exact, raw.regex) {
            (None, None, None) => None,
            (Some(p), None, None) => Some(PathMatcher::Prefix(p)),
            (None, Some(e), None) => Some(PathMatcher::Exact(e)),
            (None, None, Some(r)) => Some(PathMatcher::Regex(r)),
            (p, e, r) => {
                return Err(ChoiceError::MoreThanOne {
                    what: "matcher",
                    present: present!("prefix" => p, "exact" => e, "regex" => r),
                    allowed: &["prefix", "exact", "regex"],
                });
            }
        };
        Ok(Matcher {
            path,
            case_sensitive: raw.case_sensitive,
            headers: raw.headers,
            query_parameters: raw.query_parameters,
            methods: raw.methods,
        })
    }
}

impl From<Matcher> for RawMatcher {
    fn from(m: Matcher) -> Self {
        let (mut prefix, mut exact, mut regex) = (None, None, None);
        match m.path {
            Some(PathMatcher::Prefix(p)) => prefix = Some(p),
            Some(PathMatcher::Exact(e)) => exact = Some(e),
            Some(PathMatcher::Regex(r)) => regex = Some(r),
            None => {}
        }
        RawMatcher {
            prefix,
            exact,
            regex,
            case_sensitive: m.case_sensitive,
            headers: m.headers,
            query_parameters: m.query_parameters,
            methods: m.methods,
        }
    }
}
schema_via!(Matcher, RawMatcher, "Matcher");

impl Matcher {
    /// A matcher on a path prefix only.
    pub fn prefix(prefix: &str) -> Self {
        Self {
            path: Some(PathMatcher::Prefix(prefix.to_owned())),
            ..Self::default()
        }
    }
}

/// A header condition (`matchers.core.gloo.solo.io.HeaderMatcher`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatcher {
    /// Header name.
    pub name: String,
    /// Expected value; absent means "header present".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `value` is a regex.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
    /// Match when the condition does not hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert_match: bool,
}

/// A query parameter condition (`matchers.core.gloo.solo.io.QueryParameterMatcher`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryParameterMatcher {
    /// Parameter name.
    pub name: String,
    /// Expected value; absent means "parameter present".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `value` is a regex.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
}

/// Where a `routeAction` sends traffic: exactly one of `single`, `multi`, `upstreamGroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRouteAction", into = "RawRouteAction")]
pub enum RouteAction {
    /// `single`: one destination.
    Single(Destination),
    /// `multi`: weighted destinations listed inline.
    Multi(MultiDestination),
    /// `upstreamGroup`: weighted destinations in an `UpstreamGroup` resource.
    UpstreamGroup(ResourceRef),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRouteAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    single: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi: Option<MultiDestination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream_group: Option<ResourceRef>,
}

impl TryFrom<RawRouteAction> for RouteAction {
    type Error = ChoiceError;

    fn try_from(raw: RawRouteAction) -> Result<Self, ChoiceError> {
        match (raw.single, raw.multi, raw.upstream_group) {
            (Some(s), None, None) => Ok(RouteAction::Single(s)),
            (None, Some(m), None) => Ok(RouteAction::Multi(m)),
            (None, None, Some(g)) => Ok(RouteAction::UpstreamGroup(g)),
            (s, m, g) => Err(ChoiceError::NotExactlyOne {
                what: "routeAction",
                present: present!("single" => s, "multi" => m, "upstreamGroup" => g),
                allowed: &["single", "multi", "upstreamGroup"],
                note: None,
            }),
        }
    }
}

impl From<RouteAction> for RawRouteAction {
    fn from(action: RouteAction) -> Self {
        let mut raw = RawRouteAction {
            single: None,
            multi: None,
            upstream_group: None,
        };
        match action {
            RouteAction::Single(s) => raw.single = Some(s),
            RouteAction::Multi(m) => raw.multi = Some(m),
            RouteAction::UpstreamGroup(g) => raw.upstream_group = Some(g),
        }
        raw
    }
}
schema_via!(RouteAction, RawRouteAction, "RouteAction");

/// A destination. Only `upstream` destinations are modelled (not `kube` or `consul`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The target upstream.
    pub upstream: ResourceRef,
}

/// Inline weighted destinations (`multi`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiDestination {
    /// The destinations and their relative weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<WeightedDestination>,
}

/// A destination with a relative weight. An unset weight counts as 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDestination {
    /// The destination.
    pub destination: Destination,
    /// Relative weight (`google.protobuf.UInt32Value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl WeightedDestination {
    /// A destination to `namespace/name` with a weight.
    pub fn upstream(namespace: &str, name: &str, weight: u32) -> Self {
        Self {
            destination: Destination {
                upstream: ResourceRef::new(namespace, name),
            },
            weight: Some(weight),
        }
    }

    /// The weight, with unset read as 0 as Gloo does.
    pub fn effective_weight(&self) -> u32 {
        self.weight.unwrap_or(0)
    }
}

/// `directResponseAction`: the proxy answers itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectResponseAction {
    /// HTTP status code.
    pub status: u32,
    /// Response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Route options colormesh implements (`gloo.solo.io.RouteOptions` subset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteOptions {
    /// Replace the matched prefix with this string. `""` is ignored, as in Gloo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Regex based path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Upstream request timeout (Gloo's default is 15s, `0s` disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ProtoDuration>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Header additions and removals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_manipulation: Option<HeaderManipulation>,
}

/// `regexRewrite`: replace what `pattern` matches with `substitution`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    /// The pattern.
    pub pattern: RegexPattern,
    /// Replacement; `\1` style capture references are allowed.
    #[serde(default)]
    pub substitution: String,
}

/// A regex (`RegexMatcher`; the `googleRe2` options are not modelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexPattern {
    /// RE2 syntax.
    pub regex: String,
}

/// `retries` (`retries.options.gloo.solo.io.RetryPolicy` subset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Envoy `retry_on` conditions, comma separated (`5xx,connect-failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Number of retries (Gloo's default is 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Timeout of each try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<ProtoDuration>,
}

/// `headerManipulation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderManipulation {
    /// Headers added to the upstream request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Header names removed from the upstream request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Headers added to the downstream response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Header names removed from the downstream response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
}

/// A header to add; `append` (default true) keeps existing values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueOption {
    /// The header.
    pub header: HeaderValue,
    /// Append to existing values instead of replacing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

/// A header key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValue {
    /// Header name.
    pub key: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Upstream and UpstreamGroup
// ---------------------------------------------------------------------------------------------

/// Spec of a Gloo `Upstream` (gloo.solo.io/v1).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gloo.solo.io",
    version = "v1",
    kind = "Upstream",
    namespaced,
    status = "GlooStatus",
    derive = "PartialEq"
)]
#[serde(try_from = "RawUpstreamSpec", into = "RawUpstreamSpec")]
pub struct UpstreamSpec {
    /// The upstream type (the `upstream_type` oneof).
    pub upstream_type: UpstreamType,
    /// Labels copied from the discovered service.
    pub discovery_metadata: Option<DiscoveryMetadata>,
}

/// The kinds of upstream colormesh routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamType {
    /// `kube`: pods behind a Kubernetes service port.
    Kube(KubeUpstream),
    /// `static`: fixed host:port list.
    Static(StaticUpstream),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawUpstreamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kube: Option<KubeUpstream>,
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    static_: Option<StaticUpstream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discovery_metadata: Option<DiscoveryMetadata>,
}

impl TryFrom<RawUpstreamSpec> for UpstreamSpec {
    type Error = ChoiceError;

    fn try_from(raw: RawUpstreamSpec) -> Result<Self, ChoiceError> {
        let upstream_type = match (raw.kube, raw.static_) {
            (Some(k), None) => UpstreamType::Kube(k),
            (None, Some(s)) => UpstreamType::Static(s),
            (k, s) => {
                return Err(ChoiceError::NotExactlyOne {
                    what: "upstream spec (colormesh supports kube and static upstreams)",
                    present: present!("kube" => k, "static" => s),
                    allowed: &["kube", "static"],
                    note: None,
                });
            }
        };
        Ok(UpstreamSpec {
            upstream_type,
            discovery_metadata: raw.discovery_metadata,
        })
    }
}

impl From<UpstreamSpec> for RawUpstreamSpec {
    fn from(spec: UpstreamSpec) -> Self {
        let (kube, static_) = match spec.upstream_type {
            UpstreamType::Kube(k) => (Some(k), None),
            UpstreamType::Static(s) => (None, Some(s)),
        };
        RawUpstreamSpec {
            kube,
            static_,
            discovery_metadata: spec.discovery_metadata,
        }
    }
}
schema_via!(UpstreamSpec, RawUpstreamSpec, "UpstreamSpec");

/// `kube` upstream: a service port, endpoints are the selected pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeUpstream {
    /// Service name.
    pub service_name: String,
    /// Service namespace.
    pub service_namespace: String,
    /// Service port (not the target port).
    pub service_port: u32,
    /// Pod selector (the service's selector, or a discovered label set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// `static` upstream: a fixed list of hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticUpstream {
    /// The hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<StaticHost>,
}

/// One static host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticHost {
    /// IP address or hostname.
    pub addr: String,
    /// Port.
    pub port: u32,
}

/// `discoveryMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryMetadata {
    /// Labels of the discovered service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Spec of a Gloo `UpstreamGroup` (gloo.solo.io/v1).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gloo.solo.io",
    version = "v1",
    kind = "UpstreamGroup",
    namespaced,
    status = "GlooStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamGroupSpec {
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<WeightedDestination>,
}

impl UpstreamGroupSpec {
    /// Sum of the effective weights (Gloo's `total_weight`).
    pub fn total_weight(&self) -> u64 {
        self.destinations
            .iter()
            .map(|d| u64::from(d.effective_weight()))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// Gloo's resource status: one entry per reporting namespace,
/// `status: {statuses: {<namespace>: {state, reason, reportedBy}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlooStatus {
    /// Entries keyed by the namespace of the reporting controller.
    #[serde(default)]
    pub statuses: BTreeMap<String, NamespacedStatus>,
}

/// One reporter's verdict on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedStatus {
    /// Validation state.
    pub state: State,
    /// Why (for Rejected and Warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Name of the reporting component (`gateway`, `gloo`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<String>,
}

/// solo-kit `core.Status.State`, written by name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum State {
    /// Not validated yet.
    Pending,
    /// Valid.
    Accepted,
    /// Invalid.
    Rejected,
    /// Partially accepted.
    Warning,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Pending => "Pending",
            State::Accepted => "Accepted",
            State::Rejected => "Rejected",
            State::Warning => "Warning",
        })
    }
}

impl GlooStatus {
    /// Records (or replaces) the entry of the reporter running in `reporter_namespace`.
    pub fn set(
        &mut self,
        reporter_namespace: &str,
        state: State,
        reason: Option<String>,
        reported_by: &str,
    ) {
        self.statuses.insert(
            reporter_namespace.to_owned(),
            NamespacedStatus {
                state,
                reason,
                reported_by: Some(reported_by.to_owned()),
            },
        );
    }

    /// The entry of the reporter running in `reporter_namespace`.
    pub fn get(&self, reporter_namespace: &str) -> Option<&NamespacedStatus> {
        self.statuses.get(reporter_namespace)
    }

    /// Sets this reporter's entry on an optional status, creating the status if needed.
    pub fn set_on(
        status: &mut Option<GlooStatus>,
        reporter_namespace: &str,
        state: State,
        reason: Option<String>,
        reported_by: &str,
    ) {
        status.get_or_insert_with(GlooStatus::default).set(
            reporter_namespace,
            state,
            reason,
            reported_by,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(yaml: &str) -> Result<VirtualService, serde_norway::Error> {
        serde_norway::from_str(yaml)
    }

    const WALKTHROUGH_VS: &str = r#"
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: colorgateway
  namespace: gloo-system
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers:
      - prefix: /appmesh/color
      routeAction:
        upstreamGroup:
          name: upstreamgroup-gateway
          namespace: gloo-system
      options:
        prefixRewrite: /color
"#;

    #[test]
    fn walkthrough_virtual_service_parses() {
        let vs = vs(WALKTHROUGH_VS).unwrap();
        assert_eq!(vs.metadata.name.as_deref(), Some("colorgateway"));
        let route = &vs.spec.virtual_host.routes[0];
        assert_eq!(route.matchers, vec![Matcher::prefix("/appmesh/color")]);
        assert_eq!(
            route.action,
            Action::Route(RouteAction::UpstreamGroup(ResourceRef::new(
                "gloo-system",
                "upstreamgroup-gateway"
            )))
        );
        assert_eq!(
            route.options.as_ref().unwrap().prefix_rewrite.as_deref(),
            Some("/color")
        );
        assert_eq!(vs.spec.virtual_host.domains, vec!["*"]);
    }

    #[test]
    fn route_with_no_action_is_an_error() {
        let err = vs("apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost:\n    routes:\n    - matchers: [{prefix: /}]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "route needs exactly one of routeAction, directResponseAction, found none"
            ),
            "{err}"
        );
    }

    #[test]
    fn route_with_two_actions_is_an_error() {
        let err = vs("apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost:\n    routes:\n    - routeAction: {single: {upstream: {name: u}}}\n      directResponseAction: {status: 200}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("found routeAction and directResponseAction"),
            "{err}"
        );
    }

    #[test]
    fn route_action_one_of_is_enforced() {
        let two = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost:\n    routes:\n    - routeAction: {single: {upstream: {name: u}}, upstreamGroup: {name: g}}\n";
        let err = vs(two).unwrap_err().to_string();
        assert!(err.contains("routeAction needs exactly one of single, multi, upstreamGroup, found single and upstreamGroup"), "{err}");
        let zero = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost:\n    routes:\n    - routeAction: {}\n";
        let err = vs(zero).unwrap_err().to_string();
        assert!(err.contains("found none"), "{err}");
    }

    #[test]
    fn unsupported_action_is_named() {
        let yaml = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost:\n    routes:\n    - redirectAction: {hostRedirect: x}\n";
        let err = vs(yaml).unwrap_err().to_string();
        assert!(err.contains("redirectAction is not supported"), "{err}");
    }

    #[test]
    fn matcher_path_one_of() {
        let m: Matcher =
            serde_norway::from_str("{headers: [{name: x-canary, value: 'true'}]}").unwrap();
        assert_eq!(m.path, None);
        assert_eq!(m.headers[0].name, "x-canary");
        let m: Matcher =
            serde_norway::from_str("{regex: '/color/.*', caseSensitive: false}").unwrap();
        assert_eq!(m.path, Some(PathMatcher::Regex("/color/.*".into())));
        assert_eq!(m.case_sensitive, Some(false));
        let err = serde_norway::from_str::<Matcher>("{prefix: /a, exact: /b}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only one of prefix, exact, regex, found prefix and exact"),
            "{err}"
        );
    }

    #[test]
    fn full_route_options_parse() {
        let yaml = r#"
name: full
matchers:
- exact: /color
  headers: [{name: x-v, value: '2', regex: true, invertMatch: true}]
  queryParameters: [{name: q, value: 'a.*', regex: true}]
  methods: [GET, POST]
routeAction:
  multi:
    destinations:
    - destination: {upstream: {name: a, namespace: gloo-system}}
      weight: 80
    - destination: {upstream: {name: b}}
options:
  regexRewrite: {pattern: {regex: '^/a/(.*)$'}, substitution: '/\1'}
  timeout: 0.5s
  retries: {retryOn: 5xx, numRetries: 3, perTryTimeout: 1.000340012s}
  headerManipulation:
    requestHeadersToAdd: [{header: {key: x-a, value: '1'}, append: false}]
    requestHeadersToRemove: [x-b]
    responseHeadersToAdd: [{header: {key: x-c, value: '2'}}]
    responseHeadersToRemove: [server]
"#;
        let route: Route = serde_norway::from_str(yaml).unwrap();
        let Action::Route(RouteAction::Multi(multi)) = &route.action else {
            panic!("expected multi: {route:?}")
        };
        assert_eq!(multi.destinations[0].effective_weight(), 80);
        assert_eq!(multi.destinations[1].weight, None);
        assert_eq!(multi.destinations[1].effective_weight(), 0);
        let options = route.options.as_ref().unwrap();
        assert_eq!(
            options.timeout.unwrap().0,
            std::time::Duration::from_millis(500)
        );
        let retries = options.retries.as_ref().unwrap();
        assert_eq!(retries.num_retries, Some(3));
        assert_eq!(
            retries.per_try_timeout.unwrap().0,
            std::time::Duration::new(1, 340_012)
        );
        let hm = options.header_manipulation.as_ref().unwrap();
        assert_eq!(hm.request_headers_to_add[0].append, Some(false));
        assert_eq!(hm.response_headers_to_remove, vec!["server"]);
        let m = &route.matchers[0];
        assert!(m.headers[0].regex && m.headers[0].invert_match);
        assert_eq!(m.methods, vec!["GET", "POST"]);
        // Round trip through YAML keeps everything.
        let back: Route =
            serde_norway::from_str(&serde_norway::to_string(&route).unwrap()).unwrap();
        assert_eq!(back, route);
    }

    #[test]
    fn direct_response_parses() {
        let route: Route =
            serde_norway::from_str("directResponseAction: {status: 404, body: nope}").unwrap();
        assert_eq!(
            route.action,
            Action::DirectResponse(DirectResponseAction {
                status: 404,
                body: Some("nope".into())
            })
        );
        assert!(route.matchers.is_empty());
    }

    #[test]
    fn upstream_types() {
        let kube: Upstream = serde_norway::from_str(
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}\nspec:\n  discoveryMetadata: {labels: {app: colorgateway}}\n  kube: {serviceName: colorgateway, serviceNamespace: appmesh-demo, servicePort: 9080, selector: {app: colorgateway}}\n",
        )
        .unwrap();
        let UpstreamType::Kube(k) = &kube.spec.upstream_type else {
            panic!()
        };
        assert_eq!(
            (k.service_name.as_str(), k.service_port),
            ("colorgateway", 9080)
        );
        assert_eq!(
            kube.spec.discovery_metadata.unwrap().labels["app"],
            "colorgateway"
        );
        let stat: UpstreamSpec =
            serde_norway::from_str("static: {hosts: [{addr: 127.0.0.1, port: 9080}]}").unwrap();
        assert_eq!(
            stat.upstream_type,
            UpstreamType::Static(StaticUpstream {
                hosts: vec![StaticHost {
                    addr: "127.0.0.1".into(),
                    port: 9080
                }]
            })
        );
        let err = serde_norway::from_str::<UpstreamSpec>("aws: {region: us-west-2}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("found none"), "{err}");
        let err = serde_norway::from_str::<UpstreamSpec>(
            "static: {hosts: []}\nkube: {serviceName: a, serviceNamespace: b, servicePort: 1}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("found kube and static"), "{err}");
    }

    #[test]
    fn upstream_group_weights() {
        let ug: UpstreamGroup = serde_norway::from_str(
            "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: upstreamgroup-gateway, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}}\n    weight: 80\n  - destination: {upstream: {name: appmesh-demo-colorgatewayv2-9080, namespace: gloo-system}}\n    weight: 20\n  - destination: {upstream: {name: unweighted}}\n",
        )
        .unwrap();
        assert_eq!(ug.spec.total_weight(), 100);
        assert_eq!(ug.spec.destinations[2].weight, None);
        assert_eq!(
            ug.spec.destinations[2]
                .destination
                .upstream
                .namespace_or("gloo-system"),
            "gloo-system"
        );
    }

    #[test]
    fn status_shape_and_helper() {
        let mut vs = vs(WALKTHROUGH_VS).unwrap();
        GlooStatus::set_on(
            &mut vs.status,
            "gloo-system",
            State::Pending,
            None,
            "gateway",
        );
        GlooStatus::set_on(
            &mut vs.status,
            "gloo-system",
            State::Warning,
            Some("upstream not found".into()),
            "gateway",
        );
        let json = serde_json::to_value(&vs).unwrap();
        assert_eq!(
            json["status"],
            serde_json::json!({"statuses": {"gloo-system": {"state": "Warning", "reason": "upstream not found", "reportedBy": "gateway"}}})
        );
        let back: VirtualService = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.status.unwrap().get("gloo-system").unwrap().state,
            State::Warning
        );
        assert_eq!(State::Rejected.to_string(), "Rejected");
    }
}

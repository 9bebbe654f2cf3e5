//! Kubernetes Gateway API resources (`gateway.networking.k8s.io`, v1.6.1): `GatewayClass`,
//! `Gateway`, `HTTPRoute` (with the experimental channel's `retry`) and `ReferenceGrant`, in the
//! shapes of the official CRDs kept in `../shared/schemas/gateway-api`.
//!
//! The types are written here rather than taken from the `gateway-api` crate: that crate builds on
//! kube 4 and k8s-openapi 0.28, and the workspace is on kube 5 and k8s-openapi 0.29; a second
//! k8s-openapi would double the largest crate of the build. Fields colormesh does not act on are
//! still modelled when a route's meaning depends on them (a filter type it cannot apply must reject
//! the rule, not vanish), and everything else lands in the loader's ignored fields.
//!
//! Enumerations the CRD closes (`path.type`, `headers[].type`, `method`, `scheme`, ...) are Rust
//! enums, so a wrong value fails at load time with the field path. A filter is an enum read through
//! a raw twin holding every alternative, so `type: URLRewrite` without `urlRewrite` (the CRD's CEL
//! rule) is an error naming the filter.

use std::fmt;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gloo::schema_via;
use crate::k8s::LabelSelector;

/// The API group of every resource here.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The controller name of colormesh's own gateways (gateway-proxy, and envoy-control in front of
/// real Envoy): a `GatewayClass` with this `controllerName` is served by them.
pub const CONTROLLER_NAME: &str = "colormesh.dev/gateway-proxy";

// ---------------------------------------------------------------------------------------------
// GatewayClass
// ---------------------------------------------------------------------------------------------

/// Spec of a `GatewayClass` (cluster scoped): which controller implements Gateways of this class.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GatewayClass",
    status = "GatewayClassStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller, as a domain-prefixed path (`colormesh.dev/gateway-proxy`).
    pub controller_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Status of a `GatewayClass`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    /// `Accepted` (and `SupportedVersion`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

/// Spec of a `Gateway`: the listeners of one proxy deployment.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The `GatewayClass` this Gateway belongs to.
    pub gateway_class_name: String,
    /// Listeners; names are unique within the Gateway.
    pub listeners: Vec<Listener>,
}

/// One listener: a port, a protocol, an optional hostname and which routes may attach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Section name that routes' `parentRefs[].sectionName` refer to.
    pub name: String,
    /// Host the listener serves: a precise name or a `*.` wildcard; absent means every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port.
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed protocol.
    pub protocol: String,
    /// Which routes may attach; the CRD's default is routes of the Gateway's own namespace.
    #[serde(default)]
    pub allowed_routes: AllowedRoutes,
}

/// `allowedRoutes` of a listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// From which namespaces.
    #[serde(default)]
    pub namespaces: RouteNamespaces,
    /// Which route kinds; empty means the kinds the listener's protocol supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (default), `All` or `Selector`.
    #[serde(default)]
    pub from: FromNamespaces,
    /// The namespaces' label selector, for `from: Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub selector: Option<LabelSelector>,
}

/// Where attached routes may live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FromNamespaces {
    /// Every namespace.
    All,
    /// Namespaces whose labels match the selector.
    Selector,
    /// The Gateway's own namespace.
    #[default]
    Same,
}

/// A route kind, for `allowedRoutes.kinds` and listener statuses' `supportedKinds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// The API group; defaults to `gateway.networking.k8s.io`.
    #[serde(default = "default_group")]
    pub group: String,
    /// The kind (`HTTPRoute`).
    pub kind: String,
}

fn default_group() -> String {
    GROUP.to_owned()
}

/// Status of a `Gateway`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `Accepted`, `Programmed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One entry per listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

/// Status of one listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The route kinds it accepts.
    #[serde(default)]
    pub supported_kinds: Vec<RouteGroupKind>,
    /// How many routes are attached (accepted) to it.
    pub attached_routes: i32,
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------------------------
// HTTPRoute
// ---------------------------------------------------------------------------------------------

/// Spec of an `HTTPRoute`.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (and listeners) or, for GAMMA, the Services this route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Hosts the route serves; empty means the listener's hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules; the CRD's default is one rule matching every path.
    #[serde(default = "default_rules")]
    pub rules: Vec<HttpRouteRule>,
}

fn default_rules() -> Vec<HttpRouteRule> {
    vec![HttpRouteRule::default()]
}

/// A reference from a route to its parent: a Gateway (default) or, for GAMMA, a Service.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group: `gateway.networking.k8s.io` (default), or `""` for a Service.
    #[serde(default = "default_group")]
    pub group: String,
    /// `Gateway` (default) or `Service`.
    #[serde(default = "default_parent_kind")]
    pub kind: String,
    /// Namespace of the parent; the route's own namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the parent.
    pub name: String,
    /// A listener name (Gateway) or port name (Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A listener port (Gateway) or service port (Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

fn default_parent_kind() -> String {
    "Gateway".to_owned()
}

impl ParentReference {
    /// Whether the parent is a Gateway (GAMMA routes have a Service instead).
    pub fn is_gateway(&self) -> bool {
        self.group == GROUP && self.kind == "Gateway"
    }

    /// Whether the parent is a core `Service` (a GAMMA route).
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }

    /// The parent's namespace, falling back to the route's.
    pub fn namespace_or<'a>(&'a self, route_namespace: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(route_namespace)
    }
}

/// One rule: matches, filters and weighted backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional rule name (a section name for policies and statuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any match selects the rule; the CRD's default is one `PathPrefix /` match.
    #[serde(default = "default_matches")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to every request the rule takes, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends; none means the rule answers 500 (unless a redirect answers first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Request and backend timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retries (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRouteRetry>,
}

impl Default for HttpRouteRule {
    fn default() -> Self {
        Self {
            name: None,
            matches: default_matches(),
            filters: Vec::new(),
            backend_refs: Vec::new(),
            timeouts: None,
            retry: None,
        }
    }
}

fn default_matches() -> Vec<HttpRouteMatch> {
    vec![HttpRouteMatch::default()]
}

/// One match: every condition it sets must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path condition; the CRD's default is `PathPrefix /`.
    #[serde(default)]
    pub path: HttpPathMatch,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpQueryParamMatch>,
    /// The method condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
}

/// `matches[].path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// How `value` is compared.
    #[serde(default, rename = "type")]
    pub match_type: PathMatchType,
    /// The path, prefix or regex.
    #[serde(default = "default_path")]
    pub value: String,
}

impl Default for HttpPathMatch {
    fn default() -> Self {
        Self {
            match_type: PathMatchType::PathPrefix,
            value: default_path(),
        }
    }
}

fn default_path() -> String {
    "/".to_owned()
}

/// `path.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// Element-wise prefix: `/abc` matches `/abc` and `/abc/def`, not `/abcdef`.
    #[default]
    PathPrefix,
    /// A regex over the whole path.
    RegularExpression,
}

/// `headers[].type` and `queryParams[].type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ValueMatchType {
    /// The whole value.
    #[default]
    Exact,
    /// A regex over the whole value.
    RegularExpression,
}

/// `matches[].headers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderMatch {
    /// How `value` is compared.
    #[serde(default, rename = "type")]
    pub match_type: ValueMatchType,
    /// The header name (case-insensitive).
    pub name: String,
    /// The value.
    pub value: String,
}

/// `matches[].queryParams[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpQueryParamMatch {
    /// How `value` is compared.
    #[serde(default, rename = "type")]
    pub match_type: ValueMatchType,
    /// The parameter name (case-sensitive).
    pub name: String,
    /// The value.
    pub value: String,
}

/// `matches[].method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    /// GET
    GET,
    /// HEAD
    HEAD,
    /// POST
    POST,
    /// PUT
    PUT,
    /// DELETE
    DELETE,
    /// CONNECT
    CONNECT,
    /// OPTIONS
    OPTIONS,
    /// TRACE
    TRACE,
    /// PATCH
    PATCH,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GET => "GET",
            Self::HEAD => "HEAD",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::DELETE => "DELETE",
            Self::CONNECT => "CONNECT",
            Self::OPTIONS => "OPTIONS",
            Self::TRACE => "TRACE",
            Self::PATCH => "PATCH",
        }
    }
}

/// A filter of a rule or a backendRef: one of the CRD's filter types with its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFilter", into = "RawFilter")]
pub enum HttpRouteFilter {
    /// Edits the request headers sent upstream.
    RequestHeaderModifier(HttpHeaderFilter),
    /// Edits the response headers sent downstream.
    ResponseHeaderModifier(HttpHeaderFilter),
    /// Answers with a redirect.
    RequestRedirect(HttpRequestRedirect),
    /// Rewrites the host and path sent upstream.
    UrlRewrite(HttpUrlRewrite),
    /// A filter type colormesh does not implement (`RequestMirror`, `ExtensionRef`, `CORS`,
    /// `ExternalAuth`): kept by type so the translator can reject the rule, as the spec asks of
    /// an implementation that does not support a filter.
    Unsupported {
        /// The filter's `type`.
        filter_type: FilterType,
        /// The filter's configuration, as written.
        config: Option<serde_json::Value>,
    },
}

schema_via!(HttpRouteFilter, RawFilter, "HTTPRouteFilter");

/// `filters[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FilterType {
    /// `requestHeaderModifier`.
    RequestHeaderModifier,
    /// `responseHeaderModifier`.
    ResponseHeaderModifier,
    /// `requestMirror`.
    RequestMirror,
    /// `requestRedirect`.
    RequestRedirect,
    /// `urlRewrite`.
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// `extensionRef`.
    ExtensionRef,
    /// `cors` (experimental).
    #[serde(rename = "CORS")]
    Cors,
    /// `externalAuth` (experimental).
    ExternalAuth,
}

impl FilterType {
    /// The type as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestHeaderModifier => "RequestHeaderModifier",
            Self::ResponseHeaderModifier => "ResponseHeaderModifier",
            Self::RequestMirror => "RequestMirror",
            Self::RequestRedirect => "RequestRedirect",
            Self::UrlRewrite => "URLRewrite",
            Self::ExtensionRef => "ExtensionRef",
            Self::Cors => "CORS",
            Self::ExternalAuth => "ExternalAuth",
        }
    }

    /// The field that carries this type's configuration.
    fn field(self) -> &'static str {
        match self {
            Self::RequestHeaderModifier => "requestHeaderModifier",
            Self::ResponseHeaderModifier => "responseHeaderModifier",
            Self::RequestMirror => "requestMirror",
            Self::RequestRedirect => "requestRedirect",
            Self::UrlRewrite => "urlRewrite",
            Self::ExtensionRef => "extensionRef",
            Self::Cors => "cors",
            Self::ExternalAuth => "externalAuth",
        }
    }
}

impl fmt::Display for FilterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HttpRouteFilter {
    /// The filter's type.
    pub fn filter_type(&self) -> FilterType {
        match self {
            Self::RequestHeaderModifier(_) => FilterType::RequestHeaderModifier,
            Self::ResponseHeaderModifier(_) => FilterType::ResponseHeaderModifier,
            Self::RequestRedirect(_) => FilterType::RequestRedirect,
            Self::UrlRewrite(_) => FilterType::UrlRewrite,
            Self::Unsupported { filter_type, .. } => *filter_type,
        }
    }
}

/// The filter as the CRD writes it: a `type` and one configuration field per type.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    #[serde(rename = "type")]
    filter_type: FilterType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_header_modifier: Option<HttpHeaderFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_header_modifier: Option<HttpHeaderFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_redirect: Option<HttpRequestRedirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url_rewrite: Option<HttpUrlRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_mirror: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extension_ref: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cors: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_auth: Option<serde_json::Value>,
}

/// Why a filter does not hold what its `type` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The field for the filter's type is absent.
    #[error("a filter of type {filter_type} needs the field {field}")]
    MissingConfig {
        /// The type.
        filter_type: FilterType,
        /// The field it needs.
        field: &'static str,
    },
    /// A field of another type is set too.
    #[error("a filter of type {filter_type} may set only {field}, found {other}")]
    OtherConfig {
        /// The type.
        filter_type: FilterType,
        /// The field it needs.
        field: &'static str,
        /// The other field that is set.
        other: &'static str,
    },
}

impl TryFrom<RawFilter> for HttpRouteFilter {
    type Error = FilterError;

    fn try_from(raw: RawFilter) -> Result<Self, Self::Error> {
        let filter_type = raw.filter_type;
        let field = filter_type.field();
        let present = [
            (
                "requestHeaderModifier",
                raw.request_header_modifier.is_some(),
            ),
            (
                "responseHeaderModifier",
                raw.response_header_modifier.is_some(),
            ),
            ("requestRedirect", raw.request_redirect.is_some()),
            ("urlRewrite", raw.url_rewrite.is_some()),
            ("requestMirror", raw.request_mirror.is_some()),
            ("extensionRef", raw.extension_ref.is_some()),
            ("cors", raw.cors.is_some()),
            ("externalAuth", raw.external_auth.is_some()),
        ];
        if let Some((other, _)) = present.iter().find(|(name, set)| *set && *name != field) {
            return Err(FilterError::OtherConfig {
                filter_type,
                field,
                other,
            });
        }
        let missing = || FilterError::MissingConfig { filter_type, field };
        Ok(match filter_type {
            FilterType::RequestHeaderModifier => {
                Self::RequestHeaderModifier(raw.request_header_modifier.ok_or_else(missing)?)
            }
            FilterType::ResponseHeaderModifier => {
                Self::ResponseHeaderModifier(raw.response_header_modifier.ok_or_else(missing)?)
            }
            FilterType::RequestRedirect => {
                Self::RequestRedirect(raw.request_redirect.ok_or_else(missing)?)
            }
            FilterType::UrlRewrite => Self::UrlRewrite(raw.url_rewrite.ok_or_else(missing)?),
            FilterType::RequestMirror => Self::Unsupported {
                filter_type,
                config: Some(raw.request_mirror.ok_or_else(missing)?),
            },
            FilterType::ExtensionRef => Self::Unsupported {
                filter_type,
                config: Some(raw.extension_ref.ok_or_else(missing)?),
            },
            // CORS and ExternalAuth carry their configuration too, but the CRD's rules do not
            // require it for CORS; keep whatever is there.
            FilterType::Cors => Self::Unsupported {
                filter_type,
                config: raw.cors,
            },
            FilterType::ExternalAuth => Self::Unsupported {
                filter_type,
                config: Some(raw.external_auth.ok_or_else(missing)?),
            },
        })
    }
}

impl From<HttpRouteFilter> for RawFilter {
    fn from(filter: HttpRouteFilter) -> Self {
        let mut raw = RawFilter {
            filter_type: filter.filter_type(),
            request_header_modifier: None,
            response_header_modifier: None,
            request_redirect: None,
            url_rewrite: None,
            request_mirror: None,
            extension_ref: None,
            cors: None,
            external_auth: None,
        };
        match filter {
            HttpRouteFilter::RequestHeaderModifier(config) => {
                raw.request_header_modifier = Some(config);
            }
            HttpRouteFilter::ResponseHeaderModifier(config) => {
                raw.response_header_modifier = Some(config);
            }
            HttpRouteFilter::RequestRedirect(config) => raw.request_redirect = Some(config),
            HttpRouteFilter::UrlRewrite(config) => raw.url_rewrite = Some(config),
            HttpRouteFilter::Unsupported {
                filter_type,
                config,
            } => match filter_type {
                FilterType::RequestMirror => raw.request_mirror = config,
                FilterType::ExtensionRef => raw.extension_ref = config,
                FilterType::Cors => raw.cors = config,
                FilterType::ExternalAuth => raw.external_auth = config,
                // The supported types never land in `Unsupported`.
                FilterType::RequestHeaderModifier
                | FilterType::ResponseHeaderModifier
                | FilterType::RequestRedirect
                | FilterType::UrlRewrite => {}
            },
        }
        raw
    }
}

/// `requestHeaderModifier` and `responseHeaderModifier`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderFilter {
    /// Headers set, replacing any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Headers added beside existing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Header names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpHeader {
    /// Name (case-insensitive).
    pub name: String,
    /// Value.
    pub value: String,
}

/// `requestRedirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestRedirect {
    /// `http` or `https`; the request's scheme when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<RedirectScheme>,
    /// The Location's host; the request's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The Location's path; the request's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
    /// The Location's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 301 or 302 in the standard channel (the CRD also lists 303, 307 and 308); 302 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// `requestRedirect.scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedirectScheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl RedirectScheme {
    /// The scheme as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// `urlRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpUrlRewrite {
    /// The Host sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
}

/// A path modifier of a rewrite or a redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPathModifier", into = "RawPathModifier")]
pub enum HttpPathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part the rule's `PathPrefix` matched, element-wise.
    ReplacePrefixMatch(String),
}

schema_via!(HttpPathModifier, RawPathModifier, "HTTPPathModifier");

/// `path` as the CRD writes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RawPathModifier {
    #[serde(rename = "type")]
    modifier_type: PathModifierType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replace_full_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replace_prefix_match: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

/// Why a path modifier does not hold what its `type` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a path modifier of type {modifier_type} needs {field} (and no other replacement)")]
pub struct PathModifierError {
    modifier_type: &'static str,
    field: &'static str,
}

impl TryFrom<RawPathModifier> for HttpPathModifier {
    type Error = PathModifierError;

    fn try_from(raw: RawPathModifier) -> Result<Self, Self::Error> {
        match (
            raw.modifier_type,
            raw.replace_full_path,
            raw.replace_prefix_match,
        ) {
            (PathModifierType::ReplaceFullPath, Some(path), None) => {
                Ok(Self::ReplaceFullPath(path))
            }
            (PathModifierType::ReplacePrefixMatch, None, Some(prefix)) => {
                Ok(Self::ReplacePrefixMatch(prefix))
            }
            (PathModifierType::ReplaceFullPath, _, _) => Err(PathModifierError {
                modifier_type: "ReplaceFullPath",
                field: "replaceFullPath",
            }),
            (PathModifierType::ReplacePrefixMatch, _, _) => Err(PathModifierError {
                modifier_type: "ReplacePrefixMatch",
                field: "replacePrefixMatch",
            }),
        }
    }
}

impl From<HttpPathModifier> for RawPathModifier {
    fn from(modifier: HttpPathModifier) -> Self {
        match modifier {
            HttpPathModifier::ReplaceFullPath(path) => Self {
                modifier_type: PathModifierType::ReplaceFullPath,
                replace_full_path: Some(path),
                replace_prefix_match: None,
            },
            HttpPathModifier::ReplacePrefixMatch(prefix) => Self {
                modifier_type: PathModifierType::ReplacePrefixMatch,
                replace_full_path: None,
                replace_prefix_match: Some(prefix),
            },
        }
    }
}

/// A weighted backend of a rule: a Service (the default kind) and port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// API group: `""` (core, the default) for a Service.
    #[serde(default)]
    pub group: String,
    /// `Service` (default).
    #[serde(default = "default_backend_kind")]
    pub kind: String,
    /// The backend's name.
    pub name: String,
    /// The backend's namespace; the route's when absent (another needs a ReferenceGrant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (required for a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Relative weight; 1 when absent, 0 sends nothing.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Filters applied only to requests sent to this backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

fn default_backend_kind() -> String {
    "Service".to_owned()
}

fn default_weight() -> u32 {
    1
}

impl HttpBackendRef {
    /// Whether the backend is a core Service.
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }

    /// The backend's namespace, falling back to the route's.
    pub fn namespace_or<'a>(&'a self, route_namespace: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(route_namespace)
    }
}

/// `timeouts`: Gateway API durations (`10s`, `1m30s`, `500ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole request, from the gateway receiving it to the response; `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<GatewayDuration>,
    /// One try from the gateway to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<GatewayDuration>,
}

/// `retry` (experimental channel).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// Response codes (500-599) that are retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// Maximum retries (not counting the first try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Minimum back-off between tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<GatewayDuration>,
}

/// A Gateway API duration (GEP-2257): one to four `<digits><unit>` parts, units `h`, `m`, `s`,
/// `ms`, such as `1h30m`, `10s`, `500ms`, `0s`. Kept as written; [`GatewayDuration::get`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GatewayDuration {
    text: String,
    value: std::time::Duration,
}

schema_via!(GatewayDuration, String, "Duration");

impl GatewayDuration {
    /// The duration.
    pub fn get(&self) -> std::time::Duration {
        self.value
    }

    /// The duration as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a duration does not follow GEP-2257.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected one to four parts of up to 5 digits and a unit h, m, s or ms, such as 10s or 1m30s"
)]
pub struct GatewayDurationError(String);

impl TryFrom<String> for GatewayDuration {
    type Error = GatewayDurationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let invalid = || GatewayDurationError(text.clone());
        let mut rest = text.as_str();
        let mut total = std::time::Duration::ZERO;
        let mut parts = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return Err(invalid());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let (unit, length) = if rest.starts_with("ms") {
                (std::time::Duration::from_millis(1), 2)
            } else if rest.starts_with('h') {
                (std::time::Duration::from_secs(3600), 1)
            } else if rest.starts_with('m') {
                (std::time::Duration::from_secs(60), 1)
            } else if rest.starts_with('s') {
                (std::time::Duration::from_secs(1), 1)
            } else {
                return Err(invalid());
            };
            rest = &rest[length..];
            total += unit * u32::try_from(number).map_err(|_| invalid())?;
            parts += 1;
        }
        if parts == 0 || parts > 4 {
            return Err(invalid());
        }
        Ok(Self { text, value: total })
    }
}

impl From<GatewayDuration> for String {
    fn from(duration: GatewayDuration) -> Self {
        duration.text
    }
}

/// Status of a route: one entry per parent that a controller handles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// Per-parent statuses.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// A route's status for one parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent, as the route refers to it.
    pub parent_ref: ParentReference,
    /// The controller that wrote this entry.
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs` (and `PartiallyInvalid`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A status condition in the shape of `metav1.Condition`. `lastTransitionTime` is optional here
/// because the translator is pure: whoever writes the status (gateway-proxy on a cluster) stamps
/// the time when the condition's status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, ...
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason from the spec (`Accepted`, `BackendNotFound`, `RefNotPermitted`, ...).
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    /// A condition without a transition time.
    pub fn new(
        condition_type: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Self {
        Self {
            condition_type: condition_type.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.to_owned(),
            message: message.into(),
            observed_generation,
            last_transition_time: None,
        }
    }

    /// Whether `status` is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

// ---------------------------------------------------------------------------------------------
// ReferenceGrant
// ---------------------------------------------------------------------------------------------

/// Spec of a `ReferenceGrant`: which resources in other namespaces may refer to resources of this
/// namespace (a route's backendRef to a Service here, for example).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "ReferenceGrant",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    pub from: Vec<ReferenceGrantFrom>,
    /// To what, in this namespace.
    pub to: Vec<ReferenceGrantTo>,
}

/// `from[]` of a ReferenceGrant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantFrom {
    /// The referring kind's group (`gateway.networking.k8s.io`).
    pub group: String,
    /// The referring kind (`HTTPRoute`).
    pub kind: String,
    /// The referring resources' namespace.
    pub namespace: String,
}

/// `to[]` of a ReferenceGrant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantTo {
    /// The referred kind's group (`""` for a Service).
    pub group: String,
    /// The referred kind (`Service`).
    pub kind: String,
    /// One resource by name; every resource of the kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ReferenceGrantSpec {
    /// Whether this grant (living in the target's namespace) lets a `from_kind` in `from_namespace`
    /// refer to the `to_group`/`to_kind` named `to_name`.
    pub fn permits(
        &self,
        from_kind: &str,
        from_namespace: &str,
        to_group: &str,
        to_kind: &str,
        to_name: &str,
    ) -> bool {
        self.from.iter().any(|from| {
            from.group == GROUP && from.kind == from_kind && from.namespace == from_namespace
        }) && self.to.iter().any(|to| {
            to.group == to_group
                && to.kind == to_kind
                && to.name.as_deref().is_none_or(|name| name == to_name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_gep_2257() {
        let ok = |text: &str| {
            GatewayDuration::try_from(text.to_owned())
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .get()
        };
        assert_eq!(ok("10s"), std::time::Duration::from_secs(10));
        assert_eq!(ok("1h30m"), std::time::Duration::from_secs(5400));
        assert_eq!(ok("500ms"), std::time::Duration::from_millis(500));
        assert_eq!(ok("1m1s1ms"), std::time::Duration::from_millis(61_001));
        assert_eq!(ok("0s"), std::time::Duration::ZERO);
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "123456s",
            "1h1h1h1h1h",
            "10 s",
            "-1s",
            "1d",
        ] {
            assert!(
                GatewayDuration::try_from(bad.to_owned()).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn a_filter_needs_the_field_its_type_names_and_no_other() {
        let read = |yaml: &str| serde_norway::from_str::<HttpRouteFilter>(yaml);
        let rewrite = read(
            "type: URLRewrite\nurlRewrite:\n  path:\n    type: ReplacePrefixMatch\n    replacePrefixMatch: /color\n",
        )
        .expect("valid");
        assert_eq!(
            rewrite,
            HttpRouteFilter::UrlRewrite(HttpUrlRewrite {
                hostname: None,
                path: Some(HttpPathModifier::ReplacePrefixMatch("/color".into())),
            })
        );
        let missing = read("type: URLRewrite\n").expect_err("no urlRewrite");
        assert!(
            missing.to_string().contains("needs the field urlRewrite"),
            "{missing}"
        );
        let other = read("type: RequestHeaderModifier\nurlRewrite: {}\n").expect_err("mismatch");
        assert!(other.to_string().contains("found urlRewrite"), "{other}");
        let mirror = read("type: RequestMirror\nrequestMirror:\n  backendRef:\n    name: x\n")
            .expect("kept as unsupported");
        assert_eq!(mirror.filter_type(), FilterType::RequestMirror);
        let path = read(
            "type: URLRewrite\nurlRewrite:\n  path:\n    type: ReplaceFullPath\n    replacePrefixMatch: /x\n",
        )
        .expect_err("wrong replacement field");
        assert!(path.to_string().contains("needs replaceFullPath"), "{path}");
    }

    #[test]
    fn filters_round_trip_through_the_crd_shape() {
        let filter = HttpRouteFilter::RequestRedirect(HttpRequestRedirect {
            scheme: Some(RedirectScheme::Https),
            hostname: Some("example.com".into()),
            path: Some(HttpPathModifier::ReplaceFullPath("/x".into())),
            port: Some(8443),
            status_code: Some(301),
        });
        let json = serde_json::to_value(&filter).expect("serialise");
        assert_eq!(json["type"], "RequestRedirect");
        assert_eq!(json["requestRedirect"]["path"]["type"], "ReplaceFullPath");
        let back: HttpRouteFilter = serde_json::from_value(json).expect("read back");
        assert_eq!(back, filter);
    }

    #[test]
    fn defaults_follow_the_crd() {
        let spec: HttpRouteSpec =
            serde_norway::from_str("parentRefs:\n- name: gw\n").expect("spec");
        assert_eq!(spec.rules.len(), 1);
        assert_eq!(
            spec.rules[0].matches[0].path.match_type,
            PathMatchType::PathPrefix
        );
        assert_eq!(spec.rules[0].matches[0].path.value, "/");
        assert!(spec.parent_refs[0].is_gateway());
        let backend: HttpBackendRef = serde_norway::from_str("name: svc\nport: 80\n").expect("ref");
        assert_eq!(backend.weight, 1);
        assert!(backend.is_service());
        let listener: Listener =
            serde_norway::from_str("name: http\nport: 80\nprotocol: HTTP\n").expect("listener");
        assert_eq!(
            listener.allowed_routes.namespaces.from,
            FromNamespaces::Same
        );
    }

    #[test]
    fn reference_grants_permit_only_what_they_list() {
        let grant: ReferenceGrantSpec = serde_norway::from_str(
            "from:\n- group: gateway.networking.k8s.io\n  kind: HTTPRoute\n  namespace: edge\nto:\n- group: \"\"\n  kind: Service\n  name: colorgateway\n",
        )
        .expect("grant");
        assert!(grant.permits("HTTPRoute", "edge", "", "Service", "colorgateway"));
        assert!(!grant.permits("HTTPRoute", "other", "", "Service", "colorgateway"));
        assert!(!grant.permits("HTTPRoute", "edge", "", "Service", "colorteller"));
        assert!(!grant.permits("GRPCRoute", "edge", "", "Service", "colorgateway"));
    }
}

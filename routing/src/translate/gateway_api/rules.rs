//! HTTPRoute rules compiled for both roles: matches, filters, backendRefs, timeouts and retry.
//!
//! A route version compiles into [`CompiledRoute`]: per rule, one [`MatchPlan`] per match and one
//! [`ActionPlan`], both cheap to clone, because one rule is instantiated into every virtual host
//! (hostname, or mesh Service port) it is attached to. What the route's status needs is kept
//! beside: the backend problems (`ResolvedRefs`) and the rules that answer 500 because of a filter
//! colormesh does not implement.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use model::gateway_api::{
    HttpBackendRef, HttpHeaderFilter, HttpPathModifier, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRule, ParentReference, PathMatchType, ValueMatchType,
};
use model::k8s::openapi::apimachinery::pkg::apis::meta::v1::Time;
use model::{Loaded, Resource, ResourceKey, ResourceKind, ResourceSet};

use super::super::endpoints::service_endpoints;
use super::super::{FieldPath, Findings, namespaced_name};
use crate::table::{
    Cluster, ForwardAction, FullRegex, HeaderEdits, HeaderMatcher, PathMatcher, PathRewrite,
    QueryParameterMatcher, Redirect, RedirectPath, RetryOn, RetryPolicy, RouteAction, RouteMatcher,
    ValueMatcher, WeightedClusters,
};

/// The route timeout when `timeouts.request` is absent: Envoy Gateway sets no route timeout then
/// (`processRouteTimeout` leaves `irRoute.Timeout` unset), so Envoy's route default of 15 s applies.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Retries when `retry.attempts` is absent: the spec leaves it to the implementation; Envoy
/// Gateway's `retryDefaultNumRetries` is 2.
pub(crate) const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

/// The `ResolvedRefs=False` reasons a backendRef can have, in the spec's words.
pub(crate) const REF_NOT_PERMITTED: &str = "RefNotPermitted";
pub(crate) const INVALID_KIND: &str = "InvalidKind";
pub(crate) const BACKEND_NOT_FOUND: &str = "BackendNotFound";
pub(crate) const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";

/// A backendRef that could not be resolved: its share of requests answers 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefProblem {
    /// The `ResolvedRefs=False` reason.
    pub(crate) reason: &'static str,
    /// The backendRef.
    pub(crate) field: FieldPath,
    /// What is wrong.
    pub(crate) message: String,
}

/// Who a route is, for precedence ties and route names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteId {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `metadata.creationTimestamp`; absent in local files that were never applied.
    pub(crate) created: Option<Time>,
}

/// One version of an HTTPRoute, ready to attach.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRoute {
    pub(crate) id: RouteId,
    pub(crate) parent_refs: Vec<ParentReference>,
    pub(crate) hostnames: Vec<String>,
    pub(crate) rules: Vec<CompiledRule>,
    /// Every backendRef that could not be resolved.
    pub(crate) ref_problems: Vec<RefProblem>,
    /// `(rule index, message)` of rules that answer 500 because of an unsupported filter.
    pub(crate) invalid_rules: Vec<(usize, String)>,
}

/// One rule: its matches (alternatives) and what it does.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) index: usize,
    pub(crate) matches: Vec<MatchPlan>,
    pub(crate) action: ActionPlan,
}

/// A match, kept in a cloneable form.
#[derive(Debug, Clone)]
pub(crate) struct MatchPlan {
    pub(crate) index: usize,
    path: PathPlan,
    headers: Vec<(HeaderName, ValuePlan)>,
    query: Vec<(String, ValuePlan)>,
    method: Option<Method>,
}

#[derive(Debug, Clone)]
enum PathPlan {
    /// Element-wise prefix, stored without a trailing `/` (the lone `/` kept).
    Prefix(String),
    Exact(String),
    Regex(FullRegex),
}

#[derive(Debug, Clone)]
enum ValuePlan {
    Exact(String),
    Regex(FullRegex),
}

impl ValuePlan {
    fn matcher(&self) -> ValueMatcher {
        match self {
            Self::Exact(value) => ValueMatcher::Exact(value.clone()),
            Self::Regex(regex) => ValueMatcher::Regex(regex.clone()),
        }
    }
}

/// The spec's match precedence, as a key where greater goes first: path type (Exact, then
/// RegularExpression, then PathPrefix, as Envoy Gateway's `XdsIRRoutes.Less` orders them), the
/// path's length in characters, a method, the number of header matches, the number of query
/// parameter matches.
pub(crate) type Rank = (u8, usize, bool, usize, usize);

impl MatchPlan {
    pub(crate) fn rank(&self) -> Rank {
        let (kind, length) = match &self.path {
            PathPlan::Exact(path) => (2, path.chars().count()),
            PathPlan::Regex(regex) => (1, regex.as_str().chars().count()),
            PathPlan::Prefix(prefix) => (0, prefix.chars().count()),
        };
        (
            kind,
            length,
            self.method.is_some(),
            self.headers.len(),
            self.query.len(),
        )
    }

    pub(crate) fn matcher(&self) -> RouteMatcher {
        RouteMatcher {
            path: match &self.path {
                PathPlan::Prefix(prefix) => PathMatcher::PathSeparatedPrefix(prefix.clone()),
                PathPlan::Exact(path) => PathMatcher::Exact(path.clone()),
                PathPlan::Regex(regex) => PathMatcher::Regex(regex.clone()),
            },
            case_sensitive: true,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| HeaderMatcher {
                    name: name.clone(),
                    value: value.matcher(),
                    invert: false,
                })
                .collect(),
            query_parameters: self
                .query
                .iter()
                .map(|(name, value)| QueryParameterMatcher {
                    name: name.clone(),
                    value: value.matcher(),
                })
                .collect(),
            methods: self.method.iter().cloned().collect(),
        }
    }
}

/// What a rule does, in a cloneable form.
#[derive(Debug, Clone)]
pub(crate) enum ActionPlan {
    Forward(Box<ForwardPlan>),
    Respond(StatusCode),
    Redirect(Redirect),
}

#[derive(Debug, Clone)]
pub(crate) struct ForwardPlan {
    /// Weighted destinations; their total is at least 1.
    pub(crate) destinations: Vec<(Arc<Cluster>, u32)>,
    rewrite: RewritePlan,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    request_headers: HeaderEdits,
    response_headers: HeaderEdits,
    host_rewrite: Option<String>,
}

#[derive(Debug, Clone)]
enum RewritePlan {
    None,
    ReplacePrefixMatch(String),
    FullPath(String),
}

impl ActionPlan {
    /// A forward to one cluster with the defaults (the mesh's plain Service routing).
    pub(crate) fn forward_to(cluster: Arc<Cluster>) -> Self {
        Self::Forward(Box::new(ForwardPlan {
            destinations: vec![(cluster, 1)],
            rewrite: RewritePlan::None,
            timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            retry: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            host_rewrite: None,
        }))
    }

    pub(crate) fn instantiate(&self) -> RouteAction {
        match self {
            Self::Respond(status) => RouteAction::Respond {
                status: *status,
                body: Bytes::new(),
            },
            Self::Redirect(redirect) => RouteAction::Redirect(redirect.clone()),
            Self::Forward(plan) => match WeightedClusters::new(plan.destinations.clone()) {
                Ok(destinations) => RouteAction::Forward(ForwardAction {
                    destinations,
                    rewrite: match &plan.rewrite {
                        RewritePlan::None => PathRewrite::None,
                        RewritePlan::ReplacePrefixMatch(prefix) => {
                            PathRewrite::ReplacePrefixMatch(prefix.clone())
                        }
                        RewritePlan::FullPath(path) => PathRewrite::FullPath(path.clone()),
                    },
                    timeout: plan.timeout,
                    retry: plan.retry.clone(),
                    request_headers: plan.request_headers.clone(),
                    response_headers: plan.response_headers.clone(),
                    host_rewrite: plan.host_rewrite.clone(),
                }),
                // Unreachable: a zero total becomes `Respond(500)` at compile time.
                Err(_) => RouteAction::Respond {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: Bytes::new(),
                },
            },
        }
    }
}

/// Resolves backendRefs to clusters, each Service port once per translation so that every route
/// shares one `Arc<Cluster>` (and one round-robin position) per Service port.
#[derive(Debug)]
pub(crate) struct Backends<'a> {
    resources: &'a ResourceSet,
    clusters: HashMap<(String, String, u16), Arc<Cluster>>,
}

/// The cluster name of a Service port: `namespace/name:port`, unique, stable and readable. Envoy
/// takes any string as a cluster name (envoy-control names its clusters after these).
pub(crate) fn cluster_name(namespace: &str, name: &str, port: u16) -> String {
    format!("{namespace}/{name}:{port}")
}

impl<'a> Backends<'a> {
    pub(crate) fn new(resources: &'a ResourceSet) -> Self {
        Self {
            resources,
            clusters: HashMap::new(),
        }
    }

    /// The cluster of a Service port: its ready endpoints through the EndpointSlices.
    pub(crate) fn cluster(&mut self, namespace: &str, name: &str, port: u16) -> Arc<Cluster> {
        let resources = self.resources;
        Arc::clone(
            self.clusters
                .entry((namespace.to_owned(), name.to_owned(), port))
                .or_insert_with(|| {
                    Arc::new(Cluster::new(
                        cluster_name(namespace, name, port),
                        service_endpoints(resources, namespace, name, port),
                    ))
                }),
        )
    }

    fn grant_permits(&self, route_namespace: &str, target_namespace: &str, name: &str) -> bool {
        self.resources.reference_grants().any(|(loaded, grant)| {
            loaded
                .resource
                .metadata()
                .namespace
                .as_deref()
                .unwrap_or("default")
                == target_namespace
                && grant
                    .spec
                    .permits("HTTPRoute", route_namespace, "", "Service", name)
        })
    }

    /// Resolves one backendRef: `Ok(cluster)` or `Err((reason, message))` for `ResolvedRefs`.
    fn resolve(
        &mut self,
        backend: &HttpBackendRef,
        route_namespace: &str,
        field: &FieldPath,
        findings: &mut Findings,
    ) -> Result<Arc<Cluster>, (&'static str, String)> {
        if !backend.is_service() {
            let group = if backend.group.is_empty() {
                "core"
            } else {
                backend.group.as_str()
            };
            return Err((
                INVALID_KIND,
                format!(
                    "backendRef of kind {}/{} is not supported (only core Services are)",
                    group, backend.kind
                ),
            ));
        }
        let namespace = backend.namespace_or(route_namespace);
        let Some(port) = backend.port.filter(|port| *port != 0) else {
            findings.error(
                &field.field("port"),
                "a backendRef to a Service needs a port",
            );
            return Err((
                BACKEND_NOT_FOUND,
                format!("no port given for Service {namespace}/{}", backend.name),
            ));
        };
        if namespace != route_namespace
            && !self.grant_permits(route_namespace, namespace, &backend.name)
        {
            return Err((
                REF_NOT_PERMITTED,
                format!(
                    "Service {namespace}/{} is in another namespace and no ReferenceGrant in {namespace} permits HTTPRoutes of {route_namespace} to refer to it",
                    backend.name
                ),
            ));
        }
        let key = ResourceKey::new(ResourceKind::Service, Some(namespace), &backend.name);
        let Some(Resource::Service(service)) =
            self.resources.get(&key).map(|loaded| &loaded.resource)
        else {
            return Err((
                BACKEND_NOT_FOUND,
                format!("Service {namespace}/{} not found", backend.name),
            ));
        };
        let ports = service
            .spec
            .as_ref()
            .and_then(|spec| spec.ports.as_deref())
            .unwrap_or_default();
        let Some(service_port) = ports.iter().find(|p| p.port == i32::from(port)) else {
            return Err((
                BACKEND_NOT_FOUND,
                format!("Service {namespace}/{} has no port {port}", backend.name),
            ));
        };
        // colormesh forwards HTTP/1.1 (and upgrades); a port declared as another application
        // protocol (h2c, gRPC, ...) cannot be served.
        if let Some(protocol) = service_port.app_protocol.as_deref()
            && !matches!(protocol, "http" | "HTTP" | "kubernetes.io/ws")
        {
            return Err((
                UNSUPPORTED_PROTOCOL,
                format!(
                    "port {port} of Service {namespace}/{} has appProtocol {protocol:?}, which colormesh does not speak",
                    backend.name
                ),
            ));
        }
        Ok(self.cluster(namespace, &backend.name, port))
    }
}

/// Compiles one HTTPRoute version. Errors in `findings` reject the version (the last accepted one
/// is served); backend problems are not errors: those shares answer 500 and the parent statuses
/// say `ResolvedRefs=False`.
pub(crate) fn compile_route(
    version: &Loaded,
    backends: &mut Backends<'_>,
    findings: &mut Findings,
) -> Option<CompiledRoute> {
    let Resource::HttpRoute(route) = &version.resource else {
        return None;
    };
    let (namespace, name) = namespaced_name(&version.resource.key());
    let spec = FieldPath::new("spec");
    let mut compiled = CompiledRoute {
        id: RouteId {
            namespace: namespace.clone(),
            name,
            created: version.resource.metadata().creation_timestamp.clone(),
        },
        parent_refs: route.spec.parent_refs.clone(),
        hostnames: route
            .spec
            .hostnames
            .iter()
            .map(|host| host.to_ascii_lowercase())
            .collect(),
        rules: Vec::new(),
        ref_problems: Vec::new(),
        invalid_rules: Vec::new(),
    };
    for (index, rule) in route.spec.rules.iter().enumerate() {
        let field = spec.field("rules").index(index);
        let default_match = [HttpRouteMatch::default()];
        let matches: &[HttpRouteMatch] = if rule.matches.is_empty() {
            &default_match
        } else {
            &rule.matches
        };
        let mut plans = Vec::new();
        for (match_index, route_match) in matches.iter().enumerate() {
            if let Some(plan) = compile_match(
                route_match,
                match_index,
                &field.field("matches").index(match_index),
                findings,
            ) {
                plans.push(plan);
            }
        }
        let action = compile_action(
            rule,
            matches,
            index,
            &field,
            &namespace,
            backends,
            findings,
            &mut compiled,
        );
        compiled.rules.push(CompiledRule {
            index,
            matches: plans,
            action,
        });
    }
    Some(compiled)
}

fn compile_match(
    route_match: &HttpRouteMatch,
    index: usize,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<MatchPlan> {
    let errors_before = findings.errors.len();
    let value = &route_match.path.value;
    let path = match route_match.path.match_type {
        PathMatchType::PathPrefix => {
            let trimmed = value.trim_end_matches('/');
            PathPlan::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
        }
        PathMatchType::Exact => PathPlan::Exact(value.clone()),
        PathMatchType::RegularExpression => match FullRegex::new(value) {
            Ok(regex) => PathPlan::Regex(regex),
            Err(error) => {
                findings.error(
                    &field.field("path").field("value"),
                    super::super::invalid_regex(&error),
                );
                PathPlan::Exact(value.clone())
            }
        },
    };
    if !value.starts_with('/') && route_match.path.match_type != PathMatchType::RegularExpression {
        findings.error(
            &field.field("path").field("value"),
            format!("{value:?} must start with /"),
        );
    }
    // "If multiple entries specify equivalent header names, only the first entry with an
    // equivalent name MUST be considered for a match" (and the same for query parameters).
    let mut headers = Vec::new();
    let mut seen_headers = HashSet::new();
    for (header_index, header) in route_match.headers.iter().enumerate() {
        let header_field = field.field("headers").index(header_index);
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            findings.error(
                &header_field.field("name"),
                format!("{:?} is not a valid header name", header.name),
            );
            continue;
        };
        if !seen_headers.insert(name.clone()) {
            continue;
        }
        if let Some(value) = value_plan(
            header.match_type,
            &header.value,
            &header_field.field("value"),
            findings,
        ) {
            headers.push((name, value));
        }
    }
    let mut query = Vec::new();
    let mut seen_query = BTreeSet::new();
    for (query_index, parameter) in route_match.query_params.iter().enumerate() {
        if !seen_query.insert(parameter.name.clone()) {
            continue;
        }
        let parameter_field = field.field("queryParams").index(query_index);
        if let Some(value) = value_plan(
            parameter.match_type,
            &parameter.value,
            &parameter_field.field("value"),
            findings,
        ) {
            query.push((parameter.name.clone(), value));
        }
    }
    let method = route_match
        .method
        .and_then(|method| Method::from_bytes(method.as_str().as_bytes()).ok());
    (findings.errors.len() == errors_before).then_some(MatchPlan {
        index,
        path,
        headers,
        query,
        method,
    })
}

fn value_plan(
    match_type: ValueMatchType,
    value: &str,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<ValuePlan> {
    match match_type {
        ValueMatchType::Exact => Some(ValuePlan::Exact(value.to_owned())),
        ValueMatchType::RegularExpression => match FullRegex::new(value) {
            Ok(regex) => Some(ValuePlan::Regex(regex)),
            Err(error) => {
                findings.error(field, super::super::invalid_regex(&error));
                None
            }
        },
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one rule's context; a struct would only rename them"
)]
fn compile_action(
    rule: &HttpRouteRule,
    matches: &[HttpRouteMatch],
    rule_index: usize,
    field: &FieldPath,
    namespace: &str,
    backends: &mut Backends<'_>,
    findings: &mut Findings,
    compiled: &mut CompiledRoute,
) -> ActionPlan {
    let filters_field = field.field("filters");
    let mut request_headers = HeaderEdits::default();
    let mut response_headers = HeaderEdits::default();
    let mut redirect = None;
    let mut rewrite = None;
    let mut unsupported = Vec::new();
    for (index, filter) in rule.filters.iter().enumerate() {
        let filter_field = filters_field.index(index);
        match filter {
            HttpRouteFilter::RequestHeaderModifier(edits) => header_edits(
                edits,
                &filter_field.field("requestHeaderModifier"),
                findings,
                &mut request_headers,
            ),
            HttpRouteFilter::ResponseHeaderModifier(edits) => header_edits(
                edits,
                &filter_field.field("responseHeaderModifier"),
                findings,
                &mut response_headers,
            ),
            HttpRouteFilter::RequestRedirect(config) => {
                if redirect
                    .replace((config, filter_field.field("requestRedirect")))
                    .is_some()
                {
                    findings.error(&filter_field, "a rule may have one RequestRedirect only");
                }
            }
            HttpRouteFilter::UrlRewrite(config) => {
                if rewrite
                    .replace((config, filter_field.field("urlRewrite")))
                    .is_some()
                {
                    findings.error(&filter_field, "a rule may have one URLRewrite only");
                }
            }
            HttpRouteFilter::Unsupported { filter_type, .. } => {
                unsupported.push(format!("{filter_field}: filter type {filter_type}"));
            }
        }
    }
    for (index, backend) in rule.backend_refs.iter().enumerate() {
        if !backend.filters.is_empty() {
            unsupported.push(format!(
                "{}: backendRef filters",
                field.field("backendRefs").index(index).field("filters")
            ));
        }
    }
    if redirect.is_some() && rewrite.is_some() {
        findings.error(
            &filters_field,
            "IncompatibleFilters: RequestRedirect and URLRewrite cannot be used in one rule",
        );
    }
    // The CRD's rule: ReplacePrefixMatch needs exactly one match, of type PathPrefix.
    let prefix_only = matches.len() == 1 && matches[0].path.match_type == PathMatchType::PathPrefix;
    let path_modifier = |path: &Option<HttpPathModifier>,
                         field: &FieldPath,
                         findings: &mut Findings| {
        if matches!(path, Some(HttpPathModifier::ReplacePrefixMatch(_))) && !prefix_only {
            findings.error(
                &field.field("path"),
                "ReplacePrefixMatch is only valid in a rule with exactly one match, of type PathPrefix",
            );
        }
    };
    if let Some((config, config_field)) = &redirect {
        path_modifier(&config.path, config_field, findings);
    }
    if let Some((config, config_field)) = &rewrite {
        path_modifier(&config.path, config_field, findings);
    }
    if !unsupported.is_empty() {
        // The spec: a filter the implementation cannot apply must not be skipped; requests the
        // rule takes get an error (`ExtensionRef`: "MUST receive a HTTP error response"), and the
        // route is not accepted for it (`HTTPRouteFilter.type`: Accepted=False, reason
        // UnsupportedValue). As Envoy Gateway does (GEP-1364), the rule answers 500 and the rest
        // of the route keeps working: Accepted=False only when every rule is invalid, else
        // Accepted=True with PartiallyInvalid=True.
        let message = format!(
            "{} not supported by colormesh: the rule answers 500",
            unsupported.join(", ")
        );
        findings.warning(field, message.clone());
        compiled.invalid_rules.push((rule_index, message));
        return ActionPlan::Respond(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if let Some((config, config_field)) = redirect {
        let status = config.status_code.unwrap_or(302);
        let status = match StatusCode::from_u16(status) {
            Ok(code) if matches!(status, 301 | 302 | 303 | 307 | 308) => code,
            _ => {
                findings.error(
                    &config_field.field("statusCode"),
                    format!("{status} is not a redirect status (301, 302, 303, 307, 308)"),
                );
                StatusCode::FOUND
            }
        };
        let scheme = config.scheme.map(|scheme| scheme.as_str().to_owned());
        // "Implementations SHOULD NOT add the port number in the Location header" for http on 80
        // and https on 443; with a scheme and no port, the port is the scheme's well-known one,
        // which is then left out too. Envoy Gateway passes no port for 80 and 443 whatever the
        // scheme, and so does colormesh.
        let port = config.port.filter(|port| !matches!(port, 80 | 443));
        return ActionPlan::Redirect(Redirect {
            scheme,
            hostname: config.hostname.clone(),
            port,
            path: match &config.path {
                None => RedirectPath::Keep,
                Some(HttpPathModifier::ReplaceFullPath(path)) => {
                    RedirectPath::FullPath(path.clone())
                }
                Some(HttpPathModifier::ReplacePrefixMatch(prefix)) => {
                    RedirectPath::ReplacePrefixMatch(prefix.clone())
                }
            },
            status,
        });
    }
    let backends_field = field.field("backendRefs");
    let mut destinations = Vec::new();
    for (index, backend) in rule.backend_refs.iter().enumerate() {
        let backend_field = backends_field.index(index);
        let cluster = match backends.resolve(backend, namespace, &backend_field, findings) {
            Ok(cluster) => cluster,
            Err((reason, message)) => {
                compiled.ref_problems.push(RefProblem {
                    reason,
                    field: backend_field.clone(),
                    message,
                });
                let target = backend.namespace_or(namespace);
                Arc::new(Cluster::unresolved(format!(
                    "unresolved:{target}/{}:{}",
                    backend.name,
                    backend.port.unwrap_or(0)
                )))
            }
        };
        destinations.push((cluster, backend.weight));
    }
    let total: u64 = destinations
        .iter()
        .map(|(_, weight)| u64::from(*weight))
        .sum();
    if total > u64::from(u32::MAX) {
        findings.error(
            &backends_field,
            format!("the weights add up to {total}, more than {}", u32::MAX),
        );
        return ActionPlan::Respond(StatusCode::INTERNAL_SERVER_ERROR);
    }
    // No backendRefs, or every weight 0: "the implementation MUST return a 500".
    if total == 0 {
        return ActionPlan::Respond(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let (timeout, retry) = timeouts_and_retry(rule, field, findings);
    let (rewrite, host_rewrite) = match rewrite {
        None => (RewritePlan::None, None),
        Some((config, _)) => (
            match &config.path {
                None => RewritePlan::None,
                Some(HttpPathModifier::ReplaceFullPath(path)) => {
                    RewritePlan::FullPath(path.clone())
                }
                Some(HttpPathModifier::ReplacePrefixMatch(prefix)) => {
                    RewritePlan::ReplacePrefixMatch(prefix.clone())
                }
            },
            config.hostname.clone(),
        ),
    };
    ActionPlan::Forward(Box::new(ForwardPlan {
        destinations,
        rewrite,
        timeout,
        retry,
        request_headers,
        response_headers,
        host_rewrite,
    }))
}

/// `timeouts` and `retry`, as Envoy Gateway's `processRouteTimeout` and `processRouteRetry` map
/// them:
/// - `request` is the route timeout (`0s` disables it; absent: Envoy's default 15 s);
/// - `backendRequest` without `retry` becomes the route timeout (Envoy Gateway: "Only set the IR
///   Route Timeout to the backend request timeout when retries are not configured"); the CRD
///   requires it to be at most `request`, and the smaller of the two is taken in any case;
/// - with `retry`, `backendRequest` is the per-try timeout, `attempts` the number of retries
///   (default 2), `codes` the retriable statuses and `backoff` the back-off base. Connection
///   failures and resets are retried too, as the spec requires of a `retry` stanza.
fn timeouts_and_retry(
    rule: &HttpRouteRule,
    field: &FieldPath,
    findings: &mut Findings,
) -> (Option<Duration>, Option<RetryPolicy>) {
    let timeouts = rule.timeouts.as_ref();
    let request = match timeouts.and_then(|timeouts| timeouts.request.as_ref()) {
        None => Some(DEFAULT_REQUEST_TIMEOUT),
        Some(duration) if duration.get().is_zero() => None,
        Some(duration) => Some(duration.get()),
    };
    let backend = timeouts
        .and_then(|timeouts| timeouts.backend_request.as_ref())
        .map(|duration| duration.get())
        .filter(|duration| !duration.is_zero());
    let Some(retry) = &rule.retry else {
        let timeout = match (request, backend) {
            (Some(request), Some(backend)) => Some(request.min(backend)),
            (None, Some(backend)) => Some(backend),
            (request, None) => request,
        };
        return (timeout, None);
    };
    let codes_field = field.field("retry").field("codes");
    for (index, code) in retry.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            findings.error(
                &codes_field.index(index),
                format!("{code} is not a status in 400..599"),
            );
        }
    }
    let policy = RetryPolicy {
        num_retries: retry.attempts.unwrap_or(DEFAULT_RETRY_ATTEMPTS),
        per_try_timeout: backend,
        retry_on: RetryOn {
            connect_failure: true,
            reset: true,
            status_codes: retry.codes.clone(),
            ..RetryOn::default()
        },
        backoff_base: retry
            .backoff
            .as_ref()
            .map(|duration| duration.get())
            .filter(|duration| !duration.is_zero()),
    };
    (request, Some(policy))
}

/// `set` replaces, `add` appends, `remove` removes.
fn header_edits(
    filter: &HttpHeaderFilter,
    field: &FieldPath,
    findings: &mut Findings,
    edits: &mut HeaderEdits,
) {
    for (list, name, append) in [(&filter.set, "set", false), (&filter.add, "add", true)] {
        for (index, header) in list.iter().enumerate() {
            let header_field = field.field(name).index(index);
            match (
                HeaderName::from_bytes(header.name.as_bytes()),
                HeaderValue::from_str(&header.value),
            ) {
                (Ok(header_name), Ok(value)) => edits.add.push((header_name, value, append)),
                (Err(_), _) => findings.error(
                    &header_field.field("name"),
                    format!("{:?} is not a valid header name", header.name),
                ),
                (_, Err(_)) => findings.error(
                    &header_field.field("value"),
                    format!("{:?} is not a valid header value", header.value),
                ),
            }
        }
    }
    for (index, header) in filter.remove.iter().enumerate() {
        match HeaderName::from_bytes(header.as_bytes()) {
            Ok(header_name) => edits.remove.push(header_name),
            Err(_) => findings.error(
                &field.field("remove").index(index),
                format!("{header:?} is not a valid header name"),
            ),
        }
    }
}

//! Sidecar role: the Envoy beside one App Mesh VirtualNode (controller v1beta2 semantics).
//!
//! The node's backends name the App Mesh VirtualServices its workload may call; each becomes a
//! virtual host answering to the service's name (and its Kubernetes spellings), routed by the
//! provider VirtualRouter's routes or straight to the provider VirtualNode. Anything else follows
//! the mesh's egress filter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use model::appmesh::{
    EgressFilterType, HeaderMatchMethod, HttpRetryPolicy, HttpRoute, HttpRouteMatch, PathMatch,
    Provider, RouteSpec,
};
use model::dns::ServiceHost;
use model::k8s::LabelSelector;
use model::{Loaded, Resource, ResourceKey, ResourceKind, ResourceSet};

use super::endpoints::service_endpoints;
use super::report::Report;
use super::{Effective, FieldPath, Findings, History, Problem, resolve};
use crate::table::{
    Cluster, Fallback, ForwardAction, FullRegex, HeaderEdits, HeaderMatcher, PathMatcher,
    PathRewrite, QueryParameterMatcher, RetryOn, RetryPolicy, Route, RouteAction, RouteMatcher,
    ValueMatcher, VirtualHost, WeightedClusters,
};

/// App Mesh's per-request timeout when a route sets none (Envoy's route default).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// App Mesh allows at most this weight per target, and at most this total per route.
const MAX_WEIGHT: u64 = 100;
/// The CRD's `weightedTargets` maxItems.
const MAX_TARGETS: usize = 10;

use super::{NamespacedName, namespaced_name};

#[derive(Debug, Clone)]
struct MeshInfo {
    selector: Option<LabelSelector>,
    egress: EgressFilterType,
}

#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    listener_ports: Vec<u16>,
    host: Option<ServiceHost>,
    backends: Vec<NamespacedName>,
    mesh: Option<String>,
}

#[derive(Debug, Clone)]
struct RouterInfo {
    namespace: String,
    name: String,
    listener_ports: Vec<u16>,
    /// HTTP routes in evaluation order (priority, then list order).
    routes: Vec<RouterRoute>,
}

#[derive(Debug, Clone)]
struct RouterRoute {
    name: String,
    match_: HttpRouteMatch,
    /// `(node, port, weight)`.
    targets: Vec<(NamespacedName, u16, u32)>,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
struct ServiceInfo {
    name: String,
    namespace: String,
    aws_name: String,
    provider: Option<ProviderInfo>,
}

#[derive(Debug, Clone)]
enum ProviderInfo {
    Router(NamespacedName),
    Node(NamespacedName),
}

pub(super) fn translate(
    resources: &ResourceSet,
    history: &History<'_>,
    node: &str,
    namespace: &str,
    report: &mut Report,
    effective: &mut Effective,
) -> (Vec<VirtualHost>, Fallback) {
    let mut meshes: BTreeMap<String, MeshInfo> = BTreeMap::new();
    for (loaded, _) in resources.meshes() {
        let key = loaded.resource.key();
        if let Some(mesh) = resolve(&key, loaded, history, report, effective, compile_mesh) {
            meshes.insert(key.name.clone(), mesh);
        }
    }
    let mut nodes: HashMap<NamespacedName, NodeInfo> = HashMap::new();
    for (loaded, _) in resources.virtual_nodes() {
        let key = loaded.resource.key();
        if let Some(info) = resolve(&key, loaded, history, report, effective, compile_node) {
            nodes.insert(namespaced_name(&key), info);
        }
    }
    let mut routers: HashMap<NamespacedName, RouterInfo> = HashMap::new();
    for (loaded, _) in resources.virtual_routers() {
        let key = loaded.resource.key();
        let compiled = resolve(
            &key,
            loaded,
            history,
            report,
            effective,
            |version, findings| compile_router(version, &nodes, findings),
        );
        if let Some(info) = compiled {
            routers.insert(namespaced_name(&key), info);
        }
    }
    let mut services: HashMap<NamespacedName, ServiceInfo> = HashMap::new();
    for (loaded, _) in resources.appmesh_virtual_services() {
        let key = loaded.resource.key();
        let compiled = resolve(
            &key,
            loaded,
            history,
            report,
            effective,
            |version, findings| compile_service(version, &nodes, &routers, findings),
        );
        if let Some(info) = compiled {
            services.insert(namespaced_name(&key), info);
        }
    }
    // A backend that is not there is a warning on the node, not a rejection: the node is fine,
    // calls to that name just follow the egress filter.
    for (loaded, _) in resources.virtual_nodes() {
        let key = loaded.resource.key();
        let Some(info) = nodes.get(&namespaced_name(&key)) else {
            continue;
        };
        for (index, backend) in info.backends.iter().enumerate() {
            if !services.contains_key(backend) {
                let field = FieldPath::new("spec")
                    .field("backends")
                    .index(index)
                    .field("virtualService")
                    .field("virtualServiceRef");
                let message = format!(
                    "backend virtual service {}/{} not found (missing or never accepted)",
                    backend.0, backend.1
                );
                report.warning(&key, loaded, Problem::new(&field, message));
            }
        }
    }

    let own = nodes.get(&(namespace.to_owned(), node.to_owned()));
    if own.is_none() {
        let key = ResourceKey::new(ResourceKind::VirtualNode, Some(namespace), node);
        report.missing(
            &key,
            format!("{key} is this sidecar's virtual node, but it is not in the configuration (or was never accepted)"),
        );
    }
    let mesh_ref = own.and_then(|own| own.mesh.as_deref());
    let fallback = match egress_fallback(resources, &meshes, mesh_ref, namespace) {
        Ok(fallback) => fallback,
        Err(why) => {
            // No mesh, no egress filter to follow: fail closed, and say so on the node.
            let key = ResourceKey::new(ResourceKind::VirtualNode, Some(namespace), node);
            if let Some(loaded) = resources.get(&key)
                && own.is_some()
            {
                let field = FieldPath::new("spec").field("meshRef");
                report.warning(
                    &key,
                    loaded,
                    Problem::new(
                        &field,
                        format!("{why}: this sidecar fails closed, answering 404 for every host it has no route for"),
                    ),
                );
            }
            Fallback::NotFound
        }
    };
    let Some(own) = own else {
        return (Vec::new(), fallback);
    };

    let mut builder = HostBuilder {
        resources,
        nodes: &nodes,
        clusters: HashMap::new(),
        taken_domains: BTreeSet::new(),
    };
    let mut virtual_hosts = Vec::new();
    let mut built = BTreeSet::new();
    for backend in &own.backends {
        if !built.insert(backend.clone()) {
            continue;
        }
        let Some(service) = services.get(backend) else {
            continue;
        };
        if let Some(virtual_host) = builder.virtual_host(service, &routers) {
            virtual_hosts.push(virtual_host);
        }
    }
    (virtual_hosts, fallback)
}

/// ALLOW_ALL forwards unknown hosts as they are; DROP_ALL (App Mesh's default) answers 404.
/// `Err` says why no mesh applies (the sidecar then fails closed).
fn egress_fallback(
    resources: &ResourceSet,
    meshes: &BTreeMap<String, MeshInfo>,
    mesh_ref: Option<&str>,
    namespace: &str,
) -> Result<Fallback, String> {
    let mesh = match mesh_ref {
        Some(name) => meshes.get(name),
        None => {
            let namespace_key = ResourceKey::new(ResourceKind::Namespace, None, namespace);
            let labels = match resources.get(&namespace_key).map(|loaded| &loaded.resource) {
                Some(Resource::Namespace(definition)) => {
                    definition.metadata.labels.clone().unwrap_or_default()
                }
                _ => BTreeMap::new(),
            };
            meshes.values().find(|mesh| {
                mesh.selector
                    .as_ref()
                    .is_some_and(|selector| selector_matches(selector, &labels))
            })
        }
    };
    match (mesh.map(|mesh| mesh.egress), mesh_ref) {
        (Some(EgressFilterType::DropAll), _) => Ok(Fallback::NotFound),
        (Some(EgressFilterType::AllowAll), _) => Ok(Fallback::Passthrough {
            timeout: Some(DEFAULT_TIMEOUT),
        }),
        (None, Some(name)) => Err(format!(
            "mesh {name} (spec.meshRef) is not in the configuration (or was never accepted)"
        )),
        (None, None) => Err(format!(
            "no Mesh applies: none selects namespace {namespace} with its namespaceSelector"
        )),
    }
}

/// Kubernetes label selector semantics: every `matchLabels` pair and every expression must hold;
/// an empty selector selects everything.
fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let values = expression.values.as_deref().unwrap_or_default();
            let value = labels.get(&expression.key);
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => value.is_none_or(|value| !values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    labels_match && expressions_match
}

fn compile_mesh(version: &Loaded, findings: &mut Findings) -> Option<MeshInfo> {
    let Resource::Mesh(mesh) = &version.resource else {
        return None;
    };
    let selector = mesh.spec.namespace_selector.clone();
    if let Some(selector) = &selector {
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            if !matches!(
                expression.operator.as_str(),
                "In" | "NotIn" | "Exists" | "DoesNotExist"
            ) {
                let field = FieldPath::new("spec")
                    .field("namespaceSelector")
                    .field("matchExpressions")
                    .index(index)
                    .field("operator");
                findings.error(
                    &field,
                    format!("{:?} is not a label selector operator", expression.operator),
                );
            }
        }
    }
    let egress = mesh
        .spec
        .egress_filter
        .map_or(EgressFilterType::DropAll, |filter| filter.type_);
    Some(MeshInfo { selector, egress })
}

fn compile_node(version: &Loaded, findings: &mut Findings) -> Option<NodeInfo> {
    let Resource::VirtualNode(node) = &version.resource else {
        return None;
    };
    let (namespace, name) = namespaced_name(&version.resource.key());
    let spec = FieldPath::new("spec");
    let mut listener_ports = Vec::new();
    for (index, listener) in node.spec.listeners.iter().enumerate() {
        let port = listener.port_mapping.port;
        if port == 0 {
            let field = spec
                .field("listeners")
                .index(index)
                .field("portMapping")
                .field("port");
            findings.error(&field, "port 0 is not in 1..65535");
        } else {
            listener_ports.push(port);
        }
    }
    let host = node
        .spec
        .service_discovery
        .as_ref()
        .and_then(|discovery| discovery.dns.as_ref())
        .and_then(|dns| match ServiceHost::parse(&dns.hostname, &namespace) {
            Ok(host) => Some(host),
            Err(error) => {
                let field = spec
                    .field("serviceDiscovery")
                    .field("dns")
                    .field("hostname");
                findings.error(&field, error.to_string());
                None
            }
        });
    let backends = node
        .spec
        .backends
        .iter()
        .map(|backend| {
            let reference = &backend.virtual_service.virtual_service_ref;
            (
                reference.namespace_or(&namespace).to_owned(),
                reference.name.clone(),
            )
        })
        .collect();
    let mesh = node.spec.mesh_ref.as_ref().map(|mesh| mesh.name.clone());
    Some(NodeInfo {
        name,
        listener_ports,
        host,
        backends,
        mesh,
    })
}

fn compile_router(
    version: &Loaded,
    nodes: &HashMap<NamespacedName, NodeInfo>,
    findings: &mut Findings,
) -> Option<RouterInfo> {
    let Resource::VirtualRouter(router) = &version.resource else {
        return None;
    };
    let (namespace, name) = namespaced_name(&version.resource.key());
    let spec = FieldPath::new("spec");
    if router.spec.listeners.is_empty() {
        findings.error(
            &spec.field("listeners"),
            "a virtual router needs at least one listener",
        );
    }
    let listener_ports: Vec<u16> = router
        .spec
        .listeners
        .iter()
        .map(|listener| listener.port_mapping.port)
        .collect();
    let mut routes: Vec<(Option<u32>, usize, RouterRoute)> = Vec::new();
    let mut names = BTreeSet::new();
    for (index, route) in router.spec.routes.iter().enumerate() {
        let field = spec.field("routes").index(index);
        if !names.insert(route.name.as_str()) {
            findings.error(
                &field.field("name"),
                format!("route name {:?} is used twice", route.name),
            );
        }
        match &route.spec {
            RouteSpec::Tcp(_) => findings.warning(
                &field.field("tcpRoute"),
                "tcpRoute is not served by colormesh's HTTP sidecar; the route is ignored",
            ),
            RouteSpec::Http(http) => {
                let field = field.field("httpRoute");
                if let Some(compiled) =
                    compile_http_route(&route.name, http, &namespace, nodes, &field, findings)
                {
                    routes.push((route.priority, index, compiled));
                }
            }
        }
    }
    // Lower priority first; routes without a priority after all others, in list order.
    routes.sort_by_key(|(priority, index, _)| (priority.is_none(), priority.unwrap_or(0), *index));
    Some(RouterInfo {
        namespace,
        name,
        listener_ports,
        routes: routes.into_iter().map(|(_, _, route)| route).collect(),
    })
}

fn compile_http_route(
    name: &str,
    http: &HttpRoute,
    namespace: &str,
    nodes: &HashMap<NamespacedName, NodeInfo>,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<RouterRoute> {
    let errors_before = findings.errors.len();
    // Validates the match now; it is compiled again for each virtual host that uses the router.
    compile_match(&http.match_, &field.field("match"), findings);
    let targets_field = field.field("action").field("weightedTargets");
    let weighted = &http.action.weighted_targets;
    if weighted.is_empty() {
        findings.error(&targets_field, "at least one weighted target is required");
    } else if weighted.len() > MAX_TARGETS {
        findings.error(
            &targets_field,
            format!(
                "{} weighted targets, at most {MAX_TARGETS} are allowed",
                weighted.len()
            ),
        );
    }
    let mut targets = Vec::new();
    for (index, target) in weighted.iter().enumerate() {
        let target_field = targets_field.index(index);
        if u64::from(target.weight) > MAX_WEIGHT {
            findings.error(
                &target_field.field("weight"),
                format!(
                    "weight {} is above the maximum of {MAX_WEIGHT}",
                    target.weight
                ),
            );
        }
        let reference = &target.virtual_node_ref;
        let node_key = (
            reference.namespace_or(namespace).to_owned(),
            reference.name.clone(),
        );
        let Some(node) = nodes.get(&node_key) else {
            findings.error(
                &target_field.field("virtualNodeRef"),
                format!(
                    "virtual node {}/{} not found (missing or never accepted)",
                    node_key.0, node_key.1
                ),
            );
            continue;
        };
        let Some(port) = target.port.or_else(|| node.listener_ports.first().copied()) else {
            findings.error(
                &target_field.field("virtualNodeRef"),
                format!(
                    "virtual node {}/{} has no listener to send traffic to",
                    node_key.0, node_key.1
                ),
            );
            continue;
        };
        targets.push((node_key, port, target.weight));
    }
    let total: u64 = weighted.iter().map(|target| u64::from(target.weight)).sum();
    if total > MAX_WEIGHT {
        findings.error(
            &targets_field,
            format!(
                "the weights add up to {total}; App Mesh allows a total of at most {MAX_WEIGHT}"
            ),
        );
    } else if total == 0 && !weighted.is_empty() {
        findings.error(
            &targets_field,
            "weighted targets require a total weight >= 1 (the weights add up to 0)",
        );
    }
    let retry = match &http.retry_policy {
        Some(policy) => compile_retry(policy, &field.field("retryPolicy"), findings),
        None => Some(implicit_retry()),
    };
    let timeout = match http
        .timeout
        .as_ref()
        .and_then(|timeout| timeout.per_request)
    {
        None => Some(DEFAULT_TIMEOUT),
        Some(per_request) if per_request.to_std().is_zero() => None,
        Some(per_request) => Some(per_request.to_std()),
    };
    (findings.errors.len() == errors_before).then(|| RouterRoute {
        name: name.to_owned(),
        match_: http.match_.clone(),
        targets,
        retry,
        timeout,
    })
}

/// The retry policy App Mesh's Envoy applies to a route that declares none: two retries on a
/// connection failure or a 503 (aws-app-mesh-roadmap#229, #376). App Mesh also retried refused
/// HTTP/2 streams and gRPC `unavailable`; the sidecar speaks HTTP/1.1 to its upstreams, where
/// neither can happen, so they are left out.
pub(crate) fn implicit_retry() -> RetryPolicy {
    RetryPolicy {
        num_retries: IMPLICIT_RETRIES,
        per_try_timeout: None,
        retry_on: RetryOn {
            connect_failure: true,
            status_codes: vec![503],
            ..RetryOn::default()
        },
        backoff_base: None,
    }
}

/// How many times App Mesh retries a route without a retry policy.
pub(crate) const IMPLICIT_RETRIES: u32 = 2;

/// App Mesh retry events in Envoy's `retry_on` terms.
fn compile_retry(
    policy: &HttpRetryPolicy,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<RetryPolicy> {
    let mut retry_on = RetryOn::default();
    for (index, event) in policy.http_retry_events.iter().enumerate() {
        match event.as_str() {
            "server-error" => retry_on.server_error = true,
            "gateway-error" => retry_on.gateway_error = true,
            "client-error" => retry_on.retriable_4xx = true,
            "stream-error" => retry_on.reset = true,
            other => findings.error(
                &field.field("httpRetryEvents").index(index),
                format!("{other:?} is not one of server-error, gateway-error, client-error, stream-error"),
            ),
        }
    }
    for (index, event) in policy.tcp_retry_events.iter().enumerate() {
        match event.as_str() {
            "connection-error" => retry_on.connect_failure = true,
            other => findings.error(
                &field.field("tcpRetryEvents").index(index),
                format!("{other:?} is not a TCP retry event (connection-error)"),
            ),
        }
    }
    let per_try = policy.per_retry_timeout.to_std();
    (retry_on != RetryOn::default()).then(|| RetryPolicy {
        num_retries: policy.max_retries,
        per_try_timeout: (!per_try.is_zero()).then_some(per_try),
        retry_on,
        backoff_base: None,
    })
}

fn compile_match(
    spec: &HttpRouteMatch,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<RouteMatcher> {
    let errors_before = findings.errors.len();
    let path = match (&spec.prefix, &spec.path) {
        (Some(_), Some(_)) => {
            findings.error(field, "set prefix or path, not both");
            return None;
        }
        (Some(prefix), None) => PathMatcher::Prefix(prefix.clone()),
        (None, Some(PathMatch::Exact(exact))) => PathMatcher::Exact(exact.clone()),
        (None, Some(PathMatch::Regex(regex))) => match FullRegex::new(regex) {
            Ok(regex) => PathMatcher::Regex(regex),
            Err(error) => {
                findings.error(
                    &field.field("path").field("regex"),
                    super::invalid_regex(&error),
                );
                return None;
            }
        },
        (None, None) => PathMatcher::Prefix("/".to_owned()),
    };
    let mut headers = Vec::new();
    for (index, header) in spec.headers.iter().enumerate() {
        let header_field = field.field("headers").index(index);
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            findings.error(
                &header_field.field("name"),
                format!("{:?} is not a valid header name", header.name),
            );
            continue;
        };
        let value = match &header.match_ {
            None => ValueMatcher::Present,
            Some(HeaderMatchMethod::Exact(value)) => ValueMatcher::Exact(value.clone()),
            Some(HeaderMatchMethod::Prefix(value)) => ValueMatcher::Prefix(value.clone()),
            Some(HeaderMatchMethod::Suffix(value)) => ValueMatcher::Suffix(value.clone()),
            Some(HeaderMatchMethod::Range(range)) => ValueMatcher::Range {
                start: range.start,
                end: range.end,
            },
            Some(HeaderMatchMethod::Regex(regex)) => match FullRegex::new(regex) {
                Ok(regex) => ValueMatcher::Regex(regex),
                Err(error) => {
                    findings.error(
                        &header_field.field("match").field("regex"),
                        super::invalid_regex(&error),
                    );
                    continue;
                }
            },
        };
        headers.push(HeaderMatcher {
            name,
            value,
            invert: header.invert.unwrap_or(false),
        });
    }
    let query_parameters = spec
        .query_parameters
        .iter()
        .map(|parameter| QueryParameterMatcher {
            name: parameter.name.clone(),
            value: match parameter
                .match_
                .as_ref()
                .and_then(|method| method.exact.clone())
            {
                Some(exact) => ValueMatcher::Exact(exact),
                None => ValueMatcher::Present,
            },
        })
        .collect();
    let mut methods = Vec::new();
    if let Some(method) = &spec.method {
        match Method::from_bytes(method.as_bytes()) {
            Ok(method) => methods.push(method),
            Err(_) => findings.error(
                &field.field("method"),
                format!("{method:?} is not an HTTP method"),
            ),
        }
    }
    if spec.scheme.is_some() {
        findings.warning(
            &field.field("scheme"),
            "unsupported field ignored (the sidecar serves plain HTTP)",
        );
    }
    if spec.port.is_some() {
        findings.warning(&field.field("port"), "unsupported field ignored");
    }
    (findings.errors.len() == errors_before).then_some(RouteMatcher {
        path,
        case_sensitive: true,
        headers,
        query_parameters,
        methods,
    })
}

fn compile_service(
    version: &Loaded,
    nodes: &HashMap<NamespacedName, NodeInfo>,
    routers: &HashMap<NamespacedName, RouterInfo>,
    findings: &mut Findings,
) -> Option<ServiceInfo> {
    let Resource::AppMeshVirtualService(service) = &version.resource else {
        return None;
    };
    let (namespace, name) = namespaced_name(&version.resource.key());
    let provider_field = FieldPath::new("spec").field("provider");
    let provider = match &service.spec.provider {
        None => {
            findings.warning(
                &provider_field,
                "no provider: calls to this virtual service follow the egress filter",
            );
            None
        }
        Some(Provider::VirtualRouter(reference)) => {
            let key = (
                reference.namespace_or(&namespace).to_owned(),
                reference.name.clone(),
            );
            if !routers.contains_key(&key) {
                findings.error(
                    &provider_field
                        .field("virtualRouter")
                        .field("virtualRouterRef"),
                    format!(
                        "virtual router {}/{} not found (missing or never accepted)",
                        key.0, key.1
                    ),
                );
            }
            Some(ProviderInfo::Router(key))
        }
        Some(Provider::VirtualNode(reference)) => {
            let key = (
                reference.namespace_or(&namespace).to_owned(),
                reference.name.clone(),
            );
            match nodes.get(&key) {
                None => findings.error(
                    &provider_field.field("virtualNode").field("virtualNodeRef"),
                    format!(
                        "virtual node {}/{} not found (missing or never accepted)",
                        key.0, key.1
                    ),
                ),
                Some(node) if node.listener_ports.is_empty() => findings.error(
                    &provider_field.field("virtualNode").field("virtualNodeRef"),
                    format!(
                        "virtual node {}/{} has no listener to send traffic to",
                        key.0, key.1
                    ),
                ),
                Some(_) => {}
            }
            Some(ProviderInfo::Node(key))
        }
    };
    // The CRD's default awsName for a virtual service.
    let aws_name = service
        .spec
        .aws_name
        .clone()
        .unwrap_or_else(|| format!("{name}.{namespace}"));
    Some(ServiceInfo {
        name,
        namespace,
        aws_name,
        provider,
    })
}

/// Builds virtual hosts for the own node's backends, sharing one cluster per (node, port).
struct HostBuilder<'a> {
    resources: &'a ResourceSet,
    nodes: &'a HashMap<NamespacedName, NodeInfo>,
    clusters: HashMap<(NamespacedName, u16), Arc<Cluster>>,
    /// Domains already served by an earlier virtual host (Envoy refuses duplicates).
    taken_domains: BTreeSet<String>,
}

impl HostBuilder<'_> {
    fn cluster(&mut self, node_key: &NamespacedName, port: u16) -> Arc<Cluster> {
        let (resources, nodes) = (self.resources, self.nodes);
        let cluster = self
            .clusters
            .entry((node_key.clone(), port))
            .or_insert_with(|| {
                let endpoints = nodes
                    .get(node_key)
                    .and_then(|node| node.host.as_ref())
                    .map(|host| service_endpoints(resources, &host.namespace, &host.service, port))
                    .unwrap_or_default();
                Arc::new(Cluster::new(
                    format!("{}_{}_{port}", node_key.1, node_key.0),
                    endpoints,
                ))
            });
        Arc::clone(cluster)
    }

    fn virtual_host(
        &mut self,
        service: &ServiceInfo,
        routers: &HashMap<NamespacedName, RouterInfo>,
    ) -> Option<VirtualHost> {
        let provider = service.provider.as_ref()?;
        let (ports, routes) = match provider {
            ProviderInfo::Router(key) => {
                let router = routers.get(key)?;
                let routes = router
                    .routes
                    .iter()
                    .filter_map(|route| self.router_route(router, route))
                    .collect::<Vec<Route>>();
                (router.listener_ports.clone(), routes)
            }
            ProviderInfo::Node(key) => {
                let node = self.nodes.get(key)?;
                let port = *node.listener_ports.first()?;
                let cluster = self.cluster(key, port);
                let route = Route {
                    name: format!("{}/{}/{}", service.namespace, service.name, node.name),
                    matcher: RouteMatcher::any(),
                    action: forward(
                        WeightedClusters::single(cluster),
                        None,
                        Some(DEFAULT_TIMEOUT),
                    ),
                };
                (node.listener_ports.clone(), vec![route])
            }
        };
        let mut domains = Vec::new();
        for name in host_names(&service.aws_name) {
            domains.push(name.clone());
            domains.extend(ports.iter().map(|port| format!("{name}:{port}")));
        }
        domains.retain(|domain| self.taken_domains.insert(domain.to_ascii_lowercase()));
        if domains.is_empty() || routes.is_empty() {
            return None;
        }
        Some(VirtualHost {
            name: format!("{}/{}", service.namespace, service.name),
            domains,
            routes,
        })
    }

    fn router_route(&mut self, router: &RouterInfo, route: &RouterRoute) -> Option<Route> {
        let matcher = compile_match(
            &route.match_,
            &FieldPath::new("match"),
            &mut Findings::default(),
        )?;
        let destinations: Vec<(Arc<Cluster>, u32)> = route
            .targets
            .iter()
            .map(|(node, port, weight)| (self.cluster(node, *port), *weight))
            .collect();
        let destinations = WeightedClusters::new(destinations).ok()?;
        Some(Route {
            name: format!("{}/{}/{}", router.namespace, router.name, route.name),
            matcher,
            action: forward(destinations, route.retry.clone(), route.timeout),
        })
    }
}

fn forward(
    destinations: WeightedClusters,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        destinations,
        rewrite: PathRewrite::None,
        timeout,
        retry,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        host_rewrite: None,
    })
}

/// The names a virtual service answers to: its awsName and, when that is a Kubernetes service
/// name (`svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`), the other spellings of it, since
/// apps address the service through Kubernetes DNS.
fn host_names(aws_name: &str) -> Vec<String> {
    let mut names = vec![aws_name.to_owned()];
    if aws_name.contains('.')
        && let Ok(host) = ServiceHost::parse(aws_name, "default")
        && host.port.is_none()
    {
        let short = format!("{}.{}", host.service, host.namespace);
        for name in [short.clone(), format!("{short}.svc"), host.fqdn()] {
            if !names.iter().any(|known| known.eq_ignore_ascii_case(&name)) {
                names.push(name);
            }
        }
    }
    names
}

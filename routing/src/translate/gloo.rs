//! Ingress role: Gloo Edge 1.x VirtualServices, Upstreams and UpstreamGroups, translated the way
//! Gloo's translator configures Envoy.
//!
//! Order matters because acceptance flows along references: Upstreams first (each becomes a
//! cluster `<name>_<namespace>`), then UpstreamGroups (which need their upstreams), then
//! VirtualServices (one virtual host each), then domain conflicts between virtual services.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use model::gloo::{
    Action, DirectResponseAction, HeaderManipulation, HeaderValueOption, Matcher,
    RouteAction as GlooRouteAction, RouteOptions, UpstreamType,
};
use model::{Loaded, Resource, ResourceKey, ResourceSet};

use super::endpoints::{Resolver, service_endpoints};
use super::report::Report;
use super::{Effective, FieldPath, Findings, History, Problem, fall_back, resolve};
use crate::table::{
    Cluster, ForwardAction, FullRegex, HeaderEdits, HeaderMatcher, PathMatcher, PathRewrite,
    QueryParameterMatcher, RetryOn, RetryPolicy, Route, RouteAction, RouteMatcher, ValueMatcher,
    VirtualHost, WeightedClusters,
};

/// Gloo's route timeout when `options.timeout` is unset.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

use super::{NamespacedName, namespaced_name};

/// What the virtual services can route to: the clusters of the upstreams in effect and the
/// destinations of the upstream groups in effect.
#[derive(Debug, Default)]
struct Destinations {
    clusters: HashMap<NamespacedName, Arc<Cluster>>,
    groups: HashMap<NamespacedName, Vec<(Arc<Cluster>, u32)>>,
    /// Groups whose current version was rejected (their last accepted version may be in `groups`).
    rejected_groups: BTreeSet<NamespacedName>,
}

pub(super) fn translate(
    resources: &ResourceSet,
    history: &History<'_>,
    report: &mut Report,
    effective: &mut Effective,
) -> Vec<VirtualHost> {
    let mut resolver = Resolver::default();
    let mut destinations = Destinations::default();
    for (loaded, _) in resources.upstreams() {
        let key = loaded.resource.key();
        let compiled = resolve(
            &key,
            loaded,
            history,
            report,
            effective,
            |version, findings| compile_upstream(version, resources, &mut resolver, findings),
        );
        if let Some(cluster) = compiled {
            destinations
                .clusters
                .insert(namespaced_name(&key), Arc::new(cluster));
        }
    }
    for (loaded, _) in resources.upstream_groups() {
        let key = loaded.resource.key();
        let compiled = resolve(
            &key,
            loaded,
            history,
            report,
            effective,
            |version, findings| compile_group(version, &destinations.clusters, findings),
        );
        if report.is_rejected(&key) {
            destinations.rejected_groups.insert(namespaced_name(&key));
        }
        if let Some(group) = compiled {
            destinations.groups.insert(namespaced_name(&key), group);
        }
    }

    struct Candidate<'a> {
        key: ResourceKey,
        current: &'a Loaded,
        compiled: Option<CompiledVirtualService>,
        /// Whether `compiled` is the last accepted version standing in for a rejected one.
        fallen_back: bool,
    }
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for (loaded, _) in resources.gloo_virtual_services() {
        let key = loaded.resource.key();
        let compiled = resolve(
            &key,
            loaded,
            history,
            report,
            effective,
            |version, findings| compile_virtual_service(version, &destinations, findings),
        );
        let fallen_back = report.is_rejected(&key);
        candidates.push(Candidate {
            key,
            current: loaded,
            compiled,
            fallen_back,
        });
    }

    // Domain conflicts reject every virtual service involved. A rejected one falls back to its last
    // accepted version, which may conflict again; then it is dropped. Each round moves at least
    // one candidate one step down (current -> last accepted -> nothing), so this ends.
    loop {
        let mut owners: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, candidate) in candidates.iter().enumerate() {
            if let Some(compiled) = candidate
                .compiled
                .as_ref()
                .filter(|compiled| !compiled.routes.is_empty())
            {
                for domain in &compiled.domains {
                    owners
                        .entry(domain.to_ascii_lowercase())
                        .or_default()
                        .push(index);
                }
            }
        }
        let mut conflicts: BTreeMap<usize, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for (domain, indexes) in owners.iter().filter(|(_, indexes)| indexes.len() > 1) {
            for &index in indexes {
                let (domains, others) = conflicts.entry(index).or_default();
                domains.insert(domain.clone());
                for &other in indexes.iter().filter(|&&other| other != index) {
                    let key = &candidates[other].key;
                    others.insert(format!(
                        "{}.{}",
                        key.namespace.as_deref().unwrap_or("default"),
                        key.name
                    ));
                }
            }
        }
        if conflicts.is_empty() {
            break;
        }
        for (index, (domains, others)) in conflicts {
            let candidate = &mut candidates[index];
            let domains: Vec<String> = domains.into_iter().collect();
            let others: Vec<String> = others.into_iter().collect();
            let message = format!(
                "domain conflict: the [{}] domain is present in other virtual services that belong to the same Gateway as this one: [{}]",
                domains.join(", "),
                others.join(", ")
            );
            let field = FieldPath::new("spec").field("virtualHost").field("domains");
            report.error(
                &candidate.key,
                candidate.current,
                Problem::new(&field, message),
            );
            if candidate.fallen_back {
                report.not_served(&candidate.key);
                effective.set(&candidate.key, None);
                candidate.compiled = None;
            } else {
                candidate.fallen_back = true;
                candidate.compiled = fall_back(
                    &candidate.key,
                    history,
                    report,
                    effective,
                    |version, findings| compile_virtual_service(version, &destinations, findings),
                );
            }
        }
    }

    candidates
        .into_iter()
        .filter_map(|candidate| candidate.compiled)
        .filter(|compiled| !compiled.routes.is_empty())
        .map(|compiled| VirtualHost {
            name: compiled.name,
            domains: compiled.domains,
            routes: compiled.routes,
        })
        .collect()
}

fn compile_upstream(
    version: &Loaded,
    resources: &ResourceSet,
    resolver: &mut Resolver,
    findings: &mut Findings,
) -> Option<Cluster> {
    let Resource::Upstream(upstream) = &version.resource else {
        return None;
    };
    let key = version.resource.key();
    let (namespace, name) = namespaced_name(&key);
    let spec = FieldPath::new("spec");
    let endpoints = match &upstream.spec.upstream_type {
        UpstreamType::Static(static_upstream) => {
            let hosts = spec.field("static").field("hosts");
            let mut endpoints = Vec::new();
            for (index, host) in static_upstream.hosts.iter().enumerate() {
                let field = hosts.index(index);
                let Some(port) = valid_port(host.port) else {
                    findings.error(
                        &field.field("port"),
                        format!("port {} is not in 1..65535", host.port),
                    );
                    continue;
                };
                if host.addr.is_empty() {
                    findings.error(&field.field("addr"), "an address is required");
                    continue;
                }
                match resolver.resolve(&host.addr, port) {
                    Ok(addresses) => endpoints.extend(addresses),
                    Err(unresolved) => {
                        findings.warning(&field.field("addr"), unresolved.to_string());
                    }
                }
            }
            endpoints
        }
        UpstreamType::Kube(kube) => {
            let field = spec.field("kube");
            if kube.service_name.is_empty() {
                findings.error(&field.field("serviceName"), "a service name is required");
            }
            let Some(port) = valid_port(kube.service_port) else {
                findings.error(
                    &field.field("servicePort"),
                    format!("port {} is not in 1..65535", kube.service_port),
                );
                return None;
            };
            let service_namespace = if kube.service_namespace.is_empty() {
                namespace.as_str()
            } else {
                kube.service_namespace.as_str()
            };
            service_endpoints(resources, service_namespace, &kube.service_name, port)
        }
    };
    // Envoy's cluster name for a Gloo upstream.
    Some(Cluster::new(format!("{name}_{namespace}"), endpoints))
}

fn valid_port(port: u32) -> Option<u16> {
    u16::try_from(port).ok().filter(|port| *port != 0)
}

fn compile_group(
    version: &Loaded,
    clusters: &HashMap<NamespacedName, Arc<Cluster>>,
    findings: &mut Findings,
) -> Option<Vec<(Arc<Cluster>, u32)>> {
    let Resource::UpstreamGroup(group) = &version.resource else {
        return None;
    };
    let (namespace, _) = namespaced_name(&version.resource.key());
    let field = FieldPath::new("spec").field("destinations");
    if group.spec.destinations.is_empty() {
        findings.error(&field, "an upstream group needs at least one destination");
        return None;
    }
    let mut destinations = Vec::new();
    for (index, destination) in group.spec.destinations.iter().enumerate() {
        let upstream = &destination.destination.upstream;
        // A destination without a namespace is in the group's namespace.
        let upstream_namespace = upstream.namespace_or(&namespace).to_owned();
        match clusters.get(&(upstream_namespace.clone(), upstream.name.clone())) {
            Some(cluster) => destinations.push((Arc::clone(cluster), destination.effective_weight())),
            None => findings.error(
                &field.index(index).field("destination").field("upstream"),
                format!(
                    "destination # {}: upstream not found: Upstream {upstream_namespace}/{} does not exist or was never accepted",
                    index + 1,
                    upstream.name
                ),
            ),
        }
    }
    let total: u64 = group
        .spec
        .destinations
        .iter()
        .map(|destination| u64::from(destination.effective_weight()))
        .sum();
    if total == 0 {
        findings.error(
            &field,
            "weighted destinations require a total weight >= 1 (the weights add up to 0)",
        );
    } else if total > u64::from(u32::MAX) {
        findings.error(
            &field,
            format!("the weights add up to {total}, more than {}", u32::MAX),
        );
    }
    Some(destinations)
}

/// A virtual service ready to become a virtual host.
#[derive(Debug)]
struct CompiledVirtualService {
    name: String,
    domains: Vec<String>,
    routes: Vec<Route>,
}

fn compile_virtual_service(
    version: &Loaded,
    destinations: &Destinations,
    findings: &mut Findings,
) -> Option<CompiledVirtualService> {
    let Resource::GlooVirtualService(virtual_service) = &version.resource else {
        return None;
    };
    let (namespace, name) = namespaced_name(&version.resource.key());
    let virtual_host = &virtual_service.spec.virtual_host;
    let host_field = FieldPath::new("spec").field("virtualHost");
    let domains = if virtual_host.domains.is_empty() {
        vec!["*".to_owned()]
    } else {
        virtual_host.domains.clone()
    };
    validate_domains(
        &virtual_host.domains,
        &host_field.field("domains"),
        findings,
    );
    if virtual_host.routes.is_empty() {
        findings.warning(
            &host_field.field("routes"),
            "no routes: the virtual service is ignored",
        );
    }
    let mut routes = Vec::new();
    for (index, route) in virtual_host.routes.iter().enumerate() {
        let field = host_field.field("routes").index(index);
        let route_name = format!("{namespace}/{name}/{index}");
        compile_route(
            route,
            &field,
            &route_name,
            &namespace,
            destinations,
            findings,
            &mut routes,
        );
    }
    Some(CompiledVirtualService {
        name: format!("{namespace}/{name}"),
        domains,
        routes,
    })
}

/// Envoy's domain rules: a single wildcard, leading or trailing (or `*` alone), no duplicates.
pub(crate) fn validate_domains(domains: &[String], field: &FieldPath, findings: &mut Findings) {
    let mut seen = BTreeSet::new();
    for (index, domain) in domains.iter().enumerate() {
        let field = field.index(index);
        if domain.is_empty() {
            findings.error(&field, "a domain must not be empty");
            continue;
        }
        let inner = domain
            .strip_prefix('*')
            .or_else(|| domain.strip_suffix('*'))
            .unwrap_or(domain);
        if inner.contains('*') {
            findings.error(
                &field,
                format!("domain {domain:?} may have one wildcard only, at its start or end"),
            );
        }
        if !seen.insert(domain.to_ascii_lowercase()) {
            findings.error(&field, format!("domain {domain:?} is listed twice"));
        }
    }
}

/// A route action that can be instantiated once per expanded matcher.
enum ActionPlan {
    Forward(Box<ForwardPlan>),
    Respond { status: StatusCode, body: Bytes },
}

struct ForwardPlan {
    destinations: Vec<(Arc<Cluster>, u32)>,
    rewrite: RewritePlan,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    request_headers: HeaderEdits,
    response_headers: HeaderEdits,
}

enum RewritePlan {
    None,
    Prefix(String),
    Regex(FullRegex, String),
}

impl ActionPlan {
    fn instantiate(&self) -> Option<RouteAction> {
        Some(match self {
            Self::Respond { status, body } => RouteAction::Respond {
                status: *status,
                body: body.clone(),
            },
            Self::Forward(plan) => {
                let ForwardPlan {
                    destinations,
                    rewrite,
                    timeout,
                    retry,
                    request_headers,
                    response_headers,
                } = plan.as_ref();
                RouteAction::Forward(ForwardAction {
                    destinations: WeightedClusters::new(destinations.clone()).ok()?,
                    rewrite: match rewrite {
                        RewritePlan::None => PathRewrite::None,
                        RewritePlan::Prefix(prefix) => PathRewrite::Prefix(prefix.clone()),
                        RewritePlan::Regex(pattern, substitution) => PathRewrite::Regex {
                            pattern: pattern.clone(),
                            substitution: substitution.clone(),
                        },
                    },
                    timeout: *timeout,
                    retry: retry.clone(),
                    request_headers: request_headers.clone(),
                    response_headers: response_headers.clone(),
                    host_rewrite: None,
                })
            }
        })
    }
}

/// What Envoy answers for a route whose cluster does not exist.
fn missing_cluster() -> ActionPlan {
    ActionPlan::Respond {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: Bytes::new(),
    }
}

fn compile_route(
    route: &model::gloo::Route,
    field: &FieldPath,
    route_name: &str,
    namespace: &str,
    destinations: &Destinations,
    findings: &mut Findings,
    routes: &mut Vec<Route>,
) {
    let options = route.options.as_ref();
    let options_field = field.field("options");
    let plan = match &route.action {
        Action::Route(action) => {
            let action_field = field.field("routeAction");
            let Some(targets) =
                compile_destinations(action, &action_field, namespace, destinations, findings)
            else {
                return;
            };
            match targets {
                Targets::Missing => missing_cluster(),
                Targets::Weighted(targets) => compile_forward(
                    targets,
                    options.cloned().unwrap_or_default(),
                    &options_field,
                    findings,
                ),
            }
        }
        Action::DirectResponse(direct) => compile_direct_response(
            direct,
            options,
            &field.field("directResponseAction"),
            &options_field,
            findings,
        ),
    };

    let default_matcher = [Matcher::default()];
    let matchers: &[Matcher] = if route.matchers.is_empty() {
        &default_matcher
    } else {
        &route.matchers
    };
    for (index, matcher) in matchers.iter().enumerate() {
        let matcher_field = field.field("matchers").index(index);
        let Some(matcher) = compile_matcher(matcher, &matcher_field, findings) else {
            continue;
        };
        let Some(action) = plan.instantiate() else {
            continue;
        };
        // Several matchers are alternatives: one table route per matcher, same action.
        let name = if matchers.len() == 1 {
            route_name.to_owned()
        } else {
            format!("{route_name}/{index}")
        };
        routes.push(Route {
            name,
            matcher,
            action,
        });
    }
}

enum Targets {
    /// The only destination does not exist.
    Missing,
    Weighted(Vec<(Arc<Cluster>, u32)>),
}

fn compile_destinations(
    action: &GlooRouteAction,
    field: &FieldPath,
    namespace: &str,
    destinations: &Destinations,
    findings: &mut Findings,
) -> Option<Targets> {
    match action {
        GlooRouteAction::Single(destination) => {
            let upstream = &destination.upstream;
            let key = (
                upstream.namespace_or(namespace).to_owned(),
                upstream.name.clone(),
            );
            Some(match destinations.clusters.get(&key) {
                Some(cluster) => Targets::Weighted(vec![(Arc::clone(cluster), 1)]),
                None => {
                    findings.warning(
                        &field.field("single").field("upstream"),
                        upstream_not_found(&key),
                    );
                    Targets::Missing
                }
            })
        }
        GlooRouteAction::Multi(multi) => {
            let field = field.field("multi").field("destinations");
            if multi.destinations.is_empty() {
                findings.error(&field, "no destinations specified");
                return None;
            }
            let mut targets = Vec::new();
            for (index, destination) in multi.destinations.iter().enumerate() {
                let upstream = &destination.destination.upstream;
                let key = (
                    upstream.namespace_or(namespace).to_owned(),
                    upstream.name.clone(),
                );
                let cluster = match destinations.clusters.get(&key) {
                    Some(cluster) => Arc::clone(cluster),
                    None => {
                        let upstream_field =
                            field.index(index).field("destination").field("upstream");
                        findings.warning(&upstream_field, upstream_not_found(&key));
                        // Picking it answers 503, like a cluster Envoy does not know.
                        Arc::new(Cluster::new(format!("{}_{}", key.1, key.0), Vec::new()))
                    }
                };
                targets.push((cluster, destination.effective_weight()));
            }
            check_weights(&targets, &field, findings).then_some(Targets::Weighted(targets))
        }
        GlooRouteAction::UpstreamGroup(reference) => {
            let key = (
                reference.namespace_or(namespace).to_owned(),
                reference.name.clone(),
            );
            Some(match destinations.groups.get(&key) {
                Some(group) => {
                    if destinations.rejected_groups.contains(&key) {
                        findings.warning(
                            &field.field("upstreamGroup"),
                            format!(
                                "UpstreamGroup {}/{} is Rejected; its last accepted version is served",
                                key.0, key.1
                            ),
                        );
                    }
                    Targets::Weighted(group.clone())
                }
                None => {
                    findings.warning(
                        &field.field("upstreamGroup"),
                        format!(
                            "InvalidDestinationWarning: *v1.UpstreamGroup {{{} {}}} not found (missing or never accepted)",
                            key.0, key.1
                        ),
                    );
                    Targets::Missing
                }
            })
        }
    }
}

fn upstream_not_found((namespace, name): &NamespacedName) -> String {
    format!(
        "InvalidDestinationWarning: *v1.Upstream {{{namespace} {name}}} not found (missing or never accepted)"
    )
}

fn check_weights(
    targets: &[(Arc<Cluster>, u32)],
    field: &FieldPath,
    findings: &mut Findings,
) -> bool {
    let total: u64 = targets.iter().map(|(_, weight)| u64::from(*weight)).sum();
    if total == 0 {
        findings.error(
            field,
            "weighted destinations require a total weight >= 1 (the weights add up to 0)",
        );
        false
    } else if total > u64::from(u32::MAX) {
        findings.error(
            field,
            format!("the weights add up to {total}, more than {}", u32::MAX),
        );
        false
    } else {
        true
    }
}

fn compile_forward(
    destinations: Vec<(Arc<Cluster>, u32)>,
    options: RouteOptions,
    field: &FieldPath,
    findings: &mut Findings,
) -> ActionPlan {
    // `prefixRewrite: ""` is ignored by Gloo (no rewrite), not "strip the prefix".
    let prefix = options.prefix_rewrite.filter(|prefix| !prefix.is_empty());
    let rewrite = match (prefix, &options.regex_rewrite) {
        (Some(_), Some(_)) => {
            findings.error(
                &field.field("regexRewrite"),
                "prefixRewrite and regexRewrite cannot both be set",
            );
            RewritePlan::None
        }
        (Some(prefix), None) => RewritePlan::Prefix(prefix),
        (None, Some(regex_rewrite)) => {
            let pattern_field = field.field("regexRewrite").field("pattern").field("regex");
            match FullRegex::new(&regex_rewrite.pattern.regex) {
                Ok(pattern) => RewritePlan::Regex(pattern, regex_rewrite.substitution.clone()),
                Err(error) => {
                    findings.error(&pattern_field, super::invalid_regex(&error));
                    RewritePlan::None
                }
            }
        }
        (None, None) => RewritePlan::None,
    };
    let timeout = match options.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(timeout) if timeout.0.is_zero() => None,
        Some(timeout) => Some(timeout.0),
    };
    let retry = options.retries.as_ref().and_then(|retries| {
        let field = field.field("retries");
        let mut retry_on = RetryOn::default();
        for condition in retries
            .retry_on
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
        {
            if condition.is_empty() {
                continue;
            }
            match RetryOn::parse(condition) {
                Ok(parsed) => retry_on = merge_retry_on(retry_on, parsed),
                Err(_) => findings.warning(
                    &field.field("retryOn"),
                    format!("unsupported retry condition {condition:?} ignored"),
                ),
            }
        }
        // Envoy retries nothing without a condition.
        (retry_on != RetryOn::default()).then(|| RetryPolicy {
            num_retries: retries.num_retries.unwrap_or(1),
            per_try_timeout: retries
                .per_try_timeout
                .map(|timeout| timeout.0)
                .filter(|timeout| !timeout.is_zero()),
            retry_on,
            backoff_base: None,
        })
    });
    let (request_headers, response_headers) = match &options.header_manipulation {
        Some(manipulation) => {
            header_edits(manipulation, &field.field("headerManipulation"), findings)
        }
        None => (HeaderEdits::default(), HeaderEdits::default()),
    };
    ActionPlan::Forward(Box::new(ForwardPlan {
        destinations,
        rewrite,
        timeout,
        retry,
        request_headers,
        response_headers,
    }))
}

fn merge_retry_on(a: RetryOn, b: RetryOn) -> RetryOn {
    RetryOn {
        server_error: a.server_error || b.server_error,
        gateway_error: a.gateway_error || b.gateway_error,
        connect_failure: a.connect_failure || b.connect_failure,
        retriable_4xx: a.retriable_4xx || b.retriable_4xx,
        reset: a.reset || b.reset,
        status_codes: [a.status_codes, b.status_codes].concat(),
    }
}

fn header_edits(
    manipulation: &HeaderManipulation,
    field: &FieldPath,
    findings: &mut Findings,
) -> (HeaderEdits, HeaderEdits) {
    let additions = |list: &[HeaderValueOption], name: &str, findings: &mut Findings| {
        let mut added = Vec::new();
        for (index, option) in list.iter().enumerate() {
            let header_field = field.field(name).index(index).field("header");
            let header_name = HeaderName::from_bytes(option.header.key.as_bytes());
            let value = HeaderValue::from_str(&option.header.value);
            match (header_name, value) {
                (Ok(header_name), Ok(value)) => {
                    added.push((header_name, value, option.append.unwrap_or(true)))
                }
                (Err(_), _) => findings.error(
                    &header_field.field("key"),
                    format!("{:?} is not a valid header name", option.header.key),
                ),
                (_, Err(_)) => findings.error(
                    &header_field.field("value"),
                    format!("{:?} is not a valid header value", option.header.value),
                ),
            }
        }
        added
    };
    let removals = |list: &[String], name: &str, findings: &mut Findings| {
        let mut removed = Vec::new();
        for (index, header) in list.iter().enumerate() {
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(header_name) => removed.push(header_name),
                Err(_) => findings.error(
                    &field.field(name).index(index),
                    format!("{header:?} is not a valid header name"),
                ),
            }
        }
        removed
    };
    let request = HeaderEdits {
        add: additions(
            &manipulation.request_headers_to_add,
            "requestHeadersToAdd",
            findings,
        ),
        remove: removals(
            &manipulation.request_headers_to_remove,
            "requestHeadersToRemove",
            findings,
        ),
    };
    let response = HeaderEdits {
        add: additions(
            &manipulation.response_headers_to_add,
            "responseHeadersToAdd",
            findings,
        ),
        remove: removals(
            &manipulation.response_headers_to_remove,
            "responseHeadersToRemove",
            findings,
        ),
    };
    (request, response)
}

fn compile_direct_response(
    direct: &DirectResponseAction,
    options: Option<&RouteOptions>,
    field: &FieldPath,
    options_field: &FieldPath,
    findings: &mut Findings,
) -> ActionPlan {
    if let Some(options) = options {
        // Gloo's basic route plugin refuses rewrites on anything but routeAction routes.
        if options
            .prefix_rewrite
            .as_deref()
            .is_some_and(|prefix| !prefix.is_empty())
        {
            findings.error(
                &options_field.field("prefixRewrite"),
                "prefixRewrite is only valid on routeAction routes",
            );
        }
        if options.regex_rewrite.is_some() {
            findings.error(
                &options_field.field("regexRewrite"),
                "regexRewrite is only valid on routeAction routes",
            );
        }
    }
    let status = u16::try_from(direct.status)
        .ok()
        .filter(|status| (200..600).contains(status))
        .and_then(|status| StatusCode::from_u16(status).ok());
    let status = status.unwrap_or_else(|| {
        findings.error(
            &field.field("status"),
            format!("{} is not an HTTP status in 200..599", direct.status),
        );
        StatusCode::INTERNAL_SERVER_ERROR
    });
    ActionPlan::Respond {
        status,
        body: Bytes::from(direct.body.clone().unwrap_or_default()),
    }
}

fn compile_matcher(
    matcher: &Matcher,
    field: &FieldPath,
    findings: &mut Findings,
) -> Option<RouteMatcher> {
    let errors_before = findings.errors.len();
    let path = match &matcher.path {
        None => PathMatcher::Prefix("/".to_owned()),
        Some(model::gloo::PathMatcher::Prefix(prefix)) => PathMatcher::Prefix(prefix.clone()),
        Some(model::gloo::PathMatcher::Exact(exact)) => PathMatcher::Exact(exact.clone()),
        Some(model::gloo::PathMatcher::Regex(regex)) => match FullRegex::new(regex) {
            Ok(regex) => PathMatcher::Regex(regex),
            Err(error) => {
                findings.error(&field.field("regex"), super::invalid_regex(&error));
                return None;
            }
        },
    };
    let mut headers = Vec::new();
    for (index, header) in matcher.headers.iter().enumerate() {
        let header_field = field.field("headers").index(index);
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            findings.error(
                &header_field.field("name"),
                format!("{:?} is not a header name colormesh can match (pseudo-headers are not supported)", header.name),
            );
            continue;
        };
        let value = match (&header.value, header.regex) {
            (None, _) => ValueMatcher::Present,
            (Some(value), false) => ValueMatcher::Exact(value.clone()),
            (Some(value), true) => match FullRegex::new(value) {
                Ok(regex) => ValueMatcher::Regex(regex),
                Err(error) => {
                    findings.error(&header_field.field("value"), super::invalid_regex(&error));
                    continue;
                }
            },
        };
        headers.push(HeaderMatcher {
            name,
            value,
            invert: header.invert_match,
        });
    }
    let mut query_parameters = Vec::new();
    for (index, parameter) in matcher.query_parameters.iter().enumerate() {
        let value = match (&parameter.value, parameter.regex) {
            (None, _) => ValueMatcher::Present,
            (Some(value), false) => ValueMatcher::Exact(value.clone()),
            (Some(value), true) => match FullRegex::new(value) {
                Ok(regex) => ValueMatcher::Regex(regex),
                Err(error) => {
                    findings.error(
                        &field.field("queryParameters").index(index).field("value"),
                        super::invalid_regex(&error),
                    );
                    continue;
                }
            },
        };
        query_parameters.push(QueryParameterMatcher {
            name: parameter.name.clone(),
            value,
        });
    }
    let mut methods = Vec::new();
    for (index, method) in matcher.methods.iter().enumerate() {
        match Method::from_bytes(method.as_bytes()) {
            Ok(method) => methods.push(method),
            Err(_) => findings.error(
                &field.field("methods").index(index),
                format!("{method:?} is not an HTTP method"),
            ),
        }
    }
    (findings.errors.len() == errors_before).then(|| RouteMatcher {
        path,
        case_sensitive: matcher.case_sensitive.unwrap_or(true),
        headers,
        query_parameters,
        methods,
    })
}

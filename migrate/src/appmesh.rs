//! App Mesh inside: each VirtualService becomes a GAMMA HTTPRoute whose parentRef is the
//! Service its name resolves to, in that Service's namespace; a VirtualRouter's routes (in
//! priority order) become its rules, weighted targets backendRefs to the Services of the virtual
//! nodes (their DNS service discovery hostname). App Mesh's implicit retries and 15 s timeout are
//! written out.

use std::collections::{BTreeMap, BTreeSet};

use model::appmesh::{
    EgressFilterType, HeaderMatchMethod, HttpRoute, PathMatch, PortProtocol, Provider, RouteSpec,
    VirtualNode,
};
use model::dns::ServiceHost;
use model::gateway_api::{
    HTTPRoute, HttpHeaderMatch, HttpMethod, HttpPathMatch, HttpQueryParamMatch, HttpRouteMatch,
    HttpRouteRule, HttpRouteSpec, ParentReference, PathMatchType, ValueMatchType,
};
use model::k8s::ObjectMeta;
use model::{Loaded, ResourceKey, ResourceKind};

use crate::context::{Context, Item, ServicePort, match_patterns, route_target, source};
use crate::drift::{DriftKind, Mapping, RequestPattern};
use crate::order::{OrderEntry, route_order_items};
use crate::policy::{self, ENVOY_ROUTE_TIMEOUT, Retry};
use crate::prefix::prefix_items;

/// Converts every App Mesh VirtualService; returns the GAMMA HTTPRoutes.
pub(crate) fn convert(ctx: &mut Context<'_>) -> Vec<HTTPRoute> {
    let services: Vec<Loaded> = ctx
        .set
        .appmesh_virtual_services()
        .map(|(l, _)| l.clone())
        .collect();
    let mut routes: Vec<HTTPRoute> = Vec::new();
    let mut parents: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut nodes_seen = BTreeSet::new();
    let mut routed: Vec<(String, ServiceHost, String, Vec<String>)> = Vec::new();
    for loaded in &services {
        let model::Resource::AppMeshVirtualService(vs) = &loaded.resource else {
            continue;
        };
        let namespace = vs
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let vs_name = vs.metadata.name.clone().unwrap_or_default();
        ctx.mesh_namespaces.insert(namespace.clone());
        ignored(ctx, loaded);
        let dns = vs.spec.aws_name.clone().unwrap_or_else(|| vs_name.clone());
        let parent = match ServiceHost::parse(&dns, &namespace) {
            Ok(parent) => parent,
            Err(error) => {
                ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "spec.awsName"), None,
                    format!("The virtual service name does not name a Kubernetes Service ({error}); a GAMMA route needs a Service as its parent, so this virtual service is not carried over.")));
                continue;
            }
        };
        if ctx.service(&parent.namespace, &parent.service).is_none() {
            ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "metadata.name"), None,
                format!("Clients call {dns}, but the input has no Service {}/{}: a GAMMA route attaches to a Service, so this virtual service is not carried over (add the Service and migrate again).", parent.namespace, parent.service))
                .affects([RequestPattern { host: Some(dns.clone()), ..RequestPattern::default() }]));
            continue;
        }
        let route_name = format!("{}-route", parent.service);
        if let Some(first) = parents.get(&(parent.namespace.clone(), parent.service.clone())) {
            ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, ""), None,
                format!("{first} already resolves to Service {}/{}; a second GAMMA route for the same Service would compete with it, so this one is not carried over.", parent.namespace, parent.service)));
            continue;
        }
        parents.insert(
            (parent.namespace.clone(), parent.service.clone()),
            source(loaded, ""),
        );
        ctx.mesh_namespaces.insert(parent.namespace.clone());
        let route_ns = parent.namespace.clone();
        let target = |i: usize| route_target(&route_ns, &route_name, &format!("spec.rules[{i}]"));
        let host = Some(dns.as_str());
        let mut rules = Vec::new();
        let mut order = Vec::new();
        let mut prefixes = Vec::new();
        let listener_port;
        match &vs.spec.provider {
            None => {
                ctx.push(Item::new(DriftKind::Other, Mapping::Exact, source(loaded, "spec.provider"), None,
                    "No provider: App Mesh routes nothing for this virtual service, and no route is written."));
                continue;
            }
            Some(Provider::VirtualNode(reference)) => {
                let node_ns = reference.namespace_or(&namespace).to_owned();
                let Some(node_loaded) = node(ctx, &node_ns, &reference.name) else {
                    ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "spec.provider.virtualNode.virtualNodeRef"), None,
                        format!("The virtual node {node_ns}/{} is not in the input; its Service is unknown.", reference.name)));
                    continue;
                };
                let model::Resource::VirtualNode(vn) = &node_loaded.resource else {
                    continue;
                };
                let http_port = vn
                    .spec
                    .listeners
                    .iter()
                    .find(|l| is_http(l.port_mapping.protocol))
                    .map(|l| l.port_mapping.port);
                let Some(port) = http_port else {
                    ctx.push(Item::new(DriftKind::Other, Mapping::Exact, source(loaded, "spec.provider.virtualNode"), None,
                        format!("{} listens for TCP only: App Mesh forwards its connections unchanged, as a plain Service does; no HTTPRoute is written (GAMMA routes HTTP).", reference.name)));
                    continue;
                };
                listener_port = Some(port);
                let Some(service) =
                    node_service(ctx, &mut nodes_seen, &node_loaded, vn, None, &target(0))
                else {
                    continue;
                };
                ctx.refer(&route_ns, &service);
                let (timeouts, retry) = defaults(
                    ctx,
                    loaded,
                    "spec.provider.virtualNode",
                    &target(0),
                    None,
                    None,
                    &[],
                    host,
                );
                rules.push(HttpRouteRule {
                    name: None,
                    matches: vec![HttpRouteMatch::default()],
                    filters: Vec::new(),
                    backend_refs: vec![service.backend_ref(&route_ns, 1)],
                    timeouts,
                    retry,
                });
            }
            Some(Provider::VirtualRouter(reference)) => {
                let router_ns = reference.namespace_or(&namespace).to_owned();
                let key = ResourceKey::new(
                    ResourceKind::VirtualRouter,
                    Some(&router_ns),
                    &reference.name,
                );
                let Some(router_loaded) = ctx.set.get(&key).cloned() else {
                    ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "spec.provider.virtualRouter.virtualRouterRef"), None,
                        format!("The virtual router {router_ns}/{} is not in the input; its routes are unknown.", reference.name)));
                    continue;
                };
                let model::Resource::VirtualRouter(router) = &router_loaded.resource else {
                    continue;
                };
                ignored(ctx, &router_loaded);
                listener_port = router.spec.listeners.first().map(|l| l.port_mapping.port);
                let mut ordered: Vec<(usize, &model::appmesh::Route)> =
                    router.spec.routes.iter().enumerate().collect();
                ordered.sort_by_key(|(i, r)| (r.priority.is_none(), r.priority.unwrap_or(0), *i));
                for (position, (index, route)) in ordered.into_iter().enumerate() {
                    let field = format!("spec.routes[{index}]");
                    match &route.spec {
                        RouteSpec::Tcp(_) => {
                            ctx.push(Item::new(DriftKind::Other, Mapping::Unmappable, source(&router_loaded, &format!("{field}.tcpRoute")), None,
                                "A TCP route has no GAMMA HTTPRoute equivalent (TCPRoute is experimental and not written here); connections go to the Service as a plain Service sends them."));
                        }
                        RouteSpec::Http(http) => {
                            let field = format!("{field}.httpRoute");
                            let rule_index = rules.len();
                            let Some(rule) = http_rule(
                                ctx,
                                &mut nodes_seen,
                                &router_loaded,
                                &router_ns,
                                &field,
                                http,
                                &route_ns,
                                &target(rule_index),
                                listener_port,
                                host,
                            ) else {
                                continue;
                            };
                            for m in &rule.matches {
                                order.push(OrderEntry {
                                    position,
                                    source: source(&router_loaded, &format!("{field}.match")),
                                    target: target(rule_index),
                                    m: m.clone(),
                                });
                                prefixes.push((
                                    m.clone(),
                                    source(&router_loaded, &format!("{field}.match.prefix")),
                                    rule_index,
                                ));
                            }
                            rules.push(rule);
                        }
                    }
                }
                if router.spec.routes.iter().any(|r| r.priority.is_some()) {
                    ctx.push(Item::new(DriftKind::RouteOrder, Mapping::Exact, source(&router_loaded, "spec.routes[].priority"), Some(route_target(&route_ns, &route_name, "spec.rules")),
                        "Route priorities set the order App Mesh tries routes in; the rules are written in that order, which Gateway API uses to break ties between equally specific matches."));
                }
            }
        }
        if rules.is_empty() {
            continue;
        }
        for (m, src, rule_index) in &prefixes {
            prefix_items(
                ctx,
                src.clone(),
                "App Mesh",
                m,
                &rules,
                *rule_index,
                &route_ns,
                &route_name,
                host,
            );
        }
        for item in route_order_items(&order, host, "App Mesh") {
            ctx.push(item);
        }
        let port =
            listener_port.filter(|p| ctx.service_has_port(&parent.namespace, &parent.service, *p));
        ctx.push(Item::new(DriftKind::Backend, Mapping::Exact, source(loaded, ""), Some(route_target(&route_ns, &route_name, "spec.parentRefs[0]")),
            format!("Clients call {dns}: the GAMMA HTTPRoute's parent is Service {}/{}{} (group \"\", kind Service), in the Service's namespace, so the mesh applies it to every call to that Service.", parent.namespace, parent.service, port.map(|p| format!(" port {p}")).unwrap_or_default())));
        let servers: Vec<String> = rules
            .iter()
            .flat_map(|r| r.backend_refs.iter().map(|b| b.name.clone()))
            .collect();
        routed.push((vs_name.clone(), parent.clone(), source(loaded, ""), servers));
        routes.push(HTTPRoute {
            metadata: ObjectMeta {
                name: Some(route_name.clone()),
                namespace: Some(route_ns.clone()),
                ..ObjectMeta::default()
            },
            spec: HttpRouteSpec {
                parent_refs: vec![ParentReference {
                    group: String::new(),
                    kind: "Service".into(),
                    namespace: None,
                    name: parent.service.clone(),
                    section_name: None,
                    port,
                }],
                hostnames: Vec::new(),
                rules,
            },
            status: None,
        });
    }
    clients(ctx, &routed);
    for (loaded, _) in ctx
        .set
        .virtual_nodes()
        .map(|(l, v)| (l.clone(), v.clone()))
        .collect::<Vec<_>>()
    {
        let ns = loaded
            .resource
            .metadata()
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        ctx.mesh_namespaces.insert(ns);
        if !nodes_seen.contains(&loaded.resource.key().to_string()) {
            ignored(ctx, &loaded);
        }
        node_extras(ctx, &loaded);
    }
    routes
}

fn is_http(protocol: PortProtocol) -> bool {
    matches!(protocol, PortProtocol::Http | PortProtocol::Http2)
}

fn node(ctx: &Context<'_>, namespace: &str, name: &str) -> Option<Loaded> {
    ctx.set
        .get(&ResourceKey::new(
            ResourceKind::VirtualNode,
            Some(namespace),
            name,
        ))
        .cloned()
}

/// The Service a virtual node's DNS service discovery names, and its port.
fn node_service(
    ctx: &mut Context<'_>,
    seen: &mut BTreeSet<String>,
    loaded: &Loaded,
    vn: &VirtualNode,
    port: Option<u16>,
    target: &str,
) -> Option<ServicePort> {
    let namespace = vn
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let first_time = seen.insert(loaded.resource.key().to_string());
    if first_time {
        ignored(ctx, loaded);
    }
    let Some(hostname) = vn
        .spec
        .service_discovery
        .as_ref()
        .and_then(|d| d.dns.as_ref())
        .map(|d| d.hostname.clone())
    else {
        if first_time {
            ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "spec.serviceDiscovery"), None,
                "Only DNS service discovery names a Kubernetes Service (Cloud Map does not); this node's traffic share is left out."));
        }
        return None;
    };
    let host = match ServiceHost::parse(&hostname, &namespace) {
        Ok(host) => host,
        Err(error) => {
            if first_time {
                ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(loaded, "spec.serviceDiscovery.dns.hostname"), None,
                    format!("{error}; a backendRef needs a Service, so this node's traffic share is left out.")));
            }
            return None;
        }
    };
    let port = port
        .or(host.port)
        .or_else(|| {
            vn.spec
                .listeners
                .iter()
                .find(|l| is_http(l.port_mapping.protocol))
                .map(|l| l.port_mapping.port)
        })
        .or_else(|| vn.spec.listeners.first().map(|l| l.port_mapping.port))?;
    let service = ServicePort {
        namespace: host.namespace.clone(),
        name: host.service.clone(),
        port,
    };
    if first_time {
        let present = ctx.service(&service.namespace, &service.name).is_some();
        ctx.push(Item::new(DriftKind::Backend, if present { Mapping::Exact } else { Mapping::Approximate }, source(loaded, "spec.serviceDiscovery.dns.hostname"), Some(target.to_owned()),
            if present { format!("Virtual node {} (DNS hostname {hostname}) becomes a backendRef to {service}.", vn.metadata.name.as_deref().unwrap_or("")) }
            else { format!("Virtual node {} (DNS hostname {hostname}) becomes a backendRef to {service}, which is not in the input: it must exist in the cluster (Gateway API answers 500 for its share until it does).", vn.metadata.name.as_deref().unwrap_or("")) }));
    }
    Some(service)
}

/// One App Mesh HTTP route as a rule.
#[allow(clippy::too_many_arguments)]
fn http_rule(
    ctx: &mut Context<'_>,
    seen: &mut BTreeSet<String>,
    router: &Loaded,
    router_ns: &str,
    field: &str,
    http: &HttpRoute,
    route_ns: &str,
    target: &str,
    listener_port: Option<u16>,
    host: Option<&str>,
) -> Option<HttpRouteRule> {
    let spec = &http.match_;
    let mfield = format!("{field}.match");
    let path = match (&spec.prefix, &spec.path) {
        (Some(p), _) if p == "/" || p.is_empty() => HttpPathMatch::default(),
        (Some(p), _) => HttpPathMatch {
            match_type: PathMatchType::PathPrefix,
            value: p.clone(),
        },
        (None, Some(PathMatch::Exact(p))) => HttpPathMatch {
            match_type: PathMatchType::Exact,
            value: p.clone(),
        },
        (None, Some(PathMatch::Regex(r))) => {
            ctx.push(Item::new(DriftKind::Match, Mapping::Exact, source(router, &format!("{mfield}.path.regex")), None,
                "A path regex becomes path type RegularExpression (RE2 in Envoy-based implementations, as in App Mesh's Envoy)."));
            HttpPathMatch {
                match_type: PathMatchType::RegularExpression,
                value: r.clone(),
            }
        }
        (None, None) => HttpPathMatch::default(),
    };
    let unmappable = |ctx: &mut Context<'_>, f: String, why: String| {
        ctx.push(Item::new(DriftKind::Match, Mapping::Unmappable, source(router, &f), None,
            format!("{why}; the route is left out, so its requests fall to another rule or to the Service itself.")));
    };
    let mut headers = Vec::new();
    for (i, h) in spec.headers.iter().enumerate() {
        let hf = format!("{mfield}.headers[{i}]");
        if h.invert == Some(true) {
            unmappable(
                ctx,
                format!("{hf}.invert"),
                format!(
                    "An inverted header match on {:?} has no Gateway API equivalent",
                    h.name
                ),
            );
            return None;
        }
        let (match_type, value) = match &h.match_ {
            None => (ValueMatchType::RegularExpression, ".*".to_owned()),
            Some(HeaderMatchMethod::Exact(v)) => (ValueMatchType::Exact, v.clone()),
            Some(HeaderMatchMethod::Regex(v)) => (ValueMatchType::RegularExpression, v.clone()),
            Some(HeaderMatchMethod::Prefix(v)) => (
                ValueMatchType::RegularExpression,
                format!("{}.*", regex::escape(v)),
            ),
            Some(HeaderMatchMethod::Suffix(v)) => (
                ValueMatchType::RegularExpression,
                format!(".*{}", regex::escape(v)),
            ),
            Some(HeaderMatchMethod::Range(_)) => {
                unmappable(
                    ctx,
                    format!("{hf}.match.range"),
                    format!(
                        "A numeric range match on {:?} has no Gateway API equivalent",
                        h.name
                    ),
                );
                return None;
            }
        };
        headers.push(HttpHeaderMatch {
            match_type,
            name: h.name.clone(),
            value,
        });
    }
    let method = match &spec.method {
        None => None,
        Some(m) => match serde_json::from_value::<HttpMethod>(serde_json::Value::String(m.clone()))
        {
            Ok(m) => Some(m),
            Err(_) => {
                unmappable(
                    ctx,
                    format!("{mfield}.method"),
                    format!("{m:?} is not a method Gateway API can match"),
                );
                return None;
            }
        },
    };
    if let Some(scheme) = &spec.scheme
        && scheme != "http"
    {
        unmappable(
            ctx,
            format!("{mfield}.scheme"),
            format!(
                "A scheme match ({scheme:?}) has no Gateway API equivalent (the mesh carries plain HTTP)"
            ),
        );
        return None;
    }
    if let Some(port) = spec.port
        && Some(port) != listener_port
    {
        unmappable(
            ctx,
            format!("{mfield}.port"),
            format!(
                "A route match on port {port} (not the router's listener port) has no rule-level equivalent"
            ),
        );
        return None;
    }
    let query_params: Vec<HttpQueryParamMatch> = spec
        .query_parameters
        .iter()
        .map(|q| match q.match_.as_ref().and_then(|m| m.exact.clone()) {
            Some(v) => HttpQueryParamMatch {
                match_type: ValueMatchType::Exact,
                name: q.name.clone(),
                value: v,
            },
            None => HttpQueryParamMatch {
                match_type: ValueMatchType::RegularExpression,
                name: q.name.clone(),
                value: ".*".into(),
            },
        })
        .collect();
    if !headers.is_empty() || method.is_some() || !query_params.is_empty() {
        ctx.push(Item::new(DriftKind::Match, Mapping::Exact, source(router, &mfield), None,
            "Header, method and query conditions become matches[].headers, method and queryParams (prefix and suffix header matches as RegularExpression, presence as `.*`)."));
    }
    let m = HttpRouteMatch {
        path,
        headers,
        query_params,
        method,
    };
    let mut backend_refs = Vec::new();
    let mut listed = Vec::new();
    for (i, t) in http.action.weighted_targets.iter().enumerate() {
        let node_ns = t.virtual_node_ref.namespace_or(router_ns).to_owned();
        let Some(node_loaded) = node(ctx, &node_ns, &t.virtual_node_ref.name) else {
            ctx.push(Item::new(DriftKind::Backend, Mapping::Unmappable, source(router, &format!("{field}.action.weightedTargets[{i}]")), None,
                format!("The virtual node {node_ns}/{} is not in the input; its share (weight {}) is left out.", t.virtual_node_ref.name, t.weight)));
            continue;
        };
        let model::Resource::VirtualNode(vn) = &node_loaded.resource else {
            continue;
        };
        let Some(service) = node_service(ctx, seen, &node_loaded, vn, t.port, target) else {
            continue;
        };
        ctx.refer(route_ns, &service);
        listed.push(format!("{} {}", service.name, t.weight));
        backend_refs.push(service.backend_ref(route_ns, t.weight));
    }
    ctx.push(Item::new(
        DriftKind::Weights,
        Mapping::Exact,
        source(router, &format!("{field}.action.weightedTargets")),
        Some(format!("{target}.backendRefs")),
        format!(
            "Weighted targets become weighted backendRefs with the same weights ({}).",
            listed.join(", ")
        ),
    ));
    let (timeouts, retry) = defaults(
        ctx,
        router,
        field,
        target,
        http.retry_policy.as_ref(),
        http.timeout.as_ref(),
        std::slice::from_ref(&m),
        host,
    );
    Some(HttpRouteRule {
        name: None,
        matches: vec![m],
        filters: Vec::new(),
        backend_refs,
        timeouts,
        retry,
    })
}

/// The retry and timeout of a route: explicit ones mapped, App Mesh's implicit ones written out.
#[allow(clippy::too_many_arguments)]
fn defaults(
    ctx: &mut Context<'_>,
    loaded: &Loaded,
    field: &str,
    target: &str,
    retry_policy: Option<&model::appmesh::HttpRetryPolicy>,
    timeout: Option<&model::appmesh::HttpTimeout>,
    matches: &[HttpRouteMatch],
    host: Option<&str>,
) -> (
    Option<model::gateway_api::HttpRouteTimeouts>,
    Option<model::gateway_api::HttpRouteRetry>,
) {
    let patterns: Vec<RequestPattern> = if matches.is_empty() {
        vec![RequestPattern {
            host: host.map(str::to_owned),
            ..RequestPattern::default()
        }]
    } else {
        matches
            .iter()
            .flat_map(|m| match_patterns(m, host))
            .collect()
    };
    let request = match timeout.and_then(|t| t.per_request) {
        None => {
            ctx.push(Item::new(DriftKind::ImplicitDefault, Mapping::Exact, source(loaded, &format!("{field}.timeout.perRequest")), Some(format!("{target}.timeouts.request")),
                "No per-request timeout: App Mesh's Envoy applies 15 s. Gateway API leaves an absent timeout to the implementation, so it is written out as timeouts.request 15s."));
            Some(ENVOY_ROUTE_TIMEOUT)
        }
        Some(d) => {
            let d = d.to_std();
            ctx.push(Item::new(
                DriftKind::Timeout,
                Mapping::Exact,
                source(loaded, &format!("{field}.timeout.perRequest")),
                Some(format!("{target}.timeouts.request")),
                format!(
                    "The per-request timeout becomes timeouts.request {}{}.",
                    policy::duration(d).as_str(),
                    if d.is_zero() {
                        " (disabled in both)"
                    } else {
                        ""
                    }
                ),
            ));
            Some(d)
        }
    };
    if timeout.and_then(|t| t.idle).is_some() {
        ctx.push(
            Item::new(
                DriftKind::Timeout,
                Mapping::Unmappable,
                source(loaded, &format!("{field}.timeout.idle")),
                None,
                "An idle timeout has no HTTPRoute equivalent; the implementation's own applies.",
            )
            .affects(patterns.clone()),
        );
    }
    let Some(policy_in) = retry_policy else {
        let retry = Retry {
            codes: [503].into(),
            attempts: 2,
            ..Retry::default()
        };
        ctx.push(Item::new(DriftKind::ImplicitDefault, Mapping::Approximate, source(loaded, &format!("{field}.retryPolicy")), Some(format!("{target}.retry")),
            "No retry policy: App Mesh retried twice on a 503, a connection failure and a refused stream (and on gRPC `unavailable`, for gRPC routes). Written out as retry codes [503], attempts 2, backoff 25ms; Gateway API retries on status codes only, so connection failures and refused streams are retried or not as the implementation chooses.")
            .affects(patterns)
            .before_after("retried twice when the connection fails or the stream is refused", "retried only if the implementation retries connection errors"));
        return (policy::timeouts(request, None), retry.to_gateway());
    };
    let mut retry = Retry {
        attempts: policy_in.max_retries,
        per_try: Some(policy_in.per_retry_timeout.to_std()).filter(|d| !d.is_zero()),
        ..Retry::default()
    };
    for event in &policy_in.http_retry_events {
        match event.as_str() {
            "server-error" => retry.codes.extend(policy::all_5xx()),
            "gateway-error" => retry.codes.extend([502, 503, 504]),
            "client-error" => {
                retry.codes.insert(409);
            }
            "stream-error" => retry
                .inexpressible
                .push("stream-error (refused streams, resets)".into()),
            other => retry.unknown.push(other.to_owned()),
        }
    }
    for event in &policy_in.tcp_retry_events {
        retry.inexpressible.push(format!("tcpRetryEvents {event}"));
    }
    let gateway = retry.to_gateway();
    let mut notes = Vec::new();
    if !retry.inexpressible.is_empty() {
        notes.push(format!(
            "Gateway API retries on status codes only: {} cannot be expressed",
            retry.inexpressible.join(", ")
        ));
    }
    if !retry.unknown.is_empty() {
        notes.push(format!(
            "{} are not retry events Gateway API knows",
            retry.unknown.join(", ")
        ));
    }
    let mapping = match (&gateway, notes.is_empty()) {
        (_, true) => Mapping::Exact,
        (Some(_), false) => Mapping::Approximate,
        (None, false) => Mapping::Unmappable,
    };
    let mut item = Item::new(
        DriftKind::Retry,
        mapping,
        source(loaded, &format!("{field}.retryPolicy")),
        gateway.as_ref().map(|_| format!("{target}.retry")),
        format!(
            "The retry policy becomes retry.codes [{}], attempts {} (maxRetries), backoff 25ms{}.{}",
            retry.codes_text(),
            retry.attempts,
            retry
                .per_try
                .map(|d| format!(
                    ", and perRetryTimeout timeouts.backendRequest {}",
                    policy::duration(d).as_str()
                ))
                .unwrap_or_default(),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" {}.", notes.join("; "))
            }
        ),
    );
    if mapping != Mapping::Exact {
        item = item
            .affects(patterns)
            .before_after("retried on the events listed", "not retried on them");
    }
    ctx.push(item);
    (
        policy::timeouts(request, retry.per_try.filter(|_| gateway.is_some())),
        gateway,
    )
}

/// App Mesh applied a virtual service's routes only to nodes that declared it as a backend;
/// GAMMA applies a Service's route to every meshed client.
fn clients(ctx: &mut Context<'_>, routed: &[(String, ServiceHost, String, Vec<String>)]) {
    let nodes: Vec<(Loaded, VirtualNode)> = ctx
        .set
        .virtual_nodes()
        .map(|(l, v)| (l.clone(), v.clone()))
        .collect();
    let drop_all = ctx.set.meshes().any(|(_, m)| {
        m.spec
            .egress_filter
            .as_ref()
            .is_some_and(|e| e.type_ == EgressFilterType::DropAll)
    });
    for (vs_name, parent, vs_source, servers) in routed {
        let serves = |vn: &VirtualNode| {
            vn.spec
                .service_discovery
                .as_ref()
                .and_then(|d| d.dns.as_ref())
                .and_then(|d| {
                    ServiceHost::parse(
                        &d.hostname,
                        vn.metadata.namespace.as_deref().unwrap_or("default"),
                    )
                    .ok()
                })
                .is_some_and(|h| servers.contains(&h.service))
        };
        let undeclared: Vec<String> = nodes
            .iter()
            .filter(|(_, vn)| {
                vn.spec
                    .listeners
                    .iter()
                    .any(|l| is_http(l.port_mapping.protocol))
            })
            .filter(|(_, vn)| !serves(vn))
            .filter(|(_, vn)| {
                !vn.spec
                    .backends
                    .iter()
                    .any(|b| b.virtual_service.virtual_service_ref.name == *vs_name)
            })
            .filter_map(|(_, vn)| vn.metadata.name.clone())
            .collect();
        if undeclared.is_empty() {
            continue;
        }
        let host = format!("{}.{}", parent.service, parent.namespace);
        ctx.push(Item::new(DriftKind::Mesh, if drop_all { Mapping::Unmappable } else { Mapping::Approximate },
            format!("{vs_source} (clients: virtual nodes without it in spec.backends: {})", undeclared.join(", ")), None,
            if drop_all {
                format!("App Mesh (egress DROP_ALL) refused calls to {vs_name} from nodes that do not declare it as a backend; GAMMA has no per-client allow list, so those calls now go through the route.")
            } else {
                format!("App Mesh routed calls to {vs_name} by its virtual service only for nodes that declare it as a backend; the others ({}) reached the Service directly (egress ALLOW_ALL). GAMMA applies the HTTPRoute to every meshed client, so their calls now follow its weights, retries and timeout.", undeclared.join(", "))
            })
            .affects([RequestPattern { host: Some(host.clone()), ..RequestPattern::default() }])
            .example("GET", Some(&host), "/"));
    }
}

/// Listener settings of a virtual node that GAMMA routes do not carry.
fn node_extras(ctx: &mut Context<'_>, loaded: &Loaded) {
    let model::Resource::VirtualNode(vn) = &loaded.resource else {
        return;
    };
    for (i, listener) in vn.spec.listeners.iter().enumerate() {
        if listener.health_check.is_some() {
            ctx.push(Item::new(DriftKind::Other, Mapping::Unmappable, source(loaded, &format!("spec.listeners[{i}].healthCheck")), None,
                "Active health checks have no Gateway API equivalent; Kubernetes readiness probes decide which endpoints get traffic."));
        }
        if listener.timeout.is_some() {
            ctx.push(Item::new(DriftKind::Timeout, Mapping::Unmappable, source(loaded, &format!("spec.listeners[{i}].timeout")), None,
                "A listener timeout of the receiving node has no Gateway API equivalent (route timeouts apply on the calling side)."));
        }
    }
}

/// Fields of an App Mesh resource the model does not read, named as unmappable.
fn ignored(ctx: &mut Context<'_>, loaded: &Loaded) {
    for f in loaded.ignored_fields.clone() {
        ctx.push(Item::new(
            DriftKind::Other,
            Mapping::Unmappable,
            source(loaded, &f),
            None,
            format!("{f} is not carried over: the migration has no Gateway API equivalent for it."),
        ));
    }
}

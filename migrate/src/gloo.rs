//! Gloo Edge at the edge: each VirtualService becomes an HTTPRoute on the Gateway that replaces
//! Gloo's proxy; each route a rule (or one rule per match where a prefix rewrite needs it), its
//! upstreams, upstream groups and multi destinations weighted Service backendRefs.

use std::collections::BTreeMap;

use model::discovery::{PodLabels, discover_upstreams};
use model::gateway_api::{
    HTTPRoute, HttpHeader, HttpHeaderFilter, HttpHeaderMatch, HttpMethod, HttpPathMatch,
    HttpPathModifier, HttpQueryParamMatch, HttpRouteFilter, HttpRouteMatch, HttpRouteRule,
    HttpRouteSpec, HttpUrlRewrite, ParentReference, PathMatchType, ValueMatchType,
};
use model::gloo::{
    self, Action, HeaderManipulation, Matcher, PathMatcher, ResourceRef, RouteAction, RouteOptions,
    UpstreamType,
};
use model::k8s::ObjectMeta;
use model::{Loaded, ResourceKey, ResourceKind};

use crate::context::{Context, Item, ServicePort, match_patterns, route_target, source};
use crate::drift::{DriftKind, Mapping, RequestPattern};
use crate::order::{OrderEntry, route_order_items};
use crate::paths::{element_rewrite, glued_example, string_rewrite};
use crate::policy::{self, ENVOY_ROUTE_TIMEOUT, Retry};
use crate::prefix::prefix_items;

/// Gloo's largest weight that Gateway API can hold.
const MAX_WEIGHT: u32 = 1_000_000;
/// The CRD's `rules` maxItems.
const MAX_RULES: usize = 16;

/// Converts every Gloo VirtualService; returns the edge HTTPRoutes.
pub(crate) fn convert(ctx: &mut Context<'_>) -> Vec<HTTPRoute> {
    let services: Vec<_> = ctx.set.services().map(|(_, s)| s.clone()).collect();
    let pods: Vec<PodLabels> = ctx
        .set
        .deployments()
        .filter_map(|(_, d)| PodLabels::of_deployment(d))
        .collect();
    let mut state = State {
        discovered: discover_upstreams(&services, &pods, gloo::GLOO_NAMESPACE)
            .into_iter()
            .filter_map(|u| Some((u.metadata.name.clone()?, u)))
            .collect(),
        resolved: BTreeMap::new(),
    };
    let virtual_services: Vec<Loaded> = ctx
        .set
        .gloo_virtual_services()
        .map(|(l, _)| l.clone())
        .collect();
    let mut routes = Vec::new();
    let mut hosts = Vec::new();
    for loaded in &virtual_services {
        let converted = convert_virtual_service(ctx, &mut state, loaded);
        if !converted.is_empty() {
            hosts.push((loaded.clone(), converted.clone()));
        }
        routes.extend(converted);
    }
    host_overlap_items(ctx, &hosts);
    for loaded in ctx
        .set
        .upstreams()
        .map(|(l, _)| l.clone())
        .collect::<Vec<_>>()
    {
        let key = loaded.resource.key().to_string();
        if !state.resolved.contains_key(&key) {
            ctx.push(Item::new(
                DriftKind::Backend,
                Mapping::Exact,
                source(&loaded, ""),
                None,
                "No route uses this upstream, so nothing replaces it (a Service backendRef is written where a route needs one).",
            ));
        }
    }
    routes
}

struct State {
    /// What Gloo's discovery would have written, by name (in `gloo-system`).
    discovered: BTreeMap<String, gloo::Upstream>,
    /// Upstream key → index of its Backend item.
    resolved: BTreeMap<String, usize>,
}

fn convert_virtual_service(
    ctx: &mut Context<'_>,
    state: &mut State,
    loaded: &Loaded,
) -> Vec<HTTPRoute> {
    let model::Resource::GlooVirtualService(vs) = &loaded.resource else {
        return Vec::new();
    };
    let namespace = vs
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = vs.metadata.name.clone().unwrap_or_default();
    let Some(hostnames) = hostnames(ctx, loaded, &vs.spec.virtual_host.domains) else {
        return Vec::new();
    };
    let host = hostnames.iter().find(|h| !h.starts_with('*')).cloned();
    let mut rules: Vec<HttpRouteRule> = Vec::new();
    let mut order = Vec::new();
    let mut prefix_checks = Vec::new();
    for (index, route) in vs.spec.virtual_host.routes.iter().enumerate() {
        let field = format!("spec.virtualHost.routes[{index}]");
        let matches = route_matches(ctx, loaded, &field, &route.matchers);
        if matches.is_empty() {
            continue;
        }
        let action = match &route.action {
            Action::Route(action) => action,
            Action::DirectResponse(direct) => {
                let patterns = matches
                    .iter()
                    .flat_map(|(m, _)| match_patterns(m, host.as_deref()))
                    .collect::<Vec<_>>();
                ctx.push(
                    Item::new(
                        DriftKind::Other,
                        Mapping::Unmappable,
                        source(loaded, &format!("{field}.directResponseAction")),
                        None,
                        format!(
                            "A direct response (status {}) has no Gateway API equivalent (HTTPRoute rules forward or redirect); the route is left out, so its requests fall to another rule or get 404.",
                            direct.status
                        ),
                    )
                    .affects(patterns),
                );
                continue;
            }
        };
        let first_rule = rules.len();
        let rule_name = |i: usize| format!("spec.rules[{i}]");
        let target_of = |i: usize| route_target(&namespace, &name, &rule_name(i));
        let backend_refs = backends(
            ctx,
            state,
            loaded,
            &field,
            action,
            &namespace,
            &target_of(first_rule),
        );
        let options = route.options.clone().unwrap_or_default();
        let filters = header_filters(
            ctx,
            loaded,
            &field,
            &options.header_manipulation,
            &target_of(first_rule),
        );
        let host_rewrite = raw_string(ctx, loaded, &format!("{field}.options.hostRewrite"));
        unmappable_options(ctx, loaded, &field);
        if let Some(rewrite) = &options.regex_rewrite {
            let patterns: Vec<RequestPattern> = matches
                .iter()
                .flat_map(|(m, _)| match_patterns(m, host.as_deref()))
                .collect();
            ctx.push(
                Item::new(
                    DriftKind::PrefixRewrite,
                    Mapping::Unmappable,
                    source(loaded, &format!("{field}.options.regexRewrite")),
                    None,
                    format!(
                        "A regex rewrite ({:?} → {:?}) has no Gateway API equivalent (URLRewrite replaces a whole path or a matched prefix); requests are sent upstream with their path unchanged.",
                        rewrite.pattern.regex, rewrite.substitution
                    ),
                )
                .affects(patterns),
            );
        }
        let (timeouts, retry) = timeouts_and_retry(
            ctx,
            loaded,
            &field,
            &options,
            &target_of(first_rule),
            &matches,
            host.as_deref(),
        );
        let split = options.prefix_rewrite.is_some() && matches.len() > 1;
        let groups: Vec<Vec<(HttpRouteMatch, String)>> = if split {
            matches.iter().map(|m| vec![m.clone()]).collect()
        } else {
            vec![matches.clone()]
        };
        for group in groups {
            let rule_index = rules.len();
            let mut rule_filters = filters.clone();
            let path_rewrite = options.prefix_rewrite.as_ref().and_then(|rewrite| {
                rewrite_filter(
                    ctx,
                    loaded,
                    &field,
                    rewrite,
                    &group[0].0,
                    &target_of(rule_index),
                    host.as_deref(),
                )
            });
            if path_rewrite.is_some() || host_rewrite.is_some() {
                rule_filters.push(HttpRouteFilter::UrlRewrite(HttpUrlRewrite {
                    hostname: host_rewrite.clone(),
                    path: path_rewrite,
                }));
            }
            for (m, matcher_field) in &group {
                order.push(OrderEntry {
                    position: index,
                    source: source(loaded, matcher_field),
                    target: target_of(rule_index),
                    m: m.clone(),
                });
                prefix_checks.push((
                    m.clone(),
                    matcher_field.clone(),
                    rule_index,
                    route.matchers.clone(),
                ));
            }
            rules.push(HttpRouteRule {
                name: None,
                matches: group.into_iter().map(|(m, _)| m).collect(),
                filters: rule_filters,
                backend_refs: backend_refs.clone(),
                timeouts: timeouts.clone(),
                retry: retry.clone(),
            });
        }
        if let Some(host) = &host_rewrite {
            ctx.push(Item::new(
                DriftKind::Other,
                Mapping::Exact,
                source(loaded, &format!("{field}.options.hostRewrite")),
                Some(target_of(first_rule)),
                format!("The Host sent upstream is rewritten to {host:?} by a URLRewrite filter's hostname."),
            ));
        }
    }
    for (m, matcher_field, rule_index, _) in &prefix_checks {
        let src = source(loaded, &format!("{matcher_field}.prefix"));
        prefix_items(
            ctx,
            src,
            "Gloo",
            m,
            &rules,
            *rule_index,
            &namespace,
            &name,
            host.as_deref(),
        );
    }
    for item in route_order_items(&order, host.as_deref(), "Gloo") {
        ctx.push(item);
    }
    vs_level_ignored(ctx, loaded);
    // The CRD allows 16 rules per HTTPRoute: more become several routes, named in order.
    let chunks: Vec<Vec<HttpRouteRule>> = if rules.is_empty() {
        Vec::new()
    } else {
        rules.chunks(MAX_RULES).map(<[_]>::to_vec).collect()
    };
    if chunks.len() > 1 {
        ctx.push(Item::new(
            DriftKind::RouteOrder,
            Mapping::Exact,
            source(loaded, "spec.virtualHost.routes"),
            Some(route_target(&namespace, &format!("{name}-part-N"), "")),
            format!(
                "{} rules exceed the 16 an HTTPRoute may hold, so they are split over {} HTTPRoutes named {name}, {name}-part-2, ...; precedence is decided across routes anyway, and ties fall to the older route, then the name, which keeps list order when they are applied together.",
                rules.len(),
                chunks.len()
            ),
        ));
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, rules)| {
            let route_name = if i == 0 {
                name.clone()
            } else {
                format!("{name}-part-{}", i + 1)
            };
            HTTPRoute {
                metadata: ObjectMeta {
                    name: Some(route_name),
                    namespace: Some(namespace.clone()),
                    labels: vs.metadata.labels.clone(),
                    ..ObjectMeta::default()
                },
                spec: HttpRouteSpec {
                    parent_refs: vec![ParentReference {
                        group: model::gateway_api::GROUP.into(),
                        kind: "Gateway".into(),
                        namespace: (ctx.options.gateway_namespace != namespace)
                            .then(|| ctx.options.gateway_namespace.clone()),
                        name: ctx.options.gateway_name.clone(),
                        section_name: Some("http".into()),
                        port: None,
                    }],
                    hostnames: hostnames.clone(),
                    rules,
                },
                status: None,
            }
        })
        .collect()
}

/// Gloo domains as HTTPRoute hostnames; `None` when none can be written (the VirtualService is
/// then left out, since no hostnames would mean every host).
fn hostnames(ctx: &mut Context<'_>, loaded: &Loaded, domains: &[String]) -> Option<Vec<String>> {
    let catch_all = domains.is_empty() || domains.iter().any(|d| d == "*");
    let mut names = Vec::new();
    let mut approximate = Vec::new();
    for (index, domain) in domains.iter().enumerate() {
        let field = format!("spec.virtualHost.domains[{index}]");
        if domain == "*" {
            continue;
        }
        let (host, port) = match domain.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => (host, Some(port)),
            _ => (domain.as_str(), None),
        };
        if !valid_hostname(host) {
            ctx.push(Item::new(
                DriftKind::Hostname,
                Mapping::Unmappable,
                source(loaded, &field),
                None,
                format!(
                    "{domain:?} cannot be an HTTPRoute hostname (a DNS name, optionally with one leading `*.` label); requests for it are no longer routed by this VirtualService."
                ),
            ).affects([RequestPattern { host: Some(host.to_owned()), ..RequestPattern::default() }]));
            continue;
        }
        if let Some(port) = port {
            approximate.push((field, host.to_owned(), port.to_owned()));
        }
        if !names.iter().any(|n| n == host) {
            names.push(host.to_ascii_lowercase());
        }
    }
    for (field, host, port) in approximate {
        ctx.push(Item::new(
            DriftKind::Hostname,
            Mapping::Approximate,
            source(loaded, &field),
            None,
            format!("Gloo matched the Host {host}:{port} with its port; an HTTPRoute hostname has no port, so {host} on any port now matches."),
        ).affects([RequestPattern { host: Some(host), ..RequestPattern::default() }]));
    }
    if catch_all {
        ctx.push(Item::new(
            DriftKind::Hostname,
            Mapping::Exact,
            source(loaded, "spec.virtualHost.domains"),
            None,
            "The domain '*' (or no domain) serves every host: the HTTPRoute has no hostnames, which means the same.",
        ));
        return Some(Vec::new());
    }
    if names.is_empty() {
        return None;
    }
    ctx.push(Item::new(
        DriftKind::Hostname,
        Mapping::Exact,
        source(loaded, "spec.virtualHost.domains"),
        None,
        format!(
            "Domains {} become spec.hostnames (a leading `*.` matches one or more labels, as Envoy's does).",
            names.join(", ")
        ),
    ));
    Some(names)
}

fn valid_hostname(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.parse::<std::net::IpAddr>().is_err()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The Gateway API matches of a route's matchers (one per method), each with its source field.
fn route_matches(
    ctx: &mut Context<'_>,
    loaded: &Loaded,
    field: &str,
    matchers: &[Matcher],
) -> Vec<(HttpRouteMatch, String)> {
    if matchers.is_empty() {
        return vec![(HttpRouteMatch::default(), format!("{field}.matchers"))];
    }
    let mut out = Vec::new();
    'matchers: for (index, matcher) in matchers.iter().enumerate() {
        let field = format!("{field}.matchers[{index}]");
        let path = match &matcher.path {
            None => HttpPathMatch::default(),
            Some(PathMatcher::Prefix(p)) if p.is_empty() => HttpPathMatch::default(),
            Some(PathMatcher::Prefix(p)) => path_match(PathMatchType::PathPrefix, p),
            Some(PathMatcher::Exact(p)) => path_match(PathMatchType::Exact, p),
            Some(PathMatcher::Regex(r)) => {
                ctx.push(Item::new(
                    DriftKind::Match,
                    Mapping::Exact,
                    source(loaded, &format!("{field}.regex")),
                    None,
                    "A regex over the whole path becomes path type RegularExpression (Envoy-based implementations use RE2 over the whole path, as Gloo does; the dialect is implementation-specific in Gateway API). A regex ranks after exact paths and before prefixes.",
                ));
                path_match(PathMatchType::RegularExpression, r)
            }
        };
        if !path.value.starts_with('/') && path.match_type != PathMatchType::RegularExpression {
            ctx.push(Item::new(
                DriftKind::Match,
                Mapping::Unmappable,
                source(loaded, &field),
                None,
                format!("The path {:?} does not start with '/', which Gateway API requires; no request path matched it.", path.value),
            ));
            continue;
        }
        if matcher.case_sensitive == Some(false) {
            let upper = path.value.to_uppercase();
            ctx.push(
                Item::new(
                    DriftKind::Match,
                    Mapping::Approximate,
                    source(loaded, &format!("{field}.caseSensitive")),
                    None,
                    "Gloo matched this path case-insensitively; Gateway API paths match case-sensitively, so other spellings no longer match.",
                )
                .example("GET", None, &upper)
                .before_after("matched", "not matched by this rule"),
            );
        }
        let mut headers = Vec::new();
        for (h_index, header) in matcher.headers.iter().enumerate() {
            let h_field = format!("{field}.headers[{h_index}]");
            if header.invert_match {
                ctx.push(Item::new(
                    DriftKind::Match,
                    Mapping::Unmappable,
                    source(loaded, &format!("{h_field}.invertMatch")),
                    None,
                    format!("An inverted header match (header {:?} must not match) has no Gateway API equivalent; the whole matcher is left out, so its requests fall to another rule or get 404.", header.name),
                ));
                continue 'matchers;
            }
            if !valid_header_name(&header.name) {
                ctx.push(Item::new(
                    DriftKind::Match,
                    Mapping::Unmappable,
                    source(loaded, &format!("{h_field}.name")),
                    None,
                    format!("{:?} is not a header name Gateway API can match (pseudo-headers are not); the matcher is left out.", header.name),
                ));
                continue 'matchers;
            }
            headers.push(match (&header.value, header.regex) {
                (None, _) => HttpHeaderMatch {
                    match_type: ValueMatchType::RegularExpression,
                    name: header.name.clone(),
                    value: ".*".into(),
                },
                (Some(v), true) => HttpHeaderMatch {
                    match_type: ValueMatchType::RegularExpression,
                    name: header.name.clone(),
                    value: v.clone(),
                },
                (Some(v), false) => HttpHeaderMatch {
                    match_type: ValueMatchType::Exact,
                    name: header.name.clone(),
                    value: v.clone(),
                },
            });
        }
        let mut query = Vec::new();
        for q in &matcher.query_parameters {
            query.push(match (&q.value, q.regex) {
                (None, _) => HttpQueryParamMatch {
                    match_type: ValueMatchType::RegularExpression,
                    name: q.name.clone(),
                    value: ".*".into(),
                },
                (Some(v), true) => HttpQueryParamMatch {
                    match_type: ValueMatchType::RegularExpression,
                    name: q.name.clone(),
                    value: v.clone(),
                },
                (Some(v), false) => HttpQueryParamMatch {
                    match_type: ValueMatchType::Exact,
                    name: q.name.clone(),
                    value: v.clone(),
                },
            });
        }
        let mut methods: Vec<Option<HttpMethod>> = Vec::new();
        for (m_index, method) in matcher.methods.iter().enumerate() {
            match serde_json::from_value::<HttpMethod>(serde_json::Value::String(method.clone())) {
                Ok(m) => methods.push(Some(m)),
                Err(_) => ctx.push(Item::new(
                    DriftKind::Match,
                    Mapping::Unmappable,
                    source(loaded, &format!("{field}.methods[{m_index}]")),
                    None,
                    format!("{method:?} is not a method Gateway API can match (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH); requests with it no longer match this route."),
                ).affects([RequestPattern { method: Some(method.clone()), ..RequestPattern::default() }])),
            }
        }
        if methods.is_empty() {
            if !matcher.methods.is_empty() {
                continue;
            }
            methods.push(None);
        }
        if !matcher.headers.is_empty()
            || !matcher.query_parameters.is_empty()
            || !matcher.methods.is_empty()
        {
            ctx.push(Item::new(
                DriftKind::Match,
                Mapping::Exact,
                source(loaded, &field),
                None,
                "Headers, query parameters and methods become matches[].headers, queryParams and method (one match per method; a presence check is the regex `.*`, a regex is RegularExpression).",
            ));
        }
        for method in methods {
            out.push((
                HttpRouteMatch {
                    path: path.clone(),
                    headers: headers.clone(),
                    query_params: query.clone(),
                    method,
                },
                field.clone(),
            ));
        }
    }
    out
}

fn path_match(match_type: PathMatchType, value: &str) -> HttpPathMatch {
    HttpPathMatch {
        match_type,
        value: value.to_owned(),
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The URLRewrite path of a prefix rewrite, and its drift items.
fn rewrite_filter(
    ctx: &mut Context<'_>,
    loaded: &Loaded,
    field: &str,
    rewrite: &str,
    m: &HttpRouteMatch,
    target: &str,
    host: Option<&str>,
) -> Option<HttpPathModifier> {
    let src = source(loaded, &format!("{field}.options.prefixRewrite"));
    let target = format!("{target}.filters[].urlRewrite.path");
    match m.path.match_type {
        PathMatchType::Exact => {
            ctx.push(Item::new(
                DriftKind::PrefixRewrite,
                Mapping::Exact,
                src,
                Some(target),
                format!("On an exact path the whole path is the prefix, so the rewrite becomes ReplaceFullPath {rewrite:?}."),
            ));
            Some(HttpPathModifier::ReplaceFullPath(rewrite.to_owned()))
        }
        PathMatchType::RegularExpression => {
            ctx.push(Item::new(
                DriftKind::PrefixRewrite,
                Mapping::Unmappable,
                src,
                None,
                "A prefix rewrite on a regex match has no Gateway API equivalent (ReplacePrefixMatch needs a PathPrefix match); requests are sent upstream with their path unchanged.",
            ));
            None
        }
        PathMatchType::PathPrefix => {
            let prefix = m.path.value.clone();
            let mut affects = Vec::new();
            let mut examples = Vec::new();
            if let Some(glued) = RequestPattern::glued_to_prefix(&prefix) {
                let example = glued_example(&prefix);
                let before = string_rewrite(&prefix, rewrite, &example).unwrap_or_default();
                affects.push(RequestPattern {
                    host: host.map(str::to_owned),
                    ..glued
                });
                examples.push((
                    example,
                    format!("rewritten to {before}"),
                    "not rewritten: no longer matched by this rule".to_owned(),
                ));
            }
            let base = prefix.trim_end_matches('/');
            let below = format!("{base}/x");
            let (gloo_below, gateway_below) = (
                string_rewrite(&prefix, rewrite, &below),
                element_rewrite(&prefix, rewrite, &below),
            );
            if gloo_below != gateway_below {
                affects.push(RequestPattern {
                    host: host.map(str::to_owned),
                    path_prefix: Some(format!("{base}/")),
                    ..RequestPattern::default()
                });
                examples.push((
                    below.clone(),
                    format!("rewritten to {}", gloo_below.unwrap_or_default()),
                    format!("rewritten to {}", gateway_below.unwrap_or_default()),
                ));
            }
            if !base.is_empty() {
                let (gloo_at, gateway_at) = (
                    string_rewrite(&prefix, rewrite, base),
                    element_rewrite(&prefix, rewrite, base),
                );
                if gloo_at != gateway_at {
                    affects.push(RequestPattern {
                        host: host.map(str::to_owned),
                        path_exact: Some(base.to_owned()),
                        ..RequestPattern::default()
                    });
                    examples.push((
                        base.to_owned(),
                        gloo_at.map_or("not matched".to_owned(), |p| format!("rewritten to {p}")),
                        format!("rewritten to {}", gateway_at.unwrap_or_default()),
                    ));
                }
            }
            let mut item = if affects.is_empty() {
                Item::new(
                    DriftKind::PrefixRewrite,
                    Mapping::Exact,
                    src,
                    Some(target),
                    format!(
                        "The prefix rewrite {prefix:?} → {rewrite:?} becomes URLRewrite ReplacePrefixMatch {rewrite:?}; both give the same path for every request the rule matches."
                    ),
                )
            } else {
                Item::new(
                    DriftKind::PrefixRewrite,
                    Mapping::Approximate,
                    src,
                    Some(target),
                    format!("Gloo's prefixRewrite swaps the string prefix {prefix:?} for {rewrite:?}; ReplacePrefixMatch replaces the matched path elements and never doubles or drops the slash between the replacement and the rest. Paths under {prefix}/ are rewritten the same way unless an example below says otherwise."),
                )
                .affects(affects)
            };
            if let Some((path, before, after)) = examples.first() {
                item = item
                    .example("GET", host, path)
                    .before_after(before.clone(), after.clone());
            }
            for (path, _, _) in examples.iter().skip(1) {
                item = item.example("GET", host, path);
            }
            ctx.push(item);
            Some(HttpPathModifier::ReplacePrefixMatch(rewrite.to_owned()))
        }
    }
}

/// The weighted backendRefs of a route action, with their items.
#[allow(clippy::too_many_arguments)]
fn backends(
    ctx: &mut Context<'_>,
    state: &mut State,
    loaded: &Loaded,
    field: &str,
    action: &RouteAction,
    route_namespace: &str,
    target: &str,
) -> Vec<model::gateway_api::HttpBackendRef> {
    let vs_namespace = loaded
        .resource
        .metadata()
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let action_field = format!("{field}.routeAction");
    let mut refs = Vec::new();
    match action {
        RouteAction::Single(destination) => {
            if let Some(service) = resolve(
                ctx,
                state,
                loaded,
                &format!("{action_field}.single.upstream"),
                &destination.upstream,
                &vs_namespace,
                target,
            ) {
                ctx.refer(route_namespace, &service);
                refs.push(service.backend_ref(route_namespace, 1));
            }
        }
        RouteAction::Multi(multi) => {
            let mut weights = Vec::new();
            for (i, d) in multi.destinations.iter().enumerate() {
                let f = format!("{action_field}.multi.destinations[{i}]");
                if let Some(service) = resolve(
                    ctx,
                    state,
                    loaded,
                    &format!("{f}.destination.upstream"),
                    &d.destination.upstream,
                    &vs_namespace,
                    target,
                ) {
                    ctx.refer(route_namespace, &service);
                    weights.push((service, d.effective_weight()));
                }
            }
            let src = source(loaded, &format!("{action_field}.multi"));
            refs = weighted(
                ctx,
                src,
                weights,
                route_namespace,
                target,
                "multi destination",
            );
        }
        RouteAction::UpstreamGroup(group_ref) => {
            let namespace = group_ref.namespace_or(&vs_namespace).to_owned();
            let key = ResourceKey::new(
                ResourceKind::UpstreamGroup,
                Some(&namespace),
                &group_ref.name,
            );
            let Some(group_loaded) = ctx.set.get(&key).cloned() else {
                ctx.push(Item::new(
                    DriftKind::Weights,
                    Mapping::Unmappable,
                    source(loaded, &format!("{action_field}.upstreamGroup")),
                    None,
                    format!("The UpstreamGroup {namespace}/{} is not in the input, so its destinations and weights are unknown; the rule has no backendRefs (Gateway API answers 500).", group_ref.name),
                ));
                return refs;
            };
            let model::Resource::UpstreamGroup(group) = &group_loaded.resource else {
                return refs;
            };
            let mut weights = Vec::new();
            for (i, d) in group.spec.destinations.iter().enumerate() {
                let f = format!("spec.destinations[{i}].destination.upstream");
                if let Some(service) = resolve(
                    ctx,
                    state,
                    &group_loaded,
                    &f,
                    &d.destination.upstream,
                    &namespace,
                    target,
                ) {
                    ctx.refer(route_namespace, &service);
                    weights.push((service, d.effective_weight()));
                }
            }
            let src = source(&group_loaded, "spec.destinations");
            refs = weighted(ctx, src, weights, route_namespace, target, "UpstreamGroup");
        }
    }
    refs
}

fn weighted(
    ctx: &mut Context<'_>,
    src: String,
    weights: Vec<(ServicePort, u32)>,
    route_namespace: &str,
    target: &str,
    what: &str,
) -> Vec<model::gateway_api::HttpBackendRef> {
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    let largest = weights.iter().map(|(_, w)| *w).max().unwrap_or(0);
    let scale = if largest > MAX_WEIGHT {
        f64::from(MAX_WEIGHT) / f64::from(largest)
    } else {
        1.0
    };
    let listed = weights
        .iter()
        .map(|(s, w)| format!("{}/{} {w}", s.namespace, s.name))
        .collect::<Vec<_>>()
        .join(", ");
    let refs: Vec<_> = weights
        .iter()
        .map(|(service, w)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let weight = if scale < 1.0 {
                (f64::from(*w) * scale).round() as u32
            } else {
                *w
            };
            service.backend_ref(route_namespace, weight)
        })
        .collect();
    let item = if total == 0 {
        Item::new(
            DriftKind::Weights,
            Mapping::Approximate,
            src,
            Some(format!("{target}.backendRefs")),
            format!(
                "Every weight of the {what} is 0 ({listed}): Gloo rejected the route's traffic; Gateway API answers 500 for it."
            ),
        )
    } else if scale < 1.0 {
        Item::new(
            DriftKind::Weights,
            Mapping::Approximate,
            src,
            Some(format!("{target}.backendRefs")),
            format!(
                "Weights above Gateway API's 1,000,000 ({listed}) are scaled down and rounded, so shares may move slightly."
            ),
        )
    } else {
        Item::new(
            DriftKind::Weights,
            Mapping::Exact,
            src,
            Some(format!("{target}.backendRefs")),
            format!(
                "The {what}'s weighted destinations ({listed}) become weighted backendRefs with the same weights, written explicitly (an unset Gloo weight is 0; an unset backendRef weight would be 1). Gateway API has no reusable group: a change to the split is made on each rule that used it."
            ),
        )
    };
    ctx.push(item);
    refs
}

/// An upstream as a Service port: the input's Upstream, or the one Gloo's discovery would have
/// written for an input Service.
fn resolve(
    ctx: &mut Context<'_>,
    state: &mut State,
    referrer: &Loaded,
    field: &str,
    upstream: &ResourceRef,
    default_namespace: &str,
    target: &str,
) -> Option<ServicePort> {
    let namespace = upstream.namespace_or(default_namespace).to_owned();
    let key = ResourceKey::new(ResourceKind::Upstream, Some(&namespace), &upstream.name);
    let key_text = key.to_string();
    let (found, discovered) = match ctx.set.get(&key) {
        Some(loaded) => match &loaded.resource {
            model::Resource::Upstream(u) => (Some((**u).clone()), None),
            _ => (None, None),
        },
        None if namespace == gloo::GLOO_NAMESPACE => {
            (state.discovered.get(&upstream.name).cloned(), Some(()))
        }
        None => (None, None),
    };
    let mention = |ctx: &mut Context<'_>, state: &mut State, item: Item| {
        if let Some(&index) = state.resolved.get(&key_text) {
            let existing = &mut ctx.items[index].0;
            if let Some(t) = existing.target.as_mut()
                && !t.contains(target)
            {
                t.push_str("; ");
                t.push_str(target);
            }
        } else {
            state.resolved.insert(key_text.clone(), ctx.items.len());
            ctx.push(item);
        }
    };
    let Some(found) = found else {
        mention(
            ctx,
            state,
            Item::new(
                DriftKind::Backend,
                Mapping::Unmappable,
                source(referrer, field),
                None,
                format!(
                    "The upstream {namespace}/{} is neither in the input nor one Gloo's discovery would write for an input Service ({}-<service>-<port> in {}), so its Service is unknown; the destination is left out.",
                    upstream.name,
                    "<namespace>",
                    gloo::GLOO_NAMESPACE
                ),
            ),
        );
        return None;
    };
    let src = match ctx.set.get(&key) {
        Some(loaded) => source(loaded, "spec"),
        None => source(referrer, field),
    };
    match &found.spec.upstream_type {
        UpstreamType::Static(_) => {
            mention(
                ctx,
                state,
                Item::new(
                    DriftKind::Backend,
                    Mapping::Unmappable,
                    src,
                    None,
                    "A static upstream (fixed host:port list) is not a Service; Gateway API's core backendRef needs one (a selector-less Service with EndpointSlices, or an implementation's own Backend kind). The destination is left out.",
                ),
            );
            None
        }
        UpstreamType::Kube(kube) => {
            let Ok(port) = u16::try_from(kube.service_port) else {
                return None;
            };
            let service = ServicePort {
                namespace: kube.service_namespace.clone(),
                name: kube.service_name.clone(),
                port,
            };
            let service_selector = ctx
                .service(&service.namespace, &service.name)
                .and_then(|s| s.spec.as_ref()?.selector.clone())
                .unwrap_or_default();
            let subset = !kube.selector.is_empty() && kube.selector != service_selector;
            let same_pods = !subset
                || ctx.set.deployments().all(|(_, d)| {
                    let labels = PodLabels::of_deployment(d);
                    let Some(labels) = labels else { return true };
                    if labels.namespace != service.namespace {
                        return true;
                    }
                    let by_service = !service_selector.is_empty()
                        && service_selector
                            .iter()
                            .all(|(k, v)| labels.labels.get(k) == Some(v));
                    let by_upstream = kube
                        .selector
                        .iter()
                        .all(|(k, v)| labels.labels.get(k) == Some(v));
                    by_service == by_upstream
                });
            let how = if discovered.is_some() {
                format!("Gloo's discovery named it from {service} (it is not in the input)")
            } else {
                format!("a kube upstream of {service}")
            };
            let item = if same_pods {
                Item::new(
                    DriftKind::Backend,
                    Mapping::Exact,
                    src,
                    Some(target.to_owned()),
                    format!(
                        "Upstream {namespace}/{}: {how}; it becomes a backendRef to {service}{}.",
                        upstream.name,
                        if subset {
                            " (its pod selector picks the same pods as the Service's in the input)"
                        } else {
                            ""
                        }
                    ),
                )
            } else {
                Item::new(
                    DriftKind::Backend,
                    Mapping::Approximate,
                    src,
                    Some(target.to_owned()),
                    format!(
                        "Upstream {namespace}/{}: {how}, restricted to pods labelled {:?}; a backendRef reaches every pod of the Service, so pods outside that selector now get traffic too (a Service per subset would restore it).",
                        upstream.name, kube.selector
                    ),
                )
            };
            mention(ctx, state, item);
            if ctx.service(&service.namespace, &service.name).is_none() {
                ctx.push(Item::new(DriftKind::Backend, Mapping::Approximate, source(referrer, field), Some(target.to_owned()),
                    format!("{service} is not in the input; the backendRef needs it in the cluster (Gateway API answers 500 for its share until it exists).")));
            }
            Some(service)
        }
    }
}

/// Header manipulation as Request/ResponseHeaderModifier filters.
fn header_filters(
    ctx: &mut Context<'_>,
    loaded: &Loaded,
    field: &str,
    manipulation: &Option<HeaderManipulation>,
    target: &str,
) -> Vec<HttpRouteFilter> {
    let Some(m) = manipulation else {
        return Vec::new();
    };
    let field = format!("{field}.options.headerManipulation");
    let mut filters = Vec::new();
    for (adds, removes, name, is_request) in [
        (
            &m.request_headers_to_add,
            &m.request_headers_to_remove,
            "request",
            true,
        ),
        (
            &m.response_headers_to_add,
            &m.response_headers_to_remove,
            "response",
            false,
        ),
    ] {
        let mut filter = HttpHeaderFilter::default();
        let mut notes = Vec::new();
        for (i, option) in adds.iter().enumerate() {
            let f = format!("{field}.{name}HeadersToAdd[{i}]");
            let header = HttpHeader {
                name: option.header.key.clone(),
                value: option.header.value.clone(),
            };
            if !valid_header_name(&header.name) {
                ctx.push(Item::new(
                    DriftKind::Headers,
                    Mapping::Unmappable,
                    source(loaded, &f),
                    None,
                    format!(
                        "{:?} is not a header name Gateway API can set; it is not added.",
                        header.name
                    ),
                ));
                continue;
            }
            if header.value.contains('%') {
                notes.push(format!("{:?} holds an Envoy command operator (%...%), which Gateway API writes literally", header.name));
            }
            let list = if option.append == Some(false) {
                &mut filter.set
            } else {
                &mut filter.add
            };
            if list
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&header.name))
            {
                ctx.push(Item::new(DriftKind::Headers, Mapping::Unmappable, source(loaded, &f), None,
                    format!("A second value for {:?}: a header modifier names each header once; only the first is written.", header.name)));
                continue;
            }
            list.push(header);
        }
        filter.remove = removes.clone();
        if filter == HttpHeaderFilter::default() {
            continue;
        }
        let what = if is_request {
            "RequestHeaderModifier"
        } else {
            "ResponseHeaderModifier"
        };
        let mapping = if notes.is_empty() {
            Mapping::Exact
        } else {
            Mapping::Approximate
        };
        ctx.push(Item::new(DriftKind::Headers, mapping, source(loaded, &format!("{field}.{name}HeadersToAdd")), Some(format!("{target}.filters[].{}", if is_request { "requestHeaderModifier" } else { "responseHeaderModifier" })),
            format!("{name} headers become a {what} filter: append true (the default) → add, append false → set, removals → remove.{}", if notes.is_empty() { String::new() } else { format!(" But {}.", notes.join("; ")) })));
        filters.push(if is_request {
            HttpRouteFilter::RequestHeaderModifier(filter)
        } else {
            HttpRouteFilter::ResponseHeaderModifier(filter)
        });
    }
    filters
}

/// The route's timeout and retries: Envoy's 15 s default written out, `retryOn` conditions as
/// codes, `numRetries` as attempts, `perTryTimeout` as `timeouts.backendRequest`.
#[allow(clippy::too_many_arguments)]
fn timeouts_and_retry(
    ctx: &mut Context<'_>,
    loaded: &Loaded,
    field: &str,
    options: &RouteOptions,
    target: &str,
    matches: &[(HttpRouteMatch, String)],
    host: Option<&str>,
) -> (
    Option<model::gateway_api::HttpRouteTimeouts>,
    Option<model::gateway_api::HttpRouteRetry>,
) {
    let patterns: Vec<RequestPattern> = matches
        .iter()
        .flat_map(|(m, _)| match_patterns(m, host))
        .collect();
    let request = match options.timeout {
        None => {
            ctx.push(Item::new(DriftKind::ImplicitDefault, Mapping::Exact, source(loaded, &format!("{field}.options.timeout")), Some(format!("{target}.timeouts.request")),
                "No timeout: Envoy's route default of 15 s applies under Gloo. Gateway API leaves an absent timeout to the implementation, so it is written out as timeouts.request 15s."));
            Some(ENVOY_ROUTE_TIMEOUT)
        }
        Some(timeout) => {
            let d = timeout.0;
            let exact = crate::paths::gateway_duration(d).is_ok();
            ctx.push(Item::new(
                DriftKind::Timeout,
                if exact {
                    Mapping::Exact
                } else {
                    Mapping::Approximate
                },
                source(loaded, &format!("{field}.options.timeout")),
                Some(format!("{target}.timeouts.request")),
                if d.is_zero() {
                    "A timeout of 0 disables it; timeouts.request 0s does the same.".to_owned()
                } else if exact {
                    format!(
                        "The route timeout becomes timeouts.request {}.",
                        policy::duration(d).as_str()
                    )
                } else {
                    format!(
                        "The route timeout is rounded up to the millisecond: timeouts.request {}.",
                        policy::duration(d).as_str()
                    )
                },
            ));
            Some(d)
        }
    };
    let Some(retries) = &options.retries else {
        return (policy::timeouts(request, None), None);
    };
    let rfield = format!("{field}.options.retries");
    let mut retry = Retry {
        attempts: retries.num_retries.unwrap_or(1),
        per_try: retries
            .per_try_timeout
            .map(|t| t.0)
            .filter(|t| !t.is_zero()),
        ..Retry::default()
    };
    for condition in retries
        .retry_on
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        match condition {
            "5xx" => {
                retry.codes.extend(policy::all_5xx());
                retry
                    .inexpressible
                    .push("5xx's connection failures, resets and per-try timeouts".into());
            }
            "gateway-error" => {
                retry.codes.extend([502, 503, 504]);
            }
            "retriable-4xx" => {
                retry.codes.insert(409);
            }
            "connect-failure" | "reset" | "refused-stream" => {
                retry.inexpressible.push(condition.to_owned())
            }
            other => retry.unknown.push(other.to_owned()),
        }
    }
    let gateway = retry.to_gateway();
    let timeouts = policy::timeouts(request, retry.per_try.filter(|_| gateway.is_some()));
    let mut notes = Vec::new();
    if !retry.inexpressible.is_empty() {
        notes.push(format!("Gateway API retries on status codes only: {} cannot be expressed, and whether an implementation retries them is its own choice", retry.inexpressible.join(", ")));
    }
    if !retry.unknown.is_empty() {
        notes.push(format!(
            "{} are not carried over (no Gateway API equivalent)",
            retry.unknown.join(", ")
        ));
    }
    let description = match &gateway {
        Some(_) => format!(
            "retryOn {:?} becomes retry.codes [{}] with attempts {} (numRetries{}) and backoff 25ms (Envoy's first back-off){}.{}",
            retries.retry_on.as_deref().unwrap_or(""),
            retry.codes_text(),
            retry.attempts,
            if retries.num_retries.is_none() {
                ", Envoy's default 1"
            } else {
                ""
            },
            retry
                .per_try
                .map(|d| format!(
                    "; perTryTimeout becomes timeouts.backendRequest {}",
                    policy::duration(d).as_str()
                ))
                .unwrap_or_default(),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" {}.", notes.join("; "))
            }
        ),
        None => format!(
            "No retry condition Gateway API can express (retryOn {:?}), so no retry is written.{}",
            retries.retry_on.as_deref().unwrap_or(""),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" {}.", notes.join("; "))
            }
        ),
    };
    let mapping = match (&gateway, notes.is_empty()) {
        (Some(_), true) => Mapping::Exact,
        (None, true) => Mapping::Exact,
        (Some(_), false) => Mapping::Approximate,
        (None, false) => Mapping::Unmappable,
    };
    let mut item = Item::new(
        DriftKind::Retry,
        mapping,
        source(loaded, &rfield),
        gateway.as_ref().map(|_| format!("{target}.retry")),
        description,
    );
    if mapping != Mapping::Exact {
        item = item.affects(patterns).before_after(
            "retried when the backend fails as listed",
            "not retried for the conditions listed",
        );
    }
    ctx.push(item);
    (timeouts, gateway)
}

/// A string at a field the model does not read, from the document as written.
fn raw_string(ctx: &Context<'_>, loaded: &Loaded, field: &str) -> Option<String> {
    if !loaded.ignored_fields.iter().any(|f| f == field) {
        return None;
    }
    let raw = ctx.input.raw(&loaded.resource.key())?;
    crate::input::value_at(raw, field)?
        .as_str()
        .map(str::to_owned)
}

/// Route options colormesh's model does not read: each one is named as unmappable.
fn unmappable_options(ctx: &mut Context<'_>, loaded: &Loaded, field: &str) {
    let prefix = format!("{field}.");
    let host_rewrite = format!("{field}.options.hostRewrite");
    let ignored: Vec<String> = loaded
        .ignored_fields
        .iter()
        .filter(|f| f.starts_with(&prefix) && **f != host_rewrite)
        .cloned()
        .collect();
    for f in ignored {
        ctx.push(Item::new(
            DriftKind::Other,
            Mapping::Unmappable,
            source(loaded, &f),
            None,
            format!(
                "{} is not carried over: the migration has no Gateway API equivalent for it.",
                f.rsplit('.').next().unwrap_or(&f)
            ),
        ));
    }
}

/// Fields of the VirtualService outside its routes that the model does not read.
fn vs_level_ignored(ctx: &mut Context<'_>, loaded: &Loaded) {
    let ignored: Vec<String> = loaded
        .ignored_fields
        .iter()
        .filter(|f| !f.starts_with("spec.virtualHost.routes["))
        .cloned()
        .collect();
    for f in ignored {
        ctx.push(Item::new(DriftKind::Other, Mapping::Unmappable, source(loaded, &f), None,
            format!("{f} is not carried over: the migration has no Gateway API equivalent for it (TLS, virtual-host options and the like need the Gateway's or the implementation's own configuration).")));
    }
}

/// Whether a route hostname (or every host, for none) covers a VirtualService's host.
fn covers(wider: &[String], host: &str) -> bool {
    wider.is_empty()
        || wider.iter().any(|w| {
            w.strip_prefix('*')
                .is_some_and(|suffix| host.ends_with(suffix) && host.len() > suffix.len())
        })
}

/// Gloo picks one VirtualService per request, the one with the most specific domain, and only its
/// routes apply; Gateway API merges the rules of every HTTPRoute whose hostnames cover the host.
/// A wider VirtualService's routes therefore now take requests for a narrower one's host that it
/// did not route (404 before).
fn host_overlap_items(ctx: &mut Context<'_>, converted: &[(Loaded, Vec<HTTPRoute>)]) {
    for (narrow_loaded, narrow) in converted {
        let Some(first) = narrow.first() else {
            continue;
        };
        for host in &first.spec.hostnames {
            for (wide_loaded, wide) in converted {
                if std::ptr::eq(narrow_loaded, wide_loaded) {
                    continue;
                }
                let Some(wide_first) = wide.first() else {
                    continue;
                };
                let wide_hosts = &wide_first.spec.hostnames;
                if wide_hosts.iter().any(|h| h == host) || !covers(wide_hosts, host) {
                    continue;
                }
                let rules: Vec<&HttpRouteRule> =
                    wide.iter().flat_map(|r| r.spec.rules.iter()).collect();
                let patterns: Vec<RequestPattern> = rules
                    .iter()
                    .flat_map(|rule| rule.matches.iter())
                    .flat_map(|m| match_patterns(m, Some(host.trim_start_matches("*."))))
                    .collect();
                if patterns.is_empty() {
                    continue;
                }
                let example_host = host.trim_start_matches("*.").to_owned();
                let narrow_name = narrow_loaded.resource.key().to_string();
                let wide_target = route_target(
                    wide_first.metadata.namespace.as_deref().unwrap_or_default(),
                    wide_first.metadata.name.as_deref().unwrap_or_default(),
                    "spec.rules",
                );
                let example_path = patterns
                    .iter()
                    .find_map(|p| p.path_exact.clone().or_else(|| p.path_prefix.clone()))
                    .unwrap_or_else(|| "/".into());
                ctx.push(
                    Item::new(
                        DriftKind::Hostname,
                        Mapping::Approximate,
                        source(wide_loaded, "spec.virtualHost.domains"),
                        Some(wide_target.clone()),
                        format!(
                            "Gloo sent every request for {host} to {narrow_name} (the most specific domain) and answered 404 where none of its routes matched; Gateway API merges the rules of every HTTPRoute whose hostnames cover {host}, so this wider VirtualService's rules now take those requests (and outrank the narrower route's where their matches are more specific)."
                        ),
                    )
                    .affects(patterns)
                    .example("GET", Some(&example_host), &example_path)
                    .before_after(format!("routed by {narrow_name} only (404 if none of its routes matches)"), format!("may be taken by {wide_target}")),
                );
            }
        }
    }
}

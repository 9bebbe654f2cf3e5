//! From gateway-proxy's compiled [`RouteTable`] to Envoy v3 resources, as proto JSON.
//!
//! Every table field maps to the Envoy field Gloo (ingress) or the App Mesh controller (sidecar)
//! would set for it; nothing compensates for places where Envoy behaves differently from
//! gateway-proxy, because those differences are what a peer gateway is for (see the crate docs).
//!
//! Resources are rendered without `@type`: that key belongs to the `Any` wrapper, added by
//! [`discovery_response`] for xDS files and left out when resources are inlined in a static
//! bootstrap (see [`static_bootstrap`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use routing::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, HeaderMatcher, PathMatcher, PathRewrite,
    QueryParameterMatcher, Redirect, RedirectPath, Route, RouteAction, RouteMatcher, RouteTable,
    ValueMatcher, VirtualHost,
};
use serde_json::{Map, Value, json};

/// `type_url` of listeners (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type_url` of clusters (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `type_url` of route configurations (RDS).
pub const ROUTE_CONFIGURATION_TYPE: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// The name of the one data-plane listener.
pub const LISTENER_NAME: &str = "colormesh_http";
/// The name of the one route configuration, fetched by the listener over RDS.
pub const ROUTE_CONFIGURATION_NAME: &str = "colormesh_routes";
/// The HTTP connection manager's stat prefix (`http.<prefix>.rds.<route config>.update_rejected`).
pub const STAT_PREFIX: &str = "http";
/// The dynamic forward proxy cluster that plays [`Fallback::Passthrough`] (App Mesh ALLOW_ALL).
pub const PASSTHROUGH_CLUSTER: &str = "colormesh_passthrough";
/// gateway-proxy's default upstream connect timeout (Gloo's default as well).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FORWARD_PROXY_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig";
const FORWARD_PROXY_CLUSTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig";

/// A table feature Envoy's route configuration cannot express.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Envoy's query parameter matchers have no integer range.
    #[error(
        "route {route:?}: query parameter {parameter:?} uses a range matcher, which Envoy's query parameter matching does not support"
    )]
    QueryParameterRange {
        /// The route's name.
        route: String,
        /// The parameter's name.
        parameter: String,
    },
    /// Envoy's redirect action knows only 301, 302, 303, 307 and 308.
    #[error("route {route:?}: Envoy cannot redirect with status {status}")]
    RedirectStatus {
        /// The route's name.
        route: String,
        /// The status in the table.
        status: u16,
    },
}

/// The resources one table renders to: CDS clusters and the RDS route configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyResources {
    /// Clusters by name (deduplicated), including the passthrough cluster when the table needs it.
    pub clusters: BTreeMap<String, Value>,
    /// The route configuration named [`ROUTE_CONFIGURATION_NAME`].
    pub route_configuration: Value,
}

/// Renders `table`.
pub fn render(table: &RouteTable) -> Result<EnvoyResources, RenderError> {
    let mut clusters = BTreeMap::new();
    let mut virtual_hosts = Vec::with_capacity(table.virtual_hosts().len() + 1);
    for virtual_host in table.virtual_hosts() {
        virtual_hosts.push(render_virtual_host(virtual_host, &mut clusters)?);
    }
    if let Fallback::Passthrough { timeout } = table.fallback() {
        let has_catch_all = table
            .virtual_hosts()
            .iter()
            .any(|virtual_host| virtual_host.domains.iter().any(|domain| domain == "*"));
        // A `*` virtual host already takes every authority the others do not, so the fallback
        // can never apply; Envoy would also reject a second `*`.
        if !has_catch_all {
            virtual_hosts.push(json!({
                "name": PASSTHROUGH_CLUSTER,
                "domains": ["*"],
                "routes": [{
                    "name": "passthrough",
                    "match": { "prefix": "/" },
                    "route": { "cluster": PASSTHROUGH_CLUSTER, "timeout": route_timeout(*timeout) },
                }],
            }));
            clusters.insert(PASSTHROUGH_CLUSTER.to_owned(), passthrough_cluster());
        }
    }
    let mut route_configuration = json!({
        "name": ROUTE_CONFIGURATION_NAME,
        "virtual_hosts": virtual_hosts,
    });
    if references_unresolved_cluster(table) {
        // An unresolved destination is a cluster name left out of CDS on purpose. RDS route
        // configurations do not validate cluster names by default, but inline ones (the static
        // bootstrap `--mode validate` reads) do and would be rejected; say it for both.
        route_configuration["validate_clusters"] = json!(false);
    }
    Ok(EnvoyResources {
        clusters,
        route_configuration,
    })
}

fn references_unresolved_cluster(table: &RouteTable) -> bool {
    table
        .virtual_hosts()
        .iter()
        .flat_map(|virtual_host| &virtual_host.routes)
        .any(|route| match &route.action {
            RouteAction::Forward(forward) => forward
                .destinations
                .iter()
                .any(|(cluster, _)| cluster.is_unresolved()),
            RouteAction::Respond { .. } | RouteAction::Redirect(_) => false,
        })
}

/// Makes Envoy name `generation` on every answer of `route_configuration`: gateway-proxy's
/// [`GENERATION_HEADER`], set at the route configuration's level so that direct answers, redirects
/// and local replies carry it too, replacing what an upstream sent.
///
/// [`GENERATION_HEADER`]: gateway_proxy::forward::GENERATION_HEADER
pub fn stamp_generation(route_configuration: &mut Value, generation: u64) {
    route_configuration["response_headers_to_add"] = json!([{
        "header": {
            "key": gateway_proxy::forward::GENERATION_HEADER,
            "value": generation.to_string(),
        },
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }]);
}

/// An empty route configuration: what Envoy serves before the first translation (404 for all).
pub fn empty_route_configuration() -> Value {
    json!({ "name": ROUTE_CONFIGURATION_NAME, "virtual_hosts": [] })
}

fn render_virtual_host(
    virtual_host: &VirtualHost,
    clusters: &mut BTreeMap<String, Value>,
) -> Result<Value, RenderError> {
    let routes = virtual_host
        .routes
        .iter()
        .map(|route| render_route(route, clusters))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "name": virtual_host.name,
        "domains": virtual_host.domains,
        "routes": routes,
    }))
}

fn render_route(
    route: &Route,
    clusters: &mut BTreeMap<String, Value>,
) -> Result<Value, RenderError> {
    let mut rendered = Map::new();
    rendered.insert("name".into(), json!(route.name));
    rendered.insert("match".into(), render_match(route)?);
    match &route.action {
        RouteAction::Respond { status, body } => {
            let mut response = Map::new();
            response.insert("status".into(), json!(status.as_u16()));
            if !body.is_empty() {
                response.insert(
                    "body".into(),
                    json!({ "inline_string": String::from_utf8_lossy(body) }),
                );
            }
            rendered.insert("direct_response".into(), Value::Object(response));
        }
        RouteAction::Redirect(redirect) => {
            rendered.insert(
                "redirect".into(),
                render_redirect(&route.name, redirect, &route.matcher)?,
            );
        }
        RouteAction::Forward(forward) => {
            for (cluster, _) in forward.destinations.iter() {
                // An unresolved destination must stay out of CDS: Envoy then answers its share
                // with the route's `cluster_not_found_response_code`.
                if !cluster.is_unresolved() {
                    add_cluster(clusters, cluster);
                }
            }
            rendered.insert("route".into(), render_forward(forward, &route.matcher));
            add_header_edits(&mut rendered, "request", &forward.request_headers);
            add_header_edits(&mut rendered, "response", &forward.response_headers);
        }
    }
    Ok(Value::Object(rendered))
}

fn render_match(route: &Route) -> Result<Value, RenderError> {
    let matcher = &route.matcher;
    let mut rendered = Map::new();
    match &matcher.path {
        PathMatcher::Prefix(prefix) => rendered.insert("prefix".into(), json!(prefix)),
        PathMatcher::Exact(path) => rendered.insert("path".into(), json!(path)),
        PathMatcher::Regex(regex) => {
            rendered.insert("safe_regex".into(), json!({ "regex": regex.as_str() }))
        }
        // Envoy's `path_separated_prefix` may not end with `/`; the lone `/` matches every path,
        // which is what `prefix: "/"` does.
        PathMatcher::PathSeparatedPrefix(prefix) if prefix == "/" => {
            rendered.insert("prefix".into(), json!(prefix))
        }
        PathMatcher::PathSeparatedPrefix(prefix) => {
            rendered.insert("path_separated_prefix".into(), json!(prefix))
        }
    };
    rendered.insert("case_sensitive".into(), json!(matcher.case_sensitive));
    let mut headers: Vec<Value> = matcher.headers.iter().map(render_header_matcher).collect();
    if let Some(methods) = render_methods(&matcher.methods) {
        headers.push(methods);
    }
    if !headers.is_empty() {
        rendered.insert("headers".into(), Value::Array(headers));
    }
    if !matcher.query_parameters.is_empty() {
        let parameters = matcher
            .query_parameters
            .iter()
            .map(|parameter| render_query_parameter(&route.name, parameter))
            .collect::<Result<Vec<_>, _>>()?;
        rendered.insert("query_parameters".into(), Value::Array(parameters));
    }
    Ok(Value::Object(rendered))
}

fn render_header_matcher(matcher: &HeaderMatcher) -> Value {
    let mut rendered = Map::new();
    rendered.insert("name".into(), json!(matcher.name.as_str()));
    match &matcher.value {
        ValueMatcher::Present => {
            rendered.insert("present_match".into(), json!(true));
        }
        ValueMatcher::Range { start, end } => {
            rendered.insert(
                "range_match".into(),
                json!({ "start": start.to_string(), "end": end.to_string() }),
            );
        }
        ValueMatcher::Exact(_)
        | ValueMatcher::Prefix(_)
        | ValueMatcher::Suffix(_)
        | ValueMatcher::Regex(_) => {
            rendered.insert("string_match".into(), string_match(&matcher.value));
        }
    }
    if matcher.invert {
        rendered.insert("invert_match".into(), json!(true));
    }
    Value::Object(rendered)
}

/// Methods are matched on the `:method` pseudo-header, as Gloo renders its `methods` matcher.
fn render_methods(methods: &[http::Method]) -> Option<Value> {
    match methods {
        [] => None,
        [method] => Some(json!({
            "name": ":method",
            "string_match": { "exact": method.as_str() },
        })),
        several => {
            let alternatives: Vec<String> = several
                .iter()
                .map(|method| escape_regex(method.as_str()))
                .collect();
            Some(json!({
                "name": ":method",
                "string_match": { "safe_regex": { "regex": alternatives.join("|") } },
            }))
        }
    }
}

fn render_query_parameter(
    route: &str,
    parameter: &QueryParameterMatcher,
) -> Result<Value, RenderError> {
    let value = match &parameter.value {
        ValueMatcher::Present => json!({ "name": parameter.name, "present_match": true }),
        ValueMatcher::Range { .. } => {
            return Err(RenderError::QueryParameterRange {
                route: route.to_owned(),
                parameter: parameter.name.clone(),
            });
        }
        ValueMatcher::Exact(_)
        | ValueMatcher::Prefix(_)
        | ValueMatcher::Suffix(_)
        | ValueMatcher::Regex(_) => {
            json!({ "name": parameter.name, "string_match": string_match(&parameter.value) })
        }
    };
    Ok(value)
}

/// An Envoy `StringMatcher` for the string-valued matchers; callers render Present and Range
/// themselves, so those give `null`, which Envoy rejects rather than matching everything.
fn string_match(matcher: &ValueMatcher) -> Value {
    match matcher {
        ValueMatcher::Exact(value) => json!({ "exact": value }),
        ValueMatcher::Prefix(value) => json!({ "prefix": value }),
        ValueMatcher::Suffix(value) => json!({ "suffix": value }),
        ValueMatcher::Regex(regex) => json!({ "safe_regex": { "regex": regex.as_str() } }),
        ValueMatcher::Present | ValueMatcher::Range { .. } => Value::Null,
    }
}

fn render_forward(forward: &ForwardAction, matcher: &RouteMatcher) -> Value {
    let mut rendered = Map::new();
    let destinations: Vec<(&std::sync::Arc<Cluster>, u32)> = forward.destinations.iter().collect();
    match destinations.as_slice() {
        [(cluster, _)] => {
            rendered.insert("cluster".into(), json!(cluster.name));
        }
        several => {
            let clusters: Vec<Value> = several
                .iter()
                .map(|(cluster, weight)| json!({ "name": cluster.name, "weight": weight }))
                .collect();
            rendered.insert("weighted_clusters".into(), json!({ "clusters": clusters }));
        }
    }
    if destinations
        .iter()
        .any(|(cluster, _)| cluster.is_unresolved())
    {
        rendered.insert(
            "cluster_not_found_response_code".into(),
            json!("INTERNAL_SERVER_ERROR"),
        );
    }
    match &forward.rewrite {
        PathRewrite::None => {}
        PathRewrite::Prefix(prefix) => {
            rendered.insert("prefix_rewrite".into(), json!(prefix));
        }
        PathRewrite::Regex {
            pattern,
            substitution,
        } => {
            rendered.insert(
                "regex_rewrite".into(),
                json!({ "pattern": { "regex": pattern.as_str() }, "substitution": substitution }),
            );
        }
        PathRewrite::ReplacePrefixMatch(replacement) => {
            let (key, value) = replace_prefix_match(replacement, matcher);
            rendered.insert(key.into(), value);
        }
        PathRewrite::FullPath(path) => {
            rendered.insert("regex_rewrite".into(), full_path_rewrite(path));
        }
    }
    if let Some(host) = &forward.host_rewrite {
        rendered.insert("host_rewrite_literal".into(), json!(host));
    }
    rendered.insert("timeout".into(), json!(route_timeout(forward.timeout)));
    if let Some(retry) = &forward.retry {
        let retry_on = retry.retry_on.names();
        // With no retry condition there is nothing to retry on: a single try, as in the table.
        if !retry_on.is_empty() {
            let mut policy = Map::new();
            policy.insert("retry_on".into(), json!(retry_on.join(",")));
            policy.insert("num_retries".into(), json!(retry.num_retries));
            if let Some(per_try) = retry.per_try_timeout {
                policy.insert("per_try_timeout".into(), json!(duration(per_try)));
            }
            if !retry.retry_on.status_codes.is_empty() {
                policy.insert(
                    "retriable_status_codes".into(),
                    json!(retry.retry_on.status_codes),
                );
            }
            if let Some(base) = retry.backoff_base {
                policy.insert(
                    "retry_back_off".into(),
                    json!({ "base_interval": duration(base) }),
                );
            }
            rendered.insert("retry_policy".into(), Value::Object(policy));
        }
    }
    Value::Object(rendered)
}

/// Gateway API's `ReplacePrefixMatch` as the route (or redirect) field Envoy Gateway renders
/// for it, with the table's semantics (see `routing::table::PathRewrite::ReplacePrefixMatch`):
/// - a replacement of `/` (or of nothing but slashes) after a separated prefix `P` is a
///   `regex_rewrite` of `^P/*` to `/`, since Envoy's `prefix_rewrite: "/"` would leave `//bar`
///   (envoyproxy/envoy#26055); for the lone `/` prefix the pattern is `^/+`;
/// - any other replacement after a separated prefix is a `prefix_rewrite` without its trailing
///   `/`, plus one after the lone `/` prefix (whose matched `/` it replaces);
/// - after other matchers it is `prefix_rewrite` as given (an exact match is replaced whole).
fn replace_prefix_match(replacement: &str, matcher: &RouteMatcher) -> (&'static str, Value) {
    let PathMatcher::PathSeparatedPrefix(prefix) = &matcher.path else {
        return ("prefix_rewrite", json!(replacement));
    };
    let trimmed = replacement.trim_end_matches('/');
    match (trimmed.is_empty(), prefix == "/") {
        (true, root) => {
            let case = if matcher.case_sensitive { "" } else { "(?i)" };
            let pattern = if root {
                "^/+".to_owned()
            } else {
                format!("{case}^{}/*", escape_regex(prefix))
            };
            (
                "regex_rewrite",
                json!({ "pattern": { "regex": pattern }, "substitution": "/" }),
            )
        }
        (false, true) => ("prefix_rewrite", json!(format!("{trimmed}/"))),
        (false, false) => ("prefix_rewrite", json!(trimmed)),
    }
}

/// Gateway API's `ReplaceFullPath` as Envoy Gateway renders it: the whole path (`^/.*$`)
/// substituted. A backslash in the path is escaped, since the substitution reads `\N` as a group.
fn full_path_rewrite(path: &str) -> Value {
    json!({ "pattern": { "regex": "^/.*$" }, "substitution": path.replace('\\', "\\\\") })
}

/// Envoy's `RedirectAction` for the table's [`Redirect`] (whose fields are Envoy's).
fn render_redirect(
    route: &str,
    redirect: &Redirect,
    matcher: &RouteMatcher,
) -> Result<Value, RenderError> {
    let mut rendered = Map::new();
    if let Some(scheme) = &redirect.scheme {
        rendered.insert("scheme_redirect".into(), json!(scheme));
    }
    if let Some(hostname) = &redirect.hostname {
        rendered.insert("host_redirect".into(), json!(hostname));
    }
    if let Some(port) = redirect.port {
        rendered.insert("port_redirect".into(), json!(port));
    }
    match &redirect.path {
        RedirectPath::Keep => {}
        RedirectPath::FullPath(path) => {
            rendered.insert("path_redirect".into(), json!(path));
        }
        RedirectPath::ReplacePrefixMatch(replacement) => {
            let (key, value) = replace_prefix_match(replacement, matcher);
            rendered.insert(key.into(), value);
        }
    }
    let code = match redirect.status.as_u16() {
        301 => "MOVED_PERMANENTLY",
        302 => "FOUND",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        status => {
            return Err(RenderError::RedirectStatus {
                route: route.to_owned(),
                status,
            });
        }
    };
    rendered.insert("response_code".into(), json!(code));
    Ok(Value::Object(rendered))
}

/// `None` disables the timeout, which Envoy spells `0s`.
fn route_timeout(timeout: Option<Duration>) -> String {
    duration(timeout.unwrap_or(Duration::ZERO))
}

fn add_header_edits(route: &mut Map<String, Value>, direction: &str, edits: &HeaderEdits) {
    if !edits.add.is_empty() {
        let add: Vec<Value> = edits
            .add
            .iter()
            .map(|(name, value, append)| {
                json!({
                    "header": {
                        "key": name.as_str(),
                        "value": escape_header_format(&String::from_utf8_lossy(value.as_bytes())),
                    },
                    "append_action": if *append { "APPEND_IF_EXISTS_OR_ADD" } else { "OVERWRITE_IF_EXISTS_OR_ADD" },
                })
            })
            .collect();
        route.insert(format!("{direction}_headers_to_add"), Value::Array(add));
    }
    if !edits.remove.is_empty() {
        let remove: Vec<&str> = edits.remove.iter().map(|name| name.as_str()).collect();
        route.insert(format!("{direction}_headers_to_remove"), json!(remove));
    }
}

/// Envoy reads added header values as format strings (`%REQ(...)%`); the table's are literal.
fn escape_header_format(value: &str) -> String {
    value.replace('%', "%%")
}

/// Escapes every ASCII punctuation character, which RE2 reads as the literal character.
fn escape_regex(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len() * 2);
    for c in literal.chars() {
        if c.is_ascii_punctuation() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn add_cluster(clusters: &mut BTreeMap<String, Value>, cluster: &Cluster) {
    if let Some(existing) = clusters.get(&cluster.name) {
        let rendered = static_cluster(cluster);
        if *existing != rendered {
            tracing::warn!(
                cluster = %cluster.name,
                "the table lists one cluster name with different endpoints; Envoy gets the first"
            );
        }
        return;
    }
    clusters.insert(cluster.name.clone(), static_cluster(cluster));
}

fn static_cluster(cluster: &Cluster) -> Value {
    let endpoints: Vec<Value> = cluster
        .endpoints
        .iter()
        .map(|endpoint| json!({ "endpoint": { "address": socket_address(*endpoint) } }))
        .collect();
    json!({
        "name": cluster.name,
        "type": "STATIC",
        "connect_timeout": duration(CONNECT_TIMEOUT),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": cluster.name,
            "endpoints": [{ "lb_endpoints": endpoints }],
        },
    })
}

/// One DNS cache shared by the forward proxy filter and cluster; Envoy requires both to
/// describe it identically.
fn dns_cache_config() -> Value {
    json!({ "name": "colormesh_passthrough_dns", "dns_lookup_family": "V4_PREFERRED" })
}

fn passthrough_cluster() -> Value {
    json!({
        "name": PASSTHROUGH_CLUSTER,
        "connect_timeout": duration(CONNECT_TIMEOUT),
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.dynamic_forward_proxy",
            "typed_config": { "@type": FORWARD_PROXY_CLUSTER_TYPE, "dns_cache_config": dns_cache_config() },
        },
    })
}

fn socket_address(address: SocketAddr) -> Value {
    json!({ "socket_address": { "address": address.ip().to_string(), "port_value": address.port() } })
}

/// A protobuf `Duration` in proto JSON: `5s`, `0.250s`.
pub fn duration(value: Duration) -> String {
    let nanos = value.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", value.as_secs());
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}s", value.as_secs(), fraction.trim_end_matches('0'))
}

/// Where the listener's HTTP connection manager gets its routes.
#[derive(Debug, Clone, Copy)]
pub enum RouteSource<'a> {
    /// RDS from a file Envoy watches (the running control plane).
    File {
        /// The RDS file.
        path: &'a Path,
        /// The directory watched for moves into it.
        watched_directory: &'a Path,
    },
    /// The route configuration inline (static bootstraps for `envoy --mode validate`).
    Inline(&'a Value),
}

/// Downstream limits and timeouts given on the command line (gateway-proxy's flags of the same
/// names); each `None` leaves Envoy's default, which is what Gloo and the App Mesh controller
/// leave too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownstreamLimits {
    /// Active downstream connections at most, over every listener but the admin one: the
    /// overload manager's `envoy.resource_monitors.global_downstream_max_connections` (Envoy
    /// accepts a connection over it and closes it at once). Envoy's default: no limit.
    pub max_connections: Option<u32>,
    /// The connection manager's `common_http_protocol_options.idle_timeout`: a connection with
    /// no stream is closed (HTTP/2 with a GOAWAY first). Envoy's default: 1 h.
    pub idle_timeout: Option<Duration>,
    /// The connection manager's `stream_idle_timeout`: a stream (a request or response body
    /// being relayed) that goes this long without activity is reset. Envoy's default: 5 min.
    pub stream_idle_timeout: Option<Duration>,
    /// The connection manager's `request_headers_timeout`: the time from a request's first byte
    /// to its complete headers. Envoy's default: off.
    pub request_headers_timeout: Option<Duration>,
}

/// The resource monitor that caps active downstream connections.
pub const GLOBAL_MAX_CONNECTIONS_MONITOR: &str =
    "envoy.resource_monitors.global_downstream_max_connections";
const DOWNSTREAM_CONNECTIONS_TYPE: &str = "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";

/// The data-plane listener on `address` (port 0 allowed: read the port back from the admin).
///
/// It accepts absolute-form requests (`GET http://host/ HTTP/1.1`), which is how an app reaches
/// its sidecar through `HTTP_PROXY`, and carries the dynamic forward proxy filter so that the
/// passthrough cluster works; the filter ignores requests routed to any other cluster. The
/// timeouts of `limits` go on its connection manager.
pub fn listener(address: SocketAddr, routes: RouteSource<'_>, limits: &DownstreamLimits) -> Value {
    let mut manager = Map::new();
    manager.insert("@type".into(), json!(HCM_TYPE));
    manager.insert("stat_prefix".into(), json!(STAT_PREFIX));
    manager.insert("codec_type".into(), json!("AUTO"));
    manager.insert(
        "http_protocol_options".into(),
        json!({ "allow_absolute_url": true }),
    );
    if let Some(idle) = limits.idle_timeout {
        manager.insert(
            "common_http_protocol_options".into(),
            json!({ "idle_timeout": duration(idle) }),
        );
    }
    if let Some(stream_idle) = limits.stream_idle_timeout {
        manager.insert("stream_idle_timeout".into(), json!(duration(stream_idle)));
    }
    if let Some(headers) = limits.request_headers_timeout {
        manager.insert("request_headers_timeout".into(), json!(duration(headers)));
    }
    match routes {
        RouteSource::File {
            path,
            watched_directory,
        } => {
            manager.insert(
                "rds".into(),
                json!({
                    "route_config_name": ROUTE_CONFIGURATION_NAME,
                    "config_source": path_config_source(path, watched_directory),
                }),
            );
        }
        RouteSource::Inline(route_configuration) => {
            manager.insert("route_config".into(), route_configuration.clone());
        }
    }
    manager.insert(
        "http_filters".into(),
        json!([
            {
                "name": "envoy.filters.http.dynamic_forward_proxy",
                "typed_config": { "@type": FORWARD_PROXY_FILTER_TYPE, "dns_cache_config": dns_cache_config() },
            },
            { "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } },
        ]),
    );
    json!({
        "name": LISTENER_NAME,
        "address": socket_address(address),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": Value::Object(manager),
            }],
        }],
    })
}

fn path_config_source(path: &Path, watched_directory: &Path) -> Value {
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": path.display().to_string(),
            "watched_directory": { "path": watched_directory.display().to_string() },
        },
    })
}

/// The bootstrap of a running Envoy: admin on an ephemeral loopback port, LDS and CDS from files
/// in `watched_directory` (a move into it makes Envoy re-read them).
///
/// With [`DownstreamLimits::max_connections`], the overload manager caps active downstream
/// connections; the admin listener is left out of that cap (`ignore_global_conn_limit`), as
/// gateway-proxy's admin port has a limit of its own, so the admin API keeps answering.
pub fn bootstrap(
    node_id: &str,
    lds: &Path,
    cds: &Path,
    watched_directory: &Path,
    limits: &DownstreamLimits,
) -> Value {
    let mut admin = json!({ "address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0))) });
    let mut bootstrap = json!({
        "node": { "id": node_id, "cluster": "colormesh" },
        "dynamic_resources": {
            "lds_config": path_config_source(lds, watched_directory),
            "cds_config": path_config_source(cds, watched_directory),
        },
    });
    if let Some(max) = limits.max_connections {
        admin["ignore_global_conn_limit"] = json!(true);
        bootstrap["overload_manager"] = json!({
            "resource_monitors": [{
                "name": GLOBAL_MAX_CONNECTIONS_MONITOR,
                "typed_config": {
                    "@type": DOWNSTREAM_CONNECTIONS_TYPE,
                    "max_active_downstream_connections": max,
                },
            }],
        });
    }
    bootstrap["admin"] = admin;
    bootstrap
}

/// The same resources as a static bootstrap, for `envoy --mode validate` (which does not read
/// xDS files).
pub fn static_bootstrap(listen: SocketAddr, resources: &EnvoyResources) -> Value {
    json!({
        "node": { "id": "validate", "cluster": "colormesh" },
        "admin": { "address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0))) },
        "static_resources": {
            "listeners": [listener(
                listen,
                RouteSource::Inline(&resources.route_configuration),
                &DownstreamLimits::default(),
            )],
            "clusters": resources.clusters.values().collect::<Vec<_>>(),
        },
    })
}

/// An xDS file: a `DiscoveryResponse` whose resources are wrapped as `Any` of `type_url`.
pub fn discovery_response<'a>(
    version: &str,
    type_url: &str,
    resources: impl IntoIterator<Item = &'a Value>,
) -> Value {
    let resources: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let mut wrapped = Map::new();
            wrapped.insert("@type".into(), json!(type_url));
            if let Value::Object(fields) = resource {
                wrapped.extend(
                    fields
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone())),
                );
            }
            Value::Object(wrapped)
        })
        .collect();
    json!({ "version_info": version, "type_url": type_url, "resources": resources })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{HeaderName, HeaderValue, Method, StatusCode};
    use pretty_assertions::assert_eq;
    use routing::table::{FullRegex, RetryOn, RetryPolicy, RouteMatcher, WeightedClusters};

    use super::*;

    fn cluster(name: &str, ports: &[u16]) -> Arc<Cluster> {
        let endpoints = ports
            .iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
            .collect();
        Arc::new(Cluster::new(name, endpoints))
    }

    fn forward(destinations: WeightedClusters) -> ForwardAction {
        ForwardAction {
            destinations,
            rewrite: PathRewrite::None,
            timeout: Some(Duration::from_secs(15)),
            retry: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            host_rewrite: None,
        }
    }

    fn table(routes: Vec<Route>, fallback: Fallback) -> RouteTable {
        RouteTable::new(
            vec![VirtualHost {
                name: "gloo-system/colorgateway".to_owned(),
                domains: vec!["colors.example".to_owned(), "colors.example:80".to_owned()],
                routes,
            }],
            fallback,
        )
        .expect("valid table")
    }

    fn only_route(rendered: &EnvoyResources) -> &Value {
        &rendered.route_configuration["virtual_hosts"][0]["routes"][0]
    }

    #[test]
    fn the_generation_is_one_response_header_of_the_route_configuration() {
        let mut routes = empty_route_configuration();
        stamp_generation(&mut routes, 7);
        stamp_generation(&mut routes, 8);
        assert_eq!(
            routes["response_headers_to_add"],
            json!([{
                "header": { "key": "x-colormesh-generation", "value": "8" },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }])
        );
        assert_eq!(routes["virtual_hosts"], json!([]));
    }

    #[test]
    fn prefix_route_with_rewrite_single_cluster_and_timeout() {
        let mut action = forward(WeightedClusters::single(cluster("blue", &[8081, 8082])));
        action.rewrite = PathRewrite::Prefix("/color".to_owned());
        let rendered = render(&table(
            vec![Route {
                name: "gloo-system/colorgateway/0".to_owned(),
                matcher: RouteMatcher::path(PathMatcher::Prefix("/appmesh/color".to_owned())),
                action: RouteAction::Forward(action),
            }],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert_eq!(
            rendered.route_configuration,
            json!({
                "name": ROUTE_CONFIGURATION_NAME,
                "virtual_hosts": [{
                    "name": "gloo-system/colorgateway",
                    "domains": ["colors.example", "colors.example:80"],
                    "routes": [{
                        "name": "gloo-system/colorgateway/0",
                        "match": { "prefix": "/appmesh/color", "case_sensitive": true },
                        "route": { "cluster": "blue", "prefix_rewrite": "/color", "timeout": "15s" },
                    }],
                }],
            })
        );
        assert_eq!(
            rendered.clusters.keys().collect::<Vec<_>>(),
            ["blue"],
            "no passthrough cluster with a NotFound fallback"
        );
        assert_eq!(
            rendered.clusters["blue"],
            json!({
                "name": "blue",
                "type": "STATIC",
                "connect_timeout": "5s",
                "lb_policy": "ROUND_ROBIN",
                "load_assignment": {
                    "cluster_name": "blue",
                    "endpoints": [{ "lb_endpoints": [
                        { "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 8081 } } } },
                        { "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 8082 } } } },
                    ] }],
                },
            })
        );
    }

    #[test]
    fn weighted_clusters_keep_zero_weights_and_clusters_are_deduplicated() {
        let v1 = cluster("colorgateway", &[1]);
        let v2 = cluster("colorgatewayv2", &[2]);
        let split = WeightedClusters::new(vec![(Arc::clone(&v1), 0), (Arc::clone(&v2), 100)])
            .expect("weights");
        let mut again = forward(WeightedClusters::single(Arc::clone(&v1)));
        again.timeout = None;
        let rendered = render(&table(
            vec![
                Route {
                    name: "split".to_owned(),
                    matcher: RouteMatcher::path(PathMatcher::Exact("/exact".to_owned())),
                    action: RouteAction::Forward(forward(split)),
                },
                Route {
                    name: "again".to_owned(),
                    matcher: RouteMatcher::any(),
                    action: RouteAction::Forward(again),
                },
            ],
            Fallback::NotFound,
        ))
        .expect("renders");
        let routes = &rendered.route_configuration["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0]["match"],
            json!({ "path": "/exact", "case_sensitive": true })
        );
        assert_eq!(
            routes[0]["route"]["weighted_clusters"],
            json!({ "clusters": [
                { "name": "colorgateway", "weight": 0 },
                { "name": "colorgatewayv2", "weight": 100 },
            ] })
        );
        assert_eq!(
            routes[1]["route"]["timeout"], "0s",
            "no timeout is 0s, which disables it"
        );
        assert_eq!(
            rendered.clusters.keys().collect::<Vec<_>>(),
            ["colorgateway", "colorgatewayv2"]
        );
    }

    #[test]
    fn regex_case_headers_query_parameters_and_methods() {
        let mut matcher = RouteMatcher::path(PathMatcher::Regex(
            FullRegex::new("/color/[a-z]+").expect("regex"),
        ));
        matcher.case_sensitive = false;
        matcher.headers = vec![
            HeaderMatcher {
                name: HeaderName::from_static("x-color"),
                value: ValueMatcher::Regex(FullRegex::new("bl(ue|ack)").expect("regex")),
                invert: false,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-canary"),
                value: ValueMatcher::Exact("yes".to_owned()),
                invert: true,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-debug"),
                value: ValueMatcher::Present,
                invert: false,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-prefix"),
                value: ValueMatcher::Prefix("ab".to_owned()),
                invert: false,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-suffix"),
                value: ValueMatcher::Suffix("yz".to_owned()),
                invert: false,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-number"),
                value: ValueMatcher::Range { start: -10, end: 0 },
                invert: false,
            },
        ];
        matcher.query_parameters = vec![
            QueryParameterMatcher {
                name: "v".to_owned(),
                value: ValueMatcher::Exact("2".to_owned()),
            },
            QueryParameterMatcher {
                name: "debug".to_owned(),
                value: ValueMatcher::Present,
            },
            QueryParameterMatcher {
                name: "r".to_owned(),
                value: ValueMatcher::Regex(FullRegex::new("[0-9]+").expect("regex")),
            },
        ];
        matcher.methods = vec![Method::GET, Method::POST];
        let rendered = render(&table(
            vec![Route {
                name: "matchers".to_owned(),
                matcher,
                action: RouteAction::Respond {
                    status: StatusCode::OK,
                    body: Bytes::new(),
                },
            }],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert_eq!(
            only_route(&rendered)["match"],
            json!({
                "safe_regex": { "regex": "/color/[a-z]+" },
                "case_sensitive": false,
                "headers": [
                    { "name": "x-color", "string_match": { "safe_regex": { "regex": "bl(ue|ack)" } } },
                    { "name": "x-canary", "string_match": { "exact": "yes" }, "invert_match": true },
                    { "name": "x-debug", "present_match": true },
                    { "name": "x-prefix", "string_match": { "prefix": "ab" } },
                    { "name": "x-suffix", "string_match": { "suffix": "yz" } },
                    { "name": "x-number", "range_match": { "start": "-10", "end": "0" } },
                    { "name": ":method", "string_match": { "safe_regex": { "regex": "GET|POST" } } },
                ],
                "query_parameters": [
                    { "name": "v", "string_match": { "exact": "2" } },
                    { "name": "debug", "present_match": true },
                    { "name": "r", "string_match": { "safe_regex": { "regex": "[0-9]+" } } },
                ],
            })
        );
        assert_eq!(
            only_route(&rendered)["direct_response"],
            json!({ "status": 200 }),
            "an empty body is left out"
        );
        assert!(rendered.clusters.is_empty());
    }

    #[test]
    fn a_single_method_is_an_exact_match_and_extension_methods_are_escaped() {
        assert_eq!(
            render_methods(&[Method::DELETE]),
            Some(json!({ "name": ":method", "string_match": { "exact": "DELETE" } }))
        );
        let custom = Method::from_bytes(b"M-SEARCH").expect("extension method");
        assert_eq!(
            render_methods(&[Method::GET, custom]).expect("matcher")["string_match"]["safe_regex"]
                ["regex"],
            r"GET|M\-SEARCH"
        );
        assert_eq!(render_methods(&[]), None);
    }

    #[test]
    fn a_query_parameter_range_is_reported_not_dropped() {
        let mut matcher = RouteMatcher::any();
        matcher.query_parameters = vec![QueryParameterMatcher {
            name: "n".to_owned(),
            value: ValueMatcher::Range { start: 0, end: 5 },
        }];
        let error = render(&table(
            vec![Route {
                name: "ranged".to_owned(),
                matcher,
                action: RouteAction::Respond {
                    status: StatusCode::OK,
                    body: Bytes::new(),
                },
            }],
            Fallback::NotFound,
        ))
        .expect_err("Envoy cannot express it")
        .to_string();
        assert!(
            error.contains("\"ranged\"") && error.contains("\"n\""),
            "{error}"
        );
    }

    #[test]
    fn regex_rewrite_retries_and_header_edits() {
        let mut action = forward(WeightedClusters::single(cluster("echo", &[9])));
        action.rewrite = PathRewrite::Regex {
            pattern: FullRegex::new("/service/([^/]+)/(.*)").expect("regex"),
            substitution: r"/\2/instance/\1".to_owned(),
        };
        action.timeout = Some(Duration::from_millis(1500));
        action.retry = Some(RetryPolicy {
            num_retries: 3,
            per_try_timeout: Some(Duration::from_millis(250)),
            retry_on: RetryOn::parse("5xx,connect-failure").expect("retry_on"),
            backoff_base: None,
        });
        action.request_headers = HeaderEdits {
            add: vec![
                (
                    HeaderName::from_static("x-overwrite"),
                    HeaderValue::from_static("100%"),
                    false,
                ),
                (
                    HeaderName::from_static("x-append"),
                    HeaderValue::from_static("more"),
                    true,
                ),
            ],
            remove: vec![HeaderName::from_static("x-secret")],
        };
        action.response_headers = HeaderEdits {
            add: vec![(
                HeaderName::from_static("x-served-by"),
                HeaderValue::from_static("envoy"),
                true,
            )],
            remove: vec![HeaderName::from_static("x-upstream")],
        };
        let rendered = render(&table(
            vec![Route {
                name: "everything".to_owned(),
                matcher: RouteMatcher::any(),
                action: RouteAction::Forward(action),
            }],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert_eq!(
            *only_route(&rendered),
            json!({
                "name": "everything",
                "match": { "prefix": "/", "case_sensitive": true },
                "route": {
                    "cluster": "echo",
                    "regex_rewrite": {
                        "pattern": { "regex": "/service/([^/]+)/(.*)" },
                        "substitution": r"/\2/instance/\1",
                    },
                    "timeout": "1.5s",
                    "retry_policy": { "retry_on": "5xx,connect-failure", "num_retries": 3, "per_try_timeout": "0.25s" },
                },
                "request_headers_to_add": [
                    { "header": { "key": "x-overwrite", "value": "100%%" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" },
                    { "header": { "key": "x-append", "value": "more" }, "append_action": "APPEND_IF_EXISTS_OR_ADD" },
                ],
                "request_headers_to_remove": ["x-secret"],
                "response_headers_to_add": [
                    { "header": { "key": "x-served-by", "value": "envoy" }, "append_action": "APPEND_IF_EXISTS_OR_ADD" },
                ],
                "response_headers_to_remove": ["x-upstream"],
            })
        );
    }

    fn separated_route(prefix: &str, action: RouteAction) -> Route {
        Route {
            name: "gateway-api".to_owned(),
            matcher: RouteMatcher::path(PathMatcher::PathSeparatedPrefix(prefix.to_owned())),
            action,
        }
    }

    fn rendered_route(route: Route) -> Value {
        only_route(&render(&table(vec![route], Fallback::NotFound)).expect("renders")).clone()
    }

    #[test]
    fn separated_prefixes_and_gateway_api_rewrites() {
        let with = |prefix: &str, rewrite: PathRewrite| {
            let mut action = forward(WeightedClusters::single(cluster("echo", &[9])));
            action.rewrite = rewrite;
            action.host_rewrite = Some("rewritten.example".to_owned());
            rendered_route(separated_route(prefix, RouteAction::Forward(action)))
        };
        let prefix = with("/foo", PathRewrite::ReplacePrefixMatch("/xyz/".to_owned()));
        assert_eq!(
            prefix["match"],
            json!({ "path_separated_prefix": "/foo", "case_sensitive": true })
        );
        assert_eq!(
            prefix["route"]["prefix_rewrite"], "/xyz",
            "the trailing / is dropped"
        );
        assert_eq!(prefix["route"]["host_rewrite_literal"], "rewritten.example");

        let to_root = with("/foo.v1", PathRewrite::ReplacePrefixMatch("/".to_owned()));
        assert_eq!(
            to_root["route"]["regex_rewrite"],
            json!({ "pattern": { "regex": r"^\/foo\.v1/*" }, "substitution": "/" }),
            "prefix_rewrite \"/\" would leave //"
        );
        assert!(to_root["route"].get("prefix_rewrite").is_none());

        let root = with("/", PathRewrite::ReplacePrefixMatch("/xyz".to_owned()));
        assert_eq!(
            root["match"],
            json!({ "prefix": "/", "case_sensitive": true })
        );
        assert_eq!(
            root["route"]["prefix_rewrite"], "/xyz/",
            "the matched / is replaced"
        );
        let root_to_root = with("/", PathRewrite::ReplacePrefixMatch(String::new()));
        assert_eq!(
            root_to_root["route"]["regex_rewrite"]["pattern"]["regex"],
            "^/+"
        );

        let full = with("/foo", PathRewrite::FullPath(r"/a\b".to_owned()));
        assert_eq!(
            full["route"]["regex_rewrite"],
            json!({ "pattern": { "regex": "^/.*$" }, "substitution": r"/a\\b" })
        );

        let mut insensitive =
            RouteMatcher::path(PathMatcher::PathSeparatedPrefix("/Foo".to_owned()));
        insensitive.case_sensitive = false;
        let mut action = forward(WeightedClusters::single(cluster("echo", &[9])));
        action.rewrite = PathRewrite::ReplacePrefixMatch("/".to_owned());
        let route = render_forward(&action, &insensitive);
        assert_eq!(route["regex_rewrite"]["pattern"]["regex"], r"(?i)^\/Foo/*");
        assert!(route.get("host_rewrite_literal").is_none());
    }

    #[test]
    fn redirects_render_envoy_s_redirect_action() {
        let redirect = Redirect {
            scheme: Some("https".to_owned()),
            hostname: Some("other.example".to_owned()),
            port: Some(8443),
            path: RedirectPath::ReplacePrefixMatch("/new".to_owned()),
            status: StatusCode::FOUND,
        };
        let rendered = rendered_route(separated_route(
            "/old",
            RouteAction::Redirect(redirect.clone()),
        ));
        assert_eq!(
            rendered["redirect"],
            json!({
                "scheme_redirect": "https",
                "host_redirect": "other.example",
                "port_redirect": 8443,
                "prefix_rewrite": "/new",
                "response_code": "FOUND",
            })
        );
        assert!(rendered.get("route").is_none());
        let plain = Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: RedirectPath::FullPath("/fixed".to_owned()),
            status: StatusCode::MOVED_PERMANENTLY,
        };
        assert_eq!(
            rendered_route(separated_route(
                "/old",
                RouteAction::Redirect(plain.clone())
            ))["redirect"],
            json!({ "path_redirect": "/fixed", "response_code": "MOVED_PERMANENTLY" })
        );
        let strip = Redirect {
            path: RedirectPath::ReplacePrefixMatch("/".to_owned()),
            ..plain.clone()
        };
        assert_eq!(
            rendered_route(separated_route("/old", RouteAction::Redirect(strip)))["redirect"]["regex_rewrite"],
            json!({ "pattern": { "regex": r"^\/old/*" }, "substitution": "/" })
        );
        let teapot = Redirect {
            status: StatusCode::IM_A_TEAPOT,
            ..plain
        };
        let error = render(&table(
            vec![separated_route("/old", RouteAction::Redirect(teapot))],
            Fallback::NotFound,
        ))
        .expect_err("not a redirect status");
        assert!(
            matches!(error, RenderError::RedirectStatus { status: 418, .. }),
            "{error}"
        );
    }

    #[test]
    fn unresolved_destinations_stay_out_of_cds_and_answer_500() {
        let split = WeightedClusters::new(vec![
            (Arc::new(Cluster::unresolved("missing")), 1),
            (cluster("real", &[9]), 3),
        ])
        .expect("weights");
        let rendered = render(&table(
            vec![separated_route("/", RouteAction::Forward(forward(split)))],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert_eq!(rendered.clusters.keys().collect::<Vec<_>>(), ["real"]);
        let route = &only_route(&rendered)["route"];
        assert_eq!(
            route["cluster_not_found_response_code"],
            "INTERNAL_SERVER_ERROR"
        );
        assert_eq!(
            route["weighted_clusters"]["clusters"],
            json!([{ "name": "missing", "weight": 1 }, { "name": "real", "weight": 3 }])
        );
        assert_eq!(rendered.route_configuration["validate_clusters"], false);

        let resolved = render(&table(
            vec![separated_route(
                "/",
                RouteAction::Forward(forward(WeightedClusters::single(cluster("real", &[9])))),
            )],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert!(
            resolved
                .route_configuration
                .get("validate_clusters")
                .is_none()
        );
        assert!(
            only_route(&resolved)["route"]
                .get("cluster_not_found_response_code")
                .is_none()
        );
    }

    #[test]
    fn retriable_status_codes_and_back_off() {
        let mut action = forward(WeightedClusters::single(cluster("echo", &[9])));
        action.retry = Some(RetryPolicy {
            num_retries: 2,
            per_try_timeout: None,
            retry_on: RetryOn {
                status_codes: vec![500, 503],
                ..RetryOn::parse("connect-failure").expect("retry_on")
            },
            backoff_base: Some(Duration::from_millis(100)),
        });
        assert_eq!(
            render_forward(&action, &RouteMatcher::any())["retry_policy"],
            json!({
                "retry_on": "connect-failure,retriable-status-codes",
                "num_retries": 2,
                "retriable_status_codes": [500, 503],
                "retry_back_off": { "base_interval": "0.1s" },
            })
        );
    }

    #[test]
    fn retry_policy_without_conditions_is_a_single_try() {
        let mut action = forward(WeightedClusters::single(cluster("echo", &[9])));
        action.retry = Some(RetryPolicy {
            num_retries: 2,
            per_try_timeout: None,
            retry_on: RetryOn::default(),
            backoff_base: None,
        });
        let route = render_forward(&action, &RouteMatcher::any());
        assert!(route.get("retry_policy").is_none(), "{route}");
    }

    #[test]
    fn direct_response_with_a_body() {
        let rendered = render(&table(
            vec![Route {
                name: "teapot".to_owned(),
                matcher: RouteMatcher::any(),
                action: RouteAction::Respond {
                    status: StatusCode::IM_A_TEAPOT,
                    body: Bytes::from_static(b"short and stout"),
                },
            }],
            Fallback::NotFound,
        ))
        .expect("renders");
        assert_eq!(
            only_route(&rendered)["direct_response"],
            json!({ "status": 418, "body": { "inline_string": "short and stout" } })
        );
    }

    #[test]
    fn passthrough_fallback_is_a_catch_all_forward_proxy_route() {
        let rendered = render(&table(
            Vec::new(),
            Fallback::Passthrough {
                timeout: Some(Duration::from_secs(15)),
            },
        ))
        .expect("renders");
        assert_eq!(
            rendered.route_configuration["virtual_hosts"][1],
            json!({
                "name": PASSTHROUGH_CLUSTER,
                "domains": ["*"],
                "routes": [{
                    "name": "passthrough",
                    "match": { "prefix": "/" },
                    "route": { "cluster": PASSTHROUGH_CLUSTER, "timeout": "15s" },
                }],
            })
        );
        assert_eq!(
            rendered.clusters[PASSTHROUGH_CLUSTER]["cluster_type"]["name"],
            "envoy.clusters.dynamic_forward_proxy"
        );
        assert_eq!(
            rendered.clusters[PASSTHROUGH_CLUSTER]["cluster_type"]["typed_config"]["dns_cache_config"],
            listener(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                RouteSource::Inline(&json!({})),
                &DownstreamLimits::default(),
            )["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
                ["dns_cache_config"],
            "filter and cluster must describe the same DNS cache"
        );

        let catch_all = RouteTable::new(
            vec![VirtualHost {
                name: "all".to_owned(),
                domains: vec!["*".to_owned()],
                routes: Vec::new(),
            }],
            Fallback::Passthrough { timeout: None },
        )
        .expect("valid table");
        let rendered = render(&catch_all).expect("renders");
        assert_eq!(
            rendered.route_configuration["virtual_hosts"]
                .as_array()
                .map(Vec::len),
            Some(1),
            "a `*` virtual host leaves the fallback unreachable"
        );
        assert!(!rendered.clusters.contains_key(PASSTHROUGH_CLUSTER));
    }

    #[test]
    fn not_found_fallback_adds_nothing() {
        let rendered = render(&RouteTable::empty(Fallback::NotFound)).expect("renders");
        assert_eq!(rendered.route_configuration, empty_route_configuration());
        assert!(rendered.clusters.is_empty());
    }

    #[test]
    fn listener_reads_routes_over_rds_and_accepts_absolute_urls() {
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let rendered = listener(
            listen,
            RouteSource::File {
                path: Path::new("/x/rds.json"),
                watched_directory: Path::new("/x"),
            },
            &DownstreamLimits::default(),
        );
        let manager = &rendered["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(rendered["address"]["socket_address"]["port_value"], 0);
        assert_eq!(manager["http_protocol_options"]["allow_absolute_url"], true);
        assert_eq!(
            manager["rds"],
            json!({
                "route_config_name": ROUTE_CONFIGURATION_NAME,
                "config_source": {
                    "resource_api_version": "V3",
                    "path_config_source": { "path": "/x/rds.json", "watched_directory": { "path": "/x" } },
                },
            })
        );
        assert_eq!(
            manager["http_filters"][1]["name"], "envoy.filters.http.router",
            "the router comes last"
        );
    }

    #[test]
    fn default_limits_leave_envoy_s_defaults() {
        let manager = &listener(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            RouteSource::Inline(&json!({})),
            &DownstreamLimits::default(),
        )["filter_chains"][0]["filters"][0]["typed_config"];
        for field in [
            "common_http_protocol_options",
            "stream_idle_timeout",
            "request_headers_timeout",
        ] {
            assert!(manager.get(field).is_none(), "{field}: {manager:#}");
        }
        let bootstrap = bootstrap(
            "node",
            Path::new("/x/lds.json"),
            Path::new("/x/cds.json"),
            Path::new("/x"),
            &DownstreamLimits::default(),
        );
        assert!(bootstrap.get("overload_manager").is_none(), "{bootstrap:#}");
        assert_eq!(
            bootstrap["admin"],
            json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } })
        );
    }

    #[test]
    fn limits_render_the_connection_manager_timeouts_and_the_global_connection_monitor() {
        let limits = DownstreamLimits {
            max_connections: Some(8),
            idle_timeout: Some(Duration::from_secs(2)),
            stream_idle_timeout: Some(Duration::from_millis(1500)),
            request_headers_timeout: Some(Duration::from_secs(30)),
        };
        let rendered = listener(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            RouteSource::Inline(&json!({})),
            &limits,
        );
        let manager = &rendered["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            manager["common_http_protocol_options"],
            json!({ "idle_timeout": "2s" })
        );
        assert_eq!(manager["stream_idle_timeout"], "1.5s");
        assert_eq!(manager["request_headers_timeout"], "30s");
        assert_eq!(
            manager["http_protocol_options"]["allow_absolute_url"], true,
            "the limits add to the listener, they replace nothing"
        );

        let bootstrap = bootstrap(
            "node",
            Path::new("/x/lds.json"),
            Path::new("/x/cds.json"),
            Path::new("/x"),
            &limits,
        );
        assert_eq!(
            bootstrap["overload_manager"],
            json!({
                "resource_monitors": [{
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 8,
                    },
                }],
            })
        );
        assert_eq!(
            bootstrap["admin"]["ignore_global_conn_limit"], true,
            "the admin API answers when the data plane is full"
        );
    }

    #[test]
    fn discovery_responses_wrap_resources_as_any() {
        let response = discovery_response(
            "7",
            CLUSTER_TYPE,
            [&json!({ "name": "a" }), &json!({ "name": "b" })],
        );
        assert_eq!(
            response,
            json!({
                "version_info": "7",
                "type_url": CLUSTER_TYPE,
                "resources": [
                    { "@type": CLUSTER_TYPE, "name": "a" },
                    { "@type": CLUSTER_TYPE, "name": "b" },
                ],
            })
        );
    }

    #[test]
    fn durations_in_proto_json() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_secs(15)), "15s");
        assert_eq!(duration(Duration::from_millis(250)), "0.25s");
        assert_eq!(
            duration(Duration::from_nanos(1_000_000_001)),
            "1.000000001s"
        );
    }
}

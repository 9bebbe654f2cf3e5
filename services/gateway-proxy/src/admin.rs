//! The admin listener: `/ready`, `/status`, `/config_dump`, `/metrics` and `POST /reload`.

use std::convert::Infallible;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use routing::table::{
    Fallback, HeaderEdits, PathMatcher, PathRewrite, Redirect, RedirectPath, RouteAction,
    RouteTable, ValueMatcher, WeightedClusters,
};

use crate::ProxyState;
use crate::snapshot::Snapshot;

type AdminResponse = Response<Full<Bytes>>;

/// Serves only the admin interface on `listener` until `shutdown` resolves: for a control plane
/// that drives another data plane (envoy-control) but reports like gateway-proxy. `/ready` says
/// LIVE once the first configuration is installed.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), crate::ServeError> {
    crate::server::serve_admin_only(listener, state, shutdown).await
}

pub(crate) struct AdminService {
    state: ProxyState,
    /// Serve `GET /ready` only (the readiness port).
    ready_only: bool,
}

impl AdminService {
    pub(crate) fn new(state: ProxyState) -> Self {
        Self {
            state,
            ready_only: false,
        }
    }

    pub(crate) fn ready_only(mut self, ready_only: bool) -> Self {
        self.ready_only = ready_only;
        self
    }
}

impl hyper::service::Service<Request<Incoming>> for AdminService {
    type Response = AdminResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<AdminResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let state = self.state.clone();
        if request.headers().contains_key(crate::forward::HOPS_HEADER) {
            // Forwarded by a colormesh proxy: no admin API is served through a proxy.
            return Box::pin(async {
                Ok(text(
                    StatusCode::FORBIDDEN,
                    "the admin API is not served to proxied requests\n".to_owned(),
                ))
            });
        }
        if self.ready_only && request.uri().path() != "/ready" {
            return Box::pin(async {
                Ok(text(
                    StatusCode::NOT_FOUND,
                    "this port serves GET /ready only\n".to_owned(),
                ))
            });
        }
        Box::pin(async move { Ok(answer(&state, request.method(), request.uri().path()).await) })
    }
}

async fn answer(state: &ProxyState, method: &Method, path: &str) -> AdminResponse {
    match (method, path) {
        (&Method::GET, "/ready") => match state.snapshot() {
            Some(_) => text(StatusCode::OK, "LIVE\n".to_owned()),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "PRE_INITIALIZING\n".to_owned(),
            ),
        },
        (&Method::GET, "/status") => {
            json_reply(StatusCode::OK, &status_json(state.snapshot().as_deref()))
        }
        (&Method::GET, "/config_dump") => {
            let dump = match state.snapshot() {
                Some(snapshot) => json!({
                    "generation": snapshot.generation,
                    "table": table_json(&snapshot.table),
                }),
                None => json!({ "generation": 0, "table": null }),
            };
            json_reply(StatusCode::OK, &dump)
        }
        (&Method::GET, "/metrics") => match state.shared.metrics.encode() {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed\n".to_owned(),
            ),
        },
        (&Method::POST, "/reload") => match state.reload().await {
            Ok(_) => json_reply(StatusCode::OK, &status_json(state.snapshot().as_deref())),
            Err(error) => json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "error": error.to_string() }),
            ),
        },
        (_, "/ready" | "/status" | "/config_dump" | "/metrics" | "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_owned(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "admin endpoints: GET /ready /status /config_dump /metrics, POST /reload\n".to_owned(),
        ),
    }
}

fn status_json(snapshot: Option<&Snapshot>) -> Value {
    match snapshot {
        Some(snapshot) => json!({
            "generation": snapshot.generation,
            "resources": snapshot.statuses,
            "load_errors": snapshot.load_errors,
        }),
        None => json!({ "generation": 0, "resources": [], "load_errors": [] }),
    }
}

/// The compiled table as JSON, detailed enough for callers to see a change is live.
pub(crate) fn table_json(table: &RouteTable) -> Value {
    let fallback = match table.fallback() {
        Fallback::NotFound => json!({ "kind": "not_found" }),
        Fallback::Passthrough { timeout } => {
            json!({ "kind": "passthrough", "timeout_ms": timeout.map(|t| t.as_millis() as u64) })
        }
    };
    let virtual_hosts: Vec<Value> = table
        .virtual_hosts()
        .iter()
        .map(|virtual_host| {
            let routes: Vec<Value> = virtual_host
                .routes
                .iter()
                .map(|route| {
                    let matcher = &route.matcher;
                    let path = match &matcher.path {
                        PathMatcher::Prefix(prefix) => json!({ "prefix": prefix }),
                        PathMatcher::Exact(exact) => json!({ "exact": exact }),
                        PathMatcher::Regex(regex) => json!({ "regex": regex.as_str() }),
                        PathMatcher::PathSeparatedPrefix(prefix) => {
                            json!({ "path_separated_prefix": prefix })
                        }
                    };
                    let headers: Vec<Value> = matcher
                        .headers
                        .iter()
                        .map(|header| {
                            let value = if is_sensitive(header.name.as_str()) {
                                redacted_matcher_json(&header.value)
                            } else {
                                value_matcher_json(&header.value)
                            };
                            json!({
                                "name": header.name.as_str(),
                                "value": value,
                                "invert": header.invert,
                            })
                        })
                        .collect();
                    let query_parameters: Vec<Value> = matcher
                        .query_parameters
                        .iter()
                        .map(|parameter| {
                            let value = if is_sensitive(&parameter.name) {
                                redacted_matcher_json(&parameter.value)
                            } else {
                                value_matcher_json(&parameter.value)
                            };
                            json!({ "name": parameter.name, "value": value })
                        })
                        .collect();
                    let methods: Vec<&str> = matcher
                        .methods
                        .iter()
                        .map(|method| method.as_str())
                        .collect();
                    json!({
                        "name": route.name,
                        "match": {
                            "path": path,
                            "case_sensitive": matcher.case_sensitive,
                            "headers": headers,
                            "query_parameters": query_parameters,
                            "methods": methods,
                        },
                        "action": action_json(&route.action),
                    })
                })
                .collect();
            json!({ "name": virtual_host.name, "domains": virtual_host.domains, "routes": routes })
        })
        .collect();
    json!({ "virtual_hosts": virtual_hosts, "fallback": fallback })
}

fn action_json(action: &RouteAction) -> Value {
    match action {
        RouteAction::Respond { status, body } => json!({
            "respond": { "status": status.as_u16(), "body": String::from_utf8_lossy(body) }
        }),
        RouteAction::Redirect(redirect) => json!({ "redirect": redirect_json(redirect) }),
        RouteAction::Forward(forward) => {
            let rewrite = match &forward.rewrite {
                PathRewrite::None => Value::Null,
                PathRewrite::Prefix(prefix) => json!({ "prefix": prefix }),
                PathRewrite::Regex {
                    pattern,
                    substitution,
                } => {
                    json!({ "regex": { "pattern": pattern.as_str(), "substitution": substitution } })
                }
                PathRewrite::ReplacePrefixMatch(replacement) => {
                    json!({ "replace_prefix_match": replacement })
                }
                PathRewrite::FullPath(path) => json!({ "full_path": path }),
            };
            let retry = forward.retry.as_ref().map(|retry| {
                json!({
                    "num_retries": retry.num_retries,
                    "per_try_timeout_ms": retry.per_try_timeout.map(|t| t.as_millis() as u64),
                    "retry_on": retry.retry_on.names(),
                    "retriable_status_codes": retry.retry_on.status_codes,
                    "backoff_base_ms": retry.backoff_base.map(|t| t.as_millis() as u64),
                })
            });
            let edits = |edits: &HeaderEdits| {
                json!({
                    "add": edits.add.iter().map(|(name, value, append)| json!({
                        "name": name.as_str(),
                        "value": redacted(value.as_bytes().len()),
                        "append": append,
                    })).collect::<Vec<_>>(),
                    "remove": edits.remove.iter().map(|name| name.as_str()).collect::<Vec<_>>(),
                })
            };
            json!({
                "forward": {
                    "destinations": destinations_json(&forward.destinations),
                    "total_weight": forward.destinations.total(),
                    "rewrite": rewrite,
                    "host_rewrite": forward.host_rewrite,
                    "timeout_ms": forward.timeout.map(|t| t.as_millis() as u64),
                    "retry": retry,
                    "request_headers": edits(&forward.request_headers),
                    "response_headers": edits(&forward.response_headers),
                }
            })
        }
    }
}

fn destinations_json(destinations: &WeightedClusters) -> Vec<Value> {
    destinations
        .iter()
        .map(|(cluster, weight)| {
            let endpoints: Vec<String> =
                cluster.endpoints.iter().map(ToString::to_string).collect();
            json!({
                "cluster": cluster.name,
                "weight": weight,
                "endpoints": endpoints,
                "unresolved": cluster.is_unresolved(),
            })
        })
        .collect()
}

fn redirect_json(redirect: &Redirect) -> Value {
    let path = match &redirect.path {
        RedirectPath::Keep => Value::Null,
        RedirectPath::FullPath(path) => json!({ "full_path": path }),
        RedirectPath::ReplacePrefixMatch(replacement) => {
            json!({ "replace_prefix_match": replacement })
        }
    };
    json!({
        "scheme": redirect.scheme,
        "hostname": redirect.hostname,
        "port": redirect.port,
        "path": path,
        "status": redirect.status.as_u16(),
    })
}

/// What `/config_dump` shows in place of a value that may be a secret: header values the
/// configuration adds (credentials are often added so), and values matched on credential-like
/// headers and query parameters. The admin API is unauthenticated.
fn redacted(len: usize) -> String {
    format!("[redacted: {len} bytes]")
}

/// Header and query parameter names whose values are credentials.
fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "cookie",
        "token",
        "secret",
        "password",
        "key",
        "session",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn redacted_matcher_json(matcher: &ValueMatcher) -> Value {
    match matcher {
        ValueMatcher::Present => json!({ "present": true }),
        ValueMatcher::Exact(value) => json!({ "exact": redacted(value.len()) }),
        ValueMatcher::Prefix(value) => json!({ "prefix": redacted(value.len()) }),
        ValueMatcher::Suffix(value) => json!({ "suffix": redacted(value.len()) }),
        ValueMatcher::Regex(regex) => json!({ "regex": redacted(regex.as_str().len()) }),
        ValueMatcher::Range { .. } => json!({ "range": "[redacted]" }),
    }
}

fn value_matcher_json(matcher: &ValueMatcher) -> Value {
    match matcher {
        ValueMatcher::Present => json!({ "present": true }),
        ValueMatcher::Exact(value) => json!({ "exact": value }),
        ValueMatcher::Prefix(value) => json!({ "prefix": value }),
        ValueMatcher::Suffix(value) => json!({ "suffix": value }),
        ValueMatcher::Regex(regex) => json!({ "regex": regex.as_str() }),
        ValueMatcher::Range { start, end } => json!({ "range": { "start": start, "end": end } }),
    }
}

fn text(status: StatusCode, body: String) -> AdminResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_reply(status: StatusCode, value: &Value) -> AdminResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};
    use routing::table::{
        Cluster, Fallback, ForwardAction, HeaderMatcher, Route, RouteMatcher, VirtualHost,
        WeightedClusters,
    };
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_config_dump_shows_no_secret() {
        let mut matcher = RouteMatcher::path(PathMatcher::Prefix("/".to_owned()));
        matcher.headers.push(HeaderMatcher {
            name: HeaderName::from_static("authorization"),
            value: ValueMatcher::Exact("Bearer matched-s3cret".to_owned()),
            invert: false,
        });
        matcher.headers.push(HeaderMatcher {
            name: HeaderName::from_static("x-color"),
            value: ValueMatcher::Exact("blue".to_owned()),
            invert: false,
        });
        let cluster = Arc::new(Cluster::new("c".to_owned(), Vec::new()));
        let action = ForwardAction {
            destinations: WeightedClusters::new(vec![(cluster, 1)]).expect("weights"),
            rewrite: PathRewrite::None,
            timeout: None,
            retry: None,
            request_headers: HeaderEdits {
                add: vec![(
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_static("added-s3cret"),
                    false,
                )],
                remove: Vec::new(),
            },
            response_headers: HeaderEdits::default(),
            host_rewrite: None,
        };
        let table = RouteTable::new(
            vec![VirtualHost {
                name: "vh".to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![Route {
                    name: "r".to_owned(),
                    matcher,
                    action: RouteAction::Forward(action),
                }],
            }],
            Fallback::NotFound,
        )
        .expect("table");
        let dump = table_json(&table).to_string();
        assert!(!dump.contains("s3cret"), "{dump}");
        assert!(dump.contains("[redacted: 21 bytes]"), "{dump}");
        assert!(dump.contains("blue"), "other matchers are shown: {dump}");
    }
}

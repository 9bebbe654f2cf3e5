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
}

impl AdminService {
    pub(crate) fn new(state: ProxyState) -> Self {
        Self { state }
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
                            json!({
                                "name": header.name.as_str(),
                                "value": value_matcher_json(&header.value),
                                "invert": header.invert,
                            })
                        })
                        .collect();
                    let query_parameters: Vec<Value> = matcher
                        .query_parameters
                        .iter()
                        .map(|parameter| {
                            json!({ "name": parameter.name, "value": value_matcher_json(&parameter.value) })
                        })
                        .collect();
                    let methods: Vec<&str> = matcher.methods.iter().map(|method| method.as_str()).collect();
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
                        "value": String::from_utf8_lossy(value.as_bytes()),
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

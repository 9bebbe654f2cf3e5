//! The request path: route, rewrite, pick, forward (with timeout and retries), answer.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::time::Instant;

use crate::headers::strip_hop_by_hop;
use crate::metrics::{CodeCounters, RouteMetrics};
use crate::table::{Fallback, ForwardAction, RequestView, RouteAction, RouteDecision};
use crate::{ProxyOptions, Shared, Snapshot};

/// Body type of everything the proxy sends: a streamed hyper body or a buffered one.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;
pub(crate) type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// Bodies up to this size are buffered when a retry policy may need to resend them.
const MAX_RETRY_BODY: usize = 64 * 1024;
/// Envoy's default retry back-off base interval.
const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(25);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const BODY_TIMEOUT: &str = "upstream request timeout";
const BODY_NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
const BODY_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

pub(crate) fn upstream_client(options: &ProxyOptions) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(
        options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
    ));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        // The Host header is always set by the proxy itself (kept as received).
        .set_host(false)
        .build(connector)
}

/// The per-connection request service: owns the connection's random generator.
pub(crate) struct ConnectionService {
    shared: Arc<Shared>,
    rng: RefCell<SmallRng>,
}

impl ConnectionService {
    pub(crate) fn new(shared: Arc<Shared>, connection_index: u64) -> Self {
        let rng = match shared.options.seed {
            Some(seed) => SmallRng::seed_from_u64(seed.wrapping_add(connection_index)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Self {
            shared,
            rng: RefCell::new(rng),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let request_rng = SmallRng::seed_from_u64(self.rng.borrow_mut().next_u64());
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(handle(&shared, request, request_rng).await) })
    }
}

/// Answers one downstream request.
async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    mut rng: SmallRng,
) -> Response<ProxyBody> {
    let Some(snapshot) = shared.current.load_full() else {
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded");
    };
    let (parts, body) = request.into_parts();
    let authority = request_authority(&parts.uri, &parts.headers)
        .unwrap_or_default()
        .to_owned();
    let view = RequestView {
        authority: &authority,
        path: parts.uri.path(),
        query: parts.uri.query(),
        method: &parts.method,
        headers: &parts.headers,
    };
    match snapshot.table.route(&view) {
        RouteDecision::Matched {
            virtual_host,
            route,
            entry,
        } => {
            let route_metrics = snapshot.metrics.route(virtual_host, route);
            match &entry.action {
                RouteAction::Respond { status, body } => {
                    record(route_metrics.map(|metrics| &metrics.direct), *status);
                    Response::builder()
                        .status(*status)
                        .body(Either::Right(Full::new(body.clone())))
                        .unwrap_or_else(|_| internal_error())
                }
                RouteAction::Forward(forward) => {
                    let rewritten = forward.rewrite.apply(
                        &entry.matcher.path,
                        parts.uri.path(),
                        parts.uri.query(),
                    );
                    let request = Downstream {
                        parts,
                        body,
                        authority,
                        rewritten,
                    };
                    forward_request(shared, route_metrics, forward, request, &mut rng).await
                }
            }
        }
        RouteDecision::NoRoute { virtual_host } => {
            snapshot.metrics.no_route(virtual_host).record(404);
            empty_reply(StatusCode::NOT_FOUND)
        }
        RouteDecision::NoVirtualHost(Fallback::NotFound) => {
            snapshot.metrics.no_virtual_host().record(404);
            empty_reply(StatusCode::NOT_FOUND)
        }
        RouteDecision::NoVirtualHost(Fallback::Passthrough { timeout }) => {
            let timeout = *timeout;
            passthrough(shared, &snapshot, parts, body, authority, timeout, &mut rng).await
        }
    }
}

/// The authority a request is addressed to: the absolute-form URI's, else the Host header.
fn request_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(Authority::as_str).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    })
}

struct Downstream {
    parts: http::request::Parts,
    body: Incoming,
    authority: String,
    /// The rewritten path and query, when the route rewrites.
    rewritten: Option<String>,
}

/// How one try ended without a usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TryFailure {
    ConnectFailure,
    Reset,
    PerTryTimeout,
}

async fn forward_request(
    shared: &Shared,
    route_metrics: Option<&RouteMetrics>,
    forward: &ForwardAction,
    downstream: Downstream,
    rng: &mut SmallRng,
) -> Response<ProxyBody> {
    let Downstream {
        parts,
        body,
        authority,
        rewritten,
    } = downstream;
    let path_and_query = match rewritten {
        Some(rewritten) => match PathAndQuery::try_from(rewritten) {
            Ok(path_and_query) => path_and_query,
            Err(_) => {
                return local_reply(
                    StatusCode::BAD_REQUEST,
                    "rewritten path is not a valid URI path",
                );
            }
        },
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    let mut headers = parts.headers;
    prepare_upstream_headers(&mut headers, &authority, rng);
    forward.request_headers.apply(&mut headers);

    let deadline = forward.timeout.map(|timeout| Instant::now() + timeout);
    let retry = forward.retry.as_ref();
    // Only a small, fully known body can be replayed; anything else gets a single try.
    let (mut streamed, buffered) = match retry {
        Some(_) if body_fits_retry_buffer(&body, &headers) => {
            match Limited::new(body, MAX_RETRY_BODY).collect().await {
                Ok(collected) => (None, Some(collected.to_bytes())),
                Err(_) => {
                    return local_reply(StatusCode::BAD_REQUEST, "request body could not be read");
                }
            }
        }
        _ => (Some(body), None),
    };
    let max_tries = match (&buffered, retry) {
        (Some(_), Some(retry)) => retry.num_retries.saturating_add(1),
        _ => 1,
    };

    let mut tries = 0;
    loop {
        tries += 1;
        let destination = forward.destinations.pick_index(rng.next_u64());
        let Some((cluster, _)) = forward.destinations.iter().nth(destination) else {
            return internal_error();
        };
        let metrics = route_metrics.and_then(|metrics| metrics.destinations.get(destination));
        let Some(endpoint) = cluster.next_endpoint_authority() else {
            return recorded(
                metrics.map(|m| &m.requests),
                local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_NO_HEALTHY_UPSTREAM),
            );
        };
        let body = match (&buffered, streamed.take()) {
            (Some(bytes), _) => Either::Right(Full::new(bytes.clone())),
            (None, Some(incoming)) => Either::Left(incoming),
            (None, None) => return internal_error(),
        };
        let mut uri_parts = http::uri::Parts::default();
        uri_parts.scheme = Some(Scheme::HTTP);
        uri_parts.authority = Some(endpoint.clone());
        uri_parts.path_and_query = Some(path_and_query.clone());
        let Ok(uri) = Uri::from_parts(uri_parts) else {
            return internal_error();
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = if tries < max_tries {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };

        let now = Instant::now();
        if deadline.is_some_and(|deadline| deadline <= now) {
            return recorded(
                metrics.map(|m| &m.requests),
                local_reply(StatusCode::GATEWAY_TIMEOUT, BODY_TIMEOUT),
            );
        }
        let per_try_deadline = retry
            .and_then(|retry| retry.per_try_timeout)
            .map(|timeout| now + timeout);
        let try_deadline = match (deadline, per_try_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let outcome = send_once(&shared.client, request, try_deadline).await;
        if let Some(metrics) = metrics {
            metrics.latency.observe(now.elapsed());
        }
        let retry_wanted = match (&outcome, retry) {
            (_, None) => false,
            (Ok(response), Some(retry)) => should_retry_status(response.status(), retry.retry_on),
            (Err(failure), Some(retry)) => should_retry_failure(*failure, retry.retry_on),
        };
        let route_deadline_hit = deadline.is_some_and(|deadline| deadline <= Instant::now());
        if retry_wanted && tries < max_tries && !route_deadline_hit {
            // Envoy's default back-off: a random wait below base * 2^(tries-1), capped at 10 * base.
            let ceiling =
                (RETRY_BACKOFF_BASE * 2u32.saturating_pow(tries - 1)).min(RETRY_BACKOFF_BASE * 10);
            let wait = ceiling.mul_f64(rng.random::<f64>());
            let wake = Instant::now() + wait;
            tokio::time::sleep_until(deadline.map_or(wake, |deadline| wake.min(deadline))).await;
            continue;
        }
        let response = match outcome {
            Ok(response) => {
                let (mut response_parts, body) = response.into_parts();
                strip_hop_by_hop(&mut response_parts.headers);
                forward.response_headers.apply(&mut response_parts.headers);
                Response::from_parts(response_parts, Either::Left(body))
            }
            Err(TryFailure::ConnectFailure) => {
                local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_CONNECT_FAILURE)
            }
            Err(TryFailure::Reset) => local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_RESET),
            Err(TryFailure::PerTryTimeout) => {
                local_reply(StatusCode::GATEWAY_TIMEOUT, BODY_TIMEOUT)
            }
        };
        return recorded(metrics.map(|m| &m.requests), response);
    }
}

async fn passthrough(
    shared: &Shared,
    snapshot: &Snapshot,
    parts: http::request::Parts,
    body: Incoming,
    authority: String,
    timeout: Option<Duration>,
    rng: &mut SmallRng,
) -> Response<ProxyBody> {
    let metrics = snapshot.metrics.passthrough();
    let Ok(authority_value) = Authority::try_from(authority.as_str()) else {
        metrics.requests.record(404);
        return empty_reply(StatusCode::NOT_FOUND);
    };
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.scheme = Some(Scheme::HTTP);
    uri_parts.authority = Some(authority_value);
    uri_parts.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let Ok(uri) = Uri::from_parts(uri_parts) else {
        return internal_error();
    };
    let mut headers = parts.headers;
    prepare_upstream_headers(&mut headers, &authority, rng);
    let mut request = Request::new(Either::Left(body));
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    let started = Instant::now();
    let outcome = send_once(
        &shared.client,
        request,
        timeout.map(|timeout| started + timeout),
    )
    .await;
    metrics.latency.observe(started.elapsed());
    let response = match outcome {
        Ok(response) => {
            let (mut response_parts, body) = response.into_parts();
            strip_hop_by_hop(&mut response_parts.headers);
            Response::from_parts(response_parts, Either::Left(body))
        }
        Err(TryFailure::ConnectFailure) => {
            local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_CONNECT_FAILURE)
        }
        Err(TryFailure::Reset) => local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_RESET),
        Err(TryFailure::PerTryTimeout) => local_reply(StatusCode::GATEWAY_TIMEOUT, BODY_TIMEOUT),
    };
    recorded(Some(&metrics.requests), response)
}

/// Headers every forwarded request gets, in Envoy's manner.
fn prepare_upstream_headers(headers: &mut HeaderMap, authority: &str, rng: &mut SmallRng) {
    strip_hop_by_hop(headers);
    // Keep Host as received; absolute-form and HTTP/2 requests carry it in the URI instead.
    if !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority)
    {
        headers.insert(header::HOST, host);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if !headers.contains_key("x-request-id")
        && let Ok(id) = HeaderValue::try_from(uuid_v4(rng))
    {
        headers.insert("x-request-id", id);
    }
}

/// A random (version 4) UUID in its canonical text form, as Envoy generates for `x-request-id`.
fn uuid_v4(rng: &mut SmallRng) -> String {
    let high = (rng.next_u64() & !0xf000) | 0x4000;
    let low = (rng.next_u64() & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

fn body_fits_retry_buffer(body: &Incoming, headers: &HeaderMap) -> bool {
    if body.is_end_stream() {
        return true;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    declared.is_some_and(|length| length <= MAX_RETRY_BODY as u64)
}

async fn send_once(
    client: &UpstreamClient,
    request: Request<ProxyBody>,
    deadline: Option<Instant>,
) -> Result<Response<Incoming>, TryFailure> {
    let sent = client.request(request);
    let result = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, sent).await {
            Ok(result) => result,
            Err(_) => return Err(TryFailure::PerTryTimeout),
        },
        None => sent.await,
    };
    result.map_err(|error| {
        tracing::debug!(%error, "upstream try failed");
        if error.is_connect() {
            TryFailure::ConnectFailure
        } else {
            TryFailure::Reset
        }
    })
}

fn should_retry_status(status: StatusCode, retry_on: crate::table::RetryOn) -> bool {
    (retry_on.server_error && status.is_server_error())
        || (retry_on.gateway_error
            && matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ))
        || (retry_on.retriable_4xx && status == StatusCode::CONFLICT)
}

fn should_retry_failure(failure: TryFailure, retry_on: crate::table::RetryOn) -> bool {
    match failure {
        TryFailure::ConnectFailure => {
            retry_on.connect_failure
                || retry_on.server_error
                || retry_on.gateway_error
                || retry_on.reset
        }
        TryFailure::Reset => retry_on.server_error || retry_on.gateway_error || retry_on.reset,
        TryFailure::PerTryTimeout => retry_on.server_error || retry_on.gateway_error,
    }
}

fn record(counters: Option<&CodeCounters>, status: StatusCode) {
    if let Some(counters) = counters {
        counters.record(status.as_u16());
    }
}

fn recorded(counters: Option<&CodeCounters>, response: Response<ProxyBody>) -> Response<ProxyBody> {
    record(counters, response.status());
    response
}

/// A locally generated plain-text answer, like Envoy's local replies.
pub(crate) fn local_reply(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn empty_reply(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

fn internal_error() -> Response<ProxyBody> {
    empty_reply(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant_bits() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..100 {
            let id = uuid_v4(&mut rng);
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn retry_classes_follow_envoy() {
        let retry_on = |list: &str| crate::table::RetryOn::parse(list).expect("valid retry_on");
        assert!(should_retry_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            retry_on("5xx")
        ));
        assert!(!should_retry_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            retry_on("gateway-error")
        ));
        assert!(should_retry_status(
            StatusCode::SERVICE_UNAVAILABLE,
            retry_on("gateway-error")
        ));
        assert!(should_retry_status(
            StatusCode::CONFLICT,
            retry_on("retriable-4xx")
        ));
        assert!(!should_retry_status(
            StatusCode::NOT_FOUND,
            retry_on("5xx,retriable-4xx")
        ));
        assert!(should_retry_failure(
            TryFailure::ConnectFailure,
            retry_on("connect-failure")
        ));
        assert!(!should_retry_failure(
            TryFailure::Reset,
            retry_on("connect-failure")
        ));
        assert!(should_retry_failure(TryFailure::Reset, retry_on("reset")));
        assert!(!should_retry_failure(
            TryFailure::PerTryTimeout,
            retry_on("reset,connect-failure")
        ));
        assert!(should_retry_failure(
            TryFailure::PerTryTimeout,
            retry_on("5xx")
        ));
    }
}

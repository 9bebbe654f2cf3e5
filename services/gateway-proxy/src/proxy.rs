//! The request path: route, rewrite, pick, forward (with timeout and retries), answer.
//!
//! The steps of one try are the public building blocks in [`crate::forward`]; this module adds
//! what only gateway-proxy does: metrics, retries with Envoy's back-off, and the sidecar's
//! passthrough.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Incoming};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use routing::table::{
    Fallback, ForwardAction, RequestView, RetryOn, RetryPolicy, RouteAction, RouteDecision,
};
use tokio::time::Instant;

use crate::forward::{
    BODY_NO_HEALTHY_UPSTREAM, BODY_TIMEOUT, IdleTimeoutBody, ProxyBody, RefusedRequest, TryFailure,
    direct_reply, downstream_reply, empty_reply, ensure_request_id, local_reply, redirect_reply,
    rewrite_host, settle_authority, stamp_generation, unresolved_reply, upstream_headers,
    upstream_path, upstream_request,
};
use crate::metrics::{CodeCounters, RouteMetrics};
use crate::{Shared, Snapshot};

/// Bodies up to this size are buffered when a retry policy may need to resend them.
const MAX_RETRY_BODY: usize = 64 * 1024;
/// Envoy's default retry back-off base interval.
const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(25);

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

/// Answers one downstream request with the snapshot live when it arrived, and says which one.
async fn handle(
    shared: &Shared,
    mut request: Request<Incoming>,
    rng: SmallRng,
) -> Response<ProxyBody> {
    let Some(snapshot) = shared.current.load_full() else {
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded");
    };
    let Some(recorder) = &shared.options.xray else {
        let mut response = route_request(shared, &snapshot, request, rng).await;
        stamp_generation(&mut response, snapshot.generation);
        return response;
    };
    // Envoy's X-Ray tracer: a segment for this hop, its id the upstream request's Parent.
    let mut trace = recorder.begin(&request);
    request.headers_mut().insert(
        service_kit::xray::TRACE_HEADER,
        trace.downstream_header(&trace.segment.id),
    );
    let mut response = route_request(shared, &snapshot, request, rng).await;
    stamp_generation(&mut response, snapshot.generation);
    if let Some(UpstreamCluster(cluster)) = response.extensions_mut().remove::<UpstreamCluster>() {
        trace
            .segment
            .annotations
            .insert("upstream_cluster".to_owned(), cluster.into());
    }
    let length = response.body().size_hint().exact().unwrap_or(0);
    recorder.end(trace, response.status(), length);
    response
}

/// The cluster a traced request's answer came from, carried on the response to its segment.
#[derive(Debug, Clone)]
struct UpstreamCluster(String);

/// Routes and answers one request with `snapshot`.
async fn route_request(
    shared: &Shared,
    snapshot: &Snapshot,
    request: Request<Incoming>,
    mut rng: SmallRng,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let authority = match settle_authority(&mut parts) {
        Ok(authority) => authority,
        Err(refused) => return refused.reply(),
    };
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
                    direct_reply(*status, body.clone())
                }
                RouteAction::Redirect(redirect) => {
                    let reply = redirect_reply(
                        redirect,
                        &entry.matcher.path,
                        &parts.uri,
                        &parts.headers,
                        &authority,
                    );
                    recorded(route_metrics.map(|metrics| &metrics.direct), reply)
                }
                RouteAction::Forward(forward) => {
                    let rewritten = forward.rewrite.apply(
                        &entry.matcher.path,
                        parts.uri.path(),
                        parts.uri.query(),
                    );
                    let path_and_query = match upstream_path(&parts.uri, rewritten) {
                        Ok(path_and_query) => path_and_query,
                        Err(invalid) => return invalid.reply(),
                    };
                    let matched = Matched {
                        snapshot,
                        virtual_host,
                        route,
                        forward,
                        metrics: route_metrics,
                    };
                    let request = Downstream {
                        parts,
                        body,
                        authority,
                        path_and_query,
                    };
                    forward_request(shared, matched, request, &mut rng).await
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
            passthrough(shared, snapshot, parts, body, authority, timeout, &mut rng).await
        }
    }
}

/// The route a request matched, with what forwarding it needs from the snapshot.
struct Matched<'s> {
    snapshot: &'s Snapshot,
    virtual_host: usize,
    route: usize,
    forward: &'s ForwardAction,
    metrics: Option<&'s RouteMetrics>,
}

/// The downstream request, taken apart, with the path and query to send upstream.
struct Downstream {
    parts: http::request::Parts,
    body: Incoming,
    authority: String,
    path_and_query: PathAndQuery,
}

/// Forwards a request that matched a forwarding route: picks a destination per try, and retries
/// as the route's policy says until it runs out of tries or of time.
async fn forward_request(
    shared: &Shared,
    matched: Matched<'_>,
    downstream: Downstream,
    rng: &mut SmallRng,
) -> Response<ProxyBody> {
    let Downstream {
        parts,
        body,
        authority,
        path_and_query,
    } = downstream;
    let forward = matched.forward;
    let mut headers = parts.headers;
    upstream_headers(&mut headers, &authority);
    ensure_request_id(&mut headers, rng);
    forward.request_headers.apply(&mut headers);
    rewrite_host(&mut headers, forward.host_rewrite.as_deref());
    let retry = forward.retry.as_ref();
    let idle = shared.options.limits.body_idle_timeout;
    let body = match RequestBody::read(body, &headers, retry, idle).await {
        Ok(body) => body,
        Err(unreadable) => return unreadable.reply(),
    };
    let mut tries = Tries {
        made: 0,
        max: body.max_tries(retry),
        deadline: forward.timeout.map(|timeout| Instant::now() + timeout),
        body,
        headers,
    };
    let target = UpstreamTarget {
        method: &parts.method,
        path_and_query: &path_and_query,
    };
    loop {
        let (outcome, requests) = match try_once(shared, &matched, &target, &mut tries, rng).await {
            TryEnd::Sent { outcome, requests } => (outcome, requests),
            TryEnd::Answered(response) => return response,
        };
        if let Some(retry) = retry
            && tries.another_wanted(&outcome, retry)
        {
            let base = retry.backoff_base.unwrap_or(RETRY_BACKOFF_BASE);
            back_off(base, tries.made, tries.deadline, rng).await;
            continue;
        }
        return recorded(
            requests,
            downstream_reply(outcome, Some(&forward.response_headers), tries.deadline),
        );
    }
}

/// What every try of one request sends, whatever destination it picks.
struct UpstreamTarget<'r> {
    method: &'r Method,
    path_and_query: &'r PathAndQuery,
}

/// The state of a request's tries.
struct Tries {
    made: u32,
    max: u32,
    /// The route's deadline for the whole request, tries and back-offs included.
    deadline: Option<Instant>,
    body: RequestBody,
    headers: HeaderMap,
}

impl Tries {
    /// The headers of the next try: the last try may have them, earlier ones need a copy.
    fn headers_for_next_try(&mut self) -> HeaderMap {
        if self.made < self.max {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        }
    }

    /// Whether to try again after `outcome`: the policy asks for it, a try is left, and the
    /// route's deadline has not passed.
    fn another_wanted(
        &self,
        outcome: &Result<Response<Incoming>, TryFailure>,
        retry: &RetryPolicy,
    ) -> bool {
        let wanted = wants_retry(outcome, &retry.retry_on);
        let deadline_hit = self
            .deadline
            .is_some_and(|deadline| deadline <= Instant::now());
        wanted && self.made < self.max && !deadline_hit
    }
}

/// How one try ended.
enum TryEnd<'m> {
    /// It reached the upstream; the outcome decides between answering and retrying.
    Sent {
        outcome: Result<Response<Incoming>, TryFailure>,
        /// Where the answer is counted.
        requests: Option<&'m CodeCounters>,
    },
    /// It could not be sent; this is the (already counted) answer.
    Answered(Response<ProxyBody>),
}

/// One try: picks a destination and its next endpoint, sends, and measures the upstream's time.
async fn try_once<'m>(
    shared: &Shared,
    matched: &Matched<'m>,
    target: &UpstreamTarget<'_>,
    tries: &mut Tries,
    rng: &mut SmallRng,
) -> TryEnd<'m> {
    tries.made += 1;
    let destination = matched.forward.destinations.pick_index(rng.next_u64());
    let metrics = matched
        .metrics
        .and_then(|metrics| metrics.destinations.get(destination));
    let requests = metrics.map(|metrics| &metrics.requests);
    let unresolved = matched
        .forward
        .destinations
        .get(destination)
        .is_some_and(|(cluster, _)| cluster.is_unresolved());
    if unresolved {
        // Envoy answers a missing cluster before any try, so no retry policy applies.
        return TryEnd::Answered(recorded(requests, unresolved_reply()));
    }
    let endpoint = matched
        .snapshot
        .next_endpoint(matched.virtual_host, matched.route, destination);
    let Some(endpoint) = endpoint else {
        let reply = local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_NO_HEALTHY_UPSTREAM);
        return TryEnd::Answered(recorded(requests, reply));
    };
    let Some(body) = tries.body.for_next_try() else {
        return TryEnd::Answered(internal_error());
    };
    let headers = tries.headers_for_next_try();
    let Ok(request) = upstream_request(
        target.method.clone(),
        endpoint.clone(),
        target.path_and_query.clone(),
        headers,
        body,
    ) else {
        return TryEnd::Answered(internal_error());
    };
    let now = Instant::now();
    if tries.deadline.is_some_and(|deadline| deadline <= now) {
        let reply = local_reply(StatusCode::GATEWAY_TIMEOUT, BODY_TIMEOUT);
        return TryEnd::Answered(recorded(requests, reply));
    }
    let per_try = matched.forward.retry.as_ref();
    let mut outcome = shared
        .upstream
        .send(request, try_deadline(tries.deadline, per_try, now))
        .await;
    if outcome.is_err() && tries.body.sender_failed() {
        // The client's body failed (malformed chunking, a stall): not the upstream's fault.
        return TryEnd::Answered(UnreadableBody.reply());
    }
    if shared.options.xray.is_some()
        && let Ok(response) = &mut outcome
        && let Some((cluster, _)) = matched.forward.destinations.get(destination)
    {
        response
            .extensions_mut()
            .insert(UpstreamCluster(cluster.name.clone()));
    }
    if let Some(metrics) = metrics {
        metrics.latency.observe(now.elapsed());
    }
    TryEnd::Sent { outcome, requests }
}

/// The request body, as the retry policy needs it: only a small, fully known body can be
/// replayed; anything else is streamed to a single try.
enum RequestBody {
    Streamed {
        body: Option<Incoming>,
        /// The body idle timeout.
        idle: Duration,
        /// Set when the client's body failed while it was being sent upstream.
        failed: Arc<AtomicBool>,
    },
    Buffered(Bytes),
}

/// A request body that failed while it was being buffered for retries.
#[derive(Debug)]
struct UnreadableBody;

impl UnreadableBody {
    fn reply(self) -> Response<ProxyBody> {
        local_reply(StatusCode::BAD_REQUEST, "request body could not be read")
    }
}

impl RequestBody {
    /// Buffers the body when a retry may resend it and it fits.
    async fn read(
        body: Incoming,
        headers: &HeaderMap,
        retry: Option<&RetryPolicy>,
        idle: Duration,
    ) -> Result<Self, UnreadableBody> {
        if retry.is_none() || !body_fits_retry_buffer(&body, headers) {
            return Ok(Self::Streamed {
                body: Some(body),
                idle,
                failed: Arc::new(AtomicBool::new(false)),
            });
        }
        let collect = Limited::new(body, MAX_RETRY_BODY).collect();
        match tokio::time::timeout(idle, collect).await {
            Ok(Ok(collected)) => Ok(Self::Buffered(collected.to_bytes())),
            _ => Err(UnreadableBody),
        }
    }

    /// Whether the client's body failed while it was being sent.
    fn sender_failed(&self) -> bool {
        match self {
            Self::Streamed { failed, .. } => failed.load(Ordering::Acquire),
            Self::Buffered(_) => false,
        }
    }

    fn max_tries(&self, retry: Option<&RetryPolicy>) -> u32 {
        match (self, retry) {
            (Self::Buffered(_), Some(retry)) => retry.num_retries.saturating_add(1),
            _ => 1,
        }
    }

    /// The body of the next try; a streamed body can be sent only once.
    fn for_next_try(&mut self) -> Option<ProxyBody> {
        match self {
            Self::Buffered(bytes) => Some(Either::Right(Full::new(bytes.clone()))),
            Self::Streamed { body, idle, failed } => body.take().map(|body| {
                Either::Left(
                    IdleTimeoutBody::new(body, Some(*idle)).flag_failure(Arc::clone(failed)),
                )
            }),
        }
    }
}

/// When a try must have its response headers: the route's deadline or the per-try timeout from
/// `now`, whichever comes first.
fn try_deadline(
    route_deadline: Option<Instant>,
    retry: Option<&RetryPolicy>,
    now: Instant,
) -> Option<Instant> {
    let per_try_deadline = retry
        .and_then(|retry| retry.per_try_timeout)
        .map(|timeout| now + timeout);
    match (route_deadline, per_try_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Envoy's back-off before try `tries + 1`: a random wait below base * 2^(tries-1), capped at
/// 10 * base (Envoy's default `max_interval`), and never past the route's deadline.
async fn back_off(base: Duration, tries: u32, deadline: Option<Instant>, rng: &mut SmallRng) {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(tries - 1))
        .min(base.saturating_mul(10));
    let wait = ceiling.mul_f64(rng.random::<f64>());
    let wake = Instant::now() + wait;
    tokio::time::sleep_until(deadline.map_or(wake, |deadline| wake.min(deadline))).await;
}

/// Forwards a request no virtual host took to its own authority (App Mesh egress ALLOW_ALL).
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
    let Ok(endpoint) = Authority::try_from(authority.as_str()) else {
        metrics.requests.record(404);
        return empty_reply(StatusCode::NOT_FOUND);
    };
    if addressed_to_self(
        &endpoint,
        shared.own_addresses.get().map_or(&[], Vec::as_slice),
    ) {
        return RefusedRequest::AddressedToSelf.reply();
    }
    let failed = Arc::new(AtomicBool::new(false));
    let idle = shared.options.limits.body_idle_timeout;
    let body = IdleTimeoutBody::new(body, Some(idle)).flag_failure(Arc::clone(&failed));
    let Ok(path_and_query) = upstream_path(&parts.uri, None) else {
        return internal_error();
    };
    let mut headers = parts.headers;
    upstream_headers(&mut headers, &authority);
    ensure_request_id(&mut headers, rng);
    let Ok(request) = upstream_request(
        parts.method,
        endpoint,
        path_and_query,
        headers,
        Either::Left(body),
    ) else {
        return internal_error();
    };
    let started = Instant::now();
    let outcome = shared
        .upstream
        .send(request, timeout.map(|timeout| started + timeout))
        .await;
    if outcome.is_err() && failed.load(Ordering::Acquire) {
        return UnreadableBody.reply();
    }
    metrics.latency.observe(started.elapsed());
    recorded(
        Some(&metrics.requests),
        downstream_reply(outcome, None, timeout.map(|timeout| started + timeout)),
    )
}

/// Whether `endpoint` names one of `own` (the proxy's listeners): the same port on a loopback
/// or unspecified address, on the listener's own address, or `localhost`.
fn addressed_to_self(endpoint: &Authority, own: &[SocketAddr]) -> bool {
    let port = endpoint.port_u16().unwrap_or(80);
    let host = endpoint
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip = host.parse::<IpAddr>().ok();
    own.iter().filter(|own| own.port() == port).any(|own| {
        host.eq_ignore_ascii_case("localhost")
            || ip.is_some_and(|ip| ip == own.ip() || ip.is_loopback() || ip.is_unspecified())
    })
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

/// Whether `retry_on` asks for another try after this outcome.
fn wants_retry(outcome: &Result<Response<Incoming>, TryFailure>, retry_on: &RetryOn) -> bool {
    match outcome {
        Ok(response) => should_retry_status(response.status(), retry_on),
        Err(failure) => should_retry_failure(*failure, retry_on),
    }
}

fn should_retry_status(status: StatusCode, retry_on: &RetryOn) -> bool {
    (retry_on.server_error && status.is_server_error())
        || (retry_on.gateway_error
            && matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ))
        || (retry_on.retriable_4xx && status == StatusCode::CONFLICT)
        || retry_on.status_codes.contains(&status.as_u16())
}

fn should_retry_failure(failure: TryFailure, retry_on: &RetryOn) -> bool {
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

fn internal_error() -> Response<ProxyBody> {
    empty_reply(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classes_follow_envoy() {
        let retry_on = |list: &str| RetryOn::parse(list).expect("valid retry_on");
        assert!(should_retry_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &retry_on("5xx")
        ));
        assert!(!should_retry_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &retry_on("gateway-error")
        ));
        assert!(should_retry_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &retry_on("gateway-error")
        ));
        assert!(should_retry_status(
            StatusCode::CONFLICT,
            &retry_on("retriable-4xx")
        ));
        assert!(!should_retry_status(
            StatusCode::NOT_FOUND,
            &retry_on("5xx,retriable-4xx")
        ));
        assert!(should_retry_failure(
            TryFailure::ConnectFailure,
            &retry_on("connect-failure")
        ));
        assert!(!should_retry_failure(
            TryFailure::Reset,
            &retry_on("connect-failure")
        ));
        assert!(should_retry_failure(TryFailure::Reset, &retry_on("reset")));
        assert!(!should_retry_failure(
            TryFailure::PerTryTimeout,
            &retry_on("reset,connect-failure")
        ));
        assert!(should_retry_failure(
            TryFailure::PerTryTimeout,
            &retry_on("5xx")
        ));
        let codes = RetryOn {
            status_codes: vec![418, 503],
            ..RetryOn::default()
        };
        assert!(should_retry_status(StatusCode::IM_A_TEAPOT, &codes));
        assert!(should_retry_status(StatusCode::SERVICE_UNAVAILABLE, &codes));
        assert!(!should_retry_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &codes
        ));
        assert!(
            !should_retry_failure(TryFailure::Reset, &codes),
            "status codes say nothing about failed tries"
        );
    }
}

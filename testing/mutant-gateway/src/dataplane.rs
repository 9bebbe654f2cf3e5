//! A minimal ingress data plane over gateway-proxy's public table API, with the fault built in.
//!
//! gateway-proxy draws every pick from a per-connection generator inside its request path and
//! swaps configurations in atomically; neither is reachable from outside, and a faulty gateway
//! must not add fault hooks to the real one. So this data plane routes with the live
//! [`Snapshot`]'s [`RouteTable::route`], rewrites with [`PathRewrite::apply`] (through
//! [`Mutation::rewrite`]), picks with [`Mutation::pick`] over [`WeightedClusters`], and forwards
//! once over a pooled HTTP/1.1 client. Deliberately left out, because no mutant scenario needs
//! them: retries, `x-request-id`, metrics and the sidecar's passthrough fallback. Timeouts and
//! header edits are honoured.
//!
//! [`RouteTable::route`]: gateway_proxy::table::RouteTable::route
//! [`PathRewrite::apply`]: gateway_proxy::table::PathRewrite::apply
//! [`WeightedClusters`]: gateway_proxy::table::WeightedClusters

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway_proxy::table::{RequestView, RouteAction, RouteDecision};
use gateway_proxy::{ProxyState, Snapshot};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::Mutation;

type Body = Either<Incoming, Full<Bytes>>;
type UpstreamClient = Client<HttpConnector, Incoming>;

/// How often the stale-config history looks for a new snapshot.
const HISTORY_POLL: Duration = Duration::from_millis(5);

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the data plane needs besides the proxy state.
#[derive(Debug, Clone, Copy)]
pub struct DataPlaneOptions {
    /// The fault.
    pub mutation: Mutation,
    /// Seeds connection `i`'s generator with `seed + i`, as gateway-proxy does; `None` from entropy.
    pub seed: Option<u64>,
    /// How long [`Mutation::StaleConfig`] serves the previous configuration after a change.
    pub stale_for: Duration,
}

/// Why the data plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// Accepting on the listener failed for good.
    #[error("accepting a data-plane connection failed: {0}")]
    Accept(#[source] std::io::Error),
}

/// The snapshots seen so far with the time each was first seen, for [`Mutation::StaleConfig`].
#[derive(Debug, Default)]
struct History {
    /// Oldest first; the first entry's time is `None` (served at once).
    entries: Vec<(Arc<Snapshot>, Option<Instant>)>,
}

impl History {
    fn record(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        let newer = self
            .entries
            .last()
            .is_none_or(|(last, _)| last.generation != snapshot.generation);
        if newer {
            let seen = (!self.entries.is_empty()).then_some(now);
            self.entries.push((snapshot, seen));
        }
    }

    /// The snapshots from the newest one that has been live for at least `stale_for` (the one a
    /// data plane lagging `stale_for` behind serves) to the newest, oldest first; snapshots older
    /// than the first are dropped.
    fn lagging(&mut self, now: Instant, stale_for: Duration) -> Vec<Arc<Snapshot>> {
        let Some(position) = self
            .entries
            .iter()
            .rposition(|(_, seen)| seen.is_none_or(|seen| now.duration_since(seen) >= stale_for))
        else {
            return Vec::new();
        };
        self.entries.drain(..position);
        self.entries
            .iter()
            .map(|(snapshot, _)| Arc::clone(snapshot))
            .collect()
    }
}

#[derive(Debug)]
struct Shared {
    state: ProxyState,
    options: DataPlaneOptions,
    client: UpstreamClient,
    connections: AtomicU64,
    history: Mutex<History>,
}

/// Serves the mutated data plane on `listener` until `shutdown` completes.
///
/// Routes with `state`'s live configuration (installed by gateway-proxy's reload machinery);
/// serve `state`'s admin API with [`gateway_proxy::serve`] beside it.
pub async fn serve_data_plane(
    listener: TcpListener,
    state: ProxyState,
    options: DataPlaneOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DataPlaneError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .set_host(false)
        .build(connector);
    let shared = Arc::new(Shared {
        state,
        options,
        client,
        connections: AtomicU64::new(0),
        history: Mutex::new(History::default()),
    });
    let history_task = (options.mutation == Mutation::StaleConfig).then(|| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(HISTORY_POLL);
            loop {
                poll.tick().await;
                if let Some(snapshot) = shared.state.snapshot() {
                    lock(&shared.history).record(snapshot, Instant::now());
                }
            }
        })
    });
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) if is_transient(&error) => {
                        tracing::warn!(%error, "accept failed; continuing");
                        continue;
                    }
                    Err(error) => break Err(DataPlaneError::Accept(error)),
                };
                let _ = stream.set_nodelay(true);
                let connection = Arc::new(Connection::new(Arc::clone(&shared)));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let connection = Arc::clone(&connection);
                        async move { Ok::<_, Infallible>(connection.handle(request).await) }
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "downstream connection ended with an error");
                    }
                });
            }
        }
    };
    if let Some(task) = history_task {
        task.abort();
    }
    result
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// One downstream connection: its generator and, for the sticky fault, its one draw.
struct Connection {
    shared: Arc<Shared>,
    draws: Mutex<SmallRng>,
    sticky: u64,
}

impl Connection {
    fn new(shared: Arc<Shared>) -> Self {
        let index = shared.connections.fetch_add(1, Ordering::Relaxed);
        let mut draws = match shared.options.seed {
            Some(seed) => SmallRng::seed_from_u64(seed.wrapping_add(index)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        let sticky = draws.next_u64();
        Self {
            shared,
            draws: Mutex::new(draws),
            sticky,
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let Some(current) = self.shared.state.snapshot() else {
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded");
        };
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let view = RequestView {
            authority: &authority,
            path: parts.uri.path(),
            query: parts.uri.query(),
            method: &parts.method,
            headers: &parts.headers,
        };
        let snapshot = self.served_snapshot(current, &view);
        let RouteDecision::Matched { entry, .. } = snapshot.table.route(&view) else {
            return empty_reply(StatusCode::NOT_FOUND);
        };
        let forward = match &entry.action {
            RouteAction::Respond { status, body } => {
                let mut response = Response::new(Either::Right(Full::new(body.clone())));
                *response.status_mut() = *status;
                return response;
            }
            RouteAction::Forward(forward) => forward,
        };
        let mutation = self.shared.options.mutation;
        let path_and_query = match mutation.rewrite(
            &forward.rewrite,
            &entry.matcher.path,
            parts.uri.path(),
            parts.uri.query(),
        ) {
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
        let index = {
            let mut draws = lock(&self.draws);
            mutation.pick(&forward.destinations, &mut *draws, self.sticky)
        };
        let Some(endpoint) = forward
            .destinations
            .iter()
            .nth(index)
            .and_then(|(cluster, _)| cluster.next_endpoint())
        else {
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = endpoint.to_string().parse().ok();
        uri.path_and_query = Some(path_and_query);
        let Ok(uri) = Uri::from_parts(uri) else {
            return empty_reply(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        if !headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(&authority)
        {
            headers.insert(header::HOST, host);
        }
        forward.request_headers.apply(&mut headers);
        let mut upstream = Request::new(body);
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = headers;
        let sent = self.shared.client.request(upstream);
        let outcome = match forward.timeout {
            Some(timeout) => match tokio::time::timeout(timeout, sent).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
                }
            },
            None => sent.await,
        };
        match outcome {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                forward.response_headers.apply(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(error) => {
                tracing::debug!(%error, "upstream request failed");
                local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers",
                )
            }
        }
    }

    /// The configuration to route this request with: the live one, except under
    /// [`Mutation::StaleConfig`], where it is the one that was live `stale_for` ago or, when that
    /// one has no route for the request, the oldest configuration since then that has one.
    fn served_snapshot(&self, current: Arc<Snapshot>, view: &RequestView<'_>) -> Arc<Snapshot> {
        if self.shared.options.mutation != Mutation::StaleConfig {
            return current;
        }
        let now = Instant::now();
        let lagging = {
            let mut history = lock(&self.shared.history);
            history.record(Arc::clone(&current), now);
            history.lagging(now, self.shared.options.stale_for)
        };
        lagging
            .into_iter()
            .find(|snapshot| matches!(snapshot.table.route(view), RouteDecision::Matched { .. }))
            .unwrap_or(current)
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn local_reply(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn empty_reply(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use gateway_proxy::table::{Fallback, RouteTable};
    use gateway_proxy::{ProxyOptions, Translation};

    use super::*;

    fn snapshot_of(state: &ProxyState) -> Arc<Snapshot> {
        state.snapshot().expect("installed")
    }

    #[test]
    fn the_stale_history_serves_each_snapshot_only_after_the_delay() {
        let state = ProxyState::new(ProxyOptions::default());
        let install = || {
            state.install(
                Translation {
                    table: RouteTable::empty(Fallback::NotFound),
                    statuses: Vec::new(),
                },
                Vec::new(),
            )
        };
        let stale_for = Duration::from_secs(2);
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        let mut history = History::default();
        let generations = |snapshots: Vec<Arc<Snapshot>>| -> Vec<u64> {
            snapshots.iter().map(|s| s.generation).collect()
        };
        install();
        history.record(snapshot_of(&state), at(0));
        // The first configuration is served at once.
        assert_eq!(generations(history.lagging(at(0), stale_for)), vec![1]);

        install();
        history.record(snapshot_of(&state), at(10));
        install();
        history.record(snapshot_of(&state), at(500));
        assert_eq!(
            generations(history.lagging(at(2009), stale_for)),
            vec![1, 2, 3]
        );
        assert_eq!(
            generations(history.lagging(at(2010), stale_for)),
            vec![2, 3]
        );
        assert_eq!(generations(history.lagging(at(2500), stale_for)), vec![3]);
        // Recording the same generation twice changes nothing.
        history.record(snapshot_of(&state), at(2501));
        assert_eq!(generations(history.lagging(at(2501), stale_for)), vec![3]);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}

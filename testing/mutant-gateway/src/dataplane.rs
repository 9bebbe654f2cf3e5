//! A minimal ingress data plane composed of gateway-proxy's own pieces, with the fault built in.
//!
//! gateway-proxy draws every pick from a per-connection generator inside its request path and
//! swaps configurations in atomically; neither is reachable from outside, and a faulty gateway
//! must not add fault hooks to the real one. So this data plane routes with the live
//! [`Snapshot`]'s [`RouteTable::route`], rewrites with [`PathRewrite::apply`] (through
//! [`Mutation::rewrite`]) and picks with [`Mutation::pick`] over [`WeightedClusters`]: that is
//! where the faults are. Everything else is gateway-proxy's request path, step by step from
//! [`gateway_proxy::forward`] (authority, upstream path and headers, one try over the pooled
//! client, the reply or Envoy's local reply) and the snapshot's round robin
//! ([`Snapshot::next_endpoint`]). Deliberately left out, because no mutant scenario needs them:
//! retries, `x-request-id`, metrics and the sidecar's passthrough fallback. Timeouts, header
//! edits, host rewrites, redirects and unresolved destinations (500) are gateway-proxy's own
//! pieces too, so a Gateway API scenario sees the same answers as from gateway-proxy.
//!
//! [`RouteTable::route`]: routing::table::RouteTable::route
//! [`PathRewrite::apply`]: routing::table::PathRewrite::apply
//! [`WeightedClusters`]: routing::table::WeightedClusters

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_proxy::forward::{
    BODY_NO_HEALTHY_UPSTREAM, ProxyBody, Upstream, direct_reply, downstream_reply, empty_reply,
    local_reply, redirect_reply, request_authority, rewrite_host, stamp_generation, streamed,
    unresolved_reply, upstream_headers, upstream_path, upstream_request,
};
use gateway_proxy::{ProxyOptions, ProxyState, Snapshot};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use routing::table::{RequestView, RouteAction, RouteDecision};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::Mutation;
use crate::mutation::{HASH_HEADER, PickContext, RELOAD_DROP_WINDOW, switches_weights};

/// Envoy's answer when the upstream connection is reset before the response headers: what
/// [`Mutation::ReloadDrop`] answers in its window.
const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// How often the stale-config history (and the reload-drop watch) looks for a new snapshot.
const HISTORY_POLL: Duration = Duration::from_millis(5);

/// What the data plane needs besides the proxy state.
#[derive(Debug, Clone, Copy)]
pub struct DataPlaneOptions {
    /// The fault.
    pub mutation: Mutation,
    /// Seeds connection `i`'s generator with `seed + i`, as gateway-proxy does; `None` from entropy.
    pub seed: Option<u64>,
    /// How long [`Mutation::StaleConfig`] serves the previous configuration after a change.
    pub stale_for: Duration,
    /// How often [`Mutation::PartiallySticky`] repeats the connection's previous pick.
    pub repeat: f64,
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

/// The last snapshot seen and, after a weight switch, until when [`Mutation::ReloadDrop`] drops.
#[derive(Debug, Default)]
struct Switches {
    last: Option<Arc<Snapshot>>,
    drop_until: Option<Instant>,
}

impl Switches {
    fn record(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        if let Some(last) = &self.last
            && last.generation != snapshot.generation
            && switches_weights(&last.table, &snapshot.table)
        {
            self.drop_until = Some(now + RELOAD_DROP_WINDOW);
        }
        self.last = Some(snapshot);
    }
}

#[derive(Debug)]
struct Shared {
    state: ProxyState,
    options: DataPlaneOptions,
    upstream: Upstream,
    connections: AtomicU64,
    history: Mutex<History>,
    switches: Mutex<Switches>,
    /// [`Mutation::SmoothWrr`]'s scheduler per route (snapshot generation, route address).
    schedulers: Mutex<HashMap<RouteId, Vec<i64>>>,
}

/// A route of one configuration: its snapshot's generation and the address of its destinations.
type RouteId = (u64, usize);

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
    let shared = Arc::new(Shared {
        state,
        options,
        upstream: Upstream::new(&ProxyOptions::default()),
        connections: AtomicU64::new(0),
        history: Mutex::new(History::default()),
        switches: Mutex::new(Switches::default()),
        schedulers: Mutex::new(HashMap::new()),
    });
    let watched = matches!(
        options.mutation,
        Mutation::StaleConfig | Mutation::ReloadDrop
    );
    let history_task = watched.then(|| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(HISTORY_POLL);
            loop {
                poll.tick().await;
                if let Some(snapshot) = shared.state.snapshot() {
                    let now = Instant::now();
                    match shared.options.mutation {
                        Mutation::ReloadDrop => lock(&shared.switches).record(snapshot, now),
                        _ => lock(&shared.history).record(snapshot, now),
                    }
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

/// One downstream connection: its generator, its first draw (the sticky faults') and its previous
/// pick.
struct Connection {
    shared: Arc<Shared>,
    draws: Mutex<SmallRng>,
    sticky: u64,
    previous: Mutex<Option<(RouteId, usize)>>,
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
            previous: Mutex::new(None),
        }
    }

    /// Answers with the snapshot it routed with, and says which one (as gateway-proxy does).
    async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let Some(current) = self.shared.state.snapshot() else {
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded");
        };
        if self.shared.options.mutation == Mutation::ReloadDrop {
            let now = Instant::now();
            let mut switches = lock(&self.shared.switches);
            switches.record(Arc::clone(&current), now);
            if switches.drop_until.is_some_and(|until| now < until) {
                drop(switches);
                let mut dropped = local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_RESET);
                stamp_generation(&mut dropped, current.generation);
                return dropped;
            }
        }
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
        let snapshot = self.served_snapshot(current, &view);
        let mut response = self.answer(&snapshot, parts, body, &authority).await;
        stamp_generation(&mut response, snapshot.generation);
        response
    }

    /// Routes, rewrites, picks (with the fault) and forwards one request with `snapshot`.
    async fn answer(
        &self,
        snapshot: &Snapshot,
        parts: http::request::Parts,
        body: Incoming,
        authority: &str,
    ) -> Response<ProxyBody> {
        let view = RequestView {
            authority,
            path: parts.uri.path(),
            query: parts.uri.query(),
            method: &parts.method,
            headers: &parts.headers,
        };
        let RouteDecision::Matched {
            virtual_host,
            route,
            entry,
        } = snapshot.table.route(&view)
        else {
            return empty_reply(StatusCode::NOT_FOUND);
        };
        let forward = match &entry.action {
            RouteAction::Respond { status, body } => return direct_reply(*status, body.clone()),
            RouteAction::Redirect(redirect) => {
                return redirect_reply(
                    redirect,
                    &entry.matcher.path,
                    &parts.uri,
                    &parts.headers,
                    authority,
                );
            }
            RouteAction::Forward(forward) => forward,
        };
        let mutation = self.shared.options.mutation;
        let rewritten = mutation.rewrite(
            &forward.rewrite,
            &entry.matcher.path,
            parts.uri.path(),
            parts.uri.query(),
        );
        let path_and_query = match upstream_path(&parts.uri, rewritten) {
            Ok(path_and_query) => path_and_query,
            Err(invalid) => return invalid.reply(),
        };
        let destination = {
            let route: RouteId = (
                snapshot.generation,
                std::ptr::from_ref(&forward.destinations) as usize,
            );
            let mut previous = lock(&self.previous);
            let mut schedulers = lock(&self.shared.schedulers);
            let mut draws = lock(&self.draws);
            let context = PickContext {
                sticky: self.sticky,
                key: parts.headers.get(HASH_HEADER).map(|value| value.as_bytes()),
                previous: previous
                    .filter(|(id, _)| *id == route)
                    .map(|(_, pick)| pick),
                repeat: self.shared.options.repeat,
                scheduler: schedulers.entry(route).or_default(),
            };
            let pick = mutation.pick_with(&forward.destinations, &mut *draws, context);
            *previous = Some((route, pick));
            pick
        };
        let unresolved = forward
            .destinations
            .get(destination)
            .is_some_and(|(cluster, _)| cluster.is_unresolved());
        if unresolved {
            return unresolved_reply();
        }
        let Some(endpoint) = snapshot.next_endpoint(virtual_host, route, destination) else {
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_NO_HEALTHY_UPSTREAM);
        };
        let mut headers = parts.headers;
        upstream_headers(&mut headers, authority);
        forward.request_headers.apply(&mut headers);
        rewrite_host(&mut headers, forward.host_rewrite.as_deref());
        let Ok(upstream) = upstream_request(
            parts.method,
            endpoint.clone(),
            path_and_query,
            headers,
            streamed(body, None),
        ) else {
            return empty_reply(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let deadline = forward.timeout.map(|timeout| Instant::now() + timeout);
        let outcome = self.shared.upstream.send(upstream, deadline).await;
        downstream_reply(outcome, Some(&forward.response_headers), deadline)
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

#[cfg(test)]
mod tests {
    use routing::Translation;
    use routing::table::{Fallback, RouteTable};

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
}

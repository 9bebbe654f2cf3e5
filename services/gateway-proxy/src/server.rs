//! Listeners: the data plane and the admin interface, with graceful shutdown.
//!
//! Each listener has its own accept loop ([`accept_loop`]) so that trouble on one never stops the
//! other:
//! - a connection limit per listener ([`ConnectionLimits::max_connections`],
//!   [`ConnectionLimits::max_admin_connections`]): a connection over it is accepted and closed at
//!   once (shed), as Envoy's `global_downstream_max_connections` does;
//! - out of file descriptors (EMFILE, ENFILE), the loop backs off (5 ms doubling to 1 s) instead
//!   of retrying at once, and sheds what waits in the backlog with a descriptor it keeps in
//!   reserve; the admin listener serves (rather than sheds) one connection with its reserve, so
//!   `/ready` keeps answering. One warning per episode;
//! - every connection is watched ([`Activity`]): until its first request it has
//!   [`ConnectionLimits::request_headers_timeout`] (nothing sent, part of the HTTP/2 preface, part
//!   of the HTTP/1 headers), and whenever no request is in flight (HTTP/1 keep-alive, HTTP/2 with
//!   no stream) [`ConnectionLimits::idle_timeout`]; then it is closed;
//! - a response body that stops for [`ConnectionLimits::body_idle_timeout`] is cut
//!   ([`IdleTimeoutBody`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::ProxyState;
use crate::admin::AdminService;
use crate::proxy::ConnectionService;

/// How long connections get to finish their requests after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait after an accept failed for lack of file descriptors; it doubles up to
/// [`MAX_BACKOFF`] while the episode lasts.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Descriptors the default connection limit leaves for everything but downstream connections
/// (the runtime, the config watch, the admin listener, logs).
const RESERVED_DESCRIPTORS: u64 = 64;
/// Bounds of the default connection limit.
const MIN_DEFAULT_CONNECTIONS: u64 = 16;
const MAX_DEFAULT_CONNECTIONS: u64 = 65_536;

/// Limits and timeouts of downstream connections (both listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open data-plane connections at most; more are accepted and closed at once. Default:
    /// [`default_max_connections`].
    pub max_connections: usize,
    /// Open admin connections at most (default 64).
    pub max_admin_connections: usize,
    /// Time a connection has to complete its first request's headers, whatever it sends
    /// meanwhile (nothing, part of the HTTP/2 preface, part of an HTTP/1 request); also HTTP/1's
    /// header read timeout for later requests, which hyper starts as soon as it waits for the
    /// next request, so it also bounds an idle HTTP/1 keep-alive connection. Default 30 s (the
    /// header timeout gateway-proxy always had).
    pub request_headers_timeout: Duration,
    /// Time a connection may stay open with no request in flight (HTTP/2 with no stream; HTTP/1
    /// keep-alive, though the request headers timeout ends that first when it is shorter).
    /// Default 300 s; Envoy's `idle_timeout` default is 1 h.
    pub idle_timeout: Duration,
    /// Time a body may go without a byte while it is being relayed (the upstream's response
    /// body to the client, the client's request body to the upstream). Default 300 s, Envoy's
    /// `stream_idle_timeout`.
    pub body_idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_admin_connections: 64,
            request_headers_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            body_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// The default data-plane connection limit: half the descriptors the process may open
/// (`RLIMIT_NOFILE`, soft) after a reserve of 64, since each proxied connection may need an
/// upstream one too; at least 16 and at most 65,536.
pub fn default_max_connections() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    let limit = (soft.saturating_sub(RESERVED_DESCRIPTORS) / 2)
        .clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Errors that stop [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting on a listener failed.
    #[error("accepting a connection on {listener} failed: {source}")]
    Accept {
        /// `"proxy"` or `"admin"`.
        listener: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

type Builder = auto::Builder<TokioExecutor>;

/// Serves the data plane on `listener` and the admin interface on `admin` until `shutdown`
/// resolves, then stops accepting and lets open connections finish (up to 5 s).
pub async fn serve(
    listener: TcpListener,
    admin: TcpListener,
    state: ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let limits = state.shared.options.limits;
    let own: Vec<_> = [listener.local_addr(), admin.local_addr()]
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    state.set_own_addresses(own);
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder(&limits));
    let proxy_port = Port::new("proxy", listener, limits.max_connections, false);
    let admin_port = Port::new("admin", admin, limits.max_admin_connections, true);
    let proxy_loop = accept_loop(proxy_port, |stream, slot| {
        let _ = stream.set_nodelay(true);
        let index = state.shared.connections.fetch_add(1, Ordering::Relaxed);
        let service = ConnectionService::new(Arc::clone(&state.shared), index);
        spawn_connection(&builder, &graceful, &limits, stream, service, slot);
    });
    let admin_loop = accept_loop(admin_port, |stream, slot| {
        let service = AdminService::new(state.clone());
        spawn_connection(&builder, &graceful, &limits, stream, service, slot);
    });
    tokio::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        result = proxy_loop => result,
        result = admin_loop => result,
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    result
}

/// Serves only the admin interface on `admin` (with the admin connection limit and the same
/// timeouts) until `shutdown` resolves.
pub(crate) async fn serve_admin_only(
    admin: TcpListener,
    state: ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_admin_endpoints(admin, state, false, shutdown).await
}

/// Serves only `GET /ready` on `listener` until `shutdown` resolves: a readiness port that can
/// be open to the node (a kubelet's probe) while the admin API stays on loopback.
pub async fn serve_ready(
    listener: TcpListener,
    state: ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_admin_endpoints(listener, state, true, shutdown).await
}

async fn serve_admin_endpoints(
    admin: TcpListener,
    state: ProxyState,
    ready_only: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let limits = state.shared.options.limits;
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder(&limits));
    let name = if ready_only { "ready" } else { "admin" };
    let admin_port = Port::new(name, admin, limits.max_admin_connections, true);
    let admin_loop = accept_loop(admin_port, |stream, slot| {
        let service = AdminService::new(state.clone()).ready_only(ready_only);
        spawn_connection(&builder, &graceful, &limits, stream, service, slot);
    });
    tokio::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        result = admin_loop => result,
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    result
}

/// The HTTP/1 and HTTP/2 server settings of every downstream connection.
fn connection_builder(limits: &ConnectionLimits) -> Builder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(limits.request_headers_timeout)
        .timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one accepted connection on its own task, watched by its [`Activity`] and by `graceful`.
fn spawn_connection<S, B>(
    builder: &Arc<Builder>,
    graceful: &GracefulShutdown,
    limits: &ConnectionLimits,
    stream: TcpStream,
    service: S,
    slot: Slot,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let service = Tracked {
        inner: service,
        activity: Arc::clone(&activity),
        body_idle_timeout: limits.body_idle_timeout,
    };
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let connection = graceful.watch(connection);
    let limits = *limits;
    tokio::spawn(async move {
        tokio::select! {
            ended = connection => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "downstream connection ended with an error");
                }
            }
            reason = activity.expired(&limits) => {
                tracing::debug!(reason, "closing a downstream connection");
            }
        }
        drop(slot);
    });
}

/// One listener's accept state.
struct Port {
    name: &'static str,
    listener: TcpListener,
    max: usize,
    open: Arc<AtomicUsize>,
    /// Serve (admin) rather than shed the connection accepted with the reserve descriptor.
    serve_on_exhaustion: bool,
    /// A descriptor held back for when the process has none left: closing it lets one pending
    /// connection be accepted.
    reserve: Option<std::fs::File>,
    /// The descriptor-exhaustion episode in progress: when it began and connections shed since.
    exhausted: Option<(Instant, u64)>,
    /// The connection-limit episode in progress.
    full: Option<(Instant, u64)>,
}

impl Port {
    fn new(
        name: &'static str,
        listener: TcpListener,
        max: usize,
        serve_on_exhaustion: bool,
    ) -> Self {
        Self {
            name,
            listener,
            max,
            open: Arc::new(AtomicUsize::new(0)),
            serve_on_exhaustion,
            reserve: open_reserve(),
            exhausted: None,
            full: None,
        }
    }

    fn slot(&mut self) -> Option<Slot> {
        let slot = Slot::take(&self.open, self.max);
        match (&slot, &mut self.full) {
            (Some(_), Some((started, shed))) => {
                tracing::debug!(
                    listener = self.name,
                    shed = *shed,
                    lasted_ms = started.elapsed().as_millis() as u64,
                    "below the connection limit again"
                );
                self.full = None;
            }
            (Some(_), None) => {}
            (None, Some((_, shed))) => *shed += 1,
            (None, None) => {
                tracing::warn!(
                    listener = self.name,
                    limit = self.max,
                    "connection limit reached; new connections are closed until some end"
                );
                self.full = Some((Instant::now(), 1));
            }
        }
        slot
    }

    fn exhaustion_began(&mut self, error: &std::io::Error) {
        match &mut self.exhausted {
            Some(_) => {}
            None => {
                tracing::warn!(
                    listener = self.name,
                    %error,
                    open_connections = self.open.load(Ordering::Relaxed),
                    "out of file descriptors; backing off and shedding new connections until some are freed"
                );
                self.exhausted = Some((Instant::now(), 0));
            }
        }
    }

    fn exhaustion_ended(&mut self) {
        if let Some((started, shed)) = self.exhausted.take() {
            tracing::debug!(
                listener = self.name,
                shed,
                lasted_ms = started.elapsed().as_millis() as u64,
                "file descriptors available again"
            );
        }
    }

    /// With the reserve descriptor freed, accepts what is pending: the admin listener serves
    /// one connection, the data plane closes every pending one.
    fn use_reserve(&mut self, serve: &mut impl FnMut(TcpStream, Slot)) {
        if self.reserve.is_none() {
            self.reserve = open_reserve();
        }
        if self.reserve.take().is_none() {
            return;
        }
        loop {
            match try_accept(&self.listener) {
                Some(Ok(stream)) if self.serve_on_exhaustion => {
                    if let Some(slot) = self.slot() {
                        serve(stream, slot);
                    }
                    // The served connection now holds the reserve; it comes back when it ends.
                    return;
                }
                Some(Ok(stream)) => {
                    drop(stream);
                    if let Some((_, shed)) = &mut self.exhausted {
                        *shed += 1;
                    }
                }
                _ => break,
            }
        }
        self.reserve = open_reserve();
    }
}

/// Accepts on `port` until its listener fails for good, handing each connection within the
/// limit to `serve`.
async fn accept_loop(
    mut port: Port,
    mut serve: impl FnMut(TcpStream, Slot),
) -> Result<(), ServeError> {
    let mut backoff = MIN_BACKOFF;
    loop {
        match port.listener.accept().await {
            Ok((stream, _)) => {
                port.exhaustion_ended();
                backoff = MIN_BACKOFF;
                match port.slot() {
                    Some(slot) => serve(stream, slot),
                    None => drop(stream),
                }
            }
            Err(error) if is_descriptor_exhaustion(&error) => {
                port.exhaustion_began(&error);
                port.use_reserve(&mut serve);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) if is_transient(&error) => {
                tracing::debug!(listener = port.name, %error, "accept failed; continuing");
            }
            Err(source) => {
                return Err(ServeError::Accept {
                    listener: port.name,
                    source,
                });
            }
        }
    }
}

/// Accepts a pending connection without waiting; `None` when none is pending.
fn try_accept(listener: &TcpListener) -> Option<std::io::Result<TcpStream>> {
    let mut context = Context::from_waker(Waker::noop());
    match listener.poll_accept(&mut context) {
        Poll::Ready(accepted) => Some(accepted.map(|(stream, _)| stream)),
        Poll::Pending => None,
    }
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Accept errors caused by one connection, not by the listener.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// EMFILE (the process) or ENFILE (the system) is out of file descriptors, or the kernel of
/// socket buffers (ENOBUFS, ENOMEM).
fn is_descriptor_exhaustion(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|code| {
        [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
            .iter()
            .any(|errno| *errno as i32 == code)
    })
}

/// A place among a listener's open connections, given back when dropped.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection is doing, for its timeouts: requests in flight, and since when it has had
/// none.
pub(crate) struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started` at which the last request in flight ended.
    idle_since_ms: AtomicU64,
    went_idle: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            went_idle: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Resolves when the connection has been in a state too long, naming the state.
    async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                self.went_idle.notified().await;
                continue;
            }
            let (deadline, state) = if self.requests.load(Ordering::Relaxed) == 0 {
                (
                    self.started + limits.request_headers_timeout,
                    "no complete request within the request headers timeout",
                )
            } else {
                let idle_since = self.idle_since_ms.load(Ordering::Acquire);
                (
                    self.started + Duration::from_millis(idle_since) + limits.idle_timeout,
                    "idle timeout",
                )
            };
            if deadline <= Instant::now() {
                return state;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.went_idle.notified() => {}
            }
        }
    }
}

/// One request in flight on a connection, until its response body is done or dropped.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let since = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(since, Ordering::Release);
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.went_idle.notify_one();
        }
    }
}

/// A connection's service, counting its requests in flight and bounding body stalls.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    body_idle_timeout: Duration,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body + Unpin,
{
    type Response = Response<IdleTimeoutBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let idle = self.body_idle_timeout;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response
                .map(|body| IdleTimeoutBody::new(body, Some(idle)).with_in_flight(in_flight)))
        })
    }
}

/// A relayed body stalled longer than the body idle timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("body idle timeout: no data for {0:?}")]
pub struct BodyIdleTimeout(pub Duration);

/// A relayed response body had not ended when the route's timeout ran out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("route timeout: the response body had not ended")]
pub struct RouteTimeoutInBody;

/// A body that fails with [`BodyIdleTimeout`] when its source gives nothing for `idle` while it
/// is being read. Only waiting on the source counts: the clock starts when a frame is asked for,
/// so a slow reader never trips it.
pub struct IdleTimeoutBody<B> {
    inner: B,
    idle: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the whole body must have arrived (the route's timeout, as Envoy counts it).
    deadline: Option<Pin<Box<Sleep>>>,
    _in_flight: Option<InFlight>,
    failed: Option<Arc<AtomicBool>>,
}

impl<B> IdleTimeoutBody<B> {
    /// `inner`, failing after `idle` without a frame; `None`: never.
    pub fn new(inner: B, idle: Option<Duration>) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            deadline: None,
            _in_flight: None,
            failed: None,
        }
    }

    /// Also fails with [`RouteTimeoutInBody`] once `deadline` passes before the body ended: a
    /// route's timeout covers the whole response, as Envoy's route timeout does, not only
    /// its headers. `None`: no deadline.
    pub fn until(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        self
    }

    fn with_in_flight(mut self, in_flight: InFlight) -> Self {
        self._in_flight = Some(in_flight);
        self
    }

    /// Sets `flag` when the body fails (its source's error or the idle timeout), so whoever
    /// relays it can tell its sender's fault from the receiver's.
    pub fn flag_failure(mut self, flag: Arc<AtomicBool>) -> Self {
        self.failed = Some(flag);
        self
    }

    fn fail(&self) {
        if let Some(flag) = &self.failed {
            flag.store(true, Ordering::Release);
        }
    }
}

impl<B> std::fmt::Debug for IdleTimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleTimeoutBody")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                if matches!(frame, Some(Err(_))) {
                    this.fail();
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let past_deadline = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if past_deadline {
                    tracing::debug!("route timeout before the body ended; cutting the stream");
                    this.fail();
                    return Poll::Ready(Some(Err(Box::new(RouteTimeoutInBody))));
                }
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::debug!(?idle, "body idle timeout; cutting the stream");
                        this.fail();
                        Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(idle)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_is_told_apart_from_one_bad_connection() {
        let emfile = std::io::Error::from_raw_os_error(nix::errno::Errno::EMFILE as i32);
        let enfile = std::io::Error::from_raw_os_error(nix::errno::Errno::ENFILE as i32);
        assert!(is_descriptor_exhaustion(&emfile) && !is_transient(&emfile));
        assert!(is_descriptor_exhaustion(&enfile));
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert!(is_transient(&aborted) && !is_descriptor_exhaustion(&aborted));
    }

    #[test]
    fn the_default_connection_limit_leaves_descriptors_for_upstreams() {
        let limit = default_max_connections();
        assert!((16..=65_536).contains(&limit), "{limit}");
    }

    #[test]
    fn slots_are_limited_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let first = Slot::take(&open, 2).expect("first");
        let _second = Slot::take(&open, 2).expect("second");
        assert!(Slot::take(&open, 2).is_none());
        drop(first);
        assert!(Slot::take(&open, 2).is_some());
    }
}

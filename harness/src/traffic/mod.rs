//! The traffic generator: HTTP/1.1 workers, each owning one keep-alive [`Connection`].
//!
//! Two ways to drive them share that machinery:
//! - [`drive`], for scenario steps: closed loop, every reply handed to an observer that judges it
//!   and may stop the run or ask for fresh connections. Described below.
//! - [`window`], for `cargo xtask bench`: a warm-up, then a measured window, either closed loop
//!   (throughput) or open loop on a fixed schedule (latency corrected for coordinated omission).
//!
//! A split check needs independent, correctly counted samples more than it needs load, but the
//! generator must never be the bottleneck either (`cargo xtask bench-traffic` measures that). The
//! design follows from both:
//! - `concurrency` workers, each with its *own* connection (hyper's HTTP/1.1 client connection over
//!   a tokio stream, through hyper-util's `TokioIo`), kept for as long as the server keeps it, so
//!   a gateway that picks a destination per connection rather than per request shows in the
//!   records (and fails the split step's connection-independence check, whose power grows with
//!   the replies per connection) instead of being hidden by a shared pool. A connection the
//!   server closes is replaced and the new one gets a new index. The observer can ask for fresh
//!   connections ([`Flow::Reconnect`]): the traffic step does when every connection so far has
//!   seen the same destination, since such connections cannot reveal a per-connection pick.
//! - Every run is bounded twice: a hard cap on the number of requests and a deadline. The caller's
//!   observer can stop it earlier (a sequential check that reached its verdict).
//! - On the local backend only loopback addresses may be targeted: the URL's host must resolve to
//!   loopback addresses only, or the run refuses to start.
//!
//! - [`drive_with`] takes [`DriveOptions`] for what a split declared about the gateway's selection
//!   unit: [`ConnectionReuse::Renew`] opens a fresh connection for every request (but for a few
//!   long-lived ones), so that a gateway picking per connection is sampled once per connection;
//!   [`RequestKey`] gives every request a fresh random key (header or cookie), but for a few keys
//!   sent several times, so that a gateway picking by a hash key is sampled once per key.
//!
//! Replies are handed to the observer one at a time, on the caller's task, in completion order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

mod connection;
pub mod window;

pub use connection::{Connection, RequestTemplate, Response, SendError};

/// What to send: one request, repeated.
#[derive(Debug, Clone)]
pub struct TrafficRequest {
    /// The gateway's base URL (`glooctl proxy url`); only scheme, host and port are used.
    pub base: url::Url,
    /// Path and query appended to the base, e.g. `/appmesh/color?x=1`.
    pub path_and_query: String,
    pub method: Method,
    /// Host header; default: the base URL's authority.
    pub host: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// How much to send, and the bounds no run may exceed.
#[derive(Debug, Clone, Copy)]
pub struct TrafficLimits {
    /// Requests in flight at once; each worker owns one connection.
    pub concurrency: usize,
    /// Hard cap on the number of requests sent.
    pub max_requests: u64,
    /// The run stops when this much time has passed, whatever the count.
    pub deadline: Duration,
    /// A single request taking longer than this is recorded as an error.
    pub request_timeout: Duration,
    /// Refuse targets that are not loopback addresses (the local backend's rule).
    pub loopback_only: bool,
}

impl Default for TrafficLimits {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_requests: 10_000,
            deadline: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
            loopback_only: true,
        }
    }
}

/// One completed (or failed) request, as the observer sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The order in which the request was issued, from 0.
    pub index: u64,
    /// Which worker sent it.
    pub worker: usize,
    /// The connection it went over, numbered from 0 in the order connections were opened.
    pub connection: u32,
    /// When the request was about to be written (the start of [`Reply::latency`]).
    pub sent: std::time::Instant,
    /// The response status, or `None` when the request failed at the transport level.
    pub status: Option<StatusCode>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// From just before the request was written until the whole body was read.
    pub latency: Duration,
    /// A transport error (connect, reset, timeout, oversized body).
    pub error: Option<String>,
}

impl Reply {
    /// The body as text, lossily (replies are shown verbatim in reports).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether the observer wants more replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
    /// Continue, but every worker sends its next request over a fresh connection.
    Reconnect,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// `max_requests` replies were received.
    Cap,
    /// The deadline passed first.
    Deadline,
    /// The observer asked to stop.
    Observer,
}

/// Latency percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// What a run did, for reports and the benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSummary {
    /// Requests handed to the observer.
    pub received: u64,
    /// Requests issued, including any still in flight when the run stopped.
    pub sent: u64,
    /// Replies with a transport error.
    pub transport_errors: u64,
    /// Connections opened over the run.
    pub connections: u32,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
    pub stopped_by: StopReason,
    pub latency: LatencySummary,
}

impl TrafficSummary {
    /// Replies per second over the run.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.received as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Why traffic could not be sent at all (individual request failures are [`Reply::error`]s).
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("traffic target {url}: {message}")]
    Target { url: String, message: String },
    #[error("traffic target {url}: cannot resolve: {source}")]
    Resolve {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("traffic to {url}: bad request line or header: {message}")]
    Request { url: String, message: String },
}

/// How workers use their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionReuse {
    /// One keep-alive connection per worker for as long as the server keeps it (or until the
    /// observer asks for fresh ones).
    #[default]
    KeepAlive,
    /// Every connection carries one request, except the first `long_lived` connections opened,
    /// which carry `requests_each` requests each.
    Renew { long_lived: u32, requests_each: u32 },
}

impl ConnectionReuse {
    /// How many requests connection `index` carries; `None`: as many as it can.
    pub fn requests_on(self, index: u32) -> Option<u32> {
        match self {
            ConnectionReuse::KeepAlive => None,
            ConnectionReuse::Renew {
                long_lived,
                requests_each,
            } => Some(if index < long_lived {
                requests_each.max(1)
            } else {
                1
            }),
        }
    }
}

/// Where a request carries its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCarrier {
    Header(HeaderName),
    /// `Cookie: NAME=VALUE`.
    Cookie(String),
}

/// A random key per request: the first `repeated_keys · requests_each` requests share
/// `repeated_keys` keys in groups of `requests_each` (by request index), every later request has a
/// key of its own. Values are 16 hex digits derived from `seed` and the key's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub carrier: KeyCarrier,
    pub seed: u64,
    pub repeated_keys: u64,
    pub requests_each: u64,
}

impl RequestKey {
    /// The number of the key request `index` carries.
    pub fn unit(&self, index: u64) -> u64 {
        let each = self.requests_each.max(1);
        let shared = self.repeated_keys * each;
        if index < shared {
            index / each
        } else {
            index - shared + self.repeated_keys
        }
    }

    /// The value of key number `unit`.
    pub fn value(&self, unit: u64) -> String {
        format!("{:016x}", splitmix64(self.seed ^ splitmix64(unit)))
    }

    fn header(&self, index: u64) -> Option<(HeaderName, HeaderValue)> {
        let value = self.value(self.unit(index));
        match &self.carrier {
            KeyCarrier::Header(name) => Some((name.clone(), HeaderValue::from_str(&value).ok()?)),
            KeyCarrier::Cookie(name) => Some((
                http::header::COOKIE,
                HeaderValue::from_str(&format!("{name}={value}")).ok()?,
            )),
        }
    }
}

/// SplitMix64's finaliser: a bijection of `u64` that scatters consecutive numbers.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What [`drive_with`] does beyond [`drive`].
#[derive(Debug, Clone, Default)]
pub struct DriveOptions {
    pub reuse: ConnectionReuse,
    pub key: Option<RequestKey>,
}

/// Sends `request` until the cap, the deadline or the observer stops it; calls `observe` for every
/// reply (in completion order) and returns a summary.
pub async fn drive(
    request: &TrafficRequest,
    limits: &TrafficLimits,
    observe: impl FnMut(Reply) -> Flow,
) -> Result<TrafficSummary, TrafficError> {
    drive_with(request, limits, &DriveOptions::default(), observe).await
}

/// [`drive`] with the connection reuse and per-request keys of `options`.
pub async fn drive_with(
    request: &TrafficRequest,
    limits: &TrafficLimits,
    options: &DriveOptions,
    mut observe: impl FnMut(Reply) -> Flow,
) -> Result<TrafficSummary, TrafficError> {
    let started = Instant::now();
    let address = resolve(&request.base, limits.loopback_only).await?;
    let template = Arc::new(RequestTemplate::new(request)?);
    let shared = Arc::new(Shared {
        options: options.clone(),
        issued: AtomicU64::new(0),
        connections: AtomicU32::new(0),
        epoch: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        max_requests: limits.max_requests,
        deadline: started + limits.deadline,
        request_timeout: limits.request_timeout,
    });
    let concurrency = limits.concurrency.max(1);
    let (sender, mut receiver) = mpsc::channel::<Reply>(concurrency * 8);
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        workers.spawn(run_worker(
            worker,
            address,
            template.clone(),
            shared.clone(),
            sender.clone(),
        ));
    }
    drop(sender);

    let mut histogram = new_histogram();
    let mut received = 0u64;
    let mut transport_errors = 0u64;
    let stopped_by = loop {
        if received >= limits.max_requests {
            break StopReason::Cap;
        }
        let reply = match tokio::time::timeout_at(shared.deadline, receiver.recv()).await {
            Ok(Some(reply)) => reply,
            // Every worker ended: they only do so at the cap or the deadline.
            Ok(None) => {
                break if received >= limits.max_requests {
                    StopReason::Cap
                } else {
                    StopReason::Deadline
                };
            }
            Err(_) => break StopReason::Deadline,
        };
        received += 1;
        if reply.error.is_some() {
            transport_errors += 1;
        }
        record_latency(&mut histogram, reply.latency);
        match observe(reply) {
            Flow::Continue => {}
            Flow::Stop => break StopReason::Observer,
            Flow::Reconnect => {
                shared.epoch.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    shared.stop.store(true, Ordering::Relaxed);
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    Ok(TrafficSummary {
        received,
        sent: shared
            .issued
            .load(Ordering::Relaxed)
            .min(limits.max_requests),
        transport_errors,
        connections: shared.connections.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        stopped_by,
        latency: summarize(&histogram),
    })
}

/// A histogram for latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("static histogram bounds are valid")
}

/// Adds one latency, saturating at the histogram's upper bound.
pub fn record_latency(histogram: &mut hdrhistogram::Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// Percentiles of a latency histogram.
pub fn summarize(histogram: &hdrhistogram::Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        p50_us: histogram.value_at_quantile(0.50),
        p90_us: histogram.value_at_quantile(0.90),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
        mean_us: histogram.mean(),
    }
}

struct Shared {
    options: DriveOptions,
    issued: AtomicU64,
    connections: AtomicU32,
    /// Bumped by [`Flow::Reconnect`]: connections opened in an earlier epoch are dropped before
    /// their next request.
    epoch: AtomicU64,
    stop: AtomicBool,
    max_requests: u64,
    deadline: Instant,
    request_timeout: Duration,
}

impl Shared {
    /// Claims the index of the next request, or `None` when the run is over.
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return None;
        }
        let index = self.issued.fetch_add(1, Ordering::Relaxed);
        (index < self.max_requests).then_some(index)
    }
}

/// Whether traffic to `ip` stays on this machine: a loopback address, or one the kernel
/// delivers locally (`--backend apiserver`'s pod network is routed to the loopback device).
/// Binding a socket to an address succeeds exactly when the address is local.
pub(crate) fn stays_on_this_machine(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Resolves the base URL to one socket address, enforcing the loopback rule.
pub(crate) async fn resolve(
    base: &url::Url,
    loopback_only: bool,
) -> Result<SocketAddr, TrafficError> {
    let url = base.as_str().to_owned();
    if base.scheme() != "http" {
        return Err(TrafficError::Target {
            url,
            message: format!(
                "scheme {:?} is not supported (plain http only)",
                base.scheme()
            ),
        });
    }
    let host = base.host_str().ok_or_else(|| TrafficError::Target {
        url: url.clone(),
        message: "no host".to_owned(),
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = base.port_or_known_default().unwrap_or(80);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| TrafficError::Resolve {
            url: url.clone(),
            source,
        })?
        .collect();
    if loopback_only
        && let Some(outside) = addresses
            .iter()
            .find(|address| !stays_on_this_machine(address.ip()))
    {
        return Err(TrafficError::Target {
            url,
            message: format!(
                "resolves to {}, which is not a loopback address or one routed to the loopback \
                 device; load is only sent where it stays on this machine",
                outside.ip()
            ),
        });
    }
    addresses
        .into_iter()
        .next()
        .ok_or_else(|| TrafficError::Target {
            url,
            message: "resolves to no address".to_owned(),
        })
}

/// A worker's open connection: the connection, its index, the epoch it was opened in and the
/// requests sent over it.
type Open = (Connection, u32, u64, u32);

async fn run_worker(
    worker: usize,
    address: SocketAddr,
    template: Arc<RequestTemplate>,
    shared: Arc<Shared>,
    replies: mpsc::Sender<Reply>,
) {
    let mut connection: Option<Open> = None;
    while let Some(index) = shared.claim() {
        let started = Instant::now();
        let extra = shared
            .options
            .key
            .as_ref()
            .and_then(|key| key.header(index));
        let outcome = tokio::time::timeout(
            shared.request_timeout,
            send_one(&mut connection, address, &template, extra, &shared),
        )
        .await
        .unwrap_or(Err(SendError::TimedOut(shared.request_timeout)));
        let connection_index = connection.as_ref().map_or(
            shared.connections.load(Ordering::Relaxed).saturating_sub(1),
            |(_, index, _, _)| *index,
        );
        let reply = match outcome {
            Ok(response) => Reply {
                index,
                worker,
                connection: connection_index,
                sent: started.into_std(),
                status: Some(response.status),
                headers: response.headers,
                body: response.body,
                latency: started.elapsed(),
                error: None,
            },
            Err(error) => {
                // The connection may be half-used; a fresh one keeps later replies clean.
                connection = None;
                Reply {
                    index,
                    worker,
                    connection: connection_index,
                    sent: started.into_std(),
                    status: None,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    latency: started.elapsed(),
                    error: Some(error.to_string()),
                }
            }
        };
        if replies.send(reply).await.is_err() {
            return;
        }
    }
}

/// Sends one request over the worker's connection, first replacing it when the server closed it,
/// the observer asked for fresh connections since it was opened, or it carried its share of
/// requests ([`ConnectionReuse`]).
async fn send_one(
    connection: &mut Option<Open>,
    address: SocketAddr,
    template: &RequestTemplate,
    extra: Option<(HeaderName, HeaderValue)>,
    shared: &Shared,
) -> Result<Response, SendError> {
    let epoch = shared.epoch.load(Ordering::Relaxed);
    let reuse = shared.options.reuse;
    if connection
        .as_ref()
        .is_some_and(|(open, index, opened, used)| {
            open.is_closed()
                || *opened < epoch
                || reuse
                    .requests_on(*index)
                    .is_some_and(|limit| *used >= limit)
        })
    {
        *connection = None;
    }
    let (open, _, _, used) = match connection {
        Some(open) => open,
        None => {
            let opened = Connection::open(address).await?;
            let index = shared.connections.fetch_add(1, Ordering::Relaxed);
            connection.insert((opened, index, epoch, 0))
        }
    };
    *used += 1;
    open.send_with(template, extra).await
}

mod duration_ms {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    #[tokio::test]
    async fn non_loopback_targets_are_refused_on_the_local_backend() {
        let base = url::Url::parse("http://192.0.2.1:8080").unwrap();
        let error = resolve(&base, true).await.unwrap_err().to_string();
        assert!(error.contains("not a loopback address"), "{error}");
        let base = url::Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(resolve(&base, true).await.unwrap().port(), 8080);
    }

    #[tokio::test]
    async fn https_is_refused() {
        let base = url::Url::parse("https://127.0.0.1").unwrap();
        assert!(
            resolve(&base, true)
                .await
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
    }

    /// An HTTP/1.1 server on 127.0.0.1:0 that answers `ok` and counts accepted connections.
    async fn counting_server() -> (SocketAddr, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (address, accepted)
    }

    #[tokio::test]
    async fn workers_keep_their_connection_until_the_observer_asks_for_fresh_ones() {
        let (address, accepted) = counting_server().await;
        let request = TrafficRequest {
            base: url::Url::parse(&format!("http://{address}")).unwrap(),
            path_and_query: "/".to_owned(),
            method: Method::GET,
            host: None,
            headers: Vec::new(),
        };
        let limits = TrafficLimits {
            concurrency: 2,
            max_requests: 40,
            ..TrafficLimits::default()
        };
        let kept = drive(&request, &limits, |_| Flow::Continue).await.unwrap();
        assert_eq!(kept.received, 40);
        assert_eq!(kept.connections, 2);
        assert_eq!(accepted.load(Ordering::Relaxed), 2);

        // A reconnect after the 10th and the 20th reply: the worker opens a new connection for
        // its next request each time (one worker, so that it surely sends one in between).
        let one_worker = TrafficLimits {
            concurrency: 1,
            ..limits
        };
        let mut seen_connections = std::collections::BTreeSet::new();
        let mut replies = 0;
        let rotated = drive(&request, &one_worker, |reply| {
            seen_connections.insert(reply.connection);
            replies += 1;
            if replies == 10 || replies == 20 {
                Flow::Reconnect
            } else {
                Flow::Continue
            }
        })
        .await
        .unwrap();
        assert_eq!(rotated.received, 40);
        assert_eq!(rotated.connections, 3);
        assert_eq!(seen_connections.len(), 3);
        assert_eq!(accepted.load(Ordering::Relaxed), 2 + 3);
    }

    #[tokio::test]
    async fn renewed_connections_carry_their_share_and_keys_repeat_only_in_their_groups() {
        let (address, accepted) = counting_server().await;
        let request = TrafficRequest {
            base: url::Url::parse(&format!("http://{address}")).unwrap(),
            path_and_query: "/".to_owned(),
            method: Method::GET,
            host: None,
            headers: Vec::new(),
        };
        let limits = TrafficLimits {
            concurrency: 3,
            max_requests: 30,
            ..TrafficLimits::default()
        };
        let options = DriveOptions {
            reuse: ConnectionReuse::Renew {
                long_lived: 2,
                requests_each: 5,
            },
            key: None,
        };
        let mut per_connection = std::collections::BTreeMap::<u32, u32>::new();
        let summary = drive_with(&request, &limits, &options, |reply| {
            assert!(reply.error.is_none(), "{reply:?}");
            *per_connection.entry(reply.connection).or_default() += 1;
            Flow::Continue
        })
        .await
        .unwrap();
        // Two connections with 5 requests, then 20 with one each.
        assert_eq!(summary.connections, 22);
        assert_eq!(accepted.load(Ordering::Relaxed), 22);
        assert_eq!(per_connection[&0], 5);
        assert_eq!(per_connection[&1], 5);
        assert!(
            per_connection.range(2..).all(|(_, n)| *n == 1),
            "{per_connection:?}"
        );

        let key = RequestKey {
            carrier: KeyCarrier::Cookie("session".to_owned()),
            seed: 9,
            repeated_keys: 2,
            requests_each: 3,
        };
        let units: Vec<u64> = (0..9).map(|i| key.unit(i)).collect();
        assert_eq!(units, [0, 0, 0, 1, 1, 1, 2, 3, 4]);
        assert_ne!(key.value(0), key.value(1));
        assert_eq!(key.value(2).len(), 16);
        let (name, value) = key.header(4).unwrap();
        assert_eq!(name, http::header::COOKIE);
        assert_eq!(value.to_str().unwrap(), format!("session={}", key.value(1)));
    }

    #[test]
    fn summary_of_an_empty_histogram_is_zero() {
        assert_eq!(summarize(&new_histogram()), LatencySummary::default());
        let mut histogram = new_histogram();
        for micros in 1..=100 {
            record_latency(&mut histogram, Duration::from_micros(micros));
        }
        let summary = summarize(&histogram);
        assert_eq!(summary.p50_us, 50);
        assert_eq!(summary.max_us, 100);
    }
}

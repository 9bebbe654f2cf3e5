//! Timed load for benchmarks: `connections` keep-alive connections send for a warm-up, then for a
//! measured window, in one of two modes ([`Pacing`]).
//!
//! - **Closed loop**: every connection sends its next request as soon as the previous reply is
//!   in. It finds the highest rate the target sustains, but its latencies hide queueing: a stalled
//!   target also stalls the client, so the requests that would have waited are never sent
//!   (coordinated omission).
//! - **Open loop**: requests are due on a fixed schedule ([`Schedule`]), and each latency is
//!   measured from the moment the request was *due*, not from when a connection got to send it. A
//!   stall therefore shows up in every request it delayed, as it would for independent users. A
//!   pacing thread with fine timer slack releases the slots, because tokio's timer wheel has
//!   one-millisecond ticks, too coarse for a schedule with 50–100 µs between requests.
//!
//! Every reply goes through the caller's check, which says what the reply was (for counting) or
//! rejects it; a rejected reply or a failed request ends the measurement with an error, since a
//! benchmark of a target that answers wrongly means nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use super::{
    Connection, RequestTemplate, Response, SendError, TrafficError, TrafficRequest, new_histogram,
    record_latency,
};

/// How long in-flight requests get to finish once the schedule or the window has ended.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Timer slack of the pacing thread: the kernel may wake it this late (default 50 µs).
const PACER_TIMER_SLACK_NS: u64 = 1_000;
/// The schedule starts this long after the call, so the first slots are not already late.
const SCHEDULE_LEAD: Duration = Duration::from_millis(5);

/// When requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each connection sends again as soon as its reply is in.
    ClosedLoop,
    /// `rate` requests per second on a fixed schedule, to whichever connection is free.
    OpenLoop { rate: f64 },
}

/// The shape of one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Keep-alive connections, all opened before the warm-up starts.
    pub connections: usize,
    pub pacing: Pacing,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Target(#[from] TrafficError),
    #[error("the open loop's rate must be a positive number of requests per second, got {0}")]
    Rate(f64),
    #[error(transparent)]
    Send(#[from] SendError),
    /// The caller's check rejected a reply.
    #[error(transparent)]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
    #[error("requests still unanswered {} after the window ended", humantime::format_duration(*.0))]
    Unanswered(Duration),
    #[error("cannot start the pacing thread: {0}")]
    Pacer(#[source] std::io::Error),
    #[error("the pacing thread panicked")]
    PacerPanicked,
    #[error("a load connection panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    #[error("merging latency histograms: {0}")]
    Merge(#[from] hdrhistogram::AdditionError),
}

/// What one measurement saw: the replies completed in the window (closed loop) or due in it
/// (open loop).
#[derive(Debug)]
pub struct Measured<K> {
    /// Open loop: from the moment each request was due, what an independent user would see.
    /// Closed loop: from the moment it was sent.
    pub latency: Histogram<u64>,
    /// From the moment a connection actually sent each request: what a closed-loop client would
    /// report. The same as `latency` in a closed loop.
    pub uncorrected: Histogram<u64>,
    /// What the check made of each measured reply.
    pub counts: BTreeMap<K, u64>,
    /// The measured window's length.
    pub duration: Duration,
}

impl<K> Measured<K> {
    /// Measured replies per second of the window.
    pub fn rate(&self) -> f64 {
        self.latency.len() as f64 / self.duration.as_secs_f64()
    }

    /// How many measured replies the check classified as `kind`.
    pub fn count(&self, kind: &K) -> u64
    where
        K: Ord,
    {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}

/// Sends `request` over `window.connections` connections as `window.pacing` says, for
/// `window.warmup + window.duration`, and records the replies of the measured part. `check` runs
/// on every reply, warm-up included.
pub async fn measure<K, E, F>(
    request: &TrafficRequest,
    window: &Window,
    check: F,
) -> Result<Measured<K>, WindowError>
where
    K: Ord + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&Response) -> Result<K, E> + Send + Sync + 'static,
{
    if let Pacing::OpenLoop { rate } = window.pacing
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(WindowError::Rate(rate));
    }
    // A benchmark may target any address it was given; the loopback rule is the local backend's.
    let address = super::resolve(&request.base, false).await?;
    let template = Arc::new(RequestTemplate::new(request)?);
    let check = Arc::new(check);
    let opened = open_all(address, window.connections).await?;
    let recorder = match window.pacing {
        Pacing::ClosedLoop => closed_loop(opened, &template, &check, window).await?,
        Pacing::OpenLoop { rate } => open_loop(opened, &template, &check, rate, window).await?,
    };
    Ok(Measured {
        latency: recorder.corrected,
        uncorrected: recorder.uncorrected,
        counts: recorder.counts,
        duration: window.duration,
    })
}

async fn open_all(address: SocketAddr, connections: usize) -> Result<Vec<Connection>, SendError> {
    let mut opened = Vec::with_capacity(connections.max(1));
    for _ in 0..connections.max(1) {
        opened.push(Connection::open(address).await?);
    }
    Ok(opened)
}

async fn send_checked<K, E, F>(
    connection: &mut Connection,
    template: &RequestTemplate,
    check: &F,
) -> Result<(K, Instant), WindowError>
where
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&Response) -> Result<K, E>,
{
    let response = connection.send(template).await?;
    let done = Instant::now();
    let kind = check(&response).map_err(|error| WindowError::Rejected(Box::new(error)))?;
    Ok((kind, done))
}

async fn closed_loop<K, E, F>(
    opened: Vec<Connection>,
    template: &Arc<RequestTemplate>,
    check: &Arc<F>,
    window: &Window,
) -> Result<Recorder<K>, WindowError>
where
    K: Ord + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&Response) -> Result<K, E> + Send + Sync + 'static,
{
    let measure_from = Instant::now() + window.warmup;
    let measure_until = measure_from + window.duration;
    let mut tasks = JoinSet::new();
    for mut connection in opened {
        let (template, check) = (Arc::clone(template), Arc::clone(check));
        tasks.spawn(async move {
            let mut recorder = Recorder::new();
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let (kind, done) = send_checked(&mut connection, &template, &*check).await?;
                // Only replies wholly inside the window count, so the rate is the window's.
                if sent >= measure_from && done <= measure_until {
                    recorder.record(sent, sent, done);
                    recorder.count(kind);
                }
            }
            Ok::<_, WindowError>(recorder)
        });
    }
    drain(tasks, window.warmup + window.duration).await
}

/// One request of the schedule, handed to whichever connection is free.
#[derive(Debug, Clone, Copy)]
struct Slot {
    due: Instant,
    measured: bool,
}

async fn open_loop<K, E, F>(
    opened: Vec<Connection>,
    template: &Arc<RequestTemplate>,
    check: &Arc<F>,
    rate: f64,
    window: &Window,
) -> Result<Recorder<K>, WindowError>
where
    K: Ord + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&Response) -> Result<K, E> + Send + Sync + 'static,
{
    let (slots, receiver) = mpsc::unbounded_channel::<Slot>();
    let receiver = Arc::new(Mutex::new(receiver));
    let mut tasks = JoinSet::new();
    for mut connection in opened {
        let (template, check) = (Arc::clone(template), Arc::clone(check));
        let receiver = Arc::clone(&receiver);
        tasks.spawn(async move {
            let mut recorder = Recorder::new();
            loop {
                // Whichever connection is free takes the next due slot; when all are busy the slot
                // waits in the queue, and that wait counts in its latency.
                let next = receiver.lock().await.recv().await;
                let Some(slot) = next else { break };
                let sent = Instant::now();
                let (kind, done) = send_checked(&mut connection, &template, &*check).await?;
                if slot.measured {
                    recorder.record(slot.due, sent, done);
                    recorder.count(kind);
                }
            }
            Ok::<_, WindowError>(recorder)
        });
    }

    let schedule = Schedule::new(Instant::now() + SCHEDULE_LEAD, rate);
    let measure_from = schedule.start + window.warmup;
    let end = measure_from + window.duration;
    let pacer = std::thread::Builder::new()
        .name("traffic-pacer".to_owned())
        .spawn(move || pace(schedule, measure_from, end, &slots))
        .map_err(WindowError::Pacer)?;
    let recorder = drain(tasks, window.warmup + window.duration).await?;
    let issued = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .map_err(WindowError::Panicked)?
        .map_err(|_| WindowError::PacerPanicked)?;
    tracing::debug!(
        issued,
        measured = recorder.corrected.len(),
        "open loop finished"
    );
    Ok(recorder)
}

/// Waits for every connection's task, at most `DRAIN_TIMEOUT` past `run`; the first error ends
/// the measurement and stops the other connections.
async fn drain<K: Ord + 'static>(
    mut tasks: JoinSet<Result<Recorder<K>, WindowError>>,
    run: Duration,
) -> Result<Recorder<K>, WindowError> {
    let joined = tokio::time::timeout(run + SCHEDULE_LEAD + DRAIN_TIMEOUT, async {
        let mut total = Recorder::new();
        while let Some(joined) = tasks.join_next().await {
            total.merge(joined.map_err(WindowError::Panicked)??)?;
        }
        Ok::<_, WindowError>(total)
    })
    .await;
    tasks.abort_all();
    joined.unwrap_or_else(|_| Err(WindowError::Unanswered(DRAIN_TIMEOUT)))
}

/// Releases each slot of the schedule at its due time until `end`; returns how many it released.
/// Dropping `slots` on return tells the connections the schedule is over.
fn pace(
    schedule: Schedule,
    measure_from: Instant,
    end: Instant,
    slots: &mpsc::UnboundedSender<Slot>,
) -> u64 {
    // Only this thread's slack changes, and it ends with the thread.
    let _ = nix::sys::prctl::set_timerslack(PACER_TIMER_SLACK_NS);
    let mut slot = 0u64;
    loop {
        let due = schedule.due(slot);
        if due >= end {
            return slot;
        }
        let now = Instant::now();
        if due > now {
            #[expect(
                clippy::disallowed_methods,
                reason = "pacing a schedule is about time itself; nothing is being waited for"
            )]
            std::thread::sleep(due - now);
        }
        let measured = due >= measure_from;
        if slots.send(Slot { due, measured }).is_err() {
            return slot;
        }
        slot += 1;
    }
}

/// A fixed-rate schedule: request `n` is due at `start + n / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
}

impl Schedule {
    pub fn new(start: Instant, rate: f64) -> Self {
        Self {
            start,
            interval_ns: 1e9 / rate,
        }
    }

    pub fn due(&self, slot: u64) -> Instant {
        // Computed from the start each time, so rounding never accumulates into drift.
        self.start + Duration::from_nanos((slot as f64 * self.interval_ns) as u64)
    }
}

/// Latencies kept two ways, so the coordinated-omission correction can be seen, and the counts
/// of what the replies were.
#[derive(Debug)]
struct Recorder<K> {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    counts: BTreeMap<K, u64>,
}

impl<K: Ord> Recorder<K> {
    fn new() -> Self {
        Self {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            counts: BTreeMap::new(),
        }
    }

    /// Records one reply: `due` from the schedule, `sent` when a connection took it, `done` when
    /// the reply was complete.
    fn record(&mut self, due: Instant, sent: Instant, done: Instant) {
        record_latency(&mut self.corrected, done.saturating_duration_since(due));
        record_latency(&mut self.uncorrected, done.saturating_duration_since(sent));
    }

    fn count(&mut self, kind: K) {
        *self.counts.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Self) -> Result<(), hdrhistogram::AdditionError> {
        self.corrected.add(&other.corrected)?;
        self.uncorrected.add(&other.uncorrected)?;
        for (kind, count) in other.counts {
            *self.counts.entry(kind).or_default() += count;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_does_not_drift() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 3_000.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(3_000) - start, Duration::from_secs(1));
        let step = schedule.due(1) - start;
        assert!(step.as_nanos().abs_diff(333_333) <= 1, "{step:?}");
    }

    /// A server that answers in 100 µs but stalls once for 200 ms, driven at 1000 req/s over one
    /// connection (simulated time, through the real recorder): the client cannot send while the
    /// stall lasts, so only one send-to-reply latency is long, yet 222 requests were due while it
    /// lasted or while the backlog drained, and each of them waited.
    #[test]
    fn the_correction_charges_a_stall_to_every_request_it_delayed() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1_000.0);
        let service = Duration::from_micros(100);
        let stall = Duration::from_millis(200);
        let mut recorder = Recorder::<()>::new();
        let mut free_at = start;
        for slot in 0..10_000u64 {
            let due = schedule.due(slot);
            let sent = due.max(free_at);
            let done = sent + if slot == 5_000 { stall } else { service };
            recorder.record(due, sent, done);
            free_at = done;
        }
        let (corrected, uncorrected) = (&recorder.corrected, &recorder.uncorrected);
        assert_eq!(corrected.len(), 10_000);
        // Uncorrected, the stall is one sample in 10 000: invisible at p99 and at p99.9.
        assert_eq!(uncorrected.value_at_quantile(0.99), 100);
        assert_eq!(uncorrected.value_at_quantile(0.999), 100);
        assert!(uncorrected.max() >= 199_000, "{}", uncorrected.max());
        // Corrected, the delayed requests wait from 200 ms down to nothing as the backlog drains:
        // the 100th longest (p99) waited 110 ms, the 10th longest (p99.9) 191 ms.
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 100;
        let (p99, p999) = (
            corrected.value_at_quantile(0.99),
            corrected.value_at_quantile(0.999),
        );
        assert!(close(p99, 110_000), "{p99}");
        assert!(close(p999, 191_000), "{p999}");
        assert_eq!(corrected.value_at_quantile(0.5), 100);
    }

    /// An HTTP/1.1 server on 127.0.0.1:0 answering `a` to even and `b` to odd request numbers.
    async fn alternating_server() -> SocketAddr {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let served = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_| {
                        let body = if served.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                            "a"
                        } else {
                            "b"
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(
                                    body.as_bytes(),
                                )),
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    }

    fn request(address: SocketAddr) -> TrafficRequest {
        TrafficRequest {
            base: url::Url::parse(&format!("http://{address}")).unwrap(),
            path_and_query: "/".to_owned(),
            method: http::Method::GET,
            host: None,
            headers: Vec::new(),
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("unexpected body {0:?}")]
    struct Unexpected(bytes::Bytes);

    fn body(response: &Response) -> Result<bytes::Bytes, Unexpected> {
        Ok(response.body.clone())
    }

    #[tokio::test]
    async fn both_modes_measure_and_count_replies() {
        let address = alternating_server().await;
        let closed = Window {
            connections: 2,
            pacing: Pacing::ClosedLoop,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(300),
        };
        let measured = measure(&request(address), &closed, body).await.unwrap();
        let (a, b) = (measured.count(&"a".into()), measured.count(&"b".into()));
        assert!(a > 0 && b > 0, "{:?}", measured.counts);
        assert_eq!(a + b, measured.latency.len());
        assert_eq!(measured.latency.len(), measured.uncorrected.len());
        assert!(measured.rate() > 0.0);

        let open = Window {
            pacing: Pacing::OpenLoop { rate: 500.0 },
            duration: Duration::from_millis(100),
            ..closed
        };
        let measured = measure(&request(address), &open, body).await.unwrap();
        // 500 req/s: a slot every 2 ms, so exactly 50 are due in the 100 ms window, however late
        // their replies come.
        assert_eq!(measured.latency.len(), 50);
        assert_eq!(measured.uncorrected.len(), 50);
    }

    #[tokio::test]
    async fn a_rejected_reply_or_a_bad_rate_ends_the_measurement() {
        let address = alternating_server().await;
        let window = Window {
            connections: 1,
            pacing: Pacing::ClosedLoop,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
        };
        let error = measure(&request(address), &window, |response: &Response| {
            if response.body.as_ref() == b"a" {
                Ok(())
            } else {
                Err(Unexpected(response.body.clone()))
            }
        })
        .await
        .unwrap_err();
        assert!(
            matches!(error, WindowError::Rejected(_)) && error.to_string().contains("\"b\""),
            "{error}"
        );
        let bad_rate = Window {
            pacing: Pacing::OpenLoop { rate: 0.0 },
            ..window
        };
        let error = measure(&request(address), &bad_rate, body)
            .await
            .unwrap_err();
        assert!(matches!(error, WindowError::Rate(_)), "{error}");
    }
}

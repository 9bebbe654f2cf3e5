//! The load generator of `cargo xtask bench`: HTTP/1.1 keep-alive connections from one thread
//! (like `wrk -t1`), in two modes.
//!
//! - **Closed loop** ([`closed_loop`]): every connection sends its next request as soon as the
//!   previous reply is in. It finds the highest rate the gateway sustains, but its latencies hide
//!   queueing: a stalled gateway also stalls the client, so the requests that would have waited are
//!   never sent (coordinated omission).
//! - **Open loop** ([`open_loop`]): requests are due on a fixed schedule ([`Schedule`]), and each
//!   latency is measured from the moment the request was *due*, not from when a connection got to
//!   send it. A stall therefore shows up in every request it delayed, as it would for independent
//!   users. A pacing thread with fine timer slack releases the slots, because tokio's timer wheel
//!   has one-millisecond ticks, too coarse for a schedule with 50–100 µs between requests.
//!
//! Every reply must be `200` with a body naming the upstream (`blue` or `green`); the counts of
//! each check that the weighted split is really applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// Latencies are recorded in microseconds, from 1 µs to one minute, at three significant digits.
const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// How long in-flight requests get to finish once the schedule or the measurement has ended.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Timer slack of the pacing thread: the kernel may wake it this late (default 50 µs).
const PACER_TIMER_SLACK_NS: u64 = 1_000;

/// Where the load goes: a gateway's data-plane address, one path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
}

/// Which upstream answered, from the reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    Blue,
    Green,
}

impl Destination {
    pub(crate) fn body(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }

    fn from_body(body: &[u8]) -> Option<Self> {
        match body {
            b"blue" => Some(Self::Blue),
            b"green" => Some(Self::Green),
            _ => None,
        }
    }
}

/// One keep-alive HTTP/1.1 connection to the target.
pub(crate) struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    target: Target,
}

impl Connection {
    pub(crate) async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {}", target.addr))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "bench connection ended");
            }
        });
        Ok(Self {
            sender,
            target: target.clone(),
        })
    }

    /// Sends one GET and reads the whole reply; anything but a `200` naming an upstream is an error.
    pub(crate) async fn get(&mut self) -> anyhow::Result<Destination> {
        self.sender.ready().await.context("the connection closed")?;
        let request = Request::get(self.target.path.as_str())
            .header(http::header::HOST, "bench.colormesh")
            .body(Empty::new())
            .context("building the request")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the reply body")?
            .to_bytes();
        if status != StatusCode::OK {
            bail!(
                "GET {} answered {status}: {}",
                self.target.path,
                String::from_utf8_lossy(&body)
            );
        }
        Destination::from_body(&body).with_context(|| {
            format!(
                "GET {} answered a body naming no upstream: {:?}",
                self.target.path,
                String::from_utf8_lossy(&body)
            )
        })
    }
}

/// An empty latency histogram (microseconds).
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("static histogram bounds are valid")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LatencyStats {
    pub(crate) count: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
}

impl LatencyStats {
    /// hdrhistogram reports the highest value equivalent to the sample at each quantile.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// How many replies came from each upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SplitCount {
    pub(crate) blue: u64,
    pub(crate) green: u64,
}

impl SplitCount {
    fn add(&mut self, destination: Destination) {
        match destination {
            Destination::Blue => self.blue += 1,
            Destination::Green => self.green += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.blue += other.blue;
        self.green += other.green;
    }

    /// The share of replies from the green (20 %) upstream.
    pub(crate) fn green_share(self) -> f64 {
        self.green as f64 / (self.blue + self.green).max(1) as f64
    }
}

/// What a closed-loop run measured.
#[derive(Debug, Clone)]
pub(crate) struct ClosedLoop {
    /// Replies completed inside the measurement window, per second.
    pub(crate) rate: f64,
    /// Service latencies (send to reply); queueing in the client is invisible here.
    pub(crate) latency: LatencyStats,
    pub(crate) split: SplitCount,
}

/// Runs `connections` connections flat out for `warmup + duration`; counts the replies that
/// complete inside the last `duration`.
pub(crate) async fn closed_loop(
    target: &Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<ClosedLoop> {
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        opened.push(Connection::open(target).await?);
    }
    let started = Instant::now();
    let measure_from = started + warmup;
    let measure_until = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut connection in opened {
        tasks.spawn(async move {
            let mut histogram = latency_histogram();
            let mut split = SplitCount::default();
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let destination = connection.get().await?;
                let done = Instant::now();
                if sent >= measure_from && done <= measure_until {
                    record(&mut histogram, done - sent);
                    split.add(destination);
                }
            }
            anyhow::Ok((histogram, split))
        });
    }
    let (histogram, split) = join_all(tasks).await?;
    Ok(ClosedLoop {
        rate: histogram.len() as f64 / duration.as_secs_f64(),
        latency: LatencyStats::of(&histogram),
        split,
    })
}

/// A fixed-rate schedule: request `n` is due at `start + n / rate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    start: Instant,
    interval_ns: f64,
}

impl Schedule {
    pub(crate) fn new(start: Instant, rate: f64) -> Self {
        Self {
            start,
            interval_ns: 1e9 / rate,
        }
    }

    pub(crate) fn due(&self, slot: u64) -> Instant {
        // Computed from the start each time, so rounding never accumulates into drift.
        self.start + Duration::from_nanos((slot as f64 * self.interval_ns) as u64)
    }
}

/// One request of the schedule, handed to whichever connection is free.
#[derive(Debug, Clone, Copy)]
struct Slot {
    due: Instant,
    measured: bool,
}

/// Latencies of one open-loop run, kept two ways so the correction can be seen.
#[derive(Debug)]
pub(crate) struct OpenLoopRecorder {
    /// From the moment each request was due: what an independent user would see.
    corrected: Histogram<u64>,
    /// From the moment a connection actually sent it: what a closed-loop client would report.
    uncorrected: Histogram<u64>,
    split: SplitCount,
}

impl OpenLoopRecorder {
    pub(crate) fn new() -> Self {
        Self {
            corrected: latency_histogram(),
            uncorrected: latency_histogram(),
            split: SplitCount::default(),
        }
    }

    /// Records one reply: `due` from the schedule, `sent` when a connection took it, `done` when the
    /// reply was complete.
    pub(crate) fn record(&mut self, due: Instant, sent: Instant, done: Instant) {
        record(&mut self.corrected, done.saturating_duration_since(due));
        record(&mut self.uncorrected, done.saturating_duration_since(sent));
    }

    fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.corrected
            .add(&other.corrected)
            .context("merging latency histograms")?;
        self.uncorrected
            .add(&other.uncorrected)
            .context("merging latency histograms")?;
        self.split.merge(other.split);
        Ok(())
    }

    pub(crate) fn corrected(&self) -> LatencyStats {
        LatencyStats::of(&self.corrected)
    }

    pub(crate) fn uncorrected(&self) -> LatencyStats {
        LatencyStats::of(&self.uncorrected)
    }
}

/// What an open-loop run measured.
#[derive(Debug, Clone)]
pub(crate) struct OpenLoop {
    /// The schedule's rate.
    pub(crate) rate: f64,
    /// Replies in the measurement window per second; below `rate` when the target fell behind.
    pub(crate) achieved_rate: f64,
    /// Coordinated-omission corrected: from the due time.
    pub(crate) latency: LatencyStats,
    /// From the actual send time, for comparison.
    pub(crate) uncorrected: LatencyStats,
    pub(crate) split: SplitCount,
}

/// Sends `rate` requests per second over `connections` connections for `warmup + duration`; the
/// latencies of requests due in the last `duration` are kept, measured from their due time.
pub(crate) async fn open_loop(
    target: &Target,
    connections: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<OpenLoop> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("open loop: the rate must be positive, got {rate}");
    }
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        opened.push(Connection::open(target).await?);
    }
    let (slots, receiver) = mpsc::unbounded_channel::<Slot>();
    let receiver = Arc::new(Mutex::new(receiver));
    let mut tasks = tokio::task::JoinSet::new();
    for mut connection in opened {
        let receiver = Arc::clone(&receiver);
        tasks.spawn(async move {
            let mut recorder = OpenLoopRecorder::new();
            loop {
                // Whichever connection is free takes the next due slot; when all are busy the slot
                // waits in the queue, and that wait counts in its latency.
                let next = receiver.lock().await.recv().await;
                let Some(slot) = next else { break };
                let sent = Instant::now();
                let destination = connection.get().await?;
                if slot.measured {
                    recorder.record(slot.due, sent, Instant::now());
                    recorder.split.add(destination);
                }
            }
            anyhow::Ok(recorder)
        });
    }

    let schedule = Schedule::new(Instant::now() + Duration::from_millis(5), rate);
    let measure_from = schedule.start + warmup;
    let end = measure_from + duration;
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".to_owned())
        .spawn(move || pace(schedule, measure_from, end, &slots))
        .context("starting the pacing thread")?;

    let drained = tokio::time::timeout(
        duration + warmup + DRAIN_TIMEOUT,
        join_open_loop(&mut tasks),
    )
    .await;
    let recorder = match drained {
        Ok(result) => result?,
        Err(_) => {
            tasks.abort_all();
            bail!(
                "open loop at {rate:.0} req/s: requests still unanswered {DRAIN_TIMEOUT:?} after the schedule ended"
            );
        }
    };
    let issued = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .context("joining the pacing thread")?
        .map_err(|_| anyhow::anyhow!("the pacing thread panicked"))?;
    let measured = recorder.corrected.len();
    tracing::debug!(issued, measured, "open loop finished");
    Ok(OpenLoop {
        rate,
        achieved_rate: measured as f64 / duration.as_secs_f64(),
        latency: recorder.corrected(),
        uncorrected: recorder.uncorrected(),
        split: recorder.split,
    })
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

async fn join_open_loop(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<OpenLoopRecorder>>,
) -> anyhow::Result<OpenLoopRecorder> {
    let mut total = OpenLoopRecorder::new();
    while let Some(joined) = tasks.join_next().await {
        let recorder = joined.context("a load connection panicked")??;
        total.merge(&recorder)?;
    }
    Ok(total)
}

async fn join_all(
    mut tasks: tokio::task::JoinSet<anyhow::Result<(Histogram<u64>, SplitCount)>>,
) -> anyhow::Result<(Histogram<u64>, SplitCount)> {
    let mut histogram = latency_histogram();
    let mut split = SplitCount::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("a load connection panicked")? {
            Ok((part, part_split)) => {
                histogram.add(&part).context("merging latency histograms")?;
                split.merge(part_split);
            }
            Err(error) => {
                tasks.abort_all();
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok((histogram, split)),
    }
}

/// Runs a load future on a thread of its own with a single-threaded runtime, as `wrk -t1` does,
/// so the generator's share of the CPU is one thread whatever the caller's runtime is.
pub(crate) async fn on_own_thread<T, F>(
    make: impl FnOnce() -> F + Send + 'static,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the load generator's runtime")?;
        runtime.block_on(make())
    })
    .await
    .context("the load generator thread panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution_are_where_they_should_be() {
        let mut histogram = latency_histogram();
        for micros in 1..=100_000u64 {
            histogram.record(micros).expect("in range");
        }
        let stats = LatencyStats::of(&histogram);
        assert_eq!(stats.count, 100_000);
        // Three significant digits: within 0.1 % of the exact quantile.
        let close = |got: u64, want: u64| got.abs_diff(want) as f64 <= want as f64 * 1e-3;
        assert!(close(stats.p50_us, 50_000), "{stats:?}");
        assert!(close(stats.p99_us, 99_000), "{stats:?}");
        assert!(close(stats.p999_us, 99_900), "{stats:?}");
        assert!(close(stats.max_us, 100_000), "{stats:?}");
    }

    #[test]
    fn tail_percentiles_separate_rare_slow_requests() {
        // 990 fast, 9 slow, 1 very slow: p99 is still fast, p99.9 is slow, max is the outlier.
        let mut histogram = latency_histogram();
        histogram.record_n(100, 990).expect("in range");
        histogram.record_n(10_000, 9).expect("in range");
        histogram.record(1_000_000).expect("in range");
        let stats = LatencyStats::of(&histogram);
        assert_eq!(stats.p50_us, 100);
        assert_eq!(stats.p99_us, 100);
        assert!((9_990..=10_010).contains(&stats.p999_us), "{stats:?}");
        assert!((999_000..=1_001_000).contains(&stats.max_us), "{stats:?}");
    }

    #[test]
    fn an_empty_histogram_gives_zeros() {
        assert_eq!(
            LatencyStats::of(&latency_histogram()),
            LatencyStats::default()
        );
    }

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
        let mut recorder = OpenLoopRecorder::new();
        let mut free_at = start;
        for slot in 0..10_000u64 {
            let due = schedule.due(slot);
            let sent = due.max(free_at);
            let done = sent + if slot == 5_000 { stall } else { service };
            recorder.record(due, sent, done);
            free_at = done;
        }
        let corrected = recorder.corrected();
        let uncorrected = recorder.uncorrected();
        assert_eq!(corrected.count, 10_000);
        // Uncorrected, the stall is one sample in 10 000: invisible at p99 and at p99.9.
        assert_eq!(uncorrected.p99_us, 100, "{uncorrected:?}");
        assert_eq!(uncorrected.p999_us, 100, "{uncorrected:?}");
        assert!(uncorrected.max_us >= 199_000, "{uncorrected:?}");
        // Corrected, the delayed requests wait from 200 ms down to nothing as the backlog drains:
        // the 100th longest (p99) waited 110 ms, the 10th longest (p99.9) 191 ms.
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 100;
        assert!(close(corrected.p99_us, 110_000), "{corrected:?}");
        assert!(close(corrected.p999_us, 191_000), "{corrected:?}");
        assert_eq!(corrected.p50_us, 100, "{corrected:?}");
    }
}

//! The load `cargo xtask bench` puts on a gateway, through the harness's generator
//! ([`harness::traffic::window`]): HTTP/1.1 keep-alive connections from one thread (like `wrk
//! -t1`), closed loop for throughput and open loop for latency corrected for coordinated omission.
//!
//! Every reply must be `200` with a body naming the upstream (`blue` or `green`); the counts of
//! each check that the weighted split is really applied.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use harness::traffic::window::{self, Measured, Pacing, Window};
use harness::traffic::{Connection, RequestTemplate, Response, TrafficRequest};
use hdrhistogram::Histogram;
use http::StatusCode;

/// The Host header of every bench request; the route's virtual host is `*`.
const HOST: &str = "bench.colormesh";

/// Where the load goes: a gateway's data-plane address, one path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
}

impl Target {
    fn request(&self) -> anyhow::Result<TrafficRequest> {
        Ok(TrafficRequest {
            base: url::Url::parse(&format!("http://{}", self.addr))
                .with_context(|| format!("a URL for {}", self.addr))?,
            path_and_query: self.path.clone(),
            method: http::Method::GET,
            host: Some(HOST.to_owned()),
            headers: Vec::new(),
        })
    }
}

/// Which upstream answered, from the reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// A reply that is not a `200` naming an upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadReply {
    #[error("GET {path} answered {status}: {}", String::from_utf8_lossy(.body))]
    Status {
        path: String,
        status: StatusCode,
        body: Bytes,
    },
    #[error("GET {path} answered a body naming no upstream: {:?}", String::from_utf8_lossy(.body))]
    NoUpstream { path: String, body: Bytes },
}

/// The bench's check of every reply: which upstream answered it.
fn destination(path: &str, response: &Response) -> Result<Destination, BadReply> {
    if response.status != StatusCode::OK {
        return Err(BadReply::Status {
            path: path.to_owned(),
            status: response.status,
            body: response.body.clone(),
        });
    }
    Destination::from_body(&response.body).ok_or_else(|| BadReply::NoUpstream {
        path: path.to_owned(),
        body: response.body.clone(),
    })
}

/// One keep-alive connection that GETs the target and says which upstream answered.
pub(crate) struct Probe {
    connection: Connection,
    template: RequestTemplate,
    path: String,
}

impl Probe {
    pub(crate) async fn open(target: &Target) -> anyhow::Result<Self> {
        let template = RequestTemplate::new(&target.request()?)?;
        let connection = Connection::open(target.addr).await?;
        Ok(Self {
            connection,
            template,
            path: target.path.clone(),
        })
    }

    /// Sends one GET and reads the whole reply; anything but a `200` naming an upstream is an error.
    pub(crate) async fn get(&mut self) -> anyhow::Result<Destination> {
        let response = self.connection.send(&self.template).await?;
        Ok(destination(&self.path, &response)?)
    }
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
    fn of(measured: &Measured<Destination>) -> Self {
        Self {
            blue: measured.count(&Destination::Blue),
            green: measured.count(&Destination::Green),
        }
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

async fn measure(
    target: &Target,
    connections: usize,
    pacing: Pacing,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured<Destination>> {
    let window = Window {
        connections,
        pacing,
        warmup,
        duration,
    };
    let path = target.path.clone();
    Ok(
        window::measure(&target.request()?, &window, move |response| {
            destination(&path, response)
        })
        .await?,
    )
}

/// Runs `connections` connections flat out for `warmup + duration`; counts the replies that
/// complete inside the last `duration`.
pub(crate) async fn closed_loop(
    target: &Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<ClosedLoop> {
    let measured = measure(target, connections, Pacing::ClosedLoop, warmup, duration).await?;
    Ok(ClosedLoop {
        rate: measured.rate(),
        latency: LatencyStats::of(&measured.latency),
        split: SplitCount::of(&measured),
    })
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
    let pacing = Pacing::OpenLoop { rate };
    let measured = measure(target, connections, pacing, warmup, duration)
        .await
        .with_context(|| format!("open loop at {rate:.0} req/s"))?;
    Ok(OpenLoop {
        rate,
        achieved_rate: measured.rate(),
        latency: LatencyStats::of(&measured.latency),
        uncorrected: LatencyStats::of(&measured.uncorrected),
        split: SplitCount::of(&measured),
    })
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
    use harness::traffic::new_histogram;

    #[test]
    fn percentiles_of_a_uniform_distribution_are_where_they_should_be() {
        let mut histogram = new_histogram();
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
        let mut histogram = new_histogram();
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
        assert_eq!(LatencyStats::of(&new_histogram()), LatencyStats::default());
    }

    #[test]
    fn only_a_200_naming_an_upstream_passes() {
        let response = |status: StatusCode, body: &'static str| Response {
            status,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        };
        assert_eq!(
            destination("/p", &response(StatusCode::OK, "green")).expect("green"),
            Destination::Green
        );
        let error = destination("/p", &response(StatusCode::NOT_FOUND, "not rewritten"))
            .expect_err("404")
            .to_string();
        assert_eq!(error, "GET /p answered 404 Not Found: not rewritten");
        let error = destination("/p", &response(StatusCode::OK, "red"))
            .expect_err("no upstream")
            .to_string();
        assert!(error.contains("naming no upstream"), "{error}");
    }
}

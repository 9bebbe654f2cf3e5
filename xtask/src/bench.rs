//! `cargo xtask bench-traffic`: the traffic generator must not be the bottleneck.
//!
//! A colorteller runs in process on 127.0.0.1 port 0. The harness's generator drives it, then a
//! plain concurrent hyper client loop does the same amount of work, and the two rates are compared.
//! This prints figures; it is a benchmark, not a timed test.
//!
//! `cargo xtask bench` (gateway-proxy against Envoy) lives in the submodules; see [`compare`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use harness::traffic::{self, Flow, TrafficLimits, TrafficRequest};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod compare;
pub(crate) mod config;
pub(crate) mod gateway;
mod load;
mod propagation;
mod upstream;

pub(crate) use compare::{CompareArgs, bench};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Requests per measurement.
    #[arg(long, default_value_t = 40_000)]
    requests: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Hard limit on each measurement.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    deadline: Duration,
}

fn humantime_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    text.parse::<humantime::Duration>().map(Into::into)
}

/// One measurement's figures.
struct Figures {
    replies: u64,
    elapsed: Duration,
    latency: traffic::LatencySummary,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.replies as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<22} {:>8} replies in {:>7.3} s = {:>9.0} req/s   latency p50 {:>5} µs  p90 {:>5} µs  p99 {:>6} µs  max {:>7} µs",
            self.replies,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.latency.p50_us,
            self.latency.p90_us,
            self.latency.p99_us,
            self.latency.max_us
        );
    }
}

pub(crate) async fn bench_traffic(args: &BenchArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the colorteller")?;
    let address = listener
        .local_addr()
        .context("reading the colorteller address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = colorteller::Config {
        color: "blue".to_owned(),
        flake_seed: Some(1),
        ..colorteller::Config::default()
    };
    let server = tokio::spawn(colorteller::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let base =
        url::Url::parse(&format!("http://{address}")).context("building the colorteller URL")?;
    println!(
        "bench-traffic: colorteller on {address}, {} requests per measurement, {} connections",
        args.requests, args.concurrency
    );

    // A short warm-up so neither side pays for first connections and allocator growth.
    let warm = args.requests.min(2_000);
    generator(&base, warm, args).await?;
    plain_hyper(&base, warm, args).await?;

    let ours = generator(&base, args.requests, args).await?;
    let plain = plain_hyper(&base, args.requests, args).await?;
    ours.print("harness generator");
    plain.print("plain hyper loop");
    println!(
        "ratio (harness / plain): {:.2} of the plain loop's rate; p99 {:.2}x",
        ours.rate() / plain.rate().max(f64::EPSILON),
        ours.latency.p99_us as f64 / plain.latency.p99_us.max(1) as f64
    );

    let _ = stop.send(());
    server
        .await
        .context("joining the colorteller")?
        .context("the colorteller failed")?;
    Ok(())
}

async fn generator(base: &url::Url, requests: u64, args: &BenchArgs) -> anyhow::Result<Figures> {
    let request = TrafficRequest {
        base: base.clone(),
        path_and_query: "/".to_owned(),
        method: http::Method::GET,
        host: None,
        headers: Vec::new(),
    };
    let limits = TrafficLimits {
        concurrency: args.concurrency,
        max_requests: requests,
        deadline: args.deadline,
        request_timeout: Duration::from_secs(10),
        loopback_only: true,
    };
    let mut bad = 0u64;
    let summary = traffic::drive(&request, &limits, |reply| {
        if reply.status != Some(http::StatusCode::OK) {
            bad += 1;
        }
        Flow::Continue
    })
    .await?;
    anyhow::ensure!(bad == 0, "{bad} replies from the colorteller were not 200");
    Ok(Figures {
        replies: summary.received,
        elapsed: summary.elapsed,
        latency: summary.latency,
    })
}

/// The baseline: hyper-util's pooled client, `concurrency` tasks looping until the count is reached.
async fn plain_hyper(base: &url::Url, requests: u64, args: &BenchArgs) -> anyhow::Result<Figures> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = base
        .as_str()
        .parse()
        .context("parsing the colorteller URI")?;
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + args.deadline;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let client = client.clone();
        let uri = uri.clone();
        let issued = issued.clone();
        tasks.spawn(async move {
            let mut latencies = traffic::new_histogram();
            while issued.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                let sent = Instant::now();
                let response = client.get(uri.clone()).await?;
                let _body = response.into_body().collect().await?;
                traffic::record_latency(&mut latencies, sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut histogram = traffic::new_histogram();
    while let Some(joined) = tasks.join_next().await {
        let latencies = joined.context("a plain client task panicked")??;
        histogram
            .add(&latencies)
            .context("merging latency histograms")?;
    }
    Ok(Figures {
        replies: histogram.len(),
        elapsed: started.elapsed(),
        latency: traffic::summarize(&histogram),
    })
}

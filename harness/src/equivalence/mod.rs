//! The equivalence gate (`cargo xtask equivalence`): the same workloads brought up twice on the
//! local backend, once configured from each side of a migration (before: Gloo Edge + App Mesh,
//! after: Gateway API + GAMMA), and judged on what each side *did*:
//!
//! 1. **Probes**, compared exactly: requests at the boundaries of every route matcher of both
//!    sides ([`probes::plan_probes`]) go once through each ingress; the status, the reply headers
//!    and what the backend saw (the request echo of `service_kit::RequestEcho`: path, host,
//!    headers, the workload that answered) must be the same.
//! 2. **Weighted routes**, judged statistically on both sides with the split check
//!    ([`crate::stats::SequentialCheck`], α from the run's budget, δ, power) against the same
//!    expected shares, taken from the before side: the edge split by the deployment that
//!    answered, the mesh split by the colorgateway reply's color.
//! 3. **Retries**: every colorteller flakes (`/setFlake`) and the success rate of the same request
//!    is measured on both sides; two exact (Clopper–Pearson) intervals that do not overlap are a
//!    difference.
//! 4. **The drift report**: a difference that the after folder's `drift-report.json` predicts
//!    ([`migrate::DriftReport::predicts`]) is a known drift; any other is a defect of the migration.
//!
//! The harness decides nothing with the routing matcher: the probes only come from the
//! matchers' values, and the verdicts only from the two sides' replies.

pub mod config;
pub mod probes;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migrate::{DriftKind, DriftReport};
use serde::Serialize;

use crate::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use crate::backend::{Backend, BackendError};
use crate::stats::{
    Budget, CheckSettings, SequentialCheck, SequentialState, SplitSpec, SplitVerdict,
};
use crate::traffic::{Connection, RequestTemplate, TrafficRequest};
use config::{RouteInfo, SideConfig, WeightedLabel};
use probes::{FieldDifference, Observation, PlannedProbe, Probe};

/// Why an equivalence run could not be made (a difference is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum EquivalenceError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("the {side} side: {source}")]
    Backend {
        side: Side,
        #[source]
        source: BackendError,
    },
    #[error("the {side} side: request {request}: {message}")]
    Traffic {
        side: Side,
        request: String,
        message: String,
    },
    #[error(transparent)]
    Drift(#[from] migrate::drift::DriftReportError),
    #[error("the split check of {route}: {source}")]
    Stats {
        route: String,
        #[source]
        source: crate::stats::StatsError,
    },
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Before,
    After,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Before => "before",
            Side::After => "after",
        })
    }
}

/// What a run needs.
#[derive(Debug, Clone)]
pub struct EquivalenceSettings {
    pub before: PathBuf,
    pub after: PathBuf,
    /// The workspace binaries (gateway-proxy, the demo services).
    pub bin_dir: PathBuf,
    pub gateway: GatewayCommand,
    /// The family-wise false-alarm budget shared by the run's statistical checks.
    pub budget: Budget,
    pub seed: u64,
    /// The flake rate every colorteller gets for the retry check.
    pub flake_rate: f64,
    /// Requests per side for the retry check.
    pub retry_requests: u64,
}

impl EquivalenceSettings {
    /// The defaults: the run budget 1e-4, flake rate 0.5, 200 requests per side for retries.
    pub fn new(before: PathBuf, after: PathBuf, bin_dir: PathBuf, gateway: GatewayCommand) -> Self {
        Self {
            before,
            after,
            bin_dir,
            gateway,
            budget: Budget::default(),
            seed: 1,
            flake_rate: 0.5,
            retry_requests: 200,
        }
    }
}

/// A probe and what each side did with it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    #[serde(flatten)]
    pub planned: PlannedProbe,
    pub before: Observation,
    pub after: Observation,
    pub differences: Vec<FieldDifference>,
}

/// Where a weighted route splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Layer {
    /// At the ingress; a reply's destination is the deployment that answered.
    Edge,
    /// In the mesh; a reply's destination is the colorgateway reply's color.
    Mesh,
}

/// One weighted route, judged on both sides against the before side's weights.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitResult {
    pub route: String,
    pub layer: Layer,
    pub request: Probe,
    pub expected: Vec<WeightedLabel>,
    pub before: SplitVerdict,
    pub after: SplitVerdict,
    /// Replies that carried no destination (non-2xx, no echo), per side.
    pub unlabelled: (u64, u64),
}

/// A success rate with its exact interval.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub successes: u64,
    pub n: u64,
    pub interval: (f64, f64),
}

/// The retry check: the same request under flaky tellers on both sides.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryResult {
    pub request: Probe,
    pub flake_rate: f64,
    /// The routes that configure retries or timeouts, or imply App Mesh's defaults, per side.
    pub configured: Vec<String>,
    pub before: Rate,
    pub after: Rate,
    /// The intervals' level: each side's interval holds at 1 - alpha/2.
    pub alpha: f64,
}

/// Everything both sides did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    pub before_dir: PathBuf,
    pub after_dir: PathBuf,
    pub gateway: String,
    /// Every route read from each side: (side, flavour, source).
    pub routes: Vec<(Side, config::RouteFlavor, String)>,
    pub probes: Vec<ProbeResult>,
    pub splits: Vec<SplitResult>,
    pub retries: Option<RetryResult>,
    /// Why the retry check did not run, when it did not.
    pub retries_skipped: Option<String>,
    pub per_check_alpha: f64,
    pub family_alpha: f64,
    pub min_detectable_deviation: f64,
    pub power: f64,
    #[serde(with = "millis")]
    pub startup: Duration,
    #[serde(with = "millis")]
    pub elapsed: Duration,
    pub requests: u64,
}

mod millis {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// A started side.
struct Running {
    side: Side,
    backend: LocalBackend,
    base: url::Url,
}

impl Running {
    async fn start(
        side: Side,
        dir: &Path,
        config: &SideConfig,
        settings: &EquivalenceSettings,
    ) -> Result<Self, EquivalenceError> {
        let wrap = |source| EquivalenceError::Backend { side, source };
        let local = LocalConfig {
            bin_dir: settings.bin_dir.clone(),
            gateway: settings.gateway.clone(),
            manifests_dir: dir.to_owned(),
            work_dir: None,
            seed: settings
                .seed
                .wrapping_add(if side == Side::Before { 0 } else { 1000 }),
            echo_requests: true,
        };
        let mut backend = LocalBackend::start(local).await.map_err(wrap)?;
        let applied = backend.apply(&[PathBuf::from(".")]).await.map_err(wrap)?;
        let namespaces: std::collections::BTreeSet<String> = config
            .resources
            .deployments()
            .map(|(l, _)| {
                l.resource
                    .key()
                    .namespace
                    .unwrap_or_else(|| "default".into())
            })
            .collect();
        for namespace in namespaces {
            backend
                .wait(
                    &crate::scenario::WaitCondition::Rollout { namespace },
                    Duration::from_secs(60),
                )
                .await
                .map_err(wrap)?;
        }
        backend
            .wait_config_live(&applied, Duration::from_secs(30))
            .await
            .map_err(wrap)?;
        let base = backend.proxy_url().await.map_err(wrap)?;
        Ok(Self {
            side,
            backend,
            base,
        })
    }

    fn request(&self, probe: &Probe) -> TrafficRequest {
        TrafficRequest {
            base: self.base.clone(),
            path_and_query: probe.path.clone(),
            method: probe.method.parse().unwrap_or(http::Method::GET),
            host: probe.host.clone(),
            headers: probe
                .headers
                .iter()
                .filter_map(|(n, v)| {
                    Some((
                        http::HeaderName::from_bytes(n.as_bytes()).ok()?,
                        http::HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect(),
        }
    }

    fn address(&self) -> Result<std::net::SocketAddr, EquivalenceError> {
        let host = self.base.host_str().unwrap_or("127.0.0.1");
        let port = self.base.port_or_known_default().unwrap_or(80);
        format!("{host}:{port}")
            .parse()
            .map_err(|e: std::net::AddrParseError| EquivalenceError::Traffic {
                side: self.side,
                request: self.base.to_string(),
                message: e.to_string(),
            })
    }

    /// Sends one probe on a fresh connection.
    async fn send(
        &self,
        probe: &Probe,
    ) -> Result<Result<crate::traffic::Response, String>, EquivalenceError> {
        let template =
            RequestTemplate::new(&self.request(probe)).map_err(|e| EquivalenceError::Traffic {
                side: self.side,
                request: probe.describe(),
                message: e.to_string(),
            })?;
        let address = self.address()?;
        let attempt = async {
            let mut connection = Connection::open(address).await.map_err(|e| e.to_string())?;
            connection.send(&template).await.map_err(|e| e.to_string())
        };
        Ok(tokio::time::timeout(Duration::from_secs(20), attempt)
            .await
            .unwrap_or_else(|_| Err("no reply within 20s".into())))
    }

    /// Sends `probe` over `connections` keep-alive connections until `enough` says so or
    /// `max` replies came; hands each reply to `observe`.
    async fn drive(
        &self,
        probe: &Probe,
        max: u64,
        mut observe: impl FnMut(Result<&crate::traffic::Response, String>) -> bool,
    ) -> Result<u64, EquivalenceError> {
        let template =
            RequestTemplate::new(&self.request(probe)).map_err(|e| EquivalenceError::Traffic {
                side: self.side,
                request: probe.describe(),
                message: e.to_string(),
            })?;
        let address = self.address()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let stop = tokio_util_stop();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let tx = tx.clone();
            let template = template.clone();
            let stop = stop.clone();
            workers.spawn(async move {
                let mut connection: Option<Connection> = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if connection.as_ref().is_none_or(Connection::is_closed) {
                        connection = Connection::open(address).await.ok();
                    }
                    let reply = match connection.as_mut() {
                        Some(c) => c.send(&template).await.map_err(|e| e.to_string()),
                        None => Err("cannot connect".to_owned()),
                    };
                    if reply.is_err() {
                        connection = None;
                    }
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Some(reply) = rx.recv().await {
            n += 1;
            let done = !observe(reply.as_ref().map_err(Clone::clone))
                || n >= max
                || Instant::now() > deadline;
            if done {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        drop(rx);
        workers.shutdown().await;
        Ok(n)
    }

    /// Sets every colorteller pod's flake rate (503s).
    async fn set_flake(&self, tellers: &[String], rate: f64) -> Result<(), EquivalenceError> {
        for (namespace, deployment, pod, addr) in self.backend.pods() {
            if !tellers.contains(&format!("{namespace}/{deployment}")) {
                continue;
            }
            let base = url::Url::parse(&format!("http://{addr}")).map_err(|e| {
                EquivalenceError::Traffic {
                    side: self.side,
                    request: format!("{pod} /setFlake"),
                    message: e.to_string(),
                }
            })?;
            let request = TrafficRequest {
                base,
                path_and_query: format!("/setFlake?rate={rate}&code=503"),
                method: http::Method::GET,
                host: None,
                headers: Vec::new(),
            };
            let template =
                RequestTemplate::new(&request).map_err(|e| EquivalenceError::Traffic {
                    side: self.side,
                    request: format!("{pod} /setFlake"),
                    message: e.to_string(),
                })?;
            let reply = async {
                let mut c = Connection::open(addr).await.map_err(|e| e.to_string())?;
                c.send(&template).await.map_err(|e| e.to_string())
            }
            .await;
            match reply {
                Ok(r) if r.status.is_success() => {}
                Ok(r) => {
                    return Err(EquivalenceError::Traffic {
                        side: self.side,
                        request: format!("{pod} /setFlake"),
                        message: format!("status {}", r.status),
                    });
                }
                Err(message) => {
                    return Err(EquivalenceError::Traffic {
                        side: self.side,
                        request: format!("{pod} /setFlake"),
                        message,
                    });
                }
            }
        }
        Ok(())
    }
}

fn tokio_util_stop() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

/// The served-by classes: the deployments a weighted edge route of either side splits over
/// share one class name (`a|b`), so a probe compares the class and the split check the shares.
fn served_by_classes(routes: &[&RouteInfo]) -> BTreeMap<String, String> {
    let mut groups: Vec<std::collections::BTreeSet<String>> = Vec::new();
    for route in routes
        .iter()
        .filter(|r| r.flavor.is_edge() && r.deployments.len() > 1)
    {
        let mut merged = route.deployments.clone();
        groups.retain(|g| {
            if g.is_disjoint(&merged) {
                true
            } else {
                merged.extend(g.iter().cloned());
                false
            }
        });
        groups.push(merged);
    }
    let mut classes = BTreeMap::new();
    for group in groups {
        let name = group.iter().cloned().collect::<Vec<_>>().join("|");
        for member in group {
            classes.insert(member, name.clone());
        }
    }
    classes
}

/// Brings both sides up, sends the probes, judges the weighted routes and the retries on both
/// sides, and tears everything down.
pub async fn observe(settings: &EquivalenceSettings) -> Result<Observations, EquivalenceError> {
    let started = Instant::now();
    let before_config = SideConfig::load(&settings.before)?;
    let after_config = SideConfig::load(&settings.after)?;
    let all_routes: Vec<&RouteInfo> = before_config
        .routes
        .iter()
        .chain(after_config.routes.iter())
        .collect();
    let classes = served_by_classes(&all_routes);
    let planned = probes::plan_probes(&all_routes);

    let (before, after) = tokio::join!(
        Running::start(Side::Before, &settings.before, &before_config, settings),
        Running::start(Side::After, &settings.after, &after_config, settings)
    );
    let (mut before, mut after) = (before?, after?);
    let startup = started.elapsed();
    let result = exercise(
        settings,
        &before_config,
        &after_config,
        &classes,
        planned,
        &before,
        &after,
    )
    .await;
    let _ = before.backend.shutdown().await;
    let _ = after.backend.shutdown().await;
    let (probes, splits, retries, retries_skipped, requests, check) = result?;
    Ok(Observations {
        before_dir: settings.before.clone(),
        after_dir: settings.after.clone(),
        gateway: settings.gateway.program.display().to_string(),
        routes: before_config
            .routes
            .iter()
            .map(|r| (Side::Before, r.flavor, r.source.clone()))
            .chain(
                after_config
                    .routes
                    .iter()
                    .map(|r| (Side::After, r.flavor, r.source.clone())),
            )
            .collect(),
        probes,
        splits,
        retries,
        retries_skipped,
        per_check_alpha: check.alpha,
        family_alpha: settings.budget.family_alpha,
        min_detectable_deviation: check.min_detectable_deviation,
        power: check.power,
        startup,
        elapsed: started.elapsed(),
        requests,
    })
}

type Exercised = (
    Vec<ProbeResult>,
    Vec<SplitResult>,
    Option<RetryResult>,
    Option<String>,
    u64,
    CheckSettings,
);

async fn exercise(
    settings: &EquivalenceSettings,
    before_config: &SideConfig,
    after_config: &SideConfig,
    classes: &BTreeMap<String, String>,
    planned: Vec<PlannedProbe>,
    before: &Running,
    after: &Running,
) -> Result<Exercised, EquivalenceError> {
    let mut requests = 0;
    // 1. Probes.
    let mut results = Vec::new();
    for probe in planned {
        let (b, a) = tokio::join!(before.send(&probe.probe), after.send(&probe.probe));
        let (b, a) = (b?, a?);
        requests += 2;
        let b = probes::observe(b.as_ref().map_err(Clone::clone), classes);
        let a = probes::observe(a.as_ref().map_err(Clone::clone), classes);
        let differences = probes::compare(&b, &a);
        results.push(ProbeResult {
            planned: probe,
            before: b,
            after: a,
            differences,
        });
    }
    // The request that reaches a colorgateway on the before side: the mesh split and the retry
    // check go through it.
    let color_request = results
        .iter()
        .find(|r| {
            r.before.status == "200"
                && r.before.served_by.is_some()
                && r.planned.probe.method == "GET"
        })
        .map(|r| r.planned.probe.clone());

    // 2. Weighted routes, from the before side.
    let mut wanted: Vec<(&RouteInfo, Layer, Probe)> = Vec::new();
    for route in before_config
        .routes
        .iter()
        .filter(|r| !r.weighted.is_empty())
    {
        if route.flavor.is_edge() {
            let mut probe = Probe {
                method: "GET".into(),
                host: route.a_host(),
                path: route.base_path(),
                headers: BTreeMap::new(),
            };
            if let Some(rule) = route.matches.first() {
                for (name, value) in &rule.headers {
                    probe.headers.insert(
                        name.clone(),
                        value.clone().unwrap_or_else(|| "colormesh".into()),
                    );
                }
                if let Some(m) = rule.methods.first() {
                    probe.method = m.to_ascii_uppercase();
                }
            }
            wanted.push((route, Layer::Edge, probe));
        } else if let Some(request) = &color_request {
            wanted.push((route, Layer::Mesh, request.clone()));
        }
    }
    let tellers = before_config.tellers();
    let run_retries = color_request.is_some() && !tellers.is_empty();
    let n_checks = 2 * wanted.len() + usize::from(run_retries);
    let check = CheckSettings::within_budget(&settings.budget, n_checks.max(1));
    let mut splits = Vec::new();
    for (route, layer, request) in wanted {
        let spec = SplitSpec::new(route.weighted.iter().map(|w| (w.label.clone(), w.weight)));
        let fresh =
            SequentialCheck::new(&spec, &check).map_err(|source| EquivalenceError::Stats {
                route: route.source.clone(),
                source,
            })?;
        let (b, a) = tokio::join!(
            split_side(before, &request, layer, fresh.restart()),
            split_side(after, &request, layer, fresh.restart())
        );
        let ((bv, bu, bn), (av, au, an)) = (b?, a?);
        requests += bn + an;
        splits.push(SplitResult {
            route: route.source.clone(),
            layer,
            request,
            expected: route.weighted.clone(),
            before: bv,
            after: av,
            unlabelled: (bu, au),
        });
    }
    // 3. Retries under flaky tellers.
    let mut retries = None;
    let mut retries_skipped = None;
    match (&color_request, run_retries) {
        (Some(request), true) => {
            let configured: Vec<String> = before_config
                .routes
                .iter()
                .map(|r| ("before", r))
                .chain(after_config.routes.iter().map(|r| ("after", r)))
                .filter(|(_, r)| {
                    r.retry.is_some()
                        || r.timeout.is_some()
                        || r.flavor == config::RouteFlavor::AppMesh
                })
                .map(|(side, r)| {
                    format!(
                        "{side}: {} — retry: {}; timeout: {}",
                        r.source,
                        r.retry
                            .as_deref()
                            .unwrap_or(if r.flavor == config::RouteFlavor::AppMesh {
                                "none (App Mesh's implicit default)"
                            } else {
                                "none"
                            }),
                        r.timeout.as_deref().unwrap_or("default")
                    )
                })
                .collect();
            let after_tellers = after_config.tellers();
            before.set_flake(&tellers, settings.flake_rate).await?;
            after.set_flake(&after_tellers, settings.flake_rate).await?;
            let (b, a) = tokio::join!(
                success_rate(before, request, settings.retry_requests, check.alpha),
                success_rate(after, request, settings.retry_requests, check.alpha)
            );
            before.set_flake(&tellers, 0.0).await?;
            after.set_flake(&after_tellers, 0.0).await?;
            let (b, a) = (b?, a?);
            requests += b.n + a.n;
            retries = Some(RetryResult {
                request: request.clone(),
                flake_rate: settings.flake_rate,
                configured,
                before: b,
                after: a,
                alpha: check.alpha,
            });
        }
        (None, _) => {
            retries_skipped = Some("no probe reached a backend with 200 on the before side".into())
        }
        (Some(_), false) => {
            retries_skipped = Some("the before side runs no colorteller to make flaky".into())
        }
    }
    Ok((results, splits, retries, retries_skipped, requests, check))
}

/// The destination of one reply for a split: the deployment that answered (edge) or the color of
/// a colorgateway reply (mesh).
fn label(reply: &crate::traffic::Response, layer: Layer) -> Option<String> {
    if !reply.status.is_success() {
        return None;
    }
    match layer {
        Layer::Edge => reply
            .headers
            .get(service_kit::SERVED_BY)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        Layer::Mesh => colorgateway::parse_reply(&String::from_utf8_lossy(&reply.body))
            .ok()
            .map(|r| r.color),
    }
}

async fn split_side(
    side: &Running,
    request: &Probe,
    layer: Layer,
    mut check: SequentialCheck,
) -> Result<(SplitVerdict, u64, u64), EquivalenceError> {
    let cap = check.plan().sequential_cap;
    let mut unlabelled = 0;
    let sent = side
        .drive(request, cap * 2, |reply| {
            match reply.ok().and_then(|r| label(r, layer)) {
                Some(destination) => check.observe(&destination) == SequentialState::Continue,
                None => {
                    unlabelled += 1;
                    // A route that mostly fails is not split: stop early.
                    unlabelled < 50
                }
            }
        })
        .await?;
    Ok((check.verdict(), unlabelled, sent))
}

async fn success_rate(
    side: &Running,
    request: &Probe,
    n: u64,
    alpha: f64,
) -> Result<Rate, EquivalenceError> {
    let mut successes = 0;
    let sent = side
        .drive(request, n, |reply| {
            if reply.is_ok_and(|r| r.status.is_success()) {
                successes += 1;
            }
            true
        })
        .await?;
    Ok(Rate {
        successes,
        n: sent,
        interval: crate::stats::clopper_pearson(successes, sent, alpha / 2.0),
    })
}

/// Where a difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Area {
    Probe,
    Split,
    Retry,
}

/// One difference between the sides, and whether the drift report announced it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub area: Area,
    /// The route it was found on (the route's source).
    pub route: String,
    pub summary: String,
    /// Example requests.
    pub examples: Vec<String>,
    /// The drift items that predicted it (ids); empty: unpredicted.
    pub predicted_by: Vec<String>,
}

impl Difference {
    pub fn predicted(&self) -> bool {
        !self.predicted_by.is_empty()
    }
}

/// The verdict of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EquivalenceReport {
    pub observations: Observations,
    pub drift_report: Option<PathBuf>,
    pub strict: bool,
    pub differences: Vec<Difference>,
    /// Probes that behaved the same on both sides.
    pub probes_same: usize,
    pub passed: bool,
}

impl EquivalenceReport {
    pub fn predicted(&self) -> usize {
        self.differences.iter().filter(|d| d.predicted()).count()
    }

    pub fn unpredicted(&self) -> usize {
        self.differences.len() - self.predicted()
    }
}

fn predictions(
    drift: Option<&DriftReport>,
    kinds: &[Option<DriftKind>],
    probe: &Probe,
) -> Vec<String> {
    let Some(drift) = drift else {
        return Vec::new();
    };
    let host = probe.host.clone().unwrap_or_default();
    let mut ids: Vec<String> = kinds
        .iter()
        .flat_map(|kind| {
            drift
                .predicts(
                    *kind,
                    &probe.method,
                    &host,
                    probe.path_only(),
                    &probe.headers,
                )
                .map(|item| item.id.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Judges what both sides did against the drift report (if any): every difference is listed,
/// predicted or not; the run passes when every one was predicted (`strict`: when there is none).
pub fn judge(
    observations: Observations,
    drift: Option<(&DriftReport, PathBuf)>,
    strict: bool,
) -> EquivalenceReport {
    let report = drift.as_ref().map(|(r, _)| *r);
    let mut differences = Vec::new();
    let mut probes_same = 0;
    for probe in &observations.probes {
        if probe.differences.is_empty() {
            probes_same += 1;
            continue;
        }
        let fields: Vec<String> = probe
            .differences
            .iter()
            .map(|d| {
                format!(
                    "{}: {} → {}",
                    d.field,
                    d.before.escape_debug(),
                    d.after.escape_debug()
                )
            })
            .collect();
        differences.push(Difference {
            area: Area::Probe,
            route: probe.planned.route.clone(),
            summary: format!("{} ({})", probe.planned.purpose, fields.join("; ")),
            examples: vec![probe.planned.probe.describe()],
            predicted_by: predictions(report, &[None], &probe.planned.probe),
        });
    }
    for split in &observations.splits {
        use crate::stats::Outcome;
        if split.before.outcome == Outcome::Pass && split.after.outcome == Outcome::Pass {
            continue;
        }
        let shares = |v: &SplitVerdict| {
            v.destinations
                .iter()
                .map(|d| {
                    format!(
                        "{} {:.1}% [{:.1}, {:.1}]",
                        d.name,
                        d.observed_share * 100.0,
                        d.interval.0 * 100.0,
                        d.interval.1 * 100.0
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let expected = split
            .expected
            .iter()
            .map(|w| format!("{} {}", w.label, w.weight))
            .collect::<Vec<_>>()
            .join("/");
        differences.push(Difference {
            area: Area::Split,
            route: split.route.clone(),
            summary: format!(
                "weights {expected}: before {:?} after {} requests ({}), after {:?} after {} requests ({})",
                split.before.outcome,
                split.before.n,
                shares(&split.before),
                split.after.outcome,
                split.after.n,
                shares(&split.after)
            ),
            examples: vec![split.request.describe()],
            predicted_by: predictions(report, &[Some(DriftKind::Weights)], &split.request),
        });
    }
    if let Some(retry) = &observations.retries {
        let disjoint = retry.before.interval.1 < retry.after.interval.0
            || retry.after.interval.1 < retry.before.interval.0;
        if disjoint {
            let rate = |r: &Rate| {
                format!(
                    "{}/{} succeeded [{:.1}%, {:.1}%]",
                    r.successes,
                    r.n,
                    r.interval.0 * 100.0,
                    r.interval.1 * 100.0
                )
            };
            differences.push(Difference {
                area: Area::Retry,
                route: retry.configured.join("\n"),
                summary: format!(
                    "under tellers failing {:.0}% of calls with 503: before {}, after {}",
                    retry.flake_rate * 100.0,
                    rate(&retry.before),
                    rate(&retry.after)
                ),
                examples: vec![retry.request.describe()],
                predicted_by: predictions(
                    report,
                    &[
                        Some(DriftKind::Retry),
                        Some(DriftKind::ImplicitDefault),
                        Some(DriftKind::Timeout),
                    ],
                    &retry.request,
                ),
            });
        }
    }
    let passed = if strict {
        differences.is_empty()
    } else {
        differences.iter().all(Difference::predicted)
    };
    EquivalenceReport {
        observations,
        drift_report: drift.map(|(_, p)| p),
        strict,
        differences,
        probes_same,
        passed,
    }
}

/// [`observe`] then [`judge`] with the after folder's drift report, if it has one.
pub async fn run(
    settings: &EquivalenceSettings,
    strict: bool,
) -> Result<EquivalenceReport, EquivalenceError> {
    let drift = DriftReport::read_from(&settings.after)?;
    let observations = observe(settings).await?;
    let path = settings.after.join(migrate::drift::DRIFT_REPORT_FILE);
    Ok(judge(
        observations,
        drift.as_ref().map(|d| (d, path)),
        strict,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate::{DriftItem, Mapping, RequestPattern};

    fn probe_result(path: &str, differs: bool) -> ProbeResult {
        let before = Observation {
            status: "404".into(),
            seen_path: Some("/colorful".into()),
            ..Observation::default()
        };
        let after = if differs {
            Observation {
                status: "404".into(),
                ..Observation::default()
            }
        } else {
            before.clone()
        };
        let differences = probes::compare(&before, &after);
        ProbeResult {
            planned: PlannedProbe {
                probe: Probe {
                    method: "GET".into(),
                    host: None,
                    path: path.into(),
                    headers: BTreeMap::new(),
                },
                purpose: "test".into(),
                route: "vs".into(),
                also_from: Vec::new(),
            },
            before,
            after,
            differences,
        }
    }

    fn observations(probes: Vec<ProbeResult>, retry: Option<(u64, u64)>) -> Observations {
        let rate = |successes| Rate {
            successes,
            n: 200,
            interval: crate::stats::clopper_pearson(successes, 200, 1e-5),
        };
        Observations {
            before_dir: "before".into(),
            after_dir: "after".into(),
            gateway: "gateway-proxy".into(),
            routes: Vec::new(),
            probes,
            splits: Vec::new(),
            retries: retry.map(|(b, a)| RetryResult {
                request: Probe::default_get(),
                flake_rate: 0.5,
                configured: Vec::new(),
                before: rate(b),
                after: rate(a),
                alpha: 2e-5,
            }),
            retries_skipped: None,
            per_check_alpha: 2e-5,
            family_alpha: 1e-4,
            min_detectable_deviation: 0.05,
            power: 0.99,
            startup: Duration::ZERO,
            elapsed: Duration::ZERO,
            requests: 0,
        }
    }

    fn drift() -> DriftReport {
        DriftReport {
            sources: Vec::new(),
            target: "gateway-api".into(),
            items: vec![DriftItem {
                id: "prefixMatch:vs".into(),
                kind: DriftKind::PrefixMatch,
                mapping: Mapping::Approximate,
                source: "vs".into(),
                target: None,
                description: String::new(),
                affects: vec![RequestPattern::glued_to_prefix("/appmesh/color").expect("pattern")],
                examples: Vec::new(),
                before: None,
                after: None,
            }],
        }
    }

    #[test]
    fn predicted_differences_pass_unless_strict_and_others_fail() {
        let probes = vec![
            probe_result("/appmesh/colorful", true),
            probe_result("/appmesh/color", false),
        ];
        let drift = drift();
        let with = judge(
            observations(probes.clone(), None),
            Some((&drift, "d".into())),
            false,
        );
        assert!(with.passed);
        assert_eq!(
            (with.predicted(), with.unpredicted(), with.probes_same),
            (1, 0, 1)
        );
        assert!(
            !judge(
                observations(probes.clone(), None),
                Some((&drift, "d".into())),
                true
            )
            .passed
        );
        let without = judge(observations(probes, None), None, false);
        assert!(!without.passed);
        assert_eq!(without.unpredicted(), 1);

        // An unpredicted probe difference outside the pattern fails even with the report.
        let other = judge(
            observations(vec![probe_result("/appmesh/color/x", true)], None),
            Some((&drift, "d".into())),
            false,
        );
        assert!(!other.passed);
    }

    #[test]
    fn success_rates_differ_only_when_their_intervals_are_apart() {
        let same = judge(observations(Vec::new(), Some((100, 104))), None, false);
        assert!(same.passed, "{:?}", same.differences);
        let dropped = judge(observations(Vec::new(), Some((175, 100))), None, false);
        assert!(!dropped.passed);
        assert_eq!(dropped.differences[0].area, Area::Retry);
    }

    #[test]
    fn weighted_edge_routes_make_one_served_by_class() {
        let route = |deployments: &[&str]| RouteInfo {
            flavor: config::RouteFlavor::Gloo,
            source: "vs".into(),
            matches: Vec::new(),
            hosts: Vec::new(),
            weighted: Vec::new(),
            deployments: deployments.iter().map(|d| (*d).to_owned()).collect(),
            retry: None,
            timeout: None,
            shortest_timeout: None,
        };
        let (a, b, c) = (
            route(&["ns/a", "ns/b"]),
            route(&["ns/b", "ns/c"]),
            route(&["ns/d"]),
        );
        let classes = served_by_classes(&[&a, &b, &c]);
        assert_eq!(classes["ns/a"], "ns/a|ns/b|ns/c");
        assert_eq!(classes["ns/c"], "ns/a|ns/b|ns/c");
        assert!(!classes.contains_key("ns/d"));
    }
}

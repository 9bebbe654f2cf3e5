//! Prometheus metrics with handles resolved when a snapshot is installed, so that the request
//! path only touches atomics: no label hashing, no registry lock, no allocation.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use routing::table::{RouteAction, RouteTable};

/// Labels of `gateway_requests_total`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    virtual_host: String,
    route: String,
    cluster: String,
    code: u32,
}

/// Labels of `gateway_upstream_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ClusterLabels {
    cluster: String,
}

/// The process-wide registry and metric families; survives reloads.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_latency: Family<ClusterLabels, LatencyHistogram, NewLatencyHistogram>,
    no_virtual_host: Arc<CodeCounters>,
    passthrough: Arc<DestinationMetrics>,
    /// The series of the table installed last: `(virtual host, route, cluster)` of
    /// `gateway_requests_total` and the clusters of the latency histogram. A table that drops one
    /// drops its series (`/metrics` would otherwise grow with every upstream ever seen).
    live: Mutex<LiveSeries>,
}

#[derive(Debug, Default)]
struct LiveSeries {
    requests: BTreeSet<(String, String, String)>,
    clusters: BTreeSet<String>,
}

impl LiveSeries {
    fn of(table: &RouteTable) -> Self {
        let mut live = Self::default();
        for virtual_host in table.virtual_hosts() {
            let name = &virtual_host.name;
            live.requests
                .insert((name.clone(), String::new(), String::new()));
            for route in &virtual_host.routes {
                live.requests
                    .insert((name.clone(), route.name.clone(), String::new()));
                if let RouteAction::Forward(forward) = &route.action {
                    for (cluster, _) in forward.destinations.iter() {
                        live.requests.insert((
                            name.clone(),
                            route.name.clone(),
                            cluster.name.clone(),
                        ));
                        live.clusters.insert(cluster.name.clone());
                    }
                }
            }
        }
        live
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let upstream_latency = Family::new_with_constructor(NewLatencyHistogram);
        registry.register(
            "gateway_requests",
            "Downstream requests answered, by virtual host, route, upstream cluster and status code",
            requests.clone(),
        );
        registry.register(
            "gateway_upstream_request_duration_seconds",
            "Time from sending a request upstream to receiving its response headers, per try",
            upstream_latency.clone(),
        );
        let mut metrics = Self {
            registry,
            requests,
            upstream_latency,
            no_virtual_host: Arc::new(CodeCounters::default()),
            passthrough: Arc::new(DestinationMetrics::default()),
            live: Mutex::new(LiveSeries::default()),
        };
        metrics.no_virtual_host = Arc::new(metrics.code_counters("", "", ""));
        metrics.passthrough = Arc::new(metrics.destination("", "passthrough", "passthrough"));
        metrics
    }

    /// Prometheus text exposition.
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Removes the series of the last table that `table` no longer has (routes, clusters gone).
    fn forget_all_but(&self, table: &RouteTable) {
        let now = LiveSeries::of(table);
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (virtual_host, route, cluster) in live.requests.difference(&now.requests) {
            // Codes are not tracked per series; every status code a response can have is tried.
            for code in 100..1000 {
                self.requests.remove(&RequestLabels {
                    virtual_host: virtual_host.clone(),
                    route: route.clone(),
                    cluster: cluster.clone(),
                    code,
                });
            }
        }
        for cluster in live.clusters.difference(&now.clusters) {
            if cluster != "passthrough" {
                self.upstream_latency.remove(&ClusterLabels {
                    cluster: cluster.clone(),
                });
            }
        }
        *live = now;
    }

    /// Resolves the handles every route of `table` will use, and removes the series of routes
    /// and clusters the previous table had and this one has not.
    pub(crate) fn for_table(&self, table: &RouteTable) -> SnapshotMetrics {
        self.forget_all_but(table);
        let virtual_hosts = table
            .virtual_hosts()
            .iter()
            .map(|virtual_host| VirtualHostMetrics {
                no_route: self.code_counters(&virtual_host.name, "", ""),
                routes: virtual_host
                    .routes
                    .iter()
                    .map(|route| match &route.action {
                        RouteAction::Forward(forward) => RouteMetrics {
                            direct: self.code_counters(&virtual_host.name, &route.name, ""),
                            destinations: forward
                                .destinations
                                .iter()
                                .map(|(cluster, _)| {
                                    self.destination(&virtual_host.name, &route.name, &cluster.name)
                                })
                                .collect(),
                        },
                        RouteAction::Respond { .. } | RouteAction::Redirect(_) => RouteMetrics {
                            direct: self.code_counters(&virtual_host.name, &route.name, ""),
                            destinations: Vec::new(),
                        },
                    })
                    .collect(),
            })
            .collect();
        SnapshotMetrics {
            virtual_hosts,
            no_virtual_host: Arc::clone(&self.no_virtual_host),
            passthrough: Arc::clone(&self.passthrough),
        }
    }

    fn destination(&self, virtual_host: &str, route: &str, cluster: &str) -> DestinationMetrics {
        DestinationMetrics {
            requests: self.code_counters(virtual_host, route, cluster),
            latency: self.upstream_latency.get_or_create_owned(&ClusterLabels {
                cluster: cluster.to_owned(),
            }),
        }
    }

    fn code_counters(&self, virtual_host: &str, route: &str, cluster: &str) -> CodeCounters {
        CodeCounters {
            family: Some(self.requests.clone()),
            labels: RequestLabels {
                virtual_host: virtual_host.to_owned(),
                route: route.to_owned(),
                cluster: cluster.to_owned(),
                code: 0,
            },
            common: Default::default(),
        }
    }
}

/// Handles for one snapshot, indexed like its table.
#[derive(Debug, Default)]
pub(crate) struct SnapshotMetrics {
    virtual_hosts: Vec<VirtualHostMetrics>,
    no_virtual_host: Arc<CodeCounters>,
    passthrough: Arc<DestinationMetrics>,
}

impl SnapshotMetrics {
    pub(crate) fn route(&self, virtual_host: usize, route: usize) -> Option<&RouteMetrics> {
        self.virtual_hosts.get(virtual_host)?.routes.get(route)
    }

    pub(crate) fn no_route(&self, virtual_host: usize) -> &CodeCounters {
        self.virtual_hosts
            .get(virtual_host)
            .map_or(&self.no_virtual_host, |metrics| &metrics.no_route)
    }

    pub(crate) fn no_virtual_host(&self) -> &CodeCounters {
        &self.no_virtual_host
    }

    pub(crate) fn passthrough(&self) -> &DestinationMetrics {
        &self.passthrough
    }
}

#[derive(Debug)]
struct VirtualHostMetrics {
    no_route: CodeCounters,
    routes: Vec<RouteMetrics>,
}

#[derive(Debug)]
pub(crate) struct RouteMetrics {
    /// Answers not attributable to a destination (direct responses).
    pub(crate) direct: CodeCounters,
    /// Indexed like the route's weighted destinations.
    pub(crate) destinations: Vec<DestinationMetrics>,
}

#[derive(Debug, Default)]
pub(crate) struct DestinationMetrics {
    pub(crate) requests: CodeCounters,
    pub(crate) latency: LatencyHistogram,
}

/// Status codes that get a lazily resolved, lock-free slot; others go through the family.
const COMMON_CODES: [u16; 24] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 429,
    500, 501, 502, 503, 504,
];

/// Request counters for one (virtual host, route, cluster), one per status code.
#[derive(Debug, Default)]
pub(crate) struct CodeCounters {
    family: Option<Family<RequestLabels, Counter>>,
    labels: RequestLabels,
    common: [OnceLock<Counter>; COMMON_CODES.len()],
}

impl CodeCounters {
    pub(crate) fn record(&self, code: u16) {
        let Some(family) = &self.family else { return };
        let labels_for = |code: u16| RequestLabels {
            code: u32::from(code),
            ..self.labels.clone()
        };
        match COMMON_CODES.iter().position(|&common| common == code) {
            Some(slot) => self.common[slot]
                .get_or_init(|| family.get_or_create_owned(&labels_for(code)))
                .inc(),
            None => family.get_or_create(&labels_for(code)).inc(),
        };
    }
}

/// Upper bounds of the latency buckets, in seconds: 100 µs doubling up to ~6.5 s.
const LATENCY_BUCKETS: [f64; 17] = {
    let mut bounds = [0.0; 17];
    let mut bound = 0.000_1;
    let mut index = 0;
    while index < bounds.len() {
        bounds[index] = bound;
        bound *= 2.0;
        index += 1;
    }
    bounds
};

/// A classic histogram made of atomics (prometheus-client's own takes a mutex per observation).
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyHistogram {
    inner: Arc<LatencyHistogramInner>,
}

#[derive(Debug, Default)]
struct LatencyHistogramInner {
    /// One per bound, plus the `+Inf` overflow bucket; not cumulative.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS.partition_point(|&bound| bound < seconds);
        self.inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(
                self.inner
                    .buckets
                    .iter()
                    .map(|count| count.load(Ordering::Relaxed)),
            )
            .collect();
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let count = self.inner.count.load(Ordering::Relaxed);
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NewLatencyHistogram;

impl MetricConstructor<LatencyHistogram> for NewLatencyHistogram {
    fn new_metric(&self) -> LatencyHistogram {
        LatencyHistogram::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_buckets_are_cumulative_in_the_exposition() {
        let metrics = Metrics::new();
        let histogram = metrics
            .upstream_latency
            .get_or_create_owned(&ClusterLabels {
                cluster: "blue".to_owned(),
            });
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_micros(150));
        histogram.observe(Duration::from_secs(60));
        assert_eq!(histogram.count(), 3);
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains(
                r#"gateway_upstream_request_duration_seconds_bucket{le="0.0001",cluster="blue"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"gateway_upstream_request_duration_seconds_bucket{le="0.0002",cluster="blue"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"gateway_upstream_request_duration_seconds_bucket{le="+Inf",cluster="blue"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"gateway_upstream_request_duration_seconds_count{cluster="blue"} 3"#),
            "{text}"
        );
    }

    #[test]
    fn common_and_uncommon_codes_are_counted_under_their_labels() {
        let metrics = Metrics::new();
        let counters = metrics.code_counters("vh", "r0", "blue");
        counters.record(200);
        counters.record(200);
        counters.record(418);
        let text = metrics.encode().expect("encode");
        assert!(text.contains(r#"gateway_requests_total{virtual_host="vh",route="r0",cluster="blue",code="200"} 2"#), "{text}");
        assert!(text.contains(r#"gateway_requests_total{virtual_host="vh",route="r0",cluster="blue",code="418"} 1"#), "{text}");
    }

    #[test]
    fn the_series_of_a_removed_upstream_are_removed() {
        use routing::table::{
            Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, Route,
            RouteMatcher, VirtualHost, WeightedClusters,
        };
        let table_to = |cluster: &str| {
            let cluster = Arc::new(Cluster::new(cluster.to_owned(), Vec::new()));
            let action = ForwardAction {
                destinations: WeightedClusters::new(vec![(cluster, 1)]).expect("weights"),
                rewrite: PathRewrite::None,
                timeout: None,
                retry: None,
                request_headers: HeaderEdits::default(),
                response_headers: HeaderEdits::default(),
                host_rewrite: None,
            };
            RouteTable::new(
                vec![VirtualHost {
                    name: "vh".to_owned(),
                    domains: vec!["*".to_owned()],
                    routes: vec![Route {
                        name: format!("route-{}", action.destinations.iter().count()),
                        matcher: RouteMatcher::path(PathMatcher::Prefix("/".to_owned())),
                        action: RouteAction::Forward(action),
                    }],
                }],
                Fallback::NotFound,
            )
            .expect("table")
        };
        let metrics = Metrics::new();
        let old = metrics.for_table(&table_to("old-upstream"));
        let destination = &old.route(0, 0).expect("route").destinations[0];
        destination.requests.record(200);
        destination.requests.record(503);
        destination.latency.observe(Duration::from_millis(1));
        assert!(metrics.encode().expect("encode").contains("old-upstream"));
        let _new = metrics.for_table(&table_to("new-upstream"));
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("old-upstream"), "{text}");
    }
}

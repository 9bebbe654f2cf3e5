//! The faults, each defined by what it does to one pick or one rewrite.

use std::fmt;

use std::collections::BTreeMap;

use rand::RngCore;
use routing::table::{PathMatcher, PathRewrite, RouteAction, RouteTable, WeightedClusters};

/// One fault of the ingress data plane. Every mutation but [`Mutation::None`] breaks a promise the
/// walkthrough relies on; the harness must fail each of them every time.
///
/// Picks follow Envoy's weighted-cluster algorithm unless a mutation says otherwise: a uniformly
/// random `r`, `selected = r % total`, and destination `i` owns the interval
/// `[w_1 + … + w_{i-1}, w_1 + … + w_i)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum Mutation {
    /// The control: the correct algorithm, picked independently per request with
    /// gateway-proxy's own [`WeightedClusters::pick_index`].
    None,
    /// Weights ignored: every listed destination is equally likely, zero-weight ones included
    /// (as if every weight were 1). 80/20 becomes 50/50.
    WeightsIgnored,
    /// Weights swapped: destination `i` gets the weight of destination `k - 1 - i` (the list of
    /// weights reversed). 80/20 becomes 20/80; 0/100 becomes 100/0.
    WeightsSwapped,
    /// Off by one: the interval walk compares with `<=` instead of `<`, so destination `i` owns
    /// `[w_1 + … + w_{i-1}, w_1 + … + w_i]` and the first destination whose upper end reaches
    /// `selected` wins. A weight-0 first destination owns `{0}` and gets `1 / total` of the
    /// requests (1 % at 0/100); 80/20 becomes 81/19.
    OffByOne,
    /// A 1 % leak: one request in a hundred (`r₁ % 100 == 0` for a fresh draw `r₁`) goes to one
    /// of the route's zero-weight destinations, chosen uniformly, when it has any; every other
    /// request is picked correctly from a second draw.
    ZeroWeightLeak,
    /// Sticky per connection: each downstream connection draws one `r` when it is accepted and
    /// uses it for every pick, so all its requests to a route go to the same destination. The
    /// share of connections per destination is still right.
    StickyConnection,
    /// Stale configuration: the data plane lags `--stale-for` (2 s by default) behind the
    /// configuration. It routes each request with the configuration that was live `stale-for`
    /// ago or, when that one has no route for the request, with the oldest configuration since
    /// then that has one. `/status` and `/config_dump` report the newest configuration at once,
    /// so the harness sees each change as live while the previous routes are still served. The
    /// first configuration is served at once.
    StaleConfig,
    /// A rewrite that produces `//`: a prefix rewrite joins the replacement and the rest of the
    /// path with an extra `/`, so `/mutants/echo/x` with prefix `/mutants/echo` and rewrite `/echo`
    /// becomes `/echo//x`.
    DoubleSlashRewrite,
    /// Drops requests after a weight switch: for [`RELOAD_DROP_WINDOW`] (200 ms) after installing
    /// a configuration that changes the weights of a route the previous configuration already had
    /// (a canary step, not the first configuration nor one that only adds routes), every request
    /// is answered 503 as Envoy answers a reset upstream. Picks are correct.
    ReloadDrop,
    /// nginx's smooth weighted round robin, one scheduler per route (per configuration): exact
    /// shares, nothing random. Correct for a split declared `selection: roundRobin`; a split
    /// declared `random` must catch it (the connection-independence check).
    SmoothWrr,
    /// Picks by a hash of the request's [`HASH_HEADER`] (FNV-1a, then the weighted-cluster walk),
    /// falling back to a random pick when it is absent. Correct for a split declared
    /// `selection: { hash: { header: x-colormesh-key } }`; a split declared `random` whose requests
    /// all carry one key sees a single destination.
    HashSticky,
    /// With probability `--repeat P` a request repeats its connection's previous pick on the same
    /// route, else it is a fresh weighted pick: the shares stay right, the picks of a connection
    /// are correlated (lag-1 correlation P).
    PartiallySticky,
    /// Each new connection (its first draw `r`, `r % 100 == 0`) is with probability 1 % routed
    /// wholly to one of the route's zero-weight destinations, when the route has one; every other
    /// connection, and every route without a zero-weight destination, is picked correctly per
    /// request. On keep-alive connections the leak hides in the few connections a client opens.
    PerConnectionLeak,
}

/// The request header [`Mutation::HashSticky`] hashes.
pub const HASH_HEADER: &str = "x-colormesh-key";

/// What a pick may read besides the destinations and the connection's generator.
#[derive(Debug)]
pub struct PickContext<'a> {
    /// The draw the connection made when it was accepted.
    pub sticky: u64,
    /// The request's [`HASH_HEADER`], if any.
    pub key: Option<&'a [u8]>,
    /// The connection's previous pick on this route, if any.
    pub previous: Option<usize>,
    /// [`Mutation::PartiallySticky`]'s repeat probability.
    pub repeat: f64,
    /// The route's smooth round-robin state (`current` per destination).
    pub scheduler: &'a mut Vec<i64>,
}

/// How long [`Mutation::ReloadDrop`] answers 503 after a weight switch.
pub(crate) const RELOAD_DROP_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);

impl Mutation {
    /// Every mutation, the control first.
    pub const ALL: [Mutation; 13] = [
        Mutation::None,
        Mutation::WeightsIgnored,
        Mutation::WeightsSwapped,
        Mutation::OffByOne,
        Mutation::ZeroWeightLeak,
        Mutation::StickyConnection,
        Mutation::StaleConfig,
        Mutation::DoubleSlashRewrite,
        Mutation::ReloadDrop,
        Mutation::SmoothWrr,
        Mutation::HashSticky,
        Mutation::PartiallySticky,
        Mutation::PerConnectionLeak,
    ];

    /// The command-line name (`--mutation <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::WeightsIgnored => "weights-ignored",
            Mutation::WeightsSwapped => "weights-swapped",
            Mutation::OffByOne => "off-by-one",
            Mutation::ZeroWeightLeak => "zero-weight-leak",
            Mutation::StickyConnection => "sticky-connection",
            Mutation::StaleConfig => "stale-config",
            Mutation::DoubleSlashRewrite => "double-slash-rewrite",
            Mutation::ReloadDrop => "reload-drop",
            Mutation::SmoothWrr => "smooth-wrr",
            Mutation::HashSticky => "hash-sticky",
            Mutation::PartiallySticky => "partially-sticky",
            Mutation::PerConnectionLeak => "per-connection-leak",
        }
    }

    /// Picks the index (into [`WeightedClusters::iter`]) of the destination of one request.
    ///
    /// `draws` is the connection's random generator; `sticky` is the draw a
    /// [`Mutation::StickyConnection`] connection made when it was accepted.
    pub fn pick(
        self,
        destinations: &WeightedClusters,
        draws: &mut impl RngCore,
        sticky: u64,
    ) -> usize {
        match self {
            Mutation::None
            | Mutation::StaleConfig
            | Mutation::DoubleSlashRewrite
            | Mutation::ReloadDrop => destinations.pick_index(draws.next_u64()),
            Mutation::WeightsIgnored => {
                (draws.next_u64() % destinations.iter().len() as u64) as usize
            }
            Mutation::WeightsSwapped => {
                let mut weights: Vec<u32> = destinations.iter().map(|(_, w)| w).collect();
                weights.reverse();
                let selected = (draws.next_u64() % u64::from(destinations.total())) as u32;
                interval_walk(&weights, selected, false)
            }
            Mutation::OffByOne => {
                let weights: Vec<u32> = destinations.iter().map(|(_, w)| w).collect();
                let selected = (draws.next_u64() % u64::from(destinations.total())) as u32;
                interval_walk(&weights, selected, true)
            }
            Mutation::ZeroWeightLeak => {
                let zero: Vec<usize> = destinations
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, weight))| *weight == 0)
                    .map(|(index, _)| index)
                    .collect();
                let leak = draws.next_u64();
                let pick = draws.next_u64();
                if !zero.is_empty() && leak.is_multiple_of(100) {
                    zero[((leak / 100) % zero.len() as u64) as usize]
                } else {
                    destinations.pick_index(pick)
                }
            }
            Mutation::StickyConnection => destinations.pick_index(sticky),
            // Without their context (see `pick_with`), the new faults pick correctly.
            Mutation::SmoothWrr
            | Mutation::HashSticky
            | Mutation::PartiallySticky
            | Mutation::PerConnectionLeak => destinations.pick_index(draws.next_u64()),
        }
    }

    /// [`Mutation::pick`] for every fault, with what the newer ones read ([`PickContext`]).
    pub fn pick_with(
        self,
        destinations: &WeightedClusters,
        draws: &mut impl RngCore,
        context: PickContext<'_>,
    ) -> usize {
        let weights = || destinations.iter().map(|(_, w)| w).collect::<Vec<u32>>();
        match self {
            Mutation::SmoothWrr => {
                let weights = weights();
                context.scheduler.resize(weights.len(), 0);
                smooth_wrr_step(&weights, context.scheduler)
            }
            Mutation::HashSticky => match context.key {
                Some(key) => destinations.pick_index(fnv1a(key)),
                None => destinations.pick_index(draws.next_u64()),
            },
            Mutation::PartiallySticky => match context.previous {
                Some(previous) if (draws.next_u64() as f64 / u64::MAX as f64) < context.repeat => {
                    previous
                }
                _ => destinations.pick_index(draws.next_u64()),
            },
            Mutation::PerConnectionLeak => {
                let zero: Vec<usize> = weights()
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| **w == 0)
                    .map(|(index, _)| index)
                    .collect();
                if !zero.is_empty() && context.sticky.is_multiple_of(100) {
                    zero[((context.sticky / 100) % zero.len() as u64) as usize]
                } else {
                    destinations.pick_index(draws.next_u64())
                }
            }
            other => other.pick(destinations, draws, context.sticky),
        }
    }

    /// The path (with the query) to send upstream, or `None` when it is unchanged; see
    /// [`PathRewrite::apply`].
    pub fn rewrite(
        self,
        rewrite: &PathRewrite,
        matcher: &PathMatcher,
        path: &str,
        query: Option<&str>,
    ) -> Option<String> {
        match (self, rewrite, matcher) {
            (Mutation::DoubleSlashRewrite, PathRewrite::Prefix(replacement), matcher) => {
                let matched = match matcher {
                    PathMatcher::Prefix(prefix) | PathMatcher::PathSeparatedPrefix(prefix) => {
                        prefix.len().min(path.len())
                    }
                    PathMatcher::Exact(_) | PathMatcher::Regex(_) => path.len(),
                };
                let rewritten = format!("{replacement}/{}", &path[matched..]);
                Some(match query {
                    Some(query) => format!("{rewritten}?{query}"),
                    None => rewritten,
                })
            }
            _ => rewrite.apply(matcher, path, query),
        }
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `new` changes the weighted destinations of a route (same virtual host and route name)
/// that `old` already had: what [`Mutation::ReloadDrop`] calls a weight switch.
pub(crate) fn switches_weights(old: &RouteTable, new: &RouteTable) -> bool {
    fn weights(table: &RouteTable) -> BTreeMap<(&str, &str), Vec<(&str, u32)>> {
        let mut weights = BTreeMap::new();
        for virtual_host in table.virtual_hosts() {
            for route in &virtual_host.routes {
                if let RouteAction::Forward(forward) = &route.action {
                    let destinations = forward
                        .destinations
                        .iter()
                        .map(|(cluster, weight)| (cluster.name.as_str(), weight))
                        .collect();
                    weights.insert(
                        (virtual_host.name.as_str(), route.name.as_str()),
                        destinations,
                    );
                }
            }
        }
        weights
    }
    let before = weights(old);
    weights(new)
        .iter()
        .any(|(route, now)| before.get(route).is_some_and(|then| then != now))
}

/// One pick of nginx's smooth weighted round robin: add each weight to its `current`, pick the
/// largest (the first on ties), subtract the total from it.
fn smooth_wrr_step(weights: &[u32], current: &mut [i64]) -> usize {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut best = 0;
    for (j, w) in weights.iter().enumerate() {
        current[j] += i64::from(*w);
        if current[j] > current[best] {
            best = j;
        }
    }
    current[best] -= total;
    best
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The destination whose interval holds `selected`: the first with `selected < upper`, or with
/// `selected <= upper` when `inclusive` (the off-by-one fault).
fn interval_walk(weights: &[u32], selected: u32, inclusive: bool) -> usize {
    let mut upper = 0u32;
    for (index, weight) in weights.iter().enumerate() {
        upper = upper.saturating_add(*weight);
        if selected < upper || (inclusive && selected == upper) {
            return index;
        }
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use routing::table::Cluster;

    use super::*;

    fn clusters(weights: &[u32]) -> WeightedClusters {
        WeightedClusters::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| (Arc::new(Cluster::new(format!("c{i}"), Vec::new())), *w))
                .collect(),
        )
        .expect("positive total")
    }

    /// Counts the picks of every `selected` value `0..total` (one full period of `r % total`).
    fn exact_counts(mutation: Mutation, weights: &[u32]) -> Vec<u64> {
        let destinations = clusters(weights);
        let total = u64::from(destinations.total());
        let mut counts = vec![0; weights.len()];
        for r in 0..total {
            let mut fixed = FixedDraws(r);
            counts[mutation.pick(&destinations, &mut fixed, r)] += 1;
        }
        counts
    }

    /// A "generator" that always returns the same value: walks every residue once.
    struct FixedDraws(u64);

    impl RngCore for FixedDraws {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(0);
        }
    }

    #[test]
    fn the_control_and_the_weight_mutations_split_as_documented() {
        assert_eq!(exact_counts(Mutation::None, &[80, 20]), vec![80, 20]);
        assert_eq!(exact_counts(Mutation::None, &[0, 100]), vec![0, 100]);
        assert_eq!(
            exact_counts(Mutation::WeightsSwapped, &[80, 20]),
            vec![20, 80]
        );
        assert_eq!(
            exact_counts(Mutation::WeightsSwapped, &[0, 100]),
            vec![100, 0]
        );
        assert_eq!(exact_counts(Mutation::OffByOne, &[80, 20]), vec![81, 19]);
        assert_eq!(exact_counts(Mutation::OffByOne, &[0, 100]), vec![1, 99]);
        assert_eq!(
            exact_counts(Mutation::OffByOne, &[80, 20, 0]),
            vec![81, 19, 0]
        );
        // Weights ignored: r % k, uniform over the listed destinations.
        let destinations = clusters(&[80, 20, 0]);
        let mut counts = [0; 3];
        for r in 0..300 {
            counts[Mutation::WeightsIgnored.pick(&destinations, &mut FixedDraws(r), 0)] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn the_leak_sends_one_request_in_a_hundred_to_a_zero_weight_destination() {
        let destinations = clusters(&[0, 100]);
        let mut draws = SmallRng::seed_from_u64(3);
        let n = 100_000;
        let leaked = (0..n)
            .filter(|_| Mutation::ZeroWeightLeak.pick(&destinations, &mut draws, 0) == 0)
            .count();
        // Binomial(100000, 0.01): mean 1000, sd 31.5; ±6 sd.
        assert!((811..=1189).contains(&leaked), "{leaked}");
        // Without a zero-weight destination there is nowhere to leak to.
        let plain = clusters(&[80, 20]);
        let counts = (0..n).fold([0u64; 2], |mut counts, _| {
            counts[Mutation::ZeroWeightLeak.pick(&plain, &mut draws, 0)] += 1;
            counts
        });
        assert!((79_000..=81_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn a_sticky_connection_ignores_its_draws() {
        let destinations = clusters(&[50, 50]);
        let mut draws = SmallRng::seed_from_u64(5);
        for sticky in [0u64, 1, 7, 99] {
            let first = Mutation::StickyConnection.pick(&destinations, &mut draws, sticky);
            for _ in 0..100 {
                assert_eq!(
                    Mutation::StickyConnection.pick(&destinations, &mut draws, sticky),
                    first
                );
            }
        }
    }

    #[test]
    fn the_double_slash_rewrite_keeps_the_rest_after_an_extra_slash() {
        let matcher = PathMatcher::Prefix("/mutants/echo".to_owned());
        let rewrite = PathRewrite::Prefix("/echo".to_owned());
        assert_eq!(
            Mutation::None.rewrite(&rewrite, &matcher, "/mutants/echo/x", Some("y=1")),
            Some("/echo/x?y=1".to_owned())
        );
        assert_eq!(
            Mutation::DoubleSlashRewrite.rewrite(
                &rewrite,
                &matcher,
                "/mutants/echo/x",
                Some("y=1")
            ),
            Some("/echo//x?y=1".to_owned())
        );
        assert_eq!(
            Mutation::DoubleSlashRewrite.rewrite(&PathRewrite::None, &matcher, "/a", None),
            None
        );
    }

    /// A table with one route per `(route name, weights)` in one virtual host.
    fn table(routes: &[(&str, &[u32])]) -> RouteTable {
        use routing::table::{
            Fallback, ForwardAction, HeaderEdits, Route, RouteMatcher, VirtualHost,
        };
        let routes = routes
            .iter()
            .map(|(name, weights)| Route {
                name: (*name).to_owned(),
                matcher: RouteMatcher::any(),
                action: RouteAction::Forward(ForwardAction {
                    destinations: clusters(weights),
                    rewrite: PathRewrite::None,
                    timeout: None,
                    retry: None,
                    request_headers: HeaderEdits::default(),
                    response_headers: HeaderEdits::default(),
                    host_rewrite: None,
                }),
            })
            .collect();
        let virtual_host = VirtualHost {
            name: "vh".to_owned(),
            domains: vec!["*".to_owned()],
            routes,
        };
        RouteTable::new(vec![virtual_host], Fallback::NotFound).expect("valid table")
    }

    #[test]
    fn a_weight_switch_is_a_changed_weight_on_a_route_that_was_there() {
        let canary = table(&[("r", &[80, 20])]);
        assert!(switches_weights(&canary, &table(&[("r", &[0, 100])])));
        assert!(!switches_weights(&canary, &table(&[("r", &[80, 20])])));
        // New routes and removed routes are no switch.
        assert!(!switches_weights(
            &canary,
            &table(&[("r", &[80, 20]), ("s", &[50, 50])])
        ));
        assert!(!switches_weights(&table(&[]), &canary));
        assert!(!switches_weights(&canary, &table(&[])));
    }

    fn context(scheduler: &mut Vec<i64>) -> PickContext<'_> {
        PickContext {
            sticky: 1,
            key: None,
            previous: None,
            repeat: 0.0,
            scheduler,
        }
    }

    #[test]
    fn the_selection_unit_faults_pick_as_documented() {
        let destinations = clusters(&[80, 20]);
        let mut draws = SmallRng::seed_from_u64(9);
        // Smooth WRR: a a b a a, every 5 picks.
        let mut scheduler = Vec::new();
        let picks: Vec<usize> = (0..10)
            .map(|_| {
                Mutation::SmoothWrr.pick_with(&destinations, &mut draws, context(&mut scheduler))
            })
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
        // Hash: a key always gets the same destination, and keys spread 80/20.
        let mut counts = [0u32; 2];
        for i in 0..10_000u32 {
            let key = format!("k{i}");
            let pick = |draws: &mut SmallRng, scheduler: &mut Vec<i64>| {
                Mutation::HashSticky.pick_with(
                    &destinations,
                    draws,
                    PickContext {
                        key: Some(key.as_bytes()),
                        ..context(scheduler)
                    },
                )
            };
            let first = pick(&mut draws, &mut scheduler);
            assert_eq!(pick(&mut draws, &mut scheduler), first);
            counts[first] += 1;
        }
        assert!((7_700..=8_300).contains(&counts[0]), "{counts:?}");
        // Partially sticky: with repeat 1 always the previous pick, with 0 never forced.
        let repeat = |p: f64, draws: &mut SmallRng, scheduler: &mut Vec<i64>| {
            Mutation::PartiallySticky.pick_with(
                &destinations,
                draws,
                PickContext {
                    previous: Some(1),
                    repeat: p,
                    ..context(scheduler)
                },
            )
        };
        assert!((0..100).all(|_| repeat(1.0, &mut draws, &mut scheduler) == 1));
        let ones = (0..10_000)
            .filter(|_| repeat(0.2, &mut draws, &mut scheduler) == 1)
            .count();
        // 0.2 + 0.8 · 0.2 = 0.36 of picks repeat destination 1.
        assert!((3_400..=3_800).contains(&ones), "{ones}");
        // Per-connection leak: a connection whose first draw is a multiple of 100 goes wholly to
        // the zero-weight destination; routes without one are picked correctly.
        let zero = clusters(&[0, 100]);
        let leaking = |sticky: u64, draws: &mut SmallRng, scheduler: &mut Vec<i64>| {
            Mutation::PerConnectionLeak.pick_with(
                &zero,
                draws,
                PickContext {
                    sticky,
                    ..context(scheduler)
                },
            )
        };
        assert!((0..100).all(|_| leaking(300, &mut draws, &mut scheduler) == 0));
        assert!((0..100).all(|_| leaking(301, &mut draws, &mut scheduler) == 1));
        let plain = Mutation::PerConnectionLeak.pick_with(
            &destinations,
            &mut FixedDraws(85),
            PickContext {
                sticky: 0,
                ..context(&mut scheduler)
            },
        );
        assert_eq!(plain, 1, "85 % 100 falls in b's interval");
    }

    #[test]
    fn names_round_trip_through_the_command_line() {
        use clap::ValueEnum;
        for mutation in Mutation::ALL {
            assert_eq!(
                Mutation::from_str(mutation.name(), false),
                Ok(mutation),
                "{mutation}"
            );
        }
    }
}

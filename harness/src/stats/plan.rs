//! Sample sizes: how many requests a check needs to keep its declared guarantees, and what a
//! correct gateway can expect from it.

use serde::Serialize;

use super::confidence::SequentialTests;
use super::exact::FixedDesign;
use super::intervals::{hit_free_requests_for_bound, leak_detection_probability};
use super::oc::{OperatingPoint, Truth, Walk, no_test_bounds};
use super::spec::{CheckSettings, Prepared, SplitSpec, StatsError};

/// The alternative against which a fixed-sample check has the least power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeastFavourable {
    /// The destination whose share is moved by δ.
    pub destination: String,
    /// Its configured share.
    pub expected_share: f64,
    /// Its share under the alternative.
    pub alternative_share: f64,
}

/// What a correct gateway gets from a sequential check: how often it is wrongly failed, left
/// inconclusive (a red gate too) or passed, and after how many requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CorrectGateway {
    /// `true` when computed exactly by dynamic programming ([`super::oc`]); `false` when the
    /// figures are bounds (three or more deciding destinations).
    pub exact: bool,
    /// Probability of a fail (exact, or the bound α).
    pub fail: f64,
    /// Probability of reaching the cap undecided (exact, or an upper bound).
    pub inconclusive: f64,
    /// Probability of a pass (exact, or a lower bound).
    pub pass: f64,
    /// Mean requests until the verdict (exact only).
    pub mean_requests: Option<f64>,
}

impl CorrectGateway {
    /// The probability that the gate goes red for a correct gateway: fail or inconclusive.
    pub fn false_red(&self) -> f64 {
        self.fail + self.inconclusive
    }

    fn exact(point: OperatingPoint) -> Self {
        Self {
            exact: true,
            fail: point.fail,
            inconclusive: point.inconclusive,
            pass: point.pass,
            mean_requests: Some(point.mean_requests),
        }
    }
}

/// The sample sizes of one split check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Requests for the fixed-sample check: the smallest `n` (scanning up) at which its exact
    /// tests fail a gateway on any edge `p ± δ` with probability >= power, and a correct gateway
    /// misses the pass region with probability <= α.
    pub requests: u64,
    /// The check's false-alarm probability.
    pub alpha: f64,
    /// δ.
    pub min_detectable_deviation: f64,
    /// The declared power.
    pub power: f64,
    /// β = 1 - power: a gateway off by δ or more passes with probability at most this.
    pub miss_rate: f64,
    /// The fixed-sample check's exact power at `requests` against the least favourable edge.
    pub power_at_requests: f64,
    /// That alternative; `None` without a deciding destination (a single positive-weight
    /// destination: only leak checks).
    pub least_favourable: Option<LeastFavourable>,
    /// Requests after which a [`super::SequentialCheck`] gives up as inconclusive: the first `n`
    /// at which a correct gateway is still undecided with probability <= α and a gateway on an
    /// edge `p ± δ` has failed with probability >= 1 - 2β.
    pub sequential_cap: u64,
    /// The probability that a gateway on the weakest edge has failed by the cap (exact with one
    /// deciding destination, a lower bound otherwise).
    pub edge_fail_by_cap: f64,
    /// What a correct gateway gets from the sequential check.
    pub correct_gateway: CorrectGateway,
    /// Hit-free requests after which the sequential check may pass: the upper bound on the leak
    /// rate (at confidence `1 - β`) is at most δ, and, when the spec has zero-weight
    /// destinations, at least [`Plan::leak_requests`].
    pub leak_free_requests: u64,
    /// With zero-weight destinations: the requests after which a leak of
    /// [`CheckSettings::min_detectable_leak`] to them has been caught with probability
    /// [`CheckSettings::leak_power`] (`ceil(ln(1 - leak_power) / ln(1 - leak))`, 917 for 1 % at
    /// 1 - 1e-4). Both `requests` and `leak_free_requests` are at least this.
    pub leak_requests: Option<u64>,
}

impl Plan {
    /// The probability that a fixed-sample check of `requests` sees at least one hit from a
    /// destination that leaks `leak_rate` of the traffic (and so fails).
    pub fn leak_detection_probability(&self, leak_rate: f64) -> f64 {
        leak_detection_probability(leak_rate, self.requests)
    }
}

/// The largest cap the planner considers, as a multiple of the fixed sample size.
const CAP_LIMIT_FACTOR: u64 = 64;

/// Plans a split check: the fixed sample size and the sequential cap.
pub fn plan(spec: &SplitSpec, settings: &CheckSettings) -> Result<Plan, StatsError> {
    let prepared = Prepared::new(spec, settings)?;
    plan_prepared(&prepared, settings)
}

pub(crate) fn plan_prepared(
    prepared: &Prepared,
    settings: &CheckSettings,
) -> Result<Plan, StatsError> {
    let delta = settings.min_detectable_deviation;
    let design = FixedDesign::new(prepared, settings);
    let requests = fixed_requests(prepared, &design, settings)?;
    let (power_at_requests, weakest) = if design.tests.is_empty() {
        (1.0, None)
    } else {
        design.min_power(requests, delta)
    };
    let least_favourable = weakest.map(|alt| LeastFavourable {
        destination: prepared.names[alt.index].clone(),
        expected_share: alt.p0,
        alternative_share: alt.p1,
    });
    let tests = SequentialTests::new(prepared, settings);
    let limit = CAP_LIMIT_FACTOR * requests.max(tests.leak_pass_after);
    let too_large = StatsError::PlanTooLarge {
        limit,
        power: settings.power,
        delta,
    };
    let (sequential_cap, edge_fail_by_cap, correct_gateway) = match tests.deciding() {
        [] | [_] => exact_cap(&tests, settings, limit).ok_or(too_large)?,
        _ => bounded_cap(&tests, settings, requests, limit).ok_or(too_large)?,
    };
    Ok(Plan {
        requests,
        alpha: settings.alpha,
        min_detectable_deviation: delta,
        power: settings.power,
        miss_rate: settings.miss_rate(),
        power_at_requests,
        least_favourable,
        sequential_cap,
        edge_fail_by_cap,
        correct_gateway,
        leak_free_requests: tests.leak_pass_after,
        leak_requests: prepared.leak_requests(settings),
    })
}

/// The cap with at most one deciding destination: walk the correct gateway and both edges
/// request by request (exact dynamic programming) until the cap's two conditions hold.
fn exact_cap(
    tests: &SequentialTests,
    settings: &CheckSettings,
    limit: u64,
) -> Option<(u64, f64, CorrectGateway)> {
    let deciding = tests.deciding().first().copied();
    let p0 = deciding.map_or(0.0, |t| t.edges.p0);
    let mut correct = Walk::new(Truth::share(p0));
    let mut edges: Vec<Walk> = [p0 - tests.delta, p0 + tests.delta]
        .into_iter()
        .filter(|p| deciding.is_some() && *p > 0.0 && *p < 1.0)
        .map(|p| Walk::new(Truth::share(p)))
        .collect();
    let mut previous = None;
    let floor = 1.0 - 2.0 * tests.miss_rate;
    for n in 1..=limit {
        let bounds = match &deciding {
            Some(test) => {
                let b = test.bounds(n, tests.threshold, previous);
                previous = Some(b);
                b
            }
            None => no_test_bounds(n),
        };
        correct.step(bounds, tests.leak_pass_after);
        for walk in &mut edges {
            walk.step(bounds, tests.leak_pass_after);
        }
        let edge_fail = edges.iter().map(Walk::failed).fold(1.0, f64::min);
        if n >= tests.leak_pass_after && correct.undecided() <= settings.alpha && edge_fail >= floor
        {
            return Some((n, edge_fail, CorrectGateway::exact(correct.at_cap())));
        }
    }
    None
}

/// The cap with several deciding destinations, from exact binomial bounds at candidate caps
/// (in sixteenths of the fixed sample size).
fn bounded_cap(
    tests: &SequentialTests,
    settings: &CheckSettings,
    requests: u64,
    limit: u64,
) -> Option<(u64, f64, CorrectGateway)> {
    let stride = (requests / 16).max(1);
    let mut cap = tests.leak_pass_after.max(requests / 2).max(1);
    let floor = 1.0 - 2.0 * tests.miss_rate;
    while cap <= limit {
        let (undecided, fails) = tests.cap_bounds(cap);
        if undecided <= settings.alpha && fails >= floor {
            let gate = CorrectGateway {
                exact: false,
                fail: settings.alpha,
                inconclusive: undecided,
                pass: (1.0 - settings.alpha - undecided).max(0.0),
                mean_requests: None,
            };
            return Some((cap, fails, gate));
        }
        cap += stride;
    }
    None
}

/// The fixed sample size: the exact tests' size for δ, raised to the leak guarantee's size
/// when the spec has zero-weight destinations (and, without a deciding destination, to the
/// hit-free requests that bound a leak to unknown destinations by δ at 1 - β).
pub(crate) fn fixed_requests(
    prepared: &Prepared,
    design: &FixedDesign,
    settings: &CheckSettings,
) -> Result<u64, StatsError> {
    let delta = settings.min_detectable_deviation;
    let requests = design
        .planned_requests(1 << 24)
        .ok_or(StatsError::PlanTooLarge {
            limit: 1 << 24,
            power: settings.power,
            delta,
        })?;
    Ok(requests
        .max(prepared.leak_requests(settings).unwrap_or(0))
        .max(hit_free_requests_for_bound(delta, settings.miss_rate())))
}

#[cfg(test)]
mod tests {
    use statrs::distribution::{ContinuousCDF, Normal};

    use super::*;
    use crate::stats::Budget;

    fn default_settings() -> CheckSettings {
        CheckSettings::within_budget(&Budget::default(), 6)
    }

    #[test]
    fn default_plans_for_the_demo_splits() {
        let settings = default_settings();
        let specs = [
            ("80/20", SplitSpec::new([("gw", 80), ("gw2", 20)])),
            ("50/50", SplitSpec::new([("gw", 50), ("gw2", 50)])),
            (
                "1/1/1",
                SplitSpec::new([("red", 1), ("green", 1), ("blue", 1)]),
            ),
            ("0/100", SplitSpec::new([("gw", 0), ("gw2", 100)])),
        ];
        let mut sizes = Vec::new();
        for (label, spec) in &specs {
            let plan = plan(spec, &settings).expect("plannable");
            println!(
                "{label}: fixed n = {}, power {:.4}, least favourable {:?}, sequential cap = {}, \
                 edge fails by the cap {:.4}, correct gateway {:?}, leak-free after {}",
                plan.requests,
                plan.power_at_requests,
                plan.least_favourable,
                plan.sequential_cap,
                plan.edge_fail_by_cap,
                plan.correct_gateway,
                plan.leak_free_requests
            );
            assert!(plan.power_at_requests >= 0.99);
            assert!(plan.edge_fail_by_cap >= 1.0 - 2.0 * plan.miss_rate);
            assert!(plan.correct_gateway.inconclusive <= settings.alpha);
            assert!(plan.correct_gateway.fail <= settings.alpha);
            sizes.push(plan.requests);
        }
        // Independent cross-check for two destinations, the normal approximation of the
        // fail side, n = ((z_{1-α/2} sqrt(p0 q0) + z_{power} sqrt(p1 q1)) / δ)²: the exact plan
        // is within a few percent of it (it also has to place a correct gateway in the pass
        // region, which costs about as much).
        let z = |q: f64| Normal::standard().inverse_cdf(q);
        for ((p0, p1), exact) in [((0.8f64, 0.75f64), sizes[0]), ((0.5, 0.55), sizes[1])] {
            let root = z(1.0 - settings.alpha / 2.0) * (p0 * (1.0 - p0)).sqrt()
                + z(settings.power) * (p1 * (1.0 - p1)).sqrt();
            let normal = (root / settings.min_detectable_deviation).powi(2);
            assert!(
                (exact as f64 / normal - 1.0).abs() < 0.05,
                "{exact} vs {normal}"
            );
        }
        assert_eq!(sizes[3], 917, "0/100 is sized by the leak guarantee");
    }

    #[test]
    fn the_least_favourable_alternative_is_the_share_nearest_one_half_moved_towards_it() {
        let settings = default_settings();
        let plan = plan(&SplitSpec::new([("gw", 80), ("gw2", 20)]), &settings).expect("plan");
        let lf = plan
            .least_favourable
            .expect("a goodness-of-fit alternative");
        // 80 -> 75 (equivalently 20 -> 25): the variance grows towards 1/2, so power shrinks.
        let towards_half = (lf.expected_share - 0.8).abs() < 1e-12
            && (lf.alternative_share - 0.75).abs() < 1e-12
            || (lf.expected_share - 0.2).abs() < 1e-12
                && (lf.alternative_share - 0.25).abs() < 1e-12;
        assert!(towards_half, "{lf:?}");
        let plan = plan_for_three_way();
        let lf = plan
            .least_favourable
            .expect("a goodness-of-fit alternative");
        assert!(
            (lf.alternative_share - (1.0 / 3.0 + 0.05)).abs() < 1e-12,
            "{lf:?}"
        );
    }

    fn plan_for_three_way() -> Plan {
        plan(
            &SplitSpec::new([("red", 1), ("green", 1), ("blue", 1)]),
            &default_settings(),
        )
        .expect("plan")
    }

    #[test]
    fn a_lone_destination_is_planned_for_leaks_only() {
        let settings = default_settings();
        let plan = plan(&SplitSpec::new([("gw", 0), ("gw2", 100)]), &settings).expect("plan");
        assert!(plan.least_favourable.is_none());
        // A leak of δ alone would need ln(0.01) / ln(0.95) = 89.8 requests; a leak of 1 % caught
        // with probability 1 - 1e-4 needs ln(1e-4) / ln(0.99) = 916.4.
        assert_eq!(plan.leak_requests, Some(917));
        assert_eq!(plan.requests, 917);
        assert_eq!(plan.leak_free_requests, 917);
        // Nothing to decide but leaks: a correct gateway passes at 917, surely.
        assert_eq!(plan.sequential_cap, 917);
        assert_eq!(plan.correct_gateway.pass, 1.0);
        assert_eq!(plan.correct_gateway.mean_requests, Some(917.0));
        assert!(plan.leak_detection_probability(0.01) >= 1.0 - 1e-4);
        assert!(leak_detection_probability(0.01, 916) < 1.0 - 1e-4);
    }

    #[test]
    fn zero_weight_destinations_raise_the_plan_to_the_leak_guarantee_and_others_do_not() {
        let settings = default_settings();
        let with_zero = plan(
            &SplitSpec::new([("red", 1), ("green", 1), ("blue", 1), ("black", 0)]),
            &settings,
        )
        .expect("plan");
        let without = plan_for_three_way();
        assert_eq!(without.leak_requests, None);
        assert_eq!(with_zero.leak_requests, Some(917));
        // The goodness-of-fit size is larger already; only the pass threshold moves.
        assert_eq!(with_zero.requests, without.requests);
        assert_eq!(with_zero.leak_free_requests, 917);
        assert!(without.leak_free_requests < 917);
        // A stricter guarantee asks for more: 1 - 1e-6 needs ln(1e-6) / ln(0.99) = 1374.6.
        let strict = CheckSettings {
            leak_power: 1.0 - 1e-6,
            ..settings
        };
        let lone = plan(&SplitSpec::new([("gw", 0), ("gw2", 100)]), &strict).expect("plan");
        assert_eq!(lone.leak_requests, Some(1375));
    }
}

//! Sample sizes: how many requests a check needs to keep its declared guarantees.

use serde::Serialize;

use super::confidence::SequentialTests;
use super::gof::FixedDesign;
use super::intervals::leak_detection_probability;
use super::spec::{CheckSettings, Prepared, SplitSpec, StatsError};

/// The alternative against which a fixed-sample check has the least power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeastFavourable {
    /// The destination whose share is moved by δ.
    pub destination: String,
    /// Its configured share.
    pub expected_share: f64,
    /// Its share under the alternative; the other positive-weight destinations absorb the
    /// difference in proportion to their shares.
    pub alternative_share: f64,
}

/// The sample sizes of one split check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Requests for the fixed-sample check: the smallest `n` at which the level-`alpha` Pearson
    /// test fails every split that is off by δ on some destination with probability >= power.
    pub requests: u64,
    /// The check's false-alarm probability.
    pub alpha: f64,
    /// δ.
    pub min_detectable_deviation: f64,
    /// The declared power.
    pub power: f64,
    /// The power actually reached at `requests` against the least favourable alternative.
    pub power_at_requests: f64,
    /// That alternative; `None` when it is a leak of δ to a destination that should get nothing
    /// (a single positive-weight destination: no goodness-of-fit test, only leak checks).
    pub least_favourable: Option<LeastFavourable>,
    /// Requests after which a [`super::SequentialCheck`] gives up as inconclusive:
    /// `ceil(cap_factor * requests)`.
    pub sequential_cap: u64,
    /// The smallest multiple of 0.25 (at least 1) for which the sequential check fails a split
    /// off by δ before the cap with probability >= power, and passes a correct split before the
    /// cap with probability >= 1 - 2α (it fails with probability <= α, and is inconclusive with
    /// probability <= α more).
    pub cap_factor: f64,
    /// A lower bound on that probability at the cap (exact binomial computation).
    pub sequential_power_at_cap: f64,
    /// Hit-free requests after which the sequential check may pass: the upper bound on the leak
    /// rate (at confidence `1 - min(alpha, (1 - power) / 2)`) is at most δ, and, when the spec has
    /// zero-weight destinations, at least [`Plan::leak_requests`].
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

/// Plans a split check: the fixed sample size and the sequential cap.
///
/// The least favourable alternative: among all splits whose share of some positive-weight
/// destination is off by δ, the Pearson test's noncentrality is smallest when a single
/// destination `j` moves by exactly δ and the others compensate in proportion to their shares;
/// it is then `n δ² / (p_j (1 - p_j))`, smallest for the share nearest 1/2. The power against
/// each such shift (both signs, every `j`) is computed exactly over the binomial count of `j`,
/// and the plan is sized for the weakest. Leaks of δ to zero-weight or unknown destinations are
/// also alternatives; their first hit fails the check.
pub fn plan(spec: &SplitSpec, settings: &CheckSettings) -> Result<Plan, StatsError> {
    let prepared = Prepared::new(spec, settings)?;
    plan_prepared(&prepared, settings)
}

pub(crate) fn plan_prepared(
    prepared: &Prepared,
    settings: &CheckSettings,
) -> Result<Plan, StatsError> {
    let delta = settings.min_detectable_deviation;
    let design = FixedDesign::new(prepared.nonzero_shares(), settings.alpha, settings.power);
    let too_large = |limit| StatsError::PlanTooLarge {
        limit,
        power: settings.power,
        delta,
    };
    let requests = fixed_requests(prepared, &design, settings)?;
    let (power_at_requests, weakest) = design.min_power(requests, delta);
    let least_favourable = weakest.map(|alt| LeastFavourable {
        destination: prepared.names[prepared.nonzero[alt.j]].clone(),
        expected_share: alt.p0,
        alternative_share: alt.p1,
    });

    let tests = SequentialTests::new(prepared, settings);
    let mut quarters = 4u64;
    let (cap, sequential_power_at_cap) = loop {
        let cap = (requests * quarters).div_ceil(4);
        // The cap must serve both sides: a gateway off by δ fails before it with the declared
        // power, and a correct gateway passes before it unless it fails (probability <= α) or
        // its counts stray (probability <= α): inconclusive is not a pass, so it is a false
        // alarm of the gate too and gets the same budget.
        if cap >= tests.leak_pass_after {
            let power = tests.power_lower_bound(cap);
            let pass = tests.pass_probability_lower_bound(cap, settings.alpha);
            if power >= settings.power && pass >= 1.0 - 2.0 * settings.alpha {
                break (cap, power);
            }
        }
        quarters += 1;
        if quarters > 64 {
            return Err(too_large(cap));
        }
    };
    Ok(Plan {
        requests,
        alpha: settings.alpha,
        min_detectable_deviation: delta,
        power: settings.power,
        power_at_requests,
        least_favourable,
        sequential_cap: cap,
        cap_factor: quarters as f64 / 4.0,
        sequential_power_at_cap,
        leak_free_requests: tests.leak_pass_after,
        leak_requests: prepared.leak_requests(settings),
    })
}

/// The fixed sample size: the goodness-of-fit size for δ, raised to the leak guarantee's size
/// when the spec has zero-weight destinations.
pub(crate) fn fixed_requests(
    prepared: &Prepared,
    design: &FixedDesign,
    settings: &CheckSettings,
) -> Result<u64, StatsError> {
    let delta = settings.min_detectable_deviation;
    let requests = design
        .planned_requests(delta)
        .ok_or(StatsError::PlanTooLarge {
            limit: 1 << 32,
            power: settings.power,
            delta,
        })?;
    Ok(requests.max(prepared.leak_requests(settings).unwrap_or(0)))
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
                "{label}: fixed n = {}, power {:.4}, least favourable {:?}, sequential cap = {} \
                 (x{}), power before cap >= {:.4}, leak bound <= delta after {} clean requests",
                plan.requests,
                plan.power_at_requests,
                plan.least_favourable,
                plan.sequential_cap,
                plan.cap_factor,
                plan.sequential_power_at_cap,
                plan.leak_free_requests
            );
            assert!(plan.power_at_requests >= 0.99);
            assert!(plan.sequential_power_at_cap >= 0.99);
            sizes.push(plan.requests);
        }
        // Pinned sizes (alpha = 1e-4 / 6, delta = 5 points, power 0.99; 0/100 is sized by the
        // leak guarantee).
        assert_eq!(sizes, vec![2981, 4384, 4356, 917]);
        // Independent cross-check for two destinations, the normal approximation
        // n = ((z_{1-α/2} sqrt(p0 q0) + z_{power} sqrt(p1 q1)) / δ)².
        let z = |q: f64| Normal::standard().inverse_cdf(q);
        for ((p0, p1), exact) in [((0.8f64, 0.75f64), sizes[0]), ((0.5, 0.55), sizes[1])] {
            let root = z(1.0 - settings.alpha / 2.0) * (p0 * (1.0 - p0)).sqrt()
                + z(settings.power) * (p1 * (1.0 - p1)).sqrt();
            let normal = (root / settings.min_detectable_deviation).powi(2);
            assert!(
                (exact as f64 / normal - 1.0).abs() < 0.01,
                "{exact} vs {normal}"
            );
        }
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
        assert!(plan.sequential_cap >= plan.leak_free_requests);
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

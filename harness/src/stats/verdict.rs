//! The verdict of a split check, as written to the run report.

use serde::Serialize;

/// The three-valued outcome of a split check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The split matches the weights: every share was shown to lie within δ of its expected
    /// value (an equivalence decision; a gateway off by δ or more gets it with probability at
    /// most the miss rate β), and no zero-weight or unknown destination answered.
    Pass,
    /// A violation was found: a significant deviation, a hit on a zero-weight destination, or a
    /// reply from a destination that is not part of the split.
    Fail,
    /// Not enough data to decide with the declared guarantees.
    Inconclusive,
}

/// How a verdict was reached, with the numbers that qualify its statistic and p-value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CheckMethod {
    /// Exact binomial tests at a fixed sample size: an equal-tailed test per destination to fail,
    /// two one-sided tests (TOST) per destination to pass.
    FixedSample {
        /// Destinations with their own tests (none with a single positive-weight destination;
        /// one for two, whose shares mirror each other); α is split evenly among them.
        tested_destinations: usize,
        /// Requests the plan asked for.
        planned_requests: u64,
    },
    /// Beta-mixture confidence sequences to fail, ratio tests against the band's edges to pass,
    /// checked after every request.
    Sequential {
        /// Requests after which the check gives up as inconclusive.
        cap: u64,
        /// Number of destinations with their own confidence sequence (the budget is split
        /// evenly among them).
        tested_destinations: usize,
    },
}

/// What one destination received, against what it should have received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationResult {
    /// Destination name as configured.
    pub name: String,
    /// `w / Σw`.
    pub expected_share: f64,
    /// Requests it answered.
    pub observed: u64,
    /// `observed / n`.
    pub observed_share: f64,
    /// Confidence interval for its true share, simultaneous over all destinations at the check's
    /// alpha (Clopper–Pearson for fixed samples; the anytime-valid confidence sequence for
    /// sequential checks).
    pub interval: (f64, f64),
}

/// The verdict of one split check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitVerdict {
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// How the verdict was reached.
    pub method: CheckMethod,
    /// Requests judged (all replies, including those from destinations that should get none).
    pub n: u64,
    /// The declared false-alarm probability of this check.
    pub alpha: f64,
    /// The declared δ.
    pub min_detectable_deviation: f64,
    /// The declared power.
    pub power: f64,
    /// β = 1 - power: the largest probability of passing a gateway off by δ or more.
    pub miss_rate: f64,
    /// Fixed sample: the largest standardised deviation `|s - n p| / sqrt(n p (1 - p))` of a
    /// tested destination. Sequential: the largest log likelihood ratio (log e-value) of a
    /// tested destination against its expected share.
    pub statistic: f64,
    /// Fixed sample: the Bonferroni-combined exact two-sided binomial p-value. Sequential: the
    /// Bonferroni-combined anytime-valid p-value at the stopping time (valid at any stopping
    /// time). 1 when there is nothing to test.
    /// Hits on zero-weight or unknown destinations fail the check regardless of it.
    pub p_value: f64,
    /// Per destination, in configuration order.
    pub destinations: Vec<DestinationResult>,
    /// Zero-weight or unknown destinations that answered, with their counts.
    pub zero_weight_leaks: Vec<(String, u64)>,
    /// Upper confidence bound (at 1 - alpha) on the share of traffic that went where it should
    /// not (zero-weight destinations); `None` when the spec has no zero-weight destination.
    pub leak_upper_bound: Option<f64>,
    /// How surely a small leak to the zero-weight destinations would have been caught at this
    /// `n`; `None` when the spec has no zero-weight destination.
    pub leak_guarantee: Option<LeakGuarantee>,
    /// The largest deviation from the expected shares not excluded at the miss rate β (by the
    /// one-sided exact bounds for a fixed sample, by the edge ratio tests for a sequential
    /// check), leaks included. A pass needs it at δ or below: this is what a pass claims.
    pub unexcluded_deviation: f64,
    /// Fixed sample only: the smallest deviation this `n` fails with the declared power (a
    /// property of the sample size, not of the data). `None` for a sequential check.
    pub detectable_deviation: Option<f64>,
    /// Every violation (or, when inconclusive, what is missing), human readable.
    pub reasons: Vec<String>,
}

/// What a split with zero-weight destinations guarantees about leaks to them.
///
/// Any reply from a zero-weight destination fails the check, so a gateway sending a share `rate`
/// of the traffic there survives `n` requests unseen with probability `(1 - rate)^n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LeakGuarantee {
    /// The leak share the check is sized for ([`super::CheckSettings::min_detectable_leak`]).
    pub rate: f64,
    /// The declared probability of catching it ([`super::CheckSettings::leak_power`]).
    pub power: f64,
    /// Requests needed for that probability, `ceil(ln(1 - power) / ln(1 - rate))`; the check does
    /// not pass before.
    pub required_requests: u64,
    /// The probability that a leak of `rate` would have hit at least once within the requests
    /// judged: `1 - (1 - rate)^n`.
    pub achieved: f64,
}

impl LeakGuarantee {
    pub(crate) fn at(rate: f64, power: f64, required_requests: u64, n: u64) -> Self {
        Self {
            rate,
            power,
            required_requests,
            achieved: super::intervals::leak_detection_probability(rate, n),
        }
    }
}

pub(crate) fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// A share as percentage points without the sign, for "δ reached X of Y points" sentences.
pub(crate) fn fmt_points(share: f64) -> String {
    format!("{:.2}", share * 100.0)
}

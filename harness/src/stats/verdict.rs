//! The verdict of a split check, as written to the run report.

use serde::Serialize;

/// The three-valued outcome of a split check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The split matches the weights: for a fixed-sample check, no significant deviation at a
    /// sample size with the declared power; for a sequential check, every share was shown to lie
    /// within δ of its expected value.
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
    /// Pearson chi-square goodness of fit at a fixed sample size.
    FixedSample {
        /// Degrees of freedom: positive-weight destinations minus one (0 when there is no
        /// goodness-of-fit test, i.e. a single positive-weight destination).
        degrees_of_freedom: usize,
        /// Requests the plan asked for.
        planned_requests: u64,
    },
    /// Beta-mixture confidence sequences, checked after every request.
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
    /// Fixed sample: Pearson's X². Sequential: the largest log likelihood ratio (log e-value)
    /// of a tested destination against its expected share.
    pub statistic: f64,
    /// Fixed sample: the chi-square p-value. Sequential: the Bonferroni-combined anytime-valid
    /// p-value at the stopping time (valid at any stopping time). 1 when there is nothing to test.
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
    /// Fixed sample: the smallest deviation detected with the declared power at this `n`.
    /// Sequential: the largest deviation from the expected shares not yet excluded by the
    /// confidence sequences. 1.0 when nothing up to 50 points is covered.
    pub achieved_min_detectable_deviation: f64,
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

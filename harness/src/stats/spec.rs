//! The configured split, the settings of a check, and their validation.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::budget::Budget;
use super::intervals::hit_free_requests_for_bound;

/// A weighted split as configured on the route: destination names and relative weights.
///
/// The expected share of destination `i` is `w_i / Σw`. A weight of 0 means "must receive no
/// traffic at all".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// `(name, weight)` in configuration order; names must be unique.
    pub destinations: Vec<(String, u32)>,
}

impl SplitSpec {
    /// Builds a spec from `(name, weight)` pairs.
    pub fn new<I, S>(destinations: I) -> Self
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        Self {
            destinations: destinations
                .into_iter()
                .map(|(name, weight)| (name.into(), weight))
                .collect(),
        }
    }

    /// The expected share of `name`, or `None` if it is not part of the split.
    pub fn expected_share(&self, name: &str) -> Option<f64> {
        let total = self.total_weight();
        self.destinations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| {
                if total == 0 {
                    0.0
                } else {
                    f64::from(*w) / total as f64
                }
            })
    }

    /// The sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.destinations.iter().map(|(_, w)| u64::from(*w)).sum()
    }
}

/// The guarantees one split check declares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckSettings {
    /// Probability that a correct gateway fails this check (the check's share of the run budget).
    pub alpha: f64,
    /// δ: the smallest deviation of any destination's share (absolute, e.g. 0.05 = 5 percentage
    /// points) that the check must detect.
    pub min_detectable_deviation: f64,
    /// `1 - β`: a gateway whose share of some destination is off by δ or more passes with
    /// probability at most β (the miss rate), and a fixed-sample check fails it with at least
    /// this probability.
    pub power: f64,
    /// The smallest share of traffic sent to zero-weight destinations that a split with such
    /// destinations must catch (absolute, e.g. 0.01 = 1 % of requests). A single hit fails the
    /// check, so catching it is a matter of sending enough requests.
    pub min_detectable_leak: f64,
    /// Probability of catching a leak of `min_detectable_leak`: a split with a zero-weight
    /// destination is never passed before `ceil(ln(1 - leak_power) / ln(1 - min_detectable_leak))`
    /// requests.
    pub leak_power: f64,
}

impl Default for CheckSettings {
    /// The whole default run budget (1e-4) for a single check, δ = 5 percentage points, power 0.99;
    /// a leak of 1 % to a zero-weight destination is caught with probability 1 - 1e-4 (917
    /// requests). A run with several checks should use [`CheckSettings::within_budget`].
    fn default() -> Self {
        Self {
            alpha: Budget::default().family_alpha,
            min_detectable_deviation: 0.05,
            power: 0.99,
            min_detectable_leak: 0.01,
            leak_power: 1.0 - 1e-4,
        }
    }
}

impl CheckSettings {
    /// The default δ and power, with `alpha` set to this check's share of `budget` when the run
    /// holds `n_checks` statistical checks.
    pub fn within_budget(budget: &Budget, n_checks: usize) -> Self {
        Self {
            alpha: budget.per_check_alpha(n_checks),
            ..Self::default()
        }
    }

    /// β = 1 - power: the probability, at most, of passing a gateway whose share of some
    /// destination is off by δ or more. A pass spends β; a fail spends α.
    pub fn miss_rate(&self) -> f64 {
        1.0 - self.power
    }

    pub(crate) fn validate(&self) -> Result<(), StatsError> {
        let CheckSettings {
            alpha,
            min_detectable_deviation,
            power,
            min_detectable_leak,
            leak_power,
        } = *self;
        if !(alpha > 0.0 && alpha < 0.5) {
            return Err(StatsError::InvalidSetting {
                field: "alpha",
                value: alpha,
                expected: "a probability in (0, 0.5)",
            });
        }
        if !(min_detectable_deviation > 0.0 && min_detectable_deviation <= 0.5) {
            return Err(StatsError::InvalidSetting {
                field: "min_detectable_deviation",
                value: min_detectable_deviation,
                expected: "a share in (0, 0.5]",
            });
        }
        if !(power > 0.5 && power < 1.0) {
            return Err(StatsError::InvalidSetting {
                field: "power",
                value: power,
                expected: "a probability in (0.5, 1)",
            });
        }
        if !(min_detectable_leak > 0.0 && min_detectable_leak <= 0.5) {
            return Err(StatsError::InvalidSetting {
                field: "min_detectable_leak",
                value: min_detectable_leak,
                expected: "a share in (0, 0.5]",
            });
        }
        if !(leak_power > 0.5 && leak_power < 1.0) {
            return Err(StatsError::InvalidSetting {
                field: "leak_power",
                value: leak_power,
                expected: "a probability in (0.5, 1)",
            });
        }
        Ok(())
    }
}

/// Why a split check cannot be planned or judged. These are configuration errors of the harness,
/// never verdicts about the gateway.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// The spec lists no destination.
    #[error("split spec: `destinations` is empty")]
    EmptySpec,
    /// The same destination name appears twice.
    #[error("split spec: destination `{name}` is listed more than once in `destinations`")]
    DuplicateDestination {
        /// The repeated name.
        name: String,
    },
    /// Every weight is zero, so the route could serve nothing.
    #[error("split spec: every destination has weight 0, so the route cannot serve traffic")]
    AllWeightsZero,
    /// A numeric setting is out of range.
    #[error("check settings: `{field}` = {value} is out of range, expected {expected}")]
    InvalidSetting {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What would be accepted.
        expected: &'static str,
    },
    /// The sample-size search found no size up to its limit (a δ far too small for the budget).
    #[error(
        "plan: no sample size up to {limit} requests reaches power {power} against δ = {delta}"
    )]
    PlanTooLarge {
        /// The largest size tried.
        limit: u64,
        /// The requested power.
        power: f64,
        /// The requested δ.
        delta: f64,
    },
}

/// A validated spec in index form, shared by the fixed and sequential checks.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) names: Vec<String>,
    pub(crate) shares: Vec<f64>,
    /// Indices (into `names`) of destinations with a positive weight.
    pub(crate) nonzero: Vec<usize>,
    /// Indices of destinations with weight 0.
    pub(crate) zero: Vec<usize>,
}

impl Prepared {
    pub(crate) fn new(spec: &SplitSpec, settings: &CheckSettings) -> Result<Self, StatsError> {
        settings.validate()?;
        if spec.destinations.is_empty() {
            return Err(StatsError::EmptySpec);
        }
        for (i, (name, _)) in spec.destinations.iter().enumerate() {
            if spec.destinations[..i]
                .iter()
                .any(|(other, _)| other == name)
            {
                return Err(StatsError::DuplicateDestination { name: name.clone() });
            }
        }
        let total = spec.total_weight();
        if total == 0 {
            return Err(StatsError::AllWeightsZero);
        }
        let shares = spec
            .destinations
            .iter()
            .map(|(_, w)| f64::from(*w) / total as f64)
            .collect();
        let (nonzero, zero) =
            (0..spec.destinations.len()).partition(|&i| spec.destinations[i].1 > 0);
        Ok(Self {
            names: spec.destinations.iter().map(|(n, _)| n.clone()).collect(),
            shares,
            nonzero,
            zero,
        })
    }

    /// Requests after which a leak of `min_detectable_leak` to the zero-weight destinations has
    /// been caught with probability `leak_power`; `None` when the spec has none.
    pub(crate) fn leak_requests(&self, settings: &CheckSettings) -> Option<u64> {
        (!self.zero.is_empty()).then(|| {
            hit_free_requests_for_bound(settings.min_detectable_leak, 1.0 - settings.leak_power)
        })
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_specs_and_settings_are_rejected_with_the_field_named() {
        let ok = CheckSettings::default();
        assert_eq!(
            Prepared::new(&SplitSpec::new(Vec::<(String, u32)>::new()), &ok).err(),
            Some(StatsError::EmptySpec)
        );
        let dup = SplitSpec::new([("a", 1), ("a", 2)]);
        assert!(matches!(
            Prepared::new(&dup, &ok),
            Err(StatsError::DuplicateDestination { name }) if name == "a"
        ));
        assert_eq!(
            Prepared::new(&SplitSpec::new([("a", 0), ("b", 0)]), &ok).err(),
            Some(StatsError::AllWeightsZero)
        );
        let bad = CheckSettings { power: 1.0, ..ok };
        let err = Prepared::new(&SplitSpec::new([("a", 1)]), &bad).err();
        assert!(
            matches!(
                &err,
                Some(StatsError::InvalidSetting { field: "power", .. })
            ),
            "{err:?}"
        );
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("`power`")
        );
    }

    #[test]
    fn shares_follow_the_weights_and_zero_weights_are_separated() {
        let spec = SplitSpec::new([("v1", 80), ("v2", 20), ("v3", 0)]);
        let p = Prepared::new(&spec, &CheckSettings::default()).expect("valid");
        assert_eq!(p.shares, vec![0.8, 0.2, 0.0]);
        assert_eq!(p.nonzero, vec![0, 1]);
        assert_eq!(p.zero, vec![2]);
        assert_eq!(spec.expected_share("v2"), Some(0.2));
        assert_eq!(spec.expected_share("v9"), None);
    }
}

//! Exact binomial tests for the fixed-sample check, and its sample size.
//!
//! Each tested destination's count after `n` requests is binomial with its true share, whatever
//! the other destinations do, so every decision below is a pair of integer boundaries computed
//! from exact binomial tails (no normal or chi-square approximation):
//!
//! * **fail** (spends α): the equal-tailed exact test of the expected share `p0` at level
//!   `α / m` (Bonferroni over the `m` tested destinations). Its size is at most `α / m` at every
//!   `n`, whatever the share, so a correct gateway fails with probability at most α.
//! * **pass** (spends β = 1 - power): two one-sided exact tests (TOST) per destination, of
//!   `share <= p0 - δ` and of `share >= p0 + δ`, each at level β. A pass needs all of them to
//!   reject, so a gateway off by δ or more on some destination passes with probability at most
//!   β: its one offending side must have rejected wrongly.
//!
//! Between the two regions the verdict is inconclusive. The plan picks the smallest `n` at which
//! a gateway on an edge `p0 ± δ` fails with at least the declared power, and a correct gateway
//! lands outside the pass region with probability at most α.

use statrs::distribution::{Binomial, ContinuousCDF, Normal};

use super::confidence::{Bounds, lower_tail, upper_tail};
use super::spec::{CheckSettings, Prepared};

/// The exact tests of one destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExactTest {
    /// The destination's position in the spec.
    pub(crate) index: usize,
    pub(crate) p0: f64,
    delta: f64,
    /// Each tail of the fail test: `α / (2m)`.
    fail_tail: f64,
    /// β.
    miss_rate: f64,
}

/// An alternative the fixed plan is sized against: one destination's share on an edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EdgeAlternative {
    /// Position in the spec.
    pub(crate) index: usize,
    pub(crate) p0: f64,
    pub(crate) p1: f64,
}

/// The largest `k` in `[-1, n]` with `P(X <= k) <= tail` (-1 when even `P(X = 0)` exceeds it).
fn last_cdf_at_most(binomial: &Binomial, n: u64, tail: f64) -> i64 {
    let (mut lo, mut hi) = (-1i64, n as i64);
    if lower_tail(binomial, hi) <= tail {
        return hi;
    }
    // Invariant: cdf(lo) <= tail < cdf(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if lower_tail(binomial, mid) <= tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The smallest `k` in `[0, n + 1]` with `P(X >= k) <= tail`.
fn first_sf_at_most(binomial: &Binomial, n: u64, tail: f64) -> i64 {
    let (mut lo, mut hi) = (0i64, n as i64 + 1);
    if upper_tail(binomial, lo) <= tail {
        return lo;
    }
    // Invariant: P(X >= lo) > tail >= P(X >= hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if upper_tail(binomial, mid) <= tail {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

impl ExactTest {
    pub(crate) fn new(index: usize, p0: f64, tested: usize, settings: &CheckSettings) -> Self {
        Self {
            index,
            p0,
            delta: settings.min_detectable_deviation,
            fail_tail: settings.alpha / (2.0 * tested.max(1) as f64),
            miss_rate: settings.miss_rate(),
        }
    }

    fn edges(&self) -> impl Iterator<Item = f64> + '_ {
        [self.p0 - self.delta, self.p0 + self.delta]
            .into_iter()
            .filter(|e| *e > 1e-12 && *e < 1.0 - 1e-12)
    }

    /// The boundaries at `n`: fail iff `s <= fail_low || s >= fail_high`, pass (this destination)
    /// iff `pass_low <= s <= pass_high`.
    pub(crate) fn bounds(&self, n: u64) -> Bounds {
        let Ok(correct) = Binomial::new(self.p0, n) else {
            return super::oc::no_test_bounds(n);
        };
        let pass_low = match self.p0 - self.delta {
            e if e > 1e-12 => Binomial::new(e, n)
                .map(|b| first_sf_at_most(&b, n, self.miss_rate))
                .unwrap_or(0),
            _ => 0,
        };
        let pass_high = match self.p0 + self.delta {
            e if e < 1.0 - 1e-12 => Binomial::new(e, n)
                .map(|b| last_cdf_at_most(&b, n, self.miss_rate))
                .unwrap_or(n as i64),
            _ => n as i64,
        };
        Bounds {
            fail_low: last_cdf_at_most(&correct, n, self.fail_tail),
            fail_high: first_sf_at_most(&correct, n, self.fail_tail),
            pass_low,
            pass_high,
        }
    }

    /// The exact two-sided p-value of `s` hits in `n` (twice the smaller tail, at most 1).
    pub(crate) fn p_value(&self, n: u64, s: u64) -> f64 {
        let Ok(correct) = Binomial::new(self.p0, n) else {
            return 1.0;
        };
        let s = s as i64;
        let smaller: f64 = lower_tail(&correct, s).min(upper_tail(&correct, s));
        (2.0 * smaller).min(1.0)
    }

    /// The probability that the fail test rejects at `n` when the true share is `p`.
    fn fail_probability(&self, n: u64, bounds: &Bounds, p: f64) -> f64 {
        match Binomial::new(p, n) {
            Ok(b) => lower_tail(&b, bounds.fail_low) + upper_tail(&b, bounds.fail_high),
            Err(_) => 0.0,
        }
    }

    /// The probability that a correct gateway's count falls outside the pass interval at `n`.
    fn correct_outside_pass(&self, n: u64, bounds: &Bounds) -> f64 {
        match Binomial::new(self.p0, n) {
            Ok(b) => lower_tail(&b, bounds.pass_low - 1) + upper_tail(&b, bounds.pass_high + 1),
            Err(_) => 1.0,
        }
    }
}

/// The fixed-sample design of one split: the tests of its deciding destinations.
#[derive(Debug, Clone)]
pub(crate) struct FixedDesign {
    pub(crate) tests: Vec<ExactTest>,
    power: f64,
    alpha: f64,
}

impl FixedDesign {
    pub(crate) fn new(prepared: &Prepared, settings: &CheckSettings) -> Self {
        let positive = &prepared.nonzero;
        // Two positive shares mirror each other: one test decides for both.
        let deciding: &[usize] = match positive.len() {
            0 | 1 => &[],
            2 => &positive[..1],
            _ => positive,
        };
        let tests = deciding
            .iter()
            .map(|&i| ExactTest::new(i, prepared.shares[i], deciding.len(), settings))
            .collect();
        Self {
            tests,
            power: settings.power,
            alpha: settings.alpha,
        }
    }

    /// The weakest power at `n` over every edge alternative, and that alternative.
    pub(crate) fn min_power(&self, n: u64, delta: f64) -> (f64, Option<EdgeAlternative>) {
        let mut weakest: (f64, Option<EdgeAlternative>) = (1.0, None);
        for test in &self.tests {
            let bounds = test.bounds(n);
            for p1 in [test.p0 - delta, test.p0 + delta] {
                if !(p1 > 0.0 && p1 < 1.0) {
                    continue;
                }
                let power = test.fail_probability(n, &bounds, p1);
                if weakest.1.is_none() || power < weakest.0 {
                    weakest = (
                        power,
                        Some(EdgeAlternative {
                            index: test.index,
                            p0: test.p0,
                            p1,
                        }),
                    );
                }
            }
        }
        weakest
    }

    /// An upper bound on the probability that a correct gateway does not pass at `n` (exact with
    /// one deciding destination): some count outside its pass interval.
    pub(crate) fn correct_not_passing(&self, n: u64) -> f64 {
        self.tests
            .iter()
            .map(|t| t.correct_outside_pass(n, &t.bounds(n)))
            .sum::<f64>()
            .min(1.0)
    }

    fn holds(&self, n: u64) -> bool {
        self.tests.iter().all(|test| {
            let bounds = test.bounds(n);
            test.edges()
                .all(|p1| test.fail_probability(n, &bounds, p1) >= self.power)
        }) && self.correct_not_passing(n) <= self.alpha
    }

    /// The smallest `n` (scanning up from a normal-approximation start) at which a gateway on
    /// any edge fails with the declared power and a correct gateway misses the pass region with
    /// probability at most α. `None` without a deciding destination (the leak guarantee sizes
    /// those) or beyond `limit`.
    pub(crate) fn planned_requests(&self, limit: u64) -> Option<u64> {
        if self.tests.is_empty() {
            return Some(0);
        }
        let z = |q: f64| Normal::standard().inverse_cdf(q);
        let m = self.tests.len() as f64;
        let start = self
            .tests
            .iter()
            .map(|t| {
                let sd0 = (t.p0 * (1.0 - t.p0)).sqrt();
                let fail = (z(1.0 - self.alpha / (2.0 * m)) * sd0 + z(self.power) * 0.5) / t.delta;
                let pass = (z(self.power) + z(1.0 - self.alpha / m)) * sd0 / t.delta;
                fail.powi(2).max(pass.powi(2))
            })
            .fold(1.0f64, f64::max);
        let mut n = ((start * 0.5) as u64).max(1);
        const STRIDE: u64 = 16;
        while !self.holds(n) {
            n += STRIDE;
            if n > limit {
                return None;
            }
        }
        let mut first = n.saturating_sub(STRIDE - 1).max(1);
        while first < n && !self.holds(first) {
            first += 1;
        }
        Some(first)
    }

    /// The smallest deviation δ' that `n` fails with the declared power (bisection; 0.5 when
    /// none up to 50 points does).
    pub(crate) fn detectable_deviation(&self, n: u64) -> f64 {
        if self.tests.is_empty() || n == 0 {
            return 0.5;
        }
        let reaches = |d: f64| self.min_power(n, d).0 >= self.power;
        if !reaches(0.5) {
            return 0.5;
        }
        let (mut lo, mut hi) = (0.0, 0.5);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            if reaches(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SplitSpec;

    fn design(weights: &[u32], settings: &CheckSettings) -> FixedDesign {
        let spec = SplitSpec::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("d{i}"), *w)),
        );
        FixedDesign::new(&Prepared::new(&spec, settings).expect("valid"), settings)
    }

    #[test]
    fn boundaries_follow_the_exact_tails() {
        let settings = CheckSettings {
            alpha: 1e-3,
            ..CheckSettings::default()
        };
        let test = design(&[80, 20], &settings).tests[0];
        let n = 400;
        let b = test.bounds(n);
        let correct = Binomial::new(0.8, n).expect("valid");
        // The fail region's tails are each at most α / 2, and one more count would exceed it.
        assert!(lower_tail(&correct, b.fail_low) <= 5e-4);
        assert!(lower_tail(&correct, b.fail_low + 1) > 5e-4);
        assert!(upper_tail(&correct, b.fail_high) <= 5e-4);
        assert!(upper_tail(&correct, b.fail_high - 1) > 5e-4);
        // The pass interval: both one-sided tests at β = 0.01 reject.
        let low = Binomial::new(0.75, n).expect("valid");
        let high = Binomial::new(0.85, n).expect("valid");
        assert!(upper_tail(&low, b.pass_low) <= 0.01);
        assert!(upper_tail(&low, b.pass_low - 1) > 0.01);
        assert!(lower_tail(&high, b.pass_high) <= 0.01);
        assert!(lower_tail(&high, b.pass_high + 1) > 0.01);
        // The exact p-value agrees with the fail region.
        assert!(test.p_value(n, b.fail_low as u64) <= 1e-3);
        assert!(test.p_value(n, b.fail_low as u64 + 1) > 1e-3);
    }

    #[test]
    fn the_plan_holds_and_the_request_before_it_does_not() {
        let settings = CheckSettings {
            alpha: 1.25e-5,
            ..CheckSettings::default()
        };
        for weights in [&[80u32, 20][..], &[50, 50], &[1, 1, 1]] {
            let d = design(weights, &settings);
            let n = d.planned_requests(1 << 20).expect("plannable");
            assert!(d.holds(n), "{weights:?} at {n}");
            assert!(!d.holds(n - 1), "{weights:?} at {}", n - 1);
            let (power, _) = d.min_power(n, 0.05);
            assert!(power >= 0.99, "{weights:?}: {power}");
            assert!(d.correct_not_passing(n) <= 1.25e-5);
            assert!(d.detectable_deviation(n) <= 0.05 + 1e-9);
        }
    }
}

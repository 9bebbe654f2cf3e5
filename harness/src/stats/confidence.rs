//! Anytime-valid confidence sequences for one destination's share, and the set of them that a
//! split check runs. They sit below both the planner (`plan`, which sizes the sequential cap with
//! them) and the sequential check (`sequential`, which tabulates their boundaries), so neither
//! of those has to reach into the other for them. The mathematics is described in
//! `sequential`'s module documentation.

use statrs::distribution::{Binomial, DiscreteCDF};
use statrs::function::beta::ln_beta;

use super::intervals::{hit_free_requests_for_bound, leak_detection_probability};
use super::spec::{CheckSettings, Prepared};

/// The Beta(a, b) mixture likelihood ratio for one destination's share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Mixture {
    pub(crate) p0: f64,
    a: f64,
    b: f64,
    ln_beta_ab: f64,
}

/// Integer boundaries on a tested destination's count `s` at one `n`:
/// fail iff `s <= fail_low || s >= fail_high`; pass (for this destination) iff
/// `pass_low <= s <= pass_high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) fail_low: i64,
    pub(crate) fail_high: i64,
    pub(crate) pass_low: i64,
    pub(crate) pass_high: i64,
}

impl Mixture {
    pub(crate) fn new(p0: f64, delta: f64) -> Self {
        // Prior mean p0 and standard deviation delta: a + b + 1 = p0 (1 - p0) / delta².
        let concentration = (p0 * (1.0 - p0) / (delta * delta) - 1.0).max(2.0);
        let a = p0 * concentration;
        let b = (1.0 - p0) * concentration;
        Self {
            p0,
            a,
            b,
            ln_beta_ab: ln_beta(a, b),
        }
    }

    /// `ln Λ_n(p)` for `s` hits in `n`, `p` strictly inside (0, 1).
    pub(crate) fn log_lr(&self, n: u64, s: u64, p: f64) -> f64 {
        let (s_f, f_f) = (s as f64, (n - s) as f64);
        ln_beta(self.a + s_f, self.b + f_f) - self.ln_beta_ab - s_f * p.ln() - f_f * (-p).ln_1p()
    }

    /// `ln Λ_n(p)` is convex in `s`, decreasing on `[0, t]` and increasing on `[t, n]`.
    fn turning_point(&self, n: u64, p: f64) -> u64 {
        let s_star = p * (n as f64 - 1.0 + self.a + self.b) - self.a;
        s_star.ceil().clamp(0.0, n as f64) as u64
    }

    /// The largest `s <= t` with `ln Λ_n(p) >= c`, or -1; `guess` only speeds the search.
    fn last_rejected_below(&self, n: u64, p: f64, c: f64, guess: Option<i64>) -> i64 {
        let t = self.turning_point(n, p) as i64;
        let rejected = |s: i64| self.log_lr(n, s as u64, p) >= c;
        match guess {
            Some(g) => {
                // The rejected set is a prefix of [0, t]: walk down out of the accepted part,
                // or up while the next point is still rejected.
                let mut x = g.clamp(-1, t);
                if x >= 0 && !rejected(x) {
                    while x >= 0 && !rejected(x) {
                        x -= 1;
                    }
                } else {
                    while x < t && rejected(x + 1) {
                        x += 1;
                    }
                }
                x
            }
            None => {
                if !rejected(0) {
                    return -1;
                }
                let (mut lo, mut hi) = (0, t);
                if rejected(hi) {
                    return hi;
                }
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if rejected(mid) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
        }
    }

    /// The smallest `s >= t` with `ln Λ_n(p) >= c`, or `n + 1`.
    fn first_rejected_above(&self, n: u64, p: f64, c: f64, guess: Option<i64>) -> i64 {
        let t = self.turning_point(n, p) as i64;
        let top = n as i64;
        let rejected = |s: i64| self.log_lr(n, s as u64, p) >= c;
        match guess {
            Some(g) => {
                // The rejected set is a suffix of [t, n]: the mirror image of the walk above.
                let mut x = g.clamp(t, top + 1);
                if x <= top && !rejected(x) {
                    while x <= top && !rejected(x) {
                        x += 1;
                    }
                } else {
                    while x > t && rejected(x - 1) {
                        x -= 1;
                    }
                }
                x
            }
            None => {
                if !rejected(top) {
                    return top + 1;
                }
                let (mut lo, mut hi) = (t, top);
                if rejected(lo) {
                    return lo;
                }
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if rejected(mid) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                hi
            }
        }
    }

    /// The boundaries at `n` for the fail threshold `c = ln(m / α)`, the pass threshold
    /// `c_pass` and margin `delta`; `previous` (the boundaries at `n - 1`) makes the search a
    /// few steps long.
    pub(crate) fn bounds(
        &self,
        n: u64,
        delta: f64,
        (c, c_pass): (f64, f64),
        previous: Option<Bounds>,
    ) -> Bounds {
        let upper_edge = self.p0 + delta;
        let lower_edge = self.p0 - delta;
        let top = n as i64;
        Bounds {
            fail_low: self.last_rejected_below(n, self.p0, c, previous.map(|b| b.fail_low)),
            fail_high: self.first_rejected_above(n, self.p0, c, previous.map(|b| b.fail_high)),
            pass_high: if upper_edge >= 1.0 - 1e-12 {
                top
            } else {
                self.last_rejected_below(n, upper_edge, c_pass, previous.map(|b| b.pass_high))
            },
            pass_low: if lower_edge <= 1e-12 {
                0
            } else {
                self.first_rejected_above(n, lower_edge, c_pass, previous.map(|b| b.pass_low))
            },
        }
    }

    /// The confidence sequence `{p : ln Λ_n(p) < c}` at `(n, s)`: an interval around `s / n`.
    pub(crate) fn confidence_interval(&self, n: u64, s: u64, c: f64) -> (f64, f64) {
        if n == 0 {
            return (0.0, 1.0);
        }
        let p_hat = s as f64 / n as f64;
        let outside = |p: f64| self.log_lr(n, s, p) >= c;
        let lower = if s == 0 {
            0.0
        } else {
            let (mut lo, mut hi) = (0.0, p_hat);
            for _ in 0..80 {
                let mid = 0.5 * (lo + hi);
                if outside(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let upper = if s == n {
            1.0
        } else {
            let (mut lo, mut hi) = (p_hat, 1.0);
            for _ in 0..80 {
                let mid = 0.5 * (lo + hi);
                if outside(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        };
        (lower, upper)
    }
}

/// The confidence sequences of one check, without the per-`n` tables.
#[derive(Debug, Clone)]
pub(crate) struct SequentialTests {
    /// `(destination index, mixture)` for every positive-weight destination when there are at
    /// least two (none otherwise); the first `tested` of them make decisions.
    pub(crate) mixtures: Vec<(usize, Mixture)>,
    pub(crate) tested: usize,
    /// `ln(m / α)` with `m = tested`: a share is excluded (fail) beyond it.
    pub(crate) threshold: f64,
    /// `ln(m / α_pass)` with `α_pass = min(α, (1 - power) / 2)`: the edges `p ± δ` must be
    /// excluded beyond it to pass, so a split off by δ passes with probability <= α_pass / m,
    /// which leaves room for the declared power even at test-friendly levels of α.
    pub(crate) pass_threshold: f64,
    pub(crate) alpha_pass: f64,
    pub(crate) delta: f64,
    /// Hit-free requests after which the upper confidence bound on the leak rate is at most δ,
    /// at confidence `1 - α_pass` (a leak of δ survives that many requests unseen with
    /// probability at most `α_pass`), and, with zero-weight destinations, after which a leak of
    /// `min_detectable_leak` has been caught with probability `leak_power`.
    pub(crate) leak_pass_after: u64,
}

impl SequentialTests {
    pub(crate) fn new(prepared: &Prepared, settings: &CheckSettings) -> Self {
        let delta = settings.min_detectable_deviation;
        let mixtures: Vec<(usize, Mixture)> = if prepared.nonzero.len() >= 2 {
            prepared
                .nonzero
                .iter()
                .map(|&i| (i, Mixture::new(prepared.shares[i], delta)))
                .collect()
        } else {
            Vec::new()
        };
        let tested = if mixtures.len() == 2 {
            1
        } else {
            mixtures.len()
        };
        let m = tested.max(1) as f64;
        let alpha_pass = settings.alpha.min((1.0 - settings.power) / 2.0);
        Self {
            mixtures,
            tested,
            threshold: (m / settings.alpha).ln(),
            pass_threshold: (m / alpha_pass).ln(),
            alpha_pass,
            delta,
            leak_pass_after: hit_free_requests_for_bound(delta, alpha_pass)
                .max(prepared.leak_requests(settings).unwrap_or(0)),
        }
    }

    pub(crate) fn thresholds(&self) -> (f64, f64) {
        (self.threshold, self.pass_threshold)
    }

    /// A lower bound on the probability that a gateway off by at least δ on some destination
    /// fails within `cap` requests, minimised over the alternatives.
    ///
    /// For a shifted destination `j` with true share `p1` (|p1 - p_j| >= δ): the check does not
    /// fail by `cap` only if it passed earlier (which needs `Λ(p1) >= m / α_pass`: probability
    /// <= α_pass / m)
    /// or `S_cap` is outside the fail region at `cap`. The latter is an exact binomial tail, and
    /// it only grows as `p1` moves further away. For a leak of δ (zero-weight or unknown
    /// destination), the check passes no earlier than `leak_pass_after` hit-free requests.
    pub(crate) fn power_lower_bound(&self, cap: u64) -> f64 {
        let hit_free = cap.min(self.leak_pass_after);
        let mut weakest = leak_detection_probability(self.delta, hit_free);
        let wrong_pass = self.alpha_pass / self.tested.max(1) as f64;
        for (_, mixture) in self.mixtures.iter().take(self.tested) {
            let b = mixture.bounds(cap, self.delta, self.thresholds(), None);
            for p1 in [mixture.p0 - self.delta, mixture.p0 + self.delta] {
                if !(0.0..=1.0).contains(&p1) {
                    continue;
                }
                let Ok(binomial) = Binomial::new(p1, cap) else {
                    continue;
                };
                let low = if b.fail_low >= 0 {
                    binomial.cdf(b.fail_low as u64)
                } else {
                    0.0
                };
                let high = if b.fail_high == 0 {
                    1.0
                } else if b.fail_high as u64 <= cap {
                    binomial.sf(b.fail_high as u64 - 1)
                } else {
                    0.0
                };
                weakest = weakest.min((low + high - wrong_pass).max(0.0));
            }
        }
        weakest
    }
    /// A lower bound on the probability that a correct gateway passes within `cap` requests.
    ///
    /// A correct gateway does not pass by `cap` only if it fails first (probability <= `alpha`)
    /// or some tested count is outside its pass interval at `cap` (exact binomial tails under the
    /// expected shares; Bonferroni over the tested destinations). Zero-weight destinations never
    /// answer a correct gateway; the caller makes sure `cap >= leak_pass_after`.
    pub(crate) fn pass_probability_lower_bound(&self, cap: u64, alpha: f64) -> f64 {
        let mut miss = alpha;
        for (_, mixture) in self.mixtures.iter().take(self.tested) {
            let b = mixture.bounds(cap, self.delta, self.thresholds(), None);
            let Ok(binomial) = Binomial::new(mixture.p0, cap) else {
                return 0.0;
            };
            let below = if b.pass_low > 0 {
                binomial.cdf((b.pass_low - 1) as u64)
            } else {
                0.0
            };
            let above = if b.pass_high < 0 {
                1.0
            } else if (b.pass_high as u64) < cap {
                binomial.sf(b.pass_high as u64)
            } else {
                0.0
            };
            miss += below + above;
        }
        (1.0 - miss).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabulated_boundaries_equal_the_direct_search() {
        let m = Mixture::new(0.8, 0.05);
        let c = (1.0f64 / 1e-3).ln();
        let mut previous = None;
        for n in 0..3000 {
            let walked = m.bounds(n, 0.05, (c, c + 1.0), previous);
            previous = Some(walked);
            if n.is_multiple_of(97) || n < 50 {
                assert_eq!(walked, m.bounds(n, 0.05, (c, c + 1.0), None), "n = {n}");
            }
        }
    }

    #[test]
    fn boundaries_agree_with_the_likelihood_ratio() {
        let m = Mixture::new(1.0 / 3.0, 0.05);
        let c = (3.0f64 / 1e-4).ln();
        let n = 2500;
        let b = m.bounds(n, 0.05, (c, c), None);
        for s in 0..=n {
            let fails = m.log_lr(n, s, m.p0) >= c;
            assert_eq!(
                fails,
                (s as i64) <= b.fail_low || (s as i64) >= b.fail_high,
                "s = {s}"
            );
            let (lo, hi) = m.confidence_interval(n, s, c);
            let inside = lo >= m.p0 - 0.05 && hi <= m.p0 + 0.05;
            let passes = b.pass_low <= s as i64 && s as i64 <= b.pass_high;
            // The interval endpoints come from bisection; allow disagreement only at a hair's
            // breadth from the edges.
            if inside != passes {
                let gap = (lo - (m.p0 - 0.05)).abs().min((hi - (m.p0 + 0.05)).abs());
                assert!(gap < 1e-9, "s = {s}: interval ({lo}, {hi}), bounds {b:?}");
            }
        }
    }
}

//! Anytime-valid confidence sequences for one destination's share, and the set of them that a
//! split check runs. They sit below both the planner (`plan`, which sizes the sequential cap with
//! them) and the sequential check (`sequential`, which tabulates their boundaries), so neither
//! of those has to reach into the other for them. The mathematics is described in
//! `sequential`'s module documentation.

use statrs::distribution::{Binomial, DiscreteCDF};
use statrs::function::beta::ln_beta;

use super::intervals::hit_free_requests_for_bound;
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
/// fail iff `s <= fail_low || s >= fail_high` (the mixture at level α / m); pass (for this
/// destination) iff `pass_low <= s <= pass_high` (both edge tests of [`PassEdges`] at β).
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

    /// The fail boundaries at `n` for the threshold `c = ln(m / α)`: a count `s` fails iff
    /// `s <= low || s >= high`. `previous` (the boundaries at `n - 1`) makes the search a few
    /// steps long.
    pub(crate) fn fail_bounds(&self, n: u64, c: f64, previous: Option<(i64, i64)>) -> (i64, i64) {
        (
            self.last_rejected_below(n, self.p0, c, previous.map(|b| b.0)),
            self.first_rejected_above(n, self.p0, c, previous.map(|b| b.1)),
        )
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

/// The pass side of one destination's test: two sequential probability ratio tests of the
/// expected share `p0` against the edges `p0 - δ` and `p0 + δ` of the equivalence band.
///
/// The destination passes at `n` when both likelihood ratios `L(p0) / L(edge)` reach `1 / β`
/// (β = 1 - power, the declared miss rate). For a gateway whose true share `p` lies beyond an
/// edge (`p <= p0 - δ`, or `p >= p0 + δ`), the ratio against that edge is a nonnegative
/// supermartingale starting at 1 (a martingale when `p` is the edge itself), so by Ville's
/// inequality it ever reaches `1 / β` with probability at most β. A pass needs it to, so such a
/// gateway passes with probability at most β, at any stopping time and whatever else the check
/// does. No Bonferroni factor is needed over destinations or edges: a gateway off by δ is off on
/// one side of one destination, and that one ratio alone bounds its pass probability.
///
/// `ln L(p0) / L(e)` is linear in the count, so each edge gives one linear boundary (Wald's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PassEdges {
    pub(crate) p0: f64,
    delta: f64,
    /// `ln(1 / β)`.
    c: f64,
}

/// Slack on the linear boundaries so that rounding never lets a count pass whose ratio is a
/// hair short of `1 / β`.
const BOUNDARY_SLACK: f64 = 1e-9;

impl PassEdges {
    pub(crate) fn new(p0: f64, delta: f64, miss_rate: f64) -> Self {
        Self {
            p0,
            delta,
            c: (1.0 / miss_rate).ln(),
        }
    }

    fn low_edge(&self) -> Option<f64> {
        let e = self.p0 - self.delta;
        (e > 1e-12).then_some(e)
    }

    fn high_edge(&self) -> Option<f64> {
        let e = self.p0 + self.delta;
        (e < 1.0 - 1e-12).then_some(e)
    }

    /// `ln L(p0) / L(p)` for `s` hits in `n`.
    pub(crate) fn log_ratio(&self, n: u64, s: u64, p: f64) -> f64 {
        let (s, f) = (s as f64, (n - s) as f64);
        let hit = if s > 0.0 { s * (self.p0 / p).ln() } else { 0.0 };
        let miss = if f > 0.0 {
            f * ((1.0 - self.p0) / (1.0 - p)).ln()
        } else {
            0.0
        };
        hit + miss
    }

    /// The smallest count that passes the lower-edge test at `n` (0 without a lower edge).
    ///
    /// `s ln(p0 / e) - (n - s) ln((1 - e) / (1 - p0)) >= c`, i.e.
    /// `s >= (c + n D) / (C + D)` with `C = ln(p0 / e)`, `D = ln((1 - e) / (1 - p0))`.
    pub(crate) fn pass_low(&self, n: u64) -> i64 {
        let Some(e) = self.low_edge() else {
            return 0;
        };
        let c_hit = (self.p0 / e).ln();
        let d_miss = ((1.0 - e) / (1.0 - self.p0)).ln();
        ((self.c + n as f64 * d_miss) / (c_hit + d_miss) + BOUNDARY_SLACK).ceil() as i64
    }

    /// The largest count that passes the upper-edge test at `n` (`n` without an upper edge).
    ///
    /// `(n - s) ln((1 - p0) / (1 - e)) - s ln(e / p0) >= c`, i.e.
    /// `s <= (n A - c) / (A + B)` with `A = ln((1 - p0) / (1 - e))`, `B = ln(e / p0)`.
    pub(crate) fn pass_high(&self, n: u64) -> i64 {
        let Some(e) = self.high_edge() else {
            return n as i64;
        };
        let a_miss = ((1.0 - self.p0) / (1.0 - e)).ln();
        let b_hit = (e / self.p0).ln();
        ((n as f64 * a_miss - self.c) / (a_miss + b_hit) - BOUNDARY_SLACK).floor() as i64
    }

    /// The shares not yet excluded in favour of `p0` at the miss rate:
    /// `{p : ln L(p0) / L(p) < ln(1 / β)}`, an interval around `p0` (the ratio is convex in `p`
    /// and 0 at `p0`). The check passes a destination when it lies inside `p0 ± δ`.
    pub(crate) fn unexcluded(&self, n: u64, s: u64) -> (f64, f64) {
        let inside = |p: f64| self.log_ratio(n, s, p) < self.c;
        let bisect = |mut near: f64, mut far: f64| {
            if inside(far) {
                return far;
            }
            for _ in 0..60 {
                let mid = 0.5 * (near + far);
                if inside(mid) {
                    near = mid;
                } else {
                    far = mid;
                }
            }
            far
        };
        (bisect(self.p0, 0.0), bisect(self.p0, 1.0))
    }
}

/// One tested destination: the mixture that fails it and the edges that pass it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DestinationTest {
    /// Its position in the spec.
    pub(crate) index: usize,
    pub(crate) mixture: Mixture,
    pub(crate) edges: PassEdges,
}

impl DestinationTest {
    /// The boundaries at `n` for the fail threshold `c`; `previous` speeds up the search.
    pub(crate) fn bounds(&self, n: u64, c: f64, previous: Option<Bounds>) -> Bounds {
        let (fail_low, fail_high) =
            self.mixture
                .fail_bounds(n, c, previous.map(|b| (b.fail_low, b.fail_high)));
        Bounds {
            fail_low,
            fail_high,
            pass_low: self.edges.pass_low(n),
            pass_high: self.edges.pass_high(n),
        }
    }
}

/// The tests of one sequential check, without the per-`n` tables.
#[derive(Debug, Clone)]
pub(crate) struct SequentialTests {
    /// One per positive-weight destination when there are at least two (none otherwise); the
    /// first `tested` of them make decisions. With exactly two, one decides: the other share
    /// mirrors it.
    pub(crate) destinations: Vec<DestinationTest>,
    pub(crate) tested: usize,
    /// `ln(m / α)` with `m = tested`: a share is excluded (fail) beyond it.
    pub(crate) threshold: f64,
    /// β = 1 - power: the probability of passing a gateway off by δ.
    pub(crate) miss_rate: f64,
    pub(crate) delta: f64,
    /// Hit-free requests before a pass: the upper bound on the share of zero-weight and unknown
    /// destinations, at confidence `1 - β`, is at most δ (a leak of δ survives that many
    /// requests unseen with probability at most β); with zero-weight destinations, also the
    /// requests after which a leak of `min_detectable_leak` has been caught with probability
    /// `leak_power`.
    pub(crate) leak_pass_after: u64,
}

impl SequentialTests {
    pub(crate) fn new(prepared: &Prepared, settings: &CheckSettings) -> Self {
        let delta = settings.min_detectable_deviation;
        let miss_rate = settings.miss_rate();
        let destinations: Vec<DestinationTest> = if prepared.nonzero.len() >= 2 {
            prepared
                .nonzero
                .iter()
                .map(|&i| DestinationTest {
                    index: i,
                    mixture: Mixture::new(prepared.shares[i], delta),
                    edges: PassEdges::new(prepared.shares[i], delta, miss_rate),
                })
                .collect()
        } else {
            Vec::new()
        };
        let tested = if destinations.len() == 2 {
            1
        } else {
            destinations.len()
        };
        let m = tested.max(1) as f64;
        Self {
            destinations,
            tested,
            threshold: (m / settings.alpha).ln(),
            miss_rate,
            delta,
            leak_pass_after: hit_free_requests_for_bound(delta, miss_rate)
                .max(prepared.leak_requests(settings).unwrap_or(0)),
        }
    }

    /// The destinations that decide.
    pub(crate) fn deciding(&self) -> &[DestinationTest] {
        &self.destinations[..self.tested]
    }

    /// Bounds (exact binomial tails, union over the deciding destinations) that size the cap
    /// when the exact operating characteristics are out of reach (three or more deciding
    /// destinations):
    ///
    /// * `undecided`: an upper bound on the probability that a correct gateway has not passed
    ///   or failed by `cap`: at `cap` every deciding count inside its pass interval means a
    ///   pass, so the union of the tails outside them bounds it;
    /// * `fails`: a lower bound on the probability that a gateway whose share of one deciding
    ///   destination sits on an edge `p0 ± δ` has failed by `cap`, minimised over destinations
    ///   and edges: its count at `cap` in the fail region, less the chance (at most β) that it
    ///   passed before.
    pub(crate) fn cap_bounds(&self, cap: u64) -> (f64, f64) {
        let mut undecided = 0.0;
        let mut fails: f64 = 1.0;
        for test in self.deciding() {
            let b = test.bounds(cap, self.threshold, None);
            let p0 = test.edges.p0;
            if let Ok(correct) = Binomial::new(p0, cap) {
                undecided +=
                    lower_tail(&correct, b.pass_low - 1) + upper_tail(&correct, b.pass_high + 1);
            }
            for p1 in [p0 - self.delta, p0 + self.delta] {
                if !(p1 > 0.0 && p1 < 1.0) {
                    continue;
                }
                let Ok(shifted) = Binomial::new(p1, cap) else {
                    continue;
                };
                let in_fail = lower_tail(&shifted, b.fail_low) + upper_tail(&shifted, b.fail_high);
                fails = fails.min((in_fail - self.miss_rate).max(0.0));
            }
        }
        (undecided.min(1.0), fails)
    }
}

/// `P(X <= k)`, 0 for `k < 0`.
pub(crate) fn lower_tail(binomial: &Binomial, k: i64) -> f64 {
    if k < 0 { 0.0 } else { binomial.cdf(k as u64) }
}

/// `P(X >= k)`, 1 for `k <= 0`, 0 beyond the number of trials.
pub(crate) fn upper_tail(binomial: &Binomial, k: i64) -> f64 {
    if k <= 0 {
        1.0
    } else if k as u64 > binomial.n() {
        0.0
    } else {
        binomial.sf(k as u64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walked_fail_boundaries_equal_the_direct_search() {
        let m = Mixture::new(0.8, 0.05);
        let c = (1.0f64 / 1e-3).ln();
        let mut previous = None;
        for n in 0..3000 {
            let walked = m.fail_bounds(n, c, previous);
            previous = Some(walked);
            if n.is_multiple_of(97) || n < 50 {
                assert_eq!(walked, m.fail_bounds(n, c, None), "n = {n}");
            }
        }
    }

    #[test]
    fn boundaries_agree_with_the_likelihood_ratios() {
        let test = DestinationTest {
            index: 0,
            mixture: Mixture::new(1.0 / 3.0, 0.05),
            edges: PassEdges::new(1.0 / 3.0, 0.05, 0.01),
        };
        let c = (3.0f64 / 1e-4).ln();
        let (low_edge, high_edge) = (1.0 / 3.0 - 0.05, 1.0 / 3.0 + 0.05);
        for n in [1u64, 10, 400, 2500] {
            let b = test.bounds(n, c, None);
            for s in 0..=n {
                let fails = test.mixture.log_lr(n, s, test.mixture.p0) >= c;
                assert_eq!(
                    fails,
                    (s as i64) <= b.fail_low || (s as i64) >= b.fail_high,
                    "n = {n}, s = {s}"
                );
                let ln_beta = (1.0f64 / 0.01).ln();
                let passes = test.edges.log_ratio(n, s, low_edge) >= ln_beta
                    && test.edges.log_ratio(n, s, high_edge) >= ln_beta;
                assert_eq!(
                    passes,
                    b.pass_low <= s as i64 && s as i64 <= b.pass_high,
                    "n = {n}, s = {s}, {b:?}"
                );
                // The unexcluded interval lies inside the band exactly when the count passes
                // (up to the bisection's resolution at the edges).
                let (lo, hi) = test.edges.unexcluded(n, s);
                let inside = lo >= low_edge - 1e-12 && hi <= high_edge + 1e-12;
                if inside != passes {
                    let gap = (lo - low_edge).abs().min((hi - high_edge).abs());
                    assert!(gap < 1e-9, "n = {n}, s = {s}: ({lo}, {hi})");
                }
            }
        }
    }

    #[test]
    fn an_edge_at_zero_or_one_is_not_tested() {
        // 97/3 with δ = 5 points: the upper edge of 0.97 is past 1, the lower edge of 0.03 below 0.
        let high = PassEdges::new(0.97, 0.05, 0.01);
        assert_eq!(high.pass_high(500), 500);
        assert!(high.pass_low(500) > 0);
        let low = PassEdges::new(0.03, 0.05, 0.01);
        assert_eq!(low.pass_low(500), 0);
        assert!(low.pass_high(500) < 500);
    }
}

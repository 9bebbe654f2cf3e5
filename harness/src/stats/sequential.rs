//! The sequential split check: anytime-valid confidence sequences with a three-way verdict.
//!
//! For every tested destination `j` with expected share `p_j`, the hits `S_n` after `n` requests
//! are Bernoulli with the true share. The Beta-mixture likelihood ratio
//!
//! ```text
//! Λ_n(p) = B(a + S_n, b + n - S_n) / B(a, b) / (p^S_n (1 - p)^(n - S_n))
//! ```
//!
//! is, for the true `p`, a nonnegative martingale starting at 1, so by Ville's inequality
//! `P(∃ n: Λ_n(p) >= m / α) <= α / m`. Hence `{p : Λ_n(p) < m / α}` is a confidence sequence:
//! it covers the true share at every `n` simultaneously, whatever the stopping rule. With one
//! sequence per tested destination (Bonferroni over `m` of them) the check
//!
//! * **fails** as soon as some expected share `p_j` leaves its sequence (type-I error <= α, since
//!   that needs `Λ_n(p_j) >= m / α` for a correct gateway), or any zero-weight or unknown
//!   destination answers (impossible for a correct gateway);
//! * **passes** as soon as every sequence, taken at the level `α_pass = min(α, (1 - power) / 2)`,
//!   lies inside `[p_j - δ, p_j + δ]` and the leak bound is below δ (a gateway off by δ or more
//!   passes only if its true share left such a sequence: probability <= α_pass / m);
//! * is **inconclusive** at the cap `Plan::sequential_cap`, chosen so that a gateway off by δ
//!   fails before it with probability >= the declared power (computed exactly, see
//!   [`SequentialTests::power_lower_bound`]).
//!
//! With two positive-weight destinations their shares mirror each other, so one sequence tests
//! both (`m = 1`). The prior Beta(a, b) has mean `p_j` and standard deviation δ, which puts the
//! mixture's weight on the deviations the check is meant to detect.
//!
//! Per observation the check compares each tested count with four precomputed integer
//! boundaries for the current `n`, so the traffic loop can call it for every request.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use statrs::distribution::{Binomial, DiscreteCDF};
use statrs::function::beta::ln_beta;

use super::intervals::{clopper_pearson, clopper_pearson_upper, hit_free_requests_for_bound};
use super::plan::{Plan, plan_prepared};
use super::spec::{CheckSettings, Prepared, SplitSpec, StatsError};
use super::verdict::{
    CheckMethod, DestinationResult, LeakGuarantee, Outcome, SplitVerdict, percent,
};

/// Largest `n` for which boundaries are tabulated; beyond it they are computed on demand.
const MAX_TABLE: u64 = 1 << 20;

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
        let mut weakest = super::intervals::leak_detection_probability(self.delta, hit_free);
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

/// Where a sequential check stands after the requests seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SequentialState {
    /// Keep sending requests.
    Continue,
    /// Every share is shown to be within δ of its expected value.
    Pass,
    /// A violation was found; see [`SplitVerdict::reasons`].
    Fail,
    /// The cap was reached without a decision.
    Inconclusive,
}

#[derive(Debug)]
struct TestTable {
    index: usize,
    mixture: Mixture,
    bounds: Vec<Bounds>,
}

#[derive(Debug)]
struct SequentialDesign {
    prepared: Prepared,
    settings: CheckSettings,
    plan: Plan,
    tests: SequentialTests,
    tables: Vec<TestTable>,
}

impl SequentialDesign {
    fn bounds(&self, table: &TestTable, n: u64) -> Bounds {
        match table.bounds.get(n as usize) {
            Some(b) => *b,
            None => table
                .mixture
                .bounds(n, self.tests.delta, self.tests.thresholds(), None),
        }
    }
}

/// A split check that decides request by request (see the module documentation for the
/// guarantees). Cloning is cheap: the boundary tables are shared.
#[derive(Debug, Clone)]
pub struct SequentialCheck {
    design: Arc<SequentialDesign>,
    counts: Vec<u64>,
    unknown: BTreeMap<String, u64>,
    n: u64,
    state: SequentialState,
    stop_reasons: Vec<String>,
}

impl SequentialCheck {
    /// Plans the check and tabulates its boundaries up to the cap.
    pub fn new(spec: &SplitSpec, settings: &CheckSettings) -> Result<Self, StatsError> {
        let prepared = Prepared::new(spec, settings)?;
        let plan = plan_prepared(&prepared, settings)?;
        let tests = SequentialTests::new(&prepared, settings);
        let table_len = plan.sequential_cap.min(MAX_TABLE);
        let tables = tests
            .mixtures
            .iter()
            .take(tests.tested)
            .map(|&(index, mixture)| {
                let mut bounds = Vec::with_capacity(table_len as usize + 1);
                let mut previous = None;
                for n in 0..=table_len {
                    let b = mixture.bounds(n, tests.delta, tests.thresholds(), previous);
                    bounds.push(b);
                    previous = Some(b);
                }
                TestTable {
                    index,
                    mixture,
                    bounds,
                }
            })
            .collect();
        let counts = vec![0; prepared.names.len()];
        Ok(Self {
            design: Arc::new(SequentialDesign {
                prepared,
                settings: *settings,
                plan,
                tests,
                tables,
            }),
            counts,
            unknown: BTreeMap::new(),
            n: 0,
            state: SequentialState::Continue,
            stop_reasons: Vec::new(),
        })
    }

    /// The position of `name` in the spec, for [`Self::observe_index`].
    #[cfg(test)]
    pub(crate) fn design_index(&self, name: &str) -> Option<usize> {
        self.design.prepared.index_of(name)
    }

    /// A fresh check with the same spec and settings, sharing the precomputed tables.
    pub fn restart(&self) -> Self {
        Self {
            design: Arc::clone(&self.design),
            counts: vec![0; self.counts.len()],
            unknown: BTreeMap::new(),
            n: 0,
            state: SequentialState::Continue,
            stop_reasons: Vec::new(),
        }
    }

    /// The plan this check follows (its cap is `plan().sequential_cap`).
    pub fn plan(&self) -> &Plan {
        &self.design.plan
    }

    /// Requests counted so far.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The current state; anything but [`SequentialState::Continue`] is final.
    pub fn state(&self) -> SequentialState {
        self.state
    }

    /// Records one reply from `destination` and returns the new state. Replies after the check
    /// stopped are ignored: the verdict is about the requests up to the stopping time.
    pub fn observe(&mut self, destination: &str) -> SequentialState {
        if self.state != SequentialState::Continue {
            return self.state;
        }
        match self.design.prepared.index_of(destination) {
            Some(i) => self.observe_index(i),
            None => {
                *self.unknown.entry(destination.to_owned()).or_insert(0) += 1;
                self.n += 1;
                self.evaluate();
                self.state
            }
        }
    }

    /// [`Self::observe`] for the destination at position `index` of the spec.
    pub(crate) fn observe_index(&mut self, index: usize) -> SequentialState {
        if self.state != SequentialState::Continue {
            return self.state;
        }
        self.counts[index] += 1;
        self.n += 1;
        self.evaluate();
        self.state
    }

    /// Records a batch of replies (name → count) and decides once, at the new total. Checking
    /// only at batch ends keeps every guarantee (the sequences are valid at any stopping time).
    pub fn observe_counts(&mut self, counts: &BTreeMap<String, u64>) -> SequentialState {
        if self.state != SequentialState::Continue {
            return self.state;
        }
        let mut added = 0;
        for (name, &c) in counts {
            if c == 0 {
                continue;
            }
            match self.design.prepared.index_of(name) {
                Some(i) => self.counts[i] += c,
                None => *self.unknown.entry(name.clone()).or_insert(0) += c,
            }
            added += c;
        }
        if added > 0 {
            self.n += added;
            self.evaluate();
        }
        self.state
    }

    fn evaluate(&mut self) {
        let design = &*self.design;
        let n = self.n;
        let hard_failure =
            design.prepared.zero.iter().any(|&z| self.counts[z] > 0) || !self.unknown.is_empty();
        let mut failed = hard_failure;
        let mut all_pass = n >= design.tests.leak_pass_after;
        for table in &design.tables {
            let s = self.counts[table.index] as i64;
            let b = design.bounds(table, n);
            if s <= b.fail_low || s >= b.fail_high {
                failed = true;
            }
            all_pass &= b.pass_low <= s && s <= b.pass_high;
        }
        if failed {
            self.state = SequentialState::Fail;
            self.stop_reasons = self.violations();
        } else if all_pass {
            self.state = SequentialState::Pass;
        } else if n >= design.plan.sequential_cap {
            self.state = SequentialState::Inconclusive;
        }
    }

    /// Every violation at the current counts (only called when stopping).
    fn violations(&self) -> Vec<String> {
        let design = &*self.design;
        let p = &design.prepared;
        let n = self.n;
        let mut reasons = Vec::new();
        for &z in &p.zero {
            if self.counts[z] > 0 {
                reasons.push(format!(
                    "destination `{}` has weight 0 but answered {} of {n} requests",
                    p.names[z], self.counts[z]
                ));
            }
        }
        for (name, c) in &self.unknown {
            reasons.push(format!(
                "`{name}` is not a destination of this split but answered {c} of {n} requests"
            ));
        }
        let c = design.tests.threshold;
        for (index, mixture) in &design.tests.mixtures {
            let s = self.counts[*index];
            if mixture.log_lr(n, s, mixture.p0) >= c {
                let (lo, hi) = mixture.confidence_interval(n, s, c);
                reasons.push(format!(
                    "share of `{}` is {} after {n} requests; its confidence sequence [{}, {}] \
                     excludes the expected {}",
                    p.names[*index],
                    percent(s as f64 / n as f64),
                    percent(lo),
                    percent(hi),
                    percent(mixture.p0)
                ));
            }
        }
        reasons
    }

    /// The verdict for the requests seen so far. If the check is still running, the outcome is
    /// inconclusive (the caller stopped early).
    pub fn verdict(&self) -> SplitVerdict {
        let design = &*self.design;
        let p = &design.prepared;
        let settings = &design.settings;
        let tests = &design.tests;
        let n = self.n;
        let c = tests.threshold;
        let alpha_each = settings.alpha / p.names.len() as f64;
        let mut destinations = Vec::with_capacity(p.names.len());
        let mut largest_open_deviation: f64 = 0.0;
        for (i, name) in p.names.iter().enumerate() {
            let observed = self.counts[i];
            let interval = match tests.mixtures.iter().find(|(index, _)| *index == i) {
                Some((_, mixture)) => {
                    let (lo, hi) = mixture.confidence_interval(n, observed, c);
                    largest_open_deviation = largest_open_deviation
                        .max(mixture.p0 - lo)
                        .max(hi - mixture.p0);
                    (lo, hi)
                }
                None => clopper_pearson(observed, n, alpha_each),
            };
            destinations.push(DestinationResult {
                name: name.clone(),
                expected_share: p.shares[i],
                observed,
                observed_share: if n == 0 {
                    0.0
                } else {
                    observed as f64 / n as f64
                },
                interval,
            });
        }
        let zero_hits: u64 = p.zero.iter().map(|&z| self.counts[z]).sum();
        let unknown_hits: u64 = self.unknown.values().sum();
        let leak_upper_bound =
            (!p.zero.is_empty()).then(|| clopper_pearson_upper(zero_hits, n, settings.alpha));
        let leak_guarantee = p.leak_requests(settings).map(|required| {
            LeakGuarantee::at(
                settings.min_detectable_leak,
                settings.leak_power,
                required,
                n,
            )
        });
        let leak_bound_all = clopper_pearson_upper(zero_hits + unknown_hits, n, settings.alpha);
        let achieved = if n == 0 {
            1.0
        } else {
            largest_open_deviation.max(leak_bound_all).min(1.0)
        };
        let mut zero_weight_leaks: Vec<(String, u64)> = p
            .zero
            .iter()
            .filter(|&&z| self.counts[z] > 0)
            .map(|&z| (p.names[z].clone(), self.counts[z]))
            .collect();
        zero_weight_leaks.extend(self.unknown.iter().map(|(k, v)| (k.clone(), *v)));
        let statistic = tests
            .mixtures
            .iter()
            .take(tests.tested)
            .map(|(i, m)| m.log_lr(n, self.counts[*i], m.p0))
            .fold(0.0, f64::max);
        let p_value = if tests.tested == 0 {
            1.0
        } else {
            (tests.tested as f64 * (-statistic).exp()).min(1.0)
        };
        let cap = design.plan.sequential_cap;
        let (outcome, reasons) = match self.state {
            SequentialState::Pass => (Outcome::Pass, Vec::new()),
            SequentialState::Fail => (Outcome::Fail, self.stop_reasons.clone()),
            SequentialState::Inconclusive => (
                Outcome::Inconclusive,
                vec![format!(
                    "no decision within the cap of {cap} requests: deviations up to {} points \
                     are not excluded yet (declared {} points)",
                    fmt_points(achieved),
                    fmt_points(settings.min_detectable_deviation)
                )],
            ),
            SequentialState::Continue => (
                Outcome::Inconclusive,
                vec![format!(
                    "stopped by the caller after {n} requests, before the check decided \
                     (cap {cap})"
                )],
            ),
        };
        SplitVerdict {
            outcome,
            method: CheckMethod::Sequential {
                cap,
                tested_destinations: tests.tested,
            },
            n,
            alpha: settings.alpha,
            min_detectable_deviation: settings.min_detectable_deviation,
            power: settings.power,
            statistic,
            p_value,
            destinations,
            zero_weight_leaks,
            leak_upper_bound,
            leak_guarantee,
            achieved_min_detectable_deviation: achieved,
            reasons,
        }
    }
}

pub(crate) fn fmt_points(share: f64) -> String {
    format!("{:.2}", share * 100.0)
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

    #[test]
    fn a_correct_split_passes_and_a_leak_fails_at_once() {
        let spec = SplitSpec::new([("v1", 50), ("v2", 50), ("v3", 0)]);
        let mut check = SequentialCheck::new(&spec, &CheckSettings::default()).expect("valid");
        let mut state = SequentialState::Continue;
        // A perfectly alternating gateway: shares are exact, so the check passes early.
        for i in 0..check.plan().sequential_cap {
            state = check.observe(if i.is_multiple_of(2) { "v1" } else { "v2" });
            if state != SequentialState::Continue {
                break;
            }
        }
        assert_eq!(state, SequentialState::Pass);
        let verdict = check.verdict();
        assert_eq!(verdict.outcome, Outcome::Pass);
        assert!(verdict.achieved_min_detectable_deviation <= 0.05);
        assert!(verdict.leak_upper_bound.is_some_and(|b| b <= 0.05));

        let mut leaky = check.restart();
        assert_eq!(leaky.observe("v1"), SequentialState::Continue);
        assert_eq!(leaky.observe("v3"), SequentialState::Fail);
        let verdict = leaky.verdict();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(verdict.zero_weight_leaks, vec![("v3".to_owned(), 1)]);
        assert!(
            verdict.reasons[0].contains("`v3` has weight 0"),
            "{:?}",
            verdict.reasons
        );
        // Further replies do not change a final verdict.
        assert_eq!(leaky.observe("v1"), SequentialState::Fail);
        assert_eq!(leaky.n(), 2);
    }

    #[test]
    fn unknown_destinations_fail_and_batches_are_judged_at_their_end() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let mut check = SequentialCheck::new(&spec, &CheckSettings::default()).expect("valid");
        let batch = BTreeMap::from([("a".to_owned(), 10), ("b".to_owned(), 3)]);
        assert_eq!(check.observe_counts(&batch), SequentialState::Continue);
        assert_eq!(check.n(), 13);
        assert_eq!(check.observe("c"), SequentialState::Fail);
        let verdict = check.verdict();
        assert!(
            verdict
                .reasons
                .iter()
                .any(|r| r.contains("`c` is not a destination"))
        );
        assert!(verdict.leak_upper_bound.is_none());
    }

    #[test]
    fn a_stopped_early_check_is_inconclusive_and_a_gross_deviation_fails_quickly() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let template = SequentialCheck::new(&spec, &CheckSettings::default()).expect("valid");
        let mut check = template.restart();
        check.observe("a");
        let verdict = check.verdict();
        assert_eq!(verdict.outcome, Outcome::Inconclusive);
        assert!(verdict.reasons[0].contains("stopped by the caller"));
        // Weights swapped (20/80): one reply in five from `a`.
        let mut swapped = template.restart();
        let mut i = 0u64;
        while swapped.state() == SequentialState::Continue {
            swapped.observe(if i.is_multiple_of(5) { "a" } else { "b" });
            i += 1;
        }
        assert_eq!(swapped.state(), SequentialState::Fail);
        assert!(swapped.n() < 100, "n = {}", swapped.n());
        let verdict = swapped.verdict();
        assert!(verdict.p_value <= 1e-4);
        assert!(
            verdict.reasons[0].contains("excludes the expected 80.00%"),
            "{:?}",
            verdict.reasons
        );
    }
}

//! The sequential split check: it fails on anytime-valid confidence sequences and passes on
//! sequential probability ratio tests against the edges of the equivalence band.
//!
//! For every tested destination `j` with expected share `p_j`, the hits `S_n` after `n` requests
//! are Bernoulli with the true share.
//!
//! * **Fail** spends α. The Beta-mixture likelihood ratio
//!   `Λ_n(p) = B(a + S_n, b + n - S_n) / B(a, b) / (p^S_n (1 - p)^(n - S_n))` is, for the true `p`,
//!   a nonnegative martingale starting at 1, so by Ville's inequality
//!   `P(∃ n: Λ_n(p) >= m / α) <= α / m`. The check fails as soon as some expected share reaches
//!   that threshold (Bonferroni over the `m` tested destinations: a correct gateway fails with
//!   probability at most α), or as soon as a zero-weight or unknown destination answers
//!   (impossible for a correct gateway).
//! * **Pass** spends β = 1 - power, the declared miss rate. It needs, for every tested
//!   destination, both likelihood ratios `L(p_j) / L(p_j ∓ δ)` at `1 / β` or beyond
//!   ([`PassEdges`](super::confidence::PassEdges)), and enough hit-free requests for the leak
//!   guarantee. A gateway whose share of some destination is off by δ or more passes with
//!   probability at most β, whatever the stopping time. The pass is an equivalence claim: every
//!   share lies within δ of its weight, at miss rate β.
//! * **Inconclusive** at the cap (`Plan::sequential_cap`), sized so that a correct gateway is
//!   undecided there with probability at most α, and a gateway on an edge `p_j ± δ` has failed by
//!   then with probability at least `1 - 2β`.
//!
//! Holding the pass to β instead of α is what makes the check short: a correct 80/20 split passes
//! after about 900 requests on average at the walkthrough's α, instead of about 2,100. The operating characteristics
//! (probabilities of each verdict and the mean number of requests) are computed exactly by
//! dynamic programming over the binomial count ([`super::oc`]) when one destination decides,
//! and bounded otherwise.
//!
//! With two positive-weight destinations their shares mirror each other, so one destination
//! decides (`m = 1`). Per observation the check compares each tested count with four
//! precomputed integer boundaries for the current `n`, so the traffic loop can call it for every
//! request.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::confidence::{Bounds, DestinationTest, SequentialTests};
use super::intervals::{clopper_pearson, clopper_pearson_upper};
use super::oc::{OperatingPoint, Truth, no_test_bounds, operating_point};
use super::plan::{Plan, plan_prepared};
use super::spec::{CheckSettings, Prepared, SplitSpec, StatsError};
use super::verdict::{
    CheckMethod, DestinationResult, LeakGuarantee, Outcome, SplitVerdict, fmt_points, percent,
};

/// Largest `n` for which boundaries are tabulated; beyond it they are computed on demand.
const MAX_TABLE: u64 = 1 << 20;

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
    test: DestinationTest,
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
            None => table.test.bounds(n, self.tests.threshold, None),
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
            .deciding()
            .iter()
            .map(|&test| TestTable {
                test,
                bounds: tabulate(&test, tests.threshold, table_len),
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

    /// The exact operating characteristics of this check (its boundaries and cap) for a gateway
    /// that sends each request to the deciding destination with probability `truth.tested` and
    /// to a forbidden one with probability `truth.forbidden`, by dynamic programming over the
    /// count ([`super::oc`]). `None` with more than one deciding destination (three or more
    /// positive weights), whose state is not one count.
    pub fn operating_point(&self, truth: Truth) -> Option<OperatingPoint> {
        let design = &*self.design;
        let cap = design.plan.sequential_cap;
        let bounds: Vec<Bounds> = match design.tables.as_slice() {
            [] => (0..=cap).map(no_test_bounds).collect(),
            [table] if table.bounds.len() as u64 > cap => table.bounds.clone(),
            [table] => tabulate(&table.test, design.tests.threshold, cap),
            _ => return None,
        };
        Some(operating_point(
            &bounds,
            design.tests.leak_pass_after,
            cap,
            truth,
        ))
    }

    /// The expected share of the deciding destination (`None` without one, or with several).
    pub fn deciding_share(&self) -> Option<f64> {
        match self.design.tables.as_slice() {
            [table] => Some(table.test.edges.p0),
            _ => None,
        }
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
            let s = self.counts[table.test.index] as i64;
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
        for test in &design.tests.destinations {
            let (index, mixture) = (&test.index, &test.mixture);
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
        let mut unexcluded: f64 = 0.0;
        for (i, name) in p.names.iter().enumerate() {
            let observed = self.counts[i];
            let interval = match tests.destinations.iter().find(|t| t.index == i) {
                Some(test) => {
                    let (lo, hi) = test.edges.unexcluded(n, observed);
                    unexcluded = unexcluded.max(test.edges.p0 - lo).max(hi - test.edges.p0);
                    test.mixture.confidence_interval(n, observed, c)
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
        // Leaks bound the deviation too: the share that went where it should not, at 1 - β.
        let leak_bound_all =
            clopper_pearson_upper(zero_hits + unknown_hits, n, settings.miss_rate());
        let unexcluded = if n == 0 {
            1.0
        } else {
            unexcluded.max(leak_bound_all).min(1.0)
        };
        let mut zero_weight_leaks: Vec<(String, u64)> = p
            .zero
            .iter()
            .filter(|&&z| self.counts[z] > 0)
            .map(|&z| (p.names[z].clone(), self.counts[z]))
            .collect();
        zero_weight_leaks.extend(self.unknown.iter().map(|(k, v)| (k.clone(), *v)));
        let statistic = tests
            .deciding()
            .iter()
            .map(|t| t.mixture.log_lr(n, self.counts[t.index], t.mixture.p0))
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
                    fmt_points(unexcluded),
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
            miss_rate: settings.miss_rate(),
            statistic,
            p_value,
            destinations,
            zero_weight_leaks,
            leak_upper_bound,
            leak_guarantee,
            unexcluded_deviation: unexcluded,
            detectable_deviation: None,
            reasons,
        }
    }
}

/// The boundaries of `test` for `n = 0..=len`, each search started from the previous one.
pub(crate) fn tabulate(test: &DestinationTest, threshold: f64, len: u64) -> Vec<Bounds> {
    let mut bounds = Vec::with_capacity(len as usize + 1);
    let mut previous = None;
    for n in 0..=len {
        let b = test.bounds(n, threshold, previous);
        bounds.push(b);
        previous = Some(b);
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(verdict.unexcluded_deviation <= 0.05);
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

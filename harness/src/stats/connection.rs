//! Is the pick independent of the client connection? An anytime-valid test of the per-request
//! independence a weighted split promises.
//!
//! Envoy draws a destination for every request independently. A gateway that draws once per
//! connection (sticky) still has the right shares *over connections*, so a split check with few
//! connections may pass it or only see a moderately wrong share. What it cannot hide is that,
//! on one connection, a reply predicts the next one.
//!
//! The null hypothesis is composite: the replies are independent and identically distributed with
//! *some* shares `p` (not necessarily the configured ones: whether the shares are right is the
//! split check's question, so a gateway with wrong weights does not fail this check). Following
//! sequential universal inference, the e-value after `n` replies is
//!
//! ```text
//! R_n = Π_s q_s(x_s) / max_p Π_s p(x_s)
//! ```
//!
//! where `q_s` predicts reply `s` from the replies before it: from the previous reply on the same
//! connection (a Krichevsky–Trofimov estimate of the transition `previous → next` over all
//! connections), or from all earlier replies when it is the connection's first. The denominator is
//! the maximum likelihood of the replies under any i.i.d. model, `Π_j (n_j / n)^{n_j}`. For the
//! true shares `p*` of a correct gateway, `Π q_s / Π p*` is a nonnegative martingale with mean 1
//! and the denominator is at least `Π p*`, so by Ville's inequality `P(∃ n: R_n >= 1/α) <= α`
//! whatever the shares and whenever traffic stops. The check fails as soon as `R_n >= 1/α`.
//!
//! This assumes what the split check assumes too: in the order replies are observed, each one is
//! a fresh draw, independent of the replies observed before it.
//!
//! A second e-process looks at the order of requests instead of connections, for deterministic
//! schedulers (smooth weighted round robin) whose picks spread over many connections look
//! independent on each: the requests are cut, by the index they were issued with, into blocks of
//! [`ORDER_BLOCK`]; under independence the count of the first positive-weight destination in a
//! block is `Binomial(25, p)` whatever `p`, while a scheduler keeps it nearly constant (in a smooth
//! round-robin run of the mutant self-test the between-block variance was 0.3 against the
//! binomial 4.0). Blocks are judged in index order once complete (a block with a reply missing is
//! skipped once four blocks' worth of later replies wait, which depends on arrivals, not on
//! destinations); block `b` is predicted from blocks `0..b` by a mixture of the binomial at the
//! running share and three discretised normal kernels (sd 0.5, 1, 2) around its mean, and the
//! denominator is again the binomial likelihood maximised over `p`. Both e-processes are valid
//! test supermartingales under the null, so their average is one too; the check fails when the
//! average reaches `1 / α`, which costs `ln 2` against either alone.
//!
//! Power: against a gateway that repeats the connection's previous destination, `ln R_n` grows by
//! about the entropy of the shares per reply (0.5 nats for 80/20) minus a regret of order
//! `K² ln n` for `K` categories, so a sticky gateway with at least two destinations among its
//! connections fails within about a hundred replies at the levels a run uses. Power needs many
//! replies per connection, not many connections: the traffic generator keeps one connection per
//! worker for the whole step. When every connection happens to stick to the same destination, the
//! replies *are* consistent with i.i.d. shares (and this check cannot fail), but then the split
//! check sees a share of 100 % and fails instead.
//!
//! The verdict also measures how much the connection matters, whatever the e-value says: the
//! lag-1 within-connection correlation `ρ = (r − r₀) / (1 − r₀)`, where `r` is the observed share of
//! replies that repeat their connection's previous destination and `r₀ = Σ p̂_j²` what independent
//! picks with the observed shares repeat (Cohen's κ of consecutive same-connection pairs; for two
//! destinations it is the lag-1 autocorrelation of the destination indicator). The *design effect*
//! reported is `(1 + ρ) / (1 − ρ)`: the variance inflation of a share estimated from long runs of a
//! stationary chain with lag-1 correlation `ρ` and geometric decay (a connection that repeats its
//! previous pick with probability `ρ`, else draws afresh, is exactly that chain), against the
//! binomial variance the split check assumes. Above 1, the split check's error rates are too
//! optimistic by about that factor in variance; below 1 (round robin) too pessimistic. It is
//! `None` (unbounded) when `ρ >= 1`.
//!
//! Destinations are the split's positive-weight destinations plus one category for everything
//! else (zero-weight or unknown destinations, which fail the split check anyway). A split with a
//! single positive-weight destination has nothing to test.

use std::collections::HashMap;

use serde::Serialize;
use statrs::function::factorial::ln_binomial;

use super::spec::{SplitSpec, StatsError};
use super::verdict::Outcome;

/// The Krichevsky–Trofimov pseudo-count: the minimax choice for sequential prediction.
const PSEUDO_COUNT: f64 = 0.5;

/// Requests per block of the order e-process.
pub(super) const ORDER_BLOCK: u64 = 25;

/// The standard deviations of the order e-process's narrow kernels.
const KERNEL_SDS: [f64; 3] = [0.5, 1.0, 2.0];

/// The order e-process (see the module documentation).
#[derive(Debug, Clone, Default)]
struct OrderTest {
    /// Request index → whether the reply came from the first positive-weight destination.
    pending: HashMap<u64, bool>,
    next_block: u64,
    blocks: u64,
    skipped: u64,
    sum: u64,
    sum_squares: u64,
    log_prediction: f64,
    sum_ln_choose: f64,
    log_e_value: f64,
}

impl OrderTest {
    fn observe(&mut self, index: u64, hit: bool) {
        self.pending.insert(index, hit);
        loop {
            let start = self.next_block * ORDER_BLOCK;
            let complete = (start..start + ORDER_BLOCK).all(|i| self.pending.contains_key(&i));
            if complete {
                let count = (start..start + ORDER_BLOCK)
                    .filter_map(|i| self.pending.remove(&i))
                    .filter(|hit| *hit)
                    .count() as u64;
                self.judge_block(count);
            } else if self.pending.len() as u64 >= 4 * ORDER_BLOCK
                && self.pending.keys().any(|i| *i >= start + ORDER_BLOCK)
            {
                for i in start..start + ORDER_BLOCK {
                    self.pending.remove(&i);
                }
                self.skipped += 1;
            } else {
                break;
            }
            self.next_block += 1;
        }
    }

    fn judge_block(&mut self, count: u64) {
        let size = ORDER_BLOCK as f64;
        let share = (self.sum as f64 + PSEUDO_COUNT) / (self.blocks as f64 * size + 1.0);
        let mean = share * size;
        let binomial = |c: u64, p: f64| {
            (ln_binomial(ORDER_BLOCK, c)
                + c as f64 * p.ln()
                + (ORDER_BLOCK - c) as f64 * (-p).ln_1p())
            .exp()
        };
        let kernel = |c: u64, sd: f64| {
            let weight = |k: u64| (-(k as f64 - mean).powi(2) / (2.0 * sd * sd)).exp();
            weight(c) / (0..=ORDER_BLOCK).map(weight).sum::<f64>()
        };
        let prediction = (binomial(count, share)
            + KERNEL_SDS.iter().map(|sd| kernel(count, *sd)).sum::<f64>())
            / (KERNEL_SDS.len() + 1) as f64;
        self.log_prediction += prediction.max(f64::MIN_POSITIVE).ln();
        self.blocks += 1;
        self.sum += count;
        self.sum_squares += count * count;
        self.sum_ln_choose += ln_binomial(ORDER_BLOCK, count);
        let total = (self.blocks * ORDER_BLOCK) as f64;
        let hits = self.sum as f64;
        let log_max_likelihood =
            self.sum_ln_choose + n_ln_n(hits) + n_ln_n(total - hits) - n_ln_n(total);
        self.log_e_value = self.log_prediction - log_max_likelihood;
    }

    /// Between-block variance of the count over the binomial variance at the observed share.
    fn variance_ratio(&self) -> Option<f64> {
        if self.blocks < 2 {
            return None;
        }
        let b = self.blocks as f64;
        let mean = self.sum as f64 / b;
        let variance = (self.sum_squares as f64 - b * mean * mean) / (b - 1.0);
        let p = mean / ORDER_BLOCK as f64;
        let binomial = ORDER_BLOCK as f64 * p * (1.0 - p);
        (binomial > 0.0).then(|| variance / binomial)
    }
}

/// Where a connection-independence check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// No evidence (yet) that picks depend on the connection.
    Continue,
    /// The e-value reached `1 / alpha`: replies on a connection predict each other.
    Fail,
}

/// The anytime-valid test that picks do not depend on the client connection (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct ConnectionCheck {
    alpha: f64,
    /// Positive-weight destination names; category `names.len()` is everything else.
    names: Vec<String>,
    /// `ln(1 / alpha)`.
    threshold: f64,
    /// The previous category on each connection.
    previous: HashMap<u32, usize>,
    /// `transitions[a][b]`: replies in category `b` whose connection's previous reply was `a`.
    transitions: Vec<Vec<u64>>,
    transitions_from: Vec<u64>,
    /// Replies per category.
    counts: Vec<u64>,
    n: u64,
    repeats: u64,
    transitions_total: u64,
    /// `Σ ln q_s(x_s)`.
    log_prediction: f64,
    /// `Σ_j n_j ln n_j`, so that the denominator is `Σ_j n_j ln n_j - n ln n`.
    sum_n_ln_n: f64,
    log_e_value: f64,
    max_log_e_value: f64,
    state: ConnectionState,
    failed_at: Option<u64>,
    /// `ln R_n` of the per-connection e-process alone.
    connection_log_e_value: f64,
    order: OrderTest,
}

impl ConnectionCheck {
    /// A check of `spec`'s replies at false-alarm probability `alpha`.
    pub fn new(spec: &SplitSpec, alpha: f64) -> Result<Self, StatsError> {
        if !(alpha > 0.0 && alpha < 0.5) {
            return Err(StatsError::InvalidSetting {
                field: "alpha",
                value: alpha,
                expected: "a probability in (0, 0.5)",
            });
        }
        if spec.destinations.is_empty() {
            return Err(StatsError::EmptySpec);
        }
        let names: Vec<String> = spec
            .destinations
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(name, _)| name.clone())
            .collect();
        let categories = names.len() + 1;
        Ok(Self {
            alpha,
            names,
            threshold: (1.0 / alpha).ln(),
            previous: HashMap::new(),
            transitions: vec![vec![0; categories]; categories],
            transitions_from: vec![0; categories],
            counts: vec![0; categories],
            n: 0,
            repeats: 0,
            transitions_total: 0,
            log_prediction: 0.0,
            sum_n_ln_n: 0.0,
            log_e_value: 0.0,
            max_log_e_value: 0.0,
            state: ConnectionState::Continue,
            failed_at: None,
            connection_log_e_value: 0.0,
            order: OrderTest::default(),
        })
    }

    /// Whether there is anything to test: at least two positive-weight destinations.
    pub fn applies(&self) -> bool {
        self.names.len() >= 2
    }

    /// The false-alarm probability.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Replies observed.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The current state; [`ConnectionState::Fail`] is final.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Records a reply from `destination` that came over `connection`, taking the arrival order
    /// as the request order.
    pub fn observe(&mut self, connection: u32, destination: &str) -> ConnectionState {
        let index = self.n;
        self.observe_request(index, connection, destination)
    }

    /// Records the reply to request `index` (the order requests were issued in, from 0), from
    /// `destination` over `connection`.
    pub fn observe_request(
        &mut self,
        index: u64,
        connection: u32,
        destination: &str,
    ) -> ConnectionState {
        if self.state == ConnectionState::Fail || !self.applies() {
            return self.state;
        }
        let other = self.names.len();
        let x = self
            .names
            .iter()
            .position(|name| name == destination)
            .unwrap_or(other);
        let categories = (other + 1) as f64;
        let prediction = match self.previous.insert(connection, x) {
            Some(a) => {
                let p = (self.transitions[a][x] as f64 + PSEUDO_COUNT)
                    / (self.transitions_from[a] as f64 + PSEUDO_COUNT * categories);
                self.transitions[a][x] += 1;
                self.transitions_from[a] += 1;
                self.transitions_total += 1;
                self.repeats += u64::from(a == x);
                p
            }
            None => {
                (self.counts[x] as f64 + PSEUDO_COUNT) / (self.n as f64 + PSEUDO_COUNT * categories)
            }
        };
        self.log_prediction += prediction.ln();
        let before = self.counts[x] as f64;
        self.sum_n_ln_n += n_ln_n(before + 1.0) - n_ln_n(before);
        self.counts[x] += 1;
        self.n += 1;
        let log_max_likelihood = self.sum_n_ln_n - n_ln_n(self.n as f64);
        self.connection_log_e_value = self.log_prediction - log_max_likelihood;
        self.order.observe(index, x == 0);
        // ln(½ e^a + ½ e^b), computed stably.
        let (a, b) = (self.connection_log_e_value, self.order.log_e_value);
        let high = a.max(b);
        self.log_e_value = high + (0.5 * ((a - high).exp() + (b - high).exp())).ln();
        self.max_log_e_value = self.max_log_e_value.max(self.log_e_value);
        if self.log_e_value >= self.threshold {
            self.state = ConnectionState::Fail;
            self.failed_at = Some(self.n);
        }
        self.state
    }

    /// The verdict on the replies seen so far.
    pub fn verdict(&self) -> ConnectionVerdict {
        let observed_repeat_share = if self.transitions_total == 0 {
            0.0
        } else {
            self.repeats as f64 / self.transitions_total as f64
        };
        // What an i.i.d. gateway with the observed shares would repeat: Σ p̂_j².
        let iid_repeat_share = if self.n == 0 {
            0.0
        } else {
            self.counts
                .iter()
                .map(|&c| (c as f64 / self.n as f64).powi(2))
                .sum()
        };
        let outcome = match self.state {
            ConnectionState::Fail => Outcome::Fail,
            ConnectionState::Continue => Outcome::Pass,
        };
        let lag1_correlation = if self.transitions_total == 0 || iid_repeat_share >= 1.0 {
            0.0
        } else {
            ((observed_repeat_share - iid_repeat_share) / (1.0 - iid_repeat_share)).clamp(-1.0, 1.0)
        };
        let design_effect =
            (lag1_correlation < 1.0).then(|| (1.0 + lag1_correlation) / (1.0 - lag1_correlation));
        let mut reasons = Vec::new();
        let order_variance_ratio = self.order.variance_ratio();
        if self.failed_at.is_some() && self.order.log_e_value > self.connection_log_e_value {
            reasons.push(format!(
                "picks are not independent of each other: over {} blocks of {ORDER_BLOCK} \
                 consecutive requests, the count of {} varied {} times as much as independent \
                 picks vary (variance ratio {}): {}; e-value {:.3e} >= \
                 1/alpha = {:.3e} (per connection: lag-1 correlation {lag1_correlation:+.3}). If \
                 the gateway is meant to pick by round robin, per connection or by a hash key, \
                 declare it with `selection`",
                self.order.blocks,
                self.names[0],
                order_variance_ratio.map_or_else(|| "?".to_owned(), |r| format!("{r:.2}")),
                order_variance_ratio.map_or_else(|| "?".to_owned(), |r| format!("{r:.3}")),
                if order_variance_ratio.is_some_and(|r| r > 1.0) {
                    "the picks come in runs, more alike than chance makes them"
                } else {
                    "the picks are too regular for chance, as a deterministic scheduler such as \
                     round robin makes them"
                },
                self.log_e_value.exp(),
                1.0 / self.alpha
            ));
        } else if let Some(at) = self.failed_at {
            let effect =
                design_effect.map_or_else(|| "unbounded".to_owned(), |d| format!("{d:.2}"));
            let pattern = if lag1_correlation >= 0.0 {
                "stick to their connection's previous destination more often than chance"
            } else {
                "alternate on a connection more regularly than chance (a deterministic \
                 scheduler, such as round robin, looks like this)"
            };
            reasons.push(format!(
                "picks are not independent of the connection: after {at} replies over {} \
                 connections, {} of {} replies repeated their connection's previous destination \
                 ({:.1}% where independent picks with the observed shares repeat {:.1}%): picks \
                 {pattern}; lag-1 within-connection correlation {lag1_correlation:+.3}, design \
                 effect {effect}; e-value {:.3e} >= 1/alpha = {:.3e}. If the gateway is meant to \
                 pick per connection, by a hash key or by round robin, declare it with \
                 `selection`",
                self.previous.len(),
                self.repeats,
                self.transitions_total,
                observed_repeat_share * 100.0,
                iid_repeat_share * 100.0,
                self.log_e_value.exp(),
                1.0 / self.alpha
            ));
        }
        ConnectionVerdict {
            outcome,
            applies: self.applies(),
            n: self.n,
            connections: self.previous.len(),
            transitions: self.transitions_total,
            repeats: self.repeats,
            observed_repeat_share,
            iid_repeat_share,
            lag1_correlation,
            design_effect,
            order_blocks: self.order.blocks,
            order_variance_ratio,
            alpha: self.alpha,
            log_e_value: self.log_e_value,
            p_value: (-self.max_log_e_value).exp().min(1.0),
            reasons,
        }
    }
}

fn n_ln_n(x: f64) -> f64 {
    if x <= 0.0 { 0.0 } else { x * x.ln() }
}

/// The verdict of a connection-independence check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionVerdict {
    /// Fail when the e-value reached `1 / alpha`; pass otherwise (no evidence of dependence).
    pub outcome: Outcome,
    /// False when the split has fewer than two positive-weight destinations (nothing to test).
    pub applies: bool,
    /// Replies judged.
    pub n: u64,
    /// Connections they came over.
    pub connections: usize,
    /// Replies that had an earlier reply on their connection.
    pub transitions: u64,
    /// Of those, replies from the same destination as the connection's previous reply.
    pub repeats: u64,
    /// `repeats / transitions`.
    pub observed_repeat_share: f64,
    /// The repeat share independent picks with the observed shares would show, `Σ p̂_j²`.
    pub iid_repeat_share: f64,
    /// The lag-1 within-connection correlation `ρ` (Cohen's κ of consecutive same-connection
    /// pairs; see the module documentation); 0 with no such pair.
    pub lag1_correlation: f64,
    /// `(1 + ρ) / (1 − ρ)`, the variance inflation of a share estimate due to within-connection
    /// correlation; `None` when `ρ = 1` (unbounded).
    pub design_effect: Option<f64>,
    /// Blocks of [`ORDER_BLOCK`] consecutive requests the order e-process judged.
    pub order_blocks: u64,
    /// Between-block variance of the first positive-weight destination's count over the binomial
    /// variance: the design effect of the share estimate in request order (1 for independent
    /// picks, well below 1 for a round robin, above 1 for runs of one destination); `None` before
    /// two blocks.
    pub order_variance_ratio: Option<f64>,
    /// The declared false-alarm probability.
    pub alpha: f64,
    /// `ln R_n` at the last reply: the average of the per-connection and the order e-processes.
    pub log_e_value: f64,
    /// The anytime-valid p-value `min(1, 1 / max_n R_n)`.
    pub p_value: f64,
    /// Why it failed, human readable.
    pub reasons: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_80_20() -> SplitSpec {
        SplitSpec::new([("a", 80), ("b", 20)])
    }

    #[test]
    fn a_sticky_gateway_fails_quickly_and_says_why() {
        let mut check = ConnectionCheck::new(&spec_80_20(), 1e-6).expect("valid");
        assert!(check.applies());
        // Four connections, three stuck on `a` and one on `b`, replies interleaved.
        let mut state = ConnectionState::Continue;
        let mut i = 0u32;
        while state == ConnectionState::Continue {
            let connection = i % 4;
            state = check.observe(connection, if connection == 3 { "b" } else { "a" });
            i += 1;
            assert!(i < 1000, "never failed");
        }
        assert!(i < 200, "failed only after {i} replies");
        let verdict = check.verdict();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(verdict.connections, 4);
        assert_eq!(verdict.observed_repeat_share, 1.0);
        assert_eq!(verdict.lag1_correlation, 1.0);
        assert_eq!(verdict.design_effect, None);
        assert!(verdict.reasons[0].contains("design effect unbounded"));
        assert!(verdict.p_value <= 1e-6);
        assert!(
            verdict.reasons[0].contains("picks are not independent of the connection"),
            "{:?}",
            verdict.reasons
        );
        // A final verdict does not change.
        assert_eq!(check.observe(0, "b"), ConnectionState::Fail);
    }

    #[test]
    fn every_connection_on_one_destination_is_not_evidence_of_dependence() {
        // Consistent with i.i.d. shares (1, 0): only the split check can object to it.
        let mut check = ConnectionCheck::new(&spec_80_20(), 1e-6).expect("valid");
        for i in 0..5000u32 {
            assert_eq!(check.observe(i % 4, "a"), ConnectionState::Continue);
        }
        let verdict = check.verdict();
        assert_eq!(verdict.outcome, Outcome::Pass);
        assert!(verdict.log_e_value <= 0.0, "{verdict:?}");
    }

    #[test]
    fn alternating_replies_on_a_connection_are_dependence_too() {
        // A per-connection round robin: the next reply is predictable from the previous one.
        let mut check = ConnectionCheck::new(&spec_80_20(), 1e-6).expect("valid");
        let mut i = 0u32;
        while check.observe(0, if i.is_multiple_of(2) { "a" } else { "b" })
            == ConnectionState::Continue
        {
            i += 1;
            assert!(i < 1000);
        }
        let verdict = check.verdict();
        assert!(verdict.observed_repeat_share < 0.01);
        assert!(verdict.lag1_correlation < -0.9, "{verdict:?}");
        assert!(verdict.design_effect.expect("bounded") < 0.05);
        assert!(
            verdict.reasons[0].contains("round robin"),
            "{:?}",
            verdict.reasons
        );
    }

    #[test]
    fn the_design_effect_of_a_partially_sticky_connection_is_measured() {
        // Repeat the previous pick with probability 0.2, else draw 80/20 afresh: ρ = 0.2, design
        // effect 1.5. Seeded; ±0.03 on ρ is over 4 standard errors at 20 000 pairs. The e-value
        // stays below 1e300, so the check keeps counting.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut check = ConnectionCheck::new(&spec_80_20(), 1e-300).expect("valid");
        let mut previous = [0usize; 8];
        for i in 0..20_000u32 {
            let c = (i % 8) as usize;
            let pick = if i >= 8 && rng.random_bool(0.2) {
                previous[c]
            } else {
                usize::from(!rng.random_bool(0.8))
            };
            previous[c] = pick;
            check.observe(c as u32, ["a", "b"][pick]);
        }
        let verdict = check.verdict();
        assert_eq!(verdict.n, 20_000);
        assert!((verdict.lag1_correlation - 0.2).abs() < 0.03, "{verdict:?}");
        let effect = verdict.design_effect.expect("bounded");
        assert!((effect - 1.5).abs() < 0.1, "{effect}");
    }

    #[test]
    fn a_round_robin_spread_over_connections_fails_on_its_regular_order() {
        // nginx's smooth weighted round robin (a a b a a) over 8 connections chosen at random:
        // each connection's picks look independent, the order does not.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut check = ConnectionCheck::new(&spec_80_20(), 3.33e-6).expect("valid");
        let pattern = ["a", "a", "b", "a", "a"];
        let mut i = 0u64;
        while check.observe_request(i, rng.random_range(0..8), pattern[(i % 5) as usize])
            == ConnectionState::Continue
        {
            i += 1;
            assert!(i < 2000, "never failed");
        }
        println!(
            "a round robin over 8 connections failed after {} replies",
            i + 1
        );
        let verdict = check.verdict();
        assert!(
            verdict.order_variance_ratio.expect("blocks") < 0.05,
            "{verdict:?}"
        );
        assert!(
            verdict.reasons[0].contains("picks are not independent of each other")
                && verdict.reasons[0].contains("round robin"),
            "{:?}",
            verdict.reasons
        );
        // Replies arriving out of order are put back in request order.
        let mut shuffled = ConnectionCheck::new(&spec_80_20(), 3.33e-6).expect("valid");
        let mut state = ConnectionState::Continue;
        for chunk in 0..250u64 {
            let mut indices: Vec<u64> = (chunk * 8..chunk * 8 + 8).collect();
            indices.reverse();
            for index in indices {
                state = shuffled.observe_request(
                    index,
                    rng.random_range(0..8),
                    pattern[(index % 5) as usize],
                );
            }
        }
        assert_eq!(state, ConnectionState::Fail, "{:?}", shuffled.verdict());
        assert!(shuffled.verdict().n <= i + 8, "as fast as in order");
    }

    #[test]
    fn a_single_positive_destination_has_nothing_to_test() {
        let spec = SplitSpec::new([("old", 0), ("new", 100)]);
        let mut check = ConnectionCheck::new(&spec, 1e-6).expect("valid");
        assert!(!check.applies());
        for i in 0..100u32 {
            check.observe(i % 2, if i < 50 { "new" } else { "old" });
        }
        assert_eq!(check.n(), 0);
        assert_eq!(check.verdict().outcome, Outcome::Pass);
        assert!(!check.verdict().applies);
    }

    #[test]
    fn invalid_alpha_is_rejected_with_the_field_named() {
        let error = ConnectionCheck::new(&spec_80_20(), 0.0).expect_err("alpha 0");
        assert!(error.to_string().contains("`alpha`"), "{error}");
    }
}

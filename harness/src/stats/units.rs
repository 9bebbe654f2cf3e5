//! Selection units: what a gateway picks a destination *for*, and the checks that do not need a
//! statistical budget because a correct gateway of the declared kind never fails them.
//!
//! The split checks ([`super::SequentialCheck`], [`super::judge`]) assume one independent draw per
//! sample. Which events are samples depends on how the gateway picks:
//!
//! * per request (Envoy's weighted clusters): every request is a sample;
//! * per connection (a gateway that draws once per downstream connection): every *connection* is
//!   a sample, so the harness sends each sample on a fresh connection;
//! * by hash key (Envoy 1.36+ `use_hash_policy`, sticky sessions): every *key* is a sample, so
//!   each sample carries a fresh random key;
//! * round robin (nginx's and HAProxy's smooth weighted round robin): nothing is random; the
//!   counts over consecutive picks are judged against the bound such a scheduler meets
//!   ([`RoundRobinCheck`]).
//!
//! A gateway that picks per connection or per key promises more than the shares: repeated samples
//! of one unit go to the same destination. [`StickinessCheck`] tests that on a few units that
//! carry several requests; any disagreement fails it, so it costs no false-alarm budget.
//!
//! ## The smooth weighted round robin bound
//!
//! nginx's scheduler keeps a `current_j` per destination; each pick adds `w_j` to every
//! `current_j`, picks the largest and subtracts `W = Σw` from it. After any `n` consecutive picks
//! from a state `c(s)` to a state `c(e)`, `current_j` grew by `n·w_j − W·count_j`, so
//!
//! ```text
//! count_j − n·p_j = (c_j(s) − c_j(e)) / W,   p_j = w_j / W.
//! ```
//!
//! Starting from all zeros the state returns to all zeros after `W` picks (every `current_j` stays
//! above `−W`, so `count_j <= w_j` over `W` picks, and the counts sum to `W`), so the states form a
//! cycle of length `W` and the exact worst case over *every* window, wherever the harness's
//! requests start in the cycle (the gateway served other requests before: the harness's own
//! probes, earlier steps), is
//!
//! ```text
//! B_j = (max over the cycle of c_j − min over the cycle of c_j) / W.
//! ```
//!
//! [`smooth_wrr_window_bound`] computes it exactly by running one cycle. It is below 1 for every
//! pair of weights the tests enumerate (`0..=12` each, and 80/20, 90/10, 50/50), but not in
//! general: 1, 1, 2 reaches 1 and 5, 5, 5, 6 reaches 1.43; the tests check `B_j <= 1.5` for every
//! vector of three weights in `0..=12` and four in `0..=6`. The check uses the exact value for the
//! configured weights, never a rounded constant.
//! With `S` schedulers (one per worker, each serving a consecutive run of its own picks), the
//! counts add, so `|count_j − n·p_j| <= S·B_j`. That is the check.
//!
//! Its size: a smooth scheduler with shares off by δ whose own window discrepancy is at most 2 per
//! scheduler shows `|count_j − n·p_j| >= n·δ − 2S`, which exceeds `S·B_j` once
//! `n > S·(B_max + 2) / δ`; the plan takes the next integer, at least one cycle per scheduler, and
//! with zero-weight destinations at least the requests the leak guarantee needs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::spec::{CheckSettings, SplitSpec, StatsError};
use super::verdict::{LeakGuarantee, Outcome};

/// The worst-case `|count_j − n·p_j|` of nginx's smooth weighted round robin over any window of
/// consecutive picks, per destination (see the module documentation); 0 for zero weights, which
/// the scheduler never picks.
pub fn smooth_wrr_window_bound(weights: &[u32]) -> Vec<f64> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    if total == 0 {
        return vec![0.0; weights.len()];
    }
    let mut current = vec![0i64; weights.len()];
    let mut low = vec![0i64; weights.len()];
    let mut high = vec![0i64; weights.len()];
    for _ in 0..total {
        let picked = smooth_wrr_step(weights, &mut current);
        debug_assert!(weights[picked] > 0);
        for (j, c) in current.iter().enumerate() {
            low[j] = low[j].min(*c);
            high[j] = high[j].max(*c);
        }
    }
    debug_assert!(current.iter().all(|c| *c == 0), "one cycle returns to zero");
    low.iter()
        .zip(&high)
        .map(|(l, h)| (h - l) as f64 / total as f64)
        .collect()
}

/// One pick of nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`): add each weight
/// to its `current`, pick the largest (the first on ties), subtract the total from it.
pub fn smooth_wrr_step(weights: &[u32], current: &mut [i64]) -> usize {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut best = 0;
    for (j, w) in weights.iter().enumerate() {
        current[j] += i64::from(*w);
        if current[j] > current[best] {
            best = j;
        }
    }
    current[best] -= total;
    best
}

/// The deterministic check of a split served by `schedulers` smooth weighted round robin
/// schedulers (see the module documentation).
#[derive(Debug, Clone)]
pub struct RoundRobinCheck {
    spec: SplitSpec,
    schedulers: u32,
    /// `S·B_j` per destination, in spec order.
    bounds: Vec<f64>,
    requests: u64,
    leak: Option<(f64, f64, u64)>,
}

/// What one destination received under a round-robin check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRobinDestination {
    pub name: String,
    pub expected_share: f64,
    pub observed: u64,
    /// `n·p_j`.
    pub expected_count: f64,
    /// `count_j − n·p_j`.
    pub deviation: f64,
    /// The largest `|deviation|` the declared schedulers can show, `S·B_j`.
    pub bound: f64,
}

/// The verdict of a round-robin check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRobinVerdict {
    /// Fail when some count is outside its bound or an unknown destination answered; pass
    /// otherwise. Never inconclusive: nothing is random.
    pub outcome: Outcome,
    /// Consecutive picks judged.
    pub n: u64,
    /// The picks the plan asked for.
    pub planned_requests: u64,
    pub schedulers: u32,
    pub destinations: Vec<RoundRobinDestination>,
    /// Destinations that are not in the split, with their counts.
    pub unknown: Vec<(String, u64)>,
    /// With zero-weight destinations: how surely a gateway leaking a share `rate` of its picks
    /// (or of its connections, since every request then goes on a fresh connection) would have
    /// been caught within `n`.
    pub leak_guarantee: Option<LeakGuarantee>,
    pub reasons: Vec<String>,
}

impl RoundRobinCheck {
    /// The check of `spec` served by `schedulers` schedulers, sized for `settings`' δ and leak.
    pub fn new(
        spec: &SplitSpec,
        schedulers: u32,
        settings: &CheckSettings,
    ) -> Result<Self, StatsError> {
        settings.validate()?;
        if spec.destinations.is_empty() {
            return Err(StatsError::EmptySpec);
        }
        if spec.total_weight() == 0 {
            return Err(StatsError::AllWeightsZero);
        }
        if schedulers == 0 {
            return Err(StatsError::InvalidSetting {
                field: "schedulers",
                value: 0.0,
                expected: "at least 1",
            });
        }
        let weights: Vec<u32> = spec.destinations.iter().map(|(_, w)| *w).collect();
        let scale = f64::from(schedulers);
        let bounds: Vec<f64> = smooth_wrr_window_bound(&weights)
            .into_iter()
            .map(|b| b * scale)
            .collect();
        let b_max = bounds.iter().copied().fold(0.0, f64::max) / scale;
        let gcd = weights.iter().fold(0u32, |g, w| gcd(g, *w)).max(1);
        let cycle = spec.total_weight() / u64::from(gcd);
        // The next integer above S·(B_max + 2)/δ (the epsilon keeps 2.8/0.05 = 55.99… in floating point at 56, so n = 57).
        let sized =
            (scale * (b_max + 2.0) / settings.min_detectable_deviation + 1e-9).floor() as u64 + 1;
        let mut requests = sized.max(cycle * u64::from(schedulers));
        let leak = weights.contains(&0).then(|| {
            let required = ((1.0 - settings.leak_power).ln()
                / (-settings.min_detectable_leak).ln_1p())
            .ceil() as u64;
            (settings.min_detectable_leak, settings.leak_power, required)
        });
        if let Some((_, _, required)) = leak {
            requests = requests.max(required);
        }
        Ok(Self {
            spec: spec.clone(),
            schedulers,
            bounds,
            requests,
            leak,
        })
    }

    /// The consecutive picks to judge.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Judges the counts of `n` consecutive picks.
    pub fn judge(&self, counts: &BTreeMap<String, u64>) -> RoundRobinVerdict {
        let n: u64 = counts.values().sum();
        let total = self.spec.total_weight() as f64;
        let mut reasons = Vec::new();
        let destinations: Vec<RoundRobinDestination> = self
            .spec
            .destinations
            .iter()
            .zip(&self.bounds)
            .map(|((name, weight), bound)| {
                let expected_share = f64::from(*weight) / total;
                let observed = counts.get(name).copied().unwrap_or(0);
                let expected_count = n as f64 * expected_share;
                let deviation = observed as f64 - expected_count;
                if deviation.abs() > bound + 1e-9 {
                    reasons.push(format!(
                        "{name} answered {observed} of {n} consecutive picks, {expected_count:.2} \
                         expected: off by {deviation:+.2}, beyond the ±{bound:.2} that {} smooth \
                         weighted round robin scheduler{} can show",
                        self.schedulers,
                        if self.schedulers == 1 { "" } else { "s" }
                    ));
                }
                RoundRobinDestination {
                    name: name.clone(),
                    expected_share,
                    observed,
                    expected_count,
                    deviation,
                    bound: *bound,
                }
            })
            .collect();
        let unknown: Vec<(String, u64)> = counts
            .iter()
            .filter(|(name, count)| {
                **count > 0 && !self.spec.destinations.iter().any(|(n, _)| n == *name)
            })
            .map(|(name, count)| (name.clone(), *count))
            .collect();
        for (name, count) in &unknown {
            reasons.push(format!(
                "{name} is not part of the split and answered {count}"
            ));
        }
        let violated = !reasons.is_empty();
        let outcome = if violated {
            Outcome::Fail
        } else if n < self.requests {
            reasons.push(format!(
                "only {n} of the {} planned consecutive picks were judged",
                self.requests
            ));
            Outcome::Inconclusive
        } else {
            Outcome::Pass
        };
        RoundRobinVerdict {
            outcome,
            n,
            planned_requests: self.requests,
            schedulers: self.schedulers,
            destinations,
            unknown,
            leak_guarantee: self
                .leak
                .map(|(rate, power, required)| LeakGuarantee::at(rate, power, required, n)),
            reasons,
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// What a sample unit is, for messages: `"connection"` or `"key"`.
type UnitName = &'static str;

/// Whether repeated requests of one unit (a connection, a hash key) all got the same destination.
#[derive(Debug, Clone)]
pub struct StickinessCheck {
    unit: UnitName,
    /// The split's shares.
    shares: Vec<f64>,
    /// Each unit's first destination and its replies so far.
    first: HashMap<u64, (String, u32)>,
    repeats: u64,
    mismatches: u64,
    example: Option<(u64, String, String)>,
}

/// What a reply is for the split check under a stickiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitReply {
    /// The unit's first reply: a sample of the split.
    Sample,
    /// A later reply of the unit; `consistent` when it went where the first one did.
    Repeat { consistent: bool },
}

/// The verdict of a stickiness check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StickinessVerdict {
    pub outcome: Outcome,
    /// `connection` or `key`.
    pub unit: UnitName,
    /// Units seen (samples).
    pub units: u64,
    /// Replies that repeated a unit seen before.
    pub repeats: u64,
    /// Of those, replies from another destination than the unit's first reply.
    pub mismatches: u64,
    /// The probability that a gateway picking per request with the split's shares would have
    /// been caught by these repeats: `1 − Π_units Σ_j p_j^(replies of the unit)` (a unit passes
    /// when all its replies happen to go to one destination).
    pub per_request_detection: f64,
    pub reasons: Vec<String>,
}

impl StickinessCheck {
    /// A check of the units of `spec`'s split.
    pub fn new(spec: &SplitSpec, unit: UnitName) -> Self {
        let total = spec.total_weight().max(1) as f64;
        let shares = spec
            .destinations
            .iter()
            .map(|(_, w)| f64::from(*w) / total)
            .collect();
        Self {
            unit,
            shares,
            first: HashMap::new(),
            repeats: 0,
            mismatches: 0,
            example: None,
        }
    }

    /// Records a reply of `unit` from `destination`.
    pub fn observe(&mut self, unit: u64, destination: &str) -> UnitReply {
        match self.first.get_mut(&unit) {
            None => {
                self.first.insert(unit, (destination.to_owned(), 1));
                UnitReply::Sample
            }
            Some((first, replies)) => {
                *replies += 1;
                self.repeats += 1;
                let consistent = first == destination;
                if !consistent {
                    self.mismatches += 1;
                    if self.example.is_none() {
                        self.example = Some((unit, first.clone(), destination.to_owned()));
                    }
                }
                UnitReply::Repeat { consistent }
            }
        }
    }

    /// Whether a repeat disagreed (final).
    pub fn failed(&self) -> bool {
        self.mismatches > 0
    }

    pub fn verdict(&self) -> StickinessVerdict {
        let mut reasons = Vec::new();
        if let Some((unit, first, then)) = &self.example {
            reasons.push(format!(
                "the gateway was declared to pick per {}, but {} of {} repeated requests went \
                 elsewhere than their {}'s first (e.g. {} {unit}: {first}, then {then})",
                self.unit, self.mismatches, self.repeats, self.unit, self.unit
            ));
        }
        StickinessVerdict {
            outcome: if self.failed() {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            unit: self.unit,
            units: self.first.len() as u64,
            repeats: self.repeats,
            mismatches: self.mismatches,
            per_request_detection: {
                let log_pass: f64 = self
                    .first
                    .values()
                    .filter(|(_, replies)| *replies > 1)
                    .map(|(_, replies)| {
                        self.shares
                            .iter()
                            .map(|p| p.powi(*replies as i32))
                            .sum::<f64>()
                            .ln()
                    })
                    .sum();
                -log_pass.exp_m1()
            },
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CheckSettings {
        CheckSettings::default()
    }

    /// Every window of every length over two cycles, by brute force.
    fn brute_force_bound(weights: &[u32]) -> Vec<f64> {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut current = vec![0i64; weights.len()];
        let picks: Vec<usize> = (0..2 * total)
            .map(|_| smooth_wrr_step(weights, &mut current))
            .collect();
        let mut worst = vec![0.0f64; weights.len()];
        for start in 0..total as usize {
            let mut counts = vec![0u64; weights.len()];
            for (len, pick) in picks[start..].iter().enumerate() {
                counts[*pick] += 1;
                let n = (len + 1) as f64;
                for j in 0..weights.len() {
                    let d = (counts[j] as f64 - n * f64::from(weights[j]) / total as f64).abs();
                    worst[j] = worst[j].max(d);
                }
            }
        }
        worst
    }

    #[test]
    fn the_cycle_bound_is_the_worst_window_below_one_for_two_weights_and_at_most_one_and_a_half() {
        let mut vectors: Vec<Vec<u32>> =
            vec![vec![80, 20], vec![90, 10], vec![50, 50], vec![0, 100]];
        for a in 0..=12u32 {
            for b in 0..=12u32 {
                vectors.push(vec![a, b]);
                for c in 0..=12u32 {
                    vectors.push(vec![a, b, c]);
                }
            }
        }
        for a in 0..=6u32 {
            for b in 0..=6u32 {
                for c in 0..=6u32 {
                    for d in 0..=6u32 {
                        vectors.push(vec![a, b, c, d]);
                    }
                }
            }
        }
        for weights in vectors.iter().filter(|w| w.iter().any(|x| *x > 0)) {
            let bound = smooth_wrr_window_bound(weights);
            if weights.iter().sum::<u32>() <= 40 {
                let brute = brute_force_bound(weights);
                for (b, x) in bound.iter().zip(&brute) {
                    assert!((b - x).abs() < 1e-9, "{weights:?}: {bound:?} vs {brute:?}");
                }
            }
            let limit = if weights.len() == 2 { 0.999_999 } else { 1.5 };
            assert!(bound.iter().all(|b| *b <= limit), "{weights:?}: {bound:?}");
        }
        assert_eq!(smooth_wrr_window_bound(&[80, 20]), vec![0.8, 0.8]);
        // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
        let mut current = vec![0; 3];
        let picks: Vec<usize> = (0..7)
            .map(|_| smooth_wrr_step(&[5, 1, 1], &mut current))
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn smooth_round_robin_passes_anywhere_in_its_cycle_and_random_picks_fail() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let check = RoundRobinCheck::new(&spec, 1, &settings()).expect("valid");
        // (0.8 + 2) / 0.05 = 56 → 57.
        assert_eq!(check.requests(), 57);
        for offset in 0..5 {
            let mut current = vec![0; 2];
            for _ in 0..offset {
                smooth_wrr_step(&[80, 20], &mut current);
            }
            let mut counts = BTreeMap::new();
            for _ in 0..check.requests() {
                let pick = smooth_wrr_step(&[80, 20], &mut current);
                *counts.entry(["a", "b"][pick].to_owned()).or_insert(0u64) += 1;
            }
            assert_eq!(check.judge(&counts).outcome, Outcome::Pass, "{offset}");
        }
        // 47 of 57 is 1.4 off: a random gateway's usual luck, not a scheduler's.
        let counts = BTreeMap::from([("a".to_owned(), 47u64), ("b".to_owned(), 10)]);
        let verdict = check.judge(&counts);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(
            verdict.reasons[0].contains("smooth weighted round robin"),
            "{:?}",
            verdict.reasons
        );
        // A scheduler with shares 75/25 is caught at the planned n.
        let mut current = vec![0; 2];
        let mut counts = BTreeMap::new();
        for _ in 0..check.requests() {
            let pick = smooth_wrr_step(&[75, 25], &mut current);
            *counts.entry(["a", "b"][pick].to_owned()).or_insert(0u64) += 1;
        }
        assert_eq!(check.judge(&counts).outcome, Outcome::Fail);
    }

    #[test]
    fn per_worker_schedulers_widen_the_bound_and_zero_weights_need_the_leak_requests() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let four = RoundRobinCheck::new(&spec, 4, &settings()).expect("valid");
        // 4 · (0.8 + 2) / 0.05 = 224 → 225.
        assert_eq!(four.requests(), 225);
        // Four schedulers each at the worst point of their cycle: 4 · 0.8 = 3.2 off.
        let counts = BTreeMap::from([("a".to_owned(), 183u64), ("b".to_owned(), 42)]);
        assert_eq!(four.judge(&counts).outcome, Outcome::Pass);
        let counts = BTreeMap::from([("a".to_owned(), 184u64), ("b".to_owned(), 41)]);
        assert_eq!(four.judge(&counts).outcome, Outcome::Fail);

        let zero = SplitSpec::new([("old", 0), ("new", 100)]);
        let check = RoundRobinCheck::new(&zero, 1, &settings()).expect("valid");
        assert_eq!(check.requests(), 917);
        let clean = BTreeMap::from([("new".to_owned(), 917u64)]);
        let verdict = check.judge(&clean);
        assert_eq!(verdict.outcome, Outcome::Pass);
        assert!(verdict.leak_guarantee.expect("zero weight").achieved >= 1.0 - 1e-4);
        let leaked = BTreeMap::from([("new".to_owned(), 916u64), ("old".to_owned(), 1)]);
        assert_eq!(check.judge(&leaked).outcome, Outcome::Fail);
        let stranger = BTreeMap::from([("new".to_owned(), 916u64), ("x".to_owned(), 1)]);
        assert_eq!(check.judge(&stranger).outcome, Outcome::Fail);
        assert!(RoundRobinCheck::new(&zero, 0, &settings()).is_err());
    }

    #[test]
    fn stickiness_counts_samples_once_and_fails_on_any_disagreement() {
        let spec = SplitSpec::new([("a", 80), ("b", 20)]);
        let mut check = StickinessCheck::new(&spec, "key");
        assert_eq!(check.observe(1, "a"), UnitReply::Sample);
        assert_eq!(check.observe(2, "b"), UnitReply::Sample);
        assert_eq!(
            check.observe(1, "a"),
            UnitReply::Repeat { consistent: true }
        );
        assert!(!check.failed());
        assert_eq!(
            check.observe(2, "a"),
            UnitReply::Repeat { consistent: false }
        );
        let verdict = check.verdict();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(
            (verdict.units, verdict.repeats, verdict.mismatches),
            (2, 2, 1)
        );
        assert!(
            verdict.reasons[0].contains("key 2: b, then a"),
            "{:?}",
            verdict.reasons
        );
        // Two units with two replies each: each agrees by chance with probability 0.8² + 0.2².
        assert!((verdict.per_request_detection - (1.0 - 0.68f64.powi(2))).abs() < 1e-12);
        // Eight units of five replies, as the traffic step sends: 1 − (0.8⁵ + 0.2⁵)⁸.
        let mut planned = StickinessCheck::new(&spec, "key");
        for unit in 0..8 {
            for _ in 0..5 {
                planned.observe(unit, "a");
            }
        }
        let detection = planned.verdict().per_request_detection;
        let expected = 1.0 - (0.8f64.powi(5) + 0.2f64.powi(5)).powi(8);
        assert!((detection - expected).abs() < 1e-12, "{detection}");
        assert!(detection > 0.9998, "{detection}");
    }
}

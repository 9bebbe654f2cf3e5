//! Proof by simulation, for what cannot be computed exactly: the sequential and fixed checks
//! with three or more deciding destinations (their state is not one binomial count), the leak
//! guarantee end to end, and the connection-independence check. Everything that rests on one
//! binomial count is computed exactly instead (`operating_tests`, `exact`).
//!
//! Every assertion on a simulated rate is a one-sided (or two-sided) exact binomial bound at
//! tail probability 1e-6: if the true rate honoured its guarantee, the assertion would fail with
//! probability at most 1e-6. The RNG is seeded, so the suite is deterministic.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial as BinomialSampler, Distribution};
use statrs::distribution::{Binomial, DiscreteCDF};

use super::{
    Budget, CheckSettings, ConnectionCheck, ConnectionState, FixedCheck, Outcome, SequentialCheck,
    SequentialState, SplitSpec,
};

/// Tail probability of every statistical assertion in this file.
const ASSERTION_TAIL: f64 = 1e-6;

/// The largest count `c` such that `P(Bin(trials, p) > c) <= tail`: observing more than `c`
/// events refutes "rate <= p".
fn upper_limit(trials: u64, p: f64, tail: f64) -> u64 {
    let dist = Binomial::new(p, trials).expect("valid binomial");
    let mut c = (trials as f64 * p).floor() as u64;
    while dist.sf(c) > tail {
        c += 1;
    }
    c
}

/// The smallest count `c` such that `P(Bin(trials, p) < c) <= tail`: observing fewer than `c`
/// events refutes "rate >= p".
fn lower_limit(trials: u64, p: f64, tail: f64) -> u64 {
    let dist = Binomial::new(p, trials).expect("valid binomial");
    let mut c = (trials as f64 * p).ceil() as u64;
    while c > 0 && dist.cdf(c - 1) > tail {
        c -= 1;
    }
    c
}

/// Multinomial counts by a chain of binomials: k - 1 draws per run instead of n.
fn multinomial(rng: &mut StdRng, n: u64, shares: &[f64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(shares.len());
    let mut remaining = n;
    let mut mass = 1.0;
    for (i, &p) in shares.iter().enumerate() {
        if i + 1 == shares.len() {
            out.push(remaining);
            break;
        }
        let q = if mass <= 0.0 {
            0.0
        } else {
            (p / mass).clamp(0.0, 1.0)
        };
        let x = BinomialSampler::new(remaining, q)
            .expect("valid binomial")
            .sample(rng);
        out.push(x);
        remaining -= x;
        mass -= p;
    }
    out
}

fn named_counts(names: &[String], counts: &[u64]) -> BTreeMap<String, u64> {
    names.iter().cloned().zip(counts.iter().copied()).collect()
}

/// A simulated gateway: destination names (possibly including ones outside the spec) and the
/// true shares it serves them with.
struct Gateway {
    names: Vec<String>,
    shares: Vec<f64>,
    cumulative: Vec<f64>,
}

impl Gateway {
    fn new(pairs: &[(&str, f64)]) -> Self {
        let names = pairs.iter().map(|(n, _)| (*n).to_owned()).collect();
        let shares: Vec<f64> = pairs.iter().map(|(_, s)| *s).collect();
        let total: f64 = shares.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "shares sum to {total}");
        let mut acc = 0.0;
        let cumulative = shares
            .iter()
            .map(|s| {
                acc += s;
                acc
            })
            .collect();
        Self {
            names,
            shares,
            cumulative,
        }
    }

    /// The correct gateway for `spec`.
    fn correct(spec: &SplitSpec) -> Self {
        let total = spec.total_weight() as f64;
        let pairs: Vec<(&str, f64)> = spec
            .destinations
            .iter()
            .map(|(n, w)| (n.as_str(), f64::from(*w) / total))
            .collect();
        Self::new(&pairs)
    }

    /// The spec's split with destination `moved` set to `share` and the other positive-weight
    /// destinations compensating in proportion (the plan's least favourable alternative).
    fn shifted(spec: &SplitSpec, moved: &str, share: f64) -> Self {
        let total = spec.total_weight() as f64;
        let p_moved = spec
            .expected_share(moved)
            .expect("moved destination in spec");
        let pairs: Vec<(&str, f64)> = spec
            .destinations
            .iter()
            .map(|(n, w)| {
                let p = f64::from(*w) / total;
                let q = if n == moved {
                    share
                } else {
                    p * (1.0 - share) / (1.0 - p_moved)
                };
                (n.as_str(), q)
            })
            .collect();
        Self::new(&pairs)
    }

    fn counts(&self, rng: &mut StdRng, n: u64) -> BTreeMap<String, u64> {
        named_counts(&self.names, &multinomial(rng, n, &self.shares))
    }

    /// Runs a sequential check to its end; returns the final state and the requests used.
    ///
    /// Per-request draws use SplitMix64 seeded from `rng`: the suite runs unoptimised, and a
    /// few integer operations per request keep ~10^8 simulated requests within seconds.
    fn run(&self, template: &SequentialCheck, rng: &mut StdRng) -> (SequentialState, u64) {
        let mut check = template.restart();
        let mut state: u64 = rng.random();
        // Map each name to its index in the spec once per run; names outside the spec go
        // through the public string API.
        let indices: Vec<Option<usize>> = self
            .names
            .iter()
            .map(|n| template.design_index(n))
            .collect();
        let thresholds: Vec<u64> = self
            .cumulative
            .iter()
            .map(|&c| {
                if c >= 1.0 {
                    u64::MAX
                } else {
                    (c * 2f64.powi(64)) as u64
                }
            })
            .collect();
        loop {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let mut i = 0;
            while i + 1 < thresholds.len() && z >= thresholds[i] {
                i += 1;
            }
            let result = match indices[i] {
                Some(index) => check.observe_index(index),
                None => check.observe(&self.names[i]),
            };
            if result != SequentialState::Continue {
                return (result, check.n());
            }
        }
    }
}

fn default_settings() -> CheckSettings {
    // The default run budget spread over six checks, as in a demo scenario.
    CheckSettings::within_budget(&Budget::default(), 6)
}

fn test_settings(alpha: f64) -> CheckSettings {
    CheckSettings {
        alpha,
        ..default_settings()
    }
}

fn spec_80_20() -> SplitSpec {
    SplitSpec::new([("colorgateway", 80), ("colorgatewayv2", 20)])
}

fn spec_1_1_1() -> SplitSpec {
    SplitSpec::new([("red", 1), ("green", 1), ("blue", 1)])
}

fn spec_0_100() -> SplitSpec {
    SplitSpec::new([("colorgateway", 0), ("colorgatewayv2", 100)])
}

fn spec_80_20_0() -> SplitSpec {
    SplitSpec::new([
        ("colorgateway", 80),
        ("colorgatewayv2", 20),
        ("colorgatewayv3", 0),
    ])
}

/// The spec's split with `leak` of all traffic sent to its first zero-weight destination.
fn leaking_gateway(spec: &SplitSpec, leak: f64) -> Gateway {
    let total = spec.total_weight() as f64;
    let pairs: Vec<(&str, f64)> = spec
        .destinations
        .iter()
        .scan(false, |leaked, (n, w)| {
            let share = if *w == 0 && !*leaked {
                *leaked = true;
                leak
            } else {
                f64::from(*w) / total * (1.0 - leak)
            };
            Some((n.as_str(), share))
        })
        .collect();
    Gateway::new(&pairs)
}

const FALSE_ALARM_RUNS: u64 = 10_000;

/// Three deciding destinations: a correct gateway fails with probability at most α and is
/// inconclusive with probability at most α (the cap's bound), at a test-friendly α where a
/// breach would show.
#[test]
fn sequential_three_way_false_red_rate_is_within_its_bounds() {
    let started = Instant::now();
    let spec = spec_1_1_1();
    let gateway = Gateway::correct(&spec);
    for (alpha, seed) in [(0.05, 0x5EED_0003u64), (0.01, 0x5EED_0013)] {
        let template = SequentialCheck::new(&spec, &test_settings(alpha)).expect("valid");
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut fails, mut passes, mut total_n) = (0u64, 0u64, 0u64);
        for _ in 0..FALSE_ALARM_RUNS {
            let (state, n) = gateway.run(&template, &mut rng);
            match state {
                SequentialState::Fail => fails += 1,
                SequentialState::Pass => passes += 1,
                _ => {}
            }
            total_n += n;
        }
        let inconclusive = FALSE_ALARM_RUNS - fails - passes;
        let plan = template.plan();
        let limit = upper_limit(FALSE_ALARM_RUNS, alpha, ASSERTION_TAIL);
        let inconclusive_limit = upper_limit(
            FALSE_ALARM_RUNS,
            plan.correct_gateway.inconclusive.max(1e-9),
            ASSERTION_TAIL,
        );
        println!(
            "sequential 1/1/1 alpha {alpha}: {fails} fails (limit {limit}), {inconclusive} \
             inconclusive (limit {inconclusive_limit}), {passes} passes of {FALSE_ALARM_RUNS}; \
             mean n {:.0}, cap {}",
            total_n as f64 / FALSE_ALARM_RUNS as f64,
            plan.sequential_cap
        );
        assert!(fails <= limit);
        assert!(inconclusive <= inconclusive_limit);
    }
    println!("three-way false red: {:?}", started.elapsed());
}

const EDGE_RUNS: u64 = 4_000;
const POWER_RUNS: u64 = 2_000;

/// Three deciding destinations, a gateway with one share on an edge `p ± δ` (the others
/// compensating): it passes with probability at most β, and fails by the cap with probability
/// at least the plan's lower bound. The fixed check fails it with at least the declared power.
#[test]
fn three_way_gateways_on_an_edge_pass_at_most_at_the_miss_rate() {
    let started = Instant::now();
    let settings = default_settings();
    let delta = settings.min_detectable_deviation;
    let spec = spec_1_1_1();
    let template = SequentialCheck::new(&spec, &settings).expect("valid");
    let fixed = FixedCheck::new(&spec, &settings).expect("valid");
    let mut rng = StdRng::seed_from_u64(0x5EED_0005);
    let pass_limit = upper_limit(EDGE_RUNS, settings.miss_rate(), ASSERTION_TAIL);
    let fail_limit = lower_limit(EDGE_RUNS, template.plan().edge_fail_by_cap, ASSERTION_TAIL);
    let power_limit = lower_limit(EDGE_RUNS, settings.power, ASSERTION_TAIL);
    for share in [1.0 / 3.0 + delta, 1.0 / 3.0 - delta] {
        let gateway = Gateway::shifted(&spec, "red", share);
        let (mut fails, mut passes, mut total_n) = (0u64, 0u64, 0u64);
        for _ in 0..EDGE_RUNS {
            let (state, n) = gateway.run(&template, &mut rng);
            fails += u64::from(state == SequentialState::Fail);
            passes += u64::from(state == SequentialState::Pass);
            total_n += n;
        }
        let n = fixed.planned_requests();
        let fixed_fails = (0..EDGE_RUNS)
            .filter(|_| fixed.judge(&gateway.counts(&mut rng, n)).outcome == Outcome::Fail)
            .count() as u64;
        println!(
            "1/1/1 with red at {share:.4}: sequential {passes} passes (limit {pass_limit}), \
             {fails} fails (limit {fail_limit}) of {EDGE_RUNS}, mean n {:.0}; fixed at n={n}: \
             {fixed_fails} fails (limit {power_limit})",
            total_n as f64 / EDGE_RUNS as f64
        );
        assert!(passes <= pass_limit);
        assert!(fails >= fail_limit);
        assert!(fixed_fails >= power_limit);
    }
    println!("three-way edges: {:?}", started.elapsed());
}

/// The stated leak guarantee, simulated: a gateway leaking 1 % to a zero-weight destination is
/// caught before either check could pass, with probability at least `leak_power`.
#[test]
fn a_one_percent_leak_is_caught_with_the_declared_probability() {
    let started = Instant::now();
    let settings = default_settings();
    let mut rng = StdRng::seed_from_u64(0x5EED_0007);
    const RUNS: u64 = 20_000;
    // Misses allowed if the true miss rate were 1 - leak_power = 1e-4.
    let limit = upper_limit(RUNS, 1.0 - settings.leak_power, ASSERTION_TAIL);
    for spec in [spec_0_100(), spec_80_20_0()] {
        let gateway = leaking_gateway(&spec, 0.01);
        let sequential = SequentialCheck::new(&spec, &settings).expect("valid");
        let fixed = FixedCheck::new(&spec, &settings).expect("valid");
        assert!(sequential.plan().leak_free_requests >= 917);
        assert!(fixed.planned_requests() >= 917);
        let (mut seq_missed, mut fixed_missed, mut used) = (0u64, 0u64, Vec::new());
        for _ in 0..RUNS {
            let (state, n) = gateway.run(&sequential, &mut rng);
            seq_missed += u64::from(state != SequentialState::Fail);
            used.push(n);
            let verdict = fixed.judge(&gateway.counts(&mut rng, fixed.planned_requests()));
            fixed_missed += u64::from(verdict.outcome != Outcome::Fail);
        }
        used.sort_unstable();
        println!(
            "1% leak on {:?}: sequential missed {seq_missed}/{RUNS}, fixed missed \
             {fixed_missed}/{RUNS} (limit {limit}); sequential median n {}, p99 n {}",
            spec.destinations,
            used[used.len() / 2],
            used[used.len() * 99 / 100]
        );
        assert!(seq_missed <= limit);
        assert!(fixed_missed <= limit);
    }
    // A correct gateway's verdict states the guarantee it reached.
    let spec = spec_0_100();
    let check = FixedCheck::new(&spec, &settings).expect("valid");
    let verdict = check.judge(&Gateway::correct(&spec).counts(&mut rng, check.planned_requests()));
    assert_eq!(verdict.outcome, Outcome::Pass);
    let guarantee = verdict.leak_guarantee.expect("zero-weight destination");
    assert_eq!(guarantee.required_requests, 917);
    assert!(guarantee.achieved >= settings.leak_power);
    println!("leak guarantees: {:?}", started.elapsed());
}

/// How replies reach a [`ConnectionCheck`]: `connections` keep-alive connections, replies in a
/// random interleaving (completion order), each connection's picks made by `pick`.
fn run_connection_check(
    check: &ConnectionCheck,
    rng: &mut StdRng,
    connections: u32,
    replies: u64,
    mut pick: impl FnMut(&mut StdRng, u32) -> &'static str,
) -> (ConnectionState, u64) {
    let mut check = check.clone();
    for i in 1..=replies {
        let connection = rng.random_range(0..connections);
        let destination = pick(rng, connection);
        if check.observe(connection, destination) == ConnectionState::Fail {
            return (ConnectionState::Fail, i);
        }
    }
    (ConnectionState::Continue, replies)
}

/// True shares of a simulated gateway, by destination.
type Shares = Vec<(&'static str, f64)>;

fn draw(rng: &mut StdRng, shares: &[(&'static str, f64)]) -> &'static str {
    let mut u: f64 = rng.random();
    for (name, share) in shares {
        if u < *share {
            return name;
        }
        u -= share;
    }
    shares[shares.len() - 1].0
}

const CONNECTION_RUNS: u64 = 4_000;

#[test]
fn connection_check_false_alarm_rate_is_within_alpha_even_with_wrong_shares() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x5EED_0008);
    // Independent picks with the configured shares, and with shares the split check would
    // reject (weights swapped or ignored): neither is connection dependence.
    let cases: [(&str, SplitSpec, Shares); 4] = [
        (
            "80/20",
            spec_80_20(),
            vec![("colorgateway", 0.8), ("colorgatewayv2", 0.2)],
        ),
        (
            "80/20 swapped",
            spec_80_20(),
            vec![("colorgateway", 0.2), ("colorgatewayv2", 0.8)],
        ),
        (
            "1/1/1",
            spec_1_1_1(),
            vec![
                ("red", 1.0 / 3.0),
                ("green", 1.0 / 3.0),
                ("blue", 1.0 / 3.0),
            ],
        ),
        (
            "1/1/1 skewed",
            spec_1_1_1(),
            vec![("red", 0.6), ("green", 0.3), ("blue", 0.1)],
        ),
    ];
    for (label, spec, shares) in cases {
        // One pass serves every level: the check fails at alpha exactly when its anytime p-value
        // (1 / the largest e-value) is at most alpha, so run it at a level it never reaches.
        let check = ConnectionCheck::new(&spec, 1e-12).expect("valid");
        let p_values: Vec<f64> = (0..CONNECTION_RUNS)
            .map(|_| {
                let mut check = check.clone();
                for _ in 0..800 {
                    let connection = rng.random_range(0..4);
                    check.observe(connection, draw(&mut rng, &shares));
                }
                check.verdict().p_value
            })
            .collect();
        for alpha in [0.05, 0.01] {
            let fails = p_values.iter().filter(|&&p| p <= alpha).count() as u64;
            let limit = upper_limit(CONNECTION_RUNS, alpha, ASSERTION_TAIL);
            println!(
                "connection check, independent picks {label}: {fails}/{CONNECTION_RUNS} false \
                 alarms at alpha {alpha} (limit {limit})"
            );
            assert!(fails <= limit);
        }
    }
    println!("connection false alarms: {:?}", started.elapsed());
}

#[test]
fn connection_check_power_against_sticky_gateways() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x5EED_0009);
    // A run's level: the default budget over four split steps, a tenth of a step for this check.
    let alpha = Budget::default().per_check_alpha(4) * 0.1;
    let shares = [("colorgateway", 0.8), ("colorgatewayv2", 0.2)];
    let check = ConnectionCheck::new(&spec_80_20(), alpha).expect("valid");
    let limit = lower_limit(POWER_RUNS, default_settings().power, ASSERTION_TAIL);

    // Fully sticky: each of 4 connections keeps its first pick. Whenever two destinations are
    // among the connections, the check must fail, and quickly.
    let (mut mixed, mut caught, mut used) = (0u64, 0u64, Vec::new());
    for _ in 0..POWER_RUNS {
        let stuck: Vec<&'static str> = (0..4).map(|_| draw(&mut rng, &shares)).collect();
        let (state, n) = run_connection_check(&check, &mut rng, 4, 1000, |_, c| stuck[c as usize]);
        if stuck.iter().any(|d| *d != stuck[0]) {
            mixed += 1;
            caught += u64::from(state == ConnectionState::Fail);
            used.push(n);
        } else {
            // Consistent with i.i.d. shares (1, 0): left to the split check.
            assert_eq!(state, ConnectionState::Continue);
        }
    }
    used.sort_unstable();
    println!(
        "fully sticky 80/20 over 4 connections at alpha {alpha:.2e}: caught {caught}/{mixed} runs \
         with two destinations, median n {}, max n {}",
        used[used.len() / 2],
        used[used.len() - 1]
    );
    assert_eq!(caught, mixed);
    assert!(used[used.len() - 1] <= 400);

    // Half sticky: each request repeats its connection's previous destination with probability
    // 1/2, else picks afresh; the shares stay 80/20. Caught within a split step's plan.
    let mut previous = [None::<&'static str>; 8];
    let mut caught = 0u64;
    let mut used = Vec::new();
    for _ in 0..POWER_RUNS {
        previous.fill(None);
        let (state, n) = run_connection_check(&check, &mut rng, 8, 3000, |rng, c| {
            let slot = &mut previous[c as usize];
            let destination = match *slot {
                Some(last) if rng.random_bool(0.5) => last,
                _ => draw(rng, &shares),
            };
            *slot = Some(destination);
            destination
        });
        caught += u64::from(state == ConnectionState::Fail);
        used.push(n);
    }
    used.sort_unstable();
    println!(
        "half sticky 80/20 over 8 connections: caught {caught}/{POWER_RUNS} within 3000 replies \
         (limit {limit}), median n {}, p95 n {}",
        used[used.len() / 2],
        used[used.len() * 95 / 100]
    );
    assert!(caught >= limit);
    println!("connection power: {:?}", started.elapsed());
}

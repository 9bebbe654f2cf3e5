//! Proof by simulation: false-alarm rates, power and mutant detection of both checks.
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

use super::gof::chi_square_critical;
use super::{
    Budget, CheckSettings, FixedCheck, Outcome, SequentialCheck, SequentialState, SplitSpec,
    leak_detection_probability, plan,
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

fn spec_50_50() -> SplitSpec {
    SplitSpec::new([("colorgateway", 50), ("colorgatewayv2", 50)])
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

/// The least favourable alternative of the fixed-sample plan as a simulated gateway; for a lone
/// positive-weight destination, a leak of δ to the first zero-weight destination.
fn least_favourable_gateway(spec: &SplitSpec, settings: &CheckSettings) -> Gateway {
    let plan = plan(spec, settings).expect("plan");
    match plan.least_favourable {
        Some(lf) => Gateway::shifted(spec, &lf.destination, lf.alternative_share),
        None => leaking_gateway(spec, settings.min_detectable_deviation),
    }
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

#[test]
fn fixed_sample_false_alarm_rate_is_within_alpha() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    for spec in [spec_80_20(), spec_1_1_1(), spec_80_20_0()] {
        let production = FixedCheck::new(&spec, &default_settings()).expect("valid");
        let n = production.planned_requests();
        let gateway = Gateway::correct(&spec);
        for test_alpha in [0.05, 0.01] {
            let friendly = FixedCheck::new(&spec, &test_settings(test_alpha)).expect("valid");
            let (mut friendly_fails, mut production_fails) = (0, 0);
            for _ in 0..FALSE_ALARM_RUNS {
                let observed = gateway.counts(&mut rng, n);
                if friendly.judge(&observed).outcome == Outcome::Fail {
                    friendly_fails += 1;
                }
                if production.judge(&observed).outcome == Outcome::Fail {
                    production_fails += 1;
                }
            }
            let limit = upper_limit(FALSE_ALARM_RUNS, test_alpha, ASSERTION_TAIL);
            let production_alpha = default_settings().alpha;
            let production_limit = upper_limit(FALSE_ALARM_RUNS, production_alpha, ASSERTION_TAIL);
            println!(
                "fixed {:?} n={n}: {friendly_fails}/{FALSE_ALARM_RUNS} false alarms at alpha \
                 {test_alpha} (limit {limit}); {production_fails} at alpha {production_alpha:.2e} \
                 (limit {production_limit})",
                spec.destinations
            );
            assert!(friendly_fails <= limit);
            assert!(production_fails <= production_limit);
        }
    }
    println!("fixed false alarms: {:?}", started.elapsed());
}

#[test]
fn sequential_false_alarm_rate_is_within_alpha() {
    let started = Instant::now();
    for (spec, test_alpha, seed) in [
        (spec_80_20(), 0.01, 0x5EED_0002u64),
        (spec_1_1_1(), 0.05, 0x5EED_0003),
    ] {
        let gateway = Gateway::correct(&spec);
        let friendly = SequentialCheck::new(&spec, &test_settings(test_alpha)).expect("valid");
        let mut levels = vec![("test-friendly", friendly, test_alpha)];
        // The default level on the same simulated gateways, for the two-destination split only:
        // its runs are long (mean ~2,100 requests) and the three-way repeat adds no coverage.
        if spec == spec_80_20() {
            let production = SequentialCheck::new(&spec, &default_settings()).expect("valid");
            levels.push(("default", production, default_settings().alpha));
        }
        for (label, template, alpha) in &levels {
            let (template, alpha) = (template, *alpha);
            // The same seed for both levels: the same simulated gateways.
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut fails, mut passes, mut total_n) = (0u64, 0u64, 0u64);
            let mut stop_at = Vec::with_capacity(FALSE_ALARM_RUNS as usize);
            for _ in 0..FALSE_ALARM_RUNS {
                let (state, n) = gateway.run(template, &mut rng);
                match state {
                    SequentialState::Fail => fails += 1,
                    SequentialState::Pass => passes += 1,
                    _ => {}
                }
                total_n += n;
                stop_at.push(n);
            }
            stop_at.sort_unstable();
            let limit = upper_limit(FALSE_ALARM_RUNS, alpha, ASSERTION_TAIL);
            println!(
                "sequential {:?} {label} alpha {alpha:.2e}: {fails}/{FALSE_ALARM_RUNS} false \
                 alarms (limit {limit}), {passes} passes, mean n {:.0}, p95 n {}, cap {}",
                spec.destinations,
                total_n as f64 / FALSE_ALARM_RUNS as f64,
                stop_at[stop_at.len() * 95 / 100],
                template.plan().sequential_cap
            );
            assert!(fails <= limit);
            // Not a guarantee, but a check that is inconclusive on correct gateways would be
            // useless: a correct split passes before the cap in the great majority of runs.
            assert!(passes * 10 >= FALSE_ALARM_RUNS * 9, "passes {passes}");
        }
    }
    println!("sequential false alarms: {:?}", started.elapsed());
}

const POWER_RUNS: u64 = 2_000;

#[test]
fn fixed_sample_power_against_the_least_favourable_deviation() {
    let started = Instant::now();
    let settings = default_settings();
    let mut rng = StdRng::seed_from_u64(0x5EED_0004);
    let limit = lower_limit(POWER_RUNS, settings.power, ASSERTION_TAIL);
    for spec in [spec_80_20(), spec_50_50(), spec_1_1_1(), spec_0_100()] {
        let check = FixedCheck::new(&spec, &settings).expect("valid");
        let n = check.planned_requests();
        let mut gateways = vec![(
            "least favourable",
            least_favourable_gateway(&spec, &settings),
        )];
        if spec == spec_1_1_1() {
            // A non-proportional alternative with the same largest deviation has more power.
            gateways.push((
                "+5/-5/0",
                Gateway::new(&[
                    ("red", 0.3833333333333333),
                    ("green", 0.2833333333333333),
                    ("blue", 1.0 / 3.0),
                ]),
            ));
        }
        for (label, gateway) in gateways {
            let fails = (0..POWER_RUNS)
                .filter(|_| check.judge(&gateway.counts(&mut rng, n)).outcome == Outcome::Fail)
                .count() as u64;
            println!(
                "fixed power {:?} {label} {:?} at n={n}: {fails}/{POWER_RUNS} (limit {limit})",
                spec.destinations, gateway.shares
            );
            assert!(fails >= limit);
        }
    }
    println!("fixed power: {:?}", started.elapsed());
}

#[test]
fn sequential_power_against_deviations_of_delta() {
    let started = Instant::now();
    let settings = default_settings();
    let mut rng = StdRng::seed_from_u64(0x5EED_0005);
    let limit = lower_limit(POWER_RUNS, settings.power, ASSERTION_TAIL);
    let delta = settings.min_detectable_deviation;
    let cases = [
        (spec_80_20(), Some(("colorgateway", 0.75))),
        (spec_80_20(), Some(("colorgateway", 0.85))),
        (spec_50_50(), Some(("colorgateway", 0.45))),
        (spec_1_1_1(), Some(("red", 1.0 / 3.0 + delta))),
        (spec_1_1_1(), Some(("red", 1.0 / 3.0 - delta))),
        (spec_0_100(), None),
    ];
    for (spec, moved) in cases {
        let template = SequentialCheck::new(&spec, &settings).expect("valid");
        let gateway = match moved {
            Some((name, share)) => Gateway::shifted(&spec, name, share),
            None => leaking_gateway(&spec, delta),
        };
        let (mut fails, mut total_n) = (0u64, 0u64);
        for _ in 0..POWER_RUNS {
            let (state, n) = gateway.run(&template, &mut rng);
            fails += u64::from(state == SequentialState::Fail);
            total_n += n;
        }
        println!(
            "sequential power {:?} {:?}: {fails}/{POWER_RUNS} failed before the cap {} \
             (limit {limit}), mean n {:.0}",
            spec.destinations,
            gateway.shares,
            template.plan().sequential_cap,
            total_n as f64 / POWER_RUNS as f64
        );
        assert!(fails >= limit);
    }
    println!("sequential power: {:?}", started.elapsed());
}

const MUTANT_RUNS: u64 = 1_000;

#[test]
fn mutant_gateways_are_caught() {
    let started = Instant::now();
    let settings = default_settings();
    let mut rng = StdRng::seed_from_u64(0x5EED_0006);
    let split = spec_80_20();
    let with_zero = spec_80_20_0();
    let lone = spec_0_100();
    let mutants = [
        (
            "weights ignored",
            split.clone(),
            Gateway::new(&[("colorgateway", 0.5), ("colorgatewayv2", 0.5)]),
        ),
        (
            "weights swapped",
            split.clone(),
            Gateway::new(&[("colorgateway", 0.2), ("colorgatewayv2", 0.8)]),
        ),
        (
            "weights ignored, zero weight served",
            with_zero.clone(),
            Gateway::new(&[
                ("colorgateway", 1.0 / 3.0),
                ("colorgatewayv2", 1.0 / 3.0),
                ("colorgatewayv3", 1.0 / 3.0),
            ]),
        ),
        (
            "1% leak",
            with_zero.clone(),
            leaking_gateway(&with_zero, 0.01),
        ),
        ("1% leak", lone.clone(), leaking_gateway(&lone, 0.01)),
    ];
    for (label, spec, gateway) in mutants {
        let fixed = FixedCheck::new(&spec, &settings).expect("valid");
        let n = fixed.planned_requests();
        let sequential = SequentialCheck::new(&spec, &settings).expect("valid");
        let fixed_caught = (0..MUTANT_RUNS)
            .filter(|_| fixed.judge(&gateway.counts(&mut rng, n)).outcome == Outcome::Fail)
            .count() as u64;
        let (mut seq_caught, mut seq_n) = (0u64, Vec::new());
        for _ in 0..MUTANT_RUNS {
            let (state, used) = gateway.run(&sequential, &mut rng);
            seq_caught += u64::from(state == SequentialState::Fail);
            seq_n.push(used);
        }
        seq_n.sort_unstable();
        println!(
            "mutant {label} on {:?}: fixed caught {fixed_caught}/{MUTANT_RUNS} at n={n}; \
             sequential caught {seq_caught}/{MUTANT_RUNS}, median n {}, p95 n {}",
            spec.destinations,
            seq_n[seq_n.len() / 2],
            seq_n[seq_n.len() * 95 / 100]
        );
        if label == "1% leak" {
            // The stated probabilities: the fixed check sees a hit within n requests with
            // probability 1 - 0.99^n; the sequential check can pass after
            // `leak_free_requests` clean requests, so it catches the leak at least with
            // probability 1 - 0.99^leak_free_requests.
            let stated = leak_detection_probability(0.01, n);
            let fixed_lo = lower_limit(MUTANT_RUNS, stated, ASSERTION_TAIL);
            let fixed_hi = upper_limit(MUTANT_RUNS, stated, ASSERTION_TAIL);
            let seq_stated = leak_detection_probability(0.01, sequential.plan().leak_free_requests);
            println!(
                "  stated: fixed {stated:.4} (accept {fixed_lo}..={fixed_hi}), sequential >= \
                 {seq_stated:.4}"
            );
            assert!((fixed_lo..=fixed_hi).contains(&fixed_caught));
            assert!(seq_caught >= lower_limit(MUTANT_RUNS, seq_stated, ASSERTION_TAIL));
        } else {
            let limit = lower_limit(MUTANT_RUNS, settings.power, ASSERTION_TAIL);
            assert!(fixed_caught >= limit);
            assert!(seq_caught >= limit);
        }
    }
    println!("mutants: {:?}", started.elapsed());
}

#[test]
fn exact_size_of_the_two_destination_test_at_the_planned_size() {
    // With two positive-weight destinations the Pearson test is a function of one binomial
    // count, so its true false-alarm probability can be summed exactly: the chi-square
    // approximation must not exceed alpha by more than a small factor at the planned sizes.
    let settings = default_settings();
    for spec in [spec_80_20(), spec_50_50()] {
        let n = plan(&spec, &settings).expect("plan").requests;
        let p0 = spec.expected_share("colorgateway").expect("in spec");
        let crit = chi_square_critical(1, settings.alpha);
        let dist = Binomial::new(p0, n).expect("valid");
        let var0 = n as f64 * p0 * (1.0 - p0);
        // z² >= crit  <=>  |x - n p0| >= sqrt(crit var0).
        let half_width = (crit * var0).sqrt();
        let low = (n as f64 * p0 - half_width).floor() as u64;
        let high = (n as f64 * p0 + half_width).ceil() as u64;
        let size = dist.cdf(low) + dist.sf(high - 1);
        println!(
            "exact size {:?} at n={n}: {size:.3e} = {:.3} x alpha",
            spec.destinations,
            size / settings.alpha
        );
        assert!(size <= 1.25 * settings.alpha, "size {size}");
    }
}

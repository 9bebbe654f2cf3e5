//! The exact operating characteristics of the sequential check for the splits the shipped
//! scenarios use, at the per-check α they get, computed by dynamic programming
//! ([`super::oc`]); and one seeded simulation through the check itself, which shows that the
//! computation describes the code that runs.
//!
//! The shipped α: the walkthrough run (`cargo xtask e2e`, both walkthroughs) spreads the family
//! budget 1e-4 over its 8 split checks (1.25e-5 each, of which the connection check takes a
//! part where it runs); the conformance suite over about 18 (5.6e-6). Both are tabulated.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statrs::distribution::{Binomial, DiscreteCDF};

use super::{CheckSettings, SequentialCheck, SequentialState, SplitSpec, Truth};

const WALKTHROUGH_ALPHA: f64 = 1.25e-5;
const CONFORMANCE_ALPHA: f64 = 5.63e-6;

fn settings(alpha: f64) -> CheckSettings {
    CheckSettings {
        alpha,
        ..CheckSettings::default()
    }
}

/// The two-destination and leak-only splits of the shipped scenarios, by the share of the
/// destination that decides (the first positive weight) and whether zero weights ride along.
fn shipped_splits() -> Vec<(&'static str, SplitSpec)> {
    vec![
        ("80/20", SplitSpec::new([("v1", 80), ("v2", 20)])),
        ("50/50", SplitSpec::new([("v1", 50), ("v2", 50)])),
        ("90/10", SplitSpec::new([("v1", 90), ("v2", 10)])),
        ("3:1", SplitSpec::new([("v1", 3), ("v2", 1)])),
        ("3:1:0", SplitSpec::new([("v1", 3), ("v2", 1), ("v3", 0)])),
        (
            "70/30/0",
            SplitSpec::new([("v1", 70), ("v2", 30), ("v3", 0)]),
        ),
        ("1:0:1", SplitSpec::new([("v1", 1), ("v2", 0), ("v3", 1)])),
        ("0/100", SplitSpec::new([("v1", 0), ("v2", 100)])),
        ("1:0:0", SplitSpec::new([("v1", 1), ("v2", 0), ("v3", 0)])),
    ]
}

#[test]
fn exact_operating_characteristics_of_the_shipped_splits() {
    println!(
        "{:<8} {:>9} {:>6} {:>6} {:>10} {:>10} {:>10} {:>8}",
        "split", "alpha", "share", "cap", "P(pass)", "P(fail)", "P(inconc)", "mean n"
    );
    for alpha in [WALKTHROUGH_ALPHA, CONFORMANCE_ALPHA] {
        let settings = settings(alpha);
        let beta = settings.miss_rate();
        let delta = settings.min_detectable_deviation;
        for (label, spec) in shipped_splits() {
            let check = SequentialCheck::new(&spec, &settings).expect("valid");
            let cap = check.plan().sequential_cap;
            let p0 = check.deciding_share();
            let mut truths = vec![("correct", Truth::share(p0.unwrap_or(0.0)))];
            if let Some(p0) = p0 {
                for (name, p) in [
                    ("-delta", p0 - delta),
                    ("+delta", p0 + delta),
                    ("-delta/2", p0 - delta / 2.0),
                    ("+delta/2", p0 + delta / 2.0),
                ] {
                    if p > 0.0 && p < 1.0 {
                        truths.push((name, Truth::share(p)));
                    }
                }
            }
            if spec.destinations.iter().any(|(_, w)| *w == 0) {
                // A 1 % leak to the zero-weight destinations, the rest split correctly.
                let p = p0.unwrap_or(0.0);
                truths.push((
                    "1% leak",
                    Truth {
                        tested: p * 0.99,
                        forbidden: 0.01,
                    },
                ));
            }
            for (name, truth) in truths {
                let point = check
                    .operating_point(truth)
                    .expect("one deciding destination");
                println!(
                    "{label:<8} {alpha:>9.2e} {name:>8} {cap:>6} {:>10.3e} {:>10.3e} {:>10.3e} {:>8.0}",
                    point.pass, point.fail, point.inconclusive, point.mean_requests
                );
                let total = point.pass + point.fail + point.inconclusive;
                assert!((total - 1.0).abs() < 1e-9, "{label} {name}: {point:?}");
                match name {
                    "correct" => {
                        // A fail spends α; the cap leaves at most α undecided.
                        assert!(point.fail <= alpha, "{label}: {point:?}");
                        assert!(point.inconclusive <= alpha, "{label}: {point:?}");
                    }
                    "-delta" | "+delta" => {
                        // A pass spends β; the cap is where a gateway on the edge has failed
                        // with probability 1 - 2β.
                        assert!(point.pass <= beta, "{label} {name}: {point:?}");
                        assert!(point.fail >= 1.0 - 2.0 * beta, "{label} {name}: {point:?}");
                    }
                    "1% leak" => {
                        let required = check.plan().leak_requests.expect("zero weights");
                        assert!(
                            point.fail >= settings.leak_power,
                            "{label}: caught with {} < {} (pass allowed after {required})",
                            point.fail,
                            settings.leak_power
                        );
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The traffic goals, at the walkthrough's α with δ = 5 points and a miss rate of 0.01:
/// a correct 80/20 verdict in at most 1,000 requests on average, 50/50 in at most 1,500.
#[test]
fn mean_requests_per_correct_verdict_meet_the_goals() {
    let settings = settings(WALKTHROUGH_ALPHA);
    for (spec, goal) in [
        (SplitSpec::new([("v1", 80), ("v2", 20)]), 1_000.0),
        (SplitSpec::new([("v1", 50), ("v2", 50)]), 1_500.0),
    ] {
        let check = SequentialCheck::new(&spec, &settings).expect("valid");
        let mean = check
            .plan()
            .correct_gateway
            .mean_requests
            .expect("exact with one deciding destination");
        let direct = check
            .operating_point(Truth::share(check.deciding_share().expect("deciding")))
            .expect("exact");
        println!(
            "{:?}: mean {mean:.1} requests (goal {goal})",
            spec.destinations
        );
        assert!((mean - direct.mean_requests).abs() < 1e-6);
        assert!(mean <= goal, "{:?}: {mean}", spec.destinations);
    }
}

/// The computation describes the running check: seeded runs of `SequentialCheck` itself, at a
/// test-friendly α and on a gateway between the expected share and an edge (where every verdict
/// has a sizeable probability), land where the exact probabilities say.
#[test]
fn simulated_runs_of_the_check_agree_with_the_computation() {
    const RUNS: u64 = 4_000;
    let spec = SplitSpec::new([("v1", 80), ("v2", 20), ("v3", 0)]);
    let check = SequentialCheck::new(&spec, &settings(0.01)).expect("valid");
    let truth = Truth {
        tested: 0.775 * 0.999,
        forbidden: 0.001,
    };
    let exact = check.operating_point(truth).expect("exact");
    let mut rng = StdRng::seed_from_u64(0x5EED_00C0);
    let (mut passes, mut fails, mut total_n) = (0u64, 0u64, 0u64);
    for _ in 0..RUNS {
        let mut run = check.restart();
        loop {
            let u: f64 = rng.random();
            let destination = if u < truth.forbidden {
                "v3"
            } else if u < truth.forbidden + truth.tested {
                "v1"
            } else {
                "v2"
            };
            match run.observe(destination) {
                SequentialState::Continue => {}
                SequentialState::Pass => {
                    passes += 1;
                    break;
                }
                SequentialState::Fail => {
                    fails += 1;
                    break;
                }
                SequentialState::Inconclusive => break,
            }
        }
        total_n += run.n();
    }
    // Two-sided acceptance regions at tail 1e-6 around the exact probabilities.
    let accept = |p: f64| {
        let b = Binomial::new(p, RUNS).expect("valid");
        let mut lo = 0;
        while b.cdf(lo) < 1e-6 {
            lo += 1;
        }
        let mut hi = RUNS;
        while hi > 0 && b.sf(hi - 1) < 1e-6 {
            hi -= 1;
        }
        lo..=hi
    };
    println!(
        "simulated {passes} passes, {fails} fails of {RUNS} (exact {:.4} / {:.4}), mean n {:.1} \
         (exact {:.1})",
        exact.pass,
        exact.fail,
        total_n as f64 / RUNS as f64,
        exact.mean_requests
    );
    assert!(accept(exact.pass).contains(&passes));
    assert!(accept(exact.fail).contains(&fails));
    let mean = total_n as f64 / RUNS as f64;
    assert!((mean / exact.mean_requests - 1.0).abs() < 0.05);
}

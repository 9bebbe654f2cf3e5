//! The exact operating characteristics of every split check the shipped scenarios run, at the α
//! each really gets in its run (the runner's own budget division, `planned_split_checks`):
//! computed by dynamic programming where one destination decides, bounded otherwise. Each
//! assertion is on a computed probability and fails if the design or the budget division breaks
//! a stated guarantee.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::runner::{PlannedSplit, RunSettings, planned_split_checks};
use harness::scenario::{self, Scenario};
use harness::stats::{FixedCheck, OperatingPoint, SequentialCheck, Truth};

use crate::gate::workspace_root;

fn load_all(paths: &[PathBuf]) -> Vec<Scenario> {
    paths
        .iter()
        .map(|p| scenario::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// The runs colormesh ships: `cargo xtask e2e` (both walkthroughs in one run), `cargo xtask
/// conformance` (the whole suite in one run) and the mutant self-test (its scenario alone).
fn shipped_runs() -> Vec<(&'static str, Vec<PlannedSplit>)> {
    let root = workspace_root();
    let settings = RunSettings::builder(root.join("manifests")).build();
    let runs = [
        (
            "e2e",
            vec![
                root.join("scenarios/walkthrough.yaml"),
                root.join("scenarios/walkthrough-gateway-api.yaml"),
            ],
        ),
        (
            "conformance",
            yaml_files(&root.join("scenarios/conformance")),
        ),
        (
            "mutants",
            vec![root.join("testing/mutant-gateway/scenarios/mutants.yaml")],
        ),
    ];
    runs.into_iter()
        .map(|(name, paths)| {
            let scenarios = load_all(&paths);
            let planned = planned_split_checks(&scenarios, &settings).expect("plannable");
            (name, planned)
        })
        .collect()
}

#[test]
fn every_shipped_split_keeps_its_guarantees_at_the_alpha_it_gets() {
    let mut seen = BTreeSet::new();
    let mut exact = 0;
    let mut bounded = 0;
    println!(
        "{:<12} {:<24} {:>9} {:>9} {:>6} {:>10} {:>10} {:>10} {:>7}",
        "run", "split", "alpha", "truth", "cap", "P(pass)", "P(fail)", "P(inconc)", "mean n"
    );
    for (run, planned) in shipped_runs() {
        assert!(!planned.is_empty(), "{run}: no split checks");
        let mut false_red = 0.0;
        for split in &planned {
            let check = SequentialCheck::new(&split.spec, &split.check).expect("valid");
            // A step judged at the fixed sample size (`sequential: false`) is computed as such.
            let fixed = (!split.sequential)
                .then(|| FixedCheck::new(&split.spec, &split.check).expect("valid"));
            let point_of = |truth: Truth| -> Option<OperatingPoint> {
                match &fixed {
                    Some(fixed) => fixed.operating_point(truth),
                    None => check.operating_point(truth),
                }
            };
            let plan = check.plan();
            let alpha = split.check.alpha;
            let beta = split.check.miss_rate();
            let delta = split.check.min_detectable_deviation;
            let mode = if split.sequential { "" } else { " (fixed n)" };
            false_red += match &fixed {
                Some(_) => {
                    let p0 = check.deciding_share().unwrap_or(0.0);
                    let point = point_of(Truth::share(p0)).expect("one deciding destination");
                    point.fail + point.inconclusive
                }
                None => plan.correct_gateway.false_red(),
            };
            let label = split
                .spec
                .destinations
                .iter()
                .map(|(n, w)| format!("{n}:{w}"))
                .collect::<Vec<_>>()
                .join(" ")
                + mode;
            if !seen.insert(format!("{run} {label} {alpha:e}")) {
                continue;
            }
            let shares = match check.deciding_share() {
                Some(p0) => Some(p0),
                None if check.operating_point(Truth::share(0.0)).is_some() => None,
                None => {
                    // Three or more deciding destinations: the plan's exact binomial bounds.
                    bounded += 1;
                    let c = plan.correct_gateway;
                    println!(
                        "{run:<12} {label:<24} {alpha:>9.2e} {:>9} {:>6} {:>10.3e} {:>10.3e} {:>10.3e} {:>7}",
                        "bounded", plan.sequential_cap, c.pass, c.fail, c.inconclusive, "-"
                    );
                    assert!(!c.exact);
                    assert!(c.inconclusive <= alpha, "{run} {label}: {c:?}");
                    assert!(plan.edge_fail_by_cap >= 1.0 - 2.0 * beta, "{run} {label}");
                    continue;
                }
            };
            exact += 1;
            let p0 = shares.unwrap_or(0.0);
            let mut truths = vec![("correct", Truth::share(p0))];
            if shares.is_some() {
                for (name, p) in [("-delta", p0 - delta), ("+delta", p0 + delta)] {
                    if p > 0.0 && p < 1.0 {
                        truths.push((name, Truth::share(p)));
                    }
                }
            }
            if let Some(required) = plan.leak_requests {
                assert!(plan.leak_free_requests >= required);
                truths.push((
                    "1% leak",
                    Truth {
                        tested: p0 * 0.99,
                        forbidden: 0.01,
                    },
                ));
            }
            for (truth_name, truth) in truths {
                let point = point_of(truth).expect("exact");
                println!(
                    "{run:<12} {label:<24} {alpha:>9.2e} {truth_name:>9} {:>6} {:>10.3e} {:>10.3e} {:>10.3e} {:>7.0}",
                    if split.sequential {
                        plan.sequential_cap
                    } else {
                        plan.requests
                    },
                    point.pass,
                    point.fail,
                    point.inconclusive,
                    point.mean_requests
                );
                match truth_name {
                    "correct" => {
                        assert!(point.fail <= alpha, "{run} {label}: {point:?}");
                        assert!(point.inconclusive <= alpha, "{run} {label}: {point:?}");
                    }
                    "1% leak" => assert!(
                        point.fail >= split.check.leak_power,
                        "{run} {label}: {point:?}"
                    ),
                    _ => {
                        assert!(point.pass <= beta, "{run} {label} {truth_name}: {point:?}");
                        assert!(
                            point.fail >= 1.0 - 2.0 * beta,
                            "{run} {label} {truth_name}: {point:?}"
                        );
                    }
                }
            }
        }
        // The run's gate: a correct gateway goes red (fail or inconclusive) with probability at
        // most twice the family budget, the connection checks' α aside.
        println!(
            "{run}: {} split checks, false red <= {false_red:.3e}",
            planned.len()
        );
        assert!(false_red <= 2.0 * 1e-4, "{run}: {false_red}");
    }
    println!("{exact} computed exactly, {bounded} bounded");
    assert!(exact > 0 && bounded > 0);
}

//! The harness's self-test: every faulty gateway fails the focused scenario
//! (`scenarios/mutants.yaml`) on the step and the check that exist to catch it, for every seed,
//! and the control (`--mutation none`, the same data plane without a fault) passes.
//!
//! Each run is the local backend with `mutant-gateway --mutation <name>` as the gateway under
//! test. The binaries come from the profile folder of this test; build them first with
//! `cargo build --bins -p colorteller -p colorgateway -p tcpecho -p echo -p gateway-proxy`
//! (`cargo test --workspace` does it by itself).
//!
//! The table this test prints records how many requests each fault needed before the verdict
//! (the replies the failing step observed). Measured with seeds 11, 23, 37, 41 and 53 (debug
//! build, 2 cores; about 90 s for the 95 runs):
//!
//! ```text
//! mutation                        scenario              caught at (check)                                   requests
//! none                            mutants.yaml          passes (7,100-7,300 requests per run)
//! weights-ignored                 mutants.yaml          canary 80/20 (split, judged at the fixed n)         2,923
//! weights-swapped                 mutants.yaml          canary 80/20 (split, judged at the fixed n)         2,923
//! sticky-connection               mutants.yaml          canary 80/20 (connection independence)              42-74
//! smooth-wrr                      mutants.yaml          canary 80/20 (connection independence: order)       854-1,300
//! partially-sticky --repeat 0.2   mutants.yaml          canary 80/20 (connection independence)              1,437-2,493
//! partially-sticky --repeat 0.1   mutants.yaml          passes (0 of 5 caught)
//! hash-sticky                     mutants.yaml          canary 80/20 with one session key (split)           2,923
//! off-by-one                      mutants.yaml          canary 0/100 (split: weight-0 echo-a answered)      19-149
//! zero-weight-leak                mutants.yaml          canary 0/100 (split: weight-0 echo-a answered)      82-147
//! per-connection-leak             mutants.yaml          canary 0/100 (split: weight-0 echo-a answered)      60-481
//! stale-config                    mutants.yaml          canary 0/100 (shift: stale after the report)        164-284
//! stale-config --stale-for 100ms  mutants.yaml          canary 0/100 (shift: stale after the report)        266-288
//! double-slash-rewrite            mutants.yaml          the prefix rewrite keeps the rest (exact: echo)     1
//! reload-drop                     mutants.yaml          canary 0/100 (shift: 503s during the change)        217-331
//! smooth-wrr                      declared-round-robin  passes (57 consecutive picks judged, 64 requests)
//! hash-sticky                     declared-hash         passes (638-1,357 requests)
//! none                            declared-hash         canary 80/20 declared hash (stickiness)             2-15
//! sticky-connection               declared-per-conn.    passes (1,152-1,275 requests)
//! none                            declared-per-conn.    canary 80/20 declared per connection (stickiness)  2-7
//! ```
//!
//! `canary 0/100` applies while traffic flows: for the faults its shift catches, the requests
//! counted are those sent after the apply started; for those its split catches, the replies the
//! split judged (sent after the gateway reported the change).
//!
//! The numbers behind "every time":
//! - The three 1 % leaks are geometric (mean 100); the split check does not pass a split with a
//!   zero-weight destination before 917 samples, which a 1 % leak survives with probability
//!   0.99^917 < 1e-4. For `per-connection-leak` that holds because every request of the 0/100 step
//!   goes on a fresh connection; over the default four keep-alive connections it would be caught
//!   with probability 1 − 0.99^4 = 0.039. All five seeds: at least (1 − 1e-4)^5 > 0.9995.
//! - `partially-sticky` (harness `stats::units_power_tests`, 600 seeded runs of the 80/20 step at
//!   this scenario's levels): the two 80/20 steps are judged at the fixed n (2,923 replies), and at
//!   0.2 one such step catches it with probability at least 0.958 (595 of 600), almost always by
//!   the connection check, so at least 0.998 per run. A sequential step would stop at the split's
//!   verdict (about 900 replies) and catch it only 14 % of the time. At 0.1 one step catches it
//!   with probability at most 0.053 (9 of 600): the connection check needs about 6,300 replies
//!   (median), so it is not claimed.
//! - `none` on the declared-hash (declared-per-connection) scenario: each of the 8 keys
//!   (connections) sent 5 requests goes to one destination
//!   by chance with probability 0.8^5 + 0.2^5 = 0.328, so the stickiness check fails it with
//!   probability 1 − 0.328^8 = 0.99987 per run (`stats::StickinessCheck` reports this number).
//! - `smooth-wrr` declared round robin passes by construction: its counts over any 57 consecutive
//!   picks are within 0.8 of 80/20 (`stats::smooth_wrr_window_bound`), the 7 requests of the step
//!   before it start the window mid-cycle.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use harness::backend::Backend;
use harness::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use harness::classify::CheckKind;
use harness::runner::{RunSettings, ScenarioReport, StepOutcome, StepReport, run_scenario};
use harness::stats::Outcome;
use mutant_gateway::Mutation;

/// Seeds per mutation; a run takes about half a second on the local backend.
const SEEDS: [u64; 5] = [11, 23, 37, 41, 53];

const MUTANTS: &str = "mutants.yaml";
const DECLARED_ROUND_ROBIN: &str = "declared-round-robin.yaml";
const DECLARED_HASH: &str = "declared-hash.yaml";
const DECLARED_PER_CONNECTION: &str = "declared-per-connection.yaml";

const REWRITE_STEP: &str = "the prefix rewrite keeps the rest of the path";
const SPLIT_STEP: &str = "canary 80/20";
const SESSION_STEP: &str = "canary 80/20 with one session key";
const ZERO_WEIGHT_STEP: &str = "canary 0/100";
const DECLARED_HASH_STEP: &str = "canary 80/20 declared hash";
const DECLARED_PER_CONNECTION_STEP: &str = "canary 80/20 declared per connection";

/// What one run must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pass,
    /// Failed on this step by this check, every seed.
    Caught(&'static str, Caught),
    /// Failed on one of these steps by the connection-independence (or the split) check, every
    /// seed: a fault each of several steps catches with high probability, not certainty.
    CaughtOn(&'static [&'static str]),
    /// A fault the harness catches only with some probability (stated in the doc comment): when
    /// caught, on one of these steps by the connection-independence or the split check.
    MaybeCaught(&'static [&'static str]),
}

/// One row of the self-test: a gateway, its options, a scenario and what the run must show.
struct Case {
    mutation: Mutation,
    options: Vec<String>,
    scenario: &'static str,
    expect: Expect,
}

fn case(mutation: Mutation, options: &[&str], scenario: &'static str, expect: Expect) -> Case {
    Case {
        mutation,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        scenario,
        expect,
    }
}

/// The runs: every mutation against `mutants.yaml`, the stale configuration once more with a lag
/// of only 100 ms (the harness sends the first request within about 20 ms of the gateway reporting
/// a change live; a 5 ms lag slips through), `partially-sticky` at 0.2 and 0.1, and the
/// declared-selection scenarios for the gateways they describe (and the control, which neither
/// hashes nor sticks to a connection).
fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Mutation::ALL
        .iter()
        .map(|m| match m {
            Mutation::PartiallySticky => case(
                *m,
                &["--repeat", "0.2"],
                MUTANTS,
                Expect::CaughtOn(&[SPLIT_STEP, SESSION_STEP]),
            ),
            other => case(*other, &[], MUTANTS, expected(*other)),
        })
        .collect();
    cases.push(case(
        Mutation::StaleConfig,
        &["--stale-for", "100ms"],
        MUTANTS,
        Expect::Caught(ZERO_WEIGHT_STEP, Caught::Stale),
    ));
    cases.push(case(
        Mutation::PartiallySticky,
        &["--repeat", "0.1"],
        MUTANTS,
        Expect::MaybeCaught(&[SPLIT_STEP, SESSION_STEP]),
    ));
    cases.push(case(
        Mutation::SmoothWrr,
        &[],
        DECLARED_ROUND_ROBIN,
        Expect::Pass,
    ));
    cases.push(case(Mutation::HashSticky, &[], DECLARED_HASH, Expect::Pass));
    cases.push(case(
        Mutation::None,
        &[],
        DECLARED_HASH,
        Expect::Caught(DECLARED_HASH_STEP, Caught::Stickiness),
    ));
    cases.push(case(
        Mutation::StickyConnection,
        &[],
        DECLARED_PER_CONNECTION,
        Expect::Pass,
    ));
    cases.push(case(
        Mutation::None,
        &[],
        DECLARED_PER_CONNECTION,
        Expect::Caught(DECLARED_PER_CONNECTION_STEP, Caught::Stickiness),
    ));
    cases
}

/// The check that failed a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caught {
    /// An exact check of every reply (status, echo path, ...).
    Exact(CheckKind),
    /// The split check.
    Split,
    /// The connection-independence check.
    Connection,
    /// A shift step: non-2xx replies or resets while the weights changed.
    ShiftErrors,
    /// A shift step: requests sent after the gateway reported the new generation were served
    /// by an older one.
    Stale,
    /// The stickiness check of a declared per-connection or hash selection.
    Stickiness,
}

impl std::fmt::Display for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caught::Exact(kind) => write!(f, "exact ({kind})"),
            Caught::Split => f.write_str("split"),
            Caught::Connection => f.write_str("connection independence"),
            Caught::ShiftErrors => f.write_str("shift: errors"),
            Caught::Stale => f.write_str("shift: stale"),
            Caught::Stickiness => f.write_str("stickiness"),
        }
    }
}

/// Where each mutation must be caught in `mutants.yaml`.
fn expected(mutation: Mutation) -> Expect {
    match mutation {
        Mutation::None => Expect::Pass,
        Mutation::DoubleSlashRewrite => {
            Expect::Caught(REWRITE_STEP, Caught::Exact(CheckKind::Echo))
        }
        Mutation::WeightsIgnored | Mutation::WeightsSwapped => {
            Expect::Caught(SPLIT_STEP, Caught::Split)
        }
        Mutation::StickyConnection | Mutation::SmoothWrr | Mutation::PartiallySticky => {
            Expect::Caught(SPLIT_STEP, Caught::Connection)
        }
        Mutation::HashSticky => Expect::Caught(SESSION_STEP, Caught::Split),
        Mutation::OffByOne | Mutation::ZeroWeightLeak | Mutation::PerConnectionLeak => {
            Expect::Caught(ZERO_WEIGHT_STEP, Caught::Split)
        }
        Mutation::StaleConfig => Expect::Caught(ZERO_WEIGHT_STEP, Caught::Stale),
        Mutation::ReloadDrop => Expect::Caught(ZERO_WEIGHT_STEP, Caught::ShiftErrors),
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn run(
    mutation: Mutation,
    options: &[String],
    scenario: &str,
    seed: u64,
) -> (ScenarioReport, String) {
    let scenario = harness::scenario::load(&crate_dir().join("scenarios").join(scenario))
        .expect("the mutant scenario loads");
    let settings = RunSettings::builder(crate_dir().join("manifests"))
        .seed(seed)
        .build();
    let config = LocalConfig {
        bin_dir: LocalConfig::bin_dir_of_current_exe().expect("the test's profile folder"),
        gateway: GatewayCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_mutant-gateway")),
            extra_args: ["--mutation", mutation.name()]
                .into_iter()
                .map(str::to_owned)
                .chain(options.iter().cloned())
                .collect(),
        },
        manifests_dir: settings.manifests_dir.clone(),
        work_dir: None,
        seed,
        echo_requests: false,
    };
    let mut backend = LocalBackend::start(config)
        .await
        .unwrap_or_else(|error| panic!("starting the local backend for {mutation}: {error}"));
    let mut transcript = Vec::new();
    let report = run_scenario(&mut backend, &scenario, &settings, &mut transcript).await;
    backend
        .shutdown()
        .await
        .unwrap_or_else(|error| panic!("stopping the local backend for {mutation}: {error}"));
    (report, String::from_utf8_lossy(&transcript).into_owned())
}

/// The check that failed `step`, from its traffic report.
fn caught_by(step: &StepReport) -> Option<Caught> {
    let traffic = step.traffic.as_ref()?;
    if let Some(shift) = &traffic.shift {
        if shift.non_2xx + shift.transport_errors > shift.max_errors {
            return Some(Caught::ShiftErrors);
        }
        if shift.stale_after_report > shift.max_stale {
            return Some(Caught::Stale);
        }
    }
    if traffic.failing_replies > traffic.max_errors {
        let kind = *traffic.failures_by_check.keys().next()?;
        return Some(Caught::Exact(kind));
    }
    let split = traffic.split.as_ref()?;
    if split
        .stickiness
        .as_ref()
        .is_some_and(|c| c.outcome == Outcome::Fail)
    {
        return Some(Caught::Stickiness);
    }
    if split
        .connection_check
        .as_ref()
        .is_some_and(|c| c.outcome == Outcome::Fail)
    {
        return Some(Caught::Connection);
    }
    (split.verdict.outcome == Outcome::Fail).then_some(Caught::Split)
}

/// The destinations of the counted replies of a step.
fn destinations(step: &StepReport) -> BTreeSet<String> {
    step.traffic
        .iter()
        .flat_map(|t| &t.records)
        .filter_map(|r| r.destination.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutant_fails_on_its_check_and_the_control_passes() {
    let mut table = String::from(
        "mutation                         scenario                   seed  caught at                                      by                       requests\n",
    );
    let mut maybe_caught = 0;
    let mut maybe_runs = 0;
    for Case {
        mutation,
        options,
        scenario,
        expect,
    } in cases()
    {
        let label = [mutation.name().to_owned()]
            .into_iter()
            .chain(options.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        for seed in SEEDS {
            let (report, transcript) = run(mutation, &options, scenario, seed).await;
            let mut row = |at: &str, by: String, requests: u64| {
                let _ = writeln!(
                    table,
                    "{label:<32} {scenario:<26} {seed:<5} {at:<46} {by:<24} {requests}"
                );
            };
            let (step_name, check) = match expect {
                Expect::Pass => {
                    assert!(
                        report.passed(),
                        "{label} on {scenario} failed with seed {seed}:\n{transcript}"
                    );
                    row("(passed)", String::new(), report.requests_sent);
                    continue;
                }
                Expect::MaybeCaught(steps) | Expect::CaughtOn(steps) => {
                    let required = matches!(expect, Expect::CaughtOn(_));
                    assert!(
                        !required || !report.passed(),
                        "{label} was not caught with seed {seed}:\n{transcript}"
                    );
                    maybe_runs += u64::from(!required);
                    if report.passed() {
                        row("(passed)", String::new(), report.requests_sent);
                        continue;
                    }
                    let failed = report
                        .steps
                        .iter()
                        .find(|s| s.outcome == StepOutcome::Failed)
                        .unwrap_or_else(|| {
                            panic!("{label}: not passed, not failed:\n{transcript}")
                        });
                    assert!(
                        steps.contains(&failed.name.as_str()),
                        "{label} (seed {seed}) failed on {}:\n{transcript}",
                        failed.name
                    );
                    let by = caught_by(failed).expect("a check failed");
                    assert!(
                        matches!(by, Caught::Connection | Caught::Split),
                        "{label} (seed {seed}) caught by {by}:\n{transcript}"
                    );
                    maybe_caught += u64::from(!required);
                    let needed = failed.traffic.as_ref().map_or(0, |t| t.summary.received);
                    row(&failed.name, by.to_string(), needed);
                    continue;
                }
                Expect::Caught(step_name, check) => (step_name, check),
            };
            assert_eq!(
                report.outcome,
                StepOutcome::Failed,
                "{label} was not caught with seed {seed}:\n{transcript}"
            );
            let failed = report
                .steps
                .iter()
                .find(|s| s.outcome == StepOutcome::Failed)
                .expect("a failed scenario has a failed step");
            assert_eq!(
                failed.name, step_name,
                "{label} (seed {seed}) failed on the wrong step:\n{transcript}"
            );
            let by = caught_by(failed)
                .unwrap_or_else(|| panic!("{label} (seed {seed}): no check failed:\n{transcript}"));
            let traffic = failed.traffic.as_ref().expect("a traffic step");
            let needed = match (&traffic.shift, by) {
                (Some(shift), Caught::ShiftErrors | Caught::Stale) => {
                    shift.during.replies + shift.after.replies
                }
                // A shift judges its split on the replies after the report only.
                (Some(_), _) => traffic.split.as_ref().map_or(0, |s| s.verdict.n),
                _ => traffic.summary.received,
            };
            if mutation == Mutation::StickyConnection && by == Caught::Split {
                // Every connection happened to stick to the same destination: the replies are
                // consistent with independent picks, and the split check saw a share of 100 %.
                assert_eq!(
                    destinations(failed).len(),
                    1,
                    "{label} (seed {seed}) caught by the split with several destinations:\n{transcript}"
                );
            } else {
                assert_eq!(
                    by, check,
                    "{label} (seed {seed}) caught by the wrong check:\n{transcript}"
                );
            }
            let message = failed.message.clone().unwrap_or_default();
            // The guarantees that make "every time" true, per fault.
            match mutation {
                Mutation::DoubleSlashRewrite => assert_eq!(needed, 1, "the first reply"),
                Mutation::OffByOne | Mutation::ZeroWeightLeak | Mutation::PerConnectionLeak => {
                    // A 1 % leak (of requests, or of connections: every request of this step goes
                    // on a fresh connection) survives the 917 samples the check needs before it
                    // may pass with probability 0.99^917 < 1e-4.
                    assert!(needed <= 917, "{label} needed {needed} requests");
                }
                Mutation::StickyConnection => {
                    assert!(needed <= 400, "{label} needed {needed} requests");
                }
                Mutation::StaleConfig | Mutation::ReloadDrop => {
                    // Caught by what the change cost, whatever the traffic during it was.
                    let shift = traffic.shift.as_ref().expect("canary 0/100 is a shift");
                    assert!(
                        shift.stale_after_report + shift.non_2xx + shift.transport_errors > 0,
                        "{label}: {shift:?}"
                    );
                }
                Mutation::SmoothWrr => assert!(
                    message.contains("picks are not independent")
                        && message.contains("round robin"),
                    "{label} (seed {seed}): {message}"
                ),
                Mutation::None => assert!(
                    message.contains("declared to pick per key")
                        || message.contains("declared to pick per connection"),
                    "{label} (seed {seed}): {message}"
                ),
                _ => {
                    let cap = traffic.split.as_ref().map_or(0, |s| s.cap);
                    assert!(needed <= cap, "{label} needed {needed} > cap {cap}");
                }
            }
            if mutation == Mutation::PerConnectionLeak {
                let split = traffic.split.as_ref().expect("a split step");
                assert_eq!(
                    split.connections as u64, split.verdict.n,
                    "every sample on its own connection"
                );
                assert!(
                    split
                        .leak_note
                        .as_deref()
                        .is_some_and(|n| n.contains("whatever its connection reuse")),
                    "{split:?}"
                );
            }
            row(&failed.name, by.to_string(), needed);
        }
    }
    println!("{table}");
    println!("partially-sticky --repeat 0.1: caught in {maybe_caught} of {maybe_runs} runs");
}

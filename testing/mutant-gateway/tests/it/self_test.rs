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
//! build, 2 cores; about 30 s for the 50 runs):
//!
//! ```text
//! mutation                        caught at (check)                                 requests
//! none                            passes (2,400-4,300 requests per run)
//! weights-ignored                 canary 80/20 (split)                              56-127
//! weights-swapped                 canary 80/20 (split)                              31-37
//! sticky-connection               canary 80/20 (connection independence)            41-69
//! off-by-one                      canary 0/100 (split: weight-0 echo-a answered)    49-397
//! zero-weight-leak                canary 0/100 (split: weight-0 echo-a answered)    14-266
//! stale-config                    canary 0/100 (shift: stale after the report)      449-550
//! stale-config --stale-for 100ms  canary 0/100 (shift: stale after the report)      376-492
//! double-slash-rewrite            the prefix rewrite keeps the rest (exact: echo)   1
//! reload-drop                     canary 0/100 (shift: 503s during the change)      494-809
//! ```
//!
//! `canary 0/100` applies while traffic flows: for the faults its shift catches, the requests
//! counted are those sent after the apply started; for those its split catches, the replies the
//! split judged (sent after the gateway reported the change).
//!
//! The two 1 % leaks are geometric (mean 100); the split check does not pass a split with a
//! zero-weight destination before 917 requests, which a 1 % leak survives with probability 1e-4.

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

/// The runs: every mutation with its defaults, and the stale configuration once more with a lag
/// of only 100 ms, which the harness must still see (it sends the first request within about
/// 20 ms of the gateway reporting a change live; a 5 ms lag slips through).
fn cases() -> Vec<(Mutation, Vec<String>)> {
    let mut cases: Vec<(Mutation, Vec<String>)> =
        Mutation::ALL.iter().map(|m| (*m, Vec::new())).collect();
    cases.push((
        Mutation::StaleConfig,
        vec!["--stale-for".to_owned(), "100ms".to_owned()],
    ));
    cases
}

const REWRITE_STEP: &str = "the prefix rewrite keeps the rest of the path";
const SPLIT_STEP: &str = "canary 80/20";
const ZERO_WEIGHT_STEP: &str = "canary 0/100";

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
}

impl std::fmt::Display for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caught::Exact(kind) => write!(f, "exact ({kind})"),
            Caught::Split => f.write_str("split"),
            Caught::Connection => f.write_str("connection independence"),
            Caught::ShiftErrors => f.write_str("shift: errors"),
            Caught::Stale => f.write_str("shift: stale"),
        }
    }
}

/// Where each mutation must be caught.
fn expected(mutation: Mutation) -> Option<(&'static str, Caught)> {
    match mutation {
        Mutation::None => None,
        Mutation::DoubleSlashRewrite => Some((REWRITE_STEP, Caught::Exact(CheckKind::Echo))),
        Mutation::WeightsIgnored | Mutation::WeightsSwapped => Some((SPLIT_STEP, Caught::Split)),
        Mutation::StickyConnection => Some((SPLIT_STEP, Caught::Connection)),
        Mutation::OffByOne | Mutation::ZeroWeightLeak => Some((ZERO_WEIGHT_STEP, Caught::Split)),
        Mutation::StaleConfig => Some((ZERO_WEIGHT_STEP, Caught::Stale)),
        Mutation::ReloadDrop => Some((ZERO_WEIGHT_STEP, Caught::ShiftErrors)),
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn run(mutation: Mutation, options: &[String], seed: u64) -> (ScenarioReport, String) {
    let scenario = harness::scenario::load(&crate_dir().join("scenarios/mutants.yaml"))
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
        "mutation                         seed  caught at                                      by                       requests\n",
    );
    for (mutation, options) in cases() {
        let label = [mutation.name().to_owned()]
            .into_iter()
            .chain(options.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        for seed in SEEDS {
            let (report, transcript) = run(mutation, &options, seed).await;
            let Some((step_name, check)) = expected(mutation) else {
                assert!(
                    report.passed(),
                    "the control failed with seed {seed}:\n{transcript}"
                );
                let _ = writeln!(
                    table,
                    "{label:<32} {seed:<5} {:<46} {:<24} {}",
                    "(passed)", "", report.requests_sent
                );
                continue;
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
            // The guarantees that make "every time" true, per fault.
            match mutation {
                Mutation::DoubleSlashRewrite => assert_eq!(needed, 1, "the first reply"),
                Mutation::OffByOne | Mutation::ZeroWeightLeak => {
                    // A 1 % leak survives the 917 requests the check needs before it may pass
                    // with probability 1e-4.
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
                _ => {
                    let cap = traffic.split.as_ref().map_or(0, |s| s.cap);
                    assert!(needed <= cap, "{label} needed {needed} > cap {cap}");
                }
            }
            let _ = writeln!(
                table,
                "{label:<32} {seed:<5} {:<46} {:<24} {needed}",
                failed.name,
                by.to_string()
            );
        }
    }
    println!("{table}");
}

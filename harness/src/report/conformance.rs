//! The conformance suite's view of a run: which scenarios run and which are skipped because the
//! gateway under test declares one of their features unsupported, the per-feature results, the
//! feature table, and `conformance-report.json`.
//!
//! The report is shaped like the Gateway API suite's `ConformanceReport` (implementation, date,
//! mode, results with statistics, supported and unsupported features), with features in place
//! of profiles: each scenario counts once for every feature it claims. A feature's result is
//! `failure` if any of its scenarios failed or was inconclusive, `skipped` if all of them were
//! skipped, `partial` if some passed and some were skipped, and `success` otherwise. Skipped
//! scenarios are listed by name with the unsupported features that skipped them; nothing selected
//! is dropped silently.
//!
//! Besides the features, the report carries upstream's profile view ([`ProfileReport`]): for
//! GATEWAY-HTTP and MESH-HTTP, the scenarios counted as core or extended tests the way the
//! Gateway API suite counts its tests (see [`scenario_profiles`]), with core and extended results
//! and the extended features exercised, declared unsupported or left untested.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::ReportError;
use crate::features::{Feature, Profile, Support};
use crate::runner::{RunReport, ScenarioReport, StepOutcome};
use crate::scenario::Scenario;

/// The file [`write_conformance_report`] writes.
pub const CONFORMANCE_REPORT_FILE: &str = "conformance-report.json";

/// A scenario that was selected but not run, because the gateway does not support a feature it
/// claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedScenario {
    pub name: String,
    pub source: PathBuf,
    pub features: Vec<Feature>,
    /// The claimed features the gateway declared unsupported.
    pub unsupported: Vec<Feature>,
}

/// The scenarios to run and the ones skipped as unsupported, both in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub run: Vec<Scenario>,
    pub skipped: Vec<SkippedScenario>,
}

/// Keeps the scenarios that claim one of `only` (all of them when `only` is empty), then sets
/// aside those claiming a feature in `unsupported`.
pub fn select(
    scenarios: Vec<Scenario>,
    only: &[Feature],
    unsupported: &BTreeSet<Feature>,
) -> Selection {
    let mut selection = Selection {
        run: Vec::new(),
        skipped: Vec::new(),
    };
    for scenario in scenarios {
        if !only.is_empty() && !scenario.features.iter().any(|f| only.contains(f)) {
            continue;
        }
        let missing: Vec<Feature> = scenario
            .features
            .iter()
            .copied()
            .filter(|feature| unsupported.contains(feature))
            .collect();
        if missing.is_empty() {
            selection.run.push(scenario);
        } else {
            selection.skipped.push(SkippedScenario {
                name: scenario.name,
                source: scenario.source,
                features: scenario.features,
                unsupported: missing,
            });
        }
    }
    selection
}

/// Who was tested, as the Gateway API report names an implementation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Implementation {
    pub organization: String,
    pub project: String,
    /// Where the project lives, when it has a public address.
    pub url: Option<String>,
    /// A snapshot: the gateway's version, commit or binary, never a branch.
    pub version: String,
    pub contact: Vec<String>,
}

/// What the run itself cannot know: the gateway under test and what it declares.
#[derive(Debug, Clone)]
pub struct ConformanceContext {
    pub implementation: Implementation,
    /// The gateway kind under test (`builtin`, `envoy`), the report's `mode`.
    pub mode: String,
    /// The features this gateway kind declares unsupported.
    pub unsupported: BTreeSet<Feature>,
    /// The features the run was restricted to (`--feature`); empty for the whole suite.
    pub only: Vec<Feature>,
    pub date: SystemTime,
}

/// The result of a feature, a scenario or the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConformanceResult {
    Success,
    /// Some scenarios passed and the others were skipped as unsupported.
    Partial,
    /// Every scenario was skipped as unsupported.
    Skipped,
    Failure,
}

impl ConformanceResult {
    pub fn label(self) -> &'static str {
        match self {
            ConformanceResult::Success => "success",
            ConformanceResult::Partial => "partial",
            ConformanceResult::Skipped => "skipped",
            ConformanceResult::Failure => "FAILURE",
        }
    }

    fn of(statistics: &Statistics) -> Self {
        match statistics {
            Statistics { failed, .. } if *failed > 0 => ConformanceResult::Failure,
            Statistics {
                passed: 0, skipped, ..
            } if *skipped > 0 => ConformanceResult::Skipped,
            Statistics { skipped, .. } if *skipped > 0 => ConformanceResult::Partial,
            _ => ConformanceResult::Success,
        }
    }
}

/// Scenario counts; inconclusive scenarios count as failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// How one scenario ended, for the conformance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ScenarioResult {
    Passed,
    Failed,
    Inconclusive,
    SkippedUnsupported,
}

impl ScenarioResult {
    fn of(report: &ScenarioReport) -> Self {
        match report.outcome {
            StepOutcome::Passed => ScenarioResult::Passed,
            StepOutcome::Inconclusive => ScenarioResult::Inconclusive,
            StepOutcome::Failed | StepOutcome::NotRun => ScenarioResult::Failed,
        }
    }

    fn count(self, statistics: &mut Statistics) {
        match self {
            ScenarioResult::Passed => statistics.passed += 1,
            ScenarioResult::Failed | ScenarioResult::Inconclusive => statistics.failed += 1,
            ScenarioResult::SkippedUnsupported => statistics.skipped += 1,
        }
    }
}

/// One scenario's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioEntry {
    pub name: String,
    pub source: PathBuf,
    pub features: Vec<Feature>,
    pub result: ScenarioResult,
    /// Why it did not pass: the first step that did not, and its message.
    pub message: Option<String>,
    /// The unsupported features that skipped it.
    pub unsupported: Vec<Feature>,
    pub elapsed_ms: f64,
}

/// One feature's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureResult {
    pub name: Feature,
    pub summary: &'static str,
    pub result: ConformanceResult,
    pub statistics: Statistics,
    pub scenarios: Vec<String>,
    pub failed_scenarios: Vec<String>,
    pub skipped_scenarios: Vec<String>,
}

/// The run's totals and the feature lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub result: ConformanceResult,
    /// Over scenarios (each counted once).
    pub statistics: Statistics,
    /// Features with at least one scenario that ran.
    pub supported_features: Vec<Feature>,
    /// Features the gateway declares unsupported.
    pub unsupported_features: Vec<Feature>,
    /// Registry features no selected scenario claims.
    pub untested_features: Vec<Feature>,
    pub text: String,
}

/// `conformance-report.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub implementation: Implementation,
    /// RFC 3339, seconds precision, UTC.
    pub date: String,
    pub mode: String,
    pub backend: String,
    pub seed: u64,
    /// The `--feature` restriction, empty for the whole suite.
    pub only_features: Vec<Feature>,
    pub features: Vec<FeatureResult>,
    /// GATEWAY-HTTP and MESH-HTTP, as upstream's `profiles`.
    pub profiles: Vec<ProfileReport>,
    pub scenarios: Vec<ScenarioEntry>,
    pub summary: Summary,
}

/// A profile level's result, in upstream's vocabulary plus `untested` (no scenario counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProfileResult {
    Success,
    /// Nothing failed, but some tests were skipped.
    Partial,
    Failure,
    /// No selected scenario counts at this level.
    Untested,
}

impl ProfileResult {
    pub fn label(self) -> &'static str {
        match self {
            ProfileResult::Success => "success",
            ProfileResult::Partial => "partial",
            ProfileResult::Failure => "FAILURE",
            ProfileResult::Untested => "untested",
        }
    }

    /// Upstream's `compileResults`: any failure fails, else any skip is partial.
    fn of(statistics: &Statistics) -> Self {
        match statistics {
            Statistics { failed, .. } if *failed > 0 => ProfileResult::Failure,
            Statistics { skipped, .. } if *skipped > 0 => ProfileResult::Partial,
            Statistics { passed: 0, .. } => ProfileResult::Untested,
            _ => ProfileResult::Success,
        }
    }

    /// Upstream's `buildReportSummary` wording.
    fn phrase(self, statistics: &Statistics) -> String {
        match self {
            ProfileResult::Success => "succeeded".to_owned(),
            ProfileResult::Partial => {
                format!("partially succeeded with {} test skips", statistics.skipped)
            }
            ProfileResult::Failure => {
                format!("failed with {} test failures", statistics.failed)
            }
            ProfileResult::Untested => "were not run".to_owned(),
        }
    }
}

/// The scenarios counted at one level of a profile (upstream `Status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    pub result: ProfileResult,
    pub statistics: Statistics,
    pub passed_tests: Vec<String>,
    pub failed_tests: Vec<String>,
    pub skipped_tests: Vec<String>,
}

/// The extended level: the status plus the profile's extended features by what became of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedStatus {
    #[serde(flatten)]
    pub status: ProfileStatus,
    /// Extended features claimed by a scenario that ran.
    pub supported_features: Vec<Feature>,
    /// The supported features whose scenarios all passed.
    pub passed_features: Vec<Feature>,
    /// Extended features the gateway declares unsupported.
    pub unsupported_features: Vec<Feature>,
    /// Extended features no selected scenario claims (and not declared unsupported).
    pub untested_features: Vec<Feature>,
}

/// The core level: the status plus the core features no selected scenario claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreStatus {
    #[serde(flatten)]
    pub status: ProfileStatus,
    pub untested_features: Vec<Feature>,
}

/// One conformance profile's results (upstream `ProfileReport`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileReport {
    pub name: &'static str,
    /// Upstream's sentence: "Core tests succeeded. Extended tests partially succeeded with 1 test
    /// skips."
    pub summary: String,
    pub core: CoreStatus,
    pub extended: ExtendedStatus,
}

/// The profiles a scenario counts in, and at which level, by the upstream names it claims (its
/// colormesh names do not count): as upstream's `getConformanceProfilesForTest`, a scenario is in
/// a profile when every upstream name it claims belongs to that profile, and as `isTestExtended`
/// it is an extended test there when one of them is extended. A scenario claiming no upstream
/// name is in no profile.
pub fn scenario_profiles(features: &[Feature]) -> Vec<(Profile, Support)> {
    let upstream: Vec<Feature> = features
        .iter()
        .copied()
        .filter(|f| f.upstream().is_some())
        .collect();
    if upstream.is_empty() {
        return Vec::new();
    }
    Profile::ALL
        .iter()
        .filter_map(|profile| {
            let levels: Option<Vec<Support>> = upstream
                .iter()
                .map(|f| {
                    f.profiles()
                        .iter()
                        .find(|(p, _)| p == profile)
                        .map(|(_, level)| *level)
                })
                .collect();
            let levels = levels?;
            let level = if levels.contains(&Support::Extended) {
                Support::Extended
            } else {
                Support::Core
            };
            Some((*profile, level))
        })
        .collect()
}

/// The upstream features at `level` of `profile`, in registry order.
fn profile_features(profile: Profile, level: Support) -> impl Iterator<Item = Feature> {
    Feature::ALL.iter().copied().filter(move |f| {
        f.upstream().is_some_and(|u| u.is_feature()) && f.profiles().contains(&(profile, level))
    })
}

/// Counts the scenarios into GATEWAY-HTTP and MESH-HTTP.
pub fn profile_reports(
    scenarios: &[ScenarioEntry],
    unsupported: &BTreeSet<Feature>,
) -> Vec<ProfileReport> {
    Profile::ALL
        .iter()
        .map(|profile| profile_report(*profile, scenarios, unsupported))
        .collect()
}

fn profile_report(
    profile: Profile,
    scenarios: &[ScenarioEntry],
    unsupported: &BTreeSet<Feature>,
) -> ProfileReport {
    let empty = || ProfileStatus {
        result: ProfileResult::Untested,
        statistics: Statistics::default(),
        passed_tests: Vec::new(),
        failed_tests: Vec::new(),
        skipped_tests: Vec::new(),
    };
    let (mut core, mut extended) = (empty(), empty());
    // Feature -> whether every scenario of this profile claiming it that ran passed.
    let mut ran: BTreeMap<Feature, bool> = BTreeMap::new();
    let mut claimed: BTreeSet<Feature> = BTreeSet::new();
    for scenario in scenarios {
        let Some(level) = scenario_profiles(&scenario.features)
            .into_iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, level)| level)
        else {
            continue;
        };
        let status = match level {
            Support::Core => &mut core,
            Support::Extended => &mut extended,
        };
        scenario.result.count(&mut status.statistics);
        let list = match scenario.result {
            ScenarioResult::Passed => &mut status.passed_tests,
            ScenarioResult::Failed | ScenarioResult::Inconclusive => &mut status.failed_tests,
            ScenarioResult::SkippedUnsupported => &mut status.skipped_tests,
        };
        list.push(scenario.name.clone());
        for feature in &scenario.features {
            claimed.insert(*feature);
            if scenario.result != ScenarioResult::SkippedUnsupported {
                let passed = ran.entry(*feature).or_insert(true);
                *passed &= scenario.result == ScenarioResult::Passed;
            }
        }
    }
    core.result = ProfileResult::of(&core.statistics);
    extended.result = ProfileResult::of(&extended.statistics);
    let extended_features: Vec<Feature> = profile_features(profile, Support::Extended).collect();
    let supported_features: Vec<Feature> = extended_features
        .iter()
        .copied()
        .filter(|f| ran.contains_key(f) && !unsupported.contains(f))
        .collect();
    let summary = format!(
        "Core tests {}. Extended tests {}.",
        core.result.phrase(&core.statistics),
        extended.result.phrase(&extended.statistics)
    );
    ProfileReport {
        name: profile.name(),
        summary,
        core: CoreStatus {
            status: core,
            untested_features: profile_features(profile, Support::Core)
                .filter(|f| !claimed.contains(f) && !unsupported.contains(f))
                .collect(),
        },
        extended: ExtendedStatus {
            status: extended,
            passed_features: supported_features
                .iter()
                .copied()
                .filter(|f| ran.get(f) == Some(&true))
                .collect(),
            supported_features,
            unsupported_features: extended_features
                .iter()
                .copied()
                .filter(|f| unsupported.contains(f))
                .collect(),
            untested_features: extended_features
                .iter()
                .copied()
                .filter(|f| !claimed.contains(f) && !unsupported.contains(f))
                .collect(),
        },
    }
}

/// The profile summaries printed after the feature table: per profile the upstream sentence, the
/// core and extended counts with their tests, and the extended features by what became of them.
pub fn profile_table(report: &ConformanceReport) -> String {
    let names = |features: &[Feature]| -> String {
        if features.is_empty() {
            "-".to_owned()
        } else {
            features
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let tests = |status: &ProfileStatus| -> String {
        let mut parts = Vec::new();
        for (label, list) in [
            ("passed", &status.passed_tests),
            ("FAILED", &status.failed_tests),
            ("skipped", &status.skipped_tests),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}: {}", list.join(", ")));
            }
        }
        if parts.is_empty() {
            "no scenario".to_owned()
        } else {
            parts.join("; ")
        }
    };
    let counts = |status: &ProfileStatus| {
        format!(
            "{:<8}  passed {}, failed {}, skipped {}",
            status.result.label(),
            status.statistics.passed,
            status.statistics.failed,
            status.statistics.skipped
        )
    };
    let mut text = String::new();
    for profile in &report.profiles {
        let _ = writeln!(text, "{}: {}", profile.name, profile.summary);
        let _ = writeln!(text, "  core      {}", counts(&profile.core.status));
        let _ = writeln!(text, "            {}", tests(&profile.core.status));
        if !profile.core.untested_features.is_empty() {
            let _ = writeln!(
                text,
                "            untested core features: {}",
                names(&profile.core.untested_features)
            );
        }
        let extended = &profile.extended;
        let _ = writeln!(text, "  extended  {}", counts(&extended.status));
        let _ = writeln!(text, "            {}", tests(&extended.status));
        let _ = writeln!(
            text,
            "            supported features ({} of {} passed): {}",
            extended.passed_features.len(),
            extended.supported_features.len(),
            names(&extended.supported_features)
        );
        let _ = writeln!(
            text,
            "            unsupported: {}",
            names(&extended.unsupported_features)
        );
        let _ = writeln!(
            text,
            "            untested: {}",
            names(&extended.untested_features)
        );
    }
    text
}

impl ConformanceReport {
    /// The gate: nothing failed and nothing was inconclusive (skips do not fail a run).
    pub fn passed(&self) -> bool {
        self.summary.statistics.failed == 0
    }
}

/// Builds the report from a finished run and the scenarios skipped before it.
pub fn conformance_report(
    run: &RunReport,
    skipped: &[SkippedScenario],
    context: &ConformanceContext,
) -> ConformanceReport {
    let mut scenarios: Vec<ScenarioEntry> = run
        .scenarios
        .iter()
        .map(|scenario| ScenarioEntry {
            name: scenario.name.clone(),
            source: scenario.source.clone(),
            features: scenario.features.clone(),
            result: ScenarioResult::of(scenario),
            message: first_problem(scenario),
            unsupported: Vec::new(),
            elapsed_ms: scenario.elapsed.as_secs_f64() * 1000.0,
        })
        .collect();
    scenarios.extend(skipped.iter().map(|skipped| ScenarioEntry {
        name: skipped.name.clone(),
        source: skipped.source.clone(),
        features: skipped.features.clone(),
        result: ScenarioResult::SkippedUnsupported,
        message: None,
        unsupported: skipped.unsupported.clone(),
        elapsed_ms: 0.0,
    }));
    scenarios.sort_by(|a, b| a.source.cmp(&b.source).then_with(|| a.name.cmp(&b.name)));

    let mut by_feature: BTreeMap<Feature, FeatureResult> = BTreeMap::new();
    let mut statistics = Statistics::default();
    for scenario in &scenarios {
        scenario.result.count(&mut statistics);
        for feature in &scenario.features {
            let entry = by_feature.entry(*feature).or_insert_with(|| FeatureResult {
                name: *feature,
                summary: feature.summary(),
                result: ConformanceResult::Success,
                statistics: Statistics::default(),
                scenarios: Vec::new(),
                failed_scenarios: Vec::new(),
                skipped_scenarios: Vec::new(),
            });
            scenario.result.count(&mut entry.statistics);
            entry.scenarios.push(scenario.name.clone());
            match scenario.result {
                ScenarioResult::Passed => {}
                ScenarioResult::Failed | ScenarioResult::Inconclusive => {
                    entry.failed_scenarios.push(scenario.name.clone());
                }
                ScenarioResult::SkippedUnsupported => {
                    entry.skipped_scenarios.push(scenario.name.clone());
                }
            }
        }
    }
    let mut features: Vec<FeatureResult> = by_feature.into_values().collect();
    for feature in &mut features {
        feature.result = ConformanceResult::of(&feature.statistics);
    }

    let supported_features: Vec<Feature> = features
        .iter()
        .filter(|f| f.statistics.passed + f.statistics.failed > 0)
        .map(|f| f.name)
        .collect();
    let untested_features: Vec<Feature> = Feature::ALL
        .iter()
        .copied()
        .filter(|feature| !features.iter().any(|f| f.name == *feature))
        .collect();
    let result = ConformanceResult::of(&statistics);
    let failing_features = features
        .iter()
        .filter(|f| f.result == ConformanceResult::Failure)
        .count();
    let text = format!(
        "{} on {}: {} scenario(s) passed, {} failed, {} skipped as unsupported; {} of {} feature(s) \
         tested, {} failing.",
        result.label(),
        context.mode,
        statistics.passed,
        statistics.failed,
        statistics.skipped,
        features.len(),
        Feature::ALL.len(),
        failing_features
    );
    ConformanceReport {
        api_version: "colormesh.dev/v1alpha1",
        kind: "ConformanceReport",
        implementation: context.implementation.clone(),
        date: humantime::format_rfc3339_seconds(context.date).to_string(),
        mode: context.mode.clone(),
        backend: run.backend.clone(),
        seed: run.seed,
        only_features: context.only.clone(),
        features,
        profiles: profile_reports(&scenarios, &context.unsupported),
        scenarios,
        summary: Summary {
            result,
            statistics,
            supported_features,
            unsupported_features: context.unsupported.iter().copied().collect(),
            untested_features,
            text,
        },
    }
}

/// The first step that did not pass, as `step N (name): message`.
fn first_problem(scenario: &ScenarioReport) -> Option<String> {
    scenario
        .steps
        .iter()
        .find(|step| !matches!(step.outcome, StepOutcome::Passed | StepOutcome::NotRun))
        .map(|step| {
            format!(
                "step {} ({}): {}",
                step.index,
                step.name,
                step.message.as_deref().unwrap_or(step.outcome.label())
            )
        })
}

/// The feature table printed at the end of `cargo xtask conformance`, then the scenarios that
/// did not pass and the summary line.
pub fn feature_table(report: &ConformanceReport) -> String {
    let headers = [
        "FEATURE",
        "SCENARIOS",
        "PASSED",
        "FAILED",
        "SKIPPED",
        "RESULT",
    ];
    let rows: Vec<[String; 6]> = report
        .features
        .iter()
        .map(|feature| {
            [
                feature.name.to_string(),
                feature.scenarios.len().to_string(),
                feature.statistics.passed.to_string(),
                feature.statistics.failed.to_string(),
                feature.statistics.skipped.to_string(),
                feature.result.label().to_owned(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    let line = |table: &mut String, cells: [&str; 6]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        let _ = writeln!(table, "{}", text.trim_end());
    };
    line(&mut table, headers);
    for row in &rows {
        line(
            &mut table,
            [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
        );
    }
    let not_passed: Vec<&ScenarioEntry> = report
        .scenarios
        .iter()
        .filter(|s| s.result != ScenarioResult::Passed)
        .collect();
    if !not_passed.is_empty() {
        table.push('\n');
    }
    for scenario in not_passed {
        let why = match scenario.result {
            ScenarioResult::SkippedUnsupported => format!(
                "skipped: unsupported {}",
                scenario
                    .unsupported
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // The first line says which check failed, the next one shows the first bad reply.
            _ => scenario
                .message
                .as_deref()
                .map(|m| {
                    m.lines()
                        .map(str::trim)
                        .filter(|line| !line.is_empty())
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .unwrap_or_else(|| "failed".to_owned()),
        };
        let label = match scenario.result {
            ScenarioResult::Passed => "PASS",
            ScenarioResult::Failed => "FAIL",
            ScenarioResult::Inconclusive => "INCONCLUSIVE",
            ScenarioResult::SkippedUnsupported => "SKIP",
        };
        let _ = writeln!(
            table,
            "{label} {} ({}): {why}",
            scenario.name,
            scenario.source.display()
        );
    }
    // colormesh's own names are listed; the upstream ones are too many for a line and the
    // profile summaries list them by profile and level.
    let (upstream, own): (Vec<Feature>, Vec<Feature>) = report
        .summary
        .untested_features
        .iter()
        .partition(|f| f.upstream().is_some());
    if !own.is_empty() {
        let _ = writeln!(
            table,
            "\nNot tested in this run: {}.",
            own.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        );
    }
    if !upstream.is_empty() {
        let _ = writeln!(
            table,
            "{}{} Gateway API name(s) not tested in this run (see the profiles).",
            if own.is_empty() { "\n" } else { "" },
            upstream.len()
        );
    }
    let _ = writeln!(table, "\n{}", report.summary.text);
    table
}

/// Writes `conformance-report.json` (pretty-printed: it is small and meant to be read) into `dir`.
pub fn write_conformance_report(
    report: &ConformanceReport,
    dir: &Path,
) -> Result<PathBuf, ReportError> {
    let file = dir.join(CONFORMANCE_REPORT_FILE);
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&file, json))
        .map_err(|source| ReportError::Write {
            file: file.clone(),
            source,
        })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::runner::StepReport;

    fn scenario(name: &str, features: &[Feature]) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: String::new(),
            features: features.to_vec(),
            steps: Vec::new(),
            source: Path::new("scenarios/conformance").join(format!("{name}.yaml")),
        }
    }

    fn ran(scenario: &Scenario, outcome: StepOutcome) -> ScenarioReport {
        let step = StepReport {
            index: 2,
            name: "GET /x x3".to_owned(),
            kind: "traffic",
            outcome,
            message: (outcome != StepOutcome::Passed)
                .then(|| "status 404 where 200 was expected\nmore".to_owned()),
            elapsed: Duration::from_millis(5),
            output: None,
            changed: Vec::new(),
            traffic: None,
        };
        ScenarioReport {
            name: scenario.name.clone(),
            description: String::new(),
            source: scenario.source.clone(),
            features: scenario.features.clone(),
            backend: "local".to_owned(),
            outcome,
            steps: vec![step],
            elapsed: Duration::from_millis(10),
            requests_sent: 3,
            verdicts: 1,
            split_alpha: 1e-5,
        }
    }

    fn run_of(scenarios: Vec<ScenarioReport>) -> RunReport {
        RunReport {
            service_map: None,
            backend: "local".to_owned(),
            seed: 7,
            started_unix: 0,
            family_alpha: 1e-4,
            correction: "Bonferroni".to_owned(),
            split_checks: 0,
            per_check_alpha: 1e-4,
            min_detectable_deviation: 0.05,
            power: 0.99,
            scenarios,
            elapsed: Duration::from_secs(1),
            requests_sent: 0,
            verdicts: 0,
        }
    }

    fn context(unsupported: &[Feature]) -> ConformanceContext {
        ConformanceContext {
            implementation: Implementation {
                organization: "colormesh".to_owned(),
                project: "gateway-proxy".to_owned(),
                url: None,
                version: "0.0.0".to_owned(),
                contact: Vec::new(),
            },
            mode: "builtin".to_owned(),
            unsupported: unsupported.iter().copied().collect(),
            only: Vec::new(),
            date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn selection_filters_by_feature_and_skips_unsupported_ones() {
        let all = vec![
            scenario("Prefix", &[Feature::PrefixMatch]),
            scenario("Rewrite", &[Feature::PrefixRewrite, Feature::PrefixMatch]),
            scenario("Timeout", &[Feature::Timeout]),
        ];
        let unsupported = BTreeSet::from([Feature::PrefixRewrite]);
        let selection = select(all.clone(), &[], &unsupported);
        let names: Vec<&str> = selection.run.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Prefix", "Timeout"]);
        assert_eq!(selection.skipped.len(), 1);
        assert_eq!(selection.skipped[0].name, "Rewrite");
        assert_eq!(selection.skipped[0].unsupported, [Feature::PrefixRewrite]);

        let only = select(all, &[Feature::PrefixMatch], &BTreeSet::new());
        let names: Vec<&str> = only.run.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Prefix", "Rewrite"]);
        assert!(only.skipped.is_empty());
    }

    #[test]
    fn feature_results_combine_passes_failures_and_skips() {
        let prefix = scenario("Prefix", &[Feature::PrefixMatch]);
        let rewrite = scenario("Rewrite", &[Feature::PrefixRewrite, Feature::PrefixMatch]);
        let timeout = scenario("Timeout", &[Feature::Timeout]);
        let retries = scenario("Retries", &[Feature::Retries]);
        let run = run_of(vec![
            ran(&prefix, StepOutcome::Passed),
            ran(&timeout, StepOutcome::Inconclusive),
        ]);
        let skipped = select(
            vec![rewrite, retries],
            &[],
            &BTreeSet::from([Feature::PrefixRewrite, Feature::Retries]),
        )
        .skipped;
        let report = conformance_report(
            &run,
            &skipped,
            &context(&[Feature::PrefixRewrite, Feature::Retries]),
        );
        let result = |feature: Feature| {
            report
                .features
                .iter()
                .find(|f| f.name == feature)
                .map(|f| (f.result, f.statistics))
        };
        let stats = |passed, failed, skipped| Statistics {
            passed,
            failed,
            skipped,
        };
        assert_eq!(
            result(Feature::PrefixMatch),
            Some((ConformanceResult::Partial, stats(1, 0, 1)))
        );
        assert_eq!(
            result(Feature::PrefixRewrite),
            Some((ConformanceResult::Skipped, stats(0, 0, 1)))
        );
        assert_eq!(
            result(Feature::Timeout),
            Some((ConformanceResult::Failure, stats(0, 1, 0)))
        );
        assert_eq!(result(Feature::Canary), None);
        assert!(report.summary.untested_features.contains(&Feature::Canary));
        assert_eq!(report.summary.statistics, stats(1, 1, 2));
        assert_eq!(report.summary.result, ConformanceResult::Failure);
        assert!(!report.passed());
        assert_eq!(
            report.summary.supported_features,
            [Feature::PrefixMatch, Feature::Timeout]
        );
        assert_eq!(report.date, "2023-11-14T22:13:20Z");

        let timeout_entry = report
            .scenarios
            .iter()
            .find(|s| s.name == "Timeout")
            .unwrap();
        assert_eq!(timeout_entry.result, ScenarioResult::Inconclusive);
        assert_eq!(
            timeout_entry.message.as_deref(),
            Some("step 2 (GET /x x3): status 404 where 200 was expected\nmore")
        );

        let table = feature_table(&report);
        let row = |name: &str| {
            table
                .lines()
                .find(|line| line.split_whitespace().next() == Some(name))
                .map(|line| line.split_whitespace().collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(
            row("prefix-match"),
            ["prefix-match", "2", "1", "0", "1", "partial"]
        );
        assert_eq!(row("timeout"), ["timeout", "1", "0", "1", "0", "FAILURE"]);
        assert!(
            table.contains(
                "SKIP Retries (scenarios/conformance/Retries.yaml): skipped: unsupported retries"
            ),
            "{table}"
        );
        assert!(
            table.contains("INCONCLUSIVE Timeout (scenarios/conformance/Timeout.yaml): step 2 (GET /x x3): status 404 where 200 was expected | more\n"),
            "{table}"
        );
    }

    #[test]
    fn junit_and_html_show_the_skipped_scenarios_and_the_features() {
        let prefix = scenario("Prefix", &[Feature::PrefixMatch]);
        let retries = scenario("Retries", &[Feature::Retries]);
        let run = run_of(vec![ran(&prefix, StepOutcome::Passed)]);
        let unsupported = BTreeSet::from([Feature::Retries]);
        let skipped = select(vec![retries], &[], &unsupported).skipped;
        let report = conformance_report(&run, &skipped, &context(&[Feature::Retries]));
        assert!(report.passed(), "a skip does not fail the run");
        let junit = super::super::junit_conformance_report(&run, &report)
            .to_string()
            .unwrap();
        assert!(junit.contains("name=\"Retries\""), "{junit}");
        assert!(
            junit.contains("skipped: the gateway does not support retries"),
            "{junit}"
        );
        let html = super::super::render_conformance_html(&run, &report);
        assert!(
            html.contains("<title>colormesh conformance: PASS</title>"),
            "{html}"
        );
        assert!(html.contains("<h2>Features</h2>"), "{html}");
        assert!(
            html.contains("<li>Retries (scenarios/conformance/Retries.yaml): retries</li>"),
            "{html}"
        );
    }

    #[test]
    fn scenarios_count_in_the_profiles_whose_names_they_all_claim() {
        use Feature as F;
        let gateway_core = [(Profile::GatewayHttp, Support::Core)];
        assert_eq!(
            scenario_profiles(&[F::Gateway, F::HTTPRoute, F::HTTPRouteWeight]),
            gateway_core
        );
        // colormesh's own names do not count, an extended name makes the test extended.
        assert_eq!(
            scenario_profiles(&[
                F::ZeroWeight,
                F::HTTPRouteRewritePath,
                F::HTTPRoutePathRewrite
            ]),
            [(Profile::GatewayHttp, Support::Extended)]
        );
        // HTTPRoute alone is core in both profiles; Mesh keeps a test out of GATEWAY-HTTP.
        assert_eq!(
            scenario_profiles(&[F::HTTPRoute]),
            [
                (Profile::GatewayHttp, Support::Core),
                (Profile::MeshHttp, Support::Core)
            ]
        );
        assert_eq!(
            scenario_profiles(&[F::Mesh, F::HTTPRoute, F::MeshHTTPRouteWeight]),
            [(Profile::MeshHttp, Support::Core)]
        );
        // A GATEWAY-HTTP extended feature next to Mesh: in no profile, as upstream's MeshFrontend.
        assert_eq!(
            scenario_profiles(&[F::Mesh, F::HTTPRouteResponseHeaderModification]),
            []
        );
        assert_eq!(scenario_profiles(&[F::PrefixMatch]), []);
    }

    #[test]
    fn profiles_count_core_and_extended_tests_and_list_the_extended_features() {
        use Feature as F;
        let weight = scenario("Weight", &[F::Gateway, F::HTTPRoute, F::HTTPRouteWeight]);
        let exact = scenario("Exact", &[F::HTTPRouteExactPathMatching]);
        let rewrite = scenario(
            "Rewrite",
            &[F::HTTPRouteRewritePath, F::HTTPRoutePathRewrite],
        );
        let query = scenario("Query", &[F::HTTPRouteQueryParamMatching]);
        let timeout = scenario("Timeout", &[F::HTTPRouteRequestTimeout]);
        let mesh = scenario(
            "MeshSplit",
            &[F::Mesh, F::HTTPRoute, F::MeshHTTPRouteWeight],
        );
        let gloo = scenario("Prefix", &[F::PrefixMatch]);
        let run = run_of(vec![
            ran(&weight, StepOutcome::Passed),
            ran(&exact, StepOutcome::Failed),
            ran(&rewrite, StepOutcome::Passed),
            ran(&query, StepOutcome::Passed),
            ran(&mesh, StepOutcome::Passed),
            ran(&gloo, StepOutcome::Passed),
        ]);
        let unsupported = [F::HTTPRouteRequestTimeout];
        let skipped = select(vec![timeout], &[], &unsupported.iter().copied().collect()).skipped;
        let report = conformance_report(&run, &skipped, &context(&unsupported));
        let gateway = &report.profiles[0];
        assert_eq!(gateway.name, "GATEWAY-HTTP");
        let stats = |passed, failed, skipped| Statistics {
            passed,
            failed,
            skipped,
        };
        assert_eq!(gateway.core.status.statistics, stats(1, 1, 0));
        assert_eq!(gateway.core.status.result, ProfileResult::Failure);
        assert_eq!(gateway.core.status.passed_tests, ["Weight"]);
        assert_eq!(gateway.core.status.failed_tests, ["Exact"]);
        assert_eq!(gateway.core.untested_features, [F::ReferenceGrant]);
        // The unsupported timeout was skipped: extended is partial, as upstream counts it.
        assert_eq!(gateway.extended.status.statistics, stats(2, 0, 1));
        assert_eq!(gateway.extended.status.result, ProfileResult::Partial);
        assert_eq!(gateway.extended.status.skipped_tests, ["Timeout"]);
        assert_eq!(
            gateway.extended.supported_features,
            [F::HTTPRouteQueryParamMatching, F::HTTPRoutePathRewrite]
        );
        assert_eq!(
            gateway.extended.passed_features,
            gateway.extended.supported_features
        );
        assert_eq!(
            gateway.extended.unsupported_features,
            [F::HTTPRouteRequestTimeout]
        );
        assert!(
            gateway
                .extended
                .untested_features
                .contains(&F::HTTPRouteCORS)
        );
        assert!(
            !gateway
                .extended
                .untested_features
                .contains(&F::HTTPRoutePathRewrite)
        );
        assert!(
            !gateway
                .extended
                .untested_features
                .contains(&F::HTTPRouteRequestTimeout)
        );
        assert_eq!(
            gateway.summary,
            "Core tests failed with 1 test failures. Extended tests partially succeeded with 1 \
             test skips."
        );

        let mesh = &report.profiles[1];
        assert_eq!(mesh.name, "MESH-HTTP");
        assert_eq!(mesh.core.status.passed_tests, ["MeshSplit"]);
        assert_eq!(mesh.core.status.result, ProfileResult::Success);
        assert_eq!(mesh.extended.status.result, ProfileResult::Untested);
        assert!(mesh.core.untested_features.is_empty());
        assert_eq!(
            mesh.summary,
            "Core tests succeeded. Extended tests were not run."
        );

        let table = profile_table(&report);
        assert!(
            table.contains("GATEWAY-HTTP: Core tests failed with 1 test failures."),
            "{table}"
        );
        assert!(
            table.contains("  core      FAILURE   passed 1, failed 1, skipped 0\n            passed: Weight; FAILED: Exact\n            untested core features: ReferenceGrant\n"),
            "{table}"
        );
        assert!(
            table.contains("supported features (2 of 2 passed): HTTPRouteQueryParamMatching, HTTPRoutePathRewrite\n            unsupported: HTTPRouteRequestTimeout\n"),
            "{table}"
        );

        let json = serde_json::to_value(&report).unwrap();
        let profile = &json["profiles"][0];
        assert_eq!(profile["name"], "GATEWAY-HTTP");
        assert_eq!(profile["core"]["result"], "failure");
        assert_eq!(profile["core"]["statistics"]["failed"], 1);
        assert_eq!(profile["core"]["failedTests"][0], "Exact");
        assert_eq!(profile["extended"]["result"], "partial");
        assert_eq!(
            profile["extended"]["supportedFeatures"][1],
            "HTTPRoutePathRewrite"
        );
        assert_eq!(
            profile["extended"]["unsupportedFeatures"][0],
            "HTTPRouteRequestTimeout"
        );
    }

    #[test]
    fn an_all_passing_run_is_a_success_and_the_report_is_written() {
        let prefix = scenario("Prefix", &[Feature::PrefixMatch]);
        let report = conformance_report(
            &run_of(vec![ran(&prefix, StepOutcome::Passed)]),
            &[],
            &context(&[]),
        );
        assert!(report.passed());
        assert_eq!(report.summary.result, ConformanceResult::Success);
        let dir = tempfile::tempdir().unwrap();
        let file = write_conformance_report(&report, dir.path()).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(written["kind"], "ConformanceReport");
        assert_eq!(written["mode"], "builtin");
        assert_eq!(written["features"][0]["name"], "prefix-match");
        assert_eq!(written["features"][0]["result"], "success");
        assert_eq!(written["summary"]["statistics"]["passed"], 1);
        assert_eq!(written["implementation"]["project"], "gateway-proxy");
    }
}

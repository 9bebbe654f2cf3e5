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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::ReportError;
use crate::features::Feature;
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
    pub scenarios: Vec<ScenarioEntry>,
    pub summary: Summary,
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
    if !report.summary.untested_features.is_empty() {
        let _ = writeln!(
            table,
            "\nNot tested in this run: {}.",
            report
                .summary
                .untested_features
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
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

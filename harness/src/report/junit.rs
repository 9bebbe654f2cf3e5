//! JUnit XML: one test suite per scenario, one test case per step.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::conformance::{ConformanceReport, ScenarioResult};
use crate::runner::{RunReport, StepOutcome};

/// The run as a JUnit report. Inconclusive steps are failures of type `inconclusive`, steps after
/// the first failure are skipped.
pub fn junit_report(run: &RunReport) -> Report {
    junit_named(run, "colormesh-e2e")
}

/// A conformance run as a JUnit report: [`junit_report`] plus one suite per scenario skipped as
/// unsupported, holding one skipped test case that names the unsupported features.
pub fn junit_conformance_report(run: &RunReport, conformance: &ConformanceReport) -> Report {
    let mut report = junit_named(run, "colormesh-conformance");
    for scenario in conformance
        .scenarios
        .iter()
        .filter(|s| s.result == ScenarioResult::SkippedUnsupported)
    {
        let mut suite = TestSuite::new(scenario.name.as_str());
        suite.add_property(("source", scenario.source.display().to_string().as_str()));
        let mut status = TestCaseStatus::skipped();
        status.set_message(format!(
            "skipped: the gateway does not support {}",
            scenario
                .unsupported
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut case = TestCase::new("unsupported", status);
        case.set_classname(scenario.name.as_str());
        suite.add_test_case(case);
        report.add_test_suite(suite);
    }
    report
}

fn junit_named(run: &RunReport, name: &str) -> Report {
    let mut report = Report::new(name);
    report.set_time(run.elapsed);
    for scenario in &run.scenarios {
        let mut suite = TestSuite::new(scenario.name.as_str());
        suite.set_time(scenario.elapsed);
        suite.add_property(("backend", scenario.backend.as_str()));
        suite.add_property(("source", scenario.source.display().to_string().as_str()));
        for step in &scenario.steps {
            let status = match step.outcome {
                StepOutcome::Passed => TestCaseStatus::success(),
                StepOutcome::NotRun => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message("not run: an earlier step did not pass");
                    status
                }
                StepOutcome::Failed | StepOutcome::Inconclusive => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let message = step.message.clone().unwrap_or_else(|| "failed".to_owned());
                    status.set_message(message.lines().next().unwrap_or("failed"));
                    status.set_description(message.as_str());
                    status.set_type(if step.outcome == StepOutcome::Inconclusive {
                        "inconclusive"
                    } else {
                        "failure"
                    });
                    status
                }
            };
            let mut case = TestCase::new(format!("{:02} {}", step.index, step.name), status);
            case.set_classname(format!("{}.{}", scenario.name, step.kind));
            case.set_time(step.elapsed);
            if let Some(output) = &step.output {
                case.set_system_out(output.as_str());
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
}

//! JUnit XML: one test suite per scenario, one test case per step.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::{RunReport, StepOutcome};

/// The run as a JUnit report. Inconclusive steps are failures of type `inconclusive`, steps after
/// the first failure are skipped.
pub fn junit_report(run: &RunReport) -> Report {
    let mut report = Report::new("colormesh-e2e");
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

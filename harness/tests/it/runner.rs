//! The runner against a fake backend and an in-process fake gateway: correct gateways pass,
//! gateways broken on purpose (wrong weights, wrong rewrite, a zero-weight leak) fail, and the
//! reports are written and parse.

// Test helpers outside #[test] functions unwrap too: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use crate::support::{FakeBackend, FakeGateway, Mode, manifests};
use harness::backend::CommandOutput;
use harness::runner::{RunSettings, RunSettingsBuilder, StepOutcome, run_all, run_scenario};
use harness::scenario::{self, Scenario};
use harness::stats;

fn scenario(text: &str) -> Scenario {
    scenario::parse(text, Path::new("scenarios/test.yaml")).unwrap()
}

fn settings(manifests_dir: &Path) -> RunSettings {
    settings_builder(manifests_dir).build()
}

/// The tests' settings (seed 7), to adjust before building.
fn settings_builder(manifests_dir: &Path) -> RunSettingsBuilder {
    RunSettings::builder(manifests_dir).seed(7)
}

const THREE_COLORS: &[(&str, u32)] = &[("white", 1), ("blue", 1), ("black", 1)];

fn upstream_table() -> CommandOutput {
    CommandOutput {
        stdout:
            "| appmesh-demo-colorgateway-9080 | Kubernetes | Accepted | svc name: colorgateway |\n"
                .to_owned(),
        stderr: String::new(),
        success: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_gateway_passes_split_exact_and_cross_checks() {
    let gateway = FakeGateway::start(Mode::Colors(THREE_COLORS.to_vec()), 1).await;
    let mut backend = FakeBackend::new(gateway.clone());
    backend
        .glooctl_outputs
        .insert("get upstream".to_owned(), upstream_table());
    backend
        .on_apply
        .insert("gloo/80-20.yaml".into(), Mode::Shapes(80, 20));
    let dir = manifests(&["colorapp/a.yaml", "gloo/80-20.yaml"]);
    let scenario = scenario(
        r#"
name: Correct
steps:
  - note: Deploying a mesh connected sample application.
    apply: colorapp
  - wait: { rollout: appmesh-demo }
  - glooctl: { args: get upstream, expect: { contains: [appmesh-demo-colorgateway-9080] } }
  - name: the ten curls
    traffic: { path: /appmesh/color, requests: 10, concurrency: 1, showReplies: true, expect: { shape: v1 } }
  - name: mesh split
    traffic:
      path: /appmesh/color
      expect:
        shape: v1
        statsCrossCheck: true
        split: { by: color, weights: { white: 1, blue: 1, black: 1, red: 0 } }
  - apply: gloo/80-20.yaml
  - name: canary 80/20
    traffic:
      path: /appmesh/color
      concurrency: 8
      expect: { split: { by: shape, weights: { v1: 80, v2: 20 }, propagation: true } }
"#,
    );
    let settings = settings_builder(dir.path()).narrate(true).build();
    let mut narration = Vec::new();
    let report = run_scenario(&mut backend, &scenario, &settings, &mut narration).await;
    let narration = String::from_utf8(narration).unwrap();

    let messages: Vec<_> = report
        .steps
        .iter()
        .map(|s| (s.index, s.outcome, s.message.clone()))
        .collect();
    assert!(report.passed(), "{messages:#?}\n{narration}");
    // Two split checks share the default family budget.
    assert!(
        (report.split_alpha - 0.5e-4).abs() < 1e-12,
        "{}",
        report.split_alpha
    );

    let ten = report.steps[3].traffic.as_ref().unwrap();
    assert_eq!(ten.summary.received, 10);
    assert_eq!(ten.shown_replies.len(), 10);
    assert!(
        ten.shown_replies[0].starts_with("{\"color\":"),
        "{:?}",
        ten.shown_replies[0]
    );

    let mesh = report.steps[4].traffic.as_ref().unwrap();
    let split = mesh.split.as_ref().unwrap();
    assert_eq!(split.verdict.outcome, stats::Outcome::Pass);
    assert!(split.sequential);
    assert!(split.verdict.n <= split.cap);
    assert!(split.verdict.leak_upper_bound.is_some(), "red has weight 0");
    assert_eq!(mesh.records.len() as u64, mesh.summary.received);
    assert!(mesh.records.iter().all(|r| r.destination.is_some()));
    let cross = mesh.cross_check.as_ref().unwrap();
    assert!(cross.agrees, "{cross:?}");
    assert!(cross.window > 0 && cross.window <= 1000);

    let canary = report.steps[6].traffic.as_ref().unwrap();
    assert_eq!(
        canary.propagation.as_ref().unwrap().elapsed,
        Some(std::time::Duration::from_millis(7))
    );
    assert_eq!(
        backend.live_waits,
        [2],
        "waits for the revision of the last apply"
    );
    assert_eq!(canary.summary.connections, 8);
    assert_eq!(canary.split.as_ref().unwrap().connections, 8);

    // Walkthrough narration: notes, commands as the blog wrote them, outputs and the plan.
    assert!(
        narration.contains("Deploying a mesh connected sample application."),
        "{narration}"
    );
    assert!(
        narration.contains("$ kubectl apply -f manifests/colorapp"),
        "{narration}"
    );
    assert!(
        narration.contains("$ glooctl get upstream\n| appmesh-demo-colorgateway-9080"),
        "{narration}"
    );
    assert!(
        narration.contains("$ for i in {1..10}; do curl $(glooctl proxy url)/appmesh/color; echo; done\n{\"color\":"),
        "{narration}"
    );
    assert!(
        narration.contains("# split by color: planned"),
        "{narration}"
    );
    assert!(
        narration.contains("the new weights were served 7 ms after"),
        "{narration}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_weights_fail_the_split_and_end_the_scenario() {
    // Weights ignored: the gateway splits 50/50 where the route says 80/20.
    let gateway = FakeGateway::start(Mode::Shapes(50, 50), 2).await;
    let mut backend = FakeBackend::new(gateway);
    let dir = manifests(&[]);
    let scenario = scenario(
        r#"
name: BrokenSplit
steps:
  - name: canary 80/20
    traffic: { path: /appmesh/color, expect: { split: { by: shape, weights: { v1: 80, v2: 20 } } } }
  - traffic: { path: /appmesh/color, requests: 1 }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert_eq!(report.outcome, StepOutcome::Failed);
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Failed);
    let split = step.traffic.as_ref().unwrap().split.as_ref().unwrap();
    assert_eq!(split.verdict.outcome, stats::Outcome::Fail);
    // A 30-point error is caught long before the plan's fixed n.
    assert!(
        split.verdict.n < split.planned_requests,
        "{} vs {}",
        split.verdict.n,
        split.planned_requests
    );
    assert!(
        step.message
            .as_ref()
            .unwrap()
            .starts_with("split by shape:"),
        "{:?}",
        step.message
    );
    assert_eq!(report.steps[1].outcome, StepOutcome::NotRun);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_step_cleans_up_after_a_failure_without_hiding_it() {
    let gateway = FakeGateway::start(Mode::Shapes(50, 50), 2).await;
    let mut backend = FakeBackend::new(gateway);
    let dir = manifests(&["route.yaml"]);
    let scenario = scenario(
        r#"
name: CleansUp
steps:
  - traffic: { path: /appmesh/color, requests: 3, expect: { status: 418 } }
  - traffic: { path: /appmesh/color, requests: 1 }
  - name: clean up
    always: true
    delete: route.yaml
"#,
    );
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    let outcomes: Vec<StepOutcome> = report.steps.iter().map(|step| step.outcome).collect();
    assert_eq!(
        outcomes,
        [
            StepOutcome::Failed,
            StepOutcome::NotRun,
            StepOutcome::Passed
        ]
    );
    assert_eq!(report.outcome, StepOutcome::Failed, "the failure decides");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_rewrite_fails_the_echo_check_with_replies_shown() {
    // The classic mistake: prefix /appmesh rewritten to / gives //color.
    let gateway = FakeGateway::start(
        Mode::Echo {
            strip: "/appmesh",
            replace: "/",
            service: "echo-v1",
        },
        3,
    )
    .await;
    let mut backend = FakeBackend::new(gateway);
    let dir = manifests(&[]);
    let scenario = scenario(
        r#"
name: BrokenRewrite
steps:
  - traffic:
      path: /appmesh/color?x=1
      requests: 20
      expect: { echo: { path: /color, query: x=1, service: echo-v1 } }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Failed);
    let traffic = step.traffic.as_ref().unwrap();
    // The first failure stops the step (maxErrors 0), but every reply that arrived is counted.
    assert!(traffic.failing_replies >= 1);
    assert_eq!(
        traffic.failing_replies,
        traffic.summary.received - traffic.passing_replies
    );
    let sample = &traffic.failure_samples[0];
    assert!(
        sample.body.contains(r#""path":"//color""#),
        "{}",
        sample.body
    );
    assert_eq!(
        sample.violations[0].message,
        r#"upstream saw path "//color", expected "/color""#
    );
    assert!(
        step.message.as_ref().unwrap().contains("echo"),
        "{:?}",
        step.message
    );

    // The same step against a correct rewrite passes all 20.
    let gateway = FakeGateway::start(
        Mode::Echo {
            strip: "/appmesh/color",
            replace: "/color",
            service: "echo-v1",
        },
        3,
    )
    .await;
    let mut backend = FakeBackend::new(gateway);
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert!(report.passed(), "{:?}", report.steps[0].message);
    assert_eq!(
        report.steps[0].traffic.as_ref().unwrap().passing_replies,
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_to_a_zero_weight_destination_fails() {
    let gateway = FakeGateway::start(
        Mode::Colors(vec![("white", 33), ("blue", 33), ("black", 33), ("red", 1)]),
        4,
    )
    .await;
    let mut backend = FakeBackend::new(gateway);
    let dir = manifests(&[]);
    let scenario = scenario(
        r#"
name: Leak
steps:
  - traffic:
      path: /appmesh/color
      expect: { split: { by: color, weights: { white: 1, blue: 1, black: 1, red: 0 } } }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, StepOutcome::Failed, "{:?}", step.message);
    let verdict = &step
        .traffic
        .as_ref()
        .unwrap()
        .split
        .as_ref()
        .unwrap()
        .verdict;
    assert_eq!(verdict.zero_weight_leaks.len(), 1);
    assert_eq!(verdict.zero_weight_leaks[0].0, "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glooctl_output_is_checked() {
    let gateway = FakeGateway::start(Mode::Shapes(1, 0), 5).await;
    let mut backend = FakeBackend::new(gateway);
    backend.glooctl_outputs = HashMap::from([("get upstream".to_owned(), upstream_table())]);
    let dir = manifests(&[]);
    let passing = scenario(
        r#"
name: Glooctl
steps:
  - glooctl: { args: get upstream, expect: { contains: [colorgateway-9080], notContains: [Rejected] } }
  - glooctl: { args: add route --dest-name missing, expect: { fails: true } }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &passing,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert!(report.passed(), "{:?}", report.steps);
    assert!(
        report.steps[0]
            .output
            .as_ref()
            .unwrap()
            .contains("appmesh-demo-colorgateway-9080")
    );

    let failing = scenario(
        r#"
name: Glooctl
steps:
  - glooctl: { args: get upstream, expect: { contains: [appmesh-demo-colorgatewayv2-9080] } }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &failing,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert_eq!(
        report.steps[0].message.as_deref(),
        Some("glooctl get upstream: output does not contain \"appmesh-demo-colorgatewayv2-9080\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_output_is_checked_and_failures_name_kubectl() {
    let gateway = FakeGateway::start(Mode::Shapes(1, 0), 5).await;
    let mut backend = FakeBackend::new(gateway);
    backend.kubectl_outputs = HashMap::from([(
        "get httproute -n appmesh-demo".to_owned(),
        CommandOutput {
            stdout: "NAME           HOSTNAMES   AGE\ncolorgateway               5s\n".to_owned(),
            stderr: String::new(),
            success: true,
        },
    )]);
    let dir = manifests(&[]);
    let steps = scenario(
        r#"
name: Kubectl
steps:
  - kubectl: { args: get httproute -n appmesh-demo, expect: { contains: [colorgateway] } }
  - kubectl: { args: get httproute -n appmesh-demo, expect: { contains: [colorgatewayv2] } }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &steps,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert_eq!(report.steps[0].outcome, StepOutcome::Passed);
    assert_eq!(report.steps[0].kind, "kubectl");
    assert_eq!(
        report.steps[1].message.as_deref(),
        Some("kubectl get httproute -n appmesh-demo: output does not contain \"colorgatewayv2\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_times_out_fails_naming_the_condition() {
    let gateway = FakeGateway::start(Mode::Shapes(1, 0), 6).await;
    let mut backend = FakeBackend::new(gateway);
    backend
        .timeouts
        .push("VirtualService gloo-system/colorgateway to be Accepted".to_owned());
    let dir = manifests(&[]);
    let scenario = scenario(
        r#"
name: Wait
steps:
  - wait: { rollout: appmesh-demo }
  - wait: { status: { kind: VirtualService, name: colorgateway }, timeout: 3s }
  - wait: { rollout: never-reached }
"#,
    );
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    assert_eq!(report.steps[0].outcome, StepOutcome::Passed);
    assert_eq!(report.steps[1].outcome, StepOutcome::Failed);
    assert_eq!(
        report.steps[1].message.as_deref(),
        Some(
            "timed out after 3s waiting for VirtualService gloo-system/colorgateway to be Accepted: still Pending"
        )
    );
    assert_eq!(report.steps[2].outcome, StepOutcome::NotRun);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_manifest_is_named() {
    let gateway = FakeGateway::start(Mode::Shapes(1, 0), 8).await;
    let mut backend = FakeBackend::new(gateway);
    let dir = manifests(&[]);
    let scenario = scenario("name: M\nsteps:\n  - apply: gloo/absent.yaml\n");
    let report = run_scenario(
        &mut backend,
        &scenario,
        &settings(dir.path()),
        &mut std::io::sink(),
    )
    .await;
    let message = report.steps[0].message.clone().unwrap();
    assert!(
        message.contains("gloo/absent.yaml does not exist"),
        "{message}"
    );
    assert!(backend.applied.is_empty(), "nothing reaches the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_written_and_parse() {
    let gateway = FakeGateway::start(Mode::Shapes(80, 20), 9).await;
    let mut backend = FakeBackend::new(gateway);
    backend
        .on_apply
        .insert("gloo/50-50.yaml".into(), Mode::Shapes(50, 50));
    backend
        .on_apply
        .insert("gloo/0-100.yaml".into(), Mode::Shapes(0, 100));
    backend
        .glooctl_outputs
        .insert("get upstream".to_owned(), upstream_table());
    let dir = manifests(&["gloo/80-20.yaml", "gloo/50-50.yaml", "gloo/0-100.yaml"]);
    let canary = scenario(
        r#"
name: Canary
steps:
  - glooctl: get upstream
  - apply: gloo/80-20.yaml
  - name: canary 80/20
    traffic: { path: /c, concurrency: 8, expect: { split: { by: shape, weights: { v1: 80, v2: 20 }, propagation: true } } }
  - apply: gloo/50-50.yaml
  - name: canary 50/50
    traffic: { path: /c, concurrency: 8, expect: { split: { by: shape, weights: { v1: 50, v2: 50 }, propagation: true } } }
  - apply: gloo/0-100.yaml
  - name: canary 0/100
    traffic: { path: /c, concurrency: 8, expect: { split: { by: shape, weights: { v1: 0, v2: 100 }, propagation: true } } }
"#,
    );
    let broken = scenario(
        r#"
name: Broken
steps:
  - traffic: { path: /c, requests: 5, expect: { shape: v1 } }
  - glooctl: get upstream
"#,
    );
    let scenarios = [canary, broken];
    // stderr is not a terminal under the test harness: the bar stays hidden.
    let settings = settings_builder(dir.path()).progress(true).build();
    let run = run_all(&mut backend, &scenarios, &settings, &mut std::io::sink()).await;
    assert_eq!(run.split_checks, 3);
    assert!((run.per_check_alpha - 1e-4 / 3.0).abs() < 1e-15);
    assert!(
        run.scenarios[0].passed(),
        "{:#?}",
        run.scenarios[0]
            .steps
            .iter()
            .map(|s| &s.message)
            .collect::<Vec<_>>()
    );
    assert_eq!(run.scenarios[1].outcome, StepOutcome::Failed);
    assert!(!run.passed());
    assert!(run.requests_sent > 0 && run.verdicts == 4);

    let out = tempfile::tempdir().unwrap();
    let files = harness::report::write_reports(&run, &out.path().join("reports")).unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(json["scenarios"][0]["name"], "Canary");
    assert_eq!(
        json["scenarios"][0]["steps"][2]["traffic"]["split"]["verdict"]["outcome"],
        "pass"
    );
    assert_eq!(json["scenarios"][1]["outcome"], "failed");
    assert_eq!(json["scenarios"][1]["steps"][1]["outcome"], "notRun");

    let junit =
        quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&files.junit).unwrap())
            .unwrap();
    assert_eq!(junit.test_suites.len(), 2);
    for (suite, scenario) in junit.test_suites.iter().zip(&scenarios) {
        assert_eq!(
            suite.test_cases.len(),
            scenario.steps.len(),
            "one test case per step"
        );
    }
    assert_eq!(junit.test_suites[1].failures, 1);

    let html = std::fs::read_to_string(&files.html).unwrap();
    // One chart per split, plus the canary timeline.
    assert_eq!(html.matches("<svg").count(), 3 + 1, "{html}");
    assert!(html.contains("Canary timeline"));
    assert!(html.contains("served after 7 ms"));
    assert!(
        !html.contains("<script src") && !html.contains("<link "),
        "self-contained"
    );

    let table = harness::report::summary_table(&run);
    assert!(table.contains("1 of 2 scenarios passed"), "{table}");
    assert!(table.contains("requests per verdict"), "{table}");
}

/// A canary step judged while the change is applied (`traffic.shift`).
fn shift_scenario() -> Scenario {
    scenario(
        r#"
name: Shift
steps:
  - name: canary 0/100
    traffic:
      path: /appmesh/color
      shift: { apply: gloo/0-100.yaml, warmup: 50 }
      expect: { split: { by: shape, weights: { v1: 0, v2: 100 } } }
"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_applies_while_traffic_flows_and_judges_the_new_weights_after_the_report() {
    let gateway = FakeGateway::start(Mode::Shapes(80, 20), 3).await;
    let mut backend = FakeBackend::new(gateway.clone());
    backend
        .on_apply
        .insert("gloo/0-100.yaml".into(), Mode::Shapes(0, 100));
    let dir = manifests(&["gloo/0-100.yaml"]);
    let mut transcript = Vec::new();
    let report = run_scenario(
        &mut backend,
        &shift_scenario(),
        &settings(dir.path()),
        &mut transcript,
    )
    .await;
    let transcript = String::from_utf8(transcript).unwrap();
    assert!(report.passed(), "{transcript}");
    assert_eq!(
        backend.applied,
        [std::path::PathBuf::from("gloo/0-100.yaml")]
    );
    assert_eq!(backend.live_waits, [1]);
    let step = &report.steps[0];
    assert_eq!(step.changed, ["File gloo/0-100.yaml"]);
    let traffic = step.traffic.as_ref().unwrap();
    let shift = traffic.shift.as_ref().expect("a shift report");
    assert_eq!(shift.generation_before, Some(1));
    assert_eq!(shift.generation_reported, Some(2));
    assert!(shift.before.replies >= 50, "{shift:?}");
    assert_eq!(
        (
            shift.non_2xx,
            shift.transport_errors,
            shift.stale_after_report,
            shift.unlabelled
        ),
        (0, 0, 0, 0)
    );
    let (started, first_new, reported) = (
        shift.apply_started_ms.unwrap(),
        shift.first_new_generation_ms.unwrap(),
        shift.reported_ms.unwrap(),
    );
    assert!(started <= first_new && started <= reported, "{shift:?}");
    // The warm-up at 80/20 is not judged: the split saw only the new weights.
    let split = traffic.split.as_ref().unwrap();
    assert_eq!(split.verdict.outcome, stats::Outcome::Pass);
    assert!(split.verdict.n <= shift.after.replies, "{shift:?}");
    assert!(
        transcript.contains("# shift from generation 1 to 2"),
        "{transcript}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_reports_a_generation_it_does_not_serve_fails_the_shift() {
    let gateway = FakeGateway::start(Mode::Shapes(80, 20), 5).await;
    let mut backend = FakeBackend::new(gateway);
    backend
        .on_apply
        .insert("gloo/0-100.yaml".into(), Mode::Shapes(0, 100));
    backend.reports_ahead = 1;
    let dir = manifests(&["gloo/0-100.yaml"]);
    let mut transcript = Vec::new();
    let report = run_scenario(
        &mut backend,
        &shift_scenario(),
        &settings(dir.path()),
        &mut transcript,
    )
    .await;
    let transcript = String::from_utf8(transcript).unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed, "{transcript}");
    let shift = report.steps[0]
        .traffic
        .as_ref()
        .and_then(|t| t.shift.as_ref())
        .unwrap();
    assert_eq!(shift.generation_reported, Some(3));
    assert_eq!(
        shift.stale_after_report, 1,
        "the first stale reply stops it"
    );
    let message = report.steps[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains(
            "sent after the gateway reported generation 3 were served by an older generation"
        ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_numbers_no_configurations_is_judged_from_the_moment_the_change_is_live() {
    let gateway = FakeGateway::start(Mode::Shapes(80, 20), 9).await;
    let mut backend = FakeBackend::new(gateway);
    backend
        .on_apply
        .insert("gloo/0-100.yaml".into(), Mode::Shapes(0, 100));
    backend.unnumbered = true;
    let dir = manifests(&["gloo/0-100.yaml"]);
    let mut transcript = Vec::new();
    let report = run_scenario(
        &mut backend,
        &shift_scenario(),
        &settings(dir.path()),
        &mut transcript,
    )
    .await;
    let transcript = String::from_utf8(transcript).unwrap();
    assert!(report.passed(), "{transcript}");
    let shift = report.steps[0]
        .traffic
        .as_ref()
        .and_then(|t| t.shift.as_ref())
        .unwrap();
    assert!(!shift.numbered);
    assert_eq!(
        (shift.generation_before, shift.generation_reported),
        (None, None)
    );
    assert!(
        shift.reported_ms.is_some() && shift.after.replies > 0,
        "{shift:?}"
    );
}

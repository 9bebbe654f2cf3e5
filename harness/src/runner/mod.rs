//! The runner: executes a scenario's steps in order against a [`Backend`] and records verdicts.
//!
//! - `apply`/`delete` go to the backend; the last [`Applied`] is kept so a later split with
//!   `propagation: true` can measure how long the gateway took to serve it.
//! - `glooctl` goes to the backend, then its output is checked (`contains`, `notContains`,
//!   `fails`).
//! - `wait` goes to the backend with the step's deadline.
//! - `traffic` asks the backend for the proxy URL, sends requests through it and judges the
//!   replies: exact checks on every reply, the split statistically ([`crate::stats`]).
//!
//! The first step that does not pass ends its scenario; later steps are reported as not run.
//! Progress and narration go to the writer the caller passes (stdout for `xtask`, a buffer in
//! tests); progress bars go to stderr only when it is a terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::{Applied, Backend};
use crate::scenario::{Action, GlooctlStep, Scenario, Step, WaitStep};
use crate::stats;

mod records;
mod traffic_step;

pub use records::{
    CrossCheckReport, FailureSample, PropagationReport, RequestRecord, RunReport, ScenarioReport,
    ShiftBucket, ShiftPhase, ShiftReport, ShiftTimeline, SplitReport, StepOutcome, StepReport,
    TrafficReport,
};
pub(crate) use records::{key_name, outcome_label, short_probability};

/// How a run is carried out. Build one with [`RunSettings::builder`].
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Recorded in reports; a backend that picks at random may be seeded from it by the caller.
    pub seed: u64,
    /// The family-wise false-alarm budget shared by every split check of the run.
    pub budget: stats::Budget,
    /// Minimum detectable deviation and power of each split check; its `alpha` is replaced by the
    /// per-check share of [`RunSettings::budget`].
    pub check: stats::CheckSettings,
    /// How many split checks the budget is divided over. `None`: the split checks of the scenario
    /// being run ([`run_all`] sets it to the count over every scenario of the run, counted before
    /// anything runs).
    pub split_checks_in_run: Option<usize>,
    /// Narrate for a person (`xtask walkthrough`): notes, commands as the blog wrote them, outputs.
    pub narrate: bool,
    /// The repository's `manifests/` folder; `apply`/`delete` paths are checked against it.
    pub manifests_dir: PathBuf,
    /// Where `xtask` writes reports; the runner itself only records it.
    pub report_dir: Option<PathBuf>,
    /// Show progress bars on stderr (still hidden when stderr is not a terminal).
    pub progress: bool,
    /// The longest any traffic step may send.
    pub traffic_deadline: Duration,
    /// The longest a single request may take.
    pub request_timeout: Duration,
    /// The longest the runner waits for a weight change to be served.
    pub propagation_timeout: Duration,
    /// Refuse non-loopback traffic targets (true on the local backend).
    pub loopback_only: bool,
    /// How many failing replies per step are kept verbatim for the report.
    pub failure_samples: usize,
}

impl RunSettings {
    /// Starts the settings of a run whose `apply`/`delete` paths are relative to
    /// `manifests_dir`. Defaults: seed 0, family alpha 1e-4 split equally over the run's checks
    /// (Bonferroni), deviation 0.05, power 0.99, no narration, no progress bars, no report
    /// folder, loopback only.
    pub fn builder(manifests_dir: impl Into<PathBuf>) -> RunSettingsBuilder {
        RunSettingsBuilder {
            settings: Self {
                seed: 0,
                budget: stats::Budget::default(),
                check: stats::CheckSettings::default(),
                split_checks_in_run: None,
                narrate: false,
                manifests_dir: manifests_dir.into(),
                report_dir: None,
                progress: false,
                traffic_deadline: Duration::from_secs(300),
                request_timeout: Duration::from_secs(10),
                propagation_timeout: Duration::from_secs(60),
                loopback_only: true,
                failure_samples: 5,
            },
        }
    }

    /// The settings of one split check: the run's deviation and power at the per-check alpha.
    pub fn split_check_settings(&self, split_checks: usize) -> stats::CheckSettings {
        stats::CheckSettings {
            alpha: self.budget.per_check_alpha(split_checks.max(1)),
            ..self.check
        }
    }
}

/// Builds a [`RunSettings`]; every setting not given keeps the default of
/// [`RunSettings::builder`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the settings"]
pub struct RunSettingsBuilder {
    settings: RunSettings,
}

impl RunSettingsBuilder {
    /// See [`RunSettings::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = seed;
        self
    }

    /// The family-wise false-alarm budget of the run ([`stats::Budget::family_alpha`]).
    pub fn family_alpha(mut self, family_alpha: f64) -> Self {
        self.settings.budget.family_alpha = family_alpha;
        self
    }

    /// See [`RunSettings::narrate`].
    pub fn narrate(mut self, narrate: bool) -> Self {
        self.settings.narrate = narrate;
        self
    }

    /// See [`RunSettings::progress`].
    pub fn progress(mut self, progress: bool) -> Self {
        self.settings.progress = progress;
        self
    }

    /// See [`RunSettings::report_dir`].
    pub fn report_dir(mut self, report_dir: impl Into<PathBuf>) -> Self {
        self.settings.report_dir = Some(report_dir.into());
        self
    }

    /// The settings; the fields stay public for the rest (timeouts, check settings).
    pub fn build(self) -> RunSettings {
        self.settings
    }
}

/// The number of statistical split checks in these scenarios, for dividing the run's budget.
/// A split declared `roundRobin` is judged deterministically and takes no share.
pub fn count_split_checks<'a>(scenarios: impl IntoIterator<Item = &'a Scenario>) -> usize {
    scenarios
        .into_iter()
        .flat_map(|scenario| &scenario.steps)
        .filter(|step| {
            matches!(&step.action, Action::Traffic(traffic) if traffic.expect.split.as_ref().is_some_and(
                |split| !matches!(split.selection, crate::scenario::Selection::RoundRobin { .. })
            ))
        })
        .count()
}

/// One split check of a run, as the runner plans it.
#[derive(Debug, Clone)]
pub struct PlannedSplit {
    /// The scenario's name.
    pub scenario: String,
    /// The step's position (1-based) and label.
    pub step: (usize, String),
    /// The split the step expects.
    pub spec: stats::SplitSpec,
    /// The settings its check runs with: the run's per-check α, less the connection check's
    /// part where one runs.
    pub check: stats::CheckSettings,
    /// Whether the check is sequential (the default) or at a fixed sample size.
    pub sequential: bool,
}

/// Every split check of a run over `scenarios`, with the α each gets: what the operating
/// characteristics are computed for, without running anything.
pub fn planned_split_checks(
    scenarios: &[Scenario],
    settings: &RunSettings,
) -> Result<Vec<PlannedSplit>, stats::StatsError> {
    let per_check = settings.split_check_settings(count_split_checks(scenarios));
    let mut planned = Vec::new();
    for scenario in scenarios {
        for (index, step) in scenario.steps.iter().enumerate() {
            let Action::Traffic(traffic) = &step.action else {
                continue;
            };
            let Some(split) = &traffic.expect.split else {
                continue;
            };
            let (spec, check) = traffic_step::split_check(split, per_check)?;
            planned.push(PlannedSplit {
                scenario: scenario.name.clone(),
                step: (index + 1, step.name.clone().unwrap_or_default()),
                spec,
                check,
                sequential: split.sequential && traffic.requests.is_none(),
            });
        }
    }
    Ok(planned)
}

/// Runs every scenario in order on one backend, dividing the budget over all their split checks.
/// Writes progress to `out`; returns the report whatever the outcome (the gate is
/// [`RunReport::passed`]).
pub async fn run_all<B: Backend>(
    backend: &mut B,
    scenarios: &[Scenario],
    settings: &RunSettings,
    out: &mut (dyn Write + Send),
) -> RunReport {
    let started = Instant::now();
    let split_checks = count_split_checks(scenarios);
    let settings = RunSettings {
        split_checks_in_run: Some(split_checks),
        ..settings.clone()
    };
    let per_check = settings.split_check_settings(split_checks);
    let mut reports = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        reports.push(run_scenario(backend, scenario, &settings, out).await);
    }
    RunReport {
        backend: backend.name().to_owned(),
        seed: settings.seed,
        started_unix: unix_now(),
        family_alpha: settings.budget.family_alpha,
        // Every check gets the equal share alpha/checks up front (Bonferroni): sequential checks
        // decide while traffic runs, so Holm's step-down, which needs every p-value first, cannot
        // apply. Report what was actually done.
        correction: "Bonferroni".to_owned(),
        split_checks,
        per_check_alpha: per_check.alpha,
        min_detectable_deviation: per_check.min_detectable_deviation,
        power: per_check.power,
        requests_sent: reports.iter().map(|r| r.requests_sent).sum(),
        verdicts: reports.iter().map(|r| r.verdicts).sum(),
        service_map: backend
            .trace_collector()
            .map(|collector| crate::xray::ServiceMap::from_segments(&collector.segments())),
        scenarios: reports,
        elapsed: started.elapsed(),
    }
}

/// Runs one scenario's steps in order; the first step that does not pass ends it.
pub async fn run_scenario<B: Backend>(
    backend: &mut B,
    scenario: &Scenario,
    settings: &RunSettings,
    out: &mut (dyn Write + Send),
) -> ScenarioReport {
    let started = Instant::now();
    let split_checks = settings
        .split_checks_in_run
        .unwrap_or_else(|| count_split_checks([scenario]));
    let check = settings.split_check_settings(split_checks);
    let mut context = StepContext {
        backend,
        settings,
        check,
        last_applied: None,
        out,
    };
    context.say(format_args!(
        "== {} ({})",
        scenario.name,
        scenario.source.display()
    ));
    if settings.narrate && !scenario.description.is_empty() {
        context.say(format_args!("{}\n", scenario.description.trim()));
    }
    let mut steps = Vec::with_capacity(scenario.steps.len());
    let mut ended: Option<StepOutcome> = None;
    for (position, step) in scenario.steps.iter().enumerate() {
        let index = position + 1;
        if ended.is_some() && !step.always {
            steps.push(StepReport::not_run(index, step));
            continue;
        }
        let report = context.run_step(index, step).await;
        context.say(format_args!(
            "{} step {index} {} ({}){}",
            report.outcome.label(),
            report.name,
            format_elapsed(report.elapsed),
            report
                .message
                .as_ref()
                .map(|m| format!("\n    {}", m.replace('\n', "\n    ")))
                .unwrap_or_default()
        ));
        // The first failure decides the scenario's outcome; an `always` step after it only
        // cleans up.
        if report.outcome != StepOutcome::Passed && ended.is_none() {
            ended = Some(report.outcome);
        }
        steps.push(report);
    }
    let requests_sent = steps
        .iter()
        .filter_map(|s| s.traffic.as_ref())
        .map(|t| t.summary.sent + u64::from(t.cross_check.is_some()))
        .sum();
    let verdicts = steps
        .iter()
        .filter(|s| {
            s.traffic.is_some()
                && matches!(
                    s.outcome,
                    StepOutcome::Passed | StepOutcome::Failed | StepOutcome::Inconclusive
                )
        })
        .count() as u64;
    let report = ScenarioReport {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        source: scenario.source.clone(),
        features: scenario.features.clone(),
        backend: context.backend.name().to_owned(),
        outcome: ended.unwrap_or(StepOutcome::Passed),
        steps,
        elapsed: started.elapsed(),
        requests_sent,
        verdicts,
        split_alpha: check.alpha,
    };
    context.say(format_args!(
        "== {} {}: {} wall, {} requests, {} verdicts",
        report.name,
        report.outcome.label(),
        format_elapsed(report.elapsed),
        report.requests_sent,
        report.verdicts
    ));
    report
}

/// What a step needs from the run: the backend, the settings and what earlier steps left.
struct StepContext<'a, B> {
    backend: &'a mut B,
    settings: &'a RunSettings,
    check: stats::CheckSettings,
    last_applied: Option<Applied>,
    out: &'a mut (dyn Write + Send),
}

/// The parts of a step report a step fills in.
#[derive(Default)]
struct StepResult {
    outcome: Option<StepOutcome>,
    messages: Vec<String>,
    output: Option<String>,
    changed: Vec<String>,
    traffic: Option<TrafficReport>,
}

impl StepResult {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            outcome: Some(StepOutcome::Failed),
            messages: vec![message.into()],
            ..Self::default()
        }
    }
}

impl<B: Backend> StepContext<'_, B> {
    fn say(&mut self, line: std::fmt::Arguments<'_>) {
        // Progress output is best effort: a closed stdout must not change any verdict.
        let _ = writeln!(self.out, "{line}");
    }

    async fn run_step(&mut self, index: usize, step: &Step) -> StepReport {
        let started = Instant::now();
        if self.settings.narrate
            && let Some(note) = &step.note
        {
            self.say(format_args!("\n{}", note.trim()));
        }
        let (kind, result) = match &step.action {
            Action::Apply(paths) => ("apply", self.apply(paths, false).await),
            Action::Delete(paths) => ("delete", self.apply(paths, true).await),
            Action::Glooctl(glooctl) => ("glooctl", self.command("glooctl", glooctl).await),
            Action::Kubectl(kubectl) => ("kubectl", self.command("kubectl", kubectl).await),
            Action::Wait(wait) => ("wait", self.wait(wait).await),
            Action::Traffic(traffic) => ("traffic", self.traffic(step, traffic).await),
        };
        let outcome = result.outcome.unwrap_or(if result.messages.is_empty() {
            StepOutcome::Passed
        } else {
            StepOutcome::Failed
        });
        StepReport {
            index,
            name: step.to_string(),
            kind,
            outcome,
            message: (!result.messages.is_empty()).then(|| result.messages.join("\n")),
            elapsed: started.elapsed(),
            output: result.output,
            changed: result.changed,
            traffic: result.traffic,
        }
    }

    async fn apply(&mut self, paths: &[PathBuf], delete: bool) -> StepResult {
        let verb = if delete { "delete" } else { "apply" };
        if self.settings.narrate {
            let files: Vec<String> = paths
                .iter()
                .map(|p| format!("manifests/{}", p.display()))
                .collect();
            self.say(format_args!("$ kubectl {verb} -f {}", files.join(" -f ")));
        }
        for path in paths {
            let full = self.settings.manifests_dir.join(path);
            if !full.exists() {
                return StepResult::failed(format!(
                    "kubectl {verb}: {} does not exist (paths are relative to {})",
                    full.display(),
                    self.settings.manifests_dir.display()
                ));
            }
        }
        let result = if delete {
            self.backend.delete(paths).await
        } else {
            self.backend.apply(paths).await
        };
        match result {
            Ok(applied) => {
                if self.settings.narrate {
                    for object in &applied.changed {
                        self.say(format_args!(
                            "{object} {}",
                            if delete { "deleted" } else { "configured" }
                        ));
                    }
                }
                let changed = applied.changed.clone();
                self.last_applied = Some(applied);
                StepResult {
                    changed,
                    ..StepResult::default()
                }
            }
            Err(error) => StepResult::failed(format!("kubectl {verb}: {error}")),
        }
    }

    /// A glooctl or kubectl step (`program`).
    async fn command(&mut self, program: &'static str, step: &GlooctlStep) -> StepResult {
        let line = shlex::try_join(step.args.iter().map(String::as_str))
            .unwrap_or_else(|_| step.args.join(" "));
        if self.settings.narrate {
            self.say(format_args!("$ {program} {line}"));
        }
        let output = if program == "kubectl" {
            self.backend.kubectl(&step.args).await
        } else {
            self.backend.glooctl(&step.args).await
        };
        let output = match output {
            Ok(output) => output,
            Err(error) => return StepResult::failed(format!("{program} {line}: {error}")),
        };
        if self.settings.narrate {
            let text = output.stdout.trim_end();
            if !text.is_empty() {
                self.say(format_args!("{text}"));
            }
            if !output.stderr.trim().is_empty() {
                self.say(format_args!("{}", output.stderr.trim_end()));
            }
        }
        let messages = command_problems(program, step, &output);
        StepResult {
            messages,
            output: Some(output.stdout),
            ..StepResult::default()
        }
    }

    async fn wait(&mut self, step: &WaitStep) -> StepResult {
        if self.settings.narrate {
            self.say(format_args!("# waiting for {}", step.condition));
        }
        match self.backend.wait(&step.condition, step.timeout).await {
            Ok(took) => {
                if self.settings.narrate {
                    self.say(format_args!("# ready after {}", format_elapsed(took)));
                }
                StepResult::default()
            }
            Err(error @ crate::backend::BackendError::Timeout { .. }) => {
                StepResult::failed(error.to_string())
            }
            Err(error) => StepResult::failed(format!(
                "waiting for {} (timeout {}): {error}",
                step.condition,
                humantime::format_duration(step.timeout)
            )),
        }
    }
}

/// Everything wrong with a glooctl or kubectl (`program`) command's result, by its step's
/// expectations.
fn command_problems(
    program: &str,
    step: &GlooctlStep,
    output: &crate::backend::CommandOutput,
) -> Vec<String> {
    let line = step.args.join(" ");
    let mut problems = Vec::new();
    match (step.expect.fails, output.success) {
        (false, false) => problems.push(format!(
            "{program} {line} failed: {}",
            first_line(&output.stderr).unwrap_or("(no error output)")
        )),
        (true, true) => problems.push(format!(
            "{program} {line} succeeded but was expected to fail"
        )),
        _ => {}
    }
    for needle in &step.expect.contains {
        if !output.stdout.contains(needle.as_str()) {
            problems.push(format!(
                "{program} {line}: output does not contain {needle:?}"
            ));
        }
    }
    for needle in &step.expect.not_contains {
        if output.stdout.contains(needle.as_str()) {
            problems.push(format!(
                "{program} {line}: output contains {needle:?}, which it must not"
            ));
        }
    }
    problems
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}

impl StepReport {
    fn not_run(index: usize, step: &Step) -> Self {
        StepReport {
            index,
            name: step.to_string(),
            kind: match step.action {
                Action::Apply(_) => "apply",
                Action::Delete(_) => "delete",
                Action::Glooctl(_) => "glooctl",
                Action::Kubectl(_) => "kubectl",
                Action::Wait(_) => "wait",
                Action::Traffic(_) => "traffic",
            },
            outcome: StepOutcome::NotRun,
            message: None,
            elapsed: Duration::ZERO,
            output: None,
            changed: Vec::new(),
            traffic: None,
        }
    }
}

/// `1.234 s`, `56 ms`: short human durations for progress lines.
pub fn format_elapsed(elapsed: Duration) -> String {
    if elapsed >= Duration::from_secs(1) {
        format!("{:.3} s", elapsed.as_secs_f64())
    } else {
        format!("{} ms", elapsed.as_millis())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CommandOutput;
    use crate::scenario::GlooctlExpect;

    fn step(args: &[&str], expect: GlooctlExpect) -> GlooctlStep {
        GlooctlStep {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            expect,
        }
    }

    fn output(stdout: &str, success: bool) -> CommandOutput {
        CommandOutput {
            stdout: stdout.to_owned(),
            stderr: "error: boom\n".to_owned(),
            success,
        }
    }

    #[test]
    fn glooctl_output_checks() {
        let expect = GlooctlExpect {
            contains: vec!["appmesh-demo-colorgateway-9080".into()],
            not_contains: vec!["Rejected".into()],
            fails: false,
        };
        let get = step(&["get", "upstream"], expect.clone());
        assert!(
            command_problems(
                "glooctl",
                &get,
                &output("| appmesh-demo-colorgateway-9080 | Accepted |", true)
            )
            .is_empty()
        );
        let problems = command_problems("glooctl", &get, &output("| other | Rejected |", false));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0], "glooctl get upstream failed: error: boom");
        assert!(problems[1].contains("does not contain \"appmesh-demo-colorgateway-9080\""));
        assert!(problems[2].contains("contains \"Rejected\""));
        let must_fail = step(
            &["add", "route"],
            GlooctlExpect {
                fails: true,
                ..Default::default()
            },
        );
        assert!(command_problems("glooctl", &must_fail, &output("", false)).is_empty());
        assert_eq!(
            command_problems("glooctl", &must_fail, &output("", true)).len(),
            1
        );
    }

    #[test]
    fn the_builder_sets_what_it_is_given_and_keeps_the_defaults() {
        let settings = RunSettings::builder("manifests")
            .seed(42)
            .family_alpha(1e-3)
            .narrate(true)
            .progress(true)
            .report_dir("target/report")
            .build();
        assert_eq!(settings.manifests_dir, PathBuf::from("manifests"));
        assert_eq!(settings.seed, 42);
        assert_eq!(settings.budget.family_alpha, 1e-3);
        assert!(settings.narrate && settings.progress);
        assert_eq!(settings.report_dir, Some(PathBuf::from("target/report")));
        let defaults = RunSettings::builder("manifests").build();
        assert_eq!(defaults.seed, 0);
        assert_eq!(defaults.budget.family_alpha, 1e-4);
        assert!(!defaults.narrate && !defaults.progress && defaults.loopback_only);
        assert_eq!(defaults.report_dir, None);
    }

    #[test]
    fn outcomes_order_from_best_to_worst() {
        assert!(StepOutcome::Passed < StepOutcome::Inconclusive);
        assert!(StepOutcome::Inconclusive < StepOutcome::Failed);
        assert_eq!(format_elapsed(Duration::from_millis(56)), "56 ms");
        assert_eq!(format_elapsed(Duration::from_millis(1234)), "1.234 s");
    }
}

//! The records a run leaves: what `report.json` holds and every other report is drawn from.
//!
//! They are plain data, filled in by the runner (`super`) and its traffic step
//! (`super::traffic_step`); their serde shape is the report format, so a change here is a
//! change of `report.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::classify::{CheckKind, Violation};
use crate::features::Feature;
use crate::scenario::{Selection, SplitKey};
use crate::stats;
use crate::traffic::TrafficSummary;

/// How a step (or a scenario) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepOutcome {
    Passed,
    /// The statistics could not decide within the request cap: not a pass, reported as its own kind.
    Inconclusive,
    Failed,
    /// An earlier step did not pass.
    NotRun,
}

impl StepOutcome {
    pub fn label(self) -> &'static str {
        match self {
            StepOutcome::Passed => "PASS",
            StepOutcome::Inconclusive => "INCONCLUSIVE",
            StepOutcome::Failed => "FAIL",
            StepOutcome::NotRun => "NOT RUN",
        }
    }
}

/// The record of one step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// 1-based position in the scenario.
    pub index: usize,
    /// The step's name, or a description of its action.
    pub name: String,
    /// `apply`, `delete`, `glooctl`, `wait` or `traffic`.
    pub kind: &'static str,
    pub outcome: StepOutcome,
    /// Why the step did not pass (every reason, one per line).
    pub message: Option<String>,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
    /// A glooctl command's standard output.
    pub output: Option<String>,
    /// What an apply/delete changed.
    pub changed: Vec<String>,
    pub traffic: Option<TrafficReport>,
}

/// The record of one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub description: String,
    pub source: PathBuf,
    pub features: Vec<Feature>,
    pub backend: String,
    /// Passed only if every step passed; otherwise the outcome of the step that ended it.
    pub outcome: StepOutcome,
    pub steps: Vec<StepReport>,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
    /// Requests sent by all traffic steps (including stats clears).
    pub requests_sent: u64,
    /// Traffic steps that reached a verdict.
    pub verdicts: u64,
    /// The per-check alpha its split checks used.
    pub split_alpha: f64,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.outcome == StepOutcome::Passed
    }
}

/// The record of a whole run (`report.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub backend: String,
    pub seed: u64,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    pub family_alpha: f64,
    pub correction: String,
    /// Split checks the budget was divided over.
    pub split_checks: usize,
    pub per_check_alpha: f64,
    pub min_detectable_deviation: f64,
    pub power: f64,
    pub scenarios: Vec<ScenarioReport>,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
    pub requests_sent: u64,
    pub verdicts: u64,
    /// The X-Ray service map of the run, from every segment the daemon stand-in collected.
    pub service_map: Option<crate::xray::ServiceMap>,
}

impl RunReport {
    /// The gate: every scenario passed (inconclusive counts as not passed).
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }

    /// Requests sent per verdict reached, the cost figure of the harness.
    pub fn requests_per_verdict(&self) -> f64 {
        if self.verdicts == 0 {
            0.0
        } else {
            self.requests_sent as f64 / self.verdicts as f64
        }
    }
}

/// One request as the report keeps it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub index: u64,
    pub connection: u32,
    pub status: Option<u16>,
    pub latency_us: u64,
    /// The destination label, for replies that passed the exact checks of a split step.
    pub destination: Option<String>,
}

/// A failing reply, verbatim (body cut at 2 KiB).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureSample {
    pub index: u64,
    pub connection: u32,
    pub status: Option<u16>,
    pub body: String,
    pub violations: Vec<Violation>,
}

/// The statistical judgement of a split.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitReport {
    pub by: SplitKey,
    pub weights: BTreeMap<String, u32>,
    pub sequential: bool,
    /// The settings the check ran with (alpha is the per-check share of the run's budget).
    pub alpha: f64,
    pub min_detectable_deviation: f64,
    pub power: f64,
    /// The fixed-n sample size the plan asks for.
    pub planned_requests: u64,
    /// The most requests the step would send.
    pub cap: u64,
    pub verdict: stats::SplitVerdict,
    /// From the first request to the verdict.
    #[serde(with = "duration_ms")]
    pub time_to_verdict: Duration,
    /// Distinct connections the counted replies came over.
    pub connections: usize,
    /// Whether the pick depended on the connection; `None` when the split has fewer than two
    /// positive-weight destinations (nothing to test), is not declared `random`, or every request
    /// went on a fresh connection (a zero-weight destination).
    pub connection_check: Option<stats::ConnectionVerdict>,
    /// What a correct gateway gets from this step's sequential check (exact where one
    /// destination decides); `None` for a fixed-sample check.
    pub correct_gateway: Option<stats::CorrectGateway>,
    /// The probability that this step turns red for a correct gateway: its split check's fail
    /// plus inconclusive, plus the connection check's α. `None` for a fixed-sample check.
    pub false_red: Option<f64>,
    /// How the gateway was declared to pick (`expect.split.selection`).
    pub selection: Selection,
    /// What one sample of the split check is: `request`, `connection`, `key` or `pick`.
    pub sample_unit: &'static str,
    /// How the traffic used connections.
    pub connection_reuse: String,
    /// With a zero-weight destination: the leak guarantee, whatever the connection reuse.
    pub leak_note: Option<String>,
    /// `perConnection` and `hash`: whether a unit's repeated requests went to one destination.
    pub stickiness: Option<stats::StickinessVerdict>,
    /// `roundRobin`: the deterministic check's verdict (also summarised in `verdict`).
    pub round_robin: Option<stats::RoundRobinVerdict>,
}

/// How long the gateway took to serve the last applied change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropagationReport {
    /// The backend revision waited for; `None` when nothing was applied before this step.
    pub revision: Option<u64>,
    pub changed: Vec<String>,
    #[serde(with = "duration_ms_opt")]
    pub elapsed: Option<Duration>,
    pub error: Option<String>,
}

/// The client's split compared with the colorgateway's own histogram.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossCheckReport {
    /// Replies the comparison covers (the gateway keeps the last 1000).
    pub window: u64,
    /// Shares of each color in the client's last `window` replies.
    pub client: BTreeMap<String, f64>,
    /// The `stats` of the last reply.
    pub gateway: BTreeMap<String, f64>,
    pub max_difference: f64,
    /// Rounding to 2 decimals (0.005) plus replies in flight (concurrency / window).
    pub tolerance: f64,
    pub agrees: bool,
    pub note: Option<String>,
}

/// Everything a traffic step did and saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficReport {
    pub url: String,
    pub method: String,
    pub path: String,
    pub concurrency: usize,
    /// The number of requests asked for (fixed count), if any.
    pub requested: Option<u64>,
    pub summary: TrafficSummary,
    pub passing_replies: u64,
    pub failing_replies: u64,
    pub max_errors: u64,
    pub failures_by_check: BTreeMap<CheckKind, u64>,
    pub failure_samples: Vec<FailureSample>,
    /// Reply bodies in request order, for `showReplies` steps.
    pub shown_replies: Vec<String>,
    pub split: Option<SplitReport>,
    pub propagation: Option<PropagationReport>,
    pub cross_check: Option<CrossCheckReport>,
    /// What a `shift` step measured while the change went live.
    pub shift: Option<ShiftReport>,
    /// The trace check (`expect.trace`).
    pub trace: Option<crate::xray::TraceReport>,
    pub records: Vec<RequestRecord>,
}

/// A configuration change applied while traffic flowed (`traffic.shift`). Times are
/// milliseconds since the step's first request was sent; `None` for what never happened.
///
/// Requests fall in three phases by the time they were sent: `before` the apply started,
/// `during` the change (until the gateway reported the new generation) and `after` it. Only
/// replies sent after the report and served by the reported generation or a newer one are
/// judged against the new weights.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftReport {
    /// The files applied, relative to `manifests/`.
    pub applied: Vec<PathBuf>,
    /// What the apply changed.
    pub changed: Vec<String>,
    /// The generation the gateway reported right before the apply.
    pub generation_before: Option<u64>,
    /// The generation it reported once the change was live: the one the new weights are
    /// judged under.
    pub generation_reported: Option<u64>,
    /// Whether the gateway numbers its configurations (`/status` and `x-colormesh-generation`);
    /// without, the split is judged on what was sent after the change was seen live and no
    /// reply can be called stale.
    pub numbered: bool,
    pub apply_started_ms: Option<f64>,
    pub apply_returned_ms: Option<f64>,
    /// When the backend saw every proxy serve the applied versions (`wait_config_live`).
    pub config_live_ms: Option<f64>,
    /// When the gateway's `/status` answered with [`ShiftReport::generation_reported`]; requests
    /// sent later must be served by it or a newer generation.
    pub reported_ms: Option<f64>,
    /// When the first reply from a generation newer than the one before the apply came back.
    pub first_new_generation_ms: Option<f64>,
    /// Requests sent in each phase (replies received).
    pub before: ShiftPhase,
    pub during: ShiftPhase,
    pub after: ShiftPhase,
    /// Replies with a status outside 2xx, over the whole step.
    pub non_2xx: u64,
    /// Requests that got no reply (reset, refused, timed out), over the whole step.
    pub transport_errors: u64,
    pub max_errors: u64,
    /// Replies sent after the report but served by an older generation.
    pub stale_after_report: u64,
    pub max_stale: u64,
    /// 2xx replies that named no generation (the gateway does not say which configuration
    /// served them).
    pub unlabelled: u64,
    /// Why the change could not be applied or seen live.
    pub error: Option<String>,
    pub timeline: ShiftTimeline,
}

impl ShiftReport {
    /// From the apply's start until the first reply from a newer generation came back.
    pub fn time_to_new_generation_ms(&self) -> Option<f64> {
        Some(self.first_new_generation_ms? - self.apply_started_ms?)
    }

    /// From the apply's start until the gateway reported the new generation.
    pub fn time_to_report_ms(&self) -> Option<f64> {
        Some(self.reported_ms? - self.apply_started_ms?)
    }
}

/// The replies of one phase of a shift and their latency.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftPhase {
    pub replies: u64,
    /// Replies that failed (non-2xx or no reply).
    pub errors: u64,
    pub latency: crate::traffic::LatencySummary,
}

/// The step's replies in equal time buckets by the time they were sent, for the report's
/// timeline.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftTimeline {
    pub bucket_ms: f64,
    /// Destination labels, in the order of [`ShiftBucket::destinations`].
    pub destinations: Vec<String>,
    pub buckets: Vec<ShiftBucket>,
    /// Send times of failed replies, at most one per quarter bucket.
    pub error_ms: Vec<f64>,
}

/// One bucket of a [`ShiftTimeline`].
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftBucket {
    /// Replies per destination of [`ShiftTimeline::destinations`].
    pub destinations: Vec<u64>,
    /// Replies served by a generation newer than the one before the apply.
    pub new_generation: u64,
    pub errors: u64,
    pub stale: u64,
}

/// A split key as scenarios spell it.
pub(crate) fn key_name(key: SplitKey) -> &'static str {
    match key {
        SplitKey::Color => "color",
        SplitKey::Shape => "shape",
        SplitKey::EchoService => "echoService",
        SplitKey::EchoServiceOrStatus => "echoServiceOrStatus",
        SplitKey::Body => "body",
    }
}

/// A probability as people read it: `1 - 0.99` prints as `0.01`, not `0.010000000000000009`
/// (six decimals kept, trailing zeros dropped).
pub(crate) fn short_probability(p: f64) -> f64 {
    (p * 1e6).round() / 1e6
}

/// A verdict as the terminal and the HTML report print it: failures shout.
pub(crate) fn outcome_label(outcome: stats::Outcome) -> &'static str {
    match outcome {
        stats::Outcome::Pass => "pass",
        stats::Outcome::Fail => "FAIL",
        stats::Outcome::Inconclusive => "INCONCLUSIVE",
    }
}

mod duration_ms {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1000.0)
    }
}

mod duration_ms_opt {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&(duration.as_secs_f64() * 1000.0)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::short_probability;

    #[test]
    fn probabilities_print_without_float_noise() {
        assert_eq!(short_probability(1.0 - 0.99).to_string(), "0.01");
        assert_eq!(short_probability(0.05).to_string(), "0.05");
        assert_eq!(short_probability(1.234_567_8e-3).to_string(), "0.001235");
    }
}

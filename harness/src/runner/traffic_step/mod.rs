//! The traffic step: propagation, the stats clear, sending, exact checks, the split verdict, the
//! connection-independence verdict and the stats cross-check.
//!
//! A split step runs two statistical checks on the same replies: the split check (its shares and
//! zero-weight leaks) and, when the split has two or more positive weights, the
//! connection-independence check ([`stats::ConnectionCheck`]); they share the step's part of the
//! run's budget (nine tenths and one tenth). Both are built before the step waits for the last
//! change to be live, so traffic starts the moment the gateway reports it: the checks then see
//! any window in which the gateway reports a configuration it does not serve yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{StepContext, StepOutcome, StepResult, duration_ms, format_elapsed};
use crate::backend::Backend;
use crate::classify::{self, CheckKind, ReplyView, Violation};
use crate::scenario::{SplitExpect, SplitKey, Step, TrafficStep};
use crate::stats;
use crate::traffic::{
    self, Flow, Reply, StopReason, TrafficLimits, TrafficRequest, TrafficSummary,
};

/// Bodies kept in reports are cut here: enough to see what went wrong.
const MAX_SAMPLE_BODY: usize = 2048;
/// Replies printed in walkthrough mode for `showReplies`.
const MAX_SHOWN_REPLIES: usize = 20;
/// Counted replies per connection after which connections that all saw the same destination are
/// renewed (see [`Tally::observe`]).
const FRESH_CONNECTIONS_AFTER: u64 = 8;
/// The colorgateway keeps the last this-many colors for its `stats`.
const GATEWAY_STATS_WINDOW: usize = 1000;

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
    /// positive-weight destinations (nothing to test).
    pub connection_check: Option<stats::ConnectionVerdict>,
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
    pub records: Vec<RequestRecord>,
}

/// What the observer accumulates while traffic runs.
struct Tally<'a> {
    step: &'a TrafficStep,
    sample_limit: usize,
    passing: u64,
    failing: u64,
    by_check: BTreeMap<CheckKind, u64>,
    samples: Vec<FailureSample>,
    shown: Vec<(u64, String)>,
    records: Vec<RequestRecord>,
    counts: BTreeMap<String, u64>,
    sequential: Option<stats::SequentialCheck>,
    /// Whether picks depend on the connection (splits with two or more positive weights).
    connection: Option<stats::ConnectionCheck>,
    /// Destinations of the counted replies since the connections were last renewed.
    epoch_destinations: BTreeSet<String>,
    epoch_replies: u64,
    decided_at: Option<Instant>,
    connections: BTreeSet<u32>,
    cross_colors: Vec<String>,
    cross_flavors: BTreeSet<&'static str>,
    cross_last_stats: Option<BTreeMap<String, f64>>,
}

impl Tally<'_> {
    fn observe(&mut self, reply: Reply) -> Flow {
        let view = ReplyView {
            status: reply.status,
            headers: &reply.headers,
            body: &reply.body,
            transport_error: reply.error.as_deref(),
        };
        let mut violations = classify::check_reply(&self.step.expect, view);
        let mut destination = None;
        if violations.is_empty()
            && let Some(split) = &self.step.expect.split
        {
            match classify::destination(split.by, &reply.body) {
                Ok(label) => destination = Some(label),
                Err(error) => violations.push(Violation {
                    check: CheckKind::Destination,
                    message: error.to_string(),
                }),
            }
        }
        if violations.is_empty() && self.step.expect.stats_cross_check {
            match classify::parse_gateway(&reply.body) {
                Ok(parsed) => {
                    self.cross_flavors
                        .insert(classify::shape_name(classify::shape_of(&parsed)));
                    self.cross_colors.push(parsed.color);
                    self.cross_last_stats = Some(parsed.stats);
                }
                Err(error) => violations.push(Violation {
                    check: CheckKind::Shape,
                    message: error.to_string(),
                }),
            }
        }
        if self.step.show_replies {
            self.shown.push((reply.index, reply.body_text()));
        }
        self.records.push(RequestRecord {
            index: reply.index,
            connection: reply.connection,
            status: reply.status.map(|s| s.as_u16()),
            latency_us: u64::try_from(reply.latency.as_micros()).unwrap_or(u64::MAX),
            destination: destination.clone(),
        });
        if !violations.is_empty() {
            self.failing += 1;
            for violation in &violations {
                *self.by_check.entry(violation.check).or_default() += 1;
            }
            if self.samples.len() < self.sample_limit {
                let mut body = reply.body_text();
                if body.len() > MAX_SAMPLE_BODY {
                    let cut = (0..=MAX_SAMPLE_BODY)
                        .rev()
                        .find(|i| body.is_char_boundary(*i))
                        .unwrap_or(0);
                    body.truncate(cut);
                    body.push('…');
                }
                self.samples.push(FailureSample {
                    index: reply.index,
                    connection: reply.connection,
                    status: reply.status.map(|s| s.as_u16()),
                    body,
                    violations,
                });
            }
            // A gateway answering errors is a failure whatever the split says; stop early.
            return if self.failing > self.step.expect.max_errors {
                Flow::Stop
            } else {
                Flow::Continue
            };
        }
        self.passing += 1;
        if let Some(label) = destination {
            self.connections.insert(reply.connection);
            if let Some(check) = &mut self.connection
                && check.observe(reply.connection, &label) == stats::ConnectionState::Fail
            {
                // The step fails whatever the split says; stop here.
                *self.counts.entry(label.clone()).or_default() += 1;
                if let Some(sequential) = &mut self.sequential {
                    sequential.observe(&label);
                }
                self.decided_at = Some(Instant::now());
                return Flow::Stop;
            }
            let mut flow = Flow::Continue;
            if self.connection.is_some() {
                // Connections that have all seen one destination cannot show a per-connection
                // pick (every connection of a sticky gateway may have drawn the same one): renew
                // them until two destinations appear. A correct gateway seldom triggers this
                // (80/20 over the default 4 connections: 0.8^32 < 1e-3), and then harmlessly.
                self.epoch_replies += 1;
                self.epoch_destinations.insert(label.clone());
                if self.epoch_destinations.len() == 1
                    && self.epoch_replies >= FRESH_CONNECTIONS_AFTER * self.step.concurrency as u64
                {
                    self.epoch_destinations.clear();
                    self.epoch_replies = 0;
                    flow = Flow::Reconnect;
                }
            }
            if let Some(check) = &mut self.sequential {
                check.observe(&label);
                *self.counts.entry(label).or_default() += 1;
                if !matches!(check.state(), stats::SequentialState::Continue) {
                    self.decided_at = Some(Instant::now());
                    return Flow::Stop;
                }
            } else {
                *self.counts.entry(label).or_default() += 1;
            }
            return flow;
        }
        Flow::Continue
    }
}

impl<B: Backend> StepContext<'_, B> {
    pub(super) async fn traffic(&mut self, step: &Step, traffic: &TrafficStep) -> StepResult {
        let mut result = StepResult::default();
        let split = traffic.expect.split.as_ref();

        let base = match self.backend.proxy_url().await {
            Ok(url) => url,
            Err(error) => return StepResult::failed(format!("glooctl proxy url: {error}")),
        };
        let request = match build_request(&base, traffic) {
            Ok(request) => request,
            Err(message) => return StepResult::failed(message),
        };

        // Everything the checks need is prepared before waiting for the change to be live, so
        // that the first request goes out right when the gateway reports it: a gateway that
        // reports a change before it serves it is then judged inside its stale window.
        let (check, connection) = match split {
            Some(split) => match step_checks(split, self.check) {
                Ok(checks) => checks,
                Err(error) => return StepResult::failed(format!("traffic.expect.split: {error}")),
            },
            None => (self.check, None),
        };
        let plan = match split {
            Some(split) => {
                let spec = split_spec(split);
                match stats::plan(&spec, &check) {
                    Ok(plan) => Some((spec, plan)),
                    Err(error) => {
                        return StepResult::failed(format!("traffic.expect.split: {error}"));
                    }
                }
            }
            None => None,
        };
        let sequential_wanted =
            split.is_some_and(|split| split.sequential) && traffic.requests.is_none();
        let (max_requests, cap_note) = match (&plan, traffic.requests) {
            (_, Some(requests)) => (requests, String::new()),
            (Some((_, plan)), None) if sequential_wanted => (
                plan.sequential_cap,
                format!(
                    "; sequential, stops at the verdict, at most {}",
                    plan.sequential_cap
                ),
            ),
            (Some((_, plan)), None) => (plan.requests, String::new()),
            (None, None) => {
                return StepResult::failed(
                    "traffic.requests is missing and there is no split to plan it",
                );
            }
        };
        let sequential = match &plan {
            Some((spec, _)) if sequential_wanted => match stats::SequentialCheck::new(spec, &check)
            {
                Ok(sequential) => Some(sequential),
                Err(error) => return StepResult::failed(format!("traffic.expect.split: {error}")),
            },
            _ => None,
        };

        let propagation = match split {
            Some(split) if split.propagation => Some(self.measure_propagation().await),
            _ => None,
        };
        if let Some(propagation) = &propagation
            && let Some(error) = &propagation.error
        {
            result.messages.push(error.clone());
            result.outcome = Some(StepOutcome::Failed);
            return result;
        }

        if let (Some((_, plan)), Some(split)) = (&plan, split) {
            let connection_note = connection
                .as_ref()
                .map(|c| format!("; connection independence alpha {:.2e}", c.alpha()))
                .unwrap_or_default();
            let leak_note = plan
                .leak_requests
                .map(|n| {
                    format!(
                        "; at least {n} to catch a {} leak to zero-weight destinations with probability {}",
                        percent(check.min_detectable_leak),
                        check.leak_power
                    )
                })
                .unwrap_or_default();
            self.say(format_args!(
                "# split by {}: planned {} requests (alpha {:.2e}, deviation {}, power {}){leak_note}{cap_note}{connection_note}",
                key_name(split.by),
                plan.requests,
                check.alpha,
                check.min_detectable_deviation,
                check.power
            ));
        }
        if self.settings.narrate {
            self.narrate_traffic(traffic, max_requests);
        }

        let cross_clear = if traffic.expect.stats_cross_check {
            match self.clear_gateway_stats(&request).await {
                Ok(()) => true,
                Err(message) => return StepResult::failed(message),
            }
        } else {
            false
        };

        let limits = TrafficLimits {
            concurrency: traffic.concurrency,
            max_requests,
            deadline: self.settings.traffic_deadline,
            request_timeout: self.settings.request_timeout,
            loopback_only: self.settings.loopback_only,
        };
        let mut tally = Tally {
            step: traffic,
            sample_limit: self.settings.failure_samples,
            passing: 0,
            failing: 0,
            by_check: BTreeMap::new(),
            samples: Vec::new(),
            shown: Vec::new(),
            records: Vec::new(),
            counts: BTreeMap::new(),
            sequential,
            connection,
            epoch_destinations: BTreeSet::new(),
            epoch_replies: 0,
            decided_at: None,
            connections: BTreeSet::new(),
            cross_colors: Vec::new(),
            cross_flavors: BTreeSet::new(),
            cross_last_stats: None,
        };
        let bar = progress_bar(self.settings.progress, max_requests, &step.to_string());
        let started = Instant::now();
        let driven = traffic::drive(&request, &limits, |reply| {
            bar.inc(1);
            tally.observe(reply)
        })
        .await;
        bar.finish_and_clear();
        let summary = match driven {
            Ok(summary) => summary,
            Err(error) => return StepResult::failed(error.to_string()),
        };

        let split_report = match (plan, split) {
            (Some((spec, plan)), Some(split)) => {
                let mut verdict = match tally.sequential.take() {
                    Some(sequential) => {
                        let undecided =
                            matches!(sequential.state(), stats::SequentialState::Continue);
                        let mut verdict = sequential.verdict();
                        if undecided && summary.stopped_by == StopReason::Deadline {
                            verdict.outcome = stats::Outcome::Inconclusive;
                            verdict.reasons.push(format!(
                                "the traffic deadline ({}) passed after {} counted replies, before the \
                                 sequential check decided",
                                humantime::format_duration(self.settings.traffic_deadline),
                                verdict.n
                            ));
                        }
                        verdict
                    }
                    None => match stats::judge(&spec, &tally.counts, &check) {
                        Ok(verdict) => verdict,
                        Err(error) => {
                            return StepResult::failed(format!("traffic.expect.split: {error}"));
                        }
                    },
                };
                if tally.failing > traffic.expect.max_errors
                    && verdict.outcome == stats::Outcome::Pass
                {
                    verdict.outcome = stats::Outcome::Inconclusive;
                    verdict.reasons.push(
                        "traffic stopped early because replies failed the exact checks".to_owned(),
                    );
                }
                let time_to_verdict = tally.decided_at.unwrap_or_else(Instant::now) - started;
                Some(SplitReport {
                    by: split.by,
                    weights: split.weights.clone(),
                    sequential: sequential_wanted,
                    alpha: check.alpha,
                    min_detectable_deviation: check.min_detectable_deviation,
                    power: check.power,
                    planned_requests: plan.requests,
                    cap: max_requests,
                    verdict,
                    time_to_verdict,
                    connections: tally.connections.len(),
                    connection_check: tally.connection.as_ref().map(|c| c.verdict()),
                })
            }
            _ => None,
        };

        let cross_check = cross_clear.then(|| cross_check(&tally, traffic.concurrency));

        // Verdicts, worst last so the outcome is the worst one.
        let mut outcome = StepOutcome::Passed;
        if tally.failing > traffic.expect.max_errors {
            outcome = StepOutcome::Failed;
            let by_check: Vec<String> = tally
                .by_check
                .iter()
                .map(|(check, n)| format!("{check} {n}"))
                .collect();
            let mut message = format!(
                "{} of {} replies failed the exact checks (maxErrors {}): {}",
                tally.failing,
                summary.received,
                traffic.expect.max_errors,
                by_check.join(", ")
            );
            for sample in tally.samples.iter().take(3) {
                let problems: Vec<&str> = sample
                    .violations
                    .iter()
                    .map(|v| v.message.as_str())
                    .collect();
                let _ = write!(
                    message,
                    "\n  request #{} (connection {}): {}",
                    sample.index,
                    sample.connection,
                    problems.join("; ")
                );
            }
            result.messages.push(message);
        }
        if let Some(requested) = traffic.requests
            && summary.received < requested
            && outcome == StepOutcome::Passed
        {
            outcome = StepOutcome::Failed;
            result.messages.push(format!(
                "only {} of {requested} replies arrived before the deadline ({})",
                summary.received,
                humantime::format_duration(self.settings.traffic_deadline)
            ));
        }
        if let Some(split) = &split_report {
            self.say(format_args!("{}", describe_verdict(split)));
            if let Some(connection) = &split.connection_check
                && connection.outcome == stats::Outcome::Fail
            {
                outcome = StepOutcome::Failed;
                result.messages.push(format!(
                    "connection independence: {}",
                    connection.reasons.join("; ")
                ));
            }
            match split.verdict.outcome {
                stats::Outcome::Pass => {}
                stats::Outcome::Fail => {
                    outcome = StepOutcome::Failed;
                    result.messages.push(format!(
                        "split by {}: {}",
                        key_name(split.by),
                        split.verdict.reasons.join("; ")
                    ));
                }
                stats::Outcome::Inconclusive => {
                    if outcome == StepOutcome::Passed {
                        outcome = StepOutcome::Inconclusive;
                    }
                    result.messages.push(format!(
                        "split by {} inconclusive: {}",
                        key_name(split.by),
                        split.verdict.reasons.join("; ")
                    ));
                }
            }
        }
        if let Some(cross) = &cross_check
            && !cross.agrees
        {
            outcome = StepOutcome::Failed;
            result.messages.push(format!(
                "stats cross-check: {}",
                cross.note.clone().unwrap_or_else(|| format!(
                    "the client and the colorgateway disagree by {:.3} (tolerance {:.3}): client {:?}, gateway {:?}",
                    cross.max_difference, cross.tolerance, cross.client, cross.gateway
                ))
            ));
        }

        let mut shown = tally.shown;
        shown.sort_by_key(|(index, _)| *index);
        let shown: Vec<String> = shown.into_iter().map(|(_, body)| body).collect();
        if self.settings.narrate {
            for body in shown.iter().take(MAX_SHOWN_REPLIES) {
                self.say(format_args!("{body}"));
            }
            if let Some(propagation) = &propagation
                && let Some(elapsed) = propagation.elapsed
            {
                self.say(format_args!(
                    "# the new weights were served {} after the apply returned",
                    format_elapsed(elapsed)
                ));
            }
        }
        self.say(format_args!(
            "# {} requests, {} replies over {} connections in {} ({:.0} req/s, p50 {} µs, p99 {} µs)",
            summary.sent,
            summary.received,
            summary.connections,
            format_elapsed(summary.elapsed),
            summary.rate(),
            summary.latency.p50_us,
            summary.latency.p99_us
        ));

        result.outcome = Some(outcome);
        result.traffic = Some(TrafficReport {
            url: base.to_string(),
            method: traffic.method.clone(),
            path: traffic.path.clone(),
            concurrency: traffic.concurrency,
            requested: traffic.requests,
            summary,
            passing_replies: tally.passing,
            failing_replies: tally.failing,
            max_errors: traffic.expect.max_errors,
            failures_by_check: tally.by_check,
            failure_samples: tally.samples,
            shown_replies: shown,
            split: split_report,
            propagation,
            cross_check,
            records: tally.records,
        });
        result
    }

    async fn measure_propagation(&mut self) -> PropagationReport {
        let Some(applied) = self.last_applied.clone() else {
            return PropagationReport {
                revision: None,
                changed: Vec::new(),
                elapsed: None,
                error: Some("propagation: true, but no apply ran before this step".to_owned()),
            };
        };
        match self
            .backend
            .wait_config_live(&applied, self.settings.propagation_timeout)
            .await
        {
            Ok(elapsed) => PropagationReport {
                revision: Some(applied.revision),
                changed: applied.changed,
                elapsed: Some(elapsed),
                error: None,
            },
            Err(error) => PropagationReport {
                revision: Some(applied.revision),
                changed: applied.changed,
                elapsed: None,
                error: Some(format!(
                    "the gateway did not serve revision {}: {error}",
                    applied.revision
                )),
            },
        }
    }

    /// `GET <path>/clear` through the same route (the prefix rewrite maps it to `/color/clear`).
    async fn clear_gateway_stats(&mut self, request: &TrafficRequest) -> Result<(), String> {
        let path = request
            .path_and_query
            .split('?')
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        let clear = TrafficRequest {
            path_and_query: format!("{path}/clear"),
            method: http::Method::GET,
            ..request.clone()
        };
        let limits = TrafficLimits {
            concurrency: 1,
            max_requests: 1,
            deadline: self.settings.request_timeout,
            request_timeout: self.settings.request_timeout,
            loopback_only: self.settings.loopback_only,
        };
        let mut reply = None;
        traffic::drive(&clear, &limits, |r| {
            reply = Some(r);
            Flow::Stop
        })
        .await
        .map_err(|error| error.to_string())?;
        match reply {
            Some(reply)
                if reply.status == Some(http::StatusCode::OK)
                    && reply.body.as_ref() == b"cleared" =>
            {
                Ok(())
            }
            Some(reply) => Err(format!(
                "stats cross-check: GET {} answered {} {:?}, not 200 \"cleared\"",
                clear.path_and_query,
                reply.status.map_or_else(
                    || reply.error.clone().unwrap_or_default(),
                    |s| s.as_u16().to_string()
                ),
                reply.body_text()
            )),
            None => Err(format!(
                "stats cross-check: GET {} got no reply",
                clear.path_and_query
            )),
        }
    }

    fn narrate_traffic(&mut self, traffic: &TrafficStep, max_requests: u64) {
        if traffic.requests == Some(10)
            && traffic.method == "GET"
            && traffic.headers.is_empty()
            && traffic.host.is_none()
        {
            self.say(format_args!(
                "$ for i in {{1..10}}; do curl $(glooctl proxy url){}; echo; done",
                traffic.path
            ));
            return;
        }
        let what = match &traffic.expect.split {
            Some(split) => format!(
                "checking the split by {} against {}",
                key_name(split.by),
                split
                    .weights
                    .iter()
                    .map(|(name, weight)| format!("{name} {weight}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "checking every reply".to_owned(),
        };
        self.say(format_args!(
            "# {} up to {max_requests} requests to $(glooctl proxy url){} over {} connections, {what}",
            traffic.method, traffic.path, traffic.concurrency
        ));
    }
}

fn build_request(base: &url::Url, traffic: &TrafficStep) -> Result<TrafficRequest, String> {
    let method = http::Method::from_bytes(traffic.method.as_bytes())
        .map_err(|_| format!("traffic.method {:?} is not an HTTP method", traffic.method))?;
    let headers = traffic
        .headers
        .iter()
        .map(|(name, value)| {
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|error| format!("traffic.headers: {name:?}: {error}"))?;
            let value = http::HeaderValue::from_str(value)
                .map_err(|error| format!("traffic.headers.{name}: {value:?}: {error}"))?;
            Ok((header, value))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TrafficRequest {
        base: base.clone(),
        path_and_query: traffic.path.clone(),
        method,
        host: traffic.host.clone(),
        headers,
    })
}

/// The stats module's view of a configured split.
pub(crate) fn split_spec(split: &SplitExpect) -> stats::SplitSpec {
    stats::SplitSpec {
        destinations: split
            .weights
            .iter()
            .map(|(name, weight)| (name.clone(), *weight))
            .collect(),
    }
}

pub(crate) fn key_name(key: SplitKey) -> &'static str {
    match key {
        SplitKey::Color => "color",
        SplitKey::Shape => "shape",
        SplitKey::EchoService => "echoService",
        SplitKey::Body => "body",
    }
}

/// One paragraph per split verdict: shares with intervals, the achieved deviation, leak bounds.
pub(crate) fn describe_verdict(split: &SplitReport) -> String {
    let verdict = &split.verdict;
    let mut text = format!(
        "# split by {}: {} after {} replies (p = {:.3e}, achieved minimum detectable deviation {:.3} vs {:.3} asked)",
        key_name(split.by),
        outcome_label(verdict.outcome),
        verdict.n,
        verdict.p_value,
        verdict.achieved_min_detectable_deviation,
        split.min_detectable_deviation
    );
    for destination in &verdict.destinations {
        let _ = write!(
            text,
            "\n#   {:<10} expected {:.3}  observed {:.3} [{:.3}, {:.3}]  ({} replies)",
            destination.name,
            destination.expected_share,
            destination.observed_share,
            destination.interval.0,
            destination.interval.1,
            destination.observed
        );
    }
    if let Some(bound) = verdict.leak_upper_bound {
        let zero: Vec<&str> = split
            .weights
            .iter()
            .filter(|(_, w)| **w == 0)
            .map(|(n, _)| n.as_str())
            .collect();
        let _ = write!(
            text,
            "\n#   zero-weight {}: leak rate < {bound:.2e} at the check's confidence",
            zero.join(", ")
        );
        if let Some(guarantee) = &verdict.leak_guarantee {
            let _ = write!(
                text,
                "; a leak of {} would have been caught within these {} requests with probability \
                 {:.6} (declared {}, from {} requests on)",
                percent(guarantee.rate),
                verdict.n,
                guarantee.achieved,
                guarantee.power,
                guarantee.required_requests
            );
        }
    }
    if let Some(connection) = split.connection_check.as_ref().filter(|c| c.applies) {
        let _ = write!(
            text,
            "\n#   connection independence: {} after {} replies over {} connections ({:.1}% of \
             replies repeated their connection's previous destination, {:.1}% expected; p = {:.3e}, \
             alpha {:.2e})",
            outcome_label(connection.outcome),
            connection.n,
            connection.connections,
            connection.observed_repeat_share * 100.0,
            connection.iid_repeat_share * 100.0,
            connection.p_value,
            connection.alpha
        );
    }
    text
}

/// The share of a split step's budget given to its connection-independence check, when there is
/// one (two or more positive-weight destinations). The test is far more powerful against a sticky
/// gateway than the split check against a 5-point deviation, so a tenth is plenty; the split check
/// keeps nine tenths, which lengthens its plan by about 1 %.
const CONNECTION_ALPHA_SHARE: f64 = 0.1;

/// The split check's settings and the connection-independence check of one split step, sharing
/// the step's `alpha`.
fn step_checks(
    split: &SplitExpect,
    settings: stats::CheckSettings,
) -> Result<(stats::CheckSettings, Option<stats::ConnectionCheck>), stats::StatsError> {
    let spec = split_spec(split);
    let connection = stats::ConnectionCheck::new(&spec, settings.alpha * CONNECTION_ALPHA_SHARE)?;
    if !connection.applies() {
        return Ok((settings, None));
    }
    let split_settings = stats::CheckSettings {
        alpha: settings.alpha * (1.0 - CONNECTION_ALPHA_SHARE),
        ..settings
    };
    Ok((split_settings, Some(connection)))
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

pub(crate) fn outcome_label(outcome: stats::Outcome) -> &'static str {
    match outcome {
        stats::Outcome::Pass => "pass",
        stats::Outcome::Fail => "FAIL",
        stats::Outcome::Inconclusive => "INCONCLUSIVE",
    }
}

fn cross_check(tally: &Tally<'_>, concurrency: usize) -> CrossCheckReport {
    let Some(gateway) = tally.cross_last_stats.clone() else {
        return CrossCheckReport {
            window: 0,
            client: BTreeMap::new(),
            gateway: BTreeMap::new(),
            max_difference: 0.0,
            tolerance: 0.0,
            agrees: false,
            note: Some("no colorgateway reply to compare with".to_owned()),
        };
    };
    if tally.cross_flavors.len() > 1 {
        return CrossCheckReport {
            window: 0,
            client: BTreeMap::new(),
            gateway,
            max_difference: 0.0,
            tolerance: 0.0,
            agrees: false,
            note: Some(
                "replies came from both colorgateway versions, each with its own histogram; route the \
                 cross-check to one gateway"
                    .to_owned(),
            ),
        };
    }
    let window = tally.cross_colors.len().min(GATEWAY_STATS_WINDOW);
    let recent = &tally.cross_colors[tally.cross_colors.len() - window..];
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for color in recent {
        *counts.entry(color.clone()).or_default() += 1;
    }
    let client: BTreeMap<String, f64> = counts
        .into_iter()
        .map(|(color, n)| (color, n as f64 / window as f64))
        .collect();
    let colors: BTreeSet<&String> = client.keys().chain(gateway.keys()).collect();
    let max_difference = colors
        .iter()
        .map(|color| {
            (client.get(*color).copied().unwrap_or(0.0)
                - gateway.get(*color).copied().unwrap_or(0.0))
            .abs()
        })
        .fold(0.0, f64::max);
    // Rounding to 2 decimals moves a share by at most 0.005; replies still in flight when the last
    // one was answered can be counted on one side and not yet on the other.
    let tolerance = 0.005 + concurrency as f64 / window as f64 + 1e-9;
    CrossCheckReport {
        window: window as u64,
        client,
        gateway,
        max_difference,
        tolerance,
        agrees: max_difference <= tolerance,
        note: None,
    }
}

fn progress_bar(enabled: bool, length: u64, message: &str) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(length);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg:40!} [{bar:30}] {pos}/{len} {per_sec} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
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
    use super::*;

    fn tally_with(colors: &[&str], stats: &[(&str, f64)], step: &TrafficStep) -> CrossCheckReport {
        let tally = Tally {
            step,
            sample_limit: 0,
            passing: 0,
            failing: 0,
            by_check: BTreeMap::new(),
            samples: Vec::new(),
            shown: Vec::new(),
            records: Vec::new(),
            counts: BTreeMap::new(),
            sequential: None,
            connection: None,
            epoch_destinations: BTreeSet::new(),
            epoch_replies: 0,
            decided_at: None,
            connections: BTreeSet::new(),
            cross_colors: colors.iter().map(|c| (*c).to_owned()).collect(),
            cross_flavors: BTreeSet::from(["v1"]),
            cross_last_stats: Some(stats.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect()),
        };
        cross_check(&tally, 1)
    }

    fn step() -> TrafficStep {
        serde_norway::from_str("path: /appmesh/color\nrequests: 3\n").unwrap()
    }

    #[test]
    fn cross_check_accepts_rounding_and_rejects_real_differences() {
        let step = step();
        let colors: Vec<&str> = (0..300)
            .map(|i| ["white", "blue", "black"][i % 3])
            .collect();
        let report = tally_with(
            &colors,
            &[("black", 0.33), ("blue", 0.33), ("white", 0.33)],
            &step,
        );
        assert!(report.agrees, "{report:?}");
        assert_eq!(report.window, 300);
        let report = tally_with(
            &colors,
            &[("black", 0.2), ("blue", 0.4), ("white", 0.4)],
            &step,
        );
        assert!(!report.agrees);
        assert!(
            (report.max_difference - (1.0 / 3.0 - 0.2)).abs() < 1e-9,
            "{report:?}"
        );
    }

    #[test]
    fn connections_that_all_saw_one_destination_are_renewed_until_two_appear() {
        let step: TrafficStep = serde_norway::from_str(
            "path: /\nconcurrency: 2\nexpect:\n  split: { by: body, weights: { a: 80, b: 20 } }\n",
        )
        .unwrap();
        let split = step.expect.split.as_ref().unwrap();
        let (settings, connection) = step_checks(split, stats::CheckSettings::default()).unwrap();
        assert!(connection.is_some(), "two positive weights");
        assert!((settings.alpha - 0.9e-4).abs() < 1e-15, "{settings:?}");
        let mut tally = Tally {
            step: &step,
            sample_limit: 0,
            passing: 0,
            failing: 0,
            by_check: BTreeMap::new(),
            samples: Vec::new(),
            shown: Vec::new(),
            records: Vec::new(),
            counts: BTreeMap::new(),
            sequential: None,
            connection,
            epoch_destinations: BTreeSet::new(),
            epoch_replies: 0,
            decided_at: None,
            connections: BTreeSet::new(),
            cross_colors: Vec::new(),
            cross_flavors: BTreeSet::new(),
            cross_last_stats: None,
        };
        let reply = |index: u64, connection: u32, body: &'static str| Reply {
            index,
            worker: 0,
            connection,
            status: Some(http::StatusCode::OK),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
            latency: Duration::ZERO,
            error: None,
        };
        // Eight replies per connection, all from `a`: renew.
        for index in 0..15 {
            assert_eq!(
                tally.observe(reply(index, index as u32 % 2, "a")),
                Flow::Continue
            );
        }
        assert_eq!(tally.observe(reply(15, 1, "a")), Flow::Reconnect);
        // The new connections see `b` too: no more renewals.
        assert_eq!(tally.observe(reply(16, 2, "b")), Flow::Continue);
        for index in 17..100 {
            assert_eq!(
                tally.observe(reply(index, 2 + index as u32 % 2, "a")),
                Flow::Continue
            );
        }
        assert_eq!(tally.connections.len(), 4);
        assert_eq!(
            tally.connection.as_ref().map(|c| c.verdict().outcome),
            Some(stats::Outcome::Pass)
        );
        // A lone positive weight has no connection check, so nothing is renewed.
        let lone: SplitExpect =
            serde_norway::from_str("by: body\nweights: { a: 0, b: 100 }\n").unwrap();
        let (settings, connection) = step_checks(&lone, stats::CheckSettings::default()).unwrap();
        assert!(connection.is_none());
        assert_eq!(settings.alpha, 1e-4);
    }

    #[test]
    fn cross_check_uses_the_last_thousand_replies() {
        let step = step();
        let mut colors = vec!["red"; 500];
        colors.extend(std::iter::repeat_n("blue", 1000));
        let report = tally_with(&colors, &[("blue", 1.0)], &step);
        assert_eq!(report.window, 1000);
        assert!(report.agrees, "{report:?}");
    }
}

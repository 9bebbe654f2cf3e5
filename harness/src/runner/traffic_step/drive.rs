//! Driving a traffic step: every reply is classified, logged, fed to the live split checks and
//! the cross-check sample, and decides whether traffic continues, stops or renews its
//! connections.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Instant;

use crate::classify::{self, CheckKind, ReplyView, Violation};
use crate::scenario::TrafficStep;
use crate::stats;
use crate::traffic::{Flow, Reply};

use super::judge::CrossCheckSample;
use super::plan::{LiveChecks, SampleUnit};
use super::record::ReplyLog;

/// Counted replies per connection after which connections that all saw the same destination are
/// renewed (see [`SplitObserver::observe`]).
const FRESH_CONNECTIONS_AFTER: u64 = 8;

/// What a traffic step accumulates while its traffic runs.
pub(super) struct Observer<'a> {
    step: &'a TrafficStep,
    pub(super) log: ReplyLog,
    pub(super) split: SplitObserver,
    pub(super) cross: CrossCheckSample,
    /// The judged colorgateway replies and the traces they name, for the trace check.
    pub(super) traced: Vec<crate::xray::TracedReply>,
}

impl<'a> Observer<'a> {
    pub(super) fn new(step: &'a TrafficStep, checks: LiveChecks, sample_limit: usize) -> Self {
        Self {
            step,
            log: ReplyLog::new(sample_limit),
            split: SplitObserver::new(checks, step.concurrency),
            cross: CrossCheckSample::default(),
            traced: Vec::new(),
        }
    }

    /// The failing replies the step tolerates (`expect.maxErrors`).
    pub(super) fn max_errors(&self) -> u64 {
        self.step.expect.max_errors
    }

    /// Judges one reply exactly, records it and says whether traffic goes on.
    pub(super) fn observe(&mut self, reply: Reply) -> Flow {
        self.observe_as(&reply, true).flow
    }

    /// [`Observer::observe`], with the split checks fed only when `judged` (a shift step judges
    /// the new weights only on the replies the new configuration served).
    pub(super) fn observe_as(&mut self, reply: &Reply, judged: bool) -> Observed {
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
            match classify::destination(
                split.by,
                reply.status.map_or(0, |s| s.as_u16()),
                &reply.body,
            ) {
                Ok(label) => destination = Some(label),
                Err(error) => violations.push(Violation {
                    check: CheckKind::Destination,
                    message: error.to_string(),
                }),
            }
        }
        if violations.is_empty() && self.step.expect.stats_cross_check {
            match classify::parse_gateway(&reply.body) {
                Ok(parsed) => self.cross.observe(parsed),
                Err(error) => violations.push(Violation {
                    check: CheckKind::Shape,
                    message: error.to_string(),
                }),
            }
        }
        if self.step.show_replies {
            self.log.show(reply);
        }
        self.log.record(reply, destination.clone());
        if !violations.is_empty() {
            self.log.fail(reply, violations);
            // A gateway answering errors is a failure whatever the split says; stop early.
            let flow = if self.log.failing > self.step.expect.max_errors {
                Flow::Stop
            } else {
                Flow::Continue
            };
            return Observed {
                flow,
                destination: None,
                failed: true,
            };
        }
        self.log.passing += 1;
        if judged
            && self.step.expect.trace != Some(false)
            && let Ok(parsed) = classify::parse_gateway(&reply.body)
        {
            self.traced
                .push(crate::xray::TracedReply::new(&reply.headers, parsed.color));
        }
        let flow = match &destination {
            Some(label) if judged => {
                self.split
                    .observe(reply.index, reply.connection, label.clone())
            }
            _ => Flow::Continue,
        };
        Observed {
            flow,
            destination,
            failed: false,
        }
    }
}

/// What [`Observer::observe_as`] made of one reply.
pub(super) struct Observed {
    /// Whether traffic goes on.
    pub(super) flow: Flow,
    /// The destination of a reply that passed the exact checks of a split step.
    pub(super) destination: Option<String>,
    /// The reply failed the exact checks.
    pub(super) failed: bool,
}

/// The live split checks and what they have counted so far.
pub(super) struct SplitObserver {
    /// Counted samples by destination (fixed-sample and round-robin checks are judged on these at
    /// the end); a unit's repeated requests are not samples.
    pub(super) counts: BTreeMap<String, u64>,
    pub(super) checks: LiveChecks,
    /// Distinct connections the counted replies came over.
    pub(super) connections: BTreeSet<u32>,
    /// When a live check decided (and so stopped traffic).
    pub(super) decided_at: Option<Instant>,
    concurrency: usize,
    /// Destinations of the counted replies since the connections were last renewed.
    epoch_destinations: BTreeSet<String>,
    epoch_replies: u64,
}

impl SplitObserver {
    fn new(checks: LiveChecks, concurrency: usize) -> Self {
        Self {
            counts: BTreeMap::new(),
            checks,
            connections: BTreeSet::new(),
            decided_at: None,
            concurrency,
            epoch_destinations: BTreeSet::new(),
            epoch_replies: 0,
        }
    }

    /// Counts a reply (request `index`) that passed the exact checks and came from `label`.
    fn observe(&mut self, index: u64, connection: u32, label: String) -> Flow {
        self.connections.insert(connection);
        let unit = match &self.checks.unit {
            SampleUnit::Request | SampleUnit::Pick => None,
            SampleUnit::Connection => Some(u64::from(connection)),
            SampleUnit::Key(key) => Some(key.unit(index)),
        };
        if let (Some(unit), Some(stickiness)) = (unit, &mut self.checks.stickiness) {
            match stickiness.observe(unit, &label) {
                stats::UnitReply::Sample => {}
                stats::UnitReply::Repeat { consistent: true } => return Flow::Continue,
                stats::UnitReply::Repeat { consistent: false } => {
                    // A declared sticky gateway broke its promise: the step fails; stop here.
                    self.decided_at = Some(Instant::now());
                    return Flow::Stop;
                }
            }
        }
        if let Some(check) = &mut self.checks.connection
            && check.observe_request(index, connection, &label) == stats::ConnectionState::Fail
        {
            // The step fails whatever the split says; stop here.
            *self.counts.entry(label.clone()).or_default() += 1;
            if let Some(sequential) = &mut self.checks.sequential {
                sequential.observe(&label);
            }
            self.decided_at = Some(Instant::now());
            return Flow::Stop;
        }
        let mut flow = Flow::Continue;
        if self.checks.connection.is_some() {
            // Connections that have all seen one destination cannot show a per-connection
            // pick (every connection of a sticky gateway may have drawn the same one): renew
            // them until two destinations appear. A correct gateway seldom triggers this
            // (80/20 over the default 4 connections: 0.8^32 < 1e-3), and then harmlessly.
            self.epoch_replies += 1;
            self.epoch_destinations.insert(label.clone());
            if self.epoch_destinations.len() == 1
                && self.epoch_replies >= FRESH_CONNECTIONS_AFTER * self.concurrency as u64
            {
                self.epoch_destinations.clear();
                self.epoch_replies = 0;
                flow = Flow::Reconnect;
            }
        }
        if let Some(check) = &mut self.checks.sequential {
            check.observe(&label);
            *self.counts.entry(label).or_default() += 1;
            let state = check.state();
            if state != stats::SequentialState::Continue {
                self.decided_at.get_or_insert_with(Instant::now);
                return Flow::Stop;
            }
        } else {
            *self.counts.entry(label).or_default() += 1;
        }
        flow
    }
}

/// A progress bar on stderr, hidden unless asked for and stderr is a terminal.
pub(super) fn progress_bar(enabled: bool, length: u64, message: &str) -> indicatif::ProgressBar {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runner::traffic_step::plan::step_checks;
    use crate::scenario::SplitExpect;

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
        let checks = LiveChecks {
            sequential: None,
            connection,
            ..LiveChecks::default()
        };
        let mut observer = Observer::new(&step, checks, 0);
        let reply = |index: u64, connection: u32, body: &'static str| Reply {
            index,
            worker: 0,
            connection,
            sent: Instant::now(),
            status: Some(http::StatusCode::OK),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
            latency: Duration::ZERO,
            error: None,
        };
        // Eight replies per connection, all from `a`: renew.
        for index in 0..15 {
            assert_eq!(
                observer.observe(reply(index, index as u32 % 2, "a")),
                Flow::Continue
            );
        }
        assert_eq!(observer.observe(reply(15, 1, "a")), Flow::Reconnect);
        // The new connections see `b` too: no more renewals.
        assert_eq!(observer.observe(reply(16, 2, "b")), Flow::Continue);
        for index in 17..100 {
            assert_eq!(
                observer.observe(reply(index, 2 + index as u32 % 2, "a")),
                Flow::Continue
            );
        }
        assert_eq!(observer.split.connections.len(), 4);
        assert_eq!(
            observer
                .split
                .checks
                .connection
                .as_ref()
                .map(|c| c.verdict().outcome),
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
    fn a_declared_sticky_unit_counts_once_and_stops_at_the_first_disagreement() {
        let step: TrafficStep = serde_norway::from_str(
            "path: /\nexpect:\n  split: { by: body, weights: { a: 80, b: 20 }, selection: perConnection }\n",
        )
        .unwrap();
        let (plan, checks) =
            super::super::plan::TrafficPlan::new(&step, stats::CheckSettings::default(), 1)
                .unwrap();
        assert!(plan.split.is_some());
        let mut observer = Observer::new(&step, checks, 0);
        let reply = |index: u64, connection: u32, body: &'static str| Reply {
            index,
            worker: 0,
            connection,
            sent: std::time::Instant::now(),
            status: Some(http::StatusCode::OK),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
            latency: Duration::ZERO,
            error: None,
        };
        assert_eq!(observer.observe(reply(0, 0, "a")), Flow::Continue);
        assert_eq!(observer.observe(reply(1, 0, "a")), Flow::Continue);
        assert_eq!(observer.observe(reply(2, 1, "b")), Flow::Continue);
        assert_eq!(
            observer.split.counts.values().sum::<u64>(),
            2,
            "two connections, two samples"
        );
        assert_eq!(observer.observe(reply(3, 1, "a")), Flow::Stop);
        let verdict = observer.split.checks.stickiness.as_ref().unwrap().verdict();
        assert_eq!(verdict.outcome, stats::Outcome::Fail);
        assert_eq!(
            (verdict.units, verdict.repeats, verdict.mismatches),
            (2, 2, 1)
        );
    }
}

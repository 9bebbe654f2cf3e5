//! Recording a traffic step: the reply log kept while traffic runs, the step's report built from
//! it, and the paragraph the step prints about a split verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::classify::{CheckKind, Violation};
use crate::scenario::TrafficStep;
use crate::traffic::{Reply, TrafficSummary};

use super::super::records::{
    CrossCheckReport, FailureSample, PropagationReport, RequestRecord, ShiftReport, SplitReport,
    TrafficReport, key_name, outcome_label,
};
use super::percent;

/// Bodies kept in reports are cut here: enough to see what went wrong.
const MAX_SAMPLE_BODY: usize = 2048;

/// Every reply as the report keeps it, and the exact checks' tally.
#[derive(Debug)]
pub(super) struct ReplyLog {
    /// Failing replies kept verbatim, at most this many.
    sample_limit: usize,
    pub(super) passing: u64,
    pub(super) failing: u64,
    pub(super) by_check: BTreeMap<CheckKind, u64>,
    pub(super) samples: Vec<FailureSample>,
    /// `(request index, body)` for `showReplies` steps, in arrival order.
    shown: Vec<(u64, String)>,
    pub(super) records: Vec<RequestRecord>,
}

impl ReplyLog {
    pub(super) fn new(sample_limit: usize) -> Self {
        Self {
            sample_limit,
            passing: 0,
            failing: 0,
            by_check: BTreeMap::new(),
            samples: Vec::new(),
            shown: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Keeps the reply's body for `showReplies`.
    pub(super) fn show(&mut self, reply: &Reply) {
        self.shown.push((reply.index, reply.body_text()));
    }

    /// Keeps one line for the reply; `destination` for replies that passed a split step's exact
    /// checks.
    pub(super) fn record(&mut self, reply: &Reply, destination: Option<String>) {
        self.records.push(RequestRecord {
            index: reply.index,
            connection: reply.connection,
            status: reply.status.map(|s| s.as_u16()),
            latency_us: u64::try_from(reply.latency.as_micros()).unwrap_or(u64::MAX),
            destination,
        });
    }

    /// Counts a reply that failed the exact checks and keeps it verbatim while there is room.
    pub(super) fn fail(&mut self, reply: &Reply, violations: Vec<Violation>) {
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
    }

    /// The step's report: the request, the log and the verdicts.
    pub(super) fn into_report(
        self,
        base: &url::Url,
        traffic: &TrafficStep,
        summary: TrafficSummary,
        shown_replies: Vec<String>,
        verdicts: Verdicts,
    ) -> TrafficReport {
        TrafficReport {
            url: base.to_string(),
            method: traffic.method.clone(),
            path: traffic.path.clone(),
            concurrency: traffic.concurrency,
            requested: traffic.requests,
            summary,
            passing_replies: self.passing,
            failing_replies: self.failing,
            max_errors: traffic.expect.max_errors,
            failures_by_check: self.by_check,
            failure_samples: self.samples,
            shown_replies,
            split: verdicts.split,
            propagation: verdicts.propagation,
            cross_check: verdicts.cross_check,
            shift: verdicts.shift,
            trace: verdicts.trace,
            records: self.records,
        }
    }

    /// The shown bodies in request order (workers answer out of order).
    pub(super) fn take_shown(&mut self) -> Vec<String> {
        let mut shown = std::mem::take(&mut self.shown);
        shown.sort_by_key(|(index, _)| *index);
        shown.into_iter().map(|(_, body)| body).collect()
    }
}

/// The judgements a traffic report carries besides the reply log.
pub(super) struct Verdicts {
    pub(super) split: Option<SplitReport>,
    pub(super) propagation: Option<PropagationReport>,
    pub(super) cross_check: Option<CrossCheckReport>,
    pub(super) shift: Option<ShiftReport>,
    pub(super) trace: Option<crate::xray::TraceReport>,
}

/// One paragraph per split verdict: shares with intervals, the achieved deviation, leak bounds.
pub(super) fn describe_verdict(split: &SplitReport) -> String {
    let verdict = &split.verdict;
    let mut text = if let Some(round_robin) = &split.round_robin {
        format!(
            "# split by {}: {} after {} consecutive picks (declared round robin, {} scheduler{}; \
             each count must lie within the smooth weighted round robin bound)",
            key_name(split.by),
            outcome_label(verdict.outcome),
            round_robin.n,
            round_robin.schedulers,
            if round_robin.schedulers == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "# split by {}: {} after {} {}s (p = {:.3e}; largest deviation not excluded {:.3}, a pass needs <= {:.3} at miss rate {}{})",
            key_name(split.by),
            outcome_label(verdict.outcome),
            verdict.n,
            split.sample_unit,
            verdict.p_value,
            verdict.unexcluded_deviation,
            split.min_detectable_deviation,
            crate::runner::short_probability(verdict.miss_rate),
            verdict
                .detectable_deviation
                .map(|d| format!("; this n detects {d:.3} with power {}", verdict.power))
                .unwrap_or_default()
        )
    };
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
             replies repeated their connection's previous destination, {:.1}% expected; lag-1 \
             within-connection correlation {:+.3}, design effect {}; p = {:.3e}, alpha {:.2e})",
            outcome_label(connection.outcome),
            connection.n,
            connection.connections,
            connection.observed_repeat_share * 100.0,
            connection.iid_repeat_share * 100.0,
            connection.lag1_correlation,
            connection
                .design_effect
                .map_or_else(|| "unbounded".to_owned(), |d| format!("{d:.2}")),
            connection.p_value,
            connection.alpha
        );
    }
    if let Some(stickiness) = &split.stickiness {
        let _ = write!(
            text,
            "\n#   stickiness per {}: {} ({} repeated requests over {} {}s, {} went elsewhere; a \
             gateway picking per request would have been caught with probability {:.6})",
            stickiness.unit,
            outcome_label(stickiness.outcome),
            stickiness.repeats,
            stickiness.units,
            stickiness.unit,
            stickiness.mismatches,
            stickiness.per_request_detection
        );
    }
    if let Some(note) = &split.leak_note {
        let _ = write!(text, "\n#   leak guarantee: {note}");
    } else {
        let _ = write!(text, "\n#   traffic: {}", split.connection_reuse);
    }
    text
}

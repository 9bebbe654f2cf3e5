//! Judging a traffic step once its traffic stopped: the split verdict, the exact checks'
//! verdict, the connection-independence verdict and the stats cross-check, folded into the
//! step's outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::classify;
use crate::scenario::TrafficStep;
use crate::stats;
use crate::traffic::{StopReason, TrafficSummary};

use super::super::StepOutcome;
use super::super::records::{CrossCheckReport, SplitReport, key_name};
use super::drive::Observer;
use super::plan::TrafficPlan;

/// The colorgateway keeps the last this-many colors for its `stats`.
const GATEWAY_STATS_WINDOW: usize = 1000;

/// The colorgateway replies a stats cross-check compares with.
#[derive(Debug, Default)]
pub(super) struct CrossCheckSample {
    /// Every reply's color, in arrival order.
    colors: Vec<String>,
    /// The colorgateway versions that answered (each keeps its own histogram).
    flavors: BTreeSet<&'static str>,
    /// The `stats` of the last reply.
    last_stats: Option<BTreeMap<String, f64>>,
}

impl CrossCheckSample {
    pub(super) fn observe(&mut self, reply: colorgateway::GatewayReply) {
        self.flavors
            .insert(classify::shape_name(classify::shape_of(&reply)));
        self.colors.push(reply.color);
        self.last_stats = Some(reply.stats);
    }
}

/// What the step concluded: its outcome and every reason it did not pass.
#[derive(Debug)]
pub(super) struct StepVerdict {
    pub(super) outcome: StepOutcome,
    pub(super) messages: Vec<String>,
}

/// Everything the judging needs to know about how traffic ran.
pub(super) struct TrafficRun<'a, 'p> {
    pub(super) traffic: &'a TrafficStep,
    pub(super) plan: &'a TrafficPlan<'p>,
    pub(super) summary: &'a TrafficSummary,
    pub(super) started: Instant,
    pub(super) traffic_deadline: Duration,
}

/// The statistical judgement of the step's split, `None` for steps without one.
pub(super) fn judge_split(
    run: &TrafficRun<'_, '_>,
    observer: &mut Observer<'_>,
) -> Result<Option<SplitReport>, stats::StatsError> {
    let Some(split) = &run.plan.split else {
        return Ok(None);
    };
    let check = &run.plan.check;
    let observed = &mut observer.split;
    let round_robin = split
        .round_robin
        .as_ref()
        .map(|round_robin| round_robin.judge(&observed.counts));
    let mut verdict = match observed.checks.sequential.take() {
        _ if round_robin.is_some() => {
            round_robin_summary(round_robin.as_ref().expect("checked"), check)
        }
        Some(sequential) => {
            let undecided = matches!(sequential.state(), stats::SequentialState::Continue);
            let mut verdict = sequential.verdict();
            if undecided && run.summary.stopped_by == StopReason::Deadline {
                verdict.outcome = stats::Outcome::Inconclusive;
                verdict.reasons.push(format!(
                    "the traffic deadline ({}) passed after {} counted replies, before the \
                     sequential check decided",
                    humantime::format_duration(run.traffic_deadline),
                    verdict.n
                ));
            }
            verdict
        }
        None => stats::judge(&split.spec, &observed.counts, check)?,
    };
    if observer.log.failing > run.traffic.expect.max_errors
        && verdict.outcome == stats::Outcome::Pass
    {
        verdict.outcome = stats::Outcome::Inconclusive;
        verdict
            .reasons
            .push("traffic stopped early because replies failed the exact checks".to_owned());
    }
    let time_to_verdict = observed.decided_at.unwrap_or_else(Instant::now) - run.started;
    Ok(Some(SplitReport {
        by: split.expect.by,
        weights: split.expect.weights.clone(),
        sequential: split.sequential,
        alpha: verdict.alpha,
        min_detectable_deviation: check.min_detectable_deviation,
        power: check.power,
        planned_requests: split
            .round_robin
            .as_ref()
            .map_or(split.plan.requests, stats::RoundRobinCheck::requests),
        cap: run.plan.max_requests,
        verdict,
        time_to_verdict,
        connections: observed.connections.len(),
        connection_check: observed
            .checks
            .connection
            .as_ref()
            .map(stats::ConnectionCheck::verdict),
        correct_gateway: split.sequential.then_some(split.plan.correct_gateway),
        false_red: split.sequential.then(|| {
            split.plan.correct_gateway.false_red() + split.connection_alpha.unwrap_or(0.0)
        }),
        selection: split.expect.selection.clone(),
        sample_unit: split.unit.name(),
        connection_reuse: split.reuse_note(),
        leak_note: split.leak_note(check),
        stickiness: observed
            .checks
            .stickiness
            .as_ref()
            .map(stats::StickinessCheck::verdict),
        round_robin,
    }))
}

/// A round-robin verdict in the shape every report reads: the accepted range of each share as
/// its interval, no alpha spent, a deterministic p-value (0 on failure, 1 otherwise).
fn round_robin_summary(
    round_robin: &stats::RoundRobinVerdict,
    check: &stats::CheckSettings,
) -> stats::SplitVerdict {
    let n = round_robin.n.max(1) as f64;
    let destinations: Vec<stats::DestinationResult> = round_robin
        .destinations
        .iter()
        .map(|d| stats::DestinationResult {
            name: d.name.clone(),
            expected_share: d.expected_share,
            observed: d.observed,
            observed_share: d.observed as f64 / n,
            interval: (
                ((d.expected_count - d.bound) / n).max(0.0),
                ((d.expected_count + d.bound) / n).min(1.0),
            ),
        })
        .collect();
    let zero_weight_leaks = round_robin
        .destinations
        .iter()
        .filter(|d| d.expected_share == 0.0 && d.observed > 0)
        .map(|d| (d.name.clone(), d.observed))
        .chain(round_robin.unknown.iter().cloned())
        .collect();
    stats::SplitVerdict {
        outcome: round_robin.outcome,
        method: stats::CheckMethod::FixedSample {
            tested_destinations: 0,
            planned_requests: round_robin.planned_requests,
        },
        n: round_robin.n,
        alpha: 0.0,
        min_detectable_deviation: check.min_detectable_deviation,
        power: 1.0,
        miss_rate: 0.0,
        statistic: round_robin
            .destinations
            .iter()
            .map(|d| d.deviation.abs())
            .fold(0.0, f64::max),
        p_value: if round_robin.outcome == stats::Outcome::Fail {
            0.0
        } else {
            1.0
        },
        destinations,
        zero_weight_leaks,
        leak_upper_bound: None,
        leak_guarantee: round_robin.leak_guarantee,
        // A deterministic check leaves open exactly the scheduler's bound.
        unexcluded_deviation: round_robin
            .destinations
            .iter()
            .map(|d| d.bound / n)
            .fold(0.0, f64::max),
        detectable_deviation: None,
        reasons: round_robin.reasons.clone(),
    }
}

/// The step's outcome from its verdicts, worst last so the outcome is the worst one.
pub(super) fn step_verdict(
    run: &TrafficRun<'_, '_>,
    observer: &Observer<'_>,
    split: Option<&SplitReport>,
    cross_check: Option<&CrossCheckReport>,
) -> StepVerdict {
    let (traffic, log, summary) = (run.traffic, &observer.log, run.summary);
    let mut messages = Vec::new();
    let mut outcome = StepOutcome::Passed;
    if log.failing > traffic.expect.max_errors {
        outcome = StepOutcome::Failed;
        let by_check: Vec<String> = log
            .by_check
            .iter()
            .map(|(check, n)| format!("{check} {n}"))
            .collect();
        let mut message = format!(
            "{} of {} replies failed the exact checks (maxErrors {}): {}",
            log.failing,
            summary.received,
            traffic.expect.max_errors,
            by_check.join(", ")
        );
        for sample in log.samples.iter().take(3) {
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
        messages.push(message);
    }
    if let Some(requested) = traffic.requests
        && summary.received < requested
        && outcome == StepOutcome::Passed
    {
        outcome = StepOutcome::Failed;
        messages.push(format!(
            "only {} of {requested} replies arrived before the deadline ({})",
            summary.received,
            humantime::format_duration(run.traffic_deadline)
        ));
    }
    if let Some(split) = split {
        if let Some(stickiness) = &split.stickiness
            && stickiness.outcome == stats::Outcome::Fail
        {
            outcome = StepOutcome::Failed;
            messages.push(format!(
                "stickiness per {}: {}",
                stickiness.unit,
                stickiness.reasons.join("; ")
            ));
        }
        if let Some(connection) = &split.connection_check
            && connection.outcome == stats::Outcome::Fail
        {
            outcome = StepOutcome::Failed;
            messages.push(format!(
                "connection independence: {}",
                connection.reasons.join("; ")
            ));
        }
        match split.verdict.outcome {
            stats::Outcome::Pass => {}
            stats::Outcome::Fail => {
                outcome = StepOutcome::Failed;
                messages.push(format!(
                    "split by {}: {}",
                    key_name(split.by),
                    split.verdict.reasons.join("; ")
                ));
            }
            stats::Outcome::Inconclusive => {
                if outcome == StepOutcome::Passed {
                    outcome = StepOutcome::Inconclusive;
                }
                messages.push(format!(
                    "split by {} inconclusive: {}",
                    key_name(split.by),
                    split.verdict.reasons.join("; ")
                ));
            }
        }
    }
    if let Some(cross) = cross_check
        && !cross.agrees
    {
        outcome = StepOutcome::Failed;
        messages.push(format!(
            "stats cross-check: {}",
            cross.note.clone().unwrap_or_else(|| format!(
                "the client and the colorgateway disagree by {:.3} (tolerance {:.3}): client {:?}, gateway {:?}",
                cross.max_difference, cross.tolerance, cross.client, cross.gateway
            ))
        ));
    }
    StepVerdict { outcome, messages }
}

/// The client's split over the colorgateway's window compared with the gateway's own `stats`.
pub(super) fn cross_check(sample: &CrossCheckSample, concurrency: usize) -> CrossCheckReport {
    let Some(gateway) = sample.last_stats.clone() else {
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
    if sample.flavors.len() > 1 {
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
    let window = sample.colors.len().min(GATEWAY_STATS_WINDOW);
    let recent = &sample.colors[sample.colors.len() - window..];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(colors: &[&str], stats: &[(&str, f64)]) -> CrossCheckSample {
        CrossCheckSample {
            colors: colors.iter().map(|c| (*c).to_owned()).collect(),
            flavors: BTreeSet::from(["v1"]),
            last_stats: Some(stats.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect()),
        }
    }

    #[test]
    fn cross_check_accepts_rounding_and_rejects_real_differences() {
        let colors: Vec<&str> = (0..300)
            .map(|i| ["white", "blue", "black"][i % 3])
            .collect();
        let report = cross_check(
            &sample(&colors, &[("black", 0.33), ("blue", 0.33), ("white", 0.33)]),
            1,
        );
        assert!(report.agrees, "{report:?}");
        assert_eq!(report.window, 300);
        let report = cross_check(
            &sample(&colors, &[("black", 0.2), ("blue", 0.4), ("white", 0.4)]),
            1,
        );
        assert!(!report.agrees);
        assert!(
            (report.max_difference - (1.0 / 3.0 - 0.2)).abs() < 1e-9,
            "{report:?}"
        );
    }

    #[test]
    fn cross_check_uses_the_last_thousand_replies() {
        let mut colors = vec!["red"; 500];
        colors.extend(std::iter::repeat_n("blue", 1000));
        let report = cross_check(&sample(&colors, &[("blue", 1.0)]), 1);
        assert_eq!(report.window, 1000);
        assert!(report.agrees, "{report:?}");
    }
}

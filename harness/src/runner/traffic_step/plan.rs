//! Planning a traffic step: the split's checks, their share of the step's alpha, the sample size
//! and the request cap, all settled before the first request goes out.

use crate::scenario::{SplitExpect, TrafficStep};
use crate::stats;

use super::super::key_name;
use super::percent;

/// The share of a split step's budget given to its connection-independence check, when there is
/// one (two or more positive-weight destinations). The test is far more powerful against a sticky
/// gateway than the split check against a 5-point deviation, so a tenth is plenty; the split check
/// keeps nine tenths, which lengthens its plan by about 1 %.
const CONNECTION_ALPHA_SHARE: f64 = 0.1;

/// Why a traffic step cannot be planned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// The split in the step cannot be checked (bad weights, a plan beyond any cap, ...).
    #[error("traffic.expect.split: {0}")]
    Split(#[from] stats::StatsError),
    #[error("traffic.requests is missing and there is no split to plan it")]
    NoRequestCount,
}

/// How a traffic step will send and judge, decided before waiting for the last change.
#[derive(Debug)]
pub(super) struct TrafficPlan<'a> {
    /// The split check's settings: the step's alpha less the connection check's share.
    pub(super) check: stats::CheckSettings,
    /// The most requests the step sends.
    pub(super) max_requests: u64,
    pub(super) split: Option<SplitPlan<'a>>,
}

/// The planned statistical judgement of a split step.
#[derive(Debug)]
pub(super) struct SplitPlan<'a> {
    pub(super) expect: &'a SplitExpect,
    pub(super) spec: stats::SplitSpec,
    pub(super) plan: stats::Plan,
    /// Whether a sequential check stops the step at its verdict (no fixed `requests` given).
    pub(super) sequential: bool,
    /// The alpha of the connection-independence check, when the split has one.
    pub(super) connection_alpha: Option<f64>,
}

/// The checks that watch replies while traffic runs; they move into the driver.
#[derive(Debug, Default)]
pub(super) struct LiveChecks {
    pub(super) sequential: Option<stats::SequentialCheck>,
    /// Whether picks depend on the connection (splits with two or more positive weights).
    pub(super) connection: Option<stats::ConnectionCheck>,
}

impl<'a> TrafficPlan<'a> {
    /// Plans `traffic` with the step's share of the run's budget.
    pub(super) fn new(
        traffic: &'a TrafficStep,
        step_check: stats::CheckSettings,
    ) -> Result<(Self, LiveChecks), PlanError> {
        let Some(split) = traffic.expect.split.as_ref() else {
            let max_requests = traffic.requests.ok_or(PlanError::NoRequestCount)?;
            let plan = Self {
                check: step_check,
                max_requests,
                split: None,
            };
            return Ok((plan, LiveChecks::default()));
        };
        let (check, connection) = step_checks(split, step_check)?;
        let spec = split_spec(split);
        let sequential = split.sequential && traffic.requests.is_none();
        let sequential_check = if sequential {
            Some(stats::SequentialCheck::new(&spec, &check)?)
        } else {
            None
        };
        // The sequential check plans as it is built; planning once more would double the work.
        let plan = match &sequential_check {
            Some(sequential) => sequential.plan().clone(),
            None => stats::plan(&spec, &check)?,
        };
        let max_requests = match traffic.requests {
            Some(requests) => requests,
            None if sequential => plan.sequential_cap,
            None => plan.requests,
        };
        let split = SplitPlan {
            expect: split,
            spec,
            plan,
            sequential,
            connection_alpha: connection.as_ref().map(stats::ConnectionCheck::alpha),
        };
        let live = LiveChecks {
            sequential: sequential_check,
            connection,
        };
        Ok((
            Self {
                check,
                max_requests,
                split: Some(split),
            },
            live,
        ))
    }

    /// The `# split by ...` line: the plan, its guarantees and how the step stops.
    pub(super) fn describe(&self) -> Option<String> {
        let split = self.split.as_ref()?;
        let (plan, check) = (&split.plan, &self.check);
        let cap_note = if split.sequential {
            format!(
                "; sequential, stops at the verdict, at most {}",
                plan.sequential_cap
            )
        } else {
            String::new()
        };
        let connection_note = split
            .connection_alpha
            .map(|alpha| format!("; connection independence alpha {alpha:.2e}"))
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
        Some(format!(
            "# split by {}: planned {} requests (alpha {:.2e}, deviation {}, power {}){leak_note}{cap_note}{connection_note}",
            key_name(split.expect.by),
            plan.requests,
            check.alpha,
            check.min_detectable_deviation,
            check.power
        ))
    }
}

/// The stats module's view of a configured split.
fn split_spec(split: &SplitExpect) -> stats::SplitSpec {
    stats::SplitSpec {
        destinations: split
            .weights
            .iter()
            .map(|(name, weight)| (name.clone(), *weight))
            .collect(),
    }
}

/// The split check's settings and the connection-independence check of one split step, sharing
/// the step's `alpha`.
pub(super) fn step_checks(
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

/// The spec and settings a split step's check runs with, given the step's share of the budget
/// (the connection check, where one runs, takes its part of it).
pub(crate) fn split_check(
    split: &SplitExpect,
    step_check: stats::CheckSettings,
) -> Result<(stats::SplitSpec, stats::CheckSettings), stats::StatsError> {
    let (check, _) = step_checks(split, step_check)?;
    Ok((split_spec(split), check))
}

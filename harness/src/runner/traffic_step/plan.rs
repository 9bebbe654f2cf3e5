//! Planning a traffic step: the split's checks, their share of the step's alpha, the sample size
//! and the request cap, all settled before the first request goes out.
//!
//! The split's declared `selection` decides what one sample is ([`SampleUnit`]) and how the
//! traffic generator uses connections and keys ([`traffic::DriveOptions`]):
//!
//! | selection | sample | connections | other checks |
//! | --- | --- | --- | --- |
//! | `random` | a request | keep-alive (fresh per request with a zero-weight destination) | connection independence (keep-alive only) |
//! | `perConnection` | a connection | fresh per sample; 8 connections carry 5 requests | stickiness (per connection) |
//! | `hash` | a fresh random key | keep-alive (fresh per request with a zero-weight destination); 8 keys are sent 5 times | stickiness (per key) |
//! | `roundRobin` | a pick | keep-alive (fresh per request with a zero-weight destination) | none: deterministic bound, no budget |
//!
//! Renewing the connection for every request when the split has a zero-weight destination is what
//! makes the leak guarantee hold whatever the gateway's connection reuse: a gateway that picks once
//! per connection then makes one independent pick per request too, so a leak of 1 % of its
//! connections is a leak of 1 % of the samples, caught within the 917 samples the split check
//! needs before it may pass with probability 1 − 1e-4. On keep-alive connections it would be caught
//! with the probability that one of the few connections leaked (0.039 over four connections).

use crate::scenario::{HashKey, Selection, SplitExpect, TrafficStep};
use crate::stats;
use crate::traffic;

use super::super::key_name;
use super::percent;

/// The share of a split step's budget given to its connection-independence check, when there is
/// one (two or more positive-weight destinations). The test is far more powerful against a sticky
/// gateway than the split check against a 5-point deviation, so a tenth is plenty; the split check
/// keeps nine tenths, which lengthens its plan by about 1 %.
const CONNECTION_ALPHA_SHARE: f64 = 0.1;

/// Units (connections or keys) that carry several requests for the stickiness check.
pub(super) const STICKY_UNITS: u32 = 8;
/// Requests each of them carries.
pub(super) const STICKY_REQUESTS_EACH: u32 = 5;

/// What one sample of the split check is.
#[derive(Debug, Clone, Default)]
pub(super) enum SampleUnit {
    /// Every counted reply.
    #[default]
    Request,
    /// The first counted reply of each connection.
    Connection,
    /// The first counted reply of each key.
    Key(traffic::RequestKey),
    /// Every counted reply, judged as consecutive round-robin picks.
    Pick,
}

impl SampleUnit {
    pub(super) fn name(&self) -> &'static str {
        match self {
            SampleUnit::Request => "request",
            SampleUnit::Connection => "connection",
            SampleUnit::Key(_) => "key",
            SampleUnit::Pick => "pick",
        }
    }
}

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
    /// What one sample is.
    pub(super) unit: SampleUnit,
    /// How the generator uses connections and keys.
    pub(super) drive: traffic::DriveOptions,
    /// The deterministic check of a `roundRobin` split.
    pub(super) round_robin: Option<stats::RoundRobinCheck>,
}

impl SplitPlan<'_> {
    /// Whether the split has a zero-weight destination (the leak guarantee applies).
    pub(super) fn has_zero_weight(&self) -> bool {
        self.expect.weights.values().any(|w| *w == 0)
    }

    /// How connections are used, for the report.
    pub(super) fn reuse_note(&self) -> String {
        match (self.drive.reuse, &self.unit) {
            (traffic::ConnectionReuse::KeepAlive, _) => "keep-alive connections".to_owned(),
            (
                traffic::ConnectionReuse::Renew {
                    long_lived,
                    requests_each,
                },
                SampleUnit::Connection,
            ) => {
                format!(
                    "a fresh connection per sample; the first {long_lived} carry {requests_each} \
                     requests each for the stickiness check"
                )
            }
            (traffic::ConnectionReuse::Renew { .. }, _) => {
                "a fresh connection for every request".to_owned()
            }
        }
    }

    /// The leak guarantee as the report states it, for splits with a zero-weight destination.
    pub(super) fn leak_note(&self, settings: &stats::CheckSettings) -> Option<String> {
        if !self.has_zero_weight() {
            return None;
        }
        let required = self.round_robin.as_ref().map_or(
            self.plan.leak_requests.unwrap_or(0),
            stats::RoundRobinCheck::requests,
        );
        Some(format!(
            "a gateway leaking {} of its picks to zero-weight destinations is caught with \
             probability {} within {required} {}s whatever its connection reuse: {}, so a \
             gateway that picks per connection (leaking {} of its connections) is caught with the \
             same probability",
            percent(settings.min_detectable_leak),
            settings.leak_power,
            self.unit.name(),
            self.reuse_note(),
            percent(settings.min_detectable_leak),
        ))
    }
}

/// The checks that watch replies while traffic runs; they move into the driver.
#[derive(Debug, Default)]
pub(super) struct LiveChecks {
    pub(super) sequential: Option<stats::SequentialCheck>,
    /// Whether picks depend on the connection (splits with two or more positive weights).
    pub(super) connection: Option<stats::ConnectionCheck>,
    /// Whether repeated requests of a unit got the same destination (`perConnection`, `hash`).
    pub(super) stickiness: Option<stats::StickinessCheck>,
    /// What one sample is.
    pub(super) unit: SampleUnit,
}

impl<'a> TrafficPlan<'a> {
    /// Plans `traffic` with the step's share of the run's budget; `seed` seeds hash keys.
    pub(super) fn new(
        traffic: &'a TrafficStep,
        step_check: stats::CheckSettings,
        seed: u64,
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
        let zero_weight = split.weights.values().any(|w| *w == 0);
        let fresh_per_request = traffic::ConnectionReuse::Renew {
            long_lived: 0,
            requests_each: 1,
        };
        let base_reuse = if zero_weight {
            fresh_per_request
        } else {
            traffic::ConnectionReuse::KeepAlive
        };
        let sticky_extra = u64::from(STICKY_UNITS * (STICKY_REQUESTS_EACH - 1));
        let (unit, reuse, key, round_robin) = match &split.selection {
            Selection::Random => (SampleUnit::Request, base_reuse, None, None),
            Selection::PerConnection => (
                SampleUnit::Connection,
                traffic::ConnectionReuse::Renew {
                    long_lived: STICKY_UNITS,
                    requests_each: STICKY_REQUESTS_EACH,
                },
                None,
                None,
            ),
            Selection::Hash(hash) => {
                let carrier = match hash {
                    HashKey::Header(name) => traffic::KeyCarrier::Header(
                        http::HeaderName::from_bytes(name.as_bytes())
                            .expect("checked when the scenario was loaded"),
                    ),
                    HashKey::Cookie(name) => traffic::KeyCarrier::Cookie(name.clone()),
                };
                let key = traffic::RequestKey {
                    carrier,
                    seed,
                    repeated_keys: u64::from(STICKY_UNITS),
                    requests_each: u64::from(STICKY_REQUESTS_EACH),
                };
                (SampleUnit::Key(key.clone()), base_reuse, Some(key), None)
            }
            Selection::RoundRobin { schedulers } => {
                let check = stats::RoundRobinCheck::new(&spec, *schedulers, &check)?;
                (SampleUnit::Pick, base_reuse, None, Some(check))
            }
        };
        let sequential = split.sequential && traffic.requests.is_none() && round_robin.is_none();
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
        let samples = match (&round_robin, traffic.requests) {
            (_, Some(requests)) => requests,
            (Some(round_robin), None) => round_robin.requests(),
            (None, None) if sequential => plan.sequential_cap,
            (None, None) => plan.requests,
        };
        let max_requests = match (&unit, traffic.requests) {
            (SampleUnit::Connection | SampleUnit::Key(_), None) => samples + sticky_extra,
            _ => samples,
        };
        let stickiness = match &unit {
            SampleUnit::Connection => Some(stats::StickinessCheck::new(&spec, "connection")),
            SampleUnit::Key(_) => Some(stats::StickinessCheck::new(&spec, "key")),
            SampleUnit::Request | SampleUnit::Pick => None,
        };
        let split = SplitPlan {
            expect: split,
            spec,
            plan,
            sequential,
            connection_alpha: connection.as_ref().map(stats::ConnectionCheck::alpha),
            unit: unit.clone(),
            drive: traffic::DriveOptions { reuse, key },
            round_robin,
        };
        let live = LiveChecks {
            sequential: sequential_check,
            connection,
            stickiness,
            unit,
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
        if split.round_robin.is_some() {
            return Some(format!(
                "# split by {}: declared round robin; {} consecutive picks judged against the bound \
                 of smooth weighted round robin (no statistical budget; a smooth scheduler off by \
                 {} is caught){}; {}",
                key_name(split.expect.by),
                self.max_requests,
                check.min_detectable_deviation,
                split
                    .leak_note(check)
                    .map(|note| format!("; {note}"))
                    .unwrap_or_default(),
                split.reuse_note()
            ));
        }
        let cap_note = if split.sequential {
            format!(
                "; sequential, stops at the verdict, at most {} {}s",
                plan.sequential_cap,
                split.unit.name()
            )
        } else {
            String::new()
        };
        let connection_note = split
            .connection_alpha
            .map(|alpha| {
                format!(
                    "; connection independence alpha {alpha:.2e}, at least {} replies",
                    plan.requests
                )
            })
            .unwrap_or_default();
        let unit_note = match &split.unit {
            SampleUnit::Request => String::new(),
            unit => format!(
                "; one sample per {} ({STICKY_UNITS} {}s carry {STICKY_REQUESTS_EACH} requests \
                 for the stickiness check)",
                unit.name(),
                unit.name()
            ),
        };
        let leak_note = split
            .leak_note(check)
            .map(|note| format!("; {note}"))
            .unwrap_or_default();
        Some(format!(
            "# split by {}: planned {} {}s (alpha {:.2e}, deviation {}, power {}){unit_note}{leak_note}{cap_note}{connection_note}; {}",
            key_name(split.expect.by),
            plan.requests,
            split.unit.name(),
            check.alpha,
            check.min_detectable_deviation,
            check.power,
            split.reuse_note()
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
    // Only per-request picks promise independence from the connection, and only keep-alive
    // connections can show dependence (with a zero-weight destination every request gets a fresh
    // connection).
    let keep_alive = split.selection == Selection::Random && split.weights.values().all(|w| *w > 0);
    if !connection.applies() || !keep_alive {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(split: &str) -> TrafficStep {
        serde_norway::from_str(&format!("path: /\nexpect:\n  split: {split}\n")).unwrap()
    }

    fn planned(step: &TrafficStep) -> (TrafficPlan<'_>, LiveChecks) {
        TrafficPlan::new(step, stats::CheckSettings::default(), 3).unwrap()
    }

    #[test]
    fn the_declared_selection_decides_samples_connections_and_checks() {
        let random = step("{ by: body, weights: { a: 80, b: 20 } }");
        let (plan, live) = planned(&random);
        let split = plan.split.as_ref().unwrap();
        assert_eq!(split.drive.reuse, traffic::ConnectionReuse::KeepAlive);
        assert!(live.connection.is_some() && live.stickiness.is_none());
        assert_eq!(plan.max_requests, split.plan.sequential_cap);

        // A zero-weight destination: every request on a fresh connection, no connection check,
        // and the report states the leak guarantee whatever the reuse.
        let zero = step("{ by: body, weights: { a: 0, b: 80, c: 20 } }");
        let (plan, live) = planned(&zero);
        let split = plan.split.as_ref().unwrap();
        assert_eq!(
            split.drive.reuse,
            traffic::ConnectionReuse::Renew {
                long_lived: 0,
                requests_each: 1
            }
        );
        assert!(live.connection.is_none());
        assert_eq!(
            plan.check.alpha, 1e-4,
            "the whole step alpha goes to the split check"
        );
        let note = split.leak_note(&plan.check).unwrap();
        assert!(note.contains("whatever its connection reuse"), "{note}");
        assert!(
            note.contains("a fresh connection for every request"),
            "{note}"
        );
        assert!(
            plan.describe()
                .unwrap()
                .contains("whatever its connection reuse")
        );

        let per_connection =
            step("{ by: body, weights: { a: 0, b: 100 }, selection: perConnection }");
        let (plan, live) = planned(&per_connection);
        let split = plan.split.as_ref().unwrap();
        assert_eq!(
            split.drive.reuse,
            traffic::ConnectionReuse::Renew {
                long_lived: 8,
                requests_each: 5
            }
        );
        assert!(live.stickiness.is_some() && live.connection.is_none());
        assert_eq!(plan.max_requests, split.plan.sequential_cap + 32);
        assert!(
            plan.describe()
                .unwrap()
                .contains("one sample per connection")
        );

        let hash =
            step("{ by: body, weights: { a: 80, b: 20 }, selection: { hash: { cookie: s } } }");
        let (plan, live) = planned(&hash);
        let split = plan.split.as_ref().unwrap();
        assert_eq!(split.drive.reuse, traffic::ConnectionReuse::KeepAlive);
        let key = split.drive.key.as_ref().unwrap();
        assert_eq!(key.carrier, traffic::KeyCarrier::Cookie("s".into()));
        assert_eq!((key.seed, key.repeated_keys, key.requests_each), (3, 8, 5));
        assert!(matches!(live.unit, SampleUnit::Key(_)));
        assert!(live.connection.is_none() && live.sequential.is_some());

        let round_robin = step(
            "{ by: body, weights: { a: 80, b: 20 }, selection: { roundRobin: { schedulers: 2 } } }",
        );
        let (plan, live) = planned(&round_robin);
        let split = plan.split.as_ref().unwrap();
        // 2 · (0.8 + 2) / 0.05 = 112 → 113.
        assert_eq!(plan.max_requests, 113);
        assert!(live.sequential.is_none() && live.connection.is_none());
        assert!(split.round_robin.is_some());
        assert!(plan.describe().unwrap().contains("declared round robin"));
    }
}

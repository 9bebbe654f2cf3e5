//! The traffic step: propagation, the stats clear, sending, exact checks, the split verdict, the
//! connection-independence verdict and the stats cross-check.
//!
//! A split step runs two statistical checks on the same replies: the split check (its shares and
//! zero-weight leaks) and, when the split has two or more positive weights, is declared
//! `selection: random` and runs on keep-alive connections, the connection-independence check
//! ([`stats::ConnectionCheck`]); they share the step's part of the run's budget (nine tenths and
//! one tenth). The split's declared selection unit decides what a sample is (a request, a
//! connection, a key; see [`plan`]); declared `perConnection` or `hash`, a stickiness check
//! ([`stats::StickinessCheck`]) runs beside the split check; declared `roundRobin`, the split is
//! judged deterministically ([`stats::RoundRobinCheck`]) and spends no budget. Both are built before the step waits for the last
//! change to be live, so traffic starts the moment the gateway reports it: the checks then see
//! any window in which the gateway reports a configuration it does not serve yet.
//!
//! The step runs in four parts, one module each: [`plan`] (the checks, their alpha and the request
//! cap), [`drive`] (sending, classifying each reply, renewing connections), [`judge`] (the
//! verdicts once traffic stopped) and [`record`] (the reply log and the verdict lines). What the
//! report keeps is defined in `super::records`.

use std::time::Instant;

use super::records::{PropagationReport, SplitReport, key_name};
use super::{StepContext, StepOutcome, StepResult, format_elapsed};
use crate::backend::{Backend, BackendError};
use crate::scenario::{Step, TrafficStep};
use crate::stats;
use crate::traffic::{self, Flow, TrafficError, TrafficLimits, TrafficRequest, TrafficSummary};

mod drive;
mod judge;
mod plan;
pub(crate) use plan::split_check;
mod record;
mod shift;

/// How long the trace check waits for segments still in flight after the traffic stopped.
const TRACE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The trace check's verdict line.
fn describe_trace(trace: &crate::xray::TraceReport) -> String {
    let from = if trace.ingress_traced {
        "the ingress"
    } else {
        "the colorgateway (the gateway under test sends no segments)"
    };
    let mut line = format!(
        "# trace check: {} of {} colorgateway replies have a trace connected from {from} to the colorteller that answered",
        trace.connected, trace.judged
    );
    for failure in &trace.failures {
        line.push_str("\n  ");
        line.push_str(failure);
    }
    line
}

/// Replies printed in walkthrough mode for `showReplies`.
const MAX_SHOWN_REPLIES: usize = 20;

/// Why a traffic step ended before its verdicts. The messages are the step's report message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrafficStepError {
    #[error("glooctl proxy url: {0}")]
    ProxyUrl(#[source] BackendError),
    #[error("traffic.method {method:?} is not an HTTP method")]
    Method { method: String },
    #[error("traffic.headers: {name:?}: {source}")]
    HeaderName {
        name: String,
        source: http::header::InvalidHeaderName,
    },
    #[error("traffic.headers.{name}: {value:?}: {source}")]
    HeaderValue {
        name: String,
        value: String,
        source: http::header::InvalidHeaderValue,
    },
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// `propagation: true` and the change was not served; the message is the report's.
    #[error("{0}")]
    Propagation(String),
    #[error("stats cross-check: GET {path} answered {answer} {body:?}, not 200 \"cleared\"")]
    StatsNotCleared {
        path: String,
        answer: String,
        body: String,
    },
    #[error("stats cross-check: GET {path} got no reply")]
    StatsClearUnanswered { path: String },
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error("traffic.expect.split: {0}")]
    Judge(#[source] stats::StatsError),
    #[error("traffic.shift.apply: {} does not exist (paths are relative to {})", .path.display(), .manifests.display())]
    ShiftManifest {
        path: std::path::PathBuf,
        manifests: std::path::PathBuf,
    },
    #[error("traffic.shift: reading the gateway's generation: {0}")]
    Generation(#[source] BackendError),
}

impl<B: Backend> StepContext<'_, B> {
    pub(super) async fn traffic(&mut self, step: &Step, traffic: &TrafficStep) -> StepResult {
        match self.run_traffic(step, traffic).await {
            Ok(result) => result,
            Err(error) => StepResult::failed(error.to_string()),
        }
    }

    /// Plans, waits for the last change, drives, judges and records one traffic step.
    async fn run_traffic(
        &mut self,
        step: &Step,
        traffic: &TrafficStep,
    ) -> Result<StepResult, TrafficStepError> {
        let base = self
            .backend
            .proxy_url()
            .await
            .map_err(TrafficStepError::ProxyUrl)?;
        let request = build_request(&base, traffic)?;

        // Everything the checks need is prepared before waiting for the change to be live, so
        // that the first request goes out right when the gateway reports it: a gateway that
        // reports a change before it serves it is then judged inside its stale window.
        let (plan, checks) = plan::TrafficPlan::new(traffic, self.check, self.settings.seed)?;

        let propagation = match &traffic.expect.split {
            Some(split) if split.propagation => Some(self.measure_propagation().await),
            _ => None,
        };
        if let Some(error) = propagation.as_ref().and_then(|p| p.error.clone()) {
            return Err(TrafficStepError::Propagation(error));
        }

        if let Some(line) = plan.describe() {
            self.say(format_args!("{line}"));
        }
        if self.settings.narrate {
            self.narrate_traffic(traffic, plan.max_requests);
        }

        let cross_clear = traffic.expect.stats_cross_check;
        if cross_clear {
            self.clear_gateway_stats(&request).await?;
        }

        let limits = TrafficLimits {
            concurrency: traffic.concurrency,
            max_requests: plan.max_requests,
            deadline: self.settings.traffic_deadline,
            request_timeout: self.settings.request_timeout,
            loopback_only: self.settings.loopback_only,
        };
        let mut observer = drive::Observer::new(traffic, checks, self.settings.failure_samples);
        let started = Instant::now();
        // How the traffic uses connections and keys (the declared selection unit, and fresh
        // connections wherever a zero-weight destination must be checked for leaks).
        let options = plan
            .split
            .as_ref()
            .map(|split| split.drive.clone())
            .unwrap_or_default();
        let (summary, propagation, shift) = match &traffic.shift {
            Some(shift) => {
                let run = self
                    .drive_shift(
                        shift,
                        &request,
                        limits,
                        &options,
                        &mut observer,
                        plan.max_requests,
                    )
                    .await?;
                let propagation = run
                    .control
                    .applied
                    .as_ref()
                    .map(|applied| PropagationReport {
                        revision: Some(applied.revision),
                        changed: applied.changed.clone(),
                        elapsed: run.control.propagation,
                        error: run.control.error.clone(),
                    });
                if let Some(applied) = run.control.applied {
                    self.last_applied = Some(applied);
                }
                (run.summary, propagation, Some(run.report))
            }
            None => {
                let bar = drive::progress_bar(
                    self.settings.progress,
                    plan.max_requests,
                    &step.to_string(),
                );
                let driven = traffic::drive_with(&request, &limits, &options, |reply| {
                    bar.inc(1);
                    observer.observe(reply)
                })
                .await;
                bar.finish_and_clear();
                (driven?, propagation, None)
            }
        };

        let run = judge::TrafficRun {
            traffic,
            plan: &plan,
            summary: &summary,
            started,
            traffic_deadline: self.settings.traffic_deadline,
        };
        let split = judge::judge_split(&run, &mut observer).map_err(TrafficStepError::Judge)?;
        let cross_check =
            cross_clear.then(|| judge::cross_check(&observer.cross, traffic.concurrency));
        let mut verdict =
            judge::step_verdict(&run, &observer, split.as_ref(), cross_check.as_ref());
        let trace = match self.backend.trace_collector() {
            Some(collector) if !observer.traced.is_empty() => {
                Some(collector.check(&observer.traced, TRACE_WAIT).await)
            }
            _ => None,
        };
        if let Some(trace) = &trace {
            self.say(format_args!("{}", describe_trace(trace)));
            if !trace.passed() {
                verdict.outcome = StepOutcome::Failed;
                verdict.messages.push(describe_trace(trace));
            }
        }
        if let Some(shift) = &shift {
            let problems = shift::shift_problems(shift);
            if !problems.is_empty() {
                verdict.outcome = StepOutcome::Failed;
                verdict.messages.extend(problems);
            }
        }

        let shown = observer.log.take_shown();
        self.say_results(split.as_ref(), &shown, propagation.as_ref(), &summary);
        if let Some(shift) = &shift {
            self.say(format_args!("{}", shift::describe_shift(shift)));
        }
        let changed = shift
            .as_ref()
            .map(|shift| shift.changed.clone())
            .unwrap_or_default();
        let verdicts = record::Verdicts {
            split,
            propagation,
            cross_check,
            shift,
            trace,
        };
        Ok(StepResult {
            outcome: Some(verdict.outcome),
            messages: verdict.messages,
            traffic: Some(
                observer
                    .log
                    .into_report(&base, traffic, summary, shown, verdicts),
            ),
            changed,
            ..StepResult::default()
        })
    }

    /// The verdict lines, the replies a walkthrough shows, the propagation time and the totals.
    fn say_results(
        &mut self,
        split: Option<&SplitReport>,
        shown: &[String],
        propagation: Option<&PropagationReport>,
        summary: &TrafficSummary,
    ) {
        if let Some(split) = split {
            self.say(format_args!("{}", record::describe_verdict(split)));
        }
        if self.settings.narrate {
            for body in shown.iter().take(MAX_SHOWN_REPLIES) {
                self.say(format_args!("{body}"));
            }
            if let Some(elapsed) = propagation.and_then(|p| p.elapsed) {
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
    async fn clear_gateway_stats(
        &mut self,
        request: &TrafficRequest,
    ) -> Result<(), TrafficStepError> {
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
        .await?;
        match reply {
            Some(reply)
                if reply.status == Some(http::StatusCode::OK)
                    && reply.body.as_ref() == b"cleared" =>
            {
                Ok(())
            }
            Some(reply) => Err(TrafficStepError::StatsNotCleared {
                path: clear.path_and_query,
                answer: reply.status.map_or_else(
                    || reply.error.clone().unwrap_or_default(),
                    |s| s.as_u16().to_string(),
                ),
                body: reply.body_text(),
            }),
            None => Err(TrafficStepError::StatsClearUnanswered {
                path: clear.path_and_query,
            }),
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

fn build_request(
    base: &url::Url,
    traffic: &TrafficStep,
) -> Result<TrafficRequest, TrafficStepError> {
    let method = http::Method::from_bytes(traffic.method.as_bytes()).map_err(|_| {
        TrafficStepError::Method {
            method: traffic.method.clone(),
        }
    })?;
    let headers = traffic
        .headers
        .iter()
        .map(|(name, value)| {
            let header = http::HeaderName::from_bytes(name.as_bytes()).map_err(|source| {
                TrafficStepError::HeaderName {
                    name: name.clone(),
                    source,
                }
            })?;
            let value = http::HeaderValue::from_str(value).map_err(|source| {
                TrafficStepError::HeaderValue {
                    name: name.clone(),
                    value: value.clone(),
                    source,
                }
            })?;
            Ok((header, value))
        })
        .collect::<Result<Vec<_>, TrafficStepError>>()?;
    Ok(TrafficRequest {
        base: base.clone(),
        path_and_query: traffic.path.clone(),
        method,
        host: traffic.host.clone(),
        headers,
    })
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

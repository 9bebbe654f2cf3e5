//! A traffic step with `shift`: the configuration changes while the traffic flows.
//!
//! Two futures run side by side on the step's task. The traffic ([`crate::traffic::drive`])
//! hands every reply to a [`ShiftTally`]; the control waits for the warm-up replies, applies,
//! waits for the change to be live ([`Backend::wait_config_live`]) and then reads the generation
//! the gateway reports ([`Backend::gateway_generation`]). They share the [`ShiftClock`]: the
//! moments the control reached, which decide how the tally treats each reply.
//!
//! Every reply names the generation that served it (`x-colormesh-generation`). A reply whose
//! request was sent after the report was read is judged against the new weights when a
//! generation at least as new as the reported one served it, and is stale otherwise: the
//! gateway said the change was live, yet a request that started later did not see it. Requests
//! sent earlier were in flight across the change and are only checked exactly (a 503 or a reset
//! counts against `maxErrors` whenever it happens).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::super::StepContext;
use super::super::records::{ShiftBucket, ShiftPhase, ShiftReport, ShiftTimeline};
use super::TrafficStepError;
use super::drive::Observer;
use crate::backend::{Applied, Backend};
use crate::scenario::ShiftSpec;
use crate::traffic::DriveOptions;
use crate::traffic::{self, Flow, Reply, TrafficLimits, TrafficRequest, TrafficSummary};

/// The response header that names the generation a reply was served under (gateway-proxy's
/// `forward::GENERATION_HEADER`; the harness does not link the gateway).
pub(crate) const GENERATION_HEADER: &str = "x-colormesh-generation";

/// Requests a shift step may send beyond the split's cap: the warm-up and the change.
const SHIFT_ALLOWANCE: u64 = 1_000_000;

/// Buckets of the report's timeline.
const TIMELINE_BUCKETS: usize = 80;

/// Failed replies whose send times the timeline keeps (one per quarter bucket).
const TIMELINE_ERRORS: usize = 4 * TIMELINE_BUCKETS;

/// The moments the control reached, shared with the traffic.
#[derive(Debug, Default)]
pub(super) struct ShiftClock {
    marks: Mutex<Marks>,
    /// The control failed (the apply, the live wait or the generation read): stop the traffic.
    abort: AtomicBool,
}

/// See [`ShiftClock`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Marks {
    pub(super) apply_started: Option<Instant>,
    pub(super) apply_returned: Option<Instant>,
    pub(super) config_live: Option<Instant>,
    /// The generation the gateway reported right before the apply.
    pub(super) generation_before: Option<u64>,
    /// When `/status` answered with the generation, and the generation; `None` for a gateway
    /// that numbers no configurations (then the moment the change was seen live).
    pub(super) reported: Option<(Instant, Option<u64>)>,
}

impl ShiftClock {
    fn marks(&self) -> Marks {
        *self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark(&self, set: impl FnOnce(&mut Marks)) {
        set(&mut self.marks.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// One reply as the timeline and the phases keep it.
#[derive(Debug, Clone)]
struct Sample {
    sent: Instant,
    /// When the reply was complete.
    received: Instant,
    destination: Option<usize>,
    generation: Option<u64>,
    failed: bool,
    stale: bool,
}

/// Where a reply's request falls, by the time it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Before,
    During,
    /// Sent after the report of this generation (`None`: the gateway numbers none).
    After(Option<u64>),
}

impl Phase {
    pub(super) fn of(sent: Instant, marks: &Marks) -> Phase {
        match marks.reported {
            Some((at, generation)) if sent >= at => Phase::After(generation),
            _ if marks.apply_started.is_some_and(|started| sent >= started) => Phase::During,
            _ => Phase::Before,
        }
    }
}

/// What a shift step counts, reply by reply.
#[derive(Debug)]
pub(super) struct ShiftTally {
    warmup: u64,
    /// The split's cap: judged replies after which the traffic stops.
    judged_cap: u64,
    /// Stale replies tolerated; one more stops the traffic.
    max_stale: u64,
    /// The gateway numbers its configurations (its `/status` has a generation).
    numbered: bool,
    pub(super) received: u64,
    pub(super) judged: u64,
    pub(super) stale: u64,
    pub(super) unlabelled: u64,
    pub(super) non_2xx: u64,
    pub(super) transport_errors: u64,
    histograms: [hdrhistogram::Histogram<u64>; 3],
    phase_replies: [u64; 3],
    phase_errors: [u64; 3],
    destinations: Vec<String>,
    samples: Vec<Sample>,
}

impl ShiftTally {
    pub(super) fn new(warmup: u64, judged_cap: u64, max_stale: u64, numbered: bool) -> Self {
        Self {
            warmup,
            judged_cap,
            max_stale,
            numbered,
            received: 0,
            judged: 0,
            stale: 0,
            unlabelled: 0,
            non_2xx: 0,
            transport_errors: 0,
            histograms: std::array::from_fn(|_| traffic::new_histogram()),
            phase_replies: [0; 3],
            phase_errors: [0; 3],
            destinations: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Counts one reply, has `observer` check it (feeding the split only with judged replies)
    /// and says whether traffic goes on; `warm` is notified when the warm-up is complete.
    pub(super) fn observe(
        &mut self,
        reply: &Reply,
        marks: &Marks,
        observer: &mut Observer<'_>,
    ) -> Flow {
        self.received += 1;
        let generation = reply
            .headers
            .get(GENERATION_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let phase = Phase::of(reply.sent, marks);
        let (judged, stale) = match (phase, generation) {
            (Phase::After(Some(reported)), Some(served)) => (served >= reported, served < reported),
            // A gateway that numbers no configurations: everything sent after the change was
            // seen live is judged, and nothing can be called stale.
            (Phase::After(None), _) => (true, false),
            _ => (false, false),
        };
        let observed = observer.observe_as(reply, judged);
        let success = reply.status.is_some_and(|status| status.is_success());
        if reply.error.is_some() {
            self.transport_errors += 1;
        } else if !success {
            self.non_2xx += 1;
        }
        if success && generation.is_none() && self.numbered {
            self.unlabelled += 1;
        }
        let failed = !success || observed.failed;
        let slot = match phase {
            Phase::Before => 0,
            Phase::During => 1,
            Phase::After(_) => 2,
        };
        self.phase_replies[slot] += 1;
        if failed {
            self.phase_errors[slot] += 1;
        }
        traffic::record_latency(&mut self.histograms[slot], reply.latency);
        if stale {
            self.stale += 1;
        }
        let flow = match (phase, observed.flow) {
            // The step has failed once more stale replies came than it tolerates; stop there.
            _ if self.stale > self.max_stale => Flow::Stop,
            // Failed replies end the step only once the change is over, so that what the change
            // cost is measured whole.
            (Phase::Before | Phase::During, Flow::Stop) => Flow::Continue,
            (_, flow) => flow,
        };
        let destination = observed.destination.map(|label| {
            match self.destinations.iter().position(|known| *known == label) {
                Some(index) => index,
                None => {
                    self.destinations.push(label);
                    self.destinations.len() - 1
                }
            }
        });
        self.samples.push(Sample {
            sent: reply.sent,
            received: reply.sent + reply.latency,
            destination,
            generation,
            failed,
            stale,
        });
        if judged && !observed.failed {
            self.judged += 1;
            if self.judged >= self.judged_cap {
                return Flow::Stop;
            }
        }
        flow
    }

    /// Whether the warm-up is complete.
    fn warm(&self) -> bool {
        self.received >= self.warmup
    }

    fn phase(&self, slot: usize) -> ShiftPhase {
        ShiftPhase {
            replies: self.phase_replies[slot],
            errors: self.phase_errors[slot],
            latency: traffic::summarize(&self.histograms[slot]),
        }
    }

    /// When the first reply from a generation newer than `before` came back (a request sent
    /// before the switch may be served after it, so its send time says less).
    fn first_new(&self, before: u64) -> Option<Instant> {
        self.samples
            .iter()
            .filter(|s| s.generation.is_some_and(|g| g > before))
            .map(|s| s.received)
            .min()
    }

    /// The timeline of the replies, from `start` (the step's first request); `before` is the
    /// generation before the apply.
    fn timeline(&self, start: Instant, before: u64) -> ShiftTimeline {
        let ms = |at: Instant| at.saturating_duration_since(start).as_secs_f64() * 1e3;
        let end = self.samples.iter().map(|s| ms(s.sent)).fold(0.0, f64::max);
        let bucket_ms = (end / TIMELINE_BUCKETS as f64).max(0.1);
        let mut buckets: Vec<ShiftBucket> = (0..TIMELINE_BUCKETS)
            .map(|_| ShiftBucket {
                destinations: vec![0; self.destinations.len()],
                ..ShiftBucket::default()
            })
            .collect();
        let mut error_ms = Vec::new();
        let mut last_tick = None;
        let mut samples: Vec<&Sample> = self.samples.iter().collect();
        samples.sort_by_key(|sample| sample.sent);
        for sample in samples {
            let at = ms(sample.sent);
            let index = ((at / bucket_ms) as usize).min(TIMELINE_BUCKETS - 1);
            let bucket = &mut buckets[index];
            if let Some(destination) = sample.destination {
                bucket.destinations[destination] += 1;
            }
            bucket.new_generation += u64::from(sample.generation.is_some_and(|g| g > before));
            bucket.errors += u64::from(sample.failed);
            bucket.stale += u64::from(sample.stale);
            // One tick per quarter bucket is all a drawing can show.
            let tick = (at / (bucket_ms / 4.0)) as u64;
            if sample.failed && error_ms.len() < TIMELINE_ERRORS && last_tick != Some(tick) {
                error_ms.push(at);
                last_tick = Some(tick);
            }
        }
        ShiftTimeline {
            bucket_ms,
            destinations: self.destinations.clone(),
            buckets,
            error_ms,
        }
    }
}

/// What the control did: the apply, its propagation time, or why it stopped.
#[derive(Debug, Default)]
pub(super) struct Control {
    pub(super) applied: Option<Applied>,
    pub(super) propagation: Option<Duration>,
    pub(super) error: Option<String>,
}

/// A finished shift: the traffic's summary, what the control did and the report.
pub(super) struct ShiftRun {
    pub(super) summary: TrafficSummary,
    pub(super) control: Control,
    pub(super) report: ShiftReport,
}

impl<B: Backend> StepContext<'_, B> {
    /// Sends `request` and applies `shift` once the warm-up replies are in; stops when `tally`
    /// has judged the split's cap or the observer decides.
    pub(super) async fn drive_shift(
        &mut self,
        shift: &ShiftSpec,
        request: &TrafficRequest,
        limits: TrafficLimits,
        options: &DriveOptions,
        observer: &mut Observer<'_>,
        judged_cap: u64,
    ) -> Result<ShiftRun, TrafficStepError> {
        for path in &shift.apply {
            let full = self.settings.manifests_dir.join(path);
            if !full.exists() {
                return Err(TrafficStepError::ShiftManifest {
                    path: full,
                    manifests: self.settings.manifests_dir.clone(),
                });
            }
        }
        // A gateway that numbers no configurations (a third-party one on a cluster) is still
        // judged on its failed replies and on the split after the change was seen live.
        let numbered = self
            .backend
            .gateway_generation()
            .await
            .map_err(TrafficStepError::Generation)?
            .is_some();
        if self.settings.narrate {
            self.say(format_args!(
                "$ kubectl apply -f {} # after {} replies, while the traffic goes on",
                shift
                    .apply
                    .iter()
                    .map(|p| format!("manifests/{}", p.display()))
                    .collect::<Vec<_>>()
                    .join(" -f "),
                shift.warmup
            ));
        }
        let limits = TrafficLimits {
            max_requests: judged_cap.saturating_add(SHIFT_ALLOWANCE),
            ..limits
        };
        let clock = ShiftClock::default();
        let warm = Notify::new();
        let mut tally = ShiftTally::new(shift.warmup, judged_cap, shift.max_stale, numbered);
        let started = Instant::now();
        let backend = &mut *self.backend;
        let live_timeout = self.settings.propagation_timeout;

        let traffic = async {
            let mut notified = false;
            let driven = traffic::drive_with(request, &limits, options, |reply| {
                let marks = clock.marks();
                let flow = tally.observe(&reply, &marks, observer);
                if !notified && tally.warm() {
                    notified = true;
                    warm.notify_one();
                }
                if clock.abort.load(Ordering::Relaxed) {
                    return Flow::Stop;
                }
                flow
            })
            .await;
            // The control waits for the warm-up; traffic that ended sooner releases it.
            warm.notify_one();
            driven
        };
        let control = async {
            warm.notified().await;
            let mut control = Control::default();
            if numbered {
                match backend.gateway_generation().await {
                    Ok(generation) => clock.mark(|m| m.generation_before = generation),
                    Err(error) => {
                        control.error = Some(format!("reading the gateway's generation: {error}"));
                    }
                }
            }
            clock.mark(|m| m.apply_started = Some(Instant::now()));
            let applied = backend.apply(&shift.apply).await;
            let returned = Instant::now();
            clock.mark(|m| m.apply_returned = Some(returned));
            let applied = match applied {
                Ok(applied) => applied,
                Err(error) => {
                    clock.abort.store(true, Ordering::Relaxed);
                    control.error = Some(format!("kubectl apply: {error}"));
                    return control;
                }
            };
            match backend.wait_config_live(&applied, live_timeout).await {
                Ok(elapsed) => {
                    // The wait returns after a reload barrier; live is when it saw the versions.
                    control.propagation = Some(elapsed);
                    clock.mark(|m| m.config_live = Some(returned + elapsed));
                }
                Err(error) => {
                    clock.abort.store(true, Ordering::Relaxed);
                    control.error = Some(format!(
                        "the gateway did not serve revision {}: {error}",
                        applied.revision
                    ));
                    control.applied = Some(applied);
                    return control;
                }
            }
            control.applied = Some(applied);
            if !numbered {
                clock.mark(|m| m.reported = Some((Instant::now(), None)));
                return control;
            }
            match backend.gateway_generation().await {
                Ok(Some(generation)) => {
                    clock.mark(|m| m.reported = Some((Instant::now(), Some(generation))));
                }
                Ok(None) => {
                    clock.abort.store(true, Ordering::Relaxed);
                    control.error = Some("the gateway stopped reporting its generation".to_owned());
                }
                Err(error) => {
                    clock.abort.store(true, Ordering::Relaxed);
                    control.error = Some(format!("reading the gateway's generation: {error}"));
                }
            }
            control
        };
        let (driven, control) = tokio::join!(traffic, control);
        let summary = driven?;
        let marks = clock.marks();
        let max_errors = observer.max_errors();
        let report = shift_report(shift, &tally, &marks, &control, started, max_errors);
        Ok(ShiftRun {
            summary,
            control,
            report,
        })
    }
}

fn shift_report(
    shift: &ShiftSpec,
    tally: &ShiftTally,
    marks: &Marks,
    control: &Control,
    started: Instant,
    max_errors: u64,
) -> ShiftReport {
    // The first request went out right after `started`: the traffic began there.
    let start = tally
        .samples
        .iter()
        .map(|s| s.sent)
        .min()
        .unwrap_or(started)
        .min(started);
    let ms =
        |at: Option<Instant>| at.map(|at| at.saturating_duration_since(start).as_secs_f64() * 1e3);
    let before = marks.generation_before;
    ShiftReport {
        applied: shift.apply.clone(),
        changed: control
            .applied
            .as_ref()
            .map(|a| a.changed.clone())
            .unwrap_or_default(),
        generation_before: marks.generation_before,
        generation_reported: marks.reported.and_then(|(_, generation)| generation),
        numbered: tally.numbered,
        apply_started_ms: ms(marks.apply_started),
        apply_returned_ms: ms(marks.apply_returned),
        config_live_ms: ms(marks.config_live),
        reported_ms: ms(marks.reported.map(|(at, _)| at)),
        first_new_generation_ms: ms(before.and_then(|before| tally.first_new(before))),
        before: tally.phase(0),
        during: tally.phase(1),
        after: tally.phase(2),
        non_2xx: tally.non_2xx,
        transport_errors: tally.transport_errors,
        max_errors,
        stale_after_report: tally.stale,
        max_stale: shift.max_stale,
        unlabelled: tally.unlabelled,
        error: control.error.clone(),
        timeline: tally.timeline(start, before.unwrap_or(u64::MAX)),
    }
}

/// Why a shift fails the step, beyond the exact checks and the split: one line each.
pub(super) fn shift_problems(report: &ShiftReport) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(error) = &report.error {
        problems.push(format!("shift: {error}"));
    }
    let errors = report.non_2xx + report.transport_errors;
    if errors > report.max_errors {
        problems.push(format!(
            "shift: {} non-2xx replies and {} requests without a reply (reset, refused, timed out) \
             while the weights changed (maxErrors {})",
            report.non_2xx, report.transport_errors, report.max_errors
        ));
    }
    if report.stale_after_report > report.max_stale {
        problems.push(format!(
            "shift: {} requests sent after the gateway reported generation {} were served by an \
             older generation (maxStale {})",
            report.stale_after_report,
            report
                .generation_reported
                .map_or_else(|| "?".to_owned(), |g| g.to_string()),
            report.max_stale
        ));
    }
    if report.unlabelled > 0 {
        problems.push(format!(
            "shift: {} 2xx replies named no generation ({GENERATION_HEADER}); a shift step needs a \
             gateway that says which configuration served each reply",
            report.unlabelled
        ));
    }
    problems
}

/// The line a shift step prints: the times, the stale and failed replies, the latencies.
pub(super) fn describe_shift(report: &ShiftReport) -> String {
    let ms =
        |value: Option<f64>| value.map_or_else(|| "never".to_owned(), |v| format!("{v:.0} ms"));
    let generation = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |g| g.to_string());
    let since_apply = |at: Option<f64>| Some(at? - report.apply_started_ms?);
    format!(
        "# shift from generation {} to {}: after the apply started, the first reply from a new \
         generation came back at {}, the backend saw the change live at {}, the gateway reported \
         generation {} at {}; {} stale after the report, {} non-2xx, {} without reply; p50/p99 \
         before {}/{} µs, during {}/{} µs ({} replies), after {}/{} µs",
        generation(report.generation_before),
        generation(report.generation_reported),
        ms(report.time_to_new_generation_ms()),
        ms(since_apply(report.config_live_ms)),
        generation(report.generation_reported),
        ms(report.time_to_report_ms()),
        report.stale_after_report,
        report.non_2xx,
        report.transport_errors,
        report.before.latency.p50_us,
        report.before.latency.p99_us,
        report.during.latency.p50_us,
        report.during.latency.p99_us,
        report.during.replies,
        report.after.latency.p50_us,
        report.after.latency.p99_us,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::traffic_step::plan::TrafficPlan;
    use crate::scenario::TrafficStep;
    use crate::stats;

    /// A reply sent at `sent`, from generation `generation` (`None`: no header), with `body`
    /// and `status` (`None`: a reset).
    fn reply(sent: Instant, generation: Option<u64>, status: Option<u16>, body: &str) -> Reply {
        let mut headers = http::HeaderMap::new();
        if let Some(generation) = generation {
            headers.insert(GENERATION_HEADER, http::HeaderValue::from(generation));
        }
        Reply {
            index: 0,
            worker: 0,
            connection: 0,
            sent,
            status: status.map(|s| http::StatusCode::from_u16(s).expect("a status")),
            headers,
            body: bytes::Bytes::from(body.to_owned()),
            latency: Duration::from_millis(1),
            error: status.is_none().then(|| "connection reset".to_owned()),
        }
    }

    #[test]
    fn the_tally_judges_new_replies_after_the_report_and_counts_stale_and_failed_ones() {
        let step: TrafficStep = serde_norway::from_str(
            "path: /\nshift: { apply: a.yaml, warmup: 2 }\nexpect:\n  split: { by: body, weights: { a: 0, b: 100 } }\n",
        )
        .expect("a step");
        let (plan, checks) =
            TrafficPlan::new(&step, stats::CheckSettings::default(), 1).expect("a plan");
        let mut observer = Observer::new(&step, checks, 5);
        let mut tally = ShiftTally::new(2, plan.max_requests, 5, true);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut marks = Marks::default();
        // The warm-up at generation 3 serves `a`.
        for ms in [0, 1] {
            tally.observe(
                &reply(at(ms), Some(3), Some(200), "a"),
                &marks,
                &mut observer,
            );
        }
        assert!(tally.warm());
        marks.generation_before = Some(3);
        marks.apply_started = Some(at(10));
        // During the change: a 503 and a reset count, an old reply is not stale yet.
        tally.observe(
            &reply(at(11), Some(3), Some(503), "x"),
            &marks,
            &mut observer,
        );
        tally.observe(&reply(at(12), None, None, ""), &marks, &mut observer);
        tally.observe(
            &reply(at(13), Some(3), Some(200), "a"),
            &marks,
            &mut observer,
        );
        tally.observe(
            &reply(at(14), Some(4), Some(200), "b"),
            &marks,
            &mut observer,
        );
        marks.reported = Some((at(20), Some(4)));
        // In flight at the report (sent before it): not stale, not judged.
        tally.observe(
            &reply(at(19), Some(3), Some(200), "a"),
            &marks,
            &mut observer,
        );
        // Sent after the report: generation 3 is stale, 4 and 5 are judged, no header is noted.
        tally.observe(
            &reply(at(21), Some(3), Some(200), "a"),
            &marks,
            &mut observer,
        );
        tally.observe(
            &reply(at(22), Some(4), Some(200), "b"),
            &marks,
            &mut observer,
        );
        tally.observe(
            &reply(at(23), Some(5), Some(200), "b"),
            &marks,
            &mut observer,
        );
        tally.observe(&reply(at(24), None, Some(200), "b"), &marks, &mut observer);
        assert_eq!(tally.judged, 2);
        assert_eq!(tally.stale, 1);
        assert_eq!((tally.non_2xx, tally.transport_errors), (1, 1));
        assert_eq!(tally.unlabelled, 1);
        assert_eq!(tally.phase_replies, [2, 5, 4]);
        assert_eq!(tally.phase_errors, [0, 2, 0]);
        assert_eq!(tally.first_new(3), Some(at(15)));
        let control = Control::default();
        let shift = step.shift.as_ref().expect("a shift");
        let report = shift_report(shift, &tally, &marks, &control, t0, 0);
        assert_eq!(report.time_to_new_generation_ms(), Some(5.0));
        assert_eq!(report.time_to_report_ms(), Some(10.0));
        let problems = shift_problems(&report);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("1 non-2xx replies and 1 requests without a reply"));
        assert!(problems[1].contains("1 requests sent after the gateway reported generation 4"));
        assert!(problems[2].contains("1 2xx replies named no generation"));
        let timeline = &report.timeline;
        assert_eq!(timeline.destinations, ["a", "b"]);
        let total: u64 = timeline.buckets.iter().map(|b| b.errors).sum();
        assert_eq!(total, 2);
        assert_eq!(timeline.error_ms, [11.0, 12.0]);
        let new: u64 = timeline.buckets.iter().map(|b| b.new_generation).sum();
        assert_eq!(new, 3);
    }

    #[test]
    fn a_reply_is_judged_only_when_sent_after_the_report_by_its_generation_or_a_newer_one() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut marks = Marks::default();
        assert_eq!(Phase::of(at(5), &marks), Phase::Before);
        marks.apply_started = Some(at(10));
        assert_eq!(Phase::of(at(5), &marks), Phase::Before);
        assert_eq!(Phase::of(at(10), &marks), Phase::During);
        marks.reported = Some((at(50), Some(7)));
        assert_eq!(Phase::of(at(49), &marks), Phase::During);
        assert_eq!(Phase::of(at(50), &marks), Phase::After(Some(7)));
    }
}

//! The self-contained HTML report: inline CSS and SVG only, so it can be attached to a CI run and
//! opened anywhere.

use std::fmt::Write as _;

use super::conformance::{ConformanceReport, ConformanceResult, ScenarioResult};
use crate::runner::{
    RunReport, ScenarioReport, ShiftReport, SplitReport, StepOutcome, StepReport, format_elapsed,
};

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
.PASS{color:#176b2c;font-weight:bold}.FAIL{color:#b3261e;font-weight:bold}.INCONCLUSIVE{color:#a15c00;font-weight:bold}\
.NOTRUN{color:#888}pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:90%}\
svg text{font-family:system-ui,sans-serif;font-size:12px}figure{margin:.5em 0}figcaption{font-size:90%;color:#555}";

/// Renders the run as one HTML document.
pub fn render_html(run: &RunReport) -> String {
    render("colormesh e2e", run, None)
}

/// Renders a conformance run: the feature table (skipped scenarios included) before the usual
/// per-scenario sections.
pub fn render_conformance_html(run: &RunReport, conformance: &ConformanceReport) -> String {
    render("colormesh conformance", run, Some(conformance))
}

fn render(title: &str, run: &RunReport, conformance: Option<&ConformanceReport>) -> String {
    let mut html = String::new();
    let passed = conformance.map_or_else(|| run.passed(), ConformanceReport::passed);
    let gate = if passed { "PASS" } else { "FAIL" };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}: {gate}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{title}: <span class=\"{gate}\">{gate}</span></h1>\n"
    );
    let _ = write!(
        html,
        "<p>Backend <b>{}</b>, seed {}. {} of {} scenarios passed. Wall time {}, {} requests, {} verdicts \
         ({:.0} requests per verdict).</p>\n<p>{} split checks share a family-wise false-alarm budget of {:.0e} \
         ({}): {:.2e} per check, deviation δ {}, power {}.</p>\n",
        escape(&run.backend),
        run.seed,
        run.scenarios.iter().filter(|s| s.passed()).count(),
        run.scenarios.len(),
        format_elapsed(run.elapsed),
        run.requests_sent,
        run.verdicts,
        run.requests_per_verdict(),
        run.split_checks,
        run.family_alpha,
        escape(&run.correction),
        run.per_check_alpha,
        run.min_detectable_deviation,
        run.power
    );
    if let Some(sentence) = super::false_red_sentence(run) {
        let _ = writeln!(html, "<p>{}</p>", escape(&sentence));
    }
    if let Some(conformance) = conformance {
        feature_section(&mut html, conformance);
    }
    if let Some(map) = run.service_map.as_ref().filter(|map| !map.nodes.is_empty()) {
        let _ = write!(
            html,
            "<h2>Service map</h2>\n<figure>{}<figcaption>What the X-Ray console would show, from the {} \
             segments the daemon stand-in collected: each box is a service (the colorgateways named \
             with the upstream cluster the ingress sent them through) with its requests, p50 / p99 \
             latency and 4xx / 5xx counts; each arrow the calls between two services.</figcaption></figure>\n",
            service_map_svg(map),
            map.segments
        );
    }
    for scenario in &run.scenarios {
        scenario_section(&mut html, scenario);
    }
    html.push_str("</body></html>\n");
    html
}

fn feature_section(html: &mut String, conformance: &ConformanceReport) {
    let _ = write!(
        html,
        "<h2>Features</h2>\n<p>{} Gateway <b>{}</b> ({} {}).</p>\n\
         <table><tr><th>feature</th><th>scenarios</th><th>passed</th><th>failed</th><th>skipped</th><th>result</th></tr>\n",
        escape(&conformance.summary.text),
        escape(&conformance.mode),
        escape(&conformance.implementation.project),
        escape(&conformance.implementation.version)
    );
    for feature in &conformance.features {
        let class = match feature.result {
            ConformanceResult::Success | ConformanceResult::Partial => "PASS",
            ConformanceResult::Skipped => "NOTRUN",
            ConformanceResult::Failure => "FAIL",
        };
        let _ = writeln!(
            html,
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            escape(feature.summary),
            feature.name,
            escape(&feature.scenarios.join(", ")),
            feature.statistics.passed,
            feature.statistics.failed,
            feature.statistics.skipped,
            feature.result.label()
        );
    }
    html.push_str("</table>\n");
    let skipped: Vec<_> = conformance
        .scenarios
        .iter()
        .filter(|s| s.result == ScenarioResult::SkippedUnsupported)
        .collect();
    if !skipped.is_empty() {
        html.push_str("<p>Skipped as unsupported by this gateway:</p><ul>\n");
        for scenario in skipped {
            let _ = writeln!(
                html,
                "<li>{} ({}): {}</li>",
                escape(&scenario.name),
                escape(&scenario.source.display().to_string()),
                escape(
                    &scenario
                        .unsupported
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
        }
        html.push_str("</ul>\n");
    }
}

fn scenario_section(html: &mut String, scenario: &ScenarioReport) {
    let label = scenario.outcome.label();
    let _ = write!(
        html,
        "<h2>{} <span class=\"{}\">{}</span></h2>\n<p>{}</p>\n<p>Source {}; features: {}. {} wall, {} requests.</p>\n",
        escape(&scenario.name),
        class_of(scenario.outcome),
        label,
        escape(&scenario.description),
        escape(&scenario.source.display().to_string()),
        escape(
            &scenario
                .features
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format_elapsed(scenario.elapsed),
        scenario.requests_sent
    );
    if let Some(svg) = canary_timeline(scenario) {
        let _ = writeln!(
            html,
            "<figure>{svg}<figcaption>Canary timeline: expected (dashed) and observed share with its interval \
             at each split step, with the time the gateway took to serve the new weights.</figcaption></figure>"
        );
    }
    html.push_str(
        "<table><tr><th>#</th><th>step</th><th>result</th><th>time</th><th>details</th></tr>\n",
    );
    for step in &scenario.steps {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>",
            step.index,
            escape(&step.name),
            class_of(step.outcome),
            step.outcome.label(),
            if step.outcome == StepOutcome::NotRun {
                String::new()
            } else {
                format_elapsed(step.elapsed)
            }
        );
        step_details(html, step);
        html.push_str("</td></tr>\n");
    }
    html.push_str("</table>\n");
}

fn step_details(html: &mut String, step: &StepReport) {
    if let Some(message) = &step.message {
        let _ = write!(html, "<pre>{}</pre>", escape(message));
    }
    if let Some(output) = &step.output
        && !output.trim().is_empty()
    {
        let _ = write!(
            html,
            "<details><summary>output</summary><pre>{}</pre></details>",
            escape(output)
        );
    }
    let Some(traffic) = &step.traffic else { return };
    let _ = write!(
        html,
        "<p>{} {}{} &times; {} sent over {} connections ({} concurrent): {} replies, {} failing; {:.0} req/s, \
         p50 {} µs, p99 {} µs.</p>",
        escape(&traffic.method),
        escape(traffic.url.trim_end_matches('/')),
        escape(&traffic.path),
        traffic.summary.sent,
        traffic.summary.connections,
        traffic.concurrency,
        traffic.summary.received,
        traffic.failing_replies,
        traffic.summary.rate(),
        traffic.summary.latency.p50_us,
        traffic.summary.latency.p99_us
    );
    if let Some(trace) = &traffic.trace {
        let _ = write!(
            html,
            "<p>Trace check: {} of {} colorgateway replies have an X-Ray trace connected from {} to the \
             colorteller that answered.{}</p>",
            trace.connected,
            trace.judged,
            if trace.ingress_traced {
                "the ingress"
            } else {
                "the colorgateway (the gateway under test sends no segments)"
            },
            trace
                .failures
                .iter()
                .map(|f| format!("<br>{}", escape(f)))
                .collect::<String>()
        );
    }
    if let Some(propagation) = &traffic.propagation {
        let _ = write!(
            html,
            "<p>Propagation: {}</p>",
            match (&propagation.elapsed, &propagation.error) {
                (Some(elapsed), _) => format!(
                    "the new configuration was served after {}",
                    format_elapsed(*elapsed)
                ),
                (None, Some(error)) => escape(error),
                (None, None) => "not measured".to_owned(),
            }
        );
    }
    if let Some(shift) = &traffic.shift {
        let _ = write!(
            html,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            shift_chart(shift),
            shift_caption(shift)
        );
    }
    if let Some(split) = &traffic.split {
        let _ = write!(
            html,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            split_chart(split),
            split_caption(split)
        );
    }
    if let Some(cross) = &traffic.cross_check {
        let _ = write!(
            html,
            "<p>Stats cross-check over the last {} replies: {} (largest difference {:.3}, tolerance {:.3}); client \
             {}, colorgateway {}.{}</p>",
            cross.window,
            if cross.agrees {
                "the client and the colorgateway agree"
            } else {
                "<b>they disagree</b>"
            },
            cross.max_difference,
            cross.tolerance,
            escape(&format_shares(&cross.client)),
            escape(&format_shares(&cross.gateway)),
            cross
                .note
                .as_deref()
                .map(|n| format!(" {}", escape(n)))
                .unwrap_or_default()
        );
    }
    if !traffic.failure_samples.is_empty() {
        html.push_str("<details open><summary>first failing replies, verbatim</summary>");
        for sample in &traffic.failure_samples {
            let problems: Vec<&str> = sample
                .violations
                .iter()
                .map(|v| v.message.as_str())
                .collect();
            let _ = write!(
                html,
                "<p>request #{} on connection {}, status {}: {}</p><pre>{}</pre>",
                sample.index,
                sample.connection,
                sample
                    .status
                    .map_or_else(|| "none".to_owned(), |s| s.to_string()),
                escape(&problems.join("; ")),
                escape(&sample.body)
            );
        }
        html.push_str("</details>");
    }
    if !traffic.shown_replies.is_empty() {
        let _ = write!(
            html,
            "<details><summary>replies</summary><pre>{}</pre></details>",
            escape(&traffic.shown_replies.join("\n"))
        );
    }
}

fn split_caption(split: &SplitReport) -> String {
    let verdict = &split.verdict;
    let mut caption = format!(
        "Bars: observed share; whiskers: its interval; red ticks: expected share. Split by {}: {} after {} replies (planned {}, cap {}{}); p = {:.3e}; largest deviation not \
         excluded {:.3} (a pass needs {} or less, miss rate {}); alpha {:.2e}; decided in {}.",
        crate::runner::key_name(split.by),
        crate::runner::outcome_label(verdict.outcome),
        verdict.n,
        split.planned_requests,
        split.cap,
        if split.sequential { ", sequential" } else { "" },
        verdict.p_value,
        verdict.unexcluded_deviation,
        split.min_detectable_deviation,
        crate::runner::short_probability(verdict.miss_rate),
        split.alpha,
        format_elapsed(split.time_to_verdict)
    );
    if let Some(bound) = verdict.leak_upper_bound {
        let _ = write!(caption, " Zero-weight leak rate below {bound:.2e}.");
    }
    for reason in &verdict.reasons {
        let _ = write!(caption, " {reason}.");
    }
    escape(&caption)
}

/// Horizontal bars: observed share (bar) with its interval (whisker) and the expected share (red tick).
fn split_chart(split: &SplitReport) -> String {
    const LEFT: f64 = 120.0;
    const WIDTH: f64 = 400.0;
    const ROW: f64 = 28.0;
    let rows = split.verdict.destinations.len().max(1) as f64;
    let height = ROW * rows + 30.0;
    let x = |share: f64| LEFT + WIDTH * share.clamp(0.0, 1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" \
         role=\"img\">",
        w = LEFT + WIDTH + 40.0
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{0}\" y1=\"0\" x2=\"{0}\" y2=\"{1}\" stroke=\"#ddd\"/><text x=\"{0}\" y=\"{2}\" \
             text-anchor=\"middle\">{3}</text>",
            x(tick),
            ROW * rows,
            ROW * rows + 16.0,
            tick
        );
    }
    for (row, destination) in split.verdict.destinations.iter().enumerate() {
        let top = row as f64 * ROW;
        let middle = top + ROW / 2.0;
        let (low, high) = destination.interval;
        let _ = write!(
            svg,
            "<text x=\"{label_x}\" y=\"{text_y}\" text-anchor=\"end\">{name}</text>\
             <rect x=\"{LEFT}\" y=\"{bar_y}\" width=\"{bar_w}\" height=\"{bar_h}\" fill=\"#7aa6d6\">\
             <title>observed {observed:.4} ({count} replies)</title></rect>\
             <line x1=\"{low_x}\" y1=\"{middle}\" x2=\"{high_x}\" y2=\"{middle}\" stroke=\"#123\" stroke-width=\"2\"/>\
             <line x1=\"{low_x}\" y1=\"{tick_top}\" x2=\"{low_x}\" y2=\"{tick_bottom}\" stroke=\"#123\"/>\
             <line x1=\"{high_x}\" y1=\"{tick_top}\" x2=\"{high_x}\" y2=\"{tick_bottom}\" stroke=\"#123\"/>\
             <line x1=\"{expected_x}\" y1=\"{top_line}\" x2=\"{expected_x}\" y2=\"{bottom_line}\" stroke=\"#d32f2f\" \
             stroke-width=\"3\"><title>expected {expected:.4}</title></line>",
            label_x = LEFT - 8.0,
            text_y = middle + 4.0,
            name = escape(&destination.name),
            bar_y = top + 6.0,
            bar_w = x(destination.observed_share) - LEFT,
            bar_h = ROW - 12.0,
            observed = destination.observed_share,
            count = destination.observed,
            low_x = x(low),
            high_x = x(high),
            tick_top = middle - 5.0,
            tick_bottom = middle + 5.0,
            expected_x = x(destination.expected_share),
            top_line = top + 2.0,
            bottom_line = top + ROW - 2.0,
            expected = destination.expected_share,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Fill colours of the destinations in a shift timeline, in order of appearance.
const DESTINATION_COLORS: [&str; 6] = [
    "#7aa6d6", "#f2b134", "#6cc08b", "#b07cc6", "#8c8c8c", "#e07b91",
];
const ERROR_COLOR: &str = "#d32f2f";

/// A shift step as a timeline: per time bucket, the share of each destination (stacked) and of
/// failed replies (red), the share served by a new generation (a line), stale replies (orange
/// marks), each failed reply (red ticks under the axis) and the moments of the change.
fn shift_chart(shift: &ShiftReport) -> String {
    const LEFT: f64 = 50.0;
    const WIDTH: f64 = 820.0;
    const LABEL_ROW: f64 = 13.0;
    const PLOT_H: f64 = 180.0;
    let timeline = &shift.timeline;
    let markers: Vec<(&str, Option<f64>, &str)> = vec![
        ("apply started", shift.apply_started_ms, "#222"),
        ("apply returned", shift.apply_returned_ms, "#777"),
        (
            "first reply from a new generation",
            shift.first_new_generation_ms,
            "#6a1b9a",
        ),
        (
            "backend saw the change live",
            shift.config_live_ms,
            "#1f5fa8",
        ),
        ("generation reported live", shift.reported_ms, "#176b2c"),
    ];
    let top = 8.0 + LABEL_ROW * markers.len() as f64;
    let span = (timeline.bucket_ms * timeline.buckets.len() as f64).max(1.0);
    let x = |ms: f64| LEFT + WIDTH * (ms / span).clamp(0.0, 1.0);
    let y = |share: f64| top + PLOT_H * (1.0 - share.clamp(0.0, 1.0));
    let bottom = top + PLOT_H;
    let legend_y = bottom + 44.0;
    let height = legend_y + 12.0;
    let width = LEFT + WIDTH + 40.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} \
         {height}\" role=\"img\">"
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3}\" \
             text-anchor=\"end\">{tick}</text>",
            y(tick),
            LEFT + WIDTH,
            LEFT - 6.0,
            y(tick) + 4.0
        );
    }
    let bucket_w = WIDTH / timeline.buckets.len().max(1) as f64;
    let mut new_share = Vec::new();
    for (index, bucket) in timeline.buckets.iter().enumerate() {
        let counted: u64 = bucket.destinations.iter().sum::<u64>() + bucket.errors;
        if counted == 0 {
            continue;
        }
        let left = LEFT + bucket_w * index as f64;
        let start_ms = timeline.bucket_ms * index as f64;
        let mut share_below = 0.0;
        let segments = bucket
            .destinations
            .iter()
            .enumerate()
            .map(|(d, n)| {
                (
                    *n,
                    DESTINATION_COLORS[d % DESTINATION_COLORS.len()],
                    timeline.destinations.get(d).map_or("?", String::as_str),
                )
            })
            .chain(std::iter::once((bucket.errors, ERROR_COLOR, "failed")));
        for (n, color, name) in segments {
            if n == 0 {
                continue;
            }
            let share = n as f64 / counted as f64;
            let _ = write!(
                svg,
                "<rect x=\"{left:.1}\" y=\"{top_y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{color}\">\
                 <title>{start:.0}–{end:.0} ms: {name} {n} of {counted}</title></rect>",
                top_y = y(share_below + share),
                w = (bucket_w - 0.5).max(0.5),
                h = PLOT_H * share,
                start = start_ms,
                end = start_ms + timeline.bucket_ms,
                name = escape(name),
            );
            share_below += share;
        }
        let replies = counted.max(bucket.new_generation);
        new_share.push(format!(
            "{:.1},{:.1}",
            left + bucket_w / 2.0,
            y(bucket.new_generation as f64 / replies as f64)
        ));
        if bucket.stale > 0 {
            let cx = left + bucket_w / 2.0;
            let _ = write!(
                svg,
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"#c2185b\"><title>{} stale \
                 replies (sent after the report, served by an older generation)</title></polygon>",
                cx - 4.0,
                top - 8.0,
                cx + 4.0,
                top - 8.0,
                cx,
                top - 1.0,
                bucket.stale
            );
        }
    }
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"><title>share served by a \
         generation newer than {}</title></polyline>",
        new_share.join(" "),
        shift
            .generation_before
            .map_or_else(|| "the one before".to_owned(), |g| g.to_string())
    );
    for at in &timeline.error_ms {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"{ERROR_COLOR}\" stroke-width=\"1.5\">\
             <title>failed reply sent at {at:.1} ms</title></line>",
            x(*at),
            bottom + 2.0,
            bottom + 10.0
        );
    }
    for (row, (label, at, color)) in markers.iter().enumerate() {
        let Some(at) = at else { continue };
        let mx = x(*at);
        let label_y = 8.0 + LABEL_ROW * (row as f64 + 0.7);
        let anchor = if mx > LEFT + WIDTH * 0.7 {
            "end"
        } else {
            "start"
        };
        let text_x = if anchor == "end" { mx - 3.0 } else { mx + 3.0 };
        let _ = write!(
            svg,
            "<line x1=\"{mx:.1}\" y1=\"{line_top:.1}\" x2=\"{mx:.1}\" y2=\"{bottom}\" stroke=\"{color}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/><text x=\"{text_x:.1}\" y=\"{label_y:.1}\" \
             text-anchor=\"{anchor}\" fill=\"{color}\">{label} ({at:.0} ms)</text>",
            line_top = label_y - 9.0,
        );
    }
    for tick in 0..=5 {
        let ms = span * f64::from(tick) / 5.0;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{ms:.0} ms</text>",
            x(ms),
            bottom + 24.0
        );
    }
    let mut legend_x = LEFT;
    let legend = timeline
        .destinations
        .iter()
        .enumerate()
        .map(|(d, name)| {
            (
                escape(name),
                DESTINATION_COLORS[d % DESTINATION_COLORS.len()],
            )
        })
        .chain([
            ("failed (non-2xx, reset)".to_owned(), ERROR_COLOR),
            ("stale after the report".to_owned(), "#c2185b"),
        ]);
    for (name, color) in legend {
        let _ = write!(
            svg,
            "<rect x=\"{legend_x}\" y=\"{0}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{1}\" \
             y=\"{2}\">{name}</text>",
            legend_y - 9.0,
            legend_x + 14.0,
            legend_y
        );
        legend_x += 24.0 + 7.0 * name.chars().count() as f64;
    }
    let _ = write!(
        svg,
        "<line x1=\"{legend_x}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#222\" stroke-width=\"1.5\"/><text \
         x=\"{2}\" y=\"{legend_y}\">share served by a new generation</text></svg>",
        legend_y - 4.0,
        legend_x + 16.0,
        legend_x + 20.0
    );
    svg
}

fn shift_caption(shift: &ShiftReport) -> String {
    let ms =
        |value: Option<f64>| value.map_or_else(|| "never".to_owned(), |v| format!("{v:.0} ms"));
    let since_apply = |at: Option<f64>| Some(at? - shift.apply_started_ms?);
    let generation = |g: Option<u64>| g.map_or_else(|| "?".to_owned(), |g| g.to_string());
    let applied: Vec<String> = shift
        .applied
        .iter()
        .map(|p| format!("manifests/{}", p.display()))
        .collect();
    let mut caption = format!(
        "Shift: kubectl apply -f {} while traffic flowed, generation {} to {}. Bars: share of the \
         replies sent in each {:.0} ms by destination, failed replies in red; line: share served by a \
         new generation. After the apply started, the first reply from a new generation came back \
         at {}, the backend saw the change live at {} and the gateway reported generation {} at {}. \
         {} requests sent after that report were served by an older generation (allowed {}); {} \
         non-2xx replies and {} requests without a reply over the step (allowed {}). Latency p50/p99: \
         before the apply {}/{} µs ({} replies), during the change {}/{} µs ({} replies), after the \
         report {}/{} µs ({} replies).",
        applied.join(" -f "),
        generation(shift.generation_before),
        generation(shift.generation_reported),
        shift.timeline.bucket_ms,
        ms(shift.time_to_new_generation_ms()),
        ms(since_apply(shift.config_live_ms)),
        generation(shift.generation_reported),
        ms(shift.time_to_report_ms()),
        shift.stale_after_report,
        shift.max_stale,
        shift.non_2xx,
        shift.transport_errors,
        shift.max_errors,
        shift.before.latency.p50_us,
        shift.before.latency.p99_us,
        shift.before.replies,
        shift.during.latency.p50_us,
        shift.during.latency.p99_us,
        shift.during.replies,
        shift.after.latency.p50_us,
        shift.after.latency.p99_us,
        shift.after.replies,
    );
    if !shift.numbered {
        caption.push_str(
            " The gateway numbers no configurations: the split was judged on the requests sent \
             after the change was seen live, and no reply could be called stale.",
        );
    }
    if let Some(error) = &shift.error {
        let _ = write!(caption, " {error}.");
    }
    escape(&caption)
}

/// One point of the canary timeline.
struct TimelinePoint<'a> {
    step: &'a str,
    expected: f64,
    observed: f64,
    interval: (f64, f64),
    propagation_ms: Option<f64>,
}

/// The share of the (last-named) destination whose weight changes across the scenario's propagation
/// splits: the canary (v2) in the walkthrough.
fn canary_timeline(scenario: &ScenarioReport) -> Option<String> {
    let splits: Vec<(&StepReport, &SplitReport)> = scenario
        .steps
        .iter()
        .filter_map(|step| {
            let traffic = step.traffic.as_ref()?;
            traffic.propagation.as_ref()?;
            Some((step, traffic.split.as_ref()?))
        })
        .collect();
    if splits.is_empty() {
        return None;
    }
    let names: Vec<&String> = splits[0].1.weights.keys().collect();
    let tracked = names
        .iter()
        .rev()
        .find(|name| {
            let shares: Vec<f64> = splits
                .iter()
                .map(|(_, split)| expected_share(split, name))
                .collect();
            shares.iter().any(|share| (share - shares[0]).abs() > 1e-9)
        })
        .or(names.first())?;
    let points: Vec<TimelinePoint<'_>> = splits
        .iter()
        .map(|(step, split)| {
            let found = split
                .verdict
                .destinations
                .iter()
                .find(|d| &d.name == *tracked);
            TimelinePoint {
                step: &step.name,
                expected: expected_share(split, tracked),
                observed: found.map_or(0.0, |d| d.observed_share),
                interval: found.map_or((0.0, 0.0), |d| d.interval),
                propagation_ms: step
                    .traffic
                    .as_ref()
                    .and_then(|t| t.propagation.as_ref())
                    .and_then(|p| p.elapsed)
                    .map(|e| e.as_secs_f64() * 1000.0),
            }
        })
        .collect();
    Some(timeline_svg(tracked, &points))
}

fn expected_share(split: &SplitReport, name: &str) -> f64 {
    let total: u32 = split.weights.values().sum();
    if total == 0 {
        0.0
    } else {
        f64::from(split.weights.get(name).copied().unwrap_or(0)) / f64::from(total)
    }
}

fn timeline_svg(tracked: &str, points: &[TimelinePoint<'_>]) -> String {
    const LEFT: f64 = 50.0;
    const TOP: f64 = 30.0;
    const PLOT_H: f64 = 200.0;
    const STEP_W: f64 = 160.0;
    let width = LEFT + STEP_W * points.len() as f64 + 20.0;
    let height = TOP + PLOT_H + 50.0;
    let y = |share: f64| TOP + PLOT_H * (1.0 - share.clamp(0.0, 1.0));
    let x = |index: usize| LEFT + STEP_W * (index as f64 + 0.5);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} \
         {height}\" role=\"img\"><text x=\"{LEFT}\" y=\"16\">share of {} per split step</text>",
        escape(tracked)
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3}\" \
             text-anchor=\"end\">{tick}</text>",
            y(tick),
            width - 20.0,
            LEFT - 6.0,
            y(tick) + 4.0
        );
    }
    let expected: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{},{}", x(i), y(p.expected)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d32f2f\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
        expected.join(" ")
    );
    for (index, point) in points.iter().enumerate() {
        let cx = x(index);
        let _ = write!(
            svg,
            "<line x1=\"{cx}\" y1=\"{low}\" x2=\"{cx}\" y2=\"{high}\" stroke=\"#123\" stroke-width=\"2\"/>\
             <circle cx=\"{cx}\" cy=\"{cy}\" r=\"5\" fill=\"#1f5fa8\"><title>observed {observed:.4} [{l:.4}, {h:.4}], \
             expected {expected:.4}</title></circle>\
             <text x=\"{cx}\" y=\"{label_y}\" text-anchor=\"middle\">{name}</text>\
             <text x=\"{cx}\" y=\"{prop_y}\" text-anchor=\"middle\" fill=\"#555\">{propagation}</text>",
            low = y(point.interval.0),
            high = y(point.interval.1),
            cy = y(point.observed),
            observed = point.observed,
            l = point.interval.0,
            h = point.interval.1,
            expected = point.expected,
            label_y = TOP + PLOT_H + 20.0,
            name = escape(&shorten(point.step, 24)),
            prop_y = TOP + PLOT_H + 36.0,
            propagation = point
                .propagation_ms
                .map_or_else(String::new, |ms| format!("served after {ms:.0} ms")),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The service map as a layered SVG: one column per hop from the ingress.
fn service_map_svg(map: &crate::xray::ServiceMap) -> String {
    const BOX_W: f64 = 330.0;
    const BOX_H: f64 = 58.0;
    const COL_GAP: f64 = 120.0;
    const ROW_GAP: f64 = 22.0;
    const LABEL_AT: f64 = 0.25;
    let mut columns: std::collections::BTreeMap<u32, Vec<&crate::xray::MapNode>> =
        std::collections::BTreeMap::new();
    for node in &map.nodes {
        columns.entry(node.depth).or_default().push(node);
    }
    let mut position = std::collections::HashMap::new();
    for (column, (_, nodes)) in columns.iter().enumerate() {
        for (row, node) in nodes.iter().enumerate() {
            let x = 10.0 + column as f64 * (BOX_W + COL_GAP);
            let y = 10.0 + row as f64 * (BOX_H + ROW_GAP);
            position.insert(node.name.as_str(), (x, y));
        }
    }
    let rows = columns.values().map(Vec::len).max().unwrap_or(1) as f64;
    let width = 20.0 + columns.len() as f64 * (BOX_W + COL_GAP) - COL_GAP;
    let height = 20.0 + rows * (BOX_H + ROW_GAP) - ROW_GAP;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"service map\">\
         <defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" \
         orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>"
    );
    for edge in &map.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (
            position.get(edge.from.as_str()),
            position.get(edge.to.as_str()),
        ) else {
            continue;
        };
        let (ax, ay, bx, by) = (x1 + BOX_W, y1 + BOX_H / 2.0, x2, y2 + BOX_H / 2.0);
        let _ = write!(
            svg,
            "<line x1=\"{ax:.0}\" y1=\"{ay:.0}\" x2=\"{bx:.0}\" y2=\"{by:.0}\" stroke=\"#555\" \
             marker-end=\"url(#arrow)\"/><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" \
             paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\">{}</text>",
            // Near the source, where a service's own edges fan apart: at the middle, the edges
            // of every colorgateway to every colorteller cross and their counts overlap.
            ax + (bx - ax) * LABEL_AT,
            ay + (by - ay) * LABEL_AT - 4.0,
            edge.requests
        );
    }
    for node in &map.nodes {
        let Some(&(x, y)) = position.get(node.name.as_str()) else {
            continue;
        };
        let stroke = if node.faults > 0 {
            "#c62828"
        } else if node.errors > 0 {
            "#ef6c00"
        } else {
            "#2e7d32"
        };
        let _ = write!(
            svg,
            "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{BOX_W:.0}\" height=\"{BOX_H:.0}\" rx=\"8\" \
             fill=\"#f7f7f7\" stroke=\"{stroke}\" stroke-width=\"2\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-weight=\"bold\">{}</text>\
             <text x=\"{:.0}\" y=\"{:.0}\">{} requests · p50 {:.1} ms · p99 {:.1} ms</text>\
             <text x=\"{:.0}\" y=\"{:.0}\">4xx {} · 5xx {}</text>",
            x + 8.0,
            y + 17.0,
            escape(&shorten(&node.name, 48)),
            x + 8.0,
            y + 34.0,
            node.requests,
            node.p50_ms,
            node.p99_ms,
            x + 8.0,
            y + 50.0,
            node.errors,
            node.faults
        );
    }
    svg.push_str("</svg>");
    svg
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

fn format_shares(shares: &std::collections::BTreeMap<String, f64>) -> String {
    shares
        .iter()
        .map(|(name, share)| format!("{name} {share:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn class_of(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Passed => "PASS",
        StepOutcome::Failed => "FAIL",
        StepOutcome::Inconclusive => "INCONCLUSIVE",
        StepOutcome::NotRun => "NOTRUN",
    }
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_is_drawn_with_its_markers_failures_and_numbers() {
        use crate::runner::{ShiftBucket, ShiftPhase, ShiftTimeline};
        let bucket = |v1: u64, v2: u64, errors: u64, stale: u64| ShiftBucket {
            destinations: vec![v1, v2],
            new_generation: v2,
            errors,
            stale,
        };
        let shift = ShiftReport {
            applied: vec!["gloo/upstreamgroup-0-100.yaml".into()],
            changed: Vec::new(),
            generation_before: Some(9),
            generation_reported: Some(11),
            numbered: true,
            apply_started_ms: Some(100.0),
            apply_returned_ms: Some(110.0),
            config_live_ms: Some(300.0),
            reported_ms: Some(400.0),
            first_new_generation_ms: Some(250.0),
            before: ShiftPhase::default(),
            during: ShiftPhase::default(),
            after: ShiftPhase::default(),
            non_2xx: 3,
            transport_errors: 1,
            max_errors: 0,
            stale_after_report: 2,
            max_stale: 0,
            unlabelled: 0,
            error: None,
            timeline: ShiftTimeline {
                bucket_ms: 100.0,
                destinations: vec!["v1".into(), "v2".into()],
                buckets: vec![
                    bucket(50, 0, 0, 0),
                    bucket(40, 0, 0, 0),
                    bucket(10, 20, 4, 0),
                    bucket(0, 50, 0, 0),
                    bucket(1, 40, 0, 2),
                ],
                error_ms: vec![255.0, 260.0],
            },
        };
        let svg = shift_chart(&shift);
        for marker in [
            "apply started (100 ms)",
            "apply returned (110 ms)",
            "first reply from a new generation (250 ms)",
            "backend saw the change live (300 ms)",
            "generation reported live (400 ms)",
        ] {
            assert!(svg.contains(marker), "{marker} in {svg}");
        }
        // Every failed reply is a red tick under the axis, and its bucket has a red share.
        assert_eq!(svg.matches("failed reply sent at").count(), 2);
        assert!(svg.contains("200–300 ms: failed 4 of 34"), "{svg}");
        assert!(svg.contains("2 stale replies"), "{svg}");
        let caption = shift_caption(&shift);
        assert!(caption.contains("generation 9 to 11"), "{caption}");
        assert!(caption.contains("first reply from a new generation came back at 150 ms"));
        assert!(
            caption.contains("reported generation 11 at 300 ms"),
            "{caption}"
        );
        assert!(
            caption.contains("2 requests sent after that report"),
            "{caption}"
        );
        assert!(caption.contains("3 non-2xx replies and 1 requests without a reply"));
    }

    #[test]
    fn the_service_map_draws_each_service_and_call() {
        let map = crate::xray::ServiceMap {
            nodes: vec![
                crate::xray::MapNode {
                    name: "ingress".into(),
                    depth: 0,
                    requests: 10,
                    p50_ms: 1.5,
                    p99_ms: 3.25,
                    ..Default::default()
                },
                crate::xray::MapNode {
                    name: "default-gateway (cg)".into(),
                    depth: 1,
                    requests: 10,
                    faults: 1,
                    ..Default::default()
                },
                crate::xray::MapNode {
                    name: "default-colorteller-<blue>".into(),
                    depth: 2,
                    requests: 9,
                    ..Default::default()
                },
            ],
            edges: vec![
                crate::xray::MapEdge {
                    from: "ingress".into(),
                    to: "default-gateway (cg)".into(),
                    requests: 10,
                },
                crate::xray::MapEdge {
                    from: "default-gateway (cg)".into(),
                    to: "default-colorteller-<blue>".into(),
                    requests: 9,
                },
            ],
            segments: 29,
        };
        let svg = service_map_svg(&map);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("<line").count(), 2);
        assert!(
            svg.contains(">10 requests · p50 1.5 ms · p99 3.2 ms<"),
            "{svg}"
        );
        assert!(svg.contains("default-colorteller-&lt;blue&gt;"), "{svg}");
        assert!(svg.contains("#c62828"), "a faulting service is drawn red");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

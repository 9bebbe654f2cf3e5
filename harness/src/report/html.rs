//! The self-contained HTML report: inline CSS and SVG only, so it can be attached to a CI run and
//! opened anywhere.

use std::fmt::Write as _;

use super::conformance::{ConformanceReport, ConformanceResult, ScenarioResult};
use crate::runner::{
    RunReport, ScenarioReport, SplitReport, StepOutcome, StepReport, format_elapsed,
};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\
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
        verdict.miss_rate,
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
fn escape(text: &str) -> String {
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
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

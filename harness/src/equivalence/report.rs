//! The equivalence run's outputs: the terminal table (route by route: what holds, what differs,
//! with example requests), `equivalence-report.json`, JUnit XML and a self-contained HTML
//! migration report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Area, Difference, EquivalenceReport};
use crate::report::ReportError;

/// The files one run wrote.
#[derive(Debug, Clone)]
pub struct EquivalenceFiles {
    pub json: PathBuf,
    pub junit: PathBuf,
    pub html: PathBuf,
}

/// One route's line of the table.
#[derive(Debug, Default)]
struct RouteLine {
    probes_same: usize,
    probes: usize,
    predicted: Vec<String>,
    unpredicted: Vec<String>,
}

fn short_route(route: &str) -> String {
    // `path: Kind ns/name field` → `Kind ns/name field` (the file is in the JSON).
    route
        .split_once(": ")
        .map_or(route, |(_, rest)| rest)
        .lines()
        .next()
        .unwrap_or(route)
        .to_owned()
}

fn by_route(report: &EquivalenceReport) -> BTreeMap<String, RouteLine> {
    let mut lines: BTreeMap<String, RouteLine> = BTreeMap::new();
    for probe in &report.observations.probes {
        let line = lines.entry(short_route(&probe.planned.route)).or_default();
        line.probes += 1;
        if probe.differences.is_empty() {
            line.probes_same += 1;
        }
    }
    for d in &report.differences {
        let key = match d.area {
            Area::Retry => "retries under flaky tellers".to_owned(),
            _ => short_route(&d.route),
        };
        let line = lines.entry(key).or_default();
        let text = format!("{}: {}", d.examples.join(", "), d.summary);
        if d.predicted() {
            line.predicted.push(format!(
                "{text} [known drift: {}]",
                d.predicted_by.join(", ")
            ));
        } else {
            line.unpredicted.push(text);
        }
    }
    lines
}

/// The terminal summary.
pub fn summary_table(report: &EquivalenceReport) -> String {
    let obs = &report.observations;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "equivalence: before {} ↔ after {} on {}",
        obs.before_dir.display(),
        obs.after_dir.display(),
        obs.gateway
    );
    let _ = writeln!(
        out,
        "{} probes: {} the same on both sides. {} weighted routes, retries {}. {} requests in {:.1}s (startup {:.1}s).",
        obs.probes.len(),
        report.probes_same,
        obs.splits.len(),
        if obs.retries.is_some() {
            "exercised"
        } else {
            "not exercised"
        },
        obs.requests,
        obs.elapsed.as_secs_f64(),
        obs.startup.as_secs_f64()
    );
    let _ = writeln!(out, "\n{:<62} {:>9}  differences", "route", "probes");
    for (route, line) in by_route(report) {
        let probes = if line.probes > 0 {
            format!("{}/{} same", line.probes_same, line.probes)
        } else {
            "-".into()
        };
        let state = if line.unpredicted.is_empty() && line.predicted.is_empty() {
            "holds".to_owned()
        } else {
            format!(
                "{} known, {} unpredicted",
                line.predicted.len(),
                line.unpredicted.len()
            )
        };
        let _ = writeln!(out, "{:<62} {:>9}  {state}", truncate(&route, 62), probes);
        for text in line.unpredicted.iter().take(5) {
            let _ = writeln!(out, "    UNPREDICTED {text}");
        }
        if line.unpredicted.len() > 5 {
            let _ = writeln!(
                out,
                "    ... {} more unpredicted",
                line.unpredicted.len() - 5
            );
        }
        for text in line.predicted.iter().take(3) {
            let _ = writeln!(out, "    known       {text}");
        }
        if line.predicted.len() > 3 {
            let _ = writeln!(out, "    ... {} more known", line.predicted.len() - 3);
        }
    }
    for split in &obs.splits {
        let _ = writeln!(
            out,
            "split {:?} {}: before {:?} ({} requests), after {:?} ({} requests)",
            split.layer,
            short_route(&split.route),
            split.before.outcome,
            split.before.n,
            split.after.outcome,
            split.after.n
        );
    }
    if let Some(retry) = &obs.retries {
        let _ = writeln!(
            out,
            "retries: tellers flaking {:.0}%: before {}/{} succeeded, after {}/{}",
            retry.flake_rate * 100.0,
            retry.before.successes,
            retry.before.n,
            retry.after.successes,
            retry.after.n
        );
    } else if let Some(why) = &obs.retries_skipped {
        let _ = writeln!(out, "retries: not exercised: {why}");
    }
    let _ = writeln!(
        out,
        "\n{}: {} differences, {} predicted by {}, {} unpredicted{}",
        if report.passed { "PASS" } else { "FAIL" },
        report.differences.len(),
        report.predicted(),
        report
            .drift_report
            .as_ref()
            .map_or_else(|| "no drift report".to_owned(), |p| p.display().to_string()),
        report.unpredicted(),
        if report.strict {
            " (strict: any difference fails)"
        } else {
            ""
        }
    );
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// The JUnit report: one suite, one case per probe, weighted route and the retry check.
pub fn junit(report: &EquivalenceReport) -> Report {
    let mut junit = Report::new("colormesh-equivalence");
    junit.set_time(report.observations.elapsed);
    let mut suite = TestSuite::new("equivalence");
    let fail = |message: String, known: bool| {
        if known {
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!("known drift: {message}"));
            status
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(message);
            status.set_type("unpredicted difference");
            status
        }
    };
    let find = |area: Area, example: &str| -> Option<&Difference> {
        report
            .differences
            .iter()
            .find(|d| d.area == area && d.examples.iter().any(|e| e == example))
    };
    for probe in &report.observations.probes {
        let example = probe.planned.probe.describe();
        let status = match find(Area::Probe, &example) {
            None => TestCaseStatus::success(),
            Some(d) => fail(d.summary.clone(), d.predicted() && !report.strict),
        };
        let mut case = TestCase::new(format!("{example} ({})", probe.planned.purpose), status);
        case.set_classname(format!("probe.{}", short_route(&probe.planned.route)));
        suite.add_test_case(case);
    }
    for split in &report.observations.splits {
        let status = match find(Area::Split, &split.request.describe()) {
            None => TestCaseStatus::success(),
            Some(d) => fail(d.summary.clone(), d.predicted() && !report.strict),
        };
        let mut case = TestCase::new(format!("split {}", short_route(&split.route)), status);
        case.set_classname("split");
        suite.add_test_case(case);
    }
    if let Some(retry) = &report.observations.retries {
        let status = match find(Area::Retry, &retry.request.describe()) {
            None => TestCaseStatus::success(),
            Some(d) => fail(d.summary.clone(), d.predicted() && !report.strict),
        };
        let mut case = TestCase::new("success rate under flaky tellers", status);
        case.set_classname("retry");
        suite.add_test_case(case);
    }
    junit.add_test_suite(suite);
    junit
}

/// The HTML migration report.
pub fn html(report: &EquivalenceReport) -> String {
    use crate::report::html::escape;
    let obs = &report.observations;
    let gate = if report.passed { "PASS" } else { "FAIL" };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>migration equivalence: {gate}</title>\
         <style>{}.KNOWN{{color:#a15c00;font-weight:bold}}</style></head><body>\n<h1>Migration equivalence: <span class=\"{gate}\">{gate}</span></h1>\n",
        crate::report::html::STYLE
    );
    let _ = writeln!(
        html,
        "<p>Before <code>{}</code>, after <code>{}</code>, gateway <b>{}</b>. Drift report: {}.</p>\
         <p>{} probes ({} the same on both sides), {} weighted routes judged on both sides, retries {}. \
         {} requests in {:.1}s. Statistical checks share a false-alarm budget of {:.0e}: {:.2e} per check, δ {}, power {}.</p>\
         <p><b>{}</b> differences: <span class=\"KNOWN\">{} predicted</span> by the drift report, <span class=\"FAIL\">{} unpredicted</span>{}.</p>",
        escape(&obs.before_dir.display().to_string()),
        escape(&obs.after_dir.display().to_string()),
        escape(&obs.gateway),
        report.drift_report.as_ref().map_or_else(
            || "none".to_owned(),
            |p| format!("<code>{}</code>", escape(&p.display().to_string()))
        ),
        obs.probes.len(),
        report.probes_same,
        obs.splits.len(),
        if obs.retries.is_some() {
            "exercised"
        } else {
            "not exercised"
        },
        obs.requests,
        obs.elapsed.as_secs_f64(),
        obs.family_alpha,
        obs.per_check_alpha,
        obs.min_detectable_deviation,
        obs.power,
        report.differences.len(),
        report.predicted(),
        report.unpredicted(),
        if report.strict { " (strict)" } else { "" }
    );
    html.push_str(
        "<h2>Routes read</h2>\n<table><tr><th>side</th><th>flavour</th><th>route</th></tr>\n",
    );
    for (side, flavor, source) in &obs.routes {
        let _ = writeln!(
            html,
            "<tr><td>{side}</td><td>{flavor:?}</td><td><code>{}</code></td></tr>",
            escape(source)
        );
    }
    html.push_str("</table>\n<h2>Probes by route</h2>\n<p>Each probe is counted under the first route it was derived from.</p>\n<table><tr><th>route</th><th>probes the same</th><th>unpredicted</th><th>known drift</th></tr>\n");
    for (route, line) in by_route(report) {
        let list = |items: &[String]| {
            items
                .iter()
                .take(6)
                .map(|t| format!("<div>{}</div>", escape(t)))
                .collect::<String>()
                + &if items.len() > 6 {
                    format!("<div>… {} more</div>", items.len() - 6)
                } else {
                    String::new()
                }
        };
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}/{}</td><td class=\"FAIL\">{}</td><td>{}</td></tr>",
            escape(&route),
            line.probes_same,
            line.probes,
            list(&line.unpredicted),
            list(&line.predicted)
        );
    }
    html.push_str("</table>\n<h2>Weighted routes</h2>\n");
    for split in &obs.splits {
        let _ = writeln!(
            html,
            "<h3>{:?}: <code>{}</code></h3><p>Request <code>{}</code>.</p>\
             <table><tr><th>destination</th><th>weight</th><th>before: share [interval]</th><th>after: share [interval]</th></tr>",
            split.layer,
            escape(&split.route),
            escape(&split.request.describe())
        );
        for w in &split.expected {
            let cell = |v: &crate::stats::SplitVerdict| {
                v.destinations
                    .iter()
                    .find(|d| d.name == w.label)
                    .map_or_else(
                        || "-".into(),
                        |d| {
                            format!(
                                "{:.1}% [{:.1}, {:.1}] ({})",
                                d.observed_share * 100.0,
                                d.interval.0 * 100.0,
                                d.interval.1 * 100.0,
                                d.observed
                            )
                        },
                    )
            };
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&w.label),
                w.weight,
                cell(&split.before),
                cell(&split.after)
            );
        }
        let outcome = |v: &crate::stats::SplitVerdict| {
            let name = format!("{:?}", v.outcome).to_uppercase();
            format!(
                "<span class=\"{name}\">{name}</span> after {} requests",
                v.n
            )
        };
        let _ = writeln!(
            html,
            "<tr><td colspan=\"2\">verdict</td><td>{}</td><td>{}</td></tr></table>",
            outcome(&split.before),
            outcome(&split.after)
        );
    }
    html.push_str("<h2>Retries and timeouts</h2>\n");
    if let Some(retry) = &obs.retries {
        let _ = write!(
            html,
            "<p>Every colorteller answers 503 to {:.0}% of calls; request <code>{}</code>. Intervals at 1 − {:.1e} each.</p>\
             <table><tr><th>side</th><th>succeeded</th><th>interval</th></tr>\
             <tr><td>before</td><td>{}/{}</td><td>[{:.1}%, {:.1}%]</td></tr>\
             <tr><td>after</td><td>{}/{}</td><td>[{:.1}%, {:.1}%]</td></tr></table><ul>",
            retry.flake_rate * 100.0,
            escape(&retry.request.describe()),
            retry.alpha / 2.0,
            retry.before.successes,
            retry.before.n,
            retry.before.interval.0 * 100.0,
            retry.before.interval.1 * 100.0,
            retry.after.successes,
            retry.after.n,
            retry.after.interval.0 * 100.0,
            retry.after.interval.1 * 100.0
        );
        for line in &retry.configured {
            let _ = write!(html, "<li><code>{}</code></li>", escape(line));
        }
        html.push_str("</ul>\n");
    } else if let Some(why) = &obs.retries_skipped {
        let _ = writeln!(html, "<p>Not exercised: {}.</p>", escape(why));
    }
    html.push_str("<h2>Differences</h2>\n<table><tr><th>kind</th><th>example</th><th>what differs</th><th>drift report</th></tr>\n");
    for d in &report.differences {
        let _ = writeln!(
            html,
            "<tr><td>{:?}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            d.area,
            escape(&d.examples.join(", ")),
            escape(&d.summary),
            if d.predicted() {
                format!(
                    "<span class=\"KNOWN\">known</span>: {}",
                    escape(&d.predicted_by.join(", "))
                )
            } else {
                "<span class=\"FAIL\">unpredicted</span>".to_owned()
            }
        );
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

/// Writes `equivalence-report.json`, `equivalence-junit.xml` and `equivalence-report.html`.
pub fn write_reports(
    report: &EquivalenceReport,
    dir: &Path,
) -> Result<EquivalenceFiles, ReportError> {
    let io = |path: &Path| {
        let file = path.to_owned();
        move |source| ReportError::Write { file, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = EquivalenceFiles {
        json: dir.join("equivalence-report.json"),
        junit: dir.join("equivalence-junit.xml"),
        html: dir.join("equivalence-report.html"),
    };
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(&files.json, json).map_err(io(&files.json))?;
    let xml = junit(report).to_string()?;
    std::fs::write(&files.junit, xml).map_err(io(&files.junit))?;
    std::fs::write(&files.html, html(report)).map_err(io(&files.html))?;
    Ok(files)
}

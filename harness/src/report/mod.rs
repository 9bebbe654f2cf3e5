//! Reports of a run: the terminal summary table, `report.json`, JUnit XML and a self-contained
//! HTML page (inline CSS and SVG, no external assets). The conformance suite adds the per-feature
//! view ([`conformance`]): the feature table, `conformance-report.json`, and the same three files
//! with the skipped scenarios and the feature table in them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::runner::{RunReport, StepOutcome, format_elapsed};

pub mod conformance;
pub(crate) mod html;
mod junit;

pub use html::{render_conformance_html, render_html};
pub use junit::{junit_conformance_report, junit_report};

/// The files [`write_reports`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub junit: PathBuf,
    pub html: PathBuf,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {file}: {source}")]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise the run report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot serialise the JUnit report: {0}")]
    Junit(#[from] quick_junit::SerializeError),
}

/// Writes `report.json`, `junit.xml` and `report.html` into `dir` (created if missing).
pub fn write_reports(run: &RunReport, dir: &Path) -> Result<ReportFiles, ReportError> {
    write_files(
        dir,
        &serde_json::to_vec(run)?,
        &junit_report(run).to_string()?,
        &render_html(run),
    )
}

/// [`write_reports`] for a conformance run: the JUnit file also lists the skipped scenarios and
/// the HTML page opens with the feature table. `conformance-report.json` is written separately
/// ([`conformance::write_conformance_report`]).
pub fn write_conformance_reports(
    run: &RunReport,
    conformance: &conformance::ConformanceReport,
    dir: &Path,
) -> Result<ReportFiles, ReportError> {
    write_files(
        dir,
        &serde_json::to_vec(run)?,
        &junit_conformance_report(run, conformance).to_string()?,
        &render_conformance_html(run, conformance),
    )
}

fn write_files(
    dir: &Path,
    json: &[u8],
    junit: &str,
    html: &str,
) -> Result<ReportFiles, ReportError> {
    let write = |name: &str, contents: &[u8]| -> Result<PathBuf, ReportError> {
        let file = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&file, contents))
            .map_err(|source| ReportError::Write {
                file: file.clone(),
                source,
            })?;
        Ok(file)
    };
    // Compact: traffic steps keep one record per request, which pretty-printing would triple.
    let json = write("report.json", json)?;
    let junit = write("junit.xml", junit.as_bytes())?;
    let html = write("report.html", html.as_bytes())?;
    Ok(ReportFiles { json, junit, html })
}

/// The summary table printed at the end of a run: one line per step, then the run's figures.
pub fn summary_table(run: &RunReport) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for scenario in &run.scenarios {
        for step in &scenario.steps {
            let (requests, detail) = match &step.traffic {
                Some(traffic) => {
                    let detail = match &traffic.split {
                        Some(split) => format!(
                            "split n={} (planned {}), p={:.2e}, not excluded {:.3}{}",
                            split.verdict.n,
                            split.planned_requests,
                            split.verdict.p_value,
                            split.verdict.unexcluded_deviation,
                            traffic
                                .propagation
                                .as_ref()
                                .and_then(|p| p.elapsed)
                                .map(|e| format!(", propagation {}", format_elapsed(e)))
                                .unwrap_or_default()
                        ),
                        None if traffic.failing_replies > 0 => {
                            format!("{} failing replies", traffic.failing_replies)
                        }
                        None => String::new(),
                    };
                    (traffic.summary.sent.to_string(), detail)
                }
                None => (String::new(), String::new()),
            };
            rows.push([
                format!("{} #{}", scenario.name, step.index),
                truncate(&step.name, 48),
                step.outcome.label().to_owned(),
                requests,
                if step.outcome == StepOutcome::NotRun {
                    String::new()
                } else {
                    format_elapsed(step.elapsed)
                },
            ]);
            if !detail.is_empty() {
                rows.push([
                    String::new(),
                    format!("  {detail}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
    }
    let headers = ["SCENARIO", "STEP", "RESULT", "REQUESTS", "TIME"];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    let line = |table: &mut String, cells: [&str; 5]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        let _ = writeln!(table, "{}", text.trim_end());
    };
    line(&mut table, headers);
    for row in &rows {
        line(&mut table, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let passed = run.scenarios.iter().filter(|s| s.passed()).count();
    let _ = writeln!(
        table,
        "\n{} of {} scenarios passed on {} (seed {}). Wall time {}, {} requests, {} verdicts, {:.0} requests per verdict.",
        passed,
        run.scenarios.len(),
        run.backend,
        run.seed,
        format_elapsed(run.elapsed),
        run.requests_sent,
        run.verdicts,
        run.requests_per_verdict()
    );
    let _ = writeln!(
        table,
        "Split checks: {} sharing a family alpha of {:.0e} ({}): {:.2e} each, deviation {}, power {}.",
        run.split_checks,
        run.family_alpha,
        run.correction,
        run.per_check_alpha,
        run.min_detectable_deviation,
        run.power
    );
    if let Some(sentence) = false_red_sentence(run) {
        let _ = writeln!(table, "{sentence}");
    }
    let inconclusive = run
        .scenarios
        .iter()
        .filter(|s| s.outcome == StepOutcome::Inconclusive)
        .count();
    if inconclusive > 0 {
        let _ = writeln!(
            table,
            "{inconclusive} scenario(s) inconclusive: not a pass; rerun or raise the cap."
        );
    }
    table
}

/// What the run's split checks cost a correct gateway: the probability that one of them goes
/// red (fail or inconclusive), summed over the checks. `None` without split checks.
pub(crate) fn false_red_sentence(run: &RunReport) -> Option<String> {
    let splits: Vec<&crate::runner::SplitReport> = run
        .scenarios
        .iter()
        .flat_map(|s| &s.steps)
        .filter_map(|step| step.traffic.as_ref()?.split.as_ref())
        .collect();
    if splits.is_empty() {
        return None;
    }
    let false_red: f64 = splits.iter().filter_map(|s| s.false_red).sum();
    let exact = splits
        .iter()
        .filter(|s| s.correct_gateway.is_some_and(|c| c.exact))
        .count();
    let fixed = splits.iter().filter(|s| s.false_red.is_none()).count();
    Some(format!(
        "False red: a correct gateway fails or leaves inconclusive one of these {} checks with \
         probability at most {false_red:.2e} ({exact} computed exactly, the rest bounded; \
         connection checks at their alpha){}.",
        splits.len(),
        if fixed > 0 {
            format!("; {fixed} fixed-sample check(s) not included")
        } else {
            String::new()
        }
    ))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

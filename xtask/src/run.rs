//! Running scenarios: finding the scenario files, running them on a started backend, and the
//! summary and reports every task prints and writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use harness::backend::Backend;
use harness::runner::{RunReport, RunSettings, run_all};
use harness::scenario::{self, Scenario};

/// Runs the scenarios on a started backend, prints the summary, writes the reports, shuts down.
pub(crate) async fn run_on<B: Backend>(
    backend: &mut B,
    scenarios: &[Scenario],
    settings: &RunSettings,
) -> anyhow::Result<RunReport> {
    let mut stdout = std::io::stdout();
    let report = run_all(backend, scenarios, settings, &mut stdout).await;
    if let Err(error) = backend.shutdown().await {
        eprintln!("warning: stopping the {} backend: {error}", backend.name());
    }
    println!("\n{}", harness::report::summary_table(&report));
    if let Some(dir) = &settings.report_dir {
        let files = harness::report::write_reports(&report, dir).context("writing the reports")?;
        println!(
            "Reports: {}, {}, {}",
            files.json.display(),
            files.junit.display(),
            files.html.display()
        );
    }
    stdout.flush().ok();
    Ok(report)
}

/// Every `scenarios/*.yaml` (sorted) when nothing is selected; otherwise each selection as a path,
/// a file stem or a scenario name.
pub(crate) fn resolve_scenarios(dir: &Path, selection: &[String]) -> anyhow::Result<Vec<Scenario>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let all: Vec<Scenario> = files
        .iter()
        .map(|file| scenario::load(file))
        .collect::<Result<_, _>>()?;
    if selection.is_empty() {
        if all.is_empty() {
            bail!("{} holds no scenario files", dir.display());
        }
        return Ok(all);
    }
    selection
        .iter()
        .map(|wanted| {
            let as_path = Path::new(wanted);
            if as_path.is_file() {
                return Ok(scenario::load(as_path)?);
            }
            all.iter()
                .find(|s| {
                    s.name.eq_ignore_ascii_case(wanted)
                        || s.source.file_stem().is_some_and(|stem| stem.eq_ignore_ascii_case(wanted.as_str()))
                })
                .cloned()
                .with_context(|| {
                    format!(
                        "--scenario {wanted}: no such file and no scenario of that name in {} (known: {})",
                        dir.display(),
                        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect()
}

pub(crate) fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_resolve_by_name_stem_and_path() {
        let dir = crate::workspace_root().join("scenarios");
        let all = resolve_scenarios(&dir, &[]).unwrap();
        assert!(all.iter().any(|s| s.name == "Walkthrough"));
        let by_stem = resolve_scenarios(&dir, &["walkthrough".to_owned()]).unwrap();
        assert_eq!(by_stem[0].name, "Walkthrough");
        let by_name = resolve_scenarios(&dir, &["WALKTHROUGH".to_owned()]).unwrap();
        assert_eq!(by_name[0].name, "Walkthrough");
        let path = dir.join("walkthrough.yaml").display().to_string();
        assert_eq!(
            resolve_scenarios(&dir, &[path]).unwrap()[0].name,
            "Walkthrough"
        );
        let error = resolve_scenarios(&dir, &["nope".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--scenario nope") && error.contains("Walkthrough"),
            "{error}"
        );
    }
}

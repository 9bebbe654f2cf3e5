//! `cargo xtask e2e` and `cargo xtask walkthrough`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use harness::backend::local::{LocalBackend, LocalConfig};
use harness::backend::{Backend, BackendKind};
use harness::runner::{RunSettings, run_all};
use harness::scenario::{self, Scenario};
use xshell::{Shell, cmd};

use crate::RunArgs;

/// Builds, resolves scenarios, runs them `repeat` times (seeds `seed`, `seed + 1`, ...) and writes
/// reports; returns the gate: every run passed.
pub(crate) async fn e2e(
    selection: &[String],
    args: &RunArgs,
    narrate: bool,
    repeat: u32,
) -> anyhow::Result<bool> {
    if repeat == 0 {
        bail!("--repeat 0: nothing to run; give 1 or more");
    }
    let root = crate::workspace_root();
    let scenarios = resolve_scenarios(&root.join("scenarios"), selection)?;
    if args.backend != BackendKind::Local {
        if repeat != 1 {
            bail!("--repeat runs on the local backend; on a cluster, run the task again");
        }
        let report_dir = args
            .report_dir
            .clone()
            .unwrap_or_else(|| root.join("target").join("e2e-report"));
        let seed = args.seed.unwrap_or_else(clock_seed);
        let settings = run_settings(&root, args, seed, narrate, report_dir);
        return crate::cluster_e2e::run(
            &root,
            args.backend,
            args.gateway.gateway,
            &args.cluster,
            &scenarios,
            &settings,
        )
        .await;
    }
    let gateway = args.gateway.command(&root)?;
    let bin_dir = build_binaries(&root)?;
    let first_seed = args.seed.unwrap_or_else(clock_seed);
    let report_root = args
        .report_dir
        .clone()
        .unwrap_or_else(|| root.join("target").join("e2e-report"));
    println!(
        "colormesh e2e: {} scenario(s) on the local backend with {}, seed {first_seed} (repeat with --seed {first_seed}){}, binaries in {}",
        scenarios.len(),
        args.gateway.label(),
        if repeat > 1 {
            format!(", {repeat} runs")
        } else {
            String::new()
        },
        bin_dir.display()
    );
    let mut runs = Vec::new();
    for index in 0..repeat {
        let seed = first_seed.wrapping_add(u64::from(index));
        let report_dir = if repeat > 1 {
            report_root.join(format!("run-{:02}-seed-{seed}", index + 1))
        } else {
            report_root.clone()
        };
        let settings = run_settings(&root, args, seed, narrate, report_dir);
        if repeat > 1 {
            println!("\n== run {}/{repeat}, seed {seed}", index + 1);
        }
        let config = LocalConfig {
            bin_dir: bin_dir.clone(),
            gateway: gateway.clone(),
            manifests_dir: settings.manifests_dir.clone(),
            work_dir: None,
            seed,
        };
        let mut backend = LocalBackend::start(config)
            .await
            .context("starting the local backend")?;
        let report = run_on(&mut backend, &scenarios, &settings).await?;
        runs.push((seed, report.passed(), report.elapsed, report.requests_sent));
    }
    if repeat > 1 {
        println!("\n{}", repeat_summary(args.gateway.label(), &runs));
    }
    Ok(runs.iter().all(|(_, passed, _, _)| *passed))
}

/// The settings of one e2e run, the same on every backend.
fn run_settings(
    root: &Path,
    args: &RunArgs,
    seed: u64,
    narrate: bool,
    report_dir: PathBuf,
) -> RunSettings {
    RunSettings::builder(root.join("manifests"))
        .seed(seed)
        .family_alpha(args.family_alpha)
        .narrate(narrate)
        .progress(true)
        .report_dir(report_dir)
        .build()
}

/// One line per run and a total, for `--repeat`.
fn repeat_summary(gateway: &str, runs: &[(u64, bool, std::time::Duration, u64)]) -> String {
    let passed = runs.iter().filter(|(_, ok, _, _)| *ok).count();
    let mut out = format!(
        "Repeated runs on {gateway}: {passed}/{} passed\n",
        runs.len()
    );
    for (seed, ok, elapsed, requests) in runs {
        out.push_str(&format!(
            "  seed {seed:<22} {:<4} {:>8}  {requests} requests\n",
            if *ok { "PASS" } else { "FAIL" },
            harness::runner::format_elapsed(*elapsed)
        ));
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|(_, ok, _, _)| !ok)
        .map(|(seed, ..)| seed.to_string())
        .collect();
    if !failed.is_empty() {
        out.push_str(&format!(
            "  failed seeds: {} (repeat one with --seed)\n",
            failed.join(", ")
        ));
    }
    out
}

/// Runs the scenarios on a started backend, prints the summary, writes the reports, shuts down.
pub(crate) async fn run_on<B: Backend>(
    backend: &mut B,
    scenarios: &[Scenario],
    settings: &RunSettings,
) -> anyhow::Result<harness::runner::RunReport> {
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

/// `cargo build --bins` with the profile xtask itself was built with; returns the binaries' folder.
pub(crate) fn build_binaries(root: &Path) -> anyhow::Result<PathBuf> {
    let shell = Shell::new().context("starting a shell for cargo")?;
    shell.change_dir(root);
    let release: &[&str] = if cfg!(debug_assertions) {
        &[]
    } else {
        &["--release"]
    };
    cmd!(shell, "cargo build --quiet --bins {release...}")
        .run()
        .context("cargo build --bins failed; the scenarios need the workspace binaries")?;
    // xtask runs from the same target folder and profile as the binaries it just built.
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the xtask binary has no parent folder")
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

#[cfg(test)]
mod repeat_tests {
    use std::time::Duration;

    use super::repeat_summary;

    #[test]
    fn the_repeat_summary_counts_passes_and_names_failed_seeds() {
        let runs = [
            (7, true, Duration::from_secs(5), 8000),
            (8, false, Duration::from_secs(6), 9000),
        ];
        let text = repeat_summary("Envoy", &runs);
        assert!(
            text.starts_with("Repeated runs on Envoy: 1/2 passed"),
            "{text}"
        );
        assert!(text.contains("failed seeds: 8"), "{text}");
    }
}

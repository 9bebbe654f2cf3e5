//! `cargo xtask e2e` and `cargo xtask walkthrough`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use harness::backend::BackendKind;
use harness::backend::local::{LocalBackend, LocalConfig};
use harness::runner::RunSettings;

use crate::RunArgs;
use crate::run::{clock_seed, resolve_scenarios, run_on};

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
        return crate::cluster_e2e::run_or_rebuild(
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
    let bin_dir = crate::cargo::build_binaries(&root)?;
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
            echo_requests: false,
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

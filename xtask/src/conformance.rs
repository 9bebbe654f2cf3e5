//! `cargo xtask conformance`: every `scenarios/conformance/*.yaml` against the gateway under
//! test, judged per feature.
//!
//! Scenarios claiming a feature the gateway kind declares unsupported
//! ([`unsupported_features`]) are not run; they are reported as skipped. The exit code is the
//! gate: a failed or inconclusive scenario fails the run, a skipped one does not.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use clap::Args;
use harness::backend::Backend;
use harness::backend::local::{LocalBackend, LocalConfig};
use harness::features::Feature;
use harness::report::conformance::{
    ConformanceContext, Implementation, conformance_report, feature_table, profile_table, select,
    write_conformance_report,
};
use harness::runner::{RunSettings, format_elapsed, run_all};
use harness::scenario::Scenario;
use xshell::{Shell, cmd};

use crate::gateway::{GatewayArgs, GatewayKind};

/// `cargo xtask conformance` options.
#[derive(Debug, Args)]
pub(crate) struct ConformanceArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Run only the scenarios claiming this feature; repeatable. Default: every scenario.
    #[arg(long = "feature", value_name = "FEATURE")]
    features: Vec<Feature>,
    /// Print the feature registry with the scenarios claiming each feature, then exit.
    #[arg(long)]
    list_features: bool,
    /// Seed for the gateway's weighted picks. Default: derived from the clock, and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Where the reports go.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Family-wise false-alarm budget over all split checks of the run.
    #[arg(long, default_value_t = 1e-4)]
    family_alpha: f64,
}

/// The features each gateway kind declares unsupported: their scenarios are skipped and shown as
/// such. The one place this is decided.
pub(crate) fn unsupported_features(kind: GatewayKind) -> &'static [Feature] {
    match kind {
        GatewayKind::Builtin
        | GatewayKind::Envoy
        | GatewayKind::Gloo
        | GatewayKind::Kgateway
        | GatewayKind::EnvoyGateway
        | GatewayKind::Istio => &[],
    }
}

/// Runs the suite; `Ok(false)` is a completed run with a failure.
pub(crate) async fn conformance(args: &ConformanceArgs) -> anyhow::Result<bool> {
    let root = crate::workspace_root();
    let scenario_dir = root.join("scenarios").join("conformance");
    let scenarios = crate::run::resolve_scenarios(&scenario_dir, &[])?;
    if args.list_features {
        print!("{}", list_features(&scenarios));
        return Ok(true);
    }
    let unsupported: BTreeSet<Feature> = unsupported_features(args.gateway.gateway)
        .iter()
        .copied()
        .collect();
    let selection = select(scenarios, &args.features, &unsupported);
    if selection.run.is_empty() && selection.skipped.is_empty() {
        bail!(
            "no scenario in {} claims {}",
            scenario_dir.display(),
            args.features
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    let gateway = args.gateway.command(&root)?;
    let bin_dir = crate::cargo::build_binaries(&root)?;
    let seed = args.seed.unwrap_or_else(crate::run::clock_seed);
    let report_dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| root.join("target").join("conformance-report"));
    let settings = RunSettings::builder(root.join("manifests"))
        .seed(seed)
        .family_alpha(args.family_alpha)
        .progress(true)
        .report_dir(report_dir.clone())
        .build();
    let implementation = implementation(&root, args, &gateway.resolve(&bin_dir))?;
    println!(
        "colormesh conformance: {} scenario(s) on the local backend with {} ({}), {} skipped as \
         unsupported, seed {seed} (repeat with --seed {seed})",
        selection.run.len(),
        args.gateway.label(),
        implementation.version,
        selection.skipped.len()
    );
    let config = LocalConfig {
        bin_dir,
        gateway,
        manifests_dir: settings.manifests_dir.clone(),
        work_dir: None,
        seed,
        echo_requests: false,
    };
    let mut backend = LocalBackend::start(config)
        .await
        .context("starting the local backend")?;
    let mut stdout = std::io::stdout();
    let run = run_all(&mut backend, &selection.run, &settings, &mut stdout).await;
    if !run.passed() {
        let kept = backend.keep_work_dir();
        println!(
            "\nThe gateways' logs and the cluster folder are kept in {}",
            kept.display()
        );
    }
    if let Err(error) = backend.shutdown().await {
        eprintln!("warning: stopping the local backend: {error}");
    }
    let context = ConformanceContext {
        implementation,
        mode: gateway_mode(args.gateway.gateway).to_owned(),
        unsupported,
        only: args.features.clone(),
        date: SystemTime::now(),
    };
    let report = conformance_report(&run, &selection.skipped, &context);
    println!("\n{}", feature_table(&report));
    println!("{}", profile_table(&report));
    println!(
        "Wall time {}, {} requests, {} verdicts.",
        format_elapsed(run.elapsed),
        run.requests_sent,
        run.verdicts
    );
    let files = harness::report::write_conformance_reports(&run, &report, &report_dir)
        .context("writing the reports")?;
    let conformance_file =
        write_conformance_report(&report, &report_dir).context("writing the conformance report")?;
    println!(
        "Reports: {}, {}, {}, {}",
        conformance_file.display(),
        files.json.display(),
        files.junit.display(),
        files.html.display()
    );
    stdout.flush().ok();
    Ok(report.passed())
}

fn gateway_mode(kind: GatewayKind) -> &'static str {
    match kind {
        GatewayKind::Builtin => "builtin",
        GatewayKind::Envoy => "envoy",
        GatewayKind::Gloo => "gloo",
        GatewayKind::Kgateway => "kgateway",
        GatewayKind::EnvoyGateway => "envoy-gateway",
        GatewayKind::Istio => "istio",
    }
}

/// The registry, one feature a line, with the scenarios that claim it.
fn list_features(scenarios: &[Scenario]) -> String {
    let width = Feature::ALL
        .iter()
        .map(|f| f.name().len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for feature in Feature::ALL {
        let claimed: Vec<&str> = scenarios
            .iter()
            .filter(|s| s.features.contains(feature))
            .map(|s| s.name.as_str())
            .collect();
        let claimed = if claimed.is_empty() {
            "(no scenario)".to_owned()
        } else {
            claimed.join(", ")
        };
        text.push_str(&format!(
            "{:<width$}  {}\n{:<width$}  scenarios: {claimed}\n",
            feature.name(),
            feature.summary(),
            ""
        ));
    }
    text
}

/// Who is under test: the program's own `--version` line and the workspace commit.
fn implementation(
    root: &Path,
    args: &ConformanceArgs,
    program: &Path,
) -> anyhow::Result<Implementation> {
    let shell = Shell::new().context("starting a shell")?;
    shell.change_dir(root);
    let reported = match args.gateway.gateway {
        GatewayKind::Builtin => cmd!(shell, "{program} --version")
            .quiet()
            .read()
            .with_context(|| format!("{} --version", program.display()))?,
        GatewayKind::Envoy => {
            let envoy = crate::envoy::envoy_binary(root, args.gateway.envoy_bin.as_deref())?;
            crate::envoy::version(&envoy)?
        }
        GatewayKind::Gloo
        | GatewayKind::Kgateway
        | GatewayKind::EnvoyGateway
        | GatewayKind::Istio => {
            bail!("the conformance suite runs on the local backend: --gateway builtin or envoy")
        }
    };
    // `envoy --version` prints `<path>  version: <sha>/<version>/...`: keep what follows `version:`.
    let version = reported
        .split_once("version:")
        .map_or(reported.as_str(), |(_, version)| version)
        .trim()
        .to_owned();
    // Read-only: the commit the suite and the builtin gateway were built from, when in a checkout.
    let commit = cmd!(shell, "git rev-parse --short HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok();
    let project = match args.gateway.gateway {
        GatewayKind::Builtin => "gateway-proxy",
        GatewayKind::Envoy => "envoy (configured by envoy-control)",
        GatewayKind::Gloo => "gloo",
        GatewayKind::Kgateway => "kgateway",
        GatewayKind::EnvoyGateway => "envoy-gateway",
        GatewayKind::Istio => "istio",
    };
    Ok(Implementation {
        organization: "colormesh".to_owned(),
        project: project.to_owned(),
        url: None,
        version: match commit {
            Some(commit) => format!("{version} (suite at {commit})"),
            None => version,
        },
        contact: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_loads_and_lists_every_feature() {
        let dir = crate::workspace_root()
            .join("scenarios")
            .join("conformance");
        let scenarios = crate::run::resolve_scenarios(&dir, &[]).unwrap();
        assert!(scenarios.len() >= 20, "{} scenarios", scenarios.len());
        let listing = list_features(&scenarios);
        for feature in Feature::ALL {
            assert!(listing.contains(feature.name()), "{feature} missing");
        }
        assert!(listing.contains("PathPrefixMatch"), "{listing}");
    }

    #[test]
    fn the_builtin_gateway_declares_every_feature_supported() {
        assert!(unsupported_features(GatewayKind::Builtin).is_empty());
    }
}

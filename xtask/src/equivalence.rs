//! `cargo xtask equivalence --before DIR --after DIR [--gateway builtin|envoy] [--strict]`: the
//! same workloads brought up twice on the local backend, once from each folder of a migration,
//! and judged on what they did (`harness::equivalence`). Exit code 0 only when every difference
//! was predicted by the after folder's `drift-report.json` (`--strict`: only when there is none).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use harness::equivalence::{self, EquivalenceSettings};

use crate::gateway::{GatewayArgs, GatewayKind};
use crate::run::clock_seed;

/// `cargo xtask equivalence`.
#[derive(Debug, Args)]
pub(crate) struct EquivalenceArgs {
    /// The folder of manifests before the migration (e.g. Gloo Edge + App Mesh).
    #[arg(long, value_name = "DIR")]
    before: PathBuf,
    /// The folder after it (e.g. Gateway API + GAMMA), with `drift-report.json` if the
    /// migration wrote one.
    #[arg(long, value_name = "DIR")]
    after: PathBuf,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Fail on any difference, predicted or not.
    #[arg(long)]
    strict: bool,
    /// Seeds the gateways' random picks (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the JSON, JUnit and HTML reports go (default target/equivalence-report).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// The family-wise false-alarm budget of the run's statistical checks.
    #[arg(long, default_value_t = 1e-4)]
    family_alpha: f64,
}

/// Checks the arguments that need no build.
fn check(args: &EquivalenceArgs) -> anyhow::Result<()> {
    for (flag, dir) in [("--before", &args.before), ("--after", &args.after)] {
        if !dir.is_dir() {
            bail!("{flag} {}: not a folder", dir.display());
        }
    }
    if !matches!(
        args.gateway.gateway,
        GatewayKind::Builtin | GatewayKind::Envoy
    ) {
        bail!("equivalence runs on the local backend: --gateway builtin or envoy");
    }
    if !(args.family_alpha > 0.0 && args.family_alpha < 0.5) {
        bail!(
            "--family-alpha {}: expected a probability in (0, 0.5)",
            args.family_alpha
        );
    }
    Ok(())
}

pub(crate) async fn equivalence(args: &EquivalenceArgs) -> anyhow::Result<bool> {
    check(args)?;
    let root = crate::workspace_root();
    let gateway = args.gateway.command(&root)?;
    let bin_dir = crate::cargo::build_binaries(&root)?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    let mut settings = EquivalenceSettings::new(
        args.before.canonicalize().context("--before")?,
        args.after.canonicalize().context("--after")?,
        bin_dir,
        gateway,
    );
    settings.seed = seed;
    settings.budget.family_alpha = args.family_alpha;
    println!(
        "colormesh equivalence on {}, seed {seed}: before {}, after {}",
        args.gateway.label(),
        settings.before.display(),
        settings.after.display()
    );
    let report = equivalence::run(&settings, args.strict)
        .await
        .context("the equivalence run")?;
    print!("{}", equivalence::report::summary_table(&report));
    let dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| root.join("target").join("equivalence-report"));
    let files = equivalence::report::write_reports(&report, &dir).context("writing the reports")?;
    println!(
        "reports: {}, {}, {}",
        files.json.display(),
        files.junit.display(),
        files.html.display()
    );
    Ok(report.passed)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: EquivalenceArgs,
    }

    #[test]
    fn arguments_are_checked_before_anything_runs() {
        let root = crate::workspace_root();
        let manifests = root.join("manifests").display().to_string();
        let parse = |extra: &[&str]| {
            let mut argv = vec!["x", "--before", &manifests, "--after", &manifests];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).expect("parses").args
        };
        check(&parse(&[])).expect("two folders on gateway-proxy");
        check(&parse(&["--gateway", "envoy", "--strict"])).expect("envoy");
        let error = check(&parse(&["--gateway", "gloo"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("builtin or envoy"), "{error}");
        let error = check(&parse(&["--family-alpha", "0.7"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("--family-alpha"), "{error}");
        let missing = Cli::try_parse_from(["x", "--before", "/nonexistent", "--after", &manifests])
            .expect("parses")
            .args;
        assert!(
            check(&missing)
                .unwrap_err()
                .to_string()
                .contains("--before")
        );
    }
}

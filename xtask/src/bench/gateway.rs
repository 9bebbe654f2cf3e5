//! The gateways under test as child processes: started on port 0, found through their
//! `colormesh::listening` announcements, stopped with SIGTERM, measured through `/proc`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a gateway may take to announce its listeners and serve its first configuration.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a gateway gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness probes while a gateway starts.
const READY_POLL: Duration = Duration::from_millis(20);

/// How to start one gateway: `<program> ingress --config-dir D --listen 127.0.0.1:0 --admin
/// 127.0.0.1:0 [extra_args]`, the command line every colormesh gateway accepts.
#[derive(Debug, Clone)]
pub(crate) struct GatewaySpec {
    /// Short name for tables and file names: `gateway-proxy`, `envoy`.
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    pub(crate) extra_args: Vec<String>,
}

/// A running gateway.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) name: &'static str,
    pub(crate) data: SocketAddr,
    pub(crate) admin: SocketAddr,
    child: Child,
    pid: u32,
    log: PathBuf,
}

pub(crate) type AdminClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn admin_client() -> AdminClient {
    Client::builder(TokioExecutor::new()).build_http()
}

impl Gateway {
    /// Starts the gateway with its output in `log`, and returns once it announced both listeners
    /// and `/status` reports a served configuration.
    pub(crate) async fn start(
        spec: &GatewaySpec,
        config_dir: &Path,
        log: &Path,
        client: &AdminClient,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(&spec.program);
        command
            .arg("ingress")
            .arg("--config-dir")
            .arg(config_dir)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(&spec.extra_args)
            // Announcements only: per-request logging would be measured as gateway cost.
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,colormesh::listening=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.program.display()))?;
        let pid = child.id().context("the gateway exited at once")?;
        let stderr = child.stderr.take().context("the gateway's stderr")?;
        let file = std::fs::File::create(log)
            .with_context(|| format!("creating the log {}", log.display()))?;
        let (found, mut listening) = watch::channel(BTreeMap::<String, SocketAddr>::new());
        tokio::spawn(copy_log(stderr, file, found));

        let deadline = Instant::now() + START_TIMEOUT;
        let addresses = loop {
            let map = listening.borrow_and_update().clone();
            if let (Some(data), Some(admin)) = (map.get("http"), map.get("admin")) {
                break (*data, *admin);
            }
            tokio::select! {
                changed = listening.changed() => if changed.is_err() {
                    bail!("{} exited before announcing its listeners; see {}", spec.name, log.display());
                },
                () = tokio::time::sleep_until(deadline) => {
                    bail!("{} announced no listeners within {START_TIMEOUT:?}; see {}", spec.name, log.display());
                }
            }
        };
        let mut gateway = Self {
            name: spec.name,
            data: addresses.0,
            admin: addresses.1,
            child,
            pid,
            log: log.to_owned(),
        };
        gateway.wait_serving(client, deadline).await?;
        Ok(gateway)
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
            if let Ok(Some(exit)) = self.child.try_wait() {
                bail!(
                    "{} exited ({exit}) while starting; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} served no configuration within {START_TIMEOUT:?}; see {}",
                    self.name,
                    self.log.display()
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

    /// Peak resident memory (VmHWM) of the data-plane process: the gateway itself or, for a
    /// control program that runs the proxy as a child (envoy-control), its children.
    pub(crate) fn peak_rss(&self) -> anyhow::Result<PeakRss> {
        let own = vm_hwm_kib(self.pid)?;
        let children = child_pids(self.pid);
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
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).context("pid out of range")?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.with_context(|| format!("waiting for {}", self.name))?;
                if !status.success() {
                    bail!(
                        "{} exited with {status}; see {}",
                        self.name,
                        self.log.display()
                    );
                }
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "{} ignored SIGTERM for {STOP_TIMEOUT:?} and was killed",
                    self.name
                )
            }
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

/// Copies the child's stderr into its log and publishes every listener it announces.
async fn copy_log(
    stderr: tokio::process::ChildStderr,
    mut file: std::fs::File,
    found: watch::Sender<BTreeMap<String, SocketAddr>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(file, "{line}");
        if let Some((name, addr)) = listening_event(&line) {
            found.send_modify(|map| {
                map.insert(name, addr);
            });
        }
    }
}

/// `(name, addr)` of a JSON `colormesh::listening` event line.
fn listening_event(line: &str) -> Option<(String, SocketAddr)> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if value.get("target")?.as_str()? != service_kit_listening_target() {
        return None;
    }
    let fields = value.get("fields")?;
    let name = fields.get("name")?.as_str()?.to_owned();
    let addr = fields.get("addr")?.as_str()?.parse().ok()?;
    Some((name, addr))
}

/// service-kit's `LISTENING_TARGET`; xtask does not link service-kit, so the contract is restated.
const fn service_kit_listening_target() -> &'static str {
    "colormesh::listening"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_announcements_and_ignores_other_lines() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","name":"admin","addr":"127.0.0.1:4567"},"target":"colormesh::listening"}"#;
        assert_eq!(
            listening_event(line),
            Some(("admin".to_owned(), "127.0.0.1:4567".parse().expect("addr")))
        );
        let other = r#"{"fields":{"name":"admin","addr":"127.0.0.1:1"},"target":"gateway_proxy"}"#;
        assert_eq!(listening_event(other), None);
        assert_eq!(listening_event("plain text"), None);
    }

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

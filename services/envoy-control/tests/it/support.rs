//! Test support: an `envoy-control` process whose listeners are read from its
//! `colormesh::listening` announcements, and HTTP clients. The helpers every crate's tests share
//! (the Envoy binary, in-process upstreams, config files) come from `test_support`.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
pub use test_support::{
    Upstream, endpoint_slice, envoy_binary, manifest, process_alive, static_upstream, wait_for,
    write_by_rename,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// A running `envoy-control`, stopped with SIGTERM when dropped (so that it removes its work
/// directory), and killed if that does not work.
#[derive(Debug)]
pub struct ControlPlane {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Envoy's own admin address and pid, from the control plane's logs.
    pub envoy_admin: SocketAddr,
    pub envoy_pid: i32,
    /// The control plane's temporary work directory.
    pub work_dir: PathBuf,
    output: Arc<Mutex<String>>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            // Drop cannot await: wait for the exit on this worker thread (multi-thread runtimes
            // only; elsewhere kill_on_drop applies).
            if let Ok(handle) = tokio::runtime::Handle::try_current()
                && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            {
                let child = &mut self.child;
                tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                    });
                });
            }
        }
        // A killed control plane cannot clean up after itself.
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// What the control plane's JSON log lines told so far.
#[derive(Debug, Clone, Default)]
struct Announced {
    listeners: BTreeMap<String, SocketAddr>,
    envoy_admin: Option<SocketAddr>,
    envoy_pid: Option<i32>,
    work_dir: Option<PathBuf>,
}

impl ControlPlane {
    /// Starts `envoy-control <role args> --config-dir DIR --listen 127.0.0.1:0 --admin
    /// 127.0.0.1:0 --seed 1 --envoy-bin ENVOY`, exactly as the local backend does, and waits
    /// until it announced both listeners (it does so once Envoy serves the first configuration).
    pub async fn start(envoy: &Path, role: &[&str], config_dir: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_envoy-control"));
        command
            .args(role)
            .arg("--config-dir")
            .arg(config_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--seed",
                "1",
            ])
            .arg("--envoy-bin")
            .arg(envoy)
            .env("LOG_FORMAT", "json")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start envoy-control");
        let stderr = child.stderr.take().expect("stderr");
        let output = Arc::new(Mutex::new(String::new()));
        let (announce, mut announced) = watch::channel(Announced::default());
        {
            let output = Arc::clone(&output);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        announce.send_modify(|seen| note(seen, &event));
                    }
                    let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let ready = tokio::time::timeout(
            Duration::from_secs(60),
            announced.wait_for(|seen| {
                seen.listeners.contains_key("http")
                    && seen.listeners.contains_key("admin")
                    && seen.envoy_admin.is_some()
                    && seen.envoy_pid.is_some()
                    && seen.work_dir.is_some()
            }),
        )
        .await;
        let seen = match ready {
            Ok(Ok(seen)) => seen.clone(),
            _ => panic!(
                "envoy-control did not announce its listeners:\n{}",
                output.lock().unwrap_or_else(|p| p.into_inner())
            ),
        };
        Self {
            child,
            listen: seen.listeners["http"],
            admin: seen.listeners["admin"],
            envoy_admin: seen.envoy_admin.expect("envoy admin"),
            envoy_pid: seen.envoy_pid.expect("envoy pid"),
            work_dir: seen.work_dir.expect("work dir"),
            output,
        }
    }

    /// Everything the control plane logged so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id().expect("running")).expect("pid")
    }

    /// Sends `signal` and waits (up to 10 s) for the control plane to exit.
    pub async fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("signal");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("envoy-control exits")
            .expect("wait")
    }
}

fn note(seen: &mut Announced, event: &Value) {
    let fields = &event["fields"];
    if let Some(listening) = service_kit::Listening::from_json(event) {
        seen.listeners.insert(listening.name, listening.addr);
    }
    if let Some(addr) = fields["envoy_admin"].as_str().and_then(|a| a.parse().ok()) {
        seen.envoy_admin = Some(addr);
    }
    if fields["message"] == "Envoy is LIVE"
        && let Some(work) = fields["work"].as_str()
    {
        seen.work_dir = Some(PathBuf::from(work));
    }
    if fields["message"] == "Envoy started"
        && let Some(pid) = fields["pid"].as_i64()
    {
        seen.envoy_pid = i32::try_from(pid).ok();
    }
}

/// An HTTP client that never uses a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A client that sends every request in absolute form to `proxy`, as an app with `HTTP_PROXY` does.
pub fn proxied_client(proxy: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{proxy}")).expect("proxy"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn status(client: &reqwest::Client, control: &ControlPlane) -> Value {
    get_json(client, &format!("http://{}/status", control.admin))
        .await
        .1
}

/// The `resource_version` `/status` reports for `resource` (`Kind namespace/name`).
pub fn reported_version(status: &Value, resource: &str) -> Option<String> {
    status["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["resource"] == resource)?["resource_version"]
        .as_str()
        .map(ToOwned::to_owned)
}

//! Test support: finding Envoy, in-process backends, and an `envoy-control` process whose
//! listeners are read from its `colormesh::listening` announcements.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Envoy binary the tests run, or `None` (test skipped) when it is not installed. With `CI`
/// set a missing Envoy fails the test instead.
pub fn envoy_binary() -> Option<PathBuf> {
    let path = std::env::var_os("COLORMESH_ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/envoy/bin/envoy")
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Envoy not installed at {} (CI is set): run `cargo xtask envoy`",
        path.display()
    );
    eprintln!("skipped: Envoy not installed, run `cargo xtask envoy`");
    None
}

/// A backend that answers every request with `{"name", "target", "host"}`.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let served_name = name.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let name = served_name.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let body = json!({
                            "name": name,
                            "target": request.uri().to_string(),
                            "host": request.headers().get("host").and_then(|h| h.to_str().ok()),
                        });
                        async move {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                                body.to_string(),
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

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

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
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

/// Writes a file the way the harness does: a temporary file, then a rename.
pub fn write_by_rename(dir: &Path, name: &str, contents: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, contents).expect("write temporary file");
    std::fs::rename(&temporary, dir.join(name)).expect("rename into place");
}

/// Polls `check` every 10 ms until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A manifest from the repository's `manifests/` folder.
pub fn manifest(relative: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../manifests")
        .join(relative);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// An EndpointSlice of `service` with one ready endpoint on loopback.
pub fn endpoint_slice(service: &str, namespace: &str, port_name: &str, port: u16) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-local\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\nports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\n"
    )
}

/// A static Gloo Upstream named like the one discovery makes for a Service.
pub fn static_upstream(name: &str, port: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {{name: {name}, namespace: gloo-system, resourceVersion: \"1\"}}\nspec: {{static: {{hosts: [{{addr: 127.0.0.1, port: {port}}}]}}}}\n"
    )
}

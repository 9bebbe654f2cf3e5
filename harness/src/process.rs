//! Child processes of the local backend: started with a clean environment, their output copied to
//! a log file line by line and scanned for the `colormesh::listening` events that say which port
//! each listener bound.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::backend::BackendError;

use service_kit::LISTENING_TARGET;
/// Variables passed through from the harness to every child; nothing else leaks in (a proxy
/// variable of the harness's own environment must not reach the pods).
const INHERITED_ENV: [&str; 3] = ["PATH", "RUST_LOG", "RUST_BACKTRACE"];

/// A running child process.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    pid: u32,
    listeners: watch::Receiver<BTreeMap<String, SocketAddr>>,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with exactly `env` (plus PATH and RUST_LOG), logging to `<log_dir>/<name>.log`.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Self, BackendError> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).map_err(|source| BackendError::Io {
            context: format!("cannot create {}", log.display()),
            source,
        })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(
                INHERITED_ENV
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| BackendError::Io {
            context: format!("cannot start {name} ({})", program.display()),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let (found, listeners) = watch::channel(BTreeMap::new());
        let found = Arc::new(found);
        let file = Arc::new(Mutex::new(file));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(scan(stdout, Arc::clone(&file), Arc::clone(&found)));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(scan(stderr, file, found));
        }
        tracing::debug!(name, pid, "started");
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            listeners,
            log,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the process announced every listener in `names` (or, for `"*"`, any listener
    /// other than `admin`), and returns the announced addresses.
    pub(crate) async fn wait_listening(
        &mut self,
        names: &[&str],
        timeout: Duration,
    ) -> Result<BTreeMap<String, SocketAddr>, BackendError> {
        let complete = |found: &BTreeMap<String, SocketAddr>| {
            names.iter().all(|wanted| match *wanted {
                "*" => found.keys().any(|k| k != "admin"),
                name => found.contains_key(name),
            })
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if complete(&self.listeners.borrow()) {
                return Ok(self.listeners.borrow().clone());
            }
            tokio::select! {
                changed = self.listeners.changed() => {
                    if changed.is_err() {
                        // Both output streams closed: the process is gone or about to be.
                        let status = self.child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                        return Err(self.failure(&format!("exited ({status}) before announcing its listeners")));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(BackendError::Timeout {
                        condition: format!("{} to announce its listeners ({})", self.name, names.join(", ")),
                        timeout,
                        detail: Some(format!("announced so far: {:?}; log: {}", *self.listeners.borrow(), self.log.display())),
                    });
                }
            }
        }
    }

    /// An error about this process that points at its log and quotes its last lines.
    pub(crate) fn failure(&self, what: &str) -> BackendError {
        let tail = std::fs::read_to_string(&self.log)
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(5)..].join("\n  ")
            })
            .unwrap_or_default();
        BackendError::Other(format!(
            "{} {what}; log {}:\n  {tail}",
            self.name,
            self.log.display()
        ))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub(crate) async fn terminate(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn scan(
    stream: impl AsyncRead + Unpin,
    log: Arc<Mutex<std::fs::File>>,
    found: Arc<watch::Sender<BTreeMap<String, SocketAddr>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut file) = log.lock() {
            let _ = writeln!(file, "{line}");
        }
        if let Some((name, addr)) = listening_event(&line) {
            found.send_modify(|map| {
                map.insert(name, addr);
            });
        }
    }
}

/// Reads a `colormesh::listening` event from a log line: `(name, addr)`. JSON lines
/// (`LOG_FORMAT=json`) are the contract; tracing's plain text format (`... colormesh::listening:
/// listening name="http" addr=127.0.0.1:8080`, possibly with colour codes) is read too, so a
/// binary that ignores `LOG_FORMAT` still works.
pub(crate) fn listening_event(line: &str) -> Option<(String, SocketAddr)> {
    let line = line.trim();
    if line.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value.get("target")?.as_str()? != LISTENING_TARGET {
            return None;
        }
        let fields = value.get("fields")?;
        let name = fields.get("name")?.as_str()?.to_owned();
        let addr = fields.get("addr")?.as_str()?.parse().ok()?;
        return Some((name, addr));
    }
    let plain = strip_ansi(line);
    let (_, rest) = plain.split_once(&format!("{LISTENING_TARGET}:"))?;
    let mut name = None;
    let mut addr = None;
    for token in rest.split_whitespace() {
        if let Some(value) = token.strip_prefix("name=") {
            name = Some(value.trim_matches('"').to_owned());
        } else if let Some(value) = token.strip_prefix("addr=") {
            addr = value.trim_matches('"').parse().ok();
        }
    }
    Some((name?, addr?))
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_service_kits_json_listening_events() {
        let line = r#"{"timestamp":"2025-01-01T00:00:00.000000Z","level":"INFO","fields":{"message":"listening","name":"http","addr":"127.0.0.1:41234"},"target":"colormesh::listening"}"#;
        assert_eq!(
            listening_event(line),
            Some(("http".into(), SocketAddr::from(([127, 0, 0, 1], 41234))))
        );
        assert_eq!(
            listening_event(&line.replace("colormesh::listening", "colorteller")),
            None
        );
        assert_eq!(listening_event("listening on 127.0.0.1:80"), None);
        let plain = "2025-01-01T00:00:00.000000Z  INFO \u{1b}[2mcolormesh::listening\u{1b}[0m\u{1b}[2m:\u{1b}[0m listening \u{1b}[3mname\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"admin\" \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:19001";
        assert_eq!(
            listening_event(plain),
            Some(("admin".into(), SocketAddr::from(([127, 0, 0, 1], 19001))))
        );
    }

    #[tokio::test]
    async fn a_child_that_exits_early_is_reported_with_its_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = [("GREETING".to_owned(), "bye".to_owned())];
        let mut process = Process::spawn(
            "early",
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "echo $GREETING; echo proxy=$HTTP_PROXY; exit 3".into(),
            ],
            &env,
            dir.path(),
        )
        .expect("sh starts");
        let error = process
            .wait_listening(&["*"], Duration::from_secs(10))
            .await
            .expect_err("no listener")
            .to_string();
        assert!(error.contains("early exited"), "{error}");
        assert!(error.contains("bye"), "{error}");
        let log = std::fs::read_to_string(dir.path().join("early.log")).expect("log written");
        assert!(
            log.contains("proxy=\n"),
            "the harness environment does not leak: {log}"
        );
    }

    #[tokio::test]
    async fn terminate_stops_a_process_that_ignores_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut process = Process::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &["-c".into(), "exec sleep 30".into()],
            &[],
            dir.path(),
        )
        .expect("sh starts");
        assert!(process.is_running());
        process.terminate(Duration::from_secs(5)).await;
        assert!(!process.is_running());
    }
}

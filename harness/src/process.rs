//! The one process supervisor: the local backend's pods and gateways, and the gateways `cargo
//! xtask bench` measures, are all started and stopped here.
//!
//! A child starts with a clean environment; its output is copied to a log file line by line and
//! scanned for the service-kit announcements ([`service_kit::Listening`]) that say which port
//! each listener bound. Stopping is SIGTERM first, so the service can finish what is in flight.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use service_kit::Listening;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::backend::BackendError;

/// Variables passed through from the harness to every child; nothing else leaks in (a proxy
/// variable of the harness's own environment must not reach the pods).
const INHERITED_ENV: [&str; 3] = ["PATH", "RUST_LOG", "RUST_BACKTRACE"];

/// Why a child could not be started or did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot create {}", .path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {name} ({})", .program.display())]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The child did not announce every listener in time.
    #[error(
        "timed out after {} waiting for {name} to announce its listeners ({wanted}): announced so far: {announced:?}; log: {}",
        humantime::format_duration(*.timeout),
        .log.display()
    )]
    Timeout {
        name: String,
        wanted: String,
        timeout: Duration,
        announced: BTreeMap<String, SocketAddr>,
        log: PathBuf,
    },
    /// The child misbehaved (exited, announced the wrong thing); `tail` quotes its last log lines.
    #[error("{name} {what}; log {}:\n  {tail}", .log.display())]
    Failed {
        name: String,
        what: String,
        log: PathBuf,
        tail: String,
    },
}

impl From<ProcessError> for BackendError {
    fn from(error: ProcessError) -> Self {
        match error {
            ProcessError::Log { path, source } => BackendError::Io {
                context: format!("cannot create {}", path.display()),
                source,
            },
            ProcessError::Spawn {
                name,
                program,
                source,
            } => BackendError::Io {
                context: format!("cannot start {name} ({})", program.display()),
                source,
            },
            ProcessError::Timeout {
                name,
                wanted,
                timeout,
                announced,
                log,
            } => BackendError::Timeout {
                condition: format!("{name} to announce its listeners ({wanted})"),
                timeout,
                detail: Some(format!(
                    "announced so far: {announced:?}; log: {}",
                    log.display()
                )),
            },
            failed @ ProcessError::Failed { .. } => BackendError::Process(failed),
        }
    }
}

/// How [`Process::terminate`] ended the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It exited, by itself or on SIGTERM, with this status.
    Exited(ExitStatus),
    /// It was still running when the grace period ended, and was killed.
    Killed,
}

/// A running child process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    pid: u32,
    listeners: watch::Receiver<BTreeMap<String, SocketAddr>>,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with exactly `env` (plus PATH, RUST_LOG and RUST_BACKTRACE), logging its
    /// stdout and stderr to `<log_dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Self, ProcessError> {
        let log = log_dir.join(format!("{name}.log"));
        let file = match std::fs::File::create(&log) {
            Ok(file) => file,
            Err(source) => return Err(ProcessError::Log { path: log, source }),
        };
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
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_owned(),
            program: program.to_owned(),
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

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's id of the child, for signals and `/proc`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the process announced every listener in `names` (or, for `"*"`, any listener
    /// other than `admin`), and returns the announced addresses.
    pub async fn wait_listening(
        &mut self,
        names: &[&str],
        timeout: Duration,
    ) -> Result<BTreeMap<String, SocketAddr>, ProcessError> {
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
                    return Err(ProcessError::Timeout {
                        name: self.name.clone(),
                        wanted: names.join(", "),
                        timeout,
                        announced: self.listeners.borrow().clone(),
                        log: self.log.clone(),
                    });
                }
            }
        }
    }

    /// An error about this process that points at its log and quotes its last lines.
    pub fn failure(&self, what: &str) -> ProcessError {
        let tail = std::fs::read_to_string(&self.log)
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(5)..].join("\n  ")
            })
            .unwrap_or_default();
        ProcessError::Failed {
            name: self.name.clone(),
            what: what.to_owned(),
            log: self.log.clone(),
            tail,
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; says which ended it. A child
    /// that had already exited is only reaped.
    pub async fn terminate(&mut self, grace: Duration) -> Stopped {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Stopped::Exited(status);
        }
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Stopped::Exited(status),
            Ok(Err(_)) | Err(_) => {
                let _ = self.child.kill().await;
                Stopped::Killed
            }
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
        if let Some(Listening { name, addr }) = Listening::parse(&line) {
            found.send_modify(|map| {
                map.insert(name, addr);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let stopped = process.terminate(Duration::from_secs(5)).await;
        assert!(
            matches!(stopped, Stopped::Exited(status) if !status.success()),
            "{stopped:?}"
        );
        assert!(!process.is_running());
        assert_eq!(process.terminate(Duration::from_secs(5)).await, stopped);
    }

    #[tokio::test]
    async fn a_child_that_ignores_sigterm_is_killed_and_its_listeners_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The announcement comes after the trap, so SIGTERM cannot arrive before it is ignored;
        // an ignored signal stays ignored across exec.
        let script = r#"trap '' TERM; echo '{"fields":{"name":"tcp","addr":"127.0.0.1:4321"},"target":"colormesh::listening"}'; exec sleep 30"#;
        let mut process = Process::spawn(
            "stubborn",
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &[],
            dir.path(),
        )
        .expect("sh starts");
        let listeners = process
            .wait_listening(&["tcp"], Duration::from_secs(10))
            .await
            .expect("announced");
        assert_eq!(listeners["tcp"], SocketAddr::from(([127, 0, 0, 1], 4321)));
        assert_eq!(
            process.terminate(Duration::from_millis(200)).await,
            Stopped::Killed
        );
        assert!(!process.is_running());
    }
}

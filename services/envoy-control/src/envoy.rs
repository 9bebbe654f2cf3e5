//! The Envoy process (start, supervise, stop) and the parts of its admin API the control plane
//! reads: `/ready`, `/listeners`, `/config_dump` and the xDS `update_rejected` counters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::render::{LISTENER_NAME, ROUTE_CONFIGURATION_NAME, STAT_PREFIX};

/// One admin request may not take longer than this; callers poll with their own deadlines.
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often start-up conditions are polled.
const START_POLL: Duration = Duration::from_millis(10);

/// What can go wrong starting or talking to Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The binary could not be started.
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        /// The Envoy binary.
        binary: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Envoy exited during start-up.
    #[error("Envoy exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ExitedEarly {
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// Envoy did not reach the wanted state in time.
    #[error("Envoy did not {what} within {timeout:?}; last lines of {log}:\n{tail}")]
    StartTimeout {
        /// What was waited for.
        what: &'static str,
        /// The limit.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// An admin request failed.
    #[error("Envoy admin GET http://{admin}{path}: {message}")]
    Admin {
        /// The admin address.
        admin: SocketAddr,
        /// The path asked for.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Waiting for or signalling the process failed.
    #[error("supervising Envoy: {0}")]
    Supervise(#[source] std::io::Error),
}

/// The files of one Envoy instance, all in the control plane's work directory.
#[derive(Debug, Clone)]
pub struct EnvoyFiles {
    /// The bootstrap (`-c`).
    pub bootstrap: PathBuf,
    /// Where Envoy writes its admin address (`--admin-address-path`).
    pub admin_address: PathBuf,
    /// Envoy's log (`--log-path`).
    pub log: PathBuf,
}

/// A running Envoy, killed when dropped.
#[derive(Debug)]
pub struct EnvoyProcess {
    child: Child,
    admin: EnvoyAdmin,
    log: PathBuf,
}

impl EnvoyProcess {
    /// Starts `binary` on the bootstrap in `files` and waits until its admin says LIVE.
    ///
    /// Envoy runs with one worker thread and a dynamic base id, so that any number of instances
    /// can run side by side. Where util-linux `setpriv` is available it starts Envoy with a parent
    /// death signal, so that Envoy dies with the control plane even if that is SIGKILLed; call this
    /// from a thread that lives as long as the process (the main thread), since the signal follows
    /// the thread that spawned it.
    pub async fn start(
        binary: &Path,
        files: &EnvoyFiles,
        timeout: Duration,
    ) -> Result<Self, EnvoyError> {
        let arguments: Vec<std::ffi::OsString> = vec![
            "-c".into(),
            files.bootstrap.clone().into(),
            "--concurrency".into(),
            "1".into(),
            "--use-dynamic-base-id".into(),
            "--admin-address-path".into(),
            files.admin_address.clone().into(),
            "--log-path".into(),
            files.log.clone().into(),
            // Rejections are read back from the log; the default flushes only every 10 s.
            "--file-flush-interval-msec".into(),
            "100".into(),
        ];
        let mut command = match find_setpriv() {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(&arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| EnvoyError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
        tracing::info!(pid = child.id(), binary = %binary.display(), log = %files.log.display(), "Envoy started");
        let mut process = Self {
            child,
            admin: EnvoyAdmin::new(SocketAddr::from(([127, 0, 0, 1], 0))),
            log: files.log.clone(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let admin = loop {
            process.check_running()?;
            if let Ok(text) = std::fs::read_to_string(&files.admin_address)
                && let Ok(address) = text.trim().parse::<SocketAddr>()
            {
                break address;
            }
            process.check_deadline(deadline, "write its admin address", timeout)?;
            tokio::time::sleep(START_POLL).await;
        };
        process.admin = EnvoyAdmin::new(admin);
        loop {
            process.check_running()?;
            if process.admin.ready().await {
                break;
            }
            process.check_deadline(deadline, "become LIVE", timeout)?;
            tokio::time::sleep(START_POLL).await;
        }
        Ok(process)
    }

    /// The admin client.
    pub fn admin(&self) -> &EnvoyAdmin {
        &self.admin
    }

    /// Envoy's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Resolves when Envoy exits.
    pub async fn exited(&mut self) -> Result<ExitStatus, EnvoyError> {
        self.child.wait().await.map_err(EnvoyError::Supervise)
    }

    /// Asks Envoy to stop (SIGTERM) and kills it if it has not exited after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(%status, "Envoy stopped"),
            _ => {
                tracing::warn!(?grace, "Envoy did not stop after SIGTERM; killing it");
                let _ = self.child.kill().await;
            }
        }
    }

    fn check_running(&mut self) -> Result<(), EnvoyError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(EnvoyError::ExitedEarly {
                status,
                log: self.log.clone(),
                tail: log_tail(&self.log, 20),
            }),
            Ok(None) => Ok(()),
            Err(error) => Err(EnvoyError::Supervise(error)),
        }
    }

    fn check_deadline(
        &self,
        deadline: tokio::time::Instant,
        what: &'static str,
        timeout: Duration,
    ) -> Result<(), EnvoyError> {
        if tokio::time::Instant::now() < deadline {
            return Ok(());
        }
        Err(EnvoyError::StartTimeout {
            what,
            timeout,
            log: self.log.clone(),
            tail: log_tail(&self.log, 20),
        })
    }
}

fn find_setpriv() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("setpriv"))
        .find(|candidate| candidate.is_file())
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The size of a log file now, to look for lines written after this point.
pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |metadata| metadata.len())
}

/// The last "config update rejected" explanation Envoy logged after byte `since`, if any.
pub fn rejection_reason_since(log: &Path, since: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let start = usize::try_from(since)
        .ok()
        .filter(|start| *start <= bytes.len())?;
    let text = String::from_utf8_lossy(&bytes[start..]);
    text.lines().rev().find_map(|line| {
        line.split_once("config update rejected: ")
            .map(|(_, reason)| reason.trim().to_owned())
    })
}

/// The versions Envoy's `/config_dump` shows for the dynamic resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpedVersions {
    /// The active data-plane listener's version.
    pub listener: Option<String>,
    /// The last CDS update Envoy applied.
    pub clusters: Option<String>,
    /// How many clusters are still warming (not serving the latest CDS yet).
    pub warming_clusters: usize,
    /// The route configuration's version.
    pub routes: Option<String>,
}

/// The `update_rejected` counters of the three subscriptions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    /// `listener_manager.lds.update_rejected`.
    pub listeners: u64,
    /// `cluster_manager.cds.update_rejected`.
    pub clusters: u64,
    /// `http.<prefix>.rds.<route config>.update_rejected`.
    pub routes: u64,
}

/// A client for one Envoy's admin listener.
#[derive(Debug, Clone)]
pub struct EnvoyAdmin {
    address: SocketAddr,
    client: reqwest::Client,
}

impl EnvoyAdmin {
    /// A client for the admin listener at `address`.
    pub fn new(address: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(ADMIN_REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { address, client }
    }

    /// The admin address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    async fn get(&self, path: &str) -> Result<String, EnvoyError> {
        let error = |message: String| EnvoyError::Admin {
            admin: self.address,
            path: path.to_owned(),
            message,
        };
        let response = self
            .client
            .get(format!("http://{}{path}", self.address))
            .send()
            .await
            .map_err(|e| error(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| error(e.to_string()))?;
        if !status.is_success() {
            return Err(error(format!("answered {status}: {}", body.trim())));
        }
        Ok(body)
    }

    async fn get_json(&self, path: &str) -> Result<Value, EnvoyError> {
        let body = self.get(path).await?;
        serde_json::from_str(&body).map_err(|e| EnvoyError::Admin {
            admin: self.address,
            path: path.to_owned(),
            message: format!("unexpected JSON: {e}"),
        })
    }

    /// Whether `/ready` answers 200 (`LIVE`).
    pub async fn ready(&self) -> bool {
        self.get("/ready").await.is_ok()
    }

    /// The address the data-plane listener is bound to (its real port when configured with 0).
    pub async fn listener_address(&self) -> Result<Option<SocketAddr>, EnvoyError> {
        let listeners = self.get_json("/listeners?format=json").await?;
        Ok(parse_listener_address(&listeners, LISTENER_NAME))
    }

    /// The versions the configuration dump shows.
    pub async fn versions(&self) -> Result<DumpedVersions, EnvoyError> {
        Ok(parse_versions(&self.get_json("/config_dump").await?))
    }

    /// The xDS rejection counters.
    pub async fn rejections(&self) -> Result<Rejections, EnvoyError> {
        Ok(parse_rejections(
            &self.get("/stats?filter=update_rejected$").await?,
        ))
    }
}

fn parse_listener_address(listeners: &Value, name: &str) -> Option<SocketAddr> {
    let status = listeners["listener_statuses"]
        .as_array()?
        .iter()
        .find(|status| status["name"] == name)?;
    let socket = &status["local_address"]["socket_address"];
    let ip: std::net::IpAddr = socket["address"].as_str()?.parse().ok()?;
    let port = u16::try_from(socket["port_value"].as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

fn parse_versions(dump: &Value) -> DumpedVersions {
    let mut versions = DumpedVersions::default();
    for config in dump["configs"].as_array().into_iter().flatten() {
        let version = |value: &Value| value.as_str().map(ToOwned::to_owned);
        match config["@type"].as_str() {
            Some("type.googleapis.com/envoy.admin.v3.ListenersConfigDump") => {
                versions.listener = config["dynamic_listeners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|listener| listener["name"] == LISTENER_NAME)
                    .and_then(|listener| version(&listener["active_state"]["version_info"]));
            }
            Some("type.googleapis.com/envoy.admin.v3.ClustersConfigDump") => {
                versions.clusters = version(&config["version_info"]);
                versions.warming_clusters = config["dynamic_warming_clusters"]
                    .as_array()
                    .map_or(0, Vec::len);
            }
            Some("type.googleapis.com/envoy.admin.v3.RoutesConfigDump") => {
                versions.routes = config["dynamic_route_configs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|route| route["route_config"]["name"] == ROUTE_CONFIGURATION_NAME)
                    .and_then(|route| version(&route["version_info"]));
            }
            _ => {}
        }
    }
    versions
}

fn parse_rejections(stats: &str) -> Rejections {
    let routes = format!("http.{STAT_PREFIX}.rds.{ROUTE_CONFIGURATION_NAME}.update_rejected");
    let mut rejections = Rejections::default();
    for line in stats.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        match name.trim() {
            "listener_manager.lds.update_rejected" => rejections.listeners = value,
            "cluster_manager.cds.update_rejected" => rejections.clusters = value,
            name if name == routes => rejections.routes = value,
            _ => {}
        }
    }
    rejections
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_bound_listener_address() {
        let listeners = json!({ "listener_statuses": [
            { "name": "other", "local_address": { "socket_address": { "address": "127.0.0.1", "port_value": 1 } } },
            { "name": LISTENER_NAME, "local_address": { "socket_address": { "address": "127.0.0.1", "port_value": 41011 } } },
        ] });
        assert_eq!(
            parse_listener_address(&listeners, LISTENER_NAME),
            Some("127.0.0.1:41011".parse().expect("address"))
        );
        assert_eq!(parse_listener_address(&json!({}), LISTENER_NAME), None);
    }

    #[test]
    fn reads_the_versions_of_a_config_dump() {
        let dump = json!({ "configs": [
            { "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump" },
            { "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": "4",
              "dynamic_active_clusters": [{ "version_info": "2", "cluster": { "name": "a" } }],
              "dynamic_warming_clusters": [{ "version_info": "4", "cluster": { "name": "b" } }] },
            { "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "version_info": "1",
              "dynamic_listeners": [{ "name": LISTENER_NAME, "active_state": { "version_info": "1" } }] },
            { "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
              "dynamic_route_configs": [{ "version_info": "3", "route_config": { "name": ROUTE_CONFIGURATION_NAME } }] },
        ] });
        assert_eq!(
            parse_versions(&dump),
            DumpedVersions {
                listener: Some("1".to_owned()),
                clusters: Some("4".to_owned()),
                warming_clusters: 1,
                routes: Some("3".to_owned()),
            }
        );
        assert_eq!(parse_versions(&json!({})), DumpedVersions::default());
    }

    #[test]
    fn reads_the_rejection_counters() {
        let stats = format!(
            "cluster_manager.cds.update_rejected: 2\nhttp.{STAT_PREFIX}.rds.{ROUTE_CONFIGURATION_NAME}.update_rejected: 3\nlistener_manager.lds.update_rejected: 1\nhttp.other.rds.x.update_rejected: 9\n"
        );
        assert_eq!(
            parse_rejections(&stats),
            Rejections {
                listeners: 1,
                clusters: 2,
                routes: 3
            }
        );
    }

    #[test]
    fn finds_the_last_rejection_in_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("envoy.log");
        std::fs::write(
            &log,
            "[info] starting\n[warning][config] [x.cc:81] Filesystem config update rejected: first\n[warning][config] [x.cc:81] Filesystem config update rejected: missing ): (a\n[info] later\n",
        )
        .expect("write log");
        assert_eq!(
            rejection_reason_since(&log, 0).as_deref(),
            Some("missing ): (a")
        );
        assert_eq!(
            rejection_reason_since(&log, log_len(&log)),
            None,
            "nothing was rejected after the end"
        );
        assert_eq!(log_tail(&log, 1), "[info] later");
        assert_eq!(rejection_reason_since(&dir.path().join("absent"), 0), None);
    }
}

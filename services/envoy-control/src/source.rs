//! [`EnvoySource`]: a [`ConfigSource`] that hands each translation to Envoy and returns only once
//! Envoy serves it, so that gateway-proxy's reload machinery installs (and `/status` reports) a
//! generation only after Envoy acknowledged it.
//!
//! Pushing one generation, make-before-break as xDS asks:
//! 1. CDS with the new clusters plus the ones still served (routes may still point at them);
//! 2. RDS with the new route configuration;
//! 3. CDS with the new clusters only, if step 1 kept any.
//!
//! Each file is written only when its content changed, with `version_info` set to the generation
//! (step 1 uses `<generation>-add` when step 3 follows). Envoy does not advance the version it
//! reports for an unchanged resource, so a resource's version is the generation in which it last
//! changed; each write is acknowledged when `/config_dump` shows its version (and no cluster is
//! still warming). A rejection (the subscription's `update_rejected` counter moves) or no answer
//! within the ack timeout stops the push: the file is put back to what Envoy serves, the error is
//! logged, and the generation is installed with a load error and the resources marked Rejected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_proxy::{ConfigSource, FileLoadFailure, LoadOutcome};
use model::gloo::State;
use routing::table::RouteTable;
use serde_json::Value;

use crate::envoy::{self, EnvoyAdmin, Rejections};
use crate::render::{self, CLUSTER_TYPE, ROUTE_CONFIGURATION_TYPE};
use crate::xds::XdsFiles;

/// How often `/config_dump` is read while waiting for an acknowledgement.
const ACK_POLL: Duration = Duration::from_millis(5);
/// How long Envoy's log gets to show the reason of a rejection (it is flushed every 100 ms).
const REASON_WAIT: Duration = Duration::from_secs(1);

/// What Envoy serves now, as last acknowledged.
#[derive(Debug, Clone)]
struct Served {
    clusters: BTreeMap<String, Value>,
    clusters_version: String,
    routes: Value,
    routes_version: String,
}

/// Why a generation is not (entirely) served by Envoy.
#[derive(Debug)]
struct PushFailure {
    file: PathBuf,
    message: String,
}

/// Which subscription a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscription {
    Clusters,
    Routes,
}

impl Subscription {
    fn describe(self) -> &'static str {
        match self {
            Self::Clusters => "clusters (CDS)",
            Self::Routes => "route configuration (RDS)",
        }
    }
}

/// Wraps a source (normally `gateway_proxy::DirSource`) and pushes what it loads to Envoy.
///
/// `load` runs on a blocking thread (gateway-proxy's reload does that), and drives the async
/// admin client through the runtime handle given here.
#[derive(Debug)]
pub struct EnvoySource<S> {
    inner: S,
    runtime: tokio::runtime::Handle,
    admin: EnvoyAdmin,
    files: XdsFiles,
    log: PathBuf,
    ack_timeout: Duration,
    generation: u64,
    served: Served,
}

impl<S: ConfigSource> EnvoySource<S> {
    /// A source for an Envoy started on `files` as written by [`XdsFiles::write_initial`].
    ///
    /// Generations are counted from 1 by this source; they match gateway-proxy's as long as
    /// nothing but this source installs configurations into the state it is set on.
    pub fn new(
        inner: S,
        runtime: tokio::runtime::Handle,
        admin: EnvoyAdmin,
        files: XdsFiles,
        ack_timeout: Duration,
    ) -> Self {
        let log = files.envoy_files().log;
        Self {
            inner,
            runtime,
            admin,
            files,
            log,
            ack_timeout,
            generation: 0,
            served: Served {
                clusters: BTreeMap::new(),
                clusters_version: "0".to_owned(),
                routes: render::empty_route_configuration(),
                routes_version: "0".to_owned(),
            },
        }
    }

    async fn push(&mut self, table: &RouteTable, generation: u64) -> Result<(), PushFailure> {
        let rendered = render::render(table).map_err(|error| PushFailure {
            file: self.files.rds.clone(),
            message: format!("the route table cannot be rendered for Envoy: {error}"),
        })?;
        let version = generation.to_string();
        let mut with_old = rendered.clusters.clone();
        for (name, cluster) in &self.served.clusters {
            with_old
                .entry(name.clone())
                .or_insert_with(|| cluster.clone());
        }
        if with_old != self.served.clusters {
            let removes_later = with_old.len() != rendered.clusters.len();
            let step_version = if removes_later {
                format!("{version}-add")
            } else {
                version.clone()
            };
            self.push_clusters(with_old, step_version).await?;
        }
        // Every generation names itself in its answers, so the routes change with each one.
        let mut routes = rendered.route_configuration;
        render::stamp_generation(&mut routes, generation);
        if routes != self.served.routes {
            self.push_routes(routes, version.clone()).await?;
        }
        if rendered.clusters != self.served.clusters {
            self.push_clusters(rendered.clusters, version).await?;
        }
        Ok(())
    }

    async fn push_clusters(
        &mut self,
        clusters: BTreeMap<String, Value>,
        version: String,
    ) -> Result<(), PushFailure> {
        let response = render::discovery_response(&version, CLUSTER_TYPE, clusters.values());
        let path = self.files.cds.clone();
        match self
            .write_and_wait(Subscription::Clusters, &path, &response, &version)
            .await
        {
            Ok(()) => {
                self.served.clusters = clusters;
                self.served.clusters_version = version;
                Ok(())
            }
            Err(failure) => {
                let served = render::discovery_response(
                    &self.served.clusters_version,
                    CLUSTER_TYPE,
                    self.served.clusters.values(),
                );
                self.restore(&path, &served);
                Err(failure)
            }
        }
    }

    async fn push_routes(&mut self, routes: Value, version: String) -> Result<(), PushFailure> {
        let response = render::discovery_response(&version, ROUTE_CONFIGURATION_TYPE, [&routes]);
        let path = self.files.rds.clone();
        match self
            .write_and_wait(Subscription::Routes, &path, &response, &version)
            .await
        {
            Ok(()) => {
                self.served.routes = routes;
                self.served.routes_version = version;
                Ok(())
            }
            Err(failure) => {
                let served = render::discovery_response(
                    &self.served.routes_version,
                    ROUTE_CONFIGURATION_TYPE,
                    [&self.served.routes],
                );
                self.restore(&path, &served);
                Err(failure)
            }
        }
    }

    /// Puts back what Envoy serves, so that the next re-read (any move into the watched
    /// directory re-reads every file) does not meet the rejected content again.
    fn restore(&self, path: &Path, served: &Value) {
        if let Err(error) = self.files.write(path, served) {
            tracing::error!(%error, "cannot restore the served configuration file");
        }
    }

    async fn write_and_wait(
        &self,
        subscription: Subscription,
        path: &Path,
        response: &Value,
        version: &str,
    ) -> Result<(), PushFailure> {
        let failure = |message: String| PushFailure {
            file: path.to_owned(),
            message,
        };
        let before = self
            .admin
            .rejections()
            .await
            .map_err(|error| failure(error.to_string()))?;
        let log_offset = envoy::log_len(&self.log);
        self.files
            .write(path, response)
            .map_err(|error| failure(error.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let mut last_error = None;
        loop {
            match self.acknowledged(subscription, version, before).await {
                Ok(Some(true)) => return Ok(()),
                Ok(Some(false)) => {
                    let reason = self.rejection_reason(log_offset).await;
                    return Err(failure(format!(
                        "Envoy rejected the {} at version {version}: {reason}; it keeps serving the previous version",
                        subscription.describe()
                    )));
                }
                Ok(None) => {}
                Err(error) => last_error = Some(error),
            }
            if tokio::time::Instant::now() >= deadline {
                let detail = last_error.map_or(String::new(), |error| {
                    format!(" (last admin error: {error})")
                });
                return Err(failure(format!(
                    "Envoy did not acknowledge the {} at version {version} within {:?}{detail}",
                    subscription.describe(),
                    self.ack_timeout
                )));
            }
            tokio::time::sleep(ACK_POLL).await;
        }
    }

    /// `Some(true)` served, `Some(false)` rejected, `None` not yet.
    async fn acknowledged(
        &self,
        subscription: Subscription,
        version: &str,
        before: Rejections,
    ) -> Result<Option<bool>, envoy::EnvoyError> {
        let versions = self.admin.versions().await?;
        let served = match subscription {
            Subscription::Clusters => {
                versions.clusters.as_deref() == Some(version) && versions.warming_clusters == 0
            }
            Subscription::Routes => versions.routes.as_deref() == Some(version),
        };
        if served {
            return Ok(Some(true));
        }
        let now = self.admin.rejections().await?;
        let rejected = match subscription {
            Subscription::Clusters => now.clusters > before.clusters,
            Subscription::Routes => now.routes > before.routes,
        };
        Ok(rejected.then_some(false))
    }

    async fn rejection_reason(&self, log_offset: u64) -> String {
        let deadline = tokio::time::Instant::now() + REASON_WAIT;
        loop {
            if let Some(reason) = envoy::rejection_reason_since(&self.log, log_offset) {
                return reason;
            }
            if tokio::time::Instant::now() >= deadline {
                return format!("no reason logged yet, see {}", self.log.display());
            }
            tokio::time::sleep(ACK_POLL * 4).await;
        }
    }
}

impl<S: ConfigSource> ConfigSource for EnvoySource<S> {
    fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after()
    }

    fn load(&mut self) -> LoadOutcome {
        let mut outcome = self.inner.load();
        self.generation += 1;
        let generation = self.generation;
        let runtime = self.runtime.clone();
        let started = std::time::Instant::now();
        let pushed = runtime.block_on(self.push(&outcome.translation.table, generation));
        let push_ms = started.elapsed().as_secs_f64() * 1e3;
        match pushed {
            Ok(()) => tracing::info!(generation, push_ms, "Envoy serves the configuration"),
            Err(failure) => {
                tracing::error!(generation, file = %failure.file.display(), "{}", failure.message);
                mark_not_served(&mut outcome, &failure.message);
                outcome.load_errors.push(FileLoadFailure {
                    file: failure.file,
                    line: None,
                    message: failure.message,
                });
            }
        }
        outcome
    }
}

/// The resources that shape routing are not served as translated: report them Rejected with the
/// reason. Kubernetes kinds only feed endpoints and keep their status.
fn mark_not_served(outcome: &mut LoadOutcome, reason: &str) {
    for status in &mut outcome.translation.statuses {
        let kubernetes = ["Service ", "EndpointSlice ", "Namespace "]
            .iter()
            .any(|kind| status.resource.starts_with(kind));
        if !kubernetes && matches!(status.state, State::Accepted | State::Warning) {
            status.state = State::Rejected;
            status.reasons.push(reason.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use routing::table::Fallback;
    use routing::{ResourceStatus, Translation};

    use super::*;

    fn status(resource: &str, state: State) -> ResourceStatus {
        ResourceStatus {
            resource: resource.to_owned(),
            state,
            reasons: Vec::new(),
            resource_version: Some("3".to_owned()),
            gateway_api: None,
        }
    }

    #[test]
    fn a_failed_push_rejects_routing_resources_but_not_kubernetes_ones() {
        let mut outcome = LoadOutcome {
            translation: Translation {
                table: RouteTable::empty(Fallback::NotFound),
                statuses: vec![
                    status("VirtualService gloo-system/colorgateway", State::Accepted),
                    status("Upstream gloo-system/x", State::Warning),
                    status("UpstreamGroup gloo-system/y", State::Rejected),
                    status("Service appmesh-demo/colorteller", State::Accepted),
                ],
            },
            load_errors: Vec::new(),
        };
        mark_not_served(&mut outcome, "Envoy rejected it");
        let states: Vec<(State, usize)> = outcome
            .translation
            .statuses
            .iter()
            .map(|status| (status.state, status.reasons.len()))
            .collect();
        assert_eq!(
            states,
            [
                (State::Rejected, 1),
                (State::Rejected, 1),
                (State::Rejected, 0),
                (State::Accepted, 0),
            ]
        );
        assert_eq!(
            outcome.translation.statuses[0].resource_version.as_deref(),
            Some("3"),
            "the version read is still reported"
        );
    }
}

//! The work directory of one control plane: Envoy's bootstrap and log, and the xDS files Envoy
//! watches.
//!
//! ```text
//! <work>/bootstrap.json  admin-address  envoy.log  (staging files)
//! <work>/xds/lds.json  cds.json  rds.json           watched: a move into it makes Envoy re-read all three
//! ```
//!
//! Files are written next to `xds/` and renamed into it: Envoy notices moves into the watched
//! directory, not edits in place, and never reads half a file.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::envoy::EnvoyFiles;
use crate::render::{
    self, CLUSTER_TYPE, DownstreamLimits, LISTENER_TYPE, ROUTE_CONFIGURATION_TYPE, RouteSource,
};

/// An I/O error on one file of the work directory.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct XdsError {
    /// What was being done.
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// The paths of one work directory.
#[derive(Debug, Clone)]
pub struct XdsFiles {
    work: PathBuf,
    /// The watched directory.
    pub watched: PathBuf,
    /// Listeners.
    pub lds: PathBuf,
    /// Clusters.
    pub cds: PathBuf,
    /// The route configuration.
    pub rds: PathBuf,
}

impl XdsFiles {
    /// Creates `<work>/xds`.
    pub fn create(work: &Path) -> Result<Self, XdsError> {
        let watched = work.join("xds");
        std::fs::create_dir_all(&watched).map_err(|source| XdsError {
            action: "creating",
            path: watched.clone(),
            source,
        })?;
        Ok(Self {
            work: work.to_owned(),
            lds: watched.join("lds.json"),
            cds: watched.join("cds.json"),
            rds: watched.join("rds.json"),
            watched,
        })
    }

    /// Envoy's own files in the work directory.
    pub fn envoy_files(&self) -> EnvoyFiles {
        EnvoyFiles {
            bootstrap: self.work.join("bootstrap.json"),
            admin_address: self.work.join("admin-address"),
            log: self.work.join("envoy.log"),
        }
    }

    /// Writes the bootstrap and the configuration Envoy starts with, all at version 0: the
    /// listener on `listen` (written once: rewriting it would rebind the port), no clusters and
    /// an empty route configuration. `limits` go on the listener and into the bootstrap.
    pub fn write_initial(
        &self,
        node_id: &str,
        listen: SocketAddr,
        limits: &DownstreamLimits,
    ) -> Result<(), XdsError> {
        let listener = render::listener(
            listen,
            RouteSource::File {
                path: &self.rds,
                watched_directory: &self.watched,
            },
            limits,
        );
        self.write(
            &self.lds,
            &render::discovery_response("0", LISTENER_TYPE, [&listener]),
        )?;
        self.write(
            &self.cds,
            &render::discovery_response("0", CLUSTER_TYPE, []),
        )?;
        self.write(
            &self.rds,
            &render::discovery_response(
                "0",
                ROUTE_CONFIGURATION_TYPE,
                [&render::empty_route_configuration()],
            ),
        )?;
        let bootstrap = render::bootstrap(node_id, &self.lds, &self.cds, &self.watched, limits);
        self.write(&self.envoy_files().bootstrap, &bootstrap)
    }

    /// Writes `contents` to `path` through a staging file outside the watched directory, then
    /// a rename into place.
    pub fn write(&self, path: &Path, contents: &Value) -> Result<(), XdsError> {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staging = self.work.join(format!(".{name}.staging"));
        let text = serde_json::to_vec_pretty(contents).map_err(|error| XdsError {
            action: "serialising",
            path: path.to_owned(),
            source: io::Error::other(error),
        })?;
        std::fs::write(&staging, text).map_err(|source| XdsError {
            action: "writing",
            path: staging.clone(),
            source,
        })?;
        std::fs::rename(&staging, path).map_err(|source| XdsError {
            action: "renaming into place",
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_files_are_version_zero_and_leave_no_staging_file_behind() {
        let work = tempfile::tempdir().expect("tempdir");
        let files = XdsFiles::create(work.path()).expect("create");
        files
            .write_initial(
                "node",
                "127.0.0.1:0".parse().expect("address"),
                &DownstreamLimits::default(),
            )
            .expect("write");
        for path in [&files.lds, &files.cds, &files.rds] {
            let text = std::fs::read_to_string(path).expect("read");
            let response: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(response["version_info"], "0", "{}", path.display());
        }
        let bootstrap: Value = serde_json::from_str(
            &std::fs::read_to_string(files.envoy_files().bootstrap).expect("read"),
        )
        .expect("json");
        assert_eq!(
            bootstrap["dynamic_resources"]["cds_config"]["path_config_source"]["path"],
            files.cds.display().to_string()
        );
        let staging: Vec<_> = std::fs::read_dir(work.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".staging"))
            .collect();
        assert!(staging.is_empty(), "{staging:?}");
    }
}

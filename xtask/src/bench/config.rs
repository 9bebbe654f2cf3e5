//! The configuration both gateways serve: Gloo YAML for the walkthrough's canary route.
//!
//! A VirtualService matches the prefix `/appmesh/color`, rewrites it to `/color` and routes to an
//! UpstreamGroup splitting 80/20 over two static Upstreams (the bench's blue and green servers).
//! Each gateway gets its own directory with identical files, so a weight change for one does not
//! reload the other while it is being measured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The route's prefix; the bench requests a path below it.
pub(crate) const ROUTE_PREFIX: &str = "/appmesh/color";
/// The name `/status` reports the UpstreamGroup under.
pub(crate) const GROUP_STATUS_NAME: &str = "UpstreamGroup gloo-system/bench-split";
const GROUP_FILE: &str = "upstreamgroup.yaml";

/// One gateway's config directory, and the staging directory weight changes are written in first.
#[derive(Debug)]
pub(crate) struct ConfigDir {
    pub(crate) dir: PathBuf,
    staging: PathBuf,
}

/// Weights of the blue and green Upstreams in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weights {
    pub(crate) blue: u32,
    pub(crate) green: u32,
}

impl Weights {
    pub(crate) const CANARY: Self = Self {
        blue: 80,
        green: 20,
    };
}

impl ConfigDir {
    /// Writes the Upstreams, the VirtualService and the 80/20 group (resourceVersion `1`) into
    /// `<root>/<name>/config`; the directory is emptied first.
    pub(crate) fn create(
        root: &Path,
        name: &str,
        blue: SocketAddr,
        green: SocketAddr,
    ) -> anyhow::Result<Self> {
        let base = root.join(name);
        if base.exists() {
            std::fs::remove_dir_all(&base)
                .with_context(|| format!("removing the old {}", base.display()))?;
        }
        let dir = base.join("config");
        let staging = base.join("staging");
        for folder in [&dir, &staging] {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        let config = Self { dir, staging };
        write(
            &config.dir.join("upstreams.yaml"),
            &upstreams_yaml(blue, green),
        )?;
        write(
            &config.dir.join("virtualservice.yaml"),
            VIRTUAL_SERVICE_YAML,
        )?;
        write(
            &config.dir.join(GROUP_FILE),
            &group_yaml(Weights::CANARY, "1"),
        )?;
        Ok(config)
    }

    /// Replaces the UpstreamGroup with new weights in one rename, as a controller writing the
    /// file would: the gateway never sees a half-written file.
    pub(crate) fn set_weights(
        &self,
        weights: Weights,
        resource_version: &str,
    ) -> anyhow::Result<()> {
        let staged = self.staging.join(GROUP_FILE);
        write(&staged, &group_yaml(weights, resource_version))?;
        let live = self.dir.join(GROUP_FILE);
        std::fs::rename(&staged, &live)
            .with_context(|| format!("moving {} to {}", staged.display(), live.display()))
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A Gloo static Upstream `gloo-system/<name>` with one host, as one YAML document.
pub(crate) fn static_upstream_yaml(name: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: {name}
  namespace: gloo-system
  resourceVersion: \"1\"
spec:
  static:
    hosts:
      - addr: {ip}
        port: {port}
",
        ip = addr.ip(),
        port = addr.port()
    )
}

fn upstreams_yaml(blue: SocketAddr, green: SocketAddr) -> String {
    format!(
        "{}---\n{}",
        static_upstream_yaml("bench-blue", blue),
        static_upstream_yaml("bench-green", green)
    )
}

const VIRTUAL_SERVICE_YAML: &str = "apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: bench
  namespace: gloo-system
  resourceVersion: \"1\"
spec:
  virtualHost:
    domains:
      - '*'
    routes:
      - matchers:
          - prefix: /appmesh/color
        routeAction:
          upstreamGroup:
            name: bench-split
            namespace: gloo-system
        options:
          prefixRewrite: /color
";

fn group_yaml(weights: Weights, resource_version: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: UpstreamGroup
metadata:
  name: bench-split
  namespace: gloo-system
  resourceVersion: \"{resource_version}\"
spec:
  destinations:
    - destination:
        upstream:
          name: bench-blue
          namespace: gloo-system
      weight: {blue}
    - destination:
        upstream:
          name: bench-green
          namespace: gloo-system
      weight: {green}
",
        blue = weights.blue,
        green = weights.green
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_change_replaces_the_group_file_in_place() {
        let temp = tempfile::tempdir().expect("temp dir");
        let blue: SocketAddr = "127.0.0.1:1001".parse().expect("addr");
        let green: SocketAddr = "127.0.0.1:1002".parse().expect("addr");
        let config = ConfigDir::create(temp.path(), "gw", blue, green).expect("written");
        config
            .set_weights(
                Weights {
                    blue: 0,
                    green: 100,
                },
                "7",
            )
            .expect("flipped");
        let text = std::fs::read_to_string(config.dir.join(GROUP_FILE)).expect("group file");
        assert!(text.contains("resourceVersion: \"7\""), "{text}");
        assert!(
            text.contains("weight: 0") && text.contains("weight: 100"),
            "{text}"
        );
        let files: Vec<_> = std::fs::read_dir(&config.dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(files.len(), 3, "{files:?}");
        let upstreams =
            std::fs::read_to_string(config.dir.join("upstreams.yaml")).expect("upstreams");
        assert!(upstreams.contains("port: 1001") && upstreams.contains("port: 1002"));
    }
}

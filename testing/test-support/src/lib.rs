//! What the workspace's integration tests share, so that each helper is written once.
//!
//! - [`workspace_root`], [`bin_dir`], [`built_binaries`], [`manifest`]: where the checkout, the
//!   built binaries and the walkthrough's manifests are.
//! - `CrdSchemas` (feature `crd`): the official CRD schemas (Gloo, App Mesh, Gateway API) as
//!   validators.
//! - [`envoy_binary`]: the real Envoy the Envoy tests put under test. A missing Envoy fails the
//!   test; it never passes by skipping.
//! - [`kube_bin_dir`]: the control plane `cargo xtask kube install` built (`--backend
//!   apiserver`). A missing build fails the test.
//! - [`write_by_rename`]: writes a config file the way the harness does.
//! - [`wait_for`], [`wait_until`]: readiness polls on a condition with a deadline, never a fixed
//!   sleep.
//! - [`endpoint_slice`], [`static_upstream`]: the YAML the local "API server" would hold.
//! - [`Upstream`]: an in-process HTTP upstream on 127.0.0.1:0 that tests route to.
//! - [`Served`]: a workload's `run(listener, config, shutdown)` served in process on port 0.
//! - [`process_alive`]: whether a child process is still running.
//!
//! Used only as a dev-dependency. It does not link any workspace crate, so the harness's tests can
//! use it without linking gateway-proxy.

#[cfg(feature = "crd")]
mod crd;
mod envoy;
mod fs;
mod kube;
mod manifests;
mod paths;
mod process;
mod served;
mod upstream;
mod wait;

#[cfg(feature = "crd")]
pub use crd::{CrdSchemas, shared_schemas_dir};
pub use envoy::{ENVOY_BIN_ENV, envoy_binary, managed_envoy};
pub use fs::write_by_rename;
pub use kube::{KUBE_BIN_DIR_ENV, kube_bin_dir};
pub use manifests::{endpoint_slice, manifest, manifests_dir, static_upstream};
pub use paths::{bin_dir, built_binaries, workspace_root};
pub use process::process_alive;
pub use served::{Served, StopSignal};
pub use upstream::{Behaviour, Echo, Upstream};
pub use wait::{POLL_INTERVAL, wait_for, wait_until};

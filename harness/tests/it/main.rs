//! harness's integration tests. One test binary per crate: each binary is linked on its own, so
//! fewer of them build faster. Each module was once a file of its own under `tests/`.
//!
//! The gate tests (walkthrough, conformance, local backend) start the workspace binaries from this
//! binary's profile folder: `cargo test --workspace` builds them; alone, `cargo build --bins` first.

mod apiserver;
mod conformance;
mod equivalence;
mod gate;
mod kube_backend;
mod live_cluster;
mod local_backend;
mod operating;
mod runner;
mod support;
mod walkthrough;

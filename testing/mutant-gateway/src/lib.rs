//! Test-only faulty gateways: the harness's proof that it catches what it claims to catch.
//!
//! `mutant-gateway` accepts gateway-proxy's command line plus `--mutation <name>`, so the local
//! backend runs it as the gateway under test:
//!
//! ```text
//! GatewayCommand { program: <path to mutant-gateway>, extra_args: ["--mutation", "off-by-one"] }
//! ```
//!
//! Everything but the ingress data plane is gateway-proxy's own public library: the config
//! directory is read and translated by [`gateway_proxy::DirSource`], installed and reloaded by
//! [`gateway_proxy::ProxyState`] and [`gateway_proxy::watch_dir`], and reported on the admin
//! listener by [`gateway_proxy::serve`]. So `/ready` and `/status` (which the harness uses to see
//! a change as live) always tell the truth about the configuration, and only the requests are
//! served wrong. The ingress data plane ([`serve_data_plane`]) is a small one of its own,
//! because gateway-proxy's picks and swaps cannot be reached from outside: it routes with the
//! `routing` crate's table, where the faults are injected, and forwards with gateway-proxy's
//! public request-path pieces ([`gateway_proxy::forward`]; see [`dataplane`]). Sidecars run gateway-proxy's data plane unmutated: every
//! mutation is about the ingress.
//!
//! [`Mutation`] defines each fault precisely. `--mutation none` is the control and must pass
//! every scenario the real gateway passes.
//!
//! This crate is not a feature of gateway-proxy and is never shipped (`publish = false`).

pub mod dataplane;
mod mutation;

pub use dataplane::{DataPlaneError, DataPlaneOptions, serve_data_plane};
pub use mutation::{HASH_HEADER, Mutation, PickContext};

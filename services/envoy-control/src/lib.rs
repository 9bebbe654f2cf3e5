//! Real Envoy as colormesh's peer gateway.
//!
//! Gloo is a control plane in front of Envoy; so is this crate. `envoy-control` takes exactly
//! gateway-proxy's command line (`ingress` | `sidecar --node N --namespace NS`, `--config-dir`,
//! `--listen`, `--admin`, `--seed`, and the limit flags `--max-connections`,
//! `--request-headers-timeout`, `--idle-timeout`, `--body-idle-timeout`, see
//! [`render::DownstreamLimits`]) plus `--envoy-bin PATH`, and serves the same YAML with a real
//! Envoy as the data plane:
//!
//! - the `routing` crate's translator (read through gateway-proxy's `DirSource`) turns the
//!   config directory into a [`RouteTable`](routing::table::RouteTable) (Gloo and App Mesh
//!   semantics live there and only there);
//! - [`render`] turns the table into Envoy v3 clusters and a route configuration;
//! - [`source::EnvoySource`] writes them as file-based xDS ([`xds`]) and waits until Envoy's
//!   `/config_dump` shows them, so a generation appears in `/status` only once Envoy serves it;
//! - [`envoy`] starts and supervises Envoy and reads its admin API.
//!
//! The admin listener of `envoy-control` is gateway-proxy's (`/ready`, `/status`, `/config_dump`
//! of the table, `POST /reload`), so a harness reads both gateways the same way.
//!
//! # Where Envoy is not gateway-proxy
//!
//! The renderer sets the Envoy fields Gloo and the App Mesh controller set, and does not paper
//! over behaviour that differs; differences are findings about gateway-proxy, fixed there (global
//! `regex_rewrite` and inverted header matchers on absent headers were) or listed here:
//! - weighted picks are Envoy's own random choices: `--seed` is accepted and ignored;
//! - regexes are RE2 in Envoy and Rust `regex` in the table; patterns valid in one only are
//!   rejected by the other (Envoy's rejection is reported in `/status`).
//! - Envoy adds its own headers (`x-envoy-upstream-service-time`, `server: envoy`,
//!   `x-request-id`, `x-forwarded-proto`).
//!
//! The sidecar's ALLOW_ALL passthrough is Envoy's dynamic forward proxy (DNS resolved by Envoy).

pub mod envoy;
pub mod render;
pub mod source;
pub mod xds;

pub use envoy::{EnvoyAdmin, EnvoyError, EnvoyProcess};
pub use render::{DownstreamLimits, EnvoyResources, RenderError, render};
pub use source::EnvoySource;
pub use xds::{XdsError, XdsFiles};

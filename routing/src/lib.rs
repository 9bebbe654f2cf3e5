//! colormesh's routing, kept pure: what a gateway decides about a request, and how that
//! decision is compiled from the resources a cluster holds.
//!
//! - [`table`]: the compiled, immutable route table (virtual hosts, matchers, rewrites, weighted
//!   clusters, retries, timeouts) and the lookup the data plane runs per request.
//! - [`translate`]: the resource model ([`model::ResourceSet`]) becomes a table plus a Gloo-style
//!   status per resource, for each flavour: Gloo and the Gateway API (Gateways, HTTPRoutes) for
//!   the ingress, App Mesh for a sidecar, GAMMA (HTTPRoutes on Services) for a mesh sidecar.
//!
//! This crate does no I/O beyond resolving a Service's DNS name, runs no async code and holds no
//! mutable state: gateway-proxy serves the table (it keeps the per-snapshot round-robin positions
//! and metric handles), envoy-control renders it for Envoy, and the mutant gateway breaks it on
//! purpose. Keeping tokio, kube's client, notify and prometheus out of here keeps matching testable
//! on its own, the way linkerd keeps route matching in `linkerd/http/route`.
//!
//! ```
//! use routing::table::{Fallback, RouteTable};
//! use routing::{Role, translate};
//!
//! let translation = translate(&model::ResourceSet::new(), &Role::ingress(), None);
//! assert!(translation.table.virtual_hosts().is_empty());
//! assert_eq!(translation.table.fallback(), &Fallback::NotFound);
//! # let _ = RouteTable::empty(Fallback::NotFound);
//! ```

pub mod table;
pub mod translate;

pub use translate::{
    GatewayApiStatus, GatewayName, ResourceStatus, Role, Translated, Translation, translate,
    translate_resources,
};

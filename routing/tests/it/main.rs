//! The translator end to end: the walkthrough's manifests in a config directory, translated by
//! this crate and served by gateway-proxy's real listeners to in-process upstreams. One test
//! binary, so the proxy and its dependencies are linked once.

mod gateway_api;
mod ingress;
mod sidecar;
mod support;

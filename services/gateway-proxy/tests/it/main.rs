//! gateway-proxy's integration tests. One test binary per crate: each binary is linked on its own,
//! so fewer of them build faster. Each module was once a file of its own under `tests/`.

mod admin_reload;
mod gateway_api;
mod hostile;
mod kube_source;
mod limits;
mod proxy;
mod support;
mod xray;

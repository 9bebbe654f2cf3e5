//! envoy-control's integration tests. One test binary per crate: each binary is linked on its
//! own, so fewer of them build faster. Each module was once a file of its own under `tests/`.
//!
//! `control` and `validate` run real Envoy (`cargo xtask envoy` installs it, or set
//! `COLORMESH_ENVOY_BIN`); without it they fail.

mod ack;
mod control;
mod gateway_api;
mod support;
mod validate;

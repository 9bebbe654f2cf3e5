//! colorgateway's integration tests. One test binary per crate: each binary is linked on its own,
//! so fewer of them build faster. Each module was once a file of its own under `tests/`.

mod binary;
mod colorgateway;
mod go_fidelity;
mod support;
mod xray;

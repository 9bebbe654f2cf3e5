//! What the gate tests share: the repository root and the Envoy under test.

use std::path::PathBuf;

use harness::backend::local::GatewayCommand;
pub(crate) use test_support::workspace_root;

/// `envoy-control` driving the Envoy under test. Without an installed Envoy the test fails
/// (`test_support::envoy_binary`); it never passes by skipping.
pub(crate) fn envoy_gateway() -> GatewayCommand {
    GatewayCommand {
        program: PathBuf::from("envoy-control"),
        extra_args: vec![
            "--envoy-bin".to_owned(),
            test_support::envoy_binary().display().to_string(),
        ],
    }
}

//! What the gate tests share: the repository root and the Envoy under test.

use std::path::PathBuf;

use harness::backend::local::GatewayCommand;

pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `envoy-control` driving the installed Envoy, or `None` (skip) when Envoy is not installed
/// outside CI; in CI (`CI` set) a missing Envoy fails the test.
pub(crate) fn envoy_gateway() -> Option<GatewayCommand> {
    let path = std::env::var_os("COLORMESH_ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/envoy/bin/envoy"));
    if !path.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Envoy not installed at {} (CI is set): run `cargo xtask envoy`",
            path.display()
        );
        eprintln!("skipped: Envoy not installed, run `cargo xtask envoy`");
        return None;
    }
    Some(GatewayCommand {
        program: PathBuf::from("envoy-control"),
        extra_args: vec!["--envoy-bin".to_owned(), path.display().to_string()],
    })
}

//! The real Envoy the Envoy tests run. The rule matches `cargo xtask envoy` (`xtask/src/envoy.rs`):
//! `$COLORMESH_ENVOY_BIN` when set, else the managed install at `<workspace>/target/envoy/bin/envoy`
//! (a fixed place under the repository, independent of `CARGO_TARGET_DIR`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::paths::workspace_root;

/// Names another Envoy build to test, as it does for `cargo xtask`.
pub const ENVOY_BIN_ENV: &str = "COLORMESH_ENVOY_BIN";

/// Where `cargo xtask envoy` installs the pinned Envoy.
pub fn managed_envoy() -> PathBuf {
    workspace_root()
        .join("target")
        .join("envoy")
        .join("bin")
        .join("envoy")
}

/// The Envoy binary to put under test. Panics when there is none, so that an Envoy test fails
/// instead of passing without having run.
pub fn envoy_binary() -> PathBuf {
    locate(std::env::var_os(ENVOY_BIN_ENV), &managed_envoy()).unwrap_or_else(|why| panic!("{why}"))
}

fn locate(explicit: Option<OsString>, managed: &Path) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{ENVOY_BIN_ENV}={}: no such file", path.display()))
        };
    }
    if managed.is_file() {
        return Ok(managed.to_owned());
    }
    Err(format!(
        "Envoy is not installed; run `cargo xtask envoy` (no Envoy at {}, and {ENVOY_BIN_ENV} is \
         not set)",
        managed.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_over_the_managed_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chosen = dir.path().join("my-envoy");
        std::fs::write(&chosen, "").expect("write");
        let found = locate(
            Some(chosen.clone().into_os_string()),
            &dir.path().join("absent"),
        );
        assert_eq!(found, Ok(chosen));
    }

    #[test]
    fn a_variable_naming_no_file_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let managed = dir.path().join("envoy");
        std::fs::write(&managed, "").expect("write");
        let error = locate(Some(dir.path().join("absent").into_os_string()), &managed)
            .expect_err("absent file");
        assert!(error.starts_with("COLORMESH_ENVOY_BIN="), "{error}");
    }

    #[test]
    fn without_either_the_error_says_how_to_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let managed = dir.path().join("envoy");
        let error = locate(None, &managed).expect_err("nothing installed");
        assert!(
            error.starts_with("Envoy is not installed; run `cargo xtask envoy`"),
            "{error}"
        );
        std::fs::write(&managed, "").expect("write");
        assert_eq!(locate(None, &managed), Ok(managed));
    }

    #[test]
    fn the_managed_install_is_under_the_workspace_target_folder() {
        assert!(managed_envoy().ends_with("target/envoy/bin/envoy"));
        assert!(managed_envoy().starts_with(workspace_root()));
    }
}

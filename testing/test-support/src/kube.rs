//! The control plane binaries the `--backend apiserver` tests run. The rule matches `cargo xtask
//! kube install` (`xtask/src/kube.rs`): `$COLORMESH_KUBE_BIN_DIR` when set (`cargo xtask test`
//! sets it), else the one `<workspace>/target/kube/<version>/bin` that holds all four binaries.

use std::path::PathBuf;

use crate::paths::workspace_root;

/// Names the folder with etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
pub const KUBE_BIN_DIR_ENV: &str = "COLORMESH_KUBE_BIN_DIR";

const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// The folder with the control plane binaries. Panics when there is none, so that a test of the
/// real API server fails instead of passing without having run.
pub fn kube_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(KUBE_BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        assert!(
            complete(&dir),
            "{KUBE_BIN_DIR_ENV}={}: not every one of {BINARIES:?} is there",
            dir.display()
        );
        return dir;
    }
    let root = workspace_root().join("target").join("kube");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| complete(dir))
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "the Kubernetes control plane is not built; run `cargo xtask kube install` (nothing complete under {})",
            root.display()
        )
    })
}

fn complete(dir: &std::path::Path) -> bool {
    BINARIES.iter().all(|name| dir.join(name).is_file())
}

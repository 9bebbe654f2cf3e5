//! Where the checkout and the built binaries are.

use std::path::{Path, PathBuf};

/// The repository root. This crate sits at `testing/test-support`, so the root is two folders up
/// from its manifest; the path is fixed at compile time, so tests read the checkout they were
/// built from.
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).unwrap_or(crate_dir).to_owned()
}

/// The profile folder (`target/debug`) that holds the workspace binaries: the running test
/// executable's folder, or its parent when that is `deps`. It is the folder the local backend
/// starts binaries from, so tests that need them check there.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test executable has a path");
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_owned()
    } else {
        dir.to_owned()
    }
}

/// [`bin_dir`], once it holds every binary in `names`. Fails the test naming the missing ones:
/// `cargo test -p <crate>` builds only that crate's binaries, while the local backend starts the
/// whole workspace's.
pub fn built_binaries(names: &[&str]) -> PathBuf {
    let dir = bin_dir();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs the workspace binaries {missing:?} in {}: run `cargo build --bins` first",
        dir.display()
    );
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("testing/test-support").is_dir());
    }

    #[test]
    fn the_bin_dir_is_the_profile_folder() {
        let dir = bin_dir();
        assert_ne!(dir.file_name().and_then(|n| n.to_str()), Some("deps"));
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }

    #[test]
    #[should_panic(expected = "no-such-binary")]
    fn a_missing_binary_is_named() {
        built_binaries(&["no-such-binary"]);
    }
}

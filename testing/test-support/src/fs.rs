//! Writing config files the way the harness (the local "API server") does.

use std::path::{Path, PathBuf};

/// Writes `contents` to `dir/name` through a temporary file in the same folder and a rename, so a
/// watching proxy never reads half a file. Returns the file's path.
pub fn write_by_rename(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, contents).expect("write temporary file");
    std::fs::rename(&temporary, &target).expect("rename into place");
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_replaces_the_old_one_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_by_rename(dir.path(), "a.yaml", "old");
        let path = write_by_rename(dir.path(), "a.yaml", "new");
        assert_eq!(path, dir.path().join("a.yaml"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.yaml"]);
    }
}

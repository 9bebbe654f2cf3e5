//! `cargo xtask migrate` from the outside: the walkthrough migrates into a folder with the
//! report, and a bad manifest stops it with the file named.

use std::process::Command;

use test_support::workspace_root;

#[test]
fn the_walkthrough_migrates_into_a_folder_with_its_drift_report() {
    let out = tempfile::tempdir().expect("temp dir");
    let manifests = workspace_root().join("manifests");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["migrate", "--to", "gateway-api", "--out"])
        .arg(out.path())
        .arg(manifests.join("colorapp"))
        .arg(manifests.join("colorgatewayv2"))
        .arg(manifests.join("gloo/upstreamgroup-80-20.yaml"))
        .output()
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("0 unmappable"), "{stdout}");
    assert!(stdout.contains("prefixMatch"), "{stdout}");
    for file in [
        "drift-report.json",
        "drift-report.md",
        "20-gateway.yaml",
        "30-httproutes.yaml",
        "40-mesh-httproutes.yaml",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing: {stdout}");
    }
}

#[test]
fn a_bad_manifest_stops_the_migration_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("vs.yaml");
    std::fs::write(&bad, "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {virtualHost: {routes: [{matchers: [{prefix: 7}]}]}}\n").expect("written");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["migrate", "--to", "gateway-api", "--out"])
        .arg(dir.path().join("out"))
        .arg(&bad)
        .output()
        .expect("xtask runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vs.yaml"), "{stderr}");
    assert!(
        stderr.contains("reading the manifests to migrate"),
        "{stderr}"
    );
}

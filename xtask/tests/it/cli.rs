//! The cluster paths of `cargo xtask` from the outside: what a user without the cluster tools sees.
//! Every command here must stop before touching Docker, a cluster or the network.

use std::process::{Command, Output};

/// Runs the xtask binary with an empty `PATH`, so no cluster CLI can be found.
fn xtask_without_tools(args: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("PATH", empty.path())
        .output()
        .expect("xtask runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn e2e_on_kind_names_every_missing_tool_with_how_to_get_it() {
    let output = xtask_without_tools(&["e2e", "--backend", "kind"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    for tool in ["glooctl", "docker", "kind", "kubectl"] {
        assert!(message.contains(tool), "{tool} missing from: {message}");
    }
    assert!(message.contains("https://kind.sigs.k8s.io"), "{message}");
}

#[test]
fn e2e_on_eks_needs_a_registry_before_anything_runs() {
    let output = xtask_without_tools(&["e2e", "--backend", "eks"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("--registry"), "{message}");
}

#[test]
fn gloo_is_refused_on_the_local_backend_and_envoy_on_clusters() {
    let gloo = xtask_without_tools(&["e2e", "--gateway", "gloo"]);
    assert!(
        stderr(&gloo).contains("--backend kind"),
        "{}",
        stderr(&gloo)
    );
    let envoy = xtask_without_tools(&["e2e", "--backend", "k3s", "--gateway", "envoy"]);
    assert!(
        stderr(&envoy).contains("--gateway builtin"),
        "{}",
        stderr(&envoy)
    );
}

#[test]
fn cluster_up_without_kind_says_how_to_install_it() {
    let output = xtask_without_tools(&["cluster", "up", "--provider", "kind"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("kind"), "{message}");
}

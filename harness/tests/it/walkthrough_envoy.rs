//! The walkthrough gate with real Envoy as the gateway under test: `scenarios/walkthrough.yaml` on
//! the local backend, with `envoy-control` (control plane + Envoy) as the ingress and as every
//! sidecar, exactly as `cargo xtask e2e --gateway envoy` runs it.
//!
//! Needs the `envoy-control` binary in the profile folder (a workspace test run builds it; alone:
//! `cargo build -p envoy-control --bins`) and Envoy (`cargo xtask envoy`, or
//! `COLORMESH_ENVOY_BIN`). Without Envoy the test fails.

use crate::gate::{envoy_gateway, workspace_root};
use harness::backend::Backend;
use harness::backend::local::{LocalBackend, LocalConfig};
use harness::runner::{RunSettings, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_passes_with_envoy_as_the_gateway() {
    let gateway = envoy_gateway();
    let root = workspace_root();
    let scenario = harness::scenario::load(&root.join("scenarios/walkthrough.yaml")).unwrap();
    let settings = RunSettings::builder(root.join("manifests"))
        .seed(20261122)
        .build();
    let config = LocalConfig {
        bin_dir: LocalConfig::bin_dir_of_current_exe().unwrap(),
        gateway,
        manifests_dir: settings.manifests_dir.clone(),
        work_dir: None,
        seed: settings.seed,
    };
    let mut backend = LocalBackend::start(config).await.unwrap();
    let mut transcript = Vec::new();
    let report = run_all(&mut backend, &[scenario], &settings, &mut transcript).await;
    backend.shutdown().await.unwrap();
    let transcript = String::from_utf8_lossy(&transcript);
    assert!(
        report.passed(),
        "the walkthrough failed with Envoy:\n{transcript}"
    );
    // The canary's three weight changes were all judged, not skipped.
    for step in ["canary 80/20", "canary 50/50", "canary 0/100"] {
        let passed = transcript
            .lines()
            .any(|line| line.starts_with("PASS step") && line.contains(step));
        assert!(passed, "no PASS line for {step}:\n{transcript}");
    }
}

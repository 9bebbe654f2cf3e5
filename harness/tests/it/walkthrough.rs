//! The gate itself in CI: the real `scenarios/walkthrough.yaml` on the local backend, with the real
//! binaries (`cargo test --workspace` builds them before any test runs), exactly as
//! `cargo xtask e2e` runs it.

use harness::backend::Backend;
use harness::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use harness::runner::{RunSettings, run_all};
use test_support::workspace_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_passes_on_the_local_backend() {
    let root = workspace_root();
    let scenario = harness::scenario::load(&root.join("scenarios/walkthrough.yaml")).unwrap();
    let settings = RunSettings::builder(root.join("manifests"))
        .seed(20261122)
        .build();
    let config = LocalConfig {
        bin_dir: LocalConfig::bin_dir_of_current_exe().unwrap(),
        gateway: GatewayCommand::builtin(),
        manifests_dir: settings.manifests_dir.clone(),
        work_dir: None,
        seed: settings.seed,
    };
    let mut backend = LocalBackend::start(config).await.unwrap();
    let mut transcript = Vec::new();
    let report = run_all(&mut backend, &[scenario], &settings, &mut transcript).await;
    backend.shutdown().await.unwrap();
    let transcript = String::from_utf8_lossy(&transcript);
    assert!(report.passed(), "the walkthrough failed:\n{transcript}");
    // The canary's three weight changes were all judged, not skipped.
    for step in ["canary 80/20", "canary 50/50", "canary 0/100"] {
        let passed = transcript
            .lines()
            .any(|line| line.starts_with("PASS step") && line.contains(step));
        assert!(passed, "no PASS line for {step}:\n{transcript}");
    }
}

//! The gate itself in CI: the real `scenarios/walkthrough.yaml` on the local backend, with the real
//! binaries (`cargo test --workspace` builds them before any test runs), exactly as
//! `cargo xtask e2e` runs it: once with gateway-proxy and once with real Envoy (`envoy-control` as
//! the ingress and every sidecar, `cargo xtask e2e --gateway envoy`). Without Envoy the second
//! test fails.

use harness::backend::Backend;
use harness::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use harness::runner::{RunSettings, run_all};

use crate::gate::{envoy_gateway, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_passes_on_the_local_backend() {
    walkthrough_passes(GatewayCommand::builtin(), "gateway-proxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_passes_with_envoy_as_the_gateway() {
    walkthrough_passes(envoy_gateway(), "Envoy").await;
}

/// Runs the walkthrough with `gateway` under test and asserts that it passed, with every canary
/// step judged.
async fn walkthrough_passes(gateway: GatewayCommand, label: &str) {
    let root = workspace_root();
    let scenario = harness::scenario::load(&root.join("scenarios/walkthrough.yaml"))
        .expect("scenarios/walkthrough.yaml loads");
    let settings = RunSettings::builder(root.join("manifests"))
        .seed(20261122)
        .build();
    let config = LocalConfig {
        bin_dir: LocalConfig::bin_dir_of_current_exe().expect("the test binary has a folder"),
        gateway,
        manifests_dir: settings.manifests_dir.clone(),
        work_dir: None,
        seed: settings.seed,
        echo_requests: false,
    };
    let mut backend = LocalBackend::start(config)
        .await
        .expect("the local backend starts");
    let mut transcript = Vec::new();
    let report = run_all(&mut backend, &[scenario], &settings, &mut transcript).await;
    backend.shutdown().await.expect("the local backend stops");
    let transcript = String::from_utf8_lossy(&transcript);
    assert!(
        report.passed(),
        "the walkthrough failed with {label}:\n{transcript}"
    );
    // Each weight change was applied while traffic flowed and cost nothing: no failed reply, no
    // request served by the old weights once the gateway reported the new ones.
    for step in report.scenarios[0]
        .steps
        .iter()
        .filter(|step| step.name.starts_with("canary "))
    {
        let shift = step
            .traffic
            .as_ref()
            .and_then(|traffic| traffic.shift.as_ref())
            .unwrap_or_else(|| panic!("{} is not a shift step", step.name));
        assert_eq!(
            (
                shift.non_2xx,
                shift.transport_errors,
                shift.stale_after_report
            ),
            (0, 0, 0),
            "{} with {label}: {shift:?}",
            step.name
        );
        assert!(
            shift.generation_reported > shift.generation_before
                && shift.first_new_generation_ms.is_some(),
            "{} with {label}: {shift:?}",
            step.name
        );
    }
    // The canary's three weight changes were all judged, not skipped.
    for step in ["canary 80/20", "canary 50/50", "canary 0/100"] {
        let passed = transcript
            .lines()
            .any(|line| line.starts_with("PASS step") && line.contains(step));
        assert!(
            passed,
            "no PASS line for {step} with {label}:\n{transcript}"
        );
    }
}

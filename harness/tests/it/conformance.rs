//! The conformance suite (`scenarios/conformance/*.yaml`) on the local backend with the builtin
//! gateway, as `cargo xtask conformance` runs it, plus the suite's coverage of the feature
//! registry. Needs the workspace binaries (`cargo test --workspace` builds them first).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::gate::{envoy_gateway, workspace_root};
use harness::backend::Backend;
use harness::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use harness::features::Feature;
use harness::report::conformance::{
    ConformanceContext, ConformanceResult, Implementation, ScenarioResult, conformance_report,
    feature_table, select,
};
use harness::runner::{RunSettings, run_all};
use harness::scenario::Scenario;

/// Registry features no conformance scenario claims yet, each with the reason. Keep it honest:
/// the coverage test fails if a listed feature is in fact covered.
const NOT_COVERED: &[(Feature, &str)] = &[
    (
        Feature::GatewayPort8080,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayHTTPListenerIsolation,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayStaticAddresses,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayHTTPSListenerDetectMisdirectedRequests,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayInfrastructurePropagation,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayAddressEmpty,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayBackendClientCertificate,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayFrontendClientCertificateValidation,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::GatewayFrontendClientCertificateValidationInsecureFallback,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::ListenerSet,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::BackendTLSPolicy,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::BackendTLSPolicySANValidation,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::HTTPRouteDestinationPortMatching,
        "colormesh serves one HTTP port and no TLS: listener, address and certificate features are out of scope",
    ),
    (
        Feature::HTTPRouteBackendRequestHeaderModification,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteRequestMirror,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteRequestMultipleMirrors,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteRequestPercentageMirror,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteBackendProtocolH2C,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteBackendProtocolWebSocket,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteNamedRouteRule,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteCORS,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRoute303RedirectStatusCode,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRoute307RedirectStatusCode,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRoute308RedirectStatusCode,
        "not implemented by the translator (mirrors, CORS, 303/307/308, named rules, backend protocols, per-backendRef filters)",
    ),
    (
        Feature::HTTPRouteRetryBackendTimeout,
        "retry on a backend timeout or a connection error: no scenario yet (HTTPRouteRetry covers codes)",
    ),
    (
        Feature::HTTPRouteRetryConnectionError,
        "retry on a backend timeout or a connection error: no scenario yet (HTTPRouteRetry covers codes)",
    ),
    (
        Feature::MeshBasic,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteMatching,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshTrafficSplit,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteRequestHeaderModifier,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteRedirectHostAndStatus,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshClusterIPMatching,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteRewritePath,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteSchemeRedirect,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteRedirectPort,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteRedirectPath,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteBackendRequestHeaderModification,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteQueryParamMatching,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
    (
        Feature::MeshHTTPRouteNamedRouteRule,
        "MESH-HTTP: the local callers (colorgateway) always call the Service's /, so mesh path and header matching, redirects and header edits need a caller that forwards a path and headers; ClusterIP matching needs callers that dial ClusterIPs",
    ),
];

/// Scenarios the builtin gateway is known to fail, each with the divergence from the reference
/// (Gloo configuring Envoy). The suite test requires them to fail, so that fixing the gateway
/// forces the entry out of this list.
const KNOWN_BUILTIN_DIVERGENCES: &[(&str, &str)] = &[];

fn suite() -> Vec<Scenario> {
    let dir = workspace_root().join("scenarios/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/conformance is readable")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| harness::scenario::load(file).unwrap_or_else(|error| panic!("{error}")))
        .collect()
}

#[test]
fn every_registry_feature_is_covered_or_listed_with_a_reason() {
    let scenarios = suite();
    let claimed: BTreeSet<Feature> = scenarios
        .iter()
        .flat_map(|s| s.features.iter().copied())
        .collect();
    let listed: BTreeSet<Feature> = NOT_COVERED.iter().map(|(feature, _)| *feature).collect();
    let missing: Vec<&str> = Feature::ALL
        .iter()
        .filter(|f| !claimed.contains(f) && !listed.contains(f))
        .map(|f| f.name())
        .collect();
    assert!(
        missing.is_empty(),
        "features no conformance scenario claims: {missing:?}"
    );
    let stale: Vec<&str> = listed
        .iter()
        .filter(|f| claimed.contains(f))
        .map(|f| f.name())
        .collect();
    assert!(
        stale.is_empty(),
        "listed as not covered but claimed: {stale:?}"
    );
    for (feature, why) in NOT_COVERED {
        assert!(!why.trim().is_empty(), "{feature} needs a reason");
    }
    let names: BTreeSet<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names.len(),
        scenarios.len(),
        "scenario names must be unique"
    );
    for (name, _) in KNOWN_BUILTIN_DIVERGENCES {
        assert!(names.contains(name), "{name} is not a conformance scenario");
    }
}

#[test]
fn every_scenario_uses_manifests_that_exist() {
    let manifests = workspace_root().join("manifests");
    for scenario in suite() {
        for step in &scenario.steps {
            let paths = match &step.action {
                harness::scenario::Action::Apply(paths)
                | harness::scenario::Action::Delete(paths) => paths,
                _ => continue,
            };
            for path in paths {
                assert!(
                    manifests.join(path).exists(),
                    "{}: step {step}: manifests/{} does not exist",
                    scenario.source.display(),
                    path.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_the_builtin_gateway() {
    assert_suite_passes(GatewayCommand::builtin(), "builtin", "gateway-proxy").await;
}

/// The same suite with real Envoy (through envoy-control) as the gateway: the reference
/// implementation must pass every scenario, with no known divergences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_envoy() {
    assert_suite_passes(envoy_gateway(), "envoy", "envoy").await;
}

/// Runs the whole suite on `gateway` and checks every scenario and feature; on the builtin
/// gateway the known divergences must fail (so fixing one forces it off the list).
async fn assert_suite_passes(gateway: GatewayCommand, mode: &str, project: &str) {
    let known_divergences: &[(&str, &str)] = if mode == "builtin" {
        KNOWN_BUILTIN_DIVERGENCES
    } else {
        &[]
    };
    let root = workspace_root();
    let selection = select(suite(), &[], &BTreeSet::new());
    assert!(selection.skipped.is_empty());
    let settings = RunSettings::builder(root.join("manifests"))
        .seed(20261122)
        .build();
    let config = LocalConfig {
        bin_dir: LocalConfig::bin_dir_of_current_exe().expect("the test executable has a folder"),
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
    let run = run_all(&mut backend, &selection.run, &settings, &mut transcript).await;
    backend.shutdown().await.expect("the local backend stops");
    let transcript = String::from_utf8_lossy(&transcript);

    let context = ConformanceContext {
        implementation: Implementation {
            organization: "colormesh".to_owned(),
            project: project.to_owned(),
            url: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            contact: Vec::new(),
        },
        mode: mode.to_owned(),
        unsupported: BTreeSet::new(),
        only: Vec::new(),
        date: SystemTime::now(),
    };
    let report = conformance_report(&run, &selection.skipped, &context);
    let table = feature_table(&report);
    let known: BTreeSet<&str> = known_divergences.iter().map(|(name, _)| *name).collect();
    for scenario in &report.scenarios {
        if known.contains(scenario.name.as_str()) {
            assert_eq!(
                scenario.result,
                ScenarioResult::Failed,
                "{} is listed as a known divergence but did not fail: remove it from \
                 KNOWN_BUILTIN_DIVERGENCES\n{table}",
                scenario.name
            );
        } else {
            assert_eq!(
                scenario.result,
                ScenarioResult::Passed,
                "{} did not pass\n{table}\n{transcript}",
                scenario.name
            );
        }
    }
    // Every feature was tested but the ones listed as not covered, and only the divergences'
    // features fail.
    let not_covered: BTreeSet<Feature> = NOT_COVERED.iter().map(|(f, _)| *f).collect();
    assert!(
        report
            .summary
            .untested_features
            .iter()
            .all(|f| not_covered.contains(f)),
        "{table}"
    );
    for feature in &report.features {
        let only_known = feature
            .failed_scenarios
            .iter()
            .all(|name| known.contains(name.as_str()));
        assert!(
            feature.result != ConformanceResult::Failure || only_known,
            "{} failed\n{table}",
            feature.name
        );
    }
    assert_eq!(
        report.summary.statistics.failed,
        known_divergences.len() as u64
    );
    // The splits were judged on real traffic, not skipped.
    assert!(run.verdicts >= report.scenarios.len() as u64, "{table}");
}

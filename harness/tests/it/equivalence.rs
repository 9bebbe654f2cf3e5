//! `harness::equivalence` on the walkthrough's migration: the before manifests (App Mesh
//! colorapp, the v2 canary, Gloo's 80/20 UpstreamGroup) against what `migrate` writes for them
//! (Gateway + HTTPRoute at the edge, GAMMA HTTPRoutes in the mesh, and the drift report), on the
//! local backend with gateway-proxy and with Envoy. The migration passes, every difference
//! predicted by its drift report, and fails without the report (the element-wise prefix drift);
//! a changed weight, a wrong rewrite and a dropped retry in the output are each reported as
//! unpredicted differences.
//!
//! Needs the workspace binaries next to this test's profile (`cargo test --workspace` builds
//! them; for `cargo test -p harness` run `cargo build --bins` first).

use std::path::{Path, PathBuf};

use harness::backend::local::{GatewayCommand, LocalConfig};
use harness::equivalence::{self, Area, EquivalenceReport, EquivalenceSettings, Observations};
use migrate::DriftReport;

use crate::gate::{envoy_gateway, workspace_root};

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, to).expect("copy");
    }
}

/// The walkthrough's two sides in temporary folders: before = manifests/colorapp,
/// colorgatewayv2 and gloo/upstreamgroup-80-20.yaml, as the README's migration example gives
/// them; after = their migration, written as `cargo xtask migrate --to gateway-api` writes it.
fn walkthrough_sides() -> (tempfile::TempDir, tempfile::TempDir) {
    let manifests = workspace_root().join("manifests");
    let before = tempfile::TempDir::with_prefix("equivalence-before-").expect("temp dir");
    let after = tempfile::TempDir::with_prefix("equivalence-after-").expect("temp dir");
    copy(&manifests.join("colorapp"), &before.path().join("colorapp"));
    copy(
        &manifests.join("colorgatewayv2"),
        &before.path().join("colorgatewayv2"),
    );
    copy(
        &manifests.join("gloo/upstreamgroup-80-20.yaml"),
        &before.path().join("gloo/upstreamgroup-80-20.yaml"),
    );
    let input = migrate::Input::read(&[before.path().to_owned()]).expect("the walkthrough reads");
    migrate::migrate(&input, &migrate::Options::default())
        .expect("the walkthrough migrates")
        .write_to(after.path())
        .expect("the migration is written");
    (before, after)
}

/// The migration's file that holds `needle`.
fn output_file_with(after: &Path, needle: &str) -> PathBuf {
    std::fs::read_dir(after)
        .expect("read_dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            path.extension().is_some_and(|e| e == "yaml")
                && std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
        })
        .unwrap_or_else(|| panic!("no output file in {} holds {needle:?}", after.display()))
}

/// Replaces `from` by `to` in one file, which must hold it.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    assert!(text.contains(from), "{} holds no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("write");
}

async fn observe(before: &Path, after: &Path, gateway: GatewayCommand) -> Observations {
    let mut settings = EquivalenceSettings::new(
        before.to_owned(),
        after.to_owned(),
        LocalConfig::bin_dir_of_current_exe().expect("the test binary has a folder"),
        gateway,
    );
    settings.seed = 20261203;
    equivalence::observe(&settings)
        .await
        .expect("both sides run")
}

fn judge_with_drift(observations: Observations, after: &Path, strict: bool) -> EquivalenceReport {
    let drift = DriftReport::read_from(after)
        .expect("the drift report reads")
        .expect("the after folder has a drift report");
    let path: PathBuf = after.join(migrate::drift::DRIFT_REPORT_FILE);
    equivalence::judge(observations, Some((&drift, path)), strict)
}

fn table(report: &EquivalenceReport) -> String {
    equivalence::report::summary_table(report)
}

/// The glued-suffix requests: `/appmesh/color` with something glued on (not `/` or nothing).
fn glued(example: &str) -> bool {
    let path = example.split_whitespace().nth(1).unwrap_or_default();
    let path = path.trim_start_matches(|c: char| c != '/');
    path.starts_with("/appmesh/color")
        && !path.starts_with("/appmesh/color/")
        && !path.starts_with("/appmesh/color?")
        && path != "/appmesh/color"
}

async fn walkthrough_is_equivalent_up_to_the_prefix_drift(gateway: GatewayCommand) {
    let (before, after) = walkthrough_sides();
    let observations = observe(before.path(), after.path(), gateway).await;

    let report = judge_with_drift(observations.clone(), after.path(), false);
    let text = table(&report);
    assert!(report.passed, "every difference is predicted:\n{text}");
    assert!(
        !report.differences.is_empty(),
        "the glued-suffix drift shows:\n{text}"
    );
    assert!(
        report
            .differences
            .iter()
            .all(|d| d.area == Area::Probe && d.predicted() && d.examples.iter().all(|e| glued(e))),
        "only glued-suffix probes differ:\n{text}"
    );
    assert!(text.contains("known"), "{text}");
    // Both weighted routes (the edge 80/20, the mesh 1:1:1) pass on both sides, and the flaky
    // tellers cost the same on both.
    assert_eq!(report.observations.splits.len(), 2, "{text}");
    assert!(report.observations.retries.is_some(), "{text}");
    // The probe set covers the boundaries of /appmesh/color and the hosts.
    assert!(report.observations.probes.len() >= 15, "{text}");

    let strict = judge_with_drift(observations.clone(), after.path(), true);
    assert!(!strict.passed, "--strict fails on known drift too");

    let unannounced = equivalence::judge(observations, None, false);
    let text = table(&unannounced);
    assert!(
        !unannounced.passed,
        "without a drift report the drift is a defect:\n{text}"
    );
    assert!(unannounced.unpredicted() > 0, "{text}");
    assert!(
        unannounced
            .differences
            .iter()
            .any(|d| d.examples.iter().any(|e| e.contains("/appmesh/colorful"))),
        "{text}"
    );
    assert!(text.contains("UNPREDICTED"), "{text}");

    // The reports are written and the HTML names the known drift.
    let dir = tempfile::TempDir::new().expect("temp dir");
    let files = equivalence::report::write_reports(&report, dir.path()).expect("reports");
    let html = std::fs::read_to_string(files.html).expect("html");
    assert!(html.contains("known") && html.contains("Weighted routes"));
    let junit = std::fs::read_to_string(files.junit).expect("junit");
    assert!(junit.contains("testsuite"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_migration_differs_only_by_its_known_drift() {
    walkthrough_is_equivalent_up_to_the_prefix_drift(GatewayCommand::builtin()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_migration_differs_only_by_its_known_drift_on_envoy() {
    walkthrough_is_equivalent_up_to_the_prefix_drift(envoy_gateway()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_weight_is_an_unpredicted_split_difference() {
    let (before, after) = walkthrough_sides();
    let canary = output_file_with(after.path(), "weight: 80");
    edit(&canary, "weight: 80", "weight: 70");
    edit(&canary, "weight: 20", "weight: 30");
    let report = judge_with_drift(
        observe(before.path(), after.path(), GatewayCommand::builtin()).await,
        after.path(),
        false,
    );
    let text = table(&report);
    assert!(!report.passed, "{text}");
    let split = report
        .differences
        .iter()
        .find(|d| d.area == Area::Split && !d.predicted())
        .unwrap_or_else(|| panic!("the 70/30 split is reported:\n{text}"));
    assert!(split.summary.contains("Fail"), "{text}");
    let edge = &report.observations.splits[0];
    assert_eq!(edge.before.outcome, harness::stats::Outcome::Pass, "{text}");
    assert_eq!(edge.after.outcome, harness::stats::Outcome::Fail, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_to_the_wrong_prefix_is_an_unpredicted_probe_difference() {
    let (before, after) = walkthrough_sides();
    edit(
        &output_file_with(after.path(), "replacePrefixMatch: /color"),
        "replacePrefixMatch: /color",
        "replacePrefixMatch: /colour",
    );
    let report = judge_with_drift(
        observe(before.path(), after.path(), GatewayCommand::builtin()).await,
        after.path(),
        false,
    );
    let text = table(&report);
    assert!(!report.passed, "{text}");
    assert!(
        report.differences.iter().any(|d| d.area == Area::Probe
            && !d.predicted()
            && d.examples.iter().any(|e| e == "GET /appmesh/color")
            && d.summary.contains("backend saw path: /color → /colour")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_retry_is_an_unpredicted_retry_difference() {
    let (before, after) = walkthrough_sides();
    // App Mesh retried the teller call twice on a 503 without being asked; a migration that
    // drops the explicit retry it wrote for that loses them.
    let mesh_routes = output_file_with(after.path(), "colorteller-route");
    let text = std::fs::read_to_string(&mesh_routes).expect("read");
    let retry = "    retry:\n      codes:\n      - 503\n      attempts: 2\n      backoff: 25ms\n";
    assert!(text.contains(retry), "{text}");
    std::fs::write(&mesh_routes, text.replace(retry, "")).expect("write");
    let report = judge_with_drift(
        observe(before.path(), after.path(), GatewayCommand::builtin()).await,
        after.path(),
        false,
    );
    let text = table(&report);
    assert!(!report.passed, "{text}");
    let retry = report
        .differences
        .iter()
        .find(|d| d.area == Area::Retry)
        .unwrap_or_else(|| panic!("the dropped retry is reported:\n{text}"));
    assert!(!retry.predicted(), "{text}");
    let rates = report.observations.retries.as_ref().expect("retries ran");
    assert!(rates.before.successes > rates.after.successes, "{text}");
}

/// The hand-written Gateway API walkthrough (`manifests/gateway-api/`) against the migration of
/// the App Mesh and Gloo one: they route, rewrite and split alike. The one difference is App Mesh's
/// implicit retry, which the migration writes out and the hand-written GAMMA routes leave out
/// (they stay within the standard channel, which has no `retry`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_written_gateway_api_walkthrough_differs_from_the_migration_only_by_retries() {
    let (_before, migrated) = walkthrough_sides();
    let gateway_api = workspace_root().join("manifests/gateway-api");
    let hand_written = tempfile::TempDir::with_prefix("equivalence-hand-").expect("temp dir");
    for part in [
        "colorapp",
        "colorgatewayv2",
        "gateway/gateway.yaml",
        "canary-80-20.yaml",
    ] {
        copy(&gateway_api.join(part), &hand_written.path().join(part));
    }
    let observations = observe(
        migrated.path(),
        hand_written.path(),
        GatewayCommand::builtin(),
    )
    .await;
    let report = equivalence::judge(observations, None, false);
    let text = table(&report);
    assert_eq!(report.observations.splits.len(), 2, "{text}");
    assert!(
        report.differences.iter().all(|d| d.area == Area::Retry),
        "only the retry differs:\n{text}"
    );
    let rates = report.observations.retries.as_ref().expect("retries ran");
    assert!(
        report.differences.len() == 1 && rates.before.successes > rates.after.successes,
        "the migration retries, the hand-written routes do not:\n{text}"
    );
}

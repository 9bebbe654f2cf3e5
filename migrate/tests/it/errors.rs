//! Input the migration refuses, with errors that say where.

use migrate::{Input, MigrateError, Options};

#[test]
fn a_malformed_manifest_is_an_error_naming_the_file_the_resource_and_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("a-good.yaml");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    )
    .expect("written");
    let bad = dir.path().join("b-bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: g, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: u}}\n    weight: heavy\n",
    )
    .expect("written");
    let error = Input::read(&[dir.path().to_owned()]).expect_err("a bad weight");
    let MigrateError::Load { errors } = &error else {
        panic!("{error}")
    };
    assert_eq!(errors.len(), 1);
    let text = error.to_string();
    assert!(text.contains("b-bad.yaml"), "{text}");
    assert!(text.contains("UpstreamGroup gloo-system/g"), "{text}");
    assert!(text.contains("spec.destinations[0].weight"), "{text}");
}

#[test]
fn a_missing_path_and_an_input_without_gloo_or_app_mesh_are_refused() {
    let error = Input::read(&["/no/such/manifests".into()]).expect_err("missing");
    assert!(error.to_string().contains("/no/such/manifests"), "{error}");
    let input = Input::from_text(
        std::path::Path::new("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    )
    .expect("loads");
    let error = migrate::migrate(&input, &Options::default()).expect_err("nothing to migrate");
    assert!(matches!(error, MigrateError::NothingToMigrate { .. }));
    assert!(error.to_string().contains("ns.yaml"), "{error}");
}

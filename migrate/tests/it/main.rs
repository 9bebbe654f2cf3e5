//! migrate's integration tests. One test binary per crate: each binary is linked on its own, so
//! fewer of them build faster.

mod appmesh;
mod behaviour;
mod errors;
mod gloo;
mod walkthrough;

use migrate::{DriftItem, DriftKind, Input, Mapping, Migration, Options};

/// Migrates YAML held in memory, as if read from `file`.
fn migrate_text(file: &str, text: &str) -> Migration {
    let input = Input::from_text(std::path::Path::new(file), text).expect("the input loads");
    migrate::migrate(&input, &Options::default()).expect("the input migrates")
}

/// The items of one kind.
fn items(migration: &Migration, kind: DriftKind) -> Vec<&DriftItem> {
    migration
        .report
        .items
        .iter()
        .filter(|i| i.kind == kind)
        .collect()
}

/// Whether an item's affected requests hold a GET of this path (any host, no headers).
fn affects(item: &DriftItem, path: &str) -> bool {
    let none = std::collections::BTreeMap::new();
    item.affects
        .iter()
        .any(|p| p.matches("GET", "example.com", path, &none))
}

/// Every output document of a Gateway API kind validates against the official CRDs; returns how
/// many were checked.
fn assert_valid_output(migration: &Migration) -> usize {
    let schemas = test_support::CrdSchemas::load();
    let mut checked = 0;
    for document in migration.documents() {
        let api_version = document["apiVersion"].as_str().unwrap_or_default();
        if api_version.starts_with("gateway.networking.k8s.io/") {
            assert!(
                schemas.check(document).is_some(),
                "no schema for {document}"
            );
        }
        if schemas.check(document).is_some() {
            schemas.assert_valid(
                &format!("{} {}", document["kind"], document["metadata"]["name"]),
                document,
            );
            checked += 1;
        }
    }
    checked
}

/// No item is unmappable.
fn assert_no_unmappable(migration: &Migration) {
    let unmappable: Vec<_> = migration
        .report
        .items
        .iter()
        .filter(|i| i.mapping == Mapping::Unmappable)
        .collect();
    assert!(unmappable.is_empty(), "{unmappable:#?}");
}

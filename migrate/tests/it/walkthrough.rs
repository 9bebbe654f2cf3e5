//! The walkthrough's manifests (colorapp, colorgatewayv2 and each Gloo step) migrate without
//! unmappable items into documents the official CRDs accept, with the weights kept exactly and the
//! prefix and rewrite drift named with the requests they change.

use migrate::{DriftKind, DriftReport, Input, Mapping, Migration, Options, migrate};
use model::gateway_api::{HttpPathModifier, HttpRouteFilter, PathMatchType};
use test_support::workspace_root;

use crate::{affects, assert_no_unmappable, assert_valid_output, items};

const STEPS: [(&str, &[(&str, u32)]); 4] = [
    ("virtualservice-colorgateway.yaml", &[("colorgateway", 1)]),
    (
        "upstreamgroup-80-20.yaml",
        &[("colorgateway", 80), ("colorgatewayv2", 20)],
    ),
    (
        "upstreamgroup-50-50.yaml",
        &[("colorgateway", 50), ("colorgatewayv2", 50)],
    ),
    ("upstreamgroup-0-100.yaml", &[("colorgatewayv2", 100)]),
];

fn walkthrough(step: &str, options: &Options) -> Migration {
    let root = workspace_root().join("manifests");
    let paths = vec![
        root.join("colorapp"),
        root.join("colorgatewayv2"),
        root.join("gloo").join(step),
    ];
    let input = Input::read(&paths).expect("the walkthrough's manifests load");
    migrate(&input, options).expect("the walkthrough migrates")
}

fn edge_route(migration: &Migration) -> &model::gateway_api::HTTPRoute {
    migration
        .http_routes()
        .find(|r| r.spec.parent_refs.iter().all(|p| p.is_gateway()))
        .expect("an edge HTTPRoute")
}

#[test]
fn every_canary_step_migrates_without_unmappable_items_into_valid_documents() {
    for (step, _) in STEPS {
        let migration = walkthrough(step, &Options::default());
        assert_no_unmappable(&migration);
        // GatewayClass + Gateway + edge route + 3 GAMMA routes + 1 ReferenceGrant.
        assert_eq!(assert_valid_output(&migration), 7, "{step}");
        // Nothing of Gloo or App Mesh is left, and the workloads are all there.
        let kinds: Vec<&str> = migration
            .documents()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        for gone in [
            "VirtualService",
            "UpstreamGroup",
            "Upstream",
            "VirtualNode",
            "VirtualRouter",
            "Mesh",
        ] {
            assert!(!kinds.contains(&gone), "{step}: {gone} left in {kinds:?}");
        }
        assert_eq!(
            kinds.iter().filter(|k| **k == "Deployment").count(),
            7,
            "{step}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "Service").count(),
            7,
            "{step}"
        );
    }
}

#[test]
fn a_file_given_twice_is_written_once() {
    let root = workspace_root().join("manifests");
    let paths = vec![
        root.join("colorapp"),
        root.join("colorapp/colorteller.yaml"),
        root.join("gloo/upstreamgroup-80-20.yaml"),
    ];
    let migration =
        migrate(&Input::read(&paths).expect("loads"), &Options::default()).expect("migrates");
    let deployments = migration
        .documents()
        .filter(|d| d["kind"] == "Deployment")
        .count();
    assert_eq!(deployments, 6);
}

#[test]
fn the_output_folder_loads_back_with_no_error_and_no_ignored_field() {
    let migration = walkthrough("upstreamgroup-80-20.yaml", &Options::default());
    let dir = tempfile::tempdir().expect("temp dir");
    migration.write_to(dir.path()).expect("written");
    let parsed = model::load_dir(dir.path()).expect("readable");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    for loaded in &parsed.resources {
        assert!(
            loaded.ignored_fields.is_empty(),
            "{}: {:?}",
            loaded.resource.key(),
            loaded.ignored_fields
        );
    }
    let report = DriftReport::read_from(dir.path())
        .expect("valid")
        .expect("present");
    assert_eq!(report, migration.report);
    let markdown = std::fs::read_to_string(dir.path().join("drift-report.md")).expect("markdown");
    assert!(markdown.contains("/appmesh/colorful"), "{markdown}");
    // A second run over the same folder replaces its files; a foreign file is refused.
    migration.write_to(dir.path()).expect("rewritten");
    std::fs::write(dir.path().join("mine.yaml"), "x: 1\n").expect("written");
    let error = migration.write_to(dir.path()).expect_err("a foreign file");
    assert!(error.to_string().contains("mine.yaml"), "{error}");
}

#[test]
fn weights_are_kept_exactly_on_every_step_and_in_the_mesh() {
    for (step, expected) in STEPS {
        let migration = walkthrough(step, &Options::default());
        let route = edge_route(&migration);
        assert_eq!(route.spec.rules.len(), 1, "{step}");
        let weights: Vec<(&str, u32)> = route.spec.rules[0]
            .backend_refs
            .iter()
            .map(|b| (b.name.as_str(), b.weight))
            .collect();
        assert_eq!(weights, expected.to_vec(), "{step}");
        for backend in &route.spec.rules[0].backend_refs {
            assert_eq!(backend.namespace.as_deref(), Some("appmesh-demo"));
            assert_eq!(backend.port, Some(9080));
        }
        let teller = migration
            .http_routes()
            .find(|r| {
                r.spec
                    .parent_refs
                    .iter()
                    .any(|p| p.is_service() && p.name == "colorteller")
            })
            .expect("the GAMMA route of colorteller");
        let weights: Vec<(&str, u32)> = teller.spec.rules[0]
            .backend_refs
            .iter()
            .map(|b| (b.name.as_str(), b.weight))
            .collect();
        assert_eq!(
            weights,
            [
                ("colorteller", 1),
                ("colorteller-blue", 1),
                ("colorteller-black", 1)
            ]
        );
        assert!(
            items(&migration, DriftKind::Weights)
                .iter()
                .all(|i| i.mapping == Mapping::Exact)
        );
    }
}

#[test]
fn the_prefix_and_the_rewrite_drift_name_the_glued_requests() {
    let migration = walkthrough("upstreamgroup-80-20.yaml", &Options::default());
    let prefix = items(&migration, DriftKind::PrefixMatch);
    assert_eq!(prefix.len(), 1, "{prefix:#?}");
    let rewrite = items(&migration, DriftKind::PrefixRewrite);
    assert_eq!(rewrite.len(), 1, "{rewrite:#?}");
    for item in [prefix[0], rewrite[0]] {
        assert_eq!(item.mapping, Mapping::Approximate);
        assert!(
            item.source
                .contains("manifests/gloo/upstreamgroup-80-20.yaml"),
            "{}",
            item.source
        );
        assert!(
            item.source
                .contains("VirtualService gloo-system/colorgateway"),
            "{}",
            item.source
        );
        for glued in ["/appmesh/colorful", "/appmesh/color2", "/appmesh/colors/x"] {
            assert!(affects(item, glued), "{glued} in {item:#?}");
        }
        for same in [
            "/appmesh/color",
            "/appmesh/color/",
            "/appmesh/color/x",
            "/color",
            "/",
        ] {
            assert!(!affects(item, same), "{same} in {item:#?}");
        }
        assert_eq!(item.examples[0].path, "/appmesh/colorful");
    }
    assert!(
        prefix[0].source.ends_with("routes[0].matchers[0].prefix"),
        "{}",
        prefix[0].source
    );
    assert!(
        rewrite[0]
            .source
            .ends_with("routes[0].options.prefixRewrite")
    );
    assert_eq!(rewrite[0].before.as_deref(), Some("rewritten to /colorful"));
    assert_eq!(
        prefix[0].after.as_deref(),
        Some("404 Not Found: no rule matches")
    );
    // The report predicts the glued requests and nothing under the prefix.
    let none = Default::default();
    assert_eq!(
        migration
            .report
            .predicts(None, "GET", "h", "/appmesh/colorful", &none)
            .count(),
        2
    );
    assert_eq!(
        migration
            .report
            .predicts(
                Some(DriftKind::PrefixMatch),
                "GET",
                "h",
                "/appmesh/color/x",
                &none
            )
            .count(),
        0
    );
}

#[test]
fn the_edge_route_behaves_as_the_hand_written_one() {
    for (step, hand) in [
        (
            "virtualservice-colorgateway.yaml",
            "gateway/httproute-colorgateway.yaml",
        ),
        ("upstreamgroup-80-20.yaml", "canary-80-20.yaml"),
        ("upstreamgroup-50-50.yaml", "canary-50-50.yaml"),
        ("upstreamgroup-0-100.yaml", "canary-0-100.yaml"),
    ] {
        let migration = walkthrough(step, &Options::default());
        let ours = edge_route(&migration);
        let parsed =
            model::load_paths(&[workspace_root().join("manifests/gateway-api").join(hand)])
                .expect("readable");
        let theirs = parsed
            .resources
            .iter()
            .find_map(|l| match &l.resource {
                model::Resource::HttpRoute(r) => Some(r.clone()),
                _ => None,
            })
            .expect("a hand-written route");
        let (a, b) = (&ours.spec.rules[0], &theirs.spec.rules[0]);
        assert_eq!(a.matches, b.matches, "{step}");
        assert_eq!(a.filters, b.filters, "{step}");
        let backends = |rule: &model::gateway_api::HttpRouteRule| {
            rule.backend_refs
                .iter()
                .map(|b| (b.name.clone(), b.port, b.weight))
                .collect::<Vec<_>>()
        };
        // The hand-written single backend relies on the default weight 1.
        assert_eq!(backends(a), backends(b), "{step}");
        // The named drift: Envoy's 15 s default made explicit.
        assert_eq!(
            a.timeouts
                .as_ref()
                .and_then(|t| t.request.as_ref())
                .map(|d| d.as_str()),
            Some("15s")
        );
        assert!(
            matches!(&a.filters[0], HttpRouteFilter::UrlRewrite(r) if r.path == Some(HttpPathModifier::ReplacePrefixMatch("/color".into())))
        );
        assert_eq!(a.matches[0].path.match_type, PathMatchType::PathPrefix);
    }
}

#[test]
fn app_mesh_defaults_are_written_out_and_the_mesh_namespace_is_labelled() {
    let migration = walkthrough("upstreamgroup-50-50.yaml", &Options::default());
    let teller = migration
        .http_routes()
        .find(|r| r.metadata.name.as_deref() == Some("colorteller-route"))
        .expect("the GAMMA route");
    assert_eq!(teller.metadata.namespace.as_deref(), Some("appmesh-demo"));
    let parent = &teller.spec.parent_refs[0];
    assert!(parent.is_service());
    assert_eq!(
        (parent.name.as_str(), parent.port),
        ("colorteller", Some(9080))
    );
    let rule = &teller.spec.rules[0];
    let retry = rule.retry.as_ref().expect("the implicit retry");
    assert_eq!(
        (retry.codes.as_slice(), retry.attempts),
        (&[503][..], Some(2))
    );
    assert_eq!(
        rule.timeouts
            .as_ref()
            .and_then(|t| t.request.as_ref())
            .map(|d| d.as_str()),
        Some("15s")
    );
    let defaults = items(&migration, DriftKind::ImplicitDefault);
    assert!(defaults.iter().any(|i| i.mapping == Mapping::Approximate
        && i.description.contains("connection failure")
        && i.description.contains("refused stream")));
    assert!(
        defaults
            .iter()
            .any(|i| i.mapping == Mapping::Exact && i.description.contains("15 s"))
    );
    // tcpecho has no HTTP listener: no route, named as such.
    assert!(
        migration
            .http_routes()
            .all(|r| r.metadata.name.as_deref() != Some("tcpecho-route"))
    );

    let namespace = migration
        .documents()
        .find(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "appmesh-demo")
        .expect("the demo namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["colormesh.dev/mesh"],
        "gamma"
    );
    assert!(
        namespace["metadata"]["labels"]
            .get("appmesh.k8s.aws/sidecarInjectorWebhook")
            .is_none()
    );

    let custom = Options {
        mesh_label: ("istio.io/dataplane-mode".into(), "ambient".into()),
        gateway_class: "kgateway".into(),
        ..Options::default()
    };
    let migration = walkthrough("upstreamgroup-50-50.yaml", &custom);
    let namespace = migration
        .documents()
        .find(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "appmesh-demo")
        .expect("the demo namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["istio.io/dataplane-mode"],
        "ambient"
    );
    assert!(
        migration.documents().all(|d| d["kind"] != "GatewayClass"),
        "another class is the implementation's"
    );
    let gateway = migration
        .documents()
        .find(|d| d["kind"] == "Gateway")
        .expect("the Gateway");
    assert_eq!(gateway["spec"]["gatewayClassName"], "kgateway");
    assert_eq!(gateway["spec"]["listeners"][0]["port"], 8080);
}

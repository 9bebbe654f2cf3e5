//! The walkthrough before and after, through colormesh's own translator (`routing`, what
//! gateway-proxy and envoy-control serve): for sample requests, the old resources (Gloo ingress,
//! App Mesh sidecar) and the migrated ones (Gateway API ingress, GAMMA mesh sidecar) pick the same
//! endpoints with the same weights, rewrite the same way and time out alike, except where the drift
//! report says they do not.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method};
use migrate::{DriftKind, Input, Options, migrate};
use model::discovery::discover_upstreams;
use model::{Loaded, Origin, Resource, ResourceSet};
use routing::table::{RequestView, RouteAction, RouteDecision};
use routing::{Role, translate};
use test_support::{endpoint_slice, workspace_root};

/// What a request gets: (endpoint, weight) per destination, the path sent upstream, the timeout
/// and the retried codes.
#[derive(Debug, PartialEq)]
struct Outcome {
    destinations: Vec<(Option<SocketAddr>, u32)>,
    path: String,
    timeout: Option<Duration>,
}

fn decide(set: &ResourceSet, role: &Role, authority: &str, path: &str) -> Option<Outcome> {
    let translation = translate(set, role, None);
    let headers = HeaderMap::new();
    let request = RequestView {
        authority,
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
    };
    let RouteDecision::Matched { entry, .. } = translation.table.route(&request) else {
        return None;
    };
    let RouteAction::Forward(forward) = &entry.action else {
        return None;
    };
    let mut destinations: Vec<(Option<SocketAddr>, u32)> = forward
        .destinations
        .iter()
        .map(|(cluster, weight)| (cluster.endpoints.first().copied(), weight))
        .filter(|(_, weight)| *weight > 0)
        .collect();
    destinations.sort();
    Some(Outcome {
        destinations,
        path: forward
            .rewrite
            .apply(&entry.matcher.path, path, None)
            .unwrap_or_else(|| path.to_owned()),
        timeout: forward.timeout,
    })
}

fn loaded(resource: Resource) -> Loaded {
    Loaded {
        resource,
        origin: Origin {
            file: "test".into(),
            line: 1,
        },
        ignored_fields: Vec::new(),
    }
}

/// The resources plus what a cluster adds: one EndpointSlice per Service (its own port on
/// loopback) and, for Gloo, the upstreams its discovery writes.
fn with_cluster_state(mut set: ResourceSet) -> ResourceSet {
    let services: Vec<_> = set.services().map(|(_, s)| s.clone()).collect();
    for (index, service) in services.iter().enumerate() {
        let name = service.metadata.name.clone().unwrap_or_default();
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let port = 20_000 + u16::try_from(index).expect("few services");
        let text = endpoint_slice(&name, &namespace, "http", port);
        for resource in model::parse_documents(&text, std::path::Path::new("slice.yaml")).resources
        {
            set.insert(resource);
        }
    }
    if set.gloo_virtual_services().next().is_some() {
        for upstream in discover_upstreams(&services, &[], model::gloo::GLOO_NAMESPACE) {
            set.insert(loaded(Resource::Upstream(Box::new(upstream))));
        }
    }
    set
}

#[test]
fn the_canary_and_the_mesh_split_behave_alike_except_where_the_report_says() {
    let manifests = workspace_root().join("manifests");
    for step in [
        "upstreamgroup-80-20.yaml",
        "upstreamgroup-50-50.yaml",
        "upstreamgroup-0-100.yaml",
    ] {
        let input = Input::read(&[
            manifests.join("colorapp"),
            manifests.join("colorgatewayv2"),
            manifests.join("gloo").join(step),
        ])
        .expect("loads");
        let migration = migrate(&input, &Options::default()).expect("migrates");
        let dir = tempfile::tempdir().expect("temp dir");
        migration.write_to(dir.path()).expect("written");
        let after = model::load_dir(dir.path()).expect("readable");
        assert!(after.errors.is_empty(), "{:?}", after.errors);
        let before = with_cluster_state(input.set());
        let after = with_cluster_state(ResourceSet::from_loaded(after.resources));

        // The edge: Gloo's proxy against the Gateway.
        let none = Default::default();
        for path in [
            "/appmesh/color",
            "/appmesh/color/",
            "/appmesh/color/x?y",
            "/appmesh/colorful",
            "/other",
        ] {
            let path = path.split('?').next().unwrap_or(path);
            let old = decide(&before, &Role::ingress(), "example.com", path);
            let new = decide(&after, &Role::ingress(), "example.com", path);
            let predicted = migration
                .report
                .predicts(None, "GET", "example.com", path, &none)
                .count()
                > 0;
            if predicted {
                assert_ne!(old, new, "{step} {path}: predicted but unchanged");
            } else {
                assert_eq!(old, new, "{step} {path}: changed without a drift item");
            }
        }
        assert!(
            decide(
                &before,
                &Role::ingress(),
                "example.com",
                "/appmesh/colorful"
            )
            .is_some_and(|o| o.path == "/colorful")
        );

        // The mesh: colorgateway's App Mesh sidecar against its GAMMA sidecar.
        let app_mesh = Role::Sidecar {
            node: "colorgateway".into(),
            namespace: "appmesh-demo".into(),
        };
        let gamma = Role::MeshSidecar {
            namespace: "appmesh-demo".into(),
        };
        for authority in [
            "colorteller.appmesh-demo:9080",
            "colorteller.appmesh-demo.svc.cluster.local:9080",
        ] {
            let old = decide(&before, &app_mesh, authority, "/").expect("App Mesh routes it");
            let new = decide(&after, &gamma, authority, "/").expect("GAMMA routes it");
            assert_eq!(old.destinations.len(), 3, "white, blue, black");
            assert_eq!(old, new, "{step} {authority}");
        }
        // What differs in the mesh (the retries) is named.
        assert!(migration.report.items.iter().any(|i| {
            i.kind == DriftKind::ImplicitDefault
                && i.target
                    .as_deref()
                    .is_some_and(|t| t.contains("colorteller-route"))
        }));
    }
}

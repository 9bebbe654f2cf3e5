//! The Gateway API flavour on the walkthrough's manifests: YAML in, route decisions out
//! ([`routing::table::RouteTable::route`]), for the ingress (the canary as a Gateway and an
//! HTTPRoute) and the GAMMA mesh sidecar (colorgateway calling colorteller through its sidecar).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use http::{HeaderMap, Method};
use model::gloo::State;
use routing::table::{RequestView, RouteAction, RouteDecision, RouteTable};
use routing::{GatewayApiStatus, Role, Translation, translate};

use crate::support::{endpoint_slice, manifest};

fn parse(documents: &[String]) -> model::ResourceSet {
    let parsed = model::parse_documents(&documents.join("---\n"), Path::new("walkthrough.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    model::ResourceSet::from_loaded(parsed.resources)
}

fn decide<'t>(table: &'t RouteTable, authority: &str, path: &str) -> RouteDecision<'t> {
    let headers = HeaderMap::new();
    table.route(&RequestView {
        authority,
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
    })
}

/// The destinations `(cluster, weight, endpoints)` of the forward a GET takes.
fn destinations(
    table: &RouteTable,
    authority: &str,
    path: &str,
) -> Vec<(String, u32, Vec<SocketAddr>)> {
    match decide(table, authority, path) {
        RouteDecision::Matched { entry, .. } => match &entry.action {
            RouteAction::Forward(forward) => forward
                .destinations
                .iter()
                .map(|(cluster, weight)| (cluster.name.clone(), weight, cluster.endpoints.clone()))
                .collect(),
            other => panic!("{authority}{path}: not a forward: {other:?}"),
        },
        other => panic!("{authority}{path}: no route: {other:?}"),
    }
}

fn local(port: u16) -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], port))]
}

fn route_state(translation: &Translation, resource: &str) -> (State, Vec<(String, String)>) {
    let status = translation
        .statuses
        .iter()
        .find(|status| status.resource == resource)
        .unwrap_or_else(|| panic!("no status for {resource}"));
    let Some(GatewayApiStatus::Route(route)) = &status.gateway_api else {
        panic!("{resource}: no route status");
    };
    let conditions = route
        .parents
        .iter()
        .flat_map(|parent| &parent.conditions)
        .map(|condition| (condition.condition_type.clone(), condition.reason.clone()))
        .collect();
    (status.state, conditions)
}

const TELLER_ROUTE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: colorteller-white, namespace: appmesh-demo}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: colorteller, version: white}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: colorteller, namespace: appmesh-demo, generation: 1}
spec:
  parentRefs:
  - {group: \"\", kind: Service, name: colorteller, port: 9080}
  rules:
  - backendRefs:
    - {name: colorteller-white, port: 9080, weight: 1}
    - {name: colorteller-black, port: 9080, weight: 1}
    - {name: colorteller-blue, port: 9080, weight: 1}
";

/// The walkthrough after App Mesh: colorgateway calls `http://colorteller.appmesh-demo:9080`
/// through its sidecar, and the HTTPRoute whose parent is the colorteller Service splits the
/// calls 1:1:1 over white, black and blue; red, which has a Service too, gets none.
#[test]
fn gamma_splits_colorteller_calls_over_white_black_and_blue() {
    let documents = vec![
        manifest("colorapp/namespace.yaml"),
        manifest("colorapp/colorgateway.yaml"),
        manifest("colorapp/colorteller.yaml"),
        TELLER_ROUTE.to_owned(),
        endpoint_slice("colorteller", "appmesh-demo", "http", 9001),
        endpoint_slice("colorteller-white", "appmesh-demo", "http", 9001),
        endpoint_slice("colorteller-black", "appmesh-demo", "http", 9002),
        endpoint_slice("colorteller-blue", "appmesh-demo", "http", 9003),
        endpoint_slice("colorteller-red", "appmesh-demo", "http", 9004),
    ];
    let translation = translate(
        &parse(&documents),
        &Role::MeshSidecar {
            namespace: "appmesh-demo".to_owned(),
        },
        None,
    );
    let table = &translation.table;
    let split = vec![
        (
            "appmesh-demo/colorteller-white:9080".to_owned(),
            1,
            local(9001),
        ),
        (
            "appmesh-demo/colorteller-black:9080".to_owned(),
            1,
            local(9002),
        ),
        (
            "appmesh-demo/colorteller-blue:9080".to_owned(),
            1,
            local(9003),
        ),
    ];
    for authority in [
        "colorteller.appmesh-demo:9080",
        "colorteller:9080",
        "colorteller.appmesh-demo.svc.cluster.local:9080",
    ] {
        assert_eq!(destinations(table, authority, "/"), split, "{authority}");
    }
    // Each of the three gets exactly a third of the random values.
    let RouteDecision::Matched { entry, .. } = decide(table, "colorteller.appmesh-demo:9080", "/")
    else {
        panic!("no route");
    };
    let RouteAction::Forward(forward) = &entry.action else {
        panic!("not a forward");
    };
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for random in 0..3000 {
        *counts
            .entry(forward.destinations.pick(random).name.clone())
            .or_default() += 1;
    }
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![
            ("appmesh-demo/colorteller-black:9080".to_owned(), 1000),
            ("appmesh-demo/colorteller-blue:9080".to_owned(), 1000),
            ("appmesh-demo/colorteller-white:9080".to_owned(), 1000),
        ]
    );
    // Services without a route go to their own endpoints; other hosts pass through.
    assert_eq!(
        destinations(table, "colorteller-red.appmesh-demo:9080", "/"),
        vec![(
            "appmesh-demo/colorteller-red:9080".to_owned(),
            1,
            local(9004)
        )]
    );
    assert!(matches!(
        decide(table, "example.com", "/"),
        RouteDecision::NoVirtualHost(routing::table::Fallback::Passthrough { .. })
    ));
    assert_eq!(
        route_state(&translation, "HTTPRoute appmesh-demo/colorteller"),
        (
            State::Accepted,
            vec![
                ("Accepted".to_owned(), "Accepted".to_owned()),
                ("ResolvedRefs".to_owned(), "ResolvedRefs".to_owned()),
            ]
        )
    );
}

const CANARY: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: colormesh}
spec: {controllerName: colormesh.dev/gateway-proxy}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: colorgateway, namespace: appmesh-demo}
spec:
  gatewayClassName: colormesh
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: colorgateway, namespace: appmesh-demo}
spec:
  parentRefs: [{name: colorgateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /appmesh/color}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /color}}
    backendRefs:
    - {name: colorgateway, port: 9080, weight: 80}
    - {name: colorgatewayv2, port: 9080, weight: 20}
";

/// The walkthrough's canary (Gloo's UpstreamGroup 80/20 with `prefixRewrite: /color`) as a
/// Gateway and an HTTPRoute: the same split, but the prefix is matched element-wise.
#[test]
fn ingress_canary_splits_80_20_and_rewrites_element_wise() {
    let documents = vec![
        manifest("colorapp/namespace.yaml"),
        manifest("colorapp/colorgateway.yaml"),
        manifest("colorgatewayv2/colorgatewayv2.yaml"),
        CANARY.to_owned(),
        endpoint_slice("colorgateway", "appmesh-demo", "http", 9101),
        endpoint_slice("colorgatewayv2", "appmesh-demo", "http", 9102),
    ];
    let translation = translate(&parse(&documents), &Role::ingress(), None);
    let table = &translation.table;
    assert_eq!(
        destinations(table, "localhost:8080", "/appmesh/color"),
        vec![
            ("appmesh-demo/colorgateway:9080".to_owned(), 80, local(9101)),
            (
                "appmesh-demo/colorgatewayv2:9080".to_owned(),
                20,
                local(9102)
            ),
        ]
    );
    let RouteDecision::Matched { entry, .. } = decide(table, "localhost", "/appmesh/color/x")
    else {
        panic!("no route");
    };
    let RouteAction::Forward(forward) = &entry.action else {
        panic!("not a forward");
    };
    assert_eq!(
        forward
            .rewrite
            .apply(&entry.matcher.path, "/appmesh/color/x", None),
        Some("/color/x".to_owned())
    );
    assert_eq!(
        forward
            .rewrite
            .apply(&entry.matcher.path, "/appmesh/color", None),
        Some("/color".to_owned())
    );
    // Gloo's string prefix took `/appmesh/colorful`; the Gateway API's does not.
    assert!(matches!(
        decide(table, "localhost", "/appmesh/colorful"),
        RouteDecision::NoRoute { .. }
    ));
    assert_eq!(
        route_state(&translation, "HTTPRoute appmesh-demo/colorgateway").0,
        State::Accepted
    );
}

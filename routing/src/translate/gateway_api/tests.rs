//! Unit tests of the Gateway API flavour: YAML in, route decisions and statuses out.

use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use model::ResourceSet;
use model::gateway_api::{Condition, RouteParentStatus};
use model::gloo::State;

use super::ingress::intersect;
use super::mesh::service_domains;
use crate::table::{
    ForwardAction, PathRewrite, RedirectRequest, RequestView, RouteAction, RouteDecision,
    RouteTable,
};
use crate::translate::{
    GatewayApiStatus, GatewayName, ResourceStatus, Role, Translation, translate,
};

const CLASSES: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: colormesh, generation: 1}
spec: {controllerName: colormesh.dev/gateway-proxy}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
";

const EDGE: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: appmesh-demo, generation: 2}
spec:
  gatewayClassName: colormesh
  listeners:
  - {name: http, port: 80, protocol: HTTP}
";

fn service(namespace: &str, name: &str, port: u16, address: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{ports: [{{name: http, port: {port}}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nendpoints:\n- addresses: [\"{address}\"]\nports: [{{name: http, port: 8080}}]\n"
    )
}

/// The colorgateway v1 and v2 Services with one endpoint each.
fn apps() -> String {
    [
        service("appmesh-demo", "colorgateway", 9080, "10.0.0.1"),
        service("appmesh-demo", "colorgatewayv2", 9080, "10.0.0.2"),
    ]
    .join("---\n")
}

fn parse(documents: &[&str]) -> ResourceSet {
    let parsed = model::parse_documents(&documents.join("---\n"), Path::new("test.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    ResourceSet::from_loaded(parsed.resources)
}

fn ingress(documents: &[&str]) -> Translation {
    translate(&parse(documents), &Role::ingress(), None)
}

/// An HTTPRoute in appmesh-demo attached to Gateway edge, with `rules` (YAML, indented by 2).
fn route(name: &str, extra_spec: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: appmesh-demo, generation: 7}}\nspec:\n  parentRefs: [{{name: edge}}]\n{extra_spec}  rules:\n{rules}"
    )
}

fn decide<'t>(
    table: &'t RouteTable,
    authority: &str,
    target: &str,
    method: &Method,
    headers: &HeaderMap,
) -> RouteDecision<'t> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    table.route(&RequestView {
        authority,
        path,
        query,
        method,
        headers,
    })
}

/// The name of the route a GET takes, `404` without one, `fallback` without a virtual host.
fn hit(table: &RouteTable, authority: &str, target: &str) -> String {
    hit_with(table, authority, target, &Method::GET, &[])
}

fn hit_with(
    table: &RouteTable,
    authority: &str,
    target: &str,
    method: &Method,
    headers: &[(&str, &str)],
) -> String {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    match decide(table, authority, target, method, &map) {
        RouteDecision::Matched { entry, .. } => entry.name.clone(),
        RouteDecision::NoRoute { .. } => "404".to_owned(),
        RouteDecision::NoVirtualHost(_) => "fallback".to_owned(),
    }
}

fn action<'t>(table: &'t RouteTable, authority: &str, target: &str) -> &'t RouteAction {
    let headers = HeaderMap::new();
    match decide(table, authority, target, &Method::GET, &headers) {
        RouteDecision::Matched { entry, .. } => &entry.action,
        other => panic!("no route for {authority}{target}: {other:?}"),
    }
}

fn forward<'t>(table: &'t RouteTable, authority: &str, target: &str) -> &'t ForwardAction {
    match action(table, authority, target) {
        RouteAction::Forward(forward) => forward,
        other => panic!("expected a forward: {other:?}"),
    }
}

fn weights(forward: &ForwardAction) -> Vec<(String, u32, bool)> {
    forward
        .destinations
        .iter()
        .map(|(cluster, weight)| (cluster.name.clone(), weight, cluster.is_unresolved()))
        .collect()
}

fn status_of<'a>(translation: &'a Translation, resource: &str) -> &'a ResourceStatus {
    translation
        .statuses
        .iter()
        .find(|status| status.resource == resource)
        .unwrap_or_else(|| panic!("no status for {resource}: {:#?}", translation.statuses))
}

fn parents(status: &ResourceStatus) -> &[RouteParentStatus] {
    match &status.gateway_api {
        Some(GatewayApiStatus::Route(route)) => &route.parents,
        other => panic!("not a route status: {other:?}"),
    }
}

/// `(type, status, reason)` of each condition.
fn summary(conditions: &[Condition]) -> Vec<(String, String, String)> {
    conditions
        .iter()
        .map(|c| (c.condition_type.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn conditions(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(t, s, r)| ((*t).to_owned(), (*s).to_owned(), (*r).to_owned()))
        .collect()
}

fn route_conditions(translation: &Translation, route: &str) -> Vec<(String, String, String)> {
    let status = status_of(translation, &format!("HTTPRoute appmesh-demo/{route}"));
    let parents = parents(status);
    assert_eq!(parents.len(), 1, "{parents:#?}");
    summary(&parents[0].conditions)
}

const BACKEND_V1: &str = "    backendRefs: [{name: colorgateway, port: 9080}]\n";

#[test]
fn path_prefix_matches_whole_path_elements() {
    let rules = format!(
        "  - matches: [{{path: {{type: PathPrefix, value: /appmesh/color/}}}}]\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("canary", "", &rules)]);
    let table = &translation.table;
    let name = "appmesh-demo/canary/rule/0/match/0";
    assert_eq!(hit(table, "example.com", "/appmesh/color"), name);
    assert_eq!(hit(table, "example.com", "/appmesh/color/"), name);
    assert_eq!(hit(table, "example.com", "/appmesh/color/x?y=1"), name);
    assert_eq!(hit(table, "example.com", "/appmesh/colorful"), "404");
    assert_eq!(hit(table, "example.com", "/appmesh/Color"), "404");
    assert_eq!(hit(table, "example.com", "/appmesh"), "404");
    let forward = forward(table, "example.com", "/appmesh/color");
    assert_eq!(
        weights(forward),
        vec![("appmesh-demo/colorgateway:9080".to_owned(), 1, false)]
    );
    assert_eq!(
        forward.destinations.get(0).expect("one").0.endpoints,
        vec!["10.0.0.1:8080".parse().expect("address")]
    );
    assert_eq!(forward.timeout, Some(Duration::from_secs(15)));
    assert!(forward.retry.is_none());
}

#[test]
fn a_listener_without_hostname_serves_every_host_with_or_without_a_port() {
    let translation = ingress(&[
        CLASSES,
        EDGE,
        &apps(),
        &route("any", "", &format!("  - {}", BACKEND_V1.trim_start())),
    ]);
    let table = &translation.table;
    assert_eq!(table.virtual_hosts().len(), 1);
    assert_eq!(table.virtual_hosts()[0].domains, vec!["*"]);
    for authority in [
        "example.com",
        "example.com:8080",
        "127.0.0.1:38211",
        "[::1]:80",
    ] {
        assert_eq!(
            hit(table, authority, "/anything"),
            "appmesh-demo/any/rule/0/match/0",
            "{authority}"
        );
    }
}

#[test]
fn replace_prefix_match_follows_the_spec_table() {
    // (match prefix, request path, replacement, upstream path): the table of HTTPPathModifier.
    let cases = [
        ("/foo", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo", "/foo/", "/xyz", "/xyz/"),
        ("/foo", "/foo/bar", "", "/bar"),
        ("/foo", "/foo/", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo", "/foo/", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        ("/appmesh", "/appmesh/color", "/", "/color"),
    ];
    for (prefix, path, replacement, expected) in cases {
        let rules = format!(
            "  - matches: [{{path: {{type: PathPrefix, value: \"{prefix}\"}}}}]\n    filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: \"{replacement}\"}}}}\n{BACKEND_V1}"
        );
        let translation = ingress(&[CLASSES, EDGE, &apps(), &route("rewrite", "", &rules)]);
        let table = &translation.table;
        let headers = HeaderMap::new();
        let RouteDecision::Matched { entry, .. } =
            decide(table, "example.com", path, &Method::GET, &headers)
        else {
            panic!("{prefix} does not match {path}");
        };
        let RouteAction::Forward(forward) = &entry.action else {
            panic!("not a forward");
        };
        assert!(matches!(&forward.rewrite, PathRewrite::ReplacePrefixMatch(r) if r == replacement));
        assert_eq!(
            forward
                .rewrite
                .apply(&entry.matcher.path, path, Some("q=1")),
            Some(format!("{expected}?q=1")),
            "{prefix} {path} {replacement}"
        );
    }
}

#[test]
fn replace_prefix_match_needs_a_single_path_prefix_match_and_the_last_version_is_served() {
    let good = format!(
        "  - matches: [{{path: {{type: PathPrefix, value: /appmesh}}}}]\n    filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}\n{BACKEND_V1}"
    );
    let bad = format!(
        "  - matches: [{{path: {{type: Exact, value: /appmesh}}}}]\n    filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}\n{BACKEND_V1}"
    );
    let first = crate::translate::translate_resources(
        &parse(&[CLASSES, EDGE, &apps(), &route("rw", "", &good)]),
        &Role::ingress(),
        None,
        &Default::default(),
    );
    let second = translate(
        &parse(&[CLASSES, EDGE, &apps(), &route("rw", "", &bad)]),
        &Role::ingress(),
        Some(&first.accepted),
    );
    let status = status_of(&second, "HTTPRoute appmesh-demo/rw");
    assert_eq!(status.state, State::Rejected);
    assert_eq!(status.reasons.len(), 1, "{:#?}", status.reasons);
    assert!(
        status.reasons[0].contains(
            "spec.rules[0].filters[0].urlRewrite.path: ReplacePrefixMatch is only valid in a rule with exactly one match, of type PathPrefix; the last accepted version"
        ),
        "{}",
        status.reasons[0]
    );
    assert_eq!(
        route_conditions(&second, "rw"),
        conditions(&[
            ("Accepted", "False", "UnsupportedValue"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
        ])
    );
    // The last accepted version (the prefix rule) is what answers.
    assert_eq!(
        hit(&second.table, "example.com", "/appmesh/color"),
        "appmesh-demo/rw/rule/0/match/0"
    );
    // Without history nothing is served.
    let alone = ingress(&[CLASSES, EDGE, &apps(), &route("rw", "", &bad)]);
    assert!(alone.table.virtual_hosts().is_empty());
}

#[test]
fn an_invalid_regex_rejects_the_route_with_its_field() {
    let rules = format!(
        "  - matches: [{{path: {{type: RegularExpression, value: \"/color/(\"}}}}]\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("regex", "", &rules)]);
    let status = status_of(&translation, "HTTPRoute appmesh-demo/regex");
    assert_eq!(status.state, State::Rejected);
    assert!(
        status.reasons[0].contains("spec.rules[0].matches[0].path.value: invalid regex"),
        "{:?}",
        status.reasons
    );
    assert!(status.reasons[0].contains("no version of it was ever accepted"));
    assert!(translation.table.virtual_hosts().is_empty());
}

#[test]
fn rules_follow_the_spec_precedence_across_routes() {
    let older = "  creationTimestamp: \"2024-01-01T00:00:00Z\"\n";
    let newer = "  creationTimestamp: \"2025-01-01T00:00:00Z\"\n";
    let stamped = |name: &str, stamp: &str, rules: &str| {
        route(name, "", rules)
            .replacen("metadata: {name: ", "metadata:\n  name: ", 1)
            .replacen(
                ", namespace: appmesh-demo, generation: 7}",
                &format!("\n  namespace: appmesh-demo\n{stamp}"),
                1,
            )
    };
    let a = stamped(
        "a-newer",
        newer,
        &format!(
            "  - matches:\n    - path: {{type: PathPrefix, value: /}}\n    - path: {{type: PathPrefix, value: /color}}\n      headers: [{{name: x-a, value: \"1\"}}]\n    - path: {{type: PathPrefix, value: /color}}\n{BACKEND_V1}  - matches:\n    - path: {{type: Exact, value: /color}}\n{BACKEND_V1}"
        ),
    );
    let b = stamped(
        "b-older",
        older,
        &format!(
            "  - matches:\n    - path: {{type: PathPrefix, value: /color}}\n    - path: {{type: PathPrefix, value: /color}}\n      method: POST\n    - path: {{type: PathPrefix, value: /color}}\n      queryParams: [{{name: q, value: \"1\"}}]\n    - path: {{type: PathPrefix, value: /colorful}}\n    - path: {{type: RegularExpression, value: \"/c/[0-9]+\"}}\n{BACKEND_V1}"
        ),
    );
    let c = stamped(
        "c-older",
        older,
        &format!("  - matches:\n    - path: {{type: PathPrefix, value: /color}}\n{BACKEND_V1}"),
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &a, &b, &c]);
    let names: Vec<&str> = translation.table.virtual_hosts()[0]
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            // Exact first.
            "appmesh-demo/a-newer/rule/1/match/0",
            // Then RegularExpression, as Envoy Gateway orders it.
            "appmesh-demo/b-older/rule/0/match/4",
            // The longest prefix.
            "appmesh-demo/b-older/rule/0/match/3",
            // Same prefix: a method, then header matches, then query matches.
            "appmesh-demo/b-older/rule/0/match/1",
            "appmesh-demo/a-newer/rule/0/match/1",
            "appmesh-demo/b-older/rule/0/match/2",
            // Ties: the older routes (b and c are as old: by name), then the newer one.
            "appmesh-demo/b-older/rule/0/match/0",
            "appmesh-demo/c-older/rule/0/match/0",
            "appmesh-demo/a-newer/rule/0/match/2",
            // The shortest prefix last.
            "appmesh-demo/a-newer/rule/0/match/0",
        ]
    );
    let table = &translation.table;
    assert_eq!(
        hit_with(table, "h", "/color/x", &Method::POST, &[]),
        "appmesh-demo/b-older/rule/0/match/1"
    );
    assert_eq!(
        hit_with(table, "h", "/color", &Method::GET, &[("X-A", "1")]),
        "appmesh-demo/a-newer/rule/1/match/0"
    );
    assert_eq!(
        hit_with(table, "h", "/color/x", &Method::GET, &[("X-A", "1")]),
        "appmesh-demo/a-newer/rule/0/match/1"
    );
    assert_eq!(
        hit(table, "h", "/other"),
        "appmesh-demo/a-newer/rule/0/match/0"
    );
    assert_eq!(
        hit(table, "h", "/c/42"),
        "appmesh-demo/b-older/rule/0/match/4"
    );

    // Without timestamps on every route, a newer route named first wins the tie.
    let unstamped = route(
        "a-newer",
        "",
        &format!("  - matches:\n    - path: {{type: PathPrefix, value: /color}}\n{BACKEND_V1}"),
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &unstamped, &c]);
    assert_eq!(
        hit(&translation.table, "h", "/color"),
        "appmesh-demo/a-newer/rule/0/match/0"
    );
}

#[test]
fn header_and_query_matches_keep_the_first_of_equivalent_names() {
    let rules = format!(
        "  - matches:\n    - headers:\n      - {{name: X-Color, value: blue}}\n      - {{name: x-color, value: red}}\n      - {{name: x-shape, type: RegularExpression, value: \"sq.*\"}}\n      queryParams:\n      - {{name: v, value: \"2\"}}\n      - {{name: v, value: \"3\"}}\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("h", "", &rules)]);
    let table = &translation.table;
    let name = "appmesh-demo/h/rule/0/match/0";
    let get = |target: &str, headers: &[(&str, &str)]| {
        hit_with(table, "h", target, &Method::GET, headers)
    };
    assert_eq!(
        get("/?v=2", &[("x-color", "blue"), ("x-shape", "square")]),
        name
    );
    assert_eq!(
        get("/?v=2", &[("X-COLOR", "blue"), ("x-shape", "sq")]),
        name
    );
    assert_eq!(
        get("/?v=3", &[("x-color", "blue"), ("x-shape", "square")]),
        "404"
    );
    assert_eq!(
        get("/?v=2", &[("x-color", "red"), ("x-shape", "square")]),
        "404"
    );
    assert_eq!(
        get("/?v=2", &[("x-color", "blue"), ("x-shape", "circle")]),
        "404"
    );
    assert_eq!(get("/?v=2", &[("x-color", "blue")]), "404");
}

#[test]
fn weights_split_and_zero_weights_get_nothing() {
    let rules = "  - matches: [{path: {value: /split}}]\n    backendRefs:\n    - {name: colorgateway, port: 9080, weight: 80}\n    - {name: colorgatewayv2, port: 9080, weight: 20}\n  - matches: [{path: {value: /zero}}]\n    backendRefs:\n    - {name: colorgateway, port: 9080, weight: 0}\n    - {name: colorgatewayv2, port: 9080}\n  - matches: [{path: {value: /all-zero}}]\n    backendRefs:\n    - {name: colorgateway, port: 9080, weight: 0}\n  - matches: [{path: {value: /none}}]\n";
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("w", "", rules)]);
    let table = &translation.table;
    assert_eq!(
        weights(forward(table, "h", "/split")),
        vec![
            ("appmesh-demo/colorgateway:9080".to_owned(), 80, false),
            ("appmesh-demo/colorgatewayv2:9080".to_owned(), 20, false),
        ]
    );
    let zero = forward(table, "h", "/zero");
    assert_eq!(zero.destinations.total(), 1);
    for random in 0..10 {
        assert_eq!(
            zero.destinations.pick(random).name,
            "appmesh-demo/colorgatewayv2:9080"
        );
    }
    for path in ["/all-zero", "/none"] {
        assert!(
            matches!(action(table, "h", path), RouteAction::Respond { status, .. } if *status == StatusCode::INTERNAL_SERVER_ERROR),
            "{path}"
        );
    }
    assert_eq!(
        status_of(&translation, "HTTPRoute appmesh-demo/w").state,
        State::Accepted
    );
    // Both weighted Services share one cluster per port.
    let split = forward(table, "h", "/split");
    assert!(std::sync::Arc::ptr_eq(
        split.destinations.get(1).expect("v2").0,
        zero.destinations.get(1).expect("v2").0
    ));
}

#[test]
fn unresolved_backends_answer_500_for_their_share_and_say_why() {
    let other_ns = service("edge-apps", "remote", 9080, "10.0.1.1");
    let granted_ns = service("granted", "remote", 9080, "10.0.2.1");
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: allow, namespace: granted}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: appmesh-demo}]\n  to: [{group: \"\", kind: Service}]\n";
    let rules = "  - matches: [{path: {value: /missing}}]\n    backendRefs:\n    - {name: colorgateway, port: 9080}\n    - {name: nowhere, port: 9080}\n  - matches: [{path: {value: /cross}}]\n    backendRefs:\n    - {name: remote, namespace: edge-apps, port: 9080}\n  - matches: [{path: {value: /granted}}]\n    backendRefs:\n    - {name: remote, namespace: granted, port: 9080}\n  - matches: [{path: {value: /kind}}]\n    backendRefs:\n    - {group: example.com, kind: Bucket, name: b, port: 1}\n  - matches: [{path: {value: /port}}]\n    backendRefs:\n    - {name: colorgateway, port: 1234}\n";
    let translation = ingress(&[
        CLASSES,
        EDGE,
        &apps(),
        &other_ns,
        &granted_ns,
        grant,
        &route("refs", "", rules),
    ]);
    let table = &translation.table;
    assert_eq!(
        weights(forward(table, "h", "/missing")),
        vec![
            ("appmesh-demo/colorgateway:9080".to_owned(), 1, false),
            ("unresolved:appmesh-demo/nowhere:9080".to_owned(), 1, true),
        ]
    );
    assert_eq!(
        weights(forward(table, "h", "/cross")),
        vec![("unresolved:edge-apps/remote:9080".to_owned(), 1, true)]
    );
    assert_eq!(
        weights(forward(table, "h", "/granted")),
        vec![("granted/remote:9080".to_owned(), 1, false)]
    );
    assert_eq!(
        weights(forward(table, "h", "/kind")),
        vec![("unresolved:appmesh-demo/b:1".to_owned(), 1, true)]
    );
    assert_eq!(
        weights(forward(table, "h", "/port")),
        vec![(
            "unresolved:appmesh-demo/colorgateway:1234".to_owned(),
            1,
            true
        )]
    );
    let status = status_of(&translation, "HTTPRoute appmesh-demo/refs");
    assert_eq!(status.state, State::Warning);
    let parent = &parents(status)[0];
    assert_eq!(
        summary(&parent.conditions),
        conditions(&[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "False", "BackendNotFound"),
        ])
    );
    let message = &parent.conditions[1].message;
    for expected in [
        "spec.rules[0].backendRefs[1]: Service appmesh-demo/nowhere not found",
        "spec.rules[1].backendRefs[0]: Service edge-apps/remote is in another namespace and no ReferenceGrant in edge-apps permits HTTPRoutes of appmesh-demo to refer to it",
        "spec.rules[3].backendRefs[0]: backendRef of kind example.com/Bucket is not supported",
        "spec.rules[4].backendRefs[0]: Service appmesh-demo/colorgateway has no port 1234",
    ] {
        assert!(message.contains(expected), "{message}");
    }
    assert_eq!(parent.controller_name, "colormesh.dev/gateway-proxy");
    assert_eq!(parent.conditions[0].observed_generation, Some(7));
    assert!(
        status.reasons.iter().any(|reason| reason
            .contains("spec.rules[1].backendRefs[0]: ResolvedRefs=False (RefNotPermitted)")),
        "{:#?}",
        status.reasons
    );

    // Each reason on its own.
    for (rule, reason) in [
        ("/cross", "RefNotPermitted"),
        ("/kind", "InvalidKind"),
        ("/missing", "BackendNotFound"),
    ] {
        let only = rules
            .split("  - matches")
            .find(|chunk| chunk.contains(&format!("value: {rule}}}")))
            .expect("rule");
        let translation = ingress(&[
            CLASSES,
            EDGE,
            &apps(),
            &other_ns,
            &route("one", "", &format!("  - matches{only}")),
        ]);
        assert_eq!(
            route_conditions(&translation, "one")[1],
            (
                "ResolvedRefs".to_owned(),
                "False".to_owned(),
                reason.to_owned()
            )
        );
    }
}

#[test]
fn filters_edit_headers_and_rewrite_the_host() {
    let rules = format!(
        "  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set: [{{name: X-Set, value: s}}]\n        add: [{{name: x-add, value: a}}]\n        remove: [x-remove]\n    - type: ResponseHeaderModifier\n      responseHeaderModifier:\n        add: [{{name: x-served-by, value: colormesh}}]\n    - type: URLRewrite\n      urlRewrite: {{hostname: colorgateway.internal, path: {{type: ReplaceFullPath, replaceFullPath: /color}}}}\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("f", "", &rules)]);
    let forward = forward(&translation.table, "h", "/anything");
    assert_eq!(
        forward.host_rewrite.as_deref(),
        Some("colorgateway.internal")
    );
    assert!(matches!(&forward.rewrite, PathRewrite::FullPath(path) if path == "/color"));
    let mut headers = HeaderMap::new();
    headers.insert("x-set", HeaderValue::from_static("old"));
    headers.insert("x-add", HeaderValue::from_static("old"));
    headers.insert("x-remove", HeaderValue::from_static("gone"));
    forward.request_headers.apply(&mut headers);
    assert_eq!(
        headers.get_all("x-set").iter().collect::<Vec<_>>(),
        vec!["s"]
    );
    assert_eq!(
        headers.get_all("x-add").iter().collect::<Vec<_>>(),
        vec!["old", "a"]
    );
    assert!(headers.get("x-remove").is_none());
    let mut response = HeaderMap::new();
    forward.response_headers.apply(&mut response);
    assert_eq!(response.get("x-served-by").expect("added"), "colormesh");
}

#[test]
fn redirects_build_the_location_and_leave_out_default_ports() {
    let rules = "  - matches: [{path: {value: /old}}]\n    filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}\n  - matches: [{path: {value: /moved}}]\n    filters:\n    - type: RequestRedirect\n      requestRedirect: {hostname: other.example, port: 8443}\n  - matches: [{path: {value: /plain}}]\n    filters:\n    - type: RequestRedirect\n      requestRedirect: {port: 80}\n";
    let translation = ingress(&[CLASSES, EDGE, &route("r", "", rules)]);
    let table = &translation.table;
    let location = |target: &str, host: &str| {
        let headers = HeaderMap::new();
        let (path, query) = target
            .split_once('?')
            .map_or((target, None), |(p, q)| (p, Some(q)));
        let RouteDecision::Matched { entry, .. } =
            decide(table, host, path, &Method::GET, &headers)
        else {
            panic!("no route");
        };
        let RouteAction::Redirect(redirect) = &entry.action else {
            panic!("not a redirect: {:?}", entry.action);
        };
        (
            redirect.status.as_u16(),
            redirect.location(
                &entry.matcher.path,
                &RedirectRequest {
                    scheme: "http",
                    host,
                    path,
                    query,
                },
            ),
        )
    };
    assert_eq!(
        location("/old/x?a=1", "example.com"),
        (301, "https://example.com/new/x?a=1".to_owned())
    );
    assert_eq!(
        location("/moved", "example.com:8080"),
        (302, "http://other.example:8443/moved".to_owned())
    );
    assert_eq!(
        location("/plain", "example.com"),
        (302, "http://example.com/plain".to_owned())
    );
    assert_eq!(
        status_of(&translation, "HTTPRoute appmesh-demo/r").state,
        State::Accepted
    );
}

#[test]
fn a_redirect_and_a_rewrite_in_one_rule_reject_the_route() {
    let rules = "  - filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https}\n    - type: URLRewrite\n      urlRewrite: {hostname: x}\n";
    let translation = ingress(&[CLASSES, EDGE, &route("both", "", rules)]);
    let status = status_of(&translation, "HTTPRoute appmesh-demo/both");
    assert_eq!(status.state, State::Rejected);
    assert!(
        status.reasons[0].contains(
            "spec.rules[0].filters: IncompatibleFilters: RequestRedirect and URLRewrite cannot be used in one rule"
        ),
        "{:?}",
        status.reasons
    );
}

#[test]
fn unsupported_filters_answer_500_and_mark_the_route() {
    let mirror = "    - type: RequestMirror\n      requestMirror: {backendRef: {name: colorgatewayv2, port: 9080}}\n";
    let rules = format!(
        "  - matches: [{{path: {{value: /mirrored}}}}]\n    filters:\n{mirror}{BACKEND_V1}  - matches: [{{path: {{value: /fine}}}}]\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("m", "", &rules)]);
    assert!(matches!(
        action(&translation.table, "h", "/mirrored"),
        RouteAction::Respond { status, .. } if *status == StatusCode::INTERNAL_SERVER_ERROR
    ));
    assert!(matches!(
        action(&translation.table, "h", "/fine"),
        RouteAction::Forward(_)
    ));
    assert_eq!(
        route_conditions(&translation, "m"),
        conditions(&[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
            ("PartiallyInvalid", "True", "UnsupportedValue"),
        ])
    );
    let status = status_of(&translation, "HTTPRoute appmesh-demo/m");
    assert_eq!(status.state, State::Warning);
    assert!(status.reasons[0].contains(
        "spec.rules[0]: spec.rules[0].filters[0]: filter type RequestMirror not supported by colormesh: the rule answers 500"
    ), "{:?}", status.reasons);

    // Every rule invalid (a backendRef filter): Accepted=False, still 500 rather than skipped.
    let rules = "  - backendRefs:\n    - name: colorgateway\n      port: 9080\n      filters:\n      - type: RequestHeaderModifier\n        requestHeaderModifier: {add: [{name: a, value: b}]}\n";
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("bf", "", rules)]);
    assert!(matches!(
        action(&translation.table, "h", "/"),
        RouteAction::Respond { status, .. } if *status == StatusCode::INTERNAL_SERVER_ERROR
    ));
    assert_eq!(
        route_conditions(&translation, "bf")[0],
        (
            "Accepted".to_owned(),
            "False".to_owned(),
            "UnsupportedValue".to_owned()
        )
    );
    assert_eq!(
        status_of(&translation, "HTTPRoute appmesh-demo/bf").state,
        State::Rejected
    );
}

#[test]
fn timeouts_and_retries_map_as_envoy_gateway_does() {
    let rules = format!(
        "  - matches: [{{path: {{value: /request}}}}]\n    timeouts: {{request: 3s}}\n{BACKEND_V1}  - matches: [{{path: {{value: /disabled}}}}]\n    timeouts: {{request: 0s}}\n{BACKEND_V1}  - matches: [{{path: {{value: /backend}}}}]\n    timeouts: {{request: 10s, backendRequest: 2s}}\n{BACKEND_V1}  - matches: [{{path: {{value: /retry}}}}]\n    timeouts: {{request: 10s, backendRequest: 2s}}\n    retry: {{attempts: 3, codes: [503, 504], backoff: 100ms}}\n{BACKEND_V1}  - matches: [{{path: {{value: /retry-default}}}}]\n    retry: {{}}\n{BACKEND_V1}"
    );
    let translation = ingress(&[CLASSES, EDGE, &apps(), &route("t", "", &rules)]);
    let table = &translation.table;
    assert_eq!(
        forward(table, "h", "/request").timeout,
        Some(Duration::from_secs(3))
    );
    assert_eq!(forward(table, "h", "/disabled").timeout, None);
    let backend = forward(table, "h", "/backend");
    assert_eq!(backend.timeout, Some(Duration::from_secs(2)));
    assert!(backend.retry.is_none());
    let retry = forward(table, "h", "/retry");
    assert_eq!(retry.timeout, Some(Duration::from_secs(10)));
    let policy = retry.retry.as_ref().expect("retry");
    assert_eq!(policy.num_retries, 3);
    assert_eq!(policy.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(policy.backoff_base, Some(Duration::from_millis(100)));
    assert_eq!(policy.retry_on.status_codes, vec![503, 504]);
    assert!(policy.retry_on.connect_failure && policy.retry_on.reset);
    assert!(!policy.retry_on.server_error && !policy.retry_on.gateway_error);
    let default = forward(table, "h", "/retry-default");
    let policy = default.retry.as_ref().expect("retry");
    assert_eq!(policy.num_retries, 2);
    assert_eq!(policy.per_try_timeout, None);
    assert_eq!(default.timeout, Some(Duration::from_secs(15)));
}

#[test]
fn hostnames_intersect_listener_and_route_hostnames() {
    let host = |list: &[&str]| list.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
    assert_eq!(intersect(None, &[]), host(&["*"]));
    assert_eq!(
        intersect(Some("a.example.com"), &[]),
        host(&["a.example.com"])
    );
    assert_eq!(
        intersect(None, &host(&["a.example.com", "*.b.com"])),
        host(&["a.example.com", "*.b.com"])
    );
    assert_eq!(
        intersect(
            Some("*.example.com"),
            &host(&[
                "a.example.com",
                "x.y.example.com",
                "example.com",
                "other.com"
            ])
        ),
        host(&["a.example.com", "x.y.example.com"])
    );
    assert_eq!(
        intersect(
            Some("a.example.com"),
            &host(&["*.example.com", "b.example.com"])
        ),
        host(&["a.example.com"])
    );
    assert_eq!(
        intersect(Some("*.example.com"), &host(&["*.a.example.com", "*.com"])),
        host(&["*.a.example.com", "*.example.com"])
    );
    assert!(intersect(Some("example.com"), &host(&["*.example.com"])).is_empty());
}

const HOSTED_EDGE: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: appmesh-demo, generation: 2}
spec:
  gatewayClassName: colormesh
  listeners:
  - {name: colors, hostname: \"*.colors.example\", port: 80, protocol: HTTP}
  - {name: shapes, hostname: shapes.example, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
";

#[test]
fn routes_attach_by_hostname_and_section_and_wildcards_skip_the_apex() {
    let colors = route(
        "colors",
        "  hostnames: [\"blue.colors.example\", \"deep.red.colors.example\", \"colors.example\"]\n",
        &format!("  - {}", BACKEND_V1.trim_start()),
    );
    let any = route(
        "any",
        "",
        &format!(
            "  - {}",
            "backendRefs: [{name: colorgatewayv2, port: 9080}]\n"
        ),
    )
    .replace("[{name: edge}]", "[{name: edge, sectionName: colors}]");
    let translation = ingress(&[CLASSES, HOSTED_EDGE, &apps(), &colors, &any]);
    let table = &translation.table;
    let domains: Vec<&[String]> = table
        .virtual_hosts()
        .iter()
        .map(|virtual_host| virtual_host.domains.as_slice())
        .collect();
    assert_eq!(
        domains,
        vec![
            &["*.colors.example".to_owned()][..],
            &["blue.colors.example".to_owned()][..],
            &["deep.red.colors.example".to_owned()][..],
        ]
    );
    assert_eq!(
        hit(table, "blue.colors.example:80", "/"),
        "appmesh-demo/colors/rule/0/match/0"
    );
    assert_eq!(
        hit(table, "deep.red.colors.example", "/"),
        "appmesh-demo/colors/rule/0/match/0"
    );
    assert_eq!(
        hit(table, "green.colors.example", "/"),
        "appmesh-demo/any/rule/0/match/0"
    );
    assert_eq!(
        hit(table, "a.b.colors.example", "/"),
        "appmesh-demo/any/rule/0/match/0"
    );
    assert_eq!(hit(table, "colors.example", "/"), "fallback");
    assert_eq!(hit(table, "shapes.example", "/"), "fallback");
    let gateway = status_of(&translation, "Gateway appmesh-demo/edge");
    let Some(GatewayApiStatus::Gateway(status)) = &gateway.gateway_api else {
        panic!("no gateway status");
    };
    let attached: Vec<(&str, i32)> = status
        .listeners
        .iter()
        .map(|listener| (listener.name.as_str(), listener.attached_routes))
        .collect();
    assert_eq!(attached, vec![("colors", 2), ("shapes", 0)]);
    assert_eq!(gateway.state, State::Accepted);

    // A hostname no listener takes; a section that does not exist.
    let nowhere = route(
        "nowhere",
        "  hostnames: [elsewhere.example]\n",
        &format!("  - {}", BACKEND_V1.trim_start()),
    );
    let missing = route("missing", "", &format!("  - {}", BACKEND_V1.trim_start()))
        .replace("[{name: edge}]", "[{name: edge, sectionName: tls}]");
    let by_port = route(
        "by-port",
        "  hostnames: [shapes.example]\n",
        &format!("  - {}", BACKEND_V1.trim_start()),
    )
    .replace("[{name: edge}]", "[{name: edge, port: 8080}]");
    let translation = ingress(&[CLASSES, HOSTED_EDGE, &apps(), &nowhere, &missing, &by_port]);
    assert_eq!(
        route_conditions(&translation, "nowhere")[0],
        (
            "Accepted".to_owned(),
            "False".to_owned(),
            "NoMatchingListenerHostname".to_owned()
        )
    );
    assert_eq!(
        route_conditions(&translation, "missing")[0],
        (
            "Accepted".to_owned(),
            "False".to_owned(),
            "NoMatchingParent".to_owned()
        )
    );
    assert_eq!(
        route_conditions(&translation, "by-port")[0],
        (
            "Accepted".to_owned(),
            "True".to_owned(),
            "Accepted".to_owned()
        )
    );
    assert_eq!(
        hit(&translation.table, "shapes.example:8080", "/"),
        "appmesh-demo/by-port/rule/0/match/0"
    );
    let status = status_of(&translation, "HTTPRoute appmesh-demo/nowhere");
    assert_eq!(status.state, State::Rejected);
    assert!(
        status.reasons[0]
            .contains("spec.parentRefs[0]: Accepted=False (NoMatchingListenerHostname)"),
        "{:?}",
        status.reasons
    );
}

#[test]
fn allowed_routes_limit_namespaces_and_kinds() {
    let gateway = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: appmesh-demo}
spec:
  gatewayClassName: colormesh
  listeners:
  - name: same
    hostname: same.example
    port: 80
    protocol: HTTP
  - name: selected
    hostname: selected.example
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Selector
        selector: {matchLabels: {team: color}}
  - name: grpc-only
    hostname: grpc.example
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces: {from: All}
      kinds: [{kind: GRPCRoute}]
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: twin-a, hostname: twin.example, port: 80, protocol: HTTP}
  - {name: twin-b, hostname: twin.example, port: 80, protocol: HTTP}
";
    let namespace =
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-ns, labels: {team: color}}\n";
    let elsewhere = |name: &str, section: &str, ns: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: edge, namespace: appmesh-demo, sectionName: {section}}}]\n  rules:\n  - backendRefs: [{{name: svc, port: 80}}]\n"
        )
    };
    let translation = ingress(&[
        CLASSES,
        gateway,
        namespace,
        &service("team-ns", "svc", 80, "10.0.3.1"),
        &service("other-ns", "svc", 80, "10.0.4.1"),
        &elsewhere("selected", "selected", "team-ns"),
        &elsewhere("unselected", "selected", "other-ns"),
        &elsewhere("not-same", "same", "team-ns"),
        &elsewhere("grpc", "grpc-only", "team-ns"),
        &elsewhere("twin", "twin-a", "team-ns"),
    ]);
    let reason = |route: &str, ns: &str| {
        let status = status_of(&translation, &format!("HTTPRoute {ns}/{route}"));
        summary(&parents(status)[0].conditions)[0].2.clone()
    };
    assert_eq!(reason("selected", "team-ns"), "Accepted");
    assert_eq!(reason("unselected", "other-ns"), "NotAllowedByListeners");
    assert_eq!(reason("not-same", "team-ns"), "NotAllowedByListeners");
    assert_eq!(reason("grpc", "team-ns"), "NotAllowedByListeners");
    assert_eq!(reason("twin", "team-ns"), "NotAllowedByListeners");
    assert_eq!(
        hit(&translation.table, "selected.example", "/"),
        "team-ns/selected/rule/0/match/0"
    );

    let status = status_of(&translation, "Gateway appmesh-demo/edge");
    assert_eq!(status.state, State::Warning);
    let Some(GatewayApiStatus::Gateway(gateway)) = &status.gateway_api else {
        panic!("no gateway status");
    };
    assert_eq!(
        summary(&gateway.conditions),
        conditions(&[
            ("Accepted", "True", "ListenersNotValid"),
            ("Programmed", "True", "Programmed"),
        ])
    );
    let listener = |name: &str| {
        gateway
            .listeners
            .iter()
            .find(|listener| listener.name == name)
            .expect("listener")
    };
    assert_eq!(
        summary(&listener("same").conditions),
        conditions(&[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
            ("Conflicted", "False", "NoConflicts"),
            ("Programmed", "True", "Programmed"),
        ])
    );
    assert_eq!(listener("selected").attached_routes, 1);
    assert_eq!(
        listener("same").supported_kinds,
        vec![model::gateway_api::RouteGroupKind {
            group: "gateway.networking.k8s.io".to_owned(),
            kind: "HTTPRoute".to_owned()
        }]
    );
    assert_eq!(
        summary(&listener("grpc-only").conditions)[1],
        (
            "ResolvedRefs".to_owned(),
            "False".to_owned(),
            "InvalidRouteKinds".to_owned()
        )
    );
    assert!(listener("grpc-only").supported_kinds.is_empty());
    assert_eq!(
        summary(&listener("tcp").conditions)[0],
        (
            "Accepted".to_owned(),
            "False".to_owned(),
            "UnsupportedProtocol".to_owned()
        )
    );
    for twin in ["twin-a", "twin-b"] {
        assert_eq!(
            summary(&listener(twin).conditions)[2..],
            conditions(&[
                ("Conflicted", "True", "HostnameConflict"),
                ("Programmed", "False", "Invalid"),
            ])[..]
        );
    }
}

#[test]
fn only_our_classes_and_the_selected_gateway_are_served() {
    let theirs = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: appmesh-demo}\nspec:\n  gatewayClassName: other\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let second = EDGE.replace("name: edge", "name: second");
    let on_theirs = route("on-theirs", "", &format!("  - {}", BACKEND_V1.trim_start()))
        .replace("[{name: edge}]", "[{name: theirs}]");
    let on_second = route("on-second", "", &format!("  - {}", BACKEND_V1.trim_start())).replace(
        "[{name: edge}]",
        "[{name: second}, {name: theirs}, {kind: Service, group: \"\", name: colorgateway}]",
    );
    let resources = parse(&[
        CLASSES,
        EDGE,
        theirs,
        &second,
        &apps(),
        &on_theirs,
        &on_second,
    ]);
    let all = translate(&resources, &Role::ingress(), None);
    assert_eq!(
        status_of(&all, "GatewayClass colormesh").gateway_api,
        Some(GatewayApiStatus::GatewayClass(
            model::gateway_api::GatewayClassStatus {
                conditions: vec![Condition::new(
                    "Accepted",
                    true,
                    "Accepted",
                    "colormesh.dev/gateway-proxy serves the Gateways of this class",
                    Some(1),
                )],
            }
        ))
    );
    for absent in [
        "GatewayClass other",
        "Gateway appmesh-demo/theirs",
        "HTTPRoute appmesh-demo/on-theirs",
    ] {
        assert!(
            all.statuses.iter().all(|status| status.resource != absent),
            "{absent} has a status"
        );
    }
    // One entry: the Gateway of ours; not the other class's, not the Service (a mesh parent).
    let status = status_of(&all, "HTTPRoute appmesh-demo/on-second");
    assert_eq!(parents(status).len(), 1);
    assert_eq!(parents(status)[0].parent_ref.name, "second");
    assert_eq!(
        hit(&all.table, "h", "/"),
        "appmesh-demo/on-second/rule/0/match/0"
    );

    let only_edge = translate(
        &resources,
        &Role::Ingress {
            gateway: Some(GatewayName {
                namespace: "appmesh-demo".to_owned(),
                name: "edge".to_owned(),
            }),
        },
        None,
    );
    assert!(only_edge.table.virtual_hosts().is_empty());
    assert!(
        only_edge
            .statuses
            .iter()
            .all(|status| status.resource != "Gateway appmesh-demo/second"
                && status.resource != "HTTPRoute appmesh-demo/on-second")
    );
    assert_eq!(
        status_of(&only_edge, "Gateway appmesh-demo/edge").state,
        State::Accepted
    );
}

#[test]
fn gloo_keeps_the_hostnames_it_serves() {
    let gloo = "\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}
spec:
  kube: {serviceName: colorgateway, serviceNamespace: appmesh-demo, servicePort: 9080}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: colorgateway, namespace: gloo-system}
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers: [{prefix: /gloo}]
      routeAction: {single: {upstream: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}}}
";
    let both = route(
        "both",
        "  hostnames: [api.example]\n",
        &format!("  - {}", BACKEND_V1.trim_start()),
    );
    let star = route("star", "", &format!("  - {}", BACKEND_V1.trim_start()));
    let translation = ingress(&[CLASSES, EDGE, &apps(), gloo, &both, &star]);
    let table = &translation.table;
    assert_eq!(hit(table, "h", "/gloo"), "gloo-system/colorgateway/0");
    assert_eq!(
        hit(table, "api.example", "/"),
        "appmesh-demo/both/rule/0/match/0"
    );
    assert_eq!(
        status_of(&translation, "VirtualService gloo-system/colorgateway").state,
        State::Accepted
    );
    let status = status_of(&translation, "HTTPRoute appmesh-demo/star");
    assert_eq!(status.state, State::Warning);
    let accepted = &parents(status)[0].conditions[0];
    assert!(accepted.is_true());
    assert_eq!(
        accepted.message,
        "Route is accepted, but not served for hostname(s) * already served by Gloo VirtualService gloo-system/colorgateway, which keeps them"
    );
    let gateway = status_of(&translation, "Gateway appmesh-demo/edge");
    let Some(GatewayApiStatus::Gateway(gateway_status)) = &gateway.gateway_api else {
        panic!("no gateway status");
    };
    let conflicted = &gateway_status.listeners[0].conditions[2];
    assert_eq!(
        (conflicted.status.as_str(), conflicted.reason.as_str()),
        ("True", "HostnameConflict")
    );
    assert!(
        conflicted
            .message
            .contains("Gloo VirtualService gloo-system/colorgateway")
    );
    assert_eq!(gateway_status.listeners[0].attached_routes, 1);
}

// ---------------------------------------------------------------------------------------------
// Mesh (GAMMA)
// ---------------------------------------------------------------------------------------------

fn mesh(documents: &[&str], namespace: &str) -> Translation {
    translate(
        &parse(documents),
        &Role::MeshSidecar {
            namespace: namespace.to_owned(),
        },
        None,
    )
}

fn mesh_route(name: &str, namespace: &str, parent: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {namespace}, generation: 4}}\nspec:\n  parentRefs: [{parent}]\n  rules:\n{rules}"
    )
}

#[test]
fn service_domains_cover_the_dns_names_and_port_80() {
    assert_eq!(
        service_domains("appmesh-demo", "colorteller", 9080, "appmesh-demo"),
        vec![
            "colorteller:9080",
            "colorteller.appmesh-demo:9080",
            "colorteller.appmesh-demo.svc:9080",
            "colorteller.appmesh-demo.svc.cluster.local:9080",
        ]
    );
    assert_eq!(
        service_domains("web", "front", 80, "appmesh-demo"),
        vec![
            "front.web:80",
            "front.web.svc:80",
            "front.web.svc.cluster.local:80",
            "front.web",
            "front.web.svc",
            "front.web.svc.cluster.local",
        ]
    );
}

#[test]
fn services_without_routes_go_to_their_endpoints_and_unknown_hosts_pass_through() {
    let translation = mesh(
        &[&apps(), &service("web", "colorgateway", 80, "10.0.9.9")],
        "appmesh-demo",
    );
    let table = &translation.table;
    assert_eq!(
        table.fallback(),
        &crate::table::Fallback::Passthrough {
            timeout: Some(Duration::from_secs(15))
        }
    );
    let own = forward(table, "colorgateway:9080", "/color");
    assert_eq!(
        weights(own),
        vec![("appmesh-demo/colorgateway:9080".to_owned(), 1, false)]
    );
    assert_eq!(own.timeout, Some(Duration::from_secs(15)));
    assert_eq!(
        weights(forward(table, "colorgateway.web", "/")),
        vec![("web/colorgateway:80".to_owned(), 1, false)]
    );
    assert_eq!(
        hit(
            table,
            "colorgateway.appmesh-demo.svc.cluster.local:9080",
            "/"
        ),
        "appmesh-demo/colorgateway:9080"
    );
    assert_eq!(hit(table, "colorgateway", "/"), "fallback");
    assert_eq!(hit(table, "example.com", "/"), "fallback");
}

#[test]
fn producer_routes_apply_and_consumer_routes_override_them_for_their_namespace() {
    let producer = mesh_route(
        "split",
        "appmesh-demo",
        "{group: \"\", kind: Service, name: colorgateway, port: 9080}",
        "  - matches: [{path: {value: /color}}]\n    backendRefs:\n    - {name: colorgateway, port: 9080, weight: 1}\n    - {name: colorgatewayv2, port: 9080, weight: 3}\n",
    );
    let consumer = mesh_route(
        "pin-v2",
        "web",
        "{group: \"\", kind: Service, name: colorgateway, namespace: appmesh-demo}",
        "  - backendRefs:\n    - {name: colorgatewayv2, namespace: appmesh-demo, port: 9080}\n",
    );
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: web, namespace: appmesh-demo}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]\n  to: [{group: \"\", kind: Service}]\n";
    let documents = [apps(), producer, consumer, grant.to_owned()];
    let documents: Vec<&str> = documents.iter().map(String::as_str).collect();

    let producer_side = mesh(&documents, "appmesh-demo");
    let table = &producer_side.table;
    assert_eq!(
        weights(forward(table, "colorgateway.appmesh-demo:9080", "/color/x")),
        vec![
            ("appmesh-demo/colorgateway:9080".to_owned(), 1, false),
            ("appmesh-demo/colorgatewayv2:9080".to_owned(), 3, false),
        ]
    );
    // GAMMA: a call the routes do not match is answered 404.
    assert_eq!(hit(table, "colorgateway:9080", "/shape"), "404");
    assert_eq!(hit(table, "colorgateway:9080", "/colorful"), "404");

    let consumer_side = mesh(&documents, "web");
    assert_eq!(
        weights(forward(
            &consumer_side.table,
            "colorgateway.appmesh-demo:9080",
            "/shape"
        )),
        vec![("appmesh-demo/colorgatewayv2:9080".to_owned(), 1, false)]
    );
    for translation in [&producer_side, &consumer_side] {
        for route in ["HTTPRoute appmesh-demo/split", "HTTPRoute web/pin-v2"] {
            let status = status_of(translation, route);
            assert_eq!(status.state, State::Accepted, "{status:#?}");
            let parents = parents(status);
            assert_eq!(parents.len(), 1);
            assert_eq!(
                summary(&parents[0].conditions),
                conditions(&[
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "True", "ResolvedRefs"),
                ])
            );
            assert_eq!(parents[0].conditions[0].observed_generation, Some(4));
            assert_eq!(parents[0].parent_ref.kind, "Service");
        }
    }
}

#[test]
fn mesh_parents_narrow_to_a_port_and_report_missing_ones() {
    let two_ports = "apiVersion: v1\nkind: Service\nmetadata: {name: multi, namespace: appmesh-demo}\nspec: {ports: [{name: http, port: 9080}, {name: admin, port: 9901}]}\n";
    let admin_only = mesh_route(
        "admin",
        "appmesh-demo",
        "{group: \"\", kind: Service, name: multi, sectionName: admin}",
        "  - matches: [{path: {type: Exact, value: /ready}}]\n    backendRefs: [{name: colorgateway, port: 9080}]\n",
    );
    let wrong = mesh_route(
        "wrong",
        "appmesh-demo",
        "{group: \"\", kind: Service, name: multi, port: 1}",
        "  - backendRefs: [{name: colorgateway, port: 9080}]\n",
    );
    let absent = mesh_route(
        "absent",
        "appmesh-demo",
        "{group: \"\", kind: Service, name: ghost}",
        "  - backendRefs: [{name: colorgateway, port: 9080}]\n",
    );
    let translation = mesh(
        &[&apps(), two_ports, &admin_only, &wrong, &absent],
        "appmesh-demo",
    );
    let table = &translation.table;
    assert_eq!(
        hit(table, "multi:9901", "/ready"),
        "appmesh-demo/admin/rule/0/match/0"
    );
    assert_eq!(hit(table, "multi:9901", "/other"), "404");
    assert_eq!(
        hit(table, "multi:9080", "/other"),
        "appmesh-demo/multi:9080"
    );
    for name in ["wrong", "absent"] {
        let status = status_of(&translation, &format!("HTTPRoute appmesh-demo/{name}"));
        assert_eq!(status.state, State::Rejected);
        assert_eq!(
            summary(&parents(status)[0].conditions)[0],
            (
                "Accepted".to_owned(),
                "False".to_owned(),
                "NoMatchingParent".to_owned()
            )
        );
    }
}

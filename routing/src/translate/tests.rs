//! Unit tests of the translator, built from YAML snippets and the walkthrough's manifests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use model::ResourceSet;
use model::discovery::{PodLabels, discover_upstreams};
use model::gloo::Upstream;

use model::gloo::State;

use super::*;
use crate::table::{
    ForwardAction, PathMatcher, PathRewrite, RequestView, RouteAction, RouteDecision, ValueMatcher,
};

fn parse(yaml: &str) -> ResourceSet {
    let parsed = model::parse_documents(yaml, Path::new("test.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    ResourceSet::from_loaded(parsed.resources)
}

fn manifest(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

fn status_of<'a>(translation: &'a Translation, resource: &str) -> &'a ResourceStatus {
    translation
        .statuses
        .iter()
        .find(|status| status.resource == resource)
        .unwrap_or_else(|| panic!("no status for {resource}: {:#?}", translation.statuses))
}

fn assert_all_accepted(translation: &Translation) {
    for status in &translation.statuses {
        assert_eq!(status.state, State::Accepted, "{status:#?}");
    }
}

fn forward_of(route: &crate::table::Route) -> &ForwardAction {
    match &route.action {
        RouteAction::Forward(forward) => forward,
        other => panic!("expected a forward action: {other:?}"),
    }
}

fn weights(forward: &ForwardAction) -> Vec<(String, u32)> {
    forward
        .destinations
        .iter()
        .map(|(cluster, weight)| (cluster.name.clone(), weight))
        .collect()
}

fn endpoints_of(forward: &ForwardAction) -> BTreeMap<String, Vec<SocketAddr>> {
    forward
        .destinations
        .iter()
        .map(|(cluster, _)| (cluster.name.clone(), cluster.endpoints.clone()))
        .collect()
}

fn ingress(yaml: &str) -> Translation {
    translate(&parse(yaml), &Role::ingress(), None)
}

fn sidecar(resources: &ResourceSet, node: &str) -> Translation {
    translate(
        resources,
        &Role::Sidecar {
            node: node.to_owned(),
            namespace: "appmesh-demo".to_owned(),
        },
        None,
    )
}

fn endpoint_slice(
    service: &str,
    namespace: &str,
    port_name: &str,
    port: u16,
    addresses: &[&str],
) -> String {
    let endpoints: Vec<String> = addresses
        .iter()
        .map(|address| format!("- addresses: [\"{address}\"]\n  conditions: {{ready: true}}\n"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-abc\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nendpoints:\n{}ports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\n",
        endpoints.concat()
    )
}

/// The Upstreams Gloo's discovery writes for the walkthrough's services, as YAML.
fn discovered_upstreams(manifests: &str) -> String {
    let resources = parse(manifests);
    let services: Vec<_> = resources
        .services()
        .map(|(_, service)| service.clone())
        .collect();
    let pods: Vec<PodLabels> = resources
        .deployments()
        .filter_map(|(_, deployment)| PodLabels::of_deployment(deployment))
        .collect();
    let upstreams: Vec<Upstream> = discover_upstreams(&services, &pods, "gloo-system");
    let resources: Vec<model::Resource> = upstreams
        .into_iter()
        .map(|upstream| model::Resource::Upstream(Box::new(upstream)))
        .collect();
    model::to_yaml_documents(&resources)
}

fn walkthrough_ingress(group_file: &str) -> String {
    let apps = [
        manifest("colorapp/namespace.yaml"),
        manifest("colorapp/colorgateway.yaml"),
        manifest("colorgatewayv2/colorgatewayv2.yaml"),
    ]
    .join("---\n");
    [
        apps.clone(),
        discovered_upstreams(&apps),
        manifest(group_file),
        endpoint_slice("colorgateway", "appmesh-demo", "http", 9080, &["10.0.0.1"]),
        endpoint_slice(
            "colorgatewayv2",
            "appmesh-demo",
            "http",
            9080,
            &["10.0.0.2"],
        ),
    ]
    .join("---\n")
}

fn colorapp() -> String {
    let mut yaml = [
        "namespace.yaml",
        "mesh.yaml",
        "colorgateway.yaml",
        "colorteller.yaml",
        "tcpecho.yaml",
    ]
    .iter()
    .map(|file| manifest(&format!("colorapp/{file}")))
    .collect::<Vec<_>>()
    .join("---\n");
    for (index, service) in [
        "colorteller",
        "colorteller-blue",
        "colorteller-black",
        "colorteller-red",
    ]
    .iter()
    .enumerate()
    {
        yaml.push_str("---\n");
        yaml.push_str(&endpoint_slice(
            service,
            "appmesh-demo",
            "http",
            9080,
            &[&format!("10.0.1.{}", index + 1)],
        ));
    }
    yaml
}

fn request<'a>(
    authority: &'a str,
    path: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
) -> RequestView<'a> {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    RequestView {
        authority,
        path,
        query,
        method,
        headers,
    }
}

fn routed_name(
    table: &RouteTable,
    authority: &str,
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<String> {
    match table.route(&request(authority, path, method, headers)) {
        RouteDecision::Matched { entry, .. } => Some(entry.name.clone()),
        _ => None,
    }
}

const UPSTREAMS: &str = "\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: a, namespace: gloo-system}
spec: {static: {hosts: [{addr: 127.0.0.1, port: 9001}]}}
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: b, namespace: gloo-system}
spec: {static: {hosts: [{addr: 127.0.0.2, port: 9002}]}}
";

fn with_upstreams(yaml: &str) -> String {
    format!("{UPSTREAMS}---\n{yaml}")
}

fn virtual_service(name: &str, virtual_host: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: gloo-system, resourceVersion: '7'}}\nspec:\n  virtualHost:\n{virtual_host}"
    )
}

#[test]
fn walkthrough_ingress_manifests_are_all_accepted() {
    for (file, expected) in [
        ("gloo/upstreamgroup-80-20.yaml", vec![80, 20]),
        ("gloo/upstreamgroup-50-50.yaml", vec![50, 50]),
        ("gloo/upstreamgroup-0-100.yaml", vec![100]),
    ] {
        let translation = translate(&parse(&walkthrough_ingress(file)), &Role::ingress(), None);
        assert_all_accepted(&translation);
        status_of(
            &translation,
            "UpstreamGroup gloo-system/upstreamgroup-gateway",
        );
        status_of(
            &translation,
            "Upstream gloo-system/appmesh-demo-colorgateway-9080",
        );
        let [virtual_host] = translation.table.virtual_hosts() else {
            panic!("{:#?}", translation.table)
        };
        assert_eq!(virtual_host.name, "gloo-system/colorgateway");
        assert_eq!(virtual_host.domains, ["*"]);
        let [route] = virtual_host.routes.as_slice() else {
            panic!("{virtual_host:#?}")
        };
        assert!(
            matches!(&route.matcher.path, PathMatcher::Prefix(prefix) if prefix == "/appmesh/color")
        );
        let forward = forward_of(route);
        assert!(matches!(&forward.rewrite, PathRewrite::Prefix(prefix) if prefix == "/color"));
        assert_eq!(forward.timeout, Some(Duration::from_secs(15)));
        let got: Vec<u32> = weights(forward)
            .into_iter()
            .map(|(_, weight)| weight)
            .collect();
        assert_eq!(got, expected, "{file}");
    }
    let translation = translate(
        &parse(&walkthrough_ingress("gloo/upstreamgroup-80-20.yaml")),
        &Role::ingress(),
        None,
    );
    let forward = forward_of(&translation.table.virtual_hosts()[0].routes[0]);
    assert_eq!(
        weights(forward),
        [
            ("appmesh-demo-colorgateway-9080_gloo-system".to_owned(), 80),
            (
                "appmesh-demo-colorgatewayv2-9080_gloo-system".to_owned(),
                20
            )
        ]
    );
    let endpoints = endpoints_of(forward);
    assert_eq!(
        endpoints["appmesh-demo-colorgateway-9080_gloo-system"],
        ["10.0.0.1:9080".parse().expect("addr")]
    );
    assert_eq!(
        endpoints["appmesh-demo-colorgatewayv2-9080_gloo-system"],
        ["10.0.0.2:9080".parse().expect("addr")]
    );

    // Before the canary: one upstream.
    let single = walkthrough_ingress("gloo/virtualservice-colorgateway.yaml");
    let translation = translate(&parse(&single), &Role::ingress(), None);
    assert_all_accepted(&translation);
    let forward = forward_of(&translation.table.virtual_hosts()[0].routes[0]);
    assert_eq!(
        weights(forward),
        [("appmesh-demo-colorgateway-9080_gloo-system".to_owned(), 1)]
    );
}

#[test]
fn walkthrough_sidecar_manifests_are_all_accepted() {
    let resources = parse(&colorapp());
    let translation = sidecar(&resources, "colorgateway");
    assert_all_accepted(&translation);
    status_of(
        &translation,
        "VirtualRouter appmesh-demo/colorteller-router",
    );
    status_of(&translation, "Mesh color-mesh");
    assert_eq!(
        translation.table.fallback(),
        &Fallback::Passthrough {
            timeout: Some(Duration::from_secs(15))
        }
    );
    let names: Vec<&str> = translation
        .table
        .virtual_hosts()
        .iter()
        .map(|host| host.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "appmesh-demo/colorteller.appmesh-demo",
            "appmesh-demo/tcpecho.appmesh-demo"
        ]
    );
    let teller = &translation.table.virtual_hosts()[0];
    for domain in [
        "colorteller.appmesh-demo",
        "colorteller.appmesh-demo:9080",
        "colorteller.appmesh-demo.svc.cluster.local",
        "colorteller.appmesh-demo.svc.cluster.local:9080",
    ] {
        assert!(
            teller.domains.iter().any(|known| known == domain),
            "{domain} missing from {:?}",
            teller.domains
        );
    }
    let forward = forward_of(&teller.routes[0]);
    assert_eq!(
        weights(forward),
        [
            ("colorteller_appmesh-demo_9080".to_owned(), 1),
            ("colorteller-blue_appmesh-demo_9080".to_owned(), 1),
            ("colorteller-black_appmesh-demo_9080".to_owned(), 1)
        ]
    );
    let endpoints = endpoints_of(forward);
    assert_eq!(
        endpoints["colorteller_appmesh-demo_9080"],
        ["10.0.1.1:9080".parse().expect("addr")]
    );
    assert_eq!(
        endpoints["colorteller-black_appmesh-demo_9080"],
        ["10.0.1.3:9080".parse().expect("addr")]
    );
    assert_eq!(forward.timeout, Some(Duration::from_secs(15)));

    let method = Method::GET;
    let headers = HeaderMap::new();
    for authority in [
        "colorteller.appmesh-demo:9080",
        "colorteller.appmesh-demo",
        "COLORTELLER.appmesh-demo.svc.cluster.local:9080",
    ] {
        assert_eq!(
            routed_name(&translation.table, authority, "/", &method, &headers).as_deref(),
            Some("appmesh-demo/colorteller-router/color-route"),
            "{authority}"
        );
    }
    // A teller's own sidecar has no backends: every call follows the egress filter.
    let teller_sidecar = sidecar(&resources, "colorteller-red");
    assert!(teller_sidecar.table.virtual_hosts().is_empty());
    assert_all_accepted(&teller_sidecar);
}

#[test]
fn unknown_sidecar_node_is_reported_pending() {
    let translation = sidecar(&parse(&colorapp()), "nobody");
    let missing = status_of(&translation, "VirtualNode appmesh-demo/nobody");
    assert_eq!(missing.state, State::Pending);
    assert!(translation.table.virtual_hosts().is_empty());
}

#[test]
fn domain_conflict_rejects_every_virtual_service_involved() {
    let route =
        "    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: a}}}}]\n";
    let yaml = with_upstreams(
        &[virtual_service("one", route), virtual_service("two", route)].join("---\n"),
    );
    let translation = ingress(&yaml);
    for name in ["one", "two"] {
        let status = status_of(&translation, &format!("VirtualService gloo-system/{name}"));
        assert_eq!(status.state, State::Rejected, "{status:#?}");
        assert!(
            status.reasons[0].contains("spec.virtualHost.domains: domain conflict: the [*] domain is present in other virtual services"),
            "{status:#?}"
        );
        assert!(status.reasons[0].contains("not served"), "{status:#?}");
    }
    assert!(translation.table.virtual_hosts().is_empty());

    // Distinct domains do not conflict.
    let yaml = with_upstreams(
        &[
            virtual_service("one", &format!("    domains: [a.example]\n{route}")),
            virtual_service("two", &format!("    domains: [b.example]\n{route}")),
        ]
        .join("---\n"),
    );
    let translation = ingress(&yaml);
    assert_all_accepted(&translation);
    assert_eq!(translation.table.virtual_hosts().len(), 2);
}

#[test]
fn domain_conflict_keeps_serving_the_last_accepted_virtual_service() {
    let route =
        "    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: a}}}}]\n";
    let first = parse(&with_upstreams(&virtual_service("one", route)));
    let accepted = translate_resources(&first, &Role::ingress(), None, &BTreeMap::new()).accepted;
    let both = parse(&with_upstreams(
        &[virtual_service("one", route), virtual_service("two", route)].join("---\n"),
    ));
    let translation = translate(&both, &Role::ingress(), Some(&accepted));
    let one = status_of(&translation, "VirtualService gloo-system/one");
    assert_eq!(one.state, State::Rejected);
    assert!(one.reasons[0].contains("is still served"), "{one:#?}");
    assert!(
        status_of(&translation, "VirtualService gloo-system/two").reasons[0].contains("not served")
    );
    let names: Vec<&str> = translation
        .table
        .virtual_hosts()
        .iter()
        .map(|host| host.name.as_str())
        .collect();
    assert_eq!(names, ["gloo-system/one"]);
}

#[test]
fn invalid_regex_rejects_and_names_the_field() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers: [{prefix: /ok}]\n      routeAction: {single: {upstream: {name: a}}}\n    - matchers: [{regex: '/color/(['}]\n      routeAction: {single: {upstream: {name: a}}}\n",
    ));
    let translation = ingress(&yaml);
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Rejected);
    let reason = &status.reasons[0];
    assert!(reason.starts_with("test.yaml:"), "{reason}");
    assert!(reason.contains("VirtualService gloo-system/vs: spec.virtualHost.routes[1].matchers[0].regex: invalid regex"), "{reason}");
    assert!(
        reason.ends_with("no version of it was ever accepted, so it is not served"),
        "{reason}"
    );
    assert!(translation.table.virtual_hosts().is_empty());

    let header_regex = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers: [{prefix: /, headers: [{name: x-v, value: '(', regex: true}]}]\n      routeAction: {single: {upstream: {name: a}}}\n",
    ));
    let translation = ingress(&header_regex);
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert!(
        status.reasons[0]
            .contains("spec.virtualHost.routes[0].matchers[0].headers[0].value: invalid regex"),
        "{status:#?}"
    );
}

#[test]
fn missing_upstream_is_a_warning_and_answers_503() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers: [{prefix: /gone}]\n      routeAction: {single: {upstream: {name: nowhere}}}\n    - matchers: [{prefix: /}]\n      routeAction: {multi: {destinations: [{destination: {upstream: {name: a}}, weight: 1}, {destination: {upstream: {name: missing}}, weight: 1}]}}\n",
    ));
    let translation = ingress(&yaml);
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Warning, "{status:#?}");
    assert!(status.reasons[0].contains("spec.virtualHost.routes[0].routeAction.single.upstream: InvalidDestinationWarning: *v1.Upstream {gloo-system nowhere} not found"), "{status:#?}");
    assert!(
        status.reasons[1]
            .contains("routes[1].routeAction.multi.destinations[1].destination.upstream"),
        "{status:#?}"
    );
    let routes = &translation.table.virtual_hosts()[0].routes;
    assert!(
        matches!(&routes[0].action, RouteAction::Respond { status, body } if *status == StatusCode::SERVICE_UNAVAILABLE && body.is_empty())
    );
    let endpoints = endpoints_of(forward_of(&routes[1]));
    assert!(
        endpoints["missing_gloo-system"].is_empty(),
        "a missing destination is an empty cluster: {endpoints:?}"
    );
    assert_eq!(
        endpoints["a_gloo-system"],
        ["127.0.0.1:9001".parse().expect("addr")]
    );
}

#[test]
fn upstream_group_with_a_missing_upstream_is_rejected() {
    let yaml = with_upstreams(
        "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: ug, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: a}}\n    weight: 1\n  - destination: {upstream: {name: ghost, namespace: elsewhere}}\n    weight: 1\n---\napiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: unused, namespace: gloo-system}\nspec:\n  destinations:\n  - destination: {upstream: {name: b}}\n    weight: 3\n",
    );
    let translation = ingress(&yaml);
    let group = status_of(&translation, "UpstreamGroup gloo-system/ug");
    assert_eq!(group.state, State::Rejected);
    assert!(
        group.reasons[0].contains("UpstreamGroup gloo-system/ug: spec.destinations[1].destination.upstream: destination # 2: upstream not found: Upstream elsewhere/ghost"),
        "{group:#?}"
    );
    // Nothing references these, and they are still validated and accepted.
    assert_eq!(
        status_of(&translation, "UpstreamGroup gloo-system/unused").state,
        State::Accepted
    );
    assert_eq!(
        status_of(&translation, "Upstream gloo-system/b").state,
        State::Accepted
    );
}

#[test]
fn zero_total_weight_is_rejected() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - routeAction: {multi: {destinations: [{destination: {upstream: {name: a}}, weight: 0}, {destination: {upstream: {name: b}}}]}}\n",
    ));
    let translation = ingress(&yaml);
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Rejected);
    assert!(status.reasons[0].contains("spec.virtualHost.routes[0].routeAction.multi.destinations: weighted destinations require a total weight >= 1"), "{status:#?}");

    // One zero weight is fine: that destination gets nothing.
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - routeAction: {multi: {destinations: [{destination: {upstream: {name: a}}, weight: 0}, {destination: {upstream: {name: b}}, weight: 5}]}}\n",
    ));
    let translation = ingress(&yaml);
    assert_all_accepted(&translation);
    assert_eq!(
        weights(forward_of(&translation.table.virtual_hosts()[0].routes[0])),
        [
            ("a_gloo-system".to_owned(), 0),
            ("b_gloo-system".to_owned(), 5)
        ]
    );
}

#[test]
fn upstream_group_with_zero_weights_keeps_its_last_accepted_version() {
    let group = |weights: (u32, u32)| {
        with_upstreams(&format!(
            "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {{name: ug, namespace: gloo-system}}\nspec:\n  destinations:\n  - destination: {{upstream: {{name: a}}}}\n    weight: {}\n  - destination: {{upstream: {{name: b}}}}\n    weight: {}\n---\n{}",
            weights.0,
            weights.1,
            virtual_service(
                "vs",
                "    routes: [{routeAction: {upstreamGroup: {name: ug}}}]\n"
            )
        ))
    };
    let first = translate_resources(
        &parse(&group((80, 20))),
        &Role::ingress(),
        None,
        &BTreeMap::new(),
    );
    assert_all_accepted(&first.translation);
    let second = translate(
        &parse(&group((0, 0))),
        &Role::ingress(),
        Some(&first.accepted),
    );
    let ug = status_of(&second, "UpstreamGroup gloo-system/ug");
    assert_eq!(ug.state, State::Rejected);
    assert!(
        ug.reasons[0]
            .contains("spec.destinations: weighted destinations require a total weight >= 1"),
        "{ug:#?}"
    );
    assert!(ug.reasons[0].contains("is still served"), "{ug:#?}");
    let vs = status_of(&second, "VirtualService gloo-system/vs");
    assert_eq!(vs.state, State::Warning);
    assert!(
        vs.reasons[0].contains(
            "UpstreamGroup gloo-system/ug is Rejected; its last accepted version is served"
        ),
        "{vs:#?}"
    );
    assert_eq!(
        weights(forward_of(&second.table.virtual_hosts()[0].routes[0])),
        [
            ("a_gloo-system".to_owned(), 80),
            ("b_gloo-system".to_owned(), 20)
        ]
    );
}

#[test]
fn unsupported_fields_are_warnings() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers: [{prefix: /}]\n      routeAction: {single: {upstream: {name: a}}}\n      options:\n        cors: {allowOrigin: ['*']}\n",
    ));
    let translation = ingress(&yaml);
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Warning);
    assert!(
        status.reasons[0]
            .ends_with("unsupported field spec.virtualHost.routes[0].options.cors ignored"),
        "{status:#?}"
    );
    assert_eq!(
        translation.table.virtual_hosts().len(),
        1,
        "the virtual service is still served"
    );
}

#[test]
fn empty_prefix_rewrite_is_ignored_and_timeouts_default_to_15s() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers: [{prefix: /a}]\n      routeAction: {single: {upstream: {name: a}}}\n      options: {prefixRewrite: ''}\n    - matchers: [{prefix: /b}]\n      routeAction: {single: {upstream: {name: a}}}\n      options: {prefixRewrite: /, timeout: 0s}\n    - matchers: [{prefix: /c}]\n      routeAction: {single: {upstream: {name: a}}}\n      options:\n        timeout: 2.5s\n        regexRewrite: {pattern: {regex: '/c/(.*)'}, substitution: '/\\1'}\n        retries: {retryOn: '5xx,connect-failure,refused-stream', perTryTimeout: 1s}\n        headerManipulation:\n          requestHeadersToAdd: [{header: {key: x-added, value: '1'}}]\n          responseHeadersToRemove: [server]\n",
    ));
    let translation = ingress(&yaml);
    let routes = &translation.table.virtual_hosts()[0].routes;
    let a = forward_of(&routes[0]);
    assert!(matches!(a.rewrite, PathRewrite::None), "{:?}", a.rewrite);
    assert_eq!(a.timeout, Some(Duration::from_secs(15)));
    assert!(a.retry.is_none());
    let b = forward_of(&routes[1]);
    assert!(matches!(&b.rewrite, PathRewrite::Prefix(prefix) if prefix == "/"));
    assert_eq!(b.timeout, None, "0s disables the timeout");
    let c = forward_of(&routes[2]);
    assert_eq!(c.timeout, Some(Duration::from_millis(2500)));
    assert!(
        matches!(&c.rewrite, PathRewrite::Regex { pattern, substitution } if pattern.as_str() == "/c/(.*)" && substitution == "/\\1")
    );
    let retry = c.retry.as_ref().expect("retry policy");
    assert_eq!(retry.num_retries, 1, "Gloo's default");
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(1)));
    assert_eq!(retry.retry_on.names(), ["5xx", "connect-failure"]);
    assert_eq!(c.request_headers.add[0].0.as_str(), "x-added");
    assert!(c.request_headers.add[0].2, "append defaults to true");
    assert_eq!(c.response_headers.remove[0].as_str(), "server");
    let status = status_of(&translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Warning);
    assert!(status.reasons[0].contains("routes[2].options.retries.retryOn: unsupported retry condition \"refused-stream\" ignored"), "{status:#?}");
}

#[test]
fn matchers_expand_into_alternative_routes() {
    let yaml = with_upstreams(&virtual_service(
        "vs",
        "    routes:\n    - matchers:\n      - {exact: /color, methods: [GET]}\n      - {prefix: /Paint, caseSensitive: false, headers: [{name: x-canary}, {name: x-debug, value: '1', invertMatch: true}], queryParameters: [{name: v, value: '2'}]}\n      routeAction: {single: {upstream: {name: b}}}\n    - routeAction: {single: {upstream: {name: a}}}\n    - directResponseAction: {status: 418, body: teapot}\n",
    ));
    let translation = ingress(&yaml);
    assert_all_accepted(&translation);
    let routes = &translation.table.virtual_hosts()[0].routes;
    let names: Vec<&str> = routes.iter().map(|route| route.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gloo-system/vs/0/0",
            "gloo-system/vs/0/1",
            "gloo-system/vs/1",
            "gloo-system/vs/2"
        ]
    );
    assert_eq!(
        weights(forward_of(&routes[0])),
        weights(forward_of(&routes[1])),
        "same action"
    );
    assert!(
        matches!(&routes[2].matcher.path, PathMatcher::Prefix(prefix) if prefix == "/"),
        "no matchers is prefix /"
    );
    assert!(
        matches!(&routes[3].action, RouteAction::Respond { status, body } if status.as_u16() == 418 && body.as_ref() == b"teapot")
    );
    assert!(matches!(
        routes[1].matcher.headers[0].value,
        ValueMatcher::Present
    ));

    let table = &translation.table;
    let get = Method::GET;
    let post = Method::POST;
    let none = HeaderMap::new();
    let mut canary = HeaderMap::new();
    canary.insert("x-canary", HeaderValue::from_static("yes"));
    let mut debug = canary.clone();
    debug.insert("x-debug", HeaderValue::from_static("1"));
    let mut no_debug = canary.clone();
    no_debug.insert("x-debug", HeaderValue::from_static("0"));
    assert_eq!(
        routed_name(table, "any", "/color", &get, &none).as_deref(),
        Some("gloo-system/vs/0/0")
    );
    assert_eq!(
        routed_name(table, "any", "/color", &post, &none).as_deref(),
        Some("gloo-system/vs/1")
    );
    assert_eq!(
        routed_name(table, "any", "/paint/x?v=2", &post, &no_debug).as_deref(),
        Some("gloo-system/vs/0/1")
    );
    assert_eq!(
        routed_name(table, "any", "/paint/x?v=2", &post, &canary).as_deref(),
        Some("gloo-system/vs/1"),
        "an absent x-debug fails the inverted value matcher, as in Envoy"
    );
    assert_eq!(
        routed_name(table, "any", "/paint/x?v=3", &post, &canary).as_deref(),
        Some("gloo-system/vs/1")
    );
    assert_eq!(
        routed_name(table, "any", "/paint/x?v=2", &post, &debug).as_deref(),
        Some("gloo-system/vs/1")
    );
}

#[test]
fn virtual_service_without_routes_is_ignored_with_a_warning() {
    let translation = ingress(&with_upstreams(&virtual_service(
        "empty",
        "    domains: ['*']\n",
    )));
    let status = status_of(&translation, "VirtualService gloo-system/empty");
    assert_eq!(status.state, State::Warning);
    assert!(
        status.reasons[0].contains("spec.virtualHost.routes: no routes"),
        "{status:#?}"
    );
    assert!(translation.table.virtual_hosts().is_empty());
    assert_eq!(
        status.resource_version.as_deref(),
        Some("7"),
        "resourceVersion is reported"
    );
}

#[test]
fn kube_upstream_endpoints_follow_service_port_names() {
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports:
  - {name: metrics, port: 9100}
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.1.0.1], conditions: {ready: true}}
- {addresses: [10.1.0.2], conditions: {ready: false}}
- {addresses: [10.1.0.3]}
ports: [{name: metrics, port: 9100}, {name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other, namespace: shop, labels: {kubernetes.io/service-name: not-web}}
addressType: IPv4
endpoints: [{addresses: [10.9.9.9]}]
ports: [{name: http, port: 8080}]
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: shop-web-80, namespace: gloo-system}
spec: {kube: {serviceName: web, serviceNamespace: shop, servicePort: 80}}
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: shop-nothing-80, namespace: gloo-system}
spec: {kube: {serviceName: nothing, serviceNamespace: shop, servicePort: 80}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: vs, namespace: gloo-system}
spec:
  virtualHost:
    routes: [{routeAction: {multi: {destinations: [{destination: {upstream: {name: shop-web-80}}, weight: 1}, {destination: {upstream: {name: shop-nothing-80}}, weight: 1}]}}}]
";
    let translation = ingress(yaml);
    assert_all_accepted(&translation);
    status_of(&translation, "Service shop/web");
    status_of(&translation, "EndpointSlice shop/web-1");
    let endpoints = endpoints_of(forward_of(&translation.table.virtual_hosts()[0].routes[0]));
    let expected: Vec<SocketAddr> = ["10.1.0.1:8080", "10.1.0.3:8080"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    assert_eq!(endpoints["shop-web-80_gloo-system"], expected);
    assert!(
        endpoints["shop-nothing-80_gloo-system"].is_empty(),
        "no Service: no endpoints (503 at request time)"
    );
}

#[test]
fn static_upstream_port_out_of_range_is_rejected() {
    let translation = ingress(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: bad, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 70000}]}}\n",
    );
    let status = status_of(&translation, "Upstream gloo-system/bad");
    assert_eq!(status.state, State::Rejected);
    assert!(
        status.reasons[0].contains("spec.static.hosts[0].port: port 70000 is not in 1..65535"),
        "{status:#?}"
    );
}

#[test]
fn rejected_virtual_service_keeps_its_last_accepted_version() {
    let good = with_upstreams(&virtual_service(
        "vs",
        "    routes: [{matchers: [{prefix: /old}], routeAction: {single: {upstream: {name: a}}}}]\n",
    ));
    let first = translate_resources(&parse(&good), &Role::ingress(), None, &BTreeMap::new());
    assert_all_accepted(&first.translation);
    let bad = with_upstreams(&virtual_service(
        "vs",
        "    routes: [{matchers: [{regex: '(['}], routeAction: {single: {upstream: {name: b}}}}]\n",
    ));
    let second = translate_resources(
        &parse(&bad),
        &Role::ingress(),
        Some(&first.accepted),
        &BTreeMap::new(),
    );
    let status = status_of(&second.translation, "VirtualService gloo-system/vs");
    assert_eq!(status.state, State::Rejected);
    assert!(
        status.reasons[0].contains("matchers[0].regex: invalid regex"),
        "{status:#?}"
    );
    assert!(
        status.reasons[0].contains("the last accepted version (read from test.yaml:"),
        "{status:#?}"
    );
    let route = &second.translation.table.virtual_hosts()[0].routes[0];
    assert!(matches!(&route.matcher.path, PathMatcher::Prefix(prefix) if prefix == "/old"));
    // The history still holds the good version, so a third bad load serves it too.
    let third = translate_resources(
        &parse(&bad),
        &Role::ingress(),
        Some(&second.accepted),
        &BTreeMap::new(),
    );
    assert_eq!(third.translation.table.virtual_hosts().len(), 1);
    // Deleting the resource removes it from the history.
    let fourth = translate_resources(
        &parse(UPSTREAMS),
        &Role::ingress(),
        Some(&third.accepted),
        &BTreeMap::new(),
    );
    assert!(fourth.translation.table.virtual_hosts().is_empty());
    assert_eq!(fourth.accepted.gloo_virtual_services().count(), 0);
}

const ROUTER_HEAD: &str = "apiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualRouter\nmetadata: {name: colorteller-router, namespace: appmesh-demo}\nspec:\n  listeners: [{portMapping: {port: 9080, protocol: http}}]\n  routes:\n";

/// The colorapp with the router replaced.
fn colorapp_with_router(routes: &str) -> ResourceSet {
    let mut resources = parse(&colorapp());
    let router = parse(&format!("{ROUTER_HEAD}{routes}"));
    for (_, loaded) in &router {
        resources.insert(loaded.clone());
    }
    resources
}

#[test]
fn app_mesh_routes_are_ordered_by_priority() {
    let resources = colorapp_with_router(
        "  - {name: last, httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNodeRef: {name: colorteller}, weight: 1}]}}}\n  - {name: second, priority: 20, httpRoute: {match: {prefix: /x}, action: {weightedTargets: [{virtualNodeRef: {name: colorteller-blue}, weight: 1}]}}}\n  - {name: first, priority: 10, httpRoute: {match: {path: {exact: /x/y}, headers: [{name: x-color, match: {range: {start: 1, end: 5}}}], method: GET}, action: {weightedTargets: [{virtualNodeRef: {name: colorteller-black}, weight: 1}]}, retryPolicy: {httpRetryEvents: [server-error, stream-error], tcpRetryEvents: [connection-error], maxRetries: 3, perRetryTimeout: {unit: ms, value: 500}}, timeout: {perRequest: {unit: s, value: 2}}}}\n  - {name: also-last, httpRoute: {match: {prefix: /z}, action: {weightedTargets: [{virtualNodeRef: {name: colorteller}, weight: 1}]}}}\n",
    );
    let translation = sidecar(&resources, "colorgateway");
    assert_all_accepted(&translation);
    let routes = &translation.table.virtual_hosts()[0].routes;
    let names: Vec<&str> = routes
        .iter()
        .map(|route| route.name.rsplit('/').next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["first", "second", "last", "also-last"]);
    let first = forward_of(&routes[0]);
    assert_eq!(first.timeout, Some(Duration::from_secs(2)));
    let retry = first.retry.as_ref().expect("retry");
    assert_eq!(retry.num_retries, 3);
    assert_eq!(retry.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(retry.retry_on.names(), ["5xx", "connect-failure", "reset"]);
    // A route without a retry policy gets App Mesh's implicit one: twice on 503 or a failed
    // connection.
    let implicit = forward_of(&routes[1])
        .retry
        .as_ref()
        .expect("implicit retry");
    assert_eq!(implicit.num_retries, 2);
    assert_eq!(implicit.per_try_timeout, None);
    assert_eq!(
        implicit.retry_on.names(),
        ["connect-failure", "retriable-status-codes"]
    );
    assert_eq!(implicit.retry_on.status_codes, [503]);
    assert!(matches!(
        routes[0].matcher.headers[0].value,
        ValueMatcher::Range { start: 1, end: 5 }
    ));
    assert_eq!(routes[0].matcher.methods, [Method::GET]);
}

#[test]
fn app_mesh_weight_rules() {
    let target =
        |node: &str, weight: u32| format!("{{virtualNodeRef: {{name: {node}}}, weight: {weight}}}");
    let route = |targets: &[String]| {
        format!(
            "  - {{name: r, httpRoute: {{match: {{prefix: /}}, action: {{weightedTargets: [{}]}}}}}}\n",
            targets.join(", ")
        )
    };
    let cases = [
        (
            route(&[target("colorteller", 150)]),
            "weightedTargets[0].weight: weight 150 is above the maximum of 100",
        ),
        (
            route(&[target("colorteller", 60), target("colorteller-blue", 60)]),
            "action.weightedTargets: the weights add up to 120; App Mesh allows a total of at most 100",
        ),
        (
            route(&[target("colorteller-green", 1)]),
            "weightedTargets[0].virtualNodeRef: virtual node appmesh-demo/colorteller-green not found",
        ),
        (
            route(&[target("colorteller", 0)]),
            "weighted targets require a total weight >= 1",
        ),
    ];
    for (routes, expected) in cases {
        let translation = sidecar(&colorapp_with_router(&routes), "colorgateway");
        let router = status_of(
            &translation,
            "VirtualRouter appmesh-demo/colorteller-router",
        );
        assert_eq!(router.state, State::Rejected, "{routes}");
        assert!(
            router.reasons[0].contains(&format!("spec.routes[0].httpRoute.{expected}"))
                || router.reasons[0].contains(expected),
            "{router:#?}"
        );
        // The virtual service now points at a router that was never accepted.
        let service = status_of(
            &translation,
            "VirtualService appmesh-demo/colorteller.appmesh-demo",
        );
        assert_eq!(service.state, State::Rejected, "{service:#?}");
        let names: Vec<&str> = translation
            .table
            .virtual_hosts()
            .iter()
            .map(|host| host.name.as_str())
            .collect();
        assert_eq!(names, ["appmesh-demo/tcpecho.appmesh-demo"]);
    }
    // Weights are relative and may add up to less than 100.
    let translation = sidecar(
        &colorapp_with_router(&route(&[
            target("colorteller", 8),
            target("colorteller-blue", 2),
        ])),
        "colorgateway",
    );
    assert_all_accepted(&translation);
    assert_eq!(
        weights(forward_of(&translation.table.virtual_hosts()[0].routes[0])),
        [
            ("colorteller_appmesh-demo_9080".to_owned(), 8),
            ("colorteller-blue_appmesh-demo_9080".to_owned(), 2)
        ]
    );
}

#[test]
fn missing_backend_is_a_warning_on_the_node() {
    let mut resources = parse(&colorapp());
    let without_tcpecho = parse(&manifest("colorapp/tcpecho.yaml"));
    for (key, _) in &without_tcpecho {
        resources.remove(key);
    }
    let translation = sidecar(&resources, "colorgateway");
    let node = status_of(&translation, "VirtualNode appmesh-demo/colorgateway");
    assert_eq!(node.state, State::Warning);
    assert!(
        node.reasons[0].contains("spec.backends[1].virtualService.virtualServiceRef: backend virtual service appmesh-demo/tcpecho.appmesh-demo not found"),
        "{node:#?}"
    );
    assert_eq!(translation.table.virtual_hosts().len(), 1);
}

#[test]
fn egress_filter_sets_the_fallback() {
    let mesh = |egress: &str| {
        format!(
            "apiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\nmetadata: {{name: color-mesh}}\nspec:\n  namespaceSelector: {{matchLabels: {{mesh: color-mesh}}}}\n{egress}"
        )
    };
    let with_mesh = |mesh_yaml: &str| {
        let mut resources = parse(&colorapp());
        for (_, loaded) in &parse(mesh_yaml) {
            resources.insert(loaded.clone());
        }
        resources
    };
    let passthrough = Fallback::Passthrough {
        timeout: Some(Duration::from_secs(15)),
    };
    let allow = sidecar(
        &with_mesh(&mesh("  egressFilter: {type: ALLOW_ALL}\n")),
        "colorgateway",
    );
    assert_eq!(allow.table.fallback(), &passthrough);
    let drop = sidecar(
        &with_mesh(&mesh("  egressFilter: {type: DROP_ALL}\n")),
        "colorgateway",
    );
    assert_eq!(drop.table.fallback(), &Fallback::NotFound);
    let default = sidecar(&with_mesh(&mesh("")), "colorgateway");
    assert_eq!(
        default.table.fallback(),
        &Fallback::NotFound,
        "App Mesh's default egress filter is DROP_ALL"
    );
    let mut no_mesh = parse(&colorapp());
    no_mesh.remove(&model::ResourceKey::new(
        model::ResourceKind::Mesh,
        None,
        "color-mesh",
    ));
    // No mesh: the sidecar fails closed, and its node's status says why.
    let closed = sidecar(&no_mesh, "colorgateway");
    assert_eq!(closed.table.fallback(), &Fallback::NotFound);
    let node = status_of(&closed, "VirtualNode appmesh-demo/colorgateway");
    assert_eq!(node.state, State::Warning, "{node:#?}");
    assert!(
        node.reasons
            .iter()
            .any(|reason| reason.contains("fails closed")),
        "{node:#?}"
    );
    // A mesh selecting other namespaces does not apply.
    let elsewhere = "apiVersion: appmesh.k8s.aws/v1beta2\nkind: Mesh\nmetadata: {name: other-mesh}\nspec:\n  namespaceSelector: {matchLabels: {mesh: other}}\n  egressFilter: {type: ALLOW_ALL}\n";
    let mut unselected = no_mesh.clone();
    for (_, loaded) in &parse(elsewhere) {
        unselected.insert(loaded.clone());
    }
    let closed = sidecar(&unselected, "colorgateway");
    assert_eq!(closed.table.fallback(), &Fallback::NotFound);
    let node = status_of(&closed, "VirtualNode appmesh-demo/colorgateway");
    assert!(
        node.reasons
            .iter()
            .any(|reason| reason.contains("fails closed")),
        "{node:#?}"
    );
}

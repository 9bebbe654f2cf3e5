//! Gloo constructs one by one: route order, matchers, options, upstreams.

use migrate::{DriftKind, Mapping};
use model::gateway_api::{HttpPathModifier, HttpRouteFilter, PathMatchType, ValueMatchType};

use crate::{affects, assert_valid_output, items, migrate_text};

const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: a, namespace: apps}
spec: {ports: [{port: 80, name: http}], selector: {app: a}}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: apps}
spec: {ports: [{port: 80, name: http}], selector: {app: b}}
";

fn with_routes(routes: &str) -> String {
    format!(
        "{SERVICES}---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n{routes}"
    )
}

fn single(upstream: &str) -> String {
    format!(
        "      routeAction: {{single: {{upstream: {{name: {upstream}, namespace: gloo-system}}}}}}\n"
    )
}

#[test]
fn a_longer_prefix_after_a_shorter_one_is_a_route_order_drift() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /a}}]\n{}    - matchers: [{{prefix: /a/b}}]\n{}",
        single("apps-a-80"),
        single("apps-b-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let order = items(&migration, DriftKind::RouteOrder);
    assert_eq!(order.len(), 1, "{order:#?}");
    let item = order[0];
    assert_eq!(item.mapping, Mapping::Approximate);
    assert!(
        item.source.contains("routes[1].matchers[0]"),
        "{}",
        item.source
    );
    for moved in ["/a/b", "/a/b/", "/a/b/c"] {
        assert!(affects(item, moved), "{moved}");
    }
    for kept in ["/a", "/a/c", "/a/bc", "/b"] {
        assert!(!affects(item, kept), "{kept}");
    }
    assert_eq!(item.examples[0].path, "/a/b");
    assert!(
        item.before
            .as_deref()
            .is_some_and(|b| b.contains("spec.rules[0]"))
    );
    assert!(
        item.after
            .as_deref()
            .is_some_and(|a| a.contains("spec.rules[1]"))
    );
    assert_valid_output(&migration);
}

#[test]
fn routes_already_in_precedence_order_have_no_route_order_drift() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /a/b}}]\n{}    - matchers: [{{prefix: /a}}]\n{}    - matchers: [{{exact: /b}}]\n{}",
        single("apps-b-80"),
        single("apps-a-80"),
        single("apps-b-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    assert!(items(&migration, DriftKind::RouteOrder).is_empty());
    let route = migration.http_routes().next().expect("a route");
    assert_eq!(route.spec.rules.len(), 3);
    assert_eq!(
        route.spec.rules[2].matches[0].path.match_type,
        PathMatchType::Exact
    );
    // Discovered upstreams resolve to the input's Services.
    assert_eq!(route.spec.rules[0].backend_refs[0].name, "b");
    assert!(
        items(&migration, DriftKind::Backend)
            .iter()
            .any(|i| i.description.contains("discovery"))
    );
}

#[test]
fn retries_and_timeouts_map_to_retry_and_timeouts() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /}}]\n{}      options:\n        timeout: 2s\n        retries: {{retryOn: 'gateway-error,retriable-4xx', numRetries: 3, perTryTimeout: 0.5s}}\n",
        single("apps-a-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let rule = &migration.http_routes().next().expect("a route").spec.rules[0];
    let retry = rule.retry.as_ref().expect("retry");
    assert_eq!(retry.codes, [409, 502, 503, 504]);
    assert_eq!(retry.attempts, Some(3));
    assert_eq!(retry.backoff.as_ref().map(|d| d.as_str()), Some("25ms"));
    let timeouts = rule.timeouts.as_ref().expect("timeouts");
    assert_eq!(timeouts.request.as_ref().map(|d| d.as_str()), Some("2s"));
    assert_eq!(
        timeouts.backend_request.as_ref().map(|d| d.as_str()),
        Some("500ms")
    );
    let retry_items = items(&migration, DriftKind::Retry);
    assert_eq!(retry_items.len(), 1);
    assert_eq!(
        retry_items[0].mapping,
        Mapping::Exact,
        "{:#?}",
        retry_items[0]
    );
    assert_eq!(
        items(&migration, DriftKind::Timeout)[0].mapping,
        Mapping::Exact
    );
    assert_valid_output(&migration);
}

#[test]
fn a_5xx_retry_keeps_every_code_and_names_the_connection_failures() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /api}}]\n{}      options:\n        timeout: 1s\n        retries: {{retryOn: 5xx, perTryTimeout: 3s}}\n",
        single("apps-a-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let rule = &migration.http_routes().next().expect("a route").spec.rules[0];
    let retry = rule.retry.as_ref().expect("retry");
    assert_eq!(retry.codes, (500..=599).collect::<Vec<u16>>());
    assert_eq!(retry.attempts, Some(1), "Envoy's default numRetries");
    // A try cannot outlast the request: the CRD requires backendRequest <= request.
    let timeouts = rule.timeouts.as_ref().expect("timeouts");
    assert_eq!(
        timeouts.backend_request.as_ref().map(|d| d.as_str()),
        Some("1s")
    );
    let item = items(&migration, DriftKind::Retry)[0];
    assert_eq!(item.mapping, Mapping::Approximate);
    assert!(
        item.description.contains("connection failures"),
        "{}",
        item.description
    );
    assert!(affects(item, "/api/x") && !affects(item, "/other"));
    assert_valid_output(&migration);
}

#[test]
fn no_timeout_writes_envoys_default() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /}}]\n{}",
        single("apps-a-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let rule = &migration.http_routes().next().expect("a route").spec.rules[0];
    assert_eq!(
        rule.timeouts
            .as_ref()
            .and_then(|t| t.request.as_ref())
            .map(|d| d.as_str()),
        Some("15s")
    );
    assert!(rule.retry.is_none());
    assert_eq!(
        items(&migration, DriftKind::ImplicitDefault)[0].mapping,
        Mapping::Exact
    );
}

#[test]
fn an_unmappable_option_is_named_with_its_field() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /}}]\n{}      options:\n        cors: {{allowOrigin: ['*']}}\n        regexRewrite: {{pattern: {{regex: '^/a/(.*)'}}, substitution: '/\\1'}}\n",
        single("apps-a-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let unmappable: Vec<_> = migration
        .report
        .items
        .iter()
        .filter(|i| i.mapping == Mapping::Unmappable)
        .collect();
    assert!(
        unmappable.iter().any(|i| i.source == "user/vs.yaml: VirtualService gloo-system/vs spec.virtualHost.routes[0].options.cors"),
        "{unmappable:#?}"
    );
    assert!(
        unmappable
            .iter()
            .any(|i| i.source.ends_with("routes[0].options.regexRewrite")),
        "{unmappable:#?}"
    );
    assert!(unmappable.iter().all(|i| i.target.is_none()));
}

#[test]
fn matchers_headers_and_options_become_matches_and_filters() {
    let text = with_routes(&format!(
        "    - matchers:\n      - exact: /login\n        methods: [GET, POST]\n        headers: [{{name: x-canary, value: 'true'}}, {{name: x-any}}]\n        queryParameters: [{{name: v, value: '2'}}]\n{}      options:\n        prefixRewrite: /auth/login\n        hostRewrite: auth.internal\n        headerManipulation:\n          requestHeadersToAdd: [{{header: {{key: x-from, value: gloo}}}}, {{header: {{key: x-only, value: one}}, append: false}}]\n          requestHeadersToRemove: [x-drop]\n          responseHeadersToAdd: [{{header: {{key: x-served-by, value: colormesh}}}}]\n    - matchers: [{{prefix: /b, headers: [{{name: x-not, value: 'y', invertMatch: true}}]}}]\n{}",
        single("apps-a-80"),
        single("apps-b-80"),
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let route = migration.http_routes().next().expect("a route");
    assert_eq!(
        route.spec.rules.len(),
        2,
        "one rule per method (prefix rewrite splits the matches)"
    );
    let rule = &route.spec.rules[0];
    let m = &rule.matches[0];
    assert_eq!(m.path.match_type, PathMatchType::Exact);
    assert_eq!(m.method.map(|x| x.as_str()), Some("GET"));
    assert_eq!(
        route.spec.rules[1].matches[0].method.map(|x| x.as_str()),
        Some("POST")
    );
    assert_eq!(m.headers[0].match_type, ValueMatchType::Exact);
    assert_eq!(
        (m.headers[1].match_type, m.headers[1].value.as_str()),
        (ValueMatchType::RegularExpression, ".*")
    );
    assert_eq!(m.query_params[0].value, "2");
    let rewrite = rule
        .filters
        .iter()
        .find_map(|f| match f {
            HttpRouteFilter::UrlRewrite(r) => Some(r),
            _ => None,
        })
        .expect("URLRewrite");
    assert_eq!(rewrite.hostname.as_deref(), Some("auth.internal"));
    assert_eq!(
        rewrite.path,
        Some(HttpPathModifier::ReplaceFullPath("/auth/login".into()))
    );
    let request = rule
        .filters
        .iter()
        .find_map(|f| match f {
            HttpRouteFilter::RequestHeaderModifier(h) => Some(h),
            _ => None,
        })
        .expect("request headers");
    assert_eq!(request.add[0].name, "x-from");
    assert_eq!(request.set[0].name, "x-only");
    assert_eq!(request.remove, ["x-drop"]);
    assert!(
        rule.filters
            .iter()
            .any(|f| matches!(f, HttpRouteFilter::ResponseHeaderModifier(_)))
    );
    let inverted = migration
        .report
        .items
        .iter()
        .find(|i| i.source.ends_with("headers[0].invertMatch"))
        .expect("named");
    assert_eq!(inverted.mapping, Mapping::Unmappable);
    assert!(
        items(&migration, DriftKind::Headers)
            .iter()
            .all(|i| i.mapping == Mapping::Exact)
    );
    assert_valid_output(&migration);
}

#[test]
fn an_upstream_nobody_can_resolve_is_unmappable_with_the_reason() {
    let text = with_routes(&format!(
        "    - matchers: [{{prefix: /}}]\n{}",
        single("apps-missing-80")
    ));
    let migration = migrate_text("user/vs.yaml", &text);
    let item = items(&migration, DriftKind::Backend)
        .into_iter()
        .find(|i| i.mapping == Mapping::Unmappable)
        .expect("the unresolved upstream");
    assert!(
        item.source
            .ends_with("routes[0].routeAction.single.upstream"),
        "{}",
        item.source
    );
    assert!(
        item.description.contains("gloo-system/apps-missing-80"),
        "{}",
        item.description
    );
    assert!(
        item.description.contains("discovery"),
        "{}",
        item.description
    );
    assert!(
        migration.http_routes().next().expect("a route").spec.rules[0]
            .backend_refs
            .is_empty()
    );
}

#[test]
fn a_multi_destination_keeps_its_weights_and_a_direct_response_is_unmappable() {
    let text = with_routes(
        "    - matchers: [{prefix: /split}]\n      routeAction:\n        multi:\n          destinations:\n          - {destination: {upstream: {name: apps-a-80, namespace: gloo-system}}, weight: 3}\n          - {destination: {upstream: {name: apps-b-80, namespace: gloo-system}}}\n    - matchers: [{exact: /teapot}]\n      directResponseAction: {status: 418, body: tea}\n",
    );
    let migration = migrate_text("user/vs.yaml", &text);
    let route = migration.http_routes().next().expect("a route");
    assert_eq!(route.spec.rules.len(), 1);
    let weights: Vec<(&str, u32)> = route.spec.rules[0]
        .backend_refs
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(
        weights,
        [("a", 3), ("b", 0)],
        "an unset Gloo weight is 0, written explicitly"
    );
    let direct = migration
        .report
        .items
        .iter()
        .find(|i| i.source.ends_with("directResponseAction"))
        .expect("named");
    assert_eq!(direct.mapping, Mapping::Unmappable);
    assert!(affects(direct, "/teapot") && !affects(direct, "/teapot/x"));
    assert_valid_output(&migration);
}

#[test]
fn domains_become_hostnames() {
    let text = format!(
        "{SERVICES}---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: [shop.example.com, '*.example.org', 'api.example.com:8443', 'bad_host']\n    routes:\n    - matchers: [{{prefix: /}}]\n{}",
        single("apps-a-80")
    );
    let migration = migrate_text("user/vs.yaml", &text);
    let route = migration.http_routes().next().expect("a route");
    assert_eq!(
        route.spec.hostnames,
        ["shop.example.com", "*.example.org", "api.example.com"]
    );
    let hostname = items(&migration, DriftKind::Hostname);
    assert!(
        hostname
            .iter()
            .any(|i| i.mapping == Mapping::Unmappable && i.source.ends_with("domains[3]"))
    );
    assert!(
        hostname
            .iter()
            .any(|i| i.mapping == Mapping::Approximate && i.source.ends_with("domains[2]"))
    );
    assert_valid_output(&migration);
}

#[test]
fn a_catch_all_virtual_service_now_takes_what_a_narrower_one_did_not_route() {
    let text = format!(
        "{SERVICES}---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: shop, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: [shop.example.com]\n    routes:\n    - matchers: [{{prefix: /cart}}]\n{}---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: all, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{{prefix: /}}]\n{}",
        single("apps-a-80"),
        single("apps-b-80")
    );
    let migration = migrate_text("user/vs.yaml", &text);
    let overlap: Vec<_> = items(&migration, DriftKind::Hostname)
        .into_iter()
        .filter(|i| i.mapping == Mapping::Approximate)
        .collect();
    assert_eq!(overlap.len(), 1, "{overlap:#?}");
    let none = Default::default();
    assert!(overlap[0].affects.iter().any(|p| p.matches(
        "GET",
        "shop.example.com",
        "/help",
        &none
    )));
    assert!(!overlap[0].affects.iter().any(|p| p.matches(
        "GET",
        "other.example.com",
        "/help",
        &none
    )));
    assert_eq!(migration.http_routes().count(), 2);
    assert_valid_output(&migration);
}

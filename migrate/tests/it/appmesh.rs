//! App Mesh routers one construct at a time: priorities, matches, explicit retries and timeouts.

use migrate::{DriftKind, Mapping};

use crate::{affects, assert_valid_output, items, migrate_text};

fn mesh(routes: &str) -> String {
    let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
    for name in ["api", "api-v1", "api-v2"] {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{ports: [{{port: 8080, name: http}}], selector: {{app: {name}}}}}\n---\napiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualNode\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]\n  serviceDiscovery: {{dns: {{hostname: {name}.shop.svc.cluster.local}}}}\n"
        ));
    }
    text.push_str(&format!(
        "---\napiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualRouter\nmetadata: {{name: api-router, namespace: shop}}\nspec:\n  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]\n  routes:\n{routes}---\napiVersion: appmesh.k8s.aws/v1beta2\nkind: VirtualService\nmetadata: {{name: api.shop, namespace: shop}}\nspec:\n  awsName: api.shop\n  provider: {{virtualRouter: {{virtualRouterRef: {{name: api-router}}}}}}\n"
    ));
    text
}

#[test]
fn routes_in_priority_order_and_explicit_retries_and_timeouts() {
    let text = mesh(
        "  - name: v2\n    priority: 2\n    httpRoute:\n      match: {prefix: /v2, headers: [{name: x-beta, match: {prefix: yes}}], method: POST}\n      action: {weightedTargets: [{virtualNodeRef: {name: api-v2}, weight: 1}]}\n      retryPolicy: {maxRetries: 4, perRetryTimeout: {unit: ms, value: 250}, httpRetryEvents: [gateway-error], tcpRetryEvents: [connection-error]}\n      timeout: {perRequest: {unit: s, value: 3}}\n  - name: all\n    priority: 1\n    httpRoute:\n      match: {prefix: /}\n      action: {weightedTargets: [{virtualNodeRef: {name: api-v1}, weight: 9}, {virtualNodeRef: {name: api-v2}, weight: 1}]}\n",
    );
    let migration = migrate_text("user/mesh.yaml", &text);
    let route = migration.http_routes().next().expect("the GAMMA route");
    assert_eq!(route.metadata.namespace.as_deref(), Some("shop"));
    assert!(route.spec.parent_refs[0].is_service());
    assert_eq!(route.spec.parent_refs[0].name, "api");
    // Priority 1 first.
    let first = &route.spec.rules[0];
    let weights: Vec<(&str, u32)> = first
        .backend_refs
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(weights, [("api-v1", 9), ("api-v2", 1)]);
    let second = &route.spec.rules[1];
    let m = &second.matches[0];
    assert_eq!(m.method.map(|x| x.as_str()), Some("POST"));
    assert_eq!(m.headers[0].value, "yes.*");
    let retry = second.retry.as_ref().expect("retry");
    assert_eq!(
        (retry.codes.as_slice(), retry.attempts),
        (&[502, 503, 504][..], Some(4))
    );
    let timeouts = second.timeouts.as_ref().expect("timeouts");
    assert_eq!(timeouts.request.as_ref().map(|d| d.as_str()), Some("3s"));
    assert_eq!(
        timeouts.backend_request.as_ref().map(|d| d.as_str()),
        Some("250ms")
    );
    let retry_item = items(&migration, DriftKind::Retry)[0];
    assert_eq!(
        retry_item.mapping,
        Mapping::Approximate,
        "connection-error has no code"
    );
    // App Mesh tried `/` (priority 1) first; Gateway API ranks the longer /v2 prefix above it.
    let order = items(&migration, DriftKind::RouteOrder);
    let moved = order
        .iter()
        .find(|i| i.mapping == Mapping::Approximate)
        .expect("route order drift");
    let none = Default::default();
    assert!(
        moved
            .affects
            .iter()
            .any(|p| p.matches("POST", "api.shop", "/v2/x", &none))
    );
    assert!(
        !moved
            .affects
            .iter()
            .any(|p| p.matches("GET", "api.shop", "/v2/x", &none))
    );
    // The string prefix /v2 also matched /v2beta.
    let glued = items(&migration, DriftKind::PrefixMatch);
    assert!(
        glued.iter().any(|i| i
            .affects
            .iter()
            .any(|p| p.matches("POST", "api.shop", "/v2beta", &none))),
        "{glued:#?}"
    );
    assert!(
        !glued.iter().any(|i| affects(i, "/v2beta")),
        "only calls to api.shop"
    );
    assert_valid_output(&migration);
}

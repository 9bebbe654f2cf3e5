//! Validates the walkthrough manifests and the model's own serialised values against the real
//! CRD schemas (Gloo Edge 1.x, App Mesh controller v1beta2, Gateway API v1.6.1) kept in
//! `../shared/schemas`, through `test_support::CrdSchemas` (which says how the OpenAPI schemas
//! are translated to JSON Schema).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::appmesh::{
    self, Duration as MeshDuration, HttpRoute, HttpRouteMatch, PortMapping, PortProtocol,
};
use model::gloo::{self, Action, Matcher, ProtoDuration, RouteAction, RouteOptions};
use model::{Resource, load_dir};
use serde_json::{Value, json};
use test_support::{CrdSchemas as Schemas, workspace_root};

fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable manifests dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("manifests"), &mut files);
    files.sort();
    files
}

/// The documents of a file as written, not as the model reads them.
fn raw_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("valid YAML"))
        .filter(|value: &Value| !value.is_null())
        .collect()
}

#[test]
fn walkthrough_manifests_match_the_crds() {
    let schemas = Schemas::load();
    let mut checked = 0;
    for file in manifest_files() {
        for (index, document) in raw_documents(&file).iter().enumerate() {
            if schemas.check(document).is_some() {
                schemas.assert_valid(&format!("{} document {index}", file.display()), document);
                checked += 1;
            }
        }
    }
    // colorapp: mesh 1 + 4 tellers x VN + router + VS + gateway VN/VS + tcpecho VN/VS = 11;
    // colorgatewayv2: 2; gloo: 3 x (UG + VS) + 1 VS = 7. Plus conformance/: mesh 1 + 3 teller VNs
    // + gateway VN + VS + 2 routers + Gloo VS = 9; gloo 28 VSs + 5 UGs = 33. Plus gateway-api/:
    // the GAMMA HTTPRoute 1, GatewayClass + Gateway + HTTPRoute 3, three canary HTTPRoutes 3 = 7;
    // conformance/gateway-api: GatewayClass + Gateway + 31 HTTPRoutes (5 of them in gamma/, 3
    // with a Service parent) + 3 ReferenceGrants = 36.
    assert_eq!(checked, 20 + 42 + 7 + 36);
}

#[test]
fn model_serialisation_of_the_manifests_matches_the_crds() {
    let schemas = Schemas::load();
    let parsed = load_dir(&workspace_root().join("manifests")).expect("manifests readable");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut checked = 0;
    for loaded in &parsed.resources {
        let value = serde_json::to_value(&loaded.resource).expect("serialisable");
        if schemas.check(&value).is_some() {
            schemas.assert_valid(&loaded.resource.key().to_string(), &value);
            checked += 1;
        }
    }
    // As above: 20 walkthrough + 42 conformance + 7 + 36 Gateway API documents.
    assert_eq!(checked, 20 + 42 + 7 + 36);
}

fn meta(name: &str, namespace: &str) -> model::k8s::ObjectMeta {
    model::k8s::ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

#[test]
fn fully_populated_model_values_match_the_crds() {
    let schemas = Schemas::load();

    let route: gloo::Route = serde_norway::from_str(
        r#"
name: everything
matchers:
- regex: '/color/.*'
  caseSensitive: false
  headers: [{name: x-canary, value: 'true', regex: false, invertMatch: true}]
  queryParameters: [{name: v, value: '2'}]
  methods: [GET]
routeAction:
  multi:
    destinations:
    - destination: {upstream: {name: appmesh-demo-colorgateway-9080, namespace: gloo-system}}
      weight: 0
    - destination: {upstream: {name: appmesh-demo-colorgatewayv2-9080}}
options:
  prefixRewrite: /color
  regexRewrite: {pattern: {regex: '^/a/(.*)'}, substitution: '/\1'}
  timeout: 1.5s
  retries: {retryOn: 5xx, numRetries: 2, perTryTimeout: 0.25s}
  headerManipulation:
    requestHeadersToAdd: [{header: {key: x-from, value: gloo}, append: true}]
    requestHeadersToRemove: [x-drop]
    responseHeadersToAdd: [{header: {key: x-served-by, value: colormesh}}]
    responseHeadersToRemove: [server]
"#,
    )
    .expect("route parses");
    let direct = gloo::Route {
        name: None,
        matchers: vec![Matcher::prefix("/")],
        action: Action::DirectResponse(gloo::DirectResponseAction {
            status: 404,
            body: Some("none".into()),
        }),
        options: Some(RouteOptions {
            timeout: Some(ProtoDuration(std::time::Duration::ZERO)),
            ..Default::default()
        }),
    };
    let mut vs = gloo::VirtualService::new(
        "colorgateway",
        gloo::VirtualServiceSpec {
            display_name: Some("colorgateway".into()),
            virtual_host: gloo::VirtualHost {
                domains: vec!["*".into()],
                routes: vec![route, direct],
            },
        },
    );
    vs.metadata.namespace = Some("gloo-system".into());
    gloo::GlooStatus::set_on(
        &mut vs.status,
        "gloo-system",
        gloo::State::Accepted,
        None,
        "gateway",
    );

    let mut upstream = gloo::Upstream::new(
        "static",
        gloo::UpstreamSpec {
            upstream_type: gloo::UpstreamType::Static(gloo::StaticUpstream {
                hosts: vec![gloo::StaticHost {
                    addr: "127.0.0.1".into(),
                    port: 9080,
                }],
            }),
            discovery_metadata: Some(gloo::DiscoveryMetadata {
                labels: BTreeMap::from([("app".into(), "x".into())]),
            }),
        },
    );
    upstream.metadata = meta("static", "gloo-system");
    gloo::GlooStatus::set_on(
        &mut upstream.status,
        "gloo-system",
        gloo::State::Rejected,
        Some("bad".into()),
        "gloo",
    );

    let group = gloo::UpstreamGroup::new(
        "upstreamgroup-gateway",
        gloo::UpstreamGroupSpec {
            destinations: vec![gloo::WeightedDestination::upstream(
                "gloo-system",
                "static",
                1,
            )],
        },
    );

    let router: appmesh::VirtualRouter = serde_norway::from_str(
        r#"
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {name: colorteller-router, namespace: appmesh-demo}
spec:
  awsName: colorteller-router_appmesh-demo
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  routes:
  - name: color-route
    priority: 10
    httpRoute:
      match:
        prefix: /
        path: {exact: /color}
        headers: [{name: x-c, match: {range: {start: 1, end: 9}}, invert: false}, {name: y, match: {suffix: z}}]
        method: GET
        scheme: http
        queryParameters: [{name: q, match: {exact: a}}]
        port: 9080
      action:
        weightedTargets:
        - {virtualNodeRef: {name: colorteller}, weight: 0, port: 9080}
        - {virtualNodeRef: {name: colorteller-blue, namespace: appmesh-demo}, weight: 100}
      retryPolicy:
        httpRetryEvents: [server-error, gateway-error]
        tcpRetryEvents: [connection-error]
        maxRetries: 3
        perRetryTimeout: {unit: ms, value: 250}
      timeout: {perRequest: {unit: s, value: 15}, idle: {unit: ms, value: 1000}}
  - name: tcp
    tcpRoute:
      action: {weightedTargets: [{virtualNodeRef: {name: tcpecho}, weight: 1}]}
      match: {port: 2701}
      timeout: {idle: {unit: s, value: 30}}
"#,
    )
    .expect("router parses");

    let node: appmesh::VirtualNode = serde_norway::from_str(
        r#"
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: colorteller, namespace: appmesh-demo}
spec:
  podSelector: {matchLabels: {app: colorteller, version: white}}
  listeners:
  - portMapping: {port: 9080, protocol: http}
    healthCheck: {healthyThreshold: 2, intervalMillis: 5000, path: /ping, protocol: http, timeoutMillis: 2000, unhealthyThreshold: 2}
    timeout: {http: {perRequest: {unit: s, value: 5}}, tcp: {idle: {unit: s, value: 5}}}
  serviceDiscovery: {dns: {hostname: colorteller.appmesh-demo.svc.cluster.local, responseType: ENDPOINTS}}
  backends: [{virtualService: {virtualServiceRef: {name: tcpecho.appmesh-demo, namespace: appmesh-demo}}}]
  meshRef: {name: color-mesh, uid: 0d3c-1}
"#,
    )
    .expect("node parses");

    let mut mesh_vs = appmesh::VirtualService::new(
        "colorteller.appmesh-demo",
        appmesh::VirtualServiceSpec {
            aws_name: Some("colorteller.appmesh-demo".into()),
            provider: Some(appmesh::Provider::VirtualRouter(appmesh::Reference::named(
                "colorteller-router",
            ))),
            mesh_ref: None,
        },
    );
    mesh_vs.metadata.namespace = Some("appmesh-demo".into());

    let mesh = appmesh::Mesh::new(
        "color-mesh",
        appmesh::MeshSpec {
            egress_filter: Some(appmesh::EgressFilter {
                type_: appmesh::EgressFilterType::DropAll,
            }),
            ..Default::default()
        },
    );

    // A hand-built route too, so constructors stay in step with the schema.
    let mut built_router = router.clone();
    built_router.spec.routes.push(appmesh::Route {
        name: "built".into(),
        priority: None,
        spec: appmesh::RouteSpec::Http(HttpRoute {
            match_: HttpRouteMatch {
                prefix: Some("/".into()),
                ..Default::default()
            },
            action: appmesh::RouteAction {
                weighted_targets: vec![appmesh::WeightedTarget::node("colorteller", 1)],
            },
            retry_policy: None,
            timeout: Some(appmesh::HttpTimeout {
                per_request: Some(MeshDuration::millis(500)),
                idle: None,
            }),
        }),
    });
    built_router.spec.listeners.push(appmesh::RouterListener {
        port_mapping: PortMapping {
            port: 2701,
            protocol: PortProtocol::Tcp,
        },
    });

    let resources = [
        Resource::GlooVirtualService(Box::new(vs)),
        Resource::Upstream(Box::new(upstream)),
        Resource::UpstreamGroup(Box::new(group)),
        Resource::VirtualRouter(Box::new(built_router)),
        Resource::VirtualNode(Box::new(node)),
        Resource::AppMeshVirtualService(Box::new(mesh_vs)),
        Resource::Mesh(Box::new(mesh)),
    ];
    for resource in &resources {
        let value = serde_json::to_value(resource).expect("serialisable");
        schemas.assert_valid(&resource.key().to_string(), &value);
    }
    // Sanity: the route action kept its weights, including the explicit 0.
    let Resource::GlooVirtualService(vs) = &resources[0] else {
        unreachable!()
    };
    let Action::Route(RouteAction::Multi(multi)) = &vs.spec.virtual_host.routes[0].action else {
        panic!("multi expected")
    };
    assert_eq!(multi.destinations[0].weight, Some(0));
}

#[test]
fn the_validator_rejects_wrong_documents() {
    let schemas = Schemas::load();
    let ug = |weight: Value| {
        json!({
            "apiVersion": "gloo.solo.io/v1", "kind": "UpstreamGroup",
            "metadata": {"name": "g", "namespace": "gloo-system"},
            "spec": {"destinations": [{"destination": {"upstream": {"name": "u"}}, "weight": weight}]}
        })
    };
    schemas.assert_valid("null weight (nullable)", &ug(Value::Null));
    schemas.assert_valid("weight 0", &ug(json!(0)));
    schemas.assert_rejected(
        "string weight",
        &ug(json!("eighty")),
        "/spec/destinations/0/weight",
    );
    schemas.assert_rejected(
        "negative weight",
        &ug(json!(-1)),
        "/spec/destinations/0/weight",
    );

    // The 0.x `matcher:` (singular) and `routePlugins:` shapes are typos in 1.x.
    let old_vs = json!({
        "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
        "metadata": {"name": "colorgateway", "namespace": "gloo-system"},
        "spec": {"virtualHost": {"domains": ["*"], "routes": [{
            "matcher": {"prefix": "/appmesh/color"},
            "routeAction": {"single": {"upstream": {"name": "appmesh-demo-colorgateway-9080", "namespace": "gloo-system"}}},
            "routePlugins": {"prefixRewrite": {"prefixRewrite": "/color"}}
        }]}}
    });
    schemas.assert_rejected("0.x route shape", &old_vs, "/spec/virtualHost/routes/0");

    // Kubernetes int-or-string fields accept both forms.
    let reset_header = |format: Value| {
        json!({
            "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": "v", "namespace": "gloo-system"},
            "spec": {"virtualHost": {"routes": [{"options": {"retries": {"rateLimitedRetryBackOff": {
                "resetHeaders": [{"name": "retry-after", "format": format}]
            }}}}]}}
        })
    };
    schemas.assert_valid("int-or-string as integer", &reset_header(json!(0)));
    schemas.assert_valid("int-or-string as string", &reset_header(json!("SECONDS")));
    schemas.assert_rejected(
        "int-or-string as list",
        &reset_header(json!([1])),
        "/spec/virtualHost/routes/0",
    );

    let router = |weight: Value, protocol: &str| {
        json!({
            "apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter",
            "metadata": {"name": "r", "namespace": "appmesh-demo"},
            "spec": {"listeners": [{"portMapping": {"port": 9080, "protocol": protocol}}],
                     "routes": [{"name": "a", "httpRoute": {"match": {"prefix": "/"},
                        "action": {"weightedTargets": [{"virtualNodeRef": {"name": "n"}, "weight": weight}]}}}]}
        })
    };
    schemas.assert_valid("router", &router(json!(100), "http"));
    schemas.assert_rejected(
        "weight over 100",
        &router(json!(101), "http"),
        "/spec/routes/0/httpRoute/action/weightedTargets/0/weight",
    );
    schemas.assert_rejected(
        "unknown protocol",
        &router(json!(1), "udp"),
        "/spec/listeners/0/portMapping/protocol",
    );

    let mesh = json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "Mesh", "metadata": {"name": "m"},
                      "spec": {"egressFilter": {"type": "SOMETIMES"}}});
    schemas.assert_rejected("bad egress filter", &mesh, "/spec/egressFilter/type");

    let node = json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode", "metadata": {"name": "n"},
                      "spec": {"serviceDiscovery": {"dns": {"hostName": "colorteller.appmesh-demo"}}}});
    schemas.assert_rejected(
        "v1beta1 hostName casing",
        &node,
        "/spec/serviceDiscovery/dns",
    );
}

/// Every Gateway API field the model reads, serialised by the model, is valid under the official
/// CRDs (v1.6.1; the experimental HTTPRoute for `retry`).
#[test]
fn fully_populated_gateway_api_values_match_the_crds() {
    let schemas = Schemas::load();
    let documents = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: colormesh}
spec:
  controllerName: colormesh.dev/gateway-proxy
  description: gateway-proxy and envoy-control
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: gateway}
spec:
  gatewayClassName: colormesh
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels: {team: color}
          matchExpressions: [{key: env, operator: In, values: [dev]}]
      kinds: [{kind: HTTPRoute}]
  - name: plain
    port: 8080
    protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: colorgateway, namespace: appmesh-demo}
spec:
  parentRefs:
  - {name: edge, namespace: gateway, sectionName: http, port: 80}
  - {group: "", kind: Service, name: colorteller, port: 9080}
  hostnames: [color.example.com]
  rules:
  - name: canary
    matches:
    - path: {type: PathPrefix, value: /appmesh/color}
      headers: [{name: x-canary, value: "true"}, {type: RegularExpression, name: x-v, value: "v[0-9]+"}]
      queryParams: [{type: Exact, name: v, value: "2"}]
      method: GET
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: colorgateway, path: {type: ReplacePrefixMatch, replacePrefixMatch: /color}}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-from, value: edge}]
        add: [{name: x-add, value: one}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: colormesh}]}
    backendRefs:
    - {name: colorgateway, port: 9080, weight: 80}
    - name: colorgatewayv2
      namespace: other
      port: 9080
      weight: 20
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-v2, value: "yes"}]}
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {codes: [500, 503], attempts: 2, backoff: 100ms}
  - matches:
    - path: {type: Exact, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example.com, port: 8443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-appmesh-demo, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: appmesh-demo}]
  to: [{group: "", kind: Service, name: colorgatewayv2}]
"#;
    let parsed = model::parse_documents(documents, Path::new("gateway-api.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.resources.len(), 4);
    for loaded in &parsed.resources {
        assert!(
            loaded.ignored_fields.is_empty(),
            "{}: the model dropped {:?}",
            loaded.resource.key(),
            loaded.ignored_fields
        );
        let value = serde_json::to_value(&loaded.resource).expect("serialisable");
        schemas.assert_valid(&loaded.resource.key().to_string(), &value);
    }
    // The v1beta1 ReferenceGrant is read as the v1 kind.
    assert!(matches!(
        parsed.resources[3].resource,
        Resource::ReferenceGrant(_)
    ));
}

#[test]
fn the_validator_rejects_wrong_gateway_api_documents() {
    let schemas = Schemas::load();
    let route = |rule: Value| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "edge"}], "rules": [rule]}
        })
    };
    schemas.assert_valid(
        "weighted rule",
        &route(json!({"backendRefs": [{"name": "svc", "port": 80, "weight": 0}]})),
    );
    schemas.assert_rejected(
        "Gloo-style prefix type",
        &route(json!({"matches": [{"path": {"type": "Prefix", "value": "/"}}]})),
        "/spec/rules/0/matches/0/path/type",
    );
    schemas.assert_rejected(
        "negative weight",
        &route(json!({"backendRefs": [{"name": "svc", "port": 80, "weight": -1}]})),
        "/spec/rules/0/backendRefs/0/weight",
    );
    schemas.assert_rejected(
        "unknown filter type",
        &route(json!({"filters": [{"type": "PrefixRewrite"}]})),
        "/spec/rules/0/filters/0/type",
    );
}

/// The loader refuses what the CRD's enumerations and CEL rules refuse, naming the field.
#[test]
fn the_loader_names_the_field_of_a_wrong_gateway_api_value() {
    let route = |rule: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: demo}}\nspec:\n  rules:\n  - {rule}\n"
        )
    };
    let error = |text: String| {
        let parsed = model::parse_documents(&text, Path::new("routes.yaml"));
        assert!(parsed.resources.is_empty(), "accepted: {text}");
        parsed.errors[0].to_string()
    };
    let wrong_type = error(route("matches: [{path: {type: Prefix, value: /}}]"));
    assert!(
        wrong_type.starts_with("routes.yaml:")
            && wrong_type.contains("HTTPRoute demo/r")
            && wrong_type.contains("spec.rules[0].matches[0].path.type")
            && wrong_type.contains("PathPrefix"),
        "{wrong_type}"
    );
    let filter = error(route("filters: [{type: URLRewrite}]"));
    assert!(
        filter.contains("spec.rules[0].filters[0]") && filter.contains("urlRewrite"),
        "{filter}"
    );
    let duration = error(route("timeouts: {request: 1.5s}"));
    assert!(
        duration.contains("spec.rules[0].timeouts.request") && duration.contains("1.5s"),
        "{duration}"
    );
}

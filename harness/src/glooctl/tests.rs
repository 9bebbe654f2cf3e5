use std::path::Path;

use pretty_assertions::assert_eq;

use super::*;

fn args(line: &str) -> Vec<String> {
    shlex::split(line).expect("test command lines are well formed")
}

fn ok(store: &mut MemoryStore, line: &str) -> String {
    let output = run(&args(line), store);
    assert!(output.success, "glooctl {line} failed: {}", output.stderr);
    output.stdout
}

fn fails(store: &mut MemoryStore, line: &str) -> String {
    let output = run(&args(line), store);
    assert!(
        !output.success,
        "glooctl {line} should fail, printed {}",
        output.stdout
    );
    output.stderr
}

/// A store holding what Gloo's discovery writes for the walkthrough's colorapp manifests.
fn discovered_store() -> MemoryStore {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let parsed = model::load_paths(&[root.join("colorapp"), root.join("colorgatewayv2")])
        .expect("manifests load");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut services = Vec::new();
    let mut pods = Vec::new();
    for loaded in parsed.resources {
        match loaded.resource {
            Resource::Service(s) => services.push(*s),
            Resource::Deployment(d) => pods.extend(model::discovery::PodLabels::of_deployment(&d)),
            _ => {}
        }
    }
    let mut store = MemoryStore::new();
    for upstream in model::discovery::discover_upstreams(&services, &pods, DEFAULT_NAMESPACE) {
        let name = upstream
            .metadata
            .name
            .clone()
            .expect("discovered upstreams are named");
        store
            .apply(Resource::Upstream(Box::new(upstream)))
            .expect("upstreams are Gloo resources");
        store.set_status(
            GlooKind::Upstream,
            DEFAULT_NAMESPACE,
            &name,
            State::Accepted,
        );
    }
    store
}

fn virtual_service(store: &MemoryStore, name: &str) -> VirtualService {
    match store.get(GlooKind::VirtualService, DEFAULT_NAMESPACE, name) {
        Some(Resource::GlooVirtualService(vs)) => *vs,
        other => panic!("no virtual service {name}: {other:?}"),
    }
}

#[test]
fn the_walkthrough_route_prints_glooctls_table() {
    let mut store = discovered_store();
    let created = ok(&mut store, "create virtualservice --name colorgateway");
    assert_eq!(
        created,
        "\
+-----------------+--------------+---------+------+---------+-----------------+--------+
| VIRTUAL SERVICE | DISPLAY NAME | DOMAINS | SSL  | STATUS  | LISTENERPLUGINS | ROUTES |
+-----------------+--------------+---------+------+---------+-----------------+--------+
| colorgateway    | colorgateway | *       | none | Pending |                 |        |
+-----------------+--------------+---------+------+---------+-----------------+--------+
"
    );
    ok(
        &mut store,
        "add route --name colorgateway --path-prefix /appmesh/color --prefix-rewrite /color --dest-name appmesh-demo-colorgateway-9080",
    );
    store.set_status(
        GlooKind::VirtualService,
        DEFAULT_NAMESPACE,
        "colorgateway",
        State::Accepted,
    );
    // The seed's table, with the rules tablewriter draws around it.
    assert_eq!(
        ok(&mut store, "get vs colorgateway"),
        "\
+-----------------+--------------+---------+------+----------+-----------------+--------------------------------------------+
| VIRTUAL SERVICE | DISPLAY NAME | DOMAINS | SSL  |  STATUS  | LISTENERPLUGINS |                   ROUTES                   |
+-----------------+--------------+---------+------+----------+-----------------+--------------------------------------------+
| colorgateway    | colorgateway | *       | none | Accepted |                 | /appmesh/color ->                          |
|                 |              |         |      |          |                 | gloo-system.appmesh-demo-colorgateway-9080 |
|                 |              |         |      |          |                 | (upstream)                                 |
+-----------------+--------------+---------+------+----------+-----------------+--------------------------------------------+
"
    );
    let vs = virtual_service(&store, "colorgateway");
    let route = &vs.spec.virtual_host.routes[0];
    assert_eq!(
        route.matchers[0].path,
        Some(PathMatcher::Prefix("/appmesh/color".into()))
    );
    assert_eq!(
        route
            .options
            .as_ref()
            .and_then(|o| o.prefix_rewrite.as_deref()),
        Some("/color")
    );
    assert_eq!(
        route.action,
        Action::Route(RouteAction::Single(Destination {
            upstream: ResourceRef::new("gloo-system", "appmesh-demo-colorgateway-9080")
        }))
    );
}

#[test]
fn upstream_table_lists_discovered_upstreams() {
    let mut store = discovered_store();
    let table = ok(&mut store, "get upstream appmesh-demo-colorgateway-9080");
    assert_eq!(
        table,
        "\
+--------------------------------+------------+----------+-----------------------------+
|            UPSTREAM            |    TYPE    |  STATUS  |           DETAILS           |
+--------------------------------+------------+----------+-----------------------------+
| appmesh-demo-colorgateway-9080 | Kubernetes | Accepted | svc name:      colorgateway |
|                                |            |          | svc namespace: appmesh-demo |
|                                |            |          | port:          9080         |
|                                |            |          |                             |
+--------------------------------+------------+----------+-----------------------------+
"
    );
    let all = ok(&mut store, "get us");
    for name in [
        "appmesh-demo-colorgateway-9080",
        "appmesh-demo-colorgateway-v1-9080",
        "appmesh-demo-colorgatewayv2-v2-9080",
        "appmesh-demo-tcpecho-2701",
    ] {
        assert!(
            all.contains(&format!("| {name} ")),
            "{name} missing from\n{all}"
        );
    }
    assert_eq!(ok(&mut store, "get upstreams"), all);
    assert!(
        fails(&mut store, "get upstream nope").contains("upstream gloo-system.nope does not exist")
    );
}

#[test]
fn upstream_group_table_matches_the_seed() {
    let mut store = discovered_store();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/gloo/upstreamgroup-80-20.yaml"),
    )
    .expect("manifest exists");
    for loaded in model::parse_documents(&text, Path::new("ug.yaml")).resources {
        store.apply(loaded.resource).expect("Gloo resources");
    }
    store.set_status(
        GlooKind::UpstreamGroup,
        DEFAULT_NAMESPACE,
        "upstreamgroup-gateway",
        State::Accepted,
    );
    let table = ok(&mut store, "get upstreamgroup --name upstreamgroup-gateway");
    assert_eq!(
        table,
        "\
+-----------------------+----------+--------------+----------------------------------+
|    UPSTREAM GROUP     |  STATUS  | TOTAL WEIGHT |             DETAILS              |
+-----------------------+----------+--------------+----------------------------------+
| upstreamgroup-gateway | Accepted | 100          | destination type: Upstream       |
|                       |          |              | namespace: gloo-system           |
|                       |          |              | name:                            |
|                       |          |              | appmesh-demo-colorgateway-9080   |
|                       |          |              | weight: 80   % total: 0.80       |
|                       |          |              |                                  |
|                       |          |              |                                  |
|                       |          |              | destination type: Upstream       |
|                       |          |              | namespace: gloo-system           |
|                       |          |              | name:                            |
|                       |          |              | appmesh-demo-colorgatewayv2-9080 |
|                       |          |              | weight: 20   % total: 0.20       |
+-----------------------+----------+--------------+----------------------------------+
"
    );
    assert_eq!(ok(&mut store, "get ug upstreamgroup-gateway"), table);
    let vs_table = ok(&mut store, "get virtualservice colorgateway");
    assert!(
        vs_table.contains("| /appmesh/color -> upstream group: |"),
        "{vs_table}"
    );
    assert!(
        vs_table.contains("| upstreamgroup-gateway.gloo-system |"),
        "{vs_table}"
    );
    assert!(
        vs_table.contains("| colorgateway    |              | *       | none | Pending |"),
        "{vs_table}"
    );
}

#[test]
fn add_route_without_name_picks_a_star_vs_or_creates_default() {
    let mut store = discovered_store();
    ok(
        &mut store,
        "add route -p /a -u appmesh-demo-colorgateway-9080",
    );
    let default = virtual_service(&store, "default");
    assert_eq!(default.spec.virtual_host.domains, vec!["*"]);
    assert_eq!(default.spec.virtual_host.routes.len(), 1);

    let mut store = discovered_store();
    ok(&mut store, "create vs --name other --domains example.com");
    ok(&mut store, "create vs --name star");
    ok(
        &mut store,
        "add route --path-exact /b --dest-name appmesh-demo-colorgateway-9080",
    );
    assert_eq!(
        virtual_service(&store, "star")
            .spec
            .virtual_host
            .routes
            .len(),
        1
    );
    assert!(
        virtual_service(&store, "other")
            .spec
            .virtual_host
            .routes
            .is_empty()
    );
    assert!(
        store
            .get(GlooKind::VirtualService, DEFAULT_NAMESPACE, "default")
            .is_none()
    );
}

#[test]
fn index_prepends_by_default_and_inserts_where_asked() {
    let mut store = discovered_store();
    ok(&mut store, "create vs --name vs");
    ok(&mut store, "add route --name vs -p /first -u up");
    ok(&mut store, "add route --name vs -p /second -u up");
    ok(&mut store, "add route --name vs -x 2 -r '/third/.*' -u up");
    ok(
        &mut store,
        "add route --name vs --index 1 -e /fourth --upstream-group-name ug -m GET -d x-canary=true -q debug=1",
    );
    let paths: Vec<String> = virtual_service(&store, "vs")
        .spec
        .virtual_host
        .routes
        .iter()
        .map(route_line)
        .collect();
    assert_eq!(
        paths,
        vec![
            "/second -> gloo-system.up (upstream)",
            "/fourth -> upstream group: ug.gloo-system",
            "/first -> gloo-system.up (upstream)",
            "/third/.* -> gloo-system.up (upstream)",
        ]
    );
    let vs = virtual_service(&store, "vs");
    let matcher = &vs.spec.virtual_host.routes[1].matchers[0];
    assert_eq!(matcher.methods, vec!["GET"]);
    assert_eq!(
        matcher.headers[0],
        HeaderMatcher {
            name: "x-canary".into(),
            value: Some("true".into()),
            regex: true,
            invert_match: false
        }
    );
    assert_eq!(matcher.query_parameters[0].name, "debug");
    assert!(
        fails(&mut store, "add route --name vs -x 9 -p /x -u up")
            .contains("--index 9 is out of range")
    );

    ok(&mut store, "remove route --name vs -x 1");
    assert_eq!(
        virtual_service(&store, "vs").spec.virtual_host.routes.len(),
        3
    );
    assert!(fails(&mut store, "remove route --name vs -x 3").contains("out of range"));
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let mut store = discovered_store();
    assert!(
        fails(&mut store, "add route --name vs -u up").contains("exactly one of --path-prefix")
    );
    let both = fails(&mut store, "add route --name vs -p /a -e /b -u up");
    assert!(both.contains("cannot be used with"), "{both}");
    assert!(fails(&mut store, "add route --name vs -p /a").contains("a destination is required"));
    assert!(
        fails(&mut store, "add route --name vs -p /a -u up -d novalue")
            .contains("--header \"novalue\": expected KEY=VALUE")
    );
    let unknown = fails(&mut store, "install gateway");
    assert!(
        unknown.contains("the local backend emulates only these glooctl commands"),
        "{unknown}"
    );
    assert!(unknown.contains("glooctl install gateway"), "{unknown}");
    ok(&mut store, "create vs --name vs");
    assert!(fails(&mut store, "create vs vs").contains("already exists"));
    assert!(
        fails(&mut store, "delete vs missing")
            .contains("virtual service gloo-system.missing does not exist")
    );
    assert!(fails(&mut store, "proxy url").contains("not running"));
}

#[test]
fn delete_and_namespaces() {
    let mut store = discovered_store();
    ok(&mut store, "create virtualservice --name colorgateway");
    ok(
        &mut store,
        "create vs -n team --name colorgateway --display-name shown",
    );
    assert_eq!(ok(&mut store, "delete vs --name colorgateway"), "");
    assert!(
        store
            .get(GlooKind::VirtualService, DEFAULT_NAMESPACE, "colorgateway")
            .is_none()
    );
    let team = ok(&mut store, "get vs -n team");
    assert!(
        team.contains("| colorgateway    | shown        |"),
        "{team}"
    );
    ok(&mut store, "delete virtualservice colorgateway -n team");
    assert!(store.list(GlooKind::VirtualService, "team").is_empty());
}

#[test]
fn yaml_and_json_output_carry_the_status() {
    let mut store = discovered_store();
    let yaml = ok(
        &mut store,
        "get upstream appmesh-demo-colorgateway-9080 -o yaml",
    );
    let parsed = model::parse_documents(&yaml, Path::new("out.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let Resource::Upstream(upstream) = &parsed.resources[0].resource else {
        panic!("{yaml}")
    };
    assert_eq!(
        upstream
            .status
            .as_ref()
            .and_then(|s| s.get(DEFAULT_NAMESPACE))
            .map(|s| s.state),
        Some(State::Accepted)
    );
    let json = ok(
        &mut store,
        "get upstream appmesh-demo-colorgateway-9080 -o json",
    );
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["spec"]["kube"]["serviceName"], "colorgateway");
    assert_eq!(
        value["status"]["statuses"]["gloo-system"]["state"],
        "Accepted"
    );
}

#[test]
fn proxy_url_and_address() {
    let mut store = MemoryStore {
        proxy_url: Some("http://127.0.0.1:41234".into()),
        ..MemoryStore::default()
    };
    assert_eq!(ok(&mut store, "proxy url"), "http://127.0.0.1:41234\n");
    assert_eq!(ok(&mut store, "proxy address"), "127.0.0.1:41234\n");
}

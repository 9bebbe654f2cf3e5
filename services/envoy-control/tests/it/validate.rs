//! `envoy --mode validate` on what envoy-control renders for the walkthrough's ingress (the 80/20
//! canary) and colorgateway's sidecar, and on the bootstrap it starts Envoy with.

use std::path::Path;

use crate::support::*;
use envoy_control::XdsFiles;
use envoy_control::render::{render, static_bootstrap};
use gateway_proxy::{ConfigSource, DirSource};
use routing::Role;

fn validate(envoy: &Path, bootstrap: &Path) {
    let output = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(bootstrap)
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("OK"),
        "{} does not validate:\n{text}\n{}",
        bootstrap.display(),
        std::fs::read_to_string(bootstrap).unwrap_or_default()
    );
}

/// Translates `dir` for `role` (no errors allowed), renders it and validates it with Envoy.
fn validate_translation(envoy: &Path, dir: &Path, role: Role) -> envoy_control::EnvoyResources {
    let outcome = DirSource::new(dir, role).load();
    assert!(outcome.load_errors.is_empty(), "{:?}", outcome.load_errors);
    for status in &outcome.translation.statuses {
        assert_eq!(status.state, model::gloo::State::Accepted, "{status:?}");
    }
    let resources = render(&outcome.translation.table).expect("renders");
    let bootstrap = dir.join("static-bootstrap.json");
    let listen = "127.0.0.1:0".parse().expect("address");
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&static_bootstrap(listen, &resources)).expect("json"),
    )
    .expect("write bootstrap");
    validate(envoy, &bootstrap);
    resources
}

#[test]
fn the_walkthrough_canary_ingress_validates() {
    let envoy = envoy_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    write_by_rename(
        dir.path(),
        "upstreams.yaml",
        &[
            static_upstream("appmesh-demo-colorgateway-9080", 18081),
            static_upstream("appmesh-demo-colorgatewayv2-9080", 18082),
        ]
        .join("---\n"),
    );
    write_by_rename(
        dir.path(),
        "canary.yaml",
        &manifest("gloo/upstreamgroup-80-20.yaml"),
    );
    let resources = validate_translation(&envoy, dir.path(), Role::ingress());
    let route = &resources.route_configuration["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["route"]["prefix_rewrite"], "/color");
    assert_eq!(
        route["route"]["weighted_clusters"]["clusters"]
            .as_array()
            .map(|clusters| clusters
                .iter()
                .map(|c| c["weight"].clone())
                .collect::<Vec<_>>()),
        Some(vec![80.into(), 20.into()])
    );
}

#[test]
fn the_colorgateway_sidecar_validates() {
    let envoy = envoy_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        "namespace.yaml",
        "mesh.yaml",
        "colorgateway.yaml",
        "colorteller.yaml",
        "tcpecho.yaml",
    ] {
        write_by_rename(dir.path(), file, &manifest(&format!("colorapp/{file}")));
    }
    let slices: Vec<String> = ["colorteller", "colorteller-blue", "colorteller-black"]
        .iter()
        .zip(18091..)
        .map(|(service, port)| endpoint_slice(service, "appmesh-demo", "http", port))
        .collect();
    write_by_rename(dir.path(), "endpoints.yaml", &slices.join("---\n"));
    let resources = validate_translation(
        &envoy,
        dir.path(),
        Role::Sidecar {
            node: "colorgateway".to_owned(),
            namespace: "appmesh-demo".to_owned(),
        },
    );
    assert!(
        resources
            .clusters
            .contains_key(envoy_control::render::PASSTHROUGH_CLUSTER),
        "the mesh is ALLOW_ALL"
    );
}

#[test]
fn the_running_bootstrap_validates() {
    let envoy = envoy_binary();
    let work = tempfile::tempdir().expect("tempdir");
    let files = XdsFiles::create(work.path()).expect("files");
    files
        .write_initial(
            "validate",
            "127.0.0.1:0".parse().expect("address"),
            &envoy_control::render::DownstreamLimits::default(),
        )
        .expect("write");
    validate(&envoy, &files.envoy_files().bootstrap);
}

#[test]
fn the_running_bootstrap_with_every_limit_validates() {
    use std::time::Duration;

    let envoy = envoy_binary();
    let work = tempfile::tempdir().expect("tempdir");
    let files = XdsFiles::create(work.path()).expect("files");
    let limits = envoy_control::DownstreamLimits {
        max_connections: Some(8),
        idle_timeout: Some(Duration::from_secs(2)),
        stream_idle_timeout: Some(Duration::from_secs(2)),
        request_headers_timeout: Some(Duration::from_secs(30)),
    };
    files
        .write_initial("validate", "127.0.0.1:0".parse().expect("address"), &limits)
        .expect("write");
    validate(&envoy, &files.envoy_files().bootstrap);
    // The listener is in the LDS file, which `--mode validate` does not read: validate it inline.
    let lds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.lds).expect("read lds")).expect("json");
    let mut listener = lds["resources"][0].clone();
    if let Some(fields) = listener.as_object_mut() {
        fields.remove("@type");
    }
    let manager = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    manager.as_object_mut().expect("manager").remove("rds");
    manager["route_config"] = envoy_control::render::empty_route_configuration();
    let bootstrap = work.path().join("static-bootstrap.json");
    let static_bootstrap = serde_json::json!({
        "node": { "id": "validate", "cluster": "colormesh" },
        "static_resources": { "listeners": [listener] },
    });
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&static_bootstrap).expect("json"),
    )
    .expect("write bootstrap");
    validate(&envoy, &bootstrap);
}

/// An unresolved destination is a cluster name missing from CDS on purpose; an inline route
/// configuration validates cluster names unless told not to, so this checks the renderer says so.
#[test]
fn an_inline_route_configuration_with_an_unresolved_destination_validates() {
    use std::sync::Arc;
    use std::time::Duration;

    use routing::table::{
        Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, Route,
        RouteAction, RouteMatcher, RouteTable, VirtualHost, WeightedClusters,
    };

    let envoy = envoy_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let destinations = WeightedClusters::new(vec![
        (Arc::new(Cluster::unresolved("missing-backend")), 1),
        (
            Arc::new(Cluster::new(
                "real",
                vec!["127.0.0.1:9".parse().expect("address")],
            )),
            1,
        ),
    ])
    .expect("weights");
    let table = RouteTable::new(
        vec![VirtualHost {
            name: "gateway-api".to_owned(),
            domains: vec!["*".to_owned()],
            routes: vec![Route {
                name: "split".to_owned(),
                matcher: RouteMatcher::path(PathMatcher::PathSeparatedPrefix("/a".to_owned())),
                action: RouteAction::Forward(ForwardAction {
                    destinations,
                    rewrite: PathRewrite::ReplacePrefixMatch("/".to_owned()),
                    timeout: Some(Duration::from_secs(15)),
                    retry: None,
                    request_headers: HeaderEdits::default(),
                    response_headers: HeaderEdits::default(),
                    host_rewrite: Some("b.example".to_owned()),
                }),
            }],
        }],
        Fallback::NotFound,
    )
    .expect("table");
    let resources = render(&table).expect("renders");
    let bootstrap = dir.path().join("static-bootstrap.json");
    std::fs::write(
        &bootstrap,
        serde_json::to_vec_pretty(&static_bootstrap(
            "127.0.0.1:0".parse().expect("address"),
            &resources,
        ))
        .expect("json"),
    )
    .expect("write bootstrap");
    validate(&envoy, &bootstrap);
}

//! envoy-control end to end with real Envoy: the binary on a config directory, in-process
//! backends, traffic through Envoy and `/status` from the control plane.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

const UPSTREAM_GROUP: &str = "UpstreamGroup gloo-system/upstreamgroup-gateway";

fn canary_yaml(resource_version: u32, blue: u32, green: u32) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: UpstreamGroup
metadata: {{name: upstreamgroup-gateway, namespace: gloo-system, resourceVersion: \"{resource_version}\"}}
spec:
  destinations:
  - destination: {{upstream: {{name: blue, namespace: gloo-system}}}}
    weight: {blue}
  - destination: {{upstream: {{name: green, namespace: gloo-system}}}}
    weight: {green}
"
    )
}

const VIRTUAL_SERVICE: &str = "apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: colorgateway, namespace: gloo-system, resourceVersion: \"1\"}
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers: [{prefix: /appmesh/color}]
      routeAction: {upstreamGroup: {name: upstreamgroup-gateway, namespace: gloo-system}}
      options: {prefixRewrite: /color}
    - matchers: [{exact: /teapot}]
      directResponseAction: {status: 418, body: short and stout}
";

async fn names_of(client: &reqwest::Client, url: &str, requests: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..requests {
        let (code, body) = get_json(client, url).await;
        assert_eq!(code, 200, "{body}");
        *seen
            .entry(body["name"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_rewrites_routes_and_reports_a_weight_change_only_once_envoy_serves_it() {
    let envoy = envoy_binary();
    let blue = Upstream::echo("blue").await;
    let green = Upstream::echo("green").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_by_rename(
        dir.path(),
        "upstreams.yaml",
        &[
            static_upstream("blue", blue.port()),
            static_upstream("green", green.port()),
        ]
        .join("---\n"),
    );
    write_by_rename(dir.path(), "vs.yaml", VIRTUAL_SERVICE);
    write_by_rename(dir.path(), "ug.yaml", &canary_yaml(1, 100, 0));

    let control = ControlPlane::start(&envoy, &["ingress"], dir.path()).await;
    let client = client();
    let first = status(&client, &control).await;
    assert_eq!(first["generation"], 1, "{first:#}");
    for entry in first["resources"].as_array().expect("resources") {
        assert_eq!(entry["state"], "Accepted", "{entry:#}");
    }
    assert_eq!(first["load_errors"], Value::Array(Vec::new()));

    // Prefix rewrite keeps the rest of the path and the query; Envoy serves, not gateway-proxy.
    let response = client
        .get(format!("http://{}/appmesh/color/clear?x=1", control.listen))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response
            .headers()
            .get("server")
            .and_then(|v| v.to_str().ok()),
        Some("envoy")
    );
    // Envoy names the generation that served the request, as gateway-proxy does.
    assert_eq!(
        response
            .headers()
            .get("x-colormesh-generation")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["target"], "/color/clear?x=1");
    assert_eq!(body["name"], "blue");
    let url = format!("http://{}/appmesh/color", control.listen);
    assert_eq!(
        names_of(&client, &url, 30).await,
        BTreeMap::from([("blue".to_owned(), 30)])
    );
    let teapot = client
        .get(format!("http://{}/teapot", control.listen))
        .send()
        .await
        .expect("request");
    assert_eq!(teapot.status().as_u16(), 418);
    assert_eq!(teapot.text().await.expect("body"), "short and stout");
    let unrouted = client
        .get(format!("http://{}/elsewhere", control.listen))
        .send()
        .await
        .expect("request");
    assert_eq!(unrouted.status().as_u16(), 404, "Envoy's own 404");

    // 100/0 becomes 0/100 (weight-0 entry kept). The moment /status reports the new version,
    // Envoy must already route by it: every request right after goes to green.
    write_by_rename(dir.path(), "ug.yaml", &canary_yaml(2, 0, 100));
    let after = wait_for(
        "the new UpstreamGroup in /status",
        Duration::from_secs(20),
        || async {
            let status = status(&client, &control).await;
            (reported_version(&status, UPSTREAM_GROUP).as_deref() == Some("2")).then_some(status)
        },
    )
    .await;
    assert_eq!(
        names_of(&client, &url, 50).await,
        BTreeMap::from([("green".to_owned(), 50)]),
        "/status reported generation {} before Envoy served it",
        after["generation"]
    );
    assert_eq!(after["load_errors"], Value::Array(Vec::new()), "{after:#}");
    let served = client.get(&url).send().await.expect("request");
    assert_eq!(
        served
            .headers()
            .get("x-colormesh-generation")
            .and_then(|v| v.to_str().ok()),
        Some(after["generation"].to_string().as_str()),
        "the generation /status reports is the one Envoy names"
    );

    // And Envoy's own config dump shows that generation for the routes.
    let (_, dump) = get_json(
        &client,
        &format!("http://{}/config_dump", control.envoy_admin),
    )
    .await;
    let generation = after["generation"]
        .as_u64()
        .expect("generation")
        .to_string();
    let routes = dump["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|config| config["@type"] == "type.googleapis.com/envoy.admin.v3.RoutesConfigDump")
        .expect("routes dump");
    assert_eq!(
        routes["dynamic_route_configs"][0]["version_info"], generation,
        "{routes:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_routes_absolute_form_requests_and_passes_unknown_hosts_through() {
    let envoy = envoy_binary();
    let tellers = [
        ("colorteller", Upstream::echo("white").await),
        ("colorteller-blue", Upstream::echo("blue").await),
        ("colorteller-black", Upstream::echo("black").await),
        ("colorteller-red", Upstream::echo("red").await),
    ];
    let outside = Upstream::echo("outside").await;
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
    let slices: Vec<String> = tellers
        .iter()
        .map(|(service, backend)| endpoint_slice(service, "appmesh-demo", "http", backend.port()))
        .collect();
    write_by_rename(dir.path(), "endpoints.yaml", &slices.join("---\n"));

    let control = ControlPlane::start(
        &envoy,
        &[
            "sidecar",
            "--node",
            "colorgateway",
            "--namespace",
            "appmesh-demo",
        ],
        dir.path(),
    )
    .await;
    let proxied = proxied_client(control.listen);
    let mut by_teller = BTreeMap::new();
    for _ in 0..90 {
        let (code, body) = get_json(&proxied, "http://colorteller.appmesh-demo:9080/").await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["target"], "/", "sent upstream in origin form");
        assert_eq!(body["host"], "colorteller.appmesh-demo:9080");
        *by_teller
            .entry(body["name"].as_str().unwrap_or("?").to_owned())
            .or_insert(0_usize) += 1;
    }
    assert_eq!(
        by_teller.keys().map(String::as_str).collect::<Vec<_>>(),
        ["black", "blue", "white"],
        "red is deployed but not routed: {by_teller:?}"
    );
    // ALLOW_ALL: a host the mesh does not know is forwarded to itself.
    let (code, body) = get_json(&proxied, &format!("http://{}/outside?q=1", outside.addr)).await;
    assert_eq!(
        (code, &body["name"]),
        (200, &Value::from("outside")),
        "{body}"
    );
    assert_eq!(body["target"], "/outside?q=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_envoy_rejects_is_reported_and_the_previous_one_keeps_serving() {
    let envoy = envoy_binary();
    let blue = Upstream::echo("blue").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_by_rename(
        dir.path(),
        "upstreams.yaml",
        &static_upstream("blue", blue.port()),
    );
    let route = |resource_version: u32, regex: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {{name: regexes, namespace: gloo-system, resourceVersion: \"{resource_version}\"}}
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers: [{{regex: '{regex}'}}]
      routeAction: {{single: {{upstream: {{name: blue, namespace: gloo-system}}}}}}
"
        )
    };
    write_by_rename(dir.path(), "vs.yaml", &route(1, "/[a-z]+"));
    let control = ControlPlane::start(&envoy, &["ingress"], dir.path()).await;
    let client = client();
    let url = format!("http://{}/abc", control.listen);
    assert_eq!(get_json(&client, &url).await.0, 200);

    // Valid for Rust's regex crate (gateway-proxy accepts it), too big for Envoy's RE2 limit.
    write_by_rename(dir.path(), "vs.yaml", &route(2, "/[a-z]{1,1000}"));
    let rejected = wait_for(
        "the rejection in /status",
        Duration::from_secs(20),
        || async {
            let status = status(&client, &control).await;
            (reported_version(&status, "VirtualService gloo-system/regexes").as_deref()
                == Some("2"))
            .then_some(status)
        },
    )
    .await;
    let entry = rejected["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|entry| entry["resource"] == "VirtualService gloo-system/regexes")
        .expect("entry")
        .clone();
    assert_eq!(entry["state"], "Rejected", "{rejected:#}");
    let reasons = entry["reasons"].to_string();
    assert!(
        reasons.contains("Envoy rejected the route configuration"),
        "{reasons}"
    );
    let load_errors = rejected["load_errors"].as_array().expect("load errors");
    assert_eq!(load_errors.len(), 1, "{rejected:#}");
    assert!(
        load_errors[0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("rds.json")),
        "{rejected:#}"
    );
    // Envoy keeps the previous routes.
    assert_eq!(get_json(&client, &url).await.0, 200);
    assert_eq!(
        get_json(&client, &format!("http://{}/ABC", control.listen))
            .await
            .0,
        404
    );

    // A valid change afterwards is served and clears the error.
    write_by_rename(dir.path(), "vs.yaml", &route(3, "/[A-Z]+"));
    let fixed = wait_for("the fix in /status", Duration::from_secs(20), || async {
        let status = status(&client, &control).await;
        (reported_version(&status, "VirtualService gloo-system/regexes").as_deref() == Some("3"))
            .then_some(status)
    })
    .await;
    assert_eq!(fixed["load_errors"], Value::Array(Vec::new()), "{fixed:#}");
    assert_eq!(
        get_json(&client, &format!("http://{}/ABC", control.listen))
            .await
            .0,
        200
    );
    assert_eq!(get_json(&client, &url).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_does_not_outlive_the_control_plane() {
    let envoy = envoy_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    write_by_rename(dir.path(), "upstreams.yaml", &static_upstream("blue", 9));

    let mut control = ControlPlane::start(&envoy, &["ingress"], dir.path()).await;
    assert!(process_alive(control.envoy_pid));
    let exit = control
        .signal_and_wait(nix::sys::signal::Signal::SIGTERM)
        .await;
    assert!(exit.success(), "{exit}\n{}", control.output());
    assert!(
        !process_alive(control.envoy_pid),
        "Envoy still runs after SIGTERM"
    );
    assert!(
        !control.work_dir.exists(),
        "the work directory {} is left behind",
        control.work_dir.display()
    );

    // Even a SIGKILLed control plane takes Envoy with it (parent-death signal via setpriv).
    if std::path::Path::new("/usr/bin/setpriv").is_file() {
        let mut control = ControlPlane::start(&envoy, &["ingress"], dir.path()).await;
        let envoy_pid = control.envoy_pid;
        control
            .signal_and_wait(nix::sys::signal::Signal::SIGKILL)
            .await;
        wait_for(
            "Envoy to die with its parent",
            Duration::from_secs(10),
            || async { (!process_alive(envoy_pid)).then_some(()) },
        )
        .await;
    }
}

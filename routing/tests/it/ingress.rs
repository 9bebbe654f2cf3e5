//! The ingress role end to end: the walkthrough's Gloo resources in a config directory, translated
//! and served by the real listeners to in-process upstreams.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gateway_proxy::watch_dir;
use http::StatusCode;
use model::discovery::{PodLabels, discover_upstreams};
use routing::Role;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::support::*;

/// The colorgateway v1 and v2 apps with Gloo's discovered upstreams and EndpointSlices pointing
/// at the two in-process backends; the upstream group file is written separately.
fn write_apps(dir: &Path, v1: &Backend, v2: &Backend) {
    let apps = [
        manifest("colorapp/namespace.yaml"),
        manifest("colorapp/colorgateway.yaml"),
        manifest("colorgatewayv2/colorgatewayv2.yaml"),
    ]
    .join("---\n");
    let parsed = model::parse_documents(&apps, Path::new("apps.yaml"));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let resources = model::ResourceSet::from_loaded(parsed.resources);
    let services: Vec<_> = resources
        .services()
        .map(|(_, service)| service.clone())
        .collect();
    let pods: Vec<_> = resources
        .deployments()
        .filter_map(|(_, deployment)| PodLabels::of_deployment(deployment))
        .collect();
    let upstreams: Vec<model::Resource> = discover_upstreams(&services, &pods, "gloo-system")
        .into_iter()
        .map(|upstream| model::Resource::Upstream(Box::new(upstream)))
        .collect();
    write_by_rename(dir, "apps.yaml", &apps);
    write_by_rename(
        dir,
        "discovered-upstreams.yaml",
        &model::to_yaml_documents(&upstreams),
    );
    write_by_rename(
        dir,
        "endpoints.yaml",
        &[
            endpoint_slice("colorgateway", "appmesh-demo", "http", v1.port()),
            endpoint_slice("colorgatewayv2", "appmesh-demo", "http", v2.port()),
        ]
        .join("---\n"),
    );
}

/// The order in which a request was started, and the backend that answered it (or why not).
type Outcome = (usize, Result<String, String>);

async fn setup() -> (tempfile::TempDir, Backend, Backend) {
    let v1 = Backend::start("colorgateway").await;
    let v2 = Backend::start("colorgatewayv2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_apps(dir.path(), &v1, &v2);
    write_by_rename(
        dir.path(),
        "gloo.yaml",
        &manifest("gloo/upstreamgroup-80-20.yaml"),
    );
    (dir, v1, v2)
}

/// `(cluster, weight)` of the first route of the first virtual host in `/config_dump`.
fn dumped_weights(dump: &Value) -> Vec<(String, u64)> {
    dump["table"]["virtual_hosts"][0]["routes"][0]["action"]["forward"]["destinations"]
        .as_array()
        .map(|destinations| {
            destinations
                .iter()
                .map(|destination| {
                    (
                        destination["cluster"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        destination["weight"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_canary_split_and_rewrite_are_served() {
    let (dir, v1, v2) = setup().await;
    let proxy = Proxy::from_dir(dir.path(), Role::ingress()).await;
    let client = client();

    let status = admin_json(&client, &proxy, "/status").await;
    for entry in status["resources"].as_array().expect("resources") {
        assert_eq!(entry["state"], "Accepted", "{entry:#}");
    }
    assert_eq!(
        status["load_errors"].as_array().map(Vec::len),
        Some(0),
        "{status:#}"
    );

    let trials = 500;
    let mut by_backend: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..trials {
        let reply = get(&client, &proxy.url("/appmesh/color")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(
            reply.json()["target"],
            "/color",
            "the matched prefix is rewritten"
        );
        *by_backend.entry(reply.backend()).or_default() += 1;
    }
    let v1_count = by_backend.get("colorgateway").copied().unwrap_or(0);
    let v2_count = by_backend.get("colorgatewayv2").copied().unwrap_or(0);
    assert_eq!(v1_count + v2_count, trials, "{by_backend:?}");
    assert!(
        within_five_sigma(v1_count, trials, 0.8),
        "80/20 split expected, got {by_backend:?}"
    );
    assert_eq!(
        v1.requests.load(Ordering::Relaxed) + v2.requests.load(Ordering::Relaxed),
        trials
    );

    let reply = get(&client, &proxy.url("/appmesh/color/clear?x=1")).await;
    assert_eq!(
        reply.json()["target"],
        "/color/clear?x=1",
        "rest of the path and the query are kept"
    );
    let reply = get(&client, &proxy.url("/appmesh/colorful")).await;
    assert_eq!(
        reply.json()["target"],
        "/colorful",
        "a plain string prefix, as Envoy matches it"
    );
    assert_eq!(
        get(&client, &proxy.url("/appmesh/ping")).await.status,
        StatusCode::NOT_FOUND
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_through_the_config_dir_under_load_loses_no_request() {
    let (dir, _v1, _v2) = setup().await;
    let proxy = Proxy::from_dir(dir.path(), Role::ingress()).await;
    let _watch = watch_dir(proxy.state.clone(), dir.path(), Duration::from_millis(50))
        .expect("watch config dir");
    let client = client();
    let before = admin_json(&client, &proxy, "/config_dump").await;
    let first_generation = before["generation"].as_u64().expect("generation");
    assert_eq!(
        dumped_weights(&before)
            .iter()
            .map(|(_, weight)| *weight)
            .collect::<Vec<_>>(),
        [80, 20]
    );

    // One client sends requests back to back; each records the backend that answered, by the
    // order in which the requests were started.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let (progress, mut progress_seen) = tokio::sync::watch::channel(0usize);
    let load = tokio::spawn({
        let (stop, started, outcomes, client, url) = (
            Arc::clone(&stop),
            Arc::clone(&started),
            Arc::clone(&outcomes),
            client.clone(),
            proxy.url("/appmesh/color"),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                let index = started.fetch_add(1, Ordering::SeqCst);
                let request = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .expect("request");
                let outcome = match send(&client, request).await {
                    Ok(reply) if reply.status == StatusCode::OK => Ok(reply.backend()),
                    Ok(reply) => Err(format!("{}: {}", reply.status, reply.body)),
                    Err(error) => Err(error),
                };
                outcomes.lock().await.push((index, outcome));
                progress.send_replace(index + 1);
            }
        }
    });
    progress_seen
        .wait_for(|done| *done >= 100)
        .await
        .expect("load is running");

    write_by_rename(
        dir.path(),
        "gloo.yaml",
        &manifest("gloo/upstreamgroup-0-100.yaml"),
    );
    let after = wait_for(
        "the new upstream group to be live",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            let proxy_admin = proxy.admin_url("/config_dump");
            async move {
                let dump = get(&client, &proxy_admin).await.json();
                let live = dump["generation"].as_u64() > Some(first_generation)
                    && dumped_weights(&dump).len() == 1;
                live.then_some(dump)
            }
        },
    )
    .await;
    assert_eq!(
        dumped_weights(&after),
        [(
            "appmesh-demo-colorgatewayv2-9080_gloo-system".to_owned(),
            100
        )]
    );
    // Requests started from now on are routed with the new configuration.
    let boundary = started.load(Ordering::SeqCst);
    progress_seen
        .wait_for(|done| *done >= boundary + 200)
        .await
        .expect("load is running");
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");

    let outcomes = outcomes.lock().await;
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        outcomes.len()
    );
    let before_change = outcomes.iter().filter(|(index, _)| *index < 100);
    assert!(
        before_change
            .clone()
            .any(|(_, outcome)| outcome.as_deref() == Ok("colorgateway")),
        "v1 served before the change"
    );
    let after_change: Vec<_> = outcomes
        .iter()
        .filter(|(index, _)| *index >= boundary)
        .collect();
    assert!(after_change.len() >= 200);
    assert!(
        after_change
            .iter()
            .all(|(_, outcome)| outcome.as_deref() == Ok("colorgatewayv2")),
        "only v2 after the change: {after_change:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_files_keep_the_last_good_configuration_and_say_why() {
    let (dir, _v1, _v2) = setup().await;
    let proxy = Proxy::from_dir(dir.path(), Role::ingress()).await;
    let client = client();
    let good_weights = dumped_weights(&admin_json(&client, &proxy, "/config_dump").await);
    assert_eq!(good_weights.len(), 2);
    let group = manifest("gloo/upstreamgroup-80-20.yaml");

    // 1. Bad YAML: the file's error is reported with its line, the old resources stay live.
    let file = write_by_rename(
        dir.path(),
        "gloo.yaml",
        &group.replace("destinations:", "destinations: [oops"),
    );
    let status = reload(&client, &proxy).await;
    let errors = status["load_errors"].as_array().expect("load errors");
    assert_eq!(errors.len(), 1, "{status:#}");
    assert_eq!(errors[0]["file"], file.to_string_lossy().as_ref());
    assert!(errors[0]["line"].as_u64().is_some(), "{status:#}");
    assert_eq!(
        dumped_weights(&admin_json(&client, &proxy, "/config_dump").await),
        good_weights
    );
    assert_eq!(
        get(&client, &proxy.url("/appmesh/color")).await.status,
        StatusCode::OK
    );

    // 2. A bad field: file, resource and field are named, in the load error and the status.
    write_by_rename(
        dir.path(),
        "gloo.yaml",
        &group.replace("weight: 80", "weight: -80"),
    );
    let status = reload(&client, &proxy).await;
    let message = status["load_errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("UpstreamGroup gloo-system/upstreamgroup-gateway: spec.destinations[0].weight: invalid type"),
        "{status:#}"
    );
    let group_status = resource_status(&status, "UpstreamGroup gloo-system/upstreamgroup-gateway");
    assert_eq!(group_status["state"], "Rejected", "{group_status:#}");
    let reason = group_status["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("gloo.yaml:")
            && reason.contains("spec.destinations[0].weight")
            && reason.contains("still served"),
        "{reason}"
    );
    assert_eq!(
        dumped_weights(&admin_json(&client, &proxy, "/config_dump").await),
        good_weights
    );

    // 3. A translation error (invalid regex): the virtual service is Rejected, its last accepted
    // version is served.
    let bad_route = group.replace(
        "        options:\n          prefixRewrite: /color\n",
        "        options:\n          prefixRewrite: /color\n      - matchers:\n          - regex: '/paint/(['\n        routeAction:\n          upstreamGroup:\n            name: upstreamgroup-gateway\n",
    );
    assert_ne!(bad_route, group, "the walkthrough file changed shape");
    write_by_rename(dir.path(), "gloo.yaml", &bad_route);
    let status = reload(&client, &proxy).await;
    assert_eq!(
        status["load_errors"].as_array().map(Vec::len),
        Some(0),
        "{status:#}"
    );
    let vs = resource_status(&status, "VirtualService gloo-system/colorgateway");
    assert_eq!(vs["state"], "Rejected", "{vs:#}");
    let reason = vs["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("gloo.yaml:")
            && reason.contains("VirtualService gloo-system/colorgateway: spec.virtualHost.routes[1].matchers[0].regex: invalid regex")
            && reason.contains("the last accepted version (read from"),
        "{reason}"
    );
    assert_eq!(
        resource_status(&status, "UpstreamGroup gloo-system/upstreamgroup-gateway")["state"],
        "Accepted"
    );
    let reply = get(&client, &proxy.url("/appmesh/color")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["target"], "/color");

    // 4. Fixed again: everything is accepted.
    write_by_rename(dir.path(), "gloo.yaml", &group);
    let status = reload(&client, &proxy).await;
    for entry in status["resources"].as_array().expect("resources") {
        assert_eq!(entry["state"], "Accepted", "{entry:#}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn status_reports_resource_versions() {
    let (dir, _v1, _v2) = setup().await;
    let group = manifest("gloo/upstreamgroup-50-50.yaml").replacen(
        "  name: upstreamgroup-gateway\n",
        "  name: upstreamgroup-gateway\n  resourceVersion: \"41\"\n",
        1,
    );
    write_by_rename(dir.path(), "gloo.yaml", &group);
    let proxy = Proxy::from_dir(dir.path(), Role::ingress()).await;
    let client = client();
    let status = admin_json(&client, &proxy, "/status").await;
    assert_eq!(
        status["load_errors"].as_array().map(Vec::len),
        Some(0),
        "{status:#}"
    );
    assert_eq!(
        resource_status(&status, "UpstreamGroup gloo-system/upstreamgroup-gateway")["resource_version"],
        "41"
    );
    assert_eq!(
        resource_status(&status, "VirtualService gloo-system/colorgateway")["resource_version"],
        Value::Null
    );
    proxy.stop().await;
}

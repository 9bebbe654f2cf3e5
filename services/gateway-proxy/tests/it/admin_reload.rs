//! The admin interface and reloads: by hand, through `POST /reload`, under load, and from a
//! watched config directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use gateway_proxy::{
    ConfigSource, DirSource, FileLoadFailure, LoadOutcome, ProxyOptions, ProxyState, watch_dir,
};
use http::{Request, StatusCode};
use http_body_util::Full;
use model::gloo::State;
use routing::table::{Cluster, PathRewrite, RouteTable};
use routing::{ResourceStatus, Role, Translation};
use serde_json::Value;

fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", reply.text()))
}

async fn admin_get(client: &TestClient, proxy: &RunningProxy, path: &str) -> Reply {
    get(client, &proxy.admin_url(path), "admin").await
}

async fn admin_post(client: &TestClient, proxy: &RunningProxy, path: &str) -> Reply {
    let request = Request::post(proxy.admin_url(path))
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(client, request).await
}

fn one_route_table(cluster: Arc<Cluster>) -> RouteTable {
    table(
        &["*"],
        vec![prefix_route("colors", "/", forward(vec![(cluster, 1)]))],
    )
}

#[tokio::test]
async fn admin_reports_readiness_status_config_and_metrics() {
    let blue = Upstream::start("blue", Behaviour::Echo).await;
    let green = Upstream::start("green", Behaviour::Echo).await;
    let proxy = RunningProxy::start(ProxyState::new(ProxyOptions::default())).await;
    let client = client();

    assert_eq!(
        admin_get(&client, &proxy, "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let status = json(&admin_get(&client, &proxy, "/status").await);
    assert_eq!(status["generation"], 0);

    let mut action = forward(vec![(blue.cluster(), 75), (green.cluster(), 25)]);
    action.rewrite = PathRewrite::Prefix("/color".to_owned());
    let generation = proxy.state.install(
        Translation {
            table: table(
                &["colors.example"],
                vec![prefix_route("gloo-system/vs/0", "/appmesh/color", action)],
            ),
            statuses: vec![ResourceStatus {
                resource: "VirtualService gloo-system/vs".to_owned(),
                state: State::Warning,
                reasons: vec!["unordered prefix routes".to_owned()],
                resource_version: Some("42".to_owned()),
                gateway_api: None,
            }],
        },
        vec![FileLoadFailure {
            file: "bad.yaml".into(),
            line: Some(3),
            message: "mapping values are not allowed".to_owned(),
        }],
    );
    assert_eq!(generation, 1);
    assert_eq!(
        admin_get(&client, &proxy, "/ready").await.status,
        StatusCode::OK
    );

    let status = json(&admin_get(&client, &proxy, "/status").await);
    assert_eq!(status["generation"], 1);
    assert_eq!(
        status["resources"][0]["resource"],
        "VirtualService gloo-system/vs"
    );
    assert_eq!(status["resources"][0]["state"], "Warning");
    assert_eq!(
        status["resources"][0]["reasons"][0],
        "unordered prefix routes"
    );
    assert_eq!(status["resources"][0]["resource_version"], "42");
    assert_eq!(status["load_errors"][0]["file"], "bad.yaml");
    assert_eq!(status["load_errors"][0]["line"], 3);

    let dump = json(&admin_get(&client, &proxy, "/config_dump").await);
    assert_eq!(dump["generation"], 1);
    let virtual_host = &dump["table"]["virtual_hosts"][0];
    assert_eq!(virtual_host["domains"][0], "colors.example");
    let route = &virtual_host["routes"][0];
    assert_eq!(route["name"], "gloo-system/vs/0");
    assert_eq!(route["match"]["path"]["prefix"], "/appmesh/color");
    let forward = &route["action"]["forward"];
    assert_eq!(forward["rewrite"]["prefix"], "/color");
    assert_eq!(forward["total_weight"], 100);
    assert_eq!(forward["destinations"][0]["cluster"], "blue");
    assert_eq!(forward["destinations"][0]["weight"], 75);
    assert_eq!(
        forward["destinations"][1]["endpoints"][0],
        green.addr.to_string()
    );
    assert_eq!(forward["timeout_ms"], 15_000);

    for _ in 0..20 {
        assert_eq!(
            get(&client, &proxy.url("/appmesh/color"), "colors.example")
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get(&client, &proxy.url("/nope"), "colors.example")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let metrics = admin_get(&client, &proxy, "/metrics").await.text();
    let count = |cluster: &str| -> u64 {
        let prefix = format!(
            "gateway_requests_total{{virtual_host=\"test-vh\",route=\"gloo-system/vs/0\",cluster=\"{cluster}\",code=\"200\"}} "
        );
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map_or(0, |value| value.parse().expect("counter value"))
    };
    assert_eq!(count("blue") + count("green"), 20, "{metrics}");
    assert_eq!(count("blue"), blue.requests.load(Ordering::SeqCst) as u64);
    assert!(
        metrics.contains(
            r#"gateway_requests_total{virtual_host="test-vh",route="",cluster="",code="404"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_upstream_request_duration_seconds_count{cluster=\"blue\"}"),
        "{metrics}"
    );

    let reload = admin_post(&client, &proxy, "/reload").await;
    assert_eq!(
        reload.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no source to reload from"
    );
    assert!(
        json(&reload)["error"]
            .as_str()
            .is_some_and(|error| error.contains("no configuration source"))
    );
    assert_eq!(
        admin_get(&client, &proxy, "/reload").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        admin_get(&client, &proxy, "/unknown").await.status,
        StatusCode::NOT_FOUND
    );
    proxy.stop().await;
}

/// A source that serves its clusters in turn, one per load.
#[derive(Debug)]
struct RotatingSource {
    clusters: Vec<Arc<Cluster>>,
    loads: usize,
}

impl ConfigSource for RotatingSource {
    fn load(&mut self) -> LoadOutcome {
        let cluster = Arc::clone(&self.clusters[self.loads % self.clusters.len()]);
        self.loads += 1;
        LoadOutcome {
            translation: Translation {
                table: one_route_table(cluster),
                statuses: vec![ResourceStatus {
                    resource: format!("Test load/{}", self.loads),
                    state: State::Accepted,
                    reasons: Vec::new(),
                    resource_version: None,
                    gateway_api: None,
                }],
            },
            load_errors: Vec::new(),
        }
    }
}

#[tokio::test]
async fn post_reload_answers_after_the_new_snapshot_is_live() {
    let blue = Upstream::start("blue", Behaviour::Echo).await;
    let green = Upstream::start("green", Behaviour::Echo).await;
    let state = ProxyState::new(ProxyOptions::default());
    state.set_source(RotatingSource {
        clusters: vec![blue.cluster(), green.cluster()],
        loads: 0,
    });
    assert_eq!(state.reload().await.expect("first load").generation, 1);
    let proxy = RunningProxy::start(state).await;
    let client = client();
    let generation_of = |reply: &crate::support::Reply| {
        reply
            .headers
            .get(gateway_proxy::forward::GENERATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let first = get(&client, &proxy.url("/"), "any").await;
    assert_eq!(first.echo().name, "blue");
    // Every answer names the generation that served it.
    assert_eq!(generation_of(&first).as_deref(), Some("1"));

    let reload = admin_post(&client, &proxy, "/reload").await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.text());
    let body = json(&reload);
    assert_eq!(body["generation"], 2);
    assert_eq!(body["resources"][0]["resource"], "Test load/2");
    // No waiting: the reload answered after the swap.
    let second = get(&client, &proxy.url("/"), "any").await;
    assert_eq!(second.echo().name, "green");
    assert_eq!(generation_of(&second).as_deref(), Some("2"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_continuous_load_fail_no_request() {
    let old = Upstream::start("old", Behaviour::Echo).await;
    let new = Upstream::start("new", Behaviour::Echo).await;
    let proxy = RunningProxy::with_table(one_route_table(old.cluster())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, served, failures, url) = (
            stop.clone(),
            served.clone(),
            failures.clone(),
            proxy.url("/"),
        );
        clients.push(tokio::spawn(async move {
            let client = client();
            let mut seen = std::collections::BTreeSet::new();
            // Bounded: stops when told, and never runs past 20 000 requests per client.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let request = Request::get(url.as_str())
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                match client.request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let body = http_body_util::BodyExt::collect(response.into_body()).await;
                        match body.map(|body| body.to_bytes()) {
                            Ok(bytes) => {
                                let echo: Echo = serde_json::from_slice(&bytes).expect("echo");
                                seen.insert(echo.name);
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            seen
        }));
    }
    let swaps = 40;
    for swap in 0..swaps {
        // Let traffic flow on each generation before the next swap.
        let target = served.load(Ordering::SeqCst) + 25;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while served.load(Ordering::SeqCst) < target && failures.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "traffic stalled");
            tokio::task::yield_now().await;
        }
        let cluster = if swap % 2 == 0 {
            new.cluster()
        } else {
            old.cluster()
        };
        proxy.state.install_table(one_route_table(cluster));
    }
    stop.store(true, Ordering::SeqCst);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        seen.extend(client.await.expect("client task"));
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
    assert!(served.load(Ordering::SeqCst) >= swaps * 25);
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["new", "old"]);
    assert_eq!(
        proxy.state.snapshot().expect("snapshot").generation,
        1 + swaps as u64
    );
    proxy.stop().await;
}

fn ingress_yaml(upstream_port: u16, prefix_rewrite: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {{name: colorgateway, namespace: gloo-system}}
spec: {{static: {{hosts: [{{addr: 127.0.0.1, port: {upstream_port}}}]}}}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {{name: colorgateway, namespace: gloo-system}}
spec:
  virtualHost:
    domains: ['*']
    routes:
    - matchers: [{{prefix: /appmesh/color}}]
      routeAction: {{single: {{upstream: {{name: colorgateway, namespace: gloo-system}}}}}}
      options: {{prefixRewrite: {prefix_rewrite}}}
"
    )
}

async fn wait_for_generation(client: &TestClient, proxy: &RunningProxy, above: u64) -> Value {
    wait_for(
        &format!("a reload past generation {above}"),
        Duration::from_secs(10),
        || async {
            let status = json(&admin_get(client, proxy, "/status").await);
            status["generation"]
                .as_u64()
                .is_some_and(|generation| generation > above)
                .then_some(status)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_directory_changes_are_watched_and_bad_files_keep_the_last_good_config() {
    let v1 = Upstream::start("colorgateway-v1", Behaviour::Echo).await;
    let v2 = Upstream::start("colorgateway-v2", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_by_rename(
        dir.path(),
        "gloo.yaml",
        &ingress_yaml(v1.addr.port(), "/color"),
    );

    let state = ProxyState::new(ProxyOptions::default());
    state.set_source(DirSource::new(dir.path(), Role::ingress()));
    let first = state.reload().await.expect("initial load").generation;
    let _watch = watch_dir(state.clone(), dir.path(), Duration::from_millis(20)).expect("watch");
    let proxy = RunningProxy::start(state).await;
    let client = client();

    let status = json(&admin_get(&client, &proxy, "/status").await);
    let resources = status["resources"].as_array().expect("resources");
    assert!(
        resources.iter().any(
            |r| r["resource"] == "VirtualService gloo-system/colorgateway"
                && r["state"] == "Accepted"
        ),
        "{status}"
    );
    let echo = get(&client, &proxy.url("/appmesh/color/clear"), "gloo")
        .await
        .echo();
    assert_eq!(
        (echo.name.as_str(), echo.target.as_str()),
        ("colorgateway-v1", "/color/clear")
    );

    // A change written by rename is picked up by the watch.
    write_by_rename(dir.path(), "gloo.yaml", &ingress_yaml(v2.addr.port(), "/"));
    let changed = wait_for_generation(&client, &proxy, first).await;
    let generation = changed["generation"].as_u64().expect("generation");
    let echo = get(&client, &proxy.url("/appmesh/color/clear"), "gloo")
        .await
        .echo();
    assert_eq!(
        (echo.name.as_str(), echo.target.as_str()),
        ("colorgateway-v2", "//clear")
    );

    // A file that no longer parses is reported and its last good resources stay in service.
    write_by_rename(
        dir.path(),
        "gloo.yaml",
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: [oops\n",
    );
    let broken = wait_for_generation(&client, &proxy, generation).await;
    let load_errors = broken["load_errors"].as_array().expect("load errors");
    assert!(
        load_errors.iter().any(|error| error["file"]
            .as_str()
            .is_some_and(|file| file.ends_with("gloo.yaml"))),
        "{broken}"
    );
    let echo = get(&client, &proxy.url("/appmesh/color/clear"), "gloo")
        .await
        .echo();
    assert_eq!(
        echo.name, "colorgateway-v2",
        "the last good configuration is still served"
    );

    // POST /reload answers with the generation it installed.
    let reload = json(&admin_post(&client, &proxy, "/reload").await);
    assert!(
        reload["generation"]
            .as_u64()
            .is_some_and(|g| g > broken["generation"].as_u64().unwrap_or(u64::MAX))
    );
    proxy.stop().await;
}

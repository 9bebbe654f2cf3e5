//! The acknowledgement gate of [`EnvoySource`], deterministically: a fake Envoy admin decides
//! when (and whether) a pushed configuration is served, and the test checks that gateway-proxy's
//! reload installs a generation only after that.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use envoy_control::render::ROUTE_CONFIGURATION_NAME;
use envoy_control::{EnvoyAdmin, EnvoySource, XdsFiles};
use gateway_proxy::{ConfigSource, LoadOutcome, ProxyOptions, ProxyState};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use model::gloo::State;
use routing::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, PathRewrite, Route, RouteAction, RouteMatcher,
    RouteTable, VirtualHost, WeightedClusters,
};
use routing::{ResourceStatus, Translation};
use serde_json::{Value, json};
use test_support::wait_until;

/// What the fake admin reports.
#[derive(Debug, Default)]
struct FakeEnvoy {
    clusters_version: Option<String>,
    routes_version: Option<String>,
    routes_rejected: u64,
}

async fn start_fake_admin(state: Arc<Mutex<FakeEnvoy>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let body = answer(&state, request.uri().path());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn answer(state: &Mutex<FakeEnvoy>, path: &str) -> String {
    let state = state.lock().unwrap_or_else(|p| p.into_inner());
    match path {
        "/config_dump" => json!({ "configs": [
            { "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
              "version_info": state.clusters_version },
            { "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
              "dynamic_route_configs": [{
                  "version_info": state.routes_version,
                  "route_config": { "name": ROUTE_CONFIGURATION_NAME },
              }] },
        ] })
        .to_string(),
        _ => format!(
            "cluster_manager.cds.update_rejected: 0\nhttp.http.rds.{ROUTE_CONFIGURATION_NAME}.update_rejected: {}\n",
            state.routes_rejected
        ),
    }
}

/// A source that always translates to one route to one cluster.
#[derive(Debug)]
struct OneRoute;

impl ConfigSource for OneRoute {
    fn load(&mut self) -> LoadOutcome {
        let cluster = Arc::new(Cluster::new(
            "blue",
            vec![SocketAddr::from(([127, 0, 0, 1], 9))],
        ));
        let table = RouteTable::new(
            vec![VirtualHost {
                name: "vh".to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![Route {
                    name: "r".to_owned(),
                    matcher: RouteMatcher::any(),
                    action: RouteAction::Forward(ForwardAction {
                        destinations: WeightedClusters::single(cluster),
                        rewrite: PathRewrite::None,
                        timeout: None,
                        retry: None,
                        request_headers: HeaderEdits::default(),
                        response_headers: HeaderEdits::default(),
                        host_rewrite: None,
                    }),
                }],
            }],
            Fallback::NotFound,
        )
        .expect("table");
        LoadOutcome {
            translation: Translation {
                table,
                statuses: vec![ResourceStatus {
                    resource: "VirtualService gloo-system/vs".to_owned(),
                    state: State::Accepted,
                    reasons: Vec::new(),
                    resource_version: Some("7".to_owned()),
                    gateway_api: None,
                }],
            },
            load_errors: Vec::new(),
        }
    }
}

fn file_version(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let response: Value = serde_json::from_str(&text).ok()?;
    response["version_info"].as_str().map(ToOwned::to_owned)
}

struct Setup {
    fake: Arc<Mutex<FakeEnvoy>>,
    files: XdsFiles,
    state: ProxyState,
    _work: tempfile::TempDir,
}

async fn setup(ack_timeout: Duration) -> Setup {
    let fake = Arc::new(Mutex::new(FakeEnvoy::default()));
    let admin = start_fake_admin(Arc::clone(&fake)).await;
    let work = tempfile::tempdir().expect("tempdir");
    let files = XdsFiles::create(work.path()).expect("files");
    files
        .write_initial(
            "test",
            "127.0.0.1:0".parse().expect("address"),
            &envoy_control::render::DownstreamLimits::default(),
        )
        .expect("initial files");
    let state = ProxyState::new(ProxyOptions::default());
    state.set_source(EnvoySource::new(
        OneRoute,
        tokio::runtime::Handle::current(),
        EnvoyAdmin::new(admin),
        files.clone(),
        ack_timeout,
    ));
    Setup {
        fake,
        files,
        state,
        _work: work,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_is_installed_only_after_envoy_shows_each_pushed_version() {
    let Setup {
        fake,
        files,
        state,
        _work,
    } = setup(Duration::from_secs(30)).await;
    let reload = tokio::spawn({
        let state = state.clone();
        async move { state.reload().await }
    });

    // Clusters go first; until Envoy shows them, routes are not even written.
    wait_until("the CDS file at version 1", Duration::from_secs(10), || {
        file_version(&files.cds).as_deref() == Some("1")
    })
    .await;
    assert_eq!(file_version(&files.rds).as_deref(), Some("0"));
    assert!(state.snapshot().is_none(), "installed before any ack");
    fake.lock().expect("fake").clusters_version = Some("1".to_owned());

    wait_until("the RDS file at version 1", Duration::from_secs(10), || {
        file_version(&files.rds).as_deref() == Some("1")
    })
    .await;
    assert!(
        state.snapshot().is_none(),
        "installed before the routes were acked"
    );
    assert!(!reload.is_finished());
    fake.lock().expect("fake").routes_version = Some("1".to_owned());

    let report = reload.await.expect("join").expect("reload");
    assert_eq!(report.generation, 1);
    let snapshot = state.snapshot().expect("installed");
    assert!(
        snapshot.load_errors.is_empty(),
        "{:?}",
        snapshot.load_errors
    );
    assert_eq!(snapshot.statuses[0].state, State::Accepted);

    // An unchanged table writes nothing and waits for nothing.
    let report = state.reload().await.expect("reload");
    assert_eq!(report.generation, 2);
    assert_eq!(file_version(&files.rds).as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_is_reported_and_the_served_file_put_back() {
    let Setup {
        fake,
        files,
        state,
        _work,
    } = setup(Duration::from_secs(30)).await;
    fake.lock().expect("fake").clusters_version = Some("1".to_owned());
    let reload = tokio::spawn({
        let state = state.clone();
        async move { state.reload().await }
    });
    wait_until("the RDS file at version 1", Duration::from_secs(10), || {
        file_version(&files.rds).as_deref() == Some("1")
    })
    .await;
    fake.lock().expect("fake").routes_rejected = 1;

    reload.await.expect("join").expect("reload");
    let snapshot = state.snapshot().expect("installed");
    assert_eq!(snapshot.load_errors.len(), 1);
    assert_eq!(snapshot.load_errors[0].file, files.rds);
    assert!(
        snapshot.load_errors[0]
            .message
            .contains("Envoy rejected the route configuration (RDS) at version 1"),
        "{}",
        snapshot.load_errors[0].message
    );
    assert_eq!(snapshot.statuses[0].state, State::Rejected);
    assert_eq!(
        file_version(&files.rds).as_deref(),
        Some("0"),
        "the served routes are put back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledgement_is_an_error_not_a_hang() {
    let Setup { state, _work, .. } = setup(Duration::from_millis(300)).await;
    state.reload().await.expect("reload");
    let snapshot = state.snapshot().expect("installed");
    assert_eq!(snapshot.load_errors.len(), 1);
    assert!(
        snapshot.load_errors[0]
            .message
            .contains("did not acknowledge the clusters (CDS) at version 1 within 300ms"),
        "{}",
        snapshot.load_errors[0].message
    );
    assert_eq!(snapshot.statuses[0].state, State::Rejected);
}

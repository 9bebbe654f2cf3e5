//! The Gateway API table features on real Envoy, from hand-built tables: element-wise prefixes
//! with their rewrites and host rewrite, redirects, unresolved destinations and retriable status
//! codes. Each test starts Envoy the way `envoy-control` does (file-based xDS, installed through
//! [`EnvoySource`] only once Envoy acknowledged it), so what is checked is the renderer's output as
//! Envoy serves it. The same cases run against gateway-proxy in its `gateway_api` tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_control::{EnvoyProcess, EnvoySource, XdsFiles};
use gateway_proxy::{ConfigSource, LoadOutcome, ProxyOptions, ProxyState};
use http::StatusCode;
use routing::Translation;
use routing::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, Redirect,
    RedirectPath, RetryOn, RetryPolicy, Route, RouteAction, RouteMatcher, RouteTable, VirtualHost,
    WeightedClusters,
};
use test_support::{Behaviour, Echo};

use crate::support::*;

/// A configuration source that builds the same hand-made table on every load.
struct FixedTable(Box<dyn FnMut() -> RouteTable + Send>);

impl std::fmt::Debug for FixedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedTable")
    }
}

impl ConfigSource for FixedTable {
    fn load(&mut self) -> LoadOutcome {
        LoadOutcome {
            translation: Translation {
                table: (self.0)(),
                statuses: Vec::new(),
            },
            load_errors: Vec::new(),
        }
    }
}

/// Envoy serving one table on an ephemeral port.
struct EnvoyWithTable {
    envoy: EnvoyProcess,
    listen: SocketAddr,
    _work: tempfile::TempDir,
}

impl EnvoyWithTable {
    /// Starts Envoy and installs `table`, failing when Envoy rejects it.
    async fn start(table: impl FnMut() -> RouteTable + Send + 'static) -> Self {
        let work = tempfile::tempdir().expect("tempdir");
        let files = XdsFiles::create(work.path()).expect("xds files");
        files
            .write_initial(
                "gateway-api-test",
                "127.0.0.1:0".parse().expect("address"),
                &envoy_control::render::DownstreamLimits::default(),
            )
            .expect("initial files");
        let envoy = EnvoyProcess::start(
            &envoy_binary(),
            &files.envoy_files(),
            Duration::from_secs(30),
        )
        .await
        .expect("Envoy starts");
        let listen = envoy
            .admin()
            .listener_address()
            .await
            .expect("listeners")
            .expect("the data-plane listener");
        let state = ProxyState::new(ProxyOptions::default());
        state.set_source(EnvoySource::new(
            FixedTable(Box::new(table)),
            tokio::runtime::Handle::current(),
            envoy.admin().clone(),
            files,
            Duration::from_secs(10),
        ));
        state.reload().await.expect("reload");
        let snapshot = state.snapshot().expect("installed");
        assert!(
            snapshot.load_errors.is_empty(),
            "Envoy did not take the table: {:?}\n{}",
            snapshot.load_errors,
            envoy_control::envoy::log_tail(envoy.log(), 20)
        );
        Self {
            envoy,
            listen,
            _work: work,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    async fn stop(mut self) {
        self.envoy.stop(Duration::from_secs(2)).await;
    }
}

fn forward(destinations: Vec<(Arc<Cluster>, u32)>, rewrite: PathRewrite) -> ForwardAction {
    ForwardAction {
        destinations: WeightedClusters::new(destinations).expect("weights"),
        rewrite,
        timeout: Some(Duration::from_secs(15)),
        retry: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        host_rewrite: None,
    }
}

fn separated(name: &str, prefix: &str, action: RouteAction) -> Route {
    Route {
        name: name.to_owned(),
        matcher: RouteMatcher::path(PathMatcher::PathSeparatedPrefix(prefix.to_owned())),
        action,
    }
}

fn one_host(routes: Vec<Route>) -> RouteTable {
    RouteTable::new(
        vec![VirtualHost {
            name: "gateway-api".to_owned(),
            domains: vec!["*".to_owned()],
            routes,
        }],
        Fallback::NotFound,
    )
    .expect("valid table")
}

fn upstream_cluster(upstream: &Upstream) -> Arc<Cluster> {
    Arc::new(Cluster::new(upstream.name.clone(), vec![upstream.addr]))
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separated_prefixes_rewrite_paths_and_hosts() {
    let echo = Upstream::start("echo", Behaviour::Echo).await;
    let cluster = upstream_cluster(&echo);
    let envoy = EnvoyWithTable::start(move || {
        let mut with_host = forward(
            vec![(Arc::clone(&cluster), 1)],
            PathRewrite::ReplacePrefixMatch("/xyz/".to_owned()),
        );
        with_host.host_rewrite = Some("rewritten.example".to_owned());
        one_host(vec![
            separated("sep", "/sep", RouteAction::Forward(with_host)),
            separated(
                "strip",
                "/strip",
                RouteAction::Forward(forward(
                    vec![(Arc::clone(&cluster), 1)],
                    PathRewrite::ReplacePrefixMatch("/".to_owned()),
                )),
            ),
            separated(
                "full",
                "/full",
                RouteAction::Forward(forward(
                    vec![(Arc::clone(&cluster), 1)],
                    PathRewrite::FullPath("/replaced".to_owned()),
                )),
            ),
            separated(
                "root",
                "/",
                RouteAction::Respond {
                    status: StatusCode::IM_A_TEAPOT,
                    body: bytes::Bytes::from_static(b"unmatched"),
                },
            ),
        ])
    })
    .await;
    let client = client();
    for (path, target, host) in [
        ("/sep/bar?q=1", "/xyz/bar?q=1", "rewritten.example"),
        ("/sep", "/xyz", "rewritten.example"),
        ("/sep/", "/xyz/", "rewritten.example"),
        ("/strip/a/b", "/a/b", ""),
        ("/strip", "/", ""),
        ("/strip//a", "/a", ""),
        ("/full/x?y=2", "/replaced?y=2", ""),
        ("/full", "/replaced", ""),
    ] {
        let response = client.get(envoy.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
        let seen: Echo = response.json().await.expect("echo");
        assert_eq!(seen.target, target, "{path}");
        if !host.is_empty() {
            assert_eq!(seen.host.as_deref(), Some(host), "{path}");
        } else {
            assert_eq!(
                seen.host.as_deref(),
                Some(envoy.listen.to_string().as_str()),
                "{path}: the Host is kept"
            );
        }
    }
    for path in ["/sepful", "/stripped/x"] {
        let response = client.get(envoy.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 418, "{path} is not under the prefix");
    }
    envoy.stop().await;
}

/// The redirect routes both data planes are checked with.
fn redirect_routes() -> Vec<Route> {
    let redirect = |name: &str, prefix: &str, redirect: Redirect| {
        separated(name, prefix, RouteAction::Redirect(redirect))
    };
    let keep = Redirect {
        scheme: None,
        hostname: None,
        port: None,
        path: RedirectPath::Keep,
        status: StatusCode::FOUND,
    };
    vec![
        redirect(
            "scheme",
            "/scheme",
            Redirect {
                scheme: Some("https".to_owned()),
                status: StatusCode::MOVED_PERMANENTLY,
                ..keep.clone()
            },
        ),
        redirect(
            "to-http",
            "/to-http",
            Redirect {
                scheme: Some("http".to_owned()),
                ..keep.clone()
            },
        ),
        redirect(
            "host",
            "/host",
            Redirect {
                hostname: Some("other.example".to_owned()),
                ..keep.clone()
            },
        ),
        redirect(
            "port",
            "/port",
            Redirect {
                port: Some(8443),
                ..keep.clone()
            },
        ),
        redirect(
            "prefix",
            "/prefix",
            Redirect {
                path: RedirectPath::ReplacePrefixMatch("/new/".to_owned()),
                ..keep.clone()
            },
        ),
        redirect(
            "strip",
            "/strip",
            Redirect {
                path: RedirectPath::ReplacePrefixMatch("/".to_owned()),
                ..keep.clone()
            },
        ),
        redirect(
            "full",
            "/full",
            Redirect {
                path: RedirectPath::FullPath("/fixed".to_owned()),
                hostname: Some("other.example".to_owned()),
                port: Some(8080),
                scheme: Some("https".to_owned()),
                ..keep
            },
        ),
    ]
}

/// `(path, Host, x-forwarded-proto, status, location)`.
const REDIRECT_CASES: [(&str, &str, Option<&str>, u16, &str); 11] = [
    (
        "/scheme/a?x=1",
        "example.com:80",
        None,
        301,
        "https://example.com/scheme/a?x=1",
    ),
    (
        "/scheme",
        "example.com:8080",
        None,
        301,
        "https://example.com:8080/scheme",
    ),
    (
        "/scheme",
        "example.com",
        None,
        301,
        "https://example.com/scheme",
    ),
    (
        "/to-http",
        "example.com:443",
        Some("https"),
        302,
        "http://example.com/to-http",
    ),
    (
        "/to-http",
        "example.com:443",
        None,
        302,
        "http://example.com:443/to-http",
    ),
    (
        "/host/a",
        "example.com:8080",
        None,
        302,
        "http://other.example/host/a",
    ),
    (
        "/port?q",
        "example.com:8080",
        None,
        302,
        "http://example.com:8443/port?q",
    ),
    (
        "/prefix/a?q=1",
        "example.com",
        None,
        302,
        "http://example.com/new/a?q=1",
    ),
    (
        "/prefix",
        "example.com",
        None,
        302,
        "http://example.com/new",
    ),
    (
        "/strip/a/b",
        "example.com",
        None,
        302,
        "http://example.com/a/b",
    ),
    (
        "/full/x?y=2",
        "example.com",
        None,
        302,
        "https://other.example:8080/fixed?y=2",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_build_the_location_from_the_request() {
    let envoy = EnvoyWithTable::start(|| one_host(redirect_routes())).await;
    let client = no_redirects();
    for (path, host, forwarded_proto, status, location) in REDIRECT_CASES {
        let mut request = client.get(envoy.url(path)).header("host", host);
        if let Some(proto) = forwarded_proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{path} {host}");
        assert_eq!(
            response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok()),
            Some(location),
            "{path} {host} {forwarded_proto:?}"
        );
        assert!(response.bytes().await.expect("body").is_empty());
    }
    envoy.stop().await;
}

/// A route splitting between an unresolved destination and `upstream` with these weights.
fn split_route(
    name: &str,
    prefix: &str,
    unresolved: u32,
    upstream: &Arc<Cluster>,
    weight: u32,
) -> Route {
    separated(
        name,
        prefix,
        RouteAction::Forward(forward(
            vec![
                (Arc::new(Cluster::unresolved("missing-backend")), unresolved),
                (Arc::clone(upstream), weight),
            ],
            PathRewrite::None,
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolved_destinations_answer_500_for_their_share() {
    let echo = Upstream::start("echo", Behaviour::Echo).await;
    let cluster = upstream_cluster(&echo);
    let envoy = EnvoyWithTable::start(move || {
        one_host(vec![
            split_route("all-missing", "/all-missing", 1, &cluster, 0),
            split_route("none-missing", "/none-missing", 0, &cluster, 1),
            split_route("half", "/half", 1, &cluster, 1),
            separated(
                "only-missing",
                "/only-missing",
                RouteAction::Forward(forward(
                    vec![(Arc::new(Cluster::unresolved("missing-backend")), 1)],
                    PathRewrite::None,
                )),
            ),
        ])
    })
    .await;
    let client = client();
    let count = |codes: &mut [u32; 2], status: u16| match status {
        500 => codes[0] += 1,
        200 => codes[1] += 1,
        other => panic!("unexpected status {other}"),
    };
    for (path, expected) in [
        ("/all-missing", [50, 0]),
        ("/only-missing", [50, 0]),
        ("/none-missing", [0, 50]),
    ] {
        let mut codes = [0, 0];
        for _ in 0..50 {
            let response = client.get(envoy.url(path)).send().await.expect("request");
            let status = response.status().as_u16();
            if status == 500 {
                assert!(response.bytes().await.expect("body").is_empty(), "{path}");
            }
            count(&mut codes, status);
        }
        assert_eq!(codes, expected, "{path}: [500s, 200s]");
    }
    // 1:1 over 200 requests: either side missing entirely has probability 2^-199.
    let mut codes = [0, 0];
    for _ in 0..200 {
        let response = client
            .get(envoy.url("/half"))
            .send()
            .await
            .expect("request");
        count(&mut codes, response.status().as_u16());
    }
    assert!(
        codes[0] > 0 && codes[1] > 0,
        "both shares are served: {codes:?}"
    );
    envoy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_status_codes_are_retried_and_others_are_not() {
    let teapot_twice = Upstream::start(
        "teapot-twice",
        Behaviour::FailFirst {
            failures: 2,
            status: StatusCode::IM_A_TEAPOT,
        },
    )
    .await;
    let teapot_once = Upstream::start(
        "teapot-once",
        Behaviour::FailFirst {
            failures: 1,
            status: StatusCode::IM_A_TEAPOT,
        },
    )
    .await;
    let retried = upstream_cluster(&teapot_twice);
    let not_retried = upstream_cluster(&teapot_once);
    let envoy = EnvoyWithTable::start(move || {
        let with_codes = |cluster: &Arc<Cluster>, codes: Vec<u16>| {
            let mut action = forward(vec![(Arc::clone(cluster), 1)], PathRewrite::None);
            action.retry = Some(RetryPolicy {
                num_retries: 2,
                per_try_timeout: None,
                retry_on: RetryOn {
                    status_codes: codes,
                    ..RetryOn::default()
                },
                backoff_base: Some(Duration::from_millis(1)),
            });
            RouteAction::Forward(action)
        };
        one_host(vec![
            separated("retried", "/retried", with_codes(&retried, vec![503, 418])),
            separated(
                "not-retried",
                "/not-retried",
                with_codes(&not_retried, vec![503]),
            ),
        ])
    })
    .await;
    let client = client();
    let response = client
        .get(envoy.url("/retried"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "the third try succeeds");
    assert_eq!(
        teapot_twice
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let response = client
        .get(envoy.url("/not-retried"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 418, "418 is not in the list");
    assert_eq!(
        teapot_once
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    envoy.stop().await;
}

//! The Gateway API table features through gateway-proxy's listeners, from hand-built tables:
//! element-wise prefixes with their rewrites and host rewrite, redirects, unresolved destinations,
//! retriable status codes and the config dump. envoy-control's `gateway_api` tests check the same
//! cases on real Envoy, so the two data planes are held to one set of answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use routing::table::{
    Cluster, PathMatcher, PathRewrite, Redirect, RedirectPath, RetryOn, RetryPolicy, Route,
    RouteAction, RouteMatcher,
};

use crate::support::*;

fn separated(name: &str, prefix: &str, action: RouteAction) -> Route {
    Route {
        name: name.to_owned(),
        matcher: RouteMatcher::path(PathMatcher::PathSeparatedPrefix(prefix.to_owned())),
        action,
    }
}

fn rewriting(cluster: &Arc<Cluster>, rewrite: PathRewrite) -> RouteAction {
    let mut action = forward(vec![(Arc::clone(cluster), 1)]);
    action.rewrite = rewrite;
    RouteAction::Forward(action)
}

#[tokio::test]
async fn separated_prefixes_rewrite_paths_and_hosts() {
    let echo = Upstream::start("echo", Behaviour::Echo).await;
    let cluster = echo.cluster();
    let mut with_host = forward(vec![(Arc::clone(&cluster), 1)]);
    with_host.rewrite = PathRewrite::ReplacePrefixMatch("/xyz/".to_owned());
    with_host.host_rewrite = Some("rewritten.example".to_owned());
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![
            separated("sep", "/sep", RouteAction::Forward(with_host)),
            separated(
                "strip",
                "/strip",
                rewriting(&cluster, PathRewrite::ReplacePrefixMatch("/".to_owned())),
            ),
            separated(
                "full",
                "/full",
                rewriting(&cluster, PathRewrite::FullPath("/replaced".to_owned())),
            ),
            separated(
                "root",
                "/",
                RouteAction::Respond {
                    status: StatusCode::IM_A_TEAPOT,
                    body: Bytes::from_static(b"unmatched"),
                },
            ),
        ],
    ))
    .await;
    let client = client();
    for (path, target, host) in [
        ("/sep/bar?q=1", "/xyz/bar?q=1", "rewritten.example"),
        ("/sep", "/xyz", "rewritten.example"),
        ("/sep/", "/xyz/", "rewritten.example"),
        ("/strip/a/b", "/a/b", "as-sent.example"),
        ("/strip", "/", "as-sent.example"),
        ("/strip//a", "/a", "as-sent.example"),
        ("/full/x?y=2", "/replaced?y=2", "as-sent.example"),
        ("/full", "/replaced", "as-sent.example"),
    ] {
        let reply = get(&client, &proxy.url(path), "as-sent.example").await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        let echo = reply.echo();
        assert_eq!(echo.target, target, "{path}");
        assert_eq!(echo.host.as_deref(), Some(host), "{path}");
    }
    for path in ["/sepful", "/stripped/x"] {
        let reply = get(&client, &proxy.url(path), "as-sent.example").await;
        assert_eq!(
            reply.status,
            StatusCode::IM_A_TEAPOT,
            "{path} is not under the prefix"
        );
    }
    proxy.stop().await;
}

/// The redirect routes, as in envoy-control's `gateway_api` tests.
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

/// `(path, Host, x-forwarded-proto, status, location)`, the answers real Envoy gives.
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

#[tokio::test]
async fn redirects_build_the_location_as_envoy_does() {
    let proxy = RunningProxy::with_table(table(&["*"], redirect_routes())).await;
    let client = client();
    for (path, host, forwarded_proto, status, location) in REDIRECT_CASES {
        let mut request = Request::get(proxy.url(path)).header("host", host);
        if let Some(proto) = forwarded_proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let reply = send(
            &client,
            request.body(Full::new(Bytes::new())).expect("request"),
        )
        .await;
        assert_eq!(reply.status.as_u16(), status, "{path} {host}");
        assert_eq!(
            reply
                .headers
                .get("location")
                .and_then(|value| value.to_str().ok()),
            Some(location),
            "{path} {host} {forwarded_proto:?}"
        );
        assert!(reply.body.is_empty(), "{path}: {}", reply.text());
    }
    proxy.stop().await;
}

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
        RouteAction::Forward(forward(vec![
            (Arc::new(Cluster::unresolved("missing-backend")), unresolved),
            (Arc::clone(upstream), weight),
        ])),
    )
}

#[tokio::test]
async fn unresolved_destinations_answer_500_for_their_share() {
    let echo = Upstream::start("echo", Behaviour::Echo).await;
    let cluster = echo.cluster();
    let mut retried_missing = forward(vec![(Arc::new(Cluster::unresolved("missing-backend")), 1)]);
    retried_missing.retry = Some(RetryPolicy {
        num_retries: 3,
        per_try_timeout: None,
        retry_on: RetryOn::parse("5xx").expect("retry_on"),
        backoff_base: None,
    });
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![
            split_route("all-missing", "/all-missing", 1, &cluster, 0),
            split_route("none-missing", "/none-missing", 0, &cluster, 1),
            split_route("half", "/half", 1, &cluster, 1),
            separated(
                "only-missing",
                "/only-missing",
                RouteAction::Forward(retried_missing),
            ),
        ],
    ))
    .await;
    let client = client();
    let count = |codes: &mut [u32; 2], reply: &Reply| match reply.status.as_u16() {
        500 => {
            assert!(reply.body.is_empty(), "{}", reply.text());
            codes[0] += 1;
        }
        200 => codes[1] += 1,
        other => panic!("unexpected status {other}: {}", reply.text()),
    };
    for (path, expected) in [
        ("/all-missing", [50, 0]),
        ("/only-missing", [50, 0]),
        ("/none-missing", [0, 50]),
    ] {
        let mut codes = [0, 0];
        for _ in 0..50 {
            count(&mut codes, &get(&client, &proxy.url(path), "any").await);
        }
        assert_eq!(codes, expected, "{path}: [500s, 200s]");
    }
    assert_eq!(echo.requests.load(Ordering::SeqCst), 50);
    // 1:1 over 200 requests: either side missing entirely has probability 2^-199.
    let mut codes = [0, 0];
    for _ in 0..200 {
        count(&mut codes, &get(&client, &proxy.url("/half"), "any").await);
    }
    assert!(
        codes[0] > 0 && codes[1] > 0,
        "both shares are served: {codes:?}"
    );
    assert_eq!(codes[0] + codes[1], 200);
    proxy.stop().await;
}

fn retrying_on(cluster: &Arc<Cluster>, codes: Vec<u16>) -> RouteAction {
    let mut action = forward(vec![(Arc::clone(cluster), 1)]);
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
}

#[tokio::test]
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
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![
            separated(
                "retried",
                "/retried",
                retrying_on(&teapot_twice.cluster(), vec![503, 418]),
            ),
            separated(
                "not-retried",
                "/not-retried",
                retrying_on(&teapot_once.cluster(), vec![503]),
            ),
        ],
    ))
    .await;
    let client = client();
    let reply = get(&client, &proxy.url("/retried"), "any").await;
    assert_eq!(reply.status, StatusCode::OK, "the third try succeeds");
    assert_eq!(teapot_twice.requests.load(Ordering::SeqCst), 3);
    let reply = get(&client, &proxy.url("/not-retried"), "any").await;
    assert_eq!(
        reply.status,
        StatusCode::IM_A_TEAPOT,
        "418 is not in the list"
    );
    assert_eq!(teapot_once.requests.load(Ordering::SeqCst), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn the_config_dump_shows_the_gateway_api_fields() {
    let echo = Upstream::start("echo", Behaviour::Echo).await;
    let mut action = forward(vec![
        (Arc::new(Cluster::unresolved("missing-backend")), 1),
        (echo.cluster(), 2),
    ]);
    action.rewrite = PathRewrite::ReplacePrefixMatch("/xyz".to_owned());
    action.host_rewrite = Some("rewritten.example".to_owned());
    action.retry = Some(RetryPolicy {
        num_retries: 2,
        per_try_timeout: None,
        retry_on: RetryOn {
            status_codes: vec![503],
            ..RetryOn::default()
        },
        backoff_base: Some(Duration::from_millis(100)),
    });
    let mut routes = vec![separated("forward", "/sep", RouteAction::Forward(action))];
    routes.extend(
        redirect_routes()
            .into_iter()
            .filter(|route| route.name == "full"),
    );
    let proxy = RunningProxy::with_table(table(&["*"], routes)).await;
    let dump = get_url(&client(), &proxy.admin_url("/config_dump"))
        .await
        .json();
    let routes = &dump["table"]["virtual_hosts"][0]["routes"];
    assert_eq!(
        routes[0]["match"]["path"],
        serde_json::json!({ "path_separated_prefix": "/sep" })
    );
    let forward = &routes[0]["action"]["forward"];
    assert_eq!(
        forward["rewrite"],
        serde_json::json!({ "replace_prefix_match": "/xyz" })
    );
    assert_eq!(forward["host_rewrite"], "rewritten.example");
    assert_eq!(forward["destinations"][0]["unresolved"], true);
    assert_eq!(forward["destinations"][1]["unresolved"], false);
    assert_eq!(
        forward["retry"]["retry_on"],
        serde_json::json!(["retriable-status-codes"])
    );
    assert_eq!(
        forward["retry"]["retriable_status_codes"],
        serde_json::json!([503])
    );
    assert_eq!(forward["retry"]["backoff_base_ms"], 100);
    assert_eq!(
        routes[1]["action"]["redirect"],
        serde_json::json!({
            "scheme": "https",
            "hostname": "other.example",
            "port": 8080,
            "path": { "full_path": "/fixed" },
            "status": 302,
        })
    );
    proxy.stop().await;
}

//! Data-plane behaviour through the real listeners, against in-process upstreams.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use gateway_proxy::{ProxyOptions, ProxyState};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use routing::table::{
    Cluster, Fallback, HeaderEdits, PathRewrite, RetryOn, RetryPolicy, Route, RouteAction,
    RouteMatcher, RouteTable, VirtualHost,
};

#[tokio::test]
async fn forwards_with_prefix_rewrite_keeping_host_and_query() {
    let gateway = Upstream::start("colorgateway", Behaviour::Echo).await;
    let mut action = forward(vec![(gateway.cluster(), 1)]);
    action.rewrite = PathRewrite::Prefix("/color".to_owned());
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![prefix_route("color", "/appmesh/color", action)],
    ))
    .await;
    let client = client();

    let reply = get(
        &client,
        &proxy.url("/appmesh/color/clear?x=1&y=2"),
        "gloo.example:8080",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(echo.name, "colorgateway");
    assert_eq!(
        echo.target, "/color/clear?x=1&y=2",
        "origin form, rewritten, query kept"
    );
    assert_eq!(
        echo.header("host"),
        Some("gloo.example:8080"),
        "Host is kept as received"
    );
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    let request_id = echo.header("x-request-id").expect("x-request-id added");
    assert_eq!(request_id.len(), 36, "{request_id}");

    let kept_id = Request::get(proxy.url("/appmesh/colorful"))
        .header("x-request-id", "given-id")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let echo = send(&client, kept_id).await.echo();
    assert_eq!(echo.target, "/colorful");
    assert_eq!(
        echo.header("x-request-id"),
        Some("given-id"),
        "an existing request id is kept"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn strips_hop_by_hop_headers_both_ways_and_applies_header_edits() {
    let upstream = Upstream::start("blue", Behaviour::Echo).await;
    let mut action = forward(vec![(upstream.cluster(), 1)]);
    action.request_headers = HeaderEdits {
        add: vec![(
            HeaderName::from_static("x-added"),
            HeaderValue::from_static("yes"),
            false,
        )],
        remove: vec![HeaderName::from_static("x-remove-me")],
    };
    action.response_headers = HeaderEdits {
        add: vec![(
            HeaderName::from_static("x-response-added"),
            HeaderValue::from_static("1"),
            true,
        )],
        remove: vec![HeaderName::from_static("x-upstream")],
    };
    let proxy =
        RunningProxy::with_table(table(&["*"], vec![prefix_route("all", "/", action)])).await;
    let request = Request::get(proxy.url("/"))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("proxy-authorization", "Basic Zm9v")
        .header("te", "trailers")
        .header("x-remove-me", "1")
        .header("x-kept", "1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = send(&client(), request).await;
    let echo = reply.echo();
    for hop in ["x-private", "proxy-authorization", "te", "x-remove-me"] {
        assert_eq!(echo.header(hop), None, "{hop} must not reach the upstream");
    }
    assert_eq!(echo.header("x-kept"), Some("1"));
    assert_eq!(echo.header("x-added"), Some("yes"));
    assert!(
        !reply.headers.contains_key("x-hop-secret"),
        "named by the upstream's Connection header"
    );
    assert!(
        !reply.headers.contains_key("x-upstream"),
        "removed by the response edits"
    );
    assert_eq!(
        reply
            .headers
            .get("x-response-added")
            .map(HeaderValue::as_bytes),
        Some(&b"1"[..])
    );
    proxy.stop().await;
}

#[tokio::test]
async fn weighted_split_follows_weights_and_never_uses_weight_zero() {
    let v1 = Upstream::start("v1", Behaviour::Echo).await;
    let v2 = Upstream::start("v2", Behaviour::Echo).await;
    let unused = Upstream::start("unused", Behaviour::Echo).await;
    let action = forward(vec![
        (v1.cluster(), 80),
        (unused.cluster(), 0),
        (v2.cluster(), 20),
    ]);
    let proxy =
        RunningProxy::with_table(table(&["*"], vec![prefix_route("split", "/", action)])).await;
    let client = client();
    let total = 1_000;
    let mut v2_count = 0;
    for _ in 0..total {
        let reply = get(&client, &proxy.url("/"), "any").await;
        match reply.echo().name.as_str() {
            "v2" => v2_count += 1,
            "v1" => {}
            other => panic!("request reached {other}"),
        }
    }
    assert_eq!(unused.requests.load(Ordering::SeqCst), 0);
    // Binomial(1000, 0.2): sd ≈ 12.6; ±5 sd keeps false failures below 1e-6.
    assert!(
        (137..=263).contains(&v2_count),
        "v2 got {v2_count} of {total}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn local_answers_for_missing_route_endpoints_and_connections() {
    let refused_addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let routes = vec![
        prefix_route(
            "empty",
            "/empty",
            forward(vec![(Arc::new(Cluster::new("empty", Vec::new())), 1)]),
        ),
        prefix_route(
            "refused",
            "/refused",
            forward(vec![(
                Arc::new(Cluster::new("refused", vec![refused_addr])),
                1,
            )]),
        ),
        Route {
            name: "direct".to_owned(),
            matcher: RouteMatcher::path(routing::table::PathMatcher::Exact("/direct".to_owned())),
            action: RouteAction::Respond {
                status: StatusCode::IM_A_TEAPOT,
                body: Bytes::from_static(b"short and stout"),
            },
        },
    ];
    let proxy = RunningProxy::with_table(table(&["colors"], routes)).await;
    let client = client();

    let reply = get(&client, &proxy.url("/nothing-here"), "colors").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::NOT_FOUND, "")
    );
    let reply = get(&client, &proxy.url("/empty"), "other-host").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::NOT_FOUND, ""),
        "no virtual host"
    );
    let reply = get(&client, &proxy.url("/empty"), "colors").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream")
    );
    let reply = get(&client, &proxy.url("/refused"), "colors").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    );
    let reply = get(&client, &proxy.url("/direct"), "colors").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::IM_A_TEAPOT, "short and stout")
    );
    proxy.stop().await;
}

#[tokio::test]
async fn route_timeout_answers_504() {
    let hanging = Upstream::start("hanging", Behaviour::Hang).await;
    let mut action = forward(vec![(hanging.cluster(), 1)]);
    action.timeout = Some(Duration::from_millis(200));
    let proxy =
        RunningProxy::with_table(table(&["*"], vec![prefix_route("slow", "/", action)])).await;
    let started = std::time::Instant::now();
    let reply = get(&client(), &proxy.url("/"), "any").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(hanging.requests.load(Ordering::SeqCst), 1);
    proxy.stop().await;
}

fn retry(num_retries: u32, retry_on: &str) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        num_retries,
        per_try_timeout: None,
        retry_on: RetryOn::parse(retry_on).expect("valid retry_on"),
        backoff_base: None,
    })
}

#[tokio::test]
async fn retries_on_5xx_until_the_flaky_upstream_succeeds() {
    let flaky = Upstream::start(
        "flaky",
        Behaviour::FailFirst {
            failures: 2,
            status: StatusCode::SERVICE_UNAVAILABLE,
        },
    )
    .await;
    let mut action = forward(vec![(flaky.cluster(), 1)]);
    action.retry = retry(2, "5xx");
    let proxy =
        RunningProxy::with_table(table(&["*"], vec![prefix_route("retry", "/", action)])).await;
    let request = Request::post(proxy.url("/submit"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("request");
    let reply = send(&client(), request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.echo().body_len,
        7,
        "the buffered body is resent on the retry"
    );
    assert_eq!(flaky.requests.load(Ordering::SeqCst), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn retries_stop_after_num_retries_and_respect_retry_on() {
    let flaky = Upstream::start(
        "flaky",
        Behaviour::FailFirst {
            failures: 10,
            status: StatusCode::INTERNAL_SERVER_ERROR,
        },
    )
    .await;
    let mut exhausted = forward(vec![(flaky.cluster(), 1)]);
    exhausted.retry = retry(1, "5xx");
    let mut wrong_class = forward(vec![(flaky.cluster(), 1)]);
    wrong_class.retry = retry(3, "gateway-error");
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![
            prefix_route("exhausted", "/exhausted", exhausted),
            prefix_route("wrong", "/wrong", wrong_class),
        ],
    ))
    .await;
    let client = client();
    let reply = get(&client, &proxy.url("/exhausted"), "any").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        flaky.requests.load(Ordering::SeqCst),
        2,
        "one try + one retry"
    );
    let reply = get(&client, &proxy.url("/wrong"), "any").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        flaky.requests.load(Ordering::SeqCst),
        3,
        "500 is not a gateway error: no retry"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn retry_picks_the_destination_again_after_a_connect_failure() {
    let refused_addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let healthy = Upstream::start("healthy", Behaviour::Echo).await;
    let mut action = forward(vec![
        (Arc::new(Cluster::new("dead", vec![refused_addr])), 1),
        (healthy.cluster(), 1),
    ]);
    action.retry = retry(30, "connect-failure");
    let proxy = RunningProxy::with_table(table(&["*"], vec![prefix_route("r", "/", action)])).await;
    let client = client();
    for _ in 0..20 {
        let reply = get(&client, &proxy.url("/"), "any").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    proxy.stop().await;
}

#[tokio::test]
async fn per_try_timeout_is_retried_under_5xx() {
    let hanging = Upstream::start("hanging", Behaviour::Hang).await;
    let healthy = Upstream::start("healthy", Behaviour::Echo).await;
    let endpoints = Arc::new(Cluster::new("mixed", vec![hanging.addr, healthy.addr]));
    let mut action = forward(vec![(endpoints, 1)]);
    action.retry = Some(RetryPolicy {
        num_retries: 1,
        per_try_timeout: Some(Duration::from_millis(100)),
        retry_on: RetryOn::parse("5xx").expect("valid"),
        backoff_base: None,
    });
    let proxy = RunningProxy::with_table(table(&["*"], vec![prefix_route("r", "/", action)])).await;
    // Round-robin starts at the hanging endpoint: the first try times out, the retry succeeds.
    let reply = get(&client(), &proxy.url("/"), "any").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.echo().name, "healthy");
    assert_eq!(hanging.requests.load(Ordering::SeqCst), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn sidecar_proxies_absolute_form_requests_in_origin_form() {
    let teller = Upstream::start("colorteller", Behaviour::Echo).await;
    let table = RouteTable::new(
        vec![VirtualHost {
            name: "colorteller".to_owned(),
            domains: vec![
                "colorteller.appmesh-demo".to_owned(),
                "colorteller.appmesh-demo:9080".to_owned(),
            ],
            routes: vec![prefix_route(
                "colorteller-route",
                "/",
                forward(vec![(teller.cluster(), 1)]),
            )],
        }],
        Fallback::NotFound,
    )
    .expect("table");
    let proxy = RunningProxy::with_table(table).await;
    let (status, body) = raw_request(
        proxy.addr,
        "GET http://colorteller.appmesh-demo:9080/?q=1 HTTP/1.1\r\nHost: colorteller.appmesh-demo:9080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let echo: Echo = serde_json::from_str(&body).expect("echo body");
    assert_eq!(echo.target, "/?q=1");
    assert_eq!(echo.header("host"), Some("colorteller.appmesh-demo:9080"));
    // Unknown authorities with the DROP_ALL fallback are refused.
    let (status, _) = raw_request(
        proxy.addr,
        "GET http://elsewhere:80/ HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    proxy.stop().await;
}

#[tokio::test]
async fn passthrough_fallback_forwards_unknown_hosts_to_their_own_authority() {
    let outside = Upstream::start("outside", Behaviour::Echo).await;
    let proxy = RunningProxy::with_table(RouteTable::empty(Fallback::Passthrough {
        timeout: Some(Duration::from_secs(5)),
    }))
    .await;
    let request = format!(
        "GET http://{addr}/external?x=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        addr = outside.addr
    );
    let (status, body) = raw_request(proxy.addr, &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let echo: Echo = serde_json::from_str(&body).expect("echo body");
    assert_eq!(
        (echo.name.as_str(), echo.target.as_str()),
        ("outside", "/external?x=1")
    );
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = Upstream::start("pooled", Behaviour::Echo).await;
    let proxy = RunningProxy::with_table(table(
        &["*"],
        vec![prefix_route(
            "all",
            "/",
            forward(vec![(upstream.cluster(), 1)]),
        )],
    ))
    .await;
    let client = client();
    for index in 0..50 {
        let reply = get(&client, &proxy.url(&format!("/{index}")), "any").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 50);
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "sequential requests share one pooled connection"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn large_bodies_are_streamed_without_retry_buffering() {
    let upstream = Upstream::start("sink", Behaviour::Echo).await;
    let mut action = forward(vec![(upstream.cluster(), 1)]);
    action.retry = retry(1, "5xx");
    let proxy =
        RunningProxy::with_table(table(&["*"], vec![prefix_route("all", "/", action)])).await;
    let body = Bytes::from(vec![b'x'; 1024 * 1024]);
    let request = Request::post(proxy.url("/upload"))
        .body(Full::new(body))
        .expect("request");
    let reply = send(&client(), request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echo().body_len, 1024 * 1024);
    proxy.stop().await;
}

#[tokio::test]
async fn unconfigured_proxy_answers_503_until_a_table_is_installed() {
    let upstream = Upstream::start("late", Behaviour::Echo).await;
    let proxy = RunningProxy::start(ProxyState::new(ProxyOptions::default())).await;
    let client = client();
    assert_eq!(
        get(&client, &proxy.url("/"), "any").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.state.install_table(table(
        &["*"],
        vec![prefix_route(
            "all",
            "/",
            forward(vec![(upstream.cluster(), 1)]),
        )],
    ));
    assert_eq!(
        get(&client, &proxy.url("/"), "any").await.status,
        StatusCode::OK
    );
    proxy.stop().await;
}

//! Hostile requests: loops, stalled bodies, ambiguous authorities, broken chunking.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_proxy::{ConnectionLimits, ProxyOptions};
use http::StatusCode;
use routing::table::{Fallback, RouteTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

fn options(body_idle_timeout: Duration) -> ProxyOptions {
    ProxyOptions {
        seed: Some(3),
        limits: ConnectionLimits {
            body_idle_timeout,
            ..ConnectionLimits::default()
        },
        ..ProxyOptions::default()
    }
}

fn passthrough() -> RouteTable {
    RouteTable::empty(Fallback::Passthrough {
        timeout: Some(Duration::from_secs(5)),
    })
}

/// Writes `request` on a fresh connection and reads until the proxy closes it (at most 10 s).
async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    stream.write_all(request).await.expect("write");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Err(_) => panic!(
                "still open after 10 s: {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

fn echo_of(reply: &str) -> Echo {
    let (_, body) = reply.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).unwrap_or_else(|error| panic!("not an echo ({error}): {reply}"))
}

fn status_of(reply: &str) -> Option<u16> {
    reply.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_passthrough_sidecar_refuses_requests_addressed_to_itself_or_its_admin() {
    let proxy = RunningProxy::with_table(passthrough()).await;
    for target in [
        proxy.addr.to_string(),
        proxy.admin.to_string(),
        format!("localhost:{}", proxy.addr.port()),
        format!("0.0.0.0:{}", proxy.admin.port()),
    ] {
        let request = format!(
            "GET http://{target}/status HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        );
        let (reply, took) = exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&reply), Some(508), "{target}: {reply}");
        assert!(reply.contains("request loop detected"), "{reply}");
        assert!(took < Duration::from_secs(2), "{target}: {took:?}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn the_hop_header_ends_a_loop_between_two_proxies() {
    let first = RunningProxy::with_table(RouteTable::empty(Fallback::NotFound)).await;
    let second = RunningProxy::with_table(RouteTable::empty(Fallback::NotFound)).await;
    let to = |addr: SocketAddr| {
        table(
            &["*"],
            vec![prefix_route(
                "loop",
                "/",
                forward(vec![(
                    std::sync::Arc::new(routing::table::Cluster::new(
                        "peer".to_owned(),
                        vec![addr],
                    )),
                    1,
                )]),
            )],
        )
    };
    first.state.install_table(to(second.addr));
    second.state.install_table(to(first.addr));
    let (reply, took) = exchange(
        first.addr,
        b"GET /round HTTP/1.1\r\nHost: anywhere\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), Some(508), "{reply}");
    assert!(reply.contains("too many proxy hops"), "{reply}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The hop count is forwarded, one up.
    let echo = Upstream::echo("echo").await;
    let through = RunningProxy::with_table(table(
        &["*"],
        vec![prefix_route(
            "echo",
            "/",
            forward(vec![(echo.cluster(), 1)]),
        )],
    ))
    .await;
    let (reply, _) = exchange(
        through.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nx-colormesh-hops: 3\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        echo_of(&reply).header("x-colormesh-hops"),
        Some("4"),
        "{reply}"
    );
    first.stop().await;
    second.stop().await;
    through.stop().await;
}

#[tokio::test]
async fn no_admin_api_is_reachable_through_a_proxy() {
    let sidecar = RunningProxy::with_table(passthrough()).await;
    let ingress = RunningProxy::with_table(RouteTable::empty(Fallback::NotFound)).await;
    let target = ingress.admin;
    let request = format!(
        "POST http://{target}/reload HTTP/1.1\r\nHost: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (reply, _) = exchange(sidecar.addr, request.as_bytes()).await;
    assert_eq!(status_of(&reply), Some(403), "{reply}");
    assert!(reply.contains("not served to proxied requests"), "{reply}");
    // Directly, it answers.
    let (status, _) = raw_request(
        ingress.admin,
        "GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sidecar.stop().await;
    ingress.stop().await;
}

/// An upstream that answers every connection's request with headers and part of a body, then
/// stalls (until dropped).
async fn stalling_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                .await;
            held.push(stream);
        }
    });
    (addr, task)
}

/// Requests `/` through a proxy to the stalling upstream, with the route's `route_timeout` and
/// the proxy's `body_idle_timeout`; returns the reply (headers and part of the body) and when
/// the proxy cut it.
async fn stalled_response(
    route_timeout: Duration,
    body_idle_timeout: Duration,
) -> (String, Duration) {
    let (upstream, task) = stalling_upstream().await;
    let cluster = std::sync::Arc::new(routing::table::Cluster::new(
        "stalling".to_owned(),
        vec![upstream],
    ));
    let mut action = forward(vec![(cluster, 1)]);
    action.timeout = Some(route_timeout);
    let proxy = RunningProxy::with_table_and_options(
        table(&["*"], vec![prefix_route("r", "/", action)]),
        options(body_idle_timeout),
    )
    .await;
    let (reply, took) = exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    eprintln!("stalled response body cut after {took:?}");
    proxy.stop().await;
    task.abort();
    (reply, took)
}

#[tokio::test]
async fn a_stalled_response_body_is_cut_after_the_body_idle_timeout() {
    let idle = Duration::from_millis(300);
    let (reply, took) = stalled_response(Duration::from_secs(15), idle).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("partial"), "{reply}");
    assert!(took >= idle && took < Duration::from_secs(3), "{took:?}");
}

/// Envoy's route timeout runs until the response has ended, so a body that stalls after the
/// headers is cut at the route's timeout even when the body idle timeout is far longer (Gloo's
/// 15 s against gateway-proxy's 300 s by default; `cargo xtask soak` compares both gateways).
#[tokio::test]
async fn a_stalled_response_body_is_cut_at_the_route_timeout() {
    let route_timeout = Duration::from_millis(400);
    let (reply, took) = stalled_response(route_timeout, Duration::from_secs(300)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("partial"), "{reply}");
    assert!(
        took >= route_timeout && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_and_not_blamed_on_the_upstream() {
    let echo = Upstream::echo("echo").await;
    let idle = Duration::from_millis(300);
    let proxy = RunningProxy::with_table_and_options(
        table(
            &["*"],
            vec![prefix_route("r", "/", forward(vec![(echo.cluster(), 1)]))],
        ),
        options(idle),
    )
    .await;
    let (reply, took) = exchange(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nsome",
    )
    .await;
    eprintln!("stalled request body cut after {took:?}");
    assert_eq!(status_of(&reply), Some(400), "{reply}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A chunk size that overflows is the client's fault too: 400, and no upstream failure counted.
    let (reply, _) = exchange(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
    )
    .await;
    assert_ne!(status_of(&reply), Some(503), "{reply}");
    let client = client();
    let metrics = get_url(&client, &proxy.admin_url("/metrics")).await.text();
    assert!(
        !metrics.contains(r#"code="503""#),
        "a client's broken body counted as an upstream failure:\n{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn one_authority_per_request() {
    let echo = Upstream::echo("echo").await;
    let proxy = RunningProxy::with_table(table(
        &["routed.example", "routed.example:9080"],
        vec![prefix_route("r", "/", forward(vec![(echo.cluster(), 1)]))],
    ))
    .await;
    // The absolute URI wins, and becomes the Host forwarded.
    let (reply, _) = exchange(
        proxy.addr,
        b"GET http://routed.example:9080/x HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), Some(200), "{reply}");
    let echo = echo_of(&reply);
    assert_eq!(echo.header("host"), Some("routed.example:9080"), "{reply}");
    assert!(!reply.contains("other.example"), "{reply}");

    for (what, request) in [
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: routed.example\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        ),
        (
            "HTTP/1.1 without Host",
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "https:// absolute form",
            "GET https://routed.example/ HTTP/1.1\r\nHost: routed.example\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let (reply, _) = exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&reply), Some(400), "{what}: {reply}");
    }
    // HTTP/1.0 needs no Host.
    let (reply, _) = exchange(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&reply), Some(404), "{reply}");
    proxy.stop().await;
}

//! Trace headers through the proxy: passed through untouched without tracing; with tracing on,
//! a segment of the proxy's own (as Envoy's X-Ray tracer) that the upstream request's `Parent`
//! names. A UDP socket on 127.0.0.1:0 stands in for the daemon.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use gateway_proxy::ProxyOptions;
use http::Request;
use http_body_util::Full;
use service_kit::xray::{Recorder, Sampler, Segment, TraceHeader};
use tokio::net::UdpSocket;

use crate::support::{
    Behaviour, RunningProxy, Upstream, UpstreamCluster, client, forward, prefix_route, send, table,
};

const TRACE: &str = "Root=1-5f84c7a1-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";

fn traced_get(url: String, trace: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("x-amzn-trace-id", trace)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test]
async fn without_tracing_the_trace_header_passes_through_unchanged() {
    let gateway = Upstream::start("colorgateway", Behaviour::Echo).await;
    let action = forward(vec![(gateway.cluster(), 1)]);
    let proxy = RunningProxy::with_table(table(&["*"], vec![prefix_route("c", "/", action)])).await;
    let echo = send(&client(), traced_get(proxy.url("/color"), TRACE))
        .await
        .echo();
    assert_eq!(echo.header("x-amzn-trace-id"), Some(TRACE));
    proxy.stop().await;
}

#[tokio::test]
async fn with_tracing_the_proxy_adds_its_segment_between_client_and_upstream() {
    let daemon = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let recorder = Recorder::new(
        "ingress",
        Some(daemon.local_addr().expect("addr")),
        Sampler::new(0, 1.0),
    );
    let gateway = Upstream::start("colorgateway", Behaviour::Echo).await;
    let cluster = gateway.cluster();
    let cluster_name = cluster.name.clone();
    let action = forward(vec![(cluster, 1)]);
    let proxy = RunningProxy::with_table_and_options(
        table(&["*"], vec![prefix_route("c", "/", action)]),
        ProxyOptions {
            xray: Some(Arc::new(recorder)),
            ..ProxyOptions::default()
        },
    )
    .await;
    let echo = send(&client(), traced_get(proxy.url("/color"), TRACE))
        .await
        .echo();
    let upstream_header = echo
        .header("x-amzn-trace-id")
        .expect("trace header sent on");
    let mut buffer = vec![0_u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), daemon.recv(&mut buffer))
        .await
        .expect("a segment within 10 s")
        .expect("recv");
    let segment = Segment::from_datagram(&buffer[..read]).expect("segment");
    assert_eq!(segment.name, "ingress");
    assert_eq!(
        segment.trace_id.as_deref(),
        Some("1-5f84c7a1-0123456789abcdef01234567")
    );
    assert_eq!(segment.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(
        segment.annotations["upstream_cluster"],
        cluster_name.as_str()
    );
    assert_eq!(
        upstream_header,
        format!(
            "Root=1-5f84c7a1-0123456789abcdef01234567;Parent={};Sampled=1",
            segment.id
        )
    );
    // A request with no trace starts one, sampled at rate 1.
    let echo = send(
        &client(),
        Request::get(proxy.url("/x"))
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
    .echo();
    let started = TraceHeader::parse(echo.header("x-amzn-trace-id").expect("a new trace"));
    assert!(started.root.is_some_and(|root| root.starts_with("1-")));
    assert_eq!(started.sampling, service_kit::xray::Sampling::Sampled);
    proxy.stop().await;
}

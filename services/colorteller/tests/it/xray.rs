//! X-Ray as the original's `xray.Handler` does it: the reply header, continuing a trace, and the
//! segment on the daemon's UDP port (a socket on 127.0.0.1:0 stands in for the daemon).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use colorteller::Config;
use service_kit::xray::{Segment, TraceHeader};
use test_support::Served;
use tokio::net::UdpSocket;

async fn traced_teller(daemon: &UdpSocket) -> Served<colorteller::Error> {
    let config = Config {
        color: "blue".to_owned(),
        stage: "prod".to_owned(),
        xray_daemon: Some(daemon.local_addr().unwrap()),
        ..Config::default()
    };
    Served::start(|listener, stop| colorteller::run(listener, config, stop)).await
}

async fn next_segment(daemon: &UdpSocket) -> Segment {
    let mut buffer = vec![0_u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), daemon.recv(&mut buffer))
        .await
        .expect("a segment within 10 s")
        .unwrap();
    Segment::from_datagram(&buffer[..read]).unwrap()
}

#[tokio::test]
async fn an_incoming_trace_is_continued_and_its_segment_sent() {
    let daemon = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let teller = traced_teller(&daemon).await;
    let root = "1-5f84c7a1-0123456789abcdef01234567";
    let response = reqwest::Client::new()
        .get(teller.url("/"))
        .header(
            "X-Amzn-Trace-Id",
            format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-amzn-trace-id"],
        format!("Root={root}").as_str(),
        "no Sampled= unless the request asked"
    );
    let segment = next_segment(&daemon).await;
    assert_eq!(segment.name, "prod-colorteller-blue");
    assert_eq!(segment.trace_id.as_deref(), Some(root));
    assert_eq!(segment.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(segment.id.len(), 16);
    assert!(segment.end_time >= segment.start_time);
    let http = segment.http.unwrap();
    assert_eq!(http.request.method, "GET");
    assert_eq!(http.request.url, format!("http://{}/", teller.addr));
    assert_eq!(http.request.client_ip, "127.0.0.1");
    assert_eq!(http.response.status, 200);
    assert_eq!(http.response.content_length, 4);
    teller.stop().await;
}

#[tokio::test]
async fn a_requested_decision_is_answered_and_a_new_trace_started() {
    let daemon = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let teller = traced_teller(&daemon).await;
    let client = reqwest::Client::new();
    let response = client
        .get(teller.url("/ping"))
        .header("X-Amzn-Trace-Id", "Sampled=?")
        .send()
        .await
        .unwrap();
    let header = response.headers()["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let parsed = TraceHeader::parse(&header);
    let root = parsed.root.unwrap();
    assert!(
        header.starts_with("Root=1-") && header.contains(";Sampled="),
        "{header}"
    );
    if header.ends_with(";Sampled=1") {
        let segment = next_segment(&daemon).await;
        assert_eq!(segment.trace_id.as_deref(), Some(root.as_str()));
        assert_eq!(segment.parent_id, None);
    }
    // Not sampled: the header still comes back, and nothing is sent for it.
    let response = client
        .get(teller.url("/"))
        .header(
            "X-Amzn-Trace-Id",
            "Root=1-00000001-000000000000000000000002;Sampled=0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-amzn-trace-id"],
        "Root=1-00000001-000000000000000000000002"
    );
    let sampled = client
        .get(teller.url("/"))
        .header(
            "X-Amzn-Trace-Id",
            "Root=1-00000001-000000000000000000000003;Sampled=1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sampled.status(), 200);
    // Datagrams on loopback arrive in order: the next one is the sampled request's.
    let segment = next_segment(&daemon).await;
    assert_eq!(
        segment.trace_id.as_deref(),
        Some("1-00000001-000000000000000000000003")
    );
    teller.stop().await;
}

#[tokio::test]
async fn an_absent_daemon_neither_blocks_nor_fails_requests() {
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let teller = traced_teller(&gone).await;
    drop(gone);
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .get(teller.url("/"))
            .header("X-Amzn-Trace-Id", "Sampled=1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "blue");
    }
    teller.stop().await;
}

/// Past the one-a-second reservoir the SDK samples 5 % of requests that bring no decision;
/// `xray_sampling_rate` (`COLORMESH_XRAY_SAMPLING_RATE`) 1 traces every one, which the harness
/// needs when the gateway in front starts no trace.
#[tokio::test]
async fn a_sampling_rate_of_one_traces_every_request_without_a_decision() {
    let daemon = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        color: "blue".to_owned(),
        xray_daemon: Some(daemon.local_addr().unwrap()),
        xray_sampling_rate: 1.0,
        ..Config::default()
    };
    let teller = Served::start(|listener, stop| colorteller::run(listener, config, stop)).await;
    let client = reqwest::Client::new();
    const REQUESTS: usize = 20;
    for _ in 0..REQUESTS {
        let response = client.get(teller.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut traces = std::collections::BTreeSet::new();
    for _ in 0..REQUESTS {
        traces.insert(next_segment(&daemon).await.trace_id.unwrap());
    }
    assert_eq!(traces.len(), REQUESTS, "one new trace per request");
    teller.stop().await;
}

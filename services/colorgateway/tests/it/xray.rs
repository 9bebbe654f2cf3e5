//! X-Ray across colorgateway and the real colorteller, as the originals' SDK does it: one trace,
//! the gateway's segment with a `remote` subsegment for the teller call, and the teller's segment
//! under that subsegment. A UDP socket on 127.0.0.1:0 stands in for the daemon.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use colorgateway::Config;
use service_kit::xray::{Segment, TraceHeader};
use tokio::net::UdpSocket;

use crate::support::{Served, client, gateway};

async fn segments(daemon: &UdpSocket, count: usize) -> HashMap<String, Segment> {
    let mut by_name = HashMap::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    while by_name.len() < count {
        let read = tokio::time::timeout(Duration::from_secs(10), daemon.recv(&mut buffer))
            .await
            .expect("segments within 10 s")
            .unwrap();
        let segment = Segment::from_datagram(&buffer[..read]).unwrap();
        by_name.insert(segment.name.clone(), segment);
    }
    by_name
}

#[tokio::test]
async fn a_color_request_is_one_connected_trace() {
    let daemon = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let daemon_addr = daemon.local_addr().unwrap();
    let teller = Served::start(|listener, stop| {
        colorteller::run(
            listener,
            colorteller::Config {
                color: "red".into(),
                stage: "prod".into(),
                xray_daemon: Some(daemon_addr),
                ..colorteller::Config::default()
            },
            stop,
        )
    })
    .await;
    let gateway = gateway(Config {
        stage: "prod".into(),
        xray_daemon: Some(daemon_addr),
        ..Config::new(teller.addr.to_string())
    })
    .await;
    let root = "1-5f84c7a1-00000000000000000000abcd";
    let response = client()
        .get(gateway.url("/color"))
        .header(
            "X-Amzn-Trace-Id",
            format!("Root={root};Parent=1111111111111111;Sampled=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-amzn-trace-id"],
        format!("Root={root}").as_str()
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"color":"red", "stats": {"red":1}}"#
    );

    let segments = segments(&daemon, 2).await;
    let gateway_segment = &segments["prod-gateway"];
    assert_eq!(gateway_segment.trace_id.as_deref(), Some(root));
    assert_eq!(
        gateway_segment.parent_id.as_deref(),
        Some("1111111111111111")
    );
    assert_eq!(gateway_segment.http.as_ref().unwrap().response.status, 200);
    let [call] = gateway_segment.subsegments.as_slice() else {
        panic!("one subsegment: {gateway_segment:?}")
    };
    assert_eq!(call.name, teller.addr.to_string());
    assert_eq!(call.namespace.as_deref(), Some("remote"));
    assert_eq!(call.http.as_ref().unwrap().response.status, 200);
    let teller_segment = &segments["prod-colorteller-red"];
    assert_eq!(teller_segment.trace_id.as_deref(), Some(root));
    assert_eq!(teller_segment.parent_id.as_deref(), Some(call.id.as_str()));
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn the_teller_call_carries_root_parent_and_sampled() {
    let (listener, addr) = crate::support::local_listener().await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let teller = tokio::spawn(service_kit::serve_http(
        listener,
        std::future::pending::<()>(),
        move |request| {
            let seen_tx = seen_tx.clone();
            async move {
                let header = request.headers()["x-amzn-trace-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                seen_tx.send(header).unwrap();
                http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"blue",
                )))
            }
        },
    ));
    let gateway = gateway(Config::new(addr.to_string())).await;
    let response = client()
        .get(gateway.url("/color"))
        .header("X-Amzn-Trace-Id", "Sampled=?")
        .send()
        .await
        .unwrap();
    let reply_header = response.headers()["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen = seen_rx.recv().await.unwrap();
    let downstream = TraceHeader::parse(&seen);
    let reply = TraceHeader::parse(&reply_header);
    assert_eq!(
        downstream.root, reply.root,
        "one trace: {seen} / {reply_header}"
    );
    let parent = downstream.parent.unwrap();
    assert_eq!(parent.len(), 16);
    let sampled = if reply_header.ends_with(";Sampled=1") {
        "1"
    } else {
        "0"
    };
    assert!(reply_header.contains(";Sampled="), "{reply_header}");
    assert_eq!(
        seen,
        format!(
            "Root={};Parent={parent};Sampled={sampled}",
            reply.root.unwrap()
        )
    );
    gateway.stop().await;
    teller.abort();
}

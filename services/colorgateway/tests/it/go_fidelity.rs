//! What the Go gateway does around its handlers, pinned with the exact bytes: the missing-Host
//! 400, sniffed content types, and a teller body that is not UTF-8.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use colorgateway::Config;
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{GUARD, Served, client, gateway, get, scripted_teller};

/// A teller whose every answer is `body`, byte for byte.
async fn bytes_teller(body: &'static [u8]) -> Served<service_kit::ServeError> {
    Served::start(|listener, stop| {
        service_kit::serve_http(listener, stop, move |_request| async move {
            http::Response::new(Full::new(Bytes::from_static(body)))
        })
    })
    .await
}

#[tokio::test]
async fn http_1_1_without_host_is_a_400_and_not_counted() {
    let teller = scripted_teller(&[(200, "blue")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(b"GET /color HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let without_date: Vec<&str> = reply
        .split("\r\n")
        .filter(|line| !line.starts_with("Date: "))
        .collect();
    assert_eq!(
        without_date.join("\r\n"),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: 45\r\n\r\n\
         400 Bad Request: missing required Host header"
    );
    assert_eq!(
        get(&client(), gateway.url("/color")).await.1,
        r#"{"color":"blue", "stats": {"blue":1}}"#,
        "the refused request did not reach the teller"
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn an_invalid_utf8_color_is_raw_in_color_and_escaped_in_the_stats_key() {
    let teller = bytes_teller(b" \tbl\xffue\xe2\x82\r\n").await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let response = client().get(gateway.url("/color")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"{\"color\":\"bl\xffue\xe2\x82\", \"stats\": {\"bl\\ufffdue\\ufffd\\ufffd\":1}}"
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn content_types_are_sniffed_from_each_body() {
    let client = client();
    for (color, content_type) in [
        (&b"<html>"[..], "text/plain; charset=utf-8"),
        (&b"red\x01"[..], "application/octet-stream"),
    ] {
        let teller = bytes_teller(color).await;
        let gateway = gateway(Config::new(teller.addr.to_string())).await;
        let response = client.get(gateway.url("/color")).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], content_type);
        let cleared = client
            .get(gateway.url("/color/clear"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            cleared.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        let ping = client.get(gateway.url("/ping")).send().await.unwrap();
        assert!(ping.headers().get("content-type").is_none());
        gateway.stop().await;
        teller.stop().await;
    }
}

//! echo served in process on port 0, spoken to with hand-written requests so that the target and
//! headers on the wire are exactly the ones under test.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions panic on purpose

use std::net::SocketAddr;

use echo::{Config, EchoReply};
use test_support::Served;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

async fn start(config: Config) -> Served<echo::Error> {
    Served::start(|listener, stop| echo::run(listener, config, stop)).await
}

/// Sends `head` (request line and headers, without the blank line) and returns the status line,
/// the raw response head and the decoded reply.
async fn exchange(addr: SocketAddr, head: &str) -> (String, String, EchoReply) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (response_head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = response_head.lines().next().unwrap().to_owned();
    (
        status,
        response_head.to_owned(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn reports_method_raw_path_query_host_and_protocol() {
    let echo = start(Config::default()).await;
    let (status, head, reply) = exchange(
        echo.addr,
        "DELETE //color/%2e%2E/a%20b?q=%41&q=2 HTTP/1.1\r\nHost: gw.example:8080",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert_eq!(reply.method, "DELETE");
    assert_eq!(reply.path, "//color/%2e%2E/a%20b");
    assert_eq!(reply.query.as_deref(), Some("q=%41&q=2"));
    assert_eq!(reply.host.as_deref(), Some("gw.example:8080"));
    assert_eq!(reply.protocol, "HTTP/1.1");
    echo.stop().await;
}

#[tokio::test]
async fn no_query_is_null_and_http_1_0_is_reported() {
    let echo = start(Config::default()).await;
    let (_, _, reply) = exchange(echo.addr, "GET /plain HTTP/1.0\r\nHost: h").await;
    assert_eq!(reply.query, None);
    assert_eq!(reply.protocol, "HTTP/1.0");
    assert_eq!(reply.path, "/plain");
    echo.stop().await;
}

#[tokio::test]
async fn repeated_headers_keep_every_value_in_order() {
    let echo = start(Config::default()).await;
    let (_, _, reply) = exchange(
        echo.addr,
        "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Canary: b\r\n\
             x-forwarded-for: 10.0.0.2\r\nX-Forwarded-For: 10.0.0.3",
    )
    .await;
    assert_eq!(
        reply.headers["x-forwarded-for"],
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
    assert_eq!(reply.headers["x-canary"], ["b"]);
    assert_eq!(reply.headers["host"], ["h"]);
    assert_eq!(reply.headers["connection"], ["close"]);
    echo.stop().await;
}

#[tokio::test]
async fn absolute_form_target_reports_path_and_host() {
    let echo = start(Config::default()).await;
    let (_, _, reply) = exchange(
        echo.addr,
        "GET http://colorteller.appmesh-demo:9080/x?y HTTP/1.1\r\nHost: colorteller.appmesh-demo:9080")
        .await;
    assert_eq!(reply.path, "/x");
    assert_eq!(reply.query.as_deref(), Some("y"));
    assert_eq!(reply.host.as_deref(), Some("colorteller.appmesh-demo:9080"));
    echo.stop().await;
}

#[tokio::test]
async fn identity_comes_from_the_config_and_keep_alive_survives_a_body() {
    let config = Config {
        service: Some("colorgateway-v2".into()),
        pod: Some("colorgateway-v2-7d9f".into()),
        namespace: Some("appmesh-demo".into()),
    };
    let echo = start(config).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client
            .post(format!("http://{}/submit", echo.addr))
            .body("some body the echo ignores")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let reply: EchoReply = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(reply.service.as_deref(), Some("colorgateway-v2"));
        assert_eq!(reply.pod.as_deref(), Some("colorgateway-v2-7d9f"));
        assert_eq!(reply.namespace.as_deref(), Some("appmesh-demo"));
        assert_eq!(reply.method, "POST");
    }
    echo.stop().await;
}

#[tokio::test]
async fn the_binary_documents_its_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_echo"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "SERVER_PORT",
        "BIND_ADDR",
        "SERVICE_NAME",
        "POD_NAME",
        "NAMESPACE",
    ] {
        assert!(
            help.contains(&format!("env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
}

//! tcpecho served in process on port 0; every read is guarded by a timeout so that a hang fails
//! the test instead of stalling it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions panic on purpose

use std::{net::SocketAddr, time::Duration};

use tcpecho::Config;
use test_support::Served;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

const GUARD: Duration = Duration::from_secs(10);

async fn start(config: Config) -> Served<tcpecho::Error> {
    Served::start(|listener, stop| tcpecho::run(listener, config, stop)).await
}

/// What colorgateway's `/tcpecho` does: write without a newline, then read one line.
async fn gateway_style_exchange(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"Hello from gateway").await.unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(GUARD, reader.read_line(&mut line))
        .await
        .expect("the gateway-style read must not hang")
        .unwrap();
    line
}

#[tokio::test]
async fn the_demo_greeting_reaches_a_gateway_style_client() {
    let config = Config {
        node_name: Some("mesh/color-mesh/virtualNode/tcpecho-vn".into()),
        ..Config::default()
    };
    let echo = start(config).await;
    assert_eq!(
        gateway_style_exchange(echo.addr).await,
        "Welcome, you are connected to node mesh/color-mesh/virtualNode/tcpecho-vn.\n"
    );
    echo.stop().await;
}

#[tokio::test]
async fn with_no_environment_the_gateway_style_read_does_not_hang() {
    let echo = start(Config::default()).await;
    assert_eq!(
        gateway_style_exchange(echo.addr).await,
        "Welcome, you are connected.\n"
    );
    echo.stop().await;
}

#[tokio::test]
async fn greets_then_echoes_every_chunk_verbatim() {
    let echo = start(Config {
        pod_name: Some("tcpecho-0".into()),
        ..Config::default()
    })
    .await;
    let mut stream = TcpStream::connect(echo.addr).await.unwrap();
    let greeting = b"Running on Pod tcpecho-0.\n";
    let mut seen = vec![0_u8; greeting.len()];
    tokio::time::timeout(GUARD, stream.read_exact(&mut seen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, greeting);

    let chunks: [&[u8]; 3] = [b"no newline", b"\x00\xffbinary\r\n", &[b'x'; 40_000]];
    for chunk in chunks {
        stream.write_all(chunk).await.unwrap();
        let mut back = vec![0_u8; chunk.len()];
        tokio::time::timeout(GUARD, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, chunk);
    }

    // Closing our side ends the exchange: the server closes too, with nothing more to say.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    echo.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let echo = start(Config::default()).await;
    let mut stream = TcpStream::connect(echo.addr).await.unwrap();
    let mut greeting = vec![0_u8; tcpecho::BARE_GREETING.len()];
    tokio::time::timeout(GUARD, stream.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    echo.stop().await;
    let mut rest = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn the_binary_documents_its_environment() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tcpecho"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let variables = [
        "TCP_PORT",
        "BIND_ADDR",
        "NODE_NAME",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "SERVICE_ACCOUNT",
    ];
    for variable in variables {
        assert!(
            help.contains(&format!("env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
}

#[tokio::test]
async fn the_full_greeting_is_go_echo_cab8e8f_byte_for_byte() {
    let echo = start(Config {
        node_name: Some("n1".into()),
        pod_name: Some("tcpecho-0".into()),
        pod_namespace: Some("appmesh-demo".into()),
        pod_ip: Some("10.1.2.3".into()),
        service_account: Some("default".into()),
    })
    .await;
    let expected: &[u8] = b"Welcome, you are connected to node n1.\nRunning on Pod tcpecho-0.\n\
In namespace appmesh-demo.\nWith IP address 10.1.2.3.\nService default.\n";
    let mut stream = TcpStream::connect(echo.addr).await.unwrap();
    let mut seen = vec![0_u8; expected.len()];
    tokio::time::timeout(GUARD, stream.read_exact(&mut seen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen),
        String::from_utf8_lossy(expected)
    );
    // Nothing more than the greeting before the client speaks: the first echoed byte follows it.
    stream.write_all(b"!").await.unwrap();
    let mut next = [0_u8; 1];
    tokio::time::timeout(GUARD, stream.read_exact(&mut next))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&next, b"!");
    echo.stop().await;
}

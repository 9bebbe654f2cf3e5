//! Connection limits, timeouts for every connection state, and running out of file descriptors.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_proxy::{ConnectionLimits, ProxyOptions};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::table::{Fallback, RouteTable};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

fn limits(max_connections: usize, timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        max_admin_connections: max_connections,
        request_headers_timeout: timeout,
        idle_timeout: timeout,
        body_idle_timeout: timeout,
    }
}

async fn proxy_with(limits: ConnectionLimits) -> RunningProxy {
    RunningProxy::with_table_and_options(
        RouteTable::empty(Fallback::NotFound),
        ProxyOptions {
            seed: Some(1),
            limits,
            ..ProxyOptions::default()
        },
    )
    .await
}

/// Reads until the peer closes (EOF or reset), failing after `within`; returns what was read and
/// how long the close took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => panic!(
                "the connection was still open after {within:?} (read {:?})",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => return (received, started.elapsed()),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

async fn ready_over(addr: SocketAddr) -> StatusCode {
    let (status, _) = raw_request(
        addr,
        "GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    status
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once_and_the_admin_port_still_answers() {
    let proxy = proxy_with(limits(2, Duration::from_secs(30))).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(proxy.addr).await.expect("connect"));
    }
    // The accept loop takes connections in order: once the third is closed, the two held ones
    // fill the limit.
    let mut over = TcpStream::connect(proxy.addr).await.expect("connect");
    let (received, took) = read_until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(received.is_empty(), "{received:?}");
    assert!(took < Duration::from_secs(2), "shed after {took:?}");
    assert_eq!(ready_over(proxy.admin).await, StatusCode::OK);

    held.pop();
    wait_for(
        "a connection slot to be free again",
        Duration::from_secs(5),
        || async {
            let (status, _) =
                tokio::time::timeout(Duration::from_secs(1), raw_request_or_closed(proxy.addr))
                    .await
                    .ok()??;
            (status == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;
    drop(held);
    proxy.stop().await;
}

/// One request on a fresh connection; `None` when the proxy closed it without answering.
async fn raw_request_or_closed(addr: SocketAddr) -> Option<(StatusCode, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let code = text.split_whitespace().nth(1)?.parse::<u16>().ok()?;
    Some((StatusCode::from_u16(code).ok()?, text))
}

#[tokio::test]
async fn every_connection_state_times_out_on_both_ports() {
    let timeout = Duration::from_millis(300);
    let proxy = proxy_with(limits(64, timeout)).await;
    for (port, addr) in [("data", proxy.addr), ("admin", proxy.admin)] {
        // Nothing sent.
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let (_, took) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
        assert!(
            took >= timeout / 2,
            "{port}: silent connection closed after {took:?}"
        );

        // Part of the HTTP/2 preface.
        let mut partial = TcpStream::connect(addr).await.expect("connect");
        partial
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        read_until_closed(&mut partial, Duration::from_secs(5)).await;

        // Part of an HTTP/1 request.
        let mut headers = TcpStream::connect(addr).await.expect("connect");
        headers
            .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        read_until_closed(&mut headers, Duration::from_secs(5)).await;

        // HTTP/1 keep-alive, idle after one answer.
        let mut keep_alive = TcpStream::connect(addr).await.expect("connect");
        keep_alive
            .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (received, _) = read_until_closed(&mut keep_alive, Duration::from_secs(5)).await;
        assert!(
            received.starts_with(b"HTTP/1.1 "),
            "{port}: {:?}",
            String::from_utf8_lossy(&received)
        );

        // HTTP/2, idle after one answer: the proxy closes the connection.
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        let connection = tokio::spawn(connection);
        let request = Request::get(format!("http://{addr}/ready"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("h2 answer");
        response.into_body().collect().await.expect("h2 body");
        tokio::time::timeout(Duration::from_secs(5), connection)
            .await
            .unwrap_or_else(|_| panic!("{port}: an idle HTTP/2 connection was still open"))
            .expect("connection task")
            .ok();
    }
    proxy.stop().await;
}

/// CPU time (user + system) the process has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm field")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn out_of_file_descriptors_the_proxy_backs_off_sheds_and_keeps_the_admin_port_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    // prlimit execs the proxy in place, so the child's pid is the proxy's.
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=40:40")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_gateway-proxy"))
        .args(["ingress", "--config-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "1",
            // Above the descriptors there are, so the process runs out.
            "--max-connections",
            "10000",
        ])
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start prlimit (util-linux) with gateway-proxy");
    let pid = child.id().expect("pid");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addresses, mut announced) = tokio::sync::mpsc::unbounded_channel();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let reader_log = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(listening) = service_kit::Listening::parse(&line) {
                let _ = addresses.send(listening);
            }
            reader_log.lock().expect("log").push(line);
        }
    });
    let (mut data, mut admin) = (None, None);
    while data.is_none() || admin.is_none() {
        let listening = tokio::time::timeout(Duration::from_secs(20), announced.recv())
            .await
            .expect("the proxy announced its listeners within 20 s")
            .expect("the proxy exited early");
        match listening.name.as_str() {
            "http" => data = Some(listening.addr),
            "admin" => admin = Some(listening.addr),
            _ => {}
        }
    }
    let (data, admin) = (data.expect("data"), admin.expect("admin"));

    // More idle connections than the proxy has descriptors.
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(TcpStream::connect(data).await.expect("connect"));
    }
    wait_for(
        "the proxy to report running out of descriptors",
        Duration::from_secs(10),
        || async {
            log.lock()
                .expect("log")
                .iter()
                .any(|line| line.contains("out of file descriptors"))
                .then_some(())
        },
    )
    .await;

    // A measurement window, not a readiness wait: the proxy must not spin meanwhile.
    let before = cpu_time(pid);
    let window = Duration::from_secs(1);
    let started = Instant::now();
    // New connections are closed, fast.
    let mut shed = TcpStream::connect(data).await.expect("connect");
    let (_, took) = read_until_closed(&mut shed, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "shed after {took:?}");
    // The admin port answers.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), ready_over(admin))
            .await
            .expect("admin answered within 5 s"),
        StatusCode::OK
    );
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let used = cpu_time(pid).saturating_sub(before);
    let elapsed = started.elapsed();
    eprintln!("CPU while out of descriptors: {used:?} over {elapsed:?}");
    assert!(
        used.as_secs_f64() < 0.25 * elapsed.as_secs_f64(),
        "the proxy spun: {used:?} of CPU in {elapsed:?}"
    );
    let log = log.lock().expect("log").clone();
    let warnings = log
        .iter()
        .filter(|line| line.contains("out of file descriptors"))
        .count();
    assert!(
        (1..=2).contains(&warnings),
        "one warning per listener and episode, got {warnings}: {:#?}",
        &log[..log.len().min(20)]
    );
    drop(held);
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn the_ready_port_serves_only_ready() {
    let state = gateway_proxy::ProxyState::new(ProxyOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway_proxy::serve_ready(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    assert_eq!(ready_over(addr).await, StatusCode::SERVICE_UNAVAILABLE);
    state.install_table(RouteTable::empty(Fallback::NotFound));
    assert_eq!(ready_over(addr).await, StatusCode::OK);
    for path in ["/status", "/config_dump", "/metrics"] {
        let (status, _) = raw_request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = raw_request(
        addr,
        "POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stop.send(()).ok();
    server.await.expect("task").expect("served");
}

//! Test doubles for colorgateway: a gateway on port 0, scripted tellers, a teller that never
//! answers and a recording HTTP proxy.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use colorgateway::Config;
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};

pub use test_support::Served;

pub const GUARD: Duration = Duration::from_secs(20);

pub async fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

pub async fn gateway(config: Config) -> Served<colorgateway::Error> {
    Served::start(|listener, stop| colorgateway::run(listener, config, stop)).await
}

/// A teller that answers the scripted `(status, body)` pairs in order, then repeats the last.
pub async fn scripted_teller(script: &[(u16, &str)]) -> Served<service_kit::ServeError> {
    let script: VecDeque<(u16, String)> = script
        .iter()
        .map(|(status, body)| (*status, (*body).to_owned()))
        .collect();
    let script = Arc::new(Mutex::new(script));
    Served::start(|listener, stop| {
        service_kit::serve_http(listener, stop, move |_request| {
            let script = Arc::clone(&script);
            async move {
                let (status, body) = {
                    let mut script = script.lock().unwrap();
                    if script.len() > 1 {
                        script.pop_front().unwrap()
                    } else {
                        script[0].clone()
                    }
                };
                let mut response = http::Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                response
            }
        })
    })
    .await
}

/// A teller that accepts connections and never answers; abort the handle to drop them.
pub async fn silent_teller() -> (SocketAddr, JoinHandle<()>) {
    let (listener, addr) = local_listener().await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// An address nothing listens on: bound, read back, released.
pub async fn refused_addr() -> SocketAddr {
    let (listener, addr) = local_listener().await;
    drop(listener);
    addr
}

/// What the recording proxy saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub request_line: String,
    pub host: Option<String>,
}

/// An HTTP proxy that records each request's line and Host and answers `body` itself.
pub async fn recording_proxy(
    body: &'static str,
) -> (SocketAddr, mpsc::UnboundedReceiver<ProxiedRequest>) {
    let (listener, addr) = local_listener().await;
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let host = lines
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("host"))
                    .map(|(_, value)| value.trim().to_owned());
                let _ = seen_tx.send(ProxiedRequest { request_line, host });
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, seen_rx)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = tokio::time::timeout(GUARD, client.get(url).send())
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

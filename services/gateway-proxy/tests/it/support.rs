//! In-process upstreams and a proxy harness for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_proxy::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, Route, RouteAction,
    RouteMatcher, RouteTable, VirtualHost, WeightedClusters,
};
use gateway_proxy::{ProxyOptions, ProxyState, ServeError, serve};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How a test upstream answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with an [`Echo`] JSON body.
    Echo,
    /// The first `failures` requests get `status`, later ones are echoed.
    FailFirst { failures: usize, status: StatusCode },
    /// Never answers (until the test ends).
    Hang,
}

/// What an echo upstream saw, sent back as its JSON body.
#[derive(Debug, Deserialize)]
pub struct Echo {
    pub name: String,
    pub method: String,
    /// The request target exactly as received (origin form expected).
    pub target: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body_len: usize,
}

impl Echo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// A running test upstream.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = {
            let (name, connections, requests) =
                (name.to_owned(), connections.clone(), requests.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (name, requests, behaviour) =
                        (name.clone(), requests.clone(), behaviour.clone());
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(move |request: Request<Incoming>| {
                                let seen = requests.fetch_add(1, Ordering::SeqCst);
                                let (name, behaviour) = (name.clone(), behaviour.clone());
                                async move {
                                    Ok::<_, Infallible>(
                                        answer(&name, &behaviour, seen, request).await,
                                    )
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            name: name.to_owned(),
            addr,
            connections,
            requests,
            task,
        }
    }

    pub fn cluster(&self) -> Arc<Cluster> {
        Arc::new(Cluster::new(self.name.clone(), vec![self.addr]))
    }
}

async fn answer(
    name: &str,
    behaviour: &Behaviour,
    seen: usize,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match behaviour {
        Behaviour::Hang => std::future::pending().await,
        Behaviour::FailFirst { failures, status } if seen < *failures => {
            let mut response = Response::new(Full::new(Bytes::from(format!("{name} failing"))));
            *response.status_mut() = *status;
            return response;
        }
        _ => {}
    }
    let (parts, body) = request.into_parts();
    let body_len = body
        .collect()
        .await
        .map(|body| body.to_bytes().len())
        .unwrap_or(usize::MAX);
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in &parts.headers {
        headers
            .entry(header.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echo = serde_json::json!({
        "name": name,
        "method": parts.method.as_str(),
        "target": parts.uri.to_string(),
        "headers": headers,
        "body_len": body_len,
    });
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())));
    response
        .headers_mut()
        .insert("x-upstream", name.parse().expect("header value"));
    response
        .headers_mut()
        .insert("x-hop-secret", "1".parse().expect("header value"));
    response
        .headers_mut()
        .insert("connection", "x-hop-secret".parse().expect("header value"));
    response
}

/// A proxy serving on ephemeral ports.
#[derive(Debug)]
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub state: ProxyState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl RunningProxy {
    pub async fn start(state: ProxyState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, admin, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin: admin_addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn with_table(table: RouteTable) -> Self {
        Self::with_table_and_options(
            table,
            ProxyOptions {
                seed: Some(7),
                ..ProxyOptions::default()
            },
        )
        .await
    }

    pub async fn with_table_and_options(table: RouteTable, options: ProxyOptions) -> Self {
        let state = ProxyState::new(options);
        state.install_table(table);
        Self::start(state).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("serve result");
        }
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn echo(&self) -> Echo {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not an echo ({error}): {}", self.text()))
    }
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("proxy answered within 20 s")
        .expect("request sent");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &TestClient, url: &str, host: &str) -> Reply {
    let request = Request::get(url)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(client, request).await
}

/// Sends one raw HTTP/1.1 request (e.g. absolute-form) on a fresh connection and reads the reply.
pub async fn raw_request(addr: SocketAddr, request: &str) -> (StatusCode, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect proxy");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received))
        .await
        .expect("reply within 20 s")
        .expect("read reply");
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A forward action to `destinations` with no rewrite, timeout, retry or header edits.
pub fn forward(destinations: Vec<(Arc<Cluster>, u32)>) -> ForwardAction {
    ForwardAction {
        destinations: WeightedClusters::new(destinations).expect("valid weights"),
        rewrite: PathRewrite::None,
        timeout: Some(Duration::from_secs(15)),
        retry: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
    }
}

pub fn prefix_route(name: &str, prefix: &str, action: ForwardAction) -> Route {
    Route {
        name: name.to_owned(),
        matcher: RouteMatcher::path(PathMatcher::Prefix(prefix.to_owned())),
        action: RouteAction::Forward(action),
    }
}

pub fn table(domains: &[&str], routes: Vec<Route>) -> RouteTable {
    RouteTable::new(
        vec![VirtualHost {
            name: "test-vh".to_owned(),
            domains: domains.iter().map(|domain| (*domain).to_owned()).collect(),
            routes,
        }],
        Fallback::NotFound,
    )
    .expect("valid table")
}

/// Polls `url` until it answers `status`, failing after 10 s.
pub async fn wait_for_status(client: &TestClient, url: &str, status: StatusCode) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let request = Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request");
        if let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_secs(1), client.request(request)).await
            && response.status() == status
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {status}"
        );
        tokio::task::yield_now().await;
    }
}

//! A proxy harness for the integration tests; the in-process upstreams and the helpers every
//! crate's tests share come from `test_support`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_proxy::{ProxyOptions, ProxyState, ServeError, serve};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use routing::table::{
    Cluster, Fallback, ForwardAction, HeaderEdits, PathMatcher, PathRewrite, Route, RouteAction,
    RouteMatcher, RouteTable, VirtualHost, WeightedClusters,
};
pub use test_support::{Behaviour, Echo, Upstream, wait_for, write_by_rename};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What only gateway-proxy's tests ask of an upstream: the route-table cluster that sends to it.
pub trait UpstreamCluster {
    fn cluster(&self) -> Arc<Cluster>;
}

impl UpstreamCluster for Upstream {
    fn cluster(&self) -> Arc<Cluster> {
        Arc::new(Cluster::new(self.name.clone(), vec![self.addr]))
    }
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

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
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

/// A GET with the `Host` the client derives from `url` (its authority).
pub async fn get_url(client: &TestClient, url: &str) -> Reply {
    let request = Request::get(url)
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
        host_rewrite: None,
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
    wait_for(
        &format!("{url} to answer {status}"),
        Duration::from_secs(10),
        || async {
            let request = Request::get(url)
                .body(Full::new(Bytes::new()))
                .expect("request");
            match tokio::time::timeout(Duration::from_secs(1), client.request(request)).await {
                Ok(Ok(response)) if response.status() == status => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

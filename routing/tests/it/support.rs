//! Test support for the translator's end-to-end tests: named in-process backends, a proxy
//! (gateway-proxy) started from a config directory, and small HTTP helpers.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gateway_proxy::{DirSource, ProxyOptions, ProxyState, serve};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing::Role;
use serde_json::{Value, json};
pub use test_support::{endpoint_slice, manifest, wait_for, write_by_rename};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A backend that answers every request with `{"name", "target", "host"}`.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let requests = Arc::new(AtomicUsize::new(0));
        let task = {
            let (name, requests) = (name.to_owned(), Arc::clone(&requests));
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (name, requests) = (name.clone(), Arc::clone(&requests));
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |request: Request<Incoming>| {
                                requests.fetch_add(1, Ordering::Relaxed);
                                let body = json!({
                                    "name": name,
                                    "target": request.uri().to_string(),
                                    "host": request.headers().get("host").and_then(|h| h.to_str().ok()),
                                });
                                async move {
                                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                                        body.to_string(),
                                    ))))
                                }
                            },
                        );
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
            requests,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A proxy served on ephemeral loopback ports.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub state: ProxyState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy reading `dir` for `role`, with its first configuration loaded.
    pub async fn from_dir(dir: &Path, role: Role) -> Self {
        let state = ProxyState::new(ProxyOptions {
            seed: Some(20190402),
            ..ProxyOptions::default()
        });
        state.set_source(DirSource::new(dir, role));
        state.reload().await.expect("first load");
        Self::start(state).await
    }

    pub async fn start(state: ProxyState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                serve(listener, admin, state, async move {
                    stopped.await.ok();
                })
                .await
                .expect("serve");
            }
        });
        Self {
            addr,
            admin: admin_addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(task) = self.task.take() {
            task.await.expect("proxy task");
        }
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a backend saw, as it answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }

    /// The name of the backend that answered.
    pub fn backend(&self) -> String {
        self.json()["name"].as_str().unwrap_or_default().to_owned()
    }
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Result<Reply, String> {
    let response = client
        .request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(client: &TestClient, url: &str) -> Reply {
    let request = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(client, request)
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

pub async fn get_with_host(client: &TestClient, url: &str, host: &str) -> Reply {
    let request = Request::get(url)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(client, request)
        .await
        .unwrap_or_else(|error| panic!("GET {url} (Host {host}): {error}"))
}

pub async fn admin_json(client: &TestClient, proxy: &Proxy, path: &str) -> Value {
    let reply = get(client, &proxy.admin_url(path)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    reply.json()
}

/// `POST /reload`: answers once the new configuration is live, with the new status.
pub async fn reload(client: &TestClient, proxy: &Proxy) -> Value {
    let request = Request::post(proxy.admin_url("/reload"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = send(client, request).await.expect("POST /reload");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()
}

/// A keep-alive HTTP/1.1 connection that sends request targets as given, so absolute-form
/// requests (`GET http://host:port/ HTTP/1.1`) reach the proxy the way an app using it as
/// `HTTP_PROXY` sends them.
pub struct RawConnection {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to proxy");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Self { sender, task }
    }

    pub async fn get(&mut self, target: &str, host: &str) -> Reply {
        self.sender.ready().await.expect("connection ready");
        let request = Request::get(target)
            .header("host", host)
            .body(Empty::new())
            .expect("request");
        let response = self
            .sender
            .send_request(request)
            .await
            .unwrap_or_else(|error| panic!("GET {target}: {error}"));
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// The status entry of `resource` in a `/status` (or `POST /reload`) answer.
pub fn resource_status<'a>(status: &'a Value, resource: &str) -> &'a Value {
    status["resources"]
        .as_array()
        .and_then(|resources| resources.iter().find(|entry| entry["resource"] == resource))
        .unwrap_or_else(|| panic!("no status for {resource} in {status:#}"))
}

/// Whether `count` successes out of `trials` is within five standard deviations of the expected
/// share `p` (a false failure is rarer than one in a million).
pub fn within_five_sigma(count: usize, trials: usize, p: f64) -> bool {
    let expected = trials as f64 * p;
    let sd = (trials as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - expected).abs() <= 5.0 * sd
}

//! In-process HTTP upstreams on 127.0.0.1:0 that tests route a gateway to. Each answers with JSON
//! describing the request it received, so a test sees which upstream answered and what reached it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How an upstream answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with an [`Echo`] JSON body.
    Echo,
    /// The first `failures` requests get `status`, later ones are echoed.
    FailFirst { failures: usize, status: StatusCode },
    /// Never answers (until the upstream is dropped).
    Hang,
}

/// What an upstream saw, sent back as its JSON body: `{"name", "method", "target", "host",
/// "headers", "body_len"}`.
#[derive(Debug, Deserialize)]
pub struct Echo {
    /// The upstream's name.
    pub name: String,
    pub method: String,
    /// The request target exactly as received (origin form expected).
    pub target: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body_len: usize,
}

impl Echo {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// A running upstream; it stops serving when dropped.
///
/// Echoed replies also carry `x-upstream: <name>` and a hop-by-hop header, `x-hop-secret`,
/// nominated by `Connection`, which a proxy must not pass on.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Requests received so far.
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// An upstream that echoes every request.
    pub async fn echo(name: &str) -> Self {
        Self::start(name, Behaviour::Echo).await
    }

    /// An upstream that answers as `behaviour` says.
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept(
            listener,
            name.to_owned(),
            behaviour,
            Arc::clone(&connections),
            Arc::clone(&requests),
        ));
        Self {
            name: name.to_owned(),
            addr,
            connections,
            requests,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn accept(
    listener: TcpListener,
    name: String,
    behaviour: Behaviour,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let (name, requests, behaviour) = (name.clone(), Arc::clone(&requests), behaviour.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let seen = requests.fetch_add(1, Ordering::SeqCst);
                let (name, behaviour) = (name.clone(), behaviour.clone());
                async move { Ok::<_, Infallible>(answer(&name, &behaviour, seen, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
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
        "host": parts.headers.get("host").and_then(|host| host.to_str().ok()),
        "headers": headers,
        "body_len": body_len,
    });
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())));
    let headers = response.headers_mut();
    headers.insert("x-upstream", name.parse().expect("header value"));
    headers.insert("x-hop-secret", "1".parse().expect("header value"));
    headers.insert("connection", "x-hop-secret".parse().expect("header value"));
    response
}

#[cfg(test)]
mod tests {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;

    async fn get(upstream: &Upstream, path: &str) -> (StatusCode, Bytes) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = Request::get(upstream.url(path))
            .header("host", "example")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = client.request(request).await.expect("answer");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }

    #[tokio::test]
    async fn an_echo_names_the_upstream_and_the_request() {
        let upstream = Upstream::echo("blue").await;
        let (status, body) = get(&upstream, "/a?b=1").await;
        assert_eq!(status, StatusCode::OK);
        let echo: Echo = serde_json::from_slice(&body).expect("echo JSON");
        assert_eq!(echo.name, "blue");
        assert_eq!(echo.method, "GET");
        assert_eq!(echo.target, "/a?b=1");
        assert_eq!(echo.host.as_deref(), Some("example"));
        assert_eq!(echo.header("host"), Some("example"));
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_first_failures_get_the_status_then_requests_are_echoed() {
        let upstream = Upstream::start(
            "flaky",
            Behaviour::FailFirst {
                failures: 1,
                status: StatusCode::SERVICE_UNAVAILABLE,
            },
        )
        .await;
        assert_eq!(get(&upstream, "/").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&upstream, "/").await.0, StatusCode::OK);
    }
}

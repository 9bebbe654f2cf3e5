//! One keep-alive HTTP/1.1 client connection and the request it repeats: the machinery every
//! generator in [`crate::traffic`] sends through (the scenario steps' [`super::drive`], the
//! benchmark's [`super::window`]) and the benchmark's propagation probe.
//!
//! hyper's HTTP/1.1 client connection over a tokio stream, not a pooled client: the callers need
//! to know which connection a reply came over and to keep it for as long as the server does.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{TrafficError, TrafficRequest};

/// Replies larger than this are cut off and reported as an error: every reply the harness judges
/// is a small JSON document or a color.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Why one request got no complete reply.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP/1.1 handshake with {address}: {source}")]
    Handshake {
        address: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("connection closed: {0}")]
    Closed(#[source] hyper::Error),
    #[error("request failed: {0}")]
    Request(#[source] hyper::Error),
    #[error("reading the body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The caller's per-request timeout ran out first.
    #[error("no complete reply within {}", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
}

/// A complete reply.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One open connection.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
}

impl Connection {
    /// Connects (with `TCP_NODELAY`) and completes the HTTP/1.1 handshake; the connection's driver
    /// runs on a task of its own until either side closes it.
    pub async fn open(address: SocketAddr) -> Result<Self, SendError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| SendError::Connect { address, source })?;
        // Latency matters more than packet count for small request/reply pairs.
        let _ = stream.set_nodelay(true);
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| SendError::Handshake { address, source })?;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!(%error, "traffic connection ended");
            }
        });
        Ok(Self { sender })
    }

    /// Whether the server (or an error) closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole reply (up to 1 MiB of body).
    pub async fn send(&mut self, template: &RequestTemplate) -> Result<Response, SendError> {
        self.send_with(template, None).await
    }

    /// [`Connection::send`] with one more header (a per-request key).
    pub async fn send_with(
        &mut self,
        template: &RequestTemplate,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> Result<Response, SendError> {
        self.sender.ready().await.map_err(SendError::Closed)?;
        let mut request = template.build();
        if let Some((name, value)) = extra {
            request.headers_mut().append(name, value);
        }
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(SendError::Request)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(SendError::Body)?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// The parts of a [`TrafficRequest`] that are the same every time, validated once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    uri: http::Uri,
    host: HeaderValue,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl RequestTemplate {
    pub fn new(request: &TrafficRequest) -> Result<Self, TrafficError> {
        let url = request.base.as_str().to_owned();
        let bad = |message: String| TrafficError::Request {
            url: url.clone(),
            message,
        };
        let uri: http::Uri = request
            .path_and_query
            .parse()
            .map_err(|error| bad(format!("path {:?}: {error}", request.path_and_query)))?;
        let host = match &request.host {
            Some(host) => host.clone(),
            None => authority_of(&request.base)
                .ok_or_else(|| bad("the base URL has no host".to_owned()))?,
        };
        let host =
            HeaderValue::from_str(&host).map_err(|error| bad(format!("host {host:?}: {error}")))?;
        Ok(Self {
            method: request.method.clone(),
            uri,
            host,
            headers: request.headers.clone(),
        })
    }

    fn build(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(http::header::HOST, self.host.clone());
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        request
    }
}

fn authority_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_uses_the_base_authority_as_host() {
        let request = TrafficRequest {
            base: url::Url::parse("http://127.0.0.1:9999/ignored").unwrap(),
            path_and_query: "/appmesh/color?x=1".to_owned(),
            method: Method::GET,
            host: None,
            headers: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )],
        };
        let built = RequestTemplate::new(&request).unwrap().build();
        assert_eq!(built.uri(), "/appmesh/color?x=1");
        assert_eq!(built.headers()["host"], "127.0.0.1:9999");
        assert_eq!(built.headers()["x-a"], "1");
        let bad = TrafficRequest {
            path_and_query: "not a path".to_owned(),
            ..request
        };
        assert!(RequestTemplate::new(&bad).is_err());
    }
}

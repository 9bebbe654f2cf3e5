//! The conformance backend: answers any request with JSON describing exactly what it received.
//!
//! Every method and path answers `200` with an [`EchoReply`] as `application/json`. The path and
//! query are reported raw, as they arrived on the wire (no percent-decoding, no `//` collapsing),
//! so that a harness behind a gateway can see precisely what the gateway forwarded. The request
//! body is read and discarded.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use service_kit::{HttpResponse, ServeError};
use tokio::net::TcpListener;

/// Who this echo instance says it is; each field is `null` in replies when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `SERVICE_NAME` in the binary.
    pub service: Option<String>,
    /// `POD_NAME` in the binary.
    pub pod: Option<String>,
    /// `NAMESPACE` in the binary.
    pub namespace: Option<String>,
}

/// What echo saw, exactly as it serialises it; the harness deserialises the same type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The path as sent, before any decoding, e.g. `//color` or `/a%2Fb`.
    pub path: String,
    /// The raw query string without the `?`, or `None` when the target had no `?`.
    pub query: Option<String>,
    /// The `Host` header, or the authority of an absolute-form target when there is no `Host`.
    pub host: Option<String>,
    /// Every header, by lowercase name, with repeated headers' values in the order received.
    pub headers: BTreeMap<String, Vec<String>>,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    /// The `SERVICE_NAME` this instance was started with.
    pub service: Option<String>,
    /// The `POD_NAME` this instance was started with.
    pub pod: Option<String>,
    /// The `NAMESPACE` this instance was started with.
    pub namespace: Option<String>,
}

/// Why echo stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("echo stopped serving")]
    Serve(#[from] ServeError),
}

/// Serves echo on `listener` until `shutdown` completes; requests in flight then finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let config = Arc::new(config);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(service = ?config.service, "echo starting");
        service_kit::announce_listening("http", addr);
    }
    service_kit::serve_http(listener, shutdown, move |request| {
        let config = Arc::clone(&config);
        async move {
            let reply = describe(&request, &config);
            // Drain the body so the connection stays usable for the next request.
            if let Err(error) = request.into_body().collect().await {
                tracing::debug!(%error, "request body ended early");
            }
            to_response(&reply)
        }
    })
    .await?;
    Ok(())
}

/// Describes `request` as echo reports it.
pub fn describe<B>(request: &Request<B>, config: &Config) -> EchoReply {
    let lossy = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(lossy(value));
    }
    let uri = request.uri();
    let host = request.headers().get(header::HOST).map(lossy).or_else(|| {
        uri.authority()
            .map(|authority| authority.as_str().to_owned())
    });
    EchoReply {
        method: request.method().as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        host,
        headers,
        protocol: format!("{:?}", request.version()),
        service: config.service.clone(),
        pod: config.pod.clone(),
        namespace: config.namespace.clone(),
    }
}

fn to_response(reply: &EchoReply) -> HttpResponse {
    match serde_json::to_vec(reply) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot serialise the echo reply");
            let mut response = Response::new(Full::new(Bytes::from_static(b"cannot serialise")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_request_target_raw() {
        let request = Request::builder()
            .method("PATCH")
            .uri("//a%2Fb/./c?x=1&x=%20")
            .header("X-Twice", "one")
            .header("x-twice", "two")
            .header("host", "colorgateway.appmesh-demo:9080")
            .body(())
            .unwrap();
        let config = Config {
            service: Some("echo-a".into()),
            pod: None,
            namespace: None,
        };
        let reply = describe(&request, &config);
        assert_eq!(reply.method, "PATCH");
        assert_eq!(reply.path, "//a%2Fb/./c");
        assert_eq!(reply.query.as_deref(), Some("x=1&x=%20"));
        assert_eq!(
            reply.host.as_deref(),
            Some("colorgateway.appmesh-demo:9080")
        );
        assert_eq!(reply.headers["x-twice"], ["one", "two"]);
        assert_eq!(reply.protocol, "HTTP/1.1");
        assert_eq!(reply.service.as_deref(), Some("echo-a"));
        assert_eq!(reply.pod, None);
    }

    #[test]
    fn absolute_form_without_host_reports_the_authority() {
        let request = Request::builder()
            .uri("http://colorteller:9080/?")
            .body(())
            .unwrap();
        let reply = describe(&request, &Config::default());
        assert_eq!(reply.host.as_deref(), Some("colorteller:9080"));
        assert_eq!(reply.path, "/");
        assert_eq!(
            reply.query.as_deref(),
            Some(""),
            "an empty query is not a missing one"
        );
    }

    #[test]
    fn serialised_reply_round_trips_with_nulls() {
        let request = Request::builder().uri("/").body(()).unwrap();
        let reply = describe(&request, &Config::default());
        let json = serde_json::to_string(&reply).unwrap();
        assert!(
            json.contains(r#""query":null"#) && json.contains(r#""namespace":null"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<EchoReply>(&json).unwrap(), reply);
    }
}

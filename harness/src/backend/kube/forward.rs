//! Reaching pods from the machine running the harness: a local listener that port-forwards each
//! connection to a ready pod behind a Service (the kind/K3s proxy URL), and one-shot HTTP GETs
//! through a port-forward (the gateway's admin `/status`).

use std::net::SocketAddr;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, ListParams};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One admin request may not take longer than this; callers poll with their own deadlines.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A Service's ready pod and the container port one of the Service's ports targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) pod: String,
    pub(crate) port: u16,
    /// The pod's address (`status.podIP`), for reaching it directly where the pod network is
    /// this machine's (`--backend apiserver`).
    pub(crate) ip: Option<std::net::IpAddr>,
}

/// How to find the pods behind a Service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceRef {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// The Service port whose targetPort to use (`http`); `None` uses `port_number`, else
    /// `fallback_port` directly.
    pub(crate) port_name: Option<String>,
    /// The Service port (its `port` number) whose targetPort to use when `port_name` is `None`:
    /// a Gateway's listener port on the Service a Gateway API implementation deployed.
    pub(crate) port_number: Option<i32>,
    /// The container port when the Service port names no number.
    pub(crate) fallback_port: u16,
}

fn pod_is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

/// A ready pod of the Service and the port to forward to.
pub(crate) async fn ready_target(
    client: &Client,
    service: &ServiceRef,
) -> Result<Target, ForwardError> {
    let services: Api<Service> = Api::namespaced(client.clone(), &service.namespace);
    let found = services
        .get(&service.name)
        .await
        .map_err(|source| ForwardError::ReadService {
            service: service.label(),
            source,
        })?;
    let spec = found.spec.unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(ForwardError::NoSelector {
            service: service.label(),
        });
    }
    let port = match (&service.port_name, service.port_number) {
        (None, None) => service.fallback_port,
        (name, number) => spec
            .ports
            .unwrap_or_default()
            .iter()
            .find(|p| match name {
                Some(name) => p.name.as_deref() == Some(name.as_str()),
                None => Some(p.port) == number,
            })
            .and_then(|p| match &p.target_port {
                Some(IntOrString::Int(port)) => u16::try_from(*port).ok(),
                Some(IntOrString::String(_)) => None,
                None => u16::try_from(p.port).ok(),
            })
            .unwrap_or(service.fallback_port),
    };
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &service.namespace);
    let list = pods
        .list(&ListParams::default().labels(&labels))
        .await
        .map_err(|source| ForwardError::ListPods {
            service: service.label(),
            source,
        })?;
    let total = list.items.len();
    let pod =
        list.items
            .into_iter()
            .find(pod_is_ready)
            .ok_or_else(|| ForwardError::NoReadyPod {
                service: service.label(),
                total,
                labels,
            })?;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    Ok(Target {
        pod: pod.metadata.name.unwrap_or_default(),
        port,
        ip,
    })
}

/// A local listener on 127.0.0.1 forwarding every connection to a ready pod of a Service.
#[derive(Debug)]
pub(crate) struct LocalForward {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl LocalForward {
    pub(crate) async fn start(client: Client, service: ServiceRef) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let (mut socket, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "port-forward listener failed");
                        return;
                    }
                };
                let client = client.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    if let Err(error) = forward_one(&client, &service, &mut socket).await {
                        tracing::warn!(%peer, service = %service.name, %error, "port-forward failed");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward_one(
    client: &Client,
    service: &ServiceRef,
    socket: &mut tokio::net::TcpStream,
) -> Result<(), ForwardError> {
    let target = ready_target(client, service).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &service.namespace);
    let what = || format!("port-forward to pod {} port {}", target.pod, target.port);
    let mut forwarder = pods
        .portforward(&target.pod, &[target.port])
        .await
        .map_err(|source| ForwardError::PortForward {
            what: what(),
            source,
        })?;
    let mut upstream = forwarder
        .take_stream(target.port)
        .ok_or_else(|| ForwardError::NoStream { what: what() })?;
    let copied = tokio::io::copy_bidirectional(socket, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    copied.map(|_| ()).map_err(ForwardError::Copy)
}

/// `GET <path>` on a pod's port through a port-forward: the status code and body.
pub(crate) async fn get_through_forward(
    client: &Client,
    namespace: &str,
    target: &Target,
    path: &str,
) -> Result<(u16, Bytes), ForwardError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!(
        "GET {path} on pod {namespace}/{} port {}",
        target.pod, target.port
    );
    let request = async {
        let mut forwarder = pods
            .portforward(&target.pod, &[target.port])
            .await
            .map_err(|source| ForwardError::PortForward {
                what: format!("{what}: port-forward"),
                source,
            })?;
        let stream = forwarder
            .take_stream(target.port)
            .ok_or_else(|| ForwardError::NoStream {
                what: format!("{what}: port-forward"),
            })?;
        let answer = get_over(stream, path, &what).await;
        forwarder.abort();
        answer
    };
    within_request_timeout(&what, request).await
}

/// `GET <path>` on an address this machine reaches directly (a pod's loopback or address on
/// `--backend apiserver`, where the pod network is local): the status code and body.
pub(crate) async fn get_direct(
    address: SocketAddr,
    path: &str,
) -> Result<(u16, Bytes), ForwardError> {
    let what = format!("GET {path} on {address}");
    let request = async {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|source| ForwardError::Connect {
                what: what.clone(),
                source,
            })?;
        get_over(stream, path, &what).await
    };
    within_request_timeout(&what, request).await
}

/// `request`, or [`ForwardError::NoAnswer`] after [`REQUEST_TIMEOUT`].
async fn within_request_timeout<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, ForwardError>>,
) -> Result<T, ForwardError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| ForwardError::NoAnswer {
            what: what.to_owned(),
            within: REQUEST_TIMEOUT,
        })?
}

/// One HTTP/1.1 `GET` over an open stream.
async fn get_over<S>(stream: S, path: &str, what: &str) -> Result<(u16, Bytes), ForwardError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| ForwardError::Http {
        what: what.to_owned(),
        source,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(http)?;
    let driver = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::new())
        .map_err(|source| ForwardError::Request {
            what: what.to_owned(),
            source,
        })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| ForwardError::Body {
            what: what.to_owned(),
            source,
        })?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

impl ServiceRef {
    /// `namespace/name`, as messages name the Service.
    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why reaching a Service's pod through a port-forward failed; every variant names the Service
/// or the request.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot read Service {service}: {source}")]
    ReadService {
        service: String,
        source: ::kube::Error,
    },
    #[error("Service {service} selects no pods")]
    NoSelector { service: String },
    #[error("cannot list the pods of Service {service}: {source}")]
    ListPods {
        service: String,
        source: ::kube::Error,
    },
    #[error("no ready pod behind Service {service} ({total} pods match {labels})")]
    NoReadyPod {
        service: String,
        total: usize,
        labels: String,
    },
    #[error("{what}: {source}")]
    PortForward { what: String, source: ::kube::Error },
    #[error("{what} gave no stream")]
    NoStream { what: String },
    #[error("{0}")]
    Copy(std::io::Error),
    #[error("{what}: {source}")]
    Http { what: String, source: hyper::Error },
    #[error("{what}: {source}")]
    Connect {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Request { what: String, source: http::Error },
    #[error("{what}: reading the body: {source}")]
    Body { what: String, source: hyper::Error },
    #[error("{what}: no answer within {within:?}")]
    NoAnswer { what: String, within: Duration },
}

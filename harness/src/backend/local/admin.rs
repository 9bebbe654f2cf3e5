//! Talking to the proxies' admin listeners (`/ready`, `/status`) and probing pods over HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use model::gloo::State;
use serde::Deserialize;

/// One request may not take longer than this; the callers poll with their own deadlines.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A small HTTP/1.1 client for loopback requests.
#[derive(Debug, Clone)]
pub(crate) struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpProbe {
    pub(crate) fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET http://<addr><path>`: the status code and body.
    pub(crate) async fn get(
        &self,
        addr: SocketAddr,
        path: &str,
    ) -> Result<(u16, Bytes), AdminError> {
        let url = format!("http://{addr}{path}");
        let uri: http::Uri = url.parse().map_err(|source| AdminError::Uri {
            url: url.clone(),
            source,
        })?;
        let request = async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|source| AdminError::Request {
                    method: "GET",
                    url: url.clone(),
                    source,
                })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|source| AdminError::Body {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| AdminError::NoAnswer {
                method: "GET",
                url: url.clone(),
                within: REQUEST_TIMEOUT,
            })?
    }

    /// `POST http://<addr>/reload`: returns once the proxy serves what its config folder holds now.
    pub(crate) async fn reload(&self, admin: SocketAddr) -> Result<(), AdminError> {
        let url = format!("http://{admin}/reload");
        let request = http::Request::post(&url)
            .body(Empty::<Bytes>::new())
            .map_err(|source| AdminError::BuildRequest {
                url: url.clone(),
                source,
            })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| AdminError::Request {
                        method: "POST",
                        url: url.clone(),
                        source,
                    })?;
            let status = response.status().as_u16();
            // Drain the body so the connection can be reused.
            let _ = response.into_body().collect().await;
            if status == 200 {
                Ok(())
            } else {
                Err(AdminError::Status {
                    method: "POST",
                    url: url.clone(),
                    status,
                })
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| AdminError::NoAnswer {
                method: "POST",
                url: url.clone(),
                within: REQUEST_TIMEOUT,
            })?
    }

    /// A proxy's `/status`.
    pub(crate) async fn status(&self, admin: SocketAddr) -> Result<ProxyStatus, AdminError> {
        let (status, body) = self.get(admin, "/status").await?;
        let url = format!("http://{admin}/status");
        if status != 200 {
            return Err(AdminError::Status {
                method: "GET",
                url,
                status,
            });
        }
        serde_json::from_slice(&body).map_err(|source| AdminError::Json { url, source })
    }
}

/// A failed exchange with a proxy's admin listener (or a pod probed over HTTP); every variant
/// names the URL.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("bad URI {url}: {source}")]
    Uri {
        url: String,
        source: http::uri::InvalidUri,
    },
    #[error("bad request {url}: {source}")]
    BuildRequest { url: String, source: http::Error },
    /// No connection, or the exchange broke off.
    #[error("{method} {url}: {source}")]
    Request {
        method: &'static str,
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("GET {url}: reading the body: {source}")]
    Body { url: String, source: hyper::Error },
    #[error("{method} {url}: no answer within {within:?}")]
    NoAnswer {
        method: &'static str,
        url: String,
        within: Duration,
    },
    #[error("{method} {url} answered {status}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
    },
    #[error("GET {url}: unexpected JSON: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
}

/// The parts of gateway-proxy's `/status` the backend reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct ProxyStatus {
    #[serde(default)]
    pub(crate) generation: u64,
    #[serde(default)]
    pub(crate) resources: Vec<StatusEntry>,
    #[serde(default)]
    pub(crate) load_errors: Vec<serde_json::Value>,
}

/// One resource's status as a proxy reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct StatusEntry {
    /// `Kind namespace/name`.
    pub(crate) resource: String,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) reasons: Vec<String>,
    #[serde(default)]
    pub(crate) resource_version: Option<String>,
    /// For GatewayClasses, Gateways and HTTPRoutes: the Gateway API `status` object.
    #[serde(default)]
    pub(crate) gateway_api: Option<serde_json::Value>,
}

impl StatusEntry {
    pub(crate) fn version(&self) -> Option<u64> {
        self.resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
    }

    pub(crate) fn state(&self) -> State {
        match self.state.as_str() {
            "Accepted" => State::Accepted,
            "Rejected" => State::Rejected,
            "Warning" => State::Warning,
            _ => State::Pending,
        }
    }
}

impl ProxyStatus {
    /// Entries by resource (`Kind namespace/name`).
    pub(crate) fn by_resource(&self) -> BTreeMap<&str, &StatusEntry> {
        self.resources
            .iter()
            .map(|e| (e.resource.as_str(), e))
            .collect()
    }
}

/// Why the proxy `proxy`, whose `/status` entries are `entries`, does not serve a change yet
/// (`key` written at `version`, or deleted); `None` once it does. A proxy that `must_report` the
/// resource is behind until it lists it; others (a sidecar that does not route to it) are not.
pub(crate) fn lag(
    entries: &BTreeMap<&str, &StatusEntry>,
    proxy: &str,
    key: &model::ResourceKey,
    version: u64,
    deleted: bool,
    must_report: bool,
) -> Option<String> {
    let label = key.to_string();
    match (entries.get(label.as_str()), deleted) {
        (Some(entry), false) if entry.version().is_some_and(|v| v < version) => Some(format!(
            "{proxy} serves {label} at resourceVersion {}, not {version}",
            entry.version().unwrap_or_default()
        )),
        (None, false) if must_report => Some(format!("{proxy} does not report {label} yet")),
        (Some(entry), true) if entry.version().is_some() => {
            Some(format!("{proxy} still serves deleted {label}"))
        }
        _ => None,
    }
}

/// Where the Gateway API `status` of an entry misses the wanted condition reasons (type to
/// reason): on a Gateway its own conditions, on a route every parent's. Empty when all hold.
pub(crate) fn condition_mismatches(
    status: Option<&serde_json::Value>,
    wanted: &BTreeMap<String, String>,
) -> Vec<String> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let Some(status) = status else {
        return vec!["no Gateway API status reported".to_owned()];
    };
    // A route lists its parents, each with conditions; a Gateway or GatewayClass has its own.
    let holders: Vec<(String, &serde_json::Value)> = match status.get("parents") {
        Some(serde_json::Value::Array(parents)) => parents
            .iter()
            .map(|parent| {
                let name = parent
                    .pointer("/parentRef/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?");
                (format!("parent {name}: "), parent)
            })
            .collect(),
        _ => vec![(String::new(), status)],
    };
    if holders.is_empty() {
        return vec!["no parents in the route's status".to_owned()];
    }
    let mut missing = Vec::new();
    for (label, holder) in holders {
        let conditions = holder
            .get("conditions")
            .and_then(|c| c.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (kind, reason) in wanted {
            let found = conditions
                .iter()
                .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(kind.as_str()));
            let field = |c: &serde_json::Value, name: &str| {
                c.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            match found {
                Some(c) if field(c, "reason") == *reason => {}
                Some(c) => missing.push(format!(
                    "{label}{kind}={} ({}), not {reason}",
                    field(c, "status"),
                    field(c, "reason")
                )),
                None => missing.push(format!("{label}no {kind} condition")),
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_reasons_are_checked_on_every_route_parent() {
        let route = serde_json::json!({"parents": [
            {"parentRef": {"name": "gw"}, "controllerName": "colormesh.dev/gateway-proxy",
             "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted"},
                {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound"}]},
            {"parentRef": {"name": "other"}, "controllerName": "colormesh.dev/gateway-proxy",
             "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
        ]});
        let wanted = BTreeMap::from([
            ("Accepted".to_owned(), "Accepted".to_owned()),
            ("ResolvedRefs".to_owned(), "BackendNotFound".to_owned()),
        ]);
        assert_eq!(
            condition_mismatches(Some(&route), &wanted),
            ["parent other: no ResolvedRefs condition"]
        );
        let wrong = BTreeMap::from([("ResolvedRefs".to_owned(), "RefNotPermitted".to_owned())]);
        assert_eq!(
            condition_mismatches(Some(&route["parents"][0]), &wrong),
            ["ResolvedRefs=False (BackendNotFound), not RefNotPermitted"]
        );
        assert_eq!(
            condition_mismatches(None, &wanted),
            ["no Gateway API status reported"]
        );
        assert!(condition_mismatches(None, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn reads_the_status_document() {
        let text = r#"{"generation": 3, "resources": [{"resource": "VirtualService gloo-system/colorgateway", "state": "Accepted", "reasons": [], "resource_version": "12"}, {"resource": "RouteTable", "state": "Rejected", "reasons": ["x"], "resource_version": null}], "load_errors": []}"#;
        let status: ProxyStatus = serde_json::from_str(text).expect("parses");
        let entries = status.by_resource();
        let vs = entries["VirtualService gloo-system/colorgateway"];
        assert_eq!((vs.state(), vs.version()), (State::Accepted, Some(12)));
        assert_eq!(entries["RouteTable"].version(), None);
    }
}

//! Endpoint resolution shared by both roles: a Kubernetes Service port, through the
//! EndpointSlices of that Service, to the ready pod addresses and the target port, the way Gloo's
//! Kubernetes EDS and kube-proxy do it (pod IPs and target ports, never the cluster IP).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use model::{Resource, ResourceKey, ResourceKind, ResourceSet};

/// The label the EndpointSlice controller puts on every slice of a Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The ready endpoints of port `port` (the Service port, not the target port) of Service
/// `namespace/service`. No Service, no such port, or no ready endpoint: an empty list (the data
/// plane then answers 503 `no healthy upstream`, as Envoy does for an empty cluster).
pub(crate) fn service_endpoints(
    resources: &ResourceSet,
    namespace: &str,
    service: &str,
    port: u16,
) -> Vec<SocketAddr> {
    let key = ResourceKey::new(ResourceKind::Service, Some(namespace), service);
    let Some(Resource::Service(definition)) = resources.get(&key).map(|loaded| &loaded.resource)
    else {
        return Vec::new();
    };
    let ports = definition
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_deref())
        .unwrap_or_default();
    let Some(service_port) = ports
        .iter()
        .find(|candidate| candidate.port == i32::from(port))
    else {
        return Vec::new();
    };
    // Slices name their ports after the Service's ports (an unnamed port is named "").
    let port_name = service_port.name.as_deref().unwrap_or("");
    let mut endpoints = Vec::new();
    for (_, slice) in resources.endpoint_slices() {
        let slice_namespace = slice
            .metadata
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default");
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL));
        if slice_namespace != namespace || owner.map(String::as_str) != Some(service) {
            continue;
        }
        let slice_ports = slice.ports.as_deref().unwrap_or_default();
        let slice_port = slice_ports
            .iter()
            .find(|candidate| candidate.name.as_deref().unwrap_or("") == port_name)
            .or(match slice_ports {
                [only] => Some(only),
                _ => None,
            });
        let Some(number) = slice_port
            .and_then(|slice_port| slice_port.port)
            .and_then(|number| u16::try_from(number).ok())
            .filter(|number| *number != 0)
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            // Kubernetes: an unknown readiness (no condition) is to be read as ready.
            if endpoint
                .conditions
                .as_ref()
                .and_then(|conditions| conditions.ready)
                == Some(false)
            {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    let endpoint = SocketAddr::new(ip, number);
                    if !endpoints.contains(&endpoint) {
                        endpoints.push(endpoint);
                    }
                }
            }
        }
    }
    endpoints
}

/// A static upstream host that resolved to nothing usable; reported as a warning on the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnresolvedHost {
    #[error("{host:?} resolves to no address")]
    NoAddress { host: String },
    /// The resolver's error, kept as text so that a cached failure can be reported again.
    #[error("cannot resolve {host:?}: {reason}")]
    Failed { host: String, reason: String },
}

/// Resolves static host names, each `(host, port)` at most once per translation.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    cache: HashMap<(String, u16), Result<Vec<SocketAddr>, UnresolvedHost>>,
}

impl Resolver {
    /// IP literals are used as they are; names go through the system resolver.
    pub(crate) fn resolve(
        &mut self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, UnresolvedHost> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        self.cache
            .entry((host.to_owned(), port))
            .or_insert_with(|| match (host, port).to_socket_addrs() {
                Ok(addresses) => {
                    let addresses: Vec<SocketAddr> = addresses.collect();
                    if addresses.is_empty() {
                        Err(UnresolvedHost::NoAddress {
                            host: host.to_owned(),
                        })
                    } else {
                        Ok(addresses)
                    }
                }
                Err(error) => Err(UnresolvedHost::Failed {
                    host: host.to_owned(),
                    reason: error.to_string(),
                }),
            })
            .clone()
    }
}

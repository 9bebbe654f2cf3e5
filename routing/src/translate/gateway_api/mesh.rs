//! Mesh role (GAMMA): the sidecar beside one workload routes that workload's calls to Services.
//!
//! Every port of every Service is a virtual host answering to the Service's DNS names with that
//! port (and without a port for port 80); the bare `name` only for Services of the workload's own
//! namespace, where the DNS search path makes it resolve. Such a virtual host forwards to the
//! Service's own endpoints, unless HTTPRoutes have the Service as a parent (`group: ""`,
//! `kind: Service`, optionally narrowed to one port by `port` or `sectionName`): then it holds the
//! routes' rules, in the spec's precedence order, and a call matching none is answered 404.
//!
//! Producer routes (in the Service's namespace) apply to every client; consumer routes (in the
//! client's namespace, for a Service elsewhere) replace them for that client (GEP-1294). Route
//! `hostnames` do not apply to Service parents and are ignored. Hosts that are not Services go
//! straight to where they resolve (Istio's `ALLOW_ANY`), with Envoy's default 15 s timeout, as the
//! App Mesh sidecar does.

use std::collections::BTreeMap;

use model::gateway_api::{ParentReference, RouteStatus};
use model::{Resource, ResourceKey, ResourceKind, ResourceSet};

use super::rules::{ActionPlan, Backends, DEFAULT_REQUEST_TIMEOUT};
use super::status::{NO_MATCHING_PARENT, Refusal, route_parent_status};
use super::{Attached, compile_with_history, ordered_routes, report_refusal};
use crate::table::{Fallback, PathMatcher, Route, RouteMatcher, VirtualHost};
use crate::translate::report::Report;
use crate::translate::{Effective, FieldPath, GatewayApiStatus, History, namespaced_name};

/// `(namespace, service, port)`.
type ServicePort = (String, String, u16);

pub(crate) fn translate(
    resources: &ResourceSet,
    history: &History<'_>,
    client_namespace: &str,
    report: &mut Report,
    effective: &mut Effective,
) -> (Vec<VirtualHost>, Fallback) {
    let mut backends = Backends::new(resources);
    let mut producers: BTreeMap<ServicePort, Vec<Attached>> = BTreeMap::new();
    let mut consumers: BTreeMap<ServicePort, Vec<Attached>> = BTreeMap::new();
    for (loaded, route) in resources.http_routes() {
        if !route
            .spec
            .parent_refs
            .iter()
            .any(ParentReference::is_service)
        {
            continue;
        }
        let key = loaded.resource.key();
        let (route_namespace, _) = namespaced_name(&key);
        let (served, verdict) =
            compile_with_history(&key, loaded, history, report, effective, &mut backends);
        if let Some(served) = &served {
            for parent in served.parent_refs.iter().filter(|p| p.is_service()) {
                let Ok(ports) = service_ports(resources, parent, &route_namespace) else {
                    continue;
                };
                let service_namespace = parent.namespace_or(&route_namespace);
                let table = if service_namespace == route_namespace {
                    &mut producers
                } else if route_namespace == client_namespace {
                    &mut consumers
                } else {
                    // A consumer route of another namespace's workloads.
                    continue;
                };
                for port in ports {
                    table
                        .entry((service_namespace.to_owned(), parent.name.clone(), port))
                        .or_default()
                        .extend(Attached::all(served));
                }
            }
        }
        let generation = loaded.resource.metadata().generation;
        let parents_field = FieldPath::new("spec").field("parentRefs");
        let mut parents = Vec::new();
        for (index, parent) in route.spec.parent_refs.iter().enumerate() {
            if !parent.is_service() {
                continue;
            }
            let attached = service_ports(resources, parent, &route_namespace)
                .map(|_| "Route is accepted".to_owned());
            report_refusal(
                report,
                (&key, loaded),
                &parents_field.index(index),
                &verdict,
                &attached,
            );
            parents.push(route_parent_status(parent, &verdict, attached, generation));
        }
        report.gateway_api(
            &key,
            loaded,
            GatewayApiStatus::Route(RouteStatus { parents }),
        );
    }

    let mut virtual_hosts = Vec::new();
    for (loaded, service) in resources.services() {
        let (namespace, name) = namespaced_name(&loaded.resource.key());
        let ports = service
            .spec
            .as_ref()
            .and_then(|spec| spec.ports.as_deref())
            .unwrap_or_default();
        for port in ports {
            let Ok(port) = u16::try_from(port.port) else {
                continue;
            };
            let service_port = (namespace.clone(), name.clone(), port);
            let entries = consumers
                .remove(&service_port)
                .or_else(|| producers.remove(&service_port));
            let routes = match entries {
                Some(entries) => ordered_routes(entries),
                None => {
                    let cluster = backends.cluster(&namespace, &name, port);
                    vec![Route {
                        name: format!("{namespace}/{name}:{port}"),
                        matcher: RouteMatcher::path(PathMatcher::PathSeparatedPrefix(
                            "/".to_owned(),
                        )),
                        action: ActionPlan::forward_to(cluster).instantiate(),
                    }]
                }
            };
            virtual_hosts.push(VirtualHost {
                name: format!("mesh:{namespace}/{name}:{port}"),
                domains: service_domains(&namespace, &name, port, client_namespace),
                routes,
            });
        }
    }
    (
        virtual_hosts,
        Fallback::Passthrough {
            timeout: Some(DEFAULT_REQUEST_TIMEOUT),
        },
    )
}

/// The names a client may call a Service port by.
pub(super) fn service_domains(
    namespace: &str,
    name: &str,
    port: u16,
    client_namespace: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    if namespace == client_namespace {
        names.push(name.to_owned());
    }
    names.push(format!("{name}.{namespace}"));
    names.push(format!("{name}.{namespace}.svc"));
    names.push(format!("{name}.{namespace}.svc.cluster.local"));
    let mut domains: Vec<String> = names.iter().map(|host| format!("{host}:{port}")).collect();
    if port == 80 {
        domains.extend(names);
    }
    domains
}

/// The ports of the parent Service a route attaches to, or why none.
fn service_ports(
    resources: &ResourceSet,
    parent: &ParentReference,
    route_namespace: &str,
) -> Result<Vec<u16>, Refusal> {
    let namespace = parent.namespace_or(route_namespace);
    let key = ResourceKey::new(ResourceKind::Service, Some(namespace), &parent.name);
    let Some(Resource::Service(service)) = resources.get(&key).map(|loaded| &loaded.resource)
    else {
        return Err(Refusal::new(
            NO_MATCHING_PARENT,
            format!("Service {namespace}/{} not found", parent.name),
        ));
    };
    let ports: Vec<u16> = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|port| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|section| port.name.as_ref() == Some(section))
                && parent
                    .port
                    .is_none_or(|number| i32::from(number) == port.port)
        })
        .filter_map(|port| u16::try_from(port.port).ok())
        .collect();
    if ports.is_empty() {
        return Err(Refusal::new(
            NO_MATCHING_PARENT,
            format!(
                "Service {namespace}/{} has no port{}{}",
                parent.name,
                parent
                    .section_name
                    .as_ref()
                    .map(|section| format!(" named {section}"))
                    .unwrap_or_default(),
                parent
                    .port
                    .map(|port| format!(" {port}"))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(ports)
}

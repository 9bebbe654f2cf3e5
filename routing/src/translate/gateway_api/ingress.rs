//! Ingress role: the Gateways of colormesh's GatewayClasses (`controllerName:
//! colormesh.dev/gateway-proxy`) and the HTTPRoutes attached to them.
//!
//! One data-plane port serves every listener of every served Gateway: a listener's `port` is
//! reported and used to pick listeners (`parentRefs[].port`, conflicts), but it is not bound
//! separately, so listeners are told apart by hostname only. Each distinct effective hostname
//! (listener hostname ∩ route hostnames) becomes one virtual host holding every rule attached
//! there. A hostname that a Gloo VirtualService already claims stays Gloo's.

use std::collections::{BTreeMap, BTreeSet};

use model::gateway_api::{
    CONTROLLER_NAME, Condition, FromNamespaces, GROUP, GatewayClassStatus, GatewayStatus, Listener,
    ListenerStatus, ParentReference, RouteGroupKind, RouteStatus,
};
use model::k8s::{Labels, selector_matches};
use model::{Loaded, ResourceKey, ResourceSet};

use super::rules::Backends;
use super::status::{
    ACCEPTED, CONFLICTED, NO_MATCHING_LISTENER_HOSTNAME, NO_MATCHING_PARENT,
    NOT_ALLOWED_BY_LISTENERS, PROGRAMMED, RESOLVED_REFS, Refusal, route_parent_status,
};
use super::{Attached, compile_with_history, ordered_routes, report_refusal};
use crate::table::VirtualHost;
use crate::translate::report::Report;
use crate::translate::{
    Effective, FieldPath, GatewayApiStatus, GatewayName, History, NamespacedName, Problem,
    namespaced_name,
};

/// A listener of a served Gateway.
#[derive(Debug)]
struct ListenerInfo {
    spec: Listener,
    /// Serves routes: HTTP, not conflicted, HTTPRoute among its kinds.
    usable: bool,
    supported_kinds: Vec<RouteGroupKind>,
    conditions: Vec<Condition>,
    attached: i32,
}

#[derive(Debug)]
struct GatewayInfo<'a> {
    key: ResourceKey,
    loaded: &'a Loaded,
    generation: Option<i64>,
    listeners: Vec<ListenerInfo>,
}

fn http_route_kind() -> RouteGroupKind {
    RouteGroupKind {
        group: GROUP.to_owned(),
        kind: "HTTPRoute".to_owned(),
    }
}

pub(crate) fn translate(
    resources: &ResourceSet,
    history: &History<'_>,
    only: Option<&GatewayName>,
    claimed: &BTreeMap<String, String>,
    report: &mut Report,
    effective: &mut Effective,
) -> Vec<VirtualHost> {
    let mut classes = BTreeSet::new();
    for (loaded, class) in resources.gateway_classes() {
        if class.spec.controller_name != CONTROLLER_NAME {
            continue;
        }
        let key = loaded.resource.key();
        classes.insert(key.name.clone());
        let generation = loaded.resource.metadata().generation;
        report.gateway_api(
            &key,
            loaded,
            GatewayApiStatus::GatewayClass(GatewayClassStatus {
                conditions: vec![Condition::new(
                    ACCEPTED,
                    true,
                    ACCEPTED,
                    format!("{CONTROLLER_NAME} serves the Gateways of this class"),
                    generation,
                )],
            }),
        );
    }

    let mut gateways: BTreeMap<NamespacedName, GatewayInfo<'_>> = BTreeMap::new();
    for (loaded, gateway) in resources.gateways() {
        if !classes.contains(&gateway.spec.gateway_class_name) {
            continue;
        }
        let key = loaded.resource.key();
        let (namespace, name) = namespaced_name(&key);
        if only.is_some_and(|only| only.namespace != namespace || only.name != name) {
            continue;
        }
        report.seen(&key, loaded);
        let generation = loaded.resource.metadata().generation;
        let listeners = gateway
            .spec
            .listeners
            .iter()
            .enumerate()
            .map(|(index, listener)| {
                analyse_listener(
                    index,
                    listener,
                    &gateway.spec.listeners,
                    claimed,
                    generation,
                )
            })
            .collect();
        gateways.insert(
            (namespace, name),
            GatewayInfo {
                key,
                loaded,
                generation,
                listeners,
            },
        );
    }

    let served_gateways: BTreeSet<NamespacedName> = gateways.keys().cloned().collect();
    let mut backends = Backends::new(resources);
    let mut hosts: BTreeMap<String, Vec<Attached>> = BTreeMap::new();
    for (loaded, route) in resources.http_routes() {
        let key = loaded.resource.key();
        let (route_namespace, _) = namespaced_name(&key);
        let ours = |parent: &ParentReference| {
            parent.is_gateway()
                && served_gateways.contains(&(
                    parent.namespace_or(&route_namespace).to_owned(),
                    parent.name.clone(),
                ))
        };
        // Routes none of whose parents is a served Gateway are not ours: no status from here.
        if !route.spec.parent_refs.iter().any(ours) {
            continue;
        }
        let (served, verdict) =
            compile_with_history(&key, loaded, history, report, effective, &mut backends);

        // Attach the version in effect.
        let mut attached_to: BTreeSet<String> = BTreeSet::new();
        if let Some(served) = &served {
            for parent in served.parent_refs.iter().filter(|parent| ours(parent)) {
                let gateway_key = (
                    parent.namespace_or(&route_namespace).to_owned(),
                    parent.name.clone(),
                );
                let Some(gateway) = gateways.get_mut(&gateway_key) else {
                    continue;
                };
                let Ok(listeners) = attachments(
                    parent,
                    &route_namespace,
                    &served.hostnames,
                    gateway,
                    resources,
                ) else {
                    continue;
                };
                for (listener, hostnames) in listeners {
                    let mut attached = false;
                    for hostname in hostnames {
                        if claimed.contains_key(&hostname) {
                            continue;
                        }
                        attached = true;
                        if attached_to.insert(hostname.clone()) {
                            hosts
                                .entry(hostname)
                                .or_default()
                                .extend(Attached::all(served));
                        }
                    }
                    if attached {
                        gateway.listeners[listener].attached += 1;
                    }
                }
            }
        }

        // The status of the current version, per parent that is ours.
        let generation = loaded.resource.metadata().generation;
        let parents_field = FieldPath::new("spec").field("parentRefs");
        let mut parents = Vec::new();
        for (index, parent) in route.spec.parent_refs.iter().enumerate() {
            if !ours(parent) {
                continue;
            }
            let gateway = &gateways[&(
                parent.namespace_or(&route_namespace).to_owned(),
                parent.name.clone(),
            )];
            let attached = attachments(parent, &route_namespace, &route_hostnames(route), gateway, resources)
                .map(|listeners| {
                    let mut lost: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                    for (_, hostnames) in &listeners {
                        for hostname in hostnames {
                            if let Some(owner) = claimed.get(hostname) {
                                lost.entry(owner.as_str()).or_default().push(hostname);
                            }
                        }
                    }
                    if lost.is_empty() {
                        "Route is accepted".to_owned()
                    } else {
                        let lost: Vec<String> = lost
                            .into_iter()
                            .map(|(owner, hostnames)| {
                                format!(
                                    "hostname(s) {} already served by Gloo VirtualService {owner}, which keeps them",
                                    hostnames.join(", ")
                                )
                            })
                            .collect();
                        let message = format!(
                            "Route is accepted, but not served for {}",
                            lost.join("; ")
                        );
                        report.warning(
                            &key,
                            loaded,
                            Problem::new(&parents_field.index(index), message.clone()),
                        );
                        message
                    }
                });
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

    for gateway in gateways.values() {
        let status = gateway_status(gateway);
        let listeners_field = FieldPath::new("spec").field("listeners");
        for (index, listener) in status.listeners.iter().enumerate() {
            for condition in &listener.conditions {
                let problem = match condition.condition_type.as_str() {
                    CONFLICTED => condition.is_true(),
                    _ => !condition.is_true(),
                };
                if problem && condition.condition_type != PROGRAMMED {
                    report.warning(
                        &gateway.key,
                        gateway.loaded,
                        Problem::new(
                            &listeners_field.index(index),
                            format!(
                                "{}={} ({}): {}",
                                condition.condition_type,
                                condition.status,
                                condition.reason,
                                condition.message
                            ),
                        ),
                    );
                }
            }
        }
        if status
            .conditions
            .iter()
            .any(|condition| condition.condition_type == ACCEPTED && !condition.is_true())
        {
            report.error(
                &gateway.key,
                gateway.loaded,
                Problem::new(&listeners_field, "no listener can serve routes"),
            );
        }
        report.gateway_api(
            &gateway.key,
            gateway.loaded,
            GatewayApiStatus::Gateway(status),
        );
    }

    hosts
        .into_iter()
        .map(|(hostname, entries)| VirtualHost {
            name: format!("gateway-api:{hostname}"),
            domains: vec![hostname],
            routes: ordered_routes(entries),
        })
        .collect()
}

fn route_hostnames(route: &model::gateway_api::HTTPRoute) -> Vec<String> {
    route
        .spec
        .hostnames
        .iter()
        .map(|host| host.to_ascii_lowercase())
        .collect()
}

fn analyse_listener(
    index: usize,
    listener: &Listener,
    all: &[Listener],
    claimed: &BTreeMap<String, String>,
    generation: Option<i64>,
) -> ListenerInfo {
    let condition = |kind: &str, status: bool, reason: &str, message: String| {
        Condition::new(kind, status, reason, message, generation)
    };
    let protocol_ok = listener.protocol == "HTTP";
    let (supported_kinds, invalid_kinds): (Vec<RouteGroupKind>, Vec<RouteGroupKind>) =
        if listener.allowed_routes.kinds.is_empty() {
            (vec![http_route_kind()], Vec::new())
        } else {
            listener
                .allowed_routes
                .kinds
                .iter()
                .cloned()
                .partition(|kind| *kind == http_route_kind())
        };
    let hostname = listener.hostname.as_deref().map(str::to_ascii_lowercase);
    let twins: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(other, candidate)| {
            *other != index
                && candidate.port == listener.port
                && candidate.hostname.as_deref().map(str::to_ascii_lowercase) == hostname
        })
        .map(|(_, candidate)| candidate.name.as_str())
        .collect();
    let shown_host = hostname.clone().unwrap_or_else(|| "*".to_owned());
    let mut conditions = Vec::new();
    conditions.push(if protocol_ok {
        condition(ACCEPTED, true, ACCEPTED, "Listener is accepted".to_owned())
    } else {
        condition(
            ACCEPTED,
            false,
            "UnsupportedProtocol",
            format!(
                "protocol {} is not supported (colormesh serves HTTP listeners only)",
                listener.protocol
            ),
        )
    });
    conditions.push(if invalid_kinds.is_empty() {
        condition(
            RESOLVED_REFS,
            true,
            RESOLVED_REFS,
            "every route kind is supported".to_owned(),
        )
    } else {
        let kinds: Vec<String> = invalid_kinds
            .iter()
            .map(|kind| format!("{}/{}", kind.group, kind.kind))
            .collect();
        condition(
            RESOLVED_REFS,
            false,
            "InvalidRouteKinds",
            format!(
                "route kinds {} are not supported (only HTTPRoute is)",
                kinds.join(", ")
            ),
        )
    });
    conditions.push(if !twins.is_empty() {
        condition(
            CONFLICTED,
            true,
            "HostnameConflict",
            format!(
                "listeners {} and {} both serve hostname {shown_host} on port {}",
                listener.name,
                twins.join(", "),
                listener.port
            ),
        )
    } else if let Some(owner) = claimed.get(&shown_host) {
        // Informational: routes attached here with more specific hostnames are still served.
        condition(
            CONFLICTED,
            true,
            "HostnameConflict",
            format!(
                "hostname {shown_host} is already served by Gloo VirtualService {owner}, which keeps it: routes attached here are not served for {shown_host}"
            ),
        )
    } else {
        condition(CONFLICTED, false, "NoConflicts", "no conflict".to_owned())
    });
    let usable = protocol_ok && twins.is_empty() && !supported_kinds.is_empty();
    ListenerInfo {
        spec: listener.clone(),
        usable,
        supported_kinds,
        conditions,
        attached: 0,
    }
}

fn gateway_status(gateway: &GatewayInfo<'_>) -> GatewayStatus {
    let generation = gateway.generation;
    let usable = gateway
        .listeners
        .iter()
        .filter(|listener| listener.usable)
        .count();
    let all = gateway.listeners.len();
    let listeners = gateway
        .listeners
        .iter()
        .map(|listener| {
            let mut conditions = listener.conditions.clone();
            conditions.push(if listener.usable {
                Condition::new(
                    PROGRAMMED,
                    true,
                    PROGRAMMED,
                    "served on the proxy's data-plane port (listener ports are not bound separately)",
                    generation,
                )
            } else {
                Condition::new(
                    PROGRAMMED,
                    false,
                    "Invalid",
                    "the listener is not served",
                    generation,
                )
            });
            ListenerStatus {
                name: listener.spec.name.clone(),
                supported_kinds: listener.supported_kinds.clone(),
                attached_routes: listener.attached,
                conditions,
            }
        })
        .collect();
    let conditions = if usable == 0 {
        vec![
            Condition::new(
                ACCEPTED,
                false,
                "ListenersNotValid",
                "no listener is valid",
                generation,
            ),
            Condition::new(PROGRAMMED, false, "Invalid", "nothing to serve", generation),
        ]
    } else {
        vec![
            if usable == all {
                Condition::new(ACCEPTED, true, ACCEPTED, "Gateway is accepted", generation)
            } else {
                Condition::new(
                    ACCEPTED,
                    true,
                    "ListenersNotValid",
                    format!("{} of {all} listeners are not valid", all - usable),
                    generation,
                )
            },
            Condition::new(
                PROGRAMMED,
                true,
                PROGRAMMED,
                "served by the proxy's data-plane port",
                generation,
            ),
        ]
    };
    GatewayStatus {
        conditions,
        listeners,
    }
}

/// The listeners of `gateway` a route attaches to through `parent`, with the effective hostnames
/// there; or why it attaches nowhere.
fn attachments(
    parent: &ParentReference,
    route_namespace: &str,
    hostnames: &[String],
    gateway: &GatewayInfo<'_>,
    resources: &ResourceSet,
) -> Result<Vec<(usize, Vec<String>)>, Refusal> {
    let (gateway_namespace, gateway_name) = namespaced_name(&gateway.key);
    let candidates: Vec<(usize, &ListenerInfo)> = gateway
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, listener)| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|section| *section == listener.spec.name)
                && parent.port.is_none_or(|port| port == listener.spec.port)
        })
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::new(
            NO_MATCHING_PARENT,
            format!(
                "Gateway {gateway_namespace}/{gateway_name} has no listener{}{}",
                parent
                    .section_name
                    .as_ref()
                    .map(|section| format!(" named {section}"))
                    .unwrap_or_default(),
                parent
                    .port
                    .map(|port| format!(" on port {port}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let labels = namespace_labels(resources, route_namespace);
    let allowed: Vec<(usize, &ListenerInfo)> = candidates
        .into_iter()
        .filter(|(_, listener)| {
            listener.usable && allows(listener, &gateway_namespace, route_namespace, &labels)
        })
        .collect();
    if allowed.is_empty() {
        return Err(Refusal::new(
            NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of Gateway {gateway_namespace}/{gateway_name} that serves HTTPRoutes allows routes from namespace {route_namespace}"
            ),
        ));
    }
    let matched: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .map(|(index, listener)| {
            (
                index,
                intersect(listener.spec.hostname.as_deref(), hostnames),
            )
        })
        .filter(|(_, hostnames)| !hostnames.is_empty())
        .collect();
    if matched.is_empty() {
        return Err(Refusal::new(
            NO_MATCHING_LISTENER_HOSTNAME,
            format!(
                "no hostname of the route ({}) matches a listener of Gateway {gateway_namespace}/{gateway_name}",
                hostnames.join(", ")
            ),
        ));
    }
    Ok(matched)
}

fn allows(
    listener: &ListenerInfo,
    gateway_namespace: &str,
    route_namespace: &str,
    labels: &Labels,
) -> bool {
    let namespaces = &listener.spec.allowed_routes.namespaces;
    match namespaces.from {
        FromNamespaces::All => true,
        FromNamespaces::Same => gateway_namespace == route_namespace,
        FromNamespaces::Selector => namespaces
            .selector
            .as_ref()
            .is_some_and(|selector| selector_matches(selector, labels)),
    }
}

/// A namespace's labels, with the `kubernetes.io/metadata.name` label the API server sets on
/// every namespace (also for a namespace the files do not define).
fn namespace_labels(resources: &ResourceSet, namespace: &str) -> Labels {
    let mut labels: Labels = resources
        .namespaces()
        .find(|(_, candidate)| candidate.metadata.name.as_deref() == Some(namespace))
        .and_then(|(_, candidate)| candidate.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert(
        "kubernetes.io/metadata.name".to_owned(),
        namespace.to_owned(),
    );
    labels
}

/// The effective hostnames of a route under a listener (the spec's intersection): with neither
/// set, `*`; with one set, that one; with both, each route hostname the listener's covers, and
/// the listener's hostname where a route wildcard covers it.
pub(super) fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener.map(str::to_ascii_lowercase);
    let mut hostnames: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".to_owned()],
        (None, false) => route.to_vec(),
        (Some(listener), true) => vec![listener],
        (Some(listener), false) => route
            .iter()
            .filter_map(|hostname| {
                if covers(&listener, hostname) {
                    Some(hostname.clone())
                } else if covers(hostname, &listener) {
                    Some(listener.clone())
                } else {
                    None
                }
            })
            .collect(),
    };
    let mut seen = BTreeSet::new();
    hostnames.retain(|hostname| seen.insert(hostname.clone()));
    hostnames
}

/// Whether pattern `outer` covers every host `inner` stands for: equal, or `outer` is `*.suffix`
/// and `inner` ends with `.suffix` after at least one more label (`*.example.com` covers
/// `a.example.com`, `a.b.example.com` and `*.a.example.com`, not `example.com`).
fn covers(outer: &str, inner: &str) -> bool {
    if outer == inner {
        return true;
    }
    match outer.strip_prefix('*') {
        Some(suffix) => inner.len() > suffix.len() && inner.ends_with(suffix),
        None => false,
    }
}

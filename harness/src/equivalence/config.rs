//! What the equivalence run reads from each side's manifests: the routes (their matchers, hosts,
//! weighted destinations, retries and timeouts), and how a destination shows in a reply (the
//! deployment that served it, or the color a colorteller deployment answers). Read with `model`
//! only: no route is evaluated here; the probes built from these matchers go to both gateways,
//! and only what the gateways did is compared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use model::{Loaded, ResourceSet};
use serde::Serialize;

use super::EquivalenceError;

/// Which flavour a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteFlavor {
    /// A Gloo VirtualService route (the edge).
    Gloo,
    /// An App Mesh VirtualRouter route (the mesh).
    AppMesh,
    /// An HTTPRoute rule attached to a Gateway (the edge).
    GatewayApi,
    /// An HTTPRoute rule attached to a Service (GAMMA, the mesh).
    Gamma,
}

impl RouteFlavor {
    /// Whether the route serves the ingress (else a mesh sidecar).
    pub fn is_edge(self) -> bool {
        matches!(self, Self::Gloo | Self::GatewayApi)
    }
}

/// A path matcher, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum PathRule {
    Prefix(String),
    Exact(String),
    Regex(String),
}

/// One matcher of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    pub path: Option<PathRule>,
    /// `false` when the matcher says the path is case-insensitive.
    pub case_sensitive: bool,
    /// (name, value when it is a plain value).
    pub headers: Vec<(String, Option<String>)>,
    pub query: Vec<(String, Option<String>)>,
    pub methods: Vec<String>,
}

/// A weighted destination: how it shows in a reply (`label`) and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightedLabel {
    pub label: String,
    pub weight: u32,
}

/// One route of one side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteInfo {
    pub flavor: RouteFlavor,
    /// File, resource and field (`manifests/...: VirtualService gloo-system/colorgateway
    /// spec.virtualHost.routes[0]`).
    pub source: String,
    pub matches: Vec<MatchRule>,
    /// The hosts the route serves (`*` for any).
    pub hosts: Vec<String>,
    /// The destinations by reply label, when more than one gets traffic: deployments
    /// (`namespace/name`, the echo's served-by) at the edge, colors in the mesh.
    pub weighted: Vec<WeightedLabel>,
    /// The deployments the route may send to (for the served-by classes).
    pub deployments: BTreeSet<String>,
    /// The retry policy, in words, when one is configured.
    pub retry: Option<String>,
    /// The timeout, in words, when one is configured.
    pub timeout: Option<String>,
    /// The shortest configured timeout (route, request, backend request or per try), for the
    /// timeout probe.
    pub shortest_timeout: Option<std::time::Duration>,
}

impl RouteInfo {
    /// The route's first matcher's path as a plain request path (the prefix or exact value);
    /// `/` for a regex or no path.
    pub fn base_path(&self) -> String {
        match self.matches.first().and_then(|m| m.path.as_ref()) {
            Some(PathRule::Prefix(p) | PathRule::Exact(p)) if !p.is_empty() => p.clone(),
            _ => "/".to_owned(),
        }
    }

    /// A host the route serves, for requests that must reach it.
    pub fn a_host(&self) -> Option<String> {
        self.hosts.iter().find_map(|h| concrete_host(h))
    }
}

/// A host name a request can carry for a domain pattern (`*` → none: any host works).
pub(crate) fn concrete_host(pattern: &str) -> Option<String> {
    let pattern = pattern.split(':').next().unwrap_or(pattern);
    if pattern == "*" || pattern.is_empty() {
        None
    } else if let Some(rest) = pattern.strip_prefix("*.") {
        Some(format!("probe.{rest}"))
    } else if let Some(rest) = pattern.strip_prefix('*') {
        Some(format!("probe{rest}"))
    } else {
        Some(pattern.to_owned())
    }
}

/// Everything one side's folder says.
#[derive(Debug, Clone)]
pub struct SideConfig {
    pub resources: ResourceSet,
    pub routes: Vec<RouteInfo>,
}

impl SideConfig {
    /// Loads every manifest in `dir` (recursively) and reads its routes.
    pub fn load(dir: &Path) -> Result<Self, EquivalenceError> {
        let parsed = model::load_dir(dir).map_err(|source| EquivalenceError::Read {
            path: dir.to_owned(),
            source,
        })?;
        if let Some(first) = parsed.errors.first() {
            return Err(EquivalenceError::Manifest {
                path: first.file.clone(),
                message: parsed
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        let resources = ResourceSet::from_loaded(parsed.resources);
        let routes = read_routes(&resources);
        Ok(Self { resources, routes })
    }

    /// The deployments (`namespace/name`) whose image is a colorteller.
    pub fn tellers(&self) -> Vec<String> {
        self.resources
            .deployments()
            .filter(|(_, d)| {
                containers(d).iter().any(|c| {
                    c.image
                        .as_deref()
                        .is_some_and(|i| i.contains("colorteller"))
                })
            })
            .map(|(l, _)| key_name(l))
            .collect()
    }
}

fn containers(d: &model::k8s::Deployment) -> Vec<model::k8s::openapi::api::core::v1::Container> {
    d.spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

fn key_name(loaded: &Loaded) -> String {
    let key = loaded.resource.key();
    format!(
        "{}/{}",
        key.namespace.as_deref().unwrap_or("default"),
        key.name
    )
}

fn where_(loaded: &Loaded, field: &str) -> String {
    format!(
        "{}: {} {field}",
        loaded.origin.file.display(),
        loaded.resource.key()
    )
}

/// The deployments a label selector (a Service's or a VirtualNode's) picks in a namespace.
fn deployments_selected(
    resources: &ResourceSet,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    if selector.is_empty() {
        return BTreeSet::new();
    }
    resources
        .deployments()
        .filter(|(l, _)| l.resource.key().namespace.as_deref().unwrap_or("default") == namespace)
        .filter(|(_, d)| {
            let labels = d
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .map(|(l, _)| key_name(l))
        .collect()
}

fn service_deployments(resources: &ResourceSet, namespace: &str, name: &str) -> BTreeSet<String> {
    resources
        .services()
        .filter(|(_, s)| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .flat_map(|(_, s)| {
            let selector = s
                .spec
                .as_ref()
                .and_then(|spec| spec.selector.clone())
                .unwrap_or_default();
            deployments_selected(resources, namespace, &selector)
        })
        .collect()
}

/// A Gloo upstream reference: an Upstream in the set (kube type), else a discovered name
/// (`<namespace>-<service>-<port>`).
fn upstream_deployments(resources: &ResourceSet, namespace: &str, name: &str) -> BTreeSet<String> {
    for (_, upstream) in resources.upstreams() {
        if upstream.metadata.name.as_deref() == Some(name)
            && upstream.metadata.namespace.as_deref().unwrap_or("default") == namespace
            && let model::gloo::UpstreamType::Kube(kube) = &upstream.spec.upstream_type
        {
            return service_deployments(resources, &kube.service_namespace, &kube.service_name);
        }
    }
    for (_, service) in resources.services() {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let svc = service.metadata.name.as_deref().unwrap_or_default();
        for port in service.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            if model::discovery::upstream_name(ns, svc, port.port) == name {
                return service_deployments(resources, ns, svc);
            }
        }
    }
    BTreeSet::new()
}

/// The color a colorteller deployment answers (its `COLOR` env), else the deployment name.
fn color_of(resources: &ResourceSet, deployment: &str) -> String {
    resources
        .deployments()
        .find(|(l, _)| key_name(l) == deployment)
        .and_then(|(_, d)| {
            containers(d).into_iter().find_map(|c| {
                c.env
                    .into_iter()
                    .flatten()
                    .find(|e| e.name == "COLOR")
                    .and_then(|e| e.value)
            })
        })
        .unwrap_or_else(|| deployment.to_owned())
}

/// Weighted labels: each destination's deployments (one each), merged by label; empty unless
/// two or more labels get traffic.
fn weighted(
    destinations: &[(BTreeSet<String>, u32)],
    label: impl Fn(&str) -> String,
) -> Vec<WeightedLabel> {
    let mut merged: Vec<WeightedLabel> = Vec::new();
    for (deployments, weight) in destinations {
        let name = match deployments.iter().next() {
            Some(d) if deployments.len() == 1 => label(d),
            Some(_) => deployments.iter().cloned().collect::<Vec<_>>().join("+"),
            None => "(unresolved)".to_owned(),
        };
        match merged.iter_mut().find(|w| w.label == name) {
            Some(existing) => existing.weight += weight,
            None => merged.push(WeightedLabel {
                label: name,
                weight: *weight,
            }),
        }
    }
    if merged.iter().filter(|w| w.weight > 0).count() >= 2 {
        merged
    } else {
        Vec::new()
    }
}

/// The shortest of some durations, zero ones (no timeout) left out.
fn shortest(
    durations: impl IntoIterator<Item = Option<std::time::Duration>>,
) -> Option<std::time::Duration> {
    durations
        .into_iter()
        .flatten()
        .filter(|d| !d.is_zero())
        .min()
}

fn read_routes(resources: &ResourceSet) -> Vec<RouteInfo> {
    let mut routes = Vec::new();
    gloo_routes(resources, &mut routes);
    appmesh_routes(resources, &mut routes);
    gateway_api_routes(resources, &mut routes);
    // A route (Gloo) or rule (Gateway API) without matchers matches every path, as prefix `/`.
    for route in &mut routes {
        if route.matches.is_empty() {
            route.matches.push(MatchRule {
                path: Some(PathRule::Prefix("/".into())),
                case_sensitive: true,
                ..MatchRule::default()
            });
        }
    }
    routes
}

fn gloo_routes(resources: &ResourceSet, routes: &mut Vec<RouteInfo>) {
    use model::gloo::{Action, PathMatcher, RouteAction};
    for (loaded, vs) in resources.gloo_virtual_services() {
        let namespace = vs.metadata.namespace.as_deref().unwrap_or("default");
        for (index, route) in vs.spec.virtual_host.routes.iter().enumerate() {
            let matches = route
                .matchers
                .iter()
                .map(|m| MatchRule {
                    path: m.path.as_ref().map(|p| match p {
                        PathMatcher::Prefix(p) => PathRule::Prefix(p.clone()),
                        PathMatcher::Exact(p) => PathRule::Exact(p.clone()),
                        PathMatcher::Regex(p) => PathRule::Regex(p.clone()),
                    }),
                    case_sensitive: m.case_sensitive.unwrap_or(true),
                    headers: m
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                h.value.clone().filter(|_| !h.regex),
                            )
                        })
                        .collect(),
                    query: m
                        .query_parameters
                        .iter()
                        .map(|q| (q.name.clone(), q.value.clone().filter(|_| !q.regex)))
                        .collect(),
                    methods: m.methods.clone(),
                })
                .collect();
            let destinations: Vec<(BTreeSet<String>, u32)> = match &route.action {
                Action::Route(RouteAction::Single(d)) => vec![(
                    upstream_deployments(
                        resources,
                        d.upstream.namespace_or(namespace),
                        &d.upstream.name,
                    ),
                    1,
                )],
                Action::Route(RouteAction::Multi(m)) => m
                    .destinations
                    .iter()
                    .map(|w| {
                        let up = &w.destination.upstream;
                        (
                            upstream_deployments(resources, up.namespace_or(namespace), &up.name),
                            w.weight.unwrap_or(0),
                        )
                    })
                    .collect(),
                Action::Route(RouteAction::UpstreamGroup(group)) => resources
                    .upstream_groups()
                    .filter(|(_, g)| {
                        g.metadata.name.as_deref() == Some(group.name.as_str())
                            && g.metadata.namespace.as_deref().unwrap_or("default")
                                == group.namespace_or(namespace)
                    })
                    .flat_map(|(l, g)| {
                        let group_ns = l.resource.key().namespace.unwrap_or_default();
                        g.spec
                            .destinations
                            .iter()
                            .map(|w| {
                                let up = &w.destination.upstream;
                                (
                                    upstream_deployments(
                                        resources,
                                        up.namespace_or(&group_ns),
                                        &up.name,
                                    ),
                                    w.weight.unwrap_or(0),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                Action::DirectResponse(_) => Vec::new(),
            };
            let options = route.options.as_ref();
            routes.push(RouteInfo {
                flavor: RouteFlavor::Gloo,
                source: where_(loaded, &format!("spec.virtualHost.routes[{index}]")),
                matches,
                hosts: vs.spec.virtual_host.domains.clone(),
                weighted: weighted(&destinations, ToOwned::to_owned),
                deployments: destinations.iter().flat_map(|(d, _)| d.clone()).collect(),
                retry: options.and_then(|o| o.retries.as_ref()).map(|r| {
                    format!(
                        "retryOn {} numRetries {}{}",
                        r.retry_on.as_deref().unwrap_or("-"),
                        r.num_retries.unwrap_or(1),
                        r.per_try_timeout
                            .as_ref()
                            .map(|t| format!(" perTryTimeout {:?}", t.0))
                            .unwrap_or_default()
                    )
                }),
                timeout: options
                    .and_then(|o| o.timeout.as_ref())
                    .map(|t| format!("{:?}", t.0)),
                shortest_timeout: shortest([
                    options.and_then(|o| o.timeout.as_ref()).map(|t| t.0),
                    options
                        .and_then(|o| o.retries.as_ref())
                        .and_then(|r| r.per_try_timeout.as_ref())
                        .map(|t| t.0),
                ]),
            });
        }
    }
}

fn appmesh_routes(resources: &ResourceSet, routes: &mut Vec<RouteInfo>) {
    use model::appmesh::{HeaderMatchMethod, PathMatch, RouteSpec};
    for (loaded, router) in resources.virtual_routers() {
        let namespace = router.metadata.namespace.as_deref().unwrap_or("default");
        for (index, route) in router.spec.routes.iter().enumerate() {
            let RouteSpec::Http(http) = &route.spec else {
                continue;
            };
            let m = &http.match_;
            let path = match (&m.prefix, &m.path) {
                (Some(p), _) => Some(PathRule::Prefix(p.clone())),
                (None, Some(PathMatch::Exact(p))) => Some(PathRule::Exact(p.clone())),
                (None, Some(PathMatch::Regex(p))) => Some(PathRule::Regex(p.clone())),
                (None, None) => None,
            };
            let rule = MatchRule {
                path,
                case_sensitive: true,
                headers: m
                    .headers
                    .iter()
                    .map(|h| {
                        let value = match &h.match_ {
                            Some(HeaderMatchMethod::Exact(v)) => Some(v.clone()),
                            _ => None,
                        };
                        (h.name.to_ascii_lowercase(), value)
                    })
                    .collect(),
                query: m
                    .query_parameters
                    .iter()
                    .map(|q| {
                        (
                            q.name.clone(),
                            q.match_.as_ref().and_then(|x| x.exact.clone()),
                        )
                    })
                    .collect(),
                methods: m.method.iter().cloned().collect(),
            };
            let destinations: Vec<(BTreeSet<String>, u32)> = http
                .action
                .weighted_targets
                .iter()
                .map(|t| {
                    let node_ns = t.virtual_node_ref.namespace.as_deref().unwrap_or(namespace);
                    let selector = resources
                        .virtual_nodes()
                        .find(|(_, n)| {
                            n.metadata.name.as_deref() == Some(t.virtual_node_ref.name.as_str())
                                && n.metadata.namespace.as_deref().unwrap_or("default") == node_ns
                        })
                        .and_then(|(_, n)| n.spec.pod_selector.as_ref())
                        .and_then(|s| s.match_labels.clone())
                        .unwrap_or_default();
                    (
                        deployments_selected(resources, node_ns, &selector),
                        t.weight,
                    )
                })
                .collect();
            routes.push(RouteInfo {
                flavor: RouteFlavor::AppMesh,
                source: where_(loaded, &format!("spec.routes[{index}] ({})", route.name)),
                matches: vec![rule],
                hosts: vec!["*".to_owned()],
                weighted: weighted(&destinations, |d| color_of(resources, d)),
                deployments: destinations.iter().flat_map(|(d, _)| d.clone()).collect(),
                retry: http.retry_policy.as_ref().map(|r| {
                    format!(
                        "httpRetryEvents {:?} tcpRetryEvents {:?} maxRetries {}",
                        r.http_retry_events, r.tcp_retry_events, r.max_retries
                    )
                }),
                timeout: http
                    .timeout
                    .as_ref()
                    .and_then(|t| t.per_request)
                    .map(|t| format!("{:?}", t.to_std())),
                shortest_timeout: shortest([
                    http.timeout
                        .as_ref()
                        .and_then(|t| t.per_request)
                        .map(|t| t.to_std()),
                    http.retry_policy
                        .as_ref()
                        .map(|r| r.per_retry_timeout.to_std()),
                ]),
            });
        }
    }
}

fn gateway_api_routes(resources: &ResourceSet, routes: &mut Vec<RouteInfo>) {
    use model::gateway_api::{PathMatchType, ValueMatchType};
    for (loaded, route) in resources.http_routes() {
        let namespace = route.metadata.namespace.as_deref().unwrap_or("default");
        let mesh = !route.spec.parent_refs.is_empty()
            && route.spec.parent_refs.iter().all(|p| p.is_service());
        let mut hosts = route.spec.hostnames.clone();
        if hosts.is_empty() {
            // The listeners' hostnames of the parent Gateways.
            for parent in route.spec.parent_refs.iter().filter(|p| p.is_gateway()) {
                let parent_ns = parent.namespace_or(namespace);
                for (_, gateway) in resources.gateways().filter(|(_, g)| {
                    g.metadata.name.as_deref() == Some(parent.name.as_str())
                        && g.metadata.namespace.as_deref().unwrap_or("default") == parent_ns
                }) {
                    for listener in &gateway.spec.listeners {
                        if parent
                            .section_name
                            .as_deref()
                            .is_none_or(|s| s == listener.name)
                        {
                            hosts.push(listener.hostname.clone().unwrap_or_else(|| "*".into()));
                        }
                    }
                }
            }
        }
        if hosts.is_empty() {
            hosts.push("*".into());
        }
        for (index, rule) in route.spec.rules.iter().enumerate() {
            let matches = rule
                .matches
                .iter()
                .map(|m| MatchRule {
                    path: Some(match m.path.match_type {
                        PathMatchType::PathPrefix => PathRule::Prefix(m.path.value.clone()),
                        PathMatchType::Exact => PathRule::Exact(m.path.value.clone()),
                        PathMatchType::RegularExpression => PathRule::Regex(m.path.value.clone()),
                    }),
                    case_sensitive: true,
                    headers: m
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                (h.match_type == ValueMatchType::Exact).then(|| h.value.clone()),
                            )
                        })
                        .collect(),
                    query: m
                        .query_params
                        .iter()
                        .map(|q| {
                            (
                                q.name.clone(),
                                (q.match_type == ValueMatchType::Exact).then(|| q.value.clone()),
                            )
                        })
                        .collect(),
                    methods: m.method.iter().map(|x| x.as_str().to_owned()).collect(),
                })
                .collect();
            let destinations: Vec<(BTreeSet<String>, u32)> = rule
                .backend_refs
                .iter()
                .map(|b| {
                    (
                        service_deployments(
                            resources,
                            b.namespace.as_deref().unwrap_or(namespace),
                            &b.name,
                        ),
                        b.weight,
                    )
                })
                .collect();
            let label = |d: &str| {
                if mesh {
                    color_of(resources, d)
                } else {
                    d.to_owned()
                }
            };
            routes.push(RouteInfo {
                flavor: if mesh {
                    RouteFlavor::Gamma
                } else {
                    RouteFlavor::GatewayApi
                },
                source: where_(loaded, &format!("spec.rules[{index}]")),
                matches,
                hosts: hosts.clone(),
                weighted: weighted(&destinations, label),
                deployments: destinations.iter().flat_map(|(d, _)| d.clone()).collect(),
                retry: rule.retry.as_ref().map(|r| {
                    format!(
                        "attempts {} codes {:?}",
                        r.attempts
                            .map_or_else(|| "default".into(), |a| a.to_string()),
                        r.codes
                    )
                }),
                timeout: rule.timeouts.as_ref().map(|t| {
                    format!(
                        "request {} backendRequest {}",
                        t.request.as_ref().map_or("-", |d| d.as_str()),
                        t.backend_request.as_ref().map_or("-", |d| d.as_str())
                    )
                }),
                shortest_timeout: shortest([
                    rule.timeouts
                        .as_ref()
                        .and_then(|t| t.request.as_ref())
                        .map(|d| d.get()),
                    rule.timeouts
                        .as_ref()
                        .and_then(|t| t.backend_request.as_ref())
                        .map(|d| d.get()),
                ]),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> SideConfig {
        let dir = tempfile::TempDir::new().expect("temp dir");
        std::fs::write(dir.path().join("m.yaml"), yaml).expect("write");
        SideConfig::load(dir.path()).expect("loads")
    }

    const SERVICES: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: ns}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: colormesh/colorteller:latest, env: [{name: COLOR, value: red}]}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b, namespace: ns}\nspec:\n  selector: {matchLabels: {app: b}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: colormesh/colorteller:latest, env: [{name: COLOR, value: blue}]}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\nspec: {selector: {app: a}, ports: [{port: 9080, name: http}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: ns}\nspec: {selector: {app: b}, ports: [{port: 9080, name: http}]}\n";

    #[test]
    fn a_gloo_upstream_group_resolves_to_deployments_with_weights() {
        let yaml = format!(
            "{SERVICES}---\napiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {{name: g, namespace: gloo-system}}\nspec:\n  destinations:\n  - {{destination: {{upstream: {{name: ns-a-9080, namespace: gloo-system}}}}, weight: 80}}\n  - {{destination: {{upstream: {{name: ns-b-9080, namespace: gloo-system}}}}, weight: 20}}\n---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{{prefix: /p}}]\n      routeAction: {{upstreamGroup: {{name: g, namespace: gloo-system}}}}\n      options: {{timeout: 2s}}\n"
        );
        let side = load(&yaml);
        let [route] = side.routes.as_slice() else {
            panic!("one route: {:?}", side.routes)
        };
        assert_eq!(route.flavor, RouteFlavor::Gloo);
        assert_eq!(
            route.weighted,
            vec![
                WeightedLabel {
                    label: "ns/a".into(),
                    weight: 80
                },
                WeightedLabel {
                    label: "ns/b".into(),
                    weight: 20
                },
            ]
        );
        assert_eq!(route.base_path(), "/p");
        assert_eq!(
            route.shortest_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(side.tellers(), vec!["ns/a".to_owned(), "ns/b".to_owned()]);
    }

    #[test]
    fn a_gamma_route_splits_by_color_and_a_bare_rule_matches_every_path() {
        let yaml = format!(
            "{SERVICES}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: ns}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: a, port: 9080}}]\n  rules:\n  - backendRefs:\n    - {{name: a, port: 9080, weight: 1}}\n    - {{name: b, port: 9080, weight: 3}}\n"
        );
        let side = load(&yaml);
        let [route] = side.routes.as_slice() else {
            panic!("one route: {:?}", side.routes)
        };
        assert_eq!(route.flavor, RouteFlavor::Gamma);
        assert_eq!(
            route.weighted,
            vec![
                WeightedLabel {
                    label: "red".into(),
                    weight: 1
                },
                WeightedLabel {
                    label: "blue".into(),
                    weight: 3
                },
            ]
        );
        assert_eq!(route.matches[0].path, Some(PathRule::Prefix("/".into())));
    }
}

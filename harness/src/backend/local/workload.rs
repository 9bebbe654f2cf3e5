//! The pure rules of the local backend: which kinds and images it can run, how a pod's
//! environment is built, which pods are meshed, and the EndpointSlices and discovered Upstreams
//! it writes. Nothing here starts a process.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use model::appmesh::{PortProtocol, Provider, VirtualNode};
use model::discovery::{DISCOVERED_BY_LABEL, PodLabels, discover_upstreams};
use model::dns::ServiceHost;
use model::gloo::GLOO_NAMESPACE;
use model::gloo::Upstream;
use model::k8s::openapi::api::core::v1::Container;
use model::k8s::openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use model::k8s::{Deployment, EndpointSlice, LabelSelector, ObjectMeta, Service};
use model::{Loaded, Resource, ResourceKind, ResourceSet};

use crate::backend::BackendError;

/// The label App Mesh's injector looks for on a namespace.
pub(crate) const INJECTOR_LABEL: &str = "appmesh.k8s.aws/sidecarInjectorWebhook";
/// The namespace label that puts its pods in colormesh's GAMMA mesh (`colormesh.dev/mesh:
/// gamma`): each pod gets a mesh sidecar (`<gateway> sidecar --namespace NS`).
pub(crate) const GAMMA_MESH_LABEL: &str = "colormesh.dev/mesh";
/// The value of [`GAMMA_MESH_LABEL`].
pub(crate) const GAMMA_MESH: &str = "gamma";
/// The label that ties an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label the local backend puts on the EndpointSlices it manages.
pub(crate) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub(crate) const MANAGED_BY: &str = "colormesh-local";
/// Pods' IP address and node name on the local backend.
pub(crate) const POD_IP: &str = "127.0.0.1";
pub(crate) const NODE_NAME: &str = "local";
/// The workspace binaries images map to (`colormesh/<binary>:<tag>`).
pub(crate) const KNOWN_BINARIES: [&str; 4] = ["colorteller", "colorgateway", "tcpecho", "echo"];

fn where_(loaded: &Loaded) -> String {
    format!("{}: {}", loaded.origin, loaded.resource.key())
}

/// Refuses what the local backend cannot run, naming the file and the resource.
pub(crate) fn check_supported(loaded: &Loaded) -> Result<(), BackendError> {
    match loaded.resource.kind() {
        ResourceKind::Other { api_version, kind } => Err(BackendError::Unsupported(format!(
            "{}: the local backend does not support {api_version} {kind}; it runs Namespaces, Deployments, Services, EndpointSlices, ConfigMaps, Gloo, App Mesh and Gateway API resources. Run this scenario with `--backend kind` instead.",
            where_(loaded)
        ))),
        _ => Ok(()),
    }
}

/// The workspace binary for a container image: `colormesh/colorteller:latest` -> `colorteller`.
pub(crate) fn binary_for_image(image: &str) -> Option<&'static str> {
    binary_among(image, &KNOWN_BINARIES)
}

/// The one of `binaries` an image names: `registry:5000/colormesh/echo:v1` -> `echo`.
pub(crate) fn binary_among(image: &str, binaries: &[&'static str]) -> Option<&'static str> {
    let without_tag = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    };
    let last = without_tag.rsplit('/').next().unwrap_or(without_tag);
    binaries.iter().copied().find(|b| *b == last)
}

/// What a Deployment's pods run, checked once at apply time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodTemplate {
    pub(crate) binary: &'static str,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) container: Container,
    pub(crate) replicas: u32,
}

/// Reads and checks a Deployment: one container, an image the backend knows, env it can build.
pub(crate) fn pod_template(
    loaded: &Loaded,
    deployment: &Deployment,
) -> Result<PodTemplate, BackendError> {
    let unsupported = |field: &str, message: String| {
        BackendError::Unsupported(format!(
            "{}: {field}: {message}. The local backend runs one workspace binary per pod; run this scenario with `--backend kind` for anything else.",
            where_(loaded)
        ))
    };
    let spec = &deployment.spec;
    let containers = spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let [container] = containers else {
        return Err(unsupported(
            "spec.template.spec.containers",
            format!("expected exactly one container, found {}", containers.len()),
        ));
    };
    let field = "spec.template.spec.containers[0].image";
    let image = container
        .image
        .as_deref()
        .ok_or_else(|| unsupported(field, "no image".into()))?;
    let binary = binary_for_image(image).ok_or_else(|| {
        unsupported(
            field,
            format!(
                "image {image:?} is not one of the workspace's ({})",
                KNOWN_BINARIES.map(|b| format!("colormesh/{b}")).join(", ")
            ),
        )
    })?;
    for (index, var) in container.env.iter().flatten().enumerate() {
        if let Some(source) = &var.value_from {
            let path = source.field_ref.as_ref().map(|f| f.field_path.as_str());
            if field_value(path.unwrap_or_default(), "", "").is_none() {
                return Err(unsupported(
                    &format!("spec.template.spec.containers[0].env[{index}].valueFrom"),
                    format!(
                        "{} is not supported (only fieldRef to metadata.name, metadata.namespace, status.podIP, spec.nodeName)",
                        path.map_or_else(|| "this source".to_owned(), |p| format!("fieldRef {p}"))
                    ),
                ));
            }
        }
    }
    let replicas = u32::try_from(spec.replicas.unwrap_or(1))
        .map_err(|_| unsupported("spec.replicas", "must not be negative".into()))?;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    Ok(PodTemplate {
        binary,
        labels,
        container: container.clone(),
        replicas,
    })
}

fn field_value(path: &str, pod_name: &str, namespace: &str) -> Option<String> {
    match path {
        "metadata.name" => Some(pod_name.to_owned()),
        "metadata.namespace" => Some(namespace.to_owned()),
        "status.podIP" => Some(POD_IP.to_owned()),
        "spec.nodeName" => Some(NODE_NAME.to_owned()),
        _ => None,
    }
}

/// An absent selector selects nothing (App Mesh's podSelector and namespaceSelector); a present
/// one is evaluated as the API server does.
fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|selector| model::k8s::selector_matches(selector, labels))
}

/// Whether App Mesh injects sidecars in a namespace: a Mesh selects it, or it carries the injector label.
pub(crate) fn is_meshed(resources: &ResourceSet, namespace: &str) -> bool {
    let Some((_, ns)) = resources
        .namespaces()
        .find(|(_, ns)| ns.metadata.name.as_deref() == Some(namespace))
    else {
        return false;
    };
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    labels.get(INJECTOR_LABEL).is_some_and(|v| v == "enabled")
        || resources
            .meshes()
            .any(|(_, mesh)| selector_matches(mesh.spec.namespace_selector.as_ref(), &labels))
}

/// Whether a namespace is in the GAMMA mesh: it carries `colormesh.dev/mesh: gamma`.
pub(crate) fn is_gamma_meshed(resources: &ResourceSet, namespace: &str) -> bool {
    resources
        .namespaces()
        .find(|(_, ns)| ns.metadata.name.as_deref() == Some(namespace))
        .and_then(|(_, ns)| ns.metadata.labels.as_ref())
        .and_then(|labels| labels.get(GAMMA_MESH_LABEL))
        .is_some_and(|value| value == GAMMA_MESH)
}

/// Whether a GAMMA mesh sidecar routes calls to `host`: it names a Service port that speaks
/// HTTP, by `appProtocol` (`http`, `h2c`, `kubernetes.io/h2c`) or, without one, by the port name
/// (`http`, `http2`, `h2c`, or one of them followed by `-suffix`, Istio's convention). Other
/// ports (raw TCP such as tcpecho's) cannot go through an HTTP proxy.
pub(crate) fn routed_by_mesh_sidecar(resources: &ResourceSet, host: &ServiceHost) -> bool {
    let Some(port) = host.port else {
        return false;
    };
    resources
        .services()
        .filter(|(_, service)| {
            service.metadata.name.as_deref() == Some(host.service.as_str())
                && service.metadata.namespace.as_deref().unwrap_or("default") == host.namespace
        })
        .flat_map(|(_, service)| service.spec.iter().flat_map(|s| s.ports.iter().flatten()))
        .filter(|p| p.port == i32::from(port))
        .any(|p| match p.app_protocol.as_deref() {
            Some(protocol) => matches!(protocol, "http" | "h2c" | "kubernetes.io/h2c"),
            None => p.name.as_deref().is_some_and(|name| {
                let base = name.split_once('-').map_or(name, |(base, _)| base);
                matches!(base, "http" | "http2" | "h2c")
            }),
        })
}

/// The VirtualNode whose podSelector matches a pod's labels, in the pod's namespace.
pub(crate) fn virtual_node_for<'a>(
    resources: &'a ResourceSet,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'a VirtualNode> {
    resources.virtual_nodes().map(|(_, vn)| vn).find(|vn| {
        vn.metadata.namespace.as_deref().unwrap_or("default") == namespace
            && selector_matches(vn.spec.pod_selector.as_ref(), labels)
    })
}

/// Whether `host` names one of the node's backend virtual services that has an HTTP listener, so
/// the sidecar can route it.
pub(crate) fn routed_by_sidecar(
    resources: &ResourceSet,
    node: &VirtualNode,
    host: &ServiceHost,
) -> bool {
    let node_namespace = node.metadata.namespace.as_deref().unwrap_or("default");
    node.spec.backends.iter().any(|backend| {
        let reference = &backend.virtual_service.virtual_service_ref;
        let namespace = reference.namespace_or(node_namespace);
        let Some((_, service)) = resources.appmesh_virtual_services().find(|(_, vs)| {
            vs.metadata.name.as_deref() == Some(reference.name.as_str())
                && vs.metadata.namespace.as_deref().unwrap_or("default") == namespace
        }) else {
            return false;
        };
        let aws_name = service
            .spec
            .aws_name
            .clone()
            .unwrap_or_else(|| format!("{}.{namespace}", reference.name));
        let Ok(named) = ServiceHost::parse(&aws_name, namespace) else {
            return false;
        };
        if named.service != host.service || named.namespace != host.namespace {
            return false;
        }
        let http = |protocol: PortProtocol| {
            matches!(
                protocol,
                PortProtocol::Http | PortProtocol::Http2 | PortProtocol::Grpc
            )
        };
        match &service.spec.provider {
            Some(Provider::VirtualRouter(router)) => resources.virtual_routers().any(|(_, vr)| {
                vr.metadata.name.as_deref() == Some(router.name.as_str())
                    && vr.metadata.namespace.as_deref().unwrap_or("default")
                        == router.namespace_or(namespace)
                    && vr
                        .spec
                        .listeners
                        .iter()
                        .any(|l| http(l.port_mapping.protocol))
            }),
            Some(Provider::VirtualNode(provider)) => resources.virtual_nodes().any(|(_, vn)| {
                vn.metadata.name.as_deref() == Some(provider.name.as_str())
                    && vn.metadata.namespace.as_deref().unwrap_or("default")
                        == provider.namespace_or(namespace)
                    && vn
                        .spec
                        .listeners
                        .iter()
                        .any(|l| http(l.port_mapping.protocol))
            }),
            None => false,
        }
    })
}

/// Everything a pod's environment depends on besides its template.
#[derive(Debug)]
pub(crate) struct EnvContext<'a> {
    pub(crate) resources: &'a ResourceSet,
    /// Each Service port's local ClusterIP: (namespace, service, port) -> forwarder address.
    pub(crate) cluster_ips: &'a BTreeMap<(String, String, i32), SocketAddr>,
    pub(crate) namespace: &'a str,
    pub(crate) pod_name: &'a str,
    /// The pod's mesh sidecar, when the pod is meshed.
    pub(crate) mesh: Option<Mesh<'a>>,
}

/// A meshed pod's sidecar: which mesh, and its listen address (the app's `HTTP_PROXY`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mesh<'a> {
    /// App Mesh: the pod's VirtualNode.
    AppMesh(&'a VirtualNode, SocketAddr),
    /// colormesh's GAMMA mesh (`colormesh.dev/mesh: gamma`).
    Gamma(SocketAddr),
}

impl Mesh<'_> {
    fn sidecar(&self) -> SocketAddr {
        match self {
            Mesh::AppMesh(_, sidecar) | Mesh::Gamma(sidecar) => *sidecar,
        }
    }
}

/// The environment of a pod's process. Values equal to a declared containerPort become `0` (bind
/// an ephemeral port); values naming a Service (`colorteller.appmesh-demo:9080`) keep the name
/// when the pod's sidecar routes it and otherwise become the Service's local ClusterIP address.
pub(crate) fn pod_env(template: &PodTemplate, context: &EnvContext<'_>) -> Vec<(String, String)> {
    let declared_ports: BTreeSet<String> = template
        .container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port.to_string())
        .collect();
    let mut env = Vec::new();
    for var in template.container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => {
                let path = source
                    .field_ref
                    .as_ref()
                    .map(|f| f.field_path.as_str())
                    .unwrap_or_default();
                // pod_template() already refused every other source.
                field_value(path, context.pod_name, context.namespace).unwrap_or_default()
            }
            (Some(value), None) => rewrite_value(value, &declared_ports, context),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    env.push(("BIND_ADDR".into(), POD_IP.into()));
    env.push(("LOG_FORMAT".into(), "json".into()));
    if let Some(mesh) = context.mesh {
        env.push(("HTTP_PROXY".into(), format!("http://{}", mesh.sidecar())));
        env.push(("NO_PROXY".into(), "127.0.0.1,localhost".into()));
    }
    env
}

fn rewrite_value(
    value: &str,
    declared_ports: &BTreeSet<String>,
    context: &EnvContext<'_>,
) -> String {
    if declared_ports.contains(value.trim()) {
        return "0".to_owned();
    }
    let Ok(host) = ServiceHost::parse(value, context.namespace) else {
        return value.to_owned();
    };
    let Some(port) = host.port else {
        return value.to_owned();
    };
    let key = (
        host.namespace.clone(),
        host.service.clone(),
        i32::from(port),
    );
    let Some(cluster_ip) = context.cluster_ips.get(&key) else {
        return value.to_owned();
    };
    match context.mesh {
        Some(Mesh::AppMesh(node, _)) if routed_by_sidecar(context.resources, node, &host) => {
            value.to_owned()
        }
        Some(Mesh::Gamma(_)) if routed_by_mesh_sidecar(context.resources, &host) => {
            value.to_owned()
        }
        _ => cluster_ip.to_string(),
    }
}

/// Whether a Service selects pods with these labels (an empty selector selects nothing).
pub(crate) fn service_selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// One ready pod behind a Service: its name and the port it really listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadyPod {
    pub(crate) name: String,
    pub(crate) port: u16,
}

/// The EndpointSlice for one ready pod of a Service, as the EndpointSlice controller writes it:
/// address 127.0.0.1 and the pod's actual port under each Service port's name.
pub(crate) fn endpoint_slice(service: &Service, pod: &ReadyPod) -> EndpointSlice {
    let service_name = service.metadata.name.clone().unwrap_or_default();
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|p| EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(i32::from(pod.port)),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    ..EndpointPort::default()
                })
                .collect()
        });
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service_name}-{}", pod.name)),
            namespace: service.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_owned(), service_name),
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec![POD_IP.to_owned()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..EndpointConditions::default()
            }),
            node_name: Some(NODE_NAME.into()),
            ..Endpoint::default()
        }]),
        ports,
    }
}

/// The Upstreams Gloo's Kubernetes discovery would write for the current Services and pods.
pub(crate) fn discovered_upstreams(resources: &ResourceSet) -> Vec<Upstream> {
    let services: Vec<Service> = resources.services().map(|(_, s)| s.clone()).collect();
    let pods: Vec<PodLabels> = resources
        .deployments()
        .filter_map(|(_, d)| PodLabels::of_deployment(d))
        .collect();
    discover_upstreams(&services, &pods, GLOO_NAMESPACE)
}

/// Whether an Upstream was written by discovery (and may be removed by it).
pub(crate) fn is_discovered(resource: &Resource) -> bool {
    matches!(resource, Resource::Upstream(u) if u.metadata.labels.as_ref().is_some_and(|l| l.contains_key(DISCOVERED_BY_LABEL)))
}

/// Whether a stored object is an EndpointSlice the local backend wrote (and may prune).
pub(crate) fn is_managed_endpoint_slice(loaded: &Loaded) -> bool {
    matches!(&loaded.resource, Resource::EndpointSlice(slice) if slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(MANAGED_BY_LABEL))
        .is_some_and(|value| value == MANAGED_BY))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use pretty_assertions::assert_eq;

    use super::*;

    fn colorapp() -> ResourceSet {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let parsed = model::load_paths(&[root.join("colorapp"), root.join("colorgatewayv2")])
            .expect("manifests load");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        ResourceSet::from_loaded(parsed.resources)
    }

    fn deployment<'a>(set: &'a ResourceSet, name: &str) -> (&'a Loaded, &'a Deployment) {
        set.deployments()
            .find(|(_, d)| d.metadata.name.as_deref() == Some(name))
            .expect("deployment exists")
    }

    fn parse_one(text: &str) -> Loaded {
        let mut parsed = model::parse_documents(text, Path::new("manifests/test.yaml"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.resources.remove(0)
    }

    fn cluster_ips() -> BTreeMap<(String, String, i32), SocketAddr> {
        [("colorteller", 9080, 40001), ("tcpecho", 2701, 40002)]
            .into_iter()
            .map(|(svc, port, local)| {
                (
                    ("appmesh-demo".to_owned(), svc.to_owned(), port),
                    SocketAddr::from(([127, 0, 0, 1], local)),
                )
            })
            .collect()
    }

    #[test]
    fn images_map_to_workspace_binaries() {
        assert_eq!(
            binary_for_image("colormesh/colorteller:latest"),
            Some("colorteller")
        );
        assert_eq!(
            binary_for_image("colormesh/colorgateway"),
            Some("colorgateway")
        );
        assert_eq!(
            binary_for_image("localhost:5000/colormesh/tcpecho:v1"),
            Some("tcpecho")
        );
        assert_eq!(binary_for_image("nginx:1.25"), None);
    }

    #[test]
    fn unknown_images_and_kinds_are_refused_with_file_resource_and_field() {
        let text = include_str!("../../../../manifests/colorapp/tcpecho.yaml")
            .replace("colormesh/tcpecho:latest", "cjimti/go-echo");
        let loaded = parse_one(&text);
        let Resource::Deployment(d) = &loaded.resource else {
            panic!()
        };
        let error = pod_template(&loaded, d)
            .expect_err("unknown image")
            .to_string();
        assert!(error.starts_with("manifests/test.yaml:"), "{error}");
        assert!(error.contains("Deployment appmesh-demo/tcpecho: spec.template.spec.containers[0].image: image \"cjimti/go-echo\""), "{error}");
        assert!(error.contains("--backend kind"), "{error}");

        let other = parse_one(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: demo}\nspec: {}\n",
        );
        let error = check_supported(&other)
            .expect_err("unsupported kind")
            .to_string();
        assert!(error.contains("manifests/test.yaml:1: Ingress demo/web: the local backend does not support networking.k8s.io/v1 Ingress"), "{error}");
        assert!(error.contains("--backend kind"), "{error}");

        let secret = text.replace(
            "- name: NODE_NAME\n              value: mesh/color-mesh/virtualNode/tcpecho_appmesh-demo",
            "- name: NODE_NAME\n              valueFrom: {secretKeyRef: {name: s, key: k}}",
        );
        let loaded = parse_one(&secret.replace("cjimti/go-echo", "colormesh/tcpecho:latest"));
        let Resource::Deployment(d) = &loaded.resource else {
            panic!()
        };
        let error = pod_template(&loaded, d)
            .expect_err("secret env")
            .to_string();
        assert!(
            error.contains(
                "spec.template.spec.containers[0].env[1].valueFrom: this source is not supported"
            ),
            "{error}"
        );
    }

    #[test]
    fn meshed_gateway_keeps_http_backends_and_rewrites_tcp_ones() {
        let set = colorapp();
        assert!(is_meshed(&set, "appmesh-demo"));
        assert!(!is_meshed(&set, "default"));
        let (loaded, d) = deployment(&set, "colorgateway");
        let template = pod_template(loaded, d).expect("supported");
        assert_eq!(template.binary, "colorgateway");
        let node = virtual_node_for(&set, "appmesh-demo", &template.labels).expect("node");
        assert_eq!(node.metadata.name.as_deref(), Some("colorgateway"));
        let ips = cluster_ips();
        let sidecar = SocketAddr::from(([127, 0, 0, 1], 40100));
        let context = EnvContext {
            resources: &set,
            cluster_ips: &ips,
            namespace: "appmesh-demo",
            pod_name: "colorgateway-0",
            mesh: Some(Mesh::AppMesh(node, sidecar)),
        };
        let env: BTreeMap<String, String> = pod_env(&template, &context).into_iter().collect();
        assert_eq!(env["SERVER_PORT"], "0");
        assert_eq!(
            env["COLOR_TELLER_ENDPOINT"],
            "colorteller.appmesh-demo:9080"
        );
        assert_eq!(env["TCP_ECHO_ENDPOINT"], "127.0.0.1:40002");
        assert_eq!(env["HTTP_PROXY"], "http://127.0.0.1:40100");
        assert_eq!(env["NO_PROXY"], "127.0.0.1,localhost");
        assert_eq!(env["BIND_ADDR"], "127.0.0.1");
        assert_eq!(env["LOG_FORMAT"], "json");

        // Without a sidecar every service name becomes its local ClusterIP.
        let unmeshed = EnvContext {
            mesh: None,
            ..context
        };
        let env: BTreeMap<String, String> = pod_env(&template, &unmeshed).into_iter().collect();
        assert_eq!(env["COLOR_TELLER_ENDPOINT"], "127.0.0.1:40001");
        assert!(!env.contains_key("HTTP_PROXY"));
    }

    #[test]
    fn gamma_meshed_pods_keep_http_service_names_and_rewrite_tcp_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/gateway-api");
        let parsed = model::load_paths(&[root.join("colorapp")]).expect("manifests load");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let set = ResourceSet::from_loaded(parsed.resources);
        assert!(is_gamma_meshed(&set, "appmesh-demo"));
        assert!(!is_meshed(&set, "appmesh-demo"), "no App Mesh here");
        assert!(!is_gamma_meshed(&set, "default"));
        assert!(!is_gamma_meshed(&colorapp(), "appmesh-demo"));
        let host = |text: &str| ServiceHost::parse(text, "appmesh-demo").expect("host");
        assert!(routed_by_mesh_sidecar(
            &set,
            &host("colorteller.appmesh-demo:9080")
        ));
        assert!(routed_by_mesh_sidecar(&set, &host("colorteller-red:9080")));
        assert!(!routed_by_mesh_sidecar(
            &set,
            &host("tcpecho.appmesh-demo:2701")
        ));
        assert!(!routed_by_mesh_sidecar(
            &set,
            &host("colorteller.appmesh-demo:9999")
        ));
        assert!(!routed_by_mesh_sidecar(
            &set,
            &host("nothing.appmesh-demo:9080")
        ));
        let (loaded, d) = deployment(&set, "colorgateway");
        let template = pod_template(loaded, d).expect("supported");
        let ips = cluster_ips();
        let context = EnvContext {
            resources: &set,
            cluster_ips: &ips,
            namespace: "appmesh-demo",
            pod_name: "colorgateway-0",
            mesh: Some(Mesh::Gamma(SocketAddr::from(([127, 0, 0, 1], 40200)))),
        };
        let env: BTreeMap<String, String> = pod_env(&template, &context).into_iter().collect();
        assert_eq!(
            env["COLOR_TELLER_ENDPOINT"],
            "colorteller.appmesh-demo:9080"
        );
        assert_eq!(env["TCP_ECHO_ENDPOINT"], "127.0.0.1:40002");
        assert_eq!(env["HTTP_PROXY"], "http://127.0.0.1:40200");
    }

    #[test]
    fn field_refs_and_plain_values() {
        let set = colorapp();
        let text = include_str!("../../../../manifests/colorapp/tcpecho.yaml").replace(
            "- name: NODE_NAME",
            "- name: POD_NAME\n              valueFrom: {fieldRef: {fieldPath: metadata.name}}\n            - name: POD_IP\n              valueFrom: {fieldRef: {fieldPath: status.podIP}}\n            - name: NODE_NAME",
        );
        let loaded = parse_one(&text);
        let Resource::Deployment(d) = &loaded.resource else {
            panic!()
        };
        let template = pod_template(&loaded, d).expect("supported");
        let ips = cluster_ips();
        let context = EnvContext {
            resources: &set,
            cluster_ips: &ips,
            namespace: "appmesh-demo",
            pod_name: "tcpecho-3",
            mesh: None,
        };
        let env: BTreeMap<String, String> = pod_env(&template, &context).into_iter().collect();
        assert_eq!(env["TCP_PORT"], "0");
        assert_eq!(env["POD_NAME"], "tcpecho-3");
        assert_eq!(env["POD_IP"], "127.0.0.1");
        assert_eq!(
            env["NODE_NAME"],
            "mesh/color-mesh/virtualNode/tcpecho_appmesh-demo"
        );
    }

    #[test]
    fn endpoint_slices_name_the_service_port_and_the_pods_real_port() {
        let set = colorapp();
        let (_, service) = set
            .services()
            .find(|(_, s)| s.metadata.name.as_deref() == Some("colorteller"))
            .expect("service");
        let slice = endpoint_slice(
            service,
            &ReadyPod {
                name: "colorteller-0".into(),
                port: 41234,
            },
        );
        let yaml = model::to_yaml(&Resource::EndpointSlice(Box::new(slice)));
        let parsed = model::parse_documents(&yaml, Path::new("slice.yaml"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Resource::EndpointSlice(slice) = &parsed.resources[0].resource else {
            panic!()
        };
        assert_eq!(
            slice.metadata.name.as_deref(),
            Some("colorteller-colorteller-0")
        );
        assert_eq!(slice.metadata.namespace.as_deref(), Some("appmesh-demo"));
        assert_eq!(
            slice.metadata.labels.as_ref().expect("labels")[SERVICE_NAME_LABEL],
            "colorteller"
        );
        let ports = slice.ports.as_ref().expect("ports");
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), Some(41234))
        );
        let endpoint = &slice.endpoints.as_ref().expect("endpoints")[0];
        assert_eq!(endpoint.addresses, vec!["127.0.0.1"]);
        assert_eq!(
            endpoint.conditions.as_ref().and_then(|c| c.ready),
            Some(true)
        );
        assert!(service_selects(
            service,
            &BTreeMap::from([
                ("app".into(), "colorteller".into()),
                ("version".into(), "white".into())
            ])
        ));
        assert!(!service_selects(
            service,
            &BTreeMap::from([
                ("app".into(), "colorteller".into()),
                ("version".into(), "red".into())
            ])
        ));
    }

    #[test]
    fn discovery_writes_the_walkthrough_upstreams_into_gloo_system() {
        let set = colorapp();
        let upstreams = discovered_upstreams(&set);
        let names: Vec<&str> = upstreams
            .iter()
            .filter_map(|u| u.metadata.name.as_deref())
            .collect();
        for expected in [
            "appmesh-demo-colorgateway-9080",
            "appmesh-demo-colorgateway-v1-9080",
            "appmesh-demo-colorgatewayv2-9080",
            "appmesh-demo-colorgatewayv2-v2-9080",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(
            upstreams
                .iter()
                .all(|u| u.metadata.namespace.as_deref() == Some(GLOO_NAMESPACE))
        );
        assert!(is_discovered(&Resource::Upstream(Box::new(
            upstreams[0].clone()
        ))));
    }
}

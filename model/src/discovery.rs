//! Gloo's Kubernetes upstream discovery, as pure functions: the names it gives upstreams and
//! the `Upstream` resources it writes for services.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::gloo::{DiscoveryMetadata, KubeUpstream, Upstream, UpstreamSpec, UpstreamType};
use crate::k8s::{Deployment, ObjectMeta, Service};

/// Label Gloo puts on upstreams its Kubernetes discovery wrote.
pub const DISCOVERED_BY_LABEL: &str = "discovered_by";
/// Value of [`DISCOVERED_BY_LABEL`] for the Kubernetes plugin.
pub const KUBERNETES_PLUGIN: &str = "kubernetesplugin";
/// Pod labels that never made a label-set upstream of their own.
pub const IGNORED_POD_LABELS: [&str; 4] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "release",
];

/// Gloo's `SanitizeNameV2`: `* / . : _` and space become `-`, `[ ] \n " '` are removed,
/// names over 63 bytes become `name[..31] + "-" + md5hex` cut to 63, then lowercased.
pub fn sanitize_name_v2(name: &str) -> String {
    let mut sanitized = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' | '/' | '.' | ':' | '_' | ' ' => sanitized.push('-'),
            '[' | ']' | '\n' | '"' | '\'' => {}
            other => sanitized.push(other),
        }
    }
    if sanitized.len() > 63 {
        // Gloo slices bytes; do the same so non-ASCII names hash identically.
        let digest = Md5::digest(sanitized.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut bytes = sanitized.as_bytes()[..31].to_vec();
        bytes.push(b'-');
        bytes.extend_from_slice(hex.as_bytes());
        bytes.truncate(63);
        sanitized = String::from_utf8_lossy(&bytes).into_owned();
    }
    sanitized.to_lowercase()
}

/// The name of the upstream discovered for one service port: `<namespace>-<service>-<port>`,
/// sanitised (`appmesh-demo-colorgateway-9080`).
pub fn upstream_name(namespace: &str, service: &str, port: i32) -> String {
    sanitize_name_v2(&format!("{namespace}-{service}-{port}"))
}

/// Pod labels that a service selector does not constrain, minus the ignored bookkeeping labels.
fn extra_labels<'a>(
    service_selector: &BTreeMap<String, String>,
    pod_labels: &'a BTreeMap<String, String>,
) -> BTreeMap<&'a str, &'a str> {
    pod_labels
        .iter()
        .filter(|(k, _)| {
            !service_selector.contains_key(*k) && !IGNORED_POD_LABELS.contains(&k.as_str())
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The 2019 (Gloo < 1.3.15) per-label-set upstream name: the values of the pod labels beyond
/// the service selector, sorted by key, between service and port
/// (`appmesh-demo-colorgateway-v1-9080`). `None` when the selector does not select the pod or
/// the pod has no extra labels (then only the per-port upstream exists).
pub fn label_set_upstream_name(
    namespace: &str,
    service: &str,
    port: i32,
    service_selector: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> Option<String> {
    if !selects(service_selector, pod_labels) {
        return None;
    }
    let extra = extra_labels(service_selector, pod_labels);
    if extra.is_empty() {
        return None;
    }
    let values: Vec<&str> = extra.values().copied().collect();
    Some(sanitize_name_v2(&format!(
        "{namespace}-{service}-{}-{port}",
        values.join("-")
    )))
}

/// The labels of the pods in a namespace, as discovery sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabels {
    /// Namespace of the pods.
    pub namespace: String,
    /// Their labels.
    pub labels: BTreeMap<String, String>,
}

impl PodLabels {
    /// The pod template labels of a deployment (its namespace defaults to `default`).
    pub fn of_deployment(deployment: &Deployment) -> Option<Self> {
        let labels = deployment.spec.template.metadata.as_ref()?.labels.clone()?;
        Some(Self {
            namespace: deployment
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            labels,
        })
    }
}

fn kube_upstream(
    name: String,
    write_namespace: &str,
    service: &Service,
    service_namespace: &str,
    port: i32,
    selector: BTreeMap<String, String>,
) -> Upstream {
    let discovery_metadata = service
        .metadata
        .labels
        .clone()
        .map(|labels| DiscoveryMetadata { labels });
    let mut upstream = Upstream::new(
        &name,
        UpstreamSpec {
            upstream_type: UpstreamType::Kube(KubeUpstream {
                service_name: service.metadata.name.clone().unwrap_or_default(),
                service_namespace: service_namespace.to_owned(),
                service_port: u32::try_from(port).unwrap_or(0),
                selector,
            }),
            discovery_metadata,
        },
    );
    upstream.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(write_namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            DISCOVERED_BY_LABEL.to_owned(),
            KUBERNETES_PLUGIN.to_owned(),
        )])),
        ..ObjectMeta::default()
    };
    upstream
}

/// The kube upstreams Gloo's discovery writes to `write_namespace` for these services: one per
/// service port, plus (the 2019 behaviour) one per distinct extra pod label set among the pods
/// the service selects. Sorted by name, without duplicates.
pub fn discover_upstreams(
    services: &[Service],
    pods: &[PodLabels],
    write_namespace: &str,
) -> Vec<Upstream> {
    let mut upstreams: BTreeMap<String, Upstream> = BTreeMap::new();
    for service in services {
        let Some(service_name) = service.metadata.name.as_deref() else {
            continue;
        };
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let spec = service.spec.as_ref();
        let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        for port in ports {
            let name = upstream_name(namespace, service_name, port.port);
            let upstream = kube_upstream(
                name.clone(),
                write_namespace,
                service,
                namespace,
                port.port,
                selector.clone(),
            );
            upstreams.insert(name, upstream);
            for pod in pods.iter().filter(|p| p.namespace == namespace) {
                let Some(name) = label_set_upstream_name(
                    namespace,
                    service_name,
                    port.port,
                    &selector,
                    &pod.labels,
                ) else {
                    continue;
                };
                let pod_selector: BTreeMap<String, String> = pod
                    .labels
                    .iter()
                    .filter(|(k, _)| !IGNORED_POD_LABELS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let upstream = kube_upstream(
                    name.clone(),
                    write_namespace,
                    service,
                    namespace,
                    port.port,
                    pod_selector,
                );
                upstreams.entry(name).or_insert(upstream);
            }
        }
    }
    upstreams.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Resource, parse_documents};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sanitize_replaces_and_removes() {
        assert_eq!(
            sanitize_name_v2("appmesh-demo-colorgateway-9080"),
            "appmesh-demo-colorgateway-9080"
        );
        assert_eq!(sanitize_name_v2("a*b/c.d:e_f g"), "a-b-c-d-e-f-g");
        assert_eq!(sanitize_name_v2("[x]\n\"y'"), "xy");
        assert_eq!(sanitize_name_v2("App.Mesh"), "app-mesh");
    }

    #[test]
    fn long_names_are_hashed() {
        let long = "appmesh-demo-a-very-long-service-name-that-goes-past-the-limit-9080";
        assert_eq!(long.len(), 67);
        let name = sanitize_name_v2(long);
        assert_eq!(name.len(), 63);
        // md5("appmesh-demo-a-very-long-service-name-that-goes-past-the-limit-9080")
        let digest: String = Md5::digest(long.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            name,
            format!("appmesh-demo-a-very-long-servic-{}", &digest[..31])
        );
        // The hash is taken before lowercasing, as Gloo does.
        let upper = sanitize_name_v2(&long.to_uppercase());
        assert_ne!(upper, name);
        assert_eq!(upper, upper.to_lowercase());
        // Exactly 63 is kept.
        let exact = "a".repeat(63);
        assert_eq!(sanitize_name_v2(&exact), exact);
    }

    #[test]
    fn md5_matches_a_known_vector() {
        let digest: String = Md5::digest(b"abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn per_port_and_label_set_names() {
        assert_eq!(
            upstream_name("appmesh-demo", "colorgateway", 9080),
            "appmesh-demo-colorgateway-9080"
        );
        let selector = labels(&[("app", "colorgateway")]);
        let pod = labels(&[
            ("app", "colorgateway"),
            ("version", "v1"),
            ("pod-template-hash", "57574547f7"),
        ]);
        assert_eq!(
            label_set_upstream_name("appmesh-demo", "colorgateway", 9080, &selector, &pod)
                .as_deref(),
            Some("appmesh-demo-colorgateway-v1-9080")
        );
        let teller_selector = labels(&[("app", "colorteller"), ("version", "black")]);
        let teller_pod = labels(&[("app", "colorteller"), ("version", "black")]);
        assert_eq!(
            label_set_upstream_name(
                "appmesh-demo",
                "colorteller-black",
                9080,
                &teller_selector,
                &teller_pod
            ),
            None
        );
        assert_eq!(
            label_set_upstream_name("appmesh-demo", "colorgateway", 9080, &teller_selector, &pod),
            None
        );
        let two_extra = labels(&[("app", "x"), ("zone", "a"), ("tier", "web")]);
        assert_eq!(
            label_set_upstream_name("ns", "x", 80, &labels(&[("app", "x")]), &two_extra).as_deref(),
            Some("ns-x-web-a-80")
        );
    }

    #[test]
    fn discovers_the_walkthrough_upstreams() {
        let text = include_str!("../../manifests/colorapp/colorgateway.yaml").to_owned()
            + "---\n"
            + include_str!("../../manifests/colorapp/colorteller.yaml")
            + "---\n"
            + include_str!("../../manifests/colorapp/tcpecho.yaml");
        let parsed = parse_documents(&text, std::path::Path::new("colorapp"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let mut services = Vec::new();
        let mut pods = Vec::new();
        for loaded in parsed.resources {
            match loaded.resource {
                Resource::Service(s) => services.push(*s),
                Resource::Deployment(d) => pods.extend(PodLabels::of_deployment(&d)),
                _ => {}
            }
        }
        let upstreams = discover_upstreams(&services, &pods, "gloo-system");
        let names: Vec<&str> = upstreams
            .iter()
            .map(|u| u.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "appmesh-demo-colorgateway-9080",
                "appmesh-demo-colorgateway-v1-9080",
                "appmesh-demo-colorteller-9080",
                "appmesh-demo-colorteller-black-9080",
                "appmesh-demo-colorteller-blue-9080",
                "appmesh-demo-colorteller-red-9080",
                "appmesh-demo-tcpecho-2701",
                "appmesh-demo-tcpecho-v1-2701",
            ]
        );
        let gateway = &upstreams[0];
        assert_eq!(gateway.metadata.namespace.as_deref(), Some("gloo-system"));
        assert_eq!(
            gateway.metadata.labels.as_ref().unwrap()[DISCOVERED_BY_LABEL],
            KUBERNETES_PLUGIN
        );
        let UpstreamType::Kube(kube) = &gateway.spec.upstream_type else {
            panic!()
        };
        assert_eq!(kube.service_name, "colorgateway");
        assert_eq!(kube.service_namespace, "appmesh-demo");
        assert_eq!(kube.service_port, 9080);
        assert_eq!(kube.selector, labels(&[("app", "colorgateway")]));
        let UpstreamType::Kube(v1) = &upstreams[1].spec.upstream_type else {
            panic!()
        };
        assert_eq!(
            v1.selector,
            labels(&[("app", "colorgateway"), ("version", "v1")])
        );
    }
}

//! The pure part of applying manifests to a cluster: reading each document as raw JSON (so
//! fields colormesh does not model still reach the API server), labelling it with the run,
//! pointing images at the registry, and injecting the builtin sidecar where App Mesh would
//! inject Envoy or where a namespace is in colormesh's GAMMA mesh. Nothing here talks to a
//! cluster.

use std::collections::BTreeMap;

use model::ResourceSet;
use model::k8s::Deployment;
use serde_json::{Value, json};

use crate::backend::local::workload;

/// The label every object a run creates carries, so cleanup can find it.
pub(crate) const RUN_LABEL: &str = "colormesh.dev/run";
/// The name of the injected sidecar container.
pub(crate) const SIDECAR_CONTAINER: &str = "colormesh-sidecar";
/// The service account injected pods run as when their manifest names none.
pub(crate) const SIDECAR_SERVICE_ACCOUNT: &str = "colormesh-sidecar";
/// The ClusterRole the in-cluster gateway manifests define; sidecars are bound to it.
pub(crate) const GATEWAY_CLUSTER_ROLE: &str = "colormesh-gateway-proxy";
/// Where the sidecar listens for the app's HTTP calls, and its admin port.
const SIDECAR_LISTEN: &str = "127.0.0.1:15001";
const SIDECAR_ADMIN_PORT: u16 = 15000;
/// The sidecar's readiness port (`GET /ready` only), open to the kubelet; the admin API stays on
/// loopback, reached by port-forward.
const SIDECAR_READY_PORT: u16 = 15002;

/// A YAML file's documents by the line their content starts on, each parsed or not.
pub(crate) type RawDocuments = BTreeMap<usize, Result<Value, serde_norway::Error>>;

/// The documents of one YAML file by the line their content starts on (the line
/// [`model::Origin`] names), split the way [`model::parse_documents`] splits them.
pub(crate) fn raw_documents(text: &str) -> RawDocuments {
    let mut documents = BTreeMap::new();
    let mut current = String::new();
    let mut first_line = 1;
    let mut flush = |text: &str, first_line: usize| {
        let content = text.lines().position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if let Some(offset) = content {
            let value = serde_norway::from_str::<Value>(text);
            documents.insert(first_line + offset, value);
        }
    };
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line
            .strip_prefix("---")
            .is_some_and(|rest| rest.trim().is_empty())
        {
            flush(&current, first_line);
            current.clear();
            first_line = index + 2;
        } else {
            current.push_str(line);
        }
    }
    flush(&current, first_line);
    documents
}

/// Sets `metadata.labels[key] = value`, creating the maps as needed.
pub(crate) fn set_label(object: &mut Value, key: &str, value: &str) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let labels = metadata
        .as_object_mut()
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(labels) = labels {
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Removes `metadata.labels[key]`.
pub(crate) fn remove_label(object: &mut Value, key: &str) {
    if let Some(labels) = object
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(key);
    }
}

/// Sets `metadata.namespace` when the document has none.
pub(crate) fn default_namespace(object: &mut Value, namespace: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        metadata.insert("namespace".into(), Value::String(namespace.to_owned()));
    }
}

/// The Gateway API group: Gateway, HTTPRoute, GatewayClass, ReferenceGrant.
pub(crate) const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// Istio's Gateway annotation that sets the type of the Service it deploys for the Gateway.
pub(crate) const ISTIO_SERVICE_TYPE: &str = "networking.istio.io/service-type";

/// Whether a document is a Gateway API object of `kind`.
pub(crate) fn is_gateway_api(object: &Value, kind: &str) -> bool {
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
    text("kind") == kind
        && text("apiVersion")
            .split_once('/')
            .is_some_and(|(group, _)| group == GATEWAY_API_GROUP)
}

/// Points a Gateway API `Gateway` at another GatewayClass (`spec.gatewayClassName`), so the
/// manifests written for the builtin gateway's class run on the gateway under test. Other
/// documents are left alone; returns whether it changed anything.
pub(crate) fn set_gateway_class(object: &mut Value, class: &str) -> bool {
    if !is_gateway_api(object, "Gateway") {
        return false;
    }
    let Some(map) = object.as_object_mut() else {
        return false;
    };
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    match spec.as_object_mut() {
        Some(spec) => {
            spec.insert("gatewayClassName".into(), Value::String(class.to_owned()));
            true
        }
        None => false,
    }
}

/// Sets `metadata.annotations[key] = value`, creating the maps as needed.
pub(crate) fn set_annotation(object: &mut Value, key: &str, value: &str) {
    let Some(metadata) = object
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert_with(|| json!({})))
    else {
        return;
    };
    if !metadata.is_object() {
        *metadata = json!({});
    }
    if let Some(metadata) = metadata.as_object_mut() {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// A workspace image as the cluster pulls it: `colormesh/<binary>[:<any tag>]` becomes
/// `[<registry>/]colormesh/<binary>:<tag>`. Images of anyone else are left alone (`None`).
pub(crate) fn rewrite_image(image: &str, registry: Option<&str>, tag: &str) -> Option<String> {
    let repository = match image.rsplit_once(':') {
        Some((name, t)) if !t.contains('/') => name,
        _ => image,
    };
    let binary = repository.strip_prefix("colormesh/")?;
    if binary.is_empty() || binary.contains('/') {
        return None;
    }
    Some(workspace_image(binary, registry, tag))
}

/// `[<registry>/]colormesh/<binary>:<tag>`.
pub(crate) fn workspace_image(binary: &str, registry: Option<&str>, tag: &str) -> String {
    match registry
        .map(|r| r.trim_end_matches('/'))
        .filter(|r| !r.is_empty())
    {
        Some(registry) => format!("{registry}/colormesh/{binary}:{tag}"),
        None => format!("colormesh/{binary}:{tag}"),
    }
}

/// The pod spec of a workload document: `spec.template.spec` for controllers, `spec` for a Pod.
fn pod_spec_mut(object: &mut Value) -> Option<&mut Value> {
    let is_pod = object.get("kind").and_then(Value::as_str) == Some("Pod");
    if is_pod {
        object.get_mut("spec")
    } else {
        object.pointer_mut("/spec/template/spec")
    }
}

/// Rewrites every workspace image of a workload's containers and init containers. Without a
/// registry the images were loaded into the nodes (kind, K3s) and exist nowhere else, so their pull
/// policy becomes `IfNotPresent`: for a `:latest` tag Kubernetes would otherwise always pull.
pub(crate) fn rewrite_images(object: &mut Value, registry: Option<&str>, tag: &str) {
    let Some(spec) = pod_spec_mut(object) else {
        return;
    };
    for list in ["containers", "initContainers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let rewritten = container
                .get("image")
                .and_then(Value::as_str)
                .and_then(|image| rewrite_image(image, registry, tag));
            if let Some(image) = rewritten {
                container["image"] = Value::String(image);
                if registry.is_none() {
                    container["imagePullPolicy"] = Value::String("IfNotPresent".into());
                }
            }
        }
    }
}

/// The sidecar a meshed Deployment's pods get, decided by the local backend's mesh rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SidecarMesh {
    /// App Mesh: the namespace is meshed and the pod labels match this VirtualNode's podSelector.
    /// The sidecar plays App Mesh's Envoy for the node (`--node`).
    AppMesh {
        /// The VirtualNode's name.
        node: String,
    },
    /// colormesh's GAMMA mesh: the namespace carries `colormesh.dev/mesh: gamma` and App Mesh does
    /// not mesh the pod. The sidecar routes by the HTTPRoutes whose parent is a Service (no
    /// `--node`).
    Gamma,
}

/// The sidecar a Deployment's pods get, as the local backend decides it: App Mesh's when the
/// namespace is meshed and a VirtualNode selects the pods, otherwise the GAMMA mesh's when the
/// namespace is in it, otherwise none.
pub(crate) fn sidecar_mesh(
    resources: &ResourceSet,
    deployment: &Deployment,
) -> Option<SidecarMesh> {
    let namespace = deployment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    let node = workload::is_meshed(resources, namespace)
        .then(|| {
            let labels = deployment
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            workload::virtual_node_for(resources, namespace, &labels)
                .and_then(|node| node.metadata.name.clone())
        })
        .flatten();
    match node {
        Some(node) => Some(SidecarMesh::AppMesh { node }),
        None if workload::is_gamma_meshed(resources, namespace) => Some(SidecarMesh::Gamma),
        None => None,
    }
}

/// Adds the builtin sidecar to a Deployment document: a second container running
/// `gateway-proxy sidecar --kubernetes` (with `--node` for App Mesh, without for the GAMMA mesh),
/// `HTTP_PROXY`/`NO_PROXY` on every app container, and a service account allowed to read the
/// mesh. Returns the service account the pods run as.
pub(crate) fn inject_sidecar(
    object: &mut Value,
    mesh: &SidecarMesh,
    namespace: &str,
    image: &str,
) -> String {
    let Some(spec) = pod_spec_mut(object).and_then(Value::as_object_mut) else {
        return SIDECAR_SERVICE_ACCOUNT.to_owned();
    };
    let service_account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            spec.insert(
                "serviceAccountName".into(),
                Value::String(SIDECAR_SERVICE_ACCOUNT.into()),
            );
            SIDECAR_SERVICE_ACCOUNT.to_owned()
        });
    let mut args = vec!["sidecar".to_owned(), "--kubernetes".to_owned()];
    if let SidecarMesh::AppMesh { node } = mesh {
        args.extend(["--node".to_owned(), node.clone()]);
    }
    args.extend([
        "--namespace".to_owned(),
        namespace.to_owned(),
        "--listen".to_owned(),
        SIDECAR_LISTEN.to_owned(),
        "--admin".to_owned(),
        format!("127.0.0.1:{SIDECAR_ADMIN_PORT}"),
        "--ready-listen".to_owned(),
        format!("0.0.0.0:{SIDECAR_READY_PORT}"),
    ]);
    let containers = spec.entry("containers").or_insert_with(|| json!([]));
    if let Some(containers) = containers.as_array_mut() {
        containers.retain(|c| c.get("name").and_then(Value::as_str) != Some(SIDECAR_CONTAINER));
        for container in containers.iter_mut() {
            set_env(container, "HTTP_PROXY", &format!("http://{SIDECAR_LISTEN}"));
            set_env(container, "NO_PROXY", "127.0.0.1,localhost");
        }
        containers.push(json!({
            "name": SIDECAR_CONTAINER,
            "image": image,
            "args": args,
            "ports": [{"name": "sidecar-ready", "containerPort": SIDECAR_READY_PORT}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": SIDECAR_READY_PORT}},
        }));
    }
    service_account
}

/// Sets (or replaces) one env var of a container.
fn set_env(container: &mut Value, name: &str, value: &str) {
    let Some(container) = container.as_object_mut() else {
        return;
    };
    let env = container.entry("env").or_insert_with(|| json!([]));
    if let Some(env) = env.as_array_mut() {
        env.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
        env.push(json!({"name": name, "value": value}));
    }
}

/// The ServiceAccount injected pods run as and its binding to the gateway's ClusterRole (the
/// sidecar watches the mesh through the API server, like the ingress does).
pub(crate) fn sidecar_rbac(namespace: &str, service_account: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{SIDECAR_SERVICE_ACCOUNT}-{namespace}-{service_account}")},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": GATEWAY_CLUSTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        }),
    ]
}

/// The order a cluster accepts objects in: namespaces and CRDs first, then other cluster-scoped
/// objects App Mesh validates against (the Mesh), then everything else in file order.
pub(crate) fn apply_priority(api_version: &str, kind: &str) -> u8 {
    match (api_version, kind) {
        ("v1", "Namespace") | ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => 0,
        ("v1", "ServiceAccount") | (_, "ClusterRole") | (_, "ClusterRoleBinding") => 1,
        ("appmesh.k8s.aws/v1beta2", "Mesh") | ("gateway.networking.k8s.io/v1", "GatewayClass") => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use pretty_assertions::assert_eq;

    use super::*;

    fn manifests() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
    }

    #[test]
    fn raw_documents_are_keyed_like_model_origins() {
        let text = "# comment\n\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\n# only\nkind: X\nmetadata:\n  name: b\n";
        let raw = raw_documents(text);
        let parsed = model::parse_documents(text, Path::new("x.yaml"));
        let lines: Vec<usize> = raw.keys().copied().collect();
        assert_eq!(lines, vec![3, 10]);
        assert_eq!(parsed.resources[0].origin.line, 3);
        assert_eq!(
            raw[&10].as_ref().expect("parses")["metadata"]["name"],
            json!("b")
        );
    }

    #[test]
    fn every_colorapp_document_has_a_raw_twin() {
        let dir = manifests().join("colorapp");
        let parsed = model::load_dir(&dir).expect("loads");
        for loaded in &parsed.resources {
            let text = std::fs::read_to_string(&loaded.origin.file).expect("reads");
            let raw = raw_documents(&text);
            let value = raw[&loaded.origin.line].as_ref().expect("parses");
            assert_eq!(
                value["kind"].as_str(),
                Some(loaded.resource.kind().kind()),
                "{}",
                loaded.origin
            );
        }
    }

    #[test]
    fn only_workspace_images_are_rewritten() {
        assert_eq!(
            rewrite_image(
                "colormesh/colorteller:latest",
                Some("123.dkr.ecr.aws/"),
                "v7"
            ),
            Some("123.dkr.ecr.aws/colormesh/colorteller:v7".into())
        );
        assert_eq!(
            rewrite_image("colormesh/tcpecho", None, "latest"),
            Some("colormesh/tcpecho:latest".into())
        );
        assert_eq!(rewrite_image("nginx:1.25", Some("r"), "t"), None);
        assert_eq!(rewrite_image("other/colormesh/x:1", Some("r"), "t"), None);
        assert_eq!(
            rewrite_image("localhost:5000/colormesh/echo:1", Some("r"), "t"),
            None
        );
    }

    #[test]
    fn loaded_images_are_not_pulled_and_registry_images_keep_their_policy() {
        let deployment = || {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "colormesh/colorteller:latest"},
                    {"name": "other", "image": "nginx:1.25"}]}}}})
        };
        let mut loaded = deployment();
        rewrite_images(&mut loaded, None, "latest");
        let containers = &loaded["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
        assert!(containers[1].get("imagePullPolicy").is_none());
        let mut pushed = deployment();
        rewrite_images(&mut pushed, Some("registry.example"), "v1");
        let containers = &pushed["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0]["image"],
            "registry.example/colormesh/colorteller:v1"
        );
        assert!(containers[0].get("imagePullPolicy").is_none());
    }

    #[test]
    fn labels_and_namespaces_are_added_without_losing_fields() {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}});
        set_label(&mut object, RUN_LABEL, "r1");
        default_namespace(&mut object, "default");
        assert_eq!(
            object["metadata"]["labels"],
            json!({"a": "b", RUN_LABEL: "r1"})
        );
        assert_eq!(object["metadata"]["namespace"], json!("default"));
        assert_eq!(object["data"], json!({"k": "v"}));
        remove_label(&mut object, RUN_LABEL);
        assert_eq!(object["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn the_colorgateway_is_meshed_and_gets_the_sidecar() {
        let parsed = model::load_dir(&manifests().join("colorapp")).expect("loads");
        let set = ResourceSet::from_loaded(parsed.resources.clone());
        let (loaded, deployment) = set
            .deployments()
            .find(|(_, d)| d.metadata.name.as_deref() == Some("colorgateway"))
            .expect("colorgateway");
        let mesh = sidecar_mesh(&set, deployment).expect("meshed");
        assert_eq!(
            mesh,
            SidecarMesh::AppMesh {
                node: "colorgateway".into()
            }
        );
        let mut object = raw_document(loaded);
        let account = inject_sidecar(
            &mut object,
            &mesh,
            "appmesh-demo",
            "colormesh/gateway-proxy:latest",
        );
        assert_eq!(account, SIDECAR_SERVICE_ACCOUNT);
        let spec = &object["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], json!(SIDECAR_SERVICE_ACCOUNT));
        let containers = spec["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 2);
        let env = containers[0]["env"].as_array().expect("env");
        assert!(env.contains(&json!({"name": "HTTP_PROXY", "value": "http://127.0.0.1:15001"})));
        assert!(env.contains(&json!({"name": "NO_PROXY", "value": "127.0.0.1,localhost"})));
        assert!(env.contains(
            &json!({"name": "COLOR_TELLER_ENDPOINT", "value": "colorteller.appmesh-demo:9080"})
        ));
        // The whole container, as App Mesh injection has always written it.
        assert_eq!(
            containers[1],
            json!({
                "name": SIDECAR_CONTAINER,
                "image": "colormesh/gateway-proxy:latest",
                "args": [
                    "sidecar",
                    "--kubernetes",
                    "--node",
                    "colorgateway",
                    "--namespace",
                    "appmesh-demo",
                    "--listen",
                    "127.0.0.1:15001",
                    "--admin",
                    "127.0.0.1:15000",
                    "--ready-listen",
                    "0.0.0.0:15002"
                ],
                "ports": [{"name": "sidecar-ready", "containerPort": 15002}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 15002}},
            })
        );
        // Injecting twice replaces rather than duplicates.
        inject_sidecar(&mut object, &mesh, "appmesh-demo", "img");
        let containers = object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 2);
        assert_eq!(
            containers[0]["env"]
                .as_array()
                .map(|e| e.iter().filter(|v| v["name"] == "HTTP_PROXY").count()),
            Some(1)
        );
    }

    #[test]
    fn an_unmeshed_deployment_gets_no_sidecar() {
        let parsed = model::load_dir(&manifests().join("colorapp")).expect("loads");
        let without_namespace: Vec<model::Loaded> = parsed
            .resources
            .into_iter()
            .filter(|l| l.resource.kind() != model::ResourceKind::Namespace)
            .collect();
        let set = ResourceSet::from_loaded(without_namespace);
        let (_, deployment) = set.deployments().next().expect("a deployment");
        assert_eq!(sidecar_mesh(&set, deployment), None);
    }

    /// The document a loaded resource was read from, as raw JSON.
    fn raw_document(loaded: &model::Loaded) -> Value {
        let text = std::fs::read_to_string(&loaded.origin.file).expect("reads");
        raw_documents(&text)
            .remove(&loaded.origin.line)
            .expect("document")
            .expect("parses")
    }

    fn gamma_colorapp() -> Vec<model::Loaded> {
        model::load_dir(&manifests().join("gateway-api/colorapp"))
            .expect("loads")
            .resources
    }

    #[test]
    fn the_gamma_colorgateway_gets_the_sidecar_without_a_node() {
        let set = ResourceSet::from_loaded(gamma_colorapp());
        // Every workload of a GAMMA namespace is meshed, and none by App Mesh.
        let meshes: Vec<(String, Option<SidecarMesh>)> = set
            .deployments()
            .map(|(_, d)| {
                (
                    d.metadata.name.clone().unwrap_or_default(),
                    sidecar_mesh(&set, d),
                )
            })
            .collect();
        assert!(meshes.len() > 1, "{meshes:?}");
        assert!(
            meshes
                .iter()
                .all(|(_, mesh)| *mesh == Some(SidecarMesh::Gamma)),
            "{meshes:?}"
        );

        let (loaded, _) = set
            .deployments()
            .find(|(_, d)| d.metadata.name.as_deref() == Some("colorgateway"))
            .expect("colorgateway");
        let mut object = raw_document(loaded);
        let account = inject_sidecar(
            &mut object,
            &SidecarMesh::Gamma,
            "appmesh-demo",
            "colormesh/gateway-proxy:latest",
        );
        assert_eq!(account, SIDECAR_SERVICE_ACCOUNT);
        let spec = &object["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], json!(SIDECAR_SERVICE_ACCOUNT));
        let containers = spec["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 2);
        let env = containers[0]["env"].as_array().expect("env");
        assert!(env.contains(&json!({"name": "HTTP_PROXY", "value": "http://127.0.0.1:15001"})));
        assert!(env.contains(&json!({"name": "NO_PROXY", "value": "127.0.0.1,localhost"})));
        assert!(env.contains(
            &json!({"name": "COLOR_TELLER_ENDPOINT", "value": "colorteller.appmesh-demo:9080"})
        ));
        assert_eq!(containers[1]["name"], json!(SIDECAR_CONTAINER));
        assert_eq!(
            containers[1]["image"],
            json!("colormesh/gateway-proxy:latest")
        );
        assert_eq!(
            containers[1]["args"],
            json!([
                "sidecar",
                "--kubernetes",
                "--namespace",
                "appmesh-demo",
                "--listen",
                "127.0.0.1:15001",
                "--admin",
                "127.0.0.1:15000",
                "--ready-listen",
                "0.0.0.0:15002"
            ])
        );
        // The same service account binding as App Mesh's sidecar.
        let rbac = sidecar_rbac("appmesh-demo", &account);
        assert_eq!(rbac[1]["roleRef"]["name"], json!(GATEWAY_CLUSTER_ROLE));
    }

    #[test]
    fn a_deployment_in_an_unlabelled_namespace_gets_no_gamma_sidecar() {
        let mut resources = gamma_colorapp();
        let mut unlabelled = 0;
        for loaded in &mut resources {
            if let model::Resource::Namespace(namespace) = &mut loaded.resource {
                namespace.metadata.labels = None;
                unlabelled += 1;
            }
        }
        assert_eq!(unlabelled, 1);
        let set = ResourceSet::from_loaded(resources);
        let (_, deployment) = set
            .deployments()
            .find(|(_, d)| d.metadata.name.as_deref() == Some("colorgateway"))
            .expect("colorgateway");
        assert_eq!(sidecar_mesh(&set, deployment), None);
    }

    #[test]
    fn app_mesh_takes_precedence_over_the_gamma_label() {
        // The App Mesh colorapp with its namespace also labelled for the GAMMA mesh: pods a
        // VirtualNode selects keep App Mesh's sidecar, as on the local backend.
        let parsed = model::load_dir(&manifests().join("colorapp")).expect("loads");
        let mut resources = parsed.resources;
        for loaded in &mut resources {
            if let model::Resource::Namespace(namespace) = &mut loaded.resource {
                namespace
                    .metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(
                        workload::GAMMA_MESH_LABEL.to_owned(),
                        workload::GAMMA_MESH.to_owned(),
                    );
            }
        }
        let set = ResourceSet::from_loaded(resources);
        let (_, deployment) = set
            .deployments()
            .find(|(_, d)| d.metadata.name.as_deref() == Some("colorgateway"))
            .expect("colorgateway");
        assert_eq!(
            sidecar_mesh(&set, deployment),
            Some(SidecarMesh::AppMesh {
                node: "colorgateway".into()
            })
        );
    }

    #[test]
    fn gateways_are_pointed_at_the_gateway_under_test_and_nothing_else_is() {
        let mut gateway = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "gloo-system"},
            "spec": {"gatewayClassName": "colormesh", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
        });
        assert!(set_gateway_class(&mut gateway, "kgateway"));
        assert_eq!(gateway["spec"]["gatewayClassName"], json!("kgateway"));
        assert_eq!(
            gateway["spec"]["listeners"][0]["port"],
            json!(80),
            "the rest is kept"
        );

        let mut bare = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "Gateway", "metadata": {"name": "g"}});
        assert!(set_gateway_class(&mut bare, "eg"));
        assert_eq!(bare["spec"]["gatewayClassName"], json!("eg"));

        let route = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r"}, "spec": {"parentRefs": [{"name": "gw"}]}
        });
        let class = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "colormesh"}, "spec": {"controllerName": "colormesh.dev/gateway-proxy"}
        });
        // Istio's own Gateway kind is not the Gateway API's.
        let istio = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "spec": {"selector": {}}});
        for original in [route, class, istio] {
            let mut object = original.clone();
            assert!(!set_gateway_class(&mut object, "kgateway"));
            assert_eq!(object, original);
        }
    }

    #[test]
    fn annotations_are_added_without_losing_others() {
        let mut object = json!({"metadata": {"name": "gw", "annotations": {"a": "1"}}});
        set_annotation(&mut object, ISTIO_SERVICE_TYPE, "ClusterIP");
        assert_eq!(
            object["metadata"]["annotations"],
            json!({"a": "1", "networking.istio.io/service-type": "ClusterIP"})
        );
        let mut empty = json!({});
        set_annotation(&mut empty, "k", "v");
        assert_eq!(empty, json!({"metadata": {"annotations": {"k": "v"}}}));
    }

    #[test]
    fn namespaces_and_meshes_go_first() {
        assert!(
            apply_priority("v1", "Namespace") < apply_priority("appmesh.k8s.aws/v1beta2", "Mesh")
        );
        assert!(
            apply_priority("appmesh.k8s.aws/v1beta2", "Mesh")
                < apply_priority("apps/v1", "Deployment")
        );
    }
}

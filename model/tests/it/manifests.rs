//! Every file under `manifests/` loads cleanly and holds the walkthrough's resources.

use std::path::{Path, PathBuf};

use model::appmesh::{Provider, Reference, RouteSpec};
use model::gloo::{Action, RouteAction, UpstreamGroup};
use model::{Resource, ResourceKind, ResourceSet, load_dir, load_paths};
use test_support::manifests_dir;

#[test]
fn every_manifest_loads_without_errors_or_ignored_fields() {
    let parsed = load_dir(&manifests_dir()).expect("manifests readable");
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for loaded in &parsed.resources {
        assert!(
            loaded.ignored_fields.is_empty(),
            "{} at {}: ignored {:?}",
            loaded.resource.key(),
            loaded.origin,
            loaded.ignored_fields
        );
        if let Resource::Other {
            api_version, kind, ..
        } = &loaded.resource
        {
            assert!(
                CLUSTER_ONLY_KINDS.contains(&(api_version.as_str(), kind.as_str())),
                "{} at {} is neither a modelled kind nor a cluster-only built-in",
                loaded.resource.key(),
                loaded.origin
            );
        }
    }
    // Files are read in sorted path order.
    let files: Vec<&Path> = parsed
        .resources
        .iter()
        .map(|l| l.origin.file.as_path())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
}

/// Built-in kinds only the cluster backends apply (RBAC for the in-cluster gateway). The model
/// does not read them, so they are checked against their `k8s-openapi` types below.
const CLUSTER_ONLY_KINDS: [(&str, &str); 5] = [
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
];

/// Deserialises a document into `T`, failing on unknown fields (which `k8s-openapi` ignores).
fn strictly<T: serde::de::DeserializeOwned>(document: &serde_json::Value) -> Result<(), String> {
    let mut ignored = Vec::new();
    serde_ignored::deserialize(document.clone(), |path| ignored.push(path.to_string()))
        .map(|_: T| ())
        .map_err(|error| error.to_string())?;
    if ignored.is_empty() {
        Ok(())
    } else {
        Err(format!("unknown fields {ignored:?}"))
    }
}

#[test]
fn cluster_only_built_in_kinds_deserialise_into_their_k8s_openapi_types() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    let parsed = load_dir(&manifests_dir()).expect("manifests readable");
    let mut files: Vec<PathBuf> = parsed
        .resources
        .iter()
        .filter(|loaded| matches!(loaded.resource, Resource::Other { .. }))
        .map(|loaded| loaded.origin.file.clone())
        .collect();
    files.dedup();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for document in serde_norway::Deserializer::from_str(&text) {
            let value: serde_json::Value =
                serde::Deserialize::deserialize(document).expect("valid YAML");
            let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
            let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
                continue;
            };
            let outcome = match (api_version, kind) {
                ("v1", "ServiceAccount") => strictly::<ServiceAccount>(&value),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => strictly::<ClusterRole>(&value),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    strictly::<ClusterRoleBinding>(&value)
                }
                ("rbac.authorization.k8s.io/v1", "Role") => strictly::<Role>(&value),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => strictly::<RoleBinding>(&value),
                _ => continue,
            };
            outcome.unwrap_or_else(|error| panic!("{}: {kind}: {error}", file.display()));
            checked += 1;
        }
    }
    let expected = parsed
        .resources
        .iter()
        .filter(|loaded| {
            matches!(&loaded.resource, Resource::Other { api_version, kind, .. }
                if CLUSTER_ONLY_KINDS.contains(&(api_version.as_str(), kind.as_str())))
        })
        .count();
    assert!(
        expected > 0,
        "manifests/cluster holds the in-cluster gateway's RBAC"
    );
    assert_eq!(checked, expected);
}

#[test]
fn tool_configs_are_kind_and_eksctl_files_the_loader_passes_over() {
    let cluster = manifests_dir().join("cluster");
    for (file, api_version, kind) in [
        ("kind-config.yaml", "kind.x-k8s.io/v1alpha4", "Cluster"),
        ("eksctl-cluster.yaml", "eksctl.io/v1alpha5", "ClusterConfig"),
    ] {
        let path = cluster.join(file);
        let text = std::fs::read_to_string(&path).expect("readable tool config");
        let value: serde_json::Value = serde_norway::from_str(&text).expect("valid YAML");
        assert_eq!(value["apiVersion"], api_version, "{file}");
        assert_eq!(value["kind"], kind, "{file}");
        let parsed = load_paths(&[path]).expect("readable");
        assert!(
            parsed.resources.is_empty() && parsed.errors.is_empty(),
            "{file}: {parsed:?}"
        );
    }
}

#[test]
fn colorapp_matches_the_walkthrough() {
    let parsed = load_paths(&[
        manifests_dir().join("colorapp"),
        manifests_dir().join("colorgatewayv2"),
    ])
    .expect("readable");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let set = ResourceSet::from_loaded(parsed.resources);

    let deployments: Vec<&str> = set
        .deployments()
        .map(|(_, d)| d.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        deployments,
        [
            "colorgateway",
            "colorgatewayv2",
            "colorteller",
            "colorteller-black",
            "colorteller-blue",
            "colorteller-red",
            "tcpecho"
        ]
    );
    for (_, deployment) in set.deployments() {
        let name = deployment.metadata.name.as_deref().unwrap();
        let container = &deployment.spec.template.spec.as_ref().unwrap().containers[0];
        let binary = if name.starts_with("colorteller") {
            "colorteller"
        } else if name == "tcpecho" {
            "tcpecho"
        } else {
            "colorgateway"
        };
        assert_eq!(
            container.image.as_deref(),
            Some(format!("colormesh/{binary}:latest").as_str()),
            "{name}"
        );
        let env: Vec<(String, String)> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let has = |k: &str, v: &str| env.contains(&(k.to_owned(), v.to_owned()));
        match binary {
            "colorgateway" => {
                assert!(
                    has("SERVER_PORT", "9080")
                        && has("COLOR_TELLER_ENDPOINT", "colorteller.appmesh-demo:9080"),
                    "{name}"
                );
                assert!(
                    has("TCP_ECHO_ENDPOINT", "tcpecho.appmesh-demo:2701"),
                    "{name}"
                );
                assert_eq!(has("COLORGATEWAY_FLAVOR", "v2"), name == "colorgatewayv2");
            }
            "tcpecho" => assert!(has("TCP_PORT", "2701")),
            _ => assert!(
                has("SERVER_PORT", "9080") && env.iter().any(|(k, _)| k == "COLOR"),
                "{name}"
            ),
        }
    }
    let white = set
        .deployments()
        .find(|(_, d)| d.metadata.name.as_deref() == Some("colorteller"))
        .unwrap()
        .1;
    let white_labels = white
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(white_labels["version"], "white");

    for (_, service) in set.services() {
        let port = &service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        match service.metadata.name.as_deref().unwrap() {
            "tcpecho" => assert_eq!((port.port, port.name.as_deref()), (2701, Some("tcpecho"))),
            _ => assert_eq!((port.port, port.name.as_deref()), (9080, Some("http"))),
        }
    }
    assert_eq!(set.services().count(), 7);

    let namespace = set.namespaces().next().unwrap().1;
    let labels = namespace.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["mesh"], "color-mesh");
    assert_eq!(labels["appmesh.k8s.aws/sidecarInjectorWebhook"], "enabled");

    let (_, mesh) = set.meshes().next().unwrap();
    assert_eq!(mesh.metadata.name.as_deref(), Some("color-mesh"));

    let (_, router) = set.virtual_routers().next().unwrap();
    let RouteSpec::Http(http) = &router.spec.routes[0].spec else {
        panic!("http route")
    };
    assert_eq!(router.spec.routes[0].name, "color-route");
    assert_eq!(http.match_.prefix.as_deref(), Some("/"));
    let targets: Vec<(&str, u32)> = http
        .action
        .weighted_targets
        .iter()
        .map(|t| (t.virtual_node_ref.name.as_str(), t.weight))
        .collect();
    assert_eq!(
        targets,
        [
            ("colorteller", 1),
            ("colorteller-blue", 1),
            ("colorteller-black", 1)
        ]
    );

    let providers: Vec<(&str, &Provider)> = set
        .appmesh_virtual_services()
        .map(|(_, vs)| {
            (
                vs.metadata.name.as_deref().unwrap(),
                vs.spec.provider.as_ref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        providers,
        [
            (
                "colorgateway.appmesh-demo",
                &Provider::VirtualNode(Reference::named("colorgateway"))
            ),
            (
                "colorgatewayv2.appmesh-demo",
                &Provider::VirtualNode(Reference::named("colorgatewayv2"))
            ),
            (
                "colorteller.appmesh-demo",
                &Provider::VirtualRouter(Reference::named("colorteller-router"))
            ),
            (
                "tcpecho.appmesh-demo",
                &Provider::VirtualNode(Reference::named("tcpecho"))
            ),
        ]
    );
    let gateway_node = set
        .virtual_nodes()
        .find(|(_, n)| n.metadata.name.as_deref() == Some("colorgateway"))
        .unwrap()
        .1;
    let backends: Vec<&str> = gateway_node
        .spec
        .backends
        .iter()
        .map(|b| b.virtual_service.virtual_service_ref.name.as_str())
        .collect();
    assert_eq!(
        backends,
        ["colorteller.appmesh-demo", "tcpecho.appmesh-demo"]
    );
    assert_eq!(set.virtual_nodes().count(), 7);
}

fn group_in(file: &str) -> (UpstreamGroup, model::gloo::VirtualService) {
    let parsed = load_paths(&[manifests_dir().join("gloo").join(file)]).expect("readable");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let set = ResourceSet::from_loaded(parsed.resources);
    let group = set
        .upstream_groups()
        .next()
        .expect("an upstream group")
        .1
        .clone();
    let vs = set
        .gloo_virtual_services()
        .next()
        .expect("a virtual service")
        .1
        .clone();
    (group, vs)
}

#[test]
fn canary_steps_have_the_walkthrough_weights() {
    for (file, expected) in [
        (
            "upstreamgroup-80-20.yaml",
            vec![
                ("appmesh-demo-colorgateway-9080", 80),
                ("appmesh-demo-colorgatewayv2-9080", 20),
            ],
        ),
        (
            "upstreamgroup-50-50.yaml",
            vec![
                ("appmesh-demo-colorgateway-9080", 50),
                ("appmesh-demo-colorgatewayv2-9080", 50),
            ],
        ),
        (
            "upstreamgroup-0-100.yaml",
            vec![("appmesh-demo-colorgatewayv2-9080", 100)],
        ),
    ] {
        let (group, vs) = group_in(file);
        assert_eq!(
            group.metadata.name.as_deref(),
            Some("upstreamgroup-gateway")
        );
        assert_eq!(group.metadata.namespace.as_deref(), Some("gloo-system"));
        let weights: Vec<(&str, u32)> = group
            .spec
            .destinations
            .iter()
            .map(|d| (d.destination.upstream.name.as_str(), d.effective_weight()))
            .collect();
        assert_eq!(weights, expected, "{file}");
        assert_eq!(group.spec.total_weight(), 100);
        let route = &vs.spec.virtual_host.routes[0];
        assert_eq!(vs.spec.virtual_host.domains, ["*"]);
        assert_eq!(
            route.matchers,
            [model::gloo::Matcher::prefix("/appmesh/color")]
        );
        assert_eq!(
            route.options.as_ref().unwrap().prefix_rewrite.as_deref(),
            Some("/color")
        );
        assert_eq!(
            route.action,
            Action::Route(RouteAction::UpstreamGroup(model::gloo::ResourceRef::new(
                "gloo-system",
                "upstreamgroup-gateway"
            )))
        );
    }
    let parsed =
        load_paths(&[manifests_dir().join("gloo/virtualservice-colorgateway.yaml")]).unwrap();
    let Resource::GlooVirtualService(vs) = &parsed.resources[0].resource else {
        panic!()
    };
    assert_eq!(
        parsed.resources[0].resource.kind(),
        ResourceKind::GlooVirtualService
    );
    assert!(
        matches!(&vs.spec.virtual_host.routes[0].action, Action::Route(RouteAction::Single(d)) if d.upstream.name == "appmesh-demo-colorgateway-9080")
    );
}

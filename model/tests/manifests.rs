//! Every file under `manifests/` loads cleanly and holds the walkthrough's resources.

use std::path::{Path, PathBuf};

use model::appmesh::{Provider, Reference, RouteSpec};
use model::gloo::{Action, RouteAction, UpstreamGroup};
use model::{Resource, ResourceKind, ResourceSet, load_dir, load_paths};

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

#[test]
fn every_manifest_loads_without_errors_or_ignored_fields() {
    let parsed = load_dir(&manifests()).expect("manifests readable");
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
        assert!(
            !matches!(loaded.resource, Resource::Other { .. }),
            "{} is not a modelled kind",
            loaded.resource.key()
        );
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

#[test]
fn colorapp_matches_the_walkthrough() {
    let parsed = load_paths(&[
        manifests().join("colorapp"),
        manifests().join("colorgatewayv2"),
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
    let parsed = load_paths(&[manifests().join("gloo").join(file)]).expect("readable");
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
    let parsed = load_paths(&[manifests().join("gloo/virtualservice-colorgateway.yaml")]).unwrap();
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

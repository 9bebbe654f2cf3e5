//! The cluster backend against a mocked Kubernetes API server (tower-test): what it sends for
//! apply, delete and cleanup, how it reads rollouts, Gloo statuses and load balancers, and the
//! errors it gives for missing CRDs and conflicts.
#![cfg(feature = "kube")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::backend::kube::{KubeBackend, KubeError, KubeSettings};
use harness::backend::{Backend, BackendError};
use harness::backend::{ClusterGateway, Provider};
use harness::scenario::WaitCondition;
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use test_support::manifests_dir;

const RUN: &str = "run-1";
const RUN_SELECTOR: &str = "labelSelector=colormesh.dev%2Frun%3Drun-1";

/// One request the fake API server received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Recorded {
    fn is_watch(&self) -> bool {
        self.query.contains("watch=true")
    }
}

/// How the fake API server answers one request.
enum Reply {
    Json(u16, Value),
    /// Never answer (an open watch).
    Hold,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// A kube client whose requests `answer` handles; every request is recorded in the log.
fn fake_api(answer: impl Fn(&Recorded) -> Reply + Send + 'static) -> (kube::Client, Log) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let recorded = log.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.expect("request body").to_bytes();
            let request = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            recorded.lock().expect("log").push(request.clone());
            match answer(&request) {
                Reply::Json(code, value) => respond.send_response(
                    Response::builder()
                        .status(code)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Body::from(serde_json::to_vec(&value).expect("json")))
                        .expect("response"),
                ),
                Reply::Hold => held.push(respond),
            }
        }
    });
    (kube::Client::new(service, "default"), log)
}

fn resource(name: &str, kind: &str, namespaced: bool, delete_collection: bool) -> Value {
    let mut verbs = vec![
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    if delete_collection {
        verbs.push("deletecollection");
    }
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind, "verbs": verbs})
}

/// The discovery answer for a group version, or `None` when the cluster does not serve it.
fn discovery(path: &str, gloo_installed: bool) -> Option<Value> {
    let (group_version, resources) = match path {
        "/api/v1" => (
            "v1",
            vec![
                resource("namespaces", "Namespace", false, false),
                resource("services", "Service", true, false),
                resource("serviceaccounts", "ServiceAccount", true, true),
                resource("configmaps", "ConfigMap", true, true),
                resource("pods", "Pod", true, true),
            ],
        ),
        "/apis/apps/v1" => (
            "apps/v1",
            vec![resource("deployments", "Deployment", true, true)],
        ),
        "/apis/rbac.authorization.k8s.io/v1" => (
            "rbac.authorization.k8s.io/v1",
            vec![resource(
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                true,
            )],
        ),
        "/apis/appmesh.k8s.aws/v1beta2" => (
            "appmesh.k8s.aws/v1beta2",
            vec![
                resource("meshes", "Mesh", false, true),
                resource("virtualnodes", "VirtualNode", true, true),
                resource("virtualservices", "VirtualService", true, true),
                resource("virtualrouters", "VirtualRouter", true, true),
            ],
        ),
        "/apis/apiextensions.k8s.io/v1" => (
            "apiextensions.k8s.io/v1",
            vec![resource(
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                true,
            )],
        ),
        "/apis/gateway.networking.k8s.io/v1" => (
            "gateway.networking.k8s.io/v1",
            vec![
                resource("gatewayclasses", "GatewayClass", false, true),
                resource("gateways", "Gateway", true, true),
                resource("httproutes", "HTTPRoute", true, true),
            ],
        ),
        "/apis/gloo.solo.io/v1" if gloo_installed => (
            "gloo.solo.io/v1",
            vec![
                resource("upstreams", "Upstream", true, true),
                resource("upstreamgroups", "UpstreamGroup", true, true),
            ],
        ),
        "/apis/gateway.solo.io/v1" if gloo_installed => (
            "gateway.solo.io/v1",
            vec![resource("virtualservices", "VirtualService", true, true)],
        ),
        _ => return None,
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn not_found(what: &str) -> Reply {
    Reply::Json(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}

/// A cluster that accepts every apply (echoing the object with increasing resourceVersions),
/// has no objects to GET, and accepts deletes.
fn accepting_cluster(request: &Recorded, gloo_installed: bool, versions: &Mutex<u64>) -> Reply {
    if let Some(answer) = discovery(&request.path, gloo_installed) {
        return Reply::Json(200, answer);
    }
    match request.method.as_str() {
        "PATCH" => {
            let mut version = versions.lock().expect("versions");
            *version += 1;
            let mut object = request.body.clone();
            object["metadata"]["resourceVersion"] = json!(version.to_string());
            Reply::Json(200, object)
        }
        "DELETE" => Reply::Json(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        ),
        "GET" if request.is_watch() => Reply::Hold,
        "GET" if request.path == "/api/v1/namespaces" => Reply::Json(
            200,
            json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [
                {"metadata": {"name": "appmesh-demo", "labels": {"colormesh.dev/run": RUN}}}
            ]}),
        ),
        _ => not_found(&request.path),
    }
}

fn settings(provider: Provider) -> KubeSettings {
    let mut settings = KubeSettings::new(provider, ClusterGateway::Builtin, manifests_dir(), RUN);
    settings.registry = Some("registry.example:5000".into());
    settings.tag = "t1".into();
    settings
}

fn accepting_backend(provider: Provider) -> (KubeBackend, Log) {
    let versions = Mutex::new(100);
    let (client, log) = fake_api(move |r| accepting_cluster(r, true, &versions));
    (KubeBackend::new(client, settings(provider)), log)
}

fn patches(log: &Log) -> Vec<Recorded> {
    log.lock()
        .expect("log")
        .iter()
        .filter(|r| r.method == "PATCH")
        .cloned()
        .collect()
}

fn patch_of(log: &Log, path: &str) -> Recorded {
    patches(log)
        .into_iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no PATCH {path}"))
}

#[tokio::test]
async fn apply_sends_server_side_apply_with_the_run_label_and_registry_images() {
    let (mut backend, log) = accepting_backend(Provider::Kind);
    let applied = backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect("applies");

    let sent = patches(&log);
    assert!(!sent.is_empty());
    for patch in &sent {
        assert!(
            patch.query.contains("fieldManager=colormesh") && patch.query.contains("force=true"),
            "{} {}?{}",
            patch.method,
            patch.path,
            patch.query
        );
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
        assert_eq!(
            patch.body["metadata"]["labels"]["colormesh.dev/run"],
            json!(RUN),
            "{}",
            patch.path
        );
    }
    // The namespace and the mesh go before the objects that live in or depend on them.
    assert_eq!(sent[0].path, "/api/v1/namespaces/appmesh-demo");
    assert_eq!(
        sent[1].path,
        "/apis/appmesh.k8s.aws/v1beta2/meshes/color-mesh"
    );

    let teller = patch_of(
        &log,
        "/apis/apps/v1/namespaces/appmesh-demo/deployments/colorteller",
    );
    assert_eq!(
        teller.body["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("registry.example:5000/colormesh/colorteller:t1")
    );

    assert!(
        applied
            .changed
            .contains(&"Deployment appmesh-demo/colorgateway".to_owned())
    );
    assert!(applied.changed.contains(&"Mesh color-mesh".to_owned()));
    assert!(
        !applied.changed.iter().any(|c| c.starts_with("Upstream ")),
        "discovered upstreams are not the scenario's changes: {:?}",
        applied.changed
    );
    let highest = 100 + sent.len() as u64;
    assert_eq!(applied.revision, highest);

    // Discovery is emulated for the builtin gateway: the walkthrough's Upstreams in gloo-system.
    let upstream = patch_of(
        &log,
        "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams/appmesh-demo-colorgateway-9080",
    );
    assert_eq!(upstream.body["kind"], json!("Upstream"));
    assert_eq!(
        upstream.body["metadata"]["labels"]["discovered_by"],
        json!("kubernetesplugin")
    );
}

#[tokio::test]
async fn the_colorgateway_gets_the_builtin_sidecar_and_may_read_the_mesh() {
    let (mut backend, log) = accepting_backend(Provider::Kind);
    backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect("applies");

    let gateway = patch_of(
        &log,
        "/apis/apps/v1/namespaces/appmesh-demo/deployments/colorgateway",
    );
    let spec = &gateway.body["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().expect("containers");
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["colorgateway", "colormesh-sidecar"]);
    let sidecar = &containers[1];
    assert_eq!(
        sidecar["image"],
        json!("registry.example:5000/colormesh/gateway-proxy:t1")
    );
    assert_eq!(
        sidecar["args"],
        json!([
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
        ])
    );
    let env = containers[0]["env"].as_array().expect("env");
    assert!(env.contains(&json!({"name": "HTTP_PROXY", "value": "http://127.0.0.1:15001"})));
    assert!(env.contains(&json!({"name": "NO_PROXY", "value": "127.0.0.1,localhost"})));
    assert_eq!(spec["serviceAccountName"], json!("colormesh-sidecar"));

    patch_of(
        &log,
        "/api/v1/namespaces/appmesh-demo/serviceaccounts/colormesh-sidecar",
    );
    let binding = patch_of(
        &log,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/colormesh-sidecar-appmesh-demo-colormesh-sidecar",
    );
    assert_eq!(
        binding.body["roleRef"]["name"],
        json!("colormesh-gateway-proxy")
    );
    assert_eq!(
        binding.body["metadata"]["labels"]["colormesh.dev/run"],
        json!(RUN)
    );
}

#[tokio::test]
async fn on_eks_the_backend_injects_the_sidecar_app_mesh_no_longer_does() {
    // App Mesh was discontinued on 2026-09-30: no controller injects its Envoy on EKS any more.
    let (mut backend, log) = accepting_backend(Provider::Eks);
    backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect("applies");
    let gateway = patch_of(
        &log,
        "/apis/apps/v1/namespaces/appmesh-demo/deployments/colorgateway",
    );
    let names: Vec<&str> = gateway.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["colorgateway", "colormesh-sidecar"]);
    assert!(
        patches(&log)
            .iter()
            .any(|p| p.path.contains("serviceaccounts"))
    );
}

#[tokio::test]
async fn gamma_namespaces_get_the_builtin_mesh_sidecar_on_kind_and_on_eks() {
    // App Mesh is retired, so on EKS too nothing but the builtin sidecar serves the GAMMA mesh.
    for provider in [Provider::Kind, Provider::Eks] {
        let (mut backend, log) = accepting_backend(provider);
        backend
            .apply(&[PathBuf::from("gateway-api/colorapp")])
            .await
            .expect("applies");
        let gateway = patch_of(
            &log,
            "/apis/apps/v1/namespaces/appmesh-demo/deployments/colorgateway",
        );
        let spec = &gateway.body["spec"]["template"]["spec"];
        let containers = spec["containers"].as_array().expect("containers");
        let names: Vec<&str> = containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["colorgateway", "colormesh-sidecar"], "{provider:?}");
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
            ]),
            "{provider:?}"
        );
        assert_eq!(
            containers[1]["image"],
            json!("registry.example:5000/colormesh/gateway-proxy:t1")
        );
        let env = containers[0]["env"].as_array().expect("env");
        assert!(env.contains(&json!({"name": "HTTP_PROXY", "value": "http://127.0.0.1:15001"})));
        assert_eq!(spec["serviceAccountName"], json!("colormesh-sidecar"));
        let binding = patch_of(
            &log,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/colormesh-sidecar-appmesh-demo-colormesh-sidecar",
        );
        assert_eq!(
            binding.body["roleRef"]["name"],
            json!("colormesh-gateway-proxy")
        );
    }
}

#[tokio::test]
async fn with_another_gateway_gamma_namespaces_get_no_builtin_sidecar() {
    // The sidecar's ClusterRole comes with the builtin gateway's manifests only.
    let versions = Mutex::new(100);
    let (client, log) = fake_api(move |r| accepting_cluster(r, true, &versions));
    let settings = KubeSettings::new(
        Provider::Kind,
        ClusterGateway::Kgateway,
        manifests_dir(),
        RUN,
    );
    let mut backend = KubeBackend::new(client, settings);
    backend
        .apply(&[PathBuf::from("gateway-api/colorapp")])
        .await
        .expect("applies");
    let gateway = patch_of(
        &log,
        "/apis/apps/v1/namespaces/appmesh-demo/deployments/colorgateway",
    );
    let containers = gateway.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .len();
    assert_eq!(containers, 1);
    assert!(
        !patches(&log)
            .iter()
            .any(|p| p.path.contains("serviceaccounts") || p.path.contains("clusterrolebindings"))
    );
}

#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_names_the_crd_to_install() {
    let versions = Mutex::new(1);
    let (client, log) = fake_api(move |r| accepting_cluster(r, false, &versions));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let error = backend
        .apply(&[PathBuf::from("gloo/virtualservice-colorgateway.yaml")])
        .await
        .expect_err("no Gloo CRDs");
    assert!(matches!(error, BackendError::Manifest { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("virtualservice-colorgateway.yaml"), "{text}");
    assert!(
        text.contains("VirtualService gloo-system/colorgateway"),
        "{text}"
    );
    assert!(
        text.contains("the cluster has no CRD for gateway.solo.io/v1 VirtualService (virtualservices.gateway.solo.io); install Gloo or apply ../shared/schemas/gloo/"),
        "{text}"
    );
    assert!(patches(&log).is_empty());
}

#[tokio::test]
async fn an_apply_conflict_is_a_clear_error() {
    let (client, _log) = fake_api(|r| {
        if let Some(answer) = discovery(&r.path, true) {
            return Reply::Json(200, answer);
        }
        match r.method.as_str() {
            "PATCH" => Reply::Json(
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
                       "message": "Operation cannot be fulfilled on upstreamgroups.gloo.solo.io \"upstreamgroup-gateway\": the object has been modified", "code": 409}),
            ),
            _ => not_found(&r.path),
        }
    });
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let text = backend
        .apply(&[PathBuf::from("gloo/upstreamgroup-80-20.yaml")])
        .await
        .expect_err("conflict")
        .to_string();
    assert!(text.contains("upstreamgroup-80-20.yaml"), "{text}");
    assert!(text.contains("UpstreamGroup gloo-system/"), "{text}");
    assert!(text.contains("conflict (409 Conflict)"), "{text}");
    assert!(text.contains("the object has been modified"), "{text}");
}

fn virtual_service_list(state: &str) -> Value {
    json!({"kind": "VirtualServiceList", "apiVersion": "gateway.solo.io/v1", "metadata": {"resourceVersion": "7"}, "items": [{
        "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
        "metadata": {"name": "colorgateway", "namespace": "gloo-system", "resourceVersion": "7"},
        "spec": {},
        "status": {"statuses": {"gloo-system": {"state": state, "reason": "upstream group not found", "reportedBy": "gateway"}}}
    }]})
}

fn status_wait() -> WaitCondition {
    WaitCondition::Status {
        kind: "VirtualService".into(),
        namespace: "gloo-system".into(),
        name: "colorgateway".into(),
        state: "Accepted".into(),
        conditions: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_that_never_becomes_accepted_times_out_with_what_was_seen() {
    let (client, log) = fake_api(|r| {
        if let Some(answer) = discovery(&r.path, true) {
            return Reply::Json(200, answer);
        }
        match r.path.as_str() {
            "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices" if r.is_watch() => {
                Reply::Hold
            }
            "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices" => {
                Reply::Json(200, virtual_service_list("Rejected"))
            }
            _ => not_found(&r.path),
        }
    });
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let error = backend
        .wait(&status_wait(), Duration::from_secs(30))
        .await
        .expect_err("never accepted");
    let BackendError::Timeout {
        condition,
        timeout,
        detail,
    } = &error
    else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(
        condition,
        "VirtualService gloo-system/colorgateway to be Accepted"
    );
    assert_eq!(*timeout, Duration::from_secs(30));
    assert_eq!(
        detail.as_deref(),
        Some("last seen: Rejected: upstream group not found")
    );
    let list = log
        .lock()
        .expect("log")
        .iter()
        .find(|r| r.path.ends_with("/virtualservices") && !r.is_watch())
        .cloned()
        .expect("listed");
    assert!(
        list.query
            .contains("fieldSelector=metadata.name%3Dcolorgateway"),
        "{}",
        list.query
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_already_accepted_ends_the_wait() {
    let (client, _log) = fake_api(|r| {
        if let Some(answer) = discovery(&r.path, true) {
            return Reply::Json(200, answer);
        }
        if r.is_watch() {
            return Reply::Hold;
        }
        match r.path.as_str() {
            "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices" => {
                Reply::Json(200, virtual_service_list("Accepted"))
            }
            _ => not_found(&r.path),
        }
    });
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    backend
        .wait(&status_wait(), Duration::from_secs(30))
        .await
        .expect("accepted");
}

fn deployment_list(available: i64) -> Value {
    json!({"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "9"}, "items": [{
        "metadata": {"name": "colorteller", "namespace": "appmesh-demo", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "colorteller"}}, "template": {}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": available,
                   "conditions": [{"type": "Available", "status": if available == 2 { "True" } else { "False" }}]}
    }]})
}

fn rollout_cluster(available: i64) -> impl Fn(&Recorded) -> Reply {
    move |r| {
        if r.is_watch() {
            return Reply::Hold;
        }
        match r.path.as_str() {
            "/apis/apps/v1/namespaces/appmesh-demo/deployments" => {
                Reply::Json(200, deployment_list(available))
            }
            _ => not_found(&r.path),
        }
    }
}

fn rollout() -> WaitCondition {
    WaitCondition::Rollout {
        namespace: "appmesh-demo".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_wait_ends_when_every_deployment_is_available() {
    let (client, _log) = fake_api(rollout_cluster(2));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    backend
        .wait(&rollout(), Duration::from_secs(120))
        .await
        .expect("rolled out");
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_stays_short_times_out_naming_the_deployment() {
    let (client, _log) = fake_api(rollout_cluster(1));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let error = backend
        .wait(&rollout(), Duration::from_secs(120))
        .await
        .expect_err("one replica missing")
        .to_string();
    assert!(
        error.contains("rollout of namespace appmesh-demo"),
        "{error}"
    );
    assert!(
        error.contains("colorteller: 1 of 2 updated replicas available"),
        "{error}"
    );
}

#[tokio::test]
async fn on_eks_the_proxy_url_is_the_load_balancer() {
    let (client, _log) = fake_api(|r| {
        if r.is_watch() {
            return Reply::Hold;
        }
        match r.path.as_str() {
            "/api/v1/namespaces/gloo-system/services" => Reply::Json(
                200,
                json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}, "items": [{
                    "metadata": {"name": "gateway-proxy", "namespace": "gloo-system"},
                    "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": "a1b2.elb.us-west-2.amazonaws.com"}]}}
                }]}),
            ),
            _ => not_found(&r.path),
        }
    });
    let mut settings = settings(Provider::Eks);
    settings.gateway = ClusterGateway::Gloo;
    let mut backend = KubeBackend::new(client, settings);
    let url = backend.proxy_url().await.expect("url");
    assert_eq!(url.as_str(), "http://a1b2.elb.us-west-2.amazonaws.com/");
}

#[tokio::test]
async fn shutdown_deletes_by_the_run_label_once() {
    let (mut backend, log) = accepting_backend(Provider::Kind);
    backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect("applies");
    log.lock().expect("log").clear();
    backend.shutdown().await.expect("cleans up");

    let requests = log.lock().expect("log").clone();
    let deletes: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect();
    let collection = |path: &str| {
        deletes
            .iter()
            .any(|d| d.starts_with(&format!("{path}?")) && d.contains(RUN_SELECTOR))
    };
    assert!(
        collection("/apis/apps/v1/namespaces/appmesh-demo/deployments"),
        "{deletes:#?}"
    );
    assert!(
        collection("/apis/appmesh.k8s.aws/v1beta2/namespaces/appmesh-demo/virtualnodes"),
        "{deletes:#?}"
    );
    assert!(
        collection("/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams"),
        "{deletes:#?}"
    );
    assert!(
        collection("/apis/appmesh.k8s.aws/v1beta2/meshes"),
        "{deletes:#?}"
    );
    assert!(
        collection("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        "{deletes:#?}"
    );
    // Services and Namespaces have no deletecollection: listed by label, deleted one by one.
    assert!(requests.iter().any(|r| r.method == "GET"
        && r.path == "/api/v1/namespaces"
        && r.query.contains(RUN_SELECTOR)));
    assert_eq!(
        deletes.last().map(String::as_str),
        Some("/api/v1/namespaces/appmesh-demo?"),
        "{deletes:#?}"
    );

    log.lock().expect("log").clear();
    backend.shutdown().await.expect("idempotent");
    assert!(log.lock().expect("log").is_empty());
    let after = backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect_err("shut down")
        .to_string();
    assert!(after.contains("shut down"), "{after}");
}

#[tokio::test]
async fn delete_removes_the_named_objects_and_tolerates_missing_ones() {
    let (client, log) = fake_api(|r| {
        if let Some(answer) = discovery(&r.path, true) {
            return Reply::Json(200, answer);
        }
        match (r.method.as_str(), r.path.as_str()) {
            (
                "DELETE",
                "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreamgroups/upstreamgroup-gateway",
            ) => Reply::Json(
                200,
                json!({"apiVersion": "gloo.solo.io/v1", "kind": "UpstreamGroup",
                    "metadata": {"name": "upstreamgroup-gateway", "namespace": "gloo-system", "resourceVersion": "55"}}),
            ),
            _ => not_found(&r.path),
        }
    });
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let applied = backend
        .delete(&[
            PathBuf::from("gloo/upstreamgroup-80-20.yaml"),
            PathBuf::from("gloo/virtualservice-colorgateway.yaml"),
        ])
        .await
        .expect("deleted");
    assert_eq!(
        applied.changed,
        ["UpstreamGroup gloo-system/upstreamgroup-gateway"]
    );
    assert_eq!(applied.revision, 55);
    // In reverse order, so a VirtualService goes before the UpstreamGroup it routes to.
    let deleted: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    let vs = "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices/colorgateway";
    let ug = "/apis/gloo.solo.io/v1/namespaces/gloo-system/upstreamgroups/upstreamgroup-gateway";
    assert_eq!(deleted, [vs, vs, ug]);
}

#[tokio::test]
async fn bad_manifests_name_the_file_before_anything_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: gloo-system}\nspec:\n  virtualHost:\n    routes:\n    - matchers: [{prefix: 3}]\n",
    )
    .expect("write");
    let versions = Mutex::new(1);
    let (client, log) = fake_api(move |r| accepting_cluster(r, true, &versions));
    let mut settings = settings(Provider::Kind);
    settings.manifests_dir = dir.path().to_owned();
    let mut backend = KubeBackend::new(client, settings);
    let error = backend
        .apply(&[PathBuf::from("bad.yaml")])
        .await
        .expect_err("bad");
    let BackendError::Manifest { file, message } = &error else {
        panic!("{error:?}");
    };
    assert!(file.ends_with("bad.yaml"));
    assert!(
        message.contains("VirtualService gloo-system/vs"),
        "{message}"
    );
    assert!(log.lock().expect("log").is_empty());
}

#[tokio::test]
async fn a_missing_glooctl_says_how_to_install_it() {
    let (client, _log) = fake_api(|r| not_found(&r.path));
    let mut settings = settings(Provider::Kind);
    settings.glooctl = PathBuf::from("/nonexistent/colormesh/glooctl");
    let mut backend = KubeBackend::new(client, settings);
    let text = backend
        .glooctl(&["get".into(), "vs".into()])
        .await
        .expect_err("missing")
        .to_string();
    assert!(text.contains("/nonexistent/colormesh/glooctl"), "{text}");
    assert!(
        text.contains("curl -sL https://run.solo.io/gloo/install | sh"),
        "{text}"
    );
}

#[tokio::test]
async fn glooctl_runs_the_program_with_the_backends_kubeconfig() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("glooctl");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"args: $*\"\necho \"kubeconfig: $KUBECONFIG\" >&2\nexit 3\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (client, _log) = fake_api(|r| not_found(&r.path));
    let mut settings = settings(Provider::Kind);
    settings.glooctl = script;
    settings.kubeconfig = Some(PathBuf::from("/tmp/colormesh-test-kubeconfig"));
    let mut backend = KubeBackend::new(client, settings);
    let output = backend
        .glooctl(&["get".into(), "vs".into()])
        .await
        .expect("runs");
    assert_eq!(output.stdout, "args: get vs\n");
    assert_eq!(
        output.stderr,
        "kubeconfig: /tmp/colormesh-test-kubeconfig\n"
    );
    assert!(!output.success);
}

#[tokio::test(start_paused = true)]
async fn with_gloo_the_config_is_live_once_the_gateway_reported_on_every_change() {
    let accepted = Arc::new(Mutex::new(false));
    let reported = accepted.clone();
    let versions = Mutex::new(10);
    let (client, _log) = fake_api(move |r| {
        if r.method == "GET"
            && r.path
                == "/apis/gateway.solo.io/v1/namespaces/gloo-system/virtualservices/colorgateway"
        {
            let state = if *reported.lock().expect("flag") {
                "Accepted"
            } else {
                "Pending"
            };
            return Reply::Json(
                200,
                json!({
                    "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "colorgateway", "namespace": "gloo-system", "resourceVersion": "12"},
                    "spec": {},
                    "status": {"statuses": {"gloo-system": {"state": state, "reportedBy": "gateway"}}}
                }),
            );
        }
        accepting_cluster(r, true, &versions)
    });
    let mut settings = settings(Provider::Kind);
    settings.gateway = ClusterGateway::Gloo;
    let mut backend = KubeBackend::new(client, settings);
    let applied = backend
        .apply(&[PathBuf::from("gloo/virtualservice-colorgateway.yaml")])
        .await
        .expect("applies");
    assert_eq!(applied.changed, ["VirtualService gloo-system/colorgateway"]);

    let error = backend
        .wait_config_live(&applied, Duration::from_secs(5))
        .await
        .expect_err("still pending")
        .to_string();
    assert!(
        error.contains("VirtualService gloo-system/colorgateway: Pending (reported by gateway)"),
        "{error}"
    );
    *accepted.lock().expect("flag") = true;
    backend
        .wait_config_live(&applied, Duration::from_secs(5))
        .await
        .expect("live");
}

#[tokio::test]
async fn on_kind_the_proxy_url_needs_a_ready_gateway_pod() {
    let (client, log) = fake_api(|r| match r.path.as_str() {
        "/api/v1/namespaces/gloo-system/services/gateway-proxy" => Reply::Json(
            200,
            json!({"metadata": {"name": "gateway-proxy", "namespace": "gloo-system"},
                   "spec": {"selector": {"gloo": "gateway-proxy"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ),
        "/api/v1/namespaces/gloo-system/pods" => Reply::Json(
            200,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": "gateway-proxy-0"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
            ]}),
        ),
        _ => not_found(&r.path),
    });
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let error = backend
        .proxy_url()
        .await
        .expect_err("no ready pod")
        .to_string();
    assert!(
        error.contains("no ready pod behind Service gloo-system/gateway-proxy (1 pods match gloo=gateway-proxy)"),
        "{error}"
    );
    let pods = log
        .lock()
        .expect("log")
        .iter()
        .find(|r| r.path.ends_with("/pods"))
        .cloned()
        .expect("pods listed");
    assert!(
        pods.query.contains("labelSelector=gloo%3Dgateway-proxy"),
        "{}",
        pods.query
    );
}

// === Gateway API ===

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const GATEWAY_API_CRDS: [&str; 4] = [
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
];

fn schemas_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas")
}

/// The CRD list answer for a watch on one CRD (`fieldSelector=metadata.name=...`), Established
/// or not.
fn crd_list(query: &str, established: bool) -> Value {
    let name = GATEWAY_API_CRDS
        .iter()
        .find(|name| query.contains(&format!("metadata.name%3D{name}")))
        .copied()
        .unwrap_or("unknown");
    let conditions = if established {
        json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}])
    } else {
        json!([{"type": "NamesAccepted", "status": "True"}])
    };
    json!({"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1",
           "metadata": {"resourceVersion": "5"},
           "items": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                      "metadata": {"name": name, "resourceVersion": "5"},
                      "spec": {}, "status": {"conditions": conditions}}]})
}

fn crd_cluster(established: bool) -> impl Fn(&Recorded) -> Reply {
    let versions = Mutex::new(40);
    move |r| {
        if r.method == "GET" && r.path == CRD_PATH {
            return if r.is_watch() {
                Reply::Hold
            } else {
                Reply::Json(200, crd_list(&r.query, established))
            };
        }
        accepting_cluster(r, true, &versions)
    }
}

#[tokio::test]
async fn the_gateway_api_crds_are_applied_server_side_and_awaited_until_established() {
    let (client, log) = fake_api(crd_cluster(true));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    backend
        .install_gateway_api_crds(&schemas_root())
        .await
        .expect("installed");

    let sent = patches(&log);
    let paths: Vec<&str> = sent.iter().map(|p| p.path.as_str()).collect();
    let expected: Vec<String> = GATEWAY_API_CRDS
        .iter()
        .map(|name| format!("{CRD_PATH}/{name}"))
        .collect();
    assert_eq!(paths, expected);
    for patch in &sent {
        assert!(
            patch.query.contains("fieldManager=colormesh") && patch.query.contains("force=true"),
            "{}",
            patch.query
        );
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
        assert_eq!(patch.body["kind"], json!("CustomResourceDefinition"));
        assert_eq!(
            patch.body["spec"]["group"],
            json!("gateway.networking.k8s.io")
        );
        assert_eq!(
            patch.body["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"],
            json!("v1.6.1")
        );
    }
    // HTTPRoute is the experimental channel's, so `retry` is part of its schema.
    let httproute = &sent[3].body;
    assert_eq!(
        httproute["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
        json!("experimental")
    );
    assert_eq!(
        sent[0].body["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
        json!("standard")
    );
    // Each CRD was watched by name until Established.
    let requests = log.lock().expect("log").clone();
    for name in GATEWAY_API_CRDS {
        assert!(
            requests.iter().any(|r| r.method == "GET"
                && r.path == CRD_PATH
                && r.query
                    .contains(&format!("fieldSelector=metadata.name%3D{name}"))),
            "{name} not awaited"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_crd_that_is_never_established_times_out_naming_it() {
    let (client, _log) = fake_api(crd_cluster(false));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let error = backend
        .install_gateway_api_crds(&schemas_root())
        .await
        .expect_err("never established");
    let BackendError::Timeout { condition, .. } = &error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(
        condition,
        "CRD gatewayclasses.gateway.networking.k8s.io to be Established"
    );
}

#[tokio::test]
async fn missing_gateway_api_schemas_are_named_before_anything_is_sent() {
    let (client, log) = fake_api(crd_cluster(true));
    let mut backend = KubeBackend::new(client, settings(Provider::Kind));
    let dir = tempfile::tempdir().expect("temp dir");
    let text = backend
        .install_gateway_api_crds(dir.path())
        .await
        .expect_err("no schemas")
        .to_string();
    assert!(
        text.contains(&format!(
            "{}/gateway-api does not exist",
            dir.path().display()
        )),
        "{text}"
    );
    assert!(log.lock().expect("log").is_empty());
}

const GATEWAY_API_MANIFEST: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: gloo-system}
spec:
  gatewayClassName: colormesh
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: color, namespace: gloo-system}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: colorgateway, namespace: appmesh-demo, port: 9080}]}]
";

fn gateway_api_manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("gateway-api.yaml"), GATEWAY_API_MANIFEST).expect("write");
    dir
}

fn gateway_api_settings(
    provider: Provider,
    gateway: ClusterGateway,
    dir: &tempfile::TempDir,
) -> KubeSettings {
    let mut settings = settings(provider);
    settings.gateway = gateway;
    settings.manifests_dir = dir.path().to_owned();
    settings
}

fn condition(kind: &str, status: &str, reason: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": format!("{kind}: {reason}"), "observedGeneration": 1})
}

/// A cluster whose Gateway and HTTPRoute carry the statuses `statuses()` gives at each GET.
fn status_cluster(
    statuses: impl Fn() -> (Vec<Value>, Vec<Value>) + Send + 'static,
) -> impl Fn(&Recorded) -> Reply {
    let versions = Mutex::new(20);
    move |r| {
        let object = |kind: &str, name: &str, status: Value| {
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
                   "metadata": {"name": name, "namespace": "gloo-system", "generation": 1, "resourceVersion": "30"},
                   "spec": {}, "status": status})
        };
        if r.method == "GET" {
            let (gateway, route) = statuses();
            match r.path.as_str() {
                "/apis/gateway.networking.k8s.io/v1/namespaces/gloo-system/gateways/gw" => {
                    return Reply::Json(
                        200,
                        object("Gateway", "gw", json!({"conditions": gateway})),
                    );
                }
                "/apis/gateway.networking.k8s.io/v1/namespaces/gloo-system/httproutes/color" => {
                    return Reply::Json(
                        200,
                        object(
                            "HTTPRoute",
                            "color",
                            json!({"parents": [{
                                "parentRef": {"name": "gw"},
                                "controllerName": "kgateway.dev/kgateway",
                                "conditions": route
                            }]}),
                        ),
                    );
                }
                _ => {}
            }
        }
        accepting_cluster(r, true, &versions)
    }
}

fn ready_gateway() -> Vec<Value> {
    vec![
        condition("Accepted", "True", "Accepted"),
        condition("Programmed", "True", "Programmed"),
    ]
}

fn ready_route() -> Vec<Value> {
    vec![
        condition("Accepted", "True", "Accepted"),
        condition("ResolvedRefs", "True", "ResolvedRefs"),
    ]
}

#[tokio::test(start_paused = true)]
async fn with_kgateway_gateways_name_its_class_and_the_config_is_live_when_its_statuses_say_so() {
    let dir = gateway_api_manifests();
    let programmed = Arc::new(Mutex::new(false));
    let flag = programmed.clone();
    let (client, log) = fake_api(status_cluster(move || {
        let gateway = if *flag.lock().expect("flag") {
            ready_gateway()
        } else {
            vec![condition("Accepted", "True", "Accepted")]
        };
        (gateway, ready_route())
    }));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Kgateway, &dir),
    );
    let applied = backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    assert_eq!(
        applied.changed,
        ["Gateway gloo-system/gw", "HTTPRoute gloo-system/color"]
    );
    let gateway = patch_of(
        &log,
        "/apis/gateway.networking.k8s.io/v1/namespaces/gloo-system/gateways/gw",
    );
    assert_eq!(gateway.body["spec"]["gatewayClassName"], json!("kgateway"));
    assert!(gateway.body["metadata"].get("annotations").is_none());

    let error = backend
        .wait_config_live(&applied, Duration::from_secs(5))
        .await
        .expect_err("not programmed yet");
    let BackendError::Timeout { detail, .. } = &error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(
        detail.as_deref(),
        Some("Gateway gloo-system/gw: no Programmed condition yet")
    );
    *programmed.lock().expect("flag") = true;
    backend
        .wait_config_live(&applied, Duration::from_secs(5))
        .await
        .expect("live");
}

#[tokio::test(start_paused = true)]
async fn a_false_route_condition_fails_at_once_naming_the_route_condition_reason_and_message() {
    let dir = gateway_api_manifests();
    let (client, _log) = fake_api(status_cluster(|| {
        (
            ready_gateway(),
            vec![
                condition("Accepted", "True", "Accepted"),
                condition("ResolvedRefs", "False", "BackendNotFound"),
            ],
        )
    }));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Kgateway, &dir),
    );
    let applied = backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let started = tokio::time::Instant::now();
    let error = backend
        .wait_config_live(&applied, Duration::from_secs(60))
        .await
        .expect_err("rejected");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a rejection does not wait out the timeout"
    );
    assert_eq!(
        error.to_string(),
        "HTTPRoute gloo-system/color (parent Gateway gw): ResolvedRefs is False (BackendNotFound): ResolvedRefs: BackendNotFound"
    );
    let BackendError::Cluster(inner) = &error else {
        panic!("{error:?}");
    };
    assert!(matches!(
        inner.downcast_ref::<KubeError>(),
        Some(KubeError::Rejected { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rejected_gateway_fails_naming_it() {
    let dir = gateway_api_manifests();
    let (client, _log) = fake_api(status_cluster(|| {
        (
            vec![
                condition("Accepted", "False", "InvalidParameters"),
                condition("Programmed", "False", "Invalid"),
            ],
            ready_route(),
        )
    }));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::EnvoyGateway, &dir),
    );
    let applied = backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let text = backend
        .wait_config_live(&applied, Duration::from_secs(60))
        .await
        .expect_err("rejected")
        .to_string();
    assert_eq!(
        text,
        "Gateway gloo-system/gw: Accepted is False (InvalidParameters): Accepted: InvalidParameters"
    );
}

#[tokio::test]
async fn with_istio_on_kind_gateways_get_a_cluster_ip_service() {
    let dir = gateway_api_manifests();
    let (client, log) = fake_api(status_cluster(|| (ready_gateway(), ready_route())));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Istio, &dir),
    );
    backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let gateway = patch_of(
        &log,
        "/apis/gateway.networking.k8s.io/v1/namespaces/gloo-system/gateways/gw",
    );
    assert_eq!(gateway.body["spec"]["gatewayClassName"], json!("istio"));
    assert_eq!(
        gateway.body["metadata"]["annotations"]["networking.istio.io/service-type"],
        json!("ClusterIP")
    );
    // The builtin gateway's own class stays as written.
    let (client, log) = fake_api(status_cluster(|| (ready_gateway(), ready_route())));
    let mut builtin = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Builtin, &dir),
    );
    builtin
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let gateway = patch_of(
        &log,
        "/apis/gateway.networking.k8s.io/v1/namespaces/gloo-system/gateways/gw",
    );
    assert_eq!(gateway.body["spec"]["gatewayClassName"], json!("colormesh"));
}

#[tokio::test]
async fn without_a_gateway_there_is_no_gateway_api_proxy() {
    let dir = gateway_api_manifests();
    let (client, _log) = fake_api(|r| not_found(&r.path));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Kgateway, &dir),
    );
    let text = backend
        .proxy_url()
        .await
        .expect_err("nothing applied")
        .to_string();
    assert!(
        text.contains("no Gateway (gateway.networking.k8s.io) was applied yet"),
        "{text}"
    );
}

#[tokio::test]
async fn envoy_gateway_s_service_is_found_by_its_owning_gateway_labels() {
    let dir = gateway_api_manifests();
    let versions = Mutex::new(1);
    let (client, log) = fake_api(move |r| {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/namespaces/envoy-gateway-system/services") => {
                return Reply::Json(
                    200,
                    json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": [{
                        "metadata": {"name": "envoy-gloo-system-gw-1a2b", "namespace": "envoy-gateway-system"},
                        "spec": {"selector": {"gateway.envoyproxy.io/owning-gateway-name": "gw"},
                                 "ports": [{"name": "http-8080", "port": 8080, "targetPort": 10080}]}
                    }]}),
                );
            }
            (
                "GET",
                "/api/v1/namespaces/envoy-gateway-system/services/envoy-gloo-system-gw-1a2b",
            ) => {
                return Reply::Json(
                    200,
                    json!({"metadata": {"name": "envoy-gloo-system-gw-1a2b", "namespace": "envoy-gateway-system"},
                           "spec": {"selector": {"gateway.envoyproxy.io/owning-gateway-name": "gw"},
                                    "ports": [{"name": "http-8080", "port": 8080, "targetPort": 10080}]}}),
                );
            }
            ("GET", "/api/v1/namespaces/envoy-gateway-system/pods") => {
                return Reply::Json(
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
                );
            }
            _ => {}
        }
        accepting_cluster(r, true, &versions)
    });
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::EnvoyGateway, &dir),
    );
    backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let text = backend
        .proxy_url()
        .await
        .expect_err("no pod yet")
        .to_string();
    assert!(
        text.contains("no ready pod behind Service envoy-gateway-system/envoy-gloo-system-gw-1a2b"),
        "{text}"
    );
    let list = log
        .lock()
        .expect("log")
        .iter()
        .find(|r| r.path == "/api/v1/namespaces/envoy-gateway-system/services")
        .cloned()
        .expect("listed");
    assert!(
        list.query.contains(
            "labelSelector=gateway.envoyproxy.io%2Fowning-gateway-namespace%3Dgloo-system%2Cgateway.envoyproxy.io%2Fowning-gateway-name%3Dgw"
        ),
        "{}",
        list.query
    );
}

#[tokio::test]
async fn istio_s_service_is_named_after_the_gateway_and_its_class() {
    let dir = gateway_api_manifests();
    let versions = Mutex::new(1);
    let (client, log) = fake_api(move |r| accepting_cluster(r, true, &versions));
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Kind, ClusterGateway::Istio, &dir),
    );
    backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let text = backend
        .proxy_url()
        .await
        .expect_err("not deployed")
        .to_string();
    assert_eq!(
        text,
        "cannot find Service gloo-system/gw-istio, which istio deploys for Gateway gloo-system/gw: it does not exist"
    );
    assert!(
        log.lock()
            .expect("log")
            .iter()
            .any(|r| r.method == "GET"
                && r.path == "/api/v1/namespaces/gloo-system/services/gw-istio")
    );
}

#[tokio::test]
async fn on_eks_kgateway_s_proxy_is_its_gateway_service_s_load_balancer_on_the_listener_port() {
    let dir = gateway_api_manifests();
    let versions = Mutex::new(1);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "gw", "namespace": "gloo-system", "resourceVersion": "3"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "k1.elb.us-west-2.amazonaws.com"}]}}
    });
    let (client, _log) = fake_api(move |r| {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/namespaces/gloo-system/services/gw") => {
                return Reply::Json(200, service.clone());
            }
            ("GET", "/api/v1/namespaces/gloo-system/services") if !r.is_watch() => {
                return Reply::Json(
                    200,
                    json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}, "items": [service.clone()]}),
                );
            }
            _ => {}
        }
        accepting_cluster(r, true, &versions)
    });
    let mut backend = KubeBackend::new(
        client,
        gateway_api_settings(Provider::Eks, ClusterGateway::Kgateway, &dir),
    );
    backend
        .apply(&[PathBuf::from("gateway-api.yaml")])
        .await
        .expect("applies");
    let url = backend.proxy_url().await.expect("url");
    assert_eq!(url.as_str(), "http://k1.elb.us-west-2.amazonaws.com:8080/");
}

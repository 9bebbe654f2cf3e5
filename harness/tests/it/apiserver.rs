//! The real control plane of `--backend apiserver` (`harness::backend::apiserver`): etcd, the
//! API server, the controller manager and the scheduler that `cargo xtask kube install` built,
//! started on a loopback address of their own. What the mocked API server cannot show is checked
//! here: the real controllers act on what is applied, and RBAC refuses what no role grants.
//!
//! Needs the control plane binaries (`cargo xtask test` builds them first; alone, run `cargo
//! xtask kube install`). Without them the test fails, naming the command.
#![cfg(feature = "kube")]

use std::time::Duration;

use std::net::Ipv4Addr;

use harness::backend::apiserver::node::{NodeAgent, NodeAgentSettings};
use harness::backend::apiserver::pki::Identity;
use harness::backend::apiserver::{ControlPlane, ControlPlaneSettings, PodNetwork};
use harness::backend::local::LocalConfig;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(60);

fn deployment() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "colorteller", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "colorteller"}},
            "template": {
                "metadata": {"labels": {"app": "colorteller"}},
                "spec": {"containers": [{
                    "name": "colorteller",
                    "image": "colormesh/colorteller:latest",
                    "ports": [{"containerPort": 9080, "name": "http"}],
                    "env": [
                        {"name": "SERVER_PORT", "value": "9080"},
                        {"name": "COLOR", "value": "blue"},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/ping", "port": "http"}, "periodSeconds": 1},
                }]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_runs_the_real_controllers_and_enforces_rbac() {
    let run = tempfile::TempDir::with_prefix("apiserver-").expect("temp dir");
    let settings = ControlPlaneSettings::new(test_support::kube_bin_dir(), run.path());
    let mut plane = ControlPlane::start(&settings)
        .await
        .expect("the control plane starts");
    assert!(plane.address().is_loopback(), "{}", plane.address());
    assert_ne!(plane.address().octets()[..3], [127, 0, 0]);
    let client = plane.client().await.expect("admin client");

    // The API server serves the built-in namespaces.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");

    // A Deployment applied server-side becomes a ReplicaSet and two Pods, made by the real
    // controllers; with no Node registered the scheduler leaves them Pending.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            "colorteller",
            &PatchParams::apply("colormesh").force(),
            &Patch::Apply(deployment()),
        )
        .await
        .expect("server-side apply");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let selector = ListParams::default().labels("app=colorteller");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    let (sets, made) = loop {
        interval.tick().await;
        let sets = replica_sets
            .list(&selector)
            .await
            .expect("list")
            .items
            .len();
        let made = pods.list(&selector).await.expect("list").items;
        if sets == 1 && made.len() == 2 {
            break (sets, made);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controllers made {sets} ReplicaSets and {} Pods in {WAIT:?}",
            made.len()
        );
    };
    assert_eq!(sets, 1);
    for pod in &made {
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending")
        );
        assert!(pod.spec.as_ref().is_some_and(|s| s.node_name.is_none()));
    }

    // RBAC: an authenticated user no role names may not list Pods; a node may not read a
    // Secret of a Pod it does not run (Node authorizer).
    for (identity, name) in [
        (Identity::new("nobody", &[]), "nobody"),
        (
            Identity::new("system:node:elsewhere", &["system:nodes"]),
            "elsewhere",
        ),
    ] {
        let restricted = plane.client_as(&identity, name).await.expect("client");
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(restricted.clone(), "default");
        match secrets.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("{name} listed Secrets: {other:?}"),
        }
    }

    // The node agent registers a Node; the scheduler binds the Pods to it, the agent runs them on
    // their own loopback addresses, and the real EndpointSlice controller publishes them once
    // their readiness probes pass.
    let node = "colormesh-node";
    let node_client = plane
        .client_as(
            &Identity::new(&format!("system:node:{node}"), &["system:nodes"]),
            node,
        )
        .await
        .expect("node client");
    let [a, b, ..] = plane.address().octets();
    let pod_network = PodNetwork::claim().expect("a pod network");
    let [p0, p1, p2, _] = pod_network.base().octets();
    let agent = NodeAgent::start(
        node_client,
        NodeAgentSettings {
            node_name: node.to_owned(),
            node_address: Ipv4Addr::new(127, a, b.wrapping_add(1), 1),
            pod_network: pod_network.base(),
            bin_dir: LocalConfig::bin_dir_of_current_exe().expect("binaries"),
            log_dir: run.path().to_owned(),
            api_server: None,
        },
    )
    .await
    .expect("the node agent registers");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .patch(
            "colorteller",
            &PatchParams::apply("colormesh").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "colorteller", "namespace": "default"},
                "spec": {"selector": {"app": "colorteller"}, "ports": [{"port": 9080, "name": "http"}]},
            })),
        )
        .await
        .expect("apply the Service");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + WAIT;
    let addresses = loop {
        interval.tick().await;
        let ready: Vec<String> = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=colorteller"))
            .await
            .expect("list slices")
            .items
            .iter()
            .flat_map(|slice| slice.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.iter().cloned())
            .collect();
        if ready.len() == 2 {
            break ready;
        }
        let phases: Vec<String> = pods
            .list(&selector)
            .await
            .expect("list")
            .items
            .iter()
            .map(|p| {
                let status = p.status.as_ref();
                format!(
                    "{:?} {:?}",
                    status.map(|s| (&s.phase, &s.pod_ip)),
                    status.and_then(|s| s.conditions.as_ref()).map(|c| c
                        .iter()
                        .map(|c| format!("{}={}", c.type_, c.status))
                        .collect::<Vec<_>>())
                )
            })
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "ready endpoints {ready:?} after {WAIT:?}; pods {phases:?}; slices {:?}",
            slices.list(&ListParams::default()).await.map(|l| l.items)
        );
    };
    for address in &addresses {
        let ip: Ipv4Addr = address.parse().expect("an IPv4 pod address");
        assert_eq!(ip.octets()[..3], [p0, p1, p2], "{address}");
        let reply = tcp_get(ip, 9080, "/color").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("blue"), "{reply}");
    }
    for pod in pods.list(&selector).await.expect("list").items {
        assert_eq!(pod.spec.and_then(|s| s.node_name).as_deref(), Some(node));
    }

    // Deleting the Deployment ends the Pods and their processes.
    deployments
        .delete("colorteller", &DeleteParams::foreground())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        interval.tick().await;
        let left = pods.list(&selector).await.expect("list").items.len();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} pods left after {WAIT:?}"
        );
    }
    for address in &addresses {
        let ip: Ipv4Addr = address.parse().expect("ip");
        assert!(
            tokio::net::TcpStream::connect((ip, 9080)).await.is_err(),
            "{address}:9080 still answers"
        );
    }
    agent.stop().await;
    plane.stop().await;
}

/// A GET over a fresh connection, the whole reply as text.
async fn tcp_get(ip: Ipv4Addr, port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect((ip, port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    reply
}

/// The walkthrough itself on `--backend apiserver`, as `cargo xtask e2e --backend apiserver` runs
/// it: the real Gloo and App Mesh CRDs, gateway-proxy in a Pod under its own ServiceAccount (a
/// TokenRequest token and the RBAC of `manifests/cluster/gateway-proxy`), sidecars injected as on
/// kind, Deployments rolled out by the real controllers, glooctl emulated over the API server's
/// objects, and the proxy reached at its Pod address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_passes_on_a_real_api_server() {
    use harness::backend::apiserver::{LocalCluster, LocalClusterSettings};
    use harness::backend::kube::{KubeBackend, KubeSettings};
    use harness::backend::{Backend, ClusterGateway, Provider};
    use harness::runner::{RunSettings, run_all};

    let run = tempfile::TempDir::with_prefix("apiserver-walkthrough-").expect("temp dir");
    let mut cluster = LocalCluster::start(&LocalClusterSettings {
        control_plane: ControlPlaneSettings::new(test_support::kube_bin_dir(), run.path()),
        workspace_bin_dir: LocalConfig::bin_dir_of_current_exe().expect("binaries"),
    })
    .await
    .expect("the apiserver backend's cluster starts");
    let kubeconfig = cluster.control_plane().admin_kubeconfig().to_owned();
    let root = test_support::workspace_root();
    let mut settings = KubeSettings::new(
        Provider::Apiserver,
        ClusterGateway::Builtin,
        root.join("manifests"),
        KubeSettings::generate_run_id(),
    );
    settings.kubeconfig = Some(kubeconfig.clone());
    let client = KubeBackend::connect(Some(&kubeconfig), None)
        .await
        .expect("admin client");
    let mut backend = KubeBackend::new(client, settings);
    let installed = backend
        .install_builtin_gateway(&root.join("../shared/schemas"))
        .await;
    let outcome = match installed {
        Ok(()) => {
            gateway_proxy_runs_under_its_own_service_account(&run.path().join("pods")).await;
            let scenario = harness::scenario::load(&root.join("scenarios/walkthrough.yaml"))
                .expect("scenarios/walkthrough.yaml loads");
            let run_settings = RunSettings::builder(root.join("manifests"))
                .seed(20261203)
                .build();
            let mut transcript = Vec::new();
            let report = run_all(&mut backend, &[scenario], &run_settings, &mut transcript).await;
            Ok((report, String::from_utf8_lossy(&transcript).into_owned()))
        }
        Err(error) => Err(error),
    };
    let cleaned = backend.shutdown().await;
    cluster.stop().await;
    let (report, transcript) = outcome.unwrap_or_else(|error| {
        // Kept for reading: the Pods' logs and the control plane's.
        let kept = run.keep();
        panic!(
            "installing gateway-proxy failed: {error} (Pod logs in {}, the control plane's in {}){}",
            kept.join("pods").display(),
            kept.join("logs").display(),
            pod_errors(&kept.join("pods"))
        )
    });
    cleaned.expect("the run's objects are deleted");
    assert!(
        report.passed(),
        "the walkthrough failed on the apiserver backend:\n{transcript}"
    );
    let judged = report.scenarios[0]
        .steps
        .iter()
        .filter(|step| step.traffic.is_some())
        .count();
    assert!(
        judged >= 4,
        "only {judged} traffic steps ran:\n{transcript}"
    );
}

/// gateway-proxy's Pod talks to the API server with the token the node agent got for its
/// ServiceAccount, and RBAC holds it to what `manifests/cluster/gateway-proxy/rbac.yaml` grants:
/// it reads Services, and it may not read Secrets.
async fn gateway_proxy_runs_under_its_own_service_account(pods_dir: &std::path::Path) {
    let credentials = pods_dir.join("credentials");
    let kubeconfig = std::fs::read_dir(&credentials)
        .expect("the node agent wrote the Pods' kubeconfigs")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("gloo-system.gateway-proxy-"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no kubeconfig for gateway-proxy's Pod in {}",
                credentials.display()
            )
        });
    let text = std::fs::read_to_string(&kubeconfig).expect("readable kubeconfig");
    assert!(
        text.contains("\"token\"") && !text.contains("client-certificate"),
        "a ServiceAccount token, not a certificate: {text}"
    );
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .expect("config");
    let pod_client = kube::Client::try_from(config).expect("client");
    let services: Api<Service> = Api::namespaced(pod_client.clone(), "gloo-system");
    services
        .list(&ListParams::default())
        .await
        .expect("the ClusterRole grants reading Services");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(pod_client, "gloo-system");
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert!(
                status
                    .message
                    .contains("system:serviceaccount:gloo-system:colormesh-gateway-proxy"),
                "{}",
                status.message
            );
        }
        other => panic!("gateway-proxy's token must not read Secrets: {other:?}"),
    }
}

/// The `Error:` lines (and the cause after each) the Pods' processes printed, e.g. a
/// gateway-proxy built without its `kubernetes` feature when only this crate's tests were built
/// (`cargo xtask test` builds the workspace's binaries with every feature).
fn pod_errors(pods_dir: &std::path::Path) -> String {
    let mut found = String::new();
    for entry in std::fs::read_dir(pods_dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if line.starts_with("Error:") {
                let cause = lines[index + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty() && *l != "Caused by:")
                    .unwrap_or_default();
                found.push_str(&format!(
                    "\n{}: {line} {cause}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

//! The real control plane of `--backend apiserver` (`harness::backend::apiserver`): etcd, the
//! API server, the controller manager and the scheduler that `cargo xtask kube install` built,
//! started on a loopback address of their own. What the mocked API server cannot show is checked
//! here: the real controllers act on what is applied, and RBAC refuses what no role grants.
//!
//! Needs the control plane binaries (`cargo xtask test` builds them first; alone, run `cargo
//! xtask kube install`). Without them the test fails, naming the command.
#![cfg(feature = "kube")]

use std::time::Duration;

use harness::backend::apiserver::pki::Identity;
use harness::backend::apiserver::{ControlPlane, ControlPlaneSettings};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};

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
                "spec": {"containers": [{"name": "colorteller", "image": "colormesh/colorteller:latest"}]}
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
        let kubeconfig = plane.kubeconfig_for(&identity, name).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("read"),
            &Default::default(),
        )
        .await
        .expect("config");
        let restricted = kube::Client::try_from(config).expect("client");
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(restricted.clone(), "default");
        match secrets.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("{name} listed Secrets: {other:?}"),
        }
    }
    plane.stop().await;
}

//! The cluster backend on a real cluster: `COLORMESH_KUBECONFIG` (and optionally
//! `COLORMESH_KUBE_CONTEXT`) names one, or a disposable K3s starts when Docker is reachable.
//! Ignored by default (run it with `cargo test -p harness -- --ignored`); run without either, it
//! fails and says what it needs.
//!
//! The colorapp images must be pullable by the cluster: set `COLORMESH_REGISTRY` (and
//! `COLORMESH_IMAGE_TAG`, default `latest`) to where `cargo xtask images` pushed them, or load
//! them into the nodes beforehand.
#![cfg(feature = "kube")]

use std::path::PathBuf;
use std::time::Duration;

use harness::backend::Backend;
use harness::backend::kube::k3s::{K3sCluster, docker_available};
use harness::backend::kube::{KubeBackend, KubeSettings};
use harness::backend::{ClusterGateway, Provider};
use harness::scenario::WaitCondition;
use test_support::workspace_root;

#[tokio::test]
#[ignore = "needs a cluster: set COLORMESH_KUBECONFIG or a Docker engine for K3s; run with --ignored"]
async fn colorapp_rolls_out_on_a_live_cluster() {
    let configured = std::env::var_os("COLORMESH_KUBECONFIG").map(PathBuf::from);
    let (kubeconfig, context, provider, _k3s) = match configured {
        Some(path) => (
            path,
            std::env::var("COLORMESH_KUBE_CONTEXT").ok(),
            Provider::Kind,
            None,
        ),
        None if docker_available() => {
            let cluster = K3sCluster::start().await.expect("K3s starts");
            (
                cluster.kubeconfig().to_owned(),
                None,
                Provider::K3s,
                Some(cluster),
            )
        }
        None => panic!(
            "no cluster to test against: set COLORMESH_KUBECONFIG, or start a Docker engine for a \
             disposable K3s"
        ),
    };
    let client = KubeBackend::connect(Some(&kubeconfig), context.as_deref())
        .await
        .expect("client");
    let root = workspace_root();
    let mut settings = KubeSettings::new(
        provider,
        ClusterGateway::Builtin,
        root.join("manifests"),
        KubeSettings::generate_run_id(),
    );
    settings.kubeconfig = Some(kubeconfig);
    settings.context = context;
    settings.registry = std::env::var("COLORMESH_REGISTRY").ok();
    if let Ok(tag) = std::env::var("COLORMESH_IMAGE_TAG") {
        settings.tag = tag;
    }
    let mut backend = KubeBackend::new(client, settings);
    let shared = root.join("../shared/schemas");
    let outcome = async {
        backend
            .install_crds(&[shared.join("gloo"), shared.join("appmesh")])
            .await?;
        backend.apply(&[PathBuf::from("colorapp")]).await?;
        backend
            .wait(
                &WaitCondition::Rollout {
                    namespace: "appmesh-demo".into(),
                },
                Duration::from_secs(300),
            )
            .await
    }
    .await;
    let cleaned = backend.shutdown().await;
    let took = outcome.expect("colorapp rolls out");
    cleaned.expect("cleanup");
    println!("colorapp rolled out in {took:?}");
}

//! The local backend for real: the workspace binaries as processes, the walkthrough's manifests
//! and glooctl commands, traffic through the ingress, and cleanup on shutdown and on drop.
//!
//! Needs the workspace binaries next to this test's profile (`cargo test --workspace` builds them;
//! for `cargo test -p harness` run `cargo build --bins` first).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use harness::backend::local::{GatewayCommand, LocalBackend, LocalConfig};
use harness::backend::{Backend, BackendError};
use harness::scenario::WaitCondition;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use test_support::{built_binaries, process_alive, wait_until};

const BINARIES: [&str; 4] = ["gateway-proxy", "colorteller", "colorgateway", "tcpecho"];

fn config() -> LocalConfig {
    LocalConfig {
        bin_dir: built_binaries(&BINARIES),
        gateway: GatewayCommand::builtin(),
        manifests_dir: test_support::manifests_dir(),
        work_dir: None,
        seed: 7,
        echo_requests: false,
    }
}

fn args(line: &str) -> Vec<String> {
    shlex::split(line).expect("well-formed command line")
}

async fn get(url: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(url.parse().expect("valid URL"))
        .await
        .expect("the proxy answers");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn assert_all_exit(pids: &[u32], what: &str) {
    wait_until(
        &format!("{what}: processes {pids:?} to exit"),
        Duration::from_secs(10),
        || !pids.iter().any(|p| process_alive(*p)),
    )
    .await;
}

async fn walkthrough(backend: &mut LocalBackend) -> Result<(), BackendError> {
    backend.apply(&[PathBuf::from("colorapp")]).await?;
    backend
        .wait(
            &WaitCondition::Rollout {
                namespace: "appmesh-demo".into(),
            },
            Duration::from_secs(60),
        )
        .await?;
    backend
        .wait(
            &WaitCondition::Upstream {
                namespace: "gloo-system".into(),
                name: "appmesh-demo-colorgateway-9080".into(),
            },
            Duration::from_secs(30),
        )
        .await?;
    let upstreams = backend.glooctl(&args("get upstream")).await?;
    assert!(upstreams.success, "{}", upstreams.stderr);
    assert!(
        upstreams
            .stdout
            .contains("| appmesh-demo-colorgateway-v1-9080 "),
        "{}",
        upstreams.stdout
    );

    let created = backend
        .glooctl(&args("create virtualservice --name colorgateway"))
        .await?;
    assert!(created.success, "{}", created.stderr);
    let route = backend
        .glooctl(&args(
            "add route --name colorgateway --path-prefix /appmesh/color --prefix-rewrite /color --dest-name appmesh-demo-colorgateway-9080",
        ))
        .await?;
    assert!(route.success, "{}", route.stderr);
    assert!(
        route
            .stdout
            .contains("gloo-system.appmesh-demo-colorgateway-9080"),
        "{}",
        route.stdout
    );
    backend
        .wait(
            &WaitCondition::Status {
                kind: "VirtualService".into(),
                namespace: "gloo-system".into(),
                name: "colorgateway".into(),
                state: "Accepted".into(),
                conditions: Default::default(),
            },
            Duration::from_secs(30),
        )
        .await?;
    let listed = backend.glooctl(&args("get vs colorgateway")).await?;
    assert!(listed.stdout.contains("| Accepted |"), "{}", listed.stdout);

    let url = backend.proxy_url().await?;
    let color_url = url.join("/appmesh/color").expect("joinable").to_string();
    for _ in 0..6 {
        let (status, body) = get(&color_url).await;
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let color = reply["color"]
            .as_str()
            .unwrap_or_else(|| panic!("a v1 reply: {body}"));
        assert!(["white", "blue", "black"].contains(&color), "{body}");
    }

    let applied = backend
        .apply(&[
            PathBuf::from("colorgatewayv2"),
            PathBuf::from("gloo/upstreamgroup-0-100.yaml"),
        ])
        .await?;
    assert!(
        applied
            .changed
            .iter()
            .any(|c| c == "UpstreamGroup gloo-system/upstreamgroup-gateway"),
        "{applied:?}"
    );
    let propagation = backend
        .wait_config_live(&applied, Duration::from_secs(30))
        .await?;
    eprintln!("config propagation: {propagation:?}");
    for _ in 0..6 {
        let (status, body) = get(&color_url).await;
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(
            reply.get("colorV2").is_some(),
            "a v2 reply after the 0/100 group: {body}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_walkthrough_and_cleans_up() {
    let mut backend = LocalBackend::start(config())
        .await
        .expect("the local backend starts");
    let outcome = walkthrough(&mut backend).await;
    if let Err(error) = &outcome {
        let logs = backend.keep_work_dir().display().to_string();
        panic!("{error}\n(work folder kept: {logs})");
    }
    let pids = backend.child_pids();
    assert!(
        pids.len() >= 1 + 7 + 6,
        "ingress, seven pods, six sidecars: {pids:?}"
    );
    backend.shutdown().await.expect("shutdown");
    backend
        .shutdown()
        .await
        .expect("a second shutdown is harmless");
    assert!(backend.child_pids().is_empty());
    assert_all_exit(&pids, "after shutdown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_backend_kills_every_child() {
    let mut backend = LocalBackend::start(config())
        .await
        .expect("the local backend starts");
    backend
        .apply(&[PathBuf::from("colorapp")])
        .await
        .expect("colorapp runs");
    let pids = backend.child_pids();
    assert!(pids.len() > 1, "{pids:?}");
    assert!(pids.iter().all(|p| process_alive(*p)));
    let work = backend.work_dir().to_owned();
    drop(backend);
    assert_all_exit(&pids, "after drop").await;
    assert!(!work.exists(), "the temporary work folder is removed");
}

#[tokio::test]
async fn unsupported_manifests_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: demo}\nspec: {}\n",
    )
    .expect("write");
    let mut config = config();
    config.manifests_dir = dir.path().to_owned();
    let mut backend = LocalBackend::start(config)
        .await
        .expect("the local backend starts");
    let error = backend
        .apply(&[PathBuf::from("ingress.yaml")])
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("ingress.yaml:1: Ingress demo/web"),
        "{error}"
    );
    assert!(error.contains("--backend kind"), "{error}");
    backend.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_template_replaces_the_pods_and_an_unchanged_one_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = include_str!("../../../manifests/colorapp/tcpecho.yaml");
    let file = dir.path().join("tcpecho.yaml");
    std::fs::write(&file, original).expect("write");
    let mut config = config();
    config.manifests_dir = dir.path().to_owned();
    let mut backend = LocalBackend::start(config)
        .await
        .expect("the local backend starts");
    let first = backend
        .apply(&[PathBuf::from("tcpecho.yaml")])
        .await
        .expect("tcpecho runs");
    assert!(
        first
            .changed
            .iter()
            .any(|c| c == "Deployment appmesh-demo/tcpecho"),
        "{first:?}"
    );
    let before = backend.child_pids();

    let again = backend
        .apply(&[PathBuf::from("tcpecho.yaml")])
        .await
        .expect("re-apply");
    assert!(again.changed.is_empty(), "nothing changed: {again:?}");
    assert_eq!(backend.child_pids(), before);

    std::fs::write(
        &file,
        original.replace("tcpecho_appmesh-demo", "tcpecho_renamed"),
    )
    .expect("write");
    let changed = backend
        .apply(&[PathBuf::from("tcpecho.yaml")])
        .await
        .expect("re-apply");
    assert_eq!(changed.changed, vec!["Deployment appmesh-demo/tcpecho"]);
    backend
        .wait(
            &WaitCondition::Rollout {
                namespace: "appmesh-demo".into(),
            },
            Duration::from_secs(30),
        )
        .await
        .expect("the new pod is ready");
    let after = backend.child_pids();
    assert_eq!(after.len(), before.len());
    let replaced: Vec<u32> = before
        .iter()
        .copied()
        .filter(|p| !after.contains(p))
        .collect();
    assert_eq!(
        replaced.len(),
        1,
        "only the pod is replaced, not the ingress: {before:?} -> {after:?}"
    );
    assert_all_exit(&replaced, "the replaced pod").await;
    let slices = std::fs::read_dir(backend.work_dir().join("cluster"))
        .expect("cluster folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("endpointslice"))
        .collect::<Vec<_>>();
    assert_eq!(
        slices,
        vec!["discovery.k8s.io_endpointslice_appmesh-demo_tcpecho-tcpecho-1.yaml"]
    );
    backend.shutdown().await.expect("shutdown");
}

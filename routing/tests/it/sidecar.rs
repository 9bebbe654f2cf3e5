//! The sidecar role end to end: colorgateway's App Mesh Envoy, translated from the colorapp
//! manifests, proxying absolute-form requests to in-process colortellers.

use std::collections::BTreeMap;

use http::StatusCode;
use routing::Role;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colorteller_calls_are_split_over_the_routed_tellers_only() {
    let tellers = [
        ("colorteller", Backend::start("white").await),
        ("colorteller-blue", Backend::start("blue").await),
        ("colorteller-black", Backend::start("black").await),
        ("colorteller-red", Backend::start("red").await),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        "namespace.yaml",
        "mesh.yaml",
        "colorgateway.yaml",
        "colorteller.yaml",
        "tcpecho.yaml",
    ] {
        write_by_rename(dir.path(), file, &manifest(&format!("colorapp/{file}")));
    }
    let slices: Vec<String> = tellers
        .iter()
        .map(|(service, backend)| endpoint_slice(service, "appmesh-demo", "http", backend.port()))
        .collect();
    write_by_rename(dir.path(), "endpoints.yaml", &slices.join("---\n"));

    let role = Role::Sidecar {
        node: "colorgateway".to_owned(),
        namespace: "appmesh-demo".to_owned(),
    };
    let proxy = Proxy::from_dir(dir.path(), role).await;
    let client = client();
    let status = admin_json(&client, &proxy, "/status").await;
    for entry in status["resources"].as_array().expect("resources") {
        assert_eq!(entry["state"], "Accepted", "{entry:#}");
    }

    // The app uses the sidecar as its HTTP proxy: absolute-form requests on a kept-alive connection.
    let trials = 300;
    let mut connection = RawConnection::open(proxy.addr).await;
    let mut by_teller: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..trials {
        let reply = connection
            .get(
                "http://colorteller.appmesh-demo:9080/",
                "colorteller.appmesh-demo:9080",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.json()["target"], "/", "sent upstream in origin form");
        *by_teller.entry(reply.backend()).or_default() += 1;
    }
    assert_eq!(
        by_teller.get("red"),
        None,
        "red is deployed but not routed: {by_teller:?}"
    );
    for teller in ["white", "blue", "black"] {
        let count = by_teller.get(teller).copied().unwrap_or(0);
        assert!(
            within_five_sigma(count, trials, 1.0 / 3.0),
            "1:1:1 expected, got {by_teller:?}"
        );
    }
    assert_eq!(
        tellers[3]
            .1
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // The Kubernetes spellings of the service name reach the same virtual host.
    let reply = get_with_host(
        &client,
        &proxy.url("/"),
        "colorteller.appmesh-demo.svc.cluster.local:9080",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_ne!(reply.backend(), "red");

    // The mesh's egress filter is ALLOW_ALL: other hosts are forwarded as they are.
    let red = &tellers[3].1;
    let reply = connection
        .get(
            &format!("http://{}/direct", red.addr),
            &red.addr.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.backend(), "red");
    assert_eq!(reply.json()["target"], "/direct");
    drop(connection);
    proxy.stop().await;
}

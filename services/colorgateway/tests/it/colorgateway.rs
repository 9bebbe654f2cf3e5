//! colorgateway served in process on port 0 against fake and real tellers, byte for byte.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions panic on purpose

use std::time::Duration;

use crate::support::{
    GUARD, client, gateway, get, recording_proxy, refused_addr, scripted_teller, silent_teller,
};
use colorgateway::{Config, Flavor, ProxySettings, parse_reply};
use pretty_assertions::assert_eq;

#[tokio::test]
async fn color_replies_are_byte_exact_with_sorted_keys() {
    let teller = scripted_teller(&[(200, "blue"), (200, "black\n"), (200, "  white \r\n")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    let expected = [
        r#"{"color":"blue", "stats": {"blue":1}}"#,
        r#"{"color":"black", "stats": {"black":0.5,"blue":0.5}}"#,
        r#"{"color":"white", "stats": {"black":0.33,"blue":0.33,"white":0.33}}"#,
        r#"{"color":"white", "stats": {"black":0.25,"blue":0.25,"white":0.5}}"#,
    ];
    for body in expected {
        let response = client.get(gateway.url("/color")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.text().await.unwrap(), body);
    }
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn two_thirds_and_eighths_round_half_away_from_zero() {
    // 1 blue, 7 red: blue 0.125 -> 0.13, red 0.875 -> 0.88.
    let mut script = vec![(200, "blue")];
    script.extend([(200, "red"); 7]);
    let teller = scripted_teller(&script).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    let mut last = String::new();
    for _ in 0..8 {
        last = get(&client, gateway.url("/color")).await.1;
    }
    assert_eq!(
        last,
        r#"{"color":"red", "stats": {"blue":0.13,"red":0.88}}"#
    );
    // One more red: 1/9 -> 0.11, 8/9 -> 0.89.
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"color":"red", "stats": {"blue":0.11,"red":0.89}}"#
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn the_1001st_answer_evicts_the_first() {
    let mut script = vec![(200, "first")];
    script.extend([(200, "x"); 999]);
    script.push((200, "y"));
    let teller = scripted_teller(&script).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    let mut replies = Vec::new();
    for _ in 0..1001 {
        let (status, body) = get(&client, gateway.url("/color")).await;
        assert_eq!(status, 200);
        replies.push(body);
    }
    // 1/1000 = 0.001 rounds to 0 and still shows; 999/1000 rounds to 1.
    assert_eq!(replies[999], r#"{"color":"x", "stats": {"first":0,"x":1}}"#);
    assert_eq!(replies[1000], r#"{"color":"y", "stats": {"x":1,"y":0}}"#);
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn clear_empties_the_stats() {
    let teller = scripted_teller(&[(200, "blue"), (200, "red"), (200, "black")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    get(&client, gateway.url("/color")).await;
    get(&client, gateway.url("/color")).await;
    assert_eq!(
        get(&client, gateway.url("/color/clear")).await,
        (200, "cleared".to_owned())
    );
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"color":"black", "stats": {"black":1}}"#
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn the_v2_flavour_uses_its_own_keys() {
    let teller = scripted_teller(&[(200, "white"), (200, "blue")]).await;
    let config = Config {
        flavor: Flavor::V2,
        ..Config::new(teller.addr.to_string())
    };
    let gateway = gateway(config).await;
    let client = client();
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"colorV2":"white", "statsV2": {"white":1}}"#
    );
    let (_, body) = get(&client, gateway.url("/color")).await;
    assert_eq!(
        body,
        r#"{"colorV2":"blue", "statsV2": {"blue":0.5,"white":0.5}}"#
    );
    let reply = parse_reply(&body).unwrap();
    assert_eq!((reply.flavor, reply.color.as_str()), (Flavor::V2, "blue"));
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn teller_failures_answer_500_and_are_not_counted() {
    // A non-2xx status (here Envoy's) and an empty body are failures; then a real color.
    let teller =
        scripted_teller(&[(503, "no healthy upstream"), (200, " \n"), (200, "blue")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    let failure = (500, "500 - Unexpected Error".to_owned());
    assert_eq!(get(&client, gateway.url("/color")).await, failure);
    assert_eq!(get(&client, gateway.url("/color")).await, failure);
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"color":"blue", "stats": {"blue":1}}"#
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn a_refusing_teller_is_a_500() {
    let gateway = gateway(Config::new(refused_addr().await.to_string())).await;
    let (status, body) = get(&client(), gateway.url("/color")).await;
    assert_eq!((status, body.as_str()), (500, "500 - Unexpected Error"));
    gateway.stop().await;
}

#[tokio::test]
async fn a_silent_teller_times_out_into_a_500() {
    let (teller, holder) = silent_teller().await;
    let config = Config {
        teller_timeout: Duration::from_millis(300),
        ..Config::new(teller.to_string())
    };
    let gateway = gateway(config).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&client(), gateway.url("/color")).await;
    assert_eq!((status, body.as_str()), (500, "500 - Unexpected Error"));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the timeout"
    );
    gateway.stop().await;
    holder.abort();
}

#[tokio::test]
async fn the_real_colorteller_works_end_to_end() {
    let (listener, teller_addr) = crate::support::local_listener().await;
    let (stop_teller, teller_stopped) = tokio::sync::oneshot::channel::<()>();
    let teller = tokio::spawn(colorteller::run(
        listener,
        colorteller::Config {
            color: "red".into(),
            flake_seed: Some(1),
            ..colorteller::Config::default()
        },
        async move {
            let _ = teller_stopped.await;
        },
    ));
    let gateway = gateway(Config::new(teller_addr.to_string())).await;
    let client = client();
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"color":"red", "stats": {"red":1}}"#
    );
    // A flaking teller's 500 is a gateway failure, not a color.
    get(
        &client,
        format!("http://{teller_addr}/setFlake?rate=1&code=500"),
    )
    .await;
    assert_eq!(
        get(&client, gateway.url("/color")).await,
        (500, "500 - Unexpected Error".to_owned())
    );
    gateway.stop().await;
    stop_teller.send(()).unwrap();
    teller.await.unwrap().unwrap();
}

#[tokio::test]
async fn unknown_paths_are_go_404s() {
    let teller = scripted_teller(&[(200, "blue")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    for path in [
        "/",
        "/color/",
        "/colorful",
        "/color/x",
        "/COLOR",
        "/color/stats",
    ] {
        let response = client.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            response.text().await.unwrap(),
            "404 page not found\n",
            "{path}"
        );
    }
    let response = client.post(gateway.url("/ping")).send().await.unwrap();
    assert_eq!(response.status(), 200, "any method");
    assert_eq!(response.text().await.unwrap(), "");
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn double_slash_color_is_a_301_to_color() {
    let teller = scripted_teller(&[(200, "blue")]).await;
    let gateway = gateway(Config::new(teller.addr.to_string())).await;
    let client = client();
    let response = client.get(gateway.url("//color")).send().await.unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "/color");
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "<a href=\"/color\">Moved Permanently</a>.\n\n"
    );

    let response = client
        .get(gateway.url("//color/clear?a=1&b=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "/color/clear?a=1&b=2");

    let response = client.post(gateway.url("//color")).send().await.unwrap();
    assert_eq!(response.status(), 301);
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(response.text().await.unwrap(), "");

    // The redirect did not call the teller: the first counted color has the whole share.
    assert_eq!(
        get(&client, gateway.url("/color")).await.1,
        r#"{"color":"blue", "stats": {"blue":1}}"#
    );
    gateway.stop().await;
    teller.stop().await;
}

#[tokio::test]
async fn tcpecho_relays_the_greeting_line() {
    let (listener, echo_addr) = crate::support::local_listener().await;
    let (stop_echo, echo_stopped) = tokio::sync::oneshot::channel::<()>();
    let greeting = tcpecho::Config {
        node_name: Some("mesh/color-mesh/virtualNode/tcpecho-vn".into()),
        ..tcpecho::Config::default()
    };
    let echo = tokio::spawn(tcpecho::run(listener, greeting, async move {
        let _ = echo_stopped.await;
    }));
    let teller = refused_addr().await;
    let config = Config {
        tcp_echo_endpoint: Some(echo_addr.to_string()),
        ..Config::new(teller.to_string())
    };
    let gateway = gateway(config).await;
    assert_eq!(
        get(&client(), gateway.url("/tcpecho")).await,
        (
            200,
            "Response from tcpecho server: Welcome, you are connected to node mesh/color-mesh/virtualNode/tcpecho-vn.\n"
                .to_owned()
        )
    );
    gateway.stop().await;
    stop_echo.send(()).unwrap();
    echo.await.unwrap().unwrap();
}

#[tokio::test]
async fn tcpecho_failures_use_the_original_texts() {
    let teller = refused_addr().await;
    let client = client();

    let unset = gateway(Config::new(teller.to_string())).await;
    assert_eq!(
        get(&client, unset.url("/tcpecho")).await,
        (500, "tcpecho endpoint is not set".to_owned())
    );
    unset.stop().await;

    let refused = refused_addr().await;
    let config = Config {
        tcp_echo_endpoint: Some(refused.to_string()),
        ..Config::new(teller.to_string())
    };
    let dial = gateway(config).await;
    assert_eq!(
        get(&client, dial.url("/tcpecho")).await,
        (
            500,
            format!("Dial failed, err:dial tcp {refused}: connect: connection refused")
        )
    );
    dial.stop().await;

    // A server that closes without ever ending a line: Go's ReadString reports EOF.
    let (listener, mute) = crate::support::local_listener().await;
    let closer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        drop(stream);
    });
    let config = Config {
        tcp_echo_endpoint: Some(mute.to_string()),
        ..Config::new(teller.to_string())
    };
    let eof = gateway(config).await;
    assert_eq!(
        get(&client, eof.url("/tcpecho")).await,
        (500, "Read from server failed, err:EOF".to_owned())
    );
    eof.stop().await;
    tokio::time::timeout(GUARD, closer).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_teller_call_goes_through_the_proxy_in_absolute_form() {
    let (proxy, mut seen) = recording_proxy("red").await;
    let config = Config {
        proxy: ProxySettings {
            http_proxy: Some(proxy.to_string()),
            no_proxy: None,
        },
        ..Config::new("colorteller.appmesh-demo:9080")
    };
    let gateway = gateway(config).await;
    assert_eq!(
        get(&client(), gateway.url("/color")).await.1,
        r#"{"color":"red", "stats": {"red":1}}"#
    );
    let request = seen.recv().await.unwrap();
    assert_eq!(
        request.request_line,
        "GET http://colorteller.appmesh-demo:9080/ HTTP/1.1"
    );
    assert_eq!(
        request.host.as_deref(),
        Some("colorteller.appmesh-demo:9080")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn no_proxy_hosts_are_called_directly() {
    let teller = scripted_teller(&[(200, "blue")]).await;
    let (proxy, mut seen) = recording_proxy("red").await;
    let client = client();

    // Without NO_PROXY even a loopback teller goes through the proxy ...
    let proxied = ProxySettings {
        http_proxy: Some(format!("http://{proxy}")),
        no_proxy: None,
    };
    let via_proxy = gateway(Config {
        proxy: proxied.clone(),
        ..Config::new(teller.addr.to_string())
    })
    .await;
    assert_eq!(
        get(&client, via_proxy.url("/color")).await.1,
        r#"{"color":"red", "stats": {"red":1}}"#
    );
    assert_eq!(
        seen.recv().await.unwrap().request_line,
        format!("GET http://{}/ HTTP/1.1", teller.addr)
    );
    via_proxy.stop().await;

    // ... and with it listed in NO_PROXY the teller is called directly.
    for no_proxy in ["127.0.0.1", "example.org, 127.0.0.0/8", "*"] {
        let bypass = ProxySettings {
            no_proxy: Some(no_proxy.to_owned()),
            ..proxied.clone()
        };
        let direct = gateway(Config {
            proxy: bypass,
            ..Config::new(teller.addr.to_string())
        })
        .await;
        assert_eq!(
            get(&client, direct.url("/color")).await.1,
            r#"{"color":"blue", "stats": {"blue":1}}"#,
            "NO_PROXY={no_proxy}"
        );
        direct.stop().await;
    }
    assert!(
        seen.try_recv().is_err(),
        "the proxy saw a request it should not have"
    );
    teller.stop().await;
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start() {
    let (listener, _) = crate::support::local_listener().await;
    let error = colorgateway::run(listener, Config::new("bad host:80"), async {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("bad host:80"), "{error}");

    let (listener, _) = crate::support::local_listener().await;
    let proxy = ProxySettings {
        http_proxy: Some("http://[::1".into()),
        no_proxy: None,
    };
    let config = Config {
        proxy,
        ..Config::new("colorteller:9080")
    };
    let error = colorgateway::run(listener, config, async {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, colorgateway::Error::Proxy { .. }),
        "{error}"
    );
}

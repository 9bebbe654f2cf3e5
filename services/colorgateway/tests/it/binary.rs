//! The built colorgateway binary: configuration from the environment, the proxy variables and
//! SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions panic on purpose

use std::process::Stdio;

use crate::support::{GUARD, client, get, recording_proxy};
use nix::{sys::signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

fn gateway_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_colorgateway"));
    for variable in [
        "COLOR_TELLER_ENDPOINT",
        "TCP_ECHO_ENDPOINT",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "COLORGATEWAY_FLAVOR",
        "COLOR_TELLER_TIMEOUT",
    ] {
        command.env_remove(variable);
    }
    command
        .env("BIND_ADDR", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn http_proxy_from_the_environment_carries_the_teller_call() {
    let (proxy, mut seen) = recording_proxy("white").await;
    let mut child = gateway_command()
        .env("COLOR_TELLER_ENDPOINT", "colorteller.appmesh-demo:9080")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env("COLORGATEWAY_FLAVOR", "v2")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The binary binds port 0 and logs the address it got.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(listening) = service_kit::Listening::parse(&line)
                && listening.name == "http"
            {
                return listening.addr.to_string();
            }
        }
        panic!("colorgateway exited without announcing its address");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let (status, body) = get(&client(), format!("http://{addr}/color")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"colorV2":"white", "statsV2": {"white":1}}"#)
    );
    let request = seen.recv().await.unwrap();
    assert_eq!(
        request.request_line,
        "GET http://colorteller.appmesh-demo:9080/ HTTP/1.1"
    );

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    signal::kill(pid, signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
}

#[tokio::test]
async fn a_missing_teller_endpoint_is_a_one_line_error() {
    let mut command = gateway_command();
    command.env("RUST_BACKTRACE", "1");
    let output = tokio::time::timeout(GUARD, command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("COLOR_TELLER_ENDPOINT is not set"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_documents_its_environment() {
    let output = gateway_command().arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "env: COLOR_TELLER_ENDPOINT",
        "env: SERVER_PORT",
        "env: BIND_ADDR",
        "env: TCP_ECHO_ENDPOINT",
        "env: COLOR_TELLER_TIMEOUT",
        "env: COLORGATEWAY_FLAVOR",
        "HTTP_PROXY",
        "NO_PROXY",
    ] {
        assert!(help.contains(variable), "{variable} missing from:\n{help}");
    }
}

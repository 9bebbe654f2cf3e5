//! A TCP echo server that greets each client with lines from its pod environment, as
//! cjimti/go-echo (`tcp-echo.go`, the `cjimti/go-echo` image of the colorapp demo) does.
//!
//! On accept it writes the greeting, then writes every chunk it reads straight back until the
//! client closes its side. The greeting is built as go-echo's last commit (cab8e8f, the one the
//! walkthrough's image was built from) builds it: one line per variable that is set, in this
//! order, each ending in `.\n`:
//!
//! | set            | line                                             |
//! |----------------|--------------------------------------------------|
//! | `node_name`    | `Welcome, you are connected to node <v>.\n`      |
//! | `pod_name`     | `Running on Pod <v>.\n`                          |
//! | `pod_namespace`| `In namespace <v>.\n`                            |
//! | `pod_ip`       | `With IP address <v>.\n`                         |
//! | `service_account` | `Service <v>.\n`                              |
//!
//! # Never hangs a client that sent a line (a deliberate difference)
//!
//! colorgateway's `/tcpecho` writes `Hello from gateway` (no newline) and reads one line. With
//! no greeting variable set the original writes nothing, echoes the newline-less text, and the
//! gateway waits forever. This server then greets with [`BARE_GREETING`] instead; with any
//! variable set the greeting is the original's bytes.

use std::{future::Future, sync::Arc};

use service_kit::ServeError;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

/// The pod facts the greeting announces; each `None` (or empty) one is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `NODE_NAME`; the demo sets it to `mesh/<mesh>/virtualNode/tcpecho-vn`.
    pub node_name: Option<String>,
    /// `POD_NAME`.
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `POD_IP`.
    pub pod_ip: Option<String>,
    /// `SERVICE_ACCOUNT`.
    pub service_account: Option<String>,
}

/// The greeting sent when no pod fact is set, so that the first line always arrives.
pub const BARE_GREETING: &str = "Welcome, you are connected.\n";

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Config {
    /// The bytes written to every client on accept (see the crate docs).
    pub fn greeting(&self) -> String {
        let mut greeting = String::new();
        if let Some(node) = set(&self.node_name) {
            greeting.push_str(&format!("Welcome, you are connected to node {node}.\n"));
        }
        if let Some(pod) = set(&self.pod_name) {
            greeting.push_str(&format!("Running on Pod {pod}.\n"));
        }
        if let Some(namespace) = set(&self.pod_namespace) {
            greeting.push_str(&format!("In namespace {namespace}.\n"));
        }
        if let Some(ip) = set(&self.pod_ip) {
            greeting.push_str(&format!("With IP address {ip}.\n"));
        }
        if let Some(account) = set(&self.service_account) {
            greeting.push_str(&format!("Service {account}.\n"));
        }
        if greeting.is_empty() {
            greeting.push_str(BARE_GREETING);
        }
        greeting
    }
}

/// Why tcpecho stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tcpecho stopped serving")]
    Serve(#[from] ServeError),
}

/// Serves tcpecho on `listener` until `shutdown` completes; open connections are then closed
/// after the chunk being echoed, if any, has been written back.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let greeting: Arc<[u8]> = Arc::from(config.greeting().into_bytes());
    if let Ok(addr) = listener.local_addr() {
        service_kit::announce_listening("tcp", addr);
    }
    service_kit::serve_connections(listener, shutdown, move |stream, peer, stop| {
        let greeting = Arc::clone(&greeting);
        async move {
            tracing::info!(%peer, "TCP connection open");
            match echo(stream, &greeting, stop).await {
                Ok(received) => tracing::info!(%peer, received, "TCP connection closed"),
                Err(error) => tracing::info!(%peer, %error, "TCP connection failed"),
            }
        }
    })
    .await?;
    Ok(())
}

/// Greets, then echoes until the client closes its side or `stop` is cancelled; returns how many
/// bytes were echoed.
async fn echo(
    mut stream: TcpStream,
    greeting: &[u8],
    stop: CancellationToken,
) -> std::io::Result<u64> {
    stream.write_all(greeting).await?;
    let mut buffer = vec![0_u8; 16 * 1024];
    let mut echoed = 0_u64;
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read?,
            () = stop.cancelled() => break,
        };
        if read == 0 {
            break;
        }
        stream.write_all(&buffer[..read]).await?;
        echoed += read as u64;
    }
    stream.shutdown().await?;
    Ok(echoed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    #[test]
    fn demo_greeting_is_the_original_bytes() {
        let config = Config {
            node_name: some("mesh/color-mesh/virtualNode/tcpecho-vn"),
            ..Config::default()
        };
        assert_eq!(
            config.greeting(),
            "Welcome, you are connected to node mesh/color-mesh/virtualNode/tcpecho-vn.\n"
        );
    }

    #[test]
    fn every_piece_keeps_the_original_wording() {
        let config = Config {
            node_name: some("n1"),
            pod_name: some("tcpecho-0"),
            pod_namespace: some("appmesh-demo"),
            pod_ip: some("10.1.2.3"),
            service_account: some("default"),
        };
        assert_eq!(
            config.greeting(),
            "Welcome, you are connected to node n1.\nRunning on Pod tcpecho-0.\n\
             In namespace appmesh-demo.\nWith IP address 10.1.2.3.\nService default.\n"
        );
    }

    #[test]
    fn every_line_ends_and_nothing_set_gets_the_bare_greeting() {
        assert_eq!(Config::default().greeting(), BARE_GREETING);
        let empty = Config {
            node_name: some(""),
            ..Config::default()
        };
        assert_eq!(empty.greeting(), BARE_GREETING);
        let pod_only = Config {
            pod_name: some("p"),
            ..Config::default()
        };
        assert_eq!(pod_only.greeting(), "Running on Pod p.\n");
        let namespace_last = Config {
            pod_name: some("p"),
            pod_namespace: some("ns"),
            ..Config::default()
        };
        assert_eq!(
            namespace_last.greeting(),
            "Running on Pod p.\nIn namespace ns.\n"
        );
    }
}

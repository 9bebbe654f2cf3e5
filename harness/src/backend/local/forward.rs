//! A Service's local "ClusterIP": a TCP forwarder on 127.0.0.1 that spreads connections round
//! robin over the Service's ready endpoints, as kube-proxy does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Stops forwarding (and drops every forwarded connection) when dropped.
#[derive(Debug)]
pub(crate) struct Forwarder {
    addr: SocketAddr,
    endpoints: Arc<RwLock<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Forwarder {
    pub(crate) async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let endpoints: Arc<RwLock<Vec<SocketAddr>>> = Arc::default();
        let task = tokio::spawn(accept(listener, Arc::clone(&endpoints)));
        Ok(Self {
            addr,
            endpoints,
            task,
        })
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn set_endpoints(&self, endpoints: Vec<SocketAddr>) {
        if let Ok(mut current) = self.endpoints.write() {
            *current = endpoints;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, endpoints: Arc<RwLock<Vec<SocketAddr>>>) {
    let next = AtomicUsize::new(0);
    // Owning the connections here means aborting this task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                let target = endpoints.read().ok().and_then(|list| {
                    (!list.is_empty()).then(|| list[next.fetch_add(1, Ordering::Relaxed) % list.len()])
                });
                // No ready endpoint: close the connection, as a Service without endpoints does.
                let Some(target) = target else { continue };
                connections.spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn named_server(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(name.as_bytes()).await;
            }
        });
        addr
    }

    async fn read_from(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text).await;
        text
    }

    #[tokio::test]
    async fn forwards_round_robin_and_closes_without_endpoints() {
        let forwarder = Forwarder::start().await.expect("forwarder");
        assert_eq!(
            read_from(forwarder.addr()).await,
            "",
            "no endpoints: closed at once"
        );
        forwarder.set_endpoints(vec![named_server("a").await, named_server("b").await]);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(read_from(forwarder.addr()).await);
        }
        seen.sort();
        assert_eq!(seen, vec!["a", "a", "b", "b"]);
    }
}

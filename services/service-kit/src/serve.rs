//! Accept loops shared by the service libraries.
//!
//! Both loops stop accepting as soon as the shutdown future completes, then tell every open
//! connection to wind down (HTTP connections finish the request in flight and close; raw TCP
//! handlers see their [`CancellationToken`] cancelled) and return once all of them are done.

use std::{convert::Infallible, future::Future, io, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Every reply the colormesh services send is small and fully built before it is written.
pub type HttpResponse = Response<Full<Bytes>>;

/// Why an accept loop gave up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot accept connections on {addr}")]
    Accept {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// How long to wait before accepting again when the process ran out of file descriptors or
/// buffers: retrying at once would spin while nothing has been freed.
const RESOURCE_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` completes and runs `handle` for each on its own task.
///
/// `handle` gets a token that is cancelled at shutdown; this function returns only after every
/// handler has returned. Transient accept errors (a client that went away, descriptor exhaustion)
/// are logged and the loop goes on; any other accept error ends the loop with [`ServeError`],
/// after the open connections have been wound down the same way.
pub async fn serve_connections<H, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handle: H,
) -> Result<(), ServeError>
where
    H: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener
        .local_addr()
        .map_or_else(|_| "an unknown address".to_owned(), |a| a.to_string());
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracker.spawn(handle(stream, peer, stop.child_token()));
                }
                Err(error) => match classify(&error) {
                    AcceptFailure::ClientGone => {
                        tracing::debug!(%error, "a connection failed before it was accepted");
                    }
                    AcceptFailure::OutOfResources => {
                        tracing::warn!(%error, "cannot accept connections for now, backing off");
                        tokio::time::sleep(RESOURCE_BACKOFF).await;
                    }
                    AcceptFailure::Fatal => break Err(ServeError::Accept { addr, source: error }),
                },
            },
        }
    };
    drop(listener);
    stop.cancel();
    tracker.close();
    tracing::debug!(
        open = tracker.len(),
        "stopped accepting, waiting for open connections"
    );
    tracker.wait().await;
    outcome
}

/// Serves HTTP/1.1 (keep-alive on) with `handler` until `shutdown` completes; requests in flight
/// at that moment are answered before their connection closes.
///
/// Header names are written in the canonical `Content-Type` form, as Go's net/http writes them,
/// so that the services look on the wire like the Go originals they stand in for. Each request
/// carries its peer's address as a [`crate::xray::PeerAddr`] extension.
pub async fn serve_http<H, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handler: H,
) -> Result<(), ServeError>
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    serve_connections(listener, shutdown, move |stream, peer, stop| {
        let handler = handler.clone();
        async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(crate::xray::PeerAddr(peer));
                let echo = crate::RequestEcho::installed()
                    .map(|echo| (echo, crate::RequestEcho::see(&request)));
                let reply = handler(request);
                async move {
                    let mut reply = reply.await;
                    if let Some((echo, seen)) = echo {
                        echo.stamp(&seen, reply.headers_mut());
                    }
                    Ok::<_, Infallible>(reply)
                }
            });
            let connection = http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        }
    })
    .await
}

#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    ClientGone,
    OutOfResources,
    Fatal,
}

fn classify(error: &io::Error) -> AcceptFailure {
    // Linux errno values for ENOMEM, ENFILE, EMFILE and ENOBUFS, which std does not name.
    const RESOURCE_ERRNOS: [i32; 4] = [12, 23, 24, 105];
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut => AcceptFailure::ClientGone,
        io::ErrorKind::OutOfMemory => AcceptFailure::OutOfResources,
        _ if error
            .raw_os_error()
            .is_some_and(|errno| RESOURCE_ERRNOS.contains(&errno)) =>
        {
            AcceptFailure::OutOfResources
        }
        _ => AcceptFailure::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        sync::{mpsc, oneshot},
    };

    #[test]
    fn accept_errors_are_classified() {
        let gone = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&gone), AcceptFailure::ClientGone);
        assert_eq!(
            classify(&io::Error::from_raw_os_error(24)),
            AcceptFailure::OutOfResources
        );
        let fatal = io::Error::from(io::ErrorKind::InvalidInput);
        assert_eq!(classify(&fatal), AcceptFailure::Fatal);
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish() {
        let listener = crate::bind(crate::DEFAULT_BIND_ADDR, 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered_tx, mut entered_rx) = mpsc::unbounded_channel::<()>();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_http(
            listener,
            async move {
                let _ = stop_rx.await;
            },
            move |_request| {
                let entered_tx = entered_tx.clone();
                let release_rx = release_rx.clone();
                async move {
                    entered_tx.send(()).unwrap();
                    if let Some(release) = release_rx.lock().await.take() {
                        let _ = release.await;
                    }
                    Response::new(Full::new(Bytes::from_static(b"done")))
                }
            },
        ));

        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        entered_rx.recv().await.unwrap();
        stop_tx.send(()).unwrap();
        // New connections are refused once the loop has stopped accepting, while the request in
        // flight is still being held by the handler.
        let refused = async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refused)
            .await
            .unwrap();
        assert!(!server.is_finished());

        release_tx.send(()).unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("Content-Length: 4\r\n"),
            "canonical header case: {reply}"
        );
        assert!(reply.ends_with("\r\n\r\ndone"), "{reply}");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

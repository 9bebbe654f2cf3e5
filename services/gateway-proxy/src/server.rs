//! Listeners: the data plane and the admin interface, with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::ProxyState;
use crate::admin::AdminService;
use crate::proxy::ConnectionService;

/// How long connections get to finish their requests after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors that stop [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting on a listener failed.
    #[error("accepting a connection on {listener} failed: {source}")]
    Accept {
        /// `"proxy"` or `"admin"`.
        listener: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Serves the data plane on `listener` and the admin interface on `admin` until `shutdown`
/// resolves, then stops accepting and lets open connections finish (up to 5 s).
pub async fn serve(
    listener: TcpListener,
    admin: TcpListener,
    state: ProxyState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) if is_transient(&error) => {
                        tracing::warn!(%error, "proxy accept failed; continuing");
                        continue;
                    }
                    Err(source) => break Err(ServeError::Accept { listener: "proxy", source }),
                };
                let _ = stream.set_nodelay(true);
                let index = state.shared.connections.fetch_add(1, Ordering::Relaxed);
                let service = ConnectionService::new(Arc::clone(&state.shared), index);
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "downstream connection ended with an error");
                    }
                });
            }
            accepted = admin.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) if is_transient(&error) => {
                        tracing::warn!(%error, "admin accept failed; continuing");
                        continue;
                    }
                    Err(source) => break Err(ServeError::Accept { listener: "admin", source }),
                };
                let service = AdminService::new(state.clone());
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "admin connection ended with an error");
                    }
                });
            }
        }
    };
    drop(listener);
    drop(admin);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    result
}

/// Accept errors caused by one connection or by momentary resource exhaustion, not by the listener.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23) // EMFILE, ENFILE
}

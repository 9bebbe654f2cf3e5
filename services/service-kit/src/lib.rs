//! What every colormesh service binary shares, so that each `main.rs` stays a few lines long:
//!
//! - [`init_tracing`]: structured logs on stderr, filtered by `RUST_LOG` (default `info`);
//!   `LOG_FORMAT=json` switches to one JSON object per line for log collectors.
//! - [`bind`]: the listening socket from `BIND_ADDR` (default `127.0.0.1`) and a port.
//! - [`announce_listening`] and [`Listening::parse`]: the announcement of a bound port, written
//!   by services and read by their supervisors.
//! - [`shutdown_signal`]: a future that completes on SIGTERM or SIGINT, for graceful shutdown.
//! - [`serve_connections`] and [`serve_http`]: the accept loops the service libraries share, which
//!   stop accepting on shutdown and let in-flight work finish.
//! - [`go_http`]: what Go's `net/http` does around a handler (content sniffing, the `400` for
//!   a missing `Host`, ServeMux's `301` to the clean path), for the stand-ins of Go programs.
//! - [`xray`]: AWS X-Ray as the originals' X-Ray Go SDK does it (trace header, segments over
//!   UDP to the daemon), and the ids and segment documents the gateway and the harness share.
//! - [`RequestEcho`]: the opt-in (`COLORMESH_ECHO_REQUEST=1`) that makes [`serve_http`]'s replies
//!   say what the service saw (path, host, headers) and who served them, for `cargo xtask
//!   equivalence`; status and body are unchanged.
//!
//! The libraries themselves never read the environment; only binaries call into this crate, and
//! supervisors for [`Listening::parse`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;

mod echo;
pub mod go_http;
mod listening;
mod serve;
pub mod xray;
pub use echo::RequestEcho;
pub use echo::{ECHO_ENV, SEEN_HEADERS, SEEN_HOST, SEEN_PATH, SERVED_BY, SERVED_BY_ENV};
pub use listening::{LISTENING_TARGET, Listening, announce_listening};
pub use serve::{HttpResponse, ServeError, serve_connections, serve_http};

/// The address services bind when `BIND_ADDR` is unset: loopback, so that nothing is exposed
/// by accident. Container images set `BIND_ADDR=0.0.0.0`.
pub const DEFAULT_BIND_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Errors a service binary can meet before it starts serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("environment variable {name}={value:?} is not {expected}")]
    BadEnv {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the global `tracing` subscriber. Call once, first thing in `main`.
pub fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second call (e.g. from a test harness) must not panic, hence `try_init`.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Reads an environment variable that must parse as `T`, falling back to `default` when unset
/// or empty. A set but malformed value is an error rather than a silent default.
pub fn env_or<T: std::str::FromStr>(
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, StartupError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|_| StartupError::BadEnv {
                name,
                value,
                expected,
            })
        }
        _ => Ok(default),
    }
}

/// The bind address from `BIND_ADDR`, or [`DEFAULT_BIND_ADDR`].
pub fn bind_addr_from_env() -> Result<IpAddr, StartupError> {
    env_or("BIND_ADDR", DEFAULT_BIND_ADDR, "an IP address")
}

/// Binds a TCP listener on `ip:port`; port 0 picks a free port (read it back with `local_addr`).
pub async fn bind(ip: IpAddr, port: u16) -> Result<TcpListener, StartupError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Completes when the process receives SIGTERM (Kubernetes, the harness) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_port_zero_reports_a_real_port() {
        let listener = bind(DEFAULT_BIND_ADDR, 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
    }

    #[tokio::test]
    async fn bind_reports_the_address_on_failure() {
        let taken = bind(DEFAULT_BIND_ADDR, 0).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr.ip(), addr.port()).await.unwrap_err();
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}

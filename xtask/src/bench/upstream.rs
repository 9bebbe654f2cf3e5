//! The fast upstreams behind both gateways: two minimal hyper servers answering a fixed body
//! (`blue`, `green`), served from one thread of their own so the load generator and the
//! orchestration never compete with them for a runtime.
//!
//! Only `/color` and paths below it are answered; anything else is a 404. A gateway that forgot
//! the prefix rewrite therefore fails the bench instead of being measured.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::load::Destination;

/// Both upstreams; they stop when this is dropped or [`Upstreams::stop`]ped.
#[derive(Debug)]
pub(crate) struct Upstreams {
    pub(crate) blue: SocketAddr,
    pub(crate) green: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Upstreams {
    /// Binds both on 127.0.0.1 port 0 and returns once they accept connections.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, bound_here) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-upstreams".to_owned())
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the upstreams' runtime")?;
                runtime.block_on(async move {
                    let blue = TcpListener::bind("127.0.0.1:0").await;
                    let green = TcpListener::bind("127.0.0.1:0").await;
                    let (blue, green) = match (blue, green) {
                        (Ok(blue), Ok(green)) => (blue, green),
                        (Err(error), _) | (_, Err(error)) => {
                            let _ = bound.send(Err(error));
                            return Ok(());
                        }
                    };
                    let addresses = blue.local_addr().and_then(|b| Ok((b, green.local_addr()?)));
                    let _ = bound.send(addresses);
                    tokio::select! {
                        () = serve(blue, Destination::Blue) => {}
                        () = serve(green, Destination::Green) => {}
                        _ = stopped => {}
                    }
                    Ok(())
                })
            })
            .context("starting the upstreams' thread")?;
        let (blue, green) = bound_here
            .recv()
            .context("the upstreams' thread ended before binding")?
            .context("binding an upstream on 127.0.0.1")?;
        Ok(Self {
            blue,
            green,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops both servers and reports a failure of their thread.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the upstreams' thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

async fn serve(listener: TcpListener, destination: Destination) {
    let body = Bytes::from_static(destination.body().as_bytes());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "upstream accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(answer(request.uri().path(), body)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
    }
}

fn answer(path: &str, body: Bytes) -> Response<Full<Bytes>> {
    let rewritten = path == "/color" || path.starts_with("/color/");
    let (status, body) = if rewritten {
        (StatusCode::OK, body)
    } else {
        (
            StatusCode::NOT_FOUND,
            Bytes::from(format!("not rewritten: {path}")),
        )
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::{Probe, Target};

    #[tokio::test]
    async fn each_upstream_names_itself_only_on_rewritten_paths() {
        let upstreams = Upstreams::start().expect("upstreams start");
        let mut blue = Probe::open(&Target {
            addr: upstreams.blue,
            path: "/color".to_owned(),
        })
        .await
        .expect("connect");
        assert_eq!(blue.get().await.expect("reply"), Destination::Blue);
        let mut green = Probe::open(&Target {
            addr: upstreams.green,
            path: "/color/x".to_owned(),
        })
        .await
        .expect("connect");
        assert_eq!(green.get().await.expect("reply"), Destination::Green);
        let mut raw = Probe::open(&Target {
            addr: upstreams.green,
            path: "/appmesh/color".to_owned(),
        })
        .await
        .expect("connect");
        let error = raw.get().await.expect_err("not rewritten").to_string();
        assert!(error.contains("404"), "{error}");
        upstreams.stop().expect("clean stop");
    }
}

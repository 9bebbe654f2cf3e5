//! A workload served in process: its `run(listener, config, shutdown)` on 127.0.0.1:0, stopped by
//! the test.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`Served::stop`] waits for the workload to finish before failing the test.
const STOP_GUARD: Duration = Duration::from_secs(20);

/// The shutdown future handed to a workload's `run`: it completes when the test stops it.
#[derive(Debug)]
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender (the test gave up on the workload) stops it too.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A running workload and the handle to stop it.
#[derive(Debug)]
pub struct Served<E> {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), E>>,
}

impl<E: std::fmt::Debug + Send + 'static> Served<E> {
    /// Binds 127.0.0.1:0 and spawns `run(listener, stop_signal)`, e.g.
    /// `Served::start(|listener, stop| colorteller::run(listener, config, stop))`.
    pub async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, StopSignal) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(listener, StopSignal(stopped)));
        Self { addr, stop, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for `run` to return `Ok`; fails the test otherwise.
    pub async fn stop(self) {
        self.stop.send(()).expect("the workload is still running");
        tokio::time::timeout(STOP_GUARD, self.task)
            .await
            .expect("the workload stops in time")
            .expect("the workload task did not panic")
            .expect("the workload ends without error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_sees_its_listener_and_returns_once_stopped() {
        let served = Served::start(|listener, stop| async move {
            let _addr = listener.local_addr().map_err(|e| e.to_string())?;
            stop.await;
            Ok::<(), String>(())
        })
        .await;
        assert!(served.url("/x").ends_with("/x"));
        served.stop().await;
    }
}

//! The probes: what each sends, what a robust gateway does, and how the answer is judged.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::procfs;
use super::upstream::PARTIAL_BODY;
use super::{CLOSE_WAIT, CONNECTION_LIMIT, NOFILE, SHORT_TIMEOUT, Setup};

/// Connections opened over the connection limit.
const OVER_LIMIT: usize = 4;
/// Idle connections opened against [`NOFILE`] descriptors.
const EXHAUSTING_CONNECTIONS: u64 = 2 * NOFILE;
/// The fixed window over which a gateway out of descriptors has its CPU use measured.
const CPU_WINDOW: Duration = Duration::from_secs(2);
/// How long a gateway gets to serve again once something was freed.
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// How long one admin or recovery request may take.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// More descriptors than this, taken by one request, is a blow-up.
const BLOW_UP: usize = 20;
/// How long a gateway gets to give back the descriptors one request took.
const SETTLE_WAIT: Duration = Duration::from_secs(3);
/// Pause between two polls of an observable state.
const POLL: Duration = Duration::from_millis(25);

/// One running gateway instance, as the probes see it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The data-plane listener.
    pub(crate) data: SocketAddr,
    /// The admin API of the process that forwards requests: gateway-proxy's, or Envoy's own
    /// (envoy-control's admin API runs in another process, with its own descriptors).
    pub(crate) admin: SocketAddr,
    /// The process that forwards requests: gateway-proxy, or the Envoy that envoy-control runs.
    pub(crate) pid: u32,
    /// That process's log.
    pub(crate) log: PathBuf,
    /// The instance's folder, where probes keep what they saw.
    pub(crate) dir: PathBuf,
}

/// A probe's result: a judgement against the expectation and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// `Some(true)`: as expected; `Some(false)`: not; `None`: the probe could not run.
    pub(crate) pass: Option<bool>,
    pub(crate) text: String,
}

impl Outcome {
    pub(crate) fn judged(pass: bool, text: impl Into<String>) -> Self {
        Self {
            pass: Some(pass),
            text: text.into(),
        }
    }

    pub(crate) fn not_run(text: impl Into<String>) -> Self {
        Self {
            pass: None,
            text: text.into(),
        }
    }

    /// The table cell: `✓ text`, `✗ text`, or the text alone when nothing was judged.
    pub(crate) fn cell(&self) -> String {
        match self.pass {
            Some(true) => format!("✓ {}", self.text),
            Some(false) => format!("✗ {}", self.text),
            None => self.text.clone(),
        }
    }
}

type Run = fn(Arc<Target>) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One probe: a name, what a robust gateway does, the instance it needs and how to run it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) name: &'static str,
    pub(crate) expected: &'static str,
    pub(crate) setup: Setup,
    pub(crate) run: Run,
}

/// Every probe, in table order.
pub(crate) fn probes() -> Vec<Probe> {
    vec![
        Probe {
            name: "connection that sends nothing",
            expected: "closed (request headers timeout)",
            setup: Setup::Defaults,
            run: |target| Box::pin(closes(target.data, b"", false)),
        },
        Probe {
            name: "partial HTTP/2 preface",
            expected: "closed (request headers timeout)",
            setup: Setup::Defaults,
            run: |target| Box::pin(closes(target.data, b"PRI * HTTP/2.0\r\n", false)),
        },
        Probe {
            name: "partial HTTP/1 headers",
            expected: "closed (request headers timeout)",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(closes(
                    target.data,
                    b"GET /echo HTTP/1.1\r\nHost: soak\r\n",
                    false,
                ))
            },
        },
        Probe {
            name: "idle HTTP/1.1 keep-alive after one request",
            expected: "answered, then closed (idle timeout)",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(closes(
                    target.data,
                    b"GET /echo HTTP/1.1\r\nHost: soak\r\n\r\n",
                    true,
                ))
            },
        },
        Probe {
            name: "absolute-form URI with another Host",
            expected: "200, upstream sees Host from the URI",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(async move {
                    let reply = answer(
                        target.data,
                        b"GET http://from-uri.example/echo HTTP/1.1\r\nHost: from-header.example\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                    let pass = reply.status == Some(200)
                        && reply.seen_host.as_deref() == Some("from-uri.example");
                    Outcome::judged(pass, reply.summary())
                })
            },
        },
        Probe {
            name: "two Host headers",
            expected: "400",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(status_is(
                    target.data,
                    b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
                    &[400],
                ))
            },
        },
        Probe {
            name: "HTTP/1.1 without Host",
            expected: "400",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(status_is(
                    target.data,
                    b"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n",
                    &[400],
                ))
            },
        },
        Probe {
            name: "https:// absolute-form URI on plain HTTP",
            expected: "400 (not forwarded as plain HTTP)",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(status_is(
                    target.data,
                    b"GET https://soak.example/echo HTTP/1.1\r\nHost: soak.example\r\nConnection: close\r\n\r\n",
                    &[400],
                ))
            },
        },
        Probe {
            name: "chunk size overflow",
            expected: "400",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(status_is(
                    target.data,
                    b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
                    &[400],
                ))
            },
        },
        Probe {
            name: "hop count at its limit (x-colormesh-hops: 10)",
            expected: "508 (loop ended)",
            setup: Setup::Defaults,
            run: |target| {
                Box::pin(status_is(
                    target.data,
                    b"GET /echo HTTP/1.1\r\nHost: soak\r\nx-colormesh-hops: 10\r\nConnection: close\r\n\r\n",
                    &[508],
                ))
            },
        },
        Probe {
            name: "stalled response body, default timeouts",
            expected: "cut (Gloo's 15 s route timeout, which Envoy applies to the whole response)",
            setup: Setup::Defaults,
            run: |target| Box::pin(stalled_response(target.data, CLOSE_WAIT)),
        },
        Probe {
            name: "stalled response body (body idle timeout 2 s)",
            expected: "200 and part of the body, cut after 2 s",
            setup: Setup::ShortTimeouts,
            run: |target| Box::pin(stalled_response(target.data, SHORT_TIMEOUT * 2)),
        },
        Probe {
            name: "stalled request body (body idle timeout 2 s)",
            expected: "4xx after 2 s, not blamed on the upstream",
            setup: Setup::ShortTimeouts,
            run: |target| Box::pin(stalled_request(target.data)),
        },
        Probe {
            name: "HTTP/2 (h2c) idle after one request (idle timeout 2 s)",
            expected: "answered, then GOAWAY or close after 2 s",
            setup: Setup::ShortTimeouts,
            run: |target| Box::pin(h2_idle(target.data, true)),
        },
        Probe {
            name: "HTTP/2 (h2c) preface and SETTINGS, no request (idle timeout 2 s)",
            expected: "closed (idle timeout 2 s, or request headers timeout 30 s)",
            setup: Setup::ShortTimeouts,
            run: |target| Box::pin(h2_idle(target.data, false)),
        },
        Probe {
            name: "connections over --max-connections 8",
            expected: "8 served, 4 more closed at once, admin answers, a freed slot serves again",
            setup: Setup::ConnectionLimit,
            run: |target| Box::pin(connection_limit(target)),
        },
        Probe {
            name: "descriptor exhaustion (RLIMIT_NOFILE 128, 256 idle connections)",
            expected: "no spinning (CPU < 25 %), admin answers, a few log lines, serves again once they close",
            setup: Setup::LowNofile,
            run: |target| Box::pin(descriptor_exhaustion(target)),
        },
        Probe {
            name: "sidecar (ALLOW_ALL): request addressed to its own admin API",
            expected: "508 or 403 (no admin API through the proxy)",
            setup: Setup::Sidecar,
            run: |target| {
                Box::pin(async move {
                    let to = target.admin;
                    addressed_to_self(target, to, &[508, 403]).await
                })
            },
        },
        Probe {
            name: "sidecar (ALLOW_ALL): request addressed to its own listener",
            expected: "508 at once, no descriptor blow-up",
            setup: Setup::Sidecar,
            run: |target| {
                Box::pin(async move {
                    let to = target.data;
                    addressed_to_self(target, to, &[508]).await
                })
            },
        },
    ]
}

/// What came back on one connection.
#[derive(Debug, Clone, Default)]
struct Exchange {
    received: Vec<u8>,
    /// When the first byte came, from the moment the request was written.
    first_byte: Option<Duration>,
    /// When the gateway closed the connection; `None`: still open when the wait ended.
    closed: Option<Duration>,
    /// The connection could not be opened or written.
    failed: Option<&'static str>,
}

impl Exchange {
    fn status(&self) -> Option<u16> {
        status_of(&self.received)
    }
}

/// The status code of an HTTP/1 response.
fn status_of(received: &[u8]) -> Option<u16> {
    let line = received.split(|byte| *byte == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words
        .next()
        .filter(|version| version.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// Writes `request` on a fresh connection and reads until the gateway closes it or `wait` ends.
async fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Exchange {
    let mut result = Exchange::default();
    let Ok(Ok(mut stream)) = tokio::time::timeout(REQUEST_WAIT, TcpStream::connect(addr)).await
    else {
        result.failed = Some("connect failed");
        return result;
    };
    let started = Instant::now();
    if stream.write_all(request).await.is_err() {
        result.failed = Some("write failed");
        return result;
    }
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + wait, stream.read(&mut buffer)).await {
            Err(_) => return result,
            Ok(Ok(0) | Err(_)) => {
                result.closed = Some(started.elapsed());
                return result;
            }
            Ok(Ok(read)) => {
                result.first_byte.get_or_insert_with(|| started.elapsed());
                result.received.extend_from_slice(&buffer[..read]);
            }
        }
    }
}

/// Sends `bytes` and reports whether and when the gateway closed the connection; with
/// `answered`, an answer is expected before the close.
async fn closes(addr: SocketAddr, bytes: &'static [u8], answered: bool) -> Outcome {
    let seen = exchange(addr, bytes, CLOSE_WAIT).await;
    if let Some(failed) = seen.failed {
        return Outcome::not_run(failed);
    }
    let got_answer = seen.status().is_some();
    let mut parts: Vec<String> = received_summary(&seen.received).into_iter().collect();
    parts.push(match seen.closed {
        Some(after) => format!("closed after {:.1} s", after.as_secs_f64()),
        None => format!("still open after {} s", CLOSE_WAIT.as_secs()),
    });
    Outcome::judged(
        seen.closed.is_some() && got_answer == answered,
        parts.join(", "),
    )
}

/// What a gateway sent before it closed (or did not): `None` for nothing, "answered 200" for an
/// HTTP/1 response, "sent HTTP/2 SETTINGS" for an HTTP/2 server preface.
fn received_summary(received: &[u8]) -> Option<String> {
    if received.is_empty() {
        return None;
    }
    if let Some(status) = status_of(received) {
        return Some(format!("answered {status}"));
    }
    // A frame header: 3 bytes of length, then the type, 4 for SETTINGS.
    if received.len() >= 9 && received[3] == 0x4 {
        return Some("sent HTTP/2 SETTINGS".to_owned());
    }
    Some(format!("sent {} bytes", received.len()))
}

/// One request's answer: its status and the Host the upstream saw.
#[derive(Debug, Clone)]
struct Reply {
    status: Option<u16>,
    seen_host: Option<String>,
    exchange: Exchange,
}

impl Reply {
    fn summary(&self) -> String {
        if let Some(failed) = self.exchange.failed {
            return failed.to_owned();
        }
        match (self.status, &self.seen_host) {
            (Some(status), Some(host)) => format!("{status}, upstream saw Host {host}"),
            (Some(status), None) => status.to_string(),
            (None, _) if self.exchange.closed.is_some() => "closed without an answer".to_owned(),
            (None, _) => "no answer, still open".to_owned(),
        }
    }
}

async fn answer(addr: SocketAddr, request: &[u8]) -> Reply {
    let exchange = exchange(addr, request, CLOSE_WAIT).await;
    let text = String::from_utf8_lossy(&exchange.received);
    Reply {
        status: exchange.status(),
        seen_host: text
            .split("seen-host=")
            .nth(1)
            .map(|host| host.trim().to_owned()),
        exchange,
    }
}

async fn status_is(addr: SocketAddr, request: &'static [u8], wanted: &[u16]) -> Outcome {
    let reply = answer(addr, request).await;
    let pass = reply.status.is_some_and(|status| wanted.contains(&status));
    Outcome::judged(pass, reply.summary())
}

/// `GET /stall`, routed to the upstream that sends headers and part of the body, then stalls.
/// As expected when the gateway cuts the response within `within`.
async fn stalled_response(addr: SocketAddr, within: Duration) -> Outcome {
    let seen = exchange(
        addr,
        b"GET /stall HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
        CLOSE_WAIT,
    )
    .await;
    if let Some(failed) = seen.failed {
        return Outcome::not_run(failed);
    }
    let partial = seen.received.ends_with(PARTIAL_BODY.as_bytes());
    let head = match seen.status() {
        Some(status) if partial => format!("{status} and part of the body"),
        Some(status) => status.to_string(),
        None => "no answer".to_owned(),
    };
    match seen.closed {
        Some(after) => Outcome::judged(
            partial && after <= within,
            format!("{head}, cut after {:.1} s", after.as_secs_f64()),
        ),
        None => Outcome::judged(
            false,
            format!("{head}, still open after {} s", CLOSE_WAIT.as_secs()),
        ),
    }
}

/// A POST whose body stops after 4 of its 1000 bytes, to the echo (which waits for all of it).
async fn stalled_request(addr: SocketAddr) -> Outcome {
    let seen = exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\nsome",
        CLOSE_WAIT,
    )
    .await;
    if let Some(failed) = seen.failed {
        return Outcome::not_run(failed);
    }
    match (seen.status(), seen.first_byte, seen.closed) {
        (Some(status), Some(after), _) => Outcome::judged(
            (400..500).contains(&status) && after <= SHORT_TIMEOUT * 2,
            format!("{status} after {:.1} s", after.as_secs_f64()),
        ),
        (_, _, Some(after)) => Outcome::judged(
            false,
            format!(
                "closed without an answer after {:.1} s",
                after.as_secs_f64()
            ),
        ),
        _ => Outcome::judged(
            false,
            format!("no answer, still open after {} s", CLOSE_WAIT.as_secs()),
        ),
    }
}

async fn h2_idle(addr: SocketAddr, request: bool) -> Outcome {
    match super::h2::idle_connection(addr, request, CLOSE_WAIT).await {
        Err(error) => Outcome::not_run(format!("h2c connection failed: {error}")),
        Ok(end) => {
            // Ended: a GOAWAY (Envoy then drains for its drain_timeout before it closes) or a
            // close, whichever came first.
            let ended = end.goaway_after.or(end.closed_after);
            let pass = end.closed_after.is_some()
                && (!request
                    || end.answered == Some(Some(200))
                        && ended.is_some_and(|after| after <= SHORT_TIMEOUT * 2));
            Outcome::judged(pass, end.summary(CLOSE_WAIT))
        }
    }
}

/// `GET /ready` on `admin`: its status, or `None` when no answer came within [`REQUEST_WAIT`].
async fn ready(admin: SocketAddr) -> Option<u16> {
    exchange(
        admin,
        b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        REQUEST_WAIT,
    )
    .await
    .status()
}

fn admin_summary(status: Option<u16>) -> String {
    status.map_or_else(
        || format!("admin no answer in {} s", REQUEST_WAIT.as_secs()),
        |status| format!("admin {status}"),
    )
}

/// One `GET /echo` on a fresh connection: its status, if one came within [`REQUEST_WAIT`].
async fn request_once(addr: SocketAddr) -> Option<u16> {
    exchange(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
        REQUEST_WAIT,
    )
    .await
    .status()
}

/// Polls until a fresh request is answered 200; returns how long that took.
async fn serves_again(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < RECOVERY_WAIT {
        if tokio::time::timeout(REQUEST_WAIT, request_once(addr))
            .await
            .ok()
            .flatten()
            == Some(200)
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

fn recovery_summary(recovered: Option<Duration>, after: &str) -> String {
    match recovered {
        Some(took) => format!("served again {:.1} s after {after}", took.as_secs_f64()),
        None => format!(
            "not served again within {} s after {after}",
            RECOVERY_WAIT.as_secs()
        ),
    }
}

/// Reads one HTTP/1 response (headers, then a Content-Length body) and leaves the connection
/// open; returns its status.
async fn read_response(stream: &mut TcpStream) -> Option<u16> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while received.len() < head_end + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
    status_of(&received)
}

/// Fills the connection limit with keep-alive connections that were each served once, then
/// opens [`OVER_LIMIT`] more, asks the admin API, frees one slot and waits to be served again.
async fn connection_limit(target: Arc<Target>) -> Outcome {
    let limit = CONNECTION_LIMIT as usize;
    let mut held = Vec::new();
    let mut served = 0;
    for _ in 0..limit {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(REQUEST_WAIT, TcpStream::connect(target.data)).await
        else {
            break;
        };
        if stream
            .write_all(b"GET /echo HTTP/1.1\r\nHost: soak\r\n\r\n")
            .await
            .is_ok()
            && tokio::time::timeout(REQUEST_WAIT, read_response(&mut stream))
                .await
                .ok()
                .flatten()
                == Some(200)
        {
            served += 1;
        }
        held.push(stream);
    }
    let mut shed = 0;
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..OVER_LIMIT {
        let seen = exchange(
            target.data,
            b"GET /echo HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
            REQUEST_WAIT,
        )
        .await;
        match (seen.received.is_empty(), seen.closed) {
            (true, Some(after)) => {
                shed += 1;
                slowest = slowest.max(after);
            }
            (false, _) => answered += 1,
            (true, None) => slowest = slowest.max(REQUEST_WAIT),
        }
    }
    let admin = ready(target.admin).await;
    held.pop();
    let recovered = serves_again(target.data).await;
    drop(held);
    let mut text =
        format!("{served} of {limit} served; {shed} of {OVER_LIMIT} more closed unanswered");
    if shed > 0 {
        text.push_str(&format!(" (within {:.1} s)", slowest.as_secs_f64()));
    }
    if answered > 0 {
        text.push_str(&format!(", {answered} answered"));
    }
    text.push_str(&format!(
        "; {}; {}",
        admin_summary(admin),
        recovery_summary(recovered, "one closed")
    ));
    let pass = served == limit
        && shed == OVER_LIMIT
        && slowest < Duration::from_secs(2)
        && admin == Some(200)
        && recovered.is_some();
    Outcome::judged(pass, text)
}

/// Waits (at most 5 s) until `log` has not grown for 500 ms, so that lines still buffered from
/// start-up (Envoy flushes its log every 100 ms) are not counted as the probe's; returns its
/// line count.
async fn quiet_log(log: &std::path::Path) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = procfs::line_count(log);
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(POLL).await;
        let now = procfs::line_count(log);
        if now != lines {
            lines = now;
            since = Instant::now();
        }
    }
    lines
}

/// Holds more idle connections than the gateway has descriptors, then measures it over
/// [`CPU_WINDOW`]: CPU use, the admin API, a new connection, log lines; then closes them and
/// waits for it to serve again.
async fn descriptor_exhaustion(target: Arc<Target>) -> Outcome {
    let lines_before = quiet_log(&target.log).await;
    let mut held = Vec::new();
    let mut not_connected = 0;
    for _ in 0..EXHAUSTING_CONNECTIONS {
        // A full accept queue drops the handshake: stop at the first connect that hangs.
        match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(target.data))
            .await
        {
            Ok(Ok(stream)) => held.push(stream),
            _ => {
                not_connected = EXHAUSTING_CONNECTIONS - held.len() as u64;
                break;
            }
        }
    }
    // Wait (bounded) until the process holds every descriptor it may open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_use = 0;
    while Instant::now() < deadline {
        match procfs::descriptors_below(target.pid, NOFILE) {
            Ok(open) => in_use = open,
            Err(_) => return Outcome::judged(false, "the data-plane process is gone"),
        }
        if in_use as u64 >= NOFILE {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let Ok(cpu_before) = procfs::cpu_time(target.pid) else {
        return Outcome::judged(false, "the data-plane process is gone");
    };
    let started = Instant::now();
    let (admin, fresh) = tokio::join!(
        ready(target.admin),
        exchange(
            target.data,
            b"GET /echo HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
            Duration::from_secs(3),
        )
    );
    tokio::time::sleep(CPU_WINDOW.saturating_sub(started.elapsed())).await;
    let window = started.elapsed();
    let Ok(cpu_after) = procfs::cpu_time(target.pid) else {
        return Outcome::judged(
            false,
            "the data-plane process exited while out of descriptors",
        );
    };
    let cpu = cpu_after.saturating_sub(cpu_before).as_secs_f64() / window.as_secs_f64();
    let logged = procfs::lines_after(&target.log, lines_before);
    let lines = logged.len();
    let kept = target.dir.join("exhaustion.log");
    if std::fs::write(&kept, logged.join("\n")).is_ok() && lines > 0 {
        eprintln!(
            "the {lines} lines logged while out of descriptors: {}",
            kept.display()
        );
    }
    drop(held);
    let recovered = serves_again(target.data).await;
    let fresh = match (fresh.status(), fresh.closed, fresh.failed) {
        (Some(status), _, _) => format!("a new connection answered {status}"),
        (None, Some(_), _) => "a new connection closed unanswered".to_owned(),
        (None, None, Some(failed)) => format!("a new connection: {failed}"),
        (None, None, None) => "a new connection waited unanswered".to_owned(),
    };
    let mut text = format!(
        "{} idle connections held, {in_use} of {NOFILE} descriptors in use",
        EXHAUSTING_CONNECTIONS - not_connected
    );
    if not_connected > 0 {
        text.push_str(" (then a connect timed out: accept queue full)");
    }
    text.push_str(&format!(
        "; CPU {:.0} % over {:.1} s; {}; {fresh}; {lines} log lines; {}",
        cpu * 100.0,
        window.as_secs_f64(),
        admin_summary(admin),
        recovery_summary(recovered, "the idle connections closed")
    ));
    let pass = cpu < 0.25 && admin == Some(200) && lines <= 10 && recovered.is_some();
    Outcome::judged(pass, text)
}

/// Sends the sidecar a request addressed to `to` (one of its own listeners), watching its
/// descriptors meanwhile; as expected with one of `wanted` and no descriptor blow-up.
async fn addressed_to_self(target: Arc<Target>, to: SocketAddr, wanted: &[u16]) -> Outcome {
    let Ok(before) = procfs::open_descriptors(target.pid) else {
        return Outcome::not_run("the data-plane process is gone");
    };
    let request =
        format!("GET http://{to}/ready HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    let seen = exchange(target.data, request.as_bytes(), CLOSE_WAIT);
    tokio::pin!(seen);
    let mut peak = before;
    let mut tick = tokio::time::interval(POLL);
    let seen = loop {
        tokio::select! {
            seen = &mut seen => break seen,
            _ = tick.tick() => {
                if let Ok(open) = procfs::open_descriptors(target.pid) {
                    peak = peak.max(open);
                }
            }
        }
    };
    let answer = match (seen.status(), seen.first_byte, seen.failed) {
        (_, _, Some(failed)) => failed.to_owned(),
        (Some(status), Some(after), _) if (200..300).contains(&status) => format!(
            "{status} after {:.1} s (forwarded, and answered by {to})",
            after.as_secs_f64()
        ),
        (Some(status), Some(after), _) => format!("{status} after {:.1} s", after.as_secs_f64()),
        _ => format!("no answer within {} s", CLOSE_WAIT.as_secs()),
    };
    // Then the descriptors the request took should be given back.
    let deadline = Instant::now() + SETTLE_WAIT;
    let mut after = peak;
    while Instant::now() < deadline {
        match procfs::open_descriptors(target.pid) {
            Ok(open) => after = open,
            Err(_) => break,
        }
        if after <= before + BLOW_UP {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let settled = if after <= before + BLOW_UP {
        format!("{after} after")
    } else {
        format!("still {after} {} s after", SETTLE_WAIT.as_secs())
    };
    let text =
        format!("{answer}; descriptors {before} before, at most {peak} meanwhile, {settled}");
    let pass = seen.status().is_some_and(|status| wanted.contains(&status))
        && peak <= before + BLOW_UP
        && after <= before + BLOW_UP;
    Outcome::judged(pass, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_http1_responses() {
        assert_eq!(status_of(b"HTTP/1.1 508 Loop Detected\r\n\r\n"), Some(508));
        assert_eq!(status_of(b"HTTP/1.0 200 OK"), Some(200));
        assert_eq!(status_of(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn what_came_before_a_close_is_named() {
        assert_eq!(received_summary(b""), None);
        assert_eq!(
            received_summary(b"HTTP/1.1 200 OK\r\n\r\n").as_deref(),
            Some("answered 200")
        );
        assert_eq!(
            received_summary(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]).as_deref(),
            Some("sent HTTP/2 SETTINGS")
        );
        assert_eq!(received_summary(b"junk").as_deref(), Some("sent 4 bytes"));
    }

    #[test]
    fn cells_carry_the_verdict() {
        assert_eq!(Outcome::judged(true, "400").cell(), "✓ 400");
        assert_eq!(Outcome::judged(false, "200").cell(), "✗ 200");
        assert_eq!(Outcome::not_run("n/a").cell(), "n/a");
    }

    #[test]
    fn replies_summarize_status_and_host() {
        let reply = |received: &[u8], closed: bool| {
            let exchange = Exchange {
                received: received.to_vec(),
                first_byte: None,
                closed: closed.then_some(Duration::ZERO),
                failed: None,
            };
            let text = String::from_utf8_lossy(received).into_owned();
            Reply {
                status: exchange.status(),
                seen_host: text.split("seen-host=").nth(1).map(|h| h.trim().to_owned()),
                exchange,
            }
            .summary()
        };
        assert_eq!(
            reply(
                b"HTTP/1.1 200 OK\r\n\r\nseen-host=a.example,b.example\n",
                true
            ),
            "200, upstream saw Host a.example,b.example"
        );
        assert_eq!(reply(b"HTTP/1.1 400 Bad Request\r\n\r\n", true), "400");
        assert_eq!(reply(b"", true), "closed without an answer");
        assert_eq!(reply(b"", false), "no answer, still open");
    }

    #[test]
    fn every_setup_has_a_probe_and_names_are_unique() {
        let probes = probes();
        let mut names: Vec<_> = probes.iter().map(|probe| probe.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), probes.len());
        for setup in Setup::ALL {
            assert!(
                probes.iter().any(|probe| probe.setup == setup),
                "{setup:?} starts an instance no probe uses"
            );
        }
    }
}

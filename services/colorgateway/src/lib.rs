//! colorapp's colorgateway: asks the colorteller for a color and answers with it and a histogram
//! of recent colors.
//!
//! On the wire it behaves as `examples/apps/colorapp/src/gateway/main.go` of
//! aws-app-mesh-examples (2019):
//!
//! - `/color` calls `GET http://<teller endpoint>/`, trims the body and answers `200` with
//!   `{"color":"<c>", "stats": {"<c>":1}}`, exactly so spaced, keys sorted, no trailing newline
//!   (see [`GatewayReply::render`]). The stats cover the last 1000 answers, oldest overwritten,
//!   and are shared by every client of this process. A failed teller call answers `500` with
//!   `500 - Unexpected Error` and is not counted.
//! - `/color/clear` empties the stats and answers `cleared`.
//! - `/tcpecho` writes `Hello from gateway` to the TCP echo endpoint and answers
//!   `Response from tcpecho server: <first line>`, or `500` with the original's error texts.
//! - `/ping` answers an empty `200`. Every other path is Go's `404 page not found\n`; unclean
//!   paths such as `//color` get ServeMux's `301` to the clean path.
//!
//! Around the handlers it does what Go's `net/http` and the X-Ray SDK do there
//! ([`service_kit::go_http`], [`service_kit::xray`]): an HTTP/1.1 request without `Host` is a
//! `400`; `Content-Type` is sniffed from each body as `http.DetectContentType` does; the teller's
//! body is kept as bytes, so invalid UTF-8 goes into `color` raw and into the stats key as
//! `\ufffd` escapes, as Go's `%s` and `encoding/json` write them. Every request to the four
//! routes is an X-Ray segment named `<STAGE>-gateway` ([`Config::stage`]): the reply carries
//! `X-Amzn-Trace-Id: Root=…` (plus `;Sampled=` when asked), an incoming trace is continued, the
//! teller call carries `Root=…;Parent=<subsegment>;Sampled=…` and is a `remote` subsegment named
//! after the teller endpoint, and sampled segments go to the daemon over UDP
//! ([`Config::xray_daemon`]). The 404, 301 and 400 replies come from the mux and the server,
//! before any handler, so, as in Go, they carry no trace.
//!
//! # Deliberate improvements over the Go original
//!
//! 1. **Teller call timeout** ([`Config::teller_timeout`], `COLOR_TELLER_TIMEOUT`, default 10s):
//!    the original waits on the teller for as long as the client waits.
//! 2. **A non-2xx teller status is a failure**: the original reads any body as a color, so an
//!    Envoy `503 no healthy upstream` became the "color" `no healthy upstream` in the stats.
//!
//! # Proxies
//!
//! The teller call honours an HTTP proxy given explicitly in [`Config::proxy`] (the binary fills
//! it from `HTTP_PROXY`/`http_proxy` and `NO_PROXY`/`no_proxy` with [`ProxySettings::from_env`]);
//! proxied requests use the absolute form, `GET http://colorteller.appmesh-demo:9080/ HTTP/1.1`.
//! Unlike Go, loopback teller addresses are not exempt from the proxy: list them in `NO_PROXY`.

use std::{
    future::Future,
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Body as _;
use service_kit::{
    HttpResponse, ServeError, go_http,
    xray::{self, Recorder, Sampler, Trace},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

mod history;
mod mux;
mod reply;

pub use reply::{GatewayReply, ReplyError, parse_reply};

use history::ColorHistory;
use mux::Route;

/// The reply keys: the original gateway's, or the canary `colorgatewayv2`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// `{"color":…, "stats": …}`
    #[default]
    V1,
    /// `{"colorV2":…, "statsV2": …}`
    V2,
}

impl Flavor {
    /// The color and stats keys of this flavour.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            Self::V1 => ("color", "stats"),
            Self::V2 => ("colorV2", "statsV2"),
        }
    }
}

/// A flavour name other than `v1` or `v2`.
#[derive(Debug, thiserror::Error)]
#[error("unknown colorgateway flavor {0:?}: expected v1 or v2")]
pub struct UnknownFlavor(String);

impl FromStr for Flavor {
    type Err = UnknownFlavor;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            _ => Err(UnknownFlavor(name.to_owned())),
        }
    }
}

/// The proxy the teller call goes through, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `http://` requests, e.g. `http://127.0.0.1:15001`; a bare `host:port` means
    /// `http://host:port`.
    pub http_proxy: Option<String>,
    /// Comma-separated hosts, domains (`.appmesh-demo` or `appmesh-demo`), IPs or CIDRs reached
    /// directly; `*` bypasses the proxy for everything.
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// Reads `HTTP_PROXY` (else `http_proxy`) and `NO_PROXY` (else `no_proxy`), in Go's order of
    /// preference; empty values count as unset. Meant for binaries: libraries take settings
    /// explicitly.
    pub fn from_env() -> Self {
        let first_set = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        Self {
            http_proxy: first_set(["HTTP_PROXY", "http_proxy"]),
            no_proxy: first_set(["NO_PROXY", "no_proxy"]),
        }
    }
}

/// The teller call timeout when none is configured.
pub const DEFAULT_TELLER_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a colorgateway needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `host:port` of the colorteller; the gateway calls `http://<endpoint>/`.
    pub color_teller_endpoint: String,
    /// `host:port` of the TCP echo server for `/tcpecho`; `None` makes `/tcpecho` a `500`.
    pub tcp_echo_endpoint: Option<String>,
    /// Which reply keys to use.
    pub flavor: Flavor,
    /// How long one teller call may take, connection included.
    pub teller_timeout: Duration,
    /// The proxy for the teller call.
    pub proxy: ProxySettings,
    /// `STAGE`: the X-Ray segments are named `<stage>-gateway`.
    pub stage: String,
    /// Where sampled X-Ray segments go (`AWS_XRAY_DAEMON_ADDRESS`); `None` sends none.
    pub xray_daemon: Option<SocketAddr>,
    /// The sampling rate past one request a second, for requests that bring no decision.
    pub xray_sampling_rate: f64,
}

/// The stage of the original when `STAGE` is unset.
pub const DEFAULT_STAGE: &str = "default";

impl Config {
    /// A v1 gateway for `endpoint` with the default timeout, no TCP echo and no proxy.
    pub fn new(color_teller_endpoint: impl Into<String>) -> Self {
        Self {
            color_teller_endpoint: color_teller_endpoint.into(),
            tcp_echo_endpoint: None,
            flavor: Flavor::V1,
            teller_timeout: DEFAULT_TELLER_TIMEOUT,
            proxy: ProxySettings::default(),
            stage: DEFAULT_STAGE.to_owned(),
            xray_daemon: None,
            xray_sampling_rate: service_kit::xray::DEFAULT_SAMPLING_RATE,
        }
    }
}

/// Why a colorgateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the colorteller endpoint {endpoint:?} does not make a URL (expected host:port)")]
    TellerEndpoint {
        endpoint: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the HTTP proxy {proxy:?} is not a usable proxy URL")]
    Proxy {
        proxy: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client for the colorteller")]
    Client(#[source] reqwest::Error),
    #[error("colorgateway stopped serving")]
    Serve(#[from] ServeError),
}

/// Serves colorgateway on `listener` until `shutdown` completes; requests in flight then finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let gateway = Arc::new(Gateway::new(config)?);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(teller = %gateway.teller_url, flavor = ?gateway.flavor, "colorgateway starting");
        service_kit::announce_listening("http", addr);
    }
    if gateway.tcp_echo_endpoint.is_none() {
        tracing::info!("TCP_ECHO_ENDPOINT is not set: /tcpecho will answer 500");
    }
    service_kit::serve_http(listener, shutdown, move |request| {
        let gateway = Arc::clone(&gateway);
        async move { gateway.answer(request).await }
    })
    .await?;
    Ok(())
}

#[derive(Debug)]
struct Gateway {
    client: reqwest::Client,
    teller_url: url::Url,
    tcp_echo_endpoint: Option<String>,
    flavor: Flavor,
    history: Mutex<ColorHistory>,
    recorder: Recorder,
    /// The teller call's subsegment name: the endpoint, as the SDK names it after the URL host.
    teller_host: String,
}

/// Why one teller call did not produce a color.
#[derive(Debug, thiserror::Error)]
enum TellerFailure {
    #[error("calling the colorteller failed")]
    Call(#[from] reqwest::Error),
    #[error("the colorteller answered {0}")]
    Status(StatusCode),
    #[error("empty response from the colorteller")]
    Empty,
}

impl Gateway {
    fn new(config: Config) -> Result<Self, Error> {
        let endpoint = &config.color_teller_endpoint;
        let teller_url = url::Url::parse(&format!("http://{endpoint}")).map_err(|source| {
            Error::TellerEndpoint {
                endpoint: endpoint.clone(),
                source,
            }
        })?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.teller_timeout)
            .no_proxy();
        // A `*` entry turns the proxy off entirely, as in Go and curl; reqwest's matcher would
        // apply it to host names only, not to IP addresses.
        let bypass_all = config
            .proxy
            .no_proxy
            .as_deref()
            .is_some_and(|list| list.split(',').any(|entry| entry.trim() == "*"));
        if let Some(proxy) = config.proxy.http_proxy.as_ref().filter(|_| !bypass_all) {
            let proxy_url = if proxy.contains("://") {
                proxy.clone()
            } else {
                format!("http://{proxy}")
            };
            let no_proxy = config
                .proxy
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string);
            let proxy = reqwest::Proxy::http(&proxy_url)
                .map_err(|source| Error::Proxy {
                    proxy: proxy.clone(),
                    source,
                })?
                .no_proxy(no_proxy);
            builder = builder.proxy(proxy);
        }
        let recorder = Recorder::new(
            format!("{}-gateway", config.stage),
            config.xray_daemon,
            Sampler::new(1, config.xray_sampling_rate),
        );
        Ok(Self {
            recorder,
            teller_host: config.color_teller_endpoint.clone(),
            client: builder.build().map_err(Error::Client)?,
            teller_url,
            tcp_echo_endpoint: config.tcp_echo_endpoint,
            flavor: config.flavor,
            history: Mutex::new(ColorHistory::default()),
        })
    }

    async fn answer<B>(&self, request: Request<B>) -> HttpResponse {
        if let Some(refusal) = go_http::refuse_missing_host(&request) {
            return refusal;
        }
        let route = match mux::route(request.method(), request.uri()) {
            Route::NotFound => return go_http::error(StatusCode::NOT_FOUND, "404 page not found"),
            Route::Redirect(location) => return go_http::redirect(request.method(), &location),
            Route::BadRequest => return go_http::bad_request(),
            route => route,
        };
        let mut trace = self.recorder.begin(&request);
        let mut reply = match route {
            Route::Color => self.color(&mut trace).await,
            Route::ClearColor => {
                self.history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                text(StatusCode::OK, "cleared")
            }
            Route::TcpEcho => self.tcp_echo().await,
            Route::Ping => {
                tracing::debug!("ping requested, responding with HTTP 200");
                text(StatusCode::OK, "")
            }
            Route::NotFound | Route::Redirect(_) | Route::BadRequest => {
                unreachable!("answered above")
            }
        };
        let length = reply.body().size_hint().exact().unwrap_or(0);
        let header = self.recorder.end(trace, reply.status(), length);
        reply.headers_mut().insert(xray::TRACE_HEADER, header);
        reply
    }

    async fn color(&self, trace: &mut Trace) -> HttpResponse {
        let color = match self.fetch_color(trace).await {
            Ok(color) => color,
            Err(failure) => {
                tracing::warn!(error = %failure, source = ?std::error::Error::source(&failure), "no color from the colorteller");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "500 - Unexpected Error");
            }
        };
        let stats = {
            let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            history.record(color.clone());
            history.ratios()
        };
        text(
            StatusCode::OK,
            reply::render_bytes(self.flavor, &color, &stats),
        )
    }

    /// Calls the teller inside `trace` as the SDK's `xray.Client` does: a `remote` subsegment,
    /// whose id is the call's `Parent`.
    async fn fetch_color(&self, trace: &mut Trace) -> Result<Vec<u8>, TellerFailure> {
        let mut call = trace.begin_call(&self.teller_host, "GET", self.teller_url.as_str());
        let result = self.call_teller(trace.downstream_header(&call.id)).await;
        call.end_time = xray::now();
        match &result {
            Ok((status, body)) => {
                if let Some(http) = &mut call.http {
                    http.response.status = status.as_u16();
                    http.response.content_length = body.len() as u64;
                }
                call.mark_status(*status);
            }
            Err(_) => call.fault = true,
        }
        trace.segment.subsegments.push(call);
        let (status, body) = result?;
        if !status.is_success() {
            return Err(TellerFailure::Status(status));
        }
        let color = go_trim_space(&body);
        if color.is_empty() {
            return Err(TellerFailure::Empty);
        }
        Ok(color.to_vec())
    }

    async fn call_teller(
        &self,
        trace_header: http::HeaderValue,
    ) -> Result<(StatusCode, Bytes), TellerFailure> {
        let response = self
            .client
            .get(self.teller_url.clone())
            .header(xray::TRACE_HEADER, trace_header)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.bytes().await?))
    }

    async fn tcp_echo(&self) -> HttpResponse {
        let failed = |body: String| {
            tracing::warn!(%body, "/tcpecho failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, body)
        };
        let Some(endpoint) = &self.tcp_echo_endpoint else {
            return failed("tcpecho endpoint is not set".to_owned());
        };
        tracing::debug!(%endpoint, "dialing tcp endpoint");
        let mut stream = match TcpStream::connect(endpoint).await {
            Ok(stream) => stream,
            Err(error) => {
                return failed(format!(
                    "Dial failed, err:{}",
                    go_dial_error(endpoint, &error)
                ));
            }
        };
        if let Err(error) = stream.write_all(b"Hello from gateway").await {
            return failed(format!("Write to server failed, err:{error}"));
        }
        let mut line = String::new();
        match BufReader::new(stream).read_line(&mut line).await {
            Ok(_) if line.ends_with('\n') => text(
                StatusCode::OK,
                format!("Response from tcpecho server: {line}"),
            ),
            // Go's ReadString reports a stream that ends before a newline as io.EOF.
            Ok(_) => failed("Read from server failed, err:EOF".to_owned()),
            Err(error) => failed(format!("Read from server failed, err:{error}")),
        }
    }
}

/// Words a connect failure as Go's `net.Dial` does for the common cases.
fn go_dial_error(endpoint: &str, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {endpoint}: connect: connection refused")
        }
        _ => format!("dial tcp {endpoint}: {error}"),
    }
}

/// A reply as the Go handler writes it: `Content-Type` sniffed from the body, none when empty.
fn text(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    go_http::sniffed(status, body)
}

/// Go's `strings.TrimSpace` on bytes: Unicode white space off both ends; a byte that is not
/// valid UTF-8 is not space (Go decodes it as U+FFFD) and stops the trim.
fn go_trim_space(bytes: &[u8]) -> &[u8] {
    let chunks: Vec<_> = bytes.utf8_chunks().collect();
    let mut start = 0;
    for chunk in &chunks {
        let valid = chunk.valid();
        let kept = valid.trim_start();
        start += valid.len() - kept.len();
        if !kept.is_empty() || !chunk.invalid().is_empty() {
            break;
        }
    }
    let mut end = bytes.len();
    for chunk in chunks.iter().rev() {
        if !chunk.invalid().is_empty() {
            break;
        }
        let valid = chunk.valid();
        let kept = valid.trim_end();
        end -= valid.len() - kept.len();
        if !kept.is_empty() {
            break;
        }
    }
    bytes.get(start..end.max(start)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_space_is_gos_on_bytes() {
        assert_eq!(go_trim_space(b" \t blue\r\n"), b"blue");
        assert_eq!(go_trim_space(b"\xc2\xa0red\xe3\x80\x80"), b"red");
        assert_eq!(go_trim_space(b" \xffred\xfe "), b"\xffred\xfe");
        assert_eq!(go_trim_space(b"  \n"), b"");
        assert_eq!(go_trim_space(b""), b"");
        assert_eq!(go_trim_space(b" a \xff b "), b"a \xff b");
    }
}

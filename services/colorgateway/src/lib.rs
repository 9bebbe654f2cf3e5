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
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use service_kit::{HttpResponse, ServeError};
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Config {
    /// A v1 gateway for `endpoint` with the default timeout, no TCP echo and no proxy.
    pub fn new(color_teller_endpoint: impl Into<String>) -> Self {
        Self {
            color_teller_endpoint: color_teller_endpoint.into(),
            tcp_echo_endpoint: None,
            flavor: Flavor::V1,
            teller_timeout: DEFAULT_TELLER_TIMEOUT,
            proxy: ProxySettings::default(),
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
        Ok(Self {
            client: builder.build().map_err(Error::Client)?,
            teller_url,
            tcp_echo_endpoint: config.tcp_echo_endpoint,
            flavor: config.flavor,
            history: Mutex::new(ColorHistory::default()),
        })
    }

    async fn answer<B>(&self, request: Request<B>) -> HttpResponse {
        match mux::route(request.method(), request.uri()) {
            Route::Color => self.color().await,
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
            Route::NotFound => go_error(StatusCode::NOT_FOUND, "404 page not found"),
            Route::Redirect(location) => redirect(request.method(), &location),
            Route::BadRequest => {
                let mut response = text(StatusCode::BAD_REQUEST, "400 Bad Request");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        }
    }

    async fn color(&self) -> HttpResponse {
        let color = match self.fetch_color().await {
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
        let reply = GatewayReply {
            flavor: self.flavor,
            color,
            stats,
        };
        text(StatusCode::OK, reply.render())
    }

    async fn fetch_color(&self) -> Result<String, TellerFailure> {
        let response = self.client.get(self.teller_url.clone()).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(TellerFailure::Status(status));
        }
        let color = String::from_utf8_lossy(&body).trim().to_owned();
        if color.is_empty() {
            return Err(TellerFailure::Empty);
        }
        Ok(color)
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

fn text(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let body = body.into();
    let sniffed = !body.is_empty();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if sniffed {
        // What Go's content sniffing picks for every body this gateway writes, JSON included.
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

/// An error reply as Go's `http.Error` writes it: the message plus a newline, and `nosniff`.
fn go_error(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = text(status, format!("{message}\n"));
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// ServeMux's `301` as Go's `http.Redirect` writes it: an HTML body for GET only.
fn redirect(method: &Method, location: &str) -> HttpResponse {
    let body = if method == Method::GET {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            mux::html_escape(location)
        )
    } else {
        String::new()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(location) => {
            headers.insert(header::LOCATION, location);
        }
        Err(error) => tracing::warn!(%error, location, "redirect location is not a header value"),
    }
    if method == Method::GET || method == Method::HEAD {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

//! colorapp's colorteller: answers every path with its color.
//!
//! On the wire it behaves as `examples/apps/colorapp/src/colorteller` of aws-app-mesh-examples:
//! every path except `/ping` answers `200` with the color as the whole body (no newline), `/ping`
//! answers `200` with an empty body, and any method is accepted.
//!
//! Two fault knobs from later App Mesh walkthroughs are built in, both inert unless used:
//!
//! - **`Latency` request header** (the timeout-policy walkthrough's colorteller): the color answer
//!   is delayed. A bare integer means seconds, as in the original (`Latency: 2`); a unit is
//!   accepted too (`250ms`, `1s`, anything [`humantime`] reads). A malformed value answers `400`
//!   with a one-line reason, where the original silently answered an empty `200`.
//! - **`GET /setFlake?rate=<0..1>&code=<status>`** (the circuit-breaker walkthrough's
//!   colorteller): from then on each color answer fails with `code` and the body
//!   `flaky server\n` with probability `rate`. The reply reports the settings *before* the
//!   change, `rate: 0, code: 200` on the first call, as the original does. A missing or bad
//!   parameter answers `400` with the original's messages; unlike the original, a `rate` of NaN
//!   and a `code` that is not a final HTTP status (`200..=999`) are refused too.
//!
//! Around the handler it does what Go's `net/http` and the X-Ray SDK do there
//! ([`service_kit::go_http`], [`service_kit::xray`]):
//!
//! - an HTTP/1.1 request without `Host` gets `400 Bad Request: missing required Host header`;
//!   a malformed percent escape gets `400 Bad Request`;
//! - an unclean path (`//x`, `/./x`, `/a/../b`) gets ServeMux's `301` to the cleaned path;
//! - every body's `Content-Type` is sniffed as `http.DetectContentType` does (a color `<html>`
//!   is `text/html; charset=utf-8`);
//! - every answered request is an X-Ray segment named `<STAGE>-colorteller-<COLOR>`
//!   ([`Config::stage`]): the reply carries `X-Amzn-Trace-Id: Root=…` (plus `;Sampled=` when the
//!   request asked with `Sampled=?`), an incoming trace is continued, and sampled segments go to
//!   the daemon over UDP ([`Config::xray_daemon`]). The 301 and the 400s are answered before
//!   the handler, so, as in Go, they carry no trace.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Body as _;
use rand::{Rng, SeedableRng, rngs::StdRng};
use service_kit::{
    HttpResponse, ServeError,
    go_http::{self, MuxPath},
    xray::{self, Recorder, Sampler},
};
use tokio::net::TcpListener;

/// What a colorteller answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The body of every color answer.
    pub color: String,
    /// Seed for the `/setFlake` coin; `None` seeds from the operating system's entropy.
    pub flake_seed: Option<u64>,
    /// `STAGE`: the X-Ray segments are named `<stage>-colorteller-<color>`.
    pub stage: String,
    /// Where sampled X-Ray segments go (`AWS_XRAY_DAEMON_ADDRESS`); `None` sends none.
    pub xray_daemon: Option<SocketAddr>,
    /// The sampling rate past one request a second, for requests that bring no decision.
    pub xray_sampling_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            color: DEFAULT_COLOR.to_owned(),
            flake_seed: None,
            stage: DEFAULT_STAGE.to_owned(),
            xray_daemon: None,
            xray_sampling_rate: service_kit::xray::DEFAULT_SAMPLING_RATE,
        }
    }
}

/// The color of the original when `COLOR` is unset.
pub const DEFAULT_COLOR: &str = "black";

/// The stage of the original when `STAGE` is unset.
pub const DEFAULT_STAGE: &str = "default";

/// Why a colorteller stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("colorteller stopped serving")]
    Serve(#[from] ServeError),
}

/// Serves colorteller on `listener` until `shutdown` completes; requests in flight then finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let teller = Arc::new(Teller::new(config));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(color = %teller.color_text, "colorteller starting");
        service_kit::announce_listening("http", addr);
    }
    service_kit::serve_http(listener, shutdown, move |request| {
        let teller = Arc::clone(&teller);
        async move { teller.answer(request).await }
    })
    .await?;
    Ok(())
}

#[derive(Debug)]
struct Teller {
    color: Bytes,
    color_text: String,
    flake: Mutex<Flake>,
    recorder: Recorder,
}

#[derive(Debug)]
struct Flake {
    rate: f32,
    code: StatusCode,
    rng: StdRng,
}

impl Teller {
    fn new(config: Config) -> Self {
        let rng = config
            .flake_seed
            .map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
        let recorder = Recorder::new(
            format!("{}-colorteller-{}", config.stage, config.color),
            config.xray_daemon,
            Sampler::new(1, config.xray_sampling_rate),
        );
        Self {
            recorder,
            color: Bytes::from(config.color.clone()),
            color_text: config.color,
            flake: Mutex::new(Flake {
                rate: 0.0,
                code: StatusCode::OK,
                rng,
            }),
        }
    }

    async fn answer<B>(&self, request: Request<B>) -> HttpResponse {
        if let Some(refusal) = go_http::refuse_missing_host(&request) {
            return refusal;
        }
        let path = match go_http::mux_path(request.method(), request.uri()) {
            MuxPath::Clean(path) => path,
            MuxPath::Redirect(location) => return go_http::redirect(request.method(), &location),
            MuxPath::BadRequest => return go_http::bad_request(),
        };
        let trace = self.recorder.begin(&request);
        let mut reply = match &*path {
            "/ping" => text(StatusCode::OK, Bytes::new()),
            "/setFlake" => self.set_flake(request.uri().query().unwrap_or("")),
            _ => self.tell(request.method(), request.headers()).await,
        };
        let length = reply.body().size_hint().exact().unwrap_or(0);
        let header = self.recorder.end(trace, reply.status(), length);
        reply.headers_mut().insert(xray::TRACE_HEADER, header);
        reply
    }

    async fn tell(&self, method: &Method, headers: &http::HeaderMap) -> HttpResponse {
        match headers.get("latency").map(parse_latency) {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(delay))) => {
                tracing::debug!(?delay, "delaying the answer as the Latency header asks");
                tokio::time::sleep(delay).await;
            }
            Some(Err(invalid)) => return go_error(StatusCode::BAD_REQUEST, &invalid.to_string()),
        }
        let failure = {
            let mut flake = self.flake.lock().unwrap_or_else(PoisonError::into_inner);
            let roll: f32 = flake.rng.random();
            (roll < flake.rate).then_some(flake.code)
        };
        if let Some(code) = failure {
            tracing::debug!(%method, %code, "flaking");
            return go_error(code, "flaky server");
        }
        text(StatusCode::OK, self.color.clone())
    }

    fn set_flake(&self, query: &str) -> HttpResponse {
        let setting = match FlakeSetting::parse(query) {
            Ok(setting) => setting,
            Err(refusal) => {
                tracing::info!(reason = %refusal, "refusing /setFlake");
                return go_error(StatusCode::BAD_REQUEST, &refusal.to_string());
            }
        };
        let mut flake = self.flake.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = format!(
            "rate: {}, code: {}",
            go_format_g32(flake.rate),
            flake.code.as_u16()
        );
        tracing::info!(rate = setting.rate, code = %setting.code, "flake settings changed");
        flake.rate = setting.rate;
        flake.code = setting.code;
        text(StatusCode::OK, Bytes::from(previous))
    }
}

/// Why `/setFlake` refused its query, worded as the Go original words it (the texts are the
/// reply bodies clients see).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FlakeRefusal {
    #[error("rate must be specified")]
    MissingRate,
    /// Go's `strconv.ParseFloat` message.
    #[error("strconv.ParseFloat: parsing {0:?}: invalid syntax")]
    RateSyntax(String),
    #[error("rate must be between 0.0 and 1.0")]
    RateOutOfRange,
    #[error("code must be specified")]
    MissingCode,
    /// Go's `strconv.ParseInt` message; `why` is `invalid syntax` or `value out of range`.
    #[error("strconv.ParseInt: parsing {raw:?}: {why}")]
    CodeSyntax { raw: String, why: &'static str },
    #[error("code must be an HTTP status between 200 and 999, not {0}")]
    CodeNotAStatus(i32),
}

/// A `Latency` header that is neither whole seconds nor a duration; holds the value as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Latency header {0:?}: expected whole seconds (\"2\") or a duration (\"250ms\")")]
struct InvalidLatency(String);

#[derive(Debug, PartialEq)]
struct FlakeSetting {
    rate: f32,
    code: StatusCode,
}

impl FlakeSetting {
    /// Reads `rate` and `code` as the original does (first value of each wins) and words its
    /// refusals the same way, Go's strconv messages included.
    fn parse(query: &str) -> Result<Self, FlakeRefusal> {
        let first = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let raw_rate = first("rate").ok_or(FlakeRefusal::MissingRate)?;
        let rate: f32 = raw_rate
            .parse()
            .map_err(|_| FlakeRefusal::RateSyntax(raw_rate.clone()))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(FlakeRefusal::RateOutOfRange);
        }
        let raw_code = first("code").ok_or(FlakeRefusal::MissingCode)?;
        let code: i32 = raw_code.parse().map_err(|error: std::num::ParseIntError| {
            let why = match error.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            FlakeRefusal::CodeSyntax {
                raw: raw_code.clone(),
                why,
            }
        })?;
        let code = u16::try_from(code)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|code| !code.is_informational())
            .ok_or(FlakeRefusal::CodeNotAStatus(code))?;
        Ok(Self { rate, code })
    }
}

/// Reads a `Latency` header: empty means no delay, a bare integer is seconds, anything else must
/// be a humantime duration such as `250ms`.
fn parse_latency(value: &HeaderValue) -> Result<Option<Duration>, InvalidLatency> {
    let reason = || InvalidLatency(String::from_utf8_lossy(value.as_bytes()).into_owned());
    let text = value.to_str().map_err(|_| reason())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(|secs| Some(Duration::from_secs(secs)))
            .map_err(|_| reason());
    }
    humantime::parse_duration(text)
        .map(Some)
        .map_err(|_| reason())
}

/// Formats like Go's `%g` verb on a `float32`: the shortest digits that read back to the same
/// value, in exponent form (at least two exponent digits) below 1e-4 or from 1e21 up.
fn go_format_g32(value: f32) -> String {
    if value == 0.0 || !value.is_finite() {
        return value.to_string();
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    if (-4..21).contains(&exponent) {
        value.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// A reply as the Go handler writes it: `Content-Type` sniffed from the body, none when empty.
fn text(status: StatusCode, body: Bytes) -> HttpResponse {
    go_http::sniffed(status, body)
}

/// An error reply as Go's `http.Error` writes it: the message plus a newline, and `nosniff`.
fn go_error(status: StatusCode, message: &str) -> HttpResponse {
    go_http::error(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_reads_seconds_units_and_refuses_garbage() {
        let parse = |v: &'static str| parse_latency(&HeaderValue::from_static(v));
        assert_eq!(parse("2"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse("0"), Ok(Some(Duration::ZERO)));
        assert_eq!(parse("250ms"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse("1s"), Ok(Some(Duration::from_secs(1))));
        assert_eq!(parse(""), Ok(None));
        for bad in ["-1", "soon", "1.5.2s", "99999999999999999999999"] {
            let reason = parse(bad).unwrap_err().to_string();
            assert!(reason.contains(bad) && !reason.contains('\n'), "{reason}");
        }
    }

    #[test]
    fn flake_settings_parse_like_the_original() {
        assert_eq!(
            FlakeSetting::parse("rate=0.5&code=503"),
            Ok(FlakeSetting {
                rate: 0.5,
                code: StatusCode::SERVICE_UNAVAILABLE
            })
        );
        assert_eq!(
            FlakeSetting::parse("code=500&rate=1&rate=0"),
            Ok(FlakeSetting {
                rate: 1.0,
                code: StatusCode::INTERNAL_SERVER_ERROR
            })
        );
        let refusal = |q| FlakeSetting::parse(q).unwrap_err().to_string();
        assert_eq!(refusal("code=500"), "rate must be specified");
        assert_eq!(
            refusal("rate=abc&code=500"),
            "strconv.ParseFloat: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            refusal("rate=1.5&code=500"),
            "rate must be between 0.0 and 1.0"
        );
        assert_eq!(
            refusal("rate=-0.1&code=500"),
            "rate must be between 0.0 and 1.0"
        );
        assert_eq!(
            refusal("rate=NaN&code=500"),
            "rate must be between 0.0 and 1.0"
        );
        assert_eq!(refusal("rate=0.5"), "code must be specified");
        assert_eq!(
            refusal("rate=0.5&code=x"),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            refusal("rate=0.5&code=99999999999"),
            "strconv.ParseInt: parsing \"99999999999\": value out of range"
        );
        assert!(refusal("rate=0.5&code=42").contains("HTTP status"));
        assert!(refusal("rate=0.5&code=101").contains("HTTP status"));
    }

    #[test]
    fn go_g_format_of_float32() {
        assert_eq!(go_format_g32(0.0), "0");
        assert_eq!(go_format_g32(1.0), "1");
        assert_eq!(go_format_g32(0.5), "0.5");
        assert_eq!(go_format_g32(0.1), "0.1");
        assert_eq!(go_format_g32(0.33), "0.33");
        assert_eq!(go_format_g32(0.0001), "0.0001");
        assert_eq!(go_format_g32(0.00001), "1e-05");
        assert_eq!(go_format_g32(0.000025), "2.5e-05");
    }
}

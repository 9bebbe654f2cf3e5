//! AWS X-Ray as the colorapp originals use it through the X-Ray Go SDK (v0.9.4, `xray.Handler`
//! around every handler and `xray.Client` for the teller call), plus what the gateway stand-ins
//! need to add their own span.
//!
//! - **Trace header** `X-Amzn-Trace-Id: Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=1`
//!   ([`TraceHeader`]). An incoming `Root` is continued, its `Parent` becomes the segment's
//!   parent; `Sampled=1`/`0` is obeyed, `Sampled=?` (or none) asks the local sampler.
//! - **Reply header**: `Root=<trace id>`, plus `;Sampled=<1|0>` when the request asked with
//!   `Sampled=?` ([`Trace::reply_header`]).
//! - **Downstream header** for a call made inside the segment: `Root=…;Parent=<subsegment
//!   id>;Sampled=<1|0>` ([`Trace::downstream_header`]).
//! - **Segments** ([`Segment`]) go to the daemon over UDP as `{"format": "json", "version": 1}\n`
//!   followed by the segment JSON, only when sampled ([`Recorder::send`]). The daemon address is
//!   `AWS_XRAY_DAEMON_ADDRESS` (default `127.0.0.1:2000`, [`daemon_address`]). The socket is
//!   non-blocking and every send error is only logged, so an absent daemon never slows or fails
//!   a request.
//! - **Sampling** without a decision in the request: the SDK's default local rule, one request
//!   a second and 5% of the rest ([`Sampler`]).

use std::{
    net::{SocketAddr, ToSocketAddrs, UdpSocket},
    sync::{Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderValue, Request, StatusCode};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The trace header's name (`X-Amzn-Trace-Id` on the wire).
pub const TRACE_HEADER: &str = "x-amzn-trace-id";
/// The environment variable the SDK and the daemon read the daemon's address from.
pub const DAEMON_ADDRESS_ENV: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// colormesh's knob for the services' sampling rate past the reservoir (the SDK's rule is 5%;
/// the harness sets 1 so that every request it judges is traced, whichever gateway is in front).
pub const SAMPLING_RATE_ENV: &str = "COLORMESH_XRAY_SAMPLING_RATE";
/// The SDK's default rate past the one-a-second reservoir.
pub const DEFAULT_SAMPLING_RATE: f64 = 0.05;
/// The daemon address when [`DAEMON_ADDRESS_ENV`] is unset.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";
/// The first line of every datagram sent to the daemon.
pub const DATAGRAM_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// Why a daemon address or a datagram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XrayError {
    #[error("the X-Ray daemon address {0:?} is not host:port (or \"tcp:host:port udp:host:port\")")]
    Address(String),
    #[error("the datagram does not start with the X-Ray header line")]
    DatagramHeader,
    #[error("the datagram's segment is not valid JSON")]
    Segment(#[source] serde_json::Error),
}

/// Resolves the daemon's UDP address from `AWS_XRAY_DAEMON_ADDRESS`'s value: `host:port`, or the
/// SDK's two-address form `tcp:host:port udp:host:port` (only the UDP one is used).
pub fn daemon_address(value: Option<&str>) -> Result<SocketAddr, XrayError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_DAEMON_ADDRESS);
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value);
    udp.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| XrayError::Address(value.to_owned()))
}

/// The sampling decision a trace header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampling {
    /// No `Sampled=`.
    #[default]
    Unknown,
    /// `Sampled=?`: decide, and say the decision in the reply.
    Requested,
    /// `Sampled=1`.
    Sampled,
    /// `Sampled=0`.
    NotSampled,
}

/// An `X-Amzn-Trace-Id` value, read as the Go SDK's `header.FromString` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: Option<String>,
    pub parent: Option<String>,
    pub sampling: Sampling,
}

impl TraceHeader {
    /// Reads `Root=…;Parent=…;Sampled=…` (parts trimmed, any order, others ignored).
    pub fn parse(value: &str) -> Self {
        let mut header = Self::default();
        for part in value.split(';').map(str::trim) {
            if let Some(root) = part.strip_prefix("Root=") {
                header.root = Some(root.to_owned()).filter(|r| !r.is_empty());
            } else if let Some(parent) = part.strip_prefix("Parent=") {
                header.parent = Some(parent.to_owned()).filter(|p| !p.is_empty());
            } else if let Some(sampled) = part.strip_prefix("Sampled=") {
                header.sampling = match sampled {
                    "1" => Sampling::Sampled,
                    "0" => Sampling::NotSampled,
                    "?" => Sampling::Requested,
                    _ => Sampling::Unknown,
                };
            }
        }
        header
    }

    /// The header of `headers`, if any (a value that is not text reads as no header).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(TRACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(Self::parse)
            .unwrap_or_default()
    }
}

/// A new trace id: `1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`.
pub fn new_trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let random: u128 = rand::rng().random::<u128>() >> 32;
    format!("1-{epoch:08x}-{random:024x}")
}

/// A new segment or subsegment id: 64 random bits, 16 hex.
pub fn new_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Seconds since the epoch, as segments' `start_time` and `end_time` are written.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The SDK's default local sampling rule: a reservoir of one request per second, then 5%.
#[derive(Debug)]
pub struct Sampler {
    fixed_per_second: u64,
    rate: f64,
    window: Mutex<(u64, u64)>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new(1, 0.05)
    }
}

impl Sampler {
    /// `fixed_per_second` requests each second, then `rate` of the rest.
    pub fn new(fixed_per_second: u64, rate: f64) -> Self {
        Self {
            fixed_per_second,
            rate,
            window: Mutex::new((0, 0)),
        }
    }

    /// Whether to trace one more request.
    pub fn sample(&self) -> bool {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            if window.0 != second {
                *window = (second, 0);
            }
            if window.1 < self.fixed_per_second {
                window.1 += 1;
                return true;
            }
        }
        self.rate >= 1.0 || (self.rate > 0.0 && rand::rng().random::<f64>() < self.rate)
    }
}

/// A segment or subsegment document, with the Go SDK's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub id: String,
    /// Set on segments, absent on subsegments embedded in their parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub start_time: f64,
    #[serde(default)]
    pub end_time: f64,
    /// `remote` on a subsegment for a call to another service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `AWS::AppMesh::Proxy` and such: what kind of resource wrote the segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttle: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<serde_json::Value>,
    /// Indexed key-value pairs; proxies put `upstream_cluster` here, as Envoy's X-Ray tracer does.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub annotations: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsegments: Vec<Segment>,
}

/// The `http` block of a (sub)segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Http {
    #[serde(default)]
    pub request: HttpRequest,
    #[serde(default)]
    pub response: HttpResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub x_forwarded_for: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub content_length: u64,
}

impl Segment {
    /// Sets `error` (4xx), `throttle` (429) and `fault` (5xx) from a reply status, as the SDK does.
    pub fn mark_status(&mut self, status: StatusCode) {
        let code = status.as_u16();
        self.error = (400..500).contains(&code);
        self.throttle = code == 429;
        self.fault = (500..600).contains(&code);
    }

    /// The datagram the daemon reads: the header line, then the JSON document.
    pub fn to_datagram(&self) -> Vec<u8> {
        let mut datagram = DATAGRAM_HEADER.as_bytes().to_vec();
        // A struct of strings, numbers and JSON values always serialises.
        if let Ok(json) = serde_json::to_vec(self) {
            datagram.extend(json);
        }
        datagram
    }

    /// Reads a datagram sent by [`Recorder::send`] (or by any X-Ray SDK).
    pub fn from_datagram(datagram: &[u8]) -> Result<Self, XrayError> {
        let newline = datagram
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(XrayError::DatagramHeader)?;
        let header: serde_json::Value =
            serde_json::from_slice(&datagram[..newline]).map_err(|_| XrayError::DatagramHeader)?;
        if header.get("format").and_then(|f| f.as_str()) != Some("json") {
            return Err(XrayError::DatagramHeader);
        }
        serde_json::from_slice(&datagram[newline + 1..]).map_err(XrayError::Segment)
    }
}

/// One request's part of a trace: ids, the sampling decision and the segment being built.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: String,
    pub sampled: bool,
    /// Whether the request said `Sampled=?`.
    pub requested: bool,
    /// This service's segment; its `id` is the parent of calls made inside it.
    pub segment: Segment,
}

impl Trace {
    /// The reply's `X-Amzn-Trace-Id`: `Root=…`, plus `;Sampled=` when the request asked.
    pub fn reply_header(&self) -> HeaderValue {
        let mut value = format!("Root={}", self.trace_id);
        if self.requested {
            value.push_str(if self.sampled {
                ";Sampled=1"
            } else {
                ";Sampled=0"
            });
        }
        header_value(value)
    }

    /// The `X-Amzn-Trace-Id` of a call made inside this trace, under span `parent`.
    pub fn downstream_header(&self, parent: &str) -> HeaderValue {
        header_value(format!(
            "Root={};Parent={parent};Sampled={}",
            self.trace_id,
            u8::from(self.sampled)
        ))
    }

    /// Starts a `remote` subsegment for a call to `name` (the SDK names it after the host).
    pub fn begin_call(&self, name: &str, method: &str, url: &str) -> Segment {
        Segment {
            name: name.to_owned(),
            id: new_id(),
            start_time: now(),
            namespace: Some("remote".to_owned()),
            http: Some(Http {
                request: HttpRequest {
                    method: method.to_owned(),
                    url: url.to_owned(),
                    ..HttpRequest::default()
                },
                ..Http::default()
            }),
            ..Segment::default()
        }
    }
}

fn header_value(value: String) -> HeaderValue {
    // Trace ids and span ids are hex; an incoming root that is not a header value cannot be
    // continued (it came in as one), so this only guards against the impossible.
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Root="))
}

/// Where a peer's address is kept on a request, for the segment's `client_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Names segments, makes sampling decisions and sends segments to the daemon.
#[derive(Debug)]
pub struct Recorder {
    name: String,
    daemon: Option<(UdpSocket, SocketAddr)>,
    sampler: Sampler,
    origin: Option<String>,
}

impl Recorder {
    /// A recorder naming every segment `name` (the SDK's fixed segment namer) and sending to
    /// `daemon`; `None`, or a socket that cannot be opened, only disables sending.
    pub fn new(name: impl Into<String>, daemon: Option<SocketAddr>, sampler: Sampler) -> Self {
        let daemon = daemon.and_then(|addr| {
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local)
                .and_then(|socket| socket.set_nonblocking(true).map(|()| socket));
            match socket {
                Ok(socket) => Some((socket, addr)),
                Err(error) => {
                    tracing::warn!(%error, %addr, "cannot open a UDP socket: X-Ray segments will not be sent");
                    None
                }
            }
        });
        Self {
            name: name.into(),
            daemon,
            sampler,
            origin: None,
        }
    }

    /// Sets the segments' `origin` (e.g. `AWS::AppMesh::Proxy`).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The segment name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the segment of an incoming request as `xray.Handler` does.
    pub fn begin<B>(&self, request: &Request<B>) -> Trace {
        let incoming = TraceHeader::from_headers(request.headers());
        let sampled = match incoming.sampling {
            Sampling::Sampled => true,
            Sampling::NotSampled => false,
            Sampling::Requested | Sampling::Unknown => self.sampler.sample(),
        };
        let headers = request.headers();
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned());
        let client_ip = forwarded.clone().unwrap_or_else(|| {
            request
                .extensions()
                .get::<PeerAddr>()
                .map(|peer| peer.0.ip().to_string())
                .unwrap_or_default()
        });
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let segment = Segment {
            name: self.name.clone(),
            id: new_id(),
            trace_id: Some(incoming.root.clone().unwrap_or_else(new_trace_id)),
            parent_id: incoming.parent.clone(),
            start_time: now(),
            origin: self.origin.clone(),
            http: Some(Http {
                request: HttpRequest {
                    method: request.method().to_string(),
                    url: format!("http://{host}{}", request.uri().path()),
                    client_ip,
                    user_agent,
                    x_forwarded_for: forwarded.is_some(),
                },
                response: HttpResponse::default(),
            }),
            aws: Some(
                serde_json::json!({"xray": {"sdk": "colormesh", "sdk_version": env!("CARGO_PKG_VERSION")}}),
            ),
            ..Segment::default()
        };
        Trace {
            trace_id: segment.trace_id.clone().unwrap_or_default(),
            sampled,
            requested: incoming.sampling == Sampling::Requested,
            segment,
        }
    }

    /// Ends the segment with the reply's status and length, sends it when sampled, and returns
    /// the reply header to set.
    pub fn end(&self, mut trace: Trace, status: StatusCode, content_length: u64) -> HeaderValue {
        let header = trace.reply_header();
        if let Some(http) = &mut trace.segment.http {
            http.response = HttpResponse {
                status: status.as_u16(),
                content_length,
            };
        }
        trace.segment.mark_status(status);
        trace.segment.end_time = now();
        if trace.sampled {
            self.send(&trace.segment);
        }
        header
    }

    /// Sends one segment to the daemon; never blocks, never fails (errors are logged).
    pub fn send(&self, segment: &Segment) {
        let Some((socket, addr)) = &self.daemon else {
            return;
        };
        if let Err(error) = socket.send_to(&segment.to_datagram(), addr) {
            tracing::debug!(%error, %addr, "X-Ray segment not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_read_as_the_sdk_reads_them() {
        let header = TraceHeader::parse(
            "Root=1-5f84c7a1-0123456789abcdef01234567; Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a",
        );
        assert_eq!(
            header.root.as_deref(),
            Some("1-5f84c7a1-0123456789abcdef01234567")
        );
        assert_eq!(header.parent.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(header.sampling, Sampling::Sampled);
        assert_eq!(
            TraceHeader::parse("Sampled=?").sampling,
            Sampling::Requested
        );
        assert_eq!(
            TraceHeader::parse("Sampled=0").sampling,
            Sampling::NotSampled
        );
        assert_eq!(TraceHeader::parse("garbage"), TraceHeader::default());
    }

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_trace_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "1");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 24);
        assert!(
            parts[1..]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert_eq!(new_id().len(), 16);
    }

    #[test]
    fn reply_and_downstream_headers() {
        let recorder = Recorder::new("default-gateway", None, Sampler::new(0, 1.0));
        let mut request = Request::new(());
        request.headers_mut().insert(
            TRACE_HEADER,
            HeaderValue::from_static("Root=1-00000001-000000000000000000000001;Sampled=?"),
        );
        let trace = recorder.begin(&request);
        assert_eq!(trace.segment.parent_id, None);
        assert_eq!(
            trace.reply_header(),
            "Root=1-00000001-000000000000000000000001;Sampled=1"
        );
        assert_eq!(
            trace.downstream_header("00000000000000aa"),
            "Root=1-00000001-000000000000000000000001;Parent=00000000000000aa;Sampled=1"
        );
        let fresh = recorder.begin(&Request::new(()));
        assert!(
            fresh
                .reply_header()
                .to_str()
                .unwrap()
                .starts_with("Root=1-")
        );
        assert!(!fresh.reply_header().to_str().unwrap().contains("Sampled"));
    }

    #[test]
    fn sampler_keeps_one_a_second_then_the_rate() {
        let never = Sampler::new(1, 0.0);
        assert!(never.sample());
        // The second request in the same second (or the first of the next) with rate 0:
        // at most one more can pass, when the second ticks over.
        let passed = (0..10).filter(|_| never.sample()).count();
        assert!(passed <= 1, "{passed}");
    }

    #[test]
    fn datagrams_round_trip() {
        let mut segment = Segment {
            name: "default-colorteller-blue".into(),
            id: new_id(),
            trace_id: Some(new_trace_id()),
            start_time: 1.5,
            end_time: 2.5,
            ..Segment::default()
        };
        segment.mark_status(StatusCode::SERVICE_UNAVAILABLE);
        let datagram = segment.to_datagram();
        assert!(datagram.starts_with(b"{\"format\": \"json\", \"version\": 1}\n{\"name\":"));
        assert_eq!(Segment::from_datagram(&datagram).unwrap(), segment);
        assert!(Segment::from_datagram(b"{}").is_err());
    }

    #[test]
    fn daemon_addresses() {
        assert_eq!(
            daemon_address(None).unwrap(),
            "127.0.0.1:2000".parse().unwrap()
        );
        assert_eq!(
            daemon_address(Some("tcp:127.0.0.1:3000 udp:127.0.0.1:3001")).unwrap(),
            "127.0.0.1:3001".parse().unwrap()
        );
        assert!(daemon_address(Some("nope")).is_err());
    }

    #[test]
    fn an_absent_daemon_costs_nothing() {
        // A port nobody listens on: sends must neither block nor fail the caller.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        drop(silent);
        let recorder = Recorder::new("x", Some(addr), Sampler::new(0, 1.0));
        for _ in 0..100 {
            let trace = recorder.begin(&Request::new(()));
            recorder.end(trace, StatusCode::OK, 0);
        }
    }
}

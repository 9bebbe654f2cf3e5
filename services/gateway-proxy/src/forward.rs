//! The building blocks of the request path, public so that another data plane can compose the
//! same forwarding instead of copying it: the mutant gateway routes with its faults and forwards
//! with these, so it differs from gateway-proxy only where it means to.
//!
//! One forwarded try, in order:
//! 1. [`request_authority`]: what the request is addressed to;
//! 2. [`upstream_path`]: the path and query to send (rewritten or as received);
//! 3. [`upstream_headers`] (and [`ensure_request_id`]): the headers Envoy would send;
//! 4. [`upstream_request`]: the request to one endpoint;
//! 5. [`Upstream::send`]: one try over the pooled client, bounded by a deadline;
//! 6. [`downstream_reply`]: the response, or Envoy's local reply for a failed try;
//! 7. [`stamp_generation`]: every answer names the configuration generation it was served under.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, InvalidUriParts, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use routing::table::{HeaderEdits, PathMatcher, Redirect, RedirectRequest};
use tokio::time::Instant;

use crate::ProxyOptions;
use crate::headers::strip_hop_by_hop;

pub use crate::server::{BodyIdleTimeout, IdleTimeoutBody, RouteTimeoutInBody};

/// Body type of everything the proxy sends: a streamed hyper body (with an idle timeout, see
/// [`streamed`]) or a buffered one.
pub type ProxyBody = Either<IdleTimeoutBody<Incoming>, Full<Bytes>>;

/// A streamed body to relay; with `idle`, it fails with [`BodyIdleTimeout`] when its sender
/// stalls that long.
pub fn streamed(body: Incoming, idle: Option<Duration>) -> ProxyBody {
    Either::Left(IdleTimeoutBody::new(body, idle))
}

/// The hop header: how many colormesh proxies a request has passed. Each proxy adds one
/// ([`upstream_headers`]), and one that receives [`MAX_HOPS`] refuses the request with 508, so
/// a request that loops (a sidecar sent to itself, two proxies sent to each other) ends. The
/// admin API refuses every request that carries it: no proxy's admin API is reachable through a
/// proxy.
pub const HOPS_HEADER: &str = "x-colormesh-hops";
/// Hops a request may make through colormesh proxies.
pub const MAX_HOPS: u32 = 10;

/// A request the proxy refuses before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefusedRequest {
    /// Two or more `Host` headers.
    #[error("more than one Host header")]
    DuplicateHost,
    /// An HTTP/1.1 request in origin form without `Host`.
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
    /// An absolute-form `https://` request on this plain-text listener: forwarding it as plain
    /// HTTP would silently drop the TLS the client asked for.
    #[error("https:// absolute-form requests are not proxied over plain HTTP; use CONNECT")]
    HttpsAbsoluteForm,
    /// The hop header says the request went through [`MAX_HOPS`] proxies (or is not a number).
    #[error("request loop detected: too many proxy hops ({HOPS_HEADER})")]
    TooManyHops,
    /// The request is addressed to this proxy's own listener or admin port.
    #[error("request loop detected: the request is addressed to this proxy itself")]
    AddressedToSelf,
}

impl RefusedRequest {
    /// The answer: 400 for a malformed request, 508 (Loop Detected) for a loop.
    pub fn reply(self) -> Response<ProxyBody> {
        let status = match self {
            Self::DuplicateHost | Self::MissingHost | Self::HttpsAbsoluteForm => {
                StatusCode::BAD_REQUEST
            }
            Self::TooManyHops | Self::AddressedToSelf => StatusCode::LOOP_DETECTED,
        };
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(self.to_string()))));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    }
}

/// Settles the one authority a request is routed and forwarded with, and refuses requests that
/// have none or two: the absolute-form URI's authority (or HTTP/2's `:authority`) wins and
/// replaces `Host`; else the single `Host` header; HTTP/1.0 may have neither (empty authority).
/// Also refuses a request that has been through [`MAX_HOPS`] proxies.
pub fn settle_authority(parts: &mut http::request::Parts) -> Result<String, RefusedRequest> {
    hops(&parts.headers)
        .filter(|hops| *hops < MAX_HOPS)
        .ok_or(RefusedRequest::TooManyHops)?;
    let hosts = parts.headers.get_all(header::HOST).iter().count();
    if let Some(authority) = parts.uri.authority() {
        if parts.version <= Version::HTTP_11 && parts.uri.scheme() == Some(&Scheme::HTTPS) {
            return Err(RefusedRequest::HttpsAbsoluteForm);
        }
        if hosts > 1 {
            return Err(RefusedRequest::DuplicateHost);
        }
        let authority = authority.as_str().to_owned();
        if let Ok(host) = HeaderValue::from_str(&authority) {
            parts.headers.insert(header::HOST, host);
        }
        return Ok(authority);
    }
    match hosts {
        0 if parts.version == Version::HTTP_11 => Err(RefusedRequest::MissingHost),
        0 => Ok(String::new()),
        1 => Ok(parts
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or_default()
            .to_owned()),
        _ => Err(RefusedRequest::DuplicateHost),
    }
}

/// The hops a request has made ([`HOPS_HEADER`]); `None` when the header is not a number.
fn hops(headers: &HeaderMap) -> Option<u32> {
    match headers.get(HOPS_HEADER) {
        None => Some(0),
        Some(value) => value.to_str().ok()?.trim().parse().ok(),
    }
}

/// Envoy's answer when a request's deadline passes before the upstream's response headers.
pub const BODY_TIMEOUT: &str = "upstream request timeout";
/// Envoy's answer when the picked cluster has no endpoint.
pub const BODY_NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
const BODY_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// The response header that names the configuration generation a request was routed with (the
/// `generation` of `/status`), so a client can tell which configuration served each reply while
/// one is being replaced. envoy-control renders the same header into Envoy's route configuration.
pub const GENERATION_HEADER: &str = "x-colormesh-generation";

/// Gloo's default upstream connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The authority a request is addressed to: the absolute-form URI's, else the Host header.
pub fn request_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(Authority::as_str).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    })
}

/// A route's rewrite produced something that is not a URI path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rewritten path is not a valid URI path")]
pub struct InvalidRewrite;

impl InvalidRewrite {
    /// The downstream answer: 400, as Envoy rejects a request it cannot forward.
    pub fn reply(self) -> Response<ProxyBody> {
        local_reply(
            StatusCode::BAD_REQUEST,
            "rewritten path is not a valid URI path",
        )
    }
}

/// The path and query to send upstream: `rewritten` (a route's rewrite result) when there is
/// one, else the request's own (`/` when it has none).
pub fn upstream_path(uri: &Uri, rewritten: Option<String>) -> Result<PathAndQuery, InvalidRewrite> {
    match rewritten {
        Some(rewritten) => PathAndQuery::try_from(rewritten).map_err(|_| InvalidRewrite),
        None => Ok(uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))),
    }
}

/// Makes downstream headers into the headers of the upstream request, in Envoy's manner: the
/// hop-by-hop ones go, `Host` is kept as received (absolute-form and HTTP/2 requests carry it in
/// the URI, so it is set from `authority` then) and `x-forwarded-proto` is set; the hop count
/// ([`HOPS_HEADER`]) goes up by one.
pub fn upstream_headers(headers: &mut HeaderMap, authority: &str) {
    strip_hop_by_hop(headers);
    let hops = hops(headers).unwrap_or(MAX_HOPS).saturating_add(1);
    headers.insert(HOPS_HEADER, HeaderValue::from(hops));
    if !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority)
    {
        headers.insert(header::HOST, host);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
}

/// Replaces the `Host` sent upstream with a route's host rewrite (Envoy `host_rewrite_literal`).
/// Call it after the route's header edits: Envoy rewrites the host after adding headers.
pub fn rewrite_host(headers: &mut HeaderMap, host_rewrite: Option<&str>) {
    if let Some(host) = host_rewrite
        && let Ok(host) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, host);
    }
}

/// The request's scheme as Envoy's HTTP/1 codec and connection manager set `:scheme` on a
/// plain-text listener: the absolute-form URI's, else the client's `x-forwarded-proto` when it is
/// `http` or `https` (Envoy trusts it without `use_remote_address`), else `http`.
pub fn request_scheme<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    if let Some(scheme) = uri.scheme_str() {
        return scheme;
    }
    match headers
        .get("x-forwarded-proto")
        .and_then(|proto| proto.to_str().ok())
    {
        Some(proto)
            if proto.eq_ignore_ascii_case("http") || proto.eq_ignore_ascii_case("https") =>
        {
            proto
        }
        _ => "http",
    }
}

/// A route's redirect, as Envoy answers it: the status, a `location` built by
/// [`Redirect::location`] from the request and an empty body. A location that cannot be a header
/// value (only possible with control characters in the configuration) answers 500.
pub fn redirect_reply(
    redirect: &Redirect,
    matcher: &PathMatcher,
    uri: &Uri,
    headers: &HeaderMap,
    authority: &str,
) -> Response<ProxyBody> {
    let request = RedirectRequest {
        scheme: request_scheme(uri, headers),
        host: authority,
        path: uri.path(),
        query: uri.query(),
    };
    let Ok(location) = HeaderValue::try_from(redirect.location(matcher, &request)) else {
        return empty_reply(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = empty_reply(redirect.status);
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The answer when a request's pick lands on an unresolved destination
/// ([`routing::table::Cluster::unresolved`]): 500 with an empty body, as Envoy answers a route
/// with `cluster_not_found_response_code: INTERNAL_SERVER_ERROR`.
pub fn unresolved_reply() -> Response<ProxyBody> {
    empty_reply(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Gives the request an `x-request-id` (a random UUID, as Envoy generates) unless it has one.
pub fn ensure_request_id(headers: &mut HeaderMap, rng: &mut impl RngCore) {
    if !headers.contains_key("x-request-id")
        && let Ok(id) = HeaderValue::try_from(uuid_v4(rng))
    {
        headers.insert("x-request-id", id);
    }
}

/// A random (version 4) UUID in its canonical text form.
fn uuid_v4(rng: &mut impl RngCore) -> String {
    let high = (rng.next_u64() & !0xf000) | 0x4000;
    let low = (rng.next_u64() & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// The HTTP/1.1 request to `endpoint`, with the method, path and headers already prepared.
pub fn upstream_request(
    method: Method,
    endpoint: Authority,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, InvalidUriParts> {
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.scheme = Some(Scheme::HTTP);
    uri_parts.authority = Some(endpoint);
    uri_parts.path_and_query = Some(path_and_query);
    let uri = Uri::from_parts(uri_parts)?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Ok(request)
}

/// How one try ended without a usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFailure {
    /// The upstream connection could not be established.
    ConnectFailure,
    /// The upstream reset or closed the connection before response headers.
    Reset,
    /// The try's deadline passed before response headers.
    PerTryTimeout,
}

/// The pooled upstream client every forwarded request goes through.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
}

impl Upstream {
    /// A client with the proxy's connect timeout (5 s unless set), no Nagle delay and an
    /// unbounded keep-alive pool.
    pub fn new(options: &ProxyOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(
            options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        ));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            // The Host header is always set by the proxy itself (kept as received).
            .set_host(false)
            .build(connector);
        Self { client }
    }

    /// Sends one try and waits for its response headers, until `deadline` if there is one.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        deadline: Option<Instant>,
    ) -> Result<Response<Incoming>, TryFailure> {
        let sent = self.client.request(request);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, sent).await {
                Ok(result) => result,
                Err(_) => return Err(TryFailure::PerTryTimeout),
            },
            None => sent.await,
        };
        result.map_err(|error| {
            tracing::debug!(%error, "upstream try failed");
            if error.is_connect() {
                TryFailure::ConnectFailure
            } else {
                TryFailure::Reset
            }
        })
    }
}

/// What the client gets for a try's outcome: the upstream's response without its hop-by-hop
/// headers and with the route's `response_edits`, or Envoy's local reply for the failure. The
/// response body is cut at `deadline` (the route's timeout from the request's start), since
/// Envoy's route timeout runs until the response has ended.
pub fn downstream_reply(
    outcome: Result<Response<Incoming>, TryFailure>,
    response_edits: Option<&HeaderEdits>,
    deadline: Option<Instant>,
) -> Response<ProxyBody> {
    match outcome {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(edits) = response_edits {
                edits.apply(&mut parts.headers);
            }
            // The listener bounds the response body's stalls (it wraps every answer).
            Response::from_parts(
                parts,
                Either::Left(IdleTimeoutBody::new(body, None).until(deadline)),
            )
        }
        Err(TryFailure::ConnectFailure) => {
            local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_CONNECT_FAILURE)
        }
        Err(TryFailure::Reset) => local_reply(StatusCode::SERVICE_UNAVAILABLE, BODY_RESET),
        Err(TryFailure::PerTryTimeout) => local_reply(StatusCode::GATEWAY_TIMEOUT, BODY_TIMEOUT),
    }
}

/// Sets [`GENERATION_HEADER`] to `generation`, replacing what an upstream sent (a sidecar's own
/// stamp on the reply of a meshed workload).
pub fn stamp_generation(response: &mut Response<ProxyBody>, generation: u64) {
    response.headers_mut().insert(
        header::HeaderName::from_static(GENERATION_HEADER),
        HeaderValue::from(generation),
    );
}

/// A locally generated plain-text answer, like Envoy's local replies.
pub fn local_reply(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// A route's direct response (Gloo `directResponseAction`), sent as configured.
pub fn direct_reply(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response
}

/// An answer with no body (404 for an unrouted request, 500 for a request the proxy could not
/// build).
pub fn empty_reply(status: StatusCode) -> Response<ProxyBody> {
    direct_reply(status, Bytes::new())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn uuid_has_version_and_variant_bits() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..100 {
            let id = uuid_v4(&mut rng);
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn the_upstream_path_is_the_rewrite_or_the_request_s_own() {
        let uri: Uri = "/appmesh/color?x=1".parse().expect("uri");
        assert_eq!(
            upstream_path(&uri, None).map(|path| path.to_string()),
            Ok("/appmesh/color?x=1".to_owned())
        );
        assert_eq!(
            upstream_path(&uri, Some("/color?x=1".to_owned())).map(|path| path.to_string()),
            Ok("/color?x=1".to_owned())
        );
        assert_eq!(
            upstream_path(&uri, Some("/bad path".to_owned())),
            Err(InvalidRewrite)
        );
        let authority_only: Uri = "http://colorteller:9080".parse().expect("uri");
        assert_eq!(
            upstream_path(&authority_only, None).map(|path| path.to_string()),
            Ok("/".to_owned())
        );
    }

    #[test]
    fn upstream_headers_keep_host_and_set_the_forwarded_proto() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close"));
        upstream_headers(&mut headers, "colorteller:9080");
        assert_eq!(headers["host"], "colorteller:9080");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(!headers.contains_key("connection"));
        let mut with_host = HeaderMap::new();
        with_host.insert("host", HeaderValue::from_static("as-sent"));
        with_host.insert("x-request-id", HeaderValue::from_static("given"));
        upstream_headers(&mut with_host, "other");
        ensure_request_id(&mut with_host, &mut SmallRng::seed_from_u64(1));
        assert_eq!(with_host["host"], "as-sent");
        assert_eq!(with_host["x-request-id"], "given");
    }

    #[test]
    fn the_scheme_is_the_uri_s_then_a_valid_forwarded_proto_then_http() {
        let origin: Uri = "/x".parse().expect("uri");
        let absolute: Uri = "https://h/x".parse().expect("uri");
        let none = HeaderMap::new();
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let mut bogus = HeaderMap::new();
        bogus.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        assert_eq!(request_scheme(&origin, &none), "http");
        assert_eq!(request_scheme(&origin, &https), "https");
        assert_eq!(request_scheme(&origin, &bogus), "http");
        assert_eq!(request_scheme(&absolute, &none), "https");
    }

    #[test]
    fn a_host_rewrite_replaces_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("as-sent"));
        rewrite_host(&mut headers, None);
        assert_eq!(headers["host"], "as-sent");
        rewrite_host(&mut headers, Some("rewritten.example"));
        assert_eq!(headers["host"], "rewritten.example");
        assert_eq!(headers.get_all("host").iter().count(), 1);
    }

    #[test]
    fn failed_tries_get_envoy_s_local_replies() {
        let reply = |failure| downstream_reply(Err(failure), None, None).status();
        assert_eq!(
            reply(TryFailure::ConnectFailure),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(reply(TryFailure::Reset), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            reply(TryFailure::PerTryTimeout),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
